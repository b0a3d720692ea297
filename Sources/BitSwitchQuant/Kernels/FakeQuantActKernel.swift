import BitSwitchIR
import BitSwitchRuntime

/// ai.bitswitch::FakeQuantAct(x, scales) — the LSQ activation quantizer with one learned scale per trained
/// bit-width (METHOD.md §2, docs/quant-ops.md).
///
/// The scale is scales[index of the active profile in bits]; the quantizer's bit-width is pinned_bits ?? that
/// profile. A pinned layer therefore still has one scale per profile: its input follows the BN row of the active
/// profile, so its range differs per profile, and this keeps `scales` the same shape on every node.
/// A scale <= 0 is not initialised yet: the first training forward in that profile sets it from the batch
/// (0.1/99.9 percentiles), uses it at once, and reports it as a state update so the engine writes it back.
struct FakeQuantActKernel: TrainableOpKernel {
    func parameterRoles(node: Node) -> [Int: ParameterRole] { [1: .quantScale] }

    struct Saved { var index: Int; var scale: Float; var quantizer: ActivationQuantizer }

    static func attributes(_ node: Node) throws -> FakeQuantActAttrs {
        guard case .fakeQuantAct(let a) = node.op else {
            throw BitSwitchError(.internalError, "FakeQuantAct kernel on \(node.op.typeName)")
        }
        return a
    }

    func forward(node: Node, inputs: [Tensor?], context: TrainingContext) throws -> (outputs: [Tensor], saved: Any?) {
        let a = try Self.attributes(node)
        let profile = try activeProfile(bits: a.bits, activeBits: context.assignment.bits(for: node.name))
        let quantizer = try ActivationQuantizer(bits: a.pinnedBits ?? profile.bits, signed: a.signed)
        let xt = try requiredInput(inputs, 0, "x")
        let x = try xt.quantFloats("FakeQuantAct input x")
        let st = try requiredInput(inputs, 1, "scales")
        var scales = try st.quantFloats("FakeQuantAct scales")
        guard scales.count == a.bits.count else {
            throw BitSwitchError(.shape, "FakeQuantAct scales has \(scales.count) values for \(a.bits.count) bit-widths \(a.bits)")
        }
        var scale = scales[profile.index]
        if !(scale > 0) || !scale.isFinite {
            guard context.training else {
                throw BitSwitchError(.invalidModel, "the activation scale for bit-width \(profile.bits) is not "
                    + "initialised (\(scale)); train (or calibrate) the model at that bit-width first")
            }
            if let s = quantizer.initialScale(sample: x) {
                scale = s
                scales[profile.index] = s
                if node.inputs.count > 1 && !node.inputs[1].isEmpty {
                    context.updateState(node.inputs[1], floatTensor(st.shape, scales))
                }
            } else {
                // An all-zero batch carries no range; zeros quantize exactly with any positive scale and give a
                // zero scale gradient, so the scale stays uninitialised until a batch with information arrives.
                scale = 1
            }
        }
        let y = x.withUnsafeBufferPointer { xp in
            filledFloats(x.count) { quantizer.forward(input: xp, scale: scale, output: $0) }
        }
        return ([floatTensor(xt.shape, y)], Saved(index: profile.index, scale: scale, quantizer: quantizer))
    }

    func backward(node: Node, inputs: [Tensor?], outputs: [Tensor], saved: Any?, gradOutputs: [Tensor?],
                  needsGradient: [Bool], context: TrainingContext) throws -> [Tensor?] {
        var result = [Tensor?](repeating: nil, count: inputs.count)
        guard let gt = gradOutputs[0], needsGradient.contains(true) else { return result }
        guard let s = saved as? Saved else { throw BitSwitchError(.internalError, "FakeQuantAct lost its scale") }
        let xt = try requiredInput(inputs, 0, "x")
        let st = try requiredInput(inputs, 1, "scales")
        let x = try xt.quantFloats("FakeQuantAct input x")
        let g = try gt.quantFloats("gradient")
        var gradScale: Float = 0
        let gx = x.withUnsafeBufferPointer { xp in
            g.withUnsafeBufferPointer { gp in
                filledFloats(x.count) {
                    gradScale = s.quantizer.backward(input: xp, scale: s.scale, gradOutput: gp, gradInput: $0)
                }
            }
        }
        if needsGradient[0] { result[0] = floatTensor(xt.shape, gx) }
        if needsGradient.count > 1 && needsGradient[1] {
            var gs = [Float](repeating: 0, count: st.count)
            gs[s.index] = gradScale
            result[1] = floatTensor(st.shape, gs)
        }
        return result
    }
}
