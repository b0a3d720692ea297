import BitSwitchIR
import Foundation

/// Which scale gradient the weight quantizer returns (METHOD.md §1).
public enum ScaleGradientForm: String, Sendable, CaseIterable {
    /// The reference implementation's gradient: LSQ without the factor 2^Δ of the shared scale.
    case reference
    /// The exact chain rule through Ŵ_b = q_b · s_c · 2^Δ: the reference gradient times 2^Δ.
    case exact
}

/// The Double Rounding weight quantizer for one bit-width `b` of a model stored at `h` bits (METHOD.md §1).
/// Per output channel c (axis 0 of a weight [C, ...], flattened in C order) one float scale s_c is shared
/// by all bit-widths:
///
///     q_h = clamp(roundHalfEven(W / s_c), −2^(h−1), 2^(h−1) − 1)
///     q_b = clamp(rshr(q_h, Δ), −2^(b−1), 2^(b−1) − 1),   Δ = h − b
///     Ŵ_b = q_b · s_c · 2^Δ
public struct WeightQuantizer: Sendable, Equatable {
    public let storedBits: Int
    public let bits: Int
    public var gradientForm: ScaleGradientForm

    public init(storedBits: Int = 8, bits: Int, gradientForm: ScaleGradientForm = .reference) throws {
        guard (2...8).contains(storedBits) else {
            throw BitSwitchError(.unsupported, "stored weight bit-width must be in 2...8 (int8 storage), got \(storedBits)")
        }
        guard (2...storedBits).contains(bits) else {
            throw BitSwitchError(.unsupported, "weight bit-width must be in 2...\(storedBits) (the stored bit-width), got \(bits)")
        }
        self.storedBits = storedBits
        self.bits = bits
        self.gradientForm = gradientForm
    }

    /// Δ = h − b.
    public var shift: Int { storedBits - bits }
    public var qn: Int32 { -(Int32(1) << (bits - 1)) }
    public var qp: Int32 { (Int32(1) << (bits - 1)) - 1 }

    /// q_h for every element: the integers that are stored after training.
    public static func stored(weight: UnsafeBufferPointer<Float>, scales: UnsafeBufferPointer<Float>, storedBits: Int,
                              into q: UnsafeMutableBufferPointer<Int8>) {
        precondition((2...8).contains(storedBits) && q.count == weight.count)
        let perChannel = channelSize(weight.count, scales.count)
        let hn = -Float(1 << (storedBits - 1)), hp = Float((1 << (storedBits - 1)) - 1)
        for c in 0..<scales.count {
            let s = scales[c]
            for i in (c * perChannel)..<((c + 1) * perChannel) {
                q[i] = Int8(truncatingIfNeeded: roundHalfEvenClampedInt(weight[i] / s, hn, hp))
            }
        }
    }

    /// q_b from stored q_h alone: what switching precision does at deployment (a shift, no multiply).
    public static func shifted(stored: UnsafeBufferPointer<Int8>, storedBits: Int, bits: Int,
                               into q: UnsafeMutableBufferPointer<Int8>) {
        precondition(bits >= 2 && bits <= storedBits && q.count == stored.count)
        let delta = storedBits - bits
        let qn = -(Int32(1) << (bits - 1)), qp = (Int32(1) << (bits - 1)) - 1
        for i in 0..<stored.count {
            q[i] = Int8(truncatingIfNeeded: min(max(rshr(Int32(stored[i]), delta), qn), qp))
        }
    }

    /// Ŵ_b into `output`; if given, q_b into `shiftedOutput`.
    public func forward(weight: UnsafeBufferPointer<Float>, scales: UnsafeBufferPointer<Float>,
                        output: UnsafeMutableBufferPointer<Float>,
                        shiftedOutput: UnsafeMutableBufferPointer<Int8>? = nil) {
        precondition(output.count == weight.count && (shiftedOutput?.count ?? weight.count) == weight.count)
        let perChannel = Self.channelSize(weight.count, scales.count)
        let k = kernelConstants
        for c in 0..<scales.count {
            let s = scales[c]
            let step = s * k.pow2
            let range = (c * perChannel)..<((c + 1) * perChannel)
            if let q = shiftedOutput {
                for i in range {
                    let qb = k.shifted(weight[i] / s)
                    q[i] = Int8(truncatingIfNeeded: qb)
                    output[i] = Float(qb) * step
                }
            } else {
                for i in range {
                    output[i] = Float(k.shifted(weight[i] / s)) * step
                }
            }
        }
    }

