import BitSwitchIR
import CONNX
import CProtobufC

/// How an import treats models at the edge of what BitSwitch supports.
public struct ImportOptions: Sendable {
    /// Import a model that declares an opset newer than `ONNXImporter.newestOpsets` (with a warning) instead of
    /// refusing it. Ops are then read with the semantics of the newest version BitSwitch knows.
    public var allowNewerOpset: Bool
    /// Upper bound on the bytes all initializers may take together; the available memory bounds it anyway.
    public var maxMemory: Int?
    /// Receives warnings (a newer opset that was allowed). The CLI prints them to stderr.
    public var warn: @Sendable (String) -> Void

    public init(allowNewerOpset: Bool = false, maxMemory: Int? = nil, warn: @escaping @Sendable (String) -> Void = { _ in }) {
        self.allowNewerOpset = allowNewerOpset; self.maxMemory = maxMemory; self.warn = warn
    }
}

/// Reads ONNX ModelProto files into the IR.
public enum ONNXImporter {
    /// The oldest default-domain opset whose op semantics `Op(type:domain:attributes:opset:)` covers.
    public static let minimumOpset = 6
    /// The newest version of each domain whose semantics BitSwitch implements ("" is the default ONNX domain).
    /// A model declaring a newer one is refused unless `ImportOptions.allowNewerOpset` is set, as onnxruntime does.
    public static let newestOpsets: [String: Int] = ["": 22, Op.bitswitchDomain: 1]

    public static func importModel(path: String, options: ImportOptions = ImportOptions()) throws -> Graph {
        // The file is read into memory (not mapped): a model truncated or replaced while it is imported then gives
        // an error instead of SIGBUS. protobuf-c copies every field out of the buffer, so the buffer is released
        // before tensors are decoded: peak memory is about two copies of the weights, not three.
        let model = try unpack(path: path)
        do {
            return try GraphReader(file: path, baseDirectory: directoryOf(path), options: options)
                .read(model.message.pointee)
        } catch {
            throw error.bitswitchLocated(file: path)
        }
    }

    private static func unpack(path: String) throws -> UnpackedModel {
        let bytes = try readWholeFile(path: path)
        return try bytes.withUnsafeBytes { buf in
            guard buf.count > 0, let model = UnpackedModel(buf) else {
                throw unparsable(byteCount: buf.count, file: path)
            }
            return model
        }
    }

    /// `path` names the model in errors; external data is looked up relative to `baseDirectory`.
    public static func importModel(bytes: [UInt8], path: String, baseDirectory: String?,
                                   options: ImportOptions = ImportOptions()) throws -> Graph {
        try bytes.withUnsafeBytes { try importModel(buffer: $0, path: path, baseDirectory: baseDirectory, options: options) }
    }

    static func importModel(buffer: UnsafeRawBufferPointer, path: String, baseDirectory: String?,
                            options: ImportOptions = ImportOptions()) throws -> Graph {
        guard buffer.count > 0, let model = UnpackedModel(buffer) else {
            throw unparsable(byteCount: buffer.count, file: path)
        }
        do {
            return try GraphReader(file: path, baseDirectory: baseDirectory, options: options).read(model.message.pointee)
        } catch {
            throw error.bitswitchLocated(file: path)
        }
    }

    /// The (domain, op type) of every node of the main graph, without decoding tensors or checking anything else:
    /// lets a caller decide whether a model is within the supported op set before importing it.
    public static func operatorTypes(path: String) throws -> [(domain: String, type: String)] {
        let model = try unpack(path: path)
        guard let gp = model.message.pointee.graph?.pointee else { return [] }
        return cMessages(gp.node, gp.n_node).map { n in
            let d = cString(n.pointee.domain)
            return (d == "ai.onnx" ? "" : d, cString(n.pointee.op_type))
        }
    }

    static func unparsable(byteCount: Int, file: String) -> BitSwitchError {
        var msg = "not a valid ONNX protobuf (truncated or not protobuf)"
        if byteCount == 0 { msg = "the file is empty: " + msg }
        if byteCount > Int(Int32.max) {
            msg += "; the file is larger than 2 GiB, and protobuf cannot hold such models: they need ONNX external "
                + "data (tensor bytes in a separate file)"
        }
        return BitSwitchError(.parse, msg, file: file)
    }
}

