import BitSwitchIR
#if canImport(Glibc)
import Glibc
#endif

// Training kernels of the transformer family: LayerNormalization, Gelu, Erf (forward = the inference kernels).

/// The float LayerNormalization training kernel, for a plug-in op built on it (the quant dialect's
/// SwitchableLayerNorm runs it on one row of its per-bit-width affine).
public func layerNormalizationTrainingKernel() -> any TrainableOpKernel { LayerNormKernel() }

struct LayerNormKernel: TrainableOpKernel {
    func parameterRoles(node: Node) -> [Int: ParameterRole] { [1: .normAffine, 2: .normAffine] }

    func forward(node: Node, inputs: [Tensor?], context: TrainingContext) throws -> (outputs: [Tensor], saved: Any?) {
        let outs = try evaluateTransformer(node, inputs, opset: 17)
        return (Array(outs.prefix(node.outputs.count)), outs.count > 2 ? (outs[1], outs[2]) : nil)
    }

    func backward(node: Node, inputs: [Tensor?], outputs: [Tensor], saved: Any?, gradOutputs: [Tensor?],
                  needsGradient: [Bool], context: TrainingContext) throws -> [Tensor?] {
        guard case .layerNormalization(let axis, _) = node.op, let x = inputs[0], let scale = inputs[1],
              let (meanT, invT) = saved as? (Tensor, Tensor) else {
            throw BitSwitchError(.internalError, "LayerNormalization backward without its forward state")
        }
        var grads = [Tensor?](repeating: nil, count: inputs.count)
        guard let dyT = gradOutputs.first ?? nil else { return grads }
        if gradOutputs.dropFirst().contains(where: { $0 != nil }) {
            throw BitSwitchError(.unsupported, "gradients through LayerNormalization's Mean/InvStdDev outputs")
        }
        let a = try normalizeAxis(axis, rank: x.rank, what: "LayerNormalization axis")
        let normShape = Array(x.shape[a...])
        guard scale.shape == normShape || scale.count == normShape.reduce(1, *),
              inputs.count < 3 || inputs[2] == nil || inputs[2]!.count == scale.count else {
            throw BitSwitchError(.unsupported, "LayerNormalization training needs Scale and B of the normalized shape \(shapeString(normShape))")
        }
        let xs = try x.f32("LayerNormalization X"), s = try scale.f32("LayerNormalization Scale")
        let dy = try dyT.f32("LayerNormalization dY"), mu = try meanT.f32("mean"), inv = try invT.f32("invStd")
        let inner = normShape.reduce(1, *), outer = inner > 0 ? xs.count / inner : 0
        var dx = [Float](repeating: 0, count: xs.count)
        var ds = [Float](repeating: 0, count: inner), db = [Float](repeating: 0, count: inner)
        for o in 0..<outer {
            let base = o * inner
            var sumG = 0.0, sumGX = 0.0
            for i in 0..<inner {
                let xh = (xs[base + i] - mu[o]) * inv[o]
                let g = dy[base + i] * s[i]
                sumG += Double(g); sumGX += Double(g * xh)
                ds[i] += dy[base + i] * xh
                db[i] += dy[base + i]
            }
            let mg = Float(sumG / Double(inner)), mgx = Float(sumGX / Double(inner))
            for i in 0..<inner {
                let xh = (xs[base + i] - mu[o]) * inv[o]
                dx[base + i] = inv[o] * (dy[base + i] * s[i] - mg - xh * mgx)
            }
        }
        if needsGradient[0] { grads[0] = Tensor(shape: x.shape, floats: dx) }
        if needsGradient.count > 1, needsGradient[1] { grads[1] = Tensor(shape: scale.shape, floats: ds) }
        if inputs.count > 2, let b = inputs[2], needsGradient[2] { grads[2] = Tensor(shape: b.shape, floats: db) }
        return grads
    }
}

/// Gelu (erf or tanh form) and Erf.
struct SmoothActivationKernel: TrainableOpKernel {
    func forward(node: Node, inputs: [Tensor?], context: TrainingContext) throws -> (outputs: [Tensor], saved: Any?) {
        (try evaluateTransformer(node, inputs, opset: 20), nil)
    }

    func backward(node: Node, inputs: [Tensor?], outputs: [Tensor], saved: Any?, gradOutputs: [Tensor?],
                  needsGradient: [Bool], context: TrainingContext) throws -> [Tensor?] {
        guard let x = inputs[0], let dyT = gradOutputs.first ?? nil, needsGradient[0] else { return [nil] }
        let xs = try x.f32("\(node.op.typeName) input"), dy = try dyT.f32("\(node.op.typeName) dY")
        let derivative: (Float) -> Float
        switch node.op {
        case .erf: derivative = { 1.1283791670955126 * expf(-$0 * $0) }
        case .gelu(false):
            derivative = { v in 0.5 * (1 + erff(v * 0.70710678118654752)) + v * 0.3989422804014327 * expf(-0.5 * v * v) }
        case .gelu(true):
            derivative = { v in
                let k: Float = 0.79788456080286536
                let t = tanhf(k * (v + 0.044715 * v * v * v))
                return 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * k * (1 + 3 * 0.044715 * v * v)
            }
        default: throw BitSwitchError(.internalError, "no smooth-activation gradient for \(node.op.typeName)")
        }
        return [Tensor(shape: x.shape, floats: (0..<xs.count).map { dy[$0] * derivative(xs[$0]) })]
    }
}
