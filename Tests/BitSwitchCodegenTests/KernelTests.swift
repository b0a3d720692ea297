import BitSwitchCodegen
import Foundation
import Testing

/// The AVX2, the AVX-512 VNNI and the NEON kernels against the portable reference kernels, in C, on thousands of
/// random shapes: 1-D / 2-D / 1x1 conv, strides, pads, dilations, groups, depthwise, gemm in both weight layouts, i8 and u8 inputs with zero points
/// (also ones outside the container, which take the exact fallback), every w_bits 1..8 and shift, per-tensor and
/// per-channel Requant into i8 / u8 / i32 (and raw int32 accumulators), extreme Requant tables, channel and pixel
/// tails; the staged form (what the thread pool runs) with its tasks in reverse order. Bit for bit.
struct KernelTests {
    static let check = #"""
/* Bit-exactness check of the AVX2 (or, with -DBS_TEST_VNNI, the AVX-512 VNNI; with -DBS_TEST_NEON, the aarch64 NEON)
 * kernels against the portable ones on random shapes. Usage: kernel_check SEED CASES */
#define _POSIX_C_SOURCE 200809L
#include "bs_kernels.h"
#include "bs_kernels_avx2.h"
#ifdef BS_TEST_NEON
#include "bs_kernels_neon.h"
#define K(n) n##__neon
#define KS(n) bs_neon_##n
#elif defined(BS_TEST_VNNI)
#include "bs_kernels_avx512vnni.h"
#define K(n) n##__avx512vnni
#define KS(n) bs_avx512vnni_##n
#else
#define K(n) n##__avx2
#define KS(n) bs_avx2_##n
#endif
#define EW_RUN(j, t) K(bs_ew_run)(j, t)   /* the split form of the elementwise ops (x86 only) */
#if defined(BS_TEST_VNNI)   /* conv weights in tap-major order (as the generated code stores them) where 4 | input channels per group */
#define PACK_ROWS(q8, pw, g, mg, k, kmajor, shift, bits, rows, taps) vnni_pack(q8, pw, g, mg, k, kmajor, shift, bits, taps, rows)
#elif defined(BS_TEST_NEON)
#define PACK_ROWS(q8, pw, g, mg, k, kmajor, shift, bits, rows, taps) K(bs_qs8_pack_weights)(q8, pw, g, mg, k, kmajor, shift, bits)
#else   /* the batch-1 layouts for gemms of 1..4 rows */
#define PACK_ROWS(q8, pw, g, mg, k, kmajor, shift, bits, rows, taps) bs_qs8_pack_weights_rows__avx2(q8, pw, g, mg, k, kmajor, shift, bits, rows)
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t st;
static uint64_t rnd(void) { st += 0x9E3779B97F4A7C15ull; uint64_t z = st; z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull; z = (z ^ (z >> 27)) * 0x94D049BB133111EBull; return z ^ (z >> 31); }
static int64_t ri(int64_t lo, int64_t hi) { return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1)); }
static void *al(size_t n) { void *p = NULL; if (posix_memalign(&p, 64, n ? n : 64)) exit(3); memset(p, 0xA5, n ? n : 64); return p; }
/* A 2-bit activation's Requant (at most 4 values: the VNNI epilogue's thresholds form); a quarter of them with steps
 * outside int32 (taken by every accumulator, or by none) and constant channels. m, n, bias: rq's count entries. */
static void narrow_requant(bs_requant_params *rq, int32_t *m, int32_t *n, int64_t *bias, int32_t yt) {
    rq->lo = yt == BS_T_U8 ? ri(0, 20) : ri(-10, 10); rq->hi = rq->lo + ri(0, 3);
    if (ri(0, 3)) return;
    for (int32_t i = 0; i < rq->count; i++) {
        m[i] = ri(0, 2) == 0 ? 0 : (int32_t)ri(-(1 << 20), 1 << 20); n[i] = (int32_t)ri(1, 20);
        bias[i] = (ri(0, 1) ? 1 : -1) * ri((int64_t)1 << 40, (int64_t)1 << 59);
        if (!m[i]) bias[i] = (rq->lo - rq->zero + ri(-1, 4)) * ((int64_t)1 << n[i]) + ri(-((int64_t)1 << (n[i] - 1)), (int64_t)1 << (n[i] - 1));
    }
}
#ifdef BS_TEST_VNNI
static int c16_case;   /* this case's conv weights packed with BS_VPACK_C16 (taken where 16 | mg: the channels-in-lanes kernel) */
static void vnni_pack(const int8_t *q8, void *pw, int32_t g, int32_t mg, int32_t k, int32_t kmajor, int32_t shift, int32_t bits, int32_t taps, size_t rows) {
    if (rows) bs_qs8_pack_weights_rows__avx512vnni(q8, pw, g, mg, k, kmajor, shift, bits, rows);   /* gemm: the batch-1 layout for 1..4 rows */
    else if (taps > 1 && k % (4 * taps) == 0) {
        size_t n = (size_t)g * mg * k;
        int8_t *t = al(n);
        bs_qs8_tap_major__avx512vnni(q8, t, n, taps);
        bs_qs8_pack_weights__avx512vnni(t, pw, g, mg, k, kmajor, shift, bits, taps, BS_VPACK_BSR_ROOM | (c16_case ? BS_VPACK_C16 : 0));
        free(t);
    } else bs_qs8_pack_weights__avx512vnni(q8, pw, g, mg, k, kmajor, shift, bits, 0,   /* room for bit planes: see psize */
                                           BS_VPACK_BSR_ROOM | (c16_case ? BS_VPACK_C16 : 0));
}
#endif

