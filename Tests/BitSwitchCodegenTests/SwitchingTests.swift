import BitSwitchCodegen
import BitSwitchIR
import Foundation
import Testing

/// Several variants of one integer graph in one library: switching profiles and layer bits equals the interpreter
/// on the matching variant.
struct SwitchingTests {
    /// Two layers, "conv1" and "fc"; the parameters of each node are a function of the bits of its sites only.
    static func variant(conv1: LayerBits, fc: LayerBits, name: String = "net") throws -> Graph {
        func h(_ parts: Int...) -> UInt64 { parts.reduce(UInt64(1469598103934665603)) { ($0 ^ UInt64(bitPattern: Int64($1))) &* 1099511628211 } }
        let (cw, ca, fw, fa) = (conv1.w, conv1.a, fc.w, fc.a)
        let amax = (1 << (ca - 1)) - 1
        let rq1 = h(cw, ca, fa), rq2 = h(fw, fa, 99)
        let fmax = (1 << (fa - 1)) - 1
        let text = """
        graph @\(name) opsets {"": 17, "ai.bitswitch": 1} {
          metadata {"bitswitch.int.bits": "{\\"conv1\\": {\\"w\\": \(cw), \\"a\\": \(ca)}, \\"fc\\": {\\"w\\": \(fw), \\"a\\": \(fa)}}", "bitswitch.int.sites": "{\\"q\\": [\\"conv1:a\\"], \\"conv1\\": [\\"conv1:w\\", \\"conv1:a\\"], \\"rq1\\": [\\"conv1:w\\", \\"conv1:a\\", \\"fc:a\\"], \\"fc\\": [\\"fc:w\\", \\"fc:a\\"], \\"rq2\\": [\\"fc:w\\", \\"fc:a\\"]}"}
          input %x: f32[N,2,6,6]
          const %w1: i8[4,2,3,3] = \(Harness.list(Harness.randomInts(72, -128...127, seed: 1)))
          const %m1: i32[4] = \(Harness.list(Harness.randomInts(4, (1 << 29)...((1 << 30) - 1), seed: rq1)))
          const %n1: i32[4] = \(Harness.list(Harness.randomInts(4, (28 + cw + ca - fa)...(30 + cw + ca - fa), seed: rq1 + 1)))
          const %b1: i64[4] = \(Harness.list(Harness.randomInts(4, -(100 << 30)...(100 << 30), seed: rq1 + 2)))
          const %w2: i8[10,36] = \(Harness.list(Harness.randomInts(360, -128...127, seed: 2)))
          const %m2: i32[10] = \(Harness.list(Harness.randomInts(10, (1 << 29)...((1 << 30) - 1), seed: rq2)))
          const %n2: i32[10] = \(Harness.list(Harness.randomInts(10, (26 + fw + fa)...(28 + fw + fa), seed: rq2 + 1)))
          const %b2: i64[10] = \(Harness.list(Harness.randomInts(10, -(100 << 30)...(100 << 30), seed: rq2 + 2)))
          %xq = ai.bitswitch.Quantize(%x) {hi = \(amax), lo = \(-amax), scale = \(2.0 / Double(amax)), to = "i8", zero = 0} @q
          %c1 = ai.bitswitch.QConv(%xq, %w1) {group = 1, pads = [1, 1, 1, 1], strides = [2, 2], w_bits = \(cw), w_shift = \(8 - cw), x_zero = 0} @conv1
          %r1 = ai.bitswitch.Requant(%c1, %m1, %n1, %b1) {axis = 1, hi = \(fmax), lo = 0, to = "u8", zero = 0} @rq1
          %f = Flatten(%r1) {axis = 1} @flat
          %g = ai.bitswitch.QGemm(%f, %w2) {trans_b = 1, w_bits = \(fw), w_shift = \(8 - fw), x_zero = 0} @fc
          %r2 = ai.bitswitch.Requant(%g, %m2, %n2, %b2) {axis = 1, hi = 2147483647, lo = -2147483648, to = "i32", zero = 0} @rq2
          %y = ai.bitswitch.Dequantize(%r2) {scale = 0.0078125, zero = 0} @dq
          output %y: f32[*]
        }
        """
        return try parseGraph(text)
    }

    static let combos: [(String, LayerBits, LayerBits)] = [
        ("w8a8", LayerBits(w: 8, a: 8), LayerBits(w: 8, a: 8)),
        ("w4a4", LayerBits(w: 4, a: 4), LayerBits(w: 4, a: 4)),
        ("conv1-4", LayerBits(w: 4, a: 4), LayerBits(w: 8, a: 8)),
        ("fc-4", LayerBits(w: 8, a: 8), LayerBits(w: 4, a: 4)),
        ("w2a2", LayerBits(w: 2, a: 2), LayerBits(w: 2, a: 2)),
    ]

