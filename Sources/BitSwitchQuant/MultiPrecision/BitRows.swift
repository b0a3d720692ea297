import BitSwitchIR
import BitSwitchRuntime

/// Trained parameters that hold one row per bit-width (activation scales, switchable-BN affine) and the optimizer
/// groups over them.
///
/// Such a row is a separate parameter in the method (the paper keeps one BN module per bit-width): it gets its own
/// optimizer state and is updated only in the steps of its own bit-width. Stepping the whole [|B|, C] tensor instead
/// would move the idle rows by their Adam momentum and advance their step count |B| times per batch. The optimizer
/// therefore sees every row under its own name, `virtualName(parameter, bits:)`. A transitional BN's parameter has
/// one row per (previous layer's bits, own bits) pair, each a parameter of its own in the same way.
struct BitRows {
    /// One row of a per-bit parameter: its bit-width and, for transitional BN, the previous layer's.
    struct RowKey: Hashable, Sendable {
        var previous: Int?
        var bits: Int
    }
    /// Per-bit parameter → the key of each of its rows, in row order.
    let rowKeys: [String: [RowKey]]
    /// Transitional-BN parameter → the previous layer's FakeQuantWeight node (whose bits pick the row's first half).
    let rowPrevious: [String: String]
    /// Scales of quantizers pinned at one bit-width (first/last layer): they quantize at that width whatever the
    /// network's profile, so ALRS, a per-bit-width rate, does not apply to them.
    let pinnedScales: Set<String>
    /// Per-bit parameter → the quant-dialect nodes that read a row of it (for per-layer assignments).
    let rowOwners: [String: [String]]
    /// Shared weight scale → the switching `FakeQuantWeight` nodes that read it (per-layer ALRS).
    let weightScaleOwners: [String: [String]]

    static let weightGroup = "weights"
    static let scaleGroup = "scales"
    static let otherGroup = "affine_bias"
    static let pinnedScaleGroup = "scales_pinned"
    static func scaleGroup(bits: Int) -> String { "scales@\(bits)" }
    static func virtualName(_ parameter: String, bits: Int) -> String { "\(parameter)@\(bits)bit" }
    static func virtualName(_ parameter: String, _ key: RowKey) -> String {
        key.previous.map { "\(parameter)@\($0)to\(key.bits)bit" } ?? virtualName(parameter, bits: key.bits)
    }

