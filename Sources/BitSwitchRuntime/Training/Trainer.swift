import BitSwitchData
import BitSwitchIR
import CKernels
import Foundation

public enum ScheduleKind: String, Sendable, CaseIterable {
    case cosine, step, none
}

/// Everything that decides a training run. The same options, seed and thread count give the same run, bit for bit.
public struct TrainingOptions: Sendable {
    public var epochs = 30
    public var batchSize = 128
    public var optimizer: OptimizerKind = .adam()
    public var learningRate: Float = 3e-3
    /// Applied to the weight group only (biases, BN affine and quantizer scales never decay).
    public var weightDecay: Float = 0
    public var schedule: ScheduleKind = .cosine
    /// For `.step`: multiply the rate by `stepGamma` every `stepEpochs` epochs.
    public var stepEpochs = 30
    public var stepGamma: Float = 0.1
    public var warmupEpochs = 0
    /// Linear warm-up in optimizer steps (replaces `warmupEpochs` when set).
    public var warmupSteps: Int? = nil
    /// Stop after this many optimizer steps (the schedule then spans them); nil: `epochs` full epochs.
    public var maxSteps: Int? = nil
    public var labelSmoothing: Float = 0
    public var gradientClipNorm: Float? = nil
    public var seed: UInt64 = 0
    /// BLAS and runtime threads; nil keeps the current setting.
    public var threads: Int? = nil
    public var augmentation: Augmentation? = nil
    public var normalization: Normalization? = nil
    public var dropLast = false
    /// Evaluate on the test split after every epoch (otherwise only after the last).
    public var evaluateEveryEpoch = true
    /// Written atomically after every epoch when set.
    public var checkpointPath: String? = nil
    /// Check every op's output and input gradient for NaN/Inf (slower); loss, gradients and weights are always
    /// checked once per step.
    public var detectAnomaly = false

    public init() {}
}

public struct EpochRecord: Sendable, Equatable {
    public var epoch: Int
    public var trainLoss: Double
    public var trainAccuracy: Double
    public var testLoss: Double?
    public var testAccuracy: Double?
    /// Learning rate of the last batch of the epoch.
    public var learningRate: Double
    public var seconds: Double
    public var samplesPerSecond: Double
}

public struct Evaluation: Sendable, Equatable {
    public var accuracy: Double
    public var loss: Double
    public var count: Int
    public init(accuracy: Double, loss: Double, count: Int) { self.accuracy = accuracy; self.loss = loss; self.count = count }
}

/// One mini-batch as the step function sees it.
public struct TrainingBatch {
    public var x: Tensor
    public var labels: [Int]
    /// Global batch counter (0-based, across epochs): seeds the step's random numbers.
    public var index: Int
    /// Scheduled learning rate for this batch, before group multipliers.
    public var learningRate: Float
    public init(x: Tensor, labels: [Int], index: Int, learningRate: Float) {
        self.x = x; self.labels = labels; self.index = index; self.learningRate = learningRate
    }
}

/// What a step reports for the running averages: the loss averaged over the batch and the top-1 hits.
public struct StepResult {
    public var loss: Double
    public var correct: Int
    public init(loss: Double, correct: Int) { self.loss = loss; self.correct = correct }
}

/// The float training loop: epochs of shuffled mini-batches, forward/backward/update, evaluation, checkpoints.
public final class Trainer {
    public let model: TrainingGraph
    public let optimizer: Optimizer
    public let options: TrainingOptions
    public let progress: ProgressReporter
    public private(set) var seed: UInt64
    public private(set) var completedEpochs = 0
    public private(set) var batchesSeen = 0
    public private(set) var history: [EpochRecord] = []
    /// The epoch and step (both from 1) being trained, for error messages.
    public internal(set) var position = (epoch: 0, step: 0)
    /// Replaces the default per-batch work (forward, loss, backward, one optimizer step); the multi-precision
    /// trainer runs one `standardStep` per bit-width here.
    public var batchStep: ((Trainer, TrainingBatch) throws -> StepResult)?

