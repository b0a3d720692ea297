import BitSwitchData
import BitSwitchIR
import BitSwitchRuntime
import Foundation
import Testing
@testable import BitSwitchQuant

// Transitional BN (METHOD.md §3/§5): the BN after a switchable layer with one row per (previous layer's bits, own
// bits) pair. Fixture: the joint-training classifier with a second switchable conv, so conv3's previous layer
// (conv2) switches: FQA(pinned) → conv1 (pinned) → bn1 → ReLU → FQA a1 → conv2 → bn2 → ReLU → FQA a3 → conv3 → bn3 →
// ReLU → GAP → Flatten → FQA(pinned) → fc (pinned).

func twoSwitchClassifier(bits: [Int] = [8, 6, 4, 2]) -> Graph {
    var g = quantizedClassifier(bits: bits)
    var rng = JointRandom(11)
    let nb = bits.count
    let w = rng.uniform(6 * 6 * 9, -0.3, 0.3)
    g.setInitializer("conv3.w", Tensor(shape: [6, 6, 3, 3], floats: w))
    g.setInitializer("conv3.w.s", Tensor(shape: [6], floats: WeightQuantizer.initialScales(weight: w, channels: 6, storedBits: 8)))
    g.setInitializer("bn3.scale", Tensor(shape: [nb, 6], floats: .init(repeating: 1, count: nb * 6)))
    g.setInitializer("bn3.bias", Tensor(shape: [nb, 6], floats: .init(repeating: 0, count: nb * 6)))
    g.setInitializer("bn3.mean", Tensor(shape: [nb, 6], floats: .init(repeating: 0, count: nb * 6)))
    g.setInitializer("bn3.var", Tensor(shape: [nb, 6], floats: .init(repeating: 1, count: nb * 6)))
    g.setInitializer("a3", Tensor(shape: [nb], floats: .init(repeating: 0, count: nb)))
    let gap = g.nodes.firstIndex { $0.name == "gap" }!
    g.nodes[gap].inputs = ["r3"]
    g.nodes.insert(contentsOf: [
        Node(name: "a3.q", op: .fakeQuantAct(FakeQuantActAttrs(bits: bits, signed: false)), inputs: ["r2", "a3"],
             outputs: ["r2.hat"]),
        Node(name: "conv3.w.q", op: .fakeQuantWeight(FakeQuantWeightAttrs(bits: bits)), inputs: ["conv3.w", "conv3.w.s"],
             outputs: ["conv3.w.hat"]),
        Node(name: "conv3", op: .conv(ConvAttrs(pads: [1, 1, 1, 1])), inputs: ["r2.hat", "conv3.w.hat"], outputs: ["c3"]),
        Node(name: "bn3", op: .switchableBatchNorm(bits: bits, epsilon: 1e-5, momentum: 0.9),
             inputs: ["c3", "bn3.scale", "bn3.bias", "bn3.mean", "bn3.var"], outputs: ["b3"]),
        Node(name: "relu3", op: .relu, inputs: ["b3"], outputs: ["r3"]),
    ], at: gap)
    return g
}

private func testInput() -> Tensor {
    Tensor(shape: [barSplits.test.count] + barSplits.test.sampleShape, floats: barSplits.test.x)
}

private func logits(_ g: Graph, _ a: BitAssignment) throws -> [Float] {
    try #require(try Executor(graph: g, assignment: a).run(["x": testInput()])["logits"]).floats
}

/// Uniform profiles and two mixed ones (conv2 and conv3 apart, both ways).
private func profiles() -> [(String, Profile)] {
    [8, 6, 4, 2].map { ("uniform \($0)", Profile.uniform($0)) } + [
        ("conv2=2 conv3=6", Profile(layers: ["conv2": LayerBits(w: 2, a: 2), "conv3": LayerBits(w: 6, a: 6)], defaultBits: 8)),
        ("conv2=8 conv3=4", Profile(layers: ["conv2": LayerBits(w: 8, a: 8), "conv3": LayerBits(w: 4, a: 4)], defaultBits: 2)),
    ]
}

