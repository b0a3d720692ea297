/// A typed attribute value, as found on ONNX nodes and in the IR text form.
public enum AttrValue: Sendable, Equatable, CustomStringConvertible {
    case int(Int)
    case float(Float)
    case string(String)
    case ints([Int])
    case floats([Float])
    case strings([String])
    case tensor(Tensor)

    public var description: String {
        switch self {
        case .int(let v): return "\(v)"
        case .float(let v): return formatFloat(v)
        case .string(let s): return quoteString(s)
        case .ints(let a): return "[" + a.map(String.init).joined(separator: ", ") + "]"
        case .floats(let a): return "[" + a.map(formatFloat).joined(separator: ", ") + "]f"
        case .strings(let a): return "[" + a.map(quoteString).joined(separator: ", ") + "]"
        case .tensor(let t): return "tensor<\(t.type)>"
        }
    }
}

/// Shortest decimal that reads back to the same Float; always has a '.', 'e', "inf" or "nan" so it never reads as an int.
public func formatFloat(_ v: Float) -> String {
    if v.isNaN { return "nan" }
    if v.isInfinite { return v < 0 ? "-inf" : "inf" }
    let s = "\(v)"
    return (s.contains(".") || s.contains("e")) ? s : s + ".0"
}

public func quoteString(_ s: String) -> String {
    var r = "\""
    for c in s.unicodeScalars {
        switch c {
        case "\"": r += "\\\""
        case "\\": r += "\\\\"
        case "\n": r += "\\n"
        case "\t": r += "\\t"
        default: r.unicodeScalars.append(c)
        }
    }
    return r + "\""
}

/// Reads a node's attributes with ONNX defaults; type mismatches and unknown names are errors
/// (thrown without location; the caller adds node/op/file).
public struct AttributeReader {
    public private(set) var values: [String: AttrValue]
    private var used: Set<String> = []

    public init(_ values: [String: AttrValue]) { self.values = values }

    public mutating func has(_ name: String) -> Bool { used.insert(name); return values[name] != nil }

    public mutating func int(_ name: String) throws -> Int? {
        used.insert(name)
        switch values[name] {
        case nil: return nil
        case .int(let v)?: return v
        case let v?: throw BitSwitchError(.invalidModel, "attribute '\(name)' must be an int, got \(v)")
        }
    }
    public mutating func int(_ name: String, default d: Int) throws -> Int { try int(name) ?? d }

    public mutating func float(_ name: String) throws -> Float? {
        used.insert(name)
        switch values[name] {
        case nil: return nil
        case .float(let v)?: return v
        case .int(let v)?: return Float(v)
        case let v?: throw BitSwitchError(.invalidModel, "attribute '\(name)' must be a float, got \(v)")
        }
    }
    public mutating func float(_ name: String, default d: Float) throws -> Float { try float(name) ?? d }

    public mutating func ints(_ name: String) throws -> [Int]? {
        used.insert(name)
        switch values[name] {
        case nil: return nil
        case .ints(let v)?: return v
        case .int(let v)?: return [v]
        case let v?: throw BitSwitchError(.invalidModel, "attribute '\(name)' must be a list of ints, got \(v)")
        }
    }
    public mutating func floats(_ name: String) throws -> [Float]? {
        used.insert(name)
        switch values[name] {
        case nil: return nil
        case .floats(let v)?: return v
        case .float(let v)?: return [v]
        case let v?: throw BitSwitchError(.invalidModel, "attribute '\(name)' must be a list of floats, got \(v)")
        }
    }
    public mutating func string(_ name: String) throws -> String? {
        used.insert(name)
        switch values[name] {
        case nil: return nil
        case .string(let v)?: return v
        case let v?: throw BitSwitchError(.invalidModel, "attribute '\(name)' must be a string, got \(v)")
        }
    }
    public mutating func tensor(_ name: String) throws -> Tensor? {
        used.insert(name)
        switch values[name] {
        case nil: return nil
        case .tensor(let v)?: return v
        case let v?: throw BitSwitchError(.invalidModel, "attribute '\(name)' must be a tensor, got \(v)")
        }
    }

    /// Attributes present on the node that no reader asked for.
    public var unused: [String] { values.keys.filter { !used.contains($0) }.sorted() }
}
