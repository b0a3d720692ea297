import BitSwitchIR
import Foundation

/// What the C back end compiles: variants of one integer graph (same structure and weights; only the small
/// per-profile parameters differ) and the named profiles, each pointing at one variant.
public struct EmitInput: Sendable {
    public var variants: [Graph]
    public var profiles: [(name: String, variant: Int)]
    /// The kernels the bundle calls (`.generic`: portable C only; see KernelISA).
    public var isa: KernelISA
    /// Make every distinct weight bit-width of every layer once, at bs_init, each in its own arena region: a switch
    /// (bs_set_profile, bs_set_layer_bits) then only repoints the layers (microseconds) instead of re-shifting and
    /// re-packing their INT8 weights, for one packed copy per distinct bit-width in the arena (`emit --prepack`).
    public var prepack: Bool
    public init(variants: [Graph], profiles: [(name: String, variant: Int)] = [], isa: KernelISA = .generic, prepack: Bool = false) {
        self.variants = variants
        self.isa = isa
        self.prepack = prepack
        self.profiles = profiles.isEmpty ? variants.indices.map { ("variant\($0)", $0) } : profiles
    }
    /// One lowered graph as a single-profile bundle.
    public init(graph: Graph, profileName: String = "default", isa: KernelISA = .generic) {
        self.init(variants: [graph], profiles: [(profileName, 0)], isa: isa)
    }
}

/// The parameters of one node that a profile may change; equal values across variants share one C table.
struct NodeParams: Hashable {
    var ints: [Int] = []
    var floats: [UInt32] = []        // bit patterns, so that equality is exact
    var tables: [[Int64]] = []   // Requant m (i32), n (i32), bias (i64)
}

/// A node whose parameters live in per-block tables selected at run time.
struct ParamNode {
    var node: Int
    var sites: [(layer: Int, activation: Bool)]
    /// Distinct parameter blocks, in first-variant order, with their site key (bits per site).
    var blocks: [NodeParams]
    var keys: [[Int]]
    /// Block of each variant.
    var variantBlock: [Int]
}

/// Everything the C writer needs, checked: static shapes, parameter blocks, layers, memory plan.
struct Plan {
    var graph: Graph                         // variant 0, batch 1, shapes inferred
    var shapes: [String: [Int]] = [:]
    var dtypes: [String: DType] = [:]
    var layers: [String] = []
    var variantLayerBits: [[LayerBits]] = []
    var paramNodes: [ParamNode] = []
    var paramIndex: [Int: Int] = [:]         // node index -> param node index
    var fusedRequant: [Int: Int] = [:]       // QConv/QGemm node -> the Requant it absorbs
    var fusedAdd: [Int: (node: Int, swap: Bool)] = [:]   // AVX2 QConv -> the QAdd its epilogue adds (swap: the conv is b)
    /// VNNI bundles: the conv weights stored with k in tap-major order (initializer -> kernel taps; see tapMajor).
    var tapMajorWeights: [String: Int] = [:]
    var absorbed: Set<Int> = []              // Requant nodes emitted inside a fused call
    /// QAdd / QMaxPool node -> the Requants that read its result, run inside its job (bs_ew_job.readers); the result
    /// itself is never stored.
    var fusedReaders: [Int: [Int]] = [:]
    /// Largest output plane of a max pool with fused readers (bs_ew_run_readers makes a plane at a time in a buffer
    /// of BS_EW_CHUNK_BYTES).
    static let fusedPoolPlaneBytes = 16384
    var offsets: [String: Int] = [:]         // arena offsets of values
    var weightOffsets: [Int: Int] = [:]      // QConv/QGemm node -> arena offset of its (first) weight region
    /// Weight regions: arena offset and the bit-width it holds (0: any, the region every block of a node shares
    /// without prepack), and per QConv/QGemm node the region of each of its parameter blocks.
    var regions: [(offset: Int, bits: Int)] = []
    /// Regions with room for the bit planes of the bit-serial w2a2 kernels (AVX-512 VNNI bundles: convs that take
    /// them, regions that may hold 1- or 2-bit weights; `bitSerialBytes`).
    var bitSerialRegions: Set<Int> = []
    var blockRegions: [Int: [Int]] = [:]
    var prepack = false
    var isa: KernelISA = .generic
    var scratchOffset = 0                    // AVX2 kernels: im2col / interleave scratch shared by every QConv/QGemm
    var scratchBytes = 0
    var arenaBytes = 0
    var input: ValueInfo
    var quantizeOfInput: Int?                // the single Quantize reading the input (bs_run_quantized)
    var profiles: [(name: String, variant: Int)]

    static let alignment = 64
    static let maxBytes = 1 << 46

    init(_ e: EmitInput) throws {
        guard let first = e.variants.first else { throw BitSwitchError(.invalidModel, "nothing to emit: no graph variant given") }
        for p in e.profiles where !e.variants.indices.contains(p.variant) {
            throw BitSwitchError(.invalidModel, "profile '\(p.name)' names variant \(p.variant), but there are \(e.variants.count)")
        }
        guard !e.profiles.isEmpty else { throw BitSwitchError(.invalidModel, "nothing to emit: no profile given") }
        profiles = e.profiles
        isa = e.isa
        prepack = e.prepack
        let prepared = try Plan.requantBeforeMaxPool(e.variants.map(Plan.prepare))
        graph = prepared[0]
        guard graph.inputs.count == 1, let inp = graph.inputs.first else {
            throw BitSwitchError(.unsupported, "the C back end needs exactly one graph input, got \(graph.inputs.count)")
        }
        input = inp
        _ = first
        try checkSameStructure(prepared)
        try collectShapes()
        try checkOps()
        try buildParams(prepared)
        planFusion()
        planTapMajorWeights()
        try planMemory()
    }

