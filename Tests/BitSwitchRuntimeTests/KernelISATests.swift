import CKernels
import Testing

/// Every ISA variant of the dispatched float kernels (generic, AVX2, AVX-512: whichever this CPU runs) gives the
/// same bits as the generic C variant on the same inputs. On a CPU without AVX-512 that variant is skipped; the
/// generic variant uses the AVX-512 variant's tiling, so its logic is still exercised.
struct KernelISATests {
    static let variants: [Int32] = (0..<Int32(BS_ISA_COUNT)).filter { bs_isa_supported($0) != 0 }

    /// (images, input channels, output channels, height, width): rows off the 8-row block, 1x1 images, and more
    /// positions than one dW pass (1024).
    static let shapes: [(n: Int, c: Int, m: Int, h: Int, w: Int)] = [
        (2, 3, 5, 5, 7), (3, 9, 20, 13, 11), (2, 16, 16, 32, 32), (1, 2, 3, 1, 1), (4, 8, 8, 8, 8),
    ]

    func bits(_ a: [Float]) -> [UInt32] { a.map(\.bitPattern) }

    /// Runs the direct-conv and tap-list kernels of one variant on fixed inputs; every output in one array.
    func convOutputs(_ k: UnsafePointer<bs_kernel_table>, _ s: (n: Int, c: Int, m: Int, h: Int, w: Int)) -> [Float] {
        var g = bs_grid()
        bs_grid_init(&g, s.n, s.h, s.w)
        let mr = Int(BS_CONV3_MR), mpad = (s.m + mr - 1) / mr * mr
        let x = randomFloats(s.n * s.c * s.h * s.w, seed: 71), w = randomFloats(s.m * s.c * 9, seed: 72)
        let bias = randomFloats(s.m, seed: 73), gy = randomFloats(s.n * s.m * s.h * s.w, seed: 74)
        var xg = [Float](repeating: 0, count: s.c * g.plane), dyg = [Float](repeating: 0, count: mpad * g.plane)
        var wpk = [Float](repeating: 0, count: mpad * s.c * 9)
        bs_grid_pack_f32(x, &xg, s.c, 0, s.c, &g)
        bs_grid_pack_f32(gy, &dyg, s.m, 0, mpad, &g)
        bs_conv3x3_pack_weights(w, &wpk, s.m, s.c, 0)
        var y = [Float](repeating: 0, count: s.n * s.m * s.h * s.w)
        k.pointee.conv3x3_fwd(xg, wpk, &y, bias, s.m, s.c, 0, g.blocks, &g)
        var yNoBias = y
        k.pointee.conv3x3_fwd(xg, wpk, &yNoBias, nil, s.m, s.c, 0, g.blocks, &g)
        // dW split into two task ranges, as threads would.
        let tasks = mpad / mr * s.c
        var acc = [Float](repeating: 0, count: tasks * mr * 9 * 16), dw = randomFloats(s.m * s.c * 9, seed: 75)
        k.pointee.conv3x3_dw(dyg, xg, &acc, &dw, s.m, s.c, 0, tasks / 2, &g)
        k.pointee.conv3x3_dw(dyg, xg, &acc, &dw, s.m, s.c, tasks / 2, tasks, &g)
        // Tap list: K taps at plane and shift offsets, written unit-stride and 2x-strided (the strided dX path).
        let taps = 2 * s.c
        let koff = (0..<taps).map { ($0 % s.c) * g.plane + ($0 % 3 - 1) * (($0 / s.c) == 0 ? 1 : g.wp) }
        let sel = Array(0..<taps)
        var tpk = [Float](repeating: 0, count: mpad * taps)
        let tw = randomFloats(s.m * taps, seed: 76)
        bs_tapconv_pack_weights(tw, &tpk, s.m, taps, sel, taps)
        var o1 = bs_out(h: s.h, w: s.w, s: 1, oy: 0, ox: 0), o2 = bs_out(h: 2 * s.h, w: 2 * s.w, s: 2, oy: 1, ox: 0)
        var t1 = [Float](repeating: 0, count: s.n * s.m * s.h * s.w), t2 = [Float](repeating: 0, count: 4 * t1.count)
        k.pointee.tapconv_fwd(xg, koff, taps, tpk, &t1, bias, s.m, 0, g.blocks, &g, &o1)
        k.pointee.tapconv_fwd(xg, koff, taps, tpk, &t2, nil, s.m, 0, g.blocks, &g, &o2)
        var t0 = [Float](repeating: 1, count: t1.count)   // no taps: writes the bias alone
        k.pointee.tapconv_fwd(xg, nil, 0, nil, &t0, bias, s.m, 0, g.blocks, &g, &o1)
        let ttasks = mpad / mr * ((taps + 2) / 3)
        var tacc = [Float](repeating: 0, count: ttasks * mr * 3 * 16), tdw = [Float](repeating: 0, count: s.m * taps)
        k.pointee.tapconv_dw(dyg, xg, koff, taps, &tacc, &tdw, s.m, 0, ttasks, &g)
        return y + yNoBias + dw + t1 + t2 + t0 + tdw
    }

