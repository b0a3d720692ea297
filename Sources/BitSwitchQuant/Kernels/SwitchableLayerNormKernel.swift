import BitSwitchIR
import BitSwitchRuntime

/// ai.bitswitch::SwitchableLayerNorm(x, scale, bias) — LayerNormalization with one affine per trained bit-width,
/// the transformer analogue of SwitchableBatchNorm. `scale` and `bias` are [|bits|, D] (D = the product of the
/// normalized dimensions); the row is the index of the active profile in `bits`. The math is the float
/// LayerNormalization kernel's, run on that row; the gradients of the other rows are zero.
struct SwitchableLayerNormKernel: TrainableOpKernel {
    func parameterRoles(node: Node) -> [Int: ParameterRole] { [1: .normAffine, 2: .normAffine] }

    struct Saved { var row: Int; var width: Int; var inner: Any?; var rowScale: Tensor; var rowBias: Tensor }

    private static let float = layerNormalizationTrainingKernel()

    /// The equivalent float node (same name, so errors name the user's node) and the active row.
    private func rows(_ node: Node, _ inputs: [Tensor?], _ context: TrainingContext)
        throws -> (node: Node, row: Int, width: Int, scale: Tensor, bias: Tensor) {
        guard case .switchableLayerNorm(let bits, let axis, let eps) = node.op else {
            throw BitSwitchError(.internalError, "SwitchableLayerNorm kernel on \(node.op.typeName)")
        }
        let profile = try activeProfile(bits: bits, activeBits: context.assignment.bits(for: node.name))
        let s = try requiredInput(inputs, 1, "scale"), b = try requiredInput(inputs, 2, "bias")
        for (t, what) in [(s, "scale"), (b, "bias")] where t.rank != 2 || t.shape[0] != bits.count {
            throw BitSwitchError(.shape, "SwitchableLayerNorm \(what) must be [\(bits.count), D] (one row per "
                                 + "bit-width), got \(t.shape)", node: node.label, op: node.op.typeName,
                                 domain: node.op.domain)
        }
        guard s.shape == b.shape else {
            throw BitSwitchError(.shape, "SwitchableLayerNorm scale \(s.shape) and bias \(b.shape) differ",
                                 node: node.label, op: node.op.typeName, domain: node.op.domain)
        }
        let d = s.shape[1], r = profile.index
        let scale = Tensor(shape: [d], floats: Array(try s.quantFloats("SwitchableLayerNorm scale")[(r * d)..<((r + 1) * d)]))
        let bias = Tensor(shape: [d], floats: Array(try b.quantFloats("SwitchableLayerNorm bias")[(r * d)..<((r + 1) * d)]))
        let plain = Node(name: node.name, op: .layerNormalization(axis: axis, epsilon: eps),
                         inputs: Array(node.inputs.prefix(3)), outputs: node.outputs)
        return (plain, r, d, scale, bias)
    }

    func forward(node: Node, inputs: [Tensor?], context: TrainingContext) throws -> (outputs: [Tensor], saved: Any?) {
        let p = try rows(node, inputs, context)
        let x = try requiredInput(inputs, 0, "X")
        let r = try Self.float.forward(node: p.node, inputs: [x, p.scale, p.bias], context: context)
        return (Array(r.outputs.prefix(1)),
                Saved(row: p.row, width: p.width, inner: r.saved, rowScale: p.scale, rowBias: p.bias))
    }

    func backward(node: Node, inputs: [Tensor?], outputs: [Tensor], saved: Any?, gradOutputs: [Tensor?],
                  needsGradient: [Bool], context: TrainingContext) throws -> [Tensor?] {
        var result = [Tensor?](repeating: nil, count: inputs.count)
        guard gradOutputs.first ?? nil != nil, needsGradient.contains(true) else { return result }
        guard let s = saved as? Saved, case .switchableLayerNorm(_, let axis, let eps) = node.op else {
            throw BitSwitchError(.internalError, "SwitchableLayerNorm backward without its forward state")
        }
        let plain = Node(name: node.name, op: .layerNormalization(axis: axis, epsilon: eps),
                         inputs: Array(node.inputs.prefix(3)), outputs: node.outputs)
        let x = try requiredInput(inputs, 0, "X")
        let g = try Self.float.backward(node: plain, inputs: [x, s.rowScale, s.rowBias], outputs: outputs,
                                        saved: s.inner, gradOutputs: gradOutputs, needsGradient: needsGradient,
                                        context: context)
        if needsGradient[0] { result[0] = g[0] }
        for i in 1...2 where i < needsGradient.count && needsGradient[i] {
            let p = try requiredInput(inputs, i, i == 1 ? "scale" : "bias")
            var full = [Float](repeating: 0, count: p.count)
            if let rowGrad = g[i] {
                full.replaceSubrange((s.row * s.width)..<((s.row + 1) * s.width),
                                     with: try rowGrad.quantFloats("SwitchableLayerNorm gradient"))
            }
            result[i] = Tensor(shape: p.shape, floats: full)
        }
        return result
    }
}
