import BitSwitchIR

/// BatchNormalization over [N, C, spatial...].
///
/// Training mode normalises with the batch statistics (biased variance, as the normalisation itself uses) and
/// updates the running statistics with ONNX momentum semantics, `running = momentum * running + (1 - momentum) * batch`,
/// taking the UNBIASED batch variance (m / (m - 1)) for the running variance, as PyTorch does, so a model trained here
/// and one trained in PyTorch carry the same running statistics. Evaluation mode uses the running statistics.
struct BatchNormKernel: TrainableOpKernel {
    struct Saved {
        var mean: [Float]
        var invStd: [Float]
        var batchStatistics: Bool
    }

    func parameterRoles(node: Node) -> [Int: ParameterRole] {
        [1: .normAffine, 2: .normAffine, 3: .state, 4: .state]
    }

    func forward(node: Node, inputs: [Tensor?], context: TrainingContext) throws -> (outputs: [Tensor], saved: Any?) {
        guard case .batchNormalization(let eps, let momentum, _) = node.op else {
            throw BitSwitchError(.internalError, "BatchNorm kernel on another op")
        }
        let xt = try required(inputs, 0, node)
        let x = try xt.trainingFloats("X")
        let scale = try required(inputs, 1, node).trainingFloats("scale")
        let bias = try required(inputs, 2, node).trainingFloats("B")
        let rmT = try required(inputs, 3, node), rvT = try required(inputs, 4, node)
        let rm = try rmT.trainingFloats("input_mean"), rv = try rvT.trainingFloats("input_var")
        let out = try BatchNormMath.forward(x: x, shape: xt.shape, scale: scale, bias: bias, runningMean: rm,
                                            runningVar: rv, epsilon: eps, momentum: momentum,
                                            training: context.training)
        if let (newMean, newVar) = out.newRunning {
            context.updateState(node.inputs[3], floatTensor(rmT.shape, newMean))
            context.updateState(node.inputs[4], floatTensor(rvT.shape, newVar))
        }
        var outs = [floatTensor(xt.shape, out.y)]
        if node.outputs.count > 1 { outs.append(floatTensor(rmT.shape, out.newRunning?.0 ?? rm)) }
        if node.outputs.count > 2 { outs.append(floatTensor(rvT.shape, out.newRunning?.1 ?? rv)) }
        return (outs, out.saved)
    }

    func backward(node: Node, inputs: [Tensor?], outputs: [Tensor], saved: Any?, gradOutputs: [Tensor?],
                  needsGradient: [Bool], context: TrainingContext) throws -> [Tensor?] {
        var result = [Tensor?](repeating: nil, count: inputs.count)
        guard let gt = gradOutputs[0] else { return result }
        guard let s = saved as? Saved else { throw BitSwitchError(.internalError, "BatchNorm lost its statistics") }
        let xt = try required(inputs, 0, node)
        let scaleT = try required(inputs, 1, node), biasT = try required(inputs, 2, node)
        let g = try BatchNormMath.backward(x: xt.trainingFloats("X"), shape: xt.shape,
                                           gradY: gt.trainingFloats("gradient"),
                                           scale: scaleT.trainingFloats("scale"), saved: s,
                                           needInput: needsGradient[0])
        if needsGradient[0], let dx = g.dx { result[0] = floatTensor(xt.shape, dx) }
        if needsGradient[1] { result[1] = floatTensor(scaleT.shape, g.dScale) }
        if needsGradient[2] { result[2] = floatTensor(biasT.shape, g.dBias) }
        return result
    }
}

/// The numerics of batch normalisation, shared with plug-in kernels (switchable BN selects one row of its
/// per-bit-width parameters and calls these).
public enum BatchNormMath {
    public struct Forward {
        public var y: [Float]
        /// New (running mean, running var) in training mode; nil in evaluation mode.
        public var newRunning: ([Float], [Float])?
        var saved: BatchNormKernel.Saved
        public var savedState: Any { saved }
    }
    public struct Gradients {
        public var dx: [Float]?
        public var dScale: [Float]
        public var dBias: [Float]
    }

    static func layout(_ shape: [Int], channels: Int) throws -> (n: Int, c: Int, s: Int) {
        guard shape.count >= 2 else { throw BitSwitchError(.shape, "BatchNormalization needs rank >= 2, got \(shape)") }
        let c = shape[1]
        guard c == channels else {
            throw BitSwitchError(.shape, "BatchNormalization parameters have \(channels) channels, input has \(c)")
        }
        return (shape[0], c, shape.dropFirst(2).reduce(1, *))
    }