    @Test func genericIsAlwaysThere() {
        #expect(bs_isa_supported(Int32(BS_ISA_GENERIC)) == 1)
        #expect(bs_isa_kernels(Int32(BS_ISA_GENERIC)) != nil)
        #expect(Self.variants.contains(bs_isa_active()))
        #expect(String(cString: bs_isa_name(Int32(BS_ISA_AVX2))) == "avx2")
        #expect(bs_isa_name(Int32(BS_ISA_COUNT)) == nil)
        // Forcing an unknown ISA fails and changes nothing; re-selecting the active one succeeds.
        let active = bs_isa_active()
        #expect(bs_isa_set(-1) == -1)
        #expect(bs_isa_set(Int32(BS_ISA_COUNT)) == -1)
        #expect(bs_isa_active() == active)
        #expect(bs_isa_set(active) == 0)
    }

    @Test(arguments: 0..<shapes.count)
    func convVariantsAgreeBitForBit(_ i: Int) throws {
        let generic = try #require(bs_isa_kernels(Int32(BS_ISA_GENERIC)))
        let want = convOutputs(generic, Self.shapes[i])
        let finite = want.allSatisfy { $0.isFinite }
        #expect(finite)
        for isa in Self.variants where isa != Int32(BS_ISA_GENERIC) {
            let k = try #require(bs_isa_kernels(isa))
            #expect(bits(convOutputs(k, Self.shapes[i])) == bits(want), "variant \(String(cString: bs_isa_name(isa)))")
        }
    }

    @Test func lsqVariantsAgreeBitForBit() throws {
        // Values across the clamp range and exact ties (k + 0.5 steps), lengths off the 16-lane blocks.
        let n = 1037, a: Float = 0.0625
        var x = randomFloats(n, seed: 81).map { $0 * 12 }
        for j in stride(from: 0, to: n, by: 7) { x[j] = (Float(j % 20) - 10.5) * a }
        let gy = randomFloats(n, seed: 82)
        func run(_ k: UnsafePointer<bs_kernel_table>) -> ([Float], [Float], Double) {
            var y = [Float](repeating: 0, count: n), gx = [Float](repeating: 0, count: n)
            k.pointee.lsq_act_forward(x, a, -8, 7, &y, n)
            let s = k.pointee.lsq_act_backward(x, a, -8, 7, gy, &gx, n)
            return (y, gx, s)
        }
        let want = run(try #require(bs_isa_kernels(Int32(BS_ISA_GENERIC))))
        for isa in Self.variants {
            let got = run(try #require(bs_isa_kernels(isa)))
            #expect(bits(got.0) == bits(want.0) && bits(got.1) == bits(want.1), "variant \(isa)")
            #expect(got.2.bitPattern == want.2.bitPattern, "variant \(isa)")
        }
    }
}
