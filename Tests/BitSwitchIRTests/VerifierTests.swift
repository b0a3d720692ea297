import Testing
import BitSwitchIR

private func graph(_ body: String) throws -> Graph {
    try parseGraph("graph @g opsets {\"\": 17, \"ai.bitswitch\": 1} {\n\(body)\n}")
}

/// The verifier's message for `body`, or nil when it accepts it.
private func verifyError(_ body: String) throws -> BitSwitchError? {
    let g = try graph(body)
    do { try verify(g); return nil } catch let e as BitSwitchError { return e }
}

private let valid = """
    input %x: f32[N,1,8,8]
    const %w: f32[2,1,3,3] = [1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2]
    const %s: f32[4] = [0.1, 0.2, 0.3, 0.4]
    %y = Conv(%x, %w, %"") {pads = [1, 1, 1, 1]} @conv0
    %q = ai.bitswitch.FakeQuantAct(%y, %s) {bits = [8, 6, 4, 2], signed = 0}
    output %q: f32[N,2,8,8]
    """

@Test func acceptsAValidGraph() throws {
    #expect(try verifyError(valid) == nil)
}

@Test(arguments: [
    // (body, expected words in the message, node label)
    ("input %x: f32[1]\n%y = Relu(%x)\n%y = Relu(%x) @second\noutput %y: f32[1]", "'y' is defined more than once", "second"),
    ("input %x: f32[1]\n%y = Relu(%z) @r\noutput %y: f32[1]", "input 'z' is not defined", "r"),
    ("input %x: f32[1]\n%y = Relu(%z) @r\n%z = Relu(%x)\noutput %y: f32[1]", "used before the node that defines it", "r"),
    ("input %x: f32[1]\n%a = Add(%x, %b) @a\n%b = Relu(%a) @b\noutput %b: f32[1]", "used before the node that defines it", "a"),
    ("input %x: f32[1]\n%y = Relu(%x) @r\noutput %x: f32[1]\noutput %nope: f32[1]", "graph output 'nope' is not defined", nil),
    ("input %x: f32[1]\ninput %x: f32[1]", "graph input 'x' is declared twice", nil),
    ("input %x: f32[1]\n%y = Add(%x) @add\noutput %y: f32[1]", "takes 2 inputs, has 1", "add"),
    ("input %x: f32[1]\n%y = Relu(%x, %x) @r\noutput %y: f32[1]", "takes 1 inputs, has 2", "r"),
    ("input %x: f32[1]\n%y, %z = Relu(%x) @r\noutput %y: f32[1]", "has 1 outputs, has 2", "r"),
    ("input %x: f32[1]\n%y = Gemm(%x, %\"\") @gemm\noutput %y: f32[1]", "required input 1 is absent", "gemm"),
    ("input %x: f32[1]\n%y = Concat(%x, %\"\") {axis = 0} @cat\noutput %y: f32[1]", "required input 1 is absent", "cat"),
    ("input %x: f32[N,1,8,8]\nconst %w: f32[1,1,1,1] = [1]\n%y = Conv(%x, %w) {group = 0} @c\noutput %y: f32[1]", "group 0 must be >= 1", "c"),
    ("input %x: f32[N,1,8,8]\nconst %w: f32[1,1,1,1] = [1]\n%y = Conv(%x, %w) {pads = [1, 1]} @c\noutput %y: f32[1]", "pads [1, 1] must have 4 values", "c"),
    ("input %x: f32[N,1,8,8]\n%y = Conv(%x, %x) {kernel_shape = [3, 3], strides = [1]} @c\noutput %y: f32[1]", "strides [1] must have 2 values", "c"),
    ("input %x: f32[N,1,8,8]\n%y = Conv(%x, %x) {kernel_shape = [3, 0]} @c\noutput %y: f32[1]", "kernel_shape [3, 0] has a value 0 < 1", "c"),
    ("input %x: f32[N,1,8,8]\n%y = MaxPool(%x) {kernel_shape = [2, 2], pads = [0, 0, 0]} @p\noutput %y: f32[1]", "pads [0, 0, 0] must have 4 values", "p"),
    ("input %x: f32[2,3]\n%y = Transpose(%x) {perm = [0, 0]} @t\noutput %y: f32[1]", "perm [0, 0] is not a permutation", "t"),
    ("input %x: f32[2,3]\n%y = Dropout(%x) {ratio = 1.5} @d\noutput %y: f32[1]", "ratio 1.5 must be in [0, 1)", "d"),
    ("input %x: f32[4]\n%s = ai.bitswitch.FakeQuantWeight(%x) {bits = [8]} @fq\noutput %s: f32[4]", "takes 2 inputs, has 1", "fq"),
    ("input %x: f32[4]\n%s = ai.bitswitch.FakeQuantWeight(%x, %x) {bits = [4, 8]} @fq\noutput %s: f32[4]", "bits [4, 8] must be strictly descending", "fq"),
    ("input %x: f32[4]\n%s = ai.bitswitch.FakeQuantWeight(%x, %x) {bits = [8, 4], stored_bits = 6} @fq\noutput %s: f32[4]", "bit-width 8 is outside 1...6", "fq"),
    ("input %x: f32[4]\n%s = ai.bitswitch.FakeQuantWeight(%x, %x) {bits = [8, 4], pinned_bits = 9} @fq\noutput %s: f32[4]", "pinned_bits 9 must be in 1...stored_bits (8)", "fq"),
    ("input %x: f32[4]\n%s = ai.bitswitch.FakeQuantAct(%x, %\"\") {bits = [8, 4]} @fa\noutput %s: f32[4]", "required input 1 is absent", "fa"),
    ("input %x: f32[4]\nconst %s: f32[3] = [1, 1, 1]\n%q = ai.bitswitch.FakeQuantAct(%x, %s) {bits = [8, 4]} @fa\noutput %q: f32[4]", "hold 3 values for 2 bit-widths", "fa"),
    ("input %x: f32[N,2]\n%y = ai.bitswitch.SwitchableBatchNorm(%x, %x, %x, %x) {bits = [8, 4]} @sbn\noutput %y: f32[N,2]", "takes 5 inputs, has 4", "sbn"),
    ("input %x: f32[N,2]\nconst %p: f32[3,2] = [1, 1, 1, 1, 1, 1]\n%y = ai.bitswitch.SwitchableBatchNorm(%x, %p, %p, %p, %p) {bits = [8, 4]} @sbn\noutput %y: f32[N,2]", "expected [2, C] for bits [8, 4]", "sbn"),
    ("input %x: f32[N,2]\n%y = BatchNormalization(%x, %x, %x, %x, %x) {epsilon = -1.0} @bn\noutput %y: f32[N,2]", "epsilon -1.0 must be >= 0", "bn"),
])
func rejectsEachRule(body: String, words: String, node: String?) throws {
    let e = try #require(try verifyError(body))
    #expect(e.kind == .verify)
    #expect(e.message.contains(words), "\(e)")
    #expect(e.node == node)
    if node != nil { #expect(e.op != nil) }
}

@Test func inputWithDefaultConstantIsOneValue() throws {
    #expect(try verifyError("input %x: f32[1]\nconst %x: f32[1] = [2]\n%y = Relu(%x)\noutput %y: f32[1]") == nil)
}

@Test func errorTextNamesNodeAndDomainOp() throws {
    let e = try #require(try verifyError("input %x: f32[4]\n%s = ai.bitswitch.FakeQuantWeight(%x, %x) {bits = [2, 4]} @fq0\noutput %s: f32[4]"))
    #expect(e.description.contains("node 'fq0', op ai.bitswitch::FakeQuantWeight"))
}
