import BitSwitchIR
import BitSwitchONNX
import BitSwitchQuant
import BitSwitchRuntime
import Foundation
import Testing
@testable import BitSwitchPasses

// The quant passes on the example models: the stored INT8 file reproduces every bit-width exactly after an ONNX
// round trip, and it is a fraction of the FP32 file.

private let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

private func deterministicInput(_ shape: [Int]) -> Tensor {
    var state: UInt64 = 12345
    let v = (0..<shape.reduce(1, *)).map { _ -> Float in
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(state >> 40) / Float(1 << 24)
    }
    return Tensor(shape: shape, floats: v)
}

/// The example model after insert-fake-quant, with every activation scale set by a training forward per bit-width
/// (what the first batch of training does), and its stored INT8 form.
private func quantizedExample(_ name: String, sampleShape: [Int], bits: [Int] = [8, 6, 4, 2])
    throws -> (float: Graph, trained: Graph, stored: Graph, input: Tensor) {
    let path = repoRoot.appendingPathComponent("examples/\(name)/model.onnx").path
    let float = try ONNXImporter.importModel(path: path)
    var g = float
    try Pipeline.parse("insert-fake-quant{bits=\(bits.map(String.init).joined(separator: ","))}").run(&g, context: PassContext())
    BitSwitchQuant.registerKernels()
    let x = deterministicInput([16] + sampleShape)
    let tg = try TrainingGraph(graph: g)
    for b in bits { _ = try tg.forward(feeds: [tg.inputName: x], context: TrainingContext(training: true, activeBits: b)) }
    let trained = tg.exportGraph()
    var stored = trained
    try Pipeline.parse("store-int8").run(&stored, context: PassContext())
    return (float, trained, stored, x)
}

@Test(arguments: [("digits", [1, 8, 8]), ("mnist1d", [1, 40])])
func storedExampleRoundTripsThroughONNXAndIsSmall(name: String, sampleShape: [Int]) throws {
    let m = try quantizedExample(name, sampleShape: sampleShape)
    let bytes = try ONNXExporter.serialize(m.stored)
    let reloaded = try ONNXImporter.importModel(bytes: bytes, path: "\(name)-int8.onnx", baseDirectory: nil)
    for b in [8, 6, 4, 2] {
        let want = try Executor(graph: m.trained, activeBits: b).run(["x": m.input])
        let got = try Executor(graph: reloaded, activeBits: b).run(["x": m.input])
        #expect(want.keys == got.keys)
        for (k, v) in want { #expect(v.floats.map(\.bitPattern) == got[k]?.floats.map(\.bitPattern), "\(name) bits \(b)") }
    }
    // No float copy of a quantized weight survives the round trip.
    for n in reloaded.nodes {
        guard case .fakeQuantWeight = n.op else { continue }
        #expect(reloaded.initializers[n.inputs[0]]?.dtype == .i8, "\(n.label)")
    }
    if ProcessInfo.processInfo.environment["BITSWITCH_DUMP"] != nil { try Data(bytes).write(to: URL(fileURLWithPath: "/tmp/\(name)-int8.onnx")) }
    // The file is the int8 weights (1 byte each) plus the float32 constants (4 bytes each: per-channel and per-bit
    // scales, biases, and the per-bit BN tables, |bits| times the float model's BN) plus structure.
    let int8Bytes = reloaded.initializers.values.filter { $0.dtype == .i8 }.reduce(0) { $0 + $1.count }
    let floatBytes = 4 * reloaded.initializers.values.filter { $0.dtype == .f32 }.reduce(0) { $0 + $1.count }
    #expect(bytes.count <= int8Bytes + floatBytes + 4096)
    let fp32 = try Data(contentsOf: repoRoot.appendingPathComponent("examples/\(name)/model.onnx")).count
    let ratio = Double(bytes.count) / Double(fp32)
    print("stored INT8 \(name): \(bytes.count) bytes (int8 \(int8Bytes), float32 \(floatBytes)), FP32 \(fp32) bytes, "
          + "ratio \(String(format: "%.3f", ratio))")
    #expect(ratio < 0.5)
}

// A one-block decoder with every transformer option on (attention products, embedding, norms, non-linearities,
// switchable LayerNorm, the head switching): after a training forward per bit-width the stored INT8 file
// reproduces every bit-width bit for bit through an ONNX round trip, and fold-scales makes each bit-width's
// plain model (SwitchableLayerNorm → LayerNormalization of that row) with the same outputs.
@Test func transformerWithEveryOptionRoundTripsAndSpecialises() throws {
    let url = repoRoot.appendingPathComponent("Tests/BitSwitchPassesTests/golden/insert-fake-quant-transformer-default.ir")
    let text = try String(contentsOf: url, encoding: .utf8).components(separatedBy: "\n")
    let split = try #require(text.firstIndex { $0.hasPrefix("# expect") })
    var g = try parseGraph(text[..<split].joined(separator: "\n"))
    try Pipeline.parse("insert-fake-quant{bits=8,6,4,2,first-last=switch,attention-products=true,embedding=true,"
                       + "norms=true,non-linearities=true,switchable-layernorm=true}").run(&g, context: PassContext())
    #expect(g.nodes.contains { if case .switchableLayerNorm = $0.op { return true }; return false })
    BitSwitchQuant.registerKernels()
    let tokens = Tensor(shape: [3, 2], int64s: [0, 1, 2, 2, 1, 0])
    let tg = try TrainingGraph(graph: g)
    // Give each bit-width's LayerNorm row its own affine, so a wrong row would show.
    for b in [8, 6, 4, 2] {
        _ = try tg.forward(feeds: [tg.inputName: tokens], context: TrainingContext(training: true, activeBits: b))
    }
    var trained = tg.exportGraph()
    // A 2-bit product of this toy can be all zero, which leaves the next quantizer's scale uninitialised: set those.
    for (name, t) in trained.initializers where name.hasSuffix(".act_scales") {
        trained.setInitializer(name, Tensor(shape: t.shape, floats: t.floats.map { $0 == 0 ? 0.05 : $0 }))
    }
    for name in ["ln.g", "ln.b"] {
        let t = try #require(trained.initializers[name])
        trained.setInitializer(name, Tensor(shape: t.shape, floats: t.floats.enumerated().map { $1 + 0.125 * Float($0) }))
    }
    var stored = trained
    try Pipeline.parse("store-int8").run(&stored, context: PassContext())
    let reloaded = try ONNXImporter.importModel(bytes: try ONNXExporter.serialize(stored), path: "tiny.onnx",
                                                baseDirectory: nil)
    var outputs: [Int: [UInt32]] = [:]
    for b in [8, 6, 4, 2] {
        let want = try #require(try Executor(graph: trained, activeBits: b).run(["tokens": tokens])["logits"])
        let got = try #require(try Executor(graph: reloaded, activeBits: b).run(["tokens": tokens])["logits"])
        #expect(want.floats.map(\.bitPattern) == got.floats.map(\.bitPattern), "bits \(b)")
        var plain = reloaded
        try Pipeline.parse("fold-scales{bits=\(b)}").run(&plain, context: PassContext())
        #expect(!plain.nodes.contains { if case .switchableLayerNorm = $0.op { return true }; return false })
        let folded = try #require(try Executor(graph: plain).run(["tokens": tokens])["logits"])
        #expect(folded.floats.map(\.bitPattern) == got.floats.map(\.bitPattern), "fold-scales bits \(b)")
        outputs[b] = got.floats.map(\.bitPattern)
    }
    #expect(Set(outputs.values).count == 4, "every bit-width computes something different")
}
