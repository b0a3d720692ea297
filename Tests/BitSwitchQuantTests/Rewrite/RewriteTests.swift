import BitSwitchIR
import BitSwitchRuntime
import Foundation
import Testing
@testable import BitSwitchQuant

// insert-fake-quant as IR text in -> IR text out. The expected texts were printed by the rewrite and checked by
// hand: scales from METHOD.md §1 (one-element channels: |w| / 128), unsigned inputs after Relu and MaxPool(Relu),
// signed graph input, first and last layer pinned, BN parameters tiled once per bit-width.

let cnnIR = """
graph @main opsets {"": 17} {
  input %x: f32[N,1,4,4]
  const %conv0.weight: f32[2,1,1,1] = [1.28, -2.56]
  const %bn0.scale: f32[2] = [1.0, 2.0]
  const %bn0.bias: f32[2] = [0.0, 0.5]
  const %bn0.mean: f32[2] = [0.1, 0.2]
  const %bn0.var: f32[2] = [1.0, 4.0]
  const %conv1.weight: f32[2,2,1,1] = [0.64, 0.64, 1.0, -1.0]
  const %bn1.scale: f32[2] = [1.0, 1.0]
  const %bn1.bias: f32[2] = [0.0, 0.0]
  const %bn1.mean: f32[2] = [0.0, 0.0]
  const %bn1.var: f32[2] = [1.0, 1.0]
  const %fc.weight: f32[3,2] = [0.5, -0.5, 1.0, 1.0, -0.25, 0.25]
  const %fc.bias: f32[3] = [0.1, 0.2, 0.3]
  %conv0 = Conv(%x, %conv0.weight) @conv0
  %bn0 = BatchNormalization(%conv0, %bn0.scale, %bn0.bias, %bn0.mean, %bn0.var) {epsilon = 1e-05} @bn0
  %relu0 = Relu(%bn0) @relu0
  %pool0, %"" = MaxPool(%relu0) {kernel_shape = [2, 2], strides = [2, 2]} @pool0
  %conv1 = Conv(%pool0, %conv1.weight) @conv1
  %bn1 = BatchNormalization(%conv1, %bn1.scale, %bn1.bias, %bn1.mean, %bn1.var) {epsilon = 1e-05} @bn1
  %relu1 = Relu(%bn1) @relu1
  %gap = GlobalAveragePool(%relu1) @gap
  %flat = Flatten(%gap) {axis = 1} @flatten
  %logits = Gemm(%flat, %fc.weight, %fc.bias) {transB = 1} @fc
  output %logits: f32[N,3]
}
"""

