import Foundation
import BitSwitchIR
import BitSwitchRuntime

/// The ILP's objective (METHOD.md §5).
public enum SearchObjective: String, Sendable, CaseIterable {
    /// Minimise Σ t_l · ‖Q_b(W_l) − W_l‖² with the trained shared scales (HAWQ form; the default).
    case hawq
    /// Maximise Σ t_l · b_l (the paper's form).
    case paper
}

/// Measured latency per layer and bit-width, µs: `{"layers": {"<layer>": {"8": 12.5, "4": 7.1}}}` (the `layers`
/// wrapper is optional).
public struct LatencyTable: Sendable {
    public var micros: [String: [Int: Double]]
    public init(micros: [String: [Int: Double]]) { self.micros = micros }

    public static func load(path: String) throws -> LatencyTable {
        guard let d = FileManager.default.contents(atPath: path) else {
            throw BitSwitchError(.io, "cannot read the latency table", file: path)
        }
        let any: Any
        do { any = try JSONSerialization.jsonObject(with: d) } catch {
            throw BitSwitchError(.parse, "latency table: not valid JSON (\(error.localizedDescription))", file: path)
        }
        guard var top = any as? [String: Any] else {
            throw BitSwitchError(.parse, "latency table: expected {\"layers\": {\"<layer>\": {\"<bits>\": µs}}}", file: path)
        }
        if let inner = top["layers"] as? [String: Any] { top = inner }
        var m: [String: [Int: Double]] = [:]
        for (layer, row) in top {
            guard let r = row as? [String: Any] else {
                throw BitSwitchError(.parse, "latency table: layer '\(layer)' must map bit-widths to µs", file: path, node: layer)
            }
            for (k, v) in r {
                guard let b = Int(k), let us = (v as? NSNumber)?.doubleValue, us.isFinite, us >= 0 else {
                    throw BitSwitchError(.parse, "latency table: layer '\(layer)': '\(k)': \(v) is not bits → µs", file: path, node: layer)
                }
                m[layer, default: [:]][b] = us
            }
        }
        return LatencyTable(micros: m)
    }
}

public enum MixedPrecisionSearch {
    /// Per-sample multiply-accumulates of a Conv/Gemm/MatMul (shapes must be inferred; symbolic dims count 1).
    static func macs(_ g: Graph, _ n: Node) -> Int? {
        func dims(_ v: String) -> [Int]? { guard let s = g.type(of: v)?.shape else { return nil }; return s.map { $0.value ?? 1 } }
        guard let y = n.outputs.first.flatMap(dims) else { return nil }
        switch n.op {
        case .conv:
            guard n.inputs.count > 1, let w = dims(n.inputs[1]), w.count >= 2 else { return nil }
            return y.reduce(1, *) * w.dropFirst().reduce(1, *)
        case .gemm(let a):
            guard let x = dims(n.inputs[0]), x.count == 2 else { return nil }
            return y.reduce(1, *) * (a.transA ? x[0] : x[1])
        case .matMul:
            guard let x = dims(n.inputs[0]), let k = x.last else { return nil }
            return y.reduce(1, *) * k
        default: return nil
        }
    }

    /// ‖Q_b(W) − W‖² for each trained b of a quantized layer, through its FakeQuantWeight kernel (trained scales).
    /// `g` must hold float weights: for a stored model pass `unstoreQuantized(g)` (W = q_h·s_c), since the int8
    /// integers q_h are not in the units of Q_b(W).
    static func quantizationError(_ g: Graph, _ l: QuantizedLayer) throws -> [Int: Double] {
        guard let q = g.nodes.first(where: { $0.name == l.weightQuant }) else {
            throw BitSwitchError(.invalidModel, "no weight quantizer '\(l.weightQuant)'", node: l.name)
        }
        let ins: [Tensor?] = q.inputs.map { $0.isEmpty ? nil : g.initializers[$0] }
        guard let w = ins.first ?? nil else {
            throw BitSwitchError(.invalidModel, "the weight of '\(l.name)' is not an initializer", node: l.name)
        }
        let wf = w.floats
        var out: [Int: Double] = [:]
        for b in l.bits {
            let y = try evaluateNode(q, inputs: ins, opsets: g.opsets, activeBits: b)[0].floats
            var s = 0.0
            for i in 0..<min(y.count, wf.count) { let d = Double(y[i]) - Double(wf[i]); s += d * d }
            out[b] = s
        }
        return out
    }

