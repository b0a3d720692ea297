import BitSwitchIR

/// Folds an inference-mode BatchNormalization into the Conv or Gemm that feeds it, when that producer has no
/// other reader: per output channel, f = scale / sqrt(var + eps), W' = W * f, b' = (b - mean) * f + B.
/// BatchNormalization with training_mode = 1 is left alone (training needs its batch statistics).
///
///     %c = Conv(%x, %w, %b) : f32[N,8,6,6]                  %y = Conv(%x, %w, %b) : f32[N,8,6,6]
///     %y = BatchNormalization(%c, %s, %B, %m, %v)    ==>    (%w and %b hold the folded values)
let foldBatchNorm = Pass(
    name: "fold-batchnorm",
    summary: "fold inference BatchNormalization into the preceding Conv or Gemm"
) { g, _, context in
    var folded = 0
    var i = 0
    while i < g.nodes.count {
        if try fold(batchNormAt: i, in: &g) { folded += 1 } else { i += 1 }
    }
    context.logger("fold-batchnorm: folded \(folded) BatchNormalization nodes")
}

/// Per-channel affine map of a BatchNormalization: y = x * factor + shift.
private struct ChannelAffine {
    var factor: [Float]
    var mean: [Float]
    var bias: [Float]
}

private func fold(batchNormAt i: Int, in g: inout Graph) throws -> Bool {
    let bn = g.nodes[i]
    guard case .batchNormalization(let eps, _, false) = bn.op, bn.inputs.count == 5,
          bn.outputs.dropFirst().allSatisfy({ $0.isEmpty }) else { return false }
    let x = bn.inputs[0]
    guard let p = g.producers[x], g.consumers[x]?.count == 1, !g.outputNames.contains(x),
          let affine = try channelAffine(bn, eps: eps, in: g) else { return false }
    let producer = g.nodes[p]
    let ok: Bool
    switch producer.op {
    case .conv: ok = try foldIntoConv(producerAt: p, affine, bn: bn, in: &g)
    case .gemm(let attrs): ok = try foldIntoGemm(producerAt: p, attrs, affine, bn: bn, in: &g)
    default: ok = false
    }
    guard ok else { return false }
    g.nodes[p].outputs[0] = bn.outputs[0]
    g.nodes.remove(at: i)
    g.valueTypes[x] = nil
    for v in bn.inputs.dropFirst() { removeIfUnused(v, in: &g) }
    return true
}

private func channelAffine(_ bn: Node, eps: Float, in g: Graph) throws -> ChannelAffine? {
    let params = bn.inputs.dropFirst().map { g.initializers[$0] }
    guard params.allSatisfy({ $0.map { $0.dtype.isFloat && $0.rank == 1 } ?? false }) else { return nil }
    let scale = params[0]!.floats, bias = params[1]!.floats, mean = params[2]!.floats, variance = params[3]!.floats
    guard Set([scale.count, bias.count, mean.count, variance.count]).count == 1 else {
        throw BitSwitchError(.invalidModel, "BatchNormalization parameters have different lengths "
            + "(scale \(scale.count), bias \(bias.count), mean \(mean.count), var \(variance.count))",
            node: bn.label, op: bn.op.typeName)
    }
    let factor = zip(scale, variance).map { s, v in s / (v + eps).squareRoot() }
    return ChannelAffine(factor: factor, mean: mean, bias: bias)
}

private func foldIntoConv(producerAt p: Int, _ a: ChannelAffine, bn: Node, in g: inout Graph) throws -> Bool {
    let conv = g.nodes[p]
    guard let w = g.initializers[conv.inputs[1]], w.dtype.isFloat, w.rank >= 1, w.shape[0] == a.factor.count else {
        return false
    }
    let oldBias = conv.inputs.count > 2 && !conv.inputs[2].isEmpty ? conv.inputs[2] : nil
    var b = [Float](repeating: 0, count: a.factor.count)
    if let oldBias {
        guard let t = g.initializers[oldBias], t.count == b.count else { return false }
        b = t.floats
    }
    var wv = w.floats
    let per = w.count / max(w.shape[0], 1)
    for m in 0..<a.factor.count { for k in 0..<per { wv[m * per + k] *= a.factor[m] } }
    let nb = (0..<b.count).map { m in (b[m] - a.mean[m]) * a.factor[m] + a.bias[m] }

    let wName = replacement(for: conv.inputs[1], in: g)
    g.setInitializer(wName, floatTensor(like: w, shape: w.shape, wv))
    let bName = biasName(oldBias, bn: bn, in: g)
    g.setInitializer(bName, floatTensor(like: w, shape: [nb.count], nb))
    g.nodes[p].inputs = [conv.inputs[0], wName, bName]
    if wName != conv.inputs[1] { removeIfUnused(conv.inputs[1], in: &g) }
    if let oldBias, oldBias != bName { removeIfUnused(oldBias, in: &g) }
    return true
}

