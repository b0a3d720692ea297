import BitSwitchIR
import Foundation

/// How to compile a bundle: the compiler command (`CC`, may hold arguments like `ccache gcc`) and the flags.
public struct CompileOptions: Sendable {
    public var compiler: [String]
    public var flags: [String]
    public var cacheDirectory: String?
    /// When set, the bundle must have been emitted for this ISA (`bitswitch build --isa`).
    public var isa: KernelISA?
    public init(compiler: String? = nil, flags: [String] = ["-O3", "-march=native"], cacheDirectory: String? = nil,
                isa: KernelISA? = nil) {
        self.isa = isa
        let cc = compiler ?? ProcessInfo.processInfo.environment["CC"].flatMap { $0.isEmpty ? nil : $0 } ?? "cc"
        self.compiler = cc.split(separator: " ").map(String.init)
        self.flags = flags
        self.cacheDirectory = cacheDirectory
    }

    /// `$BITSWITCH_CACHE`, else `$XDG_CACHE_HOME/bitswitch`, else `~/.cache/bitswitch`.
    public static var defaultCacheDirectory: String {
        let env = ProcessInfo.processInfo.environment
        if let d = env["BITSWITCH_CACHE"], !d.isEmpty { return d }
        if let d = env["XDG_CACHE_HOME"], !d.isEmpty { return d + "/bitswitch" }
        return FileManager.default.homeDirectoryForCurrentUser.path + "/.cache/bitswitch"
    }
}

/// Result of running a process.
struct ProcessOutput { var status: Int32; var stdout: String; var stderr: String }

/// Runs `argv` (argv[0] resolved through PATH), capturing its output. Throws when it cannot be started.
func runProcess(_ argv: [String], stdin: String? = nil, cwd: String? = nil) throws -> ProcessOutput {
    guard let exe = argv.first, let path = resolveExecutable(exe) else {
        throw BitSwitchError(.io, "C compiler '\(argv.first ?? "")' not found on PATH; install one (e.g. apt-get install gcc) or set CC")
    }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = Array(argv.dropFirst())
    if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
    let out = Pipe(), err = Pipe(), inp = Pipe()
    p.standardOutput = out; p.standardError = err; p.standardInput = inp
    do { try p.run() } catch {
        throw BitSwitchError(.io, "cannot run '\(path)': \(error.localizedDescription)")
    }
    if let stdin { inp.fileHandleForWriting.write(Data(stdin.utf8)) }
    try? inp.fileHandleForWriting.close()
    // Read both pipes concurrently so that neither fills up.
    nonisolated(unsafe) var errData = Data()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async { errData = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    p.waitUntilExit()
    return ProcessOutput(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self))
}

func resolveExecutable(_ name: String) -> String? {
    let fm = FileManager.default
    if name.contains("/") { return fm.isExecutableFile(atPath: name) ? name : nil }
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
        let p = "\(dir)/\(name)"
        if fm.isExecutableFile(atPath: p) { return p }
    }
    return nil
}