    /// The ILP instance for a fake-quant graph: one entry per switchable layer (bit-widths lowest first), pinned
    /// layers as fixed resource use, ties between layers that read one quantized activation.
    public static func problem(graph g: Graph, traces: HessianTraces, objective: SearchObjective,
                               latency: LatencyTable? = nil, tracesFile: String? = nil) throws -> BitProblem {
        registerKernels()
        let layers = quantizedLayers(g)
        guard !layers.isEmpty else {
            throw BitSwitchError(.invalidModel, "the model has no quantized layers; search needs the multi-precision model "
                + "(train --bits 8,6,4,2, or HASB)")
        }
        let switchable = layers.filter(\.isSwitchable)
        guard !switchable.isEmpty else { throw BitSwitchError(.invalidModel, "every quantized layer is pinned; nothing to search") }
        let t = try traces.perParameter(for: switchable.map(\.name), file: tracesFile)
        // The stored model's int8 weights as the float weights they stand for (the hawq objective compares Q_b(W)
        // with W in real units; comparing with the raw integers made every bit-width's error about ‖q_h‖²).
        let floatGraph = objective == .hawq ? try unstoreQuantized(g) : g
        var out: [BitProblem.Layer] = []
        var fixed: [BudgetKind: Double] = [:]
        let total = Double(layers.reduce(0) { $0 + $1.parameterCount })
        func lat(_ l: QuantizedLayer, _ b: Int) throws -> Double? {
            guard let latency else { return nil }
            guard let row = latency.micros[l.name] else {
                throw BitSwitchError(.data, "the latency table has no row for layer '\(l.name)'", node: l.name)
            }
            guard let v = row[b] else {
                throw BitSwitchError(.data, "the latency table has no \(b)-bit entry for layer '\(l.name)'", node: l.name)
            }
            return v
        }
        var si = 0
        for l in layers {
            guard let m = macs(g, g.nodes[l.nodeIndex]) else {
                throw BitSwitchError(.invalidModel, "cannot count the MACs of '\(l.name)': its shapes are unknown", node: l.name)
            }
            let n = Double(l.parameterCount), mm = Double(m)
            if let p = l.pinned {
                fixed[.avgBits, default: 0] += n * Double(p)
                fixed[.bytes, default: 0] += n * Double(p) / 8
                fixed[.bitOps, default: 0] += mm * Double(p * p)
                if let v = try lat(l, p) { fixed[.latencyUs, default: 0] += v }
                continue
            }
            let bits = l.bits.sorted()
            let cost: [Double]
            switch objective {
            case .hawq:
                let e = try quantizationError(floatGraph, l)
                cost = bits.map { t[si] * (e[$0] ?? 0) }
            case .paper:
                cost = bits.map { t[si] * Double($0) }
            }
            var res: [BudgetKind: [Double]] = [
                .avgBits: bits.map { n * Double($0) }, .bytes: bits.map { n * Double($0) / 8 },
                .bitOps: bits.map { mm * Double($0 * $0) },
            ]
            if latency != nil { res[.latencyUs] = try bits.map { try lat(l, $0) ?? 0 } }
            out.append(BitProblem.Layer(name: l.name, bits: bits, cost: cost, resources: res))
            si += 1
        }
        var groups: [String: [Int]] = [:]
        for (i, l) in switchable.enumerated() { if let q = l.inputQuant { groups[q, default: []].append(i) } }
        let ties = groups.values.filter { $0.count > 1 }.map { $0.sorted() }.sorted { $0[0] < $1[0] }
        return BitProblem(layers: out, ties: ties, maximize: objective == .paper, fixed: fixed, avgBitsDenominator: total)
    }

    /// The profile of a solved choice: every switchable layer at w = a = its bit-width.
    public static func profile(_ p: BitProblem, _ choice: [Int]) -> Profile {
        var prof = Profile()
        for (l, c) in zip(p.layers, choice) { prof.layers[l.name] = LayerBits(w: l.bits[c], a: l.bits[c]) }
        return prof
    }
}
