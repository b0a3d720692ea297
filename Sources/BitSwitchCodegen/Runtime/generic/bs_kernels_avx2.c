/* BitSwitch AVX2 integer kernels. See bs_kernels_avx2.h and docs/c-backend.md ("Kernels"). */
#include "bs_kernels_avx2.h"

#if defined(__AVX2__)
#include <immintrin.h>
#include <limits.h>
#include <string.h>

enum { BS_PACK_S8C4 = 1, BS_PACK_S16C2 = 2, BS_PACK_GEMV8 = 3, BS_PACK_GEMV4 = 4, BS_PACK_GEMV2 = 5 };

/* The packed weights: this header (64 bytes), then int32 wsum[groups*mg4], then per group and per block of 4
 * output channels kg 32-bit groups of 4 channels (16 bytes per k-group): s8 [4 k] (S8C4) or int16 [2 k] (S16C2). */
typedef struct bs_packed {
    int32_t mode, groups, mg, k, kg, mg4, bits, shift;
    int32_t taps;   /* S8C4 of a conv whose k is in tap-major order (the AVX-512 VNNI direct path): its kernel taps; else 0 */
} bs_packed;

#define BS_A64(x) (((size_t)(x) + 63) & ~(size_t)63)
/* Pixels per task of the gather / interleave stages and channel blocks per GEMM task. */
#define BS_ROWS_PER_TASK 16
#define BS_BLOCKS_PER_TASK 16
#define BS_CB_PER_TASK 16     /* blocks of 4 channels per GEMM task, at most (bs_gemm_tiling) */
#define BS_PLANES_PER_TASK 4  /* input channels per task of the plane path's stage 0 */
#define BS_PLANE_MAXKW 16     /* the widest kernel the plane path takes */
#define BS_GEMV_ROWS 4        /* gemms of at most this many rows take the batch-1 kernels (bs_qs8_pack_weights_rows__avx2) */

size_t bs_qs8_packed_weights_size__avx2(int32_t groups, int32_t mg, int32_t k) {
    size_t mg4 = ((size_t)mg + 3) / 4 * 4, kg2 = ((size_t)k + 1) / 2;
    return 64 + BS_A64((size_t)groups * mg4 * 4) + BS_A64((size_t)groups * mg4 * kg2 * 4);
}

/* Bytes of the weight data (past the header and the sums) a pack at `bits` writes: S16C2 for 8 bits, S8C4 below. */
static size_t bs_packed_data_bytes(int32_t groups, int32_t mg, int32_t k, int32_t bits) {
    size_t mg4 = ((size_t)mg + 3) / 4 * 4, kg = bits >= 8 ? ((size_t)k + 1) / 2 : ((size_t)k + 3) / 4;
    return (size_t)groups * mg4 * kg * 4;
}

size_t bs_qs8_packed_weights_size_bits__avx2(int32_t groups, int32_t mg, int32_t k, int32_t bits) {
    size_t mg4 = ((size_t)mg + 3) / 4 * 4;
    return 64 + BS_A64((size_t)groups * mg4 * 4) + BS_A64(bs_packed_data_bytes(groups, mg, k, bits));
}

/* w_b = clamp(rshr(q, shift), lo, hi) on 32 signed bytes (lo, hi: those of `bits`): rshr(q, s) = (q >> s) + bit s-1
 * of q = floor((q + 2^(s-1)) / 2^s); every shift >= 8 gives 0 (|q| <= 2^(s-1)). The sum is taken saturating: it
 * saturates only where q + 2^(s-1) > 127, whose exact result is 2^(7-s) and the saturated one 127 >> s = 2^(7-s) - 1;
 * when bits <= 8 - s both clamp to hi, else those lanes get their 1 back. The byte shift is a 16-bit logical shift,
 * a mask of each byte's own bits and a sign extension ((t ^ m) - m, m the shifted sign bit). */
static inline __m256i bs_shift_clamp32(__m256i x, int32_t shift, int32_t bits, __m256i lo, __m256i hi) {
    if (shift >= 8) return _mm256_setzero_si256();
    if (shift > 0) {
        const __m256i m = _mm256_set1_epi8((char)(0x80 >> shift));
        __m256i t = _mm256_adds_epi8(x, _mm256_set1_epi8((char)(1 << (shift - 1))));
        t = _mm256_and_si256(_mm256_srl_epi16(t, _mm_cvtsi32_si128(shift)), _mm256_set1_epi8((char)(0xFF >> shift)));
        t = _mm256_sub_epi8(_mm256_xor_si256(t, m), m);
        if (bits > 8 - shift)
            t = _mm256_sub_epi8(t, _mm256_cmpgt_epi8(x, _mm256_set1_epi8((char)(127 - (1 << (shift - 1))))));
        x = t;
    }
    return _mm256_min_epi8(_mm256_max_epi8(x, lo), hi);
}

/* 32 bytes of row r from k offset kc (zeros past k or for a missing row). */
static inline __m256i bs_load_row32(const int8_t *r, int32_t kc, int32_t k) {
    if (!r) return _mm256_setzero_si256();
    if (kc + 32 <= k) return _mm256_loadu_si256((const __m256i *)(r + kc));
    int8_t buf[32] = {0};
    memcpy(buf, r + kc, (size_t)(k - kc));
    return _mm256_loadu_si256((const __m256i *)buf);
}

/* Transposes 4 rows of 8 dwords into out[0..3] = k-groups (q0 q1), (q2 q3), (q4 q5), (q6 q7) of [4 rows][dword]. */
static inline void bs_transpose4x8(__m256i r0, __m256i r1, __m256i r2, __m256i r3, __m256i out[4]) {
    __m256i t0 = _mm256_unpacklo_epi32(r0, r1), t1 = _mm256_unpackhi_epi32(r0, r1);
    __m256i t2 = _mm256_unpacklo_epi32(r2, r3), t3 = _mm256_unpackhi_epi32(r2, r3);
    __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
    __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
    out[0] = _mm256_permute2x128_si256(u0, u1, 0x20);
    out[1] = _mm256_permute2x128_si256(u2, u3, 0x20);
    out[2] = _mm256_permute2x128_si256(u0, u1, 0x31);
    out[3] = _mm256_permute2x128_si256(u2, u3, 0x31);
}

/* Stores the first `groups16` 16-byte k-groups of out[0..3] (128 bytes) at dst. */
static inline void bs_store_kgroups(unsigned char *dst, const __m256i out[4], int32_t groups16) {
    if (groups16 >= 8) {
        if (((uintptr_t)dst & 31) == 0)   /* past the caches (no read for ownership); fenced by the caller */
            for (int i = 0; i < 4; i++) _mm256_stream_si256((__m256i *)(dst + 32 * i), out[i]);
        else
            for (int i = 0; i < 4; i++) _mm256_storeu_si256((__m256i *)(dst + 32 * i), out[i]);
        return;
    }
    unsigned char buf[128];
    for (int i = 0; i < 4; i++) _mm256_storeu_si256((__m256i *)(buf + 32 * i), out[i]);
    memcpy(dst, buf, (size_t)groups16 * 16);
}

/* Per-dword sums of the 4 signed bytes (S8C4) or 2 int16 (S16C2) of 4 vectors of packed weights. */
static inline __m256i bs_dword_sums(const __m256i out[4], int32_t mode) {
    if (mode == BS_PACK_S16C2) {
        const __m256i ones16 = _mm256_set1_epi16(1);
        __m256i s = _mm256_add_epi32(_mm256_madd_epi16(out[0], ones16), _mm256_madd_epi16(out[1], ones16));
        return _mm256_add_epi32(s, _mm256_add_epi32(_mm256_madd_epi16(out[2], ones16), _mm256_madd_epi16(out[3], ones16)));
    }
    const __m256i ones8 = _mm256_set1_epi8(1);
    __m256i s = _mm256_add_epi16(_mm256_maddubs_epi16(ones8, out[0]), _mm256_maddubs_epi16(ones8, out[1]));
    s = _mm256_add_epi16(s, _mm256_add_epi16(_mm256_maddubs_epi16(ones8, out[2]), _mm256_maddubs_epi16(ones8, out[3])));
    return _mm256_madd_epi16(s, _mm256_set1_epi16(1));
}

void bs_qs8_pack_header__avx2(void *packed, int32_t groups, int32_t mg, int32_t k, int32_t shift, int32_t bits, int32_t mode) {
    bs_packed *h = (bs_packed *)packed;
    int32_t per = mode == BS_PACK_S8C4 ? 4 : 2;
    h->mode = mode; h->groups = groups; h->mg = mg; h->k = k; h->kg = (k + per - 1) / per; h->mg4 = (mg + 3) / 4 * 4;
    h->bits = bits; h->shift = shift; h->taps = 0;
}

/* The data and sums of channel blocks [cb0, cb1) of group g of row-major q8 [groups*mg, k] (not kmajor), with the
 * header's parameters; the data by non-temporal stores, then an sfence. */
static void bs_pack_blocks(const int8_t *q8, void *packed, int32_t g, int32_t cb0, int32_t cb1) {
    /* q8 [groups*mg, k]: per block of 4 channels, 32 k at a time from each of the 4 rows, a 4 x 8 dword transpose
     * (S8C4: 4 k per dword; S16C2: sign-extended halves, 2 k per dword). */
    const bs_packed *h = (const bs_packed *)packed;
    int32_t mode = h->mode, mg = h->mg, k = h->k, kg = h->kg, mg4 = h->mg4, ncb = mg4 / 4, shift = h->shift;
    int32_t lo = -(1 << (h->bits - 1)), hi = (1 << (h->bits - 1)) - 1;
    int32_t *wsum = (int32_t *)((unsigned char *)packed + 64);
    unsigned char *wp = (unsigned char *)packed + 64 + BS_A64((size_t)h->groups * mg4 * 4);
    const __m256i LO = _mm256_set1_epi8((char)lo), HI = _mm256_set1_epi8((char)hi);
    for (int32_t cb = cb0; cb < cb1; cb++) {
        unsigned char *base = wp + ((size_t)g * ncb + cb) * (size_t)kg * 16;
        const int8_t *row[4];
        for (int32_t c4 = 0; c4 < 4; c4++)
            row[c4] = cb * 4 + c4 < mg ? q8 + ((size_t)g * mg + (size_t)cb * 4 + c4) * (size_t)k : NULL;
        __m256i sums = _mm256_setzero_si256();
        for (int32_t kc = 0; kc < k; kc += 32) {
            __m256i r[4], out[4];
            for (int i = 0; i < 4; i++) r[i] = bs_shift_clamp32(bs_load_row32(row[i], kc, k), shift, h->bits, LO, HI);
            if (mode == BS_PACK_S8C4) {
                int32_t q0 = kc / 4;
                bs_transpose4x8(r[0], r[1], r[2], r[3], out);
                bs_store_kgroups(base + (size_t)q0 * 16, out, kg - q0);
                sums = _mm256_add_epi32(sums, bs_dword_sums(out, mode));
            } else {
                for (int half = 0; half < 2; half++) {
                    int32_t q0 = kc / 2 + half * 8;
                    if (q0 >= kg) break;
                    __m256i e[4];
                    for (int i = 0; i < 4; i++)
                        e[i] = _mm256_cvtepi8_epi16(half ? _mm256_extracti128_si256(r[i], 1) : _mm256_castsi256_si128(r[i]));
                    bs_transpose4x8(e[0], e[1], e[2], e[3], out);
                    bs_store_kgroups(base + (size_t)q0 * 16, out, kg - q0);
                    sums = _mm256_add_epi32(sums, bs_dword_sums(out, mode));
                }
            }
        }
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sums), _mm256_extracti128_si256(sums, 1));
        _mm_storeu_si128((__m128i *)(wsum + (size_t)g * mg4 + (size_t)cb * 4), s4);
    }
    _mm_sfence();   /* the streamed stores are visible before the pool's completion count says so */
}

void bs_qs8_pack_weights_layout__avx2(const int8_t *q8, void *packed, int32_t groups, int32_t mg, int32_t k,
                                      int32_t kmajor, int32_t shift, int32_t bits, int32_t mode) {
    bs_qs8_pack_header__avx2(packed, groups, mg, k, shift, bits, mode);
    bs_packed *h = (bs_packed *)packed;
    int32_t per = mode == BS_PACK_S8C4 ? 4 : 2;
    int32_t mg4 = h->mg4, kg = h->kg;
    int32_t lo = -(1 << (bits - 1)), hi = (1 << (bits - 1)) - 1;
    int32_t *wsum = (int32_t *)((unsigned char *)packed + 64);
    unsigned char *wp = (unsigned char *)packed + 64 + BS_A64((size_t)groups * mg4 * 4);
    const __m256i LO = _mm256_set1_epi8((char)lo), HI = _mm256_set1_epi8((char)hi);
    if (!kmajor) {
        for (int32_t g = 0; g < groups; g++) bs_pack_blocks(q8, packed, g, 0, mg4 / 4);
        return;
    }
    /* q8 [k, mg] (groups == 1): 16 channels (4 channel blocks) at a time, per k-group the 4 (S8C4) or 2 (S16C2) rows of
     * 16 bytes interleaved into [4 channels][4 or 2 k] for each of the 4 blocks. */
    for (int32_t oc = 0; oc < mg4; oc += 16) {
        __m128i sums[4] = {_mm_setzero_si128(), _mm_setzero_si128(), _mm_setzero_si128(), _mm_setzero_si128()};
        int32_t cbs = (mg4 - oc) / 4 < 4 ? (mg4 - oc) / 4 : 4;
        for (int32_t q = 0; q < kg; q++) {
            __m128i r[4] = {_mm_setzero_si128(), _mm_setzero_si128(), _mm_setzero_si128(), _mm_setzero_si128()};
            for (int32_t j = 0; j < per; j++) {
                int32_t kk = q * per + j;
                __m128i v = _mm_setzero_si128();
                if (kk < k) {
                    const int8_t *src = q8 + (size_t)kk * mg + oc;
                    if (oc + 16 <= mg) v = _mm_loadu_si128((const __m128i *)src);
                    else { int8_t buf[16] = {0}; memcpy(buf, src, (size_t)(mg - oc)); v = _mm_loadu_si128((const __m128i *)buf); }
                }
                r[j] = _mm256_castsi256_si128(bs_shift_clamp32(_mm256_castsi128_si256(v), shift, bits, LO, HI));
            }
            __m128i cbv[4];
            if (mode == BS_PACK_S8C4) {
                __m128i a0 = _mm_unpacklo_epi8(r[0], r[1]), a1 = _mm_unpackhi_epi8(r[0], r[1]);
                __m128i c0 = _mm_unpacklo_epi8(r[2], r[3]), c1 = _mm_unpackhi_epi8(r[2], r[3]);
                cbv[0] = _mm_unpacklo_epi16(a0, c0); cbv[1] = _mm_unpackhi_epi16(a0, c0);
                cbv[2] = _mm_unpacklo_epi16(a1, c1); cbv[3] = _mm_unpackhi_epi16(a1, c1);
                const __m128i ones8 = _mm_set1_epi8(1), ones16 = _mm_set1_epi16(1);
                for (int i = 0; i < 4; i++) sums[i] = _mm_add_epi32(sums[i], _mm_madd_epi16(_mm_maddubs_epi16(ones8, cbv[i]), ones16));
            } else {
                __m128i l0 = _mm_cvtepi8_epi16(r[0]), h0 = _mm_cvtepi8_epi16(_mm_srli_si128(r[0], 8));
                __m128i l1 = _mm_cvtepi8_epi16(r[1]), h1 = _mm_cvtepi8_epi16(_mm_srli_si128(r[1], 8));
                cbv[0] = _mm_unpacklo_epi16(l0, l1); cbv[1] = _mm_unpackhi_epi16(l0, l1);
                cbv[2] = _mm_unpacklo_epi16(h0, h1); cbv[3] = _mm_unpackhi_epi16(h0, h1);
                const __m128i ones16 = _mm_set1_epi16(1);
                for (int i = 0; i < 4; i++) sums[i] = _mm_add_epi32(sums[i], _mm_madd_epi16(cbv[i], ones16));
            }
            for (int32_t i = 0; i < cbs; i++)
                _mm_storeu_si128((__m128i *)(wp + ((size_t)(oc / 4 + i) * kg + q) * 16), cbv[i]);
        }
        for (int32_t i = 0; i < cbs; i++) _mm_storeu_si128((__m128i *)(wsum + oc + 4 * i), sums[i]);
    }
}

void bs_qs8_pack_weights__avx2(const int8_t *q8, void *packed, int32_t groups, int32_t mg, int32_t k, int32_t kmajor,
                               int32_t shift, int32_t bits) {
    bs_qs8_pack_weights_layout__avx2(q8, packed, groups, mg, k, kmajor, shift, bits, bits <= 7 ? BS_PACK_S8C4 : BS_PACK_S16C2);
}

static int bs_gemv_fits(int32_t groups, int32_t mg, int32_t k, int32_t bits);
static int32_t bs_gemv_mode(int32_t bits);
static int32_t bs_gemv_kper(int32_t mode);
static void bs_pack_gemv(const int8_t *q8, void *packed, int32_t mg, int32_t k, int32_t kmajor, int32_t shift, int32_t bits);
int32_t bs_qs8_pack_gemv_within__avx2(const int8_t *q8, void *packed, int32_t groups, int32_t mg, int32_t k, int32_t kmajor,
                                      int32_t shift, int32_t bits, size_t rows, size_t limit) {
    if (rows < 1 || rows > BS_GEMV_ROWS || groups != 1) return 0;
    size_t mg4 = ((size_t)mg + 3) / 4 * 4, kper = (size_t)bs_gemv_kper(bs_gemv_mode(bits));
    if (mg4 * (((size_t)k + kper - 1) / kper) * 32 > limit) return 0;
    bs_pack_gemv(q8, packed, mg, k, kmajor, shift, bits);
    return 1;
}

void bs_qs8_pack_weights_rows__avx2(const int8_t *q8, void *packed, int32_t groups, int32_t mg, int32_t k, int32_t kmajor,
                                    int32_t shift, int32_t bits, size_t rows) {
    if (rows >= 1 && rows <= BS_GEMV_ROWS && bs_gemv_fits(groups, mg, k, bits)) bs_pack_gemv(q8, packed, mg, k, kmajor, shift, bits);
    else bs_qs8_pack_weights__avx2(q8, packed, groups, mg, k, kmajor, shift, bits);
}

/* Plain [groups*mg, k] shifted weights from the packed form (the fallback path of unusual zero points). */
static void bs_unpack_weights(const bs_packed *h, int8_t *w) {
    const unsigned char *wp = (const unsigned char *)h + 64 + BS_A64((size_t)h->groups * h->mg4 * 4);
    for (int32_t g = 0; g < h->groups; g++)
        for (int32_t c = 0; c < h->mg; c++) {
            const unsigned char *base = wp + ((size_t)g * (h->mg4 / 4) + c / 4) * (size_t)h->kg * 16;
            for (int32_t kk = 0; kk < h->k; kk++) {
                int32_t v = h->mode == BS_PACK_S8C4 ? ((const int8_t *)base)[(size_t)(kk / 4) * 16 + (c % 4) * 4 + kk % 4]
                                                    : ((const int16_t *)base)[(size_t)(kk / 2) * 8 + (c % 4) * 2 + kk % 2];
                w[((size_t)g * h->mg + c) * h->k + kk] = (int8_t)v;
            }
        }
}

