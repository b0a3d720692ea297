import BitSwitchCodegen
import BitSwitchIR
import Foundation
import Testing

/// Hostile model names cannot inject C; bad input gives clear errors; the C is clean under -Wall -Wextra -pedantic.
struct SafetyTests {
    static let hostile = [
        "*/ int evil = 1; /*", "a\nb\r\n#include <stdlib.h>", "\"); system(\"rm -rf /\"); (\"", "back\\slash\\",
        "??/ trigraph ??=", "int", "return", "Ünïcödé 名前 🙂", String(repeating: "long", count: 500), "", "n0_", "%$@!`'",
    ]

    /// Renames every node, value, layer and the graph itself with hostile names (keeping the structure).
    static func hostileVariant(_ bits: Int) throws -> Graph {
        var g = try SwitchingTests.variant(conv1: LayerBits(w: bits, a: bits), fc: LayerBits(w: bits, a: bits))
        var map: [String: String] = [:]
        var k = 0
        func rename(_ s: String) -> String {
            if s.isEmpty { return s }
            if let r = map[s] { return r }
            let r = hostile[k % hostile.count] + "#\(k)"   // unique
            k += 1; map[s] = r
            return r
        }
        var h = Graph(name: hostile[0], opsets: g.opsets)
        h.inputs = g.inputs.map { ValueInfo(name: rename($0.name), type: $0.type) }
        h.outputs = g.outputs.map { ValueInfo(name: rename($0.name), type: $0.type) }
        for (name, t) in g.orderedInitializers { h.setInitializer(rename(name), t) }
        h.nodes = g.nodes.map { Node(name: rename($0.name), op: $0.op, inputs: $0.inputs.map(rename), outputs: $0.outputs.map(rename)) }
        // Layer names and site keys follow the renaming.
        let layerName = ["conv1": hostile[2], "fc": hostile[0]]
        let lb = "{\(json(layerName["conv1"]!)): {\"w\": \(bits), \"a\": \(bits)}, \(json(layerName["fc"]!)): {\"w\": \(bits), \"a\": \(bits)}}"
        let sites: [(String, [String])] = [("q", ["conv1:a"]), ("conv1", ["conv1:w", "conv1:a"]), ("rq1", ["conv1:w", "conv1:a", "fc:a"]),
                                           ("fc", ["fc:w", "fc:a"]), ("rq2", ["fc:w", "fc:a"])]
        let st = "{" + sites.map { node, ss in
            json(map[node]!) + ": [" + ss.map { s in
                let parts = s.split(separator: ":")
                return json(layerName[String(parts[0])]! + ":" + parts[1])
            }.joined(separator: ", ") + "]"
        }.joined(separator: ", ") + "}"
        h.metadata = ["bitswitch.int.bits": lb, "bitswitch.int.sites": st]
        g = h
        return g
    }

    static func json(_ s: String) -> String {
        let d = try? JSONSerialization.data(withJSONObject: [s], options: [.fragmentsAllowed])
        let a = String(decoding: d ?? Data(), as: UTF8.self)
        return String(a.dropFirst().dropLast())
    }

