import Foundation
import Testing

/// Training runs killed with SIGKILL (at chosen points of the checkpoint write and at a timed moment) resume to
/// exactly the weights of an uninterrupted run; damaged checkpoints and numerical blow-ups stop loudly.
@Suite(.serialized) struct CrashSafetyTests {
    static let model = CLI.digits.appendingPathComponent("model.onnx").path

    private func trainArgs(_ out: String, _ extra: [String]) -> [String] {
        ["train", Self.model, "--data", CLI.digits.path, "-o", out, "--epochs", "2", "--threads", "1", "--quiet"] + extra
    }

    /// Runs the CLI with extra environment; SIGKILL shows as status 9 with reason .uncaughtSignal.
    private func run(_ args: [String], env: [String: String] = [:], killAfter: Double? = nil)
        throws -> (status: Int32, signalled: Bool, stderr: String) {
        let bin = try #require(CLI.binary)
        let p = Process()
        p.executableURL = bin
        p.arguments = args
        p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
        let errURL = try CLI.tempDir().appendingPathComponent("stderr")
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        p.standardError = try FileHandle(forWritingTo: errURL)
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        if let killAfter {
            Thread.sleep(forTimeInterval: killAfter)
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        }
        p.waitUntilExit()
        return (p.terminationStatus, p.terminationReason == .uncaughtSignal,
                (try? String(contentsOf: errURL, encoding: .utf8)) ?? "")
    }

