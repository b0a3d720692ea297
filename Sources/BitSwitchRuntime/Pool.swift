import BitSwitchIR
import CKernels

private func poolGeometry(_ xShape: [Int], _ attrs: PoolAttrs, _ op: String) throws -> (WindowGeometry, [Int]) {
    guard xShape.count >= 3, xShape.count <= 5 else {
        throw BitSwitchError(.shape, "\(op) input must be [N, C, spatial...] with 1–3 spatial dims, got \(shapeString(xShape))")
    }
    let g = try WindowGeometry(input: Array(xShape[2...]), kernel: attrs.kernelShape, strides: attrs.strides,
                               pads: attrs.pads, dilations: attrs.dilations, autoPad: attrs.autoPad,
                               ceilMode: attrs.ceilMode)
    return (g, [xShape[0], xShape[1]] + g.output)
}

public func maxPoolForward(x: Tensor, attrs: PoolAttrs) throws -> (y: Tensor, argmax: [Int32]) {
    let (g, yShape) = try poolGeometry(x.shape, attrs, "MaxPool")
    let xs = try x.f32("MaxPool input X")
    guard xs.count <= Int(Int32.max) else {
        throw BitSwitchError(.unsupported, "MaxPool input \(shapeString(x.shape)) has more than 2^31 elements")
    }
    let count = try checkedCount(yShape)
    var geom = g.c
    let planes = x.shape[0] * x.shape[1]
    // The common 2x2/stride-2 pool gets a kernel without per-tap bounds checks.
    let fast2x2 = g.input.count == 2 && g.kernel == [2, 2] && g.strides == [2, 2] && g.dilations == [1, 1]
        && g.padsBegin == [0, 0] && g.padsEnd == [0, 0] && g.output[0] * 2 <= g.input[0] && g.output[1] * 2 <= g.input[1]
    var argmax = [Int32](repeating: 0, count: count)
    let y = makeFloats(count) { yp in
        argmax.withUnsafeMutableBufferPointer { ab in xs.withUnsafeBufferPointer { xb in
            withUnsafePointer(to: &geom) { gp in
                guard let ap = ab.baseAddress, let xp = xb.baseAddress, count > 0 else { return }
                if fast2x2 {
                    parallelFor(planes) { r in
                        bs_maxpool2x2_f32(xp + r.lowerBound * g.inputCount, yp + r.lowerBound * g.outputCount,
                                          ap + r.lowerBound * g.outputCount, r.count, g.input[0], g.input[1],
                                          g.output[0], g.output[1], r.lowerBound * g.inputCount)
                    }
                    return
                }
                parallelFor(planes) { r in
                    let ao = ap + r.lowerBound * g.outputCount
                    bs_maxpool_f32(xp + r.lowerBound * g.inputCount, yp + r.lowerBound * g.outputCount, ao, r.count, gp)
                    // The kernel numbers inputs from the chunk's first plane; make the indices global.
                    let base = Int32(r.lowerBound * g.inputCount)
                    if base != 0 { for i in 0..<(r.count * g.outputCount) where ao[i] >= 0 { ao[i] += base } }
                }
            }
        }}
    }
    return (Tensor(shape: yShape, floats: y), argmax)
}

public func maxPoolBackward(xShape: [Int], argmax: [Int32], gradY: Tensor) -> Tensor {
    let n = xShape.reduce(1, *)
    let dx = makeFloats(n, zeroed: true) { dxp in
        guard case .f32(let g) = gradY.storage else { return }
        let m = min(g.count, argmax.count)
        for i in 0..<m { let j = Int(argmax[i]); if j >= 0 && j < n { dxp[j] += g[i] } }
    }
    return Tensor(shape: xShape, floats: dx)
}

public func averagePoolForward(x: Tensor, attrs: PoolAttrs) throws -> Tensor {
    let (g, yShape) = try poolGeometry(x.shape, attrs, "AveragePool")
    let xs = try x.f32("AveragePool input X")
    let count = try checkedCount(yShape)
    var geom = g.c
    let pe = g.cPadsEnd
    let planes = x.shape[0] * x.shape[1]
    let y = makeFloats(count) { yp in
        xs.withUnsafeBufferPointer { xb in withUnsafePointer(to: &geom) { gp in
            guard let xp = xb.baseAddress, count > 0 else { return }
            parallelFor(planes) { r in
                bs_avgpool_f32(xp + r.lowerBound * g.inputCount, yp + r.lowerBound * g.outputCount, r.count, gp,
                               pe.0, pe.1, pe.2, attrs.countIncludePad ? 1 : 0)
            }
        }}
    }
    return Tensor(shape: yShape, floats: y)
}

public func averagePoolBackward(xShape: [Int], attrs: PoolAttrs, gradY: Tensor) throws -> Tensor {
    let (g, yShape) = try poolGeometry(xShape, attrs, "AveragePool")
    guard gradY.shape == yShape else {
        throw BitSwitchError(.shape, "AveragePool gradient dY \(shapeString(gradY.shape)) must match Y \(shapeString(yShape))")
    }
    let gs = try gradY.f32("AveragePool gradient dY")
    let n = try checkedCount(xShape, what: "dX")
    var geom = g.c
    let pe = g.cPadsEnd
    let planes = xShape[0] * xShape[1]
    let dx = makeFloats(n, zeroed: true) { dxp in
        gs.withUnsafeBufferPointer { gb in withUnsafePointer(to: &geom) { gp in
            guard let gyp = gb.baseAddress, n > 0 else { return }
            parallelFor(planes) { r in
                bs_avgpool_bwd_f32(gyp + r.lowerBound * g.outputCount, dxp + r.lowerBound * g.inputCount, r.count, gp,
                                   pe.0, pe.1, pe.2, attrs.countIncludePad ? 1 : 0)
            }
        }}
    }
    return Tensor(shape: xShape, floats: dx)
}
