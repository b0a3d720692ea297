import Foundation
import BitSwitchData
import BitSwitchIR
import BitSwitchRuntime

// Per-layer Hessian traces for mixed precision (METHOD.md §5): Hutchinson's estimator T_l ≈ mean vᵀ H_ll v with
// Rademacher v, on a fixed set of training samples, the model in evaluation mode (BN on running statistics).
//
// Each probe needs v_lᵀ H_ll v_l. Where the logits are an affine function of W_l once every ReLU / LeakyReLU's
// activation pattern is frozen at the unperturbed weights (every op from layer l to the logits is linear in the
// value coming from l: conv/gemm/matmul against a constant, BN in evaluation mode, adds, frozen ReLUs, average pools,
// reshapes — the CNNs and MLPs here), the quadratic form is computed exactly with Pearlmutter's R-operator:
//   R{z} = J_l v = (z(W_l + t v) − z(W_l)) / t          (exact for any t: z is affine in W_l along v)
//   vᵀ H_ll v = mean over samples of R{z}ᵀ (diag(p) − ppᵀ) R{z},   p = softmax(z)
// (the second term, (∂L/∂z)ᵀ R²{z}, vanishes because R²{z} = vᵀ ∂²z/∂W_l² v = 0). One forward pass per probe, no
// backward; t = rms(W_l) keeps the cancellation error at float precision. `affineObstacle` checks the structure.
// Elsewhere (a sigmoid, a MaxPool, LayerNorm, attention between layer l and the logits) the checked fallback is
//
// Hessian-vector products by central differences of exact (reverse-mode) gradients,
//   H·(D v) ≈ [∇L(w + D v) − ∇L(w − D v)] / 2,  D = diag(ε_l) with ε_l = δ · rms(W_l),
// with every ReLU / LeakyReLU's activation pattern frozen at the unperturbed weights. With the patterns frozen the
// loss is smooth in the weights and the difference is O(ε²)-close to the exact product that forward-over-reverse
// or the R-operator computes (which treat ReLU'' as 0); without freezing, a perturbation that crosses a kink adds a
// jump of the gradient divided by ε, whose expectation does not vanish as ε → 0 (measured: 5× the exact trace on a
// two-layer MLP). Checked against exact traces in the tests. MaxPool's argmax is not frozen (no model here has one). One Rademacher probe
// covers every layer at once: the per-layer estimate v_lᵀ(H D v)_l / ε_l = v_lᵀH_ll v_l + Σ_{m≠l} (ε_m/ε_l) v_lᵀH_lm v_m
// has zero-mean cross terms, but they dominate the variance of small layers next to large ones (measured: 5 % standard
// error after 500 iterations on a 3×16 head behind a 16×36 layer). So each layer gets its own probe (zero elsewhere):
// two gradient evaluations per layer per iteration, and a layer stops being probed once its standard error is below
// the tolerance.

/// A layer whose Hessian trace is estimated: a Conv/Gemm/MatMul with an initializer weight.
public struct HessianLayer: Sendable, Hashable {
    public var name: String
    public var weight: String
    public var parameterCount: Int
}

/// The layers of a float model (Conv/Gemm/MatMul reading an initializer as input 1), in graph order; these are the
/// layers `insert-fake-quant` quantizes and profiles name.
public func hessianLayers(_ g: Graph) throws -> [HessianLayer] {
    var out: [HessianLayer] = []
    for n in g.nodes {
        switch n.op {
        case .fakeQuantWeight, .fakeQuantAct, .switchableBatchNorm, .switchableLayerNorm:
            throw BitSwitchError(.invalidModel, "Hessian traces are taken on the FP32 model (METHOD.md §5); this model "
                + "already carries quantizers. Use the float model the multi-precision one was made from",
                node: n.label, op: n.op.typeName, domain: n.op.domain)
        case .conv, .gemm, .matMul:
            guard n.inputs.count >= 2, let w = g.initializers[n.inputs[1]] else { continue }
            out.append(HessianLayer(name: n.name, weight: n.inputs[1], parameterCount: w.count))
        default: continue
        }
    }
    guard !out.isEmpty else {
        throw BitSwitchError(.invalidModel, "the model has no Conv/Gemm/MatMul with an initializer weight")
    }
    return out
}

