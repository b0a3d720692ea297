import Foundation

// Model names never reach C source as code: identifiers are built from an index plus a sanitized ASCII tail,
// and names appear only inside escaped string literals or escaped comments.
enum CSyntax {
    /// `prefix<index>_<tail>`: the index makes it unique, the letter prefix keeps it off C keywords and reserved
    /// names, the tail (ASCII letters, digits and `_`, at most 24 characters) only helps a reader.
    static func identifier(_ prefix: String, _ index: Int, _ name: String) -> String {
        var tail = ""
        for u in name.unicodeScalars {
            if tail.count >= 24 { break }
            let ok = (u >= "a" && u <= "z") || (u >= "A" && u <= "Z") || (u >= "0" && u <= "9")
            tail.append(ok ? Character(u) : "_")
        }
        while tail.contains("__") { tail = tail.replacingOccurrences(of: "__", with: "_") }
        return "\(prefix)\(index)_\(tail)"
    }

    /// A C string literal holding the UTF-8 bytes of `s`. Everything but plain ASCII letters, digits and a few
    /// harmless punctuation marks is written as a three-digit octal escape (no trigraphs, quotes or backslashes).
    static func stringLiteral(_ s: String) -> String {
        var r = "\""
        for b in s.utf8 {
            if isPlain(b) { r.append(Character(Unicode.Scalar(b))) } else {
                let o = String(b, radix: 8)
                r += "\\" + String(repeating: "0", count: 3 - o.count) + o
            }
        }
        return r + "\""
    }

    /// Text safe inside a `/* ... */` comment: no `*`, `/`, backslash, newline or non-ASCII byte (those become `\xNN`).
    static func comment(_ s: String) -> String {
        var r = ""
        for b in s.utf8.prefix(200) {
            if isPlain(b) { r.append(Character(Unicode.Scalar(b))) } else { r += String(format: "\\x%02x", b) }
        }
        return s.utf8.count > 200 ? r + "..." : r
    }

    private static func isPlain(_ b: UInt8) -> Bool {
        (b >= 0x61 && b <= 0x7a) || (b >= 0x41 && b <= 0x5a) || (b >= 0x30 && b <= 0x39)
            || " _.,:;+=-()[]<>#%&|^~!@$".utf8.contains(b)
    }

    static func int64(_ v: Int) -> String {
        v == Int(Int64.min) ? "(-INT64_C(9223372036854775807) - 1)" : "INT64_C(\(v))"
    }
    static func int32(_ v: Int32) -> String { v == Int32.min ? "(-2147483647 - 1)" : "\(v)" }
    static func size(_ v: Int) -> String { "(size_t)\(v)u" }

    /// An exact C float literal (hexadecimal), or the math.h macro for infinities and NaN.
    static func float(_ f: Float) -> String {
        if f.isNaN { return "NAN" }
        if f.isInfinite { return f < 0 ? "(-INFINITY)" : "INFINITY" }
        return String(format: "%af", Double(f))
    }

    /// Comma-separated values wrapped at about 100 columns.
    static func list<S: Sequence>(_ values: S, indent: String = "    ") -> String where S.Element == String {
        var lines: [String] = []
        var line = indent
        for v in values {
            if line.count + v.count + 2 > 110 && line != indent { lines.append(line); line = indent }
            line += v + ", "
        }
        if line != indent { lines.append(line) }
        return lines.joined(separator: "\n")
    }
}
