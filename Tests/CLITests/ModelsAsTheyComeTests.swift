import Foundation
import Testing

/// Models as exporters and model zoos write them (issue 7, part 8): a fixed batch of 1 baked into Reshape targets,
/// a MatMul weight behind a Reshape or Transpose of a constant. Fixtures: scripts/make-zoo-fixtures.py.
@Suite struct ModelsAsTheyComeTests {
    static func fixture(_ name: String) -> String { CLI.fixtures.appendingPathComponent(name).path }
    static let data = CLI.digits.appendingPathComponent("data").path

    @Test func evalBatchesAFixedBatchZooModel() throws {
        let r = try CLI.run(["eval", Self.fixture("zoo_mnist_batch1.onnx"), "--data", Self.data])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("Reshape 'Times212_reshape0' target [1, 16] -> [0, 16]"))
        #expect(r.stdout.contains("top-1") && r.stdout.contains("/360)"))
    }

    @Test func quantizesTheMatMulBehindAReshapeAndCalibratesAndTrains() throws {
        let dir = try CLI.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let ptq = try CLI.run(["train", Self.fixture("zoo_mnist_batch1.onnx"), "--data", Self.data, "-o",
                               dir.appendingPathComponent("p.onnx").path, "--bits", "8,4", "--ptq"])
        #expect(ptq.status == 0, "\(ptq.stderr)")
        // The Reshape of the constant weight is folded, so the MatMul gets its weight quantizer.
        #expect(ptq.stderr.contains("MatMul 'Times212' pinned at 8 bits"))
        #expect(ptq.stdout.contains("   4 "))
        let out = dir.appendingPathComponent("q.onnx").path
        let qat = try CLI.run(["train", Self.fixture("torch_batch1.onnx"), "--data", Self.data, "-o", out,
                               "--bits", "8,4", "--epochs", "1", "--quiet"])
        #expect(qat.status == 0, "\(qat.stderr)")
        // The written model takes batches: eval reads it without any rewrite.
        let e = try CLI.run(["eval", out, "--data", Self.data, "--bits", "all"])
        #expect(e.status == 0, "\(e.stderr)")
        #expect(!e.stderr.contains("batch:"))
        #expect(e.stdout.contains("   8 ") && e.stdout.contains("   4 "))
        let ir = try CLI.run(["print-ir", out])
        #expect(ir.stdout.contains("MatMul(%/Reshape_output_0, %/Transpose_output_0.fq)")
                || ir.stdout.contains("Transpose_output_0.fq"), "\(ir.stdout.prefix(2000))")
    }

    @Test func fallsBackToOneSampleAtATimeWhenTheBatchCannotBeRewritten() throws {
        let e = try CLI.run(["eval", Self.fixture("batch_in_concat.onnx"), "--data", Self.data])
        #expect(e.status == 0, "\(e.stderr)")
        #expect(e.stderr.contains("one sample at a time") && e.stderr.contains("Concat 'cat'"))
        #expect(!e.stderr.contains("target [1, 256]"))
        let dir = try CLI.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let t = try CLI.run(["train", Self.fixture("batch_in_concat.onnx"), "--data", Self.data, "-o",
                             dir.appendingPathComponent("t.onnx").path, "--epochs", "1"])
        #expect(t.status == 1)
        #expect(t.stderr.contains("batch_in_concat.onnx") && t.stderr.contains("training needs batches"))
        let p = try CLI.run(["train", Self.fixture("batch_in_concat.onnx"), "--data", Self.data, "-o",
                             dir.appendingPathComponent("p.onnx").path, "--bits", "8", "--ptq",
                             "--calibration-samples", "16"])
        #expect(p.status == 0, "\(p.stderr)")
    }
}
