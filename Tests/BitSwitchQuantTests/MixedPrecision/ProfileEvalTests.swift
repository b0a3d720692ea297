import BitSwitchData
import BitSwitchIR
import BitSwitchRuntime
import Foundation
import Testing
@testable import BitSwitchQuant

/// The jointly trained tiny classifier, shared by the mixed-precision tests.
func jointlyTrainedClassifier() throws -> Graph {
    registerKernels()
    let t = try JointTrainer(graph: quantizedClassifier(), training: jointOptions(epochs: 1),
                             joint: try JointTrainingOptions(bits: [8, 6, 4, 2]), progress: ProgressReporter(style: .silent))
    try t.fit(barSplits)
    return t.trainedGraph()
}

@Suite(.serialized) struct ProfileEvaluationTests {
    init() { registerKernels() }

    /// Every switchable layer listed at b (pinned ones follow `default`) is exactly the uniform `--bits b` run.
    @Test func everyLayerAtBEqualsUniformB() throws {
        let g = try jointlyTrainedClassifier()
        let layers = quantizedLayers(g)
        #expect(layers.map(\.name) == ["conv1", "conv2", "fc"])
        let tg = try TrainingGraph(graph: g, requireGradients: false)
        let x = Tensor(shape: [barSplits.test.count, 1, 6, 6], floats: barSplits.test.x)
        for b in [8, 6, 4, 2] {
            var p = Profile(defaultBits: b)
            for l in layers where l.isSwitchable { p.layers[l.name] = LayerBits(w: b, a: b) }
            let reparsed = try Profile(json: Data(p.json.utf8))
            #expect(reparsed == p)
            let a = try reparsed.resolve(in: g)
            let viaProfile = try evaluateModel(tg, on: barSplits.test, batchSize: 7, assignment: a)
            let uniform = try evaluateModel(tg, on: barSplits.test, batchSize: 7, activeBits: b)
            #expect(viaProfile == uniform)
            let y1 = try Executor(graph: g, assignment: a).run(["x": x])["logits"]
            let y2 = try Executor(graph: g, activeBits: b).run(["x": x])["logits"]
            #expect(y1 != nil && y1 == y2)
        }
        // A real mixed profile differs from both neighbours somewhere.
        let mixed = try Profile(layers: ["conv2": LayerBits(w: 2, a: 8)]).resolve(in: g)
        let ym = try Executor(graph: g, assignment: mixed).run(["x": x])["logits"]
        let y8 = try Executor(graph: g, activeBits: 8).run(["x": x])["logits"]
        #expect(ym != y8)
    }

    @Test func unknownLayersAndUntrainedBitsAreErrorsNamingThem() throws {
        let g = quantizedClassifier()
        do {
            _ = try Profile(layers: ["conv9": LayerBits(w: 4, a: 4)]).resolve(in: g, file: "p.json")
            Issue.record("accepted an unknown layer")
        } catch let e as BitSwitchError { #expect(e.description.contains("conv9") && e.description.contains("p.json")) }
        do {
            _ = try Profile(layers: ["conv2": LayerBits(w: 3, a: 4)]).resolve(in: g)
            Issue.record("accepted an untrained bit-width")
        } catch let e as BitSwitchError { #expect(e.description.contains("conv2") && e.description.contains("3")) }
        do {
            _ = try Profile(layers: ["fc": LayerBits(w: 4, a: 4)]).resolve(in: g)
            Issue.record("accepted a pinned layer at 4 bits")
        } catch let e as BitSwitchError { #expect(e.description.contains("pinned")) }
    }
}
