import BitSwitchIR
import BitSwitchRuntime
import Foundation

/// The losses of the two distillation modes, on [N, K] logits.
public enum Distillation {
    /// Progressive in-place distillation: (1−α)·CE(student, labels) + α·T²·KL(softmax(teacher/T) ‖ softmax(student/T)),
    /// with the teacher detached (the gradient is for the student's logits only). `correct` counts the student's hits.
    public static func progressiveLoss(student: Tensor, teacher: Tensor, labels: [Int], alpha: Float,
                                       temperature: Float, labelSmoothing: Float = 0) throws -> LossResult {
        let ce = try Loss.crossEntropy(logits: student, labels: labels, labelSmoothing: labelSmoothing)
        let kd = try Loss.distillation(student: student, teacher: teacher, temperature: temperature)
        let a = try floats(ce.gradient), b = try floats(kd.gradient)
        let grad = zip(a, b).map { (1 - alpha) * $0 + alpha * $1 }
        var r = ce
        r.loss = (1 - alpha) * ce.loss + alpha * kd.loss
        r.gradient = Tensor(shape: student.shape, floats: grad)
        return r
    }

    /// PS-KD's soft targets, row by row: (1 − α)·onehot(label) + α·previous, where `previous` holds one probability
    /// row per sample (the previous epoch's prediction; one-hot before the first epoch).
    public static func pskdTargets(labels: [Int], previous: [Float], classes: Int, alpha: Float) throws -> [Float] {
        guard previous.count == labels.count * classes else {
            throw BitSwitchError(.internalError, "PS-KD has \(previous.count) stored probabilities for \(labels.count)×\(classes)")
        }
        var t = previous.map { alpha * $0 }
        for (r, y) in labels.enumerated() {
            guard y >= 0 && y < classes else { throw BitSwitchError(.data, "label \(y) is outside the model's \(classes) classes") }
            t[r * classes + y] += 1 - alpha
        }
        return t
    }

    /// PS-KD's mixing weight in epoch `epoch` (0-based) of `epochs`: α_T·(epoch + 1)/epochs, as PS-KD's reference code.
    public static func pskdAlpha(epoch: Int, epochs: Int, finalAlpha: Float) -> Float {
        finalAlpha * Float(epoch + 1) / Float(max(1, epochs))
    }

    /// Row-wise softmax of [N, K] logits.
    public static func softmaxRows(_ logits: Tensor) throws -> [Float] {
        guard logits.rank >= 2, let n = logits.shape.first, n > 0 else {
            throw BitSwitchError(.training, "logits must be [batch, classes], got \(logits.shape)")
        }
        let z = try floats(logits)
        let k = z.count / n
        var p = [Float](repeating: 0, count: z.count)
        for r in 0..<n {
            var mx = -Float.infinity
            for j in 0..<k { mx = max(mx, z[r * k + j]) }
            var sum = 0.0
            for j in 0..<k { sum += exp(Double(z[r * k + j] - mx)) }
            for j in 0..<k { p[r * k + j] = Float(exp(Double(z[r * k + j] - mx)) / sum) }
        }
        return p
    }

    static func floats(_ t: Tensor) throws -> [Float] {
        guard case .f32(let a) = t.storage else { throw BitSwitchError(.training, "expected float logits, got \(t.dtype)") }
        return a
    }
}