    /// Every ISA, with the weights re-made on each switch (the default) and made once per bit-width at bs_init
    /// (`prepack`: a switch only repoints the layers): the same outputs as the interpreter after every switch.
    @Test(arguments: [KernelISA.generic, .avx2, .avx512vnni], [false, true])
    func profilesAndLayerBitsSwitchInsideOneLibrary(isa: KernelISA, prepack: Bool) throws {
        if isa == .avx2 && !Harness.hasAVX2("profilesAndLayerBitsSwitchInsideOneLibrary(avx2)") { return }
        if isa == .avx512vnni && !Harness.hasVNNI("profilesAndLayerBitsSwitchInsideOneLibrary(avx512vnni)") { return }
        let variants = try Self.combos.map { try Self.variant(conv1: $0.1, fc: $0.2) }
        // Profiles: the uniform ones (the mixed variants are reachable through bs_set_layer_bits only).
        let input = EmitInput(variants: variants, profiles: [("8 bits", 0), ("4 bits", 1), ("2 bits", 4)], isa: isa, prepack: prepack)
        if prepack {
            // One region per distinct bit-width of each layer: a larger arena than the shared region per layer.
            func arena(_ e: EmitInput) throws -> Int? {
                let h = try generateBundle(e)["bitswitch_model.h"] ?? ""
                return h.split(separator: "\n").first { $0.hasPrefix("#define BS_ARENA_SIZE ") }.flatMap { Int($0.split(separator: " ")[2]) }
            }
            let shared = try #require(try arena(EmitInput(variants: variants, profiles: input.profiles, isa: isa)))
            #expect(try #require(try arena(input)) > shared)
        }
        let dir = TempDir()
        let model = try Harness.compile(input, dir)
        #expect(model.profileNames == ["8 bits", "4 bits", "2 bits"])
        #expect(model.layerNames == ["conv1", "fc"])
        let xs = (0..<3).map { Harness.floats(72, seed: UInt64(40 + $0), scale: 2.5) }
        func expectVariant(_ v: Int, _ what: String) throws {
            for (k, x) in xs.enumerated() {
                let want = try Harness.interpret(variants[v], x)
                #expect(Set(want).count > 1)
                Harness.expectSameBits(try model.run(x), want, "\(what), sample \(k)")
            }
        }
        // Profiles, in an order that changes every layer each time, twice round.
        for p in [0, 1, 2, 0, 2, 1] { try model.setProfile(p); try expectVariant(input.profiles[p].variant, "profile \(p)") }
        // Per layer: from w8a8, conv1 to 4 bits (variant 2), then fc to 4 bits (variant 1), then conv1 back to 8 (variant 3).
        try model.setProfile(0)
        try model.setLayerBits("conv1", w: 4, a: 4); try expectVariant(2, "conv1 w4a4")
        try model.setLayerBits("fc", w: 4, a: 4); try expectVariant(1, "both w4a4")
        try model.setLayerBits("conv1", w: 8, a: 8); try expectVariant(3, "fc w4a4")
        // A combination no variant has: an error, and nothing changes.
        #expect(throws: BitSwitchError.self) { try model.setLayerBits("conv1", w: 2, a: 2) }
        #expect(throws: BitSwitchError.self) { try model.setLayerBits("conv1", w: 4, a: 8) }
        #expect(throws: BitSwitchError.self) { try model.setLayerBits("nope", w: 8, a: 8) }
        try expectVariant(3, "after refused switches")
        // The quantized-input entry point: the Quantize output of the active variant, fed directly.
        try model.setProfile(1)
        let x = xs[0]
        let q = x.map { UInt8(bitPattern: Int8(max(-7, min(7, ($0 / Float(2.0 / 7.0)).rounded(.toNearestOrEven))))) }
        Harness.expectSameBits(try model.runQuantized(q), try Harness.interpret(variants[1], x), "run_quantized")
    }

    @Test func variantsMustShareStructureAndWeights() throws {
        let a = try Self.variant(conv1: LayerBits(w: 8, a: 8), fc: LayerBits(w: 8, a: 8))
        var b = try Self.variant(conv1: LayerBits(w: 4, a: 4), fc: LayerBits(w: 4, a: 4))
        b.nodes[3].name = "renamed"
        #expect { try generateBundle(EmitInput(variants: [a, b])) } throws: { "\($0)".contains("node 'flat'") }
        var c = try Self.variant(conv1: LayerBits(w: 4, a: 4), fc: LayerBits(w: 4, a: 4))
        c.setInitializer("w1", Tensor(dtype: .i8, shape: [4, 2, 3, 3], storage: .i8(.init(repeating: 1, count: 72))))
        #expect { try generateBundle(EmitInput(variants: [a, c])) } throws: { "\($0)".contains("'w1'") && "\($0)".contains("conv1") }
        // Same site bits but different parameters: the sites metadata cannot explain the difference.
        var d = try Self.variant(conv1: LayerBits(w: 8, a: 8), fc: LayerBits(w: 8, a: 8))
        d.setInitializer("b2", Tensor(dtype: .i32, shape: [10], storage: .i32(.init(repeating: 5, count: 10))))
        #expect { try generateBundle(EmitInput(variants: [a, d])) } throws: { "\($0)".contains("rq2") }
    }
}
