import BitSwitchIR
import Foundation

// Lowering of a multi-precision fake-quant graph to the integer dialect, for one bit assignment
// (docs/int-ops.md). One walk over the nodes keeps, for every float value, how it exists in integers: an integer
// tensor and a pending per-channel affine map `value = α_c · q + β_c` with a pending clamp. Float ops that are
// affine (BatchNorm, bias adds, constant scaling) or clamps (ReLU, ReLU6, Clip) only change that map; the next
// quantizer ends the chain with one Requant. The 2^Δ of the shared weight scale is a factor of α, so it only moves
// the Requant shift n_c by Δ.

/// Metadata keys of a lowered graph: the layer bits it was lowered for, and which layer bits each parametric
/// integer node's parameters depend on (the C emitter builds per-layer switching tables from them).
public enum LoweringMetadata {
    public static let bits = "bitswitch.int.bits"
    public static let sites = "bitswitch.int.sites"
    /// The pseudo-layer for the profile's default bit-width (rows of pinned layers' quantizers and BN); its site is "*:w".
    public static let defaultSite = "*"
}

/// Lowers `graph` (a fake-quant graph; float or stored-int8 weights) at `assignment` to integer ops.
/// `log` receives warnings (e.g. a clamped bias).
public func lowerToIntegers(_ graph: Graph, assignment: BitAssignment = BitAssignment(),
                            log: @escaping (String) -> Void = { _ in }) throws -> Graph {
    var lowering = try IntegerLowering(foldWeightQuantizers(graph), log: log)
    return try lowering.run(assignment)
}

/// A value as integers: `value = α_c · q + β_c` (per channel along `axis`, or per tensor when α has one entry),
/// clamped to [lo, hi] (real units) when materialised. `zero` is set when the value is a plain quantized tensor
/// (per-tensor scale, β = −zero · α, no pending clamp).
struct IntRep {
    var name: String
    var dtype: DType
    var alpha: [Double]
    var beta: [Double]
    var axis: Int
    var lo: Double = -.infinity
    var hi: Double = .infinity
    var zero: Int?
    var sites: Set<String>

    static func plain(_ name: String, _ dtype: DType, scale: Double, zero: Int, sites: Set<String>) -> IntRep {
        IntRep(name: name, dtype: dtype, alpha: [scale], beta: [-Double(zero) * scale], axis: 1, zero: zero, sites: sites)
    }
    var isPlain: Bool { zero != nil && lo == -.infinity && hi == .infinity }
    var scale: Double { alpha[0] }
    var channels: Int { alpha.count }
}

struct IntegerLowering {
    let source: Graph
    let log: (String) -> Void
    var out: Graph
    var reps: [String: IntRep] = [:]
    var weightInfo: [String: (qName: String, scales: [Float], stored: Int, bits: Int, axis: Int, site: String?)] = [:]
    var sites: [String: Set<String>] = [:]
    let producers: [String: Int]
    let consumers: [String: [Int]]
    let layers: [QuantizedLayer]
    /// Site of each quant-dialect node ("L:w", "L:a" or "*"), nil for fixed ones (pinned weight widths).
    var nodeSite: [String: String] = [:]
    var materialized: [String: IntRep] = [:]
    var usedNames: Set<String> = []
    var usedNodeNames: Set<String> = []

    init(_ g: Graph, log: @escaping (String) -> Void) throws {
        var graph = g
        let quantized = graph.nodes.contains { n in
            switch n.op { case .fakeQuantWeight, .quantizeLinear: return true; default: return false }
        }
        if !quantized {
            throw BitSwitchError(.pass, "the model has no quantizers (no FakeQuantWeight, no QuantizeLinear): run insert-fake-quant and train it (train --bits 8,6,4,2), or calibrate it (train --bits ... --ptq), before lowering to integers")
        }
        graph = try storeQuantized(graph)
        try inferShapes(&graph)
        source = graph
        self.log = log
        producers = graph.producers
        consumers = graph.consumers
        layers = quantizedLayers(graph)
        out = Graph(name: graph.name, opsets: graph.opsets.merging([Op.bitswitchDomain: 1]) { a, _ in a },
                    inputs: graph.inputs, outputs: graph.outputs, metadata: graph.metadata)
        usedNames = Set(graph.initializerOrder).union(graph.inputs.map(\.name)).union(graph.nodes.flatMap(\.outputs))
        nodeSite = IntegerLowering.sites(of: layers)
    }

    /// The layer bit each quant-dialect node follows: "L:w" (a switchable layer's weight quantizer and BN),
    /// "L:a" (the input quantizer of its first switchable reader), "*" (rows of pinned layers follow the profile's
    /// default); pinned weight quantizers follow nothing.
    static func sites(of layers: [QuantizedLayer]) -> [String: String] {
        var nodeSite: [String: String] = [:]
        for l in layers {
            if l.isSwitchable {
                nodeSite[l.weightQuant] = "\(l.name):w"
                for bn in l.batchNorms { nodeSite[bn] = "\(l.name):w" }
            } else {
                for bn in l.batchNorms { nodeSite[bn] = "\(LoweringMetadata.defaultSite):w" }
            }
            if let q = l.inputQuant, nodeSite[q] == nil || l.isSwitchable && nodeSite[q] == "\(LoweringMetadata.defaultSite):w" {
                nodeSite[q] = l.isSwitchable ? "\(l.name):a" : "\(LoweringMetadata.defaultSite):w"
            }
        }
        return nodeSite
    }

