/// Fills `g.valueTypes` for every node output whose type follows from its inputs: the element type always
/// (when the data input's is known), dims as known numbers, symbols (a batch `N` flows through Conv, Gemm,
/// pooling, Flatten, and Reshape with -1) or unknown. Small integer tensors computed from shapes
/// (Shape → Gather → Concat) are tracked by value, so a Reshape fed by such a chain gets its exact output shape.
/// Inputs that cannot fit together (Conv channels against the weight, Gemm inner dims, non-broadcastable
/// operands, Concat ranks, ...) throw a `.shape` error naming the node, the op and the shapes.
public func inferShapes(_ g: inout Graph) throws {
    var s = ShapeState(graph: g)
    for n in g.nodes {
        let outs: [TensorType?]
        do {
            // Inference indexes inputs by position: a node with too few (possible in an unverified imported
            // model; found by fuzzing) is an error, not an out-of-range trap.
            if let problem = checkArity(n) { throw BitSwitchError(.verify, problem) }
            outs = try s.infer(n)
        } catch let e as BitSwitchError {
            throw e.located(node: n.label, op: n.op.typeName, domain: n.op.domain)
        }
        for (name, t) in zip(n.outputs, outs) where !name.isEmpty {
            guard let t else { continue }
            let merged = merge(inferred: t, recorded: g.valueTypes[name])
            g.valueTypes[name] = merged
            s.types[name] = merged
        }
    }
}

/// Keeps what an importer recorded where inference knows less (same rank, inferred dim unknown).
private func merge(inferred: TensorType, recorded: TensorType?) -> TensorType {
    guard let recorded, recorded.dtype == inferred.dtype else { return inferred }
    guard let a = inferred.shape else { return recorded }
    guard let b = recorded.shape, a.count == b.count else { return inferred }
    return TensorType(inferred.dtype, zip(a, b).map { x, y in x == .unknown ? y : x })
}

func shapeError(_ message: String) -> BitSwitchError { BitSwitchError(.shape, message) }
func text(_ t: TensorType) -> String { IRText.type(t) }

/// Product of dims as (known factor, symbol multiset, any unknown) so that N*8*4 / (N*2) = 16 is computable.
private struct DimProduct {
    var known = 1
    var symbols: [String: Int] = [:]
    var unknown = false
    init(_ dims: some Sequence<Dim>) {
        for d in dims {
            switch d {
            case .known(let v):
                let (r, o) = known.multipliedReportingOverflow(by: v)
                if o { unknown = true } else { known = r }
            case .symbol(let s): symbols[s, default: 0] += 1
            case .unknown: unknown = true
            }
        }
    }
    var asDim: Dim {
        if unknown { return .unknown }
        if symbols.isEmpty { return .known(known) }
        if known == 1, symbols.count == 1, let (s, k) = symbols.first, k == 1 { return .symbol(s) }
        return .unknown
    }
    /// self / other as a dim, or nil when it is known not to divide.
    func divided(by other: DimProduct) -> Dim? {
        if unknown || other.unknown || other.known == 0 { return .unknown }
        var rest = symbols
        for (s, k) in other.symbols {
            guard let have = rest[s], have >= k else { return .unknown }
            rest[s] = have == k ? nil : have - k
        }
        guard known % other.known == 0 else { return rest.isEmpty ? nil : .unknown }
        let q = known / other.known
        if rest.isEmpty { return .known(q) }
        if q == 1, rest.count == 1, let (s, k) = rest.first, k == 1 { return .symbol(s) }
        return .unknown
    }
}

struct ShapeState {
    let g: Graph
    var types: [String: TensorType] = [:]
    /// Elements of small integer tensors whose values are known, possibly symbolically (from Shape).
    var values: [String: [Dim]] = [:]

    init(graph: Graph) {
        g = graph
        for (name, t) in graph.orderedInitializers where t.dtype.isInteger && t.rank <= 1 && t.count <= 64 {
            values[name] = t.ints.map { .known($0) }
        }
    }

    func type(_ v: String) -> TensorType? {
        if v.isEmpty { return nil }
        return types[v] ?? g.type(of: v)
    }

