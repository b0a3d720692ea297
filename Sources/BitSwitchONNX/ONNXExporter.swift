import BitSwitchIR
import CONNX
import CProtobufC
import Glibc

/// Writes the IR as an ONNX ModelProto (tensors as raw_data).
public enum ONNXExporter {
    public static func serialize(_ g: Graph) throws -> [UInt8] {
        let arena = CArena()
        let model = try ModelBuilder(arena: arena).model(g)
        return packed(model)
    }

    /// Atomic: a reader of `path` sees the old file or the complete new one.
    public static func write(_ g: Graph, to path: String) throws {
        let bytes: [UInt8]
        do { bytes = try serialize(g) } catch { throw error.bitswitchLocated(file: path) }
        try writeFileAtomically(bytes, to: path)
    }

    /// The IR version a default-domain opset needs at least.
    static func minimumIRVersion(opset: Int) -> Int {
        switch opset {
        case ...15: return 7
        case 16...18: return 8
        case 19...20: return 9
        default: return 10
        }
    }

    static func packed(_ m: UnsafeMutablePointer<Onnx__ModelProto>) -> [UInt8] {
        let size = onnx__model_proto__get_packed_size(m)
        return [UInt8](unsafeUninitializedCapacity: size) { buf, n in
            n = size > 0 ? onnx__model_proto__pack(m, buf.baseAddress!) : 0
        }
    }
}

/// Owns every C allocation of one message tree being built for packing; all of it is freed together.
final class CArena {
    private var blocks: [UnsafeMutableRawPointer] = []

    deinit { for b in blocks { free(b) } }

    private func raw(_ bytes: Int) throws -> UnsafeMutableRawPointer {
        guard let p = calloc(1, max(bytes, 1)) else {
            throw BitSwitchError(.internalError, "out of memory allocating \(bytes) bytes for ONNX export")
        }
        blocks.append(p)
        return p
    }

    func new<T>(_: T.Type, count: Int = 1) throws -> UnsafeMutablePointer<T> {
        let (bytes, o) = MemoryLayout<T>.stride.multipliedReportingOverflow(by: count)
        guard !o else { throw BitSwitchError(.internalError, "ONNX export allocation size overflows") }
        return try raw(bytes).bindMemory(to: T.self, capacity: count)
    }

    func array<T>(_ values: [T]) throws -> UnsafeMutablePointer<T>? {
        guard !values.isEmpty else { return nil }
        let p = try new(T.self, count: values.count)
        p.initialize(from: values, count: values.count)
        return p
    }

    func string(_ s: String) throws -> UnsafeMutablePointer<CChar> {
        let utf8 = Array(s.utf8CString)
        let p = try new(CChar.self, count: utf8.count)
        p.initialize(from: utf8, count: utf8.count)
        return p
    }

    func strings(_ ss: [String]) throws -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? {
        try array(ss.map { Optional(try string($0)) })
    }

    func binary(_ s: String) throws -> ProtobufCBinaryData {
        let bytes = Array(s.utf8)
        return try binary(count: bytes.count) { dst in
            bytes.withUnsafeBytes { src in _ = memcpy(dst, src.baseAddress!, src.count) }
        }
    }

    /// A byte buffer of `count` bytes filled by `fill`.
    func binary(count: Int, _ fill: (UnsafeMutableRawPointer) -> Void) throws -> ProtobufCBinaryData {
        guard count > 0 else { return ProtobufCBinaryData(len: 0, data: nil) }
        let p = try raw(count)
        fill(p)
        return ProtobufCBinaryData(len: count, data: p.assumingMemoryBound(to: UInt8.self))
    }
}

/// Builds the C message tree of a Graph inside an arena.
struct ModelBuilder {
    let arena: CArena