int main(int argc, char **argv) {
    st = argc > 1 ? strtoull(argv[1], 0, 10) : 1;
    int cases = argc > 2 ? atoi(argv[2]) : 200;
    long vbsr = 0, vbsr_taps = 0, vbsr_s2 = 0, vbsr_big = 0, vbsr_out = 0, vbsr_lanes = 0;   /* the VNNI checker's bit-serial convs; ones not taking it */
    (void)vbsr; (void)vbsr_taps; (void)vbsr_s2; (void)vbsr_big; (void)vbsr_out; (void)vbsr_lanes;
#ifdef BS_TEST_VNNI
    long vdw = 0, vdw_two = 0, vdw_wide = 0, vdw_s8 = 0, vc16_direct = 0, vc16_ilv = 0, vc16_tasks = 0;
#endif
    long distinct_cases = 0, paths[4] = {0}, direct_dw = 0, vdirect = 0, vdirect_taps = 0, vdirect_s2 = 0, lowact = 0, gemv = 0, plane = 0, plane_strided = 0, plane_rows = 0, plane_straddle = 0, plane_s2 = 0, fused_cases = 0, ilv_split = 0, gemm_multi = 0;
    (void)plane_s2; (void)ilv_split; (void)gemm_multi;   /* counted for the AVX2 checker only */
    (void)vdirect; (void)vdirect_taps; (void)vdirect_s2;   /* the VNNI checker only */
    for (int t = 0; t < cases; t++) {
        int is_gemm = ri(0, 3) == 0;
        bs_conv_shape s; memset(&s, 0, sizeof s);
        size_t rows = 0, k = 0, m = 0; int32_t trans_b = 0;
        int32_t groups = 1, mg, kk;
        size_t xcount, ycount;
        int bsr_case = 0;
        if (is_gemm) {
            rows = (size_t)(ri(0, 3) == 0 ? ri(41, 150) : ri(1, 40)); k = (size_t)ri(1, 300); m = (size_t)ri(1, 70); trans_b = (int32_t)ri(0, 1);
            if (ri(0, 2) == 0) rows = (size_t)ri(1, 5);   /* batch-1 fully connected layers */
            if (ri(0, 15) == 0) { rows = (size_t)ri(1, 20); k = (size_t)ri(2000, 12000); m = (size_t)ri(1, 9); }   /* long k: many int16 flushes */
            mg = (int32_t)m; kk = (int32_t)k; xcount = rows * k; ycount = rows * m;
        } else {
            bs_window *g = &s.win;
            int dims = (int)ri(1, 3); /* 1: 1-D, 2: 2-D, 3: 2-D 1x1 */
            int dw = ri(0, 5) == 0;
            int32_t cg = (int32_t)ri(1, 40);
            groups = dw ? (int32_t)ri(2, 24) : (ri(0, 4) == 0 ? (int32_t)ri(2, 4) : 1);
            if (dw) cg = 1;
#ifdef BS_TEST_VNNI
            if (ri(0, 1)) cg = (cg + 3) / 4 * 4;   /* the direct path's channel quads */
#endif
            mg = dw ? (int32_t)ri(1, 2) : (int32_t)ri(1, 37);
#ifdef BS_TEST_VNNI
            if (!dw && ri(0, 1)) mg = 16 * (int32_t)ri(1, 5);   /* the channels-in-lanes kernel's vectors of 16 channels */
#endif
            s.c = cg * groups; s.m = mg * groups; s.group = groups;
            g->d = 1; g->od = 1; g->kd = 1; g->sd = 1; g->pd = 0; g->ped = 0; g->dd = 1;
            g->h = dims == 1 ? 1 : (int32_t)ri(1, 20); g->w = (int32_t)ri(1, 30);
            int32_t kmax_h = g->h < 5 ? g->h : 5, kmax_w = g->w < 5 ? g->w : 5;
            g->kh = dims == 1 ? 1 : (dims == 3 ? 1 : (int32_t)ri(1, kmax_h)); g->kw = dims == 3 ? 1 : (int32_t)ri(1, kmax_w);
            g->sh = dims == 1 ? 1 : (int32_t)ri(1, 3); g->sw = (int32_t)ri(1, 3);
            g->dh = 1; g->dw = ri(0, 4) == 0 && g->kw > 1 ? 2 : 1;
            g->ph = dims == 1 ? 0 : (int32_t)ri(0, g->kh - 1 < 2 ? g->kh - 1 : 2); g->peh = g->ph;
            g->pw = (int32_t)ri(0, g->kw - 1 < 2 ? g->kw - 1 : 2); g->pew = (int32_t)ri(0, g->pw);
            if (ri(0, 5) == 0) { g->w = (int32_t)ri(33, 100); g->sw = 2; }   /* wide stride-2 rows (the vector gather) */
            if (ri(0, 4) == 0) {   /* "same" stride-1 convs (the contiguous-stretch gather): output size = input size */
                g->sh = 1; g->sw = 1; g->dw = 1; g->dh = 1;
                g->pw = (g->kw - 1) / 2; g->pew = g->kw - 1 - g->pw; g->ph = (g->kh - 1) / 2; g->peh = g->kh - 1 - g->ph;
            }
            if (ri(0, 3) == 0) {   /* true depthwise (the direct kernel): 1x1 / 3x3 / 5x5, stride 1 or 2, odd widths */
                int32_t ks[3] = {1, 3, 5};
                groups = (int32_t)ri(1, 40); cg = 1; mg = 1;
                s.c = groups; s.m = groups; s.group = groups;
                g->h = (int32_t)(ri(0, 5) == 0 ? 1 : ri(1, 40)); g->w = (int32_t)(ri(0, 5) == 0 ? 1 : ri(1, 70));
                g->kh = ks[ri(0, 2)]; g->kw = ri(0, 4) == 0 ? ks[ri(0, 2)] : g->kh;
                g->sh = (int32_t)ri(1, 2); g->sw = ri(0, 4) == 0 ? (int32_t)ri(1, 3) : g->sh;
                g->dh = ri(0, 7) == 0 ? 2 : 1; g->dw = ri(0, 7) == 0 ? 2 : 1;
                g->ph = (int32_t)ri(0, g->kh / 2); g->peh = ri(0, 3) == 0 ? (int32_t)ri(0, g->ph) : g->ph;
                g->pw = (int32_t)ri(0, g->kw / 2); g->pew = ri(0, 3) == 0 ? (int32_t)ri(0, g->pw) : g->pw;
                if ((g->kh - 1) * g->dh + 1 > g->h + g->ph + g->peh) { g->dh = 1; g->kh = 1; g->ph = g->peh = 0; }
                if ((g->kw - 1) * g->dw + 1 > g->w + g->pw + g->pew) { g->dw = 1; g->kw = 1; g->pw = g->pew = 0; }
                g->oh = (g->h + g->ph + g->peh - ((g->kh - 1) * g->dh + 1)) / g->sh + 1;
            }
            int32_t ekw = (g->kw - 1) * g->dw + 1;
            if (ekw > g->w + g->pw + g->pew) { g->dw = 1; ekw = g->kw; }
            if (ekw > g->w + g->pw + g->pew) { g->kw = 1; ekw = 1; }
            if (cg > 1 && g->kh > 1 && ri(0, 5) == 0 && 2 * g->kh - 1 <= g->h + g->ph + g->peh) g->dh = 2;   /* vertical dilation */
            if (cg > 1) g->oh = (g->h + g->ph + g->peh - ((g->kh - 1) * g->dh + 1)) / g->sh + 1;   /* (depthwise: above) */
            else if (g->dh == 1) g->oh = (g->h + g->ph + g->peh - g->kh) / g->sh + 1;
            g->ow = (g->w + g->pw + g->pew - ekw) / g->sw + 1;
            kk = cg * g->kh * g->kw;
#ifdef BS_TEST_VNNI
            if (ri(0, 4) == 0) {   /* the bit-serial w2a2 path: one group, 48..256 input channels, stride 1 or 2 */
                bsr_case = 1;
                groups = 1; cg = 4 * (int32_t)ri(12, 64); mg = ri(0, 1) ? 16 * (int32_t)ri(1, 3) : (int32_t)ri(1, 37);   /* 16 | mg: channels in lanes */
                s.c = cg; s.m = mg; s.group = 1;
                int32_t kd = (int32_t)ri(1, 3);
                g->h = kd == 1 ? 1 : (int32_t)ri(1, 12); g->w = (int32_t)ri(1, 24);
                if (kd == 2 && ri(0, 3) == 0) {   /* planes of 1000+ pixels: the conversion split into slices */
                    g->h = (int32_t)ri(30, 48); g->w = (int32_t)ri(30, 48); cg = 4 * (int32_t)ri(12, 20); mg = (int32_t)ri(1, 8);
                    s.c = cg; s.m = mg;
                }
                g->kh = kd == 2 ? (int32_t)ri(1, g->h < 3 ? g->h : 3) : 1; g->kw = kd == 3 ? 1 : (int32_t)ri(1, g->w < 3 ? g->w : 3);
                g->sh = kd == 1 ? 1 : (int32_t)ri(1, 2); g->sw = (int32_t)ri(1, 2); g->dh = 1; g->dw = 1;
                g->ph = g->peh = (int32_t)ri(0, g->kh - 1); g->pw = g->pew = (int32_t)ri(0, g->kw - 1);
                g->oh = (g->h + g->ph + g->peh - g->kh) / g->sh + 1; g->ow = (g->w + g->pw + g->pew - g->kw) / g->sw + 1;
                kk = cg * g->kh * g->kw;
            }
#endif
            xcount = (size_t)s.c * g->h * g->w; ycount = (size_t)s.m * g->oh * g->ow;
        }
        size_t mtot = (size_t)groups * mg;
        int32_t xt = (int32_t)ri(0, 1);
        int32_t bits = (int32_t)ri(1, 8), shift = ri(0, 1) ? 8 - bits : (int32_t)ri(0, ri(0, 7) == 0 ? 9 : 7);
        bs_qmm_params p = {0, shift, bits};
        int odd_zero = ri(0, 15) == 0;
        p.x_zero = xt == BS_T_U8 ? (int32_t)(odd_zero ? ri(256, 40000) : (ri(0, 1) ? 0 : ri(0, 255))) : (int32_t)(odd_zero ? ri(-40000, -200) : (ri(0, 1) ? 0 : ri(-128, 127)));
        unsigned char *x = al(xcount);
        for (size_t i = 0; i < xcount; i++) x[i] = (unsigned char)rnd();
        size_t wcount = mtot * (size_t)kk;
        int8_t *q8 = al(wcount), *wb = al(wcount);
        for (size_t i = 0; i < wcount; i++) q8[i] = (int8_t)rnd();
        /* low-bit activations (a_bits 1..7: u8 values 0..2^a - 1, i8 values -2^(a-1)..2^(a-1) - 1), which take the
         * int16-accumulating kernels for long runs of k (the flush interval depends on max u and w_bits) */
        int32_t abits = ri(0, 2) == 0 ? (int32_t)ri(1, 7) : 8;
        if (abits < 8) {
            for (size_t i = 0; i < xcount; i++) {
                int32_t v = (int32_t)(x[i] & ((1u << abits) - 1));
                x[i] = (unsigned char)(xt == BS_T_U8 ? v : v - (1 << (abits - 1)));
            }
            lowact++;
        }
        if (bsr_case) {   /* 1- or 2-bit weights; activations within 4 consecutive values (a few within 5: the int8 path), the zero
                           * point (the padding) among them or not */
            bits = (int32_t)ri(1, 2); shift = ri(0, 1) ? 8 - bits : (int32_t)ri(0, 7); p.w_shift = shift; p.w_bits = bits;
            int32_t span = ri(0, 9) == 0 ? 5 : 4, lo = xt == BS_T_U8 ? (int32_t)ri(0, 256 - span) : (int32_t)ri(-128, 128 - span);
            for (size_t i = 0; i < xcount; i++) x[i] = (unsigned char)(lo + (int32_t)(rnd() % (uint64_t)span));
            p.x_zero = ri(0, 5) == 0 ? (xt == BS_T_U8 ? (int32_t)ri(0, 255) : (int32_t)ri(-128, 127)) : lo + (int32_t)ri(0, span - 1);
        }
        if (ri(0, 15) == 0) {   /* the largest products (u = max, w_b = -2^(bits-1)): the int16 accumulation bounds */
            for (size_t i = 0; i < xcount; i++) x[i] = xt == BS_T_U8 ? (unsigned char)((1u << abits) - 1) : (unsigned char)((1 << (abits - 1)) - 1);
            for (size_t i = 0; i < wcount; i++) q8[i] = -128;
        }
        bs_qs8_shift_weights__generic(q8, wb, wcount, shift, bits);
        size_t psize = K(bs_qs8_packed_weights_size)(groups, mg, kk);
#ifdef BS_TEST_VNNI
        {   /* the taps vnni_pack passes (as the emitter: tap-major weights' taps, else 0) */
            int32_t taps = is_gemm ? 0 : s.win.kh * s.win.kw;
            psize += bs_qs8_packed_bsr_size__avx512vnni(groups, mg, kk, taps > 1 && kk % (4 * taps) == 0 ? taps : 0);
        }
#endif
        void *pw = al(psize);
#ifdef BS_TEST_VNNI
        c16_case = !is_gemm && ri(0, 1);
#endif
        PACK_ROWS(q8, pw, groups, mg, kk, is_gemm && !trans_b, shift, bits, is_gemm ? rows : 0, is_gemm ? 0 : s.win.kh * s.win.kw);
#if !defined(BS_TEST_NEON)
        gemv += ((const int32_t *)pw)[0] >= 3;   /* the packed header's mode: the AVX2 batch-1 layout (VNNI bundles use it too) */
#endif
        size_t ssize = is_gemm ? K(bs_gemm_scratch_size)(rows, k, m) : K(bs_conv_scratch_size)(&s);
        void *scratch = al(ssize);
        /* requant */
        int use_rq = ri(0, 7) != 0;
        int32_t yt = use_rq ? (int32_t)ri(0, 2) : BS_T_I32;
        int32_t cnt = ri(0, 1) ? (int32_t)mtot : 1;
        int32_t *rm = al(sizeof(int32_t) * cnt), *rn = al(sizeof(int32_t) * cnt);
        int64_t *rb = al(sizeof(int64_t) * cnt);
        int extreme = ri(0, 9) == 0;
        for (int32_t i = 0; i < cnt; i++) {
            rm[i] = (int32_t)ri(1 << 29, (1 << 30) - 1);
            if (ri(0, 1)) rm[i] = -rm[i];
            if (extreme && ri(0, 2) == 0) rm[i] = (int32_t)rnd();
            rn[i] = (int32_t)ri(30, 44);
            if (extreme && ri(0, 2) == 0) rn[i] = (int32_t)ri(0, 62);
            rb[i] = ri(-((int64_t)1 << 40), (int64_t)1 << 40);
            if (extreme && ri(0, 2) == 0) rb[i] = (int64_t)rnd();
        }
        bs_requant_params rq = {rm, rn, rb, cnt, 0, 0, 0};
        rq.zero = yt == BS_T_U8 ? ri(0, 30) : ri(-5, 5);
        rq.lo = yt == BS_T_U8 ? 0 : (yt == BS_T_I8 ? -128 : -(1 << 20));
        rq.hi = yt == BS_T_U8 ? 255 : (yt == BS_T_I8 ? 127 : 1 << 20);
        if (extreme && ri(0, 1)) { rq.lo = ri(-300, 300); rq.hi = ri(-300, 300); rq.zero = (int64_t)rnd(); }
        if (!extreme && yt != BS_T_I32 && ri(0, 3) == 0) narrow_requant(&rq, rm, rn, rb, yt);
        size_t esz = yt == BS_T_I32 ? 4 : 1;
        unsigned char *y0 = al(ycount * esz), *y1 = al(ycount * esz), *y2 = al(ycount * esz);
        memset(y0, 0, ycount * esz); memset(y1, 0x5a, ycount * esz); memset(y2, 0x3c, ycount * esz);
        const bs_requant_params *R = use_rq ? &rq : NULL;
        if (is_gemm) {
            const int8_t *wg = wb;  /* generic: w [k, m] or [m, k] with trans_b: wb is in q8's layout */
            if (R) { if (xt == BS_T_U8) bs_qu8_gemm_requant__generic(rows, k, m, trans_b, x, wg, &p, R, y0, yt); else bs_qs8_gemm_requant__generic(rows, k, m, trans_b, (int8_t *)x, wg, &p, R, y0, yt); }
            else { if (xt == BS_T_U8) bs_qu8_gemm__generic(rows, k, m, trans_b, x, wg, &p, (int32_t *)y0); else bs_qs8_gemm__generic(rows, k, m, trans_b, (int8_t *)x, wg, &p, (int32_t *)y0); }
            if (R) { if (xt == BS_T_U8) K(bs_qu8_gemm_requant)(rows, k, m, trans_b, x, pw, &p, R, y1, yt, scratch); else K(bs_qs8_gemm_requant)(rows, k, m, trans_b, (int8_t *)x, pw, &p, R, y1, yt, scratch); }
            else { if (xt == BS_T_U8) K(bs_qu8_gemm)(rows, k, m, trans_b, x, pw, &p, (int32_t *)y1, scratch); else K(bs_qs8_gemm)(rows, k, m, trans_b, (int8_t *)x, pw, &p, (int32_t *)y1, scratch); }
        } else {
            if (R) { if (xt == BS_T_U8) bs_qu8_conv_requant__generic(&s, x, wb, &p, R, y0, yt); else bs_qs8_conv_requant__generic(&s, (int8_t *)x, wb, &p, R, y0, yt); }
            else { if (xt == BS_T_U8) bs_qu8_conv__generic(&s, x, wb, &p, (int32_t *)y0); else bs_qs8_conv__generic(&s, (int8_t *)x, wb, &p, (int32_t *)y0); }
            if (R) { if (xt == BS_T_U8) K(bs_qu8_conv_requant)(&s, x, pw, &p, R, y1, yt, scratch); else K(bs_qs8_conv_requant)(&s, (int8_t *)x, pw, &p, R, y1, yt, scratch); }
            else { if (xt == BS_T_U8) K(bs_qu8_conv)(&s, x, pw, &p, (int32_t *)y1, scratch); else K(bs_qs8_conv)(&s, (int8_t *)x, pw, &p, (int32_t *)y1, scratch); }
        }
        /* the staged form, tasks in reverse order (what a pool may do) */
        bs_avx2_job j; memset(&j, 0, sizeof j);
        j.x = x; j.xt = xt; j.yt = yt; j.packed = pw; j.p = &p; j.rq = R; j.y = y2; j.scratch = scratch;
        if (is_gemm) { j.rows = rows; j.k = k; j.m = m; j.trans_b = trans_b; } else j.conv = &s;
        j.threads = (int32_t)ri(0, 4);   /* the tiling's hint (AVX2): 0 / 1 none, else smaller tasks */
#ifdef BS_TEST_NEON
        if (bs_dwconv_tasks__neon(&j)) direct_dw++;
#else
        if (bs_dwconv_tasks__avx2(&j)) direct_dw++;
#ifdef BS_TEST_VNNI
        { int32_t v = bs_avx512vnni_depthwise_vpermb(&j); vdw += v > 0; vdw_two += v == 2; vdw_wide += v && s.win.kw > 4; vdw_s8 += v && xt == BS_T_I8; }
        if (bs_avx512vnni_direct(&j)) { vdirect++; vdirect_taps += s.win.kh * s.win.kw > 1; vdirect_s2 += s.win.sh == 2 || s.win.sw == 2; }
#endif
        /* AVX2's plane path (bs_plane_fits): blocks of 8 output pixels read one run of each tap's phase plane */
        else if (!is_gemm && s.win.kw <= 16) {
            int32_t pc = (s.win.w + s.win.sw - 1) / s.win.sw;
            if (s.win.sh * pc == s.win.ow) plane++;   /* offsets p + const */
            else if (s.win.oh == 1 || s.win.ow % 8 == 0) { plane++; plane_rows += s.win.oh > 1; plane_strided++; }   /* blocks in one row */
            else if (s.win.ow >= 7 && pc >= 8) { plane++; plane_straddle++; }   /* blocks over two rows */
            else pc = 0;
            if (pc && s.win.sw == 2 && s.win.w >= 16) plane_s2++;   /* the vector parity split (bs_split2_row) */
        }
#endif
#if !defined(BS_TEST_VNNI) && !defined(BS_TEST_NEON)
        /* AVX2: a residual QAdd in the conv's epilogue (res_y = QAdd(y, res) or QAdd(res, y)); y itself need not be
         * written then, so the staged run's y is not compared, its res_y is (against the generic QAdd of y0) */
        int fused = !is_gemm && R && ri(0, 2) == 0;
        int32_t rt = (int32_t)ri(0, 2), ryt = (int32_t)ri(0, 2);
        size_t rsz = rt == BS_T_I32 ? 4 : 1, rysz = ryt == BS_T_I32 ? 4 : 1;
        unsigned char *res = al(ycount * rsz), *ry0 = al(ycount * rysz), *ry2 = al(ycount * rysz);
        for (size_t i = 0; i < ycount * rsz; i++) res[i] = (unsigned char)rnd();
        if (rt == BS_T_I32) for (size_t i = 0; i < ycount; i++) ((int32_t *)res)[i] >>= ri(8, 20);
        bs_qadd_params rp = {ri(1 << 20, 1 << 30), ri(1 << 20, 1 << 30), ri(28, 40), ri(-128, 255), ri(-128, 255), ri(-10, 10),
                             ryt == BS_T_U8 ? 0 : -128, ryt == BS_T_U8 ? 255 : 127};
        if (ryt == BS_T_I32) { rp.lo = -(1 << 24); rp.hi = 1 << 24; }
        if (ri(0, 9) == 0) rp.m_a = (int64_t)1 << 33;   /* outside int32 lanes: the QAdd from the written y */
        if (fused) {
            j.res = res; j.res_y = ry2; j.res_p = &rp; j.res_t = rt; j.res_yt = ryt; j.res_swap = (int32_t)ri(0, 1);
            memset(ry0, 0x11, ycount * rysz); memset(ry2, 0x77, ycount * rysz);
            if (j.res_swap) bs_qadd__generic(res, rt, y0, yt, ry0, ryt, ycount, &rp);
            else bs_qadd__generic(y0, yt, res, rt, ry0, ryt, ycount, &rp);
            fused_cases++;
        }
#endif
        for (int32_t sg = 0; sg < KS(stages)(&j); sg++) for (int32_t tk = KS(tasks)(&j, sg) - 1; tk >= 0; tk--) KS(run)(&j, sg, tk);
#ifdef BS_TEST_VNNI
        if (bs_avx512vnni_channel_lanes(&j)) {
            if (bs_avx512vnni_direct(&j)) vc16_direct++; else vc16_ilv++;
            vc16_tasks += KS(tasks)(&j, 1) > 1;
        }
        if (bs_avx512vnni_bitserial(&j)) { vbsr++; vbsr_taps += s.win.kh * s.win.kw > 1; vbsr_s2 += s.win.sh == 2 || s.win.sw == 2; vbsr_big += s.win.h >= 30; vbsr_lanes += mg % 16 == 0; }
        else if (bsr_case && !is_gemm && bits <= 2 && bs_avx512vnni_direct(&j)) vbsr_out++;
#endif
#if !defined(BS_TEST_VNNI) && !defined(BS_TEST_NEON)
        /* the staged tiling (bs_gemm_tiling): interleave tasks over parts of the k-groups, GEMM tasks of several pairs */
        if (j.kind == BS_AVX2_STAGED && !j.geo.fallback) { ilv_split += j.geo.ilv_kparts > 1; gemm_multi += j.geo.task_pairs > 1; }
        if (fused) {
            if (memcmp(ry0, ry2, ycount * rysz)) {
                size_t i = 0; while (ry0[i] == ry2[i]) i++;
                printf("MISMATCH fused residual case %d: rt=%d ryt=%d swap=%d yt=%d byte %zu: %d vs %d\n", t, rt, ryt, j.res_swap, yt, i, ry0[i], ry2[i]);
                return 1;
            }
            memcpy(y2, y0, ycount * esz);   /* y is scratch for the fused run */
        }
        free(res); free(ry0); free(ry2);
#endif
        if (memcmp(y0, y1, ycount * esz) || memcmp(y0, y2, ycount * esz)) {
            size_t i = 0; while (i < ycount * esz && y0[i] == y1[i] && y0[i] == y2[i]) i++;
            printf("MISMATCH case %d: %s xt=%d bits=%d shift=%d xz=%d rq=%d yt=%d cnt=%d groups=%d mg=%d k=%d byte %zu: %d vs %d / %d\n",
                   t, is_gemm ? "gemm" : "conv", xt, bits, shift, p.x_zero, use_rq, yt, cnt, groups, mg, kk, i, y0[i], y1[i], y2[i]);
            if (!is_gemm) printf("  conv c=%d m=%d h=%d w=%d k=%dx%d s=%dx%d p=%d,%d/%d,%d d=%dx%d o=%dx%d\n", s.c, s.m, s.win.h, s.win.w, s.win.kh, s.win.kw, s.win.sh, s.win.sw, s.win.ph, s.win.pw, s.win.peh, s.win.pew, s.win.dh, s.win.dw, s.win.oh, s.win.ow);
            else printf("  gemm rows=%zu k=%zu m=%zu trans_b=%d\n", rows, k, m, trans_b);
            return 1;
        }
        /* non-vacuous: several distinct output values */
        int distinct = 0; for (size_t i = esz; i < ycount * esz && !distinct; i++) distinct = y0[i] != y0[0];
        distinct_cases += distinct;
        paths[bits <= 7 ? 0 : 1]++; if (odd_zero) paths[2]++; if (extreme) paths[3]++;
        free(x); free(q8); free(wb); free(pw); free(scratch); free(rm); free(rn); free(rb); free(y0); free(y1); free(y2);
    }
    printf("ok %d cases (%ld with varied outputs; %ld w<=7 bits, %ld 8-bit, %ld odd zero points, %ld extreme requant, %ld direct depthwise, %ld low-bit activations, %ld batch-1 gemm layouts, %ld plane-path convs: %ld with blocks in one row, %ld of those with several rows, %ld with blocks over two rows; %ld with a residual QAdd in the epilogue)\n", cases, distinct_cases, paths[0], paths[1], paths[2], paths[3], direct_dw, lowact, gemv, plane, plane_strided, plane_rows, plane_straddle, fused_cases);
    if (direct_dw < cases / 20) { printf("too few direct depthwise cases: %ld\n", direct_dw); return 1; }
#ifdef BS_TEST_VNNI
    printf("%ld VNNI direct-path convs: %ld of several taps, %ld strided\n", vdirect, vdirect_taps, vdirect_s2);
    if (vdirect < cases / 10 || vdirect_taps < cases / 20 || vdirect_s2 < cases / 50) { printf("too few VNNI direct-path convs\n"); return 1; }
    printf("%ld channels-in-lanes convs on the direct path, %ld on the interleaved copy, %ld of several tasks\n", vc16_direct, vc16_ilv, vc16_tasks);
    if (vc16_direct < cases / 40 || vc16_ilv < cases / 100 || vc16_tasks < cases / 100) { printf("too few channels-in-lanes convs\n"); return 1; }
#if defined(__AVX512VBMI__) && !defined(BS_NO_VDW)
    printf("%ld depthwise convs on the vpermb kernel: %ld two rows per vector, %ld of kernels wider than 4, %ld of int8 input\n", vdw, vdw_two, vdw_wide, vdw_s8);
    if (vdw < cases / 20 || vdw_two < cases / 200 || vdw_wide < cases / 200 || vdw_s8 < cases / 100) { printf("too few vpermb depthwise convs\n"); return 1; }
#else
    if (vdw) { printf("the vpermb depthwise kernel ran without VBMI\n"); return 1; }
#endif
#if defined(__AVX512VPOPCNTDQ__) && defined(__AVX512VBMI__)
    printf("%ld bit-serial w2a2 convs: %ld of several taps, %ld strided, %ld of 30+ rows, %ld with channels in lanes; %ld 2-bit direct-path convs on the int8 kernels (activations over more than 4 values, or under 4 k-words)\n", vbsr, vbsr_taps, vbsr_s2, vbsr_big, vbsr_lanes, vbsr_out);
    if (vbsr < cases / 40 || vbsr_taps < cases / 80 || vbsr_s2 < cases / 200 || vbsr_big < cases / 400 || vbsr_out < cases / 400 || vbsr_lanes < cases / 100) { printf("too few bit-serial convs\n"); return 1; }
#endif
#endif
#if !defined(BS_TEST_NEON)
    if (gemv < cases / 40) { printf("too few batch-1 gemm cases: %ld\n", gemv); return 1; }
#endif
#if !defined(BS_TEST_VNNI) && !defined(BS_TEST_NEON)
    if (fused_cases < cases / 20) { printf("too few fused residual cases: %ld\n", fused_cases); return 1; }
    if (ilv_split < cases / 50 || gemm_multi < cases / 50) { printf("too few split interleave / multi-pair GEMM tasks: %ld, %ld\n", ilv_split, gemm_multi); return 1; }
    if (plane < cases / 20 || plane_strided < cases / 40 || plane_rows < cases / 200 || plane_straddle < cases / 200 || plane_s2 < cases / 100) {
        printf("too few plane-path convs: %ld, %ld, %ld, %ld, %ld stride-2 rows of 16 or more\n", plane, plane_strided, plane_rows, plane_straddle, plane_s2);
        return 1;
    }
#endif
#ifdef BS_TEST_NEON
    printf("kernel %s\n", bs_neon_gemm_kernel_name());   /* NEON: no elementwise kernels, the bundle uses the generic ones */
    return 0;
#else
    /* the vectorized Requant and QAdd against the generic ones: every container pair, tails, extreme parameters;
     * also the split form (bs_ew_run, tasks in reverse order), and Requants fused into a QAdd (bs_ew_run_readers) */
    for (int t = 0; t < cases; t++) {
        size_t outer = (size_t)ri(1, 3), ch = (size_t)ri(1, 9), inner = (size_t)(ri(0, 7) == 0 ? ri(900, 4000) : ri(1, 70)), n = outer * ch * inner;
        int32_t xt = (int32_t)ri(0, 2), bt = (int32_t)ri(0, 2), yt = (int32_t)ri(0, 2);
        size_t xs = xt == BS_T_I32 ? 4 : 1, bs = bt == BS_T_I32 ? 4 : 1, ys = yt == BS_T_I32 ? 4 : 1;
        unsigned char *xa = al(n * 4), *xb = al(n * 4), *y0 = al(n * 4), *y1 = al(n * 4);
        for (size_t i = 0; i < n * 4; i++) { xa[i] = (unsigned char)rnd(); xb[i] = (unsigned char)rnd(); }
        if (xt == BS_T_I32 && ri(0, 1)) for (size_t i = 0; i < n; i++) ((int32_t *)xa)[i] >>= ri(0, 20);
        if (xt == BS_T_I32 && ri(0, 3) == 0) for (size_t i = 0; i < n; i++) ((int32_t *)xa)[i] = ri(0, 1) ? INT32_MIN : INT32_MAX;
        int extreme = ri(0, 7) == 0;
        int32_t cnt = ri(0, 1) ? (int32_t)ch : 1;
        int32_t *rm = al(4 * ch), *rn = al(4 * ch); int64_t *rb = al(8 * ch);
        for (int32_t i = 0; i < cnt; i++) {
            rm[i] = (int32_t)ri(-(1 << 30), 1 << 30); rn[i] = (int32_t)ri(20, 44); rb[i] = ri(-((int64_t)1 << 40), (int64_t)1 << 40);
            if (extreme) { rm[i] = (int32_t)rnd(); rn[i] = (int32_t)ri(-2, 70); rb[i] = (int64_t)rnd(); }
            if (extreme && ri(0, 1)) {   /* at the edge of the epilogue's int32 fast path: |bias| ~ 2^62 - 2^(n-1), extreme products */
                rn[i] = (int32_t)ri(31, 63); rm[i] = ri(0, 1) ? INT32_MIN : INT32_MAX;
                rb[i] = (ri(0, 1) ? 1 : -1) * (((int64_t)1 << 62) - ((int64_t)1 << (rn[i] - 1)) + ri(-2, 2));
            }
        }
        bs_requant_params rq = {rm, rn, rb, cnt, ri(-5, 30), yt == BS_T_U8 ? 0 : -128, yt == BS_T_U8 ? 255 : 127};
        if (extreme && ri(0, 1)) { rq.lo = ri(-300, 300); rq.hi = ri(-300, 300); rq.zero = (int64_t)rnd(); }
        if (yt == BS_T_I32 && ri(0, 1)) { rq.lo = ri(0, 1) ? INT32_MIN : -((int64_t)1 << 40); rq.hi = ri(0, 1) ? INT32_MAX : (int64_t)1 << 40; }
        if (!extreme && yt != BS_T_I32 && ri(0, 3) == 0) narrow_requant(&rq, rm, rn, rb, yt);
        memset(y0, 0x11, n * 4); memset(y1, 0x11, n * 4);
        bs_requant__generic(xa, xt, y0, yt, outer, ch, inner, &rq);
        K(bs_requant)(xa, xt, y1, yt, outer, ch, inner, &rq);
        if (memcmp(y0, y1, n * 4)) { printf("MISMATCH requant case %d xt=%d yt=%d\n", t, xt, yt); return 1; }
        {
            bs_ew_job ej; memset(&ej, 0, sizeof ej);
            ej.kind = BS_EW_REQUANT; ej.x = xa; ej.xt = xt; ej.y = y1; ej.yt = yt; ej.outer = outer; ej.channels = ch; ej.inner = inner; ej.rq = &rq;
            memset(y1, 0x11, n * 4);
            for (int32_t tk = bs_ew_tasks__generic(&ej) - 1; tk >= 0; tk--) EW_RUN(&ej, tk);
            if (memcmp(y0, y1, n * 4)) { printf("MISMATCH split requant case %d xt=%d yt=%d\n", t, xt, yt); return 1; }
        }
        bs_qadd_params qa = {ri(1, 1 << 20), ri(1, 1 << 20), ri(10, 30), ri(-128, 255), ri(-128, 255), ri(-10, 10),
                             yt == BS_T_U8 ? 0 : -128, yt == BS_T_U8 ? 255 : 127};
        if (ri(0, 3) == 0) {   /* multipliers near 2^31: sums of products near and past 2^62 (AVX2's int32-lane bound) */
            qa.m_a = ri((int64_t)1 << 29, INT32_MAX) * (ri(0, 1) ? 1 : -1); qa.m_b = ri((int64_t)1 << 29, INT32_MAX) * (ri(0, 1) ? 1 : -1);
            qa.n = ri(28, 62); qa.zero = ri(-3, 3);
        }
        if (extreme) { qa.m_a = (int64_t)rnd(); qa.m_b = (int64_t)rnd(); qa.n = ri(-2, 70); qa.a_zero = (int64_t)rnd(); }
        if (extreme && ri(0, 1)) { qa.lo = ri(-300, 300); qa.hi = ri(-300, 300); }
        memset(y0, 0x22, n * 4); memset(y1, 0x22, n * 4);
        bs_qadd__generic(xa, xt, xb, bt, y0, yt, n, &qa);
        K(bs_qadd)(xa, xt, xb, bt, y1, yt, n, &qa);
        if (memcmp(y0, y1, n * 4)) { printf("MISMATCH qadd case %d at=%d bt=%d yt=%d\n", t, xt, bt, yt); return 1; }
        {
            bs_ew_job ej; memset(&ej, 0, sizeof ej);
            ej.kind = BS_EW_QADD; ej.x = xa; ej.xt = xt; ej.b = xb; ej.bt = bt; ej.y = y1; ej.yt = yt; ej.count = n; ej.qadd = &qa;
            memset(y1, 0x22, n * 4);
            for (int32_t tk = bs_ew_tasks__generic(&ej) - 1; tk >= 0; tk--) EW_RUN(&ej, tk);
            if (memcmp(y0, y1, n * 4)) { printf("MISMATCH split qadd case %d at=%d bt=%d yt=%d\n", t, xt, bt, yt); return 1; }
            /* the Requant above as two fused readers of the QAdd (into containers zt and yt), against the two passes */
            int32_t zt = (int32_t)ri(0, 2);
            unsigned char *z0 = al(n * 4), *z1 = al(n * 4), *z2 = al(n * 4), *z3 = al(n * 4);
            memset(z0, 0x55, n * 4); memset(z1, 0x55, n * 4); memset(z2, 0x66, n * 4); memset(z3, 0x66, n * 4);
            bs_requant__generic(y0, yt, z0, zt, outer, ch, inner, &rq);
            bs_requant__generic(y0, yt, z2, yt, outer, ch, inner, &rq);
            ej.y = NULL; ej.nreaders = 2; ej.rchannels = ch; ej.rinner = inner;
            ej.readers[0] = (bs_ew_reader){&rq, z1, zt}; ej.readers[1] = (bs_ew_reader){&rq, z3, yt};
            for (int32_t tk = bs_ew_tasks__generic(&ej) - 1; tk >= 0; tk--) EW_RUN(&ej, tk);
            if (memcmp(z0, z1, n * 4) || memcmp(z2, z3, n * 4)) { printf("MISMATCH qadd readers case %d yt=%d zt=%d\n", t, yt, zt); return 1; }
            memset(z1, 0x55, n * 4); memset(z3, 0x66, n * 4);
            for (int32_t tk = bs_ew_tasks__generic(&ej) - 1; tk >= 0; tk--) bs_ew_run__generic(&ej, tk);
            if (memcmp(z0, z1, n * 4) || memcmp(z2, z3, n * 4)) { printf("MISMATCH generic qadd readers case %d\n", t); return 1; }
            free(z0); free(z1); free(z2); free(z3);
        }
        (void)xs; (void)bs; (void)ys;
        free(xa); free(xb); free(y0); free(y1); free(rm); free(rn); free(rb);
    }
    printf("ok %d requant and qadd cases\n", cases);
    /* the vectorized max pool against the generic one: 1-D / 2-D / 3-D windows, strides, pads (windows entirely in
     * the padding too), dilations, every container */
    for (int t = 0; t < cases; t++) {
        bs_window g; memset(&g, 0, sizeof g);
        int dims = (int)ri(1, 3);
        g.d = dims == 3 ? (int32_t)ri(1, 4) : 1; g.h = dims >= 2 ? (int32_t)ri(1, 12) : 1; g.w = (int32_t)ri(1, 40);
        g.kd = dims == 3 ? (int32_t)ri(1, 2) : 1; g.kh = dims >= 2 ? (int32_t)ri(1, 3) : 1; g.kw = (int32_t)ri(1, 4);
        g.sd = (int32_t)ri(1, 2); g.sh = (int32_t)ri(1, 3); g.sw = (int32_t)ri(1, 3);
        g.dd = 1; g.dh = (int32_t)ri(1, 2); g.dw = (int32_t)ri(1, 2);
        g.pd = (int32_t)ri(0, g.kd - 1); g.ph = (int32_t)ri(0, g.kh); g.pw = (int32_t)ri(0, g.kw);
        if (ri(0, 3) == 0) {   /* the 2x2 stride-2 byte path (bs_maxpool2x2_bytes): whole windows, odd sizes too */
            g.d = g.kd = 1; g.pd = 0; g.kh = g.kw = g.sh = g.sw = 2; g.dh = g.dw = 1; g.ph = g.pw = 0;
            if (g.h < 2) g.h = 2;
            if (g.w < 2) g.w = 2;
        }
        g.od = (g.d + 2 * g.pd - ((g.kd - 1) * g.dd + 1)) / g.sd + 1; if (g.od < 1) g.od = 1;
        g.oh = (g.h + 2 * g.ph - ((g.kh - 1) * g.dh + 1)) / g.sh + 1; if (g.oh < 1) g.oh = 1;
        g.ow = (g.w + 2 * g.pw - ((g.kw - 1) * g.dw + 1)) / g.sw + 1 + (int32_t)ri(0, 1); if (g.ow < 1) g.ow = 1;
        int32_t xt = (int32_t)ri(0, 2);
        size_t es = xt == BS_T_I32 ? 4 : 1, planes = (size_t)(ri(0, 7) == 0 ? ri(20, 200) : ri(1, 5));
        size_t nin = planes * g.d * g.h * g.w, nout = planes * g.od * g.oh * g.ow;
        unsigned char *px = al(nin * es), *y0 = al(nout * es), *y1 = al(nout * es);
        for (size_t i = 0; i < nin * es; i++) px[i] = (unsigned char)rnd();
        memset(y0, 0x33, nout * es); memset(y1, 0x33, nout * es);
        bs_qmaxpool__generic(&g, planes, px, xt, y0);
        K(bs_qmaxpool)(&g, planes, px, xt, y1);
        if (memcmp(y0, y1, nout * es)) { printf("MISMATCH maxpool case %d xt=%d\n", t, xt); return 1; }
        {
            bs_ew_job ej; memset(&ej, 0, sizeof ej);
            ej.kind = BS_EW_MAXPOOL; ej.x = px; ej.xt = xt; ej.y = y1; ej.yt = xt; ej.count = planes; ej.win = &g;
            memset(y1, 0x33, nout * es);
            for (int32_t tk = bs_ew_tasks__generic(&ej) - 1; tk >= 0; tk--) EW_RUN(&ej, tk);
            if (memcmp(y0, y1, nout * es)) { printf("MISMATCH split maxpool case %d xt=%d\n", t, xt); return 1; }
            /* a per-channel Requant (channel = plane % ch) fused into the pool, against the two passes */
            size_t ch = (size_t)ri(1, 4), opl = nout / planes;
            int32_t zt = (int32_t)ri(0, 2), *rm = al(4 * ch), *rn = al(4 * ch);
            int64_t *rb = al(8 * ch);
            for (size_t i = 0; i < ch; i++) { rm[i] = (int32_t)ri(1, 1 << 30); rn[i] = (int32_t)ri(xt == BS_T_I32 ? 28 : 20, xt == BS_T_I32 ? 40 : 30); rb[i] = ri(-((int64_t)1 << 30), (int64_t)1 << 30); }
            bs_requant_params rq = {rm, rn, rb, (int32_t)ch, ri(-5, 5), zt == BS_T_U8 ? 0 : -128, zt == BS_T_U8 ? 255 : 127};
            if (planes % ch) ch = 1, rq.count = 1;
            unsigned char *z0 = al(nout * 4), *z1 = al(nout * 4);
            memset(z0, 0x77, nout * 4); memset(z1, 0x77, nout * 4);
            bs_requant__generic(y0, xt, z0, zt, planes / ch, ch, opl, &rq);
            ej.y = NULL; ej.nreaders = 1; ej.rchannels = ch; ej.rinner = opl; ej.readers[0] = (bs_ew_reader){&rq, z1, zt};
            for (int32_t tk = bs_ew_tasks__generic(&ej) - 1; tk >= 0; tk--) EW_RUN(&ej, tk);
            if (memcmp(z0, z1, nout * 4)) { printf("MISMATCH maxpool readers case %d xt=%d zt=%d\n", t, xt, zt); return 1; }
            free(z0); free(z1); free(rm); free(rn); free(rb);
        }
        free(px); free(y0); free(y1);
    }
    printf("ok %d maxpool cases\n", cases);
    /* the global average pool's straight loops against the windowed arithmetic: the same window with an end pad
     * row that no tap reaches (stride 2: still one output) */
    for (int t = 0; t < cases; t++) {
        bs_window g; memset(&g, 0, sizeof g);
        g.d = 1; g.h = (int32_t)ri(1, 12); g.w = (int32_t)ri(1, 40); g.kd = 1; g.kh = g.h; g.kw = g.w;
        g.od = g.oh = g.ow = 1; g.sd = g.sh = g.sw = 1; g.dd = g.dh = g.dw = 1;
        int32_t xt = (int32_t)ri(0, 2), cip = (int32_t)ri(0, 1);
        int64_t zero = ri(0, 3) == 0 ? (int64_t)rnd() : ri(-300, 300);
        size_t es = xt == BS_T_I32 ? 4 : 1, planes = (size_t)ri(1, 40), nin = planes * g.h * g.w;
        unsigned char *px = al(nin * es), *y0 = al(planes * es), *y1 = al(planes * es);
        for (size_t i = 0; i < nin * es; i++) px[i] = (unsigned char)rnd();
        memset(y0, 0x33, planes * es); memset(y1, 0x44, planes * es);
        bs_qavgpool__generic(&g, planes, cip, zero, px, xt, y0);
        bs_window gw = g; gw.peh = 1; gw.sh = 2;
        bs_qavgpool__generic(&gw, planes, cip, zero, px, xt, y1);
        if (memcmp(y0, y1, planes * es)) { printf("MISMATCH global average pool case %d xt=%d\n", t, xt); return 1; }
        free(px); free(y0); free(y1);
    }
    printf("ok %d global average pool cases\n", cases);
#ifndef BS_TEST_VNNI
    /* the vectorized input quantize against the generic one: NaN, infinities, ties, huge values, every container,
     * extreme parameters (the generic fallback), tails */
    for (int t = 0; t < cases; t++) {
        size_t n = (size_t)(ri(0, 3) == 0 ? ri(1, 7) : ri(8, 300));
        float *xf = al(n * 4);
        float sc = (float)ri(1, 1000) / (float)ri(1, 300);
        for (size_t i = 0; i < n; i++) {
            int kind = (int)ri(0, 9);
            xf[i] = kind == 0 ? (float)ri(-300, 300) * sc * 0.5f   /* exact ties */
                  : kind == 1 ? (ri(0, 1) ? 1.0f / 0.0f : -1.0f / 0.0f)
                  : kind == 2 ? 0.0f / 0.0f
                  : kind == 3 ? (float)ri(-1000000000, 1000000000) * 1e10f
                  : (float)((double)(int64_t)rnd() / 9.2e18 * 600.0);
        }
        int32_t yt = (int32_t)ri(0, 2);
        bs_quantize_params qp = {sc, ri(-20, 20), 0, 0};
        qp.lo = yt == BS_T_U8 ? ri(0, 10) : (yt == BS_T_I8 ? ri(-128, -100) : ri(-100000, 0));
        qp.hi = yt == BS_T_U8 ? ri(200, 255) : (yt == BS_T_I8 ? ri(100, 127) : ri(0, 100000));
        if (ri(0, 7) == 0) { qp.zero = (int64_t)rnd(); qp.lo = (int64_t)rnd(); qp.hi = (int64_t)rnd(); }   /* the fallback */
        size_t es = yt == BS_T_I32 ? 4 : 1;
        unsigned char *q0 = al(n * es), *q1 = al(n * es);
        memset(q0, 0x44, n * es); memset(q1, 0x44, n * es);
        bs_f32_quantize__generic(xf, q0, yt, n, &qp);
        bs_f32_quantize__avx2(xf, q1, yt, n, &qp);
        if (memcmp(q0, q1, n * es)) { printf("MISMATCH quantize case %d yt=%d\n", t, yt); return 1; }
        free(xf); free(q0); free(q1);
    }
    printf("ok %d quantize cases\n", cases);
#endif
    return 0;
#endif
}
"""#

    @Test func avx2KernelsMatchTheGenericKernelsOnRandomShapes() throws {
        guard Harness.hasAVX2("avx2KernelsMatchTheGenericKernelsOnRandomShapes") else { return }
        let dir = TempDir()
        let b = dir.file("bundle")
        try emitBundle(EmitInput(graph: try SwitchingTests.variant(conv1: .init(w: 8, a: 8), fc: .init(w: 8, a: 8))), to: b)
        try Self.check.write(toFile: b + "/kernel_check.c", atomically: true, encoding: .utf8)
        let cc = ProcessInfo.processInfo.environment["CC"] ?? "cc"
        let (rc, _, err) = try NativeBuildTests.run([cc, "-std=c11", "-O2", "-mavx2", "-mfma", "-Wall", "-Wextra", "-pedantic", "-Werror",
                                                     "-ffp-contract=off", "-o", "kc", "kernel_check.c", "bs_kernels.c", "bs_kernels_avx2.c"], cwd: b)
        #expect(rc == 0, "compile: \(err)")
        guard rc == 0 else { return }
        for seed in 1...3 {
            let (r, out, e) = try NativeBuildTests.run(["./kc", "\(seed)", "1500"], cwd: b)
            #expect(r == 0 && out.hasPrefix("ok 1500 cases") && out.contains("ok 1500 quantize cases")
                    && out.contains("ok 1500 global average pool cases"), "seed \(seed): \(out)\(e)")
        }
        // The depthwise kernel's row mode (large planes) on every depthwise shape: no plane fits a 0-byte buffer.
        let (rc2, _, err2) = try NativeBuildTests.run([cc, "-std=c11", "-O2", "-mavx2", "-mfma", "-Wall", "-Wextra", "-pedantic", "-Werror",
                                                       "-ffp-contract=off", "-DBS_DW_PLANE_MAX=0", "-o", "kr", "kernel_check.c", "bs_kernels.c",
                                                       "bs_kernels_avx2.c"], cwd: b)
        #expect(rc2 == 0, "compile: \(err2)")
        guard rc2 == 0 else { return }
        let (r2, out2, e2) = try NativeBuildTests.run(["./kr", "4", "1500"], cwd: b)
        #expect(r2 == 0 && out2.hasPrefix("ok 1500 cases"), "row mode: \(out2)\(e2)")
        // Under AddressSanitizer: a kernel that reads past its scratch, input or weights stops here, even where the
        // bytes it read were masked away and the results match.
        let (rc3, _, err3) = try NativeBuildTests.run([cc, "-std=c11", "-O1", "-g", "-mavx2", "-mfma", "-fsanitize=address,undefined",
                                                       "-fno-sanitize-recover=undefined", "-ffp-contract=off", "-o", "ka", "kernel_check.c",
                                                       "bs_kernels.c", "bs_kernels_avx2.c"], cwd: b)
        #expect(rc3 == 0, "compile: \(err3)")
        guard rc3 == 0 else { return }
        let (r3, out3, e3) = try NativeBuildTests.run(["./ka", "5", "1500"], cwd: b)
        #expect(r3 == 0 && out3.hasPrefix("ok 1500 cases"), "under ASan: \(out3)\(e3)")
    }

    /// The same check through the VNNI kernels (vpdpbusd for every w_bits, 8 included; vectorized int64 epilogue;
    /// the vectorized weight pack in both gemm weight layouts), then the vectorized Requant and QAdd against the
    /// generic ones (every container pair, tails, extreme parameters that take the scalar path).
    @Test func vnniKernelsMatchTheGenericKernelsOnRandomShapes() throws {
        guard Harness.hasVNNI("vnniKernelsMatchTheGenericKernelsOnRandomShapes") else { return }
        let dir = TempDir()
        let b = dir.file("bundle")
        try emitBundle(EmitInput(graph: try SwitchingTests.variant(conv1: .init(w: 8, a: 8), fc: .init(w: 8, a: 8)), isa: .avx512vnni), to: b)
        try Self.check.write(toFile: b + "/kernel_check.c", atomically: true, encoding: .utf8)
        let cc = ProcessInfo.processInfo.environment["CC"] ?? "cc"
        // The bit-serial w2a2 kernels need VPOPCNTQ and VBMI (Zen 4, Ice Lake and later); without them the file has none.
        let flags = KernelISA.cpuFlags()
        let bitSerial = flags.contains("avx512_vpopcntdq") && flags.contains("avx512vbmi")
        // The depthwise vpermb kernel needs VBMI too; -DBS_NO_VDW builds the int16 row kernels it replaces, checked as well.
        let vbmi = flags.contains("avx512vbmi")
        // With GFNI the bit planes' masks are made in registers (bs_vmasks16); the -DBS_NO_VDW build leaves GFNI out, so
        // that it checks the stored-masks way as well.
        let gfni = flags.contains("gfni")
        func compile(_ out: String, _ extra: [String]) throws -> Bool {
            let (rc, _, err) = try NativeBuildTests.run([cc, "-std=c11", "-O2", "-mavx2", "-mfma", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq",
                                                         "-mavx512vnni", "-mbmi2", "-Wall", "-Wextra", "-pedantic", "-Werror", "-ffp-contract=off"]
                                                        + (bitSerial ? ["-mavx512vpopcntdq", "-mavx512vbmi"] : []) + extra
                                                        + ["-DBS_TEST_VNNI", "-o", out, "kernel_check.c", "bs_kernels.c", "bs_kernels_avx2.c",
                                                           "bs_kernels_avx512vnni.c"], cwd: b)
            #expect(rc == 0, "compile \(extra): \(err)")
            return rc == 0
        }
        // BS_VTHR_MIN_OUT=1: the small test shapes take the epilogue's thresholds form too (its default gate: 128 outputs)
        guard try compile("kc", (gfni ? ["-mgfni"] : []) + ["-DBS_VTHR_MIN_OUT=1"]) else { return }
        for seed in 1...3 {
            let (r, out, e) = try NativeBuildTests.run(["./kc", "\(seed)", "1500"], cwd: b)
            #expect(r == 0 && out.hasPrefix("ok 1500 cases") && out.contains("ok 1500 requant and qadd cases") && out.contains("ok 1500 maxpool cases"), "seed \(seed): \(out)\(e)")
            #expect(!bitSerial || out.contains(" bit-serial w2a2 convs: "), "seed \(seed): the bit-serial kernels did not run: \(out)")
            #expect(!vbmi || out.contains(" depthwise convs on the vpermb kernel: "), "seed \(seed): the vpermb depthwise kernel did not run: \(out)")
        }
        guard vbmi, try compile("kc-rows", ["-DBS_NO_VDW"]) else { return }
        let (r, out, e) = try NativeBuildTests.run(["./kc-rows", "4", "1500"], cwd: b)
        #expect(r == 0 && out.hasPrefix("ok 1500 cases") && !out.contains("vpermb kernel:"), "int16 depthwise row kernels: \(out)\(e)")
    }

    /// The same check through the aarch64 NEON kernels, cross-compiled and run under qemu-aarch64: once with the dot
    /// product extension (bs_qs8s8_gemm_rq64_8x8c4__neondot, sdot) and once for plain ARMv8.0
    /// (bs_qs8s8_gemm_rq64_8x4c4__neon, smull + sadalp), with the direct depthwise kernel on the depthwise shapes.
    /// NEON bundles use the generic Requant / QAdd / pools, so only the conv / gemm part runs. Skips (like the aarch64 cross test) without the cross tools and apt-get.
    @Test(arguments: [("dotprod", "armv8.2-a+dotprod", "bs_qs8s8_gemm_rq64_8x8c4__neondot"),
                      ("armv8", "armv8-a", "bs_qs8s8_gemm_rq64_8x4c4__neon")])
    func neonKernelsMatchTheGenericKernelsOnRandomShapesUnderQemu(variant: (name: String, march: String, kernel: String)) throws {
        guard NativeBuildTests.hasAarch64CrossTools("neonKernelsMatchTheGenericKernelsOnRandomShapesUnderQemu") else { return }
        let dir = TempDir()
        let b = dir.file("bundle")
        try emitBundle(EmitInput(graph: try SwitchingTests.variant(conv1: .init(w: 8, a: 8), fc: .init(w: 8, a: 8)), isa: .neon), to: b)
        try Self.check.write(toFile: b + "/kernel_check.c", atomically: true, encoding: .utf8)
        let (rc, _, err) = try NativeBuildTests.run(["aarch64-linux-gnu-gcc", "-std=c11", "-O2", "-march=\(variant.march)", "-Wall", "-Wextra",
                                                     "-pedantic", "-Werror", "-ffp-contract=off", "-static", "-DBS_TEST_NEON", "-o", "kc",
                                                     "kernel_check.c", "bs_kernels.c", "bs_kernels_avx2.c", "bs_kernels_neon.c"], cwd: b)
        #expect(rc == 0, "compile: \(err)")
        guard rc == 0 else { return }
        for seed in 1...3 {
            let (r, out, e) = try NativeBuildTests.run(["qemu-aarch64", "./kc", "\(seed)", "1500"], cwd: b)
            #expect(r == 0 && out.hasPrefix("ok 1500 cases") && out.contains("kernel \(variant.kernel)"), "\(variant.name) seed \(seed): \(out)\(e)")
        }
    }

    /// A bundle emitted for AVX-512 VNNI but compiled without it stops with the #error that says so.
    @Test func vnniBundleWithoutVNNIFlagsStopsWithAClearError() throws {
        let dir = TempDir()
        let b = dir.file("bundle")
        try emitBundle(EmitInput(graph: try SwitchingTests.variant(conv1: .init(w: 8, a: 8), fc: .init(w: 8, a: 8)), isa: .avx512vnni), to: b)
        let cc = ProcessInfo.processInfo.environment["CC"] ?? "cc"
        let (rc, _, err) = try NativeBuildTests.run([cc, "-std=c11", "-O1", "-mavx2", "-c", "-o", "m.o", "bitswitch_model.c"], cwd: b)
        #expect(rc != 0)
        #expect(err.contains("--isa avx512vnni"), "\(err)")
    }
}
