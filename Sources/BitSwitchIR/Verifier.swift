/// Checks the IR's invariants: SSA (every value defined once, before its uses, so no cycles), graph outputs
/// defined, each op's arity and attribute rules, and the quant dialect's rules. The first violation is thrown
/// as a `.verify` error naming the node and op.
public func verify(_ g: Graph) throws {
    var defined = Set<String>()
    var seenInputs = Set<String>()
    for i in g.inputs {
        if i.name.isEmpty { throw BitSwitchError(.verify, "a graph input has an empty name") }
        guard seenInputs.insert(i.name).inserted else {
            throw BitSwitchError(.verify, "graph input '\(i.name)' is declared twice")
        }
        defined.insert(i.name)
    }
    for (name, _) in g.orderedInitializers {
        if name.isEmpty { throw BitSwitchError(.verify, "a constant has an empty name") }
        // An input that is also a constant is ONNX's "input with a default value"; it stays one value.
        defined.insert(name)
    }

    let producedLater = Set(g.nodes.flatMap(\.outputs))
    for n in g.nodes {
        func fail(_ message: String) -> BitSwitchError {
            BitSwitchError(.verify, message, node: n.label, op: n.op.typeName, domain: n.op.domain)
        }
        for v in n.inputs where !v.isEmpty && !defined.contains(v) {
            if producedLater.contains(v) {
                throw fail("input '\(v)' is used before the node that defines it (nodes out of order, or a cycle)")
            }
            throw fail("input '\(v)' is not defined: not a graph input, a constant, nor an output of an earlier node")
        }
        try checkArity(n).map { throw fail($0) }
        try checkAttributes(n, g).map { throw fail($0) }
        for o in n.outputs where !o.isEmpty {
            guard defined.insert(o).inserted else { throw fail("value '\(o)' is defined more than once") }
        }
    }
    var seenOutputs = Set<String>()
    for o in g.outputs {
        guard defined.contains(o.name) else {
            throw BitSwitchError(.verify, "graph output '\(o.name)' is not defined by any input, constant or node")
        }
        guard seenOutputs.insert(o.name).inserted else {
            throw BitSwitchError(.verify, "graph output '\(o.name)' is listed twice")
        }
    }
}

/// (min inputs, max inputs, min outputs, max outputs); the first `min inputs` must be present (non-empty).
private func arity(_ op: Op) -> (Int, Int, Int, Int) {
    switch op {
    case .conv, .gemm: return (2, 3, 1, 1)
    case .matMul, .add, .sub, .mul, .div, .gather: return (2, 2, 1, 1)
    case .relu, .leakyRelu, .sigmoid, .hardSigmoid, .hardSwish, .tanh, .globalAveragePool, .flatten, .transpose,
         .softmax, .logSoftmax, .identity, .shape, .averagePool:
        return (1, 1, 1, 1)
    case .clip(let lo, let hi): return (lo == nil && hi == nil) ? (1, 3, 1, 1) : (1, 1, 1, 1)
    case .batchNormalization(_, _, let training): return (5, 5, 1, training ? 3 : 1)
    case .maxPool: return (1, 1, 1, 2)
    case .reshape: return (2, 2, 1, 1)
    case .concat: return (1, Int.max, 1, 1)
    case .squeeze(let axes), .unsqueeze(let axes):
        if axes != nil { return (1, 1, 1, 1) }
        if case .unsqueeze = op { return (2, 2, 1, 1) }
        return (1, 2, 1, 1)
    case .dropout: return (1, 3, 1, 2)
    case .pad(_, let pads, _): return pads == nil ? (2, 4, 1, 1) : (1, 1, 1, 1)
    case .reduceMean(let axes, _, _): return axes == nil ? (1, 2, 1, 1) : (1, 1, 1, 1)
    case .quantizeLinear, .dequantizeLinear: return (2, 3, 1, 1)
    case .fakeQuantWeight, .fakeQuantAct: return (2, 2, 1, 1)
    case .switchableBatchNorm: return (5, 5, 1, 1)
    case .switchableLayerNorm: return (3, 3, 1, 1)
    case .quantize, .dequantize, .qmaxPool, .qavgPool, .qglobalAvgPool: return (1, 1, 1, 1)
    case .qconv, .qgemm, .qadd: return (2, 2, 1, 1)
    case .requant: return (4, 4, 1, 1)
    case .layerNormalization, .gelu, .erf, .sqrt, .reciprocal, .neg, .exp, .pow, .cast, .select, .equal, .less, .not,
         .expand, .constantOfShape, .range, .slice, .split, .reduceSum, .reduceMax:
        return transformerArity(op)
    }
}

