import BitSwitchIR
import BitSwitchQuant
import Foundation

/// `--data` for a model with several data inputs (a transformer encoder's `input_ids`, `attention_mask`, ...): one
/// `.npy` array per graph input, all with the samples on axis 0, given as
///
///     --data input_ids=ids.npy --data attention_mask=mask.npy     (NAME=FILE, as `run --input` takes them)
///     --data DIR                                                  (DIR/<input name>.npy for every input)
///
/// the arrays an ONNX Runtime session (or its calibration data reader) takes as its feed dictionary. Every file is
/// checked against the model before anything runs; errors name the file and the input.
enum MultiInputData {
    /// Whether `--data` means named input arrays rather than a dataset directory or a text file: a NAME=FILE
    /// argument (naming an input, or any NAME=FILE for a model with several inputs, so that a wrong name is reported
    /// as such), or a directory holding `<input>.npy` for one of the model's data inputs (and no `x_train.npy`).
    static func applies(_ data: [String], graph: Graph) -> Bool {
        let names = dataInputs(graph).map(\.name)
        for d in data {
            if let eq = d.firstIndex(of: "="), names.contains(String(d[..<eq])) || names.count > 1 { return true }
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: d, isDirectory: &isDirectory), isDirectory.boolValue,
               !FileManager.default.fileExists(atPath: (d as NSString).appendingPathComponent("x_train.npy")),
               names.contains(where: { FileManager.default.fileExists(atPath: file(for: $0, in: d)) }) {
                return true
            }
        }
        return false
    }

    static func dataInputs(_ graph: Graph) -> [ValueInfo] {
        graph.inputs.filter { graph.initializers[$0.name] == nil }
    }

    static func file(for input: String, in dir: String) -> String {
        (dir as NSString).appendingPathComponent(TensorFiles.safeName(input) + ".npy")
    }

    /// Loads and checks the arrays: one per data input (none missing, none unknown), each of the input's element
    /// type and rank, known dimensions equal, a symbolic dimension (`batch_size`, `sequence_length`) the same size in
    /// every file; token ids inside the vocabulary of the embedding table they index, and sequences no longer than
    /// the model's position table.
    static func load(_ data: [String], graph: Graph, model: String) throws -> InputSamples {
        let inputs = dataInputs(graph)
        let names = inputs.map(\.name)
        var files: [String: String] = [:]
        func assign(_ name: String, _ path: String) throws {
            if let other = files[name], other != path {
                throw BitSwitchError(.data, "input '\(name)' is given twice: '\(other)' and '\(path)'", file: path)
            }
            files[name] = path
        }
        for d in data {
            if let eq = d.firstIndex(of: "=") {
                let name = String(d[..<eq]), path = String(d[d.index(after: eq)...])
                guard names.contains(name) else {
                    throw BitSwitchError(.data, "the model has no input '\(name)' (its inputs: \(names.joined(separator: ", ")))",
                                         file: model)
                }
                try assign(name, path)
                continue
            }
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: d, isDirectory: &isDirectory) else {
                throw BitSwitchError(.io, "no such file or directory", file: d)
            }
            guard isDirectory.boolValue else {
                throw BitSwitchError(.data, "'\(d)' does not name a model input; with several inputs give NAME=FILE "
                                     + "(NAME one of \(names.joined(separator: ", "))) or a directory of <input>.npy files",
                                     file: model)
            }
            for name in names where FileManager.default.fileExists(atPath: file(for: name, in: d)) {
                try assign(name, file(for: name, in: d))
            }
        }
        for input in inputs where files[input.name] == nil {
            throw BitSwitchError(.data, "no data for the model's input '\(input.name)' (\(input.type)): give "
                                 + "--data \(input.name)=FILE.npy, or a directory holding "
                                 + "\(TensorFiles.safeName(input.name)).npy", file: model)
        }

        var tensors: [String: Tensor] = [:]
        // A symbolic dimension's size and the file that set it.
        var symbols: [String: (size: Int, file: String)] = [:]
        for input in inputs {
            let path = files[input.name]!
            let t = try TensorFiles.load(path)
            let want = input.type
            if t.dtype != want.dtype {
                throw BitSwitchError(.data, "the array is \(t.dtype.rawValue) but the model's input '\(input.name)' is "
                    + "\(want) (\(model)); convert it, e.g. numpy's .astype(np.\(numpyName(want.dtype)))", file: path)
            }
            guard t.rank >= 1 else {
                throw BitSwitchError(.data, "the array is a scalar; input '\(input.name)' needs the samples on axis 0",
                                     file: path)
            }
            if let dims = want.shape {
                guard dims.count == t.rank else {
                    throw BitSwitchError(.data, "the array has shape \(t.shape) (rank \(t.rank)) but the model's input "
                                         + "'\(input.name)' is \(want) (\(model))", file: path)
                }
                for (k, (d, n)) in zip(dims, t.shape).enumerated() {
                    switch d {
                    case .known(let v) where v != n && !(k == 0 && v == 1):
                        throw BitSwitchError(.data, "the array has shape \(t.shape) but the model's input "
                                             + "'\(input.name)' is \(want): axis \(k) must be \(v) (\(model))", file: path)
                    case .symbol(let s):
                        if let seen = symbols[s], seen.size != n {
                            throw BitSwitchError(.data, "axis \(k) ('\(s)') of input '\(input.name)' is \(n) but it is "
                                + "\(seen.size) in '\(seen.file)': the inputs must agree", file: path)
                        }
                        symbols[s] = (n, path)
                    default: break
                    }
                }
            }
            tensors[input.name] = t
        }
        // Every input must carry the same number of samples (also when their batch axes are named differently).
        let counts = Set(tensors.values.map { $0.shape[0] })
        if counts.count > 1 {
            let list = inputs.map { "'\(files[$0.name]!)' \(tensors[$0.name]!.shape[0])" }.joined(separator: ", ")
            throw BitSwitchError(.data, "the inputs hold different numbers of samples on axis 0: \(list)", file: model)
        }
        try checkTokens(tensors, files: files, graph: graph, model: model)
        return try InputSamples(tensors)
    }

    private static func numpyName(_ d: DType) -> String {
        switch d {
        case .f32: return "float32"
        case .f64: return "float64"
        case .f16: return "float16"
        case .i64: return "int64"
        case .i32: return "int32"
        case .i16: return "int16"
        case .i8, .i4: return "int8"
        case .u8, .u4: return "uint8"
        case .u16: return "uint16"
        case .u32: return "uint32"
        case .u64: return "uint64"
        case .bool: return "bool_"
        }
    }

    /// Token inputs: every id must index a row of the embedding table that a Gather reads with it (directly or
    /// through a Cast), and an [N, T] token input's T must not exceed the model's positions.
    ///
    /// The positions are the rows of the largest constant table that a Gather reads with indices computed from
    /// shapes alone (`Shape`, `Range`, `Slice` of a constant position-id buffer, ...): the position embedding of
    /// BERT-style exports, whose position ids are sliced or ranged from the sequence length.
    static func checkTokens(_ tensors: [String: Tensor], files: [String: String], graph: Graph, model: String) throws {
        let producers = graph.producers
        func tableOf(_ node: Node) -> (table: Tensor, name: String, axis: Int)? {
            guard case .gather(let axis) = node.op, node.inputs.count > 1,
                  let table = graph.initializers[node.inputs[0]], table.rank > 0 else { return nil }
            let a = axis < 0 ? axis + table.rank : axis
            return a >= 0 && a < table.rank ? (table, node.inputs[0], a) : nil
        }
        // The value `v`, or a Cast of it, as a Gather's indices.
        func readsIndices(_ node: Node, _ v: String) -> Bool {
            guard node.inputs.count > 1 else { return false }
            let idx = node.inputs[1]
            if idx == v { return true }
            if let p = producers[idx], case .cast = graph.nodes[p].op, graph.nodes[p].inputs.first == v { return true }
            return false
        }
        var tokenInputs: [String] = []
        for (name, t) in tensors where t.dtype.isInteger {
            for node in graph.nodes where readsIndices(node, name) {
                guard let (table, tableName, axis) = tableOf(node) else { continue }
                let rows = table.shape[axis]
                let ids = t.ints
                if let bad = ids.firstIndex(where: { $0 < 0 || $0 >= rows }) {
                    let per = max(1, t.shape.dropFirst().reduce(1, *))
                    let row = t.shape.count == 2 ? "sample \(bad / per), position \(bad % per)" : "flat index \(bad)"
                    throw BitSwitchError(.data, "token id \(ids[bad]) at \(row) of input '\(name)' is outside the "
                        + "model's vocabulary of \(rows) (embedding table '\(tableName)' read by Gather "
                        + "'\(node.label)' of \(model))", file: files[name])
                }
                if !tokenInputs.contains(name) { tokenInputs.append(name) }
            }
        }
        // Which values are computed from shapes alone (constants, Shape of anything, and ops of those).
        var shapeOnly: [String: Bool] = [:]
        func isShapeOnly(_ v: String, depth: Int = 0) -> Bool {
            if let known = shapeOnly[v] { return known }
            if graph.initializers[v] != nil { return true }
            guard depth < 200, let p = producers[v] else { return false }
            let n = graph.nodes[p]
            let r: Bool
            if case .shape = n.op { r = true } else {
                r = n.inputs.allSatisfy { $0.isEmpty || isShapeOnly($0, depth: depth + 1) }
            }
            shapeOnly[v] = r
            return r
        }
        var positions: (rows: Int, table: String)?
        for node in graph.nodes {
            guard let (table, tableName, axis) = tableOf(node), isShapeOnly(node.inputs[1]),
                  !tensors.keys.contains(node.inputs[1]) else { continue }
            if table.shape[axis] > positions?.rows ?? 0 { positions = (table.shape[axis], tableName) }
        }
        guard let positions else { return }
        for name in tokenInputs {
            guard let t = tensors[name], t.rank == 2, t.shape[1] > positions.rows else { continue }
            throw BitSwitchError(.data, "a sequence of \(t.shape[1]) tokens (input '\(name)', shape \(t.shape)) is longer "
                + "than the model's \(positions.rows) positions (position table '\(positions.table)' of \(model))",
                file: files[name])
        }
    }
}
