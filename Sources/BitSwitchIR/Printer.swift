// The IR text form: stable, readable, and parsed back by `parseGraph` to an equal Graph.
//
//     graph @main opsets {"": 17, "ai.bitswitch": 1} {
//       metadata {"producer": "pytorch"}
//       input %x: f32[N,1,8,8]
//       const %conv0.weight: f32[8,1,3,3] = [0.1, -0.25, ...]
//       value %hint: f32[N,8]                       (a recorded type of a value no node defines)
//       %y = Conv(%x, %conv0.weight, %"") {group = 1, pads = [1, 1, 1, 1]} : f32[N,8,8,8] @conv0
//       %m, %"" = MaxPool(%y) {kernel_shape = [2, 2]}
//       %q = ai.bitswitch.FakeQuantAct(%y, %s) {bits = [8, 6, 4, 2], signed = 0}
//       output %logits: f32[N,10]
//     }
//
// Names print bare when they are made of [A-Za-z0-9_.:/-] (and do not end in ':', so `%x: f32` stays
// unambiguous), else quoted. `%""` is the absent optional input. `#` starts a comment.

/// The text form of `g`. With `elideConstantsOver`, constants with more elements print as
/// `<elided N elements>`: shorter for people, but no longer parseable.
public func printGraph(_ g: Graph, elideConstantsOver: Int? = nil) -> String {
    var out = "graph @\(IRText.name(g.name)) opsets {"
    out += g.opsets.sorted { $0.key < $1.key }.map { "\(quoteString($0.key)): \($0.value)" }.joined(separator: ", ")
    out += "} {\n"
    if !g.metadata.isEmpty {
        out += "  metadata {"
        out += g.metadata.sorted { $0.key < $1.key }.map { "\(quoteString($0.key)): \(quoteString($0.value))" }
            .joined(separator: ", ")
        out += "}\n"
    }
    for i in g.inputs { out += "  input %\(IRText.name(i.name)): \(IRText.type(i.type))\n" }
    for (name, t) in g.orderedInitializers {
        out += "  const %\(IRText.name(name)): \(IRText.type(t.type)) = "
        if let limit = elideConstantsOver, t.count > limit {
            out += "<elided \(t.count) elements>\n"
        } else {
            out += IRText.data(t) + "\n"
        }
    }
    let nodeOutputs = Set(g.nodes.flatMap(\.outputs))
    for (name, t) in g.valueTypes.sorted(by: { $0.key < $1.key }) where !nodeOutputs.contains(name) {
        out += "  value %\(IRText.name(name)): \(IRText.type(t))\n"
    }
    for n in g.nodes { out += "  " + IRText.node(n, types: g.valueTypes) + "\n" }
    for o in g.outputs { out += "  output %\(IRText.name(o.name)): \(IRText.type(o.type))\n" }
    out += "}\n"
    return out
}

/// Spelling rules shared by the printer and the parser.
enum IRText {
    static func isNameByte(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: ":"), UInt8(ascii: "/"), UInt8(ascii: "-"):
            return true
        default: return false
        }
    }

    static func name(_ s: String) -> String {
        let u = Array(s.utf8)
        if !u.isEmpty, u.allSatisfy(isNameByte), u.last != UInt8(ascii: ":") { return s }
        return quoteString(s)
    }

    /// Symbols print bare when they read as an identifier; anything else ("?", "3", "batch size") is quoted.
    static func dim(_ d: Dim) -> String {
        switch d {
        case .known(let v): return String(v)
        case .unknown: return "?"
        case .symbol(let s):
            let u = Array(s.utf8)
            if let f = u.first, isIdentStart(f), u.allSatisfy(isIdentByte) { return s }
            return quoteString(s)
        }
    }

    static func isIdentStart(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z")) || (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z"))
            || c == UInt8(ascii: "_")
    }
    static func isIdentByte(_ c: UInt8) -> Bool {
        isIdentStart(c) || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9"))
    }

    static func type(_ t: TensorType) -> String {
        guard let shape = t.shape else { return "\(t.dtype.rawValue)[*]" }
        return "\(t.dtype.rawValue)[\(shape.map(dim).joined(separator: ","))]"
    }

    static func data(_ t: Tensor) -> String {
        var parts: [String] = []
        parts.reserveCapacity(t.count)
        switch t.storage {
        case .f32(let a): for v in a { parts.append(formatFloat(v)) }
        case .i8(let a): for v in a { parts.append(String(v)) }
        case .u8(let a): for v in a { parts.append(String(v)) }
        case .i32(let a): for v in a { parts.append(String(v)) }
        case .i64(let a): for v in a { parts.append(String(v)) }
        case .bool(let a): for v in a { parts.append(v ? "true" : "false") }
        case .f64(let a): for v in a { parts.append(v.isNaN ? "nan" : v.isInfinite ? (v < 0 ? "-inf" : "inf") : "\(v)") }
        case .i16(let a): for v in a { parts.append(String(v)) }
        case .u16(let a): for v in a { parts.append(String(v)) }
        case .u32(let a): for v in a { parts.append(String(v)) }
        case .u64(let a): for v in a { parts.append(String(v)) }
        }
        return "[" + parts.joined(separator: ", ") + "]"
    }

    static func attr(_ v: AttrValue) -> String {
        switch v {
        case .int(let i): return String(i)
        case .float(let f): return formatFloat(f)
        case .string(let s): return quoteString(s)
        case .ints(let a): return "[" + a.map(String.init).joined(separator: ", ") + "]"
        case .floats(let a): return "[" + a.map(formatFloat).joined(separator: ", ") + "]f"
        // An empty list would read as ints; the suffix keeps its kind.
        case .strings(let a): return "[" + a.map(quoteString).joined(separator: ", ") + (a.isEmpty ? "]s" : "]")
        case .tensor(let t): return "tensor<\(type(t.type))> \(data(t))"
        }
    }

    static func opName(_ op: Op) -> String {
        op.domain.isEmpty ? op.typeName : "\(op.domain).\(op.typeName)"
    }

    static func node(_ n: Node, types: [String: TensorType]) -> String {
        var s = ""
        if !n.outputs.isEmpty { s += n.outputs.map { "%" + name($0) }.joined(separator: ", ") + " = " }
        s += opName(n.op) + "(" + n.inputs.map { "%" + name($0) }.joined(separator: ", ") + ")"
        let attrs = n.op.attributes
        if !attrs.isEmpty { s += " {" + attrs.map { "\($0.0) = \(attr($0.1))" }.joined(separator: ", ") + "}" }
        let outTypes = n.outputs.map { types[$0] }
        if outTypes.contains(where: { $0 != nil }) {
            s += " : " + outTypes.map { $0.map(type) ?? "_" }.joined(separator: ", ")
        }
        if !n.name.isEmpty { s += " @" + name(n.name) }
        return s
    }
}
