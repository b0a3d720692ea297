import BitSwitchData
import BitSwitchIR
import BitSwitchRuntime
import Foundation
import Testing
@testable import BitSwitchQuant

/// BN re-estimation of one sub-net (`eval --recalibrate-bn`): the rows the profile uses get statistics that do not
/// depend on the stored ones, nothing else changes, and a model with wrong statistics recovers.
@Suite(.serialized) struct RecalibrateBNTests {
    init() { registerKernels() }

    static let statNames = ["bn1.mean", "bn1.var", "bn2.mean", "bn2.var"]

    /// Rows of a [|B|, C] statistic.
    func row(_ g: Graph, _ name: String, _ r: Int) throws -> [Float] {
        let t = try #require(g.initializers[name])
        let a = try t.quantFloats(name)
        let c = t.shape[1]
        return Array(a[(r * c)..<((r + 1) * c)])
    }

    @Test func usedRowsAreReestimatedAndNothingElseChanges() throws {
        let g = try jointlyTrainedClassifier()
        for name in Self.statNames { #expect(g.initializers[name]?.shape.first == 4, "\(name)") }
        // conv2 at 2 bits (row 3 of bn2); conv1 is pinned and its BN follows the default (8 bits: row 0).
        let a = try Profile(layers: ["conv2": LayerBits(w: 2, a: 2)]).resolve(in: g)
        let (r, rep) = try BatchNormRecalibration.recalibrate(graph: g, assignment: a, data: barSplits.train,
                                                              samples: 64, batchSize: 16)
        #expect(rep.nodes == 2 && rep.samples == 64)
        for (name, t) in g.initializers where !Self.statNames.contains(name) {
            #expect(r.initializers[name] == t, "\(name) changed")
        }
        for (name, used) in [("bn1.mean", 0), ("bn1.var", 0), ("bn2.mean", 3), ("bn2.var", 3)] {
            for k in 0..<4 {
                let before = try row(g, name, k), after = try row(r, name, k)
                if k == used {
                    #expect(before != after, "\(name) row \(k) was not re-estimated")
                    let finite = after.allSatisfy { $0.isFinite }, nonNegative = after.allSatisfy { $0 >= 0 }
                    #expect(finite)
                    if name.hasSuffix("var") { #expect(nonNegative) }
                } else {
                    #expect(before == after, "\(name) row \(k) is not the profile's but changed")
                }
            }
        }
        // The first BN's mean is the mean of conv1's output over the samples (its input does not depend on any BN).
        var probe = g
        let conv1Out = try #require(g.nodes.first { if case .switchableBatchNorm = $0.op { return true }; return false }?.inputs[0])
        probe.outputs.append(ValueInfo(name: conv1Out, type: TensorType(.f32, [.symbol("N"), .known(4), .known(6), .known(6)])))
        let x = Tensor(shape: [64, 1, 6, 6], floats: Array(barSplits.train.x[0..<(64 * 36)]))
        let y = try #require(try Executor(graph: probe, assignment: a).run(["x": x])[conv1Out])
        let c = y.shape[1], hw = y.shape[2] * y.shape[3]
        let yv = try y.quantFloats("y")
        let want = (0..<c).map { ch -> Float in
            var s = 0.0
            for n in 0..<64 { for i in 0..<hw { s += Double(yv[(n * c + ch) * hw + i]) } }
            return Float(s / Double(64 * hw))
        }
        let got = try row(r, "bn1.mean", 0)
        for (u, v) in zip(got, want) { #expect(abs(u - v) <= 1e-4 * max(1, abs(v))) }
    }

    /// The re-estimated statistics do not depend on the stored ones, so a model whose statistics are wrong recovers
    /// exactly the statistics (and the accuracy) of the model whose statistics are right.
    @Test func wrongStatisticsRecover() throws {
        // Trained until the loss is well below chance (ln 3), so wrong statistics visibly hurt.
        let t = try JointTrainer(graph: quantizedClassifier(), training: jointOptions(epochs: 12, lr: 0.03),
                                 joint: try JointTrainingOptions(bits: [8, 6, 4, 2]), progress: ProgressReporter(style: .silent))
        try t.fit(barSplits)
        let g = t.trainedGraph()
        let a = try Profile(layers: ["conv2": LayerBits(w: 4, a: 4)]).resolve(in: g)
        var bad = g
        for name in Self.statNames {
            let t = try #require(g.initializers[name])
            let v = try t.quantFloats(name)
            bad.setInitializer(name, Tensor(shape: t.shape, floats: v.map { name.hasSuffix("var") ? 40 * $0 + 3 : $0 + 2.5 }))
        }
        let (fixedBad, _) = try BatchNormRecalibration.recalibrate(graph: bad, assignment: a, data: barSplits.train, samples: 96)
        let (fixedGood, _) = try BatchNormRecalibration.recalibrate(graph: g, assignment: a, data: barSplits.train, samples: 96)
        for (name, used) in [("bn1.mean", 0), ("bn1.var", 0), ("bn2.mean", 2), ("bn2.var", 2)] {
            #expect(try row(fixedBad, name, used) == row(fixedGood, name, used), "\(name)")
        }
        func eval(_ g: Graph) throws -> Evaluation {
            try evaluateModel(try TrainingGraph(graph: g, requireGradients: false), on: barSplits.test, assignment: a)
        }
        let good = try eval(g), broken = try eval(bad), recovered = try eval(fixedBad)
        #expect(good.loss < 0.8, "the fixture did not train (\(good.loss))")
        #expect(broken.loss > good.loss + 0.2, "the corrupted statistics should hurt (\(broken.loss) vs \(good.loss))")
        #expect(recovered == (try eval(fixedGood)))
        #expect(recovered.loss < good.loss + 0.3 * (broken.loss - good.loss),
                "recovered \(recovered.loss), stored \(good.loss), corrupted \(broken.loss)")
    }

    @Test func badArgumentsAreErrors() throws {
        let g = quantizedClassifier()
        let a = BitAssignment.uniform(8)
        #expect(throws: BitSwitchError.self) { _ = try BatchNormRecalibration.recalibrate(graph: g, assignment: a, data: barSplits.train, samples: 0) }
        #expect(throws: BitSwitchError.self) { _ = try BatchNormRecalibration.recalibrate(graph: g, assignment: a, data: barSplits.train, samples: 8, batchSize: 1) }
    }
}

/// The hawq objective of a stored (int8) model: ‖Q_b(W) − W‖² in real units, as for the float model it was stored
/// from — not against the raw integers q_h (which made every bit-width's error about ‖q_h‖², so the ILP's choice
/// was noise and it left budget unused).
@Suite struct HawqObjectiveOnStoredModelTests {
    init() { registerKernels() }

    @Test func storedModelHasTheFloatModelsCosts() throws {
        var g = try jointlyTrainedClassifier()
        try inferShapes(&g)
        let stored = try storeQuantized(g)
        let traces = HessianTraces(layers: [LayerTrace(name: "conv2", parameterCount: 216, trace: 2, standardError: 0)],
                                   samples: 1, iterations: 1, converged: true, seed: 0, method: "test")
        let pf = try MixedPrecisionSearch.problem(graph: g, traces: traces, objective: .hawq)
        let ps = try MixedPrecisionSearch.problem(graph: stored, traces: traces, objective: .hawq)
        #expect(pf.layers.count == 1 && ps.layers.count == 1)
        let cf = pf.layers[0].cost, cs = ps.layers[0].cost
        #expect(pf.layers[0].bits == [2, 4, 6, 8])
        // Storing rounds W to q_h·s_c; the errors agree closely and fall with the bit-width.
        for (a, b) in zip(cf, cs) { #expect(abs(a - b) <= 0.05 * cf[0], "float \(cf) vs stored \(cs)") }
        for k in 1..<cs.count { #expect(cs[k] < cs[k - 1], "\(cs)") }
        #expect(cs[3] <= 1e-6 * cs[0])
    }
}
