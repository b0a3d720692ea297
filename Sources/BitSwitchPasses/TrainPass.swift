import BitSwitchData
import BitSwitchIR
import BitSwitchQuant
import BitSwitchRuntime
import Foundation

/// The training passes (thin drivers over BitSwitchQuant's JointTrainer; the method is METHOD.md §4).
let trainPasses: [Pass] = [trainPass]

/// Multi-precision joint training of a graph that carries quantizers (run insert-fake-quant first): every mini-batch
/// trains each bit-width of the model's bit set from highest to lowest with its own optimizer step. The graph's
/// float weights, scales and BN rows are replaced by the trained ones; the structure does not change.
/// Follow with store-int8 for the stored model.
///
///     bitswitch opt fp32.onnx -o int8.onnx \
///         --pipeline 'insert-fake-quant{bits=8,6,4,2},train{data=examples/digits/data,epochs=80},store-int8'
let trainPass = Pass(
    name: "train",
    summary: "joint multi-precision training at every bit-width of the model's quantizers (METHOD.md §4)",
    options: [
        PassOption("data", .string, default: "", "dataset directory (required)"),
        PassOption("epochs", .int, default: "80", "epochs (|bit set| x the epochs of one single-precision model)"),
        PassOption("batch", .int, default: "128", "mini-batch size"),
        PassOption("lr", .float, default: "0.0005", "Adam learning rate (cosine schedule)"),
        PassOption("weight-decay", .float, default: "0.00005", "weight decay of the weights only"),
        PassOption("alrs", .string, default: "fixed", "learning-rate scaling of the quantizer scales: off, fixed or weights"),
        PassOption("kd", .string, default: "off", "distillation between bit-widths: off, progressive or pskd"),
        PassOption("accumulate", .bool, default: "false", "one optimizer step for all bit-widths instead of one each"),
        PassOption("threads", .int, default: "1", "threads for BLAS and the runtime's loops"),
    ]
) { g, options, context in
    let splits = try loadSplits(options, pass: "train")
    registerKernels()
    var joint = try JointTrainingOptions(bits: try trainedBitWidths(g))
    let alrs = try options.string("alrs"), kd = try options.string("kd")
    guard let a = ALRSMode(rawValue: alrs) else {
        throw BitSwitchError(.pass, "pass 'train' option 'alrs' expects off, fixed or weights, got '\(alrs)'")
    }
    guard let k = DistillationMode(rawValue: kd) else {
        throw BitSwitchError(.pass, "pass 'train' option 'kd' expects off, progressive or pskd, got '\(kd)'")
    }
    joint.alrs = a
    joint.distillation = k
    joint.accumulate = try options.bool("accumulate")
    var o = TrainingOptions.quantizationRecipe(epochs: try options.int("epochs"))
    o.batchSize = try options.int("batch")
    o.learningRate = Float(try options.float("lr"))
    o.weightDecay = Float(try options.float("weight-decay"))
    o.threads = try options.int("threads")
    o.seed = context.seed
    let trainer = try JointTrainer(graph: g, training: o, joint: joint, progress: ProgressReporter(style: .silent))
    trainer.epochObserver = { r in
        context.progress(PassProgress(pass: "train", completed: r.epoch, total: o.epochs,
                                      message: String(format: "loss %.4f, top-1 %.2f%% at %d bits", r.trainLoss,
                                                      100 * (r.testAccuracy ?? r.trainAccuracy), joint.bits[0])))
    }
    try trainer.fit(splits)
    g = trainer.trainedGraph()
    let table = try trainer.evaluateAllBits(splits.test)
    context.logger("train: \(o.epochs) epochs at bit-widths \(joint.bits.map(String.init).joined(separator: ",")); top-1 "
        + table.map { String(format: "%d bits %.2f%%", $0.bits, 100 * $0.evaluation.accuracy) }.joined(separator: ", "))
}
