import BitSwitchIR
import Testing
@testable import BitSwitchRuntime

/// The direct 3x3 convolution (grid layout) and the 2x2 max-pool kernel against plain loops in Double.
struct DirectKernelTests {
    /// Reference Y, dX, dW of a 3x3 stride-1 pad-1 conv for gradient R, summed in Double.
    func reference(x: [Float], w: [Float], b: [Float]?, r: [Float], n: Int, c: Int, m: Int, h: Int, wd: Int)
        -> (y: [Float], dx: [Float], dw: [Float]) {
        var y = [Double](repeating: 0, count: n * m * h * wd)
        var dx = [Double](repeating: 0, count: x.count), dw = [Double](repeating: 0, count: w.count)
        for img in 0..<n { for o in 0..<m { for i in 0..<h { for j in 0..<wd {
            let yi = ((img * m + o) * h + i) * wd + j
            var s = Double(b?[o] ?? 0)
            for ci in 0..<c { for kh in 0..<3 { for kw in 0..<3 {
                let ii = i + kh - 1, jj = j + kw - 1
                guard ii >= 0, ii < h, jj >= 0, jj < wd else { continue }
                let xi = ((img * c + ci) * h + ii) * wd + jj, wi = (o * c + ci) * 9 + kh * 3 + kw
                s += Double(x[xi]) * Double(w[wi])
                dx[xi] += Double(w[wi]) * Double(r[yi])
                dw[wi] += Double(x[xi]) * Double(r[yi])
            }}}
            y[yi] = s
        }}}}
        return (y.map(Float.init), dx.map(Float.init), dw.map(Float.init))
    }

    // Channel counts off the 8-row block, 1x1 images, one input channel, and more positions than one dW pass.
    static let shapes: [(n: Int, c: Int, m: Int, h: Int, w: Int)] = [
        (3, 5, 11, 6, 7), (2, 1, 16, 8, 8), (1, 3, 2, 1, 1), (4, 9, 8, 17, 17), (5, 16, 32, 4, 4), (1, 2, 3, 2, 9),
    ]

    @Test(arguments: 0..<shapes.count)
    func directConvMatchesReference(_ k: Int) throws {
        let s = Self.shapes[k]
        let xs = [s.n, s.c, s.h, s.w], ws = [s.m, s.c, 3, 3]
        let x = randomFloats(xs.reduce(1, *), seed: 31), w = randomFloats(ws.reduce(1, *), seed: 32)
        let b = randomFloats(s.m, seed: 33), r = randomFloats(s.n * s.m * s.h * s.w, seed: 34)
        let attrs = ConvAttrs(pads: [1, 1, 1, 1])
        let plan = try ConvPlan(x: xs, w: ws, attrs: attrs)
        #expect(plan.direct3x3)
        let want = reference(x: x, w: w, b: b, r: r, n: s.n, c: s.c, m: s.m, h: s.h, wd: s.w)
        let y = try convForward(x: Tensor(shape: xs, floats: x), w: Tensor(shape: ws, floats: w),
                                b: Tensor(shape: [s.m], floats: b), attrs: attrs)
        let g = try convGradients(x: Tensor(shape: xs, floats: x), w: Tensor(shape: ws, floats: w), hasBias: false,
                                  gradY: Tensor(shape: y.shape, floats: r), attrs: attrs, needsDX: true)
        let dx = try #require(g.dx)
        #expect(close(y.floats, want.y, rtol: 1e-4, atol: 1e-4))
        #expect(close(dx.floats, want.dx, rtol: 1e-4, atol: 1e-4))
        #expect(close(g.dw.floats, want.dw, rtol: 1e-4, atol: 1e-4))
        let noDX = try convGradients(x: Tensor(shape: xs, floats: x), w: Tensor(shape: ws, floats: w), hasBias: false,
                                     gradY: Tensor(shape: y.shape, floats: r), attrs: attrs, needsDX: false)
        #expect(noDX.dx == nil)
        #expect(noDX.dw.floats == g.dw.floats)
        try expectKeptGridGivesSameGradients(xs: xs, ws: ws, x: x, w: w, r: r, attrs: attrs, dx: dx.floats, dw: g.dw.floats)
    }