/// One import: walks the unpacked C tree and builds the Graph.
private struct GraphReader {
    let file: String
    let decoder: TensorDecoder
    let options: ImportOptions

    init(file: String, baseDirectory: String?, options: ImportOptions) {
        self.file = file
        self.options = options
        self.decoder = TensorDecoder(file: file, baseDirectory: baseDirectory, maxMemory: options.maxMemory)
    }

    /// An opset newer than BitSwitch implements is an error naming domain and version, or with
    /// `allowNewerOpset` a warning.
    private func checkNewest(_ opsets: [String: Int]) throws {
        for (domain, version) in opsets.sorted(by: { $0.key < $1.key }) {
            guard let newest = ONNXImporter.newestOpsets[domain], version > newest || version < 1 else { continue }
            let shown = domain.isEmpty ? "the default ONNX domain (ai.onnx)" : "domain '\(domain)'"
            if version < 1 {
                throw BitSwitchError(.unsupported, "\(shown) version \(version) does not exist (versions start at 1)",
                                     file: file, domain: domain, opset: version)
            }
            let what = "the model declares opset \(version) of \(shown); the newest BitSwitch implements is \(newest)"
            if options.allowNewerOpset {
                options.warn("warning: \(file): \(what); importing anyway (--allow-newer-opset), with the semantics "
                             + "of version \(newest)")
            } else {
                throw BitSwitchError(.unsupported, what + " (pass --allow-newer-opset to import it anyway, with the "
                                     + "semantics of version \(newest))", file: file, domain: domain, opset: version)
            }
        }
    }

    func read(_ model: Onnx__ModelProto) throws -> Graph {
        guard let gp = model.graph?.pointee else {
            throw BitSwitchError(.invalidModel, "the model has no graph", file: file)
        }
        var opsets: [String: Int] = [:]
        for o in cMessages(model.opset_import, model.n_opset_import) {
            let d = cString(o.pointee.domain)
            opsets[d == "ai.onnx" ? "" : d] = Int(o.pointee.version)
        }
        if let v = opsets[""], v < ONNXImporter.minimumOpset {
            throw BitSwitchError(.unsupported, "default-domain opset \(v) is older than \(ONNXImporter.minimumOpset), "
                                 + "the oldest BitSwitch reads", file: file, opset: v)
        }
        try checkNewest(opsets)

        // ONNX requires a graph name; a nameless graph gets Graph's default so a re-export is valid.
        let graphName = cString(gp.name)
        var g = Graph(name: graphName.isEmpty ? Graph().name : graphName, opsets: opsets)
        g.metadata = metadata(model, gp)

        if gp.n_sparse_initializer > 0 {
            throw BitSwitchError(.unsupported, "sparse initializers are not supported", file: file)
        }
        try checkMemory(gp)
        for t in cMessages(gp.initializer, gp.n_initializer) {
            let (name, tensor) = try decoder.decode(t)
            guard g.initializers[name] == nil else {
                throw BitSwitchError(.invalidModel, "initializer '\(name)' is defined twice", file: file)
            }
            g.setInitializer(name, tensor)
        }
        for vi in cMessages(gp.input, gp.n_input) {
            let info = try valueInfo(vi.pointee, role: "graph input")
            // Inputs that also have an initializer are constants with an overridable default; we treat them as
            // constants, which is what every exporter that writes them means.
            if g.initializers[info.name] == nil { g.inputs.append(info) }
        }
        g.outputs = try cMessages(gp.output, gp.n_output).map { try valueInfo($0.pointee, role: "graph output") }

        for np in cMessages(gp.node, gp.n_node) {
            try readNode(np.pointee, into: &g)
        }
        unaliasInitializers(&g)
        try checkDefinitions(g)
        for vi in cMessages(gp.value_info, gp.n_value_info) {
            let info = try valueInfo(vi.pointee, role: "value_info")
            g.valueTypes[info.name] = info.type
        }
        try g.sortTopologically()
        return g
    }

