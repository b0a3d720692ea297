import Testing
import Foundation
import BitSwitchData
import BitSwitchIR
@testable import BitSwitchRuntime

/// A Conv-BN-ReLU-MaxPool-GAP-Gemm classifier over [1, 6, 6] inputs and a learnable synthetic task:
/// the class is which third of the image holds the bright bar.
func tinyClassifier(seed: UInt64 = 1) -> Graph {
    var rng = TestRandom(seed)
    var g = Graph(name: "tiny", opsets: ["": 17],
                  inputs: [ValueInfo(name: "x", type: TensorType(.f32, [.symbol("N"), .known(1), .known(6), .known(6)]))],
                  outputs: [ValueInfo(name: "logits", type: TensorType(.f32, [.symbol("N"), .known(3)]))])
    g.setInitializer("conv.w", rng.tensor([8, 1, 3, 3], -0.3, 0.3))
    g.setInitializer("bn.scale", Tensor(shape: [8], floats: .init(repeating: 1, count: 8)))
    g.setInitializer("bn.bias", Tensor(shape: [8], floats: .init(repeating: 0, count: 8)))
    g.setInitializer("bn.mean", Tensor(shape: [8], floats: .init(repeating: 0, count: 8)))
    g.setInitializer("bn.var", Tensor(shape: [8], floats: .init(repeating: 1, count: 8)))
    g.setInitializer("fc.w", rng.tensor([3, 8], -0.3, 0.3))
    g.setInitializer("fc.b", Tensor(shape: [3], floats: [0, 0, 0]))
    g.nodes = [
        Node(name: "conv", op: .conv(ConvAttrs(pads: [1, 1, 1, 1])), inputs: ["x", "conv.w"], outputs: ["c"]),
        Node(name: "bn", op: .batchNormalization(epsilon: 1e-5, momentum: 0.9, trainingMode: false),
             inputs: ["c", "bn.scale", "bn.bias", "bn.mean", "bn.var"], outputs: ["b"]),
        Node(name: "relu", op: .relu, inputs: ["b"], outputs: ["r"]),
        Node(name: "pool", op: .maxPool(PoolAttrs(kernelShape: [2, 2], strides: [2, 2])), inputs: ["r"], outputs: ["p"]),
        Node(name: "gap", op: .globalAveragePool, inputs: ["p"], outputs: ["gp"]),
        Node(name: "flat", op: .flatten(axis: 1), inputs: ["gp"], outputs: ["f"]),
        Node(name: "fc", op: .gemm(GemmAttrs(transB: true)), inputs: ["f", "fc.w", "fc.b"], outputs: ["logits"]),
    ]
    return g
}

func barDataset(count: Int, seed: UInt64) -> Dataset {
    var rng = TestRandom(seed)
    var x: [Float] = [], y: [Int32] = []
    for i in 0..<count {
        let label = i % 3
        var img = rng.uniform(36, 0, 0.3)
        for r in 0..<6 { for c in (label * 2)..<(label * 2 + 2) { img[r * 6 + c] += 1 } }
        x += img; y.append(Int32(label))
    }
    return Dataset(x: x, sampleShape: [1, 6, 6], y: y, numClasses: 3)
}

@Suite(.serialized) struct TrainerTests {
    let data = DatasetSplits(train: barDataset(count: 90, seed: 5), test: barDataset(count: 30, seed: 6))

    func options(epochs: Int, checkpoint: String? = nil) -> TrainingOptions {
        var o = TrainingOptions()
        o.epochs = epochs
        o.batchSize = 16
        o.learningRate = 0.02
        o.weightDecay = 1e-4
        o.seed = 42
        o.threads = 1
        o.checkpointPath = checkpoint
        return o
    }

    func tempPath(_ name: String) -> String {
        NSTemporaryDirectory() + "bitswitch-train-\(getpid())-\(name)"
    }

