import BitSwitchIR

// Small helpers shared by the training kernels. Kernels compute on [Float] buffers and wrap results in Tensor.

extension Tensor {
    /// The float elements, or a training error naming `what` when the tensor is not float.
    func trainingFloats(_ what: String) throws -> [Float] {
        guard case .f32(let a) = storage else {
            throw BitSwitchError(.training, "\(what) must be a float tensor, got \(dtype)")
        }
        return a
    }
}

func required(_ inputs: [Tensor?], _ i: Int, _ node: Node) throws -> Tensor {
    guard i < inputs.count, let t = inputs[i] else {
        throw BitSwitchError(.invalidModel, "missing required input \(i)", node: node.label, op: node.op.typeName)
    }
    return t
}

/// NumPy broadcasting of two shapes, with each operand's strides aligned to the output (0 on broadcast dims).
struct Broadcast {
    let outShape: [Int]
    let aStrides: [Int]
    let bStrides: [Int]

    init(_ a: [Int], _ b: [Int]) throws {
        let r = max(a.count, b.count)
        let pa = [Int](repeating: 1, count: r - a.count) + a
        let pb = [Int](repeating: 1, count: r - b.count) + b
        var out = [Int](repeating: 1, count: r)
        for i in 0..<r {
            if pa[i] == pb[i] || pb[i] == 1 { out[i] = pa[i] }
            else if pa[i] == 1 { out[i] = pb[i] }
            else { throw BitSwitchError(.shape, "shapes \(a) and \(b) do not broadcast") }
        }
        func aligned(_ s: [Int]) -> [Int] {
            let cs = contiguousStrides(s)
            return (0..<r).map { s[$0] == 1 && out[$0] != 1 ? 0 : cs[$0] }
        }
        outShape = out
        aStrides = aligned(pa)
        bStrides = aligned(pb)
    }

    /// Calls `body(outIndexStart, aOffset, bOffset, innerCount, aInnerStride, bInnerStride)` for each innermost row.
    func forEachRow(_ body: (Int, Int, Int, Int, Int, Int) -> Void) {
        let r = outShape.count
        if r == 0 { body(0, 0, 0, 1, 0, 0); return }
        let inner = outShape[r - 1]
        let outer = outShape.dropLast().reduce(1, *)
        if inner == 0 || outer == 0 { return }
        var idx = [Int](repeating: 0, count: r - 1)
        var ao = 0, bo = 0
        for row in 0..<outer {
            body(row * inner, ao, bo, inner, aStrides[r - 1], bStrides[r - 1])
            var d = r - 2
            while d >= 0 {
                idx[d] += 1; ao += aStrides[d]; bo += bStrides[d]
                if idx[d] < outShape[d] { break }
                ao -= aStrides[d] * outShape[d]; bo -= bStrides[d] * outShape[d]
                idx[d] = 0; d -= 1
            }
        }
    }
}

/// Sums `grad` (shaped like the broadcast output) down to an operand's shape; `strides` are that operand's
/// aligned strides from `Broadcast`.
func reduceBroadcastGradient(_ grad: [Float], _ bc: Broadcast, operandShape: [Int], useA: Bool) -> [Float] {
    let n = operandShape.reduce(1, *)
    if operandShape == bc.outShape { return grad }
    var out = [Float](repeating: 0, count: n)
    grad.withUnsafeBufferPointer { g in
        out.withUnsafeMutableBufferPointer { o in
            bc.forEachRow { start, ao, bo, count, sa, sb in
                let off = useA ? ao : bo, s = useA ? sa : sb
                if s == 0 {
                    var acc: Float = 0
                    for i in 0..<count { acc += g[start + i] }
                    o[off] += acc
                } else {
                    for i in 0..<count { o[off + i * s] += g[start + i] }
                }
            }
        }
    }
    return out
}

// MARK: vector loops
// Branch-free 8-wide loops for the pointwise work that runs on every activation. Written with SIMD types because
// the compiler does not vectorise float reductions (strict order) or selects on masks that a branch would mispredict.

typealias F8 = SIMD8<Float>

@inline(__always) func load8(_ p: UnsafePointer<Float>, _ i: Int) -> F8 {
    UnsafeRawPointer(p + i).loadUnaligned(as: F8.self)
}
@inline(__always) func store8(_ v: F8, _ p: UnsafeMutablePointer<Float>, _ i: Int) {
    UnsafeMutableRawPointer(p + i).storeBytes(of: v, as: F8.self)
}

/// Sum of p[0..<n], eight partial sums.
@inline(__always) func vectorSum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = F8.zero
    var i = 0
    while i + 8 <= n { acc += load8(p, i); i += 8 }
    var s = acc.sum()
    while i < n { s += p[i]; i += 1 }
    return s
}

/// Σ (p[i] − mu)² over n elements.
@inline(__always) func vectorSquaredDeviation(_ p: UnsafePointer<Float>, _ n: Int, _ mu: Float) -> Float {
    var acc = F8.zero
    let m = F8(repeating: mu)
    var i = 0
    while i + 8 <= n { let d = load8(p, i) - m; acc += d * d; i += 8 }
    var s = acc.sum()
    while i < n { let d = p[i] - mu; s += d * d; i += 1 }
    return s
}

/// (Σ g, Σ g·(x − mu)) over n elements.
@inline(__always) func vectorGradientSums(_ g: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int,
                                          _ mu: Float) -> (Float, Float) {
    var a = F8.zero, b = F8.zero
    let m = F8(repeating: mu)
    var i = 0
    while i + 8 <= n { let gv = load8(g, i); a += gv; b += gv * (load8(x, i) - m); i += 8 }
    var sa = a.sum(), sb = b.sum()
    while i < n { sa += g[i]; sb += g[i] * (x[i] - mu); i += 1 }
    return (sa, sb)
}

/// o = min(max(x, lo), hi) elementwise.
@inline(__always) func vectorClamp(_ x: UnsafePointer<Float>, _ o: UnsafeMutablePointer<Float>, _ n: Int,
                                   _ lo: Float, _ hi: Float) {
    let l = F8(repeating: lo), h = F8(repeating: hi)
    var i = 0
    while i + 8 <= n {
        var v = load8(x, i)
        v.replace(with: l, where: v .< l)
        v.replace(with: h, where: v .> h)
        store8(v, o, i); i += 8
    }
    while i < n { o[i] = Swift.min(Swift.max(x[i], lo), hi); i += 1 }
}

/// o = g where lo < m < hi, else 0.
@inline(__always) func vectorMaskedPass(_ g: UnsafePointer<Float>, _ m: UnsafePointer<Float>,
                                        _ o: UnsafeMutablePointer<Float>, _ n: Int, _ lo: Float, _ hi: Float) {
    let l = F8(repeating: lo), h = F8(repeating: hi)
    var i = 0
    while i + 8 <= n {
        let mv = load8(m, i)
        var v = load8(g, i)
        v.replace(with: F8.zero, where: (mv .<= l) .| (mv .>= h))
        store8(v, o, i); i += 8
    }
    while i < n { o[i] = m[i] > lo && m[i] < hi ? g[i] : 0; i += 1 }
}