/* ---- geometry of one job ---- */
typedef bs_avx2_geo bs_geo;

/* The plane path takes 2-D (and 1-D) convs whose blocks of 8 output pixels each read one contiguous run of every
 * tap, when its planes fit where the gathered rows would go. Stage 0 converts each input channel once into sw phase
 * planes: phase f holds the input columns f, f + sw, ... (pc = ceil(w / sw) columns), in plane_rows =
 * (oh - 1) sh + (kh - 1) dh + 1 rows (the input's rows after ph padding rows, then padding rows), after pw padding
 * elements. Tap (kh, kw) of output pixel (oh, ow) reads input column ow sw + kw dw - pw: phase (kw dw - pw) mod sw,
 * element pw + (oh sh + kh dh) pc + ow + floor((kw dw - pw) / sw). Within an output row that is a contiguous run;
 * blocks stay within one row when ow is a multiple of 8 or there is one output row, and when sh pc = ow (stride 1,
 * output width = input width: 3x3 pad 1, 1x1) the offset is p + const for every pixel p, whatever the rows. The
 * lanes whose input column is in the padding (or that are past the last pixel) read a neighbouring element and
 * are replaced by the padding value. Stage 1 interleaves those runs into the GEMM layout (bs_plane_interleave). */
static void bs_plane_fits(const bs_conv_shape *s, bs_geo *o) {
    const bs_window *g = &s->win;
    if (g->d != 1 || g->od != 1 || g->kd != 1 || g->pd != 0 || g->kw > BS_PLANE_MAXKW || g->oh < 1 || g->ow < 1 ||
        g->sh < 1 || g->sw < 1 || g->dh < 1 || g->dw < 1)
        return;
    size_t pc = ((size_t)g->w + g->sw - 1) / g->sw;
    int linear = (size_t)g->sh * pc == (size_t)g->ow;
    /* blocks straddle at most two rows when ow >= 7 (and pc >= 8 keeps the second row's run inside the plane) */
    int straddle = !linear && g->oh != 1 && g->ow % 8 != 0;
    if (straddle && (g->ow < 7 || pc < 8)) return;
    size_t rows = (size_t)(g->oh - 1) * g->sh + (size_t)(g->kh - 1) * g->dh + 1;
    /* elements up to the last row, and past the farthest read: the last block's last lane (linear: pixel npad - 1;
     * else the last row's last column, or pixel npad - 1 of the one row) at the last kh, at the farthest kw */
    int64_t cmax = ((int64_t)(g->kw - 1) * g->dw - g->pw) / g->sw;   /* floor when >= 0; 0 when negative */
    size_t last = linear ? o->npad - 1
                : straddle ? (size_t)g->oh * g->sh * pc + 7   /* the last block's lanes past the last pixel: row oh */
                : (size_t)(g->oh - 1) * g->sh * pc + (g->oh == 1 ? o->npad - 1 : (size_t)g->ow - 1);
    size_t len = (size_t)g->pw + rows * pc, reach = (size_t)g->pw + last + (size_t)(g->kh - 1) * g->dh * pc + (size_t)(cmax > 0 ? cmax : 0) + 1;
    len = ((len > reach ? len : reach) + 7) / 8 * 8;
    if (BS_A64((size_t)s->c * g->sw * len * o->esize) > o->tmp_bytes) return;
    o->plane = 1; o->plane_linear = linear; o->plane_straddle = straddle; o->plane_rows = rows; o->plane_pc = pc; o->plane_len = len;
}

/* The tasks of the interleave and GEMM stages. A GEMM task runs task_pairs pairs of 8-pixel blocks against task_cbs
 * blocks of 4 channels and sets up each of its channels' epilogue once (bs_epi_setup, tens of instructions). Small-k
 * layers do little else per output than that epilogue, so their tasks take more pairs (up to 32 at k-groups <= 8:
 * MobileNetV2's 16 -> 96 expand conv's GEMM stage 12 % faster than at 4 pairs). With threads > 1 the stages are then
 * split until there are 4 tasks per thread: the GEMM's channel blocks first (down to 1: no extra set-ups), then its
 * pairs; the interleave's k-groups (parts of 8 or more). ResNet-20's 8x8 convs had been one task each. The results do
 * not depend on the tiling. */
static void bs_gemm_tiling(bs_geo *o, int32_t threads) {
    size_t pairs = (o->nb + 1) / 2, ncb = (size_t)o->mg4 / 4, kg = o->kg > 0 ? (size_t)o->kg : 1;
    size_t want = threads > 1 ? 4 * (size_t)threads : 1;
    size_t tp = 256 / kg, tc = BS_CB_PER_TASK;
    tp = tp < 4 ? 4 : (tp > 32 ? 32 : tp);
    if (tp > pairs) tp = pairs > 0 ? pairs : 1;
    if (tc > ncb) tc = ncb > 0 ? ncb : 1;
    while ((size_t)o->groups * ((pairs + tp - 1) / tp) * ((ncb + tc - 1) / tc) < want && (tp > 1 || tc > 1)) {
        if (tc > 1) tc = (tc + 1) / 2;
        else tp = (tp + 1) / 2;
    }
    o->task_pairs = tp; o->task_cbs = tc;
    size_t kp = 1, bt = (size_t)o->groups * ((o->nb + BS_BLOCKS_PER_TASK - 1) / BS_BLOCKS_PER_TASK);
    while (bt * kp < want && kg / (kp * 2) >= 8) kp *= 2;
    o->ilv_kparts = kp;
}

static void bs_geometry(const bs_avx2_job *j, bs_geo *o) {
    const bs_packed *h = (const bs_packed *)j->packed;
    memset(o, 0, sizeof *o);
    o->mode = h->mode; o->groups = h->groups; o->mg = h->mg; o->mg4 = h->mg4; o->k = h->k; o->kg = h->kg;
    if (j->conv) {
        const bs_window *g = &j->conv->win;
        o->n = (size_t)g->od * g->oh * g->ow;
    } else {
        o->n = j->rows;
    }
    o->npad = (o->n + 7) / 8 * 8;
    o->nb = o->npad / 8;
    o->esize = h->mode == BS_PACK_S8C4 ? 1 : 2;
    int32_t per = h->mode == BS_PACK_S8C4 ? 4 : 2;
    o->tmp_bytes = BS_A64((size_t)h->groups * h->kg * per * o->npad * o->esize);
    o->ilv_bytes = (size_t)h->kg * 32 * o->nb;   /* a multiple of 32: aligned loads stay aligned */
    int64_t xz = j->p->x_zero;
    if (h->mode == BS_PACK_S8C4) {
        int64_t uz = j->xt == BS_T_U8 ? xz : xz + 128;
        o->uz = (int32_t)uz;
        o->fallback = uz < 0 || uz > 255;
    } else {
        int64_t xmin = j->xt == BS_T_U8 ? 0 : -128, xmax = j->xt == BS_T_U8 ? 255 : 127;
        o->uz = (int32_t)xz;
        o->fallback = xmin - xz < -32768 || xmax - xz > 32767;
    }
    if (j->conv && !o->fallback) bs_plane_fits(j->conv, o);
    bs_gemm_tiling(o, j->threads);
}

static size_t bs_scratch_for(size_t groups, size_t mg, size_t k, size_t n) {
    size_t npad = (n + 7) / 8 * 8, mg4 = (mg + 3) / 4 * 4;
    /* the larger of the two modes: int16 rows of k rounded to 2, or bytes rounded to 4 */
    size_t k2 = (k + 1) / 2 * 2, k4 = (k + 3) / 4 * 4;
    size_t tmp = BS_A64(groups * (k2 * 2 > k4 ? k2 * 2 : k4) * npad);
    size_t ilv = BS_A64(groups * (k2 * 2 > k4 ? k2 * 2 : k4) * npad);
    size_t fb = BS_A64(groups * mg4 * k);
    return 64 + tmp + (ilv > fb ? ilv : fb);
}

size_t bs_conv_scratch_size__avx2(const bs_conv_shape *s) {
    const bs_window *g = &s->win;
    size_t k = (size_t)(s->c / s->group) * g->kd * g->kh * g->kw;
    return bs_scratch_for((size_t)s->group, (size_t)(s->m / s->group), k, (size_t)g->od * g->oh * g->ow);
}

size_t bs_gemm_scratch_size__avx2(size_t rows, size_t k, size_t m) { return bs_scratch_for(1, m, k, rows); }

/* dst[0..n) = u (x, or x ^ 0x80 for i8: u8 mode) or x - xz (int16 mode) of src[0..n). */
static void bs_convert_run(const unsigned char *src, int is_u8, int esize, int32_t xz, size_t n, unsigned char *dst) {
    size_t i = 0;
    if (esize == 1) {
        if (is_u8) { memcpy(dst, src, n); return; }
        const __m256i f = _mm256_set1_epi8((char)0x80);
        for (; i + 32 <= n; i += 32)
            _mm256_storeu_si256((__m256i *)(dst + i), _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(src + i)), f));
        for (; i < n; i++) dst[i] = src[i] ^ 0x80;
        return;
    }
    int16_t *d = (int16_t *)dst;
    const __m256i Z = _mm256_set1_epi16((short)xz);
    for (; i + 16 <= n; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(src + i));
        _mm256_storeu_si256((__m256i *)(d + i), _mm256_sub_epi16(is_u8 ? _mm256_cvtepu8_epi16(v) : _mm256_cvtepi8_epi16(v), Z));
    }
    for (; i < n; i++) d[i] = (int16_t)((is_u8 ? (int32_t)src[i] : (int32_t)(int8_t)src[i]) - xz);
}

/* pad value over dst[i0, i1) (elements of esize bytes; int16 mode pads with 0 = x_zero - x_zero) */
static inline void bs_pad_run(unsigned char *row, int esize, uint8_t padu, size_t i0, size_t i1) {
    if (i1 <= i0) return;
    if (esize == 1) memset(row + i0, padu, i1 - i0);
    else memset(row + 2 * i0, 0, 2 * (i1 - i0));
}

/* Row (kh, kw) of one input channel plane (xoff) for a stride-1 2-D conv whose output width equals the input width
 * (3x3 pad 1, 1x1, 1-D): the valid output rows read one contiguous stretch of the plane, converted in one vector
 * pass; the outputs whose tap is in the padding (one or two columns per row, whole rows at the top and bottom) are
 * set afterwards. */
static void bs_gather_row_same(const bs_avx2_job *j, const bs_geo *o, size_t xoff, int32_t kh, int32_t kw, unsigned char *row) {
    const bs_window *g = &j->conv->win;
    int is_u8 = j->xt == BS_T_U8;
    int esize = o->esize;
    uint8_t padu = (uint8_t)o->uz;
    const unsigned char *xc = (const unsigned char *)j->x + xoff;
    int64_t in_count = (int64_t)g->h * g->w, ow = g->ow;
    int64_t iw0 = -(int64_t)g->pw + (int64_t)kw * g->dw;
    int64_t lo0 = iw0 >= 0 ? 0 : -iw0, hi0 = iw0 >= g->w ? 0 : g->w - iw0;
    if (hi0 > ow) hi0 = ow;
    if (lo0 >= hi0) { lo0 = 0; hi0 = 0; }
    int64_t ohl = (int64_t)g->ph - (int64_t)kh * g->dh, ohh = (int64_t)g->h + g->ph - (int64_t)kh * g->dh;
    if (ohl < 0) ohl = 0;
    if (ohl > g->oh) ohl = g->oh;   /* a tap below every output row (dilated kernels on short planes) */
    if (ohh > g->oh) ohh = g->oh;
    if (ohh < ohl) ohh = ohl;
    bs_pad_run(row, esize, padu, 0, (size_t)(ohl * ow));
    if (ohh > ohl) {
        /* output pixel ohl*ow + i reads plane element start + i; lanes outside the plane are padding columns */
        int64_t start = (ohl - g->ph + (int64_t)kh * g->dh) * g->w + iw0, count = (ohh - ohl) * ow;
        int64_t a = start < 0 ? 0 : start, b = start + count > in_count ? in_count : start + count;
        size_t base = (size_t)(ohl * ow);
        if (b > a) bs_convert_run(xc + a, is_u8, esize, j->p->x_zero, (size_t)(b - a), row + (base + (size_t)(a - start)) * (size_t)esize);
        for (int64_t oh = ohl; oh < ohh; oh++) {
            size_t r0 = (size_t)(oh * ow);
            bs_pad_run(row, esize, padu, r0, r0 + (size_t)lo0);   /* lo0 = hi0 = 0 when no column is valid */
            bs_pad_run(row, esize, padu, r0 + (size_t)hi0, r0 + (size_t)ow);
        }
    }
    bs_pad_run(row, esize, padu, (size_t)(ohh * ow), o->npad);
}

/* ---- stage 0: gather rows. Row r = (group, kk) holds, for every output pixel, u (S8C4) or x - xz (S16C2). ---- */
static void bs_gather_row(const bs_avx2_job *j, const bs_geo *o, size_t r, unsigned char *tmp) {
    int32_t per = o->mode == BS_PACK_S8C4 ? 4 : 2;
    size_t kpad = (size_t)o->kg * per;
    size_t grp = r / kpad, kk = r % kpad;
    unsigned char *row8 = tmp + r * o->npad * o->esize;
    int16_t *row16 = (int16_t *)row8;
    int is_u8 = j->xt == BS_T_U8;
    const uint8_t *xu = (const uint8_t *)j->x;
    const int8_t *xs = (const int8_t *)j->x;
    int32_t xz = (int32_t)j->p->x_zero;
    if ((int32_t)kk >= o->k) {
        memset(row8, 0, o->npad * o->esize);
        return;
    }
    if (!j->conv) {   /* gemm: x [rows, k]; row kk is column kk of x */
        for (size_t p = 0; p < o->n; p++) {
            int32_t v = is_u8 ? xu[p * o->k + kk] : xs[p * o->k + kk];
            if (o->esize == 1) row8[p] = (uint8_t)(is_u8 ? v : v + 128);
            else row16[p] = (int16_t)(v - xz);
        }
        for (size_t p = o->n; p < o->npad; p++) { if (o->esize == 1) row8[p] = 0; else row16[p] = 0; }
        return;
    }
    const bs_conv_shape *s = j->conv;
    const bs_window *g = &s->win;
    int32_t cg = s->c / s->group;
    size_t kcount = (size_t)g->kd * g->kh * g->kw;
    int32_t ic = (int32_t)(kk / kcount);
    size_t rem = kk % kcount;
    int32_t kd = (int32_t)(rem / ((size_t)g->kh * g->kw)), kh = (int32_t)(rem / g->kw % g->kh), kw = (int32_t)(rem % g->kw);
    size_t in_count = (size_t)g->d * g->h * g->w;
    size_t xoff = (size_t)(grp * cg + ic) * in_count;
    uint8_t padu = (uint8_t)o->uz;
    if (g->sw == 1 && g->sh == 1 && g->w == g->ow && g->d == 1 && g->od == 1 && g->kd == 1 && g->pd == 0) {
        bs_gather_row_same(j, o, xoff, kh, kw, row8);
        return;
    }
    size_t p = 0;
    for (int32_t od = 0; od < g->od; od++) {
        int64_t id = (int64_t)od * g->sd - g->pd + (int64_t)kd * g->dd;
        for (int32_t oh = 0; oh < g->oh; oh++) {
            int64_t ih = (int64_t)oh * g->sh - g->ph + (int64_t)kh * g->dh;
            int rowok = id >= 0 && id < g->d && ih >= 0 && ih < g->h;
            size_t base = xoff + ((size_t)(rowok ? id : 0) * g->h + (size_t)(rowok ? ih : 0)) * g->w;
            int64_t iw0 = -(int64_t)g->pw + (int64_t)kw * g->dw;
            /* valid ow: 0 <= iw0 + ow*sw < w */
            int64_t lo = iw0 >= 0 ? 0 : (-iw0 + g->sw - 1) / g->sw;
            int64_t hi = iw0 >= g->w ? 0 : (g->w - 1 - iw0) / g->sw + 1;
            if (hi > g->ow) hi = g->ow;
            if (!rowok || lo >= hi) { lo = 0; hi = 0; }
            /* stride 2: 16 outputs from 32 input bytes (the even ones), while the load stays inside the row */
            int64_t v0 = lo;
            const uint8_t *src2 = xu + base + iw0;   /* output ow reads src2[2 ow] */
            const __m256i EVEN = _mm256_set1_epi16(0x00FF);
            if (o->esize == 1) {
                uint8_t *d = row8 + p;
                for (int64_t ow = 0; ow < lo; ow++) d[ow] = padu;
                if (g->sw == 2)
                    for (; v0 + 16 <= hi && iw0 + 2 * (v0 + 15) + 1 < g->w; v0 += 16) {
                        __m256i v = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(src2 + 2 * v0)), EVEN);
                        __m128i e = _mm256_castsi256_si128(_mm256_permute4x64_epi64(_mm256_packus_epi16(v, v), 0xD8));
                        _mm_storeu_si128((__m128i *)(d + v0), is_u8 ? e : _mm_xor_si128(e, _mm_set1_epi8((char)0x80)));
                    }
                if (is_u8) {
                    if (g->sw == 1) memcpy(d + lo, xu + base + iw0 + lo, (size_t)(hi - lo));
                    else for (int64_t ow = v0; ow < hi; ow++) d[ow] = xu[base + iw0 + ow * g->sw];
                } else {
                    if (g->sw == 1) { const uint8_t *sx = (const uint8_t *)xs + base + iw0; for (int64_t ow = lo; ow < hi; ow++) d[ow] = sx[ow] ^ 0x80; }
                    else for (int64_t ow = v0; ow < hi; ow++) d[ow] = (uint8_t)xs[base + iw0 + ow * g->sw] ^ 0x80;
                }
                for (int64_t ow = hi > lo ? hi : lo; ow < g->ow; ow++) d[ow] = padu;
            } else {
                int16_t *d = row16 + p;
                for (int64_t ow = 0; ow < lo; ow++) d[ow] = 0;
                if (g->sw == 2)
                    for (; v0 + 16 <= hi && iw0 + 2 * (v0 + 15) + 1 < g->w; v0 += 16) {
                        __m256i v = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(src2 + 2 * v0)), EVEN);
                        __m128i e = _mm256_castsi256_si128(_mm256_permute4x64_epi64(_mm256_packus_epi16(v, v), 0xD8));
                        __m256i w16 = is_u8 ? _mm256_cvtepu8_epi16(e) : _mm256_cvtepi8_epi16(e);
                        _mm256_storeu_si256((__m256i *)(d + v0), _mm256_sub_epi16(w16, _mm256_set1_epi16((short)xz)));
                    }
                if (is_u8) for (int64_t ow = v0; ow < hi; ow++) d[ow] = (int16_t)((int32_t)xu[base + iw0 + ow * g->sw] - xz);
                else for (int64_t ow = v0; ow < hi; ow++) d[ow] = (int16_t)((int32_t)xs[base + iw0 + ow * g->sw] - xz);
                for (int64_t ow = hi > lo ? hi : lo; ow < g->ow; ow++) d[ow] = 0;
            }
            p += (size_t)g->ow;
        }
    }
    for (; p < o->npad; p++) { if (o->esize == 1) row8[p] = padu; else row16[p] = 0; }
}

