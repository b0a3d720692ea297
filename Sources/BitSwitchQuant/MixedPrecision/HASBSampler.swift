import BitSwitchData
import BitSwitchIR

/// Hessian-aware stochastic bit-switching, the sampling half (METHOD.md §5, the paper's Algorithm A.3): in sub-step
/// k of a mini-batch (base bit-width `bits[k]`, highest first) every switchable layer leaves the base with
/// probability σ_e = σ·(epoch+1)/epochs (0 in warm-up epochs) and then draws its bit-width from a roulette: uniform
/// for layers whose trace per parameter is below the mean, probability ∝ bit-width for the others.
public struct HASBSampler: Sendable {
    public let bits: [Int]
    public let layers: [String]
    /// Whether each layer is sensitive (t_l ≥ mean t).
    public let sensitive: [Bool]
    public var sigma: Double = 0.5
    public var warmupEpochs = 0
    public var epochs: Int
    public var seed: UInt64

    /// - Parameters:
    ///   - bits: the trained set, highest first (the sub-step order).
    ///   - layers: switchable layer names; `traces` their per-parameter traces.
    public init(bits: [Int], layers: [String], traces: [Double], epochs: Int, seed: UInt64) throws {
        guard !bits.isEmpty, Set(bits).count == bits.count, bits.allSatisfy({ $0 > 0 }) else {
            throw BitSwitchError(.training, "HASB needs distinct positive bit-widths, got \(bits)")
        }
        guard layers.count == traces.count, epochs > 0 else {
            throw BitSwitchError(.training, "HASB: \(layers.count) layers but \(traces.count) traces, \(epochs) epochs")
        }
        self.bits = bits.sorted(by: >)
        self.layers = layers
        let mean = traces.isEmpty ? 0 : traces.reduce(0, +) / Double(traces.count)
        sensitive = traces.map { $0 >= mean }
        self.epochs = epochs
        self.seed = seed
    }

    /// σ_e of an epoch (0-based).
    public func leaveProbability(epoch: Int) -> Double {
        epoch < warmupEpochs ? 0 : sigma * Double(epoch + 1) / Double(epochs)
    }

    /// The roulette of a layer: probabilities over `bits`.
    public func roulette(layer i: Int) -> [Double] {
        if !sensitive[i] { return bits.map { _ in 1 / Double(bits.count) } }
        let s = Double(bits.reduce(0, +))
        return bits.map { Double($0) / s }
    }

    /// The bit-width of every layer in sub-step `subStep` of global batch `batch` in `epoch`; the same arguments
    /// always give the same bits (the generator is derived from the seed and the step, so a resumed run matches).
    public func sample(epoch: Int, batch: Int, subStep: Int) -> [Int] {
        var rng = SplitMix64(seed: SplitMix64.derive(seed, 0x4841_5342, UInt64(batch), UInt64(subStep)))
        let base = bits[subStep % bits.count]
        let leave = leaveProbability(epoch: epoch)
        return layers.indices.map { i in
            guard rng.nextDouble() < leave else { return base }
            let p = roulette(layer: i)
            var u = rng.nextDouble(), k = 0
            while k < p.count - 1, u >= p[k] { u -= p[k]; k += 1 }
            return bits[k]
        }
    }

    /// The profile of one sample: each layer's weights and input activation at its bit-width; pinned layers follow
    /// the sub-step's base.
    public func profile(_ chosen: [Int], base: Int) -> Profile {
        var p = Profile(defaultBits: base)
        for (n, b) in zip(layers, chosen) { p.layers[n] = LayerBits(w: b, a: b) }
        return p
    }
}
