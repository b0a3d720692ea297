import BitSwitchData
import Foundation
import Testing

/// Bad datasets stop `train` and `eval` before any step with exit 1 and a message naming the file and the problem.
@Suite struct BadDatasetTests {
    static let model = CLI.digits.appendingPathComponent("model.onnx").path

    /// A small valid NPY dataset for the digits model ([N, 1, 8, 8] samples, 10 classes), then `change` breaks it.
    private func dataset(_ change: (String) throws -> Void) throws -> String {
        let dir = try CLI.tempDir().path
        func x(_ n: Int) -> NPYArray { NPYArray(shape: [n, 1, 8, 8], data: .float32((0..<(n * 64)).map { Float($0 % 17) / 17 })) }
        try x(6).write(to: dir + "/x_train.npy")
        try NPYArray(shape: [6], data: .int64([0, 1, 2, 3, 4, 9])).write(to: dir + "/y_train.npy")
        try x(3).write(to: dir + "/x_test.npy")
        try NPYArray(shape: [3], data: .int64([5, 6, 7])).write(to: dir + "/y_test.npy")
        try change(dir)
        return dir
    }

    private func expectRefused(_ dir: String, file: String, _ parts: [String], command: String = "eval",
                               sourceLocation: SourceLocation = #_sourceLocation) throws {
        let args = command == "eval"
            ? ["eval", Self.model, "--data", dir]
            : ["train", Self.model, "--data", dir, "-o", dir + "/out.onnx", "--epochs", "1", "--threads", "1", "--quiet"]
        let r = try CLI.run(args)
        #expect(r.status == 1, "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.contains(dir + "/" + file), "file missing from: \(r.stderr)", sourceLocation: sourceLocation)
        for p in parts {
            #expect(r.stderr.contains(p), "'\(p)' missing from: \(r.stderr)", sourceLocation: sourceLocation)
        }
        #expect(!FileManager.default.fileExists(atPath: dir + "/out.onnx"), sourceLocation: sourceLocation)
        try? FileManager.default.removeItem(atPath: dir)
    }

    @Test func theValidDatasetWorks() throws {
        let dir = try dataset { _ in }
        let r = try CLI.run(["eval", Self.model, "--data", dir])
        #expect(r.status == 0, "\(r.stderr)")
        try? FileManager.default.removeItem(atPath: dir)
    }

    @Test func sampleAndLabelCountsDiffer() throws {
        let dir = try dataset { try NPYArray(shape: [5], data: .int64([0, 1, 2, 3, 4])).write(to: $0 + "/y_train.npy") }
        try expectRefused(dir, file: "y_train.npy", ["does not match 6 samples"], command: "train")
    }

    @Test func labelOutsideTheModelsClasses() throws {
        let dir = try dataset { try NPYArray(shape: [3], data: .int64([5, 10, 7])).write(to: $0 + "/y_test.npy") }
        try expectRefused(dir, file: "y_test.npy", ["label 10 at index 1", "outside the model's 10 classes"])
    }

    @Test func negativeLabel() throws {
        let dir = try dataset { try NPYArray(shape: [3], data: .int64([5, -3, 7])).write(to: $0 + "/y_test.npy") }
        try expectRefused(dir, file: "y_test.npy", ["label -3 at index 1 is out of range"])
    }

    @Test func floatLabels() throws {
        let dir = try dataset { try NPYArray(shape: [3], data: .float32([5, 6, 7])).write(to: $0 + "/y_test.npy") }
        try expectRefused(dir, file: "y_test.npy", ["labels are floating-point", "integer class indices"])
    }

    @Test func nanInTheInputs() throws {
        let dir = try dataset {
            var v = [Float](repeating: 0.5, count: 6 * 64); v[70] = .nan
            try NPYArray(shape: [6, 1, 8, 8], data: .float32(v)).write(to: $0 + "/x_train.npy")
        }
        try expectRefused(dir, file: "x_train.npy", ["element 70 is not finite"], command: "train")
    }

    @Test func wrongRankForTheModel() throws {
        let dir = try dataset {
            try NPYArray(shape: [6, 64], data: .float32(Array(repeating: 0, count: 6 * 64))).write(to: $0 + "/x_train.npy")
            try NPYArray(shape: [3, 64], data: .float32(Array(repeating: 0, count: 3 * 64))).write(to: $0 + "/x_test.npy")
        }
        try expectRefused(dir, file: "x_train.npy", ["samples have shape [64]", "model's input"], command: "train")
    }

    @Test func emptySplit() throws {
        let dir = try dataset {
            try NPYArray(shape: [0, 1, 8, 8], data: .float32([])).write(to: $0 + "/x_test.npy")
            try NPYArray(shape: [0], data: .int64([])).write(to: $0 + "/y_test.npy")
        }
        try expectRefused(dir, file: "x_test.npy", ["the split is empty"])
    }

