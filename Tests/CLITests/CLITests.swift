import BitSwitchData
import Foundation
import Testing

/// End-to-end tests of the `bitswitch` executable as a user runs it: exit codes, messages, files written.
struct CLI {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let onnxFixtures = packageRoot.appendingPathComponent("Tests/BitSwitchONNXTests/Fixtures")
    static let fixtures = packageRoot.appendingPathComponent("Tests/CLITests/Fixtures")
    static let digits = packageRoot.appendingPathComponent("examples/digits")

    /// The executable SwiftPM built beside this test bundle.
    static var binary: URL? {
        var dirs: [URL] = []
        if let env = ProcessInfo.processInfo.environment["BITSWITCH_BIN"] { return URL(fileURLWithPath: env) }
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        dirs.append(exe.deletingLastPathComponent())
        dirs.append(exe.deletingLastPathComponent().deletingLastPathComponent())
        dirs.append(Bundle.main.bundleURL)
        dirs.append(Bundle.main.bundleURL.deletingLastPathComponent())
        dirs.append(packageRoot.appendingPathComponent(".build/debug"))
        return dirs.map { $0.appendingPathComponent("bitswitch") }
            .first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }

    struct Result { var status: Int32; var stdout: String; var stderr: String }

    static func run(_ args: [String]) throws -> Result {
        let bin = try #require(binary, "the bitswitch executable was not built")
        // Files, not pipes: a child that fills one pipe while we drain the other would deadlock.
        let dir = try tempDir()
        let outURL = dir.appendingPathComponent("stdout"), errURL = dir.appendingPathComponent("stderr")
        FileManager.default.createFile(atPath: outURL.path, contents: nil)
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let p = Process()
        p.executableURL = bin
        p.arguments = args
        p.standardOutput = try FileHandle(forWritingTo: outURL)
        p.standardError = try FileHandle(forWritingTo: errURL)
        try p.run()
        p.waitUntilExit()
        let r = Result(status: p.terminationStatus, stdout: try String(contentsOf: outURL, encoding: .utf8),
                       stderr: try String(contentsOf: errURL, encoding: .utf8))
        try? FileManager.default.removeItem(at: dir)
        return r
    }

    static func tempDir() throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("bitswitch-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }
}

@Suite struct ImportCommandTests {
    @Test func summarisesTheDigitsModel() throws {
        let r = try CLI.run(["import", CLI.digits.appendingPathComponent("model.onnx").path])
        #expect(r.status == 0)
        #expect(r.stdout.contains("x: f32[N,1,8,8]"))
        #expect(r.stdout.contains("logits: f32[N,10]"))
        #expect(r.stdout.contains("Conv                   3"))
        #expect(r.stdout.contains("parameters: 14618"))
        #expect(r.stdout.contains("MACs:"))
    }