    /// Known integer elements of an input (all of them known numbers), e.g. axes or pads.
    func ints(_ v: String) -> [Int]? {
        guard let d = values[v] else { return nil }
        let k = d.compactMap(\.value)
        return k.count == d.count ? k : nil
    }

    mutating func infer(_ n: Node) throws -> [TensorType?] {
        let x = n.inputs.first.flatMap { type($0) }
        func same() -> [TensorType?] { [x] }
        func input(_ k: Int) -> TensorType? { k < n.inputs.count ? type(n.inputs[k]) : nil }

        switch n.op {
        case .relu, .leakyRelu, .sigmoid, .hardSigmoid, .hardSwish, .tanh, .clip, .softmax, .logSoftmax, .fakeQuantAct:
            return same()
        case .fakeQuantWeight:
            // Float Ŵ whether W is the float weight (training) or the stored int8 q_h.
            return [x.map { TensorType(.f32, $0.shape) }]
        case .identity:
            if let v = values[n.inputs[0]] { values[n.outputs[0]] = v }
            return same()
        case .dropout:
            return [x, x.map { TensorType(.bool, $0.shape) }]
        case .add, .sub, .mul, .div:
            guard let a = x, let b = input(1) else { return [x] }
            return [TensorType(a.dtype, try broadcast(a, b))]
        case .matMul:
            guard let a = x, let b = input(1) else { return [x] }
            return [try matMul(a, b)]
        case .gemm(let attrs):
            guard let a = x, let b = input(1) else { return [x.map { TensorType($0.dtype, nil) }] }
            return [try gemm(a, b, input(2), attrs)]
        case .conv(let c):
            guard let xt = x, let w = input(1) else { return [x.map { TensorType($0.dtype, nil) }] }
            return [try conv(xt, w, input(2), c)]
        case .maxPool(let p), .averagePool(let p):
            guard let xt = x else { return [nil, nil] }
            let shape = try pool(xt, p)
            return [TensorType(xt.dtype, shape), TensorType(.i64, shape)]
        case .globalAveragePool:
            guard let xt = x, let s = xt.shape else { return same() }
            guard s.count >= 3 else { throw shapeError("input \(text(xt)) needs rank >= 3 (N, C, spatial...)") }
            return [TensorType(xt.dtype, [s[0], s[1]] + Array(repeating: .known(1), count: s.count - 2))]
        case .batchNormalization(_, _, let training):
            guard let xt = x else { return [nil] }
            let c = try checkChannels(xt, params: Array(n.inputs.dropFirst()), leading: [])
            let stat = TensorType(xt.dtype, [c])
            return training ? [xt, stat, stat] : [xt]
        case .switchableBatchNorm(let bits, _, _, let previous):
            guard let xt = x else { return [nil] }
            _ = try checkChannels(xt, params: Array(n.inputs.dropFirst()),
                                  leading: [.known(Op.switchableBatchNormRows(bits: bits, previous: previous))])
            return [xt]
        case .switchableLayerNorm:
            return [x]
        case .flatten(let axis):
            guard let xt = x, let s = xt.shape else { return [x.map { TensorType($0.dtype, [.unknown, .unknown]) }] }
            let a = axis < 0 ? axis + s.count : axis
            guard a >= 0, a <= s.count else { throw shapeError("axis \(axis) is out of range for input \(text(xt))") }
            return [TensorType(xt.dtype, [DimProduct(s[..<a]).asDim, DimProduct(s[a...]).asDim])]
        case .reshape(let allowZero):
            guard let xt = x else { return [nil] }
            return [TensorType(xt.dtype, try reshape(xt, shapeInput: n.inputs[1], allowZero: allowZero))]
        case .transpose(let perm):
            guard let xt = x, let s = xt.shape else { return same() }
            let p = perm ?? Array((0..<s.count).reversed())
            guard p.count == s.count, p.sorted() == Array(0..<s.count) else {
                throw shapeError("perm \(p) does not fit input \(text(xt))")
            }
            return [TensorType(xt.dtype, p.map { s[$0] })]
        case .concat(let axis):
            return [try concat(n, axis: axis)]
        case .squeeze(let attrAxes):
            guard let xt = x else { return [nil] }
            return [TensorType(xt.dtype, try squeeze(xt, axes: attrAxes ?? axesInput(n, 1), hasAxesInput: n.inputs.count > 1 && !n.inputs[1].isEmpty, n))]
        case .unsqueeze(let attrAxes):
            guard let xt = x else { return [nil] }
            guard let axes = attrAxes ?? axesInput(n, 1), let s = xt.shape else { return [TensorType(xt.dtype, nil)] }
            let r = s.count + axes.count
            let norm = axes.map { $0 < 0 ? $0 + r : $0 }
            guard norm.allSatisfy({ $0 >= 0 && $0 < r }), Set(norm).count == norm.count else {
                throw shapeError("axes \(axes) do not fit an output of rank \(r) from input \(text(xt))")
            }
            var out: [Dim] = []
            var it = s.makeIterator()
            for k in 0..<r { out.append(norm.contains(k) ? .known(1) : it.next() ?? .unknown) }
            if s.count <= 1, let v = values[n.inputs[0]] { values[n.outputs[0]] = v }
            return [TensorType(xt.dtype, out)]
        case .pad(_, let attrPads, _):
            guard let xt = x else { return [nil] }
            return [TensorType(xt.dtype, try pad(xt, n, attrPads: attrPads))]
        case .reduceMean(let attrAxes, let keep, let noop):
            guard let xt = x else { return [nil] }
            return [TensorType(xt.dtype, try reduce(xt, n, attrAxes: attrAxes, keepDims: keep, noop: noop))]
        case .shape(let start, let end):
            guard let s = x?.shape else { return [TensorType(.i64, [.unknown])] }
            let r = s.count
            func clamp(_ v: Int) -> Int { min(max(v < 0 ? v + r : v, 0), r) }
            let lo = clamp(start), hi = clamp(end ?? r)
            let dims = lo < hi ? Array(s[lo..<hi]) : []
            values[n.outputs[0]] = dims
            return [TensorType(.i64, [.known(dims.count)])]
        case .gather(let axis):
            guard let xt = x else { return [nil] }
            return [TensorType(xt.dtype, try gather(xt, n, axis: axis))]
        case .quantizeLinear(_, _, let outType):
            let dt = outType ?? input(2)?.dtype ?? .u8
            return [x.map { TensorType(dt, $0.shape) }]
        case .dequantizeLinear:
            let dt = input(1)?.dtype ?? .f32
            return [x.map { TensorType(dt, $0.shape) }]
        case .quantize(_, _, _, _, let to):
            return [x.map { TensorType(to, $0.shape) }]
        case .dequantize:
            return [x.map { TensorType(.f32, $0.shape) }]
        case .qconv(let q):
            guard let xt = x, let w = input(1) else { return [TensorType(.i32, nil)] }
            return [TensorType(.i32, try conv(xt, w, nil, q.conv).shape)]
        case .qgemm(let q):
            guard let a = x, let b = input(1) else { return [TensorType(.i32, nil)] }
            let w = q.transB ? TensorType(b.dtype, b.shape.map { Array($0.reversed()) }) : b
            return [TensorType(.i32, try matMul(a, w).shape)]
        case .requant(let r):
            return [TensorType(r.to, x?.shape)]
        case .qadd(let q):
            guard let a = x, let b = input(1) else { return [TensorType(q.to, x?.shape)] }
            return [TensorType(q.to, try broadcast(a, b))]
        case .qmaxPool(let p), .qavgPool(let p, _):
            guard let xt = x else { return [nil] }
            return [TensorType(xt.dtype, try pool(xt, p))]
        case .layerNormalization, .gelu, .erf, .sqrt, .reciprocal, .neg, .exp, .pow, .cast, .select, .equal, .less,
             .not, .expand, .constantOfShape, .range, .slice, .split, .reduceSum, .reduceMax:
            return try inferTransformer(n)
        case .qglobalAvgPool:
            guard let xt = x, let s = xt.shape else { return same() }
            guard s.count >= 3 else { throw shapeError("input \(text(xt)) needs rank >= 3 (N, C, spatial...)") }
            return [TensorType(xt.dtype, [s[0], s[1]] + Array(repeating: .known(1), count: s.count - 2))]
        }
    }

