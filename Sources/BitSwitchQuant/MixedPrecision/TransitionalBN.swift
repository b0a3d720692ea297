import BitSwitchIR
import BitSwitchRuntime

// Transitional BN (METHOD.md §3/§5, an option of mixed precision): the BN after a switchable layer keeps one row per
// (previous layer's bits, own bits) pair instead of one per own bits, because the previous layer's bit-width changes
// the distribution that reaches this layer. docs/mixed-precision.md describes the rule for "previous".

/// One BN given transitional rows.
public struct TransitionalBatchNorm: Sendable, Equatable {
    /// The SwitchableBatchNorm node.
    public var node: String
    /// The switchable layer it normalises.
    public var layer: String
    /// The previous quantized layer (whose weight bits pick the row's first index).
    public var previousLayer: String
}

/// The previous quantized layer of every quantized layer that has one: the nearest quantized layer upstream of the
/// layer's data input along the data path (walking back through every op that is not a quantized layer, initializers
/// excluded). Where several are nearest — branches that meet at an Add or Concat — the one latest in graph
/// (topological) order: for a residual block's output that is the block's last conv (or its downsample conv, if that
/// comes later), not the earlier layer an identity shortcut leads back to. Layers fed only by graph inputs have none.
public func previousQuantizedLayers(_ g: Graph) -> [String: String] {
    let layers = quantizedLayers(g)
    let byIndex = Dictionary(layers.map { ($0.nodeIndex, $0) }, uniquingKeysWith: { a, _ in a })
    let producers = g.producers
    var out: [String: String] = [:]
    for l in layers {
        let node = g.nodes[l.nodeIndex]
        var frontier = [node.inputs[0]], seen = Set(frontier)
        var best: QuantizedLayer?
        while let v = frontier.popLast() {
            guard let p = producers[v] else { continue }
            if let q = byIndex[p] {
                if best.map({ q.nodeIndex > $0.nodeIndex }) ?? true { best = q }
                continue
            }
            for i in g.nodes[p].inputs where !i.isEmpty && g.initializers[i] == nil && !seen.contains(i) {
                seen.insert(i)
                frontier.append(i)
            }
        }
        if let best { out[l.name] = best.name }
    }
    return out
}

/// Gives every SwitchableBatchNorm after a switchable layer whose previous quantized layer also switches one row per
/// (previous bits, own bits) pair: its four [|B|, C] parameters become [|B|², C], row `p·|B| + i` starting as the old
/// row `i` (the own-bits row), so the model computes exactly what it computed before at every profile until the
/// pairs are trained apart, and `previous` names the previous layer's FakeQuantWeight. BNs after pinned layers, after
/// a pinned previous layer (its bits never change) or with no previous layer keep one row per bit-width; BNs that
/// are transitional already are left as they are. Returns the graph and the BNs changed, in graph order.
public func makeTransitionalBatchNorms(_ g: Graph) throws -> (Graph, [TransitionalBatchNorm]) {
    let layers = quantizedLayers(g)
    guard layers.contains(where: \.isSwitchable) else {
        throw BitSwitchError(.invalidModel, "transitional BN needs a multi-precision model with switchable layers (train --bits 8,6,4,2 first)")
    }
    let byName = Dictionary(layers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    let previous = previousQuantizedLayers(g)
    let nodeIndex = Dictionary(g.nodes.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })
    var out = g
    var changed: [TransitionalBatchNorm] = []
    var expanded = Set<String>()
    for l in layers where l.isSwitchable {
        guard let pName = previous[l.name], let p = byName[pName], p.isSwitchable else { continue }
        for bn in l.batchNorms {
            guard let k = nodeIndex[bn], case .switchableBatchNorm(let bits, let eps, let momentum, .none) = g.nodes[k].op
            else { continue }
            let n = g.nodes[k]
            guard bits.count > 1 else { continue }
            guard p.bits == bits else {
                throw BitSwitchError(.invalidModel, "transitional BN: the previous layer '\(p.name)' trains bits \(p.bits), this BN \(bits)",
                                     node: n.label, op: n.op.typeName, domain: n.op.domain)
            }
            for i in 1...4 {
                let name = n.inputs[i]
                guard let t = g.initializers[name], t.rank == 2, t.shape[0] == bits.count, t.dtype == .f32 else {
                    throw BitSwitchError(.invalidModel, "transitional BN: parameter '\(name)' must be a float constant [\(bits.count), C]",
                                         node: n.label, op: n.op.typeName, domain: n.op.domain)
                }
                guard !expanded.contains(name) else {
                    throw BitSwitchError(.invalidModel, "transitional BN: parameter '\(name)' is shared by two BatchNorms",
                                         node: n.label, op: n.op.typeName, domain: n.op.domain)
                }
                expanded.insert(name)
                let rows = t.floats
                var all: [Float] = []
                all.reserveCapacity(rows.count * bits.count)
                for _ in bits { all += rows }  // row p·|B| + i = own-bits row i, for every previous p
                out.setInitializer(name, Tensor(shape: [bits.count * bits.count, t.shape[1]], floats: all))
                for j in out.inputs.indices where out.inputs[j].name == name {
                    out.inputs[j].type = TensorType(.f32, [.known(bits.count * bits.count), .known(t.shape[1])])
                }
            }
            out.nodes[k].op = .switchableBatchNorm(bits: bits, epsilon: eps, momentum: momentum, previous: p.weightQuant)
            changed.append(TransitionalBatchNorm(node: n.name, layer: l.name, previousLayer: p.name))
        }
    }
    return (out, changed)
}
