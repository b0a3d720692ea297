import BitSwitchData
import BitSwitchIR
import BitSwitchRuntime
import Foundation
import Testing
@testable import BitSwitchQuant

@Test func calibratedScaleFitsThePercentileRangeIntoTheIntegerRange() throws {
    // 0..1000 in steps of 1: p0.1 = 1, p99.9 = 999 (torch.quantile's interpolation on 1001 values).
    let v = (0...1000).map(Float.init)
    let u8 = try ActivationQuantizer(bits: 8, signed: false)
    #expect(abs(try #require(calibratedScale(v, u8)) - 999 / 255) < 1e-4)
    // Signed data: the larger of the two sides decides. Non-negative data in a signed quantizer uses hi only,
    // where the LSQ initialisation (p99.9 − p0.1)/(hi − lo) would cover half the range.
    let s4 = try ActivationQuantizer(bits: 4, signed: true)
    #expect(abs(try #require(calibratedScale(v, s4)) - 999 / 7) < 1e-3)
    #expect(abs(try #require(calibratedScale(v.map { -$0 }, s4)) - 999 / 8) < 1e-3)
    let lsq = try #require(s4.initialScale(sample: v))
    #expect(abs(lsq - 998 / 15) < 1e-3)
    #expect(calibratedScale([0, 0, 0], u8) == nil)
    #expect(calibratedScale([.nan], u8) == nil)
}

@Suite(.serialized) struct PTQTests {
    init() { registerKernels() }

    @Test func calibrationSetsEveryScaleKeepsBNStatisticsAndNearlyKeepsFloatAccuracyAt8Bits() throws {
        let float = try trainedFloatClassifier()
        let floatAcc = try evaluateModel(TrainingGraph(graph: float), on: barSplits.test).accuracy
        #expect(floatAcc > 0.9)
        var g = float
        try insertFakeQuant(&g, options: FakeQuantOptions(bits: [8, 4, 2]))
        let before = g
        try calibrateActivationScales(&g, data: barSplits.train, samples: 64, seed: 1)
        for n in g.nodes {
            switch n.op {
            case .fakeQuantAct:
                #expect(try #require(g.initializers[n.inputs[1]]).floats.allSatisfy { $0 > 0 })
            case .switchableBatchNorm:
                for i in 1...4 { #expect(g.initializers[n.inputs[i]] == before.initializers[n.inputs[i]]) }
            case .fakeQuantWeight:
                #expect(g.initializers[n.inputs[0]] == before.initializers[n.inputs[0]])
                #expect(g.initializers[n.inputs[1]] == before.initializers[n.inputs[1]])
            default: continue
            }
        }
        let rows = try evaluateAllBits(graph: g, data: barSplits.test)
        #expect(rows.map(\.bits) == [8, 4, 2])
        #expect(rows[0].top1 >= floatAcc - 0.04)
        // Same seed, same scales; another seed picks other samples.
        var again = before
        try calibrateActivationScales(&again, data: barSplits.train, samples: 64, seed: 1)
        #expect(again.initializers == g.initializers)
        var other = before
        try calibrateActivationScales(&other, data: barSplits.train, samples: 64, seed: 2)
        #expect(other.initializers != g.initializers)
        // A float model has nothing to calibrate.
        var plain = float
        #expect(throws: BitSwitchError.self) { try calibrateActivationScales(&plain, data: barSplits.train) }
    }
}
