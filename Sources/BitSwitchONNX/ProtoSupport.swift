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

/// A whole file mapped read-only. Mapping instead of reading saves a 100 MB model one full copy (and ~60 ms):
/// protobuf-c copies every bytes field out of the buffer anyway.
final class MappedFile: @unchecked Sendable {
    let bytes: UnsafeRawBufferPointer
    private let mapping: UnsafeMutableRawPointer?

    init(path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw BitSwitchError(.io, "cannot open file: \(errnoText())", file: path) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw BitSwitchError(.io, "cannot stat file: \(errnoText())", file: path) }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw BitSwitchError(.io, "not a regular file", file: path)
        }
        let size = Int(st.st_size)
        guard size > 0 else {
            mapping = nil
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        guard let m = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), m != MAP_FAILED else {
            throw BitSwitchError(.io, "cannot map file: \(errnoText())", file: path)
        }
        mapping = m
        bytes = UnsafeRawBufferPointer(start: m, count: size)
    }

    deinit { if let mapping { munmap(mapping, bytes.count) } }
}

/// Writes via a temporary file in the same directory and rename, so readers never see a half-written file.
func writeFileAtomically(_ bytes: [UInt8], to path: String) throws {
    let dir = directoryOf(path)
    let base = path.split(separator: "/").last.map(String.init) ?? "out"
    let tmp = "\(dir)/.\(base).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
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
}

