/// Parses the text form written by `printGraph` (see Printer.swift for the grammar by example).
/// Errors are `.parse` errors whose message starts with `line:column` and says what was expected.
/// Ops are built with `Op(type:domain:attributes:opset:)`, so the text accepts exactly the attributes ONNX does.
public func parseGraph(_ text: String) throws -> Graph {
    var p = IRParser(Array(text.utf8))
    return try p.graph()
}

struct IRParser {
    private let b: [UInt8]
    private var i = 0

    init(_ bytes: [UInt8]) { b = bytes }

    // MARK: grammar

    mutating func graph() throws -> Graph {
        try expectKeyword("graph")
        try expect("@")
        let name = try nameAfterSigil()
        try expectKeyword("opsets")
        var opsets: [String: Int] = [:]
        try expect("{")
        if !consume("}") {
            repeat {
                let at = i
                let domain = try quoted()
                try expect(":")
                let v = try integer("an opset version")
                if opsets.updateValue(v, forKey: domain) != nil { throw error(at, "opset for domain \(quoteString(domain)) given twice") }
            } while consume(",")
            try expect("}")
        }
        try expect("{")

        var g = Graph(name: name, opsets: opsets)
        var nodes: [Node] = []
        var valueTypes: [String: TensorType] = [:]
        var constNames = Set<String>()
        while true {
            skipTrivia()
            if consume("}") { break }
            let at = i
            if peek() == UInt8(ascii: "%") {
                nodes.append(try node(outputsFirst: true, opsets: opsets, types: &valueTypes))
                continue
            }
            guard let word = identifier() else {
                throw error(at, "expected a statement (input, const, value, output, metadata or a node) or '}'")
            }
            skipTrivia()
            let next = peek()
            switch word {
            case "input" where next == UInt8(ascii: "%"):
                let (n, t) = try declaration()
                g.inputs.append(ValueInfo(name: n, type: t))
            case "output" where next == UInt8(ascii: "%"):
                let (n, t) = try declaration()
                g.outputs.append(ValueInfo(name: n, type: t))
            case "value" where next == UInt8(ascii: "%"):
                let (n, t) = try declaration()
                valueTypes[n] = t
            case "const" where next == UInt8(ascii: "%"):
                let (n, t) = try declaration()
                guard constNames.insert(n).inserted else { throw error(at, "constant %\(IRText.name(n)) defined twice") }
                try expect("=")
                g.setInitializer(n, try tensorData(type: t))
            case "metadata" where next == UInt8(ascii: "{"):
                try expect("{")
                if !consume("}") {
                    repeat {
                        let k = try quoted()
                        try expect(":")
                        g.metadata[k] = try quoted()
                    } while consume(",")
                    try expect("}")
                }
            default:
                i = at
                nodes.append(try node(outputsFirst: false, opsets: opsets, types: &valueTypes))
            }
        }
        skipTrivia()
        if i < b.count { throw error(i, "expected end of input after the graph's closing '}'") }
        g.nodes = nodes
        g.valueTypes = valueTypes
        return g
    }

    private mutating func declaration() throws -> (String, TensorType) {
        try expect("%")
        let n = try nameAfterSigil()
        try expect(":")
        return (n, try tensorType())
    }

