/// The one error family of BitSwitch. Every message a user sees names where the problem is:
/// the file, the node (name and op), and the opset, as far as they are known where it is thrown.
public struct BitSwitchError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: String, Sendable {
        case io, parse, unsupported, invalidModel, shape, type, verify, pass, data, training, internalError
    }
    public var kind: Kind
    public var message: String
    public var file: String?
    public var node: String?
    public var op: String?
    public var domain: String?
    public var opset: Int?

    public init(_ kind: Kind, _ message: String, file: String? = nil, node: String? = nil, op: String? = nil,
                domain: String? = nil, opset: Int? = nil) {
        self.kind = kind; self.message = message; self.file = file; self.node = node; self.op = op
        self.domain = domain; self.opset = opset
    }

    /// Fills in location fields that are still unknown (inner code knows the node, outer code the file).
    public func located(file: String? = nil, node: String? = nil, op: String? = nil, domain: String? = nil,
                        opset: Int? = nil) -> BitSwitchError {
        var e = self
        if e.file == nil { e.file = file }
        if e.node == nil { e.node = node }
        if e.op == nil { e.op = op }
        if e.domain == nil { e.domain = domain }
        if e.opset == nil { e.opset = opset }
        return e
    }

    public var description: String {
        var parts: [String] = []
        if let file { parts.append(file) }
        var where_: [String] = []
        if let node { where_.append("node '\(node)'") }
        if let op {
            let d = (domain?.isEmpty ?? true) ? "" : "\(domain!)::"
            where_.append("op \(d)\(op)")
        }
        if let opset { where_.append("opset \(opset)") }
        if !where_.isEmpty { parts.append(where_.joined(separator: ", ")) }
        let prefix = parts.isEmpty ? "" : parts.joined(separator: ": ") + ": "
        return "error: \(prefix)\(message)"
    }
}

extension Error {
    /// Attach location to any error on its way out; non-BitSwitch errors are wrapped.
    public func bitswitchLocated(file: String? = nil, node: String? = nil, op: String? = nil,
                                 opset: Int? = nil) -> BitSwitchError {
        if let e = self as? BitSwitchError { return e.located(file: file, node: node, op: op, opset: opset) }
        return BitSwitchError(.internalError, "\(self)", file: file, node: node, op: op, opset: opset)
    }
}
