// One mapping between `Op` and (op type, domain, attributes), shared by the ONNX importer/exporter
// and the IR text form, so an op's attribute rules live in exactly one place.

extension DType {
    /// ONNX TensorProto.DataType code.
    public var onnxCode: Int {
        switch self {
        case .f32: return 1
        case .u8: return 2
        case .i8: return 3
        case .i32: return 6
        case .i64: return 7
        case .bool: return 9
        case .f16: return 10
        case .u4: return 21
        case .i4: return 22
        case .u16: return 4
        case .i16: return 5
        case .f64: return 11
        case .u32: return 12
        case .u64: return 13
        }
    }
    public init?(onnxCode: Int) {
        guard let t = DType.allCases.first(where: { $0.onnxCode == onnxCode }) else { return nil }
        self = t
    }
}

extension Op {
    /// ONNX op type (or quant-dialect name).
    public var typeName: String {
        switch self {
        case .conv: return "Conv"
        case .gemm: return "Gemm"
        case .matMul: return "MatMul"
        case .add: return "Add"
        case .sub: return "Sub"
        case .mul: return "Mul"
        case .div: return "Div"
        case .relu: return "Relu"
        case .leakyRelu: return "LeakyRelu"
        case .clip: return "Clip"
        case .sigmoid: return "Sigmoid"
        case .hardSigmoid: return "HardSigmoid"
        case .hardSwish: return "HardSwish"
        case .tanh: return "Tanh"
        case .batchNormalization: return "BatchNormalization"
        case .maxPool: return "MaxPool"
        case .averagePool: return "AveragePool"
        case .globalAveragePool: return "GlobalAveragePool"
        case .flatten: return "Flatten"
        case .reshape: return "Reshape"
        case .transpose: return "Transpose"
        case .concat: return "Concat"
        case .squeeze: return "Squeeze"
        case .unsqueeze: return "Unsqueeze"
        case .softmax: return "Softmax"
        case .logSoftmax: return "LogSoftmax"
        case .identity: return "Identity"
        case .dropout: return "Dropout"
        case .pad: return "Pad"
        case .reduceMean: return "ReduceMean"
        case .shape: return "Shape"
        case .gather: return "Gather"
        case .quantizeLinear: return "QuantizeLinear"
        case .dequantizeLinear: return "DequantizeLinear"
        case .fakeQuantWeight: return "FakeQuantWeight"
        case .fakeQuantAct: return "FakeQuantAct"
        case .switchableBatchNorm: return "SwitchableBatchNorm"
        case .switchableLayerNorm: return "SwitchableLayerNorm"
        case .quantize: return "Quantize"
        case .dequantize: return "Dequantize"
        case .qconv: return "QConv"
        case .qgemm: return "QGemm"
        case .requant: return "Requant"
        case .qadd: return "QAdd"
        case .qmaxPool: return "QMaxPool"
        case .qavgPool: return "QAveragePool"
        case .qglobalAvgPool: return "QGlobalAveragePool"
        case .layerNormalization, .gelu, .erf, .sqrt, .reciprocal, .neg, .exp, .pow, .cast, .select, .equal, .less, .not,
             .expand, .constantOfShape, .range, .slice, .split, .reduceSum, .reduceMax:
            return transformerTypeName ?? ""
        }
    }

    /// "" for the default ONNX domain.
    public var domain: String {
        switch self {
        case .fakeQuantWeight, .fakeQuantAct, .switchableBatchNorm, .switchableLayerNorm: return Op.bitswitchDomain
        case _ where isInteger: return Op.bitswitchDomain
        default: return ""
        }
    }

    /// Every op type the importer accepts, with its domain.
    public static let supportedTypes: [(domain: String, type: String)] = [
        "Conv", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Relu", "LeakyRelu", "Clip", "Sigmoid", "HardSigmoid",
        "HardSwish", "Tanh", "BatchNormalization", "MaxPool", "AveragePool", "GlobalAveragePool", "Flatten", "Reshape",
        "Transpose", "Concat", "Squeeze", "Unsqueeze", "Softmax", "LogSoftmax", "Identity", "Dropout", "Pad",
        "ReduceMean", "Shape", "Gather", "QuantizeLinear", "DequantizeLinear",
    ].map { ("", $0) } + Op.transformerTypes.map { ("", $0) } + ["FakeQuantWeight", "FakeQuantAct", "SwitchableBatchNorm", "SwitchableLayerNorm"].map { (Op.bitswitchDomain, $0) }
        + Op.integerTypes.map { (Op.bitswitchDomain, $0) }

