import BitSwitchData
import BitSwitchIR
import Foundation
import Testing
@testable import BitSwitchQuant

@Test func rshrTiesRoundTowardPlusInfinity() {
    #expect(rshr(Int32(-3), 1) == -1)  // −1.5 → −1
    #expect(rshr(Int32(3), 1) == 2)  // 1.5 → 2
    #expect(rshr(Int32(-1), 1) == 0)  // −0.5 → 0
    #expect(rshr(Int32(-5), 1) == -2)  // −2.5 → −2
    #expect(rshr(Int32(-6), 2) == -1)  // −1.5 → −1
    #expect(rshr(Int32(6), 2) == 2)  // 1.5 → 2
    #expect(rshr(Int32(-7), 2) == -2)  // −1.75 → −2
    #expect(rshr(Int32(5), 0) == 5)
    // No overflow where x + 2^(k−1) would leave the type.
    #expect(rshr(Int32.max, 1) == 1 << 30)
    #expect(rshr(Int32.min, 31) == -1)
    #expect(rshr(Int32.min, 40) == 0)
    #expect(rshr(Int.max, 1) == 1 << 62)
    #expect(rshr(Int.min, 63) == -1)
    #expect(rshr(-(1 << 40) - (1 << 19), 20) == -(1 << 20))  // tie at 64 bits: −2^20 − 0.5 → −2^20
}

@Test func firstRoundingIsHalfEvenAndSecondIsHalfUp() throws {
    let s: Float = 0.25
    // W / s = 2.5, 3.5, −2.5, −3.5, 0.5, −0.5 (exact in binary)
    let w: [Float] = [2.5, 3.5, -2.5, -3.5, 0.5, -0.5].map { $0 * s }
    #expect(WeightQuantizer.stored(weight: w, scales: [s], storedBits: 8) == [2, 4, -2, -4, 0, 0])
    // Odd stored integers are exact ties of the first shift: 3 → 1.5 → 2, −3 → −1.5 → −1.
    let q7 = try WeightQuantizer(storedBits: 8, bits: 7)
    let odd: [Float] = [3, -3, 5, -5].map { $0 * s }
    let (what, qb) = q7.forward(weight: odd, scales: [s])
    #expect(qb == [2, -1, 3, -2])
    #expect(what == [1, -0.5, 1.5, -1] as [Float])  // q_b · s · 2^Δ = q_b · 0.25 · 2
}

@Test func doubleRoundingDiffersFromDirectRounding() throws {
    // W/s = 7.6: q_h = 8, then rshr(8, 4) = 1, although W/(s·16) = 0.475 rounds to 0 directly.
    let q4 = try WeightQuantizer(storedBits: 8, bits: 4)
    let (_, qb) = q4.forward(weight: [7.6], scales: [1])
    #expect(qb == [1])
}

@Test func clampsAtEveryStage() throws {
    let s: Float = 1
    let w: [Float] = [1000, -1000, 127.4, -128.4, 95.9, 96, -96, -96.5, -97, .nan, .infinity, -.infinity]
    #expect(WeightQuantizer.stored(weight: w, scales: [s], storedBits: 8)
            == [127, -128, 127, -128, 96, 96, -96, -96, -97, 0, 127, -128])
    let q2 = try WeightQuantizer(storedBits: 8, bits: 2)
    let (what, qb) = q2.forward(weight: w, scales: [s])
    // 2-bit range is −2...1: 127 → rshr 2 → 1; 96 → (96+32)>>6 = 2 → 1; −96 → −1; −97 → −2; −128 → −2.
    #expect(qb == [1, -2, 1, -2, 1, 1, -1, -1, -2, 0, 1, -2])
    #expect(what.prefix(2) == [64, -128])
    let q4of4 = try WeightQuantizer(storedBits: 4, bits: 4)
    #expect(q4of4.forward(weight: [7.5, 8.5, -8.6], scales: [1]).shifted == [7, 7, -8])
}

@Test func steMaskIncludesTheBoundsExactly() throws {
    let q = try WeightQuantizer(storedBits: 8, bits: 4)  // Qn = −8, Qp = 7, s·2^Δ = 16 for s = 1
    let w: [Float] = [7 * 16, 7 * 16 + 0.5, -8 * 16, -8 * 16 - 0.5, 0]
    let (gw, gs) = q.backward(weight: w, scales: [1], gradOutput: [1, 1, 1, 1, 1])
    #expect(gw == [1, 0, 1, 0, 1])
    // Σ: u = 7 → q_b − u = 0; u > Qp → 7; u = −8 → 0; u < Qn → −8; u = 0 → 0.  g = 1/sqrt(5 · 7).
    #expect(abs(gs[0] - Float(-1 / (35.0).squareRoot())) < 1e-7)
}

