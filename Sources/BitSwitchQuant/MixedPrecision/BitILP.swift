import CGLPK
import Foundation
import BitSwitchIR

// The exact bit-assignment ILP of METHOD.md §5, solved with GLPK's branch-and-cut (`glp_intopt`, presolve on).
// Binary x[l,b] = 1 when layer l runs at bit-width b; Σ_b x[l,b] = 1; layers in one tie group (they read the same
// quantized activation, and a layer's weights and input activation share its bit-width) take the same b; every
// budget is Σ_l resource[l][b]·x[l,b] ≤ limit.

/// One budgeted resource.
public enum BudgetKind: String, Sendable, CaseIterable, Hashable {
    /// Average weight bits, weighted by parameter count (pinned layers included at their width).
    case avgBits = "avg-bits"
    /// Weight bytes of the quantized layers (parameters × bits / 8).
    case bytes
    /// Σ MACs × weight bits × activation bits per sample.
    case bitOps = "bitops"
    /// Σ per-layer latency from a measured table, µs.
    case latencyUs = "latency-us"
}

public struct Budget: Sendable, Hashable, CustomStringConvertible {
    public var kind: BudgetKind
    public var limit: Double
    public init(_ kind: BudgetKind, _ limit: Double) { self.kind = kind; self.limit = limit }
    public var description: String { "\(kind.rawValue)=\(formatBudget(limit))" }

    /// `avg-bits=3`, `bytes=120000`, `bitops=1e9`, `latency-us=800`.
    public init(parsing s: String) throws {
        let parts = s.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, let k = BudgetKind(rawValue: parts[0].lowercased()),
              let v = Double(parts[1]), v.isFinite, v > 0 else {
            throw BitSwitchError(.data, "--budget takes KIND=VALUE with KIND one of "
                + BudgetKind.allCases.map(\.rawValue).joined(separator: ", ") + " and a positive number; got '\(s)'")
        }
        self.init(k, v)
    }
}

func formatBudget(_ x: Double) -> String {
    x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : String(format: "%.6g", x)
}

/// An instance: per layer, the allowed bit-widths with their objective cost and resource use.
public struct BitProblem: Sendable {
    public struct Layer: Sendable {
        public var name: String
        public var bits: [Int]
        /// Objective coefficient per entry of `bits` (minimised, or maximised when `maximize`).
        public var cost: [Double]
        /// Resource use per entry of `bits`.
        public var resources: [BudgetKind: [Double]]
        public init(name: String, bits: [Int], cost: [Double], resources: [BudgetKind: [Double]]) {
            self.name = name; self.bits = bits; self.cost = cost; self.resources = resources
        }
    }
    public var layers: [Layer]
    /// Groups of layer indices that must take the same bit-width (their `bits` lists must be equal).
    public var ties: [[Int]]
    public var maximize: Bool
    /// Resource use of the fixed (pinned) layers, added to every budget's left-hand side.
    public var fixed: [BudgetKind: Double]
    /// avg-bits is Σ n_l b_l / N: the ILP constrains Σ n_l b_l ≤ limit · N with this N.
    public var avgBitsDenominator: Double

    public init(layers: [Layer], ties: [[Int]] = [], maximize: Bool = false, fixed: [BudgetKind: Double] = [:],
                avgBitsDenominator: Double = 1) {
        self.layers = layers; self.ties = ties; self.maximize = maximize; self.fixed = fixed
        self.avgBitsDenominator = avgBitsDenominator
    }

    /// The value of a resource for a choice (index into each layer's `bits`), in the budget's unit.
    public func usage(_ kind: BudgetKind, _ choice: [Int]) -> Double {
        var s = fixed[kind] ?? 0
        for (l, c) in zip(layers, choice) { s += l.resources[kind]?[c] ?? 0 }
        return kind == .avgBits ? s / avgBitsDenominator : s
    }

    public func objective(_ choice: [Int]) -> Double { zip(layers, choice).reduce(0) { $0 + $1.0.cost[$1.1] } }

    /// The smallest and largest value a resource can take over all assignments (ties respected).
    public func range(_ kind: BudgetKind) -> (min: Double, max: Double) {
        // Per tie group the resource is a sum over its members at a common bit index.
        var lo = fixed[kind] ?? 0, hi = lo
        for g in groups() {
            let n = layers[g[0]].bits.count
            let per = (0..<n).map { c in g.reduce(0.0) { $0 + (layers[$1].resources[kind]?[c] ?? 0) } }
            lo += per.min() ?? 0; hi += per.max() ?? 0
        }
        let d = kind == .avgBits ? avgBitsDenominator : 1
        return (lo / d, hi / d)
    }

    /// Tie groups plus singletons, each sorted, covering every layer once.
    func groups() -> [[Int]] {
        var parent = Array(0..<layers.count)
        func find(_ i: Int) -> Int { var i = i; while parent[i] != i { i = parent[i] }; return i }
        for t in ties where t.count > 1 { for m in t.dropFirst() { parent[find(m)] = find(t[0]) } }
        var byRoot: [Int: [Int]] = [:]
        for i in 0..<layers.count { byRoot[find(i), default: []].append(i) }
        return byRoot.values.map { $0.sorted() }.sorted { $0[0] < $1[0] }
    }
}

