import BitSwitchIR

/// Removes nodes that only forward a value (Identity, inference Dropout), then dead nodes and unused constants.
/// A forwarding node that defines a graph output hands its name to the producer of its input, so the
/// graph's output names never change.
///
///     %a = Relu(%x)                                  %y = Relu(%x)
///     %y = Identity(%a)                  ==>         output %y: f32[N,8]
///     %d, %"" = Dropout(%x) {ratio = 0.25}
///     output %y: f32[N,8]
let canonicalize = Pass(
    name: "canonicalize",
    summary: "remove Identity and inference Dropout, dead nodes and unused constants"
) { g, _, context in
    var bypassed = 0
    var i = 0
    while i < g.nodes.count {
        if isForwarding(g.nodes[i], in: g), bypass(nodeAt: i, in: &g) { bypassed += 1 } else { i += 1 }
    }
    let dead = g.removeDeadCode()
    context.logger("canonicalize: removed \(bypassed) forwarding and \(dead) dead nodes")
}

/// Identity always; Dropout when it runs in inference mode and nobody reads its mask.
private func isForwarding(_ n: Node, in g: Graph) -> Bool {
    switch n.op {
    case .identity:
        return n.inputs.count == 1 && n.outputs.count == 1 && !n.inputs[0].isEmpty
    case .dropout:
        guard !n.inputs[0].isEmpty, !n.outputs[0].isEmpty else { return false }
        if n.outputs.count > 1, !n.outputs[1].isEmpty {
            let mask = n.outputs[1]
            if g.outputNames.contains(mask) || g.nodes.contains(where: { $0.inputs.contains(mask) }) { return false }
        }
        guard n.inputs.count > 2, !n.inputs[2].isEmpty else { return true }
        // training_mode must be a constant false; anything else may train.
        guard let t = g.initializers[n.inputs[2]], t.count == 1 else { return false }
        return t.ints == [0]
    default:
        return false
    }
}

/// Rewires readers of the node's output to its input and deletes it. Returns false when the node has to stay:
/// its output is a graph output and its input is a graph input, a constant or another graph output.
private func bypass(nodeAt i: Int, in g: inout Graph) -> Bool {
    let n = g.nodes[i]
    let src = n.inputs[0], dst = n.outputs[0]
    if !g.outputNames.contains(dst) {
        g.nodes.remove(at: i)
        g.replaceAllUses(of: dst, with: src)
        g.valueTypes[dst] = nil
        return true
    }
    guard let p = g.producers[src], p != i, !g.outputNames.contains(src), !g.inputNames.contains(src) else {
        return false
    }
    renameDefinition(of: src, to: dst, producer: p, removing: i, in: &g)
    return true
}

/// `%a = Relu(%x); %y = Identity(%a)` becomes `%y = Relu(%x)`, and every reader of `%a` reads `%y`.
private func renameDefinition(of src: String, to dst: String, producer p: Int, removing i: Int, in g: inout Graph) {
    for k in g.nodes[p].outputs.indices where g.nodes[p].outputs[k] == src { g.nodes[p].outputs[k] = dst }
    g.nodes.remove(at: i)
    g.replaceAllUses(of: src, with: dst)
    if g.valueTypes[dst] == nil { g.valueTypes[dst] = g.valueTypes[src] }
    g.valueTypes[src] = nil
}