public struct HessianOptions: Sendable {
    /// Training samples the loss is taken on (the first `samples` of the training split).
    public var samples = 1024
    /// Stop when every layer's standard error is below this fraction of its mean.
    public var tolerance = 0.02
    public var minIterations = 10
    public var maxIterations = 500
    public var seed: UInt64 = 0
    public var batchSize = 256
    /// Relative step of the central differences (ε_l = δ · rms(W_l)).
    public var relativeStep = 1e-2
    public var threads: Int?
    /// Use the exact R-operator product for layers whose logits are affine in their weight (false: central
    /// differences everywhere, the fallback, kept switchable to check one against the other).
    public var exactProducts = true
    public init() {}
}

/// One layer's estimate.
public struct LayerTrace: Sendable, Equatable {
    public var name: String
    public var parameterCount: Int
    /// Estimated tr(H_ll).
    public var trace: Double
    /// Standard error of `trace`.
    public var standardError: Double
    /// trace / parameterCount (the `t_l` the ILP and HASB use).
    public var perParameter: Double { trace / Double(max(parameterCount, 1)) }
}

public struct HessianTraces: Sendable, Equatable {
    public var layers: [LayerTrace]
    public var samples: Int
    public var iterations: Int
    public var converged: Bool
    public var seed: UInt64
    public var method: String
    public var model: String?

    public init(layers: [LayerTrace], samples: Int, iterations: Int, converged: Bool, seed: UInt64, method: String,
                model: String? = nil) {
        self.layers = layers; self.samples = samples; self.iterations = iterations; self.converged = converged
        self.seed = seed; self.method = method; self.model = model
    }

    public subscript(name: String) -> LayerTrace? { layers.first { $0.name == name } }

    /// The JSON form of `bitswitch hessian -o`.
    public var json: String {
        var s = "{\n"
        if let model { s += "  \"model\": \(jsonString(model)),\n" }
        s += "  \"method\": \(jsonString(method)),\n  \"samples\": \(samples),\n  \"iterations\": \(iterations),\n"
        s += "  \"converged\": \(converged),\n  \"seed\": \(seed),\n  \"layers\": [\n"
        s += layers.map { l in
            "    {\"name\": \(jsonString(l.name)), \"parameters\": \(l.parameterCount), \"trace\": \(jsonNumber(l.trace)), "
                + "\"per_parameter\": \(jsonNumber(l.perParameter)), \"stderr\": \(jsonNumber(l.standardError))}"
        }.joined(separator: ",\n")
        s += "\n  ]\n}\n"
        return s
    }

    private struct Form: Decodable {
        struct L: Decodable { var name: String; var parameters: Int; var trace: Double; var stderr: Double? }
        var model: String?; var method: String?; var samples: Int?; var iterations: Int?; var converged: Bool?
        var seed: UInt64?; var layers: [L]
    }

    public init(json data: Data, file: String? = nil) throws {
        let f: Form
        do { f = try JSONDecoder().decode(Form.self, from: data) } catch {
            throw BitSwitchError(.parse, "traces: expected the JSON `bitswitch hessian` writes ({\"layers\": [{\"name\", "
                + "\"parameters\", \"trace\"}]}): \(error)", file: file)
        }
        self.init(layers: f.layers.map { LayerTrace(name: $0.name, parameterCount: $0.parameters, trace: $0.trace,
                                                      standardError: $0.stderr ?? 0) },
                  samples: f.samples ?? 0, iterations: f.iterations ?? 0, converged: f.converged ?? true,
                  seed: f.seed ?? 0, method: f.method ?? "", model: f.model)
    }

    public static func load(path: String) throws -> HessianTraces {
        guard let d = FileManager.default.contents(atPath: path) else {
            throw BitSwitchError(.io, "cannot read the traces file", file: path)
        }
        return try HessianTraces(json: d, file: path)
    }