private func hasbTrained(_ g: Graph, sigma: Double, epochs: Int = 1, observe: ((JointStepEvent) -> Void)? = nil) throws -> (JointTrainer, HASBSampler) {
    var s = try HASBSampler(bits: [8, 6, 4, 2], layers: ["conv2", "conv3"], traces: [1.0, 2.0], epochs: epochs, seed: 3)
    s.sigma = sigma
    let t = try JointTrainer(graph: g, training: jointOptions(epochs: epochs), joint: try JointTrainingOptions(bits: [8, 6, 4, 2]),
                             hasb: s, progress: ProgressReporter(style: .silent))
    t.stepObserver = observe
    try t.fit(barSplits)
    return (t, s)
}

@Suite(.serialized) struct TransitionalBNTests {
    init() { registerKernels() }

    /// The previous layer of each layer, which BNs expand (only bn3: bn2's previous layer, conv1, is pinned), the
    /// [16, C] layout starting from the own-bits rows, and a model that computes what it computed before.
    @Test func expandsTheBNAfterASwitchingPreviousLayer() throws {
        let g = try jointlyTrained(twoSwitchClassifier())
        #expect(previousQuantizedLayers(g) == ["conv2": "conv1", "conv3": "conv2", "fc": "conv3"])
        let (t, changed) = try makeTransitionalBatchNorms(g)
        #expect(changed == [TransitionalBatchNorm(node: "bn3", layer: "conv3", previousLayer: "conv2")])
        let bn3 = try #require(t.nodes.first { $0.name == "bn3" })
        #expect(bn3.op == .switchableBatchNorm(bits: [8, 6, 4, 2], epsilon: 1e-5, momentum: 0.9, previous: "conv2.w.q"))
        for p in ["bn3.scale", "bn3.bias", "bn3.mean", "bn3.var"] {
            let old = try #require(g.initializers[p]), new = try #require(t.initializers[p])
            #expect(new.shape == [16, 6])
            for prev in 0..<4 { #expect(Array(new.floats[(prev * 24)..<((prev + 1) * 24)]) == old.floats) }
        }
        #expect(t.initializers["bn2.scale"] == g.initializers["bn2.scale"])
        try verify(t)
        for (name, p) in profiles() {
            #expect(try logits(t, p.resolve(in: t)) == logits(g, p.resolve(in: g)), "\(name)")
        }
        // Idempotent: a transitional BN is left alone.
        let (again, none) = try makeTransitionalBatchNorms(t)
        #expect(none.isEmpty && again == t)
    }

    /// The op and its attribute survive the IR text form (ONNX: BitSwitchONNXTests); a `previous` that names no
    /// FakeQuantWeight, or parameters of the wrong height, fail verification naming the node.
    @Test func roundTripsThroughTextAndONNXAndVerifies() throws {
        let (t, _) = try makeTransitionalBatchNorms(twoSwitchClassifier())
        let text = printGraph(t)
        #expect(text.contains("previous = \"conv2.w.q\""))
        let back = try parseGraph(text)
        #expect(printGraph(back) == text && back.nodes == t.nodes)
        var bad = t
        let k = bad.nodes.firstIndex { $0.name == "bn3" }!
        bad.nodes[k].op = .switchableBatchNorm(bits: [8, 6, 4, 2], epsilon: 1e-5, momentum: 0.9, previous: "conv2")
        #expect { try verify(bad) } throws: { "\($0)".contains("bn3") && "\($0)".contains("FakeQuantWeight") }
        bad.nodes[k].op = .switchableBatchNorm(bits: [8, 6, 4, 2], epsilon: 1e-5, momentum: 0.9, previous: "conv1.w.q")
        #expect { try verify(bad) } throws: { "\($0)".contains("pinned") }
        bad.nodes[k].op = .switchableBatchNorm(bits: [8, 6, 4, 2], epsilon: 1e-5, momentum: 0.9)
        #expect { try verify(bad) } throws: { "\($0)".contains("bn3.scale") && "\($0)".contains("[4, C]") }
    }

    /// The row a profile picks, by hand: conv2 at 2 bits (index 3), conv3 at 6 (index 1) → row 3·4 + 1 = 13. Every
    /// reader agrees: the training/eval kernel, `fold-scales` (specialize) and `lower-int`; `--bits b` picks (b, b).
    @Test func theRowOfAProfileByHand() throws {
        let (t0, _) = try makeTransitionalBatchNorms(try jointlyTrained(twoSwitchClassifier()))
        // Make every row distinct: row r's bias is r/10 per channel, its scale 1 + r/20.
        var t = t0
        t.setInitializer("bn3.bias", Tensor(shape: [16, 6], floats: (0..<96).map { Float($0 / 6) / 10 }))
        t.setInitializer("bn3.scale", Tensor(shape: [16, 6], floats: (0..<96).map { 1 + Float($0 / 6) / 20 }))
        let p = Profile(layers: ["conv2": LayerBits(w: 2, a: 2), "conv3": LayerBits(w: 6, a: 6)], defaultBits: 8)
        let a = try p.resolve(in: t)
        let r = try a.batchNormRow(node: "bn3", bits: [8, 6, 4, 2], previous: "conv2.w.q")
        #expect(r.bits == 6 && r.previous == 2 && r.row == 13)
        // The same model with one row per bit-width whose 6-bit row is row 13.
        func plain(_ row: Int, own: Int) -> Graph {
            var g = t
            let k = g.nodes.firstIndex { $0.name == "bn3" }!
            g.nodes[k].op = .switchableBatchNorm(bits: [8, 6, 4, 2], epsilon: 1e-5, momentum: 0.9)
            for name in ["bn3.scale", "bn3.bias", "bn3.mean", "bn3.var"] {
                var f = Array(t.initializers[name]!.floats[0..<24])
                f.replaceSubrange((own * 6)..<((own + 1) * 6), with: t.initializers[name]!.floats[(row * 6)..<((row + 1) * 6)])
                g.setInitializer(name, Tensor(shape: [4, 6], floats: f))
            }
            return g
        }
        #expect(try logits(t, a) == logits(plain(13, own: 1), try p.resolve(in: plain(13, own: 1))))
        let spec = try specialize(t, assignment: a)
        let bn = try #require(spec.nodes.first { $0.name == "bn3" })
        #expect(spec.initializers[bn.inputs[2]]?.floats == Array(repeating: 1.3, count: 6))
        #expect(try logits(spec, BitAssignment()) == logits(t, a))
        // Uniform b: the diagonal row (b, b) = index·5.
        for (i, b) in [8, 6, 4, 2].enumerated() {
            let u = BitAssignment.uniform(b)
            #expect(try u.batchNormRow(node: "bn3", bits: [8, 6, 4, 2], previous: "conv2.w.q").row == 5 * i)
            #expect(try logits(t, u) == logits(plain(5 * i, own: i), u))
        }
        // lower-int takes the same row: the integer model follows the fake-quant one, and bn3's folded parameters
        // depend on conv2's bits too (per-layer switching needs a variant for each pair).
        let lowered = try lowerToIntegers(t, assignment: a)
        let fq = try logits(t, a), iq = try #require(try Executor(graph: lowered).run(["x": testInput()])["logits"]).floats
        let range = (fq.max() ?? 0) - (fq.min() ?? 0)
        #expect((zip(fq, iq).map { abs($0 - $1) }.max() ?? 0) < 0.05 * range + 1e-3)
        let sites = try #require(JSONSerialization.jsonObject(with: Data(lowered.metadata[LoweringMetadata.sites]!.utf8)) as? [String: [String]])
        #expect(sites.values.contains { Set($0).isSuperset(of: ["conv3:w", "conv2:w"]) })
    }

    /// store-int8 (INT8 weights) and reloading the stored model from its text form give identical outputs at every
    /// profile (the ONNX round trip of the same op and tensors: BitSwitchONNXTests; of a trained file: CLITests), and
    /// `unstoreQuantized` (what HASB and `--recalibrate-bn` start from) brings back the same outputs too.
    @Test func storeAndReloadGiveIdenticalOutputs() throws {
        let (trained, _) = try hasbTrained(try makeTransitionalBatchNorms(twoSwitchClassifier()).0, sigma: 0.5)
        let g = trained.trainedGraph()
        let stored = try storeQuantized(g)
        let back = try parseGraph(printGraph(stored))
        #expect(back.nodes.contains { if case .switchableBatchNorm(_, _, _, .some("conv2.w.q")) = $0.op { return true }; return false })
        let unstored = try unstoreQuantized(back)
        for (name, p) in profiles() {
            let y = try logits(back, p.resolve(in: back))
            #expect(y == (try logits(stored, p.resolve(in: stored))), "\(name)")
            #expect(y == (try logits(g, p.resolve(in: g))), "\(name)")
            #expect(y == (try logits(unstored, p.resolve(in: unstored))), "\(name)")
        }
    }

    /// σ = 0 with transitional BN is joint training on the diagonal: every layer runs at the base, so bn3 uses and
    /// trains row (b, b) only; that row ends exactly where plain joint training leaves row b, the off-diagonal rows
    /// stay at their initial values, and every other parameter is identical.
    @Test func zeroSigmaTrainsTheDiagonalAsJointTraining() throws {
        let plain = try hasbTrained(twoSwitchClassifier(), sigma: 0, epochs: 2).0.trainedGraph()
        let start = try makeTransitionalBatchNorms(twoSwitchClassifier()).0
        var names: Set<String> = []
        let trans = try hasbTrained(start, sigma: 0, epochs: 2) { e in names.formUnion(e.parameters) }.0.trainedGraph()
        #expect(names.contains("bn3.scale@8to8bit") && names.contains("bn3.bias@2to2bit"))
        let diagonal = Set(["scale", "bias"].flatMap { p in [8, 6, 4, 2].map { "bn3.\(p)@\($0)to\($0)bit" } })
        #expect(names.filter { $0.hasPrefix("bn3.") }.allSatisfy(diagonal.contains))
        for (name, t) in plain.initializers where !name.hasPrefix("bn3.") { #expect(trans.initializers[name] == t, "\(name)") }
        for p in ["bn3.scale", "bn3.bias", "bn3.mean", "bn3.var"] {
            let a = try #require(plain.initializers[p]).floats, b = try #require(trans.initializers[p]).floats
            let s = try #require(start.initializers[p]).floats
            for prev in 0..<4 {
                for own in 0..<4 {
                    let r = prev * 4 + own
                    let row = Array(b[(r * 6)..<((r + 1) * 6)])
                    #expect(row == (prev == own ? Array(a[(own * 6)..<((own + 1) * 6)]) : Array(s[(r * 6)..<((r + 1) * 6)])), "\(p) row \(r)")
                }
            }
        }
    }

    /// A resumed transitional run (the pair rows' optimizer state in the checkpoint) equals the uninterrupted one.
    @Test func resumeEqualsUninterrupted() throws {
        let start = try makeTransitionalBatchNorms(twoSwitchClassifier()).0
        func trainer(_ checkpoint: String?) throws -> JointTrainer {
            var s = try HASBSampler(bits: [8, 6, 4, 2], layers: ["conv2", "conv3"], traces: [1.0, 2.0], epochs: 2, seed: 3)
            s.sigma = 1
            return try JointTrainer(graph: start, training: jointOptions(epochs: 2, checkpoint: checkpoint),
                                    joint: try JointTrainingOptions(bits: [8, 6, 4, 2]), hasb: s, progress: ProgressReporter(style: .silent))
        }
        let full = try trainer(nil)
        try full.fit(barSplits)
        let path = tempFile("tbn-resume.ckpt")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try trainer(path).fit(barSplits, stopAfterEpoch: 1)
        let second = try trainer(path)
        try second.resume(from: path)
        try second.fit(barSplits)
        #expect(second.trainedGraph().initializers == full.trainedGraph().initializers)
    }

    /// σ = 1: each sub-step steps bn3's (conv2's draw, conv3's draw) row and no other of its rows.
    @Test func fullSigmaStepsTheDrawnPair() throws {
        var events: [JointStepEvent] = []
        let (t, _) = try hasbTrained(try makeTransitionalBatchNorms(twoSwitchClassifier()).0, sigma: 1) { events.append($0) }
        #expect(!events.isEmpty)
        var offDiagonal = 0
        for e in events {
            let p = try #require(e.layerBits["conv2"]), b = try #require(e.layerBits["conv3"])
            let bn3 = Set(e.parameters.filter { $0.hasPrefix("bn3.") })
            #expect(bn3 == ["bn3.scale@\(p)to\(b)bit", "bn3.bias@\(p)to\(b)bit"])
            if p != b { offDiagonal += 1 }
        }
        #expect(offDiagonal > 0)
        _ = t
    }
}

/// One epoch of joint training (activation scales initialised, BN rows apart).
private func jointlyTrained(_ g: Graph) throws -> Graph {
    let t = try JointTrainer(graph: g, training: jointOptions(epochs: 1), joint: try JointTrainingOptions(bits: [8, 6, 4, 2]),
                             progress: ProgressReporter(style: .silent))
    try t.fit(barSplits)
    return t.trainedGraph()
}
