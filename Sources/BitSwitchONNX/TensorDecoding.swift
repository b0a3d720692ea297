import BitSwitchIR
import CONNX
import CProtobufC
import Glibc

/// ONNX names of element types BitSwitch does not hold, for error messages.
let onnxTypeNames: [Int: String] = [
    0: "UNDEFINED", 1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64",
    8: "STRING", 9: "BOOL", 10: "FLOAT16", 11: "DOUBLE", 12: "UINT32", 13: "UINT64", 14: "COMPLEX64",
    15: "COMPLEX128", 16: "BFLOAT16", 17: "FLOAT8E4M3FN", 18: "FLOAT8E4M3FNUZ", 19: "FLOAT8E5M2",
    20: "FLOAT8E5M2FNUZ", 21: "UINT4", 22: "INT4", 23: "FLOAT4E2M1", 24: "FLOAT8E8M0", 25: "UINT2", 26: "INT2",
]

func onnxTypeName(_ code: Int) -> String { onnxTypeNames[code] ?? "type code \(code)" }

extension DType {
    /// Bytes per element in BitSwitch storage (f16 is widened to Float, 4-bit types take a byte each).
    var storageByteWidth: Int {
        switch self {
        case .f32, .f16, .i32, .u32: return 4
        case .i64, .f64, .u64: return 8
        case .i16, .u16: return 2
        case .i8, .u8, .bool, .i4, .u4: return 1
        }
    }

    /// Bytes of `count` elements in ONNX's packed raw form; nil on overflow.
    func onnxByteCount(_ count: Int) -> Int? {
        switch self {
        case .i4, .u4: return count / 2 + count % 2
        default:
            let (r, o) = count.multipliedReportingOverflow(by: byteWidth)
            return o ? nil : r
        }
    }
}

/// Turns TensorProtos into Tensors, checking every size against the dims before allocating anything.
struct TensorDecoder {
    /// The file named in errors.
    let file: String
    /// Where external data files are looked up; nil when the model came from bytes without a directory.
    let baseDirectory: String?
    /// The bound on the bytes of decoded tensors: the smaller of the available memory and `--max-memory`.
    let memoryLimit: Int?
    /// Says where `memoryLimit` comes from, for errors.
    let limitSource: String

    init(file: String, baseDirectory: String?, maxMemory: Int?) {
        self.file = file; self.baseDirectory = baseDirectory
        let available = availableMemoryBytes()
        if let maxMemory, maxMemory < (available ?? Int.max) {
            memoryLimit = maxMemory; limitSource = "the --max-memory limit of \(maxMemory) bytes"
        } else {
            memoryLimit = available; limitSource = "the \(available ?? 0) bytes of memory available"
        }
    }

    /// Bytes a tensor will take in BitSwitch storage, from its dims alone; nil if they are negative or overflow
    /// (decode reports those).
    static func storageBytes(_ p: Onnx__TensorProto) -> Int? {
        guard let dtype = DType(onnxCode: Int(p.data_type)) else { return 0 }
        var shape: [Int] = []
        for d in cList(p.dims, p.n_dims) { guard d >= 0 else { return nil }; shape.append(Int(d)) }
        guard let count = checkedElementCount(shape) else { return nil }
        let (r, o) = count.multipliedReportingOverflow(by: dtype.storageByteWidth)
        return o ? nil : r
    }

    /// Checks that tensors needing `total` bytes together fit the limit, before any is allocated.
    func checkTotal(_ total: Int, tensors: Int, largest: (name: String, bytes: Int)) throws {
        if let memoryLimit, total > memoryLimit {
            throw BitSwitchError(.invalidModel, "the model's \(tensors) constant tensors need \(total) bytes in "
                                 + "total (the largest, tensor '\(largest.name)', \(largest.bytes) bytes), more than "
                                 + limitSource, file: file)
        }
    }

    private func fail(_ kind: BitSwitchError.Kind, _ name: String, _ message: String) -> BitSwitchError {
        BitSwitchError(kind, "tensor '\(name)': \(message)", file: file)
    }

