import BitSwitchIR
import BitSwitchRuntime

/// Folds the constant subgraph that computes the weight of a Conv, Gemm or MatMul (a Transpose, Reshape, Cast, Mul
/// ... of initializers, as exporters write `x @ W.T` or a reshaped kernel) into one initializer, so that
/// `insertFakeQuant` sees a constant weight and quantizes the layer. Only the nodes that feed such a weight are
/// evaluated; a folded node whose outputs are still read elsewhere keeps them as initializers. Quantizers and
/// QuantizeLinear/DequantizeLinear (a QDQ weight stays QDQ) and Dropout are never folded.
/// Returns the number of weights folded; `log` gets one line for each.
@discardableResult
public func foldConstantWeights(_ g: inout Graph, log: (String) -> Void = { _ in }) throws -> Int {
    var folded = 0
    var i = 0
    while i < g.nodes.count {
        let n = g.nodes[i]
        i += 1
        switch n.op {
        case .conv, .gemm, .matMul: break
        default: continue
        }
        guard n.inputs.count >= 2, g.initializers[n.inputs[1]] == nil else { continue }
        let producers = g.producers
        var chain = Set<Int>()
        guard isConstantValue(n.inputs[1], g, producers, &chain, depth: 0), !chain.isEmpty else { continue }
        // Evaluate the chain in graph order.
        var values: [String: Tensor] = [:]
        for j in chain.sorted() {
            let c = g.nodes[j]
            let ins = c.inputs.map { $0.isEmpty ? nil : (values[$0] ?? g.initializers[$0]) }
            let outs = try evaluateNode(c, inputs: ins, opsets: g.opsets)
            for (name, t) in zip(c.outputs, outs) where !name.isEmpty { values[name] = t }
        }
        guard let w = values[n.inputs[1]] else { continue }
        let producer = producers[n.inputs[1]].map { g.nodes[$0] }
        // Every output of the chain's nodes becomes an initializer; the nodes go, and the constants only they read.
        let chainNodes = chain.sorted().map { g.nodes[$0] }
        for j in chain.sorted(by: >) { g.nodes.remove(at: j) }
        for c in chainNodes {
            for o in c.outputs where !o.isEmpty {
                if let t = values[o] {
                    g.setInitializer(o, t)
                    g.valueTypes[o] = nil
                }
            }
        }
        let readers = g.consumers
        let outputs = g.outputNames
        for c in chainNodes {
            for v in c.inputs + c.outputs where !v.isEmpty && readers[v] == nil && !outputs.contains(v)
                && g.initializers[v] != nil {
                g.removeInitializer(v)
            }
        }
        folded += 1
        log("insert-fake-quant: folded \(chainNodes.count) constant node(s) (\(producer.map { $0.op.typeName } ?? "?") "
            + "'\(producer?.label ?? n.inputs[1])') into the weight '\(n.inputs[1])' \(w.shape) of \(n.op.typeName) "
            + "'\(n.label)'")
        i = 0  // node indices moved; rescan (folding is idempotent, so each weight folds once)
    }
    return folded
}

/// Whether `value` is computed from initializers only; collects the producing node indices in `chain`.
private func isConstantValue(_ value: String, _ g: Graph, _ producers: [String: Int], _ chain: inout Set<Int>,
                             depth: Int) -> Bool {
    if g.initializers[value] != nil { return true }
    guard depth < 32, let p = producers[value] else { return false }
    if chain.contains(p) { return true }
    let n = g.nodes[p]
    switch n.op {
    case .fakeQuantWeight, .fakeQuantAct, .switchableBatchNorm, .switchableLayerNorm, .quantizeLinear, .dequantizeLinear, .dropout:
        return false
    default: break
    }
    if case .batchNormalization(_, _, let training) = n.op, training { return false }
    for v in n.inputs where !v.isEmpty {
        guard isConstantValue(v, g, producers, &chain, depth: depth + 1) else { return false }
    }
    if n.inputs.allSatisfy(\.isEmpty) { return false }
    chain.insert(p)
    return true
}
