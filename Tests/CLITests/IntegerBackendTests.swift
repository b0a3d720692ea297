import Foundation
import Testing

/// The test venv's python (make test creates it), or nil when this machine has none.
private var venvPython: String? {
    let env = ProcessInfo.processInfo.environment["BITSWITCH_VENV"]
    let path = (env ?? CLI.packageRoot.appendingPathComponent(".venv").path) + "/bin/python"
    return FileManager.default.isExecutableFile(atPath: path) ? path : nil
}

private func python(_ args: [String]) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: try #require(venvPython))
    p.arguments = args
    let out = Pipe()
    p.standardOutput = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    #expect(p.terminationStatus == 0, "python \(args.first ?? "") failed")
    return String(decoding: data, as: UTF8.self)
}

/// A digits model trained for 3 epochs, and its multi-precision {8,6,4,2} PTQ version; made once per test run.
private let trainedDigits: (fp32: String, multi: String)? = {
    guard let dir = try? CLI.tempDir() else { return nil }
    let fp32 = dir.appendingPathComponent("fp32.onnx").path, multi = dir.appendingPathComponent("multi.onnx").path
    guard let t = try? CLI.run(["train", CLI.digits.appendingPathComponent("model.onnx").path, "--data", CLI.digits.path,
                                "-o", fp32, "--epochs", "3"]), t.status == 0,
          let q = try? CLI.run(["train", fp32, "--data", CLI.digits.path, "--bits", "8,6,4,2", "--ptq", "-o", multi]),
          q.status == 0 else { return nil }
    return (fp32, multi)
}()

@Suite(.enabled(if: venvPython != nil, "needs the test venv (make test creates it)"))
struct QDQModelTests {
    /// `export --format qdq` writes standard QDQ ONNX that onnxruntime runs with the top-1 of our own integer
    /// backend and fake-quant evaluation (within 0.2 pt: one digits test image is 0.28 pt, so: equal or one image);
    /// at 4 and 2 bits the weights are int4 DequantizeLinear at opset 21 (onnxruntime 1.32 runs them).
    @Test(arguments: [8, 4, 2]) func exportedQDQRunsInOnnxruntime(bits: Int) throws {
        let models = try #require(trainedDigits, "training the digits fixture failed")
        let dir = try CLI.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let qdq = dir.appendingPathComponent("qdq.onnx").path
        let e = try CLI.run(["export", models.multi, "--format", "qdq", "--bits", "\(bits)", "-o", qdq])
        #expect(e.status == 0, "\(e.stderr)")
        let out = dir.appendingPathComponent("out").path
        let xTest = CLI.digits.appendingPathComponent("data/x_test.npy").path
        let r = try CLI.run(["run", models.multi, "--bits", "\(bits)", "--input", xTest, "--output-dir", out])
        #expect(r.status == 0, "\(r.stderr)")
        let report = try python(["-c", """
            import numpy as np, onnxruntime as ort, sys
            x = np.load(sys.argv[1]); y = np.load(sys.argv[2]); ours = np.load(sys.argv[4])
            theirs = ort.InferenceSession(sys.argv[3], providers=['CPUExecutionProvider']).run(None, {'x': x})[0]
            import onnx
            m = onnx.load(sys.argv[3]); int4 = sum(t.data_type == onnx.TensorProto.INT4 for t in m.graph.initializer)
            # At 4 bits and below the weights are int4 (opset 21); at 8 bits int8 (opset 13+).
            form = (m.opset_import[0].version >= 21 and int4 > 0) if int(sys.argv[5]) <= 4 else int4 == 0
            print(int(abs((theirs.argmax(1) == y).sum() - (ours.argmax(1) == y).sum()) <= 1), int(form))
            """, xTest, CLI.digits.appendingPathComponent("data/y_test.npy").path, qdq, out + "/logits.npy", "\(bits)"])
        #expect(report.trimmingCharacters(in: .whitespacesAndNewlines) == "1 1", "top-1 within one image, int4 at ≤ 4 bits: \(report)")
    }

