import BitSwitchCodegen
import BitSwitchIR
import Foundation
import Testing

/// Hand-written integer graphs (IR text): the generated C equals the Swift interpreter bit for bit.
struct OpTests {
    static func graph(input: String, _ body: String, outputs: [String]) throws -> Graph {
        let text = """
        graph @t opsets {"": 17, "ai.bitswitch": 1} {
          input %x: \(input)
        \(body)
        \(outputs.map { "  output %\($0): f32[*]" }.joined(separator: "\n"))
        }
        """
        return try parseGraph(text)
    }

    static func const_(_ name: String, _ type: String, _ shape: [Int], _ v: [Int]) -> String {
        "  const %\(name): \(type)\(Harness.list(shape).replacingOccurrences(of: " ", with: "")) = \(Harness.list(v))\n"
    }

    /// Quantize → QConv (→ Requant) → Dequantize with the given attributes.
    static func convGraph(spatial: [Int], c: Int, m: Int, group: Int, kernel: [Int], attrs: String, wBits: Int, wShift: Int,
                          xType: String = "i8", xZero: Int = 0, requant: String? = "per-channel", outType: String = "i8",
                          seed: UInt64 = 1) throws -> Graph {
        let ws = [m, c / group] + kernel
        var body = const_("w", "i8", ws, Harness.randomInts(ws.reduce(1, *), -128...127, seed: seed))
        let (lo, hi, zero) = xType == "u8" ? (0, 255, xZero) : (-128, 127, 0)
        body += "  %q = ai.bitswitch.Quantize(%x) {hi = \(hi), lo = \(lo), scale = 0.0157, to = \"\(xType)\", zero = \(zero)}\n"
        body += "  %c = ai.bitswitch.QConv(%q, %w) {\(attrs)group = \(group), w_bits = \(wBits), w_shift = \(wShift), x_zero = \(xZero)}\n"
        if let requant {
            let k = requant == "per-channel" ? m : 1
            body += const_("m", "i32", [k], Harness.randomInts(k, (1 << 29)...((1 << 30) - 1), seed: seed + 1))
            body += const_("n", "i32", [k], Harness.randomInts(k, 34...38, seed: seed + 2))
            body += const_("b", "i64", [k], Harness.randomInts(k, -(3000 << 30)...(3000 << 30), seed: seed + 3))
            let (olo, ohi) = outType == "u8" ? (0, 255) : (outType == "i32" ? (-100000, 100000) : (-128, 127))
            body += "  %r = ai.bitswitch.Requant(%c, %m, %n, %b) {axis = 1, hi = \(ohi), lo = \(olo), to = \"\(outType)\", zero = \(outType == "u8" ? 3 : 0)}\n"
            body += "  %y = ai.bitswitch.Dequantize(%r) {scale = 0.03125, zero = \(outType == "u8" ? 3 : 0)}\n"
        } else {
            body += "  %y = ai.bitswitch.Dequantize(%c) {scale = 0.001, zero = 0}\n"
        }
        let shape = "f32[N,\(c),\(spatial.map(String.init).joined(separator: ","))]"
        return try graph(input: shape, body, outputs: ["y"])
    }

    @Test func conv2DVariants() throws {
        let cases: [(String, [Int], Int, Int, Int, [Int], String)] = [
            ("plain padded", [7, 6], 3, 4, 1, [3, 3], "pads = [1, 1, 1, 1], "),
            ("strided asymmetric pads", [9, 8], 2, 3, 1, [3, 2], "pads = [0, 1, 2, 1], strides = [2, 3], "),
            ("grouped", [6, 6], 4, 6, 2, [3, 3], "pads = [1, 1, 1, 1], "),
            ("depthwise", [8, 5], 5, 5, 5, [3, 3], "pads = [1, 1, 1, 1], strides = [2, 1], "),
            ("dilated", [9, 9], 2, 3, 1, [3, 3], "dilations = [2, 3], pads = [2, 2, 2, 2], "),
            ("same_upper", [7, 5], 3, 2, 1, [4, 3], "auto_pad = \"SAME_UPPER\", strides = [2, 2], "),
            ("1x1", [4, 4], 6, 8, 1, [1, 1], ""),
        ]
        for (k, (name, sp, c, m, group, kernel, attrs)) in cases.enumerated() {
            let g = try Self.convGraph(spatial: sp, c: c, m: m, group: group, kernel: kernel, attrs: attrs, wBits: 6, wShift: 2,
                                       seed: UInt64(10 * k + 1))
            do { try Harness.expectBitExact(g) } catch { Issue.record("\(name): \(error)") }
        }
    }

