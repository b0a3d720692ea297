import BitSwitchIR
import BitSwitchRuntime
import Foundation
import Testing
@testable import BitSwitchQuant

// Kernel tests: forward against hand-computed values, the kernels' plumbing (channel axis, active bit-width,
// scale index, BN row) against the Numerics functions, and SwitchableBatchNorm against finite differences.

private func f(_ shape: [Int], _ v: [Float]) -> Tensor { Tensor(shape: shape, floats: v) }

private func weightNode(bits: [Int] = [8, 6, 4, 2], stored: Int = 8, axis: Int = 0, pinned: Int? = nil,
                        exact: Bool = false) -> Node {
    Node(name: "fqw", op: .fakeQuantWeight(FakeQuantWeightAttrs(bits: bits, storedBits: stored, axis: axis,
                                                                pinnedBits: pinned, exactGradient: exact)),
         inputs: ["w", "s"], outputs: ["wq"])
}

private func actNode(bits: [Int] = [8, 4], signed: Bool, pinned: Int? = nil) -> Node {
    Node(name: "fqa", op: .fakeQuantAct(FakeQuantActAttrs(bits: bits, signed: signed, pinnedBits: pinned)),
         inputs: ["x", "a"], outputs: ["xq"])
}

private func run(_ k: any TrainableOpKernel, _ node: Node, _ inputs: [Tensor?], training: Bool = false,
                 bits: Int? = nil) throws -> (Tensor, Any?, TrainingContext) {
    let ctx = TrainingContext(training: training, activeBits: bits)
    let r = try k.forward(node: node, inputs: inputs, context: ctx)
    return (r.outputs[0], r.saved, ctx)
}

// MARK: FakeQuantWeight

@Test func weightForwardHandComputed() throws {
    // s = 0.25: W/s = 7.6 → q8 = 8; at 4 bits rshr(8, 4) = 1 → Ŵ = 1 · 0.25 · 16 = 4.
    // Channel 1, s = 0.5: W/s = −3 → q8 = −3; at 4 bits rshr(−3, 4) = 0; at 6 bits rshr(−3, 2) = −1 → −1 · 0.5 · 4 = −2.
    let w = f([2, 1], [1.9, -1.5]), s = f([2], [0.25, 0.5])
    let k = FakeQuantWeightKernel()
    #expect(try run(k, weightNode(), [w, s], bits: 8).0.floats == [2.0, -1.5])
    #expect(try run(k, weightNode(), [w, s], bits: 6).0.floats == [2.0, -2.0])
    #expect(try run(k, weightNode(), [w, s], bits: 4).0.floats == [4.0, 0])
    // No active bit-width: the top of the set. Pinned: always the pinned width.
    #expect(try run(k, weightNode(), [w, s]).0.floats == [2.0, -1.5])
    #expect(try run(k, weightNode(pinned: 8), [w, s], bits: 4).0.floats == [2.0, -1.5])
    // 2-bit clamp is −2..1: q8 = 127 → rshr(127, 6) = 2 → 1; q8 = −128 → rshr = −2 stays; q8 = −80 → −1.25 → −1.
    #expect(try run(k, weightNode(), [f([2, 1], [40, -200]), s], bits: 2).0.floats == [1 * 0.25 * 64, -2 * 0.5 * 64])
    #expect(try run(k, weightNode(), [f([2, 1], [40, -40]), s], bits: 2).0.floats == [1 * 0.25 * 64, -1 * 0.5 * 64])
}