    /// A briefly trained digits model quantized by onnxruntime's quantize_static (QDQ, per-channel int8 weights,
    /// uint8 or int8 activations) lowers to integer ops whose outputs are within one quantization step of
    /// onnxruntime's QDQ semantics (its unfused reference execution) on every element of the digits test set, with
    /// the same top-1 on every sample.
    @Test(arguments: ["uint8", "int8"]) func onnxruntimeQuantizedModelRunsOnTheIntegerBackend(activation: String) throws {
        let dir = try CLI.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fp32 = try #require(trainedDigits, "training the digits fixture failed").fp32
        let model = dir.appendingPathComponent("qdq.onnx").path
        _ = try python([CLI.packageRoot.appendingPathComponent("scripts/make-qdq-model.py").path, fp32, CLI.digits.path,
                        model, "--activation", activation])
        let xTest = CLI.digits.appendingPathComponent("data/x_test.npy").path
        let out = dir.appendingPathComponent("out").path
        let r = try CLI.run(["run", model, "--input", xTest, "--backend", "int", "--output-dir", out])
        #expect(r.status == 0, "\(r.stderr)")
        let report = try python(["-c", """
            import numpy as np, onnxruntime as ort, sys
            x = np.load(sys.argv[1]); ours = np.load(sys.argv[3])
            def run(level):
                so = ort.SessionOptions(); so.graph_optimization_level = level
                return ort.InferenceSession(sys.argv[2], so, providers=['CPUExecutionProvider']).run(None, {'x': x})[0]
            import onnx
            ref = run(ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
            m = onnx.load(sys.argv[2])
            qs = [n for n in m.graph.node if n.op_type == 'QuantizeLinear' and n.output[0] in
                  {d.input[0] for d in m.graph.node if d.op_type == 'DequantizeLinear' and d.output[0] == m.graph.output[0].name}]
            step = [onnx.numpy_helper.to_array(i) for i in m.graph.initializer if i.name == qs[0].input[1]][0]
            within = np.abs(ref - ours).max() <= 1.0001 * step
            print(int(within), int((ref.argmax(1) == ours.argmax(1)).all()))
            """, xTest, model, out + "/logits.npy"])
        #expect(report.trimmingCharacters(in: .whitespacesAndNewlines) == "1 1", "within-one-step, top-1-equal: \(report)")
    }
}

@Suite(.enabled(if: venvPython != nil, "needs the test venv (make test creates it)"))
struct CompiledMultiPrecisionTests {
    /// The generated C equals the integer interpreter bit for bit on a real multi-precision model at every
    /// trained bit-width, and a per-layer profile.
    @Test func generatedCEqualsTheInterpreterAtEveryProfile() throws {
        let models = try #require(trainedDigits, "training the digits fixture failed")
        let dir = try CLI.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let x = CLI.digits.appendingPathComponent("sample/input.npy").path
        let profile = dir.appendingPathComponent("mixed.json")
        try #"{"default": 4, "bits": {"conv1": {"w": 2, "a": 2}}}"#.write(to: profile, atomically: true, encoding: .utf8)
        for choice in [["--bits", "8"], ["--bits", "6"], ["--bits", "4"], ["--bits", "2"], ["--profile", profile.path]] {
            var outs: [Data] = []
            for backend in ["int", "c"] {
                let out = dir.appendingPathComponent("\(backend)\(choice[1].count)").path
                let r = try CLI.run(["run", models.multi, "--input", x, "--output-dir", out, "--backend", backend] + choice)
                #expect(r.status == 0, "\(choice) \(backend): \(r.stderr)")
                outs.append(try Data(contentsOf: URL(fileURLWithPath: out + "/logits.npy")))
            }
            #expect(outs[0] == outs[1], "C and interpreter differ at \(choice)")
        }
        // A profile naming a layer the model does not have is an error naming it.
        try #"{"bits": {"nope": {"w": 4, "a": 4}}}"#.write(to: profile, atomically: true, encoding: .utf8)
        let bad = try CLI.run(["run", models.multi, "--input", x, "--backend", "c", "--profile", profile.path])
        #expect(bad.status == 1 && bad.stderr.contains("'nope' is not a quantized layer"), "\(bad.stderr)")
    }

    /// `emit` on a model with no quantizers says what to run first.
    @Test func emittingAFloatModelSaysWhatToRunFirst() throws {
        let dir = try CLI.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try CLI.run(["emit", CLI.digits.appendingPathComponent("model.onnx").path, "-o", dir.appendingPathComponent("b").path])
        #expect(r.status == 1 && r.stderr.contains("no quantizers") && r.stderr.contains("train --bits"), "\(r.stderr)")
    }
}
