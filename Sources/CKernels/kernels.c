#include "ckernels.h"
#include <math.h>
#include <stdlib.h>
#include <malloc.h>
#include <string.h>

// Ceil division for b > 0 and any sign of a.
static inline long cdiv(long a, long b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }
static inline long fdiv(long a, long b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// Output range [lo, hi) along one dim whose input index o*s - p + k*dl lies in [0, n).
static inline void valid_range(long n, long out, long s, long p, long off, long *lo, long *hi) {
    // off = k*dl - p; need 0 <= o*s + off < n
    long l = cdiv(-off, s);
    long h = fdiv(n - 1 - off, s) + 1;
    if (l < 0) l = 0;
    if (h > out) h = out;
    if (h < l) h = l;
    *lo = l; *hi = h;
}

void bs_im2col_f32(const float *x, float *col, long nb, long C, long c0, long c1, const bs_geom *g) {
    // Channel-outer, image-inner: each col row is written sequentially, and one channel's planes of all
    // images stay cached across the kernel offsets that reread them.
    const long K = g->kd * g->kh * g->kw, plane = g->d * g->h * g->w, osp = g->od * g->oh * g->ow;
    const long ld = nb * osp;
    for (long c = c0; c < c1; c++)
    for (long kd = 0; kd < g->kd; kd++)
    for (long kh = 0; kh < g->kh; kh++)
    for (long kw = 0; kw < g->kw; kw++) {
        float *row = col + (c * K + (kd * g->kh + kh) * g->kw + kw) * ld;
        long wlo, whi;
        const long woff = kw * g->dw - g->pw;
        valid_range(g->w, g->ow, g->sw, g->pw, woff, &wlo, &whi);
        long hlo, hhi;
        const long hoff = kh * g->dh - g->ph;
        valid_range(g->h, g->oh, g->sh, g->ph, hoff, &hlo, &hhi);
        const int fast = g->sw == 1 && g->sh == 1 && g->ow == g->w;
        for (long n = 0; n < nb; n++) {
            const float *xc = x + (n * C + c) * plane;
            float *rn = row + n * osp;
            for (long od = 0; od < g->od; od++) {
                const long id = od * g->sd - g->pd + kd * g->dd;
                if (id < 0 || id >= g->d) { memset(rn + od * g->oh * g->ow, 0, sizeof(float) * g->oh * g->ow); continue; }
                if (fast) {
                    // Same-width unit-stride rows are contiguous in both x and col: one shifted block copy,
                    // then zero the columns that fell into padding.
                    float *blk = rn + od * g->oh * g->ow;
                    const float *xs = xc + id * g->h * g->w;
                    const long plane2 = g->h * g->w, delta = hoff * g->w + woff;
                    long lo = hlo * g->w, hi = hhi * g->w;
                    for (long j = 0; j < lo; j++) blk[j] = 0;
                    for (long j = hi; j < g->oh * g->ow; j++) blk[j] = 0;
                    long clo = lo + delta < 0 ? -delta : lo, chi = hi + delta > plane2 ? plane2 - delta : hi;
                    for (long j = lo; j < clo; j++) blk[j] = 0;
                    for (long j = chi; j < hi; j++) blk[j] = 0;
                    for (long j = clo; j < chi; j++) blk[j] = xs[j + delta];
                    for (long oh = hlo; oh < hhi; oh++) {
                        float *r = blk + oh * g->ow;
                        for (long ow = 0; ow < wlo; ow++) r[ow] = 0;
                        for (long ow = whi; ow < g->ow; ow++) r[ow] = 0;
                    }
                    continue;
                }
                for (long oh = 0; oh < g->oh; oh++) {
                    float *dst = rn + (od * g->oh + oh) * g->ow;
                    const long ih = oh * g->sh - g->ph + kh * g->dh;
                    if (ih < 0 || ih >= g->h) { for (long ow = 0; ow < g->ow; ow++) dst[ow] = 0; continue; }
                    const float *src = xc + (id * g->h + ih) * g->w + woff;
                    for (long ow = 0; ow < wlo; ow++) dst[ow] = 0;
                    if (g->sw == 1) {
                        for (long ow = wlo; ow < whi; ow++) dst[ow] = src[ow];
                    } else {
                        for (long ow = wlo; ow < whi; ow++) dst[ow] = src[ow * g->sw];
                    }
                    for (long ow = whi; ow < g->ow; ow++) dst[ow] = 0;
                }
            }
        }
    }
}

void bs_col2im_f32(float *col, float *dx, long nb, long C, long c0, long c1, const bs_geom *g) {
    const long K = g->kd * g->kh * g->kw, plane = g->d * g->h * g->w, osp = g->od * g->oh * g->ow;
    const long ld = nb * osp;
    for (long c = c0; c < c1; c++)
    for (long kd = 0; kd < g->kd; kd++)
    for (long kh = 0; kh < g->kh; kh++)
    for (long kw = 0; kw < g->kw; kw++) {
        float *row = col + (c * K + (kd * g->kh + kh) * g->kw + kw) * ld;
        long wlo, whi;
        const long woff = kw * g->dw - g->pw;
        valid_range(g->w, g->ow, g->sw, g->pw, woff, &wlo, &whi);
        long hlo, hhi;
        const long hoff = kh * g->dh - g->ph;
        valid_range(g->h, g->oh, g->sh, g->ph, hoff, &hlo, &hhi);
        const int fast = g->sw == 1 && g->sh == 1 && g->ow == g->w;
        for (long n = 0; n < nb; n++) {
            float *xc = dx + (n * C + c) * plane;
            float *rn = row + n * osp;
            for (long od = 0; od < g->od; od++) {
                const long id = od * g->sd - g->pd + kd * g->dd;
                if (id < 0 || id >= g->d) continue;
                if (fast) {
                    // Mirror of im2col's block copy: padding columns of this scratch row are zeroed first so
                    // the contiguous add puts nothing where they alias neighbouring pixels.
                    float *blk = rn + od * g->oh * g->ow;
                    float *xs = xc + id * g->h * g->w;
                    const long plane2 = g->h * g->w, delta = hoff * g->w + woff;
                    const long lo = hlo * g->w, hi = hhi * g->w;
                    for (long oh = hlo; oh < hhi; oh++) {
                        float *r = blk + oh * g->ow;
                        for (long ow = 0; ow < wlo; ow++) r[ow] = 0;
                        for (long ow = whi; ow < g->ow; ow++) r[ow] = 0;
                    }
                    long clo = lo + delta < 0 ? -delta : lo, chi = hi + delta > plane2 ? plane2 - delta : hi;
                    for (long j = clo; j < chi; j++) xs[j + delta] += blk[j];
                    continue;
                }
                for (long oh = 0; oh < g->oh; oh++) {
                    const long ih = oh * g->sh - g->ph + kh * g->dh;
                    if (ih < 0 || ih >= g->h) continue;
                    const float *src = rn + (od * g->oh + oh) * g->ow;
                    float *dst = xc + (id * g->h + ih) * g->w + woff;
                    if (g->sw == 1) {
                        for (long ow = wlo; ow < whi; ow++) dst[ow] += src[ow];
                    } else {
                        for (long ow = wlo; ow < whi; ow++) dst[ow * g->sw] += src[ow];
                    }
                }
            }
        }
    }
}

void bs_pack_cn_f32(const float *src, float *dst, long nb, long C, long S) {
    for (long n = 0; n < nb; n++)
        for (long c = 0; c < C; c++)
            memcpy(dst + c * nb * S + n * S, src + (n * C + c) * S, sizeof(float) * S);
}

void bs_unpack_cn_f32(const float *src, float *dst, long nb, long C, long S, const float *bias) {
    for (long n = 0; n < nb; n++)
        for (long c = 0; c < C; c++) {
            const float *s = src + c * nb * S + n * S;
            float *d = dst + (n * C + c) * S;
            if (bias) {
                const float bv = bias[c];
                for (long i = 0; i < S; i++) d[i] = s[i] + bv;
            } else {
                memcpy(d, s, sizeof(float) * S);
            }
        }
}

// Depthwise conv works on a zero-padded copy of each plane, so the tap loops need no bounds checks and the
// unit-stride inner loops vectorize.
typedef struct { long d, h, w; } pdims;

static pdims padded_dims(const bs_geom *g) {
    pdims p;
    const long ed = (g->od - 1) * g->sd + (g->kd - 1) * g->dd + 1;
    const long eh = (g->oh - 1) * g->sh + (g->kh - 1) * g->dh + 1;
    const long ew = (g->ow - 1) * g->sw + (g->kw - 1) * g->dw + 1;
    p.d = g->pd + g->d > ed ? g->pd + g->d : ed;
    p.h = g->ph + g->h > eh ? g->ph + g->h : eh;
    p.w = g->pw + g->w > ew ? g->pw + g->w : ew;
    return p;
}

static void pad_plane(const float *x, float *p, const bs_geom *g, pdims pd) {
    memset(p, 0, sizeof(float) * pd.d * pd.h * pd.w);
    for (long d = 0; d < g->d; d++)
        for (long h = 0; h < g->h; h++)
            memcpy(p + ((d + g->pd) * pd.h + h + g->ph) * pd.w + g->pw, x + (d * g->h + h) * g->w, sizeof(float) * g->w);
}

int bs_dwconv_fwd_f32(const float *x, const float *w, const float *b, float *y, long N, long C, long mult,
                       const bs_geom *g) {
    const long K = g->kd * g->kh * g->kw, plane = g->d * g->h * g->w, osp = g->od * g->oh * g->ow;
    const long CO = C * mult, ow = g->ow, sw = g->sw;
    const pdims pd = padded_dims(g);
    float *pp = malloc(sizeof(float) * pd.d * pd.h * pd.w);
    if (!pp) return -1;
    for (long n = 0; n < N; n++)
    for (long ci = 0; ci < C; ci++) {
        pad_plane(x + (n * C + ci) * plane, pp, g, pd);
        for (long m = 0; m < mult; m++) {
            const long co = ci * mult + m;
            const float *wk = w + co * K;
            float *yc = y + (n * CO + co) * osp;
            const float bv = b ? b[co] : 0.0f;
            for (long od = 0; od < g->od; od++)
            for (long oh = 0; oh < g->oh; oh++) {
                float *yr = yc + (od * g->oh + oh) * ow;
                for (long i = 0; i < ow; i++) yr[i] = bv;
                for (long kd = 0; kd < g->kd; kd++)
                for (long kh = 0; kh < g->kh; kh++) {
                    const float *pr = pp + ((od * g->sd + kd * g->dd) * pd.h + oh * g->sh + kh * g->dh) * pd.w;
                    for (long kw = 0; kw < g->kw; kw++) {
                        const float wv = wk[(kd * g->kh + kh) * g->kw + kw];
                        const float *src = pr + kw * g->dw;
                        if (sw == 1) { for (long i = 0; i < ow; i++) yr[i] += wv * src[i]; }
                        else { for (long i = 0; i < ow; i++) yr[i] += wv * src[i * sw]; }
                    }
                }
            }
        }
    }
    free(pp);
    return 0;
}

int bs_dwconv_bwd_f32(const float *x, const float *w, const float *gy, float *dx, float *dw, long N, long C,
                       long mult, const bs_geom *g) {
    const long K = g->kd * g->kh * g->kw, plane = g->d * g->h * g->w, osp = g->od * g->oh * g->ow;
    const long CO = C * mult, ow = g->ow, sw = g->sw;
    const pdims pd = padded_dims(g);
    const long psz = pd.d * pd.h * pd.w;
    float *pp = malloc(sizeof(float) * psz * 2);
    if (!pp) return -1;
    float *dp = pp + psz;
    for (long n = 0; n < N; n++)
    for (long ci = 0; ci < C; ci++) {
        pad_plane(x + (n * C + ci) * plane, pp, g, pd);
        memset(dp, 0, sizeof(float) * psz);
        for (long m = 0; m < mult; m++) {
            const long co = ci * mult + m;
            const float *wk = w + co * K;
            float *dwk = dw + co * K;
            const float *gc = gy + (n * CO + co) * osp;
            for (long od = 0; od < g->od; od++)
            for (long oh = 0; oh < g->oh; oh++) {
                const float *gr = gc + (od * g->oh + oh) * ow;
                for (long kd = 0; kd < g->kd; kd++)
                for (long kh = 0; kh < g->kh; kh++) {
                    const long roff = ((od * g->sd + kd * g->dd) * pd.h + oh * g->sh + kh * g->dh) * pd.w;
                    for (long kw = 0; kw < g->kw; kw++) {
                        const long k = (kd * g->kh + kh) * g->kw + kw;
                        const float wv = wk[k];
                        const float *src = pp + roff + kw * g->dw;
                        float *dsrc = dp + roff + kw * g->dw;
                        float acc = 0;
                        if (sw == 1) {
                            {
                                // Let the sum vectorize; float rounding order does not matter for a gradient.
#pragma clang fp reassociate(on)
                                for (long i = 0; i < ow; i++) acc += gr[i] * src[i];
                            }
                            for (long i = 0; i < ow; i++) dsrc[i] += wv * gr[i];
                        } else {
                            for (long i = 0; i < ow; i++) acc += gr[i] * src[i * sw];
                            for (long i = 0; i < ow; i++) dsrc[i * sw] += wv * gr[i];
                        }
                        dwk[k] += acc;
                    }
                }
            }
        }
        if (dx) {
            float *dxc = dx + (n * C + ci) * plane;
            for (long d = 0; d < g->d; d++)
                for (long h = 0; h < g->h; h++) {
                    const float *s = dp + ((d + g->pd) * pd.h + h + g->ph) * pd.w + g->pw;
                    float *t = dxc + (d * g->h + h) * g->w;
                    for (long i = 0; i < g->w; i++) t[i] += s[i];
                }
        }
    }
    free(pp);
    return 0;
}

void bs_channel_sum_f32(const float *gy, float *db, long N, long C, long S) {
    for (long c = 0; c < C; c++) db[c] = 0;
    for (long n = 0; n < N; n++)
        for (long c = 0; c < C; c++) {
            const float *p = gy + (n * C + c) * S;
            float acc = 0;
            {
#pragma clang fp reassociate(on)
                for (long i = 0; i < S; i++) acc += p[i];
            }
            db[c] += acc;
        }
}

// ---- pooling ----

void bs_maxpool_f32(const float *x, float *y, int32_t *argmax, long planes, const bs_geom *g) {
    const long plane = g->d * g->h * g->w, osp = g->od * g->oh * g->ow;
    for (long p = 0; p < planes; p++) {
        const float *xp = x + p * plane;
        for (long od = 0; od < g->od; od++)
        for (long oh = 0; oh < g->oh; oh++)
        for (long ow = 0; ow < g->ow; ow++) {
            float best = -INFINITY;
            long bi = -1;
            for (long kd = 0; kd < g->kd; kd++) {
                const long id = od * g->sd - g->pd + kd * g->dd;
                if (id < 0 || id >= g->d) continue;
                for (long kh = 0; kh < g->kh; kh++) {
                    const long ih = oh * g->sh - g->ph + kh * g->dh;
                    if (ih < 0 || ih >= g->h) continue;
                    for (long kw = 0; kw < g->kw; kw++) {
                        const long iw = ow * g->sw - g->pw + kw * g->dw;
                        if (iw < 0 || iw >= g->w) continue;
                        const long i = (id * g->h + ih) * g->w + iw;
                        if (bi < 0 || xp[i] > best) { best = xp[i]; bi = i; }
                    }
                }
            }
            const long o = p * osp + (od * g->oh + oh) * g->ow + ow;
            y[o] = bi < 0 ? 0.0f : best;
            if (argmax) argmax[o] = bi < 0 ? -1 : (int32_t)(p * plane + bi);
        }
    }
}

void bs_maxpool_bwd_f32(const float *gy, const int32_t *argmax, float *dx, long n) {
    for (long i = 0; i < n; i++) if (argmax[i] >= 0) dx[argmax[i]] += gy[i];
}

// One window's tap range along a dim, and its count for both count_include_pad conventions.
static inline long tap_count(long o, long s, long p, long k, long dl, long n, long pend, long *padded) {
    long c = 0, cp = 0;
    for (long t = 0; t < k; t++) {
        const long i = o * s - p + t * dl;
        if (i >= 0 && i < n) c++;
        if (i >= -p && i < n + pend) cp++;
    }
    *padded = cp;
    return c;
}

static void avgpool_impl(const float *x, float *y, const float *gy, float *dx, long planes, const bs_geom *g,
                         long ped, long peh, long pew, int cip) {
    const long plane = g->d * g->h * g->w, osp = g->od * g->oh * g->ow;
    for (long od = 0; od < g->od; od++)
    for (long oh = 0; oh < g->oh; oh++)
    for (long ow = 0; ow < g->ow; ow++) {
        long pd, ph, pw;
        const long cd = tap_count(od, g->sd, g->pd, g->kd, g->dd, g->d, ped, &pd);
        const long ch = tap_count(oh, g->sh, g->ph, g->kh, g->dh, g->h, peh, &ph);
        const long cw = tap_count(ow, g->sw, g->pw, g->kw, g->dw, g->w, pew, &pw);
        const long cnt = cip ? pd * ph * pw : cd * ch * cw;
        const float inv = cnt > 0 ? 1.0f / (float)cnt : 0.0f;
        const long o = (od * g->oh + oh) * g->ow + ow;
        for (long p = 0; p < planes; p++) {
            const float *xp = x ? x + p * plane : 0;
            float *dxp = dx ? dx + p * plane : 0;
            const float gv = gy ? gy[p * osp + o] * inv : 0.0f;
            float acc = 0;
            for (long kd = 0; kd < g->kd; kd++) {
                const long id = od * g->sd - g->pd + kd * g->dd;
                if (id < 0 || id >= g->d) continue;
                for (long kh = 0; kh < g->kh; kh++) {
                    const long ih = oh * g->sh - g->ph + kh * g->dh;
                    if (ih < 0 || ih >= g->h) continue;
                    for (long kw = 0; kw < g->kw; kw++) {
                        const long iw = ow * g->sw - g->pw + kw * g->dw;
                        if (iw < 0 || iw >= g->w) continue;
                        const long i = (id * g->h + ih) * g->w + iw;
                        if (xp) acc += xp[i]; else dxp[i] += gv;
                    }
                }
            }
            if (y) y[p * osp + o] = acc * inv;
        }
    }
}

void bs_avgpool_f32(const float *x, float *y, long planes, const bs_geom *g, long ped, long peh, long pew,
                    int count_include_pad) {
    avgpool_impl(x, y, 0, 0, planes, g, ped, peh, pew, count_include_pad);
}

void bs_avgpool_bwd_f32(const float *gy, float *dx, long planes, const bs_geom *g, long ped, long peh, long pew,
                        int count_include_pad) {
    avgpool_impl(0, 0, gy, dx, planes, g, ped, peh, pew, count_include_pad);
}

// ---- elementwise ----

#define BS_INNER(EXPR)                                                                         \
    do {                                                                                        \
        if (ia == 1 && ib == 1) { for (long i = 0; i < n; i++) { float u = a[i], v = b[i]; y[i] = (EXPR); } } \
        else if (ia == 1 && ib == 0) { const float v = b[0]; for (long i = 0; i < n; i++) { float u = a[i]; y[i] = (EXPR); } } \
        else if (ia == 0 && ib == 1) { const float u = a[0]; for (long i = 0; i < n; i++) { float v = b[i]; y[i] = (EXPR); } } \
        else { for (long i = 0; i < n; i++) { float u = a[i * ia], v = b[i * ib]; y[i] = (EXPR); } } \
    } while (0)

static void binary_row(int op, const float *a, const float *b, float *y, long n, long ia, long ib) {
    switch (op) {
    case BS_ADD: BS_INNER(u + v); break;
    case BS_SUB: BS_INNER(u - v); break;
    case BS_MUL: BS_INNER(u * v); break;
    default: BS_INNER(u / v); break;
    }
}

void bs_binary_f32(int op, const float *a, const float *b, float *y, int ndim, const long *shape,
                   const long *astride, const long *bstride) {
    if (ndim == 0) { binary_row(op, a, b, y, 1, 0, 0); return; }
    const long inner = shape[ndim - 1];
    long outer = 1;
    for (int d = 0; d < ndim - 1; d++) outer *= shape[d];
    long idx[64] = {0};
    long aoff = 0, boff = 0;
    for (long o = 0; o < outer; o++) {
        binary_row(op, a + aoff, b + boff, y + o * inner, inner, astride[ndim - 1], bstride[ndim - 1]);
        for (int d = ndim - 2; d >= 0; d--) {
            idx[d]++; aoff += astride[d]; boff += bstride[d];
            if (idx[d] < shape[d]) break;
            aoff -= astride[d] * shape[d]; boff -= bstride[d] * shape[d]; idx[d] = 0;
        }
    }
}

void bs_unary_f32(int op, const float *x, float *y, long n, float p0, float p1) {
    switch (op) {
    case BS_RELU: for (long i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : 0.0f; break;
    case BS_LEAKY_RELU: for (long i = 0; i < n; i++) y[i] = x[i] >= 0 ? x[i] : x[i] * p0; break;
    case BS_SIGMOID:
        for (long i = 0; i < n; i++) {
            // Split by sign so exp never overflows.
            const float v = x[i];
            if (v >= 0) { y[i] = 1.0f / (1.0f + expf(-v)); }
            else { const float e = expf(v); y[i] = e / (1.0f + e); }
        }
        break;
    case BS_HARD_SIGMOID:
        for (long i = 0; i < n; i++) { const float v = p0 * x[i] + p1; y[i] = v < 0 ? 0 : (v > 1 ? 1 : v); }
        break;
    case BS_HARD_SWISH:
        for (long i = 0; i < n; i++) {
            const float v = x[i] / 6.0f + 0.5f;
            y[i] = x[i] * (v < 0 ? 0 : (v > 1 ? 1 : v));
        }
        break;
    case BS_TANH: for (long i = 0; i < n; i++) y[i] = tanhf(x[i]); break;
    default:
        // max then min, so min > max yields max as in ONNX Runtime.
        for (long i = 0; i < n; i++) { float v = x[i]; v = v < p0 ? p0 : v; y[i] = v > p1 ? p1 : v; }
        break;
    }
}

// exp(x) for x <= 0, four lanes at a time with SSE2-sized vector extensions (the baseline every x86-64 has; no libm
// call): x = n ln2 + r, |r| <= ln2/2, n by the 1.5 * 2^23 rounding trick, exp(r) by Cephes' degree-6 polynomial,
// times 2^n from the exponent bits; relative error at most 8.3e-8 against exp in double (measured on every float in
// [-87, 0]). Below -87.3, where expf is subnormal or 0, it gives 0; NaN stays NaN.
typedef float bs_v4f __attribute__((vector_size(16)));
typedef int32_t bs_v4i __attribute__((vector_size(16)));

static inline bs_v4f bs_select4(bs_v4i mask, bs_v4f a, bs_v4f b) {
    return (bs_v4f)(((bs_v4i)a & mask) | ((bs_v4i)b & ~mask));
}

static inline bs_v4f bs_exp4_nonpos(bs_v4f x) {
    const bs_v4f floor_ = {-87.3f, -87.3f, -87.3f, -87.3f};
    const bs_v4i under = x < floor_;
    const bs_v4f c = bs_select4(under, floor_, x);
    const bs_v4f t = c * 1.44269504088896341f + 12582912.0f;
    const bs_v4f n = t - 12582912.0f;
    const bs_v4f r = (c - n * 0.693359375f) + n * 2.12194440e-4f;
    bs_v4f p = r * 1.9875691500e-4f + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const bs_v4f e = p * r * r + r + 1.0f;
    const bs_v4f scale = (bs_v4f)((__builtin_convertvector(n, bs_v4i) + 127) << 23);
    const bs_v4f zero = {0, 0, 0, 0};
    return bs_select4(x != x, x, bs_select4(under, zero, e * scale));
}

// Up to 4 floats through the vector exp (the tail of a row gets the same arithmetic as its body).
static inline bs_v4f bs_load4(const float *p, long count) {
    bs_v4f v = {0, 0, 0, 0};
    memcpy(&v, p, (size_t)count * sizeof(float));
    return v;
}

// One softmax row of n contiguous floats (inner == 1, the transformer case): max, exp and sum four lanes at a time
// (the lanes' partial sums added in a fixed order, so the result depends on nothing but the row).
static void bs_softmax_row(const float *xp, float *yp, long n, int log) {
    float m = -INFINITY;
    int nan = 0;
    for (long j = 0; j < n; j++) { m = xp[j] > m ? xp[j] : m; nan |= xp[j] != xp[j]; }
    if (nan) m = NAN;            // NaN anywhere: NaN everywhere, as before
    if (m == -INFINITY) m = 0;   // an all -inf row: every exp is 0, the sum 0, 0 * inf NaN, as before
    bs_v4f s4 = {0, 0, 0, 0};
    long i = 0;
    for (; i + 4 <= n; i += 4) {
        bs_v4f v;
        memcpy(&v, xp + i, sizeof v);
        const bs_v4f e = bs_exp4_nonpos(v - m);
        if (!log) memcpy(yp + i, &e, sizeof e);
        s4 += e;
    }
    if (i < n) {
        const long rest = n - i;
        bs_v4f e = bs_exp4_nonpos(bs_load4(xp + i, rest) - m);
        for (long l = rest; l < 4; l++) e[l] = 0;
        if (!log) memcpy(yp + i, &e, (size_t)rest * sizeof(float));
        s4 += e;
    }
    const float s = (s4[0] + s4[1]) + (s4[2] + s4[3]);
    if (log) {
        const float ls = logf(s);
        for (long j = 0; j < n; j++) yp[j] = xp[j] - m - ls;
        return;
    }
    const float inv = 1.0f / s;
    for (long j = 0; j < n; j++) yp[j] *= inv;
}

void bs_softmax_f32(const float *x, float *y, long outer, long n, long inner, int log) {
    if (inner == 1) {
        for (long o = 0; o < outer; o++) bs_softmax_row(x + o * n, y + o * n, n, log);
        return;
    }
    for (long o = 0; o < outer; o++)
        for (long j = 0; j < inner; j++) {
            const float *xp = x + o * n * inner + j;
            float *yp = y + o * n * inner + j;
            float m = -INFINITY;
            for (long i = 0; i < n; i++) if (xp[i * inner] > m) m = xp[i * inner];
            double s = 0;
            if (log) {
                for (long i = 0; i < n; i++) s += exp((double)(xp[i * inner] - m));
                const float ls = (float)__builtin_log(s);
                for (long i = 0; i < n; i++) yp[i * inner] = xp[i * inner] - m - ls;
            } else {
                for (long i = 0; i < n; i++) { const float e = expf(xp[i * inner] - m); yp[i * inner] = e; s += e; }
                const float inv = (float)(1.0 / s);
                for (long i = 0; i < n; i++) yp[i * inner] *= inv;
            }
        }
}

void bs_channel_affine_f32(const float *x, float *y, long N, long C, long S, const float *a, const float *b) {
    for (long n = 0; n < N; n++)
        for (long c = 0; c < C; c++) {
            const float av = a[c], bv = b[c];
            const float *xp = x + (n * C + c) * S;
            float *yp = y + (n * C + c) * S;
            for (long i = 0; i < S; i++) yp[i] = xp[i] * av + bv;
        }
}

void bs_configure_allocator(void) {
    // Tensors of a few MB are allocated and freed every step; by default glibc hands such blocks back to the
    // kernel (mmap/trim) and every reuse page-faults again, which cost as much as the conv itself.
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

void bs_maxpool2x2_f32(const float *x, float *y, int32_t *argmax, long planes, long h, long w, long oh, long ow,
                       long base) {
    // Same tie and NaN rule as bs_maxpool_f32: taps in row-major order, a later tap wins only if strictly greater.
    const long plane = h * w, osp = oh * ow;
    for (long p = 0; p < planes; p++) {
        const float *xp = x + p * plane;
        float *yp = y + p * osp;
        int32_t *ap = argmax + p * osp;
        const long pbase = base + p * plane;
        for (long i = 0; i < oh; i++) {
            const float *r0 = xp + 2 * i * w, *r1 = r0 + w;
            for (long j = 0; j < ow; j++) {
                const long i0 = 2 * i * w + 2 * j;
                float best = r0[2 * j];
                long bi = i0;
                if (r0[2 * j + 1] > best) { best = r0[2 * j + 1]; bi = i0 + 1; }
                if (r1[2 * j] > best) { best = r1[2 * j]; bi = i0 + w; }
                if (r1[2 * j + 1] > best) { best = r1[2 * j + 1]; bi = i0 + w + 1; }
                yp[i * ow + j] = best;
                ap[i * ow + j] = (int32_t)(pbase + bi);
            }
        }
    }
}
