import BitSwitchData
import BitSwitchIR
import Foundation
import Testing
@testable import BitSwitchQuant

/// Random instances shaped like the real ones: costs fall with bits (hawq) or rise (paper), resources rise with bits.
private func randomProblem(seed: UInt64, layers: Int, maximize: Bool, tie: Bool) -> BitProblem {
    var rng = SplitMix64(seed: seed)
    let bits = [2, 4, 6, 8]
    var ls: [BitProblem.Layer] = []
    var total = 0.0
    for i in 0..<layers {
        let n = Double(100 + rng.nextInt(below: 5000)), macs = Double(1000 + rng.nextInt(below: 100_000))
        total += n
        let t = rng.nextDouble() * 10 + 0.01
        let cost = maximize ? bits.map { t * Double($0) } : bits.map { t * n * pow(2, -2 * Double($0)) * (0.5 + rng.nextDouble()) }
        var lat = [Double](), acc = 1.0 + rng.nextDouble() * 5
        for _ in bits { lat.append(acc); acc += rng.nextDouble() * 4 }
        ls.append(BitProblem.Layer(name: "l\(i)", bits: bits, cost: cost, resources: [
            .avgBits: bits.map { n * Double($0) }, .bytes: bits.map { n * Double($0) / 8 },
            .bitOps: bits.map { macs * Double($0 * $0) }, .latencyUs: lat,
        ]))
    }
    let fixedN = 300.0
    total += fixedN
    return BitProblem(layers: ls, ties: tie ? [[1, 3]] : [], maximize: maximize,
                      fixed: [.avgBits: fixedN * 8, .bytes: fixedN, .bitOps: 5000 * 64, .latencyUs: 3], avgBitsDenominator: total)
}

@Suite struct BitILPTests {
    static let cases: [[BudgetKind]] = [[.avgBits], [.bytes], [.bitOps], [.latencyUs], [.avgBits, .latencyUs],
                                        [.bytes, .bitOps], [.avgBits, .bytes, .bitOps, .latencyUs]]

    @Test(arguments: cases)
    func ilpEqualsBruteForce(kinds: [BudgetKind]) throws {
        var rng = SplitMix64(seed: 99)
        for trial in 0..<12 {
            let p = randomProblem(seed: UInt64(trial * 31 + kinds.count), layers: 6, maximize: trial % 3 == 2, tie: trial % 2 == 1)
            let budgets = kinds.map { k -> Budget in
                let r = p.range(k)
                return Budget(k, r.min + (r.max - r.min) * (0.1 + 0.8 * rng.nextDouble()))
            }
            let brute = BitILP.bruteForce(p, budgets: budgets)
            guard let brute else {
                #expect(throws: BitSwitchError.self) { _ = try BitILP.solve(p, budgets: budgets) }
                continue
            }
            let choice = try BitILP.solve(p, budgets: budgets)
            let o = p.objective(choice)
            #expect(abs(o - brute.objective) <= 1e-7 * max(1, abs(brute.objective)), "trial \(trial): ILP \(o) vs brute force \(brute.objective)")
            for b in budgets { #expect(p.usage(b.kind, choice) <= b.limit * (1 + 1e-9)) }
            if trial % 2 == 1 { #expect(choice[1] == choice[3]) }
        }
    }

    /// `search --random`: every draw meets the budgets, keeps ties, is maximal (no group can be raised within the
    /// budgets), and the same generator state gives the same draws.
    @Test(arguments: cases)
    func randomAssignmentsMeetTheBudgetsAndAreMaximal(kinds: [BudgetKind]) throws {
        var rng = SplitMix64(seed: 7)
        for trial in 0..<6 {
            let p = randomProblem(seed: UInt64(trial * 17 + kinds.count), layers: 6, maximize: false, tie: trial % 2 == 0)
            let budgets = kinds.map { k -> Budget in
                let r = p.range(k)
                return Budget(k, r.min + (r.max - r.min) * (0.1 + 0.8 * rng.nextDouble()))
            }
            var g1 = SplitMix64(seed: UInt64(trial)), g2 = SplitMix64(seed: UInt64(trial))
            var distinct = Set<[Int]>()
            for _ in 0..<10 {
                let c = try p.randomChoice(budgets: budgets, rng: &g1)
                #expect(c == (try p.randomChoice(budgets: budgets, rng: &g2)))
                distinct.insert(c)
                for b in budgets { #expect(p.usage(b.kind, c) <= b.limit * (1 + 1e-9)) }
                if trial % 2 == 0 { #expect(c[1] == c[3]) }
                for g in p.groups() where c[g[0]] < 3 {
                    for higher in (c[g[0]] + 1)..<4 {
                        var t = c
                        for m in g { t[m] = higher }
                        let fits = budgets.allSatisfy { p.usage($0.kind, t) <= $0.limit }
                        #expect(!fits, "trial \(trial): group \(g) could go higher")
                    }
                }
            }
            #expect(distinct.count > 1, "trial \(trial): ten draws were all the same")
        }
        let p = randomProblem(seed: 1, layers: 3, maximize: false, tie: false)
        var g = SplitMix64(seed: 0)
        #expect(throws: BitSwitchError.self) { _ = try p.randomChoice(budgets: [Budget(.avgBits, 1)], rng: &g) }
    }

    @Test func budgetsOutsideTheFeasibleRangeNameTheBound() throws {
        let p = randomProblem(seed: 5, layers: 4, maximize: false, tie: false)
        let r = p.range(.avgBits)
        do {
            _ = try BitILP.solve(p, budgets: [Budget(.avgBits, r.min * 0.9)])
            Issue.record("accepted an infeasible budget")
        } catch let e as BitSwitchError {
            #expect(e.description.contains("smallest feasible avg-bits is \(formatBudget(r.min))"))
        }
        #expect(throws: BitSwitchError.self) { _ = try BitILP.solve(p, budgets: [Budget(.bytes, p.range(.bytes).max * 1.5)]) }
        // Exactly the minimum is feasible: every layer at 2 bits.
        #expect(try BitILP.solve(p, budgets: [Budget(.avgBits, r.min)]) == [0, 0, 0, 0])
        #expect(throws: BitSwitchError.self) { _ = try Budget(parsing: "avg-bits") }
        #expect(try Budget(parsing: "latency-us=800") == Budget(.latencyUs, 800))
    }
}
