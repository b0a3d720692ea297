/* Micro-benchmark of the AVX-512 VNNI int8 kernels (bs_kernels_avx512vnni.c) against the core's vpdpbusd peak,
 * and of the weight pack a profile switch runs (vectorized, both layouts, against the scalar pack it replaced).
 *
 * Peak: a register-only loop of 16 independent zmm vpdpbusd (16 x 64 = 1024 MACs per iteration; inline asm), best of
 * many short trials interleaved with the kernels' runs.
 * Kernel: the ResNet-18 3x3 convs (stride 1, pad 1) and 1x1 convs as the bundle runs them, u8 activations, 8-bit
 * weights (the VNNI kernel is the same for every w_bits), Requant to u8 fused: GMAC/s of the whole op (gather +
 * interleave + GEMM + epilogue) and of the GEMM stage alone (the micro-kernel + epilogue), % of peak, and the GEMM
 * stage's rate on the MACs it computes (the direct path's junk columns included). Best of 41
 * single runs (the machine may be shared: the best run is the one that kept its core).
 * Pack: every conv / gemm weight of ResNet-18 (11.7 M int8) repacked as a whole-model switch does.
 * --dw: MobileNetV2's depthwise convs through the direct depthwise kernel (AVX2 and VNNI row kernels).
 *
 *   cc -std=c11 -O3 -march=native -I Sources/BitSwitchCodegen/Runtime/generic -o kernel_bench bench/latency/kernel_bench.c \
 *      Sources/BitSwitchCodegen/Runtime/generic/bs_kernels*.c && ./kernel_bench          (bench/latency/kernel_bench.sh) */
#define _POSIX_C_SOURCE 200809L
#include "bs_kernels.h"
#include "bs_kernels_avx2.h"
#include "bs_kernels_avx512vnni.h"
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
#define BS_HAVE_VNNI 1
#else   /* an AVX2-only CPU: --dw and --pack measure the AVX2 kernels; the GEMM tables are gemm_peak.c's */
#define BS_HAVE_VNNI 0
#endif

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static void *al(size_t n) { void *p = NULL; if (posix_memalign(&p, 64, (n + 63) / 64 * 64)) exit(3); memset(p, 0, n); return p; }

#if BS_HAVE_VNNI
/* Runs the staged job's stages but the last, then times the last (the GEMM stage) alone. */
static double last_stage_time(bs_avx2_job *j) {
    int32_t ns = bs_avx512vnni_stages(j);
    for (int32_t st = 0; st < ns - 1; st++) for (int32_t tk = 0; tk < bs_avx512vnni_tasks(j, st); tk++) bs_avx512vnni_run(j, st, tk);
    int32_t nt = bs_avx512vnni_tasks(j, ns - 1);
    double t0 = now();
    for (int32_t tk = 0; tk < nt; tk++) bs_avx512vnni_run(j, ns - 1, tk);
    return now() - t0;
}

static double peak_vpdpbusd(long iters) {
    /* In assembly: with intrinsics gcc 12 copied the 16 accumulators every iteration (vpdpbusd overwrites its
     * accumulator) and stored three of them to the stack, and that "peak" ran below the conv kernels' loops. Here:
     * 16 vpdpbusd on zmm0-15, nothing else but the loop counter. */
    long n = iters;
    double t0 = now();
#define BS_PK(R) "vpdpbusd %%zmm16, %%zmm17, %%zmm" #R "\n\t"
    __asm__ volatile("vpternlogd $0xff, %%zmm16, %%zmm16, %%zmm16\n\tvpternlogd $0xff, %%zmm17, %%zmm17, %%zmm17\n\t"
                     "1:\n\t" BS_PK(0) BS_PK(1) BS_PK(2) BS_PK(3) BS_PK(4) BS_PK(5) BS_PK(6) BS_PK(7) BS_PK(8) BS_PK(9)
                     BS_PK(10) BS_PK(11) BS_PK(12) BS_PK(13) BS_PK(14) BS_PK(15) "dec %0\n\tjnz 1b\n\t"
                     : "+r"(n)
                     :
                     : "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
                       "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17");
#undef BS_PK
    double t = now() - t0;
    return (double)iters * 1024 / t;
}

