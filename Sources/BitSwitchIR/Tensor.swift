/// Element types. The raw value is the IR text spelling.
public enum DType: String, Sendable, CaseIterable, Hashable {
    case f32, f16, i8, u8, i32, i64, bool, i4, u4
    // Wider element types of ONNX's arithmetic and shape ops (issue 11): exact storage, no training kernels.
    case f64, i16, u16, u32, u64

    public var isFloat: Bool { self == .f32 || self == .f16 || self == .f64 }
    public var isInteger: Bool { !isFloat && self != .bool }
    /// Bytes per element as stored by ONNX (int4/uint4 pack two per byte there; here one per container byte).
    public var byteWidth: Int {
        switch self {
        case .f32, .i32, .u32: return 4
        case .f16, .i16, .u16: return 2
        case .i8, .u8, .bool, .i4, .u4: return 1
        case .i64, .u64, .f64: return 8
        }
    }
    /// Inclusive value range of integer types.
    public var integerRange: ClosedRange<Int>? {
        switch self {
        case .i8: return -128...127
        case .u8: return 0...255
        case .i4: return -8...7
        case .u4: return 0...15
        case .i32: return Int(Int32.min)...Int(Int32.max)
        case .i64: return Int(Int64.min)...Int(Int64.max)
        case .i16: return Int(Int16.min)...Int(Int16.max)
        case .u16: return 0...Int(UInt16.max)
        case .u32: return 0...Int(UInt32.max)
        case .u64: return 0...Int.max   // the part an Int can name
        default: return nil
        }
    }
}

/// Element storage. f16 values live in `.f32` storage (converted at import); i4/u4 in `.i8`/`.u8` containers.
public enum TensorStorage: Sendable, Hashable {
    case f32([Float])
    case i8([Int8])
    case u8([UInt8])
    case i32([Int32])
    case i64([Int64])
    case bool([Bool])
    case f64([Double])
    case i16([Int16])
    case u16([UInt16])
    case u32([UInt32])
    case u64([UInt64])

    public var count: Int {
        switch self {
        case .f32(let a): return a.count
        case .i8(let a): return a.count
        case .u8(let a): return a.count
        case .i32(let a): return a.count
        case .i64(let a): return a.count
        case .bool(let a): return a.count
        case .f64(let a): return a.count
        case .i16(let a): return a.count
        case .u16(let a): return a.count
        case .u32(let a): return a.count
        case .u64(let a): return a.count
        }
    }
}

/// A dense tensor held by value: initializers in the IR and every value the executors compute.
public struct Tensor: Sendable, Hashable, CustomStringConvertible {
    public var dtype: DType
    public var shape: [Int]
    public var storage: TensorStorage

    public init(dtype: DType, shape: [Int], storage: TensorStorage) {
        precondition(Tensor.storageMatches(dtype, storage), "storage kind does not match dtype \(dtype)")
        self.dtype = dtype; self.shape = shape; self.storage = storage
    }

    public init(shape: [Int], floats: [Float]) {
        self.init(dtype: .f32, shape: shape, storage: .f32(floats))
    }
    public init(shape: [Int], int64s: [Int64]) {
        self.init(dtype: .i64, shape: shape, storage: .i64(int64s))
    }
    public init(scalar: Float) { self.init(shape: [], floats: [scalar]) }

    public static func zeros(_ shape: [Int], dtype: DType = .f32) -> Tensor {
        let n = shape.reduce(1, *)
        switch dtype {
        case .f32, .f16: return Tensor(dtype: dtype, shape: shape, storage: .f32(.init(repeating: 0, count: n)))
        case .i8, .i4: return Tensor(dtype: dtype, shape: shape, storage: .i8(.init(repeating: 0, count: n)))
        case .u8, .u4: return Tensor(dtype: dtype, shape: shape, storage: .u8(.init(repeating: 0, count: n)))
        case .i32: return Tensor(dtype: dtype, shape: shape, storage: .i32(.init(repeating: 0, count: n)))
        case .i64: return Tensor(dtype: dtype, shape: shape, storage: .i64(.init(repeating: 0, count: n)))
        case .bool: return Tensor(dtype: dtype, shape: shape, storage: .bool(.init(repeating: false, count: n)))
        case .f64: return Tensor(dtype: dtype, shape: shape, storage: .f64(.init(repeating: 0, count: n)))
        case .i16: return Tensor(dtype: dtype, shape: shape, storage: .i16(.init(repeating: 0, count: n)))
        case .u16: return Tensor(dtype: dtype, shape: shape, storage: .u16(.init(repeating: 0, count: n)))
        case .u32: return Tensor(dtype: dtype, shape: shape, storage: .u32(.init(repeating: 0, count: n)))
        case .u64: return Tensor(dtype: dtype, shape: shape, storage: .u64(.init(repeating: 0, count: n)))
        }
    }

