/// ONNX `auto_pad`.
public enum AutoPad: String, Sendable, Hashable {
    case notSet = "NOTSET", sameUpper = "SAME_UPPER", sameLower = "SAME_LOWER", valid = "VALID"
}

/// Conv attributes. Unset lists take ONNX's defaults from the weight's shape at run time.
public struct ConvAttrs: Sendable, Hashable {
    public var kernelShape: [Int]?
    public var strides: [Int]?
    public var pads: [Int]?          // [x1_begin, x2_begin, ..., x1_end, x2_end, ...]
    public var dilations: [Int]?
    public var group: Int = 1
    public var autoPad: AutoPad = .notSet
    public init(kernelShape: [Int]? = nil, strides: [Int]? = nil, pads: [Int]? = nil, dilations: [Int]? = nil,
                group: Int = 1, autoPad: AutoPad = .notSet) {
        self.kernelShape = kernelShape; self.strides = strides; self.pads = pads; self.dilations = dilations
        self.group = group; self.autoPad = autoPad
    }
}

/// MaxPool / AveragePool attributes.
public struct PoolAttrs: Sendable, Hashable {
    public var kernelShape: [Int]
    public var strides: [Int]?
    public var pads: [Int]?
    public var dilations: [Int]?
    public var autoPad: AutoPad = .notSet
    public var ceilMode: Bool = false
    public var countIncludePad: Bool = false   // AveragePool only
    public var storageOrder: Int = 0           // MaxPool Indices output only
    public init(kernelShape: [Int], strides: [Int]? = nil, pads: [Int]? = nil, dilations: [Int]? = nil,
                autoPad: AutoPad = .notSet, ceilMode: Bool = false, countIncludePad: Bool = false,
                storageOrder: Int = 0) {
        self.kernelShape = kernelShape; self.strides = strides; self.pads = pads; self.dilations = dilations
        self.autoPad = autoPad; self.ceilMode = ceilMode; self.countIncludePad = countIncludePad
        self.storageOrder = storageOrder
    }
}

public struct GemmAttrs: Sendable, Hashable {
    public var alpha: Float = 1
    public var beta: Float = 1
    public var transA: Bool = false
    public var transB: Bool = false
    public init(alpha: Float = 1, beta: Float = 1, transA: Bool = false, transB: Bool = false) {
        self.alpha = alpha; self.beta = beta; self.transA = transA; self.transB = transB
    }
}

public enum PadMode: String, Sendable, Hashable { case constant, reflect, edge, wrap }

/// Weight fake-quantizer (Double Rounding, METHOD.md §1). Inputs: W, s (one scale per channel along `axis`).
public struct FakeQuantWeightAttrs: Sendable, Hashable {
    public var bits: [Int]            // the trained bit set, descending
    public var storedBits: Int = 8    // h
    public var axis: Int = 0
    public var pinnedBits: Int?       // first/last layer: always this bit-width
    public var exactGradient: Bool = false
    public init(bits: [Int], storedBits: Int = 8, axis: Int = 0, pinnedBits: Int? = nil, exactGradient: Bool = false) {
        self.bits = bits; self.storedBits = storedBits; self.axis = axis; self.pinnedBits = pinnedBits
        self.exactGradient = exactGradient
    }
}

/// Activation fake-quantizer (LSQ, METHOD.md §2). Inputs: x, scales (shape [bits.count], one per bit-width).
public struct FakeQuantActAttrs: Sendable, Hashable {
    public var bits: [Int]
    public var signed: Bool
    public var pinnedBits: Int?
    public init(bits: [Int], signed: Bool, pinnedBits: Int? = nil) {
        self.bits = bits; self.signed = signed; self.pinnedBits = pinnedBits
    }
}

