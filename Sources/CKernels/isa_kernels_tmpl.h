// Hot float kernels, one template for every ISA variant (included by isa_generic.c, isa_avx2.c, isa_avx512.c).
//
// The includer defines:
//   FN(name)     the variant's name for a kernel (name_SUFFIX)
//   VW           floats per vector; 16 (BS_DWL) must be a multiple of it
//   vf           the vector type; VZERO(), VSET1(s), VLOAD(p), VSTORE(p, v) (unaligned), VFMA(a, b, c) = a*b + c
//                with one rounding (a fused multiply-add, never a separate multiply and add)
//   RB, NV       forward register tile: RB output channels (dividing BS_MR) x NV vectors of positions
//                (VW*NV dividing BS_NB)
//   RBD          dW register tile: RBD output channels (dividing BS_MR) x 3 taps x the 16 lanes (16/VW vectors)
//   QBV          positions per dW pass (a multiple of 16; any value gives the same sums)
// and may define (prefetches only: no effect on any result):
//   PFD          the forward C tiles prefetch each channel's (tap's) rows PFD bytes ahead
//   PF_NEXT_PLANE  the dW kernels prefetch the next task's input plane, a line per 16 positions
//
// Every result is defined independently of VW, RB, NV, RBD and QBV: an output of the forward kernels is the fused
// multiply-add chain over its inputs and taps in order, starting from zero, plus the bias; a dW partial sum is
// lane l of 16 (positions q0 + l + 16k in order) and the 16 lanes are added in one fixed tree. So all variants
// agree bit for bit.
//
// Direct 3x3, stride-1, pad-1 convolution on the "grid" layout (see ckernels.h). In the grid every image row is
// followed by one zero column and every image by one zero row, so the 9 taps of any output position are the input
// at that position plus fixed offsets (-wp-1 ... wp+1). A run of consecutive positions then reads consecutive
// inputs: the inner loops are plain vector loads with no im2col matrix and no bounds checks. Outputs at the zero
// positions are junk and never stored.

_Static_assert(BS_DWL % VW == 0, "the dW lanes must be whole vectors");
enum { NH = BS_DWL / VW };   // vectors per 16-lane dW partial sum
_Static_assert(BS_MR % RB == 0 && BS_MR % RBD == 0, "row tiles must divide BS_MR");
_Static_assert(BS_NB % (VW * NV) == 0, "position tiles must divide BS_NB");
_Static_assert(QBV % BS_DWL == 0, "dW passes must hold whole lane groups");

// One register tile of the forward kernels: RB output channels x VW*NV consecutive positions, the fused
// multiply-add chain over channels (and taps) in order from zero, stored to tp (rows BS_NB floats apart).
// An ISA may bring its own (BS_ASM_TILES: hand-scheduled assembly with the same operations in the same order).
#ifndef BS_ASM_TILES
/// Direct 3x3: x is channel 0's grid at the tile's first position (channels P apart, rows wp apart); w the
/// tile's first row of the packed weights of channel 0 (BS_MR x 9 per channel, row-minor).
static inline void FN(tile3x3)(const float *x, const float *w, long C, long P, long wp, float *tp) {
    long off[9];
    for (int t = 0; t < 9; t++) off[t] = (t / 3 - 1) * wp + (t % 3 - 1);
    vf a[RB][NV];
    for (int i = 0; i < RB; i++)
        for (int j = 0; j < NV; j++) a[i][j] = VZERO();
    for (long c = 0; c < C; c++) {
        const float *xc = x + c * P;
        const float *wc = w + c * 9 * BS_MR;
#ifdef PFD
        __builtin_prefetch((const char *)(xc + off[8]) + PFD);
        __builtin_prefetch((const char *)(xc + off[8]) + PFD + 64);
        __builtin_prefetch((const char *)(xc + off[8]) + PFD + 128);
#endif
#pragma GCC unroll 9
        for (int t = 0; t < 9; t++) {
            const float *xp = xc + off[t];
            vf v[NV];
#pragma GCC unroll 4
            for (int j = 0; j < NV; j++) v[j] = VLOAD(xp + j * VW);
#pragma GCC unroll 8
            for (int i = 0; i < RB; i++) {
                const vf s = VSET1(wc[t * BS_MR + i]);
#pragma GCC unroll 4
                for (int j = 0; j < NV; j++) a[i][j] = VFMA(v[j], s, a[i][j]);
            }
        }
    }
    for (int i = 0; i < RB; i++)
        for (int j = 0; j < NV; j++) VSTORE(tp + i * BS_NB + j * VW, a[i][j]);
}

