import BitSwitchIR
import Foundation

/// A set of parameters sharing a learning-rate multiplier and a weight decay.
public struct ParameterGroup: Sendable, Equatable {
    public var name: String
    public var parameters: [String]
    /// Multiplies the scheduled learning rate for this group (ALRS scales the quantizer-scale group with it).
    public var lrMultiplier: Float
    public var weightDecay: Float

    public init(name: String, parameters: [String], lrMultiplier: Float = 1, weightDecay: Float = 0) {
        self.name = name; self.parameters = parameters; self.lrMultiplier = lrMultiplier; self.weightDecay = weightDecay
    }
}

public enum OptimizerKind: Sendable, Equatable {
    /// PyTorch's SGD: L2 weight decay added to the gradient, momentum buffer started from the first gradient.
    case sgd(momentum: Float = 0, nesterov: Bool = false, dampening: Float = 0)
    /// PyTorch's Adam: L2 weight decay added to the gradient.
    case adam(beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8)
    /// PyTorch's AdamW: decoupled weight decay, p ← p·(1 − lr·wd) before the Adam step.
    case adamW(beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8)

    public var name: String {
        switch self {
        case .sgd: return "sgd"
        case .adam: return "adam"
        case .adamW: return "adamw"
        }
    }
}

/// First-order optimizers with PyTorch's update rules (same operation order, so steps match torch.optim to
/// float rounding). State is per parameter: a step count and one or two moment buffers.
public final class Optimizer {
    public let kind: OptimizerKind
    public var groups: [ParameterGroup]

    struct Slot { var step: Int = 0; var m: [Float] = []; var v: [Float] = [] }
    private var slots: [String: Slot] = [:]

    public init(kind: OptimizerKind, groups: [ParameterGroup]) throws {
        var seen = Set<String>()
        for g in groups {
            for p in g.parameters where !seen.insert(p).inserted {
                throw BitSwitchError(.training, "parameter '\(p)' is in more than one optimizer group")
            }
        }
        if case .sgd(let mom, let nesterov, let damp) = kind, nesterov && (mom <= 0 || damp != 0) {
            throw BitSwitchError(.training, "Nesterov momentum needs momentum > 0 and zero dampening")
        }
        self.kind = kind
        self.groups = groups
    }

    /// One update of every parameter that has a gradient; parameters without one are left alone (and their
    /// step count does not advance), as in PyTorch.
    public func step(parameters: inout [String: Tensor], gradients: [String: Tensor], learningRate: Float) throws {
        for group in groups {
            let lr = learningRate * group.lrMultiplier
            for name in group.parameters {
                guard let gt = gradients[name] else { continue }
                guard var pt = parameters.removeValue(forKey: name) else {
                    throw BitSwitchError(.training, "optimizer parameter '\(name)' does not exist")
                }
                let g = try gt.trainingFloats("gradient of \(name)")
                guard case .f32(var p) = pt.storage else {
                    throw BitSwitchError(.training, "parameter '\(name)' is not float")
                }
                guard g.count == p.count else {
                    throw BitSwitchError(.training, "gradient of '\(name)' has \(g.count) values, parameter \(p.count)")
                }
                pt.storage = .f32([])   // drop the tensor's reference so `p` is updated in place
                var slot = slots[name] ?? Slot()
                slots[name] = nil
                update(&p, g, &slot, lr: lr, wd: group.weightDecay)
                slots[name] = slot
                pt.storage = .f32(p)
                parameters[name] = pt
            }
        }
    }

    private func update(_ p: inout [Float], _ g: [Float], _ s: inout Slot, lr: Float, wd: Float) {
        let n = p.count
        s.step += 1
        switch kind {
        case .sgd(let momentum, let nesterov, let dampening):
            if momentum == 0 {
                p.withUnsafeMutableBufferPointer { pp in g.withUnsafeBufferPointer { gp in
                    for i in 0..<n { pp[i] -= lr * (gp[i] + wd * pp[i]) }
                } }
                return
            }
            // PyTorch starts the momentum buffer as a copy of the first (decayed) gradient.
            let first = s.m.isEmpty
            if first { s.m = [Float](repeating: 0, count: n) }
            p.withUnsafeMutableBufferPointer { pp in g.withUnsafeBufferPointer { gp in
                s.m.withUnsafeMutableBufferPointer { mp in
                    for i in 0..<n {
                        let d = gp[i] + wd * pp[i]
                        mp[i] = first ? d : momentum * mp[i] + (1 - dampening) * d
                        pp[i] -= lr * (nesterov ? d + momentum * mp[i] : mp[i])
                    }
                }
            } }
        case .adam(let b1, let b2, let eps), .adamW(let b1, let b2, let eps):
            let decoupled: Bool
            if case .adamW = kind { decoupled = true } else { decoupled = false }
            if s.m.isEmpty { s.m = [Float](repeating: 0, count: n); s.v = [Float](repeating: 0, count: n) }
            // Bias corrections in Double, as PyTorch computes them in Python floats.
            let bc1 = 1 - pow(Double(b1), Double(s.step))
            let bc2Sqrt = Float((1 - pow(Double(b2), Double(s.step))).squareRoot())
            let stepSize = Float(Double(lr) / bc1)
            let decay = Float(1 - Double(lr) * Double(wd))
            p.withUnsafeMutableBufferPointer { pp in g.withUnsafeBufferPointer { gp in
                s.m.withUnsafeMutableBufferPointer { mp in s.v.withUnsafeMutableBufferPointer { vp in
                    for i in 0..<n {
                        var d = gp[i]
                        if decoupled { pp[i] *= decay } else { d += wd * pp[i] }
                        mp[i] += (d - mp[i]) * (1 - b1)
                        vp[i] = vp[i] * b2 + (1 - b2) * d * d
                        let denom = vp[i].squareRoot() / bc2Sqrt + eps
                        pp[i] -= stepSize * (mp[i] / denom)
                    }
                } }
            } }
        }
    }

