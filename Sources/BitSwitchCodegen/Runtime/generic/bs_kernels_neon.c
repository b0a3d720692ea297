/* BitSwitch NEON integer kernels (aarch64). See bs_kernels_neon.h and docs/c-backend.md ("Kernels"). */
#include "bs_kernels_neon.h"

#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>
#include <limits.h>
#include <string.h>

/* The packed weights' header (64 bytes); mode 3 = S8C4 in blocks of 8 channels. */
typedef struct bs_npacked {
    int32_t mode, groups, mg, k, kg, mg8, bits, shift;
} bs_npacked;
#define BS_NMODE 3

#define BS_NA64(x) (((size_t)(x) + 63) & ~(size_t)63)
/* k-groups (of 4 rows) per gather + interleave task, channel blocks (of 8) per GEMM task, pixel blocks (of 8) per
 * GEMM tile. */
#define BS_NKG_PER_TASK 16
#define BS_NCB_PER_TASK 4
#define BS_NTILE 8

static inline size_t bs_ncdiv(size_t a, size_t b) { return (a + b - 1) / b; }

/* ---- packed weights ---- */
size_t bs_qs8_packed_weights_size__neon(int32_t groups, int32_t mg, int32_t k) {
    size_t mg8 = ((size_t)mg + 7) / 8 * 8, kg = ((size_t)k + 3) / 4;
    return 64 + BS_NA64((size_t)groups * mg8 * 4) + BS_NA64((size_t)groups * mg8 * kg * 4);
}

/* w_b of 16 weights: the rounding shift srshl by -shift (exactly rshr for 0 <= shift <= 8; larger shifts give 0 like
 * shift 8), then the clamp to the bit-width. */
static inline int8x16_t bs_nshift16(int8x16_t v, int8x16_t nsh, int8x16_t lo, int8x16_t hi) {
    return vminq_s8(vmaxq_s8(vrshlq_s8(v, nsh), lo), hi);
}

