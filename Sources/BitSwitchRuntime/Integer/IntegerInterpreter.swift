import BitSwitchIR

// The integer reference interpreter: the bit-exact definition of what the generated C computes (docs/int-ops.md).
// Plain loops, no SIMD and no cleverness: every fast kernel is tested against this.

/// Evaluates one op of the integer dialect.
func evaluateInteger(_ node: Node, _ inputs: [Tensor?]) throws -> [Tensor] {
    func required(_ i: Int, _ name: String) throws -> Tensor {
        guard i < inputs.count, let t = inputs[i] else {
            throw BitSwitchError(.invalidModel, "required input \(i) (\(name)) is missing")
        }
        return t
    }
    switch node.op {
    case .quantize(let scale, let zero, let lo, let hi, let to):
        let x = try required(0, "x")
        guard case .f32(let xs) = x.storage else { throw BitSwitchError(.type, "Quantize input must be f32, got \(x.dtype)") }
        return [IntBuffer.make(to, x.shape, xs.map { quantizeValue($0, scale: scale, zero: zero, lo: lo, hi: hi) })]
    case .dequantize(let scale, let zero):
        let x = try IntBuffer(try required(0, "x"), "Dequantize input")
        return [floatTensor(x.shape, x.values.map { Float($0 - zero) * scale })]
    case .qconv(let q):
        return [try qconv(IntBuffer(required(0, "x"), "QConv input", activation: true),
                          weight(required(1, "w"), "QConv"), q)]
    case .qgemm(let q):
        return [try qgemm(IntBuffer(required(0, "x"), "QGemm input", activation: true),
                          weight(required(1, "w"), "QGemm"), q)]
    case .requant(let r):
        let x = try IntBuffer(required(0, "x"), "Requant input")
        let m = try table(required(1, "m"), "m"), n = try table(required(2, "n"), "n")
        let bias = try table(required(3, "bias"), "bias", wide: true)
        return [try requant(x, m: m, n: n, bias: bias, r)]
    case .qadd(let q):
        let a = try IntBuffer(required(0, "a"), "QAdd input a"), b = try IntBuffer(required(1, "b"), "QAdd input b")
        guard a.shape == b.shape else {
            throw BitSwitchError(.shape, "QAdd inputs must have equal shapes, got \(shapeString(a.shape)) and \(shapeString(b.shape))")
        }
        let y = zip(a.values, b.values).map { av, bv in
            clampInt(rshr((av - q.aZero) &* q.ma &+ (bv - q.bZero) &* q.mb, q.n) + q.zero, q.lo, q.hi)
        }
        return [IntBuffer.make(q.to, a.shape, y)]
    case .qmaxPool(let p):
        let x = try IntBuffer(required(0, "x"), "QMaxPool input")
        return [try pool(x, p, average: false, zero: 0)]
    case .qavgPool(let p, let zero):
        let x = try IntBuffer(required(0, "x"), "QAveragePool input")
        return [try pool(x, p, average: true, zero: zero)]
    case .qglobalAvgPool(let zero):
        let x = try IntBuffer(required(0, "x"), "QGlobalAveragePool input")
        guard x.shape.count >= 3 else {
            throw BitSwitchError(.shape, "QGlobalAveragePool input must be [N, C, spatial...], got \(shapeString(x.shape))")
        }
        let spatial = Array(x.shape[2...])
        return [try pool(x, PoolAttrs(kernelShape: spatial), average: true, zero: zero)]
    default:
        throw BitSwitchError(.internalError, "\(node.op.typeName) is not an integer-dialect op")
    }
}

/// `clamp(roundHalfEven(x / scale) + zero, lo, hi)`; the clamp happens before rounding (same result, as the bounds
/// are integers) so no float ever converts out of range; NaN becomes `zero`.
@inline(__always)
public func quantizeValue(_ x: Float, scale: Float, zero: Int, lo: Int, hi: Int) -> Int {
    var v = x / scale
    let l = Float(lo - zero), h = Float(hi - zero)
    if v > h { v = h }
    if v < l { v = l }
    if v != v { v = 0 }
    return Int(v.rounded(.toNearestOrEven)) + zero
}

