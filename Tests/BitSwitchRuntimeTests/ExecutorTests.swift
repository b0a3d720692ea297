import BitSwitchIR
import Testing
@testable import BitSwitchRuntime

struct ExecutorTests {
    /// x[N,1,4,4] -> Conv(3x3, pad 1) -> Relu -> GlobalAveragePool -> Flatten -> Gemm -> y[N,2]; plus bias as an output.
    func smallNet() -> Graph {
        var g = Graph(opsets: ["": 17],
                      inputs: [ValueInfo(name: "x", type: TensorType(.f32, [.symbol("N"), .known(1), .known(4), .known(4)]))],
                      outputs: [ValueInfo(name: "y", type: TensorType(.f32, [.symbol("N"), .known(2)])),
                                ValueInfo(name: "fc_b", type: TensorType(.f32, known: [2])),
                                ValueInfo(name: "x", type: TensorType(.f32, nil))])
        g.setInitializer("w", Tensor(shape: [3, 1, 3, 3], floats: randomFloats(27, seed: 1)))
        g.setInitializer("fc_w", Tensor(shape: [2, 3], floats: [1, 0, -1, 0.5, 0.5, 0.5]))
        g.setInitializer("fc_b", Tensor(shape: [2], floats: [0.25, -0.25]))
        g.nodes = [
            Node(name: "conv", op: .conv(ConvAttrs(pads: [1, 1, 1, 1])), inputs: ["x", "w", ""], outputs: ["c"]),
            Node(name: "relu", op: .relu, inputs: ["c"], outputs: ["r"]),
            Node(name: "gap", op: .globalAveragePool, inputs: ["r"], outputs: ["p"]),
            Node(name: "flat", op: .flatten(axis: 1), inputs: ["p"], outputs: ["f"]),
            Node(name: "fc", op: .gemm(GemmAttrs(transB: true)), inputs: ["f", "fc_w", "fc_b"], outputs: ["y"]),
        ]
        return g
    }

    @Test func runsAndReturnsEveryOutputIncludingInputsAndInitializers() throws {
        let g = smallNet()
        let x = Tensor(shape: [2, 1, 4, 4], floats: randomFloats(32, seed: 2))
        let out = try Executor(graph: g, threads: 1).run(["x": x])
        #expect(Set(out.keys) == ["y", "fc_b", "x"])
        #expect(out["x"] == x)
        #expect(out["fc_b"] == g.initializers["fc_b"])
        // Same result by chaining the kernels by hand.
        let w = try #require(g.initializers["w"])
        var c = try convForward(x: x, w: w, b: nil, attrs: ConvAttrs(pads: [1, 1, 1, 1])).floats
        for i in c.indices { c[i] = max(0, c[i]) }
        let pooled: [Float] = (0..<6).map { k in c[(k * 16)..<(k * 16 + 16)].reduce(0, +) / 16 }
        var want: [Float] = []
        for n in 0..<2 {
            let p0: Float = pooled[n * 3], p1: Float = pooled[n * 3 + 1], p2: Float = pooled[n * 3 + 2]
            want.append(p0 - p2 + 0.25)
            want.append(0.5 * (p0 + p1 + p2) - 0.25)
        }
        let y = try #require(out["y"])
        #expect(y.shape == [2, 2])
        #expect(close(y.floats, want))
    }

    /// Training's estimate: every activation twice, plus the packed input grid the conv keeps for its backward
    /// pass (x [N,1,4,4] with a zero column and row: 25/16 of its bytes), plus three copies of the parameters.
    @Test func trainingEstimateCountsTheKeptConvGrid() {
        let g = smallNet()
        let e = MemoryEstimate.training(g, bindings: ["N": 8])
        // x 8*16, c and r 8*3*16 each, p 8*3, f 8*3, y 8*2 floats; the grid of x 8*25 floats.
        let acts = 4 * (8 * 16 + 2 * 8 * 3 * 16 + 2 * 8 * 3 + 8 * 2)
        #expect(e.activationBytes == 2 * acts + 4 * 8 * 25)
        #expect(e.optimizerBytes == 3 * 4 * (27 + 6 + 2))
    }