    func axesInput(_ n: Node, _ k: Int) -> [Int]? {
        guard k < n.inputs.count, !n.inputs[k].isEmpty else { return nil }
        return ints(n.inputs[k])
    }

    // MARK: per-op rules

    func broadcast(_ a: TensorType, _ b: TensorType) throws -> [Dim]? {
        guard let sa = a.shape, let sb = b.shape else { return nil }
        let r = max(sa.count, sb.count)
        let pa = Array(repeating: Dim.known(1), count: r - sa.count) + sa
        let pb = Array(repeating: Dim.known(1), count: r - sb.count) + sb
        return try zip(pa, pb).map { x, y in
            guard let d = broadcastDim(x, y) else {
                throw shapeError("operands \(text(a)) and \(text(b)) are not broadcastable")
            }
            return d
        }
    }

    /// nil when the two dims are known and incompatible.
    func broadcastDim(_ x: Dim, _ y: Dim) -> Dim? {
        switch (x, y) {
        case (.known(1), _): return y
        case (_, .known(1)): return x
        case (.known(let p), .known(let q)): return p == q ? x : nil
        case (.known, _): return x
        case (_, .known): return y
        case (.symbol(let p), .symbol(let q)): return p == q ? x : .unknown
        default: return .unknown
        }
    }

