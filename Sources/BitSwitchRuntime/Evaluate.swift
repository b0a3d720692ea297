import BitSwitchIR

/// Evaluate one node on concrete inputs (nil = absent optional input). Returns one tensor per node output
/// (outputs named "" get a tensor too, so indices line up). Errors carry the node's label, op and opset.
/// Quant-dialect ops run on the kernels their module registered with `TrainingKernelRegistry`, in inference
/// mode at `activeBits` (nil: each op's highest trained bit-width).
public func evaluateNode(_ node: Node, inputs: [Tensor?], opsets: [String: Int], activeBits: Int? = nil) throws -> [Tensor] {
    try evaluateNode(node, inputs: inputs, opsets: opsets, assignment: .uniform(activeBits))
}

/// The same at per-node bit-widths (a resolved `Profile`).
public func evaluateNode(_ node: Node, inputs: [Tensor?], opsets: [String: Int], assignment: BitAssignment) throws -> [Tensor] {
    let opset = opsets[node.op.domain] ?? (node.op.domain.isEmpty ? 17 : 1)
    do {
        for (i, t) in inputs.enumerated() {
            guard let t else { continue }
            guard checkedElementCount(t.shape) == t.count else {
                throw BitSwitchError(.invalidModel, "input \(i) has shape \(shapeString(t.shape)) but holds \(t.count) elements")
            }
        }
        let outs = try evaluate(node, inputs, opset: opset, opsets: opsets, assignment: assignment)
        guard outs.count >= node.outputs.count else {
            throw BitSwitchError(.unsupported, "the node asks for \(node.outputs.count) outputs; this op gives \(outs.count)")
        }
        return Array(outs.prefix(node.outputs.count))
    } catch {
        throw error.bitswitchLocated(node: node.label, op: node.op.typeName, opset: opset)
    }
}

private func evaluate(_ node: Node, _ inputs: [Tensor?], opset: Int, opsets: [String: Int], assignment: BitAssignment) throws -> [Tensor] {
    func input(_ i: Int) -> Tensor? { i < inputs.count ? inputs[i] : nil }
    func required(_ i: Int, _ name: String) throws -> Tensor {
        guard let t = input(i) else { throw BitSwitchError(.invalidModel, "required input \(i) (\(name)) is missing") }
        return t
    }
    let wants = node.outputs.count
    func wantsOutput(_ i: Int) -> Bool { i < wants && !node.outputs[i].isEmpty }

    switch node.op {
    case .conv(let a):
        return [try convForward(x: required(0, "X"), w: required(1, "W"), b: input(2), attrs: a)]
    case .gemm(let a):
        return [try gemmForward(a: required(0, "A"), b: required(1, "B"), c: input(2), attrs: a)]
    case .matMul:
        return [try matMulForward(a: required(0, "A"), b: required(1, "B"))]
    case .add: return [try binaryOp(.add, required(0, "A"), required(1, "B"))]
    case .sub: return [try binaryOp(.sub, required(0, "A"), required(1, "B"))]
    case .mul: return [try binaryOp(.mul, required(0, "A"), required(1, "B"))]
    case .div: return [try binaryOp(.div, required(0, "A"), required(1, "B"))]
    case .relu: return [try unaryOp(.relu, required(0, "X"), op: "Relu")]
    case .leakyRelu(let alpha): return [try unaryOp(.leakyRelu, required(0, "X"), alpha, op: "LeakyRelu")]
    case .sigmoid: return [try unaryOp(.sigmoid, required(0, "X"), op: "Sigmoid")]
    case .hardSigmoid(let alpha, let beta):
        return [try unaryOp(.hardSigmoid, required(0, "X"), alpha, beta, op: "HardSigmoid")]
    case .hardSwish: return [try unaryOp(.hardSwish, required(0, "X"), op: "HardSwish")]
    case .tanh: return [try unaryOp(.tanh, required(0, "X"), op: "Tanh")]
    case .clip(let lo, let hi):
        return [try clipOp(required(0, "input"), minT: input(1), maxT: input(2), attrMin: lo, attrMax: hi)]
    case .batchNormalization(let eps, let momentum, let training):
        if (!training && wants > 1) || wants > 3 {
            throw BitSwitchError(.unsupported, "BatchNormalization with \(wants) outputs (pre-opset-14 training outputs) is not supported")
        }
        return try batchNormOp(required(0, "X"), required(1, "scale"), required(2, "B"), required(3, "input_mean"),
                               required(4, "input_var"), epsilon: eps, momentum: momentum, training: training)
    case .maxPool(let p):
        let x = try required(0, "X")
        let xf = x.dtype == .f32 ? x : try toFloat(x, op: "MaxPool")
        let (y, argmax) = try maxPoolForward(x: xf, attrs: p)
        var outs = [x.dtype == .f32 ? y : try fromFloat(y, dtype: x.dtype)]
        if wantsOutput(1) { outs.append(maxPoolIndices(argmax, xShape: x.shape, yShape: y.shape, storageOrder: p.storageOrder)) }
        else if wants > 1 { outs.append(Tensor.zeros([0], dtype: .i64)) }
        return outs
    case .averagePool(let p):
        return [try averagePoolForward(x: required(0, "X"), attrs: p)]
    case .globalAveragePool:
        return [try globalAveragePoolOp(required(0, "X"))]
    case .flatten(let axis): return [try flattenOp(required(0, "input"), axis: axis)]
    case .reshape(let allowZero):
        return [try reshapeOp(required(0, "data"), required(1, "shape"), allowZero: allowZero)]
    case .transpose(let perm): return [try transposeOp(required(0, "data"), perm: perm)]
    case .concat(let axis):
        return [try concatOp(inputs.compactMap { $0 }, axis: axis)]
    case .squeeze(let axes):
        return [try squeezeOp(required(0, "data"), axes: axes ?? input(1)?.ints)]
    case .unsqueeze(let axes):
        guard let ax = axes ?? input(1)?.ints else {
            throw BitSwitchError(.invalidModel, "Unsqueeze needs axes (attribute or input 1)")
        }
        return [try unsqueezeOp(required(0, "data"), axes: ax)]
    case .softmax(let axis, let legacy):
        return [try softmaxOp(required(0, "input"), axis: axis, legacy: legacy, log: false)]
    case .logSoftmax(let axis, let legacy):
        return [try softmaxOp(required(0, "input"), axis: axis, legacy: legacy, log: true)]
    case .identity: return [try required(0, "input")]
    case .dropout:
        let x = try required(0, "data")
        if let mode = input(2), mode.ints.first ?? 0 != 0, (input(1)?.floats.first ?? 0.5) != 0 {
            throw BitSwitchError(.unsupported, "Dropout with training_mode=true is not evaluated by the inference executor")
        }
        var outs = [x]
        if wants > 1 { outs.append(Tensor(dtype: .bool, shape: x.shape, storage: .bool(.init(repeating: true, count: x.count)))) }
        return outs
    case .pad(let mode, let pads, let value):
        let x = try required(0, "data")
        if let pads {
            return [try padOp(x, mode: mode, pads: pads, axes: nil, value: scalar(value, dtype: x.dtype))]
        }
        let p = try required(1, "pads")
        guard p.dtype == .i64 else { throw BitSwitchError(.type, "Pad pads must be int64, got \(p.dtype)") }
        let fill = input(2).map { $0.count == 1 ? $0.reshapedTo([]) : $0 } ?? scalar(0, dtype: x.dtype)
        guard fill.count == 1 else { throw BitSwitchError(.shape, "Pad constant_value must be a scalar") }
        return [try padOp(x, mode: mode, pads: p.ints, axes: input(3)?.ints, value: fill)]
    case .reduceMean(let axes, let keep, let noop):
        return [try reduceMeanOp(required(0, "data"), axes: axes ?? input(1)?.ints, keepDims: keep, noopWithEmptyAxes: noop)]
    case .shape(let start, let end): return [shapeOp(try required(0, "data"), start: start, end: end)]
    case .gather(let axis): return [try gatherOp(required(0, "data"), required(1, "indices"), axis: axis)]
    case .quantizeLinear(let axis, _, let outType):
        return [try quantizeLinearOp(required(0, "x"), required(1, "y_scale"), input(2), axis: axis, outputType: outType)]
    case .dequantizeLinear(let axis):
        return [try dequantizeLinearOp(required(0, "x"), required(1, "x_scale"), input(2), axis: axis)]
    case .fakeQuantWeight, .fakeQuantAct, .switchableBatchNorm, .switchableLayerNorm:
        guard let k = TrainingKernelRegistry.kernel(opType: node.op.typeName, domain: node.op.domain) else {
            throw BitSwitchError(.unsupported, "\(node.op.domain)::\(node.op.typeName) has no kernel registered; quant-dialect ops are run by the quantization module's kernels (BitSwitchQuant.registerKernels())")
        }
        return try k.forward(node: node, inputs: inputs, context: TrainingContext(training: false, assignment: assignment)).outputs
    case .quantize, .dequantize, .qconv, .qgemm, .requant, .qadd, .qmaxPool, .qavgPool, .qglobalAvgPool:
        return try evaluateInteger(node, inputs)
    case .layerNormalization, .gelu, .erf, .sqrt, .reciprocal, .neg, .exp, .pow, .cast, .select, .equal, .less, .not,
         .expand, .constantOfShape, .range, .slice, .split, .reduceSum, .reduceMax:
        return try evaluateTransformer(node, inputs, opset: opset)
    }
}

