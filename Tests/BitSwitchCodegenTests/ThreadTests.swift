import BitSwitchCodegen
import BitSwitchIR
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The thread pool of the generated runtime (`bs_init(ctx, arena, threads)`, bs_threads.c): outputs are the same
/// bytes for every thread count, on the portable and the AVX2 kernels, and equal to the interpreter's; the pool
/// starts and joins cleanly (ThreadSanitizer and AddressSanitizer's leak check on a C driver).
struct ThreadTests {
    /// A conv stack big enough that every stage has many more tasks than threads, and that the requant, the residual
    /// add and the pools (at least `Emitter`'s 16,384 outputs) are split too: conv 3x3 (8 -> 24) read by two
    /// unfused Requants (u8 with a zero point, and i32), a 1x1 conv back to i32, QAdd, max pool 3x3 and average pool
    /// 3x3 (stride 1), depthwise 3x3 stride 2, 1x1 (24 -> 40), Flatten, gemm (7,840 -> 24), all at `bits`-bit weights.
    static func convStack(bits: Int, seed: UInt64) throws -> Graph {
        var r = SeededRandom(seed)
        func ints(_ n: Int, _ range: ClosedRange<Int>) -> [Int] { (0..<n).map { _ in Int.random(in: range, using: &r) } }
        var body = ""
        func const_(_ name: String, _ type: String, _ shape: [Int], _ v: [Int]) {
            body += "  const %\(name): \(type)[\(shape.map(String.init).joined(separator: ","))] = \(Harness.list(v))\n"
        }
        let shift = 8 - bits
        /// Requant tables whose outputs spread over the range for an accumulator of `fanIn` terms.
        func requant(_ name: String, _ acc: String, channels: Int, fanIn: Int, to: String, zero: Int) {
            let accMag = Double(fanIn).squareRoot() * Double(max(1, min(1 << (bits - 1), 128 >> shift))) * 40
            let nc = max(1, Int((log2(accMag) + 29.5 - log2(40)).rounded()))
            const_(name + "m", "i32", [channels], ints(channels, (1 << 29)...((1 << 30) - 1)))
            const_(name + "n", "i32", [channels], ints(channels, (nc - 1)...(nc + 1)))
            const_(name + "b", "i64", [channels], ints(channels, -(Int(accMag / 4) << 30)...(Int(accMag / 4) << 30)))
            let (lo, hi) = to == "u8" ? (0, 255) : to == "i8" ? (-128, 127) : (-(1 << 20), 1 << 20)
            body += "  %\(name) = ai.bitswitch.Requant(%\(acc), %\(name)m, %\(name)n, %\(name)b) {axis = 1, hi = \(hi), lo = \(lo), to = \"\(to)\", zero = \(zero)}\n"
        }
        func conv(_ out: String, _ x: String, _ w: String, _ shape: [Int], group: Int, kernel: Int, stride: Int, xZero: Int) {
            const_(w, "i8", shape, ints(shape.reduce(1, *), -128...127))
            let p = kernel / 2
            body += "  %\(out) = ai.bitswitch.QConv(%\(x), %\(w)) {dilations = [1, 1], group = \(group), pads = [\(p), \(p), \(p), \(p)], strides = [\(stride), \(stride)], w_bits = \(bits), w_shift = \(shift), x_zero = \(xZero)}\n"
        }
        body += "  %q = ai.bitswitch.Quantize(%x) {hi = 127, lo = -128, scale = 0.02, to = \"i8\", zero = 0}\n"
        conv("c1", "q", "w1", [24, 8, 3, 3], group: 1, kernel: 3, stride: 1, xZero: 0)
        requant("ru", "c1", channels: 24, fanIn: 72, to: "u8", zero: 9)
        requant("rx", "c1", channels: 24, fanIn: 72, to: "i32", zero: 0)
        conv("c1b", "ru", "w1b", [24, 24, 1, 1], group: 1, kernel: 1, stride: 1, xZero: 9)
        requant("rw", "c1b", channels: 24, fanIn: 24, to: "i32", zero: 0)
        body += "  %s = ai.bitswitch.QAdd(%rx, %rw) {a_zero = 0, b_zero = 0, hi = 255, lo = 0, m_a = \(Int.random(in: (1 << 29)..<(1 << 30), using: &r)), m_b = \(Int.random(in: (1 << 29)..<(1 << 30), using: &r)), n = 30, to = \"u8\", zero = 0}\n"
        body += "  %mp = ai.bitswitch.QMaxPool(%s) {kernel_shape = [3, 3], pads = [1, 1, 1, 1], strides = [1, 1]}\n"
        body += "  %ap = ai.bitswitch.QAveragePool(%mp) {count_include_pad = 1, kernel_shape = [3, 3], pads = [1, 1, 1, 1], strides = [1, 1], zero = 0}\n"
        conv("c2", "ap", "w2", [24, 1, 3, 3], group: 24, kernel: 3, stride: 2, xZero: 0)
        requant("r2", "c2", channels: 24, fanIn: 9, to: "i8", zero: 0)
        conv("c3", "r2", "w3", [40, 24, 1, 1], group: 1, kernel: 1, stride: 1, xZero: 0)
        requant("r3", "c3", channels: 40, fanIn: 24, to: "i8", zero: 0)
        body += "  %f = Flatten(%r3) {axis = 1}\n"
        const_("w4", "i8", [24, 7840], ints(24 * 7840, -128...127))
        body += "  %g = ai.bitswitch.QGemm(%f, %w4) {trans_b = 1, w_bits = \(bits), w_shift = \(shift), x_zero = 0}\n"
        requant("r4", "g", channels: 24, fanIn: 7840, to: "i8", zero: 0)
        body += "  %y = ai.bitswitch.Dequantize(%r4) {scale = 0.0625, zero = 0}\n"
        return try parseGraph("""
        graph @stack opsets {"": 17, "ai.bitswitch": 1} {
          input %x: f32[N,8,28,28]
        \(body)  output %y: f32[*]
        }
        """)
    }

