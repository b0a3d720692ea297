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
