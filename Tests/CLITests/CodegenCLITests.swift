import BitSwitchData
import Foundation
import Testing

/// `emit`, `build` and `run --backend int|c` as a user runs them, on a small integer model in IR text.
@Suite struct CodegenCommandTests {
    static let model = """
    graph @tiny opsets {"": 17, "ai.bitswitch": 1} {
      input %x: f32[N,1,4,4]
      const %w: i8[2,1,3,3] = [1, -2, 3, 4, -5, 6, 7, -8, 9, 10, 20, -30, 40, 50, -60, 70, 80, -90]
      const %m: i32[2] = [805306368, 603979776]
      const %n: i32[2] = [30, 29]
      const %b: i64[2] = [8053063680, -6039797760]
      %q = ai.bitswitch.Quantize(%x) {hi = 127, lo = -128, scale = 0.0157, to = "i8", zero = 0}
      %c = ai.bitswitch.QConv(%q, %w) {group = 1, pads = [1, 1, 1, 1], w_bits = 4, w_shift = 4, x_zero = 0}
      %r = ai.bitswitch.Requant(%c, %m, %n, %b) {axis = 1, hi = 127, lo = -128, to = "i8", zero = 0}
      %y = ai.bitswitch.Dequantize(%r) {scale = 0.03125, zero = 0}
      output %y: f32[N,2,4,4]
    }
    """

    @Test func emitBuildAndRunTheCBackEndLikeTheInterpreter() throws {
        let dir = try CLI.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let m = dir.appendingPathComponent("m.bsir").path
        try Self.model.write(toFile: m, atomically: true, encoding: .utf8)
        let x = dir.appendingPathComponent("x.npy").path
        var r = SplitMix(seed: 5)
        try NPYArray(shape: [3, 1, 4, 4], data: .float32((0..<48).map { _ in r.float() * 4 - 2 })).write(to: x)

        let bundle = dir.appendingPathComponent("bundle").path
        var res = try CLI.run(["emit", m, "-o", bundle])
        #expect(res.status == 0, "\(res.stderr)")
        for f in ["bitswitch_model.h", "bitswitch_model.c", "bs_kernels.c", "bs_kernels.h", "Makefile", "CMakeLists.txt", "README.md"] {
            #expect(FileManager.default.fileExists(atPath: bundle + "/" + f), "\(f)")
        }
        let lib = dir.appendingPathComponent("libm.so").path
        res = try CLI.run(["build", bundle, "-o", lib])
        #expect(res.status == 0, "\(res.stderr)")
        #expect(FileManager.default.fileExists(atPath: lib))

        let outInt = dir.appendingPathComponent("int").path, outC = dir.appendingPathComponent("c").path
        res = try CLI.run(["run", m, "--input", x, "--output-dir", outInt, "--backend", "int"])
        #expect(res.status == 0, "\(res.stderr)")
        res = try CLI.run(["run", m, "--input", x, "--output-dir", outC, "--backend", "c"])
        #expect(res.status == 0, "\(res.stderr)")
        let a = FileManager.default.contents(atPath: outInt + "/y.npy"), b = FileManager.default.contents(atPath: outC + "/y.npy")
        #expect(a != nil && a == b)

        // Errors: a directory that is not a bundle; a missing compiler.
        res = try CLI.run(["build", dir.path])
        #expect(res.status == 1 && res.stderr.contains("not a BitSwitch bundle"))
        res = try CLI.run(["emit", m, "-o", dir.path])
        #expect(res.status == 1 && res.stderr.contains("refusing to replace"))
    }

    /// A real model (the PyTorch QAT export of the digits CNN) through `run --backend c --threads N` on the 360 test
    /// images: the logits are the same bytes at 1, 2, 3, 4 and 0 (every online CPU) threads; and `eval --backend c
    /// --threads 2` gives the one-thread top-1.
    @Test func threadsGiveTheSameOutputsOnARealModel() throws {
        let dir = try CLI.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = CLI.fixtures.appendingPathComponent("torch_qat_qdq.onnx").path
        let data = CLI.digits.appendingPathComponent("data").path
        var outputs: [Data?] = []
        for t in [1, 2, 3, 4, 0] {
            let out = dir.appendingPathComponent("c\(t)").path
            let r = try CLI.run(["run", model, "--input", data + "/x_test.npy", "--backend", "c", "--threads", "\(t)", "--output-dir", out])
            #expect(r.status == 0, "\(t) threads: \(r.stderr)")
            outputs.append(FileManager.default.contents(atPath: out + "/logits.npy"))
        }
        #expect(outputs[0] != nil && outputs.allSatisfy { $0 == outputs[0] }, "the logits differ between thread counts")
        let top1 = { (s: String) in s.split(separator: "\n").filter { $0.contains("%") }.map { $0.split(separator: " ").filter { !$0.isEmpty }.prefix(2).joined(separator: " ") } }
        let one = try CLI.run(["eval", model, "--data", data, "--backend", "c", "--threads", "1"])
        let two = try CLI.run(["eval", model, "--data", data, "--backend", "c", "--threads", "2"])
        #expect(one.status == 0 && two.status == 0, "\(one.stderr)\n\(two.stderr)")
        #expect(!top1(one.stdout).isEmpty && top1(one.stdout) == top1(two.stdout), "\(one.stdout)\n\(two.stdout)")
    }
}

struct SplitMix {
    var s: UInt64
    init(seed: UInt64) { s = seed }
    mutating func float() -> Float {
        s &+= 0x9E3779B97F4A7C15
        var z = s
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return Float((z ^ (z >> 31)) >> 40) / Float(1 << 24)
    }
}