    private mutating func node(outputsFirst: Bool, opsets: [String: Int],
                               types: inout [String: TensorType]) throws -> Node {
        var outputs: [String] = []
        if outputsFirst {
            repeat {
                try expect("%")
                outputs.append(try nameAfterSigil())
            } while consume(",")
            try expect("=")
        }
        skipTrivia()
        let opAt = i
        guard let qualified = identifier() else { throw error(i, "expected an op name") }
        var domain = "", type = qualified
        if let dot = qualified.lastIndex(of: ".") {
            domain = String(qualified[..<dot]); type = String(qualified[qualified.index(after: dot)...])
        }
        try expect("(")
        var inputs: [String] = []
        if !consume(")") {
            repeat {
                try expect("%")
                inputs.append(try nameAfterSigil())
            } while consume(",")
            try expect(")")
        }
        var attrs: [String: AttrValue] = [:]
        if consume("{") {
            if !consume("}") {
                repeat {
                    skipTrivia()
                    let at = i
                    guard let k = identifier() else { throw error(i, "expected an attribute name") }
                    try expect("=")
                    if attrs.updateValue(try attrValue(), forKey: k) != nil { throw error(at, "attribute '\(k)' given twice") }
                } while consume(",")
                try expect("}")
            }
        }
        var outTypes: [TensorType?] = []
        if consume(":") {
            repeat {
                skipTrivia()
                if consume("_") { outTypes.append(nil) } else { outTypes.append(try tensorType()) }
            } while consume(",")
            if outTypes.count != outputs.count {
                throw error(i, "\(outTypes.count) result types for \(outputs.count) outputs")
            }
        }
        var nodeName = ""
        if consume("@") { nodeName = try nameAfterSigil() }

        let opset = opsets[domain] ?? opsets[domain == "ai.onnx" ? "" : domain] ?? (domain.isEmpty ? 17 : 1)
        let op: Op
        do {
            op = try Op(type: type, domain: domain, attributes: attrs, opset: opset)
        } catch let e as BitSwitchError {
            throw error(opAt, "\(qualified): \(e.message)")
        }
        for (o, t) in zip(outputs, outTypes) { if let t { types[o] = t } }
        return Node(name: nodeName, op: op, inputs: inputs, outputs: outputs)
    }

    mutating func tensorType() throws -> TensorType {
        skipTrivia()
        let at = i
        guard let dt = identifier() else { throw error(at, "expected an element type (\(dtypeList))") }
        guard let dtype = DType(rawValue: dt) else { throw error(at, "unknown element type '\(dt)', expected one of \(dtypeList)") }
        try expect("[")
        if consume("*") { try expect("]"); return TensorType(dtype, nil) }
        var dims: [Dim] = []
        if !consume("]") {
            repeat {
                skipTrivia()
                if consume("?") { dims.append(.unknown) }
                else if peek() == UInt8(ascii: "\"") { dims.append(.symbol(try quoted())) }
                else if let c = peek(), IRText.isIdentStart(c), let s = identifier() { dims.append(.symbol(s)) }
                else {
                    let v = try integer("a dimension (a number, a symbol or '?')")
                    if v < 0 { throw error(i, "dimension \(v) is negative") }
                    dims.append(.known(v))
                }
            } while consume(",")
            try expect("]")
        }
        return TensorType(dtype, dims)
    }

    private var dtypeList: String { DType.allCases.map(\.rawValue).joined(separator: ", ") }

