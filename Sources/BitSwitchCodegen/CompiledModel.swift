import BitSwitchIR
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A compiled bundle loaded with dlopen: one context and its arena, switched and run from Swift.
/// Not thread-safe (one context); load the library once per thread that needs its own context. `threads` is the
/// context's thread count (`bs_init`: 1 creates no thread, <= 0 means the online CPUs); results do not depend on it.
public final class CompiledModel: @unchecked Sendable {
    public let path: String
    public let inputSize: Int
    public let outputSize: Int
    /// Bytes `runQuantized` takes (0 when the model's input is not read by a single Quantize).
    public let quantizedInputBytes: Int
    public let profileNames: [String]
    public let layerNames: [String]
    /// Threads a run uses (`bs_thread_count`).
    public let threads: Int

    private let handle: UnsafeMutableRawPointer
    private let ctx: UnsafeMutableRawPointer
    private let arena: UnsafeMutableRawPointer?
    private let fnSetProfile: @convention(c) (UnsafeMutableRawPointer?, Int32) -> Int32
    private let fnSetLayerBits: @convention(c) (UnsafeMutableRawPointer?, Int32, Int32, Int32) -> Int32
    private let fnRun: @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<Float>?, UnsafeMutablePointer<Float>?) -> Int32
    private let fnRunQuantized: @convention(c) (UnsafeMutableRawPointer?, UnsafeRawPointer?, UnsafeMutablePointer<Float>?) -> Int32
    private let fnDestroy: @convention(c) (UnsafeMutableRawPointer?) -> Void
    // Per-layer timing; nil in a library emitted before it existed.
    private let fnSetLayerTiming: (@convention(c) (UnsafeMutableRawPointer?, Int32) -> Int32)?
    private let fnLayerTimeNs: (@convention(c) (UnsafeRawPointer?, Int32) -> Int64)?

    public init(library: String, threads: Int = 1) throws {
        path = library
        guard let h = dlopen(library, RTLD_NOW | RTLD_LOCAL) else {
            let msg = dlerror().map { String(cString: $0) } ?? "unknown error"
            throw BitSwitchError(.io, "cannot load the compiled model: \(msg)", file: library)
        }
        handle = h
        func sym<T>(_ name: String, _: T.Type) throws -> T {
            guard let p = dlsym(h, name) else {
                throw BitSwitchError(.io, "not a BitSwitch model library: symbol '\(name)' is missing", file: library)
            }
            return unsafeBitCast(p, to: T.self)
        }
        do {
            typealias SizeFn = @convention(c) () -> Int
            typealias CountFn = @convention(c) () -> Int32
            typealias NameFn = @convention(c) (Int32) -> UnsafePointer<CChar>?
            let arenaSize = try sym("bs_arena_size", SizeFn.self)()
            let ctxSize = try sym("bs_ctx_size", SizeFn.self)()
            inputSize = try sym("bs_input_size", SizeFn.self)()
            outputSize = try sym("bs_output_size", SizeFn.self)()
            quantizedInputBytes = try sym("bs_quantized_input_bytes", SizeFn.self)()
            let profileName = try sym("bs_profile_name", NameFn.self), layerName = try sym("bs_layer_name", NameFn.self)
            let profiles = try sym("bs_profile_count", CountFn.self)(), layers = try sym("bs_layer_count", CountFn.self)()
            profileNames = (0..<max(0, profiles)).map { profileName($0).map { String(cString: $0) } ?? "" }
            layerNames = (0..<max(0, layers)).map { layerName($0).map { String(cString: $0) } ?? "" }
            fnSetProfile = try sym("bs_set_profile", type(of: fnSetProfile))
            fnSetLayerBits = try sym("bs_set_layer_bits", type(of: fnSetLayerBits))
            fnRun = try sym("bs_run", type(of: fnRun))
            fnRunQuantized = try sym("bs_run_quantized", type(of: fnRunQuantized))
            fnDestroy = try sym("bs_destroy", type(of: fnDestroy))
            fnSetLayerTiming = dlsym(h, "bs_set_layer_timing").map { unsafeBitCast($0, to: (@convention(c) (UnsafeMutableRawPointer?, Int32) -> Int32).self) }
            fnLayerTimeNs = dlsym(h, "bs_layer_time_ns").map { unsafeBitCast($0, to: (@convention(c) (UnsafeRawPointer?, Int32) -> Int64).self) }
            let threadCount = try sym("bs_thread_count", (@convention(c) (UnsafeRawPointer?) -> Int32).self)
            let initFn = try sym("bs_init", (@convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, Int32) -> Int32).self)
            var c: UnsafeMutableRawPointer?, a: UnsafeMutableRawPointer?
            guard posix_memalign(&c, 64, max(ctxSize, 64)) == 0, let c else {
                throw BitSwitchError(.io, "cannot allocate the model context (\(ctxSize) bytes)", file: library)
            }
            ctx = c
            if arenaSize > 0 {
                guard posix_memalign(&a, 64, (arenaSize + 63) / 64 * 64) == 0 else {
                    free(c)
                    throw BitSwitchError(.io, "cannot allocate the model arena (\(arenaSize) bytes)", file: library)
                }
            }
            arena = a
            let rc = initFn(c, a, Int32(clamping: threads))
            guard rc == 0 else {
                free(c); free(a)
                let why = rc == -7 ? " (cannot start \(threads) threads)" : ""
                throw BitSwitchError(.io, "bs_init failed with code \(rc)\(why)", file: library)
            }
            self.threads = Int(threadCount(c))
        } catch {
            dlclose(h)
            throw error
        }
    }

    deinit {
        fnDestroy(ctx)
        free(ctx)
        free(arena)
        dlclose(handle)
    }

    public func setProfile(_ index: Int) throws {
        guard profileNames.indices.contains(index) else {
            throw BitSwitchError(.invalidModel, "profile \(index) does not exist; the library has \(profileNames.count): \(profileNames)", file: path)
        }
        try check(fnSetProfile(ctx, Int32(index)), "bs_set_profile(\(index))")
    }

    public func setProfile(named name: String) throws {
        guard let i = profileNames.firstIndex(of: name) else {
            throw BitSwitchError(.invalidModel, "no profile named '\(name)'; the library has \(profileNames)", file: path)
        }
        try setProfile(i)
    }

    public func setLayerBits(_ layer: String, w: Int, a: Int) throws {
        guard let i = layerNames.firstIndex(of: layer) else {
            throw BitSwitchError(.invalidModel, "'\(layer)' is not a switchable layer of this library (layers: \(layerNames))", file: path)
        }
        try setLayerBits(i, w: w, a: a)
    }

    public func setLayerBits(_ layer: Int, w: Int, a: Int) throws {
        guard layerNames.indices.contains(layer), let wb = Int32(exactly: w), let ab = Int32(exactly: a) else {
            throw BitSwitchError(.invalidModel, "layer \(layer) / bits w\(w) a\(a) out of range", file: path)
        }
        let rc = fnSetLayerBits(ctx, Int32(layer), wb, ab)
        if rc == -2 {
            throw BitSwitchError(.invalidModel, "layer '\(layerNames[layer])' at w\(w) a\(a) (with the other layers as they are) was not compiled into this library", file: path)
        }
        try check(rc, "bs_set_layer_bits")
    }

    /// Turns the library's per-layer timing on or off (`bs_set_layer_timing`); either way the counters restart at 0.
    public func setLayerTiming(_ on: Bool) throws {
        guard let f = fnSetLayerTiming else {
            throw BitSwitchError(.invalidModel, "this library has no per-layer timing (emitted by an older bitswitch): emit it again", file: path)
        }
        try check(f(ctx, on ? 1 : 0), "bs_set_layer_timing")
    }

    /// Nanoseconds layer `layer` (an index into `layerNames`) has run since timing was turned on.
    public func layerTimeNanoseconds(_ layer: Int) throws -> Int64 {
        guard let f = fnLayerTimeNs else {
            throw BitSwitchError(.invalidModel, "this library has no per-layer timing (emitted by an older bitswitch): emit it again", file: path)
        }
        let ns = f(ctx, Int32(clamping: layer))
        guard ns >= 0 else { throw BitSwitchError(.invalidModel, "layer \(layer) does not exist; the library has \(layerNames.count)", file: path) }
        return ns
    }

    /// One sample: `inputSize` floats in, `outputSize` floats out.
    public func run(_ input: [Float]) throws -> [Float] {
        guard input.count == inputSize else {
            throw BitSwitchError(.shape, "the compiled model takes \(inputSize) floats per sample, got \(input.count)", file: path)
        }
        var out = [Float](repeating: 0, count: outputSize)
        let rc = input.withUnsafeBufferPointer { i in out.withUnsafeMutableBufferPointer { o in fnRun(ctx, i.baseAddress, o.baseAddress) } }
        try check(rc, "bs_run")
        return out
    }

    /// One sample from the already-quantized input (the bytes of the input Quantize's output tensor).
    public func runQuantized(_ input: [UInt8]) throws -> [Float] {
        guard quantizedInputBytes > 0, input.count == quantizedInputBytes else {
            throw BitSwitchError(.shape, quantizedInputBytes == 0 ? "this model has no single input Quantize to skip"
                                 : "the quantized input has \(quantizedInputBytes) bytes, got \(input.count)", file: path)
        }
        var out = [Float](repeating: 0, count: outputSize)
        let rc = input.withUnsafeBytes { i in out.withUnsafeMutableBufferPointer { o in fnRunQuantized(ctx, i.baseAddress, o.baseAddress) } }
        try check(rc, "bs_run_quantized")
        return out
    }

    private func check(_ rc: Int32, _ what: String) throws {
        guard rc != 0 else { return }
        let meaning = [-1: "bad argument", -2: "bit-width combination not compiled in", -3: "misaligned arena",
                       -4: "not initialized", -5: "the model has no single input Quantize", -7: "cannot start the threads"][Int(rc)] ?? "error"
        throw BitSwitchError(.io, "\(what) failed with code \(rc) (\(meaning))", file: path)
    }
}
