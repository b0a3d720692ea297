import BitSwitchIR

/// Values computed by one forward pass, plus what each node saved for its backward.
public struct ForwardPass {
    /// Every value of the pass by name (graph input, initializers read, node outputs).
    public internal(set) var values: [String: Tensor]
    var saved: [Any?]
    var requiresGradient: Set<String>
    var gradientInputs: Set<String>
    var ran: [Bool]

    public func value(_ name: String) -> Tensor? { values[name] }
}

/// A graph prepared for training: which initializers are trained (and in which role), which are state, the kernel
/// of each node, and reverse-mode differentiation over the nodes.
///
/// Parameters and state live in `values` while training; `exportGraph()` writes them back as initializers.
public final class TrainingGraph {
    public let graph: Graph
    /// Current values of all initializers (trained, state, constant).
    public var values: [String: Tensor]
    /// Trainable initializers with their roles, in the graph's initializer order.
    public let parameters: [(name: String, role: ParameterRole)]
    /// Initializers updated by the forward pass rather than by the optimizer (BN running statistics).
    public let stateNames: [String]
    /// The data input fed by the trainer (the first graph input that is not an initializer).
    public let inputName: String
    /// The value the loss is attached to.
    public let logitsName: String

    private let kernels: [(any TrainableOpKernel)?]
    private let parameterSet: Set<String>
    /// Check every op's outputs (forward) and input gradients (backward) for NaN/Inf and stop at the first.
    public var detectAnomaly = false

    /// - Parameter logits: the value the loss reads; default: the single graph output, or the input of the
    ///   Softmax/LogSoftmax that produces it (cross-entropy wants logits, not probabilities).
    /// - Parameter requireGradients: refuse graphs with an op that has no gradient between a parameter and the
    ///   logits (off for evaluation only).
    /// - Parameter kernelOverrides: kernels for this graph only, by "domain::OpType", taking precedence over the registry
    ///   (lets a caller or a test plug in a kernel without changing it for the whole process).
    public init(graph: Graph, logits: String? = nil, requireGradients: Bool = true,
                kernelOverrides: [String: any TrainableOpKernel] = [:]) throws {
        self.graph = graph
        var vals: [String: Tensor] = [:]
        for (n, t) in graph.orderedInitializers { vals[n] = t }
        values = vals

        guard let input = graph.inputs.first(where: { graph.initializers[$0.name] == nil }) else {
            throw BitSwitchError(.training, "the graph has no data input to train on")
        }
        inputName = input.name

        let producers = graph.producers
        if let logits {
            guard producers[logits] != nil || graph.inputNames.contains(logits) else {
                throw BitSwitchError(.training, "logits value '\(logits)' is not in the graph")
            }
            logitsName = logits
        } else {
            guard graph.outputs.count == 1, let out = graph.outputs.first else {
                throw BitSwitchError(.training, "the graph has \(graph.outputs.count) outputs; name the logits output")
            }
            var name = out.name
            if let p = producers[name] {
                switch graph.nodes[p].op {
                case .softmax, .logSoftmax: name = graph.nodes[p].inputs[0]
                default: break
                }
            }
            logitsName = name
        }

        var ks: [(any TrainableOpKernel)?] = []
        var roles: [String: ParameterRole] = [:]
        for node in graph.nodes {
            let k = kernelOverrides["\(node.op.domain)::\(node.op.typeName)"] ?? TrainingGraph.kernel(for: node.op)
            ks.append(k)
            guard let k else { continue }
            for (i, role) in k.parameterRoles(node: node).sorted(by: { $0.key < $1.key }) where i < node.inputs.count {
                let name = node.inputs[i]
                guard let t = graph.initializers[name], t.dtype.isFloat else { continue }
                // An attention mask added to the scores (0 / −inf) is a constant, not a bias.
                if role == .bias, isAdditiveMask(t) { continue }
                if let old = roles[name], old != role {
                    if old == .state || role == .state {
                        throw BitSwitchError(.training, "initializer '\(name)' is both state and a trained parameter",
                                             node: node.label, op: node.op.typeName)
                    }
                    continue
                }
                roles[name] = role
            }
        }
        kernels = ks
        parameters = graph.initializerOrder.compactMap { n in roles[n].flatMap { $0.isTrainable ? (n, $0) : nil } }
        stateNames = graph.initializerOrder.filter { roles[$0] == .state }
        parameterSet = Set(parameters.map(\.name))

        // Every node between a parameter and the logits must have a gradient.
        let needs = TrainingGraph.propagate(from: parameterSet, nodes: graph.nodes)
        for (i, node) in graph.nodes.enumerated() where requireGradients && ks[i] == nil {
            if node.inputs.contains(where: { needs.contains($0) }) {
                throw BitSwitchError(.unsupported, "training has no gradient for this op",
                                     node: node.label, op: node.op.typeName, domain: node.op.domain)
            }
        }
    }

