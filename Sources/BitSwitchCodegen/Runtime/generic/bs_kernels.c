/* BitSwitch portable integer kernels (C11). See bs_kernels.h and docs/int-ops.md.
 * Wrapping arithmetic goes through uint64_t (defined behaviour); converting back to a signed type and `>>` on
 * negative values rely on two's complement with an arithmetic shift, which every supported compiler (gcc, clang)
 * guarantees and the assertion below checks. */
#include "bs_kernels.h"

#include <limits.h>
#include <math.h>
#include <string.h>

_Static_assert((-1 >> 1) == -1, "BitSwitch kernels need an arithmetic right shift");
_Static_assert((int32_t)-1 == -1 && sizeof(int64_t) == 8, "two's complement integers required");

static inline int64_t bs_wrap_add(int64_t a, int64_t b) { return (int64_t)((uint64_t)a + (uint64_t)b); }
static inline int64_t bs_wrap_sub(int64_t a, int64_t b) { return (int64_t)((uint64_t)a - (uint64_t)b); }
static inline int64_t bs_wrap_mul(int64_t a, int64_t b) { return (int64_t)((uint64_t)a * (uint64_t)b); }

/* rshr(x, k) = (x + 2^(k-1)) >> k without overflow: (x >> k) + ((x >> (k-1)) & 1); x for k <= 0; 0 for k >= 64. */
static inline int64_t bs_rshr64(int64_t x, int64_t k) {
    if (k <= 0) return x;
    if (k >= 64) return 0;
    return bs_wrap_add(x >> k, (x >> (k - 1)) & 1);
}

static inline int64_t bs_clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : (v > hi ? hi : v); }


static inline int64_t bs_load(const void *x, int32_t t, size_t i) {
    switch (t) {
    case BS_T_I8: return ((const int8_t *)x)[i];
    case BS_T_U8: return ((const uint8_t *)x)[i];
    default: return ((const int32_t *)x)[i];
    }
}

/* Stores with saturation to the container, like the reference's Int8(clamping:) etc. */
static inline void bs_store(void *y, int32_t t, size_t i, int64_t v) {
    switch (t) {
    case BS_T_I8: ((int8_t *)y)[i] = (int8_t)bs_clamp64(v, INT8_MIN, INT8_MAX); break;
    case BS_T_U8: ((uint8_t *)y)[i] = (uint8_t)bs_clamp64(v, 0, UINT8_MAX); break;
    default: ((int32_t *)y)[i] = (int32_t)bs_clamp64(v, INT32_MIN, INT32_MAX); break;
    }
}

static inline int64_t bs_requant_one(int64_t x, const bs_requant_params *rq, size_t c) {
    size_t j = rq->count == 1 ? 0 : c;
    int64_t v = bs_wrap_add(bs_wrap_mul(x, rq->m[j]), rq->bias[j]);
    return bs_clamp64(bs_wrap_add(bs_rshr64(v, rq->n[j]), rq->zero), rq->lo, rq->hi);
}

void bs_qs8_shift_weights__generic(const int8_t *q8, int8_t *wb, size_t count, int32_t shift, int32_t bits) {
    int64_t lo = -((int64_t)1 << (bits - 1)), hi = ((int64_t)1 << (bits - 1)) - 1;
    for (size_t i = 0; i < count; i++) wb[i] = (int8_t)bs_clamp64(bs_rshr64(q8[i], shift), lo, hi);
}

void bs_f32_quantize__generic(const float *x, void *y, int32_t yt, size_t count, const bs_quantize_params *p) {
    float l = (float)bs_wrap_sub(p->lo, p->zero), h = (float)bs_wrap_sub(p->hi, p->zero);
    for (size_t i = 0; i < count; i++) {
        float v = x[i] / p->scale;
        if (v > h) v = h;
        if (v < l) v = l;
        if (v != v) v = 0;
        bs_store(y, yt, i, bs_wrap_add((int64_t)nearbyintf(v), p->zero));
    }
}

void bs_dequantize__generic(const void *x, int32_t xt, float *y, size_t count, const bs_dequantize_params *p) {
    for (size_t i = 0; i < count; i++) y[i] = (float)bs_wrap_sub(bs_load(x, xt, i), p->zero) * p->scale;
}

