/* BitSwitch AVX2 integer kernels (C11 + <immintrin.h>): QConv / QGemm with the Requant fused in the epilogue,
 * bit-exact with the portable kernels of bs_kernels.c (tested against them on random shapes).
 *
 * Names: bs_<activation>_<op>[_requant]__avx2 are the entry points the generated code calls; the inner GEMM
 * micro-kernels are named like XNNPACK's, bs_<a><w>_gemm_rq64_<MR>x<NR>c<KR>__avx2 (MR output pixels or rows,
 * NR output channels, KR consecutive k per 32-bit group, rq64 = the int64 product-domain Requant epilogue):
 *   bs_qu8s8_gemm_rq64_16x4c4__avx2    u8 activations x s8 weights, vpmaddubsw + vpmaddwd; exact for |w| <= 64
 *                                      (255*64*2 < 32767: every w_bits <= 7)
 *   bs_qs16s16_gemm_rq64_16x4c2__avx2  int16 (x - x_zero) x int16 weights, vpmaddwd; exact for 8-bit weights
 *
 * Weights are packed into the arena when a profile sets their shift and bit-width (bs_qs8_pack_weights__avx2,
 * the one pass over the weights a switch makes anyway), with the per-channel sum of the shifted weights that
 * corrects the u8 offset: sum (x - xz) w = sum u w - uz sum w, u = x (u8) or x + 128 (i8), uz = xz (+128).
 * Conv is an implicit GEMM: per group, the input is gathered (im2col) into the caller's scratch, then
 * interleaved into [pixel/8][k-group][8 pixels][4 bytes]. Accumulation wraps modulo 2^32 like the reference.
 * This file compiles to nothing without __AVX2__ (a bundle emitted with --isa avx2 refuses to compile then). */
#ifndef BS_KERNELS_AVX2_H
#define BS_KERNELS_AVX2_H

#include "bs_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The scalar reference arithmetic every fast family (AVX2, AVX-512 VNNI, NEON) uses for its tails and unusual tables:
 * clamp, rshr (rounding right shift), one Requant output and a saturating store to a container. */
static inline int64_t bs_clamp64a(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : (v > hi ? hi : v); }
static inline int64_t bs_rshr64a(int64_t x, int64_t k) {
    if (k <= 0) return x;
    if (k >= 64) return 0;
    return (int64_t)((uint64_t)(x >> k) + (uint64_t)((x >> (k - 1)) & 1));
}
static inline int64_t bs_requant_scalar(int64_t x, const bs_requant_params *rq, size_t c) {
    size_t j = rq->count == 1 ? 0 : c;
    int64_t v = (int64_t)((uint64_t)x * (uint64_t)(int64_t)rq->m[j] + (uint64_t)rq->bias[j]);
    return bs_clamp64a((int64_t)((uint64_t)bs_rshr64a(v, rq->n[j]) + (uint64_t)rq->zero), rq->lo, rq->hi);
}
static inline void bs_store_scalar(void *y, int32_t t, size_t i, int64_t v) {
    switch (t) {
    case BS_T_I8: ((int8_t *)y)[i] = (int8_t)bs_clamp64a(v, INT8_MIN, INT8_MAX); break;
    case BS_T_U8: ((uint8_t *)y)[i] = (uint8_t)bs_clamp64a(v, 0, UINT8_MAX); break;
    default: ((int32_t *)y)[i] = (int32_t)bs_clamp64a(v, INT32_MIN, INT32_MAX); break;
    }
}

/* Bytes of the packed weights of `groups` x `mg` output channels with `k` reduction terms each (any bit-width). */
size_t bs_qs8_packed_weights_size__avx2(int32_t groups, int32_t mg, int32_t k);
/* The bytes a pack at `bits` writes (bs_qs8_pack_weights_rows__avx2; at most the above): a region that only ever
 * holds that bit-width (emit --prepack) needs no more. */
size_t bs_qs8_packed_weights_size_bits__avx2(int32_t groups, int32_t mg, int32_t k, int32_t bits);
/* Scratch bytes a conv (or a gemm of `rows` x `k`) needs: im2col, interleaved copy, fallback unpacked weights. */
size_t bs_conv_scratch_size__avx2(const bs_conv_shape *s);
size_t bs_gemm_scratch_size__avx2(size_t rows, size_t k, size_t m);