#if defined(__AVX512VPOPCNTDQ__) && defined(__AVX512BITALG__)
/* The bare inner loops a bit-serial w2a2 kernel runs (the ceiling of bs_qu2s2_conv_b1p_popcnt_16x4c64__avx512vnni:
 * ceiling on this CPU, docs/c-backend.md). popcntq: per bit-plane pair AND + VPOPCNTQ + VPADDQ over 512 bit products,
 * 4 pairs per 512 2-bit MACs; 12 independent accumulators. popcntb: AND + VPOPCNTB + VPDPBUSD by per-byte plane
 * scales, 128 2-bit MACs per triple (a dword holds [a0 a1 a0 a1] & [w0 w0 w1 w1] bytes of 8 k). Returns MACs / s. */
static double peak_bitserial(long iters, int popcntb) {
    __m512i a[4], w[3], c[12];
    for (int i = 0; i < 4; i++) a[i] = _mm512_set1_epi64(0x0123456789ABCDEFll * (i + 1));
    for (int i = 0; i < 3; i++) w[i] = _mm512_set1_epi64(0x7766554433221100ll + i);
    for (int i = 0; i < 12; i++) c[i] = _mm512_set1_epi32(i);
    const __m512i sc = _mm512_set1_epi32(0x04020201);
    double t0 = now();
    for (long it = 0; it < iters; it++) {
        if (popcntb)
            for (int j = 0; j < 12; j++)
                c[j] = _mm512_dpbusd_epi32(c[j], _mm512_popcnt_epi8(_mm512_and_si512(a[j & 3], w[j >> 2])), sc);
        else
            for (int j = 0; j < 12; j++) {
                __m512i t = _mm512_popcnt_epi64(_mm512_and_si512(a[j & 3], w[j >> 2]));
                c[j] = _mm512_add_epi64(c[j], t);   /* the second plane pair: a & ~w (distinct products, no reuse) */
                c[j] = _mm512_add_epi64(c[j], _mm512_popcnt_epi64(_mm512_andnot_si512(w[j >> 2], a[j & 3])));
            }
        __asm__ volatile("" : "+v"(a[0]), "+v"(a[1]), "+v"(a[2]), "+v"(a[3]), "+v"(w[0]), "+v"(w[1]), "+v"(w[2]));
    }
    double t = now() - t0;
    int64_t s = 0;
    for (int i = 0; i < 12; i++) s += _mm_cvtsi128_si64(_mm512_castsi512_si128(c[i]));
    if (s == 42) printf(" ");
    /* popcntb: 12 triples x 128 MACs; popcntq: 24 popcounts x 512 bit products / 4 per 2-bit MAC */
    return (double)iters * (popcntb ? 12 * 128 : 24 * 128) / t;
}
#endif

#endif