    mutating func fresh(_ base: String) -> String {
        var name = base, k = 1
        while usedNames.contains(name) { name = "\(base)_\(k)"; k += 1 }
        usedNames.insert(name)
        return name
    }

    /// Appends a node; its name (unique among nodes, a namespace apart from values) is `base` where it is free.
    mutating func emit(_ op: Op, _ inputs: [String], name base: String, output: String, sites s: Set<String>) {
        var name = base, k = 1
        while usedNodeNames.contains(name) { name = "\(base)_\(k)"; k += 1 }
        usedNodeNames.insert(name)
        out.nodes.append(Node(name: name, op: op, inputs: inputs, outputs: [output]))
        if !s.isEmpty { sites[name] = s }
    }

    mutating func constant(_ base: String, _ t: Tensor) -> String {
        let n = fresh(base)
        out.setInitializer(n, t)
        return n
    }

    // MARK: the walk

    mutating func run(_ assignment: BitAssignment) throws -> Graph {
        for node in source.nodes {
            do { try lower(node, assignment) } catch let e as BitSwitchError {
                throw e.located(node: node.label, op: node.op.typeName, domain: node.op.domain)
            }
        }
        for o in source.outputs {
            guard let r = reps[o.name] else {
                if out.initializers[o.name] != nil || out.nodes.contains(where: { $0.outputs.contains(o.name) }) { continue }
                throw BitSwitchError(.pass, "graph output '\(o.name)' has no integer form")
            }
            let p = try materialize(r, for: o.name)
            emit(.dequantize(scale: Float(p.scale), zero: p.zero ?? 0), [p.name], name: "\(o.name).dequantize",
                 output: o.name, sites: p.sites)
        }
        out.removeDeadCode()
        try inferShapes(&out)
        try verifyInteger(out)
        recordMetadata(assignment)
        return out
    }

    mutating func recordMetadata(_ assignment: BitAssignment) {
        let top = layers.first?.bits.max() ?? 8
        var bits: [String] = []
        for l in layers where l.isSwitchable {
            let w = assignment.bits(for: l.weightQuant) ?? top
            let a = l.inputQuant.flatMap { assignment.bits(for: $0) } ?? top
            bits.append("\(jsonString(l.name)): {\"w\": \(w), \"a\": \(a)}")
        }
        let d = assignment.defaultBits ?? top
        bits.append("\(jsonString(LoweringMetadata.defaultSite)): {\"w\": \(d), \"a\": \(d)}")
        out.metadata[LoweringMetadata.bits] = "{" + bits.joined(separator: ", ") + "}"
        let live = Set(out.nodes.map(\.name))
        let entries = sites.keys.filter { live.contains($0) }.sorted().map { k in
            "\(jsonString(k)): [" + sites[k]!.sorted().map(jsonString).joined(separator: ", ") + "]"
        }
        out.metadata[LoweringMetadata.sites] = "{" + entries.joined(separator: ", ") + "}"
    }

    func rowBits(_ node: Node, _ bits: [Int], _ assignment: BitAssignment) throws -> (bits: Int, index: Int) {
        let b = assignment.bits(for: node.name) ?? bits.max() ?? 8
        guard let i = bits.firstIndex(of: b) else {
            throw BitSwitchError(.pass, "bit-width \(b) is not one of the trained bit-widths \(bits)")
        }
        return (b, i)
    }

    func siteSet(_ node: Node) -> Set<String> { nodeSite[node.name].map { [$0] } ?? [] }

    func input(_ node: Node, _ k: Int) throws -> IntRep {
        let v = node.inputs[k]
        guard let r = reps[v] else {
            if source.inputs.contains(where: { $0.name == v }) {
                throw BitSwitchError(.unsupported, "reads the float graph input '\(v)' directly; the integer back end needs every input quantized first (a FakeQuantAct on it)")
            }
            throw BitSwitchError(.unsupported, "input '\(v)' has no integer form (it is not produced by a quantized computation)")
        }
        return r
    }