    @Test func conv1DAndEveryWeightBitWidth() throws {
        // One graph, one branch per (w_bits, w_shift): QConv 1-D → Requant → Dequantize.
        var body = "  %q = ai.bitswitch.Quantize(%x) {hi = 127, lo = -128, scale = 0.0157, to = \"i8\", zero = 0}\n"
        var outputs: [String] = []
        for b in 1...8 {
            for shift in Set([8 - b, 0, min(7, 9 - b)]).sorted() {
                let t = "b\(b)s\(shift)", seed = UInt64(b * 10 + shift)
                body += Self.const_("w\(t)", "i8", [4, 3, 3], Harness.randomInts(36, -128...127, seed: seed))
                body += Self.const_("m\(t)", "i32", [4], Harness.randomInts(4, (1 << 29)...((1 << 30) - 1), seed: seed + 1))
                body += Self.const_("n\(t)", "i32", [4], Harness.randomInts(4, (b + 28)...(b + 31), seed: seed + 2))
                body += Self.const_("k\(t)", "i64", [4], Harness.randomInts(4, -(300 << 30)...(300 << 30), seed: seed + 3))
                body += "  %c\(t) = ai.bitswitch.QConv(%q, %w\(t)) {group = 1, pads = [1, 0], strides = [2], w_bits = \(b), w_shift = \(shift), x_zero = 0}\n"
                body += "  %r\(t) = ai.bitswitch.Requant(%c\(t), %m\(t), %n\(t), %k\(t)) {axis = 1, hi = 127, lo = -128, to = \"i8\", zero = 0}\n"
                body += "  %y\(t) = ai.bitswitch.Dequantize(%r\(t)) {scale = 0.03125, zero = 0}\n"
                outputs.append("y\(t)")
            }
        }
        try Harness.expectBitExact(try Self.graph(input: "f32[N,3,11]", body, outputs: outputs), samples: 3)
    }

    @Test func unsignedInputsZeroPointsAndRequantForms() throws {
        // u8 input with a zero point, per-tensor requant to u8 with a zero point.
        try Harness.expectBitExact(try Self.convGraph(spatial: [5, 6], c: 3, m: 4, group: 1, kernel: [3, 3], attrs: "pads = [1, 1, 1, 1], ",
                                                      wBits: 8, wShift: 0, xType: "u8", xZero: 128, requant: "per-tensor", outType: "u8"))
        // u8 input with zero 0 (negative inputs clamp), i32 requant output.
        try Harness.expectBitExact(try Self.convGraph(spatial: [5, 5], c: 2, m: 3, group: 1, kernel: [2, 2], attrs: "",
                                                      wBits: 4, wShift: 4, xType: "u8", xZero: 0, outType: "i32"))
        // Conv without requant: the int32 accumulators dequantized directly (unfused kernel).
        try Harness.expectBitExact(try Self.convGraph(spatial: [6, 6], c: 2, m: 3, group: 1, kernel: [3, 3], attrs: "strides = [2, 2], ",
                                                      wBits: 2, wShift: 6, requant: nil))
    }

