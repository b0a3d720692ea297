import Foundation

/// Durable atomic writes for every file the tool writes (models, checkpoints, metrics, arrays).
public enum AtomicFile {
    /// Temp file beside `path`, fsync, rename, fsync of the directory: after a crash at any moment the path holds
    /// either the old file or the complete new one. Throws DataError naming the path.
    public static func write(_ data: Data, to path: String) throws { try FileIO.writeAtomically(data, to: path) }

    /// Removes the temporary files that writers killed before their rename left beside `path`
    /// (`.<name>.tmp-<pid>-<uuid>` of a process that no longer runs). Every write does this first; `train --resume`
    /// does it for the checkpoint before reading it.
    public static func removeStaleTemporaries(of path: String) { FileIO.removeStaleTemporaries(of: path) }
}

/// Whole-file reads and atomic writes shared by the readers and writers of this module.
enum FileIO {
    static func read(_ path: String) throws -> Data {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw DataError(.io, file: path, "no such file")
        }
        if isDirectory.boolValue { throw DataError(.io, file: path, "is a directory, expected a file") }
        do {
            // Read, never mapped: a mapped file truncated by another process kills the reader with SIGBUS.
            return try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw DataError(.io, file: path, "cannot read: \(error.localizedDescription)")
        }
    }

    /// Writes next to the destination, fsyncs, renames over it and fsyncs the directory, so a reader never sees a
    /// half-written file, an interrupted write (even SIGKILL or a power cut) leaves the old file intact, and a
    /// finished write is on disk.
    static func writeAtomically(_ data: Data, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        removeStaleTemporaries(of: path)
        // The pid in the name lets a later write tell a dead writer's leftover from a live writer's file.
        let temp = directory + "/.\(url.lastPathComponent).tmp-\(getpid())-\(UUID().uuidString)"
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw DataError(.io, file: path, "cannot create a temporary file beside it: \(String(cString: strerror(errno)))")
        }
        var failure: String? = nil
        let crash = CrashPoint.check(path)
        data.withUnsafeBytes { (buf: UnsafeRawBufferPointer) in
            var done = 0
            while done < buf.count, let base = buf.baseAddress {
                if crash == .halfWritten && done >= buf.count / 2 { _ = fsync(fd); CrashPoint.die() }
                let end = crash == .halfWritten && done < buf.count / 2 ? buf.count / 2 : buf.count
                let r = write(fd, base + done, end - done)
                if r < 0 {
                    if errno == EINTR { continue }
                    failure = "cannot write: \(String(cString: strerror(errno)))"; return
                }
                done += r
            }
            if fsync(fd) != 0 { failure = "cannot sync: \(String(cString: strerror(errno)))" }
        }
        if close(fd) != 0, failure == nil { failure = "cannot close: \(String(cString: strerror(errno)))" }
        if crash == .beforeRename { CrashPoint.die() }
        if failure == nil, rename(temp, url.path) != 0 {
            failure = "cannot move the written file into place: \(String(cString: strerror(errno)))"
        }
        if let failure {
            unlink(temp)
            throw DataError(.io, file: path, failure)
        }
        syncDirectory(directory)
    }

    /// Removes `.<name>.tmp-<pid>-…` files beside `path` whose writer process no longer exists (this process's and
    /// other live writers' are kept). The same convention as the IR's `DurableFiles`, which this module cannot import.
    static func removeStaleTemporaries(of path: String) {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        let prefix = ".\(url.lastPathComponent).tmp-"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for name in names where name.hasPrefix(prefix) {
            let rest = name.dropFirst(prefix.count)
            let digits = rest.prefix { $0.isASCII && $0.isNumber }
            guard !digits.isEmpty, rest.dropFirst(digits.count).first == "-", let pid = pid_t(digits),
                  pid != getpid(), !(kill(pid, 0) == 0 || errno == EPERM) else { continue }
            unlink(directory + "/" + name)
        }
    }

    /// Makes a rename in `directory` durable.
    static func syncDirectory(_ directory: String) {
        let dfd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { _ = fsync(dfd); close(dfd) }
    }

    /// True when the bytes start with the gzip magic number.
    static func isGzip(_ data: Data) -> Bool {
        data.count >= 2 && data[data.startIndex] == 0x1F && data[data.startIndex + 1] == 0x8B
    }
}

/// A test hook for the kill-and-resume tests: `BITSWITCH_TEST_KILL_IN_WRITE=SUFFIX:N:half|before-rename` makes the
/// N-th atomic write of a path ending in SUFFIX kill the process with SIGKILL half-way through the temporary file or
/// just before the rename, the two moments a crash could corrupt a file if writes were not atomic.
enum CrashPoint: Equatable {
    case none, halfWritten, beforeRename

    nonisolated(unsafe) private static var seen = 0
    private static let spec: (suffix: String, n: Int, phase: CrashPoint)? = {
        guard let v = ProcessInfo.processInfo.environment["BITSWITCH_TEST_KILL_IN_WRITE"] else { return nil }
        let parts = v.split(separator: ":").map(String.init)
        guard parts.count == 3, let n = Int(parts[1]) else { return nil }
        return (parts[0], n, parts[2] == "half" ? .halfWritten : .beforeRename)
    }()

    static func check(_ path: String) -> CrashPoint {
        guard let spec, path.hasSuffix(spec.suffix) else { return .none }
        seen += 1
        return seen == spec.n ? spec.phase : .none
    }

    static func die() -> Never {
        kill(getpid(), SIGKILL)
        abort()
    }
}
