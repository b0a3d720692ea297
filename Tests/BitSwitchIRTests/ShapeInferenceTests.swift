import Testing
import BitSwitchIR

private func inferred(_ body: String, opset: Int = 17) throws -> Graph {
    var g = try parseGraph("graph @g opsets {\"\": \(opset), \"ai.bitswitch\": 1} {\n\(body)\n}")
    try inferShapes(&g)
    return g
}

private func typeText(_ g: Graph, _ v: String) -> String { g.valueTypes[v].map(\.description) ?? "none" }

/// Constant data of the right size, so tests only state shapes.
private func const(_ name: String, _ shape: [Int]) -> String {
    let n = shape.reduce(1, *)
    return "const %\(name): f32[\(shape.map(String.init).joined(separator: ","))] = ["
        + Array(repeating: "0.5", count: n).joined(separator: ", ") + "]"
}

@Test func symbolicBatchFlowsThroughACNN() throws {
    let g = try inferred("""
        input %x: f32[N,1,8,8]
        \(const("w", [4, 1, 3, 3]))
        \(const("b", [4]))
        \(const("fw", [10, 16]))
        %c = Conv(%x, %w, %b) {strides = [2, 2], pads = [1, 1, 1, 1]}
        %r = Relu(%c)
        %p = MaxPool(%r) {kernel_shape = [2, 2], strides = [1, 1]}
        %a = AveragePool(%p) {kernel_shape = [2, 2], ceil_mode = 1, strides = [2, 2]}
        %f = Flatten(%a)
        %gm = Gemm(%f, %fw) {transB = 1}
        %s = Softmax(%gm)
        %gp = GlobalAveragePool(%c)
        output %s: f32[N,10]
        """)
    #expect(typeText(g, "c") == "f32[N,4,4,4]")
    #expect(typeText(g, "p") == "f32[N,4,3,3]")
    #expect(typeText(g, "a") == "f32[N,4,2,2]")
    #expect(typeText(g, "f") == "f32[N,16]")
    #expect(typeText(g, "gm") == "f32[N,10]")
    #expect(typeText(g, "s") == "f32[N,10]")
    #expect(typeText(g, "gp") == "f32[N,4,1,1]")
}

@Test func reshapeMinusOneAndShapeChainsKeepTheBatchSymbol() throws {
    let g = try inferred("""
        input %x: f32[N,3,4,4]
        const %zero: i64[1] = [0]
        const %minus: i64[1] = [-1]
        const %target: i64[2] = [-1, 48]
        const %copy: i64[3] = [0, 3, -1]
        %s = Shape(%x)
        %n = Gather(%s, %zero) {axis = 0}
        %t = Concat(%n, %minus) {axis = 0}
        %r = Reshape(%x, %t)
        %r2 = Reshape(%x, %target)
        %r3 = Reshape(%x, %copy)
        %tail = Shape(%x) {start = 1}
        %u = Unsqueeze(%x, %zero)
        %q = Squeeze(%u, %zero)
        output %r: f32[N,48]
        """)
    #expect(typeText(g, "s") == "i64[4]")
    #expect(typeText(g, "n") == "i64[1]")
    #expect(typeText(g, "t") == "i64[2]")
    #expect(typeText(g, "r") == "f32[N,48]")
    #expect(typeText(g, "r2") == "f32[N,48]")
    #expect(typeText(g, "r3") == "f32[N,3,16]")
    #expect(typeText(g, "tail") == "i64[3]")
    #expect(typeText(g, "u") == "f32[1,N,3,4,4]")
    #expect(typeText(g, "q") == "f32[N,3,4,4]")
}

@Test func elementTypesFollowEachOpsRule() throws {
    let g = try inferred("""
        input %x: f32[N,8]
        const %scale: f32[] = [0.5]
        const %zp: i8[] = [0]
        const %bits: f32[4] = [1, 1, 1, 1]
        %q = QuantizeLinear(%x, %scale, %zp)
        %q4 = QuantizeLinear(%x, %scale) {output_dtype = 22}
        %qu = QuantizeLinear(%x, %scale)
        %d = DequantizeLinear(%q, %scale, %zp)
        %m, %mask = Dropout(%x)
        %fq = ai.bitswitch.FakeQuantAct(%x, %bits) {bits = [8, 6, 4, 2], signed = 1}
        %fw = ai.bitswitch.FakeQuantWeight(%x, %bits) {bits = [8, 6, 4, 2]}
        output %d: f32[N,8]
        """, opset: 21)
    #expect(typeText(g, "q") == "i8[N,8]")
    #expect(typeText(g, "q4") == "i4[N,8]")
    #expect(typeText(g, "qu") == "u8[N,8]")
    #expect(typeText(g, "d") == "f32[N,8]")
    #expect(typeText(g, "m") == "f32[N,8]")
    #expect(typeText(g, "mask") == "bool[N,8]")
    #expect(typeText(g, "fq") == "f32[N,8]")
    #expect(typeText(g, "fw") == "f32[N,8]")
}