@Test func invalidBitWidthsThrow() {
    #expect(throws: BitSwitchError.self) { try WeightQuantizer(storedBits: 8, bits: 1) }
    #expect(throws: BitSwitchError.self) { try WeightQuantizer(storedBits: 4, bits: 6) }
    #expect(throws: BitSwitchError.self) { try WeightQuantizer(storedBits: 9, bits: 8) }
    #expect(throws: BitSwitchError.self) { try ActivationQuantizer(bits: 1, signed: true) }
}

@Test func alrsFactors() {
    #expect([8, 6, 4, 2].map { alrsFactor(bits: $0, bitSet: [8, 6, 4, 2]) } == [1, 0.1, 0.01, 0.001])
    #expect([4, 3, 2].map { alrsFactor(bits: $0, bitSet: [4, 3, 2]) } == [1, 0.5, 0.1])
    #expect(alrsFactor(bits: 5, bitSet: [8, 5]) == 0.05)  // D = 3: 5 · 10^−2
}

@Test func weightInitUsesPopulationSigmaAndHandlesZeroChannels() {
    // Channel 0: {1, 3}: μ = 2, σ = 1 (population) → max(|2 − 3|, |2 + 3|) / 128 = 5/128. Channel 1 all zero.
    let s = WeightQuantizer.initialScales(weight: [1, 3, 0, 0], channels: 2, storedBits: 8)
    #expect(s[0] == 5.0 / 128)
    #expect(s[1] == s[0])
    #expect(WeightQuantizer.initialScales(weight: [0, 0], channels: 1, storedBits: 4) == [0.125])
}

@Test func activationRangesTiesAndClamps() throws {
    let u = try ActivationQuantizer(bits: 2, signed: false)
    #expect(u.lo == 0 && u.hi == 3)
    #expect(u.forward(input: [-1, 0.5, 1.5, 2.5, 2.6, 9], scale: 1) == [0, 0, 2, 2, 3, 3])
    let s = try ActivationQuantizer(bits: 3, signed: true)
    #expect(s.lo == -4 && s.hi == 3)
    #expect(s.forward(input: [-9, -4.5, -3.5, 3.5], scale: 1) == [-4, -4, -4, 3])
    let (gx, _) = s.backward(input: [-4, -4.01, 3, 3.01], scale: 1, gradOutput: [1, 1, 1, 1])
    #expect(gx == [1, 0, 1, 0])
}

@Test func activationInitFallbacks() throws {
    let q = try ActivationQuantizer(bits: 8, signed: false)
    #expect(q.initialScale(sample: [0, 0, 0]) == nil)
    #expect(q.initialScale(sample: []) == nil)
    #expect(q.initialScale(sample: [.nan, .infinity]) == nil)
    #expect(q.initialScale(sample: [2, 2, 2]) == 2.0 / 255)  // constant: max|x| / hi
    // Non-finite values are ignored: the percentiles of {0, 255} are 0.255 and 254.745.
    let a = try #require(q.initialScale(sample: [0, .nan, 255]))
    #expect(abs(a - (254.745 - 0.255) / 255) < 1e-5)
}

@Test func quantileInterpolatesLikeTorch() {
    #expect(quantile(sortedValues: [0, 1, 2, 3, 4], 0.5) == 2)
    #expect(abs(quantile(sortedValues: [0, 10], 0.25) - 2.5) < 1e-6)
    #expect(abs(quantile(sortedValues: [0, 10], 0.75) - 7.5) < 1e-6)
    #expect(quantile(sortedValues: [3], 0.999) == 3)
    #expect(quantile(sortedValues: [0, 10], 1) == 10)
}

// MARK: Finite differences
//
// The STE gradients are not derivatives of the piecewise-constant quantizer. They are the exact derivatives of
// its straight-through surrogate, where the rounding residual is frozen and only the clamp stays:
//     Ŵ_sur(s, W) = s·2^Δ·(clamp(u, Qn, Qp) + r),  u = W/(s·2^Δ),  r = q_b − clamp(u, Qn, Qp) at the point.
// At the point Ŵ_sur = Ŵ, ∂Ŵ_sur/∂W = [Qn ≤ u ≤ Qp], and ∂Ŵ_sur/∂s = 2^Δ·(q_b − u inside; Qn or Qp outside),
// which is the exact form without g. So: exact ∂L/∂s = g · (central difference of Σ ∂L/∂Ŵ · Ŵ_sur), reference =
// exact / 2^Δ, and ∂L/∂W equals the central difference in W. Elements within 0.05 of a clamp bound are moved
// away first, where the surrogate has a kink.

private func surrogateLoss(_ w: [Double], _ s: Double, _ r: [Double], _ go: [Float], pow2: Double, qn: Double,
                           qp: Double) -> Double {
    var l = 0.0
    for i in 0..<w.count {
        let u = w[i] / (s * pow2)
        l += Double(go[i]) * s * pow2 * (min(max(u, qn), qp) + r[i])
    }
    return l
}

