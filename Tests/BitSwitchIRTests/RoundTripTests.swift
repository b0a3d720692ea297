import Testing
@testable import BitSwitchIR

/// One node per Op case (several attribute variants each), so a new case that the printer or the mapping
/// mishandles fails here.
private let opVariants: [Op] = [
    .conv(ConvAttrs(kernelShape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], dilations: [1, 1], group: 2)),
    .conv(ConvAttrs(autoPad: .sameUpper)),
    .conv(ConvAttrs(kernelShape: [5], autoPad: .valid)),
    .gemm(GemmAttrs(alpha: 0.5, beta: 2, transA: true, transB: true)),
    .gemm(GemmAttrs()),
    .matMul, .add, .sub, .mul, .div, .relu,
    .leakyRelu(alpha: 0.1),
    .clip(min: -1, max: 6), .clip(min: nil, max: nil), .clip(min: 0, max: nil),
    .sigmoid,
    .hardSigmoid(alpha: 0.2, beta: 0.5), .hardSigmoid(alpha: 1.0 / 6.0, beta: 0.5),
    .hardSwish, .tanh,
    .batchNormalization(epsilon: 1e-5, momentum: 0.9, trainingMode: true),
    .batchNormalization(epsilon: 0.001, momentum: 0.99, trainingMode: false),
    .maxPool(PoolAttrs(kernelShape: [2, 2], strides: [2, 2], pads: [0, 0, 1, 1], dilations: [1, 1], ceilMode: true,
                       storageOrder: 1)),
    .maxPool(PoolAttrs(kernelShape: [3], autoPad: .sameLower)),
    .averagePool(PoolAttrs(kernelShape: [3], countIncludePad: true)),
    .averagePool(PoolAttrs(kernelShape: [2, 2], strides: [1, 1])),
    .globalAveragePool,
    .flatten(axis: 2), .flatten(axis: -1),
    .reshape(allowZero: true), .reshape(allowZero: false),
    .transpose(perm: [0, 2, 1]), .transpose(perm: nil),
    .concat(axis: -1),
    .squeeze(axes: [0]), .squeeze(axes: nil),
    .unsqueeze(axes: [1, -1]), .unsqueeze(axes: nil),
    .softmax(axis: -1, legacy: false), .logSoftmax(axis: 1, legacy: false),
    .identity,
    .dropout(ratio: 0.3), .dropout(ratio: 0.5),
    .pad(mode: .reflect, pads: [1, 1], value: 0.5), .pad(mode: .constant, pads: nil, value: 0),
    .pad(mode: .wrap, pads: nil, value: 0), .pad(mode: .edge, pads: [0, 2], value: 0),
    .reduceMean(axes: [1], keepDims: false, noopWithEmptyAxes: true),
    .reduceMean(axes: nil, keepDims: true, noopWithEmptyAxes: false),
    .shape(start: 1, end: -1), .shape(start: 0, end: nil),
    .gather(axis: 1), .gather(axis: 0),
    .quantizeLinear(axis: 0, saturate: false, outputType: .i4), .quantizeLinear(axis: 1, saturate: true, outputType: nil),
    .quantizeLinear(axis: 1, saturate: true, outputType: .u8),
    .dequantizeLinear(axis: 0),
    .fakeQuantWeight(FakeQuantWeightAttrs(bits: [8, 6, 4, 2], storedBits: 8, axis: 0, pinnedBits: 8, exactGradient: true)),
    .fakeQuantWeight(FakeQuantWeightAttrs(bits: [4, 3, 2])),
    .fakeQuantAct(FakeQuantActAttrs(bits: [4, 3, 2], signed: true)),
    .fakeQuantAct(FakeQuantActAttrs(bits: [8, 6], signed: false, pinnedBits: 8)),
    .switchableBatchNorm(bits: [8, 4], epsilon: 1e-3, momentum: 0.99),
    .switchableBatchNorm(bits: [8, 6, 4, 2], epsilon: 1e-5, momentum: 0.9, previous: "layer2.conv1.w.q"),
    .switchableLayerNorm(bits: [8, 4], axis: -1, epsilon: 1e-3),
    // integer dialect
    .quantize(scale: 0.5, zero: 3, lo: -128, hi: 127, to: .i8), .dequantize(scale: 0.25, zero: 0),
    .qconv(QConvAttrs(conv: ConvAttrs(kernelShape: [3, 3], pads: [1, 1, 1, 1]), wShift: 2, wBits: 6, xZero: 1)),
    .qgemm(QGemmAttrs(transB: true, wShift: 1, wBits: 4)),
    .requant(RequantAttrs(axis: 1, lo: 0, hi: 255, to: .u8)),
    .qadd(QAddAttrs(ma: 3, mb: 5, n: 4, lo: -128, hi: 127, to: .i8)),
    .qmaxPool(PoolAttrs(kernelShape: [2, 2])), .qavgPool(PoolAttrs(kernelShape: [2, 2], strides: [2, 2]), zero: 1),
    .qglobalAvgPool(zero: 2),
    // transformer family
    .layerNormalization(axis: -1, epsilon: 1e-12), .layerNormalization(axis: 1, epsilon: 1e-5),
    .gelu(tanh: false), .gelu(tanh: true),
    .erf, .sqrt, .reciprocal, .neg, .exp, .pow,
    .cast(to: .f64), .cast(to: .u16), .cast(to: .bool),
    .select, .equal, .less, .not, .expand,
    .constantOfShape(value: nil), .constantOfShape(value: Tensor(dtype: .i64, shape: [1], storage: .i64([7]))),
    .constantOfShape(value: Tensor(dtype: .f64, shape: [1], storage: .f64([0.25]))),
    .range,
    .slice(starts: nil, ends: nil, axes: nil),
    .split(axis: 1, sizes: nil, numOutputs: 3), .split(axis: -1, sizes: [2, 3], numOutputs: nil),
    .reduceSum(axes: nil, keepDims: true, noopWithEmptyAxes: true), .reduceSum(axes: [0, 2], keepDims: false, noopWithEmptyAxes: false),
    .reduceMax(axes: [-1], keepDims: true, noopWithEmptyAxes: false),
]

