import BitSwitchIR
import BitSwitchRuntime
import Foundation
import Testing
@testable import BitSwitchQuant

/// (1−α)·CE + α·T²·KL in Double, straight from the definition.
private func referenceLoss(_ s: [Float], _ t: [Float], _ labels: [Int], k: Int, alpha: Double, temp: Double) -> Double {
    let n = labels.count
    var ce = 0.0, kl = 0.0
    for r in 0..<n {
        let z = (0..<k).map { Double(s[r * k + $0]) }, u = (0..<k).map { Double(t[r * k + $0]) }
        let lse = log(z.map(exp).reduce(0, +))
        ce -= z[labels[r]] - lse
        let zs = z.map { $0 / temp }, zt = u.map { $0 / temp }
        let ls = log(zs.map(exp).reduce(0, +)), lt = log(zt.map(exp).reduce(0, +))
        for j in 0..<k {
            let pt = exp(zt[j] - lt)
            kl += pt * ((zt[j] - lt) - (zs[j] - ls))
        }
    }
    return (1 - alpha) * ce / Double(n) + alpha * temp * temp * kl / Double(n)
}

@Test func progressiveLossValueAndGradientAgainstFiniteDifferences() throws {
    var rng = JointRandom(3)
    let n = 4, k = 5
    let s = rng.uniform(n * k, -2, 2), t = rng.uniform(n * k, -2, 2)
    let labels = [0, 3, 4, 1]
    for (alpha, temp) in [(0.3, 2.0), (0.5, 1.0), (1.0, 4.0)] as [(Float, Float)] {
        let r = try Distillation.progressiveLoss(student: Tensor(shape: [n, k], floats: s), teacher: Tensor(shape: [n, k], floats: t),
                                                 labels: labels, alpha: alpha, temperature: temp)
        let ref = referenceLoss(s, t, labels, k: k, alpha: Double(alpha), temp: Double(temp))
        #expect(abs(Double(r.loss) - ref) < 1e-5 * max(1, abs(ref)))
        // Central differences of the Double reference.
        let g = r.gradient.floats
        for i in 0..<(n * k) {
            let h: Float = 1e-3
            var p = s, m = s
            p[i] += h; m[i] -= h
            let fd = (referenceLoss(p, t, labels, k: k, alpha: Double(alpha), temp: Double(temp))
                      - referenceLoss(m, t, labels, k: k, alpha: Double(alpha), temp: Double(temp))) / Double(2 * h)
            #expect(abs(Double(g[i]) - fd) < 1e-4, "element \(i), α \(alpha), T \(temp)")
        }
    }
    // A teacher equal to the student adds nothing to the gradient beyond the weighted cross-entropy.
    let same = try Distillation.progressiveLoss(student: Tensor(shape: [n, k], floats: s), teacher: Tensor(shape: [n, k], floats: s),
                                                labels: labels, alpha: 0.3, temperature: 2)
    let ce = try Loss.crossEntropy(logits: Tensor(shape: [n, k], floats: s), labels: labels)
    for (a, b) in zip(same.gradient.floats, ce.gradient.floats) { #expect(abs(a - 0.7 * b) < 1e-6) }
}

@Test func pskdTargetsAndSchedule() throws {
    // Rows: previous predictions (0.5, 0.25, 0.25) and (0, 0, 1); labels 1 and 2; α = 0.4.
    let t = try Distillation.pskdTargets(labels: [1, 2], previous: [0.5, 0.25, 0.25, 0, 0, 1], classes: 3, alpha: 0.4)
    let expected: [Float] = [0.2, 0.1 + 0.6, 0.1, 0, 0, 0.4 + 0.6]
    for (a, b) in zip(t, expected) { #expect(abs(a - b) < 1e-6) }
    #expect(Distillation.pskdAlpha(epoch: 0, epochs: 4, finalAlpha: 0.8) == 0.2)
    #expect(Distillation.pskdAlpha(epoch: 3, epochs: 4, finalAlpha: 0.8) == 0.8)
    #expect(throws: BitSwitchError.self) { try Distillation.pskdTargets(labels: [1], previous: [1, 0], classes: 3, alpha: 0.1) }
    #expect(throws: BitSwitchError.self) { try Distillation.pskdTargets(labels: [5], previous: [1, 0, 0], classes: 3, alpha: 0.1) }
    let p = try Distillation.softmaxRows(Tensor(shape: [1, 3], floats: [0, log(2), log(5)]))
    for (a, b) in zip(p, [0.125, 0.25, 0.625] as [Float]) { #expect(abs(a - b) < 1e-6) }
}