let cnnExpected = """
graph @main opsets {"": 17, "ai.bitswitch": 1} {
  input %x: f32[N,1,4,4]
  const %conv0.weight: f32[2,1,1,1] = [1.28, -2.56]
  const %bn0.scale: f32[4,2] = [1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0]
  const %bn0.bias: f32[4,2] = [0.0, 0.5, 0.0, 0.5, 0.0, 0.5, 0.0, 0.5]
  const %bn0.mean: f32[4,2] = [0.1, 0.2, 0.1, 0.2, 0.1, 0.2, 0.1, 0.2]
  const %bn0.var: f32[4,2] = [1.0, 4.0, 1.0, 4.0, 1.0, 4.0, 1.0, 4.0]
  const %conv1.weight: f32[2,2,1,1] = [0.64, 0.64, 1.0, -1.0]
  const %bn1.scale: f32[4,2] = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
  const %bn1.bias: f32[4,2] = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
  const %bn1.mean: f32[4,2] = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
  const %bn1.var: f32[4,2] = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
  const %fc.weight: f32[3,2] = [0.5, -0.5, 1.0, 1.0, -0.25, 0.25]
  const %fc.bias: f32[3] = [0.1, 0.2, 0.3]
  const %conv0.weight.scale: f32[2] = [0.01, 0.02]
  const %x.act_scales: f32[4] = [0.0, 0.0, 0.0, 0.0]
  const %conv1.weight.scale: f32[2] = [0.005, 0.0234375]
  const %pool0.act_scales: f32[4] = [0.0, 0.0, 0.0, 0.0]
  const %fc.weight.scale: f32[3] = [0.01171875, 0.0078125, 0.005859375]
  const %flat.act_scales: f32[4] = [0.0, 0.0, 0.0, 0.0]
  %conv0.weight.fq = ai.bitswitch.FakeQuantWeight(%conv0.weight, %conv0.weight.scale) {axis = 0, bits = [8, 6, 4, 2], pinned_bits = 8, stored_bits = 8} : f32[2,1,1,1] @conv0.weight_quant
  %x.fq = ai.bitswitch.FakeQuantAct(%x, %x.act_scales) {bits = [8, 6, 4, 2], pinned_bits = 8, signed = 1} : f32[N,1,4,4] @conv0.input_quant
  %conv0 = Conv(%x.fq, %conv0.weight.fq) {group = 1} @conv0
  %bn0 = ai.bitswitch.SwitchableBatchNorm(%conv0, %bn0.scale, %bn0.bias, %bn0.mean, %bn0.var) {bits = [8, 6, 4, 2], epsilon = 1e-05, momentum = 0.9} @bn0
  %relu0 = Relu(%bn0) @relu0
  %pool0, %"" = MaxPool(%relu0) {kernel_shape = [2, 2], strides = [2, 2]} @pool0
  %conv1.weight.fq = ai.bitswitch.FakeQuantWeight(%conv1.weight, %conv1.weight.scale) {axis = 0, bits = [8, 6, 4, 2], stored_bits = 8} : f32[2,2,1,1] @conv1.weight_quant
  %pool0.fq = ai.bitswitch.FakeQuantAct(%pool0, %pool0.act_scales) {bits = [8, 6, 4, 2], signed = 0} @conv1.input_quant
  %conv1 = Conv(%pool0.fq, %conv1.weight.fq) {group = 1} @conv1
  %bn1 = ai.bitswitch.SwitchableBatchNorm(%conv1, %bn1.scale, %bn1.bias, %bn1.mean, %bn1.var) {bits = [8, 6, 4, 2], epsilon = 1e-05, momentum = 0.9} @bn1
  %relu1 = Relu(%bn1) @relu1
  %gap = GlobalAveragePool(%relu1) @gap
  %flat = Flatten(%gap) {axis = 1} @flatten
  %fc.weight.fq = ai.bitswitch.FakeQuantWeight(%fc.weight, %fc.weight.scale) {axis = 0, bits = [8, 6, 4, 2], pinned_bits = 8, stored_bits = 8} : f32[3,2] @fc.weight_quant
  %flat.fq = ai.bitswitch.FakeQuantAct(%flat, %flat.act_scales) {bits = [8, 6, 4, 2], pinned_bits = 8, signed = 0} @fc.input_quant
  %logits = Gemm(%flat.fq, %fc.weight.fq, %fc.bias) {alpha = 1.0, beta = 1.0, transA = 0, transB = 1} @fc
  output %logits: f32[N,3]
}

"""

@Test func insertsQuantizersAndSwitchableBatchNorm() throws {
    var g = try parseGraph(cnnIR)
    var log: [String] = []
    try insertFakeQuant(&g, options: FakeQuantOptions(), log: { log.append($0) })
    #expect(printGraph(g) == cnnExpected)
    try verify(g)
    #expect(!log.contains { $0.hasPrefix("warning") })
    #expect(log.last == "insert-fake-quant: 3 layers quantized, 2 BatchNormalization made switchable, bits 8,6,4,2")
}

@Test func fourThreeTwoWithFloatEdgesAndTopStorage() throws {
    var g = try parseGraph(cnnIR)
    try insertFakeQuant(&g, options: FakeQuantOptions(bits: [2, 4, 3], firstLast: .float, storeBits: .top,
                                                      exactGradient: true))
    let text = printGraph(g)
    // Only conv1 switches; stored at 4 bits, its scales are initialised against 2^3: 0.64/8 and 3/8.
    #expect(text.contains("const %conv1.weight.scale: f32[2] = [0.08, 0.375]"))
    #expect(text.contains("%conv1.weight.fq = ai.bitswitch.FakeQuantWeight(%conv1.weight, %conv1.weight.scale) {axis = 0, bits = [4, 3, 2], exact_gradient = 1, stored_bits = 4}"))
    #expect(text.contains("%conv0 = Conv(%x, %conv0.weight) {group = 1} @conv0"))
    #expect(text.contains("%logits = Gemm(%flat, %fc.weight, %fc.bias)"))
    #expect(text.contains("const %pool0.act_scales: f32[3] = [0.0, 0.0, 0.0]"))
    #expect(text.contains("SwitchableBatchNorm(%conv0, %bn0.scale, %bn0.bias, %bn0.mean, %bn0.var) {bits = [4, 3, 2]"))
    #expect(g.nodes.filter { if case .fakeQuantWeight = $0.op { return true } else { return false } }.count == 1)
    try verify(g)
}

