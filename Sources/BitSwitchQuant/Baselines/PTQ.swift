import BitSwitchData
import BitSwitchIR
import BitSwitchRuntime

/// Post-training quantization, the no-training baseline: on a graph straight out of `insertFakeQuant` (weight
/// scales already set by the initialisation rule of METHOD.md §1), sets every activation scale of every trained
/// bit-width from one calibration batch of `samples` training samples (the 0.1/99.9 percentile rule of §2).
///
/// Each bit-width's batch runs the training-mode forward, which is what initialises a scale; the BatchNorm running
/// statistics that forward would also move are put back, so the float model's statistics stay in every BN row.
/// The samples are the first `samples` of a permutation seeded by `seed`.
public func calibrateActivationScales(_ g: inout Graph, data: Dataset, samples: Int = 512, seed: UInt64 = 0,
                                      normalization: Normalization? = nil) throws {
    registerKernels()
    guard samples > 0 else { throw BitSwitchError(.training, "calibration needs at least one sample, got \(samples)") }
    guard data.count > 0 else { throw BitSwitchError(.data, "the calibration split is empty") }
    let bits = try trainedBitWidths(g)
    let model = try TrainingGraph(graph: g, requireGradients: false)
    var rng = SplitMix64(seed: SplitMix64.derive(seed, 3))
    let chosen = Array(rng.permutation(data.count).prefix(samples)).sorted()
    let batch = data.subset(chosen)
    var x = batch.x
    normalization?.apply(to: &x, sampleShape: batch.sampleShape)
    let input = Tensor(shape: [batch.count] + batch.sampleShape, floats: x)
    let saved = model.stateNames.compactMap { n in model.values[n].map { (n, $0) } }
    for b in bits {
        _ = try model.forward(feeds: [model.inputName: input], context: TrainingContext(training: true, activeBits: b))
        for (n, t) in saved { model.values[n] = t }
    }
    g = model.exportGraph()
    for n in g.nodes {
        guard case .fakeQuantAct = n.op, n.inputs.count > 1, let s = g.initializers[n.inputs[1]] else { continue }
        if s.floats.contains(where: { !($0 > 0) }) {
            throw BitSwitchError(.training, "calibration left an activation scale of '\(n.inputs[0])' unset "
                + "(the calibration samples give it no range)", node: n.label, op: n.op.typeName, domain: n.op.domain)
        }
    }
}