    /// Batch 1: a symbolic or unknown first input dim becomes 1; shapes are inferred afresh.
    static func prepare(_ g0: Graph) throws -> Graph {
        var g = g0
        for i in g.inputs.indices {
            guard var s = g.inputs[i].type.shape else {
                throw BitSwitchError(.shape, "input '\(g.inputs[i].name)' has unknown rank; the C back end needs static shapes")
            }
            for d in s.indices where s[d].value == nil {
                guard d == 0 else {
                    throw BitSwitchError(.shape, "input '\(g.inputs[i].name)' has a non-static dim \(d) (\(s[d])); only the batch dim may be symbolic")
                }
                s[d] = .known(1)
            }
            g.inputs[i].type.shape = s
        }
        g.valueTypes = [:]
        for i in g.outputs.indices { g.outputs[i].type.shape = nil }
        scheduleResiduals(&g)
        try inferShapes(&g)
        return g
    }

    /// A QAdd of a QConv's requantized output and another value: when the node that makes the other value comes
    /// after the QConv but could run before it (its inputs are ready there), it is moved before the QConv, so that
    /// the QConv's epilogue can add the residual (planFusion's fusedAdd). ResNet blocks: the shortcut's Requant.
    /// The same moves for every variant (they depend on the structure only).
    static func scheduleResiduals(_ g: inout Graph) {
        var q = 0
        while q < g.nodes.count {
            defer { q += 1 }
            guard case .qadd = g.nodes[q].op, g.nodes[q].inputs.count == 2 else { continue }
            let producers = g.producers
            for side in 0..<2 {
                let a = g.nodes[q].inputs[side], b = g.nodes[q].inputs[1 - side]
                guard let r = producers[a], case .requant = g.nodes[r].op, let c = producers[g.nodes[r].inputs[0]],
                      case .qconv = g.nodes[c].op, let p = producers[b], p > c, p < q,
                      g.nodes[p].inputs.allSatisfy({ v in producers[v].map { $0 < c } ?? true }) else { continue }
                let node = g.nodes.remove(at: p)
                g.nodes.insert(node, at: c)
                break
            }
        }
    }

    /// QConv → QMaxPool → Requant, each the only reader of the one before, becomes QConv → Requant → QMaxPool
    /// where that is exact in every variant, so that the Requant fuses into the conv's epilogue and the pool reads
    /// bytes instead of int32 (the digits CNN's and a classic CNN stem's conv → ReLU → MaxPool). A Requant whose
    /// multipliers are non-negative and whose arithmetic cannot wrap is non-decreasing within a channel, so it
    /// commutes with a max over one channel's window, provided no window is empty (an empty window yields the
    /// container's lowest value, which a Requant need not map to the new container's lowest).
    static func requantBeforeMaxPool(_ vs: [Graph]) throws -> [Graph] {
        guard let g0 = vs.first else { return vs }
        let consumers = g0.consumers, producers = g0.producers, outputs = g0.outputNames
        var sites: [(conv: Int, pool: Int, rq: Int)] = []
        for (p, pn) in g0.nodes.enumerated() {
            guard case .qmaxPool(let attrs) = pn.op, let t = pn.inputs.first, let out = pn.outputs.first,
                  let c = producers[t], case .qconv = g0.nodes[c].op, consumers[t] == [p], !outputs.contains(t),
                  let readers = consumers[out], readers.count == 1, !outputs.contains(out) else { continue }
            let r = readers[0], rn = g0.nodes[r]
            guard case .requant(let rq) = rn.op, rn.inputs.count == 4, rn.inputs[0] == out, !rn.inputs.dropFirst().contains(out),
                  let shape = g0.type(of: t)?.knownShape, shape.count >= 3,
                  rq.axis == 1 || rq.axis == 1 - shape.count || vs.allSatisfy({ g in rn.inputs.dropFirst().allSatisfy { g.initializers[$0]?.type.knownShape?.reduce(1, *) == 1 } }),
                  let win = try? WindowGeometry(input: Array(shape.dropFirst(2)), kernel: attrs.kernelShape, strides: attrs.strides, pads: attrs.pads,
                                                dilations: attrs.dilations, autoPad: attrs.autoPad, ceilMode: attrs.ceilMode),
                  win.everyWindowReadsInput, vs.allSatisfy({ r < $0.nodes.count && monotoneRequant($0, $0.nodes[r]) }) else { continue }
            sites.append((c, p, r))
        }
        guard !sites.isEmpty else { return vs }
        return try vs.map { g0 in
            var g = g0
            var taken = Set(g.nodes.flatMap(\.outputs)).union(g.initializers.keys).union(g.inputNames)
            // Later sites first, so the indices of earlier ones stay valid.
            for s in sites.sorted(by: { $0.rq > $1.rq }) {
                // A variant of another structure is left as it is (checkSameStructure reports it).
                guard s.rq < g.nodes.count, case .qmaxPool = g.nodes[s.pool].op, case .requant = g.nodes[s.rq].op,
                      g.nodes[s.rq].inputs.first == g.nodes[s.pool].outputs.first else { continue }
                var rn = g.nodes[s.rq], pn = g.nodes[s.pool]
                var mid = pn.outputs[0] + "_requantized"
                while taken.contains(mid) { mid += "_" }
                taken.insert(mid)
                let y = rn.outputs[0]
                rn.inputs[0] = pn.inputs[0]; rn.outputs[0] = mid
                pn.inputs[0] = mid; pn.outputs[0] = y
                g.nodes.remove(at: s.rq)
                g.nodes[s.pool] = pn
                g.nodes.insert(rn, at: s.pool)
            }
            g.valueTypes = [:]
            try inferShapes(&g)
            return g
        }
    }

    /// Requant node n of g is non-decreasing in its input: multipliers >= 0, and x·m + bias, the shift and + zero
    /// stay inside int64 for every int32 x (|x·m| <= 2^62, |bias| and |zero| below 2^61).
    static func monotoneRequant(_ g: Graph, _ n: Node) -> Bool {
        guard case .requant(let rq) = n.op, abs(rq.zero) < 1 << 61,
              case .i32(let m)? = g.initializers[n.inputs[1]]?.storage, case .i64(let b)? = g.initializers[n.inputs[3]]?.storage
        else { return false }
        return m.allSatisfy { $0 >= 0 } && b.allSatisfy { abs($0) < 1 << 61 }
    }

