import BitSwitchIR
import CBLAS
import CKernels
import Dispatch
import Synchronization

/// Shapes and geometry of one convolution, checked once for forward and backward.
struct ConvPlan {
    var n: Int, cin: Int, cout: Int, group: Int
    var geom: WindowGeometry
    var yShape: [Int]
    var cinG: Int { cin / group }
    var coutG: Int { cout / group }
    var kRows: Int { cinG * geom.kernelCount }   // rows of one group's im2col matrix
    var inPlane: Int { geom.inputCount }
    var outPlane: Int { geom.outputCount }
    var depthwise: Bool { group > 1 && group == cin && cout % cin == 0 }
    var pointwise: Bool {
        geom.kernel.allSatisfy { $0 == 1 } && geom.strides.allSatisfy { $0 == 1 }
            && geom.padsBegin.allSatisfy { $0 == 0 } && geom.padsEnd.allSatisfy { $0 == 0 }
    }

    init(x: [Int], w: [Int], attrs: ConvAttrs) throws {
        guard x.count >= 3, x.count <= 5 else {
            throw BitSwitchError(.shape, "Conv input X must be [N, C, spatial...] with 1–3 spatial dims, got \(shapeString(x))")
        }
        guard w.count == x.count else {
            throw BitSwitchError(.shape, "Conv weight W \(shapeString(w)) must have the rank of X \(shapeString(x))")
        }
        let g = attrs.group
        guard g >= 1, x[1] % g == 0, w[0] % g == 0 else {
            throw BitSwitchError(.shape, "group \(g) must divide input channels \(x[1]) and output channels \(w[0])")
        }
        guard w[1] * g == x[1] else {
            throw BitSwitchError(.shape, "W \(shapeString(w)) expects \(w[1] * g) input channels (group \(g)), X has \(x[1])")
        }
        let kernel = Array(w[2...])
        if let ks = attrs.kernelShape, ks != kernel {
            throw BitSwitchError(.shape, "kernel_shape \(shapeString(ks)) does not match W \(shapeString(w))")
        }
        geom = try WindowGeometry(input: Array(x[2...]), kernel: kernel, strides: attrs.strides, pads: attrs.pads,
                                  dilations: attrs.dilations, autoPad: attrs.autoPad, ceilMode: false)
        n = x[0]; cin = x[1]; cout = w[0]; group = g
        yShape = [n, cout] + geom.output
    }

    /// 2-D, ungrouped 3x3 with stride 1, one pixel of padding on every side and no dilation: the case of the
    /// direct kernel (most convolutions of small CNNs and ResNets).
    var direct3x3: Bool {
        geom.input.count == 2 && group == 1 && geom.kernel == [3, 3] && geom.strides == [1, 1]
            && geom.padsBegin == [1, 1] && geom.padsEnd == [1, 1] && geom.dilations == [1, 1]
    }

    /// 2-D, ungrouped, undilated stride-2 convolution, 3x3 with one pixel of padding or 1x1 without: the case
    /// of the phase-split tap kernels (ResNet downsampling and projection shortcuts). Every tap then reads its
    /// phase plane at most one row or column before the output grid, where the grid keeps zeros.
    var strided2: Bool {
        guard geom.input.count == 2, group == 1, geom.dilations == [1, 1], geom.strides == [2, 2] else { return false }
        return (geom.kernel == [3, 3] && geom.padsBegin == [1, 1] && geom.padsEnd == [1, 1])
            || (geom.kernel == [1, 1] && geom.padsBegin == [0, 0] && geom.padsEnd == [0, 0])
    }

    /// Images per im2col chunk: about 4 MB of columns stays in cache between im2col and the GEMM, and is
    /// still wide enough for BLAS (measured best at 16–32 CIFAR-sized images).
    var chunk: Int {
        let perImage = max(1, cin * geom.kernelCount * outPlane)
        return max(1, min(n, (1 << 20) / perImage))
    }
}

private func checkBias(_ b: Tensor?, _ cout: Int) throws -> [Float]? {
    guard let b else { return nil }
    let v = try b.f32("Conv bias B")
    guard b.rank == 1, v.count == cout else {
        throw BitSwitchError(.shape, "Conv bias B \(shapeString(b.shape)) must be [\(cout)]")
    }
    return v
}

