import BitSwitchIR
import Foundation

/// Ops that only re-label the elements (Flatten, Reshape, Squeeze, Unsqueeze): the gradient is the output
/// gradient with the input's shape.
struct ReshapeKernel: TrainableOpKernel {
    func forward(node: Node, inputs: [Tensor?], context: TrainingContext) throws -> (outputs: [Tensor], saved: Any?) {
        let x = try required(inputs, 0, node)
        var y = x
        y.shape = try ReshapeKernel.outputShape(node: node, inputs: inputs, input: x.shape)
        guard checkedElementCount(y.shape) == x.count else {
            throw BitSwitchError(.shape, "cannot reshape \(x.shape) to \(y.shape)")
        }
        return ([y], nil)
    }

    func backward(node: Node, inputs: [Tensor?], outputs: [Tensor], saved: Any?, gradOutputs: [Tensor?],
                  needsGradient: [Bool], context: TrainingContext) throws -> [Tensor?] {
        var result = [Tensor?](repeating: nil, count: inputs.count)
        guard needsGradient[0], var g = gradOutputs[0] else { return result }
        g.shape = try required(inputs, 0, node).shape
        result[0] = g
        return result
    }

    static func normalizeAxis(_ a: Int, rank: Int) throws -> Int {
        let r = a < 0 ? a + rank : a
        guard r >= 0 && r < rank else { throw BitSwitchError(.invalidModel, "axis \(a) out of range for rank \(rank)") }
        return r
    }

    static func outputShape(node: Node, inputs: [Tensor?], input shape: [Int]) throws -> [Int] {
        switch node.op {
        case .flatten(let axis):
            let a = axis < 0 ? axis + shape.count : axis
            guard a >= 0 && a <= shape.count else { throw BitSwitchError(.invalidModel, "Flatten axis \(axis) out of range") }
            return [shape[..<a].reduce(1, *), shape[a...].reduce(1, *)]
        case .reshape(let allowZero):
            guard inputs.count > 1, let st = inputs[1] else { throw BitSwitchError(.invalidModel, "Reshape needs a shape input") }
            var target = st.ints
            var inferIndex: Int? = nil
            for i in target.indices {
                if target[i] == 0 && !allowZero {
                    guard i < shape.count else { throw BitSwitchError(.shape, "Reshape copies dim \(i) that the input lacks") }
                    target[i] = shape[i]
                } else if target[i] == -1 {
                    guard inferIndex == nil else { throw BitSwitchError(.invalidModel, "Reshape has more than one -1") }
                    inferIndex = i
                } else if target[i] < 0 {
                    throw BitSwitchError(.invalidModel, "Reshape dimension \(target[i]) is invalid")
                }
            }
            if let k = inferIndex {
                let known = target.enumerated().filter { $0.offset != k }.reduce(1) { $0 * $1.element }
                let total = shape.reduce(1, *)
                guard known > 0, total % known == 0 else { throw BitSwitchError(.shape, "cannot reshape \(shape) to \(st.ints)") }
                target[k] = total / known
            }
            return target
        case .squeeze(let attrAxes):
            var axes = attrAxes
            if axes == nil, inputs.count > 1, let t = inputs[1] { axes = t.ints }
            let norm = try Set((axes ?? shape.indices.filter { shape[$0] == 1 }).map { try normalizeAxis($0, rank: shape.count) })
            for a in norm where shape[a] != 1 { throw BitSwitchError(.shape, "Squeeze axis \(a) has size \(shape[a])") }
            return shape.indices.filter { !norm.contains($0) }.map { shape[$0] }
        case .unsqueeze(let attrAxes):
            var axes = attrAxes
            if axes == nil, inputs.count > 1, let t = inputs[1] { axes = t.ints }
            guard let axes else { throw BitSwitchError(.invalidModel, "Unsqueeze needs axes") }
            let r = shape.count + axes.count
            let norm = try Set(axes.map { try normalizeAxis($0, rank: r) })
            var out: [Int] = []
            var it = shape.makeIterator()
            for i in 0..<r { out.append(norm.contains(i) ? 1 : (it.next() ?? 1)) }
            return out
        default:
            throw BitSwitchError(.internalError, "reshape kernel on \(node.op.typeName)")
        }
    }
}

/// Transpose: the gradient is transposed back with the inverse permutation.
struct TransposeKernel: TrainableOpKernel {
    static func permute(_ x: [Float], _ shape: [Int], _ perm: [Int]) -> ([Float], [Int]) {
        let outShape = perm.map { shape[$0] }
        let inStrides = contiguousStrides(shape)
        let strides = perm.map { inStrides[$0] }
        let n = x.count
        var out = [Float](repeating: 0, count: n)
        if n == 0 { return (out, outShape) }
        var idx = [Int](repeating: 0, count: shape.count)
        var off = 0
        for i in 0..<n {
            out[i] = x[off]
            var d = shape.count - 1
            while d >= 0 {
                idx[d] += 1; off += strides[d]
                if idx[d] < outShape[d] { break }
                off -= strides[d] * outShape[d]; idx[d] = 0; d -= 1
            }
        }
        return (out, outShape)
    }