/* Input row x (w columns, u8 or i8) split by column parity into the GEMM's element type: the even columns to
 * ev[0, ceil(w / 2)), the odd ones to od[0, floor(w / 2)), as u (x, or x ^ 0x80 for i8; esize 1) or x - xz (int16;
 * esize 2). 32 columns (16 of each parity) per step straight from the row, the last step moved back to end at the
 * row's end (the even column w - 1 of an odd w on its own); writes only those elements. */
static inline void bs_split2_store(__m256i v, int u8, int esize, __m256i Z, unsigned char *ev, unsigned char *od) {
    if (esize == 2) {
        __m256i e = u8 ? _mm256_and_si256(v, _mm256_set1_epi16(0x00FF)) : _mm256_srai_epi16(_mm256_slli_epi16(v, 8), 8);
        __m256i o = u8 ? _mm256_srli_epi16(v, 8) : _mm256_srai_epi16(v, 8);
        _mm256_storeu_si256((__m256i *)ev, _mm256_sub_epi16(e, Z));
        _mm256_storeu_si256((__m256i *)od, _mm256_sub_epi16(o, Z));
        return;
    }
    __m256i eo = _mm256_packus_epi16(_mm256_and_si256(v, _mm256_set1_epi16(0x00FF)), _mm256_srli_epi16(v, 8));
    eo = _mm256_permute4x64_epi64(eo, 0xD8);   /* even 0-15 | odd 0-15 */
    if (!u8) eo = _mm256_xor_si256(eo, _mm256_set1_epi8((char)0x80));
    _mm_storeu_si128((__m128i *)ev, _mm256_castsi256_si128(eo));
    _mm_storeu_si128((__m128i *)od, _mm256_extracti128_si256(eo, 1));
}

/* 16 columns (the 16 bytes of v) or 8 (its low 8 bytes): half of them of each parity */
static inline void bs_split2_store128(__m128i v, int u8, int esize, __m128i Z, int32_t cols, unsigned char *ev, unsigned char *od) {
    if (esize == 2) {
        __m128i e = _mm_sub_epi16(u8 ? _mm_and_si128(v, _mm_set1_epi16(0x00FF)) : _mm_srai_epi16(_mm_slli_epi16(v, 8), 8), Z);
        __m128i o = _mm_sub_epi16(u8 ? _mm_srli_epi16(v, 8) : _mm_srai_epi16(v, 8), Z);
        if (cols == 16) { _mm_storeu_si128((__m128i *)ev, e); _mm_storeu_si128((__m128i *)od, o); }
        else { _mm_storel_epi64((__m128i *)ev, e); _mm_storel_epi64((__m128i *)od, o); }
        return;
    }
    /* even columns from byte 0, odd ones from byte 8 */
    __m128i eo = _mm_packus_epi16(_mm_and_si128(v, _mm_set1_epi16(0x00FF)), _mm_srli_epi16(v, 8));
    if (!u8) eo = _mm_xor_si128(eo, _mm_set1_epi8((char)0x80));
    if (cols == 16) {
        _mm_storel_epi64((__m128i *)ev, eo);
        _mm_storel_epi64((__m128i *)od, _mm_unpackhi_epi64(eo, eo));
        return;
    }
    int32_t e4 = _mm_cvtsi128_si32(eo), o4 = _mm_cvtsi128_si32(_mm_srli_si128(eo, 8));
    memcpy(ev, &e4, 4);
    memcpy(od, &o4, 4);
}

static void bs_split2_row(const unsigned char *x, int u8, int esize, int32_t xz, int32_t w, unsigned char *ev, unsigned char *od) {
    int32_t done = 0;   /* columns [0, done) written */
    if (w >= 32) {
        const __m256i Z = _mm256_set1_epi16((short)xz);
        for (int32_t i = 0; i + 32 <= w; i += 32)
            bs_split2_store(_mm256_loadu_si256((const __m256i *)(x + i)), u8, esize, Z, ev + i / 2 * esize, od + i / 2 * esize);
        int32_t s = (w - 32) & ~1;
        bs_split2_store(_mm256_loadu_si256((const __m256i *)(x + s)), u8, esize, Z, ev + s / 2 * esize, od + s / 2 * esize);
        done = s + 32;
    } else if (w >= 8) {   /* 16 or 8 columns (8-byte loads: MobileNetV2's 14-wide stride-2 rows) from each end */
        const __m128i Z = _mm_set1_epi16((short)xz);
        int32_t cols = w >= 16 ? 16 : 8, s = (w - cols) & ~1;
        __m128i a = cols == 16 ? _mm_loadu_si128((const __m128i *)x) : _mm_loadl_epi64((const __m128i *)x);
        __m128i b = cols == 16 ? _mm_loadu_si128((const __m128i *)(x + s)) : _mm_loadl_epi64((const __m128i *)(x + s));
        bs_split2_store128(a, u8, esize, Z, cols, ev, od);
        bs_split2_store128(b, u8, esize, Z, cols, ev + s / 2 * esize, od + s / 2 * esize);
        done = s + cols;
    }
    for (int32_t i = done; i < w; i++) {
        unsigned char *d = (i & 1 ? od : ev) + i / 2 * esize;
        if (esize == 1) *d = u8 ? x[i] : (uint8_t)(x[i] ^ 0x80);
        else *(int16_t *)d = (int16_t)((u8 ? (int32_t)x[i] : (int32_t)(int8_t)x[i]) - xz);
    }
}

/* ---- the plane path (bs_plane_fits): stage 0 fills the phase planes of input channels [c0, c1) ---- */
static void bs_plane_fill(const bs_avx2_job *j, const bs_geo *o, size_t c0, size_t c1, unsigned char *tmp) {
    const bs_window *g = &j->conv->win;
    int esize = o->esize, u8 = j->xt == BS_T_U8;
    int32_t xz = j->p->x_zero;
    uint8_t padu = (uint8_t)o->uz;
    size_t w = (size_t)g->w, sw = (size_t)g->sw, pc = o->plane_pc, plane = (size_t)g->h * w;
    size_t top = (size_t)g->ph < o->plane_rows ? (size_t)g->ph : o->plane_rows;   /* padding rows above */
    size_t real = o->plane_rows - top < (size_t)g->h ? o->plane_rows - top : (size_t)g->h;
    size_t lead = (size_t)g->pw + top * pc;
    for (size_t c = c0; c < c1; c++) {
        const unsigned char *xc = (const unsigned char *)j->x + c * plane;
        for (size_t f = 0; f < sw; f++) {
            unsigned char *pl = tmp + (c * sw + f) * o->plane_len * esize;
            bs_pad_run(pl, esize, padu, 0, lead);
            if (sw == 1) {   /* the real rows are one run of the input */
                bs_convert_run(xc, u8, esize, xz, real * w, pl + lead * esize);
            } else if (sw == 2) {   /* both phases of a row in one pass: phase 1 is the next plane (at f = 1) */
                if (f == 0)
                    for (size_t ih = 0; ih < real; ih++) {
                        size_t at = lead + ih * pc;
                        bs_split2_row(xc + ih * w, u8, esize, xz, (int32_t)w, pl + at * esize, pl + (o->plane_len + at) * esize);
                    }
                for (size_t ih = 0; ih < real; ih++)   /* the padding after the phase's columns: pc - ceil((w - f) / 2) */
                    bs_pad_run(pl, esize, padu, lead + ih * pc + (w - f + 1) / 2, lead + ih * pc + pc);
            } else {
                for (size_t ih = 0; ih < real; ih++) {
                    const unsigned char *xr = xc + ih * w;
                    size_t at = lead + ih * pc, cols = f < w ? (w - f + sw - 1) / sw : 0;
                    for (size_t q = 0; q < cols; q++) {
                        unsigned char v = xr[f + q * sw];
                        if (esize == 1) pl[at + q] = u8 ? v : (uint8_t)(v ^ 0x80);
                        else ((int16_t *)pl)[at + q] = (int16_t)((u8 ? (int32_t)v : (int32_t)(int8_t)v) - xz);
                    }
                    bs_pad_run(pl, esize, padu, at + cols, at + pc);
                }
            }
            bs_pad_run(pl, esize, padu, lead + real * pc, o->plane_len);
        }
    }
}

/* ---- stage 1: interleave into [block][kg][8 pixels][per rows] (per = 4 u8 rows, S8C4, or 2 int16 rows, S16C2).
 * One k-group of pixel blocks [0, nb): row e's 8 nb pixels from r[e] (elements of es bytes), the lanes whose byte
 * in m[e] is 0xFF (m[e] NULL: none) replaced by PAD's, into dst + b bstride. ---- */
static inline __m256i bs_ilv_load(const unsigned char *r, const unsigned char *m, size_t off, size_t moff, __m256i PAD) {
    __m256i v = _mm256_loadu_si256((const __m256i *)(r + off));
    return m ? _mm256_blendv_epi8(v, PAD, _mm256_loadu_si256((const __m256i *)(m + moff))) : v;
}

/* Where each block's 8 pixels are in a tap's runs (the plane path when the offsets are not 8 b): from off[b], or, a
 * block that straddles two output rows, lanes [0, split[b]) from off[b] and the others from off2[b] (the next
 * row's run, moved back by split[b] lanes). Element offsets. */
typedef struct bs_blocks {
    size_t off[BS_BLOCKS_PER_TASK], off2[BS_BLOCKS_PER_TASK];
    int32_t split[BS_BLOCKS_PER_TASK];   /* 8: the block is in one row */
} bs_blocks;

/* lanes >= s (s = 0..7) of 8 lanes of 1 (row 0) or 2 (row 1) bytes */
static const unsigned char bs_split_masks[2][8][16] = {
    {{255, 255, 255, 255, 255, 255, 255, 255}, {0, 255, 255, 255, 255, 255, 255, 255}, {0, 0, 255, 255, 255, 255, 255, 255},
     {0, 0, 0, 255, 255, 255, 255, 255}, {0, 0, 0, 0, 255, 255, 255, 255}, {0, 0, 0, 0, 0, 255, 255, 255},
     {0, 0, 0, 0, 0, 0, 255, 255}, {0, 0, 0, 0, 0, 0, 0, 255}},
    {{255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255},
     {0, 0, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255},
     {0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255},
     {0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255},
     {0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255},
     {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255},
     {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255},
     {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255}}};

static inline __m128i bs_ilv_load8(const unsigned char *r, const unsigned char *m, const bs_blocks *bl, size_t b, int es, __m256i PAD) {
    size_t off = (bl ? bl->off[b] : b * 8) * (size_t)es, moff = b * 8 * (size_t)es;
    __m128i v = es == 1 ? _mm_loadl_epi64((const __m128i *)(r + off)) : _mm_loadu_si128((const __m128i *)(r + off));
    if (bl && bl->split[b] < 8) {
        const unsigned char *r2 = r + bl->off2[b] * (size_t)es;
        __m128i v2 = es == 1 ? _mm_loadl_epi64((const __m128i *)r2) : _mm_loadu_si128((const __m128i *)r2);
        v = _mm_blendv_epi8(v, v2, _mm_loadu_si128((const __m128i *)bs_split_masks[es - 1][bl->split[b]]));
    }
    if (!m) return v;
    __m128i mk = es == 1 ? _mm_loadl_epi64((const __m128i *)(m + moff)) : _mm_loadu_si128((const __m128i *)(m + moff));
    return _mm_blendv_epi8(v, _mm256_castsi256_si128(PAD), mk);
}

/* Blocks [b, b + n) read one contiguous run: each in one row, their offsets stepping by 8 pixels. */
static inline int bs_ilv_run(const bs_blocks *bl, size_t b, size_t n) {
    if (!bl) return 1;
    for (size_t i = b; i < b + n; i++)
        if (bl->split[i] < 8 || bl->off[i] != bl->off[b] + 8 * (i - b)) return 0;
    return 1;
}

static void bs_ilv_group(int32_t per, const unsigned char *const *r, const unsigned char *const *m, __m256i PAD, size_t nb,
                         const bs_blocks *bl, unsigned char *dst, size_t bstride) {
    size_t b = 0;
    if (per == 4) {   /* 32 pixels (4 blocks) per step */
        for (; b + 4 <= nb && bs_ilv_run(bl, b, 4); b += 4) {
            size_t off = bl ? bl->off[b] : b * 8, moff = b * 8;
            __m256i r0 = bs_ilv_load(r[0], m[0], off, moff, PAD), r1 = bs_ilv_load(r[1], m[1], off, moff, PAD);
            __m256i r2 = bs_ilv_load(r[2], m[2], off, moff, PAD), r3 = bs_ilv_load(r[3], m[3], off, moff, PAD);
            __m256i alo = _mm256_unpacklo_epi8(r0, r1), ahi = _mm256_unpackhi_epi8(r0, r1);
            __m256i clo = _mm256_unpacklo_epi8(r2, r3), chi = _mm256_unpackhi_epi8(r2, r3);
            __m256i l0 = _mm256_unpacklo_epi16(alo, clo), h0 = _mm256_unpackhi_epi16(alo, clo);   /* px 0-3 | 16-19, 4-7 | 20-23 */
            __m256i l1 = _mm256_unpacklo_epi16(ahi, chi), h1 = _mm256_unpackhi_epi16(ahi, chi);   /* px 8-11 | 24-27, 12-15 | 28-31 */
            unsigned char *d = dst + b * bstride;
            _mm256_store_si256((__m256i *)d, _mm256_permute2x128_si256(l0, h0, 0x20));
            _mm256_store_si256((__m256i *)(d + bstride), _mm256_permute2x128_si256(l1, h1, 0x20));
            _mm256_store_si256((__m256i *)(d + 2 * bstride), _mm256_permute2x128_si256(l0, h0, 0x31));
            _mm256_store_si256((__m256i *)(d + 3 * bstride), _mm256_permute2x128_si256(l1, h1, 0x31));
        }
    } else {   /* 16 pixels (2 blocks) per step */
        for (; b + 2 <= nb && bs_ilv_run(bl, b, 2); b += 2) {
            size_t off = (bl ? bl->off[b] : b * 8) * 2, moff = b * 16;
            __m256i r0 = bs_ilv_load(r[0], m[0], off, moff, PAD), r1 = bs_ilv_load(r[1], m[1], off, moff, PAD);
            __m256i lo = _mm256_unpacklo_epi16(r0, r1), hi = _mm256_unpackhi_epi16(r0, r1);   /* px 0-3 | 8-11, 4-7 | 12-15 */
            unsigned char *d = dst + b * bstride;
            _mm256_store_si256((__m256i *)d, _mm256_permute2x128_si256(lo, hi, 0x20));
            _mm256_store_si256((__m256i *)(d + bstride), _mm256_permute2x128_si256(lo, hi, 0x31));
        }
    }
    for (; b < nb; b++) {   /* the tail, and blocks whose runs are not adjacent: one block per step */
        __m128i lo, hi;
        if (per == 4) {
            __m128i a = _mm_unpacklo_epi8(bs_ilv_load8(r[0], m[0], bl, b, 1, PAD), bs_ilv_load8(r[1], m[1], bl, b, 1, PAD));
            __m128i c = _mm_unpacklo_epi8(bs_ilv_load8(r[2], m[2], bl, b, 1, PAD), bs_ilv_load8(r[3], m[3], bl, b, 1, PAD));
            lo = _mm_unpacklo_epi16(a, c);
            hi = _mm_unpackhi_epi16(a, c);
        } else {
            __m128i r0 = bs_ilv_load8(r[0], m[0], bl, b, 2, PAD), r1 = bs_ilv_load8(r[1], m[1], bl, b, 2, PAD);
            lo = _mm_unpacklo_epi16(r0, r1);
            hi = _mm_unpackhi_epi16(r0, r1);
        }
        _mm_store_si128((__m128i *)(dst + b * bstride), lo);
        _mm_store_si128((__m128i *)(dst + b * bstride + 16), hi);
    }
}

/* The gathered rows of one group (row stride npad elements), pixel blocks [b0, b1). */
static void bs_interleave(const bs_geo *o, const unsigned char *rows, unsigned char *ilv, size_t b0, size_t b1, int32_t q0, int32_t q1) {
    int32_t per = o->mode == BS_PACK_S8C4 ? 4 : 2;
    size_t stride = o->npad * o->esize;
    const unsigned char *m[4] = {NULL, NULL, NULL, NULL};
    for (int32_t q = q0; q < q1; q++) {
        const unsigned char *r[4];
        for (int32_t e = 0; e < per; e++) r[e] = rows + (size_t)(q * per + e) * stride + b0 * 8 * o->esize;
        bs_ilv_group(per, r, m, _mm256_setzero_si256(), b1 - b0, NULL, ilv + b0 * (size_t)o->kg * 32 + (size_t)q * 32, (size_t)o->kg * 32);
    }
}

/* The plane path's stage 1: pixel blocks [b0, b1) (at most BS_BLOCKS_PER_TASK) of group grp, every tap's runs read
 * from the phase planes (bs_plane_fits). */