/* w_b = clamp(rshr(q8, shift), -2^(bits-1), 2^(bits-1)-1), packed. q8 is [groups*mg, k] (conv weights, gemm with
 * trans_b) or, with kmajor, [k, mg] (gemm without trans_b; groups must be 1). */
void bs_qs8_pack_weights__avx2(const int8_t *q8, void *packed, int32_t groups, int32_t mg, int32_t k, int32_t kmajor,
                               int32_t shift, int32_t bits);
/* The same for a gemm of `rows` rows (conv: 0): gemms of 1..4 rows (batch-1 fully connected layers, memory-bound)
 * get the k-contiguous batch-1 layout, 2 (w_bits 3, 4) or 4 (w_bits 1, 2) weights per byte, where it fits the bytes
 * bs_qs8_packed_weights_size__avx2 reserves; everything else the layout above. */
void bs_qs8_pack_weights_rows__avx2(const int8_t *q8, void *packed, int32_t groups, int32_t mg, int32_t k, int32_t kmajor,
                                    int32_t shift, int32_t bits, size_t rows);
/* The batch-1 layout alone (gemms of 1..4 rows, one group), when its bytes are at most `limit` (the data bytes the
 * caller's region holds past the header and the sums): returns 1 if it packed, else 0 (nothing written). The AVX-512
 * VNNI bundles' gemms of a few rows take it (bs_qs8_pack_weights_rows__avx512vnni) and run on the AVX2 batch-1 kernels. */
int32_t bs_qs8_pack_gemv_within__avx2(const int8_t *q8, void *packed, int32_t groups, int32_t mg, int32_t k, int32_t kmajor,
                                      int32_t shift, int32_t bits, size_t rows, size_t limit);
/* The same with the layout chosen by the caller: mode 1 = S8C4 (signed bytes, 4 k per 32-bit group; the AVX2
 * kernels use it for bits <= 7, the AVX-512 VNNI kernels for every bit-width), 2 = S16C2 (int16, 2 k per group).
 * Vectorized: shift, clamp, interleave and the per-channel sums in one pass. */
void bs_qs8_pack_weights_layout__avx2(const int8_t *q8, void *packed, int32_t groups, int32_t mg, int32_t k,
                                      int32_t kmajor, int32_t shift, int32_t bits, int32_t mode);

/* The header of a layout pack (mode 1 or 2, as above), for a caller that packs the data itself (the AVX-512 VNNI
 * kernels). */
void bs_qs8_pack_header__avx2(void *packed, int32_t groups, int32_t mg, int32_t k, int32_t shift, int32_t bits, int32_t mode);

/* The shape of a staged conv / gemm job's work (bs_kernels_avx2.c's bs_geometry), kept in the job by bs_avx2_stages. */
typedef struct bs_avx2_geo {
    int32_t mode, groups, mg, mg4, k, kg;   /* k per group */
    size_t n, npad, nb;                     /* output pixels (gemm rows), padded to 8, blocks of 8 */
    size_t tmp_bytes, ilv_bytes;            /* gathered rows [groups*kpad][npad]; interleaved per group */
    int32_t esize;                          /* 1 (u8) or 2 (int16) */
    int32_t uz;                             /* S8C4: the u8 value of x_zero; S16C2: x_zero */
    int32_t fallback;
    int32_t plane, plane_linear;            /* the plane path (bs_plane_fits); its block offsets are 8 b */
    int32_t plane_straddle;                 /* its blocks may span two output rows */
    size_t plane_rows, plane_pc, plane_len; /* its phase planes: rows, columns, elements (a multiple of 32) */
    size_t task_pairs, task_cbs;            /* a GEMM task: pairs of pixel blocks, blocks of 4 channels (bs_geometry) */
    size_t ilv_kparts;                      /* an interleave task: 1 / ilv_kparts of the k-groups */
} bs_avx2_geo;
enum { BS_AVX2_GEMV = 1, BS_AVX2_DEPTHWISE = 2, BS_AVX2_STAGED = 3 };

/* rq == NULL: int32 accumulators out (yt ignored). Threads: work is split into `parts` equal shares of output pixel
 * blocks; call with part = 0..parts-1 (any order, concurrently) after bs_*_prepare__avx2 has run once. The results
 * do not depend on `parts`. */
