import ArgumentParser
import BitSwitchData
import BitSwitchIR
import BitSwitchONNX
import BitSwitchQuant
import BitSwitchRuntime
import Foundation

extension OptimizerKind {
    static func parse(_ name: String, momentum: Float, nesterov: Bool) throws -> OptimizerKind {
        switch name.lowercased() {
        case "sgd": return .sgd(momentum: momentum, nesterov: nesterov)
        case "adam": return .adam()
        case "adamw": return .adamW()
        default: throw BitSwitchError(.training, "unknown optimizer '\(name)' (sgd, adam, adamw)")
        }
    }
}

/// Loads a dataset directory, turning the data module's errors into BitSwitch errors.
func loadDataset(_ dir: String) throws -> DatasetSplits {
    do { return try DatasetSplits.load(directory: dir) } catch let e as DataError {
        throw BitSwitchError(.data, e.message, file: e.file)
    }
}

/// Checks a dataset against the model before any step runs: the samples' shape must fit the model's input and every
/// label must be one of the model's classes. Errors name the data file.
func checkDataset(_ splits: DatasetSplits, fits graph: Graph, model: String) throws {
    for d in [splits.train, splits.test] {
        guard let input = graph.inputs.first, let dims = input.type.shape else { break }
        let expected = Array(dims.dropFirst())
        let fits = expected.count == d.sampleShape.count
            && zip(expected, d.sampleShape).allSatisfy { if case .known(let k) = $0 { return k == $1 }; return true }
        if !fits {
            throw BitSwitchError(.data, "samples have shape \(d.sampleShape) (rank \(d.sampleShape.count + 1) with the "
                                 + "batch axis) but the model's input '\(input.name)' is \(input.type) "
                                 + "(\(model))", file: d.xFile.isEmpty ? nil : d.xFile)
        }
        // [N, K] logits: one class per sample; [N, T, V] logits with per-position labels: V classes.
        guard let output = graph.outputs.first, let outDims = graph.type(of: output.name)?.shape ?? output.type.shape,
              outDims.count == (d.labelShape.isEmpty ? 2 : 3), let last = outDims.last,
              case .known(let classes) = last else { continue }
        if let bad = d.y.firstIndex(where: { Int($0) >= classes }) {
            throw BitSwitchError(.data, "label \(d.y[bad]) at index \(bad) is outside the model's \(classes) classes "
                                 + "(output '\(output.name)' of \(model))", file: d.yFile.isEmpty ? nil : d.yFile)
        }
    }
}

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a float model's initializers on a dataset and write the trained ONNX model.",
        discussion: """
            The loss is cross-entropy on the graph's logits output. A checkpoint (parameters, optimizer state, \
            counters) is written atomically after every epoch to --checkpoint (default: OUTPUT.ckpt); --resume \
            continues from it and reproduces the uninterrupted run exactly. Same seed and thread count, same result.

            With --bits, the model is quantized first (insert-fake-quant, unless it already carries quantizers) and \
            trained jointly at every bit-width (METHOD.md §4; recipe defaults lr 5e-4, weight decay 5e-5); OUTPUT is \
            the stored INT8 model, and the accuracy at every bit-width is printed. --bits 4 alone is a single-precision \
            LSQ run; --ptq calibrates instead of training.

            --mixed hasb --traces T.json continues a multi-precision model with HASB (METHOD.md §5): per mini-batch one \
            sub-step based at each bit-width, in which every switchable layer leaves the base with probability \
            σ_e = σ·(epoch+1)/epochs and draws its bit-width from its Hessian-aware roulette. --transitional-bn \
            gives the BN after each switchable layer one row per (previous layer's bits, own bits) pair.
            """)

    @Argument(help: "The float model (.onnx).") var model: String
    @OptionGroup var importFlags: ImportFlags
    @Option(help: ArgumentHelp("Dataset directory (x_train.npy/y_train.npy/x_test.npy/y_test.npy, MNIST IDX or CIFAR-10 binary), or a UTF-8 text file for a language model (byte tokens, next-token windows). A model with several inputs (a transformer encoder) takes one .npy array per input, samples on axis 0, for --ptq: repeat --data NAME=FILE (e.g. --data input_ids=ids.npy --data attention_mask=mask.npy), or give a directory of <input name>.npy files.", valueName: "DIR|FILE|NAME=FILE"))
    var data: [String] = []
    @OptionGroup var textFlags: TextDataFlags
    @Option(help: "Stop after this many optimizer steps (the schedule spans them); default: --epochs full epochs.")
    var steps: Int?
    @Option(help: "Linear warm-up in optimizer steps (instead of --warmup epochs).") var warmupSteps: Int?
    @Option(help: "Without a terminal: a progress line every this many steps.") var logEvery: Int?
    @Option(name: [.short, .customLong("output")], help: "Where to write the trained model (.onnx).") var output: String
    @Option(help: "Epochs.") var epochs = 40
    @Option(help: "Mini-batch size.") var batch = 128
    @Option(help: "sgd, adam or adamw.") var optimizer = "adam"
    @Option(help: "Base learning rate (default: 3e-3 for adam/adamw, 0.1 for sgd; 5e-4 with --bits).") var lr: Float?
    @Option(help: "SGD momentum.") var momentum: Float = 0.9
    @Flag(help: "Nesterov momentum (SGD).") var nesterov = false
    @Option(help: "Weight decay of the weights (biases and BN affine never decay; default 0, 5e-5 with --bits).")
    var weightDecay: Float?
    @Option(help: "cosine, step or none.") var schedule = "cosine"
    @Option(help: "For --schedule step: decay every this many epochs.") var stepEpochs = 30
    @Option(help: "For --schedule step: decay factor.") var gamma: Float = 0.1
    @Option(help: "Linear warm-up epochs.") var warmup = 0
    @Option(help: "Label smoothing of the cross-entropy.") var labelSmoothing: Float = 0
    @Option(help: "Clip gradients to this global L2 norm.") var clipNorm: Float?
    @Option(help: "Random augmentation: random-crop padding in pixels (0 = off).") var augmentPad = 0
    @Flag(help: "Random horizontal flips (images only).") var augmentFlip = false
    @Option(help: "Random seed (shuffling, augmentation, dropout).") var seed: UInt64 = 0
    @Option(help: "Threads for BLAS and the runtime's loops.") var threads: Int?
    @Option(help: "Checkpoint path (default: OUTPUT.ckpt).") var checkpoint: String?
    @Flag(help: "Continue from the checkpoint.") var resume = false
    @Flag(help: ArgumentHelp("Check every op's output and every input gradient for NaN/Inf and stop at the first, naming "
                             + "the node (slower; loss, gradients and weights are always checked after every step)."))
    var detectAnomaly = false
    @Flag(help: "No progress output.") var quiet = false
    @Option(help: .hidden) var stopAfterEpoch: Int?
    @Option(help: "Write the final accuracy (per bit-width with --bits) and timings as JSON to this file.")
    var metrics: String?

    // Multi-precision quantization-aware training
    @Option(help: "Train jointly at these bit-widths, e.g. 8,6,4,2 or 4,3,2 (one value: single-precision LSQ).")
    var bits: String?
    @Option(help: "ALRS of the quantizer-scale learning rate: off, fixed, or weights (weight scales only).")
    var alrs = "fixed"
    @Option(help: "Distillation between bit-widths: off, progressive or pskd.") var kd = "off"
    @Option(help: "Progressive KD: weight of the distillation term.") var kdAlpha: Float = 0.3
    @Option(help: "Progressive KD: temperature.") var kdTemperature: Float = 2
    @Option(help: "First and last layer: int8 (pinned at 8 bits), float, switch (like the rest) or head-float (only the last stays float); auto: head-float for a token model (embedding + head), else int8.")
    var firstLast = "auto"
    @Flag(help: "Transformers: activation quantizers on both operands of the attention products (Q·Kᵀ, P·V).")
    var quantizeAttention = false
    @Flag(help: "Transformers: quantize the embedding table (Double Rounding, one scale per row).")
    var quantizeEmbedding = false
    @Flag(help: "Transformers: activation quantizers on the inputs of the LayerNorms.") var quantizeNorms = false
    @Flag(help: "Activation quantizers on the inputs of the non-linearities (Gelu, Softmax, ...).")
    var quantizeNonLinearities = false
    @Flag(help: "Transformers: one LayerNorm affine (scale, bias) per bit-width, the analogue of switchable BN.")
    var switchableLayernorm = false
    @Option(help: "Stored integer width of the switching layers: 8, or top (the highest trained bit-width; lossier).")
    var storeBits = "8"
    @Flag(help: "Sum the gradients of all bit-widths and take one optimizer step per batch.") var accumulate = false
    @Flag(help: "Exact chain-rule scale gradient (with the 2^Δ factor) instead of the reference form.")
    var exactGradient = false
    @Flag(help: "Post-training quantization: calibrate activation scales, no training.") var ptq = false
    @Option(help: "PTQ: training samples used to calibrate the activation scales.") var calibrationSamples = 512
    @Option(help: ArgumentHelp("PTQ: percentile (the 0.1–99.9 percentile range fits each quantizer's integer range; outliers clip), minmax (the whole observed range fits, as onnxruntime's MinMax calibration) or mse (the scale with the least squared quantization error).", valueName: "percentile|minmax|mse"))
    var calibration = "percentile"

    // Mixed precision: HASB supernet training (METHOD.md §5)
    @Option(help: "hasb: per-layer Hessian-aware stochastic bit-switching from a multi-precision model (needs --traces).")
    var mixed: String?
    @Option(help: "HASB: per-layer Hessian traces (.json from bitswitch hessian).") var traces: String?
    @Option(help: "HASB: σ, the final probability that a layer leaves the sub-step's base bit-width.") var sigma = 0.5
    @Option(help: "HASB: epochs at σ_e = 0 (plain joint training) before the layers start switching.")
    var warmupEpochs = 0
    @Flag(help: "HASB: transitional BN — the BN after a switchable layer keeps one row per (previous layer's bits, own bits) pair, each starting as the own-bits row.")
    var transitionalBn = false

    func run() throws {
        var graph = try ONNXImporter.importModel(path: model, options: importFlags.options)
        if MultiInputData.applies(data, graph: graph) { return try runMultiInputPTQ(graph) }
        guard data.count == 1 else {
            throw BitSwitchError(.data, data.isEmpty ? "give the training data with --data"
                : "--data takes one dataset directory or text file (several --data NAME=FILE name the inputs of a "
                  + "model with several inputs: \(MultiInputData.dataInputs(graph).map(\.name).joined(separator: ", ")))",
                file: model)
        }
        let data = self.data[0]
        let splits = try loadData(data, graph: graph, model: model, text: textFlags)
        try checkDataset(splits, fits: graph, model: model)
        // A model exported with a fixed batch of 1 is made batchable (training needs batches; --ptq can run one
        // sample at a time).
        let mode = try prepareModel(&graph, file: model, sampleShape: splits.train.sampleShape, quiet: quiet)
        if !ptq { try requireBatches(mode, file: model) }
        if let x = graph.inputs.first {
            let b = ptq ? (mode.requiredBatch ?? 64) : batch
            let bindings = MemoryEstimate.bindings(graph, inputShapes: [x.name: [b] + splits.train.sampleShape])
            let estimate = ptq ? MemoryEstimate.inference(graph, bindings: bindings)
                : MemoryEstimate.training(graph, bindings: bindings)
            try estimate.check(maxMemory: importFlags.maxMemory,
                               what: ptq ? "calibrating the model at batch \(b)" : "training the model at batch \(b)",
                               file: model)
        }
        if transitionalBn && mixed == nil {
            throw BitSwitchError(.training, "--transitional-bn is an option of HASB training (--mixed hasb)")
        }
        if mixed != nil && (bits == nil || ptq) {
            throw BitSwitchError(.training, "--mixed hasb trains a multi-precision model: give its bit set with --bits (e.g. 8,6,4,2)")
        }
        if bits != nil || ptq { return try runQuantized(graph, splits, batchMode: mode) }
        var base = TrainingOptions()
        base.epochs = epochs
        if let steps, steps > 0 {
            // --steps decides the length: as many epochs as those steps touch (the last one partial).
            let perEpoch = max(1, (splits.train.count + batch - 1) / max(1, batch))
            base.epochs = (steps + perEpoch - 1) / perEpoch
        }
        let o = try trainingOptions(base, defaultLR: { $0.name == "sgd" ? 0.1 : 3e-3 }, defaultWeightDecay: 0)

        let trainer: Trainer
        let progress = ProgressReporter(style: quiet ? .silent : nil)
        progress.logEverySteps = logEvery
        do {
            trainer = try Trainer(graph: graph, options: o, progress: progress)
        } catch { throw error.bitswitchLocated(file: model) }
        try resumeIfAsked(o) { try trainer.resume(from: $0); return trainer.completedEpochs }
        let start = ProcessInfo.processInfo.systemUptime, cpuStart = processCPUSeconds()
        try trainer.fit(splits, stopAfterEpoch: stopAfterEpoch)
        let seconds = ProcessInfo.processInfo.systemUptime - start, cpuSeconds = processCPUSeconds() - cpuStart
        try ONNXExporter.write(trainer.trainedGraph(), to: output)
        let e: Evaluation
        if let last = trainer.history.last, let acc = last.testAccuracy, let loss = last.testLoss {
            e = Evaluation(accuracy: acc, loss: loss, count: splits.test.count)
        } else {
            e = try trainer.evaluate(splits.test)
        }
        if !splits.test.labelShape.isEmpty {
            print(languageModelLine(e.loss, accuracy: e.accuracy, data: data))
            // CPU time too: on a shared machine the wall clock says more about the neighbours (includes evaluation).
            let steps = Double(max(1, trainer.batchesSeen))
            print(String(format: "trained %d steps in %.1f s (%.3f s/step wall, %.3f s/step CPU, with the evaluation) → %@",
                         trainer.batchesSeen, seconds, seconds / steps, cpuSeconds / steps, output))
        } else {
            print(String(format: "test top-1 %.2f%% (loss %.4f) after %d epochs, %.1f s → %@",
                         100 * e.accuracy, e.loss, trainer.completedEpochs, seconds, output))
        }
        if let metrics {
            try writeMetrics(metrics, top1: e.accuracy, loss: e.loss, rows: [], seconds: seconds, history: trainer.history)
        }
    }
}

