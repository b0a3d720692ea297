import BitSwitchIR

/// Records the static type of every value whose type follows from the graph's inputs and constants.
///
///     %y = Conv(%x, %w) {group = 1}              %y = Conv(%x, %w) {group = 1} : f32[N,8,6,6]
///     %f = Flatten(%y) {axis = 1}        ==>     %f = Flatten(%y) {axis = 1} : f32[N,288]
let inferShapesPass = Pass(
    name: "infer-shapes",
    summary: "infer the element type and shape of every value (symbolic batch kept)"
) { g, _, context in
    try inferShapes(&g)
    let unknown = g.nodes.flatMap(\.outputs).filter { !$0.isEmpty && g.valueTypes[$0]?.knownShape == nil }
    context.logger("infer-shapes: \(g.valueTypes.count) values typed, \(unknown.count) without a fully known shape")
}