/// The fixed-point reciprocal of a window count used by the average pools: `R(c) = (2^24 + c/2) / c`.
@inline(__always)
public func averageReciprocal(_ count: Int) -> Int { ((1 << 24) + count / 2) / count }

/// Weight after the rounding shift: `clamp(rshr(w, shift), −2^(bits−1), 2^(bits−1) − 1)`.
@inline(__always)
public func shiftedWeight(_ w: Int, shift: Int, bits: Int) -> Int {
    clampInt(rshr(w, shift), -(1 << (bits - 1)), (1 << (bits - 1)) - 1)
}

@inline(__always)
func clampInt(_ v: Int, _ lo: Int, _ hi: Int) -> Int { v < lo ? lo : (v > hi ? hi : v) }

/// Rounding arithmetic right shift, round half toward +∞ (METHOD.md): `(x + 2^(k−1)) >> k`, `x` for k = 0.
@inline(__always)
public func rshr(_ x: Int, _ k: Int) -> Int {
    if k <= 0 { return x }
    return (x >> k) &+ ((x >> (k - 1)) & 1)
}

/// An integer tensor widened to Int for the reference arithmetic.
struct IntBuffer {
    var dtype: DType
    var shape: [Int]
    var values: [Int]

    init(_ t: Tensor, _ what: String, activation: Bool = false) throws {
        dtype = t.dtype
        shape = t.shape
        switch t.storage {
        case .i8(let a) where t.dtype == .i8: values = a.map(Int.init)
        case .u8(let a) where t.dtype == .u8: values = a.map(Int.init)
        case .i32(let a) where !activation: values = a.map(Int.init)
        default:
            throw BitSwitchError(.type, "\(what) must be \(activation ? "i8 or u8" : "i8, u8 or i32"), got \(t.dtype)")
        }
    }

    static func make(_ dtype: DType, _ shape: [Int], _ v: [Int]) -> Tensor {
        switch dtype {
        case .i8: return Tensor(dtype: .i8, shape: shape, storage: .i8(v.map { Int8(clamping: $0) }))
        case .u8: return Tensor(dtype: .u8, shape: shape, storage: .u8(v.map { UInt8(clamping: $0) }))
        default: return Tensor(dtype: .i32, shape: shape, storage: .i32(v.map { Int32(clamping: $0) }))
        }
    }
}

private func weight(_ t: Tensor, _ op: String) throws -> (shape: [Int], values: [Int]) {
    guard case .i8(let a) = t.storage, t.dtype == .i8 else {
        throw BitSwitchError(.type, "\(op) weight must be the stored i8 integers, got \(t.dtype)")
    }
    return (t.shape, a.map(Int.init))
}

/// A Requant table: `m` and `n` are i32, the product-domain `bias` i64.
private func table(_ t: Tensor, _ what: String, wide: Bool = false) throws -> [Int] {
    switch t.storage {
    case .i32(let a) where !wide: return a.map(Int.init)
    case .i64(let a) where wide: return a.map(Int.init)
    default: throw BitSwitchError(.type, "Requant \(what) must be \(wide ? "i64" : "i32"), got \(t.dtype)")
    }
}

