import BitSwitchIR
#if canImport(Glibc)
import Glibc
#endif

// Elementwise math of the transformer family: Erf, Gelu, Sqrt, Reciprocal, Neg, Exp, Pow (forward).

enum MathKind { case erf, gelu, geluTanh, sqrt, reciprocal, neg, exp }

/// erf in float32 as a rational minimax fit on [-4, 4] (beyond it erf is ±1 in float32): odd degree-13 numerator,
/// even degree-8 denominator, the coefficients Eigen and XLA use; within a few ulp of glibc's erff and about 8×
/// faster, because it vectorizes. glibc's scalar erff was the largest non-GEMM cost of a BERT encoder (Gelu).
@inline(__always) func fastErf(_ a: SIMD8<Float>) -> SIMD8<Float> {
    typealias V = SIMD8<Float>
    let x = a.clamped(lowerBound: V(repeating: -4), upperBound: V(repeating: 4))
    let x2 = x * x
    var p = V(repeating: 2.77068142495902e-08) + x2 * V(repeating: -2.72614225801306e-10)
    p = V(repeating: -2.10102402082508e-06) + x2 * p
    p = V(repeating: -5.69250639462346e-05) + x2 * p
    p = V(repeating: -7.34990630326855e-04) + x2 * p
    p = V(repeating: -2.95459980854025e-03) + x2 * p
    p = V(repeating: -1.60960333262415e-02) + x2 * p
    var q = V(repeating: -2.13374055278905e-04) + x2 * V(repeating: -1.45660718464996e-05)
    q = V(repeating: -1.68282697438203e-03) + x2 * q
    q = V(repeating: -7.37332916720468e-03) + x2 * q
    q = V(repeating: -1.42647390514189e-02) + x2 * q
    // NaN stays NaN (the clamp would turn it into ±4).
    return (x * p / q).replacing(with: a, where: a .!= a)
}

/// out[i] = erf(x[i]) (gelu: 0.5·x·(1 + erf(x/√2))) over n elements.
func vectorErf(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ n: Int, gelu: Bool) {
    var i = 0
    let s = SIMD8<Float>(repeating: 0.70710678118654752)
    while i + 8 <= n {
        let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
        let r = gelu ? 0.5 * v * (1 + fastErf(v * s)) : fastErf(v)
        UnsafeMutableRawPointer(out + i).storeBytes(of: r, as: SIMD8<Float>.self)
        i += 8
    }
    while i < n {
        let v = SIMD8<Float>(repeating: x[i])
        out[i] = gelu ? (0.5 * v * (1 + fastErf(v * s)))[0] : fastErf(v)[0]
        i += 1
    }
}

@inline(__always) func geluTanh(_ x: Float) -> Float {
    0.5 * x * (1 + tanhf(0.79788456080286536 * (x + 0.044715 * x * x * x)))
}