    /// Straight-through backward. With u = W / (s_c · 2^Δ):
    /// ∂L/∂W = ∂L/∂Ŵ · [Qn ≤ u ≤ Qp];
    /// ∂L/∂s_c = g · Σ ∂L/∂Ŵ · (Qn if u < Qn; Qp if u > Qp; q_b − u otherwise), g = 1/sqrt(N_c · Qp),
    /// times 2^Δ in the exact form. Both outputs are overwritten, not accumulated.
    public func backward(weight: UnsafeBufferPointer<Float>, scales: UnsafeBufferPointer<Float>,
                         gradOutput: UnsafeBufferPointer<Float>, gradWeight: UnsafeMutableBufferPointer<Float>,
                         gradScales: UnsafeMutableBufferPointer<Float>) {
        precondition(gradOutput.count == weight.count && gradWeight.count == weight.count
                     && gradScales.count == scales.count)
        let perChannel = Self.channelSize(weight.count, scales.count)
        let k = kernelConstants
        let fqn = Float(k.qn), fqp = Float(k.qp)
        let g = 1 / (Double(perChannel) * Double(k.qp)).squareRoot()
        let form = gradientForm == .exact ? Double(k.pow2) : 1
        for c in 0..<scales.count {
            let s = scales[c]
            let inversePow2 = 1 / k.pow2
            // Branch-free body and four partial sums, so the loop vectorises and the sum is not one long chain.
            @inline(__always) func term(_ i: Int) -> Float {
                let go = gradOutput[i]
                let v = weight[i] / s
                // W / (s · 2^Δ) is (W / s) · 2^−Δ bit for bit: scaling by a power of two is exact.
                let u = v * inversePow2
                gradWeight[i] = u >= fqn && u <= fqp ? go : 0
                let inside = Float(k.shifted(v)) - u
                return go * (u < fqn ? fqn : (u > fqp ? fqp : inside))
            }
            var s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
            var i = c * perChannel
            let end = i + perChannel
            while i + 4 <= end {
                s0 += Double(term(i))
                s1 += Double(term(i + 1))
                s2 += Double(term(i + 2))
                s3 += Double(term(i + 3))
                i += 4
            }
            while i < end {
                s0 += Double(term(i))
                i += 1
            }
            gradScales[c] = Float((s0 + s1 + s2 + s3) * g * form)
        }
    }

    /// Loop-invariant numbers of the forward and backward kernels.
    private struct KernelConstants {
        var hn: Float, hp: Float, qn: Int32, qp: Int32, half: Int32, shift: Int32, pow2: Float

        /// q_b from W / s_c.
        @inline(__always) func shifted(_ v: Float) -> Int32 {
            clamp(shiftRound(roundHalfEvenClampedInt(v, hn, hp), half: half, shift: shift), qn, qp)
        }
    }

    private var kernelConstants: KernelConstants {
        KernelConstants(hn: -Float(1 << (storedBits - 1)), hp: Float((1 << (storedBits - 1)) - 1), qn: qn, qp: qp,
                        half: shift > 0 ? Int32(1) << (shift - 1) : 0, shift: Int32(shift), pow2: Float(1 << shift))
    }

    /// s_c = max(|μ_c − 3σ_c|, |μ_c + 3σ_c|) / 2^(h−1), σ the population standard deviation of channel c.
    /// An all-zero channel gets the largest scale of the other channels (any positive scale quantizes zeros
    /// exactly and its gradient is zero, so the choice only keeps W / s finite), or 2^−(h−1) if all are zero.
    public static func initialScales(weight: UnsafeBufferPointer<Float>, channels: Int, storedBits: Int) -> [Float] {
        let perChannel = channelSize(weight.count, channels)
        let denominator = Double(1 << (storedBits - 1))
        var scales = [Float](repeating: 0, count: channels)
        for c in 0..<channels {
            var sum = 0.0
            for i in (c * perChannel)..<((c + 1) * perChannel) { sum += Double(weight[i]) }
            let mean = sum / Double(perChannel)
            var squares = 0.0
            for i in (c * perChannel)..<((c + 1) * perChannel) {
                let d = Double(weight[i]) - mean
                squares += d * d
            }
            let sd = (squares / Double(perChannel)).squareRoot()
            scales[c] = Float(max(abs(mean - 3 * sd), abs(mean + 3 * sd)) / denominator)
        }
        let fallback = scales.filter { $0 > 0 && $0.isFinite }.max() ?? Float(1 / denominator)
        for c in 0..<channels where !(scales[c] > 0 && scales[c].isFinite) { scales[c] = fallback }
        return scales
    }

    private static func channelSize(_ count: Int, _ channels: Int) -> Int {
        precondition(channels > 0 && count % channels == 0, "weight of \(count) elements is not \(channels) channels")
        return count / channels
    }
}

extension WeightQuantizer {
    /// Array convenience for callers off the hot path (tests, export).
    public func forward(weight: [Float], scales: [Float]) -> (output: [Float], shifted: [Int8]) {
        var out = [Float](repeating: 0, count: weight.count)
        var q = [Int8](repeating: 0, count: weight.count)
        weight.withUnsafeBufferPointer { w in
            scales.withUnsafeBufferPointer { s in
                out.withUnsafeMutableBufferPointer { o in
                    q.withUnsafeMutableBufferPointer { forward(weight: w, scales: s, output: o, shiftedOutput: $0) }
                }
            }
        }
        return (out, q)
    }

    public func backward(weight: [Float], scales: [Float], gradOutput: [Float]) -> (gradWeight: [Float], gradScales: [Float]) {
        var gw = [Float](repeating: 0, count: weight.count)
        var gs = [Float](repeating: 0, count: scales.count)
        weight.withUnsafeBufferPointer { w in
            scales.withUnsafeBufferPointer { s in
                gradOutput.withUnsafeBufferPointer { go in
                    gw.withUnsafeMutableBufferPointer { gwp in
                        gs.withUnsafeMutableBufferPointer {
                            backward(weight: w, scales: s, gradOutput: go, gradWeight: gwp, gradScales: $0)
                        }
                    }
                }
            }
        }
        return (gw, gs)
    }

    public static func stored(weight: [Float], scales: [Float], storedBits: Int) -> [Int8] {
        var q = [Int8](repeating: 0, count: weight.count)
        weight.withUnsafeBufferPointer { w in
            scales.withUnsafeBufferPointer { s in
                q.withUnsafeMutableBufferPointer { stored(weight: w, scales: s, storedBits: storedBits, into: $0) }
            }
        }
        return q
    }

    public static func initialScales(weight: [Float], channels: Int, storedBits: Int) -> [Float] {
        weight.withUnsafeBufferPointer { initialScales(weight: $0, channels: channels, storedBits: storedBits) }
    }
}