/// Gemm's output channel is its column n: scale column n of B (row n when transB) and build C' = (beta*C - mean) * f + B
/// for beta = 1. A C that varies per row cannot absorb a per-column shift; such a Gemm is left alone.
private func foldIntoGemm(producerAt p: Int, _ attrs: GemmAttrs, _ a: ChannelAffine, bn: Node,
                          in g: inout Graph) throws -> Bool {
    let gemm = g.nodes[p]
    let n = a.factor.count
    guard let w = g.initializers[gemm.inputs[1]], w.dtype.isFloat, w.rank == 2,
          (attrs.transB ? w.shape[0] : w.shape[1]) == n else { return false }
    let oldC = gemm.inputs.count > 2 && !gemm.inputs[2].isEmpty ? gemm.inputs[2] : nil
    var c = [Float](repeating: 0, count: n)
    if let oldC {
        guard let t = g.initializers[oldC] else { return false }
        switch t.shape {
        case [], [1], [1, 1]: c = Array(repeating: t.floats[0], count: n)
        case [n], [1, n]: c = t.floats
        default: return false
        }
    }
    var wv = w.floats
    let rows = w.shape[0], cols = w.shape[1]
    for r in 0..<rows {
        for col in 0..<cols { wv[r * cols + col] *= a.factor[attrs.transB ? r : col] }
    }
    let nc = (0..<n).map { k in (attrs.beta * c[k] - a.mean[k]) * a.factor[k] + a.bias[k] }

    let wName = replacement(for: gemm.inputs[1], in: g)
    g.setInitializer(wName, floatTensor(like: w, shape: w.shape, wv))
    let cName = biasName(oldC, bn: bn, in: g)
    g.setInitializer(cName, floatTensor(like: w, shape: [n], nc))
    var newAttrs = attrs
    newAttrs.beta = 1
    g.nodes[p].op = .gemm(newAttrs)
    g.nodes[p].inputs = [gemm.inputs[0], wName, cName]
    if wName != gemm.inputs[1] { removeIfUnused(gemm.inputs[1], in: &g) }
    if let oldC, oldC != cName { removeIfUnused(oldC, in: &g) }
    return true
}

/// The constant's own name when the folding node is its only reader (it is overwritten), else a fresh name.
private func replacement(for name: String, in g: Graph) -> String {
    soleReader(name, in: g) ? name : g.freshName(name + ".folded")
}

/// The folded bias takes over the producer's bias, else the BatchNormalization's own bias, when nothing else reads it.
private func biasName(_ oldBias: String?, bn: Node, in g: Graph) -> String {
    if let oldBias, soleReader(oldBias, in: g) { return oldBias }
    if soleReader(bn.inputs[2], in: g) { return bn.inputs[2] }
    return g.freshName(bn.inputs[2] + ".folded")
}

private func soleReader(_ v: String, in g: Graph) -> Bool {
    (g.consumers[v]?.count ?? 0) == 1 && !g.outputNames.contains(v) && !g.inputNames.contains(v)
        && g.initializers[v] != nil
}

private func removeIfUnused(_ v: String, in g: inout Graph) {
    if g.initializers[v] != nil, g.consumers[v] == nil, !g.outputNames.contains(v) { g.removeInitializer(v) }
}

/// Folded values keep the weight's element type; f16 values are rounded to f16 precision.
private func floatTensor(like w: Tensor, shape: [Int], _ v: [Float]) -> Tensor {
    let values = w.dtype == .f16 ? v.map { Float(Float16($0)) } : v
    return Tensor(dtype: w.dtype, shape: shape, storage: .f32(values))
}
