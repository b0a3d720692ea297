import BitSwitchData
import BitSwitchIR
import BitSwitchRuntime
import Foundation
import Testing
@testable import BitSwitchQuant

/// A calibrated multi-precision model of the bar task (float classifier → fake-quant {8,6,4,2} → PTQ).
private func calibratedModel() throws -> Graph {
    var g = try trainedFloatClassifier()
    try insertFakeQuant(&g, options: FakeQuantOptions(bits: [8, 6, 4, 2]))
    try calibrateActivationScales(&g, data: barSplits.train, samples: 64, seed: 1)
    return g
}

private func logits(_ g: Graph, _ x: Tensor, _ assignment: BitAssignment = BitAssignment()) throws -> [Float] {
    let out = try Executor(graph: g, assignment: assignment).run(["x": x])
    return try #require(out["logits"]).floats
}

@Suite(.serialized) struct LoweringTests {
    init() { registerKernels() }

    @Test func multiplierIsNormalisedAndAccurate() throws {
        for M in [1e-9, 3.7e-5, 0.001, 0.25, 0.5, 0.999999, 1, 3.14159, 1000, -0.02] {
            let (m, n) = try quantizeMultiplier(M)
            #expect(n >= 0 && n <= 62)
            if n < 62 { #expect(abs(m) >= 1 << 29 && abs(m) < 1 << 30) }
            #expect(abs(Double(m) / pow(2, Double(n)) - M) <= abs(M) * 1e-8 + pow(2, -62))
        }
        #expect(try quantizeMultiplier(0) == (0, 0))
        #expect(throws: BitSwitchError.self) { try quantizeMultiplier(.infinity) }
    }

    @Test func specialisedGraphEqualsTheProfileBitForBit() throws {
        let g = try calibratedModel()
        let x = Tensor(shape: [barSplits.test.count] + barSplits.test.sampleShape, floats: barSplits.test.x)
        for b in [8, 6, 4, 2] {
            let a = try Profile.uniform(b).resolve(in: g)
            #expect(try logits(specialize(g, assignment: a), x) == logits(g, x, a))
        }
        // A mixed profile too.
        let layers = quantizedLayers(g).filter(\.isSwitchable)
        let p = Profile(layers: [layers[0].name: LayerBits(w: 2, a: 4)], defaultBits: 6)
        let a = try p.resolve(in: g)
        #expect(try logits(specialize(g, assignment: a), x) == logits(g, x, a))
    }

    @Test func integerModelFollowsTheFakeQuantModelAtEveryBitWidth() throws {
        let g = try calibratedModel()
        let x = Tensor(shape: [barSplits.test.count] + barSplits.test.sampleShape, floats: barSplits.test.x)
        let labels = barSplits.test.y.map { Int($0) }
        for b in [8, 6, 4, 2] {
            let a = try Profile.uniform(b).resolve(in: g)
            let lowered = try lowerToIntegers(g, assignment: a)
            try verifyInteger(lowered)
            #expect(!lowered.nodes.contains { n in
                switch n.op { case .conv, .gemm, .batchNormalization, .relu, .fakeQuantAct, .fakeQuantWeight: return true
                default: return false }
            })
            let fq = try logits(g, x, a), iq = try logits(lowered, x)
            let range = (fq.max() ?? 0) - (fq.min() ?? 0)
            let maxErr = zip(fq, iq).map { abs($0 - $1) }.max() ?? 0
            // The two differ only in rounding ties and the fine-scale residual path: a few percent of the range.
            #expect(maxErr < 0.05 * range + 1e-3, "bits \(b): max |Δlogit| \(maxErr) for a logit range \(range)")
            func argmax(_ v: ArraySlice<Float>) -> Int { v.indices.max { v[$0] < v[$1] }! - v.startIndex }
            let classes = fq.count / labels.count
            var agree = 0
            for i in labels.indices {
                let r = (i * classes)..<((i + 1) * classes)
                if argmax(fq[r]) == argmax(iq[r]) { agree += 1 }
            }
            #expect(agree >= labels.count - 1, "bits \(b): top-1 agrees on \(agree) of \(labels.count)")
        }
    }

    @Test func loweredGraphRoundTripsThroughTheTextForm() throws {
        let g = try calibratedModel()
        let lowered = try lowerToIntegers(g, assignment: .uniform(4))
        let text = printGraph(lowered)
        let back = try parseGraph(text)
        #expect(printGraph(back) == text)
    }

    @Test func aFloatModelIsRefusedWithAHint() throws {
        let g = floatClassifier()
        #expect {
            try lowerToIntegers(g)
        } throws: { e in
            "\(e)".contains("no quantizers") && "\(e)".contains("insert-fake-quant")
        }
    }

    @Test func metadataNamesTheLayerBitsEachNodeDependsOn() throws {
        let g = try calibratedModel()
        let lowered = try lowerToIntegers(g, assignment: .uniform(4))
        let sites = try #require(lowered.metadata[LoweringMetadata.sites])
        let bits = try #require(lowered.metadata[LoweringMetadata.bits])
        let switchable = quantizedLayers(g).filter(\.isSwitchable).map(\.name)
        for l in switchable {
            #expect(bits.contains("\"\(l)\": {\"w\": 4, \"a\": 4}"))
            #expect(sites.contains("\"\(l):w\""))
        }
    }
}

@Test(.disabled(if: ProcessInfo.processInfo.environment["BITSWITCH_DUMP_LOWERED"] == nil)) func dumpLowered() throws {
    registerKernels()
    let g = try calibratedModel()
    print(printGraph(try lowerToIntegers(g, assignment: .uniform(4)), elideConstantsOver: 8))
}

@Test func variantsCoverEveryCombinationOfEachNodesLayerBits() throws {
    registerKernels()
    let g = try calibratedModel()
    let v = try lowerVariants(g, profiles: [("8", .uniform(8)), ("2", .uniform(2))])
    #expect(v.profiles.map(\.variant) == [0, 1])
    // Every node's parameters depend on at most 3 layer bits here, so a cover exists within 4^3 variants.
    #expect(v.variants.count > 2 && v.variants.count <= 2 + 64)
    var seen: [String: Set<[Int]>] = [:]
    var siteLists: [String: [String]] = [:]
    for g in v.variants {
        let sites = try JSONSerialization.jsonObject(with: Data(g.metadata[LoweringMetadata.sites]!.utf8)) as! [String: [String]]
        let bits = try JSONSerialization.jsonObject(with: Data(g.metadata[LoweringMetadata.bits]!.utf8)) as! [String: [String: Int]]
        for (node, s) in sites {
            let layersOf = Set(s.map { $0 == "*" ? "*" : String($0.split(separator: ":").dropLast().joined(separator: ":")) }).sorted()
            siteLists[node] = layersOf
            seen[node, default: []].insert(layersOf.map { bits[$0]!["w"]! })
        }
    }
    for (node, layers) in siteLists {
        #expect(seen[node]!.count == Int(pow(4.0, Double(layers.count))), "node \(node) over \(layers)")
    }
}
