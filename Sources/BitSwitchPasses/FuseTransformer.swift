import BitSwitchIR

/// Turns the decomposed LayerNorm that exporters write (PyTorch's, and hand-written models') into one
/// LayerNormalization over the last axis:
///
///     %mu = ReduceMean(%x) {axes = [-1]}        %v = ReduceMean(%p) {axes = [-1]}
///     %d = Sub(%x, %mu)   %p = Pow(%d, 2.0)      %e = Add(%v, eps)   %s = Sqrt(%e)
///     %n = Div(%d, %s)    %m = Mul(%n, %gamma)   %y = Add(%m, %beta)
///         ==>   %y = LayerNormalization(%x, %gamma, %beta) {axis = -1, epsilon = eps}
///
/// Every intermediate must have no other reader; gamma, beta and eps must be constants. LayerNormalization exists
/// from opset 17, so an older graph is left alone (and the log says so).
let fuseLayerNorm = Pass(
    name: "fuse-layernorm",
    summary: "fuse decomposed LayerNorm (ReduceMean, Sub, Pow, Sqrt, Div, Mul, Add) into LayerNormalization"
) { g, _, context in
    guard g.opset >= 17 else {
        context.logger("fuse-layernorm: opset \(g.opset) has no LayerNormalization (needs 17); nothing fused")
        return
    }
    var fused = 0
    while let m = findLayerNorm(g) { apply(m, to: &g); fused += 1 }
    context.logger("fuse-layernorm: fused \(fused) LayerNorm patterns")
}

/// Turns 0.5 · x · (1 + erf(x / √2)) (either product order; x · 0.7071… also accepted) into one Gelu.
/// Gelu exists from opset 20, so an older graph is left alone.
let fuseGelu = Pass(
    name: "fuse-gelu",
    summary: "fuse the erf form of GELU (Div/Mul, Erf, Add, Mul, Mul) into Gelu"
) { g, _, context in
    guard g.opset >= 20 else {
        context.logger("fuse-gelu: opset \(g.opset) has no Gelu (needs 20); nothing fused")
        return
    }
    var fused = 0
    while let m = findGelu(g) { apply(m, to: &g); fused += 1 }
    context.logger("fuse-gelu: fused \(fused) GELU patterns")
}

let transformerPasses = [fuseLayerNorm, fuseGelu]

// MARK: matching

/// Nodes to delete, and the node that replaces the last of them (it takes the last one's output).
private struct Match {
    var remove: [Int]
    var replacement: Node
}

private func apply(_ m: Match, to g: inout Graph) {
    let last = m.remove.max() ?? 0
    var inputsBefore = Set<String>()
    for i in m.remove { inputsBefore.formUnion(g.nodes[i].inputs) }
    g.nodes[last] = m.replacement
    for i in m.remove.filter({ $0 != last }).sorted(by: >) { g.nodes.remove(at: i) }
    for v in inputsBefore where g.initializers[v] != nil && g.consumers[v] == nil && !g.outputNames.contains(v) {
        g.removeInitializer(v)
    }
}

private struct View {
    let g: Graph
    let producers: [String: Int]
    let consumers: [String: [Int]]
    init(_ g: Graph) { self.g = g; producers = g.producers; consumers = g.consumers }

    /// The producer of `v` when `v` has exactly one reader and is not a graph output.
    func soleProducer(_ v: String) -> Int? {
        guard let p = producers[v], consumers[v]?.count == 1, !g.outputNames.contains(v) else { return nil }
        return p
    }
    func node(_ i: Int) -> Node { g.nodes[i] }
    func scalar(_ v: String) -> Float? {
        guard let t = g.initializers[v], t.count == 1, t.dtype.isFloat else { return nil }
        return t.floats[0]
    }
    func isConstant(_ v: String) -> Bool { g.initializers[v] != nil }
    /// ReduceMean over exactly the last axis, keepdims.
    func reducesLastAxis(_ n: Node) -> Bool {
        guard case .reduceMean(let attrAxes, true, false) = n.op else { return false }
        var axes = attrAxes
        if axes == nil, n.inputs.count > 1, let t = g.initializers[n.inputs[1]] { axes = t.ints }
        guard let axes, axes.count == 1 else { return false }
        if axes[0] == -1 { return true }
        if let r = g.type(of: n.inputs[0])?.rank { return axes[0] == r - 1 }
        return false
    }
    /// (other operand, constant) when `n` has one constant operand.
    func constantOperand(_ n: Node) -> (other: String, constant: String)? {
        guard n.inputs.count == 2 else { return nil }
        if isConstant(n.inputs[1]), !isConstant(n.inputs[0]) { return (n.inputs[0], n.inputs[1]) }
        if isConstant(n.inputs[0]), !isConstant(n.inputs[1]) { return (n.inputs[1], n.inputs[0]) }
        return nil
    }
}