    // MARK: structure

    /// Op with its profile-dependent parameters blanked: equal for every variant of one model.
    static func structural(_ op: Op) -> Op {
        switch op {
        case .quantize(_, _, _, _, let to): return .quantize(scale: 0, zero: 0, lo: 0, hi: 0, to: to)
        case .dequantize: return .dequantize(scale: 0, zero: 0)
        case .qconv(var q): q.wShift = 0; q.wBits = 0; q.xZero = 0; return .qconv(q)
        case .qgemm(var q): q.wShift = 0; q.wBits = 0; q.xZero = 0; return .qgemm(q)
        case .requant(var r): r.lo = 0; r.hi = 0; r.zero = 0; return .requant(r)
        case .qadd(let q): return .qadd(QAddAttrs(ma: 0, mb: 0, n: 0, lo: 0, hi: 0, to: q.to))
        case .qavgPool(let p, _): return .qavgPool(p, zero: 0)
        case .qglobalAvgPool: return .qglobalAvgPool(zero: 0)
        default: return op
        }
    }

    /// Initializers a profile may change: the Requant tables.
    static func parameterInitializers(_ g: Graph) -> Set<String> {
        var s: Set<String> = []
        for n in g.nodes { if case .requant = n.op { for v in n.inputs.dropFirst() { s.insert(v) } } }
        return s
    }

    func checkSameStructure(_ vs: [Graph]) throws {
        let g = vs[0]
        let params = Plan.parameterInitializers(g)
        for (vi, v) in vs.enumerated().dropFirst() {
            func differ(_ what: String, node: Node? = nil) -> BitSwitchError {
                BitSwitchError(.invalidModel, "variant \(vi) differs from variant 0: \(what)", node: node?.label, op: node?.op.typeName)
            }
            if v.inputs != g.inputs { throw differ("graph inputs \(v.inputs.map(\.name)) vs \(g.inputs.map(\.name))") }
            if v.outputs.map(\.name) != g.outputs.map(\.name) { throw differ("graph outputs") }
            for i in 0..<max(g.nodes.count, v.nodes.count) {
                guard i < g.nodes.count, i < v.nodes.count else {
                    throw differ("node count \(v.nodes.count) vs \(g.nodes.count)", node: i < g.nodes.count ? g.nodes[i] : v.nodes[i])
                }
                let a = g.nodes[i], b = v.nodes[i]
                if a.name != b.name || a.inputs != b.inputs || a.outputs != b.outputs {
                    throw differ("node \(i) is '\(b.label)' reading \(b.inputs) vs '\(a.label)' reading \(a.inputs)", node: a)
                }
                if Plan.structural(a.op) != Plan.structural(b.op) { throw differ("op or its structural attributes", node: a) }
            }
            if Set(v.initializerOrder) != Set(g.initializerOrder) { throw differ("the set of initializers") }
            for name in g.initializerOrder {
                guard let ta = g.initializers[name], let tb = v.initializers[name] else { continue }
                let same = params.contains(name) ? (ta.dtype == tb.dtype) : (ta == tb)
                if !same {
                    let reader = g.nodes.first { $0.inputs.contains(name) }
                    throw differ("initializer '\(name)' (weights are stored once and must be equal)", node: reader)
                }
            }
        }
    }

    // MARK: shapes and ops

    mutating func collectShapes() throws {
        var values: [(String, Node?)] = [(input.name, nil)]
        for n in graph.nodes { for o in n.outputs where !o.isEmpty { values.append((o, n)) } }
        for (name, node) in values {
            guard let t = graph.type(of: name), let s = t.knownShape else {
                throw BitSwitchError(.shape, "value '\(name)' has no static shape (\(graph.type(of: name).map { "\($0)" } ?? "unknown")); the C back end needs static shapes",
                                     node: node?.label, op: node?.op.typeName)
            }
            guard s.allSatisfy({ $0 >= 1 }), let count = checkedElementCount(s), count <= Plan.maxBytes / 4 else {
                throw BitSwitchError(.shape, "value '\(name)' has shape \(s): every dim must be positive and the tensor below 2^44 elements",
                                     node: node?.label, op: node?.op.typeName)
            }
            guard [.f32, .i8, .u8, .i32].contains(t.dtype) else {
                throw BitSwitchError(.unsupported, "value '\(name)' has element type \(t.dtype); the C back end handles f32, i8, u8 and i32",
                                     node: node?.label, op: node?.op.typeName)
            }
            shapes[name] = s; dtypes[name] = t.dtype
        }
        for o in graph.outputs {
            guard dtypes[o.name] == .f32 else {
                throw BitSwitchError(.unsupported, "graph output '\(o.name)' is \(dtypes[o.name].map { "\($0)" } ?? "not computed"); the C back end returns floats, so outputs must come from a Dequantize")
            }
        }
    }