    @Test func gemmBothLayoutsAndUnfusedRequant() throws {
        for transB in [0, 1] {
            for perChannel in [true, false] {
                let (k, m) = (12, 5)
                let ws = transB == 1 ? [m, k] : [k, m]
                var body = Self.const_("w", "i8", ws, Harness.randomInts(k * m, -128...127, seed: 5))
                let t = perChannel ? m : 1
                body += Self.const_("m", "i32", [t], Harness.randomInts(t, (1 << 29)...((1 << 30) - 1), seed: 6))
                body += Self.const_("n", "i32", [t], Harness.randomInts(t, 30...34, seed: 7))
                body += Self.const_("b", "i64", [t], Harness.randomInts(t, -(500 << 30)...(500 << 30), seed: 8))
                body += Self.const_("shape", "i64", [2], [1, 12])
                body += """
                  %q = ai.bitswitch.Quantize(%x) {hi = 127, lo = -128, scale = 0.02, to = "i8", zero = 0}
                  %f = Flatten(%q) {axis = 1}
                  %g = ai.bitswitch.QGemm(%f, %w) {trans_b = \(transB), w_bits = 5, w_shift = 3, x_zero = 0}
                  %r = ai.bitswitch.Requant(%g, %m, %n, %b) {axis = -1, hi = 100, lo = -90, to = "i8", zero = 0}
                  %y = ai.bitswitch.Dequantize(%r) {scale = 0.5, zero = 0}
                  %g2 = ai.bitswitch.QGemm(%f, %w) {trans_b = \(transB), w_bits = 8, w_shift = 0, x_zero = 0}
                  %y2 = ai.bitswitch.Dequantize(%g2) {scale = 0.001, zero = 0}

                """
                let g = try Self.graph(input: "f32[N,3,4]", body, outputs: ["y", "y2"])
                try Harness.expectBitExact(g)
            }
        }
    }

    @Test func residualAddPoolsAndShapeOps() throws {
        var body = Self.const_("w", "i8", [4, 2, 3, 3], Harness.randomInts(72, -128...127, seed: 21))
        for (name, v) in [("m", [(1 << 29) + 12345]), ("n", [12]), ("b", [(7 << 29) + 4321])] { body += Self.const_(name, name == "b" ? "i64" : "i32", [1], v) }
        body += Self.const_("m2", "i32", [4], Harness.randomInts(4, (1 << 29)...((1 << 30) - 1), seed: 22))
        body += Self.const_("n2", "i32", [4], [36, 37, 35, 38])
        body += Self.const_("b2", "i64", [4], [0, 10 << 29, -(10 << 29) - 77, 100 << 29])
        body += Self.const_("shape", "i64", [2], [1, -1])
        body += """
          %q = ai.bitswitch.Quantize(%x) {hi = 127, lo = -127, scale = 0.01, to = "i8", zero = 0}
          %c = ai.bitswitch.QConv(%q, %w) {group = 1, pads = [1, 1, 1, 1], w_bits = 8, w_shift = 0, x_zero = 0}
          %a = ai.bitswitch.Requant(%c, %m, %n, %b) {axis = 1, hi = 2147483647, lo = -2147483648, to = "i32", zero = 0}
          %r = ai.bitswitch.Requant(%c, %m2, %n2, %b2) {axis = 1, hi = 2147483647, lo = -2147483648, to = "i32", zero = 0}
          %s = ai.bitswitch.QAdd(%a, %r) {a_zero = 0, b_zero = 3, hi = 127, lo = 0, m_a = 805306368, m_b = -603979776, n = 31, to = "u8", zero = 2}
          %mp = ai.bitswitch.QMaxPool(%s) {ceil_mode = 1, kernel_shape = [3, 3], pads = [1, 1, 1, 1], strides = [2, 2]}
          %ap = ai.bitswitch.QAveragePool(%s) {ceil_mode = 1, count_include_pad = 1, kernel_shape = [3, 3], pads = [1, 1, 0, 1], strides = [2, 2], zero = 2}
          %ap2 = ai.bitswitch.QAveragePool(%a) {kernel_shape = [2, 3], pads = [1, 1, 0, 1], strides = [1, 2], zero = 0}
          %mpi = ai.bitswitch.QMaxPool(%q) {kernel_shape = [2, 2], pads = [1, 1, 1, 1], strides = [3, 3]}
          %gp = ai.bitswitch.QGlobalAveragePool(%r) {zero = 5}
          %cat = Concat(%mp, %ap) {axis = 1}
          %tr = Transpose(%cat) {perm = [0, 2, 3, 1]}
          %fl = Reshape(%tr, %shape)
          %y1 = ai.bitswitch.Dequantize(%fl) {scale = 0.25, zero = 2}
          %y2 = ai.bitswitch.Dequantize(%ap2) {scale = 0.001, zero = 0}
          %y3 = ai.bitswitch.Dequantize(%gp) {scale = 0.001, zero = 5}
          %y4 = ai.bitswitch.Dequantize(%mpi) {scale = 0.01, zero = 0}
          %sq = Squeeze(%y3) {axes = [2, 3]}

        """
        let g = try Self.graph(input: "f32[N,2,7,6]", body, outputs: ["y1", "y2", "sq", "y4"])
        try Harness.expectBitExact(g, samples: 3, scale: 1.5)
    }

