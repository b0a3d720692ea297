import BitSwitchData
import BitSwitchIR
import Foundation
import Testing
@testable import BitSwitchQuant

@Suite struct HASBSamplerTests {
    /// Pearson's chi-square of observed counts against expected probabilities.
    func chiSquare(_ counts: [Int], _ p: [Double]) -> Double {
        let n = Double(counts.reduce(0, +))
        return zip(counts, p).reduce(0) { $0 + pow(Double($1.0) - n * $1.1, 2) / (n * $1.1) }
    }

    @Test func samplingFrequenciesMatchTheProbabilities() throws {
        // Layer 0 below the mean trace (uniform roulette), layer 1 above (∝ bit-width).
        let s = try HASBSampler(bits: [8, 6, 4, 2], layers: ["a", "b"], traces: [0.1, 1.0], epochs: 4, seed: 11)
        #expect(s.sensitive == [false, true])
        #expect(s.roulette(layer: 1) == [0.4, 0.3, 0.2, 0.1])
        let epoch = 3   // σ_e = 0.5
        #expect(s.leaveProbability(epoch: epoch) == 0.5)
        let trials = 20_000
        for sub in 0..<4 {
            let base = s.bits[sub]
            for layer in 0..<2 {
                // P(b) = (1 − σ_e)·[b == base] + σ_e·roulette(b)
                let r = s.roulette(layer: layer)
                let p = s.bits.indices.map { k in (s.bits[k] == base ? 0.5 : 0) + 0.5 * r[k] }
                var counts = [0, 0, 0, 0]
                for batch in 0..<trials {
                    let b = s.sample(epoch: epoch, batch: batch, subStep: sub)[layer]
                    counts[s.bits.firstIndex(of: b)!] += 1
                }
                // 3 degrees of freedom: P(χ² > 16.27) = 0.001.
                #expect(chiSquare(counts, p) < 16.27, "sub-step \(sub), layer \(layer): \(counts) vs \(p)")
            }
        }
    }

    @Test func warmUpStaysAtTheBaseAndTheSameSeedGivesTheSameBits() throws {
        var s = try HASBSampler(bits: [8, 6, 4, 2], layers: ["a", "b", "c"], traces: [1, 2, 3], epochs: 6, seed: 3)
        s.warmupEpochs = 1
        for batch in 0..<50 { for sub in 0..<4 { #expect(s.sample(epoch: 0, batch: batch, subStep: sub) == [Int](repeating: s.bits[sub], count: 3)) } }
        let t = try HASBSampler(bits: [8, 6, 4, 2], layers: ["a", "b", "c"], traces: [1, 2, 3], epochs: 6, seed: 3)
        for batch in 0..<50 { #expect(s.sample(epoch: 4, batch: batch, subStep: 2) == t.sample(epoch: 4, batch: batch, subStep: 2)) }
        let p = s.profile([2, 4, 8], base: 6)
        #expect(p.defaultBits == 6 && p.layers["b"] == LayerBits(w: 4, a: 4))
    }
}