    /// After a kill: resume from the checkpoint if one was completed, else start over (what a user does); either
    /// way the model must end up byte-identical to `reference`.
    private func finishAndCompare(_ out: String, _ extra: [String], reference: Data, _ what: String,
                                  sourceLocation: SourceLocation = #_sourceLocation) throws {
        let hasCheckpoint = FileManager.default.fileExists(atPath: out + ".ckpt")
        let r = try run(trainArgs(out, extra + (hasCheckpoint ? ["--resume"] : [])))
        #expect(r.status == 0 && !r.signalled, "\(what): \(r.stderr)", sourceLocation: sourceLocation)
        let got = try Data(contentsOf: URL(fileURLWithPath: out))
        #expect(got == reference, "\(what): the resumed run's model differs from the uninterrupted one",
                sourceLocation: sourceLocation)
    }

    @Test(arguments: [[String](), ["--bits", "8,2"]])
    func killedRunsResumeToTheUninterruptedWeights(extra: [String]) throws {
        let dir = try CLI.tempDir().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let start = Date()
        let full = dir + "/full.onnx"
        #expect(try run(trainArgs(full, extra)).status == 0)
        let reference = try Data(contentsOf: URL(fileURLWithPath: full))
        let wall = Date().timeIntervalSince(start)

        // Killed in the middle of writing a checkpoint's temporary file, and after it is complete but before the
        // rename: the checkpoint on disk is the previous one (or none), never a torn one.
        // The killed writer's temporary file stays beside the checkpoint until the resumed (or restarted) run removes
        // it: killed runs do not accumulate them.
        func temporaries(_ out: String) throws -> [String] {
            let base = (out as NSString).lastPathComponent
            return try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix(".\(base).ckpt.tmp-") }
        }
        for (n, phase) in [(1, "half"), (2, "before-rename")] {
            let out = dir + "/\(phase)-\(n).onnx"
            let r = try run(trainArgs(out, extra), env: ["BITSWITCH_TEST_KILL_IN_WRITE": ".ckpt:\(n):\(phase)"])
            #expect(r.signalled && r.status == SIGKILL, "kill at checkpoint write \(n) (\(phase)) did not happen")
            #expect(try temporaries(out).count == 1, "the kill during write \(n) (\(phase)) left no temporary file")
            try finishAndCompare(out, extra, reference: reference, "killed in checkpoint write \(n) (\(phase))")
            let left = try temporaries(out)
            #expect(left.isEmpty, "stale temporaries after the resumed run: \(left)")
        }
        // Killed at timed moments during the run (wherever they land: a step, an evaluation, a write).
        for fraction in [0.5] {
            let out = dir + "/timed-\(fraction).onnx"
            let r = try run(trainArgs(out, extra), killAfter: wall * fraction)
            if r.signalled {
                try finishAndCompare(out, extra, reference: reference, "killed after \(fraction) of the run")
            }
        }
    }

    /// A stale temporary beside the checkpoint (a writer killed before its rename) is neither read by --resume nor
    /// left behind: the resume removes it before reading the checkpoint.
    @Test func resumeRemovesTheTemporaryOfAKilledCheckpointWrite() throws {
        let dir = try CLI.tempDir().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + "/m.onnx"
        #expect(try run(trainArgs(out, ["--stop-after-epoch", "1"])).status == 0)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/true")
        try p.run()
        p.waitUntilExit()
        let stale = dir + "/.m.onnx.ckpt.tmp-\(p.processIdentifier)-DEAD"
        try Data("BSCKPT02 torn".utf8).write(to: URL(fileURLWithPath: stale))
        let r = try run(trainArgs(out, ["--resume", "--stop-after-epoch", "1"]))
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: stale), "the stale temporary survived --resume")
    }

    @Test func damagedCheckpointIsAnErrorNeverAFreshStart() throws {
        let dir = try CLI.tempDir().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + "/m.onnx", ckpt = out + ".ckpt"
        #expect(try run(trainArgs(out, ["--stop-after-epoch", "1"])).status == 0)
        let good = try Data(contentsOf: URL(fileURLWithPath: ckpt))
        let model = try Data(contentsOf: URL(fileURLWithPath: out))
        var corrupted = good
        corrupted[corrupted.count / 2] ^= 0x01
        for (bytes, words) in [(good.prefix(good.count - 100), "checksum"), (corrupted, "checksum"),
                               (good.prefix(5), "truncated"), (Data("not a checkpoint".utf8), "not a BitSwitch checkpoint")] {
            try Data(bytes).write(to: URL(fileURLWithPath: ckpt))
            let r = try run(trainArgs(out, ["--resume"]))
            #expect(r.status == 1, "\(r.stderr)")
            #expect(r.stderr.contains(ckpt) && r.stderr.contains(words), "\(r.stderr)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: ckpt)) == Data(bytes), "the damaged checkpoint was replaced")
            #expect(try Data(contentsOf: URL(fileURLWithPath: out)) == model, "a model was written from a fresh start")
        }
    }

    @Test func numericalBlowUpStopsNamingEpochAndStepAndKeepsTheCheckpoint() throws {
        let dir = try CLI.tempDir().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + "/m.onnx", ckpt = out + ".ckpt"
        #expect(try run(trainArgs(out, ["--stop-after-epoch", "1"])).status == 0)
        let good = try Data(contentsOf: URL(fileURLWithPath: ckpt))
        let model = try Data(contentsOf: URL(fileURLWithPath: out))
        let r = try run(trainArgs(out, ["--resume", "--lr", "1e30"]))
        #expect(r.status == 1)
        #expect(r.stderr.contains("epoch 2, step "), "\(r.stderr)")
        #expect(["loss became", "gradient of", "weight '"].contains { r.stderr.contains($0) }, "\(r.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: ckpt)) == good)
        #expect(try Data(contentsOf: URL(fileURLWithPath: out)) == model, "the model of epoch 1 was overwritten")

        // --detect-anomaly names the op whose output first went non-finite.
        let a = try run(trainArgs(out, ["--resume", "--lr", "1e30", "--detect-anomaly"]))
        #expect(a.status == 1)
        #expect(a.stderr.contains("--detect-anomaly") && a.stderr.contains("epoch 2, step ") && a.stderr.contains("node '"),
                "\(a.stderr)")
    }
}