@Test func broadcastingMatMulTransposeConcatPadReduce() throws {
    let g = try inferred("""
        input %a: f32[N,1,5]
        input %b: f32[3,1]
        input %m: f32[5,7]
        input %m2: f32[2,5,7]
        input %v: f32[7]
        input %k: f32[N,2,5]
        const %pads: i64[6] = [0, 1, 0, 0, 2, 0]
        %s = Add(%a, %b)
        %mm = MatMul(%k, %m)
        %mv = MatMul(%mm, %v)
        %mb = MatMul(%k, %m2)
        %t = Transpose(%mm) {perm = [2, 0, 1]}
        %tr = Transpose(%b)
        %c = Concat(%k, %k) {axis = 1}
        %cn = Concat(%k, %a) {axis = 1}
        %p = Pad(%k, %pads)
        %rm = ReduceMean(%k) {axes = [-1], keepdims = 0}
        %rk = ReduceMean(%k)
        output %s: f32[N,3,5]
        """)
    #expect(typeText(g, "s") == "f32[N,3,5]")
    #expect(typeText(g, "mm") == "f32[N,2,7]")
    #expect(typeText(g, "mv") == "f32[N,2]")
    // N broadcast against 2 can only be 1 or 2; either way the result has 2.
    #expect(typeText(g, "mb") == "f32[2,2,7]")
    #expect(typeText(g, "t") == "f32[7,N,2]")
    #expect(typeText(g, "tr") == "f32[1,3]")
    #expect(typeText(g, "c") == "f32[N,4,5]")
    #expect(typeText(g, "cn") == "f32[N,3,5]")
    #expect(typeText(g, "p") == "f32[N,5,5]")
    #expect(typeText(g, "rm") == "f32[N,2]")
    #expect(typeText(g, "rk") == "f32[1,1,1]")
}

@Test func unknownInputsGiveUnknownDimsNotErrors() throws {
    let g = try inferred("""
        input %x: f32[*]
        input %y: f32[?,3]
        input %shape: i64[2]
        %r = Relu(%x)
        %f = Flatten(%y)
        %rs = Reshape(%y, %shape)
        %sh = Shape(%x)
        output %r: f32[*]
        """)
    #expect(typeText(g, "r") == "f32[*]")
    #expect(typeText(g, "f") == "f32[?,3]")
    #expect(typeText(g, "rs") == "f32[?,?]")
    #expect(typeText(g, "sh") == "i64[?]")
}

private func shapeError(_ body: String) throws -> BitSwitchError {
    var g = try parseGraph("graph @g opsets {\"\": 17} {\n\(body)\n}")
    do { try inferShapes(&g) } catch let e as BitSwitchError { return e }
    throw BitSwitchError(.internalError, "no error for:\n\(body)")
}

