import BitSwitchIR
import Testing
@testable import BitSwitchRuntime

/// Backward kernels against central finite differences of L = sum(Y * R) for a fixed random R.
struct GradientTests {
    /// Largest |analytic - numeric| / (1 + |numeric|) over `samples` evenly spread elements of `x`.
    func fdError(_ x: [Float], analytic: [Float], h: Float, samples: Int = 48,
                 loss: ([Float]) throws -> Double) rethrows -> Double {
        var worst = 0.0
        let step = max(1, x.count / samples)
        for i in stride(from: 0, to: x.count, by: step) {
            var xp = x, xm = x
            xp[i] += h; xm[i] -= h
            let num = (try loss(xp) - loss(xm)) / (2 * Double(h))
            worst = max(worst, abs(Double(analytic[i]) - num) / (1 + abs(num)))
        }
        return worst
    }

    func dot(_ y: Tensor, _ r: [Float]) -> Double {
        zip(y.floats, r).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    }

    static let convCases: [(String, [Int], [Int], ConvAttrs)] = [
        ("plain 3x3 pad 1", [2, 3, 6, 5], [4, 3, 3, 3], ConvAttrs(pads: [1, 1, 1, 1])),
        ("stride 2 dilation 2", [2, 2, 9, 8], [3, 2, 3, 2], ConvAttrs(strides: [2, 1], pads: [1, 0, 2, 1], dilations: [2, 1])),
        ("grouped", [1, 4, 5, 5], [6, 2, 3, 3], ConvAttrs(pads: [1, 1, 1, 1], group: 2)),
        ("depthwise x2", [3, 3, 6, 6], [6, 1, 3, 3], ConvAttrs(strides: [2, 2], pads: [1, 1, 1, 1], group: 3)),
        ("pointwise batch", [3, 4, 3, 3], [5, 4, 1, 1], ConvAttrs()),
        ("1-D same upper", [2, 3, 9], [2, 3, 4], ConvAttrs(strides: [2], autoPad: .sameUpper)),
        ("same width, asymmetric pads, dilated", [2, 2, 5, 6], [3, 2, 3, 3], ConvAttrs(pads: [0, 2, 2, 2], dilations: [1, 2])),
        ("depthwise stride 1 dilated", [2, 4, 6, 7], [4, 1, 3, 3], ConvAttrs(pads: [2, 1, 2, 1], dilations: [2, 1], group: 4)),
        ("3-D same", [1, 2, 3, 4, 5], [2, 2, 3, 3, 3], ConvAttrs(pads: [1, 1, 1, 1, 1, 1])),
    ]

    @Test(arguments: 0..<convCases.count)
    func convBackwardMatchesFiniteDifferences(_ k: Int) throws {
        let (_, xs, ws, attrs) = Self.convCases[k]
        let x = Tensor(shape: xs, floats: randomFloats(xs.reduce(1, *), seed: 1))
        let w = Tensor(shape: ws, floats: randomFloats(ws.reduce(1, *), seed: 2))
        let b = Tensor(shape: [ws[0]], floats: randomFloats(ws[0], seed: 3))
        let y = try convForward(x: x, w: w, b: b, attrs: attrs)
        let r = randomFloats(y.count, seed: 4)
        let g = try convBackward(x: x, w: w, hasBias: true, gradY: Tensor(shape: y.shape, floats: r), attrs: attrs)
        // Conv is linear in each operand, so a large step is exact up to rounding.
        let ex = try fdError(x.floats, analytic: g.dx.floats, h: 0.5) {
            dot(try convForward(x: Tensor(shape: xs, floats: $0), w: w, b: b, attrs: attrs), r)
        }
        let ew = try fdError(w.floats, analytic: g.dw.floats, h: 0.5) {
            dot(try convForward(x: x, w: Tensor(shape: ws, floats: $0), b: b, attrs: attrs), r)
        }
        let db = try #require(g.db)
        let eb = try fdError(b.floats, analytic: db.floats, h: 0.5) {
            dot(try convForward(x: x, w: w, b: Tensor(shape: [ws[0]], floats: $0), attrs: attrs), r)
        }
        #expect(ex < 1e-3 && ew < 1e-3 && eb < 1e-3, "\(Self.convCases[k].0): dx \(ex) dw \(ew) db \(eb)")
    }

    @Test(arguments: [(false, false, [3, 5]), (true, false, [5]), (false, true, [3, 1]), (true, true, [])])
    func gemmBackwardMatchesFiniteDifferences(transA: Bool, transB: Bool, cShape: [Int]) throws {
        let attrs = GemmAttrs(alpha: 0.7, beta: 1.3, transA: transA, transB: transB)
        let aS = transA ? [4, 3] : [3, 4], bS = transB ? [5, 4] : [4, 5]
        let a = Tensor(shape: aS, floats: randomFloats(12, seed: 5)), b = Tensor(shape: bS, floats: randomFloats(20, seed: 6))
        let c = Tensor(shape: cShape, floats: randomFloats(cShape.reduce(1, *), seed: 7))
        let y = try gemmForward(a: a, b: b, c: c, attrs: attrs)
        let r = randomFloats(y.count, seed: 8)
        let g = try gemmBackward(a: a, b: b, hasC: true, cShape: cShape, gradY: Tensor(shape: y.shape, floats: r), attrs: attrs)
        let ea = try fdError(a.floats, analytic: g.da.floats, h: 0.5) {
            dot(try gemmForward(a: Tensor(shape: aS, floats: $0), b: b, c: c, attrs: attrs), r)
        }
        let eb = try fdError(b.floats, analytic: g.db.floats, h: 0.5) {
            dot(try gemmForward(a: a, b: Tensor(shape: bS, floats: $0), c: c, attrs: attrs), r)
        }
        let dc = try #require(g.dc)
        #expect(dc.shape == cShape)
        let ec = try fdError(c.floats, analytic: dc.floats, h: 0.5) {
            dot(try gemmForward(a: a, b: b, c: Tensor(shape: cShape, floats: $0), attrs: attrs), r)
        }
        #expect(ea < 1e-3 && eb < 1e-3 && ec < 1e-3, "da \(ea) db \(eb) dc \(ec)")
    }

