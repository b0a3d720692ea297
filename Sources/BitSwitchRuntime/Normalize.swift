import BitSwitchIR
import CKernels

private func channelVectors(_ ts: [Tensor], names: [String], c: Int) throws -> [[Float]] {
    try zip(ts, names).map { t, name in
        let v = try t.f32("BatchNormalization \(name)")
        guard v.count == c, t.rank == 1 else {
            throw BitSwitchError(.shape, "BatchNormalization \(name) \(shapeString(t.shape)) must be [\(c)]")
        }
        return v
    }
}

/// Inference-mode BatchNormalization (and the training-mode forward with running statistics, ONNX opset 14+).
func batchNormOp(_ x: Tensor, _ scale: Tensor, _ bias: Tensor, _ mean: Tensor, _ variance: Tensor,
                 epsilon: Float, momentum: Float, training: Bool) throws -> [Tensor] {
    guard x.rank >= 2 else { throw BitSwitchError(.shape, "BatchNormalization input \(shapeString(x.shape)) must be [N, C, ...]") }
    let xs = try x.f32("BatchNormalization input X")
    let n = x.shape[0], c = x.shape[1], s = x.shape[2...].reduce(1, *)
    let v = try channelVectors([scale, bias, mean, variance], names: ["scale", "B", "input_mean", "input_var"], c: c)
    var useMean = v[2], useVar = v[3]
    var outs: [Tensor] = []
    if training {
        var bm = [Double](repeating: 0, count: c), bv = bm
        let cnt = Double(n * s)
        for ni in 0..<n { for ci in 0..<c {
            let base = (ni * c + ci) * s
            var acc = 0.0
            for i in 0..<s { acc += Double(xs[base + i]) }
            bm[ci] += acc
        }}
        for ci in 0..<c { bm[ci] /= max(cnt, 1) }
        for ni in 0..<n { for ci in 0..<c {
            let base = (ni * c + ci) * s, m = bm[ci]
            var acc = 0.0
            for i in 0..<s { let d = Double(xs[base + i]) - m; acc += d * d }
            bv[ci] += acc
        }}
        for ci in 0..<c { bv[ci] /= max(cnt, 1) }
        useMean = bm.map { Float($0) }; useVar = bv.map { Float($0) }
        let rm = (0..<c).map { v[2][$0] * momentum + useMean[$0] * (1 - momentum) }
        let rv = (0..<c).map { v[3][$0] * momentum + useVar[$0] * (1 - momentum) }
        outs = [Tensor(shape: [c], floats: rm), Tensor(shape: [c], floats: rv)]
    }
    let a = (0..<c).map { v[0][$0] / (useVar[$0] + epsilon).squareRoot() }
    let b = (0..<c).map { v[1][$0] - useMean[$0] * a[$0] }
    let y = makeFloats(xs.count) { bs_channel_affine_f32(xs, $0, n, c, s, a, b) }
    return [Tensor(dtype: x.dtype, shape: x.shape, storage: .f32(y))] + outs
}

func softmaxOp(_ x: Tensor, axis: Int, legacy: Bool, log: Bool) throws -> Tensor {
    let xs = try x.f32(log ? "LogSoftmax input" : "Softmax input")
    if x.rank == 0 { return try softmaxOp(reshaped(x, [1]), axis: axis, legacy: legacy, log: log).reshapedTo([]) }
    let a = try normalizeAxis(axis, rank: x.rank, what: "softmax axis")
    let outer = x.shape[..<a].reduce(1, *)
    let n = legacy ? x.shape[a...].reduce(1, *) : x.shape[a]
    let inner = legacy ? 1 : x.shape[(a + 1)...].reduce(1, *)
    let y = makeFloats(xs.count) { if xs.count > 0 { bs_softmax_f32(xs, $0, outer, n, inner, log ? 1 : 0) } }
    return Tensor(dtype: x.dtype, shape: x.shape, storage: .f32(y))
}

extension Tensor {
    func reshapedTo(_ s: [Int]) -> Tensor { Tensor(dtype: dtype, shape: s, storage: storage) }
}

func reduceMeanOp(_ x: Tensor, axes: [Int]?, keepDims: Bool, noopWithEmptyAxes: Bool) throws -> Tensor {
    let xs = try x.f32("ReduceMean input")
    let r = x.rank
    if (axes ?? []).isEmpty && noopWithEmptyAxes { return x }
    let ax = Set(try (axes?.isEmpty == false ? axes! : Array(0..<r)).map {
        try normalizeAxis($0, rank: r, what: "ReduceMean axis")
    })
    let keptShape = (0..<r).map { ax.contains($0) ? 1 : x.shape[$0] }
    let outShape = keepDims ? keptShape : (0..<r).filter { !ax.contains($0) }.map { x.shape[$0] }
    let outCount = keptShape.reduce(1, *)
    let redCount = ax.reduce(1) { $0 * x.shape[$1] }
    var acc = [Double](repeating: 0, count: outCount)
    if let first = ax.min(), ax.count == r - first {
        // Trailing axes: each output is one contiguous run.
        for o in 0..<outCount {
            var s = 0.0
            for i in 0..<redCount { s += Double(xs[o * redCount + i]) }
            acc[o] = s
        }
    } else {
        let st = broadcastStrides(keptShape, to: x.shape)
        var idx = [Int](repeating: 0, count: r)
        var off = 0
        for i in 0..<xs.count {
            acc[off] += Double(xs[i])
            var d = r - 1
            while d >= 0 {
                idx[d] += 1; off += st[d]
                if idx[d] < x.shape[d] { break }
                off -= st[d] * x.shape[d]; idx[d] = 0; d -= 1
            }
        }
    }
    let y = acc.map { redCount > 0 ? Float($0 / Double(redCount)) : .nan }
    return Tensor(dtype: x.dtype, shape: outShape, storage: .f32(y))
}

func globalAveragePoolOp(_ x: Tensor) throws -> Tensor {
    guard x.rank >= 2 else { throw BitSwitchError(.shape, "GlobalAveragePool input \(shapeString(x.shape)) must be [N, C, ...]") }
    return try reduceMeanOp(x, axes: Array(2..<x.rank), keepDims: true, noopWithEmptyAxes: false)
}
