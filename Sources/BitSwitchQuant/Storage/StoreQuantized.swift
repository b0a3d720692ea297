import BitSwitchIR

/// The stored model (METHOD.md §1): every FakeQuantWeight's float weight initializer is replaced, under the same
/// name, by the int8 integers q_h computed from it and its scales s_c (which stay float32). No float copy of a
/// quantized weight remains. The kernels compute the same Ŵ_b from q_h as from the float W, bit for bit, so the
/// stored model gives the trained model's outputs at every bit-width. Per-bit activation scales and switchable
/// BN parameters stay float initializers. Weights already int8 are left alone (storing twice is a no-op).
public func storeQuantized(_ g: Graph) throws -> Graph {
    var out = g
    let consumers = g.consumers
    // weight name -> (node label, scales name, stored bits, axis) of the first quantizer that reads it
    var planned: [String: (node: String, scales: String, storedBits: Int, axis: Int)] = [:]
    for n in g.nodes {
        guard case .fakeQuantWeight(let a) = n.op else { continue }
        let wName = n.inputs[0], sName = n.inputs[1]
        guard let w = g.initializers[wName] else {
            throw BitSwitchError(.pass, "weight '\(wName)' is not a constant, so there is nothing to store",
                                 node: n.label, op: n.op.typeName, domain: n.op.domain)
        }
        if w.dtype == .i8 { continue }
        guard w.dtype == .f32 else {
            throw BitSwitchError(.pass, "weight '\(wName)' is \(w.dtype); FakeQuantWeight stores float32 weights",
                                 node: n.label, op: n.op.typeName, domain: n.op.domain)
        }
        guard (2...8).contains(a.storedBits) else {
            throw BitSwitchError(.pass, "stored_bits \(a.storedBits) does not fit int8 storage",
                                 node: n.label, op: n.op.typeName, domain: n.op.domain)
        }
        if let p = planned[wName] {
            guard p.scales == sName, p.storedBits == a.storedBits, p.axis == a.axis else {
                throw BitSwitchError(.pass, "weight '\(wName)' is quantized by '\(p.node)' and here with different "
                    + "scales or stored bits; one int8 tensor cannot serve both", node: n.label, op: n.op.typeName,
                    domain: n.op.domain)
            }
            continue
        }
        for j in consumers[wName] ?? [] {
            let reader = g.nodes[j]
            if case .fakeQuantWeight = reader.op, reader.inputs[0] == wName { continue }
            throw BitSwitchError(.pass, "weight '\(wName)' is also read as float by this node, so it cannot become int8",
                                 node: reader.label, op: reader.op.typeName, domain: reader.op.domain)
        }
        if g.outputNames.contains(wName) {
            throw BitSwitchError(.pass, "weight '\(wName)' is a graph output, so it cannot become int8",
                                 node: n.label, op: n.op.typeName, domain: n.op.domain)
        }
        planned[wName] = (n.label, sName, a.storedBits, a.axis)

        guard let st = g.initializers[sName], st.dtype == .f32 else {
            throw BitSwitchError(.pass, "scale '\(sName)' must be a float32 constant",
                                 node: n.label, op: n.op.typeName, domain: n.op.domain)
        }
        let scales = st.floats
        let layout: ChannelLayout
        do { layout = try ChannelLayout(shape: w.shape, axis: a.axis, channels: scales.count) }
        catch { throw error.bitswitchLocated(node: n.label, op: n.op.typeName) }
        let qh = WeightQuantizer.stored(weight: layout.toChannelMajor(w.floats), scales: scales, storedBits: a.storedBits)
        let q = layout.isChannelMajor ? qh : layout.fromChannelMajor(qh)
        out.setInitializer(wName, Tensor(dtype: .i8, shape: w.shape, storage: .i8(q)))
        for k in out.inputs.indices where out.inputs[k].name == wName {
            out.inputs[k].type = TensorType(.i8, w.shape.map { .known($0) })
        }
    }
    return out
}

extension ChannelLayout {
    /// Channel-major int8 back to the weight's layout.
    func fromChannelMajor(_ a: [Int8]) -> [Int8] {
        [Int8](unsafeUninitializedCapacity: a.count) { buf, n in
            a.withUnsafeBufferPointer { fromChannelMajor($0, buf) }
            n = a.count
        }
    }
}