    /// The integer dialect's op types (docs/int-ops.md).
    public static let integerTypes = ["Quantize", "Dequantize", "QConv", "QGemm", "Requant", "QAdd", "QMaxPool",
                                      "QAveragePool", "QGlobalAveragePool"]

    /// QConv's own attributes (the rest are Conv's).
    static let qOnly: Set<String> = ["w_shift", "w_bits", "x_zero"]

    /// Ops of the integer dialect.
    public var isInteger: Bool {
        switch self {
        case .quantize, .dequantize, .qconv, .qgemm, .requant, .qadd, .qmaxPool, .qavgPool, .qglobalAvgPool: return true
        default: return false
        }
    }

    /// Attributes in ONNX form, sorted by name, defaults included only where ONNX requires or the value is set.
    public var attributes: [(String, AttrValue)] {
        var a: [(String, AttrValue)] = []
        func put(_ k: String, _ v: AttrValue?) { if let v { a.append((k, v)) } }
        switch self {
        case .conv(let c):
            if c.autoPad != .notSet { put("auto_pad", .string(c.autoPad.rawValue)) }
            put("dilations", c.dilations.map(AttrValue.ints))
            put("group", .int(c.group))
            put("kernel_shape", c.kernelShape.map(AttrValue.ints))
            put("pads", c.pads.map(AttrValue.ints))
            put("strides", c.strides.map(AttrValue.ints))
        case .gemm(let g):
            put("alpha", .float(g.alpha)); put("beta", .float(g.beta))
            put("transA", .int(g.transA ? 1 : 0)); put("transB", .int(g.transB ? 1 : 0))
        case .leakyRelu(let alpha): put("alpha", .float(alpha))
        case .clip(let lo, let hi):
            put("max", hi.map(AttrValue.float)); put("min", lo.map(AttrValue.float))
        case .hardSigmoid(let alpha, let beta): put("alpha", .float(alpha)); put("beta", .float(beta))
        case .batchNormalization(let eps, let mom, let training):
            put("epsilon", .float(eps)); put("momentum", .float(mom))
            if training { put("training_mode", .int(1)) }
        case .maxPool(let p), .averagePool(let p):
            if p.autoPad != .notSet { put("auto_pad", .string(p.autoPad.rawValue)) }
            if p.ceilMode { put("ceil_mode", .int(1)) }
            if case .averagePool = self, p.countIncludePad { put("count_include_pad", .int(1)) }
            put("dilations", p.dilations.map(AttrValue.ints))
            put("kernel_shape", .ints(p.kernelShape))
            put("pads", p.pads.map(AttrValue.ints))
            if case .maxPool = self, p.storageOrder != 0 { put("storage_order", .int(p.storageOrder)) }
            put("strides", p.strides.map(AttrValue.ints))
        case .flatten(let axis): put("axis", .int(axis))
        case .reshape(let allowZero): if allowZero { put("allowzero", .int(1)) }
        case .transpose(let perm): put("perm", perm.map(AttrValue.ints))
        case .concat(let axis): put("axis", .int(axis))
        case .squeeze(let axes), .unsqueeze(let axes): put("axes", axes.map(AttrValue.ints))
        case .softmax(let axis, _), .logSoftmax(let axis, _): put("axis", .int(axis))
        case .dropout(let ratio): if ratio != 0.5 { put("ratio", .float(ratio)) }
        case .pad(let mode, let pads, let value):
            put("mode", .string(mode.rawValue)); put("pads", pads.map(AttrValue.ints))
            if pads != nil { put("value", .float(value)) }
        case .reduceMean(let axes, let keep, let noop):
            put("axes", axes.map(AttrValue.ints)); put("keepdims", .int(keep ? 1 : 0))
            if noop { put("noop_with_empty_axes", .int(1)) }
        case .shape(let start, let end):
            if let end { put("end", .int(end)) }
            if start != 0 { put("start", .int(start)) }
        case .gather(let axis): put("axis", .int(axis))
        case .quantizeLinear(let axis, let saturate, let outType):
            put("axis", .int(axis))
            put("output_dtype", outType.map { .int($0.onnxCode) })
            if !saturate { put("saturate", .int(0)) }
        case .dequantizeLinear(let axis): put("axis", .int(axis))
        case .fakeQuantWeight(let q):
            put("axis", .int(q.axis)); put("bits", .ints(q.bits))
            if q.exactGradient { put("exact_gradient", .int(1)) }
            put("pinned_bits", q.pinnedBits.map(AttrValue.int)); put("stored_bits", .int(q.storedBits))
        case .fakeQuantAct(let q):
            put("bits", .ints(q.bits)); put("pinned_bits", q.pinnedBits.map(AttrValue.int))
            put("signed", .int(q.signed ? 1 : 0))
        case .switchableBatchNorm(let bits, let eps, let mom, let previous):
            put("bits", .ints(bits)); put("epsilon", .float(eps)); put("momentum", .float(mom))
            put("previous", previous.map(AttrValue.string))
        case .switchableLayerNorm(let bits, let axis, let eps):
            put("axis", .int(axis)); put("bits", .ints(bits)); put("epsilon", .float(eps))
        case .quantize(let scale, let zero, let lo, let hi, let to):
            put("hi", .int(hi)); put("lo", .int(lo)); put("scale", .float(scale)); put("to", .string(to.rawValue))
            put("zero", .int(zero))
        case .dequantize(let scale, let zero): put("scale", .float(scale)); put("zero", .int(zero))
        case .qconv(let q):
            a = Op.conv(q.conv).attributes
            put("w_bits", .int(q.wBits)); put("w_shift", .int(q.wShift)); put("x_zero", .int(q.xZero))
            a.sort { $0.0 < $1.0 }
        case .qgemm(let q):
            put("trans_b", .int(q.transB ? 1 : 0)); put("w_bits", .int(q.wBits)); put("w_shift", .int(q.wShift))
            put("x_zero", .int(q.xZero))
        case .requant(let r):
            put("axis", .int(r.axis)); put("hi", .int(r.hi)); put("lo", .int(r.lo)); put("to", .string(r.to.rawValue))
            put("zero", .int(r.zero))
        case .qadd(let q):
            put("a_zero", .int(q.aZero)); put("b_zero", .int(q.bZero)); put("hi", .int(q.hi)); put("lo", .int(q.lo))
            put("m_a", .int(q.ma)); put("m_b", .int(q.mb)); put("n", .int(q.n)); put("to", .string(q.to.rawValue))
            put("zero", .int(q.zero))
        case .qmaxPool(let p):
            a = Op.maxPool(p).attributes
        case .qavgPool(let p, let zero):
            a = Op.averagePool(p).attributes
            put("zero", .int(zero))
            a.sort { $0.0 < $1.0 }
        case .qglobalAvgPool(let zero): put("zero", .int(zero))
        case .matMul, .add, .sub, .mul, .div, .relu, .sigmoid, .hardSwish, .tanh, .globalAveragePool, .identity:
            break
        case .layerNormalization, .gelu, .erf, .sqrt, .reciprocal, .neg, .exp, .pow, .cast, .select, .equal, .less, .not,
             .expand, .constantOfShape, .range, .slice, .split, .reduceSum, .reduceMax:
            a = transformerAttributes
        }
        return a
    }