    /// Depthwise convs only (what the direct depthwise kernel of the AVX2 / VNNI bundles takes): u8 input with a
    /// zero point, 13 channels (odd), 17 x 19; 3x3 stride 1, 5x5 stride 2 (pads 2), then i8 activations with a
    /// negative zero point through a 3x3 stride 1 with no pads and a 1x1; per-channel Requants, `bits`-bit weights.
    static func depthwiseStack(bits: Int, seed: UInt64) throws -> Graph {
        var r = SeededRandom(seed)
        func ints(_ n: Int, _ range: ClosedRange<Int>) -> [Int] { (0..<n).map { _ in Int.random(in: range, using: &r) } }
        let c = 13, shift = 8 - bits
        var body = "  %q = ai.bitswitch.Quantize(%x) {hi = 255, lo = 0, scale = 0.02, to = \"u8\", zero = 7}\n"
        func layer(_ i: Int, _ x: String, kernel: Int, stride: Int, pad: Int, xZero: Int, to: String, zero: Int) -> String {
            let w = "w\(i)", acc = "c\(i)", out = "r\(i)"
            body += "  const %\(w): i8[\(c),1,\(kernel),\(kernel)] = \(Harness.list(ints(c * kernel * kernel, -128...127)))\n"
            body += "  %\(acc) = ai.bitswitch.QConv(%\(x), %\(w)) {dilations = [1, 1], group = \(c), pads = [\(pad), \(pad), \(pad), \(pad)], strides = [\(stride), \(stride)], w_bits = \(bits), w_shift = \(shift), x_zero = \(xZero)}\n"
            let accMag = Double(kernel) * Double(max(1, min(1 << (bits - 1), 128 >> shift))) * 60
            let nc = max(1, Int((log2(accMag) + 29.5 - log2(40)).rounded()))
            body += "  const %\(out)m: i32[\(c)] = \(Harness.list(ints(c, (1 << 29)...((1 << 30) - 1))))\n"
            body += "  const %\(out)n: i32[\(c)] = \(Harness.list(ints(c, (nc - 1)...(nc + 1))))\n"
            body += "  const %\(out)b: i64[\(c)] = \(Harness.list(ints(c, -(Int(accMag / 4) << 30)...(Int(accMag / 4) << 30))))\n"
            let (lo, hi) = to == "u8" ? (0, 255) : (-128, 127)
            body += "  %\(out) = ai.bitswitch.Requant(%\(acc), %\(out)m, %\(out)n, %\(out)b) {axis = 1, hi = \(hi), lo = \(lo), to = \"\(to)\", zero = \(zero)}\n"
            return out
        }
        var x = layer(1, "q", kernel: 3, stride: 1, pad: 1, xZero: 7, to: "u8", zero: 5)
        x = layer(2, x, kernel: 5, stride: 2, pad: 2, xZero: 5, to: "i8", zero: -3)
        x = layer(3, x, kernel: 3, stride: 1, pad: 0, xZero: -3, to: "i8", zero: 2)
        x = layer(4, x, kernel: 1, stride: 1, pad: 0, xZero: 2, to: "i8", zero: 0)
        body += "  %y = ai.bitswitch.Dequantize(%\(x)) {scale = 0.0625, zero = 0}\n"
        return try parseGraph("""
        graph @dw opsets {"": 17, "ai.bitswitch": 1} {
          input %x: f32[N,\(c),17,19]
        \(body)  output %y: f32[*]
        }
        """)
    }