    @Test func freesIntermediatesAfterTheirLastReader() {
        let e = Executor(graph: smallNet())
        #expect(e.releaseAfter[1].contains("c"))   // conv output dies at relu
        #expect(e.releaseAfter[2].contains("r"))
        #expect(e.releaseAfter[4].contains("f"))
        #expect(!e.releaseAfter.joined().contains("y"))     // graph outputs stay
        #expect(!e.releaseAfter.joined().contains("fc_b"))
    }

    func message(_ body: () throws -> Void) -> String {
        do { try body(); return "" } catch { return "\(error)" }
    }

    @Test func validatesInputs() {
        let e = Executor(graph: smallNet())
        let ok = Tensor(shape: [2, 1, 4, 4], floats: [Float](repeating: 0, count: 32))
        #expect(message { _ = try e.run([:]) }.contains("missing input 'x'"))
        #expect(message { _ = try e.run(["x": ok, "z": ok]) }.contains("unknown input 'z'"))
        #expect(message { _ = try e.run(["x": Tensor(shape: [2, 3], floats: .init(repeating: 0, count: 6))]) }
                    .contains("input 'x' has shape [2,3] but the model expects [N,1,4,4]"))
        #expect(message { _ = try e.run(["x": Tensor(shape: [2, 1, 4, 5], floats: .init(repeating: 0, count: 40))]) }
                    .contains("[N,1,4,4]"))
        #expect(message { _ = try e.run(["x": Tensor(dtype: .i64, shape: [2, 1, 4, 4], storage: .i64(.init(repeating: 0, count: 32)))]) }
                    .contains("has type i64 but the model expects f32"))
        #expect(message { _ = try e.run(["x": Tensor(shape: [2, 1, 4, 4], floats: [1, 2])]) }.contains("holds 2 elements"))
    }

    @Test func symbolicDimsBindAcrossInputs() throws {
        var g = Graph(inputs: [ValueInfo(name: "a", type: TensorType(.f32, [.symbol("N"), .known(3)])),
                               ValueInfo(name: "b", type: TensorType(.f32, [.symbol("N"), .unknown]))],
                      outputs: [ValueInfo(name: "s", type: TensorType(.f32, nil))])
        g.nodes = [Node(name: "add", op: .add, inputs: ["a", "b"], outputs: ["s"])]
        let e = Executor(graph: g)
        let a = Tensor(shape: [2, 3], floats: [1, 2, 3, 4, 5, 6])
        let s = try #require(try e.run(["a": a, "b": Tensor(shape: [2, 1], floats: [10, 20])])["s"])
        #expect(s.floats == [11, 12, 13, 24, 25, 26])
        let m = message { _ = try e.run(["a": a, "b": Tensor(shape: [3, 3], floats: .init(repeating: 0, count: 9))]) }
        #expect(m.contains("input 'b' has shape [3,3] but the model expects [N,?] with N = 2"))
    }

    @Test func kernelErrorsNameTheNodeAndOp() {
        var g = Graph(inputs: [ValueInfo(name: "d", type: TensorType(.f32, known: [3]))],
                      outputs: [ValueInfo(name: "o", type: TensorType(.f32, nil))])
        g.setInitializer("idx", Tensor(shape: [1], int64s: [5]))
        g.nodes = [Node(name: "pick", op: .gather(axis: 0), inputs: ["d", "idx"], outputs: ["o"])]
        let m = message { _ = try Executor(graph: g).run(["d": Tensor(shape: [3], floats: [1, 2, 3])]) }
        #expect(m.contains("node 'pick'") && m.contains("op Gather") && m.contains("out of range"))
    }

    @Test func hugeOutputsAreRefusedBeforeAllocation() {
        var g = Graph(opsets: ["": 19], inputs: [ValueInfo(name: "d", type: TensorType(.f32, known: [2]))],
                      outputs: [ValueInfo(name: "o", type: TensorType(.f32, nil))])
        g.setInitializer("pads", Tensor(shape: [2], int64s: [0, 1 << 40]))
        g.nodes = [Node(name: "", op: .pad(mode: .constant, pads: nil, value: 0), inputs: ["d", "pads"], outputs: ["o"])]
        let m = message { _ = try Executor(graph: g).run(["d": Tensor(shape: [2], floats: [1, 2])]) }
        #expect(m.contains("node 'o'") && m.contains("op Pad") && m.contains("memory available"))
    }

    /// Quant-dialect ops run on kernels BitSwitchQuant registers. The test process may or may not have registered
    /// them (all test targets share it), so either way the error must name the node and op: an unregistered op
    /// says so; a registered kernel refuses the malformed scales (two bit-widths, one scale).
    @Test func quantDialectOpsFailWithLocatedErrors() {
        let node = Node(name: "fq", op: .fakeQuantAct(FakeQuantActAttrs(bits: [8, 4], signed: false)),
                        inputs: ["x", "s"], outputs: ["y"])
        let m = message { _ = try evaluateNode(node, inputs: [Tensor(scalar: 1), Tensor(scalar: 1)], opsets: [:]) }
        #expect(m.contains("FakeQuantAct"))
        #expect(m.contains("node 'fq'"))
        if TrainingKernelRegistry.kernel(opType: "FakeQuantAct", domain: Op.bitswitchDomain) == nil {
            #expect(m.contains("no kernel registered"))
        }
    }

    @Test func integerDivisionByZeroIsAnError() {
        let node = Node(name: "d", op: .div, inputs: ["a", "b"], outputs: ["y"])
        let a = Tensor(dtype: .i32, shape: [2], storage: .i32([4, 5])), b = Tensor(dtype: .i32, shape: [2], storage: .i32([1, 0]))
        #expect(message { _ = try evaluateNode(node, inputs: [a, b], opsets: ["": 14]) }.contains("division by zero"))
    }
}