    @Test func truncatedNPY() throws {
        let dir = try dataset { dir in
            let p = dir + "/x_test.npy"
            let d = try Data(contentsOf: URL(fileURLWithPath: p))
            try d.prefix(d.count - 10).write(to: URL(fileURLWithPath: p))
        }
        try expectRefused(dir, file: "x_test.npy", ["truncated"])
    }

    @Test func unreadableNPY() throws {
        let dir = try dataset { dir in
            try FileManager.default.removeItem(atPath: dir + "/y_test.npy")
            try FileManager.default.createDirectory(atPath: dir + "/y_test.npy", withIntermediateDirectories: false)
        }
        try expectRefused(dir, file: "y_test.npy", ["is a directory"])
    }

    @Test func truncatedIDX() throws {
        let dir = try CLI.tempDir().path
        let images = NPYArray(shape: [4, 28, 28], data: .uint8(Array(repeating: 3, count: 4 * 784)))
        let labels = NPYArray(shape: [4], data: .uint8([0, 1, 2, 3]))
        try IDX.write(images, to: dir + "/train-images-idx3-ubyte")
        try IDX.write(labels, to: dir + "/train-labels-idx1-ubyte")
        try IDX.write(images, to: dir + "/t10k-images-idx3-ubyte")
        try IDX.write(labels, to: dir + "/t10k-labels-idx1-ubyte")
        let p = dir + "/train-images-idx3-ubyte"
        let d = try Data(contentsOf: URL(fileURLWithPath: p))
        try d.prefix(d.count - 100).write(to: URL(fileURLWithPath: p))
        try expectRefused(dir, file: "train-images-idx3-ubyte", ["truncated"])
    }

    @Test func truncatedCIFAR() throws {
        let dir = try CLI.tempDir().path
        let record = [UInt8](repeating: 1, count: 1 + 3 * 32 * 32)
        try Data(record + record).write(to: URL(fileURLWithPath: dir + "/data_batch_1.bin"))
        try Data(record + record.prefix(100)).write(to: URL(fileURLWithPath: dir + "/test_batch.bin"))
        try expectRefused(dir, file: "test_batch.bin", ["not a multiple of the CIFAR-10 record size"])
    }
}

/// The memory check before allocating counts the activations the run will hold, not only the constants: a small
/// --max-memory makes run, eval and train stop with exit 1 and a message giving the bytes needed.
@Suite struct MemoryLimitTests {
    static let model = CLI.digits.appendingPathComponent("model.onnx").path
    static let input = CLI.digits.appendingPathComponent("sample/input.npy").path
    /// Above the digits model's 58,472 bytes of constants (so the import passes), below what any run needs.
    static let limit = "100000"

    func expectRefused(_ args: [String], _ doing: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let r = try CLI.run(args + ["--max-memory", Self.limit])
        #expect(r.status == 1, "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.contains(Self.model) && r.stderr.contains(doing) && r.stderr.contains("needs an estimated ")
                && r.stderr.contains("bytes of activations") && r.stderr.contains("--max-memory limit of 100000 bytes"),
                "\(r.stderr)", sourceLocation: sourceLocation)
        // The number given is the sum of the parts it lists.
        let needed = r.stderr.components(separatedBy: "needs an estimated ").last?.split(separator: " ").first.flatMap { Int($0) }
        #expect((needed ?? 0) > 100000, "\(r.stderr)", sourceLocation: sourceLocation)
    }

    @Test func runEvalAndTrainRefuseWhatDoesNotFit() throws {
        let dir = try CLI.tempDir().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try expectRefused(["run", Self.model, "--input", Self.input], "running the model")
        try expectRefused(["eval", Self.model, "--data", CLI.digits.path], "evaluating the model at batch 256")
        try expectRefused(["train", Self.model, "--data", CLI.digits.path, "-o", dir + "/m.onnx", "--epochs", "1",
                           "--threads", "1", "--quiet"], "training the model at batch 128")
        #expect(!FileManager.default.fileExists(atPath: dir + "/m.onnx"))
        // Training holds more than inference at the same batch (every activation and its gradient).
        let t = try CLI.run(["train", Self.model, "--data", CLI.digits.path, "-o", dir + "/m.onnx", "--batch", "16",
                             "--epochs", "1", "--quiet", "--max-memory", "400000"])
        #expect(t.status == 1 && t.stderr.contains("training the model at batch 16"), "\(t.stderr)")
        #expect(t.stderr.contains("parameter gradients and optimizer state"), "\(t.stderr)")
    }

    @Test func theEstimateFollowsTheBatch() throws {
        // 16 samples at a time fit where 256 did not.
        let r = try CLI.run(["eval", Self.model, "--data", CLI.digits.path, "--batch", "16", "--max-memory", "400000"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("top-1"))
    }
}