    func perm(_ node: Node, rank: Int) throws -> [Int] {
        guard case .transpose(let p) = node.op else { throw BitSwitchError(.internalError, "transpose kernel on another op") }
        let perm = p ?? Array((0..<rank).reversed())
        guard perm.count == rank, Set(perm) == Set(0..<rank) else {
            throw BitSwitchError(.invalidModel, "Transpose perm \(perm) does not match rank \(rank)")
        }
        return perm
    }

    func forward(node: Node, inputs: [Tensor?], context: TrainingContext) throws -> (outputs: [Tensor], saved: Any?) {
        let x = try required(inputs, 0, node)
        let (y, s) = TransposeKernel.permute(try x.trainingFloats("input"), x.shape, try perm(node, rank: x.rank))
        return ([floatTensor(s, y)], nil)
    }

    func backward(node: Node, inputs: [Tensor?], outputs: [Tensor], saved: Any?, gradOutputs: [Tensor?],
                  needsGradient: [Bool], context: TrainingContext) throws -> [Tensor?] {
        guard needsGradient[0], let g = gradOutputs[0] else { return [nil] }
        let p = try perm(node, rank: g.rank)
        var inverse = p
        for (i, v) in p.enumerated() { inverse[v] = i }
        let (dx, s) = TransposeKernel.permute(try g.trainingFloats("gradient"), g.shape, inverse)
        return [floatTensor(s, dx)]
    }
}

/// Concat: the gradient is split back along the axis.
struct ConcatKernel: TrainableOpKernel {
    func axis(_ node: Node, rank: Int) throws -> Int {
        guard case .concat(let a) = node.op else { throw BitSwitchError(.internalError, "concat kernel on another op") }
        return try ReshapeKernel.normalizeAxis(a, rank: rank)
    }

    func forward(node: Node, inputs: [Tensor?], context: TrainingContext) throws -> (outputs: [Tensor], saved: Any?) {
        let parts = try inputs.indices.map { try required(inputs, $0, node) }
        guard let first = parts.first else { throw BitSwitchError(.invalidModel, "Concat has no inputs") }
        let ax = try axis(node, rank: first.rank)
        var outShape = first.shape
        outShape[ax] = 0
        for p in parts {
            guard p.rank == first.rank,
                  p.shape.indices.allSatisfy({ $0 == ax || p.shape[$0] == first.shape[$0] }) else {
                throw BitSwitchError(.shape, "Concat inputs \(parts.map(\.shape)) differ outside axis \(ax)")
            }
            outShape[ax] += p.shape[ax]
        }
        let outer = first.shape[..<ax].reduce(1, *)
        let inner = first.shape[(ax + 1)...].reduce(1, *)
        let rowOut = outShape[ax] * inner
        var out = [Float](repeating: 0, count: outer * rowOut)
        var offset = 0
        for p in parts {
            let x = try p.trainingFloats("input")
            let row = p.shape[ax] * inner
            for o in 0..<outer {
                for i in 0..<row { out[o * rowOut + offset + i] = x[o * row + i] }
            }
            offset += row
        }
        return ([floatTensor(outShape, out)], nil)
    }

    func backward(node: Node, inputs: [Tensor?], outputs: [Tensor], saved: Any?, gradOutputs: [Tensor?],
                  needsGradient: [Bool], context: TrainingContext) throws -> [Tensor?] {
        var result = [Tensor?](repeating: nil, count: inputs.count)
        guard let gt = gradOutputs[0] else { return result }
        let g = try gt.trainingFloats("gradient")
        let ax = try axis(node, rank: gt.rank)
        let outer = gt.shape[..<ax].reduce(1, *)
        let inner = gt.shape[(ax + 1)...].reduce(1, *)
        let rowOut = gt.shape[ax] * inner
        var offset = 0
        for (k, p) in inputs.enumerated() {
            guard let p else { continue }
            let row = p.shape[ax] * inner
            if needsGradient[k] {
                var dx = [Float](repeating: 0, count: outer * row)
                for o in 0..<outer { for i in 0..<row { dx[o * row + i] = g[o * rowOut + offset + i] } }
                result[k] = floatTensor(p.shape, dx)
            }
            offset += row
        }
        return result
    }
}

/// Softmax and LogSoftmax along one axis (opset >= 13), or over the 2-D coercion at the axis (legacy opsets).
struct SoftmaxKernel: TrainableOpKernel {
    let log: Bool