    mutating func lower(_ node: Node, _ assignment: BitAssignment) throws {
        let y = node.outputs.first ?? ""
        switch node.op {
        case .fakeQuantWeight(let a):
            guard let w = source.initializers[node.inputs[0]], w.dtype == .i8,
                  let s = source.initializers[node.inputs[1]] else {
                throw BitSwitchError(.pass, "the weight and its scales must be constants")
            }
            let bits = try a.pinnedBits ?? rowBits(node, a.bits, assignment).bits
            let qName = node.inputs[0]
            if out.initializers[qName] == nil { out.setInitializer(qName, w) }
            weightInfo[y] = (qName, s.floats, a.storedBits, bits, a.axis, a.pinnedBits == nil ? nodeSite[node.name] : nil)

        case .fakeQuantAct(let a):
            let row = try rowBits(node, a.bits, assignment)
            let bits = a.pinnedBits ?? row.bits
            guard let st = source.initializers[node.inputs[1]], st.count == a.bits.count else {
                throw BitSwitchError(.pass, "the activation scales must be a constant with one value per bit-width")
            }
            let scale = Double(st.floats[row.index])
            guard scale > 0, scale.isFinite else {
                throw BitSwitchError(.pass, "the activation scale for bit-width \(row.bits) is not initialised (\(scale)); train or calibrate the model at that bit-width first")
            }
            let (lo, hi) = a.signed ? (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) : (0, (1 << bits) - 1)
            let dtype: DType = a.signed ? .i8 : .u8
            let qName = fresh("\(y).q")
            let s = siteSet(node)
            if reps[node.inputs[0]] == nil, source.inputs.contains(where: { $0.name == node.inputs[0] }) {
                emit(.quantize(scale: Float(scale), zero: 0, lo: lo, hi: hi, to: dtype), [node.inputs[0]],
                     name: "\(node.label)", output: qName, sites: s)
            } else {
                let r = try input(node, 0)
                try requant(r, into: qName, dtype: dtype, scale: scale, zero: 0, lo: lo, hi: hi, name: node.label, extraSites: s)
            }
            reps[y] = .plain(qName, dtype, scale: scale, zero: 0, sites: s)

        case .conv, .gemm, .matMul:
            try lowerLayer(node)

        case .switchableBatchNorm(let bits, let eps, _, let previous):
            let row = try assignment.batchNormRow(node: node.name, bits: bits, previous: previous)
            let rows = Op.switchableBatchNormRows(bits: bits, previous: previous)
            let p = try (1...4).map { k -> [Float] in
                guard let t = source.initializers[node.inputs[k]], t.rank == 2, t.shape[0] == rows else {
                    throw BitSwitchError(.pass, "switchable BatchNorm parameters must be constants [\(rows), C]")
                }
                let c = t.shape[1]
                return Array(t.floats[(row.row * c)..<((row.row + 1) * c)])
            }
            // Transitional BN: its rows depend on the previous layer's weight bits too (for per-layer switching).
            var s = siteSet(node)
            if let previous, let site = nodeSite[previous] { s.insert(site) }
            try foldBatchNorm(node, p[0], p[1], p[2], p[3], eps: eps, sites: s)
        case .batchNormalization(let eps, _, let training):
            guard !training else { throw BitSwitchError(.unsupported, "training-mode BatchNormalization cannot be lowered") }
            let p = try (1...4).map { k -> [Float] in
                guard let t = source.initializers[node.inputs[k]] else {
                    throw BitSwitchError(.pass, "BatchNormalization parameters must be constants")
                }
                return t.floats
            }
            try foldBatchNorm(node, p[0], p[1], p[2], p[3], eps: eps, sites: [])

        case .relu:
            var r = try input(node, 0)
            r.lo = max(r.lo, 0)
            reps[y] = r
        case .clip(let lo, let hi):
            var r = try input(node, 0)
            let l = lo ?? node.inputs[safe: 1].flatMap { source.initializers[$0]?.floats.first }
            let h = hi ?? node.inputs[safe: 2].flatMap { source.initializers[$0]?.floats.first }
            if node.inputs.count > 1, !node.inputs[1].isEmpty, l == nil { throw BitSwitchError(.unsupported, "Clip bounds must be constants") }
            if node.inputs.count > 2, !node.inputs[2].isEmpty, h == nil { throw BitSwitchError(.unsupported, "Clip bounds must be constants") }
            if let l { r.lo = max(r.lo, Double(l)) }
            if let h { r.hi = min(r.hi, Double(h)) }
            reps[y] = r
        case .identity, .dropout:
            reps[y] = try input(node, 0)

        case .add, .sub, .mul, .div:
            try lowerArithmetic(node)

        case .maxPool(let p):
            if node.outputs.count > 1, !node.outputs[1].isEmpty {
                throw BitSwitchError(.unsupported, "MaxPool's Indices output cannot be lowered")
            }
            var r = try input(node, 0)
            // Max commutes with an increasing per-channel map and with the clamp: pool the integers as they are.
            if !(r.alpha.allSatisfy { $0 > 0 } && (r.channels == 1 || r.axis == 1)) { r = try materialize(r, for: node.inputs[0]) }
            let q = fresh("\(y).q")
            emit(.qmaxPool(p), [r.name], name: node.label, output: q, sites: [])
            r.name = q
            reps[y] = r
        case .averagePool(let p):
            try lowerAverage(node, attrs: p)
        case .globalAveragePool:
            try lowerAverage(node, attrs: nil)

        case .flatten, .reshape, .transpose, .squeeze, .unsqueeze:
            var r = try input(node, 0)
            let shape = source.type(of: node.inputs[0])?.knownShape
            let perChannelOK: Bool = {
                guard case .flatten(let axis) = node.op, r.channels > 1, r.axis == 1, let shape, shape.count >= 2 else { return false }
                return axis == 1 && shape[2...].allSatisfy { $0 == 1 }
            }()
            if r.channels > 1 && !perChannelOK { r = try materialize(r, for: node.inputs[0]) }
            var ins = [r.name]
            for extra in node.inputs.dropFirst() {
                guard extra.isEmpty || source.initializers[extra] != nil else {
                    throw BitSwitchError(.unsupported, "the shape/axes input '\(extra)' must be a constant")
                }
                if !extra.isEmpty, out.initializers[extra] == nil, let t = source.initializers[extra] { out.setInitializer(extra, t) }
                ins.append(extra)
            }
            let q = fresh("\(y).q")
            emit(node.op, ins, name: node.label, output: q, sites: [])
            r.name = q
            reps[y] = r
        case .concat(let axis):
            let parts = try node.inputs.indices.map { try materialize(try input(node, $0), for: node.inputs[$0]) }
            let first = parts[0]
            var ins = parts.map(\.name), rep = first
            if !parts.allSatisfy({ $0.scale == first.scale && $0.zero == first.zero && $0.dtype == first.dtype }) {
                let smallest = parts.min { $0.scale < $1.scale }!
                let (s, fixed) = try fineScale(y, fallback: smallest)
                ins = []
                for (k, p) in parts.enumerated() {
                    let q = fresh("\(node.inputs[k]).fine")
                    try requant(p, into: q, dtype: .i32, scale: s, zero: 0, lo: Int(Int32.min), hi: Int(Int32.max),
                                name: "\(node.label).input\(k)", extraSites: [])
                    ins.append(q)
                }
                rep = .plain("", .i32, scale: s, zero: 0, sites: fixed ? [] : Set(parts.flatMap(\.sites)))
            }
            let q = fresh("\(y).q")
            emit(.concat(axis: axis), ins, name: node.label, output: q, sites: [])
            rep.name = q
            reps[y] = rep

        case .quantizeLinear(let axis, _, let outType):
            // QDQ models (onnxruntime quantize_static, PyTorch QAT export): Q(x) is an integer tensor with a zero point.
            let (scale, zero, dtype) = try qdqParameters(node, outType: outType, axis: axis)
            guard scale.count == 1 else { throw BitSwitchError(.unsupported, "per-axis QuantizeLinear of an activation cannot be lowered") }
            let range = dtype.integerRange!
            let qName = fresh("\(y).q")
            if reps[node.inputs[0]] == nil, source.inputs.contains(where: { $0.name == node.inputs[0] }) {
                emit(.quantize(scale: scale[0], zero: zero, lo: range.lowerBound, hi: range.upperBound, to: dtype),
                     [node.inputs[0]], name: node.label, output: qName, sites: [])
            } else {
                try requant(try input(node, 0), into: qName, dtype: dtype, scale: Double(scale[0]), zero: zero,
                            lo: range.lowerBound, hi: range.upperBound, name: node.label, extraSites: [])
            }
            reps[y] = .plain(qName, dtype, scale: Double(scale[0]), zero: zero, sites: [])
        case .dequantizeLinear(let axis):
            if let w = source.initializers[node.inputs[0]], w.dtype == .i32 {
                break  // a QDQ bias: its reader takes the values through constantFloats
            } else if let w = source.initializers[node.inputs[0]] {
                // A constant weight: the integers are the stored weights (symmetric int8 only).
                let (scale, zero, _) = try qdqParameters(node, outType: nil, axis: axis)
                guard w.dtype == .i8, zero == 0 else {
                    throw BitSwitchError(.unsupported, "only symmetric int8 weights (zero point 0) can be lowered; this one is \(w.dtype) with zero point \(zero)")
                }
                let rank = w.rank
                let a = axis < 0 ? axis + rank : axis
                if out.initializers[node.inputs[0]] == nil { out.setInitializer(node.inputs[0], w) }
                weightInfo[y] = (node.inputs[0], scale, 8, 8, scale.count == 1 ? 0 : a, nil)
            } else {
                reps[y] = try input(node, 0)
            }

        case .softmax, .logSoftmax, .sigmoid:
            // A float tail after the last integer value: dequantize, then run the float op.
            guard source.outputNames.contains(y) else {
                throw BitSwitchError(.unsupported, "the integer back end runs \(node.op.typeName) only at the end of the network (on the dequantized logits)")
            }
            let p = try materialize(try input(node, 0), for: node.inputs[0])
            let f = fresh("\(node.inputs[0]).float")
            emit(.dequantize(scale: Float(p.scale), zero: p.zero ?? 0), [p.name], name: "\(node.inputs[0]).dequantize",
                 output: f, sites: p.sites)
            emit(node.op, [f], name: node.name, output: y, sites: [])

        default:
            throw BitSwitchError(.unsupported, "the integer back end cannot lower \(node.op.domain.isEmpty ? "" : node.op.domain + "::")\(node.op.typeName) (supported: quantized Conv/Gemm/MatMul, BatchNormalization, Relu, Clip, Add/Sub/Mul/Div by constants, residual Add, MaxPool, AveragePool, GlobalAveragePool, Flatten, Reshape, Transpose, Squeeze, Unsqueeze, Concat, and a final Softmax)")
        }
    }