    func model(_ g: Graph) throws -> UnsafeMutablePointer<Onnx__ModelProto> {
        let m = try arena.new(Onnx__ModelProto.self)
        onnx__model_proto__init(m)
        let md = g.metadata

        var opsets = g.opsets
        if g.nodes.contains(where: { $0.op.domain == Op.bitswitchDomain }) && opsets[Op.bitswitchDomain] == nil {
            opsets[Op.bitswitchDomain] = 1
        }
        let needed = ONNXExporter.minimumIRVersion(opset: opsets[""] ?? 0)
        let recorded = md["ir_version"].flatMap { Int($0) } ?? 8
        m.pointee.has_ir_version = 1
        m.pointee.ir_version = Int64(max(recorded, needed))

        var opsetMessages: [UnsafeMutablePointer<Onnx__OperatorSetIdProto>?] = []
        for (domain, version) in opsets.sorted(by: { $0.key < $1.key }) {
            let o = try arena.new(Onnx__OperatorSetIdProto.self)
            onnx__operator_set_id_proto__init(o)
            o.pointee.domain = try arena.string(domain)
            o.pointee.has_version = 1
            o.pointee.version = Int64(version)
            opsetMessages.append(o)
        }
        m.pointee.n_opset_import = opsetMessages.count
        m.pointee.opset_import = try arena.array(opsetMessages)

        if let s = md["producer_name"] { m.pointee.producer_name = try arena.string(s) }
        if let s = md["producer_version"] { m.pointee.producer_version = try arena.string(s) }
        if let s = md["domain"] { m.pointee.domain = try arena.string(s) }
        if let s = md["doc_string"] { m.pointee.doc_string = try arena.string(s) }
        if let v = md["model_version"].flatMap({ Int64($0) }) {
            m.pointee.has_model_version = 1
            m.pointee.model_version = v
        }
        var props: [UnsafeMutablePointer<Onnx__StringStringEntryProto>?] = []
        for (k, v) in md.sorted(by: { $0.key < $1.key }) where k.hasPrefix("meta.") {
            let e = try arena.new(Onnx__StringStringEntryProto.self)
            onnx__string_string_entry_proto__init(e)
            e.pointee.key = try arena.string(String(k.dropFirst(5)))
            e.pointee.value = try arena.string(v)
            props.append(e)
        }
        m.pointee.n_metadata_props = props.count
        m.pointee.metadata_props = try arena.array(props)

        m.pointee.graph = try graph(g)
        return m
    }

    private func graph(_ g: Graph) throws -> UnsafeMutablePointer<Onnx__GraphProto> {
        let gp = try arena.new(Onnx__GraphProto.self)
        onnx__graph_proto__init(gp)
        gp.pointee.name = try arena.string(g.name.isEmpty ? Graph().name : g.name)
        if let s = g.metadata["graph.doc_string"] { gp.pointee.doc_string = try arena.string(s) }

        let nodes = try g.nodes.map { Optional(try node($0)) }
        gp.pointee.n_node = nodes.count
        gp.pointee.node = try arena.array(nodes)

        let inits = try g.orderedInitializers.map { Optional(try tensor($0.tensor, name: $0.name)) }
        gp.pointee.n_initializer = inits.count
        gp.pointee.initializer = try arena.array(inits)

        let ins = try g.inputs.map { Optional(try valueInfo($0.name, $0.type)) }
        gp.pointee.n_input = ins.count
        gp.pointee.input = try arena.array(ins)
        let outs = try g.outputs.map { Optional(try valueInfo($0.name, $0.type)) }
        gp.pointee.n_output = outs.count
        gp.pointee.output = try arena.array(outs)
        let infos = try g.valueTypes.sorted(by: { $0.key < $1.key }).map { Optional(try valueInfo($0.key, $0.value)) }
        gp.pointee.n_value_info = infos.count
        gp.pointee.value_info = try arena.array(infos)
        return gp
    }

    private func node(_ n: Node) throws -> UnsafeMutablePointer<Onnx__NodeProto> {
        let p = try arena.new(Onnx__NodeProto.self)
        onnx__node_proto__init(p)
        if !n.name.isEmpty { p.pointee.name = try arena.string(n.name) }
        p.pointee.op_type = try arena.string(n.op.typeName)
        if !n.op.domain.isEmpty { p.pointee.domain = try arena.string(n.op.domain) }
        p.pointee.n_input = n.inputs.count
        p.pointee.input = try arena.strings(n.inputs)
        p.pointee.n_output = n.outputs.count
        p.pointee.output = try arena.strings(n.outputs)
        do {
            let attrs = try n.op.attributes.map { Optional(try attribute($0.0, $0.1)) }
            p.pointee.n_attribute = attrs.count
            p.pointee.attribute = try arena.array(attrs)
        } catch {
            throw error.bitswitchLocated(node: n.label, op: n.op.typeName).located(domain: n.op.domain)
        }
        return p
    }

    private func attribute(_ name: String, _ v: AttrValue) throws -> UnsafeMutablePointer<Onnx__AttributeProto> {
        let a = try arena.new(Onnx__AttributeProto.self)
        onnx__attribute_proto__init(a)
        a.pointee.name = try arena.string(name)
        a.pointee.has_type = 1
        switch v {
        case .int(let i):
            a.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT
            a.pointee.has_i = 1; a.pointee.i = Int64(i)
        case .float(let f):
            a.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT
            a.pointee.has_f = 1; a.pointee.f = f
        case .string(let s):
            a.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING
            a.pointee.has_s = 1; a.pointee.s = try arena.binary(s)
        case .ints(let xs):
            a.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS
            a.pointee.n_ints = xs.count; a.pointee.ints = try arena.array(xs.map(Int64.init))
        case .floats(let xs):
            a.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS
            a.pointee.n_floats = xs.count; a.pointee.floats = try arena.array(xs)
        case .strings(let xs):
            a.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS
            a.pointee.n_strings = xs.count; a.pointee.strings = try arena.array(xs.map { try arena.binary($0) })
        case .tensor(let t):
            a.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR
            a.pointee.t = try tensor(t, name: "")
        }
        return a
    }