@Test func fourThreeTwoPinsEdgesAtEightStoredAsInt8() throws {
    var g = try parseGraph(cnnIR)
    try insertFakeQuant(&g, options: FakeQuantOptions(bits: [4, 3, 2], storeBits: .top))
    let text = printGraph(g)
    #expect(text.contains("{axis = 0, bits = [4, 3, 2], pinned_bits = 8, stored_bits = 8} : f32[2,1,1,1] @conv0.weight_quant"))
    #expect(text.contains("{axis = 0, bits = [4, 3, 2], stored_bits = 4} : f32[2,2,1,1] @conv1.weight_quant"))
    try verify(g)
}

let noBatchNormIR = """
graph @main opsets {"": 17} {
  input %x: f32[N,4]
  const %w0: f32[4,3] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2]
  const %w1: f32[3,3] = [1.0, -1.0, 0.5, 0.25, 0.75, -0.5, 0.1, 0.2, 0.3]
  const %w2: f32[3,2] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
  const %w3: f32[3,2] = [0.5, 0.5, -0.5, 0.5, 0.25, 0.25]
  %h0 = MatMul(%x, %w0) @mm0
  %c = Clip(%h0) {max = 6.0, min = 0.0} @relu6
  %h1 = Gemm(%c, %w1) @gemm1
  %h2 = MatMul(%h1, %w2) @mm2
  %h3 = MatMul(%h1, %w3) @mm3
  %y = Add(%h2, %h3) @add
  output %y: f32[N,2]
}
"""

@Test func matMulAndUntransposedGemmUseAxisOneAndSharedInputsShareAQuantizer() throws {
    var g = try parseGraph(noBatchNormIR)
    var log: [String] = []
    try insertFakeQuant(&g, options: FakeQuantOptions(bits: [8, 4], firstLast: .float), log: { log.append($0) })
    let text = printGraph(g)
    // mm0 is first and mm3 last: float. gemm1 (transB = 0) and mm2 quantize on axis 1.
    #expect(text.contains("%w1.fq = ai.bitswitch.FakeQuantWeight(%w1, %w1.scale) {axis = 1, bits = [8, 4], stored_bits = 8}"))
    #expect(text.contains("%w2.fq = ai.bitswitch.FakeQuantWeight(%w2, %w2.scale) {axis = 1, bits = [8, 4], stored_bits = 8}"))
    // Clip(min 0) is non-negative: unsigned.
    #expect(text.contains("%c.fq = ai.bitswitch.FakeQuantAct(%c, %c.act_scales) {bits = [8, 4], signed = 0}"))
    #expect(text.contains("%h3 = MatMul(%h1, %w3) @mm3"))
    // Channel 0 of w2 (axis 1) is [1, 3, 5]: mean 3, sigma sqrt(8/3); scale (3 + 3 sigma) / 128.
    let s = try #require(g.initializers["w2.scale"]).floats
    #expect(abs(s[0] - Float((3 + 3 * (8.0 / 3).squareRoot()) / 128)) < 1e-7)
    // The Gemm switches without a BN after it: warned. MatMul is not warned about (the plan's rule is conv/gemm).
    #expect(log.contains { $0.hasPrefix("warning: Gemm 'gemm1' switches bit-width but is not followed by BatchNormalization") })
    #expect(log.filter { $0.hasPrefix("warning") }.count == 1)
    try verify(g)

    // With int8 edges both MatMuls reading %h1 are quantized, mm3 pinned and mm2 not: two input quantizers.
    var h = try parseGraph(noBatchNormIR)
    try insertFakeQuant(&h, options: FakeQuantOptions(bits: [8, 4]))
    #expect(h.nodes.filter { $0.inputs.first == "h1" }.count == 2)
    // Two layers reading one value at the same pinning share one quantizer.
    var shared = try parseGraph(noBatchNormIR.replacingOccurrences(of: "%h3 = MatMul(%h1, %w3) @mm3",
                                                                     with: "%h3 = MatMul(%h1, %w3) @mm3\n  %h4 = Relu(%h3) @tail\n  %h5 = MatMul(%h4, %w3) @mm5")
                                    .replacingOccurrences(of: "%y = Add(%h2, %h3) @add", with: "%y0 = Add(%h2, %h3) @add\n  %y = Sub(%y0, %h5) @sub"))
    try insertFakeQuant(&shared, options: FakeQuantOptions(bits: [8, 4]))
    #expect(shared.nodes.filter { $0.inputs.first == "h1" }.count == 1)
    try verify(shared)
}

