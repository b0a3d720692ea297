import Foundation
import Testing

/// A small GPT-style decoder (Tests/CLITests/Fixtures/tinytext-small.onnx: scripts/export-tinytext.py --vocab 128
/// --context 8 --width 16 --heads 2 --layers 1) trained on a text file, and the text file's bad inputs.
@Suite struct TextTrainingTests {
    static let model = CLI.fixtures.appendingPathComponent("tinytext-small.onnx").path

    static let sentence = "In the beginning God created the heaven and the earth. And the earth was without form.\n"

    private func textFile(_ bytes: [UInt8]) throws -> (dir: String, file: String) {
        let dir = try CLI.tempDir().path
        let file = dir + "/text.txt"
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        return (dir, file)
    }

    private func expectRefused(_ args: [String], file: String, _ parts: [String],
                               sourceLocation: SourceLocation = #_sourceLocation) throws {
        let r = try CLI.run(args)
        #expect(r.status == 1, "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.contains(file), "file missing from: \(r.stderr)", sourceLocation: sourceLocation)
        for p in parts { #expect(r.stderr.contains(p), "'\(p)' missing from: \(r.stderr)", sourceLocation: sourceLocation) }
    }

    /// The forward pass equals onnxruntime's on the exported decoder (expected logits written by onnxruntime).
    @Test func forwardMatchesOnnxRuntime() throws {
        let out = try CLI.tempDir().path
        let r = try CLI.run(["run", Self.model, "--input", CLI.fixtures.appendingPathComponent("tinytext-small.tokens.npy").path,
                             "--output-dir", out, "--check",
                             "logits=" + CLI.fixtures.appendingPathComponent("tinytext-small.logits.npy").path])
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        try? FileManager.default.removeItem(atPath: out)
    }

    @Test func trainsOnATextFileAndLowersTheHeldOutLoss() throws {
        let (dir, file) = try textFile(Array(String(repeating: Self.sentence, count: 40).utf8))
        let before = try CLI.run(["eval", Self.model, "--data", file])
        #expect(before.status == 0, "\(before.stderr)")
        let r = try CLI.run(["train", Self.model, "--data", file, "-o", dir + "/out.onnx", "--steps", "60", "--batch", "16",
                             "--lr", "1e-2", "--threads", "1", "--quiet"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("bits per byte"), "\(r.stdout)")
        let after = try CLI.run(["eval", dir + "/out.onnx", "--data", file])
        #expect(after.status == 0, "\(after.stderr)")
        func nats(_ s: String) -> Double? {
            guard let range = s.range(of: #"[0-9.]+ nats/token"#, options: .regularExpression) else { return nil }
            return Double(s[range].split(separator: " ")[0])
        }
        let b = try #require(nats(before.stdout)), a = try #require(nats(after.stdout))
        // Untrained: about ln 128 = 4.85 nats; 60 steps on a repeated sentence learn most of it.
        #expect(b > 4.5 && a < 2.5, "held-out loss \(b) → \(a)")
        try? FileManager.default.removeItem(atPath: dir)
    }

    @Test func tokenOutsideTheVocabulary() throws {
        // "é" is the bytes C3 A9: token ids 195 and 169, outside the fixture's 128-row embedding.
        let (dir, file) = try textFile(Array((String(repeating: Self.sentence, count: 4) + "caf\u{E9}\n").utf8))
        try expectRefused(["train", Self.model, "--data", file, "-o", dir + "/out.onnx", "--steps", "1", "--quiet"],
                          file: file, ["byte 0xC3 at offset", "token id 195", "outside the model's vocabulary of 128 tokens",
                                       "tinytext-small.onnx"])
        #expect(!FileManager.default.fileExists(atPath: dir + "/out.onnx"))
        try? FileManager.default.removeItem(atPath: dir)
    }

    @Test func windowLongerThanThePositions() throws {
        let (dir, file) = try textFile(Array(String(repeating: Self.sentence, count: 4).utf8))
        try expectRefused(["train", Self.model, "--data", file, "-o", dir + "/out.onnx", "--seq-len", "16", "--quiet"],
                          file: file, ["a window of 16 tokens is longer than the model's 8 positions"])
        try? FileManager.default.removeItem(atPath: dir)
    }

    @Test func textThatIsNotUTF8() throws {
        var bytes = Array(String(repeating: Self.sentence, count: 4).utf8)
        bytes[100] = 0xFF
        let (dir, file) = try textFile(bytes)
        try expectRefused(["eval", Self.model, "--data", file], file: file,
                          ["is not UTF-8 text", "byte 0xFF at offset 100 (line 2, column 14)"])
        try? FileManager.default.removeItem(atPath: dir)
    }

    @Test func textForAModelWithoutTokenInput() throws {
        let (dir, file) = try textFile(Array(String(repeating: Self.sentence, count: 4).utf8))
        try expectRefused(["eval", CLI.digits.appendingPathComponent("model.onnx").path, "--data", file], file: file,
                          ["takes token ids"])
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Joint multi-precision training of the decoder (every linear layer switching, the attention products
    /// quantized, switchable LayerNorm): train prints held-out bits per character at every bit-width from the file
    /// it wrote, and `eval` on that file (no --bits) prints the same table.
    @Test func multiPrecisionDecoderReportsBitsPerCharacterPerBitWidth() throws {
        let (dir, file) = try textFile(Array(String(repeating: Self.sentence, count: 40).utf8))
        let out = dir + "/mp.onnx"
        let r = try CLI.run(["train", Self.model, "--data", file, "-o", out, "--bits", "8,4,2", "--steps", "20",
                             "--batch", "16", "--lr", "3e-3", "--threads", "1", "--quiet", "--quantize-attention",
                             "--switchable-layernorm"])
        #expect(r.status == 0, "\(r.stderr)")
        func table(_ s: String) -> [Int: Double] {
            var rows: [Int: Double] = [:]
            for line in s.split(separator: "\n") {
                let f = line.split(separator: " ")
                if f.count == 4, let b = Int(f[0]), let bpc = Double(f[2]), f[3].hasSuffix("%") { rows[b] = bpc }
            }
            return rows
        }
        #expect(r.stdout.contains("bits  nats/token  bits/char  next-byte acc"), "\(r.stdout)")
        let trained = table(r.stdout)
        #expect(Set(trained.keys) == [8, 4, 2], "\(r.stdout)")
        // Untrained: about 7 bits (ln 128 nats); 20 steps on a repeated sentence learn some of it at every width.
        for (b, bpc) in trained { #expect(bpc < 5.5, "\(b) bits: \(bpc) bits per character") }
        let e = try CLI.run(["eval", out, "--data", file])
        #expect(e.status == 0, "\(e.stderr)")
        #expect(table(e.stdout) == trained, "\(e.stdout)")
        let one = try CLI.run(["eval", out, "--data", file, "--bits", "4"])
        #expect(table(one.stdout) == [4: trained[4]!], "\(one.stdout)")
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Post-training calibration of a decoder from its text file (token ids fed as int64, as training feeds them):
    /// `train --bits --ptq` on a trained float model writes the INT8 model and its per-bit-width table, and 8 bits
    /// stays within a tenth of a bit per character of the float model it came from.
    @Test func postTrainingCalibrationOfADecoderFromText() throws {
        let (dir, file) = try textFile(Array(String(repeating: Self.sentence, count: 40).utf8))
        let float = dir + "/float.onnx", ptq = dir + "/ptq.onnx"
        let t = try CLI.run(["train", Self.model, "--data", file, "-o", float, "--steps", "30", "--batch", "16",
                             "--lr", "3e-3", "--threads", "1", "--quiet"])
        #expect(t.status == 0, "\(t.stderr)")
        let r = try CLI.run(["train", float, "--data", file, "-o", ptq, "--bits", "8,4", "--ptq", "--threads", "1",
                             "--calibration-samples", "32"])
        #expect(r.status == 0, "\(r.stderr)")
        func bitsPerChar(_ s: String, _ key: String) -> Double? {
            for line in s.split(separator: "\n") {
                let f = line.split(separator: " ")
                if f.count == 4, f[0] == key, let bpc = Double(f[2]) { return bpc }
            }
            return nil
        }
        let fe = try CLI.run(["eval", float, "--data", file])
        let floatBPC = fe.stdout.split(separator: "\n").compactMap { line -> Double? in
            guard let r = line.range(of: " bits per") else { return nil }
            return Double(line[..<r.lowerBound].split(separator: " ").last ?? "")
        }.first
        let b8 = try #require(bitsPerChar(r.stdout, "8"), "\(r.stdout)")
        #expect(bitsPerChar(r.stdout, "4") != nil, "\(r.stdout)")
        let f = try #require(floatBPC, "\(fe.stdout)")
        #expect(abs(b8 - f) < 0.1, "8-bit PTQ \(b8) vs float \(f) bits per character")
        try? FileManager.default.removeItem(atPath: dir)
    }
}
