import BitSwitchIR
import Foundation

/// Training checkpoints: a flat list of named tensors in one binary file, written atomically (temp file + rename).
///
/// Layout (all integers little-endian):
///
///     magic   8 bytes  "BSCKPT01"
///     count   u32      number of entries
///     entry × count:
///       nameLength u32, name (UTF-8)
///       dtype      u8   (ONNX TensorProto code: 1 = float32, 7 = int64)
///       rank       u8,  dims  i64 × rank
///       payload    element count × 4 (float32) or × 8 (int64) bytes
///
/// The trainer stores every initializer under `value/<name>`, the optimizer state under `optimizer/<param>#step|#m|#v`,
/// and its counters under `meta/…` (epoch, batch, seed, per-epoch history). Anything else may add its own prefix.
public enum Checkpoint {
    static let magic = Array("BSCKPT01".utf8)

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
        let url = URL(fileURLWithPath: path)
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try out.write(to: url, options: .atomic)
        } catch {
            throw BitSwitchError(.io, "cannot write checkpoint: \(error.localizedDescription)", file: path)
        }
    }

    public static func read(from path: String) throws -> [String: Tensor] {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw BitSwitchError(.io, "cannot read checkpoint: \(error.localizedDescription)", file: path)
        }
        var r = Reader(bytes: [UInt8](data), path: path)
        guard Array(try r.bytes(8)) == magic else { throw BitSwitchError(.parse, "not a BitSwitch checkpoint", file: path) }
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
