import BitSwitchIR

// ReduceSum and ReduceMax over any set of axes, on every numeric element type.

enum ReduceKind { case sum, max }

func reduceOp(_ kind: ReduceKind, _ x: Tensor, axes: [Int]?, keepDims: Bool, noopWithEmptyAxes: Bool, op: String) throws -> Tensor {
    let r = x.rank
    if (axes ?? []).isEmpty && noopWithEmptyAxes { return x }
    let list = (axes?.isEmpty == false) ? axes! : Array(0..<r)
    let ax = Set(try list.map { try normalizeAxis($0, rank: max(r, 1), what: "\(op) axis") })
    guard ax.count == list.count else { throw BitSwitchError(.invalidModel, "\(op) axes \(shapeString(list)) repeat an axis") }
    var outShape: [Int] = []
    for d in 0..<r { if ax.contains(d) { if keepDims { outShape.append(1) } } else { outShape.append(x.shape[d]) } }
    let full = (0..<r).map { ax.contains($0) ? 1 : x.shape[$0] }
    let outCount = try checkedCount(full, x.dtype)
    // Output position of every input element.
    let st = contiguousStrides(full)
    var oi = [Int](repeating: 0, count: x.count)
    if x.count > 0 {
        var idx = [Int](repeating: 0, count: r)
        var off = 0
        for i in 0..<x.count {
            oi[i] = off
            var d = r - 1
            while d >= 0 {
                idx[d] += 1
                if !ax.contains(d) { off += st[d] }
                if idx[d] < x.shape[d] { break }
                if !ax.contains(d) { off -= st[d] * x.shape[d] }
                idx[d] = 0; d -= 1
            }
        }
    }
    func run<T>(_ a: [T], _ initial: T, _ f: (T, T) -> T) -> [T] {
        var out = [T](repeating: initial, count: outCount)
        for i in 0..<a.count { out[oi[i]] = f(out[oi[i]], a[i]) }
        return out
    }
    func ints<T: FixedWidthInteger>(_ a: [T]) -> [T] {
        kind == .sum ? run(a, 0, &+) : run(a, T.min, { Swift.max($0, $1) })
    }
    let storage: TensorStorage
    switch x.storage {
    case .f32(let a):
        if kind == .sum {
            let s = run(a.map { Double($0) }, 0.0, +)
            storage = .f32(s.map { Float($0) })
        } else {
            storage = .f32(run(a, -Float.infinity, { $1.isNaN || $0.isNaN ? .nan : Swift.max($0, $1) }))
        }
    case .f64(let a):
        storage = .f64(kind == .sum ? run(a, 0.0, +) : run(a, -Double.infinity, { $1.isNaN || $0.isNaN ? .nan : Swift.max($0, $1) }))
    case .i8(let a): storage = .i8(ints(a))
    case .u8(let a): storage = .u8(ints(a))
    case .i16(let a): storage = .i16(ints(a))
    case .u16(let a): storage = .u16(ints(a))
    case .i32(let a): storage = .i32(ints(a))
    case .u32(let a): storage = .u32(ints(a))
    case .i64(let a): storage = .i64(ints(a))
    case .u64(let a): storage = .u64(ints(a))
    case .bool(let a):
        guard kind == .max else { throw BitSwitchError(.type, "\(op) does not take bool input") }
        storage = .bool(run(a, false, { $0 || $1 }))
    }
    return Tensor(dtype: x.dtype, shape: outShape, storage: storage)
}
