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

/// `exchange` swaps a directory and a file in one step (what `emit` does over an existing bundle).
@Test func exchangeSwapsTwoEntriesAtomically() throws {
    let fm = FileManager.default
    let dir = fm.temporaryDirectory.appendingPathComponent("bitswitch-exchange-\(UUID().uuidString)").path
    try fm.createDirectory(atPath: dir + "/old", withIntermediateDirectories: true)
    defer { try? fm.removeItem(atPath: dir) }
    try "old".write(toFile: dir + "/old/v", atomically: false, encoding: .utf8)
    try "new".write(toFile: dir + "/new", atomically: false, encoding: .utf8)
    #if os(Linux)
    #expect(DurableFiles.exchange(dir + "/new", dir + "/old"))
    #expect(try String(contentsOfFile: dir + "/new/v", encoding: .utf8) == "old")
    #expect(try String(contentsOfFile: dir + "/old", encoding: .utf8) == "new")
    #endif
    #expect(!DurableFiles.exchange(dir + "/missing", dir + "/old"))
}
