import Testing
import BitSwitchIR
@testable import BitSwitchRuntime

@Suite struct ConvPoolGradientTests {
    struct ConvCase: Sendable, CustomStringConvertible {
        var x: [Int], w: [Int], attrs: ConvAttrs, bias: Bool
        var description: String { "x\(x) w\(w) group \(attrs.group) strides \(attrs.strides ?? []) dil \(attrs.dilations ?? [])" }
    }

    static let convCases: [ConvCase] = [
        ConvCase(x: [2, 3, 5, 5], w: [4, 3, 3, 3], attrs: ConvAttrs(pads: [1, 1, 1, 1]), bias: true),
        ConvCase(x: [2, 3, 6, 5], w: [4, 3, 3, 2], attrs: ConvAttrs(strides: [2, 1], pads: [1, 0, 0, 1]), bias: false),
        ConvCase(x: [1, 2, 7, 7], w: [2, 2, 3, 3], attrs: ConvAttrs(pads: [2, 2, 2, 2], dilations: [2, 2]), bias: true),
        ConvCase(x: [2, 4, 5, 5], w: [6, 2, 3, 3], attrs: ConvAttrs(pads: [1, 1, 1, 1], group: 2), bias: true),
        ConvCase(x: [2, 3, 5, 5], w: [3, 1, 3, 3], attrs: ConvAttrs(strides: [2, 2], pads: [1, 1, 1, 1], group: 3), bias: true),
        ConvCase(x: [2, 3, 4, 4], w: [5, 3, 1, 1], attrs: ConvAttrs(), bias: true),
        ConvCase(x: [2, 2, 9], w: [3, 2, 5], attrs: ConvAttrs(strides: [2], pads: [2, 2]), bias: true),
        ConvCase(x: [2, 4, 8], w: [4, 1, 3], attrs: ConvAttrs(pads: [1, 1], dilations: [2], group: 4), bias: false),
    ]

    @Test(arguments: convCases)
    func conv(_ c: ConvCase) throws {
        var rng = TestRandom(30)
        let x = rng.tensor(c.x), w = rng.tensor(c.w, -0.5, 0.5)
        var inits = [("w", w)]
        if c.bias { inits.append(("b", rng.tensor([c.w[0]]))) }
        let g = singleNodeGraph(.conv(c.attrs), inputs: [("x", x)], initializers: inits)
        try checkGradients(g, feeds: ["x": x], wrt: ["x", "w"] + (c.bias ? ["b"] : []))
    }

    @Test func gemmWithTransposesAndBroadcastBias() throws {
        var rng = TestRandom(31)
        for (ta, tb, cShape) in [(false, false, [4]), (true, false, [3, 4]), (false, true, [1, 4]), (true, true, [3, 1])] {
            let a = rng.tensor(ta ? [5, 3] : [3, 5]), b = rng.tensor(tb ? [4, 5] : [5, 4]), c = rng.tensor(cShape)
            let op = Op.gemm(GemmAttrs(alpha: 0.7, beta: 1.3, transA: ta, transB: tb))
            try checkGradients(singleNodeGraph(op, inputs: [("a", a)], initializers: [("b", b), ("c", c)]),
                               feeds: ["a": a], wrt: ["a", "b", "c"])
        }
    }

    @Test func matMulBatchedAndBroadcast() throws {
        var rng = TestRandom(32)
        for (aShape, bShape) in [([3, 4], [4, 2]), ([2, 3, 4], [4, 5]), ([2, 3, 4], [2, 4, 2]), ([4], [4, 3])] {
            let a = rng.tensor(aShape), b = rng.tensor(bShape)
            try checkGradients(singleNodeGraph(.matMul, inputs: [("a", a)], initializers: [("b", b)]),
                               feeds: ["a": a], wrt: ["a", "b"])
        }
    }