@Test func weightChannelAxisOneMatchesTransposedQuantization() throws {
    // A MatMul weight [K, N] has its output channels on axis 1.
    let kDim = 3, n = 2
    let w: [Float] = [0.31, -1.2, 0.07, 0.55, -0.48, 2.1]
    let scales: [Float] = [0.004, 0.02]
    var wt = [Float](repeating: 0, count: 6)
    for i in 0..<kDim { for j in 0..<n { wt[j * kDim + i] = w[i * n + j] } }
    for b in [8, 4, 2] {
        let y = try run(FakeQuantWeightKernel(), weightNode(axis: 1), [f([kDim, n], w), f([n], scales)], bits: b).0.floats
        let ref = try WeightQuantizer(bits: b).forward(weight: wt, scales: scales).output
        for i in 0..<kDim { for j in 0..<n { #expect(y[i * n + j] == ref[j * kDim + i]) } }
    }
}

@Test(arguments: [0, 1])
func storedInt8WeightsGiveTheSameOutputBitForBit(axis: Int) throws {
    var rng = SystemRandomNumberGenerator()
    let shape = axis == 0 ? [4, 3, 2, 2] : [12, 4]
    let w = (0..<48).map { _ in Float.random(in: -1...1, using: &rng) }
    let s: [Float] = [0.006, 0.011, 0.0045, 0.008]
    let layout = try ChannelLayout(shape: shape, axis: axis, channels: 4)
    let qh = layout.fromChannelMajor(WeightQuantizer.stored(weight: layout.toChannelMajor(w), scales: s, storedBits: 8)
        .map(Float.init)).map { Int8($0) }
    let stored = Tensor(dtype: .i8, shape: shape, storage: .i8(qh))
    for bits in [nil, 8, 6, 4, 2] {
        let a = try run(FakeQuantWeightKernel(), weightNode(axis: axis), [f(shape, w), f([4], s)], bits: bits).0
        let b = try run(FakeQuantWeightKernel(), weightNode(axis: axis), [stored, f([4], s)], bits: bits).0
        #expect(a.floats.map(\.bitPattern) == b.floats.map(\.bitPattern))
    }
}

@Test func weightErrors() throws {
    let w = f([2, 1], [1, 2]), s = f([2], [0.1, 0.1])
    #expect(throws: BitSwitchError.self) { try run(FakeQuantWeightKernel(), weightNode(), [w, s], bits: 5) }
    #expect(throws: BitSwitchError.self) { try run(FakeQuantWeightKernel(), weightNode(), [w, f([3], [1, 1, 1])]) }
    let stored = Tensor(dtype: .i8, shape: [2, 1], storage: .i8([3, 4]))
    let e = #expect(throws: BitSwitchError.self) {
        try run(FakeQuantWeightKernel(), weightNode(), [stored, s], training: true, bits: 8)
    }
    #expect(e?.message.contains("cannot be trained further") == true)
}

@Test(arguments: [false, true])
func weightBackwardIsTheNumericsGradient(exact: Bool) throws {
    let shape = [3, 2]  // axis 1: channels of 3 elements each, interleaved in memory
    let w: [Float] = [0.3, -0.9, 1.7, 0.05, -0.2, 0.61]
    let s: [Float] = [0.01, 0.03]
    let go: [Float] = [1, -2, 0.5, 3, -1, 0.25]
    let node = weightNode(axis: 1, exact: exact)
    let ctx = TrainingContext(training: true, activeBits: 4)
    let k = FakeQuantWeightKernel()
    let fw = try k.forward(node: node, inputs: [f(shape, w), f([2], s)], context: ctx)
    let g = try k.backward(node: node, inputs: [f(shape, w), f([2], s)], outputs: fw.outputs, saved: fw.saved,
                           gradOutputs: [f(shape, go)], needsGradient: [true, true], context: ctx)
    let q = try WeightQuantizer(bits: 4, gradientForm: exact ? .exact : .reference)
    let ref = q.backward(weight: [0.3, 1.7, -0.2, -0.9, 0.05, 0.61], scales: s, gradOutput: [1, 0.5, -1, -2, 3, 0.25])
    #expect(try #require(g[0]).floats == [ref.gradWeight[0], ref.gradWeight[3], ref.gradWeight[1],
                                         ref.gradWeight[4], ref.gradWeight[2], ref.gradWeight[5]])
    #expect(try #require(g[1]).floats == ref.gradScales)
    // The exact form is the reference form times 2^Δ (Δ = 4 here).
    if exact {
        let r = try WeightQuantizer(bits: 4).backward(weight: [0.3, 1.7, -0.2, -0.9, 0.05, 0.61], scales: s,
                                                      gradOutput: [1, 0.5, -1, -2, 3, 0.25])
        #expect(try #require(g[1]).floats == r.gradScales.map { $0 * 16 })
    }
}

