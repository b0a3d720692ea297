import BitSwitchData
import BitSwitchIR
import BitSwitchRuntime
import Foundation
import Testing
@testable import BitSwitchQuant

/// x[N,1,6,6] → Flatten → Gemm(W1: h×36, b1) → ReLU → Gemm(W2: 3×h, b2) → logits.
private func mlp(hidden h: Int, seed: UInt64) -> Graph {
    var rng = JointRandom(seed)
    var g = Graph(name: "mlp", opsets: ["": 17],
                  inputs: [ValueInfo(name: "x", type: TensorType(.f32, [.symbol("N"), .known(1), .known(6), .known(6)]))],
                  outputs: [ValueInfo(name: "logits", type: TensorType(.f32, [.symbol("N"), .known(3)]))])
    g.setInitializer("w1", Tensor(shape: [h, 36], floats: rng.uniform(h * 36, -0.5, 0.5)))
    g.setInitializer("b1", Tensor(shape: [h], floats: rng.uniform(h, -0.1, 0.1)))
    g.setInitializer("w2", Tensor(shape: [3, h], floats: rng.uniform(3 * h, -0.8, 0.8)))
    g.setInitializer("b2", Tensor(shape: [3], floats: [0, 0, 0]))
    g.nodes = [
        Node(name: "flat", op: .flatten(axis: 1), inputs: ["x"], outputs: ["f"]),
        Node(name: "fc1", op: .gemm(GemmAttrs(transB: true)), inputs: ["f", "w1", "b1"], outputs: ["z"]),
        Node(name: "relu", op: .relu, inputs: ["z"], outputs: ["a"]),
        Node(name: "fc2", op: .gemm(GemmAttrs(transB: true)), inputs: ["a", "w2", "b2"], outputs: ["logits"]),
    ]
    return g
}

/// The exact traces of the mean cross-entropy's Hessian blocks (ReLU's second derivative is zero almost everywhere):
/// with S = diag(p) − ppᵀ, tr H(W2) = mean Σ_k S_kk ‖a‖², tr H(W1) = mean Σ_i [z_i > 0] ‖x‖² W2[:,i]ᵀ S W2[:,i].
private func exactTraces(_ g: Graph, _ d: Dataset, hidden h: Int) -> (Double, Double) {
    let w1 = g.initializers["w1"]!.floats.map(Double.init), b1 = g.initializers["b1"]!.floats.map(Double.init)
    let w2 = g.initializers["w2"]!.floats.map(Double.init), b2 = g.initializers["b2"]!.floats.map(Double.init)
    var t1 = 0.0, t2 = 0.0
    for n in 0..<d.count {
        var x = [Double](repeating: 0, count: 36)
        for j in 0..<36 { x[j] = Double(d.x[n * 36 + j]) }
        var z = [Double](repeating: 0, count: h), a = z
        for i in 0..<h {
            var acc: Double = b1[i]
            for j in 0..<36 { acc += w1[i * 36 + j] * x[j] }
            z[i] = acc; a[i] = max(acc, 0)
        }
        var l = [Double](repeating: 0, count: 3)
        for k in 0..<3 {
            var acc: Double = b2[k]
            for i in 0..<h { acc += w2[k * h + i] * a[i] }
            l[k] = acc
        }
        let m: Double = l.max() ?? 0
        var p = l.map { exp($0 - m) }
        let s: Double = p.reduce(0, +)
        for k in 0..<3 { p[k] /= s }
        var xx = 0.0, aa = 0.0
        for j in 0..<36 { xx += x[j] * x[j] }
        for i in 0..<h { aa += a[i] * a[i] }
        var sdiag = 0.0
        for k in 0..<3 { sdiag += p[k] * (1 - p[k]) }
        t2 += sdiag * aa
        for i in 0..<h where z[i] > 0 {
            var pc = 0.0, pcc = 0.0
            for k in 0..<3 { let c = w2[k * h + i]; pc += p[k] * c; pcc += p[k] * c * c }
            t1 += xx * (pcc - pc * pc)
        }
    }
    return (t1 / Double(d.count), t2 / Double(d.count))
}