    mutating func checkOps() throws {
        let defined = Set(graph.nodes.flatMap(\.outputs)).union([input.name])
        var inputReaders: [Int] = []
        for (i, n) in graph.nodes.enumerated() {
            func fail(_ m: String) -> BitSwitchError { BitSwitchError(.unsupported, m, node: n.label, op: n.op.typeName) }
            let dataInputs: [Int]
            switch n.op {
            case .quantize, .dequantize, .requant, .qmaxPool, .qavgPool, .qglobalAvgPool, .flatten, .reshape,
                 .squeeze, .unsqueeze, .identity, .transpose:
                dataInputs = [0]
            case .qconv, .qgemm:
                dataInputs = [0]
                guard n.inputs.count >= 2, let w = graph.initializers[n.inputs[1]], w.dtype == .i8 else {
                    throw fail("the weight must be an i8 initializer (the stored INT8 integers)")
                }
                guard w.count > 0, w.count <= Plan.maxBytes else { throw fail("weight has \(w.count) elements") }
            case .qadd:
                dataInputs = [0, 1]
                guard n.inputs.count == 2, shapes[n.inputs[0]] == shapes[n.inputs[1]] else {
                    throw fail("QAdd inputs must have equal static shapes, got \(n.inputs.map { shapes[$0].map { "\($0)" } ?? "?" })")
                }
            case .concat:
                dataInputs = Array(n.inputs.indices)
            default:
                throw fail("the C back end cannot run \(n.op.typeName); lower the model to the integer dialect first (docs/int-ops.md)")
            }
            for k in dataInputs {
                guard k < n.inputs.count, !n.inputs[k].isEmpty, defined.contains(n.inputs[k]) else {
                    throw fail("input \(k) ('\(k < n.inputs.count ? n.inputs[k] : "")') must be a value computed by the graph (constants are not supported there)")
                }
                if n.inputs[k] == input.name { inputReaders.append(i) }
            }
            switch n.op {
            case .quantize:
                guard dtypes[n.inputs[0]] == .f32 else { throw fail("Quantize input must be f32") }
            case .qconv, .qgemm:
                guard dtypes[n.inputs[0]] == .i8 || dtypes[n.inputs[0]] == .u8 else {
                    throw fail("input must be i8 or u8, got \(dtypes[n.inputs[0]].map { "\($0)" } ?? "?")")
                }
            case .requant:
                guard n.inputs.count == 4 else { throw fail("Requant needs inputs x, m, n, bias") }
                for (k, t) in n.inputs.dropFirst().enumerated() {
                    let want: DType = k == 2 ? .i64 : .i32
                    guard let v = graph.initializers[t], v.dtype == want else { throw fail("Requant table '\(t)' must be an \(want) initializer") }
                }
                guard dtypes[n.inputs[0]] != .f32 else { throw fail("Requant input must be an integer") }
            case .dequantize, .qadd, .qmaxPool, .qavgPool, .qglobalAvgPool:
                for k in dataInputs where dtypes[n.inputs[k]] == .f32 { throw fail("input '\(n.inputs[k])' must be an integer") }
            case .transpose:
                guard (shapes[n.inputs[0]]?.count ?? 0) <= 8 else { throw fail("Transpose of rank above 8") }
            default: break
            }
            if case .qconv = n.op, let s = shapes[n.inputs[0]], !(3...5).contains(s.count) {
                throw fail("QConv input must be [N, C, spatial...] with 1 to 3 spatial dims, got \(s)")
            }
            if case .qmaxPool = n.op, let s = shapes[n.inputs[0]], !(3...5).contains(s.count) { throw fail("pool input rank \(s.count)") }
            if case .qavgPool = n.op, let s = shapes[n.inputs[0]], !(3...5).contains(s.count) { throw fail("pool input rank \(s.count)") }
            if case .qglobalAvgPool = n.op, let s = shapes[n.inputs[0]], !(3...5).contains(s.count) { throw fail("pool input rank \(s.count)") }
        }
        if inputReaders.count == 1, case .quantize = graph.nodes[inputReaders[0]].op { quantizeOfInput = inputReaders[0] }
    }

    // MARK: parameters, layers, blocks

    static func params(_ n: Node, _ g: Graph) throws -> NodeParams? {
        func fail(_ m: String) -> BitSwitchError { BitSwitchError(.invalidModel, m, node: n.label, op: n.op.typeName) }
        switch n.op {
        case .quantize(let scale, let zero, let lo, let hi, _):
            return NodeParams(ints: [zero, lo, hi], floats: [scale.bitPattern])
        case .dequantize(let scale, let zero):
            return NodeParams(ints: [zero], floats: [scale.bitPattern])
        case .qconv, .qgemm:
            let (xz, sh, b): (Int, Int, Int)
            switch n.op {
            case .qconv(let c): (xz, sh, b) = (c.xZero, c.wShift, c.wBits)
            case .qgemm(let m): (xz, sh, b) = (m.xZero, m.wShift, m.wBits)
            default: return nil
            }
            guard (1...8).contains(b), (0...7).contains(sh) else { throw fail("w_bits \(b) must be in 1...8 and w_shift \(sh) in 0...7") }
            guard abs(xz) < 1 << 31 else { throw fail("x_zero \(xz) is outside int32") }
            return NodeParams(ints: [xz, sh, b])
        case .requant(let r):
            var tables: [[Int64]] = []
            for (k, t) in n.inputs.dropFirst().enumerated() {
                switch (k, g.initializers[t]?.storage) {
                case (0...1, .i32(let a)?): tables.append(a.map(Int64.init))
                case (2, .i64(let a)?): tables.append(a)
                default: throw fail("Requant table '\(t)' must be an \(k == 2 ? "i64" : "i32") initializer")
                }
            }
            if let bad = tables[1].first(where: { $0 < 0 || $0 > 62 }) { throw fail("Requant shift \(bad) is outside 0...62") }
            return NodeParams(ints: [r.zero, r.lo, r.hi], tables: tables)
        case .qadd(let q):
            return NodeParams(ints: [q.ma, q.mb, q.n, q.aZero, q.bZero, q.zero, q.lo, q.hi])
        case .qavgPool(_, let zero), .qglobalAvgPool(let zero):
            return NodeParams(ints: [zero])
        default:
            return nil
        }
    }

    static func parseJSON(_ g: Graph, _ key: String) throws -> Any? {
        guard let s = g.metadata[key] else { return nil }
        do { return try JSONSerialization.jsonObject(with: Data(s.utf8)) } catch {
            throw BitSwitchError(.parse, "metadata '\(key)' is not valid JSON: \(error.localizedDescription)")
        }
    }