    /// Two dims that must be equal: the more specific one, or nil if they are known to differ.
    func unify(_ x: Dim, _ y: Dim) -> Dim? {
        switch (x, y) {
        case (.known(let p), .known(let q)): return p == q ? x : nil
        case (.known, _): return x
        case (_, .known): return y
        case (.symbol, _): return x
        default: return y
        }
    }

    func matMul(_ a: TensorType, _ b: TensorType) throws -> TensorType {
        guard var sa = a.shape, var sb = b.shape else { return TensorType(a.dtype, nil) }
        guard !sa.isEmpty, !sb.isEmpty else { throw shapeError("MatMul operands \(text(a)) and \(text(b)) must not be scalars") }
        let promoteA = sa.count == 1, promoteB = sb.count == 1
        if promoteA { sa.insert(.known(1), at: 0) }
        if promoteB { sb.append(.known(1)) }
        guard unify(sa[sa.count - 1], sb[sb.count - 2]) != nil else {
            throw shapeError("inner dims of \(text(a)) and \(text(b)) differ")
        }
        let batch = try broadcast(TensorType(a.dtype, Array(sa.dropLast(2))), TensorType(b.dtype, Array(sb.dropLast(2)))) ?? []
        var out = batch
        if !promoteA { out.append(sa[sa.count - 2]) }
        if !promoteB { out.append(sb[sb.count - 1]) }
        return TensorType(a.dtype, out)
    }

    private func gemm(_ a: TensorType, _ b: TensorType, _ c: TensorType?, _ attrs: GemmAttrs) throws -> TensorType {
        guard let sa = a.shape, let sb = b.shape else { return TensorType(a.dtype, nil) }
        guard sa.count == 2, sb.count == 2 else { throw shapeError("Gemm needs rank-2 A and B, got \(text(a)) and \(text(b))") }
        let m = attrs.transA ? sa[1] : sa[0], k = attrs.transA ? sa[0] : sa[1]
        let kb = attrs.transB ? sb[1] : sb[0], nn = attrs.transB ? sb[0] : sb[1]
        guard unify(k, kb) != nil else {
            throw shapeError("inner dims differ: A \(text(a))\(attrs.transA ? " (transA)" : "") and B \(text(b))\(attrs.transB ? " (transB)" : "")")
        }
        let out = TensorType(a.dtype, [m, nn])
        if let c, let sc = c.shape {
            guard sc.count <= 2 else { throw shapeError("Gemm C \(text(c)) has rank > 2") }
            let pc = Array(repeating: Dim.known(1), count: 2 - sc.count) + sc
            for (cd, od) in zip(pc, [m, nn]) {
                if case .known(let p) = cd, p != 1, case .known(let q) = od, p != q {
                    throw shapeError("C \(text(c)) does not broadcast to the output \(text(out))")
                }
            }
        }
        return out
    }

