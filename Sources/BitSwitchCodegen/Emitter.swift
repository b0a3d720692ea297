import BitSwitchIR
import Foundation

/// What `emitBundle` wrote.
public struct EmitReport: Sendable {
    public var directory: String
    public var files: [String]
    public var arenaBytes: Int
    public var weightBytes: Int
    public var profileCount: Int
    public var layerCount: Int
    public var bundleBytes: Int
}

/// Writes the C bundle for `input` into `directory` atomically: a temporary sibling directory, every file fsynced,
/// renamed into place, or, over an existing bundle, exchanged with it in one step (`renameat2` RENAME_EXCHANGE; two
/// renames where the file system cannot). An existing directory is replaced only when it holds a previous bundle
/// (`bitswitch_model.h`) or is empty.
@discardableResult
public func emitBundle(_ input: EmitInput, to directory: String) throws -> EmitReport {
    let files = try generateBundle(input)
    let fm = FileManager.default
    let dir = URL(fileURLWithPath: directory).standardizedFileURL
    var isDir: ObjCBool = false
    if fm.fileExists(atPath: dir.path, isDirectory: &isDir) {
        let contents = (try? fm.contentsOfDirectory(atPath: dir.path)) ?? []
        guard isDir.boolValue, contents.isEmpty || contents.contains("bitswitch_model.h") else {
            throw BitSwitchError(.io, "exists and is not a BitSwitch bundle; refusing to replace it", file: directory)
        }
    }
    let parent = dir.deletingLastPathComponent()
    // Temporary and replaced bundles that a killed emit left beside the target are removed first.
    DurableFiles.removeStale(besides: dir.path, kinds: ["tmp", "old"])
    let tmp = URL(fileURLWithPath: DurableFiles.temporaryPath(for: dir.path))
    do {
        try fm.createDirectory(at: parent, withIntermediateDirectories: true)
        try fm.createDirectory(at: tmp, withIntermediateDirectories: false)
        // Every file and the directory itself are on disk before the rename makes the bundle visible.
        for (name, text) in files.sorted(by: { $0.key < $1.key }) {
            let path = tmp.appendingPathComponent(name).path
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            guard DurableFiles.sync(path) else { throw BitSwitchError(.io, "cannot sync \(name)", file: directory) }
        }
        DurableFiles.sync(tmp.path, directory: true)
        if fm.fileExists(atPath: dir.path), DurableFiles.exchange(tmp.path, dir.path) {
            // One atomic swap: the new bundle is in place and the temporary holds the old one.
            try? fm.removeItem(at: tmp)
        } else if fm.fileExists(atPath: dir.path) {
            let old = URL(fileURLWithPath: DurableFiles.temporaryPath(for: dir.path, kind: "old"))
            try fm.moveItem(at: dir, to: old)
            try fm.moveItem(at: tmp, to: dir)
            try? fm.removeItem(at: old)
        } else {
            try fm.moveItem(at: tmp, to: dir)
        }
        DurableFiles.sync(parent.path, directory: true)
    } catch {
        try? fm.removeItem(at: tmp)
        throw BitSwitchError(.io, "cannot write the bundle: \(error.localizedDescription)", file: directory)
    }
    let plan = try Plan(input)
    let weights = plan.weightOffsets.keys.reduce(0) { $0 + (plan.graph.initializers[plan.graph.nodes[$1].inputs[1]]?.count ?? 0) }
    return EmitReport(directory: dir.path, files: files.keys.sorted(), arenaBytes: plan.arenaBytes, weightBytes: weights,
                      profileCount: plan.profiles.count, layerCount: plan.layers.count,
                      bundleBytes: files.values.reduce(0) { $0 + $1.utf8.count })
}

/// The bundle's files by name (the C sources, build files and README), without writing anything.
public func generateBundle(_ input: EmitInput) throws -> [String: String] {
    let plan = try Plan(input)
    var w = CWriter(plan: plan)
    var files = try RuntimeSources.files()
    files["bitswitch_model.h"] = w.header()
    files["bitswitch_model.c"] = try w.source()
    files["Makefile"] = BuildFiles.makefile
    files["CMakeLists.txt"] = BuildFiles.cmake
    files["README.md"] = BuildFiles.readme(plan)
    return files
}

struct CWriter {
    let plan: Plan
    var g: Graph { plan.graph }

    func ctype(_ d: DType) -> String {
        switch d {
        case .i8: return "int8_t"
        case .u8: return "uint8_t"
        case .f32: return "float"
        default: return "int32_t"
        }
    }
    func tcode(_ d: DType?) -> String {
        switch d {
        case .i8?: return "BS_T_I8"
        case .u8?: return "BS_T_U8"
        default: return "BS_T_I32"
        }
    }
    func tcode(_ v: String) -> String { tcode(plan.dtypes[v]) }
    func count(_ v: String) -> Int { (plan.shapes[v] ?? []).reduce(1, *) }
    func ptr(_ v: String) -> String { "(A + \(plan.offsets[v] ?? 0))" }
    /// The trailing bs_ew_job fields for the Requants `rs` fused into the job that makes v: nreaders, readers,
    /// rchannels, rinner (Plan.planFusedReaders).
    func readers(_ v: String, _ rs: [Int]) throws -> String {
        let s = plan.shapes[v] ?? []
        guard s.count >= 2 else { throw BitSwitchError(.shape, "'\(v)' has no channel dim for its fused Requants") }
        let items = try rs.map { r -> String in
            let rn = plan.graph.nodes[r], out = rn.outputs[0]
            guard let pi = plan.paramIndex[r] else { throw BitSwitchError(.invalidModel, "Requant without parameters", node: rn.label, op: rn.op.typeName) }
            return "{&\(nodeID(r))_p[B[\(pi)]], \(ptr(out)), \(tcode(out))}"
        }
        return "\(rs.count), {\(items.joined(separator: ", "))}, \(CSyntax.size(s[1])), \(CSyntax.size(s.dropFirst(2).reduce(1, *)))"
    }
    func tptr(_ v: String) -> String { "(const \(ctype(plan.dtypes[v] ?? .i8)) *)(A + \(plan.offsets[v] ?? 0))" }
    func nodeID(_ i: Int) -> String { CSyntax.identifier("n", i, g.nodes[i].name.isEmpty ? g.nodes[i].label : g.nodes[i].name) }

    var inputCount: Int { count(plan.input.name) }
    var outputCount: Int { g.outputs.reduce(0) { $0 + count($1.name) } }
    var quantizedInputType: String {
        guard let q = plan.quantizeOfInput, let o = g.nodes[q].outputs.first else { return "int8_t" }
        return ctype(plan.dtypes[o] ?? .i8)
    }