extension TrainCommand {
    /// --bits / --ptq: quantize (unless the model already is), train jointly or calibrate, store INT8, evaluate the
    /// written file at every bit-width.
    func runQuantized(_ graph: Graph, _ splits: DatasetSplits, batchMode: BatchMode) throws {
        registerKernels()
        guard let firstLastPolicy = firstLast == "auto" ? FirstLastPolicy.automatic(for: graph)
                : FirstLastPolicy(rawValue: firstLast) else {
            throw BitSwitchError(.training, "unknown --first-last '\(firstLast)' (auto, int8, float, switch, head-float)")
        }
        guard let storePolicy = StoreBitsPolicy(rawValue: storeBits) else {
            throw BitSwitchError(.training, "unknown --store-bits '\(storeBits)' (8, top)")
        }
        let modelBits = graph.nodes.contains { $0.op.domain == Op.bitswitchDomain } ? try trainedBitWidths(graph) : nil
        let requested = try bits.flatMap(parseBitsOption)
        guard let bitSet = requested ?? modelBits else {
            throw BitSwitchError(.training, "--ptq on a float model needs --bits")
        }
        var g = graph
        var sampler: HASBSampler?
        if let mixed {
            guard mixed == "hasb" else { throw BitSwitchError(.training, "unknown --mixed '\(mixed)' (hasb)") }
            guard let traces else { throw BitSwitchError(.training, "--mixed hasb needs --traces TRACES.json (bitswitch hessian)") }
            guard modelBits != nil else {
                throw BitSwitchError(.training, "--mixed hasb starts from a multi-precision model; this one has no quantizers "
                    + "(train it with --bits \(bitSet.map(String.init).joined(separator: ",")) first)", file: model)
            }
            g = try unstoreQuantized(g)
            if transitionalBn {
                let (t, changed) = try makeTransitionalBatchNorms(g)
                g = t
                if !quiet {
                    FileHandle.standardError.write(Data(("transitional BN: \(changed.count) BatchNorms get one row per "
                        + "(previous, own) pair of bit-widths\n").utf8))
                }
            }
            do {
                sampler = try makeHASBSampler(graph: g, traces: try HessianTraces.load(path: traces), bits: bitSet,
                                              epochs: epochs, seed: seed, sigma: sigma, warmupEpochs: warmupEpochs,
                                              tracesFile: traces)
            } catch let e as BitSwitchError { throw e.located(file: model) }
        }
        if let modelBits {
            guard requested == nil || Set(bitSet) == Set(modelBits) else {
                throw BitSwitchError(.training, "the model is already quantized for bit-widths \(modelBits), not \(bitSet)",
                                     file: model)
            }
        } else {
            let log: (String) -> Void = { line in if !quiet { FileHandle.standardError.write(Data((line + "\n").utf8)) } }
            do {
                try insertFakeQuant(&g, options: FakeQuantOptions(bits: bitSet, firstLast: firstLastPolicy,
                                                                  storeBits: storePolicy, exactGradient: exactGradient,
                                                                  attentionProducts: quantizeAttention,
                                                                  embedding: quantizeEmbedding, norms: quantizeNorms,
                                                                  nonLinearities: quantizeNonLinearities,
                                                                  switchableLayerNorm: switchableLayernorm),
                                    log: log)
            } catch { throw error.bitswitchLocated(file: model) }
        }
        let start = ProcessInfo.processInfo.systemUptime
        var history: [EpochRecord] = []
        if ptq {
            if let threads { guard threads > 0 else { throw BitSwitchError(.training, "threads must be positive") } }
            setRuntimeThreads(threads)
            try calibrateActivationScales(&g, data: splits.train, samples: calibrationSamples, seed: seed,
                                          chunkSize: batchMode.requiredBatch ?? 64, method: try calibrationMethod())
        } else {
            var j = try JointTrainingOptions(bits: bitSet)
            guard let a = ALRSMode(rawValue: alrs) else { throw BitSwitchError(.training, "unknown --alrs '\(alrs)' (off, fixed, weights)") }
            guard let k = DistillationMode(rawValue: kd) else {
                throw BitSwitchError(.training, "unknown --kd '\(kd)' (off, progressive, pskd)")
            }
            j.alrs = a
            j.distillation = k
            j.alpha = kdAlpha
            j.temperature = kdTemperature
            j.accumulate = accumulate
            let o = try trainingOptions(TrainingOptions.quantizationRecipe(epochs: epochs),
                                        defaultLR: { $0.name == "sgd" ? 0.01 : 5e-4 }, defaultWeightDecay: 5e-5)
            let trainer: JointTrainer
            do {
                trainer = try JointTrainer(graph: g, training: o, joint: j, hasb: sampler,
                                           progress: ProgressReporter(style: quiet ? .silent : nil))
            } catch { throw error.bitswitchLocated(file: model) }
            try resumeIfAsked(o) { try trainer.resume(from: $0); return trainer.completedEpochs }
            try trainer.fit(splits, stopAfterEpoch: stopAfterEpoch)
            history = trainer.history
            g = trainer.trainedGraph()
        }
        let seconds = ProcessInfo.processInfo.systemUptime - start
        try ONNXExporter.write(try storeQuantized(g), to: output)
        // The table comes from the written file: what a user reloads is what is reported.
        let rows = try evaluateAllBits(graph: try ONNXImporter.importModel(path: output, options: importFlags.options),
                                       data: splits.test, batchSize: batchMode.requiredBatch ?? 256, threads: threads)
        print(splits.test.labelShape.isEmpty ? formatBitTable(rows) : formatLanguageModelBitTable(rows), terminator: "")
        let inBytes = (try? FileManager.default.attributesOfItem(atPath: model)[.size] as? Int) ?? nil
        let outBytes = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? nil
        var line = String(format: "%@ in %.1f s → %@", ptq ? "calibrated" : "trained \(history.count) epochs", seconds, output)
        if let inBytes, let outBytes {
            line += String(format: " (%d bytes, %.1f%% of the input model's %d)", outBytes,
                           100 * Double(outBytes) / Double(max(1, inBytes)), inBytes)
        }
        print(line)
        if let metrics, let top = rows.first {
            try writeMetrics(metrics, top1: top.top1, loss: top.loss, rows: rows, seconds: seconds, history: history)
        }
    }