    @Test(arguments: [([2, 1, 3, 4], [3, 4, 5]), ([4], [2, 4, 3]), ([2, 3, 4], [4]), ([5, 3, 4], [4, 2])])
    func matMulBackwardMatchesFiniteDifferences(aS: [Int], bS: [Int]) throws {
        let a = Tensor(shape: aS, floats: randomFloats(aS.reduce(1, *), seed: 9))
        let b = Tensor(shape: bS, floats: randomFloats(bS.reduce(1, *), seed: 10))
        let y = try matMulForward(a: a, b: b)
        let r = randomFloats(y.count, seed: 11)
        let g = try matMulBackward(a: a, b: b, gradY: Tensor(shape: y.shape, floats: r))
        let ea = try fdError(a.floats, analytic: g.da.floats, h: 0.5) {
            dot(try matMulForward(a: Tensor(shape: aS, floats: $0), b: b), r)
        }
        let eb = try fdError(b.floats, analytic: g.db.floats, h: 0.5) {
            dot(try matMulForward(a: a, b: Tensor(shape: bS, floats: $0)), r)
        }
        #expect(ea < 1e-3 && eb < 1e-3, "\(aS) x \(bS): da \(ea) db \(eb)")
    }

    static let poolCases: [PoolAttrs] = [
        PoolAttrs(kernelShape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1]),
        PoolAttrs(kernelShape: [2, 3], strides: [2, 2], pads: [0, 1, 1, 1], ceilMode: true, countIncludePad: true),
        PoolAttrs(kernelShape: [3, 3], strides: [2, 2], autoPad: .sameLower),
        PoolAttrs(kernelShape: [2, 2], strides: [1, 1], dilations: [2, 2]),
    ]

    @Test(arguments: 0..<poolCases.count)
    func poolBackwardMatchesFiniteDifferences(_ k: Int) throws {
        let attrs = Self.poolCases[k]
        let xs = [2, 3, 7, 8]
        let x = Tensor(shape: xs, floats: randomFloats(xs.reduce(1, *), seed: 12))
        let (y, argmax) = try maxPoolForward(x: x, attrs: attrs)
        let r = randomFloats(y.count, seed: 13)
        let dxMax = maxPoolBackward(xShape: xs, argmax: argmax, gradY: Tensor(shape: y.shape, floats: r))
        // Max is piecewise linear: a small step keeps every window's winner (inputs are distinct).
        let em = try fdError(x.floats, analytic: dxMax.floats, h: 1e-4, samples: 200) {
            dot(try maxPoolForward(x: Tensor(shape: xs, floats: $0), attrs: attrs).y, r)
        }
        let ya = try averagePoolForward(x: x, attrs: attrs)
        let ra = randomFloats(ya.count, seed: 14)
        let dxAvg = try averagePoolBackward(xShape: xs, attrs: attrs, gradY: Tensor(shape: ya.shape, floats: ra))
        let ea = try fdError(x.floats, analytic: dxAvg.floats, h: 0.5, samples: 200) {
            dot(try averagePoolForward(x: Tensor(shape: xs, floats: $0), attrs: attrs), ra)
        }
        #expect(em < 1e-2 && ea < 1e-3, "pool case \(k): max \(em) avg \(ea)")
    }

    @Test func backwardRejectsMismatchedGradientShape() throws {
        let x = Tensor.zeros([1, 1, 4, 4]), w = Tensor.zeros([1, 1, 3, 3])
        #expect(throws: BitSwitchError.self) {
            try convBackward(x: x, w: w, hasBias: false, gradY: Tensor.zeros([1, 1, 4, 4]), attrs: ConvAttrs())
        }
    }
}

struct ThreadingTests {
    /// The parallel paths (im2col by channel, depthwise by image with per-thread dW, pooling by plane with
    /// global argmax offsets) give the single-thread results.
    @Test func twoThreadsMatchOneThread() throws {
        func run() throws -> [[Float]] {
            var out: [[Float]] = []
            let x = Tensor(shape: [4, 6, 9, 8], floats: randomFloats(4 * 6 * 72, seed: 21))
            for (w, attrs) in [(Tensor(shape: [5, 6, 3, 3], floats: randomFloats(270, seed: 22)), ConvAttrs(pads: [1, 1, 1, 1])),
                               (Tensor(shape: [6, 1, 3, 3], floats: randomFloats(54, seed: 23)), ConvAttrs(pads: [1, 1, 1, 1], group: 6))] {
                let y = try convForward(x: x, w: w, b: nil, attrs: attrs)
                let g = try convBackward(x: x, w: w, hasBias: false, gradY: y, attrs: attrs)
                out += [y.floats, g.dx.floats, g.dw.floats]
            }
            let (p, argmax) = try maxPoolForward(x: x, attrs: PoolAttrs(kernelShape: [2, 2], strides: [2, 2]))
            out += [p.floats, argmax.map { Float($0) }]
            return out
        }
        setRuntimeThreads(2)
        let two = try run()
        setRuntimeThreads(1)
        let one = try run()
        for (a, b) in zip(two, one) { #expect(close(a, b)) }
    }
}