    public init(graph: Graph, options: TrainingOptions, groups: [ParameterGroup]? = nil,
                progress: ProgressReporter = ProgressReporter()) throws {
        guard options.epochs > 0 else { throw BitSwitchError(.training, "epochs must be positive, got \(options.epochs)") }
        guard options.batchSize > 0 else { throw BitSwitchError(.training, "batch size must be positive, got \(options.batchSize)") }
        guard options.learningRate > 0, options.learningRate.isFinite else {
            throw BitSwitchError(.training, "learning rate must be positive, got \(options.learningRate)")
        }
        guard options.weightDecay >= 0 else { throw BitSwitchError(.training, "weight decay must not be negative") }
        guard options.warmupEpochs >= 0, options.stepEpochs > 0 else {
            throw BitSwitchError(.training, "warm-up and step epochs must be non-negative and positive")
        }
        if let threads = options.threads {
            guard threads > 0 else { throw BitSwitchError(.training, "threads must be positive, got \(threads)") }
            setRuntimeThreads(threads)
        }
        // Every step frees and reallocates activation-sized buffers; keep them in the heap (no page faults).
        bs_configure_allocator()
        model = try TrainingGraph(graph: graph)
        guard !model.parameters.isEmpty else { throw BitSwitchError(.training, "the model has no trainable parameters") }
        optimizer = try Optimizer(kind: options.optimizer, groups: groups ?? model.defaultGroups(weightDecay: options.weightDecay))
        self.options = options
        self.progress = progress
        seed = options.seed
    }

    /// The learning-rate schedule for a run of `stepsPerEpoch` batches per epoch.
    public func schedule(stepsPerEpoch: Int) -> LearningRateSchedule {
        let decay: LearningRateSchedule.Decay
        switch options.schedule {
        case .cosine: decay = .cosine()
        case .step: decay = .step(every: options.stepEpochs * stepsPerEpoch, gamma: options.stepGamma)
        case .none: decay = .constant
        }
        return LearningRateSchedule(baseRate: options.learningRate, decay: decay,
                                    warmupSteps: options.warmupSteps ?? options.warmupEpochs * stepsPerEpoch,
                                    totalSteps: min(options.epochs * stepsPerEpoch, options.maxSteps ?? .max))
    }

    /// Forward, loss and gradients for one batch, without touching the parameters.
    /// - Parameter loss: replaces the cross-entropy (e.g. CE mixed with distillation against a detached teacher's
    ///   logits); it gets the logits and returns the loss with its gradient with respect to them.
    public func lossAndGradients(_ batch: TrainingBatch, activeBits: Int? = nil,
                                 loss customLoss: ((Tensor) throws -> LossResult)? = nil)
        throws -> (result: LossResult, logits: Tensor, gradients: [String: Tensor]) {
        try lossAndGradients(batch, assignment: .uniform(activeBits), seedBits: activeBits, loss: customLoss)
    }

    /// Forward, loss and gradients for one batch with every quant-dialect node at its bit-width in `assignment`
    /// (per-layer mixed precision). `seedBits` picks the step's random stream (dropout) and names the pass in
    /// errors; with a uniform assignment and `seedBits` = its bit-width this is `lossAndGradients(_:activeBits:)`.
    public func lossAndGradients(_ batch: TrainingBatch, assignment: BitAssignment, seedBits: Int?,
                                 loss customLoss: ((Tensor) throws -> LossResult)? = nil)
        throws -> (result: LossResult, logits: Tensor, gradients: [String: Tensor]) {
        let activeBits = seedBits
        let ctx = TrainingContext(training: true, assignment: assignment,
                                  seed: SplitMix64.derive(seed, 2, UInt64(batch.index), UInt64(activeBits ?? 0)))
        let pass = try model.forward(feeds: [model.inputName: batch.x], context: ctx)
        guard let logits = pass.value(model.logitsName) else {
            throw BitSwitchError(.training, "the forward pass did not compute the logits '\(model.logitsName)'")
        }
        let loss = try customLoss?(logits)
            ?? Loss.crossEntropy(logits: logits, labels: batch.labels, labelSmoothing: options.labelSmoothing)
        guard loss.loss.isFinite else {
            throw anomaly("the loss became \(loss.loss.isNaN ? "NaN" : "\(loss.loss)")" + (activeBits.map { " (\($0)-bit pass)" } ?? "")
                          + "; lower the learning rate")
        }
        let grads = try model.backward(pass, seeds: [model.logitsName: loss.gradient], context: ctx)
        try checkGradients(grads, bits: activeBits)
        return (loss, logits, grads)
    }

