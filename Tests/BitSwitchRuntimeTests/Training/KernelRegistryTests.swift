import Testing
import BitSwitchIR
@testable import BitSwitchRuntime

/// A stand-in for a quant-dialect kernel: y = x · s[index of the active bit-width], and a state input that counts
/// forward passes in training mode. Shows what a plug-in receives and can do.
struct ScaleByActiveBitsKernel: TrainableOpKernel {
    func parameterRoles(node: Node) -> [Int: ParameterRole] { [1: .quantScale, 2: .state] }

    func row(_ node: Node, _ context: TrainingContext) throws -> Int {
        guard case .fakeQuantAct(let a) = node.op, let bits = context.activeBits, let i = a.bits.firstIndex(of: bits) else {
            throw BitSwitchError(.training, "no active bit-width")
        }
        return i
    }

    func forward(node: Node, inputs: [Tensor?], context: TrainingContext) throws -> (outputs: [Tensor], saved: Any?) {
        let x = inputs[0]!.floats, s = inputs[1]!.floats, i = try row(node, context)
        if context.training { context.updateState(node.inputs[2], Tensor(shape: [1], floats: [inputs[2]!.floats[0] + 1])) }
        return ([Tensor(shape: inputs[0]!.shape, floats: x.map { $0 * s[i] })], i)
    }

    func backward(node: Node, inputs: [Tensor?], outputs: [Tensor], saved: Any?, gradOutputs: [Tensor?],
                  needsGradient: [Bool], context: TrainingContext) throws -> [Tensor?] {
        let g = gradOutputs[0]!.floats, x = inputs[0]!.floats, s = inputs[1]!.floats
        let i = saved as! Int
        var ds = [Float](repeating: 0, count: s.count)
        ds[i] = zip(g, x).reduce(0) { $0 + $1.0 * $1.1 }
        return [needsGradient[0] ? Tensor(shape: inputs[0]!.shape, floats: g.map { $0 * s[i] }) : nil,
                Tensor(shape: [s.count], floats: ds), nil]
    }
}

@Suite struct KernelRegistryTests {
    @Test func pluginKernelGetsBitsRolesGradientsAndState() throws {
        // Per graph, not through the process-wide registry: the real quant kernels may be registered in this
        // process (all test targets share it) and must stay in place for the other tests.
        let kernels: [String: any TrainableOpKernel] = ["\(Op.bitswitchDomain)::FakeQuantAct": ScaleByActiveBitsKernel()]
        let x = Tensor(shape: [2, 3], floats: [1, 2, 3, 4, 5, 6])
        var g = singleNodeGraph(.fakeQuantAct(FakeQuantActAttrs(bits: [8, 4], signed: true)), inputs: [("x", x)],
                                initializers: [("s", Tensor(shape: [2], floats: [0.5, 2])), ("count", Tensor(shape: [1], floats: [0]))],
                                outputs: ["q"])
        g.setInitializer("w", Tensor(shape: [3, 2], floats: [1, 0, 0, 1, 1, 1]))
        g.nodes.append(Node(name: "mm", op: .matMul, inputs: ["q", "w"], outputs: ["y"]))
        g.outputs = [ValueInfo(name: "y", type: TensorType(.f32, nil))]

        let tg = try TrainingGraph(graph: g, kernelOverrides: kernels)
        #expect(tg.parameters.map(\.name) == ["s", "w"])
        #expect(tg.parameters.map(\.role) == [.quantScale, .weight])
        #expect(tg.stateNames == ["count"])
        #expect(tg.defaultGroups(weightDecay: 0.1).map(\.parameters) == [["w"], ["s"]])

        let ctx = TrainingContext(training: true, activeBits: 4)
        let pass = try tg.forward(feeds: ["x": x], context: ctx)
        #expect(pass.value("q")?.floats == x.floats.map { $0 * 2 })
        #expect(tg.values["count"]?.floats == [1])
        let grads = try tg.backward(pass, seeds: ["y": Tensor(shape: [2, 2], floats: [1, 1, 1, 1])], context: ctx)
        // dL/dq = [1+0+1, 0+1+1] per row → [1, 1, 2]; ds[4 bits] = Σ dq·x
        #expect(grads["s"]?.floats == [0, 30])   // 1·1 + 1·2 + 2·3 + 1·4 + 1·5 + 2·6
        #expect(grads["w"] != nil)
        #expect(grads["count"] == nil)

        // Evaluation at 8 bits uses the other row and leaves the state alone.
        let e = try tg.forward(feeds: ["x": x], context: TrainingContext(training: false, activeBits: 8))
        #expect(e.value("q")?.floats == x.floats.map { $0 * 0.5 })
        #expect(tg.values["count"]?.floats == [1])
        try checkGradients(g, feeds: ["x": x], wrt: ["x", "s", "w"], training: false, output: "y", activeBits: 4,
                           kernels: kernels)
    }

    @Test func opWithoutGradientOnThePathIsRefused() throws {
        // Pad has no training kernel and sits between the weight and the output.
        let x = Tensor(shape: [2, 3], floats: [1, 2, 3, 4, 5, 6])
        var g = singleNodeGraph(.matMul, inputs: [("x", x)], initializers: [("w", Tensor(shape: [3, 2], floats: [1, 0, 0, 1, 1, 1]))],
                                outputs: ["m"])
        g.nodes.append(Node(name: "pad", op: .pad(mode: .constant, pads: [0, 1, 0, 1], value: 0), inputs: ["m"], outputs: ["y"]))
        g.outputs = [ValueInfo(name: "y", type: TensorType(.f32, nil))]
        #expect { try TrainingGraph(graph: g) } throws: { e in
            (e as? BitSwitchError)?.node == "pad" && (e as? BitSwitchError)?.kind == .unsupported
        }
        // Evaluation only: allowed, and the runtime's executor runs the op.
        let tg = try TrainingGraph(graph: g, requireGradients: false)
        let y = try tg.forward(feeds: ["x": x], context: TrainingContext(training: false)).value("y")
        #expect(y?.shape == [2, 4])
        #expect(y?.floats == [0, 4, 5, 0, 0, 10, 11, 0])
    }
}
