import CZlib
import Foundation

/// The IDX format of the MNIST files: `0 0 type rank`, `rank` big-endian UInt32 dimensions, then big-endian data.
public enum IDX {
    /// Reads an IDX file, gzip-compressed (as MNIST and Fashion-MNIST are shipped; decompressed in memory through
    /// zlib) or not. Unsigned/signed bytes keep their type; int16 and int32 become `.int32`, float32 and float64
    /// keep theirs.
    public static func read(path: String) throws -> NPYArray {
        var bytes = try FileIO.read(path)
        if FileIO.isGzip(bytes) {
            bytes = try gunzip(bytes, file: path)
        } else if path.hasSuffix(".gz") {
            throw DataError(.format, file: path, "is named .gz but does not start with the gzip magic bytes 1F 8B")
        }
        return try parse(bytes, file: path)
    }

    /// The largest decompressed IDX file accepted (8 GiB), so a corrupt stream cannot exhaust memory.
    static let maxDecompressedBytes = 8 << 30

    /// Decompresses gzip data (several concatenated members allowed) with the system zlib.
    static func gunzip(_ data: Data, file: String) throws -> Data {
        var out: UnsafeMutablePointer<UInt8>? = nil
        var count = 0
        var message = [CChar](repeating: 0, count: 256)
        let rc = data.withUnsafeBytes { raw in
            bs_gunzip(raw.bindMemory(to: UInt8.self).baseAddress, raw.count, maxDecompressedBytes, &out, &count,
                      &message, message.count)
        }
        guard rc == 0, let out else {
            let text = message.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            throw DataError(.format, file: file, "cannot decompress: \(text)")
        }
        return Data(bytesNoCopy: out, count: count, deallocator: .free)
    }

    static func parse(_ bytes: Data, file: String) throws -> NPYArray {
        let b = [UInt8](bytes.prefix(4))
        guard b.count == 4, b[0] == 0, b[1] == 0 else {
            throw DataError(.format, file: file, "not an IDX file (the first two bytes must be zero)")
        }
        let rank = Int(b[3])
        guard rank >= 1 else { throw DataError(.format, file: file, "IDX file with rank 0") }
        let headerLength = 4 + 4 * rank
        guard bytes.count >= headerLength else { throw DataError(.format, file: file, "truncated IDX header") }
        var shape: [Int] = []
        var count = 1
        for i in 0..<rank {
            let o = bytes.startIndex + 4 + 4 * i
            let d = Int(bytes[o]) << 24 | Int(bytes[o + 1]) << 16 | Int(bytes[o + 2]) << 8 | Int(bytes[o + 3])
            shape.append(d)
            count *= d  // at most 2^32 per dimension and rank ≤ 255 would overflow only with absurd files
            guard count <= Int(Int32.max) * 64 else { throw DataError(.format, file: file, "IDX shape \(shape) is too large") }
        }
        let itemSize: Int
        switch b[2] {
        case 0x08, 0x09: itemSize = 1
        case 0x0B: itemSize = 2
        case 0x0C, 0x0D: itemSize = 4
        case 0x0E: itemSize = 8
        default: throw DataError(.format, file: file, String(format: "unknown IDX data type 0x%02X", b[2]))
        }
        let available = bytes.count - headerLength
        guard available >= count * itemSize else {
            throw DataError(.format, file: file, "truncated: header promises shape \(shape) (\(count * itemSize) bytes), file has \(available) bytes of data")
        }
        let data: NPYData = bytes.withUnsafeBytes { raw in
            let src = UnsafeRawBufferPointer(rebasing: raw[headerLength..<(headerLength + count * itemSize)])
            func bigEndian<T: FixedWidthInteger>(_: T.Type) -> [T] {
                (0..<count).map { T(bigEndian: src.loadUnaligned(fromByteOffset: $0 * itemSize, as: T.self)) }
            }
            switch b[2] {
            case 0x08: return .uint8(Array(src))
            case 0x09: return .int8(src.map { Int8(bitPattern: $0) })
            case 0x0B: return .int32(bigEndian(Int16.self).map { Int32($0) })
            case 0x0C: return .int32(bigEndian(Int32.self))
            case 0x0D: return .float32(bigEndian(UInt32.self).map(Float.init(bitPattern:)))
            default: return .float64(bigEndian(UInt64.self).map(Double.init(bitPattern:)))
            }
        }
        return NPYArray(shape: shape, data: data)
    }

    /// Writes an uncompressed IDX file (atomically); used to make test files and to export MNIST-like data.
    public static func write(_ array: NPYArray, to path: String) throws {
        let (type, payload): (UInt8, [UInt8])
        switch array.data {
        case .uint8(let v): (type, payload) = (0x08, v)
        case .int8(let v): (type, payload) = (0x09, v.map { UInt8(bitPattern: $0) })
        case .int32(let v): (type, payload) = (0x0C, v.flatMap { bytesBigEndian($0) })
        case .float32(let v): (type, payload) = (0x0D, v.flatMap { bytesBigEndian($0.bitPattern) })
        case .float64(let v): (type, payload) = (0x0E, v.flatMap { bytesBigEndian($0.bitPattern) })
        case .int64, .bool:
            throw DataError(.unsupported, file: path, "IDX has no \(array.data.descr) type")
        }
        guard array.shape.count <= 255, array.shape.allSatisfy({ $0 >= 0 && $0 <= Int(UInt32.max) }),
              array.shape.reduce(1, *) == array.data.count else {
            throw DataError(.inconsistent, file: path, "shape \(array.shape) does not fit the data or the IDX format")
        }
        var out = Data([0, 0, type, UInt8(array.shape.count)])
        for d in array.shape { out.append(contentsOf: bytesBigEndian(UInt32(d))) }
        out.append(contentsOf: payload)
        try FileIO.writeAtomically(out, to: path)
    }

    private static func bytesBigEndian<T: FixedWidthInteger>(_ v: T) -> [UInt8] {
        withUnsafeBytes(of: v.bigEndian) { Array($0) }
    }
}

/// CIFAR-10 binary batches (`data_batch_1.bin` … `test_batch.bin`): records of 1 label byte and 3072 pixel bytes
/// (R, G, B planes of 32×32, so already [3, 32, 32] in C order).
public enum CIFAR10 {
    public static let recordSize = 1 + 3 * 32 * 32

    /// Returns the pixels scaled to [0, 1] and the labels.
    public static func readBatch(path: String) throws -> (x: [Float], y: [Int32]) {
        let bytes = try FileIO.read(path)
        if FileIO.isGzip(bytes) {
            throw DataError(.format, file: path, "is gzip-compressed; extract the CIFAR-10 binary archive first (tar xzf)")
        }
        guard !bytes.isEmpty, bytes.count % recordSize == 0 else {
            throw DataError(.format, file: path, "size \(bytes.count) is not a multiple of the CIFAR-10 record size \(recordSize)")
        }
        let n = bytes.count / recordSize
        var x = [Float](repeating: 0, count: n * (recordSize - 1))
        var y = [Int32](repeating: 0, count: n)
        try bytes.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            try x.withUnsafeMutableBufferPointer { xs in
                for i in 0..<n {
                    let label = raw[i * recordSize]
                    guard label < 10 else {
                        throw DataError(.inconsistent, file: path, "record \(i) has label \(label); CIFAR-10 labels are 0...9")
                    }
                    y[i] = Int32(label)
                    let src = i * recordSize + 1
                    let dst = i * (recordSize - 1)
                    for j in 0..<(recordSize - 1) { xs[dst + j] = Float(raw[src + j]) / 255 }
                }
            }
        }
        return (x, y)
    }
}
