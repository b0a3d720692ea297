import BitSwitchIR
import CBLAS
import CKernels
import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

// MARK: allocation guards

/// Element count of a result shape, refusing overflow and sizes the machine cannot hold. Every kernel calls
/// this before allocating an output, so a hostile or mistaken shape becomes an error, not a crash.
func checkedCount(_ shape: [Int], _ dtype: DType = .f32, what: String = "output") throws -> Int {
    _ = allocatorConfigured
    guard let n = checkedElementCount(shape) else {
        throw BitSwitchError(.shape, "\(what) shape \(shapeString(shape)) has an invalid or overflowing element count")
    }
    let (bytes, overflow) = n.multipliedReportingOverflow(by: dtype == .f16 ? 4 : dtype.byteWidth)
    // Small requests skip the /proc read; only large ones can exceed memory.
    if overflow || (bytes > 256 << 20 && bytes > (availableMemoryBytes() ?? Int.max)) {
        throw BitSwitchError(.shape, "\(what) shape \(shapeString(shape)) needs \(overflow ? "more than Int.max" : "\(bytes)") bytes, more than the memory available")
    }
    return n
}

/// Runs once, before the first output allocation or BLAS call.
private let allocatorConfigured: Void = bs_configure_allocator()


/// A Float array of `n` elements filled by `body` (which must write every element unless `zeroed`).
@inline(__always)
func makeFloats(_ n: Int, zeroed: Bool = false, _ body: (UnsafeMutablePointer<Float>) throws -> Void) rethrows -> [Float] {
    // An empty request never reaches Array(unsafeUninitializedCapacity: 0): that stores its count into the shared
    // empty-array singleton, a write ThreadSanitizer reports as a race with every other thread reading an empty array
    // (seen in CI: two tests' conv gradients at once). The body still runs, on a pointer it may not write through.
    if n == 0 {
        var none: Float = 0
        try withUnsafeMutablePointer(to: &none) { try body($0) }
        return []
    }
    return try [Float](unsafeUninitializedCapacity: n) { buf, count in
        guard let p = buf.baseAddress else { count = 0; return }
        if zeroed { p.initialize(repeating: 0, count: n) }
        try body(p)
        count = n
    }
}

// MARK: threads

/// Threads used by the runtime's own loops (BLAS threads are set alongside). 0 = all cores.
/// Atomic: executors on different threads (tests run in parallel, a server runs several models) set it concurrently.
private let ownThreads = Atomic<Int>(0)

/// Sets the thread count of OpenBLAS and of the runtime's own parallel loops (process-wide; nil or <= 0 keeps
/// the current setting, which starts at one thread per core). `Executor.run` calls it with its `threads`.
public func setRuntimeThreads(_ n: Int?) {
    _ = allocatorConfigured
    guard let n, n > 0 else { return }
    ownThreads.store(n, ordering: .relaxed)
    openblas_set_num_threads(Int32(n))
}

/// Pins the thread count of the runtime's own loops for the code a task runs, whatever the process-wide setting:
/// tests that must exercise the parallel kernels (the ThreadSanitizer run) use it, since tests running alongside
/// set the process-wide count.
enum RuntimeThreadsOverride {
    @TaskLocal static var threads: Int? = nil
}

var runtimeThreads: Int {
    if let t = RuntimeThreadsOverride.threads, t > 0 { return t }
    let n = ownThreads.load(ordering: .relaxed)
    return n > 0 ? n : max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
}

/// Elements per thread below which an elementwise training pass (ReLU, Add, gradient sums) stays on one thread:
/// those passes are memory-bound and short, and on a busy machine a hand-off to a second thread can cost more than
/// the pass (the digits CNN's 262k-float activations stay on one thread, ResNet-20's 0.5-2M-float ones split).
let elementwiseChunk = 1 << 18

