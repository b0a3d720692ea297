import BitSwitchIR

// Shape and selection ops of the transformer family: Where, Equal, Less, Not, Expand, ConstantOfShape, Range,
// Slice, Split. Every one works on every element type through `moveElements`.

/// out[i] = cond[ic[i]] ? x[ia[i]] : y[ib[i]].
struct SelectMove: ElementMover {
    var cond: [Bool], ic: [Int], ia: [Int], ib: [Int]
    func move<T>(_ inputs: [[T]], fill: T?) throws -> [T] {
        let x = inputs[0], y = inputs[1]
        return (0..<ic.count).map { i in cond[ic[i]] ? x[ia[i]] : y[ib[i]] }
    }
}

func whereOp(_ c: Tensor, _ x: Tensor, _ y: Tensor) throws -> Tensor {
    guard case .bool(let cond) = c.storage else { throw BitSwitchError(.type, "Where condition must be bool, got \(c.dtype)") }
    let shape = try broadcastShapes(try broadcastShapes(c.shape, x.shape), y.shape)
    _ = try checkedCount(shape, x.dtype)
    let m = SelectMove(cond: cond, ic: broadcastIndex(c.shape, to: shape), ia: broadcastIndex(x.shape, to: shape),
                       ib: broadcastIndex(y.shape, to: shape))
    return Tensor(dtype: x.dtype, shape: shape, storage: try moveElements([x, y], m, op: "Where"))
}

func compareOp(_ kind: CompareVisitor.Kind, _ x: Tensor, _ y: Tensor, op: String) throws -> Tensor {
    let shape = try broadcastShapes(x.shape, y.shape)
    _ = try checkedCount(shape, .bool)
    let v = CompareVisitor(kind: kind, ia: broadcastIndex(x.shape, to: shape), ib: broadcastIndex(y.shape, to: shape))
    return Tensor(dtype: .bool, shape: shape, storage: .bool(try visitPair(x, y, v, op: op)))
}

func notOp(_ x: Tensor) throws -> Tensor {
    guard case .bool(let a) = x.storage else { throw BitSwitchError(.type, "Not needs a bool input, got \(x.dtype)") }
    return Tensor(dtype: .bool, shape: x.shape, storage: .bool(a.map { !$0 }))
}

/// Shape-like int64 input (Expand shape, ConstantOfShape input, Slice starts/ends/...).
private func shapeInput(_ t: Tensor, _ what: String) throws -> [Int] {
    guard t.dtype == .i64 || t.dtype == .i32, t.rank <= 1 else {
        throw BitSwitchError(.type, "\(what) must be a 1-D int64 tensor, got \(t.dtype)\(shapeString(t.shape))")
    }
    return t.ints
}

func expandOp(_ x: Tensor, _ shapeT: Tensor) throws -> Tensor {
    let want = try shapeInput(shapeT, "Expand shape")
    guard want.allSatisfy({ $0 >= 0 }) else { throw BitSwitchError(.shape, "Expand shape \(shapeString(want)) has a negative dim") }
    let shape = try broadcastShapes(x.shape, want)
    _ = try checkedCount(shape, x.dtype)
    if shape == x.shape { return x }
    return Tensor(dtype: x.dtype, shape: shape,
                  storage: try moveElements([x], IndexGather(index: broadcastIndex(x.shape, to: shape)), op: "Expand"))
}

func constantOfShapeOp(_ shapeT: Tensor, value: Tensor?) throws -> Tensor {
    let shape = try shapeInput(shapeT, "ConstantOfShape input")
    guard shape.allSatisfy({ $0 >= 0 }) else { throw BitSwitchError(.shape, "ConstantOfShape shape \(shapeString(shape)) has a negative dim") }
    let v = value ?? Tensor(scalar: 0)
    let n = try checkedCount(shape, v.dtype)
    let one = Tensor(dtype: v.dtype, shape: [1], storage: v.storage)
    return Tensor(dtype: v.dtype, shape: shape,
                  storage: try moveElements([one], IndexGather(index: [Int](repeating: 0, count: n)), op: "ConstantOfShape"))
}