    func header() -> String {
        let L = max(1, plan.layers.count), P = max(1, plan.paramNodes.count), Q = max(1, plan.weightOffsets.count)
        return """
        /* Generated by BitSwitch: the C API of one compiled integer model. See README.md. */
        #ifndef BITSWITCH_MODEL_H
        #define BITSWITCH_MODEL_H

        #include <stddef.h>
        #include <stdint.h>

        #ifdef __cplusplus
        extern "C" {
        #endif

        /* Return codes (0 = success). */
        #define BS_OK 0
        #define BS_ERR_ARGUMENT (-1)        /* null pointer, index out of range */
        #define BS_ERR_NOT_COMPILED (-2)    /* that bit-width combination was not compiled into this bundle */
        #define BS_ERR_ALIGNMENT (-3)       /* the arena must be aligned to BS_ARENA_ALIGNMENT bytes */
        #define BS_ERR_NOT_INITIALIZED (-4) /* call bs_init first */
        #define BS_ERR_NO_QUANTIZED_INPUT (-5) /* the input is not read by exactly one Quantize */
        #define BS_ERR_INTERNAL (-6)        /* the kernels disagree with the emitter's arena layout (a BitSwitch bug) */
        #define BS_ERR_THREADS (-7)         /* bs_init could not allocate the thread pool or start its threads */

        #define BS_ARENA_ALIGNMENT 64
        #define BS_INPUT_SIZE \(inputCount)
        #define BS_OUTPUT_SIZE \(outputCount)
        #define BS_ARENA_SIZE \(plan.arenaBytes)
        #define BS_PROFILE_COUNT \(plan.profiles.count)
        #define BS_LAYER_COUNT \(plan.layers.count)
        #define BS_ISA "\(plan.isa.rawValue)"   /* the kernels this bundle was emitted for (bitswitch emit --isa) */

        /* One inference context; the caller owns it and its arena. With one thread it is plain data; with more it
         * points to its thread pool (one malloc'd block and the worker threads), which bs_destroy frees. */
        typedef struct bs_ctx {
            unsigned char *arena;
            void *pool;                /* bs_pool of bs_threads.h; NULL with one thread */
            int32_t ready, threads;
            int32_t layer_w[\(L)], layer_a[\(L)];
            int32_t block[\(P)];       /* parameter block of each parametric node */
            int32_t rstate[\(max(1, plan.regions.count))][2];   /* shift and bit-width each weight region was made with */
            const unsigned char *wptr[\(Q)];  /* the region each QConv/QGemm reads now */
            int32_t timing;            /* bs_set_layer_timing */
            int64_t layer_ns[\(L)];
        } bs_ctx;

        size_t bs_arena_size(void);
        size_t bs_ctx_size(void);
        size_t bs_input_size(void);   /* floats per sample */
        size_t bs_output_size(void);  /* floats per sample (all outputs, concatenated in order) */
        size_t bs_quantized_input_bytes(void); /* bytes bs_run_quantized reads (0: not available) */

        /* arena: bs_arena_size() bytes aligned to BS_ARENA_ALIGNMENT, owned by the caller, used only through ctx.
         * threads: threads a run uses, the caller's included (1: no thread is created); <= 0: the online CPUs, as
         * onnxruntime's intra_op_num_threads = 0. Results are identical for every thread count. Selects profile 0.
         * Call bs_destroy before the ctx or its memory is reused (bs_init again included). */
        int bs_init(bs_ctx *ctx, void *arena, int threads);
        /* Joins and frees the threads of bs_init (none with one thread); the ctx must be bs_init'ed again to run. */
        void bs_destroy(bs_ctx *ctx);
        /* Threads bs_run uses (0 before bs_init). */
        int bs_thread_count(const bs_ctx *ctx);

        int bs_profile_count(void);
        const char *bs_profile_name(int index);
        int bs_set_profile(bs_ctx *ctx, int index);

        /* Per-layer switching: the layers whose weight (wbits) and activation (abits) bit-widths can be chosen. */
        int bs_layer_count(void);
        const char *bs_layer_name(int layer);
        int bs_get_layer_bits(const bs_ctx *ctx, int layer, int *wbits, int *abits);
        /* Returns BS_ERR_NOT_COMPILED (and changes nothing) when no compiled variant covers the combination. */
        int bs_set_layer_bits(bs_ctx *ctx, int layer, int wbits, int abits);

        /* Per-layer timing (what `bitswitch profile-latency` reads): while on, every run adds each layer's wall time
         * (its conv / gemm with the Requant and residual add fused into it) to a counter. Turning it on or off sets
         * the counters to 0; off (after bs_init) a run only tests the flag. */
        int bs_set_layer_timing(bs_ctx *ctx, int on);
        /* Nanoseconds layer `layer` has run since timing was turned on; -1 for a bad ctx or layer. */
        int64_t bs_layer_time_ns(const bs_ctx *ctx, int layer);

        /* One sample (batch 1): in has bs_input_size() floats, out receives bs_output_size() floats. */
        int bs_run(bs_ctx *ctx, const float *in, float *out);
        /* The same from the already-quantized input (what the model's input Quantize would produce). */
        int bs_run_quantized(bs_ctx *ctx, const \(quantizedInputType) *in, float *out);

        #ifdef __cplusplus
        }
        #endif
        #endif

        """
    }

    mutating func source() throws -> String {
        var out = """
        /* Generated by BitSwitch from the model \(CSyntax.comment(g.name)). Do not edit: emit again. */
        #include "bitswitch_model.h"
        #include "bs_kernels.h"
        #include "bs_threads.h"

        #include <math.h>
        #include <string.h>


        """
        for family in plan.isa.kernelFamilies {
            guard let h = family.kernelHeader else { continue }
            out += """
            #include "\(h.file)"
            #if \(h.missing)
            #error "this bundle was emitted with --isa \(plan.isa.rawValue) (\(h.what)): \(h.hint), or emit it again with --isa \(h.otherwise)"
            #endif

            """
        }
        if plan.isa.usesPackedKernels {
            out += """
            #define BS_SCRATCH_OFFSET \(plan.scratchOffset)
            #define BS_SCRATCH_SIZE \(plan.scratchBytes)


            """
        }
        // Weights, once.
        var weightName: [String: String] = [:]
        out += "/* ---- stored INT8 weights (once for every profile) ---- */\n"
        for (k, name) in g.initializerOrder.enumerated() {
            guard plan.weightOffsets.keys.contains(where: { g.nodes[$0].inputs[1] == name }),
                  let t = g.initializers[name], case .i8(let a) = t.storage else { continue }
            let id = CSyntax.identifier("w", k, name)
            weightName[name] = id
            let taps = plan.tapMajorWeights[name]
            out += "/* \(CSyntax.comment(name)) \(t.shape)\(taps == nil ? "" : ", k in tap-major order") */\n"
            let stored = taps.map { Plan.tapMajor(a, taps: $0) } ?? a
            out += "static const int8_t \(id)[\(a.count)] = {\n\(CSyntax.list(stored.lazy.map { String($0) }))\n};\n"
        }
        // Per-node parameter blocks.
        out += "\n/* ---- per-profile parameters: one block per distinct bit-width key ---- */\n"
        for pn in plan.paramNodes { out += try paramTables(pn) }
        out += siteTables(weightName)
        out += apiFunctions()
        out += try forward()
        return out
    }

    func nodeComment(_ i: Int) -> String {
        "/* node \(i): \(CSyntax.comment(g.nodes[i].label)) (\(g.nodes[i].op.typeName)) */\n"
    }