    private func conv(_ x: TensorType, _ w: TensorType, _ bias: TensorType?, _ c: ConvAttrs) throws -> TensorType {
        guard let sx = x.shape else { return TensorType(x.dtype, nil) }
        guard sx.count >= 3 else { throw shapeError("input \(text(x)) needs rank >= 3 (N, C, spatial...)") }
        let spatial = sx.count - 2
        var kernel: [Dim] = c.kernelShape.map { $0.map(Dim.known) } ?? Array(repeating: .unknown, count: spatial)
        var m: Dim = .unknown
        if let sw = w.shape {
            guard sw.count == sx.count else { throw shapeError("weight \(text(w)) and input \(text(x)) differ in rank") }
            m = sw[0]
            if case .known(let cin) = sx[1], case .known(let per) = sw[1], per * c.group != cin {
                throw shapeError("input channels \(cin) of \(text(x)) do not match weight \(text(w)) with group \(c.group) (expected \(per * c.group))")
            }
            if case .known(let mv) = m, mv % c.group != 0 {
                throw shapeError("output channels \(mv) of weight \(text(w)) are not divisible by group \(c.group)")
            }
            if c.kernelShape == nil { kernel = Array(sw[2...]) }
            else if let ks = c.kernelShape, zip(ks, sw[2...]).contains(where: { k, d in d.value != nil && d.value != k }) {
                throw shapeError("kernel_shape \(ks) does not match weight \(text(w))")
            }
        }
        if let b = bias, let sb = b.shape {
            guard sb.count == 1, unify(sb[0], m) != nil else {
                throw shapeError("bias \(text(b)) does not match \(m) output channels of weight \(text(w))")
            }
        }
        guard kernel.count == spatial else { throw shapeError("kernel_shape has \(kernel.count) axes, input \(text(x)) has \(spatial) spatial axes") }
        let out = try spatialOut(Array(sx[2...]), kernel: kernel, strides: c.strides, pads: c.pads,
                                 dilations: c.dilations, autoPad: c.autoPad, ceil: false, input: x)
        return TensorType(x.dtype, [sx[0], m] + out)
    }

    private func pool(_ x: TensorType, _ p: PoolAttrs) throws -> [Dim]? {
        guard let sx = x.shape else { return nil }
        guard sx.count == p.kernelShape.count + 2 else {
            throw shapeError("kernel_shape \(p.kernelShape) needs an input of rank \(p.kernelShape.count + 2), got \(text(x))")
        }
        let out = try spatialOut(Array(sx[2...]), kernel: p.kernelShape.map(Dim.known), strides: p.strides, pads: p.pads,
                                 dilations: p.dilations, autoPad: p.autoPad, ceil: p.ceilMode, input: x)
        return [sx[0], sx[1]] + out
    }

    private func spatialOut(_ inDims: [Dim], kernel: [Dim], strides: [Int]?, pads: [Int]?, dilations: [Int]?,
                            autoPad: AutoPad, ceil: Bool, input: TensorType) throws -> [Dim] {
        let r = inDims.count
        return try (0..<r).map { i in
            let s = strides?[safe: i] ?? 1, d = dilations?[safe: i] ?? 1
            guard s > 0, d > 0 else {
                throw shapeError("strides and dilations must be positive; spatial axis \(i) of \(text(input)) has stride \(s), dilation \(d)")
            }
            guard case .known(let inV) = inDims[i] else { return .unknown }
            switch autoPad {
            case .sameUpper, .sameLower: return .known((inV + s - 1) / s)
            case .valid, .notSet:
                guard case .known(let k) = kernel[i] else { return .unknown }
                let pb = autoPad == .valid ? 0 : pads?[safe: i] ?? 0
                let pe = autoPad == .valid ? 0 : pads?[safe: i + r] ?? 0
                let span = inV + pb + pe - ((k - 1) * d + 1)
                guard span >= 0 else {
                    throw shapeError("kernel \(k) (dilation \(d)) is larger than the padded input \(text(input)) on spatial axis \(i)")
                }
                var o = (ceil ? (span + s - 1) / s : span / s) + 1
                // ONNX: with ceil_mode the last window must start inside the input or left padding.
                if ceil, (o - 1) * s >= inV + pb { o -= 1 }
                return .known(o)
            }
        }
    }