    /// Applies gradients with the optimizer (after clipping, when configured).
    public func apply(_ gradients: [String: Tensor], learningRate: Float) throws {
        var g = gradients
        if let maxNorm = options.gradientClipNorm { try clipGradientNorm(&g, maxNorm: maxNorm) }
        try optimizer.step(parameters: &model.values, gradients: g, learningRate: learningRate)
    }

    /// The default step: forward, cross-entropy, backward, one optimizer update.
    public func standardStep(_ batch: TrainingBatch, activeBits: Int? = nil) throws -> StepResult {
        // The forward pass holds references to the parameters; it must be gone before the in-place update.
        let (result, _, grads) = try lossAndGradients(batch, activeBits: activeBits)
        try apply(grads, learningRate: batch.learningRate)
        return StepResult(loss: Double(result.loss), correct: result.correct)
    }

    /// Trains from `completedEpochs` up to `options.epochs` (or `stopAfterEpoch`), evaluating on the test split.
    @discardableResult
    public func fit(_ data: DatasetSplits, stopAfterEpoch: Int? = nil) throws -> [EpochRecord] {
        try checkCompatible(data.train)
        let probe = try iterator(data.train, epoch: 0, shuffle: true)
        let stepsPerEpoch = probe.batchCount
        guard stepsPerEpoch > 0 else { throw BitSwitchError(.data, "the training split has no full batch") }
        let sched = schedule(stepsPerEpoch: stepsPerEpoch)
        if let m = options.maxSteps, m <= 0 { throw BitSwitchError(.training, "steps must be positive, got \(m)") }
        let stepLimit = options.maxSteps ?? .max
        let last = min(options.epochs, stopAfterEpoch ?? options.epochs)
        let runStart = ProcessInfo.processInfo.systemUptime
        var runBatches = 0
        for (name, d) in [("training", data.train), ("test", data.test)] {
            if let i = d.x.firstIndex(where: { !$0.isFinite }) {
                let n = max(d.sampleSize, 1)
                throw BitSwitchError(.data, "the \(name) data hold \(d.x[i]) at sample \(i / n), element \(i % n); "
                                     + "nothing was trained", file: d.xFile.isEmpty ? nil : d.xFile)
            }
        }
        model.detectAnomaly = options.detectAnomaly
        while completedEpochs < last {
            let epoch = completedEpochs
            let start = ProcessInfo.processInfo.systemUptime
            var lossSum = 0.0, correct = 0, seen = 0, seenLabels = 0, step = 0
            var lr: Float = 0
            for b in try iterator(data.train, epoch: epoch, shuffle: true) {
                if batchesSeen >= stepLimit { break }
                lr = sched.rate(at: batchesSeen)
                let tb = TrainingBatch(x: model.inputTensor([b.size] + data.train.sampleShape, b.x),
                                       labels: b.y.map { Int($0) }, index: batchesSeen, learningRate: lr)
                position = (epoch + 1, step + 1)
                let r: StepResult
                do { r = try batchStep?(self, tb) ?? standardStep(tb) } catch var e as BitSwitchError
                    where e.message.hasPrefix("--detect-anomaly") {
                    e.message = "epoch \(epoch + 1), step \(step + 1): " + e.message
                    throw e
                }
                try checkWeights()
                lossSum += r.loss * Double(b.size)
                correct += r.correct
                seen += b.size
                seenLabels += b.y.count
                step += 1
                batchesSeen += 1
                runBatches += 1
                let now = ProcessInfo.processInfo.systemUptime
                let perBatch = (now - runStart) / Double(runBatches)
                let remaining = min((last - epoch - 1) * stepsPerEpoch + (stepsPerEpoch - step), stepLimit - batchesSeen)
                progress.batch(epoch: epoch + 1, epochs: options.epochs, step: step, steps: min(stepsPerEpoch, stepLimit),
                               loss: lossSum / Double(seen), accuracy: Double(correct) / Double(seenLabels),
                               samplesPerSecond: Double(seen) / max(now - start, 1e-9),
                               eta: perBatch * Double(remaining))
            }
            let trainSeconds = ProcessInfo.processInfo.systemUptime - start
            let stepsDone = batchesSeen >= stepLimit
            var record = EpochRecord(epoch: epoch + 1, trainLoss: lossSum / Double(max(seen, 1)),
                                     trainAccuracy: Double(correct) / Double(max(seenLabels, 1)), testLoss: nil,
                                     testAccuracy: nil, learningRate: Double(lr), seconds: trainSeconds,
                                     samplesPerSecond: Double(seen) / max(trainSeconds, 1e-9))
            if options.evaluateEveryEpoch || epoch + 1 == options.epochs || stepsDone {
                let e = try evaluate(data.test)
                record.testLoss = e.loss
                record.testAccuracy = e.accuracy
            }
            history.append(record)
            // Reaching the step limit ends the run: the partial epoch counts as the last one.
            completedEpochs = stepsDone ? options.epochs : completedEpochs + 1
            progress.epochDone(record, epochs: options.epochs)
            if let path = options.checkpointPath { try saveCheckpoint(to: path) }
        }
        return history
    }