    // MARK: layers

    /// A constant's values as floats: an initializer, or DequantizeLinear of one (a QDQ model's int32 bias).
    func constantFloats(_ name: String) throws -> [Float]? {
        if let t = source.initializers[name] { return t.floats }
        guard let p = producers[name], case .dequantizeLinear(let axis) = source.nodes[p].op,
              let x = source.initializers[source.nodes[p].inputs[0]] else { return nil }
        let (scale, zero, _) = try qdqParameters(source.nodes[p], outType: nil, axis: axis)
        let v = x.ints
        if scale.count == 1 { return v.map { Float($0 - zero) * scale[0] } }
        guard scale.count == v.count else { return nil }
        return zip(v, scale).map { Float($0 - zero) * $1 }
    }

    /// Scale, zero point and integer type of a QuantizeLinear / DequantizeLinear (constants only).
    func qdqParameters(_ node: Node, outType: DType?, axis: Int) throws -> ([Float], Int, DType) {
        guard let s = source.initializers[node.inputs[1]] else {
            throw BitSwitchError(.unsupported, "the scale must be a constant")
        }
        var zero = 0
        var dtype = outType ?? .u8
        if node.inputs.count > 2, !node.inputs[2].isEmpty {
            guard let z = source.initializers[node.inputs[2]] else { throw BitSwitchError(.unsupported, "the zero point must be a constant") }
            let zs = Set(z.ints)
            guard zs.count <= 1 else { throw BitSwitchError(.unsupported, "per-axis zero points cannot be lowered") }
            zero = zs.first ?? 0
            dtype = z.dtype
        }
        if case .dequantizeLinear = node.op, let x = source.initializers[node.inputs[0]] { dtype = x.dtype }
        guard [.i8, .u8, .i32].contains(dtype) else { throw BitSwitchError(.unsupported, "\(dtype) quantization cannot be lowered (int8/uint8 only)") }
        return (s.floats, zero, dtype)
    }