    func paramTables(_ pn: ParamNode) throws -> String {
        let n = g.nodes[pn.node], id = nodeID(pn.node), nb = pn.blocks.count
        var s = nodeComment(pn.node)
        func blocks(_ type: String, _ body: (NodeParams) -> String) -> String {
            "static const \(type) \(id)_p[\(nb)] = {\n" + pn.blocks.map { "    {" + body($0) + "}," }.joined(separator: "\n") + "\n};\n"
        }
        func i64(_ p: NodeParams, _ k: Int) -> String { CSyntax.int64(p.ints[k]) }
        func f(_ p: NodeParams, _ k: Int) -> String { CSyntax.float(Float(bitPattern: p.floats[k])) }
        switch n.op {
        case .quantize:
            s += blocks("bs_quantize_params") { "\(f($0, 0)), \(i64($0, 0)), \(i64($0, 1)), \(i64($0, 2))" }
        case .dequantize:
            s += blocks("bs_dequantize_params") { "\(f($0, 0)), \(i64($0, 0))" }
        case .qconv, .qgemm:
            s += blocks("bs_qmm_params") { "\($0.ints[0]), \($0.ints[1]), \($0.ints[2])" }
        case .qadd:
            s += blocks("bs_qadd_params") { p in (0..<8).map { i64(p, $0) }.joined(separator: ", ") }
        case .qavgPool, .qglobalAvgPool:
            s += blocks("bs_qadd_params") { "0, 0, 0, 0, 0, \(i64($0, 0)), 0, 0" }   // only .zero is read
        case .requant:
            // Tables of equal length in every block (a per-tensor value is repeated when another block is per channel).
            let len = pn.blocks.flatMap(\.tables).map(\.count).max() ?? 1
            let perBlockLen = pn.blocks.allSatisfy { $0.tables.allSatisfy { $0.count == len } } || len == 1
            for (t, tname) in ["m", "n", "b"].enumerated() {
                let wide = tname == "b"   // the product-domain bias is int64
                s += "static const \(wide ? "int64_t" : "int32_t") \(id)_\(tname)[\(nb)][\(len)] = {\n"
                for b in pn.blocks {
                    let v = b.tables[t].count == len ? b.tables[t] : [Int64](repeating: b.tables[t][0], count: len)
                    let items = v.lazy.map { wide ? CSyntax.int64(Int($0)) : CSyntax.int32(Int32(truncatingIfNeeded: $0)) }
                    s += "    {\n" + CSyntax.list(items, indent: "        ") + "\n    },\n"
                }
                s += "};\n"
            }
            _ = perBlockLen
            s += "static const bs_requant_params \(id)_p[\(nb)] = {\n"
            for (k, b) in pn.blocks.enumerated() {
                s += "    {\(id)_m[\(k)], \(id)_n[\(k)], \(id)_b[\(k)], \(len), \(i64(b, 0)), \(i64(b, 1)), \(i64(b, 2))},\n"
            }
            s += "};\n"
        default:
            throw BitSwitchError(.internalError, "no parameter table for \(n.op.typeName)", node: n.label)
        }
        return s
    }

    /// Layers, profiles, sites and block keys: what bs_set_profile / bs_set_layer_bits look up.
    func siteTables(_ weightName: [String: String]) -> String {
        let P = plan.paramNodes.count, L = plan.layers.count, V = plan.variantLayerBits.count
        var s = "\n/* ---- profiles, layers and the bit-width key of every parameter block ---- */\n"
        s += "#define BS_PNODES \(P)\n#define BS_LAYERS \(L)\n#define BS_WNODES \(plan.weightOffsets.count)\n"
        s += "static const char *const bs_profile_names[\(plan.profiles.count)] = {\n"
        s += plan.profiles.map { "    " + CSyntax.stringLiteral($0.name) + "," }.joined(separator: "\n") + "\n};\n"
        s += "static const int32_t bs_profile_variant[\(plan.profiles.count)] = {\(plan.profiles.map { "\($0.variant)" }.joined(separator: ", "))};\n"
        s += "static const char *const bs_layer_names[\(max(1, L))] = {\n"
        s += (L == 0 ? "    \"\"," : plan.layers.map { "    " + CSyntax.stringLiteral($0) + "," }.joined(separator: "\n")) + "\n};\n"
        func rows(_ rows: [[Int]]) -> String {
            rows.map { "    {" + ($0.isEmpty ? "0" : $0.map(String.init).joined(separator: ", ")) + "}," }.joined(separator: "\n")
        }
        s += "static const int32_t bs_variant_w[\(V)][\(max(1, L))] = {\n\(rows(plan.variantLayerBits.map { $0.map(\.w) }))\n};\n"
        s += "static const int32_t bs_variant_a[\(V)][\(max(1, L))] = {\n\(rows(plan.variantLayerBits.map { $0.map(\.a) }))\n};\n"
        s += "static const int32_t bs_variant_block[\(V)][\(max(1, P))] = {\n"
        s += rows((0..<V).map { v in plan.paramNodes.map { $0.variantBlock[v] } }) + "\n};\n"
        // Sites: node p reads sites [site_begin[p], site_begin[p+1]); keys of its blocks in key_begin[p]...
        var siteBegin = [0], siteLayer: [Int] = [], siteAct: [Int] = [], keyBegin = [0], keys: [Int] = []
        for pn in plan.paramNodes {
            for st in pn.sites { siteLayer.append(st.layer); siteAct.append(st.activation ? 1 : 0) }
            siteBegin.append(siteLayer.count)
            for k in pn.keys { keys += k }
            keyBegin.append(keys.count)
        }
        func arr(_ name: String, _ v: [Int]) -> String {
            "static const int32_t \(name)[\(max(1, v.count))] = {\n\(CSyntax.list((v.isEmpty ? [0] : v).map(String.init)))\n};\n"
        }
        s += arr("bs_site_begin", siteBegin) + arr("bs_site_layer", siteLayer) + arr("bs_site_act", siteAct)
        s += arr("bs_key_begin", keyBegin) + arr("bs_keys", keys)
        s += "static const int32_t bs_block_count[\(max(1, P))] = {\(plan.paramNodes.isEmpty ? "0" : plan.paramNodes.map { "\($0.blocks.count)" }.joined(separator: ", "))};\n"
        // Weight nodes: where their shifted copy lives and which parameter block gives shift and bit-width.
        // Weight regions (emit --prepack: one per distinct bit-width of a node; otherwise one per node) and, per
        // parameter block of each node, its region.
        s += "#define BS_REGIONS \(plan.regions.count)\n#define BS_PREPACK \(plan.prepack ? 1 : 0)\n"
        s += "static const size_t bs_region_offset[\(max(1, plan.regions.count))] = {\(plan.regions.isEmpty ? "0" : plan.regions.map { CSyntax.size($0.offset) }.joined(separator: ", "))};\n"
        if plan.isa == .avx512vnni {   // regions with room for the bit-serial kernels' bit planes
            s += "static const int32_t bs_region_bsr[\(max(1, plan.regions.count))] = {\(plan.regions.isEmpty ? "0" : plan.regions.indices.map { plan.bitSerialRegions.contains($0) ? "1" : "0" }.joined(separator: ", "))};\n"
        }
        s += "typedef struct { int32_t pnode; const int8_t *q8; size_t count; const int32_t *regions; const bs_qmm_params *params; int32_t groups, mg, k, kmajor; size_t rows; int32_t taps, pflags; } bs_wnode;\n"
        let wnodes = plan.weightOffsets.keys.sorted()
        for i in wnodes {
            let r = plan.blockRegions[i] ?? [0]
            s += "static const int32_t \(nodeID(i))_regions[\(r.count)] = {\(r.map(String.init).joined(separator: ", "))};\n"
        }
        s += "static const bs_wnode bs_wnodes[\(max(1, wnodes.count))] = {\n"
        if wnodes.isEmpty { s += "    {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},\n" }
        for i in wnodes {
            let n = g.nodes[i]
            s += "    {\(plan.paramIndex[i] ?? 0), \(weightName[n.inputs[1]] ?? "0"), "
            let d = plan.matmulDims(i)
            s += "\(CSyntax.size(g.initializers[n.inputs[1]]?.count ?? 0)), \(nodeID(i))_regions, \(nodeID(i))_p, \(d?.groups ?? 1), \(d?.mg ?? 0), \(d?.k ?? 0), \(d?.kmajor == true ? 1 : 0), "
            // gemm rows (the batch-1 kernels take gemms of a few rows); convs 0. The kernel taps of a conv whose
            // weights are stored tap-major (VNNI bundles); else 0.
            var rows = 0
            if case .qgemm = n.op { rows = d?.n ?? 0 }
            // VNNI pack flags: 2 = BS_VPACK_C16, the channels-in-lanes layout (Plan.channelLanes).
            let pflags = plan.channelLanes(i) ? 2 : 0
            s += "\(CSyntax.size(rows)), \(plan.tapMajorWeights[n.inputs[1]] ?? 0), \(pflags)},\n"
        }
        s += "};\n"
        // A switch's weight tasks, largest first: the pool's threads take them in this order, so the big layers
        // start first and the small ones fill the gaps.
        let order = wnodes.indices.sorted { a, b in
            let ca = g.initializers[g.nodes[wnodes[a]].inputs[1]]?.count ?? 0, cb = g.initializers[g.nodes[wnodes[b]].inputs[1]]?.count ?? 0
            return ca != cb ? ca > cb : a < b
        }
        s += "static const int32_t bs_wnode_order[\(max(1, wnodes.count))] = {\(order.isEmpty ? "0" : order.map(String.init).joined(separator: ", "))};\n"
        return s
    }

