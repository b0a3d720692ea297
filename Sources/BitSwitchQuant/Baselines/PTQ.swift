import BitSwitchData
import BitSwitchIR
import BitSwitchRuntime

/// Post-training quantization, the no-training baseline: on a graph straight out of `insertFakeQuant` (weight
/// scales already set by the initialisation rule of METHOD.md §1), sets every activation scale of every trained
/// bit-width from `samples` training samples (the first of a permutation seeded by `seed`).
///
/// Calibration rule: a = max(p99.9 / hi, p0.1 / lo) of the quantizer's input, so that the 0.1–99.9 percentile range
/// fits the quantizer's own integer range. It equals the LSQ initialisation (p99.9 − p0.1)/(hi − lo) of METHOD.md §2
/// for ReLU outputs and centred inputs, but not for a signed quantizer fed non-negative data (a [0, 1] image
/// input): there the initialisation covers only [0, 0.5] — harmless once LSQ trains the scale, fatal without
/// training. Evaluation mode (running BN statistics, as at inference).
///
/// Cost: one forward per bit-width. The forward runs node by node over every calibration sample (in chunks of
/// `chunkSize` samples, the batch the kernels see), and each quantizer is calibrated when its input has been
/// produced for all samples — so it sees the outputs of the already calibrated layers before it — then applied.
/// A value is dropped after its last reader, so memory is the live activations of all samples at one point of the
/// graph. The percentiles are found by histogram selection (`PercentileSelector`), linear in the tensor size.
/// `chunkSize: 1` calibrates a model that only runs one sample at a time (a fixed batch of 1).
/// `method: .minMax` covers the whole observed range instead (see `CalibrationMethod`).
public func calibrateActivationScales(_ g: inout Graph, data: Dataset, samples: Int = 512, seed: UInt64 = 0,
                                      normalization: Normalization? = nil, chunkSize: Int = 64,
                                      method: CalibrationMethod = .percentile) throws {
    registerKernels()
    guard samples > 0 else { throw BitSwitchError(.training, "calibration needs at least one sample, got \(samples)") }
    guard chunkSize > 0 else { throw BitSwitchError(.training, "calibration chunk size must be positive, got \(chunkSize)") }
    guard data.count > 0 else { throw BitSwitchError(.data, "the calibration split is empty") }
    let bits = try trainedBitWidths(g)
    guard let input = g.inputs.first(where: { g.initializers[$0.name] == nil }) else {
        throw BitSwitchError(.training, "the graph has no data input to calibrate on")
    }
    var rng = SplitMix64(seed: SplitMix64.derive(seed, 3))
    let chosen = Array(rng.permutation(data.count).prefix(samples)).sorted()
    let batch = data.subset(chosen)
    var x = batch.x
    normalization?.apply(to: &x, sampleShape: batch.sampleShape)
    let sampleSize = batch.sampleShape.reduce(1, *)
    var feeds: [Tensor] = []
    for start in stride(from: 0, to: batch.count, by: chunkSize) {
        let n = min(chunkSize, batch.count - start)
        feeds.append(datasetInputTensor(dtype: input.type.dtype, [n] + batch.sampleShape,
                                        Array(x[(start * sampleSize)..<((start + n) * sampleSize)])))
    }

    try calibrate(&g, bits: bits, envs: feeds.map { [input.name: $0] }, method: method)
}

/// The same calibration for a model with several data inputs (a transformer encoder: `input_ids`,
/// `attention_mask`, ...): `inputs` holds one tensor per data input of the graph, and the first `samples` of a
/// permutation seeded by `seed` calibrate, fed in chunks of `chunkSize` samples.
public func calibrateActivationScales(_ g: inout Graph, inputs: InputSamples, samples: Int = 512, seed: UInt64 = 0,
                                      chunkSize: Int = 64, method: CalibrationMethod = .percentile) throws {
    registerKernels()
    guard samples > 0 else { throw BitSwitchError(.training, "calibration needs at least one sample, got \(samples)") }
    guard chunkSize > 0 else { throw BitSwitchError(.training, "calibration chunk size must be positive, got \(chunkSize)") }
    guard inputs.count > 0 else { throw BitSwitchError(.data, "the calibration data has no samples") }
    let bits = try trainedBitWidths(g)
    for input in g.inputs where g.initializers[input.name] == nil && inputs.tensors[input.name] == nil {
        throw BitSwitchError(.data, "no calibration data for the model's input '\(input.name)'")
    }
    var rng = SplitMix64(seed: SplitMix64.derive(seed, 3))
    let chosen = inputs.subset(Array(rng.permutation(inputs.count).prefix(samples)).sorted())
    let envs = stride(from: 0, to: chosen.count, by: chunkSize).map {
        chosen.feeds($0..<min($0 + chunkSize, chosen.count))
    }
    try calibrate(&g, bits: bits, envs: envs, method: method)
}

