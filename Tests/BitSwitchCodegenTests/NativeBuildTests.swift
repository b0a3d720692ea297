import BitSwitchCodegen
import BitSwitchIR
import Foundation
import Testing

/// The bundle built outside the tool: under AddressSanitizer + UndefinedBehaviorSanitizer, and cross-compiled
/// for aarch64 and run under qemu, through a small C driver; outputs bit-exact with the interpreter (and x86).
struct NativeBuildTests {
    /// Reads `count` samples of BS_INPUT_SIZE floats from argv[1]; for every profile and sample prints the output
    /// bit patterns in hex, one per line; then the same through bs_set_layer_bits from argv[3] ("layer w a" lines).
    /// The context runs on $BS_THREADS threads (default 1) and is bs_destroy'ed at the end; stderr's last line counts
    /// the process's threads (/proc/self/task) before bs_init, after it and after bs_destroy.
    static let driver = """
    #define _POSIX_C_SOURCE 200809L
    #include <dirent.h>
    #include <stdio.h>
    #include <stdlib.h>
    #include <string.h>
    #include <time.h>
    #include "bitswitch_model.h"

    static int live_threads(void) {
        DIR *d = opendir("/proc/self/task");
        int n = 0;
        if (!d) return -1;
        for (struct dirent *e; (e = readdir(d)) != NULL;) n += e->d_name[0] != '.';
        closedir(d);
        return n;
    }

    static void dump(const float *out) {
        for (size_t i = 0; i < BS_OUTPUT_SIZE; i++) { uint32_t u; memcpy(&u, &out[i], 4); printf("%08x\\n", (unsigned)u); }
    }

    int main(int argc, char **argv) {
        if (argc < 3) return 2;
        int count = atoi(argv[2]);
        FILE *f = fopen(argv[1], "rb");
        if (!f) return 3;
        float *in = malloc(sizeof(float) * BS_INPUT_SIZE * (size_t)count);
        if (fread(in, sizeof(float) * BS_INPUT_SIZE, (size_t)count, f) != (size_t)count) return 4;
        fclose(f);
        bs_ctx ctx;
        void *arena = aligned_alloc(BS_ARENA_ALIGNMENT, (bs_arena_size() + 63) / 64 * 64 + 64);
        float out[BS_OUTPUT_SIZE];
        const char *threads = getenv("BS_THREADS");
        int before = live_threads();
        if (bs_init(&ctx, arena, threads ? atoi(threads) : 1) != BS_OK) return 5;
        int during = live_threads();
        for (int p = 0; p < bs_profile_count(); p++) {
            if (bs_set_profile(&ctx, p) != BS_OK) return 6;
            for (int s = 0; s < count; s++) { if (bs_run(&ctx, in + (size_t)s * BS_INPUT_SIZE, out) != BS_OK) return 7; dump(out); }
        }
        if (argc > 3) {
            FILE *l = fopen(argv[3], "r");
            int layer, w, a;
            if (!l) return 8;
            bs_set_profile(&ctx, 0);
            while (fscanf(l, "%d %d %d", &layer, &w, &a) == 3) {
                printf("rc %d\\n", bs_set_layer_bits(&ctx, layer, w, a));
                for (int s = 0; s < count; s++) { bs_run(&ctx, in + (size_t)s * BS_INPUT_SIZE, out); dump(out); }
            }
            fclose(l);
        }
        bs_destroy(&ctx);
        /* A joined thread's /proc entry can outlive pthread_join by a moment (the kernel clears the tid before the
         * task is gone): wait up to 2 s for the pool's t - 1 threads to leave; a thread never joined stays. */
        int pool = during - before, after = live_threads();
        if (pool > (threads ? atoi(threads) : 1) - 1) pool = (threads ? atoi(threads) : 1) - 1;
        for (int i = 0; i < 200 && pool > 0 && after > during - pool; i++) {
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
            after = live_threads();
        }
        fprintf(stderr, "threads: %d %d %d\\n", before, during, after);
        free(arena);
        free(in);
        return 0;
    }
    """

    struct Case {
        var input: EmitInput
        var samples: [[Float]]
        /// (layer, w, a, expected rc, variant whose outputs follow)
        var layerSteps: [(Int, Int, Int, Int32, Int)]
    }

