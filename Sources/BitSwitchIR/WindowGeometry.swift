/// "[1,2,3]"
private func dims(_ s: [Int]) -> String { "[" + s.map(String.init).joined(separator: ",") + "]" }

/// Resolved window geometry of a conv or pool over 1–3 spatial dims: ONNX's output-size, auto_pad and ceil_mode
/// rules in one place, for the float executor, the integer interpreter and the C emitter.
public struct WindowGeometry: Sendable, Hashable {
    public var input: [Int]
    public var output: [Int]
    public var kernel: [Int]
    public var strides: [Int]
    public var padsBegin: [Int]
    public var padsEnd: [Int]
    public var dilations: [Int]

    public var outputCount: Int { output.reduce(1, *) }
    public var inputCount: Int { input.reduce(1, *) }
    public var kernelCount: Int { kernel.reduce(1, *) }
    /// Every output's window has at least one tap inside the input (not only padding).
    public var everyWindowReadsInput: Bool {
        input.indices.allSatisfy { i in
            (0..<output[i]).allSatisfy { o in
                (0..<kernel[i]).contains { k in (0..<input[i]).contains(o * strides[i] - padsBegin[i] + k * dilations[i]) }
            }
        }
    }

    /// ONNX output-size rules shared by Conv (ceilMode false) and the pools.
    public init(input: [Int], kernel: [Int], strides: [Int]?, pads: [Int]?, dilations: [Int]?, autoPad: AutoPad,
         ceilMode: Bool) throws {
        let r = input.count
        guard (1...3).contains(r) else {
            throw BitSwitchError(.unsupported, "only 1-D, 2-D and 3-D spatial windows are supported, got \(r)-D")
        }
        guard kernel.count == r else {
            throw BitSwitchError(.shape, "kernel_shape \(dims(kernel)) does not match \(r) spatial dims")
        }
        let s = strides ?? [Int](repeating: 1, count: r)
        let d = dilations ?? [Int](repeating: 1, count: r)
        guard s.count == r, d.count == r else {
            throw BitSwitchError(.shape, "strides \(dims(s)) / dilations \(dims(d)) must have \(r) entries")
        }
        guard kernel.allSatisfy({ $0 > 0 }), s.allSatisfy({ $0 > 0 }), d.allSatisfy({ $0 > 0 }) else {
            throw BitSwitchError(.invalidModel, "kernel_shape, strides and dilations must be positive")
        }
        // Bounded so the size arithmetic below cannot overflow.
        let limit = 1 << 31
        guard (kernel + s + d + (pads ?? []) + input).allSatisfy({ abs($0) < limit }) else {
            throw BitSwitchError(.invalidModel, "kernel_shape, strides, dilations, pads or input dims exceed 2^31")
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
                    guard pads.count == 2 * r else {
                        throw BitSwitchError(.shape, "pads \(dims(pads)) must have \(2 * r) entries")
                    }
                    guard pads.allSatisfy({ $0 >= 0 }) else {
                        throw BitSwitchError(.invalidModel, "pads \(dims(pads)) must not be negative")
                    }
                    pb[i] = pads[i]; pe[i] = pads[i + r]
                }
                let span = input[i] + pb[i] + pe[i] - dk
                guard span >= 0 else {
                    throw BitSwitchError(.shape, "input size \(input[i]) (padded \(input[i] + pb[i] + pe[i])) is smaller than the dilated kernel \(dk)")
                }
                out[i] = (ceilMode ? (span + s[i] - 1) / s[i] : span / s[i]) + 1
                // The last window must start inside the input or its begin padding (ONNX/PyTorch rule).
                if ceilMode, (out[i] - 1) * s[i] >= input[i] + pb[i] { out[i] -= 1 }
            }
        }
        guard input.allSatisfy({ $0 > 0 }) else {
            throw BitSwitchError(.shape, "spatial input dims \(dims(input)) must be positive")
        }
        self.input = input; self.output = out; self.kernel = kernel; self.strides = s
        self.padsBegin = pb; self.padsEnd = pe; self.dilations = d
    }
}
