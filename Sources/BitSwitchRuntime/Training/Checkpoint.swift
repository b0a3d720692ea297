import BitSwitchIR
import BitSwitchData
import Foundation

/// Training checkpoints: a flat list of named tensors in one binary file, written atomically and durably (temp file,
/// fsync, rename, fsync of the directory), so a run killed at any moment leaves the previous checkpoint or the new one.
///
/// Layout (all integers little-endian):
///
///     magic   8 bytes  "BSCKPT02" ("BSCKPT01" files, without the checksum, are still read)
///     count   u32      number of entries
///     entry × count:
///       nameLength u32, name (UTF-8)
///       dtype      u8   (ONNX TensorProto code: 1 = float32, 7 = int64)
///       rank       u8,  dims  i64 × rank
///       payload    element count × 4 (float32) or × 8 (int64) bytes
///     checksum u64     FNV-1a 64 of every byte before it: a corrupted or truncated file is refused, never used
///
/// The trainer stores every initializer under `value/<name>`, the optimizer state under `optimizer/<param>#step|#m|#v`,
/// and its counters under `meta/…` (epoch, batch, seed, per-epoch history). Anything else may add its own prefix.
public enum Checkpoint {
    static let magic = Array("BSCKPT02".utf8)
    static let magicV1 = Array("BSCKPT01".utf8)

    static func fnv1a(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        return h
    }

    public static func write(_ entries: [(String, Tensor)], to path: String) throws {
        var out = Data()
        out.append(contentsOf: magic)
        appendInt(&out, UInt32(entries.count))
        for (name, t) in entries {
            guard t.rank <= Int(UInt8.max) else { throw BitSwitchError(.training, "checkpoint entry '\(name)' has rank \(t.rank)") }
            let nameBytes = Array(name.utf8)
            appendInt(&out, UInt32(nameBytes.count))
            out.append(contentsOf: nameBytes)
            switch t.storage {
            case .f32(let a):
                out.append(UInt8(1))
                appendShape(&out, t.shape)
                for v in a { appendInt(&out, v.bitPattern) }
            case .i64(let a):
                out.append(UInt8(7))
                appendShape(&out, t.shape)
                for v in a { appendInt(&out, UInt64(bitPattern: v)) }
            default:
                throw BitSwitchError(.training, "checkpoint entry '\(name)' has type \(t.dtype); only f32 and i64 are stored")
            }
        }
        let sum = out.withUnsafeBytes { fnv1a($0) }
        appendInt(&out, sum)
        let url = URL(fileURLWithPath: path)
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try AtomicFile.write(out, to: path)
        } catch let e as DataError {
            throw BitSwitchError(.io, "cannot write checkpoint: \(e.message)", file: path)
        } catch {
            throw BitSwitchError(.io, "cannot write checkpoint: \(error.localizedDescription)", file: path)
        }
    }

    public static func read(from path: String) throws -> [String: Tensor] {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw BitSwitchError(.io, "cannot read checkpoint: \(error.localizedDescription)", file: path)
        }
        var bytes = [UInt8](data)
        guard bytes.count >= 8 else {
            throw BitSwitchError(.parse, "checkpoint is truncated (\(bytes.count) bytes); it cannot be resumed from",
                                 file: path)
        }
        let head = Array(bytes[0..<8])
        if head == magic {
            guard bytes.count >= 16 else { throw BitSwitchError(.parse, "checkpoint is truncated", file: path) }
            let body = bytes.count - 8
            let stored = bytes[body...].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let actual = bytes.withUnsafeBytes { fnv1a(UnsafeRawBufferPointer(rebasing: $0[0..<body])) }
            guard stored == actual else {
                throw BitSwitchError(.parse, "checkpoint is corrupted or truncated (checksum mismatch); it cannot be "
                                     + "resumed from — delete it to start over", file: path)
            }
            bytes.removeLast(8)
        } else if head != magicV1 {
            throw BitSwitchError(.parse, "not a BitSwitch checkpoint", file: path)
        }
        var r = Reader(bytes: bytes, path: path)
        _ = try r.bytes(8)
        let count = Int(try r.u32())
        var result: [String: Tensor] = [:]
        for _ in 0..<count {
            let nameLength = Int(try r.u32())
            guard let name = String(bytes: try r.bytes(nameLength), encoding: .utf8) else {
                throw BitSwitchError(.parse, "checkpoint entry name is not UTF-8", file: path)
            }
            let code = try r.u8()
            let rank = Int(try r.u8())
            var shape: [Int] = []
            for _ in 0..<rank { shape.append(Int(Int64(bitPattern: try r.u64()))) }
            guard let n = checkedElementCount(shape), n <= r.remaining else {
                throw BitSwitchError(.parse, "checkpoint entry '\(name)' has an impossible shape \(shape)", file: path)
            }
            switch code {
            case 1:
                var a = [Float](repeating: 0, count: n)
                for i in 0..<n { a[i] = Float(bitPattern: try r.u32()) }
                result[name] = Tensor(shape: shape, floats: a)
            case 7:
                var a = [Int64](repeating: 0, count: n)
                for i in 0..<n { a[i] = Int64(bitPattern: try r.u64()) }
                result[name] = Tensor(shape: shape, int64s: a)
            default:
                throw BitSwitchError(.parse, "checkpoint entry '\(name)' has unknown type code \(code)", file: path)
            }
        }
        guard r.remaining == 0 else {
            throw BitSwitchError(.parse, "checkpoint has \(r.remaining) unexpected bytes after its last entry", file: path)
        }
        return result
    }

    private static func appendInt<T: FixedWidthInteger>(_ d: inout Data, _ v: T) {
        withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) }
    }
    private static func appendShape(_ d: inout Data, _ shape: [Int]) {
        d.append(UInt8(shape.count))
        for s in shape { appendInt(&d, Int64(s)) }
    }

    private struct Reader {
        let bytes: [UInt8]
        let path: String
        var pos = 0
        var remaining: Int { bytes.count - pos }
        mutating func bytes(_ n: Int) throws -> ArraySlice<UInt8> {
            guard n >= 0, n <= remaining else { throw BitSwitchError(.parse, "checkpoint is truncated", file: path) }
            defer { pos += n }
            return bytes[pos..<(pos + n)]
        }
        mutating func u8() throws -> UInt8 {
            try bytes(1).reduce(0) { $1 | $0 }
        }
        mutating func u32() throws -> UInt32 {
            try bytes(4).reversed().reduce(0) { $0 << 8 | UInt32($1) }
        }
        mutating func u64() throws -> UInt64 {
            try bytes(8).reversed().reduce(0) { $0 << 8 | UInt64($1) }
        }
    }
}
