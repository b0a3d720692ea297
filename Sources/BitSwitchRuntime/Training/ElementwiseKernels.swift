import BitSwitchIR
import Foundation

/// Add, Sub, Mul, Div with NumPy broadcasting; gradients are summed back over the broadcast dimensions.
struct BinaryKernel: TrainableOpKernel {
    enum Kind { case add, sub, mul, div }
    let kind: Kind

    func parameterRoles(node: Node) -> [Int: ParameterRole] {
        // A constant added to an activation is a bias (PyTorch's Linear exported as MatMul + Add).
        kind == .add || kind == .sub ? [0: .bias, 1: .bias] : [:]
    }

    func forward(node: Node, inputs: [Tensor?], context: TrainingContext) throws -> (outputs: [Tensor], saved: Any?) {
        let a = try required(inputs, 0, node), b = try required(inputs, 1, node)
        let x = try a.trainingFloats("input A"), y = try b.trainingFloats("input B")
        let bc = try Broadcast(a.shape, b.shape)
        let n = bc.outShape.reduce(1, *)
        let kind = self.kind
        let out: [Float]
        if a.shape == b.shape {
            out = filledFloats(n) { o in
                x.withUnsafeBufferPointer { xp in y.withUnsafeBufferPointer { yp in
                    guard let xs = xp.baseAddress, let ys = yp.baseAddress, let os = o.baseAddress else { return }
                    parallelFor(n, minChunk: elementwiseChunk) { r in
                        switch kind {
                        case .add: for i in r { os[i] = xs[i] + ys[i] }
                        case .sub: for i in r { os[i] = xs[i] - ys[i] }
                        case .mul: for i in r { os[i] = xs[i] * ys[i] }
                        case .div: for i in r { os[i] = xs[i] / ys[i] }
                        }
                    }
                } }
            }
        } else {
            out = filledFloats(n) { o in
                x.withUnsafeBufferPointer { xp in y.withUnsafeBufferPointer { yp in
                    bc.forEachRow { start, ao, bo, count, sa, sb in
                        for i in 0..<count {
                            let u = xp[ao + i * sa], v = yp[bo + i * sb]
                            switch kind {
                            case .add: o[start + i] = u + v
                            case .sub: o[start + i] = u - v
                            case .mul: o[start + i] = u * v
                            case .div: o[start + i] = u / v
                            }
                        }
                    }
                } }
            }
        }
        return ([floatTensor(bc.outShape, out)], bc)
    }

    func backward(node: Node, inputs: [Tensor?], outputs: [Tensor], saved: Any?, gradOutputs: [Tensor?],
                  needsGradient: [Bool], context: TrainingContext) throws -> [Tensor?] {
        guard let gt = gradOutputs[0] else { return [nil, nil] }
        let g = try gt.trainingFloats("gradient")
        let a = try required(inputs, 0, node), b = try required(inputs, 1, node)
        guard let bc = saved as? Broadcast else { throw BitSwitchError(.internalError, "binary op lost its broadcast") }
        var ga: Tensor?, gb: Tensor?
        switch kind {
        case .add, .sub:
            if needsGradient[0] { ga = floatTensor(a.shape, reduceBroadcastGradient(g, bc, operandShape: a.shape, useA: true)) }
            if needsGradient[1] {
                var r = reduceBroadcastGradient(g, bc, operandShape: b.shape, useA: false)
                if kind == .sub { for i in r.indices { r[i] = -r[i] } }
                gb = floatTensor(b.shape, r)
            }
        case .mul, .div:
            let x = try a.trainingFloats("input A"), y = try b.trainingFloats("input B")
            let n = g.count
            let isDiv = kind == .div
            // Full-size partials first, then reduce each to its operand's shape.
            if needsGradient[0] {
                var full = [Float](repeating: 0, count: n)
                bc.forEachRow { start, _, bo, count, _, sb in
                    for i in 0..<count {
                        let v = y[bo + i * sb]
                        full[start + i] = isDiv ? g[start + i] / v : g[start + i] * v
                    }
                }
                ga = floatTensor(a.shape, reduceBroadcastGradient(full, bc, operandShape: a.shape, useA: true))
            }
            if needsGradient[1] {
                var full = [Float](repeating: 0, count: n)
                bc.forEachRow { start, ao, bo, count, sa, sb in
                    for i in 0..<count {
                        let u = x[ao + i * sa]
                        if isDiv { let v = y[bo + i * sb]; full[start + i] = -g[start + i] * u / (v * v) }
                        else { full[start + i] = g[start + i] * u }
                    }
                }
                gb = floatTensor(b.shape, reduceBroadcastGradient(full, bc, operandShape: b.shape, useA: false))
            }
        }
        return [ga, gb] + [Tensor?](repeating: nil, count: max(0, inputs.count - 2))
    }
}

