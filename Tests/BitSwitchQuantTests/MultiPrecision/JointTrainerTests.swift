import BitSwitchData
import BitSwitchIR
import BitSwitchRuntime
import Foundation
import Testing
@testable import BitSwitchQuant

@Suite(.serialized) struct JointTrainerTests {
    init() { registerKernels() }

    func make(_ bits: [Int] = [8, 6, 4, 2], epochs: Int = 2, checkpoint: String? = nil,
              optimizer: OptimizerKind = .adam(), configure: (inout JointTrainingOptions) -> Void = { _ in })
        throws -> JointTrainer {
        var j = try JointTrainingOptions(bits: bits)
        configure(&j)
        return try JointTrainer(graph: quantizedClassifier(bits: bits),
                                training: jointOptions(epochs: epochs, checkpoint: checkpoint, optimizer: optimizer),
                                joint: j, progress: ProgressReporter(style: .silent))
    }

    @Test func oneStepPerBitWidthHighestFirst() throws {
        let t = try make(epochs: 1)
        var events: [JointStepEvent] = []
        t.stepObserver = { events.append($0) }
        try t.fit(barSplits)
        let batches = barSplits.train.count / 16
        #expect(events.count == 4 * batches)
        for (i, e) in events.enumerated() {
            let b = [8, 6, 4, 2][i % 4]
            #expect(e.batchIndex == i / 4)
            #expect(e.bits == [b])
            // Only this bit-width's rows of the per-bit parameters move.
            let rowNames = e.parameters.filter { $0.contains("bit") }
            #expect(!rowNames.isEmpty)
            #expect(rowNames.allSatisfy { $0.hasSuffix("@\(b)bit") })
            #expect(e.parameters.contains("conv2.w") && e.parameters.contains("conv2.w.s"))
        }
    }