@Suite struct HessianTraceTests {
    @Test(arguments: [(UInt64(1), 8), (UInt64(2), 16)])
    func hutchinsonMatchesTheExactTraceWithinFivePercent(seed: UInt64, hidden: Int) throws {
        let g = mlp(hidden: hidden, seed: seed)
        let data = barData(count: 64, seed: seed + 10)
        var o = HessianOptions()
        o.seed = seed
        o.threads = 1
        // The head (3×h, all-positive ReLU inputs) has one dominant eigenvalue: Rademacher probes are unbiased but
        // noisy there (METHOD.md §5), and it needs ~800 probes to reach the default 2 % standard error, past the
        // default cap of 500 (where it ends 8 % off with a 2.5 % standard error).
        o.maxIterations = 3000
        var calls = 0
        let t = try HessianTraceEstimator.estimate(graph: g, data: data, options: o) { k, cap, _ in
            calls += 1
            #expect(k == calls && cap == 3000)
        }
        let (e1, e2) = exactTraces(g, data, hidden: hidden)
        let fc1 = try #require(t["fc1"]), fc2 = try #require(t["fc2"])
        #expect(t.converged && t.iterations >= 10 && t.samples == 64)
        #expect(abs(fc1.trace - e1) / e1 < 0.05, "fc1 \(fc1.trace) vs exact \(e1)")
        #expect(abs(fc2.trace - e2) / e2 < 0.05, "fc2 \(fc2.trace) ± \(fc2.standardError) vs exact \(e2), fc1 \(fc1.trace) ± \(fc1.standardError) vs \(e1), \(t.iterations) its")
        #expect(fc1.parameterCount == hidden * 36 && abs(fc1.perParameter - fc1.trace / Double(hidden * 36)) < 1e-12)
        // Round trip of the JSON form.
        let back = try HessianTraces(json: Data(t.json.utf8))
        #expect(back.layers.map(\.name) == ["fc1", "fc2"])
        #expect(abs(back.layers[0].trace - fc1.trace) <= 1e-8 * abs(fc1.trace))
        #expect(throws: BitSwitchError.self) { _ = try back.perParameter(for: ["fc1", "conv9"]) }
    }

    /// The R-operator path and the central-difference fallback see the same probes (same seed, fixed iteration
    /// count): their per-layer estimates agree to the fallback's O(ε²) error, and the JSON says which was used.
    @Test func exactProductsAgreeWithTheCentralDifferenceFallback() throws {
        let g = mlp(hidden: 8, seed: 3)
        let data = barData(count: 48, seed: 13)
        var o = HessianOptions()
        o.seed = 3; o.threads = 1; o.minIterations = 12; o.maxIterations = 12
        let exact = try HessianTraceEstimator.estimate(graph: g, data: data, options: o)
        o.exactProducts = false
        let differences = try HessianTraceEstimator.estimate(graph: g, data: data, options: o)
        #expect(exact.method.contains("exact R-operator") && !exact.method.contains("central"))
        #expect(differences.method.contains("central differences") && !differences.method.contains("R-operator"))
        for (a, b) in zip(exact.layers, differences.layers) {
            #expect(abs(a.trace - b.trace) <= 2e-3 * abs(a.trace), "\(a.name): \(a.trace) vs \(b.trace)")
        }
    }

    /// A non-linearity between a layer and the logits (here a Sigmoid after fc1) sends that layer to the fallback.
    @Test func aNonlinearityAfterALayerUsesTheFallback() throws {
        var g = mlp(hidden: 8, seed: 4)
        g.nodes[2] = Node(name: "act", op: .sigmoid, inputs: ["z"], outputs: ["a"])
        #expect(try affineObstacle(from: "fc1", in: g, logits: "logits") == "Sigmoid 'act'")
        #expect(try affineObstacle(from: "fc2", in: g, logits: "logits") == nil)
        #expect(try affineObstacle(from: "fc1", in: mlp(hidden: 8, seed: 4), logits: "logits") == nil)
        var o = HessianOptions()
        o.threads = 1; o.minIterations = 4; o.maxIterations = 4
        let t = try HessianTraceEstimator.estimate(graph: g, data: barData(count: 16, seed: 5), options: o)
        #expect(t.method.contains("exact R-operator") && t.method.contains("central differences") && t.method.hasSuffix("for fc1"))
    }

    @Test func aQuantizedModelIsRefused() throws {
        #expect(throws: BitSwitchError.self) { _ = try hessianLayers(quantizedClassifier()) }
    }
}