/// Compiles the bundle in `directory` into a shared library. With `output` the library is written there
/// (atomically); otherwise it goes to the cache, keyed by the SHA-256 of the bundle's files, the compiler's
/// identity (its predefined macros for these flags: version and target ISA) and the flags; a hit skips the compiler.
/// Returns the library's path.
@discardableResult
public func buildBundle(directory: String, output: String? = nil, options: CompileOptions = CompileOptions()) throws -> String {
    let fm = FileManager.default
    let dir = URL(fileURLWithPath: directory).standardizedFileURL
    for f in ["bitswitch_model.c", "bs_kernels.c", "bitswitch_model.h", "bs_kernels.h"] where !fm.fileExists(atPath: dir.appendingPathComponent(f).path) {
        throw BitSwitchError(.io, "not a BitSwitch bundle: '\(f)' is missing (write one with 'bitswitch emit')", file: directory)
    }
    let isa = bundleISA(dir)
    if let want = options.isa, want != isa {
        throw BitSwitchError(.invalidModel, "the bundle was emitted for --isa \(isa.rawValue), not \(want.rawValue); emit it again with --isa \(want.rawValue)", file: directory)
    }
    let flags = BuildFiles.requiredFlags + options.flags + ["-fPIC", "-shared"]
    // The compiler's identity for these flags: its version and every target feature macro (-march=native resolved).
    let probe = try runProcess(options.compiler + flags.filter { $0 != "-shared" } + ["-dM", "-E", "-x", "c", "-"], stdin: "")
    guard probe.status == 0 else {
        throw BitSwitchError(.io, "the C compiler '\(options.compiler.joined(separator: " "))' failed on the flags \(flags.joined(separator: " ")):\n\(probe.stderr)")
    }
    var h = SHA256()
    h.update("bitswitch-build-v2")
    h.update("isa=\(isa.rawValue)")
    h.update(options.compiler.joined(separator: " "))
    h.update(flags.joined(separator: " "))
    h.update(probe.stdout.split(separator: "\n").sorted().joined(separator: "\n"))
    for f in (try fm.contentsOfDirectory(atPath: dir.path)).sorted() where f.hasSuffix(".c") || f.hasSuffix(".h") {
        guard let data = fm.contents(atPath: dir.appendingPathComponent(f).path) else {
            throw BitSwitchError(.io, "cannot read", file: dir.appendingPathComponent(f).path)
        }
        h.update(f)
        h.update(data)
    }
    let key = h.finish()
    let cacheDir = URL(fileURLWithPath: options.cacheDirectory ?? CompileOptions.defaultCacheDirectory).appendingPathComponent("c")
    let cached = cacheDir.appendingPathComponent("\(key).so")
    if !fm.fileExists(atPath: cached.path) {
        do { try fm.createDirectory(at: cacheDir, withIntermediateDirectories: true) } catch {
            throw BitSwitchError(.io, "cannot create the build cache: \(error.localizedDescription)", file: cacheDir.path)
        }
        // The kernels are the same for every model: their object is cached on its own (key: kernel sources,
        // compiler identity, flags), so a new model compiles only bitswitch_model.c.
        var objects: [String] = []
        for source in ["bs_kernels.c", "bs_kernels_avx2.c", "bs_kernels_avx512vnni.c", "bs_kernels_neon.c", "bs_threads.c"] where fm.fileExists(atPath: dir.appendingPathComponent(source).path) {
            var kh = SHA256()
            kh.update("bitswitch-kernels-v2")
            kh.update(source)
            kh.update(options.compiler.joined(separator: " "))
            kh.update(flags.joined(separator: " "))
            kh.update(probe.stdout.split(separator: "\n").sorted().joined(separator: "\n"))
            for f in [source, "bs_kernels.h", "bs_kernels_avx2.h", "bs_kernels_avx512vnni.h", "bs_kernels_neon.h", "bs_threads.h"] { kh.update(fm.contents(atPath: dir.appendingPathComponent(f).path) ?? Data()) }
            let kernelObject = cacheDir.appendingPathComponent("kernels-\(kh.finish()).o")
            if !fm.fileExists(atPath: kernelObject.path) {
                DurableFiles.removeStale(besides: kernelObject.path)
                let tmp = URL(fileURLWithPath: DurableFiles.temporaryPath(for: kernelObject.path))
                let argv = options.compiler + flags.filter { $0 != "-shared" } + ["-c", "-o", tmp.path, dir.appendingPathComponent(source).path]
                try compile(argv, tmp, into: kernelObject, directory: directory)
            }
            objects.append(kernelObject.path)
        }
        DurableFiles.removeStale(besides: cached.path)
        let tmp = URL(fileURLWithPath: DurableFiles.temporaryPath(for: cached.path))
        let argv = options.compiler + flags + ["-o", tmp.path, dir.appendingPathComponent("bitswitch_model.c").path] + objects + ["-lm", "-lpthread"]
        try compile(argv, tmp, into: cached, directory: directory)
    }
    guard let output else { return cached.path }
    let out = URL(fileURLWithPath: output).standardizedFileURL
    DurableFiles.removeStale(besides: out.path)
    let tmp = URL(fileURLWithPath: DurableFiles.temporaryPath(for: out.path))
    do {
        try fm.copyItem(at: cached, to: tmp)
        guard DurableFiles.sync(tmp.path) else { throw BitSwitchError(.io, "cannot sync the copy") }
        guard rename(tmp.path, out.path) == 0 else { throw BitSwitchError(.io, String(cString: strerror(errno))) }
        DurableFiles.sync(out.deletingLastPathComponent().path, directory: true)
    } catch {
        try? fm.removeItem(at: tmp)
        let why = (error as? BitSwitchError)?.message ?? error.localizedDescription
        throw BitSwitchError(.io, "cannot write the library: \(why)", file: output)
    }
    return out.path
}

/// Runs the compiler writing `tmp`, then renames it to `target` (another process may have won the race: fine).
private func compile(_ argv: [String], _ tmp: URL, into target: URL, directory: String) throws {
    let fm = FileManager.default
    let r = try runProcess(argv, cwd: directory)
    guard r.status == 0 else {
        try? fm.removeItem(at: tmp)
        throw BitSwitchError(.io, "the C compiler failed (exit \(r.status)): \(argv.joined(separator: " "))\n\(r.stderr)\(r.stdout)", file: directory)
    }
    // On disk before it is visible (a torn library in the cache would be loaded by the next run); rename(2) replaces
    // atomically: a concurrent build of the same key wrote the same bytes.
    guard DurableFiles.sync(tmp.path), rename(tmp.path, target.path) == 0 else {
        let why = String(cString: strerror(errno))
        try? fm.removeItem(at: tmp)
        throw BitSwitchError(.io, "cannot store the build in the cache: \(why)", file: target.path)
    }
    DurableFiles.sync(target.deletingLastPathComponent().path, directory: true)
}

extension SHA256 {
    mutating func update(_ d: Data) { feed(d); feed([UInt8(0)]) }
}

/// The ISA a bundle was emitted for (`#define BS_ISA` in its header; bundles from before the macro: generic).
func bundleISA(_ dir: URL) -> KernelISA {
    guard let h = try? String(contentsOf: dir.appendingPathComponent("bitswitch_model.h"), encoding: .utf8),
          let line = h.split(separator: "\n").first(where: { $0.hasPrefix("#define BS_ISA ") }) else { return .generic }
    let parts = line.split(separator: "\"")
    return parts.count >= 2 ? KernelISA(rawValue: String(parts[1])) ?? .generic : .generic
}
