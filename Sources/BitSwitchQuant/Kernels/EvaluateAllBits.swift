import Foundation
import BitSwitchData
import BitSwitchIR
import BitSwitchRuntime

/// The trained bit set of a quantized graph: the `bits` attribute its quant-dialect ops share, descending.
public func trainedBitWidths(_ g: Graph) throws -> [Int] {
    var found: [Int]? = nil
    for n in g.nodes {
        let bits: [Int]
        switch n.op {
        case .fakeQuantWeight(let a): bits = a.bits
        case .fakeQuantAct(let a): bits = a.bits
        case .switchableBatchNorm(let b, _, _, _): bits = b
        case .switchableLayerNorm(let b, _, _): bits = b
        default: continue
        }
        let sorted = bits.sorted(by: >)
        if let f = found, f != sorted {
            throw BitSwitchError(.invalidModel, "quantizers disagree on the trained bit set: \(f) and \(sorted)",
                                 node: n.label, op: n.op.typeName, domain: n.op.domain)
        }
        found = sorted
    }
    guard let f = found else {
        throw BitSwitchError(.invalidModel, "the model has no fake-quant ops, so it has no bit-widths to evaluate; "
            + "run insert-fake-quant (and train) first")
    }
    return f
}

/// Top-1 accuracy and mean cross-entropy of `graph` at each bit-width of `bits` (default: every trained bit-width,
/// highest first), through the training engine's evaluation path in evaluation mode.
public func evaluateAllBits(graph: Graph, data: Dataset, batchSize: Int = 256, bits: [Int]? = nil,
                           normalization: Normalization? = nil, threads: Int? = nil)
    throws -> [(bits: Int, top1: Double, loss: Double)] {
    registerKernels()
    let trained = try trainedBitWidths(graph)
    let wanted = bits ?? trained
    if let bad = wanted.first(where: { !trained.contains($0) }) {
        throw BitSwitchError(.data, "bit-width \(bad) was not trained; the model's bit-widths are "
            + trained.map(String.init).joined(separator: ","))
    }
    let model = try TrainingGraph(graph: graph, requireGradients: false)
    return try wanted.map { b in
        let e = try evaluateModel(model, on: data, batchSize: batchSize, normalization: normalization, activeBits: b,
                                  threads: threads)
        return (b, e.accuracy, e.loss)
    }
}

/// The table `bitswitch eval --bits` prints: one row per bit-width.
public func formatBitTable(_ rows: [(bits: Int, top1: Double, loss: Double)]) -> String {
    var s = "bits   top-1     loss\n"
    for r in rows {
        let acc = String(format: "%6.2f%%", 100 * r.top1)
        s += "\(String(r.bits).leftPadded(4))  \(acc)  \(String(format: "%.4f", r.loss))\n"
    }
    return s
}

/// The table `bitswitch eval --bits` prints for a language model (a text dataset): per bit-width the mean
/// per-token cross-entropy in nats, the same in bits (bits per byte; per character for ASCII text) and the
/// next-token accuracy.
public func formatLanguageModelBitTable(_ rows: [(bits: Int, top1: Double, loss: Double)]) -> String {
    var s = "bits  nats/token  bits/char  next-byte acc\n"
    for r in rows {
        s += "\(String(r.bits).leftPadded(4))  \(String(format: "%10.4f", r.loss))  "
            + "\(String(format: "%9.4f", r.loss / log(2.0)))  \(String(format: "%12.2f%%", 100 * r.top1))\n"
    }
    return s
}

/// Parses `all`, `8` or `6,4` into nil (every trained bit-width) or a list.
public func parseBitsOption(_ text: String) throws -> [Int]? {
    if text == "all" { return nil }
    let parts = text.split(separator: ",", omittingEmptySubsequences: false)
    let values = parts.compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard !parts.isEmpty, values.count == parts.count else {
        throw BitSwitchError(.data, "--bits takes 'all' or comma-separated bit-widths like 8 or 6,4; got '\(text)'")
    }
    return values
}

private extension String {
    func leftPadded(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}
