import BitSwitchIR

/// A PyTorch QAT export (torch.onnx of `prepare_qat` fake-quant modules) quantizes its float weights in the graph:
/// `Identity(w) → QuantizeLinear(per-channel) → DequantizeLinear`. This computes each such QuantizeLinear of a constant
/// once, like onnxruntime's QuantizeLinear (`saturate(roundHalfEven(x / scale) + zero)`, one f32 division), so
/// the weight becomes an int8 initializer read by its DequantizeLinear, the form `quantize_static` writes.
func foldWeightQuantizers(_ graph: Graph) -> Graph {
    var g = graph
    func constant(_ name: String) -> Tensor? {
        if let t = g.initializers[name] { return t }
        guard let n = g.nodes.first(where: { $0.outputs.first == name }), case .identity = n.op else { return nil }
        return constant(n.inputs[0])
    }
    var folded = Set<Int>()
    for (i, n) in g.nodes.enumerated() {
        guard case .quantizeLinear(let axis, _, let outType) = n.op, n.inputs.count >= 2,
              let x = constant(n.inputs[0]), x.dtype == .f32, let s = g.initializers[n.inputs[1]], s.dtype == .f32
        else { continue }
        let z = n.inputs.count > 2 && !n.inputs[2].isEmpty ? g.initializers[n.inputs[2]] : nil
        if n.inputs.count > 2 && !n.inputs[2].isEmpty && z == nil { continue }
        let dtype = z?.dtype ?? outType ?? .u8
        guard dtype == .i8 || dtype == .u8, let range = dtype.integerRange else { continue }
        let xs = x.floats, scales = s.floats, zeros = z?.ints ?? [0]
        let rank = x.rank, a = axis < 0 ? axis + rank : axis
        guard scales.count == 1 || (a >= 0 && a < rank && x.shape[a] == scales.count),
              zeros.count == 1 || zeros.count == scales.count else { continue }
        let inner = scales.count == 1 ? 1 : x.shape[(a + 1)...].reduce(1, *)
        var q = [Int](repeating: 0, count: xs.count)
        for j in xs.indices {
            let c = scales.count == 1 ? 0 : (j / inner) % scales.count
            let v = (xs[j] / scales[c]).rounded(.toNearestOrEven)
            let zero = zeros.count == 1 ? zeros[0] : zeros[c]
            q[j] = v.isNaN ? zero : Int(max(Float(range.lowerBound - zero), min(Float(range.upperBound - zero), v))) + zero
        }
        let t = dtype == .i8 ? Tensor(dtype: .i8, shape: x.shape, storage: .i8(q.map { Int8($0) }))
                             : Tensor(dtype: .u8, shape: x.shape, storage: .u8(q.map { UInt8($0) }))
        g.setInitializer(n.outputs[0], t)
        folded.insert(i)
    }
    guard !folded.isEmpty else { return graph }
    g.nodes = g.nodes.enumerated().filter { !folded.contains($0.offset) }.map(\.element)
    _ = g.removeDeadCode()
    return g
}
