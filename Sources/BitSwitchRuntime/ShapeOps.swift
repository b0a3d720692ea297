import BitSwitchIR

// Data-movement ops work on every dtype through one generic dispatcher.

protocol ElementMover {
    func move<T>(_ inputs: [[T]], fill: T?) throws -> [T]
}

/// Applies `m` to the storages of `inputs` (all of `inputs[0]`'s dtype). `fill` is a scalar of that dtype.
func moveElements<M: ElementMover>(_ inputs: [Tensor], _ m: M, fill: Tensor? = nil, op: String) throws -> TensorStorage {
    guard let first = inputs.first else { throw BitSwitchError(.invalidModel, "\(op) has no inputs") }
    for t in inputs where t.dtype != first.dtype {
        throw BitSwitchError(.type, "\(op) inputs have different types \(first.dtype) and \(t.dtype)")
    }
    if let fill, fill.dtype != first.dtype {
        throw BitSwitchError(.type, "\(op) fill value has type \(fill.dtype) but the data is \(first.dtype)")
    }
    func arrays<T>(_ get: (TensorStorage) -> [T]?) -> [[T]] { inputs.map { get($0.storage) ?? [] } }
    switch first.storage {
    case .f32:
        return .f32(try m.move(arrays { if case .f32(let a) = $0 { a } else { nil } },
                               fill: fill.flatMap { if case .f32(let a) = $0.storage { a.first } else { nil } }))
    case .i8:
        return .i8(try m.move(arrays { if case .i8(let a) = $0 { a } else { nil } },
                              fill: fill.flatMap { if case .i8(let a) = $0.storage { a.first } else { nil } }))
    case .u8:
        return .u8(try m.move(arrays { if case .u8(let a) = $0 { a } else { nil } },
                              fill: fill.flatMap { if case .u8(let a) = $0.storage { a.first } else { nil } }))
    case .i32:
        return .i32(try m.move(arrays { if case .i32(let a) = $0 { a } else { nil } },
                               fill: fill.flatMap { if case .i32(let a) = $0.storage { a.first } else { nil } }))
    case .i64:
        return .i64(try m.move(arrays { if case .i64(let a) = $0 { a } else { nil } },
                               fill: fill.flatMap { if case .i64(let a) = $0.storage { a.first } else { nil } }))
    case .bool:
        return .bool(try m.move(arrays { if case .bool(let a) = $0 { a } else { nil } },
                                fill: fill.flatMap { if case .bool(let a) = $0.storage { a.first } else { nil } }))
    case .f64:
        return .f64(try m.move(arrays { if case .f64(let a) = $0 { a } else { nil } },
                               fill: fill.flatMap { if case .f64(let a) = $0.storage { a.first } else { nil } }))
    case .i16:
        return .i16(try m.move(arrays { if case .i16(let a) = $0 { a } else { nil } },
                               fill: fill.flatMap { if case .i16(let a) = $0.storage { a.first } else { nil } }))
    case .u16:
        return .u16(try m.move(arrays { if case .u16(let a) = $0 { a } else { nil } },
                               fill: fill.flatMap { if case .u16(let a) = $0.storage { a.first } else { nil } }))
    case .u32:
        return .u32(try m.move(arrays { if case .u32(let a) = $0 { a } else { nil } },
                               fill: fill.flatMap { if case .u32(let a) = $0.storage { a.first } else { nil } }))
    case .u64:
        return .u64(try m.move(arrays { if case .u64(let a) = $0 { a } else { nil } },
                               fill: fill.flatMap { if case .u64(let a) = $0.storage { a.first } else { nil } }))
    }
}

/// out[i] = in[index[i]], or `fill` where index[i] < 0.
struct IndexGather: ElementMover {
    var index: [Int]
    func move<T>(_ inputs: [[T]], fill: T?) throws -> [T] {
        let src = inputs[0]
        return try index.map { i in
            if i >= 0 { return src[i] }
            guard let fill else { throw BitSwitchError(.internalError, "padding without a fill value") }
            return fill
        }
    }
}

