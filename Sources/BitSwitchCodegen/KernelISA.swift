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
    /// aarch64. No NEON kernels yet: bundles use the generic kernels.
    case neon

    /// Whether the bundle calls the packed-weight x86 kernels (AVX2 or AVX-512 VNNI; both take a bs_avx2_job).
    var usesAVX2Kernels: Bool { self == .avx2 || self == .avx512vnni }

    /// The suffix of the bundle's fast conv / gemm kernels: `bs_qs8_pack_weights__<suffix>`,
    /// `bs_<suffix>_stages` (only meaningful when usesAVX2Kernels).
    var kernelSuffix: String { self == .avx512vnni ? "avx512vnni" : "avx2" }

    /// The suffix of the bundle's Requant, QAdd and QMaxPool kernels (`bs_requant__<suffix>`, `bs_qadd__<suffix>`, ...).
    var elementwiseSuffix: String { usesAVX2Kernels ? kernelSuffix : "generic" }

    /// The prefix of the staged QConv/QGemm kernels the bundle's thread pool runs (`<prefix>_stages`, `_tasks`,
    /// `_run`, all taking a `bs_avx2_job`); nil where the generic split kernels run. A new family is one line here.
    var stagedFamily: String? { usesAVX2Kernels ? "bs_\(kernelSuffix)" : nil }

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
    static func cpuFlags() -> Set<String> {
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
