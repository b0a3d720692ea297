import BitSwitchData
import BitSwitchIR
import BitSwitchRuntime

/// How a model takes batches after `makeBatchable`.
public enum BatchMode: Sendable, Equatable {
    /// The data input's batch dimension was not a fixed 1: nothing to do.
    case unchanged
    /// The batch was a fixed 1 and is now a symbolic `N`; `constants` Reshape shape constants were rewritten.
    case rewritten(constants: Int)
    /// The batch is a fixed 1 and could not be made symbolic (the reason says why): run one sample at a time.
    case perSample(reason: String)

    /// The batch size callers must use (nil: any).
    public var requiredBatch: Int? {
        if case .perSample = self { return 1 }
        return nil
    }
}

/// Makes a model exported with a fixed batch of 1 (input `[1, C, H, W]`, Reshape constants such as `[1, K]` or
/// `[1, -1]` that bake the batch in) take any batch size: the data input's and the outputs' first dimension becomes
/// the symbol `N`, and the first element of every constant Reshape target that carries the batch — a `1` where the
/// Reshape's data input has the batch in its first dimension — becomes `0` ("copy the input's first dimension",
/// with `allowzero` = 0). Which Reshapes carry the batch is found by running the graph node by node on a probe batch
/// of `probeBatch` samples (a number no model dimension is likely to equal); the result is accepted only if the
/// rewritten graph, run on that batch, gives each sample the same outputs (rtol 1e-4, atol 1e-5) as the original
/// graph run on that sample alone. Otherwise `g` is left as it was and the answer is `.perSample`, with the node that
/// failed: callers then feed one sample at a time (`eval`, `--ptq`) or refuse (training, which needs batches).
///
/// Limits: only Reshape targets are rewritten. A batch of 1 baked into other constants (Expand or Tile targets,
/// ConstantOfShape, Slice ends, a Concat with a constant `[1, ...]` tensor) fails the check and falls back.
public func makeBatchable(_ g: inout Graph, sampleShape: [Int]? = nil, probeBatch: Int = 7,
                          log: (String) -> Void = { _ in }) throws -> BatchMode {
    guard let inputIndex = g.inputs.firstIndex(where: { g.initializers[$0.name] == nil }),
          let dims = g.inputs[inputIndex].type.shape, let first = dims.first, first == .known(1) else {
        return .unchanged
    }
    let input = g.inputs[inputIndex]
    let sample: [Int]
    if let sampleShape {
        sample = sampleShape
    } else {
        let rest = dims.dropFirst().map(\.value)
        guard rest.allSatisfy({ ($0 ?? 0) > 0 }) else {
            return .perSample(reason: "the input '\(input.name)' has no static sample shape to probe with")
        }
        sample = rest.map { $0! }
    }
    registerKernels()
    var candidate = g
    let symbol = "N"
    candidate.inputs[inputIndex].type.shape = [.symbol(symbol)] + dims.dropFirst()
    for (k, o) in candidate.outputs.enumerated() {
        if var s = o.type.shape, s.first == .known(1) { s[0] = .symbol(symbol); candidate.outputs[k].type.shape = s }
    }
    // Types recorded for a batch of 1 are stale; shape inference recomputes them at the end.
    let keep = Set(candidate.inputs.map(\.name)).union(candidate.outputs.map(\.name))
    candidate.valueTypes = candidate.valueTypes.filter { keep.contains($0.key) }

    var rng = SplitMix64(seed: 0x5eed)
    let per = sample.reduce(1, *)
    let probe = (0..<(probeBatch * per)).map { _ in Float(rng.nextGaussian()) }
    let batched = Tensor(shape: [probeBatch] + sample, floats: probe)

    // Run the candidate on the probe batch, rewriting batch-carrying Reshape targets as they are reached.
    var rewritten = 0
    var notes: [String] = []
    var env: [String: Tensor] = [input.name: batched]
    var usedConstants = candidate.consumers
    for i in candidate.nodes.indices {
        let n = candidate.nodes[i]
        if case .reshape(let allowZero) = n.op, !allowZero, n.inputs.count > 1,
           let target = candidate.initializers[n.inputs[1]], target.dtype == .i64, target.count >= 1,
           target.ints[0] == 1, let data = env[n.inputs[0]], data.rank >= 1, data.shape[0] == probeBatch {
            var t = target.ints.map(Int64.init)
            t[0] = 0
            let fresh = (usedConstants[n.inputs[1]]?.count ?? 1) > 1 ? candidate.freshName("\(n.inputs[1]).batched")
                                                                       : n.inputs[1]
            candidate.setInitializer(fresh, Tensor(shape: target.shape, int64s: t))
            if fresh != n.inputs[1] {
                usedConstants[n.inputs[1]] = usedConstants[n.inputs[1]]?.filter { $0 != i }
                candidate.nodes[i].inputs[1] = fresh
            }
            rewritten += 1
            notes.append("batch: Reshape '\(n.label)' target \(target.ints) -> \(t) (the batch was fixed to 1)")
        }
        let node = candidate.nodes[i]
        do {
            let outs = try evaluateNode(node, inputs: node.inputs.map { $0.isEmpty ? nil : env[$0] ?? candidate.initializers[$0] },
                                        opsets: candidate.opsets)
            for (name, t) in zip(node.outputs, outs) where !name.isEmpty { env[name] = t }
        } catch let e as BitSwitchError {
            return .perSample(reason: "a batch of \(probeBatch) fails at \(node.op.typeName) '\(node.label)': \(e.message)")
        }
    }
    // Each sample alone through the original graph must give the same outputs.
    for s in 0..<probeBatch {
        let one = Tensor(shape: [1] + sample, floats: Array(probe[(s * per)..<((s + 1) * per)]))
        let reference: [String: Tensor]
        do { reference = try runAll(g, feeds: [input.name: one]) } catch let e as BitSwitchError {
            return .perSample(reason: "the model does not run on one probe sample: \(e.message)")
        }
        for o in g.outputs {
            guard let r = reference[o.name], let b = env[o.name], b.rank >= 1, b.shape[0] == probeBatch,
                  r.count * probeBatch == b.count else {
                return .perSample(reason: "output '\(o.name)' does not get the batch as its first dimension")
            }
            let rv = r.floats, row = b.floats[(s * r.count)..<((s + 1) * r.count)]
            for (x, y) in zip(rv, row) where !(abs(x - y) <= 1e-5 + 1e-4 * abs(x)) {
                return .perSample(reason: "output '\(o.name)' of a batched sample differs from the sample run alone "
                    + "(\(y) vs \(x)): a constant other than a Reshape target carries the batch")
            }
        }
    }
    try? inferShapes(&candidate)
    g = candidate
    notes.forEach(log)
    log("batch: the input '\(input.name)' was fixed to a batch of 1; it is now [\(symbol), ...] (\(rewritten) Reshape "
        + "target(s) rewritten)")
    return .rewritten(constants: rewritten)
}

/// Every value of one inference run of `g`.
private func runAll(_ g: Graph, feeds: [String: Tensor]) throws -> [String: Tensor] {
    var env = feeds
    for n in g.nodes {
        let outs = try evaluateNode(n, inputs: n.inputs.map { $0.isEmpty ? nil : env[$0] ?? g.initializers[$0] },
                                    opsets: g.opsets)
        for (name, t) in zip(n.outputs, outs) where !name.isEmpty { env[name] = t }
    }
    return env
}