private func findLayerNorm(_ g: Graph) -> Match? {
    let v = View(g)
    for (iAdd, add) in g.nodes.enumerated() {
        guard case .add = add.op, let (mOut, beta) = v.constantOperand(add),
              let iMul = v.soleProducer(mOut), case .mul = v.node(iMul).op,
              let (nOut, gamma) = v.constantOperand(v.node(iMul)),
              let iDiv = v.soleProducer(nOut), case .div = v.node(iDiv).op else { continue }
        let d = v.node(iDiv).inputs[0], s = v.node(iDiv).inputs[1]
        guard let iSqrt = v.soleProducer(s), case .sqrt = v.node(iSqrt).op,
              let iEps = v.soleProducer(v.node(iSqrt).inputs[0]), case .add = v.node(iEps).op,
              let (varOut, epsName) = v.constantOperand(v.node(iEps)), let eps = v.scalar(epsName),
              let iVar = v.soleProducer(varOut), v.reducesLastAxis(v.node(iVar)),
              let iPow = v.soleProducer(v.node(iVar).inputs[0]), case .pow = v.node(iPow).op,
              v.node(iPow).inputs[0] == d, v.scalar(v.node(iPow).inputs[1]) == 2,
              let iSub = v.producers[d], case .sub = v.node(iSub).op, !g.outputNames.contains(d),
              Set(v.consumers[d] ?? []) == Set([iPow, iDiv]) else { continue }
        let x = v.node(iSub).inputs[0], mu = v.node(iSub).inputs[1]
        guard let iMean = v.soleProducer(mu), v.reducesLastAxis(v.node(iMean)), v.node(iMean).inputs[0] == x,
              let gt = g.initializers[gamma], let bt = g.initializers[beta], gt.rank <= 1, bt.rank <= 1 else { continue }
        if let last = g.type(of: x)?.shape?.last?.value,
           !(gt.count == last || gt.count == 1) || !(bt.count == last || bt.count == 1) { continue }
        let name = add.name.isEmpty ? g.nodes[iMean].name : add.name
        let node = Node(name: name, op: .layerNormalization(axis: -1, epsilon: eps), inputs: [x, gamma, beta],
                        outputs: [add.outputs[0]])
        return Match(remove: [iMean, iSub, iPow, iVar, iEps, iSqrt, iDiv, iMul, iAdd], replacement: node)
    }
    return nil
}

private func findGelu(_ g: Graph) -> Match? {
    let v = View(g)
    func close(_ a: Float?, _ b: Float) -> Bool { a.map { abs($0 - b) <= 1e-6 * max(1, abs(b)) } ?? false }
    for (iOut, outer) in g.nodes.enumerated() {
        guard case .mul = outer.op, outer.inputs.count == 2 else { continue }
        // Either Mul(Mul(x, 1 + erf), 0.5) or Mul(Mul(x, 0.5), 1 + erf), operands in any order.
        for (k, inner) in outer.inputs.enumerated() {
            let other = outer.inputs[1 - k]
            guard let iIn = v.soleProducer(inner), case .mul = v.node(iIn).op else { continue }
            let innerNode = v.node(iIn)
            var x: String?, onePlus: String?
            if close(v.scalar(other), 0.5) {
                // inner = x · (1 + erf)
                for j in 0..<2 where v.soleProducer(innerNode.inputs[j]).map({ if case .add = v.node($0).op { true } else { false } }) == true {
                    x = innerNode.inputs[1 - j]; onePlus = innerNode.inputs[j]
                }
            } else if let (xx, c) = v.constantOperand(innerNode), close(v.scalar(c), 0.5) {
                x = xx; onePlus = other
            }
            guard let x, let onePlus, let iOne = v.soleProducer(onePlus), case .add = v.node(iOne).op,
                  let (erfOut, one) = v.constantOperand(v.node(iOne)), close(v.scalar(one), 1),
                  let iErf = v.soleProducer(erfOut), case .erf = v.node(iErf).op,
                  let iScale = v.soleProducer(v.node(iErf).inputs[0]) else { continue }
            let scale = v.node(iScale)
            guard scale.inputs.count == 2, scale.inputs[0] == x else { continue }
            switch scale.op {
            case .div: guard close(v.scalar(scale.inputs[1]), 2.0.squareRoot().asFloat) else { continue }
            case .mul: guard close(v.scalar(scale.inputs[1]), 0.5.squareRoot().asFloat) else { continue }
            default: continue
            }
            let node = Node(name: outer.name, op: .gelu(tanh: false), inputs: [x], outputs: [outer.outputs[0]])
            return Match(remove: [iScale, iErf, iOne, iIn, iOut], replacement: node)
        }
    }
    return nil
}

extension Double {
    fileprivate var asFloat: Float { Float(self) }
}
