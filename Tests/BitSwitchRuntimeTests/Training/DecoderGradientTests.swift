import Foundation
import Testing
import BitSwitchIR
@testable import BitSwitchRuntime

/// Finite-difference checks of what a GPT-style decoder needs beyond the CNN ops: embedding Gather, Slice, Split,
/// Where and an additive mask before Softmax, batched MatMul of two activations, and the per-token cross-entropy.
@Suite struct DecoderGradientTests {
    static func ints(_ shape: [Int], _ v: [Int64]) -> Tensor { Tensor(shape: shape, int64s: v) }

    /// A lower-triangular [t, t] boolean mask (true: attend).
    static func causal(_ t: Int) -> Tensor {
        Tensor(dtype: .bool, shape: [1, 1, t, t], storage: .bool((0..<t * t).map { $0 % t <= $0 / t }))
    }

    @Test func gatherAsEmbeddingScatterAddsRepeatedIds() throws {
        var rng = TestRandom(21)
        let table = rng.tensor([5, 3])
        // Ids repeat (1 three times, once as −4) so their rows accumulate.
        let ids = Self.ints([2, 4], [1, 0, 4, 1, 3, -4, 1, 0])
        let g = singleNodeGraph(.gather(axis: 0), inputs: [("ids", ids)], initializers: [("emb", table)],
                                nodeInputs: ["emb", "ids"])
        let worst = try checkGradients(g, feeds: ["ids": ids], wrt: ["emb"])
        let tg = try TrainingGraph(graph: g)
        #expect(tg.parameters.map(\.name) == ["emb"] && tg.parameters[0].role == .weight)
        // Row 2 is never read: its gradient is exactly zero; row 1 collects four positions.
        let pass = try tg.forward(feeds: ["ids": ids], context: TrainingContext(training: true))
        let ones = Tensor(shape: [2, 4, 3], floats: [Float](repeating: 1, count: 24))
        let d = try #require(try tg.backward(pass, seeds: ["y": ones], context: TrainingContext(training: true))["emb"]).floats
        #expect(Array(d[6..<9]) == [0, 0, 0] && Array(d[3..<6]) == [4, 4, 4] && Array(d[0..<3]) == [2, 2, 2])
        print("fd gather-embedding worst/allowed \(worst)")
    }

    @Test func gatherOnInnerAxis() throws {
        var rng = TestRandom(22)
        let x = rng.tensor([2, 4, 3])
        let ids = Self.ints([2], [3, -1])
        let g = singleNodeGraph(.gather(axis: 1), inputs: [("x", x)], initializers: [("i", ids)])
        try checkGradients(g, feeds: ["x": x], wrt: ["x"])
    }

    @Test func sliceWithStepsAndNegativeIndices() throws {
        var rng = TestRandom(23)
        let x = rng.tensor([2, 5, 4])
        for (starts, ends, axes, steps) in [([1], [4], [1], [1]), ([-1, 0], [-6, 4], [1, 2], [-2, 3]), ([0], [1], [0], [1])] as [([Int64], [Int64], [Int64], [Int64])] {
            let g = singleNodeGraph(.slice(starts: nil, ends: nil, axes: nil), inputs: [("x", x)],
                                    initializers: [("s", Self.ints([starts.count], starts)), ("e", Self.ints([ends.count], ends)),
                                                   ("a", Self.ints([axes.count], axes)), ("p", Self.ints([steps.count], steps))])
            try checkGradients(g, feeds: ["x": x], wrt: ["x"])
        }
    }

    @Test func splitIntoQKV() throws {
        var rng = TestRandom(24)
        let x = rng.tensor([2, 3, 6])
        // qkv = x.split(2, dim=-1): q and v reach the output, k does not (its gradient is absent, not zero-filled).
        var g = singleNodeGraph(.split(axis: -1, sizes: nil, numOutputs: nil), inputs: [("x", x)],
                                initializers: [("sizes", Self.ints([3], [2, 2, 2]))], outputs: ["q", "k", "v"])
        g.nodes.append(Node(name: "cat", op: .concat(axis: 1), inputs: ["v", "q"], outputs: ["y"]))
        g.outputs = [ValueInfo(name: "y", type: TensorType(.f32, nil))]
        try checkGradients(g, feeds: ["x": x], wrt: ["x"])
    }

    @Test func whereBothOperandsVariable() throws {
        var rng = TestRandom(25)
        let a = rng.tensor([2, 3, 4]), b = rng.tensor([3, 1])
        let c = Tensor(dtype: .bool, shape: [3, 4], storage: .bool((0..<12).map { $0 % 3 != 1 }))
        let g = singleNodeGraph(.select, inputs: [("a", a), ("b", b)], initializers: [("c", c)], nodeInputs: ["c", "a", "b"])
        try checkGradients(g, feeds: ["a": a, "b": b], wrt: ["a", "b"])
    }