    private func checkChannels(_ x: TensorType, params: [String], leading: [Dim]) throws -> Dim {
        let c: Dim = (x.shape?.count ?? 0) >= 2 ? x.shape![1] : .unknown
        if let s = x.shape, s.count < 2 { throw shapeError("input \(text(x)) needs rank >= 2 (N, C, ...)") }
        for p in params {
            guard let t = type(p), let s = t.shape else { continue }
            guard s.count == leading.count + 1, zip(s, leading).allSatisfy({ unify($0, $1) != nil }),
                  unify(s[leading.count], c) != nil else {
                throw shapeError("parameter '\(p)' \(text(t)) does not match \(c) channels of input \(text(x))")
            }
        }
        return c
    }

    private func reshape(_ x: TensorType, shapeInput: String, allowZero: Bool) throws -> [Dim]? {
        guard let target = values[shapeInput] else {
            if let k = type(shapeInput)?.shape, k.count == 1, case .known(let r) = k[0] {
                return Array(repeating: .unknown, count: r)
            }
            return nil
        }
        let sx = x.shape
        var out: [Dim] = []
        var inferAt: Int?
        for (j, d) in target.enumerated() {
            switch d {
            case .known(0) where !allowZero:
                guard let sx else { out.append(.unknown); continue }
                guard j < sx.count else { throw shapeError("shape \(target) copies dim \(j) (0) of \(text(x)), which has no such dim") }
                out.append(sx[j])
            case .known(-1):
                guard inferAt == nil else { throw shapeError("shape \(target) has more than one -1") }
                inferAt = j
                out.append(.unknown)
            case .known(let v) where v < -1:
                throw shapeError("shape \(target) has a negative dim \(v)")
            default:
                out.append(d)
            }
        }
        guard let sx else { return out }
        let total = DimProduct(sx)
        if let j = inferAt {
            var rest = out
            rest.remove(at: j)
            guard let d = total.divided(by: DimProduct(rest)) else {
                throw shapeError("cannot reshape \(text(x)) to \(target): \(total.known) elements do not divide")
            }
            out[j] = d
        } else {
            let o = DimProduct(out)
            if !total.unknown, !o.unknown, total.symbols.isEmpty, o.symbols.isEmpty, total.known != o.known {
                throw shapeError("cannot reshape \(text(x)) (\(total.known) elements) to \(target) (\(o.known) elements)")
            }
        }
        return out
    }

    private mutating func concat(_ n: Node, axis: Int) throws -> TensorType? {
        let ts = n.inputs.map { type($0) }
        guard let first = ts.first ?? nil else { return nil }
        let shapes = ts.compactMap { $0?.shape }
        if let ranks = Optional(Set(shapes.map(\.count))), ranks.count > 1 {
            throw shapeError("inputs have different ranks: \(ts.compactMap { $0.map(text) }.joined(separator: ", "))")
        }
        // Values of shape computations concatenate too (Shape → Gather → Concat → Reshape).
        let vals = n.inputs.map { values[$0] }
        if vals.allSatisfy({ $0 != nil }) { values[n.outputs[0]] = vals.flatMap { $0! } }
        guard shapes.count == ts.count, let r = shapes.first?.count else { return TensorType(first.dtype, nil) }
        let a = axis < 0 ? axis + r : axis
        guard a >= 0, a < r else { throw shapeError("axis \(axis) is out of range for rank \(r)") }
        var out = shapes[0]
        var sum = 0, sumKnown = true
        for s in shapes {
            if case .known(let v) = s[a] { sum += v } else { sumKnown = false }
            for k in 0..<r where k != a {
                guard let d = unify(out[k], s[k]) else {
                    throw shapeError("inputs differ on axis \(k) (not the concat axis \(a)): \(ts.compactMap { $0.map(text) }.joined(separator: ", "))")
                }
                out[k] = d
            }
        }
        out[a] = sumKnown ? .known(sum) : .unknown
        return TensorType(first.dtype, out)
    }