typedef struct bs_avx2_job {
    const void *x;
    int32_t xt, yt;
    const void *packed;
    const bs_qmm_params *p;
    const bs_requant_params *rq;
    void *y;
    unsigned char *scratch;
    /* conv (gemm: conv == NULL) */
    const bs_conv_shape *conv;
    size_t rows, k, m;
    int32_t trans_b;
    /* A QAdd in the conv's epilogue (AVX2 conv jobs; res_p NULL: none): once a task has written its part of y,
     * res_y = QAdd(y, res) over it, or QAdd(res, y) with res_swap (res and res_y of containers res_t, res_yt). */
    const void *res;
    void *res_y;
    const bs_qadd_params *res_p;
    int32_t res_t, res_yt, res_swap;
    /* The threads that will share the tasks (0 or 1: one). A hint for the tiling (bs_avx2_stages): stages then have at
     * least 4 tasks per thread where the work allows. The results do not depend on it. */
    int32_t threads;
    /* Set by bs_avx2_stages (callers leave them zero): the kernel that runs the job (BS_AVX2_*) and, staged, its
     * geometry, so that the tasks do not work them out again. A job changed after bs_avx2_stages needs it again. */
    int32_t kind;
    bs_avx2_geo geo;
    /* Set by bs_avx512vnni_stages (callers leave them zero): the AVX-512 VNNI kernels' geometry of the job, their own
     * struct kept as bytes (vgeo_set: it is there); the same rule. */
    int32_t vgeo_set;
    int64_t vgeo[28];
} bs_avx2_job;

/* The whole-op entry points (one thread) of a staged kernel family (FAMILY##_stages / _tasks / _run on a
 * bs_avx2_job): bs_q{s,u}8_conv[_requant]__SUFFIX and bs_q{s,u}8_gemm[_requant]__SUFFIX with the arguments declared
 * below. Each ISA file (AVX2, AVX-512 VNNI, NEON) expands it once; it needs <string.h>. */
