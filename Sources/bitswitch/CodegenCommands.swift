import ArgumentParser
import BitSwitchCodegen
import BitSwitchIR
import BitSwitchONNX
import Foundation

/// An ONNX model, or IR text (.bsir).
func loadModelOrIR(_ path: String, _ flags: ImportFlags) throws -> Graph {
    guard path.hasSuffix(".bsir") else { return try loadModel(path, flags) }
    let text: String
    do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
        throw BitSwitchError(.io, "cannot read IR text: \(error.localizedDescription)", file: path)
    }
    do { return try parseGraph(text) } catch let e as BitSwitchError { throw e.located(file: path) }
}

struct EmitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "emit",
        abstract: "Compile a quantized model to a self-contained C11 bundle (API header, sources, Makefile, CMakeLists.txt, README).",
        discussion: """
            A multi-precision model (train --bits) is lowered to integer ops (docs/int-ops.md) once per profile; the \
            INT8 weights are stored once and each profile adds only its requantization tables and shifts. \
            bs_set_profile(ctx, i) switches between the --profiles in order; bs_set_layer_bits moves one layer \
            (weights and input activation at one bit-width). A model quantized elsewhere (QDQ) or already lowered \
            is emitted as one profile.
            """)

    @Argument(help: "A quantized model (.onnx from train --bits or a QDQ model, or an integer .onnx/.bsir).") var model: String
    @OptionGroup var importFlags: ImportFlags
    @Option(name: .shortAndLong, help: "The bundle directory (replaced atomically if it holds a previous bundle).") var output: String
    @Option(help: ArgumentHelp("Profiles to compile in, in order: bit-widths and profile files, e.g. 8,6,4,2,mixed.json (default: every trained bit-width).", valueName: "LIST"))
    var profiles: String?
    @Flag(help: "Compile in only the listed profiles (no per-layer switching tables).") var noLayerSwitching = false
    @Option(help: ArgumentHelp("Kernels to emit for: avx2, avx512vnni (uses the AVX2 kernels for now), neon (generic kernels for now), generic, or native (default: this machine's).", valueName: "ISA"))
    var isa = "native"

    func run() throws {
        let g = try loadModelOrIR(model, importFlags)
        let r: EmitReport
        var input = try emitInput(g, profiles: try parseProfiles(profiles, model: g), perLayer: !noLayerSwitching, file: model)
        input.isa = try KernelISA.parse(isa)
        do { r = try emitBundle(input, to: output) } catch let e as BitSwitchError { throw e.located(file: model) }
        print("wrote \(r.directory): \(r.files.joined(separator: ", "))")
        print("  \(r.bundleBytes) bytes of source, \(r.weightBytes) bytes of INT8 weights, arena \(r.arenaBytes) bytes, "
              + "\(r.profileCount) profile(s), \(r.layerCount) switchable layer(s), kernels for \(input.isa.rawValue)")
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
    @Option(help: ArgumentHelp("Check that the bundle was emitted for this ISA (avx2, avx512vnni, neon, generic, native); the ISA is chosen by 'emit --isa'.", valueName: "ISA"))
    var isa: String?

    func run() throws {
        var opts = CompileOptions(flags: flags.map { $0.split(separator: " ").map(String.init) } ?? ["-O3", "-march=native"])
        opts.isa = try isa.map(KernelISA.parse)
        let lib = try buildBundle(directory: directory, output: output, options: opts)
        print(lib)
    }
}
