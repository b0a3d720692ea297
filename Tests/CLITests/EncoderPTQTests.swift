import BitSwitchData
import Foundation
import Testing

/// Post-training multi-precision of a transformer encoder with several inputs (`train --ptq --data NAME=FILE`): a
/// small BERT-style encoder that scripts/transformer-refs.py exports from PyTorch (inputs input_ids and
/// attention_mask; vocabulary 1200, 64 positions; outputs last_hidden_state and the mean-pooled embedding), with
/// 96 token sequences of 16. Skipped with a note when the venv lacks torch.
@Suite(.enabled(if: Venv.python != nil, "no project venv (scripts/setup-venv.sh)"))
struct EncoderPTQTests {
    func fixture() throws -> URL? {
        try TransformerModelTests().references(["bert", "--opset", "17", "--fused", "--batch", "96", "--seq", "16"])
    }

    struct Cosine: Decodable {
        struct Row: Decodable { var bits: Int; var cosine: [String: Stat] }
        struct Stat: Decodable { var mean: Double; var min: Double }
        var calibration_samples: Int
        var compared_samples: Int
        var held_out: Bool
        var bits: [Row]
    }

    func ptq(_ dir: URL, data: [String], extra: [String] = []) throws -> (CLI.Result, Cosine?) {
        let out = dir.appendingPathComponent("ptq-\(UUID().uuidString).onnx")
        let metrics = dir.appendingPathComponent("metrics-\(UUID().uuidString).json")
        let r = try CLI.run(["train", dir.appendingPathComponent("model.onnx").path, "--bits", "8,6,4,2", "--ptq",
                             "--calibration-samples", "64", "-o", out.path, "--metrics", metrics.path, "--quiet"]
                            + data.flatMap { ["--data", $0] } + extra)
        let m = try? JSONDecoder().decode(Cosine.self, from: Data(contentsOf: metrics))
        return (r, m)
    }

    func named(_ dir: URL, ids: String = "input_ids.npy", mask: String = "attention_mask.npy") -> [String] {
        ["input_ids=" + dir.appendingPathComponent(ids).path, "attention_mask=" + dir.appendingPathComponent(mask).path]
    }

