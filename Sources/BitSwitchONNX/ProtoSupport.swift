import BitSwitchIR
import CONNX
import CProtobufC
import Glibc

#if _endian(big)
#error("ONNX raw data is little-endian; BitSwitch copies it into tensors byte for byte")
#endif

// MARK: owning wrappers for unpacked messages

/// Owns a ModelProto unpacked by protobuf-c; the C tree is freed exactly once, when the wrapper goes.
final class UnpackedModel: @unchecked Sendable {
    let message: UnsafeMutablePointer<Onnx__ModelProto>
    init?(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self),
              let m = onnx__model_proto__unpack(nil, bytes.count, base) else { return nil }
        message = m
    }
    deinit { onnx__model_proto__free_unpacked(message, nil) }
}

/// Owns a bare TensorProto unpacked by protobuf-c (ONNX test-data `.pb` files).
final class UnpackedTensor: @unchecked Sendable {
    let message: UnsafeMutablePointer<Onnx__TensorProto>
    init?(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self),
              let m = onnx__tensor_proto__unpack(nil, bytes.count, base) else { return nil }
        message = m
    }
    deinit { onnx__tensor_proto__free_unpacked(message, nil) }
}

// MARK: reading C fields

/// Absent proto2 strings are NULL.
@inline(__always)
func cString(_ p: UnsafeMutablePointer<CChar>?) -> String { p.map { String(cString: $0) } ?? "" }

@inline(__always)
func cList<T>(_ p: UnsafeMutablePointer<T>?, _ n: Int) -> UnsafeBufferPointer<T> {
    guard let p, n > 0 else { return UnsafeBufferPointer(start: nil, count: 0) }
    return UnsafeBufferPointer(start: p, count: n)
}

/// Repeated message fields are arrays of pointers that protobuf-c never leaves NULL; skip any that are.
func cMessages<T>(_ p: UnsafeMutablePointer<UnsafeMutablePointer<T>?>?, _ n: Int) -> [UnsafeMutablePointer<T>] {
    cList(p, n).compactMap { $0 }
}

func cStrings(_ p: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ n: Int) -> [String] {
    cList(p, n).map(cString)
}

func binaryString(_ b: ProtobufCBinaryData) -> String {
    guard b.len > 0, let d = b.data else { return "" }
    return String(decoding: UnsafeBufferPointer(start: d, count: b.len), as: UTF8.self)
}

// MARK: files

/// Parent directory of a path as written ("." for a bare file name).
func directoryOf(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    let dir = String(path[..<slash])
    return dir.isEmpty ? "/" : dir
}

func errnoText() -> String { String(cString: strerror(errno)) }

/// Reads a whole regular file with read(2). The model is not mapped: a mapped file that another process truncates
/// raises SIGBUS on the next access, a read only comes up short, which is reported. Reading costs one copy of the
/// file (measured in bench/README.md).
func readWholeFile(path: String) throws -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw BitSwitchError(.io, "cannot open file: \(errnoText())", file: path) }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0 else { throw BitSwitchError(.io, "cannot stat file: \(errnoText())", file: path) }
    guard (st.st_mode & S_IFMT) == S_IFREG else {
        throw BitSwitchError(.io, "not a regular file", file: path)
    }
    let size = Int(st.st_size)
    if let available = availableMemoryBytes(), size > available {
        throw BitSwitchError(.io, "the file has \(size) bytes, more than the \(available) bytes of memory available",
                             file: path)
    }
    var failure: String? = nil
    let bytes = [UInt8](unsafeUninitializedCapacity: size) { buf, n in
        n = 0
        guard size > 0, let base = buf.baseAddress else { return }
        while n < size {
            let r = read(fd, base + n, size - n)
            if r < 0 {
                if errno == EINTR { continue }
                failure = "cannot read file: \(errnoText())"; return
            }
            if r == 0 {
                failure = "the file shrank from \(size) to \(n) bytes while it was read (truncated or replaced "
                    + "during the import)"
                return
            }
            n += r
        }
    }
    if let failure { throw BitSwitchError(.io, failure, file: path) }
    return bytes
}

/// Writes via a temporary file in the same directory, fsync, rename and fsync of the directory, so readers never see
/// a half-written file and a finished write is on disk. Temporaries that killed writers left beside the target are
/// removed first.
func writeFileAtomically(_ bytes: [UInt8], to path: String) throws {
    let dir = directoryOf(path)
    DurableFiles.removeStale(besides: path)
    let tmp = DurableFiles.temporaryPath(for: path)
    let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw BitSwitchError(.io, "cannot create temporary file '\(tmp)': \(errnoText())", file: path) }
    var failure: String? = nil
    bytes.withUnsafeBytes { buf in
        var done = 0
        while done < buf.count {
            let r = write(fd, buf.baseAddress! + done, buf.count - done)
            if r < 0 { if errno == EINTR { continue }; failure = "cannot write: \(errnoText())"; return }
            done += r
        }
        if fsync(fd) != 0 { failure = "cannot sync: \(errnoText())" }
    }
    if close(fd) != 0, failure == nil { failure = "cannot close: \(errnoText())" }
    if failure == nil, rename(tmp, path) != 0 { failure = "cannot rename into place: \(errnoText())" }
    if let failure {
        unlink(tmp)
        throw BitSwitchError(.io, failure, file: path)
    }
    // The rename is durable only once the directory entry is on disk.
    DurableFiles.sync(dir, directory: true)
}