public func convForward(x: Tensor, w: Tensor, b: Tensor?, attrs: ConvAttrs) throws -> Tensor {
    try convForward(x: x, w: w, b: b, attrs: attrs, keepingGrid: false).y
}

/// The input of a direct or stride-2 conv as its kernels read it (the zero-padded grid planes, or phase planes), kept
/// by training's forward pass so that the backward pass does not pack the same input again.
public struct ConvInputGrid: Sendable {
    let floats: [Float]
}

/// Conv forward that also returns the packed input when `keepingGrid` and the conv runs on the grid kernels.
public func convForward(x: Tensor, w: Tensor, b: Tensor?, attrs: ConvAttrs, keepingGrid: Bool) throws
    -> (y: Tensor, grid: ConvInputGrid?) {
    let p = try ConvPlan(x: x.shape, w: w.shape, attrs: attrs)
    let xs = try x.f32("Conv input X"), ws = try w.f32("Conv weight W")
    let bias = try checkBias(b, p.cout)
    let yCount = try checkedCount(p.yShape)
    var g = p.geom.c
    let y: [Float]
    var grid: ConvInputGrid? = nil
    if yCount == 0 || xs.isEmpty {
        y = [Float](repeating: 0, count: yCount)
    } else if p.depthwise {
        let failed = Mutex(false)
        y = try makeFloats(yCount) { yp in
            xs.withUnsafeBufferPointer { xb in ws.withUnsafeBufferPointer { wb in bias.withUnsafeBufferPointerOpt { bp in
                let xp = xb.baseAddress!, wp = wb.baseAddress!
                let mult = p.cout / p.cin
                withUnsafePointer(to: &g) { gp in
                    parallelFor(p.n) { r in
                        if bs_dwconv_fwd_f32(xp + r.lowerBound * p.cin * p.inPlane, wp, bp,
                                             yp + r.lowerBound * p.cout * p.outPlane, r.count, p.cin, mult, gp) != 0 {
                            failed.withLock { $0 = true }
                        }
                    }
                }
            }}}
            if failed.withLock({ $0 }) { throw outOfMemory("depthwise conv scratch") }
        }
    } else if p.direct3x3 {
        y = try makeFloats(yCount) { yp in grid = try convForwardDirect(p, xs, ws, bias, yp, keepingGrid) }
    } else if p.strided2 {
        y = try makeFloats(yCount) { yp in grid = try convForwardStrided(p, xs, ws, bias, yp, keepingGrid) }
    } else {
        y = try makeFloats(yCount) { yp in try convForwardGEMM(p, xs, ws, bias, yp) }
    }
    return (Tensor(shape: p.yShape, floats: y), grid)
}

/// Runs `body` on the conv's input grid of `count` floats: the forward's `kept` one when it has that size, else one
/// `pack` writes into scratch. With `keep`, a packed grid is made as an array and returned for the backward pass.
private func withInputGrid(count: Int, kept: ConvInputGrid?, keep: Bool, pack: (UnsafeMutablePointer<Float>) -> Void,
                           _ body: (UnsafeMutablePointer<Float>) throws -> Void) rethrows -> ConvInputGrid? {
    if let kept, kept.floats.count == count {
        // The kernels only read the input grid; the mutable pointer is the type the C functions take.
        try kept.floats.withUnsafeBufferPointer { try body(UnsafeMutablePointer(mutating: $0.baseAddress!)) }
        return nil
    }
    if keep {
        return ConvInputGrid(floats: try makeFloats(count) { g in pack(g); try body(g) })
    }
    try withScratch(count) { g in pack(g); try body(g) }
    return nil
}

private let convMR = Int(BS_CONV3_MR)

private func roundUpMR(_ n: Int) -> Int { (n + convMR - 1) / convMR * convMR }

private func makeGrid(_ p: ConvPlan) -> bs_grid {
    var g = bs_grid()
    bs_grid_init(&g, p.n, p.geom.input[0], p.geom.input[1])
    return g
}

