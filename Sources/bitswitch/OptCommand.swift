import ArgumentParser
import BitSwitchData
import BitSwitchIR
import BitSwitchONNX
import BitSwitchPasses
import Foundation

struct OptCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "opt",
        abstract: "Run a pass pipeline on a model and write the result.",
        discussion: """
            The pipeline is a YAML file (see passes/) or an inline string such as
            'canonicalize,fold-constants,fold-batchnorm'. Options go in braces: 'insert-fake-quant{bits=8,6,4,2}'.
            """)

    @Argument(help: "The ONNX model file.") var model: String
    @OptionGroup var importFlags: ImportFlags
    @Option(name: .long, help: "A pipeline YAML file or an inline pipeline string.") var pipeline: String
    @Option(name: .shortAndLong, help: "Where to write the result (.onnx, or .bsir for IR text).") var output: String
    @Flag(help: "Print the IR after every pass (to stderr).") var printIrAfterAll = false
    @Option(help: "Seed for every random choice a pass makes.") var seed: UInt64 = 0

    func run() throws {
        var g = try loadModel(model, importFlags)
        let p: Pipeline
        if FileManager.default.fileExists(atPath: pipeline) || pipeline.hasSuffix(".yaml") || pipeline.hasSuffix(".yml") {
            p = try Pipeline.load(path: pipeline)
        } else {
            p = try Pipeline.parse(pipeline)
        }
        let context = PassContext()
        context.seed = seed
        context.modelPath = model
        context.logger = { Terminal.note($0) }
        do {
            try p.run(&g, context: context, printIRAfterAll: printIrAfterAll, irSink: { Terminal.note($0) })
        } catch let e as BitSwitchError { throw e.located(file: model) }
        if output.hasSuffix(".bsir") {
            try writeAtomically(printGraph(g), to: output)
        } else {
            try ONNXExporter.write(g, to: output)
        }
        print("wrote \(output)")
    }
}

/// Temp file beside the target, fsync, rename, fsync of the directory: a crash never leaves half a file.
func writeAtomically(_ text: String, to path: String) throws {
    do { try AtomicFile.write(Data(text.utf8), to: path) } catch let e as DataError {
        throw BitSwitchError(.io, e.message, file: path)
    }
}
