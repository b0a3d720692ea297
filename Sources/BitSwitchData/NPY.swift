import Foundation

/// The element data of an `NPYArray`, one case per supported NumPy dtype.
public enum NPYData: Equatable, Sendable {
    case float32([Float])
    case float64([Double])
    case int64([Int64])
    case int32([Int32])
    case uint8([UInt8])
    case int8([Int8])
    case bool([Bool])

    public var count: Int {
        switch self {
        case .float32(let v): v.count
        case .float64(let v): v.count
        case .int64(let v): v.count
        case .int32(let v): v.count
        case .uint8(let v): v.count
        case .int8(let v): v.count
        case .bool(let v): v.count
        }
    }

    /// The NumPy type string written to and expected in headers (always little-endian).
    public var descr: String {
        switch self {
        case .float32: "<f4"
        case .float64: "<f8"
        case .int64: "<i8"
        case .int32: "<i4"
        case .uint8: "|u1"
        case .int8: "|i1"
        case .bool: "|b1"
        }
    }

    var isFloatingPoint: Bool {
        switch self {
        case .float32, .float64: true
        default: false
        }
    }
}

/// A NumPy `.npy` array: little-endian, C order, format versions 1.0, 2.0 and 3.0.
public struct NPYArray: Equatable, Sendable {
    public var shape: [Int]
    public var data: NPYData

    public init(shape: [Int], data: NPYData) {
        self.shape = shape
        self.data = data
    }

    /// The elements converted to Float (bool as 0/1).
    public var floats: [Float] {
        switch data {
        case .float32(let v): v
        case .float64(let v): v.map { Float($0) }
        case .int64(let v): v.map { Float($0) }
        case .int32(let v): v.map { Float($0) }
        case .uint8(let v): v.map { Float($0) }
        case .int8(let v): v.map { Float($0) }
        case .bool(let v): v.map { $0 ? 1 : 0 }
        }
    }

    /// The elements converted to Int; floating-point values are truncated toward zero and non-finite ones become 0
    /// (callers that need exact integers check `data` first, as `Dataset` does for labels).
    public var ints: [Int] {
        switch data {
        case .float32(let v): v.map { $0.isFinite ? Int(exactly: $0.rounded(.towardZero)) ?? 0 : 0 }
        case .float64(let v): v.map { $0.isFinite ? Int(exactly: $0.rounded(.towardZero)) ?? 0 : 0 }
        case .int64(let v): v.map { Int($0) }
        case .int32(let v): v.map { Int($0) }
        case .uint8(let v): v.map { Int($0) }
        case .int8(let v): v.map { Int($0) }
        case .bool(let v): v.map { $0 ? 1 : 0 }
        }
    }

    public static func read(path: String) throws -> NPYArray {
        try parse(FileIO.read(path), file: path)
    }

    /// Atomic: the bytes go to a temporary file in the same directory, which is then renamed over `path`.
    public func write(to path: String) throws {
        try FileIO.writeAtomically(encoded(file: path), to: path)
    }

    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // "\x93NUMPY"