private func convForwardDirect(_ p: ConvPlan, _ xs: [Float], _ ws: [Float], _ bias: [Float]?,
                               _ yp: UnsafeMutablePointer<Float>, _ keep: Bool) throws -> ConvInputGrid? {
    var g = makeGrid(p)
    let mpad = roundUpMR(p.cout)
    let xCount = try checkedCount([p.cin, g.plane], what: "conv input grid")
    let wpk = makeFloats(mpad * p.cin * 9) { bs_conv3x3_pack_weights(ws, $0, p.cout, p.cin, 0) }
    return xs.withUnsafeBufferPointer { xb in wpk.withUnsafeBufferPointer { wb in bias.withUnsafeBufferPointerOpt { bp in
    withUnsafePointer(to: &g) { gp in
        let xp = xb.baseAddress!, wp = wb.baseAddress!
        return withInputGrid(count: xCount, kept: nil, keep: keep, pack: { xg in
            parallelFor(p.cin) { r in bs_grid_pack_f32(xp, xg, p.cin, r.lowerBound, r.upperBound, gp) }
        }) { xg in
            parallelFor(gp.pointee.blocks) { r in
                bs_conv3x3_fwd_f32(xg, wp, yp, bp, p.cout, p.cin, r.lowerBound, r.upperBound, gp)
            }
        }
    }}}}
}

/// dW (accumulated into `dwp`) and, when `dxp` is given, dX (overwritten) of a direct 3x3 convolution.
private func convBackwardDirect(_ p: ConvPlan, _ xs: [Float], _ ws: [Float], _ gys: [Float], _ kept: ConvInputGrid?,
                                _ dxp: UnsafeMutablePointer<Float>?, _ dwp: UnsafeMutablePointer<Float>) throws {
    var g = makeGrid(p)
    let mpad = roundUpMR(p.cout), cpad = roundUpMR(p.cin)
    let xCount = try checkedCount([p.cin, g.plane], what: "conv input grid")
    let dyCount = try checkedCount([mpad, g.plane], what: "conv gradient grid")
    let tasks = mpad / convMR * p.cin
    let accCount = tasks * convMR * 9 * 16
    let wT = dxp == nil ? [] : makeFloats(cpad * p.cout * 9) { bs_conv3x3_pack_weights(ws, $0, p.cout, p.cin, 1) }
    withScratch(dyCount) { dyg in withScratch(accCount) { acc in
    xs.withUnsafeBufferPointer { xb in gys.withUnsafeBufferPointer { gb in wT.withUnsafeBufferPointer { wtb in
    withUnsafePointer(to: &g) { gp in
        let xp = xb.baseAddress!, gy = gb.baseAddress!
        _ = withInputGrid(count: xCount, kept: kept, keep: false, pack: { xg in
            parallelFor(p.cin) { r in bs_grid_pack_f32(xp, xg, p.cin, r.lowerBound, r.upperBound, gp) }
        }) { xg in
            // The extra planes up to a whole block of rows are zero, so the dW kernel may read them.
            parallelFor(mpad) { r in bs_grid_pack_f32(gy, dyg, p.cout, r.lowerBound, r.upperBound, gp) }
            parallelFor(tasks) { r in bs_conv3x3_dw_f32(dyg, xg, acc, dwp, p.cout, p.cin, r.lowerBound, r.upperBound, gp) }
            if let dxp, let wt = wtb.baseAddress {
                parallelFor(gp.pointee.blocks) { r in
                    bs_conv3x3_fwd_f32(dyg, wt, dxp, nil, p.cin, p.cout, r.lowerBound, r.upperBound, gp)
                }
            }
        }
    }}}}}}
}

/// Taps of a stride-2 conv on the phase-split grid: tap t = kh*kw' + kw of channel c reads phase plane
/// c*4 + (row residue)*2 + (column residue), shifted by the floor-divided offsets.
private struct StridedTap { var c: Int, t: Int, phase: Int, shift: Int }

/// Phase planes packed per channel: a 1x1 kernel reads only phase (0, 0).
private func stridedPhases(_ p: ConvPlan) -> Int { p.geom.kernelCount == 1 ? 1 : 4 }

