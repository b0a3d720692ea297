#include "ckernels.h"
#include <string.h>

// Direct 3x3, stride-1, pad-1 convolution on the "grid" layout (see ckernels.h). In the grid every image row
// is followed by one zero column and every image by one zero row, so the 9 taps of any output position are
// the input at that position plus fixed offsets (-wp-1 ... wp+1). A run of consecutive positions then reads
// consecutive inputs: the inner loops are plain vector loads with no im2col matrix and no bounds checks.
// Outputs at the zero positions are junk and never stored.

// The generic vector type compiles to one zmm register with AVX-512 and to halves elsewhere.
typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4)));
static inline v16 ld(const float *p) { return *(const v16u *)p; }
static inline void st(float *p, v16 v) { *(v16u *)p = v; }

enum { MR = BS_CONV3_MR, NB = BS_CONV3_NB };

void bs_grid_init(bs_grid *g, long n, long h, long w) {
    g->n = n; g->h = h; g->w = w;
    g->wp = w + 1;
    const long rows = n * (h + 1) + 1;
    const long grid = rows * g->wp;
    g->q0 = g->wp;
    const long span = (n * (h + 1) - 1) * g->wp;
    g->blocks = (span + NB - 1) / NB;
    g->front = 16;
    // Reads reach wp + 1 past the last computed position, which is at most grid + NB - 1.
    g->plane = (g->front + grid + NB + g->wp + 2 + 15) / 16 * 16;
}

void bs_grid_pack_f32(const float *x, float *buf, long C, long c0, long c1, const bs_grid *g) {
    const long h = g->h, w = g->w, wp = g->wp, hw = h * w;
    for (long c = c0; c < c1; c++) {
        float *p = buf + c * g->plane;
        if (c >= C) { memset(p, 0, sizeof(float) * g->plane); continue; }
        float *o = p + g->front;
        memset(p, 0, sizeof(float) * (g->front + wp));   // front slack and the top zero row
        for (long n = 0; n < g->n; n++) {
            const float *xs = x + (n * C + c) * hw;
            float *r = o + (1 + n * (h + 1)) * wp;
            // Rows are short (4-32 floats): an inline copy beats a memcpy call per row.
            for (long i = 0; i < h; i++, r += wp) {
                const float *src = xs + i * w;
                for (long j = 0; j < w; j++) r[j] = src[j];
                r[w] = 0;
            }
            for (long j = 0; j < wp; j++) r[j] = 0;       // the zero row after the image
        }
        const long used = g->front + (g->n * (h + 1) + 1) * wp;
        memset(p + used, 0, sizeof(float) * (g->plane - used));
    }
}

void bs_conv3x3_pack_weights(const float *w, float *wpk, long M, long C, int transpose) {
    // Forward: wpk[m/MR][c][t][m%MR] = w[m][c][t]. Transposed (for dX): the roles of M and C swap and the
    // taps are mirrored, wpk[c/MR][m][t][c%MR] = w[m][c][8-t]; rows past the real count are zero.
    const long rows = transpose ? C : M, inner = transpose ? M : C;
    const long blocks = (rows + MR - 1) / MR;
    for (long b = 0; b < blocks; b++)
        for (long k = 0; k < inner; k++)
            for (long t = 0; t < 9; t++)
                for (long i = 0; i < MR; i++) {
                    const long r = b * MR + i;
                    float v = 0;
                    if (r < rows) v = transpose ? w[(k * C + r) * 9 + (8 - t)] : w[(r * C + k) * 9 + t];
                    wpk[((b * inner + k) * 9 + t) * MR + i] = v;
                }
}

static inline void taps(long wp, long off[9]) {
    for (int t = 0; t < 9; t++) off[t] = (t / 3 - 1) * wp + (t % 3 - 1);
}

// Runs of a position block that land on consecutive elements of one image plane in NCHW.
typedef struct { int k, len; long n, pix; } run;