    mutating func lowerLayer(_ node: Node) throws {
        guard let w = weightInfo[node.inputs[1]] else {
            throw BitSwitchError(.unsupported, "this layer's weight '\(node.inputs[1])' is not quantized (no FakeQuantWeight); the integer back end runs quantized layers only — quantize the first and last layer too (insert-fake-quant's default --first-last int8)")
        }
        let x = try input(node, 0)
        if !(x.isPlain && (x.dtype == .i8 || x.dtype == .u8)) {
            throw BitSwitchError(.unsupported, "the layer's input '\(node.inputs[0])' is not a quantized 8-bit-or-less activation (no FakeQuantAct in front of it)")
        }
        let delta = w.stored - w.bits
        let y = node.outputs[0]
        let outChannels: Int = {
            guard let wt = source.initializers[w.qName] else { return w.scales.count }
            switch node.op {
            case .conv: return wt.shape.first ?? 1
            case .gemm(let g): return g.transB ? wt.shape[0] : (wt.shape.last ?? 1)
            default: return wt.shape.last ?? 1
            }
        }()
        let weightScales = w.scales.count == 1 ? [Float](repeating: w.scales[0], count: outChannels) : w.scales
        guard weightScales.count == outChannels else {
            throw BitSwitchError(.unsupported, "the weight has \(w.scales.count) scales for \(outChannels) output channels (per-output-channel or per-tensor only)")
        }
        let acc = fresh("\(y).acc")
        var ss = x.sites
        if let s = w.site { ss.insert(s) }
        var alpha = weightScales.map { Double($0) * Double(1 << delta) * x.scale }
        var beta = [Double](repeating: 0, count: alpha.count)
        var axis = 1
        switch node.op {
        case .conv(let c):
            emit(.qconv(QConvAttrs(conv: c, wShift: delta, wBits: w.bits, xZero: x.zero ?? 0)), [x.name, w.qName],
                 name: node.label, output: acc, sites: w.site.map { [$0] } ?? [])
            if node.inputs.count > 2, !node.inputs[2].isEmpty {
                guard let b = try constantFloats(node.inputs[2]), b.count == alpha.count else {
                    throw BitSwitchError(.unsupported, "the bias must be a constant with one value per output channel")
                }
                beta = b.map(Double.init)
            }
        case .gemm(let g):
            guard !g.transA else { throw BitSwitchError(.unsupported, "Gemm with transA = 1 cannot be lowered") }
            emit(.qgemm(QGemmAttrs(transB: g.transB, wShift: delta, wBits: w.bits, xZero: x.zero ?? 0)), [x.name, w.qName],
                 name: node.label, output: acc, sites: w.site.map { [$0] } ?? [])
            alpha = alpha.map { $0 * Double(g.alpha) }
            if node.inputs.count > 2, !node.inputs[2].isEmpty {
                guard let bf = try constantFloats(node.inputs[2]), bf.count == alpha.count || bf.count == 1 else {
                    throw BitSwitchError(.unsupported, "the bias C must be a constant of \(alpha.count) values")
                }
                beta = (0..<alpha.count).map { Double(bf[bf.count == 1 ? 0 : $0]) * Double(g.beta) }
            }
        case .matMul:
            guard let wt = source.initializers[w.qName], wt.rank == 2 else {
                throw BitSwitchError(.unsupported, "MatMul lowers with a 2-D constant weight only")
            }
            emit(.qgemm(QGemmAttrs(transB: false, wShift: delta, wBits: w.bits, xZero: x.zero ?? 0)), [x.name, w.qName],
                 name: node.label, output: acc, sites: w.site.map { [$0] } ?? [])
            axis = (source.type(of: y)?.rank ?? 2) - 1
        default: break
        }
        if case .gemm = node.op { axis = 1 }
        reps[y] = IntRep(name: acc, dtype: .i32, alpha: alpha, beta: beta, axis: axis, sites: ss)
    }

