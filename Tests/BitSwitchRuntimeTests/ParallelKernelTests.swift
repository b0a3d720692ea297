import BitSwitchIR
import Testing
@testable import BitSwitchRuntime

/// Every kernel with a parallel loop, run at 4 threads of the runtime's own loops and at 1, on shapes large enough to
/// split: the results agree (exactly, or to rounding where per-thread partial sums are added in another order). Under
/// ThreadSanitizer (`make test-tsan`) this suite is what exercises the kernels' threading: the thread count is pinned
/// per task, so tests running alongside at one thread cannot turn it off.
struct ParallelKernelTests {
    /// `body` at 1 thread and at 4.
    func both<T>(_ body: () throws -> T) throws -> (one: T, four: T) {
        let one = try RuntimeThreadsOverride.$threads.withValue(1) { try body() }
        let four = try RuntimeThreadsOverride.$threads.withValue(4) {
            #expect(runtimeThreads == 4)
            return try body()
        }
        return (one, four)
    }

    func same(_ a: Tensor?, _ b: Tensor?, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        guard let a, let b else { #expect(a == nil && b == nil, "\(what): one side is missing"); return }
        #expect(mismatch(b, a, rtol: 1e-5, atol: 1e-5) == nil, "\(what): \(mismatch(b, a, rtol: 1e-5, atol: 1e-5) ?? "")",
                sourceLocation: sourceLocation)
    }

    static let convCases: [(String, [Int], [Int], ConvAttrs)] = [
        ("direct 3x3", [8, 8, 16, 16], [16, 8, 3, 3], ConvAttrs(pads: [1, 1, 1, 1])),
        ("strided 3x3", [8, 8, 16, 16], [16, 8, 3, 3], ConvAttrs(strides: [2, 2], pads: [1, 1, 1, 1])),
        ("depthwise", [8, 8, 16, 16], [8, 1, 3, 3], ConvAttrs(pads: [1, 1, 1, 1], group: 8)),
        ("im2col 5x5", [8, 8, 12, 12], [16, 8, 5, 5], ConvAttrs(pads: [2, 2, 2, 2])),
        ("pointwise", [8, 8, 12, 12], [16, 8, 1, 1], ConvAttrs()),
    ]

    @Test(arguments: 0..<convCases.count)
    func convForwardAndBackward(case index: Int) throws {
        let (name, xs, ws, attrs) = Self.convCases[index]
        let x = Tensor(shape: xs, floats: randomFloats(xs.reduce(1, *), seed: 11))
        let w = Tensor(shape: ws, floats: randomFloats(ws.reduce(1, *), seed: 12))
        let b = Tensor(shape: [ws[0]], floats: randomFloats(ws[0], seed: 13))
        let y = try both { try convForward(x: x, w: w, b: b, attrs: attrs) }
        same(y.one, y.four, "\(name) forward")
        let gy = Tensor(shape: y.one.shape, floats: randomFloats(y.one.count, seed: 14))
        let g = try both { try convBackward(x: x, w: w, hasBias: true, gradY: gy, attrs: attrs) }
        same(g.one.dx, g.four.dx, "\(name) dX")
        same(g.one.dw, g.four.dw, "\(name) dW")
        same(g.one.db, g.four.db, "\(name) dB")
    }

