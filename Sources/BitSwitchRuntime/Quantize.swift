import BitSwitchIR

/// Scale/zero-point layout: one value, or one per slice along `axis` of `x`.
private func perAxis(_ x: Tensor, _ scale: Tensor, axis: Int, op: String) throws -> (axis: Int, inner: Int)? {
    if scale.count == 1 && scale.rank <= 1 { return nil }
    guard scale.rank == 1 else {
        throw BitSwitchError(.unsupported, "\(op) scale \(shapeString(scale.shape)) must be a scalar or 1-D (blocked quantization is not supported)")
    }
    let a = try normalizeAxis(axis, rank: x.rank, what: "\(op) axis")
    guard x.shape[a] == scale.count else {
        throw BitSwitchError(.shape, "\(op) scale has \(scale.count) entries but axis \(axis) of \(shapeString(x.shape)) has \(x.shape[a])")
    }
    return (a, x.shape[(a + 1)...].reduce(1, *))
}

func quantizeLinearOp(_ x: Tensor, _ scale: Tensor, _ zeroPoint: Tensor?, axis: Int, outputType: DType?) throws -> Tensor {
    let outType = zeroPoint?.dtype ?? outputType ?? .u8
    if let zeroPoint, let outputType, zeroPoint.dtype != outputType {
        throw BitSwitchError(.type, "QuantizeLinear output_dtype \(outputType) differs from the zero point's type \(zeroPoint.dtype)")
    }
    guard let range = outType.integerRange, [.i8, .u8, .i4, .u4, .i16, .u16].contains(outType) else {
        throw BitSwitchError(.unsupported, "QuantizeLinear to \(outType) is not supported")
    }
    guard x.dtype == .f32 || x.dtype == .f16 || x.dtype == .i32 else {
        throw BitSwitchError(.type, "QuantizeLinear input must be float or int32, got \(x.dtype)")
    }
    let s = try scale.f32("QuantizeLinear y_scale")
    let layout = try perAxis(x, scale, axis: axis, op: "QuantizeLinear")
    let zp = zeroPoint?.ints ?? [Int](repeating: 0, count: s.count)
    guard zp.count == s.count else {
        throw BitSwitchError(.shape, "QuantizeLinear zero point \(shapeString(zeroPoint?.shape ?? [])) must match the scale \(shapeString(scale.shape))")
    }
    let xs = x.floats
    let lo = Float(range.lowerBound), hi = Float(range.upperBound)
    var q = [Int](repeating: 0, count: xs.count)
    for i in 0..<xs.count {
        let k = layout.map { (i / $0.inner) % x.shape[$0.axis] } ?? 0
        var v = (xs[i] / s[k]).rounded(.toNearestOrEven) + Float(zp[k])
        if v.isNaN { v = 0 }
        q[i] = Int(min(max(v, lo), hi))
    }
    switch outType {
    case .i8, .i4: return Tensor(dtype: outType, shape: x.shape, storage: .i8(q.map { Int8($0) }))
    case .i16: return Tensor(dtype: outType, shape: x.shape, storage: .i16(q.map { Int16($0) }))
    case .u16: return Tensor(dtype: outType, shape: x.shape, storage: .u16(q.map { UInt16($0) }))
    default: return Tensor(dtype: outType, shape: x.shape, storage: .u8(q.map { UInt8($0) }))
    }
}

func dequantizeLinearOp(_ x: Tensor, _ scale: Tensor, _ zeroPoint: Tensor?, axis: Int) throws -> Tensor {
    guard [.i8, .u8, .i4, .u4, .i16, .u16, .i32].contains(x.dtype) else {
        throw BitSwitchError(.type, "DequantizeLinear input must be int4/8/16/32 or uint4/8/16, got \(x.dtype)")
    }
    if let zeroPoint, zeroPoint.dtype != x.dtype {
        throw BitSwitchError(.type, "DequantizeLinear zero point type \(zeroPoint.dtype) differs from the input's \(x.dtype)")
    }
    let s = try scale.f32("DequantizeLinear x_scale")
    let layout = try perAxis(x, scale, axis: axis, op: "DequantizeLinear")
    let zp = zeroPoint?.ints ?? [Int](repeating: 0, count: s.count)
    guard zp.count == s.count else {
        throw BitSwitchError(.shape, "DequantizeLinear zero point \(shapeString(zeroPoint?.shape ?? [])) must match the scale \(shapeString(scale.shape))")
    }
    let xi = x.ints
    let y = makeFloats(xi.count) { yp in
        for i in 0..<xi.count {
            let k = layout.map { (i / $0.inner) % x.shape[$0.axis] } ?? 0
            yp[i] = Float(xi[i] - zp[k]) * s[k]
        }
    }
    return Tensor(dtype: scale.dtype == .f16 ? .f16 : .f32, shape: x.shape, storage: .f32(y))
}
