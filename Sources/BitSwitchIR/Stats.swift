/// Summary numbers of a graph for `bitswitch import`: op histogram, parameters and multiply-accumulates.
public struct GraphStats: Sendable {
    public var opHistogram: [(op: String, count: Int)]
    public var parameterCount: Int
    /// MACs per sample (symbolic dims counted as 1).
    public var macs: Int
    /// Nodes whose MACs could not be counted because their shapes are unknown.
    public var uncountedNodes: [String]

    public init(_ g: Graph) {
        var hist: [String: Int] = [:]
        for n in g.nodes {
            let key = n.op.domain.isEmpty ? n.op.typeName : "\(n.op.domain).\(n.op.typeName)"
            hist[key, default: 0] += 1
        }
        opHistogram = hist.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
            .map { ($0.key, $0.value) }
        parameterCount = g.parameterCount
        var total = 0
        var uncounted: [String] = []
        func dims(_ v: String) -> [Int]? {
            guard let s = g.type(of: v)?.shape else { return nil }
            return s.map { $0.value ?? 1 }
        }
        for n in g.nodes {
            switch n.op {
            case .conv:
                // MACs = output elements × (input channels per group × kernel elements) = |y| × |w| / Cout
                guard let y = n.outputs.first.flatMap(dims), n.inputs.count > 1, let w = dims(n.inputs[1]), w.count >= 2
                else { uncounted.append(n.label); continue }
                total += y.reduce(1, *) * w.dropFirst().reduce(1, *)
            case .gemm(let a):
                guard let y = n.outputs.first.flatMap(dims), let x = dims(n.inputs[0]), x.count == 2
                else { uncounted.append(n.label); continue }
                total += y.reduce(1, *) * (a.transA ? x[0] : x[1])
            case .matMul:
                guard let y = n.outputs.first.flatMap(dims), let x = dims(n.inputs[0]), let k = x.last
                else { uncounted.append(n.label); continue }
                total += y.reduce(1, *) * k
            default: break
            }
        }
        macs = total
        uncountedNodes = uncounted
    }
}

/// 1234567 -> "1.23M"
public func humanCount(_ n: Int) -> String {
    func fixed(_ x: Double, _ digits: Int) -> String {
        let p = [1.0, 10, 100, 1000][digits]
        let r = (x * p).rounded() / p
        var s = String(r)
        if let dot = s.firstIndex(of: ".") {
            let frac = s[s.index(after: dot)...]
            if frac.count < digits { s += String(repeating: "0", count: digits - frac.count) }
        }
        return s
    }
    let v = Double(n)
    if v >= 1e9 { return fixed(v / 1e9, 2) + "G" }
    if v >= 1e6 { return fixed(v / 1e6, 2) + "M" }
    if v >= 1e3 { return fixed(v / 1e3, 1) + "k" }
    return String(n)
}