    public static func forward(x: [Float], shape: [Int], scale: [Float], bias: [Float], runningMean: [Float],
                               runningVar: [Float], epsilon: Float, momentum: Float,
                               training: Bool) throws -> Forward {
        let (n, c, s) = try layout(shape, channels: scale.count)
        guard bias.count == c, runningMean.count == c, runningVar.count == c else {
            throw BitSwitchError(.shape, "BatchNormalization parameters must all have \(c) elements")
        }
        let m = n * s
        var mean = [Float](repeating: 0, count: c)
        var invStd = [Float](repeating: 0, count: c)
        var newRunning: ([Float], [Float])? = nil
        if training {
            guard m > 1 else {
                throw BitSwitchError(.training, "BatchNormalization in training mode needs more than one value per channel (batch \(n), spatial \(s))")
            }
            var newMean = runningMean, newVar = runningVar
            x.withUnsafeBufferPointer { xb in mean.withUnsafeMutableBufferPointer { mb in
            invStd.withUnsafeMutableBufferPointer { ib in newMean.withUnsafeMutableBufferPointer { nmb in
            newVar.withUnsafeMutableBufferPointer { nvb in
                guard let xp = xb.baseAddress else { return }
                // One channel per task, reduced in a fixed order: the result does not depend on the thread count.
                // Channels split across threads; within a chunk, images outer and channels inner so memory is read
                // in order. Each channel is still summed over images 0..<n in the same order: the result does not
                // depend on the thread count. Per-image partial sums in Float, accumulated in Double; two passes,
                // because one-pass variance of post-ReLU activations loses digits.
                parallelFor(c) { r in
                    var sum = [Double](repeating: 0, count: r.count), sq = sum
                    for b in 0..<n {
                        for ch in r { sum[ch - r.lowerBound] += Double(vectorSum(xp + (b * c + ch) * s, s)) }
                    }
                    for ch in r { mb[ch] = Float(sum[ch - r.lowerBound] / Double(m)) }
                    for b in 0..<n {
                        for ch in r {
                            sq[ch - r.lowerBound] += Double(vectorSquaredDeviation(xp + (b * c + ch) * s, s, mb[ch]))
                        }
                    }
                    for ch in r {
                        let varBiased = sq[ch - r.lowerBound] / Double(m)
                        ib[ch] = Float(1 / (varBiased + Double(epsilon)).squareRoot())
                        let unbiased = Float(varBiased * Double(m) / Double(m - 1))
                        nmb[ch] = momentum * runningMean[ch] + (1 - momentum) * mb[ch]
                        nvb[ch] = momentum * runningVar[ch] + (1 - momentum) * unbiased
                    }
                }
            } } } } }
            newRunning = (newMean, newVar)
        } else {
            for ch in 0..<c {
                mean[ch] = runningMean[ch]
                invStd[ch] = 1 / (runningVar[ch] + epsilon).squareRoot()
            }
        }
        let y = filledFloats(x.count) { o in
            x.withUnsafeBufferPointer { xb in
                guard let xp = xb.baseAddress, let op = o.baseAddress else { return }
                parallelFor(n * c, minChunk: max(1, 4096 / max(s, 1))) { r in
                    for row in r {
                        let ch = row % c
                        let a = scale[ch] * invStd[ch]
                        let sh = bias[ch] - mean[ch] * a
                        let src = xp + row * s, dst = op + row * s
                        for i in 0..<s { dst[i] = src[i] * a + sh }
                    }
                }
            }
        }
        return Forward(y: y, newRunning: newRunning,
                       saved: BatchNormKernel.Saved(mean: mean, invStd: invStd, batchStatistics: training))
    }

    public static func backward(x: [Float], shape: [Int], gradY: [Float], scale: [Float], saved: Any,
                                needInput: Bool) throws -> Gradients {
        guard let sv = saved as? BatchNormKernel.Saved else {
            throw BitSwitchError(.internalError, "BatchNorm backward got foreign saved state")
        }
        let (n, c, s) = try layout(shape, channels: scale.count)
        let m = n * s
        var dScale = [Float](repeating: 0, count: c)
        var dBias = [Float](repeating: 0, count: c)
        x.withUnsafeBufferPointer { xb in gradY.withUnsafeBufferPointer { gb in
        dScale.withUnsafeMutableBufferPointer { sb in dBias.withUnsafeMutableBufferPointer { bb in
            guard let xp = xb.baseAddress, let gp = gb.baseAddress else { return }
            parallelFor(c) { r in
                var sg = [Double](repeating: 0, count: r.count), sgx = sg
                for b in 0..<n {
                    for ch in r {
                        let base = (b * c + ch) * s
                        let (pg, pgx) = vectorGradientSums(gp + base, xp + base, s, sv.mean[ch])
                        sg[ch - r.lowerBound] += Double(pg); sgx[ch - r.lowerBound] += Double(pgx)
                    }
                }
                for ch in r {
                    bb[ch] = Float(sg[ch - r.lowerBound])
                    sb[ch] = Float(sgx[ch - r.lowerBound]) * sv.invStd[ch]
                }
            }
        } } } }
        var dx: [Float]? = nil
        if needInput {
            dx = filledFloats(x.count) { o in
                x.withUnsafeBufferPointer { xb in gradY.withUnsafeBufferPointer { gb in
                    guard let xp = xb.baseAddress, let gp = gb.baseAddress, let op = o.baseAddress else { return }
                    parallelFor(n * c, minChunk: max(1, 4096 / max(s, 1))) { r in
                        for row in r {
                            let ch = row % c
                            let mu = sv.mean[ch], inv = sv.invStd[ch]
                            let k = scale[ch] * inv
                            let src = xp + row * s, g = gp + row * s, dst = op + row * s
                            if sv.batchStatistics {
                                // dx = k · (g − mean(g) − x̂ · mean(g · x̂)), folded into dx = α·g + β·x + γ
                                let mg = dBias[ch] / Float(m), mgx = dScale[ch] / Float(m)
                                let alpha = k, beta = -k * inv * mgx, gamma = -k * mg + k * inv * mgx * mu
                                for i in 0..<s { dst[i] = alpha * g[i] + beta * src[i] + gamma }
                            } else {
                                for i in 0..<s { dst[i] = k * g[i] }
                            }
                        }
                    }
                } }
            }
        }
        return Gradients(dx: dx, dScale: dScale, dBias: dBias)
    }
}
