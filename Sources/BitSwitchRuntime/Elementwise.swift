import BitSwitchIR
import CKernels

enum BinaryKind: Int32 {
    case add = 0, sub = 1, mul = 2, div = 3
    var name: String { ["Add", "Sub", "Mul", "Div"][Int(rawValue)] }
}

/// Merges adjacent dims that both operands traverse contiguously (or both broadcast), so the C loop's
/// inner extent is as long as possible.
private func collapse(_ shape: [Int], _ sa: [Int], _ sb: [Int]) -> ([Int], [Int], [Int]) {
    var sh: [Int] = [], a: [Int] = [], b: [Int] = []
    for i in shape.indices where shape[i] != 1 {
        if let last = sh.indices.last,
           a[last] == sa[i] * shape[i], b[last] == sb[i] * shape[i] {
            sh[last] *= shape[i]; a[last] = sa[i]; b[last] = sb[i]
        } else {
            sh.append(shape[i]); a.append(sa[i]); b.append(sb[i])
        }
    }
    return (sh, a, b)
}

func binaryOp(_ kind: BinaryKind, _ x: Tensor, _ y: Tensor) throws -> Tensor {
    guard x.dtype == y.dtype else {
        throw BitSwitchError(.type, "\(kind.name) operands have different types \(x.dtype) and \(y.dtype)")
    }
    let shape = try broadcastShapes(x.shape, y.shape)
    let count = try checkedCount(shape, x.dtype)
    let (cs, ca, cb) = collapse(shape, broadcastStrides(x.shape, to: shape), broadcastStrides(y.shape, to: shape))
    switch (x.storage, y.storage) {
    case (.f32(let a), .f32(let b)):
        let r = makeFloats(count) { yp in
            guard count > 0 else { return }
            cs.withUnsafeBufferPointer { sp in ca.withUnsafeBufferPointer { ap in cb.withUnsafeBufferPointer { bp in
                bs_binary_f32(kind.rawValue, a, b, yp, Int32(cs.count), sp.baseAddress, ap.baseAddress, bp.baseAddress)
            }}}
        }
        return Tensor(dtype: x.dtype, shape: shape, storage: .f32(r))
    case (.i32(let a), .i32(let b)):
        return Tensor(dtype: x.dtype, shape: shape, storage: .i32(try intBinary(kind, a, b, count, cs, ca, cb)))
    case (.i64(let a), .i64(let b)):
        return Tensor(dtype: x.dtype, shape: shape, storage: .i64(try intBinary(kind, a, b, count, cs, ca, cb)))
    case (.i8(let a), .i8(let b)):
        return Tensor(dtype: x.dtype, shape: shape, storage: .i8(try intBinary(kind, a, b, count, cs, ca, cb)))
    case (.u8(let a), .u8(let b)):
        return Tensor(dtype: x.dtype, shape: shape, storage: .u8(try intBinary(kind, a, b, count, cs, ca, cb)))
    case (.i16(let a), .i16(let b)):
        return Tensor(dtype: x.dtype, shape: shape, storage: .i16(try intBinary(kind, a, b, count, cs, ca, cb)))
    case (.u16(let a), .u16(let b)):
        return Tensor(dtype: x.dtype, shape: shape, storage: .u16(try intBinary(kind, a, b, count, cs, ca, cb)))
    case (.u32(let a), .u32(let b)):
        return Tensor(dtype: x.dtype, shape: shape, storage: .u32(try intBinary(kind, a, b, count, cs, ca, cb)))
    case (.u64(let a), .u64(let b)):
        return Tensor(dtype: x.dtype, shape: shape, storage: .u64(try intBinary(kind, a, b, count, cs, ca, cb)))
    case (.f64(let a), .f64(let b)):
        let ia = broadcastIndex(x.shape, to: shape), ib = broadcastIndex(y.shape, to: shape)
        var r = [Double](repeating: 0, count: count)
        for i in 0..<count {
            let u = a[ia[i]], v = b[ib[i]]
            switch kind {
            case .add: r[i] = u + v
            case .sub: r[i] = u - v
            case .mul: r[i] = u * v
            case .div: r[i] = u / v
            }
        }
        return Tensor(dtype: x.dtype, shape: shape, storage: .f64(r))
    default:
        throw BitSwitchError(.type, "\(kind.name) does not support \(x.dtype) operands")
    }
}

