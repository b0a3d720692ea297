import ArgumentParser
import BitSwitchIR
import BitSwitchONNX
import BitSwitchRuntime
import Foundation

/// Runs ONNX's own backend test cases (<case>/model.onnx + test_data_set_*/input_K.pb, output_K.pb)
/// through the importer and the float executor. Cases that use an op BitSwitch does not support are skipped;
/// every other case counts as passed or failed.
struct ConformanceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conformance",
        abstract: "Run ONNX backend test cases (scripts/gen-conformance-data.py makes them) and print op × passed/failed.")

    @Argument(help: "Directories holding test cases (searched recursively).") var roots: [String]
    @Option(help: "Only cases whose name contains this.") var filter: String?
    @Option(help: "Relative tolerance.") var rtol: Double = 1e-4
    @Option(help: "Absolute tolerance.") var atol: Double = 1e-5
    @Option(help: "Also write the table as Markdown to this file.") var markdown: String?
    @Option(help: "A file listing known-partial cases (one name per line, '# reason' after it); they are reported, not failed.")
    var expectedFailures: String?
    @Flag(help: "List every failing case with the reason.") var verbose = false
    @Flag(help: ArgumentHelp("Run cases whose opset is newer than BitSwitch implements (ONNX writes each node case at "
                             + "the newest version of its op, often one that only added element types); without it "
                             + "they are skipped."))
    var allowNewerOpset = false

    struct Outcome { var caseName: String; var op: String; var passed: Bool; var reason: String }

    func run() throws {
        var cases: [String] = []
        for r in roots { cases += findCases(r) }
        cases.sort()
        if let filter { cases = cases.filter { ($0 as NSString).lastPathComponent.contains(filter) } }
        if cases.isEmpty {
            throw BitSwitchError(.io, "no test cases (dirs with model.onnx and test_data_set_*) under \(roots.joined(separator: ", "))")
        }
        let partial = try loadExpectedFailures()
        var outcomes: [Outcome] = []
        var skipped: [String: Int] = [:]
        for (i, dir) in cases.enumerated() {
            if Terminal.stderrIsTerminal, i % 50 == 0 { Terminal.note("\r[\(i)/\(cases.count)]") }
            switch runCase(dir) {
            case .skipped(let op): skipped[op, default: 0] += 1
            case .ran(let o): outcomes.append(o)
            }
        }
        print(renderTable(outcomes, partial: partial))
        let failures = outcomes.filter { !$0.passed && partial[$0.caseName] == nil }
        let knownPartial = outcomes.filter { !$0.passed && partial[$0.caseName] != nil }
        let fixed = outcomes.filter { $0.passed && partial[$0.caseName] != nil }
        if !knownPartial.isEmpty {
            print("\nknown partial (listed in \(expectedFailures ?? "")):")
            for f in knownPartial { print("  \(f.caseName) [\(f.op)]: \(partial[f.caseName] ?? "")") }
        }
        if !fixed.isEmpty {
            print("\nlisted as partial but now passing (remove from the list): " + fixed.map(\.caseName).joined(separator: ", "))
        }
        if !failures.isEmpty {
            print("\nfailing cases:")
            for f in failures.prefix(verbose ? failures.count : 40) { print("  \(f.caseName) [\(f.op)]: \(f.reason)") }
            if !verbose, failures.count > 40 { print("  ... \(failures.count - 40) more (--verbose lists all)") }
        }
        let skippedTotal = skipped.values.reduce(0, +)
        let opSkips = skipped.filter { $0.key.hasPrefix("op ") }
        print("\nskipped \(skippedTotal) cases outside the supported set: \(opSkips.values.reduce(0, +)) use one of "
              + "\(opSkips.count) unsupported ops; " + skipped.filter { !$0.key.hasPrefix("op ") }
                .sorted { $0.value > $1.value }.map { "\($0.value) use \($0.key)" }.joined(separator: ", "))
        if let markdown {
            let md = "| op | passed | failed | partial |\n|---|---|---|---|\n"
                + groups(outcomes, partial: partial).map { "| \($0.op) | \($0.passed) | \($0.failed) | \($0.partial) |" }
                .joined(separator: "\n")
                + "\n\n\(outcomes.count - failures.count - knownPartial.count) passed, \(failures.count) failed, "
                + "\(knownPartial.count) known partial; \(skippedTotal) cases skipped (ops, element types or opsets outside the supported set)\n"
            try writeAtomically(md, to: markdown)
        }
        // The closing line counts known-partial cases (documented in README) as skipped.
        print("\(outcomes.count - failures.count - knownPartial.count) passed, \(failures.count) failed, \(knownPartial.count) skipped")
        if !failures.isEmpty { throw ExitCode(1) }
    }

    enum CaseResult { case skipped(String), ran(Outcome) }

    func runCase(_ dir: String) -> CaseResult {
        let name = (dir as NSString).lastPathComponent
        let modelPath = (dir as NSString).appendingPathComponent("model.onnx")
        if let ops = try? ONNXImporter.operatorTypes(path: modelPath),
           let outside = ops.first(where: { op in !Op.supportedTypes.contains(where: { $0 == op }) }) {
            return .skipped("op " + (outside.domain.isEmpty ? "" : outside.domain + "::") + outside.type)
        }
        let g: Graph
        do {
            g = try ONNXImporter.importModel(path: modelPath, options: ImportOptions(allowNewerOpset: allowNewerOpset))
        } catch let e as BitSwitchError {
            // Refused for a whole-model reason (an element type, a non-tensor value, an opset) rather than for
            // something an op does: outside the supported set, like an unsupported op.
            if e.kind == .unsupported, e.op == nil { return .skipped(skipReason(e.message)) }
            return .ran(Outcome(caseName: name, op: e.op ?? "?", passed: false, reason: "import: \(e.message)"))
        } catch {
            return .ran(Outcome(caseName: name, op: "?", passed: false, reason: "import: \(error)"))
        }
        let op = primaryOp(of: g, caseName: name)
        do {
            let executor = Executor(graph: g)
            for set in dataSets(dir) {
                var feeds: [String: Tensor] = [:]
                for (k, input) in g.inputs.enumerated() {
                    let p = (set as NSString).appendingPathComponent("input_\(k).pb")
                    guard FileManager.default.fileExists(atPath: p) else { continue }
                    feeds[input.name] = try TensorProtoIO.read(path: p).tensor
                }
                let got = try executor.run(feeds)
                for (k, output) in g.outputs.enumerated() {
                    let p = (set as NSString).appendingPathComponent("output_\(k).pb")
                    guard FileManager.default.fileExists(atPath: p) else { continue }
                    let want = try TensorProtoIO.read(path: p).tensor
                    guard let t = got[output.name] else {
                        return .ran(Outcome(caseName: name, op: op, passed: false, reason: "output \(output.name) missing"))
                    }
                    let c = Comparison.compare(t, want, rtol: rtol, atol: atol)
                    if !c.ok {
                        return .ran(Outcome(caseName: name, op: op, passed: false, reason: "output \(k) '\(output.name)': \(c.message)"))
                    }
                }
            }
        } catch let e as BitSwitchError {
            return .ran(Outcome(caseName: name, op: op, passed: false, reason: e.message))
        } catch {
            return .ran(Outcome(caseName: name, op: op, passed: false, reason: "\(error)"))
        }
        return .ran(Outcome(caseName: name, op: op, passed: true, reason: ""))
    }

    /// "graph input 'x': element type DOUBLE is not supported" -> "element type DOUBLE"
    func skipReason(_ message: String) -> String {
        if let r = message.range(of: "element type ") {
            return "element type " + (message[r.upperBound...].split(separator: " ").first.map(String.init) ?? "?")
        }
        if message.contains("only tensor types") { return "non-tensor values (sequence, map, optional)" }
        if message.contains("newest BitSwitch implements") {
            return "an opset newer than \(ONNXImporter.newestOpsets[""] ?? 0) (run with --allow-newer-opset)"
        }
        if message.contains("opset") { return "opset older than \(ONNXImporter.minimumOpset)" }
        return message
    }

    /// The op a case is about: the one its name spells (test_max_pool_... -> MaxPool), else its first node's.
    func primaryOp(of g: Graph, caseName: String) -> String {
        let key = caseName.lowercased().replacingOccurrences(of: "_", with: "")
        let types = Set(g.nodes.map(\.op.typeName))
        if let best = types.filter({ key.contains($0.lowercased()) }).max(by: { $0.count < $1.count }) { return best }
        return g.nodes.first?.op.typeName ?? "(no nodes)"
    }

    func dataSets(_ dir: String) -> [String] {
        let items = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return items.filter { $0.hasPrefix("test_data_set_") }.sorted().map { (dir as NSString).appendingPathComponent($0) }
    }

    func findCases(_ root: String) -> [String] {
        let fm = FileManager.default
        guard let e = fm.enumerator(atPath: root) else { return [] }
        var found: [String] = []
        while let rel = e.nextObject() as? String {
            if (rel as NSString).lastPathComponent == "model.onnx" {
                let dir = (root as NSString).appendingPathComponent((rel as NSString).deletingLastPathComponent)
                if !dataSets(dir).isEmpty { found.append(dir) }
            }
        }
        return found
    }

    func groups(_ outcomes: [Outcome], partial: [String: String]) -> [(op: String, passed: Int, failed: Int, partial: Int)] {
        var m: [String: (Int, Int, Int)] = [:]
        for o in outcomes {
            var v = m[o.op] ?? (0, 0, 0)
            if o.passed { v.0 += 1 } else if partial[o.caseName] != nil { v.2 += 1 } else { v.1 += 1 }
            m[o.op] = v
        }
        return m.sorted { $0.key < $1.key }.map { ($0.key, $0.value.0, $0.value.1, $0.value.2) }
    }

    func renderTable(_ outcomes: [Outcome], partial: [String: String]) -> String {
        var lines = ["op                     passed  failed  partial"]
        for g in groups(outcomes, partial: partial) {
            lines.append(g.op.padding(toLength: 22, withPad: " ", startingAt: 0)
                + String(g.passed).leftPadded(7) + String(g.failed).leftPadded(8) + String(g.partial).leftPadded(9))
        }
        return lines.joined(separator: "\n")
    }

    /// case name -> reason
    func loadExpectedFailures() throws -> [String: String] {
        guard let path = expectedFailures else { return [:] }
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw BitSwitchError(.io, "cannot read the expected-failures list: \(error.localizedDescription)", file: path)
        }
        var m: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "#", maxSplits: 1)
            let name = parts.first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            if name.isEmpty { continue }
            m[name] = parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : "partial"
        }
        return m
    }
}

extension String {
    func leftPadded(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}
