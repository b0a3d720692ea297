import BitSwitchIR
import CBLAS

// MARK: broadcasting shapes

/// Numpy broadcast of two shapes.
func broadcastShapes(_ a: [Int], _ b: [Int]) throws -> [Int] {
    let r = max(a.count, b.count)
    let pa = [Int](repeating: 1, count: r - a.count) + a, pb = [Int](repeating: 1, count: r - b.count) + b
    var out = [Int](repeating: 0, count: r)
    for i in 0..<r {
        if pa[i] == pb[i] || pb[i] == 1 { out[i] = pa[i] }
        else if pa[i] == 1 { out[i] = pb[i] }
        else {
            throw BitSwitchError(.shape, "shapes \(shapeString(a)) and \(shapeString(b)) cannot be broadcast together")
        }
    }
    return out
}

/// Element strides of `shape` read as `out` (right-aligned; 0 on broadcast dims).
func broadcastStrides(_ shape: [Int], to out: [Int]) -> [Int] {
    let pad = out.count - shape.count
    let st = contiguousStrides(shape)
    return (0..<out.count).map { i in
        i < pad ? 0 : (shape[i - pad] == 1 && out[i] != 1 ? 0 : st[i - pad])
    }
}

/// Sum of `g` (shape `from`) down to `to`, where `to` broadcasts to `from`.
func reduceToShape(_ g: [Float], from: [Int], to: [Int]) -> [Float] {
    if from == to { return g }
    let count = to.reduce(1, *)
    var r = [Float](repeating: 0, count: count)
    let st = broadcastStrides(to, to: from)
    let n = from.count
    var idx = [Int](repeating: 0, count: n)
    var off = 0
    g.withUnsafeBufferPointer { gb in r.withUnsafeMutableBufferPointer { rb in
        for i in 0..<gb.count {
            rb[off] += gb[i]
            var d = n - 1
            while d >= 0 {
                idx[d] += 1; off += st[d]
                if idx[d] < from[d] { break }
                off -= st[d] * from[d]; idx[d] = 0; d -= 1
            }
        }
    }}
    return r
}

// MARK: Gemm

private func gemmDims(_ a: [Int], _ b: [Int], _ attrs: GemmAttrs) throws -> (m: Int, k: Int, n: Int) {
    guard a.count == 2, b.count == 2 else {
        throw BitSwitchError(.shape, "Gemm needs 2-D A and B, got \(shapeString(a)) and \(shapeString(b))")
    }
    let (m, k) = attrs.transA ? (a[1], a[0]) : (a[0], a[1])
    let (kb, n) = attrs.transB ? (b[1], b[0]) : (b[0], b[1])
    try checkBLASDims([m, k, n])
    guard k == kb else {
        throw BitSwitchError(.shape, "Gemm inner dims differ: A \(shapeString(a)) (transA=\(attrs.transA)) and B \(shapeString(b)) (transB=\(attrs.transB))")
    }
    return (m, k, n)
}

public func gemmForward(a: Tensor, b: Tensor, c: Tensor?, attrs: GemmAttrs) throws -> Tensor {
    let (m, k, n) = try gemmDims(a.shape, b.shape, attrs)
    let av = try a.f32("Gemm input A"), bv = try b.f32("Gemm input B")
    var cv: [Float]? = nil
    var cStrides = [0, 0]
    if let c, attrs.beta != 0 {
        cv = try c.f32("Gemm input C")
        guard c.rank <= 2 else { throw BitSwitchError(.shape, "Gemm C \(shapeString(c.shape)) must have rank <= 2") }
        let out = try broadcastShapes(c.shape, [m, n])
        guard out == [m, n] else {
            throw BitSwitchError(.shape, "Gemm C \(shapeString(c.shape)) does not broadcast to [\(m),\(n)]")
        }
        cStrides = broadcastStrides(c.shape, to: [m, n])
    }
    let count = try checkedCount([m, n])
    let y = makeFloats(count) { yp in
        if let cv {
            for i in 0..<m { for j in 0..<n { yp[i * n + j] = attrs.beta * cv[i * cStrides[0] + j * cStrides[1]] } }
        } else {
            yp.initialize(repeating: 0, count: count)
        }
        if m > 0 && n > 0 && k > 0 {
            cblas_sgemm(CblasRowMajor, attrs.transA ? CblasTrans : CblasNoTrans, attrs.transB ? CblasTrans : CblasNoTrans,
                        Int32(m), Int32(n), Int32(k), attrs.alpha, av, Int32(a.shape[1]), bv, Int32(b.shape[1]), 1,
                        yp, Int32(n))
        }
    }
    return Tensor(shape: [m, n], floats: y)
}

