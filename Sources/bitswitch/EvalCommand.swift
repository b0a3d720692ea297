import ArgumentParser
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
    @Option(help: "Dataset directory (as for train).") var data: String
    @Option(help: "Evaluation batch size.") var batch = 256
    @Option(help: "Threads for BLAS and the runtime's loops.") var threads: Int?
    @Option(help: "Quantized models: evaluate at these bit-widths ('all', '4' or '6,4') and print a table.")
    var bits: String?

    func run() throws {
        var graph = try ONNXImporter.importModel(path: model, options: importFlags.options)
        let splits = try loadDataset(data)
        try checkDataset(splits, fits: graph, model: model)
        guard batch > 0 else { throw BitSwitchError(.training, "batch must be positive, got \(batch)") }
        if let threads { guard threads > 0 else { throw BitSwitchError(.training, "threads must be positive") } }
        // A model exported with a fixed batch of 1 is made batchable, or run one sample at a time.
        let mode = try prepareModel(&graph, file: model, sampleShape: splits.test.sampleShape, quiet: false)
        let batch = mode.requiredBatch ?? self.batch
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
        print(String(format: "top-1 %.2f%% (%d/%d), loss %.4f", 100 * e.accuracy,
                     Int((e.accuracy * Double(e.count)).rounded()), e.count, e.loss))
    }
}
