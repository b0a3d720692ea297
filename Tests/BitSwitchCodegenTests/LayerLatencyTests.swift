import BitSwitchCodegen
import BitSwitchIR
import BitSwitchRuntime
import Foundation
import Testing

/// `profile-latency`'s building blocks: one layer of a lowered graph as a graph of its own, compiled and timed.
@Suite struct LayerLatencyTests {
    static let golden = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("BitSwitchPassesTests/golden/lower-int-cnn.ir")

    @Test func aLayerIsItsConvAndFusedRequantAtBatchOne() throws {
        // The golden file's expected output: a digits-like CNN lowered at 4 bits.
        let text = try String(contentsOf: Self.golden, encoding: .utf8)
        let g = try parseGraph(String(try #require(text.components(separatedBy: "# expect:\n").last)))
        let sub = try LayerLatency.subgraph(g, layer: "conv1")
        #expect(sub.nodes.map(\.op.typeName) == ["Quantize", "QConv", "Requant", "Dequantize"])
        let conv = try #require(g.nodes.first { $0.name == "conv1" })
        #expect(sub.inputs.first?.type.shape?.map(\.value) == g.type(of: conv.inputs[0])?.shape.map { [1] + $0.dropFirst().map(\.value) })
        // The layer's weights and requantization tables are the lowered graph's, unchanged.
        #expect(sub.initializers[conv.inputs[1]] == g.initializers[conv.inputs[1]])
        let gemm = try LayerLatency.subgraph(g, layer: "fc")
        #expect(gemm.nodes.contains { $0.op.typeName == "QGemm" })
        #expect(throws: BitSwitchError.self) { try LayerLatency.subgraph(g, layer: "pool0") }

        // Compiled on its own it runs, and the compiled layer computes what the interpreter does.
        let net = try CompiledNetwork(EmitInput(graph: sub), options: CompileOptions(cacheDirectory: Harness.cache))
        #expect(try LayerLatency.measure(net, repeats: 3) > 0)
        #expect(net.model.layerNames == ["conv1"])
        #expect(try LayerLatency.measure(net, layer: "conv1", repeats: 3) > 0)
        #expect(throws: BitSwitchError.self) { try LayerLatency.measure(net, layer: "fc", repeats: 1) }
        let shape = sub.inputs[0].type.shape?.compactMap(\.value) ?? []
        let x = Tensor(shape: shape, floats: Harness.floats(shape.reduce(1, *), seed: 3, scale: 100).map { $0.rounded() })
        let c = try net.run([sub.inputs[0].name: x])
        let ref = try Executor(graph: sub).run([sub.inputs[0].name: x])
        #expect(c["out"] == ref["out"])
    }

    /// The bundle's per-layer timer (bs_set_layer_timing / bs_layer_time_ns) on a whole model: off, runs add
    /// nothing; on, every layer's counter grows with the runs and restarts at 0 when timing is set again; a layer
    /// index outside the model is an error. The layers' times are parts of the runs, so they sum to less than the
    /// runs' wall time.
    @Test func theBundleTimesEachLayerOfAWholeModel() throws {
        let text = try String(contentsOf: Self.golden, encoding: .utf8)
        var g = try parseGraph(String(try #require(text.components(separatedBy: "# expect:\n").last)))
        // One switchable layer per QConv / QGemm (the golden file has one uniform layer "*", which no node is).
        let names = g.nodes.filter { ["QConv", "QGemm"].contains($0.op.typeName) }.map(\.name)
        g.metadata["bitswitch.int.bits"] = "{" + names.map { "\"\($0)\": {\"w\": 8, \"a\": 8}" }.joined(separator: ", ") + "}"
        g.metadata["bitswitch.int.sites"] = nil
        for isa in [KernelISA.generic] + (Harness.hasAVX2("per-layer timer, AVX2 bundle") ? [.avx2] : []) {
            let net = try CompiledNetwork(EmitInput(graph: g, isa: isa), options: CompileOptions(cacheDirectory: Harness.cache))
            let m = net.model, layers = m.layerNames.indices
            #expect(m.layerNames.count >= 3, "\(m.layerNames)")
            let x = Harness.floats(m.inputSize, seed: 5)
            try m.setLayerTiming(false)
            _ = try m.run(x)
            #expect(try layers.map { try m.layerTimeNanoseconds($0) }.allSatisfy { $0 == 0 })
            try m.setLayerTiming(true)
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<20 { _ = try m.run(x) }
            let wall = Int64(DispatchTime.now().uptimeNanoseconds - start)
            let ns = try layers.map { try m.layerTimeNanoseconds($0) }
            #expect(ns.allSatisfy { $0 > 0 }, "\(isa): \(ns)")
            #expect(ns.reduce(0, +) < wall, "\(isa): layers \(ns) vs runs \(wall) ns")
            try m.setLayerTiming(true)
            #expect(try layers.map { try m.layerTimeNanoseconds($0) }.allSatisfy { $0 == 0 })
            #expect(throws: BitSwitchError.self) { try m.layerTimeNanoseconds(m.layerNames.count) }
            #expect(throws: BitSwitchError.self) { try m.layerTimeNanoseconds(-1) }
        }
    }
}
