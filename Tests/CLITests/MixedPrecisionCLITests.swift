import BitSwitchData
import Foundation
import Testing

/// hessian → search → eval/run --profile on the digits example, as a user runs them.
@Suite struct MixedPrecisionCLITests {
    /// A {8,2} multi-precision digits model (one epoch) and Hessian traces of the float model, in a fresh folder.
    private func multiPrecisionModelAndTraces(samples: Int, maxIterations: Int)
        throws -> (dir: URL, float: String, mp: String, traces: String) {
        let dir = try CLI.tempDir()
        let float = CLI.digits.appendingPathComponent("model.onnx").path
        let mp = dir.appendingPathComponent("mp.onnx").path
        let t = try CLI.run(["train", float, "--data", CLI.digits.path, "-o", mp, "--bits", "8,2", "--epochs", "1",
                             "--threads", "1", "--quiet"])
        #expect(t.status == 0, "\(t.stderr)")
        let traces = dir.appendingPathComponent("traces.json").path
        let h = try CLI.run(["hessian", float, "--data", CLI.digits.path, "--samples", "\(samples)",
                             "--max-iterations", "\(maxIterations)", "--min-iterations", "2", "--threads", "1",
                             "--quiet", "-o", traces])
        #expect(h.status == 0, "\(h.stderr)")
        #expect(h.stdout.contains("trace/param"))
        return (dir, float, mp, traces)
    }