static void bs_plane_interleave(const bs_avx2_job *j, const bs_geo *o, const unsigned char *tmp, size_t grp,
                                unsigned char *ilv, size_t b0, size_t b1, int32_t q0, int32_t q1) {
    const bs_conv_shape *s = j->conv;
    const bs_window *g = &s->win;
    int32_t kw_n = g->kw, kh_n = g->kh, per = o->mode == BS_PACK_S8C4 ? 4 : 2, es = o->esize;
    size_t sw = (size_t)g->sw, pc = o->plane_pc, cg = (size_t)(s->c / s->group), len = o->plane_len;
    size_t p0 = b0 * 8, np = (b1 - b0) * 8, ow_n = (size_t)g->ow;
    const unsigned char *planes = tmp + grp * cg * sw * len * es;
    const __m256i PAD = es == 1 ? _mm256_set1_epi8((char)o->uz) : _mm256_setzero_si256();
    /* each block's runs: oh sh pc + ow of its first pixel, and of the next row's first pixel when it straddles
     * two rows (linear: 8 b, whatever the rows) */
    bs_blocks blk;
    for (size_t b = b0; b < b1 && !o->plane_linear; b++) {
        size_t oh = b * 8 / ow_n, ow = b * 8 % ow_n, i = b - b0, rest = ow_n - ow;
        blk.off[i] = oh * g->sh * pc + ow;
        blk.split[i] = o->plane_straddle && rest < 8 ? (int32_t)rest : 8;
        blk.off2[i] = (oh + 1) * g->sh * pc - rest;   /* >= 1: rest < 8 <= pc (bs_plane_fits) */
    }
    /* per kw: the element offset of its run in its phase plane, and the byte masks of the pixels whose input column
     * is in the padding (or that are past the last pixel) */
    unsigned char mk[BS_PLANE_MAXKW][BS_BLOCKS_PER_TASK * 8 * 2];
    const unsigned char *mkp[BS_PLANE_MAXKW];
    size_t kwoff[BS_PLANE_MAXKW];
    int32_t owsw[BS_BLOCKS_PER_TASK * 8];   /* each pixel's ow sw; past the last pixel: far below 0 (always padding) */
    for (size_t i = 0, ow = p0 % ow_n; i < np; i++, ow = ow + 1 == ow_n ? 0 : ow + 1)
        owsw[i] = p0 + i < o->n ? (int32_t)(ow * sw) : INT32_MIN / 2;
    const __m256i WM1 = _mm256_set1_epi32(g->w - 1), ZERO = _mm256_setzero_si256();
    for (int32_t kw = 0; kw < kw_n; kw++) {
        int64_t col = (int64_t)kw * g->dw - g->pw, f = ((col % (int64_t)sw) + (int64_t)sw) % (int64_t)sw;
        kwoff[kw] = (size_t)((int64_t)f * (int64_t)len + g->pw + (col - f) / (int64_t)sw);
        int bad = 0;
        const __m256i COL = _mm256_set1_epi32((int32_t)col);
        for (size_t i = 0; i < np; i += 8) {   /* lane out: iw = ow sw + col outside [0, w) */
            __m256i iw = _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(owsw + i)), COL);
            __m256i out = _mm256_or_si256(_mm256_cmpgt_epi32(ZERO, iw), _mm256_cmpgt_epi32(iw, WM1));
            bad |= _mm256_movemask_epi8(out);
            __m128i o16 = _mm_packs_epi32(_mm256_castsi256_si128(out), _mm256_extracti128_si256(out, 1));
            if (es == 2) _mm_storeu_si128((__m128i *)(mk[kw] + i * 2), o16);
            else _mm_storel_epi64((__m128i *)(mk[kw] + i), _mm_packs_epi16(o16, o16));
        }
        mkp[kw] = bad ? mk[kw] : NULL;
    }
    /* tap kk = (ic, kh, kw), counted without divisions from the range's first; its runs start at planes + (off +
     * kwoff[kw] + boff) elements */
    int32_t kk = q0 * per, kh = kk / kw_n % kh_n, kw = kk % kw_n;
    size_t ic_off = (size_t)(kk / (kw_n * kh_n)) * sw * len, off = ic_off + (size_t)kh * g->dh * pc;
    const bs_blocks *bo = o->plane_linear ? NULL : &blk;
    for (int32_t q = q0; q < q1; q++) {
        const unsigned char *r[4], *m[4];
        for (int32_t e = 0; e < per; e++, kk++) {
            /* past k (the last group's padding: zero weights) repeat the group's last tap, which keeps the maximum
             * activation of the pixels (the int16 flush interval) what the real taps make it */
            if (kk >= o->k) { r[e] = r[e - 1]; m[e] = m[e - 1]; continue; }
            /* linear: the blocks' offsets are 8 b, relative to the task's first pixel */
            r[e] = planes + (off + kwoff[kw] + (bo ? 0 : p0)) * es;
            m[e] = mkp[kw];
            if (++kw == kw_n) {
                kw = 0;
                if (++kh == kh_n) { kh = 0; ic_off += sw * len; }
                off = ic_off + (size_t)kh * g->dh * pc;
            }
        }
        bs_ilv_group(per, r, m, PAD, b1 - b0, bo, ilv + b0 * (size_t)o->kg * 32 + (size_t)q * 32, (size_t)o->kg * 32);
    }
}

/* ---- the int64 tail of Requant and QAdd on 8 values held as even (v[0]) and odd (v[1]) int64 lanes: rshr by n
 * (0 <= n < 64; n <= 0 leaves v), + zero, clamp to [LO, HI] (= [C(lo), C(hi)], the container's range applied), store
 * `count` values of container t at y + off, stride pstride. Bit-exact with bs_requant_one / the QAdd reference. ---- */
static inline void bs_store8(__m256i r32, void *y, int32_t t, size_t off, size_t pstride, size_t count);
static inline void bs_rq_finish(__m256i v[2], int32_t n, __m256i Z, __m256i LO, __m256i HI, void *y, int32_t t, size_t off,
                                size_t pstride, size_t count) {
    for (int h = 0; h < 2; h++) {
        __m256i x = v[h];
        if (n > 0) {
            __m128i sh = _mm_cvtsi32_si128(n), sh1 = _mm_cvtsi32_si128(n - 1);
            __m256i s = _mm256_cmpgt_epi64(_mm256_setzero_si256(), x);
            __m256i a = _mm256_xor_si256(_mm256_srl_epi64(_mm256_xor_si256(x, s), sh), s);
            __m256i r = _mm256_and_si256(_mm256_srl_epi64(x, sh1), _mm256_set1_epi64x(1));
            x = _mm256_add_epi64(a, r);
        }
        x = _mm256_add_epi64(x, Z);
        x = _mm256_blendv_epi8(x, HI, _mm256_cmpgt_epi64(x, HI));
        x = _mm256_blendv_epi8(x, LO, _mm256_cmpgt_epi64(LO, x));
        v[h] = x;
    }
    bs_store8(_mm256_blend_epi32(v[0], _mm256_slli_epi64(v[1], 32), 0xAA), y, t, off, pstride, count);
}

/* Stores `count` of the 8 int32 lanes of r32 (already in container t's range) at y + off, stride pstride. */
static inline void bs_store8(__m256i r32, void *y, int32_t t, size_t off, size_t pstride, size_t count) {
    int32_t res[8];
    if (t == BS_T_I32) {
        if (pstride == 1 && count == 8) { _mm256_storeu_si256((__m256i *)((int32_t *)y + off), r32); return; }
        _mm256_storeu_si256((__m256i *)res, r32);
        for (size_t i = 0; i < count; i++) ((int32_t *)y)[off + i * pstride] = res[i];
        return;
    }
    __m128i p16 = _mm_packs_epi32(_mm256_castsi256_si128(r32), _mm256_extracti128_si256(r32, 1));
    __m128i p8 = t == BS_T_I8 ? _mm_packs_epi16(p16, p16) : _mm_packus_epi16(p16, p16);
    unsigned char *yb = (unsigned char *)y;
    if (pstride == 1 && count == 8) { _mm_storel_epi64((__m128i *)(yb + off), p8); return; }
    unsigned char b8[16];
    _mm_storeu_si128((__m128i *)b8, p8);
    for (size_t i = 0; i < count; i++) yb[off + i * pstride] = b8[i];
}


/* ---- the epilogue of one output channel, set up once (bs_epi_setup) and applied to 8 accumulators at a time
 * (bs_epi_apply; 8 pixels or rows). Kinds: 0 = int32 accumulators out (no Requant), 1 / 2 = the int32-lane Requant
 * (n >= 32 / 1 <= n < 32), 3 = the int64-lane Requant, 4 = the scalar reference (tables the lowering never makes). */
typedef struct bs_epi {
    int64_t m, b;            /* kinds 1, 2: b = bias + 2^(n-1) + zero 2^n; kind 3: b = bias */
    int64_t zero, clo, chi;  /* clamp bounds: [C(lo), C(hi)] */
    int32_t kind, n, t;
    /* kinds 1, 2: m and b in 64-bit lanes, the clamp bounds in 32-bit lanes and the shift counts, made once per
     * channel (the small-k layers of e.g. MobileNetV2 do little else per output than this epilogue) */
    __m256i vm, vb, vclo, vchi;
    __m128i sa, sl, sr, s1;  /* n - 32 (kind 1); 32 - n, n, n - 1 (kind 2) */
} bs_epi;

static inline void bs_epi_setup(const bs_avx2_job *j, size_t c, bs_epi *e) {
    const bs_requant_params *rq = j->rq;
    /* the scalar fields only: the vectors are read by kinds 1 and 2, which set them */
    e->m = e->b = e->zero = e->clo = e->chi = 0;
    e->n = 0;
    if (!rq) { e->kind = 0; e->t = BS_T_I32; return; }
    size_t q = rq->count == 1 ? 0 : c;
    int32_t n = rq->n[q], t = j->yt;
    e->t = t; e->n = n; e->m = rq->m[q];
    if (rq->lo > rq->hi || n >= 64) { e->kind = 4; return; }   /* keep the reference's order of the two tests */
    /* clamp to [lo, hi] then to the container = clamp to [C(lo), C(hi)] (C monotonic, lo <= hi) */
    e->clo = bs_clamp64a(rq->lo, bs_cmin(t), bs_cmax(t)); e->chi = bs_clamp64a(rq->hi, bs_cmin(t), bs_cmax(t));
    int64_t bias = rq->bias[q], zero = rq->zero, lim = (int64_t)1 << 60;
    if (n >= 1 && n <= 59 && bias > -lim && bias < lim && zero > -(lim >> n) && zero < (lim >> n)) {
        /* The int32 path. B2 = bias + 2^(n-1) + zero 2^n, |B2| < 2^61.2 and |acc m| <= 2^62, so u = acc m + B2 never
         * wraps and floor(u / 2^n) = rshr(acc m + bias, n) + zero exactly; it is assembled from the high (H) and low
         * (L) dwords of u: n >= 32: H >> (n - 32), always within int32; n < 32: (H << (32 - n)) | (L >> n) when
         * H >> (n - 1) is 0 or -1 (the value fits int32), else it is beyond int32 and clamps to C(hi) or C(lo). */
        e->b = bias + ((int64_t)1 << (n - 1)) + zero * ((int64_t)1 << n);
        e->kind = n >= 32 ? 1 : 2;
        e->vm = _mm256_set1_epi64x(e->m); e->vb = _mm256_set1_epi64x(e->b);
        e->vclo = _mm256_set1_epi32((int32_t)e->clo); e->vchi = _mm256_set1_epi32((int32_t)e->chi);
        if (n >= 32) e->sa = _mm_cvtsi32_si128(n - 32);
        else { e->sl = _mm_cvtsi32_si128(32 - n); e->sr = _mm_cvtsi32_si128(n); e->s1 = _mm_cvtsi32_si128(n - 1); }
        return;
    }
    e->kind = 3; e->b = bias; e->zero = zero;
}

/* Kinds 1 and 2: the 8 outputs (int32 lanes, clamped to [C(lo), C(hi)]) from u = acc m + b as even (ev) and odd (od)
 * int64 lanes. */
static inline __m256i bs_epi_r32(const bs_epi *e, __m256i ev, __m256i od) {
    __m256i H = _mm256_blend_epi32(_mm256_srli_epi64(ev, 32), od, 0xAA);
    __m256i CLO = e->vclo, CHI = e->vchi, r;
    if (e->kind == 1) {
        r = _mm256_sra_epi32(H, e->sa);
        return _mm256_min_epi32(_mm256_max_epi32(r, CLO), CHI);
    }
    __m256i L = _mm256_blend_epi32(ev, _mm256_slli_epi64(od, 32), 0xAA);
    r = _mm256_or_si256(_mm256_sll_epi32(H, e->sl), _mm256_srl_epi32(L, e->sr));
    r = _mm256_min_epi32(_mm256_max_epi32(r, CLO), CHI);
    __m256i tt = _mm256_sra_epi32(H, e->s1);
    r = _mm256_blendv_epi8(r, CHI, _mm256_cmpgt_epi32(tt, _mm256_setzero_si256()));
    return _mm256_blendv_epi8(r, CLO, _mm256_cmpgt_epi32(_mm256_set1_epi32(-1), tt));
}

static inline void bs_epi_apply(const bs_avx2_job *j, const bs_epi *e, __m256i acc, int32_t corr, size_t c, size_t off,
                                size_t pstride, size_t count) {
    acc = _mm256_sub_epi32(acc, _mm256_set1_epi32(corr));
    int32_t t = e->t, n = e->n;
    if (e->kind == 0) { bs_store8(acc, j->y, BS_T_I32, off, pstride, count); return; }
    if (e->kind == 4) {
        int32_t res[8];
        _mm256_storeu_si256((__m256i *)res, acc);
        for (size_t i = 0; i < count; i++) bs_store_scalar(j->y, t, off + i * pstride, bs_requant_scalar(res[i], j->rq, c));
        return;
    }
    __m256i M = e->kind == 3 ? _mm256_set1_epi64x(e->m) : e->vm, B = e->kind == 3 ? _mm256_set1_epi64x(e->b) : e->vb;
    __m256i ev = _mm256_add_epi64(_mm256_mul_epi32(acc, M), B);
    __m256i od = _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(acc, 32), M), B);
    if (e->kind == 3) {
        __m256i v[2] = {ev, od};
        bs_rq_finish(v, n, _mm256_set1_epi64x(e->zero), _mm256_set1_epi64x(e->clo), _mm256_set1_epi64x(e->chi), j->y, t, off,
                     pstride, count);
        return;
    }
    bs_store8(bs_epi_r32(e, ev, od), j->y, t, off, pstride, count);
}

/* Kinds 1 and 2 on two blocks of one channel's accumulators (minus corr), the channel's constants broadcast once. */
static inline void bs_epi_r32x2(const bs_epi *e, __m256i acc0, __m256i acc1, int32_t corr, __m256i *r0, __m256i *r1) {
    const __m256i C = _mm256_set1_epi32(corr), M = e->vm, B = e->vb;
    acc0 = _mm256_sub_epi32(acc0, C);
    acc1 = _mm256_sub_epi32(acc1, C);
    *r0 = bs_epi_r32(e, _mm256_add_epi64(_mm256_mul_epi32(acc0, M), B),
                     _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(acc0, 32), M), B));
    *r1 = bs_epi_r32(e, _mm256_add_epi64(_mm256_mul_epi32(acc1, M), B),
                     _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(acc1, 32), M), B));
}

/* Two blocks of one channel (acc0: pixels off.., acc1: off + 8..), 16 outputs. Both whole blocks of a conv's
 * output (pixel stride 1) through the int32-lane Requant: the channel's constants broadcast once, int8 / uint8
 * in one pack and one 16-byte store; otherwise bs_epi_apply on each. */
static inline void bs_epi_apply2(const bs_avx2_job *j, const bs_epi *e, __m256i acc0, __m256i acc1, int32_t corr, size_t c,
                                 size_t off, size_t pstride, size_t count0, size_t count1) {
    if (count0 < 8 || count1 < 8 || pstride != 1 || (e->kind != 1 && e->kind != 2)) {
        bs_epi_apply(j, e, acc0, corr, c, off, pstride, count0);
        if (count1) bs_epi_apply(j, e, acc1, corr, c, off + 8 * pstride, pstride, count1);
        return;
    }
    __m256i r0, r1;
    bs_epi_r32x2(e, acc0, acc1, corr, &r0, &r1);
    if (e->t == BS_T_I32) {
        _mm256_storeu_si256((__m256i *)((int32_t *)j->y + off), r0);
        _mm256_storeu_si256((__m256i *)((int32_t *)j->y + off + 8), r1);
        return;
    }
    /* int16 [r0 0-3, r1 0-3 | r0 4-7, r1 4-7] -> [r0 0-7 | r1 0-7] -> 16 bytes in order */
    __m256i p16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(r0, r1), 0xD8);
    __m128i lo = _mm256_castsi256_si128(p16), hi = _mm256_extracti128_si256(p16, 1);
    __m128i p8 = e->t == BS_T_I8 ? _mm_packs_epi16(lo, hi) : _mm_packus_epi16(lo, hi);
    _mm_storeu_si128((__m128i *)((unsigned char *)j->y + off), p8);
}

/* 8 int32 from element i of x (container xt); count < 8 reads only `count` elements (the rest 0). */
static inline __m256i bs_load8_i32(const void *x, int32_t xt, size_t i, size_t count) {
    if (count >= 8) {
        if (xt == BS_T_I32) return _mm256_loadu_si256((const __m256i *)((const int32_t *)x + i));
        __m128i v = _mm_loadl_epi64((const __m128i *)((const unsigned char *)x + i));
        return xt == BS_T_U8 ? _mm256_cvtepu8_epi32(v) : _mm256_cvtepi8_epi32(v);
    }
    int32_t buf[8] = {0};
    for (size_t e = 0; e < count; e++)
        buf[e] = xt == BS_T_I32 ? ((const int32_t *)x)[i + e] : (xt == BS_T_U8 ? ((const uint8_t *)x)[i + e] : ((const int8_t *)x)[i + e]);
    return _mm256_loadu_si256((const __m256i *)buf);
}

/* ---- Requant (rows [r0, r1) of x viewed as [outer * channels][inner]) and QAdd (elements [i0, i1)), 8 per step,
 * the int64 arithmetic of the reference in 64-bit lanes ---- */
/* n values of x (container xt) requantized as channel c into y[yi .. yi + n). */
static void bs_requant_span_avx2(const void *x, int32_t xt, void *y, int32_t yt, size_t yi, size_t n,
                                 const bs_requant_params *rq, size_t c) {
    bs_avx2_job j;   /* the conv epilogue's view: output y of container yt, per-channel tables rq */
    memset(&j, 0, sizeof j);
    j.rq = rq; j.yt = yt; j.y = y;
    bs_epi ep;
    bs_epi_setup(&j, c, &ep);
    size_t e = 0;
    for (; e + 16 <= n; e += 16)
        bs_epi_apply2(&j, &ep, bs_load8_i32(x, xt, e, 8), bs_load8_i32(x, xt, e + 8, 8), 0, c, yi + e, 1, 8, 8);
    for (; e < n; e += 8) {
        size_t count = n - e < 8 ? n - e : 8;
        bs_epi_apply(&j, &ep, bs_load8_i32(x, xt, e, count), 0, c, yi + e, 1, count);
    }
}

static void bs_requant_rows_avx2(const void *x, int32_t xt, void *y, int32_t yt, size_t channels, size_t inner,
                                 const bs_requant_params *rq, size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; r++)
        bs_requant_span_avx2((const unsigned char *)x + r * inner * bs_esize(xt), xt, y, yt, r * inner, inner, rq, r % channels);
}

void bs_requant__avx2(const void *x, int32_t xt, void *y, int32_t yt, size_t outer, size_t channels, size_t inner,
                      const bs_requant_params *rq) {
    bs_requant_rows_avx2(x, xt, y, yt, channels, inner, rq, 0, outer * channels);
}

/* QAdd's constants for operands of containers at, bt into yt. ok: vpmuldq is exact, i.e. every x - zero of both
 * containers and both multipliers fit int32 (every QAdd the lowering makes); otherwise the reference runs. */
typedef struct bs_qadd_c {
    __m256i AZ, BZ, MA, MB, Z, LO, HI;
    int32_t n, ok;
} bs_qadd_c;

static inline void bs_qadd_setup(const bs_qadd_params *p, int32_t at, int32_t bt, int32_t yt, bs_qadd_c *q) {
    q->ok = p->lo <= p->hi && p->n < 64 && bs_qadd_fits_i32(p, at, bt);
    q->n = (int32_t)p->n;
    q->AZ = _mm256_set1_epi32((int32_t)p->a_zero); q->BZ = _mm256_set1_epi32((int32_t)p->b_zero);
    q->MA = _mm256_set1_epi64x(p->m_a); q->MB = _mm256_set1_epi64x(p->m_b); q->Z = _mm256_set1_epi64x(p->zero);
    q->LO = _mm256_set1_epi64x(bs_clamp64a(p->lo, bs_cmin(yt), bs_cmax(yt)));
    q->HI = _mm256_set1_epi64x(bs_clamp64a(p->hi, bs_cmin(yt), bs_cmax(yt)));
}

/* 8 QAdd outputs of the int32 values a, b (q->ok), `count` of them stored at y + off. */
static inline void bs_qadd8(const bs_qadd_c *q, __m256i a, __m256i b, void *y, int32_t yt, size_t off, size_t count) {
    __m256i da = _mm256_sub_epi32(a, q->AZ), db = _mm256_sub_epi32(b, q->BZ);
    __m256i v[2];
    v[0] = _mm256_add_epi64(_mm256_mul_epi32(da, q->MA), _mm256_mul_epi32(db, q->MB));
    v[1] = _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(da, 32), q->MA), _mm256_mul_epi32(_mm256_srli_epi64(db, 32), q->MB));
    bs_rq_finish(v, q->n, q->Z, q->LO, q->HI, y, yt, off, 1, count);
}

