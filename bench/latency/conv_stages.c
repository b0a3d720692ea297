/* Per-stage time of one QConv in the staged form of the AVX2 kernels (bs_kernels_avx2.c: stage 0 plane fill or row
 * gather, 1 interleave, 2 GEMM + fused Requant) or, built with -DVNNI, of the AVX-512 VNNI ones
 * (bs_kernels_avx512vnni.c: stage 0 gather + interleave, 1 GEMM + Requant), one thread, thread CPU time, best of 30
 * batches of 5 calls: where a layer's time goes.
 *   cc -std=c11 -O3 -march=native [-DVNNI] -I Sources/BitSwitchCodegen/Runtime/generic -o conv_stages \
 *      bench/latency/conv_stages.c Sources/BitSwitchCodegen/Runtime/generic/bs_kernels{,_avx2,_avx512vnni}.c
 *   conv_stages M H C [W_BITS A_BITS KERNEL STRIDE]   (M output channels, H x H input, C input channels; square kernel
 *                                                      with pad KERNEL / 2; defaults 8 8 1 1)
 * e.g. ResNet-20's 16-channel 3x3 layer: conv_stages 16 32 16 8 8 3 1; MobileNetV2's 16 -> 96 expand conv:
 * conv_stages 96 112 16. Weights and activations are fixed patterns, the Requant per channel to u8. */
#define _GNU_SOURCE
#include "bs_kernels.h"
#include "bs_kernels_avx2.h"
#include "bs_kernels_avx512vnni.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef VNNI
#define ISA(name) name##__avx512vnni
#define FAMILY(name) bs_avx512vnni_##name
#define PACK(q8, pw, m, k, shift, bits, taps)                                                           \
    do {   /* conv weights stored tap-major where 4 | C (the direct path), as the generated code does */        \
        int32_t t_ = C % 4 == 0 ? (taps) : 0;                                                                 \
        if (t_ > 1) bs_qs8_tap_major__avx512vnni(q8, q8t, (size_t)(m) * (k), t_);                  \
        bs_qs8_pack_weights__avx512vnni(t_ > 1 ? q8t : q8, pw, 1, m, k, 0, shift, bits, t_, 0);      \
    } while (0)
#else
#define ISA(name) name##__avx2
#define FAMILY(name) bs_avx2_##name
#define PACK(q8, pw, m, k, shift, bits, taps) ((void)q8t, bs_qs8_pack_weights__avx2(q8, pw, 1, m, k, 0, shift, bits))
#endif

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *al(size_t n) {
    void *p = aligned_alloc(64, (n + 63) / 64 * 64 + 64);
    if (!p) { fprintf(stderr, "conv_stages: out of memory\n"); exit(1); }
    return p;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s M H C [W_BITS A_BITS KERNEL STRIDE]\n", argv[0]);
        return 1;
    }
    int M = atoi(argv[1]), H = atoi(argv[2]), C = atoi(argv[3]);
    int wb = argc > 4 ? atoi(argv[4]) : 8, ab = argc > 5 ? atoi(argv[5]) : 8;
    int ks = argc > 6 ? atoi(argv[6]) : 1, st = argc > 7 ? atoi(argv[7]) : 1, pd = ks / 2;
    int oh = (H + 2 * pd - ks) / st + 1, K = C * ks * ks;
    size_t N = (size_t)oh * oh;
    bs_conv_shape s;
    memset(&s, 0, sizeof s);
    s.win = (bs_window){1, H, H, 1, oh, oh, 1, ks, ks, 1, st, st, 0, pd, pd, 0, pd, pd, 1, 1, 1};
    s.c = C; s.m = M; s.group = 1;
    uint8_t *x = al((size_t)C * H * H), *y = al((size_t)M * N);
    int8_t *q8 = al((size_t)M * K), *q8t = al((size_t)M * K);   /* q8t: tap-major (VNNI) */
    for (size_t i = 0; i < (size_t)M * K; i++) q8[i] = (int8_t)(i * 13);
    for (size_t i = 0; i < (size_t)C * H * H; i++) x[i] = (uint8_t)((i * 7) & ((1u << ab) - 1));
    void *pw = al(ISA(bs_qs8_packed_weights_size)(1, M, K));
    unsigned char *scratch = al(ISA(bs_conv_scratch_size)(&s));
    int32_t *m = al(sizeof(int32_t) * M), *n = al(sizeof(int32_t) * M);
    int64_t *b = al(sizeof(int64_t) * M);
    for (int i = 0; i < M; i++) { m[i] = (1 << 29) + i; n[i] = 40; b[i] = i; }
    bs_requant_params rq = {m, n, b, M, 0, 0, 255};
    PACK(q8, pw, M, K, 8 - wb, wb, ks * ks);
    bs_qmm_params p = {0, 8 - wb, wb};
    double best[3] = {1e9, 1e9, 1e9};
    int ns = 0;
    for (int r = 0; r < 30; r++) {
        bs_avx2_job j;
        memset(&j, 0, sizeof j);
        j.x = x; j.xt = BS_T_U8; j.yt = BS_T_U8; j.packed = pw; j.p = &p; j.rq = &rq; j.y = y; j.scratch = scratch; j.conv = &s;
        ns = FAMILY(stages)(&j);
        for (int sg = 0; sg < ns && sg < 3; sg++) {
            double t0 = now();
            for (int rep = 0; rep < 5; rep++)
                for (int t = 0, nt = FAMILY(tasks)(&j, sg); t < nt; t++) FAMILY(run)(&j, sg, t);
            double t = (now() - t0) / 5;
            if (t < best[sg]) best[sg] = t;
        }
    }
    double total = 0;
    for (int sg = 0; sg < ns && sg < 3; sg++) total += best[sg];
    printf("M %d, N %zu, K %d (C %d, %dx%d stride %d), w%da%d: ", M, N, K, C, ks, ks, st, wb, ab);
    for (int sg = 0; sg < ns && sg < 3; sg++) printf("stage %d %.1f us, ", sg, best[sg] * 1e6);
    printf("total %.1f us, %.1f GMAC/s\n", total * 1e6, (double)M * N * K / total / 1e9);
    return 0;
}