    @Test func learnsTheTaskAndExportsTrainedGraph() throws {
        let t = try Trainer(graph: tinyClassifier(), options: options(epochs: 6), progress: ProgressReporter(style: .silent))
        let before = try t.evaluate(data.test)
        let h = try t.fit(data)
        #expect(h.count == 6)
        let last = try #require(h.last)
        #expect(last.trainLoss < h[0].trainLoss)
        #expect(try #require(last.testAccuracy) > 0.9)
        #expect(before.accuracy < 0.9)
        let g = t.trainedGraph()
        #expect(g.initializers["conv.w"] != tinyClassifier().initializers["conv.w"])
        #expect(g.initializers["bn.mean"] != tinyClassifier().initializers["bn.mean"])
        // The exported graph evaluates to the same accuracy through a fresh engine.
        let again = try evaluateModel(TrainingGraph(graph: g), on: data.test)
        #expect(again == (try t.evaluate(data.test)))
    }

    @Test func sameSeedSameThreadsSameCurveBitForBit() throws {
        func run() throws -> ([EpochRecord], Graph) {
            let t = try Trainer(graph: tinyClassifier(), options: options(epochs: 3), progress: ProgressReporter(style: .silent))
            let h = try t.fit(data)
            return (h, t.trainedGraph())
        }
        let (h1, g1) = try run(), (h2, g2) = try run()
        #expect(h1.map(\.trainLoss) == h2.map(\.trainLoss))
        #expect(h1.map(\.testLoss) == h2.map(\.testLoss))
        #expect(g1.initializers == g2.initializers)
        var other = options(epochs: 3)
        other.seed = 43
        let t3 = try Trainer(graph: tinyClassifier(), options: other, progress: ProgressReporter(style: .silent))
        #expect(try t3.fit(data).map(\.trainLoss) != h1.map(\.trainLoss))
    }

    @Test func resumeContinuesExactly() throws {
        let full = try Trainer(graph: tinyClassifier(), options: options(epochs: 2), progress: ProgressReporter(style: .silent))
        try full.fit(data)

        let path = tempPath("resume.ckpt")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let first = try Trainer(graph: tinyClassifier(), options: options(epochs: 2, checkpoint: path),
                                progress: ProgressReporter(style: .silent))
        try first.fit(data, stopAfterEpoch: 1)
        #expect(first.completedEpochs == 1)

        let second = try Trainer(graph: tinyClassifier(), options: options(epochs: 2, checkpoint: path),
                                 progress: ProgressReporter(style: .silent))
        try second.resume(from: path)
        #expect(second.completedEpochs == 1)
        #expect(second.history.count == 1)
        try second.fit(data)
        #expect(second.trainedGraph().initializers == full.trainedGraph().initializers)
        #expect(second.history.map(\.trainLoss) == full.history.map(\.trainLoss))
    }

    @Test func checkpointRoundTripAndRejectsOtherModels() throws {
        let path = tempPath("rt.ckpt")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let entries: [(String, Tensor)] = [("a", Tensor(shape: [2, 2], floats: [1, -2, 3.5, .infinity])),
                                           ("b", Tensor(shape: [], int64s: [-7])), ("c", Tensor(shape: [0], floats: []))]
        try Checkpoint.write(entries, to: path)
        let back = try Checkpoint.read(from: path)
        #expect(back.count == 3)
        for (n, t) in entries { #expect(back[n] == t) }
        // Truncated file and foreign model are errors, not crashes.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        try bytes.prefix(bytes.count - 3).write(to: URL(fileURLWithPath: path))
        #expect(throws: BitSwitchError.self) { try Checkpoint.read(from: path) }
        try Checkpoint.write(entries, to: path)
        let t = try Trainer(graph: tinyClassifier(), options: options(epochs: 1), progress: ProgressReporter(style: .silent))
        #expect(throws: BitSwitchError.self) { try t.resume(from: path) }
    }

    @Test func wrongDataShapeIsAnError() throws {
        let t = try Trainer(graph: tinyClassifier(), options: options(epochs: 1), progress: ProgressReporter(style: .silent))
        let bad = Dataset(x: .init(repeating: 0, count: 10 * 25), sampleShape: [1, 5, 5], y: .init(repeating: 0, count: 10), numClasses: 3)
        #expect(throws: BitSwitchError.self) { try t.fit(DatasetSplits(train: bad, test: bad)) }
    }
}