/* The conv: int32 accumulators wrapping like the reference. Sums are computed modulo 2^32 in uint32_t, where
 * (x - x_zero) * w is exact modulo 2^32, so the result is the reference's int64 sum truncated to int32, in any
 * order. The kernel-column range inside the input is computed once per row instead of tested per tap. */
#define BS_CONV_BODY(X)                                                                                              \
    const bs_window *g = &s->win;                                                                                    \
    int32_t cg = s->c / s->group, mg = s->m / s->group;                                                              \
    size_t in_count = (size_t)g->d * g->h * g->w, k_count = (size_t)g->kd * g->kh * g->kw;                           \
    size_t out_count = (size_t)g->od * g->oh * g->ow;                                                                \
    uint32_t xz = (uint32_t)(int64_t)p->x_zero;                                                                      \
    for (int32_t oc = oc0; oc < oc1; oc++) {                                                                         \
        int32_t grp = oc / mg;                                                                                       \
        for (int32_t od = 0; od < g->od; od++)                                                                       \
        for (int32_t oh = 0; oh < g->oh; oh++)                                                                       \
        for (int32_t ow = 0; ow < g->ow; ow++) {                                                                     \
            uint32_t acc = 0;                                                                                        \
            int64_t iw0 = (int64_t)ow * g->sw - g->pw;                                                               \
            int32_t kw_lo = 0, kw_hi = g->kw;                                                                        \
            if (iw0 < 0) kw_lo = (int32_t)((-iw0 + g->dw - 1) / g->dw);                                              \
            if (iw0 + (int64_t)(g->kw - 1) * g->dw >= g->w) kw_hi = (int32_t)((g->w - 1 - iw0) / g->dw + 1);         \
            if (iw0 >= g->w) kw_hi = 0;                                                                              \
            for (int32_t ic = 0; ic < cg; ic++) {                                                                    \
                const X *xb = x + (size_t)(grp * cg + ic) * in_count;                                                \
                const int8_t *wb = w + ((size_t)oc * cg + ic) * k_count;                                             \
                for (int32_t kd = 0; kd < g->kd; kd++) {                                                             \
                    int64_t id = (int64_t)od * g->sd - g->pd + (int64_t)kd * g->dd;                                  \
                    if (id < 0 || id >= g->d) continue;                                                              \
                    for (int32_t kh = 0; kh < g->kh; kh++) {                                                         \
                        int64_t ih = (int64_t)oh * g->sh - g->ph + (int64_t)kh * g->dh;                              \
                        if (ih < 0 || ih >= g->h) continue;                                                          \
                        const X *xr = xb + ((size_t)id * g->h + (size_t)ih) * g->w;                                  \
                        const int8_t *wr = wb + ((size_t)kd * g->kh + kh) * g->kw;                                   \
                        for (int32_t kw = kw_lo; kw < kw_hi; kw++)                                                   \
                            acc += ((uint32_t)xr[iw0 + (int64_t)kw * g->dw] - xz) * (uint32_t)(int32_t)wr[kw];       \
                    }                                                                                                \
                }                                                                                                    \
            }                                                                                                        \
            size_t o = (size_t)oc * out_count + ((size_t)od * g->oh + oh) * g->ow + ow;                              \
            BS_CONV_STORE                                                                                            \
        }                                                                                                            \
    }

#define BS_CONV_STORE y[o] = (int32_t)acc;
static void bs_qs8_conv_range(const bs_conv_shape *s, const int8_t *x, const int8_t *w, const bs_qmm_params *p, int32_t *y,
                              int32_t oc0, int32_t oc1) {
    BS_CONV_BODY(int8_t)
}
static void bs_qu8_conv_range(const bs_conv_shape *s, const uint8_t *x, const int8_t *w, const bs_qmm_params *p, int32_t *y,
                              int32_t oc0, int32_t oc1) {
    BS_CONV_BODY(uint8_t)
}
#undef BS_CONV_STORE