    static func switchingCase() throws -> Case {
        let variants = try SwitchingTests.combos.map { try SwitchingTests.variant(conv1: $0.1, fc: $0.2) }
        let input = EmitInput(variants: variants, profiles: [("8", 0), ("4", 1), ("2", 4)])
        return Case(input: input, samples: (0..<3).map { Harness.floats(72, seed: UInt64(70 + $0), scale: 2.5) },
                    layerSteps: [(0, 4, 4, 0, 2), (1, 4, 4, 0, 1), (0, 2, 2, -2, 1), (0, 8, 8, 0, 3)])
    }

    /// The lines the driver must print, from the interpreter.
    static func expected(_ c: Case) throws -> [String] {
        var lines: [String] = []
        func dump(_ v: Int) throws {
            for x in c.samples { lines += try Harness.interpret(c.input.variants[v], x).map { String(format: "%08x", $0.bitPattern) } }
        }
        for p in c.input.profiles { try dump(p.variant) }
        for s in c.layerSteps { lines.append("rc \(s.3)"); try dump(s.4) }
        return lines
    }

    static func run(_ argv: [String], cwd: String, environment: [String: String] = [:]) throws -> (Int32, String, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = argv
        if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        p.currentDirectoryURL = URL(fileURLWithPath: cwd)
        let out = Pipe(), err = Pipe()
        p.standardOutput = out; p.standardError = err
        try p.run()
        nonisolated(unsafe) var e = Data()
        let g = DispatchGroup(); g.enter()
        DispatchQueue.global().async { e = err.fileHandleForReading.readDataToEndOfFile(); g.leave() }
        let o = out.fileHandleForReading.readDataToEndOfFile()
        g.wait(); p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    /// Emits the case with the driver and its data files into a fresh directory.
    static func prepare(_ c: Case, _ dir: TempDir) throws -> String {
        let b = dir.file("bundle")
        try emitBundle(c.input, to: b)
        try driver.write(toFile: b + "/driver.c", atomically: true, encoding: .utf8)
        var bytes = Data()
        for x in c.samples { for v in x { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } } }
        try bytes.write(to: URL(fileURLWithPath: b + "/in.bin"))
        try c.layerSteps.map { "\($0.0) \($0.1) \($0.2)" }.joined(separator: "\n").write(toFile: b + "/layers.txt", atomically: true, encoding: .utf8)
        return b
    }

    static let sources = ["bitswitch_model.c", "bs_kernels.c", "bs_threads.c", "driver.c"]

    @Test func buildCacheKeyFollowsContentAndFlags() throws {
        let dir = TempDir()
        let g = try SwitchingTests.variant(conv1: LayerBits(w: 8, a: 8), fc: LayerBits(w: 8, a: 8))
        try emitBundle(EmitInput(graph: g), to: dir.file("b"))
        let opts = CompileOptions(cacheDirectory: dir.file("cache"))
        let first = try buildBundle(directory: dir.file("b"), options: opts)
        let stamp = try FileManager.default.attributesOfItem(atPath: first)[.modificationDate] as? Date
        // Same content and flags: the cached library, untouched.
        #expect(try buildBundle(directory: dir.file("b"), options: opts) == first)
        #expect(try FileManager.default.attributesOfItem(atPath: first)[.modificationDate] as? Date == stamp)
        // Other flags, or other content: another key.
        let o2 = try buildBundle(directory: dir.file("b"), options: CompileOptions(flags: ["-O1"], cacheDirectory: dir.file("cache")))
        #expect(o2 != first)
        try emitBundle(EmitInput(graph: try SwitchingTests.variant(conv1: LayerBits(w: 4, a: 4), fc: LayerBits(w: 8, a: 8))), to: dir.file("b"))
        #expect(try buildBundle(directory: dir.file("b"), options: opts) != first)
        // -o copies the library out.
        let out = try buildBundle(directory: dir.file("b"), output: dir.file("lib.so"), options: opts)
        #expect(out.hasSuffix("/lib.so") && FileManager.default.fileExists(atPath: out))
        _ = try CompiledModel(library: out)
    }