    static func parse(_ bytes: Data, file: String) throws -> NPYArray {
        let b = [UInt8](bytes.prefix(12))
        if FileIO.isGzip(bytes) {
            throw DataError(.format, file: file, "is gzip-compressed; decompress it first (gunzip)")
        }
        guard b.count >= 10, Array(b[0..<6]) == magic else {
            if bytes.prefix(4) == Data([0x50, 0x4B, 0x03, 0x04]) {
                throw DataError(.unsupported, file: file, "is a zip archive (.npz?); save each array with numpy.save as .npy")
            }
            throw DataError(.format, file: file, "not an .npy file (missing \\x93NUMPY magic)")
        }
        let major = b[6]
        let headerLength: Int
        let headerStart: Int
        switch major {
        case 1:
            headerLength = Int(b[8]) | Int(b[9]) << 8
            headerStart = 10
        case 2, 3:
            guard b.count >= 12 else { throw DataError(.format, file: file, "truncated .npy header") }
            headerLength = Int(b[8]) | Int(b[9]) << 8 | Int(b[10]) << 16 | Int(b[11]) << 24
            headerStart = 12
        default:
            throw DataError(.unsupported, file: file, ".npy format version \(major).\(b[7]) is not supported (1.0, 2.0, 3.0 are)")
        }
        guard bytes.count >= headerStart + headerLength else {
            throw DataError(.format, file: file, "truncated .npy header")
        }
        let base = bytes.startIndex
        let headerBytes = bytes[(base + headerStart)..<(base + headerStart + headerLength)]
        guard let header = String(data: headerBytes, encoding: major == 3 ? .utf8 : .isoLatin1) else {
            throw DataError(.format, file: file, "unreadable .npy header")
        }
        let dict = try NPYHeader(parsing: header, file: file)
        if dict.fortranOrder {
            throw DataError(.unsupported, file: file,
                            "array is stored in Fortran order; save it with numpy.ascontiguousarray first")
        }
        var count = 1
        for d in dict.shape {
            let (p, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow else { throw DataError(.format, file: file, "shape \(dict.shape) is too large") }
            count = p
        }
        let offset = headerStart + headerLength
        let available = bytes.count - offset
        let data = try decode(descr: dict.descr, count: count, bytes: bytes, offset: offset, available: available,
                              file: file)
        return NPYArray(shape: dict.shape, data: data)
    }

    private static func decode(descr: String, count: Int, bytes: Data, offset: Int, available: Int,
                               file: String) throws -> NPYData {
        var d = descr
        let order = d.first
        if order == ">" && !(d.hasSuffix("1")) {
            throw DataError(.unsupported, file: file, "big-endian dtype '\(descr)' is not supported; use '<' (little-endian)")
        }
        if order == "<" || order == "|" || order == "=" || order == ">" { d.removeFirst() }
        let itemSize: Int
        switch d {
        case "f4", "i4": itemSize = 4
        case "f8", "i8": itemSize = 8
        case "u1", "i1", "b1": itemSize = 1
        default:
            throw DataError(.unsupported, file: file,
                            "dtype '\(descr)' is not supported (float32, float64, int64, int32, uint8, int8, bool are)")
        }
        let (needed, overflow) = count.multipliedReportingOverflow(by: itemSize)
        guard !overflow else {
            throw DataError(.format, file: file, "truncated: header promises \(count) elements of \(itemSize) bytes, more than any file holds")
        }
        guard available >= needed else {
            throw DataError(.format, file: file, "truncated: header promises \(count) elements (\(needed) bytes), file has \(available) bytes of data")
        }
        return bytes.withUnsafeBytes { raw -> NPYData in
            let src = UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + needed)])
            switch d {
            case "f4": return .float32(copyLittleEndian(src, count: count, as: UInt32.self).map(Float.init(bitPattern:)))
            case "f8": return .float64(copyLittleEndian(src, count: count, as: UInt64.self).map(Double.init(bitPattern:)))
            case "i4": return .int32(copyLittleEndian(src, count: count, as: Int32.self))
            case "i8": return .int64(copyLittleEndian(src, count: count, as: Int64.self))
            case "u1": return .uint8(Array(src))
            case "i1": return .int8(src.map { Int8(bitPattern: $0) })
            default: return .bool(src.map { $0 != 0 })
            }
        }
    }

    func encoded(file: String) throws -> Data {
        var count = 1
        for d in shape {
            guard d >= 0 else { throw DataError(.inconsistent, file: file, "negative dimension in shape \(shape)") }
            count *= d
        }
        guard count == data.count else {
            throw DataError(.inconsistent, file: file, "shape \(shape) holds \(count) elements but the data has \(data.count)")
        }
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(data.descr)', 'fortran_order': False, 'shape': \(shapeText), }"
        // NumPy pads so the data starts on a 64-byte boundary; the header ends with a newline.
        var prefixLength = 10
        if (header.utf8.count + 1 + prefixLength + 63) / 64 * 64 - prefixLength > 65535 { prefixLength = 12 }
        let total = (prefixLength + header.utf8.count + 1 + 63) / 64 * 64
        header += String(repeating: " ", count: total - prefixLength - header.utf8.count - 1) + "\n"
        let headerLength = header.utf8.count

        var out = Data(NPYArray.magic)
        if prefixLength == 10 {
            out.append(contentsOf: [1, 0, UInt8(headerLength & 0xFF), UInt8(headerLength >> 8)])
        } else {
            out.append(contentsOf: [2, 0] + (0..<4).map { UInt8((headerLength >> (8 * $0)) & 0xFF) })
        }
        out.append(contentsOf: Array(header.utf8))
        switch data {
        case .float32(let v): appendLittleEndian(v.map(\.bitPattern), to: &out)
        case .float64(let v): appendLittleEndian(v.map(\.bitPattern), to: &out)
        case .int64(let v): appendLittleEndian(v, to: &out)
        case .int32(let v): appendLittleEndian(v, to: &out)
        case .uint8(let v): out.append(contentsOf: v)
        case .int8(let v): out.append(contentsOf: v.map { UInt8(bitPattern: $0) })
        case .bool(let v): out.append(contentsOf: v.map { $0 ? 1 : 0 })
        }
        return out
    }
}