static void bs_qadd_range_avx2(const void *a, int32_t at, const void *b, int32_t bt, void *y, int32_t yt,
                               const bs_qadd_params *p, size_t i0, size_t i1) {
    bs_qadd_c q;
    bs_qadd_setup(p, at, bt, yt, &q);
    if (!q.ok) {   /* never produced by the lowering: the reference on the range */
        size_t as = at == BS_T_I32 ? 4 : 1, bsz = bt == BS_T_I32 ? 4 : 1, ys = yt == BS_T_I32 ? 4 : 1;
        bs_qadd__generic((const unsigned char *)a + i0 * as, at, (const unsigned char *)b + i0 * bsz, bt,
                         (unsigned char *)y + i0 * ys, yt, i1 - i0, p);
        return;
    }
    for (size_t i = i0; i < i1; i += 8) {
        size_t count = i1 - i < 8 ? i1 - i : 8;
        bs_qadd8(&q, bs_load8_i32(a, at, i, count), bs_load8_i32(b, bt, i, count), y, yt, i, count);
    }
}

/* The fused residual QAdd (bs_avx2_job.res_p) over output elements [i0, i1) of y, once they are written. */
static void bs_res_range(const bs_avx2_job *j, size_t i0, size_t i1) {
    if (!j->res_p || i1 <= i0) return;
    if (j->res_swap) bs_qadd_range_avx2(j->res, j->res_t, j->y, j->yt, j->res_y, j->res_yt, j->res_p, i0, i1);
    else bs_qadd_range_avx2(j->y, j->yt, j->res, j->res_t, j->res_y, j->res_yt, j->res_p, i0, i1);
}

/* Two whole blocks of one channel's conv outputs (16 pixels at off) through the Requant and then the residual QAdd
 * in registers: y is not written, res_y is. Other cases (partial blocks, the int64-lane or scalar Requant, a QAdd
 * outside int32 lanes) write y and add the residual from it. */
static inline void bs_epi_res2(const bs_avx2_job *j, const bs_epi *e, const bs_qadd_c *q, __m256i acc0, __m256i acc1, int32_t corr,
                               size_t c, size_t off, size_t count0, size_t count1) {
    if (count0 < 8 || count1 < 8 || (e->kind != 1 && e->kind != 2) || !q->ok) {
        bs_epi_apply2(j, e, acc0, acc1, corr, c, off, 1, count0, count1);
        bs_res_range(j, off, off + count0 + count1);
        return;
    }
    __m256i r0, r1;
    bs_epi_r32x2(e, acc0, acc1, corr, &r0, &r1);
    __m256i s0 = bs_load8_i32(j->res, j->res_t, off, 8), s1 = bs_load8_i32(j->res, j->res_t, off + 8, 8);
    if (j->res_swap) {
        bs_qadd8(q, s0, r0, j->res_y, j->res_yt, off, 8);
        bs_qadd8(q, s1, r1, j->res_y, j->res_yt, off + 8, 8);
    } else {
        bs_qadd8(q, r0, s0, j->res_y, j->res_yt, off, 8);
        bs_qadd8(q, r1, s1, j->res_y, j->res_yt, off + 8, 8);
    }
}

/* Quantize: v = x / scale (vdivps: the same IEEE division), clamped to [lo - zero, hi - zero] as floats (NaN to 0,
 * like the reference's order: clamp, then NaN test), rounded to nearest even (nearbyintf in the default mode), plus
 * zero, stored with saturation. Exact in int32 lanes when both clamp bounds and zero are within 2^29 (every
 * quantizer the lowering makes; the sum then stays within 2^30); other parameters take the generic kernel. */
void bs_f32_quantize__avx2(const float *x, void *y, int32_t yt, size_t count, const bs_quantize_params *p) {
    const int64_t lim = (int64_t)1 << 29;
    int64_t lo = (int64_t)((uint64_t)p->lo - (uint64_t)p->zero), hi = (int64_t)((uint64_t)p->hi - (uint64_t)p->zero);
    if (lo < -lim || lo > lim || hi < -lim || hi > lim || p->zero < -lim || p->zero > lim) {
        bs_f32_quantize__generic(x, y, yt, count, p);
        return;
    }
    const __m256 S = _mm256_set1_ps(p->scale), L = _mm256_set1_ps((float)lo), H = _mm256_set1_ps((float)hi);
    const __m256i Z = _mm256_set1_epi32((int32_t)p->zero);
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
        __m256 v = _mm256_div_ps(_mm256_loadu_ps(x + i), S);
        __m256 nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
        v = _mm256_max_ps(_mm256_min_ps(v, H), L);   /* NaN lanes become H here and 0 below */
        v = _mm256_andnot_ps(nan, _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        __m256i r = _mm256_add_epi32(_mm256_cvtps_epi32(v), Z);
        if (yt == BS_T_I32) { _mm256_storeu_si256((__m256i *)((int32_t *)y + i), r); continue; }
        __m128i p16 = _mm_packs_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
        _mm_storel_epi64((__m128i *)((unsigned char *)y + i), yt == BS_T_I8 ? _mm_packs_epi16(p16, p16) : _mm_packus_epi16(p16, p16));
    }
    if (i < count) {
        size_t es = yt == BS_T_I32 ? 4 : 1;
        bs_f32_quantize__generic(x + i, (unsigned char *)y + i * es, yt, count - i, p);
    }
}

void bs_qadd__avx2(const void *a, int32_t at, const void *b, int32_t bt, void *y, int32_t yt, size_t count,
                   const bs_qadd_params *p) {
    bs_qadd_range_avx2(a, at, b, bt, y, yt, p, 0, count);
}

/* ---- QMaxPool, separable (the max over a window is the max over its valid columns of the max over its valid
 * rows): per output row, the elementwise max of the kernel's valid input rows (32 bytes or 8 int32 per step), then
 * per output the max over the window's valid columns of that row; no valid tap gives the container's lowest value,
 * as in bs_pool. 2-D (and 1-D) windows; 3-D ones take the generic kernel. Planes [p0, p1). ---- */
#define BS_MP_MAXW 4096
/* 2x2 stride-2 windows without padding on bytes (the pool after a small CNN's conv): both rows' max, then the max of
 * each byte pair, 16 / 8 / 4 outputs per step; no row buffer. */
static int bs_maxpool2x2_bytes(const bs_window *g, int32_t xt) {
    return xt != BS_T_I32 && g->d == 1 && g->od == 1 && g->kd == 1 && g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 &&
           g->dh == 1 && g->dw == 1 && g->ph == 0 && g->pw == 0 && 2 * (int64_t)g->oh <= g->h && 2 * (int64_t)g->ow <= g->w;
}
static void bs_maxpool2x2_bytes_planes(const bs_window *g, size_t p0, size_t p1, const unsigned char *x, int32_t xt, unsigned char *y) {
    const int u8 = xt == BS_T_U8;
    const size_t in_plane = (size_t)g->h * g->w, out_plane = (size_t)g->oh * g->ow;
    const __m256i LO = _mm256_set1_epi16(0xff);
    for (size_t pl = p0; pl < p1; pl++)
        for (int32_t oh = 0; oh < g->oh; oh++) {
            const unsigned char *r0 = x + pl * in_plane + (size_t)(2 * oh) * g->w, *r1 = r0 + g->w;
            unsigned char *yr = y + pl * out_plane + (size_t)oh * g->ow;
            int32_t ow = 0;
            for (; ow + 16 <= g->ow; ow += 16) {
                __m256i a = _mm256_loadu_si256((const __m256i *)(r0 + 2 * ow)), b = _mm256_loadu_si256((const __m256i *)(r1 + 2 * ow));
                __m256i v = u8 ? _mm256_max_epu8(a, b) : _mm256_max_epi8(a, b), o = _mm256_srli_epi16(v, 8);
                v = _mm256_and_si256(u8 ? _mm256_max_epu8(v, o) : _mm256_max_epi8(v, o), LO);
                __m128i p = _mm_packus_epi16(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
                _mm_storeu_si128((__m128i *)(yr + ow), p);
            }
            for (; ow + 4 <= g->ow; ow += ow + 8 <= g->ow ? 8 : 4) {
                const int full = ow + 8 <= g->ow;
                __m128i a = full ? _mm_loadu_si128((const __m128i *)(r0 + 2 * ow)) : _mm_loadl_epi64((const __m128i *)(r0 + 2 * ow));
                __m128i b = full ? _mm_loadu_si128((const __m128i *)(r1 + 2 * ow)) : _mm_loadl_epi64((const __m128i *)(r1 + 2 * ow));
                __m128i v = u8 ? _mm_max_epu8(a, b) : _mm_max_epi8(a, b), o = _mm_srli_epi16(v, 8);
                v = _mm_and_si128(u8 ? _mm_max_epu8(v, o) : _mm_max_epi8(v, o), _mm256_castsi256_si128(LO));
                __m128i p = _mm_packus_epi16(v, v);
                if (full) _mm_storel_epi64((__m128i *)(yr + ow), p);
                else { int32_t w4 = _mm_cvtsi128_si32(p); memcpy(yr + ow, &w4, 4); }
            }
            for (; ow < g->ow; ow++) {
                const unsigned char *t = r0 + 2 * ow, *u = r1 + 2 * ow;
                if (u8) { unsigned char m = t[0]; m = t[1] > m ? t[1] : m; m = u[0] > m ? u[0] : m; yr[ow] = u[1] > m ? u[1] : m; }
                else {
                    int8_t m = (int8_t)t[0];
                    if ((int8_t)t[1] > m) m = (int8_t)t[1];
                    if ((int8_t)u[0] > m) m = (int8_t)u[0];
                    if ((int8_t)u[1] > m) m = (int8_t)u[1];
                    yr[ow] = (unsigned char)m;
                }
            }
        }
}

static void bs_maxpool_planes_avx2(const bs_window *g, size_t p0, size_t p1, const void *x, int32_t xt, void *y) {
    if (bs_maxpool2x2_bytes(g, xt)) { bs_maxpool2x2_bytes_planes(g, p0, p1, (const unsigned char *)x, xt, (unsigned char *)y); return; }
    if (g->d != 1 || g->od != 1 || g->kd != 1 || g->w > BS_MP_MAXW) {
        size_t es = xt == BS_T_I32 ? 4 : 1, out = (size_t)g->od * g->oh * g->ow, in = (size_t)g->d * g->h * g->w;
        bs_qmaxpool__generic(g, p1 - p0, (const unsigned char *)x + p0 * in * es, xt, (unsigned char *)y + p0 * out * es);
        return;
    }
    size_t es = xt == BS_T_I32 ? 4 : 1, in_plane = (size_t)g->h * g->w, out_plane = (size_t)g->oh * g->ow;
    int32_t lowest = xt == BS_T_I8 ? INT8_MIN : (xt == BS_T_U8 ? 0 : INT32_MIN);
    int32_t rowmax[BS_MP_MAXW + 32];   /* + 32: the stride-2 loads below may read (and ignore) past the row */
    unsigned char rm8[BS_MP_MAXW + 32];
    memset(rowmax + g->w, 0, 32 * sizeof(int32_t));   /* read past the row by the stride-2 loads, never used */
    memset(rm8 + g->w, 0, 32);
    for (size_t pl = p0; pl < p1; pl++) {
        const unsigned char *xp = (const unsigned char *)x + pl * in_plane * es;
        unsigned char *yp = (unsigned char *)y + pl * out_plane * es;
        for (int32_t oh = 0; oh < g->oh; oh++) {
            int32_t nrows = 0;
            for (int32_t kh = 0; kh < g->kh; kh++) {
                int64_t ih = (int64_t)oh * g->sh - g->ph + (int64_t)kh * g->dh;
                if (ih < 0 || ih >= g->h) continue;
                const unsigned char *r = xp + (size_t)ih * g->w * es;
                int32_t i = 0;
                if (xt == BS_T_I32) {
                    const int32_t *ri = (const int32_t *)r;
                    if (nrows == 0) memcpy(rowmax, ri, (size_t)g->w * 4);
                    else {
                        for (; i + 8 <= g->w; i += 8)
                            _mm256_storeu_si256((__m256i *)(rowmax + i), _mm256_max_epi32(_mm256_loadu_si256((const __m256i *)(rowmax + i)),
                                                                                          _mm256_loadu_si256((const __m256i *)(ri + i))));
                        for (; i < g->w; i++) rowmax[i] = ri[i] > rowmax[i] ? ri[i] : rowmax[i];
                    }
                } else {
                    if (nrows == 0) memcpy(rm8, r, (size_t)g->w);
                    else {
                        for (; i + 32 <= g->w; i += 32) {
                            __m256i a = _mm256_loadu_si256((const __m256i *)(rm8 + i)), b = _mm256_loadu_si256((const __m256i *)(r + i));
                            _mm256_storeu_si256((__m256i *)(rm8 + i), xt == BS_T_U8 ? _mm256_max_epu8(a, b) : _mm256_max_epi8(a, b));
                        }
                        for (; i + 8 <= g->w; i += 8) {   /* short rows (small feature maps): 8 bytes per step */
                            __m128i a = _mm_loadl_epi64((const __m128i *)(rm8 + i)), b = _mm_loadl_epi64((const __m128i *)(r + i));
                            _mm_storel_epi64((__m128i *)(rm8 + i), xt == BS_T_U8 ? _mm_max_epu8(a, b) : _mm_max_epi8(a, b));
                        }
                        for (; i < g->w; i++) {
                            if (xt == BS_T_U8) rm8[i] = r[i] > rm8[i] ? r[i] : rm8[i];
                            else rm8[i] = (int8_t)r[i] > (int8_t)rm8[i] ? r[i] : rm8[i];
                        }
                    }
                }
                nrows++;
            }
            int32_t ow0 = 0, ow1 = 0;   /* stride 2: outputs [ow0, ow1) have every tap inside the row */
            if (nrows && g->sw == 2 && g->dw == 1) {
                ow0 = (g->pw + 1) / 2;                                   /* 2 ow - pw >= 0 */
                int64_t last = ((int64_t)g->w - g->kw + g->pw) / 2;      /* 2 ow - pw + kw - 1 <= w - 1 */
                ow1 = last + 1 < g->ow ? (int32_t)(last + 1) : g->ow;
                if (ow1 < ow0) ow1 = ow0;
            }
            /* the even lanes of 16 int32 from r: 8 outputs' tap at stride 2 */
            const __m256i EV = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
            int32_t ow = ow0;
            if (xt != BS_T_I32) {
                /* bytes: the even bytes of 16 (8) from the tap's first byte are 8 (4) outputs' tap; the loads read at
                 * most rm8[w + 14] (zeroed above) */
                const __m128i LO = _mm_set1_epi16(0xff);
                unsigned char *yr = yp + (size_t)oh * g->ow;
                for (; ow + 4 <= ow1; ow += ow + 8 <= ow1 ? 8 : 4) {
                    __m128i m = _mm_setzero_si128();
                    for (int32_t kw = 0; kw < g->kw; kw++) {
                        const unsigned char *r = rm8 + 2 * ow - g->pw + kw;
                        __m128i v = ow + 8 <= ow1 ? _mm_loadu_si128((const __m128i *)r) : _mm_loadl_epi64((const __m128i *)r);
                        v = _mm_packus_epi16(_mm_and_si128(v, LO), _mm_setzero_si128());
                        m = kw == 0 ? v : (xt == BS_T_U8 ? _mm_max_epu8(m, v) : _mm_max_epi8(m, v));
                    }
                    if (ow + 8 <= ow1) _mm_storel_epi64((__m128i *)(yr + ow), m);
                    else { int32_t w4 = _mm_cvtsi128_si32(m); memcpy(yr + ow, &w4, 4); }
                }
            }
            for (; xt == BS_T_I32 && ow + 8 <= ow1; ow += 8) {
                __m256i m = _mm256_set1_epi32(INT32_MIN);
                for (int32_t kw = 0; kw < g->kw; kw++) {
                    const int32_t *r = rowmax + 2 * ow - g->pw + kw;
                    __m256i a = _mm256_permutevar8x32_epi32(_mm256_loadu_si256((const __m256i *)r), EV);
                    __m256i b = _mm256_permutevar8x32_epi32(_mm256_loadu_si256((const __m256i *)(r + 8)), EV);
                    m = _mm256_max_epi32(m, _mm256_permute2x128_si256(a, b, 0x20));
                }
                _mm256_storeu_si256((__m256i *)((int32_t *)yp + (size_t)oh * g->ow + ow), m);
            }
            for (; xt == BS_T_I32 && ow + 4 <= ow1; ow += 4) {   /* 4 outputs: the loads read at most rowmax[w] (zeroed above) */
                __m128i m = _mm_set1_epi32(INT32_MIN);
                for (int32_t kw = 0; kw < g->kw; kw++) {
                    const int32_t *r = rowmax + 2 * ow - g->pw + kw;
                    m = _mm_max_epi32(m, _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(_mm256_loadu_si256((const __m256i *)r), EV)));
                }
                _mm_storeu_si128((__m128i *)((int32_t *)yp + (size_t)oh * g->ow + ow), m);
            }
            for (int32_t ox = 0; ox < g->ow; ox++) {
                if (ox == ow0) ox = ow;   /* [ow0, ow) done above */
                if (ox >= g->ow) break;
                int32_t ow_ = ox;
                int32_t best = lowest, valid = 0;
                if (nrows)
                    for (int32_t kw = 0; kw < g->kw; kw++) {
                        int64_t iw = (int64_t)ow_ * g->sw - g->pw + (int64_t)kw * g->dw;
                        if (iw < 0 || iw >= g->w) continue;
                        int32_t v = xt == BS_T_I32 ? rowmax[iw] : (xt == BS_T_U8 ? (int32_t)rm8[iw] : (int32_t)(int8_t)rm8[iw]);
                        if (!valid || v > best) best = v;
                        valid = 1;
                    }
                size_t o = (size_t)oh * g->ow + (size_t)ow_;
                if (xt == BS_T_I32) ((int32_t *)yp)[o] = best;
                else yp[o] = (unsigned char)best;
            }
        }
    }
}

void bs_qmaxpool__avx2(const bs_window *g, size_t planes, const void *x, int32_t xt, void *y) {
    bs_maxpool_planes_avx2(g, 0, planes, x, xt, y);
}

void bs_ew_run__avx2(const bs_ew_job *j, int32_t task) {
    static const bs_ew_ops ops = {bs_requant_span_avx2, bs_qadd_range_avx2, bs_maxpool_planes_avx2};
    bs_ew_run_with(j, task, &ops);
}