    func calibrationMethod() throws -> CalibrationMethod {
        guard let m = CalibrationMethod(rawValue: calibration) else {
            throw BitSwitchError(.training, "unknown --calibration '\(calibration)' (percentile, minmax, mse)")
        }
        return m
    }

    /// The options both training paths share, on top of `base` (the float defaults or the quantization recipe).
    func trainingOptions(_ base: TrainingOptions, defaultLR: (OptimizerKind) -> Float,
                         defaultWeightDecay: Float) throws -> TrainingOptions {
        var o = base
        o.batchSize = batch
        o.optimizer = try OptimizerKind.parse(optimizer, momentum: momentum, nesterov: nesterov)
        o.learningRate = lr ?? defaultLR(o.optimizer)
        o.weightDecay = weightDecay ?? defaultWeightDecay
        guard let s = ScheduleKind(rawValue: schedule.lowercased()) else {
            throw BitSwitchError(.training, "unknown schedule '\(schedule)' (cosine, step, none)")
        }
        o.schedule = s
        o.stepEpochs = stepEpochs
        o.stepGamma = gamma
        o.warmupEpochs = warmup
        o.warmupSteps = warmupSteps
        o.maxSteps = steps
        o.labelSmoothing = labelSmoothing
        o.gradientClipNorm = clipNorm
        if augmentPad > 0 || augmentFlip { o.augmentation = Augmentation(padding: augmentPad, horizontalFlip: augmentFlip) }
        o.seed = seed
        o.threads = threads
        o.detectAnomaly = detectAnomaly
        o.checkpointPath = checkpoint ?? output + ".ckpt"
        return o
    }

