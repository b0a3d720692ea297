import BitSwitchIR
import Foundation
import Yams

/// One typed option of a pass, as listed by `bitswitch passes` and set in pipelines (`name{key=value}`).
public struct PassOption: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable { case int, float, bool, string, intList = "int-list" }
    public let name: String
    public let summary: String
    public let kind: Kind
    /// The default in the same spelling a pipeline uses ("8,6,4,2", "true", "0.5").
    public let defaultValue: String

    public init(_ name: String, _ kind: Kind, default defaultValue: String, _ summary: String) {
        self.name = name; self.kind = kind; self.defaultValue = defaultValue; self.summary = summary
    }
}

/// The option values of one pipeline step, checked against the pass's declared options when the pipeline is
/// built, so a typo or a wrong type fails before any pass runs.
public struct PassOptions: Sendable, Equatable, CustomStringConvertible {
    public let pass: String
    /// Values as written, by option name; unset options read as their defaults.
    public let values: [String: String]
    private let declared: [String: PassOption]

    public init(pass: String, declared: [PassOption], values: [String: String]) throws {
        self.pass = pass
        self.values = values
        var d: [String: PassOption] = [:]
        for o in declared { d[o.name] = o }
        self.declared = d
        for (k, v) in values.sorted(by: { $0.key < $1.key }) {
            guard let o = d[k] else {
                let known = declared.map(\.name)
                throw BitSwitchError(.pass, "pass '\(pass)' has no option '\(k)'"
                    + (known.isEmpty ? "; it takes no options" : "; its options are \(known.joined(separator: ", "))"))
            }
            _ = try PassOptions.convert(v, o, pass: pass)
        }
    }

    public static func defaults(for p: Pass) -> PassOptions {
        PassOptions(unchecked: p.name, declared: p.options)
    }

    private init(unchecked pass: String, declared: [PassOption]) {
        self.pass = pass; self.values = [:]
        self.declared = Dictionary(declared.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    }

    private func raw(_ name: String, _ kind: PassOption.Kind) throws -> (String, PassOption) {
        guard let o = declared[name] else {
            throw BitSwitchError(.pass, "pass '\(pass)' reads option '\(name)', which it does not declare")
        }
        guard o.kind == kind else {
            throw BitSwitchError(.pass, "pass '\(pass)' reads option '\(name)' as \(kind.rawValue), but declares it \(o.kind.rawValue)")
        }
        return (values[name] ?? o.defaultValue, o)
    }

    public func int(_ name: String) throws -> Int {
        let (v, o) = try raw(name, .int)
        guard case .int(let r) = try PassOptions.convert(v, o, pass: pass) else { return 0 }
        return r
    }
    public func float(_ name: String) throws -> Double {
        let (v, o) = try raw(name, .float)
        guard case .float(let r) = try PassOptions.convert(v, o, pass: pass) else { return 0 }
        return r
    }
    public func bool(_ name: String) throws -> Bool {
        let (v, o) = try raw(name, .bool)
        guard case .bool(let r) = try PassOptions.convert(v, o, pass: pass) else { return false }
        return r
    }
    public func string(_ name: String) throws -> String { try raw(name, .string).0 }
    public func ints(_ name: String) throws -> [Int] {
        let (v, o) = try raw(name, .intList)
        guard case .ints(let r) = try PassOptions.convert(v, o, pass: pass) else { return [] }
        return r
    }

    private enum Typed { case int(Int), float(Double), bool(Bool), string(String), ints([Int]) }

    private static func convert(_ v: String, _ o: PassOption, pass: String) throws -> Typed {
        let s = v.trimmingCharacters(in: .whitespaces)
        func bad(_ expected: String) -> BitSwitchError {
            BitSwitchError(.pass, "pass '\(pass)' option '\(o.name)' expects \(expected), got '\(v)'")
        }
        switch o.kind {
        case .int:
            guard let i = Int(s) else { throw bad("an integer") }
            return .int(i)
        case .float:
            guard let d = Double(s), d.isFinite else { throw bad("a finite number") }
            return .float(d)
        case .bool:
            switch s.lowercased() {
            case "true", "1", "yes", "on": return .bool(true)
            case "false", "0", "no", "off": return .bool(false)
            default: throw bad("true or false")
            }
        case .string:
            return .string(v)
        case .intList:
            var body = Substring(s)
            if body.hasPrefix("["), body.hasSuffix("]") { body = body.dropFirst().dropLast() }
            if body.trimmingCharacters(in: .whitespaces).isEmpty { return .ints([]) }
            var r: [Int] = []
            for part in body.split(separator: ",", omittingEmptySubsequences: false) {
                guard let i = Int(part.trimmingCharacters(in: .whitespaces)) else { throw bad("a list of integers like 8,6,4,2") }
                r.append(i)
            }
            return .ints(r)
        }
    }

    /// `{k=v,k2=1,2}` in pipeline syntax, keys sorted; "" when no option is set.
    public var description: String {
        values.isEmpty ? "" : "{" + values.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",") + "}"
    }
}

