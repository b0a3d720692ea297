import BitSwitchIR

/// What the first and last quantized layer become (METHOD.md §3).
public enum FirstLastPolicy: String, Sendable, CaseIterable {
    /// Quantized at 8 bits whatever the trained bit set (weights and input activation), for integer-only deployment.
    case int8
    /// Left in float (the paper's choice).
    case float
    /// Quantized and switching like every other layer (no exception for the first and last layer).
    case switching = "switch"
    /// The first layer switches like the others, the last (a language model's head) stays float: the paper's
    /// transformer recipe, whose first linear layer reads the float embedding (METHOD.md; issue 11).
    case headFloat = "head-float"

    /// The policy `auto` means: `headFloat` for a token model (`isTokenModel`), `int8` for anything else.
    public static func automatic(for g: Graph) -> FirstLastPolicy { isTokenModel(g) ? .headFloat : .int8 }
}

/// Whether `g` is a token model: a Gather reads a float32 constant table (an embedding) at indices that are a
/// graph input. Its first linear layer reads the embedding, not raw data, so it switches like the rest.
public func isTokenModel(_ g: Graph) -> Bool {
    let inputs = Set(g.inputNames)
    return g.nodes.contains { n in
        guard case .gather = n.op, n.inputs.count == 2, let t = g.initializers[n.inputs[0]] else { return false }
        return t.dtype == .f32 && inputs.contains(n.inputs[1])
    }
}

/// The bit-width of the stored integers q_h of the switching layers.
public enum StoreBitsPolicy: String, Sendable, CaseIterable {
    /// INT8, the default: every trained bit-width is a rounding shift of q_8 (METHOD.md §1).
    case int8 = "8"
    /// The top trained bit-width (e.g. INT4 for {4,3,2}): smaller integers but lossier, since the first rounding is
    /// already at the top bit-width. Still held in int8 containers in the file.
    case top
}

public struct FakeQuantOptions: Sendable, Equatable {
    /// The trained bit set; any order on input, held descending.
    public var bits: [Int]
    public var firstLast: FirstLastPolicy
    public var storeBits: StoreBitsPolicy
    /// The exact-chain-rule scale gradient (with 2^Δ) instead of the reference implementation's.
    public var exactGradient: Bool
    /// Activation quantizers on both operands of every MatMul whose operands are both computed (attention's Q·Kᵀ
    /// and P·V), at the switching bit-widths.
    public var attentionProducts: Bool
    /// A Double Rounding weight quantizer (per row: one scale per token) on every embedding table (a Gather of a
    /// float32 constant, `isTokenModel`).
    public var embedding: Bool
    /// Activation quantizers on the input of every LayerNormalization.
    public var norms: Bool
    /// Activation quantizers on the input of every non-linearity (Gelu, Erf, Softmax, Sigmoid, Tanh, Relu, Exp).
    public var nonLinearities: Bool
    /// Every LayerNormalization with a constant affine becomes a SwitchableLayerNorm: one (scale, bias) row per
    /// bit-width, the transformer analogue of switchable BatchNorm.
    public var switchableLayerNorm: Bool

    public init(bits: [Int] = [8, 6, 4, 2], firstLast: FirstLastPolicy = .int8, storeBits: StoreBitsPolicy = .int8,
                exactGradient: Bool = false, attentionProducts: Bool = false, embedding: Bool = false,
                norms: Bool = false, nonLinearities: Bool = false, switchableLayerNorm: Bool = false) {
        self.bits = bits.sorted(by: >)
        self.firstLast = firstLast
        self.storeBits = storeBits
        self.exactGradient = exactGradient
        self.attentionProducts = attentionProducts
        self.embedding = embedding
        self.norms = norms
        self.nonLinearities = nonLinearities
        self.switchableLayerNorm = switchableLayerNorm
    }
}

/// The bit-width every pinned first/last layer runs at.
let pinnedBitWidth = 8