    /// The depthwise stack through the AVX2 and the VNNI bundles (the direct depthwise kernel, its channel tasks
    /// spread over the pool) gives the interpreter's bytes at 1 to 4 threads.
    @Test(arguments: [8, 4, 2]) func depthwiseStackIsBitExactAtEveryThreadCount(bits: Int) throws {
        let g = try Self.depthwiseStack(bits: bits, seed: UInt64(70 + bits))
        if Harness.hasAVX2("depthwiseStackIsBitExactAtEveryThreadCount") {
            try Self.expectSameAtEveryThreadCount(g, isa: .avx2, seed: 5)
        }
        if Harness.hasVNNI("depthwiseStackIsBitExactAtEveryThreadCount (VNNI part)") {
            try Self.expectSameAtEveryThreadCount(g, isa: .avx512vnni, seed: 5)
        }
    }

    /// The split requant, add and pools really are in the stack's generated code (so the tests below cover them).
    @Test func theStackSplitsItsElementwiseOpsAndPools() throws {
        let files = try generateBundle(EmitInput(graph: try Self.convStack(bits: 4, seed: 1)))
        let c = try #require(files["bitswitch_model.c"])
        for kind in ["BS_EW_REQUANT", "BS_EW_QADD", "BS_EW_MAXPOOL", "BS_EW_AVGPOOL"] {
            #expect(c.contains("{\(kind), "), "\(kind)")
        }
    }

    /// Loads one built library at 1, 2, 3 and 4 threads; every count gives the interpreter's bytes.
    static func expectSameAtEveryThreadCount(_ g: Graph, isa: KernelISA, samples: Int = 2, seed: UInt64,
                                             sourceLocation: SourceLocation = #_sourceLocation) throws {
        let dir = TempDir()
        let bundle = dir.file("bundle")
        try emitBundle(EmitInput(graph: g, isa: isa), to: bundle)
        let lib = try buildBundle(directory: bundle, options: CompileOptions(cacheDirectory: Harness.cache))
        let n = Harness.batch1Shape(g).reduce(1, *)
        let inputs = (0..<samples).map { Harness.floats(n, seed: seed &+ UInt64($0) &* 7919) }
        let want = try inputs.map { try Harness.interpret(g, $0) }
        #expect(Set(want.flatMap { $0.map(\.bitPattern) }).count > 1, "the outputs are one constant", sourceLocation: sourceLocation)
        for t in 1...4 {
            let model = try CompiledModel(library: lib, threads: t)
            #expect(model.threads == t, sourceLocation: sourceLocation)
            for (s, x) in inputs.enumerated() {
                // Twice: the pool's second run of a context reuses its workers.
                for rep in 0..<2 {
                    Harness.expectSameBits(try model.run(x), want[s], "\(isa.rawValue), \(t) threads, sample \(s), run \(rep)",
                                           sourceLocation: sourceLocation)
                }
            }
        }
    }

