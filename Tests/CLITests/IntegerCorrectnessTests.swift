import BitSwitchData
import Foundation
import Testing

/// Issue 7, parts 8 and 12: the generated C equals the integer interpreter bit for bit on the MNIST-1D model and a
/// CIFAR ResNet-20 (PTQ) at every profile; the C back end's top-1 is within 0.3 pt of fake-quant at every bit-width on
/// the digits and MNIST-1D test sets (models trained here with a short joint QAT); zoo-style models emit and run in C.

/// The test venv's python (make test creates it), or nil when this machine has none.
private var venv: String? {
    let env = ProcessInfo.processInfo.environment["BITSWITCH_VENV"]
    let path = (env ?? CLI.packageRoot.appendingPathComponent(".venv").path) + "/bin/python"
    return FileManager.default.isExecutableFile(atPath: path) ? path : nil
}

private func runPython(_ args: [String]) throws {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: try #require(venv))
    p.arguments = args
    p.standardOutput = FileHandle.nullDevice
    try p.run()
    p.waitUntilExit()
    #expect(p.terminationStatus == 0, "python \(args) failed")
}

/// A float model trained briefly, then jointly QAT-trained at {8,6,4,2} for a few epochs; made once per test run.
private func trainJointQAT(_ example: String, fp32Epochs: Int, qatEpochs: Int) -> String? {
    guard let dir = try? CLI.tempDir() else { return nil }
    let ex = CLI.packageRoot.appendingPathComponent("examples/\(example)")
    let fp32 = dir.appendingPathComponent("fp32.onnx").path, multi = dir.appendingPathComponent("multi.onnx").path
    let data = ex.appendingPathComponent("data").path
    guard let t = try? CLI.run(["train", ex.appendingPathComponent("model.onnx").path, "--data", data, "-o", fp32,
                                "--epochs", "\(fp32Epochs)", "--quiet"]), t.status == 0,
          let q = try? CLI.run(["train", fp32, "--data", data, "--bits", "8,6,4,2", "--epochs", "\(qatEpochs)", "--quiet",
                                "-o", multi]), q.status == 0 else { return nil }
    return multi
}

private let qatDigits: String? = trainJointQAT("digits", fp32Epochs: 5, qatEpochs: 3)
private let qatMNIST1D: String? = trainJointQAT("mnist1d", fp32Epochs: 3, qatEpochs: 1)

/// `eval --bits all` output → top-1 (%) per bit-width.
private func top1(_ stdout: String) -> [Int: Double] {
    var r: [Int: Double] = [:]
    for line in stdout.split(separator: "\n") {
        let f = line.split(separator: " ")
        if f.count >= 2, let b = Int(f[0]), f[1].hasSuffix("%"), let v = Double(f[1].dropLast()) { r[b] = v }
    }
    return r
}

/// Runs `model` on `input` with the interpreter and with the generated C at every choice; the outputs must be
/// byte-identical.
private func expectBitExact(_ model: String, input: String, output: String, choices: [[String]],
                            in dir: URL) throws {
    for choice in choices {
        var outs: [Data] = []
        for backend in ["int", "c"] {
            let out = dir.appendingPathComponent("\(backend)-\(outs.count)-\(UUID().uuidString)").path
            let r = try CLI.run(["run", model, "--input", input, "--output-dir", out, "--backend", backend] + choice)
            #expect(r.status == 0, "\(choice) \(backend): \(r.stderr)")
            outs.append(try Data(contentsOf: URL(fileURLWithPath: out + "/\(output).npy")))
        }
        #expect(outs.count == 2 && outs[0] == outs[1], "C and interpreter differ on \(model) at \(choice)")
    }
}

@Suite(.enabled(if: venv != nil, "needs the test venv (make test creates it)"))
struct IntegerCorrectnessTests {
    /// MNIST-1D CNN after joint QAT: C == interpreter at 8/6/4/2 and a mixed per-layer profile (16 test sequences).
    @Test func generatedCEqualsTheInterpreterOnMNIST1D() throws {
        let model = try #require(qatMNIST1D, "training the MNIST-1D fixture failed")
        let dir = try CLI.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let all = try NPYArray.read(path: CLI.packageRoot.appendingPathComponent("examples/mnist1d/data/x_test.npy").path)
        let x = dir.appendingPathComponent("x.npy").path
        try NPYArray(shape: [16, 1, 40], data: .float32(Array(all.floats.prefix(16 * 40)))).write(to: x)
        let profile = dir.appendingPathComponent("mixed.json")
        try #"{"default": 6, "bits": {"conv1": {"w": 2, "a": 4}, "conv2": {"w": 4, "a": 2}}}"#
            .write(to: profile, atomically: true, encoding: .utf8)
        try expectBitExact(model, input: x, output: "logits",
                           choices: [["--bits", "8"], ["--bits", "6"], ["--bits", "4"], ["--bits", "2"],
                                     ["--profile", profile.path]], in: dir)
    }