    // MARK: state for checkpoints

    /// The optimizer's state as named tensors: `<param>#step` (i64), `<param>#m`, `<param>#v` (f32).
    public func stateTensors() -> [(String, Tensor)] {
        var r: [(String, Tensor)] = []
        for name in groups.flatMap(\.parameters) {
            guard let s = slots[name] else { continue }
            r.append(("\(name)#step", Tensor(shape: [], int64s: [Int64(s.step)])))
            if !s.m.isEmpty { r.append(("\(name)#m", floatTensor([s.m.count], s.m))) }
            if !s.v.isEmpty { r.append(("\(name)#v", floatTensor([s.v.count], s.v))) }
        }
        return r
    }

    public func loadState(_ tensors: [String: Tensor]) throws {
        slots = [:]
        for name in groups.flatMap(\.parameters) {
            guard let st = tensors["\(name)#step"] else { continue }
            var s = Slot()
            s.step = st.ints.first ?? 0
            if let m = tensors["\(name)#m"] { s.m = try m.trainingFloats("optimizer state of \(name)") }
            if let v = tensors["\(name)#v"] { s.v = try v.trainingFloats("optimizer state of \(name)") }
            slots[name] = s
        }
    }
}

/// Scales all gradients so that their global L2 norm is at most `maxNorm` (PyTorch's clip_grad_norm_, including its
/// 1e-6 guard). Returns the norm before clipping.
@discardableResult
public func clipGradientNorm(_ gradients: inout [String: Tensor], maxNorm: Float) throws -> Float {
    var sq = 0.0
    for (_, g) in gradients.sorted(by: { $0.key < $1.key }) {
        for v in try g.trainingFloats("gradient") { sq += Double(v) * Double(v) }
    }
    let norm = Float(sq.squareRoot())
    let coef = maxNorm / (norm + 1e-6)
    if coef < 1 {
        for name in gradients.keys.sorted() {
            guard var t = gradients[name], case .f32(var a) = t.storage else { continue }
            t.storage = .f32([])
            for i in a.indices { a[i] *= coef }
            t.storage = .f32(a)
            gradients[name] = t
        }
    }
    return norm
}

/// Learning rate over steps: an optional linear warm-up, then a decay over the remaining steps.
/// factor(step) multiplies the base rate; steps count optimizer updates from 0.
public struct LearningRateSchedule: Sendable, Equatable {
    public enum Decay: Sendable, Equatable {
        case constant
        /// Half-cosine from 1 down to `minFactor` at `totalSteps`.
        case cosine(minFactor: Float = 0)
        /// Multiply by `gamma` every `every` steps after the warm-up.
        case step(every: Int, gamma: Float)
    }
    public var baseRate: Float
    public var decay: Decay
    public var warmupSteps: Int
    public var totalSteps: Int

    public init(baseRate: Float, decay: Decay = .constant, warmupSteps: Int = 0, totalSteps: Int) {
        self.baseRate = baseRate; self.decay = decay; self.warmupSteps = max(0, warmupSteps)
        self.totalSteps = max(1, totalSteps)
    }

    public func rate(at step: Int) -> Float { baseRate * factor(at: step) }

    public func factor(at step: Int) -> Float {
        if step < warmupSteps { return Float(step + 1) / Float(warmupSteps) }
        let t = step - warmupSteps
        let span = max(1, totalSteps - warmupSteps)
        switch decay {
        case .constant: return 1
        case .cosine(let minFactor):
            let progress = min(1, Double(t) / Double(span))
            return minFactor + (1 - minFactor) * Float((1 + cos(Double.pi * progress)) / 2)
        case .step(let every, let gamma):
            return powf(gamma, Float(t / max(1, every)))
        }
    }
}
