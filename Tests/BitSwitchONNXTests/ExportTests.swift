import BitSwitchIR
import BitSwitchONNX
import Foundation
import Testing

@Suite struct ExportTests {
    static let roundTripFixtures = ["conv_bn.onnx", "dtypes.onnx", "external.onnx", "symbolic.onnx", "qdq.onnx",
                                    "constant.onnx"]

    @Test(arguments: roundTripFixtures)
    func importExportImportGivesTheSameGraph(_ name: String) throws {
        let g = try importFixture(name)
        let bytes = try ONNXExporter.serialize(g)
        let back = try ONNXImporter.importModel(bytes: bytes, path: "exported-\(name)", baseDirectory: nil)
        #expect(back == g)
        // Serialising is deterministic, so a second trip gives the very same bytes.
        #expect(try ONNXExporter.serialize(back) == bytes)
    }

    @Test func writeIsAtomicAndReadable() throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let g = try importFixture("conv_bn.onnx")
        let path = dir + "/model.onnx"
        #expect(FileManager.default.createFile(atPath: path, contents: Data("old".utf8)))
        try ONNXExporter.write(g, to: path)
        #expect(try ONNXImporter.importModel(path: path) == g)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["model.onnx"])
    }

    @Test func writeIntoMissingDirectoryFailsNamingTheFile() throws {
        let g = try importFixture("symbolic.onnx")
        let e = #expect(throws: BitSwitchError.self) {
            try ONNXExporter.write(g, to: "/nonexistent-bitswitch-dir/model.onnx")
        }
        #expect(e?.kind == .io)
        expectMentions(try #require(e), ["/nonexistent-bitswitch-dir/model.onnx"])
    }

    @Test func bitswitchOpsDeclareTheirDomain() throws {
        var g = Graph(name: "fq", opsets: ["": 17],
                      inputs: [ValueInfo(name: "x", type: TensorType(.f32, [.symbol("N"), .known(4)]))],
                      outputs: [ValueInfo(name: "y", type: TensorType(.f32, [.symbol("N"), .known(4)]))])
        g.setInitializer("s", Tensor(shape: [2], floats: [0.1, 0.2]))
        g.nodes = [Node(name: "fq", op: .fakeQuantAct(FakeQuantActAttrs(bits: [8, 4], signed: true)),
                        inputs: ["x", "s"], outputs: ["y"])]
        let back = try ONNXImporter.importModel(bytes: try ONNXExporter.serialize(g), path: "fq.onnx",
                                                baseDirectory: nil)
        #expect(back.opsets == ["": 17, Op.bitswitchDomain: 1])
        #expect(back.nodes == g.nodes)
        #expect(back.initializers == g.initializers)
        #expect(back.inputs == g.inputs && back.outputs == g.outputs)
    }

    /// Transitional BN: the `previous` attribute and the [|B|², C] rows survive ONNX (ai.bitswitch domain).
    @Test func transitionalBatchNormRoundTrips() throws {
        var g = Graph(name: "tbn", opsets: ["": 17, Op.bitswitchDomain: 1],
                      inputs: [ValueInfo(name: "x", type: TensorType(.f32, [.symbol("N"), .known(3), .known(5)]))],
                      outputs: [ValueInfo(name: "y", type: TensorType(.f32, [.symbol("N"), .known(3), .known(5)]))])
        g.setInitializer("w", Tensor(shape: [3, 3, 1], floats: (0..<9).map { Float($0) / 8 }))
        g.setInitializer("ws", Tensor(shape: [3], floats: [0.01, 0.02, 0.03]))
        for (k, p) in ["scale", "bias", "mean", "var"].enumerated() {
            g.setInitializer(p, Tensor(shape: [4, 3], floats: (0..<12).map { Float($0 + k) / 7 + 0.5 }))
        }
        g.nodes = [Node(name: "wq", op: .fakeQuantWeight(FakeQuantWeightAttrs(bits: [8, 4])), inputs: ["w", "ws"], outputs: ["wh"]),
                   Node(name: "conv", op: .conv(ConvAttrs()), inputs: ["x", "wh"], outputs: ["c"]),
                   Node(name: "bn", op: .switchableBatchNorm(bits: [8, 4], epsilon: 1e-5, momentum: 0.9, previous: "wq"),
                        inputs: ["c", "scale", "bias", "mean", "var"], outputs: ["y"])]
        let back = try ONNXImporter.importModel(bytes: try ONNXExporter.serialize(g), path: "tbn.onnx", baseDirectory: nil)
        #expect(back.nodes == g.nodes)
        #expect(back.initializers == g.initializers)
    }

    @Test(arguments: [(13, nil, "8"), (17, "7", "8"), (19, nil, "9"), (21, nil, "10"), (13, "11", "11"),
                      (15, "3", "7")] as [(Int, String?, String)])
    func irVersionCoversTheOpset(_ opset: Int, _ recorded: String?, _ expected: String) throws {
        var g = Graph(name: "ir", opsets: ["": opset],
                      inputs: [ValueInfo(name: "x", type: TensorType(.f32, known: [2]))],
                      outputs: [ValueInfo(name: "y", type: TensorType(.f32, known: [2]))],
                      nodes: [Node(name: "", op: .relu, inputs: ["x"], outputs: ["y"])])
        if let recorded { g.metadata["ir_version"] = recorded }
        let back = try ONNXImporter.importModel(bytes: try ONNXExporter.serialize(g), path: "ir.onnx",
                                                baseDirectory: nil)
        #expect(back.metadata["ir_version"] == expected)
        #expect(back.nodes == g.nodes)
    }

    @Test func largeInitializerRoundTripsBitExactly() throws {
        let n = 1 << 20
        let values = (0..<n).map { Float(bitPattern: UInt32(truncatingIfNeeded: $0 &* 2_654_435_761) & 0x7F7F_FFFF) }
        var g = Graph(name: "big", opsets: ["": 17],
                      inputs: [ValueInfo(name: "x", type: TensorType(.f32, known: [n]))],
                      outputs: [ValueInfo(name: "y", type: TensorType(.f32, known: [n]))],
                      nodes: [Node(name: "add", op: .add, inputs: ["x", "w"], outputs: ["y"])])
        g.setInitializer("w", Tensor(shape: [n], floats: values))
        let back = try ONNXImporter.importModel(bytes: try ONNXExporter.serialize(g), path: "big.onnx",
                                                baseDirectory: nil)
        #expect(back.initializers["w"] == g.initializers["w"])
    }
}