    /// Scores masked as PyTorch exports `masked_fill(mask == 0, -inf)` (Where with a constant boolean mask) or an
    /// added 0/−inf constant, then Softmax over the last axis.
    @Test(arguments: ["where", "add"])
    func causalMaskedSoftmax(form: String) throws {
        var rng = TestRandom(26)
        let t = 4
        let s = rng.tensor([2, 2, t, t], -2, 2)
        var g: Graph
        if form == "where" {
            g = singleNodeGraph(.select, inputs: [("s", s)],
                                initializers: [("mask", Self.causal(t)), ("ninf", Tensor(shape: [], floats: [-.infinity]))],
                                outputs: ["m"], nodeInputs: ["mask", "s", "ninf"])
        } else {
            let add = Tensor(shape: [t, t], floats: (0..<t * t).map { $0 % t <= $0 / t ? 0 : -.infinity })
            g = singleNodeGraph(.add, inputs: [("s", s)], initializers: [("mask", add)], outputs: ["m"])
        }
        g.nodes.append(Node(name: "sm", op: .softmax(axis: -1, legacy: false), inputs: ["m"], outputs: ["y"]))
        g.outputs = [ValueInfo(name: "y", type: TensorType(.f32, nil))]
        let worst = try checkGradients(g, feeds: ["s": s], wrt: ["s"], output: "y")
        // The mask is a constant, never a trained bias.
        #expect(try TrainingGraph(graph: g, logits: "y").parameters.isEmpty)
        let y = try #require(try TrainingGraph(graph: g, logits: "y").forward(feeds: ["s": s], context: TrainingContext(training: false)).value("y")).floats
        #expect(y[1] == 0 && y[2] == 0 && abs(y[0] - 1) < 1e-6)
        print("fd causal softmax (\(form)) worst/allowed \(worst)")
    }

    @Test func additiveMaskDetection() {
        #expect(isAdditiveMask(Tensor(shape: [2], floats: [0, -1e9])))
        #expect(isAdditiveMask(Tensor(shape: [3], floats: [0, -.greatestFiniteMagnitude, 0])))
        #expect(!isAdditiveMask(Tensor(shape: [2], floats: [0.1, -1e9])))
        #expect(!isAdditiveMask(Tensor(shape: [2], floats: [0, 0])))
        #expect(!isAdditiveMask(Tensor(shape: [3], floats: [0, -1e9, -1e5])))
    }

    /// One attention head end to end: softmax((Q·Kᵀ)·s + causal) · V, Q/K/V all activations (batched MatMul with
    /// two variable operands), heads split by Reshape/Transpose and merged back.
    @Test func causalSelfAttention() throws {
        var rng = TestRandom(27)
        let (n, t, heads, d) = (2, 3, 2, 2)
        let q = rng.tensor([n, t, heads * d]), k = rng.tensor([n, t, heads * d]), v = rng.tensor([n, t, heads * d])
        var g = Graph(opsets: ["": 17], inputs: [ValueInfo(name: "q", type: q.type), ValueInfo(name: "k", type: k.type),
                                                 ValueInfo(name: "v", type: v.type)],
                      outputs: [ValueInfo(name: "y", type: TensorType(.f32, nil))])
        g.setInitializer("hs", Self.ints([4], [Int64(n), Int64(t), Int64(heads), Int64(d)]))
        g.setInitializer("back", Self.ints([3], [Int64(n), Int64(t), Int64(heads * d)]))
        g.setInitializer("scale", Tensor(shape: [], floats: [0.7]))
        g.setInitializer("mask", Self.causal(t))
        g.setInitializer("ninf", Tensor(shape: [], floats: [-.infinity]))
        var nodes: [Node] = []
        for x in ["q", "k", "v"] {
            nodes.append(Node(name: "\(x)r", op: .reshape(allowZero: false), inputs: [x, "hs"], outputs: ["\(x)4"]))
            nodes.append(Node(name: "\(x)t", op: .transpose(perm: x == "k" ? [0, 2, 3, 1] : [0, 2, 1, 3]),
                              inputs: ["\(x)4"], outputs: ["\(x)h"]))
        }
        nodes += [Node(name: "qk", op: .matMul, inputs: ["qh", "kh"], outputs: ["att"]),
                  Node(name: "sc", op: .mul, inputs: ["att", "scale"], outputs: ["att2"]),
                  Node(name: "mk", op: .select, inputs: ["mask", "att2", "ninf"], outputs: ["att3"]),
                  Node(name: "sm", op: .softmax(axis: -1, legacy: false), inputs: ["att3"], outputs: ["p"]),
                  Node(name: "pv", op: .matMul, inputs: ["p", "vh"], outputs: ["o"]),
                  Node(name: "ot", op: .transpose(perm: [0, 2, 1, 3]), inputs: ["o"], outputs: ["o2"]),
                  Node(name: "or", op: .reshape(allowZero: false), inputs: ["o2", "back"], outputs: ["y"])]
        g.nodes = nodes
        let worst = try checkGradients(g, feeds: ["q": q, "k": k, "v": v], wrt: ["q", "k", "v"])
        print("fd causal self-attention worst/allowed \(worst)")
    }