#define BS_CONV_STORE bs_store(y, yt, o, bs_requant_one((int32_t)acc, rq, (size_t)oc));
static void bs_qs8_conv_requant_range(const bs_conv_shape *s, const int8_t *x, const int8_t *w, const bs_qmm_params *p,
                                      const bs_requant_params *rq, void *y, int32_t yt, int32_t oc0, int32_t oc1) {
    BS_CONV_BODY(int8_t)
}
static void bs_qu8_conv_requant_range(const bs_conv_shape *s, const uint8_t *x, const int8_t *w, const bs_qmm_params *p,
                                      const bs_requant_params *rq, void *y, int32_t yt, int32_t oc0, int32_t oc1) {
    BS_CONV_BODY(uint8_t)
}
#undef BS_CONV_STORE

void bs_qs8_conv__generic(const bs_conv_shape *s, const int8_t *x, const int8_t *w, const bs_qmm_params *p, int32_t *y) {
    bs_qs8_conv_range(s, x, w, p, y, 0, s->m);
}
void bs_qu8_conv__generic(const bs_conv_shape *s, const uint8_t *x, const int8_t *w, const bs_qmm_params *p, int32_t *y) {
    bs_qu8_conv_range(s, x, w, p, y, 0, s->m);
}
void bs_qs8_conv_requant__generic(const bs_conv_shape *s, const int8_t *x, const int8_t *w, const bs_qmm_params *p,
                                  const bs_requant_params *rq, void *y, int32_t yt) {
    bs_qs8_conv_requant_range(s, x, w, p, rq, y, yt, 0, s->m);
}
void bs_qu8_conv_requant__generic(const bs_conv_shape *s, const uint8_t *x, const int8_t *w, const bs_qmm_params *p,
                                  const bs_requant_params *rq, void *y, int32_t yt) {
    bs_qu8_conv_requant_range(s, x, w, p, rq, y, yt, 0, s->m);
}

#define BS_GEMM_BODY(X)                                                                                              \
    uint32_t xz = (uint32_t)(int64_t)p->x_zero;                                                                      \
    for (size_t r = 0; r < rows; r++) {                                                                              \
        const X *xr = x + r * k;                                                                                     \
        for (size_t j = j0; j < j1; j++) {                                                                           \
            uint32_t acc = 0;                                                                                        \
            if (trans_b) {                                                                                           \
                const int8_t *wr = w + j * k;                                                                        \
                for (size_t i = 0; i < k; i++) acc += ((uint32_t)xr[i] - xz) * (uint32_t)(int32_t)wr[i];             \
            } else {                                                                                                 \
                for (size_t i = 0; i < k; i++) acc += ((uint32_t)xr[i] - xz) * (uint32_t)(int32_t)w[i * m + j];      \
            }                                                                                                        \
            size_t o = r * m + j;                                                                                    \
            BS_GEMM_STORE                                                                                            \
        }                                                                                                            \
    }

#define BS_GEMM_STORE y[o] = (int32_t)acc;
static void bs_qs8_gemm_range(size_t rows, size_t k, size_t m, int32_t trans_b, const int8_t *x, const int8_t *w,
                              const bs_qmm_params *p, int32_t *y, size_t j0, size_t j1) {
    BS_GEMM_BODY(int8_t)
}
static void bs_qu8_gemm_range(size_t rows, size_t k, size_t m, int32_t trans_b, const uint8_t *x, const int8_t *w,
                              const bs_qmm_params *p, int32_t *y, size_t j0, size_t j1) {
    BS_GEMM_BODY(uint8_t)
}
#undef BS_GEMM_STORE

#define BS_GEMM_STORE bs_store(y, yt, o, bs_requant_one((int32_t)acc, rq, j));
static void bs_qs8_gemm_requant_range(size_t rows, size_t k, size_t m, int32_t trans_b, const int8_t *x, const int8_t *w,
                                      const bs_qmm_params *p, const bs_requant_params *rq, void *y, int32_t yt,
                                      size_t j0, size_t j1) {
    BS_GEMM_BODY(int8_t)
}
static void bs_qu8_gemm_requant_range(size_t rows, size_t k, size_t m, int32_t trans_b, const uint8_t *x, const int8_t *w,
                                      const bs_qmm_params *p, const bs_requant_params *rq, void *y, int32_t yt,
                                      size_t j0, size_t j1) {
    BS_GEMM_BODY(uint8_t)
}
#undef BS_GEMM_STORE

