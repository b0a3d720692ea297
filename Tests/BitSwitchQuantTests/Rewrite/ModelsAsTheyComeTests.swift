import BitSwitchIR
import BitSwitchRuntime
import Foundation
import Testing
@testable import BitSwitchQuant

// A batch-1 export: Reshape to the constant [1, 8] and a MatMul reading Transpose(W), as `x.view(1, -1) @ W.t()`.
let batchOneIR = """
graph @main opsets {"": 17} {
  input %x: f32[1,2,2,2]
  const %w: f32[3,8] = [0.1, -0.2, 0.3, -0.4, 0.5, -0.6, 0.7, -0.8, 0.2, 0.2, 0.2, 0.2, -0.1, -0.1, -0.1, -0.1, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0]
  const %shape: i64[2] = [1, 8]
  %r = Relu(%x) @relu
  %flat = Reshape(%r, %shape) @flatten
  %wt = Transpose(%w) {perm = [1, 0]} @transpose
  %logits = MatMul(%flat, %wt) @fc
  output %logits: f32[1,3]
}
"""

@Test func insertFakeQuantFoldsATransposedWeightAndQuantizesTheMatMul() throws {
    var g = try parseGraph(batchOneIR)
    var lines: [String] = []
    try insertFakeQuant(&g, options: FakeQuantOptions(bits: [8, 4]), log: { lines.append($0) })
    #expect(!g.nodes.contains { $0.op.typeName == "Transpose" })
    let fc = try #require(g.nodes.first { $0.label == "fc" })
    #expect(fc.inputs[1].hasSuffix(".fq"))
    #expect(try #require(g.initializers["wt"]).shape == [8, 3])
    #expect(g.initializers["w"] == nil)
    #expect(lines.contains { $0.contains("folded 1 constant node(s) (Transpose 'transpose')") })
}

@Test func makeBatchableRewritesTheReshapeTargetAndKeepsEachSamplesOutput() throws {
    var g = try parseGraph(batchOneIR)
    let original = g
    let mode = try makeBatchable(&g)
    #expect(mode == .rewritten(constants: 1))
    #expect(g.initializers["shape"]?.ints == [0, 8])
    #expect(g.inputs[0].type.shape?.first == .symbol("N"))
    #expect(g.outputs[0].type.shape?.first == .symbol("N"))
    // Three samples at once equal three runs of the original.
    let x = Tensor(shape: [3, 2, 2, 2], floats: (0..<24).map { Float($0 % 7) - 3 })
    let batched = try Executor(graph: g).run([ "x": x ])["logits"]
    #expect(batched?.shape == [3, 3])
    for s in 0..<3 {
        let one = Tensor(shape: [1, 2, 2, 2], floats: Array(x.floats[(s * 8)..<((s + 1) * 8)]))
        let r = try #require(try Executor(graph: original).run(["x": one])["logits"])
        #expect(Array(batched!.floats[(s * 3)..<((s + 1) * 3)]) == r.floats)
    }
    // Already batchable: nothing to do.
    var again = g
    #expect(try makeBatchable(&again) == .unchanged)
}

@Test func makeBatchableFallsBackWhenAnotherConstantCarriesTheBatch() throws {
    let text = batchOneIR.replacingOccurrences(of: "  %logits = MatMul(%flat, %wt) @fc\n", with: """
          const %extra: f32[1,3] = [1.0, 2.0, 3.0]
          %mm = MatMul(%flat, %wt) @fc
          %logits = Concat(%mm, %extra) {axis = 1} @cat
        """ + "\n").replacingOccurrences(of: "output %logits: f32[1,3]", with: "output %logits: f32[1,6]")
    var g = try parseGraph(text)
    let before = g
    let mode = try makeBatchable(&g)
    guard case .perSample(let reason) = mode else { Issue.record("expected the fallback, got \(mode)"); return }
    #expect(reason.contains("Concat 'cat'"))
    #expect(g == before)
    #expect(mode.requiredBatch == 1)
}