/// Progress of a long pass (training, calibration), for a bar or a log line.
public struct PassProgress: Sendable {
    public var pass: String
    public var completed: Int
    public var total: Int?
    public var message: String
    public init(pass: String, completed: Int, total: Int?, message: String) {
        self.pass = pass; self.completed = completed; self.total = total; self.message = message
    }
}

/// What passes share besides the graph: where to log and report progress, the seed every random choice
/// derives from, the model's path, and things earlier passes produce for later ones (`userInfo`).
public final class PassContext {
    public var logger: (String) -> Void
    public var progress: (PassProgress) -> Void
    public var seed: UInt64
    public var modelPath: String?
    public var userInfo: [String: any Sendable]

    public init(seed: UInt64 = 0, modelPath: String? = nil, logger: @escaping (String) -> Void = { _ in },
                progress: @escaping (PassProgress) -> Void = { _ in }) {
        self.seed = seed; self.modelPath = modelPath; self.logger = logger; self.progress = progress
        self.userInfo = [:]
    }

    /// A value an earlier pass (or the CLI) put in `userInfo`; the error says which pass needs it and where it comes from.
    public func require<T>(_ key: String, as: T.Type = T.self, by pass: String, providedBy provider: String) throws -> T {
        guard let v = userInfo[key] else {
            throw BitSwitchError(.pass, "pass '\(pass)' needs '\(key)', which \(provider) provides; run that first")
        }
        guard let t = v as? T else {
            throw BitSwitchError(.pass, "pass '\(pass)' needs '\(key)' as \(T.self), found \(type(of: v))")
        }
        return t
    }
}

/// A named graph transformation with typed options. Declaring one is registering it in the built-in list.
public struct Pass: Sendable {
    public let name: String
    public let summary: String
    public let options: [PassOption]
    public let run: @Sendable (inout Graph, PassOptions, PassContext) throws -> Void

    public init(name: String, summary: String, options: [PassOption] = [],
                run: @escaping @Sendable (inout Graph, PassOptions, PassContext) throws -> Void) {
        self.name = name; self.summary = summary; self.options = options; self.run = run
    }
}

/// Every pass a pipeline can name. Built-ins are present from the first use; `register` adds (or replaces) one.
public enum PassRegistry {
    private final class Store: @unchecked Sendable {
        let lock = NSLock()
        var order: [String] = []
        var passes: [String: Pass] = [:]
        init(_ builtins: [Pass]) { for p in builtins { order.append(p.name); passes[p.name] = p } }
    }
    private static let store = Store(builtinPasses)

    public static func register(_ p: Pass) {
        store.lock.lock(); defer { store.lock.unlock() }
        if store.passes.updateValue(p, forKey: p.name) == nil { store.order.append(p.name) }
    }

    public static func lookup(_ name: String) -> Pass? {
        store.lock.lock(); defer { store.lock.unlock() }
        return store.passes[name]
    }

    /// In registration order.
    public static var all: [Pass] {
        store.lock.lock(); defer { store.lock.unlock() }
        return store.order.compactMap { store.passes[$0] }
    }

    static func resolve(_ name: String) throws -> Pass {
        if let p = lookup(name) { return p }
        let names = all.map(\.name)
        let close = names.filter { editDistance($0, name) <= max(2, name.count / 3) || $0.contains(name) || name.contains($0) }
        let hint = close.isEmpty ? "known passes: \(names.joined(separator: ", "))"
                                 : "did you mean \(close.map { "'\($0)'" }.joined(separator: " or "))?"
        throw BitSwitchError(.pass, "unknown pass '\(name)'; \(hint)")
    }
}

