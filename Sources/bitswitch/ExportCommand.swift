import ArgumentParser
import BitSwitchIR
import BitSwitchONNX
import BitSwitchQuant
import Foundation

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write one profile of a multi-precision model as standard QDQ ONNX for other runtimes (onnxruntime, ...).")

    @Argument(help: "A multi-precision (fake-quant) model: the output of train --bits.") var model: String
    @OptionGroup var importFlags: ImportFlags
    @Option(help: "Output format: qdq.") var format: String = "qdq"
    @Option(help: "Uniform bit-width of the profile (default: the model's top trained bit-width).") var bits: Int?
    @Option(help: "A per-layer profile JSON file (docs/profiles.md).") var profile: String?
    @Option(name: .shortAndLong, help: "The QDQ ONNX file to write.") var output: String

    func run() throws {
        guard format == "qdq" else { throw ValidationError("--format must be qdq, got '\(format)'") }
        let g = try loadModel(model, importFlags)
        do {
            var p = try profile.map { try Profile.load(path: $0) } ?? Profile()
            if let bits { p.defaultBits = bits }
            let q = try exportQDQ(g, assignment: try p.resolve(in: g, file: profile))
            try ONNXExporter.write(q, to: output)
        } catch let e as BitSwitchError { throw e.located(file: model) }
        print("wrote \(output)")
    }
}