/// How a calibration sets an activation scale from the values its quantizer sees.
public enum CalibrationMethod: String, Sendable, CaseIterable {
    /// max(p99.9 / hi, p0.1 / lo): the 0.1–99.9 percentile range fits the integer range (outliers clip).
    case percentile
    /// max(max / hi, min / lo): the whole observed range fits, as onnxruntime's MinMax calibrator and dynamic
    /// quantization do. Keeps the outlier channels of transformer activations (LayerNorm outputs) at the cost of
    /// resolution; better at 8 bits on such models, worse at low bit-widths.
    case minMax = "minmax"
    /// The scale that minimises the squared quantization error Σ (x − x̂)² (clipping against rounding) among 100
    /// evenly spaced fractions of the min-max scale, refined in steps of 1/20 of the grid around the best, over at
    /// most 2^20 evenly strided values of the input.
    case mse
}

/// Calibrates every bit-width's row of every activation quantizer from the chunked feeds `envs`.
private func calibrate(_ g: inout Graph, bits: [Int], envs: [[String: Tensor]], method: CalibrationMethod) throws {
    let quantizers = g.nodes.filter { n in
        guard case .fakeQuantAct = n.op, n.inputs.count > 1 else { return false }
        return g.initializers[n.inputs[1]] != nil
    }
    for b in bits {
        try calibrationForward(&g, feeds: envs, activeBits: b, method: method)
    }
    for n in quantizers {
        if let s = g.initializers[n.inputs[1]], s.floats.contains(where: { !($0 > 0) }) {
            throw BitSwitchError(.training, "calibration left an activation scale of '\(n.inputs[0])' unset "
                + "(the calibration samples give it no range)", node: n.label, op: n.op.typeName, domain: n.op.domain)
        }
    }
}

/// One evaluation-mode forward at `activeBits` over all chunks, node by node, calibrating each FakeQuantAct's
/// row for `activeBits` from its input over every chunk (each chunk: input name → tensor) before applying it.
private func calibrationForward(_ g: inout Graph, feeds: [[String: Tensor]], activeBits: Int,
                                method: CalibrationMethod) throws {
    var lastUse: [String: Int] = [:]
    for (i, n) in g.nodes.enumerated() { for v in n.inputs where !v.isEmpty { lastUse[v] = i } }
    // Values that do not depend on the data (FakeQuantWeight of a constant weight, ...) are computed once.
    var shared: [String: Tensor] = [:]
    var envs = feeds
    func lookup(_ name: String, _ env: [String: Tensor]) -> Tensor? {
        env[name] ?? shared[name] ?? g.initializers[name]
    }
    for (i, node) in g.nodes.enumerated() {
        let dataDependent = node.inputs.contains { !$0.isEmpty && shared[$0] == nil && g.initializers[$0] == nil }
        if case .fakeQuantAct(let attrs) = node.op, node.inputs.count > 1, dataDependent,
           var scales = g.initializers[node.inputs[1]] {
            guard let row = attrs.bits.firstIndex(of: activeBits), case .f32(var s) = scales.storage,
                  row < s.count else {
                throw BitSwitchError(.internalError, "calibration could not read the scales of this quantizer",
                                     node: node.label, op: node.op.typeName, domain: node.op.domain)
            }
            let q = try ActivationQuantizer(bits: attrs.pinnedBits ?? activeBits, signed: attrs.signed)
            var parts: [[Float]] = []
            for env in envs {
                guard let t = env[node.inputs[0]], case .f32(let v) = t.storage else {
                    throw BitSwitchError(.internalError, "calibration could not read the input of this quantizer",
                                         node: node.label, op: node.op.typeName, domain: node.op.domain)
                }
                parts.append(v)
            }
            if let a = calibratedScale(parts, q, method: method), a > 0 { s[row] = a }
            scales.storage = .f32(s)
            g.setInitializer(node.inputs[1], scales)
            // Zeros quantize exactly with any scale: an input with no range runs at scale 1 and stays unset.
            let scale = s[row] > 0 ? s[row] : 1
            for c in envs.indices {
                let t = envs[c][node.inputs[0]]!
                let y = q.forward(input: parts[c], scale: scale)
                envs[c][node.outputs[0]] = Tensor(shape: t.shape, floats: y)
            }
        } else if !dataDependent {
            let outs = try evaluateNode(node, inputs: node.inputs.map { $0.isEmpty ? nil : lookup($0, [:]) },
                                        opsets: g.opsets, activeBits: activeBits)
            for (name, t) in zip(node.outputs, outs) where !name.isEmpty { shared[name] = t }
        } else {
            for c in envs.indices {
                let ins: [Tensor?] = try node.inputs.map { name in
                    if name.isEmpty { return nil }
                    guard let t = lookup(name, envs[c]) else {
                        throw BitSwitchError(.invalidModel, "value '\(name)' is read before it is computed",
                                             node: node.label, op: node.op.typeName)
                    }
                    return t
                }
                let outs = try evaluateNode(node, inputs: ins, opsets: g.opsets, activeBits: activeBits)
                for (name, t) in zip(node.outputs, outs) where !name.isEmpty { envs[c][name] = t }
            }
        }
        for v in Set(node.inputs) where !v.isEmpty && lastUse[v] == i {
            for c in envs.indices { envs[c][v] = nil }
            shared[v] = nil
        }
    }
}