    @Test func maxPool() throws {
        var rng = TestRandom(33)
        // Distinct values spaced well apart so the arg-max does not move under the finite-difference step.
        for (shape, attrs) in [([2, 2, 4, 4], PoolAttrs(kernelShape: [2, 2], strides: [2, 2])),
                               ([1, 2, 5, 5], PoolAttrs(kernelShape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1])),
                               ([2, 3, 7], PoolAttrs(kernelShape: [3], strides: [2]))] {
            let n = shape.reduce(1, *)
            var values = (0..<n).map { Float($0) * 0.1 }
            for i in stride(from: n - 1, to: 0, by: -1) {
                let j = Int(rng.next() * Float(i + 1)); values.swapAt(i, j)
            }
            let x = Tensor(shape: shape, floats: values)
            try checkGradients(singleNodeGraph(.maxPool(attrs), inputs: [("x", x)], initializers: []), feeds: ["x": x], wrt: ["x"])
        }
    }

    @Test func averagePool() throws {
        var rng = TestRandom(34)
        for (shape, attrs) in [([2, 2, 4, 4], PoolAttrs(kernelShape: [2, 2], strides: [2, 2])),
                               ([1, 2, 5, 5], PoolAttrs(kernelShape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], countIncludePad: true)),
                               ([1, 2, 5, 5], PoolAttrs(kernelShape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1])),
                               ([2, 3, 8], PoolAttrs(kernelShape: [2], strides: [2]))] {
            let x = rng.tensor(shape)
            try checkGradients(singleNodeGraph(.averagePool(attrs), inputs: [("x", x)], initializers: []), feeds: ["x": x], wrt: ["x"])
        }
    }

    /// Conv → BN (training) → ReLU → GlobalAveragePool → Flatten → Gemm → LogSoftmax: the chain a classifier uses.
    @Test func smallNetworkEndToEnd() throws {
        var rng = TestRandom(35)
        let x = rng.tensor([4, 2, 5, 5])
        var g = Graph(opsets: ["": 17], inputs: [ValueInfo(name: "x", type: x.type)],
                      outputs: [ValueInfo(name: "y", type: TensorType(.f32, nil))])
        g.setInitializer("w", rng.tensor([3, 2, 3, 3], -0.5, 0.5))
        g.setInitializer("s", Tensor(shape: [3], floats: rng.uniform(3, 0.5, 1.5)))
        g.setInitializer("bb", rng.tensor([3], -0.5, 0.5))
        g.setInitializer("m", Tensor(shape: [3], floats: [0, 0, 0]))
        g.setInitializer("v", Tensor(shape: [3], floats: [1, 1, 1]))
        g.setInitializer("fw", rng.tensor([4, 3]))
        g.setInitializer("fb", rng.tensor([4]))
        g.nodes = [
            Node(name: "c", op: .conv(ConvAttrs(pads: [1, 1, 1, 1])), inputs: ["x", "w"], outputs: ["c"]),
            Node(name: "bn", op: .batchNormalization(epsilon: 1e-5, momentum: 0.9, trainingMode: false),
                 inputs: ["c", "s", "bb", "m", "v"], outputs: ["n"]),
            Node(name: "r", op: .sigmoid, inputs: ["n"], outputs: ["r"]),
            Node(name: "p", op: .globalAveragePool, inputs: ["r"], outputs: ["p"]),
            Node(name: "f", op: .flatten(axis: 1), inputs: ["p"], outputs: ["f"]),
            Node(name: "fc", op: .gemm(GemmAttrs(transB: true)), inputs: ["f", "fw", "fb"], outputs: ["z"]),
            Node(name: "sm", op: .logSoftmax(axis: 1, legacy: false), inputs: ["z"], outputs: ["y"]),
        ]
        try checkGradients(g, feeds: ["x": x], wrt: ["x", "w", "s", "bb", "fw", "fb"], output: "y", h: 3e-3, atol: 3e-3)
        let tg = try TrainingGraph(graph: g)
        #expect(tg.logitsName == "z")
        #expect(tg.parameters.map(\.name) == ["w", "s", "bb", "fw", "fb"])
        #expect(tg.parameters.map(\.role) == [.weight, .normAffine, .normAffine, .weight, .bias])
        #expect(tg.defaultGroups(weightDecay: 0.1).map(\.parameters) == [["w", "fw"], ["s", "bb", "fb"]])
    }
}