    /// With --resume, restores the checkpoint (`restore` returns the epochs it had completed).
    func resumeIfAsked(_ o: TrainingOptions, _ restore: (String) throws -> Int) throws {
        guard resume, let path = o.checkpointPath else { return }
        // A run killed during a checkpoint write left its temporary file beside the checkpoint: never read, removed.
        AtomicFile.removeStaleTemporaries(of: path)
        guard FileManager.default.fileExists(atPath: path) else {
            throw BitSwitchError(.io, "no checkpoint to resume from", file: path)
        }
        let done = try restore(path)
        if !quiet { FileHandle.standardError.write(Data("resuming after epoch \(done) of \(epochs)\n".utf8)) }
    }

    func writeMetrics(_ path: String, top1: Double, loss: Double, rows: [(bits: Int, top1: Double, loss: Double)],
                      seconds: Double, history: [EpochRecord]) throws {
        let perBit = rows.map { "{\"bits\": \($0.bits), \"top1\": \($0.top1), \"loss\": \($0.loss)}" }
        let epochs = history.map { "\($0.seconds)" }
        let text = "{\"top1\": \(top1), \"loss\": \(loss), \"seconds\": \(seconds), \"bits\": [\(perBit.joined(separator: ", "))], "
            + "\"epoch_seconds\": [\(epochs.joined(separator: ", "))]}\n"
        do { try AtomicFile.write(Data(text.utf8), to: path) } catch let e as DataError {
            throw BitSwitchError(.io, "cannot write metrics: \(e.message)", file: path)
        }
    }
}