    init(graph: Graph, parameters: Set<String>, bitSet: [Int]) throws {
        var rows: [String: [RowKey]] = [:]
        var previousOf: [String: String] = [:]
        var owners: [String: [String]] = [:], scaleOwners: [String: [String]] = [:]
        var pinned = Set<String>()
        func add(_ node: Node, _ index: Int, _ bits: [Int], previous: String? = nil) throws {
            guard index < node.inputs.count, parameters.contains(node.inputs[index]) else { return }
            let name = node.inputs[index]
            let keys = previous == nil ? bits.map { RowKey(previous: nil, bits: $0) }
                : bits.flatMap { p in bits.map { RowKey(previous: p, bits: $0) } }
            guard let t = graph.initializers[name], t.shape.first == keys.count else {
                throw BitSwitchError(.invalidModel, previous == nil ? "'\(name)' must have one row per bit-width \(bits)"
                                     : "'\(name)' must have one row per (previous, own) pair of bit-widths \(bits)",
                                     node: node.label, op: node.op.typeName, domain: node.op.domain)
            }
            if let old = rows[name], old != keys {
                throw BitSwitchError(.invalidModel, "'\(name)' serves two different row layouts", node: node.label)
            }
            if let previous {
                if let old = previousOf[name], old != previous {
                    throw BitSwitchError(.invalidModel, "transitional BN parameter '\(name)' follows two previous layers", node: node.label)
                }
                previousOf[name] = previous
            }
            rows[name] = keys
            if owners[name]?.contains(node.name) != true { owners[name, default: []].append(node.name) }
        }
        func check(_ node: Node, _ bits: [Int]) throws {
            for b in bitSet where !bits.contains(b) {
                throw BitSwitchError(.training, "the model was quantized for bit-widths \(bits); it cannot train \(b) bits",
                                     node: node.label, op: node.op.typeName, domain: node.op.domain)
            }
        }
        for node in graph.nodes {
            switch node.op {
            case .fakeQuantAct(let a):
                // Pinned quantizers (first/last layer) too: their input follows the BN row of the active profile,
                // so they keep one scale per profile.
                try check(node, a.bits)
                if a.bits.count > 1 { try add(node, 1, a.bits) }
                if a.pinnedBits != nil, node.inputs.count > 1 { pinned.insert(node.inputs[1]) }
            case .fakeQuantWeight(let w):
                if w.pinnedBits == nil { try check(node, w.bits) } else if node.inputs.count > 1 { pinned.insert(node.inputs[1]) }
                if w.pinnedBits == nil, node.inputs.count > 1, parameters.contains(node.inputs[1]) {
                    scaleOwners[node.inputs[1], default: []].append(node.name)
                }
            case .switchableBatchNorm(let bits, _, _, let previous):
                try check(node, bits)
                if bits.count > 1 { try add(node, 1, bits, previous: previous); try add(node, 2, bits, previous: previous) }
            case .switchableLayerNorm(let bits, _, _):
                try check(node, bits)
                if bits.count > 1 { try add(node, 1, bits); try add(node, 2, bits) }
            default:
                continue
            }
        }
        rowKeys = rows
        rowPrevious = previousOf
        rowOwners = owners
        weightScaleOwners = scaleOwners
        // A scale shared by a pinned and a switching quantizer switches: it keeps ALRS.
        for node in graph.nodes {
            switch node.op {
            case .fakeQuantAct(let a) where a.pinnedBits == nil && node.inputs.count > 1: pinned.remove(node.inputs[1])
            case .fakeQuantWeight(let w) where w.pinnedBits == nil && node.inputs.count > 1: pinned.remove(node.inputs[1])
            default: continue
            }
        }
        pinnedScales = pinned
    }

    /// The optimizer groups: weights (decayed), shared quantizer scales, each bit-width's scale rows, scales of
    /// pinned quantizers (shared and rows), and biases / BN affine (shared parameters and all their rows). Every
    /// group but the weights has no decay; ALRS sets the multipliers of the switching scale groups.
    func groups(parameters: [(name: String, role: ParameterRole)], bitSet: [Int], weightDecay: Float,
                scaleMultiplier: (Int) -> Float) -> [ParameterGroup] {
        var weights: [String] = [], scales: [String] = [], others: [String] = [], pinned: [String] = []
        var scaleRows: [Int: [String]] = [:]
        for (name, role) in parameters {
            if let keys = rowKeys[name] {
                for k in keys where bitSet.contains(k.bits) && k.previous.map(bitSet.contains) != false {
                    let b = k.bits
                    let v = BitRows.virtualName(name, k)
                    if role == .quantScale && pinnedScales.contains(name) {
                        pinned.append(v)
                    } else if role == .quantScale {
                        scaleRows[b, default: []].append(v)
                    } else {
                        others.append(v)
                    }
                }
            } else if role == .quantScale && pinnedScales.contains(name) {
                pinned.append(name)
            } else if role == .weight {
                weights.append(name)
            } else if role == .quantScale {
                scales.append(name)
            } else {
                others.append(name)
            }
        }
        var g = [ParameterGroup(name: BitRows.weightGroup, parameters: weights, weightDecay: weightDecay),
                 ParameterGroup(name: BitRows.scaleGroup, parameters: scales)]
        for b in bitSet {
            g.append(ParameterGroup(name: BitRows.scaleGroup(bits: b), parameters: scaleRows[b] ?? [],
                                    lrMultiplier: scaleMultiplier(b)))
        }
        g.append(ParameterGroup(name: BitRows.pinnedScaleGroup, parameters: pinned))
        g.append(ParameterGroup(name: BitRows.otherGroup, parameters: others))
        return g
    }