    /// A pre-norm decoder block's MLP half: LayerNorm → MatMul+Add → Gelu (erf) → MatMul → residual Add.
    @Test func layerNormMLPResidual() throws {
        var rng = TestRandom(28)
        let x = rng.tensor([2, 3, 4])
        var g = Graph(opsets: ["": 17], inputs: [ValueInfo(name: "x", type: x.type)],
                      outputs: [ValueInfo(name: "y", type: TensorType(.f32, nil))])
        g.setInitializer("ls", Tensor(shape: [4], floats: rng.uniform(4, 0.5, 1.5)))
        g.setInitializer("lb", rng.tensor([4], -0.3, 0.3))
        g.setInitializer("w1", rng.tensor([4, 6])); g.setInitializer("b1", rng.tensor([6]))
        g.setInitializer("w2", rng.tensor([6, 4]))
        g.nodes = [Node(name: "ln", op: .layerNormalization(axis: -1, epsilon: 1e-5), inputs: ["x", "ls", "lb"], outputs: ["h"]),
                   Node(name: "fc", op: .matMul, inputs: ["h", "w1"], outputs: ["h1"]),
                   Node(name: "fb", op: .add, inputs: ["h1", "b1"], outputs: ["h2"]),
                   Node(name: "ge", op: .gelu(tanh: false), inputs: ["h2"], outputs: ["h3"]),
                   Node(name: "pr", op: .matMul, inputs: ["h3", "w2"], outputs: ["h4"]),
                   Node(name: "res", op: .add, inputs: ["x", "h4"], outputs: ["y"])]
        let worst = try checkGradients(g, feeds: ["x": x], wrt: ["x", "ls", "lb", "w1", "b1", "w2"], h: 2e-3)
        print("fd layernorm-mlp-residual worst/allowed \(worst)")
    }

    /// Cross-entropy per position of [N, T, V] logits against [N, T] labels, mean over the N·T positions: the same
    /// as the classification loss on the [N·T, V] rows, and its gradient matches finite differences.
    @Test func perTokenCrossEntropy() throws {
        var rng = TestRandom(29)
        let z = rng.tensor([2, 3, 5], -2, 2)
        let labels = [4, 0, 2, 2, 1, 3]
        let r = try Loss.crossEntropy(logits: z, labels: labels)
        let flat = try Loss.crossEntropy(logits: Tensor(shape: [6, 5], floats: z.floats), labels: labels)
        #expect(abs(r.loss - flat.loss) < 1e-7 && r.correct == flat.correct && r.gradient.shape == [2, 3, 5])
        var manual = 0.0
        for p in 0..<6 {
            let row = z.floats[(p * 5)..<(p * 5 + 5)].map(Double.init)
            let lse = log(row.map { exp($0) }.reduce(0, +))
            manual += lse - row[labels[p]]
        }
        #expect(abs(Double(r.loss) - manual / 6) < 1e-5)
        var worst = 0.0
        for i in 0..<z.count {
            var p = z.floats, m = z.floats
            p[i] += 1e-2; m[i] -= 1e-2
            let fd = Double(try Loss.crossEntropy(logits: Tensor(shape: z.shape, floats: p), labels: labels).loss
                            - Loss.crossEntropy(logits: Tensor(shape: z.shape, floats: m), labels: labels).loss) / 2e-2
            worst = max(worst, abs(fd - Double(r.gradient.floats[i])))
        }
        #expect(worst < 1e-3)
        // Neither one label per sample nor one per position.
        #expect(throws: BitSwitchError.self) { try Loss.crossEntropy(logits: z, labels: [1, 2, 3]) }
        #expect(throws: BitSwitchError.self) { try Loss.crossEntropy(logits: z, labels: [1, 2, 3, 4, 5, 7]) }
        print("fd per-token cross-entropy max abs error \(worst)")
    }
}