    /// QConv → QMaxPool → Requant runs as QConv with the Requant in its epilogue → QMaxPool on bytes (Plan's
    /// requantBeforeMaxPool), bit-exact with the interpreter's original order; and not where it would not be exact: a
    /// negative multiplier, a window of padding only, a pool with a second reader.
    @Test func requantMovesBeforeMaxPool() throws {
        func body(_ m: [Int], pool: String, secondReader: Bool = false) -> String {
            var b = Self.const_("w", "i8", [4, 3, 3, 3], Harness.randomInts(108, -128...127, seed: 31))
            b += Self.const_("m", "i32", [4], m)
            b += Self.const_("n", "i32", [4], [37, 36, 38, 35])
            b += Self.const_("b", "i64", [4], [0, 9 << 29, -(9 << 29) - 5, 40 << 29])
            b += """
              %q = ai.bitswitch.Quantize(%x) {hi = 127, lo = -128, scale = 0.01, to = "i8", zero = 0}
              %c = ai.bitswitch.QConv(%q, %w) {group = 1, pads = [1, 1, 1, 1], w_bits = 8, w_shift = 0, x_zero = 0}
              %p = ai.bitswitch.QMaxPool(%c) {\(pool)}
              %r = ai.bitswitch.Requant(%p, %m, %n, %b) {axis = 1, hi = 255, lo = 3, to = "u8", zero = 3}
              %y = ai.bitswitch.Dequantize(%r) {scale = 0.03125, zero = 3}

            """
            if secondReader { b += "  %y2 = ai.bitswitch.Dequantize(%p) {scale = 0.001, zero = 0}\n" }
            return b
        }
        let ms = Harness.randomInts(4, (1 << 29)...((1 << 30) - 1), seed: 32)
        let cases: [(String, String, Bool, [Int], Bool)] = [
            ("2x2 stride 2", "kernel_shape = [2, 2], strides = [2, 2]", true, ms, false),
            ("3x3 stride 2 pad 1, ceil", "ceil_mode = 1, kernel_shape = [3, 3], pads = [1, 1, 1, 1], strides = [2, 2]", true, ms, false),
            ("a negative multiplier", "kernel_shape = [2, 2], strides = [2, 2]", false, [ms[0], -ms[1], ms[2], ms[3]], false),
            ("windows of padding only", "dilations = [1, 5], kernel_shape = [1, 2], pads = [0, 4, 0, 4]", false, ms, false),
            ("the pool read twice", "kernel_shape = [2, 2], strides = [2, 2]", false, ms, true),
        ]
        for (name, pool, moved, m, second) in cases {
            let g = try Self.graph(input: "f32[N,3,\(name.hasPrefix("windows") ? "6,2" : "7,6")]", body(m, pool: pool, secondReader: second),
                                   outputs: second ? ["y", "y2"] : ["y"])
            for isa in [KernelISA.generic] + (Harness.hasAVX2("requant before max pool") ? [.avx2] : []) {
                do { try Harness.expectBitExact(g, samples: 3, scale: 1.5, isa: isa) } catch { Issue.record("\(name), \(isa): \(error)") }
                let dir = TempDir()
                try emitBundle(EmitInput(graph: g, isa: isa), to: dir.file("b"))
                let c = try String(contentsOfFile: dir.file("b/bitswitch_model.c"), encoding: .utf8)
                // The pool's input container is the line's first one (a direct call or an ew job; a pool the Requant
                // could not move before runs it inside, as a fused reader).
                let pool = c.split(separator: "\n").first { $0.contains("qmaxpool__") || $0.contains("BS_EW_MAXPOOL") } ?? ""
                let input = pool.range(of: "BS_T_").map { pool[$0.upperBound...].prefix(2) } ?? ""
                #expect((input == "U8") == moved, "\(name), \(isa): the pool reads \(pool)")
            }
        }
    }

