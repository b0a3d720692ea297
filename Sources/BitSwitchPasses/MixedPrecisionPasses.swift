import BitSwitchData
import BitSwitchIR
import BitSwitchQuant
import BitSwitchRuntime
import Foundation

/// The mixed-precision passes (thin drivers over BitSwitchQuant's HessianTraceEstimator, JointTrainer with a
/// HASBSampler, and the GLPK search; the method is METHOD.md §5). They hand their results on in the context:
/// `hessian` puts the traces in `userInfo["hessian-traces"]`, which `hasb-train` and `assign-bits` read when no
/// `traces` file is given; `assign-bits` puts the chosen profile in `userInfo["profile"]`, which `fold-scales` and
/// `lower-int` use when they are given neither `bits` nor `profile`.
let mixedPrecisionPasses: [Pass] = [hessianPass, hasbTrainPass, assignBitsPass]

let hessianTracesKey = "hessian-traces"
let profileKey = "profile"

func loadSplits(_ options: PassOptions, pass: String) throws -> DatasetSplits {
    let dir = try options.string("data")
    guard !dir.isEmpty else { throw BitSwitchError(.pass, "pass '\(pass)' needs the option data=DIR (a dataset directory)") }
    do { return try DatasetSplits.load(directory: dir) } catch let e as DataError {
        throw BitSwitchError(.data, e.message, file: e.file)
    }
}