    @Test(arguments: [
        ("truncated.onnx", ["truncated.onnx", "not a valid ONNX protobuf"]),
        ("text.onnx", ["text.onnx", "not a valid ONNX protobuf"]),
        ("unsupported_op.onnx", ["unsupported_op.onnx", "op LSTM", "unsupported operator"]),
        ("missing_input.onnx", ["missing_input.onnx", "missing initializer or input"]),
        ("cycle.onnx", ["cycle.onnx", "cycle"]),
        ("overflow_dims.onnx", ["overflow_dims.onnx", "overflow"]),
        ("short_raw.onnx", ["short_raw.onnx"]),
    ])
    func badModelsExitOneWithALocatedMessage(file: String, mentions: [String]) throws {
        let r = try CLI.run(["import", CLI.onnxFixtures.appendingPathComponent(file).path])
        #expect(r.status == 1)
        #expect(r.stderr.hasPrefix("error: "))
        for m in mentions { #expect(r.stderr.contains(m), "stderr: \(r.stderr)") }
    }

    @Test func missingFile() throws {
        let r = try CLI.run(["import", "/nonexistent/model.onnx"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("/nonexistent/model.onnx"))
    }
}

@Suite struct RunCommandTests {
    let model = CLI.digits.appendingPathComponent("model.onnx").path
    let input = CLI.digits.appendingPathComponent("sample/input.npy").path
    let expected = CLI.digits.appendingPathComponent("sample/expected_logits.npy").path

    @Test func writesOutputsThatMatchOnnxRuntime() throws {
        let dir = try CLI.tempDir()
        let r = try CLI.run(["run", model, "--input", "x=\(input)", "--output-dir", dir.path, "--check", expected])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("OK"))
        let logits = try NPYArray.read(path: dir.appendingPathComponent("logits.npy").path)
        #expect(logits.shape == [8, 10])
    }

    @Test func checkFailsWhenOutputsDiffer() throws {
        let dir = try CLI.tempDir()
        let wrong = dir.appendingPathComponent("wrong.npy").path
        try NPYArray(shape: [8, 10], data: .float32(.init(repeating: 0, count: 80))).write(to: wrong)
        let r = try CLI.run(["run", model, "--input", input, "--check", "logits=\(wrong)"])
        #expect(r.status == 1)
        #expect(r.stdout.contains("MISMATCH"))
    }

    @Test func wrongInputShapeIsAnError() throws {
        let dir = try CLI.tempDir()
        let bad = dir.appendingPathComponent("bad.npy").path
        try NPYArray(shape: [2, 1, 7, 8], data: .float32(.init(repeating: 0, count: 112))).write(to: bad)
        let r = try CLI.run(["run", model, "--input", bad])
        #expect(r.status == 1)
        #expect(r.stderr.contains("model.onnx"))
        #expect(r.stderr.contains("'x'"))
        #expect(r.stderr.contains("[N,1,8,8]") || r.stderr.contains("[N, 1, 8, 8]"), "\(r.stderr)")
    }

    @Test func wrongInputDTypeIsAnError() throws {
        let dir = try CLI.tempDir()
        let bad = dir.appendingPathComponent("bad.npy").path
        try NPYArray(shape: [1, 1, 8, 8], data: .int64(.init(repeating: 0, count: 64))).write(to: bad)
        let r = try CLI.run(["run", model, "--input", bad])
        #expect(r.status == 1)
        #expect(r.stderr.contains("'x'"))
        #expect(r.stderr.contains("i64") || r.stderr.contains("int64"), "\(r.stderr)")
    }

    @Test func missingInputFileIsAnError() throws {
        let r = try CLI.run(["run", model, "--input", "/nonexistent/in.npy"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("/nonexistent/in.npy"))
    }

    @Test func unknownInputNameIsAnError() throws {
        let r = try CLI.run(["run", CLI.fixtures.appendingPathComponent("awkward_names.onnx").path,
                             "--input", "nope=\(input)", "--input", "x=\(input)"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("nope"))
    }

    @Test func outputNamesBecomeSafeFileNames() throws {
        let dir = try CLI.tempDir()
        let x = dir.appendingPathComponent("x.npy").path
        try NPYArray(shape: [2, 3], data: .float32([-1, 0, 1, 2, -3, 4])).write(to: x)
        let out = dir.appendingPathComponent("out")
        let r = try CLI.run(["run", CLI.fixtures.appendingPathComponent("awkward_names.onnx").path,
                             "--input", x, "--output-dir", out.path])
        #expect(r.status == 0, "\(r.stderr)")
        let files = try FileManager.default.contentsOfDirectory(atPath: out.path).sorted()
        #expect(files == [".._escape.npy", "out_relu_0.npy"])
        let relu = try NPYArray.read(path: out.appendingPathComponent("out_relu_0.npy").path)
        #expect(relu.floats == [0, 0, 1, 2, 0, 4])
        // Nothing escaped the output directory.
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("escape.npy").path))
    }
}

@Suite struct OptCommandTests {
    let model = CLI.digits.appendingPathComponent("model.onnx").path

    @Test func cleanupPipelineKeepsOutputs() throws {
        let dir = try CLI.tempDir()
        let out = dir.appendingPathComponent("clean.onnx").path
        let r = try CLI.run(["opt", model, "--pipeline", CLI.packageRoot.appendingPathComponent("passes/cleanup.yaml").path,
                             "-o", out])
        #expect(r.status == 0, "\(r.stderr)")
        let summary = try CLI.run(["import", out])
        #expect(!summary.stdout.contains("BatchNormalization"))
        let check = try CLI.run(["run", out, "--input", CLI.digits.appendingPathComponent("sample/input.npy").path,
                                 "--check", CLI.digits.appendingPathComponent("sample/expected_logits.npy").path])
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
    }

