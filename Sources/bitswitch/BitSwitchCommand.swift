import ArgumentParser
import BitSwitchIR
import BitSwitchQuant
import Foundation

@main
struct BitSwitchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bitswitch",
        abstract: "Import an ONNX model, run compiler passes on it, and run it — one quantized network at any bit-width.",
        subcommands: [ImportCommand.self, PrintIRCommand.self, RunCommand.self, OptCommand.self, PassesCommand.self,
                      TrainCommand.self, EvalCommand.self, ExportCommand.self, ConformanceCommand.self, BenchTrainCommand.self,
                      EmitCommand.self, BuildCommand.self, ProfileLatencyCommand.self, HessianCommand.self, SearchCommand.self])

    /// Our errors already name file, node, op and opset: print them as they are and exit 1.
    static func main() {
        // Quantized models (quant-dialect ops) run, train and evaluate through the quantization module's kernels.
        registerKernels()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let error as BitSwitchError {
            Terminal.error(error.description)
            Foundation.exit(1)
        } catch {
            exit(withError: error)
        }
    }
}

enum Terminal {
    static func error(_ s: String) { FileHandle.standardError.write((s + "\n").data(using: .utf8)!) }
    static func note(_ s: String) { FileHandle.standardError.write((s + "\n").data(using: .utf8)!) }
    static var stderrIsTerminal: Bool { isatty(2) != 0 }
}
