// Shape rules and arity of the transformer ops (ShapeInference.swift and Verifier.swift delegate here).

/// (min inputs, max inputs, min outputs, max outputs).
func transformerArity(_ op: Op) -> (Int, Int, Int, Int) {
    switch op {
    case .layerNormalization: return (2, 3, 1, 3)
    case .gelu, .erf, .sqrt, .reciprocal, .neg, .exp, .cast, .not, .constantOfShape: return (1, 1, 1, 1)
    case .pow, .equal, .less, .expand: return (2, 2, 1, 1)
    case .select, .range: return (3, 3, 1, 1)
    case .slice(let starts, _, _): return starts != nil ? (1, 1, 1, 1) : (3, 5, 1, 1)
    case .split: return (1, 2, 1, Int.max)
    case .reduceSum(let axes, _, _), .reduceMax(let axes, _, _): return axes == nil ? (1, 2, 1, 1) : (1, 1, 1, 1)
    default: return (0, Int.max, 0, Int.max)
    }
}

extension ShapeState {
    mutating func inferTransformer(_ n: Node) throws -> [TensorType?] {
        func input(_ k: Int) -> TensorType? { k < n.inputs.count ? type(n.inputs[k]) : nil }
        let x = input(0)
        switch n.op {
        case .gelu, .erf, .sqrt, .reciprocal, .neg, .exp:
            return [x]
        case .layerNormalization(let axis, _):
            guard let xt = x, let s = xt.shape else { return [x, TensorType(.f32, nil), TensorType(.f32, nil)] }
            let a = axis < 0 ? axis + s.count : axis
            guard a >= 0, a < s.count else { throw shapeError("axis \(axis) is out of range for input \(text(xt))") }
            if let sc = input(1)?.shape, sc.count > s.count - a {
                throw shapeError("Scale \(text(input(1)!)) has more dims than the normalized part of \(text(xt))")
            }
            let stat = TensorType(.f32, Array(s[..<a]) + Array(repeating: .known(1), count: s.count - a))
            return [xt, stat, stat]
        case .pow:
            guard let a = x, let b = input(1) else { return [x] }
            return [TensorType(a.dtype, try broadcast(a, b))]
        case .equal, .less:
            guard let a = x, let b = input(1) else { return [TensorType(.bool, nil)] }
            if a.dtype != b.dtype { throw shapeError("operands \(text(a)) and \(text(b)) have different types") }
            return [TensorType(.bool, try broadcast(a, b))]
        case .not:
            return [x.map { TensorType(.bool, $0.shape) }]
        case .select:
            guard let c = x, let a = input(1), let b = input(2) else { return [input(1)] }
            let ab = TensorType(a.dtype, try broadcast(a, b))
            return [TensorType(a.dtype, try broadcast(c, ab))]
        case .cast(let to):
            if to.isInteger, let v = values[n.inputs[0]] { values[n.outputs[0]] = v }
            return [x.map { TensorType(to, $0.shape) }]
        case .expand:
            guard let xt = x else { return [nil] }
            if let dims = values[n.inputs[1]] {
                return [TensorType(xt.dtype, try broadcast(xt, TensorType(xt.dtype, dims)))]
            }
            if let len = input(1)?.shape?.first?.value, let s = xt.shape {
                return [TensorType(xt.dtype, Array(repeating: .unknown, count: max(len, s.count)))]
            }
            return [TensorType(xt.dtype, nil)]
        case .constantOfShape(let value):
            let dt = value?.dtype ?? .f32
            if let dims = values[n.inputs[0]] { return [TensorType(dt, dims)] }
            if let len = x?.shape?.first?.value { return [TensorType(dt, Array(repeating: .unknown, count: len))] }
            return [TensorType(dt, nil)]
        case .range:
            guard let st = x else { return [nil] }
            if let a = ints(n.inputs[0]), let b = ints(n.inputs[1]), let d = ints(n.inputs[2]),
               a.count == 1, b.count == 1, d.count == 1, d[0] != 0, st.dtype.isInteger {
                let len = max(0, (b[0] - a[0] + d[0] - (d[0] > 0 ? 1 : -1)) / d[0])
                if len <= 64 { values[n.outputs[0]] = (0..<len).map { .known(a[0] + $0 * d[0]) } }
                return [TensorType(st.dtype, [.known(len)])]
            }
            return [TensorType(st.dtype, [.unknown])]
        case .slice(let aStarts, let aEnds, let aAxes):
            guard let xt = x, let s = xt.shape else { return [x] }
            let starts = aStarts ?? axesInput(n, 1), ends = aEnds ?? axesInput(n, 2)
            let axes = aAxes ?? (aStarts == nil ? axesInput(n, 3) : nil)
            let hasAxes = aAxes != nil || (aStarts == nil && n.inputs.count > 3 && !n.inputs[3].isEmpty)
            let hasSteps = aStarts == nil && n.inputs.count > 4 && !n.inputs[4].isEmpty
            let steps = hasSteps ? axesInput(n, 4) : nil
            guard let starts, let ends, !(hasAxes && axes == nil), !(hasSteps && steps == nil) else {
                return [TensorType(xt.dtype, Array(repeating: .unknown, count: s.count))]
            }
            let ax = (axes ?? Array(0..<starts.count)).map { $0 < 0 ? $0 + s.count : $0 }
            let st = steps ?? Array(repeating: 1, count: starts.count)
            guard starts.count == ends.count, ax.count == starts.count, st.count == starts.count,
                  ax.allSatisfy({ $0 >= 0 && $0 < s.count }), !st.contains(0) else {
                throw shapeError("starts \(starts), ends \(ends), axes \(axes ?? []), steps \(st) do not fit \(text(xt))")
            }
            var out = s
            var picks: [Int]? = nil
            for (i, a) in ax.enumerated() {
                guard let dim = s[a].value else { out[a] = .unknown; continue }
                let r = Array(sliceRange(start: starts[i], end: ends[i], step: st[i], dim: dim))
                out[a] = .known(r.count)
                if s.count == 1 { picks = Array(r) }
            }
            if let picks, let v = values[n.inputs[0]], v.count == s[0].value { values[n.outputs[0]] = picks.map { v[$0] } }
            return [TensorType(xt.dtype, out)]
        case .split(let axis, let attrSizes, _):
            let count = n.outputs.count
            guard let xt = x, let s = xt.shape else { return Array(repeating: x, count: count) }
            let a = axis < 0 ? axis + s.count : axis
            guard a >= 0, a < s.count else { throw shapeError("axis \(axis) is out of range for input \(text(xt))") }
            let sizes = attrSizes ?? axesInput(n, 1)
            if let sizes {
                guard sizes.count == count else { throw shapeError("split sizes \(sizes) do not match \(count) outputs") }
                if let d = s[a].value, sizes.reduce(0, +) != d {
                    throw shapeError("split sizes \(sizes) do not add up to axis \(a) of \(text(xt))")
                }
                return sizes.map { k in var o = s; o[a] = .known(k); return TensorType(xt.dtype, o) }
            }
            if n.inputs.count > 1 && !n.inputs[1].isEmpty {
                return Array(repeating: TensorType(xt.dtype, s.enumerated().map { $0.offset == a ? .unknown : $0.element }), count: count)
            }
            guard let d = s[a].value else {
                return Array(repeating: TensorType(xt.dtype, s.enumerated().map { $0.offset == a ? .unknown : $0.element }), count: count)
            }
            return splitSizes(d, parts: count).map { k in var o = s; o[a] = .known(k); return TensorType(xt.dtype, o) }
        case .reduceSum(let axes, let keep, let noop), .reduceMax(let axes, let keep, let noop):
            guard let xt = x else { return [nil] }
            return [TensorType(xt.dtype, try reduce(xt, n, attrAxes: axes, keepDims: keep, noop: noop))]
        default:
            return [x]
        }
    }
}

/// Indices a Slice picks on one axis of size `dim` (ONNX clamping rules).
public func sliceRange(start: Int, end: Int, step: Int, dim: Int) -> StrideTo<Int> {
    func clampIndex(_ v: Int, _ lo: Int, _ hi: Int) -> Int {
        let w = v < 0 ? (v < -dim ? lo : v + dim) : v
        return min(max(w, lo), hi)
    }
    if step > 0 {
        return stride(from: clampIndex(start, 0, dim), to: clampIndex(end, 0, dim), by: step)
    }
    return stride(from: clampIndex(start, -1, dim - 1), to: clampIndex(end, -1, dim - 1), by: step)
}

/// ONNX Split without sizes: ceil(d / parts) each, the last one smaller.
public func splitSizes(_ d: Int, parts: Int) -> [Int] {
    guard parts > 0 else { return [] }
    let chunk = (d + parts - 1) / parts
    return (0..<parts).map { k in max(0, min(chunk, d - k * chunk)) }
}