    /// A QAdd or max pool whose int32 result only Requants read (one or two: ResNet's residual sum and stem pool) runs
    /// them inside its job, a chunk at a time (Plan.planFusedReaders, bs_ew_run_readers): bit-exact on every ISA,
    /// with rows longer than a chunk (4480 int32 > 4096) and tasks that end inside a row; not with another reader.
    /// 17920 values: the Requants left on their own run as split jobs too.
    @Test func requantReadersRunInsideQAddAndMaxPool() throws {
        var body = Self.const_("w", "i8", [4, 2, 3, 3], Harness.randomInts(72, -128...127, seed: 41))
        for (sfx, k, seed) in [("", 4, 42), ("2", 4, 45), ("3", 1, 48)] as [(String, Int, UInt64)] {
            body += Self.const_("m" + sfx, "i32", [k], Harness.randomInts(k, (1 << 29)...((1 << 30) - 1), seed: seed))
            body += Self.const_("n" + sfx, "i32", [k], Harness.randomInts(k, (sfx == "2" ? 38 : 30)...(sfx == "2" ? 40 : 32), seed: seed + 1))
            body += Self.const_("b" + sfx, "i64", [k], Harness.randomInts(k, -(1 << 40)...(1 << 40), seed: seed + 2))
        }
        body += """
          %q = ai.bitswitch.Quantize(%x) {hi = 127, lo = -128, scale = 0.01, to = "i8", zero = 0}
          %c = ai.bitswitch.QConv(%q, %w) {group = 1, pads = [1, 1, 1, 1], w_bits = 8, w_shift = 0, x_zero = 0}
          %a = ai.bitswitch.Requant(%c, %m, %n, %b) {axis = 1, hi = 2147483647, lo = -2147483648, to = "i32", zero = 0}
          %s = ai.bitswitch.QAdd(%a, %c) {a_zero = 0, b_zero = 0, hi = 2147483647, lo = -2147483648, m_a = 536870912, m_b = 247259807, n = 29, to = "i32", zero = 0}
          %r1 = ai.bitswitch.Requant(%s, %m2, %n2, %b2) {axis = 1, hi = 255, lo = 0, to = "u8", zero = 3}
          %r2 = ai.bitswitch.Requant(%s, %m3, %n3, %b3) {axis = 1, hi = 2147483647, lo = 0, to = "i32", zero = 0}
          %p = ai.bitswitch.QMaxPool(%c) {kernel_shape = [3, 3], pads = [1, 1, 1, 1], strides = [2, 2]}
          %p1 = ai.bitswitch.Requant(%p, %m2, %n2, %b2) {axis = 1, hi = 255, lo = 0, to = "u8", zero = 3}
          %p2 = ai.bitswitch.Requant(%p, %m3, %n3, %b3) {axis = 1, hi = 2147483647, lo = 0, to = "i32", zero = 0}
          %t = ai.bitswitch.QAdd(%c, %a) {a_zero = 0, b_zero = 0, hi = 2147483647, lo = -2147483648, m_a = 536870912, m_b = 247259807, n = 29, to = "i32", zero = 0}
          %t1 = ai.bitswitch.Requant(%t, %m2, %n2, %b2) {axis = 1, hi = 255, lo = 0, to = "u8", zero = 3}
          %y1 = ai.bitswitch.Dequantize(%r1) {scale = 0.03125, zero = 3}
          %y2 = ai.bitswitch.Dequantize(%r2) {scale = 0.00001, zero = 0}
          %y3 = ai.bitswitch.Dequantize(%p1) {scale = 0.03125, zero = 3}
          %y4 = ai.bitswitch.Dequantize(%p2) {scale = 0.00001, zero = 0}
          %y5 = ai.bitswitch.Dequantize(%t1) {scale = 0.03125, zero = 3}
          %y6 = ai.bitswitch.Dequantize(%t) {scale = 0.00001, zero = 0}

        """
        let g = try Self.graph(input: "f32[N,2,70,64]", body, outputs: ["y1", "y2", "y3", "y4", "y5", "y6"])
        var isas: [KernelISA] = [.generic]
        if Harness.hasAVX2("fused Requant readers") { isas.append(.avx2) }
        if Harness.hasVNNI("fused Requant readers") { isas.append(.avx512vnni) }
        for isa in isas {
            do { try Harness.expectBitExact(g, samples: 2, scale: 1.5, isa: isa) } catch { Issue.record("\(isa): \(error)") }
            let dir = TempDir()
            try emitBundle(EmitInput(graph: g, isa: isa), to: dir.file("b"))
            let c = try String(contentsOfFile: dir.file("b/bitswitch_model.c"), encoding: .utf8)
            let forward = c.components(separatedBy: "static void bs_forward(bs_ctx *ctx, int skip_input_quantize) {").last ?? ""
            let requants = forward.components(separatedBy: "\n").filter { $0.contains("(Requant) */") }
            // a and t1 run on their own (t has a Dequantize reader too); r1, r2, p1, p2 inside the QAdd s and the pool.
            #expect(requants.count == 2, "\(isa): Requants outside a fused job: \(requants)")
            #expect(forward.components(separatedBy: ", 2, {{&").count - 1 == 2, "\(isa): two jobs with two fused readers each")
        }
    }

