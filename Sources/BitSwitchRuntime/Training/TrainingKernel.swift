import BitSwitchIR
import BitSwitchData
import Synchronization

/// What an initializer is to the trainer. Decides whether it gets a gradient and which optimizer group it joins.
public enum ParameterRole: String, Sendable, CaseIterable {
    /// Conv/Gemm/MatMul weights: trained, with weight decay.
    case weight
    /// Biases: trained, no weight decay.
    case bias
    /// BatchNorm scale and bias: trained, no weight decay.
    case normAffine
    /// Learned quantizer scales: trained, no weight decay.
    case quantScale
    /// Non-trainable state updated by the forward pass (BatchNorm running mean/var).
    case state

    public var isTrainable: Bool { self != .state }
    /// Whether the default grouping applies weight decay (PyTorch convention: only weights decay).
    public var decays: Bool { self == .weight }
}

/// Per-step information a kernel reads, and the channel through which it reports state updates.
/// One context serves one forward/backward pair; state updates are applied by the engine after the forward.
public final class TrainingContext {
    /// Training mode (batch statistics, dropout) versus evaluation mode (running statistics).
    public var training: Bool
    /// The bit-widths being trained or evaluated, per quant-dialect node; float kernels ignore them.
    public var assignment: BitAssignment
    /// The uniform bit-width of `assignment` (nil: each op's top).
    public var activeBits: Int? {
        get { assignment.defaultBits }
        set { assignment = .uniform(newValue) }
    }
    /// Seeded generator for any random choice a kernel makes (dropout masks); derived from the step counter
    /// by the trainer so that a resumed run draws the same numbers.
    public var rng: SplitMix64
    /// Extra per-run values for plug-in kernels (e.g. distillation temperature); never read by the float kernels.
    public var userInfo: [String: Double] = [:]

    /// New values for initializers (running stats, lazily initialised scales), keyed by initializer name.
    public private(set) var stateUpdates: [String: Tensor] = [:]
    /// Order in which updates arrived, so applying them is deterministic.
    public private(set) var stateUpdateOrder: [String] = []

    public convenience init(training: Bool, activeBits: Int? = nil, seed: UInt64 = 0) {
        self.init(training: training, assignment: .uniform(activeBits), seed: seed)
    }

    public init(training: Bool, assignment: BitAssignment, seed: UInt64 = 0) {
        self.training = training
        self.assignment = assignment
        self.rng = SplitMix64(seed: seed)
    }

    /// Replace the value of the initializer `name` once the forward pass is complete
    /// (the forward itself keeps reading the old value, as PyTorch's BN does within one step).
    public func updateState(_ name: String, _ value: Tensor) {
        if stateUpdates.updateValue(value, forKey: name) == nil { stateUpdateOrder.append(name) }
    }

    func takeStateUpdates() -> [(String, Tensor)] {
        let r = stateUpdateOrder.compactMap { n in stateUpdates[n].map { (n, $0) } }
        stateUpdates = [:]; stateUpdateOrder = []
        return r
    }
}

/// Forward and backward of one op type for training. Kernels are stateless values; whatever the backward needs
/// beyond the node's inputs and outputs travels in `saved`.
public protocol TrainableOpKernel: Sendable {
    /// Roles of the node's inputs by index, applied when that input is an initializer.
    func parameterRoles(node: Node) -> [Int: ParameterRole]

    /// Outputs in `node.outputs` order. Absent optional inputs ("") arrive as nil.
    func forward(node: Node, inputs: [Tensor?], context: TrainingContext) throws -> (outputs: [Tensor], saved: Any?)

    /// Gradients with respect to each input (same count as `inputs`); nil where `needsGradient` is false or the
    /// input has no gradient. `gradOutputs[i]` is nil when nothing downstream depends on output i.
    func backward(node: Node, inputs: [Tensor?], outputs: [Tensor], saved: Any?, gradOutputs: [Tensor?],
                  needsGradient: [Bool], context: TrainingContext) throws -> [Tensor?]
}

extension TrainableOpKernel {
    public func parameterRoles(node: Node) -> [Int: ParameterRole] { [:] }
}

/// Plug-in kernels for ops the float engine does not know (the quant dialect), keyed by (domain, op type).
/// A registered kernel takes precedence over the built-in one, so a module may also replace a float op's kernel.
public enum TrainingKernelRegistry {
    private struct Key: Hashable { let domain: String; let opType: String }
    private static let table = Mutex<[Key: any TrainableOpKernel]>([:])

    public static func register(opType: String, domain: String, kernel: any TrainableOpKernel) {
        table.withLock { $0[Key(domain: domain, opType: opType)] = kernel }
    }

    public static func kernel(opType: String, domain: String) -> (any TrainableOpKernel)? {
        table.withLock { $0[Key(domain: domain, opType: opType)] }
    }
}
