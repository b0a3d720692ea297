import Foundation
import Testing
@testable import BitSwitchIR

/// Temporaries (files and directories) of killed writers beside a target are removed; a live writer's are kept.
@Test func staleTemporariesOfDeadWritersAreRemoved() throws {
    let fm = FileManager.default
    let dir = fm.temporaryDirectory.appendingPathComponent("bitswitch-durable-\(UUID().uuidString)").path
    try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? fm.removeItem(atPath: dir) }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/true")
    try p.run()
    p.waitUntilExit()
    let dead = p.processIdentifier
    let target = dir + "/bundle"
    let staleDir = dir + "/.bundle.tmp-\(dead)-12", staleOld = dir + "/.bundle.old-\(dead)-34"
    let liveTmp = DurableFiles.temporaryPath(for: target)
    try fm.createDirectory(atPath: staleDir + "/inner", withIntermediateDirectories: true)
    try fm.createDirectory(atPath: staleOld, withIntermediateDirectories: true)
    try Data().write(to: URL(fileURLWithPath: liveTmp))
    #expect(liveTmp.hasPrefix(dir + "/.bundle.tmp-\(getpid())-"))
    DurableFiles.removeStale(besides: target, kinds: ["tmp"])
    #expect(!fm.fileExists(atPath: staleDir) && fm.fileExists(atPath: staleOld) && fm.fileExists(atPath: liveTmp))
    DurableFiles.removeStale(besides: target + "/", kinds: ["tmp", "old"])
    #expect(!fm.fileExists(atPath: staleOld) && fm.fileExists(atPath: liveTmp))
    #expect(DurableFiles.ownerPID(".bundle.tmp-12-x", base: "bundle", kinds: ["tmp"]) == 12)
    #expect(DurableFiles.ownerPID(".bundle.tmp-x-12", base: "bundle", kinds: ["tmp"]) == nil)
    #expect(DurableFiles.ownerPID(".bundle2.tmp-12-x", base: "bundle", kinds: ["tmp"]) == nil)
}
