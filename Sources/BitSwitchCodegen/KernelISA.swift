import BitSwitchIR
import Foundation

/// The instruction set the generated C is written for (`bitswitch emit --isa`). The bundle calls the fast kernels
/// of that ISA where they exist and the portable generic kernels everywhere else (docs/c-backend.md, "Kernels").
public enum KernelISA: String, CaseIterable, Sendable {
    /// Portable C11 only (the bit-exact reference).
    case generic
    /// x86-64 with AVX2 (Haswell, Zen 1–3 and later): the AVX2 int8 conv / gemm kernels.
    case avx2
    /// x86-64 with AVX-512 VNNI. No VNNI kernels yet: bundles use the AVX2 kernels (every VNNI CPU has AVX2).
    case avx512vnni
    /// aarch64. No NEON kernels yet: bundles use the generic kernels.
    case neon

    /// Which family of kernels the bundle calls.
    var usesAVX2Kernels: Bool { self == .avx2 || self == .avx512vnni }

    /// The prefix of the staged QConv/QGemm kernels the bundle's thread pool runs (`<prefix>_stages`, `_tasks`,
    /// `_run`, all taking a `bs_avx2_job`); nil where the generic split kernels run. A new family is one line here.
    var stagedFamily: String? {
        switch self {
        case .avx2, .avx512vnni: return "bs_avx2"
        case .generic, .neon: return nil
        }
    }

    /// What the machine running this process has: the best ISA with kernels here.
    public static var host: KernelISA {
        #if arch(x86_64)
        let flags = cpuFlags()
        if flags.contains("avx512_vnni") && flags.contains("avx512f") && flags.contains("avx2") { return .avx512vnni }
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
