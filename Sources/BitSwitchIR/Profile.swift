import Foundation

// Profiles: one concept for "which bit-widths now" (ARCHITECTURE.md). A `Profile` names bit-widths per quantized
// layer, as a user writes them (docs/profiles.md); `BitAssignment` is the same choice resolved against one graph:
// the bit-width every quant-dialect node runs at. The fake-quant kernels, the trainer, the lowering and the C
// runtime all read the resolved form.

/// Weight and input-activation bit-widths of one quantized layer.
public struct LayerBits: Sendable, Hashable, CustomStringConvertible {
    public var w: Int
    public var a: Int
    public init(w: Int, a: Int) { self.w = w; self.a = a }
    public var description: String { "w\(w)a\(a)" }
}

/// Per-layer bit-widths: `{"bits": {"<Conv/Gemm/MatMul node name>": {"w": 4, "a": 4}, ...}}`.
/// Layers not listed run at `defaultBits` (nil: the model's top trained bit-width); pinned layers keep their width.
public struct Profile: Sendable, Hashable, CustomStringConvertible {
    public var layers: [String: LayerBits]
    public var defaultBits: Int?

    public init(layers: [String: LayerBits] = [:], defaultBits: Int? = nil) {
        self.layers = layers; self.defaultBits = defaultBits
    }

    /// Every layer at `bits` (today's `--bits B`).
    public static func uniform(_ bits: Int) -> Profile { Profile(defaultBits: bits) }

    public var isUniform: Bool { layers.isEmpty }

    public var description: String {
        if layers.isEmpty { return defaultBits.map { "uniform \($0)-bit" } ?? "top bit-width" }
        return layers.keys.sorted().map { "\($0)=\(layers[$0]!)" }.joined(separator: ", ")
    }

    private struct Form: Decodable {
        struct Entry: Decodable { var w: Int; var a: Int }
        var bits: [String: Entry]?
        var `default`: Int?
    }

    /// Parses the JSON form; `file` names the source in errors.
    public init(json data: Data, file: String? = nil) throws {
        let form: Form
        do { form = try JSONDecoder().decode(Form.self, from: data) } catch {
            var what = "\(error)"
            if case DecodingError.typeMismatch(_, let c) = error { what = "\(c.codingPath.map(\.stringValue).joined(separator: ".")): \(c.debugDescription)" }
            if case DecodingError.keyNotFound(let k, let c) = error { what = "\((c.codingPath + [k]).map(\.stringValue).joined(separator: ".")) is missing" }
            if case DecodingError.dataCorrupted(let c) = error { what = "not valid JSON (\(c.debugDescription))" }
            throw BitSwitchError(.parse, "profile: expected {\"bits\": {\"<layer>\": {\"w\": B, \"a\": B}}}: \(what)", file: file)
        }
        self.init(layers: (form.bits ?? [:]).mapValues { LayerBits(w: $0.w, a: $0.a) }, defaultBits: form.default)
    }

    public static func load(path: String) throws -> Profile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw BitSwitchError(.io, "cannot read the profile file", file: path)
        }
        return try Profile(json: data, file: path)
    }

    /// The JSON form, keys sorted, one layer per line.
    public var json: String {
        var lines: [String] = []
        if let d = defaultBits { lines.append("  \"default\": \(d)") }
        let rows = layers.keys.sorted().map { "    \(jsonString($0)): {\"w\": \(layers[$0]!.w), \"a\": \(layers[$0]!.a)}" }
        lines.append(rows.isEmpty ? "  \"bits\": {}" : "  \"bits\": {\n" + rows.joined(separator: ",\n") + "\n  }")
        return "{\n" + lines.joined(separator: ",\n") + "\n}\n"
    }
}