@Test(arguments: [
    ("input %x: f32[N,3,8,8]\n\(const("w", [4, 1, 3, 3]))\n%c = Conv(%x, %w) @conv", "input channels 3 of f32[N,3,8,8] do not match weight f32[4,1,3,3]", "conv", "Conv"),
    ("input %x: f32[N,4,8,8]\n\(const("w", [3, 2, 3, 3]))\n%c = Conv(%x, %w) {group = 2} @conv", "output channels 3 of weight f32[3,2,3,3] are not divisible by group 2", "conv", "Conv"),
    ("input %x: f32[N,1,8,8]\n\(const("w", [4, 1, 3, 3]))\n\(const("b", [5]))\n%c = Conv(%x, %w, %b) @conv", "bias f32[5] does not match", "conv", "Conv"),
    ("input %x: f32[N,1,2,2]\n\(const("w", [4, 1, 3, 3]))\n%c = Conv(%x, %w) @conv", "larger than the padded input f32[N,1,2,2]", "conv", "Conv"),
    ("input %x: f32[N,16]\n\(const("w", [10, 15]))\n%y = Gemm(%x, %w) {transB = 1} @fc", "inner dims differ: A f32[N,16] and B f32[10,15] (transB)", "fc", "Gemm"),
    ("input %x: f32[2,16]\n\(const("w", [16, 10]))\n\(const("c", [3, 10]))\n%y = Gemm(%x, %w, %c) @fc", "C f32[3,10] does not broadcast", "fc", "Gemm"),
    ("input %a: f32[N,3]\ninput %b: f32[4]\n%y = Add(%a, %b) @add", "operands f32[N,3] and f32[4] are not broadcastable", "add", "Add"),
    ("input %a: f32[2,3]\ninput %b: f32[4,5]\n%y = MatMul(%a, %b) @mm", "inner dims of f32[2,3] and f32[4,5] differ", "mm", "MatMul"),
    ("input %a: f32[N,3]\ninput %b: f32[N,3,1]\n%y = Concat(%a, %b) {axis = 1} @cat", "inputs have different ranks: f32[N,3], f32[N,3,1]", "cat", "Concat"),
    ("input %a: f32[N,3]\ninput %b: f32[N,4]\n%y = Concat(%a, %b) {axis = 0} @cat", "inputs differ on axis 1", "cat", "Concat"),
    ("input %x: f32[2,3]\nconst %s: i64[1] = [7]\n%y = Reshape(%x, %s) @rs", "cannot reshape f32[2,3] (6 elements) to [7]", "rs", "Reshape"),
    ("input %x: f32[2,3]\nconst %s: i64[2] = [4, -1]\n%y = Reshape(%x, %s) @rs", "elements do not divide", "rs", "Reshape"),
    ("input %x: f32[N,3]\n%y = Squeeze(%x) {axes = [1]} @sq", "axis 1 of f32[N,3] has size 3, not 1", "sq", "Squeeze"),
    ("input %x: f32[N,3,4]\n%y = Transpose(%x) {perm = [1, 0]} @t", "perm [1, 0] does not fit input f32[N,3,4]", "t", "Transpose"),
    ("input %x: f32[N,3,4,4]\nconst %s: f32[2] = [1, 1]\n%y = BatchNormalization(%x, %s, %s, %s, %s) @bn", "parameter 's' f32[2] does not match 3 channels", "bn", "BatchNormalization"),
    ("input %x: f32[N,3]\n%y = Flatten(%x) {axis = 3} @fl", "axis 3 is out of range for input f32[N,3]", "fl", "Flatten"),
    ("input %x: f32[N,3,8]\n%y = MaxPool(%x) {kernel_shape = [2, 2]} @mp", "needs an input of rank 4, got f32[N,3,8]", "mp", "MaxPool"),
])
func mismatchesNameNodeOpAndShapes(body: String, words: String, node: String, op: String) throws {
    let e = try shapeError(body)
    #expect(e.kind == .shape)
    #expect(e.message.contains(words), "\(e)")
    #expect(e.node == node)
    #expect(e.op == op)
}

@Test func recordedTypesFillWhatInferenceCannotKnow() throws {
    var g = try parseGraph("""
        graph @g opsets {"": 17} {
          input %x: f32[N,3]
          input %s: i64[2]
          %r = Reshape(%x, %s) : f32[N,3]
          output %r: f32[N,3]
        }
        """)
    try inferShapes(&g)
    #expect(typeText(g, "r") == "f32[N,3]")
}

/// The stored model feeds int8 integers to FakeQuantWeight; what comes out is still the float Ŵ.
@Test func fakeQuantWeightOutputsFloatFromStoredIntegers() throws {
    let g = try inferred("""
        input %x: f32[N,2]
        const %w: i8[3,2] = [1, -2, 3, 4, -5, 6]
        \(const("s", [3]))
        const %as: f32[2] = [0.1, 0.2]
        %wq = ai.bitswitch.FakeQuantWeight(%w, %s) {bits = [8, 4], stored_bits = 8}
        %xq = ai.bitswitch.FakeQuantAct(%x, %as) {bits = [8, 4], signed = 1}
        %y = Gemm(%xq, %wq) {transB = 1}
        output %y: f32[N,3]
        """)
    #expect(typeText(g, "wq") == "f32[3,2]")
    #expect(typeText(g, "xq") == "f32[N,2]")
}
