import BitSwitchData
import BitSwitchIR
import BitSwitchRuntime
import Foundation

/// One optimizer step as the joint trainer took it: for tests and diagnostics.
public struct JointStepEvent: Sendable, Equatable {
    /// Global batch counter.
    public var batchIndex: Int
    /// The bit-widths whose gradients this step applies (one, or all of them with `accumulate`).
    public var bits: [Int]
    /// Effective learning rate (schedule × group multiplier) of every non-empty optimizer group.
    public var rates: [String: Float]
    /// Names the optimizer updated (per-bit rows appear as `parameter@<b>bit`).
    public var parameters: [String]
    /// HASB: the bit-width of every switchable layer in this sub-step (empty for joint training).
    public var layerBits: [String: Int] = [:]
}

/// Accuracy and loss of the network at one bit-width.
public struct BitEvaluation: Sendable, Equatable {
    public var bits: Int
    public var evaluation: Evaluation
}

/// Multi-precision joint training (METHOD.md §4) on top of the float `Trainer`: for every mini-batch, every
/// bit-width from highest to lowest does forward, loss, backward and its own optimizer step (or, with
/// `accumulate`, one step for all). Epochs, schedule, shuffling, progress, evaluation, checkpoints and resume are the
/// float trainer's; this class adds the per-bit passes, the optimizer groups, ALRS, distillation, and the PS-KD
/// state in the checkpoint.
public final class JointTrainer {
    public let trainer: Trainer
    public let joint: JointTrainingOptions
    /// Called after every optimizer step.
    public var stepObserver: ((JointStepEvent) -> Void)?
    /// Called after every epoch (and its checkpoint).
    public var epochObserver: ((EpochRecord) -> Void)?
    let rows: BitRows
    let checkpointPath: String?
    /// HASB (METHOD.md §5): per-layer bit-widths sampled in every sub-step; nil for plain joint training.
    public let hasb: HASBSampler?
    /// HASB: for every sampler layer, the index of the layer whose draw it takes (layers reading one quantized
    /// activation share one bit-width, as in the ILP); the graph, to resolve each sub-step's profile (HASB only).
    private let hasbTie: [Int]
    private let hasbGraph: Graph?

    /// PS-KD: the latest top-precision prediction of every training sample, [N, K] row-major (empty until known).
    private(set) var pskdPredictions: [Float] = []
    private var pskdClasses = 0
    private var trainSet: Dataset?
    private var stepsPerEpoch = 0
    private var epochOrder: (epoch: Int, order: [Int])?