/// Turns a float model into a multi-precision fake-quant model (QUANT_PLAN.md, METHOD.md §1–3):
///
/// - a weight computed from constants only (`Transpose(W)`, `Reshape(W, shape)`, ...) is folded to an initializer
///   first (`foldConstantWeights`);
/// - every Conv / Gemm / MatMul whose weight is a float32 initializer reads its weight through
///   `FakeQuantWeight(W, W.scale)` (per-output-channel scales, initialised from W) and its data input through
///   `FakeQuantAct(x, x.act_scales)` (one scale per bit-width, all 0 = initialised from the first training batch);
/// - the first and last such layer are pinned at 8 bits (`firstLast: .int8`) or left float (`.float`);
/// - every BatchNormalization becomes a SwitchableBatchNorm with its parameters tiled once per bit-width;
/// - `log` receives one line per quantized layer and a warning for each switching Conv/Gemm whose output does not
///   go straight into a BatchNormalization.
///
/// An activation is unsigned when what produces it is non-negative: Relu, Sigmoid, HardSigmoid, Clip with min >= 0,
/// looked through the ops that keep the sign (pooling, reshaping, Concat of non-negative values), because
/// `MaxPool(Relu(x))` is as non-negative as `Relu(x)` and a signed 2-bit range would waste half its levels on it.
public func insertFakeQuant(_ g: inout Graph, options: FakeQuantOptions = FakeQuantOptions(),
                            log: (String) -> Void = { _ in }) throws {
    try validate(options)
    if let n = g.nodes.first(where: { isQuantized($0.op) }) {
        throw BitSwitchError(.pass, "the graph is already quantized; insert-fake-quant needs a float model",
                             node: n.label, op: n.op.typeName, domain: n.op.domain)
    }
    let bits = options.bits
    let top = bits[0]
    // A weight that reaches its layer through a Transpose/Reshape/... of a constant becomes a constant first.
    try foldConstantWeights(&g, log: log)

    var layers: [(index: Int, axis: Int)] = []
    for (i, n) in g.nodes.enumerated() {
        guard n.inputs.count >= 2, let w = g.initializers[n.inputs[1]], w.dtype == .f32 else { continue }
        switch n.op {
        case .conv: layers.append((i, 0))
        case .gemm(let a): layers.append((i, a.transB ? 0 : 1))
        case .matMul where w.rank >= 2: layers.append((i, w.rank - 1))
        default: continue
        }
    }
    guard let first = layers.first?.index, let last = layers.last?.index else {
        throw BitSwitchError(.pass, "the graph has no Conv, Gemm or MatMul with a float32 constant weight to quantize")
    }

    let consumers = g.consumers
    let producers = g.producers
    var usedNodeNames = Set(g.nodes.map(\.name))
    func nodeName(_ base: String) -> String {
        var name = base, k = 1
        while usedNodeNames.contains(name) { name = "\(base)_\(k)"; k += 1 }
        usedNodeNames.insert(name)
        return name
    }
    // Values of quantizers not yet in g.nodes are invisible to g.freshName.
    var reserved = Set<String>()
    func freshValue(_ base: String) -> String {
        var k = 0
        while true {
            let candidate = k == 0 ? base : "\(base)_\(k)"
            if !reserved.contains(candidate) && g.freshName(candidate) == candidate {
                reserved.insert(candidate)
                return candidate
            }
            k += 1
        }
    }
    var insertBefore: [Int: [Node]] = [:]
    // One quantizer per (value, pinning): layers that share a weight or an input share its quantizer.
    var weightQuantizers: [String: String] = [:]
    var actQuantizers: [String: String] = [:]
    var quantized = 0

    for (i, axis) in layers {
        let node = g.nodes[i]
        let isEdge: Bool
        switch options.firstLast {
        case .int8, .float: isEdge = i == first || i == last
        case .switching: isEdge = false
        case .headFloat: isEdge = i == last
        }
        if isEdge && options.firstLast != .int8 {
            log("insert-fake-quant: \(describe(node)) stays float (\(options.firstLast == .headFloat ? "head" : "first/last layer"))")
            continue
        }
        let pinned: Int? = isEdge ? pinnedBitWidth : nil
        let storedBits = pinned != nil || options.storeBits == .int8 ? 8 : top
        let wName = node.inputs[1], xName = node.inputs[0]

        let wKey = "\(wName)|\(pinned ?? 0)|\(axis)"
        let wq: String
        if let existing = weightQuantizers[wKey] {
            wq = existing
        } else {
            let w = g.initializers[wName]!
            let layout = try ChannelLayout(shape: w.shape, axis: axis, channels: w.shape[axis])
            let scales = WeightQuantizer.initialScales(weight: layout.toChannelMajor(w.floats),
                                                       channels: w.shape[axis], storedBits: storedBits)
            let sName = freshValue("\(wName).scale")
            g.setInitializer(sName, Tensor(shape: [scales.count], floats: scales))
            wq = freshValue("\(wName).fq")
            g.valueTypes[wq] = w.type
            let attrs = FakeQuantWeightAttrs(bits: bits, storedBits: storedBits, axis: axis, pinnedBits: pinned,
                                             exactGradient: options.exactGradient)
            insertBefore[i, default: []].append(Node(name: nodeName("\(node.label).weight_quant"),
                                                     op: .fakeQuantWeight(attrs), inputs: [wName, sName], outputs: [wq]))
            weightQuantizers[wKey] = wq
        }

        let xKey = "\(xName)|\(pinned ?? 0)"
        let xq: String
        let signed = !isNonNegative(xName, g, producers)
        if let existing = actQuantizers[xKey] {
            xq = existing
        } else {
            let aName = freshValue("\(xName).act_scales")
            // 0 = not initialised: the first training batch at each bit-width sets it (METHOD.md §2).
            g.setInitializer(aName, Tensor(shape: [bits.count], floats: [Float](repeating: 0, count: bits.count)))
            xq = freshValue("\(xName).fq")
            if let t = g.type(of: xName) { g.valueTypes[xq] = t }
            insertBefore[i, default: []].append(Node(name: nodeName("\(node.label).input_quant"),
                                                     op: .fakeQuantAct(FakeQuantActAttrs(bits: bits, signed: signed,
                                                                                         pinnedBits: pinned)),
                                                     inputs: [xName, aName], outputs: [xq]))
            actQuantizers[xKey] = xq
        }
        g.nodes[i].inputs[0] = xq
        g.nodes[i].inputs[1] = wq
        quantized += 1

        let bitText = pinned.map { "pinned at \($0) bits" } ?? "bits \(bits.map(String.init).joined(separator: ","))"
        log("insert-fake-quant: \(describe(node)) \(bitText), weight '\(wName)' per-channel on axis \(axis) stored "
            + "as int\(storedBits), input '\(xName)' \(signed ? "signed" : "unsigned")")
        if pinned == nil, !isMatMul(node.op) {
            let out = node.outputs[0]
            let feedsBN = (consumers[out] ?? []).contains { j in
                if case .batchNormalization = g.nodes[j].op { return true }
                return false
            }
            if !feedsBN {
                log("warning: \(describe(node)) switches bit-width but is not followed by BatchNormalization; "
                    + "one set of weights serves every bit-width well only with a switchable BN after each layer")
            }
        }
    }
    guard quantized > 0 else {
        throw BitSwitchError(.pass, "nothing to quantize: the only Conv/Gemm/MatMul layers are the first and last, "
            + "which first-last=\(options.firstLast.rawValue) leaves in float")
    }

    // The transformer options: quantizers on activations other than a linear layer's input, and on embeddings.
    let layerIndices = Set(layers.map(\.index))
    func actQuantizer(_ xName: String, before i: Int, role: String) -> String {
        let key = "\(xName)|0"
        if let existing = actQuantizers[key] { return existing }
        let signed = !isNonNegative(xName, g, producers)
        let aName = freshValue("\(xName).act_scales")
        g.setInitializer(aName, Tensor(shape: [bits.count], floats: [Float](repeating: 0, count: bits.count)))
        let xq = freshValue("\(xName).fq")
        if let t = g.type(of: xName) { g.valueTypes[xq] = t }
        insertBefore[i, default: []].append(Node(name: nodeName("\(g.nodes[i].label).\(role)"),
                                                 op: .fakeQuantAct(FakeQuantActAttrs(bits: bits, signed: signed)),
                                                 inputs: [xName, aName], outputs: [xq]))
        actQuantizers[key] = xq
        return xq
    }
    var extra = 0
    for i in g.nodes.indices where !layerIndices.contains(i) {
        let n = g.nodes[i]
        switch n.op {
        case .matMul where options.attentionProducts:
            guard n.inputs.count == 2, !n.inputs.contains(where: { g.initializers[$0] != nil }) else { continue }
            g.nodes[i].inputs[0] = actQuantizer(n.inputs[0], before: i, role: "a_quant")
            g.nodes[i].inputs[1] = actQuantizer(n.inputs[1], before: i, role: "b_quant")
            log("insert-fake-quant: \(describe(n)) (activation product) both inputs quantized")
            extra += 1
        case .gather where options.embedding:
            guard n.inputs.count == 2, let w = g.initializers[n.inputs[0]], w.dtype == .f32, w.rank == 2 else { continue }
            let wName = n.inputs[0]
            let key = "\(wName)|0|0"
            let wq: String
            if let existing = weightQuantizers[key] {
                wq = existing
            } else {
                let layout = try ChannelLayout(shape: w.shape, axis: 0, channels: w.shape[0])
                let scales = WeightQuantizer.initialScales(weight: layout.toChannelMajor(w.floats),
                                                           channels: w.shape[0], storedBits: 8)
                let sName = freshValue("\(wName).scale")
                g.setInitializer(sName, Tensor(shape: [scales.count], floats: scales))
                wq = freshValue("\(wName).fq")
                g.valueTypes[wq] = w.type
                let attrs = FakeQuantWeightAttrs(bits: bits, storedBits: 8, axis: 0, pinnedBits: nil,
                                                 exactGradient: options.exactGradient)
                insertBefore[i, default: []].append(Node(name: nodeName("\(n.label).weight_quant"),
                                                         op: .fakeQuantWeight(attrs), inputs: [wName, sName],
                                                         outputs: [wq]))
                weightQuantizers[key] = wq
            }
            g.nodes[i].inputs[0] = wq
            log("insert-fake-quant: \(describe(n)) (embedding) table '\(wName)' per-row, stored as int8")
            extra += 1
        case .layerNormalization where options.norms:
            g.nodes[i].inputs[0] = actQuantizer(n.inputs[0], before: i, role: "input_quant")
            log("insert-fake-quant: \(describe(n)) input quantized")
            extra += 1
        case .gelu, .erf, .softmax, .sigmoid, .tanh, .relu, .exp:
            guard options.nonLinearities else { continue }
            g.nodes[i].inputs[0] = actQuantizer(n.inputs[0], before: i, role: "input_quant")
            log("insert-fake-quant: \(describe(n)) input quantized")
            extra += 1
        default:
            continue
        }
    }

    var nodes: [Node] = []
    nodes.reserveCapacity(g.nodes.count + 2 * quantized)
    for (i, n) in g.nodes.enumerated() {
        nodes += insertBefore[i] ?? []
        nodes.append(n)
    }
    g.nodes = nodes
    let switchable = try makeBatchNormsSwitchable(&g, bits: bits, log: log)
    if options.switchableLayerNorm {
        let n = makeLayerNormsSwitchable(&g, bits: bits, log: log)
        log("insert-fake-quant: \(n) LayerNormalization made switchable")
    }
    g.opsets[Op.bitswitchDomain] = g.opsets[Op.bitswitchDomain] ?? 1
    log("insert-fake-quant: \(quantized) layers quantized, \(extra > 0 ? "\(extra) other ops quantized, " : "")\(switchable) BatchNormalization made switchable, "
        + "bits \(bits.map(String.init).joined(separator: ","))")
}

