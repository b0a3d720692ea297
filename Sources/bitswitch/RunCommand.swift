import ArgumentParser
import BitSwitchCodegen
import BitSwitchData
import BitSwitchIR
import BitSwitchONNX
import BitSwitchQuant
import BitSwitchRuntime
import Foundation

/// Tensors from and to files: `.npy` (NumPy) or `.pb` (a bare ONNX TensorProto, as in ONNX's test data).
enum TensorFiles {
    static func load(_ path: String) throws -> Tensor {
        if path.hasSuffix(".pb") { return try TensorProtoIO.read(path: path).tensor }
        let a: NPYArray
        do { a = try NPYArray.read(path: path) } catch let e as BitSwitchError { throw e } catch {
            throw BitSwitchError(.io, "\(error)", file: path)
        }
        return tensor(from: a)
    }

    static func save(_ t: Tensor, to path: String) throws {
        do { try npy(from: t).write(to: path) } catch let e as BitSwitchError { throw e } catch {
            throw BitSwitchError(.io, "cannot write: \(error)", file: path)
        }
    }

    static func tensor(from a: NPYArray) -> Tensor {
        switch a.data {
        case .float32(let v): return Tensor(dtype: .f32, shape: a.shape, storage: .f32(v))
        case .float64(let v): return Tensor(dtype: .f32, shape: a.shape, storage: .f32(v.map { Float($0) }))
        case .int64(let v): return Tensor(dtype: .i64, shape: a.shape, storage: .i64(v))
        case .int32(let v): return Tensor(dtype: .i32, shape: a.shape, storage: .i32(v))
        case .uint8(let v): return Tensor(dtype: .u8, shape: a.shape, storage: .u8(v))
        case .int8(let v): return Tensor(dtype: .i8, shape: a.shape, storage: .i8(v))
        case .bool(let v): return Tensor(dtype: .bool, shape: a.shape, storage: .bool(v))
        }
    }

    static func npy(from t: Tensor) -> NPYArray {
        switch t.storage {
        case .f32(let v): return NPYArray(shape: t.shape, data: .float32(v))
        case .i8(let v): return NPYArray(shape: t.shape, data: .int8(v))
        case .u8(let v): return NPYArray(shape: t.shape, data: .uint8(v))
        case .i32(let v): return NPYArray(shape: t.shape, data: .int32(v))
        case .i64(let v): return NPYArray(shape: t.shape, data: .int64(v))
        case .bool(let v): return NPYArray(shape: t.shape, data: .bool(v))
        case .f64(let v): return NPYArray(shape: t.shape, data: .float64(v))
        case .i16(let v): return NPYArray(shape: t.shape, data: .int32(v.map { Int32($0) }))
        case .u16(let v): return NPYArray(shape: t.shape, data: .int32(v.map { Int32($0) }))
        case .u32(let v): return NPYArray(shape: t.shape, data: .int64(v.map { Int64($0) }))
        case .u64(let v): return NPYArray(shape: t.shape, data: .int64(v.map { Int64(truncatingIfNeeded: $0) }))
        }
    }

    /// A value name as a file name: path separators and other awkward characters become '_'.
    static func safeName(_ name: String) -> String {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")
        var s = String(name.map { allowed.contains($0) ? $0 : "_" })
        if s.isEmpty || s.allSatisfy({ $0 == "." }) { s = "_" + s }
        return s
    }
}

/// allclose in NumPy's sense plus exact equality for integer and bool tensors; NaN matches NaN.
struct Comparison {
    var ok: Bool
    var maxAbsDiff: Double
    var message: String