private func stridedTaps(_ p: ConvPlan, _ g: bs_grid) -> [StridedTap] {
    let k = p.geom.kernel, pad = p.geom.padsBegin
    var taps: [StridedTap] = []
    for c in 0..<p.cin { for kh in 0..<k[0] { for kw in 0..<k[1] {
        let r = kh - pad[0], q = kw - pad[1]
        let pr = ((r % 2) + 2) % 2, pc = ((q % 2) + 2) % 2
        let dr = (r - pr) / 2, dc = (q - pc) / 2
        taps.append(StridedTap(c: c, t: kh * k[1] + kw, phase: pr * 2 + pc, shift: dr * g.wp + dc))
    }}}
    return taps
}

private func stridedGrid(_ p: ConvPlan) -> bs_grid {
    var g = bs_grid()
    bs_grid_init(&g, p.n, p.geom.output[0], p.geom.output[1])
    return g
}

private func convForwardStrided(_ p: ConvPlan, _ xs: [Float], _ ws: [Float], _ bias: [Float]?,
                                _ yp: UnsafeMutablePointer<Float>, _ keep: Bool) throws -> ConvInputGrid? {
    var g = stridedGrid(p)
    let taps = stridedTaps(p, g)
    let np = stridedPhases(p)
    let koff = taps.map { ($0.c * np + $0.phase) * g.plane + $0.shift }, sel = taps.map { $0.c * p.geom.kernelCount + $0.t }
    let xCount = try checkedCount([p.cin * np, g.plane], what: "conv input grid")
    let wpk = makeFloats(roundUpMR(p.cout) * taps.count) {
        bs_tapconv_pack_weights(ws, $0, p.cout, taps.count, sel, p.cin * p.geom.kernelCount)
    }
    var o = bs_out(h: p.geom.output[0], w: p.geom.output[1], s: 1, oy: 0, ox: 0)
    return xs.withUnsafeBufferPointer { xb in wpk.withUnsafeBufferPointer { wb in bias.withUnsafeBufferPointerOpt { bp in
    koff.withUnsafeBufferPointer { kb in withUnsafePointer(to: &g) { gp in withUnsafePointer(to: &o) { op in
        let xp = xb.baseAddress!
        return withInputGrid(count: xCount, kept: nil, keep: keep, pack: { xg in
            parallelFor(p.cin) { r in
                bs_grid_pack_phases_f32(xp, xg, p.cin, p.geom.input[0], p.geom.input[1], 2, np, r.lowerBound,
                                        r.upperBound, gp)
            }
        }) { xg in
            parallelFor(gp.pointee.blocks) { r in
                bs_tapconv_fwd_f32(xg, kb.baseAddress!, koff.count, wb.baseAddress!, yp, bp, p.cout, r.lowerBound,
                                   r.upperBound, gp, op)
            }
        }
    }}}}}}
}