    mutating func foldBatchNorm(_ node: Node, _ gamma: [Float], _ b: [Float], _ mean: [Float], _ variance: [Float],
                                eps: Float, sites s: Set<String>) throws {
        var r = try input(node, 0)
        let c = gamma.count
        guard [b.count, mean.count, variance.count].allSatisfy({ $0 == c }) else {
            throw BitSwitchError(.shape, "BatchNormalization parameters differ in length")
        }
        if r.lo != -.infinity || r.hi != .infinity { r = try materialize(r, for: node.inputs[0]) }
        if r.channels == 1 { r.alpha = [Double](repeating: r.alpha[0], count: c); r.beta = [Double](repeating: r.beta[0], count: c); r.axis = 1 }
        guard r.channels == c, r.axis == 1 else {
            throw BitSwitchError(.shape, "BatchNormalization over \(c) channels does not match its input's \(r.channels) channels on axis \(r.axis)")
        }
        for k in 0..<c {
            let g = Double(gamma[k]) / (Double(variance[k]) + Double(eps)).squareRoot()
            r.alpha[k] *= g
            r.beta[k] = (r.beta[k] - Double(mean[k])) * g + Double(b[k])
        }
        r.zero = nil
        r.sites.formUnion(s)
        reps[node.outputs[0]] = r
    }

    mutating func lowerArithmetic(_ node: Node) throws {
        let y = node.outputs[0]
        let constIndex = node.inputs.firstIndex { source.initializers[$0] != nil }
        if let ci = constIndex, node.inputs.count == 2 {
            let vi = 1 - ci
            var r = try input(node, vi)
            let t = source.initializers[node.inputs[ci]]!
            let v = t.floats.map(Double.init)
            // The constant must be a scalar or one value per channel of r's channel axis.
            let rank = source.type(of: node.inputs[vi])?.rank ?? 0
            let perChannel: Bool
            if v.count == 1 { perChannel = false } else {
                let channelAxis = r.channels > 1 ? r.axis : 1
                let dims = t.shape
                let aligned = rank - dims.count
                let ok = dims.enumerated().allSatisfy { i, d in d == 1 || i + aligned == channelAxis }
                guard ok else { throw BitSwitchError(.unsupported, "a constant operand must be a scalar or per-channel") }
                perChannel = true
                if r.channels == 1 {
                    r.alpha = [Double](repeating: r.alpha[0], count: v.count); r.beta = [Double](repeating: r.beta[0], count: v.count)
                    r.axis = channelAxis; r.zero = nil
                }
                guard r.channels == v.count else { throw BitSwitchError(.shape, "the constant has \(v.count) values for \(r.channels) channels") }
            }
            func value(_ k: Int) -> Double { perChannel ? v[k] : v[0] }
            if r.lo != -.infinity || r.hi != .infinity {
                // clamp(x) + c = clamp(x + c) with shifted bounds, for one constant; anything else materialises first.
                let shift: Double? = perChannel ? nil : { switch node.op {
                    case .add: return value(0)
                    case .sub where ci == 1: return -value(0)
                    default: return nil } }()
                if let shift { r.lo += shift; r.hi += shift } else { r = try materialize(r, for: node.inputs[vi]) }
                if r.channels == 1 && perChannel {
                    r.alpha = [Double](repeating: r.alpha[0], count: v.count); r.beta = [Double](repeating: r.beta[0], count: v.count)
                    r.axis = r.channels > 1 ? r.axis : 1
                }
            }
            for k in 0..<r.channels {
                switch node.op {
                case .add: r.beta[k] += value(k)
                case .sub:
                    if ci == 1 { r.beta[k] -= value(k) } else { r.alpha[k] = -r.alpha[k]; r.beta[k] = value(k) - r.beta[k] }
                case .mul: r.alpha[k] *= value(k); r.beta[k] *= value(k)
                case .div:
                    guard ci == 1, value(k) != 0 else { throw BitSwitchError(.unsupported, "division by a tensor or by zero cannot be lowered") }
                    r.alpha[k] /= value(k); r.beta[k] /= value(k)
                default: break
                }
            }
            r.zero = nil
            reps[y] = r
            return
        }
        guard case .add = node.op, node.inputs.count == 2 else {
            throw BitSwitchError(.unsupported, "\(node.op.typeName) of two computed tensors cannot be lowered (only a residual Add)")
        }
        let a = try materialize(try input(node, 0), for: node.inputs[0])
        let b = try materialize(try input(node, 1), for: node.inputs[1])
        let (s, fixed) = try fineScale(y, fallback: a.scale <= b.scale ? a : b)
        let (ma, mb, n) = try quantizeMultiplierPair(a.scale / s, b.scale / s)
        let q = fresh("\(y).q")
        emit(.qadd(QAddAttrs(ma: ma, mb: mb, n: n, aZero: a.zero ?? 0, bZero: b.zero ?? 0, zero: 0,
                             lo: Int(Int32.min), hi: Int(Int32.max), to: .i32)),
             [a.name, b.name], name: node.label, output: q, sites: a.sites.union(b.sites))
        reps[y] = .plain(q, .i32, scale: s, zero: 0, sites: fixed ? [] : a.sites.union(b.sites))
    }