    @Test(arguments: [8, 5, 2]) func convStackIsBitExactAtEveryThreadCountWithPortableKernels(bits: Int) throws {
        try Self.expectSameAtEveryThreadCount(try Self.convStack(bits: bits, seed: UInt64(40 + bits)), isa: .generic, seed: 3)
    }

    @Test(arguments: [8, 5, 2]) func convStackIsBitExactAtEveryThreadCountWithAVX2Kernels(bits: Int) throws {
        guard Harness.hasAVX2("convStackIsBitExactAtEveryThreadCountWithAVX2Kernels") else { return }
        try Self.expectSameAtEveryThreadCount(try Self.convStack(bits: bits, seed: UInt64(40 + bits)), isa: .avx2, seed: 3)
    }

    /// The property test's random graphs (1-D/2-D, groups, strides, dilations, pools, residual adds) at every count.
    @Test(arguments: 0..<6) func randomGraphsAreBitExactAtEveryThreadCount(seed: Int) throws {
        let g = try PropertyTests.randomGraph(seed: UInt64(1000 + seed))
        try Self.expectSameAtEveryThreadCount(g, isa: .generic, seed: UInt64(seed))
        if Harness.hasAVX2("randomGraphsAreBitExactAtEveryThreadCount") {
            try Self.expectSameAtEveryThreadCount(g, isa: .avx2, seed: UInt64(seed))
        }
        if Harness.hasVNNI("randomGraphsAreBitExactAtEveryThreadCount (VNNI part)") {
            try Self.expectSameAtEveryThreadCount(g, isa: .avx512vnni, seed: UInt64(seed))
        }
    }

    @Test(arguments: [8, 5, 2]) func convStackIsBitExactAtEveryThreadCountWithVNNIKernels(bits: Int) throws {
        guard Harness.hasVNNI("convStackIsBitExactAtEveryThreadCountWithVNNIKernels") else { return }
        try Self.expectSameAtEveryThreadCount(try Self.convStack(bits: bits, seed: UInt64(40 + bits)), isa: .avx512vnni, seed: 3)
    }