#define BS_STAGED_ENTRY_POINTS(SUFFIX, FAMILY)                                                                     \
    static void FAMILY##_whole(const void *x, int32_t xt, const void *packed, const bs_qmm_params *p,               \
                               const bs_requant_params *rq, void *y, int32_t yt, void *scratch, const bs_conv_shape *s, \
                               size_t rows, size_t k, size_t m, int32_t trans_b) {                                 \
        bs_avx2_job j;                                                                                              \
        memset(&j, 0, sizeof j);                                                                                    \
        j.x = x; j.xt = xt; j.yt = yt; j.packed = packed; j.p = p; j.rq = rq; j.y = y;                              \
        j.scratch = (unsigned char *)scratch; j.conv = s; j.rows = rows; j.k = k; j.m = m; j.trans_b = trans_b;    \
        for (int32_t st = 0, ns = FAMILY##_stages(&j); st < ns; st++)                                               \
            for (int32_t t = 0, nt = FAMILY##_tasks(&j, st); t < nt; t++) FAMILY##_run(&j, st, t);                 \
    }                                                                                                               \
    void bs_qs8_conv_requant__##SUFFIX(const bs_conv_shape *s, const int8_t *x, const void *packed, const bs_qmm_params *p, \
                                       const bs_requant_params *rq, void *y, int32_t yt, void *scratch) {           \
        FAMILY##_whole(x, BS_T_I8, packed, p, rq, y, yt, scratch, s, 0, 0, 0, 0);                                   \
    }                                                                                                               \
    void bs_qu8_conv_requant__##SUFFIX(const bs_conv_shape *s, const uint8_t *x, const void *packed, const bs_qmm_params *p, \
                                       const bs_requant_params *rq, void *y, int32_t yt, void *scratch) {           \
        FAMILY##_whole(x, BS_T_U8, packed, p, rq, y, yt, scratch, s, 0, 0, 0, 0);                                   \
    }                                                                                                               \
    void bs_qs8_conv__##SUFFIX(const bs_conv_shape *s, const int8_t *x, const void *packed, const bs_qmm_params *p,  \
                               int32_t *y, void *scratch) {                                                         \
        FAMILY##_whole(x, BS_T_I8, packed, p, NULL, y, BS_T_I32, scratch, s, 0, 0, 0, 0);                           \
    }                                                                                                               \
    void bs_qu8_conv__##SUFFIX(const bs_conv_shape *s, const uint8_t *x, const void *packed, const bs_qmm_params *p, \
                               int32_t *y, void *scratch) {                                                         \
        FAMILY##_whole(x, BS_T_U8, packed, p, NULL, y, BS_T_I32, scratch, s, 0, 0, 0, 0);                           \
    }                                                                                                               \
    void bs_qs8_gemm_requant__##SUFFIX(size_t rows, size_t k, size_t m, int32_t trans_b, const int8_t *x,           \
                                       const void *packed, const bs_qmm_params *p, const bs_requant_params *rq,     \
                                       void *y, int32_t yt, void *scratch) {                                        \
        FAMILY##_whole(x, BS_T_I8, packed, p, rq, y, yt, scratch, NULL, rows, k, m, trans_b);                       \
    }                                                                                                               \
    void bs_qu8_gemm_requant__##SUFFIX(size_t rows, size_t k, size_t m, int32_t trans_b, const uint8_t *x,          \
                                       const void *packed, const bs_qmm_params *p, const bs_requant_params *rq,     \
                                       void *y, int32_t yt, void *scratch) {                                        \
        FAMILY##_whole(x, BS_T_U8, packed, p, rq, y, yt, scratch, NULL, rows, k, m, trans_b);                       \
    }                                                                                                               \
    void bs_qs8_gemm__##SUFFIX(size_t rows, size_t k, size_t m, int32_t trans_b, const int8_t *x, const void *packed, \
                               const bs_qmm_params *p, int32_t *y, void *scratch) {                                 \
        FAMILY##_whole(x, BS_T_I8, packed, p, NULL, y, BS_T_I32, scratch, NULL, rows, k, m, trans_b);               \
    }                                                                                                               \
    void bs_qu8_gemm__##SUFFIX(size_t rows, size_t k, size_t m, int32_t trans_b, const uint8_t *x, const void *packed, \
                               const bs_qmm_params *p, int32_t *y, void *scratch) {                                 \
        FAMILY##_whole(x, BS_T_U8, packed, p, NULL, y, BS_T_I32, scratch, NULL, rows, k, m, trans_b);               \
    }

/* Whole-op entry points (one thread). */
void bs_qs8_conv_requant__avx2(const bs_conv_shape *s, const int8_t *x, const void *packed, const bs_qmm_params *p,
                               const bs_requant_params *rq, void *y, int32_t yt, void *scratch);
void bs_qu8_conv_requant__avx2(const bs_conv_shape *s, const uint8_t *x, const void *packed, const bs_qmm_params *p,
                               const bs_requant_params *rq, void *y, int32_t yt, void *scratch);
void bs_qs8_conv__avx2(const bs_conv_shape *s, const int8_t *x, const void *packed, const bs_qmm_params *p, int32_t *y,
                       void *scratch);
void bs_qu8_conv__avx2(const bs_conv_shape *s, const uint8_t *x, const void *packed, const bs_qmm_params *p, int32_t *y,
                       void *scratch);
void bs_qs8_gemm_requant__avx2(size_t rows, size_t k, size_t m, int32_t trans_b, const int8_t *x, const void *packed,
                               const bs_qmm_params *p, const bs_requant_params *rq, void *y, int32_t yt, void *scratch);
void bs_qu8_gemm_requant__avx2(size_t rows, size_t k, size_t m, int32_t trans_b, const uint8_t *x, const void *packed,
                               const bs_qmm_params *p, const bs_requant_params *rq, void *y, int32_t yt, void *scratch);
void bs_qs8_gemm__avx2(size_t rows, size_t k, size_t m, int32_t trans_b, const int8_t *x, const void *packed,
                       const bs_qmm_params *p, int32_t *y, void *scratch);
void bs_qu8_gemm__avx2(size_t rows, size_t k, size_t m, int32_t trans_b, const uint8_t *x, const void *packed,
                       const bs_qmm_params *p, int32_t *y, void *scratch);