/// Tap list: tap k reads x + koff[k] with weights w + k*BS_MR.
static inline void FN(tiletap)(const float *x, const long *koff, long K, const float *w, float *tp) {
    vf a[RB][NV];
    for (int i = 0; i < RB; i++)
        for (int j = 0; j < NV; j++) a[i][j] = VZERO();
    for (long k = 0; k < K; k++) {
        const float *xp = x + koff[k];
        const float *wk = w + k * BS_MR;
#ifdef PFD
        __builtin_prefetch((const char *)xp + PFD);
        __builtin_prefetch((const char *)xp + PFD + 64);
        __builtin_prefetch((const char *)xp + PFD + 128);
#endif
        vf v[NV];
#pragma GCC unroll 4
        for (int j = 0; j < NV; j++) v[j] = VLOAD(xp + j * VW);
#pragma GCC unroll 8
        for (int i = 0; i < RB; i++) {
            const vf s = VSET1(wk[i]);
#pragma GCC unroll 4
            for (int j = 0; j < NV; j++) a[i][j] = VFMA(v[j], s, a[i][j]);
        }
    }
    for (int i = 0; i < RB; i++)
        for (int j = 0; j < NV; j++) VSTORE(tp + i * BS_NB + j * VW, a[i][j]);
}
#endif

static void FN(conv3x3_fwd)(const float *xg, const float *wpk, float *y, const float *bias, long M, long C,
                            long b0, long b1, const bs_grid *g) {
    const long P = g->plane, mblocks = (M + BS_MR - 1) / BS_MR, hw = g->h * g->w;
    const float *x0 = xg + g->front;
    bs_run runs[BS_NB];
    float tile[BS_MR][BS_NB] __attribute__((aligned(64)));
    for (long b = b0; b < b1; b++) {
        const long q = g->q0 + b * BS_NB;
        const int nr = bs__block_runs(q, g, runs);
        if (nr == 0) continue;
        for (long mb = 0; mb < mblocks; mb++) {
            const float *wb = wpk + mb * C * 9 * BS_MR;
#pragma GCC unroll 1
            for (int p0 = 0; p0 < BS_NB; p0 += VW * NV)
#pragma GCC unroll 1
                for (int r0 = 0; r0 < BS_MR; r0 += RB) {
                    FN(tile3x3)(x0 + q + p0, wb + r0, C, P, g->wp, tile[r0] + p0);
                }
            // Straight to NCHW while the tile is in L1: no output grid and no separate unpack pass.
            for (int i = 0; i < BS_MR; i++) {
                const long m = mb * BS_MR + i;
                if (m >= M) break;
                const float bv = bias ? bias[m] : 0.0f;
                const vf vb = VSET1(bv), one = VSET1(1.0f);
                for (int r = 0; r < nr; r++) {
                    float *dst = y + (runs[r].n * M + m) * hw + runs[r].pix;
                    const float *src = tile[i] + runs[r].k;
                    const int len = runs[r].len;
                    int k = 0;
                    // Whole vectors first (runs are image rows, often a multiple of the width); fma(s, 1, b) is
                    // exactly s + b.
                    for (; k + VW <= len; k += VW) VSTORE(dst + k, VFMA(VLOAD(src + k), one, vb));
                    for (; k < len; k++) dst[k] = src[k] + bv;
                }
            }
        }
    }
}

// Adds the 16 lanes of one dW partial sum in the fixed tree every variant uses.
static inline float FN(lane_sum)(const float *v) {
    float s8[8];
    for (int l = 0; l < 8; l++) s8[l] = v[l] + v[l + 8];
    return ((s8[0] + s8[4]) + (s8[2] + s8[6])) + ((s8[1] + s8[5]) + (s8[3] + s8[7]));
}