private func graphWithEveryOp() -> Graph {
    var g = Graph(name: "every-op", opsets: ["": 17, Op.bitswitchDomain: 1])
    g.inputs = [ValueInfo(name: "x", type: TensorType(.f32, [.symbol("N"), .known(3), .unknown]))]
    var prev = "x"
    for (k, op) in opVariants.enumerated() {
        let out = "v\(k)"
        g.nodes.append(Node(name: k % 2 == 0 ? "node\(k)" : "", op: op, inputs: [prev, "", "x"], outputs: [out, ""]))
        if k % 3 == 0 { g.valueTypes[out] = TensorType(.f32, [.symbol("N"), .known(k)]) }
        prev = out
    }
    g.outputs = [ValueInfo(name: prev, type: TensorType(.f32, nil))]
    return g
}

@discardableResult
private func roundTrip(_ g: Graph) throws -> Graph {
    let text = printGraph(g)
    let back = try parseGraph(text)
    #expect(printGraph(back) == text)
    return back
}

@Test func everyOpCaseRoundTrips() throws {
    let covered = Set(opVariants.map { "\($0.domain)::\($0.typeName)" })
    let all = Set(Op.supportedTypes.map { "\($0.domain)::\($0.type)" })
    #expect(covered == all)
    let g = graphWithEveryOp()
    let back = try roundTrip(g)
    #expect(back == g)
    for (a, b) in zip(back.nodes, g.nodes) { #expect(a.op == b.op) }
}

@Test func legacySoftmaxRoundTripsAtItsOpset() throws {
    var g = Graph(opsets: ["": 11])
    g.inputs = [ValueInfo(name: "x", type: TensorType(.f32, known: [2, 3]))]
    g.nodes = [Node(name: "", op: .softmax(axis: 1, legacy: true), inputs: ["x"], outputs: ["s"]),
               Node(name: "", op: .logSoftmax(axis: 0, legacy: true), inputs: ["s"], outputs: ["l"])]
    g.outputs = [ValueInfo(name: "l", type: TensorType(.f32, known: [2, 3]))]
    #expect(try roundTrip(g) == g)
}

@Test func everyDtypeConstantRoundTrips() throws {
    var g = Graph(name: "consts")
    g.setInitializer("f32", Tensor(dtype: .f32, shape: [2, 4], storage: .f32(
        [0.1, -0.25, .leastNonzeroMagnitude, -0.0, .greatestFiniteMagnitude, .infinity, -.infinity, 3])))
    g.setInitializer("f16", Tensor(dtype: .f16, shape: [3], storage: .f32([0.099975586, 65504, -6.1035156e-05])))
    g.setInitializer("i8", Tensor(dtype: .i8, shape: [3], storage: .i8([-128, 0, 127])))
    g.setInitializer("u8", Tensor(dtype: .u8, shape: [2], storage: .u8([0, 255])))
    g.setInitializer("i4", Tensor(dtype: .i4, shape: [2], storage: .i8([-8, 7])))
    g.setInitializer("u4", Tensor(dtype: .u4, shape: [2], storage: .u8([0, 15])))
    g.setInitializer("i32", Tensor(dtype: .i32, shape: [2], storage: .i32([.min, .max])))
    g.setInitializer("i64", Tensor(dtype: .i64, shape: [1, 2], storage: .i64([.min, .max])))
    g.setInitializer("bool", Tensor(dtype: .bool, shape: [2], storage: .bool([true, false])))
    g.setInitializer("scalar", Tensor(scalar: 2.5))
    g.setInitializer("empty", Tensor(dtype: .i64, shape: [0], storage: .i64([])))
    g.outputs = g.orderedInitializers.map { ValueInfo(name: $0.name, type: $0.tensor.type) }
    let back = try roundTrip(g)
    #expect(back == g)
    #expect(back.initializerOrder == g.initializerOrder)
    // -0.0 == 0.0 for Float, so check the sign bit too.
    if case .f32(let a)? = back.initializers["f32"]?.storage { #expect(a[3].sign == .minus) }
    else { Issue.record("f32 constant lost its storage kind") }
}

@Test func nanConstantsAndAttributesRoundTrip() throws {
    var g = Graph()
    g.setInitializer("n", Tensor(shape: [2], floats: [.nan, 1]))
    g.inputs = [ValueInfo(name: "x", type: TensorType(.f32, known: [2]))]
    g.nodes = [Node(name: "", op: .leakyRelu(alpha: .nan), inputs: ["x"], outputs: ["y"])]
    g.outputs = [ValueInfo(name: "y", type: TensorType(.f32, known: [2]))]
    let text = printGraph(g)
    #expect(text.contains("[nan, 1.0]"))
    let back = try parseGraph(text)
    #expect(back.initializers["n"]?.floats[0].isNaN == true)
    guard case .leakyRelu(let a) = back.nodes[0].op else { Issue.record("op changed"); return }
    #expect(a.isNaN)
}

@Test func awkwardNamesRoundTrip() throws {
    let names = ["a b", "x:", "a:b", "%", "ünï", "quote\"d", "new\nline", "tab\there", "_", "-1", "1.2", "back\\slash",
                 "conv0.weight", "/model/Conv_output_0", "#hash", "{brace}", "=", "input", "output"]
    var g = Graph(name: "name with spaces", opsets: ["": 17, "weird \"domain\"": 3])
    g.metadata = ["producer": "pytorch", "doc \"string\"": "line1\nline2", "": "empty key"]
    g.inputs = [ValueInfo(name: names[0], type: TensorType(.f32, [.symbol("batch size"), .symbol("?"),
                                                                     .symbol("3"), .symbol("N_1"), .unknown]))]
    var prev = names[0]
    for (k, n) in names.dropFirst().enumerated() {
        g.nodes.append(Node(name: "node \(k) \"q\"", op: .relu, inputs: [prev], outputs: [n]))
        prev = n
    }
    g.outputs = [ValueInfo(name: prev, type: TensorType(.f32, nil))]
    g.valueTypes["x:"] = TensorType(.f16, [])
    g.valueTypes["not a node output"] = TensorType(.bool, known: [1])
    #expect(try roundTrip(g) == g)
}

@Test func emptyGraphAndNodeWithoutOutputsRoundTrip() throws {
    #expect(try roundTrip(Graph(name: "", opsets: [:])) == Graph(name: "", opsets: [:]))
    var g = Graph()
    g.inputs = [ValueInfo(name: "x", type: TensorType(.f32, known: []))]
    g.nodes = [Node(name: "sink", op: .relu, inputs: ["x"], outputs: [])]
    #expect(try roundTrip(g) == g)
}

@Test(arguments: [
    AttrValue.int(-3), .float(1e-05), .float(-.infinity), .float(2), .string("SAME_UPPER"), .ints([]), .ints([1, -2]),
    .floats([]), .floats([1, 0.5, .greatestFiniteMagnitude]), .strings(["a", "b\"c"]), .strings([]),
    .tensor(Tensor(dtype: .i64, shape: [2, 1], storage: .i64([4, -5]))),
    .tensor(Tensor(dtype: .f16, shape: [], storage: .f32([0.5]))),
])
func attributeValueKindsSurviveText(_ v: AttrValue) throws {
    // Kinds no Op produces today (tensor, strings, empty lists) still need a spelling that reads back as the same kind.
    let text = IRText.attr(v)
    var p = IRParser(Array(text.utf8))
    #expect(try p.attrValue() == v, "\(text)")
}

@Test func printedFormIsStable() throws {
    var g = Graph(opsets: ["": 17, "ai.bitswitch": 1])
    g.inputs = [ValueInfo(name: "x", type: TensorType(.f32, [.symbol("N"), .known(1), .known(4), .known(4)]))]
    g.setInitializer("w", Tensor(shape: [2, 1, 1, 1], floats: [0.5, -1]))
    g.setInitializer("s", Tensor(shape: [2], floats: [0.1, 0.2]))
    g.nodes = [
        Node(name: "conv0", op: .conv(ConvAttrs(pads: [0, 0, 0, 0])), inputs: ["x", "w", ""], outputs: ["y"]),
        Node(name: "", op: .maxPool(PoolAttrs(kernelShape: [2, 2])), inputs: ["y"], outputs: ["m", ""]),
        Node(name: "", op: .fakeQuantAct(FakeQuantActAttrs(bits: [8, 4], signed: false)), inputs: ["m", "s"],
             outputs: ["q"]),
    ]
    g.valueTypes["y"] = TensorType(.f32, [.symbol("N"), .known(2), .known(4), .known(4)])
    g.outputs = [ValueInfo(name: "q", type: TensorType(.f32, [.symbol("N"), .known(2), .known(2), .known(2)]))]
    let expected = """
        graph @main opsets {"": 17, "ai.bitswitch": 1} {
          input %x: f32[N,1,4,4]
          const %w: f32[2,1,1,1] = [0.5, -1.0]
          const %s: f32[2] = [0.1, 0.2]
          %y = Conv(%x, %w, %"") {group = 1, pads = [0, 0, 0, 0]} : f32[N,2,4,4] @conv0
          %m, %"" = MaxPool(%y) {kernel_shape = [2, 2]}
          %q = ai.bitswitch.FakeQuantAct(%m, %s) {bits = [8, 4], signed = 0}
          output %q: f32[N,2,2,2]
        }

        """
    #expect(printGraph(g) == expected)
    let elided = printGraph(g, elideConstantsOver: 1)
    #expect(elided.contains("const %w: f32[2,1,1,1] = <elided 2 elements>"))
    let e = #expect(throws: BitSwitchError.self) { try parseGraph(elided) }
    #expect(e?.message.contains("elided") == true)
    #expect(e?.message.hasPrefix("3:") == true)
}

@Test func handWrittenTextWithCommentsParses() throws {
    let g = try parseGraph("""
        # a comment line
        graph @tiny opsets {"": 13} {
          input %x : f32[N,4]   # spaces before ':' are fine
          const %w: f32[4,2] = [1, 2, 3, 4, 5, 6, 7, 8]
          %y = MatMul(%x, %w)
          %z = Softmax(%y)
          output %z: f32[N,2]
        }
        """)
    #expect(g.nodes.count == 2)
    #expect(g.initializers["w"]?.floats == [1, 2, 3, 4, 5, 6, 7, 8])
    #expect(g.nodes[1].op == .softmax(axis: -1, legacy: false))
}

private func parseError(_ text: String) -> String {
    do { _ = try parseGraph(text); return "no error" } catch let e as BitSwitchError {
        #expect(e.kind == .parse)
        return e.message
    } catch { return "\(error)" }
}

@Test func parseErrorsSayWhereAndWhat() {
    let head = "graph @g opsets {\"\": 17} {\n"
    #expect(parseError(head + "  %y = Relu(%x\n}").hasPrefix("3:1: expected ')'"))
    #expect(parseError(head + "  %y = Frobnicate(%x)\n}").hasPrefix("2:8: Frobnicate: unsupported operator"))
    #expect(parseError(head + "  input %x: f33[2]\n}").hasPrefix("2:13: unknown element type 'f33'"))
    #expect(parseError(head + "  const %w: f32[3] = [1, 2]\n}").hasPrefix("2:22: f32[3] holds 3 elements, the data has 2"))
    #expect(parseError(head + "  const %w: i8[1] = [300]\n}").hasPrefix("2:22: expected a i8 element, found '300'"))
    #expect(parseError(head + "  const %w: i4[1] = [8]\n}").contains("expected a i4 element"))
    #expect(parseError(head + "  const %w: f32[N] = [1]\n}").contains("needs a fully known shape"))
    #expect(parseError(head + "  %m = MaxPool(%x)\n}").contains("required attribute 'kernel_shape' is missing"))
    #expect(parseError(head + "  %m = Conv(%x) {group = \"two\"}\n}").contains("'group' must be an int"))
    #expect(parseError(head + "  const %w: f32[] = [1]\n  const %w: f32[] = [2]\n}").hasPrefix("3:3: constant %w defined twice"))
    #expect(parseError(head + "  %a, %b = Relu(%x) : f32[1]\n}").contains("1 result types for 2 outputs"))
    #expect(parseError(head + "  %y = Relu(%x)\n").contains("expected a statement"))
    #expect(parseError(head + "}\n}").hasPrefix("3:1: expected end of input"))
    #expect(parseError("graf @g").hasPrefix("1:1: expected 'graph'"))
    #expect(parseError(head + "  input %\"open: f32[1]\n}").contains("unterminated string"))
}
