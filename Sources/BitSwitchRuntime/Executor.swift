import BitSwitchIR

/// Runs a graph's float ops on the CPU, node by node in topological order, freeing each intermediate
/// after its last reader.
public struct Executor: Sendable {
    public let graph: Graph
    private let threads: Int?
    /// Values to drop after node i has run (last reads, and outputs nobody reads).
    let releaseAfter: [[String]]
    /// The bit-widths that quant-dialect ops run at (default: each op's highest trained bit-width).
    public let assignment: BitAssignment

    public init(graph: Graph, threads: Int? = nil, activeBits: Int? = nil) {
        self.init(graph: graph, threads: threads, assignment: .uniform(activeBits))
    }

    public init(graph: Graph, threads: Int? = nil, assignment: BitAssignment) {
        self.graph = graph
        self.threads = threads
        self.assignment = assignment
        var last: [String: Int] = [:]
        for (i, n) in graph.nodes.enumerated() { for v in n.inputs where !v.isEmpty { last[v] = i } }
        for (i, n) in graph.nodes.enumerated() { for v in n.outputs where !v.isEmpty && last[v] == nil { last[v] = i } }
        let keep = graph.outputNames
        var release = [[String]](repeating: [], count: graph.nodes.count)
        for (v, i) in last where !keep.contains(v) { release[i].append(v) }
        releaseAfter = release
    }

    /// Runs the graph; returns every graph output by name.
    public func run(_ inputs: [String: Tensor]) throws -> [String: Tensor] {
        setRuntimeThreads(threads)
        var env = graph.initializers
        try bindInputs(inputs, into: &env)
        for (i, node) in graph.nodes.enumerated() {
            let args: [Tensor?] = try node.inputs.map { name in
                if name.isEmpty { return nil }
                guard let t = env[name] else {
                    throw BitSwitchError(.invalidModel, "input '\(name)' is not defined before this node",
                                         node: node.label, op: node.op.typeName)
                }
                return t
            }
            let outs = try evaluateNode(node, inputs: args, opsets: graph.opsets, assignment: assignment)
            for (name, t) in zip(node.outputs, outs) where !name.isEmpty { env[name] = t }
            for v in releaseAfter[i] { env.removeValue(forKey: v) }
        }
        var result: [String: Tensor] = [:]
        for o in graph.outputs {
            guard let t = env[o.name] else {
                throw BitSwitchError(.invalidModel, "graph output '\(o.name)' is never computed")
            }
            result[o.name] = t
        }
        return result
    }

    /// Checks the caller's tensors against the graph inputs (names, dtype, rank, known and symbolic dims).
    private func bindInputs(_ inputs: [String: Tensor], into env: inout [String: Tensor]) throws {
        let declared = graph.inputNames
        let expected = graph.inputs.map(\.name).joined(separator: ", ")
        for name in inputs.keys.sorted() where !declared.contains(name) {
            throw BitSwitchError(.data, "unknown input '\(name)'; the model's inputs are: \(expected)")
        }
        var bound: [String: (size: Int, by: String)] = [:]
        for vi in graph.inputs {
            guard let t = inputs[vi.name] else {
                if env[vi.name] != nil { continue }   // an initializer gives the default
                throw BitSwitchError(.data, "missing input '\(vi.name)' (\(vi.type))")
            }
            guard checkedElementCount(t.shape) == t.count else {
                throw BitSwitchError(.data, "input '\(vi.name)' has shape \(shapeString(t.shape)) but holds \(t.count) elements")
            }
            guard t.dtype == vi.type.dtype else {
                throw BitSwitchError(.type, "input '\(vi.name)' has type \(t.dtype) but the model expects \(vi.type.dtype)")
            }
            if let dims = vi.type.shape {
                let want = "[" + dims.map(\.description).joined(separator: ",") + "]"
                guard dims.count == t.rank else {
                    throw BitSwitchError(.shape, "input '\(vi.name)' has shape \(shapeString(t.shape)) but the model expects \(want)")
                }
                for (d, dim) in dims.enumerated() {
                    switch dim {
                    case .known(let k) where k != t.shape[d]:
                        throw BitSwitchError(.shape, "input '\(vi.name)' has shape \(shapeString(t.shape)) but the model expects \(want)")
                    case .symbol(let s):
                        if let b = bound[s], b.size != t.shape[d] {
                            throw BitSwitchError(.shape, "input '\(vi.name)' has shape \(shapeString(t.shape)) but the model expects \(want) with \(s) = \(b.size) (from input '\(b.by)')")
                        }
                        if bound[s] == nil { bound[s] = (t.shape[d], vi.name) }
                    default: break
                    }
                }
            }
            env[vi.name] = t
        }
    }
}