// MARK: FakeQuantAct

@Test func activationForwardHandComputed() throws {
    // Unsigned 4-bit, a = 0.5: x/a = 2.5 → 2 (half even), 3.5 → 4, −1 → 0, 40 → 15.
    let x = f([4], [1.25, 1.75, -0.5, 20])
    let a = f([2], [0.1, 0.5])
    #expect(try run(FakeQuantActKernel(), actNode(signed: false), [x, a], bits: 4).0.floats == [1.0, 2.0, 0, 7.5])
    // Signed 4-bit: −0.5/0.5 = −1 stays, 20 → 7.
    #expect(try run(FakeQuantActKernel(), actNode(signed: true), [x, a], bits: 4).0.floats == [1.0, 2.0, -0.5, 3.5])
    // Profile 8 uses scales[0] = 0.1 at 8 bits: 1.25/0.1 = 12.5 → 12; 20/0.1 = 200 → 127 (signed).
    let y8 = try run(FakeQuantActKernel(), actNode(signed: true), [x, a], bits: 8).0.floats
    #expect(y8 == [12, 18, -5, 127].map { Float($0) * 0.1 })
    // Pinned at 8 bits in profile 4: scales[1] (the profile's scale), quantized at 8 bits.
    let yp = try run(FakeQuantActKernel(), actNode(signed: false, pinned: 8), [x, a], bits: 4).0.floats
    #expect(yp == [1.0, 2.0, 0, 20])
}

@Test func activationScaleIsInitialisedLazilyInTraining() throws {
    let xs: [Float] = (0..<1000).map { Float($0) / 100 }
    let x = f([10, 100], xs)
    let a = f([2], [0.05, 0])
    let node = actNode(signed: false)
    let (y, _, ctx) = try run(FakeQuantActKernel(), node, [x, a], training: true, bits: 4)
    let expected = try #require(try ActivationQuantizer(bits: 4, signed: false).initialScale(sample: xs))
    let update = try #require(ctx.stateUpdates["a"])
    #expect(update.floats == [0.05, expected])
    #expect(y.floats == (try ActivationQuantizer(bits: 4, signed: false)).forward(input: xs, scale: expected))
    // An initialised scale is left alone.
    let (_, _, ctx8) = try run(FakeQuantActKernel(), node, [x, a], training: true, bits: 8)
    #expect(ctx8.stateUpdates.isEmpty)
    // Evaluation cannot invent a scale.
    let e = #expect(throws: BitSwitchError.self) { try run(FakeQuantActKernel(), node, [x, a], bits: 4) }
    #expect(e?.message.contains("not initialised") == true)
    // An all-zero batch carries no range: no update, output zeros.
    let (z, _, ctxZ) = try run(FakeQuantActKernel(), node, [f([4], [0, 0, 0, 0]), a], training: true, bits: 4)
    #expect(ctxZ.stateUpdates.isEmpty && z.floats == [0, 0, 0, 0])
}

@Test func activationBackwardFillsOnlyTheActiveScale() throws {
    let xs: [Float] = [0.3, -1.4, 2.2, 0.75, 5, -0.1]
    let go: [Float] = [1, 2, -1, 0.5, 1, 3]
    let node = actNode(bits: [8, 6, 4], signed: true)
    let inputs = [f([6], xs), f([3], [0.02, 0.1, 0.4])]
    let ctx = TrainingContext(training: true, activeBits: 6)
    let k = FakeQuantActKernel()
    let fw = try k.forward(node: node, inputs: inputs, context: ctx)
    let g = try k.backward(node: node, inputs: inputs, outputs: fw.outputs, saved: fw.saved,
                           gradOutputs: [f([6], go)], needsGradient: [true, true], context: ctx)
    let ref = try ActivationQuantizer(bits: 6, signed: true).backward(input: xs, scale: 0.1, gradOutput: go)
    #expect(try #require(g[0]).floats == ref.gradInput)
    #expect(try #require(g[1]).floats == [0, ref.gradScale, 0])
}