void bs_qs8_pack_weights__neon(const int8_t *q8, void *packed, int32_t groups, int32_t mg, int32_t k, int32_t kmajor,
                               int32_t shift, int32_t bits) {
    bs_npacked *h = (bs_npacked *)packed;
    int32_t kg = (k + 3) / 4, mg8 = (mg + 7) / 8 * 8;
    memset(h, 0, 64);
    h->mode = BS_NMODE; h->groups = groups; h->mg = mg; h->k = k; h->kg = kg; h->mg8 = mg8; h->bits = bits; h->shift = shift;
    int32_t *wsum = (int32_t *)((unsigned char *)packed + 64);
    int8_t *wp = (int8_t *)packed + 64 + BS_NA64((size_t)groups * mg8 * 4);
    int64_t lo = -((int64_t)1 << (bits - 1)), hi = ((int64_t)1 << (bits - 1)) - 1;
    /* shift and clamp through a 256-entry table (the scalar tails and the [k, m] gemm layout) */
    int8_t lut[256];
    for (int32_t v = -128; v < 128; v++) lut[(uint8_t)(int8_t)v] = (int8_t)bs_clamp64a(bs_rshr64a(v, shift), lo, hi);
    /* [channels, k] rows: 16 k of 8 channels per step, shifted in vectors, 4-byte groups transposed with trn1/trn2 */
    int vec = !kmajor && bits >= 1 && bits <= 8 && shift >= 0;
    const int8x16_t nsh = vdupq_n_s8((int8_t)-(shift > 8 ? 8 : shift));
    const int8x16_t vlo = vdupq_n_s8((int8_t)lo), vhi = vdupq_n_s8((int8_t)hi), z = vdupq_n_s8(0);
    for (int32_t g = 0; g < groups; g++)
        for (int32_t cb = 0; cb < mg8 / 8; cb++) {
            int8_t *blk = wp + ((size_t)g * (mg8 / 8) + (size_t)cb) * (size_t)kg * 32;
            int32_t sums[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            int32_t kk0 = 0;
            if (vec) {
                const int8_t *r[8];
                for (int i = 0; i < 8; i++) {
                    int32_t c = cb * 8 + i;
                    r[i] = c < mg ? q8 + ((size_t)g * mg + c) * k : NULL;
                }
                for (; kk0 + 16 <= k; kk0 += 16) {
                    uint32x4_t v[8];
                    for (int i = 0; i < 8; i++) {
                        int8x16_t w = r[i] ? bs_nshift16(vld1q_s8(r[i] + kk0), nsh, vlo, vhi) : z;
                        sums[i] += vaddlvq_s8(w);
                        v[i] = vreinterpretq_u32_s8(w);
                    }
                    int8_t *dst = blk + (size_t)(kk0 / 4) * 32;
                    for (int half = 0; half < 2; half++) {
                        const uint32x4_t *u = v + 4 * half;
                        uint64x2_t a0 = vreinterpretq_u64_u32(vtrn1q_u32(u[0], u[1])), a1 = vreinterpretq_u64_u32(vtrn2q_u32(u[0], u[1]));
                        uint64x2_t a2 = vreinterpretq_u64_u32(vtrn1q_u32(u[2], u[3])), a3 = vreinterpretq_u64_u32(vtrn2q_u32(u[2], u[3]));
                        vst1q_u8((uint8_t *)dst + 16 * half, vreinterpretq_u8_u64(vtrn1q_u64(a0, a2)));
                        vst1q_u8((uint8_t *)dst + 32 + 16 * half, vreinterpretq_u8_u64(vtrn1q_u64(a1, a3)));
                        vst1q_u8((uint8_t *)dst + 64 + 16 * half, vreinterpretq_u8_u64(vtrn2q_u64(a0, a2)));
                        vst1q_u8((uint8_t *)dst + 96 + 16 * half, vreinterpretq_u8_u64(vtrn2q_u64(a1, a3)));
                    }
                }
            }
            for (int i = 0; i < 8; i++) {   /* the rest of k (everything with kmajor), zeros past k and past mg */
                int32_t c = cb * 8 + i;
                int8_t *dst = blk + (size_t)i * 4;
                for (int32_t kk = kk0; kk < kg * 4; kk++) {
                    int8_t w = 0;
                    if (c < mg && kk < k)
                        w = lut[(uint8_t)(kmajor ? q8[(size_t)kk * mg + c] : q8[((size_t)g * mg + c) * k + kk])];
                    dst[(size_t)(kk / 4) * 32 + kk % 4] = w;
                    sums[i] += w;
                }
                wsum[(size_t)g * mg8 + c] = sums[i];
            }
        }
}

/* Plain [groups*mg, k] shifted weights from the packed form (the fallback path of unusual zero points). */
static void bs_nunpack_weights(const bs_npacked *h, int8_t *w) {
    const int8_t *wp = (const int8_t *)h + 64 + BS_NA64((size_t)h->groups * h->mg8 * 4);
    for (int32_t g = 0; g < h->groups; g++)
        for (int32_t c = 0; c < h->mg; c++) {
            const int8_t *base = wp + ((size_t)g * (h->mg8 / 8) + (size_t)(c / 8)) * (size_t)h->kg * 32 + (size_t)(c % 8) * 4;
            for (int32_t kk = 0; kk < h->k; kk++) w[((size_t)g * h->mg + c) * h->k + kk] = base[(size_t)(kk / 4) * 32 + kk % 4];
        }
}

/* ---- geometry of one job ---- */
typedef struct bs_ngeo {
    int32_t groups, mg, mg8, k, kg;   /* k per group, kg = ceil(k/4) */
    size_t n, npad, nb;               /* output pixels (gemm rows), padded to 8, blocks of 8 */
    size_t tasks0;                    /* gather tasks (each owns 4 rows of the gather area) */
    size_t tmp_bytes, ilv_bytes;      /* gather area; interleaved bytes per group */
    int32_t sz;                       /* the signed activation value of x_zero */
    int32_t fallback;
} bs_ngeo;

static size_t bs_ntasks0(size_t groups, size_t kg) { return groups * bs_ncdiv(kg, BS_NKG_PER_TASK); }

static void bs_ngeometry(const bs_avx2_job *j, bs_ngeo *o) {
    const bs_npacked *h = (const bs_npacked *)j->packed;
    memset(o, 0, sizeof *o);
    o->groups = h->groups; o->mg = h->mg; o->mg8 = h->mg8; o->k = h->k; o->kg = h->kg;
    if (j->conv) {
        const bs_window *g = &j->conv->win;
        o->n = (size_t)g->od * g->oh * g->ow;
    } else {
        o->n = j->rows;
    }
    o->npad = (o->n + 7) / 8 * 8;
    o->nb = o->npad / 8;
    o->tasks0 = bs_ntasks0((size_t)h->groups, (size_t)h->kg);
    o->tmp_bytes = j->conv ? BS_NA64(o->tasks0 * 4 * o->npad) : 0;
    o->ilv_bytes = (size_t)h->kg * 32 * o->nb;
    int64_t xz = j->p->x_zero;
    int64_t sz = j->xt == BS_T_U8 ? xz - 128 : xz;
    o->sz = (int32_t)sz;
    o->fallback = sz < -128 || sz > 127 || h->mode != BS_NMODE;
}

static size_t bs_nscratch_for(size_t groups, size_t mg, size_t k, size_t n, int conv) {
    size_t npad = (n + 7) / 8 * 8, kg = (k + 3) / 4;
    size_t tmp = conv ? BS_NA64(bs_ntasks0(groups, kg) * 4 * npad) : 0;
    size_t ilv = BS_NA64(groups * kg * 4 * npad), fb = BS_NA64(groups * mg * k);
    return 64 + (tmp + ilv > fb ? tmp + ilv : fb);
}

size_t bs_conv_scratch_size__neon(const bs_conv_shape *s) {
    const bs_window *g = &s->win;
    size_t k = (size_t)(s->c / s->group) * g->kd * g->kh * g->kw;
    return bs_nscratch_for((size_t)s->group, (size_t)(s->m / s->group), k, (size_t)g->od * g->oh * g->ow, 1);
}

size_t bs_gemm_scratch_size__neon(size_t rows, size_t k, size_t m) { return bs_nscratch_for(1, m, k, rows, 0); }

/* ---- gather (conv): row kk of one group's im2col for every output pixel, as signed bytes: x ^ flip, the zero
 * point's value sz where the window is outside the input and past the last pixel, 0 for kk >= k ---- */
typedef struct bs_nkpos { size_t grp, kk; int32_t ic, kd, kh, kw; } bs_nkpos;

static void bs_nkpos_of(const bs_avx2_job *j, size_t grp, size_t kk, bs_nkpos *k) {
    const bs_window *g = &j->conv->win;
    size_t kcount = (size_t)g->kd * g->kh * g->kw, rem = kk % kcount;
    k->grp = grp; k->kk = kk;
    k->ic = (int32_t)(kk / kcount);
    k->kd = (int32_t)(rem / ((size_t)g->kh * g->kw)); k->kh = (int32_t)(rem / g->kw % g->kh); k->kw = (int32_t)(rem % g->kw);
}

static inline void bs_nkpos_next(const bs_avx2_job *j, bs_nkpos *k) {
    const bs_window *g = &j->conv->win;
    k->kk++;
    if (++k->kw < g->kw) return;
    k->kw = 0;
    if (++k->kh < g->kh) return;
    k->kh = 0;
    if (++k->kd < g->kd) return;
    k->kd = 0;
    k->ic++;
}

static inline void bs_ncopy_flip(uint8_t *dst, const uint8_t *src, size_t count, uint8_t flip) {
    size_t i = 0;
    const uint8x16_t vf = vdupq_n_u8(flip);
    for (; i + 16 <= count; i += 16) vst1q_u8(dst + i, veorq_u8(vld1q_u8(src + i), vf));
    for (; i < count; i++) dst[i] = src[i] ^ flip;
}

static void bs_ngather_row(const bs_avx2_job *j, const bs_ngeo *o, const bs_nkpos *kp, uint8_t *row) {
    uint8_t pad = (uint8_t)(int8_t)o->sz;
    if ((int32_t)kp->kk >= o->k) { memset(row, 0, o->npad); return; }
    const bs_conv_shape *s = j->conv;
    const bs_window *g = &s->win;
    uint8_t flip = j->xt == BS_T_U8 ? 0x80 : 0;
    int32_t cg = s->c / s->group;
    size_t in_count = (size_t)g->d * g->h * g->w;
    const uint8_t *xc = (const uint8_t *)j->x + (kp->grp * (size_t)cg + (size_t)kp->ic) * in_count;
    int64_t iw0 = -(int64_t)g->pw + (int64_t)kp->kw * g->dw;
    /* the valid ow (the same for every output row): 0 <= iw0 + ow*sw < w */
    int64_t lo0 = iw0 >= 0 ? 0 : (-iw0 + g->sw - 1) / g->sw;
    int64_t hi0 = iw0 >= g->w ? 0 : (g->w - 1 - iw0) / g->sw + 1;
    if (hi0 > g->ow) hi0 = g->ow;
    if (lo0 >= hi0) { lo0 = 0; hi0 = 0; }
    uint8_t *dst = row;
    for (int32_t od = 0; od < g->od; od++) {
        int64_t id = (int64_t)od * g->sd - g->pd + (int64_t)kp->kd * g->dd;
        for (int32_t oh = 0; oh < g->oh; oh++, dst += g->ow) {
            int64_t ih = (int64_t)oh * g->sh - g->ph + (int64_t)kp->kh * g->dh;
            if (id < 0 || id >= g->d || ih < 0 || ih >= g->h || hi0 == 0) { memset(dst, pad, (size_t)g->ow); continue; }
            const uint8_t *xr = xc + ((size_t)id * g->h + (size_t)ih) * g->w;
            if (lo0 > 0) memset(dst, pad, (size_t)lo0);
            if (g->sw == 1) {
                bs_ncopy_flip(dst + lo0, xr + (iw0 + lo0), (size_t)(hi0 - lo0), flip);
            } else {
                for (int64_t ow = lo0; ow < hi0; ow++) dst[ow] = xr[iw0 + ow * g->sw] ^ flip;
            }
            if (hi0 < g->ow) memset(dst + hi0, pad, (size_t)(g->ow - hi0));
        }
    }
    if (o->npad > o->n) memset(row + o->n, pad, o->npad - o->n);
}

/* ---- interleave: k-group q (4 rows of stride `stride`, just gathered) of every 8-pixel block into
 * [block][kg][8 pixels][4 bytes] ---- */
static inline void bs_nilv_pair(uint8x16_t r0, uint8x16_t r1, uint8x16_t r2, uint8x16_t r3, int two,
                                uint8_t *d0, uint8_t *d1) {
    uint16x8_t a0 = vreinterpretq_u16_u8(vzip1q_u8(r0, r1)), c0 = vreinterpretq_u16_u8(vzip1q_u8(r2, r3));
    vst1q_u8(d0, vreinterpretq_u8_u16(vzip1q_u16(a0, c0)));
    vst1q_u8(d0 + 16, vreinterpretq_u8_u16(vzip2q_u16(a0, c0)));
    if (two) {
        uint16x8_t a1 = vreinterpretq_u16_u8(vzip2q_u8(r0, r1)), c1 = vreinterpretq_u16_u8(vzip2q_u8(r2, r3));
        vst1q_u8(d1, vreinterpretq_u8_u16(vzip1q_u16(a1, c1)));
        vst1q_u8(d1 + 16, vreinterpretq_u8_u16(vzip2q_u16(a1, c1)));
    }
}

static void bs_ninterleave(const bs_ngeo *o, const uint8_t *rows, uint8_t *ilv, int32_t q) {
    size_t stride = o->npad, bq = (size_t)o->kg * 32, b = 0;
    uint8_t *dq = ilv + (size_t)q * 32;
    for (; b + 2 <= o->nb; b += 2) {
        const uint8_t *r = rows + b * 8;
        bs_nilv_pair(vld1q_u8(r), vld1q_u8(r + stride), vld1q_u8(r + 2 * stride), vld1q_u8(r + 3 * stride), 1,
                     dq + b * bq, dq + (b + 1) * bq);
    }
    if (b < o->nb) {
        const uint8_t *r = rows + b * 8;
        const uint8x8_t z = vdup_n_u8(0);
        bs_nilv_pair(vcombine_u8(vld1_u8(r), z), vcombine_u8(vld1_u8(r + stride), z), vcombine_u8(vld1_u8(r + 2 * stride), z),
                     vcombine_u8(vld1_u8(r + 3 * stride), z), 0, dq + b * bq, NULL);
    }
}

/* gemm: rows of x [rows, k] straight into the interleaved layout, k-groups [q0, q1) */
static void bs_ninterleave_gemm(const bs_avx2_job *j, const bs_ngeo *o, uint8_t *ilv, int32_t q0, int32_t q1) {
    const uint8_t *x = (const uint8_t *)j->x;
    uint8_t flip = j->xt == BS_T_U8 ? 0x80 : 0, pad = (uint8_t)(int8_t)o->sz;
    size_t k = (size_t)o->k, bq = (size_t)o->kg * 32;
    for (size_t p = 0; p < o->npad; p++) {
        uint8_t *d = ilv + (p / 8) * bq + (p % 8) * 4;
        if (p >= o->n) {
            for (int32_t q = q0; q < q1; q++) {
                uint8_t *e = d + (size_t)q * 32;
                for (size_t i = 0; i < 4; i++) e[i] = (size_t)q * 4 + i < k ? pad : 0;
            }
            continue;
        }
        const uint8_t *xr = x + p * k;
        for (int32_t q = q0; q < q1; q++) {
            uint8_t *e = d + (size_t)q * 32;
            size_t kk = (size_t)q * 4;
            if (kk + 4 <= k) {
                uint32_t v;
                memcpy(&v, xr + kk, 4);
                v ^= (uint32_t)flip * 0x01010101u;
                memcpy(e, &v, 4);
            } else {
                for (size_t i = 0; i < 4; i++) e[i] = kk + i < k ? (uint8_t)(xr[kk + i] ^ flip) : 0;
            }
        }
    }
}

/* ---- the GEMM micro-kernels: 8 pixels (a: kg groups of [8 pixels][4 k]) x 8 channels (w: kg groups of
 * [8 channels][4 k]); acc[2c + h] = channel c, pixels 4h .. 4h+3 ---- */
#if defined(__ARM_FEATURE_DOTPROD)
static inline void bs_qs8s8_gemm_rq64_8x8c4__neondot(const int8_t *a, const int8_t *w, int32_t kg, int32x4_t acc[16]) {
    int32x4_t c00 = vdupq_n_s32(0), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
    int32x4_t c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00, c61 = c00, c70 = c00, c71 = c00;
    for (int32_t q = 0; q < kg; q++, a += 32, w += 32) {
        const int8x16_t x0 = vld1q_s8(a), x1 = vld1q_s8(a + 16), w0 = vld1q_s8(w), w1 = vld1q_s8(w + 16);
        c00 = vdotq_laneq_s32(c00, x0, w0, 0); c01 = vdotq_laneq_s32(c01, x1, w0, 0);
        c10 = vdotq_laneq_s32(c10, x0, w0, 1); c11 = vdotq_laneq_s32(c11, x1, w0, 1);
        c20 = vdotq_laneq_s32(c20, x0, w0, 2); c21 = vdotq_laneq_s32(c21, x1, w0, 2);
        c30 = vdotq_laneq_s32(c30, x0, w0, 3); c31 = vdotq_laneq_s32(c31, x1, w0, 3);
        c40 = vdotq_laneq_s32(c40, x0, w1, 0); c41 = vdotq_laneq_s32(c41, x1, w1, 0);
        c50 = vdotq_laneq_s32(c50, x0, w1, 1); c51 = vdotq_laneq_s32(c51, x1, w1, 1);
        c60 = vdotq_laneq_s32(c60, x0, w1, 2); c61 = vdotq_laneq_s32(c61, x1, w1, 2);
        c70 = vdotq_laneq_s32(c70, x0, w1, 3); c71 = vdotq_laneq_s32(c71, x1, w1, 3);
    }
    acc[0] = c00; acc[1] = c01; acc[2] = c10; acc[3] = c11; acc[4] = c20; acc[5] = c21; acc[6] = c30; acc[7] = c31;
    acc[8] = c40; acc[9] = c41; acc[10] = c50; acc[11] = c51; acc[12] = c60; acc[13] = c61; acc[14] = c70; acc[15] = c71;
}
#define BS_NKERNEL_NAME "bs_qs8s8_gemm_rq64_8x8c4__neondot"
#else
/* 8 pixels x the 4 channels at byte offset `half` * 16 of each weight group: smull of a pixel pair (8 bytes) by a
 * channel's 4 weights twice, sadalp into int32 pairs; acc[2c + h] for c = 0..3. */
static inline void bs_qs8s8_gemm_rq64_8x4c4__neon(const int8_t *a, const int8_t *w, int32_t kg, int32x4_t acc[8]) {
    int32x4_t p[4][4];   /* [channel][pixel pair]: (pair.0 k01, pair.0 k23, pair.1 k01, pair.1 k23) */
    for (int c = 0; c < 4; c++) for (int i = 0; i < 4; i++) p[c][i] = vdupq_n_s32(0);
    for (int32_t q = 0; q < kg; q++, a += 32, w += 32) {
        const int8x16_t x0 = vld1q_s8(a), x1 = vld1q_s8(a + 16);
        const int32x4_t wv = vreinterpretq_s32_s8(vld1q_s8(w));
        const int8x8_t x00 = vget_low_s8(x0), x10 = vget_low_s8(x1);
#define BS_NCH(C)                                                                                                   \
        {                                                                                                           \
            const int8x16_t wc = vreinterpretq_s8_s32(vdupq_laneq_s32(wv, C));                                     \
            const int8x8_t wl = vget_low_s8(wc);                                                                    \
            p[C][0] = vpadalq_s16(p[C][0], vmull_s8(x00, wl)); p[C][1] = vpadalq_s16(p[C][1], vmull_high_s8(x0, wc)); \
            p[C][2] = vpadalq_s16(p[C][2], vmull_s8(x10, wl)); p[C][3] = vpadalq_s16(p[C][3], vmull_high_s8(x1, wc)); \
        }
        BS_NCH(0) BS_NCH(1) BS_NCH(2) BS_NCH(3)
#undef BS_NCH
    }
    for (int c = 0; c < 4; c++) {
        acc[2 * c] = vpaddq_s32(p[c][0], p[c][1]);
        acc[2 * c + 1] = vpaddq_s32(p[c][2], p[c][3]);
    }
}
#define BS_NKERNEL_NAME "bs_qs8s8_gemm_rq64_8x4c4__neon"
#endif

/* ---- the epilogue: 8 accumulators (lo: pixels 0-3, hi: 4-7) of output channel c ---- */
static inline int32x4_t bs_nrequant4(int32x4_t v, int32x2_t m, int64x2_t b, int64x2_t sh, int n, int64x2_t z,
                                     int64x2_t lo, int64x2_t hi) {
    int64x2_t v0 = vaddq_s64(vmull_s32(vget_low_s32(v), m), b), v1 = vaddq_s64(vmull_high_s32(v, vcombine_s32(m, m)), b);
    if (n > 0) { v0 = vrshlq_s64(v0, sh); v1 = vrshlq_s64(v1, sh); }   /* (v + 2^(n-1)) >> n, exact */
    v0 = vaddq_s64(v0, z); v1 = vaddq_s64(v1, z);
    v0 = vbslq_s64(vcltq_s64(v0, lo), lo, v0); v1 = vbslq_s64(vcltq_s64(v1, lo), lo, v1);
    v0 = vbslq_s64(vcgtq_s64(v0, hi), hi, v0); v1 = vbslq_s64(vcgtq_s64(v1, hi), hi, v1);
    return vcombine_s32(vmovn_s64(v0), vmovn_s64(v1));
}

/* The Requant of one output channel, prepared once per channel: kind 0 = raw int32 accumulators, 1 = the vector
 * path, 2 = the scalar reference order (n >= 64 or lo > hi: never produced by the lowering). */
typedef struct bs_nepi {
    int32_t kind, t, n;
    int32x2_t M;
    int64x2_t B, Z, SH, LO, HI;
} bs_nepi;

static inline void bs_nepi_of(const bs_avx2_job *j, size_t c, bs_nepi *e) {
    const bs_requant_params *rq = j->rq;
    memset(e, 0, sizeof *e);
    if (!rq) return;
    int32_t t = j->yt;
    size_t q = rq->count == 1 ? 0 : c;
    int32_t n = rq->n[q];
    e->t = t; e->n = n;
    if (rq->lo > rq->hi || n >= 64) { e->kind = 2; return; }
    e->kind = 1;
    int64_t cmin = t == BS_T_I8 ? INT8_MIN : (t == BS_T_U8 ? 0 : INT32_MIN);
    int64_t cmax = t == BS_T_I8 ? INT8_MAX : (t == BS_T_U8 ? UINT8_MAX : INT32_MAX);
    /* clamp to [lo, hi] then to the container = clamp to [C(lo), C(hi)] (C monotonic, lo <= hi) */
    e->LO = vdupq_n_s64(bs_clamp64a(rq->lo, cmin, cmax)); e->HI = vdupq_n_s64(bs_clamp64a(rq->hi, cmin, cmax));
    e->B = vdupq_n_s64(rq->bias[q]); e->Z = vdupq_n_s64(rq->zero); e->SH = vdupq_n_s64(-(int64_t)n);
    e->M = vdup_n_s32(rq->m[q]);
}

static inline void bs_nepilogue(const bs_avx2_job *j, const bs_nepi *e, int32x4_t alo, int32x4_t ahi, int32_t corr,
                                size_t c, size_t off, size_t pstride, size_t count) {
    const int32x4_t vc = vdupq_n_s32(corr);
    alo = vsubq_s32(alo, vc); ahi = vsubq_s32(ahi, vc);
    int32_t res[8];
    if (e->kind == 0) {
        if (pstride == 1 && count == 8) { vst1q_s32((int32_t *)j->y + off, alo); vst1q_s32((int32_t *)j->y + off + 4, ahi); return; }
        vst1q_s32(res, alo); vst1q_s32(res + 4, ahi);
        for (size_t i = 0; i < count; i++) ((int32_t *)j->y)[off + i * pstride] = res[i];
        return;
    }
    if (e->kind == 2) {
        vst1q_s32(res, alo); vst1q_s32(res + 4, ahi);
        for (size_t i = 0; i < count; i++) bs_store_scalar(j->y, e->t, off + i * pstride, bs_requant_scalar(res[i], j->rq, c));
        return;
    }
    int32x4_t r0 = bs_nrequant4(alo, e->M, e->B, e->SH, e->n, e->Z, e->LO, e->HI);
    int32x4_t r1 = bs_nrequant4(ahi, e->M, e->B, e->SH, e->n, e->Z, e->LO, e->HI);
    if (e->t == BS_T_I32) {
        if (pstride == 1 && count == 8) { vst1q_s32((int32_t *)j->y + off, r0); vst1q_s32((int32_t *)j->y + off + 4, r1); return; }
        vst1q_s32(res, r0); vst1q_s32(res + 4, r1);
        for (size_t i = 0; i < count; i++) ((int32_t *)j->y)[off + i * pstride] = res[i];
        return;
    }
    /* in the byte container's range already: truncation is exact */
    uint8x8_t b8 = vreinterpret_u8_s8(vmovn_s16(vcombine_s16(vmovn_s32(r0), vmovn_s32(r1))));
    uint8_t *yb = (uint8_t *)j->y;
    if (pstride == 1 && count == 8) { vst1_u8(yb + off, b8); return; }
    uint8_t bytes[8];
    vst1_u8(bytes, b8);
    for (size_t i = 0; i < count; i++) yb[off + i * pstride] = bytes[i];
}

/* ---- gemm rows of a partial block (a batch-1 gemm: its only block): one row at a time against 8 channels, every
 * lane useful. The row's 4 activations of a k-group are broadcast (ld1r); lo: channels 0-3, hi: 4-7. ---- */
#if defined(__ARM_FEATURE_DOTPROD)
static inline void bs_qs8s8_gemm_rq64_1x8c4__neondot(const int8_t *a, const int8_t *w, int32_t kg, int32x4_t *lo, int32x4_t *hi) {
    int32x4_t l0 = vdupq_n_s32(0), h0 = l0, l1 = l0, h1 = l0;   /* two k-groups per step: 4 independent chains */
    int32_t q = 0;
    for (; q + 2 <= kg; q += 2, a += 64, w += 64) {
        const int8x16_t x0 = vreinterpretq_s8_s32(vld1q_dup_s32((const int32_t *)(const void *)a));
        const int8x16_t x1 = vreinterpretq_s8_s32(vld1q_dup_s32((const int32_t *)(const void *)(a + 32)));
        l0 = vdotq_s32(l0, vld1q_s8(w), x0); h0 = vdotq_s32(h0, vld1q_s8(w + 16), x0);
        l1 = vdotq_s32(l1, vld1q_s8(w + 32), x1); h1 = vdotq_s32(h1, vld1q_s8(w + 48), x1);
    }
    if (q < kg) {
        const int8x16_t x0 = vreinterpretq_s8_s32(vld1q_dup_s32((const int32_t *)(const void *)a));
        l0 = vdotq_s32(l0, vld1q_s8(w), x0); h0 = vdotq_s32(h0, vld1q_s8(w + 16), x0);
    }
    *lo = vaddq_s32(l0, l1); *hi = vaddq_s32(h0, h1);
}
#else
static inline void bs_qs8s8_gemm_rq64_1x8c4__neon(const int8_t *a, const int8_t *w, int32_t kg, int32x4_t *lo, int32x4_t *hi) {
    int32x4_t p0 = vdupq_n_s32(0), p1 = p0, p2 = p0, p3 = p0;   /* (channel 2i k01, k23, channel 2i+1 k01, k23) */
    for (int32_t q = 0; q < kg; q++, a += 32, w += 32) {
        const int8x16_t x = vreinterpretq_s8_s32(vld1q_dup_s32((const int32_t *)(const void *)a));
        const int8x16_t w0 = vld1q_s8(w), w1 = vld1q_s8(w + 16);
        p0 = vpadalq_s16(p0, vmull_s8(vget_low_s8(w0), vget_low_s8(x))); p1 = vpadalq_s16(p1, vmull_high_s8(w0, x));
        p2 = vpadalq_s16(p2, vmull_s8(vget_low_s8(w1), vget_low_s8(x))); p3 = vpadalq_s16(p3, vmull_high_s8(w1, x));
    }
    *lo = vpaddq_s32(p0, p1); *hi = vpaddq_s32(p2, p3);
}
#endif

/* The epilogue of one gemm row: 8 consecutive output channels oc0 .. oc0+nc-1 (each with its own Requant entry) at
 * y + off; corr: the zero-point corrections of the 8 channels. */
static void bs_nepilogue_row(const bs_avx2_job *j, int32x4_t alo, int32x4_t ahi, int32x4_t clo, int32x4_t chi, size_t oc0,
                             size_t off, size_t nc) {
    alo = vsubq_s32(alo, clo); ahi = vsubq_s32(ahi, chi);
    const bs_requant_params *rq = j->rq;
    int32_t res[8];
    vst1q_s32(res, alo); vst1q_s32(res + 4, ahi);
    if (!rq) {
        if (nc == 8) { vst1q_s32((int32_t *)j->y + off, alo); vst1q_s32((int32_t *)j->y + off + 4, ahi); return; }
        for (size_t i = 0; i < nc; i++) ((int32_t *)j->y)[off + i] = res[i];
        return;
    }
    int32_t t = j->yt, mm[8] = {0}, sh[8] = {0};
    int64_t bb[8] = {0};
    int slow = rq->lo > rq->hi;
    for (size_t i = 0; i < nc; i++) {
        size_t q = rq->count == 1 ? 0 : oc0 + i;
        int32_t n = rq->n[q];
        slow |= n >= 64;
        mm[i] = rq->m[q]; bb[i] = rq->bias[q]; sh[i] = n > 0 ? -n : 0;
    }
    if (slow) {   /* never produced by the lowering: the scalar reference order */
        for (size_t i = 0; i < nc; i++) bs_store_scalar(j->y, t, off + i, bs_requant_scalar(res[i], rq, oc0 + i));
        return;
    }
    int64_t cmin = t == BS_T_I8 ? INT8_MIN : (t == BS_T_U8 ? 0 : INT32_MIN);
    int64_t cmax = t == BS_T_I8 ? INT8_MAX : (t == BS_T_U8 ? UINT8_MAX : INT32_MAX);
    const int64x2_t LO = vdupq_n_s64(bs_clamp64a(rq->lo, cmin, cmax)), HI = vdupq_n_s64(bs_clamp64a(rq->hi, cmin, cmax));
    const int64x2_t Z = vdupq_n_s64(rq->zero);
    int32x4_t r[2];
    for (int hlf = 0; hlf < 2; hlf++) {
        const int32x4_t v = hlf ? ahi : alo, m = vld1q_s32(mm + 4 * hlf), n32 = vld1q_s32(sh + 4 * hlf);
        int64x2_t v0 = vaddq_s64(vmull_s32(vget_low_s32(v), vget_low_s32(m)), vld1q_s64(bb + 4 * hlf));
        int64x2_t v1 = vaddq_s64(vmull_high_s32(v, m), vld1q_s64(bb + 4 * hlf + 2));
        v0 = vrshlq_s64(v0, vmovl_s32(vget_low_s32(n32))); v1 = vrshlq_s64(v1, vmovl_high_s32(n32));   /* exact rshr; 0: none */
        v0 = vaddq_s64(v0, Z); v1 = vaddq_s64(v1, Z);
        v0 = vbslq_s64(vcltq_s64(v0, LO), LO, v0); v1 = vbslq_s64(vcltq_s64(v1, LO), LO, v1);
        v0 = vbslq_s64(vcgtq_s64(v0, HI), HI, v0); v1 = vbslq_s64(vcgtq_s64(v1, HI), HI, v1);
        r[hlf] = vcombine_s32(vmovn_s64(v0), vmovn_s64(v1));
    }
    if (t == BS_T_I32) {
        if (nc == 8) { vst1q_s32((int32_t *)j->y + off, r[0]); vst1q_s32((int32_t *)j->y + off + 4, r[1]); return; }
        vst1q_s32(res, r[0]); vst1q_s32(res + 4, r[1]);
        for (size_t i = 0; i < nc; i++) ((int32_t *)j->y)[off + i] = res[i];
        return;
    }
    uint8x8_t b8 = vreinterpret_u8_s8(vmovn_s16(vcombine_s16(vmovn_s32(r[0]), vmovn_s32(r[1]))));
    uint8_t *yb = (uint8_t *)j->y;
    if (nc == 8) { vst1_u8(yb + off, b8); return; }
    uint8_t bytes[8];
    vst1_u8(bytes, b8);
    for (size_t i = 0; i < nc; i++) yb[off + i] = bytes[i];
}

/* ---- the direct depthwise conv: group == c == m, 2-D (or 1-D). Per task a range of channels; per output row the
 * kh input rows it reads are converted once into int16 rows of x - x_zero (zeros in the padding, from column -pw),
 * then 8 outputs at a time accumulate their kh * kw taps in two int32x4 registers (smlal by the int16 weight: exact,
 * |x - xz| <= 255, |w| <= 128), stride 1 with plain loads, stride 2 with de-interleaving loads (ld2), larger strides
 * through a small gather. The epilogue is the GEMM path's. ---- */
#define BS_NDW_CH_PER_TASK 4
#define BS_NDW_MAX_KH 64

typedef struct bs_ndw_geo { size_t owp, rw, task_bytes; } bs_ndw_geo;

static void bs_ndw_geometry(const bs_conv_shape *s, bs_ndw_geo *d) {
    const bs_window *g = &s->win;
    size_t sw = (size_t)(g->sw > 2 ? g->sw : 2);
    d->owp = ((size_t)g->ow + 7) / 8 * 8;
    d->rw = d->owp * sw + (size_t)(g->kw - 1) * (size_t)g->dw + 16;
    if (d->rw < (size_t)g->pw + (size_t)g->w + 8) d->rw = (size_t)g->pw + (size_t)g->w + 8;   /* room for the tail's 8 */
    d->task_bytes = BS_NA64((size_t)g->h * d->rw * 2) + BS_NA64(d->owp * 4) + BS_NA64((size_t)g->kh * g->kw * 2);
}

/* The number of depthwise tasks, 0 when the job is not one the direct kernel takes (then the GEMM path runs). It
 * takes a job only when its buffers fit the scratch the GEMM path is given (bs_conv_scratch_size__neon), so the
 * scratch size does not depend on which path runs. */
static int32_t bs_ndw_tasks(const bs_avx2_job *j) {
    const bs_conv_shape *s = j->conv;
    if (!s) return 0;
    const bs_window *g = &s->win;
    if (s->group != s->c || s->m != s->c || g->d != 1 || g->od != 1 || g->kd != 1 || g->kh > BS_NDW_MAX_KH) return 0;
    const bs_npacked *h = (const bs_npacked *)j->packed;
    if (h->mode != BS_NMODE) return 0;
    int64_t xz = j->p->x_zero, sz = j->xt == BS_T_U8 ? xz - 128 : xz;
    if (sz < -128 || sz > 127) return 0;
    bs_ndw_geo d;
    bs_ndw_geometry(s, &d);
    size_t tasks = bs_ncdiv((size_t)s->c, BS_NDW_CH_PER_TASK);
    if (64 + tasks * d.task_bytes > bs_conv_scratch_size__neon(s)) return 0;
    return (int32_t)tasks;
}

int32_t bs_dwconv_tasks__neon(const bs_avx2_job *j) { return bs_ndw_tasks(j); }

static void bs_ndw_run(const bs_avx2_job *j, int32_t task) {
    const bs_conv_shape *s = j->conv;
    const bs_window *g = &s->win;
    const bs_npacked *h = (const bs_npacked *)j->packed;
    bs_ndw_geo d;
    bs_ndw_geometry(s, &d);
    unsigned char *base = (unsigned char *)(((uintptr_t)j->scratch + 63) & ~(uintptr_t)63) + (size_t)task * d.task_bytes;
    int16_t *plane = (int16_t *)base;
    int32_t *acc = (int32_t *)(base + BS_NA64((size_t)g->h * d.rw * 2));
    int16_t *wts = (int16_t *)(base + BS_NA64((size_t)g->h * d.rw * 2) + BS_NA64(d.owp * 4));
    const int16_t *rows[BS_NDW_MAX_KH];
    int32_t kh = g->kh, kw = g->kw, ntaps = kh * kw;
    size_t in_count = (size_t)g->h * g->w, n = (size_t)g->oh * g->ow, pw = (size_t)g->pw, w = (size_t)g->w;
    const int8x16_t flip = vdupq_n_s8(j->xt == BS_T_U8 ? (int8_t)-128 : 0);
    int16_t sz = (int16_t)(j->xt == BS_T_U8 ? j->p->x_zero - 128 : j->p->x_zero);
    const int16x8_t vsz = vdupq_n_s16(sz);
    const int8_t *wp = (const int8_t *)h + 64 + BS_NA64((size_t)h->groups * h->mg8 * 4);
    size_t c0 = (size_t)task * BS_NDW_CH_PER_TASK, c1 = c0 + BS_NDW_CH_PER_TASK < (size_t)s->c ? c0 + BS_NDW_CH_PER_TASK : (size_t)s->c;
    for (size_t c = c0; c < c1; c++) {
        const int8_t *xc = (const int8_t *)j->x + c * in_count;
        const int8_t *wc = wp + c * (size_t)h->kg * 32;   /* channel c: lane 0 of block c (mg = 1, mg8 = 8) */
        for (int32_t t = 0; t < ntaps; t++) wts[t] = wc[(size_t)(t / 4) * 32 + t % 4];
        bs_nepi e;
        bs_nepi_of(j, c, &e);
        /* the channel's plane as int16 x - x_zero, each row from column -pw, zeros around */
        for (size_t ih = 0; ih < (size_t)g->h; ih++) {
            int16_t *b = plane + ih * d.rw;
            const int8_t *xr = xc + ih * w;
            memset(b, 0, pw * 2);
            size_t i = 0;
            for (; i + 16 <= w; i += 16) {
                int8x16_t v = veorq_s8(vld1q_s8(xr + i), flip);
                vst1q_s16(b + pw + i, vsubq_s16(vmovl_s8(vget_low_s8(v)), vsz));
                vst1q_s16(b + pw + i + 8, vsubq_s16(vmovl_high_s8(v), vsz));
            }
            for (; i + 8 <= w; i += 8)
                vst1q_s16(b + pw + i, vsubq_s16(vmovl_s8(veor_s8(vld1_s8(xr + i), vget_low_s8(flip))), vsz));
            if (i < w) {   /* the last 1-7 through a copy (the input may end there); the extra lanes are zeroed below */
                int8_t tail[8] = {0};
                memcpy(tail, xr + i, w - i);
                vst1q_s16(b + pw + i, vsubq_s16(vmovl_s8(veor_s8(vld1_s8(tail), vget_low_s8(flip))), vsz));
            }
            memset(b + pw + w, 0, (d.rw - pw - w) * 2);
        }
        for (int32_t oh = 0; oh < g->oh; oh++) {
            for (int32_t r = 0; r < kh; r++) {
                int64_t ih = (int64_t)oh * g->sh - g->ph + (int64_t)r * g->dh;
                rows[r] = ih < 0 || ih >= g->h ? NULL : plane + (size_t)ih * d.rw;
            }
            for (size_t ow0 = 0; ow0 < d.owp; ow0 += 8) {
                int32x4_t lo = vdupq_n_s32(0), hi = lo;
                for (int32_t r = 0; r < kh; r++) {
                    if (!rows[r]) continue;
                    const int16_t *src = rows[r] + ow0 * (size_t)g->sw;
                    const int16_t *wr = wts + (size_t)r * kw;
                    if (g->sw == 1) {
                        for (int32_t q = 0; q < kw; q++, src += g->dw) {
                            int16x8_t v = vld1q_s16(src);
                            lo = vmlal_n_s16(lo, vget_low_s16(v), wr[q]);
                            hi = vmlal_high_n_s16(hi, v, wr[q]);
                        }
                    } else if (g->sw == 2) {
                        for (int32_t q = 0; q < kw; q++, src += g->dw) {
                            int16x8_t v = vld2q_s16(src).val[0];
                            lo = vmlal_n_s16(lo, vget_low_s16(v), wr[q]);
                            hi = vmlal_high_n_s16(hi, v, wr[q]);
                        }
                    } else {
                        for (int32_t q = 0; q < kw; q++, src += g->dw) {
                            int16_t tmp[8];
                            for (int e = 0; e < 8; e++) tmp[e] = src[(size_t)e * g->sw];
                            int16x8_t v = vld1q_s16(tmp);
                            lo = vmlal_n_s16(lo, vget_low_s16(v), wr[q]);
                            hi = vmlal_high_n_s16(hi, v, wr[q]);
                        }
                    }
                }
                vst1q_s32(acc + ow0, lo);
                vst1q_s32(acc + ow0 + 4, hi);
            }
            size_t off = c * n + (size_t)oh * g->ow;
            for (size_t ow0 = 0; ow0 < (size_t)g->ow; ow0 += 8)
                bs_nepilogue(j, &e, vld1q_s32(acc + ow0), vld1q_s32(acc + ow0 + 4), 0, c, off + ow0, 1,
                             (size_t)g->ow - ow0 < 8 ? (size_t)g->ow - ow0 : 8);
        }
    }
}

/* ---- stages ---- */
typedef struct bs_nlayout {
    bs_ngeo o;
    uint8_t *tmp, *ilv;   /* ilv: groups consecutive interleaved buffers */
} bs_nlayout;

static void bs_nlayout_of(const bs_avx2_job *j, bs_nlayout *l) {
    bs_ngeometry(j, &l->o);
    uint8_t *s = (uint8_t *)(((uintptr_t)j->scratch + 63) & ~(uintptr_t)63);
    l->tmp = s;
    l->ilv = s + l->o.tmp_bytes;
}

int32_t bs_neon_stages(const bs_avx2_job *j) {
    if (bs_ndw_tasks(j)) return 1;
    bs_ngeo o;
    bs_ngeometry(j, &o);
    return o.fallback ? 1 : 2;
}

int32_t bs_neon_tasks(const bs_avx2_job *j, int32_t stage) {
    int32_t dw = bs_ndw_tasks(j);
    if (dw) return dw;
    bs_ngeo o;
    bs_ngeometry(j, &o);
    if (o.fallback) return 1;
    if (stage == 0) return (int32_t)o.tasks0;
    return (int32_t)((size_t)o.groups * bs_ncdiv(o.nb, BS_NTILE) * bs_ncdiv((size_t)o.mg8 / 8, BS_NCB_PER_TASK));
}

static void bs_nfallback(const bs_avx2_job *j) {
    int8_t *w = (int8_t *)(((uintptr_t)j->scratch + 63) & ~(uintptr_t)63);
    bs_nunpack_weights((const bs_npacked *)j->packed, w);
    if (j->conv) {
        if (j->rq) {
            if (j->xt == BS_T_U8) bs_qu8_conv_requant__generic(j->conv, (const uint8_t *)j->x, w, j->p, j->rq, j->y, j->yt);
            else bs_qs8_conv_requant__generic(j->conv, (const int8_t *)j->x, w, j->p, j->rq, j->y, j->yt);
        } else {
            if (j->xt == BS_T_U8) bs_qu8_conv__generic(j->conv, (const uint8_t *)j->x, w, j->p, (int32_t *)j->y);
            else bs_qs8_conv__generic(j->conv, (const int8_t *)j->x, w, j->p, (int32_t *)j->y);
        }
    } else {
        if (j->rq) {
            if (j->xt == BS_T_U8) bs_qu8_gemm_requant__generic(j->rows, j->k, j->m, 1, (const uint8_t *)j->x, w, j->p, j->rq, j->y, j->yt);
            else bs_qs8_gemm_requant__generic(j->rows, j->k, j->m, 1, (const int8_t *)j->x, w, j->p, j->rq, j->y, j->yt);
        } else {
            if (j->xt == BS_T_U8) bs_qu8_gemm__generic(j->rows, j->k, j->m, 1, (const uint8_t *)j->x, w, j->p, (int32_t *)j->y);
            else bs_qs8_gemm__generic(j->rows, j->k, j->m, 1, (const int8_t *)j->x, w, j->p, (int32_t *)j->y);
        }
    }
}

void bs_neon_run(const bs_avx2_job *j, int32_t stage, int32_t task) {
    if (bs_ndw_tasks(j)) { bs_ndw_run(j, task); return; }
    bs_nlayout l;
    bs_nlayout_of(j, &l);
    const bs_ngeo *o = &l.o;
    if (o->fallback) { bs_nfallback(j); return; }
    size_t per_g = bs_ncdiv((size_t)o->kg, BS_NKG_PER_TASK);
    if (stage == 0) {   /* gather 4 * BS_NKG_PER_TASK rows of one group, interleaving each k-group at once */
        size_t g = (size_t)task / per_g;
        int32_t q0 = (int32_t)((size_t)task % per_g) * BS_NKG_PER_TASK, q1 = q0 + BS_NKG_PER_TASK;
        if (q1 > o->kg) q1 = o->kg;
        uint8_t *ilv = l.ilv + g * o->ilv_bytes;
        if (!j->conv) { bs_ninterleave_gemm(j, o, ilv, q0, q1); return; }
        /* the task's own 4 rows of the gather area, reused for each of its k-groups (they stay in cache) */
        uint8_t *buf = l.tmp + (size_t)task * 4 * o->npad;
        bs_nkpos kp;
        bs_nkpos_of(j, g, (size_t)q0 * 4, &kp);
        for (int32_t q = q0; q < q1; q++) {
            for (size_t i = 0; i < 4; i++) { bs_ngather_row(j, o, &kp, buf + i * o->npad); bs_nkpos_next(j, &kp); }
            bs_ninterleave(o, buf, ilv, q);
        }
        return;
    }
    /* stage 1: GEMM of one group, one tile of pixel blocks, a range of channel blocks */
    size_t ncb = (size_t)o->mg8 / 8, tiles = bs_ncdiv(o->nb, BS_NTILE), cbt = bs_ncdiv(ncb, BS_NCB_PER_TASK);
    size_t g = (size_t)task / (tiles * cbt), rest = (size_t)task % (tiles * cbt), tl = rest / cbt;
    size_t cb0 = (rest % cbt) * BS_NCB_PER_TASK, cb1 = cb0 + BS_NCB_PER_TASK;
    if (cb1 > ncb) cb1 = ncb;
    const bs_npacked *h = (const bs_npacked *)j->packed;
    const int32_t *wsum = (const int32_t *)((const unsigned char *)h + 64);
    const int8_t *wp = (const int8_t *)h + 64 + BS_NA64((size_t)h->groups * h->mg8 * 4);
    size_t b0 = tl * BS_NTILE, b1 = b0 + BS_NTILE < o->nb ? b0 + BS_NTILE : o->nb, bstride = (size_t)o->kg * 32;
    /* output: conv y [M, N] (channel stride N, pixel stride 1); gemm y [rows, M] (channel stride 1, row stride M) */
    size_t m_total = (size_t)o->groups * o->mg;
    size_t cstride = j->conv ? o->n : 1, pstride = j->conv ? 1 : m_total;
    for (size_t cb = cb0; cb < cb1; cb++) {
        const int8_t *w = wp + (g * ncb + cb) * bstride;
        size_t nc = (size_t)o->mg - cb * 8 < 8 ? (size_t)o->mg - cb * 8 : 8;   /* real channels of the block */
        bs_nepi epi[8];   /* prepared at the first full pixel block (a batch-1 gemm has none) */
        int32_t corr[8];
        int epi_ready = 0;
        for (size_t b = b0; b < b1; b++) {
            const int8_t *a = (const int8_t *)(l.ilv + g * o->ilv_bytes + b * bstride);
            size_t p0 = b * 8, count = o->n - p0 < 8 ? o->n - p0 : 8;
            if (!j->conv && count < 8) {   /* the last rows of a gemm (all of a batch-1 one): row by row */
                const int32_t *ws = wsum + g * (size_t)o->mg8 + cb * 8;
                const int32x4_t clo = vmulq_n_s32(vld1q_s32(ws), o->sz), chi = vmulq_n_s32(vld1q_s32(ws + 4), o->sz);
                for (size_t p = 0; p < count; p++) {
                    int32x4_t lo, hi;
#if defined(__ARM_FEATURE_DOTPROD)
                    bs_qs8s8_gemm_rq64_1x8c4__neondot(a + p * 4, w, o->kg, &lo, &hi);
#else
                    bs_qs8s8_gemm_rq64_1x8c4__neon(a + p * 4, w, o->kg, &lo, &hi);
#endif
                    bs_nepilogue_row(j, lo, hi, clo, chi, g * (size_t)o->mg + cb * 8, (p0 + p) * m_total + g * (size_t)o->mg + cb * 8, nc);
                }
                continue;
            }
            int32x4_t acc[16];
#if defined(__ARM_FEATURE_DOTPROD)
            bs_qs8s8_gemm_rq64_8x8c4__neondot(a, w, o->kg, acc);
#else
            /* the second half of the weight group (channels 4-7) starts 16 bytes in */
            bs_qs8s8_gemm_rq64_8x4c4__neon(a, w, o->kg, acc);
            if (nc > 4) bs_qs8s8_gemm_rq64_8x4c4__neon(a, w + 16, o->kg, acc + 8);
#endif
            if (!epi_ready) {
                for (size_t c8 = 0; c8 < nc; c8++) {
                    size_t c = cb * 8 + c8;
                    bs_nepi_of(j, g * (size_t)o->mg + c, &epi[c8]);
                    corr[c8] = (int32_t)((uint32_t)o->sz * (uint32_t)wsum[g * (size_t)o->mg8 + c]);
                }
                epi_ready = 1;
            }
            for (size_t c8 = 0; c8 < nc; c8++) {
                size_t oc = g * (size_t)o->mg + cb * 8 + c8;
                bs_nepilogue(j, &epi[c8], acc[2 * c8], acc[2 * c8 + 1], corr[c8], oc, oc * cstride + p0 * pstride, pstride, count);
            }
        }
    }
}

const char *bs_neon_gemm_kernel_name(void) { return BS_NKERNEL_NAME; }

BS_STAGED_ENTRY_POINTS(neon, bs_neon)

#else
typedef int bs_kernels_neon_not_built; /* without aarch64 NEON this file is empty (ISO C wants one declaration) */
#endif
