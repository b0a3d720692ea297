import BitSwitchIR
import BitSwitchRuntime

/// ai.bitswitch::FakeQuantWeight(W, s) — the Double Rounding weight quantizer (METHOD.md §1, docs/quant-ops.md).
///
/// Bit-width b = pinned_bits ?? activeBits ?? max(bits). W is either float (training: the master weights) or the
/// int8 q_h of a stored model; both give the same Ŵ_b bit for bit, because the float path's first rounding is
/// exactly what `WeightQuantizer.stored` wrote. A stored model has no float weights to update, so training it is an
/// error rather than a silent no-op.
struct FakeQuantWeightKernel: TrainableOpKernel {
    func parameterRoles(node: Node) -> [Int: ParameterRole] { [0: .weight, 1: .quantScale] }

    static func attributes(_ node: Node) throws -> FakeQuantWeightAttrs {
        guard case .fakeQuantWeight(let a) = node.op else {
            throw BitSwitchError(.internalError, "FakeQuantWeight kernel on \(node.op.typeName)")
        }
        return a
    }

    /// The bit-width this node quantizes to and its quantizer.
    static func quantizer(_ a: FakeQuantWeightAttrs, activeBits: Int?) throws -> WeightQuantizer {
        let b: Int
        if let pinned = a.pinnedBits {
            b = pinned
        } else {
            b = try activeProfile(bits: a.bits, activeBits: activeBits).bits
        }
        return try WeightQuantizer(storedBits: a.storedBits, bits: b, gradientForm: a.exactGradient ? .exact : .reference)
    }

    func forward(node: Node, inputs: [Tensor?], context: TrainingContext) throws -> (outputs: [Tensor], saved: Any?) {
        let a = try Self.attributes(node)
        let q = try Self.quantizer(a, activeBits: context.assignment.bits(for: node.name))
        let w = try requiredInput(inputs, 0, "W")
        let scales = try requiredInput(inputs, 1, "s").quantFloats("FakeQuantWeight scale s")
        let layout = try ChannelLayout(shape: w.shape, axis: a.axis, channels: scales.count)
        let out: [Float]
        switch w.storage {
        case .f32(let wf) where w.dtype == .f32:
            let cm = layout.toChannelMajor(wf)
            let y = cm.withUnsafeBufferPointer { wp in
                scales.withUnsafeBufferPointer { sp in
                    filledFloats(cm.count) { q.forward(weight: wp, scales: sp, output: $0) }
                }
            }
            out = layout.fromChannelMajor(y)
        case .i8(let wi) where w.dtype == .i8:
            if context.training {
                throw BitSwitchError(.training, "this model stores its weights as int8 (a stored model) and cannot be "
                    + "trained further: training updates float weights. Train from the float model after insert-fake-quant, "
                    + "then store it again")
            }
            out = layout.fromChannelMajor(Self.dequantizeStored(layout.toChannelMajor(wi), scales: scales, q))
        default:
            throw BitSwitchError(.type, "FakeQuantWeight W must be float32 (training) or int8 (stored), got \(w.dtype)")
        }
        return ([floatTensor(w.shape, out)], nil)
    }

    /// Ŵ_b = clamp(rshr(q_h, Δ)) · s_c · 2^Δ from channel-major stored integers, with the float path's arithmetic.
    static func dequantizeStored(_ qh: [Int8], scales: [Float], _ q: WeightQuantizer) -> [Float] {
        let perChannel = qh.count / max(scales.count, 1)
        let shift = Int32(q.shift), half: Int32 = q.shift > 0 ? 1 << (q.shift - 1) : 0
        let pow2 = Float(1 << q.shift)
        let qn = q.qn, qp = q.qp
        return qh.withUnsafeBufferPointer { src in
            filledFloats(qh.count) { out in
                for c in 0..<scales.count {
                    let step = scales[c] * pow2
                    for i in (c * perChannel)..<((c + 1) * perChannel) {
                        out[i] = Float(clamp(shiftRound(Int32(src[i]), half: half, shift: shift), qn, qp)) * step
                    }
                }
            }
        }
    }

    func backward(node: Node, inputs: [Tensor?], outputs: [Tensor], saved: Any?, gradOutputs: [Tensor?],
                  needsGradient: [Bool], context: TrainingContext) throws -> [Tensor?] {
        var result = [Tensor?](repeating: nil, count: inputs.count)
        guard let gt = gradOutputs[0], needsGradient.contains(true) else { return result }
        let a = try Self.attributes(node)
        let q = try Self.quantizer(a, activeBits: context.assignment.bits(for: node.name))
        let wt = try requiredInput(inputs, 0, "W")
        let st = try requiredInput(inputs, 1, "s")
        let w = try wt.quantFloats("FakeQuantWeight W (training)")
        let scales = try st.quantFloats("FakeQuantWeight scale s")
        let layout = try ChannelLayout(shape: wt.shape, axis: a.axis, channels: scales.count)
        let wcm = layout.toChannelMajor(w)
        let gcm = layout.toChannelMajor(try gt.quantFloats("gradient"))
        var gs = [Float](repeating: 0, count: scales.count)
        let gw = wcm.withUnsafeBufferPointer { wp in
            scales.withUnsafeBufferPointer { sp in
                gcm.withUnsafeBufferPointer { gp in
                    gs.withUnsafeMutableBufferPointer { gsp in
                        filledFloats(wcm.count) {
                            q.backward(weight: wp, scales: sp, gradOutput: gp, gradWeight: $0, gradScales: gsp)
                        }
                    }
                }
            }
        }
        if needsGradient[0] { result[0] = floatTensor(wt.shape, layout.fromChannelMajor(gw)) }
        if needsGradient.count > 1 && needsGradient[1] { result[1] = floatTensor(st.shape, gs) }
        return result
    }
}