static void FN(conv3x3_dw)(const float *dyg, const float *xg, float *acc, float *dw, long M, long C, long t0,
                           long t1, const bs_grid *g) {
    // Task t = (m block, input channel). Each keeps MR x 9 partial sums of 16 lanes in acc (task-major), summed
    // over positions in a fixed block order, so the result does not depend on how tasks are split.
    const long P = g->plane, wp = g->wp, end = g->q0 + g->blocks * BS_NB;
    const float *dy0 = dyg + g->front, *x0 = xg + g->front;
    memset(acc + t0 * BS_MR * 9 * BS_DWL, 0, sizeof(float) * (t1 - t0) * BS_MR * 9 * BS_DWL);
    for (long qs = g->q0; qs < end; qs += QBV) {
        const long qe = qs + QBV < end ? qs + QBV : end;
        for (long t = t0; t < t1; t++) {
            const long mb = t / C, c = t % C;
            const float *dy = dy0 + mb * BS_MR * P;
            float *at = acc + t * BS_MR * 9 * BS_DWL;
            // Register tile: RBD rows x 3 taps x all 16 lanes (NH vectors), so each pass reads whole cache lines.
            for (int r0 = 0; r0 < BS_MR; r0 += RBD)
                for (int kh = 0; kh < 3; kh++) {
                    const float *xr = x0 + c * P + (kh - 1) * wp - 1;
                    vf a[RBD][3][NH];
                    for (int i = 0; i < RBD; i++)
                        for (int j = 0; j < 3; j++)
                            for (int hh = 0; hh < NH; hh++)
                                a[i][j][hh] = VLOAD(at + ((r0 + i) * 9 + kh * 3 + j) * BS_DWL + hh * VW);
                    const float *dh = dy + r0 * P;
                    for (long q = qs; q < qe; q += BS_DWL) {
#ifdef PF_NEXT_PLANE
                        __builtin_prefetch(xr + P + q);
#endif
#pragma GCC unroll 4
                        for (int hh = 0; hh < NH; hh++) {
                            const float *xq = xr + q + hh * VW;
                            const vf u0 = VLOAD(xq), u1 = VLOAD(xq + 1), u2 = VLOAD(xq + 2);
#pragma GCC unroll 8
                            for (int i = 0; i < RBD; i++) {
                                const vf d = VLOAD(dh + i * P + q + hh * VW);
                                a[i][0][hh] = VFMA(d, u0, a[i][0][hh]);
                                a[i][1][hh] = VFMA(d, u1, a[i][1][hh]);
                                a[i][2][hh] = VFMA(d, u2, a[i][2][hh]);
                            }
                        }
                    }
                    for (int i = 0; i < RBD; i++)
                        for (int j = 0; j < 3; j++)
                            for (int hh = 0; hh < NH; hh++)
                                VSTORE(at + ((r0 + i) * 9 + kh * 3 + j) * BS_DWL + hh * VW, a[i][j][hh]);
                }
        }
    }
    for (long t = t0; t < t1; t++) {
        const long mb = t / C, c = t % C;
        const float *at = acc + t * BS_MR * 9 * BS_DWL;
        for (int i = 0; i < BS_MR; i++) {
            const long m = mb * BS_MR + i;
            if (m >= M) break;
            for (int k = 0; k < 9; k++) dw[(m * C + c) * 9 + k] += FN(lane_sum)(at + (i * 9 + k) * BS_DWL);
        }
    }
}

// ---- generic tap lists: strided and 1x1 convolutions on phase-split grids (see conv3x3.c) ----