    @Test func poolsForwardAndBackward() throws {
        let x = Tensor(shape: [8, 16, 16, 16], floats: randomFloats(8 * 16 * 256, seed: 21))
        let attrs = PoolAttrs(kernelShape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1])
        let mp = try both { try maxPoolForward(x: x, attrs: attrs) }
        same(mp.one.y, mp.four.y, "MaxPool")
        #expect(mp.one.argmax == mp.four.argmax)
        let ap = try both { try averagePoolForward(x: x, attrs: attrs) }
        same(ap.one, ap.four, "AveragePool")
        let gy = Tensor(shape: ap.one.shape, floats: randomFloats(ap.one.count, seed: 22))
        let ab = try both { try averagePoolBackward(xShape: x.shape, attrs: attrs, gradY: gy) }
        same(ab.one, ab.four, "AveragePool backward")
    }

    @Test func batchNormTrainingForwardAndBackward() throws {
        let shape = [16, 8, 32, 32], c = 8
        let x = randomFloats(shape.reduce(1, *), seed: 31)
        let scale = randomFloats(c, seed: 32), bias = randomFloats(c, seed: 33)
        let mean = [Float](repeating: 0, count: c), variance = [Float](repeating: 1, count: c)
        let f = try both {
            try BatchNormMath.forward(x: x, shape: shape, scale: scale, bias: bias, runningMean: mean,
                                      runningVar: variance, epsilon: 1e-5, momentum: 0.9, training: true)
        }
        same(Tensor(shape: shape, floats: f.one.y), Tensor(shape: shape, floats: f.four.y), "BatchNorm forward")
        let gy = randomFloats(x.count, seed: 34)
        let g = try both {
            try BatchNormMath.backward(x: x, shape: shape, gradY: gy, scale: scale, saved: f.one.savedState,
                                       needInput: true)
        }
        same(g.one.dx.map { Tensor(shape: shape, floats: $0) }, g.four.dx.map { Tensor(shape: shape, floats: $0) },
             "BatchNorm dX")
        same(Tensor(shape: [c], floats: g.one.dScale), Tensor(shape: [c], floats: g.four.dScale), "BatchNorm dScale")
        same(Tensor(shape: [c], floats: g.one.dBias), Tensor(shape: [c], floats: g.four.dBias), "BatchNorm dBias")
    }

    @Test func layerNormAndGelu() throws {
        let x = Tensor(shape: [64, 32, 64], floats: randomFloats(64 * 32 * 64, seed: 41))
        let scale = Tensor(shape: [64], floats: randomFloats(64, seed: 42))
        let bias = Tensor(shape: [64], floats: randomFloats(64, seed: 43))
        let ln = try both { try layerNormOp(x, scale, bias, axis: -1, epsilon: 1e-5) }
        same(ln.one.0, ln.four.0, "LayerNormalization")
        for kind in [MathKind.erf, .gelu, .geluTanh] {
            let r = try both { try mathOp(kind, x, op: "\(kind)") }
            same(r.one, r.four, "\(kind)")
        }
    }

    /// A whole small CNN through the executor, the way `run` and `eval` use the kernels.
    @Test func executorRunsAConvNet() throws {
        var g = Graph(opsets: ["": 17],
                      inputs: [ValueInfo(name: "x", type: TensorType(.f32, [.symbol("N"), .known(4), .known(16), .known(16)]))],
                      outputs: [ValueInfo(name: "y", type: TensorType(.f32, nil))])
        g.setInitializer("w1", Tensor(shape: [16, 4, 3, 3], floats: randomFloats(16 * 36, seed: 51)))
        g.setInitializer("w2", Tensor(shape: [16, 1, 3, 3], floats: randomFloats(16 * 9, seed: 52)))
        g.nodes = [
            Node(name: "c1", op: .conv(ConvAttrs(pads: [1, 1, 1, 1])), inputs: ["x", "w1", ""], outputs: ["a"]),
            Node(name: "r1", op: .relu, inputs: ["a"], outputs: ["b"]),
            Node(name: "dw", op: .conv(ConvAttrs(strides: [2, 2], pads: [1, 1, 1, 1], group: 16)), inputs: ["b", "w2", ""],
                 outputs: ["c"]),
            Node(name: "gap", op: .globalAveragePool, inputs: ["c"], outputs: ["y"]),
        ]
        let x = Tensor(shape: [16, 4, 16, 16], floats: randomFloats(16 * 4 * 256, seed: 53))
        let ex = Executor(graph: g)
        let y = try both { try ex.run(["x": x])["y"] }
        same(y.one, y.four, "executor")
    }
}
