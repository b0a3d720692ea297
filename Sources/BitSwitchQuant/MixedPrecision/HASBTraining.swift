import BitSwitchIR
import BitSwitchRuntime

// HASB training (METHOD.md §5) is `JointTrainer` with a `HASBSampler`; this file holds what sets such a run up
// from files: the sampler over a model's switchable layers and their traces, and the float master weights of a
// stored multi-precision model (HASB starts from the multi-precision model that `train --bits` wrote).

/// The HASB sampler of a multi-precision graph: its switchable layers in graph order with their per-parameter
/// Hessian traces. Traces for a different model are an error naming the layer they lack.
public func makeHASBSampler(graph: Graph, traces: HessianTraces, bits: [Int], epochs: Int, seed: UInt64,
                            sigma: Double = 0.5, warmupEpochs: Int = 0, tracesFile: String? = nil) throws -> HASBSampler {
    let switchable = quantizedLayers(graph).filter(\.isSwitchable)
    guard !switchable.isEmpty else {
        throw BitSwitchError(.invalidModel, "HASB needs a multi-precision model with switchable layers (train --bits 8,6,4,2 first)")
    }
    guard sigma.isFinite, sigma >= 0, sigma <= 1 else {
        throw BitSwitchError(.training, "HASB σ must be in [0, 1], got \(sigma)")
    }
    guard warmupEpochs >= 0 else { throw BitSwitchError(.training, "HASB warm-up epochs must not be negative") }
    let names = switchable.map(\.name)
    var s = try HASBSampler(bits: bits, layers: names, traces: try traces.perParameter(for: names, file: tracesFile),
                            epochs: epochs, seed: seed)
    s.sigma = sigma
    s.warmupEpochs = warmupEpochs
    return s
}

/// The inverse of `storeQuantized` for training: every int8 weight of a `FakeQuantWeight` becomes the float
/// `q_h · s_c`, whose first rounding gives back `q_h` exactly, so every bit-width's fake-quantized weight (and the
/// network's output) is unchanged and the weights can be trained again. Float models are returned as they are.
public func unstoreQuantized(_ g: Graph) throws -> Graph {
    var out = g
    var done = Set<String>()
    for n in g.nodes {
        guard case .fakeQuantWeight(let a) = n.op, n.inputs.count >= 2 else { continue }
        let wName = n.inputs[0], sName = n.inputs[1]
        guard !done.contains(wName), let w = g.initializers[wName], w.dtype == .i8, case .i8(let q) = w.storage else { continue }
        guard let st = g.initializers[sName], st.dtype == .f32 else {
            throw BitSwitchError(.invalidModel, "scale '\(sName)' must be a float32 constant",
                                 node: n.label, op: n.op.typeName, domain: n.op.domain)
        }
        let scales = st.floats
        let r = w.shape.count
        let axis = a.axis < 0 ? a.axis + r : a.axis
        guard axis >= 0, axis < r, w.shape[axis] == scales.count else {
            throw BitSwitchError(.shape, "weight '\(wName)' of shape \(w.shape) does not have \(scales.count) channels on axis \(a.axis)",
                                 node: n.label, op: n.op.typeName, domain: n.op.domain)
        }
        let inner = w.shape[(axis + 1)...].reduce(1, *), channels = scales.count
        var f = [Float](repeating: 0, count: q.count)
        for i in q.indices { f[i] = Float(q[i]) * scales[(i / inner) % channels] }
        out.setInitializer(wName, Tensor(shape: w.shape, floats: f))
        for k in out.inputs.indices where out.inputs[k].name == wName {
            out.inputs[k].type = TensorType(.f32, w.shape.map { .known($0) })
        }
        done.insert(wName)
    }
    return out
}