static void FN(tapconv_fwd)(const float *xg, const long *koff, long K, const float *wpk, float *y,
                            const float *bias, long M, long b0, long b1, const bs_grid *g, const bs_out *o) {
    const long mblocks = (M + BS_MR - 1) / BS_MR, ohw = o->h * o->w;
    const float *x0 = xg + g->front;
    bs_run runs[BS_NB];
    float tile[BS_MR][BS_NB] __attribute__((aligned(64)));
    for (long b = b0; b < b1; b++) {
        const long q = g->q0 + b * BS_NB;
        const int nr = bs__block_runs(q, g, runs);
        if (nr == 0) continue;
        for (long mb = 0; mb < mblocks; mb++) {
            // With no taps (a phase no tap reads) wpk may be NULL: no pointer arithmetic on it (UB even unread).
            const float *wb = K > 0 ? wpk + mb * K * BS_MR : wpk;
#pragma GCC unroll 1
            for (int p0 = 0; p0 < BS_NB; p0 += VW * NV)
#pragma GCC unroll 1
                for (int r0 = 0; r0 < BS_MR; r0 += RB) {
                    FN(tiletap)(x0 + q + p0, koff, K, K > 0 ? wb + r0 : wb, tile[r0] + p0);
                }
            for (int i = 0; i < BS_MR; i++) {
                const long m = mb * BS_MR + i;
                if (m >= M) break;
                const float bv = bias ? bias[m] : 0.0f;
                const vf vb = VSET1(bv), one = VSET1(1.0f);
                for (int r = 0; r < nr; r++) {
                    // Grid pixel (row, col) of the run lands at (s*row + oy, s*col + ox) of the destination plane.
                    const long gi = runs[r].pix / g->w, gj = runs[r].pix % g->w;
                    const long yi = o->s * gi + o->oy;
                    if (yi >= o->h) continue;
                    long len = runs[r].len;
                    const long xj = o->s * gj + o->ox;
                    if (xj >= o->w) continue;
                    const long room = (o->w - xj + o->s - 1) / o->s;
                    if (len > room) len = room;
                    float *dst = y + (runs[r].n * M + m) * ohw + yi * o->w + xj;
                    const float *src = tile[i] + runs[r].k;
                    if (o->s == 1) {
                        long k = 0;
                        for (; k + VW <= len; k += VW) VSTORE(dst + k, VFMA(VLOAD(src + k), one, vb));
                        for (; k < len; k++) dst[k] = src[k] + bv;
                    } else {
                        for (long k = 0; k < len; k++) dst[k * o->s] = src[k] + bv;
                    }
                }
            }
        }
    }
}

static void FN(tapconv_dw)(const float *dyg, const float *xg, const long *koff, long K, float *acc, float *dw,
                           long M, long t0, long t1, const bs_grid *g) {
    // Task t = (m block, triple of taps); taps past K read plane 0 and are dropped.
    const long P = g->plane, end = g->q0 + g->blocks * BS_NB, triples = (K + 2) / 3;
    const float *dy0 = dyg + g->front, *x0 = xg + g->front;
    memset(acc + t0 * BS_MR * 3 * BS_DWL, 0, sizeof(float) * (t1 - t0) * BS_MR * 3 * BS_DWL);
    for (long qs = g->q0; qs < end; qs += QBV) {
        const long qe = qs + QBV < end ? qs + QBV : end;
        for (long t = t0; t < t1; t++) {
            const long mb = t / triples, k0 = (t % triples) * 3;
            const float *dy = dy0 + mb * BS_MR * P;
            const float *x1 = x0 + koff[k0];
            const float *x2 = x0 + (k0 + 1 < K ? koff[k0 + 1] : 0);
            const float *x3 = x0 + (k0 + 2 < K ? koff[k0 + 2] : 0);
#ifdef PF_NEXT_PLANE
            // The next task's first tap, prefetched a line per step (its plane is not in cache yet).
            const float *xn = x0 + (k0 + 3 < K ? koff[k0 + 3] : 0);
#endif
            float *at = acc + t * BS_MR * 3 * BS_DWL;
            for (int r0 = 0; r0 < BS_MR; r0 += RBD) {
                vf a[RBD][3][NH];
                for (int i = 0; i < RBD; i++)
                    for (int j = 0; j < 3; j++)
                        for (int hh = 0; hh < NH; hh++)
                            a[i][j][hh] = VLOAD(at + ((r0 + i) * 3 + j) * BS_DWL + hh * VW);
                const float *dh = dy + r0 * P;
                for (long q = qs; q < qe; q += BS_DWL) {
#ifdef PF_NEXT_PLANE
                    __builtin_prefetch(xn + q);
#endif
#pragma GCC unroll 4
                    for (int hh = 0; hh < NH; hh++) {
                        const long qh = q + hh * VW;
                        const vf u0 = VLOAD(x1 + qh), u1 = VLOAD(x2 + qh), u2 = VLOAD(x3 + qh);
#pragma GCC unroll 8
                        for (int i = 0; i < RBD; i++) {
                            const vf d = VLOAD(dh + i * P + qh);
                            a[i][0][hh] = VFMA(d, u0, a[i][0][hh]);
                            a[i][1][hh] = VFMA(d, u1, a[i][1][hh]);
                            a[i][2][hh] = VFMA(d, u2, a[i][2][hh]);
                        }
                    }
                }
                for (int i = 0; i < RBD; i++)
                    for (int j = 0; j < 3; j++)
                        for (int hh = 0; hh < NH; hh++)
                            VSTORE(at + ((r0 + i) * 3 + j) * BS_DWL + hh * VW, a[i][j][hh]);
            }
        }
    }
    for (long t = t0; t < t1; t++) {
        const long mb = t / triples, k0 = (t % triples) * 3;
        const float *at = acc + t * BS_MR * 3 * BS_DWL;
        for (int i = 0; i < BS_MR; i++) {
            const long m = mb * BS_MR + i;
            if (m >= M) break;
            for (int j = 0; j < 3 && k0 + j < K; j++) dw[m * K + k0 + j] += FN(lane_sum)(at + (i * 3 + j) * BS_DWL);
        }
    }
}

