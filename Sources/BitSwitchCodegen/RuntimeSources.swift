import BitSwitchIR
import Foundation

/// The hand-written portable kernels (Runtime/generic/*.c, *.h), shipped as SwiftPM resources and copied into
/// every bundle. Looked up next to the executable (where SwiftPM puts the resource bundle of a build in .build,
/// and where an installer should put it), in Bundle.main's resource path, then in the source tree this module was
/// built from; `BITSWITCH_RUNTIME_DIR` overrides all of them.
enum RuntimeSources {
    static let names = ["bs_kernels.h", "bs_kernels.c", "bs_kernels_avx2.h", "bs_kernels_avx2.c",
                         "bs_kernels_avx512vnni.h", "bs_kernels_avx512vnni.c", "bs_kernels_neon.h", "bs_kernels_neon.c",
                         "bs_threads.h", "bs_threads.c"]
    static let bundleName = "BitSwitch_BitSwitchCodegen.resources"

    static func candidates() -> [URL] {
        var dirs: [URL] = []
        if let env = ProcessInfo.processInfo.environment["BITSWITCH_RUNTIME_DIR"], !env.isEmpty {
            return [URL(fileURLWithPath: env)]
        }
        let exe = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath().deletingLastPathComponent()
        dirs.append(exe.appendingPathComponent(bundleName).appendingPathComponent("Runtime/generic"))
        let main = Bundle.main.bundleURL
        dirs.append(main.appendingPathComponent(bundleName).appendingPathComponent("Runtime/generic"))
        // Test runners live in a .xctest directory next to the resource bundles.
        dirs.append(main.deletingLastPathComponent().appendingPathComponent(bundleName).appendingPathComponent("Runtime/generic"))
        if let r = Bundle.main.resourceURL { dirs.append(r.appendingPathComponent(bundleName).appendingPathComponent("Runtime/generic")) }
        dirs.append(URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Runtime/generic"))
        return dirs
    }

    static func directory() throws -> URL {
        let fm = FileManager.default
        let dirs = candidates()
        if let d = dirs.first(where: { d in names.allSatisfy { fm.fileExists(atPath: d.appendingPathComponent($0).path) } }) {
            return d
        }
        throw BitSwitchError(.io, "cannot find the C runtime sources (\(names.joined(separator: ", "))); looked in: "
                             + dirs.map(\.path).joined(separator: ", ") + ". Set BITSWITCH_RUNTIME_DIR to Sources/BitSwitchCodegen/Runtime/generic")
    }

    static func files() throws -> [String: String] {
        let d = try directory()
        var r: [String: String] = [:]
        for n in names {
            let p = d.appendingPathComponent(n).path
            guard let data = FileManager.default.contents(atPath: p), let s = String(data: data, encoding: .utf8) else {
                throw BitSwitchError(.io, "cannot read the C runtime source", file: p)
            }
            r[n] = s
        }
        return r
    }
}