    /// The memory check is cumulative: all initializers and tensor attributes together must fit, checked from
    /// their dims before any is allocated.
    private func checkMemory(_ gp: Onnx__GraphProto) throws {
        var total = 0, count = 0, largest = (name: "", bytes: -1)
        func add(_ t: UnsafeMutablePointer<Onnx__TensorProto>) {
            guard let b = TensorDecoder.storageBytes(t.pointee) else { return }
            let (r, o) = total.addingReportingOverflow(b)
            total = o ? Int.max : r
            count += 1
            if b > largest.bytes { largest = (cString(t.pointee.name), b) }
        }
        for t in cMessages(gp.initializer, gp.n_initializer) { add(t) }
        for n in cMessages(gp.node, gp.n_node) {
            for a in cMessages(n.pointee.attribute, n.pointee.n_attribute) {
                if let t = a.pointee.t { add(t) }
            }
        }
        try decoder.checkTotal(total, tensors: count, largest: largest)
    }

    private func metadata(_ m: Onnx__ModelProto, _ gp: Onnx__GraphProto) -> [String: String] {
        var md: [String: String] = [:]
        func put(_ k: String, _ p: UnsafeMutablePointer<CChar>?) { if let p { md[k] = String(cString: p) } }
        put("producer_name", m.producer_name)
        put("producer_version", m.producer_version)
        put("domain", m.domain)
        put("doc_string", m.doc_string)
        put("graph.doc_string", gp.doc_string)
        if m.has_ir_version != 0 { md["ir_version"] = String(m.ir_version) }
        if m.has_model_version != 0 { md["model_version"] = String(m.model_version) }
        for e in cMessages(m.metadata_props, m.n_metadata_props) {
            md["meta." + cString(e.pointee.key)] = cString(e.pointee.value)
        }
        return md
    }

    private func valueInfo(_ vi: Onnx__ValueInfoProto, role: String) throws -> ValueInfo {
        let name = cString(vi.name)
        func bad(_ msg: String) -> BitSwitchError {
            BitSwitchError(.unsupported, "\(role) '\(name)': \(msg)", file: file)
        }
        guard let tp = vi.type?.pointee else {
            throw BitSwitchError(.invalidModel, "\(role) '\(name)' has no type", file: file)
        }
        guard tp.value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE, let tt = tp.tensor_type?.pointee else {
            throw bad("only tensor types are supported (not sequences, maps, optionals or sparse tensors)")
        }
        let code = Int(tt.elem_type)
        guard let dtype = DType(onnxCode: code) else {
            throw bad("element type \(onnxTypeName(code)) is not supported")
        }
        guard let sp = tt.shape?.pointee else { return ValueInfo(name: name, type: TensorType(dtype, nil)) }
        var dims: [Dim] = []
        for d in cMessages(sp.dim, sp.n_dim) {
            switch d.pointee.value_case {
            case ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE:
                let v = d.pointee.dim_value
                guard v >= 0 else {
                    throw BitSwitchError(.invalidModel, "\(role) '\(name)' has negative dimension \(v)", file: file)
                }
                dims.append(.known(Int(v)))
            case ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM:
                let s = cString(d.pointee.dim_param)
                dims.append(s.isEmpty ? .unknown : .symbol(s))
            default:
                dims.append(.unknown)
            }
        }
        return ValueInfo(name: name, type: TensorType(dtype, dims))
    }

    /// Identity nodes that read an initializer become initializers themselves (a copy of the tensor). PyTorch's
    /// exporter deduplicates equal initializers (a fresh BatchNorm's bias and running mean are both zeros, its scale
    /// and running variance both ones) and feeds the copies through Identity nodes; left aliased, training would
    /// update one tensor through two names. Graph outputs stay Identity nodes.
    private func unaliasInitializers(_ g: inout Graph) {
        let outputs = Set(g.outputs.map(\.name))
        var changed = true
        while changed {
            changed = false
            var keep: [Node] = []
            for n in g.nodes {
                if case .identity = n.op, n.inputs.count == 1, n.outputs.count == 1,
                   let t = g.initializers[n.inputs[0]], !n.outputs[0].isEmpty, !outputs.contains(n.outputs[0]),
                   g.initializers[n.outputs[0]] == nil {
                    g.setInitializer(n.outputs[0], t)
                    changed = true
                } else {
                    keep.append(n)
                }
            }
            g.nodes = keep
        }
    }

