import BitSwitchIR
import BitSwitchRuntime

/// Registered once per process; Swift initialises globals lazily and thread-safely.
private let registration: Void = {
    let d = Op.bitswitchDomain
    TrainingKernelRegistry.register(opType: "FakeQuantWeight", domain: d, kernel: FakeQuantWeightKernel())
    TrainingKernelRegistry.register(opType: "FakeQuantAct", domain: d, kernel: FakeQuantActKernel())
    TrainingKernelRegistry.register(opType: "SwitchableBatchNorm", domain: d, kernel: SwitchableBatchNormKernel())
    TrainingKernelRegistry.register(opType: "SwitchableLayerNorm", domain: d, kernel: SwitchableLayerNormKernel())
}()

/// Makes the quant dialect (FakeQuantWeight, FakeQuantAct, SwitchableBatchNorm, SwitchableLayerNorm) runnable by the training engine
/// and, through its fallback, by the inference `Executor`. Idempotent and thread-safe; call before building a
/// `TrainingGraph` or `Executor` over a quantized graph.
public func registerKernels() {
    _ = registration
}