/// A JSON string literal (quotes, backslashes and control characters escaped).
public func jsonString(_ s: String) -> String {
    var r = "\""
    for c in s.unicodeScalars {
        switch c {
        case "\"": r += "\\\""
        case "\\": r += "\\\\"
        case "\n": r += "\\n"
        case "\r": r += "\\r"
        case "\t": r += "\\t"
        default:
            if c.value < 0x20 { r += String(format: "\\u%04x", c.value) } else { r.unicodeScalars.append(c) }
        }
    }
    return r + "\""
}

/// A Conv / Gemm / MatMul whose weight goes through a `FakeQuantWeight`, with the quant-dialect nodes that take
/// their bit-width from it.
public struct QuantizedLayer: Sendable, Hashable {
    /// The Conv/Gemm/MatMul node's name (what profiles use).
    public var name: String
    public var nodeIndex: Int
    /// The `FakeQuantWeight` on its weight.
    public var weightQuant: String
    /// The `FakeQuantAct` on its data input, if any.
    public var inputQuant: String?
    /// `SwitchableBatchNorm` nodes normalising its output.
    public var batchNorms: [String]
    /// The trained bit set (descending).
    public var bits: [Int]
    /// Pinned bit-width (first/last layer), if any.
    public var pinned: Int?
    /// Weight elements (for parameter-weighted averages and model bytes).
    public var parameterCount: Int

    public var isSwitchable: Bool { pinned == nil }
}

/// The quantized layers of a fake-quant graph, in graph order.
public func quantizedLayers(_ g: Graph) -> [QuantizedLayer] {
    let producers = g.producers, consumers = g.consumers
    var layers: [QuantizedLayer] = []
    for (i, n) in g.nodes.enumerated() {
        switch n.op { case .conv, .gemm, .matMul: break; default: continue }
        guard n.inputs.count >= 2, let wp = producers[n.inputs[1]], case .fakeQuantWeight(let wq) = g.nodes[wp].op
        else { continue }
        var inputQuant: String? = nil
        if let xp = producers[n.inputs[0]], case .fakeQuantAct = g.nodes[xp].op { inputQuant = g.nodes[xp].name }
        // BN directly after the layer, or after its bias Add.
        var bns: [String] = []
        var frontier = [n.outputs[0]]
        while let v = frontier.popLast() {
            for c in consumers[v] ?? [] {
                switch g.nodes[c].op {
                case .switchableBatchNorm: bns.append(g.nodes[c].name)
                case .add where g.nodes[c].inputs.contains(where: { g.initializers[$0] != nil }):
                    frontier.append(g.nodes[c].outputs[0])
                default: break
                }
            }
        }
        let count = g.initializers[g.nodes[wp].inputs[0]]?.count ?? 0
        layers.append(QuantizedLayer(name: n.name, nodeIndex: i, weightQuant: g.nodes[wp].name, inputQuant: inputQuant,
                                     batchNorms: bns, bits: wq.bits, pinned: wq.pinnedBits, parameterCount: count))
    }
    return layers
}

/// The resolved bit-width of every quant-dialect node. Nodes not listed run at `defaultBits` (nil: each node's top).
/// For a pinned quantizer the value picks its per-bit-width row (activation scale, BN), not its quantizer width.
public struct BitAssignment: Sendable, Hashable {
    public var defaultBits: Int?
    public var nodes: [String: Int]

    public init(defaultBits: Int? = nil, nodes: [String: Int] = [:]) {
        self.defaultBits = defaultBits; self.nodes = nodes
    }

    public static func uniform(_ bits: Int?) -> BitAssignment { BitAssignment(defaultBits: bits) }

    /// The bit-width the node `name` runs at (nil: its top trained bit-width).
    @inline(__always)
    public func bits(for name: String) -> Int? { nodes.isEmpty ? defaultBits : (nodes[name] ?? defaultBits) }
}

