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
        let shape = sub.inputs[0].type.shape?.compactMap(\.value) ?? []
        let x = Tensor(shape: shape, floats: Harness.floats(shape.reduce(1, *), seed: 3, scale: 100).map { $0.rounded() })
        let c = try net.run([sub.inputs[0].name: x])
        let ref = try Executor(graph: sub).run([sub.inputs[0].name: x])
        #expect(c["out"] == ref["out"])
    }
}