public func gemmBackward(a: Tensor, b: Tensor, hasC: Bool, cShape: [Int]?, gradY: Tensor, attrs: GemmAttrs) throws
    -> (da: Tensor, db: Tensor, dc: Tensor?) {
    let (m, k, n) = try gemmDims(a.shape, b.shape, attrs)
    guard gradY.shape == [m, n] else {
        throw BitSwitchError(.shape, "Gemm gradient dY \(shapeString(gradY.shape)) must be [\(m),\(n)]")
    }
    let av = try a.f32("Gemm input A"), bv = try b.f32("Gemm input B"), g = try gradY.f32("Gemm gradient dY")
    let lda = Int32(a.shape[1]), ldb = Int32(b.shape[1])
    // A' = op(A) [m,k], B' = op(B) [k,n]; dA' = alpha dY B'^T, dB' = alpha A'^T dY, transposed back when stored transposed.
    let da = makeFloats(a.count, zeroed: true) { p in
        guard m > 0, n > 0, k > 0 else { return }
        if !attrs.transA {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, attrs.transB ? CblasNoTrans : CblasTrans, Int32(m), Int32(k), Int32(n),
                        attrs.alpha, g, Int32(n), bv, ldb, 0, p, lda)
        } else {
            cblas_sgemm(CblasRowMajor, attrs.transB ? CblasTrans : CblasNoTrans, CblasTrans, Int32(k), Int32(m), Int32(n),
                        attrs.alpha, bv, ldb, g, Int32(n), 0, p, lda)
        }
    }
    let db = makeFloats(b.count, zeroed: true) { p in
        guard m > 0, n > 0, k > 0 else { return }
        if !attrs.transB {
            cblas_sgemm(CblasRowMajor, attrs.transA ? CblasNoTrans : CblasTrans, CblasNoTrans, Int32(k), Int32(n), Int32(m),
                        attrs.alpha, av, lda, g, Int32(n), 0, p, ldb)
        } else {
            cblas_sgemm(CblasRowMajor, CblasTrans, attrs.transA ? CblasTrans : CblasNoTrans, Int32(n), Int32(k), Int32(m),
                        attrs.alpha, g, Int32(n), av, lda, 0, p, ldb)
        }
    }
    var dc: Tensor? = nil
    if hasC {
        let cs = cShape ?? [m, n]
        guard cs.count <= 2, (try? broadcastShapes(cs, [m, n])) == [m, n] else {
            throw BitSwitchError(.shape, "Gemm C \(shapeString(cs)) does not broadcast to [\(m),\(n)]")
        }
        var r = reduceToShape(g, from: [m, n], to: cs)
        if attrs.beta != 1 { for i in r.indices { r[i] *= attrs.beta } }
        dc = Tensor(shape: cs, floats: r)
    }
    return (Tensor(shape: a.shape, floats: da), Tensor(shape: b.shape, floats: db), dc)
}

// MARK: MatMul

/// numpy.matmul shapes: operands as batch + [rows, cols], the broadcast batch, and the result shape.
private struct MatMulPlan {
    var m: Int, k: Int, n: Int
    var aBatch: [Int], bBatch: [Int], batch: [Int]
    var yShape: [Int]

    init(_ a: [Int], _ b: [Int]) throws {
        guard !a.isEmpty, !b.isEmpty else {
            throw BitSwitchError(.shape, "MatMul operands must have rank >= 1, got \(shapeString(a)) and \(shapeString(b))")
        }
        let a2 = a.count == 1 ? [1, a[0]] : a, b2 = b.count == 1 ? [b[0], 1] : b
        m = a2[a2.count - 2]; k = a2[a2.count - 1]; n = b2[b2.count - 1]
        guard b2[b2.count - 2] == k else {
            throw BitSwitchError(.shape, "MatMul inner dims differ: \(shapeString(a)) and \(shapeString(b))")
        }
        try checkBLASDims([checkedElementCount(a2.dropLast(1)) ?? Int.max, k, n])
        aBatch = Array(a2.dropLast(2)); bBatch = Array(b2.dropLast(2))
        batch = try broadcastShapes(aBatch, bBatch)
        var y = batch
        if a.count > 1 { y.append(m) }
        if b.count > 1 { y.append(n) }
        yShape = y
    }

