import Testing
import Foundation
import BitSwitchIR
@testable import BitSwitchRuntime

@Suite struct BatchNormGradientTests {
    func bnGraph(_ x: Tensor, channels c: Int, momentum: Float = 0.9, rng: inout TestRandom) -> Graph {
        singleNodeGraph(.batchNormalization(epsilon: 1e-5, momentum: momentum, trainingMode: false),
                        inputs: [("x", x)],
                        initializers: [("scale", Tensor(shape: [c], floats: rng.uniform(c, 0.5, 1.5))),
                                       ("bias", rng.tensor([c])),
                                       ("mean", rng.tensor([c], -0.2, 0.2)),
                                       ("var", Tensor(shape: [c], floats: rng.uniform(c, 0.5, 2)))])
    }

    @Test func trainingModeGradientsThroughBatchStatistics() throws {
        var rng = TestRandom(20)
        for shape in [[4, 3, 2, 2], [3, 2, 5], [6, 4]] {
            let x = rng.tensor(shape, -2, 2)
            let g = bnGraph(x, channels: shape[1], rng: &rng)
            // Smaller step: the normalisation is sharply curved in x when the batch is small.
            try checkGradients(g, feeds: ["x": x], wrt: ["x", "scale", "bias"], training: true, h: 3e-3, atol: 3e-3)
        }
    }

    @Test func evalModeGradients() throws {
        var rng = TestRandom(21)
        let x = rng.tensor([2, 3, 2, 2], -2, 2)
        try checkGradients(bnGraph(x, channels: 3, rng: &rng), feeds: ["x": x], wrt: ["x", "scale", "bias"], training: false)
    }

    @Test func rolesAndRunningStatisticsMatchPyTorch() throws {
        // torch.nn.BatchNorm2d(2) (momentum 0.1 = ONNX 0.9) in train mode on arange(16)^1.5/10 reshaped to [2,2,2,2].
        let x = Tensor(shape: [2, 2, 2, 2], floats: (0..<16).map { Float(pow(Double($0), 1.5) / 10) })
        var g = singleNodeGraph(.batchNormalization(epsilon: 1e-5, momentum: 0.9, trainingMode: false), inputs: [("x", x)],
                                initializers: [("scale", Tensor(shape: [2], floats: [1, 1])), ("bias", Tensor(shape: [2], floats: [0, 0])),
                                               ("mean", Tensor(shape: [2], floats: [0, 0])), ("var", Tensor(shape: [2], floats: [1, 1]))])
        g.name = "bn"
        let tg = try TrainingGraph(graph: g)
        #expect(tg.parameters.map(\.name) == ["scale", "bias"])
        #expect(tg.parameters.map(\.role) == [.normAffine, .normAffine])
        #expect(tg.stateNames == ["mean", "var"])
        let pass = try tg.forward(feeds: ["x": x], context: TrainingContext(training: true))
        let y = try #require(pass.value("y")).floats
        let rm = try #require(tg.values["mean"]).floats, rv = try #require(tg.values["var"]).floats
        let torchMean: [Float] = [0.1584470570087433, 0.31414610147476196]
        let torchVar: [Float] = [1.1285089254379272, 1.3138540983200073]
        for i in 0..<2 {
            #expect(abs(rm[i] - torchMean[i]) < 1e-6)
            #expect(abs(rv[i] - torchVar[i]) < 1e-5)
        }
        // Batch-normalised output has zero mean per channel; eval mode then uses the updated running stats.
        let ch0 = [0, 1, 2, 3, 8, 9, 10, 11].map { y[$0] }
        #expect(abs(ch0.reduce(0, +)) < 1e-5)
        let e = try #require(try tg.forward(feeds: ["x": x], context: TrainingContext(training: false)).value("y")).floats
        #expect(abs(e[0] - (x.floats[0] - rm[0]) / (rv[0] + 1e-5).squareRoot()) < 1e-5)
        #expect(tg.values["mean"]?.floats == rm)   // eval mode leaves the state alone
        // The exported graph carries the new running statistics.
        #expect(tg.exportGraph().initializers["var"]?.floats == rv)
    }

    @Test func trainingModeRefusesSingleValuePerChannel() throws {
        var rng = TestRandom(22)
        let x = rng.tensor([1, 3])
        let tg = try TrainingGraph(graph: bnGraph(x, channels: 3, rng: &rng))
        #expect(throws: BitSwitchError.self) { try tg.forward(feeds: ["x": x], context: TrainingContext(training: true)) }
    }
}