    /// `metadata["bitswitch.int.bits"]`: `{"<layer>": {"w": B, "a": B}}`.
    static func layerBits(_ g: Graph) throws -> [String: LayerBits]? {
        guard let any = try parseJSON(g, "bitswitch.int.bits") else { return nil }
        guard let o = any as? [String: Any] else { throw BitSwitchError(.parse, "metadata 'bitswitch.int.bits' must be a JSON object") }
        var r: [String: LayerBits] = [:]
        for (k, v) in o {
            guard let d = v as? [String: Any], let w = (d["w"] as? NSNumber)?.intValue, let a = (d["a"] as? NSNumber)?.intValue,
                  (1...32).contains(w), (1...32).contains(a) else {
                throw BitSwitchError(.parse, "metadata 'bitswitch.int.bits': layer '\(k)' needs integer \"w\" and \"a\" bit-widths")
            }
            r[k] = LayerBits(w: w, a: a)
        }
        return r
    }

    /// `metadata["bitswitch.int.sites"]`: `{"<node>": ["<layer>:w", "<layer>:a", ...]}`.
    static func sites(_ g: Graph) throws -> [String: [String]] {
        guard let any = try parseJSON(g, "bitswitch.int.sites") else { return [:] }
        guard let o = any as? [String: Any] else { throw BitSwitchError(.parse, "metadata 'bitswitch.int.sites' must be a JSON object") }
        var r: [String: [String]] = [:]
        for (k, v) in o {
            guard let a = v as? [String] else { throw BitSwitchError(.parse, "metadata 'bitswitch.int.sites': '\(k)' must map to a list of strings") }
            r[k] = a
        }
        return r
    }

    mutating func buildParams(_ vs: [Graph]) throws {
        let bits = try vs.map(Plan.layerBits)
        let sitesByNode = try Plan.sites(vs[0])
        let layerSet = Set(bits[0]?.keys.map { $0 } ?? [])
        for (i, b) in bits.enumerated() where Set(b?.keys.map { $0 } ?? []) != layerSet {
            throw BitSwitchError(.invalidModel, "variant \(i) lists other layers in metadata 'bitswitch.int.bits' than variant 0")
        }
        // Layers in the order the graph first mentions them, then the rest by name.
        var order: [String] = []
        for n in graph.nodes {
            for s in sitesByNode[n.name] ?? [] {
                let l = String(s[..<(s.lastIndex(of: ":") ?? s.endIndex)])
                if layerSet.contains(l) && !order.contains(l) { order.append(l) }
            }
        }
        order += layerSet.subtracting(order).sorted()
        layers = order
        let layerIndex = Dictionary(uniqueKeysWithValues: order.enumerated().map { ($1, $0) })
        variantLayerBits = bits.map { b in order.map { b?[$0] ?? LayerBits(w: 8, a: 8) } }

        for (i, n) in graph.nodes.enumerated() {
            guard let p0 = try Plan.params(n, vs[0]) else { continue }
            var sites: [(Int, Bool)] = []
            for s in sitesByNode[n.name] ?? [] {
                guard let colon = s.lastIndex(of: ":"), let li = layerIndex[String(s[..<colon])],
                      ["w", "a"].contains(s[s.index(after: colon)...]) else {
                    throw BitSwitchError(.invalidModel, "metadata 'bitswitch.int.sites': site '\(s)' must be '<layer>:w' or '<layer>:a' of a layer in 'bitswitch.int.bits'",
                                         node: n.label, op: n.op.typeName)
                }
                sites.append((li, s[s.index(after: colon)...] == "a"))
            }
            var pn = ParamNode(node: i, sites: sites, blocks: [], keys: [], variantBlock: [])
            for (vi, v) in vs.enumerated() {
                let p = vi == 0 ? p0 : try Plan.params(v.nodes[i], v)!
                let key = sites.map { s in s.1 ? variantLayerBits[vi][s.0].a : variantLayerBits[vi][s.0].w }
                if let k = pn.keys.firstIndex(of: key) {
                    guard pn.blocks[k] == p else {
                        let what = sites.isEmpty ? "no layer bits (it has no entry in metadata 'bitswitch.int.sites')"
                            : "the same bits \(key) for its sites"
                        throw BitSwitchError(.invalidModel, "variants \(pn.variantBlock.firstIndex(of: k) ?? 0) and \(vi) give this node \(what) but different parameters",
                                             node: n.label, op: n.op.typeName)
                    }
                    pn.variantBlock.append(k)
                } else {
                    pn.keys.append(key); pn.blocks.append(p); pn.variantBlock.append(pn.blocks.count - 1)
                }
            }
            if case .requant = n.op { try checkRequantTables(pn, n) }
            paramIndex[i] = paramNodes.count
            paramNodes.append(pn)
        }
    }

    func checkRequantTables(_ pn: ParamNode, _ n: Node) throws {
        let s = shapes[n.inputs[0]] ?? []
        guard case .requant(let r) = n.op else { return }
        let axis = r.axis < 0 ? r.axis + s.count : r.axis
        let channels = axis >= 0 && axis < s.count ? s[axis] : 1
        for b in pn.blocks {
            for (name, t) in zip(["m", "n", "bias"], b.tables) where t.count != 1 && t.count != channels {
                throw BitSwitchError(.shape, "Requant \(name) has \(t.count) values; expected 1 or \(channels) (axis \(r.axis) of \(s))",
                                     node: n.label, op: n.op.typeName)
            }
        }
    }

    // MARK: fusion and memory

