import BitSwitchIR
import BitSwitchONNX
import Foundation
import Testing

@Suite struct ImportTests {
    @Test func convNetWithBatchNorm() throws {
        let g = try importFixture("conv_bn.onnx")
        #expect(g.opsets == ["": 13])
        #expect(g.name == "conv_bn")
        #expect(g.inputs == [ValueInfo(name: "x", type: TensorType(.f32, known: [1, 3, 8, 8]))])
        #expect(g.outputs == [ValueInfo(name: "y", type: TensorType(.f32, known: [1, 5]))])
        #expect(g.initializerOrder == ["w1", "b1", "g1", "be1", "m1", "v1", "w2", "fc_w", "fc_b"])
        #expect(g.initializers["w1"]?.shape == [4, 3, 3, 3])
        #expect(g.nodes.map(\.op.typeName) == ["Conv", "BatchNormalization", "Relu", "MaxPool", "Conv", "Relu",
                                               "GlobalAveragePool", "Flatten", "Gemm", "Softmax"])
        #expect(g.nodes[0].op == .conv(ConvAttrs(kernelShape: [3, 3], pads: [1, 1, 1, 1])))
        #expect(g.nodes[1].op == .batchNormalization(epsilon: 1e-3, momentum: 0.9, trainingMode: false))
        #expect(g.nodes[4].op == .conv(ConvAttrs(kernelShape: [3, 3], strides: [1, 1], pads: [0, 0, 0, 0],
                                                 dilations: [1, 1], group: 2)))
        #expect(g.nodes[8].op == .gemm(GemmAttrs(transB: true)))
        #expect(g.nodes[9].op == .softmax(axis: -1, legacy: false))
        // The unnamed Relu keeps "" and is labelled by its output.
        #expect(g.nodes[5].name == "")
        #expect(g.nodes[5].label == "r2")
        #expect(g.nodes[0].inputs == ["x", "w1", "b1"])
    }

    @Test func metadataIsKept() throws {
        let g = try importFixture("conv_bn.onnx")
        #expect(g.metadata["producer_name"] == "bitswitch-fixtures")
        #expect(g.metadata["producer_version"] == "1.0")
        #expect(g.metadata["ir_version"] == "7")
        #expect(g.metadata["doc_string"] == "conv+bn fixture")
        #expect(g.metadata["graph.doc_string"] == "a small conv net")
        #expect(g.metadata["meta.author"] == "make-onnx-fixtures.py")
        #expect(g.metadata["meta.purpose"] == "tests")
    }

    @Test func elementTypesFromRawDataAndTypedFields() throws {
        let g = try importFixture("dtypes.onnx")
        #expect(g.opsets == ["": 21])
        func t(_ n: String) throws -> Tensor { try #require(g.initializers[n], "no initializer \(n)") }
        for kind in ["f16", "i8", "u8", "i32", "i64", "bool", "i4", "u4"] {
            #expect(try t("\(kind)_raw") == t("\(kind)_typed"), "\(kind): raw_data and typed field differ")
        }
        #expect(try t("i8_raw") == Tensor(dtype: .i8, shape: [2, 3], storage: .i8([-128, -1, 0, 1, 64, 127])))
        #expect(try t("u8_raw") == Tensor(dtype: .u8, shape: [4], storage: .u8([0, 1, 128, 255])))
        #expect(try t("i32_raw") == Tensor(dtype: .i32, shape: [4], storage: .i32([.min, -7, 0, .max])))
        #expect(try t("i64_raw") == Tensor(dtype: .i64, shape: [5], storage: .i64([.min, -5, 0, 1 << 40, .max])))
        #expect(try t("bool_raw") == Tensor(dtype: .bool, shape: [5], storage: .bool([true, false, true, true, false])))
        #expect(try t("i4_raw") == Tensor(dtype: .i4, shape: [5], storage: .i8([-8, -3, 0, 5, 7])))
        #expect(try t("u4_raw") == Tensor(dtype: .u4, shape: [6], storage: .u8([0, 1, 9, 15, 4, 2])))
        #expect(try t("f32_typed") == Tensor(shape: [3], floats: [1.5, -2.25, 3.0]))
        #expect(try t("scalar_f32") == Tensor(scalar: 0.25))
        #expect(try t("empty_f32") == Tensor(shape: [0, 3], floats: []))

        // float16 widened to Float must equal what onnxruntime returns for the same tensor.
        let f16 = try t("f16_raw")
        #expect(f16.dtype == .f16)
        let reference = try TensorProtoIO.read(path: fixture("dtypes.output_0.pb"))
        #expect(reference.name == "out_f16_raw")
        #expect(reference.tensor == f16)
        #expect(f16.floats.contains { $0 != Float(Float16($0)) } == false)
    }

    @Test func externalDataIsReadBesideTheModel() throws {
        let g = try importFixture("external.onnx")
        let w = try #require(g.initializers["w"])
        let b = try #require(g.initializers["bias"])
        #expect(w.shape == [8, 16] && b.shape == [16])
        // y = x·w + bias must reproduce onnxruntime's output, so the external bytes landed in the right places.
        let x = try TensorProtoIO.read(path: fixture("external.input_0.pb")).tensor.floats
        let y = try TensorProtoIO.read(path: fixture("external.output_0.pb")).tensor.floats
        let wf = w.floats, bf = b.floats
        for r in 0..<2 {
            for c in 0..<16 {
                var s: Float = bf[c]
                for k in 0..<8 { s += x[r * 8 + k] * wf[k * 16 + c] }
                #expect(abs(s - y[r * 16 + c]) < 1e-5)
            }
        }
    }

    @Test func externalDataNeedsTheModelDirectory() throws {
        let bytes = try Array(Data(contentsOf: URL(fileURLWithPath: fixture("external.onnx"))))
        let e = #expect(throws: BitSwitchError.self) {
            _ = try ONNXImporter.importModel(bytes: bytes, path: "in-memory.onnx", baseDirectory: nil)
        }
        expectMentions(try #require(e), ["in-memory.onnx", "tensor 'w'", "directory is unknown"])
        let dir = directoryOfFixtures()
        let g = try ONNXImporter.importModel(bytes: bytes, path: "in-memory.onnx", baseDirectory: dir)
        #expect(g == (try importFixture("external.onnx")))
    }

    private func directoryOfFixtures() -> String {
        (try? fixture("x")).map { URL(fileURLWithPath: $0).deletingLastPathComponent().path } ?? "."
    }

    @Test func symbolicAndUnknownDims() throws {
        let g = try importFixture("symbolic.onnx")
        #expect(g.inputs == [ValueInfo(name: "x", type: TensorType(.f32, [.symbol("N"), .known(4)]))])
        #expect(g.outputs == [ValueInfo(name: "y", type: TensorType(.f32, [.symbol("N"), .unknown]))])
        #expect(g.valueTypes["h"] == TensorType(.f32, [.symbol("N"), .known(3)]))
        #expect(g.valueTypes["h2"] == TensorType(.f32, nil))
        // "w" is listed as a graph input too, but it has an initializer, so it is a constant.
        #expect(g.initializerOrder == ["w", "b"])
    }

    @Test func quantizeDequantizePerTensorAndPerAxis() throws {
        let g = try importFixture("qdq.onnx")
        let byName = Dictionary(uniqueKeysWithValues: g.nodes.map { ($0.name, $0) })
        #expect(byName["q_x"]?.op == .quantizeLinear(axis: 1, saturate: true, outputType: nil))
        #expect(byName["dq_w"]?.op == .dequantizeLinear(axis: 0))
        #expect(byName["dq_w"]?.inputs == ["w_q", "w_scale", "w_zp"])
        #expect(byName["conv"]?.op == .conv(ConvAttrs(kernelShape: [3, 3], autoPad: .sameUpper)))
        #expect(g.initializers["x_scale"] == Tensor(scalar: 0.05))
        #expect(g.initializers["x_zp"] == Tensor(dtype: .i8, shape: [], storage: .i8([3])))
        #expect(g.initializers["y_zp"] == Tensor(dtype: .u8, shape: [], storage: .u8([128])))
        #expect(g.initializers["w_scale"]?.shape == [4])
        #expect(g.initializers["w_q"]?.dtype == .i8)
    }

    @Test func constantNodesBecomeInitializers() throws {
        let g = try importFixture("constant.onnx")
        #expect(g.nodes.map(\.op.typeName) == ["Reshape", "Mul", "Add", "Gather", "Add"])
        #expect(g.initializers["shape"] == Tensor(shape: [2], int64s: [3, 2]))
        #expect(g.initializers["two"] == Tensor(scalar: 2))
        #expect(g.initializers["bias"] == Tensor(shape: [2], floats: [1, -1]))
        #expect(g.initializers["idx"] == Tensor(shape: [], int64s: [1]))
        #expect(g.initializers["t"] == Tensor(shape: [2], floats: [0.5, 0.25]))
        #expect(g.inputs.map(\.name) == ["x"])
    }

    @Test func tensorProtoFilesRoundTrip() throws {
        let input = try TensorProtoIO.read(path: fixture("conv_bn.input_0.pb"))
        #expect(input.name == "x")
        #expect(input.tensor.shape == [1, 3, 8, 8])
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let samples: [(String, Tensor)] = [
            ("x", input.tensor),
            ("half", Tensor(dtype: .f16, shape: [3], storage: .f32([0.5, -2, 65504]))),
            ("nibbles", Tensor(dtype: .i4, shape: [3], storage: .i8([-8, 7, -1]))),
            ("unsigned_nibbles", Tensor(dtype: .u4, shape: [2, 2], storage: .u8([15, 0, 3, 12]))),
            ("flags", Tensor(dtype: .bool, shape: [2], storage: .bool([true, false]))),
            ("", Tensor(shape: [0], int64s: [])),
        ]
        for (name, t) in samples {
            let path = dir + "/t.pb"
            try TensorProtoIO.write(t, name: name, to: path)
            let back = try TensorProtoIO.read(path: path)
            #expect(back.name == name)
            #expect(back.tensor == t)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["t.pb"])
    }

    @Test func bareTensorFileErrorsNameTheFile() throws {
        let e = #expect(throws: BitSwitchError.self) { _ = try TensorProtoIO.read(path: fixture("text.onnx")) }
        expectMentions(try #require(e), ["text.onnx", "not a valid ONNX protobuf"])
    }
}