    /// Training keeps the forward's packed input for the backward pass: the same Y, and the same dX and dW bit for
    /// bit as packing it again; a kept grid of zeros (a different input) gives dW = 0, so the kept grid is what is read.
    func expectKeptGridGivesSameGradients(xs: [Int], ws: [Int], x: [Float], w: [Float], r: [Float], attrs: ConvAttrs,
                                          dx: [Float], dw: [Float]) throws {
        let xt = Tensor(shape: xs, floats: x), wt = Tensor(shape: ws, floats: w)
        let plain = try convForward(x: xt, w: wt, b: nil, attrs: attrs)
        let kept = try convForward(x: xt, w: wt, b: nil, attrs: attrs, keepingGrid: true)
        #expect(kept.y.floats == plain.floats)
        let grid = try #require(kept.grid)
        #expect(try convForward(x: xt, w: wt, b: nil, attrs: attrs, keepingGrid: false).grid == nil)
        let gy = Tensor(shape: plain.shape, floats: r)
        let g = try convGradients(x: xt, w: wt, hasBias: false, gradY: gy, attrs: attrs, needsDX: true, inputGrid: grid)
        #expect(g.dx?.floats == dx)
        #expect(g.dw.floats == dw)
        let zeros = ConvInputGrid(floats: [Float](repeating: 0, count: grid.floats.count))
        let z = try convGradients(x: xt, w: wt, hasBias: false, gradY: gy, attrs: attrs, needsDX: true, inputGrid: zeros)
        #expect(z.dw.floats.allSatisfy { $0 == 0 })
        #expect(z.dx?.floats == dx)   // dX does not read the input
    }

    /// Reference Y, dX, dW of an ungrouped 2-D conv with square stride s, kernel k and symmetric padding pad.
    func stridedReference(x: [Float], w: [Float], r: [Float], n: Int, c: Int, m: Int, h: Int, wd: Int, k: Int, s: Int,
                          pad: Int) -> (y: [Float], dx: [Float], dw: [Float]) {
        let oh = (h + 2 * pad - k) / s + 1, ow = (wd + 2 * pad - k) / s + 1
        var y = [Double](repeating: 0, count: n * m * oh * ow)
        var dx = [Double](repeating: 0, count: x.count), dw = [Double](repeating: 0, count: w.count)
        for img in 0..<n { for o in 0..<m { for i in 0..<oh { for j in 0..<ow {
            let yi = ((img * m + o) * oh + i) * ow + j
            for ci in 0..<c { for kh in 0..<k { for kw in 0..<k {
                let ii = s * i + kh - pad, jj = s * j + kw - pad
                guard ii >= 0, ii < h, jj >= 0, jj < wd else { continue }
                let xi = ((img * c + ci) * h + ii) * wd + jj, wi = ((o * c + ci) * k + kh) * k + kw
                y[yi] += Double(x[xi]) * Double(w[wi])
                dx[xi] += Double(w[wi]) * Double(r[yi])
                dw[wi] += Double(x[xi]) * Double(r[yi])
            }}}
        }}}}
        return (y.map(Float.init), dx.map(Float.init), dw.map(Float.init))
    }

    // Odd and even sizes (the last phase row/column is short when odd), 3x3 pad 1 and 1x1, channels off the block.
    static let stridedShapes: [(n: Int, c: Int, m: Int, h: Int, w: Int, k: Int)] = [
        (2, 3, 5, 7, 6, 3), (3, 16, 32, 8, 8, 3), (2, 4, 9, 5, 7, 1), (1, 16, 32, 16, 16, 1), (4, 2, 3, 1, 2, 3), (2, 5, 4, 33, 9, 3),
    ]