void bs_qs8_gemm__generic(size_t rows, size_t k, size_t m, int32_t trans_b, const int8_t *x, const int8_t *w,
                          const bs_qmm_params *p, int32_t *y) {
    bs_qs8_gemm_range(rows, k, m, trans_b, x, w, p, y, 0, m);
}
void bs_qu8_gemm__generic(size_t rows, size_t k, size_t m, int32_t trans_b, const uint8_t *x, const int8_t *w,
                          const bs_qmm_params *p, int32_t *y) {
    bs_qu8_gemm_range(rows, k, m, trans_b, x, w, p, y, 0, m);
}
void bs_qs8_gemm_requant__generic(size_t rows, size_t k, size_t m, int32_t trans_b, const int8_t *x, const int8_t *w,
                                  const bs_qmm_params *p, const bs_requant_params *rq, void *y, int32_t yt) {
    bs_qs8_gemm_requant_range(rows, k, m, trans_b, x, w, p, rq, y, yt, 0, m);
}
void bs_qu8_gemm_requant__generic(size_t rows, size_t k, size_t m, int32_t trans_b, const uint8_t *x, const int8_t *w,
                                  const bs_qmm_params *p, const bs_requant_params *rq, void *y, int32_t yt) {
    bs_qu8_gemm_requant_range(rows, k, m, trans_b, x, w, p, rq, y, yt, 0, m);
}

/* The split form: output channels (conv) or output columns (gemm) in blocks, each written by one task with the
 * arithmetic of the whole-op kernels above. */
#define BS_QMM_CONV_CHANNELS_PER_TASK 4
#define BS_QMM_GEMM_COLUMNS_PER_TASK 16
int32_t bs_qmm_tasks__generic(const bs_qmm_job *j) {
    size_t n = j->conv ? ((size_t)j->conv->m + BS_QMM_CONV_CHANNELS_PER_TASK - 1) / BS_QMM_CONV_CHANNELS_PER_TASK
                       : (j->m + BS_QMM_GEMM_COLUMNS_PER_TASK - 1) / BS_QMM_GEMM_COLUMNS_PER_TASK;
    return n > (size_t)INT32_MAX ? INT32_MAX : (int32_t)n;
}

void bs_qmm_run__generic(const bs_qmm_job *j, int32_t task) {
    if (j->conv) {
        int32_t oc0 = task * BS_QMM_CONV_CHANNELS_PER_TASK, oc1 = oc0 + BS_QMM_CONV_CHANNELS_PER_TASK;
        if (oc1 > j->conv->m) oc1 = j->conv->m;
        if (j->rq) {
            if (j->xt == BS_T_U8) bs_qu8_conv_requant_range(j->conv, (const uint8_t *)j->x, j->w, j->p, j->rq, j->y, j->yt, oc0, oc1);
            else bs_qs8_conv_requant_range(j->conv, (const int8_t *)j->x, j->w, j->p, j->rq, j->y, j->yt, oc0, oc1);
        } else {
            if (j->xt == BS_T_U8) bs_qu8_conv_range(j->conv, (const uint8_t *)j->x, j->w, j->p, (int32_t *)j->y, oc0, oc1);
            else bs_qs8_conv_range(j->conv, (const int8_t *)j->x, j->w, j->p, (int32_t *)j->y, oc0, oc1);
        }
    } else {
        size_t c0 = (size_t)task * BS_QMM_GEMM_COLUMNS_PER_TASK, c1 = c0 + BS_QMM_GEMM_COLUMNS_PER_TASK;
        if (c1 > j->m) c1 = j->m;
        if (j->rq) {
            if (j->xt == BS_T_U8) bs_qu8_gemm_requant_range(j->rows, j->k, j->m, j->trans_b, (const uint8_t *)j->x, j->w, j->p, j->rq, j->y, j->yt, c0, c1);
            else bs_qs8_gemm_requant_range(j->rows, j->k, j->m, j->trans_b, (const int8_t *)j->x, j->w, j->p, j->rq, j->y, j->yt, c0, c1);
        } else {
            if (j->xt == BS_T_U8) bs_qu8_gemm_range(j->rows, j->k, j->m, j->trans_b, (const uint8_t *)j->x, j->w, j->p, (int32_t *)j->y, c0, c1);
            else bs_qs8_gemm_range(j->rows, j->k, j->m, j->trans_b, (const int8_t *)j->x, j->w, j->p, (int32_t *)j->y, c0, c1);
        }
    }
}

