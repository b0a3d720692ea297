import BitSwitchData
import BitSwitchIR
import BitSwitchRuntime

/// Post-training quantization, the no-training baseline: on a graph straight out of `insertFakeQuant` (weight
/// scales already set by the initialisation rule of METHOD.md §1), sets every activation scale of every trained
/// bit-width from `samples` training samples (the first of a permutation seeded by `seed`).
///
/// Calibration rule: a = max(p99.9 / hi, p0.1 / lo) of the quantizer's input, so that the 0.1–99.9 percentile range
/// fits the quantizer's own integer range. It equals the LSQ initialisation (p99.9 − p0.1)/(hi − lo) of METHOD.md §2
/// for ReLU outputs and centred inputs, but not for a signed quantizer fed non-negative data (a [0, 1] image
/// input): there the initialisation covers only [0, 0.5] — harmless once LSQ trains the scale, fatal without
/// training. Layers are calibrated in order, each on the outputs of the already calibrated layers before it, in
/// evaluation mode (running BN statistics, as at inference).
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
    let feeds = [model.inputName: Tensor(shape: [batch.count] + batch.sampleShape, floats: x)]

    // Every scale first gets the LSQ initialisation (a training-mode forward sets unset scales); the BN running
    // statistics that forward also moves are put back.
    let saved = model.stateNames.compactMap { n in model.values[n].map { (n, $0) } }
    for b in bits {
        _ = try model.forward(feeds: feeds, context: TrainingContext(training: true, activeBits: b))
        for (n, t) in saved { model.values[n] = t }
    }
    let quantizers = model.graph.nodes.compactMap { n -> (Node, FakeQuantActAttrs)? in
        guard case .fakeQuantAct(let a) = n.op, n.inputs.count > 1, model.values[n.inputs[1]] != nil else { return nil }
        return (n, a)
    }
    for b in bits {
        for (node, attrs) in quantizers {
            let pass = try model.forward(feeds: feeds, context: TrainingContext(training: false, activeBits: b))
            guard let input = pass.value(node.inputs[0]), case .f32(let values) = input.storage,
                  let row = attrs.bits.firstIndex(of: b), var scales = model.values[node.inputs[1]],
                  case .f32(var s) = scales.storage, row < s.count else {
                throw BitSwitchError(.internalError, "calibration could not read the input of this quantizer",
                                     node: node.label, op: node.op.typeName, domain: node.op.domain)
            }
            let q = try ActivationQuantizer(bits: attrs.pinnedBits ?? b, signed: attrs.signed)
            if let a = calibratedScale(values, q), a > 0 { s[row] = a }
            scales.storage = .f32(s)
            model.values[node.inputs[1]] = scales
        }
    }
    g = model.exportGraph()
    for (n, _) in quantizers {
        if let s = g.initializers[n.inputs[1]], s.floats.contains(where: { !($0 > 0) }) {
            throw BitSwitchError(.training, "calibration left an activation scale of '\(n.inputs[0])' unset "
                + "(the calibration samples give it no range)", node: n.label, op: n.op.typeName, domain: n.op.domain)
        }
    }
}

/// max(p99.9 / hi, p0.1 / lo) (only the first term when lo = 0); nil without finite values or range.
func calibratedScale(_ values: [Float], _ q: ActivationQuantizer) -> Float? {
    let v = values.filter(\.isFinite).sorted()
    guard !v.isEmpty else { return nil }
    let top = quantile(sortedValues: v, 0.999), bottom = quantile(sortedValues: v, 0.001)
    var a = max(top, 0) / q.hi
    if q.lo < 0 { a = max(a, min(bottom, 0) / q.lo) }
    return a > 0 && a.isFinite ? a : nil
}