/// Pointwise activations. Each backward uses the output where that is enough (Relu, Sigmoid, Tanh) and the
/// input otherwise; the subgradient at kinks follows PyTorch (zero at 0 for Relu, zero outside (min, max) for Clip).
struct ActivationKernel: TrainableOpKernel {
    enum Kind {
        case relu, leakyRelu(Float), clip, sigmoid, tanh, hardSwish, hardSigmoid(Float, Float), identity
    }
    let kind: Kind

    private func clipBounds(_ node: Node, _ inputs: [Tensor?]) throws -> (Float, Float) {
        if case .clip(let lo?, let hi?) = node.op { return (lo, hi) }
        var lo = -Float.infinity, hi = Float.infinity
        if case .clip(let l, let h) = node.op { if let l { lo = l }; if let h { hi = h } }
        if inputs.count > 1, let t = inputs[1] {
            guard let v = try t.trainingFloats("Clip min").first else { throw BitSwitchError(.invalidModel, "Clip min is empty") }
            lo = v
        }
        if inputs.count > 2, let t = inputs[2] {
            guard let v = try t.trainingFloats("Clip max").first else { throw BitSwitchError(.invalidModel, "Clip max is empty") }
            hi = v
        }
        return (lo, hi)
    }

    func forward(node: Node, inputs: [Tensor?], context: TrainingContext) throws -> (outputs: [Tensor], saved: Any?) {
        let xt = try required(inputs, 0, node)
        let x = try xt.trainingFloats("input")
        let n = x.count
        var bounds: (Float, Float) = (0, 0)
        if case .clip = kind { bounds = try clipBounds(node, inputs) }
        if case .identity = kind { return ([xt], nil) }
        let kind = self.kind
        let y = filledFloats(n) { o in
            x.withUnsafeBufferPointer { xp in
                switch kind {
                case .relu:
                    if let src = xp.baseAddress, let dst = o.baseAddress {
                        parallelFor(n, minChunk: elementwiseChunk) { r in
                            vectorClamp(src + r.lowerBound, dst + r.lowerBound, r.count, 0, .infinity)
                        }
                    }
                case .leakyRelu(let a): for i in 0..<n { o[i] = xp[i] >= 0 ? xp[i] : a * xp[i] }
                case .clip:
                    if let src = xp.baseAddress, let dst = o.baseAddress {
                        parallelFor(n, minChunk: elementwiseChunk) { r in
                            vectorClamp(src + r.lowerBound, dst + r.lowerBound, r.count, bounds.0, bounds.1)
                        }
                    }
                case .sigmoid: for i in 0..<n { o[i] = 1 / (1 + expf(-xp[i])) }
                case .tanh: for i in 0..<n { o[i] = tanhf(xp[i]) }
                case .hardSwish: for i in 0..<n { o[i] = xp[i] * Swift.min(Swift.max(xp[i] + 3, 0), 6) / 6 }
                case .hardSigmoid(let a, let b): for i in 0..<n { o[i] = Swift.min(Swift.max(a * xp[i] + b, 0), 1) }
                case .identity: break
                }
            }
        }
        return ([floatTensor(xt.shape, y)], nil)
    }

