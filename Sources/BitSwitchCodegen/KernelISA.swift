import BitSwitchIR
import Foundation

/// The instruction set the generated C is written for (`bitswitch emit --isa`). The bundle calls the fast kernels
/// of that ISA where they exist and the portable generic kernels everywhere else (docs/c-backend.md, "Kernels").
public enum KernelISA: String, CaseIterable, Sendable {
    /// Portable C11 only (the bit-exact reference).
    case generic
    /// x86-64 with AVX2 (Haswell, Zen 1–3 and later): the AVX2 int8 conv / gemm kernels.
    case avx2
    /// x86-64 with AVX-512 VNNI (and BW): the `vpdpbusd` int8 conv / gemm kernels of bs_kernels_avx512vnni.c.
    case avx512vnni
    /// aarch64 with NEON: the int8 conv / gemm kernels of bs_kernels_neon.c (`sdot` where the compiler targets the
    /// dot product extension, plain ARMv8.0 NEON otherwise); the other ops use the generic kernels.
    case neon

    /// Whether the bundle calls packed-weight conv / gemm kernels (AVX2, AVX-512 VNNI or NEON; all take a
    /// bs_avx2_job, weights packed by `bs_qs8_pack_weights__<kernelSuffix>`, a shared scratch area).
    var usesPackedKernels: Bool { self != .generic }

    /// The suffix of the bundle's fast conv / gemm kernels: `bs_qs8_pack_weights__<suffix>`,
    /// `bs_<suffix>_stages` (only meaningful when usesPackedKernels).
    var kernelSuffix: String {
        switch self {
        case .avx512vnni: return "avx512vnni"
        case .neon: return "neon"
        default: return "avx2"
        }
    }

    /// The C header of the fast conv / gemm kernels, the preprocessor test that fails without the target features
    /// they need, what they are, how to compile for them and the ISAs to emit for instead (the bundle's #error).
    var kernelHeader: (file: String, missing: String, what: String, hint: String, otherwise: String)? {
        switch self {
        case .generic: return nil
        case .avx2: return ("bs_kernels_avx2.h", "!defined(__AVX2__)", "AVX2 kernels",
                            "compile with -mavx2 (or -march=native on an AVX2 machine)", "generic")
        case .avx512vnni: return ("bs_kernels_avx512vnni.h", "!defined(__AVX512VNNI__) || !defined(__AVX512BW__) || !defined(__AVX2__)",
                                  "AVX-512 VNNI kernels", "compile with -mavx512vnni -mavx512bw -mavx2 (or -march=native on a machine with AVX-512 VNNI)",
                                  "avx2 or generic")
        case .neon: return ("bs_kernels_neon.h", "!defined(__aarch64__) || !defined(__ARM_NEON)", "aarch64 NEON kernels",
                            "compile for aarch64 (e.g. aarch64-linux-gnu-gcc; -march=armv8.2-a+dotprod for the sdot kernels)", "generic")
        }
    }

    /// The kernel families whose headers the bundle includes (VNNI bundles also use the AVX2 file's depthwise kernel
    /// and vectorized pack).
    var kernelFamilies: [KernelISA] {
        switch self {
        case .generic: return []
        case .avx512vnni: return [.avx512vnni, .avx2]
        default: return [self]
        }
    }

    /// The suffix of the bundle's input Quantize (`bs_f32_quantize__avx2` in x86 bundles, which compile the AVX2 file).
    var quantizeSuffix: String { self == .avx2 || self == .avx512vnni ? "avx2" : "generic" }

    /// The suffix of the bundle's Requant, QAdd and QMaxPool kernels (`bs_requant__<suffix>`, `bs_qadd__<suffix>`, ...):
    /// vectorized for the x86 families, the generic ones for NEON and generic bundles.
    var elementwiseSuffix: String { self == .avx2 || self == .avx512vnni ? kernelSuffix : "generic" }

    /// The prefix of the staged QConv/QGemm kernels the bundle's thread pool runs (`<prefix>_stages`, `_tasks`,
    /// `_run`, all taking a `bs_avx2_job`); nil where the generic split kernels run. A new family is one line here.
    var stagedFamily: String? { usesPackedKernels ? "bs_\(kernelSuffix)" : nil }

    /// What the machine running this process has: the best ISA with kernels here.
    public static var host: KernelISA {
        #if arch(x86_64)
        let flags = cpuFlags()
        if flags.contains("avx512_vnni") && flags.contains("avx512f") && flags.contains("avx512bw") && flags.contains("avx2") {
            return .avx512vnni
        }
        if flags.contains("avx2") { return .avx2 }
        return .generic
        #elseif arch(arm64)
        return .neon
        #else
        return .generic
        #endif
    }

    /// The `flags` line of /proc/cpuinfo (empty elsewhere).
    public static func cpuFlags() -> Set<String> {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
              let colon = line.firstIndex(of: ":") else { return [] }
        return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
    }

    /// Parses `--isa`: one of the cases, or `native`/`host` for the machine's own.
    public static func parse(_ s: String) throws -> KernelISA {
        if s == "native" || s == "host" { return .host }
        guard let v = KernelISA(rawValue: s) else {
            throw BitSwitchError(.unsupported, "unknown ISA '\(s)'; use one of \(KernelISA.allCases.map(\.rawValue).joined(separator: ", ")) or native")
        }
        return v
    }
}