/* Quantize (bs_f32_quantize__generic's arguments), 8 floats per step, bit-exact with it. */
void bs_f32_quantize__avx2(const float *x, void *y, int32_t yt, size_t count, const bs_quantize_params *p);
/* Requant (bs_requant__generic's arguments) and QAdd (bs_qadd__generic's), 8 elements per step in 64-bit lanes,
 * bit-exact with them; bs_ew_run__avx2 is bs_ew_run__generic with these and the max pool below (the same tasks,
 * bs_ew_tasks__generic). */
void bs_requant__avx2(const void *x, int32_t xt, void *y, int32_t yt, size_t outer, size_t channels, size_t inner,
                      const bs_requant_params *rq);
void bs_qadd__avx2(const void *a, int32_t at, const void *b, int32_t bt, void *y, int32_t yt, size_t count,
                   const bs_qadd_params *p);
/* QMaxPool (bs_qmaxpool__generic's arguments): separable, the row max vectorized; 3-D windows take the generic one. */
void bs_qmaxpool__avx2(const bs_window *g, size_t planes, const void *x, int32_t xt, void *y);
void bs_ew_run__avx2(const bs_ew_job *j, int32_t task);

/* Split form for a thread pool: count the tasks, run each task index once (any thread, any order; tasks of one
 * stage may run concurrently, stage s+1 starts after every task of stage s finished). */
int32_t bs_avx2_stages(bs_avx2_job *j);
int32_t bs_avx2_tasks(const bs_avx2_job *j, int32_t stage);
void bs_avx2_run(const bs_avx2_job *j, int32_t stage, int32_t task);

/* The direct depthwise conv (group == c == m, 2-D, x - x_zero within int16; any kernel, stride, pad, dilation up to
 * the kernel's row buffer): the number of its tasks (channel ranges, one stage), 0 when the job is not one it takes.
 * bs_avx2_* and bs_avx512vnni_* run it themselves for such jobs (it reads either's packed weights). */
#define BS_DW_BUF 16384   /* int16 of the depthwise row ring (32 KiB of stack); a row's padded width x kh at most */
#define BS_DW_MAXW 4096   /* depthwise output columns at most */
int32_t bs_dwconv_tasks__avx2(const bs_avx2_job *j);
void bs_dwconv_run__avx2(const bs_avx2_job *j, int32_t task);
/* The channels [c0, c1) of depthwise task `task`. */
void bs_dw_channels__avx2(const bs_avx2_job *j, int32_t task, int32_t *c0, int32_t *c1);
/* The same with the caller's row kernel and epilogue (the AVX-512 VNNI kernels pass 32-wide vpdpwssd ones). The row
 * kernel: acc[0..ow) (it may write up to ow rounded up to 32) = sum over the nrows kernel rows (rows[r] NULL: outside
 * the input) and npairs tap pairs of the int16 dot products of row[r][off[2(r*npairs+q)+e] + ow'] (e = 0, 1) with
 * the pair of int16 weights packed in wpair[r*npairs+q]. The epilogue: acc [count int32, readable up to a multiple
 * of 32] to the output at y + off (channel c). */
typedef void (*bs_dw_row_kernel_fn)(const int16_t *const *rows, int32_t nrows, const int32_t *off, const int32_t *wpair,
                                    int32_t npairs, int32_t ow, int32_t *acc);
typedef void (*bs_dw_row_epilogue_fn)(const bs_avx2_job *j, const int32_t *acc, size_t c, size_t off, size_t count);
void bs_dwconv_run_with__avx2(const bs_avx2_job *j, int32_t task, bs_dw_row_epilogue_fn epi, bs_dw_row_kernel_fn rowk);
/* A row kernel's taps as 5 tap pairs (pair q: pa[q][o], pb[q][o] with the int16 weight pair wp[q]) where that is exact:
 * a 3x3 kernel's 9 taps in plane mode (one row, 5 pairs), and in row mode 3 rows inside the input of 2 pairs whose
 * second pairs' second weights are 0, re-paired across rows (5 pair steps instead of 6). Returns 0 otherwise. */
int32_t bs_dw_5pairs__avx2(const int16_t *const *rows, int32_t nrows, const int32_t *off, const int32_t *wpair, int32_t npairs,
                           const int16_t *pa[5], const int16_t *pb[5], int32_t wp[5]);

#ifdef __cplusplus
}
#endif
#endif