/// Concatenation along an axis given as (outer, per-input chunk) extents.
struct ChunkConcat: ElementMover {
    var outer: Int
    var chunks: [Int]
    func move<T>(_ inputs: [[T]], fill: T?) throws -> [T] {
        var out: [T] = []
        out.reserveCapacity(outer * chunks.reduce(0, +))
        for o in 0..<outer {
            for (k, a) in inputs.enumerated() where chunks[k] > 0 {
                out.append(contentsOf: a[(o * chunks[k])..<((o + 1) * chunks[k])])
            }
        }
        return out
    }
}

/// Gather: for each outer index and each index value, copies one `inner` block.
struct BlockGather: ElementMover {
    var outer: Int, axisLen: Int, inner: Int
    var indices: [Int]
    func move<T>(_ inputs: [[T]], fill: T?) throws -> [T] {
        let a = inputs[0]
        var out: [T] = []
        out.reserveCapacity(outer * indices.count * inner)
        for o in 0..<outer {
            for i in indices {
                let s = (o * axisLen + i) * inner
                out.append(contentsOf: a[s..<(s + inner)])
            }
        }
        return out
    }
}

func reshaped(_ t: Tensor, _ shape: [Int]) -> Tensor {
    Tensor(dtype: t.dtype, shape: shape, storage: t.storage)
}

// MARK: ops

func reshapeOp(_ x: Tensor, _ shapeT: Tensor, allowZero: Bool) throws -> Tensor {
    guard shapeT.rank == 1, shapeT.dtype == .i64 else {
        throw BitSwitchError(.shape, "Reshape shape must be a 1-D int64 tensor, got \(shapeT.dtype)\(shapeString(shapeT.shape))")
    }
    var s = shapeT.ints
    var infer: Int? = nil
    for i in s.indices {
        if s[i] == 0 && !allowZero {
            guard i < x.rank else { throw BitSwitchError(.shape, "Reshape shape \(shapeString(s)) copies dim \(i) that the input \(shapeString(x.shape)) lacks") }
            s[i] = x.shape[i]
        } else if s[i] == -1 {
            guard infer == nil else { throw BitSwitchError(.shape, "Reshape shape \(shapeString(s)) has more than one -1") }
            infer = i
        } else if s[i] < -1 {
            throw BitSwitchError(.shape, "Reshape shape \(shapeString(s)) has a negative dim")
        }
    }
    if let k = infer {
        var rest = s; rest[k] = 1
        guard let known = checkedElementCount(rest), known > 0, x.count % known == 0 else {
            throw BitSwitchError(.shape, "cannot reshape \(shapeString(x.shape)) to \(shapeString(shapeT.ints))")
        }
        s[k] = x.count / known
    }
    guard checkedElementCount(s) == x.count else {
        throw BitSwitchError(.shape, "cannot reshape \(shapeString(x.shape)) (\(x.count) elements) to \(shapeString(s))")
    }
    return reshaped(x, s)
}

func flattenOp(_ x: Tensor, axis: Int) throws -> Tensor {
    let a = axis < 0 ? axis + x.rank : axis
    guard a >= 0, a <= x.rank else { throw BitSwitchError(.invalidModel, "Flatten axis \(axis) is out of range for rank \(x.rank)") }
    return reshaped(x, [x.shape[..<a].reduce(1, *), x.shape[a...].reduce(1, *)])
}

func transposeOp(_ x: Tensor, perm: [Int]?) throws -> Tensor {
    let r = x.rank
    let p = perm ?? Array((0..<r).reversed())
    guard p.count == r, Set(p) == Set(0..<r) else {
        throw BitSwitchError(.invalidModel, "Transpose perm \(shapeString(p)) is not a permutation of 0..<\(r)")
    }
    let outShape = p.map { x.shape[$0] }
    if p == Array(0..<r) { return x }
    let inStrides = contiguousStrides(x.shape)
    let st = p.map { inStrides[$0] }
    var index = [Int](repeating: 0, count: x.count)
    var idx = [Int](repeating: 0, count: r)
    var off = 0
    for i in 0..<x.count {
        index[i] = off
        var d = r - 1
        while d >= 0 {
            idx[d] += 1; off += st[d]
            if idx[d] < outShape[d] { break }
            off -= st[d] * outShape[d]; idx[d] = 0; d -= 1
        }
    }
    return Tensor(dtype: x.dtype, shape: outShape, storage: try moveElements([x], IndexGather(index: index), op: "Transpose"))
}