    @Test func sanitizersFindNothingAndResultsStayBitExact() throws {
        for c in [try Self.switchingCase(), try Self.randomCase()] {
            let dir = TempDir()
            let b = try Self.prepare(c, dir)
            let cc = ProcessInfo.processInfo.environment["CC"] ?? "cc"
            let (rc, _, err) = try Self.run([cc, "-std=c11", "-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                                             "-fno-omit-frame-pointer", "-ffp-contract=off", "-pthread", "-Wall", "-Wextra", "-o", "drv"] + Self.sources + ["-lm"], cwd: b)
            try #require(rc == 0, "sanitizer build failed: \(err)")
            for threads in [1, 3] {
                let (rrc, out, rerr) = try Self.run(["./drv", "in.bin", "\(c.samples.count)", "layers.txt"], cwd: b,
                                                    environment: ["BS_THREADS": "\(threads)"])
                #expect(rrc == 0, "driver exit \(rrc): \(rerr)")
                #expect(!rerr.contains("runtime error") && !rerr.contains("AddressSanitizer"), "\(rerr)")
                let got = out.split(separator: "\n").map(String.init), want = try Self.expected(c)
                #expect(got == want, "\(threads) threads: first difference at line \(zip(got, want).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(got.count, want.count))")
            }
        }
    }

    /// A residual/pool graph from the property test, as one more single-profile case.
    static func randomCase() throws -> Case {
        let g = try PropertyTests.randomGraph(seed: 1003)
        let n = Harness.batch1Shape(g).reduce(1, *)
        return Case(input: EmitInput(graph: g), samples: (0..<2).map { Harness.floats(n, seed: UInt64(90 + $0)) }, layerSteps: [])
    }

    /// Whether aarch64-linux-gnu-gcc and qemu-aarch64 are on the PATH. Missing with apt-get available: an issue
    /// (scripts/install-deps.sh installs them); missing without apt-get: a clean skip.
    static func hasAarch64CrossTools(_ test: String) -> Bool {
        let tools = ["aarch64-linux-gnu-gcc", "qemu-aarch64"]
        let missing = tools.filter { t in !(ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").contains {
            FileManager.default.isExecutableFile(atPath: "\($0)/\(t)") } }
        if missing.isEmpty { return true }
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/apt-get") {
            Issue.record("missing \(missing.joined(separator: ", ")): run scripts/install-deps.sh (gcc-aarch64-linux-gnu, qemu-user)")
        } else {
            print("skipping \(test): \(missing.joined(separator: ", ")) missing and apt-get is unavailable")
        }
        return false
    }

    /// The aarch64 build of a bundle under qemu on two threads: the portable kernels (`generic`), the NEON kernels
    /// with `sdot` (`neon-dotprod`, -march=armv8.2-a+dotprod) and without (`neon-armv8`, plain ARMv8.0 NEON), on the
    /// switching case (i8 conv, u8 gemm, profile and layer switches that repack the weights) and the residual/pool
    /// graph. The same bytes as this machine's own build (its best ISA) and as the interpreter.
    @Test(arguments: ["generic", "neon-dotprod", "neon-armv8"])
    func aarch64CrossBuildUnderQemuIsBitExactWithX86(variant: String) throws {
        guard Self.hasAarch64CrossTools("the aarch64 cross test") else { return }
        let isa: KernelISA = variant == "generic" ? .generic : .neon
        let march = variant == "neon-dotprod" ? ["-march=armv8.2-a+dotprod"] : variant == "neon-armv8" ? ["-march=armv8-a"] : []
        for c in variant == "generic" ? [try Self.switchingCase()] : [try Self.switchingCase(), try Self.randomCase()] {
            let dir = TempDir()
            var arm = c
            arm.input.isa = isa
            let b = try Self.prepare(arm, dir)
            if isa == .neon {
                let model = try String(contentsOfFile: b + "/bitswitch_model.c", encoding: .utf8)
                #expect(model.contains("bs_neon_run") && model.contains("bs_qs8_pack_weights__neon"), "the neon bundle does not call the NEON kernels")
            }
            let (rc, _, err) = try Self.run(["aarch64-linux-gnu-gcc", "-std=c11", "-O3"] + march + ["-ffp-contract=off", "-pthread", "-static", "-o", "drv-arm64"]
                                            + Self.sources + (isa == .neon ? ["bs_kernels_neon.c"] : []) + ["-lm"], cwd: b)
            try #require(rc == 0, "\(variant): cross build failed: \(err)")
            // Two threads on aarch64 (the kernels' tasks split over them), one on x86: the same bytes.
            let (rrc, out, rerr) = try Self.run(["qemu-aarch64", "./drv-arm64", "in.bin", "\(c.samples.count)", "layers.txt"], cwd: b,
                                                environment: ["BS_THREADS": "2"])
            #expect(rrc == 0, "\(variant): qemu run exit \(rrc): \(rerr)")
            // This machine's build of the same network with its own kernels, natively.
            var host = c
            host.input.isa = .host
            let xdir = TempDir()
            let xb = try Self.prepare(host, xdir)
            let xsources = Self.sources + (KernelISA.host == .generic ? [] : ["bs_kernels_avx2.c"]) + (KernelISA.host == .avx512vnni ? ["bs_kernels_avx512vnni.c"] : [])
            let (xrc, _, xerr) = try Self.run([ProcessInfo.processInfo.environment["CC"] ?? "cc", "-std=c11", "-O3", "-march=native",
                                               "-ffp-contract=off", "-pthread", "-o", "drv-x86"] + xsources + ["-lm"], cwd: xb)
            try #require(xrc == 0, "x86 build failed: \(xerr)")
            let (_, xout, _) = try Self.run(["./drv-x86", "in.bin", "\(c.samples.count)", "layers.txt"], cwd: xb)
            #expect(out == xout, "\(variant): aarch64 and x86 (\(KernelISA.host.rawValue)) outputs differ")
            #expect(out.split(separator: "\n").map(String.init) == (try Self.expected(c)), "\(variant): aarch64 and the interpreter differ")
        }
    }

    /// PropertyTests' random conv / residual / pool graphs (groups, strides, pads, dilations, bit-widths, containers)
    /// through the NEON kernels under qemu on 2 threads, alternately with and without the dot product extension:
    /// the interpreter's bytes.
    @Test func randomGraphsMatchTheInterpreterWithNEONKernelsUnderQemu() throws {
        guard Self.hasAarch64CrossTools("randomGraphsMatchTheInterpreterWithNEONKernelsUnderQemu") else { return }
        for seed in 0..<12 {
            let g = try PropertyTests.randomGraph(seed: UInt64(1000 + seed))
            let n = Harness.batch1Shape(g).reduce(1, *)
            let c = Case(input: EmitInput(graph: g, isa: .neon), samples: (0..<2).map { Harness.floats(n, seed: UInt64(7 * seed + $0)) },
                         layerSteps: [])
            let dir = TempDir()
            let b = try Self.prepare(c, dir)
            let march = seed % 2 == 0 ? "-march=armv8.2-a+dotprod" : "-march=armv8-a"
            let (rc, _, err) = try Self.run(["aarch64-linux-gnu-gcc", "-std=c11", "-O2", march, "-ffp-contract=off", "-pthread", "-static",
                                             "-o", "drv-arm64"] + Self.sources + ["bs_kernels_neon.c", "-lm"], cwd: b)
            try #require(rc == 0, "seed \(1000 + seed): cross build failed: \(err)")
            let (rrc, out, rerr) = try Self.run(["qemu-aarch64", "./drv-arm64", "in.bin", "\(c.samples.count)", "layers.txt"], cwd: b,
                                                environment: ["BS_THREADS": "2"])
            #expect(rrc == 0, "seed \(1000 + seed): qemu run exit \(rrc): \(rerr)")
            #expect(out.split(separator: "\n").map(String.init) == (try Self.expected(c)), "seed \(1000 + seed) (\(march)): NEON bundle and interpreter differ")
        }
    }

    /// A bundle emitted for NEON but compiled for x86 stops with the #error that says so.
    @Test func neonBundleOnX86StopsWithAClearError() throws {
        let dir = TempDir()
        let b = dir.file("bundle")
        try emitBundle(EmitInput(graph: try SwitchingTests.variant(conv1: .init(w: 8, a: 8), fc: .init(w: 8, a: 8)), isa: .neon), to: b)
        #if arch(x86_64)
        let cc = ProcessInfo.processInfo.environment["CC"] ?? "cc"
        let (rc, _, err) = try Self.run([cc, "-std=c11", "-O1", "-c", "-o", "m.o", "bitswitch_model.c"], cwd: b)
        #expect(rc != 0)
        #expect(err.contains("--isa neon"), "\(err)")
        #endif
    }
}