private func convBackwardStrided(_ p: ConvPlan, _ xs: [Float], _ ws: [Float], _ gys: [Float], _ kept: ConvInputGrid?,
                                 _ dxp: UnsafeMutablePointer<Float>?, _ dwp: UnsafeMutablePointer<Float>) throws {
    var g = stridedGrid(p)
    let taps = stridedTaps(p, g), kc = p.geom.kernelCount
    let np = stridedPhases(p)
    let koff = taps.map { ($0.c * np + $0.phase) * g.plane + $0.shift }
    let mpad = roundUpMR(p.cout)
    let xCount = try checkedCount([p.cin * np, g.plane], what: "conv input grid")
    let dyCount = try checkedCount([mpad, g.plane], what: "conv gradient grid")
    let tasks = mpad / convMR * ((koff.count + 2) / 3)
    withScratch(dyCount) { dyg in withScratch(tasks * convMR * 3 * 16) { acc in
    xs.withUnsafeBufferPointer { xb in gys.withUnsafeBufferPointer { gb in koff.withUnsafeBufferPointer { kb in
    withUnsafePointer(to: &g) { gp in
        let xp = xb.baseAddress!, gy = gb.baseAddress!
        parallelFor(mpad) { r in bs_grid_pack_f32(gy, dyg, p.cout, r.lowerBound, r.upperBound, gp) }
        _ = withInputGrid(count: xCount, kept: kept, keep: false, pack: { xg in
            parallelFor(p.cin) { r in
                bs_grid_pack_phases_f32(xp, xg, p.cin, p.geom.input[0], p.geom.input[1], 2, np, r.lowerBound,
                                        r.upperBound, gp)
            }
        }) { xg in
            parallelFor(tasks) { r in
                bs_tapconv_dw_f32(dyg, xg, kb.baseAddress!, koff.count, acc, dwp, p.cout, r.lowerBound, r.upperBound, gp)
            }
        }
        guard let dxp else { return }
        // dX phase by phase: each phase plane of dX gathers dY at the negated shifts of the taps that read it.
        for phase in 0..<4 {
            var dk: [Int] = [], dsel: [Int] = []
            for m in 0..<p.cout { for tp in taps where tp.c == 0 && tp.phase == phase {
                dk.append(m * gp.pointee.plane - tp.shift); dsel.append(m * p.cin * kc + tp.t)
            }}
            let wT = makeFloats(roundUpMR(p.cin) * dk.count) {
                bs_tapconv_pack_weights(ws, $0, p.cin, dk.count, dsel, kc)
            }
            // A phase no tap reads (1x1 kernels) still runs, with no taps, to write its zeros.
            var o = bs_out(h: p.geom.input[0], w: p.geom.input[1], s: 2, oy: phase / 2, ox: phase % 2)
            dk.withUnsafeBufferPointer { dkb in wT.withUnsafeBufferPointer { wtb in withUnsafePointer(to: &o) { op in
                parallelFor(gp.pointee.blocks) { r in
                    bs_tapconv_fwd_f32(dyg, dkb.baseAddress, dk.count, wtb.baseAddress, dxp, nil, p.cin, r.lowerBound,
                                       r.upperBound, gp, op)
                }
            }}}
        }
    }}}}}}
}

private func convForwardGEMM(_ p: ConvPlan, _ xs: [Float], _ ws: [Float], _ bias: [Float]?,
                             _ yp: UnsafeMutablePointer<Float>) throws {
    var g = p.geom.c
    let nb = p.chunk, osp = p.outPlane, rows = p.cin * p.geom.kernelCount
    let direct = p.pointwise && nb == 1
    let colCount = direct ? 0 : try checkedCount([rows, nb * osp], what: "im2col buffer")
    try checkBLASDims([rows, nb * osp, p.cout])
    withScratch(colCount) { c in withScratch(nb == 1 ? 0 : p.cout * nb * osp) { tmp in
    xs.withUnsafeBufferPointer { xb in ws.withUnsafeBufferPointer { wb in
    withUnsafePointer(to: &g) { gp in
        let xp = xb.baseAddress!, wp = wb.baseAddress!
        for start in stride(from: 0, to: p.n, by: nb) {
            let cur = min(nb, p.n - start), ld = cur * osp
            let ximg = xp + start * p.cin * p.inPlane
            let colp: UnsafePointer<Float>
            if direct {
                colp = UnsafePointer(ximg)
            } else {
                if p.pointwise {
                    bs_pack_cn_f32(ximg, c, cur, p.cin, osp)
                } else {
                    parallelFor(p.cin) { r in bs_im2col_f32(ximg, c, cur, p.cin, r.lowerBound, r.upperBound, gp) }
                }
                colp = UnsafePointer(c)
            }
            let out = cur == 1 ? yp + start * p.cout * osp : tmp
            for gi in 0..<p.group {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(p.coutG), Int32(ld), Int32(p.kRows), 1,
                            wp + gi * p.coutG * p.kRows, Int32(p.kRows), colp + gi * p.kRows * ld, Int32(ld), 0,
                            out + gi * p.coutG * ld, Int32(ld))
            }
            let dst = yp + start * p.cout * osp
            if cur == 1 {
                if let bias { for c in 0..<p.cout { let bv = bias[c]; for i in 0..<osp { dst[c * osp + i] += bv } } }
            } else {
                bias.withUnsafeBufferPointerOpt { bp in bs_unpack_cn_f32(out, dst, cur, p.cout, osp, bp) }
            }
        }
    }}}}}
}

