import BitSwitchIR

// Training kernels for the heavy ops: thin adapters over the runtime's BLAS-backed forward/backward functions.

struct ConvKernel: TrainableOpKernel {
    func parameterRoles(node: Node) -> [Int: ParameterRole] { [1: .weight, 2: .bias] }

    private func attrs(_ node: Node) throws -> ConvAttrs {
        guard case .conv(let a) = node.op else { throw BitSwitchError(.internalError, "conv kernel on another op") }
        return a
    }

    func forward(node: Node, inputs: [Tensor?], context: TrainingContext) throws -> (outputs: [Tensor], saved: Any?) {
        // The packed input is kept for the backward pass (about one more copy of the input; the grid kernels'
        // backward would otherwise pack the same input again).
        let r = try convForward(x: required(inputs, 0, node), w: required(inputs, 1, node),
                                b: inputs.count > 2 ? inputs[2] : nil, attrs: attrs(node), keepingGrid: true)
        return ([r.y], r.grid)
    }

    func backward(node: Node, inputs: [Tensor?], outputs: [Tensor], saved: Any?, gradOutputs: [Tensor?],
                  needsGradient: [Bool], context: TrainingContext) throws -> [Tensor?] {
        var result = [Tensor?](repeating: nil, count: inputs.count)
        guard let g = gradOutputs[0] else { return result }
        let hasBias = inputs.count > 2 && inputs[2] != nil
        let r = try convGradients(x: required(inputs, 0, node), w: required(inputs, 1, node), hasBias: hasBias,
                                  gradY: g, attrs: attrs(node), needsDX: needsGradient[0],
                                  inputGrid: saved as? ConvInputGrid)
        if needsGradient[0] { result[0] = r.dx }
        if needsGradient[1] { result[1] = r.dw }
        if hasBias && needsGradient[2] { result[2] = r.db }
        return result
    }
}

struct GemmKernel: TrainableOpKernel {
    func parameterRoles(node: Node) -> [Int: ParameterRole] { [1: .weight, 2: .bias] }

    private func attrs(_ node: Node) throws -> GemmAttrs {
        guard case .gemm(let a) = node.op else { throw BitSwitchError(.internalError, "gemm kernel on another op") }
        return a
    }

    func forward(node: Node, inputs: [Tensor?], context: TrainingContext) throws -> (outputs: [Tensor], saved: Any?) {
        let y = try gemmForward(a: required(inputs, 0, node), b: required(inputs, 1, node),
                                c: inputs.count > 2 ? inputs[2] : nil, attrs: attrs(node))
        return ([y], nil)
    }

    func backward(node: Node, inputs: [Tensor?], outputs: [Tensor], saved: Any?, gradOutputs: [Tensor?],
                  needsGradient: [Bool], context: TrainingContext) throws -> [Tensor?] {
        var result = [Tensor?](repeating: nil, count: inputs.count)
        guard let g = gradOutputs[0] else { return result }
        let c = inputs.count > 2 ? inputs[2] : nil
        let r = try gemmBackward(a: required(inputs, 0, node), b: required(inputs, 1, node), hasC: c != nil,
                                 cShape: c?.shape, gradY: g, attrs: attrs(node))
        if needsGradient[0] { result[0] = r.da }
        if needsGradient[1] { result[1] = r.db }
        if c != nil && needsGradient[2] { result[2] = r.dc }
        return result
    }
}

struct MatMulKernel: TrainableOpKernel {
    func parameterRoles(node: Node) -> [Int: ParameterRole] { [0: .weight, 1: .weight] }

    func forward(node: Node, inputs: [Tensor?], context: TrainingContext) throws -> (outputs: [Tensor], saved: Any?) {
        ([try matMulForward(a: required(inputs, 0, node), b: required(inputs, 1, node))], nil)
    }

    func backward(node: Node, inputs: [Tensor?], outputs: [Tensor], saved: Any?, gradOutputs: [Tensor?],
                  needsGradient: [Bool], context: TrainingContext) throws -> [Tensor?] {
        guard let g = gradOutputs[0] else { return [nil, nil] }
        let r = try matMulBackward(a: required(inputs, 0, node), b: required(inputs, 1, node), gradY: g)
        return [needsGradient[0] ? r.da : nil, needsGradient[1] ? r.db : nil]
    }
}

struct MaxPoolKernel: TrainableOpKernel {
    func forward(node: Node, inputs: [Tensor?], context: TrainingContext) throws -> (outputs: [Tensor], saved: Any?) {
        guard case .maxPool(let attrs) = node.op else { throw BitSwitchError(.internalError, "maxpool kernel on another op") }
        if node.outputs.count > 1 && !node.outputs[1].isEmpty {
            throw BitSwitchError(.unsupported, "training does not support MaxPool's Indices output")
        }
        let r = try maxPoolForward(x: required(inputs, 0, node), attrs: attrs)
        return ([r.y], r.argmax)
    }

    func backward(node: Node, inputs: [Tensor?], outputs: [Tensor], saved: Any?, gradOutputs: [Tensor?],
                  needsGradient: [Bool], context: TrainingContext) throws -> [Tensor?] {
        guard needsGradient[0], let g = gradOutputs[0] else { return [nil] }
        guard let argmax = saved as? [Int32] else { throw BitSwitchError(.internalError, "MaxPool lost its argmax") }
        return [maxPoolBackward(xShape: try required(inputs, 0, node).shape, argmax: argmax, gradY: g)]
    }
}

struct AveragePoolKernel: TrainableOpKernel {
    private func attrs(_ node: Node) throws -> PoolAttrs {
        guard case .averagePool(let a) = node.op else { throw BitSwitchError(.internalError, "avgpool kernel on another op") }
        return a
    }

    func forward(node: Node, inputs: [Tensor?], context: TrainingContext) throws -> (outputs: [Tensor], saved: Any?) {
        ([try averagePoolForward(x: required(inputs, 0, node), attrs: attrs(node))], nil)
    }

    func backward(node: Node, inputs: [Tensor?], outputs: [Tensor], saved: Any?, gradOutputs: [Tensor?],
                  needsGradient: [Bool], context: TrainingContext) throws -> [Tensor?] {
        guard needsGradient[0], let g = gradOutputs[0] else { return [nil] }
        return [try averagePoolBackward(xShape: required(inputs, 0, node).shape, attrs: attrs(node), gradY: g)]
    }
}