    func tensor(_ t: Tensor, name: String) throws -> UnsafeMutablePointer<Onnx__TensorProto> {
        guard checkedElementCount(t.shape) == t.count else {
            throw BitSwitchError(.internalError, "tensor '\(name)' has shape \(t.shape) but \(t.count) elements")
        }
        let n = t.count
        guard let byteCount = t.dtype.onnxByteCount(n), byteCount <= Int(Int32.max) else {
            throw BitSwitchError(.unsupported, "tensor '\(name)' is larger than 2 GiB; protobuf cannot hold it "
                                 + "inline and BitSwitch does not write ONNX external data")
        }
        let p = try arena.new(Onnx__TensorProto.self)
        onnx__tensor_proto__init(p)
        if !name.isEmpty { p.pointee.name = try arena.string(name) }
        p.pointee.has_data_type = 1
        p.pointee.data_type = Int32(t.dtype.onnxCode)
        p.pointee.n_dims = t.shape.count
        p.pointee.dims = try arena.array(t.shape.map(Int64.init))
        p.pointee.has_raw_data = 1
        p.pointee.raw_data = try arena.binary(count: byteCount) { dst in Self.writeRaw(t, to: dst) }
        return p
    }

    /// Little-endian ONNX raw form of a tensor (buffer is zeroed, sized by `onnxByteCount`).
    static func writeRaw(_ t: Tensor, to dst: UnsafeMutableRawPointer) {
        func copy<T>(_ a: [T]) { a.withUnsafeBytes { b in if b.count > 0 { _ = memcpy(dst, b.baseAddress!, b.count) } } }
        func pack<T: BinaryInteger>(_ a: [T]) {
            let out = dst.assumingMemoryBound(to: UInt8.self)
            for (i, v) in a.enumerated() {
                let nib = UInt8(truncatingIfNeeded: v) & 0x0F
                out[i >> 1] |= (i & 1) == 0 ? nib : nib << 4
            }
        }
        switch (t.dtype, t.storage) {
        case (.f16, .f32(let a)):
            for (i, v) in a.enumerated() {
                dst.storeBytes(of: Float16(v).bitPattern.littleEndian, toByteOffset: 2 * i, as: UInt16.self)
            }
        case (.i4, .i8(let a)): pack(a)
        case (.u4, .u8(let a)): pack(a)
        case (_, .f32(let a)): copy(a)
        case (_, .i8(let a)): copy(a)
        case (_, .u8(let a)): copy(a)
        case (_, .i32(let a)): copy(a)
        case (_, .i64(let a)): copy(a)
        case (_, .f64(let a)): copy(a)
        case (_, .i16(let a)): copy(a)
        case (_, .u16(let a)): copy(a)
        case (_, .u32(let a)): copy(a)
        case (_, .u64(let a)): copy(a)
        case (_, .bool(let a)):
            let out = dst.assumingMemoryBound(to: UInt8.self)
            for (i, v) in a.enumerated() { out[i] = v ? 1 : 0 }
        }
    }

    private func valueInfo(_ name: String, _ type: TensorType) throws -> UnsafeMutablePointer<Onnx__ValueInfoProto> {
        let vi = try arena.new(Onnx__ValueInfoProto.self)
        onnx__value_info_proto__init(vi)
        vi.pointee.name = try arena.string(name)
        let tp = try arena.new(Onnx__TypeProto.self)
        onnx__type_proto__init(tp)
        let tt = try arena.new(Onnx__TypeProto__Tensor.self)
        onnx__type_proto__tensor__init(tt)
        tt.pointee.has_elem_type = 1
        tt.pointee.elem_type = Int32(type.dtype.onnxCode)
        if let shape = type.shape {
            let sp = try arena.new(Onnx__TensorShapeProto.self)
            onnx__tensor_shape_proto__init(sp)
            let dims = try shape.map { d -> UnsafeMutablePointer<Onnx__TensorShapeProto__Dimension>? in
                let dp = try arena.new(Onnx__TensorShapeProto__Dimension.self)
                onnx__tensor_shape_proto__dimension__init(dp)
                switch d {
                case .known(let v):
                    dp.pointee.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE
                    dp.pointee.dim_value = Int64(v)
                case .symbol(let s):
                    dp.pointee.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM
                    dp.pointee.dim_param = try arena.string(s)
                case .unknown:
                    break
                }
                return dp
            }
            sp.pointee.n_dim = dims.count
            sp.pointee.dim = try arena.array(dims)
            tt.pointee.shape = sp
        }
        tp.pointee.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE
        tp.pointee.tensor_type = tt
        vi.pointee.type = tp
        return vi
    }
}
