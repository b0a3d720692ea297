/* Micro-benchmark of the AVX2 int8 GEMM kernels (bs_kernels_avx2.c) against a bare inner-loop peak on this CPU.
 * Peak: a register-only loop of the micro-kernel's own instruction mix (vpbroadcastd, vpmaddubsw, vpmaddwd, vpaddd;
 * 8 independent accumulators) -> MACs per second the core can retire with that mix. Kernel: a 1x1 conv as a GEMM,
 * M output channels x N pixels x K, u8 activations, 7-bit (vpmaddubsw) and 8-bit (vpmaddwd) weights, Requant fused,
 * gather + interleave included, weights / activations at w8a8 .. w2a2 (the low-bit ones through the int16-accumulating
 * kernel). Then batch-1 gemms (memory-bound) in the packed low-bit layout against the GEMM layout.
 * Prints GMAC/s, % of peak and microseconds.   cc -O3 -march=native gemm_peak.c bs_kernels*.c */
#define _POSIX_C_SOURCE 200809L
#include "bs_kernels.h"
#include "bs_kernels_avx2.h"
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* CPU time of this thread: time slices lost to other processes on a shared machine are not counted (a sibling
 * hyperthread's use of the core still is). */
static double now(void) { struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

/* Bare inner loops of the micro-kernels' instruction mixes, in registers only (written in asm: with intrinsics gcc
 * kept some of the 8 accumulators on the stack, which capped the old "peak" below the kernels themselves).
 * vpmaddubsw mix: 16 pixels x 4 channels x 4 k = 256 MACs per iteration (8 x vpmaddubsw + vpmaddwd by 1 + vpaddd);
 * vpmaddwd mix: 16 pixels x 4 channels x 2 k = 128 MACs per iteration (8 x vpmaddwd + vpaddd). */
#define BS_UBS(X, B, C) "vpmaddubsw %%ymm" #B ", %%ymm" #X ", %%ymm15\n\tvpmaddwd %%ymm14, %%ymm15, %%ymm15\n\tvpaddd %%ymm15, %%ymm" #C ", %%ymm" #C "\n\t"
#define BS_A16(X, B, C) "vpmaddubsw %%ymm" #B ", %%ymm" #X ", %%ymm15\n\tvpaddw %%ymm15, %%ymm" #C ", %%ymm" #C "\n\t"
#define BS_WD(X, B, C) "vpmaddwd %%ymm" #B ", %%ymm" #X ", %%ymm15\n\tvpaddd %%ymm15, %%ymm" #C ", %%ymm" #C "\n\t"
#define BS_PEAK_LOOP(M)                                                                                          \
    __asm__ volatile("vpxor %%ymm0, %%ymm0, %%ymm0\n\tvmovdqa %%ymm0, %%ymm1\n\tvmovdqa %%ymm0, %%ymm2\n\t"           \
                     "vmovdqa %%ymm0, %%ymm3\n\tvmovdqa %%ymm0, %%ymm4\n\tvmovdqa %%ymm0, %%ymm5\n\t"                \
                     "vmovdqa %%ymm0, %%ymm6\n\tvmovdqa %%ymm0, %%ymm7\n\t"                                          \
                     "vpcmpeqw %%ymm14, %%ymm14, %%ymm14\n\tvpsrlw $15, %%ymm14, %%ymm14\n\t"                         \
                     "vmovdqa %%ymm14, %%ymm8\n\tvpaddw %%ymm14, %%ymm14, %%ymm9\n\t"                                 \
                     "vpaddw %%ymm9, %%ymm14, %%ymm10\n\tvpaddw %%ymm9, %%ymm9, %%ymm11\n\t"                          \
                     "vpaddw %%ymm10, %%ymm9, %%ymm12\n\tvpaddw %%ymm11, %%ymm9, %%ymm13\n\t"                         \
                     "1:\n\t"                                                                                      \
                     M(8, 10, 0) M(8, 11, 1) M(8, 12, 2) M(8, 13, 3) M(9, 10, 4) M(9, 11, 5) M(9, 12, 6) M(9, 13, 7) \
                     "dec %0\n\tjnz 1b\n\t"                                                                         \
                     : "+r"(n) : : "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",  \
                       "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15")
static double peak_maddubs(long iters) {
    long n = iters;
    double t0 = now();
    BS_PEAK_LOOP(BS_UBS);
    return (double)iters * 256 / (now() - t0);
}

/* the int16-accumulating mix of the low-bit kernel (vpmaddubsw + vpaddw; the widening every `flush` k-groups is
 * left out: an upper bound) */
static double peak_acc16(long iters) {
    long n = iters;
    double t0 = now();
    BS_PEAK_LOOP(BS_A16);
    return (double)iters * 256 / (now() - t0);
}

static double peak_maddwd(long iters) {
    long n = iters;
    double t0 = now();
    BS_PEAK_LOOP(BS_WD);
    return (double)iters * 128 / (now() - t0);
}

int main(void) {
    double pk[7], pw[7], pa[7];
    for (int r = 0; r < 7; r++) { pk[r] = peak_maddubs(50000000); pw[r] = peak_maddwd(50000000); pa[r] = peak_acc16(50000000); }
    /* the best of 7 (on a shared machine the other runs lose time slices, which a peak must not count) */
    double peak1 = pk[0], peak2 = pw[0], peak3 = pa[0];
    for (int r = 1; r < 7; r++) { if (pk[r] > peak1) peak1 = pk[r]; if (pw[r] > peak2) peak2 = pw[r]; if (pa[r] > peak3) peak3 = pa[r]; }
    printf("peak (bare inner loop, best of 7): vpmaddubsw mix %.1f GMAC/s, vpmaddwd mix %.1f GMAC/s, int16-accumulating vpmaddubsw mix %.1f GMAC/s\n",
           peak1 / 1e9, peak2 / 1e9, peak3 / 1e9);
    /* ResNet-18's 3x3 convs as GEMMs (M channels, N pixels, K = 9 C) and a 1x1 conv; the whole op (gather + interleave
     * + GEMM + Requant epilogue). Variants: weight bits / activation bits (activations drawn in [0, 2^a)). */
    int shapes[][3] = {{64, 3136, 576}, {128, 784, 1152}, {256, 196, 2304}, {512, 49, 4608}, {64, 3136, 64}};
    int variants[][2] = {{8, 8}, {7, 8}, {4, 8}, {4, 4}, {2, 2}};
    enum { NV = sizeof variants / sizeof variants[0] };
    printf("\nGMAC/s of the whole op, one thread (%% of the peak of the kernel's own mix: vpmaddwd for w8a8, vpmaddubsw + vpmaddwd "
           "for w7a8, int16-accumulating vpmaddubsw for the rest); "
           "speed-up over w8a8 in brackets\n\n| M | N | K |");
    for (int v = 0; v < NV; v++) printf(" w%da%d |", variants[v][0], variants[v][1]);
    printf("\n|--:|--:|--:|");
    for (int v = 0; v < NV; v++) printf("--:|");
    printf("\n");
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
        bs_conv_shape s;
        memset(&s, 0, sizeof s);
        s.win = (bs_window){1, 1, N, 1, 1, N, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1};
        s.c = K; s.m = M; s.group = 1;
        uint8_t *x = aligned_alloc(64, (size_t)K * N + 64);
        int8_t *q8 = aligned_alloc(64, (size_t)M * K + 64);
        for (size_t i = 0; i < (size_t)M * K; i++) q8[i] = (int8_t)(i * 13);
        void *pw8 = aligned_alloc(64, (bs_qs8_packed_weights_size__avx2(1, M, K) + 63) / 64 * 64);
        void *scratch = aligned_alloc(64, (bs_conv_scratch_size__avx2(&s) + 63) / 64 * 64);
        int32_t *m = malloc(sizeof(int32_t) * M), *n = malloc(sizeof(int32_t) * M);
        int64_t *b = malloc(sizeof(int64_t) * M);
        for (int i = 0; i < M; i++) { m[i] = 1 << 29; n[i] = 40; b[i] = 0; }
        bs_requant_params rq = {m, n, b, M, 0, 0, 255};
        uint8_t *y = malloc((size_t)M * N);
        double gm[NV];
        for (int v = 0; v < NV; v++) {
            int wb = variants[v][0], ab = variants[v][1];
            for (size_t i = 0; i < (size_t)K * N; i++) x[i] = (uint8_t)((i * 7) & ((1u << ab) - 1));
            bs_qs8_pack_weights__avx2(q8, pw8, 1, M, K, 0, 8 - wb, wb);
            bs_qmm_params p = {0, 8 - wb, wb};
            double macs = (double)M * N * K, t[9];   /* the best of 9 timed batches, like the peak */
            int reps = (int)(2e8 / macs) + 1;
            for (int r = 0; r < 9; r++) {
                double t0 = now();
                for (int i = 0; i < reps; i++) bs_qu8_conv_requant__avx2(&s, x, pw8, &p, &rq, y, BS_T_U8, scratch);
                t[r] = (now() - t0) / reps;
            }
            double best = t[0];
            for (int r = 1; r < 9; r++) if (t[r] < best) best = t[r];
            gm[v] = macs / best;
        }
        printf("| %d | %d | %d |", M, N, K);
        for (int v = 0; v < NV; v++) {
            /* the kernel each variant takes: w8 the vpmaddwd one; w7a8 (flush 1) the vpmaddubsw + vpmaddwd one; the
             * others the int16-accumulating one (flush 8 for w4a8, >= 136 below) */
            int wb = variants[v][0];
            printf(" %.1f (%.0f %%)", gm[v] / 1e9, 100 * gm[v] / (wb == 8 ? peak2 : (wb == 7 ? peak1 : peak3)));
            if (v) printf(" [%.2fx]", gm[v] / gm[0]);
            printf(" |");
        }
        printf("\n");
        free(x); free(q8); free(pw8); free(scratch); free(m); free(n); free(b); free(y);
    }
    /* Batch-1 fully connected layers (memory-bound: each weight is used once): the k-contiguous packed layout at
     * w8 / w4 / w2 (1, 0.5, 0.25 bytes per weight) against the GEMM layout (S8C4 / S16C2, 8 pixel lanes of which one is
     * used), u8 activations, Requant fused. Weights bigger than L2 (ResNet-18's and MobileNetV2's classifiers) and
     * one that fits L1. */
    int fcs[][2] = {{1000, 512}, {1000, 1280}, {4096, 4096}, {64, 256}};
    printf("\nBatch-1 gemm (rows = 1), microseconds per call (best of 9 batches); weight bytes read; speed-up of the packed layout\n\n"
           "| M x K | layout | w8 us | w4 us | w2 us | w4 / w8 | w2 / w8 |\n|---|---|--:|--:|--:|--:|--:|\n");
    for (size_t fi = 0; fi < sizeof fcs / sizeof fcs[0]; fi++) {
        int M = fcs[fi][0], K = fcs[fi][1];
        uint8_t *x = aligned_alloc(64, (size_t)K + 64);
        int8_t *q8 = aligned_alloc(64, (size_t)M * K + 64);
        for (int i = 0; i < K; i++) x[i] = (uint8_t)(i * 7);
        for (size_t i = 0; i < (size_t)M * K; i++) q8[i] = (int8_t)(i * 13);
        size_t psz = (bs_qs8_packed_weights_size__avx2(1, M, K) + 63) / 64 * 64;
        void *pw = aligned_alloc(64, psz), *scratch = aligned_alloc(64, (bs_gemm_scratch_size__avx2(1, K, M) + 63) / 64 * 64);
        int32_t *m = malloc(sizeof(int32_t) * M), *n = malloc(sizeof(int32_t) * M);
        int64_t *b = malloc(sizeof(int64_t) * M);
        for (int i = 0; i < M; i++) { m[i] = 1 << 29; n[i] = 40; b[i] = 0; }
        bs_requant_params rq = {m, n, b, M, 0, 0, 255};
        uint8_t *y = malloc((size_t)M);
        for (int layout = 0; layout < 2; layout++) {
            double us[3];
            int bits[3] = {8, 4, 2};
            for (int v = 0; v < 3; v++) {
                if (layout) bs_qs8_pack_weights_rows__avx2(q8, pw, 1, M, K, 0, 8 - bits[v], bits[v], 1);
                else bs_qs8_pack_weights__avx2(q8, pw, 1, M, K, 0, 8 - bits[v], bits[v]);
                bs_qmm_params p = {0, 8 - bits[v], bits[v]};
                int reps = (int)(2e7 / ((double)M * K)) + 1;
                double best = 1e9;
                for (int r = 0; r < 9; r++) {
                    double t0 = now();
                    for (int i = 0; i < reps; i++) bs_qu8_gemm_requant__avx2(1, K, M, 1, x, pw, &p, &rq, y, BS_T_U8, scratch);
                    double t = (now() - t0) / reps;
                    if (t < best) best = t;
                }
                us[v] = best * 1e6;
            }
            printf("| %d x %d | %s | %.1f | %.1f | %.1f | %.2fx | %.2fx |\n", M, K, layout ? "batch-1 packed (w8 1 B, w4 0.5 B, w2 0.25 B per weight)" : "GEMM layout (1-2 B per weight)",
                   us[0], us[1], us[2], us[0] / us[1], us[0] / us[2]);
        }
        free(x); free(q8); free(pw); free(scratch); free(m); free(n); free(b); free(y);
    }
    return 0;
}