    /// Per-parameter traces for the given layer names; an error naming the first layer the traces lack.
    public func perParameter(for names: [String], file: String? = nil) throws -> [Double] {
        let byName = Dictionary(layers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        return try names.map { n in
            guard let l = byName[n] else {
                throw BitSwitchError(.invalidModel, "traces: no trace for layer '\(n)' — the traces are for a different "
                    + "model (they name \(layers.prefix(6).map(\.name).joined(separator: ", "))\(layers.count > 6 ? ", ..." : ""))",
                    file: file, node: n)
            }
            return l.perParameter
        }
    }
}


func jsonNumber(_ x: Double) -> String { x.isFinite ? String(format: "%.9g", x) : "null" }

/// Progress of the trace estimation: iteration, the cap, and the worst relative standard error so far.
public typealias HessianProgress = (_ iteration: Int, _ maxIterations: Int, _ worstRelativeError: Double) -> Void

public enum HessianTraceEstimator {
    /// Estimates every layer's Hessian trace on the first `options.samples` samples of `data`.
    public static func estimate(graph: Graph, data: Dataset, options: HessianOptions = HessianOptions(),
                                progress: HessianProgress? = nil) throws -> HessianTraces {
        if let t = options.threads { setRuntimeThreads(t) }
        let layers = try hessianLayers(graph)
        guard options.samples > 0, options.batchSize > 0, options.maxIterations >= 2, options.tolerance > 0,
              options.relativeStep > 0 else {
            throw BitSwitchError(.data, "hessian: samples, batch size, tolerance and step must be positive and the "
                + "iteration cap at least 2")
        }
        let masks = FrozenActivationKernel.Store()
        let frozen = FrozenActivationKernel(store: masks)
        let model = try TrainingGraph(graph: graph, kernelOverrides: ["::Relu": frozen, "::LeakyRelu": frozen])
        let n = min(options.samples, data.count)
        guard n > 0 else { throw BitSwitchError(.data, "hessian: the training split is empty") }
        let sampleSize = data.sampleShape.reduce(1, *)
        // Fixed chunks of the first n samples.
        var chunks: [(x: Tensor, y: [Int])] = []
        var start = 0
        while start < n {
            let m = min(options.batchSize, n - start)
            let xs = Array(data.x[(start * sampleSize)..<((start + m) * sampleSize)])
            chunks.append((Tensor(shape: [m] + data.sampleShape, floats: xs), data.y[start..<(start + m)].map { Int($0) }))
            start += m
        }
        let base = layers.map { model.values[$0.weight]?.floats ?? [] }
        let eps: [Double] = base.map { w in
            let rms = (w.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(max(w.count, 1))).squareRoot()
            return options.relativeStep * (rms > 0 ? rms : 1)
        }
        // Layers whose quadratic form the R-operator gives exactly (see the header), the others by central differences.
        let exact = try layers.map { l in
            guard options.exactProducts else { return false }
            return try affineObstacle(from: l.name, in: graph, logits: model.logitsName) == nil
        }
        // Logits and softmax at the unperturbed weights, per chunk (filled by the recording pass below).
        var baseLogits: [[Float]] = [], baseProbabilities: [[Double]] = [], classes = 0
        // vᵀ H_ll v by the R-operator: one forward pass with W_l + t v.
        func exactQuadraticForm(_ i: Int, _ v: [Float]) throws -> Double {
            let t = eps[i] / options.relativeStep
            var probe = layers.map { [Float](repeating: 0, count: $0.parameterCount) }
            probe[i] = v
            setWeights(probe, step: layers.indices.map { $0 == i ? t : 0 })
            var q = 0.0
            for (ci, c) in chunks.enumerated() {
                let zt = try logits(ci, c.x)
                let z0 = baseLogits[ci], p = baseProbabilities[ci]
                guard zt.count == z0.count else {
                    throw BitSwitchError(.internalError, "hessian: the logits changed size under a weight perturbation")
                }
                for r in 0..<(z0.count / classes) {
                    var pd = 0.0, pdd = 0.0
                    for k in (r * classes)..<((r + 1) * classes) {
                        let d = (Double(zt[k]) - Double(z0[k])) / t
                        pd += p[k] * d; pdd += p[k] * d * d
                    }
                    q += pdd - pd * pd
                }
            }
            return q / Double(n)
        }
        func logits(_ ci: Int, _ x: Tensor, record: Bool = false) throws -> [Float] {
            let ctx = TrainingContext(training: false)
            ctx.userInfo[FrozenActivationKernel.chunkKey] = Double(ci)
            if record { ctx.userInfo[FrozenActivationKernel.recordKey] = 1 }
            let pass = try model.forward(feeds: [model.inputName: x], context: ctx)
            guard let z = pass.value(model.logitsName) else {
                throw BitSwitchError(.training, "the forward pass did not compute the logits '\(model.logitsName)'")
            }
            return z.floats
        }
        // Mean-loss gradient of each layer weight at the current values.
        func gradients() throws -> [[Double]] {
            var acc = layers.map { [Double](repeating: 0, count: $0.parameterCount) }
            for (ci, c) in chunks.enumerated() {
                let ctx = TrainingContext(training: false)
                ctx.userInfo[FrozenActivationKernel.chunkKey] = Double(ci)
                let pass = try model.forward(feeds: [model.inputName: c.x], context: ctx)
                guard let logits = pass.value(model.logitsName) else {
                    throw BitSwitchError(.training, "the forward pass did not compute the logits '\(model.logitsName)'")
                }
                let loss = try Loss.crossEntropy(logits: logits, labels: c.y)
                let g = try model.backward(pass, seeds: [model.logitsName: loss.gradient], context: ctx)
                let weight = Double(c.y.count) / Double(n)
                for (i, l) in layers.enumerated() {
                    guard let gl = g[l.weight]?.floats, gl.count == l.parameterCount else { continue }
                    for j in 0..<gl.count { acc[i][j] += weight * Double(gl[j]) }
                }
            }
            return acc
        }
        func setWeights(_ v: [[Float]], step: [Double]) {
            for (i, l) in layers.enumerated() {
                var w = base[i]
                let e = Float(step[i])
                for j in 0..<w.count { w[j] += e * v[i][j] }
                model.values[l.weight] = Tensor(shape: model.values[l.weight]?.shape ?? [w.count], floats: w)
            }
        }
        // Record the activation patterns at the unperturbed weights, and the logits there.
        for (ci, c) in chunks.enumerated() {
            let z = try logits(ci, c.x, record: true)
            classes = z.count / max(c.y.count, 1)
            guard classes > 0, z.count == classes * c.y.count else {
                throw BitSwitchError(.training, "hessian: logits of \(z.count) values for \(c.y.count) labels")
            }
            var p = [Double](repeating: 0, count: z.count)
            for r in 0..<c.y.count {
                let row = (r * classes)..<((r + 1) * classes)
                let m = row.map { Double(z[$0]) }.max() ?? 0
                var sum = 0.0
                for k in row { p[k] = exp(Double(z[k]) - m); sum += p[k] }
                for k in row { p[k] /= sum }
            }
            baseLogits.append(z); baseProbabilities.append(p)
        }
        var rng = SplitMix64(seed: SplitMix64.derive(options.seed, 0x4855_5443))
        var sum = [Double](repeating: 0, count: layers.count), sumSq = sum
        var k = 0, converged = false
        var worst = Double.infinity
        defer { for (i, l) in layers.enumerated() { model.values[l.weight] = Tensor(shape: model.values[l.weight]?.shape ?? [], floats: base[i]) } }
        var count = [Int](repeating: 0, count: layers.count)
        var active = Array(0..<layers.count)
        func relativeError(_ i: Int) -> Double {
            let m = count[i]
            guard m >= 2 else { return .infinity }
            let mean = sum[i] / Double(m)
            let varc = max(0, (sumSq[i] - Double(m) * mean * mean) / Double(m - 1))
            let se = (varc / Double(m)).squareRoot()
            return abs(mean) > 0 ? se / abs(mean) : (se > 0 ? .infinity : 0)
        }
        while k < options.maxIterations, !active.isEmpty {
            for i in active {
                let v: [Float] = (0..<layers[i].parameterCount).map { _ in rng.nextBool() ? 1 : -1 }
                let est: Double
                if exact[i] {
                    est = try exactQuadraticForm(i, v)
                } else {
                    var probe = layers.map { [Float](repeating: 0, count: $0.parameterCount) }
                    probe[i] = v
                    let step = layers.indices.map { $0 == i ? eps[i] : 0 }
                    setWeights(probe, step: step)
                    let gp = try gradients()
                    setWeights(probe, step: step.map { -$0 })
                    let gm = try gradients()
                    var s = 0.0
                    for j in 0..<v.count { s += Double(v[j]) * (gp[i][j] - gm[i][j]) }
                    est = s / (2 * eps[i])
                }
                sum[i] += est; sumSq[i] += est * est; count[i] += 1
            }
            k += 1
            worst = (0..<layers.count).map(relativeError).max() ?? 0
            progress?(k, options.maxIterations, worst)
            if k >= max(2, options.minIterations) {
                active.removeAll { relativeError($0) < options.tolerance }
            }
        }
        converged = active.isEmpty
        let out = layers.enumerated().map { i, l -> LayerTrace in
            let m = max(count[i], 1)
            let mean = sum[i] / Double(m)
            let varc = m > 1 ? max(0, (sumSq[i] - Double(m) * mean * mean) / Double(m - 1)) : 0
            return LayerTrace(name: l.name, parameterCount: l.parameterCount, trace: mean,
                              standardError: (varc / Double(m)).squareRoot())
        }
        let fallback = layers.indices.filter { !exact[$0] }.map { layers[$0].name }
        var method = "hutchinson-rademacher"
        if fallback.count < layers.count { method += ", exact R-operator products (frozen ReLU patterns)" }
        if !fallback.isEmpty {
            method += ", central differences of exact gradients (relative step \(options.relativeStep))"
            if fallback.count < layers.count { method += " for \(fallback.joined(separator: ", "))" }
        }
        return HessianTraces(layers: out, samples: n, iterations: k, converged: converged, seed: options.seed,
                             method: method)
    }
}

/// ReLU / LeakyReLU with the activation pattern of a recorded pass: the slope of each element (1, 0 or alpha) is the
/// one the unperturbed weights gave, so the network is linear in its activations between recording and use.
final class FrozenActivationKernel: TrainableOpKernel, @unchecked Sendable {
    static let chunkKey = "hessian.chunk", recordKey = "hessian.record"