@Test(arguments: [(8, 8), (8, 6), (8, 4), (8, 2), (4, 3)])
func scaleGradientsAreDerivativesOfTheSTESurrogate(h: Int, b: Int) throws {
    var rng = SplitMix64(seed: UInt64(h * 10 + b))
    let n = 64
    let (qn, qp) = (Double(-(1 << (b - 1))), Double((1 << (b - 1)) - 1))
    let pow2 = Double(1 << (h - b))
    var w = (0..<n).map { _ in Float(rng.nextGaussian() * 0.3) }
    let s = WeightQuantizer.initialScales(weight: w, channels: 1, storedBits: h)[0] * 0.4  // range ±1.2σ: some clamping
    for i in 0..<n {
        let u = Double(w[i]) / (Double(s) * pow2)
        if abs(u - qn) < 0.05 || abs(u - qp) < 0.05 { w[i] += Float(0.1 * Double(s) * pow2) }
    }
    let go = (0..<n).map { _ in Float(rng.nextGaussian()) }
    let exact = try WeightQuantizer(storedBits: h, bits: b, gradientForm: .exact)
    let reference = try WeightQuantizer(storedBits: h, bits: b, gradientForm: .reference)
    let qb = exact.forward(weight: w, scales: [s]).shifted
    let wd = w.map(Double.init)
    let r = (0..<n).map { Double(qb[$0]) - min(max(wd[$0] / (Double(s) * pow2), qn), qp) }
    let clampedCount = wd.filter { $0 / (Double(s) * pow2) < qn || $0 / (Double(s) * pow2) > qp }.count
    #expect(clampedCount > 0 && clampedCount < n)

    let eps = Double(s) * 1e-4
    let fd = (surrogateLoss(wd, Double(s) + eps, r, go, pow2: pow2, qn: qn, qp: qp)
              - surrogateLoss(wd, Double(s) - eps, r, go, pow2: pow2, qn: qn, qp: qp)) / (2 * eps)
    let g = 1 / (Double(n) * qp).squareRoot()
    let (gwExact, gsExact) = exact.backward(weight: w, scales: [s], gradOutput: go)
    let (gwRef, gsRef) = reference.backward(weight: w, scales: [s], gradOutput: go)
    #expect(abs(Double(gsExact[0]) - g * fd) <= 1e-4 * max(1, abs(g * fd)), "exact \(gsExact[0]) vs fd \(g * fd)")
    #expect(abs(Double(gsRef[0]) - g * fd / pow2) <= 1e-4 * max(1, abs(g * fd / pow2)))
    #expect(gwExact == gwRef)
    for i in 0..<n {
        var plus = wd, minus = wd
        let e = 1e-3 * Double(s)
        plus[i] += e
        minus[i] -= e
        let fdw = (surrogateLoss(plus, Double(s), r, go, pow2: pow2, qn: qn, qp: qp)
                   - surrogateLoss(minus, Double(s), r, go, pow2: pow2, qn: qn, qp: qp)) / (2 * e)
        #expect(abs(Double(gwExact[i]) - fdw) < 1e-6 * max(1, abs(fdw)), "dW[\(i)]")
    }
}

@Test(arguments: [(8, true), (4, false), (2, true), (3, false)])
func activationScaleGradientIsTheDerivativeOfTheSTESurrogate(bits: Int, signed: Bool) throws {
    var rng = SplitMix64(seed: UInt64(bits))
    let q = try ActivationQuantizer(bits: bits, signed: signed)
    let n = 96
    var x = (0..<n).map { _ in Float(rng.nextGaussian()) }
    let a = try #require(q.initialScale(sample: x)) * 0.7  // some clamping
    let (lo, hi) = (Double(q.lo), Double(q.hi))
    for i in 0..<n {
        let u = Double(x[i]) / Double(a)
        if abs(u - lo) < 0.05 || abs(u - hi) < 0.05 { x[i] += 0.1 * a }
    }
    let go = (0..<n).map { _ in Float(rng.nextGaussian()) }
    let xq = q.forward(input: x, scale: a).map { Double($0) / Double(a) }
    let xd = x.map(Double.init)
    let r = (0..<n).map { xq[$0].rounded() - min(max(xd[$0] / Double(a), lo), hi) }
    func loss(_ s: Double) -> Double {
        (0..<n).reduce(0) { $0 + Double(go[$1]) * s * (min(max(xd[$1] / s, lo), hi) + r[$1]) }
    }
    let eps = Double(a) * 1e-4
    let fd = (loss(Double(a) + eps) - loss(Double(a) - eps)) / (2 * eps)
    let g = 1 / (Double(n) * hi).squareRoot()
    let (gx, ga) = q.backward(input: x, scale: a, gradOutput: go)
    #expect(abs(Double(ga) - g * fd) <= 1e-4 * max(1, abs(g * fd)), "\(ga) vs \(g * fd)")
    for i in 0..<n {
        let u = xd[i] / Double(a)
        #expect(gx[i] == (u >= lo && u <= hi ? go[i] : 0))
    }
}
