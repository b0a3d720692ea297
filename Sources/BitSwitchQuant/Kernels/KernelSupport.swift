import BitSwitchIR

// Small helpers shared by the quant-dialect kernels: tensor access without copies and the active bit-width rule.

extension Tensor {
    /// The float elements (no copy), or an error naming `what`.
    func quantFloats(_ what: String) throws -> [Float] {
        guard case .f32(let a) = storage, dtype == .f32 else {
            throw BitSwitchError(.type, "\(what) must be a float32 tensor, got \(dtype)")
        }
        return a
    }
}

func requiredInput(_ inputs: [Tensor?], _ i: Int, _ what: String) throws -> Tensor {
    guard i < inputs.count, let t = inputs[i] else {
        throw BitSwitchError(.invalidModel, "required input \(i) (\(what)) is missing")
    }
    return t
}

/// The bit-width profile a node runs in: the context's active bit-width, or the top of the trained set.
/// It must be one of the trained bit-widths (their scales and BN rows exist only for those).
func activeProfile(bits: [Int], activeBits: Int?) throws -> (bits: Int, index: Int) {
    guard let top = bits.max() else { throw BitSwitchError(.invalidModel, "attribute 'bits' is empty") }
    let b = activeBits ?? top
    guard let i = bits.firstIndex(of: b) else {
        throw BitSwitchError(.unsupported, "active bit-width \(b) is not one of the trained bit-widths \(bits)")
    }
    return (b, i)
}

/// Channel-major view of a weight whose channel axis is not the outermost: [outer, C, inner] <-> [C, outer, inner].
/// The Numerics kernels want each channel contiguous; for axis 0 (Conv, Gemm transB = 1) nothing moves.
struct ChannelLayout {
    let outer: Int, channels: Int, inner: Int

    init(shape: [Int], axis: Int, channels: Int) throws {
        let r = shape.count
        let a = axis < 0 ? axis + r : axis
        guard a >= 0 && a < r else {
            throw BitSwitchError(.invalidModel, "channel axis \(axis) is out of range for a weight of shape \(shape)")
        }
        guard shape[a] == channels else {
            throw BitSwitchError(.shape, "weight of shape \(shape) has \(shape[a]) channels on axis \(a), but \(channels) scales")
        }
        outer = shape[..<a].reduce(1, *)
        self.channels = channels
        inner = shape[(a + 1)...].reduce(1, *)
    }

    var isChannelMajor: Bool { outer == 1 }

    /// dst[c][o][k] = src[o][c][k]
    func toChannelMajor<T>(_ src: UnsafeBufferPointer<T>, _ dst: UnsafeMutableBufferPointer<T>) {
        for o in 0..<outer {
            for c in 0..<channels {
                let s = (o * channels + c) * inner, d = (c * outer + o) * inner
                for k in 0..<inner { dst[d + k] = src[s + k] }
            }
        }
    }

    /// dst[o][c][k] = src[c][o][k]
    func fromChannelMajor<T>(_ src: UnsafeBufferPointer<T>, _ dst: UnsafeMutableBufferPointer<T>) {
        for o in 0..<outer {
            for c in 0..<channels {
                let d = (o * channels + c) * inner, s = (c * outer + o) * inner
                for k in 0..<inner { dst[d + k] = src[s + k] }
            }
        }
    }

    func toChannelMajor(_ a: [Float]) -> [Float] {
        if isChannelMajor { return a }
        return a.withUnsafeBufferPointer { s in filledFloats(a.count) { toChannelMajor(s, $0) } }
    }

    func fromChannelMajor(_ a: [Float]) -> [Float] {
        if isChannelMajor { return a }
        return a.withUnsafeBufferPointer { s in filledFloats(a.count) { fromChannelMajor(s, $0) } }
    }

    func toChannelMajor(_ a: [Int8]) -> [Int8] {
        if isChannelMajor { return a }
        return [Int8](unsafeUninitializedCapacity: a.count) { buf, n in
            a.withUnsafeBufferPointer { toChannelMajor($0, buf) }
            n = a.count
        }
    }
}
