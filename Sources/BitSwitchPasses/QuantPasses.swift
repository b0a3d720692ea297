import BitSwitchIR
import BitSwitchQuant

/// The quantization passes (thin drivers over BitSwitchQuant; semantics in docs/quant-ops.md).
let quantPasses: [Pass] = [insertFakeQuantPass, storeInt8Pass, foldScalesPass, lowerIntPass]

/// Turns a float model into a multi-precision fake-quant model: weight and input quantizers on every Conv, Gemm
/// and MatMul with a constant weight (first and last layer pinned at 8 bits, or float), BatchNormalization made
/// switchable (one row of parameters per bit-width). Warns for each switching Conv/Gemm without a BN after it.
/// On a transformer (docs/quant-ops.md, "Transformers"): every linear layer (MatMul with a constant weight, Gemm)
/// is quantized, the head stays float (`first-last=auto`); the options `attention-products`, `embedding`, `norms`
/// and `non-linearities` quantize the rest.
///
///     const %w: f32[2,1,1,1] = [1.28, -2.56]            const %w: f32[2,1,1,1] = [1.28, -2.56]
///     const %s: f32[2] = [1.0, 2.0]                     const %s: f32[4,2] = [1.0, 2.0, 1.0, 2.0, ...]
///     ...                                               const %w.scale: f32[2] = [0.01, 0.02]
///     %c = Conv(%x, %w) @conv0                   ==>    const %x.act_scales: f32[4] = [0.0, 0.0, 0.0, 0.0]
///     %y = BatchNormalization(%c, %s, ...) @bn0         %w.fq = ai.bitswitch.FakeQuantWeight(%w, %w.scale)
///                                                           {axis = 0, bits = [8, 6, 4, 2], pinned_bits = 8, stored_bits = 8}
///                                                       %x.fq = ai.bitswitch.FakeQuantAct(%x, %x.act_scales)
///                                                           {bits = [8, 6, 4, 2], pinned_bits = 8, signed = 1}
///                                                       %c = Conv(%x.fq, %w.fq) @conv0
///                                                       %y = ai.bitswitch.SwitchableBatchNorm(%c, %s, ...)
///                                                           {bits = [8, 6, 4, 2], epsilon = 1e-05, momentum = 0.9}
let insertFakeQuantPass = Pass(
    name: "insert-fake-quant",
    summary: "insert Double Rounding weight and LSQ activation quantizers and switchable BatchNorm (multi-precision QAT)",
    options: [
        PassOption("bits", .intList, default: "8,6,4,2", "the trained bit set, e.g. 8,6,4,2 or 4,3,2"),
        PassOption("first-last", .string, default: "auto",
                   "first and last quantized layer: int8 (pinned at 8 bits), float (left unquantized), switch (like "
                   + "the rest), head-float (only the last, a language model's head, stays float); auto: head-float "
                   + "for a token model (an embedding Gather of a graph input), else int8"),
        PassOption("store-bits", .string, default: "8",
                   "stored integers of the switching layers: 8 (int8) or top (the top bit-width; lossier)"),
        PassOption("exact-gradient", .bool, default: "false",
                   "exact chain-rule weight-scale gradient (times 2^(h-b)) instead of the reference one"),
        PassOption("attention-products", .bool, default: "false",
                   "activation quantizers on both operands of each MatMul of two computed values (Q·Kᵀ, P·V)"),
        PassOption("embedding", .bool, default: "false",
                   "a Double Rounding weight quantizer (per row) on each embedding table (Gather of a float constant)"),
        PassOption("norms", .bool, default: "false", "activation quantizers on each LayerNormalization's input"),
        PassOption("switchable-layernorm", .bool, default: "false",
                   "give each LayerNormalization one affine (scale, bias) per bit-width (SwitchableLayerNorm)"),
        PassOption("non-linearities", .bool, default: "false",
                   "activation quantizers on the input of each Gelu, Erf, Softmax, Sigmoid, Tanh, Relu and Exp"),
    ]
) { g, options, context in
    let firstLastText = try options.string("first-last")
    guard let firstLast = firstLastText == "auto" ? FirstLastPolicy.automatic(for: g)
            : FirstLastPolicy(rawValue: firstLastText) else {
        throw BitSwitchError(.pass, "pass 'insert-fake-quant' option 'first-last' expects auto, int8, float, switch or "
                             + "head-float, got '\(firstLastText)'")
    }
    let storeText = try options.string("store-bits")
    guard let store = StoreBitsPolicy(rawValue: storeText) else {
        throw BitSwitchError(.pass, "pass 'insert-fake-quant' option 'store-bits' expects 8 or top, got '\(storeText)'")
    }
    let o = FakeQuantOptions(bits: try options.ints("bits"), firstLast: firstLast, storeBits: store,
                             exactGradient: try options.bool("exact-gradient"),
                             attentionProducts: try options.bool("attention-products"),
                             embedding: try options.bool("embedding"), norms: try options.bool("norms"),
                             nonLinearities: try options.bool("non-linearities"),
                             switchableLayerNorm: try options.bool("switchable-layernorm"))
    try insertFakeQuant(&g, options: o, log: context.logger)
}