    private mutating func squeeze(_ x: TensorType, axes: [Int]?, hasAxesInput: Bool, _ n: Node) throws -> [Dim]? {
        guard let s = x.shape else { return nil }
        guard let axes else {
            if hasAxesInput { return nil }
            if s.contains(where: { $0.value == nil }) { return nil }
            return s.filter { $0 != .known(1) }
        }
        let norm = axes.map { $0 < 0 ? $0 + s.count : $0 }
        for (a, k) in zip(axes, norm) {
            guard k >= 0, k < s.count else { throw shapeError("axis \(a) is out of range for \(text(x))") }
            if case .known(let v) = s[k], v != 1 { throw shapeError("axis \(a) of \(text(x)) has size \(v), not 1") }
        }
        if s.count == 1, norm == [0], let v = values[n.inputs[0]] { values[n.outputs[0]] = v }
        return s.enumerated().filter { !norm.contains($0.offset) }.map(\.element)
    }

    private func pad(_ x: TensorType, _ n: Node, attrPads: [Int]?) throws -> [Dim]? {
        guard let s = x.shape else { return nil }
        guard let pads = attrPads ?? axesInput(n, 1) else { return Array(repeating: .unknown, count: s.count) }
        var axes = Array(0..<s.count)
        if n.inputs.count > 3, !n.inputs[3].isEmpty {
            guard let a = ints(n.inputs[3]) else { return Array(repeating: .unknown, count: s.count) }
            axes = a.map { $0 < 0 ? $0 + s.count : $0 }
        }
        guard pads.count == 2 * axes.count, axes.allSatisfy({ $0 >= 0 && $0 < s.count }) else {
            throw shapeError("pads \(pads) do not fit \(axes.count) axes of \(text(x))")
        }
        var out = s
        for (i, a) in axes.enumerated() {
            let add = pads[i] + pads[i + axes.count]
            switch s[a] {
            case .known(let v):
                guard v + add >= 0 else { throw shapeError("pads \(pads) crop axis \(a) of \(text(x)) below zero") }
                out[a] = .known(v + add)
            default: out[a] = add == 0 ? s[a] : .unknown
            }
        }
        return out
    }

    func reduce(_ x: TensorType, _ n: Node, attrAxes: [Int]?, keepDims: Bool, noop: Bool) throws -> [Dim]? {
        guard let s = x.shape else { return nil }
        var axes = attrAxes
        if axes == nil, n.inputs.count > 1, !n.inputs[1].isEmpty {
            guard let a = ints(n.inputs[1]) else { return keepDims ? Array(repeating: .unknown, count: s.count) : nil }
            axes = a
        }
        let list = axes ?? []
        if list.isEmpty && noop { return s }
        let norm = list.isEmpty ? Array(0..<s.count) : list.map { $0 < 0 ? $0 + s.count : $0 }
        guard norm.allSatisfy({ $0 >= 0 && $0 < s.count }) else { throw shapeError("axes \(list) are out of range for \(text(x))") }
        return s.enumerated().compactMap { k, d in norm.contains(k) ? (keepDims ? .known(1) : nil) : d }
    }

    private mutating func gather(_ x: TensorType, _ n: Node, axis: Int) throws -> [Dim]? {
        let idxName = n.inputs[1]
        let idxType = type(idxName)
        guard let s = x.shape else { return nil }
        let a = axis < 0 ? axis + s.count : axis
        guard a >= 0, a < s.count else { throw shapeError("axis \(axis) is out of range for \(text(x))") }
        if let data = values[n.inputs[0]], s.count == 1, let t = g.initializers[idxName] {
            var picked: [Dim] = []
            for i in t.ints {
                let k = i < 0 ? i + data.count : i
                guard k >= 0, k < data.count else { throw shapeError("index \(i) is out of range for \(text(x))") }
                picked.append(data[k])
            }
            values[n.outputs[0]] = picked
        }
        guard let si = idxType?.shape else { return nil }
        return Array(s[..<a]) + si + Array(s[(a + 1)...])
    }
}

extension Array {
    fileprivate subscript(safe i: Int) -> Element? { i >= 0 && i < count ? self[i] : nil }
}