    /// Top-1 accuracy and mean cross-entropy (no label smoothing) in evaluation mode.
    public func evaluate(_ data: Dataset, batchSize: Int? = nil, activeBits: Int? = nil) throws -> Evaluation {
        try evaluateModel(model, on: data, batchSize: batchSize ?? max(options.batchSize, 256),
                          normalization: options.normalization, activeBits: activeBits)
    }

    /// The graph with trained parameters and running statistics as initializers.
    public func trainedGraph() -> Graph { model.exportGraph() }

    // MARK: checkpoints

    public func saveCheckpoint(to path: String) throws {
        try Checkpoint.write(checkpointEntries(), to: path)
    }

    /// What `saveCheckpoint` writes; a wrapping trainer adds its own entries and writes them in one atomic write.
    public func checkpointEntries() -> [(String, Tensor)] {
        // Constants of other element types (a boolean attention mask) never change and are not stored.
        var entries: [(String, Tensor)] = model.graph.initializerOrder.compactMap { n in
            model.values[n].flatMap { Trainer.checkpointed($0) ? ("value/\(n)", $0) : nil }
        }
        entries += optimizer.stateTensors().map { ("optimizer/\($0.0)", $0.1) }
        entries.append(("meta/epoch", Tensor(shape: [], int64s: [Int64(completedEpochs)])))
        entries.append(("meta/batches", Tensor(shape: [], int64s: [Int64(batchesSeen)])))
        entries.append(("meta/seed", Tensor(shape: [], int64s: [Int64(bitPattern: seed)])))
        // Doubles as their bit patterns, so a resumed run reports the same history exactly.
        let rows = history.flatMap { r -> [Int64] in
            [Double(r.epoch), r.trainLoss, r.trainAccuracy, r.testLoss ?? .nan, r.testAccuracy ?? .nan, r.learningRate,
             r.seconds, r.samplesPerSecond].map { Int64(bitPattern: $0.bitPattern) }
        }
        entries.append(("meta/history", Tensor(shape: [history.count, 8], int64s: rows)))
        return entries
    }

    /// Whether a checkpoint stores this initializer (f32 and i64; other constants never change).
    static func checkpointed(_ t: Tensor) -> Bool { t.dtype == .f32 || t.dtype == .i64 }

    /// Restores parameters, state, optimizer moments and counters; the next `fit` continues where the
    /// checkpointed run stopped and reproduces it exactly.
    public func resume(from path: String) throws {
        let t = try Checkpoint.read(from: path)
        for name in model.graph.initializerOrder where model.values[name].map(Trainer.checkpointed) ?? true {
            guard let v = t["value/\(name)"] else {
                throw BitSwitchError(.training, "checkpoint has no value for initializer '\(name)'; it belongs to another model", file: path)
            }
            guard let old = model.values[name], old.shape == v.shape, old.dtype == v.dtype else {
                throw BitSwitchError(.training, "checkpoint value of '\(name)' has type \(v.type), the model \(model.values[name]?.type.description ?? "none")", file: path)
            }
        }
        for name in model.graph.initializerOrder { if let v = t["value/\(name)"] { model.values[name] = v } }
        var opt: [String: Tensor] = [:]
        for (k, v) in t where k.hasPrefix("optimizer/") { opt[String(k.dropFirst("optimizer/".count))] = v }
        try optimizer.loadState(opt)
        guard let e = t["meta/epoch"]?.ints.first, let b = t["meta/batches"]?.ints.first,
              case .i64(let s)? = t["meta/seed"]?.storage, let sd = s.first else {
            throw BitSwitchError(.parse, "checkpoint lacks its epoch/batch/seed counters", file: path)
        }
        completedEpochs = e
        batchesSeen = b
        if UInt64(bitPattern: sd) != seed {
            progress.message("resuming with the checkpoint's seed \(UInt64(bitPattern: sd)) (not \(seed))")
        }
        seed = UInt64(bitPattern: sd)
        history = []
        if let h = t["meta/history"], h.rank == 2, h.shape[1] == 8, case .i64(let a) = h.storage {
            for r in 0..<h.shape[0] {
                let v = (0..<8).map { Double(bitPattern: UInt64(bitPattern: a[r * 8 + $0])) }
                history.append(EpochRecord(epoch: Int(v[0]), trainLoss: v[1], trainAccuracy: v[2],
                                           testLoss: v[3].isNaN ? nil : v[3], testAccuracy: v[4].isNaN ? nil : v[4],
                                           learningRate: v[5], seconds: v[6], samplesPerSecond: v[7]))
            }
        }
    }