    final class Store: @unchecked Sendable {
        var slopes: [String: [Float]] = [:]
    }
    let store: Store
    init(store: Store) { self.store = store }

    private func slope(_ node: Node) -> Float? {
        switch node.op {
        case .relu: return 0
        case .leakyRelu(let a): return a
        default: return nil
        }
    }

    func forward(node: Node, inputs: [Tensor?], context: TrainingContext) throws -> (outputs: [Tensor], saved: Any?) {
        guard let xt = inputs.first ?? nil, let neg = slope(node) else {
            throw BitSwitchError(.internalError, "frozen activation: unexpected node")
        }
        guard case .f32(let x) = xt.storage else { throw BitSwitchError(.type, "Relu: expected a float tensor") }
        let key = "\(node.outputs.first ?? node.name)#\(Int(context.userInfo[Self.chunkKey] ?? -1))"
        var s: [Float]
        if context.userInfo[Self.recordKey] == 1 || store.slopes[key]?.count != x.count {
            s = x.map { $0 > 0 ? 1 : neg }
            if context.userInfo[Self.recordKey] == 1 { store.slopes[key] = s }
        } else {
            s = store.slopes[key] ?? []
        }
        var y = x
        for i in 0..<y.count { y[i] *= s[i] }
        return ([Tensor(shape: xt.shape, floats: y)], s)
    }

