import BitSwitchIR

// Training kernels of the selection ops a decoder uses: Gather (an embedding lookup: scatter-add into the table),
// Slice and Split (the gradient lands back at the elements each output was read from), and Where (the gradient
// goes to the operand that was selected, summed over broadcast dimensions). The forwards are the inference kernels,
// so shape arithmetic on integer tensors runs through these kernels unchanged.

/// The flat input offset each output element of `node` was read from: the op applied to an int64 iota of the
/// input's shape (Slice and Split move elements without changing them, so the iota's values are the offsets).
private func sourceOffsets(_ node: Node, inputs: [Tensor?], shape: [Int], opset: Int) throws -> [[Int]] {
    let n = shape.reduce(1, *)
    var ins = inputs
    ins[0] = Tensor(shape: shape, int64s: (0..<n).map { Int64($0) })
    return try evaluateTransformer(node, ins, opset: opset).map { t -> [Int] in
        guard case .i64(let a) = t.storage else { throw BitSwitchError(.internalError, "offset map is not int64") }
        return a.map { Int($0) }
    }
}

/// Slice and Split: dx[offset(o)] += dy[o] for every output element o.
struct SliceSplitKernel: TrainableOpKernel {
    func forward(node: Node, inputs: [Tensor?], context: TrainingContext) throws -> (outputs: [Tensor], saved: Any?) {
        (try evaluateTransformer(node, inputs, opset: 18), nil)
    }

    func backward(node: Node, inputs: [Tensor?], outputs: [Tensor], saved: Any?, gradOutputs: [Tensor?],
                  needsGradient: [Bool], context: TrainingContext) throws -> [Tensor?] {
        var result = [Tensor?](repeating: nil, count: inputs.count)
        guard needsGradient[0], gradOutputs.contains(where: { $0 != nil }) else { return result }
        let x = try required(inputs, 0, node)
        let offsets = try sourceOffsets(node, inputs: inputs, shape: x.shape, opset: 18)
        var dx = [Float](repeating: 0, count: x.count)
        for (k, gt) in gradOutputs.enumerated() {
            guard let gt, k < offsets.count else { continue }
            let g = try gt.trainingFloats("\(node.op.typeName) gradient")
            let off = offsets[k]
            guard off.count == g.count else { throw BitSwitchError(.internalError, "gradient of output \(k) has \(g.count) elements, the output \(off.count)") }
            for i in 0..<g.count { dx[off[i]] += g[i] }
        }
        result[0] = floatTensor(x.shape, dx)
        return result
    }
}

/// Gather along any axis: the gradient of the data is a scatter-add (an index that repeats accumulates); the
/// indices get none. With the data an initializer, this is an embedding table (a weight, as PyTorch's
/// nn.Embedding).
struct GatherKernel: TrainableOpKernel {
    func parameterRoles(node: Node) -> [Int: ParameterRole] { [0: .weight] }

    func forward(node: Node, inputs: [Tensor?], context: TrainingContext) throws -> (outputs: [Tensor], saved: Any?) {
        guard case .gather(let axis) = node.op else { throw BitSwitchError(.internalError, "gather kernel on another op") }
        return ([try gatherOp(required(inputs, 0, node), required(inputs, 1, node), axis: axis)], nil)
    }

    func backward(node: Node, inputs: [Tensor?], outputs: [Tensor], saved: Any?, gradOutputs: [Tensor?],
                  needsGradient: [Bool], context: TrainingContext) throws -> [Tensor?] {
        var result = [Tensor?](repeating: nil, count: inputs.count)
        guard case .gather(let axis) = node.op else { throw BitSwitchError(.internalError, "gather kernel on another op") }
        guard needsGradient[0], let gt = gradOutputs[0] else { return result }
        let data = try required(inputs, 0, node), indices = try required(inputs, 1, node)
        let a = try normalizeAxis(axis, rank: data.rank, what: "Gather axis")
        let len = data.shape[a]
        let outer = data.shape[..<a].reduce(1, *), inner = data.shape[(a + 1)...].reduce(1, *)
        let idx = try indices.ints.map { i -> Int in
            let j = i < 0 ? i + len : i
            guard j >= 0, j < len else { throw BitSwitchError(.data, "Gather index \(i) is out of range for axis size \(len)") }
            return j
        }
        let g = try gt.trainingFloats("Gather gradient")
        guard g.count == outer * idx.count * inner else {
            throw BitSwitchError(.internalError, "Gather gradient has \(g.count) elements, expected \(outer * idx.count * inner)")
        }
        var dx = [Float](repeating: 0, count: data.count)
        g.withUnsafeBufferPointer { gp in
            dx.withUnsafeMutableBufferPointer { dp in
                for o in 0..<outer {
                    for (k, j) in idx.enumerated() {
                        let src = (o * idx.count + k) * inner, dst = (o * len + j) * inner
                        for i in 0..<inner { dp[dst + i] += gp[src + i] }
                    }
                }
            }
        }
        result[0] = floatTensor(data.shape, dx)
        return result
    }
}

/// Where(condition, X, Y): dX = dY where the condition holds, dY's complement to Y, each summed back to its
/// operand's shape (a scalar fill such as the −inf of a causal mask collects the sum of its positions).
struct WhereKernel: TrainableOpKernel {
    func forward(node: Node, inputs: [Tensor?], context: TrainingContext) throws -> (outputs: [Tensor], saved: Any?) {
        ([try whereOp(required(inputs, 0, node), required(inputs, 1, node), required(inputs, 2, node))], nil)
    }

    func backward(node: Node, inputs: [Tensor?], outputs: [Tensor], saved: Any?, gradOutputs: [Tensor?],
                  needsGradient: [Bool], context: TrainingContext) throws -> [Tensor?] {
        var result = [Tensor?](repeating: nil, count: inputs.count)
        guard let gt = gradOutputs[0] else { return result }
        let c = try required(inputs, 0, node)
        guard case .bool(let cond) = c.storage else { throw BitSwitchError(.type, "Where condition must be bool, got \(c.dtype)") }
        let g = try gt.trainingFloats("Where gradient")
        let shape = gt.shape
        let ic = broadcastIndex(c.shape, to: shape)
        for (k, taken) in [(1, true), (2, false)] where needsGradient.count > k && needsGradient[k] {
            let v = try required(inputs, k, node)
            let iv = broadcastIndex(v.shape, to: shape)
            var d = [Float](repeating: 0, count: v.count)
            for i in 0..<g.count where cond[ic[i]] == taken { d[iv[i]] += g[i] }
            result[k] = floatTensor(v.shape, d)
        }
        return result
    }
}

/// Whether a float constant is an additive attention mask rather than a bias: it holds −inf, or only zeros and
/// one large negative value (≤ −1e4, as masks built with −1e4, −1e9 or the float minimum are). Such a constant
/// added to scores is never trained.
func isAdditiveMask(_ t: Tensor) -> Bool {
    guard case .f32(let a) = t.storage, !a.isEmpty else { return false }
    if a.contains(where: { $0 == -.infinity }) { return true }
    var negative: Float?
    for v in a where v != 0 {
        guard v <= -1e4, negative == nil || negative == v else { return false }
        negative = v
    }
    return negative != nil
}
