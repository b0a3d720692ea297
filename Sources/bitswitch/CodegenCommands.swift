import ArgumentParser
import BitSwitchCodegen
import BitSwitchIR
import BitSwitchONNX
import BitSwitchQuant
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
    @Flag(help: "Make every layer's weights at each of its bit-widths once, in bs_init: bs_set_profile and bs_set_layer_bits then take microseconds, for one packed copy per distinct bit-width in the arena.")
    var prepack = false
    @Option(help: ArgumentHelp("Kernels to emit for: avx2, avx512vnni (vpdpbusd kernels: compile with AVX-512 VNNI), neon (aarch64 NEON conv / gemm kernels, sdot with -march=armv8.2-a+dotprod), generic, or native (default: this machine's).", valueName: "ISA"))
    var isa = "native"

    func run() throws {
        let g = try loadModelOrIR(model, importFlags)
        let r: EmitReport
        var input = try emitInput(g, profiles: try parseProfiles(profiles, model: g), perLayer: !noLayerSwitching, file: model)
        input.isa = try KernelISA.parse(isa)
        input.prepack = prepack
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

struct ProfileLatencyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile-latency",
        abstract: "Measure every quantized layer of the generated C at every trained bit-width on this machine (µs, median).",
        discussion: """
            Each layer is lowered at each bit-width (weights and input activation at that width; pinned layers at \
            their pinned width), compiled on its own with the kernels the bundle would use, and timed at batch 1 \
            on seeded random input by the bundle's own per-layer timer (bs_set_layer_timing: the layer's conv or \
            gemm with its fused Requant, not the harness around it). The JSON written to -o is the latency table of `search --budget latency-us=N \
            --latency FILE` (docs/mixed-precision.md): {"layers": {"<layer>": {"<bits>": µs}}}, plus the machine.
            """)

    @Argument(help: "A multi-precision model (.onnx from train --bits).") var model: String
    @OptionGroup var importFlags: ImportFlags
    @Option(name: .shortAndLong, help: "Where to write the latency table (.json).") var output: String
    @Option(help: "Timed samples per layer and bit-width (the median is kept).") var repeats = 21
    @Option(help: ArgumentHelp("Kernels to time: avx2, avx512vnni, neon, generic, or native (default: this machine's, as run --backend c uses).", valueName: "ISA"))
    var isa = "native"
    @Option(help: "Threads each layer runs on (bs_init; 0 = every online CPU).") var threads = 1
    @Flag(help: "No progress output.") var quiet = false

    func run() throws {
        let g = try loadModel(model, importFlags)
        let kernels = try KernelISA.parse(isa)
        let layers = quantizedLayers(g)
        guard !layers.isEmpty else {
            throw BitSwitchError(.invalidModel, "the model has no quantized layers: run 'bitswitch train --bits 8,6,4,2' (or --ptq) first", file: model)
        }
        let widths = Array(Set(layers.flatMap(\.bits))).sorted(by: >)
        var table: [String: [String: Double]] = [:]
        let bar = LineProgress()
        let total = layers.reduce(0) { $0 + ($1.pinned == nil ? $1.bits.count : 1) }
        var done = 0
        for b in widths {
            let lowered: Graph
            do {
                lowered = try lowerToIntegers(g, assignment: try Profile.uniform(b).resolve(in: g), log: { Terminal.note($0) })
            } catch let e as BitSwitchError { throw e.located(file: model) }
            // A pinned layer runs at its pinned width in every profile: measured once.
            for l in layers where l.pinned != nil || l.bits.contains(b) {
                let bits = l.pinned ?? b
                guard table[l.name]?["\(bits)"] == nil else { continue }
                let us: Double
                do {
                    let net = try CompiledNetwork(EmitInput(graph: try LayerLatency.subgraph(lowered, layer: l.name), isa: kernels), threads: threads)
                    us = try LayerLatency.measure(net, layer: l.name, repeats: repeats)
                } catch let e as BitSwitchError { throw e.located(file: model) }
                table[l.name, default: [:]]["\(bits)"] = us
                done += 1
                if !quiet { bar.update(String(format: "profile-latency: %d/%d  %@ at %d bits: %.1f µs", done, total, l.name, bits, us), force: true) }
            }
        }
        if !quiet { bar.finish() }
        let machine: [String: Any] = ["cpu": cpuModelName(), "cores": ProcessInfo.processInfo.activeProcessorCount, "isa": kernels.rawValue, "threads": threads]
        let json: [String: Any] = ["unit": "us", "batch": 1, "repeats": repeats, "machine": machine, "layers": table]
        let data = try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
        try writeAtomically(String(decoding: data, as: UTF8.self) + "\n", to: output)
        for l in layers {
            let row = (table[l.name] ?? [:]).sorted { (Int($0.key) ?? 0) > (Int($1.key) ?? 0) }
                .map { String(format: "%@: %.1f", $0.key, $0.value) }.joined(separator: "  ")
            print("\(l.name): \(row) µs")
        }
        print("wrote \(output)")
    }
}

/// The CPU's model name from /proc/cpuinfo (Linux), or the architecture.
func cpuModelName() -> String {
    if let s = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
       let line = s.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
       let v = line.split(separator: ":", maxSplits: 1).last {
        return v.trimmingCharacters(in: .whitespaces)
    }
    #if arch(x86_64)
    return "x86_64"
    #else
    return "aarch64"
    #endif
}