    @Test func accumulateTakesOneStepForAllBitWidths() throws {
        let t = try make(epochs: 1) { $0.accumulate = true }
        var events: [JointStepEvent] = []
        t.stepObserver = { events.append($0) }
        try t.fit(barSplits)
        #expect(events.count == barSplits.train.count / 16)
        for e in events {
            #expect(e.bits == [8, 6, 4, 2])
            for b in [8, 6, 4, 2] { #expect(e.parameters.contains("bn2.scale@\(b)bit")) }
            #expect(e.rates[BitRows.scaleGroup] == e.rates[BitRows.weightGroup])
        }
    }

    @Test func alrsRatesPerGroupAndBitWidth() throws {
        let t = try make(epochs: 1)
        var events: [JointStepEvent] = []
        t.stepObserver = { events.append($0) }
        try t.fit(barSplits, stopAfterEpoch: 1)
        let eta: [Int: Float] = [8: 1, 6: 0.1, 4: 0.01, 2: 0.001]
        for e in events {
            let b = e.bits[0]
            let lr = try #require(e.rates[BitRows.weightGroup])
            #expect(e.rates[BitRows.otherGroup] == lr)
            #expect(e.rates[BitRows.pinnedScaleGroup] == lr)
            #expect(e.rates[BitRows.scaleGroup] == lr * eta[b]!)
            #expect(e.rates[BitRows.scaleGroup(bits: b)] == lr * eta[b]!)
            for other in [8, 6, 4, 2] where other != b { #expect(e.rates[BitRows.scaleGroup(bits: other)] == nil) }
        }
        let off = try make(epochs: 1) { $0.alrs = .off }
        var offEvents: [JointStepEvent] = []
        off.stepObserver = { offEvents.append($0) }
        try off.fit(barSplits, stopAfterEpoch: 1)
        for e in offEvents { #expect(e.rates[BitRows.scaleGroup] == e.rates[BitRows.weightGroup]) }
        #expect(try JointTrainingOptions(bits: [2, 4, 3]).bits == [4, 3, 2])
        let j = try JointTrainingOptions(bits: [4, 3, 2])
        #expect([4, 3, 2].map { j.scaleRateMultiplier(bits: $0) } == [1, 0.5, 0.1])
        #expect([4, 3, 2].map { j.rowScaleRateMultiplier(bits: $0) } == [1, 0.5, 0.1])
        let w = try make(epochs: 1) { $0.alrs = .weights }
        var wEvents: [JointStepEvent] = []
        w.stepObserver = { wEvents.append($0) }
        try w.fit(barSplits, stopAfterEpoch: 1)
        for e in wEvents {
            let lr = try #require(e.rates[BitRows.weightGroup])
            #expect(e.rates[BitRows.scaleGroup] == lr * eta[e.bits[0]]!)
            #expect(e.rates[BitRows.scaleGroup(bits: e.bits[0])] == lr)
        }
    }

    /// With plain SGD the update is −rate·gradient, so unit gradients show each parameter's effective rate:
    /// ALRS reaches the switching layers' weight scales and this width's activation-scale rows, not the pinned
    /// layers' scales; rows of other widths stay put.
    @Test(arguments: [ALRSMode.fixed, .off, .weights])
    func effectiveRatesReachTheParameters(alrs: ALRSMode) throws {
        let t = try make(optimizer: .sgd()) { $0.alrs = alrs }
        let before = t.trainer.model.values
        var ones: [String: Tensor] = [:]
        for name in t.trainer.model.parameterNames {
            let v = try #require(before[name])
            ones[name] = Tensor(shape: v.shape, floats: .init(repeating: 1, count: v.count))
        }
        let lr: Float = 0.1
        try t.step(ones, stepBits: [4], scaleMultiplier: t.joint.scaleRateMultiplier(bits: 4), learningRate: lr, batchIndex: 0)
        let after = t.trainer.model.values
        let eta: Float = alrs == .off ? 1 : 0.01, rowEta: Float = alrs == .fixed ? 0.01 : 1
        func delta(_ n: String) -> [Float] { zip(after[n]!.floats, before[n]!.floats).map { $0 - $1 } }
        func close(_ a: [Float], _ b: [Float]) -> Bool { a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) < 1e-6 } }
        // Weights decay (SGD adds wd·w to the gradient); nothing else does.
        let wd = t.trainer.options.weightDecay
        #expect(wd > 0)
        #expect(close(delta("conv2.w"), before["conv2.w"]!.floats.map { -lr * (1 + wd * $0) }))
        #expect(close(delta("fc.b"), [-lr, -lr, -lr]))
        #expect(close(delta("conv2.w.s"), .init(repeating: -lr * eta, count: 6)))
        // Row 2 of [8, 6, 4, 2] is the 4-bit row.
        #expect(close(delta("a1"), [0, 0, -lr * rowEta, 0]))
        // Quantizers pinned at 8 bits (first/last layer) quantize at 8 bits in every profile: no ALRS.
        #expect(close(delta("fc.w.s"), .init(repeating: -lr, count: 3)))
        #expect(close(delta("conv1.w.s"), .init(repeating: -lr, count: 4)))
        #expect(close(delta("a0"), [0, 0, -lr, 0]))
        #expect(close(delta("a2"), [0, 0, -lr, 0]))
        #expect(close(delta("bn2.scale"), [Float](repeating: 0, count: 12) + .init(repeating: -lr, count: 6) + .init(repeating: 0, count: 6)))
        #expect(delta("bn2.mean").allSatisfy { $0 == 0 })
    }

    @Test func sameSeedSameBits() throws {
        for mode in ["off", "progressive", "pskd", "accumulate"] {
            func run() throws -> ([EpochRecord], Graph) {
                let t = try make { j in
                    if mode == "accumulate" { j.accumulate = true } else { j.distillation = DistillationMode(rawValue: mode)! }
                }
                try t.fit(barSplits)
                return (t.history, t.trainedGraph())
            }
            let (h1, g1) = try run(), (h2, g2) = try run()
            #expect(h1.map(\.trainLoss) == h2.map(\.trainLoss), "\(mode)")
            #expect(h1.map(\.testLoss) == h2.map(\.testLoss), "\(mode)")
            #expect(g1.initializers == g2.initializers, "\(mode)")
            #expect(g1.initializers != quantizedClassifier().initializers)
        }
    }

    @Test(arguments: [DistillationMode.off, .progressive, .pskd])
    func resumeContinuesExactly(kd: DistillationMode) throws {
        let full = try make(epochs: 3) { $0.distillation = kd }
        try full.fit(barSplits)

        let path = tempFile("resume-\(kd).ckpt")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let first = try make(epochs: 3, checkpoint: path) { $0.distillation = kd }
        try first.fit(barSplits, stopAfterEpoch: 2)
        #expect(first.completedEpochs == 2)
        let second = try make(epochs: 3, checkpoint: path) { $0.distillation = kd }
        try second.resume(from: path)
        #expect(second.completedEpochs == 2)
        try second.fit(barSplits)
        #expect(second.trainedGraph().initializers == full.trainedGraph().initializers)
        #expect(second.history.map(\.trainLoss) == full.history.map(\.trainLoss))
        // Another bit set is refused.
        let other = try make([4, 3, 2], epochs: 3)
        #expect(throws: BitSwitchError.self) { try other.resume(from: path) }
    }

    /// With α = 0 the distillation paths reduce to plain cross-entropy, computed through the trainer's own
    /// lossAndGradients in `off` mode and through this module's forward/backward otherwise: same bits.
    @Test func zeroWeightDistillationEqualsPlainTraining() throws {
        let plain = try make()
        try plain.fit(barSplits)
        let prog = try make { $0.distillation = .progressive; $0.alpha = 0 }
        try prog.fit(barSplits)
        let ps = try make { $0.distillation = .pskd; $0.pskdFinalAlpha = 0 }
        try ps.fit(barSplits)
        #expect(prog.trainedGraph().initializers == plain.trainedGraph().initializers)
        #expect(ps.trainedGraph().initializers == plain.trainedGraph().initializers)
        // And with the default weights they differ.
        let on = try make { $0.distillation = .progressive }
        try on.fit(barSplits)
        #expect(on.trainedGraph().initializers != plain.trainedGraph().initializers)
    }

    @Test func learnsAtEveryBitWidth() throws {
        let t = try make(epochs: 8)
        try t.fit(barSplits)
        let table = try t.evaluateAllBits(barSplits.test)
        #expect(table.map(\.bits) == [8, 6, 4, 2])
        for row in table.prefix(3) { #expect(row.evaluation.accuracy > 0.9, "\(row.bits) bits") }
        #expect(table.allSatisfy { $0.evaluation.loss.isFinite })
    }

    @Test func bitWidthsTheModelWasNotQuantizedForAreRefused() throws {
        let j = try JointTrainingOptions(bits: [8, 3])
        #expect(throws: BitSwitchError.self) {
            try JointTrainer(graph: quantizedClassifier(bits: [8, 6, 4, 2]), training: jointOptions(epochs: 1), joint: j,
                             progress: ProgressReporter(style: .silent))
        }
        #expect(throws: BitSwitchError.self) { try JointTrainingOptions(bits: []) }
        #expect(throws: BitSwitchError.self) { try JointTrainingOptions(bits: [8, 1]) }
        #expect(throws: BitSwitchError.self) { try JointTrainingOptions(bits: [4, 4]) }
    }
}
