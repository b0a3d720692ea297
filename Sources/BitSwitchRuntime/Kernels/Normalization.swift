import BitSwitchIR

// LayerNormalization (forward here; its gradient lives with the training kernels).

/// Y = (X − mean) · invStd · Scale + B over the axes from `axis` on; also returns Mean and InvStdDev
/// (shape: X's leading dims, then ones), as ONNX defines them (float32, the stash type).
func layerNormOp(_ x: Tensor, _ scale: Tensor, _ bias: Tensor?, axis: Int, epsilon: Float) throws
    -> (y: Tensor, mean: Tensor, invStd: Tensor) {
    let a = try normalizeAxis(axis, rank: x.rank, what: "LayerNormalization axis")
    let outer = x.shape[..<a].reduce(1, *), inner = x.shape[a...].reduce(1, *)
    let normShape = Array(x.shape[a...])
    for (name, t) in [("Scale", scale), ("B", bias)] {
        guard let t else { continue }
        guard t.dtype == x.dtype else { throw BitSwitchError(.type, "LayerNormalization \(name) has type \(t.dtype) but X is \(x.dtype)") }
        guard t.rank <= normShape.count, (try? broadcastShapes(t.shape, normShape)) == normShape else {
            throw BitSwitchError(.shape, "LayerNormalization \(name) \(shapeString(t.shape)) does not broadcast to the normalized shape \(shapeString(normShape))")
        }
    }
    let statShape = Array(x.shape[..<a]) + Array(repeating: 1, count: x.rank - a)
    _ = try checkedCount(x.shape, x.dtype)
    var means = [Float](repeating: 0, count: outer), invs = [Float](repeating: 0, count: outer)
    if case .f64(let xs) = x.storage {
        let s = scale.shape == normShape ? scale.doubles : broadcastIndex(scale.shape, to: normShape).map { scale.doubles[$0] }
        let b = bias.map { $0.shape == normShape ? $0.doubles : broadcastIndex($0.shape, to: normShape).map { [d = $0.doubles] in d[$0] } }
        var y = [Double](repeating: 0, count: xs.count)
        for o in 0..<outer {
            let base = o * inner
            var mu = 0.0
            for i in 0..<inner { mu += xs[base + i] }
            mu /= Double(inner)
            var v = 0.0
            for i in 0..<inner { let d = xs[base + i] - mu; v += d * d }
            let inv = 1 / (v / Double(inner) + Double(epsilon)).squareRoot()
            for i in 0..<inner { y[base + i] = (xs[base + i] - mu) * inv * s[i] + (b?[i] ?? 0) }
            means[o] = Float(mu); invs[o] = Float(inv)
        }
        return (Tensor(dtype: .f64, shape: x.shape, storage: .f64(y)), floatTensor(statShape, means), floatTensor(statShape, invs))
    }
    let xs = try x.f32("LayerNormalization X")
    let sv = try scale.f32("LayerNormalization Scale"), bv = try bias?.f32("LayerNormalization B")
    let s = scale.shape == normShape ? sv : broadcastIndex(scale.shape, to: normShape).map { sv[$0] }
    let b = bias.map { $0.shape == normShape ? bv! : broadcastIndex($0.shape, to: normShape).map { bv![$0] } }
    let y: [Float] = makeFloats(xs.count) { yp in
        xs.withUnsafeBufferPointer { xb in s.withUnsafeBufferPointer { sb in
            means.withUnsafeMutableBufferPointer { mb in invs.withUnsafeMutableBufferPointer { ib in
                let bp = b
                parallelFor(outer, minChunk: max(1, 8192 / max(inner, 1))) { rows in
                    for o in rows {
                        let p = xb.baseAddress! + o * inner
                        let mu = inner > 0 ? vectorSum(p, inner) / Float(inner) : 0
                        let v = inner > 0 ? vectorSquaredDeviation(p, inner, mu) / Float(inner) : 0
                        let inv = 1 / (v + epsilon).squareRoot()
                        let q = yp + o * inner
                        if let bp {
                            for i in 0..<inner { q[i] = (p[i] - mu) * inv * sb[i] + bp[i] }
                        } else {
                            for i in 0..<inner { q[i] = (p[i] - mu) * inv * sb[i] }
                        }
                        mb[o] = mu; ib[o] = inv
                    }
                }
            }}
        }}
    }
    return (Tensor(dtype: x.dtype, shape: x.shape, storage: .f32(y)), floatTensor(statShape, means), floatTensor(statShape, invs))
}
