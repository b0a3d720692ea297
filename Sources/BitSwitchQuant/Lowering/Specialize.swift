import BitSwitchIR

/// Specialises a multi-precision fake-quant graph to one bit assignment (the `fold-scales` pass): every
/// FakeQuantWeight and FakeQuantAct keeps only the bit-width (and scale row) the assignment gives it, and every
/// SwitchableBatchNorm becomes a plain BatchNormalization with that bit-width's row. The result computes, at its
/// default bit-widths, exactly what the input computes at `assignment` — one profile, ready for `lower-int`.
public func specialize(_ g: Graph, assignment: BitAssignment) throws -> Graph {
    var out = g
    func row(_ n: Node, _ bits: [Int]) throws -> (bits: Int, index: Int) {
        let b = assignment.bits(for: n.name) ?? bits.max() ?? 8
        guard let i = bits.firstIndex(of: b) else {
            throw BitSwitchError(.pass, "bit-width \(b) is not one of the trained bit-widths \(bits)",
                                 node: n.label, op: n.op.typeName, domain: n.op.domain)
        }
        return (b, i)
    }
    for (k, n) in g.nodes.enumerated() {
        switch n.op {
        case .fakeQuantWeight(var a):
            let b = try a.pinnedBits ?? row(n, a.bits).bits
            a.bits = [b]; a.pinnedBits = b
            out.nodes[k].op = .fakeQuantWeight(a)
        case .fakeQuantAct(var a):
            let r = try row(n, a.bits)
            guard let st = g.initializers[n.inputs[1]], st.count == a.bits.count else {
                throw BitSwitchError(.pass, "activation scales must be a constant with one value per bit-width",
                                     node: n.label, op: n.op.typeName, domain: n.op.domain)
            }
            let name = out.freshName("\(n.inputs[1]).b\(r.bits)")
            out.setInitializer(name, Tensor(shape: [1], floats: [st.floats[r.index]]))
            a.pinnedBits = a.pinnedBits ?? r.bits
            a.bits = [r.bits]
            out.nodes[k].op = .fakeQuantAct(a)
            out.nodes[k].inputs[1] = name
        case .switchableBatchNorm(let bits, let eps, let momentum, let previous):
            let r: (bits: Int, previous: Int?, row: Int)
            do { r = try assignment.batchNormRow(node: n.name, bits: bits, previous: previous) } catch let e as BitSwitchError {
                throw BitSwitchError(.pass, e.message, node: n.label, op: n.op.typeName, domain: n.op.domain)
            }
            let rows = Op.switchableBatchNormRows(bits: bits, previous: previous)
            for p in 1...4 {
                guard let t = g.initializers[n.inputs[p]], t.rank == 2, t.shape[0] == rows else {
                    throw BitSwitchError(.pass, "switchable BatchNorm parameters must be constants [\(rows), C]",
                                         node: n.label, op: n.op.typeName, domain: n.op.domain)
                }
                let c = t.shape[1]
                let name = out.freshName("\(n.inputs[p])." + (r.previous.map { "p\($0)" } ?? "") + "b\(r.bits)")
                out.setInitializer(name, Tensor(shape: [c], floats: Array(t.floats[(r.row * c)..<((r.row + 1) * c)])))
                out.nodes[k].inputs[p] = name
            }
            out.nodes[k].op = .batchNormalization(epsilon: eps, momentum: momentum, trainingMode: false)
        case .switchableLayerNorm(let bits, let axis, let eps):
            let r = try row(n, bits)
            for p in 1...2 {
                guard let t = g.initializers[n.inputs[p]], t.rank == 2, t.shape[0] == bits.count else {
                    throw BitSwitchError(.pass, "switchable LayerNorm parameters must be constants [bits, D]",
                                         node: n.label, op: n.op.typeName, domain: n.op.domain)
                }
                let d = t.shape[1]
                let name = out.freshName("\(n.inputs[p]).b\(r.bits)")
                out.setInitializer(name, Tensor(shape: [d], floats: Array(t.floats[(r.index * d)..<((r.index + 1) * d)])))
                out.nodes[k].inputs[p] = name
            }
            out.nodes[k].op = .layerNormalization(axis: axis, epsilon: eps)
        default: continue
        }
    }
    out.removeDeadCode()
    return out
}
