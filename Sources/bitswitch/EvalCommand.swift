import ArgumentParser
import BitSwitchCodegen
import BitSwitchData
import BitSwitchIR
import BitSwitchONNX
import BitSwitchQuant
import BitSwitchRuntime
import Foundation

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Top-1 accuracy and cross-entropy of a model on a dataset's test split.")

    @Argument(help: "The model (.onnx).") var model: String
    @OptionGroup var importFlags: ImportFlags
    @Option(help: "Dataset directory or text file (as for train).") var data: String
    @OptionGroup var textFlags: TextDataFlags
    @Option(help: "Evaluation batch size.") var batch = 256
    @Option(help: "Threads for BLAS and the runtime's loops; with --backend c, the compiled model's threads (bs_init: default 1, 0 = every online CPU).") var threads: Int?
    @Option(help: "Quantized models: evaluate at these bit-widths ('all', '4' or '6,4') and print a table.")
    var bits: String?
    @Option(help: "A per-layer profile JSON file (docs/profiles.md) to evaluate (its default from --bits when one is given); repeat it to evaluate several profiles of one model.")
    var profile: [String] = []
    @Option(help: ArgumentHelp("Also evaluate each profile after re-estimating its BatchNorm running statistics (the sub-net's switchable-BN rows) on the first N training samples; reported apart, as a second row '<profile>+bn'. The model file is not changed.", valueName: "N"))
    var recalibrateBn: Int?
    @Option(help: "Write the rows (profile, top-1, loss, BN recalibrated or not) as JSON to this file.") var json: String?
    @Option(help: ArgumentHelp("ref: fake-quant in float; int: integer ops on the bit-exact interpreter; c: integer C, built and loaded once, switching profile in place between bit-widths.", valueName: "ref|int|c"))
    var backend: Backend = .ref

    func run() throws {
        var graph = try ONNXImporter.importModel(path: model, options: importFlags.options)
        let splits = try loadData(data, graph: graph, model: model, text: textFlags)
        try checkDataset(splits, fits: graph, model: model)
        guard batch > 0 else { throw BitSwitchError(.training, "batch must be positive, got \(batch)") }
        if let threads { guard threads > 0 else { throw BitSwitchError(.training, "threads must be positive") } }
        // A model exported with a fixed batch of 1 is made batchable, or run one sample at a time.
        let mode = try prepareModel(&graph, file: model, sampleShape: splits.test.sampleShape, quiet: false)
        let batch = mode.requiredBatch ?? self.batch
        if let x = graph.inputs.first {
            let b = MemoryEstimate.bindings(graph, inputShapes: [x.name: [batch] + splits.test.sampleShape])
            try MemoryEstimate.inference(graph, bindings: b)
                .check(maxMemory: importFlags.maxMemory, what: "evaluating the model at batch \(batch)", file: model)
        }
        if let n = recalibrateBn {
            guard n > 0 else { throw BitSwitchError(.data, "--recalibrate-bn needs a positive number of samples, got \(n)") }
            guard backend == .ref else { throw BitSwitchError(.data, "--recalibrate-bn works on the fake-quant executor (--backend ref)") }
            guard !quantizedLayers(graph).isEmpty else {
                throw BitSwitchError(.data, "--recalibrate-bn needs a quantized model (its switchable BN rows are per bit-width)", file: model)
            }
        }
        if backend != .ref || !profile.isEmpty || recalibrateBn != nil {
            return try evaluateProfiles(graph, splits, batch: batch)
        }
        guard json == nil else { throw BitSwitchError(.data, "--json needs --profile, --recalibrate-bn or --backend int|c") }
        let languageModel = !splits.test.labelShape.isEmpty
        // A multi-precision language model reports every trained bit-width even without --bits.
        let isQuantized = graph.nodes.contains { $0.op.domain == Op.bitswitchDomain }
        if bits != nil || (languageModel && isQuantized) {
            let rows = try evaluateAllBits(graph: graph, data: splits.test, batchSize: batch,
                                           bits: try parseBitsOption(bits ?? "all"), threads: threads)
            if languageModel {
                print("held-out \((data as NSString).lastPathComponent):")
                print(formatLanguageModelBitTable(rows), terminator: "")
            } else {
                print(formatBitTable(rows), terminator: "")
            }
            return
        }
        BitSwitchQuant.registerKernels()
        let tg: TrainingGraph
        do { tg = try TrainingGraph(graph: graph, requireGradients: false) } catch { throw error.bitswitchLocated(file: model) }
        let e = try evaluateModel(tg, on: splits.test, batchSize: batch, threads: threads)
        if !splits.test.labelShape.isEmpty {
            print(languageModelLine(e.loss, accuracy: e.accuracy, data: data))
            return
        }
        print(String(format: "top-1 %.2f%% (%d/%d), loss %.4f", 100 * e.accuracy,
                     Int((e.accuracy * Double(e.count)).rounded()), e.count, e.loss))
    }

    /// One row per profile (each --bits value, or the --profile file), on the chosen back end.
    func evaluateProfiles(_ graph: Graph, _ splits: DatasetSplits, batch: Int) throws {
        BitSwitchQuant.registerKernels()
        let test = splits.test
        let trained = quantizedLayers(graph).first?.bits
        var profiles: [(name: String, profile: Profile, file: String?)] = []
        if !profile.isEmpty {
            let def = try bits.flatMap(parseBitsOption)?.first
            for file in profile {
                var p = try Profile.load(path: file)
                if let def { p.defaultBits = def }
                profiles.append((((file as NSString).lastPathComponent as NSString).deletingPathExtension, p, file))
            }
        } else if let bits, let list = try parseBitsOption(bits) ?? trained {
            profiles = list.map { ("\($0)", Profile.uniform($0), nil) }
        } else {
            profiles = [(trained.map { "\($0.max() ?? 8)" } ?? "model", Profile(), nil)]
        }
        var rows: [String] = []
        var records: [String] = []
        func record(_ name: String, _ e: Evaluation, recalibrated: Int?) {
            records.append("    {\"profile\": \(jsonString(name)), \"top1\": \(e.accuracy), \"loss\": \(e.loss), \"count\": \(e.count), "
                           + "\"recalibrated_bn_samples\": \(recalibrated.map(String.init) ?? "null")}")
        }
        switch backend {
        case .ref, .int:
            for (name, p, file) in profiles {
                let run: (Tensor) throws -> Tensor
                if backend == .int {
                    let g = try integerGraph(graph, profile: p, file: model, profileFile: file)
                    let ex = Executor(graph: g, threads: threads)
                    run = { try Self.single(ex.run([g.inputs[0].name: $0]), model: model) }
                } else {
                    let a = try p.resolve(in: graph, file: file)
                    let ex = Executor(graph: graph, threads: threads, assignment: a)
                    run = { try Self.single(ex.run([graph.inputs[0].name: $0]), model: model) }
                }
                let (e, _) = try Self.evaluate(test, batch: batch, run)
                rows.append(Self.row(name, e, microseconds: nil))
                record(name, e, recalibrated: nil)
                if let n = recalibrateBn {
                    // The sub-net's BN statistics re-estimated on training samples, in a copy of the graph.
                    let a = try p.resolve(in: graph, file: file)
                    let (g, rep) = try BatchNormRecalibration.recalibrate(graph: graph, assignment: a, data: splits.train,
                                                                          samples: n, threads: threads)
                    let ex = Executor(graph: g, threads: threads, assignment: a)
                    let (e2, _) = try Self.evaluate(test, batch: batch) { try Self.single(ex.run([g.inputs[0].name: $0]), model: model) }
                    rows.append(Self.row(name + "+bn", e2, microseconds: nil))
                    record(name + "+bn", e2, recalibrated: rep.samples)
                }
            }
        case .c:
            let input = try emitInput(graph, profiles: profiles.map { ($0.name, $0.profile) }, perLayer: false, file: model)
            let net: CompiledNetwork
            do { var input = input; input.isa = .host; net = try CompiledNetwork(input, threads: threads ?? 1) } catch let e as BitSwitchError { throw e.located(file: model) }
            for (i, (name, _, _)) in profiles.enumerated() {
                try net.model.setProfile(i)
                let (e, seconds) = try Self.evaluate(test, batch: batch) { x in
                    try Self.single(net.run([net.inputName: x]), model: model)
                }
                rows.append(Self.row(name, e, microseconds: 1e6 * seconds / Double(max(test.count, 1))))
                record(name, e, recalibrated: nil)
            }
            print("C bundle: \(net.report.bundleBytes) bytes of source, \(net.report.weightBytes) bytes of INT8 weights, arena \(net.report.arenaBytes) bytes")
        }
        print("profile   top-1     loss" + (backend == .c ? "   µs/sample" : ""))
        rows.forEach { print($0) }
        if recalibrateBn != nil {
            print("(+bn: BatchNorm running statistics re-estimated on \(min(recalibrateBn ?? 0, splits.train.count)) training samples; the model file is unchanged)")
        }
        if let json {
            try writeAtomically("{\n  \"model\": \(jsonString(model)),\n  \"rows\": [\n" + records.joined(separator: ",\n") + "\n  ]\n}\n", to: json)
        }
    }

    static func single(_ outputs: [String: Tensor], model: String) throws -> Tensor {
        guard outputs.count == 1, let t = outputs.values.first else {
            throw BitSwitchError(.data, "evaluation needs a model with one output (the logits); this one has \(outputs.count)", file: model)
        }
        return t
    }

    static func row(_ name: String, _ e: Evaluation, microseconds: Double?) -> String {
        let n = name.count >= 7 ? name : name + String(repeating: " ", count: 7 - name.count)
        var s = "\(n)  " + String(format: "%6.2f%%  %.4f", 100 * e.accuracy, e.loss)
        if let microseconds { s += String(format: "   %9.1f", microseconds) }
        return s
    }

    /// Accuracy and cross-entropy over `data` in batches through `run` (logits), and the seconds spent in `run`.
    static func evaluate(_ data: Dataset, batch: Int, _ run: (Tensor) throws -> Tensor) throws -> (Evaluation, Double) {
        var correct = 0, loss = 0.0, seconds = 0.0
        let per = data.sampleSize
        var start = 0
        while start < data.count {
            let n = min(batch, data.count - start)
            let x = Tensor(shape: [n] + data.sampleShape, floats: Array(data.x[(start * per)..<((start + n) * per)]))
            let t0 = DispatchTime.now().uptimeNanoseconds
            let logits = try run(x)
            seconds += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            let r = try Loss.crossEntropy(logits: logits, labels: data.y[start..<(start + n)].map { Int($0) })
            correct += r.correct
            loss += Double(r.loss) * Double(n)
            start += n
        }
        return (Evaluation(accuracy: Double(correct) / Double(max(data.count, 1)), loss: loss / Double(max(data.count, 1)),
                           count: data.count), seconds)
    }
}
