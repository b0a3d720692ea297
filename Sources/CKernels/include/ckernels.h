#ifndef BITSWITCH_CKERNELS_H
#define BITSWITCH_CKERNELS_H

#include <stdint.h>

// Float kernels of the executor and the training engine. Layout is NCHW; 1-D and 2-D spatial ops are
// run as 3-D with leading extents of 1, so one kernel serves all spatial ranks.

/// Spatial geometry of a convolution or pooling window (3-D; unused leading dims have extent 1).
typedef struct {
    long d, h, w;        // input extents
    long od, oh, ow;     // output extents
    long kd, kh, kw;     // kernel extents
    long sd, sh, sw;     // strides
    long pd, ph, pw;     // begin pads
    long dd, dh, dw;     // dilations
} bs_geom;

// ---- convolution ----
/// col[(c*KD*KH*KW + k)][n*S + s] for nb images of C channels, channels [c0, c1) only (S = output spatial size).
void bs_im2col_f32(const float *x, float *col, long nb, long C, long c0, long c1, const bs_geom *g);
/// Inverse scatter of im2col for channels [c0, c1): dx += col2im(col). Zeroes col's padding entries.
void bs_col2im_f32(float *col, float *dx, long nb, long C, long c0, long c1, const bs_geom *g);
/// dst[c][n*S + s] = src[n][c][s] for n < nb.
void bs_pack_cn_f32(const float *src, float *dst, long nb, long C, long S);
/// dst[n][c][s] = src[c][n*S + s] (+ bias[c] when bias != NULL).
void bs_unpack_cn_f32(const float *src, float *dst, long nb, long C, long S, const float *bias);
/// Depthwise conv: output channel co reads input channel co / mult. y is [N, C*mult, spatial...].
/// Returns -1 when its padded-plane scratch cannot be allocated.
int bs_dwconv_fwd_f32(const float *x, const float *w, const float *b, float *y, long N, long C, long mult,
                       const bs_geom *g);
/// Depthwise backward: dx (accumulated, may be NULL), dw (accumulated). Returns -1 on allocation failure.
int bs_dwconv_bwd_f32(const float *x, const float *w, const float *gy, float *dx, float *dw, long N, long C,
                       long mult, const bs_geom *g);
/// db[c] = sum over n, s of gy[n][c][s].
void bs_channel_sum_f32(const float *gy, float *db, long N, long C, long S);

// ---- direct 3x3 convolution (stride 1, pad 1, dilation 1, group 1) on the grid layout ----
// Grid layout of a [N, C, H, W] tensor: C planes of `plane` floats; plane origin at `front`; image n row i
// column j at (1 + n*(H+1) + i)*wp + j with wp = W + 1; all other positions (one zero column per row, one
// zero row per image and above the first) and the slack are zero. Outputs are computed for `blocks` runs of
// BS_CONV3_NB positions starting at q0; output channels in blocks of BS_CONV3_MR.
enum { BS_CONV3_MR = 8, BS_CONV3_NB = 48 };
typedef struct { long n, h, w, wp, q0, blocks, front, plane; } bs_grid;
void bs_grid_init(bs_grid *g, long n, long h, long w);
/// Writes planes [c0, c1) of buf from x [N, C, H, W]; planes c >= C are all zero.
void bs_grid_pack_f32(const float *x, float *buf, long C, long c0, long c1, const bs_grid *g);
/// Packs w [M, C, 3, 3] for bs_conv3x3_fwd_f32: (M+MR-1)/MR*MR*C*9 floats. transpose != 0 packs the weights of
/// the input-gradient convolution instead (C output rows over M inputs, taps mirrored): (C+MR-1)/MR*MR*M*9.
void bs_conv3x3_pack_weights(const float *w, float *wpk, long M, long C, int transpose);
/// y [N, M, H, W] = conv of xg (grid, C planes) (+ bias[m] when bias != NULL) for position blocks [b0, b1).
void bs_conv3x3_fwd_f32(const float *xg, const float *wpk, float *y, const float *bias, long M, long C, long b0,
                        long b1, const bs_grid *g);