/// Integer convolution (docs/int-ops.md): int32 accumulators of `(x − x_zero) · clamp(rshr(w, w_shift))`.
public struct QConvAttrs: Sendable, Hashable {
    public var conv: ConvAttrs
    /// Δ = stored bits − active weight bits: the weight used is `clamp(rshr(w, Δ), −2^(b−1), 2^(b−1) − 1)`.
    public var wShift: Int
    public var wBits: Int
    public var xZero: Int
    public init(conv: ConvAttrs, wShift: Int = 0, wBits: Int = 8, xZero: Int = 0) {
        self.conv = conv; self.wShift = wShift; self.wBits = wBits; self.xZero = xZero
    }
}

/// Integer matrix product `x[..., K] · W` (W is [K, M], or [M, K] with trans_b), int32 accumulators.
public struct QGemmAttrs: Sendable, Hashable {
    public var transB: Bool
    public var wShift: Int
    public var wBits: Int
    public var xZero: Int
    public init(transB: Bool, wShift: Int = 0, wBits: Int = 8, xZero: Int = 0) {
        self.transB = transB; self.wShift = wShift; self.wBits = wBits; self.xZero = xZero
    }
}

/// `y = clamp(rshr64((x + bias_c) · m_c, n_c) + zero, lo, hi)`, per channel along `axis` (tables of one value: per tensor).
public struct RequantAttrs: Sendable, Hashable {
    public var axis: Int
    public var lo: Int
    public var hi: Int
    public var zero: Int
    /// Output container: i8, u8 or i32.
    public var to: DType
    public init(axis: Int = 1, lo: Int, hi: Int, zero: Int = 0, to: DType) {
        self.axis = axis; self.lo = lo; self.hi = hi; self.zero = zero; self.to = to
    }
}

/// `y = clamp(rshr64((a − a_zero) · m_a + (b − b_zero) · m_b, n) + zero, lo, hi)`, same shapes.
public struct QAddAttrs: Sendable, Hashable {
    public var ma: Int, mb: Int, n: Int
    public var aZero: Int, bZero: Int, zero: Int
    public var lo: Int, hi: Int
    public var to: DType
    public init(ma: Int, mb: Int, n: Int, aZero: Int = 0, bZero: Int = 0, zero: Int = 0, lo: Int, hi: Int, to: DType) {
        self.ma = ma; self.mb = mb; self.n = n; self.aZero = aZero; self.bZero = bZero; self.zero = zero
        self.lo = lo; self.hi = hi; self.to = to
    }
}

