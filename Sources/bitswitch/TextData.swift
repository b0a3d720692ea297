import ArgumentParser
import BitSwitchData
import BitSwitchIR
import Foundation

/// How `--data FILE` (a text file rather than a dataset directory) becomes token windows.
struct TextDataFlags: ParsableArguments {
    @Option(help: "Text data: tokens per window (default: the model's input length).") var seqLen: Int?
    @Option(help: "Text data: offset between consecutive windows (default: the window length).") var stride: Int?
    @Option(help: "Text data: fraction of the text, from its end, held out as the test split.") var heldOut = 0.1
}

/// What a language model's graph says about its token input: the positions it takes (a static sequence length of
/// its [N, T] input) and its vocabulary (the rows of the embedding table Gather reads the tokens from).
struct TokenModelInfo {
    var input: ValueInfo
    var positions: Int?
    var vocabulary: (size: Int, table: String)?

    init(_ graph: Graph, model: String) throws {
        guard let input = graph.inputs.first(where: { graph.initializers[$0.name] == nil }) else {
            throw BitSwitchError(.data, "the model has no data input", file: model)
        }
        self.input = input
        if let dims = input.type.shape, dims.count == 2, case .known(let t) = dims[1] { positions = t }
        for node in graph.nodes {
            guard case .gather(let axis) = node.op, node.inputs.count > 1, node.inputs[1] == input.name,
                  let table = graph.initializers[node.inputs[0]], table.rank > 0 else { continue }
            let a = axis < 0 ? axis + table.rank : axis
            guard a >= 0, a < table.rank else { continue }
            vocabulary = (table.shape[a], node.inputs[0])
            break
        }
    }
}

/// A dataset directory (as before), or a UTF-8 text file cut into windows of next-token pairs for a model with a
/// token input (`TextDataset`). Errors name the data file.
func loadData(_ path: String, graph: Graph, model: String, text: TextDataFlags) throws -> DatasetSplits {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else {
        return try loadDataset(path)
    }
    let info = try TokenModelInfo(graph, model: model)
    guard info.input.type.dtype == .i64 || info.input.type.dtype == .i32 else {
        throw BitSwitchError(.data, "a text file trains a language model, whose input takes token ids (int64 [N, T]); "
                             + "the model's input '\(info.input.name)' is \(info.input.type) (\(model))", file: path)
    }
    guard let length = text.seqLen ?? info.positions else {
        throw BitSwitchError(.data, "the model's input '\(info.input.name)' is \(info.input.type): give the window "
                             + "length with --seq-len", file: path)
    }
    if let p = info.positions, length != p {
        throw BitSwitchError(.data, "a window of \(length) tokens " + (length > p ? "is longer than" : "does not fit")
                             + " the model's \(p) positions (input '\(info.input.name)' is \(info.input.type), \(model))",
                             file: path)
    }
    var o = TextWindowOptions(length: length, stride: text.stride, heldOut: text.heldOut)
    o.vocabularySize = info.vocabulary.map { min($0.size, TextDataset.byteVocabularySize) }
    do {
        return try TextDataset.load(path: path, options: o)
    } catch var e as DataError {
        if let v = info.vocabulary, e.message.contains("outside the model's vocabulary") {
            e.message += " '\(v.table)' of \(model)"
        }
        throw BitSwitchError(.data, e.message, file: e.file)
    }
}

/// The held-out line of a language model: mean cross-entropy per token in nats and in bits (per byte: per
/// character for ASCII text).
func languageModelLine(_ loss: Double, accuracy: Double, data: String) -> String {
    String(format: "held-out %@: %.4f nats/token = %.4f bits per byte (per character for ASCII text), next-byte "
           + "accuracy %.2f%%", (data as NSString).lastPathComponent, loss, loss / log(2.0), 100 * accuracy)
}
