import Foundation
import Testing
import BitSwitchIR
import BitSwitchRuntime
@testable import BitSwitchPasses

/// A pass with one option of every kind, registered for these tests only.
private let optionsProbe = Pass(
    name: "test-options",
    summary: "records its options",
    options: [
        PassOption("bits", .intList, default: "8,6,4,2", "bit-widths"),
        PassOption("rate", .float, default: "0.5", "a rate"),
        PassOption("label", .string, default: "none", "a label"),
        PassOption("flag", .bool, default: "false", "a switch"),
        PassOption("count", .int, default: "3", "a count"),
    ]
) { _, options, context in
    context.logger("bits=\(try options.ints("bits")) rate=\(try options.float("rate")) label=\(try options.string("label")) "
        + "flag=\(try options.bool("flag")) count=\(try options.int("count"))")
}

/// Reads a value no pass declared the way a later pass might misread one.
private let undeclaredReader = Pass(name: "test-undeclared-read", summary: "reads an option it does not declare") { _, options, _ in
    _ = try options.int("missing")
}

/// Breaks SSA, so the verifier has something to catch.
private let graphBreaker = Pass(name: "test-break-graph", summary: "reads an undefined value") { g, _, _ in
    g.nodes.append(Node(name: "broken", op: .relu, inputs: ["nowhere"], outputs: ["r"]))
}

private let needsDataset = Pass(name: "test-needs-dataset", summary: "needs a dataset") { _, _, context in
    let _: String = try context.require("dataset", by: "test-needs-dataset", providedBy: "the --data option of 'bitswitch train'")
}

private func registerTestPasses() {
    for p in [optionsProbe, undeclaredReader, graphBreaker, needsDataset] { PassRegistry.register(p) }
}

private func errorMessage(_ body: () throws -> Void) -> String {
    do { try body(); return "no error" } catch let e as BitSwitchError { return e.message } catch { return "\(error)" }
}

private let tinyGraph = """
    graph @main opsets {"": 17} {
      input %x: f32[N,4]
      %a = Identity(%x)
      %y = Relu(%a)
      output %y: f32[N,4]
    }
    """

@Test func builtinsAreRegisteredInOrder() {
    let names = PassRegistry.all.map(\.name)
    #expect(Array(names.prefix(4)) == ["canonicalize", "fold-constants", "infer-shapes", "fold-batchnorm"])
    #expect(PassRegistry.lookup("fold-batchnorm")?.summary.isEmpty == false)
    #expect(PassRegistry.lookup("nope") == nil)
}

@Test func inlinePipelineWithTypedOptions() throws {
    registerTestPasses()
    let p = try Pipeline.parse(" canonicalize , test-options{bits=4,3,2, rate=0.25,label=a b,flag=yes,count=-7},infer-shapes")
    #expect(p.steps.map(\.pass.name) == ["canonicalize", "test-options", "infer-shapes"])
    let o = p.steps[1].options
    #expect(try o.ints("bits") == [4, 3, 2])
    #expect(try o.float("rate") == 0.25)
    #expect(try o.string("label") == "a b")
    #expect(try o.bool("flag"))
    #expect(try o.int("count") == -7)
    #expect(p.description == "canonicalize,test-options{bits=4,3,2,count=-7,flag=yes,label=a b,rate=0.25},infer-shapes")
    #expect(try Pipeline.parse(p.description).description == p.description)

    let defaults = try Pipeline.parse("test-options{}").steps[0].options
    #expect(try defaults.ints("bits") == [8, 6, 4, 2])
    #expect(try defaults.float("rate") == 0.5)
    #expect(try defaults.bool("flag") == false)
    #expect(try PassOptions.defaults(for: optionsProbe).int("count") == 3)
}

