import BitSwitchData
import BitSwitchIR
import BitSwitchRuntime
import Foundation
@testable import BitSwitchQuant

// A small quantized classifier built by hand (so these tests do not depend on the insert-fake-quant pass) and a
// learnable synthetic task: the class is which third of a 6×6 image holds the bright bar.

struct JointRandom {
    var rng: SplitMix64
    init(_ seed: UInt64) { rng = SplitMix64(seed: seed) }
    mutating func uniform(_ n: Int, _ lo: Float, _ hi: Float) -> [Float] { (0..<n).map { _ in lo + (hi - lo) * rng.nextFloat() } }
}

/// FQA(pinned 8) → Conv1(FQW pinned 8) → SBN → ReLU → FQA → Conv2(FQW) → SBN → ReLU → GAP → Flatten →
/// FQA(pinned 8) → Gemm(FQW pinned 8). Activation scales start at 0 (initialised by the first batch of each width).
func quantizedClassifier(bits: [Int] = [8, 6, 4, 2], seed: UInt64 = 1) -> Graph {
    var rng = JointRandom(seed)
    let nb = bits.count
    var g = Graph(name: "qtiny", opsets: ["": 17, Op.bitswitchDomain: 1],
                  inputs: [ValueInfo(name: "x", type: TensorType(.f32, [.symbol("N"), .known(1), .known(6), .known(6)]))],
                  outputs: [ValueInfo(name: "logits", type: TensorType(.f32, [.symbol("N"), .known(3)]))])
    func weight(_ name: String, _ shape: [Int], _ r: Float) {
        let w = rng.uniform(shape.reduce(1, *), -r, r)
        g.setInitializer(name, Tensor(shape: shape, floats: w))
        g.setInitializer(name + ".s", Tensor(shape: [shape[0]],
                                             floats: WeightQuantizer.initialScales(weight: w, channels: shape[0], storedBits: 8)))
    }
    func bn(_ name: String, _ c: Int) {
        g.setInitializer(name + ".scale", Tensor(shape: [nb, c], floats: .init(repeating: 1, count: nb * c)))
        g.setInitializer(name + ".bias", Tensor(shape: [nb, c], floats: .init(repeating: 0, count: nb * c)))
        g.setInitializer(name + ".mean", Tensor(shape: [nb, c], floats: .init(repeating: 0, count: nb * c)))
        g.setInitializer(name + ".var", Tensor(shape: [nb, c], floats: .init(repeating: 1, count: nb * c)))
    }
    func act(_ name: String) { g.setInitializer(name, Tensor(shape: [nb], floats: .init(repeating: 0, count: nb))) }
    weight("conv1.w", [4, 1, 3, 3], 0.4); bn("bn1", 4)
    weight("conv2.w", [6, 4, 3, 3], 0.3); bn("bn2", 6)
    weight("fc.w", [3, 6], 0.4)
    g.setInitializer("fc.b", Tensor(shape: [3], floats: [0, 0, 0]))
    act("a0"); act("a1"); act("a2")
    func fqw(_ w: String, pinned: Int?) -> Node {
        Node(name: w + ".q", op: .fakeQuantWeight(FakeQuantWeightAttrs(bits: bits, pinnedBits: pinned)),
             inputs: [w, w + ".s"], outputs: [w + ".hat"])
    }
    func fqa(_ x: String, _ s: String, signed: Bool, pinned: Int?) -> Node {
        Node(name: s + ".q", op: .fakeQuantAct(FakeQuantActAttrs(bits: bits, signed: signed, pinnedBits: pinned)),
             inputs: [x, s], outputs: [x + ".hat"])
    }
    func sbn(_ name: String, _ x: String, _ y: String) -> Node {
        Node(name: name, op: .switchableBatchNorm(bits: bits, epsilon: 1e-5, momentum: 0.9),
             inputs: [x, name + ".scale", name + ".bias", name + ".mean", name + ".var"], outputs: [y])
    }
    g.nodes = [
        fqa("x", "a0", signed: true, pinned: 8), fqw("conv1.w", pinned: 8),
        Node(name: "conv1", op: .conv(ConvAttrs(pads: [1, 1, 1, 1])), inputs: ["x.hat", "conv1.w.hat"], outputs: ["c1"]),
        sbn("bn1", "c1", "b1"),
        Node(name: "relu1", op: .relu, inputs: ["b1"], outputs: ["r1"]),
        fqa("r1", "a1", signed: false, pinned: nil), fqw("conv2.w", pinned: nil),
        Node(name: "conv2", op: .conv(ConvAttrs(pads: [1, 1, 1, 1])), inputs: ["r1.hat", "conv2.w.hat"], outputs: ["c2"]),
        sbn("bn2", "c2", "b2"),
        Node(name: "relu2", op: .relu, inputs: ["b2"], outputs: ["r2"]),
        Node(name: "gap", op: .globalAveragePool, inputs: ["r2"], outputs: ["gp"]),
        Node(name: "flat", op: .flatten(axis: 1), inputs: ["gp"], outputs: ["f"]),
        fqa("f", "a2", signed: false, pinned: 8), fqw("fc.w", pinned: 8),
        Node(name: "fc", op: .gemm(GemmAttrs(transB: true)), inputs: ["f.hat", "fc.w.hat", "fc.b"], outputs: ["logits"]),
    ]
    return g
}