func mathOp(_ kind: MathKind, _ x: Tensor, op: String) throws -> Tensor {
    switch x.storage {
    case .f32(let a):
        let y: [Float] = makeFloats(a.count) { yp in
            a.withUnsafeBufferPointer { ap in
                let n = a.count
                switch kind {
                case .erf:
                    parallelFor(n, minChunk: 16384) { r in vectorErf(ap.baseAddress! + r.lowerBound, yp + r.lowerBound, r.count, gelu: false) }
                case .gelu:
                    parallelFor(n, minChunk: 16384) { r in vectorErf(ap.baseAddress! + r.lowerBound, yp + r.lowerBound, r.count, gelu: true) }
                case .geluTanh:
                    parallelFor(n, minChunk: 16384) { r in for i in r { yp[i] = geluTanh(ap[i]) } }
                case .sqrt: for i in 0..<n { yp[i] = ap[i].squareRoot() }
                case .reciprocal: for i in 0..<n { yp[i] = 1 / ap[i] }
                case .neg: for i in 0..<n { yp[i] = -ap[i] }
                case .exp: for i in 0..<n { yp[i] = expf(ap[i]) }
                }
            }
        }
        return Tensor(dtype: x.dtype, shape: x.shape, storage: .f32(y))
    case .f64(let a):
        let y: [Double]
        switch kind {
        case .erf: y = a.map { Glibc.erf($0) }
        case .gelu: y = a.map { 0.5 * $0 * (1 + Glibc.erf($0 / 2.0.squareRoot())) }
        case .geluTanh: y = a.map { 0.5 * $0 * (1 + Glibc.tanh((2 / Double.pi).squareRoot() * ($0 + 0.044715 * $0 * $0 * $0))) }
        case .sqrt: y = a.map { $0.squareRoot() }
        case .reciprocal: y = a.map { 1 / $0 }
        case .neg: y = a.map { -$0 }
        case .exp: y = a.map { Glibc.exp($0) }
        }
        return Tensor(dtype: x.dtype, shape: x.shape, storage: .f64(y))
    default:
        guard kind == .neg else { throw BitSwitchError(.type, "\(op) needs a float input, got \(x.dtype)") }
        switch x.storage {
        case .i8(let a): return Tensor(dtype: x.dtype, shape: x.shape, storage: .i8(a.map { 0 &- $0 }))
        case .i16(let a): return Tensor(dtype: x.dtype, shape: x.shape, storage: .i16(a.map { 0 &- $0 }))
        case .i32(let a): return Tensor(dtype: x.dtype, shape: x.shape, storage: .i32(a.map { 0 &- $0 }))
        case .i64(let a): return Tensor(dtype: x.dtype, shape: x.shape, storage: .i64(a.map { 0 &- $0 }))
        default: throw BitSwitchError(.type, "Neg needs a signed number input, got \(x.dtype)")
        }
    }
}

/// Pow(X, Y): the result has X's type; integer results truncate toward zero.
func powOp(_ x: Tensor, _ y: Tensor) throws -> Tensor {
    guard x.dtype != .bool, y.dtype != .bool else { throw BitSwitchError(.type, "Pow does not take bool operands") }
    let shape = try broadcastShapes(x.shape, y.shape)
    let count = try checkedCount(shape, x.dtype)
    if case .f32(let a) = x.storage, y.count == 1, y.dtype.isFloat || y.dtype.isInteger {
        let e = y.doubles[0]
        let ef = Float(e)
        let ia = x.shape == shape ? nil : broadcastIndex(x.shape, to: shape)
        let out: [Float] = makeFloats(count) { yp in
            for i in 0..<count {
                let v = a[ia?[i] ?? i]
                yp[i] = e == 2 ? v * v : e == 0.5 ? v.squareRoot() : e == 1 ? v : powf(v, ef)
            }
        }
        return Tensor(dtype: x.dtype, shape: shape, storage: .f32(out))
    }
    let ia = broadcastIndex(x.shape, to: shape), ib = broadcastIndex(y.shape, to: shape)
    if x.dtype.isInteger, y.dtype.isInteger, x.dtype != .u64 {
        let a = x.ints, b = y.ints
        var out = [Double](repeating: 0, count: count)
        for i in 0..<count {
            var r: Int64 = 1
            let base = Int64(a[ia[i]]), e = b[ib[i]]
            if e >= 0 { for _ in 0..<min(e, 64) { r = r &* base } } else { r = (base == 1) ? 1 : (base == -1 ? (e % 2 == 0 ? 1 : -1) : 0) }
            out[i] = Double(r)
        }
        if x.dtype == .i64 {
            var o = [Int64](repeating: 0, count: count)
            for i in 0..<count {
                var r: Int64 = 1
                let base = Int64(a[ia[i]]), e = b[ib[i]]
                if e >= 0 { for _ in 0..<min(e, 64) { r = r &* base } } else { r = Int64(out[i]) }
                o[i] = r
            }
            return Tensor(dtype: .i64, shape: shape, storage: .i64(o))
        }
        return try tensorFromDoubles(out, shape: shape, dtype: x.dtype)
    }
    let a = x.doubles, b = y.doubles
    var out = [Double](repeating: 0, count: count)
    if x.dtype == .f32 || x.dtype == .f16 {
        for i in 0..<count { out[i] = Double(powf(Float(a[ia[i]]), Float(b[ib[i]]))) }
    } else {
        for i in 0..<count { out[i] = Glibc.pow(a[ia[i]], b[ib[i]]) }
    }
    return try tensorFromDoubles(out, shape: shape, dtype: x.dtype)
}