/* The scalar pack of the previous commit (one byte at a time), for the switch cost before / after. */
static void scalar_pack(const int8_t *q8, void *packed, int32_t groups, int32_t mg, int32_t k, int32_t shift, int32_t bits) {
    int32_t mode = bits <= 7 ? 1 : 2, per = mode == 1 ? 4 : 2;
    int32_t mg4 = (mg + 3) / 4 * 4, kg = (k + per - 1) / per;
    int32_t lo = -(1 << (bits - 1)), hi = (1 << (bits - 1)) - 1;
    int32_t *hd = (int32_t *)packed;
    hd[0] = mode; hd[1] = groups; hd[2] = mg; hd[3] = k; hd[4] = kg; hd[5] = mg4; hd[6] = bits; hd[7] = shift;
    int32_t *wsum = (int32_t *)((unsigned char *)packed + 64);
    unsigned char *wp = (unsigned char *)packed + 64 + (((size_t)groups * mg4 * 4 + 63) & ~(size_t)63);
    for (int32_t g = 0; g < groups; g++)
        for (int32_t cb = 0; cb < mg4 / 4; cb++) {
            unsigned char *base = wp + ((size_t)g * (mg4 / 4) + cb) * (size_t)kg * 16;
            for (int32_t c4 = 0; c4 < 4; c4++) {
                int32_t c = cb * 4 + c4;
                size_t oc = (size_t)g * mg + c;
                uint32_t sum = 0;
                for (int32_t kk = 0; kk < kg * per; kk++) {
                    int32_t v = 0;
                    if (c < mg && kk < k) {
                        v = shift > 0 ? ((int32_t)q8[oc * k + kk] + (1 << (shift - 1))) >> shift : q8[oc * k + kk];
                        v = v < lo ? lo : (v > hi ? hi : v);
                    }
                    sum += (uint32_t)v;
                    if (mode == 1) ((int8_t *)base)[(size_t)(kk / 4) * 16 + c4 * 4 + kk % 4] = (int8_t)v;
                    else ((int16_t *)base)[(size_t)(kk / 2) * 8 + c4 * 2 + kk % 2] = (int16_t)v;
                }
                wsum[(size_t)g * mg4 + c] = (int32_t)sum;
            }
        }
}

/* MobileNetV2's depthwise convs (3x3, pad 1) through the direct depthwise kernel, u8 activations with a zero point,
 * 8-bit weights, Requant to u8 fused, one thread: GMAC/s of the whole op, AVX2 and VNNI row kernels, best of 41. */
static void bench_depthwise(void) {
    int shapes[][3] = {{32, 112, 1}, {96, 112, 2}, {144, 56, 1}, {144, 56, 2}, {192, 28, 1}, {192, 28, 2},
                       {384, 14, 1}, {576, 14, 1}, {576, 14, 2}, {960, 7, 1}};
#if defined(__AVX512VBMI__) && !defined(BS_NO_VDW)
    const char *vk = "VNNI vpermb";   /* bs_vdw_run; kernel_bench.sh --dw also builds with -DBS_NO_VDW: the int16 rows */
#else
    const char *vk = "VNNI int16 rows";
#endif
    printf("| depthwise 3x3 | C | H x W in | stride | AVX2 us | AVX2 GMAC/s | %s us | %s GMAC/s |\n|---|--:|--:|--:|--:|--:|--:|--:|\n", vk, vk);
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        int C = shapes[si][0], H = shapes[si][1], S = shapes[si][2];
        bs_conv_shape s; memset(&s, 0, sizeof s);
        bs_window *g = &s.win;
        g->d = g->od = g->kd = g->sd = g->dd = 1; g->h = g->w = H; g->kh = g->kw = 3; g->sh = g->sw = S;
        g->ph = g->pw = g->peh = g->pew = 1; g->dh = g->dw = 1;
        g->oh = g->ow = (H + 2 - 3) / S + 1;
        s.c = s.m = s.group = C;
        uint8_t *x = al((size_t)C * H * H), *y = al((size_t)C * g->oh * g->ow);
        for (size_t i = 0; i < (size_t)C * H * H; i++) x[i] = (uint8_t)(i * 7 + 3);
        int8_t *q8 = al((size_t)C * 9);
        for (int i = 0; i < C * 9; i++) q8[i] = (int8_t)(i * 13);
        int32_t m[1] = {1 << 30}, n[1] = {40}; int64_t b[1] = {0};
        bs_requant_params rq = {m, n, b, 1, 0, 0, 255};
        bs_qmm_params p = {3, 0, 8};
        double macs = (double)C * g->oh * g->ow * 9, best[2] = {1e9, 1e9};
        for (int isa = 0; isa < 1 + BS_HAVE_VNNI; isa++) {
#if BS_HAVE_VNNI
            size_t ps = isa ? bs_qs8_packed_weights_size__avx512vnni(C, 1, 9) : bs_qs8_packed_weights_size__avx2(C, 1, 9);
            void *pw = al(ps);
            if (isa) bs_qs8_pack_weights__avx512vnni(q8, pw, C, 1, 9, 0, 0, 8, 9, 0); else bs_qs8_pack_weights__avx2(q8, pw, C, 1, 9, 0, 0, 8);
            void *sc = al(isa ? bs_conv_scratch_size__avx512vnni(&s) : bs_conv_scratch_size__avx2(&s));
#else
            void *pw = al(bs_qs8_packed_weights_size__avx2(C, 1, 9));
            bs_qs8_pack_weights__avx2(q8, pw, C, 1, 9, 0, 0, 8);
            void *sc = al(bs_conv_scratch_size__avx2(&s));
#endif
            for (int r = 0; r < 41; r++) {
                double t0 = now();
#if BS_HAVE_VNNI
                if (isa) bs_qu8_conv_requant__avx512vnni(&s, x, pw, &p, &rq, y, BS_T_U8, sc);
                else
#endif
                bs_qu8_conv_requant__avx2(&s, x, pw, &p, &rq, y, BS_T_U8, sc);
                double t = now() - t0;
                if (t < best[isa]) best[isa] = t;
            }
            free(pw); free(sc);
        }
        if (BS_HAVE_VNNI)
            printf("| | %d | %dx%d | %d | %.1f | %.1f | %.1f | %.1f |\n", C, H, H, S, best[0] * 1e6, macs / best[0] / 1e9,
                   best[1] * 1e6, macs / best[1] / 1e9);
        else
            printf("| | %d | %dx%d | %d | %.1f | %.1f | no VNNI | |\n", C, H, H, S, best[0] * 1e6, macs / best[0] / 1e9);
        free(x); free(y); free(q8);
    }
}

