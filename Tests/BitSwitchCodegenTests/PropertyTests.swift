import BitSwitchCodegen
import BitSwitchIR
import Foundation
import Testing

/// Random small conv / residual graphs (seeded): shapes, strides, groups, pads, dilations, bit-widths, containers.
struct PropertyTests {
    static func randomGraph(seed: UInt64) throws -> Graph {
        var r = SeededRandom(seed)
        func pick<T>(_ a: [T]) -> T { a[Int.random(in: 0..<a.count, using: &r)] }
        func ints(_ n: Int, _ range: ClosedRange<Int>) -> [Int] { (0..<n).map { _ in Int.random(in: range, using: &r) } }
        let oneD = Int.random(in: 0..<4, using: &r) == 0
        var c = pick([1, 2, 3, 4, 6])
        var spatial = oneD ? [Int.random(in: 5...12, using: &r)] : [Int.random(in: 4...9, using: &r), Int.random(in: 4...9, using: &r)]
        var body = ""
        var k = 0
        func fresh(_ base: String) -> String { k += 1; return "\(base)\(k)" }
        let unsigned = Bool.random(using: &r)
        var xType = unsigned ? "u8" : "i8"
        var xZero = unsigned ? pick([0, 128, 17]) : 0
        var cur = "q0"
        body += "  %q0 = ai.bitswitch.Quantize(%x) {hi = \(unsigned ? 255 : 127), lo = \(unsigned ? 0 : -128), scale = 0.02, to = \"\(xType)\", zero = \(xZero)}\n"
        func const_(_ name: String, _ type: String, _ shape: [Int], _ v: [Int]) {
            body += "  const %\(name): \(type)[\(shape.map(String.init).joined(separator: ","))] = \(Harness.list(v))\n"
        }
        /// One QConv (+ Requant to `to`) on `cur`; returns the output name and its shape.
        func conv(m: Int, group: Int, kernel: [Int], strides: [Int], pads: [Int], dil: [Int], to: String) -> (String, [Int]) {
            let w = fresh("w"), out = fresh("c"), rq = fresh("r")
            let ws = [m, c / group] + kernel
            const_(w, "i8", ws, ints(ws.reduce(1, *), -128...127))
            let bits = Int.random(in: 1...8, using: &r)
            let shift = Bool.random(using: &r) ? 8 - bits : Int.random(in: 0...7, using: &r)
            body += "  %\(out) = ai.bitswitch.QConv(%\(cur), %\(w)) {dilations = \(Harness.list(dil)), group = \(group), pads = \(Harness.list(pads)), strides = \(Harness.list(strides)), w_bits = \(bits), w_shift = \(shift), x_zero = \(xZero)}\n"
            let perChannel = Bool.random(using: &r), t = perChannel ? m : 1
            const_(rq + "m", "i32", [t], ints(t, (1 << 29)...((1 << 30) - 1)))
            // Shift and bias from the accumulator's expected size, so that outputs spread over the range
            // (neither all clamped nor all zero) and the comparison is not vacuous.
            let fanIn = Double(c / group * kernel.reduce(1, *))
            let accMag = fanIn.squareRoot() * Double(max(1, min(1 << (bits - 1), 128 >> shift))) * 40
            let nc = max(1, Int((log2(accMag) + 29.5 - log2(40)).rounded()))
            const_(rq + "n", "i32", [t], ints(t, (nc - 1)...(nc + 1)))
            const_(rq + "b", "i64", [t], ints(t, -(Int(accMag / 4) << 30)...(Int(accMag / 4) << 30)))
            let (lo, hi, z) = to == "u8" ? (0, 255, Int.random(in: 0...20, using: &r)) : (to == "i8" ? (-128, 127, 0) : (-(1 << 20), 1 << 20, 0))
            body += "  %\(rq) = ai.bitswitch.Requant(%\(out), %\(rq)m, %\(rq)n, %\(rq)b) {axis = 1, hi = \(hi), lo = \(lo), to = \"\(to)\", zero = \(z)}\n"
            let outSpatial = spatial.indices.map { i in (spatial[i] + pads[i] + pads[i + spatial.count] - ((kernel[i] - 1) * dil[i] + 1)) / strides[i] + 1 }
            return (rq, outSpatial)
        }
        for _ in 0..<Int.random(in: 1...3, using: &r) {
            let group = pick([1, 1, c].filter { c % $0 == 0 })
            let m = group == c && Bool.random(using: &r) ? c : group * pick([1, 2, 3])
            var kernel: [Int] = [], strides: [Int] = [], pads: [Int] = [], dil: [Int] = []
            for s in spatial {
                var kk = Int.random(in: 1...3, using: &r), dd = Int.random(in: 1...2, using: &r)
                if (kk - 1) * dd + 1 > s { kk = 1; dd = 1 }
                kernel.append(kk); dil.append(dd); strides.append(Int.random(in: 1...2, using: &r))
            }
            pads = (0..<2 * spatial.count).map { _ in Int.random(in: 0...1, using: &r) }
            // A residual block when the conv keeps the shape: two i32 branches added with QAdd.
            let residual = m == c && Bool.random(using: &r)
            if residual {
                let same = kernel.map { _ in 3 }
                let (a, sa) = conv(m: c, group: group, kernel: same, strides: same.map { _ in 1 }, pads: same.map { _ in 1 } + same.map { _ in 1 },
                                   dil: same.map { _ in 1 }, to: "i32")
                let (b, _) = conv(m: c, group: 1, kernel: same.map { _ in 1 }, strides: same.map { _ in 1 }, pads: same.map { _ in 0 } + same.map { _ in 0 },
                                  dil: same.map { _ in 1 }, to: "i32")
                let s = fresh("s")
                let outType = pick(["i8", "u8"])
                body += "  %\(s) = ai.bitswitch.QAdd(%\(a), %\(b)) {a_zero = 0, b_zero = 0, hi = \(outType == "u8" ? 255 : 127), lo = \(outType == "u8" ? 0 : -128), m_a = \(Int.random(in: (1 << 29)..<(1 << 30), using: &r)), m_b = \(Int.random(in: (1 << 29)..<(1 << 30), using: &r)), n = \(Int.random(in: 29...31, using: &r)), to = \"\(outType)\", zero = 0}\n"
                cur = s; spatial = sa; xType = outType; xZero = 0
            } else {
                let outType = pick(["i8", "u8"])
                let (o, sp) = conv(m: m, group: group, kernel: kernel, strides: strides, pads: pads, dil: dil, to: outType)
                cur = o; spatial = sp; c = m; xType = outType; xZero = 0
                if outType == "u8" {
                    // The Requant's zero point becomes the next conv's x_zero.
                    if let line = body.split(separator: "\n").last(where: { $0.contains("%\(o) = ") }),
                       let z = line.split(separator: "zero = ").last?.prefix(while: { $0.isNumber }) { xZero = Int(z) ?? 0 }
                }
            }
            _ = xType
        }
        if spatial.allSatisfy({ $0 >= 2 }) && Bool.random(using: &r) {
            let p = fresh("p")
            let ks = spatial.map { _ in 2 }
            if Bool.random(using: &r) {
                body += "  %\(p) = ai.bitswitch.QMaxPool(%\(cur)) {ceil_mode = 1, kernel_shape = \(Harness.list(ks)), strides = \(Harness.list(ks))}\n"
            } else {
                body += "  %\(p) = ai.bitswitch.QAveragePool(%\(cur)) {count_include_pad = 1, kernel_shape = \(Harness.list(ks)), pads = \(Harness.list(ks.map { _ in 1 } + ks.map { _ in 0 })), strides = \(Harness.list(ks)), zero = \(xZero)}\n"
            }
            cur = p
        }
        body += "  %y = ai.bitswitch.Dequantize(%\(cur)) {scale = 0.0625, zero = \(xZero)}\n"
        return try parseGraph("""
        graph @random opsets {"": 17, "ai.bitswitch": 1} {
          input %x: f32[N,\(inputChannels(seed)),\(inputSpatial(seed).map(String.init).joined(separator: ","))]
        \(body)  output %y: f32[*]
        }
        """)
    }