static int block_runs(long q, const bs_grid *g, run *out) {
    const long wp = g->wp, h = g->h, w = g->w;
    // Row r of the grid holds image row i of image n (i == h: a zero row); walk the block without divisions.
    long r = q / wp - 1, j = q % wp;
    long n = r < 0 ? -1 : r / (h + 1), i = r < 0 ? h : r % (h + 1);
    int cnt = 0, k = 0;
    while (k < NB) {
        const int len = (int)(wp - j < NB - k ? wp - j : NB - k);   // rest of this grid row inside the block
        if (n >= 0 && n < g->n && i < h && j < w) {
            const int vl = (int)(w - j < len ? w - j : len);
            out[cnt].k = k; out[cnt].len = vl; out[cnt].n = n; out[cnt].pix = i * w + j; cnt++;
        }
        k += len; j += len;
        if (j == wp) { j = 0; if (++i > h) { i = 0; n++; } }
    }
    return cnt;
}

void bs_conv3x3_fwd_f32(const float *xg, const float *wpk, float *y, const float *bias, long M, long C, long b0,
                        long b1, const bs_grid *g) {
    long off[9];
    taps(g->wp, off);
    const long P = g->plane, mblocks = (M + MR - 1) / MR, hw = g->h * g->w;
    const float *x0 = xg + g->front;
    run runs[NB];
    float tile[MR][NB] __attribute__((aligned(64)));
    for (long b = b0; b < b1; b++) {
        const long q = g->q0 + b * NB;
        const int nr = block_runs(q, g, runs);
        if (nr == 0) continue;
        for (long mb = 0; mb < mblocks; mb++) {
            const float *wb = wpk + mb * C * 9 * MR;
            v16 a[MR][3];
            for (int i = 0; i < MR; i++) a[i][0] = a[i][1] = a[i][2] = (v16){0};
            for (long c = 0; c < C; c++) {
                const float *xc = x0 + c * P + q;
                const float *wc = wb + c * 9 * MR;
#pragma GCC unroll 9
                for (int t = 0; t < 9; t++) {
                    const float *xp = xc + off[t];
                    const v16 v0 = ld(xp), v1 = ld(xp + 16), v2 = ld(xp + 32);
#pragma GCC unroll 8
                    for (int i = 0; i < MR; i++) {
                        const float s = wc[t * MR + i];
                        a[i][0] += v0 * s; a[i][1] += v1 * s; a[i][2] += v2 * s;
                    }
                }
            }
            // Straight to NCHW while the tile is in L1: no output grid and no separate unpack pass.
            for (int i = 0; i < MR; i++) { st(tile[i], a[i][0]); st(tile[i] + 16, a[i][1]); st(tile[i] + 32, a[i][2]); }
            for (int i = 0; i < MR; i++) {
                const long m = mb * MR + i;
                if (m >= M) break;
                const float bv = bias ? bias[m] : 0.0f;
                for (int r = 0; r < nr; r++) {
                    float *dst = y + (runs[r].n * M + m) * hw + runs[r].pix;
                    const float *src = tile[i] + runs[r].k;
                    for (int k = 0; k < runs[r].len; k++) dst[k] = src[k] + bv;
                }
            }
        }
    }
}

enum { QB = 1024 };   // positions per dW pass: one block of MR dY rows (32 KB) stays in L1/L2