    /// Builds an op from its ONNX form. `opset` is the model's version of the op's domain; it decides
    /// defaults and semantics that changed between versions. Errors carry no location; callers add it.
    public init(type: String, domain: String, attributes: [String: AttrValue], opset: Int) throws {
        var r = AttributeReader(attributes)
        let dom = (domain == "ai.onnx") ? "" : domain
        func autoPad() throws -> AutoPad {
            let s = try r.string("auto_pad") ?? "NOTSET"
            guard let p = AutoPad(rawValue: s) else {
                throw BitSwitchError(.invalidModel, "auto_pad '\(s)' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID")
            }
            return p
        }
        func bool(_ name: String, _ d: Bool) throws -> Bool { try r.int(name).map { $0 != 0 } ?? d }
        func pool() throws -> PoolAttrs {
            guard let k = try r.ints("kernel_shape") else {
                throw BitSwitchError(.invalidModel, "required attribute 'kernel_shape' is missing")
            }
            return PoolAttrs(kernelShape: k, strides: try r.ints("strides"), pads: try r.ints("pads"),
                             dilations: try r.ints("dilations"), autoPad: try autoPad(),
                             ceilMode: try bool("ceil_mode", false),
                             countIncludePad: try bool("count_include_pad", false),
                             storageOrder: try r.int("storage_order", default: 0))
        }
        func required<T>(_ v: T?, _ name: String) throws -> T {
            guard let v else { throw BitSwitchError(.invalidModel, "required attribute '\(name)' is missing") }
            return v
        }
        func intType() throws -> DType {
            let s = try r.string("to") ?? ""
            guard let t = DType(rawValue: s), [.i8, .u8, .i32].contains(t) else {
                throw BitSwitchError(.invalidModel, "attribute 'to' is '\(s)'; expected i8, u8 or i32")
            }
            return t
        }
        func bitsList() throws -> [Int] {
            guard let b = try r.ints("bits"), !b.isEmpty else {
                throw BitSwitchError(.invalidModel, "required attribute 'bits' is missing")
            }
            return b
        }

        if dom == Op.bitswitchDomain {
            switch type {
            case "FakeQuantWeight":
                self = .fakeQuantWeight(FakeQuantWeightAttrs(
                    bits: try bitsList(), storedBits: try r.int("stored_bits", default: 8),
                    axis: try r.int("axis", default: 0), pinnedBits: try r.int("pinned_bits"),
                    exactGradient: try bool("exact_gradient", false)))
            case "FakeQuantAct":
                self = .fakeQuantAct(FakeQuantActAttrs(bits: try bitsList(), signed: try bool("signed", false),
                                                       pinnedBits: try r.int("pinned_bits")))
            case "SwitchableBatchNorm":
                self = .switchableBatchNorm(bits: try bitsList(), epsilon: try r.float("epsilon", default: 1e-5),
                                            momentum: try r.float("momentum", default: 0.9),
                                            previous: try r.string("previous"))
            case "SwitchableLayerNorm":
                self = .switchableLayerNorm(bits: try bitsList(), axis: try r.int("axis", default: -1),
                                            epsilon: try r.float("epsilon", default: 1e-5))
            case "Quantize":
                self = .quantize(scale: try required(r.float("scale"), "scale"), zero: try r.int("zero", default: 0),
                                 lo: try required(r.int("lo"), "lo"), hi: try required(r.int("hi"), "hi"),
                                 to: try intType())
            case "Dequantize":
                self = .dequantize(scale: try required(r.float("scale"), "scale"), zero: try r.int("zero", default: 0))
            case "QConv":
                let c = try Op(type: "Conv", domain: "", attributes: r.values.filter { !Op.qOnly.contains($0.key) },
                               opset: 22)
                guard case .conv(let conv) = c else { throw BitSwitchError(.internalError, "QConv attributes") }
                _ = try r.ints("kernel_shape"); _ = try r.ints("strides"); _ = try r.ints("pads")
                _ = try r.ints("dilations"); _ = try r.int("group"); _ = try r.string("auto_pad")
                self = .qconv(QConvAttrs(conv: conv, wShift: try r.int("w_shift", default: 0),
                                         wBits: try r.int("w_bits", default: 8), xZero: try r.int("x_zero", default: 0)))
            case "QGemm":
                self = .qgemm(QGemmAttrs(transB: try bool("trans_b", false), wShift: try r.int("w_shift", default: 0),
                                         wBits: try r.int("w_bits", default: 8), xZero: try r.int("x_zero", default: 0)))
            case "Requant":
                self = .requant(RequantAttrs(axis: try r.int("axis", default: 1), lo: try required(r.int("lo"), "lo"),
                                             hi: try required(r.int("hi"), "hi"), zero: try r.int("zero", default: 0),
                                             to: try intType()))
            case "QAdd":
                self = .qadd(QAddAttrs(ma: try required(r.int("m_a"), "m_a"), mb: try required(r.int("m_b"), "m_b"),
                                       n: try required(r.int("n"), "n"), aZero: try r.int("a_zero", default: 0),
                                       bZero: try r.int("b_zero", default: 0), zero: try r.int("zero", default: 0),
                                       lo: try required(r.int("lo"), "lo"), hi: try required(r.int("hi"), "hi"),
                                       to: try intType()))
            case "QMaxPool": self = .qmaxPool(try pool())
            case "QAveragePool": self = .qavgPool(try pool(), zero: try r.int("zero", default: 0))
            case "QGlobalAveragePool": self = .qglobalAvgPool(zero: try r.int("zero", default: 0))
            default:
                throw BitSwitchError(.unsupported, "unsupported operator \(dom)::\(type)", op: type, domain: dom)
            }
            return
        }
        guard dom.isEmpty else {
            throw BitSwitchError(.unsupported, "unsupported operator domain '\(dom)' (op \(type))", op: type, domain: dom)
        }

        switch type {
        case "Conv":
            self = .conv(ConvAttrs(kernelShape: try r.ints("kernel_shape"), strides: try r.ints("strides"),
                                   pads: try r.ints("pads"), dilations: try r.ints("dilations"),
                                   group: try r.int("group", default: 1), autoPad: try autoPad()))
        case "Gemm":
            self = .gemm(GemmAttrs(alpha: try r.float("alpha", default: 1), beta: try r.float("beta", default: 1),
                                   transA: try bool("transA", false), transB: try bool("transB", false)))
        case "MatMul": self = .matMul
        case "Add": self = .add
        case "Sub": self = .sub
        case "Mul": self = .mul
        case "Div": self = .div
        case "Relu": self = .relu
        case "LeakyRelu": self = .leakyRelu(alpha: try r.float("alpha", default: 0.01))
        case "Clip": self = .clip(min: try r.float("min"), max: try r.float("max"))
        case "Sigmoid": self = .sigmoid
        case "HardSigmoid":
            self = .hardSigmoid(alpha: try r.float("alpha", default: 0.2), beta: try r.float("beta", default: 0.5))
        case "HardSwish": self = .hardSwish
        case "Tanh": self = .tanh
        case "BatchNormalization":
            if let spatial = try r.int("spatial"), spatial == 0 {
                throw BitSwitchError(.unsupported, "BatchNormalization with spatial=0 is not supported")
            }
            self = .batchNormalization(epsilon: try r.float("epsilon", default: 1e-5),
                                       momentum: try r.float("momentum", default: 0.9),
                                       trainingMode: try bool("training_mode", false))
        case "MaxPool": self = .maxPool(try pool())
        case "AveragePool": self = .averagePool(try pool())
        case "GlobalAveragePool": self = .globalAveragePool
        case "Flatten": self = .flatten(axis: try r.int("axis", default: 1))
        case "Reshape": self = .reshape(allowZero: try bool("allowzero", false))
        case "Transpose": self = .transpose(perm: try r.ints("perm"))
        case "Concat":
            guard let axis = try r.int("axis") else {
                throw BitSwitchError(.invalidModel, "required attribute 'axis' is missing")
            }
            self = .concat(axis: axis)
        case "Squeeze": self = .squeeze(axes: try r.ints("axes"))
        case "Unsqueeze": self = .unsqueeze(axes: try r.ints("axes"))
        case "Softmax": self = .softmax(axis: try r.int("axis", default: opset < 13 ? 1 : -1), legacy: opset < 13)
        case "LogSoftmax":
            self = .logSoftmax(axis: try r.int("axis", default: opset < 13 ? 1 : -1), legacy: opset < 13)
        case "Identity": self = .identity
        case "Dropout": self = .dropout(ratio: try r.float("ratio", default: 0.5))
        case "Pad":
            let m = try r.string("mode") ?? "constant"
            guard let mode = PadMode(rawValue: m) else {
                throw BitSwitchError(.unsupported, "Pad mode '\(m)' is not one of constant, reflect, edge, wrap")
            }
            let pads = try r.ints("pads") ?? r.ints("paddings")
            self = .pad(mode: mode, pads: pads, value: try r.float("value", default: 0))
        case "ReduceMean":
            self = .reduceMean(axes: try r.ints("axes"), keepDims: try bool("keepdims", true),
                               noopWithEmptyAxes: try bool("noop_with_empty_axes", false))
        case "Shape": self = .shape(start: try r.int("start", default: 0), end: try r.int("end"))
        case "Gather": self = .gather(axis: try r.int("axis", default: 0))
        case "QuantizeLinear":
            if let bs = try r.int("block_size"), bs != 0 {
                throw BitSwitchError(.unsupported, "blocked quantization (block_size=\(bs)) is not supported")
            }
            var outType: DType? = nil
            if let code = try r.int("output_dtype"), code != 0 {
                guard let t = DType(onnxCode: code), [.i8, .u8, .i4, .u4, .i16, .u16].contains(t) else {
                    throw BitSwitchError(.unsupported, "QuantizeLinear output_dtype \(code) is not supported")
                }
                outType = t
            }
            self = .quantizeLinear(axis: try r.int("axis", default: 1), saturate: try bool("saturate", true),
                                   outputType: outType)
        case "DequantizeLinear":
            if let bs = try r.int("block_size"), bs != 0 {
                throw BitSwitchError(.unsupported, "blocked quantization (block_size=\(bs)) is not supported")
            }
            self = .dequantizeLinear(axis: try r.int("axis", default: 1))
        default:
            guard let op = try Op.transformer(type: type, &r, opset: opset) else {
                throw BitSwitchError(.unsupported, "unsupported operator \(type)", op: type, domain: dom)
            }
            self = op
        }
    }
}