    func backward(node: Node, inputs: [Tensor?], outputs: [Tensor], saved: Any?, gradOutputs: [Tensor?],
                  needsGradient: [Bool], context: TrainingContext) throws -> [Tensor?] {
        var result = [Tensor?](repeating: nil, count: inputs.count)
        guard needsGradient[0], let gt = gradOutputs[0] else { return result }
        if case .identity = kind { result[0] = gt; return result }
        let g = try gt.trainingFloats("gradient")
        let xt = try required(inputs, 0, node)
        let x = try xt.trainingFloats("input")
        let y = try outputs[0].trainingFloats("output")
        guard g.count == x.count else { throw BitSwitchError(.internalError, "gradient size differs from input") }
        let n = g.count
        var bounds: (Float, Float) = (0, 0)
        if case .clip = kind { bounds = try clipBounds(node, inputs) }
        let kind = self.kind
        let dx = filledFloats(n) { o in
            g.withUnsafeBufferPointer { gp in x.withUnsafeBufferPointer { xp in y.withUnsafeBufferPointer { yp in
                switch kind {
                case .relu:
                    if let g = gp.baseAddress, let m = yp.baseAddress, let d = o.baseAddress {
                        parallelFor(n, minChunk: elementwiseChunk) { r in
                            let i = r.lowerBound
                            vectorMaskedPass(g + i, m + i, d + i, r.count, 0, .infinity)
                        }
                    }
                case .leakyRelu(let a): for i in 0..<n { o[i] = xp[i] > 0 ? gp[i] : a * gp[i] }
                case .clip:
                    if let g = gp.baseAddress, let m = xp.baseAddress, let d = o.baseAddress {
                        parallelFor(n, minChunk: elementwiseChunk) { r in
                            let i = r.lowerBound
                            vectorMaskedPass(g + i, m + i, d + i, r.count, bounds.0, bounds.1)
                        }
                    }
                case .sigmoid: for i in 0..<n { o[i] = gp[i] * yp[i] * (1 - yp[i]) }
                case .tanh: for i in 0..<n { o[i] = gp[i] * (1 - yp[i] * yp[i]) }
                case .hardSwish:
                    for i in 0..<n {
                        let v = xp[i]
                        o[i] = v < -3 ? 0 : (v <= 3 ? gp[i] * (v / 3 + 0.5) : gp[i])
                    }
                case .hardSigmoid(let a, let b):
                    for i in 0..<n { let u = a * xp[i] + b; o[i] = u > 0 && u < 1 ? a * gp[i] : 0 }
                case .identity: break
                }
            } } }
        }
        result[0] = floatTensor(xt.shape, dx)
        return result
    }
}

/// Dropout: identity in evaluation; in training an inverted-dropout mask drawn from the context's generator.
struct DropoutKernel: TrainableOpKernel {
    func forward(node: Node, inputs: [Tensor?], context: TrainingContext) throws -> (outputs: [Tensor], saved: Any?) {
        let xt = try required(inputs, 0, node)
        var ratio: Float = 0.5
        if case .dropout(let r) = node.op { ratio = r }
        if inputs.count > 1, let t = inputs[1], let r = try t.trainingFloats("Dropout ratio").first { ratio = r }
        if inputs.count > 2, let t = inputs[2], t.ints.first == 0 { ratio = 0 }
        let x = try xt.trainingFloats("input")
        var outs: [Tensor]
        var mask: [Float]? = nil
        if !context.training || ratio <= 0 {
            outs = [xt]
        } else {
            guard ratio < 1 else { throw BitSwitchError(.invalidModel, "Dropout ratio must be below 1, got \(ratio)") }
            let keep = 1 / (1 - ratio)
            var m = [Float](repeating: 0, count: x.count)
            for i in m.indices {
                let u = context.rng.nextFloat()
                m[i] = u >= ratio ? keep : 0
            }
            var y = x
            for i in y.indices { y[i] *= m[i] }
            mask = m
            outs = [floatTensor(xt.shape, y)]
        }
        if node.outputs.count > 1 {
            let bits: [Bool] = mask.map { $0.map { $0 != 0 } } ?? [Bool](repeating: true, count: x.count)
            outs.append(Tensor(dtype: .bool, shape: xt.shape, storage: .bool(bits)))
        }
        return (outs, mask)
    }

    func backward(node: Node, inputs: [Tensor?], outputs: [Tensor], saved: Any?, gradOutputs: [Tensor?],
                  needsGradient: [Bool], context: TrainingContext) throws -> [Tensor?] {
        var result = [Tensor?](repeating: nil, count: inputs.count)
        guard needsGradient[0], let gt = gradOutputs[0] else { return result }
        guard let m = saved as? [Float] else { result[0] = gt; return result }
        var g = try gt.trainingFloats("gradient")
        for i in g.indices { g[i] *= m[i] }
        result[0] = floatTensor(gt.shape, g)
        return result
    }
}
