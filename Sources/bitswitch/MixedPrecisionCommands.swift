import ArgumentParser
import BitSwitchData
import BitSwitchIR
import BitSwitchONNX
import BitSwitchQuant
import BitSwitchRuntime
import Foundation

/// A one-line progress display on stderr: redrawn in place on a terminal, every tenth update otherwise.
final class LineProgress {
    private let live = Terminal.stderrIsTerminal
    private var last = 0.0
    func update(_ text: String, force: Bool = false) {
        let now = ProcessInfo.processInfo.systemUptime
        guard force || now - last > (live ? 0.1 : 10) else { return }
        last = now
        FileHandle.standardError.write(Data(((live ? "\r\u{1B}[2K" : "") + text + (live ? "" : "\n")).utf8))
    }
    func finish() { if live { FileHandle.standardError.write(Data("\n".utf8)) } }
}

struct HessianCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hessian",
        abstract: "Per-layer Hessian traces of the loss (Hutchinson, Rademacher probes) of an FP32 model, for mixed precision.",
        discussion: """
            The traces are taken on the first --samples training samples with the model in evaluation mode, and \
            iterated until every layer's standard error is below --tolerance of its mean (METHOD.md §5). \
            Hessian-vector products are central differences of exact gradients (see docs/mixed-precision.md). \
            The JSON written to -o lists every Conv/Gemm/MatMul with its raw trace and its trace per parameter.
            """)

    @Argument(help: "The FP32 model (.onnx), e.g. the float model the multi-precision one was made from.") var model: String
    @Option(help: "Dataset directory (as for train).") var data: String
    @Option(name: .shortAndLong, help: "Where to write the traces (.json).") var output: String
    @Option(help: "Training samples the loss is taken on.") var samples = 1024
    @Option(help: "Stop when every layer's standard error is below this fraction of its trace.") var tolerance = 0.02
    @Option(help: "Iteration cap.") var maxIterations = 500
    @Option(help: "Minimum iterations.") var minIterations = 10
    @Option(help: "Random seed of the probes.") var seed: UInt64 = 0
    @Option(help: "Threads for BLAS and the runtime's loops.") var threads: Int?
    @Flag(help: "No progress output.") var quiet = false

    func run() throws {
        let graph = try loadModel(model)
        let splits = try loadDataset(data)
        var o = HessianOptions()
        o.samples = samples; o.tolerance = tolerance; o.maxIterations = maxIterations; o.minIterations = minIterations
        o.seed = seed; o.threads = threads
        let bar = LineProgress()
        let start = ProcessInfo.processInfo.systemUptime
        var t: HessianTraces
        do {
            t = try HessianTraceEstimator.estimate(graph: graph, data: splits.train, options: o) { k, cap, worst in
                guard !quiet else { return }
                let el = ProcessInfo.processInfo.systemUptime - start
                bar.update(String(format: "hessian: iteration %d/%d, worst relative std. error %.1f%% (target %.1f%%), %.0f s",
                                  k, cap, 100 * (worst.isFinite ? worst : 999), 100 * tolerance, el))
            }
        } catch let e as BitSwitchError { throw e.located(file: model) }
        if !quiet { bar.finish() }
        t.model = (model as NSString).lastPathComponent
        try writeAtomically(t.json, to: output)
        print("layer                                     params       trace   trace/param  std.err")
        for l in t.layers {
            let name = l.name.count > 40 ? "…" + l.name.suffix(39) : l.name
            print(name.padding(toLength: 40, withPad: " ", startingAt: 0)
                  + String(format: " %8d %11.4g %13.4g %7.1f%%", l.parameterCount, l.trace, l.perParameter,
                           100 * l.standardError / max(abs(l.trace), 1e-300)))
        }
        print("\(t.iterations) iterations on \(t.samples) samples\(t.converged ? "" : " (cap reached before the tolerance)") → \(output)")
    }
}