// MARK: SwitchableBatchNorm

private let bnNode = Node(name: "sbn", op: .switchableBatchNorm(bits: [8, 4], epsilon: 1e-5, momentum: 0.9),
                          inputs: ["x", "scale", "bias", "mean", "var"], outputs: ["y"])

private func bnInputs(_ x: [Float]) -> [Tensor?] {
    [f([3, 2, 2], x), f([2, 2], [1, 2, 1.5, 0.5]), f([2, 2], [0, 1, -1, 0.25]),
     f([2, 2], [0.1, 0.2, 0.3, 0.4]), f([2, 2], [1, 2, 3, 4])]
}

private let bnX: [Float] = [0.3, -1.2, 0.8, 2.0, 1.1, 0.4, -0.6, 0.9, 1.7, -0.3, 0.2, 1.4]

@Test func switchableBatchNormMatchesBatchNormOnItsRow() throws {
    for training in [true, false] {
        let (y, _, ctx) = try run(SwitchableBatchNormKernel(), bnNode, bnInputs(bnX), training: training, bits: 4)
        let ref = try BatchNormMath.forward(x: bnX, shape: [3, 2, 2], scale: [1.5, 0.5], bias: [-1, 0.25],
                                            runningMean: [0.3, 0.4], runningVar: [3, 4], epsilon: 1e-5,
                                            momentum: 0.9, training: training)
        #expect(y.floats == ref.y)
        if training {
            let (m, v) = try #require(ref.newRunning)
            // Only row 1 (profile 4) moves.
            #expect(try #require(ctx.stateUpdates["mean"]).floats == [0.1, 0.2] + m)
            #expect(try #require(ctx.stateUpdates["var"]).floats == [1, 2] + v)
        } else {
            #expect(ctx.stateUpdates.isEmpty)
        }
    }
    #expect(throws: BitSwitchError.self) { try run(SwitchableBatchNormKernel(), bnNode, bnInputs(bnX), bits: 6) }
}