    @Test(arguments: 0..<stridedShapes.count)
    func stridedConvMatchesReference(_ k: Int) throws {
        let s = Self.stridedShapes[k]
        let pad = s.k == 3 ? 1 : 0
        let xs = [s.n, s.c, s.h, s.w], ws = [s.m, s.c, s.k, s.k]
        let x = randomFloats(xs.reduce(1, *), seed: 61), w = randomFloats(ws.reduce(1, *), seed: 62)
        let attrs = ConvAttrs(strides: [2, 2], pads: [pad, pad, pad, pad])
        let plan = try ConvPlan(x: xs, w: ws, attrs: attrs)
        #expect(plan.strided2)
        let y = try convForward(x: Tensor(shape: xs, floats: x), w: Tensor(shape: ws, floats: w), b: nil, attrs: attrs)
        let r = randomFloats(y.count, seed: 63)
        let want = stridedReference(x: x, w: w, r: r, n: s.n, c: s.c, m: s.m, h: s.h, wd: s.w, k: s.k, s: 2, pad: pad)
        let g = try convGradients(x: Tensor(shape: xs, floats: x), w: Tensor(shape: ws, floats: w), hasBias: false,
                                  gradY: Tensor(shape: y.shape, floats: r), attrs: attrs, needsDX: true)
        let dx = try #require(g.dx)
        #expect(close(y.floats, want.y, rtol: 1e-4, atol: 1e-4))
        #expect(close(dx.floats, want.dx, rtol: 1e-4, atol: 1e-4))
        #expect(close(g.dw.floats, want.dw, rtol: 1e-4, atol: 1e-4))
        try expectKeptGridGivesSameGradients(xs: xs, ws: ws, x: x, w: w, r: r, attrs: attrs, dx: dx.floats, dw: g.dw.floats)
    }

    @Test func skippingDXKeepsWeightGradientOnTheGEMMPath() throws {
        let xs = [2, 3, 7, 6], ws = [4, 3, 3, 3]
        let x = Tensor(shape: xs, floats: randomFloats(xs.reduce(1, *), seed: 41))
        let w = Tensor(shape: ws, floats: randomFloats(ws.reduce(1, *), seed: 42))
        let attrs = ConvAttrs(strides: [2, 1], pads: [1, 1, 1, 1])
        let y = try convForward(x: x, w: w, b: nil, attrs: attrs)
        let r = Tensor(shape: y.shape, floats: randomFloats(y.count, seed: 43))
        let full = try convBackward(x: x, w: w, hasBias: true, gradY: r, attrs: attrs)
        let part = try convGradients(x: x, w: w, hasBias: true, gradY: r, attrs: attrs, needsDX: false)
        #expect(part.dx == nil)
        #expect(part.dw.floats == full.dw.floats)
        #expect(part.db?.floats == full.db?.floats)
        #expect(try convForward(x: x, w: w, b: nil, attrs: attrs, keepingGrid: true).grid == nil)   // not a grid conv
    }

    @Test(arguments: [[2, 3, 8, 8], [1, 2, 5, 7], [3, 1, 2, 2]])
    func maxPool2x2MatchesReference(_ xs: [Int]) throws {
        // Coarse values make ties common; the first tap in row-major order must win them.
        var v = randomFloats(xs.reduce(1, *), seed: 51).map { ($0 * 3).rounded() }
        v[1] = .nan
        let (y, argmax) = try maxPoolForward(x: Tensor(shape: xs, floats: v),
                                             attrs: PoolAttrs(kernelShape: [2, 2], strides: [2, 2]))
        let (h, w) = (xs[2], xs[3]), (oh, ow) = (h / 2, w / 2)
        #expect(y.shape == [xs[0], xs[1], oh, ow])
        var wantY: [Float] = [], wantA: [Int32] = []
        for p in 0..<(xs[0] * xs[1]) { for i in 0..<oh { for j in 0..<ow {
            var best = -Float.infinity, bi = -1
            for (di, dj) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                let idx = p * h * w + (2 * i + di) * w + 2 * j + dj
                if bi < 0 || v[idx] > best { best = v[idx]; bi = idx }
            }
            wantY.append(best); wantA.append(Int32(bi))
        }}}
        #expect(argmax == wantA)
        #expect(zip(y.floats, wantY).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) })
    }
}
