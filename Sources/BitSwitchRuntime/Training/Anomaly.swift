import BitSwitchIR

/// Finding NaN and Inf while training. Loss, gradients and weights are checked after every step (cheap next to the
/// step itself); with `detectAnomaly` every op's forward output and input gradient is checked too.
public enum Anomaly {
    /// The first element of a float tensor that is NaN or ±Inf, or nil (integer tensors are always finite).
    public static func firstNonFinite(_ t: Tensor) -> (index: Int, value: Float)? {
        guard case .f32(let a) = t.storage else { return nil }
        return a.withUnsafeBufferPointer { buf -> (Int, Float)? in
            // A sum is NaN when any element is NaN or ±Inf (or large ones overflow); only then search.
            var s: Float = 0
            for v in buf { s += v * 0 }
            guard !s.isFinite else { return nil }
            for (i, v) in buf.enumerated() where !v.isFinite { return (i, v) }
            return nil
        }
    }

    static func describe(_ v: Float) -> String { v.isNaN ? "NaN" : (v > 0 ? "+Inf" : "-Inf") }
}

extension TrainingGraph {
    /// The node that reads `value` first (a parameter's layer), as "node 'conv1' (Conv)".
    func layerReading(_ value: String) -> String {
        guard let n = graph.nodes.first(where: { $0.inputs.contains(value) }) else { return "no layer" }
        return "layer '\(n.label)' (\(n.op.typeName))"
    }
}

extension Trainer {
    /// An anomaly error located at the current epoch and step.
    func anomaly(_ what: String) -> BitSwitchError {
        BitSwitchError(.training, "epoch \(position.epoch), step \(position.step): \(what); training stopped, the last "
                       + "checkpoint (if any) is kept from before this epoch")
    }

    /// Throws when a gradient holds NaN or Inf, naming the parameter and its layer.
    public func checkGradients(_ grads: [String: Tensor], bits: Int? = nil) throws {
        for name in grads.keys.sorted() {
            guard let g = grads[name], let (i, v) = Anomaly.firstNonFinite(g) else { continue }
            throw anomaly("the gradient of '\(name)' in \(model.layerReading(name)) is \(Anomaly.describe(v)) at "
                          + "element \(i)" + (bits.map { " (\($0)-bit pass)" } ?? ""))
        }
    }

    /// Throws when a trainable parameter or a state value (BN statistics) holds NaN or Inf after an update.
    public func checkWeights() throws {
        for name in model.parameters.map(\.name) + model.stateNames {
            guard let t = model.values[name], let (i, v) = Anomaly.firstNonFinite(t) else { continue }
            throw anomaly("weight '\(name)' of \(model.layerReading(name)) became \(Anomaly.describe(v)) at element "
                          + "\(i) after the update")
        }
    }
}
