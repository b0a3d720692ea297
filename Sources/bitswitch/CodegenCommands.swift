import ArgumentParser
import BitSwitchCodegen
import BitSwitchIR
import BitSwitchONNX
import Foundation

/// An ONNX model, or IR text (.bsir).
func loadModelOrIR(_ path: String) throws -> Graph {
    guard path.hasSuffix(".bsir") else { return try loadModel(path) }
    let text: String
    do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
        throw BitSwitchError(.io, "cannot read IR text: \(error.localizedDescription)", file: path)
    }
    do { return try parseGraph(text) } catch let e as BitSwitchError { throw e.located(file: path) }
}

struct EmitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "emit",
        abstract: "Write a self-contained C11 bundle (API header, sources, Makefile, CMakeLists.txt, README) for an integer model.",
        discussion: "The model must already be lowered to the integer dialect (docs/int-ops.md); it is emitted as one profile.")

    @Argument(help: "The integer model (.onnx, or .bsir IR text).") var model: String
    @Option(name: .shortAndLong, help: "The bundle directory (replaced atomically if it holds a previous bundle).") var output: String

    func run() throws {
        let g = try loadModelOrIR(model)
        let r: EmitReport
        do { r = try emitBundle(EmitInput(graph: g), to: output) } catch let e as BitSwitchError { throw e.located(file: model) }
        print("wrote \(r.directory): \(r.files.joined(separator: ", "))")
        print("  \(r.bundleBytes) bytes of source, \(r.weightBytes) bytes of INT8 weights, arena \(r.arenaBytes) bytes, "
              + "\(r.profileCount) profile(s), \(r.layerCount) switchable layer(s)")
        print("  build: bitswitch build \(output)   (or: make -C \(output))")
    }
}

struct BuildCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build",
        abstract: "Compile a bundle written by 'emit' into a shared library (${CC:-cc} -O3 -march=native), cached by content hash.")

    @Argument(help: "The bundle directory.") var directory: String
    @Option(name: .shortAndLong, help: "Where to write the library (default: print the cached library's path).") var output: String?
    @Option(help: "Compiler flags instead of '-O3 -march=native' (e.g. '-O2' for a portable build).") var flags: String?

    func run() throws {
        let opts = CompileOptions(flags: flags.map { $0.split(separator: " ").map(String.init) } ?? ["-O3", "-march=native"])
        let lib = try buildBundle(directory: directory, output: output, options: opts)
        print(lib)
    }
}