    func backward(node: Node, inputs: [Tensor?], outputs: [Tensor], saved: Any?, gradOutputs: [Tensor?],
                  needsGradient: [Bool], context: TrainingContext) throws -> [Tensor?] {
        guard let g = gradOutputs.first ?? nil, let s = saved as? [Float] else { return [nil] }
        guard case .f32(var gx) = g.storage else { throw BitSwitchError(.type, "Relu: expected a float gradient") }
        guard gx.count == s.count else { throw BitSwitchError(.internalError, "frozen activation: size mismatch") }
        for i in 0..<gx.count { gx[i] *= s[i] }
        return [Tensor(shape: g.shape, floats: gx)]
    }
}

/// Why the logits are not an affine function of `layer`'s output once ReLU patterns are frozen: the first node on a
/// path from the layer to the logits that is not affine in the value coming from the layer (nil: none, the
/// R-operator product is exact). Evaluation mode: BatchNormalization uses its running statistics.
func affineObstacle(from layer: String, in g: Graph, logits: String) throws -> String? {
    guard let start = g.nodes.firstIndex(where: { $0.name == layer }) else {
        throw BitSwitchError(.internalError, "hessian: no node named '\(layer)'")
    }
    var cone = Set(g.nodes[start].outputs.filter { !$0.isEmpty })
    for n in g.nodes[(start + 1)...] {
        let from = n.inputs.indices.filter { cone.contains(n.inputs[$0]) }
        if from.isEmpty { continue }
        let affine: Bool
        switch n.op {
        case .conv, .gemm, .matMul, .mul: affine = from.count == 1  // bilinear: affine in any one operand
        case .add, .sub, .concat: affine = true
        case .div, .neg, .relu, .leakyRelu, .identity, .dropout, .flatten, .reshape, .transpose, .squeeze, .unsqueeze,
             .averagePool, .globalAveragePool, .reduceMean, .reduceSum, .slice, .split, .expand, .gather,
             .batchNormalization:
            affine = from == [0]  // the other inputs are shapes, axes, indices or (BN) constants
        case .pad(let mode, _, _): affine = mode == .constant && from == [0]
        default: affine = false
        }
        guard affine else { return "\(n.op.typeName) '\(n.label)'" }
        cone.formUnion(n.outputs.filter { !$0.isEmpty })
    }
    return cone.contains(logits) ? nil : "the logits do not depend on '\(layer)'"
}
