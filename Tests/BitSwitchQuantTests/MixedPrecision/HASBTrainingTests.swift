import BitSwitchData
import BitSwitchIR
import BitSwitchRuntime
import Foundation
import Testing
@testable import BitSwitchQuant

// HASB training (METHOD.md §5) on the small joint-training fixture: FQA(pinned) → conv1 (pinned) → SBN → ReLU →
// FQA a1 → conv2 (switchable) → SBN bn2 → ... → fc (pinned).

@Suite(.serialized) struct HASBTrainingTests {
    init() { registerKernels() }

    let bits = [8, 6, 4, 2]

    func sampler(sigma: Double, seed: UInt64 = 3, epochs: Int = 1, warmup: Int = 0) throws -> HASBSampler {
        var s = try HASBSampler(bits: bits, layers: ["conv2"], traces: [1.0], epochs: epochs, seed: seed)
        s.sigma = sigma
        s.warmupEpochs = warmup
        return s
    }

    func make(hasb: HASBSampler?, epochs: Int = 1, checkpoint: String? = nil) throws -> JointTrainer {
        try JointTrainer(graph: quantizedClassifier(bits: bits),
                         training: jointOptions(epochs: epochs, checkpoint: checkpoint),
                         joint: try JointTrainingOptions(bits: bits), hasb: hasb, progress: ProgressReporter(style: .silent))
    }