/* n values of x (container xt) requantized as channel c into y[yi .. yi + n); rows [r0, r1) of x viewed as
 * [outer * channels rows][inner]. */
static void bs_requant_span(const void *x, int32_t xt, void *y, int32_t yt, size_t yi, size_t n, const bs_requant_params *rq,
                            size_t c) {
    for (size_t e = 0; e < n; e++) bs_store(y, yt, yi + e, bs_requant_one(bs_load(x, xt, e), rq, c));
}
static void bs_requant_rows(const void *x, int32_t xt, void *y, int32_t yt, size_t channels, size_t inner,
                            const bs_requant_params *rq, size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; r++)
        bs_requant_span((const unsigned char *)x + r * inner * bs_esize(xt), xt, y, yt, r * inner, inner, rq, r % channels);
}
void bs_requant__generic(const void *x, int32_t xt, void *y, int32_t yt, size_t outer, size_t channels, size_t inner,
                         const bs_requant_params *rq) {
    bs_requant_rows(x, xt, y, yt, channels, inner, rq, 0, outer * channels);
}

static void bs_qadd_range(const void *a, int32_t at, const void *b, int32_t bt, void *y, int32_t yt,
                          const bs_qadd_params *p, size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; i++) {
        int64_t va = bs_wrap_mul(bs_wrap_sub(bs_load(a, at, i), p->a_zero), p->m_a);
        int64_t vb = bs_wrap_mul(bs_wrap_sub(bs_load(b, bt, i), p->b_zero), p->m_b);
        bs_store(y, yt, i, bs_clamp64(bs_wrap_add(bs_rshr64(bs_wrap_add(va, vb), p->n), p->zero), p->lo, p->hi));
    }
}
void bs_qadd__generic(const void *a, int32_t at, const void *b, int32_t bt, void *y, int32_t yt, size_t count,
                      const bs_qadd_params *p) {
    bs_qadd_range(a, at, b, bt, y, yt, p, 0, count);
}

