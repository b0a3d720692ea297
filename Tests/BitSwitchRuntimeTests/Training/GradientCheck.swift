import BitSwitchIR
@testable import BitSwitchRuntime

/// Deterministic values for test tensors.
struct TestRandom {
    var state: UInt64
    init(_ seed: UInt64) { state = seed &* 0x9E3779B97F4A7C15 | 1 }
    mutating func next() -> Float {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(state >> 40) / Float(1 << 24)
    }
    /// Uniform in [lo, hi).
    mutating func uniform(_ n: Int, _ lo: Float = -1, _ hi: Float = 1) -> [Float] {
        (0..<n).map { _ in lo + (hi - lo) * next() }
    }
    /// Uniform in [lo, hi) but at least `gap` away from every kink in `kinks` (so finite differences see a smooth function).
    mutating func avoiding(_ n: Int, _ kinks: [Float], gap: Float = 0.05, _ lo: Float = -1, _ hi: Float = 1) -> [Float] {
        (0..<n).map { _ in
            while true {
                let v = lo + (hi - lo) * next()
                if kinks.allSatisfy({ abs(v - $0) > gap }) { return v }
            }
        }
    }
    mutating func tensor(_ shape: [Int], _ lo: Float = -1, _ hi: Float = 1) -> Tensor {
        Tensor(shape: shape, floats: uniform(shape.reduce(1, *), lo, hi))
    }
}

/// A one-node graph: data inputs, initializers, one output "y".
func singleNodeGraph(_ op: Op, inputs: [(String, Tensor)], initializers: [(String, Tensor)], outputs: [String] = ["y"],
                     nodeInputs: [String]? = nil) -> Graph {
    var g = Graph(opsets: ["": 17, Op.bitswitchDomain: 1],
                  inputs: inputs.map { ValueInfo(name: $0.0, type: $0.1.type) },
                  outputs: [ValueInfo(name: outputs[0], type: TensorType(.f32, nil))])
    for (n, t) in initializers { g.setInitializer(n, t) }
    g.nodes = [Node(name: "n0", op: op, inputs: nodeInputs ?? (inputs.map(\.0) + initializers.map(\.0)), outputs: outputs)]
    return g
}

struct GradientMismatch: Error, CustomStringConvertible {
    var description: String
}

/// Compares the engine's gradients of L = Σ r ⊙ output (r random) with central differences for every element of
/// each value in `wrt` (graph inputs or initializers). Returns the largest scaled error found.
@discardableResult
func checkGradients(_ graph: Graph, feeds: [String: Tensor], wrt: [String], training: Bool = true,
                    output: String? = nil, activeBits: Int? = nil, h: Float = 1e-2, atol: Double = 2e-3, rtol: Double = 1e-2,
                    kernels: [String: any TrainableOpKernel] = [:]) throws -> Double {
    let tg = try TrainingGraph(graph: graph, logits: output, kernelOverrides: kernels)
    let out = output ?? graph.outputs[0].name
    let ctx = TrainingContext(training: training, activeBits: activeBits)
    let pass = try tg.forward(feeds: feeds, context: ctx, gradientInputs: Set(wrt))
    guard let y = pass.value(out) else { throw GradientMismatch(description: "no output \(out)") }
    var rng = TestRandom(99)
    let r = rng.uniform(y.count)
    let grads = try tg.backward(pass, seeds: [out: Tensor(shape: y.shape, floats: r)], context: ctx)
    let saved = tg.values

    func loss(_ feeds: [String: Tensor]) throws -> Double {
        let c = TrainingContext(training: training, activeBits: activeBits)
        let p = try tg.forward(feeds: feeds, context: c)
        tg.values = saved
        guard let v = p.value(out) else { return .nan }
        return zip(v.floats, r).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    }

    var worst = 0.0
    for name in wrt {
        let isFeed = feeds[name] != nil
        guard let base = isFeed ? feeds[name] : saved[name] else { throw GradientMismatch(description: "no value \(name)") }
        guard let g = grads[name] else { throw GradientMismatch(description: "no gradient for \(name)") }
        let an = g.floats
        guard an.count == base.count else { throw GradientMismatch(description: "gradient size of \(name)") }
        for i in 0..<base.count {
            var plus = base.floats, minus = base.floats
            plus[i] += h; minus[i] -= h
            var fp = feeds, fm = feeds
            let tp = Tensor(shape: base.shape, floats: plus), tm = Tensor(shape: base.shape, floats: minus)
            let lp: Double, lm: Double
            if isFeed {
                fp[name] = tp; fm[name] = tm
                lp = try loss(fp); lm = try loss(fm)
            } else {
                tg.values[name] = tp; lp = try loss(feeds)
                tg.values[name] = tm; lm = try loss(feeds)
                tg.values = saved
            }
            let fd = (lp - lm) / Double(2 * h)
            let err = abs(fd - Double(an[i]))
            let allowed = atol + rtol * abs(fd)
            worst = max(worst, err / allowed)
            if err > allowed {
                throw GradientMismatch(description: "\(name)[\(i)]: analytic \(an[i]) vs finite difference \(fd)")
            }
        }
    }
    return worst
}
