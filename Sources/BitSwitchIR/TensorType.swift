/// One dimension of a static type: a number, a named symbol (e.g. the batch "N"), or unknown.
public enum Dim: Hashable, Sendable, CustomStringConvertible {
    case known(Int)
    case symbol(String)
    case unknown

    public var value: Int? { if case .known(let v) = self { return v }; return nil }
    public var description: String {
        switch self {
        case .known(let v): return String(v)
        case .symbol(let s): return s
        case .unknown: return "?"
        }
    }
}

/// Static type of a value: element type plus shape (nil shape = unknown rank).
public struct TensorType: Hashable, Sendable, CustomStringConvertible {
    public var dtype: DType
    public var shape: [Dim]?

    public init(_ dtype: DType, _ shape: [Dim]?) { self.dtype = dtype; self.shape = shape }
    public init(_ dtype: DType, known: [Int]) { self.dtype = dtype; self.shape = known.map { .known($0) } }

    public var rank: Int? { shape?.count }
    /// All dims known: the concrete shape.
    public var knownShape: [Int]? {
        guard let shape else { return nil }
        var r: [Int] = []
        for d in shape { guard let v = d.value else { return nil }; r.append(v) }
        return r
    }

    /// Text form: `f32[N,3,32,32]`, `i64[]` (scalar), `f32[*]` (unknown rank).
    public var description: String {
        guard let shape else { return "\(dtype.rawValue)[*]" }
        return "\(dtype.rawValue)[\(shape.map(\.description).joined(separator: ","))]"
    }
}