func rangeOp(_ start: Tensor, _ limit: Tensor, _ delta: Tensor) throws -> Tensor {
    for (n, t) in [("start", start), ("limit", limit), ("delta", delta)] {
        guard t.count == 1 else { throw BitSwitchError(.shape, "Range \(n) must be a scalar, got \(shapeString(t.shape))") }
        guard t.dtype == start.dtype else { throw BitSwitchError(.type, "Range \(n) has type \(t.dtype) but start is \(start.dtype)") }
    }
    if start.dtype.isInteger {
        let s = start.ints[0], l = limit.ints[0], d = delta.ints[0]
        guard d != 0 else { throw BitSwitchError(.data, "Range delta is 0") }
        let n = max(0, (l - s + d - (d > 0 ? 1 : -1)) / d)
        _ = try checkedCount([n], .i64)
        let v = (0..<n).map { Double(s + $0 * d) }
        if start.dtype == .i64 { return Tensor(shape: [n], int64s: (0..<n).map { Int64(s + $0 * d) }) }
        return try tensorFromDoubles(v, shape: [n], dtype: start.dtype)
    }
    let s = start.doubles[0], l = limit.doubles[0], d = delta.doubles[0]
    guard d != 0, s.isFinite, l.isFinite, d.isFinite else { throw BitSwitchError(.data, "Range needs finite start, limit and a non-zero delta") }
    let nD = max(0, ((l - s) / d).rounded(.up))
    guard nD < Double(Int32.max) else { throw BitSwitchError(.shape, "Range would have \(nD) elements") }
    let n = Int(nD)
    _ = try checkedCount([n], start.dtype)
    if start.dtype == .f32 {
        let sf = Float(s), df = Float(d)
        return Tensor(dtype: .f32, shape: [n], storage: .f32((0..<n).map { sf + Float($0) * df }))
    }
    return try tensorFromDoubles((0..<n).map { s + Double($0) * d }, shape: [n], dtype: start.dtype)
}

/// Gathers the cartesian product of per-axis index lists.
private func pick(_ x: Tensor, _ lists: [[Int]], op: String) throws -> Tensor {
    let out = lists.map(\.count)
    let count = try checkedCount(out, x.dtype)
    let st = contiguousStrides(x.shape)
    var index = [Int](repeating: 0, count: count)
    if count > 0 {
        let r = out.count
        var idx = [Int](repeating: 0, count: r)
        for i in 0..<count {
            var off = 0
            for d in 0..<r { off += lists[d][idx[d]] * st[d] }
            index[i] = off
            var d = r - 1
            while d >= 0 { idx[d] += 1; if idx[d] < out[d] { break }; idx[d] = 0; d -= 1 }
        }
    }
    return Tensor(dtype: x.dtype, shape: out, storage: try moveElements([x], IndexGather(index: index), op: op))
}

func sliceOp(_ x: Tensor, starts: [Int], ends: [Int], axes: [Int]?, steps: [Int]?) throws -> Tensor {
    let ax = try (axes ?? Array(0..<starts.count)).map { try normalizeAxis($0, rank: x.rank, what: "Slice axis") }
    let st = steps ?? Array(repeating: 1, count: starts.count)
    guard starts.count == ends.count, ax.count == starts.count, st.count == starts.count else {
        throw BitSwitchError(.invalidModel, "Slice starts \(shapeString(starts)), ends \(shapeString(ends)), axes and steps differ in length")
    }
    guard Set(ax).count == ax.count else { throw BitSwitchError(.invalidModel, "Slice axes \(shapeString(ax)) repeat an axis") }
    guard !st.contains(0) else { throw BitSwitchError(.invalidModel, "Slice step 0") }
    var lists = x.shape.map { Array(0..<$0) }
    for (i, a) in ax.enumerated() {
        lists[a] = Array(sliceRange(start: starts[i], end: ends[i], step: st[i], dim: x.shape[a]))
    }
    if zip(lists, x.shape).allSatisfy({ $0.count == $1 }) && !st.contains(where: { $0 < 0 }) { return x }
    return try pick(x, lists, op: "Slice")
}

func sliceOp(_ x: Tensor, inputs: [Tensor?]) throws -> Tensor {
    guard inputs.count > 2, let s = inputs[1], let e = inputs[2] else {
        throw BitSwitchError(.invalidModel, "Slice needs starts and ends inputs")
    }
    func opt(_ k: Int, _ w: String) throws -> [Int]? { k < inputs.count ? try inputs[k].map { try shapeInput($0, w) } : nil }
    return try sliceOp(x, starts: try shapeInput(s, "Slice starts"), ends: try shapeInput(e, "Slice ends"),
                       axes: try opt(3, "Slice axes"), steps: try opt(4, "Slice steps"))
}

func splitOp(_ x: Tensor, axis: Int, sizes: [Int]?, outputs: Int) throws -> [Tensor] {
    let a = try normalizeAxis(axis, rank: x.rank, what: "Split axis")
    let d = x.shape[a]
    let sz = sizes ?? splitSizes(d, parts: outputs)
    guard sz.count == outputs, sz.allSatisfy({ $0 >= 0 }), sz.reduce(0, +) == d else {
        throw BitSwitchError(.shape, "Split sizes \(shapeString(sz)) do not split axis \(a) of \(shapeString(x.shape)) into \(outputs) outputs")
    }
    var lists = x.shape.map { Array(0..<$0) }
    var begin = 0
    var out: [Tensor] = []
    for k in sz {
        lists[a] = Array(begin..<(begin + k))
        out.append(try pick(x, lists, op: "Split"))
        begin += k
    }
    return out
}