/// dw [M, C, 3, 3] += correlation of dyg (grid, round-up(M, MR) planes, zero at every non-image position) with
/// xg (C planes), for tasks [t0, t1) of (M+MR-1)/MR * C (task = m block * C + channel). acc is scratch of
/// tasks * MR * 9 * 16 floats indexed by task.
void bs_conv3x3_dw_f32(const float *dyg, const float *xg, float *acc, float *dw, long M, long C, long t0, long t1,
                       const bs_grid *g);

// Generic tap-list convolution on grids (used for strided and 1x1 convolutions): output position q of the
// grid sums wpk-weighted reads of xg at q + koff[k] (koff includes plane * g->plane) over k < K.
/// Destination of grid pixel (i, j): plane of h x w, element (s*i + oy, s*j + ox); outside pixels are skipped.
typedef struct { long h, w, s, oy, ox; } bs_out;
/// Planes c*np + (pr*s + pc) of buf [c in c0..c1) hold x[n][c][s*i + pr][s*j + pc] on grid g (output-sized),
/// for the first np <= s*s phases (np = 1 when only the (0, 0) phase is read, as by a 1x1 kernel).
void bs_grid_pack_phases_f32(const float *x, float *buf, long C, long H, long W, long s, long np, long c0, long c1,
                             const bs_grid *g);
/// wpk[m/MR][k][m%MR] = w[m*S + sel[k]], (M+MR-1)/MR*MR*K floats.
void bs_tapconv_pack_weights(const float *w, float *wpk, long M, long K, const long *sel, long S);
/// y [N, M, o->h, o->w] (strided elements only, see bs_out) = tap conv of xg (+ bias) for blocks [b0, b1).
void bs_tapconv_fwd_f32(const float *xg, const long *koff, long K, const float *wpk, float *y, const float *bias,
                        long M, long b0, long b1, const bs_grid *g, const bs_out *o);
/// dw [M, K] += correlation of dyg (grid, round-up(M, MR) planes, zero off the image) with the K taps of xg,
/// for tasks [t0, t1) of (M+MR-1)/MR * ceil(K/3); acc: tasks * MR * 3 * 16 floats of scratch, by task.
void bs_tapconv_dw_f32(const float *dyg, const float *xg, const long *koff, long K, float *acc, float *dw, long M,
                       long t0, long t1, const bs_grid *g);

// ---- pooling (planes = N*C) ----
/// argmax (may be NULL) receives the flat index into x of each output's maximum.
void bs_maxpool_f32(const float *x, float *y, int32_t *argmax, long planes, const bs_geom *g);
/// 2x2 window, stride 2, no padding, floor-mode output (oh <= h/2, ow <= w/2); argmax gets base + the flat
/// index into x. Same result as bs_maxpool_f32.
void bs_maxpool2x2_f32(const float *x, float *y, int32_t *argmax, long planes, long h, long w, long oh, long ow,
                       long base);
void bs_maxpool_bwd_f32(const float *gy, const int32_t *argmax, float *dx, long n);
/// pe*: end pads (count_include_pad counts taps inside [-pbegin, in + pend)).
void bs_avgpool_f32(const float *x, float *y, long planes, const bs_geom *g, long ped, long peh, long pew,
                    int count_include_pad);
void bs_avgpool_bwd_f32(const float *gy, float *dx, long planes, const bs_geom *g, long ped, long peh, long pew,
                        int count_include_pad);

// ---- elementwise ----
enum { BS_ADD = 0, BS_SUB = 1, BS_MUL = 2, BS_DIV = 3 };
/// Broadcasting binary op over `ndim` dims with element strides (0 on broadcast dims) for a and b.
void bs_binary_f32(int op, const float *a, const float *b, float *y, int ndim, const long *shape,
                   const long *astride, const long *bstride);

