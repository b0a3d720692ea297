import BitSwitchIR
import BitSwitchRuntime

/// Adaptive Learning Rate Scaling of the quantizer-scale group (METHOD.md §4).
public enum ALRSMode: String, Sendable, CaseIterable {
    /// Every bit-width trains the scales at the scheduled rate.
    case off
    /// The scale group's rate at bit-width b is multiplied by `alrsFactor(bits: b, bitSet:)`. Scales of quantizers
    /// pinned at 8 bits (first/last layer) keep the full rate: they quantize at 8 bits in every profile.
    case fixed
    /// The fixed factors on the shared weight scales only; the per-bit activation scales (one per bit-width, never
    /// shared) train at the full rate. An ablation: ALRS exists because one shared scale serves every bit-width.
    case weights
}

/// Knowledge distillation between the bit-widths of one network (METHOD.md §4).
public enum DistillationMode: String, Sendable, CaseIterable {
    case off
    /// The soft output of b_k (detached, same batch) teaches b_{k+1}: (1−α)·CE + α·T²·KL.
    case progressive
    /// PS-KD: every bit-width learns from (1−α_t)·onehot + α_t·(previous epoch's top-precision prediction).
    case pskd
}

/// What makes a training run multi-precision. Everything else (epochs, batch, optimizer, schedule, seed) is the
/// float trainer's `TrainingOptions`.
public struct JointTrainingOptions: Sendable, Equatable {
    /// The trained bit-widths, highest first (the order of the per-batch passes).
    public let bits: [Int]
    public var alrs: ALRSMode = .fixed
    public var distillation: DistillationMode = .off
    /// Progressive KD: weight of the distillation term and its temperature.
    public var alpha: Float = 0.3
    public var temperature: Float = 2
    /// PS-KD: the mixing weight grows linearly to this value at the last epoch (PS-KD's α_T).
    public var pskdFinalAlpha: Float = 0.8
    /// Sum the gradients of every bit-width and take ONE optimizer step per batch (METHOD.md's ablation;
    /// the default is one step per bit-width).
    public var accumulate = false

    public init(bits: [Int]) throws {
        guard !bits.isEmpty else { throw BitSwitchError(.training, "the bit set is empty") }
        for b in bits where !(2...8).contains(b) {
            throw BitSwitchError(.training, "bit-width \(b) is outside 2...8")
        }
        guard Set(bits).count == bits.count else {
            throw BitSwitchError(.training, "the bit set \(bits) repeats a bit-width")
        }
        self.bits = bits.sorted(by: >)
    }

    /// The learning-rate multiplier of the shared (weight) quantizer scales while training bit-width `b`.
    public func scaleRateMultiplier(bits b: Int) -> Float {
        alrs == .off ? 1 : Float(alrsFactor(bits: b, bitSet: bits))
    }

    /// The learning-rate multiplier of bit-width `b`'s own activation-scale rows.
    public func rowScaleRateMultiplier(bits b: Int) -> Float {
        alrs == .fixed ? Float(alrsFactor(bits: b, bitSet: bits)) : 1
    }

    func validate() throws {
        guard alpha >= 0, alpha <= 1 else { throw BitSwitchError(.training, "KD alpha must be in [0, 1], got \(alpha)") }
        guard temperature > 0, temperature.isFinite else {
            throw BitSwitchError(.training, "KD temperature must be positive, got \(temperature)")
        }
        guard pskdFinalAlpha >= 0, pskdFinalAlpha <= 1 else {
            throw BitSwitchError(.training, "PS-KD alpha must be in [0, 1], got \(pskdFinalAlpha)")
        }
    }
}

extension TrainingOptions {
    /// The paper's recipe for quantization-aware training from a trained float model (METHOD.md §4):
    /// Adam, lr 5e-4, weight decay 5e-5 on the weights, cosine schedule.
    public static func quantizationRecipe(epochs: Int) -> TrainingOptions {
        var o = TrainingOptions()
        o.epochs = epochs
        o.optimizer = .adam()
        o.learningRate = 5e-4
        o.weightDecay = 5e-5
        o.schedule = .cosine
        return o
    }
}
