import BitSwitchIR
import CKernels
import Foundation

/// The LSQ activation quantizer with one learned per-tensor scale `a` for one bit-width (METHOD.md §2):
///
///     x_q = clamp(roundHalfEven(x / a), lo, hi),   x̂ = x_q · a
///
/// unsigned [0, 2^b − 1] after ReLU/ReLU6/Clip(min ≥ 0), signed [−2^(b−1), 2^(b−1) − 1] otherwise.
public struct ActivationQuantizer: Sendable, Equatable {
    public let bits: Int
    public let isSigned: Bool

    public init(bits: Int, signed: Bool) throws {
        guard (2...16).contains(bits) else {
            throw BitSwitchError(.unsupported, "activation bit-width must be in 2...16, got \(bits)")
        }
        self.bits = bits
        self.isSigned = signed
    }

    public var lo: Float { isSigned ? -Float(1 << (bits - 1)) : 0 }
    public var hi: Float { isSigned ? Float((1 << (bits - 1)) - 1) : Float((1 << bits) - 1) }

    public func forward(input: UnsafeBufferPointer<Float>, scale a: Float, output: UnsafeMutableBufferPointer<Float>) {
        precondition(output.count == input.count)
        guard let x = input.baseAddress, let y = output.baseAddress else { return }
        bs_lsq_act_forward_f32(x, a, lo, hi, y, input.count)
    }

    /// Writes ∂L/∂x = ∂L/∂x̂ · [lo ≤ x/a ≤ hi] and returns
    /// ∂L/∂a = g · Σ ∂L/∂x̂ · (lo if x/a < lo; hi if x/a > hi; x_q − x/a otherwise), g = 1/sqrt(numel · hi).
    public func backward(input: UnsafeBufferPointer<Float>, scale a: Float, gradOutput: UnsafeBufferPointer<Float>,
                         gradInput: UnsafeMutableBufferPointer<Float>) -> Float {
        precondition(gradOutput.count == input.count && gradInput.count == input.count)
        let n = input.count
        guard n > 0, let x = input.baseAddress, let gy = gradOutput.baseAddress, let gx = gradInput.baseAddress
        else { return 0 }
        let sum = bs_lsq_act_backward_f32(x, a, lo, hi, gy, gx, n)
        return Float(sum / (Double(n) * Double(hi)).squareRoot())
    }

    /// (p99.9 − p0.1) / (hi − lo) over the finite values of `sample`, the percentiles interpolated linearly
    /// between order statistics like `torch.quantile`. When that range is zero (a constant activation), falls
    /// back to max|x| / max(|lo|, hi); returns nil when the sample holds no information (empty or all zero),
    /// so the caller can initialise on a later batch.
    public func initialScale(sample: UnsafeBufferPointer<Float>) -> Float? {
        let values = sample.filter(\.isFinite).sorted()
        guard let first = values.first, let last = values.last else { return nil }
        let range = quantile(sortedValues: values, 0.999) - quantile(sortedValues: values, 0.001)
        var scale = range / (hi - lo)
        if !(scale > 0 && scale.isFinite) {
            scale = max(abs(first), abs(last)) / max(-lo, hi)
        }
        return scale > 0 && scale.isFinite ? scale : nil
    }

    public func forward(input: [Float], scale: Float) -> [Float] {
        var out = [Float](repeating: 0, count: input.count)
        input.withUnsafeBufferPointer { x in out.withUnsafeMutableBufferPointer { forward(input: x, scale: scale, output: $0) } }
        return out
    }

    public func backward(input: [Float], scale: Float, gradOutput: [Float]) -> (gradInput: [Float], gradScale: Float) {
        var gx = [Float](repeating: 0, count: input.count)
        let ga = input.withUnsafeBufferPointer { x in
            gradOutput.withUnsafeBufferPointer { go in
                gx.withUnsafeMutableBufferPointer { backward(input: x, scale: scale, gradOutput: go, gradInput: $0) }
            }
        }
        return (gx, ga)
    }

    public func initialScale(sample: [Float]) -> Float? {
        sample.withUnsafeBufferPointer { initialScale(sample: $0) }
    }
}

/// The q-quantile of ascending `sortedValues` with linear interpolation, computed in Float the way
/// `torch.quantile` does (rank = q · (n − 1), then lerp with torch's two-sided formula).
public func quantile(sortedValues v: [Float], _ q: Float) -> Float {
    guard !v.isEmpty else { return .nan }
    let rank = q * Float(v.count - 1)
    let below = min(max(Int(rank), 0), v.count - 1)
    let above = min(below + 1, v.count - 1)
    let weight = rank - Float(below)
    let a = v[below], b = v[above]
    return weight < 0.5 ? a + weight * (b - a) : b - (b - a) * (1 - weight)
}