    func apiFunctions() -> String {
        let outputsCopy = g.outputs.reduce(into: (code: "", at: 0)) { acc, o in
            acc.code += "    memcpy(out + \(acc.at), \(ptr(o.name)), \(CSyntax.size(count(o.name) * 4)));\n"
            acc.at += count(o.name)
        }.code
        let q = plan.quantizeOfInput
        let qOut = q.flatMap { g.nodes[$0].outputs.first } ?? ""
        return """

        /* ---- API ---- */
        static void bs_forward(bs_ctx *ctx, int skip_input_quantize);
        \(plan.isa.usesPackedKernels ? """
        static int bs_sizes_ok(void);

        /* The staged QConv / QGemm kernel family of this bundle (--isa \(plan.isa.rawValue)). */
        #define BS_QMM_STAGES \(plan.isa.stagedFamily ?? "")_stages
        #define BS_QMM_TASKS \(plan.isa.stagedFamily ?? "")_tasks
        #define BS_QMM_RUN \(plan.isa.stagedFamily ?? "")_run
        static inline void bs_staged_task(const void *job, int32_t stage, int32_t task) {
            BS_QMM_RUN((const bs_avx2_job *)job, stage, task);
        }
        /* Runs one conv / gemm: its stages in order, each stage's tasks spread over the pool's threads (NULL: the
         * calling thread, for layers smaller than a hand-off costs). */
        static inline void bs_par(bs_pool *pool, bs_avx2_job *j) {
            j->threads = bs_pool_threads(pool);   /* the tiling's hint */
            for (int32_t s = 0, ns = BS_QMM_STAGES(j); s < ns; s++)
                bs_pool_run(pool, j, s, BS_QMM_TASKS(j, s), bs_staged_task);
        }
        """ : """
        static inline void bs_generic_task(const void *job, int32_t stage, int32_t task) {
            (void)stage;
            bs_qmm_run__generic((const bs_qmm_job *)job, task);
        }
        /* Runs one conv / gemm: blocks of output channels spread over the pool's threads (NULL: the calling thread). */
        static inline void bs_par_generic(bs_pool *pool, const bs_qmm_job *j) {
            bs_pool_run(pool, j, 0, bs_qmm_tasks__generic(j), bs_generic_task);
        }
        """)
        static inline void bs_ew_task(const void *job, int32_t stage, int32_t task) {
            (void)stage;
            bs_ew_run__\(plan.isa.elementwiseSuffix)((const bs_ew_job *)job, task);
        }
        /* Runs one big requant / qadd / pool: blocks of rows, elements or planes spread over the ctx's threads. */
        static inline void bs_par_ew(bs_ctx *ctx, const bs_ew_job *j) {
            bs_pool_run((bs_pool *)ctx->pool, j, 0, bs_ew_tasks__generic(j), bs_ew_task);
        }

        size_t bs_arena_size(void) { return BS_ARENA_SIZE; }
        size_t bs_ctx_size(void) { return sizeof(bs_ctx); }
        size_t bs_input_size(void) { return BS_INPUT_SIZE; }
        size_t bs_output_size(void) { return BS_OUTPUT_SIZE; }
        size_t bs_quantized_input_bytes(void) { return \(q == nil ? 0 : count(qOut) * (plan.dtypes[qOut]?.byteWidth ?? 1)); }
        int bs_profile_count(void) { return BS_PROFILE_COUNT; }
        const char *bs_profile_name(int index) {
            return index >= 0 && index < BS_PROFILE_COUNT ? bs_profile_names[index] : NULL;
        }
        int bs_layer_count(void) { return BS_LAYERS; }
        const char *bs_layer_name(int layer) { return layer >= 0 && layer < BS_LAYERS ? bs_layer_names[layer] : NULL; }

        /* Weights of node q for parameter block b in the block's region: shifted (and packed) from the INT8 weights
         * unless the region already holds that shift and bit-width. Returns the region. */
        static const unsigned char *bs_make_weights(bs_ctx *ctx, int32_t q, int32_t b) {
            const bs_wnode *wn = &bs_wnodes[q];
            const bs_qmm_params *p = &wn->params[b];
            int32_t r = wn->regions[b];
            unsigned char *dst = ctx->arena + bs_region_offset[r];
            if (ctx->rstate[r][0] != p->w_shift || ctx->rstate[r][1] != p->w_bits) {
                \(plan.isa.usesPackedKernels
                    ? (plan.isa == .avx2
                        ? "bs_qs8_pack_weights_rows__avx2(wn->q8, dst, wn->groups, wn->mg, wn->k, wn->kmajor, p->w_shift, p->w_bits, wn->rows);"
                        : plan.isa == .avx512vnni
                        ? "if (wn->rows) bs_qs8_pack_weights_rows__avx512vnni(wn->q8, dst, wn->groups, wn->mg, wn->k, wn->kmajor, p->w_shift, p->w_bits, wn->rows); else bs_qs8_pack_weights__avx512vnni(wn->q8, dst, wn->groups, wn->mg, wn->k, wn->kmajor, p->w_shift, p->w_bits, wn->taps, bs_region_bsr[r] | wn->pflags);"
                        : "bs_qs8_pack_weights__\(plan.isa.kernelSuffix)(wn->q8, dst, wn->groups, wn->mg, wn->k, wn->kmajor, p->w_shift, p->w_bits);")
                    : "bs_qs8_shift_weights__generic(wn->q8, (int8_t *)dst, wn->count, p->w_shift, p->w_bits);")
                ctx->rstate[r][0] = p->w_shift;
                ctx->rstate[r][1] = p->w_bits;
            }
            return dst;
        }

        /* Makes the weights each node reads and ctx->block match `block`: one pass over the changed layers' weights,
         * or (BS_PREPACK) only pointers, every block's weights having been made by bs_init. The nodes are the pool's
         * tasks, largest first (each node writes its own regions and wptr entry). */
        typedef struct { bs_ctx *ctx; const int32_t *block; } bs_apply_job;
        static void bs_apply_task(const void *arg, int32_t stage, int32_t t) {
            (void)stage;
            const bs_apply_job *a = (const bs_apply_job *)arg;
            int32_t q = bs_wnode_order[t];
            a->ctx->wptr[q] = bs_make_weights(a->ctx, q, a->block[bs_wnodes[q].pnode]);
        }
        static void bs_apply_blocks(bs_ctx *ctx, const int32_t *block) {
            bs_apply_job a = {ctx, block};
            bs_pool_run(BS_PREPACK ? NULL : (bs_pool *)ctx->pool, &a, 0, BS_WNODES, bs_apply_task);
            for (int32_t p = 0; p < BS_PNODES; p++) ctx->block[p] = block[p];
        }

        int bs_init(bs_ctx *ctx, void *arena, int threads) {
            if (!ctx || (!arena && BS_ARENA_SIZE > 0)) return BS_ERR_ARGUMENT;
            if (((uintptr_t)arena % BS_ARENA_ALIGNMENT) != 0) return BS_ERR_ALIGNMENT;
        \(plan.isa.usesPackedKernels ? "    if (!bs_sizes_ok()) return BS_ERR_INTERNAL;\n" : "")            memset(ctx, 0, sizeof *ctx);
            ctx->arena = (unsigned char *)arena;
            for (int32_t r = 0; r < BS_REGIONS; r++) ctx->rstate[r][0] = ctx->rstate[r][1] = -1;
        #if BS_PREPACK
            for (int32_t q = 0; q < BS_WNODES; q++)
                for (int32_t b = 0; b < bs_block_count[bs_wnodes[q].pnode]; b++) (void)bs_make_weights(ctx, q, b);
        #endif
            bs_pool *pool = NULL;
            if (bs_pool_create(&pool, threads) != 0) return BS_ERR_THREADS;
            ctx->pool = pool;
            ctx->threads = bs_pool_threads(pool);
            ctx->ready = 1;
            int rc = bs_set_profile(ctx, 0);
            if (rc != BS_OK) bs_destroy(ctx);
            return rc;
        }

        void bs_destroy(bs_ctx *ctx) {
            if (!ctx) return;
            bs_pool_destroy((bs_pool *)ctx->pool);
            ctx->pool = NULL;
            ctx->ready = 0;
            ctx->threads = 0;
        }

        int bs_thread_count(const bs_ctx *ctx) { return ctx && ctx->ready ? ctx->threads : 0; }

        int bs_set_layer_timing(bs_ctx *ctx, int on) {
            if (!ctx || !ctx->ready) return BS_ERR_ARGUMENT;
            ctx->timing = on != 0;
            memset(ctx->layer_ns, 0, sizeof ctx->layer_ns);
            return BS_OK;
        }
        int64_t bs_layer_time_ns(const bs_ctx *ctx, int layer) {
            if (!ctx || !ctx->ready || layer < 0 || layer >= BS_LAYERS) return -1;
            return ctx->layer_ns[layer];
        }

        int bs_set_profile(bs_ctx *ctx, int index) {
            if (!ctx || index < 0 || index >= BS_PROFILE_COUNT) return BS_ERR_ARGUMENT;
            if (!ctx->ready) return BS_ERR_NOT_INITIALIZED;
            int32_t v = bs_profile_variant[index];
            for (int32_t l = 0; l < BS_LAYERS; l++) { ctx->layer_w[l] = bs_variant_w[v][l]; ctx->layer_a[l] = bs_variant_a[v][l]; }
            bs_apply_blocks(ctx, bs_variant_block[v]);
            return BS_OK;
        }

        int bs_get_layer_bits(const bs_ctx *ctx, int layer, int *wbits, int *abits) {
            if (!ctx || layer < 0 || layer >= BS_LAYERS) return BS_ERR_ARGUMENT;
            if (!ctx->ready) return BS_ERR_NOT_INITIALIZED;
            if (wbits) *wbits = ctx->layer_w[layer];
            if (abits) *abits = ctx->layer_a[layer];
            return BS_OK;
        }

        int bs_set_layer_bits(bs_ctx *ctx, int layer, int wbits, int abits) {
            if (!ctx || layer < 0 || layer >= BS_LAYERS) return BS_ERR_ARGUMENT;
            if (!ctx->ready) return BS_ERR_NOT_INITIALIZED;
            int32_t lw[BS_LAYERS > 0 ? BS_LAYERS : 1], la[BS_LAYERS > 0 ? BS_LAYERS : 1];
            int32_t block[BS_PNODES > 0 ? BS_PNODES : 1];
            for (int32_t l = 0; l < BS_LAYERS; l++) { lw[l] = ctx->layer_w[l]; la[l] = ctx->layer_a[l]; }
            lw[layer] = wbits;
            la[layer] = abits;
            for (int32_t p = 0; p < BS_PNODES; p++) {
                int32_t s0 = bs_site_begin[p], ns = bs_site_begin[p + 1] - s0, touched = 0;
                block[p] = ctx->block[p];
                for (int32_t s = 0; s < ns; s++) touched |= bs_site_layer[s0 + s] == layer;
                if (!touched) continue;
                int32_t found = -1;
                for (int32_t b = 0; b < bs_block_count[p] && found < 0; b++) {
                    const int32_t *key = &bs_keys[bs_key_begin[p] + b * ns];
                    int32_t same = 1;
                    for (int32_t s = 0; s < ns; s++) {
                        int32_t l = bs_site_layer[s0 + s];
                        same &= key[s] == (bs_site_act[s0 + s] ? la[l] : lw[l]);
                    }
                    if (same) found = b;
                }
                if (found < 0) return BS_ERR_NOT_COMPILED;
                block[p] = found;
            }
            for (int32_t l = 0; l < BS_LAYERS; l++) { ctx->layer_w[l] = lw[l]; ctx->layer_a[l] = la[l]; }
            bs_apply_blocks(ctx, block);
            return BS_OK;
        }

        int bs_run(bs_ctx *ctx, const float *in, float *out) {
            if (!ctx || !in || !out) return BS_ERR_ARGUMENT;
            if (!ctx->ready) return BS_ERR_NOT_INITIALIZED;
            memcpy(ctx->arena + \(plan.offsets[plan.input.name] ?? 0), in, \(CSyntax.size(inputCount * 4)));
            bs_forward(ctx, 0);
            const unsigned char *A = ctx->arena;
        \(outputsCopy)    return BS_OK;
        }

        int bs_run_quantized(bs_ctx *ctx, const \(quantizedInputType) *in, float *out) {
            if (!ctx || !in || !out) return BS_ERR_ARGUMENT;
            if (!ctx->ready) return BS_ERR_NOT_INITIALIZED;
        \(q == nil ? "    return BS_ERR_NO_QUANTIZED_INPUT;\n}\n" : """
            memcpy(ctx->arena + \(plan.offsets[qOut] ?? 0), in, \(CSyntax.size(count(qOut) * (plan.dtypes[qOut]?.byteWidth ?? 1))));
            bs_forward(ctx, 1);
            const unsigned char *A = ctx->arena;
        \(outputsCopy)    return BS_OK;
        }

