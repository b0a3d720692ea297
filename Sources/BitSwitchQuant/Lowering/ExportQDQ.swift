import BitSwitchIR
import BitSwitchRuntime

/// Standard QDQ ONNX for one profile of a multi-precision model, for other runtimes (onnxruntime and every tool that
/// reads QuantizeLinear / DequantizeLinear): each weight becomes DequantizeLinear of its shifted integers q_b (int8;
/// int4 when b ≤ 4, which makes the model opset 21)
/// with per-channel scales s_c · 2^Δ; each activation quantizer becomes QuantizeLinear → DequantizeLinear with
/// scale a_b and zero point 0 (uint8 after ReLU-like producers, int8 otherwise), behind a Clip to the b-bit range
/// when b < 8 (an 8-bit container would otherwise admit values a b-bit quantizer clamps); switchable BatchNorm
/// becomes the BatchNormalization of that profile. Default-domain opset ≥ 13 (per-axis DequantizeLinear).
public func exportQDQ(_ graph: Graph, assignment: BitAssignment) throws -> Graph {
    var g = try specialize(try storeQuantized(graph), assignment: assignment)
    var nodes: [Node] = []
    var used = Set(g.nodes.map(\.name))
    func nodeName(_ base: String) -> String {
        var n = base, k = 1
        while used.contains(n) { n = "\(base)_\(k)"; k += 1 }
        used.insert(n); return n
    }
    var int4 = false
    for n in g.nodes {
        switch n.op {
        case .fakeQuantWeight(let a):
            guard let w = g.initializers[n.inputs[0]], w.dtype == .i8, let s = g.initializers[n.inputs[1]] else {
                throw BitSwitchError(.pass, "the weight and its scales must be constants", node: n.label, op: n.op.typeName)
            }
            let b = a.pinnedBits ?? a.bits[0]
            let shift = a.storedBits - b
            guard case .i8(let q) = w.storage else { continue }
            let qb = q.map { Int8(shiftedWeight(Int($0), shift: shift, bits: b)) }
            let qName = g.freshName("\(n.inputs[0]).q\(b)")
            // b ≤ 4: int4 weights (opset 21 DequantizeLinear; onnxruntime ≥ 1.20 runs it), else int8.
            let wType: DType = b <= 4 ? .i4 : .i8
            if b <= 4 { int4 = true }
            g.setInitializer(qName, Tensor(dtype: wType, shape: w.shape, storage: .i8(qb)))
            let sName = g.freshName("\(n.inputs[1]).b\(b)")
            g.setInitializer(sName, Tensor(shape: [s.count], floats: s.floats.map { $0 * Float(1 << shift) }))
            let zName = g.freshName("\(n.inputs[0]).zero")
            g.setInitializer(zName, Tensor(dtype: wType, shape: [s.count], storage: .i8(.init(repeating: 0, count: s.count))))
            nodes.append(Node(name: n.name, op: .dequantizeLinear(axis: a.axis), inputs: [qName, sName, zName], outputs: n.outputs))
        case .fakeQuantAct(let a):
            guard let st = g.initializers[n.inputs[1]], let scale = st.floats.first else {
                throw BitSwitchError(.pass, "activation scale must be a constant", node: n.label, op: n.op.typeName)
            }
            let b = a.pinnedBits ?? a.bits[0]
            let (lo, hi) = a.signed ? (-(1 << (b - 1)), (1 << (b - 1)) - 1) : (0, (1 << b) - 1)
            var x = n.inputs[0]
            if b < 8 {
                let clipped = g.freshName("\(n.outputs[0]).clip")
                let l = g.freshName("\(n.outputs[0]).clip_min"), h = g.freshName("\(n.outputs[0]).clip_max")
                g.setInitializer(l, Tensor(scalar: Float(lo) * scale))
                g.setInitializer(h, Tensor(scalar: Float(hi) * scale))
                nodes.append(Node(name: nodeName("\(n.label).clip"), op: .clip(min: nil, max: nil), inputs: [x, l, h], outputs: [clipped]))
                x = clipped
            }
            let sName = g.freshName("\(n.inputs[1]).scale")
            g.setInitializer(sName, Tensor(scalar: scale))
            let zName = g.freshName("\(n.outputs[0]).zero")
            g.setInitializer(zName, a.signed ? Tensor(dtype: .i8, shape: [], storage: .i8([0]))
                                             : Tensor(dtype: .u8, shape: [], storage: .u8([0])))
            let q = g.freshName("\(n.outputs[0]).quantized")
            nodes.append(Node(name: nodeName("\(n.label).quantize"), op: .quantizeLinear(axis: 1, saturate: true, outputType: nil),
                              inputs: [x, sName, zName], outputs: [q]))
            nodes.append(Node(name: n.name, op: .dequantizeLinear(axis: 1), inputs: [q, sName, zName], outputs: n.outputs))
        default:
            nodes.append(n)
        }
    }
    g.nodes = nodes
    g.opsets[Op.bitswitchDomain] = nil
    g.opsets[""] = max(g.opset, int4 ? 21 : 13)
    g.removeDeadCode()
    try verify(g)
    return g
}