private func qconv(_ x: IntBuffer, _ w: (shape: [Int], values: [Int]), _ q: QConvAttrs) throws -> Tensor {
    guard x.shape.count >= 3, w.shape.count == x.shape.count else {
        throw BitSwitchError(.shape, "QConv needs x [N, C, spatial...] and w of the same rank, got \(shapeString(x.shape)) and \(shapeString(w.shape))")
    }
    let n = x.shape[0], c = x.shape[1], m = w.shape[0], cg = w.shape[1], group = q.conv.group
    guard cg * group == c, m % group == 0 else {
        throw BitSwitchError(.shape, "QConv weight \(shapeString(w.shape)) with group \(group) does not fit input \(shapeString(x.shape))")
    }
    let g = try WindowGeometry(input: Array(x.shape[2...]), kernel: q.conv.kernelShape ?? Array(w.shape[2...]),
                               strides: q.conv.strides, pads: q.conv.pads, dilations: q.conv.dilations,
                               autoPad: q.conv.autoPad, ceilMode: false)
    guard g.kernel == Array(w.shape[2...]) else {
        throw BitSwitchError(.shape, "kernel_shape \(g.kernel) does not match weight \(shapeString(w.shape))")
    }
    let wq = w.values.map { shiftedWeight($0, shift: q.wShift, bits: q.wBits) }
    let (inS, outS, kS) = (g.input.padded3(1), g.output.padded3(1), g.kernel.padded3(1))
    let (st, pb, dl) = (g.strides.padded3(1), g.padsBegin.padded3(0), g.dilations.padded3(1))
    let inCount = g.inputCount, outCount = g.outputCount, kCount = g.kernelCount
    let mPerGroup = m / group
    var y = [Int](repeating: 0, count: n * m * outCount)
    for b in 0..<n {
        for oc in 0..<m {
            let grp = oc / mPerGroup
            for od in 0..<outS[0] { for oh in 0..<outS[1] { for ow in 0..<outS[2] {
                var acc = 0
                for ic in 0..<cg {
                    let xBase = (b * c + grp * cg + ic) * inCount
                    let wBase = (oc * cg + ic) * kCount
                    for kd in 0..<kS[0] {
                        let id = od * st[0] - pb[0] + kd * dl[0]
                        guard id >= 0 && id < inS[0] else { continue }
                        for kh in 0..<kS[1] {
                            let ih = oh * st[1] - pb[1] + kh * dl[1]
                            guard ih >= 0 && ih < inS[1] else { continue }
                            for kw in 0..<kS[2] {
                                let iw = ow * st[2] - pb[2] + kw * dl[2]
                                guard iw >= 0 && iw < inS[2] else { continue }
                                let xv = x.values[xBase + (id * inS[1] + ih) * inS[2] + iw] - q.xZero
                                acc = acc &+ xv &* wq[wBase + (kd * kS[1] + kh) * kS[2] + kw]
                            }
                        }
                    }
                }
                y[((b * m + oc) * outS[0] + od) * outS[1] * outS[2] + oh * outS[2] + ow] = Int(Int32(truncatingIfNeeded: acc))
            } } }
        }
    }
    return IntBuffer.make(.i32, [n, m] + g.output, y)
}

private func qgemm(_ x: IntBuffer, _ w: (shape: [Int], values: [Int]), _ q: QGemmAttrs) throws -> Tensor {
    guard w.shape.count == 2, let k = x.shape.last, x.shape.count >= 1 else {
        throw BitSwitchError(.shape, "QGemm needs x [..., K] and a 2-D weight, got \(shapeString(x.shape)) and \(shapeString(w.shape))")
    }
    let (wk, m) = q.transB ? (w.shape[1], w.shape[0]) : (w.shape[0], w.shape[1])
    guard wk == k else {
        throw BitSwitchError(.shape, "QGemm input \(shapeString(x.shape)) does not match weight \(shapeString(w.shape)) (trans_b \(q.transB))")
    }
    let wq = w.values.map { shiftedWeight($0, shift: q.wShift, bits: q.wBits) }
    let rows = k == 0 ? 0 : x.values.count / k
    var y = [Int](repeating: 0, count: rows * m)
    for r in 0..<rows {
        for j in 0..<m {
            var acc = 0
            for i in 0..<k {
                let wv = q.transB ? wq[j * k + i] : wq[i * m + j]
                acc = acc &+ (x.values[r * k + i] - q.xZero) &* wv
            }
            y[r * m + j] = Int(Int32(truncatingIfNeeded: acc))
        }
    }
    return IntBuffer.make(.i32, Array(x.shape.dropLast()) + [m], y)
}