/* Planes [p0, p1). */
static void bs_pool(const bs_window *g, size_t p0, size_t p1, int32_t average, int32_t count_include_pad, int64_t zero,
                    const void *x, int32_t xt, void *y) {
    size_t in_count = (size_t)g->d * g->h * g->w, k = p0 * ((size_t)g->od * g->oh * g->ow);
    int64_t lowest = xt == BS_T_I8 ? INT8_MIN : (xt == BS_T_U8 ? 0 : INT32_MIN);
    if (average && g->od == 1 && g->oh == 1 && g->ow == 1 && g->kd == g->d && g->kh == g->h && g->kw == g->w &&
        g->pd == 0 && g->ph == 0 && g->pw == 0 && g->ped == 0 && g->peh == 0 && g->pew == 0 && in_count > 0) {
        /* a global average (every tap valid and in the padded window): the same sums in straight loops */
        int64_t r = (((int64_t)1 << 24) + (int64_t)in_count / 2) / (int64_t)in_count;
        for (size_t plane = p0; plane < p1; plane++, k++) {
            uint64_t sum = 0;
            size_t base = plane * in_count;
            if (xt == BS_T_I32) { const int32_t *v = (const int32_t *)x + base; for (size_t i = 0; i < in_count; i++) sum += (uint64_t)(int64_t)v[i]; }
            else if (xt == BS_T_U8) { const uint8_t *v = (const uint8_t *)x + base; for (size_t i = 0; i < in_count; i++) sum += v[i]; }
            else { const int8_t *v = (const int8_t *)x + base; for (size_t i = 0; i < in_count; i++) sum += (uint64_t)(int64_t)v[i]; }
            sum -= (uint64_t)zero * (uint64_t)in_count;
            bs_store(y, xt, k, bs_wrap_add(bs_rshr64(bs_wrap_mul((int64_t)sum, r), 24), zero));
        }
        return;
    }
    for (size_t plane = p0; plane < p1; plane++) {
        size_t base = plane * in_count;
        for (int32_t od = 0; od < g->od; od++)
        for (int32_t oh = 0; oh < g->oh; oh++)
        for (int32_t ow = 0; ow < g->ow; ow++, k++) {
            int64_t best = INT64_MIN, sum = 0, valid = 0, in_padded = 0;
            for (int32_t kd = 0; kd < g->kd; kd++) {
                int64_t id = (int64_t)od * g->sd - g->pd + (int64_t)kd * g->dd;
                for (int32_t kh = 0; kh < g->kh; kh++) {
                    int64_t ih = (int64_t)oh * g->sh - g->ph + (int64_t)kh * g->dh;
                    for (int32_t kw = 0; kw < g->kw; kw++) {
                        int64_t iw = (int64_t)ow * g->sw - g->pw + (int64_t)kw * g->dw;
                        if (id < (int64_t)g->d + g->ped && ih < (int64_t)g->h + g->peh && iw < (int64_t)g->w + g->pew)
                            in_padded++;
                        if (id < 0 || id >= g->d || ih < 0 || ih >= g->h || iw < 0 || iw >= g->w) continue;
                        int64_t v = bs_load(x, xt, base + ((size_t)id * g->h + (size_t)ih) * g->w + (size_t)iw);
                        if (v > best) best = v;
                        sum = bs_wrap_add(sum, bs_wrap_sub(v, zero));
                        valid++;
                    }
                }
            }
            if (average) {
                int64_t count = count_include_pad ? in_padded : valid;
                int64_t r = count == 0 ? 0 : (((int64_t)1 << 24) + count / 2) / count;
                bs_store(y, xt, k, count == 0 ? zero : bs_wrap_add(bs_rshr64(bs_wrap_mul(sum, r), 24), zero));
            } else {
                bs_store(y, xt, k, valid == 0 ? lowest : best);
            }
        }
    }
}

void bs_qmaxpool__generic(const bs_window *g, size_t planes, const void *x, int32_t xt, void *y) {
    bs_pool(g, 0, planes, 0, 0, 0, x, xt, y);
}

void bs_qavgpool__generic(const bs_window *g, size_t planes, int32_t count_include_pad, int64_t zero,
                          const void *x, int32_t xt, void *y) {
    bs_pool(g, 0, planes, 1, count_include_pad, zero, x, xt, y);
}

/* The split form of requant / qadd / the pools: blocks of rows, elements or planes of about BS_EW_PER_TASK outputs,
 * each computed by one task with the arithmetic of the whole-op kernels above. */