        """)
        """
    }

    /// Requant / QAdd / pools with at least this many outputs are split over the context's threads (smaller ones
    /// cost less than a hand-off).
    static let parallelElements = 16384
    /// Convs and gemms of at least this many multiply-adds likewise. A hand-off to the pool's threads and the wait
    /// for them cost several µs when a worker has gone to sleep: the digits and MNIST-1D CNNs (layers of 0.05 to
    /// 0.3 M MACs, 10 to 15 µs a run) ran up to 2x slower on 2 threads than on 1 before this bound.
    static let parallelMACs = 1 << 19
    /// Depthwise convs (one output channel per group) are split from this many outputs on, whatever their MACs: their
    /// kernels run 10-20x fewer MACs per second than a GEMM's (a 3 x 3 one is bound by its per-output requantization),
    /// so MobileNetV2's 960-channel 7 x 7 ones (0.42 M MACs, 50 µs on the Zen 4) had run on one thread.
    static let parallelDepthwiseOutputs = 16384

    /// The pool a conv / gemm node's call runs on: the context's, or NULL (the calling thread) when it is small.
    func pool(_ i: Int) -> String {
        guard let d = plan.matmulDims(i) else { return "(bs_pool *)ctx->pool" }
        let depthwise = d.mg == 1 && d.groups > 1 && d.groups * d.n >= Self.parallelDepthwiseOutputs
        return depthwise || d.groups * d.mg * d.k * d.n >= Self.parallelMACs ? "(bs_pool *)ctx->pool" : "NULL"
    }

    func window(_ inSpatial: [Int], _ outSpatial: [Int], _ w: WindowGeometry) -> String {
        func p3(_ a: [Int], _ fill: Int) -> [Int] { [Int](repeating: fill, count: 3 - a.count) + a }
        let v = p3(inSpatial, 1) + p3(outSpatial, 1) + p3(w.kernel, 1) + p3(w.strides, 1) + p3(w.padsBegin, 0)
            + p3(w.padsEnd, 0) + p3(w.dilations, 1)
        return "{" + v.map(String.init).joined(separator: ", ") + "}"
    }

    func forward() throws -> String {
        var decls = "\n/* ---- shapes of the window ops ---- */\n"
        var body = ""
        var checks = ""
        // QConv/QGemm node -> its index in bs_wnodes (ctx->wptr).
        let wnodeIndex = Dictionary(uniqueKeysWithValues: plan.weightOffsets.keys.sorted().enumerated().map { ($1, $0) })
        // The kernels' own size functions against the emitter's: the any-bit-width size, and with prepack each of
        // the node's regions (sized for its bit-width) against the bytes a pack at that bit-width writes.
        func sizeChecks(_ i: Int, groups: Int, mg: Int, k: Int) -> String {
            var c = "    if (bs_qs8_packed_weights_size__\(plan.isa.kernelSuffix)(\(groups), \(mg), \(k)) != \(Plan.packedWeightBytes(groups: groups, mg: mg, k: k, isa: plan.isa))) return 0;\n"
            if plan.isa == .avx512vnni, plan.blockRegions[i]?.contains(where: plan.bitSerialRegions.contains) == true {
                let taps = plan.tapMajorWeights[g.nodes[i].inputs[1]] ?? 0
                c += "    if (bs_qs8_packed_bsr_size__avx512vnni(\(groups), \(mg), \(k), \(taps)) != \(Plan.bitSerialBytes(groups: groups, mg: mg, k: k, taps: taps))) return 0;\n"
            }
            guard plan.isa == .avx2 else { return c }
            for r in Set(plan.blockRegions[i] ?? []).sorted() where plan.regions[r].bits > 0 {
                let bits = plan.regions[r].bits
                c += "    if (bs_qs8_packed_weights_size_bits__avx2(\(groups), \(mg), \(k), \(bits)) > \(Plan.packedWeightBytes(groups: groups, mg: mg, k: k, isa: plan.isa, bits: bits))) return 0;\n"
            }
            return c
        }
        let layerIndex = Dictionary(plan.layers.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        for (i, n) in g.nodes.enumerated() where !plan.absorbed.contains(i) {
            let id = nodeID(i)
            // A layer's code is timed when ctx->timing is on (bs_set_layer_timing).
            let layer: Int? = { switch n.op { case .qconv, .qgemm: return layerIndex[n.name]; default: return nil } }()
            let bodyBefore = body.utf8.count
            defer {
                if let k = layer {
                    let cut = body.utf8.index(body.startIndex, offsetBy: bodyBefore)
                    body = String(body[..<cut]) + "    { const int64_t t0 = ctx->timing ? bs_clock_ns() : 0;\n" + String(body[cut...])
                        + "      if (ctx->timing) ctx->layer_ns[\(k)] += bs_clock_ns() - t0; }\n"
                }
            }
            let pb = plan.paramIndex[i].map { "&\(id)_p[B[\($0)]]" } ?? ""
            let pz = plan.paramIndex[i].map { "\(id)_p[B[\($0)]].zero" } ?? "0"
            let x = n.inputs.first ?? "", y = n.outputs.first ?? ""
            body += "    " + nodeComment(i)
            func fail(_ m: String) -> BitSwitchError { BitSwitchError(.shape, m, node: n.label, op: n.op.typeName) }
            switch n.op {
            case .quantize:
                let call = "bs_f32_quantize__\(plan.isa.quantizeSuffix)((const float *)\(ptr(x)), \(ptr(y)), \(tcode(y)), \(CSyntax.size(count(y))), \(pb));\n"
                body += i == plan.quantizeOfInput ? "    if (!skip_input_quantize) \(call)" : "    \(call)"
            case .dequantize:
                body += "    bs_dequantize__generic(\(ptr(x)), \(tcode(x)), (float *)\(ptr(y)), \(CSyntax.size(count(y))), \(pb));\n"
            case .qconv(let q):
                let xs = plan.shapes[x] ?? [], ws = g.initializers[n.inputs[1]]?.shape ?? []
                guard ws.count == xs.count, ws.count >= 3 else { throw fail("QConv weight \(ws) does not match input \(xs)") }
                let win = try WindowGeometry(input: Array(xs.dropFirst(2)), kernel: q.conv.kernelShape ?? Array(ws.dropFirst(2)),
                                     strides: q.conv.strides, pads: q.conv.pads, dilations: q.conv.dilations,
                                     autoPad: q.conv.autoPad, ceilMode: false)
                let outName = plan.fusedRequant[i].map { g.nodes[$0].outputs[0] } ?? y
                let want = [1, ws[0]] + win.output
                guard win.kernel == Array(ws.dropFirst(2)), plan.shapes[outName] == want,
                      q.conv.group >= 1, xs[1] % q.conv.group == 0, ws[0] % q.conv.group == 0, ws[1] * q.conv.group == xs[1] else {
                    throw fail("QConv shapes do not fit: input \(xs), weight \(ws), group \(q.conv.group), output \(plan.shapes[outName] ?? [])")
                }
                guard (xs + ws + win.output + win.padsBegin + win.padsEnd + win.strides + win.dilations).allSatisfy({ $0 < 1 << 30 }) else {
                    throw fail("QConv dims exceed 2^30")
                }
                decls += "static const bs_conv_shape \(id)_s = {\(window(Array(xs.dropFirst(2)), win.output, win)), \(xs[1]), \(ws[0]), \(q.conv.group)};\n"
                let w = "(const int8_t *)ctx->wptr[\(wnodeIndex[i] ?? 0)]"
                if plan.isa.usesPackedKernels {
                    let rq = plan.fusedRequant[i].flatMap { r in plan.paramIndex[r].map { "&\(nodeID(r))_p[B[\($0)]]" } } ?? "NULL"
                    var res = ""   // the fused residual QAdd: res, res_y, res_p, res_t, res_yt, res_swap
                    if let a = plan.fusedAdd[i], let qp = plan.paramIndex[a.node] {
                        let qn = g.nodes[a.node], other = qn.inputs[a.swap ? 0 : 1], qy = qn.outputs[0]
                        res = ", \(ptr(other)), \(ptr(qy)), &\(nodeID(a.node))_p[B[\(qp)]], \(tcode(other)), \(tcode(qy)), \(a.swap ? 1 : 0)"
                        body += "    /* node \(a.node): \(CSyntax.comment(qn.label)) (QAdd), in the epilogue of the QConv below */\n"
                    }
                    body += "    { bs_avx2_job j = {\(ptr(x)), \(tcode(x)), \(tcode(outName)), \(w), \(pb), \(rq), \(ptr(outName)), A + BS_SCRATCH_OFFSET, &\(id)_s, 0, 0, 0, 0\(res)}; bs_par(\(pool(i)), &j); }\n"
                    checks += "    if (bs_conv_scratch_size__\(plan.isa.kernelSuffix)(&\(id)_s) > BS_SCRATCH_SIZE) return 0;\n"
                    if let d = plan.matmulDims(i) { checks += sizeChecks(i, groups: d.groups, mg: d.mg, k: d.k) }
                } else {
                    let rq = plan.fusedRequant[i].flatMap { r in plan.paramIndex[r].map { "&\(nodeID(r))_p[B[\($0)]]" } } ?? "NULL"
                    body += "    { const bs_qmm_job j = {\(ptr(x)), \(tcode(x)), \(tcode(outName)), \(w), \(pb), \(rq), \(ptr(outName)), &\(id)_s, 0, 0, 0, 0}; bs_par_generic(\(pool(i)), &j); }\n"
                }
            case .qgemm(let q):
                let xs = plan.shapes[x] ?? [], ws = g.initializers[n.inputs[1]]?.shape ?? []
                guard ws.count == 2, let k = xs.last else { throw fail("QGemm needs a 2-D weight, got \(ws)") }
                let (wk, m) = q.transB ? (ws[1], ws[0]) : (ws[0], ws[1])
                let outName = plan.fusedRequant[i].map { g.nodes[$0].outputs[0] } ?? y
                guard wk == k, plan.shapes[outName] == Array(xs.dropLast()) + [m] else {
                    throw fail("QGemm input \(xs) does not match weight \(ws) (trans_b \(q.transB))")
                }
                let rows = count(x) / k
                let w = "(const int8_t *)ctx->wptr[\(wnodeIndex[i] ?? 0)]"
                let dims = "\(CSyntax.size(rows)), \(CSyntax.size(k)), \(CSyntax.size(m)), \(q.transB ? 1 : 0)"
                if plan.isa.usesPackedKernels {
                    let rq = plan.fusedRequant[i].flatMap { r in plan.paramIndex[r].map { "&\(nodeID(r))_p[B[\($0)]]" } } ?? "NULL"
                    body += "    { bs_avx2_job j = {\(ptr(x)), \(tcode(x)), \(tcode(outName)), \(w), \(pb), \(rq), \(ptr(outName)), A + BS_SCRATCH_OFFSET, NULL, \(dims)}; bs_par(\(pool(i)), &j); }\n"
                    checks += "    if (bs_gemm_scratch_size__\(plan.isa.kernelSuffix)(\(CSyntax.size(rows)), \(CSyntax.size(k)), \(CSyntax.size(m))) > BS_SCRATCH_SIZE) return 0;\n"
                    checks += sizeChecks(i, groups: 1, mg: m, k: k)
                } else {
                    let rq = plan.fusedRequant[i].flatMap { r in plan.paramIndex[r].map { "&\(nodeID(r))_p[B[\($0)]]" } } ?? "NULL"
                    body += "    { const bs_qmm_job j = {\(ptr(x)), \(tcode(x)), \(tcode(outName)), \(w), \(pb), \(rq), \(ptr(outName)), NULL, \(dims)}; bs_par_generic(\(pool(i)), &j); }\n"
                }
            case .requant(let r):
                let s = plan.shapes[x] ?? []
                let axis = r.axis < 0 ? r.axis + s.count : r.axis
                let inRange = axis >= 0 && axis < s.count
                let channels = inRange ? s[axis] : 1
                let inner = inRange ? s[(axis + 1)...].reduce(1, *) : 1
                let outer = count(x) / (channels * inner)
                // Big ones are split over the threads.
                if count(y) >= Self.parallelElements {
                    body += "    { const bs_ew_job j = {BS_EW_REQUANT, \(ptr(x)), \(tcode(x)), NULL, 0, \(ptr(y)), \(tcode(y)), \(CSyntax.size(outer)), \(CSyntax.size(channels)), \(CSyntax.size(inner)), 0, \(pb), NULL, NULL, 0, 0}; bs_par_ew(ctx, &j); }\n"
                } else {
                    body += "    bs_requant__\(plan.isa.elementwiseSuffix)(\(ptr(x)), \(tcode(x)), \(ptr(y)), \(tcode(y)), \(CSyntax.size(outer)), \(CSyntax.size(channels)), \(CSyntax.size(inner)), \(pb));\n"
                }
            case .qadd:
                let b = n.inputs[1]
                if let rs = plan.fusedReaders[i] {
                    body += "    { const bs_ew_job j = {BS_EW_QADD, \(ptr(x)), \(tcode(x)), \(ptr(b)), \(tcode(b)), NULL, \(tcode(y)), 0, 0, 0, \(CSyntax.size(count(y))), NULL, \(pb), NULL, 0, 0, \(try readers(y, rs))}; bs_par_ew(ctx, &j); }\n"
                } else if count(y) >= Self.parallelElements {
                    body += "    { const bs_ew_job j = {BS_EW_QADD, \(ptr(x)), \(tcode(x)), \(ptr(b)), \(tcode(b)), \(ptr(y)), \(tcode(y)), 0, 0, 0, \(CSyntax.size(count(y))), NULL, \(pb), NULL, 0, 0}; bs_par_ew(ctx, &j); }\n"
                } else {
                    body += "    bs_qadd__\(plan.isa.elementwiseSuffix)(\(ptr(x)), \(tcode(x)), \(ptr(b)), \(tcode(b)), \(ptr(y)), \(tcode(y)), \(CSyntax.size(count(y))), \(pb));\n"
                }
            case .qmaxPool(let p), .qavgPool(let p, _):
                let xs = plan.shapes[x] ?? []
                let win = try WindowGeometry(input: Array(xs.dropFirst(2)), kernel: p.kernelShape, strides: p.strides, pads: p.pads,
                                     dilations: p.dilations, autoPad: p.autoPad, ceilMode: p.ceilMode)
                guard plan.shapes[y] == Array(xs.prefix(2)) + win.output else { throw fail("pool output shape mismatch") }
                decls += "static const bs_window \(id)_s = \(window(Array(xs.dropFirst(2)), win.output, win));\n"
                let planes = CSyntax.size(xs[0] * xs[1])
                let avg = { if case .qavgPool = n.op { return true } else { return false } }()
                if let rs = plan.fusedReaders[i] {
                    body += "    { const bs_ew_job j = {BS_EW_MAXPOOL, \(ptr(x)), \(tcode(x)), NULL, 0, NULL, \(tcode(x)), 0, 0, 0, \(planes), NULL, NULL, &\(id)_s, 0, 0, \(try readers(y, rs))}; bs_par_ew(ctx, &j); }\n"
                } else if count(y) >= Self.parallelElements {
                    body += "    { const bs_ew_job j = {\(avg ? "BS_EW_AVGPOOL" : "BS_EW_MAXPOOL"), \(ptr(x)), \(tcode(x)), NULL, 0, \(ptr(y)), \(tcode(x)), 0, 0, 0, \(planes), NULL, NULL, &\(id)_s, \(avg && p.countIncludePad ? 1 : 0), \(avg ? pz : "0")}; bs_par_ew(ctx, &j); }\n"
                } else if case .qavgPool = n.op {
                    body += "    bs_qavgpool__generic(&\(id)_s, \(CSyntax.size(xs[0] * xs[1])), \(p.countIncludePad ? 1 : 0), \(pz), \(ptr(x)), \(tcode(x)), \(ptr(y)));\n"
                } else {
                    body += "    bs_qmaxpool__\(plan.isa.elementwiseSuffix)(&\(id)_s, \(CSyntax.size(xs[0] * xs[1])), \(ptr(x)), \(tcode(x)), \(ptr(y)));\n"
                }
            case .qglobalAvgPool:
                let xs = plan.shapes[x] ?? []
                let sp = Array(xs.dropFirst(2))
                let win = try WindowGeometry(input: sp, kernel: sp, strides: nil, pads: nil, dilations: nil, autoPad: .notSet, ceilMode: false)
                decls += "static const bs_window \(id)_s = \(window(sp, win.output, win));\n"
                body += "    bs_qavgpool__generic(&\(id)_s, \(CSyntax.size(xs[0] * xs[1])), 0, \(pz), \(ptr(x)), \(tcode(x)), \(ptr(y)));\n"
            case .flatten, .reshape, .squeeze, .unsqueeze, .identity:
                guard count(x) == count(y), plan.dtypes[x] == plan.dtypes[y] else { throw fail("element count or type changes") }
                body += "    memcpy(\(ptr(y)), \(ptr(x)), \(CSyntax.size(plan.bytes(x))));\n"
            case .transpose(let perm):
                let s = plan.shapes[x] ?? []
                let pm = perm ?? Array((0..<s.count).reversed())
                guard pm.sorted() == Array(0..<s.count) else { throw fail("perm \(pm) is not a permutation of 0..<\(s.count)") }
                decls += "static const int64_t \(id)_shape[\(max(1, s.count))] = {\(s.isEmpty ? "1" : s.map(String.init).joined(separator: ", "))};\n"
                decls += "static const int32_t \(id)_perm[\(max(1, pm.count))] = {\(pm.isEmpty ? "0" : pm.map(String.init).joined(separator: ", "))};\n"
                body += "    bs_transpose__generic(\(ptr(x)), \(ptr(y)), \(plan.dtypes[x]?.byteWidth ?? 1), \(s.count), \(id)_shape, \(id)_perm);\n"
            case .concat(let axis0):
                let os = plan.shapes[y] ?? []
                let axis = axis0 < 0 ? axis0 + os.count : axis0
                guard axis >= 0, axis < os.count else { throw fail("axis \(axis0) out of range for \(os)") }
                let es = plan.dtypes[y]?.byteWidth ?? 1
                let outer = os[..<axis].reduce(1, *), inner = os[(axis + 1)...].reduce(1, *)
                var at = 0
                for v in n.inputs {
                    guard plan.dtypes[v] == plan.dtypes[y], let s = plan.shapes[v], s.count == os.count else { throw fail("input '\(v)' does not fit") }
                    let row = s[axis] * inner * es
                    body += "    bs_copy_rows__generic(\(ptr(y)) + \(at), \(CSyntax.size(os[axis] * inner * es)), \(ptr(v)), \(CSyntax.size(row)), \(CSyntax.size(row)), \(CSyntax.size(outer)));\n"
                    at += row
                }
            default:
                throw BitSwitchError(.unsupported, "the C back end cannot run \(n.op.typeName)", node: n.label, op: n.op.typeName)
            }
        }
        return decls + """

        /* ---- the network, node by node (batch 1) ---- */
        static void bs_forward(bs_ctx *ctx, int skip_input_quantize) {
            unsigned char *A = ctx->arena;
            const int32_t *B = ctx->block;
            (void)B;
            (void)skip_input_quantize;
        \(body)}

        """ + (plan.isa.usesPackedKernels ? """

        /* The arena layout was computed by the emitter; the kernels' own size functions must agree. */
        static int bs_sizes_ok(void) {
        \(checks)    return 1;
        }

        """ : "")
    }
}
