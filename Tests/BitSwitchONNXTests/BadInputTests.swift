@testable import BitSwitchONNX
import BitSwitchIR
import Foundation
import Testing

/// Every bad file must throw a BitSwitchError that says which file, node and op, never crash.
@Suite struct BadInputTests {
    @Test func truncatedFile() throws {
        let e = try importError("truncated.onnx")
        #expect(e.kind == .parse)
        expectMentions(e, ["truncated.onnx", "not a valid ONNX protobuf (truncated or not protobuf)"])
    }

    @Test func textFile() throws {
        let e = try importError("text.onnx")
        #expect(e.kind == .parse)
        expectMentions(e, ["text.onnx", "not a valid ONNX protobuf"])
    }

    @Test func emptyFile() throws {
        let e = #expect(throws: BitSwitchError.self) {
            _ = try ONNXImporter.importModel(bytes: [], path: "empty.onnx", baseDirectory: nil)
        }
        expectMentions(try #require(e), ["empty.onnx", "the file is empty"])
    }

    @Test func directoryInsteadOfFile() throws {
        let dir = try fixture("")
        let e = #expect(throws: BitSwitchError.self) { _ = try ONNXImporter.importModel(path: dir) }
        #expect(e?.kind == .io)
        expectMentions(try #require(e), ["Fixtures", "not a regular file"])
    }

    @Test func oversizedFileMessageSuggestsExternalData() {
        let e = ONNXImporter.unparsable(byteCount: 3 << 30, file: "big.onnx")
        expectMentions(e, ["big.onnx", "2 GiB", "external data"])
        #expect(!ONNXImporter.unparsable(byteCount: 100, file: "small.onnx").description.contains("2 GiB"))
    }

    @Test func missingFile() throws {
        let path = try fixture("does-not-exist.onnx")
        let e = #expect(throws: BitSwitchError.self) { _ = try ONNXImporter.importModel(path: path) }
        #expect(e?.kind == .io)
        expectMentions(try #require(e), ["does-not-exist.onnx", "No such file"])
    }

    @Test func unsupportedOp() throws {
        let e = try importError("unsupported_op.onnx")
        #expect(e.kind == .unsupported)
        #expect(e.opset == 13)
        expectMentions(e, ["unsupported_op.onnx", "node 'lstm_node'", "op LSTM", "opset 13", "unsupported operator"])
    }

    @Test func missingInput() throws {
        let e = try importError("missing_input.onnx")
        expectMentions(e, ["missing_input.onnx", "node 'add_missing'", "op Add", "'w_missing'",
                           "missing initializer or input"])
    }

    @Test func cycle() throws {
        let e = try importError("cycle.onnx")
        expectMentions(e, ["cycle.onnx", "cycle"])
        #expect(["cyc_add", "cyc_relu1", "cyc_relu2"].contains(e.node ?? ""), "node on the cycle: \(e)")
    }

    @Test func duplicateDefinition() throws {
        let e = try importError("duplicate.onnx")
        expectMentions(e, ["duplicate.onnx", "'y'", "defined twice", "relu_a"])
    }

    @Test func dimsWhoseProductOverflows() throws {
        let e = try importError("overflow_dims.onnx")
        expectMentions(e, ["overflow_dims.onnx", "tensor 'w_overflow'", "overflows"])
    }

    @Test func dimsNeedingMoreMemoryThanExists() throws {
        // 2^50 floats: reaching this assertion at all proves nothing was allocated for them.
        let e = try importError("huge_dims.onnx")
        expectMentions(e, ["huge_dims.onnx", "tensor 'w_huge'", "4503599627370496 bytes", "memory available"])
    }

    @Test func negativeDims() throws {
        let e = try importError("negative_dims.onnx")
        expectMentions(e, ["negative_dims.onnx", "tensor 'w_neg'", "negative dimension -2"])
    }

    @Test func rawDataShorterThanDims() throws {
        let e = try importError("short_raw.onnx")
        expectMentions(e, ["short_raw.onnx", "tensor 'w_short'", "raw_data has 10 bytes", "need 16"])
    }

    @Test func typedFieldCountMismatch() throws {
        let e = try importError("typed_mismatch.onnx")
        expectMentions(e, ["typed_mismatch.onnx", "tensor 'w_typed'", "float_data has 3 values", "need 4"])
    }

    @Test func unsupportedElementType() throws {
        let e = try importError("bf16_init.onnx")
        #expect(e.kind == .unsupported)
        expectMentions(e, ["bf16_init.onnx", "tensor 'w_bf16'", "BFLOAT16"])
    }

    @Test func externalDataFileMissing() throws {
        let e = try importError("external_missing.onnx")
        #expect(e.kind == .io)
        expectMentions(e, ["external_missing.onnx", "tensor 'w_ext'", "missing.bin", "No such file"])
    }

    @Test func externalDataFileTooShort() throws {
        let e = try importError("external_short.onnx")
        expectMentions(e, ["external_short.onnx", "tensor 'w_ext'", "external_short.bin", "has 8 bytes",
                           "too short"])
    }

    @Test func externalDataMayNotLeaveTheModelDirectory() throws {
        expectMentions(try importError("external_escape.onnx"), ["external_escape.onnx", "'../outside.bin'",
                                                                 "leaves the model's directory"])
        expectMentions(try importError("external_absolute.onnx"), ["external_absolute.onnx", "'/etc/passwd'",
                                                                   "absolute path"])
    }

    @Test func subgraphAttribute() throws {
        let e = try importError("subgraph_attr.onnx")
        #expect(e.kind == .unsupported)
        expectMentions(e, ["subgraph_attr.onnx", "node 'if_node'", "op If", "_branch' is a graph"])
    }

    @Test func sparseConstant() throws {
        let e = try importError("sparse_constant.onnx")
        #expect(e.kind == .unsupported)
        expectMentions(e, ["sparse_constant.onnx", "node 'sparse_const'", "op Constant", "sparse"])
    }

    @Test func opsetOlderThanSix() throws {
        let e = try importError("opset5.onnx")
        #expect(e.kind == .unsupported)
        expectMentions(e, ["opset5.onnx", "opset 5", "older than 6"])
    }

    @Test func modelWithoutGraph() throws {
        expectMentions(try importError("no_graph.onnx"), ["no_graph.onnx", "no graph"])
    }

    @Test func randomBytesNeverCrash() throws {
        // Flipping bytes of a valid model must give a Graph or a BitSwitchError, never a trap.
        let good = try Array(Data(contentsOf: URL(fileURLWithPath: fixture("conv_bn.onnx"))))
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            var bytes = good
            for _ in 0..<Int.random(in: 1...8, using: &rng) {
                bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            do { _ = try ONNXImporter.importModel(bytes: bytes, path: "fuzz.onnx", baseDirectory: nil) }
            catch let e as BitSwitchError { #expect(e.file == "fuzz.onnx") }
        }
    }
}
