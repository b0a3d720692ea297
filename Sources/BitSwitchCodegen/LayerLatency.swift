import BitSwitchIR
import Foundation

/// Per-layer latency of the generated code (docs/c-backend.md, "Per-layer latency"): each quantized layer of a
/// lowered graph is compiled on its own — its QConv/QGemm and the Requant fused into it — and timed on this
/// machine. The mixed-precision ILP reads the table as its latency constraint.
public enum LayerLatency {
    /// One layer of a lowered graph as a graph of its own, at batch 1: its integer input (read as bytes through
    /// `bs_run_quantized`, so no float quantize is timed), the QConv/QGemm named `layer`, the Requant that reads it
    /// when it is the only reader (the kernel fuses it), and a Dequantize with scale 1 of the result.
    public static func subgraph(_ g: Graph, layer: String) throws -> Graph {
        guard let i = g.nodes.firstIndex(where: { n in
            guard n.name == layer else { return false }
            switch n.op { case .qconv, .qgemm: return true; default: return false }
        }) else {
            throw BitSwitchError(.invalidModel, "the lowered graph has no QConv/QGemm named '\(layer)'", node: layer)
        }
        let node = g.nodes[i]
        guard let t = g.type(of: node.inputs[0]), let dims = t.shape, t.dtype == .i8 || t.dtype == .u8 else {
            throw BitSwitchError(.shape, "the input of layer '\(layer)' has no inferred i8/u8 type", node: layer, op: node.op.typeName)
        }
        var shape: [Int] = []
        for (k, d) in dims.enumerated() {
            if let v = d.value { shape.append(k == 0 ? 1 : v) } else if k == 0 { shape.append(1) } else {
                throw BitSwitchError(.shape, "the input of layer '\(layer)' has a symbolic dim \(d) besides the batch", node: layer, op: node.op.typeName)
            }
        }
        let (lo, hi) = t.dtype == .i8 ? (-128, 127) : (0, 255)
        var sub = Graph(name: "layer", opsets: g.opsets, inputs: [ValueInfo(name: "x", type: TensorType(.f32, known: shape))])
        sub.nodes.append(Node(name: "quantize", op: .quantize(scale: 1, zero: 0, lo: lo, hi: hi, to: t.dtype), inputs: ["x"], outputs: ["xq"]))
        for name in node.inputs.dropFirst() {
            guard let w = g.initializers[name] else {
                throw BitSwitchError(.invalidModel, "layer '\(layer)': '\(name)' is not an initializer", node: layer, op: node.op.typeName)
            }
            sub.setInitializer(name, w)
        }
        sub.nodes.append(Node(name: node.name, op: node.op, inputs: ["xq"] + node.inputs.dropFirst(), outputs: ["acc"]))
        var last = "acc"
        if let readers = g.consumers[node.outputs[0]], readers.count == 1, !g.outputNames.contains(node.outputs[0]),
           case .requant = g.nodes[readers[0]].op {
            let r = g.nodes[readers[0]]
            for name in r.inputs.dropFirst() {
                guard let v = g.initializers[name] else { continue }
                sub.setInitializer(name, v)
            }
            sub.nodes.append(Node(name: r.name, op: r.op, inputs: ["acc"] + r.inputs.dropFirst(), outputs: ["y"]))
            last = "y"
        }
        sub.nodes.append(Node(name: "dequantize", op: .dequantize(scale: 1, zero: 0), inputs: [last], outputs: ["out"]))
        sub.outputs = [ValueInfo(name: "out", type: TensorType(.f32, nil))]
        sub.opsets["ai.bitswitch"] = sub.opsets["ai.bitswitch"] ?? 1
        // The layer keeps its name and bit-widths, so the bundle times it (bs_set_layer_timing).
        let bits = (try? Plan.layerBits(g))??[layer]
        let wb: Int = { switch node.op { case .qconv(let q): return q.wBits; case .qgemm(let q): return q.wBits; default: return 8 } }()
        let entry: [String: Any] = ["w": bits?.w ?? wb, "a": bits?.a ?? 8]
        if let data = try? JSONSerialization.data(withJSONObject: [layer: entry], options: [.sortedKeys]) {
            sub.metadata["bitswitch.int.bits"] = String(decoding: data, as: UTF8.self)
        }
        try inferShapes(&sub)
        if let s = sub.type(of: "out") { sub.outputs[0].type = s }
        return sub
    }

    /// Median µs per run of layer `layer` of a compiled graph (the bundle's own timer around the layer's code,
    /// bs_set_layer_timing: its conv / gemm with what is fused into it, not the harness's input copy and output
    /// dequantize), over `repeats` samples, each a loop of enough runs for about 200 µs of the layer (timer
    /// resolution and call overhead stay small for tiny layers), after a warm-up; the input is seeded random bytes
    /// of its integer range. Without `layer` (or in a library without the timer), the whole run's wall time.
    public static func measure(_ net: CompiledNetwork, layer: String? = nil, repeats: Int, seed: UInt64 = 1) throws -> Double {
        let bytes = net.model.quantizedInputBytes
        var state = seed | 1
        let input: [UInt8] = (0..<bytes).map { _ in
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return UInt8(truncatingIfNeeded: state)
        }
        let index = try layer.map { name in
            guard let i = net.model.layerNames.firstIndex(of: name) else {
                throw BitSwitchError(.invalidModel, "the compiled graph has no layer '\(name)' (layers: \(net.model.layerNames))", node: name)
            }
            return i
        }
        func time(_ runs: Int) throws -> Double {
            if index != nil { try net.model.setLayerTiming(true) }
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<runs { _ = try net.model.runQuantized(input) }
            let ns = try index.map { Double(try net.model.layerTimeNanoseconds($0)) }
                ?? Double(DispatchTime.now().uptimeNanoseconds - start)
            return ns / 1000 / Double(runs)
        }
        _ = try time(3)
        let once = max(try time(5), 0.01)
        let loop = max(1, min(10_000, Int(200 / once)))
        var samples = try (0..<max(1, repeats)).map { _ in try time(loop) }
        samples.sort()
        return samples[samples.count / 2]
    }
}