private func validate(_ o: FakeQuantOptions) throws {
    guard !o.bits.isEmpty else { throw BitSwitchError(.pass, "the bit set is empty") }
    if let bad = o.bits.first(where: { !(2...8).contains($0) }) {
        throw BitSwitchError(.pass, "bit-width \(bad) is outside 2...8 (weights are stored as int8)")
    }
    guard Set(o.bits).count == o.bits.count else {
        throw BitSwitchError(.pass, "the bit set \(o.bits) lists a bit-width twice")
    }
}

private func isQuantized(_ op: Op) -> Bool {
    switch op {
    case .fakeQuantWeight, .fakeQuantAct, .switchableBatchNorm, .switchableLayerNorm, .quantizeLinear,
         .dequantizeLinear: return true
    default: return false
    }
}

private func isMatMul(_ op: Op) -> Bool {
    if case .matMul = op { return true }
    return false
}

private func describe(_ n: Node) -> String { "\(n.op.typeName) '\(n.label)'" }

/// Whether `value` is non-negative by construction (see `insertFakeQuant`). Graph inputs count as signed.
private func isNonNegative(_ value: String, _ g: Graph, _ producers: [String: Int], depth: Int = 0) -> Bool {
    guard depth < 64, let p = producers[value] else { return false }
    let n = g.nodes[p]
    func through(_ i: Int) -> Bool { i < n.inputs.count && isNonNegative(n.inputs[i], g, producers, depth: depth + 1) }
    switch n.op {
    case .relu, .sigmoid, .hardSigmoid, .softmax: return true
    case .clip(let minimum, _):
        if let minimum { return minimum >= 0 }
        guard n.inputs.count > 1, let t = g.initializers[n.inputs[1]], t.count == 1 else { return false }
        return t.floats[0] >= 0
    case .maxPool, .averagePool, .globalAveragePool, .flatten, .reshape, .transpose, .squeeze, .unsqueeze,
         .identity, .dropout, .reduceMean:
        return through(0)
    case .pad(_, _, let v):
        if n.inputs.count > 2, !n.inputs[2].isEmpty {
            guard let t = g.initializers[n.inputs[2]], t.count == 1, t.floats[0] >= 0 else { return false }
        } else if v < 0 { return false }
        return through(0)
    case .concat:
        return n.inputs.indices.allSatisfy { n.inputs[$0].isEmpty || through($0) }
    default:
        return false
    }
}

