// Throughput of the direct 3x3 conv kernels (forward and dW) and of grid packing on ResNet-20's stride-1 layer
// shapes at batch 128, one thread, process CPU time (best of R runs). Links CKernels' sources directly:
//
//   clang -O3 -fno-math-errno -ffp-contract=off -ISources/CKernels/include -o /tmp/conv_kernels \
//       bench/train/conv_kernels.c Sources/CKernels/conv3x3.c Sources/CKernels/isa*.c Sources/CKernels/kernels.c -lm
//   /tmp/conv_kernels [ISA]        ISA: 0 generic, 1 avx2 (default), 2 avx512; env N (batch), R (repeats)
//
// GFLOP/s count useful work only (2 * N*H*W * C*M*9); the grid's zero positions (one column per row, one row per
// image: 6 %, 13 % and 27 % extra at 32x32, 16x16 and 8x8) are not counted. "cs" is a checksum of the outputs, for
// comparing builds.
#include "ckernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static float *floats(long n, unsigned *seed) {
    float *p = aligned_alloc(64, (n * 4 + 63) / 64 * 64);
    for (long i = 0; i < n; i++) p[i] = (float)(rand_r(seed) % 2001 - 1000) / 1000.0f;
    return p;
}

static float *zeros(long n) {
    float *p = aligned_alloc(64, (n * 4 + 63) / 64 * 64);
    for (long i = 0; i < n; i++) p[i] = 0;
    return p;
}

int main(int argc, char **argv) {
    const int isa = argc > 1 ? atoi(argv[1]) : BS_ISA_AVX2;
    if (bs_isa_set(isa) != 0) { fprintf(stderr, "ISA %d is not supported here\n", isa); return 1; }
    const long N = getenv("N") ? atol(getenv("N")) : 128;
    const int R = getenv("R") ? atoi(getenv("R")) : 15;
    const long shapes[][3] = {{16, 16, 32}, {32, 32, 16}, {64, 64, 8}};   // C, M, H (= W)
    unsigned seed = 1;
    printf("ISA %s, batch %ld, best of %d\n", bs_isa_name(isa), N, R);
    for (int s = 0; s < 3; s++) {
        const long C = shapes[s][0], M = shapes[s][1], H = shapes[s][2], W = H, mpad = (M + BS_CONV3_MR - 1) / BS_CONV3_MR * BS_CONV3_MR;
        bs_grid g;
        bs_grid_init(&g, N, H, W);
        float *x = floats(N * C * H * W, &seed), *w = floats(M * C * 9, &seed), *gy = floats(N * M * H * W, &seed);
        // Outputs and scratch are not drawn from the generator: grid sizes differ between builds, the inputs must not.
        float *y = zeros(N * M * H * W), *xg = zeros(C * g.plane), *dyg = zeros(mpad * g.plane);
        float *wpk = zeros(mpad * C * 9);
        const long tasks = mpad / BS_CONV3_MR * C;
        float *acc = zeros(tasks * BS_CONV3_MR * 9 * 16), *dw = zeros(M * C * 9);
        bs_grid_pack_f32(gy, dyg, M, 0, mpad, &g);
        bs_conv3x3_pack_weights(w, wpk, M, C, 0);
        double tf = 1e9, td = 1e9, tp = 1e9;
        for (int r = 0; r < R; r++) {
            double t0 = cpu_now();
            bs_grid_pack_f32(x, xg, C, 0, C, &g);
            double t1 = cpu_now();
            bs_conv3x3_fwd_f32(xg, wpk, y, NULL, M, C, 0, g.blocks, &g);
            double t2 = cpu_now();
            bs_conv3x3_dw_f32(dyg, xg, acc, dw, M, C, 0, tasks, &g);
            double t3 = cpu_now();
            if (t1 - t0 < tp) tp = t1 - t0;
            if (t2 - t1 < tf) tf = t2 - t1;
            if (t3 - t2 < td) td = t3 - t2;
        }
        double cs = 0;
        for (long i = 0; i < N * M * H * W; i += 97) cs += y[i];
        for (long i = 0; i < M * C * 9; i++) cs += dw[i] / R;
        const double gf = 2.0 * N * H * W * C * M * 9 * 1e-9;
        printf("C=%-3ld M=%-3ld %2ldx%-2ld  forward %6.2f ms %5.1f GFLOP/s   dW %6.2f ms %5.1f GFLOP/s   grid pack %5.2f ms"
               "   (cs %.6g)\n", C, M, H, W, tf * 1e3, gf / tf, td * 1e3, gf / td, tp * 1e3, cs);
        free(x); free(w); free(gy); free(y); free(xg); free(dyg); free(wpk); free(acc); free(dw);
    }
    return 0;
}