    /// - Parameters:
    ///   - graph: a model with quantizers inserted (or any float model: bit-widths are then ignored by its kernels).
    ///   - training: epochs, batch, optimizer, schedule, seed, ...; `weightDecay` goes to the weight group only and
    ///     `checkpointPath`, when set, receives the joint checkpoint after every epoch.
    ///   - hasb: per-layer stochastic bit-switching (METHOD.md §5, Algorithm A.3): in sub-step k every switchable
    ///     layer of the sampler leaves the base `joint.bits[k]` with probability σ_e and draws from its roulette.
    ///     Its bit set must be `joint.bits`, its layers the graph's switchable layers; its `epochs` are replaced by
    ///     `training.epochs`. Not combinable with `accumulate`.
    public init(graph: Graph, training: TrainingOptions, joint: JointTrainingOptions, hasb: HASBSampler? = nil,
                progress: ProgressReporter = ProgressReporter()) throws {
        try joint.validate()
        var sampler = hasb
        var tie: [Int] = []
        if var s = sampler {
            guard s.bits == joint.bits else {
                throw BitSwitchError(.training, "HASB samples bit-widths \(s.bits) but the run trains \(joint.bits)")
            }
            guard !joint.accumulate else {
                throw BitSwitchError(.training, "HASB takes one optimizer step per sub-step; it cannot be combined with accumulate")
            }
            let layers = quantizedLayers(graph)
            let switchable = layers.filter(\.isSwitchable)
            guard !switchable.isEmpty else {
                throw BitSwitchError(.invalidModel, "HASB needs a multi-precision model with switchable layers; this one has none "
                    + "(train --bits 8,6,4,2 first)")
            }
            let known = Set(switchable.map(\.name))
            for n in s.layers where !known.contains(n) {
                throw BitSwitchError(.invalidModel, "HASB: '\(n)' is not a switchable quantized layer of this model", node: n)
            }
            let sampled = Set(s.layers)
            if let missing = switchable.first(where: { !sampled.contains($0.name) }) {
                throw BitSwitchError(.invalidModel, "HASB: the sampler has no entry for switchable layer '\(missing.name)'",
                                     node: missing.name)
            }
            let byName = Dictionary(layers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            var firstReader: [String: Int] = [:]
            for (i, n) in s.layers.enumerated() {
                guard let q = byName[n]?.inputQuant else { tie.append(i); continue }
                if let r = firstReader[q] { tie.append(r) } else { firstReader[q] = i; tie.append(i) }
            }
            s.epochs = training.epochs
            sampler = s
        }
        self.hasb = sampler
        hasbTie = tie
        hasbGraph = sampler == nil ? nil : graph
        let probe = try TrainingGraph(graph: graph)
        let rows = try BitRows(graph: graph, parameters: Set(probe.parameterNames), bitSet: joint.bits)
        let groups = rows.groups(parameters: probe.parameters, bitSet: joint.bits, weightDecay: training.weightDecay,
                                 scaleMultiplier: joint.rowScaleRateMultiplier(bits:))
        var inner = training
        inner.checkpointPath = nil
        trainer = try Trainer(graph: graph, options: inner, groups: groups, progress: progress)
        self.joint = joint
        self.rows = rows
        checkpointPath = training.checkpointPath
        trainer.batchStep = { [unowned self] t, batch in try self.batchStep(t, batch) }
    }

    public var completedEpochs: Int { trainer.completedEpochs }
    public var history: [EpochRecord] { trainer.history }
    public func trainedGraph() -> Graph { trainer.trainedGraph() }

    /// Trains up to `training.epochs` (or `stopAfterEpoch`), writing the checkpoint after every epoch.
    @discardableResult
    public func fit(_ data: DatasetSplits, stopAfterEpoch: Int? = nil) throws -> [EpochRecord] {
        trainSet = data.train
        epochOrder = nil
        stepsPerEpoch = try iterator(data.train, epoch: 0).batchCount
        let last = min(trainer.options.epochs, stopAfterEpoch ?? trainer.options.epochs)
        while trainer.completedEpochs < last {
            try trainer.fit(data, stopAfterEpoch: trainer.completedEpochs + 1)
            if let checkpointPath { try saveCheckpoint(to: checkpointPath) }
            if let r = trainer.history.last { epochObserver?(r) }
        }
        return trainer.history
    }

    /// Top-1 accuracy and loss at every trained bit-width, highest first.
    public func evaluateAllBits(_ data: Dataset) throws -> [BitEvaluation] {
        try joint.bits.map { BitEvaluation(bits: $0, evaluation: try trainer.evaluate(data, activeBits: $0)) }
    }

    // MARK: the per-batch work

    /// HASB: the bit-width of every sampler layer in sub-step `k` of `batch` (ties resolved).
    public func hasbLayerBits(batch: Int, subStep k: Int) -> [String: Int] {
        guard let s = hasb else { return [:] }
        let epoch = stepsPerEpoch > 0 ? batch / stepsPerEpoch : 0
        let drawn = s.sample(epoch: epoch, batch: batch, subStep: k)
        var out: [String: Int] = [:]
        for (i, n) in s.layers.enumerated() { out[n] = drawn[hasbTie[i]] }
        return out
    }

    private func batchStep(_ t: Trainer, _ batch: TrainingBatch) throws -> StepResult {
        if let hasb { return try hasbBatchStep(t, batch, hasb) }
        var teacher: Tensor?
        var accumulated: [String: Tensor] = [:]
        var top: StepResult?
        var pskd: (indices: [Int], targets: [Float])?
        for b in joint.bits {
            let (loss, logits, grads) = try pass(t, batch, bits: b, teacher: teacher, pskd: &pskd)
            if top == nil { top = StepResult(loss: Double(loss.loss), correct: loss.correct) }
            if joint.distillation == .progressive { teacher = logits }
            if joint.accumulate {
                try accumulate(&accumulated, grads, scaleWeight: joint.scaleRateMultiplier(bits: b))
            } else {
                try step(grads, stepBits: [b], scaleMultiplier: joint.scaleRateMultiplier(bits: b),
                         learningRate: batch.learningRate, batchIndex: batch.index)
            }
        }
        if joint.accumulate {
            // The shared scales' ALRS factors were applied to their gradient contributions.
            try step(accumulated, stepBits: joint.bits, scaleMultiplier: 1, learningRate: batch.learningRate,
                     batchIndex: batch.index)
        }
        return top ?? StepResult(loss: 0, correct: 0)
    }

    /// HASB (Algorithm A.3): one sub-step per bit-width, based at `joint.bits[k]`; every switchable layer runs at
    /// its sampled bit-width (weights and input activation alike; its BN row follows its weight bits, or with
    /// transitional BN the pair (previous layer's bits, its bits)), pinned
    /// layers and every other quant node at the base. Each sub-step steps the per-bit rows its assignment used, and
    /// each shared weight scale at the ALRS factor of its own layer's bit-width.
    private func hasbBatchStep(_ t: Trainer, _ batch: TrainingBatch, _ s: HASBSampler) throws -> StepResult {
        guard let graph = hasbGraph else { throw BitSwitchError(.internalError, "HASB step without its graph") }
        var teacher: Tensor?
        var top: StepResult?
        var pskd: (indices: [Int], targets: [Float])?
        for (k, base) in joint.bits.enumerated() {
            let layerBits = hasbLayerBits(batch: batch.index, subStep: k)
            var profile = Profile(defaultBits: base)
            for (n, b) in layerBits { profile.layers[n] = LayerBits(w: b, a: b) }
            let assignment = try profile.resolve(in: graph)
            let (loss, logits, grads) = try pass(t, batch, bits: base, assignment: assignment, teacher: teacher, pskd: &pskd)
            if top == nil { top = StepResult(loss: Double(loss.loss), correct: loss.correct) }
            if joint.distillation == .progressive { teacher = logits }
            let used = rows.rows(for: assignment)
            try step(grads, stepBits: [base], rows: { used[$0] ?? [] },
                     scaleBits: rows.scaleBits(for: assignment, top: joint.bits[0]),
                     scaleMultiplier: joint.scaleRateMultiplier(bits: base), learningRate: batch.learningRate,
                     batchIndex: batch.index, layerBits: layerBits)
        }
        return top ?? StepResult(loss: 0, correct: 0)
    }

    /// Forward at `bits` (or at `assignment`, a per-layer choice based at `bits`), the mode's loss, backward.
    /// Returns the loss, the (detached) logits and the gradients.
    private func pass(_ t: Trainer, _ batch: TrainingBatch, bits: Int, assignment: BitAssignment? = nil,
                      teacher: Tensor?, pskd: inout (indices: [Int], targets: [Float])?)
        throws -> (LossResult, Tensor, [String: Tensor]) {
        let assignment = assignment ?? .uniform(bits)
        if joint.distillation == .off || (joint.distillation == .progressive && teacher == nil) {
            let r = try t.lossAndGradients(batch, assignment: assignment, seedBits: bits)
            return (r.result, r.logits, r.gradients)
        }
        let ctx = TrainingContext(training: true, assignment: assignment,
                                  seed: SplitMix64.derive(t.seed, 2, UInt64(batch.index), UInt64(bits)))
        let fwd = try t.model.forward(feeds: [t.model.inputName: batch.x], context: ctx)
        guard let logits = fwd.value(t.model.logitsName) else {
            throw BitSwitchError(.training, "the forward pass did not compute the logits '\(t.model.logitsName)'")
        }
        let loss: LossResult
        if let teacher {
            loss = try Distillation.progressiveLoss(student: logits, teacher: teacher, labels: batch.labels,
                                                    alpha: joint.alpha, temperature: joint.temperature,
                                                    labelSmoothing: t.options.labelSmoothing)
        } else {
            if pskd == nil { pskd = try pskdTargets(t, batch, logits: logits) }
            var l = try Loss.softCrossEntropy(logits: logits, targets: pskd!.targets)
            l.correct = try Loss.correctCount(logits: logits, labels: batch.labels)
            loss = l
            if bits == joint.bits[0] { try recordPrediction(logits, indices: pskd!.indices) }
        }
        guard loss.loss.isFinite else {
            throw BitSwitchError(.training, "epoch \(t.position.epoch), step \(t.position.step): the loss became "
                                 + "\(loss.loss.isNaN ? "NaN" : "\(loss.loss)") (\(bits)-bit pass); lower the learning rate; training stopped, the "
                                 + "last checkpoint (if any) is kept from before this epoch")
        }
        let grads = try t.model.backward(fwd, seeds: [t.model.logitsName: loss.gradient], context: ctx)
        try t.checkGradients(grads, bits: bits)
        return (loss, logits, grads)
    }

    /// One optimizer update with `grads` (by real parameter name) for the rows of `stepBits`, the shared
    /// quantizer scales at `scaleMultiplier` × the rate.
    /// With `rows`, each per-bit parameter steps the rows it names (a per-layer assignment's) instead of
    /// `stepBits`'; with `scaleBits`, each shared weight scale trains at the ALRS factor of its own bit-width.
    func step(_ grads: [String: Tensor], stepBits: [Int], rows stepRows: ((String) -> [BitRows.RowKey])? = nil,
              scaleBits: [String: Int]? = nil, scaleMultiplier: Float, learningRate: Float,
              batchIndex: Int, layerBits: [String: Int] = [:]) throws {
        let t = trainer
        let opt = t.optimizer
        let savedGroups = opt.groups
        defer { if scaleBits != nil { opt.groups = savedGroups } }
        if let i = opt.groups.firstIndex(where: { $0.name == BitRows.scaleGroup }) {
            opt.groups[i].lrMultiplier = scaleMultiplier
            if let scaleBits {
                // Per-layer ALRS: the shared scale group splits by the bit-width of each scale's layer for this step.
                let grp = opt.groups[i]
                var byBits: [Int: [String]] = [:]
                for p in grp.parameters { byBits[scaleBits[p] ?? stepBits[0], default: []].append(p) }
                if byBits.count > 1 || byBits.keys.first.map({ joint.scaleRateMultiplier(bits: $0) != scaleMultiplier }) == true {
                    opt.groups.replaceSubrange(i...i, with: byBits.keys.sorted(by: >).map { b in
                        ParameterGroup(name: "\(BitRows.scaleGroup)(w\(b))", parameters: byBits[b] ?? [],
                                       lrMultiplier: joint.scaleRateMultiplier(bits: b))
                    })
                }
            }
        }
        var (params, g) = try stepRows.map { try rows.split(values: &t.model.values, gradients: grads, rows: $0) }
            ?? rows.split(values: &t.model.values, gradients: grads, stepBits: stepBits)
        if let maxNorm = t.options.gradientClipNorm { try clipGradientNorm(&g, maxNorm: maxNorm) }
        do {
            try opt.step(parameters: &params, gradients: g, learningRate: learningRate)
        } catch {
            try rows.merge(params, into: &t.model.values, stepBits: stepBits)
            throw error
        }
        try rows.merge(params, into: &t.model.values, stepBits: stepBits)
        if let stepObserver {
            var rates: [String: Float] = [:]
            for grp in opt.groups where grp.parameters.contains(where: { g[$0] != nil }) {
                rates[grp.name] = learningRate * grp.lrMultiplier
            }
            stepObserver(JointStepEvent(batchIndex: batchIndex, bits: stepBits, rates: rates,
                                        parameters: g.keys.sorted(), layerBits: layerBits))
        }
    }

    private func accumulate(_ acc: inout [String: Tensor], _ grads: [String: Tensor], scaleWeight: Float) throws {
        let scaled = Set(trainer.optimizer.groups.first(where: { $0.name == BitRows.scaleGroup })?.parameters ?? [])
        for (name, g) in grads {
            let w: Float = scaled.contains(name) ? scaleWeight : 1
            guard case .f32(let b) = g.storage else { throw BitSwitchError(.training, "gradient of '\(name)' is not float") }
            guard var old = acc.removeValue(forKey: name) else {
                acc[name] = w == 1 ? g : Tensor(shape: g.shape, floats: b.map { $0 * w })
                continue
            }
            guard case .f32(var a) = old.storage, a.count == b.count else {
                throw BitSwitchError(.internalError, "gradient sizes of '\(name)' differ between bit-widths")
            }
            old.storage = .f32([])
            for i in a.indices { a[i] += w * b[i] }
            old.storage = .f32(a)
            acc[name] = old
        }
    }

    // MARK: PS-KD

    /// The batch's sample indices (the float trainer's shuffle, reproduced) and PS-KD targets.
    private func pskdTargets(_ t: Trainer, _ batch: TrainingBatch, logits: Tensor) throws -> (indices: [Int], targets: [Float]) {
        guard let train = trainSet, stepsPerEpoch > 0 else { throw BitSwitchError(.internalError, "PS-KD outside fit") }
        let k = logits.count / max(1, batch.labels.count)
        if pskdPredictions.isEmpty {
            pskdClasses = k
            pskdPredictions = [Float](repeating: 0, count: train.count * k)
            for (i, y) in train.y.enumerated() where Int(y) >= 0 && Int(y) < k { pskdPredictions[i * k + Int(y)] = 1 }
        }
        guard k == pskdClasses, pskdPredictions.count == train.count * k else {
            throw BitSwitchError(.training, "PS-KD state holds \(pskdClasses) classes for \(pskdPredictions.count / max(1, pskdClasses)) samples; the model has \(k) classes and the data \(train.count) samples")
        }
        let epoch = batch.index / stepsPerEpoch, position = batch.index % stepsPerEpoch
        if epochOrder?.epoch != epoch { epochOrder = (epoch, try iterator(train, epoch: epoch).order) }
        let order = epochOrder!.order
        let start = position * t.options.batchSize
        let end = min(start + t.options.batchSize, order.count)
        let indices = start < end ? Array(order[start..<end]) : []
        guard indices.count == batch.labels.count,
              zip(indices, batch.labels).allSatisfy({ Int(train.y[$0]) == $1 }) else {
            throw BitSwitchError(.internalError, "PS-KD could not reproduce the samples of batch \(batch.index)")
        }
        var previous: [Float] = []
        previous.reserveCapacity(indices.count * k)
        for i in indices { previous += pskdPredictions[(i * k)..<((i + 1) * k)] }
        let alpha = Distillation.pskdAlpha(epoch: epoch, epochs: t.options.epochs, finalAlpha: joint.pskdFinalAlpha)
        return (indices, try Distillation.pskdTargets(labels: batch.labels, previous: previous, classes: k, alpha: alpha))
    }

    private func recordPrediction(_ logits: Tensor, indices: [Int]) throws {
        let p = try Distillation.softmaxRows(logits)
        let k = pskdClasses
        for (r, i) in indices.enumerated() {
            pskdPredictions.replaceSubrange((i * k)..<((i + 1) * k), with: p[(r * k)..<((r + 1) * k)])
        }
    }

    private func iterator(_ d: Dataset, epoch: Int) throws -> BatchIterator {
        let o = trainer.options
        do {
            return try BatchIterator(dataset: d, batchSize: o.batchSize, shuffle: true, seed: trainer.seed, epoch: epoch,
                                     dropLast: o.dropLast)
        } catch let e as DataError {
            throw BitSwitchError(.data, e.description)
        }
    }

    // MARK: checkpoints

    /// The float trainer's checkpoint plus the joint settings and, with PS-KD, the stored predictions.
    public func saveCheckpoint(to path: String) throws {
        // One atomic write: writing the float part first and then rewriting it left a non-joint checkpoint behind
        // when the run was killed between the two writes.
        var entries = trainer.checkpointEntries().sorted { $0.0 < $1.0 }
        entries.append(("joint/bits", Tensor(shape: [joint.bits.count], int64s: joint.bits.map { Int64($0) })))
        if let h = hasb { entries.append(("joint/hasb", Tensor(shape: [3], int64s: hasbSettings(h)))) }
        if !pskdPredictions.isEmpty {
            entries.append(("joint/pskd", Tensor(shape: [pskdPredictions.count / pskdClasses, pskdClasses],
                                                 floats: pskdPredictions)))
        }
        try Checkpoint.write(entries, to: path)
    }

    /// What makes HASB draws reproducible besides the step: seed, warm-up epochs, σ (its bit pattern).
    private func hasbSettings(_ h: HASBSampler) -> [Int64] {
        [Int64(bitPattern: h.seed), Int64(h.warmupEpochs), Int64(bitPattern: h.sigma.bitPattern)]
    }

    /// Restores a checkpoint of the same model and bit set; the next `fit` continues the run exactly.
    public func resume(from path: String) throws {
        let t = try Checkpoint.read(from: path)
        guard let bits = t["joint/bits"]?.ints, bits == joint.bits else {
            throw BitSwitchError(.training, "the checkpoint is not a joint run of bit-widths \(joint.bits)", file: path)
        }
        let saved = t["joint/hasb"]?.ints
        if let h = hasb {
            guard let saved else { throw BitSwitchError(.training, "the checkpoint is not a HASB run", file: path) }
            guard saved == hasbSettings(h).map({ Int($0) }) else {
                throw BitSwitchError(.training, "the checkpoint's HASB settings (seed, warm-up, σ) differ from this run's",
                                     file: path)
            }
        } else if saved != nil {
            throw BitSwitchError(.training, "the checkpoint is a HASB run; resume it with the same --mixed hasb settings", file: path)
        }
        try trainer.resume(from: path)
        pskdPredictions = []
        pskdClasses = 0
        if let p = t["joint/pskd"], p.rank == 2, case .f32(let a) = p.storage {
            pskdPredictions = a
            pskdClasses = p.shape[1]
        } else if joint.distillation == .pskd && trainer.completedEpochs > 0 {
            throw BitSwitchError(.training, "the checkpoint lacks the PS-KD predictions", file: path)
        }
    }
}