/* ---- the GEMM micro-kernels: 16 pixels (two blocks) x 4 output channels ---- */
static inline void bs_qu8s8_gemm_rq64_16x4c4__avx2(const unsigned char *a0, const unsigned char *a1, const unsigned char *w,
                                                   int32_t kg, __m256i acc[8]) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i c00 = _mm256_setzero_si256(), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00, c13 = c00;
    for (int32_t q = 0; q < kg; q++) {
        __m256i x0 = _mm256_load_si256((const __m256i *)(a0 + (size_t)q * 32));
        __m256i x1 = _mm256_load_si256((const __m256i *)(a1 + (size_t)q * 32));
        const int32_t *wq = (const int32_t *)(w + (size_t)q * 16);
        __m256i b;
#define BS_STEP(B, C0, C1)                                                                                   \
        b = _mm256_set1_epi32(B);                                                                            \
        C0 = _mm256_add_epi32(C0, _mm256_madd_epi16(_mm256_maddubs_epi16(x0, b), ones));                    \
        C1 = _mm256_add_epi32(C1, _mm256_madd_epi16(_mm256_maddubs_epi16(x1, b), ones));
        BS_STEP(wq[0], c00, c10)
        BS_STEP(wq[1], c01, c11)
        BS_STEP(wq[2], c02, c12)
        BS_STEP(wq[3], c03, c13)
#undef BS_STEP
    }
    acc[0] = c00; acc[1] = c01; acc[2] = c02; acc[3] = c03; acc[4] = c10; acc[5] = c11; acc[6] = c12; acc[7] = c13;
}

/* The inner loop of the 16x4 micro-kernels, in asm (with intrinsics gcc 12 copied every accumulator each step and
 * spilled one, or folded the activation loads into each multiply: 12 loads per k-group instead of 6): per k-group two
 * activation vectors (p0, p1: 16 pixels), four broadcast weight dwords (pw: 4 channels), MUL of each pair into t,
 * ADD into the accumulators c<pixel block><channel>; cnt >= 1 k-groups. Operands: the caller's locals c00..c13, x0,
 * x1, b0, b1, t0, t1 (__m256i), p0, p1, pw (pointers) and cnt (long). The weights are prefetched 2 KB (128
 * k-groups) ahead: layers with few pixel tiles stream them from L3 or memory (as in the VNNI kernel; measured with the
 * AVX2 bundle on the AVX-512 machine: ResNet-18 0.94-0.96x, ResNet-20 unchanged; not measured on a Zen 3). */
#define BS_GEMM_16X4_STEP(OFF, B, C0, C1, MUL, ADD)                                                                  \
    "vpbroadcastd " #OFF "(%[pw]), %[" #B "]\n\t"                                                                   \
    MUL " %[" #B "], %[x0], %[t0]\n\t" MUL " %[" #B "], %[x1], %[t1]\n\t"                                         \
    ADD " %[t0], %[" #C0 "], %[" #C0 "]\n\t" ADD " %[t1], %[" #C1 "], %[" #C1 "]\n\t"
#define BS_GEMM_16X4_LOOP(MUL, ADD)                                                                                   \
    __asm__("1:\n\t"                                                                                                 \
            "prefetcht0 2048(%[pw])\n\t"                                                                            \
            "vmovdqa (%[p0]), %[x0]\n\t"                                                                            \
            "vmovdqa (%[p1]), %[x1]\n\t"                                                                            \
            BS_GEMM_16X4_STEP(0, b0, c00, c10, MUL, ADD) BS_GEMM_16X4_STEP(4, b1, c01, c11, MUL, ADD)                 \
            BS_GEMM_16X4_STEP(8, b0, c02, c12, MUL, ADD) BS_GEMM_16X4_STEP(12, b1, c03, c13, MUL, ADD)                \
            "add $32, %[p0]\n\tadd $32, %[p1]\n\tadd $16, %[pw]\n\tdec %[cnt]\n\tjnz 1b"                         \
            : [c00] "+x"(c00), [c01] "+x"(c01), [c02] "+x"(c02), [c03] "+x"(c03), [c10] "+x"(c10), [c11] "+x"(c11),   \
              [c12] "+x"(c12), [c13] "+x"(c13), [x0] "=&x"(x0), [x1] "=&x"(x1), [b0] "=&x"(b0), [b1] "=&x"(b1),       \
              [t0] "=&x"(t0), [t1] "=&x"(t1), [p0] "+r"(p0), [p1] "+r"(p1), [pw] "+r"(pw), [cnt] "+r"(cnt)            \
            :                                                                                                         \
            : "cc", "memory")

/* The same product with int16 accumulation (low-bit weights and activations): vpmaddubsw's pair sums are added in
 * 16-bit lanes for `flush` k-groups, then widened into the int32 accumulators by one vpmaddwd with 1 -- one multiply
 * per 32 MACs instead of two. Exact when flush * 2 * max(u) * max|w| <= 32767: no pair sum saturates and no 16-bit
 * partial sum wraps (the caller measures max(u) on the interleaved activations; max|w| <= 2^(w_bits-1)). */
static inline void bs_qu8s8_gemm_acc16_rq64_16x4c4__avx2(const unsigned char *a0, const unsigned char *a1,
                                                         const unsigned char *w, int32_t kg, int32_t flush, __m256i acc[8]) {
    const __m256i ones = _mm256_set1_epi16(1);
    for (int i = 0; i < 8; i++) acc[i] = _mm256_setzero_si256();
    for (int32_t q0 = 0; q0 < kg; q0 += flush) {
        int32_t q1 = kg - q0 > flush ? q0 + flush : kg;
        __m256i c00 = _mm256_setzero_si256(), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00, c13 = c00;
        const unsigned char *p0 = a0 + (size_t)q0 * 32, *p1 = a1 + (size_t)q0 * 32, *pw = w + (size_t)q0 * 16;
        long cnt = q1 - q0;
        __m256i x0, x1, b0, b1, t0, t1;
        BS_GEMM_16X4_LOOP("vpmaddubsw", "vpaddw");
        acc[0] = _mm256_add_epi32(acc[0], _mm256_madd_epi16(c00, ones));
        acc[1] = _mm256_add_epi32(acc[1], _mm256_madd_epi16(c01, ones));
        acc[2] = _mm256_add_epi32(acc[2], _mm256_madd_epi16(c02, ones));
        acc[3] = _mm256_add_epi32(acc[3], _mm256_madd_epi16(c03, ones));
        acc[4] = _mm256_add_epi32(acc[4], _mm256_madd_epi16(c10, ones));
        acc[5] = _mm256_add_epi32(acc[5], _mm256_madd_epi16(c11, ones));
        acc[6] = _mm256_add_epi32(acc[6], _mm256_madd_epi16(c12, ones));
        acc[7] = _mm256_add_epi32(acc[7], _mm256_madd_epi16(c13, ones));
    }
}

/* The largest byte of kg k-groups of two interleaved pixel blocks (the u of the activations a GEMM pair reads). */
static inline int32_t bs_umax_pair(const unsigned char *a0, const unsigned char *a1, int32_t kg) {
    __m256i m = _mm256_setzero_si256();
    for (int32_t q = 0; q < kg; q++)
        m = _mm256_max_epu8(m, _mm256_max_epu8(_mm256_load_si256((const __m256i *)(a0 + (size_t)q * 32)),
                                               _mm256_load_si256((const __m256i *)(a1 + (size_t)q * 32))));
    __m128i v = _mm_max_epu8(_mm256_castsi256_si128(m), _mm256_extracti128_si256(m, 1));
    v = _mm_max_epu8(v, _mm_srli_si128(v, 8));
    v = _mm_max_epu8(v, _mm_srli_si128(v, 4));
    v = _mm_max_epu8(v, _mm_srli_si128(v, 2));
    v = _mm_max_epu8(v, _mm_srli_si128(v, 1));
    return _mm_cvtsi128_si32(v) & 0xFF;
}

static inline void bs_qs16s16_gemm_rq64_16x4c2__avx2(const unsigned char *a0, const unsigned char *a1, const unsigned char *w,
                                                     int32_t kg, __m256i acc[8]) {
    __m256i c00 = _mm256_setzero_si256(), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00, c13 = c00;
    const unsigned char *p0 = a0, *p1 = a1, *pw = w;
    long cnt = kg;
    __m256i x0, x1, b0, b1, t0, t1;
    BS_GEMM_16X4_LOOP("vpmaddwd", "vpaddd");
    acc[0] = c00; acc[1] = c01; acc[2] = c02; acc[3] = c03; acc[4] = c10; acc[5] = c11; acc[6] = c12; acc[7] = c13;
}

/* ---- depthwise: group == c == m (one input channel per output channel), 2-D, exact int16 (x - x_zero) ----
 * Per channel and output row, vectorized along output x: 16 outputs per step, two taps of a kernel row at a time
 * (vpunpck{l,h}wd of the two input vectors, vpmaddwd with the broadcast weight pair, int32 accumulation wrapping
 * like the reference's). The input rows a channel needs are converted once into a ring of kh zero-padded int16
 * rows split into sw phases (padded column c at phase c % sw, index c / sw), so strides, dilations and pads need no
 * per-tap tests: tap kw of output ow reads phase (kw*dw) % sw at ow + (kw*dw) / sw; padding reads zeros, which add
 * nothing (the reference skips those taps). The weights of a channel are read from the packed form (mg == 1: its
 * channel block holds the channel's taps at lane 0). */
#define BS_DW_MAXK 256    /* taps per channel */
#define BS_DW_CH_PER_TASK 4        /* channels per depthwise task; 16 on planes of at most BS_DW_SMALL outputs, */
#define BS_DW_SMALL_CH_PER_TASK 16 /* whose per-task set-up (tap offsets, the zeroed plane) is a large share */
#define BS_DW_SMALL 256
#ifndef BS_DW_PLANE_MAX   /* int16 of the largest plane mode buffer (the kernel checker sets 0 to test the row mode) */
#define BS_DW_PLANE_MAX BS_DW_BUF
#endif

typedef struct bs_dw_geo { int32_t lp, rowlen, ow32; } bs_dw_geo;

/* 1 with the geometry when the job is a depthwise conv the direct kernel takes. */
static int bs_dw_geometry(const bs_avx2_job *j, bs_dw_geo *d) {
    if (!j->conv) return 0;
    const bs_conv_shape *s = j->conv;
    const bs_window *g = &s->win;
    const bs_packed *h = (const bs_packed *)j->packed;
    if (s->group != s->c || s->m != s->c || h->mg != 1 || h->groups != s->group) return 0;
    if (g->d != 1 || g->od != 1 || g->kd != 1 || g->oh < 1 || g->ow < 1 || g->sh < 1 || g->sw < 1 || g->dh < 1 || g->dw < 1) return 0;
    if (h->mode != BS_PACK_S8C4 && h->mode != BS_PACK_S16C2) return 0;
    if ((int64_t)g->kh * g->kw > BS_DW_MAXK) return 0;
    int64_t xz = j->p->x_zero, xmin = j->xt == BS_T_U8 ? 0 : -128, xmax = j->xt == BS_T_U8 ? 255 : 127;
    if (xmin - xz < -32768 || xmax - xz > 32767) return 0;
    int64_t ow32 = ((int64_t)g->ow + 31) / 32 * 32;   /* row kernels step 16 (AVX2) or 32 (AVX-512) outputs */
    int64_t lp = ow32 + (int64_t)(g->kw - 1) * g->dw / g->sw + 1;
    int64_t padded = (int64_t)g->pw + g->w;   /* padded columns that hold input */
    if (lp * g->sw < padded) lp = (padded + g->sw - 1) / g->sw;
    if (lp * g->sw * g->kh > BS_DW_BUF || ow32 > BS_DW_MAXW) return 0;
    d->lp = (int32_t)lp; d->rowlen = (int32_t)(lp * g->sw); d->ow32 = (int32_t)ow32;
    return 1;
}

static int32_t bs_dw_ch_per_task(const bs_avx2_job *j) {
    return (int64_t)j->conv->win.oh * j->conv->win.ow <= BS_DW_SMALL ? BS_DW_SMALL_CH_PER_TASK : BS_DW_CH_PER_TASK;
}

void bs_dw_channels__avx2(const bs_avx2_job *j, int32_t task, int32_t *c0, int32_t *c1) {
    int32_t per = bs_dw_ch_per_task(j);
    *c0 = task * per;
    *c1 = *c0 + per < j->conv->c ? *c0 + per : j->conv->c;
}

int32_t bs_dwconv_tasks__avx2(const bs_avx2_job *j) {
    bs_dw_geo d;
    if (!bs_dw_geometry(j, &d)) return 0;
    int32_t per = bs_dw_ch_per_task(j);
    return (j->conv->c + per - 1) / per;
}

/* dst[0..w) = x - xz (u8 or i8 x); writes nothing outside dst[0..w). */
static inline void bs_dw_convert(const unsigned char *x, int u8, int16_t xz, int32_t w, int16_t *dst) {
    int32_t i = 0;
    const __m256i Z = _mm256_set1_epi16(xz);
    for (; i + 16 <= w; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(x + i));
        _mm256_storeu_si256((__m256i *)(dst + i), _mm256_sub_epi16(u8 ? _mm256_cvtepu8_epi16(v) : _mm256_cvtepi8_epi16(v), Z));
    }
    if (w >= 16) {
        if (i < w) {   /* the tail: the last 16 columns again */
            __m128i v = _mm_loadu_si128((const __m128i *)(x + w - 16));
            _mm256_storeu_si256((__m256i *)(dst + w - 16), _mm256_sub_epi16(u8 ? _mm256_cvtepu8_epi16(v) : _mm256_cvtepi8_epi16(v), Z));
        }
    } else if (w >= 8) {   /* 8 <= w < 16: columns 0-7 and the last 8 */
        const __m128i Z8 = _mm256_castsi256_si128(Z);
        __m128i a = _mm_loadl_epi64((const __m128i *)x), b = _mm_loadl_epi64((const __m128i *)(x + w - 8));
        _mm_storeu_si128((__m128i *)dst, _mm_sub_epi16(u8 ? _mm_cvtepu8_epi16(a) : _mm_cvtepi8_epi16(a), Z8));
        _mm_storeu_si128((__m128i *)(dst + w - 8), _mm_sub_epi16(u8 ? _mm_cvtepu8_epi16(b) : _mm_cvtepi8_epi16(b), Z8));
    } else if (w >= 4) {   /* 4 <= w < 8 (7x7 planes): columns 0-3 and the last 4 */
        const __m128i Z8 = _mm256_castsi256_si128(Z);
        int32_t a4, b4;
        memcpy(&a4, x, 4);
        memcpy(&b4, x + w - 4, 4);
        __m128i a = _mm_cvtsi32_si128(a4), b = _mm_cvtsi32_si128(b4);
        _mm_storel_epi64((__m128i *)dst, _mm_sub_epi16(u8 ? _mm_cvtepu8_epi16(a) : _mm_cvtepi8_epi16(a), Z8));
        _mm_storel_epi64((__m128i *)(dst + w - 4), _mm_sub_epi16(u8 ? _mm_cvtepu8_epi16(b) : _mm_cvtepi8_epi16(b), Z8));
    } else if (u8) {
        for (; i < w; i++) dst[i] = (int16_t)(x[i] - xz);
    } else {
        for (; i < w; i++) dst[i] = (int16_t)((int8_t)x[i] - xz);
    }
}

/* Input row xr as (x - xz) split into sw column phases: phase ph (at row + ph * pstride) holds padded columns ph,
 * ph + sw, ... (input column idx * sw + ph - pw at index idx < lpmax); writes only the input's columns. */
static void bs_dw_fill_phases(const void *xr, int u8, int16_t xz, int32_t w, int32_t pw, int32_t sw, size_t pstride,
                              int32_t lpmax, int16_t *row) {
    for (int32_t ph = 0; ph < sw; ph++) {
        int16_t *dst = row + (size_t)ph * pstride;
        int32_t i0 = ph - pw, idx = 0;
        while (i0 + idx * sw < 0) idx++;
        if (sw == 2 && u8) {   /* 16 outputs from 32 bytes: the even or odd bytes, zero-extended */
            const uint8_t *x = (const uint8_t *)xr;
            const __m256i Z = _mm256_set1_epi16(xz), M = _mm256_set1_epi16(0x00FF);
            for (; i0 + (idx + 15) * 2 + 1 < w && idx + 16 <= lpmax; idx += 16) {
                __m256i v = _mm256_loadu_si256((const __m256i *)(x + i0 + idx * 2));
                v = _mm256_and_si256(v, M);
                v = _mm256_permute4x64_epi64(_mm256_packus_epi16(v, v), 0xD8);
                _mm256_storeu_si256((__m256i *)(dst + idx), _mm256_sub_epi16(_mm256_cvtepu8_epi16(_mm256_castsi256_si128(v)), Z));
            }
        }
        if (u8)
            for (int32_t i = i0 + idx * sw; i < w && idx < lpmax; i += sw, idx++) dst[idx] = (int16_t)(((const uint8_t *)xr)[i] - xz);
        else
            for (int32_t i = i0 + idx * sw; i < w && idx < lpmax; i += sw, idx++) dst[idx] = (int16_t)(((const int8_t *)xr)[i] - xz);
    }
}

/* bs_dw_fill_phases for sw == 2: input column i is padded column i + pw, so the even columns go to phase pw & 1 from
 * index pw >> 1 and the odd ones to the other phase from index (pw + 1) >> 1 (bs_split2_row). */
static void bs_dw_fill_2phases(const void *xr, int u8, int16_t xz, int32_t w, int32_t pw, size_t pstride, int16_t *row) {
    int16_t *ev = row + (size_t)(pw & 1) * pstride + (pw >> 1), *od = row + (size_t)((pw + 1) & 1) * pstride + ((pw + 1) >> 1);
    bs_split2_row((const unsigned char *)xr, u8, 2, xz, w, (unsigned char *)ev, (unsigned char *)od);
}

/* The int16 row (x - xz) of input row xr, zero-padded, split into sw phases of lp. */
static void bs_dw_fill_row(const bs_avx2_job *j, const bs_dw_geo *d, const void *xr, int16_t *row) {
    const bs_window *g = &j->conv->win;
    int32_t sw = g->sw, lp = d->lp, pw = g->pw, w = g->w;
    int16_t xz = (int16_t)j->p->x_zero;
    if (sw == 1) {   /* only the padding is zeroed: the input columns are all written below */
        memset(row, 0, (size_t)pw * sizeof(int16_t));
        memset(row + pw + w, 0, (size_t)(d->rowlen - pw - w) * sizeof(int16_t));
        bs_dw_convert((const unsigned char *)xr, j->xt == BS_T_U8, xz, w, row + pw);
        return;
    }
    memset(row, 0, (size_t)d->rowlen * sizeof(int16_t));
    bs_dw_fill_phases(xr, j->xt == BS_T_U8, xz, w, pw, sw, (size_t)lp, lp, row);
}

/* 16 outputs of one row of one channel: acc0 = outputs 0-3, 8-11, acc1 = 4-7, 12-15 (the unpack order). */
static inline void bs_qs16s16_dwconv_16x2__avx2(const int16_t *const *rows, int32_t nrows, const int32_t *off,
                                               const int32_t *wpair, int32_t npairs, int32_t ow0, int32_t *out) {
    __m256i acc0 = _mm256_setzero_si256(), acc1 = acc0;
    for (int32_t r = 0; r < nrows; r++) {
        const int16_t *row = rows[r];
        if (!row) continue;
        const int32_t *wp = wpair + (size_t)r * npairs, *op = off + (size_t)r * npairs * 2;
        for (int32_t q = 0; q < npairs; q++) {
            __m256i va = _mm256_loadu_si256((const __m256i *)(row + op[2 * q] + ow0));
            __m256i vb = _mm256_loadu_si256((const __m256i *)(row + op[2 * q + 1] + ow0));
            __m256i wv = _mm256_set1_epi32(wp[q]);
            acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(_mm256_unpacklo_epi16(va, vb), wv));
            acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(_mm256_unpackhi_epi16(va, vb), wv));
        }
    }
    _mm256_storeu_si256((__m256i *)out, _mm256_permute2x128_si256(acc0, acc1, 0x20));
    _mm256_storeu_si256((__m256i *)(out + 8), _mm256_permute2x128_si256(acc0, acc1, 0x31));
}