private func requant(_ x: IntBuffer, m: [Int], n: [Int], bias: [Int], _ r: RequantAttrs) throws -> Tensor {
    let rank = x.shape.count
    let axis = r.axis < 0 ? r.axis + rank : r.axis
    let channels = axis >= 0 && axis < rank ? x.shape[axis] : 1
    for (name, t) in [("m", m), ("n", n), ("bias", bias)] where t.count != 1 && t.count != channels {
        throw BitSwitchError(.shape, "Requant \(name) has \(t.count) values; expected 1 or \(channels) (axis \(r.axis) of \(shapeString(x.shape)))")
    }
    if let bad = n.first(where: { $0 < 0 || $0 > 62 }) { throw BitSwitchError(.invalidModel, "Requant shift \(bad) is outside 0...62") }
    let inner = axis >= 0 && axis < rank ? x.shape[(axis + 1)...].reduce(1, *) : 1
    let y = x.values.enumerated().map { i, v -> Int in
        let c = channels == 1 ? 0 : (i / inner) % channels
        let mc = m.count == 1 ? m[0] : m[c], nc = n.count == 1 ? n[0] : n[c], bc = bias.count == 1 ? bias[0] : bias[c]
        return clampInt(rshr(v &* mc &+ bc, nc) + r.zero, r.lo, r.hi)
    }
    return IntBuffer.make(r.to, x.shape, y)
}

private func pool(_ x: IntBuffer, _ p: PoolAttrs, average: Bool, zero: Int) throws -> Tensor {
    guard x.shape.count >= 3 else {
        throw BitSwitchError(.shape, "pool input must be [N, C, spatial...], got \(shapeString(x.shape))")
    }
    let g = try WindowGeometry(input: Array(x.shape[2...]), kernel: p.kernelShape, strides: p.strides, pads: p.pads,
                               dilations: p.dilations, autoPad: p.autoPad, ceilMode: p.ceilMode)
    let planes = x.shape[0] * x.shape[1]
    let (inS, outS, kS) = (g.input.padded3(1), g.output.padded3(1), g.kernel.padded3(1))
    let (st, pb, dl) = (g.strides.padded3(1), g.padsBegin.padded3(0), g.dilations.padded3(1))
    let pe = g.padsEnd.padded3(0)
    var y = [Int](repeating: 0, count: planes * g.outputCount)
    var k = 0
    for plane in 0..<planes {
        let base = plane * g.inputCount
        for od in 0..<outS[0] { for oh in 0..<outS[1] { for ow in 0..<outS[2] {
            var best = Int.min, sum = 0, valid = 0, inPadded = 0
            for kd in 0..<kS[0] {
                let id = od * st[0] - pb[0] + kd * dl[0]
                for kh in 0..<kS[1] {
                    let ih = oh * st[1] - pb[1] + kh * dl[1]
                    for kw in 0..<kS[2] {
                        let iw = ow * st[2] - pb[2] + kw * dl[2]
                        if id < inS[0] + pe[0] && ih < inS[1] + pe[1] && iw < inS[2] + pe[2] { inPadded += 1 }
                        guard id >= 0 && id < inS[0] && ih >= 0 && ih < inS[1] && iw >= 0 && iw < inS[2] else { continue }
                        let v = x.values[base + (id * inS[1] + ih) * inS[2] + iw]
                        best = max(best, v); sum += v - zero; valid += 1
                    }
                }
            }
            if average {
                let count = p.countIncludePad ? inPadded : valid
                y[k] = count == 0 ? zero : rshr(sum &* averageReciprocal(count), 24) + zero
            } else {
                y[k] = valid == 0 ? (x.dtype.integerRange?.lowerBound ?? 0) : best
            }
            k += 1
        } } }
    }
    return IntBuffer.make(x.dtype, [x.shape[0], x.shape[1]] + g.output, y)
}

extension Array where Element == Int {
    /// Left-padded to three entries with `fill` (1-D and 2-D windows run through the 3-D loops).
    func padded3(_ fill: Int) -> [Int] { [Int](repeating: fill, count: Swift.max(0, 3 - count)) + self }
}