    // The input shape is drawn first from the same seed; recomputed here so the text can name it.
    static func inputChannels(_ seed: UInt64) -> Int {
        var r = SeededRandom(seed)
        _ = Int.random(in: 0..<4, using: &r)
        return [1, 2, 3, 4, 6][Int.random(in: 0..<5, using: &r)]
    }
    static func inputSpatial(_ seed: UInt64) -> [Int] {
        var r = SeededRandom(seed)
        let oneD = Int.random(in: 0..<4, using: &r) == 0
        _ = Int.random(in: 0..<5, using: &r)
        return oneD ? [Int.random(in: 5...12, using: &r)] : [Int.random(in: 4...9, using: &r), Int.random(in: 4...9, using: &r)]
    }

    @Test(arguments: 0..<16) func randomGraphsMatchTheInterpreter(seed: Int) throws {
        let g = try Self.randomGraph(seed: UInt64(1000 + seed))
        do { try Harness.expectBitExact(g, samples: 2, seed: UInt64(seed)) } catch {
            Issue.record("seed \(1000 + seed): \(error)\n\(printGraph(g, elideConstantsOver: 8))")
        }
    }

    /// The same random graphs through the AVX2 kernels (im2col + vpmaddubsw / vpmaddwd, fused Requant).
    @Test(arguments: 0..<20) func randomGraphsMatchTheInterpreterWithAVX2Kernels(seed: Int) throws {
        guard Harness.hasAVX2("randomGraphsMatchTheInterpreterWithAVX2Kernels") else { return }
        let g = try Self.randomGraph(seed: UInt64(1000 + seed))
        do { try Harness.expectBitExact(g, samples: 2, seed: UInt64(seed), isa: .avx2) } catch {
            Issue.record("seed \(1000 + seed): \(error)\n\(printGraph(g, elideConstantsOver: 8))")
        }
    }

    /// The same random graphs through the AVX-512 VNNI kernels (im2col + vpdpbusd, fused Requant).
    @Test(arguments: 0..<20) func randomGraphsMatchTheInterpreterWithVNNIKernels(seed: Int) throws {
        guard Harness.hasVNNI("randomGraphsMatchTheInterpreterWithVNNIKernels") else { return }
        let g = try Self.randomGraph(seed: UInt64(1000 + seed))
        do { try Harness.expectBitExact(g, samples: 2, seed: UInt64(seed), isa: .avx512vnni) } catch {
            Issue.record("seed \(1000 + seed): \(error)\n\(printGraph(g, elideConstantsOver: 8))")
        }
    }
}
