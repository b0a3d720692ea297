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
    @Option(help: "Threads for BLAS and the runtime's loops.") var threads: Int?
    @Option(help: "Quantized models: evaluate at these bit-widths ('all', '4' or '6,4') and print a table.")
    var bits: String?
    @Option(help: "A per-layer profile JSON file (docs/profiles.md) to evaluate (its default from --bits when one is given).")
    var profile: String?
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
        if backend != .ref || profile != nil {
            return try evaluateProfiles(graph, splits.test, batch: batch)
        }
        if let bits {
            let rows = try evaluateAllBits(graph: graph, data: splits.test, batchSize: batch,
                                           bits: try parseBitsOption(bits), threads: threads)
            print(formatBitTable(rows), terminator: "")
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
    func evaluateProfiles(_ graph: Graph, _ test: Dataset, batch: Int) throws {
        BitSwitchQuant.registerKernels()
        let trained = quantizedLayers(graph).first?.bits
        var profiles: [(name: String, profile: Profile)] = []
        if let profile {
            var p = try Profile.load(path: profile)
            if let b = try bits.flatMap(parseBitsOption)?.first { p.defaultBits = b }
            profiles = [(((profile as NSString).lastPathComponent as NSString).deletingPathExtension, p)]
        } else if let bits, let list = try parseBitsOption(bits) ?? trained {
            profiles = list.map { ("\($0)", Profile.uniform($0)) }
        } else {
            profiles = [(trained.map { "\($0.max() ?? 8)" } ?? "model", Profile())]
        }
        var rows: [String] = []
        switch backend {
        case .ref, .int:
            for (name, p) in profiles {
                let run: (Tensor) throws -> Tensor
                if backend == .int {
                    let g = try integerGraph(graph, profile: p, file: model, profileFile: profile)
                    let ex = Executor(graph: g, threads: threads)
                    run = { try Self.single(ex.run([g.inputs[0].name: $0]), model: model) }
                } else {
                    let a = try p.resolve(in: graph, file: profile)
                    let ex = Executor(graph: graph, threads: threads, assignment: a)
                    run = { try Self.single(ex.run([graph.inputs[0].name: $0]), model: model) }
                }
                let (e, _) = try Self.evaluate(test, batch: batch, run)
                rows.append(Self.row(name, e, microseconds: nil))
            }
        case .c:
            let input = try emitInput(graph, profiles: profiles, perLayer: false, file: model)
            let net: CompiledNetwork
            do { var input = input; input.isa = .host; net = try CompiledNetwork(input) } catch let e as BitSwitchError { throw e.located(file: model) }
            for (i, (name, _)) in profiles.enumerated() {
                try net.model.setProfile(i)
                let (e, seconds) = try Self.evaluate(test, batch: batch) { x in
                    try Self.single(net.run([net.inputName: x]), model: model)
                }
                rows.append(Self.row(name, e, microseconds: 1e6 * seconds / Double(max(test.count, 1))))
            }
            print("C bundle: \(net.report.bundleBytes) bytes of source, \(net.report.weightBytes) bytes of INT8 weights, arena \(net.report.arenaBytes) bytes")
        }
        print("profile   top-1     loss" + (backend == .c ? "   µs/sample" : ""))
        rows.forEach { print($0) }
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