    static func compare(_ got: Tensor, _ want: Tensor, rtol: Double, atol: Double) -> Comparison {
        let wantDType = want.dtype == .f16 ? DType.f32 : want.dtype
        let gotDType = got.dtype == .f16 ? DType.f32 : got.dtype
        if gotDType != wantDType {
            return Comparison(ok: false, maxAbsDiff: .infinity, message: "dtype \(got.dtype) but expected \(want.dtype)")
        }
        if got.shape != want.shape {
            return Comparison(ok: false, maxAbsDiff: .infinity, message: "shape \(got.shape) but expected \(want.shape)")
        }
        if got.dtype.isFloat && want.dtype.isFloat {
            let a = got.doubles, b = want.doubles
            var worst = 0.0, bad = 0, firstBad = -1
            for i in 0..<a.count {
                let x = a[i], y = b[i]
                if x.isNaN || y.isNaN { if x.isNaN != y.isNaN { bad += 1; if firstBad < 0 { firstBad = i } }; continue }
                if x == y { continue }
                let d = abs(x - y)
                if d.isFinite { worst = max(worst, d) } else { worst = .infinity }
                if !(d <= atol + rtol * abs(y)) { bad += 1; if firstBad < 0 { firstBad = i } }
            }
            let msg = bad == 0 ? "max |diff| \(worst)"
                : "\(bad) of \(a.count) elements differ (max |diff| \(worst); first at flat index \(firstBad): got \(a[firstBad]), expected \(b[firstBad]))"
            return Comparison(ok: bad == 0, maxAbsDiff: worst, message: msg)
        }
        let equal = got.storage == want.storage
        return Comparison(ok: equal, maxAbsDiff: equal ? 0 : .infinity, message: equal ? "equal" : "values differ")
    }
}

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a model on inputs from .npy or .pb files; write every graph output as OUTPUTNAME.npy.")

    @Argument(help: "The ONNX model file (or .bsir IR text).") var model: String
    @OptionGroup var importFlags: ImportFlags
    @Option(name: .long, help: ArgumentHelp("An input as NAME=FILE (.npy or .pb); with a single input, just FILE.", valueName: "NAME=FILE"))
    var input: [String] = []
    @Option(name: .long, help: "Directory for the outputs (created if missing).") var outputDir: String?
    @Option(name: .long, help: ArgumentHelp("Compare an output with an expected file: NAME=FILE, or FILE for the single output.", valueName: "NAME=FILE"))
    var check: [String] = []
    @Option(help: "Relative tolerance for --check.") var rtol: Double = 1e-4
    @Option(help: "Absolute tolerance for --check.") var atol: Double = 1e-5
    @Option(help: "Threads for the kernels; with --backend c, the compiled model's threads (bs_init: default 1, 0 = every online CPU).") var threads: Int?
    @Option(help: "For a multi-precision model: the bit-width to run at (default: its highest trained bit-width).")
    var bits: Int?
    @Option(help: "A per-layer profile JSON file (docs/profiles.md); --bits sets its default.") var profile: String?
    @Option(help: ArgumentHelp("ref: the graph as it is (fake-quant in float); int: lowered to integer ops, run by the bit-exact interpreter; c: lowered, emitted as C, built (cached) and run in place.", valueName: "ref|int|c"))
    var backend: Backend = .ref
    @Option(help: "Run the model this many times and print the median wall time of one run (benchmarks).")
    var repeats: Int = 1

    func run() throws {
        var g = try loadModelOrIR(model, importFlags)
        let p = try selectedProfile(bits: bits, profile: profile)
        let inputs = try bind(input, to: g.inputs.map(\.name), what: "input")
        var feeds: [String: Tensor] = [:]
        for (name, file) in inputs { feeds[name] = try TensorFiles.load(file) }
        let shapes = feeds.mapValues(\.shape)
        try MemoryEstimate.inference(g, bindings: MemoryEstimate.bindings(g, inputShapes: shapes))
            .check(maxMemory: importFlags.maxMemory, what: "running the model on these inputs", file: model)
        if backend != .ref { g = try integerGraph(g, profile: p, file: model, profileFile: profile) }
        var outputs: [String: Tensor] = [:]
        var times: [Double] = []
        do {
            // One run function for every back end; a compiled model is built once and run `repeats` times.
            let runOnce: ([String: Tensor]) throws -> [String: Tensor]
            switch backend {
            case .c:
                let net = try CompiledNetwork(EmitInput(graph: g, isa: .host), threads: threads ?? 1)
                runOnce = { try net.run($0) }
            case .int:
                let ex = Executor(graph: g, threads: threads)
                runOnce = { try ex.run($0) }
            case .ref:
                let a = quantizedLayers(g).isEmpty ? BitAssignment() : try p.resolve(in: g, file: profile)
                let ex = Executor(graph: g, threads: threads, assignment: a)
                runOnce = { try ex.run($0) }
            }
            for _ in 0..<max(1, repeats) {
                let t0 = DispatchTime.now().uptimeNanoseconds
                outputs = try runOnce(feeds)
                times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
            }
        } catch let e as BitSwitchError {
            throw e.located(file: model)
        }
        if repeats > 1 { print("timing: run median \(times.sorted()[times.count / 2]) s min \(times.min() ?? 0) s over \(times.count) runs") }
        if let dir = outputDir {
            do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
                throw BitSwitchError(.io, "cannot create output directory: \(error.localizedDescription)", file: dir)
            }
            for o in g.outputs {
                guard let t = outputs[o.name] else { continue }
                let path = (dir as NSString).appendingPathComponent(TensorFiles.safeName(o.name) + ".npy")
                try TensorFiles.save(t, to: path)
                print("wrote \(path)  \(t.dtype)\(t.shape)")
            }
        } else if check.isEmpty {
            for o in g.outputs { if let t = outputs[o.name] { print("\(o.name): \(t.dtype)\(t.shape)") } }
        }
        var failed = false
        for (name, file) in try bind(check, to: g.outputs.map(\.name), what: "output") {
            guard let got = outputs[name] else { continue }
            let c = Comparison.compare(got, try TensorFiles.load(file), rtol: rtol, atol: atol)
            print("check \(name) against \(file): \(c.ok ? "OK" : "MISMATCH"), \(c.message)")
            failed = failed || !c.ok
        }
        if failed { throw BitSwitchError(.data, "outputs differ from the expected values (rtol \(rtol), atol \(atol))", file: model) }
    }

    /// NAME=FILE pairs, or a lone FILE when the model has exactly one such value.
    func bind(_ args: [String], to names: [String], what: String) throws -> [(String, String)] {
        var r: [(String, String)] = []
        for a in args {
            if let eq = a.firstIndex(of: "="), names.contains(String(a[..<eq])) {
                r.append((String(a[..<eq]), String(a[a.index(after: eq)...])))
            } else if names.count == 1 {
                r.append((names[0], a))
            } else {
                throw BitSwitchError(.data, "'\(a)' does not name a model \(what); use NAME=FILE with NAME one of \(names.joined(separator: ", "))",
                                     file: model)
            }
        }
        return r
    }
}
