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

@Test func minMaxAndMSECalibrationCoverTheRangeOrMinimiseTheError() throws {
    // Gaussian values with a few large outliers, as a transformer's LayerNorm output has.
    var rng = SplitMix64(seed: 7)
    var v = (0..<20_000).map { _ in Float(rng.nextGaussian()) }
    v[10] = 40; v[20] = -30
    let s8 = try ActivationQuantizer(bits: 8, signed: true), s2 = try ActivationQuantizer(bits: 2, signed: true)
    // minmax: the extremes fit exactly (the negative side: -30 / -128 < 40 / 127).
    #expect(abs(try #require(calibratedScale([v], s8, method: .minMax)) - 40 / 127) < 1e-5)
    func error(_ a: Float, _ q: ActivationQuantizer) -> Double {
        v.reduce(0.0) { e, x in
            let r = min(max((x / a).rounded(.toNearestOrEven), q.lo), q.hi) * a - x
            return e + Double(r * r)
        }
    }
    for q in [s8, s2] {
        let mse = try #require(calibratedScale([v], q, method: .mse))
        let full = try #require(calibratedScale([v], q, method: .minMax))
        let pct = try #require(calibratedScale([v], q))
        // No worse than covering the whole range, nor (beyond its grid's resolution) than the percentile rule.
        #expect(mse < full)
        #expect(error(mse, q) <= error(full, q))
        #expect(error(mse, q) <= error(pct, q) * 1.02)
    }
    #expect(calibratedScale([[0, 0, 0]], s8, method: .mse) == nil)
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

@Test func histogramPercentilesEqualTheSortedOnes() throws {
    var rng = SplitMix64(seed: 7)
    // Gaussian, ReLU-like (half exact zeros), heavy ties on a coarse grid, a constant, and NaN/inf mixed in.
    let gauss = (0..<50_000).map { _ in Float(rng.nextGaussian()) }
    let relu = gauss.map { max($0, 0) }
    let ties = gauss.map { ($0 * 4).rounded() / 4 }
    let constant = [Float](repeating: 3, count: 1000)
    let dirty = gauss.prefix(5000) + [.nan, .infinity, -.infinity]
    for v in [gauss, relu, ties, constant, Array(dirty), [1], [2, -1]] {
        let sorted = v.filter(\.isFinite).sorted()
        // Split into uneven parts, as chunks of a tensor are.
        let parts = [Array(v.prefix(v.count / 3)), Array(v.dropFirst(v.count / 3))]
        let s = PercentileSelector(parts)
        for q: Float in [0.001, 0.01, 0.5, 0.999, 0] {
            #expect(s.quantile(q) == quantile(sortedValues: sorted, q))
        }
    }
    // Many distinct values in one narrow region take the refinement levels and stay exact.
    let dense = (0..<300_000).map { i in 1 + Float(i % 150_000) * 1e-6 } + [1e6]
    let sel = PercentileSelector([dense])
    #expect(sel.quantile(0.999) == quantile(sortedValues: dense.sorted(), 0.999))
    #expect(PercentileSelector([[Float]]()).quantile(0.5) == nil)
    #expect(PercentileSelector([[.nan]]).quantile(0.5) == nil)
}

/// The old calibration, one whole forward per quantizer and a full sort: the reference the one-forward,
/// histogram version must reproduce.
private func referenceCalibration(_ g: inout Graph, data: Dataset, samples: Int, seed: UInt64) throws {
    let bits = try trainedBitWidths(g)
    // Later quantizers run at a placeholder scale until their turn; only the values before a quantizer matter.
    for n in g.nodes { if case .fakeQuantAct = n.op, let s = g.initializers[n.inputs[1]] {
        g.setInitializer(n.inputs[1], Tensor(shape: s.shape, floats: [Float](repeating: 1, count: s.count)))
    } }
    let model = try TrainingGraph(graph: g, requireGradients: false)
    var rng = SplitMix64(seed: SplitMix64.derive(seed, 3))
    let chosen = Array(rng.permutation(data.count).prefix(samples)).sorted()
    let batch = data.subset(chosen)
    let feeds = [model.inputName: Tensor(shape: [batch.count] + batch.sampleShape, floats: batch.x)]
    for b in bits {
        for n in model.graph.nodes {
            guard case .fakeQuantAct(let a) = n.op else { continue }
            let pass = try model.forward(feeds: feeds, context: TrainingContext(training: false, activeBits: b))
            let v = try #require(pass.value(n.inputs[0])).floats.filter(\.isFinite).sorted()
            let q = try ActivationQuantizer(bits: a.pinnedBits ?? b, signed: a.signed)
            var s = try #require(model.values[n.inputs[1]])
            var f = s.floats
            var scale = max(quantile(sortedValues: v, 0.999), 0) / q.hi
            if q.lo < 0 { scale = max(scale, min(quantile(sortedValues: v, 0.001), 0) / q.lo) }
            f[try #require(a.bits.firstIndex(of: b))] = scale
            s = Tensor(shape: s.shape, floats: f)
            model.values[n.inputs[1]] = s
        }
    }
    g = model.exportGraph()
}

extension PTQTests {
    @Test func oneForwardPerBitWidthMatchesTheQuadraticReference() throws {
        var g = try trainedFloatClassifier()
        try insertFakeQuant(&g, options: FakeQuantOptions(bits: [8, 4, 2]))
        var reference = g, fast = g, perSample = g
        try referenceCalibration(&reference, data: barSplits.train, samples: 48, seed: 5)
        try calibrateActivationScales(&fast, data: barSplits.train, samples: 48, seed: 5)
        try calibrateActivationScales(&perSample, data: barSplits.train, samples: 48, seed: 5, chunkSize: 1)
        var compared = 0
        for n in g.nodes {
            guard case .fakeQuantAct = n.op else { continue }
            let r = try #require(reference.initializers[n.inputs[1]]).floats
            for other in [fast, perSample] {
                let f = try #require(other.initializers[n.inputs[1]]).floats
                for (x, y) in zip(r, f) {
                    #expect(abs(x - y) <= 1e-5 * abs(x), "\(n.label): \(x) vs \(y)")
                    compared += 1
                }
            }
        }
        #expect(compared >= 12)
    }
}
