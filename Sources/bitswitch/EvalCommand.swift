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
    @Option(help: "Dataset directory (as for train).") var data: String
    @Option(help: "Evaluation batch size.") var batch = 256
    @Option(help: "Threads for BLAS and the runtime's loops.") var threads: Int?
    @Option(help: "Quantized models: evaluate at these bit-widths ('all', '4' or '6,4') and print a table.")
    var bits: String?
    @Option(help: "Quantized models: evaluate one per-layer assignment (a profile JSON, docs/profiles.md).")
    var profile: String?

    func run() throws {
        let graph = try ONNXImporter.importModel(path: model)
        let splits = try loadDataset(data)
        guard batch > 0 else { throw BitSwitchError(.training, "batch must be positive, got \(batch)") }
        if let threads { guard threads > 0 else { throw BitSwitchError(.training, "threads must be positive") } }
        if let profile {
            guard bits == nil else { throw BitSwitchError(.data, "give --bits or --profile, not both") }
            BitSwitchQuant.registerKernels()
            let assignment = try Profile.load(path: profile).resolve(in: graph, file: profile)
            let tg: TrainingGraph
            do { tg = try TrainingGraph(graph: graph, requireGradients: false) } catch { throw error.bitswitchLocated(file: model) }
            let e = try evaluateModel(tg, on: splits.test, batchSize: batch, assignment: assignment, threads: threads)
            print(String(format: "profile %@: top-1 %.2f%% (%d/%d), loss %.4f", profile, 100 * e.accuracy,
                         Int((e.accuracy * Double(e.count)).rounded()), e.count, e.loss))
            return
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
        print(String(format: "top-1 %.2f%% (%d/%d), loss %.4f", 100 * e.accuracy,
                     Int((e.accuracy * Double(e.count)).rounded()), e.count, e.loss))
    }
}
