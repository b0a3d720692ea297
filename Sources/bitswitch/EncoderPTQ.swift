import BitSwitchData
import BitSwitchIR
import BitSwitchONNX
import BitSwitchQuant
import BitSwitchRuntime
import Foundation

extension TrainCommand {
    /// `--ptq` of a model with several data inputs (a transformer encoder) on unlabelled input arrays
    /// (`MultiInputData`): the first `--calibration-samples` of a seeded permutation calibrate the activation
    /// quantizers, the stored INT8 model is written, and the written file is compared with the float model at every
    /// bit-width on up to `comparedSamples` of the remaining samples (all samples when none remain): the mean and the
    /// lowest per-sample cosine similarity of each float output.
    func runMultiInputPTQ(_ graph: Graph) throws {
        let samples = try MultiInputData.load(data, graph: graph, model: model)
        guard ptq else {
            throw BitSwitchError(.training, "a model with several inputs is calibrated, not trained: add --ptq "
                                 + "(training takes one input and labels)", file: model)
        }
        guard bits != nil else { throw BitSwitchError(.training, "--ptq on a float model needs --bits") }
        guard mixed == nil else { throw BitSwitchError(.training, "--mixed hasb trains; it does not apply to --ptq") }
        guard calibrationSamples > 0 else {
            throw BitSwitchError(.training, "--calibration-samples must be positive, got \(calibrationSamples)")
        }
        if let threads { guard threads > 0 else { throw BitSwitchError(.training, "threads must be positive") } }
        setRuntimeThreads(threads)
        guard !graph.nodes.contains(where: { $0.op.domain == Op.bitswitchDomain }) else {
            throw BitSwitchError(.training, "the model is already quantized; --ptq starts from a float model", file: model)
        }
        var float = graph
        let firstInput = MultiInputData.dataInputs(graph)[0].name
        let sampleShape = Array(samples.tensors[firstInput]!.shape.dropFirst())
        let mode = try prepareModel(&float, file: model, sampleShape: sampleShape, quiet: quiet)
        let chunk = mode.requiredBatch ?? 32
        let shapes = samples.tensors.mapValues { [chunk] + $0.shape.dropFirst() }
        try MemoryEstimate.inference(float, bindings: MemoryEstimate.bindings(float, inputShapes: shapes))
            .check(maxMemory: importFlags.maxMemory, what: "calibrating the model at batch \(chunk)", file: model)

        var rng = SplitMix64(seed: SplitMix64.derive(seed, 3))
        let order = rng.permutation(samples.count)
        let calibration = Array(order.prefix(calibrationSamples)).sorted()
        var rest = Array(order.dropFirst(calibrationSamples).prefix(Self.comparedSamples)).sorted()
        let heldOut = !rest.isEmpty
        if !heldOut { rest = calibration.prefix(Self.comparedSamples).map { $0 } }

        // `auto` pins the first and last linear layer at 8 bits here: an encoder's last layer is its output, not an
        // LM head over the vocabulary (which `auto` keeps float when a token model is trained on text).
        guard let firstLastPolicy = FirstLastPolicy(rawValue: firstLast == "auto" ? "int8" : firstLast) else {
            throw BitSwitchError(.training, "unknown --first-last '\(firstLast)' (auto, int8, float, switch, head-float)")
        }
        guard let storePolicy = StoreBitsPolicy(rawValue: storeBits) else {
            throw BitSwitchError(.training, "unknown --store-bits '\(storeBits)' (8, top)")
        }
        guard let bitSet = try parseBitsOption(bits!) else {
            throw BitSwitchError(.training, "--ptq on a float model needs its bit-widths in --bits, e.g. 8,6,4,2")
        }
        var g = float
        let log: (String) -> Void = { line in if !quiet { FileHandle.standardError.write(Data((line + "\n").utf8)) } }
        registerKernels()
        do {
            try insertFakeQuant(&g, options: FakeQuantOptions(bits: bitSet, firstLast: firstLastPolicy,
                                                              storeBits: storePolicy, exactGradient: exactGradient),
                                log: log)
        } catch { throw error.bitswitchLocated(file: model) }
        let start = ProcessInfo.processInfo.systemUptime
        do {
            try calibrateActivationScales(&g, inputs: samples.subset(calibration), samples: calibration.count,
                                          seed: seed, chunkSize: chunk, method: try calibrationMethod())
        } catch { throw error.bitswitchLocated(file: model) }
        let seconds = ProcessInfo.processInfo.systemUptime - start
        try ONNXExporter.write(try storeQuantized(g), to: output)

        // The table comes from the written file, as for the other --ptq runs.
        let stored = try ONNXImporter.importModel(path: output, options: importFlags.options)
        let compared = samples.subset(rest)
        let reference = try runChunks(Executor(graph: float, threads: threads), compared, chunk: chunk)
        let names = float.outputs.map(\.name).filter { reference[$0]?.dtype == .f32 && (reference[$0]?.rank ?? 0) >= 2 }
        guard !names.isEmpty else {
            throw BitSwitchError(.training, "the model has no float output with a sample axis to compare", file: model)
        }
        var rows: [(bits: Int, mean: [Double], low: [Double])] = []
        for b in bitSet {
            let got = try runChunks(Executor(graph: stored, threads: threads, activeBits: b), compared, chunk: chunk)
            var mean: [Double] = [], low: [Double] = []
            for name in names {
                guard let x = got[name], let y = reference[name] else {
                    throw BitSwitchError(.internalError, "the quantized model did not produce output '\(name)'", file: output)
                }
                let c = perSampleCosine(x, y)
                mean.append(c.reduce(0, +) / Double(max(1, c.count)))
                low.append(c.min() ?? 0)
            }
            rows.append((b, mean, low))
        }
        let what = heldOut ? "\(compared.count) samples not used for calibration"
            : "\(compared.count) calibration samples (no others were given)"
        print("cosine similarity to the float model per sample (mean / lowest), \(what):")
        print("bits  " + names.map { "\($0)".padding(toLength: max(19, $0.count), withPad: " ", startingAt: 0) }
            .joined(separator: "  "))
        for r in rows {
            let cells = zip(names, zip(r.mean, r.low)).map { name, v in
                String(format: "%.5f / %.5f", v.0, v.1).padding(toLength: max(19, name.count), withPad: " ", startingAt: 0)
            }
            print(String(format: "%4d  ", r.bits) + cells.joined(separator: "  "))
        }
        let inBytes = (try? FileManager.default.attributesOfItem(atPath: model)[.size] as? Int) ?? nil
        let outBytes = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? nil
        var line = String(format: "calibrated on %d samples in %.1f s → %@", calibration.count, seconds, output)
        if let inBytes, let outBytes {
            line += String(format: " (%d bytes, %.1f%% of the input model's %d)", outBytes,
                           100 * Double(outBytes) / Double(max(1, inBytes)), inBytes)
        }
        print(line)
        if let metrics {
            let perBit = rows.map { r in
                let cells = zip(names, zip(r.mean, r.low)).map { "\"\(jsonEscape($0))\": {\"mean\": \($1.0), \"min\": \($1.1)}" }
                return "{\"bits\": \(r.bits), \"cosine\": {\(cells.joined(separator: ", "))}}"
            }
            let text = "{\"calibration_samples\": \(calibration.count), \"compared_samples\": \(compared.count), "
                + "\"held_out\": \(heldOut), \"seconds\": \(seconds), \"bits\": [\(perBit.joined(separator: ", "))]}\n"
            do { try AtomicFile.write(Data(text.utf8), to: metrics) } catch let e as DataError {
                throw BitSwitchError(.io, "cannot write metrics: \(e.message)", file: metrics)
            }
        }
    }