    /// threads <= 0 means the online CPUs (sysconf), as onnxruntime's intra_op_num_threads = 0 means the machine.
    @Test func zeroThreadsMeansTheOnlineCPUs() throws {
        let dir = TempDir()
        let g = try Self.convStack(bits: 4, seed: 7)
        let model = try Harness.compile(EmitInput(graph: g, isa: .generic), dir)
        let lib = model.path
        let cpus = max(1, min(256, sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        #expect(try CompiledModel(library: lib, threads: 0).threads == cpus)
        #expect(try CompiledModel(library: lib, threads: -3).threads == cpus)
        #expect(model.threads == 1)
    }

    /// Built with -DBS_NO_THREADS and without -pthread (a target without pthreads): bs_init asked for 4 threads
    /// starts none and the outputs are the interpreter's.
    @Test func aBuildWithoutPthreadsRunsOnOneThread() throws {
        let cc = ProcessInfo.processInfo.environment["CC"] ?? "cc"
        let g = try Self.convStack(bits: 3, seed: 12)
        let n = Harness.batch1Shape(g).reduce(1, *)
        let c = NativeBuildTests.Case(input: EmitInput(graph: g), samples: [Harness.floats(n, seed: 80)], layerSteps: [])
        let dir = TempDir()
        let b = try NativeBuildTests.prepare(c, dir)
        let (rc, _, err) = try NativeBuildTests.run([cc, "-std=c11", "-O2", "-DBS_NO_THREADS", "-ffp-contract=off", "-Wall", "-Wextra",
                                                     "-o", "drv-serial"] + NativeBuildTests.sources + ["-lm"], cwd: b)
        try #require(rc == 0, "build without pthreads failed: \(err)")
        let (rrc, out, rerr) = try NativeBuildTests.run(["./drv-serial", "in.bin", "1"], cwd: b, environment: ["BS_THREADS": "4"])
        #expect(rrc == 0, "driver exit \(rrc): \(rerr)")
        let want = try c.samples.flatMap { try Harness.interpret(g, $0).map { String(format: "%08x", $0.bitPattern) } }
        #expect(out.split(separator: "\n").map(String.init) == want)
        #expect(rerr.contains("threads: 1 1 1"), "\(rerr)")
    }

    /// The bundle and a C driver built with -fsanitize=thread: the pool's handoffs race-free at 2 and 4 threads
    /// (AVX2 kernels where the CPU has them, else portable), the outputs those of one thread; then with
    /// AddressSanitizer on, bs_destroy joins every thread it started (the process's thread count is back).
    @Test func poolIsCleanUnderThreadAndAddressSanitizers() throws {
        let cc = ProcessInfo.processInfo.environment["CC"] ?? "cc"
        let isa: KernelISA = Harness.hasAVX2("poolIsCleanUnderThreadAndAddressSanitizers (AVX2 part)") ? .avx2 : .generic
        let g = try Self.convStack(bits: 6, seed: 11)
        let n = Harness.batch1Shape(g).reduce(1, *)
        let c = NativeBuildTests.Case(input: EmitInput(graph: g, isa: isa), samples: (0..<2).map { Harness.floats(n, seed: UInt64(70 + $0)) },
                                      layerSteps: [])
        let dir = TempDir()
        let b = try NativeBuildTests.prepare(c, dir)
        let sources = NativeBuildTests.sources + (isa == .avx2 ? ["bs_kernels_avx2.c"] : [])
        let arch = isa == .avx2 ? ["-mavx2"] : []
        let want = try c.samples.flatMap { try Harness.interpret(g, $0).map { String(format: "%08x", $0.bitPattern) } }
        for (san, options) in [("thread", "TSAN_OPTIONS"), ("address,undefined", "ASAN_OPTIONS")] {
            let exe = "drv-" + san.prefix(4)
            let (rc, _, err) = try NativeBuildTests.run([cc, "-std=c11", "-O1", "-g", "-fsanitize=\(san)", "-fno-omit-frame-pointer",
                                                         "-ffp-contract=off", "-pthread", "-Wall", "-Wextra", "-o", exe] + arch + sources + ["-lm"], cwd: b)
            try #require(rc == 0, "\(san) sanitizer build failed: \(err)")
            for t in [1, 2, 4] {
                let env = ["BS_THREADS": "\(t)", options: san == "thread" ? "halt_on_error=1 exitcode=66" : "detect_leaks=1"]
                let (rrc, out, rerr) = try NativeBuildTests.run(["./" + exe, "in.bin", "\(c.samples.count)"], cwd: b, environment: env)
                #expect(rrc == 0, "\(san), \(t) threads: driver exit \(rrc): \(rerr)")
                #expect(!rerr.contains("ThreadSanitizer") && !rerr.contains("AddressSanitizer") && !rerr.contains("LeakSanitizer")
                        && !rerr.contains("runtime error"), "\(san), \(t) threads: \(rerr)")
                #expect(out.split(separator: "\n").map(String.init) == want, "\(san), \(t) threads: outputs differ from the interpreter")
                // bs_init started t - 1 threads and bs_destroy joined them (ThreadSanitizer's runtime starts a thread
                // of its own with the first pthread_create).
                let counts = rerr.split(separator: "\n").last { $0.hasPrefix("threads: ") }.map { $0.split(separator: " ").dropFirst().compactMap { Int($0) } }
                let own = san == "thread" && t > 1 ? 1 : 0
                #expect(counts.map { $0.count == 3 && $0[1] == $0[0] + t - 1 + own && $0[2] == $0[0] + own } == true,
                        "\(san), \(t) threads: live threads before bs_init, after it, after bs_destroy: \(counts ?? [])")
            }
        }
    }
}