    @Test func irTextOutputParsesBack() throws {
        let dir = try CLI.tempDir()
        let out = dir.appendingPathComponent("m.bsir").path
        let r = try CLI.run(["opt", model, "--pipeline", "canonicalize,infer-shapes", "-o", out, "--print-ir-after-all"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("# IR after canonicalize"))
        let printed = try CLI.run(["print-ir", out, "--full-constants"])
        #expect(printed.status == 0)
        #expect(printed.stdout == (try String(contentsOfFile: out, encoding: .utf8)))
    }

    @Test func unknownPassIsAnError() throws {
        let r = try CLI.run(["opt", model, "--pipeline", "canonicalise", "-o", "/tmp/never.onnx"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("canonicalise"))
        #expect(r.stderr.contains("canonicalize"))
        #expect(!FileManager.default.fileExists(atPath: "/tmp/never.onnx"))
    }

    @Test func passesListsOptions() throws {
        let r = try CLI.run(["passes"])
        #expect(r.status == 0)
        for p in ["canonicalize", "fold-constants", "infer-shapes", "fold-batchnorm", "max-elements="] {
            #expect(r.stdout.contains(p))
        }
    }
}

@Suite struct MultiPrecisionCommandTests {
    /// One short joint run, as a user would start: float model in, stored INT8 model out, then eval and run at
    /// chosen bit-widths.
    @Test func trainEvalAndRunAtEveryBitWidth() throws {
        let dir = try CLI.tempDir()
        let stored = dir.appendingPathComponent("int8.onnx").path
        let t = try CLI.run(["train", CLI.digits.appendingPathComponent("model.onnx").path,
                             "--data", CLI.digits.path, "-o", stored, "--bits", "8,2", "--epochs", "1",
                             "--threads", "1", "--quiet"])
        #expect(t.status == 0, "\(t.stderr)")
        #expect(t.stdout.contains("bits   top-1"))

        let e = try CLI.run(["eval", stored, "--data", CLI.digits.path, "--bits", "all"])
        #expect(e.status == 0, "\(e.stderr)")
        let rows = e.stdout.split(separator: "\n").filter { $0.hasPrefix("   8 ") || $0.hasPrefix("   2 ") }
        #expect(rows.count == 2, "\(e.stdout)")

        let input = CLI.digits.appendingPathComponent("sample/input.npy").path
        var logits: [Int: [Float]] = [:]
        for b in [8, 2] {
            let out = dir.appendingPathComponent("b\(b)")
            let r = try CLI.run(["run", stored, "--input", input, "--output-dir", out.path, "--bits", "\(b)"])
            #expect(r.status == 0, "\(r.stderr)")
            logits[b] = try NPYArray.read(path: out.appendingPathComponent("logits.npy").path).floats
        }
        #expect(logits[8] != logits[2], "2-bit weights are shifts of the 8-bit ones, so the logits must differ")

        let bad = try CLI.run(["run", stored, "--input", input, "--bits", "5"])
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("int8.onnx") && bad.stderr.contains("FakeQuant"))
        #expect(bad.stderr.contains("5 is not one of the trained bit-widths"))
    }
}

@Suite struct ResumeTests {
    /// An interrupted run resumed from its checkpoint writes the same bytes as an uninterrupted one,
    /// for float training and for joint multi-precision training.
    @Test(arguments: [[String](), ["--bits", "8,2"]])
    func resumedRunWritesTheSameModel(extra: [String]) throws {
        let dir = try CLI.tempDir()
        let model = CLI.digits.appendingPathComponent("model.onnx").path
        let common = ["--data", CLI.digits.path, "--epochs", "2", "--threads", "1", "--quiet"] + extra
        let full = dir.appendingPathComponent("full.onnx").path, part = dir.appendingPathComponent("part.onnx").path
        #expect(try CLI.run(["train", model, "-o", full] + common).status == 0)
        #expect(try CLI.run(["train", model, "-o", part, "--stop-after-epoch", "1"] + common).status == 0)
        let r = try CLI.run(["train", model, "-o", part, "--resume"] + common)
        #expect(r.status == 0, "\(r.stderr)")
        let a = try Data(contentsOf: URL(fileURLWithPath: full)), b = try Data(contentsOf: URL(fileURLWithPath: part))
        #expect(a == b)
    }

    @Test func resumeWithoutCheckpointIsAnError() throws {
        let dir = try CLI.tempDir()
        let r = try CLI.run(["train", CLI.digits.appendingPathComponent("model.onnx").path, "--data", CLI.digits.path,
                             "-o", dir.appendingPathComponent("m.onnx").path, "--epochs", "1", "--resume"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("no checkpoint to resume from"))
    }
}