/// The stored model: each FakeQuantWeight's float weight becomes its int8 integers q_h under the same name (scales
/// stay float32), with no float copy. Outputs at every bit-width are unchanged, bit for bit.
///
///     const %w: f32[2,1,1,1] = [1.28, -2.56]                      const %w: i8[2,1,1,1] = [127, -128]
///     const %w.scale: f32[2] = [0.01, 0.02]               ==>     const %w.scale: f32[2] = [0.01, 0.02]
///     %w.fq = ai.bitswitch.FakeQuantWeight(%w, %w.scale) {...}    %w.fq = ai.bitswitch.FakeQuantWeight(%w, %w.scale) {...}
let storeInt8Pass = Pass(
    name: "store-int8",
    summary: "replace fake-quantized float weights by their stored int8 integers (no float copy)"
) { g, _, context in
    let before = g.initializers.values.reduce(0) { $0 + $1.count * $1.dtype.byteWidth }
    g = try storeQuantized(g)
    let after = g.initializers.values.reduce(0) { $0 + $1.count * $1.dtype.byteWidth }
    context.logger("store-int8: constants \(before) -> \(after) bytes")
}

/// The assignment a pass's `bits` / `profile` options select (neither: the profile an earlier `assign-bits` pass
/// chose, else each quantizer's top bit-width).
func assignment(_ g: Graph, _ options: PassOptions, pass: String, context: PassContext? = nil) throws -> BitAssignment {
    let path = try options.string("profile")
    let bits = try options.int("bits")
    if path.isEmpty, bits <= 0, let chosen = context?.userInfo[profileKey] as? Profile {
        return try chosen.resolve(in: g)
    }
    if !path.isEmpty {
        var p = try Profile.load(path: path)
        if bits > 0 { p.defaultBits = bits }
        return try p.resolve(in: g, file: path)
    }
    return try (bits > 0 ? Profile.uniform(bits) : Profile()).resolve(in: g)
}

let profileOptions = [
    PassOption("bits", .int, default: "0", "uniform bit-width (0: an earlier assign-bits pass's profile, else the top)"),
    PassOption("profile", .string, default: "", "a per-layer profile JSON file (docs/profiles.md)"),
]

/// Specialises a multi-precision fake-quant graph to one profile: each quantizer keeps the bit-width and scale row
/// the profile gives it, and each SwitchableBatchNorm becomes the BatchNormalization of that bit-width. The
/// shared weight scale stays one per channel: the profile only fixes the shift Δ = 8 − b applied to the INT8 weights.
///
///     %w.fq = ai.bitswitch.FakeQuantWeight(%w, %s) {bits = [8, 6, 4, 2], ...}       %w.fq = ...FakeQuantWeight(%w, %s) {bits = [4], pinned_bits = 4}
///     %y = ai.bitswitch.SwitchableBatchNorm(%c, %g, %b, %m, %v) {bits = [8, 6, 4, 2]}  ==>  %y = BatchNormalization(%c, %g.b4, %b.b4, %m.b4, %v.b4)
let foldScalesPass = Pass(
    name: "fold-scales",
    summary: "specialise a multi-precision fake-quant model to one profile (bit-widths, scale rows, BN rows)",
    options: profileOptions
) { g, options, context in
    g = try specialize(g, assignment: assignment(g, options, pass: "fold-scales", context: context))
}

/// Lowers a fake-quant model to the integer dialect (docs/int-ops.md): input Quantize, QConv/QGemm on the stored
/// INT8 weights (shifted by Δ), one Requant per layer folding the weight scale s_c·2^Δ, the input scale, bias,
/// BatchNorm, ReLU and the next quantizer's 1/a; integer residual adds and pools; output Dequantize.
///
///     %x.fq = ai.bitswitch.FakeQuantAct(%x, %a) {pinned_bits = 8, signed = 1}     %x.q = ai.bitswitch.Quantize(%x) {scale = 0.0078, lo = -128, hi = 127, to = "i8"}
///     %c = Conv(%x.fq, %w.fq)                                               ==>    %c.acc = ai.bitswitch.QConv(%x.q, %w) {w_shift = 0, w_bits = 8}
///     %y = Relu(BatchNormalization(%c, ...)); %y.fq = FakeQuantAct(%y, ...)        %y.fq.q = ai.bitswitch.Requant(%c.acc, %m, %n, %bias) {lo = 0, hi = 15, to = "u8"}
let lowerIntPass = Pass(
    name: "lower-int",
    summary: "lower a fake-quant model to integer-only ops (requantization, integer conv/gemm/add/pool)",
    options: profileOptions
) { g, options, context in
    g = try lowerToIntegers(g, assignment: assignment(g, options, pass: "lower-int", context: context), log: context.logger)
}