func concatOp(_ xs: [Tensor], axis: Int) throws -> Tensor {
    guard let first = xs.first else { throw BitSwitchError(.invalidModel, "Concat needs at least one input") }
    let a = try normalizeAxis(axis, rank: first.rank, what: "Concat axis")
    var out = first.shape
    out[a] = 0
    for t in xs {
        guard t.rank == first.rank, (0..<t.rank).allSatisfy({ $0 == a || t.shape[$0] == first.shape[$0] }) else {
            throw BitSwitchError(.shape, "Concat inputs \(xs.map { shapeString($0.shape) }.joined(separator: ", ")) differ outside axis \(axis)")
        }
        out[a] += t.shape[a]
    }
    _ = try checkedCount(out, first.dtype)
    let inner = first.shape[(a + 1)...].reduce(1, *), outer = first.shape[..<a].reduce(1, *)
    let st = try moveElements(xs, ChunkConcat(outer: outer, chunks: xs.map { $0.shape[a] * inner }), op: "Concat")
    return Tensor(dtype: first.dtype, shape: out, storage: st)
}

private func uniqueAxes(_ axes: [Int], rank: Int, op: String) throws -> [Int] {
    let n = try axes.map { try normalizeAxis($0, rank: rank, what: "\(op) axis") }
    guard Set(n).count == n.count else { throw BitSwitchError(.invalidModel, "\(op) axes \(shapeString(axes)) repeat an axis") }
    return n
}

func squeezeOp(_ x: Tensor, axes: [Int]?) throws -> Tensor {
    let ax: Set<Int>
    if let axes {
        ax = Set(try uniqueAxes(axes, rank: x.rank, op: "Squeeze"))
        for a in ax where x.shape[a] != 1 {
            throw BitSwitchError(.shape, "Squeeze axis \(a) of \(shapeString(x.shape)) has size \(x.shape[a]), not 1")
        }
    } else {
        ax = Set(x.shape.indices.filter { x.shape[$0] == 1 })
    }
    return reshaped(x, x.shape.indices.filter { !ax.contains($0) }.map { x.shape[$0] })
}

func unsqueezeOp(_ x: Tensor, axes: [Int]) throws -> Tensor {
    let r = x.rank + axes.count
    let ax = Set(try uniqueAxes(axes, rank: r, op: "Unsqueeze"))
    var out: [Int] = []
    var k = 0
    for i in 0..<r {
        if ax.contains(i) { out.append(1) } else { out.append(x.shape[k]); k += 1 }
    }
    return reshaped(x, out)
}

func shapeOp(_ x: Tensor, start: Int, end: Int?) -> Tensor {
    let r = x.rank
    func clampIdx(_ v: Int) -> Int { min(max(v < 0 ? v + r : v, 0), r) }
    let s = clampIdx(start), e = clampIdx(end ?? r)
    let dims = s < e ? Array(x.shape[s..<e]) : []
    return Tensor(shape: [dims.count], int64s: dims.map { Int64($0) })
}

func gatherOp(_ data: Tensor, _ indices: Tensor, axis: Int) throws -> Tensor {
    guard indices.dtype == .i64 || indices.dtype == .i32 else {
        throw BitSwitchError(.type, "Gather indices must be int32 or int64, got \(indices.dtype)")
    }
    let a = try normalizeAxis(axis, rank: data.rank, what: "Gather axis")
    let len = data.shape[a]
    let idx = try indices.ints.map { i -> Int in
        let j = i < 0 ? i + len : i
        guard j >= 0, j < len else { throw BitSwitchError(.data, "Gather index \(i) is out of range for axis size \(len)") }
        return j
    }
    let out = Array(data.shape[..<a]) + indices.shape + Array(data.shape[(a + 1)...])
    _ = try checkedCount(out, data.dtype)
    let m = BlockGather(outer: data.shape[..<a].reduce(1, *), axisLen: len,
                        inner: data.shape[(a + 1)...].reduce(1, *), indices: idx)
    return Tensor(dtype: data.dtype, shape: out, storage: try moveElements([data], m, op: "Gather"))
}