    static func storageMatches(_ d: DType, _ s: TensorStorage) -> Bool {
        switch (d, s) {
        case (.f32, .f32), (.f16, .f32), (.i8, .i8), (.i4, .i8), (.u8, .u8), (.u4, .u8), (.i32, .i32),
             (.i64, .i64), (.bool, .bool), (.f64, .f64), (.i16, .i16), (.u16, .u16), (.u32, .u32),
             (.u64, .u64): return true
        default: return false
        }
    }

    public var count: Int { storage.count }
    public var rank: Int { shape.count }

    /// Elements as Float (converting integer types); for float tensors this is the storage itself.
    public var floats: [Float] {
        switch storage {
        case .f32(let a): return a
        case .i8(let a): return a.map { Float($0) }
        case .u8(let a): return a.map { Float($0) }
        case .i32(let a): return a.map { Float($0) }
        case .i64(let a): return a.map { Float($0) }
        case .bool(let a): return a.map { $0 ? 1 : 0 }
        case .f64(let a): return a.map { Float($0) }
        case .i16(let a): return a.map { Float($0) }
        case .u16(let a): return a.map { Float($0) }
        case .u32(let a): return a.map { Float($0) }
        case .u64(let a): return a.map { Float($0) }
        }
    }

    /// Elements as Double (exact for every integer up to 2^53).
    public var doubles: [Double] {
        switch storage {
        case .f32(let a): return a.map { Double($0) }
        case .i8(let a): return a.map { Double($0) }
        case .u8(let a): return a.map { Double($0) }
        case .i32(let a): return a.map { Double($0) }
        case .i64(let a): return a.map { Double($0) }
        case .bool(let a): return a.map { $0 ? 1 : 0 }
        case .f64(let a): return a
        case .i16(let a): return a.map { Double($0) }
        case .u16(let a): return a.map { Double($0) }
        case .u32(let a): return a.map { Double($0) }
        case .u64(let a): return a.map { Double($0) }
        }
    }

    /// Elements as Int (truncating floats); for shape-like inputs (axes, pads, shapes, indices).
    public var ints: [Int] {
        switch storage {
        case .f32(let a): return a.map { Int($0) }
        case .i8(let a): return a.map { Int($0) }
        case .u8(let a): return a.map { Int($0) }
        case .i32(let a): return a.map { Int($0) }
        case .i64(let a): return a.map { Int($0) }
        case .bool(let a): return a.map { $0 ? 1 : 0 }
        case .f64(let a): return a.map { $0.isFinite ? Int(exactly: $0.rounded(.towardZero)) ?? ($0 < 0 ? Int.min : Int.max) : 0 }
        case .i16(let a): return a.map { Int($0) }
        case .u16(let a): return a.map { Int($0) }
        case .u32(let a): return a.map { Int($0) }
        case .u64(let a): return a.map { Int(truncatingIfNeeded: $0) }
        }
    }

    public var type: TensorType { TensorType(dtype, shape.map { .known($0) }) }

    public var description: String { "Tensor<\(dtype)\(shape)>" }
}

/// A float32 tensor of `shape` holding `data` (no copy).
@inline(__always)
public func floatTensor(_ shape: [Int], _ data: [Float]) -> Tensor {
    Tensor(dtype: .f32, shape: shape, storage: .f32(data))
}

/// An array of `n` floats written entirely by `body`, without zero-filling first (hot loops in the kernels).
@inline(__always)
public func filledFloats(_ n: Int, _ body: (UnsafeMutableBufferPointer<Float>) -> Void) -> [Float] {
    [Float](unsafeUninitializedCapacity: n) { buf, count in
        body(buf)
        count = n
    }
}

/// Row-major strides of a shape.
public func contiguousStrides(_ shape: [Int]) -> [Int] {
    var s = [Int](repeating: 1, count: shape.count)
    var acc = 1
    for i in stride(from: shape.count - 1, through: 0, by: -1) { s[i] = acc; acc *= shape[i] }
    return s
}

/// Product of dims, or nil when it overflows Int. Used before any allocation sized from a user's file.
public func checkedElementCount(_ shape: [Int]) -> Int? {
    var n = 1
    for d in shape {
        if d < 0 { return nil }
        let (r, o) = n.multipliedReportingOverflow(by: d)
        if o { return nil }
        n = r
    }
    return n
}
