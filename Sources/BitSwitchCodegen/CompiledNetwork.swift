import BitSwitchIR
import Foundation

/// A compiled integer model seen as a graph: named inputs and outputs as tensors, any batch size (the library
/// runs one sample per call; a batch is run sample by sample), profiles switchable in place.
public final class CompiledNetwork: @unchecked Sendable {
    public let model: CompiledModel
    public let inputName: String
    /// Shape of one sample (batch 1).
    public let inputShape: [Int]
    public let outputs: [(name: String, shape: [Int])]
    public let report: EmitReport

    /// Emits `input` (into `bundleDirectory`, or a temporary directory removed afterwards), builds it through
    /// the content-hash cache and loads the library with a context of `threads` threads (`bs_init`).
    public init(_ input: EmitInput, bundleDirectory: String? = nil, options: CompileOptions = CompileOptions(), threads: Int = 1) throws {
        let plan = try Plan(input)
        inputName = plan.input.name
        inputShape = plan.shapes[plan.input.name] ?? []
        outputs = plan.graph.outputs.map { ($0.name, plan.shapes[$0.name] ?? []) }
        let fm = FileManager.default
        let dir: String
        var temporary: String?
        if let bundleDirectory { dir = bundleDirectory } else {
            let base = URL(fileURLWithPath: options.cacheDirectory ?? CompileOptions.defaultCacheDirectory).appendingPathComponent("bundles")
            do { try fm.createDirectory(at: base, withIntermediateDirectories: true) } catch {
                throw BitSwitchError(.io, "cannot create a bundle directory: \(error.localizedDescription)", file: base.path)
            }
            // Bundles of killed runs (b-<pid>-… of a process that no longer runs) are removed, not accumulated.
            for name in (try? fm.contentsOfDirectory(atPath: base.path)) ?? [] where name.hasPrefix("b-") {
                let digits = name.dropFirst(2).prefix { $0.isASCII && $0.isNumber }
                if let pid = pid_t(digits), pid != getpid(), !DurableFiles.processExists(pid) {
                    try? fm.removeItem(atPath: base.appendingPathComponent(name).path)
                }
            }
            dir = base.appendingPathComponent("b-\(getpid())-\(UInt64.random(in: 0...UInt64.max))").path
            temporary = dir
        }
        defer { if let temporary { try? fm.removeItem(atPath: temporary) } }
        report = try emitBundle(input, to: dir)
        model = try CompiledModel(library: try buildBundle(directory: dir, options: options), threads: threads)
    }

    /// Runs every sample of the input through the active profile. The input's shape is the model's with any
    /// batch size in the first dim.
    public func run(_ inputs: [String: Tensor]) throws -> [String: Tensor] {
        guard inputs.count == 1, let x = inputs[inputName] else {
            throw BitSwitchError(.data, "the compiled model takes exactly one input, '\(inputName)'; got \(inputs.keys.sorted())")
        }
        guard case .f32(let data) = x.storage else {
            throw BitSwitchError(.type, "input '\(inputName)' has type \(x.dtype) but the model expects f32")
        }
        let per = model.inputSize
        guard x.shape.count == inputShape.count, x.shape.dropFirst() == inputShape.dropFirst(), per > 0, data.count % per == 0 else {
            throw BitSwitchError(.shape, "input '\(inputName)' has shape \(x.shape) but the model expects [N, \(inputShape.dropFirst().map(String.init).joined(separator: ", "))]")
        }
        let n = data.count / per
        var outs = outputs.map { _ in [Float]() }
        for s in 0..<n {
            let y = try model.run(Array(data[(s * per)..<((s + 1) * per)]))
            var at = 0
            for (k, o) in outputs.enumerated() {
                let c = o.shape.reduce(1, *)
                outs[k] += y[at..<(at + c)]
                at += c
            }
        }
        var r: [String: Tensor] = [:]
        for (k, o) in outputs.enumerated() {
            r[o.name] = Tensor(shape: o.shape.isEmpty ? [] : [n * o.shape[0]] + o.shape.dropFirst(), floats: outs[k])
        }
        return r
    }
}

/// Compiles the variants (emit → build, cached → dlopen), selects `profile` and runs `inputs` through it:
/// the entry point of `run --backend c`. For many runs keep a `CompiledNetwork` and switch with
/// `model.setProfile`.
public func runCompiled(_ input: EmitInput, profile: Int = 0, inputs: [String: Tensor],
                        options: CompileOptions = CompileOptions()) throws -> [String: Tensor] {
    let net = try CompiledNetwork(input, options: options)
    try net.model.setProfile(profile)
    return try net.run(inputs)
}
