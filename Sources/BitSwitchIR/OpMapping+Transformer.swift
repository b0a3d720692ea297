// The transformer ops' side of the one Op <-> ONNX mapping (OpMapping.swift delegates here), so an op of this
// family is added by one case in Op.swift and one line in each function below.

extension Op {
    /// The op types of the transformer family, in the default domain.
    public static let transformerTypes = [
        "LayerNormalization", "Gelu", "Erf", "Sqrt", "Reciprocal", "Neg", "Exp", "Pow", "Cast", "Where", "Equal",
        "Less", "Not", "Expand", "ConstantOfShape", "Range", "Slice", "Split", "ReduceSum", "ReduceMax",
    ]

    /// nil for ops outside the family.
    var transformerTypeName: String? {
        switch self {
        case .layerNormalization: return "LayerNormalization"
        case .gelu: return "Gelu"
        case .erf: return "Erf"
        case .sqrt: return "Sqrt"
        case .reciprocal: return "Reciprocal"
        case .neg: return "Neg"
        case .exp: return "Exp"
        case .pow: return "Pow"
        case .cast: return "Cast"
        case .select: return "Where"
        case .equal: return "Equal"
        case .less: return "Less"
        case .not: return "Not"
        case .expand: return "Expand"
        case .constantOfShape: return "ConstantOfShape"
        case .range: return "Range"
        case .slice: return "Slice"
        case .split: return "Split"
        case .reduceSum: return "ReduceSum"
        case .reduceMax: return "ReduceMax"
        default: return nil
        }
    }

    var transformerAttributes: [(String, AttrValue)] {
        var a: [(String, AttrValue)] = []
        func put(_ k: String, _ v: AttrValue?) { if let v { a.append((k, v)) } }
        switch self {
        case .layerNormalization(let axis, let eps): put("axis", .int(axis)); put("epsilon", .float(eps))
        case .gelu(let tanh): if tanh { put("approximate", .string("tanh")) }
        case .cast(let to): put("to", .int(to.onnxCode))
        case .constantOfShape(let v): put("value", v.map(AttrValue.tensor))
        case .slice(let starts, let ends, let axes):
            put("axes", axes.map(AttrValue.ints)); put("ends", ends.map(AttrValue.ints))
            put("starts", starts.map(AttrValue.ints))
        case .split(let axis, let sizes, let num):
            put("axis", .int(axis)); put("num_outputs", num.map(AttrValue.int)); put("split", sizes.map(AttrValue.ints))
        case .reduceSum(let axes, let keep, let noop), .reduceMax(let axes, let keep, let noop):
            put("axes", axes.map(AttrValue.ints)); put("keepdims", .int(keep ? 1 : 0))
            if noop { put("noop_with_empty_axes", .int(1)) }
        default: break
        }
        return a
    }

    /// Builds a transformer-family op from its ONNX form; nil when `type` is not one of the family.
    static func transformer(type: String, _ r: inout AttributeReader, opset: Int) throws -> Op? {
        func bool(_ name: String, _ d: Bool) throws -> Bool { try r.int(name).map { $0 != 0 } ?? d }
        func reduceArgs() throws -> (axes: [Int]?, keep: Bool, noop: Bool) {
            (try r.ints("axes"), try bool("keepdims", true), try bool("noop_with_empty_axes", false))
        }
        switch type {
        case "LayerNormalization":
            let stash = try r.int("stash_type", default: 1)
            guard stash == 1 else {
                throw BitSwitchError(.unsupported, "LayerNormalization stash_type \(stash) is not supported (only 1, float32)")
            }
            return .layerNormalization(axis: try r.int("axis", default: -1), epsilon: try r.float("epsilon", default: 1e-5))
        case "Gelu":
            let mode = try r.string("approximate") ?? "none"
            guard mode == "none" || mode == "tanh" else {
                throw BitSwitchError(.invalidModel, "Gelu approximate '\(mode)' is not one of none, tanh")
            }
            return .gelu(tanh: mode == "tanh")
        case "Erf": return .erf
        case "Sqrt": return .sqrt
        case "Reciprocal": return .reciprocal
        case "Neg": return .neg
        case "Exp": return .exp
        case "Pow": return .pow
        case "Cast":
            guard let code = try r.int("to") else {
                throw BitSwitchError(.invalidModel, "required attribute 'to' is missing")
            }
            _ = try r.int("saturate")   // only meaningful for float8 targets, which DType(onnxCode:) refuses
            guard let t = DType(onnxCode: code) else {
                throw BitSwitchError(.unsupported, "Cast to ONNX element type \(code) is not supported")
            }
            return .cast(to: t)
        case "Where": return .select
        case "Equal": return .equal
        case "Less": return .less
        case "Not": return .not
        case "Expand": return .expand
        case "ConstantOfShape":
            let v = try r.tensor("value")
            if let v, v.count != 1 {
                throw BitSwitchError(.invalidModel, "ConstantOfShape value must hold one element, got \(v.count)")
            }
            return .constantOfShape(value: v)
        case "Range": return .range
        case "Slice":
            let starts = try r.ints("starts"), ends = try r.ints("ends"), axes = try r.ints("axes")
            if opset < 10 {
                guard let starts, let ends else {
                    throw BitSwitchError(.invalidModel, "Slice (opset < 10) needs the starts and ends attributes")
                }
                return .slice(starts: starts, ends: ends, axes: axes)
            }
            return .slice(starts: nil, ends: nil, axes: nil)
        case "Split":
            return .split(axis: try r.int("axis", default: 0), sizes: try r.ints("split"), numOutputs: try r.int("num_outputs"))
        case "ReduceSum":
            let (axes, keep, noop) = try reduceArgs()
            return .reduceSum(axes: axes, keepDims: keep, noopWithEmptyAxes: noop)
        case "ReduceMax":
            let (axes, keep, noop) = try reduceArgs()
            return .reduceMax(axes: axes, keepDims: keep, noopWithEmptyAxes: noop)
        default: return nil
        }
    }
}