    mutating func lowerAverage(_ node: Node, attrs: PoolAttrs?) throws {
        let y = node.outputs[0]
        var r = try input(node, 0)
        // The mean commutes with a per-channel affine map, not with a clamp.
        if r.lo != -.infinity || r.hi != .infinity || (r.channels > 1 && r.axis != 1) { r = try materialize(r, for: node.inputs[0]) }
        if r.isPlain && r.dtype != .i32 {
            // A mean of 8-bit integers rounded back to 8 bits loses up to half a step; keep 8 more bits.
            let wide = fresh("\(node.inputs[0]).wide")
            let s = r.scale / 256
            try requant(r, into: wide, dtype: .i32, scale: s, zero: 0, lo: Int(Int32.min), hi: Int(Int32.max),
                        name: "\(node.inputs[0]).widen", extraSites: [])
            r = .plain(wide, .i32, scale: s, zero: 0, sites: r.sites)
        }
        let zero = r.zero ?? 0
        let q = fresh("\(y).q")
        emit(attrs.map { .qavgPool($0, zero: zero) } ?? .qglobalAvgPool(zero: zero), [r.name], name: node.label,
             output: q, sites: [])
        r.name = q
        reps[y] = r
    }

    // MARK: materialising and requantising

    /// The value as a plain integer tensor (per-tensor scale, no pending clamp): itself if it is one, else an i32
    /// tensor at the value's fine scale (docs/int-ops.md, "Values without a quantizer").
    mutating func materialize(_ r: IntRep, for value: String) throws -> IntRep {
        if r.isPlain { return r }
        if let m = materialized[value] { return m }
        let (s, fixed) = try fineScale(value, fallback: r)
        let q = fresh("\(value).fine")
        try requant(r, into: q, dtype: .i32, scale: s, zero: 0, lo: Int(Int32.min), hi: Int(Int32.max),
                    name: "\(value).requant", extraSites: [])
        // A scale taken from a downstream quantizer is the same in every profile; one taken from r's own
        // accumulator scales (values that only reach an output) follows r's layer bits.
        let p = IntRep.plain(q, .i32, scale: s, zero: 0, sites: fixed ? [] : r.sites)
        materialized[value] = p
        return p
    }

    /// One Requant from `r` to integers of `scale`/`zero` clamped to [lo, hi] (and to r's pending clamp).
    mutating func requant(_ r: IntRep, into name: String, dtype: DType, scale: Double, zero: Int, lo: Int, hi: Int,
                          name nodeName: String, extraSites: Set<String>) throws {
        var l = lo, h = hi
        if r.lo > -.infinity { l = max(l, Int(clampToInt32((r.lo / scale).rounded(.toNearestOrEven))) + zero) }
        if r.hi < .infinity { h = min(h, Int(clampToInt32((r.hi / scale).rounded(.toNearestOrEven))) + zero) }
        if l > h { h = l }
        var m: [Int32] = [], n: [Int32] = [], bias: [Int64] = []
        var clampedBias = false
        for c in 0..<r.channels {
            let (mc, nc, b, clamped) = try requantTerms(alpha: r.alpha[c] / scale, beta: r.beta[c] / scale)
            clampedBias = clampedBias || clamped
            m.append(Int32(mc)); n.append(Int32(nc)); bias.append(Int64(b))
        }
        if clampedBias { log("lower-int: \(nodeName): a bias of over 2^62 output steps was clamped (a channel with a near-zero scale)") }
        let count = [r.channels]
        let mName = constant("\(name).m", Tensor(dtype: .i32, shape: count, storage: .i32(m)))
        let nName = constant("\(name).n", Tensor(dtype: .i32, shape: count, storage: .i32(n)))
        let bName = constant("\(name).bias", Tensor(dtype: .i64, shape: count, storage: .i64(bias)))
        emit(.requant(RequantAttrs(axis: r.axis, lo: l, hi: h, zero: zero, to: dtype)), [r.name, mName, nName, bName],
             name: nodeName, output: name, sites: r.sites.union(extraSites))
    }

    /// The fine scale of a value without a quantizer: the scale (at its top, or pinned, bit-width) of the first
    /// quantizer it flows into, over 2^fineBits (`fixed`: the same in every profile); for values that reach an output
    /// without one, the smallest scale of `fallback` (which follows the profile).
    func fineScale(_ value: String, fallback: IntRep?) throws -> (scale: Double, fixed: Bool) {
        var seen: Set<String> = [], frontier = [value]
        while let v = frontier.popLast() {
            guard seen.insert(v).inserted else { continue }
            for c in consumers[v] ?? [] {
                let n = source.nodes[c]
                switch n.op {
                case .fakeQuantAct(let a):
                    if let st = source.initializers[n.inputs[1]] {
                        let f = st.floats
                        let i = a.pinnedBits.flatMap { p in a.bits.firstIndex(of: p) } ?? 0
                        let s = Double(f[min(i, f.count - 1)] > 0 ? f[min(i, f.count - 1)] : (f.first { $0 > 0 } ?? 0))
                        if s > 0 { return (s / Double(1 << fineBits), true) }
                    }
                case .add, .relu, .clip, .maxPool, .averagePool, .globalAveragePool, .flatten, .reshape, .transpose,
                     .squeeze, .unsqueeze, .concat, .identity, .dropout, .sub, .mul, .div:
                    if let o = n.outputs.first { frontier.append(o) }
                default: break
                }
            }
        }
        if let r = fallback {
            let positive = r.alpha.map(abs).filter { $0 > 0 }
            if let m = positive.min() { return (m, false) }
        }
        throw BitSwitchError(.pass, "cannot choose an integer scale for '\(value)' (no quantizer downstream and no known scale)")
    }
}