/// A scalar of `dtype` holding `v` (for attribute fill values).
func scalar(_ v: Float, dtype: DType) -> Tensor {
    switch dtype {
    case .f32, .f16: return Tensor(dtype: dtype, shape: [], storage: .f32([v]))
    case .i8, .i4: return Tensor(dtype: dtype, shape: [], storage: .i8([Int8(clamping: Int(v))]))
    case .u8, .u4: return Tensor(dtype: dtype, shape: [], storage: .u8([UInt8(clamping: Int(v))]))
    case .i32: return Tensor(dtype: dtype, shape: [], storage: .i32([Int32(clamping: Int(v))]))
    case .i64: return Tensor(dtype: dtype, shape: [], storage: .i64([Int64(v)]))
    case .bool: return Tensor(dtype: dtype, shape: [], storage: .bool([v != 0]))
    case .f64: return Tensor(dtype: dtype, shape: [], storage: .f64([Double(v)]))
    case .i16: return Tensor(dtype: dtype, shape: [], storage: .i16([Int16(clamping: Int(v))]))
    case .u16: return Tensor(dtype: dtype, shape: [], storage: .u16([UInt16(clamping: Int(v))]))
    case .u32: return Tensor(dtype: dtype, shape: [], storage: .u32([UInt32(clamping: Int(v))]))
    case .u64: return Tensor(dtype: dtype, shape: [], storage: .u64([UInt64(clamping: Int(v))]))
    }
}

/// Pad with per-axis begin/end amounts (negative crops). `pads` is [begins..., ends...] over `axes`.
func padOp(_ x: Tensor, mode: PadMode, pads: [Int], axes: [Int]?, value: Tensor) throws -> Tensor {
    let r = x.rank
    let ax = try axes.map { try uniqueAxes($0, rank: r, op: "Pad") } ?? Array(0..<r)
    guard pads.count == 2 * ax.count else {
        throw BitSwitchError(.shape, "Pad pads \(shapeString(pads)) must have \(2 * ax.count) entries for input \(shapeString(x.shape))")
    }
    var begin = [Int](repeating: 0, count: r), end = begin
    for (k, a) in ax.enumerated() { begin[a] = pads[k]; end[a] = pads[k + ax.count] }
    var out = [Int](repeating: 0, count: r)
    for d in 0..<r {
        out[d] = x.shape[d] + begin[d] + end[d]
        guard out[d] >= 0 else { throw BitSwitchError(.shape, "Pad crops axis \(d) of \(shapeString(x.shape)) below zero") }
        if mode != .constant && x.shape[d] == 0 && out[d] > 0 {
            throw BitSwitchError(.shape, "Pad mode \(mode.rawValue) cannot pad the empty axis \(d)")
        }
    }
    let count = try checkedCount(out, x.dtype)
    if count == 0 { return Tensor.zeros(out, dtype: x.dtype) }
    // Per-axis map from output position to input position (-1 = constant).
    let maps: [[Int]] = (0..<r).map { d in
        let n = x.shape[d]
        return (0..<out[d]).map { o in
            let i = o - begin[d]
            if i >= 0 && i < n { return i }
            switch mode {
            case .constant: return -1
            case .edge: return i < 0 ? 0 : n - 1
            case .wrap: return ((i % n) + n) % n
            case .reflect:
                if n == 1 { return 0 }
                let period = 2 * (n - 1)
                var j = ((i % period) + period) % period
                if j >= n { j = period - j }
                return j
            }
        }
    }
    let st = contiguousStrides(x.shape)
    var index = [Int](repeating: 0, count: count)
    var idx = [Int](repeating: 0, count: r)
    for i in 0..<count {
        var off = 0
        for d in 0..<r {
            let m = maps[d][idx[d]]
            if m < 0 { off = -1; break }
            off += m * st[d]
        }
        index[i] = off
        var d = r - 1
        while d >= 0 { idx[d] += 1; if idx[d] < out[d] { break }; idx[d] = 0; d -= 1 }
    }
    return Tensor(dtype: x.dtype, shape: out, storage: try moveElements([x], IndexGather(index: index), fill: value, op: "Pad"))
}