    @Test func hostileNamesCompileCleanAndStayBitExact() throws {
        let v8 = try Self.hostileVariant(8), v4 = try Self.hostileVariant(4)
        let input = EmitInput(variants: [v8, v4], profiles: [(Self.hostile[1], 0), (Self.hostile[2], 1)])
        let dir = TempDir()
        try emitBundle(input, to: dir.file("bundle"))
        // Strict warnings as errors: a name that leaked into code would break this build (or be caught below).
        let lib = try buildBundle(directory: dir.file("bundle"), options: CompileOptions(
            flags: ["-O1", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wno-overlength-strings"], cacheDirectory: Harness.cache))
        let model = try CompiledModel(library: lib)
        #expect(model.profileNames == [Self.hostile[1], Self.hostile[2]])
        #expect(model.layerNames == [Self.hostile[2], Self.hostile[0]])
        let x = Harness.floats(72, seed: 3)
        for (p, v) in [(0, v8), (1, v4)] {
            try model.setProfile(p)
            Harness.expectSameBits(try model.run(x), try Harness.interpret(v, x), "profile \(p)")
        }
        // fc alone at 4 bits: rq1's key (conv1 w8 a8, fc a4) was never compiled: refused by its hostile name.
        try model.setProfile(0)
        #expect(throws: BitSwitchError.self) { try model.setLayerBits(Self.hostile[0], w: 4, a: 4) }
    }

    @Test func theGeneratedSourceHoldsNamesOnlyEscaped() throws {
        let files = try generateBundle(EmitInput(variants: [try Self.hostileVariant(8)], profiles: [(Self.hostile[2], 0)]))
        let c = try #require(files["bitswitch_model.c"])
        // Comments hold no comment terminator or raw newline from a name; literals no raw quote, backslash, '?'.
        for bad in ["*/ int evil", "??/", "??=", "Ü", "名"] { #expect(!c.contains(bad), "\(bad)") }
        // The code outside comments and string literals holds none of the names' text.
        let code = Self.codeOnly(c)
        for bad in ["int evil", "system(", "#include <stdlib", "rm -rf", "trigraph ", "\\slash"] { #expect(!code.contains(bad), "\(bad)") }
        #expect(code.contains("bs_qmm_run__generic")
                && (code.contains("bs_par_generic(NULL, &j)") || code.contains("bs_par_generic((bs_pool *)ctx->pool, &j)")))
    }

    /// C source without its comments and string literals (the generator writes no character constants).
    static func codeOnly(_ s: String) -> String {
        var out = "", it = Array(s), i = 0
        while i < it.count {
            if it[i] == "/", i + 1 < it.count, it[i + 1] == "*" {
                i += 2
                while i + 1 < it.count, !(it[i] == "*" && it[i + 1] == "/") { i += 1 }
                i += 2
            } else if it[i] == "\"" {
                i += 1
                while i < it.count, it[i] != "\"" { i += it[i] == "\\" ? 2 : 1 }
                i += 1
                out += "\"\""
            } else { out.append(it[i]); i += 1 }
        }
        return out
    }

    @Test func badInputsGiveClearErrors() throws {
        // A float op between Quantize and Dequantize.
        let g1 = try parseGraph("""
        graph @t opsets {"": 17, "ai.bitswitch": 1} {
          input %x: f32[N,4]
          %r = Relu(%x) @act
          output %r: f32[*]
        }
        """)
        #expect { try generateBundle(EmitInput(graph: g1)) } throws: { "\($0)".contains("node 'act'") && "\($0)".contains("Relu") }
        // Non-static dims other than the batch.
        let g2 = try parseGraph("""
        graph @t opsets {"": 17, "ai.bitswitch": 1} {
          input %x: f32[N,K]
          %q = ai.bitswitch.Quantize(%x) {hi = 127, lo = -128, scale = 0.5, to = "i8", zero = 0}
          %y = ai.bitswitch.Dequantize(%q) {scale = 0.5, zero = 0}
          output %y: f32[*]
        }
        """)
        #expect { try generateBundle(EmitInput(graph: g2)) } throws: { "\($0)".contains("non-static dim 1") }
        // An integer output (the API returns floats).
        let g3 = try parseGraph("""
        graph @t opsets {"": 17, "ai.bitswitch": 1} {
          input %x: f32[N,4]
          %q = ai.bitswitch.Quantize(%x) {hi = 127, lo = -128, scale = 0.5, to = "i8", zero = 0}
          output %q: i8[*]
        }
        """)
        #expect { try generateBundle(EmitInput(graph: g3)) } throws: { "\($0)".contains("Dequantize") }
        // Huge dims: a clear error, not an overflowing arena.
        for dims in ["N,3000000000,100000", "N,4611686018427387904,4", "N,100000,100000,100000"] {
            let g = try parseGraph("""
            graph @t opsets {"": 17, "ai.bitswitch": 1} {
              input %x: f32[\(dims)]
              %q = ai.bitswitch.Quantize(%x) {hi = 127, lo = -128, scale = 0.5, to = "i8", zero = 0}
              %y = ai.bitswitch.Dequantize(%q) {scale = 0.5, zero = 0}
              output %y: f32[*]
            }
            """)
            #expect { try generateBundle(EmitInput(graph: g)) } throws: { "\($0)".contains("2^44") }
        }
        // Missing compiler and a compile error show what happened.
        let dir = TempDir()
        let g4 = try parseGraph("""
        graph @t opsets {"": 17, "ai.bitswitch": 1} {
          input %x: f32[N,4]
          %q = ai.bitswitch.Quantize(%x) {hi = 127, lo = -128, scale = 0.5, to = "i8", zero = 0}
          %y = ai.bitswitch.Dequantize(%q) {scale = 0.5, zero = 0}
          output %y: f32[*]
        }
        """)
        try emitBundle(EmitInput(graph: g4), to: dir.file("b"))
        // A second emit replaces the bundle (one atomic exchange) and leaves no temporary beside it.
        try emitBundle(EmitInput(graph: g4), to: dir.file("b"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix(".b.") }.isEmpty)
        #expect(FileManager.default.fileExists(atPath: dir.file("b/bitswitch_model.h")))
        #expect { try buildBundle(directory: dir.file("b"), options: CompileOptions(compiler: "no-such-cc-bitswitch", cacheDirectory: dir.file("cache"))) }
            throws: { "\($0)".contains("not found") }
        try "this is not C\n".write(toFile: dir.file("b/bitswitch_model.c"), atomically: true, encoding: .utf8)
        #expect { try buildBundle(directory: dir.file("b"), options: CompileOptions(cacheDirectory: dir.file("cache"))) }
            throws: { "\($0)".contains("C compiler failed") && "\($0)".contains("bitswitch_model.c") }
        // emit refuses to replace a directory that is not a bundle.
        try FileManager.default.createDirectory(atPath: dir.file("mine"), withIntermediateDirectories: true)
        try "keep".write(toFile: dir.file("mine/notes.txt"), atomically: true, encoding: .utf8)
        #expect { try emitBundle(EmitInput(graph: g4), to: dir.file("mine")) } throws: { "\($0)".contains("not a BitSwitch bundle") }
        #expect(FileManager.default.fileExists(atPath: dir.file("mine/notes.txt")))
    }
}
