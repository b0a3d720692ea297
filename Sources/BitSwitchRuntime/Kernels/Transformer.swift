import BitSwitchIR

/// Forward evaluation of the transformer-family ops (Evaluate.swift delegates here).
func evaluateTransformer(_ node: Node, _ inputs: [Tensor?], opset: Int) throws -> [Tensor] {
    func input(_ i: Int) -> Tensor? { i < inputs.count ? inputs[i] : nil }
    func required(_ i: Int, _ name: String) throws -> Tensor {
        guard let t = input(i) else { throw BitSwitchError(.invalidModel, "required input \(i) (\(name)) is missing") }
        return t
    }
    switch node.op {
    case .layerNormalization(let axis, let eps):
        let r = try layerNormOp(required(0, "X"), required(1, "Scale"), input(2), axis: axis, epsilon: eps)
        return [r.y, r.mean, r.invStd]
    case .gelu(let tanh): return [try mathOp(tanh ? .geluTanh : .gelu, required(0, "X"), op: "Gelu")]
    case .erf: return [try mathOp(.erf, required(0, "input"), op: "Erf")]
    case .sqrt: return [try mathOp(.sqrt, required(0, "X"), op: "Sqrt")]
    case .reciprocal: return [try mathOp(.reciprocal, required(0, "X"), op: "Reciprocal")]
    case .neg: return [try mathOp(.neg, required(0, "X"), op: "Neg")]
    case .exp: return [try mathOp(.exp, required(0, "input"), op: "Exp")]
    case .pow: return [try powOp(required(0, "X"), required(1, "Y"))]
    case .cast(let to): return [try castTensor(required(0, "input"), to: to)]
    case .select: return [try whereOp(required(0, "condition"), required(1, "X"), required(2, "Y"))]
    case .equal: return [try compareOp(.equal, required(0, "A"), required(1, "B"), op: "Equal")]
    case .less: return [try compareOp(.less, required(0, "A"), required(1, "B"), op: "Less")]
    case .not: return [try notOp(required(0, "X"))]
    case .expand: return [try expandOp(required(0, "input"), required(1, "shape"))]
    case .constantOfShape(let value): return [try constantOfShapeOp(required(0, "input"), value: value)]
    case .range: return [try rangeOp(required(0, "start"), required(1, "limit"), required(2, "delta"))]
    case .slice(let starts, let ends, let axes):
        let x = try required(0, "data")
        if let starts, let ends { return [try sliceOp(x, starts: starts, ends: ends, axes: axes, steps: nil)] }
        return [try sliceOp(x, inputs: inputs)]
    case .split(let axis, let sizes, let num):
        let x = try required(0, "input")
        var sz = sizes
        if sz == nil, let t = input(1) {
            guard t.dtype == .i64 else { throw BitSwitchError(.type, "Split split must be int64, got \(t.dtype)") }
            sz = t.ints
        }
        if let num, sz == nil, num != node.outputs.count {
            throw BitSwitchError(.invalidModel, "Split num_outputs \(num) but the node has \(node.outputs.count) outputs")
        }
        return try splitOp(x, axis: axis, sizes: sz, outputs: node.outputs.count)
    case .reduceSum(let axes, let keep, let noop):
        return [try reduceOp(.sum, required(0, "data"), axes: axes ?? input(1)?.ints, keepDims: keep, noopWithEmptyAxes: noop, op: "ReduceSum")]
    case .reduceMax(let axes, let keep, let noop):
        return [try reduceOp(.max, required(0, "data"), axes: axes ?? input(1)?.ints, keepDims: keep, noopWithEmptyAxes: noop, op: "ReduceMax")]
    default:
        throw BitSwitchError(.internalError, "\(node.op.typeName) is not a transformer-family op")
    }
}