    mutating func planFusion() {
        let consumers = graph.consumers
        let outputs = graph.outputNames
        for (i, n) in graph.nodes.enumerated() {
            guard let out = n.outputs.first, !outputs.contains(out), let readers = consumers[out], readers.count == 1 else { continue }
            let r = graph.nodes[readers[0]]
            guard case .requant(let rq) = r.op, r.inputs[0] == out, r.inputs.dropFirst().allSatisfy({ $0 != out }),
                  let pi = paramIndex[readers[0]] else { continue }
            let rank = shapes[out]?.count ?? 0
            let axis = rq.axis < 0 ? rq.axis + rank : rq.axis
            let perTensor = paramNodes[pi].blocks.allSatisfy { $0.tables.allSatisfy { $0.count == 1 } }
            switch n.op {
            case .qconv: if !(perTensor || axis == 1) { continue }
            case .qgemm: if !(perTensor || axis == rank - 1) { continue }
            default: continue
            }
            fusedRequant[i] = readers[0]
            absorbed.insert(readers[0])
        }
        defer { planFusedReaders() }
        // The AVX2 conv epilogue also adds a residual: a QAdd that is the only reader of the fused Requant's output,
        // whose other operand is ready when the conv runs. Not the AVX-512 VNNI one: tried on a Zen 4 (2026-12-02, the
        // QAdd in registers after the Requant, vpmuldq or vpmullq, y never written), ResNet-18 ran 2-3 % slower than
        // with the separate vectorized QAdd pass; the ALU-bound epilogue took the QAdd's work, and saving one pass over
        // an L2-resident tensor did not pay for it.
        guard isa == .avx2 else { return }
        let producers = graph.producers
        for (c, r) in fusedRequant {
            guard case .qconv = graph.nodes[c].op else { continue }
            let out = graph.nodes[r].outputs[0]
            guard !outputs.contains(out), let readers = consumers[out], readers.count == 1 else { continue }
            let q = readers[0], qn = graph.nodes[q]
            guard case .qadd = qn.op, qn.inputs.count == 2, qn.inputs[0] != qn.inputs[1], paramIndex[q] != nil else { continue }
            let swap = qn.inputs[1] == out
            let other = swap ? qn.inputs[0] : qn.inputs[1]
            guard producers[other].map({ $0 < c }) ?? true else { continue }
            fusedAdd[c] = (q, swap)
            absorbed.insert(q)
        }
    }

    /// A QAdd or max pool whose result only Requants read, one or two of them (ResNet's residual sum, read by the
    /// next conv's input quantizer and the next shortcut; a stem's max pool, read by the same two): the readers run
    /// inside its job, a chunk at a time from a cache-resident buffer, so the int32 result is never stored and read
    /// back twice. Each reader's table is per tensor or per channel (axis 1). Every ISA (the generic runtime too).
    mutating func planFusedReaders() {
        let consumers = graph.consumers, outputs = graph.outputNames
        for (i, n) in graph.nodes.enumerated() where !absorbed.contains(i) {
            let pool: Bool
            switch n.op {
            case .qadd: pool = false
            case .qmaxPool: pool = true
            default: continue
            }
            guard let out = n.outputs.first, !outputs.contains(out), let s = shapes[out], s.count >= 2,
                  let readers = consumers[out], (1...2).contains(readers.count), Set(readers).count == readers.count,
                  !pool || s.dropFirst(2).reduce(1, *) * bytesPerElement(out) <= Plan.fusedPoolPlaneBytes else { continue }
            let fusible = readers.allSatisfy { r in
                let rn = graph.nodes[r]
                guard case .requant(let rq) = rn.op, !absorbed.contains(r), rn.inputs.first == out,
                      !rn.inputs.dropFirst().contains(out), let pi = paramIndex[r] else { return false }
                let axis = rq.axis < 0 ? rq.axis + s.count : rq.axis
                return axis == 1 || paramNodes[pi].blocks.allSatisfy { $0.tables.allSatisfy { $0.count == 1 } }
            }
            guard fusible else { continue }
            fusedReaders[i] = readers
            absorbed.formUnion(readers)
        }
    }

    func bytesPerElement(_ v: String) -> Int { dtypes[v]?.byteWidth ?? 4 }
    func bytes(_ v: String) -> Int { (shapes[v] ?? []).reduce(1, *) * bytesPerElement(v) }

    static func align(_ x: Int) -> Int { (x + alignment - 1) / alignment * alignment }

    /// AVX-512 VNNI bundles store a conv's INT8 weights with k in tap-major order where 4 divides its input channels
    /// per group and its kernel has several taps: k-group (cq, tap) = input channels 4 cq ... 4 cq + 3 at that tap,
    /// what the direct conv path (bs_kernels_avx512vnni.c) reads as one 32-bit lane of 4 channels. Only weights that
    /// every reader takes that way (QConvs of the same geometry).
    mutating func planTapMajorWeights() {
        guard isa == .avx512vnni else { return }
        var taps: [String: Int] = [:], refused: Set<String> = []
        for n in graph.nodes {
            for (slot, name) in n.inputs.enumerated() where graph.initializers[name] != nil {
                guard slot == 1, case .qconv = n.op, let ws = graph.initializers[name]?.shape, ws.count >= 3 else {
                    refused.insert(name); continue
                }
                let t = ws.dropFirst(2).reduce(1, *)
                guard t > 1, ws[1] % 4 == 0, taps[name] ?? t == t else { refused.insert(name); continue }
                taps[name] = t
            }
        }
        tapMajorWeights = taps.filter { !refused.contains($0.key) }
    }

    /// VNNI bundles: whether conv node i's weights are packed for the channels-in-lanes kernel (BS_VPACK_C16; the
    /// pack takes it where 16 divides the output channels per group). That kernel computes only real output pixels,
    /// 16 channels per vector, and pays a transpose per output in its epilogue; the pixel-lane kernel computes a
    /// plane's junk columns and a 16-pixel block's tail lanes. Measured on the Zen 4 (per-layer timers, 2026-12-02):
    /// every 3 x 3 conv of ResNet-18 and ResNet-20 as fast or faster (7 x 7 planes 0.83x, 14 x 14 0.91x, ResNet-20's
    /// 16-channel ones 0.78x); 1 x 1 convs slower where k is small or the lanes are full (MobileNetV2's expand convs
    /// 1.2-1.6x), faster on 7 x 7 planes from k = 320 on (0.85-0.93x); ResNet-18's stem (3 input channels: the
    /// gathered path, not the direct one) 1 % slower in the whole model. So: convs of more than one kernel tap and
    /// 4 | input channels per group (the direct path's), and 1 x 1 convs of k >= 256 whose 16-pixel blocks are less
    /// than 85 % full.
    func channelLanes(_ i: Int) -> Bool {
        guard isa == .avx512vnni, case .qconv = graph.nodes[i].op, let d = matmulDims(i),
              let ws = graph.initializers[graph.nodes[i].inputs[1]]?.shape, d.n > 0 else { return false }
        if ws.dropFirst(2).reduce(1, *) > 1 { return ws[1] % 4 == 0 }
        return d.k >= 256 && Double(d.n) < 0.85 * Double((d.n + 15) / 16 * 16)
    }