#if BS_HAVE_VNNI
/* The bit-plane bytes a ResNet-18 layer's region holds (the bundles reserve them where 1- or 2-bit weights may go). */
static size_t bs_vbsr_room(int M, int K, int gemm) {
    return gemm ? 0 : bs_qs8_packed_bsr_size__avx512vnni(1, M, K, K == 147 ? 49 : (K % 9 == 0 ? 9 : 1));
}
#endif

#if BS_HAVE_VNNI
/* Batch-1 fully connected layers (ResNet-18's 1000 x 512, MobileNetV2's 1000 x 1280; memory-bound) in VNNI bundles:
 * the S8C4 GEMM (one row padded to a 16-pixel block) against the batch-1 layout and kernels
 * (bs_qs8_pack_weights_rows__avx512vnni: 1, 2 or 4 weights per byte at 8, 4, 2 bits), best of 201 calls each, alternating. */
static void bench_gemv_vnni(void) {
    int shapes[][2] = {{1000, 512}, {1000, 1280}};
    printf("batch-1 gemm (one row), VNNI bundles: S8C4 GEMM against the batch-1 layout, microseconds:\n"
           "| M | K | bits | S8C4 GEMM us | batch-1 us | batch-1 weight bytes | speed-up | batch-1 x its 8-bit |\n|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    for (int si = 0; si < 2; si++) {
        int M = shapes[si][0], K = shapes[si][1];
        int8_t *q8 = al((size_t)M * K);
        for (size_t i = 0; i < (size_t)M * K; i++) q8[i] = (int8_t)(i * 13 + (i >> 7));
        uint8_t *x = al((size_t)K);
        for (int i = 0; i < K; i++) x[i] = (uint8_t)(i * 7);
        size_t psz = bs_qs8_packed_weights_size__avx512vnni(1, M, K);
        void *pa = al(psz), *pb = al(psz), *scratch = al(bs_gemm_scratch_size__avx512vnni(1, (size_t)K, (size_t)M));
        int32_t *m = al(sizeof(int32_t) * M), *n = al(sizeof(int32_t) * M);
        int64_t *b = al(sizeof(int64_t) * M);
        for (int i = 0; i < M; i++) { m[i] = 1 << 29; n[i] = 40; b[i] = 0; }
        bs_requant_params rq = {m, n, b, M, 0, -128, 127};
        int8_t *y = al((size_t)M);
        double t8 = 0;
        for (int bits = 8; bits >= 2; bits /= 2) {
            bs_qmm_params p = {0, 8 - bits, bits};
            bs_qs8_pack_weights__avx512vnni(q8, pa, 1, M, K, 0, 8 - bits, bits, 0, 0);
            bs_qs8_pack_weights_rows__avx512vnni(q8, pb, 1, M, K, 0, 8 - bits, bits, 1);
            int gemv = ((const int32_t *)pb)[0] >= 3;
            double best[2] = {1e30, 1e30};
            for (int r = 0; r < 201; r++)
                for (int v = 0; v < 2; v++) {
                    double t0 = now();
                    bs_qu8_gemm_requant__avx512vnni(1, (size_t)K, (size_t)M, 1, x, v ? pb : pa, &p, &rq, y, BS_T_I8, scratch);
                    double t = now() - t0;
                    if (t < best[v]) best[v] = t;
                }
            if (bits == 8) t8 = best[1];
            size_t wbytes = (size_t)(M + 3) / 4 * 4 * (size_t)K * (size_t)bits / 8;
            printf("| %d | %d | %d | %.1f | %.1f%s | %.0f KiB | %.2fx | %.2fx |\n", M, K, bits, best[0] * 1e6, best[1] * 1e6,
                   gemv ? "" : " (S8C4: no room)", wbytes / 1024.0, best[0] / best[1], t8 / best[1]);
        }
        free(q8); free(x); free(pa); free(pb); free(scratch); free(m); free(n); free(b); free(y);
    }
    printf("\n");
}
#endif

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--dw")) { bench_depthwise(); return 0; }
    int only_pack = argc > 1 && !strcmp(argv[1], "--pack");
