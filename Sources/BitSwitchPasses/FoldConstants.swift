import BitSwitchIR
import BitSwitchRuntime

/// Replaces nodes whose inputs are all constants by the constants they compute (evaluated by the float
/// executor's `evaluateNode`), and a Shape node by its value when its input's static shape is fully known.
/// Shape inference runs between rounds, so Shape → Gather → Concat → Reshape chains fold to one constant shape.
/// Quantizers are never folded: they are what training and lowering work on.
///
///     input %x: f32[2,3,4]                                   input %x: f32[2,3,4]
///     const %i: i64[] = [0]                                  const %t: i64[2] = [2, -1]
///     const %m: i64[1] = [-1]                                %r = Reshape(%x, %t)
///     %s = Shape(%x)
///     %b = Gather(%s, %i) {axis = 0}               ==>
///     %u = Unsqueeze(%b, %zero)
///     %t = Concat(%u, %m) {axis = 0}
///     %r = Reshape(%x, %t)
let foldConstants = Pass(
    name: "fold-constants",
    summary: "evaluate nodes with constant inputs and Shape of statically shaped values",
    options: [
        PassOption("max-elements", .int, default: "1048576",
                   "largest tensor (in elements) a folded node may produce; bigger results stay computed"),
        PassOption("infer-shapes", .bool, default: "true",
                   "run shape inference before and between rounds, so Shape of intermediate values can fold"),
        PassOption("fold-qdq", .bool, default: "false",
                   "also fold QuantizeLinear/DequantizeLinear of constants (turns QDQ weights into float)"),
    ]
) { g, options, context in
    let limit = try options.int("max-elements")
    let shapes = try options.bool("infer-shapes")
    let foldQDQ = try options.bool("fold-qdq")
    var total = 0
    if shapes { try inferShapes(&g) }
    while true {
        let folded = try foldRound(&g, limit: limit, foldQDQ: foldQDQ)
        total += folded
        if folded == 0 { break }
        if shapes { try inferShapes(&g) }
    }
    context.logger("fold-constants: folded \(total) nodes")
}

/// One sweep in node order; later nodes see constants made earlier in the same sweep.
private func foldRound(_ g: inout Graph, limit: Int, foldQDQ: Bool) throws -> Int {
    var folded = 0
    var i = 0
    while i < g.nodes.count {
        let n = g.nodes[i]
        if let values = try foldedShape(n, in: g) ?? evaluateIfConstant(n, in: g, limit: limit, foldQDQ: foldQDQ) {
            replace(nodeAt: i, by: values, in: &g)
            folded += 1
        } else {
            i += 1
        }
    }
    return folded
}

private func isFoldable(_ op: Op, foldQDQ: Bool) -> Bool {
    switch op {
    case .fakeQuantWeight, .fakeQuantAct, .switchableBatchNorm, .switchableLayerNorm: return false
    case .batchNormalization(_, _, let training): return !training
    case .quantizeLinear, .dequantizeLinear: return foldQDQ
    default: return true
    }
}

private func evaluateIfConstant(_ n: Node, in g: Graph, limit: Int, foldQDQ: Bool) throws -> [Tensor]? {
    guard isFoldable(n.op, foldQDQ: foldQDQ), n.inputs.contains(where: { !$0.isEmpty }),
          n.inputs.allSatisfy({ $0.isEmpty || g.initializers[$0] != nil }) else { return nil }
    // Skip before computing when the inferred size already says the result is too big.
    for o in n.outputs where !o.isEmpty {
        if let s = g.valueTypes[o]?.knownShape, (checkedElementCount(s) ?? Int.max) > limit { return nil }
    }
    let outs = try evaluateNode(n, inputs: n.inputs.map { $0.isEmpty ? nil : g.initializers[$0] }, opsets: g.opsets)
    guard zip(n.outputs, outs).allSatisfy({ $0.0.isEmpty || $0.1.count <= limit }) else { return nil }
    return outs
}

/// `Shape(x)` where x's static shape is fully known.
private func foldedShape(_ n: Node, in g: Graph) throws -> [Tensor]? {
    guard case .shape(let start, let end) = n.op, let s = g.type(of: n.inputs[0])?.knownShape else { return nil }
    let r = s.count
    func clamp(_ v: Int) -> Int { min(max(v < 0 ? v + r : v, 0), r) }
    let lo = clamp(start), hi = clamp(end ?? r)
    let dims = lo < hi ? s[lo..<hi].map { Int64($0) } : []
    return [Tensor(shape: [dims.count], int64s: dims)]
}

private func replace(nodeAt i: Int, by values: [Tensor], in g: inout Graph) {
    let n = g.nodes.remove(at: i)
    for (name, t) in zip(n.outputs, values) where !name.isEmpty {
        g.setInitializer(name, t)
        g.valueTypes[name] = nil
    }
    let readers = g.consumers
    for v in Set(n.inputs) where !v.isEmpty && readers[v] == nil && !g.outputNames.contains(v) {
        g.removeInitializer(v)
    }
}
