import ArgumentParser
import BitSwitchIR
import BitSwitchONNX
import BitSwitchPasses
import Foundation

/// The options of every command that imports an ONNX model.
struct ImportFlags: ParsableArguments {
    @Flag(help: "Import a model whose opset is newer than BitSwitch implements (a warning instead of an error).")
    var allowNewerOpset = false
    @Option(help: ArgumentHelp("Refuse a model whose constant tensors need more than this many bytes in total, and "
                               + "(run, eval, train) a run whose constants plus estimated activations do (default: "
                               + "the available memory).", valueName: "BYTES"))
    var maxMemory: Int?

    func validate() throws {
        if let maxMemory, maxMemory < 0 { throw ValidationError("--max-memory must be a non-negative byte count") }
    }

    var options: ImportOptions {
        ImportOptions(allowNewerOpset: allowNewerOpset, maxMemory: maxMemory, warn: { Terminal.note($0) })
    }
}

/// Loads a model and infers shapes; every subcommand that reads a model starts here.
func loadModel(_ path: String, _ flags: ImportFlags, inferShapes infer: Bool = true) throws -> Graph {
    var g = try ONNXImporter.importModel(path: path, options: flags.options)
    if infer {
        do { try inferShapes(&g) } catch let e as BitSwitchError { throw e.located(file: path) }
    }
    return g
}

struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import an ONNX model and summarise it: inputs, outputs, op histogram, parameters, MACs.")

    @Argument(help: "The ONNX model file.") var model: String
    @Flag(help: "Print how long the import took (`timing: import <seconds> s`).") var timing = false
    @OptionGroup var importFlags: ImportFlags

    func run() throws {
        let start = DispatchTime.now()
        let imported = try ONNXImporter.importModel(path: model, options: importFlags.options)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        var g = imported
        do { try inferShapes(&g) } catch let e as BitSwitchError { throw e.located(file: model) }
        print(summary(g, path: model))
        if timing { print("timing: import \(seconds) s") }
    }

    func summary(_ g: Graph, path: String) -> String {
        let stats = GraphStats(g)
        var lines: [String] = []
        let opsets = g.opsets.sorted { $0.key < $1.key }
            .map { "\($0.key.isEmpty ? "ai.onnx" : $0.key) \($0.value)" }.joined(separator: ", ")
        lines.append("model:      \(path)")
        if let p = g.metadata["producer_name"], !p.isEmpty {
            lines.append("producer:   \(p) \(g.metadata["producer_version"] ?? "")")
        }
        lines.append("opsets:     \(opsets)")
        lines.append("inputs:")
        for i in g.inputs { lines.append("  \(i.name): \(i.type)") }
        lines.append("outputs:")
        for o in g.outputs { lines.append("  \(o.name): \(g.type(of: o.name) ?? o.type)") }
        lines.append("nodes:      \(g.nodes.count)")
        lines.append("ops:")
        for (op, n) in stats.opHistogram { lines.append("  \(op.padding(toLength: 22, withPad: " ", startingAt: 0)) \(n)") }
        lines.append("parameters: \(stats.parameterCount) (\(humanCount(stats.parameterCount)))")
        var macs = "MACs:       \(stats.macs) (\(humanCount(stats.macs))) per sample"
        if !stats.uncountedNodes.isEmpty { macs += ", not counting \(stats.uncountedNodes.count) node(s) of unknown shape" }
        lines.append(macs)
        return lines.joined(separator: "\n")
    }
}

struct PrintIRCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "print-ir", abstract: "Print the IR text form of an ONNX model (or of an IR text file, re-printed).")

    @Argument(help: "The ONNX model file, or a .bsir IR text file.") var model: String
    @Flag(help: "Print every constant in full (the text then parses back exactly).") var fullConstants = false
    @Flag(help: "Skip shape inference.") var noShapes = false
    @OptionGroup var importFlags: ImportFlags

    func run() throws {
        let g: Graph
        if model.hasSuffix(".bsir") {
            let text: String
            do { text = try String(contentsOfFile: model, encoding: .utf8) } catch {
                throw BitSwitchError(.io, "cannot read IR text: \(error.localizedDescription)", file: model)
            }
            do { g = try parseGraph(text) } catch let e as BitSwitchError { throw e.located(file: model) }
        } else {
            g = try loadModel(model, importFlags, inferShapes: !noShapes)
        }
        print(printGraph(g, elideConstantsOver: fullConstants ? nil : 16), terminator: "")
    }
}

struct PassesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "passes", abstract: "List every registered pass with its options.")

    func run() throws {
        for p in PassRegistry.all.sorted(by: { $0.name < $1.name }) {
            print("\(p.name)\n    \(p.summary)")
            for o in p.options {
                print("    \(o.name)=<\(o.kind)>  (default \(o.defaultValue))  \(o.summary)")
            }
        }
    }
}