@Test func quantizedOrBrokenInputsGiveClearErrors() throws {
    var g = try parseGraph(cnnIR)
    try insertFakeQuant(&g)
    let again = #expect(throws: BitSwitchError.self) { try insertFakeQuant(&g) }
    #expect(again?.message.contains("already quantized") == true)
    #expect(again?.node == "conv0.weight_quant")
    var f = try parseGraph(cnnIR)
    #expect(throws: BitSwitchError.self) { try insertFakeQuant(&f, options: FakeQuantOptions(bits: [8, 1])) }
    #expect(throws: BitSwitchError.self) { try insertFakeQuant(&f, options: FakeQuantOptions(bits: [4, 4])) }
    var plain = try parseGraph("""
    graph @main opsets {"": 17} {
      input %x: f32[N,2]
      %y = Relu(%x) @r
      output %y: f32[N,2]
    }
    """)
    #expect(throws: BitSwitchError.self) { try insertFakeQuant(&plain) }
}

// MARK: Numbers through the rewritten graph

/// Initialises every activation scale with one training forward per bit-width, as the first training batch would.
func initialiseScales(_ g: inout Graph, input: Tensor, bits: [Int]) throws {
    registerKernels()
    let tg = try TrainingGraph(graph: g)
    for b in bits {
        _ = try tg.forward(feeds: [tg.inputName: input], context: TrainingContext(training: true, activeBits: b))
    }
    g = tg.exportGraph()
}

func sampleInput(_ shape: [Int], seed: UInt64) -> Tensor {
    var state = seed
    let n = shape.reduce(1, *)
    let v = (0..<n).map { _ -> Float in
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int(state >> 40) % 2001 - 1000) / 500
    }
    return Tensor(shape: shape, floats: v)
}

@Test func storedModelGivesTheSameOutputsBitForBitAtEveryBitWidth() throws {
    var g = try parseGraph(cnnIR)
    try insertFakeQuant(&g)
    let x = sampleInput([5, 1, 4, 4], seed: 7)
    try initialiseScales(&g, input: x, bits: [8, 6, 4, 2])
    #expect(g.initializers["pool0.act_scales"]!.floats.allSatisfy { $0 > 0 })
    let stored = try storeQuantized(g)
    for name in ["conv0.weight", "conv1.weight", "fc.weight"] {
        #expect(stored.initializers[name]?.dtype == .i8)
    }
    #expect(stored.initializers.values.filter { $0.dtype == .f32 }.allSatisfy { $0.count <= 8 })
    var distinct: Set<[UInt32]> = []
    for b in [8, 6, 4, 2] {
        let before = try Executor(graph: g, activeBits: b).run(["x": x])["logits"]!.floats.map(\.bitPattern)
        let after = try Executor(graph: stored, activeBits: b).run(["x": x])["logits"]!.floats.map(\.bitPattern)
        #expect(before == after, "bits \(b)")
        distinct.insert(after)
    }
    #expect(distinct.count == 4)
    // Storing twice changes nothing; the stored model verifies and refuses training.
    #expect(try storeQuantized(stored) == stored)
    try verify(stored)
    let tg = try TrainingGraph(graph: stored)
    #expect(throws: BitSwitchError.self) {
        try tg.forward(feeds: ["x": x], context: TrainingContext(training: true, activeBits: 8))
    }
}

@Test func storeQuantizedRefusesAWeightAlsoReadAsFloat() throws {
    var g = try parseGraph(cnnIR.replacingOccurrences(of: "  output %logits: f32[N,3]",
                                                      with: "  %w2 = Relu(%conv1.weight) @reader\n  output %logits: f32[N,3]\n  output %w2: f32[2,2,1,1]"))
    try insertFakeQuant(&g)
    let e = #expect(throws: BitSwitchError.self) { try storeQuantized(g) }
    #expect(e?.node == "reader")
}

@Test func bitsOptionParsesAndTableFormats() throws {
    #expect(try parseBitsOption("all") == nil)
    #expect(try parseBitsOption("6,4") == [6, 4])
    #expect(try parseBitsOption("4") == [4])
    #expect(throws: BitSwitchError.self) { try parseBitsOption("4,x") }
    #expect(formatBitTable([(8, 0.9912, 0.03125), (2, 0.5, 1.5)]) == "bits   top-1     loss\n   8   99.12%  0.0312\n   2   50.00%  1.5000\n")
    var g = try parseGraph(cnnIR)
    #expect(throws: BitSwitchError.self) { try trainedBitWidths(g) }
    try insertFakeQuant(&g, options: FakeQuantOptions(bits: [4, 3, 2]))
    #expect(try trainedBitWidths(g) == [4, 3, 2])
}