    func decode(_ t: UnsafePointer<Onnx__TensorProto>) throws -> (name: String, tensor: Tensor) {
        let p = t.pointee
        let name = cString(p.name)
        let code = Int(p.data_type)
        guard let dtype = DType(onnxCode: code) else {
            throw fail(.unsupported, name, "element type \(onnxTypeName(code)) is not supported "
                       + "(supported: float32, float16, float64, int4/8/16/32/64, uint4/8/16/32/64, bool)")
        }
        var shape: [Int] = []
        shape.reserveCapacity(p.n_dims)
        for d in cList(p.dims, p.n_dims) {
            guard d >= 0 else { throw fail(.invalidModel, name, "negative dimension \(d) in dims \(dimsText(p))") }
            shape.append(Int(d))
        }
        guard let count = checkedElementCount(shape) else {
            throw fail(.invalidModel, name, "the product of dims \(shape) overflows")
        }
        let (storageBytes, o) = count.multipliedReportingOverflow(by: dtype.storageByteWidth)
        guard !o, let onnxBytes = dtype.onnxByteCount(count) else {
            throw fail(.invalidModel, name, "dims \(shape) of \(dtype) need more bytes than can be addressed")
        }
        if let memoryLimit, storageBytes > memoryLimit {
            throw fail(.invalidModel, name, "dims \(shape) of \(dtype) need \(storageBytes) bytes, more than "
                       + limitSource)
        }
        if p.segment != nil {
            throw fail(.unsupported, name, "segmented tensors are not supported")
        }

        let storage: TensorStorage
        if p.has_data_location != 0 && p.data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL {
            storage = try readExternal(p, name: name, dtype: dtype, count: count, byteCount: onnxBytes)
        } else if p.has_raw_data != 0 {
            let raw = p.raw_data
            guard raw.len == onnxBytes else {
                throw fail(.invalidModel, name, "raw_data has \(raw.len) bytes but dims \(shape) of \(dtype) need "
                           + "\(onnxBytes)")
            }
            storage = Self.fromRaw(dtype, count: count, UnsafeRawBufferPointer(start: raw.data, count: raw.len))
        } else {
            storage = try fromTypedFields(p, name: name, dtype: dtype, count: count)
        }
        return (name, Tensor(dtype: dtype, shape: shape, storage: storage))
    }

    private func dimsText(_ p: Onnx__TensorProto) -> String {
        "[" + cList(p.dims, p.n_dims).map(String.init).joined(separator: ",") + "]"
    }

    /// Little-endian raw bytes (length already checked) to storage. Same-layout types are copied in one go.
    static func fromRaw(_ dtype: DType, count: Int, _ src: UnsafeRawBufferPointer) -> TensorStorage {
        func copy<T>(_: T.Type) -> [T] {
            [T](unsafeUninitializedCapacity: count) { buf, n in
                if count > 0 { memcpy(buf.baseAddress!, src.baseAddress!, count * MemoryLayout<T>.stride) }
                n = count
            }
        }
        func nibbles<T>(_ make: (UInt8) -> T) -> [T] {
            [T](unsafeUninitializedCapacity: count) { buf, n in
                for i in 0..<count {
                    let byte = src[i >> 1]
                    buf[i] = make((i & 1) == 0 ? byte & 0x0F : byte >> 4)
                }
                n = count
            }
        }
        switch dtype {
        case .f32: return .f32(copy(Float.self))
        case .i32: return .i32(copy(Int32.self))
        case .i64: return .i64(copy(Int64.self))
        case .i8: return .i8(copy(Int8.self))
        case .u8: return .u8(copy(UInt8.self))
        case .f64: return .f64(copy(Double.self))
        case .i16: return .i16(copy(Int16.self))
        case .u16: return .u16(copy(UInt16.self))
        case .u32: return .u32(copy(UInt32.self))
        case .u64: return .u64(copy(UInt64.self))
        case .f16:
            return .f32([Float](unsafeUninitializedCapacity: count) { buf, n in
                for i in 0..<count {
                    let bits = UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                    buf[i] = Float(Float16(bitPattern: bits))
                }
                n = count
            })
        case .bool: return .bool((0..<count).map { src[$0] != 0 })
        case .i4: return .i8(nibbles { Int8(bitPattern: $0 << 4) >> 4 })
        case .u4: return .u8(nibbles { $0 })
        }
    }