func barData(count: Int, seed: UInt64) -> Dataset {
    var rng = JointRandom(seed)
    var x: [Float] = [], y: [Int32] = []
    for i in 0..<count {
        let label = i % 3
        var img = rng.uniform(36, 0, 0.3)
        for r in 0..<6 { for c in (label * 2)..<(label * 2 + 2) { img[r * 6 + c] += 1 } }
        x += img
        y.append(Int32(label))
    }
    return Dataset(x: x, sampleShape: [1, 6, 6], y: y, numClasses: 3)
}

let barSplits = DatasetSplits(train: barData(count: 96, seed: 5), test: barData(count: 30, seed: 6))

func jointOptions(epochs: Int, checkpoint: String? = nil, optimizer: OptimizerKind = .adam(),
                  lr: Float = 0.01) -> TrainingOptions {
    var o = TrainingOptions.quantizationRecipe(epochs: epochs)
    o.optimizer = optimizer
    o.learningRate = lr
    o.batchSize = 16
    o.seed = 7
    o.threads = 1
    o.checkpointPath = checkpoint
    return o
}

func tempFile(_ name: String) -> String { NSTemporaryDirectory() + "bitswitch-qat-\(getpid())-\(name)" }

/// The float version of `quantizedClassifier`: Conv-BN-ReLU ×2, GAP, Flatten, Gemm.
func floatClassifier(seed: UInt64 = 1) -> Graph {
    var rng = JointRandom(seed)
    var g = Graph(name: "ftiny", opsets: ["": 17],
                  inputs: [ValueInfo(name: "x", type: TensorType(.f32, [.symbol("N"), .known(1), .known(6), .known(6)]))],
                  outputs: [ValueInfo(name: "logits", type: TensorType(.f32, [.symbol("N"), .known(3)]))])
    func bn(_ name: String, _ c: Int) {
        g.setInitializer(name + ".scale", Tensor(shape: [c], floats: .init(repeating: 1, count: c)))
        g.setInitializer(name + ".bias", Tensor(shape: [c], floats: .init(repeating: 0, count: c)))
        g.setInitializer(name + ".mean", Tensor(shape: [c], floats: .init(repeating: 0, count: c)))
        g.setInitializer(name + ".var", Tensor(shape: [c], floats: .init(repeating: 1, count: c)))
    }
    g.setInitializer("conv1.w", Tensor(shape: [4, 1, 3, 3], floats: rng.uniform(36, -0.4, 0.4))); bn("bn1", 4)
    g.setInitializer("conv2.w", Tensor(shape: [6, 4, 3, 3], floats: rng.uniform(216, -0.3, 0.3))); bn("bn2", 6)
    g.setInitializer("fc.w", Tensor(shape: [3, 6], floats: rng.uniform(18, -0.4, 0.4)))
    g.setInitializer("fc.b", Tensor(shape: [3], floats: [0, 0, 0]))
    func bnNode(_ name: String, _ x: String, _ y: String) -> Node {
        Node(name: name, op: .batchNormalization(epsilon: 1e-5, momentum: 0.9, trainingMode: false),
             inputs: [x, name + ".scale", name + ".bias", name + ".mean", name + ".var"], outputs: [y])
    }
    g.nodes = [
        Node(name: "conv1", op: .conv(ConvAttrs(pads: [1, 1, 1, 1])), inputs: ["x", "conv1.w"], outputs: ["c1"]),
        bnNode("bn1", "c1", "b1"),
        Node(name: "relu1", op: .relu, inputs: ["b1"], outputs: ["r1"]),
        Node(name: "conv2", op: .conv(ConvAttrs(pads: [1, 1, 1, 1])), inputs: ["r1", "conv2.w"], outputs: ["c2"]),
        bnNode("bn2", "c2", "b2"),
        Node(name: "relu2", op: .relu, inputs: ["b2"], outputs: ["r2"]),
        Node(name: "gap", op: .globalAveragePool, inputs: ["r2"], outputs: ["gp"]),
        Node(name: "flat", op: .flatten(axis: 1), inputs: ["gp"], outputs: ["f"]),
        Node(name: "fc", op: .gemm(GemmAttrs(transB: true)), inputs: ["f", "fc.w", "fc.b"], outputs: ["logits"]),
    ]
    return g
}

/// The float classifier trained on the bar task (the starting point of quantization).
func trainedFloatClassifier() throws -> Graph {
    var o = TrainingOptions()
    o.epochs = 6
    o.batchSize = 16
    o.learningRate = 0.02
    o.seed = 3
    o.threads = 1
    let t = try Trainer(graph: floatClassifier(), options: o, progress: ProgressReporter(style: .silent))
    try t.fit(barSplits)
    return t.trainedGraph()
}
