import BitSwitchCodegen
import BitSwitchIR
import BitSwitchRuntime
import Foundation
import Testing

/// A fresh temporary directory removed when the value goes away.
final class TempDir: @unchecked Sendable {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "bitswitch-codegen-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    func file(_ name: String) -> String { path + "/" + name }
}

/// Deterministic pseudo-random numbers (SplitMix64).
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
}

enum Harness {
    /// True when this CPU runs AVX2 code; otherwise prints why an AVX2 test is skipped.
    static func hasAVX2(_ what: String) -> Bool {
        if KernelISA.host == .avx2 || KernelISA.host == .avx512vnni { return true }
        print("skipped (\(what)): this CPU has no AVX2 (/proc/cpuinfo flags), so AVX2 kernels cannot run here")
        return false
    }

    /// True when this CPU runs AVX-512 VNNI code; otherwise prints why a VNNI test is skipped.
    static func hasVNNI(_ what: String) -> Bool {
        if KernelISA.host == .avx512vnni { return true }
        print("skipped (\(what)): this CPU has no AVX-512 VNNI (/proc/cpuinfo flags avx512_vnni, avx512bw), so the VNNI kernels cannot run here")
        return false
    }

    /// Shared build cache for the tests (content-hashed, so reuse across runs is safe).
    static let cache = NSTemporaryDirectory() + "bitswitch-codegen-test-cache"

    static func floats(_ n: Int, seed: UInt64, scale: Float = 2) -> [Float] {
        var r = SeededRandom(seed)
        return (0..<n).map { _ in Float.random(in: -scale...scale, using: &r) }
    }

    static func batch1Shape(_ g: Graph) -> [Int] {
        (g.inputs[0].type.shape ?? []).enumerated().map { i, d in d.value ?? (i == 0 ? 1 : 1) }
    }

    /// The interpreter's outputs for one sample, concatenated in graph-output order.
    static func interpret(_ g: Graph, _ x: [Float]) throws -> [Float] {
        let shape = batch1Shape(g)
        let out = try Executor(graph: g, threads: 1).run([g.inputs[0].name: Tensor(shape: shape, floats: x)])
        return g.outputs.flatMap { out[$0.name]?.floats ?? [] }
    }

    static func compile(_ input: EmitInput, _ dir: TempDir) throws -> CompiledModel {
        let bundle = dir.file("bundle")
        try emitBundle(input, to: bundle)
        let lib = try buildBundle(directory: bundle, options: CompileOptions(cacheDirectory: cache))
        return try CompiledModel(library: lib)
    }

    /// Emits, builds and runs `g`; expects the C outputs to equal the interpreter's bit for bit on `samples` inputs.
    static func expectBitExact(_ g: Graph, samples: Int = 3, seed: UInt64 = 1, scale: Float = 2, isa: KernelISA = .generic,
                               sourceLocation: SourceLocation = #_sourceLocation) throws {
        let dir = TempDir()
        let model = try compile(EmitInput(graph: g, isa: isa), dir)
        let n = batch1Shape(g).reduce(1, *)
        #expect(model.inputSize == n, sourceLocation: sourceLocation)
        var seen: Set<UInt32> = []
        defer {
            // Guard against vacuous comparisons: over all samples, the outputs must not be one constant.
            #expect(seen.count > 1, "every output of every sample is the same value", sourceLocation: sourceLocation)
        }
        for s in 0..<samples {
            let x = floats(n, seed: seed &+ UInt64(s) &* 7919, scale: scale)
            let want = try interpret(g, x)
            seen.formUnion(want.map(\.bitPattern))
            let got = try model.run(x)
            expectSameBits(got, want, "sample \(s)", sourceLocation: sourceLocation)
        }
    }

    static func expectSameBits(_ got: [Float], _ want: [Float], _ what: String,
                               sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(got.count == want.count, "\(what): \(got.count) vs \(want.count) values", sourceLocation: sourceLocation)
        let bad = zip(got, want).enumerated().first { $0.element.0.bitPattern != $0.element.1.bitPattern }
        #expect(bad == nil, "\(what): first difference at \(bad?.offset ?? -1): C \(bad?.element.0 ?? 0) vs interpreter \(bad?.element.1 ?? 0)",
                sourceLocation: sourceLocation)
    }

    static func list(_ v: [Int]) -> String { "[" + v.map(String.init).joined(separator: ", ") + "]" }

    static func randomInts(_ n: Int, _ range: ClosedRange<Int>, seed: UInt64) -> [Int] {
        var r = SeededRandom(seed)
        return (0..<n).map { _ in Int.random(in: range, using: &r) }
    }
}
