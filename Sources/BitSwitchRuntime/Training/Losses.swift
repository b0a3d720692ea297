import BitSwitchIR
import Foundation

/// A loss value averaged over the batch, its gradient with respect to the logits, and top-1 hits.
public struct LossResult: Sendable {
    public var loss: Float
    public var gradient: Tensor
    /// Rows whose arg-max logit equals the label (0 when there are no hard labels).
    public var correct: Int
}

/// Losses on [N, K] logits. All are means over the batch, like PyTorch's default reductions
/// (`reduction='mean'` for cross-entropy, `'batchmean'` for KL).
public enum Loss {
    /// Cross-entropy against hard labels with label smoothing ε: the target is (1 − ε)·onehot + ε/K,
    /// as `torch.nn.functional.cross_entropy(..., label_smoothing=ε)`.
    ///
    /// Per-token form: logits [N, T, …, V] with N·T·… labels (a language model's [N, T, V] against [N, T]) take the
    /// cross-entropy at every position over the last axis, averaged over all positions (PyTorch's
    /// `cross_entropy(logits.view(-1, V), labels.view(-1))`); `correct` counts positions.
    public static func crossEntropy(logits: Tensor, labels: [Int], labelSmoothing: Float = 0) throws -> LossResult {
        let (n, k) = try rowsAndClasses(logits, labels: labels.count)
        guard labels.count == n else {
            throw BitSwitchError(.training, "\(labels.count) labels for a batch of \(n) logits")
        }
        guard labelSmoothing >= 0 && labelSmoothing < 1 else {
            throw BitSwitchError(.training, "label smoothing must be in [0, 1), got \(labelSmoothing)")
        }
        for y in labels where y < 0 || y >= k {
            throw BitSwitchError(.data, "label \(y) is outside the model's \(k) classes")
        }
        let z = try logits.trainingFloats("logits")
        let off = Double(labelSmoothing) / Double(k), on = 1 - Double(labelSmoothing) + off
        var total = 0.0
        var correct = 0
        var grad = [Float](repeating: 0, count: n * k)
        let invN = 1 / Double(n)
        for r in 0..<n {
            let row = r * k
            var mx = -Float.infinity, arg = 0
            for j in 0..<k where z[row + j] > mx { mx = z[row + j]; arg = j }
            if arg == labels[r] { correct += 1 }
            var sum = 0.0
            for j in 0..<k { sum += exp(Double(z[row + j] - mx)) }
            let lse = Double(mx) + log(sum)
            for j in 0..<k {
                let q = j == labels[r] ? on : off
                let logp = Double(z[row + j]) - lse
                total -= q * logp
                grad[row + j] = Float((exp(logp) - q) * invN)
            }
        }
        return LossResult(loss: Float(total * invN), gradient: floatTensor(logits.shape, grad), correct: correct)
    }

    /// Cross-entropy against soft targets (rows of probabilities, e.g. PS-KD's mixed targets).
    public static func softCrossEntropy(logits: Tensor, targets: [Float]) throws -> LossResult {
        let (n, k) = try rowsAndClasses(logits)
        guard targets.count == n * k else {
            throw BitSwitchError(.training, "soft targets have \(targets.count) values for \(n)×\(k) logits")
        }
        let z = try logits.trainingFloats("logits")
        var total = 0.0
        var grad = [Float](repeating: 0, count: n * k)
        let invN = 1 / Double(n)
        for r in 0..<n {
            let row = r * k
            let lse = logSumExp(z, row, k)
            var tsum = 0.0
            for j in 0..<k { tsum += Double(targets[row + j]) }
            for j in 0..<k {
                let logp = Double(z[row + j]) - lse
                total -= Double(targets[row + j]) * logp
                grad[row + j] = Float((exp(logp) * tsum - Double(targets[row + j])) * invN)
            }
        }
        return LossResult(loss: Float(total * invN), gradient: floatTensor(logits.shape, grad), correct: 0)
    }

    /// Distillation term T² · KL(softmax(teacher/T) ‖ softmax(student/T)), averaged over the batch, with the teacher
    /// detached: the gradient is for the student's logits only, T · (p_s − p_t) / N.
    public static func distillation(student: Tensor, teacher: Tensor, temperature: Float) throws -> LossResult {
        let (n, k) = try rowsAndClasses(student)
        guard teacher.shape == student.shape else {
            throw BitSwitchError(.training, "teacher logits \(teacher.shape) differ from student logits \(student.shape)")
        }
        guard temperature > 0 else { throw BitSwitchError(.training, "temperature must be positive, got \(temperature)") }
        let zs = try student.trainingFloats("student logits"), zt = try teacher.trainingFloats("teacher logits")
        let t = Double(temperature)
        var total = 0.0
        var grad = [Float](repeating: 0, count: n * k)
        var s = [Float](repeating: 0, count: k), u = [Float](repeating: 0, count: k)
        for r in 0..<n {
            let row = r * k
            for j in 0..<k { s[j] = Float(Double(zs[row + j]) / t); u[j] = Float(Double(zt[row + j]) / t) }
            let lseS = logSumExp(s, 0, k), lseT = logSumExp(u, 0, k)
            for j in 0..<k {
                let logPs = Double(s[j]) - lseS, logPt = Double(u[j]) - lseT
                let pt = exp(logPt)
                if pt > 0 { total += pt * (logPt - logPs) }
                grad[row + j] = Float(t * (exp(logPs) - pt) / Double(n))
            }
        }
        return LossResult(loss: Float(t * t * total / Double(n)), gradient: floatTensor(student.shape, grad),
                          correct: 0)
    }

    /// Top-1 hits of [N, K] logits against labels.
    public static func correctCount(logits: Tensor, labels: [Int]) throws -> Int {
        let (n, k) = try rowsAndClasses(logits, labels: labels.count)
        let z = try logits.trainingFloats("logits")
        var c = 0
        for r in 0..<min(n, labels.count) {
            var mx = -Float.infinity, arg = 0
            for j in 0..<k where z[r * k + j] > mx { mx = z[r * k + j]; arg = j }
            if arg == labels[r] { c += 1 }
        }
        return c
    }

    /// Rows and classes of logits scored against `labels` labels: [N, K…] with one label per sample, or, when there
    /// are more labels than samples, one label per position of [N, T, …, V] (classes on the last axis).
    static func rowsAndClasses(_ t: Tensor, labels: Int) throws -> (Int, Int) {
        let (n, k) = try rowsAndClasses(t)
        guard labels != n, t.rank >= 3, let v = t.shape.last, v > 0 else { return (n, k) }
        let positions = t.shape.dropLast().reduce(1, *)
        guard labels == positions else {
            throw BitSwitchError(.training, "\(labels) labels fit neither the \(n) samples nor the \(positions) positions "
                                 + "of logits \(t.shape)")
        }
        return (positions, v)
    }

    static func rowsAndClasses(_ t: Tensor) throws -> (Int, Int) {
        guard t.rank >= 2, let n = t.shape.first else {
            throw BitSwitchError(.training, "logits must be [batch, classes], got \(t.shape)")
        }
        let k = t.shape.dropFirst().reduce(1, *)
        guard n > 0, k > 0 else { throw BitSwitchError(.training, "logits must be non-empty, got \(t.shape)") }
        return (n, k)
    }

    static func logSumExp(_ z: [Float], _ start: Int, _ k: Int) -> Double {
        var mx = -Float.infinity
        for j in 0..<k { mx = max(mx, z[start + j]) }
        var sum = 0.0
        for j in 0..<k { sum += exp(Double(z[start + j] - mx)) }
        return Double(mx) + log(sum)
    }
}