/// Extra bits of values without a quantizer over the quantizer they flow into. A value rounded twice (to the
/// fine scale, then to the quantizer) differs from one rounding only within 2^−fineBits of a step of a rounding
/// boundary: at 8 extra bits that flipped 0.1 % of a 2-bit quantizer's outputs on Fashion-MNIST (each a whole
/// level, amplified downstream); at 16 it is 256 times rarer, with int32 still holding 2^15 steps of the quantizer.
let fineBits = 16

private func clampToInt32(_ v: Double) -> Double { min(max(v, -2_147_483_648), 2_147_483_647) }

/// `(m, n)` with `m / 2^n ≈ M`, `2^29 ≤ |m| < 2^30` (docs/int-ops.md, Bounds); `n` is capped at 62.
public func quantizeMultiplier(_ M: Double) throws -> (m: Int, n: Int) {
    guard M.isFinite else { throw BitSwitchError(.pass, "a requantization multiplier is not finite (\(M))") }
    if M == 0 { return (0, 0) }
    let e = Int(floor(log2(abs(M))))
    var n = 29 - e
    guard n >= 0 else { throw BitSwitchError(.pass, "a requantization multiplier \(M) is too large (≥ 2^30)") }
    if n > 62 { n = 62 }
    var m = (M * pow(2, Double(n))).rounded(.toNearestOrEven)
    if abs(m) >= Double(1 << 30) { m /= 2; m.round(.toNearestOrEven); n -= 1 }
    return (Int(m), n)
}

/// The integer terms of `y = alpha·x + beta` (both in output steps) as one Requant channel,
/// `y = rshr(x·m + b, n)`: `m·2^-n ≈ alpha` (quantizeMultiplier) and the bias in the product domain,
/// `b = round(beta·2^n)`, so it keeps `n` fractional bits instead of being rounded to whole accumulator units (at
/// 2-bit weights one accumulator unit can be a quarter of an output step). `|b| < 2^62` keeps `x·m + b` inside
/// int64 (|x·m| < 2^61); a larger bias first lowers `n` (and `m` with it), then is clamped (`clamped`).
func requantTerms(alpha: Double, beta: Double) throws -> (m: Int, n: Int, b: Int, clamped: Bool) {
    guard beta.isFinite else { throw BitSwitchError(.pass, "a requantization bias is not finite (\(beta))") }
    var (m, n) = try quantizeMultiplier(alpha)
    let limit: Double = 4_611_686_018_427_387_904   // 2^62
    while n > 0 && abs(beta * pow(2, Double(n))) >= limit {
        n -= 1
        m = Int((alpha * pow(2, Double(n))).rounded(.toNearestOrEven))
    }
    var b = (beta * pow(2, Double(n))).rounded(.toNearestOrEven)
    let clamped = abs(b) >= limit
    if clamped { b = b < 0 ? -(limit - 1024) : limit - 1024 }
    return (m, n, Int(b), clamped)
}

/// Two multipliers sharing one shift (QAdd).
func quantizeMultiplierPair(_ a: Double, _ b: Double) throws -> (Int, Int, Int) {
    let big = max(abs(a), abs(b))
    if big == 0 { return (0, 0, 0) }
    let (_, n) = try quantizeMultiplier(big)
    let p = pow(2, Double(n))
    return (Int((a * p).rounded(.toNearestOrEven)), Int((b * p).rounded(.toNearestOrEven)), n)
}


/// After lowering: every value computed between the input Quantize and the output Dequantize is an integer.
public func verifyInteger(_ g: Graph) throws {
    try verify(g)
    var isFloat: Set<String> = Set(g.inputs.filter { $0.type.dtype.isFloat }.map(\.name))
    for n in g.nodes {
        let floatIn = n.inputs.contains { isFloat.contains($0) }
        switch n.op {
        case .quantize: continue
        case .dequantize:
            n.outputs.forEach { isFloat.insert($0) }
            continue
        default: break
        }
        if n.op.isInteger && floatIn {
            throw BitSwitchError(.verify, "integer op reads a float value", node: n.label, op: n.op.typeName, domain: n.op.domain)
        }
        if floatIn {
            // Float ops are allowed only on dequantized values (a float tail after the network).
            n.outputs.forEach { isFloat.insert($0) }
            continue
        }
        if case .fakeQuantWeight = n.op { throw BitSwitchError(.verify, "quant-dialect op left after lower-int", node: n.label, op: n.op.typeName) }
        if case .fakeQuantAct = n.op { throw BitSwitchError(.verify, "quant-dialect op left after lower-int", node: n.label, op: n.op.typeName) }
        if case .switchableBatchNorm = n.op { throw BitSwitchError(.verify, "quant-dialect op left after lower-int", node: n.label, op: n.op.typeName) }
        let shapeOnly: Bool
        switch n.op {
        case .flatten, .reshape, .transpose, .squeeze, .unsqueeze, .concat, .identity: shapeOnly = true
        default: shapeOnly = n.op.isInteger
        }
        if !shapeOnly {
            throw BitSwitchError(.verify, "float op \(n.op.typeName) between the input Quantize and the output Dequantize",
                                 node: n.label, op: n.op.typeName, domain: n.op.domain)
        }
    }
}

extension Array {
    subscript(safe i: Int) -> Element? { indices.contains(i) ? self[i] : nil }
}
