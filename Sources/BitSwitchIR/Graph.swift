/// A node: one op applied to named SSA values. "" in `inputs` marks an absent optional input.
public struct Node: Sendable, Hashable {
    public var name: String
    public var op: Op
    public var inputs: [String]
    public var outputs: [String]

    public init(name: String, op: Op, inputs: [String], outputs: [String]) {
        self.name = name; self.op = op; self.inputs = inputs; self.outputs = outputs
    }

    /// The node's label in messages: its name, or its first output when unnamed.
    public var label: String { name.isEmpty ? (outputs.first ?? "?") : name }
}

/// A graph input or output: a name and its static type.
public struct ValueInfo: Sendable, Hashable {
    public var name: String
    public var type: TensorType
    public init(name: String, type: TensorType) { self.name = name; self.type = type }
}

/// The IR: SSA values named by strings (as in ONNX), nodes in topological order, initializers held by value.
/// A value is defined exactly once: by a graph input, an initializer, or one node output.
public struct Graph: Sendable, Equatable {
    public var name: String
    /// Version of each operator domain ("" = ai.onnx).
    public var opsets: [String: Int]
    public var inputs: [ValueInfo]
    public var outputs: [ValueInfo]
    /// Constant tensors by name; `initializerOrder` keeps their order stable for printing and export.
    public private(set) var initializers: [String: Tensor]
    public private(set) var initializerOrder: [String]
    public var nodes: [Node]
    /// Inferred static types of intermediate values (filled by shape inference; may be partial).
    public var valueTypes: [String: TensorType]
    /// Free-form model metadata kept through import/export (producer, doc strings, ...).
    public var metadata: [String: String]

    public init(name: String = "main", opsets: [String: Int] = ["": 17], inputs: [ValueInfo] = [],
                outputs: [ValueInfo] = [], nodes: [Node] = [], metadata: [String: String] = [:]) {
        self.name = name; self.opsets = opsets; self.inputs = inputs; self.outputs = outputs
        self.initializers = [:]; self.initializerOrder = []; self.nodes = nodes; self.valueTypes = [:]
        self.metadata = metadata
    }

    public var opset: Int { opsets[""] ?? 17 }

    // MARK: initializers

    public mutating func setInitializer(_ name: String, _ t: Tensor) {
        if initializers.updateValue(t, forKey: name) == nil { initializerOrder.append(name) }
    }
    @discardableResult
    public mutating func removeInitializer(_ name: String) -> Tensor? {
        guard let t = initializers.removeValue(forKey: name) else { return nil }
        initializerOrder.removeAll { $0 == name }
        return t
    }
    /// Initializers in stable order.
    public var orderedInitializers: [(name: String, tensor: Tensor)] {
        initializerOrder.map { ($0, initializers[$0]!) }
    }

    // MARK: queries

    /// Index of the node producing each value.
    public var producers: [String: Int] {
        var m: [String: Int] = [:]
        for (i, n) in nodes.enumerated() { for o in n.outputs where !o.isEmpty { m[o] = i } }
        return m
    }
    /// Indices of the nodes reading each value.
    public var consumers: [String: [Int]] {
        var m: [String: [Int]] = [:]
        for (i, n) in nodes.enumerated() { for v in n.inputs where !v.isEmpty { m[v, default: []].append(i) } }
        return m
    }
    public var outputNames: Set<String> { Set(outputs.map(\.name)) }
    public var inputNames: Set<String> { Set(inputs.map(\.name)) }

    /// Static type of any value, when known.
    public func type(of value: String) -> TensorType? {
        if let t = initializers[value] { return t.type }
        if let i = inputs.first(where: { $0.name == value }) { return i.type }
        if let t = valueTypes[value] { return t }
        return outputs.first(where: { $0.name == value })?.type
    }

    /// A value name not used anywhere yet, built from `base`.
    public func freshName(_ base: String) -> String {
        var used = Set(initializerOrder)
        for i in inputs { used.insert(i.name) }
        for n in nodes { for o in n.outputs { used.insert(o) }; used.insert(n.name) }
        if !used.contains(base) { return base }
        var k = 1
        while used.contains("\(base)_\(k)") { k += 1 }
        return "\(base)_\(k)"
    }

    // MARK: rewriting

    /// Replace every read of `old` (node inputs and graph outputs) with `new`.
    public mutating func replaceAllUses(of old: String, with new: String) {
        for i in nodes.indices {
            for j in nodes[i].inputs.indices where nodes[i].inputs[j] == old { nodes[i].inputs[j] = new }
        }
        for i in outputs.indices where outputs[i].name == old { outputs[i].name = new }
    }

    /// Sort nodes topologically (stable: keeps the given order where it is already valid).
    /// Throws naming a node on the cycle, or a value read but never defined.
    public mutating func sortTopologically() throws {
        var defined = Set(initializerOrder).union(inputs.map(\.name))
        defined.insert("")
        var remaining = nodes
        var sorted: [Node] = []
        sorted.reserveCapacity(nodes.count)
        let produced = Set(nodes.flatMap(\.outputs))
        while !remaining.isEmpty {
            var progressed = false
            var next: [Node] = []
            for n in remaining {
                if n.inputs.allSatisfy({ defined.contains($0) }) {
                    sorted.append(n); n.outputs.forEach { defined.insert($0) }; progressed = true
                } else { next.append(n) }
            }
            if !progressed {
                let n = next[0]
                let missing = n.inputs.first { !defined.contains($0) }!
                if produced.contains(missing) {
                    throw BitSwitchError(.invalidModel, "the graph has a cycle through value '\(missing)'",
                                         node: n.label, op: n.op.typeName)
                }
                throw BitSwitchError(.invalidModel, "input '\(missing)' is neither a graph input, an initializer, nor produced by any node",
                                     node: n.label, op: n.op.typeName)
            }
            remaining = next
        }
        nodes = sorted
    }

    /// Drop nodes whose outputs nobody reads and initializers nobody reads. Returns how many nodes went.
    @discardableResult
    public mutating func removeDeadCode() -> Int {
        var live = outputNames
        var keep = [Bool](repeating: false, count: nodes.count)
        for i in stride(from: nodes.count - 1, through: 0, by: -1) {
            if nodes[i].outputs.contains(where: { live.contains($0) }) {
                keep[i] = true
                nodes[i].inputs.forEach { live.insert($0) }
            }
        }
        let before = nodes.count
        nodes = nodes.indices.filter { keep[$0] }.map { nodes[$0] }
        for name in initializerOrder where !live.contains(name) { removeInitializer(name) }
        let liveValues = live.union(nodes.flatMap(\.outputs))
        valueTypes = valueTypes.filter { liveValues.contains($0.key) }
        return before - nodes.count
    }

    /// Number of scalar parameters held in initializers.
    public var parameterCount: Int { initializers.values.reduce(0) { $0 + $1.count } }
}