    /// The built-in kernel of an op, after any registered plug-in.
    static func kernel(for op: Op) -> (any TrainableOpKernel)? {
        if let k = TrainingKernelRegistry.kernel(opType: op.typeName, domain: op.domain) { return k }
        switch op {
        case .add: return BinaryKernel(kind: .add)
        case .sub: return BinaryKernel(kind: .sub)
        case .mul: return BinaryKernel(kind: .mul)
        case .div: return BinaryKernel(kind: .div)
        case .relu: return ActivationKernel(kind: .relu)
        case .leakyRelu(let a): return ActivationKernel(kind: .leakyRelu(a))
        case .clip: return ActivationKernel(kind: .clip)
        case .sigmoid: return ActivationKernel(kind: .sigmoid)
        case .tanh: return ActivationKernel(kind: .tanh)
        case .hardSwish: return ActivationKernel(kind: .hardSwish)
        case .hardSigmoid(let a, let b): return ActivationKernel(kind: .hardSigmoid(a, b))
        case .identity: return ActivationKernel(kind: .identity)
        case .dropout: return DropoutKernel()
        case .batchNormalization: return BatchNormKernel()
        case .globalAveragePool: return GlobalAveragePoolKernel()
        case .flatten, .reshape, .squeeze, .unsqueeze: return ReshapeKernel()
        case .transpose: return TransposeKernel()
        case .concat: return ConcatKernel()
        case .softmax: return SoftmaxKernel(log: false)
        case .logSoftmax: return SoftmaxKernel(log: true)
        case .conv: return ConvKernel()
        case .gemm: return GemmKernel()
        case .matMul: return MatMulKernel()
        case .maxPool: return MaxPoolKernel()
        case .averagePool: return AveragePoolKernel()
        case .layerNormalization: return LayerNormKernel()
        case .gelu, .erf: return SmoothActivationKernel()
        case .gather: return GatherKernel()
        case .slice, .split: return SliceSplitKernel()
        case .select: return WhereKernel()
        default: return nil
        }
    }

    static func propagate(from sources: Set<String>, nodes: [Node]) -> Set<String> {
        var s = sources
        for node in nodes where node.inputs.contains(where: { !$0.isEmpty && s.contains($0) }) {
            for o in node.outputs where !o.isEmpty { s.insert(o) }
        }
        return s
    }

    /// A batch of the data input from the dataset's float samples, in the input's element type (token ids for a
    /// model whose input is int64 or int32; floats hold them exactly).
    public func inputTensor(_ shape: [Int], _ x: [Float]) -> Tensor {
        datasetInputTensor(dtype: graph.inputs.first(where: { $0.name == inputName })?.type.dtype, shape, x)
    }

    /// Trainable parameter names in order.
    public var parameterNames: [String] { parameters.map(\.name) }

    /// Two groups in PyTorch's usual split: weights with `weightDecay`, everything else trained (biases, BN affine,
    /// quantizer scales) without.
    public func defaultGroups(weightDecay: Float) -> [ParameterGroup] {
        [ParameterGroup(name: "decay", parameters: parameters.filter { $0.role.decays }.map(\.name),
                        weightDecay: weightDecay),
         ParameterGroup(name: "no_decay", parameters: parameters.filter { !$0.role.decays }.map(\.name),
                        weightDecay: 0)]
    }

    /// Runs the graph. State updates reported by kernels (running statistics) are applied to `values` at the end.
    /// - Parameter gradientInputs: extra values (e.g. the data input) to differentiate with respect to.
    public func forward(feeds: [String: Tensor], context: TrainingContext,
                        gradientInputs: Set<String> = []) throws -> ForwardPass {
        var env = values
        for (k, v) in feeds { env[k] = v }
        for i in graph.inputs where env[i.name] == nil {
            throw BitSwitchError(.training, "graph input '\(i.name)' was not fed")
        }
        let requires = TrainingGraph.propagate(from: parameterSet.union(gradientInputs), nodes: graph.nodes)
        var saved = [Any?](repeating: nil, count: graph.nodes.count)
        var ran = [Bool](repeating: false, count: graph.nodes.count)
        for (i, node) in graph.nodes.enumerated() {
            let ins: [Tensor?] = try node.inputs.map { name in
                if name.isEmpty { return nil }
                guard let t = env[name] else {
                    throw BitSwitchError(.invalidModel, "value '\(name)' is read before it is computed",
                                         node: node.label, op: node.op.typeName)
                }
                return t
            }
            do {
                let outs: [Tensor]
                if let k = kernels[i] {
                    let r = try k.forward(node: node, inputs: ins, context: context)
                    outs = r.outputs
                    saved[i] = r.saved
                } else {
                    outs = try evaluateNode(node, inputs: ins, opsets: graph.opsets)
                }
                for (j, name) in node.outputs.enumerated() where !name.isEmpty && j < outs.count {
                    env[name] = outs[j]
                }
            } catch {
                throw error.bitswitchLocated(node: node.label, op: node.op.typeName)
            }
            if detectAnomaly {
                for (j, name) in node.outputs.enumerated() where !name.isEmpty {
                    guard let t = env[name], let (k, v) = Anomaly.firstNonFinite(t) else { continue }
                    let firstInput = ins.compactMap { $0 }.contains { Anomaly.firstNonFinite($0) != nil }
                    throw BitSwitchError(.training, "--detect-anomaly: forward output \(j) '\(name)' is "
                                         + "\(Anomaly.describe(v)) at element \(k)"
                                         + (firstInput ? " (an input already was)" : " (all inputs finite: this op made it)"),
                                         node: node.label, op: node.op.typeName)
                }
            }
            ran[i] = true
        }
        for (name, t) in context.takeStateUpdates() {
            guard let old = values[name] else {
                throw BitSwitchError(.training, "a kernel updated '\(name)', which is not an initializer")
            }
            guard old.shape == t.shape, old.dtype == t.dtype else {
                throw BitSwitchError(.training, "state update of '\(name)' changes its type from \(old.type) to \(t.type)")
            }
            values[name] = t
        }
        return ForwardPass(values: env, saved: saved, requiresGradient: requires, gradientInputs: gradientInputs, ran: ran)
    }