    /// The bytes a conv's bit planes for the bit-serial w2a2 kernels take past its packed weights
    /// (bs_qs8_packed_bsr_size__avx512vnni, the same formula): AVX-512 VNNI bundles, one group, at least 48 input
    /// channels (a multiple of 4), at least 4 k-words (taps x chunks of 64 input channels), tap-major weights or a
    /// 1 x 1 kernel; else 0.
    func bitSerialBytes(_ i: Int) -> Int {
        let n = graph.nodes[i]
        guard isa == .avx512vnni, case .qconv = n.op, let d = matmulDims(i), d.groups == 1,
              let ws = graph.initializers[n.inputs[1]]?.shape, ws.count >= 3 else { return 0 }
        let kernelTaps = ws.dropFirst(2).reduce(1, *)
        let taps = tapMajorWeights[n.inputs[1]] ?? 0
        guard kernelTaps == 1 || taps == kernelTaps else { return 0 }
        return Plan.bitSerialBytes(groups: d.groups, mg: d.mg, k: d.k, taps: taps)
    }

    static func bitSerialBytes(groups: Int, mg: Int, k: Int, taps: Int) -> Int {
        let t = max(taps, 1)
        guard groups == 1, k % t == 0, k / t >= 48, (k / t) % 4 == 0, t * ((k / t + 63) / 64) >= 4 else { return 0 }
        return align((mg + 3) / 4 * 4 * t * ((k / t + 63) / 64) * 16)
    }

    /// The weights [rows, cg * taps] (k = input channel * taps + tap) with k in tap-major order:
    /// ((ic / 4) * taps + tap) * 4 + ic % 4. cg must be a multiple of 4.
    static func tapMajor(_ w: [Int8], taps: Int) -> [Int8] {
        // A row is a whole number of runs of 4 input channels x taps, so each run of the flat array is permuted alone.
        var out = w
        let span = 4 * taps
        for base in stride(from: 0, to: w.count - span + 1, by: span) {
            for ic in 0..<4 { for t in 0..<taps { out[base + t * 4 + ic] = w[base + ic * taps + t] } }
        }
        return out
    }

    mutating func planMemory() throws {
        var offset = 0
        // Shifted weights of every QConv / QGemm first: rewritten on a switch, read by every run. The AVX2 kernels
        // read them packed (bs_qs8_pack_weights__avx2) and share one scratch area (im2col, interleaved copy).
        // With prepack, one region per distinct (shift, bits) of the node's parameter blocks, sized for its bits.
        for (i, n) in graph.nodes.enumerated() {
            switch n.op {
            case .qconv, .qgemm:
                weightOffsets[i] = offset
                let blocks = paramIndex[i].map { paramNodes[$0].blocks } ?? []
                let d = isa.usesPackedKernels ? matmulDims(i) : nil
                let serial = bitSerialBytes(i)
                func bytes(_ bits: Int) -> Int {
                    guard let d else { return Plan.align(graph.initializers[n.inputs[1]]?.count ?? 0) }
                    return Plan.align(Plan.packedWeightBytes(groups: d.groups, mg: d.mg, k: d.k, isa: isa, bits: bits))
                }
                // The bit planes: in a region of 1- or 2-bit weights, or (bits 0) one serving a block of such (a node
                // without parameter blocks has no low-bit weights).
                func room(_ bits: Int) -> Bool {
                    serial > 0 && (bits > 0 ? bits <= 2 : blocks.contains { $0.ints[2] <= 2 })
                }
                if let d {
                    let conv = { if case .qconv = n.op { return true } else { return false } }()
                    scratchBytes = max(scratchBytes, Plan.scratchBytes(groups: d.groups, mg: d.mg, k: d.k, n: d.n, isa: isa, conv: conv))
                }
                var mine: [[Int]: Int] = [:]   // (shift, bits) -> region
                var perBlock: [Int] = []
                for b in blocks {
                    let key = prepack ? [b.ints[1], b.ints[2]] : []
                    if let r = mine[key] { perBlock.append(r); continue }
                    let bits = prepack ? b.ints[2] : 0
                    mine[key] = regions.count
                    perBlock.append(regions.count)
                    if room(bits) { bitSerialRegions.insert(regions.count) }
                    regions.append((offset, bits))
                    offset += bytes(bits) + (room(bits) ? serial : 0)
                }
                if blocks.isEmpty { regions.append((offset, 0)); perBlock = [regions.count - 1]; offset += bytes(0) }
                blockRegions[i] = perBlock
            default: break
            }
        }
        scratchOffset = offset
        offset += Plan.align(scratchBytes)
        let base = offset
        // Activations: first fit over lifetimes [definition, last read]; outputs live to the end.
        var lastUse: [String: Int] = [input.name: -1]
        var defined: [String: Int] = [input.name: -1]
        let end = graph.nodes.count
        for (i, n) in graph.nodes.enumerated() {
            for v in n.inputs where defined[v] != nil { lastUse[v] = max(lastUse[v] ?? i, i) }
            for o in n.outputs where !o.isEmpty { defined[o] = i; lastUse[o] = max(lastUse[o] ?? i, i) }
        }
        for o in graph.outputs { lastUse[o.name] = end }
        // A residual-fused QConv's Requant output is read by its own epilogue only.
        for (c, r) in fusedRequant where fusedAdd[c] != nil { lastUse[graph.nodes[r].outputs[0]] = c }
        // A fused QConv/QGemm output never exists, nor a QAdd's or max pool's whose readers run inside it.
        let skipped = Set(fusedRequant.keys.compactMap { graph.nodes[$0].outputs.first })
            .union(fusedReaders.keys.compactMap { graph.nodes[$0].outputs.first })
        var live: [(offset: Int, size: Int, until: Int)] = []
        var top = 0
        func place(_ v: String, at step: Int) {
            live.removeAll { $0.until < step }
            let size = Plan.align(bytes(v))
            var candidate = 0
            for b in live.sorted(by: { $0.offset < $1.offset }) {
                if candidate + size <= b.offset { break }
                candidate = max(candidate, b.offset + b.size)
            }
            live.append((candidate, size, lastUse[v] ?? step))
            offsets[v] = base + candidate
            top = max(top, candidate + size)
        }
        place(input.name, at: -1)
        for (i, n) in graph.nodes.enumerated() where !absorbed.contains(i) {
            if let r = fusedRequant[i] {
                // The fused call writes the Requant's output at this step (and the QAdd's, when fused too).
                place(graph.nodes[r].outputs[0], at: i)
                if let a = fusedAdd[i] { place(graph.nodes[a.node].outputs[0], at: i) }
                continue
            }
            // The fused readers write their outputs at this step.
            for r in fusedReaders[i] ?? [] { place(graph.nodes[r].outputs[0], at: i) }
            for o in n.outputs where !o.isEmpty && !skipped.contains(o) { place(o, at: i) }
        }
        arenaBytes = base + top
        guard arenaBytes <= Plan.maxBytes else {
            throw BitSwitchError(.shape, "the model needs an arena of \(arenaBytes) bytes, beyond what the C back end supports (2^46)")
        }
    }