    /// Splits parameters and gradients into what one optimizer step sees: shared parameters under their own names
    /// (moved out of `values`), and the rows of `stepBits` under their virtual names.
    func split(values: inout [String: Tensor], gradients: [String: Tensor], stepBits: [Int]) throws
        -> (parameters: [String: Tensor], gradients: [String: Tensor]) {
        try split(values: &values, gradients: gradients, rows: { name in
            // A uniform pass at b uses row b, or (b, b) of a transitional BN.
            (rowKeys[name] ?? []).filter { stepBits.contains($0.bits) && ($0.previous == nil || $0.previous == $0.bits) }
        })
    }

    /// The rows a per-layer assignment uses: for every per-bit parameter, the bit-widths its nodes run at (a node
    /// the assignment leaves unset runs at its top), paired for transitional BN with the bits of its previous
    /// layer. Only these rows get a gradient in that pass, so only they step.
    func rows(for assignment: BitAssignment) -> [String: [RowKey]] {
        var out: [String: [RowKey]] = [:]
        for (param, keys) in rowKeys {
            let top = keys.map(\.bits).max() ?? 0
            var used = Set<RowKey>()
            let previous = rowPrevious[param].map { assignment.bits(for: $0) ?? top }
            for n in rowOwners[param] ?? [] { used.insert(RowKey(previous: previous, bits: assignment.bits(for: n) ?? top)) }
            out[param] = keys.filter(used.contains)
        }
        return out
    }

    /// The bit-width a shared weight scale trains at under `assignment` (its layer's weight bits; a scale shared by
    /// several switching layers takes the highest of them), for per-layer ALRS.
    func scaleBits(for assignment: BitAssignment, top: Int) -> [String: Int] {
        weightScaleOwners.mapValues { nodes in nodes.map { assignment.bits(for: $0) ?? top }.max() ?? top }
    }

    /// `split` with the stepped rows chosen per parameter (`rows(param)`).
    func split(values: inout [String: Tensor], gradients: [String: Tensor], rows stepRows: (String) -> [RowKey]) throws
        -> (parameters: [String: Tensor], gradients: [String: Tensor]) {
        var p: [String: Tensor] = [:], g: [String: Tensor] = [:]
        for (name, grad) in gradients {
            guard let keys = rowKeys[name] else {
                guard let v = values.removeValue(forKey: name) else {
                    throw BitSwitchError(.training, "gradient for '\(name)', which has no value")
                }
                p[name] = v
                g[name] = grad
                continue
            }
            guard let v = values[name], case .f32(let all) = v.storage, case .f32(let gall) = grad.storage,
                  all.count == gall.count else {
                throw BitSwitchError(.training, "per-bit parameter '\(name)' or its gradient is not a float tensor of its shape")
            }
            let width = all.count / keys.count
            for k in stepRows(name) {
                guard let r = keys.firstIndex(of: k) else { continue }
                let v = BitRows.virtualName(name, k)
                p[v] = Tensor(shape: [width], floats: Array(all[(r * width)..<((r + 1) * width)]))
                g[v] = Tensor(shape: [width], floats: Array(gall[(r * width)..<((r + 1) * width)]))
            }
        }
        return (p, g)
    }

    /// Puts the stepped parameters back: shared ones by name, rows into their parameter.
    func merge(_ stepped: [String: Tensor], into values: inout [String: Tensor], stepBits: [Int]) throws {
        var rowsOf: [String: [(Int, [Float])]] = [:]
        var virtual: [String: (String, RowKey)] = [:]
        for (name, keys) in rowKeys { for k in keys { virtual[BitRows.virtualName(name, k)] = (name, k) } }
        for (name, t) in stepped {
            if let (param, k) = virtual[name], let r = rowKeys[param]?.firstIndex(of: k) {
                rowsOf[param, default: []].append((r, t.floats))
            } else {
                values[name] = t
            }
        }
        for (param, rows) in rowsOf {
            guard var t = values.removeValue(forKey: param), case .f32(var a) = t.storage else {
                throw BitSwitchError(.training, "per-bit parameter '\(param)' disappeared during the step")
            }
            t.storage = .f32([])
            let width = a.count / (rowKeys[param]?.count ?? 1)
            for (r, row) in rows where row.count == width { a.replaceSubrange((r * width)..<((r + 1) * width), with: row) }
            t.storage = .f32(a)
            values[param] = t
        }
    }
}