    /// Reverse-mode pass. `seeds` are gradients of the loss with respect to some values (normally the logits).
    /// Returns the gradient of every trainable parameter that the seeds reach, plus any `gradientInputs` of the forward.
    public func backward(_ pass: ForwardPass, seeds: [String: Tensor], context: TrainingContext) throws -> [String: Tensor] {
        var grads = seeds
        var result: [String: Tensor] = [:]
        for i in stride(from: graph.nodes.count - 1, through: 0, by: -1) where pass.ran[i] {
            let node = graph.nodes[i]
            let gradOutputs = node.outputs.map { $0.isEmpty ? nil : grads.removeValue(forKey: $0) }
            guard gradOutputs.contains(where: { $0 != nil }) else { continue }
            let needs = node.inputs.map { !$0.isEmpty && pass.requiresGradient.contains($0) }
            guard needs.contains(true), let k = kernels[i] else { continue }
            let ins: [Tensor?] = node.inputs.map { $0.isEmpty ? nil : pass.values[$0] }
            let outs: [Tensor] = node.outputs.map { pass.values[$0] ?? Tensor.zeros([0]) }
            let gin: [Tensor?]
            do {
                gin = try k.backward(node: node, inputs: ins, outputs: outs, saved: pass.saved[i],
                                     gradOutputs: gradOutputs, needsGradient: needs, context: context)
            } catch {
                throw error.bitswitchLocated(node: node.label, op: node.op.typeName)
            }
            for (j, name) in node.inputs.enumerated() where needs[j] && j < gin.count {
                guard let g = gin[j] else { continue }
                if detectAnomaly, let (k, v) = Anomaly.firstNonFinite(g) {
                    throw BitSwitchError(.training, "--detect-anomaly: the gradient of input \(j) '\(name)' is "
                                         + "\(Anomaly.describe(v)) at element \(k) in the backward pass",
                                         node: node.label, op: node.op.typeName)
                }
                if let v = ins[j], g.shape != v.shape {
                    throw BitSwitchError(.internalError, "gradient of input \(j) has shape \(g.shape), value \(v.shape)",
                                         node: node.label, op: node.op.typeName)
                }
                try accumulate(&grads, name, g)
            }
        }
        for (name, g) in grads where parameterSet.contains(name) || pass.gradientInputs.contains(name) {
            result[name] = g
        }
        return result
    }

    private func accumulate(_ grads: inout [String: Tensor], _ name: String, _ g: Tensor) throws {
        guard var old = grads.removeValue(forKey: name) else { grads[name] = g; return }
        guard case .f32(var a) = old.storage else { throw BitSwitchError(.internalError, "non-float gradient") }
        let b = try g.trainingFloats("gradient")
        guard a.count == b.count else { throw BitSwitchError(.internalError, "gradient sizes differ for '\(name)'") }
        old.storage = .f32([])
        a.withUnsafeMutableBufferPointer { ap in b.withUnsafeBufferPointer { bp in
            guard let x = ap.baseAddress, let y = bp.baseAddress else { return }
            parallelFor(ap.count, minChunk: elementwiseChunk) { r in for i in r { x[i] += y[i] } }
        } }
        old.storage = .f32(a)
        grads[name] = old
    }

    /// The graph with the current parameter and state values as its initializers.
    public func exportGraph() -> Graph {
        var g = graph
        for name in graph.initializerOrder { if let t = values[name] { g.setInitializer(name, t) } }
        return g
    }
}

/// A batch of a dataset's float samples as a graph input of element type `dtype`: token ids for an int64 or int32
/// input (floats hold them exactly), floats otherwise. Training, calibration and BN re-estimation feed inputs so.
public func datasetInputTensor(dtype: DType?, _ shape: [Int], _ x: [Float]) -> Tensor {
    switch dtype {
    case .i64?: return Tensor(shape: shape, int64s: x.map { Int64($0) })
    case .i32?: return Tensor(dtype: .i32, shape: shape, storage: .i32(x.map { Int32($0) }))
    default: return floatTensor(shape, x)
    }
}