func writeText(_ text: String, to path: String, pass: String) throws {
    let dir = (path as NSString).deletingLastPathComponent
    if !dir.isEmpty { try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
    do { try AtomicFile.write(Data(text.utf8), to: path) } catch let e as DataError {
        throw BitSwitchError(.io, "pass '\(pass)': cannot write: \(e.message)", file: path)
    }
}

/// The traces a pass uses: the `traces` file, else what `hessian` computed earlier in the pipeline.
func traces(_ options: PassOptions, _ context: PassContext, pass: String) throws -> (HessianTraces, file: String?) {
    let path = try options.string("traces")
    if !path.isEmpty { return (try HessianTraces.load(path: path), path) }
    return (try context.require(hessianTracesKey, as: HessianTraces.self, by: pass,
                                providedBy: "the 'hessian' pass (or the option traces=FILE)"), nil)
}

/// Per-layer Hessian traces of the FP32 model (Hutchinson, Rademacher probes, one per layer per iteration) on the
/// first `samples` training samples in evaluation mode. The graph is unchanged; the traces go to the context (and to
/// `output`, when set, as the JSON of `bitswitch hessian`).
///
///     bitswitch opt fp32.onnx -o fp32.onnx --pipeline 'hessian{data=examples/digits/data,output=traces.json}'
let hessianPass = Pass(
    name: "hessian",
    summary: "per-layer Hessian traces of the FP32 model for mixed precision (METHOD.md §5); the graph is unchanged",
    options: [
        PassOption("data", .string, default: "", "dataset directory (required)"),
        PassOption("samples", .int, default: "1024", "training samples the loss is taken on"),
        PassOption("tolerance", .float, default: "0.02", "stop when every layer's standard error is below this fraction"),
        PassOption("min-iterations", .int, default: "10", "minimum iterations"),
        PassOption("max-iterations", .int, default: "500", "iteration cap"),
        PassOption("output", .string, default: "", "also write the traces JSON here"),
        PassOption("threads", .int, default: "1", "threads for BLAS and the runtime's loops"),
    ]
) { g, options, context in
    let splits = try loadSplits(options, pass: "hessian")
    var o = HessianOptions()
    o.samples = try options.int("samples")
    o.tolerance = try options.float("tolerance")
    o.minIterations = try options.int("min-iterations")
    o.maxIterations = try options.int("max-iterations")
    o.seed = context.seed
    o.threads = try options.int("threads")
    var t = try HessianTraceEstimator.estimate(graph: g, data: splits.train, options: o) { k, cap, worst in
        context.progress(PassProgress(pass: "hessian", completed: k, total: cap,
                                      message: String(format: "worst relative std. error %.1f%%", 100 * worst)))
    }
    t.model = context.modelPath.map { ($0 as NSString).lastPathComponent }
    context.userInfo[hessianTracesKey] = t
    let out = try options.string("output")
    if !out.isEmpty { try writeText(t.json, to: out, pass: "hessian") }
    context.logger("hessian: \(t.layers.count) layers, \(t.iterations) iterations on \(t.samples) samples"
        + (t.converged ? "" : " (cap reached before the tolerance)") + (out.isEmpty ? "" : " -> \(out)"))
}

/// HASB supernet training (METHOD.md §5, Algorithm A.3) of a multi-precision model (after insert-fake-quant and
/// train; a stored INT8 model is un-stored first): per mini-batch one sub-step based at each bit-width, every
/// switchable layer leaving the base with probability σ_e and drawing from its Hessian-aware roulette. Follow with
/// store-int8 for the stored model.
///
///     bitswitch opt mp.onnx -o hasb.onnx \
///         --pipeline 'hasb-train{data=examples/digits/data,traces=traces.json,epochs=6},store-int8'
let hasbTrainPass = Pass(
    name: "hasb-train",
    summary: "HASB: per-layer Hessian-aware stochastic bit-switching training of a multi-precision model (METHOD.md §5)",
    options: [
        PassOption("data", .string, default: "", "dataset directory (required)"),
        PassOption("traces", .string, default: "", "traces JSON (default: the earlier 'hessian' pass's)"),
        PassOption("epochs", .int, default: "6", "epochs"),
        PassOption("batch", .int, default: "128", "mini-batch size"),
        PassOption("lr", .float, default: "0.0005", "Adam learning rate (cosine schedule)"),
        PassOption("weight-decay", .float, default: "0.00005", "weight decay of the weights only"),
        PassOption("sigma", .float, default: "0.5", "final probability that a layer leaves the sub-step's base"),
        PassOption("warmup-epochs", .int, default: "0", "epochs at σ_e = 0 before the layers start switching"),
        PassOption("alrs", .string, default: "fixed", "learning-rate scaling of the quantizer scales: off, fixed or weights"),
        PassOption("transitional-bn", .bool, default: "false",
                   "transitional BN: one BN row per (previous layer's bits, own bits) pair after each switchable layer"),
        PassOption("threads", .int, default: "1", "threads for BLAS and the runtime's loops"),
    ]
) { g, options, context in
    let splits = try loadSplits(options, pass: "hasb-train")
    registerKernels()
    let (t, file) = try traces(options, context, pass: "hasb-train")
    var graph = try unstoreQuantized(g)
    if try options.bool("transitional-bn") {
        let (tg, changed) = try makeTransitionalBatchNorms(graph)
        graph = tg
        context.logger("hasb-train: transitional BN on \(changed.count) BatchNorms")
    }
    var joint = try JointTrainingOptions(bits: try trainedBitWidths(graph))
    let alrs = try options.string("alrs")
    guard let a = ALRSMode(rawValue: alrs) else {
        throw BitSwitchError(.pass, "pass 'hasb-train' option 'alrs' expects off, fixed or weights, got '\(alrs)'")
    }
    joint.alrs = a
    var o = TrainingOptions.quantizationRecipe(epochs: try options.int("epochs"))
    o.batchSize = try options.int("batch")
    o.learningRate = Float(try options.float("lr"))
    o.weightDecay = Float(try options.float("weight-decay"))
    o.threads = try options.int("threads")
    o.seed = context.seed
    let sampler = try makeHASBSampler(graph: graph, traces: t, bits: joint.bits, epochs: o.epochs, seed: context.seed,
                                      sigma: try options.float("sigma"), warmupEpochs: try options.int("warmup-epochs"),
                                      tracesFile: file)
    let trainer = try JointTrainer(graph: graph, training: o, joint: joint, hasb: sampler,
                                   progress: ProgressReporter(style: .silent))
    trainer.epochObserver = { r in
        context.progress(PassProgress(pass: "hasb-train", completed: r.epoch, total: o.epochs,
                                      message: String(format: "loss %.4f, top-1 %.2f%% at %d bits", r.trainLoss,
                                                      100 * (r.testAccuracy ?? r.trainAccuracy), joint.bits[0])))
    }
    try trainer.fit(splits)
    g = trainer.trainedGraph()
    let table = try trainer.evaluateAllBits(splits.test)
    context.logger("hasb-train: \(o.epochs) epochs, σ = \(sampler.sigma); uniform top-1 "
        + table.map { String(format: "%d bits %.2f%%", $0.bits, 100 * $0.evaluation.accuracy) }.joined(separator: ", "))
}

/// The exact bit-assignment ILP (GLPK) of `bitswitch search`: one bit-width per switchable layer under the given
/// budgets (0 = unset). The graph is unchanged; the profile goes to the context (fold-scales and lower-int use it
/// when given neither bits nor profile) and to `output`, when set.
///
///     bitswitch opt mp.onnx -o mp.onnx --pipeline 'assign-bits{traces=traces.json,avg-bits=3,output=profile.json}'
let assignBitsPass = Pass(
    name: "assign-bits",
    summary: "choose per-layer bit-widths of a multi-precision model by the exact ILP under budgets (METHOD.md §5)",
    options: [
        PassOption("traces", .string, default: "", "traces JSON (default: the earlier 'hessian' pass's)"),
        PassOption("objective", .string, default: "hawq", "hawq (min Σ t·‖Q_b(W)−W‖²) or paper (max Σ t·b)"),
        PassOption("avg-bits", .float, default: "0", "parameter-weighted average weight bits budget (0: none)"),
        PassOption("bytes", .float, default: "0", "weight bytes budget (0: none)"),
        PassOption("bitops", .float, default: "0", "BitOps budget per sample (0: none)"),
        PassOption("latency-us", .float, default: "0", "latency budget in µs from the latency table (0: none)"),
        PassOption("latency", .string, default: "", "latency table JSON (layer → bits → µs) for latency-us"),
        PassOption("output", .string, default: "", "also write the profile JSON here"),
    ]
) { g, options, context in
    registerKernels()
    let objText = try options.string("objective")
    guard let obj = SearchObjective(rawValue: objText) else {
        throw BitSwitchError(.pass, "pass 'assign-bits' option 'objective' expects hawq or paper, got '\(objText)'")
    }
    var budgets: [Budget] = []
    for k in BudgetKind.allCases {
        let v = try options.float(k.rawValue)
        guard v >= 0 else { throw BitSwitchError(.pass, "pass 'assign-bits' option '\(k.rawValue)' must not be negative") }
        if v > 0 { budgets.append(Budget(k, v)) }
    }
    guard !budgets.isEmpty else {
        throw BitSwitchError(.pass, "pass 'assign-bits' needs a budget: avg-bits, bytes, bitops or latency-us (e.g. avg-bits=3)")
    }
    let latencyPath = try options.string("latency")
    let table = latencyPath.isEmpty ? nil : try LatencyTable.load(path: latencyPath)
    if budgets.contains(where: { $0.kind == .latencyUs }) && table == nil {
        throw BitSwitchError(.pass, "pass 'assign-bits': a latency-us budget needs latency=TABLE.json")
    }
    let (t, file) = try traces(options, context, pass: "assign-bits")
    let p = try MixedPrecisionSearch.problem(graph: g, traces: t, objective: obj, latency: table, tracesFile: file)
    let choice = try BitILP.solve(p, budgets: budgets)
    let profile = MixedPrecisionSearch.profile(p, choice)
    _ = try profile.resolve(in: g)
    context.userInfo[profileKey] = profile
    let out = try options.string("output")
    if !out.isEmpty { try writeText(profile.json, to: out, pass: "assign-bits") }
    context.logger("assign-bits: " + zip(p.layers, choice).map { "\($0.0.name)=\($0.0.bits[$0.1])" }.joined(separator: ", ")
        + String(format: "; avg-bits %.3f", p.usage(.avgBits, choice)) + (out.isEmpty ? "" : " -> \(out)"))
}