#if BS_HAVE_VNNI
    double peak = 0;
    if (!only_pack) {
        /* short trials, the best of many: on a shared machine most trials lose time slices, which a peak must not count */
        for (int r = 0; r < 400; r++) { double p = peak_vpdpbusd(20000); if (p > peak) peak = p; }
        printf("peak (bare zmm vpdpbusd loop, 16 accumulators, best of 400 trials of 20 M MACs): %.1f GMAC/s\n", peak / 1e9);
#if defined(__AVX512VPOPCNTDQ__) && defined(__AVX512BITALG__)
        double bq = 0, bb = 0;
        for (int r = 0; r < 400; r++) {
            double p = peak_bitserial(6000, 0), q = peak_bitserial(10000, 1);
            if (p > bq) bq = p;
            if (q > bb) bb = q;
        }
        printf("bit-serial w2a2 bare loops (the kernel's ceiling), best of 400: AND + VPOPCNTQ + VPADDQ %.1f G 2-bit MACs/s (%.2fx the "
               "vpdpbusd peak), AND + VPOPCNTB + VPDPBUSD %.1f (%.2fx)\n", bq / 1e9, bq / peak, bb / 1e9, bb / peak);
#endif
        printf("\n");
        /* C_in = C_out, H = W, kernel (3 or 1) */
        int shapes[][3] = {{64, 56, 3}, {128, 28, 3}, {256, 14, 3}, {512, 7, 3}, {64, 56, 1}, {256, 14, 1}, {512, 7, 1}};
        enum { NSHAPES = sizeof shapes / sizeof shapes[0] };
        double rate[NSHAPES][4];   /* MACs / s: whole op, GEMM stage, GEMM stage counting its computed MACs; the pixel-lane
                                    * kernel's GEMM stage (S8C4 weights; 0: the same kernel as the columns before) */
        double rate2[NSHAPES][2];  /* the bit-serial w2a2 path: whole op, GEMM stage (0: not taken) */
        printf("| conv | M | N | K | whole op GMAC/s | %% of peak | GEMM stage GMAC/s | %% of peak | GEMM stage, computed MACs: %% of peak | pixel-lane kernel's GEMM stage: %% of peak |\n"
               "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
        for (int si = 0; si < NSHAPES; si++) {
            int C = shapes[si][0], H = shapes[si][1], KS = shapes[si][2], pad = KS / 2;
            bs_conv_shape s;
            memset(&s, 0, sizeof s);
            s.win = (bs_window){1, H, H, 1, H, H, 1, KS, KS, 1, 1, 1, 0, pad, pad, 0, pad, pad, 1, 1, 1};
            s.c = C; s.m = C; s.group = 1;
            int M = C, N = H * H, K = C * KS * KS;
            uint8_t *x = al((size_t)C * N);
            int8_t *q8 = al((size_t)M * K);
            for (size_t i = 0; i < (size_t)C * N; i++) x[i] = (uint8_t)(i * 7);
            for (size_t i = 0; i < (size_t)M * K; i++) q8[i] = (int8_t)(i * 13);
            void *pw = al(bs_qs8_packed_weights_size__avx512vnni(1, M, K));
            void *scratch = al(bs_conv_scratch_size__avx512vnni(&s));
            int32_t *m = al(sizeof(int32_t) * M), *n = al(sizeof(int32_t) * M);
            int64_t *b = al(sizeof(int64_t) * M);
            for (int i = 0; i < M; i++) { m[i] = 1 << 29; n[i] = 40; b[i] = 0; }
            bs_requant_params rq = {m, n, b, M, 0, 0, 255};
            uint8_t *y = al((size_t)M * N);
            if (KS > 1) {   /* stored tap-major, as the generated code stores them (the direct path) */
                int8_t *t = al((size_t)M * K);
                bs_qs8_tap_major__avx512vnni(q8, t, (size_t)M * K, KS * KS);
                memcpy(q8, t, (size_t)M * K);
                free(t);
            }
            /* the layout the generated code packs a conv of several taps in: C16, the channels-in-lanes kernel */
            bs_qs8_pack_weights__avx512vnni(q8, pw, 1, M, K, 0, 0, 8, KS * KS, KS > 1 ? BS_VPACK_C16 : 0);
            bs_qmm_params p = {0, 0, 8};
            bs_avx2_job j;
            memset(&j, 0, sizeof j);
            j.x = x; j.xt = BS_T_U8; j.yt = BS_T_U8; j.packed = pw; j.p = &p; j.rq = &rq; j.y = y; j.scratch = scratch; j.conv = &s;
            double macs = (double)M * N * K, best_all = 1e30, best_gemm = 1e30;
            int reps = 1;
            for (int r = 0; r < 41; r++) {
                /* peak trials between the kernel's: the machine's speed drifts, and a peak measured only before the
                 * kernels (at a slow moment) would overstate every percentage */
                for (int q = 0; q < 10; q++) { double pk = peak_vpdpbusd(20000); if (pk > peak) peak = pk; }
                double t0 = now();
                for (int i = 0; i < reps; i++) bs_qu8_conv_requant__avx512vnni(&s, x, pw, &p, &rq, y, BS_T_U8, scratch);
                double t = (now() - t0) / reps;
                if (t < best_all) best_all = t;
                /* the GEMM stage alone (the last one; the gather has filled the scratch above) */
                int32_t last = bs_avx512vnni_stages(&j) - 1, nt = bs_avx512vnni_tasks(&j, last);
                t0 = now();
                for (int i = 0; i < reps; i++) for (int32_t tk = 0; tk < nt; tk++) bs_avx512vnni_run(&j, last, tk);
                t = (now() - t0) / reps;
                if (t < best_gemm) best_gemm = t;
            }
            /* the direct path computes H x (H + KS - 1) virtual pixels (the junk columns of each row are computed and
             * not stored): the MACs the micro-kernel executes, against the useful ones of the columns before */
            double computed = bs_avx512vnni_direct(&j) && !bs_avx512vnni_channel_lanes(&j) ? (double)M * K * H * (H + KS - 1) : macs;
            rate[si][0] = macs / best_all; rate[si][1] = macs / best_gemm; rate[si][2] = computed / best_gemm; rate[si][3] = 0;
            if (bs_avx512vnni_channel_lanes(&j)) {   /* the pixel-lane kernel on the same conv (S8C4 weights), for comparison */
                void *ps = al(bs_qs8_packed_weights_size__avx512vnni(1, M, K));
                bs_qs8_pack_weights__avx512vnni(q8, ps, 1, M, K, 0, 0, 8, KS * KS, 0);
                bs_avx2_job js = j;
                js.packed = ps; js.vgeo_set = 0;
                double best_s = 1e30;
                for (int r = 0; r < 41; r++) {
                    double t = last_stage_time(&js);
                    if (t < best_s) best_s = t;
                }
                rate[si][3] = macs / best_s;
                free(ps);
            }
            /* w2a2: 2-bit weights (their bit planes packed) and activations 0..3, the same conv, alternating with int8 */
            void *pw2 = al(bs_qs8_packed_weights_size__avx512vnni(1, M, K) + bs_qs8_packed_bsr_size__avx512vnni(1, M, K, KS * KS));
            bs_qs8_pack_weights__avx512vnni(q8, pw2, 1, M, K, 0, 6, 2, KS * KS, 1);
            uint8_t *x2 = al((size_t)C * N);
            for (size_t i = 0; i < (size_t)C * N; i++) x2[i] = (uint8_t)((i * 7 + i / 5) & 3);
            bs_qmm_params p2 = {0, 6, 2};
            bs_avx2_job j2 = j;
            j2.x = x2; j2.packed = pw2; j2.p = &p2; j2.vgeo_set = 0;
            double best2_all = 1e30, best2_gemm = 1e30;
            for (int r = 0; r < 41; r++) {
                double t0 = now();
                bs_qu8_conv_requant__avx512vnni(&s, x2, pw2, &p2, &rq, y, BS_T_U8, scratch);
                double t = now() - t0;
                if (t < best2_all) best2_all = t;
                t = last_stage_time(&j2);
                if (t < best2_gemm) best2_gemm = t;
            }
            int serial = bs_avx512vnni_bitserial(&j2);
            rate2[si][0] = serial ? macs / best2_all : 0; rate2[si][1] = serial ? macs / best2_gemm : 0;
            free(x); free(q8); free(pw); free(scratch); free(m); free(n); free(b); free(y); free(pw2); free(x2);
        }
        for (int si = 0; si < NSHAPES; si++)
        {
            char ps[32] = "(the same)";
            if (rate[si][3] > 0) snprintf(ps, sizeof ps, "%.0f %%", 100 * rate[si][3] / peak);
            printf("| %dx%d | %d | %d | %d | %.1f | %.0f %% | %.1f | %.0f %% | %.0f %% | %s |\n", shapes[si][2], shapes[si][2],
                   shapes[si][0], shapes[si][1] * shapes[si][1], shapes[si][0] * shapes[si][2] * shapes[si][2],
                   rate[si][0] / 1e9, 100 * rate[si][0] / peak, rate[si][1] / 1e9, 100 * rate[si][1] / peak,
                   100 * rate[si][2] / peak, ps);
        }
        printf("(%% of the peak seen over the whole run, its trials interleaved with the kernels': %.1f GMAC/s)\n", peak / 1e9);
        printf("\nw2a2 through the bit-serial kernels (bs_qu2s2_conv_b1p_popcnt_16x4c64__avx512vnni: AND + VPOPCNTQ on bit planes), "
               "2-bit MACs per second, and the speed-up over the int8 rows above:\n"
               "| conv | M | N | K | whole op G/s | x int8 whole op | GEMM stage G/s | x int8 GEMM stage |\n|---|--:|--:|--:|--:|--:|--:|--:|\n");
        for (int si = 0; si < NSHAPES; si++) {
            if (rate2[si][0] == 0) { printf("| %dx%d | %d | | | int8 kernels (under 4 k-words, or no VPOPCNTQ / VBMI) | | | |\n", shapes[si][2], shapes[si][2], shapes[si][0]); continue; }
            printf("| %dx%d | %d | %d | %d | %.1f | %.2f | %.1f | %.2f |\n", shapes[si][2], shapes[si][2], shapes[si][0],
                   shapes[si][1] * shapes[si][1], shapes[si][0] * shapes[si][2] * shapes[si][2], rate2[si][0] / 1e9,
                   rate2[si][0] / rate[si][0], rate2[si][1] / 1e9, rate2[si][1] / rate[si][1]);
        }
        printf("\n");
        bench_gemv_vnni();
    }
#else
    if (!only_pack) printf("no AVX-512 VNNI on this CPU: the AVX2 GEMM kernels' tables are bench/latency/gemm_peak.c's; the weight pack follows\n\n");
#endif
    /* ResNet-18's conv / gemm weights: (groups, M, K) */
    int layers[][2] = {{64, 147}, {64, 576}, {64, 576}, {64, 576}, {64, 576}, {128, 576}, {128, 1152}, {128, 64},
                       {128, 1152}, {128, 1152}, {256, 1152}, {256, 2304}, {256, 128}, {256, 2304}, {256, 2304},
                       {512, 2304}, {512, 4608}, {512, 256}, {512, 4608}, {512, 4608}, {1000, 512}};
    size_t nl = sizeof layers / sizeof layers[0], total = 0, bytes_v = 0, bytes_a = 0;
    for (size_t i = 0; i < nl; i++) {
        total += (size_t)layers[i][0] * layers[i][1];
#if BS_HAVE_VNNI
        bytes_v += bs_qs8_packed_weights_size__avx512vnni(1, layers[i][0], layers[i][1]) + bs_vbsr_room(layers[i][0], layers[i][1], i == nl - 1);
#endif
        bytes_a += bs_qs8_packed_weights_size__avx2(1, layers[i][0], layers[i][1]);
    }
    int8_t *q8 = al(total);
    for (size_t i = 0; i < total; i++) q8[i] = (int8_t)(i * 29 + (i >> 9));
    unsigned char *pv = al(bytes_v), *pa = al(bytes_a);
    printf("weight pack of a whole-model switch, ResNet-18 (%zu conv/gemm weights, %.1f M int8), best of 21:\n", nl, total / 1e6);
    printf("| pack | 8-bit | 4-bit | 2-bit |\n|---|--:|--:|--:|\n");
    for (int which = 0; which < 2 + BS_HAVE_VNNI; which++) {
        double ms[3];
        for (int bi = 0; bi < 3; bi++) {
            int bits = bi == 0 ? 8 : (bi == 1 ? 4 : 2), shift = 8 - bits;
            double best = 1e30;
            for (int r = 0; r < 21; r++) {
                double t0 = now();
                size_t off = 0, ov = 0, oa = 0;
                (void)ov;
                for (size_t i = 0; i < nl; i++) {
                    int M = layers[i][0], K = layers[i][1];
                    if (which == 0) scalar_pack(q8 + off, pa + oa, 1, M, K, shift, bits);
                    else if (which == 1) bs_qs8_pack_weights__avx2(q8 + off, pa + oa, 1, M, K, 0, shift, bits);
#if BS_HAVE_VNNI
                    else bs_qs8_pack_weights__avx512vnni(q8 + off, pv + ov, 1, M, K, 0, shift, bits,   /* taps (the order only records it) */
                                                         i == nl - 1 ? 0 : (K == 147 ? 49 : (K % 9 == 0 ? 9 : 1)), i != nl - 1);
#endif
                    off += (size_t)M * K;
#if BS_HAVE_VNNI
                    ov += bs_qs8_packed_weights_size__avx512vnni(1, M, K) + bs_vbsr_room(M, K, i == nl - 1);
#endif
                    oa += bs_qs8_packed_weights_size__avx2(1, M, K);
                }
                double t = now() - t0;
                if (t < best) best = t;
            }
            ms[bi] = best * 1e3;
        }
        printf("| %s | %.2f ms | %.2f ms | %.2f ms |\n", which == 0 ? "scalar (before)" : (which == 1 ? "AVX2 layout, vectorized" : "VNNI layout, vectorized"),
               ms[0], ms[1], ms[2]);
    }
    free(q8); free(pv); free(pa);
    return 0;
}