@Test(arguments: [
    ("test-options{bits=8,x}", "pass 'test-options' option 'bits' expects a list of integers like 8,6,4,2, got '8,x'"),
    ("test-options{rate=fast}", "pass 'test-options' option 'rate' expects a finite number, got 'fast'"),
    ("test-options{flag=maybe}", "pass 'test-options' option 'flag' expects true or false, got 'maybe'"),
    ("fold-constants{max-elements=1.5}", "pass 'fold-constants' option 'max-elements' expects an integer, got '1.5'"),
    ("canonicalize{foo=1}", "pass 'canonicalize' has no option 'foo'; it takes no options"),
    ("fold-constants{max-element=1}", "pass 'fold-constants' has no option 'max-element'; its options are max-elements, infer-shapes, fold-qdq"),
    ("canonicalise", "unknown pass 'canonicalise'; did you mean 'canonicalize'?"),
    ("fold-batchnrm", "unknown pass 'fold-batchnrm'; did you mean 'fold-batchnorm'?"),
    ("zzzzzzzzzzzz", "unknown pass 'zzzzzzzzzzzz'; known passes: canonicalize, fold-constants, infer-shapes, fold-batchnorm"),
    ("canonicalize,,infer-shapes", "column 14: expected a pass name"),
    ("canonicalize{", "missing '}'"),
    ("canonicalize}", "'}' without '{'"),
    ("test-options{bits=1}x", "text after '}'"),
    ("{bits=1}", "expected a pass name before '{'"),
    ("test-options{bits=1,bits=2}", "option 'bits' of 'test-options' is set twice"),
    ("test-options{8}", "expected key=value in the options of 'test-options'"),
    ("", "expected a pass name"),
])
func inlinePipelineErrors(text: String, words: String) {
    registerTestPasses()
    let m = errorMessage { _ = try Pipeline.parse(text) }
    #expect(m.contains(words), "\(m)")
}

@Test func yamlPipeline() throws {
    registerTestPasses()
    let p = try Pipeline.parseYAML("""
        description: a test
        pipeline:
          - canonicalize
          - fold-batchnorm: {}
          - infer-shapes:
          - test-options: { bits: [8, 6, 4, 2], rate: 0.125, flag: true, label: "x, y" }
        """)
    #expect(p.steps.map(\.pass.name) == ["canonicalize", "fold-batchnorm", "infer-shapes", "test-options"])
    #expect(try p.steps[3].options.ints("bits") == [8, 6, 4, 2])
    #expect(try p.steps[3].options.float("rate") == 0.125)
    #expect(try p.steps[3].options.bool("flag"))
    #expect(try p.steps[3].options.string("label") == "x, y")
}

@Test(arguments: [
    ("pipeline:\n  - canonicalize\n  - canonicalise\n", "3:5: unknown pass 'canonicalise'; did you mean 'canonicalize'?"),
    ("pipeline:\n  - test-options: { bits: [8, x] }\n", "2:5: pass 'test-options' option 'bits' expects a list of integers"),
    ("pipeline:\n  - test-options: { nope: 1 }\n", "2:5: pass 'test-options' has no option 'nope'"),
    ("pipeline:\n  - test-options: { bits: [[8]] }\n", "option 'bits' must be a value or a flat list"),
    ("pipeline:\n  - test-options: 3\n", "options of 'test-options' must be a mapping"),
    ("pipeline:\n  - { canonicalize: {}, infer-shapes: {} }\n", "one pass per list item"),
    ("passes:\n  - canonicalize\n", "1:1: unknown key 'passes'"),
    ("pipeline: canonicalize\n", "'pipeline' must be a list of passes"),
    ("- canonicalize\n", "expected a mapping with a 'pipeline' list"),
    ("pipeline: [canonicalize\n", "not valid YAML"),
])
func yamlPipelineErrors(text: String, words: String) {
    registerTestPasses()
    let m = errorMessage { _ = try Pipeline.parseYAML(text) }
    #expect(m.contains(words), "\(m)")
}