struct HostileInputTests {
    @Test func tensorsWhoseStorageDisagreesWithTheirShapeAreRejected() {
        let bad = Tensor(dtype: .f32, shape: [2, 3], storage: .f32([1, 2, 3, 4, 5]))
        let node = Node(name: "r", op: .relu, inputs: ["x"], outputs: ["y"])
        #expect(throws: BitSwitchError.self) { try evaluateNode(node, inputs: [bad], opsets: [:]) }
    }

    @Test func absurdWindowAttributesAreErrorsNotCrashes() {
        let x = Tensor.zeros([1, 1, 4, 4]), w = Tensor.zeros([1, 1, 3, 3])
        #expect(throws: BitSwitchError.self) {
            try convForward(x: x, w: w, b: nil, attrs: ConvAttrs(dilations: [Int.max / 2, 1]))
        }
        #expect(throws: BitSwitchError.self) {
            try maxPoolForward(x: x, attrs: PoolAttrs(kernelShape: [3, 3], strides: [0, 1]))
        }
        #expect(throws: BitSwitchError.self) {
            try convForward(x: x, w: Tensor.zeros([1, 2, 3, 3]), b: nil, attrs: ConvAttrs())
        }
    }

    @Test func paddingAnEmptyTensorHugelyStaysEmpty() throws {
        let node = Node(name: "p", op: .pad(mode: .constant, pads: nil, value: 0), inputs: ["x", "pads"], outputs: ["y"])
        let x = Tensor.zeros([0, 2])
        let y = try evaluateNode(node, inputs: [x, Tensor(shape: [4], int64s: [0, 1 << 40, 0, 1 << 40])], opsets: ["": 19])
        #expect(y[0].count == 0)
    }
}