func copyLittleEndian<T: FixedWidthInteger>(_ src: UnsafeRawBufferPointer, count: Int, as: T.Type) -> [T] {
    [T](unsafeUninitializedCapacity: count) { buffer, initialized in
        if count > 0, let dst = buffer.baseAddress, let s = src.baseAddress {
            UnsafeMutableRawPointer(dst).copyMemory(from: s, byteCount: count * MemoryLayout<T>.size)
        }
        #if _endian(big)
        for i in 0..<count { buffer[i] = T(littleEndian: buffer[i]) }
        #endif
        initialized = count
    }
}

func appendLittleEndian<T: FixedWidthInteger>(_ values: [T], to out: inout Data) {
    #if _endian(big)
    let values = values.map(\.littleEndian)
    #endif
    values.withUnsafeBytes { out.append(contentsOf: $0) }
}

/// The Python dict literal of an .npy header: `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`.
struct NPYHeader {
    var descr: String
    var fortranOrder: Bool
    var shape: [Int]

    init(parsing text: String, file: String) throws {
        func value(of key: String) throws -> Substring {
            for quote in ["'", "\""] {
                if let r = text.range(of: quote + key + quote) {
                    var rest = text[r.upperBound...].drop { $0 == " " }
                    guard rest.first == ":" else { break }
                    rest = rest.dropFirst().drop { $0 == " " }
                    return rest
                }
            }
            throw DataError(.format, file: file, "malformed .npy header (no '\(key)'): \(text.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        let d = try value(of: "descr")
        guard let q = d.first, q == "'" || q == "\"", let end = d.dropFirst().firstIndex(of: q) else {
            throw DataError(.unsupported, file: file, "structured or unreadable dtype in .npy header: \(text.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        descr = String(d[d.index(after: d.startIndex)..<end])
        let f = try value(of: "fortran_order")
        if f.hasPrefix("True") { fortranOrder = true } else if f.hasPrefix("False") { fortranOrder = false } else {
            throw DataError(.format, file: file, "malformed fortran_order in .npy header")
        }
        let s = try value(of: "shape")
        guard s.first == "(", let close = s.firstIndex(of: ")") else {
            throw DataError(.format, file: file, "malformed shape in .npy header")
        }
        var dims: [Int] = []
        for part in s[s.index(after: s.startIndex)..<close].split(separator: ",") {
            let t = part.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "L", with: "")
            if t.isEmpty { continue }
            guard let n = Int(t), n >= 0 else {
                throw DataError(.format, file: file, "malformed shape in .npy header: '\(t)'")
            }
            dims.append(n)
        }
        shape = dims
    }
}