    // MARK: helpers

    private func iterator(_ d: Dataset, epoch: Int, shuffle: Bool) throws -> BatchIterator {
        do {
            return try BatchIterator(dataset: d, batchSize: options.batchSize, shuffle: shuffle, seed: seed, epoch: epoch,
                                     dropLast: options.dropLast, augmentation: options.augmentation,
                                     normalization: options.normalization)
        } catch let e as DataError {
            throw BitSwitchError(.data, e.description)
        }
    }

    private func checkCompatible(_ d: Dataset) throws {
        try checkInputShape(model, sampleShape: d.sampleShape)
    }
}

func checkInputShape(_ model: TrainingGraph, sampleShape: [Int]) throws {
    guard let info = model.graph.inputs.first(where: { $0.name == model.inputName }), let dims = info.type.shape else { return }
    let expected = dims.dropFirst()
    guard expected.count == sampleShape.count,
          zip(expected, sampleShape).allSatisfy({ $0.value == nil || $0.value == $1 }) else {
        throw BitSwitchError(.data, "the data's samples have shape \(sampleShape) but the model's input '\(info.name)' is \(info.type)")
    }
}

/// Evaluation of any training graph on a dataset (also used by `bitswitch eval`).
public func evaluateModel(_ model: TrainingGraph, on data: Dataset, batchSize: Int = 256,
                          normalization: Normalization? = nil, activeBits: Int? = nil,
                          threads: Int? = nil) throws -> Evaluation {
    try evaluateModel(model, on: data, batchSize: batchSize, normalization: normalization,
                      assignment: .uniform(activeBits), threads: threads)
}

/// The same at per-node bit-widths (a resolved `Profile`).
public func evaluateModel(_ model: TrainingGraph, on data: Dataset, batchSize: Int = 256,
                          normalization: Normalization? = nil, assignment: BitAssignment,
                          threads: Int? = nil) throws -> Evaluation {
    if let threads { setRuntimeThreads(threads) }
    try checkInputShape(model, sampleShape: data.sampleShape)
    guard data.count > 0 else { throw BitSwitchError(.data, "the evaluation split is empty") }
    let it: BatchIterator
    do {
        it = try BatchIterator(dataset: data, batchSize: batchSize, shuffle: false, seed: 0, normalization: normalization)
    } catch let e as DataError {
        throw BitSwitchError(.data, e.description)
    }
    var lossSum = 0.0, correct = 0
    for b in it {
        let ctx = TrainingContext(training: false, assignment: assignment)
        let pass = try model.forward(feeds: [model.inputName: model.inputTensor([b.size] + data.sampleShape, b.x)], context: ctx)
        guard let logits = pass.value(model.logitsName) else {
            throw BitSwitchError(.training, "the forward pass did not compute the logits '\(model.logitsName)'")
        }
        let r = try Loss.crossEntropy(logits: logits, labels: b.y.map { Int($0) })
        lossSum += Double(r.loss) * Double(b.size)
        correct += r.correct
    }
    return Evaluation(accuracy: Double(correct) / Double(data.count * data.labelsPerSample), loss: lossSum / Double(data.count),
                      count: data.count)
}
