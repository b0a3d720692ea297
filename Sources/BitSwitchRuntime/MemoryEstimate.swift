import BitSwitchIR

/// What running or training a graph will hold in memory, estimated from the inferred shapes before anything is
/// allocated, so `run`, `eval` and `train` refuse a model that cannot fit with an error saying how much it needs
/// instead of being killed by the kernel half-way.
///
/// - Initializers: every constant tensor as the runtime stores it (float16 is widened to 4 bytes).
/// - Activations, inference (`run`, `eval`, calibration): the peak over the node schedule of the values the `Executor`
///   holds live at once — the graph inputs, and each node output from the node that computes it until its last
///   reader has run (the executor frees it then; graph outputs stay).
/// - Activations, training: the forward pass keeps every value for the backward pass and the backward pass gives each
///   its gradient, so twice the sum of all activations, plus the packed input each 2-D conv keeps; parameters (float
///   initializers) get a gradient and two optimizer moments, three times their bytes.
///
/// Symbolic dims take their bound value (the batch); dims shape inference cannot determine count as 1 and values of
/// unknown rank are not counted, so for such models the estimate is a lower bound.
public struct MemoryEstimate: Sendable, Equatable {
    public var initializerBytes: Int
    public var activationBytes: Int
    /// Training only: parameter gradients and optimizer state.
    public var optimizerBytes: Int

    public var total: Int { Self.add(Self.add(initializerBytes, activationBytes), optimizerBytes) }

    /// The estimate for inference: initializers plus the peak of live activations.
    public static func inference(_ graph: Graph, bindings: [String: Int]) -> MemoryEstimate {
        let g = shaped(graph)
        var live = 0, peak = 0
        for i in g.inputs where g.initializers[i.name] == nil { live = add(live, bytes(g.type(of: i.name), bindings)) }
        peak = live
        let ex = Executor(graph: g)
        for (i, n) in g.nodes.enumerated() {
            for o in n.outputs where !o.isEmpty { live = add(live, bytes(g.type(of: o), bindings)) }
            peak = max(peak, live)
            for v in ex.releaseAfter[i] where g.initializers[v] == nil { live -= min(live, bytes(g.type(of: v), bindings)) }
        }
        return MemoryEstimate(initializerBytes: initializerBytes(g), activationBytes: peak, optimizerBytes: 0)
    }

    /// The estimate for training: initializers, every activation and its gradient, parameter gradients and moments.
    public static func training(_ graph: Graph, bindings: [String: Int]) -> MemoryEstimate {
        let g = shaped(graph)
        var sum = 0
        for i in g.inputs where g.initializers[i.name] == nil { sum = add(sum, bytes(g.type(of: i.name), bindings)) }
        for n in g.nodes { for o in n.outputs where !o.isEmpty { sum = add(sum, bytes(g.type(of: o), bindings)) } }
        var grids = 0
        for n in g.nodes {
            if case .conv = n.op, let x = n.inputs.first { grids = add(grids, gridBytes(g.type(of: x), bindings)) }
        }
        var params = 0
        for t in g.initializers.values where t.dtype.isFloat { params = add(params, storageBytes(t)) }
        return MemoryEstimate(initializerBytes: initializerBytes(g), activationBytes: add(add(sum, sum), grids),
                              optimizerBytes: add(params, add(params, params)))
    }

    /// The packed input a 2-D conv keeps from the forward pass for its backward pass (ConvInputGrid): the input with
    /// a zero column per row and a zero row per image more. Counted for every 2-D conv (an upper bound: convs off the
    /// grid kernels keep none).
    static func gridBytes(_ t: TensorType?, _ bindings: [String: Int]) -> Int {
        guard let shape = t?.shape, shape.count == 4, case .known(let h) = shape[2], case .known(let w) = shape[3],
              h > 0, w > 0 else { return 0 }
        let b = Double(bytes(t, bindings)) * Double((h + 1) * (w + 1)) / Double(h * w)
        return b < Double(Int.max) ? Int(b) : Int.max
    }

    /// Symbol values from the shapes the inputs will have: each symbolic dim of a graph input takes the size of that
    /// dim in `inputShapes` (the first binding wins; the executor checks consistency when it runs).
    public static func bindings(_ graph: Graph, inputShapes: [String: [Int]]) -> [String: Int] {
        var b: [String: Int] = [:]
        for vi in graph.inputs {
            guard let dims = vi.type.shape, let shape = inputShapes[vi.name], shape.count == dims.count else { continue }
            for (d, s) in zip(dims, shape) { if case .symbol(let name) = d, b[name] == nil { b[name] = s } }
        }
        return b
    }

    /// Refuses the run when the estimate exceeds `maxMemory` (--max-memory) or the memory available.
    /// `what` says what is being done ("running the model at batch 256"), for the message.
    public func check(maxMemory: Int?, what: String, file: String) throws {
        let available = availableMemoryBytes()
        let limit: Int, source: String
        if let maxMemory, maxMemory < (available ?? Int.max) {
            limit = maxMemory; source = "the --max-memory limit of \(maxMemory) bytes"
        } else if let available {
            limit = available; source = "the \(available) bytes of memory available"
        } else {
            return
        }
        guard total > limit else { return }
        var parts = ["\(initializerBytes) bytes of constant tensors", "\(activationBytes) bytes of activations"]
        if optimizerBytes > 0 { parts.append("\(optimizerBytes) bytes of parameter gradients and optimizer state") }
        throw BitSwitchError(.invalidModel, "\(what) needs an estimated \(total) bytes (\(parts.joined(separator: ", "))), "
                             + "more than \(source)", file: file)
    }

    // MARK: helpers

    static func add(_ a: Int, _ b: Int) -> Int {
        let (r, o) = a.addingReportingOverflow(b)
        return o ? Int.max : r
    }

    /// The graph with inferred types (as it is when inference fails: the estimate then counts fewer values).
    static func shaped(_ graph: Graph) -> Graph {
        var g = graph
        if (try? inferShapes(&g)) == nil { return graph }
        return g
    }

    static func width(_ d: DType) -> Int { d == .f16 ? 4 : d.byteWidth }

    static func storageBytes(_ t: Tensor) -> Int {
        let (r, o) = t.count.multipliedReportingOverflow(by: width(t.dtype))
        return o ? Int.max : r
    }

    static func initializerBytes(_ g: Graph) -> Int {
        g.initializers.values.reduce(0) { add($0, storageBytes($1)) }
    }

    /// Bytes of a value of type `t`: symbolic dims bound, unknown dims 1, unknown rank 0.
    static func bytes(_ t: TensorType?, _ bindings: [String: Int]) -> Int {
        guard let t, let shape = t.shape else { return 0 }
        var n = width(t.dtype)
        for d in shape {
            let v: Int
            switch d {
            case .known(let k): v = max(0, k)
            case .symbol(let s): v = max(0, bindings[s] ?? 1)
            case .unknown: v = 1
            }
            let (r, o) = n.multipliedReportingOverflow(by: v)
            if o { return Int.max }
            n = r
        }
        return n
    }
}