    @Test func calibratesOnTokenSequencesAndRunsAtEveryBitWidth() throws {
        guard let dir = try fixture() else { return }
        defer { try? FileManager.default.removeItem(at: dir) }
        let (r, metrics) = try ptq(dir, data: named(dir))
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        #expect(r.stdout.contains("32 samples not used for calibration"), "\(r.stdout)")
        let m = try #require(metrics)
        #expect(m.calibration_samples == 64 && m.compared_samples == 32 && m.held_out)
        #expect(m.bits.map(\.bits) == [8, 6, 4, 2])
        for output in ["pooled", "last_hidden_state"] {
            let c = m.bits.map { $0.cosine[output]?.mean ?? 0 }
            // 8 bits is close to float, and fewer bits never get closer than more bits.
            #expect(c[0] > 0.99, "\(output): \(c)")
            #expect(c[0] >= c[1] - 1e-3 && c[1] >= c[2] && c[2] > c[3], "\(output): \(c)")
            #expect((m.bits[0].cosine[output]?.min ?? 0) > 0.98, "\(output)")
        }

        // The same arrays as a directory of <input>.npy files give the same model and numbers.
        let (r2, again) = try ptq(dir, data: [dir.path])
        #expect(r2.status == 0, "\(r2.stderr)")
        #expect(again.map { $0.bits.map { $0.cosine["pooled"]?.mean } } == m.bits.map { $0.cosine["pooled"]?.mean })

        // Other calibration rules: minmax and mse also stay close at 8 bits; an unknown one is named.
        for method in ["minmax", "mse"] {
            let (r3, other) = try ptq(dir, data: [dir.path], extra: ["--calibration", method])
            #expect(r3.status == 0, "\(r3.stderr)")
            #expect((other?.bits.first?.cosine["pooled"]?.mean ?? 0) > 0.99, "\(method): \(r3.stdout)")
        }
        let (bad, _) = try ptq(dir, data: [dir.path], extra: ["--calibration", "entropy"])
        #expect(bad.status == 1 && bad.stderr.contains("unknown --calibration 'entropy' (percentile, minmax, mse)"))

        // The written model runs at each bit-width.
        let out = dir.appendingPathComponent("runs.onnx")
        #expect(try CLI.run(["train", dir.appendingPathComponent("model.onnx").path, "--bits", "8,4", "--ptq",
                             "--calibration-samples", "32", "-o", out.path, "--quiet", "--data", dir.path]).status == 0)
        for bits in ["8", "4"] {
            let run = try CLI.run(["run", out.path, "--bits", bits] + named(dir).flatMap { ["--input", $0] })
            #expect(run.status == 0, "\(run.stderr)")
            #expect(run.stdout.contains("pooled: f32[96, 64]"), "\(run.stdout)")
        }
    }

    @Test func badInputArraysAreNamed() throws {
        guard let dir = try fixture() else { return }
        defer { try? FileManager.default.removeItem(at: dir) }
        let ids = try NPYArray.read(path: dir.appendingPathComponent("input_ids.npy").path)
        guard case .int64(let v) = ids.data else { Issue.record("input_ids.npy is not int64"); return }
        let (n, t) = (ids.shape[0], ids.shape[1])
        func write(_ name: String, _ a: NPYArray) throws { try a.write(to: dir.appendingPathComponent(name).path) }
        try write("ids_i32.npy", NPYArray(shape: ids.shape, data: .int32(v.map { Int32($0) })))
        var oov = v
        oov[3 * t + 5] = 1200
        try write("ids_oov.npy", NPYArray(shape: ids.shape, data: .int64(oov)))
        try write("ids_long.npy", NPYArray(shape: [n, 80], data: .int64((0..<(n * 80)).map { Int64(1000 + $0 % 200) })))
        try write("mask_long.npy", NPYArray(shape: [n, 80], data: .int64([Int64](repeating: 1, count: n * 80))))
        try write("mask_short.npy", NPYArray(shape: [n, 12], data: .int64([Int64](repeating: 1, count: n * 12))))
        try write("mask_few.npy", NPYArray(shape: [n - 1, t], data: .int64([Int64](repeating: 1, count: (n - 1) * t))))

        let cases: [([String], [String])] = [
            ([named(dir)[0]], ["no data for the model's input 'attention_mask'"]),
            (named(dir) + ["token_type_ids=" + dir.appendingPathComponent("input_ids.npy").path],
             ["the model has no input 'token_type_ids'", "input_ids, attention_mask"]),
            (named(dir, ids: "ids_i32.npy"), ["ids_i32.npy", "the array is i32", "input 'input_ids' is i64"]),
            (named(dir, mask: "mask_short.npy"), ["mask_short.npy", "is 12 but it is 16"]),
            (named(dir, mask: "mask_few.npy"), ["mask_few.npy", "is 95 but it is 96"]),
            (named(dir, ids: "ids_oov.npy"), ["ids_oov.npy", "token id 1200 at sample 3, position 5",
                                                 "outside the model's vocabulary of 1200"]),
            (named(dir, ids: "ids_long.npy", mask: "mask_long.npy"),
             ["ids_long.npy", "a sequence of 80 tokens", "longer than the model's 64 positions"]),
        ]
        for (data, wanted) in cases {
            let (r, _) = try ptq(dir, data: data)
            #expect(r.status == 1, "\(data): \(r.stdout)")
            for w in wanted { #expect(r.stderr.contains(w), "\(data): wanted '\(w)' in: \(r.stderr)") }
        }
        // Several inputs are calibrated, not trained.
        let r = try CLI.run(["train", dir.appendingPathComponent("model.onnx").path, "-o",
                             dir.appendingPathComponent("t.onnx").path] + named(dir).flatMap { ["--data", $0] })
        #expect(r.status == 1)
        #expect(r.stderr.contains("calibrated, not trained: add --ptq"), "\(r.stderr)")
    }
}