public func convBackward(x: Tensor, w: Tensor, hasBias: Bool, gradY: Tensor, attrs: ConvAttrs) throws
    -> (dx: Tensor, dw: Tensor, db: Tensor?) {
    let r = try convGradients(x: x, w: w, hasBias: hasBias, gradY: gradY, attrs: attrs, needsDX: true)
    guard let dx = r.dx else { throw BitSwitchError(.internalError, "Conv backward lost dX") }
    return (dx, r.dw, r.db)
}

/// Conv backward that skips dX when nobody needs it (the first layer, whose input is data).
public func convGradients(x: Tensor, w: Tensor, hasBias: Bool, gradY: Tensor, attrs: ConvAttrs, needsDX: Bool,
                          inputGrid: ConvInputGrid? = nil) throws
    -> (dx: Tensor?, dw: Tensor, db: Tensor?) {
    let p = try ConvPlan(x: x.shape, w: w.shape, attrs: attrs)
    guard gradY.shape == p.yShape else {
        throw BitSwitchError(.shape, "Conv gradient dY \(shapeString(gradY.shape)) must match Y \(shapeString(p.yShape))")
    }
    let xs = try x.f32("Conv input X"), ws = try w.f32("Conv weight W"), gys = try gradY.f32("Conv gradient dY")
    let dxCount = try checkedCount(x.shape, what: "dX"), dwCount = ws.count
    var db: Tensor? = nil
    if hasBias {
        let v = makeFloats(p.cout) { bs_channel_sum_f32(gys, $0, p.n, p.cout, p.outPlane) }
        db = Tensor(shape: [p.cout], floats: v)
    }
    let work = dxCount > 0 && !gys.isEmpty
    var dw = [Float](repeating: 0, count: dwCount)
    var dx: [Float]? = nil
    if work && (p.direct3x3 || p.strided2) {
        // The direct kernels overwrite every element of dX.
        let run = p.direct3x3 ? convBackwardDirect : convBackwardStrided
        try dw.withUnsafeMutableBufferPointer { dwb in
            if needsDX {
                dx = try makeFloats(dxCount) { dxp in try run(p, xs, ws, gys, inputGrid, dxp, dwb.baseAddress!) }
            } else {
                try run(p, xs, ws, gys, inputGrid, nil, dwb.baseAddress!)
            }
        }
    } else {
        var d = [Float](repeating: 0, count: needsDX ? dxCount : 0)
        if work {
            if p.depthwise {
                try convBackwardDepthwise(p, xs, ws, gys, needsDX, &d, &dw)
            } else {
                try convBackwardGEMM(p, xs, ws, gys, needsDX, &d, &dw)
            }
        }
        if needsDX { dx = d }
    }
    return (dx.map { Tensor(shape: x.shape, floats: $0) }, Tensor(shape: w.shape, floats: dw), db)
}

private func convBackwardDepthwise(_ p: ConvPlan, _ xs: [Float], _ ws: [Float], _ gys: [Float], _ needsDX: Bool,
                                   _ dx: inout [Float], _ dw: inout [Float]) throws {
    var g = p.geom.c
    let t = min(runtimeThreads, p.n), wc = ws.count
    // One partial dW per thread, summed after, so threads never write the same weights.
    var partial = [Float](repeating: 0, count: t * wc)
    let mult = p.cout / p.cin
    let failed = Mutex(false)
    xs.withUnsafeBufferPointer { xb in ws.withUnsafeBufferPointer { wb in gys.withUnsafeBufferPointer { gb in
    dx.withUnsafeMutableBufferPointer { dxb in partial.withUnsafeMutableBufferPointer { pb in
    withUnsafePointer(to: &g) { gp in
        let xp = xb.baseAddress!, wp = wb.baseAddress!, gyp = gb.baseAddress!, dxp = needsDX ? dxb.baseAddress : nil
        let pp = pb.baseAddress!
        parallelForChunks(p.n, chunks: t) { k, r in
            if bs_dwconv_bwd_f32(xp + r.lowerBound * p.cin * p.inPlane, wp, gyp + r.lowerBound * p.cout * p.outPlane,
                                 dxp.map { $0 + r.lowerBound * p.cin * p.inPlane }, pp + k * wc, r.count, p.cin, mult, gp) != 0 {
                failed.withLock { $0 = true }
            }
        }
    }}}}}}
    if failed.withLock({ $0 }) { throw outOfMemory("depthwise conv scratch") }
    for k in 0..<t { for i in 0..<wc { dw[i] += partial[k * wc + i] } }
}

