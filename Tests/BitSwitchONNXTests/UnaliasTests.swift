import BitSwitchData
import BitSwitchIR
import BitSwitchONNX
import BitSwitchRuntime
import Foundation
import Testing

/// `torch_resnet1d_tiny.onnx` is a real PyTorch export (scripts/export-mnist1d-resnet.py fixture: torch 2.13,
/// TorchScript exporter, eval mode, no constant folding) of an untrained 1-D ResNet. The exporter deduplicated the
/// fresh BatchNorms' equal initializers and fed the copies through 32 Identity nodes.
@Suite struct UnaliasInitializerTests {
    @Test func identityFedInitializersBecomeDistinctInitializers() throws {
        let g = try importFixture("torch_resnet1d_tiny.onnx")
        #expect(!g.nodes.contains { if case .identity = $0.op { return true } else { return false } })
        let bns = g.nodes.filter { if case .batchNormalization = $0.op { return true } else { return false } }
        #expect(bns.count == 9)
        var seen = Set<String>()
        for bn in bns {
            for name in bn.inputs[1...] {
                #expect(g.initializers[name] != nil, "BN input \(name) is not an initializer")
                #expect(seen.insert(name).inserted, "\(name) feeds two BatchNorm parameter slots")
            }
            #expect(g.initializers[bn.inputs[2]]?.floats.allSatisfy { $0 == 0 } == true)
            #expect(g.initializers[bn.inputs[4]]?.floats.allSatisfy { $0 == 1 } == true)
        }
    }

    @Test func theExportTrainsAndItsBiasAndRunningMeanSeparate() throws {
        let g = try importFixture("torch_resnet1d_tiny.onnx")
        var rng = SplitMix64(seed: 3)
        let n = 32
        let x = (0..<(n * 40)).map { _ in rng.nextFloat() * 2 - 1 }
        let y = (0..<n).map { Int32($0 % 10) }
        let data = Dataset(x: x, sampleShape: [1, 40], y: y, numClasses: 10)
        var o = TrainingOptions()
        o.epochs = 1
        o.batchSize = 16
        o.threads = 1
        let t = try Trainer(graph: g, options: o, progress: ProgressReporter(style: .silent))
        try t.fit(DatasetSplits(train: data, test: data))
        let trained = t.trainedGraph()
        let bn = try #require(trained.nodes.first { if case .batchNormalization = $0.op { return true } else { return false } })
        let bias = try #require(trained.initializers[bn.inputs[2]]), mean = try #require(trained.initializers[bn.inputs[3]])
        #expect(bias.floats != mean.floats)
    }
}