    static let comparedSamples = 256

    /// Every graph output over all samples, run `chunk` samples at a time and concatenated on axis 0.
    private func runChunks(_ ex: Executor, _ s: InputSamples, chunk: Int) throws -> [String: Tensor] {
        var parts: [String: [Tensor]] = [:]
        for start in stride(from: 0, to: s.count, by: chunk) {
            let out: [String: Tensor]
            do { out = try ex.run(s.feeds(start..<min(start + chunk, s.count))) } catch {
                throw error.bitswitchLocated(file: model)
            }
            for (k, v) in out { parts[k, default: []].append(v) }
        }
        return parts.compactMapValues { ts -> Tensor? in
            guard let f = ts.first, f.dtype == .f32, f.rank >= 1 else { return nil }
            return Tensor(shape: [ts.reduce(0) { $0 + $1.shape[0] }] + f.shape.dropFirst(), floats: ts.flatMap(\.floats))
        }
    }
}

/// Cosine similarity of each sample (axis 0) of `x` and `y`, over the sample's flattened values; 1 when both are 0.
func perSampleCosine(_ x: Tensor, _ y: Tensor) -> [Double] {
    let n = x.shape.first ?? 0
    guard n > 0, x.count == y.count else { return [] }
    let per = x.count / n
    let a = x.floats, b = y.floats
    return (0..<n).map { i in
        var dot = 0.0, na = 0.0, nb = 0.0
        for k in (i * per)..<((i + 1) * per) {
            let u = Double(a[k]), v = Double(b[k])
            dot += u * v; na += u * u; nb += v * v
        }
        if na == 0 && nb == 0 { return 1 }
        return dot / max(1e-300, (na * nb).squareRoot())
    }
}

private func jsonEscape(_ s: String) -> String {
    s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
}