    private func readNode(_ n: Onnx__NodeProto, into g: inout Graph) throws {
        let name = cString(n.name)
        let type = cString(n.op_type)
        let rawDomain = cString(n.domain)
        let domain = rawDomain == "ai.onnx" ? "" : rawDomain
        let inputs = cStrings(n.input, n.n_input)
        let outputs = cStrings(n.output, n.n_output)
        let label = name.isEmpty ? (outputs.first ?? "?") : name
        let opset = g.opsets[domain]
        do {
            guard let opset else {
                let shown = domain.isEmpty ? "the default ONNX domain" : "domain '\(domain)'"
                throw BitSwitchError(.invalidModel, "the model's opset_import has no version for \(shown)")
            }
            var attrs: [String: AttrValue] = [:]
            for a in cMessages(n.attribute, n.n_attribute) {
                let (k, v) = try attribute(a.pointee)
                attrs[k] = v
            }
            if domain.isEmpty && type == "Constant" {
                guard outputs.count == 1, !outputs[0].isEmpty, inputs.isEmpty else {
                    throw BitSwitchError(.invalidModel, "Constant must have no inputs and exactly one named output")
                }
                guard g.initializers[outputs[0]] == nil else {
                    throw BitSwitchError(.invalidModel, "value '\(outputs[0])' is defined twice")
                }
                g.setInitializer(outputs[0], try constantValue(attrs))
                return
            }
            let op = try Op(type: type, domain: domain, attributes: attrs, opset: opset)
            var nodeInputs = inputs
            if domain.isEmpty, opset < 7, ["Add", "Sub", "Mul", "Div"].contains(type),
               case .int(1)? = attrs["broadcast"], case .int(let axis)? = attrs["axis"] {
                nodeInputs[1] = try alignLegacyBroadcast(inputs, axis: axis, node: name, into: &g)
            }
            g.nodes.append(Node(name: name, op: op, inputs: nodeInputs, outputs: outputs))
        } catch {
            let e = error.bitswitchLocated(file: file, node: label, op: type, opset: opset)
            throw e.located(domain: domain)
        }
    }

    /// Opset < 7 arithmetic with `broadcast=1, axis=k` aligns B with A's dims starting at k. NumPy-style
    /// broadcasting (what every later opset and our executor use) aligns trailing dims, so B gets trailing
    /// size-1 dims through an Unsqueeze. Returns the name to read instead of B.
    private func alignLegacyBroadcast(_ inputs: [String], axis: Int, node: String, into g: inout Graph) throws -> String {
        guard inputs.count == 2, let rankA = g.type(of: inputs[0])?.rank, let rankB = g.type(of: inputs[1])?.rank else {
            throw BitSwitchError(.unsupported, "legacy broadcast with axis needs both operands' ranks known at import")
        }
        let start = axis < 0 ? axis + rankA : axis
        let trailing = rankA - start - rankB
        guard start >= 0, trailing >= 0 else {
            throw BitSwitchError(.invalidModel, "broadcast axis \(axis) does not fit operand ranks \(rankA) and \(rankB)")
        }
        if trailing == 0 { return inputs[1] }
        let aligned = g.freshName(inputs[1] + "_aligned")
        g.nodes.append(Node(name: g.freshName((node.isEmpty ? aligned : node) + "_align"),
                            op: .unsqueeze(axes: Array(rankB..<(rankB + trailing))), inputs: [inputs[1]], outputs: [aligned]))
        return aligned
    }

    private func constantValue(_ attrs: [String: AttrValue]) throws -> Tensor {
        guard attrs.count == 1, let (key, value) = attrs.first else {
            throw BitSwitchError(.invalidModel, "Constant must have exactly one value attribute, has "
                                 + (attrs.isEmpty ? "none" : attrs.keys.sorted().joined(separator: ", ")))
        }
        switch (key, value) {
        case ("value", .tensor(let t)): return t
        case ("value_float", .float(let f)): return Tensor(scalar: f)
        case ("value_float", .int(let i)): return Tensor(scalar: Float(i))
        case ("value_floats", .floats(let fs)): return Tensor(shape: [fs.count], floats: fs)
        case ("value_floats", .ints(let a)) where a.isEmpty: return Tensor(shape: [0], floats: [])
        case ("value_int", .int(let i)): return Tensor(shape: [], int64s: [Int64(i)])
        case ("value_ints", .ints(let a)): return Tensor(shape: [a.count], int64s: a.map(Int64.init))
        case ("value_string", _), ("value_strings", _):
            throw BitSwitchError(.unsupported, "string constants ('\(key)') are not supported")
        default:
            throw BitSwitchError(.invalidModel, "Constant attribute '\(key)' has unexpected kind \(value)")
        }
    }

