import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Helpers of the atomic writers of the modules above the IR (ONNX models, C bundles, build outputs): the temporary
/// beside a target is `.<name>.<kind>-<pid>-<random>`, so a writer killed before its rename leaves a file whose owner
/// can be checked, and the next write of the same target removes it. (BitSwitchData, which does not depend on the IR,
/// keeps the same convention in its `FileIO`.)
public enum DurableFiles {
    /// A fresh temporary path beside `path` (same directory, so the rename stays on one file system).
    public static func temporaryPath(for path: String, kind: String = "tmp") -> String {
        let (dir, base) = split(path)
        return "\(dir)/.\(base).\(kind)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }

    /// Removes the temporaries (files or directories) of `kinds` beside `path` that a killed writer left: those whose
    /// process id is no longer running. A live writer's temporary, this process's included, is left alone.
    public static func removeStale(besides path: String, kinds: [String] = ["tmp"]) {
        let (dir, base) = split(path)
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return }
        for name in names {
            guard let pid = ownerPID(name, base: base, kinds: kinds), pid != getpid(), !processExists(pid) else { continue }
            try? FileManager.default.removeItem(atPath: dir + "/" + name)
        }
    }

    /// The writer's pid of a temporary named by `temporaryPath(for: base, kind:)` for one of `kinds`, else nil.
    static func ownerPID(_ name: String, base: String, kinds: [String]) -> pid_t? {
        for kind in kinds {
            let prefix = ".\(base).\(kind)-"
            guard name.hasPrefix(prefix) else { continue }
            let rest = name.dropFirst(prefix.count)
            let digits = rest.prefix { $0.isASCII && $0.isNumber }
            guard !digits.isEmpty, rest.dropFirst(digits.count).first == "-", let pid = pid_t(digits) else { continue }
            return pid
        }
        return nil
    }

    /// True while a process with this id runs (ours or another user's).
    public static func processExists(_ pid: pid_t) -> Bool {
        kill(pid, 0) == 0 || errno == EPERM
    }

    /// fsync of a file or directory by path; false when it cannot be opened or synced.
    @discardableResult
    public static func sync(_ path: String, directory: Bool = false) -> Bool {
        let fd = open(path.isEmpty ? "." : path, directory ? (O_RDONLY | O_DIRECTORY | O_CLOEXEC) : (O_RDONLY | O_CLOEXEC))
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return fsync(fd) == 0
    }

    /// Swaps two paths (files or directories) in one atomic step: Linux `renameat2(..., RENAME_EXCHANGE)`, so a
    /// reader sees either the old or the new entry under each name, never a missing one. False when the kernel or
    /// the file system cannot (`ENOSYS`, `EINVAL`) or on any other failure: the caller falls back to two renames.
    public static func exchange(_ a: String, _ b: String) -> Bool {
        #if os(Linux)
        // glibc declares renameat2 only under _GNU_SOURCE, which Swift's Glibc module does not set: look it up.
        typealias RenameAt2 = @convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32
        guard let symbol = dlsym(nil, "renameat2") else { return false }
        let renameat2 = unsafeBitCast(symbol, to: RenameAt2.self)
        let renameExchange: UInt32 = 2  // RENAME_EXCHANGE, <linux/fs.h>
        return renameat2(AT_FDCWD, a, AT_FDCWD, b, renameExchange) == 0
        #else
        return false
        #endif
    }

    /// The directory part ("." for a bare name) and the last component of `path`.
    static func split(_ path: String) -> (dir: String, base: String) {
        var p = path
        while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
        guard let slash = p.lastIndex(of: "/") else { return (".", p) }
        let dir = String(p[..<slash])
        return (dir.isEmpty ? "/" : dir, String(p[p.index(after: slash)...]))
    }
}