private func editDistance(_ a: String, _ b: String) -> Int {
    let x = Array(a), y = Array(b)
    if x.isEmpty { return y.count }
    var prev = Array(0...y.count)
    for i in 1...x.count {
        var cur = [i] + Array(repeating: 0, count: y.count)
        for j in 1...max(y.count, 1) where j <= y.count {
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x[i - 1] == y[j - 1] ? 0 : 1))
        }
        prev = cur
    }
    return prev[y.count]
}

/// An ordered list of passes with their options: from an inline string (`canonicalize,insert-fake-quant{bits=8,6,4,2}`)
/// or a YAML file in passes/.
public struct Pipeline: Sendable, CustomStringConvertible {
    public struct Step: Sendable {
        public let pass: Pass
        public let options: PassOptions
        public init(pass: Pass, options: PassOptions) { self.pass = pass; self.options = options }
    }
    public var steps: [Step]

    public init(steps: [Step]) { self.steps = steps }

    /// Inline form: passes separated by commas, options in braces as `key=value` separated by commas.
    /// A comma-separated piece without '=' continues the previous value, so lists need no quoting: `{bits=8,6,4,2}`.
    public static func parse(_ text: String) throws -> Pipeline {
        var items: [(String, Int)] = []
        var depth = 0, start = text.startIndex, startCol = 1, col = 1
        for idx in text.indices {
            let c = text[idx]
            if c == "{" { depth += 1; if depth > 1 { throw inlineError(text, col, "nested '{'") } }
            if c == "}" { depth -= 1; if depth < 0 { throw inlineError(text, col, "'}' without '{'") } }
            if c == ",", depth == 0 {
                items.append((String(text[start..<idx]), startCol))
                start = text.index(after: idx); startCol = col + 1
            }
            col += 1
        }
        if depth != 0 { throw inlineError(text, col, "missing '}'") }
        items.append((String(text[start...]), startCol))

        var steps: [Step] = []
        for (item, itemCol) in items {
            let trimmed = item.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { throw inlineError(text, itemCol, "expected a pass name") }
            var name = trimmed, raw: [String: String] = [:]
            if let open = trimmed.firstIndex(of: "{") {
                guard trimmed.hasSuffix("}") else { throw inlineError(text, itemCol, "text after '}' in '\(trimmed)'") }
                name = trimmed[..<open].trimmingCharacters(in: .whitespaces)
                let body = trimmed[trimmed.index(after: open)..<trimmed.index(before: trimmed.endIndex)]
                var last: String?
                for piece in body.split(separator: ",", omittingEmptySubsequences: false) {
                    if let eq = piece.firstIndex(of: "=") {
                        let k = piece[..<eq].trimmingCharacters(in: .whitespaces)
                        if k.isEmpty { throw inlineError(text, itemCol, "an option of '\(name)' has no name") }
                        if raw[k] != nil { throw inlineError(text, itemCol, "option '\(k)' of '\(name)' is set twice") }
                        raw[k] = piece[piece.index(after: eq)...].trimmingCharacters(in: .whitespaces)
                        last = k
                    } else if let k = last {
                        raw[k, default: ""] += "," + piece.trimmingCharacters(in: .whitespaces)
                    } else if !piece.trimmingCharacters(in: .whitespaces).isEmpty {
                        throw inlineError(text, itemCol, "expected key=value in the options of '\(name)', got '\(piece)'")
                    }
                }
            }
            if name.isEmpty { throw inlineError(text, itemCol, "expected a pass name before '{'") }
            steps.append(try step(name, raw))
        }
        return Pipeline(steps: steps)
    }

    private static func inlineError(_ text: String, _ col: Int, _ message: String) -> BitSwitchError {
        BitSwitchError(.parse, "pipeline '\(text)', column \(col): \(message)")
    }

    private static func step(_ name: String, _ raw: [String: String]) throws -> Step {
        let p = try PassRegistry.resolve(name)
        return Step(pass: p, options: try PassOptions(pass: p.name, declared: p.options, values: raw))
    }

