import BitSwitchIR

/// ONNX window geometry of a conv or pool (the same rules as the reference interpreter's `WindowGeometry`,
/// restated here because the code generator depends on the IR only).
struct Window {
    var output: [Int]
    var kernel: [Int]
    var strides: [Int]
    var padsBegin: [Int]
    var padsEnd: [Int]
    var dilations: [Int]

    init(input: [Int], kernel: [Int], strides: [Int]?, pads: [Int]?, dilations: [Int]?, autoPad: AutoPad,
         ceilMode: Bool) throws {
        let r = input.count
        guard (1...3).contains(r) else {
            throw BitSwitchError(.unsupported, "only 1-D, 2-D and 3-D spatial windows are supported, got \(r)-D")
        }
        guard kernel.count == r else { throw BitSwitchError(.shape, "kernel_shape \(kernel) does not match \(r) spatial dims") }
        let s = strides ?? [Int](repeating: 1, count: r)
        let d = dilations ?? [Int](repeating: 1, count: r)
        guard s.count == r, d.count == r else {
            throw BitSwitchError(.shape, "strides \(s) / dilations \(d) must have \(r) entries")
        }
        guard kernel.allSatisfy({ $0 > 0 }), s.allSatisfy({ $0 > 0 }), d.allSatisfy({ $0 > 0 }) else {
            throw BitSwitchError(.invalidModel, "kernel_shape, strides and dilations must be positive")
        }
        let limit = 1 << 30
        guard (kernel + s + d + (pads ?? []) + input).allSatisfy({ abs($0) < limit }) else {
            throw BitSwitchError(.invalidModel, "kernel_shape, strides, dilations, pads or input dims exceed 2^30")
        }
        var pb = [Int](repeating: 0, count: r), pe = pb, out = pb
        for i in 0..<r {
            let dk = (kernel[i] - 1) * d[i] + 1
            switch autoPad {
            case .sameUpper, .sameLower:
                out[i] = (input[i] + s[i] - 1) / s[i]
                let total = max(0, (out[i] - 1) * s[i] + dk - input[i])
                pb[i] = autoPad == .sameUpper ? total / 2 : total - total / 2
                pe[i] = total - pb[i]
            case .valid, .notSet:
                if autoPad == .notSet, let pads {
                    guard pads.count == 2 * r else { throw BitSwitchError(.shape, "pads \(pads) must have \(2 * r) entries") }
                    guard pads.allSatisfy({ $0 >= 0 }) else { throw BitSwitchError(.invalidModel, "pads \(pads) must not be negative") }
                    pb[i] = pads[i]; pe[i] = pads[i + r]
                }
                let span = input[i] + pb[i] + pe[i] - dk
                guard span >= 0 else {
                    throw BitSwitchError(.shape, "input size \(input[i]) (padded \(input[i] + pb[i] + pe[i])) is smaller than the dilated kernel \(dk)")
                }
                out[i] = (ceilMode ? (span + s[i] - 1) / s[i] : span / s[i]) + 1
                if ceilMode, (out[i] - 1) * s[i] >= input[i] + pb[i] { out[i] -= 1 }
            }
        }
        guard input.allSatisfy({ $0 > 0 }) else { throw BitSwitchError(.shape, "spatial input dims \(input) must be positive") }
        output = out; self.kernel = kernel; self.strides = s; padsBegin = pb; padsEnd = pe; self.dilations = d
    }
}