    @Test func tracesSearchAndProfiles() throws {
        let (dir, float, stored, traces) = try multiPrecisionModelAndTraces(samples: 32, maxIterations: 3)
        let refused = try CLI.run(["hessian", stored, "--data", CLI.digits.path, "-o", traces + ".x"])
        #expect(refused.status == 1 && refused.stderr.contains("FP32"))

        // HASB continues the stored multi-precision model; it needs the traces and a model with quantizers.
        let hasb = dir.appendingPathComponent("hasb.onnx").path
        let hb = try CLI.run(["train", stored, "--data", CLI.digits.path, "--bits", "8,2", "--mixed", "hasb", "--traces",
                              traces, "--sigma", "1", "--epochs", "1", "--threads", "1", "--quiet", "-o", hasb])
        #expect(hb.status == 0 && hb.stdout.contains("trained 1 epochs"), "\(hb.stderr)")
        let noTraces = try CLI.run(["train", stored, "--data", CLI.digits.path, "--bits", "8,2", "--mixed", "hasb",
                                    "--quiet", "-o", hasb + ".x"])
        #expect(noTraces.status == 1 && noTraces.stderr.contains("--traces"), "\(noTraces.stderr)")
        let fromFloat = try CLI.run(["train", float, "--data", CLI.digits.path, "--bits", "8,2", "--mixed", "hasb",
                                     "--traces", traces, "--quiet", "-o", hasb + ".x"])
        #expect(fromFloat.status == 1 && fromFloat.stderr.contains("multi-precision model"), "\(fromFloat.stderr)")

        let profile = dir.appendingPathComponent("profile.json").path
        let s = try CLI.run(["search", hasb, "--traces", traces, "--budget", "avg-bits=5", "-o", profile])
        #expect(s.status == 0, "\(s.stderr)")
        #expect(FileManager.default.fileExists(atPath: profile))
        let e = try CLI.run(["eval", stored, "--data", CLI.digits.path, "--profile", profile])
        #expect(e.status == 0 && e.stdout.contains("top-1"), "\(e.stderr)")

        // The latency table of the generated code feeds the ILP's latency budget.
        let latency = dir.appendingPathComponent("latency.json").path
        let pl = try CLI.run(["profile-latency", stored, "--repeats", "3", "--quiet", "-o", latency])
        #expect(pl.status == 0, "\(pl.stderr)")
        let table = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: latency))) as? [String: Any])
        let latencyRows = try #require(table["layers"] as? [String: [String: Double]])
        #expect(Set(latencyRows.keys) == ["conv0", "conv1", "conv2", "fc"], "\(latencyRows)")
        #expect(latencyRows["conv1"].map { Set($0.keys) } == ["8", "2"] && latencyRows["conv0"].map { Set($0.keys) } == ["8"], "\(latencyRows)")
        #expect(latencyRows.values.allSatisfy { $0.values.allSatisfy { $0 > 0 && $0.isFinite } })
        // A budget between the all-fastest and the all-8-bit sums (the ILP refuses one above the all-8-bit model).
        let top = latencyRows.values.reduce(0) { $0 + ($1["8"] ?? 0) }, fastest = latencyRows.values.reduce(0) { $0 + ($1.values.min() ?? 0) }
        let ls = try CLI.run(["search", stored, "--traces", traces, "--budget", "latency-us=\((top + fastest) / 2)", "--latency", latency])
        #expect(ls.status == 0, "\(ls.stderr)")
        let floatLatency = try CLI.run(["profile-latency", float, "-o", latency + ".x"])
        #expect(floatLatency.status == 1 && floatLatency.stderr.contains("train --bits"), "\(floatLatency.stderr)")

        // --recalibrate-bn: a second row per profile, the model file unchanged, the rows in --json.
        let before = try Data(contentsOf: URL(fileURLWithPath: stored))
        let rows = dir.appendingPathComponent("rows.json").path
        let rb = try CLI.run(["eval", stored, "--data", CLI.digits.path, "--profile", profile, "--profile", profile,
                              "--recalibrate-bn", "64", "--threads", "1", "--json", rows])
        #expect(rb.status == 0 && rb.stdout.contains("profile+bn") && rb.stdout.contains("64 training samples"), "\(rb.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: stored)) == before)
        let parsed = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: rows))) as? [String: Any]
        let list = parsed?["rows"] as? [[String: Any]] ?? []
        #expect(list.count == 4 && list.filter { $0["recalibrated_bn_samples"] as? Int == 64 }.count == 2)
        let ub = try CLI.run(["eval", stored, "--data", CLI.digits.path, "--bits", "8,2", "--recalibrate-bn", "32"])
        #expect(ub.status == 0 && ub.stdout.contains("2+bn"), "\(ub.stderr)")
        let zero = try CLI.run(["eval", stored, "--data", CLI.digits.path, "--recalibrate-bn", "0"])
        #expect(zero.status == 1 && zero.stderr.contains("--recalibrate-bn"), "\(zero.stderr)")
        let floatBN = try CLI.run(["eval", float, "--data", CLI.digits.path, "--recalibrate-bn", "32"])
        #expect(floatBN.status == 1 && floatBN.stderr.contains("quantized model"), "\(floatBN.stderr)")

        // --random: profiles meeting the budget, the same for the same seed.
        let rnd = dir.appendingPathComponent("rand.json").path
        let r1 = try CLI.run(["search", stored, "--traces", traces, "--budget", "avg-bits=5", "--random", "3", "-o", rnd])
        #expect(r1.status == 0 && r1.stdout.contains("random assignment 3"), "\(r1.stderr)")
        let first = try String(contentsOfFile: dir.appendingPathComponent("rand-1.json").path, encoding: .utf8)
        _ = try CLI.run(["search", stored, "--traces", traces, "--budget", "avg-bits=5", "--random", "1", "-o", rnd])
        #expect(try String(contentsOfFile: dir.appendingPathComponent("rand-1.json").path, encoding: .utf8) == first)
        for line in r1.stdout.split(separator: "\n") where line.hasPrefix("avg-bits ") {
            let v = Double(line.dropFirst(9).prefix { $0 != "," }) ?? 99
            #expect(v <= 5 + 1e-9, "\(line)")
        }

        let low = try CLI.run(["search", stored, "--traces", traces, "--budget", "avg-bits=1"])
        #expect(low.status == 1 && low.stderr.contains("smallest feasible avg-bits"), "\(low.stderr)")

        // A uniform profile runs exactly like --bits.
        let input = CLI.digits.appendingPathComponent("sample/input.npy").path
        let uniform = dir.appendingPathComponent("u2.json").path
        try "{\"default\": 2}".write(toFile: uniform, atomically: true, encoding: .utf8)
        var logits: [[Float]] = []
        for args in [["--bits", "2"], ["--profile", uniform]] {
            let out = dir.appendingPathComponent("o\(logits.count)")
            let r = try CLI.run(["run", stored, "--input", input, "--output-dir", out.path] + args)
            #expect(r.status == 0, "\(r.stderr)")
            logits.append(try NPYArray.read(path: out.appendingPathComponent("logits.npy").path).floats)
        }
        #expect(logits.count == 2 && logits[0] == logits[1])

        let bad = dir.appendingPathComponent("bad.json").path
        try "{\"bits\": {\"no_such_layer\": {\"w\": 2, \"a\": 2}}}".write(toFile: bad, atomically: true, encoding: .utf8)
        let b = try CLI.run(["eval", stored, "--data", CLI.digits.path, "--profile", bad])
        #expect(b.status == 1 && b.stderr.contains("no_such_layer"), "\(b.stderr)")
    }

    /// `train --mixed hasb --transitional-bn`, then the stored file evaluated, run, re-estimated and emitted at a
    /// profile that moves conv2's previous layer (conv1) apart from it.
    @Test func transitionalBNTrainEvalRunAndEmit() throws {
        let (dir, _, mp, traces) = try multiPrecisionModelAndTraces(samples: 16, maxIterations: 2)
        let tbn = dir.appendingPathComponent("tbn.onnx").path
        let hb = try CLI.run(["train", mp, "--data", CLI.digits.path, "--bits", "8,2", "--mixed", "hasb", "--traces", traces,
                              "--transitional-bn", "--sigma", "1", "--epochs", "1", "--threads", "1", "-o", tbn])
        #expect(hb.status == 0 && hb.stderr.contains("transitional BN: 1 BatchNorms"), "\(hb.stderr)")
        let ir = try CLI.run(["print-ir", tbn])
        #expect(ir.status == 0 && ir.stdout.contains("previous = \"conv1"), "\(ir.stderr)")

        let profile = dir.appendingPathComponent("p.json").path
        try "{\"bits\": {\"conv1\": {\"w\": 2, \"a\": 2}, \"conv2\": {\"w\": 8, \"a\": 8}}, \"default\": 8}"
            .write(toFile: profile, atomically: true, encoding: .utf8)
        let e = try CLI.run(["eval", tbn, "--data", CLI.digits.path, "--profile", profile, "--recalibrate-bn", "64",
                             "--threads", "1"])
        #expect(e.status == 0 && e.stdout.contains("p+bn"), "\(e.stderr)")
        let input = CLI.digits.appendingPathComponent("sample/input.npy").path
        let r = try CLI.run(["run", tbn, "--input", input, "--output-dir", dir.appendingPathComponent("o").path, "--profile", profile])
        #expect(r.status == 0, "\(r.stderr)")
        let bundle = dir.appendingPathComponent("bundle").path
        let em = try CLI.run(["emit", tbn, "--profiles", "8,2,\(profile)", "-o", bundle])
        #expect(em.status == 0, "\(em.stderr)")

        let notHASB = try CLI.run(["train", mp, "--data", CLI.digits.path, "--bits", "8,2", "--transitional-bn", "-o", tbn + ".x"])
        #expect(notHASB.status == 1 && notHASB.stderr.contains("--mixed hasb"), "\(notHASB.stderr)")
    }
}