/// Loss = Σ y · r for fixed r; the gradient of x, scale and bias against central differences in Double-ish precision.
@Test(arguments: [true, false])
func switchableBatchNormGradientsMatchFiniteDifferences(training: Bool) throws {
    let r: [Float] = [0.7, -0.2, 1.3, 0.4, -1.1, 0.9, 0.25, -0.6, 0.8, 1.5, -0.4, 0.3]
    let k = SwitchableBatchNormKernel()
    func loss(_ inputs: [Tensor?]) throws -> Double {
        let y = try run(k, bnNode, inputs, training: training, bits: 4).0.floats
        return zip(y, r).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    }
    let inputs = bnInputs(bnX)
    let ctx = TrainingContext(training: training, activeBits: 4)
    let fw = try k.forward(node: bnNode, inputs: inputs, context: ctx)
    let g = try k.backward(node: bnNode, inputs: inputs, outputs: fw.outputs, saved: fw.saved,
                           gradOutputs: [f([3, 2, 2], r)], needsGradient: [true, true, true, false, false], context: ctx)
    for input in 0..<3 {
        let analytic = try #require(g[input]).floats
        let base = try #require(inputs[input]).floats
        for i in 0..<base.count {
            let h: Float = 1e-2
            var plus = inputs, minus = inputs
            var p = base, m = base
            p[i] += h; m[i] -= h
            plus[input] = f(inputs[input]!.shape, p); minus[input] = f(inputs[input]!.shape, m)
            let numeric = (try loss(plus) - loss(minus)) / Double(2 * h)
            #expect(abs(numeric - Double(analytic[i])) < 2e-3 * max(1, abs(numeric)), "input \(input) element \(i)")
        }
        if input > 0 { #expect(analytic[0] == 0 && analytic[1] == 0, "row 0 gets no gradient") }
    }
}

// MARK: SwitchableLayerNorm

private let lnNode = Node(name: "sln", op: .switchableLayerNorm(bits: [8, 4], axis: -1, epsilon: 1e-5),
                          inputs: ["x", "scale", "bias"], outputs: ["y"])

private func lnInputs(_ x: [Float]) -> [Tensor?] {
    [f([2, 2, 3], x), f([2, 3], [1, 2, 1.5, 0.5, -1.25, 2]), f([2, 3], [0, 1, -1, 0.25, 0.5, -0.75])]
}

@Test func switchableLayerNormMatchesLayerNormOnItsRow() throws {
    for bits in [8, 4] {
        let (y, _, _) = try run(SwitchableLayerNormKernel(), lnNode, lnInputs(bnX), training: true, bits: bits)
        let row = bits == 8 ? 0 : 1
        let scale = Array(lnInputs(bnX)[1]!.floats[(3 * row)..<(3 * row + 3)])
        let bias = Array(lnInputs(bnX)[2]!.floats[(3 * row)..<(3 * row + 3)])
        var plain = Graph(name: "ln", inputs: [ValueInfo(name: "x", type: TensorType(.f32, known: [2, 2, 3]))],
                          outputs: [ValueInfo(name: "y", type: TensorType(.f32, known: [2, 2, 3]))],
                          nodes: [Node(name: "ln", op: .layerNormalization(axis: -1, epsilon: 1e-5),
                                       inputs: ["x", "s", "b"], outputs: ["y"])])
        plain.setInitializer("s", f([3], scale))
        plain.setInitializer("b", f([3], bias))
        let ref = try Executor(graph: plain).run(["x": f([2, 2, 3], bnX)])["y"]!
        #expect(y.floats == ref.floats, "bits \(bits)")
    }
    #expect(throws: BitSwitchError.self) { try run(SwitchableLayerNormKernel(), lnNode, lnInputs(bnX), bits: 6) }
}

/// Loss = Σ y · r for fixed r; x, scale and bias against central differences; the inactive row gets no gradient.
@Test(arguments: [8, 4])
func switchableLayerNormGradientsMatchFiniteDifferences(bits: Int) throws {
    let r: [Float] = [0.7, -0.2, 1.3, 0.4, -1.1, 0.9, 0.25, -0.6, 0.8, 1.5, -0.4, 0.3]
    let k = SwitchableLayerNormKernel()
    func loss(_ inputs: [Tensor?]) throws -> Double {
        let y = try run(k, lnNode, inputs, training: true, bits: bits).0.floats
        return zip(y, r).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    }
    let inputs = lnInputs(bnX)
    let ctx = TrainingContext(training: true, activeBits: bits)
    let fw = try k.forward(node: lnNode, inputs: inputs, context: ctx)
    let g = try k.backward(node: lnNode, inputs: inputs, outputs: fw.outputs, saved: fw.saved,
                           gradOutputs: [f([2, 2, 3], r)], needsGradient: [true, true, true], context: ctx)
    let inactive = bits == 8 ? 3..<6 : 0..<3
    for input in 0..<3 {
        let analytic = try #require(g[input]).floats
        let base = try #require(inputs[input]).floats
        for i in 0..<base.count {
            let h: Float = 1e-2
            var plus = inputs, minus = inputs
            var p = base, m = base
            p[i] += h; m[i] -= h
            plus[input] = f(inputs[input]!.shape, p); minus[input] = f(inputs[input]!.shape, m)
            let numeric = (try loss(plus) - loss(minus)) / Double(2 * h)
            #expect(abs(numeric - Double(analytic[i])) < 2e-3 * max(1, abs(numeric)), "input \(input) element \(i)")
        }
        if input > 0 { #expect(inactive.allSatisfy { analytic[$0] == 0 }, "the inactive row gets no gradient") }
    }
}

// MARK: Registry, training graph, executor

private func tinyQuantGraph(storedInt8: Bool = false) -> Graph {
    let bits = [8, 4]
    var g = Graph(name: "tiny", opsets: ["": 17, Op.bitswitchDomain: 1],
                  inputs: [ValueInfo(name: "x", type: TensorType(.f32, [.symbol("N"), .known(3)]))],
                  outputs: [ValueInfo(name: "y", type: TensorType(.f32, [.symbol("N"), .known(2)]))])
    let w: [Float] = [0.5, -0.25, 0.75, 0.1, 0.9, -0.6]
    let s: [Float] = [0.01, 0.008]
    if storedInt8 {
        g.setInitializer("w", Tensor(dtype: .i8, shape: [2, 3],
                                     storage: .i8(WeightQuantizer.stored(weight: w, scales: s, storedBits: 8))))
    } else {
        g.setInitializer("w", f([2, 3], w))
    }
    g.setInitializer("w.scale", f([2], s))
    g.setInitializer("x.act_scales", f([2], [0.02, 0.3]))
    g.nodes = [
        Node(name: "qx", op: .fakeQuantAct(FakeQuantActAttrs(bits: bits, signed: true)), inputs: ["x", "x.act_scales"], outputs: ["xq"]),
        Node(name: "qw", op: .fakeQuantWeight(FakeQuantWeightAttrs(bits: bits)), inputs: ["w", "w.scale"], outputs: ["wq"]),
        Node(name: "fc", op: .gemm(GemmAttrs(transB: true)), inputs: ["xq", "wq"], outputs: ["y"]),
    ]
    return g
}

@Test func registerKernelsIsIdempotentAndExecutorRunsEveryBitWidth() throws {
    registerKernels()
    registerKernels()
    #expect(TrainingKernelRegistry.kernel(opType: "SwitchableBatchNorm", domain: Op.bitswitchDomain) != nil)
    let x = f([1, 3], [1, -0.5, 0.25])
    let float = tinyQuantGraph(), stored = tinyQuantGraph(storedInt8: true)
    var seen: Set<[Float]> = []
    for bits in [8, 4] {
        let a = try Executor(graph: float, activeBits: bits).run(["x": x])["y"]!.floats
        let b = try Executor(graph: stored, activeBits: bits).run(["x": x])["y"]!.floats
        #expect(a == b)
        seen.insert(a)
    }
    #expect(seen.count == 2, "the bit-widths give different outputs")
    #expect(try Executor(graph: float).run(["x": x])["y"]!.floats == Executor(graph: float, activeBits: 8).run(["x": x])["y"]!.floats)
    let e = #expect(throws: BitSwitchError.self) { try Executor(graph: float, activeBits: 6).run(["x": x]) }
    #expect(e?.node == "qx")
}

@Test func trainingGraphGivesQuantParametersTheirRoles() throws {
    registerKernels()
    let tg = try TrainingGraph(graph: tinyQuantGraph())
    let roles = Dictionary(uniqueKeysWithValues: tg.parameters.map { ($0.name, $0.role) })
    #expect(roles == ["w": .weight, "w.scale": .quantScale, "x.act_scales": .quantScale])
    let ctx = TrainingContext(training: true, activeBits: 4)
    let pass = try tg.forward(feeds: ["x": f([2, 3], [1, -0.5, 0.25, 0.3, 0.2, -0.9])], context: ctx)
    let grads = try tg.backward(pass, seeds: ["y": f([2, 2], [1, -1, 0.5, 2])], context: ctx)
    #expect(Set(grads.keys) == ["w", "w.scale", "x.act_scales"])
    #expect(grads["x.act_scales"]!.floats[0] == 0)
    // A stored model refuses to train, with a message that says why.
    let stored = try TrainingGraph(graph: tinyQuantGraph(storedInt8: true))
    #expect(throws: BitSwitchError.self) {
        try stored.forward(feeds: ["x": f([1, 3], [1, 2, 3])], context: TrainingContext(training: true, activeBits: 8))
    }
}
