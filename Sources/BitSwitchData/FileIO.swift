import Foundation

/// Whole-file reads and atomic writes shared by the readers and writers of this module.
enum FileIO {
    static func read(_ path: String) throws -> Data {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw DataError(.io, file: path, "no such file")
        }
        if isDirectory.boolValue { throw DataError(.io, file: path, "is a directory, expected a file") }
        do {
            return try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe)
        } catch {
            throw DataError(.io, file: path, "cannot read: \(error.localizedDescription)")
        }
    }

    /// Writes next to the destination and renames over it, so a reader never sees a half-written file
    /// and an interrupted write leaves the old file intact.
    static func writeAtomically(_ data: Data, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent()
        let temp = directory.appendingPathComponent(".\(url.lastPathComponent).tmp-\(UUID().uuidString)")
        do {
            try data.write(to: temp)
        } catch {
            throw DataError(.io, file: path, "cannot write: \(error.localizedDescription)")
        }
        if rename(temp.path, url.path) != 0 {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: temp)
            throw DataError(.io, file: path, "cannot move the written file into place: \(reason)")
        }
    }

    /// True when the bytes start with the gzip magic number.
    static func isGzip(_ data: Data) -> Bool {
        data.count >= 2 && data[data.startIndex] == 0x1F && data[data.startIndex + 1] == 0x8B
    }
}