func checkArity(_ n: Node) -> String? {
    let (minIn, maxIn, minOut, maxOut) = arity(n.op)
    func range(_ lo: Int, _ hi: Int) -> String { lo == hi ? "\(lo)" : hi == Int.max ? "at least \(lo)" : "\(lo) to \(hi)" }
    if n.inputs.count < minIn || n.inputs.count > maxIn {
        return "takes \(range(minIn, maxIn)) inputs, has \(n.inputs.count)"
    }
    if n.outputs.count < minOut || n.outputs.count > maxOut {
        return "has \(range(minOut, maxOut)) outputs, has \(n.outputs.count)"
    }
    let required: Int
    if case .concat = n.op { required = n.inputs.count } else { required = minIn }
    if let k = (0..<required).first(where: { n.inputs[$0].isEmpty }) { return "required input \(k) is absent" }
    if n.outputs.first?.isEmpty ?? false { return "its first output has an empty name" }
    return nil
}

private func checkAttributes(_ n: Node, _ g: Graph) -> String? {
    func positive(_ name: String, _ v: [Int]?) -> String? {
        guard let v, let bad = v.first(where: { $0 < 1 }) else { return nil }
        return "\(name) \(v) has a value \(bad) < 1"
    }
    func pads(_ p: [Int]?, spatial: Int?) -> String? {
        guard let p, let spatial else { return nil }
        return p.count == 2 * spatial ? nil
            : "pads \(p) must have \(2 * spatial) values (begin and end for each of \(spatial) spatial axes)"
    }
    func lengthMatches(_ name: String, _ v: [Int]?, _ spatial: Int?) -> String? {
        guard let v, let spatial, v.count != spatial else { return nil }
        return "\(name) \(v) must have \(spatial) values, one per spatial axis"
    }
    func bitsRule(_ bits: [Int], maxBits: Int) -> String? {
        if bits.isEmpty { return "bits is empty" }
        if zip(bits, bits.dropFirst()).contains(where: { $0 <= $1 }) { return "bits \(bits) must be strictly descending" }
        if let bad = bits.first(where: { $0 < 1 || $0 > maxBits }) { return "bit-width \(bad) is outside 1...\(maxBits)" }
        return nil
    }

    func rangeRule(_ lo: Int, _ hi: Int, _ to: DType) -> String? {
        guard let r = to.integerRange else { return "output type \(to) is not an integer type" }
        return lo <= hi && r.contains(lo) && r.contains(hi) ? nil : "clamp range [\(lo), \(hi)] does not fit \(to)"
    }
    func weightRule(_ shift: Int, _ bits: Int) -> String? {
        if bits < 1 || bits > 8 { return "w_bits \(bits) must be in 1...8" }
        if shift < 0 || shift > 7 { return "w_shift \(shift) must be in 0...7" }
        return nil
    }

    switch n.op {
    case .conv(let c):
        if c.group < 1 { return "group \(c.group) must be >= 1" }
        var spatial = c.kernelShape?.count
        if spatial == nil, n.inputs.count > 1, let w = g.type(of: n.inputs[1])?.rank { spatial = max(w - 2, 0) }
        return positive("kernel_shape", c.kernelShape) ?? positive("strides", c.strides)
            ?? positive("dilations", c.dilations) ?? pads(c.pads, spatial: spatial)
            ?? lengthMatches("strides", c.strides, spatial) ?? lengthMatches("dilations", c.dilations, spatial)
            ?? c.pads.flatMap { $0.contains { $0 < 0 } ? "pads \($0) must not be negative" : nil }
    case .maxPool(let p), .averagePool(let p):
        let spatial = p.kernelShape.count
        if spatial == 0 { return "kernel_shape is empty" }
        return positive("kernel_shape", p.kernelShape) ?? positive("strides", p.strides)
            ?? positive("dilations", p.dilations) ?? pads(p.pads, spatial: spatial)
            ?? lengthMatches("strides", p.strides, spatial) ?? lengthMatches("dilations", p.dilations, spatial)
            ?? p.pads.flatMap { $0.contains { $0 < 0 } ? "pads \($0) must not be negative" : nil }
    case .transpose(let perm):
        if let perm, perm.sorted() != Array(0..<perm.count) { return "perm \(perm) is not a permutation of 0..<\(perm.count)" }
    case .batchNormalization(let eps, _, _):
        if !(eps >= 0) { return "epsilon \(formatFloat(eps)) must be >= 0" }
    case .switchableBatchNorm(let bits, let eps, _, let previous):
        if !(eps >= 0) { return "epsilon \(formatFloat(eps)) must be >= 0" }
        let rows = Op.switchableBatchNormRows(bits: bits, previous: previous)
        for p in n.inputs.dropFirst() {
            if let t = g.initializers[p], t.shape.first != rows || t.rank != 2 {
                return previous == nil
                    ? "parameter '\(p)' has shape \(t.shape), expected [\(bits.count), C] for bits \(bits)"
                    : "parameter '\(p)' has shape \(t.shape), expected [\(rows), C] (one row per (previous, own) pair of bits \(bits))"
            }
        }
        if let previous {
            guard let pn = g.nodes.first(where: { $0.name == previous }) else {
                return "previous '\(previous)' is not a node of this graph (it must name the previous layer's FakeQuantWeight)"
            }
            guard case .fakeQuantWeight(let w) = pn.op else {
                return "previous '\(previous)' is a \(pn.op.typeName), not the previous layer's FakeQuantWeight"
            }
            if w.bits != bits { return "previous '\(previous)' trains bits \(w.bits), this BN \(bits)" }
            if let p = w.pinnedBits {
                return "previous '\(previous)' is pinned at \(p) bits; after a pinned layer the BN needs no transitional rows"
            }
        }
        return bitsRule(bits, maxBits: 32)
    case .switchableLayerNorm(let bits, _, let eps):
        if !(eps >= 0) { return "epsilon \(formatFloat(eps)) must be >= 0" }
        for p in n.inputs.dropFirst() {
            if let t = g.initializers[p], t.shape.first != bits.count || t.rank != 2 {
                return "parameter '\(p)' has shape \(t.shape), expected [\(bits.count), D] for bits \(bits)"
            }
        }
        return bitsRule(bits, maxBits: 32)
    case .dropout(let ratio):
        if !(ratio >= 0 && ratio < 1) { return "ratio \(formatFloat(ratio)) must be in [0, 1)" }
    case .fakeQuantWeight(let q):
        if q.storedBits < 2 || q.storedBits > 16 { return "stored_bits \(q.storedBits) must be in 2...16" }
        if let pinned = q.pinnedBits, pinned < 1 || pinned > q.storedBits {
            return "pinned_bits \(pinned) must be in 1...stored_bits (\(q.storedBits))"
        }
        return bitsRule(q.bits, maxBits: q.storedBits)
    case .fakeQuantAct(let q):
        if let pinned = q.pinnedBits, pinned < 1 || pinned > 16 { return "pinned_bits \(pinned) must be in 1...16" }
        if let scales = g.initializers[n.inputs[1]], scales.count != q.bits.count {
            return "scales '\(n.inputs[1])' hold \(scales.count) values for \(q.bits.count) bit-widths \(q.bits)"
        }
        return bitsRule(q.bits, maxBits: 16)
    case .quantize(let scale, _, let lo, let hi, let to):
        if !(scale > 0 && scale.isFinite) { return "scale \(formatFloat(scale)) must be positive and finite" }
        return rangeRule(lo, hi, to)
    case .requant(let r):
        return rangeRule(r.lo, r.hi, r.to)
    case .dequantize(let scale, _):
        if !scale.isFinite { return "scale \(formatFloat(scale)) must be finite" }
    case .qadd(let q):
        if q.n < 0 || q.n > 62 { return "shift n \(q.n) must be in 0...62" }
        for (k, m) in [("m_a", q.ma), ("m_b", q.mb)] where abs(m) >= 1 << 31 { return "\(k) \(m) does not fit int32" }
        return rangeRule(q.lo, q.hi, q.to)
    case .qconv(let q):
        if q.conv.group < 1 { return "group \(q.conv.group) must be >= 1" }
        return weightRule(q.wShift, q.wBits)
    case .qgemm(let q):
        return weightRule(q.wShift, q.wBits)
    case .qmaxPool(let p), .qavgPool(let p, _):
        if p.kernelShape.isEmpty { return "kernel_shape is empty" }
        return positive("kernel_shape", p.kernelShape) ?? positive("strides", p.strides)
            ?? p.pads.flatMap { $0.contains { $0 < 0 } ? "pads \($0) must not be negative" : nil }
    case .qglobalAvgPool:
        break
    case .gemm, .matMul, .add, .sub, .mul, .div, .relu, .leakyRelu, .clip, .sigmoid, .hardSigmoid, .hardSwish, .tanh,
         .globalAveragePool, .flatten, .reshape, .concat, .squeeze, .unsqueeze, .softmax, .logSoftmax, .identity,
         .pad, .reduceMean, .shape, .gather, .quantizeLinear, .dequantizeLinear:
        break
    case .layerNormalization, .gelu, .erf, .sqrt, .reciprocal, .neg, .exp, .pow, .cast, .select, .equal, .less, .not,
         .expand, .constantOfShape, .range, .slice, .split, .reduceSum, .reduceMax:
        break
    }
    return nil
}
