import BitSwitchIR

// Element-type plumbing shared by the transformer-family kernels: broadcast index maps, a visitor over the
// storage kinds, and the conversions Cast defines.

/// Flat source index of every output element when `shape` broadcasts to `out`.
func broadcastIndex(_ shape: [Int], to out: [Int]) -> [Int] {
    let count = out.reduce(1, *)
    let st = broadcastStrides(shape, to: out)
    var index = [Int](repeating: 0, count: count)
    guard count > 0 else { return index }
    let r = out.count
    var idx = [Int](repeating: 0, count: r)
    var off = 0
    for i in 0..<count {
        index[i] = off
        var d = r - 1
        while d >= 0 {
            idx[d] += 1; off += st[d]
            if idx[d] < out[d] { break }
            off -= st[d] * out[d]; idx[d] = 0; d -= 1
        }
    }
    return index
}

/// Visits two storages of the same kind with their element arrays.
protocol PairVisitor {
    associatedtype Result
    func visit<T: Comparable>(_ a: [T], _ b: [T]) throws -> Result
}

func visitPair<V: PairVisitor>(_ x: Tensor, _ y: Tensor, _ v: V, op: String) throws -> V.Result {
    switch (x.storage, y.storage) {
    case (.f32(let a), .f32(let b)): return try v.visit(a, b)
    case (.f64(let a), .f64(let b)): return try v.visit(a, b)
    case (.i8(let a), .i8(let b)): return try v.visit(a, b)
    case (.u8(let a), .u8(let b)): return try v.visit(a, b)
    case (.i16(let a), .i16(let b)): return try v.visit(a, b)
    case (.u16(let a), .u16(let b)): return try v.visit(a, b)
    case (.i32(let a), .i32(let b)): return try v.visit(a, b)
    case (.u32(let a), .u32(let b)): return try v.visit(a, b)
    case (.i64(let a), .i64(let b)): return try v.visit(a, b)
    case (.u64(let a), .u64(let b)): return try v.visit(a, b)
    case (.bool(let a), .bool(let b)): return try v.visit(a.map { $0 ? 1 : 0 } as [UInt8], b.map { $0 ? 1 : 0 })
    default:
        throw BitSwitchError(.type, "\(op) operands have different types \(x.dtype) and \(y.dtype)")
    }
}

/// Comparison of two same-typed tensors with broadcasting.
struct CompareVisitor: PairVisitor {
    enum Kind { case equal, less }
    var kind: Kind
    var ia: [Int], ib: [Int]
    func visit<T: Comparable>(_ a: [T], _ b: [T]) throws -> [Bool] {
        var out = [Bool](repeating: false, count: ia.count)
        switch kind {
        case .equal: for i in 0..<ia.count { out[i] = a[ia[i]] == b[ib[i]] }
        case .less: for i in 0..<ia.count { out[i] = a[ia[i]] < b[ib[i]] }
        }
        return out
    }
}

/// Exact-as-possible source values for Cast: 64-bit integers keep their bits, the rest go through Double.
enum CastSource {
    case double([Double]), int64([Int64]), uint64([UInt64])

    init(_ t: Tensor) {
        switch t.storage {
        case .i64(let a): self = .int64(a)
        case .u64(let a): self = .uint64(a)
        default: self = .double(t.doubles)
        }
    }
}

/// Float to integer as C++ runtimes cast it: toward zero; NaN and out-of-range values wrap through Int64.
@inline(__always) private func truncInt(_ d: Double) -> Int64 {
    guard d.isFinite else { return d.isNaN ? 0 : (d < 0 ? Int64.min : Int64.max) }
    let t = d.rounded(.towardZero)
    if let v = Int64(exactly: t) { return v }
    if t >= 0, let u = UInt64(exactly: t) { return Int64(bitPattern: u) }
    return t < 0 ? Int64.min : Int64.max
}

/// Converts `x` to `to` with ONNX Cast semantics.
func castTensor(_ x: Tensor, to: DType) throws -> Tensor {
    if x.dtype == to { return x }
    let src = CastSource(x)
    func ints<T: FixedWidthInteger>(_: T.Type) -> [T] {
        switch src {
        case .double(let a): return a.map { T(truncatingIfNeeded: truncInt($0)) }
        case .int64(let a): return a.map { T(truncatingIfNeeded: $0) }
        case .uint64(let a): return a.map { T(truncatingIfNeeded: $0) }
        }
    }
    var doubles: [Double] {
        switch src {
        case .double(let a): return a
        case .int64(let a): return a.map { Double($0) }
        case .uint64(let a): return a.map { Double($0) }
        }
    }
    let storage: TensorStorage
    switch to {
    case .f32:
        if case .i64(let a) = x.storage { storage = .f32(a.map { Float($0) }) } else { storage = .f32(doubles.map { Float($0) }) }
    case .f16: storage = .f32(doubles.map { Float(Float16($0)) })
    case .f64: storage = .f64(doubles)
    case .bool:
        switch src {
        case .double(let a): storage = .bool(a.map { $0 != 0 })
        case .int64(let a): storage = .bool(a.map { $0 != 0 })
        case .uint64(let a): storage = .bool(a.map { $0 != 0 })
        }
    case .i8: storage = .i8(ints(Int8.self))
    case .u8: storage = .u8(ints(UInt8.self))
    case .i16: storage = .i16(ints(Int16.self))
    case .u16: storage = .u16(ints(UInt16.self))
    case .i32: storage = .i32(ints(Int32.self))
    case .u32: storage = .u32(ints(UInt32.self))
    case .i64: storage = .i64(ints(Int64.self))
    case .u64: storage = .u64(ints(UInt64.self))
    // 4-bit targets keep the low nibble (ONNX wraps, it does not saturate), sign-extended for int4.
    case .i4: storage = .i8(ints(Int8.self).map { ($0 << 4) >> 4 })
    case .u4: storage = .u8(ints(UInt8.self).map { $0 & 0x0F })
    }
    return Tensor(dtype: to, shape: x.shape, storage: storage)
}

/// Builds a tensor of `dtype` from doubles (integers truncate toward zero).
func tensorFromDoubles(_ v: [Double], shape: [Int], dtype: DType) throws -> Tensor {
    try castTensor(Tensor(dtype: .f64, shape: shape, storage: .f64(v)), to: dtype)
}
