import Testing
import BitSwitchIR
@testable import BitSwitchRuntime

/// Finite-difference checks of the transformer-family training kernels.
@Suite struct TransformerGradientTests {
    @Test(arguments: [-1, 1])
    func layerNormalization(axis: Int) throws {
        var rng = TestRandom(11)
        let x = rng.tensor([2, 3, 4], -2, 2)
        let norm = axis == -1 ? [4] : [3, 4]
        let n = norm.reduce(1, *)
        let scale = Tensor(shape: norm, floats: rng.uniform(n, 0.5, 1.5))
        let bias = Tensor(shape: norm, floats: rng.uniform(n, -0.5, 0.5))
        let g = singleNodeGraph(.layerNormalization(axis: axis, epsilon: 1e-5), inputs: [("x", x)],
                                initializers: [("s", scale), ("b", bias)])
        try checkGradients(g, feeds: ["x": x], wrt: ["x", "s", "b"])
    }

    @Test(arguments: [Op.gelu(tanh: false), .gelu(tanh: true), .erf])
    func smoothActivations(op: Op) throws {
        var rng = TestRandom(12)
        let x = rng.tensor([3, 5], -3, 3)
        try checkGradients(singleNodeGraph(op, inputs: [("x", x)], initializers: []), feeds: ["x": x], wrt: ["x"])
    }
}