    private func attribute(_ a: Onnx__AttributeProto) throws -> (String, AttrValue) {
        let name = cString(a.name)
        if a.ref_attr_name != nil {
            throw BitSwitchError(.unsupported, "attribute '\(name)' refers to a function attribute; functions are "
                                 + "not supported")
        }
        func unsupported(_ kind: String) -> BitSwitchError {
            BitSwitchError(.unsupported, "attribute '\(name)' is a \(kind), which BitSwitch does not support")
        }
        var type = a.type
        if a.has_type == 0 || type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED {
            type = inferredType(a)
        }
        switch type {
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT: return (name, .float(a.f))
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT: return (name, .int(Int(a.i)))
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING: return (name, .string(binaryString(a.s)))
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS: return (name, .floats(Array(cList(a.floats, a.n_floats))))
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS: return (name, .ints(cList(a.ints, a.n_ints).map { Int($0) }))
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS:
            return (name, .strings(cList(a.strings, a.n_strings).map(binaryString)))
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR:
            guard let t = a.t else {
                throw BitSwitchError(.invalidModel, "tensor attribute '\(name)' has no tensor")
            }
            return (name, .tensor(try decoder.decode(t).tensor))
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPHS:
            throw unsupported("graph (subgraph)")
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSOR, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSORS:
            throw unsupported("sparse tensor")
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSORS: throw unsupported("tensor list")
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTO, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTOS:
            throw unsupported("type proto")
        default:
            throw BitSwitchError(.invalidModel, "attribute '\(name)' has unknown type \(type.rawValue)")
        }
    }

    /// Models from before the `type` field existed say the kind only by which field is set.
    private func inferredType(_ a: Onnx__AttributeProto) -> Onnx__AttributeProto__AttributeType {
        if a.has_f != 0 { return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT }
        if a.has_i != 0 { return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT }
        if a.has_s != 0 { return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING }
        if a.t != nil { return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR }
        if a.g != nil { return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH }
        if a.sparse_tensor != nil { return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSOR }
        if a.n_floats > 0 { return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS }
        if a.n_ints > 0 { return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS }
        if a.n_strings > 0 { return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS }
        if a.n_tensors > 0 { return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSORS }
        if a.n_graphs > 0 { return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPHS }
        return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED
    }

    /// Every value defined once, every read value defined somewhere (order is settled by the topological sort).
    private func checkDefinitions(_ g: Graph) throws {
        var definedBy: [String: String] = [:]
        for name in g.initializerOrder { definedBy[name] = "an initializer" }
        for i in g.inputs {
            if let prev = definedBy[i.name] {
                throw BitSwitchError(.invalidModel, "value '\(i.name)' is defined twice (graph input and \(prev))",
                                     file: file)
            }
            definedBy[i.name] = "a graph input"
        }
        for n in g.nodes {
            for o in n.outputs where !o.isEmpty {
                if let prev = definedBy[o] {
                    throw BitSwitchError(.invalidModel, "value '\(o)' is defined twice (output of this node and "
                                         + "\(prev))", file: file, node: n.label, op: n.op.typeName,
                                         domain: n.op.domain)
                }
                definedBy[o] = "output of node '\(n.label)'"
            }
        }
        for n in g.nodes {
            for i in n.inputs where !i.isEmpty && definedBy[i] == nil {
                throw BitSwitchError(.invalidModel, "input '\(i)' is never defined (missing initializer or input)",
                                     file: file, node: n.label, op: n.op.typeName, domain: n.op.domain)
            }
        }
        for o in g.outputs where definedBy[o.name] == nil {
            throw BitSwitchError(.invalidModel, "graph output '\(o.name)' is never defined", file: file)
        }
    }
}
