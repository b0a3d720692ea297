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
    public init(graph: Graph, training: TrainingOptions, joint: JointTrainingOptions,
                progress: ProgressReporter = ProgressReporter()) throws {
        try joint.validate()
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

    private func batchStep(_ t: Trainer, _ batch: TrainingBatch) throws -> StepResult {
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

    /// Forward at `bits`, the mode's loss, backward. Returns the loss, the (detached) logits and the gradients.
    private func pass(_ t: Trainer, _ batch: TrainingBatch, bits: Int, teacher: Tensor?,
                      pskd: inout (indices: [Int], targets: [Float])?)
        throws -> (LossResult, Tensor, [String: Tensor]) {
        if joint.distillation == .off || (joint.distillation == .progressive && teacher == nil) {
            let r = try t.lossAndGradients(batch, activeBits: bits)
            return (r.result, r.logits, r.gradients)
        }
        let ctx = TrainingContext(training: true, activeBits: bits,
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
    func step(_ grads: [String: Tensor], stepBits: [Int], scaleMultiplier: Float, learningRate: Float,
              batchIndex: Int) throws {
        let t = trainer
        let opt = t.optimizer
        if let i = opt.groups.firstIndex(where: { $0.name == BitRows.scaleGroup }) { opt.groups[i].lrMultiplier = scaleMultiplier }
        var (params, g) = try rows.split(values: &t.model.values, gradients: grads, stepBits: stepBits)
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
                                        parameters: g.keys.sorted()))
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
        if !pskdPredictions.isEmpty {
            entries.append(("joint/pskd", Tensor(shape: [pskdPredictions.count / pskdClasses, pskdClasses],
                                                 floats: pskdPredictions)))
        }
        try Checkpoint.write(entries, to: path)
    }

    /// Restores a checkpoint of the same model and bit set; the next `fit` continues the run exactly.
    public func resume(from path: String) throws {
        let t = try Checkpoint.read(from: path)
        guard let bits = t["joint/bits"]?.ints, bits == joint.bits else {
            throw BitSwitchError(.training, "the checkpoint is not a joint run of bit-widths \(joint.bits)", file: path)
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