    /// A QConv / QGemm as a grouped matrix product: groups, output channels per group, reduction length, output
    /// pixels (rows), and whether the weight is [k, m] (gemm without trans_b).
    func matmulDims(_ i: Int) -> (groups: Int, mg: Int, k: Int, n: Int, kmajor: Bool)? {
        let n = graph.nodes[i]
        guard let ws = graph.initializers[n.inputs[1]]?.shape, let xs = shapes[n.inputs[0]] else { return nil }
        switch n.op {
        case .qconv(let q):
            let out = fusedRequant[i].map { graph.nodes[$0].outputs[0] } ?? n.outputs[0]
            guard let os = shapes[out], ws.count >= 3, q.conv.group >= 1 else { return nil }
            return (q.conv.group, ws[0] / q.conv.group, ws.dropFirst().reduce(1, *), os.dropFirst(2).reduce(1, *), false)
        case .qgemm(let q):
            guard ws.count == 2, let k = xs.last, k > 0 else { return nil }
            let m = q.transB ? ws[0] : ws[1]
            return (1, m, k, xs.reduce(1, *) / k, !q.transB)
        default: return nil
        }
    }

    /// bs_qs8_packed_weights_size__avx2 (bs_kernels_avx2.c; room for int16 weights), __avx512vnni
    /// (bs_kernels_avx512vnni.c; bytes for every bit-width) or __neon (bs_kernels_neon.c; blocks of 8 channels),
    /// the same formulas. `bits` 1...8: bs_qs8_packed_weights_size_bits__avx2 (the AVX2 layout of that bit-width
    /// only: S8C4 below 8 bits); 0: any bit-width (the other ISAs' layouts do not depend on it).
    static func packedWeightBytes(groups: Int, mg: Int, k: Int, isa: KernelISA, bits: Int = 0) -> Int {
        if isa == .neon {
            let mg8 = (mg + 7) / 8 * 8, kg = (k + 3) / 4
            return 64 + align(groups * mg8 * 4) + align(groups * mg8 * kg * 4)
        }
        let narrow = isa == .avx512vnni || (isa == .avx2 && (1...7).contains(bits))
        let mg4 = (mg + 3) / 4 * 4, kg = narrow ? (k + 3) / 4 : (k + 1) / 2
        return 64 + align(groups * mg4 * 4) + align(groups * mg4 * kg * 4)
    }

    /// bs_conv_scratch_size__avx2 / bs_gemm_scratch_size__avx2 (bs_kernels_avx2.c) or their __avx512vnni / __neon
    /// versions, the same formulas; the generated bs_init checks both against the C functions. `conv`: the NEON
    /// kernels gather a conv's rows into an area a gemm does not need.
    static func scratchBytes(groups: Int, mg: Int, k: Int, n: Int, isa: KernelISA, conv: Bool) -> Int {
        if isa == .neon {
            let npad = (n + 7) / 8 * 8, kg = (k + 3) / 4, kgPerTask = 16
            let tmp = conv ? align(groups * ((kg + kgPerTask - 1) / kgPerTask) * 4 * npad) : 0
            let ilv = align(groups * kg * 4 * npad), fb = align(groups * mg * k)
            return 64 + max(tmp + ilv, fb)
        }
        if isa == .avx512vnni {
            let npad = (n + 15) / 16 * 16, mg4 = (mg + 3) / 4 * 4, k4 = (k + 3) / 4 * 4
            return 64 + align(groups * k4 * npad) + max(align(groups * k4 * npad), align(groups * mg4 * k))
        }
        let npad = (n + 7) / 8 * 8, mg4 = (mg + 3) / 4 * 4
        let k2 = (k + 1) / 2 * 2, k4 = (k + 3) / 4 * 4, row = max(k2 * 2, k4)
        let tmp = align(groups * row * npad), ilv = align(groups * row * npad), fb = align(groups * mg4 * k)
        return 64 + tmp + max(ilv, fb)
    }
}