extension Profile {
    /// Resolves the profile against a fake-quant graph: every name must be a quantized layer, every bit-width one of
    /// the layer's trained ones, and layers reading one quantized activation must agree on its bit-width.
    /// `file` names the profile in errors.
    public func resolve(in g: Graph, file: String? = nil) throws -> BitAssignment {
        let layers = quantizedLayers(g)
        func fail(_ m: String, node: String? = nil) -> BitSwitchError {
            BitSwitchError(.invalidModel, "profile: \(m)", file: file, node: node)
        }
        guard let top = layers.first?.bits.max() else {
            throw fail("the model has no quantized layers; run insert-fake-quant (or train --bits) first")
        }
        let trained = layers[0].bits
        if let d = defaultBits, !trained.contains(d) {
            throw BitSwitchError(.invalidModel, "bit-width \(d) is not one of the trained bit-widths \(trained)", file: file,
                                 node: layers[0].weightQuant, op: "FakeQuantWeight", domain: Op.bitswitchDomain)
        }
        let byName = Dictionary(layers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for name in self.layers.keys.sorted() where byName[name] == nil {
            let known = layers.map(\.name).prefix(12).joined(separator: ", ")
            throw fail("'\(name)' is not a quantized layer of this model (quantized layers: \(known)\(layers.count > 12 ? ", ..." : ""))",
                       node: name)
        }
        var out = BitAssignment(defaultBits: defaultBits)
        if self.layers.isEmpty { return out }
        let base = defaultBits ?? top
        var actOwner: [String: (layer: String, bits: Int)] = [:]
        for l in layers {
            let chosen = self.layers[l.name]
            if let c = chosen {
                if let p = l.pinned, c.w != p || c.a != p {
                    throw fail("layer '\(l.name)' is pinned at \(p) bits (first/last layer); it cannot run at \(c)", node: l.name)
                }
                for b in [c.w, c.a] where !l.bits.contains(b) {
                    throw fail("layer '\(l.name)': bit-width \(b) is not one of the trained bit-widths \(l.bits)", node: l.name)
                }
            }
            let w = l.pinned == nil ? (chosen?.w ?? base) : base
            let a = l.pinned == nil ? (chosen?.a ?? base) : base
            out.nodes[l.weightQuant] = w
            for bn in l.batchNorms { out.nodes[bn] = w }
            if let q = l.inputQuant {
                if let prev = actOwner[q], prev.bits != a, l.pinned == nil {
                    throw fail("layers '\(prev.layer)' and '\(l.name)' read the same quantized activation and must use the same activation bits (\(prev.bits) vs \(a))", node: l.name)
                }
                if actOwner[q] == nil || l.pinned == nil { actOwner[q] = (l.name, a); out.nodes[q] = a }
            }
        }
        return out
    }
}

extension BitAssignment {
    /// The parameter row a SwitchableBatchNorm named `node` uses under this assignment: the index of its own
    /// bit-width (the assignment's value for the node, nil: the top) in `bits`; for transitional BN (`previous`, the
    /// previous layer's FakeQuantWeight) `index(previous bits) · |bits| + index(own bits)`, the previous bits being
    /// the assignment's value for that node (its layer's weight bits). Every reader of the rows (the training kernel,
    /// `fold-scales`, `lower-int`, the trainer's per-row steps) picks them here.
    public func batchNormRow(node: String, bits: [Int], previous: String?) throws -> (bits: Int, previous: Int?, row: Int) {
        guard let top = bits.max() else { throw BitSwitchError(.invalidModel, "attribute 'bits' is empty") }
        let own = self.bits(for: node) ?? top
        guard let i = bits.firstIndex(of: own) else {
            throw BitSwitchError(.unsupported, "active bit-width \(own) is not one of the trained bit-widths \(bits)")
        }
        guard let previous else { return (own, nil, i) }
        let prev = self.bits(for: previous) ?? top
        guard let p = bits.firstIndex(of: prev) else {
            throw BitSwitchError(.unsupported, "the previous layer's bit-width \(prev) (at '\(previous)') is not one of the trained bit-widths \(bits)")
        }
        return (own, prev, p * bits.count + i)
    }
}