/// Every BatchNormalization with constant parameters becomes a SwitchableBatchNorm whose four parameters hold one
/// row per bit-width, each a copy of the float BN (so the model starts where the float model is).
private func makeBatchNormsSwitchable(_ g: inout Graph, bits: [Int], log: (String) -> Void) throws -> Int {
    var count = 0
    let consumers = g.consumers
    let graphOutputs = g.outputNames
    for i in g.nodes.indices {
        let n = g.nodes[i]
        guard case .batchNormalization(let eps, let momentum, _) = n.op else { continue }
        for o in n.outputs.dropFirst() where !o.isEmpty && (consumers[o] != nil || graphOutputs.contains(o)) {
            throw BitSwitchError(.pass, "BatchNormalization's running-statistics output '\(o)' is read; "
                + "a switchable BatchNorm has no such output", node: n.label, op: n.op.typeName)
        }
        let params = n.inputs.dropFirst().map { g.initializers[$0] }
        guard n.inputs.count == 5, params.allSatisfy({ $0.map { $0.dtype == .f32 && $0.rank == 1 } ?? false }) else {
            log("warning: BatchNormalization '\(n.label)' has non-constant parameters and stays one BN shared by "
                + "every bit-width")
            continue
        }
        var inputs = [n.inputs[0]]
        for (name, t) in zip(n.inputs.dropFirst(), params.map { $0! }) {
            let tiled = Tensor(shape: [bits.count, t.count],
                               floats: Array([[Float]](repeating: t.floats, count: bits.count).joined()))
            let readers = consumers[name] ?? []
            if readers.count == 1 && !g.inputNames.contains(name) {
                g.setInitializer(name, tiled)
                inputs.append(name)
            } else {
                let fresh = g.freshName("\(name).switchable")
                g.setInitializer(fresh, tiled)
                inputs.append(fresh)
            }
        }
        g.nodes[i] = Node(name: n.name, op: .switchableBatchNorm(bits: bits, epsilon: eps, momentum: momentum),
                          inputs: inputs, outputs: [n.outputs[0]])
        count += 1
    }
    return count
}