    private func fromTypedFields(_ p: Onnx__TensorProto, name: String, dtype: DType, count: Int) throws
        -> TensorStorage {
        func checkCount(_ field: String, _ n: Int, _ expected: Int) throws {
            guard n == expected else {
                throw fail(.invalidModel, name, "\(field) has \(n) values but dims of \(dtype) need \(expected)")
            }
        }
        let int32s = cList(p.int32_data, p.n_int32_data)
        func ranged<T: FixedWidthInteger>(_: T.Type) throws -> [T] {
            try checkCount("int32_data", int32s.count, count)
            return try int32s.map { v in
                guard let x = T(exactly: v) else {
                    throw fail(.invalidModel, name, "int32_data value \(v) is out of range for \(dtype)")
                }
                return x
            }
        }
        switch dtype {
        case .f32:
            try checkCount("float_data", p.n_float_data, count)
            return .f32(Array(cList(p.float_data, p.n_float_data)))
        case .i64:
            try checkCount("int64_data", p.n_int64_data, count)
            return .i64(Array(cList(p.int64_data, p.n_int64_data)))
        case .i32:
            try checkCount("int32_data", int32s.count, count)
            return .i32(Array(int32s))
        case .i8: return .i8(try ranged(Int8.self))
        case .u8: return .u8(try ranged(UInt8.self))
        case .i16: return .i16(try ranged(Int16.self))
        case .u16: return .u16(try ranged(UInt16.self))
        case .f64:
            try checkCount("double_data", p.n_double_data, count)
            return .f64(Array(cList(p.double_data, p.n_double_data)))
        case .u32:
            try checkCount("uint64_data", p.n_uint64_data, count)
            return .u32(try cList(p.uint64_data, p.n_uint64_data).map { v in
                guard let x = UInt32(exactly: v) else {
                    throw fail(.invalidModel, name, "uint64_data value \(v) is out of range for u32")
                }
                return x
            })
        case .u64:
            try checkCount("uint64_data", p.n_uint64_data, count)
            return .u64(Array(cList(p.uint64_data, p.n_uint64_data)))
        case .bool:
            try checkCount("int32_data", int32s.count, count)
            return .bool(int32s.map { $0 != 0 })
        case .f16:
            let bits = try ranged(UInt16.self)
            return .f32(bits.map { Float(Float16(bitPattern: $0)) })
        case .i4, .u4:
            // Each int32 holds one packed byte: two 4-bit elements, the first in the low nibble.
            let packed = try int32s.map { v in
                guard let b = UInt8(exactly: v) else {
                    throw fail(.invalidModel, name, "int32_data value \(v) is not a packed 4-bit pair (0...255)")
                }
                return b
            }
            try checkCount("int32_data", packed.count, count / 2 + count % 2)
            return packed.withUnsafeBytes { Self.fromRaw(dtype, count: count, $0) }
        }
    }