@Test func shippedPipelineFilesLoad() throws {
    let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../passes").standardized
    let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".yaml") }
    #expect(!files.isEmpty)
    for f in files {
        let p = try Pipeline.load(path: dir.appendingPathComponent(f).path)
        #expect(!p.steps.isEmpty, "\(f)")
    }
    do {
        _ = try Pipeline.load(path: "/nonexistent/pipeline.yaml")
        Issue.record("loading a missing file succeeded")
    } catch let e as BitSwitchError {
        #expect(e.kind == .io)
        #expect(e.file == "/nonexistent/pipeline.yaml")
    }
}

@Test func optionGettersCheckDeclarations() throws {
    registerTestPasses()
    let o = try Pipeline.parse("test-options").steps[0].options
    #expect(errorMessage { _ = try o.int("bits") }.contains("reads option 'bits' as int, but declares it int-list"))
    var g = try parseGraph(tinyGraph)
    let m = errorMessage { try Pipeline.parse("test-undeclared-read").run(&g, context: PassContext()) }
    #expect(m.contains("pass 'test-undeclared-read' reads option 'missing', which it does not declare"), "\(m)")
}

@Test func verifierRunsAfterEachPassAndNamesIt() throws {
    registerTestPasses()
    var g = try parseGraph(tinyGraph)
    let m = errorMessage { try Pipeline.parse("canonicalize,test-break-graph,infer-shapes").run(&g, context: PassContext()) }
    #expect(m.contains("the graph is invalid after pass 'test-break-graph': input 'nowhere' is not defined"), "\(m)")
    var g2 = try parseGraph(tinyGraph)
    try Pipeline.parse("test-break-graph").run(&g2, context: PassContext(), verifyEach: false)
    #expect(g2.nodes.last?.name == "broken")
}

@Test func missingContextNamesWhatProvidesIt() throws {
    registerTestPasses()
    var g = try parseGraph(tinyGraph)
    let m = errorMessage { try Pipeline.parse("test-needs-dataset").run(&g, context: PassContext()) }
    #expect(m.contains("pass 'test-needs-dataset' needs 'dataset', which the --data option of 'bitswitch train' provides"), "\(m)")
    let ctx = PassContext()
    ctx.userInfo["dataset"] = "digits"
    try Pipeline.parse("test-needs-dataset").run(&g, context: ctx)
}