    /// For each output batch index, the batch index into A and into B.
    var pairs: [(Int, Int)] {
        let total = batch.reduce(1, *)
        let sa = broadcastStrides(aBatch, to: batch), sb = broadcastStrides(bBatch, to: batch)
        var r: [(Int, Int)] = []
        r.reserveCapacity(total)
        var idx = [Int](repeating: 0, count: batch.count)
        for _ in 0..<total {
            var ia = 0, ib = 0
            for d in 0..<batch.count { ia += idx[d] * sa[d]; ib += idx[d] * sb[d] }
            r.append((ia, ib))
            var d = batch.count - 1
            while d >= 0 { idx[d] += 1; if idx[d] < batch[d] { break }; idx[d] = 0; d -= 1 }
        }
        return r
    }
    /// B is shared by every batch and A is not broadcast: one GEMM with the batch folded into rows.
    var foldsIntoRows: Bool { bBatch.reduce(1, *) == 1 && aBatch.reduce(1, *) == batch.reduce(1, *) }
}

public func matMulForward(a: Tensor, b: Tensor) throws -> Tensor {
    let p = try MatMulPlan(a.shape, b.shape)
    let av = try a.f32("MatMul input A"), bv = try b.f32("MatMul input B")
    let count = try checkedCount(p.yShape)
    let (m, k, n) = (p.m, p.k, p.n)
    let y = makeFloats(count, zeroed: true) { yp in
        guard m > 0, n > 0, k > 0, count > 0 else { return }
        if p.foldsIntoRows {
            let rows = m * p.batch.reduce(1, *)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(n), Int32(k), 1, av, Int32(k),
                        bv, Int32(n), 0, yp, Int32(n))
            return
        }
        av.withUnsafeBufferPointer { ab in bv.withUnsafeBufferPointer { bb in
            for (i, (ia, ib)) in p.pairs.enumerated() {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), 1,
                            ab.baseAddress! + ia * m * k, Int32(k), bb.baseAddress! + ib * k * n, Int32(n), 0,
                            yp + i * m * n, Int32(n))
            }
        }}
    }
    return Tensor(shape: p.yShape, floats: y)
}

public func matMulBackward(a: Tensor, b: Tensor, gradY: Tensor) throws -> (da: Tensor, db: Tensor) {
    let p = try MatMulPlan(a.shape, b.shape)
    guard gradY.shape == p.yShape else {
        throw BitSwitchError(.shape, "MatMul gradient dY \(shapeString(gradY.shape)) must match Y \(shapeString(p.yShape))")
    }
    let av = try a.f32("MatMul input A"), bv = try b.f32("MatMul input B"), g = try gradY.f32("MatMul gradient dY")
    let (m, k, n) = (p.m, p.k, p.n)
    var da = [Float](repeating: 0, count: a.count), db = [Float](repeating: 0, count: b.count)
    if m > 0 && n > 0 && k > 0 && !g.isEmpty {
        if p.foldsIntoRows {
            let rows = Int32(m * p.batch.reduce(1, *))
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, Int32(k), Int32(n), 1, g, Int32(n), bv, Int32(n),
                        0, &da, Int32(k))
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(k), Int32(n), rows, 1, av, Int32(k), g, Int32(n),
                        0, &db, Int32(n))
        } else {
            av.withUnsafeBufferPointer { ab in bv.withUnsafeBufferPointer { bb in g.withUnsafeBufferPointer { gb in
            da.withUnsafeMutableBufferPointer { dab in db.withUnsafeMutableBufferPointer { dbb in
                for (i, (ia, ib)) in p.pairs.enumerated() {
                    let gi = gb.baseAddress! + i * m * n
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(k), Int32(n), 1, gi, Int32(n),
                                bb.baseAddress! + ib * k * n, Int32(n), 1, dab.baseAddress! + ia * m * k, Int32(k))
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(k), Int32(n), Int32(m), 1,
                                ab.baseAddress! + ia * m * k, Int32(k), gi, Int32(n), 1, dbb.baseAddress! + ib * k * n,
                                Int32(n))
                }
            }}}}}
        }
    }
    return (Tensor(shape: a.shape, floats: da), Tensor(shape: b.shape, floats: db))
}
