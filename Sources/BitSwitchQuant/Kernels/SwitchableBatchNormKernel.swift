import BitSwitchIR
import BitSwitchRuntime

/// ai.bitswitch::SwitchableBatchNorm(x, scale, bias, mean, var) — one BatchNorm per trained bit-width
/// (METHOD.md §3). Each parameter is [|bits|, C]; the row is the index of the active profile in `bits` (pinned
/// layers do not change it: BN follows the network's profile). Transitional BN (`previous` set) has [|bits|², C]
/// parameters, one row per (previous layer's bits, own bits) pair (`BitAssignment.batchNormRow`). The math is the float BN kernel's
/// (`BatchNormMath`): batch statistics and a running-stat update of that row only in training, running statistics
/// in evaluation.
struct SwitchableBatchNormKernel: TrainableOpKernel {
    func parameterRoles(node: Node) -> [Int: ParameterRole] {
        [1: .normAffine, 2: .normAffine, 3: .state, 4: .state]
    }

    struct Saved { var row: Int; var channels: Int; var rowScale: [Float]; var state: Any }

    /// Row `row` of a [rows, C] parameter.
    static func row(_ t: Tensor, _ row: Int, rows: Int, _ what: String) throws -> [Float] {
        let a = try t.quantFloats("SwitchableBatchNorm \(what)")
        guard t.rank == 2, t.shape[0] == rows else {
            throw BitSwitchError(.shape, "SwitchableBatchNorm \(what) must be [\(rows), C] (one row per bit-width, or per pair of them for transitional BN), got \(t.shape)")
        }
        let c = t.shape[1]
        return Array(a[(row * c)..<((row + 1) * c)])
    }

    static func replacingRow(_ t: Tensor, _ row: Int, with values: [Float]) -> Tensor {
        guard case .f32(var a) = t.storage else { return t }
        let c = values.count
        a.replaceSubrange((row * c)..<((row + 1) * c), with: values)
        return floatTensor(t.shape, a)
    }

    func forward(node: Node, inputs: [Tensor?], context: TrainingContext) throws -> (outputs: [Tensor], saved: Any?) {
        guard case .switchableBatchNorm(let bits, let eps, let momentum, let previous) = node.op else {
            throw BitSwitchError(.internalError, "SwitchableBatchNorm kernel on \(node.op.typeName)")
        }
        let selected = try context.assignment.batchNormRow(node: node.name, bits: bits, previous: previous)
        let profile = (bits: selected.bits, index: selected.row)
        let rows = Op.switchableBatchNormRows(bits: bits, previous: previous)
        let xt = try requiredInput(inputs, 0, "X")
        let x = try xt.quantFloats("SwitchableBatchNorm input X")
        let meanT = try requiredInput(inputs, 3, "mean"), varT = try requiredInput(inputs, 4, "var")
        let scale = try Self.row(requiredInput(inputs, 1, "scale"), profile.index, rows: rows, "scale")
        let bias = try Self.row(requiredInput(inputs, 2, "bias"), profile.index, rows: rows, "bias")
        let mean = try Self.row(meanT, profile.index, rows: rows, "mean")
        let variance = try Self.row(varT, profile.index, rows: rows, "var")
        let r = try BatchNormMath.forward(x: x, shape: xt.shape, scale: scale, bias: bias, runningMean: mean,
                                          runningVar: variance, epsilon: eps, momentum: momentum,
                                          training: context.training)
        if let (newMean, newVar) = r.newRunning {
            if node.inputs.count > 3 && !node.inputs[3].isEmpty {
                context.updateState(node.inputs[3], Self.replacingRow(meanT, profile.index, with: newMean))
            }
            if node.inputs.count > 4 && !node.inputs[4].isEmpty {
                context.updateState(node.inputs[4], Self.replacingRow(varT, profile.index, with: newVar))
            }
        }
        return ([floatTensor(xt.shape, r.y)],
                Saved(row: profile.index, channels: scale.count, rowScale: scale, state: r.savedState))
    }

    func backward(node: Node, inputs: [Tensor?], outputs: [Tensor], saved: Any?, gradOutputs: [Tensor?],
                  needsGradient: [Bool], context: TrainingContext) throws -> [Tensor?] {
        var result = [Tensor?](repeating: nil, count: inputs.count)
        guard let gt = gradOutputs[0], needsGradient.contains(true) else { return result }
        guard let s = saved as? Saved else { throw BitSwitchError(.internalError, "SwitchableBatchNorm lost its statistics") }
        let xt = try requiredInput(inputs, 0, "X")
        let g = try BatchNormMath.backward(x: xt.quantFloats("SwitchableBatchNorm input X"), shape: xt.shape,
                                           gradY: gt.quantFloats("gradient"), scale: s.rowScale, saved: s.state,
                                           needInput: needsGradient[0])
        if needsGradient[0], let dx = g.dx { result[0] = floatTensor(xt.shape, dx) }
        for (i, rowGrad) in [(1, g.dScale), (2, g.dBias)] where i < needsGradient.count && needsGradient[i] {
            let p = try requiredInput(inputs, i, i == 1 ? "scale" : "bias")
            var full = [Float](repeating: 0, count: p.count)
            full.replaceSubrange((s.row * s.channels)..<((s.row + 1) * s.channels), with: rowGrad)
            result[i] = floatTensor(p.shape, full)
        }
        return result
    }
}
