import Testing
import BitSwitchIR
@testable import BitSwitchRuntime

@Suite struct ElementwiseGradientTests {
    @Test(arguments: [Op.add, .sub, .mul, .div])
    func binaryWithBroadcasting(op: Op) throws {
        var rng = TestRandom(1)
        // [2,3,4] against [3,1] (broadcast over batch and last dim) and a scalar-like [1].
        for bShape in [[3, 1], [1], [2, 3, 4], [4]] {
            let a = rng.tensor([2, 3, 4])
            let b = Tensor(shape: bShape, floats: rng.uniform(bShape.reduce(1, *), 0.5, 1.5))
            let g = singleNodeGraph(op, inputs: [("a", a)], initializers: [("b", b)])
            try checkGradients(g, feeds: ["a": a], wrt: ["a", "b"])
        }
        // The data input broadcast up: [3,1] + [2,3,4] initializer.
        let a = rng.tensor([3, 1]), b = Tensor(shape: [2, 3, 4], floats: rng.uniform(24, 0.5, 1.5))
        try checkGradients(singleNodeGraph(op, inputs: [("a", a)], initializers: [("b", b)]), feeds: ["a": a], wrt: ["a", "b"])
    }

    @Test func activations() throws {
        var rng = TestRandom(2)
        let cases: [(Op, [Float], [Tensor])] = [
            (.relu, [0], []),
            (.leakyRelu(alpha: 0.1), [0], []),
            (.clip(min: 0, max: 0.5), [0, 0.5], []),
            (.sigmoid, [], []),
            (.tanh, [], []),
            (.hardSwish, [-3, 3], []),
            (.hardSigmoid(alpha: 0.2, beta: 0.5), [-2.5, 2.5], []),
        ]
        for (op, kinks, _) in cases {
            let x = Tensor(shape: [3, 5], floats: rng.avoiding(15, kinks, -4, 4))
            let g = singleNodeGraph(op, inputs: [("x", x)], initializers: [])
            try checkGradients(g, feeds: ["x": x], wrt: ["x"])
        }
    }

    @Test func clipWithInputBoundsIsReLU6() throws {
        var rng = TestRandom(3)
        let x = Tensor(shape: [4, 4], floats: rng.avoiding(16, [0, 6], -2, 8))
        var g = singleNodeGraph(.clip(min: nil, max: nil), inputs: [("x", x)],
                                initializers: [("lo", Tensor(scalar: 0)), ("hi", Tensor(scalar: 6))])
        g.nodes[0].inputs = ["x", "lo", "hi"]
        try checkGradients(g, feeds: ["x": x], wrt: ["x"])
        let tg = try TrainingGraph(graph: g)
        let y = try tg.forward(feeds: ["x": x], context: TrainingContext(training: true)).value("y")
        #expect(y?.floats == x.floats.map { min(max($0, 0), 6) })
        // The bounds are constants, not parameters.
        #expect(tg.parameters.isEmpty)
    }

    @Test func dropoutMasksInTrainingAndPassesInEval() throws {
        var rng = TestRandom(4)
        let x = rng.tensor([8, 16], 1, 2)
        let g = singleNodeGraph(.dropout(ratio: 0.5), inputs: [("x", x)], initializers: [])
        let tg = try TrainingGraph(graph: g)
        let eval = try tg.forward(feeds: ["x": x], context: TrainingContext(training: false)).value("y")
        #expect(eval == x)
        let ctx = TrainingContext(training: true, seed: 7)
        let pass = try tg.forward(feeds: ["x": x], context: ctx, gradientInputs: ["x"])
        let y = try #require(pass.value("y")).floats
        let dropped = y.filter { $0 == 0 }.count
        #expect(dropped > 32 && dropped < 96)
        for (u, v) in zip(x.floats, y) where v != 0 { #expect(v == u * 2) }
        let gx = try #require(tg.backward(pass, seeds: ["y": Tensor(shape: [8, 16], floats: .init(repeating: 1, count: 128))],
                                          context: ctx)["x"]).floats
        #expect(gx == y.map { $0 == 0 ? 0 : 2 })
    }
}

/// The elementwise training passes split large tensors across threads (ReLU and Clip forward and backward, Add,
/// the gradient sum where a value feeds two nodes): two threads give the one-thread bits, and the values are the
/// elementwise definitions.
@Suite struct ElementwiseThreadingTests {
    @Test func twoThreadsMatchOneThreadAndDefinition() throws {
        let n = 2 * (1 << 18) + 5   // two chunks, and a tail off the 8-float vectors
        var rng = TestRandom(41)
        let x = Tensor(shape: [1, n], floats: rng.uniform(n, -1, 1))
        // y = Clip(Relu(x) + x, -0.5, 0.75): x feeds two nodes, so its gradient is a sum of two.
        var g = Graph(opsets: ["": 17], inputs: [ValueInfo(name: "x", type: x.type)],
                      outputs: [ValueInfo(name: "y", type: TensorType(.f32, nil))])
        g.nodes = [Node(name: "r", op: .relu, inputs: ["x"], outputs: ["r"]),
                   Node(name: "s", op: .add, inputs: ["r", "x"], outputs: ["s"]),
                   Node(name: "c", op: .clip(min: -0.5, max: 0.75), inputs: ["s"], outputs: ["y"])]
        let seed = Tensor(shape: [1, n], floats: rng.uniform(n, -1, 1))
        func run(_ threads: Int) throws -> (y: [Float], dx: [Float]) {
            try RuntimeThreadsOverride.$threads.withValue(threads) {
                let tg = try TrainingGraph(graph: g, logits: nil)
                let ctx = TrainingContext(training: true)
                let pass = try tg.forward(feeds: ["x": x], context: ctx, gradientInputs: ["x"])
                let y = try #require(pass.value("y"))
                let grads = try tg.backward(pass, seeds: ["y": seed], context: ctx)
                return (y.floats, try #require(grads["x"]).floats)
            }
        }
        let one = try run(1), two = try run(2)
        #expect(one.y.map(\.bitPattern) == two.y.map(\.bitPattern))
        #expect(one.dx.map(\.bitPattern) == two.dx.map(\.bitPattern))
        let xs = x.floats, r = seed.floats
        var wrongY = 0, wrongDX = 0
        for i in 0..<n {
            let s = max(xs[i], 0) + xs[i]
            if one.y[i] != min(max(s, -0.5), 0.75) { wrongY += 1 }
            let inside = s > -0.5 && s < 0.75
            if one.dx[i] != (inside ? (xs[i] > 0 ? r[i] + r[i] : r[i]) : 0) { wrongDX += 1 }
        }
        #expect(wrongY == 0)
        #expect(wrongDX == 0)
    }
}
