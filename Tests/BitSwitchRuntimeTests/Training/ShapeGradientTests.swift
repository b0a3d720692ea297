import Testing
import BitSwitchIR
@testable import BitSwitchRuntime

@Suite struct ShapeGradientTests {
    @Test func flattenReshapeSqueezeUnsqueezeTranspose() throws {
        var rng = TestRandom(10)
        let x = rng.tensor([2, 3, 2, 2])
        let w = Tensor(shape: [2, 3, 2, 2], floats: rng.uniform(24, 0.5, 1.5))
        // Multiply by an initializer first so the reshape sits between a parameter and the output.
        for (op, extra) in [(Op.flatten(axis: 1), [Tensor]()), (.reshape(allowZero: false), [Tensor(shape: [2], int64s: [0, -1])]),
                            (.transpose(perm: [0, 2, 3, 1]), []), (.unsqueeze(axes: [1]), []), (.flatten(axis: 0), [])] {
            var g = singleNodeGraph(.mul, inputs: [("x", x)], initializers: [("w", w)], outputs: ["m"])
            var ins = ["m"]
            for (i, t) in extra.enumerated() { g.setInitializer("s\(i)", t); ins.append("s\(i)") }
            g.nodes.append(Node(name: "n1", op: op, inputs: ins, outputs: ["y"]))
            g.outputs = [ValueInfo(name: "y", type: TensorType(.f32, nil))]
            try checkGradients(g, feeds: ["x": x], wrt: ["x", "w"])
        }
        let tg = try TrainingGraph(graph: singleNodeGraph(.reshape(allowZero: false), inputs: [("x", x)],
                                                          initializers: [("s", Tensor(shape: [3], int64s: [0, -1, 2]))]))
        #expect(try tg.forward(feeds: ["x": x], context: TrainingContext(training: true)).value("y")?.shape == [2, 6, 2])
    }

    @Test func concatAlongChannels() throws {
        var rng = TestRandom(11)
        let a = rng.tensor([2, 2, 3]), b = rng.tensor([2, 1, 3])
        let g = singleNodeGraph(.concat(axis: 1), inputs: [("a", a)], initializers: [("b", b)])
        try checkGradients(g, feeds: ["a": a], wrt: ["a", "b"])
        let g2 = singleNodeGraph(.concat(axis: -1), inputs: [("a", a)], initializers: [("b", rng.tensor([2, 2, 2]))])
        try checkGradients(g2, feeds: ["a": a], wrt: ["a", "b"])
    }

    @Test(arguments: [false, true])
    func softmaxAndLogSoftmax(log: Bool) throws {
        var rng = TestRandom(12)
        let x = rng.tensor([3, 4, 2], -2, 2)
        for (axis, legacy) in [(1, false), (-1, false), (1, true)] {
            let op: Op = log ? .logSoftmax(axis: axis, legacy: legacy) : .softmax(axis: axis, legacy: legacy)
            try checkGradients(singleNodeGraph(op, inputs: [("x", x)], initializers: []), feeds: ["x": x], wrt: ["x"])
        }
        // Legacy softmax normalises over everything from the axis on.
        let tg = try TrainingGraph(graph: singleNodeGraph(.softmax(axis: 1, legacy: true), inputs: [("x", x)], initializers: []))
        let y = try #require(try tg.forward(feeds: ["x": x], context: TrainingContext(training: false)).value("y")).floats
        #expect(abs(y[0..<8].reduce(0, +) - 1) < 1e-5)
    }

    @Test func globalAveragePool() throws {
        var rng = TestRandom(13)
        for shape in [[2, 3, 4, 5], [2, 3, 7]] {
            let x = rng.tensor(shape)
            let g = singleNodeGraph(.globalAveragePool, inputs: [("x", x)], initializers: [])
            try checkGradients(g, feeds: ["x": x], wrt: ["x"])
        }
    }
}