    func geometry(_ node: Node, _ shape: [Int]) throws -> (outer: Int, len: Int, inner: Int) {
        let axis: Int, legacy: Bool
        switch node.op {
        case .softmax(let a, let l), .logSoftmax(let a, let l): axis = a; legacy = l
        default: throw BitSwitchError(.internalError, "softmax kernel on another op")
        }
        let ax = try ReshapeKernel.normalizeAxis(axis, rank: max(shape.count, 1))
        if legacy { return (shape[..<ax].reduce(1, *), shape[ax...].reduce(1, *), 1) }
        return (shape[..<ax].reduce(1, *), shape[ax], shape[(ax + 1)...].reduce(1, *))
    }

    func forward(node: Node, inputs: [Tensor?], context: TrainingContext) throws -> (outputs: [Tensor], saved: Any?) {
        let xt = try required(inputs, 0, node)
        let x = try xt.trainingFloats("input")
        let (outer, len, inner) = try geometry(node, xt.shape)
        var y = [Float](repeating: 0, count: x.count)
        for o in 0..<outer {
            for j in 0..<inner {
                let base = o * len * inner + j
                var mx = -Float.infinity
                for k in 0..<len { mx = max(mx, x[base + k * inner]) }
                var sum: Float = 0
                for k in 0..<len { sum += expf(x[base + k * inner] - mx) }
                if log {
                    let lse = mx + logf(sum)
                    for k in 0..<len { y[base + k * inner] = x[base + k * inner] - lse }
                } else {
                    for k in 0..<len { y[base + k * inner] = expf(x[base + k * inner] - mx) / sum }
                }
            }
        }
        return ([floatTensor(xt.shape, y)], nil)
    }

    func backward(node: Node, inputs: [Tensor?], outputs: [Tensor], saved: Any?, gradOutputs: [Tensor?],
                  needsGradient: [Bool], context: TrainingContext) throws -> [Tensor?] {
        guard needsGradient[0], let gt = gradOutputs[0] else { return [nil] }
        let g = try gt.trainingFloats("gradient"), y = try outputs[0].trainingFloats("output")
        let (outer, len, inner) = try geometry(node, gt.shape)
        var dx = [Float](repeating: 0, count: g.count)
        for o in 0..<outer {
            for j in 0..<inner {
                let base = o * len * inner + j
                if log {
                    // y = x - lse: dx = g - softmax * sum(g)
                    var sg: Float = 0
                    for k in 0..<len { sg += g[base + k * inner] }
                    for k in 0..<len { let i = base + k * inner; dx[i] = g[i] - expf(y[i]) * sg }
                } else {
                    // dx = y * (g - sum(g * y))
                    var s: Float = 0
                    for k in 0..<len { let i = base + k * inner; s += g[i] * y[i] }
                    for k in 0..<len { let i = base + k * inner; dx[i] = y[i] * (g[i] - s) }
                }
            }
        }
        return [floatTensor(gt.shape, dx)]
    }
}

/// GlobalAveragePool over all spatial dims of [N, C, spatial...]: each input element gets grad / spatial size.
struct GlobalAveragePoolKernel: TrainableOpKernel {
    func forward(node: Node, inputs: [Tensor?], context: TrainingContext) throws -> (outputs: [Tensor], saved: Any?) {
        let xt = try required(inputs, 0, node)
        guard xt.rank >= 2 else { throw BitSwitchError(.shape, "GlobalAveragePool needs rank >= 2, got \(xt.shape)") }
        let x = try xt.trainingFloats("input")
        let nc = xt.shape[0] * xt.shape[1], s = xt.shape.dropFirst(2).reduce(1, *)
        let inv = 1 / Float(max(s, 1))
        let y = filledFloats(nc) { o in
            x.withUnsafeBufferPointer { xp in
                for r in 0..<nc {
                    var acc: Float = 0
                    for i in 0..<s { acc += xp[r * s + i] }
                    o[r] = acc * inv
                }
            }
        }
        let outShape = [xt.shape[0], xt.shape[1]] + [Int](repeating: 1, count: xt.rank - 2)
        return ([floatTensor(outShape, y)], nil)
    }

    func backward(node: Node, inputs: [Tensor?], outputs: [Tensor], saved: Any?, gradOutputs: [Tensor?],
                  needsGradient: [Bool], context: TrainingContext) throws -> [Tensor?] {
        guard needsGradient[0], let gt = gradOutputs[0] else { return [nil] }
        let xt = try required(inputs, 0, node)
        let g = try gt.trainingFloats("gradient")
        let nc = xt.shape[0] * xt.shape[1], s = xt.shape.dropFirst(2).reduce(1, *)
        let inv = 1 / Float(max(s, 1))
        let dx = filledFloats(nc * s) { o in
            for r in 0..<nc { let v = g[r] * inv; for i in 0..<s { o[r * s + i] = v } }
        }
        return [floatTensor(xt.shape, dx)]
    }
}