void bs_conv3x3_dw_f32(const float *dyg, const float *xg, float *acc, float *dw, long M, long C, long t0, long t1,
                       const bs_grid *g) {
    // Task t = (m block, input channel). Each keeps MR x 9 vector partial sums in acc (task-major), summed
    // over positions in a fixed block order, so the result does not depend on how tasks are split.
    const long P = g->plane, wp = g->wp, end = g->q0 + g->blocks * NB;
    const float *dy0 = dyg + g->front, *x0 = xg + g->front;
    float *ab = acc + t0 * MR * 9 * 16;
    memset(ab, 0, sizeof(float) * (t1 - t0) * MR * 9 * 16);
    for (long qs = g->q0; qs < end; qs += QB) {
        const long qe = qs + QB < end ? qs + QB : end;
        for (long t = t0; t < t1; t++) {
            const long mb = t / C, c = t % C;
            const float *dy = dy0 + mb * MR * P;
            float *at = acc + t * MR * 9 * 16;
            for (int kh = 0; kh < 3; kh++) {
                const float *xr = x0 + c * P + (kh - 1) * wp - 1;
                v16 a[MR][3];
                for (int i = 0; i < MR; i++)
                    for (int j = 0; j < 3; j++) a[i][j] = ld(at + (i * 9 + kh * 3 + j) * 16);
                for (long q = qs; q < qe; q += 16) {
                    const v16 u0 = ld(xr + q), u1 = ld(xr + q + 1), u2 = ld(xr + q + 2);
#pragma GCC unroll 8
                    for (int i = 0; i < MR; i++) {
                        const v16 d = ld(dy + i * P + q);
                        a[i][0] += d * u0; a[i][1] += d * u1; a[i][2] += d * u2;
                    }
                }
                for (int i = 0; i < MR; i++)
                    for (int j = 0; j < 3; j++) st(at + (i * 9 + kh * 3 + j) * 16, a[i][j]);
            }
        }
    }
    for (long t = t0; t < t1; t++) {
        const long mb = t / C, c = t % C;
        const float *at = acc + t * MR * 9 * 16;
        for (int i = 0; i < MR; i++) {
            const long m = mb * MR + i;
            if (m >= M) break;
            for (int k = 0; k < 9; k++) {
                const float *v = at + (i * 9 + k) * 16;
                // Pairwise, so the sum is as accurate as the vector partials allow.
                float s8[8];
                for (int l = 0; l < 8; l++) s8[l] = v[l] + v[l + 8];
                const float s = ((s8[0] + s8[4]) + (s8[2] + s8[6])) + ((s8[1] + s8[5]) + (s8[3] + s8[7]));
                dw[(m * C + c) * 9 + k] += s;
            }
        }
    }
}

// ---- generic tap lists: strided and 1x1 convolutions on phase-split grids ----
// A stride-s convolution reads input row s*i + kh - p. Splitting the input into s*s phase planes (rows and
// columns by residue mod s) turns every tap into a shifted read of one phase plane on the output-sized grid,
// so the same vector loop as the 3x3 kernel applies with a list of (plane, offset) taps.

void bs_grid_pack_phases_f32(const float *x, float *buf, long C, long H, long W, long s, long np, long c0, long c1,
                             const bs_grid *g) {
    const long ho = g->h, wo = g->w, wp = g->wp, hw = H * W;
    for (long c = c0; c < c1; c++)
        for (long ph = 0; ph < np; ph++) {
            const long pr = ph / s, pc = ph % s;
            float *p = buf + (c * np + ph) * g->plane;
            memset(p, 0, sizeof(float) * g->plane);
            float *o = p + g->front;
            for (long n = 0; n < g->n; n++) {
                const float *xs = x + (n * C + c) * hw;
                for (long i = 0; i < ho; i++) {
                    const long r = s * i + pr;
                    if (r >= H) break;
                    float *d = o + (1 + n * (ho + 1) + i) * wp;
                    const float *src = xs + r * W + pc;
                    for (long j = 0; j < wo && s * j + pc < W; j++) d[j] = src[s * j];
                }
            }
        }
}

void bs_tapconv_pack_weights(const float *w, float *wpk, long M, long K, const long *sel, long S) {
    // wpk[m/MR][k][m%MR] = w[m*S + sel[k]] (rows past M are zero).
    const long blocks = (M + MR - 1) / MR;
    for (long b = 0; b < blocks; b++)
        for (long k = 0; k < K; k++)
            for (long i = 0; i < MR; i++) {
                const long m = b * MR + i;
                wpk[(b * K + k) * MR + i] = m < M ? w[m * S + sel[k]] : 0.0f;
            }
}

