import Foundation
import Testing
@testable import BitSwitchData

/// The pid of a process that has exited (a short-lived child, waited for).
func deadPID() throws -> Int32 {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/true")
    try p.run()
    p.waitUntilExit()
    return p.processIdentifier
}

/// A writer killed before its rename leaves `.<name>.tmp-<pid>-<uuid>` beside the target; the next write of that
/// target removes it, and leaves alone what a live writer (this process) is writing and what it does not recognise.
@Test func atomicWritesRemoveTheTemporariesOfKilledWriters() throws {
    try withTempDir { dir in
        let target = dir + "/model.ckpt"
        let dead = try deadPID()
        let stale = dir + "/.model.ckpt.tmp-\(dead)-0F2C", live = dir + "/.model.ckpt.tmp-\(getpid())-77AA"
        let other = dir + "/.model.ckpt.tmp-notapid", unrelated = dir + "/.other.ckpt.tmp-\(dead)-1"
        for f in [stale, live, other, unrelated] { try Data("partial".utf8).write(to: URL(fileURLWithPath: f)) }
        try AtomicFile.write(Data("new".utf8), to: target)
        let fm = FileManager.default
        #expect(!fm.fileExists(atPath: stale), "the dead writer's temporary is still there")
        #expect(fm.fileExists(atPath: live) && fm.fileExists(atPath: other) && fm.fileExists(atPath: unrelated))
        #expect(try Data(contentsOf: URL(fileURLWithPath: target)) == Data("new".utf8))
        // Only the written file and the untouched ones: the write left no temporary of its own.
        #expect(Set(try fm.contentsOfDirectory(atPath: dir)) == Set(["model.ckpt", ".model.ckpt.tmp-\(getpid())-77AA",
                                                                     ".model.ckpt.tmp-notapid", ".other.ckpt.tmp-\(dead)-1"]))
        // The explicit clean-up (train --resume calls it) does the same without writing.
        try Data("partial".utf8).write(to: URL(fileURLWithPath: stale))
        AtomicFile.removeStaleTemporaries(of: target)
        #expect(!fm.fileExists(atPath: stale))
    }
}