private func convBackwardGEMM(_ p: ConvPlan, _ xs: [Float], _ ws: [Float], _ gys: [Float], _ needsDX: Bool,
                              _ dx: inout [Float], _ dw: inout [Float]) throws {
    var g = p.geom.c
    let nb = p.chunk, osp = p.outPlane, rows = p.cin * p.geom.kernelCount
    try checkBLASDims([rows, nb * osp, p.cout])
    let colCount = try checkedCount([rows, nb * osp], what: "im2col buffer")
    withScratch(colCount) { c in withScratch(p.cout * nb * osp) { gpk in
    xs.withUnsafeBufferPointer { xb in ws.withUnsafeBufferPointer { wb in gys.withUnsafeBufferPointer { gb in
    dx.withUnsafeMutableBufferPointer { dxb in dw.withUnsafeMutableBufferPointer { dwb in
    withUnsafePointer(to: &g) { gp in
        let xp = xb.baseAddress!, wp = wb.baseAddress!, gy = gb.baseAddress!
        let dwp = dwb.baseAddress!
        for start in stride(from: 0, to: p.n, by: nb) {
            let cur = min(nb, p.n - start), ld = cur * osp
            let ximg = xp + start * p.cin * p.inPlane
            if p.pointwise {
                bs_pack_cn_f32(ximg, c, cur, p.cin, osp)
            } else {
                parallelFor(p.cin) { r in bs_im2col_f32(ximg, c, cur, p.cin, r.lowerBound, r.upperBound, gp) }
            }
            bs_pack_cn_f32(gy + start * p.cout * osp, gpk, cur, p.cout, osp)
            for gi in 0..<p.group {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(p.coutG), Int32(p.kRows), Int32(ld), 1,
                            gpk + gi * p.coutG * ld, Int32(ld), c + gi * p.kRows * ld, Int32(ld), 1,
                            dwp + gi * p.coutG * p.kRows, Int32(p.kRows))
            }
            guard needsDX, let dxp = dxb.baseAddress else { continue }
            let dximg = dxp + start * p.cin * p.inPlane
            // The columns are no longer needed: reuse the buffer for dCol.
            for gi in 0..<p.group {
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(p.kRows), Int32(ld), Int32(p.coutG), 1,
                            wp + gi * p.coutG * p.kRows, Int32(p.kRows), gpk + gi * p.coutG * ld, Int32(ld), 0,
                            c + gi * p.kRows * ld, Int32(ld))
            }
            if p.pointwise {
                // col2im of a 1x1 stride-1 conv is the inverse packing.
                bs_unpack_cn_f32(c, dximg, cur, p.cin, osp, nil)
            } else {
                parallelFor(p.cin) { r in bs_col2im_f32(c, dximg, cur, p.cin, r.lowerBound, r.upperBound, gp) }
            }
        }
    }}}}}}}}
}

extension Optional where Wrapped == [Float] {
    /// Calls `body` with the array's base pointer, or nil when there is no array.
    func withUnsafeBufferPointerOpt<R>(_ body: (UnsafePointer<Float>?) -> R) -> R {
        switch self {
        case .some(let a): return a.withUnsafeBufferPointer { body($0.baseAddress) }
        case .none: return body(nil)
        }
    }
}

/// Like parallelFor, but exactly `chunks` pieces with their index (for per-thread partial results).
func parallelForChunks(_ n: Int, chunks t: Int, _ body: (Int, Range<Int>) -> Void) {
    if t <= 1 { body(0, 0..<n); return }
    withoutActuallyEscaping(body) { body in
        nonisolated(unsafe) let b = body
        DispatchQueue.concurrentPerform(iterations: t) { k in
            let lo = n * k / t, hi = n * (k + 1) / t
            if lo < hi { b(k, lo..<hi) }
        }
    }
}

func outOfMemory(_ what: String) -> BitSwitchError {
    BitSwitchError(.internalError, "out of memory allocating \(what)")
}