    mutating func tensorData(type t: TensorType) throws -> Tensor {
        skipTrivia()
        let at = i
        if peek() == UInt8(ascii: "<") {
            throw error(at, "constant data was elided when this text was printed; print without elision to parse it")
        }
        guard let shape = t.knownShape else { throw error(at, "a constant needs a fully known shape, got \(IRText.type(t))") }
        guard let count = checkedElementCount(shape) else { throw error(at, "shape \(IRText.type(t)) is too large") }
        try expect("[")
        var tokens: [(String, Int)] = []
        if !consume("]") {
            repeat {
                skipTrivia()
                let tokAt = i
                guard let tok = numberToken() else { throw error(tokAt, "expected a \(t.dtype.rawValue) element") }
                tokens.append((tok, tokAt))
            } while consume(",")
            try expect("]")
        }
        guard tokens.count == count else {
            throw error(at, "\(IRText.type(t)) holds \(count) elements, the data has \(tokens.count)")
        }
        func ints<T: FixedWidthInteger>(_: T.Type) throws -> [T] {
            let range = t.dtype.integerRange
            return try tokens.map { tok, pos in
                guard let v = T(tok), range.map({ r in Int(exactly: v).map { r.contains($0) } ?? true }) ?? true else {
                    throw error(pos, "expected a \(t.dtype.rawValue) element, found '\(tok)'")
                }
                return v
            }
        }
        let storage: TensorStorage
        switch t.dtype {
        case .f32, .f16:
            storage = .f32(try tokens.map { tok, pos in
                guard let v = Float(tok) else { throw error(pos, "expected a \(t.dtype.rawValue) element, found '\(tok)'") }
                return v
            })
        case .i8, .i4: storage = .i8(try ints(Int8.self))
        case .u8, .u4: storage = .u8(try ints(UInt8.self))
        case .i32: storage = .i32(try ints(Int32.self))
        case .i64: storage = .i64(try ints(Int64.self))
        case .i16: storage = .i16(try ints(Int16.self))
        case .u16: storage = .u16(try ints(UInt16.self))
        case .u32: storage = .u32(try ints(UInt32.self))
        case .u64: storage = .u64(try ints(UInt64.self))
        case .f64:
            storage = .f64(try tokens.map { tok, pos in
                guard let v = Double(tok) else { throw error(pos, "expected a f64 element, found '\(tok)'") }
                return v
            })
        case .bool:
            storage = .bool(try tokens.map { tok, pos in
                switch tok {
                case "true", "1": return true
                case "false", "0": return false
                default: throw error(pos, "expected true or false, found '\(tok)'")
                }
            })
        }
        return Tensor(dtype: t.dtype, shape: shape, storage: storage)
    }

    mutating func attrValue() throws -> AttrValue {
        skipTrivia()
        let at = i
        if peek() == UInt8(ascii: "\"") { return .string(try quoted()) }
        if peek() == UInt8(ascii: "[") {
            i += 1
            skipTrivia()
            if peek() == UInt8(ascii: "\"") {
                var a: [String] = []
                repeat { a.append(try quoted()) } while consume(",")
                try expect("]")
                return .strings(a)
            }
            var toks: [(String, Int)] = []
            if !consume("]") {
                repeat {
                    skipTrivia()
                    let tokAt = i
                    guard let tok = numberToken() else { throw error(tokAt, "expected a number") }
                    toks.append((tok, tokAt))
                } while consume(",")
                try expect("]")
            }
            if i < b.count, b[i] == UInt8(ascii: "s"), toks.isEmpty { i += 1; return .strings([]) }
            let isFloats = i < b.count && b[i] == UInt8(ascii: "f")
            if isFloats { i += 1 }
            if isFloats || toks.contains(where: { Int($0.0) == nil }) {
                return .floats(try toks.map { tok, pos in
                    guard let v = Float(tok) else { throw error(pos, "expected a float, found '\(tok)'") }
                    return v
                })
            }
            return .ints(toks.compactMap { Int($0.0) })
        }
        if let word = peekIdentifier(), word == "tensor" {
            _ = identifier()
            try expect("<")
            let t = try tensorType()
            try expect(">")
            return .tensor(try tensorData(type: t))
        }
        guard let tok = numberToken() else { throw error(at, "expected an attribute value (number, string, list or tensor)") }
        if let v = Int(tok) { return .int(v) }
        if let v = Float(tok) { return .float(v) }
        throw error(at, "expected an attribute value, found '\(tok)'")
    }

    // MARK: lexing

    private func peek() -> UInt8? { i < b.count ? b[i] : nil }

    private mutating func skipTrivia() {
        while i < b.count {
            switch b[i] {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"): i += 1
            case UInt8(ascii: "#"): while i < b.count, b[i] != UInt8(ascii: "\n") { i += 1 }
            default: return
            }
        }
    }

    private mutating func consume(_ c: Unicode.Scalar) -> Bool {
        skipTrivia()
        if i < b.count, b[i] == UInt8(ascii: c) { i += 1; return true }
        return false
    }

