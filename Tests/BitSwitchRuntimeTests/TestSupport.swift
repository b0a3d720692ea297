import BitSwitchIR
import Foundation
@testable import BitSwitchRuntime

let fixturesDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

/// Decodes a fixture tensor: {"dtype", "shape", "data": base64 little-endian container bytes}.
func decodeTensor(_ j: [String: Any]) throws -> Tensor {
    guard let ds = j["dtype"] as? String, let dtype = DType(rawValue: ds), let shape = j["shape"] as? [Int],
          let b64 = j["data"] as? String, let data = Data(base64Encoded: b64) else {
        throw BitSwitchError(.parse, "bad fixture tensor")
    }
    let bytes = [UInt8](data)
    func load<T>(_: T.Type) -> [T] {
        bytes.withUnsafeBytes { raw in
            (0..<(bytes.count / MemoryLayout<T>.size)).map { raw.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self) }
        }
    }
    switch dtype {
    case .f32, .f16: return Tensor(dtype: dtype, shape: shape, storage: .f32(load(Float.self)))
    case .i8, .i4: return Tensor(dtype: dtype, shape: shape, storage: .i8(load(Int8.self)))
    case .u8, .u4: return Tensor(dtype: dtype, shape: shape, storage: .u8(bytes))
    case .i32: return Tensor(dtype: dtype, shape: shape, storage: .i32(load(Int32.self)))
    case .i64: return Tensor(dtype: dtype, shape: shape, storage: .i64(load(Int64.self)))
    case .bool: return Tensor(dtype: dtype, shape: shape, storage: .bool(bytes.map { $0 != 0 }))
    case .f64: return Tensor(dtype: dtype, shape: shape, storage: .f64(load(Double.self)))
    case .i16: return Tensor(dtype: dtype, shape: shape, storage: .i16(load(Int16.self)))
    case .u16: return Tensor(dtype: dtype, shape: shape, storage: .u16(load(UInt16.self)))
    case .u32: return Tensor(dtype: dtype, shape: shape, storage: .u32(load(UInt32.self)))
    case .u64: return Tensor(dtype: dtype, shape: shape, storage: .u64(load(UInt64.self)))
    }
}

func decodeAttr(_ j: [String: Any]) throws -> AttrValue {
    switch (j["type"] as? String, j["value"]) {
    case ("int", let v as Int): return .int(v)
    case ("float", let v as Double): return .float(Float(v))
    case ("float", let v as Int): return .float(Float(v))
    case ("string", let v as String): return .string(v)
    case ("ints", let v as [Int]): return .ints(v)
    case ("floats", let v as [Double]): return .floats(v.map { Float($0) })
    case ("tensor", let v as [String: Any]): return .tensor(try decodeTensor(v))
    default: throw BitSwitchError(.parse, "bad fixture attribute \(j)")
    }
}

/// Why `got` differs from `want` (rtol/atol for floats, exact otherwise), or nil when they match.
func mismatch(_ got: Tensor, _ want: Tensor, rtol: Float = 1e-4, atol: Float = 1e-5) -> String? {
    if got.shape != want.shape { return "shape \(got.shape) != \(want.shape)" }
    if got.dtype != want.dtype { return "dtype \(got.dtype) != \(want.dtype)" }
    if case .f32(let a) = got.storage, case .f32(let b) = want.storage {
        for i in a.indices {
            if a[i].isNaN && b[i].isNaN { continue }
            if a[i] == b[i] { continue }
            if !(abs(a[i] - b[i]) <= atol + rtol * abs(b[i])) { return "element \(i): \(a[i]) != \(b[i])" }
        }
        return nil
    }
    if case .f64(let a) = got.storage, case .f64(let b) = want.storage {
        for i in a.indices where !(a[i].isNaN && b[i].isNaN) && a[i] != b[i] {
            if !(abs(a[i] - b[i]) <= Double(atol) + Double(rtol) * abs(b[i])) { return "element \(i): \(a[i]) != \(b[i])" }
        }
        return nil
    }
    return got.storage == want.storage ? nil : "values \(got.ints.prefix(16)) != \(want.ints.prefix(16))"
}

func close(_ a: [Float], _ b: [Float], rtol: Float = 1e-4, atol: Float = 1e-5) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= atol + rtol * abs($1) }
}

/// Deterministic pseudo-random floats in [-1, 1).
func randomFloats(_ n: Int, seed: UInt64) -> [Float] {
    var s = seed &* 6364136223846793005 &+ 1442695040888963407
    return (0..<n).map { _ in
        s = s &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int64(bitPattern: s >> 11) % 2_000_000) / 1_000_000 - 1
    }
}