/* Five tap pairs (a 3x3 kernel: taps 0-1, 2-3, 4-5, 6-7 and 8 with a zero weight), unrolled with the pair weights
 * broadcast once: pair q reads pa[q] and pb[q] + o for outputs o, o + 16, ... < n. Integer sums, so the pairing and
 * order give the same int32 as bs_qs16s16_dwconv_16x2__avx2's. */
static void bs_qs16s16_dwconv_5pairs__avx2(const int16_t *const pa[5], const int16_t *const pb[5], const int32_t wp[5], int32_t n,
                                          int32_t *out) {
    const __m256i W0 = _mm256_set1_epi32(wp[0]), W1 = _mm256_set1_epi32(wp[1]), W2 = _mm256_set1_epi32(wp[2]);
    const __m256i W3 = _mm256_set1_epi32(wp[3]), W4 = _mm256_set1_epi32(wp[4]);
    for (int32_t o = 0; o < n; o += 16) {
        __m256i a0 = _mm256_setzero_si256(), a1 = a0;
#define BS_DW_PAIR(q, W)                                                                                      \
        {                                                                                                     \
            __m256i va = _mm256_loadu_si256((const __m256i *)(pa[q] + o));                                   \
            __m256i vb = _mm256_loadu_si256((const __m256i *)(pb[q] + o));                                   \
            a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(_mm256_unpacklo_epi16(va, vb), W));                   \
            a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(_mm256_unpackhi_epi16(va, vb), W));                   \
        }
        BS_DW_PAIR(0, W0) BS_DW_PAIR(1, W1) BS_DW_PAIR(2, W2) BS_DW_PAIR(3, W3) BS_DW_PAIR(4, W4)
#undef BS_DW_PAIR
        _mm256_storeu_si256((__m256i *)(out + o), _mm256_permute2x128_si256(a0, a1, 0x20));
        _mm256_storeu_si256((__m256i *)(out + o + 8), _mm256_permute2x128_si256(a0, a1, 0x31));
    }
}

int32_t bs_dw_5pairs__avx2(const int16_t *const *rows, int32_t nrows, const int32_t *off, const int32_t *wpair, int32_t npairs,
                           const int16_t *pa[5], const int16_t *pb[5], int32_t wp[5]) {
    if (nrows == 1 && npairs == 5) {
        for (int32_t q = 0; q < 5; q++) { pa[q] = rows[0] + off[2 * q]; pb[q] = rows[0] + off[2 * q + 1]; wp[q] = wpair[q]; }
        return 1;
    }
    /* 3 rows of 2 pairs whose second pairs' second weights are 0 (3 taps a row: 3x3; 3x4 with those taps 0 too) */
    if (nrows == 3 && npairs == 2 && rows[0] && rows[1] && rows[2] &&
        ((uint32_t)wpair[1] >> 16) == 0 && ((uint32_t)wpair[3] >> 16) == 0 && ((uint32_t)wpair[5] >> 16) == 0) {
        /* tap (r, c): offset off[(2 r + c / 2) * 2 + c % 2], weight the c % 2 half of wpair[2 r + c / 2] */
        const int16_t *tp[10];
        int32_t tw[10];
        for (int32_t t = 0; t < 9; t++) {
            int32_t r = t / 3, c = t % 3, q = 2 * r + c / 2;
            tp[t] = rows[r] + off[q * 2 + c % 2];
            tw[t] = (int32_t)(int16_t)(uint16_t)((uint32_t)wpair[q] >> (16 * (c % 2)));
        }
        tp[9] = tp[8]; tw[9] = 0;
        for (int32_t q = 0; q < 5; q++) {
            pa[q] = tp[2 * q]; pb[q] = tp[2 * q + 1];
            wp[q] = (int32_t)(((uint32_t)(uint16_t)(int16_t)tw[2 * q + 1] << 16) | (uint16_t)(int16_t)tw[2 * q]);
        }
        return 1;
    }
    return 0;
}

/* The AVX2 row kernel: a whole output row, 16 outputs at a time; 3x3 kernels through the unrolled five pairs. */
static void bs_qs16s16_dwconv_row__avx2(const int16_t *const *rows, int32_t nrows, const int32_t *off, const int32_t *wpair,
                                        int32_t npairs, int32_t ow, int32_t *acc) {
    const int16_t *pa[5], *pb[5];
    int32_t wp[5];
    if (bs_dw_5pairs__avx2(rows, nrows, off, wpair, npairs, pa, pb, wp)) { bs_qs16s16_dwconv_5pairs__avx2(pa, pb, wp, ow, acc); return; }
    for (int32_t ow0 = 0; ow0 < ow; ow0 += 16) bs_qs16s16_dwconv_16x2__avx2(rows, nrows, off, wpair, npairs, ow0, acc + ow0);
}

/* The AVX2 row epilogue: 8 lanes at a time through bs_epi_apply (acc holds whole vectors up to the row's ow16). */
static void bs_dw_row_epilogue(const bs_avx2_job *j, const int32_t *acc, size_t c, size_t off, size_t count) {
    bs_epi ep;
    bs_epi_setup(j, c, &ep);
    size_t i = 0;
    for (; i + 16 <= count; i += 16)
        bs_epi_apply2(j, &ep, _mm256_loadu_si256((const __m256i *)(acc + i)), _mm256_loadu_si256((const __m256i *)(acc + i + 8)), 0, c,
                      off + i, 1, 8, 8);
    for (; i < count; i += 8)
        bs_epi_apply(j, &ep, _mm256_loadu_si256((const __m256i *)(acc + i)), 0, c, off + i, 1, count - i < 8 ? count - i : 8);
}

/* Rows of ow of acc (row stride wq > ow) moved together (stride ow), in place: each row's elements are all loaded
 * before any is stored, and a row moves to a lower address, so no row overwrites one still to be read. */
static void bs_dw_compact(int32_t *acc, int32_t oh, int32_t ow, int32_t wq) {
    if (ow > 16 || ow < 1) {
        for (int32_t r = 1; r < oh; r++) memmove(acc + (size_t)r * ow, acc + (size_t)r * wq, (size_t)ow * sizeof(int32_t));
        return;
    }
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(ow < 8 ? ow : 8), lane);
    for (int32_t r = 1; r < oh; r++) {
        const int32_t *src = acc + (size_t)r * wq;
        int32_t *dst = acc + (size_t)r * ow;
        if (ow >= 8) {   /* 8 <= ow <= 16: the first 8 and the last 8 */
            __m256i a = _mm256_loadu_si256((const __m256i *)src), b = _mm256_loadu_si256((const __m256i *)(src + ow - 8));
            _mm256_storeu_si256((__m256i *)dst, a);
            _mm256_storeu_si256((__m256i *)(dst + ow - 8), b);
        } else {
            _mm256_maskstore_epi32(dst, m0, _mm256_maskload_epi32(src, m0));
        }
    }
}

void bs_dwconv_run_with__avx2(const bs_avx2_job *j, int32_t task, bs_dw_row_epilogue_fn epi, bs_dw_row_kernel_fn rowk) {
    bs_dw_geo d;
    if (!bs_dw_geometry(j, &d)) return;
    const bs_window *g = &j->conv->win;
    const bs_packed *h = (const bs_packed *)j->packed;
    const unsigned char *wpk = (const unsigned char *)h + 64 + BS_A64((size_t)h->groups * h->mg4 * 4);
    int32_t kh = g->kh, kw = g->kw, npairs = (kw + 1) / 2;
    size_t in_plane = (size_t)g->h * g->w, out_plane = (size_t)g->oh * g->ow;
    size_t esz = 1;
    int16_t ring[BS_DW_BUF];
    int32_t tag[BS_DW_MAXK];
    int32_t wpair[BS_DW_MAXK], off[2 * BS_DW_MAXK];
    int32_t accrow[BS_DW_MAXW];
    /* tap offsets inside a ring row: phase * lp + index; the odd tap of a row pairs with a zero weight */
    for (int32_t r = 0; r < kh; r++)
        for (int32_t q = 0; q < npairs; q++)
            for (int32_t e = 0; e < 2; e++) {
                int32_t t = 2 * q + e < kw ? 2 * q + e : 2 * q;
                int32_t col = t * g->dw;
                off[((size_t)r * npairs + q) * 2 + e] = (col % g->sw) * d.lp + col / g->sw;
            }
    int32_t c0, c1;
    bs_dw_channels__avx2(j, task, &c0, &c1);
    /* Plane mode (the phase-split plane fits the buffer): the zero-padded plane of (x - xz) (hp x wp, wp = pw + w +
     * pew), split into sh x sw sub-planes by (row mod sh, column mod sw), each hq x wq (hq = ceil(hp / sh), wq =
     * ceil(wp / sw)); output (oh, ow) at virtual index oh * wq + ow, so each tap is one offset for the whole plane:
     * sub-plane ((kh*dh) mod sh, (kw*dw) mod sw) + ((kh*dh) div sh) * wq + (kw*dw) div sw, and the K taps pair in
     * order. The virtual columns ow >= OW are computed and dropped (instead of 7-of-32-lane rows on small planes);
     * the rows are then compacted for one epilogue call over the channel. */
    int32_t sh = g->sh, sw = g->sw, wp = g->pw + g->w + g->pew, hp = g->ph + g->h + g->peh;
    int32_t wq = (wp + sw - 1) / sw, hq = (hp + sh - 1) / sh, ktaps = kh * kw, kpairs = (ktaps + 1) / 2;
    int64_t sub = (int64_t)hq * wq, vcount = (int64_t)g->oh * wq, vpad = (vcount + 31) / 32 * 32;
    int64_t maxinner = (int64_t)((kh - 1) * g->dh / sh) * wq + (kw - 1) * g->dw / sw;
    int64_t pbuf = (int64_t)sh * sw * sub + vpad + maxinner;
    if (pbuf <= BS_DW_PLANE_MAX && pbuf <= BS_DW_BUF && vpad <= BS_DW_MAXW && ktaps <= BS_DW_MAXK) {
        int32_t poff[2 * BS_DW_MAXK];
        for (int32_t q = 0; q < kpairs; q++)
            for (int32_t e = 0; e < 2; e++) {
                int32_t t = 2 * q + e < ktaps ? 2 * q + e : 2 * q;
                int32_t rr = (t / kw) * g->dh, cc = (t % kw) * g->dw;
                poff[2 * q + e] = (int32_t)(((rr % sh) * sw + cc % sw) * sub + (int64_t)(rr / sh) * wq + cc / sw);
            }
        int u8 = j->xt == BS_T_U8;
        int16_t xz = (int16_t)j->p->x_zero;
        /* zeroed once: every channel's fill writes the same positions (the input's), the rest stays 0 */
        memset(ring, 0, (size_t)pbuf * sizeof(int16_t));
        for (int32_t c = c0; c < c1; c++) {
            const unsigned char *base = wpk + (size_t)c * h->kg * 16;
            for (int32_t q = 0; q < kpairs; q++) {
                int32_t wv[2];
                for (int32_t e = 0; e < 2; e++) {
                    int32_t kk = 2 * q + e;
                    wv[e] = kk >= ktaps ? 0 : (h->mode == BS_PACK_S8C4 ? ((const int8_t *)base)[(size_t)(kk / 4) * 16 + kk % 4]
                                                                       : ((const int16_t *)base)[(size_t)(kk / 2) * 8 + kk % 2]);
                }
                wpair[q] = (int32_t)(((uint32_t)(uint16_t)(int16_t)wv[1] << 16) | (uint16_t)(int16_t)wv[0]);
            }
            const unsigned char *xc = (const unsigned char *)j->x + (size_t)c * in_plane * esz;
            /* padded row r = ih + ph goes to sub-plane row (r mod sh, r div sh): counted without a division per row */
            int32_t rm = g->ph % sh, rq = g->ph / sh;
            for (int32_t ih = 0; ih < g->h; ih++, rm = rm + 1 == sh ? 0 : rm + 1, rq += rm == 0) {
                int16_t *dst = ring + (size_t)(rm * sw) * sub + (size_t)rq * wq;
                if (sw == 1) bs_dw_convert(xc + (size_t)ih * g->w, u8, xz, g->w, dst + g->pw);
                else if (sw == 2) bs_dw_fill_2phases(xc + (size_t)ih * g->w, u8, xz, g->w, g->pw, (size_t)sub, dst);
                else bs_dw_fill_phases(xc + (size_t)ih * g->w, u8, xz, g->w, g->pw, sw, (size_t)sub, wq, dst);
            }
            const int16_t *rows1[1] = {ring};
            rowk(rows1, 1, poff, wpair, kpairs, (int32_t)vcount, accrow);
            bs_dw_compact(accrow, g->oh, g->ow, wq);
            epi(j, accrow, (size_t)c, (size_t)c * out_plane, out_plane);
        }
        return;
    }
    for (int32_t c = c0; c < c1; c++) {
        const unsigned char *base = wpk + (size_t)c * h->kg * 16;
        for (int32_t r = 0; r < kh; r++)
            for (int32_t q = 0; q < npairs; q++) {
                int32_t wv[2];
                for (int32_t e = 0; e < 2; e++) {
                    int32_t t = 2 * q + e, kk = r * kw + t;
                    wv[e] = t >= kw ? 0 : (h->mode == BS_PACK_S8C4 ? ((const int8_t *)base)[(size_t)(kk / 4) * 16 + kk % 4]
                                                                   : ((const int16_t *)base)[(size_t)(kk / 2) * 8 + kk % 2]);
                }
                wpair[(size_t)r * npairs + q] = (int32_t)(((uint32_t)(uint16_t)(int16_t)wv[1] << 16) | (uint16_t)(int16_t)wv[0]);
            }
        for (int32_t r = 0; r < kh; r++) tag[r] = -1;
        const unsigned char *xc = (const unsigned char *)j->x + (size_t)c * in_plane * esz;
        for (int32_t oh = 0; oh < g->oh; oh++) {
            const int16_t *rows[BS_DW_MAXK];
            for (int32_t r = 0; r < kh; r++) {
                int64_t ih = (int64_t)oh * g->sh - g->ph + (int64_t)r * g->dh;
                rows[r] = NULL;
                if (ih < 0 || ih >= g->h) continue;
                int32_t slot = g->dh == 1 ? (int32_t)(ih % kh) : r;   /* dh == 1: kh consecutive rows, distinct slots */
                int16_t *row = ring + (size_t)slot * d.rowlen;
                if (tag[slot] != (int32_t)ih) { bs_dw_fill_row(j, &d, xc + (size_t)ih * g->w * esz, row); tag[slot] = (int32_t)ih; }
                rows[r] = row;
            }
            size_t obase = (size_t)c * out_plane + (size_t)oh * g->ow;
            rowk(rows, kh, off, wpair, npairs, g->ow, accrow);
            epi(j, accrow, (size_t)c, obase, (size_t)g->ow);
        }
    }
}

void bs_dwconv_run__avx2(const bs_avx2_job *j, int32_t task) {
    bs_dwconv_run_with__avx2(j, task, bs_dw_row_epilogue, bs_qs16s16_dwconv_row__avx2);
}

/* ---- batch-1 gemm (rows <= BS_GEMV_ROWS): weights packed k-contiguous per channel, 2 or 4 per byte for low bits ----
 * Memory-bound: each weight is read once per row, so the layout reads bits/8 bytes per weight (up to 4x fewer than
 * S8C4). Per block of 4 output channels, chunks of 32 bytes [chunk][4 channels][32 bytes]:
 *   GEMV8 (bits 5..8): w_b as signed bytes, 32 k per chunk;
 *   GEMV4 (bits 3, 4): w_b + 8 in nibbles, byte i of a chunk = k i (low) | k 32 + i (high), 64 k per chunk;
 *   GEMV2 (bits 1, 2): w_b + 2 in 2-bit fields, byte i = k i | k 32+i << 2 | k 64+i << 4 | k 96+i << 6, 128 k.
 * With the offset o (8, 2 or 0): sum (x - xz) w = sum u w' - o sum u - uz sum w (u the u8 view of x as elsewhere),
 * mod 2^32 like the reference. vpmaddubsw is exact: |u w'| pair sums <= 2 * 255 * 64 (w_b of <= 7 bits) or
 * 2 * 255 * 15; 8-bit weights are sign-extended to int16 and multiplied by vpmaddwd. */
#define BS_GEMV_CB_PER_TASK 8

static int32_t bs_gemv_mode(int32_t bits) { return bits <= 2 ? BS_PACK_GEMV2 : (bits <= 4 ? BS_PACK_GEMV4 : BS_PACK_GEMV8); }
static int32_t bs_gemv_kper(int32_t mode) { return mode == BS_PACK_GEMV2 ? 128 : (mode == BS_PACK_GEMV4 ? 64 : 32); }
static int32_t bs_gemv_off(int32_t mode) { return mode == BS_PACK_GEMV2 ? 2 : (mode == BS_PACK_GEMV4 ? 8 : 0); }

/* 1 when the GEMV layout of these weights fits the bytes the GEMM layout of that bit-width takes
 * (bs_qs8_packed_weights_size_bits__avx2, at most bs_qs8_packed_weights_size__avx2). */
static int bs_gemv_fits(int32_t groups, int32_t mg, int32_t k, int32_t bits) {
    if (groups != 1) return 0;
    size_t mg4 = ((size_t)mg + 3) / 4 * 4;
    size_t chunks = ((size_t)k + (size_t)bs_gemv_kper(bs_gemv_mode(bits)) - 1) / (size_t)bs_gemv_kper(bs_gemv_mode(bits));
    return mg4 * chunks * 32 <= bs_packed_data_bytes(1, mg, k, bits);
}

