import BitSwitchIR
import BitSwitchPasses
import BitSwitchQuant
import Foundation

/// Models as they come from exporters and model zoos, before `eval` and `train`: constant subgraphs are folded
/// (`fold-constants`: `Identity` of a BN statistic, `Transpose`/`Reshape` of a weight, `Shape` chains of a static
/// input), then a model exported with a fixed batch of 1 is made batchable (see `makeBatchable`). When that is
/// impossible, `eval` and `--ptq` run one sample at a time and training stops with the reason.
func prepareModel(_ graph: inout Graph, file: String, sampleShape: [Int], quiet: Bool) throws -> BatchMode {
    let say: (String) -> Void = { line in if !quiet { FileHandle.standardError.write(Data((line + "\n").utf8)) } }
    var folded = graph
    let context = PassContext()
    context.modelPath = file
    var foldLog: [String] = []
    context.logger = { foldLog.append($0) }
    do {
        try Pipeline.parse("fold-constants").run(&folded, context: context)
        if folded.nodes.count != graph.nodes.count {
            foldLog.forEach(say)
            graph = folded
        }
    } catch {
        say("note: fold-constants failed on this model, which is used as it is: \(error)")
    }
    let mode: BatchMode
    do { mode = try makeBatchable(&graph, sampleShape: sampleShape, log: say) } catch {
        throw error.bitswitchLocated(file: file)
    }
    if case .perSample(let reason) = mode {
        say("note: the model's batch is fixed to 1 and could not be made batchable (\(reason)); running one sample "
            + "at a time")
    }
    return mode
}

/// Training needs batches: the reason a fixed-batch model cannot be trained, as an error.
func requireBatches(_ mode: BatchMode, file: String) throws {
    if case .perSample(let reason) = mode {
        throw BitSwitchError(.training, "the model's batch is fixed to 1 and could not be made batchable (\(reason)); "
            + "training needs batches: re-export it with a dynamic batch dimension", file: file)
    }
}
