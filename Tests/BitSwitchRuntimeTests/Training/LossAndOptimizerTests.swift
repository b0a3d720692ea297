import Testing
import Foundation
import BitSwitchIR
@testable import BitSwitchRuntime

// Reference values computed once with torch 2.13 (torch.nn.functional, torch.optim); see the comments for the calls.
@Suite struct LossTests {
    let z = Tensor(shape: [3, 4], floats: [1.0, 2.0, -0.5, 0.3, 0.1, -1.2, 0.7, 2.2, -0.3, 0.0, 0.4, -2.0])
    let labels = [1, 3, 0]
    let teacher = Tensor(shape: [3, 4], floats: [0.5, 1.0, -1.0, 0.0, 1.0, -1.0, 0.2, 1.5, 0.0, 0.3, 0.9, -1.0])

    func finiteDifference(_ f: (Tensor) throws -> Float, at t: Tensor, h: Float = 1e-2) rethrows -> [Double] {
        try (0..<t.count).map { i in
            var p = t.floats, m = t.floats
            p[i] += h; m[i] -= h
            return Double(try f(Tensor(shape: t.shape, floats: p)) - f(Tensor(shape: t.shape, floats: m))) / Double(2 * h)
        }
    }

    @Test func crossEntropyMatchesTorch() throws {
        // F.cross_entropy(z, y) and F.cross_entropy(z, y, label_smoothing=0.1)
        let plain = try Loss.crossEntropy(logits: z, labels: labels)
        #expect(abs(plain.loss - 0.7752818465232849) < 1e-6)
        #expect(plain.correct == 2)
        let smooth = try Loss.crossEntropy(logits: z, labels: labels, labelSmoothing: 0.1)
        #expect(abs(smooth.loss - 0.8827818632125854) < 1e-6)
        let fd = try finiteDifference({ try Loss.crossEntropy(logits: $0, labels: labels, labelSmoothing: 0.1).loss }, at: z)
        for (a, f) in zip(smooth.gradient.floats, fd) { #expect(abs(Double(a) - f) < 1e-3) }
    }

    @Test func distillationMatchesTorch() throws {
        // F.kl_div(F.log_softmax(z/T,1), F.softmax(t/T,1), reduction='batchmean') * T*T with T = 2
        let kd = try Loss.distillation(student: z, teacher: teacher, temperature: 2)
        #expect(abs(kd.loss - 0.09654810279607773) < 1e-6)
        let fd = try finiteDifference({ try Loss.distillation(student: $0, teacher: teacher, temperature: 2).loss }, at: z)
        for (a, f) in zip(kd.gradient.floats, fd) { #expect(abs(Double(a) - f) < 1e-3) }
        // Identical outputs: no loss, no gradient.
        let same = try Loss.distillation(student: z, teacher: z, temperature: 2)
        #expect(abs(same.loss) < 1e-6)
        #expect(same.gradient.floats.allSatisfy { abs($0) < 1e-7 })
    }

    @Test func softCrossEntropyEqualsHardOnOneHot() throws {
        var onehot = [Float](repeating: 0, count: 12)
        for (r, y) in labels.enumerated() { onehot[r * 4 + y] = 1 }
        let soft = try Loss.softCrossEntropy(logits: z, targets: onehot)
        let hard = try Loss.crossEntropy(logits: z, labels: labels)
        #expect(abs(soft.loss - hard.loss) < 1e-6)
        for (a, b) in zip(soft.gradient.floats, hard.gradient.floats) { #expect(abs(a - b) < 1e-7) }
    }

    @Test func badLabelsThrow() {
        #expect(throws: BitSwitchError.self) { try Loss.crossEntropy(logits: z, labels: [1, 4, 0]) }
        #expect(throws: BitSwitchError.self) { try Loss.crossEntropy(logits: z, labels: [1]) }
    }
}

@Suite struct OptimizerTests {
    let p0: [Float] = [0.5, -1.0, 2.0, 0.25]
    let grads: [[Float]] = [[0.1, -0.2, 0.3, 0.0], [-0.05, 0.4, 0.1, -0.3], [0.2, 0.2, -0.1, 0.05]]

    func run(_ kind: OptimizerKind, lr: Float, wd: Float) throws -> [Float] {
        let opt = try Optimizer(kind: kind, groups: [ParameterGroup(name: "all", parameters: ["p"], weightDecay: wd)])
        var params = ["p": Tensor(shape: [4], floats: p0)]
        for g in grads { try opt.step(parameters: &params, gradients: ["p": Tensor(shape: [4], floats: g)], learningRate: lr) }
        return params["p"]!.floats
    }

    func expectClose(_ a: [Float], _ b: [Float], _ tol: Float = 2e-6) {
        for (x, y) in zip(a, b) { #expect(abs(x - y) <= tol * max(1, abs(y)), "\(a) vs \(b)") }
    }

    @Test func matchesTorchOptim() throws {
        // torch.optim.SGD(lr=0.1, weight_decay=0.01) and with momentum=0.9 (and nesterov=True)
        expectClose(try run(.sgd(), lr: 0.1, wd: 0.01), [0.473516464, -1.03700292, 1.96407604, 0.274220735])
        expectClose(try run(.sgd(momentum: 0.9), lr: 0.1, wd: 0.01), [0.45963037, -1.03623068, 1.89861357, 0.30056873])
        expectClose(try run(.sgd(momentum: 0.9, nesterov: true), lr: 0.1, wd: 0.01),
                    [0.437227309, -1.06964636, 1.87300467, 0.319682926])
        // torch.optim.Adam(lr=0.01, weight_decay=0.01), torch.optim.AdamW(lr=0.01, weight_decay=0.1)
        expectClose(try run(.adam(), lr: 0.01, wd: 0.01), [0.479990721, -0.998297632, 1.97588718, 0.251896828])
        expectClose(try run(.adamW(), lr: 0.01, wd: 0.1), [0.479279667, -0.995872855, 1.97083247, 0.261307836])
    }

    @Test func groupsHaveTheirOwnRateAndDecay() throws {
        let opt = try Optimizer(kind: .sgd(), groups: [ParameterGroup(name: "w", parameters: ["w"], lrMultiplier: 1, weightDecay: 0.5),
                                                      ParameterGroup(name: "b", parameters: ["b"], lrMultiplier: 0.1)])
        var params = ["w": Tensor(shape: [1], floats: [2]), "b": Tensor(shape: [1], floats: [2])]
        let g = Tensor(shape: [1], floats: [1])
        try opt.step(parameters: &params, gradients: ["w": g, "b": g], learningRate: 0.5)
        #expect(params["w"]!.floats == [2 - 0.5 * (1 + 0.5 * 2)])
        #expect(params["b"]!.floats == [2 - 0.05 * 1])
        #expect(throws: BitSwitchError.self) {
            try Optimizer(kind: .adam(), groups: [ParameterGroup(name: "a", parameters: ["x"]), ParameterGroup(name: "b", parameters: ["x"])])
        }
    }

    @Test func stateRoundTripsThroughTensors() throws {
        let a = try Optimizer(kind: .adam(), groups: [ParameterGroup(name: "all", parameters: ["p"])])
        var pa = ["p": Tensor(shape: [4], floats: p0)]
        try a.step(parameters: &pa, gradients: ["p": Tensor(shape: [4], floats: grads[0])], learningRate: 0.01)
        let b = try Optimizer(kind: .adam(), groups: [ParameterGroup(name: "all", parameters: ["p"])])
        try b.loadState(Dictionary(uniqueKeysWithValues: a.stateTensors()))
        var pb = pa
        for g in grads.dropFirst() {
            try a.step(parameters: &pa, gradients: ["p": Tensor(shape: [4], floats: g)], learningRate: 0.01)
            try b.step(parameters: &pb, gradients: ["p": Tensor(shape: [4], floats: g)], learningRate: 0.01)
        }
        #expect(pa == pb)
    }

    @Test func gradientClippingMatchesTorch() throws {
        // clip_grad_norm_([a, b], max_norm=1.0) with grads [3, 4] and [12]: norm 13
        var g = ["a": Tensor(shape: [2], floats: [3, 4]), "b": Tensor(shape: [1], floats: [12])]
        let norm = try clipGradientNorm(&g, maxNorm: 1)
        #expect(norm == 13)
        expectClose(g["a"]!.floats, [0.23076921701431274, 0.307692289352417])
        expectClose(g["b"]!.floats, [0.923076868057251])
        var small = ["a": Tensor(shape: [1], floats: [0.5])]
        try clipGradientNorm(&small, maxNorm: 1)
        #expect(small["a"]!.floats == [0.5])
    }

    @Test func schedules() {
        let cos = LearningRateSchedule(baseRate: 1, decay: .cosine(), warmupSteps: 0, totalSteps: 10)
        #expect(cos.rate(at: 0) == 1)
        #expect(abs(cos.rate(at: 5) - 0.5) < 1e-6)
        #expect(abs(cos.rate(at: 10)) < 1e-6)
        let warm = LearningRateSchedule(baseRate: 0.1, decay: .cosine(), warmupSteps: 4, totalSteps: 14)
        #expect(abs(warm.rate(at: 0) - 0.025) < 1e-7)
        #expect(abs(warm.rate(at: 3) - 0.1) < 1e-7)
        #expect(abs(warm.rate(at: 4) - 0.1) < 1e-7)
        #expect(abs(warm.rate(at: 9) - 0.05) < 1e-6)
        let step = LearningRateSchedule(baseRate: 1, decay: .step(every: 3, gamma: 0.1), warmupSteps: 2, totalSteps: 20)
        #expect(step.rate(at: 1) == 1)
        #expect(step.rate(at: 4) == 1)
        #expect(abs(step.rate(at: 5) - 0.1) < 1e-7)
        #expect(abs(step.rate(at: 11) - 0.001) < 1e-9)
    }
}