    @Test func quantizeDequantizeEdgeValues() throws {
        let body = """
          %q = ai.bitswitch.Quantize(%x) {hi = 200, lo = 3, scale = 0.0625, to = "u8", zero = 100}
          %y = ai.bitswitch.Dequantize(%q) {scale = 0.0625, zero = 100}
          %q2 = ai.bitswitch.Quantize(%x) {hi = 100000, lo = -100000, scale = 0.001, to = "i32", zero = -7}
          %y2 = ai.bitswitch.Dequantize(%q2) {scale = 0.001, zero = -7}

        """
        let g = try Self.graph(input: "f32[N,16]", body, outputs: ["y", "y2"])
        let dir = TempDir()
        let model = try Harness.compile(EmitInput(graph: g), dir)
        // Ties (round half to even), values beyond the clamp, infinities, NaN, negative zero.
        let x: [Float] = [0.03125, 0.09375, -0.03125, -0.09375, 1e9, -1e9, .infinity, -.infinity, .nan, -0.0,
                          5.5, -6.25, 0.15625, 100.0, 7.96875, 1e-30]
        Harness.expectSameBits(try model.run(x), try Harness.interpret(g, x), "edge values")
        #expect(model.quantizedInputBytes == 0)   // two Quantize nodes read the input
    }
}
