import BitSwitchData
import BitSwitchIR

extension BitProblem {
    /// A random choice meeting `budgets` (the baseline of METHOD.md §5's study): every tie group starts at its lowest
    /// bit-width; then, in a random order, a random group is raised to a random higher bit-width that keeps every
    /// budget satisfied, until no group can be raised. The result is a random *maximal* assignment (no group can go
    /// higher within the budgets), so it uses the budget about as fully as the ILP does, so the comparison is at (nearly) the same cost. The objective is
    /// ignored. Deterministic in `rng`.
    public func randomChoice(budgets: [Budget], rng: inout SplitMix64) throws -> [Int] {
        var choice = [Int](repeating: 0, count: layers.count)
        let lowest = layers.map { l in l.bits.indices.min(by: { l.bits[$0] < l.bits[$1] }) ?? 0 }
        for (i, c) in lowest.enumerated() { choice[i] = c }
        func fits(_ c: [Int]) -> Bool {
            budgets.allSatisfy { b in usage(b.kind, c) <= b.limit * (1 + 1e-12) + 1e-12 }
        }
        guard fits(choice) else {
            throw BitSwitchError(.data, "random assignment: the budgets \(budgets.map(\.description).joined(separator: ", ")) "
                + "are infeasible even with every switchable layer at its lowest bit-width")
        }
        func draw(_ n: Int) -> Int { rng.nextInt(below: n) }
        var open = groups()
        while !open.isEmpty {
            let gi = draw(open.count)
            let g = open[gi]
            let bits = layers[g[0]].bits
            let cur = bits[choice[g[0]]]
            let higher = bits.indices.filter { bits[$0] > cur }.filter { c in
                var t = choice
                for m in g { t[m] = c }
                return fits(t)
            }
            if higher.isEmpty { open.remove(at: gi); continue }
            let c = higher[draw(higher.count)]
            for m in g { choice[m] = c }
        }
        return choice
    }
}