/// Hidden: samples/s of one training step (forward, backward, Adam update) on random data, for bench/train.
struct BenchTrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-train", abstract: "Time training steps on random data.", shouldDisplay: false)

    @Argument(help: "The float model (.onnx).") var model: String
    @OptionGroup var importFlags: ImportFlags
    @Option var batch = 128
    @Option var threads = 1
    @Option(help: "Steps per timed repeat.") var steps = 20
    @Option(help: "Timed repeats; the median is reported.") var repeats = 5
    @Option var warmup = 3
    @Option(help: "Sample shape C,H,W when the model's input dims are symbolic.") var inputShape: String?
    @Flag var json = false

    func run() throws {
        let graph = try ONNXImporter.importModel(path: model, options: importFlags.options)
        var o = TrainingOptions()
        o.threads = threads
        o.batchSize = batch
        o.learningRate = 1e-3
        o.schedule = .none
        let trainer = try Trainer(graph: graph, options: o, progress: ProgressReporter(style: .silent))
        guard let info = graph.inputs.first(where: { $0.name == trainer.model.inputName }) else {
            throw BitSwitchError(.training, "the model has no data input")
        }
        var sample: [Int]
        if let inputShape {
            sample = inputShape.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        } else {
            sample = (info.type.shape ?? []).dropFirst().map { $0.value ?? 0 }
        }
        guard !sample.isEmpty, sample.allSatisfy({ $0 > 0 }) else {
            throw BitSwitchError(.training, "cannot tell the input's sample shape (\(info.type)); pass --input-shape")
        }
        var rng = SplitMix64(seed: 0)
        let n = batch * sample.reduce(1, *)
        // A token model (int input) gets random token ids below its vocabulary, and a label per position.
        let tokens = info.type.dtype == .i64 || info.type.dtype == .i32
        let vocabulary = tokens ? try TokenModelInfo(graph, model: model).vocabulary?.size ?? 2 : 0
        let x = trainer.model.inputTensor([batch] + sample, (0..<n).map { _ in
            tokens ? Float(rng.nextInt(below: vocabulary)) : Float(rng.nextGaussian()) })
        let probe = try trainer.model.forward(feeds: [trainer.model.inputName: x], context: TrainingContext(training: false))
        guard let logits = probe.value(trainer.model.logitsName), logits.rank == 2 || (tokens && logits.rank == 3),
              let classes = logits.shape.last else {
            throw BitSwitchError(.training, "the model's logits are not [batch, classes] (or [batch, positions, vocabulary])")
        }
        let labels = (0..<(logits.count / classes)).map { _ in rng.nextInt(below: classes) }
        var index = 0
        func step() throws {
            _ = try trainer.standardStep(TrainingBatch(x: x, labels: labels, index: index, learningRate: 1e-3))
            index += 1
        }
        for _ in 0..<warmup { try step() }
        var times: [Double] = [], cpuTimes: [Double] = []
        for _ in 0..<max(1, repeats) {
            let t0 = ProcessInfo.processInfo.systemUptime, c0 = processCPUSeconds()
            for _ in 0..<max(1, steps) { try step() }
            times.append((ProcessInfo.processInfo.systemUptime - t0) / Double(max(1, steps)))
            cpuTimes.append((processCPUSeconds() - c0) / Double(max(1, steps)))
        }
        let sec = times.sorted()[times.count / 2], cpu = cpuTimes.sorted()[cpuTimes.count / 2]
        if json {
            print("{\"model\": \"\(model)\", \"batch\": \(batch), \"threads\": \(threads), \"step_seconds\": \(sec), \"cpu_seconds\": \(cpu), \"samples_per_second\": \(Double(batch) / sec)}")
        } else {
            print(String(format: "bitswitch: %.0f samples/s (%.2f ms/step, batch %d, %d threads)",
                         Double(batch) / sec, 1e3 * sec, batch, threads))
        }
    }
}

/// CPU time of the whole process (all threads), the load-robust measure for one-thread runs.
func processCPUSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}