/// Integer arithmetic wraps on overflow (as C++ runtimes do); Div truncates toward zero and refuses zero divisors.
private func intBinary<T: FixedWidthInteger>(_ kind: BinaryKind, _ a: [T], _ b: [T], _ count: Int, _ shape: [Int],
                                             _ sa: [Int], _ sb: [Int]) throws -> [T] {
    var out = [T](repeating: 0, count: count)
    guard count > 0 else { return out }
    let n = shape.count
    var idx = [Int](repeating: 0, count: n)
    var ia = 0, ib = 0
    var divByZero = false
    out.withUnsafeMutableBufferPointer { o in a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in
        for i in 0..<count {
            let u = ap[ia], v = bp[ib]
            switch kind {
            case .add: o[i] = u &+ v
            case .sub: o[i] = u &- v
            case .mul: o[i] = u &* v
            case .div:
                if v == 0 { divByZero = true } else { o[i] = u.dividedReportingOverflow(by: v).partialValue }
            }
            var d = n - 1
            while d >= 0 {
                idx[d] += 1; ia += sa[d]; ib += sb[d]
                if idx[d] < shape[d] { break }
                ia -= sa[d] * shape[d]; ib -= sb[d] * shape[d]; idx[d] = 0; d -= 1
            }
        }
    }}}
    if divByZero { throw BitSwitchError(.data, "integer division by zero") }
    return out
}

enum UnaryKind: Int32 {
    case relu = 0, leakyRelu = 1, sigmoid = 2, hardSigmoid = 3, hardSwish = 4, tanh = 5, clip = 6
}

func unaryOp(_ kind: UnaryKind, _ x: Tensor, _ p0: Float = 0, _ p1: Float = 0, op: String) throws -> Tensor {
    guard case .f32(let a) = x.storage else {
        if kind == .relu { return try clipInteger(x, lo: 0, hi: nil) }
        throw BitSwitchError(.type, "\(op) needs a float input, got \(x.dtype)")
    }
    let r = makeFloats(a.count) { bs_unary_f32(kind.rawValue, a, $0, a.count, p0, p1) }
    return Tensor(dtype: x.dtype, shape: x.shape, storage: .f32(r))
}

/// Integer Clip/Relu: bounds are read in the tensor's own type.
func clipInteger(_ x: Tensor, lo: Int?, hi: Int?) throws -> Tensor {
    func clamp<T: FixedWidthInteger>(_ a: [T]) -> [T] {
        let l = lo.map { T(clamping: $0) } ?? T.min, h = hi.map { T(clamping: $0) } ?? T.max
        return a.map { Swift.min(Swift.max($0, l), h) }
    }
    switch x.storage {
    case .i8(let a): return Tensor(dtype: x.dtype, shape: x.shape, storage: .i8(clamp(a)))
    case .u8(let a): return Tensor(dtype: x.dtype, shape: x.shape, storage: .u8(clamp(a)))
    case .i32(let a): return Tensor(dtype: x.dtype, shape: x.shape, storage: .i32(clamp(a)))
    case .i64(let a): return Tensor(dtype: x.dtype, shape: x.shape, storage: .i64(clamp(a)))
    default: throw BitSwitchError(.type, "Clip does not support \(x.dtype) input")
    }
}

func clipOp(_ x: Tensor, minT: Tensor?, maxT: Tensor?, attrMin: Float?, attrMax: Float?) throws -> Tensor {
    for (name, t) in [("min", minT), ("max", maxT)] {
        guard let t else { continue }
        guard t.count == 1 else { throw BitSwitchError(.shape, "Clip \(name) must be a scalar, got \(shapeString(t.shape))") }
        guard t.dtype == x.dtype else {
            throw BitSwitchError(.type, "Clip \(name) has type \(t.dtype) but the input is \(x.dtype)")
        }
    }
    if x.dtype.isFloat {
        let lo = minT?.floats[0] ?? attrMin ?? -.infinity, hi = maxT?.floats[0] ?? attrMax ?? .infinity
        return try unaryOp(.clip, x, lo, hi, op: "Clip")
    }
    return try clipInteger(x, lo: minT?.ints[0], hi: maxT?.ints[0])
}
