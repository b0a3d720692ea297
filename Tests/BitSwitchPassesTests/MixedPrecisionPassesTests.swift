import BitSwitchData
import BitSwitchIR
import BitSwitchONNX
import BitSwitchQuant
import BitSwitchRuntime
import Foundation
import Testing
@testable import BitSwitchPasses

// The mixed-precision chain as one pipeline (hessian → insert-fake-quant → train → hasb-train → assign-bits →
// store-int8 → fold-scales) on the digits example with a small slice of its data, so it stays fast.

private let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// The first `train` / `test` samples of the digits example as an NPY dataset directory.
private func digitsSlice(train: Int, test: Int) throws -> String {
    let full = try DatasetSplits.load(directory: repoRoot.appendingPathComponent("examples/digits/data").path)
    let dir = NSTemporaryDirectory() + "bitswitch-mp-passes-\(getpid())"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    for (name, d, n) in [("train", full.train, train), ("test", full.test, test)] {
        let s = d.subset(Array(0..<n))
        try NPYArray(shape: [n] + s.sampleShape, data: .float32(s.x)).write(to: "\(dir)/x_\(name).npy")
        try NPYArray(shape: [n], data: .int64(s.y.map { Int64($0) })).write(to: "\(dir)/y_\(name).npy")
    }
    return dir
}

@Suite(.serialized) struct MixedPrecisionPassesTests {
    /// Also with transitional BN (`hasb-train{transitional-bn=true}`): fold-scales then picks each pair's row.
    @Test(arguments: [false, true]) func theWholeChainRunsAsOnePipeline(transitional: Bool) throws {
        let data = try digitsSlice(train: 64, test: 32)
        defer { try? FileManager.default.removeItem(atPath: data) }
        let traces = data + "/out/traces.json", profile = data + "/out/profile.json"
        var g = try ONNXImporter.importModel(path: repoRoot.appendingPathComponent("examples/digits/model.onnx").path)
        let pipeline = try Pipeline.parse(
            "canonicalize,infer-shapes,"
            + "hessian{data=\(data),samples=32,min-iterations=2,max-iterations=3,output=\(traces)},"
            + "insert-fake-quant{bits=4,2},train{data=\(data),epochs=1,batch=32},"
            + "hasb-train{data=\(data),epochs=1,batch=32,sigma=1,transitional-bn=\(transitional)},"
            + "assign-bits{avg-bits=3,output=\(profile)},store-int8")
        let context = PassContext(seed: 5)
        var logs: [String] = []
        context.logger = { logs.append($0) }
        try pipeline.run(&g, context: context)

        // The traces and the profile were handed on and written; the profile meets the budget and resolves.
        let t = try HessianTraces.load(path: traces)
        #expect(t.layers.count == 4)
        let chosen = try #require(context.userInfo["profile"] as? Profile)
        #expect(try Profile.load(path: profile) == chosen)
        _ = try chosen.resolve(in: g)
        #expect(Set(chosen.layers.values.map(\.w)).isSubset(of: [4, 2]))
        #expect(logs.contains { $0.hasPrefix("hasb-train:") } && logs.contains { $0.hasPrefix("assign-bits:") })
        let previous = g.nodes.compactMap { n -> String? in
            if case .switchableBatchNorm(_, _, _, let p) = n.op { return p }
            return nil
        }
        // digits: conv2's previous layer is conv1 (both switch); conv1's is the pinned conv0.
        #expect(previous == (transitional ? ["conv1.weight_quant"] : []))
        // The stored model runs; fold-scales without options specialises it to the chosen profile.
        let x = Tensor(shape: [2, 1, 8, 8], floats: (0..<128).map { Float($0 % 17) / 16 })
        let want = try Executor(graph: g, assignment: try chosen.resolve(in: g)).run(["x": x])
        var folded = g
        try Pipeline.parse("fold-scales").run(&folded, context: context)
        #expect(!folded.nodes.contains { if case .switchableBatchNorm = $0.op { return true }; return false })
        let got = try Executor(graph: folded).run(["x": x])
        #expect(got == want)
    }

    @Test func missingTracesAndBudgetsAreClearErrors() throws {
        var g = try ONNXImporter.importModel(path: repoRoot.appendingPathComponent("examples/digits/model.onnx").path)
        try Pipeline.parse("insert-fake-quant{bits=4,2}").run(&g, context: PassContext())
        #expect { try Pipeline.parse("assign-bits{avg-bits=3}").run(&g, context: PassContext()) }
            throws: { ($0 as? BitSwitchError)?.message.contains("'hessian' pass") == true }
        #expect { try Pipeline.parse("assign-bits").run(&g, context: PassContext()) }
            throws: { ($0 as? BitSwitchError)?.message.contains("needs a budget") == true }
        #expect { try Pipeline.parse("hasb-train").run(&g, context: PassContext()) }
            throws: { ($0 as? BitSwitchError)?.message.contains("data=DIR") == true }
    }

    @Test func shippedPipelineParses() throws {
        let p = try Pipeline.load(path: repoRoot.appendingPathComponent("passes/mixed-precision.yaml").path)
        #expect(p.description.contains("hasb-train") && p.description.contains("assign-bits"))
    }
}

/// On the 1-D ResNet, a block's first conv and its downsample conv read one quantized activation: HASB gives them
/// one draw, so every sampled sub-step resolves (Profile.resolve refuses disagreeing readers).
@Test func hasbTiesLayersReadingOneActivation() throws {
    var g = try ONNXImporter.importModel(path: repoRoot.appendingPathComponent("examples/mnist1d-resnet/model.onnx").path)
    try Pipeline.parse("canonicalize,infer-shapes,insert-fake-quant").run(&g, context: PassContext())
    let layers = quantizedLayers(g).filter(\.isSwitchable)
    var readers: [String: [String]] = [:]
    for l in layers { if let q = l.inputQuant { readers[q, default: []].append(l.name) } }
    let tied = readers.values.filter { $0.count > 1 }
    #expect(!tied.isEmpty)
    var s = try HASBSampler(bits: [8, 6, 4, 2], layers: layers.map(\.name),
                            traces: layers.indices.map { Double($0 % 3) }, epochs: 1, seed: 2)
    s.sigma = 1
    var o = TrainingOptions.quantizationRecipe(epochs: 1)
    o.threads = 1
    let t = try JointTrainer(graph: g, training: o, joint: try JointTrainingOptions(bits: [8, 6, 4, 2]), hasb: s,
                             progress: ProgressReporter(style: .silent))
    var differ = 0
    for batch in 0..<20 {
        for k in 0..<4 {
            let bits = t.hasbLayerBits(batch: batch, subStep: k)
            for group in tied { #expect(Set(group.map { bits[$0] }).count == 1) }
            var p = Profile(defaultBits: [8, 6, 4, 2][k])
            for (n, b) in bits { p.layers[n] = LayerBits(w: b, a: b) }
            _ = try p.resolve(in: g)
            if Set(bits.values).count > 1 { differ += 1 }
        }
    }
    #expect(differ > 0)
}