void bs_tapconv_fwd_f32(const float *xg, const long *koff, long K, const float *wpk, float *y, const float *bias,
                        long M, long b0, long b1, const bs_grid *g, const bs_out *o) {
    const long mblocks = (M + MR - 1) / MR, ohw = o->h * o->w;
    const float *x0 = xg + g->front;
    run runs[NB];
    float tile[MR][NB] __attribute__((aligned(64)));
    for (long b = b0; b < b1; b++) {
        const long q = g->q0 + b * NB;
        const int nr = block_runs(q, g, runs);
        if (nr == 0) continue;
        for (long mb = 0; mb < mblocks; mb++) {
            const float *wb = wpk + mb * K * MR;
            v16 a[MR][3];
            for (int i = 0; i < MR; i++) a[i][0] = a[i][1] = a[i][2] = (v16){0};
            for (long k = 0; k < K; k++) {
                const float *xp = x0 + koff[k] + q;
                const v16 v0 = ld(xp), v1 = ld(xp + 16), v2 = ld(xp + 32);
                const float *wk = wb + k * MR;
#pragma GCC unroll 8
                for (int i = 0; i < MR; i++) {
                    const float s = wk[i];
                    a[i][0] += v0 * s; a[i][1] += v1 * s; a[i][2] += v2 * s;
                }
            }
            for (int i = 0; i < MR; i++) { st(tile[i], a[i][0]); st(tile[i] + 16, a[i][1]); st(tile[i] + 32, a[i][2]); }
            for (int i = 0; i < MR; i++) {
                const long m = mb * MR + i;
                if (m >= M) break;
                const float bv = bias ? bias[m] : 0.0f;
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
                    if (o->s == 1) { for (long k = 0; k < len; k++) dst[k] = src[k] + bv; }   // vectorizes
                    else { for (long k = 0; k < len; k++) dst[k * o->s] = src[k] + bv; }
                }
            }
        }
    }
}

void bs_tapconv_dw_f32(const float *dyg, const float *xg, const long *koff, long K, float *acc, float *dw, long M,
                       long t0, long t1, const bs_grid *g) {
    // Task t = (m block, triple of taps); taps past K read plane 0 and are dropped.
    const long P = g->plane, end = g->q0 + g->blocks * NB, triples = (K + 2) / 3;
    const float *dy0 = dyg + g->front, *x0 = xg + g->front;
    memset(acc + t0 * MR * 3 * 16, 0, sizeof(float) * (t1 - t0) * MR * 3 * 16);
    for (long qs = g->q0; qs < end; qs += QB) {
        const long qe = qs + QB < end ? qs + QB : end;
        for (long t = t0; t < t1; t++) {
            const long mb = t / triples, k0 = (t % triples) * 3;
            const float *dy = dy0 + mb * MR * P;
            const float *x1 = x0 + koff[k0];
            const float *x2 = x0 + (k0 + 1 < K ? koff[k0 + 1] : 0);
            const float *x3 = x0 + (k0 + 2 < K ? koff[k0 + 2] : 0);
            float *at = acc + t * MR * 3 * 16;
            v16 a[MR][3];
            for (int i = 0; i < MR; i++)
                for (int j = 0; j < 3; j++) a[i][j] = ld(at + (i * 3 + j) * 16);
            for (long q = qs; q < qe; q += 16) {
                const v16 u0 = ld(x1 + q), u1 = ld(x2 + q), u2 = ld(x3 + q);
#pragma GCC unroll 8
                for (int i = 0; i < MR; i++) {
                    const v16 d = ld(dy + i * P + q);
                    a[i][0] += d * u0; a[i][1] += d * u1; a[i][2] += d * u2;
                }
            }
            for (int i = 0; i < MR; i++)
                for (int j = 0; j < 3; j++) st(at + (i * 3 + j) * 16, a[i][j]);
        }
    }
    for (long t = t0; t < t1; t++) {
        const long mb = t / triples, k0 = (t % triples) * 3;
        const float *at = acc + t * MR * 3 * 16;
        for (int i = 0; i < MR; i++) {
            const long m = mb * MR + i;
            if (m >= M) break;
            for (int j = 0; j < 3 && k0 + j < K; j++) {
                const float *v = at + (i * 3 + j) * 16;
                float s8[8];
                for (int l = 0; l < 8; l++) s8[l] = v[l] + v[l + 8];
                dw[m * K + k0 + j] += ((s8[0] + s8[4]) + (s8[2] + s8[6])) + ((s8[1] + s8[5]) + (s8[3] + s8[7]));
            }
        }
    }
}