    /// σ = 0: every layer stays at the sub-step's base, so HASB is joint training, bit for bit.
    @Test func zeroSigmaEqualsJointTraining() throws {
        let joint = try make(hasb: nil, epochs: 2)
        try joint.fit(barSplits)
        let h = try make(hasb: try sampler(sigma: 0), epochs: 2)
        var events: [JointStepEvent] = []
        h.stepObserver = { events.append($0) }
        try h.fit(barSplits)
        #expect(h.trainedGraph().initializers == joint.trainedGraph().initializers)
        #expect(h.history.map(\.trainLoss) == joint.history.map(\.trainLoss))
        for (i, e) in events.enumerated() { #expect(e.layerBits == ["conv2": bits[i % 4]]) }
    }

    /// σ = 1 (one epoch: σ_e = 1): every sub-step runs conv2 at the sampler's draw; its input-activation and BN
    /// rows step at that bit-width, the pinned layers' rows at the base, and conv2's weight scale trains at the ALRS
    /// rate of conv2's own bit-width.
    @Test func fullSigmaUsesTheSampledBitsPerLayer() throws {
        let s = try sampler(sigma: 1)
        let t = try make(hasb: s)
        var events: [JointStepEvent] = []
        t.stepObserver = { events.append($0) }
        try t.fit(barSplits)
        let batches = barSplits.train.count / 16
        #expect(events.count == 4 * batches)
        let eta: [Int: Float] = [8: 1, 6: 0.1, 4: 0.01, 2: 0.001]
        var offBase = 0
        for (i, e) in events.enumerated() {
            let base = bits[i % 4], batch = i / 4
            let b = s.sample(epoch: 0, batch: batch, subStep: i % 4)[0]
            #expect(e.batchIndex == batch)
            #expect(e.bits == [base])
            #expect(e.layerBits == ["conv2": b])
            #expect(t.hasbLayerBits(batch: batch, subStep: i % 4) == ["conv2": b])
            if b != base { offBase += 1 }
            let rows = Set(e.parameters.filter { $0.hasSuffix("bit") })
            #expect(rows.contains("a1@\(b)bit") && rows.contains("bn2.scale@\(b)bit") && rows.contains("bn2.bias@\(b)bit"))
            #expect(rows.contains("a0@\(base)bit") && rows.contains("bn1.scale@\(base)bit"))
            // No other bit-width's rows move (Adam momentum would move rows that got no gradient).
            #expect(!rows.contains { $0.hasPrefix("a1@") && $0 != "a1@\(b)bit" })
            #expect(!rows.contains { $0.hasPrefix("bn2.") && !$0.hasSuffix("@\(b)bit") })
            #expect(!rows.contains { $0.hasPrefix("bn1.") && !$0.hasSuffix("@\(base)bit") })
            let lr = try #require(e.rates[BitRows.weightGroup])
            let scaleRates = e.rates.filter { $0.key == BitRows.scaleGroup || $0.key.hasPrefix(BitRows.scaleGroup + "(") }
            #expect(scaleRates.count == 1)
            #expect(scaleRates.first.map { abs($0.value - lr * eta[b]!) <= 1e-6 * lr } == true)
        }
        #expect(offBase > 0)
    }

    @Test func sameSeedSameWeightsOtherSeedOtherBits() throws {
        let a = try make(hasb: try sampler(sigma: 0.5, seed: 9), epochs: 2)
        try a.fit(barSplits)
        let b = try make(hasb: try sampler(sigma: 0.5, seed: 9), epochs: 2)
        try b.fit(barSplits)
        #expect(a.trainedGraph().initializers == b.trainedGraph().initializers)
        let c = try make(hasb: try sampler(sigma: 0.5, seed: 10), epochs: 2)
        try c.fit(barSplits)
        let draws = { (t: JointTrainer) in (0..<12).flatMap { n in (0..<4).map { t.hasbLayerBits(batch: n, subStep: $0)["conv2"]! } } }
        #expect(draws(a) != draws(c))
    }

    @Test func resumeEqualsUninterrupted() throws {
        let full = try make(hasb: try sampler(sigma: 0.5), epochs: 3)
        try full.fit(barSplits)
        let path = tempFile("hasb-resume.ckpt")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let first = try make(hasb: try sampler(sigma: 0.5), epochs: 3, checkpoint: path)
        try first.fit(barSplits, stopAfterEpoch: 2)
        let second = try make(hasb: try sampler(sigma: 0.5), epochs: 3, checkpoint: path)
        try second.resume(from: path)
        #expect(second.completedEpochs == 2)
        try second.fit(barSplits)
        #expect(second.trainedGraph().initializers == full.trainedGraph().initializers)
        #expect(second.history.map(\.trainLoss) == full.history.map(\.trainLoss))
        // Other HASB settings, or no HASB, are refused.
        let otherSeed = try make(hasb: try sampler(sigma: 0.5, seed: 4), epochs: 3)
        #expect(throws: BitSwitchError.self) { try otherSeed.resume(from: path) }
        let plain = try make(hasb: nil, epochs: 3)
        #expect(throws: BitSwitchError.self) { try plain.resume(from: path) }
    }

    @Test func refusesAMismatchedSampler() throws {
        let wrongBits = try HASBSampler(bits: [4, 2], layers: ["conv2"], traces: [1], epochs: 1, seed: 0)
        #expect(throws: BitSwitchError.self) { try make(hasb: wrongBits) }
        let pinned = try HASBSampler(bits: bits, layers: ["conv2", "fc"], traces: [1, 1], epochs: 1, seed: 0)
        #expect(throws: BitSwitchError.self) { try make(hasb: pinned) }
        let missing = try HASBSampler(bits: bits, layers: [], traces: [], epochs: 1, seed: 0)
        #expect(throws: BitSwitchError.self) { try make(hasb: missing) }
        // Traces for another model name the layer they lack.
        let traces = HessianTraces(layers: [LayerTrace(name: "other", parameterCount: 1, trace: 1, standardError: 0)],
                                   samples: 1, iterations: 1, converged: true, seed: 0, method: "test")
        #expect { try makeHASBSampler(graph: quantizedClassifier(), traces: traces, bits: bits, epochs: 1, seed: 0) }
            throws: { ($0 as? BitSwitchError)?.message.contains("conv2") == true }
    }

    /// A stored (INT8) multi-precision model un-stored for HASB computes the same outputs at every bit-width.
    @Test func unstoringKeepsEveryBitWidth() throws {
        let t = try make(hasb: nil)
        try t.fit(barSplits)
        let trained = t.trainedGraph()
        let stored = try storeQuantized(trained)
        let unstored = try unstoreQuantized(stored)
        #expect(unstored.initializers["conv2.w"]?.dtype == .f32)
        let x = Tensor(shape: [4, 1, 6, 6], floats: Array(barSplits.test.x.prefix(4 * 36)))
        for b in bits {
            let want = try Executor(graph: stored, activeBits: b).run(["x": x])
            let got = try Executor(graph: unstored, activeBits: b).run(["x": x])
            #expect(got == want)
        }
    }
}