    public static func load(path: String) throws -> Pipeline {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw BitSwitchError(.io, "cannot read pipeline file: \(error.localizedDescription)", file: path)
        }
        do { return try parseYAML(text) } catch let e as BitSwitchError { throw e.located(file: path) }
    }

    /// ```yaml
    /// pipeline:
    ///   - canonicalize
    ///   - fold-batchnorm: {}
    ///   - insert-fake-quant: { bits: [8, 6, 4, 2] }
    /// ```
    public static func parseYAML(_ text: String) throws -> Pipeline {
        let root: Yams.Node?
        do { root = try Yams.compose(yaml: text) } catch {
            throw BitSwitchError(.parse, "not valid YAML: \(error)")
        }
        func at(_ n: Yams.Node?) -> String { n?.mark.map { "\($0.line):\($0.column): " } ?? "" }
        guard let root, case .mapping(let top) = root else {
            throw BitSwitchError(.parse, "\(at(root))expected a mapping with a 'pipeline' list")
        }
        var list: Yams.Node?
        for (k, v) in top {
            switch k.string {
            case "pipeline": list = v
            case "description": continue
            default: throw BitSwitchError(.parse, "\(at(k))unknown key '\(k.string ?? "?")'; expected 'pipeline' (and optionally 'description')")
            }
        }
        guard let list, case .sequence(let items) = list else {
            throw BitSwitchError(.parse, "\(at(list ?? root))'pipeline' must be a list of passes")
        }
        var steps: [Step] = []
        for item in items {
            do {
                switch item {
                case .scalar(let s):
                    steps.append(try step(s.string, [:]))
                case .mapping(let m):
                    guard m.count == 1, let (k, v) = m.first, let name = k.string else {
                        throw BitSwitchError(.parse, "expected 'pass-name: {options}' with one pass per list item")
                    }
                    var raw: [String: String] = [:]
                    switch v {
                    case .mapping(let opts):
                        for (ok, ov) in opts {
                            guard let key = ok.string else { throw BitSwitchError(.parse, "option names must be strings") }
                            raw[key] = try yamlOptionValue(ov, key)
                        }
                    case .scalar(let s) where s.string.isEmpty || s.string == "null" || s.string == "~":
                        break
                    default:
                        throw BitSwitchError(.parse, "options of '\(name)' must be a mapping like { key: value }")
                    }
                    steps.append(try step(name, raw))
                default:
                    throw BitSwitchError(.parse, "expected a pass name or 'pass-name: {options}'")
                }
            } catch let e as BitSwitchError {
                var e2 = e
                e2.message = at(item) + e.message
                throw e2
            }
        }
        return Pipeline(steps: steps)
    }

    private static func yamlOptionValue(_ v: Yams.Node, _ key: String) throws -> String {
        switch v {
        case .scalar(let s): return s.string
        case .sequence(let seq):
            return try seq.map { e -> String in
                guard case .scalar(let s) = e else { throw BitSwitchError(.parse, "option '\(key)' must be a value or a flat list") }
                return s.string
            }.joined(separator: ",")
        default: throw BitSwitchError(.parse, "option '\(key)' must be a value or a flat list")
        }
    }

    /// Runs every step in order. The verifier checks the graph before the first pass and after each one
    /// (`verifyEach`); any failure names the pass. With `printIRAfterAll`, `irSink` receives the IR text after each pass.
    public func run(_ g: inout Graph, context: PassContext, printIRAfterAll: Bool = false, verifyEach: Bool = true,
                    elideConstantsOver: Int? = nil, irSink: (String) -> Void = { _ in }) throws {
        if verifyEach {
            do { try verify(g) } catch let e as BitSwitchError {
                var e2 = e
                e2.message = "the input graph is invalid (before any pass): " + e.message
                throw e2
            }
        }
        for s in steps {
            let label = s.pass.name + s.options.description
            do {
                try s.pass.run(&g, s.options, context)
            } catch let e as BitSwitchError {
                var e2 = e
                if !e.message.contains("pass '\(s.pass.name)'") { e2.message = "pass '\(s.pass.name)': " + e.message }
                throw e2
            } catch {
                throw BitSwitchError(.pass, "pass '\(s.pass.name)': \(error)")
            }
            if verifyEach {
                do { try verify(g) } catch let e as BitSwitchError {
                    var e2 = e
                    e2.message = "the graph is invalid after pass '\(s.pass.name)': " + e.message
                    throw e2
                }
            }
            if printIRAfterAll { irSink("# IR after \(label)\n" + printGraph(g, elideConstantsOver: elideConstantsOver)) }
        }
    }

    /// The inline form, which `parse` reads back.
    public var description: String { steps.map { $0.pass.name + $0.options.description }.joined(separator: ",") }
}
