import BitSwitchData
import BitSwitchIR
import BitSwitchRuntime

/// BN re-estimation for one sub-net (METHOD.md §5, an option reported apart from the no-retraining numbers).
public enum BatchNormRecalibration {
    /// What a recalibration changed.
    public struct Report: Sendable {
        /// Normalisation nodes whose running statistics were re-estimated.
        public var nodes: Int
        /// Training samples the statistics were taken on.
        public var samples: Int
    }

    /// A copy of `graph` whose BatchNorm running statistics — for a SwitchableBatchNorm, the row the assignment
    /// selects at that node (for transitional BN, the (previous, own) pair's) — are re-estimated on the first `samples` samples of `data` with the sub-net of
    /// `assignment`: forward passes only, in training mode (each BN normalises with its batch's statistics, as when
    /// training), the new running mean and variance being the sample-weighted average of the per-batch mean and
    /// unbiased variance (PyTorch's cumulative average, `momentum=None`). Rows the assignment does not use, every
    /// trained parameter and every quantizer scale are left as they are; `graph` itself is not changed.
    public static func recalibrate(graph: Graph, assignment: BitAssignment, data: Dataset, samples: Int,
                                   batchSize: Int = 128, threads: Int? = nil) throws -> (Graph, Report) {
        guard samples > 0 else { throw BitSwitchError(.data, "--recalibrate-bn needs a positive number of samples, got \(samples)") }
        guard batchSize > 1 else { throw BitSwitchError(.data, "BN recalibration needs batches of at least 2 samples, got \(batchSize)") }
        guard data.count > 0 else { throw BitSwitchError(.data, "BN recalibration: the training split is empty") }
        registerKernels()
        if let threads { setRuntimeThreads(threads) }
        // Momentum 0 (ONNX semantics: running = m·running + (1 − m)·batch) makes each forward pass write exactly its
        // batch's statistics, which are averaged here.
        // A stored model's int8 weights become q_h·s_c (same fake-quantized weights) so the training-mode pass runs.
        var g = try unstoreQuantized(graph)
        var stateNames: [String] = []
        for i in g.nodes.indices {
            switch g.nodes[i].op {
            case .batchNormalization(let eps, _, let tm):
                g.nodes[i].op = .batchNormalization(epsilon: eps, momentum: 0, trainingMode: tm)
            case .switchableBatchNorm(let bits, let eps, _, let previous):
                g.nodes[i].op = .switchableBatchNorm(bits: bits, epsilon: eps, momentum: 0, previous: previous)
            default:
                continue
            }
            for k in [3, 4] where k < g.nodes[i].inputs.count && !g.nodes[i].inputs[k].isEmpty {
                let name = g.nodes[i].inputs[k]
                guard g.initializers[name] != nil else {
                    throw BitSwitchError(.invalidModel, "BN recalibration: running statistic '\(name)' is not an initializer",
                                         node: g.nodes[i].label, op: g.nodes[i].op.typeName)
                }
                stateNames.append(name)
            }
        }
        let nodes = stateNames.count / 2
        guard !stateNames.isEmpty else { return (graph, Report(nodes: 0, samples: 0)) }
        let tg = try TrainingGraph(graph: g, requireGradients: false)
        let original = stateNames.reduce(into: [String: Tensor]()) { $0[$1] = tg.values[$1] }
        let n = min(samples, data.count)
        let per = data.sampleSize
        var sums = [String: [Double]]()
        var used = 0
        var start = 0
        while start < n {
            var m = min(batchSize, n - start)
            if n - start - m == 1 { m += 1 }  // never leave a batch of one (its variance is undefined)
            let x = tg.inputTensor([m] + data.sampleShape, Array(data.x[(start * per)..<((start + m) * per)]))
            // Each batch starts from the original statistics, so a row the pass does not touch stays as it was.
            for (k, v) in original { tg.values[k] = v }
            let ctx = TrainingContext(training: true, assignment: assignment)
            _ = try tg.forward(feeds: [tg.inputName: x], context: ctx)
            for name in stateNames {
                guard let t = tg.values[name] else { continue }
                let a = try t.quantFloats("running statistic '\(name)'")
                var acc = sums[name] ?? [Double](repeating: 0, count: a.count)
                for j in a.indices { acc[j] += Double(m) * Double(a[j]) }
                sums[name] = acc
            }
            used += m
            start += m
        }
        var out = graph
        for name in stateNames {
            guard let s = sums[name], let old = original[name] else { continue }
            out.setInitializer(name, Tensor(shape: old.shape, floats: s.map { Float($0 / Double(used)) }))
        }
        return (out, Report(nodes: nodes, samples: used))
    }
}
