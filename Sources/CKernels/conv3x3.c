#include "isa_internal.h"
#include <string.h>

// Direct 3x3, stride-1, pad-1 convolution on the "grid" layout (see ckernels.h). In the grid every image row
// is followed by one zero column and every image by one zero row, so the 9 taps of any output position are
// the input at that position plus fixed offsets (-wp-1 ... wp+1). A run of consecutive positions then reads
// consecutive inputs: the inner loops are plain vector loads with no im2col matrix and no bounds checks.
// Outputs at the zero positions are junk and never stored.
//
// This file holds the layout code (grids, packing, position runs); the kernels themselves are in
// isa_kernels_tmpl.h, built once per ISA, and bs_conv3x3_fwd_f32 & co. in isa.c call the variant for this CPU.

enum { MR = BS_CONV3_MR, NB = BS_CONV3_NB };

void bs_grid_init(bs_grid *g, long n, long h, long w) {
    g->n = n; g->h = h; g->w = w;
    g->wp = w + 1;
    const long rows = n * (h + 1) + 1;
    const long grid = rows * g->wp;
    g->q0 = g->wp;
    const long span = (n * (h + 1) - 1) * g->wp;
    g->blocks = (span + NB - 1) / NB;
    // The first image position (q0 = wp) sits on a 64-byte boundary (planes are whole 16-float lines), so the
    // dW kernel's 16-lane position groups are cache-line aligned in every plane.
    g->front = 16 + (16 - g->wp % 16) % 16;
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

// Runs of a position block that land on consecutive elements of one image plane in NCHW.
int bs__block_runs(long q, const bs_grid *g, bs_run *out) {
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
