import Foundation
import Testing
@testable import BitSwitchQuant

@Test func rshrMatchesEveryGoldenEntry() throws {
    let g = try Golden.load("rshr.json", as: Golden.RSHR.self)
    var checked = 0
    for k in g.k {
        let expected = try #require(g.rshr[String(k)])
        for (i, x) in g.x.enumerated() {
            #expect(Int(rshr(Int32(x), k)) == expected[i], "rshr(\(x), \(k))")
            #expect(rshr(x, k) == expected[i], "rshr64(\(x), \(k))")
            checked += 1
        }
    }
    #expect(checked == 261 * 8)
}

@Test(arguments: 0..<14)
func doubleRoundingMatchesGolden(caseIndex: Int) throws {
    let g = try Golden.load("double_rounding.json", as: Golden.DoubleRounding.self)
    let c = g.cases[caseIndex]
    let quantizer = try WeightQuantizer(storedBits: c.h, bits: c.b, gradientForm: c.exact_grad ? .exact : .reference)
    let channels = g.shape[0]
    #expect(c.scale.count == channels)

    // Initial scales (float32 in torch vs double here: within 1 ulp): channel 0 is forced to 2^-5 by the generator, the others follow init_rule.
    let initial = WeightQuantizer.initialScales(weight: g.w, channels: channels, storedBits: c.h)
    #expect(c.scale[0] == 0x1p-5)
    for ch in 1..<channels {
        #expect(relativeError(initial[ch], c.scale[ch]) < 3e-7, "init scale channel \(ch)")
    }

    let stored = WeightQuantizer.stored(weight: g.w, scales: c.scale, storedBits: c.h)
    #expect(stored.map(Int.init) == c.q_h)
    let (what, qb) = quantizer.forward(weight: g.w, scales: c.scale)
    #expect(qb.map(Int.init) == c.q_b)
    #expect(what == c.w_hat)  // q_b · s · 2^Δ is exact up to one rounding in both implementations
    let shifted = stored.withUnsafeBufferPointer { s in
        [Int8](unsafeUninitializedCapacity: s.count) { out, n in
            WeightQuantizer.shifted(stored: s, storedBits: c.h, bits: c.b, into: out)
            n = s.count
        }
    }
    #expect(shifted == qb)

    let (gw, gs) = quantizer.backward(weight: g.w, scales: c.scale, gradOutput: g.grad_out)
    #expect(gw == c.grad_w)
    // Float32 sums in torch vs double here: measured max relative difference 2.6e-6.
    for ch in 0..<channels {
        #expect(relativeError(gs[ch], c.grad_scale[ch]) < 1e-5, "grad scale channel \(ch): \(gs[ch]) vs \(c.grad_scale[ch])")
    }

    let bitSet = c.h == 8 ? [8, 6, 4, 2] : [4, 3, 2]
    #expect(alrsFactor(bits: c.b, bitSet: bitSet) == c.alrs_eta)
}

@Test(arguments: 0..<10)
func activationQuantizerMatchesGolden(caseIndex: Int) throws {
    let g = try Golden.load("act_quant.json", as: Golden.ActQuant.self)
    let c = g.cases[caseIndex]
    let q = try ActivationQuantizer(bits: c.b, signed: c.signed)
    #expect(q.lo == c.lo && q.hi == c.hi)
    let a = try #require(q.initialScale(sample: c.x))
    #expect(a == c.scale_init_percentile)  // same float32 rank and lerp as torch.quantile: bit-exact

    // The rest uses the golden scale so the comparison does not depend on the last bit of the percentile.
    let s = c.scale_init_percentile
    let xhat = q.forward(input: c.x, scale: s)
    #expect(xhat == c.x_hat)
    let (gx, ga) = q.backward(input: c.x, scale: s, gradOutput: g.grad_out)
    #expect(gx == c.grad_x)
    #expect(relativeError(ga, c.grad_scale) < 1e-6, "grad scale \(ga) vs \(c.grad_scale)")
}