/// The operations of the IR, grouped like dialects: ONNX float ops, the quant dialect, the integer dialect.
/// Optional ONNX inputs (Clip min/max, Squeeze axes, Pad pads, ...) stay node inputs; "" marks an absent one.
public enum Op: Sendable, Hashable {
    // ONNX (float) dialect
    case conv(ConvAttrs)
    case gemm(GemmAttrs)
    case matMul
    case add, sub, mul, div
    case relu
    case leakyRelu(alpha: Float)
    case clip(min: Float?, max: Float?)          // attribute form (opset < 11); input form uses inputs 1 and 2
    case sigmoid
    case hardSigmoid(alpha: Float, beta: Float)
    case hardSwish
    case tanh
    case batchNormalization(epsilon: Float, momentum: Float, trainingMode: Bool)
    case maxPool(PoolAttrs)
    case averagePool(PoolAttrs)
    case globalAveragePool
    case flatten(axis: Int)
    case reshape(allowZero: Bool)
    case transpose(perm: [Int]?)
    case concat(axis: Int)
    case squeeze(axes: [Int]?)                   // nil: axes from input 1, or every size-1 dim
    case unsqueeze(axes: [Int]?)                 // nil: axes from input 1
    case softmax(axis: Int, legacy: Bool)        // legacy (opset < 13): coerce to 2-D at axis
    case logSoftmax(axis: Int, legacy: Bool)
    case identity
    case dropout(ratio: Float)                   // inference: identity (+ all-true mask)
    case pad(mode: PadMode, pads: [Int]?, value: Float)  // pads nil: from inputs (opset >= 11)
    case reduceMean(axes: [Int]?, keepDims: Bool, noopWithEmptyAxes: Bool)
    case shape(start: Int, end: Int?)
    case gather(axis: Int)
    case quantizeLinear(axis: Int, saturate: Bool, outputType: DType?)
    case dequantizeLinear(axis: Int)
    // quant dialect (domain ai.bitswitch)
    case fakeQuantWeight(FakeQuantWeightAttrs)
    case fakeQuantAct(FakeQuantActAttrs)
    /// BatchNormalization with one set of (scale, bias, mean, var) per bit-width: inputs x, then four [bits.count, C] tensors.
    /// Transitional BN (`previous` set: the FakeQuantWeight node of the previous quantized layer): one set per
    /// (previous layer's bits, own bits) pair, [bits.count², C], row `index(previous) · bits.count + index(own)`.
    case switchableBatchNorm(bits: [Int], epsilon: Float, momentum: Float, previous: String? = nil)
    /// LayerNormalization with one affine (scale, bias) per bit-width: inputs x, then two [bits.count, D] tensors
    /// (D = the product of the normalized dimensions, from `axis` on).
    case switchableLayerNorm(bits: [Int], axis: Int, epsilon: Float)
    // integer dialect (domain ai.bitswitch, docs/int-ops.md): what lower-int produces and the C back end runs
    /// Float → integer, once at the network input: clamp(roundHalfEven(x / scale) + zero, lo, hi).
    case quantize(scale: Float, zero: Int, lo: Int, hi: Int, to: DType)
    /// Integer → float, once at the outputs: (x − zero) · scale.
    case dequantize(scale: Float, zero: Int)
    case qconv(QConvAttrs)
    case qgemm(QGemmAttrs)
    /// Inputs: x (any integer), m (i32), n (i32), bias (i32) — each [C] along `axis`, or [1].
    case requant(RequantAttrs)
    case qadd(QAddAttrs)
    /// Max pool on integers (padding never wins).
    case qmaxPool(PoolAttrs)
    /// Average pool: rshr64(Σ(x − zero) · R(count), 24) + zero, R(c) = (2^24 + c/2) / c.
    case qavgPool(PoolAttrs, zero: Int)
    case qglobalAvgPool(zero: Int)
    // transformer ops (ONNX float dialect, issue 11). Mapping: OpMapping+Transformer.swift; shape rules:
    // ShapeRules/Transformer.swift; kernels: BitSwitchRuntime/Kernels/*.swift.
    /// Normalizes over the axes from `axis` to the last; inputs X, Scale, optional B; outputs Y, Mean, InvStdDev.
    case layerNormalization(axis: Int, epsilon: Float)
    /// Gelu (opset 20); `tanh` selects approximate="tanh".
    case gelu(tanh: Bool)
    case erf, sqrt, reciprocal, neg, exp
    case pow
    case cast(to: DType)
    /// ONNX Where(condition, X, Y).
    case select
    case equal, less, not
    case expand
    /// Output filled with `value` (a one-element tensor; nil: float 0).
    case constantOfShape(value: Tensor?)
    case range
    /// Slice; opset < 10 carries starts/ends/axes as attributes, later opsets as inputs 1...4.
    case slice(starts: [Int]?, ends: [Int]?, axes: [Int]?)
    /// Split; sizes from the attribute (opset < 13), input 1, or `numOutputs` (opset 18) / the output count.
    case split(axis: Int, sizes: [Int]?, numOutputs: Int?)
    case reduceSum(axes: [Int]?, keepDims: Bool, noopWithEmptyAxes: Bool)
    case reduceMax(axes: [Int]?, keepDims: Bool, noopWithEmptyAxes: Bool)

    public static let bitswitchDomain = "ai.bitswitch"
}

extension Op {
    /// Parameter rows of a SwitchableBatchNorm: one per bit-width, or (transitional BN, `previous` set) one per
    /// (previous layer's bits, own bits) pair.
    public static func switchableBatchNormRows(bits: [Int], previous: String?) -> Int {
        previous == nil ? bits.count : bits.count * bits.count
    }
}