static void bs_pack_gemv(const int8_t *q8, void *packed, int32_t mg, int32_t k, int32_t kmajor, int32_t shift, int32_t bits) {
    bs_packed *h = (bs_packed *)packed;
    int32_t mode = bs_gemv_mode(bits), kper = bs_gemv_kper(mode), off = bs_gemv_off(mode);
    int32_t mg4 = (mg + 3) / 4 * 4, chunks = (k + kper - 1) / kper;
    h->mode = mode; h->groups = 1; h->mg = mg; h->k = k; h->kg = chunks; h->mg4 = mg4; h->bits = bits; h->shift = shift;
    int32_t *wsum = (int32_t *)((unsigned char *)packed + 64);
    unsigned char *wp = (unsigned char *)packed + 64 + BS_A64((size_t)mg4 * 4);
    const __m256i LO = _mm256_set1_epi8((char)-(1 << (bits - 1))), HI = _mm256_set1_epi8((char)((1 << (bits - 1)) - 1));
    const __m256i OFF = _mm256_set1_epi8((char)off), ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    int8_t col[32];
    for (int32_t c = 0; c < mg4; c++) {
        __m256i sums = _mm256_setzero_si256();
        for (int32_t ch = 0; ch < chunks; ch++) {
            __m256i packedv = _mm256_setzero_si256();
            for (int32_t part = 0; part < kper / 32; part++) {
                int32_t kc = ch * kper + part * 32;
                __m256i w = _mm256_setzero_si256();
                if (c < mg && kc < k) {
                    if (!kmajor) w = bs_load_row32(q8 + (size_t)c * k, kc, k);
                    else {
                        memset(col, 0, sizeof col);
                        for (int32_t i = 0; i < 32 && kc + i < k; i++) col[i] = q8[(size_t)(kc + i) * mg + c];
                        w = _mm256_loadu_si256((const __m256i *)col);
                    }
                    w = bs_shift_clamp32(w, shift, bits, LO, HI);
                    /* lanes past k hold 0: they add nothing to the sum and meet u = 0 in the kernel */
                    sums = _mm256_add_epi32(sums, _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, w), ones16));
                }
                if (mode == BS_PACK_GEMV8) { packedv = w; continue; }
                /* the offset weights of lanes past k are o, multiplied by u = 0 there */
                __m256i wo = _mm256_add_epi8(w, OFF);
                int32_t fbits = mode == BS_PACK_GEMV4 ? 4 : 2;
                /* place field `part` (bits fbits*part ..) of every byte: shift within 16-bit lanes, no carries across bytes */
                __m256i sh = _mm256_sll_epi16(wo, _mm_cvtsi32_si128(fbits * part));
                packedv = _mm256_or_si256(packedv, _mm256_and_si256(sh, _mm256_set1_epi8((char)(((1 << fbits) - 1) << (fbits * part)))));
            }
            _mm256_storeu_si256((__m256i *)(wp + (((size_t)(c / 4) * chunks + ch) * 4 + (size_t)(c % 4)) * 32), packedv);
        }
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sums), _mm256_extracti128_si256(sums, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
        wsum[c] = _mm_cvtsi128_si32(s4);
    }
}

static int bs_is_gemv(const bs_avx2_job *j) {
    int32_t mode = ((const bs_packed *)j->packed)->mode;
    return mode == BS_PACK_GEMV8 || mode == BS_PACK_GEMV4 || mode == BS_PACK_GEMV2;
}

static inline int32_t bs_hsum8(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

/* 32 u bytes of row x from k offset kc (zeros past k). */
static inline __m256i bs_gemv_u32(const unsigned char *x, int32_t flip, int32_t kc, int32_t k) {
    __m256i v;
    if (kc + 32 <= k) v = _mm256_loadu_si256((const __m256i *)(x + kc));
    else {
        if (kc >= k) return _mm256_setzero_si256();
        unsigned char buf[32];
        memset(buf, flip ? 0x80 : 0, sizeof buf);   /* u = 0 past k */
        memcpy(buf, x + kc, (size_t)(k - kc));
        v = _mm256_loadu_si256((const __m256i *)buf);
    }
    return flip ? _mm256_xor_si256(v, _mm256_set1_epi8((char)0x80)) : v;
}

/* One task: channel blocks [cb0, cb1) of every row. */
static void bs_gemv_run(const bs_avx2_job *j, int32_t task) {
    const bs_packed *h = (const bs_packed *)j->packed;
    const int32_t *wsum = (const int32_t *)((const unsigned char *)h + 64);
    const unsigned char *wp = (const unsigned char *)h + 64 + BS_A64((size_t)h->mg4 * 4);
    int32_t mode = h->mode, chunks = h->kg, kper = bs_gemv_kper(mode), k = h->k, mg = h->mg, ncb = h->mg4 / 4;
    int32_t cb0 = task * BS_GEMV_CB_PER_TASK, cb1 = cb0 + BS_GEMV_CB_PER_TASK < ncb ? cb0 + BS_GEMV_CB_PER_TASK : ncb;
    int32_t flip = j->xt != BS_T_U8;
    int64_t uz = (int64_t)j->p->x_zero + (flip ? 128 : 0);
    const __m256i ones16 = _mm256_set1_epi16(1), m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x03);
    for (size_t r = 0; r < j->rows; r++) {
        const unsigned char *x = (const unsigned char *)j->x + r * (size_t)k;
        /* sum u over the row (the offset correction) */
        uint32_t usum = 0;
        if (bs_gemv_off(mode)) {
            __m256i s = _mm256_setzero_si256();
            for (int32_t kc = 0; kc < k; kc += 32) s = _mm256_add_epi64(s, _mm256_sad_epu8(bs_gemv_u32(x, flip, kc, k), _mm256_setzero_si256()));
            __m128i s2 = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
            usum = (uint32_t)(_mm_cvtsi128_si64(s2) + _mm_extract_epi64(s2, 1));
        }
        uint32_t ocorr = usum * (uint32_t)bs_gemv_off(mode);
        for (int32_t cb = cb0; cb < cb1; cb++) {
            __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
            const unsigned char *wb = wp + (size_t)cb * chunks * 128;
            for (int32_t ch = 0; ch < chunks; ch++) {
                int32_t kc = ch * kper;
                const unsigned char *wc = wb + (size_t)ch * 128;
                if (mode == BS_PACK_GEMV8) {
                    __m256i u = bs_gemv_u32(x, flip, kc, k);
                    if (h->bits <= 7) {
                        for (int c4 = 0; c4 < 4; c4++)
                            acc[c4] = _mm256_add_epi32(acc[c4], _mm256_madd_epi16(_mm256_maddubs_epi16(u, _mm256_load_si256((const __m256i *)(wc + c4 * 32))), ones16));
                    } else {
                        __m256i ulo = _mm256_cvtepu8_epi16(_mm256_castsi256_si128(u)), uhi = _mm256_cvtepu8_epi16(_mm256_extracti128_si256(u, 1));
                        for (int c4 = 0; c4 < 4; c4++) {
                            const __m128i *wq = (const __m128i *)(wc + c4 * 32);
                            __m256i p = _mm256_add_epi32(_mm256_madd_epi16(ulo, _mm256_cvtepi8_epi16(_mm_load_si128(wq))),
                                                         _mm256_madd_epi16(uhi, _mm256_cvtepi8_epi16(_mm_load_si128(wq + 1))));
                            acc[c4] = _mm256_add_epi32(acc[c4], p);
                        }
                    }
                } else if (mode == BS_PACK_GEMV4) {
                    __m256i u0 = bs_gemv_u32(x, flip, kc, k), u1 = bs_gemv_u32(x, flip, kc + 32, k);
                    for (int c4 = 0; c4 < 4; c4++) {
                        __m256i v = _mm256_load_si256((const __m256i *)(wc + c4 * 32));
                        __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                        /* pair sums <= 2 * 255 * 15 each: their sum fits int16 */
                        __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(u0, lo), _mm256_maddubs_epi16(u1, hi));
                        acc[c4] = _mm256_add_epi32(acc[c4], _mm256_madd_epi16(p, ones16));
                    }
                } else {
                    __m256i u0 = bs_gemv_u32(x, flip, kc, k), u1 = bs_gemv_u32(x, flip, kc + 32, k);
                    __m256i u2 = bs_gemv_u32(x, flip, kc + 64, k), u3 = bs_gemv_u32(x, flip, kc + 96, k);
                    for (int c4 = 0; c4 < 4; c4++) {
                        __m256i v = _mm256_load_si256((const __m256i *)(wc + c4 * 32));
                        /* pair sums <= 2 * 255 * 3 each: the four fit int16 */
                        __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(u0, _mm256_and_si256(v, m2)),
                                                     _mm256_maddubs_epi16(u1, _mm256_and_si256(_mm256_srli_epi16(v, 2), m2)));
                        p = _mm256_add_epi16(p, _mm256_maddubs_epi16(u2, _mm256_and_si256(_mm256_srli_epi16(v, 4), m2)));
                        p = _mm256_add_epi16(p, _mm256_maddubs_epi16(u3, _mm256_and_si256(_mm256_srli_epi16(v, 6), m2)));
                        acc[c4] = _mm256_add_epi32(acc[c4], _mm256_madd_epi16(p, ones16));
                    }
                }
            }
            for (int c4 = 0; c4 < 4; c4++) {
                int32_t c = cb * 4 + c4;
                if (c >= mg) break;
                int32_t a = (int32_t)((uint32_t)bs_hsum8(acc[c4]) - ocorr - (uint32_t)uz * (uint32_t)wsum[c]);
                size_t i = r * (size_t)mg + (size_t)c;
                if (j->rq) bs_store_scalar(j->y, j->yt, i, bs_requant_scalar(a, j->rq, (size_t)c));
                else ((int32_t *)j->y)[i] = a;
            }
        }
    }
}

/* ---- stages ---- */
/* The staged job's geometry: the one bs_avx2_stages kept in the job, or (a job it has not seen) made in *own. */
static const bs_geo *bs_geo_of(const bs_avx2_job *j, bs_geo *own) {
    if (j->kind == BS_AVX2_STAGED) return &j->geo;
    bs_geometry(j, own);
    return own;
}

typedef struct bs_layout {
    const bs_geo *o;
    bs_geo own;
    unsigned char *tmp, *ilv;   /* ilv: groups consecutive interleaved buffers */
} bs_layout;

static void bs_layout_of(const bs_avx2_job *j, bs_layout *l) {
    l->o = bs_geo_of(j, &l->own);
    unsigned char *s = (unsigned char *)(((uintptr_t)j->scratch + 63) & ~(uintptr_t)63);
    l->tmp = s;
    l->ilv = s + l->o->tmp_bytes;
}

/* Which kernel runs the job: what bs_avx2_stages stored, or (a job it has not seen) computed now. */
static int32_t bs_kind(const bs_avx2_job *j) {
    if (j->kind) return j->kind;
    return bs_is_gemv(j) ? BS_AVX2_GEMV : bs_dwconv_tasks__avx2(j) ? BS_AVX2_DEPTHWISE : BS_AVX2_STAGED;
}

int32_t bs_avx2_stages(bs_avx2_job *j) {
    j->kind = 0;
    j->kind = bs_kind(j);
    if (j->kind != BS_AVX2_STAGED) return 1;
    bs_geometry(j, &j->geo);
    return j->geo.fallback ? 1 : 3;
}

static size_t bs_cdiv(size_t a, size_t b) { return (a + b - 1) / b; }

int32_t bs_avx2_tasks(const bs_avx2_job *j, int32_t stage) {
    int32_t kind = bs_kind(j);
    if (kind == BS_AVX2_GEMV) return (int32_t)bs_cdiv((size_t)((const bs_packed *)j->packed)->mg4 / 4, BS_GEMV_CB_PER_TASK);
    if (kind == BS_AVX2_DEPTHWISE) return bs_dwconv_tasks__avx2(j);
    bs_geo own;
    const bs_geo *o = bs_geo_of(j, &own);
    if (o->fallback) return 1;
    int32_t per = o->mode == BS_PACK_S8C4 ? 4 : 2;
    switch (stage) {
    case 0: return o->plane ? (int32_t)bs_cdiv((size_t)j->conv->c, BS_PLANES_PER_TASK)
                           : (int32_t)bs_cdiv((size_t)o->groups * o->kg * per, BS_ROWS_PER_TASK);
    case 1: return (int32_t)((size_t)o->groups * bs_cdiv(o->nb, BS_BLOCKS_PER_TASK) * o->ilv_kparts);
    default: return (int32_t)((size_t)o->groups * bs_cdiv(bs_cdiv(o->nb, 2), o->task_pairs) * bs_cdiv((size_t)o->mg4 / 4, o->task_cbs));
    }
}

static void bs_fallback(const bs_avx2_job *j, const bs_geo *o) {
    int8_t *w = (int8_t *)(((uintptr_t)j->scratch + 63) & ~(uintptr_t)63);
    bs_unpack_weights((const bs_packed *)j->packed, w);
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
    (void)o;
}

void bs_avx2_run(const bs_avx2_job *j, int32_t stage, int32_t task) {
    int32_t kind = bs_kind(j);
    if (kind == BS_AVX2_GEMV) { bs_gemv_run(j, task); return; }
    if (kind == BS_AVX2_DEPTHWISE) {
        bs_dwconv_run__avx2(j, task);
        if (j->res_p) {   /* the task's channels */
            size_t plane = (size_t)j->conv->win.oh * j->conv->win.ow;
            int32_t c0, c1;
            bs_dw_channels__avx2(j, task, &c0, &c1);
            bs_res_range(j, (size_t)c0 * plane, (size_t)c1 * plane);
        }
        return;
    }
    bs_layout l;
    bs_layout_of(j, &l);
    const bs_geo *o = l.o;
    if (o->fallback) {
        bs_fallback(j, o);
        bs_res_range(j, 0, (size_t)o->groups * o->mg * o->n);
        return;
    }
    int32_t per = o->mode == BS_PACK_S8C4 ? 4 : 2;
    size_t kpad = (size_t)o->kg * per;
    if (stage == 0 && o->plane) {
        size_t c0 = (size_t)task * BS_PLANES_PER_TASK, c1 = c0 + BS_PLANES_PER_TASK;
        if (c1 > (size_t)j->conv->c) c1 = (size_t)j->conv->c;
        bs_plane_fill(j, o, c0, c1, l.tmp);
        return;
    }
    if (stage == 0) {
        size_t r0 = (size_t)task * BS_ROWS_PER_TASK, r1 = r0 + BS_ROWS_PER_TASK, rows = (size_t)o->groups * kpad;
        if (r1 > rows) r1 = rows;
        for (size_t r = r0; r < r1; r++) bs_gather_row(j, o, r, l.tmp);
        return;
    }
    if (stage == 1) {   /* task = (group, chunk of BS_BLOCKS_PER_TASK blocks, part of the k-groups) */
        size_t kp = o->ilv_kparts, per_g = bs_cdiv(o->nb, BS_BLOCKS_PER_TASK) * kp, g = (size_t)task / per_g;
        size_t t = (size_t)task % per_g / kp, part = (size_t)task % kp;
        size_t b0 = t * BS_BLOCKS_PER_TASK, b1 = b0 + BS_BLOCKS_PER_TASK;
        int32_t q0 = (int32_t)(part * (size_t)o->kg / kp), q1 = (int32_t)((part + 1) * (size_t)o->kg / kp);
        if (b1 > o->nb) b1 = o->nb;
        if (o->plane) { bs_plane_interleave(j, o, l.tmp, g, l.ilv + g * o->ilv_bytes, b0, b1, q0, q1); return; }
        bs_interleave(o, l.tmp + g * kpad * o->npad * o->esize, l.ilv + g * o->ilv_bytes, b0, b1, q0, q1);
        return;
    }
    /* stage 2: GEMM of one group, a chunk of task_pairs pairs of pixel blocks, a range of task_cbs channel blocks (the
     * epilogue of each channel set up once per task) */
    const bs_packed *h = (const bs_packed *)j->packed;
    const int32_t *wsum = (const int32_t *)((const unsigned char *)h + 64);
    const unsigned char *wp = (const unsigned char *)h + 64 + BS_A64((size_t)h->groups * h->mg4 * 4);
    size_t ncb = (size_t)o->mg4 / 4, cbt = bs_cdiv(ncb, o->task_cbs), pairs = bs_cdiv(o->nb, 2);
    size_t chunks = bs_cdiv(pairs, o->task_pairs);
    size_t g = (size_t)task / (chunks * cbt), rest = (size_t)task % (chunks * cbt), ch = rest / cbt, ct = rest % cbt;
    size_t pr0 = ch * o->task_pairs, pr1 = pr0 + o->task_pairs;
    if (pr1 > pairs) pr1 = pairs;
    const unsigned char *ilv = l.ilv + g * o->ilv_bytes;
    size_t cb0 = ct * o->task_cbs, cb1 = cb0 + o->task_cbs;
    if (cb1 > ncb) cb1 = ncb;
    /* output: conv y [M, N] (channel stride N, pixel stride 1); gemm y [rows, M] (channel stride 1, row stride M) */
    size_t m_total = (size_t)o->groups * o->mg;
    size_t cstride = j->conv ? o->n : 1, pstride = j->conv ? 1 : m_total;
    bs_epi ep[BS_CB_PER_TASK * 4];
    int32_t corr[BS_CB_PER_TASK * 4];
    int res = j->res_p && j->conv;   /* the residual QAdd in the epilogue (conv outputs: pixel stride 1) */
    bs_qadd_c rq;
    memset(&rq, 0, sizeof rq);
    if (res) bs_qadd_setup(j->res_p, j->res_swap ? j->res_t : j->yt, j->res_swap ? j->yt : j->res_t, j->res_yt, &rq);
    for (size_t c = cb0 * 4; c < cb1 * 4 && c < (size_t)o->mg; c++) {
        bs_epi_setup(j, g * o->mg + c, &ep[c - cb0 * 4]);
        corr[c - cb0 * 4] = o->mode == BS_PACK_S8C4 ? (int32_t)((uint32_t)o->uz * (uint32_t)wsum[g * o->mg4 + c]) : 0;
    }
    for (size_t pr = pr0; pr < pr1; pr++) {
        size_t b0 = pr * 2, b1 = b0 + 1 < o->nb ? b0 + 1 : b0;
        const unsigned char *a0 = ilv + b0 * (size_t)o->kg * 32, *a1 = ilv + b1 * (size_t)o->kg * 32;
        /* int16 accumulation when the pair's activations and the weights are small enough for >= 2 k-groups */
        int32_t flush = 0;
        if (o->mode == BS_PACK_S8C4) {
            int64_t per = 2 * (int64_t)bs_umax_pair(a0, a1, o->kg) << (h->bits - 1);
            flush = per == 0 ? o->kg : (int32_t)(32767 / per);
            if (flush > o->kg) flush = o->kg;
        }
        for (size_t cb = cb0; cb < cb1; cb++) {
            __m256i acc[8];
            const unsigned char *w = wp + (g * ncb + cb) * (size_t)o->kg * 16;
            if (flush > 1) bs_qu8s8_gemm_acc16_rq64_16x4c4__avx2(a0, a1, w, o->kg, flush, acc);
            else if (o->mode == BS_PACK_S8C4) bs_qu8s8_gemm_rq64_16x4c4__avx2(a0, a1, w, o->kg, acc);
            else bs_qs16s16_gemm_rq64_16x4c2__avx2(a0, a1, w, o->kg, acc);
            for (int32_t c4 = 0; c4 < 4; c4++) {
                size_t c = cb * 4 + (size_t)c4;
                if (c >= (size_t)o->mg) break;
                size_t oc = g * o->mg + c;
                /* the pair's two blocks (b1 == b0: one block) */
                size_t p0 = b0 * 8, count0 = o->n - p0 < 8 ? o->n - p0 : 8;
                size_t count1 = b1 == b0 ? 0 : (o->n - p0 - 8 < 8 ? o->n - p0 - 8 : 8);
                if (res) bs_epi_res2(j, &ep[c - cb0 * 4], &rq, acc[c4], acc[4 + c4], corr[c - cb0 * 4], oc, oc * cstride + p0, count0, count1);
                else bs_epi_apply2(j, &ep[c - cb0 * 4], acc[c4], acc[4 + c4], corr[c - cb0 * 4], oc, oc * cstride + p0 * pstride,
                                   pstride, count0, count1);
            }
        }
    }
}

BS_STAGED_ENTRY_POINTS(avx2, bs_avx2)

#else
typedef int bs_kernels_avx2_not_built; /* without AVX2 this file is empty (ISO C wants one declaration) */
#endif