/// ONNX MaxPool Indices: int64 flat positions; storage_order 1 numbers each plane column-major.
private func maxPoolIndices(_ argmax: [Int32], xShape: [Int], yShape: [Int], storageOrder: Int) -> Tensor {
    let plane = xShape[2...].reduce(1, *)
    let spatial = Array(xShape[2...])
    let yCount = argmax.count
    var r = [Int64](repeating: 0, count: yCount)
    for i in 0..<yCount {
        let a = Int(argmax[i])
        if storageOrder == 0 || a < 0 { r[i] = Int64(a); continue }
        let p = a / plane
        var rem = a % plane
        var coords = [Int](repeating: 0, count: spatial.count)
        for d in stride(from: spatial.count - 1, through: 0, by: -1) { coords[d] = rem % spatial[d]; rem /= spatial[d] }
        var col = 0, mult = 1
        for d in 0..<spatial.count { col += coords[d] * mult; mult *= spatial[d] }
        r[i] = Int64(p * plane + col)
    }
    return Tensor(shape: yShape, int64s: r)
}

private func toFloat(_ x: Tensor, op: String) throws -> Tensor {
    guard x.dtype == .f16 || x.dtype == .i8 || x.dtype == .u8 else {
        throw BitSwitchError(.type, "\(op) does not support \(x.dtype) input")
    }
    return Tensor(dtype: .f32, shape: x.shape, storage: .f32(x.floats))
}

private func fromFloat(_ y: Tensor, dtype: DType) throws -> Tensor {
    let f = try y.f32("result")
    switch dtype {
    case .i8: return Tensor(dtype: dtype, shape: y.shape, storage: .i8(f.map { Int8(clamping: Int($0)) }))
    case .u8: return Tensor(dtype: dtype, shape: y.shape, storage: .u8(f.map { UInt8(clamping: Int($0)) }))
    default: return Tensor(dtype: dtype, shape: y.shape, storage: .f32(f))
    }
}