enum { BS_RELU = 0, BS_LEAKY_RELU = 1, BS_SIGMOID = 2, BS_HARD_SIGMOID = 3, BS_HARD_SWISH = 4, BS_TANH = 5,
       BS_CLIP = 6 };
/// p0/p1: LeakyRelu alpha; HardSigmoid alpha, beta; Clip min, max.
void bs_unary_f32(int op, const float *x, float *y, long n, float p0, float p1);

/// Softmax over the middle extent of [outer, n, inner]; log != 0 gives LogSoftmax.
void bs_softmax_f32(const float *x, float *y, long outer, long n, long inner, int log);
/// y[n][c][s] = x[n][c][s] * a[c] + b[c].
void bs_channel_affine_f32(const float *x, float *y, long N, long C, long S, const float *a, const float *b);

/// Keeps freed multi-MB blocks in the heap (glibc mallopt) so tensor reuse does not page-fault. Idempotent.
void bs_configure_allocator(void);

// LSQ activation fake-quantizer: y = clamp(rhe(x / a), lo, hi) · a.
void bs_lsq_act_forward_f32(const float *x, float a, float lo, float hi, float *y, long n);
// Writes gx = gy · [lo ≤ x/a ≤ hi]; returns Σ gy · (lo | hi | rhe(x/a) − x/a), the unscaled scale gradient.
double bs_lsq_act_backward_f32(const float *x, float a, float lo, float hi, const float *gy, float *gx, long n);

// ---- run-time kernel selection ----
// CKernels is compiled for the portable baseline of the architecture. The hot kernels (the direct and tap-list
// convolutions and the LSQ quantizer) also exist as AVX2+FMA and AVX-512 variants on x86-64; the bs_* entry points
// above call the variant chosen once, on first use, from the CPU's features: the widest one the CPU and OS
// support, or the one the environment variable BITSWITCH_ISA names (generic, avx2, avx512). Every variant returns
// bit-identical results (fused multiply-adds and partial sums in the same order), so the choice changes speed only.
enum { BS_ISA_GENERIC = 0, BS_ISA_AVX2 = 1, BS_ISA_AVX512 = 2, BS_ISA_COUNT = 3 };

/// The dispatched kernels of one ISA (same contracts as the bs_* functions of the same names).
typedef struct {
    void (*conv3x3_fwd)(const float *xg, const float *wpk, float *y, const float *bias, long M, long C, long b0,
                        long b1, const bs_grid *g);
    void (*conv3x3_dw)(const float *dyg, const float *xg, float *acc, float *dw, long M, long C, long t0, long t1,
                       const bs_grid *g);
    void (*tapconv_fwd)(const float *xg, const long *koff, long K, const float *wpk, float *y, const float *bias,
                        long M, long b0, long b1, const bs_grid *g, const bs_out *o);
    void (*tapconv_dw)(const float *dyg, const float *xg, const long *koff, long K, float *acc, float *dw, long M,
                       long t0, long t1, const bs_grid *g);
    void (*lsq_act_forward)(const float *x, float a, float lo, float hi, float *y, long n);
    double (*lsq_act_backward)(const float *x, float a, float lo, float hi, const float *gy, float *gx, long n);
} bs_kernel_table;

/// 1 when this build has the variant and this CPU (and OS) can run it; generic always can.
int bs_isa_supported(int isa);
/// The variant the bs_* kernels use (chosen on the first call of any of them or of this function).
int bs_isa_active(void);
/// Makes the bs_* kernels use `isa` from now on; returns -1 and changes nothing when it is not supported.
/// Not for use while kernels run on other threads (they would finish on the old variant, with the same results).
int bs_isa_set(int isa);
/// "generic", "avx2", "avx512"; NULL for an unknown value.
const char *bs_isa_name(int isa);
/// The kernels of one variant, for tests that compare variants; NULL when not supported here.
const bs_kernel_table *bs_isa_kernels(int isa);

#endif
