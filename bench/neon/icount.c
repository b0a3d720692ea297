/* One QConv+Requant (or QGemm) through the generic or the NEON kernels, `reps` times: the dynamic instruction
 * count of one op is count(reps=2) - count(reps=1). Usage: icount generic|neon conv|dw|gemm REPS */
#define _POSIX_C_SOURCE 200809L
#include "bs_kernels_neon.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: icount generic|neon conv|dw|gemm REPS\n"); return 2; }
    int neon = strcmp(argv[1], "neon") == 0, reps = atoi(argv[3]);
    const char *op = argv[2];
    bs_conv_shape s; memset(&s, 0, sizeof s);
    bs_window *g = &s.win;
    int dw = strcmp(op, "dw") == 0, gemm = strcmp(op, "gemm") == 0;
    int C = dw ? 64 : 32, M = dw ? 64 : 32, H = 14, W = 14;
    g->d = g->od = g->kd = g->sd = g->dd = 1; g->h = H; g->w = W; g->kh = g->kw = 3; g->sh = g->sw = 1; g->ph = g->pw = g->peh = g->pew = 1;
    g->dh = g->dw = 1; g->oh = H; g->ow = W; s.c = C; s.m = M; s.group = dw ? C : 1;
    size_t rows = 1, k = 512, m = 256;
    int32_t groups = s.group, mg = M / s.group, kk = (C / s.group) * 9;
    if (gemm) { groups = 1; mg = (int32_t)m; kk = (int32_t)k; }
    size_t xn = gemm ? rows * k : (size_t)C * H * W, yn = gemm ? rows * m : (size_t)M * H * W, wn = (size_t)groups * mg * kk;
    uint8_t *x = malloc(xn), *y = malloc(yn); int8_t *q8 = malloc(wn), *wb = malloc(wn);
    for (size_t i = 0; i < xn; i++) x[i] = (uint8_t)(i * 37 + 11);
    for (size_t i = 0; i < wn; i++) q8[i] = (int8_t)(i * 101 + 7);
    bs_qmm_params p = {3, 0, 8};
    int32_t mm[1] = {1 << 30}, nn[1] = {38}; int64_t bb[1] = {12345};
    bs_requant_params rq = {mm, nn, bb, 1, 0, 0, 255};
    bs_qs8_shift_weights__generic(q8, wb, wn, 0, 8);
    void *pw = NULL, *scratch = NULL;
    if (neon) {
        if (posix_memalign(&pw, 64, bs_qs8_packed_weights_size__neon(groups, mg, kk))) return 3;
        bs_qs8_pack_weights__neon(q8, pw, groups, mg, kk, 0, 0, 8);
        size_t ss = gemm ? bs_gemm_scratch_size__neon(rows, k, m) : bs_conv_scratch_size__neon(&s);
        if (posix_memalign(&scratch, 64, ss)) return 3;
    }
    for (int r = 0; r < reps; r++) {
        if (gemm) {
            if (neon) bs_qu8_gemm_requant__neon(rows, k, m, 1, x, pw, &p, &rq, y, BS_T_U8, scratch);
            else bs_qu8_gemm_requant__generic(rows, k, m, 1, x, wb, &p, &rq, y, BS_T_U8);
        } else {
            if (neon) bs_qu8_conv_requant__neon(&s, x, pw, &p, &rq, y, BS_T_U8, scratch);
            else bs_qu8_conv_requant__generic(&s, x, wb, &p, &rq, y, BS_T_U8);
        }
    }
    unsigned sum = 0; for (size_t i = 0; i < yn; i++) sum = sum * 31 + y[i];
    printf("%u\n", sum);
    return 0;
}