/// Runs `body` over 0..<n split into contiguous chunks on up to `runtimeThreads` threads.
func parallelFor(_ n: Int, minChunk: Int = 1, _ body: (Range<Int>) -> Void) {
    let t = min(runtimeThreads, max(1, n / max(1, minChunk)))
    if t <= 1 || n <= 1 { body(0..<n); return }
    withoutActuallyEscaping(body) { body in
        // Chunks touch disjoint memory; the closure is only shared for the duration of this call.
        nonisolated(unsafe) let b = body
        DispatchQueue.concurrentPerform(iterations: t) { k in
            let lo = n * k / t, hi = n * (k + 1) / t
            if lo < hi { b(lo..<hi) }
        }
    }
}

// MARK: tensor access

extension Tensor {
    /// The Float storage of an f32/f16 tensor; other dtypes are a type error naming `what`.
    func f32(_ what: String) throws -> [Float] {
        guard case .f32(let a) = storage else {
            throw BitSwitchError(.type, "\(what) must be a float tensor, got \(dtype)")
        }
        return a
    }
}

func shapeString(_ s: [Int]) -> String { "[" + s.map(String.init).joined(separator: ",") + "]" }

/// Normalizes a possibly negative axis against `rank` (ONNX allows [-rank, rank-1]).
func normalizeAxis(_ axis: Int, rank: Int, what: String = "axis") throws -> Int {
    let a = axis < 0 ? axis + rank : axis
    guard a >= 0, a < rank else {
        throw BitSwitchError(.invalidModel, "\(what) \(axis) is out of range for rank \(rank)")
    }
    return a
}

/// BLAS takes 32-bit dimensions and leading strides.
func checkBLASDims(_ dims: [Int]) throws {
    if let d = dims.first(where: { $0 > Int(Int32.max) }) {
        throw BitSwitchError(.unsupported, "a matrix dimension of \(d) exceeds the 32-bit range of BLAS")
    }
}

// MARK: scratch memory

/// Reused scratch buffers for im2col and packing. Fresh large allocations are mmap'd by malloc and every page
/// faults on first touch, which cost more than the im2col itself; keeping a few buffers avoids that.
private struct ScratchBuffer: @unchecked Sendable {
    var base: UnsafeMutablePointer<Float>
    var capacity: Int
}
/// A pthread mutex. The scratch pool uses it rather than Synchronization.Mutex, whose futex-based lock on Linux
/// ThreadSanitizer cannot see (it reported the pool's accesses under that lock as races); pthread_mutex_lock is
/// intercepted, so `make test-tsan` checks the pool for real.
final class PthreadLock: @unchecked Sendable {
    private let m: UnsafeMutablePointer<pthread_mutex_t>
    init() { m = .allocate(capacity: 1); pthread_mutex_init(m, nil) }
    func withLock<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(m)
        defer { pthread_mutex_unlock(m) }
        return try body()
    }
}

/// Guarded by `scratchLock`.
nonisolated(unsafe) private var scratchBuffers: [ScratchBuffer] = []
private let scratchLock = PthreadLock()
private let scratchKeep = 6

/// `scratchBuffers` under `scratchLock`.
private enum scratchPool {
    static func withLock<R>(_ body: (inout [ScratchBuffer]) -> R) -> R { scratchLock.withLock { body(&scratchBuffers) } }
}

func withScratch<R>(_ n: Int, _ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
    let buf = scratchPool.withLock { pool -> ScratchBuffer? in
        guard let i = pool.indices.filter({ pool[$0].capacity >= n }).min(by: { pool[$0].capacity < pool[$1].capacity })
        else { return nil }
        return pool.remove(at: i)
    } ?? ScratchBuffer(base: .allocate(capacity: max(n, 1)), capacity: max(n, 1))
    defer {
        scratchPool.withLock { pool in
            pool.append(buf)
            if pool.count > scratchKeep, let i = pool.indices.min(by: { pool[$0].capacity < pool[$1].capacity }) {
                pool.remove(at: i).base.deallocate()
            }
        }
    }
    return try body(buf.base)
}