/// max(p99.9 / hi, p0.1 / lo) (only the first term when lo = 0); nil without finite values or range.
func calibratedScale(_ values: [Float], _ q: ActivationQuantizer) -> Float? {
    calibratedScale([values], q)
}

/// The same over the concatenation of `parts` (the chunks of one tensor), without concatenating them.
func calibratedScale(_ parts: [[Float]], _ q: ActivationQuantizer, method: CalibrationMethod = .percentile) -> Float? {
    let selector = PercentileSelector(parts)
    guard selector.count > 0 else { return nil }
    if method == .mse { return mseScale(parts, q, selector) }
    let minMax = method == .minMax
    guard let bottom = minMax ? selector.minimum : selector.quantile(0.001),
          let top = minMax ? selector.maximum : selector.quantile(0.999) else { return nil }
    var a = max(top, 0) / q.hi
    if q.lo < 0 { a = max(a, min(bottom, 0) / q.lo) }
    if !(a > 0) {
        // Both percentiles are 0 but some value is not (a nearly all-zero tensor): cover the extreme values, as
        // the LSQ initialisation's fallback does.
        a = max(abs(selector.minimum), abs(selector.maximum)) / max(-q.lo, q.hi)
    }
    return a > 0 && a.isFinite ? a : nil
}

/// `CalibrationMethod.mse`: the candidate scale k/100 · (min-max scale), k = 1…100, then (k−1+i/20)/100 around the
/// best k, with the least squared error.
private func mseScale(_ parts: [[Float]], _ q: ActivationQuantizer, _ selector: PercentileSelector) -> Float? {
    var full = max(selector.maximum, 0) / q.hi
    if q.lo < 0 { full = max(full, min(selector.minimum, 0) / q.lo) }
    guard full > 0, full.isFinite else { return nil }
    let step = max(1, selector.count / (1 << 20))
    var xs: [Float] = []
    xs.reserveCapacity(selector.count / step + 1)
    var k = 0
    for p in parts {
        for x in p where x.isFinite {
            if k % step == 0 { xs.append(x) }
            k += 1
        }
    }
    let lo = q.lo, hi = q.hi
    func squaredError(_ a: Float) -> Double {
        let inv = 1 / a
        var error: Float = 0, total = 0.0
        xs.withUnsafeBufferPointer { v in
            for (j, x) in v.enumerated() {
                let r = min(max((x * inv).rounded(.toNearestOrEven), lo), hi) * a - x
                error += r * r
                // Partial sums in Float, accumulated in Double every 4096 values.
                if j & 4095 == 4095 { total += Double(error); error = 0 }
            }
        }
        return total + Double(error)
    }
    var best = full, bestError = Double.infinity, bestK = 100
    for k in 1...100 {
        let e = squaredError(full * Float(k) / 100)
        if e < bestError { bestError = e; best = full * Float(k) / 100; bestK = k }
    }
    // Refine between the neighbours of the best grid point (the grid is coarse where the outliers make it wide).
    for i in 1..<40 {
        let a = full * (Float(bestK - 1) + Float(i) / 20) / 100
        guard a > 0 else { continue }
        let e = squaredError(a)
        if e < bestError { bestError = e; best = a }
    }
    return best
}