@Test func printIRAfterAllAndLogger() throws {
    registerTestPasses()
    var g = try parseGraph(tinyGraph)
    var dumps: [String] = []
    var log: [String] = []
    let ctx = PassContext(seed: 7, logger: { log.append($0) })
    try Pipeline.parse("canonicalize,test-options{count=5},infer-shapes").run(&g, context: ctx, printIRAfterAll: true) {
        dumps.append($0)
    }
    #expect(dumps.count == 3)
    #expect(dumps[0].hasPrefix("# IR after canonicalize\ngraph @main"))
    #expect(dumps[1].hasPrefix("# IR after test-options{count=5}\n"))
    for d in dumps { #expect(try printGraph(parseGraph(d)) + "" == d.components(separatedBy: "\n").dropFirst().joined(separator: "\n")) }
    #expect(log.contains("bits=[8, 6, 4, 2] rate=0.5 label=none flag=false count=5"))
    #expect(log.contains { $0.hasPrefix("canonicalize: removed 1 forwarding") })
    #expect(g.valueTypes["y"]?.description == "f32[N,4]")
}

@Test func registryIsSafeUnderConcurrentUse() async {
    await withTaskGroup(of: Void.self) { group in
        for k in 0..<64 {
            group.addTask {
                PassRegistry.register(Pass(name: "test-concurrent-\(k % 8)", summary: "") { _, _, _ in })
                _ = PassRegistry.lookup("canonicalize")
                _ = PassRegistry.all
            }
        }
    }
    let names = PassRegistry.all.map(\.name)
    #expect((0..<8).allSatisfy { names.contains("test-concurrent-\($0)") })
    #expect(names.filter { $0 == "test-concurrent-0" }.count == 1)
}

// MARK: passes keep the numbers

private func randomTensor(_ shape: [Int], seed: inout UInt64) -> Tensor {
    let n = shape.reduce(1, *)
    var v: [Float] = []
    for _ in 0..<n {
        seed = seed &* 6364136223846793005 &+ 1442695040888963407
        v.append(Float(Int(seed >> 40) % 2000 - 1000) / 1000)
    }
    return Tensor(shape: shape, floats: v)
}

private func maxDifference(_ a: Graph, _ b: Graph, input: Tensor) throws -> Float {
    let ya = try Executor(graph: a).run(["x": input])
    let yb = try Executor(graph: b).run(["x": input])
    var worst: Float = 0
    for o in a.outputs {
        let p = try #require(ya[o.name]).floats, q = try #require(yb[o.name]).floats
        #expect(p.count == q.count)
        for (s, t) in zip(p, q) { worst = max(worst, abs(s - t)) }
    }
    return worst
}

@Test func cleanupPipelineKeepsOutputs() throws {
    var seed: UInt64 = 42
    var g = Graph(opsets: ["": 17])
    g.inputs = [ValueInfo(name: "x", type: TensorType(.f32, [.symbol("N"), .known(2), .known(6), .known(6)]))]
    g.setInitializer("w", randomTensor([4, 2, 3, 3], seed: &seed))
    g.setInitializer("b", randomTensor([4], seed: &seed))
    for p in ["scale", "bias", "mean"] { g.setInitializer(p, randomTensor([4], seed: &seed)) }
    g.setInitializer("var", Tensor(shape: [4], floats: [0.5, 1, 2, 0.1]))
    g.setInitializer("fw", randomTensor([5, 36], seed: &seed))
    g.setInitializer("fb", randomTensor([5], seed: &seed))
    g.setInitializer("bscale", Tensor(shape: [5], floats: [1, 2, 0.5, 1, 1]))
    g.setInitializer("bbias", randomTensor([5], seed: &seed))
    g.setInitializer("bmean", randomTensor([5], seed: &seed))
    g.setInitializer("bvar", Tensor(shape: [5], floats: [1, 1, 3, 0.2, 1]))
    g.setInitializer("shape", Tensor(shape: [2], int64s: [0, -1]))
    g.nodes = [
        Node(name: "conv", op: .conv(ConvAttrs(pads: [1, 1, 1, 1])), inputs: ["x", "w", "b"], outputs: ["c"]),
        Node(name: "bn", op: .batchNormalization(epsilon: 1e-5, momentum: 0.9, trainingMode: false),
             inputs: ["c", "scale", "bias", "mean", "var"], outputs: ["n"]),
        Node(name: "relu", op: .relu, inputs: ["n"], outputs: ["r"]),
        Node(name: "pool", op: .maxPool(PoolAttrs(kernelShape: [2, 2], strides: [2, 2])), inputs: ["r"], outputs: ["p"]),
        Node(name: "id", op: .identity, inputs: ["p"], outputs: ["pi"]),
        Node(name: "reshape", op: .reshape(allowZero: false), inputs: ["pi", "shape"], outputs: ["f"]),
        Node(name: "fc", op: .gemm(GemmAttrs(alpha: 1, beta: 0.5, transB: true)), inputs: ["f", "fw", "fb"], outputs: ["l"]),
        Node(name: "bn2", op: .batchNormalization(epsilon: 1e-3, momentum: 0.9, trainingMode: false),
             inputs: ["l", "bscale", "bbias", "bmean", "bvar"], outputs: ["y"]),
    ]
    g.outputs = [ValueInfo(name: "y", type: TensorType(.f32, [.symbol("N"), .known(5)]))]
    var folded = g
    try Pipeline.load(path: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../passes/cleanup.yaml").standardized.path).run(&folded, context: PassContext())
    #expect(!folded.nodes.contains { if case .batchNormalization = $0.op { return true }; return false })
    #expect(!folded.nodes.contains { $0.op == .identity })
    #expect(folded.valueTypes["f"]?.description == "f32[N,36]")
    let x = randomTensor([3, 2, 6, 6], seed: &seed)
    #expect(try maxDifference(g, folded, input: x) < 1e-4)
}