    /// CIFAR ResNet-20 topology (bench/train/make_resnet20.py, random weights, residual adds with 1x1 projections),
    /// PTQ at {8,6,4,2} on random data: C == interpreter at every bit-width and a mixed profile (2 inputs).
    @Test func generatedCEqualsTheInterpreterOnResNet20() throws {
        let dir = try CLI.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fp32 = dir.appendingPathComponent("resnet20.onnx").path, data = dir.appendingPathComponent("data").path
        try runPython([CLI.packageRoot.appendingPathComponent("bench/train/make_resnet20.py").path, fp32])
        try runPython([CLI.packageRoot.appendingPathComponent("bench/latency/make_data.py").path, fp32, data,
                       "--train", "16", "--test", "2"])
        let q = dir.appendingPathComponent("q.onnx").path
        let t = try CLI.run(["train", fp32, "--data", data, "-o", q, "--bits", "8,6,4,2", "--ptq",
                             "--calibration-samples", "16"])
        #expect(t.status == 0, "\(t.stderr)")
        let profile = dir.appendingPathComponent("mixed.json")
        try #"{"default": 4, "bits": {"s1.b0.conv1": {"w": 2, "a": 2}, "s1.b0.proj": {"w": 8, "a": 2}, "s2.b2.conv2": {"w": 6, "a": 8}}}"#
            .write(to: profile, atomically: true, encoding: .utf8)
        try expectBitExact(q, input: data + "/x_test.npy", output: "logits",
                           choices: [["--bits", "8"], ["--bits", "6"], ["--bits", "4"], ["--bits", "2"],
                                     ["--profile", profile.path]], in: dir)
    }

    /// The C back end's top-1 on the whole test set is within 0.3 pt of the fake-quant evaluation at every trained
    /// bit-width (digits: 360 images, one image is 0.28 pt; MNIST-1D: 1,000 sequences).
    @Test(arguments: ["digits", "mnist1d"]) func integerTop1IsWithinPointThreeOfFakeQuant(example: String) throws {
        let model = try #require(example == "digits" ? qatDigits : qatMNIST1D, "training the \(example) model failed")
        let data = CLI.packageRoot.appendingPathComponent("examples/\(example)/data").path
        let fq = try CLI.run(["eval", model, "--data", data, "--bits", "all"])
        let c = try CLI.run(["eval", model, "--data", data, "--bits", "all", "--backend", "c"])
        #expect(fq.status == 0 && c.status == 0, "\(fq.stderr)\n\(c.stderr)")
        let a = top1(fq.stdout), b = top1(c.stdout)
        #expect(Set(a.keys) == [8, 6, 4, 2] && Set(b.keys) == [8, 6, 4, 2], "\(fq.stdout)\n\(c.stdout)")
        for bits in [8, 6, 4, 2] {
            let fake = a[bits] ?? -100, int = b[bits] ?? 100
            print("\(example) \(bits) bits: fake-quant \(fake) %, C \(int) %")
            #expect(abs(fake - int) <= 0.3 + 1e-9, "\(example) at \(bits) bits: fake-quant \(fake) %, integer C \(int) %")
        }
    }