/// Every LayerNormalization whose scale (and bias, if any) are float32 constants becomes a SwitchableLayerNorm whose
/// scale and bias hold one row per bit-width, each a copy of the float affine (a missing bias is zeros).
private func makeLayerNormsSwitchable(_ g: inout Graph, bits: [Int], log: (String) -> Void) -> Int {
    var count = 0
    let consumers = g.consumers
    let graphOutputs = g.outputNames
    for i in g.nodes.indices {
        let n = g.nodes[i]
        guard case .layerNormalization(let axis, let eps) = n.op else { continue }
        if n.outputs.dropFirst().contains(where: { !$0.isEmpty && (consumers[$0] != nil || graphOutputs.contains($0)) }) {
            log("warning: LayerNormalization '\(n.label)' has its Mean/InvStdDev outputs read and stays shared by "
                + "every bit-width")
            continue
        }
        guard let scale = g.initializers[n.inputs[1]], scale.dtype == .f32 else {
            log("warning: LayerNormalization '\(n.label)' has a non-constant scale and stays shared by every bit-width")
            continue
        }
        let hasBias = n.inputs.count > 2 && !n.inputs[2].isEmpty
        let bias: Tensor
        if hasBias {
            guard let b = g.initializers[n.inputs[2]], b.dtype == .f32, b.count == scale.count else {
                log("warning: LayerNormalization '\(n.label)' has a non-constant bias and stays shared by every bit-width")
                continue
            }
            bias = b
        } else {
            bias = Tensor(shape: [scale.count], floats: [Float](repeating: 0, count: scale.count))
        }
        var inputs = [n.inputs[0]]
        for (k, t) in [(1, scale), (2, bias)] {
            let tiled = Tensor(shape: [bits.count, t.count],
                               floats: Array([[Float]](repeating: t.floats, count: bits.count).joined()))
            let name = k < n.inputs.count ? n.inputs[k] : ""
            if !name.isEmpty, (consumers[name] ?? []).count == 1, !g.inputNames.contains(name) {
                g.setInitializer(name, tiled)
                inputs.append(name)
            } else {
                let fresh = g.freshName(name.isEmpty ? "\(n.label).bias.switchable" : "\(name).switchable")
                g.setInitializer(fresh, tiled)
                inputs.append(fresh)
            }
        }
        g.nodes[i] = Node(name: n.name, op: .switchableLayerNorm(bits: bits, axis: axis, epsilon: eps),
                          inputs: inputs, outputs: [n.outputs[0]])
        count += 1
    }
    return count
}