    private func readExternal(_ p: Onnx__TensorProto, name: String, dtype: DType, count: Int, byteCount: Int) throws
        -> TensorStorage {
        var entries: [String: String] = [:]
        for e in cMessages(p.external_data, p.n_external_data) {
            entries[cString(e.pointee.key)] = cString(e.pointee.value)
        }
        guard let location = entries["location"], !location.isEmpty else {
            throw fail(.invalidModel, name, "external data has no 'location'")
        }
        guard !location.hasPrefix("/") else {
            throw fail(.invalidModel, name, "external data location '\(location)' is an absolute path; it must be "
                       + "relative to the model's directory")
        }
        guard !location.split(separator: "/").contains("..") else {
            throw fail(.invalidModel, name, "external data location '\(location)' leaves the model's directory")
        }
        func number(_ key: String) throws -> Int? {
            guard let s = entries[key] else { return nil }
            guard let v = Int(s), v >= 0 else {
                throw fail(.invalidModel, name, "external data '\(key)' is '\(s)', not a non-negative integer")
            }
            return v
        }
        let offset = try number("offset") ?? 0
        let length = try number("length") ?? byteCount
        guard length == byteCount else {
            throw fail(.invalidModel, name, "external data length \(length) does not match the \(byteCount) bytes "
                       + "that dims \(dtype)\(cList(p.dims, p.n_dims).map { Int($0) }) need")
        }
        guard let baseDirectory else {
            throw fail(.invalidModel, name, "has external data '\(location)' but the model's directory is unknown")
        }
        let dataPath = baseDirectory + "/" + location
        let fd = try openContained(location, in: baseDirectory, tensor: name)
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw fail(.io, name, "cannot stat '\(dataPath)': \(errnoText())") }
        let size = Int(st.st_size)
        let (end, o) = offset.addingReportingOverflow(length)
        guard !o, end <= size else {
            throw fail(.invalidModel, name, "external data file '\(dataPath)' has \(size) bytes, too short for "
                       + "offset \(offset) + length \(length)")
        }
        if length == 0 { return Self.fromRaw(dtype, count: count, UnsafeRawBufferPointer(start: nil, count: 0)) }
        // pread, not mmap: a data file truncated while it is read gives a short read (an error), not SIGBUS.
        var failure: String? = nil
        let bytes = [UInt8](unsafeUninitializedCapacity: length) { buf, n in
            n = 0
            guard let base = buf.baseAddress else { return }
            while n < length {
                let r = pread(fd, base + n, length - n, off_t(offset + n))
                if r < 0 {
                    if errno == EINTR { continue }
                    failure = "cannot read external data file '\(dataPath)': \(errnoText())"; return
                }
                if r == 0 {
                    failure = "external data file '\(dataPath)' shrank below offset \(offset) + length \(length) "
                        + "while it was read"
                    return
                }
                n += r
            }
        }
        if let failure { throw fail(.io, name, failure) }
        return bytes.withUnsafeBytes { Self.fromRaw(dtype, count: count, $0) }
    }

    /// Opens `location` below `directory` one component at a time without following symbolic links, so the data
    /// cannot leave the model's folder; the result must be a regular file (not a device, FIFO or socket).
    private func openContained(_ location: String, in directory: String, tensor name: String) throws -> Int32 {
        let shown = directory + "/" + location
        let components = location.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
            .filter { $0 != "." }
        guard !components.isEmpty else {
            throw fail(.invalidModel, name, "external data location '\(location)' names no file")
        }
        var dirFd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dirFd >= 0 else {
            throw fail(.io, name, "cannot open the model's directory '\(directory)': \(errnoText())")
        }
        for (i, c) in components.enumerated() {
            let last = i == components.count - 1
            // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below.
            let flags = last ? (O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
                             : (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            let fd = openat(dirFd, c, flags)
            let err = errno
            close(dirFd)
            guard fd >= 0 else {
                if err == ELOOP || (err == ENOTDIR && !last && isSymlink(dirAt: directory, components[...i])) {
                    throw fail(.invalidModel, name, "external data location '\(location)' goes through the symbolic "
                               + "link '\(components[...i].joined(separator: "/"))'; links could lead out of the "
                               + "model's directory and are refused")
                }
                throw fail(.io, name, "cannot open external data file '\(shown)': \(String(cString: strerror(err)))")
            }
            dirFd = fd
        }
        var st = stat()
        guard fstat(dirFd, &st) == 0 else {
            close(dirFd)
            throw fail(.io, name, "cannot stat '\(shown)': \(errnoText())")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            close(dirFd)
            let kind: String
            switch st.st_mode & S_IFMT {
            case S_IFIFO: kind = "a FIFO"
            case S_IFCHR: kind = "a character device"
            case S_IFBLK: kind = "a block device"
            case S_IFSOCK: kind = "a socket"
            case S_IFDIR: kind = "a directory"
            default: kind = "not a regular file"
            }
            throw fail(.invalidModel, name, "external data location '\(location)' is \(kind), not a regular file")
        }
        // Back to blocking reads for the regular file.
        _ = fcntl(dirFd, F_SETFL, fcntl(dirFd, F_GETFL) & ~O_NONBLOCK)
        return dirFd
    }

    private func isSymlink(dirAt directory: String, _ components: ArraySlice<String>) -> Bool {
        var st = stat()
        return lstat(directory + "/" + components.joined(separator: "/"), &st) == 0 && (st.st_mode & S_IFMT) == S_IFLNK
    }
}