    /// Zoo-style models (part 8): the batch-1 Reshape model with its MatMul weight behind a Reshape of a constant,
    /// and the torch export with a Transpose'd weight, go through PTQ, `emit` and `run --backend c`, bit-exact with
    /// the interpreter, on a batch of test images.
    @Test(arguments: ["zoo_mnist_batch1.onnx", "torch_batch1.onnx"]) func zooModelsEmitAndRunInC(file: String) throws {
        let dir = try CLI.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = CLI.digits.appendingPathComponent("data").path
        let q = dir.appendingPathComponent("q.onnx").path
        let t = try CLI.run(["train", CLI.fixtures.appendingPathComponent(file).path, "--data", data, "-o", q,
                             "--bits", "8,4", "--ptq", "--calibration-samples", "64"])
        #expect(t.status == 0, "\(t.stderr)")
        let bundle = dir.appendingPathComponent("bundle").path
        let e = try CLI.run(["emit", q, "-o", bundle, "--profiles", "8,4"])
        #expect(e.status == 0, "\(e.stderr)")
        #expect(FileManager.default.fileExists(atPath: bundle + "/bitswitch_model.c"))
        let b = try CLI.run(["build", bundle, "-o", dir.appendingPathComponent("lib.so").path])
        #expect(b.status == 0, "\(b.stderr)")
        // --prepack: both bit-widths' weights in the arena (a larger one), and it builds.
        let pp = try CLI.run(["emit", q, "-o", bundle + "-prepack", "--profiles", "8,4", "--prepack"])
        #expect(pp.status == 0, "\(pp.stderr)")
        func arena(_ s: String) -> Int? { s.split(separator: " ").firstIndex(of: "arena").flatMap { i in Int(s.split(separator: " ")[i + 1]) } }
        #expect((arena(pp.stdout) ?? 0) > (arena(e.stdout) ?? Int.max), "\(e.stdout)\n\(pp.stdout)")
        #expect(try CLI.run(["build", bundle + "-prepack", "-o", dir.appendingPathComponent("lib-prepack.so").path]).status == 0)
        let all = try NPYArray.read(path: data + "/x_test.npy")
        let x = dir.appendingPathComponent("x.npy").path
        try NPYArray(shape: [8, 1, 8, 8], data: .float32(Array(all.floats.prefix(8 * 64)))).write(to: x)
        let outName = try outputName(q)
        try expectBitExact(q, input: x, output: outName, choices: [["--bits", "8"], ["--bits", "4"]], in: dir)
        // The C back end on the whole test set: a top-1 at both bit-widths.
        let c = try CLI.run(["eval", q, "--data", data, "--bits", "all", "--backend", "c"])
        #expect(c.status == 0, "\(c.stderr)")
        #expect(Set(top1(c.stdout).keys) == [8, 4], "\(c.stdout)")
    }

    /// A QDQ model from a PyTorch QAT export (part 7; scripts/make-torch-qat-qdq.py: eager torch.ao.quantization
    /// prepare_qat, torch.onnx export, weights as Identity → QuantizeLinear → DequantizeLinear of float constants)
    /// lowers to integer ops; on every element of the digits test set its output is within one quantization step of
    /// onnxruntime's QDQ execution (unfused reference), the top-1 equal on every image, and C == interpreter.
    @Test func pytorchQATExportRunsOnTheIntegerBackend() throws {
        let dir = try CLI.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = CLI.fixtures.appendingPathComponent("torch_qat_qdq.onnx").path
        let data = CLI.digits.appendingPathComponent("data").path
        try expectBitExact(model, input: data + "/x_test.npy", output: "logits", choices: [[]], in: dir)
        let out = dir.appendingPathComponent("c").path
        let r = try CLI.run(["run", model, "--input", data + "/x_test.npy", "--backend", "c", "--output-dir", out])
        #expect(r.status == 0, "\(r.stderr)")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try #require(venv))
        p.arguments = ["-c", """
            import numpy as np, onnx, onnxruntime as ort, sys
            x = np.load(sys.argv[1]); ours = np.load(sys.argv[3])
            so = ort.SessionOptions(); so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            ref = ort.InferenceSession(sys.argv[2], so, providers=['CPUExecutionProvider']).run(None, {'x': x})[0]
            m = onnx.load(sys.argv[2])
            consts = {i.name: onnx.numpy_helper.to_array(i) for i in m.graph.initializer}
            consts.update({n.output[0]: onnx.numpy_helper.to_array(n.attribute[0].t) for n in m.graph.node if n.op_type == 'Constant'})
            last_q = [n for n in m.graph.node if n.op_type == 'QuantizeLinear'][-1]
            step = float(np.asarray(consts[last_q.input[1]]).reshape(-1)[0])
            print(int(np.abs(ref - ours).max() <= 1.0001 * step), int((ref.argmax(1) == ours.argmax(1)).all()))
            """, data + "/x_test.npy", model, out + "/logits.npy"]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let report = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(report.trimmingCharacters(in: .whitespacesAndNewlines) == "1 1", "within-one-step, top-1-equal: \(report)")
    }
}

/// The name of a model's single graph output (from `import`'s summary: "outputs:" then "  NAME: type").
private func outputName(_ model: String) throws -> String {
    let lines = try CLI.run(["import", model]).stdout.split(separator: "\n").map(String.init)
    let i = try #require(lines.firstIndex { $0.hasPrefix("outputs:") })
    let line = lines[i + 1].trimmingCharacters(in: .whitespaces)
    return String(line.prefix { $0 != ":" })
}
