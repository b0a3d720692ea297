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
            The quadratic forms are exact (R-operator, ReLU patterns frozen) where the logits are affine in a layer's \
            weight, central differences of exact gradients elsewhere (see docs/mixed-precision.md). \
            The JSON written to -o lists every Conv/Gemm/MatMul with its raw trace and its trace per parameter.
            """)

    @Argument(help: "The FP32 model (.onnx), e.g. the float model the multi-precision one was made from.") var model: String
    @OptionGroup var importFlags: ImportFlags
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
        let graph = try loadModel(model, importFlags)
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

struct SearchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search",
        abstract: "Choose per-layer bit-widths of a multi-precision model by an exact ILP (GLPK) under budgets; write the profile.",
        discussion: """
            Objectives: hawq (default) minimises Σ t_l·‖Q_b(W_l) − W_l‖² with the trained scales; paper maximises \
            Σ t_l·b_l; t_l is the layer's Hessian trace per parameter (bitswitch hessian). Budgets, any combination: \
            avg-bits (weight bits averaged over all quantized layers' parameters, pinned layers included at their \
            width), bytes (weight bytes of the quantized layers), bitops (Σ MACs·w bits·a bits per sample), latency-us \
            (Σ per-layer latency from --latency). A layer's weights and input activation share its bit-width; layers \
            reading the same quantized activation share it too. With --pareto and --data, every avg-bits budget of \
            the list is solved and its sub-net evaluated on the test split.
            """)

    @Argument(help: "The multi-precision model (.onnx).") var model: String
    @OptionGroup var importFlags: ImportFlags
    @Option(help: "Per-layer Hessian traces (.json from bitswitch hessian).") var traces: String
    @Option(help: ArgumentHelp("A budget KIND=VALUE: avg-bits, bytes, bitops or latency-us (repeatable).", valueName: "KIND=VALUE"))
    var budget: [String] = []
    @Option(help: "Latency table (JSON: layer → bits → µs) for latency-us budgets.") var latency: String?
    @Option(help: "hawq or paper.") var objective = "hawq"
    @Option(name: .shortAndLong, help: "Where to write the profile (.json).") var output: String?
    @Option(help: "Comma-separated avg-bits budgets to sweep, e.g. 2.5,3,3.5,4,5 (with --data: evaluate each).") var pareto: String?
    @Option(help: "Dataset directory, to evaluate the --pareto sub-nets on the test split.") var data: String?
    @Option(help: "Write the --pareto front here (.json).") var paretoOutput: String?
    @Option(help: "Threads for evaluation.") var threads: Int?
    @Option(help: ArgumentHelp("With --pareto and --data: also evaluate each sub-net after re-estimating its BatchNorm statistics on the first N training samples (reported apart; the model file is unchanged).", valueName: "N"))
    var recalibrateBn: Int?
    @Option(help: ArgumentHelp("Instead of the ILP, draw N random assignments meeting the budgets (a baseline: random maximal assignments, the objective ignored) and write them to OUTPUT's stem + -1.json ... -N.json.", valueName: "N"))
    var random: Int?
    @Option(help: "Seed of --random.") var seed: UInt64 = 0

    func run() throws {
        if let n = recalibrateBn, n <= 0 { throw BitSwitchError(.data, "--recalibrate-bn needs a positive number of samples, got \(n)") }
        guard let obj = SearchObjective(rawValue: objective) else {
            throw BitSwitchError(.data, "--objective must be hawq or paper, got '\(objective)'")
        }
        let g = try loadModel(model, importFlags)
        let t = try HessianTraces.load(path: traces)
        let table = try latency.map { try LatencyTable.load(path: $0) }
        let budgets = try budget.map { try Budget(parsing: $0) }
        if budgets.contains(where: { $0.kind == .latencyUs }) && table == nil {
            throw BitSwitchError(.data, "a latency-us budget needs --latency TABLE.json")
        }
        let p: BitProblem
        do { p = try MixedPrecisionSearch.problem(graph: g, traces: t, objective: obj, latency: table, tracesFile: traces) }
        catch let e as BitSwitchError { throw e.located(file: model) }
        if let pareto {
            try runPareto(p, graph: g, pareto, extra: budgets)
            return
        }
        guard !budgets.isEmpty else { throw BitSwitchError(.data, "give at least one --budget (e.g. --budget avg-bits=3) or --pareto") }
        if let random {
            guard random > 0 else { throw BitSwitchError(.data, "--random needs a positive count, got \(random)") }
            guard let output else { throw BitSwitchError(.data, "--random needs -o OUTPUT.json (the profiles go to OUTPUT-1.json ...)") }
            for b in budgets { _ = try BitILP.solve(p, budgets: [b]) }  // the same infeasibility errors as the ILP
            let stem = output.hasSuffix(".json") ? String(output.dropLast(5)) : output
            var rng = SplitMix64(seed: SplitMix64.derive(seed, 0x52414E44))
            for k in 1...random {
                let choice = try p.randomChoice(budgets: budgets, rng: &rng)
                print("random assignment \(k):")
                printChoice(p, choice)
                try writeAtomically(MixedPrecisionSearch.profile(p, choice).json, to: "\(stem)-\(k).json")
            }
            print("wrote \(stem)-1.json ... \(stem)-\(random).json")
            return
        }
        let choice = try BitILP.solve(p, budgets: budgets)
        printChoice(p, choice)
        let prof = MixedPrecisionSearch.profile(p, choice)
        if let output { try writeAtomically(prof.json, to: output); print("wrote \(output)") }
    }

    func printChoice(_ p: BitProblem, _ choice: [Int]) {
        for (l, c) in zip(p.layers, choice) {
            print(l.name.padding(toLength: max(44, l.name.count + 1), withPad: " ", startingAt: 0) + "w\(l.bits[c])a\(l.bits[c])")
        }
        var line = String(format: "avg-bits %.3f, bytes %.0f, bitops %.4g", p.usage(.avgBits, choice),
                          p.usage(.bytes, choice), p.usage(.bitOps, choice))
        if p.layers.first?.resources[.latencyUs] != nil { line += String(format: ", latency %.1f µs", p.usage(.latencyUs, choice)) }
        print(line + String(format: ", objective %.6g", p.objective(choice)))
    }

    func runPareto(_ p: BitProblem, graph: Graph, _ list: String, extra: [Budget]) throws {
        let values = list.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.count == list.split(separator: ",").count else {
            throw BitSwitchError(.data, "--pareto takes comma-separated avg-bits values like 2.5,3,4; got '\(list)'")
        }
        var tg: TrainingGraph? = nil
        var test: Dataset? = nil, train: Dataset? = nil
        if let data {
            let splits = try loadDataset(data)
            test = splits.test; train = splits.train
            tg = try TrainingGraph(graph: graph, requireGradients: false)
        }
        var rows: [String] = []
        let recal = tg == nil ? nil : recalibrateBn
        print("avg-bits budget  avg-bits  top-1     loss" + (recal == nil ? "" : "   top-1+bn  loss+bn"))
        for v in values {
            let budgets = extra.filter { $0.kind != .avgBits } + [Budget(.avgBits, v)]
            let choice = try BitILP.solve(p, budgets: budgets)
            let prof = MixedPrecisionSearch.profile(p, choice)
            var acc = Double.nan, loss = Double.nan
            if let tg, let test {
                let e = try evaluateModel(tg, on: test, assignment: try prof.resolve(in: graph), threads: threads)
                acc = e.accuracy; loss = e.loss
            }
            var accBN = Double.nan, lossBN = Double.nan
            if let n = recal, let test, let train {
                let a = try prof.resolve(in: graph)
                let (g2, _) = try BatchNormRecalibration.recalibrate(graph: graph, assignment: a, data: train, samples: n,
                                                                     threads: threads)
                let e = try evaluateModel(try TrainingGraph(graph: g2, requireGradients: false), on: test, assignment: a,
                                          threads: threads)
                accBN = e.accuracy; lossBN = e.loss
            }
            print(String(format: "%15.3f  %8.3f  %6.2f%%  %.4f", v, p.usage(.avgBits, choice), 100 * acc, loss)
                  + (recal == nil ? "" : String(format: "   %7.2f%%  %.4f", 100 * accBN, lossBN)))
            let bitsJSON = zip(p.layers, choice).map { "\(jsonString($0.0.name)): \($0.0.bits[$0.1])" }.joined(separator: ", ")
            func num(_ x: Double) -> String { x.isFinite ? String(x) : "null" }
            rows.append("    {\"budget\": \(v), \"avg_bits\": \(p.usage(.avgBits, choice)), \"top1\": \(num(acc)), "
                        + "\"loss\": \(num(loss)), "
                        + (recal == nil ? "" : "\"top1_recalibrated_bn\": \(num(accBN)), \"loss_recalibrated_bn\": \(num(lossBN)), \"recalibrate_bn_samples\": \(recal ?? 0), ")
                        + "\"bits\": {\(bitsJSON)}}")
        }
        if let paretoOutput {
            try writeAtomically("{\n  \"model\": \(jsonString((model as NSString).lastPathComponent)),\n  \"objective\": \"\(objective)\",\n  \"front\": [\n"
                                + rows.joined(separator: ",\n") + "\n  ]\n}\n", to: paretoOutput)
            print("wrote \(paretoOutput)")
        }
    }
}