    private mutating func expect(_ c: Unicode.Scalar) throws {
        if !consume(c) { throw error(i, "expected '\(c)'") }
    }

    private mutating func expectKeyword(_ k: String) throws {
        skipTrivia()
        let at = i
        guard identifier() == k else { i = at; throw error(at, "expected '\(k)'") }
    }

    /// [A-Za-z_][A-Za-z0-9_.]*: keywords, dtypes, symbols, attribute names and domain-qualified op names.
    private mutating func identifier() -> String? {
        skipTrivia()
        guard i < b.count, IRText.isIdentStart(b[i]) else { return nil }
        let start = i
        while i < b.count, IRText.isIdentByte(b[i]) || b[i] == UInt8(ascii: ".") { i += 1 }
        return String(decoding: b[start..<i], as: UTF8.self)
    }

    private mutating func peekIdentifier() -> String? {
        let at = i
        defer { i = at }
        return identifier()
    }

    /// A run of characters that can make up a number or a bool: `-1`, `1.5e-05`, `-inf`, `nan`, `true`.
    private mutating func numberToken() -> String? {
        skipTrivia()
        let start = i
        while i < b.count {
            let c = b[i]
            if IRText.isIdentByte(c) || c == UInt8(ascii: ".") || c == UInt8(ascii: "-") || c == UInt8(ascii: "+") {
                i += 1
            } else { break }
        }
        return i > start ? String(decoding: b[start..<i], as: UTF8.self) : nil
    }

    private mutating func integer(_ what: String) throws -> Int {
        skipTrivia()
        let at = i
        guard let tok = numberToken(), let v = Int(tok) else { i = at; throw error(at, "expected \(what)") }
        return v
    }

    /// A value or node name after its sigil: bare, or quoted. A ':' belongs to a bare name only when
    /// another name character follows, so `%x: f32[...]` reads as the name "x".
    private mutating func nameAfterSigil() throws -> String {
        if i < b.count, b[i] == UInt8(ascii: "\"") { return try quoted() }
        let start = i
        while i < b.count, IRText.isNameByte(b[i]) {
            if b[i] == UInt8(ascii: ":"), !(i + 1 < b.count && IRText.isNameByte(b[i + 1])) { break }
            i += 1
        }
        if i == start { throw error(i, "expected a name (bare or quoted) right after the sigil") }
        return String(decoding: b[start..<i], as: UTF8.self)
    }

    private mutating func quoted() throws -> String {
        skipTrivia()
        guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw error(i, "expected a quoted string") }
        let start = i
        i += 1
        var bytes: [UInt8] = []
        while i < b.count {
            let c = b[i]
            i += 1
            if c == UInt8(ascii: "\"") { return String(decoding: bytes, as: UTF8.self) }
            if c == UInt8(ascii: "\\") {
                guard i < b.count else { break }
                let e = b[i]
                i += 1
                switch e {
                case UInt8(ascii: "n"): bytes.append(UInt8(ascii: "\n"))
                case UInt8(ascii: "t"): bytes.append(UInt8(ascii: "\t"))
                default: bytes.append(e)
                }
            } else {
                bytes.append(c)
            }
        }
        throw error(start, "unterminated string")
    }

    private func error(_ at: Int, _ message: String) -> BitSwitchError {
        var line = 1, col = 1
        for k in 0..<min(at, b.count) {
            if b[k] == UInt8(ascii: "\n") { line += 1; col = 1 } else if b[k] & 0xC0 != 0x80 { col += 1 }
        }
        var found = "end of input"
        if at < b.count {
            var end = at
            while end < b.count, end - at < 20, b[end] != UInt8(ascii: "\n") { end += 1 }
            found = "'" + String(decoding: b[at..<end], as: UTF8.self) + "'"
        }
        return BitSwitchError(.parse, "\(line):\(col): \(message); found \(found)")
    }
}