// ---- LSQ activation fake-quantizer (METHOD.md §2), forward and backward, for the training hot path ----
// Division (not a reciprocal multiply) keeps x/a bit-identical to the reference implementation, so rounding ties
// fall the same way; the loops are branch-free so the compiler vectorizes them at the variant's width. Every
// operation is per element and the sum has 16 fixed double lanes, so the width changes nothing in the results.

static inline float FN(rhe_clamped)(float v, float lo, float hi) {
    float c = v < lo ? lo : v;
    c = c > hi ? hi : c;
    return (c + 0x1.8p23f) - 0x1.8p23f;  // round half to even for |c| < 2^22
}

static void FN(lsq_act_forward)(const float *restrict x, float a, float lo, float hi, float *restrict y, long n) {
    for (long i = 0; i < n; i++) y[i] = FN(rhe_clamped)(x[i] / a, lo, hi) * a;
}

static double FN(lsq_act_backward)(const float *restrict x, float a, float lo, float hi, const float *restrict gy,
                                   float *restrict gx, long n) {
    // Sixteen double partial sums, one per lane: a fixed order (deterministic) that still vectorizes.
    enum { L = 16 };
    double acc[L] = {0};
    long i = 0;
    for (; i + L <= n; i += L) {
        float t[L];
        for (int j = 0; j < L; j++) {
            float go = gy[i + j], u = x[i + j] / a;
            gx[i + j] = (u >= lo && u <= hi) ? go : 0.0f;
            float inside = FN(rhe_clamped)(u, lo, hi) - u;
            t[j] = go * (u < lo ? lo : (u > hi ? hi : inside));
        }
        for (int j = 0; j < L; j++) acc[j] += (double)t[j];
    }
    double s = 0;
    for (; i < n; i++) {
        float go = gy[i], u = x[i] / a;
        gx[i] = (u >= lo && u <= hi) ? go : 0.0f;
        float inside = FN(rhe_clamped)(u, lo, hi) - u;
        s += (double)(go * (u < lo ? lo : (u > hi ? hi : inside)));
    }
    for (int j = 0; j < L; j++) s += acc[j];
    return s;
}

const bs_kernel_table FN(bs__kernels) = {
    .conv3x3_fwd = FN(conv3x3_fwd),
    .conv3x3_dw = FN(conv3x3_dw),
    .tapconv_fwd = FN(tapconv_fwd),
    .tapconv_dw = FN(tapconv_dw),
    .lsq_act_forward = FN(lsq_act_forward),
    .lsq_act_backward = FN(lsq_act_backward),
};
