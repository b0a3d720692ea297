import BitSwitchIR

/// Samples for a model with several data inputs (a transformer encoder's `input_ids`, `attention_mask`,
/// `token_type_ids`): one tensor per graph input, all sharing the leading sample axis, as ONNX Runtime's calibration
/// readers hand them over (a dictionary from input name to array). Unlabelled: post-training calibration and
/// comparison against the float model need no labels.
public struct InputSamples: Sendable, Equatable {
    /// Input name → [count, ...] tensor.
    public var tensors: [String: Tensor]
    /// The samples along axis 0 of every tensor.
    public let count: Int

    /// Every tensor must have rank ≥ 1 and the same first dimension.
    public init(_ tensors: [String: Tensor]) throws {
        guard let first = tensors.first else { throw BitSwitchError(.data, "no input tensors") }
        for (name, t) in tensors where t.rank == 0 || t.shape[0] != first.value.shape.first {
            throw BitSwitchError(.data, "input '\(name)' has shape \(t.shape) but input '\(first.key)' has "
                                 + "\(first.value.shape): every input needs the same number of samples on axis 0")
        }
        self.tensors = tensors
        count = first.value.shape[0]
    }

    private init(checked tensors: [String: Tensor], count: Int) {
        self.tensors = tensors
        self.count = count
    }

    /// The samples at `indices`, in that order.
    public func subset(_ indices: [Int]) -> InputSamples {
        var out: [String: Tensor] = [:]
        for (name, t) in tensors { out[name] = t.rows(indices) }
        return InputSamples(checked: out, count: indices.count)  // same first dimension everywhere by construction
    }

    /// The samples start..<end as one feed dictionary.
    public func feeds(_ range: Range<Int>) -> [String: Tensor] {
        tensors.mapValues { $0.rows(Array(range)) }
    }
}

extension Tensor {
    /// The rows (indices along axis 0) at `indices`, in that order.
    func rows(_ indices: [Int]) -> Tensor {
        let per = shape.dropFirst().reduce(1, *)
        func pick<T>(_ a: [T]) -> [T] {
            var out: [T] = []
            out.reserveCapacity(indices.count * per)
            for i in indices { out.append(contentsOf: a[(i * per)..<((i + 1) * per)]) }
            return out
        }
        let s: TensorStorage
        switch storage {
        case .f32(let a): s = .f32(pick(a))
        case .i8(let a): s = .i8(pick(a))
        case .u8(let a): s = .u8(pick(a))
        case .i32(let a): s = .i32(pick(a))
        case .i64(let a): s = .i64(pick(a))
        case .bool(let a): s = .bool(pick(a))
        case .f64(let a): s = .f64(pick(a))
        case .i16(let a): s = .i16(pick(a))
        case .u16(let a): s = .u16(pick(a))
        case .u32(let a): s = .u32(pick(a))
        case .u64(let a): s = .u64(pick(a))
        }
        return Tensor(dtype: dtype, shape: [indices.count] + shape.dropFirst(), storage: s)
    }
}