public enum BitILP {
    /// The optimal choice (an index into each layer's `bits`) under `budgets`; an error saying the smallest feasible
    /// value when a budget is below what the lowest bit-widths reach, or above the all-highest model.
    public static func solve(_ p: BitProblem, budgets: [Budget]) throws -> [Int] {
        for b in budgets {
            let r = p.range(b.kind)
            let slack = 1e-9 * max(1, abs(r.min))
            if b.limit < r.min - slack {
                throw BitSwitchError(.data, "budget \(b) is infeasible: the smallest feasible \(b.kind.rawValue) is "
                    + "\(formatBudget(r.min)) (every switchable layer at its lowest bit-width)")
            }
            if b.limit > r.max * (1 + 1e-9) + 1e-9 {
                throw BitSwitchError(.data, "budget \(b) is above the all-highest-bit-width model's \(formatBudget(r.max)); "
                    + "every layer would run at its top bit-width (the feasible range is \(formatBudget(r.min))...\(formatBudget(r.max)))")
            }
        }
        for g in p.ties where g.count > 1 {
            let bits = p.layers[g[0]].bits
            if let bad = g.first(where: { p.layers[$0].bits != bits }) {
                throw BitSwitchError(.data, "tied layers '\(p.layers[g[0]].name)' and '\(p.layers[bad].name)' have different bit sets")
            }
        }
        if p.layers.isEmpty { return [] }

        glp_term_out(GLP_OFF)
        guard let lp = glp_create_prob() else { throw BitSwitchError(.internalError, "GLPK: cannot create a problem") }
        defer { glp_delete_prob(lp) }
        glp_set_obj_dir(lp, p.maximize ? GLP_MAX : GLP_MIN)
        // Columns.
        var col: [[Int32]] = []
        var nCols: Int32 = 0
        for l in p.layers {
            var c: [Int32] = []
            for _ in l.bits { nCols += 1; c.append(nCols) }
            col.append(c)
        }
        glp_add_cols(lp, nCols)
        for (li, l) in p.layers.enumerated() {
            for (bi, j) in col[li].enumerated() {
                glp_set_col_kind(lp, j, GLP_BV)
                glp_set_obj_coef(lp, j, l.cost[bi])
            }
        }
        // Rows: 1-based triplets (index 0 unused).
        var ia: [Int32] = [0], ja: [Int32] = [0], ar: [Double] = [0]
        var nRows: Int32 = 0
        func addRow(_ entries: [(Int32, Double)], type: Int32, lo: Double, hi: Double) {
            nRows += 1
            glp_add_rows(lp, 1)
            glp_set_row_bnds(lp, nRows, type, lo, hi)
            for (j, v) in entries { ia.append(nRows); ja.append(j); ar.append(v) }
        }
        for c in col { addRow(c.map { ($0, 1) }, type: GLP_FX, lo: 1, hi: 1) }
        for g in p.ties where g.count > 1 {
            for m in g.dropFirst() {
                for bi in 0..<col[g[0]].count { addRow([(col[g[0]][bi], 1), (col[m][bi], -1)], type: GLP_FX, lo: 0, hi: 0) }
            }
        }
        for b in budgets {
            var entries: [(Int32, Double)] = []
            for (li, l) in p.layers.enumerated() {
                guard let r = l.resources[b.kind] else { continue }
                for bi in 0..<l.bits.count where r[bi] != 0 { entries.append((col[li][bi], r[bi])) }
            }
            var limit = b.limit * (b.kind == .avgBits ? p.avgBitsDenominator : 1) - (p.fixed[b.kind] ?? 0)
            limit += 1e-9 * max(1, abs(limit))
            if entries.isEmpty { continue }
            addRow(entries, type: GLP_UP, lo: 0, hi: limit)
        }
        glp_load_matrix(lp, Int32(ia.count - 1), &ia, &ja, &ar)
        var parm = glp_iocp()
        glp_init_iocp(&parm)
        parm.presolve = GLP_ON
        parm.msg_lev = GLP_MSG_OFF
        let ret = glp_intopt(lp, &parm)
        let status = glp_mip_status(lp)
        if ret == GLP_ENOPFS || status == GLP_NOFEAS {
            let mins = budgets.map { "\($0.kind.rawValue) ≥ \(formatBudget(p.range($0.kind).min))" }.joined(separator: ", ")
            throw BitSwitchError(.data, "the budgets \(budgets.map(\.description).joined(separator: ", ")) cannot all be met "
                + "at once (each alone needs \(mins)); raise one of them")
        }
        guard ret == 0, status == GLP_OPT else {
            throw BitSwitchError(.internalError, "GLPK: glp_intopt returned \(ret), status \(status)")
        }
        return try col.enumerated().map { li, c in
            guard let k = c.firstIndex(where: { glp_mip_col_val(lp, $0) > 0.5 }) else {
                throw BitSwitchError(.internalError, "GLPK: no bit-width chosen for '\(p.layers[li].name)'")
            }
            return k
        }
    }

    /// Exhaustive search (for tests and tiny instances): the best choice, or nil when nothing is feasible.
    public static func bruteForce(_ p: BitProblem, budgets: [Budget]) -> (choice: [Int], objective: Double)? {
        var best: ([Int], Double)? = nil
        var choice = [Int](repeating: 0, count: p.layers.count)
        var tieOf: [Int: Int] = [:]
        for g in p.groups() where g.count > 1 { for x in g.dropFirst() { tieOf[x] = g[0] } }
        func rec(_ i: Int) {
            if i == p.layers.count {
                for b in budgets {
                    let u = p.usage(b.kind, choice)
                    if u > b.limit + 1e-9 * max(1, abs(b.limit)) { return }
                }
                let o = p.objective(choice)
                if best == nil || (p.maximize ? o > best!.1 : o < best!.1) { best = (choice, o) }
                return
            }
            if let root = tieOf[i], root < i { choice[i] = choice[root]; rec(i + 1); return }
            for c in 0..<p.layers[i].bits.count { choice[i] = c; rec(i + 1) }
        }
        rec(0)
        return best.map { (choice: $0.0, objective: $0.1) }
    }
}