/// Percentiles of the finite values of a tensor held in parts, in linear time: a histogram over [min, max]
/// locates the bin that holds each wanted order statistic, and only that bin's values are sorted (a bin holding
/// more than `maxCollected` values is histogrammed again, up to `maxDepth` levels, before its values are
/// collected). The result is the exact order statistic, hence the same quantile as sorting everything
/// (`quantile(sortedValues:)`, torch.quantile's interpolation); only when a bin still holds more than
/// `maxCollected` distinct-valued elements after `maxDepth` levels is the order statistic interpolated within the
/// bin, i.e. exact to (max − min) / bins^(maxDepth + 1).
struct PercentileSelector {
    let parts: [[Float]]
    let count: Int
    let minimum: Float
    let maximum: Float
    static let bins = 2048
    static let maxCollected = 1 << 16
    static let maxDepth = 3

    init(_ parts: [[Float]]) {
        self.parts = parts
        var n = 0, lo = Float.infinity, hi = -Float.infinity
        for p in parts {
            p.withUnsafeBufferPointer { v in
                for x in v where x.isFinite {
                    n += 1
                    if x < lo { lo = x }
                    if x > hi { hi = x }
                }
            }
        }
        count = n
        minimum = lo
        maximum = hi
    }

    /// The q-quantile with torch.quantile's interpolation (see `quantile(sortedValues:)`); nil without finite values.
    func quantile(_ q: Float) -> Float? {
        guard count > 0 else { return nil }
        let rank = q * Float(count - 1)
        let below = min(max(Int(rank), 0), count - 1)
        let above = min(below + 1, count - 1)
        let weight = rank - Float(below)
        let a = orderStatistic(below), b = orderStatistic(above)
        return weight < 0.5 ? a + weight * (b - a) : b - (b - a) * (1 - weight)
    }

    /// The k-th smallest finite value (0-based).
    func orderStatistic(_ k: Int) -> Float {
        if k == 0 { return minimum }
        if k == count - 1 { return maximum }
        // [lo, hi] holds the wanted value; `before` finite values lie below lo (strictly).
        var lo = minimum, hi = maximum, rank = k
        for _ in 0...Self.maxDepth {
            if !(lo < hi) { return lo }
            let nb = Self.bins
            let width = (Double(hi) - Double(lo)) / Double(nb)
            var hist = [Int](repeating: 0, count: nb)
            var inRange = 0
            for p in parts {
                p.withUnsafeBufferPointer { v in
                    for x in v where x >= lo && x <= hi {
                        hist[bin(x, lo, width, nb)] += 1
                        inRange += 1
                    }
                }
            }
            // Find the bin of the rank-th value among those in [lo, hi].
            var cum = 0, chosen = nb - 1
            for i in 0..<nb {
                if cum + hist[i] > rank { chosen = i; break }
                cum += hist[i]
            }
            rank -= cum
            if hist[chosen] <= Self.maxCollected {
                var values: [Float] = []
                values.reserveCapacity(hist[chosen])
                for p in parts {
                    p.withUnsafeBufferPointer { v in
                        for x in v where x >= lo && x <= hi && bin(x, lo, width, nb) == chosen { values.append(x) }
                    }
                }
                values.sort()
                return values[min(rank, values.count - 1)]
            }
            // Narrow to the chosen bin: the values that map to it (bin edges in Double, mapped back exactly by
            // collecting its real min and max).
            var newLo = Float.infinity, newHi = -Float.infinity
            for p in parts {
                p.withUnsafeBufferPointer { v in
                    for x in v where x >= lo && x <= hi && bin(x, lo, width, nb) == chosen {
                        if x < newLo { newLo = x }
                        if x > newHi { newHi = x }
                    }
                }
            }
            // Values equal to newLo that lie in earlier bins cannot exist (bins are monotone in x), so the rank
            // carries over unchanged.
            lo = newLo
            hi = newHi
            _ = inRange
        }
        // Still too many values in one narrow bin: interpolate by rank within it.
        let total = max(1, countIn(lo, hi))
        return lo + (hi - lo) * Float(rank) / Float(total)
    }

    private func countIn(_ lo: Float, _ hi: Float) -> Int {
        var n = 0
        for p in parts { for x in p where x >= lo && x <= hi { n += 1 } }
        return n
    }

    @inline(__always)
    private func bin(_ x: Float, _ lo: Float, _ width: Double, _ nb: Int) -> Int {
        min(max(Int((Double(x) - Double(lo)) / width), 0), nb - 1)
    }
}