#define BS_EW_PER_TASK 8192
static size_t bs_ew_units(const bs_ew_job *j) { return j->kind == BS_EW_REQUANT ? j->outer * j->channels : j->count; }
static size_t bs_ew_units_per_task(const bs_ew_job *j) {
    size_t per = j->kind == BS_EW_REQUANT ? j->inner : j->kind == BS_EW_QADD ? 1 : (size_t)j->win->od * j->win->oh * j->win->ow;
    return per >= BS_EW_PER_TASK ? 1 : BS_EW_PER_TASK / (per ? per : 1);
}
int32_t bs_ew_tasks__generic(const bs_ew_job *j) {
    size_t upt = bs_ew_units_per_task(j), n = (bs_ew_units(j) + upt - 1) / upt;
    return n > (size_t)INT32_MAX ? INT32_MAX : (int32_t)n;
}
void bs_ew_task_range__generic(const bs_ew_job *j, int32_t task, size_t *u0, size_t *u1) {
    size_t units = bs_ew_units(j), upt = bs_ew_units_per_task(j);
    *u0 = (size_t)task * upt;
    *u1 = *u0 + upt > units ? units : *u0 + upt;
}
void bs_ew_run_readers(const bs_ew_job *j, size_t u0, size_t u1, const bs_ew_ops *ops) {
    _Alignas(64) unsigned char buf[BS_EW_CHUNK_BYTES];
    size_t es = bs_esize(j->yt);
    if (j->kind == BS_EW_MAXPOOL) {   /* a plane (one channel) at a time */
        const bs_window *g = j->win;
        size_t in = (size_t)g->d * g->h * g->w * bs_esize(j->xt), out = (size_t)g->od * g->oh * g->ow;
        for (size_t p = u0; p < u1; p++) {
            ops->maxpool_planes(g, 0, 1, (const unsigned char *)j->x + p * in, j->xt, buf);
            for (int32_t r = 0; r < j->nreaders; r++)
                ops->requant_span(buf, j->yt, j->readers[r].y, j->readers[r].yt, p * out, out, j->readers[r].rq, p % j->rchannels);
        }
        return;
    }
    /* QAdd: chunks of elements within one row (channel) of the readers' view, unless every reader's table is per
     * tensor (ResNet's: the sum has one scale; rows of 64 elements had cost a set-up each) */
    size_t as = bs_esize(j->xt), bsz = bs_esize(j->bt), cap = BS_EW_CHUNK_BYTES / es;
    int rows = 0;
    for (int32_t r = 0; r < j->nreaders; r++) rows |= j->readers[r].rq->count != 1;
    for (size_t i = u0; i < u1;) {
        size_t end = rows ? (i / j->rinner + 1) * j->rinner : u1;
        if (end > u1) end = u1;
        if (end - i > cap) end = i + cap;
        ops->qadd_range((const unsigned char *)j->x + i * as, j->xt, (const unsigned char *)j->b + i * bsz, j->bt, buf, j->yt,
                        j->qadd, 0, end - i);
        for (int32_t r = 0; r < j->nreaders; r++)
            ops->requant_span(buf, j->yt, j->readers[r].y, j->readers[r].yt, i, end - i, j->readers[r].rq, i / j->rinner % j->rchannels);
        i = end;
    }
}

static void bs_maxpool_planes(const bs_window *g, size_t p0, size_t p1, const void *x, int32_t xt, void *y) {
    bs_pool(g, p0, p1, 0, 0, 0, x, xt, y);
}

void bs_ew_run__generic(const bs_ew_job *j, int32_t task) {
    static const bs_ew_ops ops = {bs_requant_span, bs_qadd_range, bs_maxpool_planes};
    if (j->kind == BS_EW_AVGPOOL && j->nreaders == 0) {
        size_t u0, u1;
        bs_ew_task_range__generic(j, task, &u0, &u1);
        bs_pool(j->win, u0, u1, 1, j->count_include_pad, j->zero, j->x, j->xt, j->y);
        return;
    }
    bs_ew_run_with(j, task, &ops);
}

void bs_copy_rows__generic(void *dst, size_t dst_stride, const void *src, size_t src_stride, size_t row_bytes,
                           size_t rows) {
    for (size_t r = 0; r < rows; r++)
        memcpy((unsigned char *)dst + r * dst_stride, (const unsigned char *)src + r * src_stride, row_bytes);
}

void bs_transpose__generic(const void *x, void *y, size_t elem, int32_t rank, const int64_t *in_shape,
                           const int32_t *perm) {
    /* Output index walks in row-major order; the input offset follows through the permuted strides. */
    int64_t in_stride[8], out_shape[8], idx[8], s = 1;
    size_t count = 1;
    for (int32_t i = rank - 1; i >= 0; i--) { in_stride[i] = s; s *= in_shape[i]; }
    for (int32_t i = 0; i < rank; i++) { out_shape[i] = in_shape[perm[i]]; idx[i] = 0; count *= (size_t)out_shape[i]; }
    for (size_t o = 0; o < count; o++) {
        size_t off = 0;
        for (int32_t i = 0; i < rank; i++) off += (size_t)idx[i] * (size_t)in_stride[perm[i]];
        memcpy((unsigned char *)y + o * elem, (const unsigned char *)x + off * elem, elem);
        for (int32_t i = rank - 1; i >= 0; i--) {
            if (++idx[i] < out_shape[i]) break;
            idx[i] = 0;
        }
    }
}
