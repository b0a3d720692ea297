/* BitSwitch AVX-512 VNNI integer kernels. See bs_kernels_avx512vnni.h and docs/c-backend.md ("Kernels"). */
#include "bs_kernels_avx512vnni.h"

#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512F__) && defined(__AVX2__)
#include <immintrin.h>
#include <limits.h>
#include <string.h>

/* The packed weights: the AVX2 kernels' header (64 bytes) with mode S8C4 (1), then int32 wsum[groups*mg4], then per
 * group and per block of 4 output channels kg = ceil(k/4) groups of [4 channels][4 k] signed bytes (S8C4) or, with
 * c16 set, per group and block of 16 output channels kg groups of [16 channels][4 k] (C16: the same bytes, reordered). */
typedef struct bs_vpacked {
    int32_t mode, groups, mg, k, kg, mg4, bits, shift;
    int32_t taps;   /* > 0: k in tap-major order (the stored weights' own: Plan.tapMajor, bs_qs8_tap_major__avx512vnni) */
    int32_t bsr_T, bsr_nch;   /* bsr_nch > 0: the bit planes of the bit-serial kernels follow (bs_vbsr_pack) */
    int32_t c16;   /* 1: the data in the C16 layout (bs_vpack_c16) instead of S8C4 */
} bs_vpacked;

#define BS_VA64(x) (((size_t)(x) + 63) & ~(size_t)63)
/* k-groups (of 4 rows) per gather + interleave task (16: its rows are reused 16 times, in cache), channel blocks (of 4) per GEMM task, pixel blocks per GEMM
 * tile (MR = 16 * BS_VTILE). */
#define BS_VKG_PER_TASK 16
#define BS_VFILL_BYTES 8192
#define BS_VCB_PER_TASK 16
#define BS_VTILE 4
/* Output pixels per task of the channels-in-lanes GEMM (its accumulators are kept per task: 64 channels x this many
 * pixels of int32 on the stack). */
#define BS_VC16_TPX 128
/* The bit-serial w2a2 path (bs_vbsr_*): AND + VPOPCNTQ on bit planes of 64 input channels, for convs of at least
 * BS_VBSR_MINC input channels (one group) whose weights have 1 or 2 bits and whose activations span at most 4 values. */
#if defined(__AVX512VPOPCNTDQ__) && defined(__AVX512VBMI__)
#define BS_VBSR 1
#else
#define BS_VBSR 0
#endif
#define BS_VBSR_MINC 48
/* ... and at least this many k-words (64 channels x taps): ResNet-18's 1 x 1 convs of 64 input channels (1 k-word) ran
 * 0.9x the int8 kernels (the tile's set-up and epilogue per k-word), of 256 channels 1.1x, its 3 x 3 convs 1.13-1.3x. */
#define BS_VBSR_MINQ 4


size_t bs_qs8_packed_weights_size__avx512vnni(int32_t groups, int32_t mg, int32_t k) {
    size_t mg4 = ((size_t)mg + 3) / 4 * 4, kg4 = ((size_t)k + 3) / 4;
    return 64 + BS_VA64((size_t)groups * mg4 * 4) + BS_VA64((size_t)groups * mg4 * kg4 * 4);
}

size_t bs_qs8_packed_bsr_size__avx512vnni(int32_t groups, int32_t mg, int32_t k, int32_t taps) {
    int32_t T = taps > 1 ? taps : 1;
    if (groups != 1 || k % T != 0 || k / T < BS_VBSR_MINC || (k / T) % 4 != 0) return 0;
    size_t mg4 = ((size_t)mg + 3) / 4 * 4, nch = ((size_t)(k / T) + 63) / 64;
    if (nch * (size_t)T < BS_VBSR_MINQ) return 0;
    return BS_VA64(mg4 * (size_t)T * nch * 16);
}

#if BS_VBSR
/* A 16 x 16 transpose of nibbles: 16 masks m[i] of 16 nibbles (activations: pixel p's 4 channels of quad i; weights: 4
 * taps x 4 channels of quad i) into 16 words, nibble i of word p = nibble p of m[i]. bs_vnibble_index: the vpermt2b
 * indices that take the masks (A = m[0..7], B = m[8..15]) to bytes 16 b + i = byte b of m[i] (nibbles 2 b and 2 b + 1),
 * pc for b = 0..3, pd for b = 4..7; bs_vnibbles: such bytes into words 0..7 (from pc) or 8..15 (from pd). */
static inline void bs_vnibble_index(__m512i *pc, __m512i *pd) {
    unsigned char ic[64], id[64];
    for (int b = 0; b < 4; b++)
        for (int i = 0; i < 16; i++) { ic[16 * b + i] = (unsigned char)(8 * i + b); id[16 * b + i] = (unsigned char)(8 * i + b + 4); }
    *pc = _mm512_loadu_si512((const void *)ic); *pd = _mm512_loadu_si512((const void *)id);
}

static inline __m512i bs_vnibbles(__m512i x) {
    /* each byte pair's low nibbles (lo) and high nibbles (hi) into one byte by vpmaddubsw with [1, 16], then the
     * bytes of qword p = 2 b + h (its byte j: word 8 b + j of lo or hi) by one vpermt2b */
    static const unsigned char ix[64] = {0, 2, 4, 6, 8, 10, 12, 14, 64, 66, 68, 70, 72, 74, 76, 78,
                                         16, 18, 20, 22, 24, 26, 28, 30, 80, 82, 84, 86, 88, 90, 92, 94,
                                         32, 34, 36, 38, 40, 42, 44, 46, 96, 98, 100, 102, 104, 106, 108, 110,
                                         48, 50, 52, 54, 56, 58, 60, 62, 112, 114, 116, 118, 120, 122, 124, 126};
    const __m512i m4 = _mm512_set1_epi8(0x0F), mul = _mm512_set1_epi16(0x1001);
    __m512i lo = _mm512_maddubs_epi16(_mm512_and_si512(x, m4), mul);
    __m512i hi = _mm512_maddubs_epi16(_mm512_and_si512(_mm512_srli_epi16(x, 4), m4), mul);
    return _mm512_permutex2var_epi8(lo, _mm512_loadu_si512((const void *)ix), hi);
}

/* The bit-0 and bit-1 masks of 16 vectors of 64 bytes z[0..15] (only bits 0 and 1 of each byte matter), as vectors:
 * A[b] holds the masks of z[0..7] (qword i = bit b of z[i]'s bytes), B[b] those of z[8..15]. With GFNI, in registers:
 * gf2p8affineqb with z as the matrix is an 8 x 8 bit transpose per qword (byte b of the result's qword q = bit b of
 * z's bytes 8q .. 8q + 7, byte 8q + j in bit 7 - j); the bytes 0 and 1 of every qword gathered by vpermt2b (two z a
 * step) and vpermt2q, then each byte's bits reversed (gf2p8affineqb with 0x8040201008040201). Without GFNI, test
 * masks stored and reloaded (the reload waits for the 16 scalar stores: store forwarding cannot join them). */
static inline void bs_vmasks16(const __m512i z[16], __m512i A[2], __m512i B[2]) {
#if defined(__GFNI__)
    /* pair step: bytes [0, 8) = plane 0 of the first z, [8, 16) of the second, [16, 24) and [24, 32) plane 1 */
    static const unsigned char pair[64] = {0, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120,
                                           1, 9, 17, 25, 33, 41, 49, 57, 65, 73, 81, 89, 97, 105, 113, 121};
    const __m512i P = _mm512_loadu_si512((const void *)pair), X = _mm512_set1_epi64(0x0201);   /* bits 0, 1 */
    const __m512i rev = _mm512_set1_epi64((long long)0x8040201008040201ULL);
    const __m512i q4 = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);   /* two pairs: [plane 0 of 4 z | plane 1 of 4 z] */
    const __m512i lo = _mm512_setr_epi64(0, 1, 2, 3, 8, 9, 10, 11), hi = _mm512_setr_epi64(4, 5, 6, 7, 12, 13, 14, 15);
    __m512i p[8], f[4];
    for (int i = 0; i < 8; i++)
        p[i] = _mm512_permutex2var_epi8(_mm512_gf2p8affine_epi64_epi8(X, z[2 * i], 0), P, _mm512_gf2p8affine_epi64_epi8(X, z[2 * i + 1], 0));
    for (int i = 0; i < 4; i++) f[i] = _mm512_permutex2var_epi64(p[2 * i], q4, p[2 * i + 1]);
    A[0] = _mm512_gf2p8affine_epi64_epi8(_mm512_permutex2var_epi64(f[0], lo, f[1]), rev, 0);
    A[1] = _mm512_gf2p8affine_epi64_epi8(_mm512_permutex2var_epi64(f[0], hi, f[1]), rev, 0);
    B[0] = _mm512_gf2p8affine_epi64_epi8(_mm512_permutex2var_epi64(f[2], lo, f[3]), rev, 0);
    B[1] = _mm512_gf2p8affine_epi64_epi8(_mm512_permutex2var_epi64(f[2], hi, f[3]), rev, 0);
#else
    _Alignas(64) uint64_t m[2][16];
    const __m512i one = _mm512_set1_epi8(1), two = _mm512_set1_epi8(2);
    for (int i = 0; i < 16; i++) {
        m[0][i] = (uint64_t)_mm512_test_epi8_mask(z[i], one);
        m[1][i] = (uint64_t)_mm512_test_epi8_mask(z[i], two);
    }
    for (int b = 0; b < 2; b++) {
        A[b] = _mm512_load_si512((const void *)m[b]);
        B[b] = _mm512_load_si512((const void *)(m[b] + 8));
    }
#endif
}
#endif

void bs_qs8_pack_weights_rows__avx512vnni(const int8_t *q8, void *packed, int32_t groups, int32_t mg, int32_t k,
                                          int32_t kmajor, int32_t shift, int32_t bits, size_t rows) {
    size_t limit = (size_t)groups * (((size_t)mg + 3) / 4 * 4) * (((size_t)k + 3) / 4) * 4;
    if (!bs_qs8_pack_gemv_within__avx2(q8, packed, groups, mg, k, kmajor, shift, bits, rows, limit))
        bs_qs8_pack_weights__avx512vnni(q8, packed, groups, mg, k, kmajor, shift, bits, 0, 0);
}

/* A gemm whose weights have the AVX2 batch-1 layout (header modes 3..5): the AVX2 family runs it. */
static int bs_vgemv(const bs_avx2_job *j) { return !j->conv && ((const int32_t *)j->packed)[0] >= 3; }

/* w_b = clamp(rshr(q, shift), lo, hi) on 64 signed bytes, its constants made once per pack (bs_vshifter_make).
 * rshr(q, s) = (q >> s) + bit s - 1 of q, exactly (no overflow: |q >> s| < 128). With GFNI both terms are one
 * gf2p8affineqb each (an arithmetic shift of a byte, like any map of bits to bits, is a bit matrix); without it,
 * bs_shift_clamp32 of the AVX2 kernels (which says why it is exact), 64 bytes at a time. */
typedef struct { __m512i lo, hi, sra, rnd; int32_t shift, bits, mode; } bs_vshifter;

/* mode: 0 no shift (a clamp), 1 the GFNI shift where rshr(-128, s) = -2^(7 - s) >= lo (a min is the clamp), 2 any
 * other; the pack loops are instantiated per mode (a constant in each), with no branch per vector. */
static inline bs_vshifter bs_vshifter_make(int32_t shift, int32_t bits) {
    bs_vshifter v;
    v.lo = _mm512_set1_epi8((char)-(1 << (bits - 1))); v.hi = _mm512_set1_epi8((char)((1 << (bits - 1)) - 1));
    v.shift = shift; v.bits = bits;
    uint64_t sra = 0, rnd = 0;
    if (shift > 0 && shift < 8) {
        /* gf2p8affineqb: result bit i = parity(matrix byte 7 - i AND x) */
        for (int i = 0; i < 8; i++) sra |= (uint64_t)(1u << (i + shift < 7 ? i + shift : 7)) << (8 * (7 - i));
        rnd = (uint64_t)(1u << (shift - 1)) << 56;
    }
    v.sra = _mm512_set1_epi64((long long)sra); v.rnd = _mm512_set1_epi64((long long)rnd);
#if defined(__GFNI__)
    v.mode = shift == 0 ? 0 : (shift < 8 && bits >= 8 - shift ? 1 : 2);
#else
    v.mode = shift == 0 ? 0 : 2;
#endif
    return v;
}

static inline __attribute__((always_inline)) __m512i bs_vshift_clamp64(__m512i x, const bs_vshifter *v, int mode) {
    if (mode == 0) return _mm512_min_epi8(_mm512_max_epi8(x, v->lo), v->hi);
#if defined(__GFNI__)
    if (mode == 1) return _mm512_min_epi8(_mm512_add_epi8(_mm512_gf2p8affine_epi64_epi8(x, v->sra, 0), _mm512_gf2p8affine_epi64_epi8(x, v->rnd, 0)), v->hi);
#endif
    int32_t shift = v->shift;
    if (shift >= 8) return _mm512_setzero_si512();
    if (shift > 0) {
        const __m512i m = _mm512_set1_epi8((char)(0x80 >> shift));
        __m512i t = _mm512_adds_epi8(x, _mm512_set1_epi8((char)(1 << (shift - 1))));
        t = _mm512_and_si512(_mm512_srl_epi16(t, _mm_cvtsi32_si128(shift)), _mm512_set1_epi8((char)(0xFF >> shift)));
        t = _mm512_sub_epi8(_mm512_xor_si512(t, m), m);
        if (v->bits > 8 - shift)
            t = _mm512_mask_add_epi8(t, _mm512_cmpgt_epi8_mask(x, _mm512_set1_epi8((char)(127 - (1 << (shift - 1))))), t, _mm512_set1_epi8(1));
        x = t;
    }
    return _mm512_min_epi8(_mm512_max_epi8(x, v->lo), v->hi);
}

/* Calls F(..., mode) with the shifter's mode as a constant. */
#define BS_VSHIFT_DISPATCH(mode, call) do { switch (mode) { case 0: call(0); break; case 1: call(1); break; default: call(2); } } while (0)

/* A 4 x 4 transpose of 128-bit lanes: out[L], lane i = lane L of a[i]. */
static inline void bs_vlanes4x4(__m512i a0, __m512i a1, __m512i a2, __m512i a3, __m512i out[4]) {
    __m512i t0 = _mm512_shuffle_i64x2(a0, a1, 0x44), t1 = _mm512_shuffle_i64x2(a2, a3, 0x44);
    __m512i t2 = _mm512_shuffle_i64x2(a0, a1, 0xEE), t3 = _mm512_shuffle_i64x2(a2, a3, 0xEE);
    out[0] = _mm512_shuffle_i64x2(t0, t1, 0x88); out[1] = _mm512_shuffle_i64x2(t0, t1, 0xDD);
    out[2] = _mm512_shuffle_i64x2(t2, t3, 0x88); out[3] = _mm512_shuffle_i64x2(t2, t3, 0xDD);
}

/* 16 bytes at off of each of 4 rows, row i in 128-bit lane i: 4 broadcast loads merged by masks (load-port work, no
 * shuffle). bs_vrows16: rows may be NULL (zeros) and bytes past k are 0. */
static inline __attribute__((always_inline)) __m512i bs_vrows16_full(const int8_t *const row[4], int32_t off) {
    __m512i v = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(const void *)(row[0] + off)));
    v = _mm512_mask_broadcast_i32x4(v, 0x00F0, _mm_loadu_si128((const __m128i *)(const void *)(row[1] + off)));
    v = _mm512_mask_broadcast_i32x4(v, 0x0F00, _mm_loadu_si128((const __m128i *)(const void *)(row[2] + off)));
    return _mm512_mask_broadcast_i32x4(v, 0xF000, _mm_loadu_si128((const __m128i *)(const void *)(row[3] + off)));
}

static inline __attribute__((always_inline)) __m512i bs_vrows16(const int8_t *const row[4], int32_t off, int32_t k) {
    if (off + 16 <= k && row[3]) return bs_vrows16_full(row, off);   /* rows are NULL only at the end of a block */
    __m512i v = _mm512_setzero_si512();
    __mmask16 ld = off >= k ? 0 : (off + 16 <= k ? 0xFFFF : (__mmask16)((1u << (k - off)) - 1));
    for (int i = 0; i < 4; i++)
        if (row[i]) v = _mm512_mask_broadcast_i32x4(v, (__mmask16)(0xFu << (4 * i)), _mm_maskz_loadu_epi8(ld, (const void *)(row[i] + (off < k ? off : 0))));
    return v;
}

/* 64 k from kc on of 4 weight rows (NULL: a row past mg, zeros), shifted and clamped, as 16 k-groups of [4 channels]
 * [4 k]: out[i] holds k-groups 4 i .. 4 i + 3, one per 128-bit lane; lanes past k are 0. out[i] is the 16 bytes at
 * kc + 16 i of the 4 rows (bs_vrows16: row c in lane c, its k-group q in dword q), a 4 x 4 dword transpose by one
 * vpermd: dword 4 q + c = dword 4 c + q. */
static inline __attribute__((always_inline)) void bs_vpack_kchunk(const int8_t *const row[4], int32_t kc, int32_t k,
                                                                  const bs_vshifter *sh, int mode, int full, __m512i out[4]) {
    const __m512i tr = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    for (int i = 0; i < 4; i++)   /* shifted zeros, clamped: 0 */
        out[i] = _mm512_permutexvar_epi32(tr, bs_vshift_clamp64(full ? bs_vrows16_full(row, kc + 16 * i) : bs_vrows16(row, kc + 16 * i, k), sh, mode));
}

/* The 4 rows of channel block cb of group g (NULL past mg). */
static inline void bs_vpack_rows(const int8_t *q8, const bs_vpacked *h, int32_t g, int32_t cb, const int8_t *row[4]) {
    for (int32_t c4 = 0; c4 < 4; c4++)
        row[c4] = cb * 4 + c4 < h->mg ? q8 + ((size_t)g * h->mg + (size_t)cb * 4 + c4) * (size_t)h->k : NULL;
}

/* wsum of channel block cb of group g from the vpdpbusd sums with ones (dword lane j: channel j % 4). */
static inline void bs_vpack_sums(bs_vpacked *h, int32_t g, int32_t cb, __m512i sums) {
    int32_t *wsum = (int32_t *)(void *)((unsigned char *)h + 64);
    __m256i s8 = _mm256_add_epi32(_mm512_castsi512_si256(sums), _mm512_extracti64x4_epi64(sums, 1));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s8), _mm256_extracti128_si256(s8, 1));
    _mm_storeu_si128((__m128i *)(void *)(wsum + (size_t)g * h->mg4 + (size_t)cb * 4), s4);
}

static inline void bs_vstore64(unsigned char *d, __m512i v, int stream) {
    if (stream) _mm512_stream_si512((void *)d, v);
    else _mm512_storeu_si512((void *)d, v);
}

/* The S8C4 data and sums of channel blocks [cb0, cb1) of group g of row-major q8 [groups*mg, k] (the header set):
 * 64 k of the block's 4 rows at a time (bs_vpack_kchunk), the sums by vpdpbusd with ones. The data go to their place
 * in h by non-temporal stores (the caller fences), or, when `to` is not NULL, to `to` (block cb0 first) through the
 * caches, for a caller that reads them back, and then also to their place by non-temporal stores when `also` is set
 * (64-byte aligned, 64 | the block's bytes). Whole 64-k chunks of whole blocks take a loop with no test per vector. */
static inline __attribute__((always_inline)) void bs_vpack_blocks_m(const int8_t *q8, bs_vpacked *h, int32_t g, int32_t cb0,
                                                                    int32_t cb1, unsigned char *to, int also,
                                                                    const bs_vshifter *sh, int mode) {
    int32_t k = h->k, kg = h->kg, ncb = h->mg4 / 4;
    unsigned char *wp = (unsigned char *)h + 64 + BS_VA64((size_t)h->groups * h->mg4 * 4);
    const __m512i ones = _mm512_set1_epi8(1);
    size_t bb = (size_t)kg * 16;
    for (int32_t cb = cb0; cb < cb1; cb++) {
        unsigned char *place = wp + ((size_t)g * ncb + cb) * bb, *base = to ? to + (size_t)(cb - cb0) * bb : place;
        int stream = !to && ((uintptr_t)base & 63) == 0 && (bb & 63) == 0;
        const int8_t *row[4];
        bs_vpack_rows(q8, h, g, cb, row);
        __m512i sums = _mm512_setzero_si512();
        int32_t kc = 0;
        if (row[3]) {
            for (; kc + 64 <= k; kc += 64) {
                __m512i out[4];
                bs_vpack_kchunk(row, kc, k, sh, mode, 1, out);
                for (int i = 0; i < 4; i++) sums = _mm512_dpbusd_epi32(sums, ones, out[i]);
                if (stream) for (int i = 0; i < 4; i++) _mm512_stream_si512((void *)(base + (size_t)kc * 4 + 64 * i), out[i]);
                else for (int i = 0; i < 4; i++) _mm512_storeu_si512((void *)(base + (size_t)kc * 4 + 64 * i), out[i]);
                if (also) for (int i = 0; i < 4; i++) _mm512_stream_si512((void *)(place + (size_t)kc * 4 + 64 * i), out[i]);
            }
        }
        for (; kc < k; kc += 64) {
            __m512i out[4];
            bs_vpack_kchunk(row, kc, k, sh, mode, 0, out);
            int32_t q0 = kc / 4, left = kg - q0;   /* k-groups of this step still in the block */
            for (int i = 0; i < 4; i++) {
                sums = _mm512_dpbusd_epi32(sums, ones, out[i]);
                unsigned char *d = base + (size_t)(q0 + 4 * i) * 16;
                if (left >= 4 * i + 4) bs_vstore64(d, out[i], stream);
                else if (left > 4 * i) _mm512_mask_storeu_epi8((void *)d, ((__mmask64)1 << (16 * (left - 4 * i))) - 1, out[i]);
                /* also: 64 | bb, so kg is a multiple of 4 and no vector is partly in the block */
                if (also && left >= 4 * i + 4) _mm512_stream_si512((void *)(place + (size_t)(q0 + 4 * i) * 16), out[i]);
            }
        }
        bs_vpack_sums(h, g, cb, sums);
    }
}

static void bs_vpack_blocks(const int8_t *q8, bs_vpacked *h, int32_t g, int32_t cb0, int32_t cb1, unsigned char *to, int also) {
    const bs_vshifter sh = bs_vshifter_make(h->shift, h->bits);
#define BS_VPB(m) bs_vpack_blocks_m(q8, h, g, cb0, cb1, to, also, &sh, m)
    BS_VSHIFT_DISPATCH(sh.mode, BS_VPB);
#undef BS_VPB
}

/* The C16 layout (h->c16; 16 | mg): per group and block of 16 output channels, kg groups of [16 channels][4 k], so
 * that the channels-in-lanes kernel loads a k-group's 16 channels as one vector. 16 k at a time: w[j] holds the 16
 * bytes of channel 4 L + j in lane L (bs_vrows16), and a 4 x 4 dword transpose in each lane (unpacks) makes the 4
 * k-groups' vectors, dword 4 L + j = channel 4 L + j; their sums by vpdpbusd with ones, already in channel order.
 * Non-temporal stores (the caller fences). */
static inline __attribute__((always_inline)) void bs_vpack_c16_m(const int8_t *q8, bs_vpacked *h, int32_t g, const bs_vshifter *sh, int mode) {
    int32_t k = h->k, kg = h->kg, n16 = h->mg / 16;
    unsigned char *wp = (unsigned char *)h + 64 + BS_VA64((size_t)h->groups * h->mg4 * 4);
    int32_t *wsum = (int32_t *)(void *)((unsigned char *)h + 64);
    const __m512i ones = _mm512_set1_epi8(1);
    size_t bb = (size_t)kg * 64;
    for (int32_t cv = 0; cv < n16; cv++) {
        unsigned char *base = wp + ((size_t)g * n16 + cv) * bb;
        int stream = ((uintptr_t)base & 63) == 0;
        const int8_t *row[4][4];   /* row[j][L]: channel 4 L + j */
        for (int32_t c = 0; c < 16; c++) row[c % 4][c / 4] = q8 + ((size_t)g * h->mg + (size_t)cv * 16 + c) * (size_t)k;
        __m512i sums = _mm512_setzero_si512();
        for (int32_t kc = 0; kc < k; kc += 16) {
            __m512i w[4];
            if (kc + 16 <= k) for (int j = 0; j < 4; j++) w[j] = bs_vshift_clamp64(bs_vrows16_full(row[j], kc), sh, mode);
            else for (int j = 0; j < 4; j++) w[j] = bs_vshift_clamp64(bs_vrows16(row[j], kc, k), sh, mode);
            __m512i t0 = _mm512_unpacklo_epi32(w[0], w[1]), t1 = _mm512_unpackhi_epi32(w[0], w[1]);
            __m512i t2 = _mm512_unpacklo_epi32(w[2], w[3]), t3 = _mm512_unpackhi_epi32(w[2], w[3]);
            __m512i d[4] = {_mm512_unpacklo_epi64(t0, t2), _mm512_unpackhi_epi64(t0, t2),
                            _mm512_unpacklo_epi64(t1, t3), _mm512_unpackhi_epi64(t1, t3)};   /* k-groups kc / 4 + l */
            int32_t nq = kg - kc / 4 < 4 ? kg - kc / 4 : 4;
            for (int l = 0; l < nq; l++) {
                sums = _mm512_dpbusd_epi32(sums, ones, d[l]);
                bs_vstore64(base + ((size_t)kc / 4 + (size_t)l) * 64, d[l], stream);
            }
        }
        _mm512_storeu_si512((void *)(wsum + (size_t)g * h->mg4 + (size_t)cv * 16), sums);
    }
}

static void bs_vpack_c16(const int8_t *q8, bs_vpacked *h, int32_t g) {
    const bs_vshifter sh = bs_vshifter_make(h->shift, h->bits);
#define BS_VPC(m) bs_vpack_c16_m(q8, h, g, &sh, m)
    BS_VSHIFT_DISPATCH(sh.mode, BS_VPC);
#undef BS_VPC
}

/* Copies n bytes (a multiple of 16) from the 64-byte aligned src to the 16-byte aligned dst, by non-temporal stores
 * from dst's first 64-byte boundary on; the caller fences. */
static void bs_vstream_copy(unsigned char *dst, const unsigned char *src, size_t n) {
    size_t i = 0;
    for (; i < n && ((uintptr_t)(dst + i) & 63); i += 16) _mm_storeu_si128((__m128i *)(dst + i), _mm_loadu_si128((const __m128i *)(src + i)));
    for (; i + 64 <= n; i += 64) _mm512_stream_si512((void *)(dst + i), _mm512_loadu_si512((const void *)(src + i)));
    for (; i < n; i += 16) _mm_storeu_si128((__m128i *)(dst + i), _mm_loadu_si128((const __m128i *)(src + i)));
}

#if BS_VBSR
/* 16 quads' 64-byte runs z (4 slots of [4 channels][4 k] each) into the [4 channels][2 planes] words of slots
 * 0 .. ns - 1, streamed to dst[slot]: the masks of bits 0 and 1 (bs_vmasks16), their 16 x 16 nibble transpose. */
static inline void bs_vbsr_words(const __m512i z[16], __m512i pc, __m512i pd, uint64_t *const dst[4], int32_t ns) {
    const __m512i il0 = _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11), il1 = _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15);
    __m512i A[2], B[2], w[2][2];   /* w: [plane][slots 0, 1 | 2, 3], word 4 slot + channel */
    bs_vmasks16(z, A, B);
    for (int b = 0; b < 2; b++) {
        w[b][0] = bs_vnibbles(_mm512_permutex2var_epi8(A[b], pc, B[b]));
        w[b][1] = bs_vnibbles(_mm512_permutex2var_epi8(A[b], pd, B[b]));
    }
    for (int32_t sl = 0; sl < ns; sl++)
        _mm512_stream_si512((void *)dst[sl], _mm512_permutex2var_epi64(w[0][sl / 2], sl % 2 ? il1 : il0, w[1][sl / 2]));
}
#endif

/* The bit planes of w_b (bits <= 2) for the bit-serial kernels, after the S8C4 data (read back from it): per block of
 * 4 output channels, per k-word q = chunk * T + tap (chunk: 64 input channels), [4 channels][2 planes] uint64 words,
 * bit i of a word = input channel 64 chunk + i (0 past the last), plane 0 / 1 = bit 0 / 1 of w_b's two's complement:
 * w_b = b0 - 2 b1. */
static void bs_vbsr_pack(bs_vpacked *h, int32_t T, int32_t cb0, int32_t cb1, const unsigned char *src) {
#if BS_VBSR
    int32_t cg = h->k / T, cqn = cg / 4, nch = (cg + 63) / 64;
    const unsigned char *wp = (const unsigned char *)h + 64 + BS_VA64((size_t)h->groups * h->mg4 * 4);
    uint64_t *bw = (uint64_t *)(void *)(wp + BS_VA64((size_t)h->groups * h->mg4 * h->kg * 4));
    /* A quad's k-groups at 4 consecutive taps are 64 contiguous bytes [tap][channel][k]; tested for bits 0 and 1,
     * each is a mask of 16 nibbles (slot, channel), and the 16 quads' masks of a chunk transposed (bs_vnibbles) are
     * the words of 4 slots x 4 channels. A slot is a tap (the last group of taps may be partial: 3 x 3 kernels);
     * kernels of fewer than 4 taps (1 x 1) fill the 4 slots with 4 chunks at one tap instead (1 x 1 convs: 4 times
     * fewer transposes; a 3 x 3 kernel's last tap so had been slower, its 4 x 16-byte loads and inserts costing more
     * than the transpose they saved). */
    __m512i pc, pd;
    bs_vnibble_index(&pc, &pd);
    for (int32_t cb = cb0; cb < cb1; cb++) {
        const unsigned char *blk = src + (size_t)(cb - cb0) * h->kg * 16;
        uint64_t *bcb = bw + (size_t)cb * nch * T * 8, *dst[4];
        __m512i z[16];
        if (T >= 4) {   /* slots: the taps t0 .. t0 + 3 of chunk ch */
            for (int32_t ch = 0; ch < nch; ch++)
                for (int32_t t0 = 0; t0 < T; t0 += 4) {
                    int32_t ns = T - t0 < 4 ? T - t0 : 4;
                    __mmask64 ld = ns == 4 ? ~(__mmask64)0 : (((__mmask64)1 << (16 * ns)) - 1);
                    for (int32_t i = 0; i < 16; i++) {
                        int32_t cq = ch * 16 + i;
                        z[i] = cq < cqn ? _mm512_maskz_loadu_epi8(ld, (const void *)(blk + ((size_t)cq * T + (size_t)t0) * 16)) : _mm512_setzero_si512();
                    }
                    for (int32_t sl = 0; sl < ns; sl++) dst[sl] = bcb + ((size_t)ch * T + (size_t)(t0 + sl)) * 8;
                    bs_vbsr_words(z, pc, pd, dst, ns);
                }
        } else {   /* slots: the chunks ch .. ch + 3 at tap t */
            for (int32_t t = 0; t < T; t++)
                for (int32_t ch = 0; ch < nch; ch += 4) {
                    int32_t ns = nch - ch < 4 ? nch - ch : 4;
                    for (int32_t i = 0; i < 16; i++) {
                        __m128i u[4];
                        for (int32_t sl = 0; sl < 4; sl++) {
                            int32_t cq = (ch + sl) * 16 + i;
                            u[sl] = sl < ns && cq < cqn ? _mm_loadu_si128((const __m128i *)(blk + ((size_t)cq * T + (size_t)t) * 16)) : _mm_setzero_si128();
                        }
                        z[i] = _mm512_inserti32x4(_mm512_inserti32x4(_mm512_inserti32x4(_mm512_castsi128_si512(u[0]), u[1], 1), u[2], 2), u[3], 3);
                    }
                    for (int32_t sl = 0; sl < ns; sl++) dst[sl] = bcb + ((size_t)(ch + sl) * T + (size_t)t) * 8;
                    bs_vbsr_words(z, pc, pd, dst, ns);
                }
        }
    }
    h->bsr_T = T; h->bsr_nch = nch;
#else
    (void)h; (void)T; (void)cb0; (void)cb1; (void)src;
#endif
}

void bs_qs8_pack_weights__avx512vnni(const int8_t *q8, void *packed, int32_t groups, int32_t mg, int32_t k,
                                     int32_t kmajor, int32_t shift, int32_t bits, int32_t taps, int32_t flags) {
    /* vpdpbusd multiplies u8 by s8 without saturating: the S8C4 layout holds every bit-width, 8 included. The k
     * order is the stored weights' own: the header records a tap-major one (4 input channels of one tap per 32-bit
     * lane: the direct path). */
    bs_vpacked *h = (bs_vpacked *)packed;
    int32_t tm = !kmajor && taps > 1 && k % (4 * taps) == 0;
    if (BS_VBSR && (flags & BS_VPACK_BSR_ROOM) && bits <= 2 && !kmajor && (taps <= 1 || tm) && bs_qs8_packed_bsr_size__avx512vnni(groups, mg, k, taps)) {
        /* the bit planes up to 4 channel blocks at a time, from their S8C4 bytes just made in a buffer (in L1 / L2), which
         * then streams to its place; blocks too long for it are made in place through the caches */
        _Alignas(64) unsigned char buf[32768];
        bs_qs8_pack_header__avx2(packed, groups, mg, k, shift, bits, 1);
        h->taps = tm ? taps : 0;
        size_t bb = (size_t)h->kg * 16;
        int32_t step = bb * 4 <= sizeof buf ? 4 : 1;
        unsigned char *wp = (unsigned char *)packed + 64 + BS_VA64((size_t)groups * h->mg4 * 4);
        for (int32_t cb = 0, ncb = h->mg4 / 4; cb < ncb; cb += step) {
            int32_t cb1 = cb + step < ncb ? cb + step : ncb;
            unsigned char *dst = wp + (size_t)cb * bb, *to = bb <= sizeof buf ? buf : dst;
            int also = to == buf && ((uintptr_t)dst & 63) == 0 && (bb & 63) == 0;   /* streamed to dst as made */
            bs_vpack_blocks(q8, h, 0, cb, cb1, to, also);
            bs_vbsr_pack(h, taps > 1 ? taps : 1, cb, cb1, to);
            if (to == buf && !also) bs_vstream_copy(dst, buf, (size_t)(cb1 - cb) * bb);
        }
        h->c16 = 0;
        _mm_sfence();   /* the streamed data and planes are visible before the pool's completion count says so */
        return;
    }
    if (kmajor) bs_qs8_pack_weights_layout__avx2(q8, packed, groups, mg, k, kmajor, shift, bits, 1);
    else {
        bs_qs8_pack_header__avx2(packed, groups, mg, k, shift, bits, 1);
        h->c16 = (flags & BS_VPACK_C16) && mg % 16 == 0;
        for (int32_t g = 0; g < groups; g++) {
            if (h->c16) bs_vpack_c16(q8, h, g);
            else bs_vpack_blocks(q8, h, g, 0, h->mg4 / 4, NULL, 0);
        }
        _mm_sfence();   /* the streamed data are visible before the pool's completion count says so */
    }
    if (kmajor) h->c16 = 0;
    if (tm) h->taps = taps;
    h->bsr_T = 0; h->bsr_nch = 0;
}

void bs_qs8_tap_major__avx512vnni(const int8_t *q8, int8_t *out, size_t count, int32_t taps) {
    size_t span = 4 * (size_t)taps;
    for (size_t base = 0; base + span <= count; base += span)
        for (size_t ic = 0; ic < 4; ic++)
            for (size_t t = 0; t < (size_t)taps; t++) out[base + t * 4 + ic] = q8[base + ic * (size_t)taps + t];
}

/* The position in the packed k order of reduction index kk (input channel kk / taps, tap kk % taps). */
static inline size_t bs_vpacked_k(const bs_vpacked *h, size_t kk) {
    if (h->taps <= 0) return kk;
    size_t T = (size_t)h->taps, ic = kk / T, tap = kk % T;
    return ((ic / 4) * T + tap) * 4 + ic % 4;
}

/* The byte of channel c (of group g) at packed k position kp, from the data's start. */
static inline size_t bs_vweight_at(const bs_vpacked *h, int32_t g, int32_t c, size_t kp) {
    if (h->c16) return (((size_t)g * (h->mg / 16) + (size_t)c / 16) * h->kg + kp / 4) * 64 + (size_t)(c % 16) * 4 + kp % 4;
    return (((size_t)g * (h->mg4 / 4) + (size_t)c / 4) * h->kg + kp / 4) * 16 + (size_t)(c % 4) * 4 + kp % 4;
}

/* Plain [groups*mg, k] shifted weights from the packed form (the fallback path of unusual zero points). */
static void bs_vunpack_weights(const bs_vpacked *h, int8_t *w) {
    const int8_t *wp = (const int8_t *)h + 64 + BS_VA64((size_t)h->groups * h->mg4 * 4);
    for (int32_t g = 0; g < h->groups; g++)
        for (int32_t c = 0; c < h->mg; c++)
            for (int32_t kk = 0; kk < h->k; kk++)
                w[((size_t)g * h->mg + c) * h->k + kk] = wp[bs_vweight_at(h, g, c, bs_vpacked_k(h, (size_t)kk))];
}

/* ---- geometry of one job ---- */
typedef struct bs_vgeo {
    int32_t groups, mg, mg4, k, kg;   /* k per group, kg = ceil(k/4) */
    size_t n, npad, nb;               /* output pixels (gemm rows), padded to 16, blocks of 16 */
    size_t tmp_bytes, ilv_bytes;      /* gathered rows [groups*kg*4][npad]; interleaved, per group */
    int32_t uz;                       /* the u8 value of x_zero */
    int32_t fallback;
    size_t tpt;                       /* tiles (of BS_VTILE blocks) per GEMM task: several, so that a channel's epilogue
                                       * set-up serves more outputs; 4 from 16 k-groups up (1 before: 4 made ResNet-18
                                       * 5 % and ResNet-20 5 % faster, its stem's GEMM 10 %; the set-up per tile had
                                       * weighed as much as the epilogue) */
    size_t cbpt;                      /* channel blocks (of 4) per GEMM task: BS_VCB_PER_TASK, fewer (and tpt fewer) when
                                       * the job's thread hint asks for more tasks than that gives */
    /* The direct path (bs_vdirect_fits): no gathered rows. Stage 0 writes each group's input, 4 channels per 32-bit
     * word, into zero-point-padded phase planes (phase (fr, fc): padded rows fr, fr + sh, ..., columns fc, fc + sw,
     * ...; only the phases some tap reads); output (oh, ow) is virtual pixel oh * pwq + ow, and k-group (cq, tap) of
     * a block of 16 virtual pixels is 64 contiguous bytes of its phase plane at a per-k-group offset (voff). Virtual
     * pixels with ow >= OW are computed and not stored. */
    int32_t direct, nph, slot[4];     /* phases used; slot[fr * sw + fc]: its index among them */
    size_t pwq, phq, lp, cqn;         /* phase plane columns, rows, words (a multiple of 16, with slack); quads per group */
    size_t qpt;                       /* quads per stage-0 task: about BS_VFILL_BYTES of planes each, so that the small
                                       * planes of late layers are not one atomic hand-off per few hundred bytes */
    size_t gbytes, vbytes;            /* bytes of a group's planes; of the planes of every group (64-aligned) */
    /* The bit-serial path (bs_vbsr_fits; one group): stage 1 turns the quad planes into bit planes of 64 channels,
     * [chunk][phase][bit 0 / 1][lp] uint64, at bat bytes from the planes, followed by the k-word offsets (int32 per
     * q = chunk T + tap) and each quad's min and max u8 value (stage 0 records them); the GEMM stage takes it when the
     * activations span at most 4 values (every task works that out from the same min / max). */
    int32_t bsr;
    size_t nch, bat, bbytes;
    /* The channels-in-lanes GEMM (C16 weights, convs): a stage-1 task computes vpt vectors of 16 channels for tpx
     * output pixels (bs_vlanes_task). */
    int32_t c16;
    int32_t bsrl;   /* the bit-serial path in the same task layout (bs_vlanes_task with the 8-channel popcount kernels) */
    size_t vpt, tpx;
} bs_vgeo;

/* The direct path takes 2-D (or 1-D) convs of stride 1 or 2 whose k-groups are 4 input channels at one tap (4 | cg;
 * tap-major weights, or 1 x 1), when the planes and the offset table fit the scratch the gathered rows would use and
 * at most a third of the virtual pixels are junk columns. Sets the direct fields and nb / npad (virtual pixels). */
static void bs_vdirect_fits(const bs_avx2_job *j, const bs_vpacked *h, bs_vgeo *o) {
    const bs_conv_shape *s = j->conv;
    const bs_window *g = &s->win;
    int32_t cg = s->c / s->group, taps = g->kd * g->kh * g->kw;
    if (g->d != 1 || g->od != 1 || g->kd != 1 || g->sh < 1 || g->sh > 2 || g->sw < 1 || g->sw > 2) return;
    if (cg % 4 != 0 || (taps > 1 && h->taps != taps) || g->oh < 1 || g->ow < 1) return;
    size_t sh = (size_t)g->sh, sw = (size_t)g->sw;
    size_t phn = (size_t)(g->oh - 1) * sh + (size_t)(g->kh - 1) * g->dh + 1, pwn = (size_t)(g->ow - 1) * sw + (size_t)(g->kw - 1) * g->dw + 1;
    size_t phq = (phn + sh - 1) / sh, pwq = (pwn + sw - 1) / sw;
    if (pwq * 2 > (size_t)g->ow * 3) return;
    size_t maxoff = (size_t)(g->kh - 1) * g->dh / sh * pwq + (size_t)(g->kw - 1) * g->dw / sw;
    size_t nb = ((size_t)g->oh * pwq + 15) / 16, lp = phq * pwq + 16;
    if (nb * 16 + maxoff > lp) lp = nb * 16 + maxoff;
    lp = (lp + 15) / 16 * 16;
    int32_t nph = 0, slot[4] = {-1, -1, -1, -1};
    for (int32_t kh = 0; kh < g->kh; kh++)
        for (int32_t kw = 0; kw < g->kw; kw++) {
            int32_t f = (int32_t)(((size_t)kh * g->dh % sh) * sw + (size_t)kw * g->dw % sw);
            if (slot[f] < 0) slot[f] = nph++;
        }
    size_t cqn = (size_t)cg / 4, gbytes = cqn * (size_t)nph * lp * 4, vbytes = BS_VA64((size_t)o->groups * gbytes);
    if (vbytes + BS_VA64((size_t)o->kg * 4) > 2 * o->tmp_bytes || gbytes > (size_t)INT32_MAX) return;
    o->direct = 1; o->nph = nph;
    memcpy(o->slot, slot, sizeof slot);
    o->pwq = pwq; o->phq = phq; o->lp = lp; o->cqn = cqn; o->gbytes = gbytes; o->vbytes = vbytes;
    o->qpt = BS_VFILL_BYTES / ((size_t)nph * lp * 4);
    if (o->qpt < 1) o->qpt = 1;
    if (o->qpt > cqn) o->qpt = cqn;
    o->nb = nb; o->npad = nb * 16;
}

static void bs_vbsr_fits(const bs_avx2_job *j, const bs_vpacked *h, bs_vgeo *o) {
#if BS_VBSR
    int32_t T = j->conv->win.kh * j->conv->win.kw;
    if (!o->direct || h->bsr_nch <= 0 || h->groups != 1 || h->bsr_T != T || (size_t)h->k != o->cqn * 4 * (size_t)T) return;
    size_t nch = (size_t)h->bsr_nch, bat = o->vbytes + BS_VA64((size_t)o->kg * 4), bbytes = BS_VA64(nch * (size_t)o->nph * 2 * o->lp * 8);
    if (nch * (size_t)T < BS_VBSR_MINQ) return;
    if (bat + bbytes + BS_VA64(nch * (size_t)T * 4) + BS_VA64(o->cqn * 2) > 2 * o->tmp_bytes) return;
    o->bsr = 1; o->nch = nch; o->bat = bat; o->bbytes = bbytes;
#else
    (void)j; (void)h; (void)o;
#endif
}

static void bs_vgeometry(const bs_avx2_job *j, bs_vgeo *o) {
    const bs_vpacked *h = (const bs_vpacked *)j->packed;
    memset(o, 0, sizeof *o);
    o->groups = h->groups; o->mg = h->mg; o->mg4 = h->mg4; o->k = h->k; o->kg = h->kg;
    if (j->conv) {
        const bs_window *g = &j->conv->win;
        o->n = (size_t)g->od * g->oh * g->ow;
    } else {
        o->n = j->rows;
    }
    o->npad = (o->n + 15) / 16 * 16;
    o->nb = o->npad / 16;
    o->tmp_bytes = BS_VA64((size_t)h->groups * h->kg * 4 * o->npad);
    o->ilv_bytes = (size_t)h->kg * 64 * o->nb;   /* a multiple of 64: aligned loads stay aligned */
    int64_t xz = j->p->x_zero;
    int64_t uz = j->xt == BS_T_U8 ? xz : xz + 128;
    o->uz = (int32_t)uz;
    o->fallback = uz < 0 || uz > 255 || h->mode != 1;
    o->tpt = h->kg >= 16 ? 4 : (64 / (size_t)h->kg > 16 ? 16 : 64 / (size_t)h->kg);
    if (h->c16 && !j->conv) o->fallback = 1;   /* C16 is packed for convs only */
    if (!o->fallback && j->conv) bs_vdirect_fits(j, h, o);
    if (o->direct) bs_vbsr_fits(j, h, o);
    o->c16 = h->c16 && !o->fallback;
    o->bsrl = o->bsr && o->mg % 16 == 0;
    if (o->c16 || o->bsrl) {   /* the thread hint: fewer pixels per task, then fewer channel vectors */
        size_t n16 = (size_t)o->mg / 16, want = 4 * (size_t)(j->threads > 1 ? j->threads : 1);
        o->vpt = 4; o->tpx = BS_VC16_TPX;
        while (j->threads > 1 && (size_t)o->groups * ((o->n + o->tpx - 1) / o->tpx) * ((n16 + o->vpt - 1) / o->vpt) < want) {
            if (o->tpx > 32) o->tpx /= 2;
            else if (o->vpt > 1) o->vpt /= 2;
            else break;
        }
    }
    /* the thread hint: at least 4 GEMM tasks per thread where the work allows (fewer tiles per task first, then fewer
     * channel blocks); which task computes an output does not change its value */
    o->cbpt = BS_VCB_PER_TASK;
    size_t tiles = (o->nb + BS_VTILE - 1) / BS_VTILE, ncb = (size_t)o->mg4 / 4, want = 4 * (size_t)(j->threads > 1 ? j->threads : 1);
    while (j->threads > 1 && (o->tpt > 1 || o->cbpt > 1) &&
           (size_t)o->groups * ((tiles + o->tpt - 1) / o->tpt) * ((ncb + o->cbpt - 1) / o->cbpt) < want) {
        if (o->tpt > 1) o->tpt = (o->tpt + 1) / 2;
        else o->cbpt = (o->cbpt + 1) / 2;
    }
}

static size_t bs_vscratch_for(size_t groups, size_t mg, size_t k, size_t n) {
    size_t npad = (n + 15) / 16 * 16, mg4 = (mg + 3) / 4 * 4, k4 = (k + 3) / 4 * 4;
    size_t tmp = BS_VA64(groups * k4 * npad), ilv = BS_VA64(groups * k4 * npad), fb = BS_VA64(groups * mg4 * k);
    return 64 + tmp + (ilv > fb ? ilv : fb);
}

size_t bs_conv_scratch_size__avx512vnni(const bs_conv_shape *s) {
    const bs_window *g = &s->win;
    size_t k = (size_t)(s->c / s->group) * g->kd * g->kh * g->kw;
    return bs_vscratch_for((size_t)s->group, (size_t)(s->m / s->group), k, (size_t)g->od * g->oh * g->ow);
}

size_t bs_gemm_scratch_size__avx512vnni(size_t rows, size_t k, size_t m) { return bs_vscratch_for(1, m, k, rows); }

/* ---- gather. A span: output pixels [p0, p1) (pn: the real ones end), p0 = output row orow, column ow_a. A k
 * position: the reduction index kk of one group and, for a conv, its input channel and kernel tap, advanced
 * without divisions. ---- */
typedef struct bs_vspan { size_t p0, p1, pn, orow; int64_t ow_a; } bs_vspan;
typedef struct bs_vkpos { size_t grp, kk; int32_t ic, kd, kh, kw, taps; } bs_vkpos;

static void bs_vspan_of(const bs_avx2_job *j, const bs_vgeo *o, size_t p0, size_t p1, bs_vspan *sp) {
    sp->p0 = p0; sp->p1 = p1; sp->pn = p1 < o->n ? p1 : o->n;
    size_t ow_n = j->conv ? (size_t)j->conv->win.ow : 1;
    sp->orow = p0 / ow_n; sp->ow_a = (int64_t)(p0 % ow_n);
}

static void bs_vkpos_of(const bs_avx2_job *j, size_t grp, size_t kk, bs_vkpos *k) {
    memset(k, 0, sizeof *k);
    k->grp = grp; k->kk = kk;
    if (!j->conv) return;
    const bs_window *g = &j->conv->win;
    size_t kcount = (size_t)g->kd * g->kh * g->kw, rem = kk % kcount;
    k->ic = (int32_t)(kk / kcount);
    k->taps = ((const bs_vpacked *)j->packed)->taps;
    if (k->taps > 0) {   /* tap-major: kk = ((ic / 4) * taps + tap) * 4 + ic % 4 */
        size_t q = kk / 4;
        rem = q % kcount;
        k->ic = (int32_t)(q / kcount * 4 + kk % 4);
    }
    k->kd = (int32_t)(rem / ((size_t)g->kh * g->kw)); k->kh = (int32_t)(rem / g->kw % g->kh); k->kw = (int32_t)(rem % g->kw);
}

static inline void bs_vkpos_next(const bs_avx2_job *j, bs_vkpos *k) {
    if (k->taps > 0) { bs_vkpos_of(j, k->grp, k->kk + 1, k); return; }
    k->kk++;
    if (!j->conv) return;
    const bs_window *g = &j->conv->win;
    if (++k->kw < g->kw) return;
    k->kw = 0;
    if (++k->kh < g->kh) return;
    k->kh = 0;
    if (++k->kd < g->kd) return;
    k->kd = 0;
    k->ic++;
}

/* Row kk of the gathered input for the span: u = x (u8) or x + 128 (i8) for every output pixel, the padding value
 * (u of the zero point) where the window is outside the input and past the last pixel, 0 for kk >= k. */
static void bs_vgather_row(const bs_avx2_job *j, const bs_vgeo *o, const bs_vkpos *kp, const bs_vspan *sp, unsigned char *row) {
    size_t kk = kp->kk, p0 = sp->p0, p1 = sp->p1, pn = sp->pn;
    int is_u8 = j->xt == BS_T_U8;
    const uint8_t *xb = (const uint8_t *)j->x;
    uint8_t flip = is_u8 ? 0 : 0x80;
    uint8_t padu = (uint8_t)o->uz;
    if ((int32_t)kk >= o->k) {
        memset(row, 0, p1 - p0);
        return;
    }
    if (p0 >= pn) {
        memset(row, padu, p1 - p0);
        return;
    }
    if (!j->conv) {   /* gemm: x [rows, k]; row kk is column kk of x */
        for (size_t p = p0; p < pn; p++) row[p - p0] = xb[p * o->k + kk] ^ flip;
        if (pn < p1) memset(row + (pn - p0), padu, p1 - pn);
        return;
    }
    const bs_conv_shape *s = j->conv;
    const bs_window *g = &s->win;
    int32_t cg = s->c / s->group, kd = kp->kd, kh = kp->kh, kw = kp->kw;
    size_t in_count = (size_t)g->d * g->h * g->w;
    const uint8_t *xc = xb + (size_t)(kp->grp * cg + kp->ic) * in_count;
    const __m512i vflip = _mm512_set1_epi8((char)flip), vpad = _mm512_set1_epi8((char)(padu ^ flip));
    int64_t iw0 = -(int64_t)g->pw + (int64_t)kw * g->dw;
    /* valid ow (the same for every output row): 0 <= iw0 + ow*sw < w */
    int64_t lo0, hi0;
    if (g->sw == 1) { lo0 = iw0 >= 0 ? 0 : -iw0; hi0 = iw0 >= g->w ? 0 : g->w - iw0; }
    else {
        lo0 = iw0 >= 0 ? 0 : (-iw0 + g->sw - 1) / g->sw;
        hi0 = iw0 >= g->w ? 0 : (g->w - 1 - iw0) / g->sw + 1;
    }
    if (hi0 > g->ow) hi0 = g->ow;
    if (lo0 >= hi0) { lo0 = 0; hi0 = 0; }
    if (p0 == 0 && g->sw == 1 && g->sh == 1 && g->w == g->ow && g->d == 1 && g->od == 1 && g->kd == 1 && g->pd == 0) {
        /* stride 1, "same" width (3x3 pad 1, 1x1, 1-D): the valid output rows read one contiguous stretch of the
         * input plane; the columns whose tap is in the padding are set afterwards (lo0, hi0, one or two per row) */
        int64_t ohl = (int64_t)g->ph - (int64_t)kh * g->dh, ohh = (int64_t)g->h + g->ph - (int64_t)kh * g->dh;
        if (ohl < 0) ohl = 0;
        if (ohl > g->oh) ohl = g->oh;   /* a tap below every output row (dilated kernels on short planes) */
        if (ohh > g->oh) ohh = g->oh;
        if (ohh < ohl) ohh = ohl;
        int64_t wn = g->w, ow = g->ow, start = (ohl - g->ph + (int64_t)kh * g->dh) * wn + iw0, count = (ohh - ohl) * ow;
        memset(row, padu, (size_t)(ohl * ow));
        unsigned char *d = row + ohl * ow;
        for (int64_t t = 0; t < count; t += 64) {
            int64_t len = count - t < 64 ? count - t : 64;
            int64_t a = start + t, vlo = a < 0 ? -a : 0, vhi = a + len > (int64_t)in_count ? (int64_t)in_count - a : len;
            uint64_t valid = vhi > vlo ? (~0ull >> (64 - (vhi - vlo))) << vlo : 0;
            const uint8_t *src = vhi > vlo ? xc + a : xc;   /* lane i reads x[a + i] (only the valid lanes) */
            __m512i v = _mm512_mask_loadu_epi8(vpad, _cvtu64_mask64(valid), src);
            _mm512_mask_storeu_epi8(d + t, _cvtu64_mask64(~0ull >> (64 - len)), _mm512_xor_si512(v, vflip));
        }
        for (int64_t oh = ohl; oh < ohh; oh++) {
            for (int64_t c = 0; c < lo0; c++) row[oh * ow + c] = padu;   /* lo0 = hi0 = 0 when no column is valid */
            for (int64_t c = hi0; c < ow; c++) row[oh * ow + c] = padu;
        }
        memset(row + ohh * ow, padu, p1 - (size_t)(ohh * ow));
        return;
    }
    size_t ow_n = (size_t)g->ow, orow = sp->orow, p = p0;
    int64_t ow_a = sp->ow_a;
    int32_t od = (int32_t)(orow / (size_t)g->oh), oh = (int32_t)(orow % (size_t)g->oh);
    while (p < pn) {   /* output row (od, oh), columns [ow_a, ow_b) */
        int64_t ow_b = ow_a + (int64_t)(pn - p) < (int64_t)ow_n ? ow_a + (int64_t)(pn - p) : (int64_t)ow_n;
        int64_t id = (int64_t)od * g->sd - g->pd + (int64_t)kd * g->dd;
        int64_t ih = (int64_t)oh * g->sh - g->ph + (int64_t)kh * g->dh;
        int rowok = id >= 0 && id < g->d && ih >= 0 && ih < g->h;
        size_t base = ((size_t)(rowok ? id : 0) * g->h + (size_t)(rowok ? ih : 0)) * g->w;
        int64_t lo = rowok ? lo0 : 0, hi = rowok ? hi0 : 0;
        uint8_t *d = row + (p - p0) - ow_a;   /* d[ow] is output column ow of this row */
        if (g->sw == 1) {
            /* 64 outputs at a time: a masked load of the valid ones (masked-off lanes are not read), the
             * padding value elsewhere */
            const uint8_t *sx = xc + base;
            for (int64_t c = ow_a; c < ow_b; c += 64) {
                int64_t len = ow_b - c < 64 ? ow_b - c : 64;
                int64_t vlo = lo > c ? lo : c, vhi = hi < c + len ? hi : c + len;
                uint64_t valid = vhi > vlo ? (~0ull >> (64 - (vhi - vlo))) << (vlo - c) : 0;
                const uint8_t *src = vhi > vlo ? sx + iw0 + c : sx;   /* lane i reads x[iw0 + c + i] */
                __m512i v = _mm512_mask_loadu_epi8(vpad, _cvtu64_mask64(valid), src);
                _mm512_mask_storeu_epi8(d + c, _cvtu64_mask64(~0ull >> (64 - len)), _mm512_xor_si512(v, vflip));
            }
        }
#if defined(__BMI2__)
        else if (g->sw == 2) {
            /* 32 outputs at a time: a masked 64-byte load of the even source bytes of the valid outputs, then
             * vpmovwb keeps the low (even) byte of each 16-bit lane */
            const uint8_t *sx = xc + base;
            for (int64_t c = ow_a; c < ow_b; c += 32) {
                int64_t len = ow_b - c < 32 ? ow_b - c : 32;
                int64_t vlo = lo > c ? lo : c, vhi = hi < c + len ? hi : c + len;
                uint32_t valid = vhi > vlo ? (uint32_t)((~0ull >> (64 - (vhi - vlo))) << (vlo - c)) : 0;
                const uint8_t *src = vhi > vlo ? sx + iw0 + 2 * c : sx;   /* lane 2i reads x[iw0 + 2 (c + i)] */
                __m512i v = _mm512_mask_loadu_epi8(vpad, _cvtu64_mask64(_pdep_u64(valid, 0x5555555555555555ull)), src);
                __m256i e = _mm256_xor_si256(_mm512_cvtepi16_epi8(v), _mm512_castsi512_si256(vflip));
                _mm256_mask_storeu_epi8(d + c, (__mmask32)(0xFFFFFFFFu >> (32 - len)), e);
            }
        }
#endif
        else {
            for (int64_t ow = ow_a; ow < ow_b; ow++)
                d[ow] = ow >= lo && ow < hi ? xc[base + iw0 + ow * g->sw] ^ flip : padu;
        }
        p += (size_t)(ow_b - ow_a);
        ow_a = 0;
        if (++oh == g->oh) { oh = 0; od++; }
    }
    if (pn < p1) memset(row + (pn - p0), padu, p1 - pn);
}

/* 16 bytes of each of 4 rows -> [16][4 bytes] (byte i of row r at 4 i + r). */
static inline __m512i bs_vilv4x16(__m128i r0, __m128i r1, __m128i r2, __m128i r3) {
    __m128i a0 = _mm_unpacklo_epi8(r0, r1), a1 = _mm_unpackhi_epi8(r0, r1);
    __m128i c0 = _mm_unpacklo_epi8(r2, r3), c1 = _mm_unpackhi_epi8(r2, r3);
    __m512i v = _mm512_castsi128_si512(_mm_unpacklo_epi16(a0, c0));
    v = _mm512_inserti32x4(v, _mm_unpackhi_epi16(a0, c0), 1);
    v = _mm512_inserti32x4(v, _mm_unpacklo_epi16(a1, c1), 2);
    return _mm512_inserti32x4(v, _mm_unpackhi_epi16(a1, c1), 3);
}

/* One interleaved k-group of one pixel block: 4 rows of stride `stride`, 16 pixels from r, into 64 bytes at dst. */
static inline void bs_vinterleave1(const unsigned char *r, size_t stride, unsigned char *dst) {
    __m128i r0 = _mm_loadu_si128((const __m128i *)r), r1 = _mm_loadu_si128((const __m128i *)(r + stride));
    __m128i r2 = _mm_loadu_si128((const __m128i *)(r + 2 * stride)), r3 = _mm_loadu_si128((const __m128i *)(r + 3 * stride));
    _mm512_store_si512((void *)dst, bs_vilv4x16(r0, r1, r2, r3));
}

/* ---- the direct path's stage 0: the 4 input channels of quad cq of group g into its phase planes (bs_vgeo), u = x
 * (u8) or x + 128 (i8) in byte c of each word, the padding value where the padded position is outside the input, and
 * the padding value in every word past the plane's rows (the slack that the last blocks' taps read) ---- */
static inline uint32_t bs_vspread16(uint32_t m) {   /* bit i -> bit 2 i */
#if defined(__BMI2__)
    return _pdep_u32(m, 0x55555555u);
#else
    uint32_t r = 0;
    for (int i = 0; i < 16; i++) r |= ((m >> i) & 1u) << (2 * i);
    return r;
#endif
}

static void bs_vfill_quad(const bs_avx2_job *j, const bs_vgeo *o, unsigned char *planes, size_t g, size_t cq, unsigned char *mm) {
    const bs_conv_shape *s = j->conv;
    const bs_window *w = &s->win;
    size_t in_count = (size_t)w->h * w->w, cg = (size_t)(s->c / s->group), pwq = o->pwq;
    const uint8_t *xq = (const uint8_t *)j->x + (g * cg + cq * 4) * in_count;
    uint8_t flip = j->xt == BS_T_U8 ? 0 : 0x80, padu = (uint8_t)o->uz;
    const __m128i vpad = _mm_set1_epi8((char)(padu ^ flip)), vflip = _mm_set1_epi8((char)flip);
    const __m256i vpad2 = _mm256_set1_epi8((char)(padu ^ flip));
    const __m512i vpadw = _mm512_set1_epi8((char)padu);
    const uint32_t padw = 0x01010101u * padu;   /* one word of padding */
    __m512i vmin = vpadw, vmax = vpadw;   /* over every stored word (the bit-serial path's range) */
    if (w->sh == 1 && w->sw == 1 && w->ph == 0 && w->pw == 0 && pwq == (size_t)w->w && o->slot[0] == 0) {
        /* the plane's rows are the input's, back to back (1 x 1 convs, unpadded stride-1 ones): the 4 channels'
         * planes interleaved 64 pixels at a time (unpacks, then a 4 x 4 transpose of 128-bit lanes), the tail 16 at
         * a time with masked loads, the rest of the plane (rows past the input, lp's slack) the padding */
        unsigned char *pl = planes + g * o->gbytes + cq * (size_t)o->nph * o->lp * 4;
        size_t n = (o->phq < (size_t)w->h ? o->phq : (size_t)w->h) * pwq, p = 0;
        const __m512i vflipw = _mm512_set1_epi8((char)flip);
        for (; p + 64 <= n; p += 64) {
            __m512i a = _mm512_xor_si512(_mm512_loadu_si512((const void *)(xq + p)), vflipw);
            __m512i b = _mm512_xor_si512(_mm512_loadu_si512((const void *)(xq + in_count + p)), vflipw);
            __m512i c = _mm512_xor_si512(_mm512_loadu_si512((const void *)(xq + 2 * in_count + p)), vflipw);
            __m512i d = _mm512_xor_si512(_mm512_loadu_si512((const void *)(xq + 3 * in_count + p)), vflipw);
            __m512i ab0 = _mm512_unpacklo_epi8(a, b), ab1 = _mm512_unpackhi_epi8(a, b);
            __m512i cd0 = _mm512_unpacklo_epi8(c, d), cd1 = _mm512_unpackhi_epi8(c, d);
            /* lane L of q0 .. q3: pixels 16 L + 0-3, 4-7, 8-11, 12-15 */
            __m512i q0 = _mm512_unpacklo_epi16(ab0, cd0), q1 = _mm512_unpackhi_epi16(ab0, cd0);
            __m512i q2 = _mm512_unpacklo_epi16(ab1, cd1), q3 = _mm512_unpackhi_epi16(ab1, cd1);
            __m512i t0 = _mm512_shuffle_i64x2(q0, q1, 0x44), t1 = _mm512_shuffle_i64x2(q0, q1, 0xEE);
            __m512i t2 = _mm512_shuffle_i64x2(q2, q3, 0x44), t3 = _mm512_shuffle_i64x2(q2, q3, 0xEE);
            __m512i o0 = _mm512_shuffle_i64x2(t0, t2, 0x88), o1 = _mm512_shuffle_i64x2(t0, t2, 0xDD);
            __m512i o2 = _mm512_shuffle_i64x2(t1, t3, 0x88), o3 = _mm512_shuffle_i64x2(t1, t3, 0xDD);
            vmin = _mm512_min_epu8(vmin, _mm512_min_epu8(_mm512_min_epu8(o0, o1), _mm512_min_epu8(o2, o3)));
            vmax = _mm512_max_epu8(vmax, _mm512_max_epu8(_mm512_max_epu8(o0, o1), _mm512_max_epu8(o2, o3)));
            _mm512_storeu_si512((void *)(pl + 4 * p), o0); _mm512_storeu_si512((void *)(pl + 4 * p + 64), o1);
            _mm512_storeu_si512((void *)(pl + 4 * p + 128), o2); _mm512_storeu_si512((void *)(pl + 4 * p + 192), o3);
        }
        for (; p < n; p += 16) {   /* lp >= n + 16, a multiple of 16: the last step's padding lanes fit */
            __mmask16 valid = (__mmask16)(n - p >= 16 ? 0xFFFFu : (1u << (n - p)) - 1u);
            __m128i v[4];
            for (int i = 0; i < 4; i++) v[i] = _mm_xor_si128(_mm_mask_loadu_epi8(vpad, valid, xq + i * in_count + p), vflip);
            __m512i q = bs_vilv4x16(v[0], v[1], v[2], v[3]);
            vmin = _mm512_min_epu8(vmin, q); vmax = _mm512_max_epu8(vmax, q);
            _mm512_storeu_si512((void *)(pl + 4 * p), q);
        }
        memset(pl + n * 4, padu, (o->lp - n) * 4);
    } else
    for (int32_t fr = 0; fr < w->sh; fr++)
        for (int32_t fc = 0; fc < w->sw; fc++) {
            int32_t sl = o->slot[fr * w->sw + fc];
            if (sl < 0) continue;
            unsigned char *pl = planes + g * o->gbytes + (cq * (size_t)o->nph + (size_t)sl) * o->lp * 4;
            int64_t iw0 = (int64_t)fc - w->pw;   /* the input column of phase column c: iw0 + c sw */
            int64_t lo = iw0 >= 0 ? 0 : (-iw0 + w->sw - 1) / w->sw, hi = iw0 >= w->w ? 0 : (w->w - 1 - iw0) / w->sw + 1;
            if (hi > (int64_t)pwq) hi = (int64_t)pwq;
            if (lo > hi) lo = hi;
            for (size_t r = 0; r < o->phq; r++) {
                int64_t ih = (int64_t)r * w->sh + fr - w->ph;
                unsigned char *d = pl + r * pwq * 4;   /* 16 words per step: the last step's spill is rewritten next */
                int rowok = ih >= 0 && ih < w->h;
                const uint8_t *xr = xq + (size_t)(rowok ? ih : 0) * w->w;
                if (w->sw == 1 && rowok && hi - lo >= 16) {
                    /* column stride 1: the padding words, then the row's columns 16 at a time with plain loads from
                     * its first one (the last step overlapping the one before), not 16-word steps from the padded
                     * plane's first word, half of which straddle the padding (masked loads) on narrow rows */
                    for (int64_t c = 0; c < lo; c++) memcpy(d + 4 * c, &padw, 4);
                    for (int64_t c = hi; c < (int64_t)pwq; c++) memcpy(d + 4 * c, &padw, 4);
                    for (int64_t c = lo;; c += 16) {
                        if (c + 16 > hi) c = hi - 16;
                        const uint8_t *src = xr + iw0 + c;
                        __m512i q = bs_vilv4x16(_mm_xor_si128(_mm_loadu_si128((const __m128i *)src), vflip),
                                                _mm_xor_si128(_mm_loadu_si128((const __m128i *)(src + in_count)), vflip),
                                                _mm_xor_si128(_mm_loadu_si128((const __m128i *)(src + 2 * in_count)), vflip),
                                                _mm_xor_si128(_mm_loadu_si128((const __m128i *)(src + 3 * in_count)), vflip));
                        vmin = _mm512_min_epu8(vmin, q); vmax = _mm512_max_epu8(vmax, q);
                        _mm512_storeu_si512((void *)(d + 4 * c), q);
                        if (c + 16 >= hi) break;
                    }
                    continue;
                }
                for (size_t c = 0; c < pwq; c += 16) {
                    int64_t vlo = lo > (int64_t)c ? lo : (int64_t)c, vhi = hi < (int64_t)c + 16 ? hi : (int64_t)c + 16;
                    uint32_t valid = rowok && vhi > vlo ? ((1u << (vhi - vlo)) - 1u) << (vlo - (int64_t)c) : 0;
                    if (!valid) { _mm512_storeu_si512((void *)(d + 4 * c), vpadw); continue; }
                    __m128i v[4];
                    for (int i = 0; i < 4; i++) {   /* lane l reads x[iw0 + (c + l) sw] (only the valid lanes) */
                        const uint8_t *src = xr + i * in_count + iw0 + (int64_t)c * w->sw;
                        v[i] = w->sw == 1 ? _mm_mask_loadu_epi8(vpad, (__mmask16)valid, src)
                             : _mm256_cvtepi16_epi8(_mm256_mask_loadu_epi8(vpad2, (__mmask32)bs_vspread16(valid), src));
                        v[i] = _mm_xor_si128(v[i], vflip);
                    }
                    __m512i q = bs_vilv4x16(v[0], v[1], v[2], v[3]);
                    vmin = _mm512_min_epu8(vmin, q); vmax = _mm512_max_epu8(vmax, q);
                    _mm512_storeu_si512((void *)(d + 4 * c), q);
                }
            }
            memset(pl + o->phq * pwq * 4, padu, (o->lp - o->phq * pwq) * 4);
        }
    if (mm) {
        unsigned char a[64], b[64], lo = 255, hi = 0;
        _mm512_storeu_si512((void *)a, vmin); _mm512_storeu_si512((void *)b, vmax);
        for (int i = 0; i < 64; i++) { if (a[i] < lo) lo = a[i]; if (b[i] > hi) hi = b[i]; }
        mm[2 * cq] = lo; mm[2 * cq + 1] = hi;
    }
}

/* Stage 0's task `task` of the direct path: its qpt quads (not inlined into bs_avx512vnni_run: inlined, the GEMM
 * stage's code there ran 10 % slower on the Zen 4, its loops laid out anew). */
static __attribute__((noinline)) void bs_vfill_task(const bs_avx2_job *j, const bs_vgeo *o, unsigned char *planes, int32_t task,
                                                    unsigned char *mm) {
    size_t tq = (o->cqn + o->qpt - 1) / o->qpt, g = (size_t)task / tq, q0 = (size_t)task % tq * o->qpt;
    for (size_t q = q0; q < q0 + o->qpt && q < o->cqn; q++) bs_vfill_quad(j, o, planes, g, q, mm);
}

#if BS_VBSR
/* ---- the bit-serial path: bit planes of the activations, the k-word offsets, the range check ---- */
/* The activations' range from every quad's min and max: base = the least u8 value; 1 if all are within base + 3. */
static int bs_vbsr_range(const bs_vgeo *o, const unsigned char *mm, int32_t *base) {
    int32_t lo = 255, hi = 0;
    for (size_t i = 0; i < o->cqn; i++) { if (mm[2 * i] < lo) lo = mm[2 * i]; if (mm[2 * i + 1] > hi) hi = mm[2 * i + 1]; }
    *base = lo;
    return hi - lo <= 3;
}

/* The byte offset of k-word q = (chunk, tap) from a virtual pixel's word in bit plane 0 (plane 1: lp words on). */
static void bs_vbsr_offsets(const bs_avx2_job *j, const bs_vgeo *o, int32_t *voffb) {
    const bs_window *w = &j->conv->win;
    int32_t T = w->kh * w->kw, hs = w->sh - 1, ws = w->sw - 1;
    for (size_t ch = 0; ch < o->nch; ch++)
        for (int32_t kh = 0, t = 0; kh < w->kh; kh++)
            for (int32_t kw = 0; kw < w->kw; kw++, t++) {
                int32_t rh = kh * w->dh, rw = kw * w->dw;
                size_t sl = (size_t)o->slot[(rh & hs) * w->sw + (rw & ws)];
                voffb[ch * (size_t)T + (size_t)t] = (int32_t)((((ch * (size_t)o->nph + sl) * 2) * o->lp + (size_t)(rh >> hs) * o->pwq + (size_t)(rw >> ws)) * 8);
            }
}


/* Stage 1's tasks: per chunk, slices of the virtual pixels (whole 16-pixel steps), so that two threads share a
 * 64-channel layer's conversion. */
static size_t bs_vbsr_slices(const bs_vgeo *o) {
    size_t steps = o->lp / 16, n = steps / 32;   /* at least 512 pixels a task */
    return n < 1 ? 1 : (n > 8 ? 8 : n);
}

/* A slice of chunk ch of the quad planes into bit planes of u - base (0..3): 16 pixels at a time, each quad's 64 bytes
 * tested for bits 0 and 1 (a mask of 16 pixel nibbles), the 16 masks transposed into 16 pixel words. */
static void bs_vbsr_convert(const bs_vgeo *o, const unsigned char *planes, unsigned char *bits, size_t ch, size_t slice, int32_t base) {
    __m512i pc, pd;
    bs_vnibble_index(&pc, &pd);
    const __m512i vb = _mm512_set1_epi8((char)base);
    size_t q0 = ch * 16, nq = o->cqn - q0 < 16 ? o->cqn - q0 : 16, ns = bs_vbsr_slices(o), steps = o->lp / 16;
    size_t v0 = steps * slice / ns * 16, v1 = steps * (slice + 1) / ns * 16;
    for (size_t sl = 0; sl < (size_t)o->nph; sl++) {
        unsigned char *b0 = bits + ((ch * (size_t)o->nph + sl) * 2) * o->lp * 8, *b1 = b0 + o->lp * 8;
        for (size_t v = v0; v < v1; v += 16) {
            __m512i z[16], A[2], B[2];
            for (size_t i = 0; i < 16; i++)
                z[i] = i < nq ? _mm512_sub_epi8(_mm512_load_si512((const void *)(planes + ((q0 + i) * (size_t)o->nph + sl) * o->lp * 4 + v * 4)), vb)
                              : _mm512_setzero_si512();
            bs_vmasks16(z, A, B);
            for (int b = 0; b < 2; b++) {
                unsigned char *d = (b ? b1 : b0) + v * 8;
                _mm512_storeu_si512((void *)d, bs_vnibbles(_mm512_permutex2var_epi8(A[b], pc, B[b])));
                _mm512_storeu_si512((void *)(d + 64), bs_vnibbles(_mm512_permutex2var_epi8(A[b], pd, B[b])));
            }
        }
    }
}

/* ---- the bit-serial GEMM micro-kernel: 16 virtual pixels (two zmm of 8 words per bit plane) x 4 output channels,
 * one k-word (64 input channels at one tap) per step. u = u0 + 2 u1 (0..3), w_b = w0 - 2 w1 (two's complement), so
 * sum u w_b = P(u0 w0) + 2 (P(u1 w0) - P(u0 w1)) - 4 P(u1 w1), P = popcount of the AND over the word: three
 * accumulators per (pixel half, channel), 24 in all: per k-word 4 activation loads and 8 weight broadcasts,
 * 32 AND + 32 VPOPCNTQ + 32 adds for 4096 2-bit MACs (a bare loop of the three runs at ~1.3x the vpdpbusd peak). ---- */
static inline void bs_qu2s2_conv_b1p_popcnt_16x4c64__avx512vnni(const unsigned char *a, size_t pstride, const int32_t *voffb,
                                                                 const uint64_t *w, int32_t nq, __m512i acc[4]) {
    /* Inline asm (compiled from intrinsics, gcc 12 kept all 8 weights in registers and spilled accumulators).
     * zmm0-23: the accumulators, channel c at 6 c + {P(u0 w0): half a, b; P(u1 w0) - P(u0 w1): a, b; P(u1 w1): a, b};
     * zmm24-27: u0, u1 of the two halves (8 pixels each); zmm28-29: one channel's w0, w1 broadcast into registers (as
     * {1to8} memory operands of every vpandq, the 32 broadcast loads per k-word made the loop load-bound: ResNet-18's
     * 3x3 convs ran 10-25 % slower); zmm30-31: products. The first k-word sets the accumulators (no zeroing: 2-3 %
     * on 64-channel layers, 9 k-words a call). At the end a + 2 a2 - 4 a4, narrowed to int32, into acc. Written with
     * assembler macros (bs_bsrp: one AND + popcount + add / sub / set; bs_bsrc: one channel; bs_bsrk: one k-word),
     * purged at the end, so that the statement may be emitted more than once. */
    intptr_t off;
    const int32_t *vo = voffb;
    const uint64_t *wp = w;
    int32_t n = nq;
    __asm__ volatile(
        ".macro bs_bsrp w, u, acc, op, t\n\t"
        "vpandq %%zmm\\w, %%zmm\\u, %%zmm\\t\n\t"
        ".ifc \\op, set\n\t"
        "vpopcntq %%zmm\\t, %%zmm\\acc\n\t"
        ".else\n\t"
        "vpopcntq %%zmm\\t, %%zmm\\t\n\t"
        "vp\\op\\()q %%zmm\\t, %%zmm\\acc, %%zmm\\acc\n\t"
        ".endif\n\t"
        ".endm\n\t"
        ".macro bs_bsrc off, a1, b1, a2, b2, a4, b4, add\n\t"
        "vpbroadcastq \\off(%[w]), %%zmm28\n\t"
        "vpbroadcastq \\off+8(%[w]), %%zmm29\n\t"
        "bs_bsrp 28, 24, \\a1, \\add, 30\n\t"
        "bs_bsrp 28, 25, \\b1, \\add, 31\n\t"
        "bs_bsrp 28, 26, \\a2, \\add, 30\n\t"
        "bs_bsrp 28, 27, \\b2, \\add, 31\n\t"
        "bs_bsrp 29, 24, \\a2, sub, 30\n\t"
        "bs_bsrp 29, 25, \\b2, sub, 31\n\t"
        "bs_bsrp 29, 26, \\a4, \\add, 30\n\t"
        "bs_bsrp 29, 27, \\b4, \\add, 31\n\t"
        ".endm\n\t"
        ".macro bs_bsrk add\n\t"
        "movslq (%[vo]), %[off]\n\t"
        "addq %[a], %[off]\n\t"
        "vmovdqu64 (%[off]), %%zmm24\n\t"
        "vmovdqu64 64(%[off]), %%zmm25\n\t"
        "vmovdqu64 (%[off],%[ps]), %%zmm26\n\t"
        "vmovdqu64 64(%[off],%[ps]), %%zmm27\n\t"
        "prefetcht0 1024(%[w])\n\t"
        "bs_bsrc 0, 0, 1, 2, 3, 4, 5, \\add\n\t"
        "bs_bsrc 16, 6, 7, 8, 9, 10, 11, \\add\n\t"
        "bs_bsrc 32, 12, 13, 14, 15, 16, 17, \\add\n\t"
        "bs_bsrc 48, 18, 19, 20, 21, 22, 23, \\add\n\t"
        "addq $4, %[vo]\n\t"
        "addq $64, %[w]\n\t"
        ".endm\n\t"
        ".macro bs_bsrsum a, a2, a4\n\t"
        "vpsllq $1, %%zmm\\a2, %%zmm\\a2\n\t"
        "vpaddq %%zmm\\a2, %%zmm\\a, %%zmm\\a\n\t"
        "vpsllq $2, %%zmm\\a4, %%zmm\\a4\n\t"
        "vpsubq %%zmm\\a4, %%zmm\\a, %%zmm\\a\n\t"
        "vpmovqd %%zmm\\a, %%ymm\\a\n\t"
        ".endm\n\t"
        "bs_bsrk set\n\t"
        "decl %[n]\n\t"
        "jz 2f\n\t"
        "1:\n\t"
        "bs_bsrk add\n\t"
        "decl %[n]\n\t"
        "jnz 1b\n\t"
        "2:\n\t"
        "bs_bsrsum 0, 2, 4\n\t"
        "bs_bsrsum 1, 3, 5\n\t"
        "vinserti64x4 $1, %%ymm1, %%zmm0, %%zmm0\n\t"
        "vmovdqu64 %%zmm0, 0(%[out])\n\t"
        "bs_bsrsum 6, 8, 10\n\t"
        "bs_bsrsum 7, 9, 11\n\t"
        "vinserti64x4 $1, %%ymm7, %%zmm6, %%zmm6\n\t"
        "vmovdqu64 %%zmm6, 64(%[out])\n\t"
        "bs_bsrsum 12, 14, 16\n\t"
        "bs_bsrsum 13, 15, 17\n\t"
        "vinserti64x4 $1, %%ymm13, %%zmm12, %%zmm12\n\t"
        "vmovdqu64 %%zmm12, 128(%[out])\n\t"
        "bs_bsrsum 18, 20, 22\n\t"
        "bs_bsrsum 19, 21, 23\n\t"
        "vinserti64x4 $1, %%ymm19, %%zmm18, %%zmm18\n\t"
        "vmovdqu64 %%zmm18, 192(%[out])\n\t"
        ".purgem bs_bsrp\n\t"
        ".purgem bs_bsrc\n\t"
        ".purgem bs_bsrk\n\t"
        ".purgem bs_bsrsum\n\t"
        : [off] "=&r"(off), [vo] "+r"(vo), [w] "+r"(wp), [n] "+r"(n)
        : [a] "r"(a), [ps] "r"(pstride), [out] "r"(acc)
        : "zmm0", "zmm1", "zmm2", "zmm3", "zmm4", "zmm5", "zmm6", "zmm7", "zmm8", "zmm9", "zmm10", "zmm11", "zmm12", "zmm13", "zmm14", "zmm15", "zmm16", "zmm17", "zmm18", "zmm19", "zmm20", "zmm21", "zmm22", "zmm23", "zmm24", "zmm25", "zmm26", "zmm27", "zmm28", "zmm29", "zmm30", "zmm31", "cc", "memory");
}

/* ---- the bit-serial kernel with channels in lanes: NR consecutive virtual pixels (1..7) x 8 output channels (one
 * 64-bit lane each), one k-word per step, the same three sums per (pixel, channel) as above: per k-word the two
 * blocks' [4 channels][2 planes] words made into the 8 channels' w0 and w1 vectors (two vpermt2q), each pixel's u0
 * and u1 words broadcast: 4 NR AND + VPOPCNTQ + add for NR x 512 2-bit MACs, every lane a real output (the pixel-lane
 * kernel above computes the junk columns of a plane's rows). a: the first pixel's plane-0 word of k-word 0 (plane 1
 * at pstride), k-word q at voffb[q], the next pixel 8 bytes on; wa, wb: the two channel blocks' words. Results
 * (int32) to out[i * 64 + 0..7]. ---- */
#define BS_B8_PX(i)                                                                                                 \
    if (NR > i) {                                                                                                   \
        const __m512i u0 = _mm512_set1_epi64(*(const long long *)(const void *)(ap + 8 * i));                       \
        const __m512i u1 = _mm512_set1_epi64(*(const long long *)(const void *)(ap + pstride + 8 * i));             \
        s1##i = _mm512_add_epi64(s1##i, _mm512_popcnt_epi64(_mm512_and_si512(u0, w0)));                             \
        s2##i = _mm512_add_epi64(s2##i, _mm512_popcnt_epi64(_mm512_and_si512(u1, w0)));                             \
        s2##i = _mm512_sub_epi64(s2##i, _mm512_popcnt_epi64(_mm512_and_si512(u0, w1)));                             \
        s4##i = _mm512_add_epi64(s4##i, _mm512_popcnt_epi64(_mm512_and_si512(u1, w1)));                             \
    }
#define BS_B8_ST(i)                                                                                                 \
    if (NR > i)                                                                                                     \
        _mm256_storeu_si256((__m256i *)(void *)(out + i * 64), _mm512_cvtepi64_epi32(_mm512_sub_epi64(              \
            _mm512_add_epi64(s1##i, _mm512_slli_epi64(s2##i, 1)), _mm512_slli_epi64(s4##i, 2))));
static inline __attribute__((always_inline)) void bs_vb8_kernel(const unsigned char *a, size_t pstride, const int32_t *voffb,
                                                                const uint64_t *wa, const uint64_t *wb, int32_t nq,
                                                                int32_t NR, int32_t *out) {
    const __m512i z = _mm512_setzero_si512();
    const __m512i i0 = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14), i1 = _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15);
    __m512i s10 = z, s11 = z, s12 = z, s13 = z, s14 = z, s15 = z, s16 = z, s20 = z, s21 = z, s22 = z, s23 = z, s24 = z, s25 = z, s26 = z;
    __m512i s40 = z, s41 = z, s42 = z, s43 = z, s44 = z, s45 = z, s46 = z;
    for (int32_t q = 0; q < nq; q++) {
        const unsigned char *ap = a + voffb[q];
        const __m512i A = _mm512_loadu_si512((const void *)(wa + (size_t)q * 8)), B = _mm512_loadu_si512((const void *)(wb + (size_t)q * 8));
        const __m512i w0 = _mm512_permutex2var_epi64(A, i0, B), w1 = _mm512_permutex2var_epi64(A, i1, B);
        BS_B8_PX(0) BS_B8_PX(1) BS_B8_PX(2) BS_B8_PX(3) BS_B8_PX(4) BS_B8_PX(5) BS_B8_PX(6)
    }
    BS_B8_ST(0) BS_B8_ST(1) BS_B8_ST(2) BS_B8_ST(3) BS_B8_ST(4) BS_B8_ST(5) BS_B8_ST(6)
}
#undef BS_B8_PX
#undef BS_B8_ST
typedef void (*bs_vb8_fn)(const unsigned char *a, size_t pstride, const int32_t *voffb, const uint64_t *wa, const uint64_t *wb,
                          int32_t nq, int32_t *out);
#define BS_B8_FN(NR)                                                                                                \
static __attribute__((noinline)) void bs_qu2s2_conv_b1p_popcnt_##NR##x8c64__avx512vnni(const unsigned char *a, size_t pstride, \
        const int32_t *voffb, const uint64_t *wa, const uint64_t *wb, int32_t nq, int32_t *out) {                   \
    bs_vb8_kernel(a, pstride, voffb, wa, wb, nq, NR, out);                                                          \
}
BS_B8_FN(1) BS_B8_FN(2) BS_B8_FN(3) BS_B8_FN(4) BS_B8_FN(5) BS_B8_FN(6) BS_B8_FN(7)
#undef BS_B8_FN
static const bs_vb8_fn bs_vb8[7] = {bs_qu2s2_conv_b1p_popcnt_1x8c64__avx512vnni, bs_qu2s2_conv_b1p_popcnt_2x8c64__avx512vnni,
    bs_qu2s2_conv_b1p_popcnt_3x8c64__avx512vnni, bs_qu2s2_conv_b1p_popcnt_4x8c64__avx512vnni, bs_qu2s2_conv_b1p_popcnt_5x8c64__avx512vnni,
    bs_qu2s2_conv_b1p_popcnt_6x8c64__avx512vnni, bs_qu2s2_conv_b1p_popcnt_7x8c64__avx512vnni};
#endif

/* The byte offset of k-group q (quad cq, tap) from a virtual pixel's word in the group's planes. */
static void bs_vdirect_offsets(const bs_avx2_job *j, const bs_vgeo *o, int32_t *voff) {
    const bs_window *w = &j->conv->win;
    int32_t T = w->kh * w->kw, hs = w->sh - 1, ws = w->sw - 1;   /* strides 1 or 2: shifts and masks, no divisions */
    for (int32_t kh = 0, t = 0; kh < w->kh; kh++)   /* quad 0, then every quad cq at cq planes of nph phases on */
        for (int32_t kw = 0; kw < w->kw; kw++, t++) {
            int32_t rh = kh * w->dh, rw = kw * w->dw;
            size_t sl = (size_t)o->slot[(rh & hs) * w->sw + (rw & ws)];
            voff[t] = (int32_t)((sl * o->lp + (size_t)(rh >> hs) * o->pwq + (size_t)(rw >> ws)) * 4);
        }
    int32_t qstride = (int32_t)((size_t)o->nph * o->lp * 4);
    for (int32_t q = T; q < o->kg; q++) voff[q] = voff[q - T] + qstride;
}

/* The runs of lanes of a block of 16 virtual pixels from v0 that are output pixels: lanes [i0[r], i1[r]) go to the
 * output pixels from off[r] on. */
typedef struct bs_vruns {
    int32_t n;
    uint8_t i0[16], i1[16];
    size_t off[16];
} bs_vruns;

static void bs_vdirect_runs(const bs_avx2_job *j, const bs_vgeo *o, size_t v0, bs_vruns *r) {
    const bs_window *w = &j->conv->win;
    size_t oh = v0 / o->pwq, ow = v0 % o->pwq;
    r->n = 0;
    for (int32_t i = 0; i < 16; i++) {
        if (oh < (size_t)w->oh && ow < (size_t)w->ow) {
            if (r->n && r->i1[r->n - 1] == i && ow > 0) r->i1[r->n - 1]++;
            else { r->i0[r->n] = (uint8_t)i; r->i1[r->n] = (uint8_t)(i + 1); r->off[r->n] = oh * (size_t)w->ow + ow; r->n++; }
        }
        if (++ow == o->pwq) { ow = 0; oh++; }
    }
}

/* One interleaved k-group of 4 pixel blocks: rows r (4 rows of stride `stride`, 64 pixels from r) into the 64-byte
 * [16 pixels][4 bytes] groups of blocks 0..3 at dst, dst + bq, dst + 2 bq, dst + 3 bq. */
static inline void bs_vinterleave4(const unsigned char *r, size_t stride, unsigned char *dst, size_t bq) {
    __m512i r0 = _mm512_loadu_si512((const void *)r), r1 = _mm512_loadu_si512((const void *)(r + stride));
    __m512i r2 = _mm512_loadu_si512((const void *)(r + 2 * stride)), r3 = _mm512_loadu_si512((const void *)(r + 3 * stride));
    __m512i a0 = _mm512_unpacklo_epi8(r0, r1), a1 = _mm512_unpackhi_epi8(r0, r1);
    __m512i c0 = _mm512_unpacklo_epi8(r2, r3), c1 = _mm512_unpackhi_epi8(r2, r3);
    __m512i v0 = _mm512_unpacklo_epi16(a0, c0), v1 = _mm512_unpackhi_epi16(a0, c0);   /* pixels 0-3, 4-7 of each block */
    __m512i v2 = _mm512_unpacklo_epi16(a1, c1), v3 = _mm512_unpackhi_epi16(a1, c1);   /* 8-11, 12-15 */
    __m512i t0 = _mm512_shuffle_i64x2(v0, v1, 0x44), t1 = _mm512_shuffle_i64x2(v2, v3, 0x44);  /* blocks 0, 1 */
    __m512i t2 = _mm512_shuffle_i64x2(v0, v1, 0xEE), t3 = _mm512_shuffle_i64x2(v2, v3, 0xEE);  /* blocks 2, 3 */
    _mm512_store_si512((void *)dst, _mm512_shuffle_i64x2(t0, t1, 0x88));
    _mm512_store_si512((void *)(dst + bq), _mm512_shuffle_i64x2(t0, t1, 0xDD));
    _mm512_store_si512((void *)(dst + 2 * bq), _mm512_shuffle_i64x2(t2, t3, 0x88));
    _mm512_store_si512((void *)(dst + 3 * bq), _mm512_shuffle_i64x2(t2, t3, 0xDD));
}

/* ---- then interleave k-group q of one group (its 4 rows just gathered into `rows`, still in L1), every 16-pixel
 * block, into [block][kg][16 pixels][4 bytes] ---- */
static void bs_vinterleave(const bs_vgeo *o, const unsigned char *rows, unsigned char *ilv, int32_t q) {
    size_t stride = o->npad, bq = (size_t)o->kg * 64, b = 0;
    unsigned char *dq = ilv + (size_t)q * 64;
    for (; b + 4 <= o->nb; b += 4) bs_vinterleave4(rows + b * 16, stride, dq + b * bq, bq);
    for (; b < o->nb; b++) bs_vinterleave1(rows + b * 16, stride, dq + b * bq);
}

/* ---- the epilogue: 16 accumulators of one output channel (16 pixels or rows) -> the 16 results (in the output
 * container's range; int32 accumulators when the job has no Requant). The per-channel part (bs_vepi_setup) is made
 * once per channel and task: done per 16 outputs, its scalar clamps and broadcasts had cost more than the vector
 * work at small k (MobileNetV2's 16 -> 96 expand conv). ---- */
typedef struct bs_vepi {
    /* modes 4, 5: B = bias + 2^(n-1) + zero 2^n; LO, HI in 32-bit (4) or 64-bit (5) lanes. Mode 6 (bs_vepi_thresholds)
     * keeps its steps U0, U1, U2 in M, B, Z and the result is LO + HI [acc > M] + HI [acc > B] + HI [acc > Z] (named
     * fields, not a union: GCC kept a union's struct in memory, the depthwise loop ran 1-3 % slower) */
    __m512i corr, M, B, Z, LO, HI;
    __m128i sh, sh1;
    size_t c;
    /* 0: no Requant (acc - corr); int64 lanes: 1 (n > 0 rounds), 2 (n == 0); 3: the scalar order; the int32 path of
     * int32 form (bs_vepi_int32_form): 4 (n >= 32), 5 (n < 32); 6: the int32 form's result counted off thresholds */
    int32_t mode;
} bs_vepi;

/* Channel q's Requant in the int32 form of the epilogue (modes 4, 5): u = acc m + B, B = bias + 2^(n-1) + zero 2^n,
 * never wraps int64, and the result is clamp(floor(u / 2^n), clo, chi), [clo, chi] = [lo, hi] clamped to the container
 * yt (clamping to [lo, hi] then to the container is clamping to [C(lo), C(hi)]: C monotonic, lo <= hi). 0 if the
 * channel takes another form (B, clo, chi then set for the int64 modes, clo and chi only). */
static inline int bs_vepi_int32_form(const bs_requant_params *rq, size_t q, int32_t yt, int64_t *B, int64_t *clo, int64_t *chi) {
    int32_t n = rq->n[q];
    int64_t bias = rq->bias[q], zero = rq->zero, lim = (int64_t)1 << 60;
    *clo = bs_clamp64a(rq->lo, bs_cmin(yt), bs_cmax(yt)); *chi = bs_clamp64a(rq->hi, bs_cmin(yt), bs_cmax(yt));
    if (rq->lo > rq->hi || !(n >= 1 && n <= 59 && bias > -lim && bias < lim && zero > -(lim >> n) && zero < (lim >> n))) return 0;
    *B = bias + ((int64_t)1 << (n - 1)) + zero * ((int64_t)1 << n);
    return 1;
}

static inline void bs_vepi_setup(const bs_avx2_job *j, size_t c, int32_t corr, bs_vepi *e) {
    const bs_requant_params *rq = j->rq;
    /* each field set once (no memset: the depthwise kernel sets up every channel of its small planes) */
    const __m512i z = _mm512_setzero_si512();
    e->corr = _mm512_set1_epi32(corr);
    e->c = c;
    e->M = e->B = e->Z = e->LO = e->HI = z;
    e->sh = e->sh1 = _mm_setzero_si128();
    if (!rq) { e->mode = 0; return; }
    size_t q = rq->count == 1 ? 0 : c;
    int32_t n = rq->n[q];
    if (rq->lo > rq->hi || n >= 64) { e->mode = 3; return; }   /* never produced by the lowering */
    int64_t clo, chi, B, bias = rq->bias[q], zero = rq->zero;
    e->M = _mm512_set1_epi64(rq->m[q]);
    if (bs_vepi_int32_form(rq, q, j->yt, &B, &clo, &chi)) {
        /* u = acc m + bias + 2^(n-1) + zero 2^n never wraps; floor(u / 2^n): n >= 32, its high dword shifted by
         * n - 32 (mode 4, bounds in 32-bit lanes); else u >> n in its 64-bit lane, clamped there (mode 5) */
        e->B = _mm512_set1_epi64(B);
        if (n >= 32) { e->LO = _mm512_set1_epi32((int32_t)clo); e->HI = _mm512_set1_epi32((int32_t)chi); }
        else { e->LO = _mm512_set1_epi64(clo); e->HI = _mm512_set1_epi64(chi); }
        e->sh = _mm_cvtsi32_si128(n >= 32 ? n - 32 : n);
        e->mode = n >= 32 ? 4 : 5;
        return;
    }
    e->LO = _mm512_set1_epi64(clo); e->HI = _mm512_set1_epi64(chi);
    e->B = _mm512_set1_epi64(bias); e->Z = _mm512_set1_epi64(zero);
    e->sh = _mm_cvtsi32_si128(n); e->sh1 = _mm_cvtsi32_si128(n > 0 ? n - 1 : 0);
    e->mode = n > 0 ? 1 : 2;
}

/* floor(a / b), b != 0, a / b not INT64_MIN / -1. */
static inline int64_t bs_floordiv64(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* Epilogues whose task serves fewer outputs per channel keep modes 4 / 5: the thresholds' set-up (three divisions)
 * would cost more than it saves. */
#ifndef BS_VTHR_MIN_OUT
#define BS_VTHR_MIN_OUT 128
#endif

/* The int32 form (modes 4, 5) as thresholds (mode 6) where its result spans at most 4 values, as a 2-bit activation's
 * does: y(a) = clamp(floor((a m + B) / 2^n), clo, chi) is monotonic in a (the form never wraps), so it is y(INT32_MIN)
 * plus (m > 0) or minus (m < 0) the count of the at most chi - clo steps that a is past, each one compare and one
 * masked add: 7 vector operations instead of 11 or 14. Step v (clo < v <= chi), m > 0: y(a) >= v iff a m >= v 2^n - B,
 * iff a > ceil((v 2^n - B) / m) - 1; m < 0: y(a) >= v iff a <= floor((v 2^n - B) / m), so y = chi - #{v : a > that}.
 * A step outside int32 is never taken (U = INT32_MAX) or always (folded into y0). Byte containers and n <= 52: then
 * |v 2^n| < 2^61 and |B| < 2^62, so the arithmetic stays in int64. Callers take it for jobs bs_vthr_job admits. */
static inline void bs_vepi_thresholds_set(const bs_avx2_job *j, bs_vepi *e) {
    if (e->mode != 4 && e->mode != 5) return;
    const bs_requant_params *rq = j->rq;
    size_t q = rq->count == 1 ? 0 : e->c;
    int64_t B, clo, chi;
    if ((j->yt != BS_T_U8 && j->yt != BS_T_I8) || rq->n[q] > 52) return;
    if (!bs_vepi_int32_form(rq, q, j->yt, &B, &clo, &chi) || chi - clo > 3) return;
    int32_t n = rq->n[q], m = rq->m[q], d = m > 0 ? 1 : -1;
    int64_t y0 = m > 0 ? clo : chi, u[3] = {INT32_MAX, INT32_MAX, INT32_MAX};
    if (m == 0) {   /* constant: clamp(floor(B / 2^n)) */
        int64_t f = bs_floordiv64(B, (int64_t)1 << n);
        y0 = f < clo ? clo : (f > chi ? chi : (int64_t)f);
    } else
        for (int64_t v = clo + 1, i = 0; v <= chi; v++, i++) {
            int64_t r = v * ((int64_t)1 << n) - B, t = m > 0 ? -bs_floordiv64(-r, m) - 1 : bs_floordiv64(r, m);   /* a > t */
            if (t < INT32_MIN) y0 += d;   /* every int32 a is past it */
            else if (t < INT32_MAX) u[i] = t;
        }
    e->M = _mm512_set1_epi32((int32_t)u[0]); e->B = _mm512_set1_epi32((int32_t)u[1]); e->Z = _mm512_set1_epi32((int32_t)u[2]);
    e->LO = _mm512_set1_epi32((int32_t)y0); e->HI = _mm512_set1_epi32(d);
    e->mode = 6;
}

/* Whether a job's epilogues may take the thresholds form at all: the Requant's [lo, hi] in a byte container spans
 * at most 4 values (a per-job property: lo and hi are the Requant's, not a channel's) and a channel's set-up serves
 * nout >= BS_VTHR_MIN_OUT outputs. */
static inline int bs_vthr_job(const bs_avx2_job *j, size_t nout) {
    if (!j->rq || (j->yt != BS_T_U8 && j->yt != BS_T_I8) || j->rq->lo > j->rq->hi || nout < BS_VTHR_MIN_OUT) return 0;
    int64_t clo = bs_clamp64a(j->rq->lo, bs_cmin(j->yt), bs_cmax(j->yt)), chi = bs_clamp64a(j->rq->hi, bs_cmin(j->yt), bs_cmax(j->yt));
    return chi - clo <= 3;
}

/* bs_vepi_apply with the mode given (a constant in a caller specialized on it: its branches fold). */
static inline __attribute__((always_inline)) __m512i bs_vepi_apply_mode(const bs_avx2_job *j, const bs_vepi *e, __m512i acc, int32_t mode) {
    acc = _mm512_sub_epi32(acc, e->corr);
    if (mode == 0) return acc;
    if (mode == 3) {   /* the scalar reference order, clamped to the container like bs_store_scalar */
        int32_t res[16], t = j->yt;
        _mm512_storeu_si512((void *)res, acc);
        for (size_t i = 0; i < 16; i++) {
            int64_t v = bs_requant_scalar(res[i], j->rq, e->c);
            res[i] = (int32_t)(t == BS_T_I8 ? bs_clamp64a(v, INT8_MIN, INT8_MAX)
                             : t == BS_T_U8 ? bs_clamp64a(v, 0, UINT8_MAX) : bs_clamp64a(v, INT32_MIN, INT32_MAX));
        }
        return _mm512_loadu_si512((const void *)res);
    }
    if (mode == 6) {   /* LO + HI [acc > M] + HI [acc > B] + HI [acc > Z] */
        __m512i y = _mm512_mask_add_epi32(e->LO, _mm512_cmpgt_epi32_mask(acc, e->M), e->LO, e->HI);
        y = _mm512_mask_add_epi32(y, _mm512_cmpgt_epi32_mask(acc, e->B), y, e->HI);
        return _mm512_mask_add_epi32(y, _mm512_cmpgt_epi32_mask(acc, e->Z), y, e->HI);
    }
    __m512i v0 = _mm512_add_epi64(_mm512_mul_epi32(acc, e->M), e->B);
    __m512i v1 = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(acc, 32), e->M), e->B);
    if (mode == 4) {
        __m512i H = _mm512_mask_blend_epi32((__mmask16)0xAAAA, _mm512_srli_epi64(v0, 32), v1);
        return _mm512_min_epi32(_mm512_max_epi32(_mm512_sra_epi32(H, e->sh), e->LO), e->HI);
    }
    if (mode == 5) {   /* 14 operations (the 32-bit halves' way, with its overflow tests, had 19: 2-bit profiles,
                        * whose larger multipliers give n < 32, ran MobileNetV2 1.3x slower than 8-bit ones) */
        v0 = _mm512_min_epi64(_mm512_max_epi64(_mm512_sra_epi64(v0, e->sh), e->LO), e->HI);
        v1 = _mm512_min_epi64(_mm512_max_epi64(_mm512_sra_epi64(v1, e->sh), e->LO), e->HI);
        return _mm512_mask_blend_epi32((__mmask16)0xAAAA, v0, _mm512_slli_epi64(v1, 32));
    }
    if (mode == 1) {
        const __m512i one = _mm512_set1_epi64(1);
        v0 = _mm512_add_epi64(_mm512_sra_epi64(v0, e->sh), _mm512_and_si512(_mm512_srl_epi64(v0, e->sh1), one));
        v1 = _mm512_add_epi64(_mm512_sra_epi64(v1, e->sh), _mm512_and_si512(_mm512_srl_epi64(v1, e->sh1), one));
    }
    v0 = _mm512_min_epi64(_mm512_max_epi64(_mm512_add_epi64(v0, e->Z), e->LO), e->HI);
    v1 = _mm512_min_epi64(_mm512_max_epi64(_mm512_add_epi64(v1, e->Z), e->LO), e->HI);
    return _mm512_mask_blend_epi32((__mmask16)0xAAAA, v0, _mm512_slli_epi64(v1, 32));
}

static inline __m512i bs_vepi_apply(const bs_avx2_job *j, const bs_vepi *e, __m512i acc) { return bs_vepi_apply_mode(j, e, acc, e->mode); }

/* Stores lanes [i0, i1) of the 16 results r32 at y[off + (i - i0) * pstride] (in the job's output container). */
static inline void bs_vstore16(const bs_avx2_job *j, __m512i r32, size_t off, size_t pstride, int32_t i0, int32_t i1) {
    int32_t t = j->rq ? j->yt : BS_T_I32;
    __mmask16 mk = (__mmask16)(((1u << i1) - 1u) & ~((1u << i0) - 1u));
    if (t == BS_T_I32) {
        int32_t *y = (int32_t *)j->y;
        if (pstride == 1) { _mm512_mask_storeu_epi32(y + off - i0, mk, r32); return; }   /* lanes < i0: not written */
        int32_t res[16];
        _mm512_storeu_si512((void *)res, r32);
        for (int32_t i = i0; i < i1; i++) y[off + (size_t)(i - i0) * pstride] = res[i];
        return;
    }
    __m128i b8 = _mm512_cvtepi32_epi8(r32);   /* in the container's range already: truncation is exact */
    unsigned char *yb = (unsigned char *)j->y;
    if (pstride == 1) { _mm_mask_storeu_epi8(yb + off - i0, mk, b8); return; }
    unsigned char bytes[16];
    _mm_storeu_si128((__m128i *)bytes, b8);
    for (int32_t i = i0; i < i1; i++) yb[off + (size_t)(i - i0) * pstride] = bytes[i];
}



/* ---- the GEMM micro-kernel: P blocks of 16 pixels (P = 4: MR = 64) x 4 output channels, k in groups of 4 ----
 * a: the first pixel block, the next ones every `bstride` bytes; w: kg groups of [4 channels][4 k]. k-group q of a
 * block is 64 bytes at QOFF from the block: q * 64 (the interleaved copy; LOAD aligned) or, the direct path, voff[q]
 * (its phase planes; LOAD unaligned). */
/* Software prefetch of the weight panel BS_VWPF bytes (128 k-groups) ahead. Layers with few pixel tiles (ResNet-18's
 * 7x7 and 14x14 stages: 1-4 tiles, 1-2 MB of weights) read each weight once per call from L3 or memory, and the
 * hardware prefetcher does not keep up with the stream interleaved with the activation loads: ResNet-18 ran 7 %
 * faster with it (1 and 2 threads, A/B in one process; 1024-8192 bytes all alike, 512 less), ResNet-20 and
 * MobileNetV2 unchanged. A prefetch past the panel's end is harmless (prefetches do not fault). */
#ifndef BS_VWPF
#define BS_VWPF 2048
#endif
#define BS_VKERNEL(NAME, P, QOFF, LOAD)                                                                            \
static inline void NAME(const unsigned char *a, size_t bstride, const int32_t *voff, const unsigned char *w, int32_t kg, \
                        __m512i acc[16]) {                                                                          \
    (void)voff;                                                                                                     \
    __m512i c00 = _mm512_setzero_si512(), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00, c13 = c00; \
    __m512i c20 = c00, c21 = c00, c22 = c00, c23 = c00, c30 = c00, c31 = c00, c32 = c00, c33 = c00;              \
    const unsigned char *a0 = a, *a1 = a + bstride, *a2 = a + 2 * bstride, *a3 = a + 3 * bstride;                 \
    for (int32_t q = 0; q < kg; q++) {                                                                              \
        /* 4 broadcast weights, then each pixel block loaded once for its 4 vpdpbusd (16 accumulators + 4 + 1 \
         * registers; the activations must not be reloaded per channel: the load port would bound the loop) */    \
        const int32_t *wq = (const int32_t *)(w + (size_t)q * 16);                                                  \
        _mm_prefetch((const char *)wq + BS_VWPF, _MM_HINT_T0);                                                      \
        const __m512i b0 = _mm512_set1_epi32(wq[0]), b1 = _mm512_set1_epi32(wq[1]);                                 \
        const __m512i b2 = _mm512_set1_epi32(wq[2]), b3 = _mm512_set1_epi32(wq[3]);                                 \
        __m512i x = LOAD((const void *)(a0 + (QOFF)));                                                             \
        c00 = _mm512_dpbusd_epi32(c00, x, b0); c01 = _mm512_dpbusd_epi32(c01, x, b1);                              \
        c02 = _mm512_dpbusd_epi32(c02, x, b2); c03 = _mm512_dpbusd_epi32(c03, x, b3);                              \
        if (P > 1) {                                                                                                \
            x = LOAD((const void *)(a1 + (QOFF)));                                                                 \
            c10 = _mm512_dpbusd_epi32(c10, x, b0); c11 = _mm512_dpbusd_epi32(c11, x, b1);                          \
            c12 = _mm512_dpbusd_epi32(c12, x, b2); c13 = _mm512_dpbusd_epi32(c13, x, b3);                          \
        }                                                                                                           \
        if (P > 2) {                                                                                                \
            x = LOAD((const void *)(a2 + (QOFF)));                                                                 \
            c20 = _mm512_dpbusd_epi32(c20, x, b0); c21 = _mm512_dpbusd_epi32(c21, x, b1);                          \
            c22 = _mm512_dpbusd_epi32(c22, x, b2); c23 = _mm512_dpbusd_epi32(c23, x, b3);                          \
        }                                                                                                           \
        if (P > 3) {                                                                                                \
            x = LOAD((const void *)(a3 + (QOFF)));                                                                 \
            c30 = _mm512_dpbusd_epi32(c30, x, b0); c31 = _mm512_dpbusd_epi32(c31, x, b1);                          \
            c32 = _mm512_dpbusd_epi32(c32, x, b2); c33 = _mm512_dpbusd_epi32(c33, x, b3);                          \
        }                                                                                                           \
    }                                                                                                               \
    acc[0] = c00; acc[1] = c01; acc[2] = c02; acc[3] = c03; acc[4] = c10; acc[5] = c11; acc[6] = c12; acc[7] = c13; \
    acc[8] = c20; acc[9] = c21; acc[10] = c22; acc[11] = c23; acc[12] = c30; acc[13] = c31; acc[14] = c32; acc[15] = c33; \
}
BS_VKERNEL(bs_qu8s8_gemm_rq64_64x4c4__avx512vnni, 4, (size_t)q * 64, _mm512_load_si512)
BS_VKERNEL(bs_qu8s8_gemm_rq64_48x4c4__avx512vnni, 3, (size_t)q * 64, _mm512_load_si512)
BS_VKERNEL(bs_qu8s8_gemm_rq64_32x4c4__avx512vnni, 2, (size_t)q * 64, _mm512_load_si512)
BS_VKERNEL(bs_qu8s8_gemm_rq64_16x4c4__avx512vnni, 1, (size_t)q * 64, _mm512_load_si512)
/* the direct path's: named for the planes they read (c4p: 4 channels per 32-bit lane of a phase plane) */
BS_VKERNEL(bs_qu8s8_conv_c4p_rq64_64x4c4__avx512vnni, 4, (ptrdiff_t)voff[q], _mm512_loadu_si512)
BS_VKERNEL(bs_qu8s8_conv_c4p_rq64_48x4c4__avx512vnni, 3, (ptrdiff_t)voff[q], _mm512_loadu_si512)
BS_VKERNEL(bs_qu8s8_conv_c4p_rq64_32x4c4__avx512vnni, 2, (ptrdiff_t)voff[q], _mm512_loadu_si512)
BS_VKERNEL(bs_qu8s8_conv_c4p_rq64_16x4c4__avx512vnni, 1, (ptrdiff_t)voff[q], _mm512_loadu_si512)
#undef BS_VKERNEL

/* ---- the channels-in-lanes micro-kernel (C16 weights): NR consecutive output pixels (1..7) x V vectors of 16
 * output channels (1, 2 or 4: up to 7 x 64), k in groups of 4. Per k-group, the V weight vectors are loaded and each
 * pixel's 4 activation bytes broadcast (28 accumulators at 7 x 64: 28 vpdpbusd per 4 vector loads and 7 broadcasts).
 * Every lane is an output: where the pixel-lane kernel computes a plane's junk columns and tail lanes (ResNet-18's
 * 7 x 7 layers: 64 lanes for 49 pixels), this one does not. a: the first pixel's k-group 0; its k-group q at
 * QOFF(q) from it (the direct path: voff[q]; the interleaved copy: q * 64), the next pixel 4 bytes on. w: vector 0's
 * k-group 0 ([16 channels][4 k] per k-group), vector v at v * wstride. Accumulators go to out[i * 64 + v * 16]. ---- */
#define BS_C16_PX(i)                                                                                                \
    if (NR > i) {                                                                                                   \
        const __m512i x = _mm512_set1_epi32(*(const int32_t *)(const void *)(ap + 4 * i));                          \
        c0##i = _mm512_dpbusd_epi32(c0##i, x, w0);                                                                  \
        if (V > 1) c1##i = _mm512_dpbusd_epi32(c1##i, x, w1);                                                      \
        if (V > 2) { c2##i = _mm512_dpbusd_epi32(c2##i, x, w2); c3##i = _mm512_dpbusd_epi32(c3##i, x, w3); }        \
    }
#define BS_C16_ST(i)                                                                                                \
    if (NR > i) {                                                                                                   \
        _mm512_storeu_si512((void *)(out + i * 64), c0##i);                                                         \
        if (V > 1) _mm512_storeu_si512((void *)(out + i * 64 + 16), c1##i);                                         \
        if (V > 2) { _mm512_storeu_si512((void *)(out + i * 64 + 32), c2##i); _mm512_storeu_si512((void *)(out + i * 64 + 48), c3##i); } \
    }
static inline __attribute__((always_inline)) void bs_vc16_kernel(const unsigned char *a, const int32_t *voff, int32_t direct,
                                                                 const unsigned char *w, size_t wstride, int32_t kg,
                                                                 int32_t V, int32_t NR, int32_t *out) {
    const __m512i z = _mm512_setzero_si512();
    __m512i c00 = z, c01 = z, c02 = z, c03 = z, c04 = z, c05 = z, c06 = z, c10 = z, c11 = z, c12 = z, c13 = z, c14 = z, c15 = z, c16 = z;
    __m512i c20 = z, c21 = z, c22 = z, c23 = z, c24 = z, c25 = z, c26 = z, c30 = z, c31 = z, c32 = z, c33 = z, c34 = z, c35 = z, c36 = z;
    for (int32_t q = 0; q < kg; q++) {
        const unsigned char *ap = a + (direct ? (ptrdiff_t)voff[q] : (ptrdiff_t)q * 64);
        const unsigned char *wq = w + (size_t)q * 64;
        const __m512i w0 = _mm512_load_si512((const void *)wq);
        const __m512i w1 = V > 1 ? _mm512_load_si512((const void *)(wq + wstride)) : z;
        const __m512i w2 = V > 2 ? _mm512_load_si512((const void *)(wq + 2 * wstride)) : z;
        const __m512i w3 = V > 2 ? _mm512_load_si512((const void *)(wq + 3 * wstride)) : z;
        BS_C16_PX(0) BS_C16_PX(1) BS_C16_PX(2) BS_C16_PX(3) BS_C16_PX(4) BS_C16_PX(5) BS_C16_PX(6)
    }
    BS_C16_ST(0) BS_C16_ST(1) BS_C16_ST(2) BS_C16_ST(3) BS_C16_ST(4) BS_C16_ST(5) BS_C16_ST(6)
}
#undef BS_C16_PX
#undef BS_C16_ST
/* One function per tile (each loop alone in its function: inlined into one, GCC spilled the accumulators), the
 * direct path's (c4p: offsets voff) and the interleaved copy's (gemm: k-group q at q * 64), in tables by
 * [vectors 1, 2, 4 -> 0, 1, 2][pixels - 1]. */
typedef void (*bs_vc16_fn)(const unsigned char *a, const int32_t *voff, const unsigned char *w, size_t wstride, int32_t kg, int32_t *out);
#define BS_C16_FN(NAME, V, NR, DIRECT)                                                                              \
static __attribute__((noinline)) void NAME(const unsigned char *a, const int32_t *voff, const unsigned char *w,      \
                                           size_t wstride, int32_t kg, int32_t *out) {                              \
    bs_vc16_kernel(a, voff, DIRECT, w, wstride, kg, V, NR, out);                                                    \
}
#define BS_C16_FNS(V, C)                                                                                            \
    BS_C16_FN(bs_qu8s8_conv_c4p_1x##C##c4__avx512vnni, V, 1, 1) BS_C16_FN(bs_qu8s8_conv_c4p_2x##C##c4__avx512vnni, V, 2, 1) \
    BS_C16_FN(bs_qu8s8_conv_c4p_3x##C##c4__avx512vnni, V, 3, 1) BS_C16_FN(bs_qu8s8_conv_c4p_4x##C##c4__avx512vnni, V, 4, 1) \
    BS_C16_FN(bs_qu8s8_conv_c4p_5x##C##c4__avx512vnni, V, 5, 1) BS_C16_FN(bs_qu8s8_conv_c4p_6x##C##c4__avx512vnni, V, 6, 1) \
    BS_C16_FN(bs_qu8s8_conv_c4p_7x##C##c4__avx512vnni, V, 7, 1)                                                  \
    BS_C16_FN(bs_qu8s8_gemm_1x##C##c4__avx512vnni, V, 1, 0) BS_C16_FN(bs_qu8s8_gemm_2x##C##c4__avx512vnni, V, 2, 0) \
    BS_C16_FN(bs_qu8s8_gemm_3x##C##c4__avx512vnni, V, 3, 0) BS_C16_FN(bs_qu8s8_gemm_4x##C##c4__avx512vnni, V, 4, 0) \
    BS_C16_FN(bs_qu8s8_gemm_5x##C##c4__avx512vnni, V, 5, 0) BS_C16_FN(bs_qu8s8_gemm_6x##C##c4__avx512vnni, V, 6, 0) \
    BS_C16_FN(bs_qu8s8_gemm_7x##C##c4__avx512vnni, V, 7, 0)
BS_C16_FNS(1, 16)
BS_C16_FNS(2, 32)
BS_C16_FNS(4, 64)
#define BS_C16_ROW(P, C) {bs_qu8s8_##P##_1x##C##c4__avx512vnni, bs_qu8s8_##P##_2x##C##c4__avx512vnni, bs_qu8s8_##P##_3x##C##c4__avx512vnni, \
    bs_qu8s8_##P##_4x##C##c4__avx512vnni, bs_qu8s8_##P##_5x##C##c4__avx512vnni, bs_qu8s8_##P##_6x##C##c4__avx512vnni, bs_qu8s8_##P##_7x##C##c4__avx512vnni}
static const bs_vc16_fn bs_vc16_direct[3][7] = {BS_C16_ROW(conv_c4p, 16), BS_C16_ROW(conv_c4p, 32), BS_C16_ROW(conv_c4p, 64)};
static const bs_vc16_fn bs_vc16_gemm[3][7] = {BS_C16_ROW(gemm, 16), BS_C16_ROW(gemm, 32), BS_C16_ROW(gemm, 64)};
#undef BS_C16_ROW
#undef BS_C16_FNS
#undef BS_C16_FN

/* A 16 x 16 transpose of int32: r[i] lane j -> r[j] lane i (4 x 4 dword transposes within 128-bit lanes, then of the
 * lanes). */
static inline void bs_vtranspose16(__m512i r[16]) {
    __m512i s[16];
    for (int g = 0; g < 4; g++) {
        __m512i t0 = _mm512_unpacklo_epi32(r[4 * g], r[4 * g + 1]), t1 = _mm512_unpackhi_epi32(r[4 * g], r[4 * g + 1]);
        __m512i t2 = _mm512_unpacklo_epi32(r[4 * g + 2], r[4 * g + 3]), t3 = _mm512_unpackhi_epi32(r[4 * g + 2], r[4 * g + 3]);
        s[4 * g] = _mm512_unpacklo_epi64(t0, t2); s[4 * g + 1] = _mm512_unpackhi_epi64(t0, t2);
        s[4 * g + 2] = _mm512_unpacklo_epi64(t1, t3); s[4 * g + 3] = _mm512_unpackhi_epi64(t1, t3);
    }
    /* s[4 g + m], 128-bit lane L: rows 4 g .. 4 g + 3 of column 4 L + m */
    for (int m = 0; m < 4; m++) {
        __m512i d[4];
        bs_vlanes4x4(s[m], s[4 + m], s[8 + m], s[12 + m], d);
        r[m] = d[0]; r[4 + m] = d[1]; r[8 + m] = d[2]; r[12 + m] = d[3];
    }
}

/* The depthwise kernel's row epilogue (its accumulators come from bs_dwconv_run_with__avx2): 16 lanes at a time. */
static void bs_vdw_row_epilogue(const bs_avx2_job *j, const int32_t *acc, size_t c, size_t off, size_t count) {
    bs_vepi e;
    bs_vepi_setup(j, c, 0, &e);
    for (size_t i = 0; i < count; i += 16)
        bs_vstore16(j, bs_vepi_apply(j, &e, _mm512_loadu_si512((const void *)(acc + i))), off + i, 1, 0,
                    count - i < 16 ? (int32_t)(count - i) : 16);
}

/* Five tap pairs (bs_dw_5pairs__avx2) unrolled, their weight pairs broadcast once: 32 outputs per step. */
static void bs_qs16s16_dwconv_5pairs__avx512vnni(const int16_t *const pa[5], const int16_t *const pb[5], const int32_t wp[5],
                                                 int32_t n, int32_t *out) {
    const __m512i i0 = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0), i1 = _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4);
    const __m512i W0 = _mm512_set1_epi32(wp[0]), W1 = _mm512_set1_epi32(wp[1]), W2 = _mm512_set1_epi32(wp[2]);
    const __m512i W3 = _mm512_set1_epi32(wp[3]), W4 = _mm512_set1_epi32(wp[4]);
    for (int32_t o = 0; o < n; o += 32) {
        __m512i a0 = _mm512_setzero_si512(), a1 = a0;
#define BS_VDW_PAIR(q, W)                                                                                     \
        {                                                                                                     \
            __m512i va = _mm512_loadu_si512((const void *)(pa[q] + o)), vb = _mm512_loadu_si512((const void *)(pb[q] + o)); \
            a0 = _mm512_dpwssd_epi32(a0, _mm512_unpacklo_epi16(va, vb), W);                                   \
            a1 = _mm512_dpwssd_epi32(a1, _mm512_unpackhi_epi16(va, vb), W);                                   \
        }
        BS_VDW_PAIR(0, W0) BS_VDW_PAIR(1, W1) BS_VDW_PAIR(2, W2) BS_VDW_PAIR(3, W3) BS_VDW_PAIR(4, W4)
#undef BS_VDW_PAIR
        _mm512_storeu_si512((void *)(out + o), _mm512_permutex2var_epi64(a0, i0, a1));
        _mm512_storeu_si512((void *)(out + o + 16), _mm512_permutex2var_epi64(a0, i1, a1));
    }
}

/* The depthwise row kernel: 32 outputs at a time, two taps per vpdpwssd (int16 pairs into int32, wrapping like
 * vpmaddwd + vpaddd: exact, the weights being int8). acc0 holds outputs 0-3, 8-11, 16-19, 24-27 (the unpack order). */
static void bs_qs16s16_dwconv_row__avx512vnni(const int16_t *const *rows, int32_t nrows, const int32_t *off,
                                               const int32_t *wpair, int32_t npairs, int32_t ow, int32_t *acc) {
    const int16_t *pa[5], *pb[5];
    int32_t wp[5];
    if (bs_dw_5pairs__avx2(rows, nrows, off, wpair, npairs, pa, pb, wp)) { bs_qs16s16_dwconv_5pairs__avx512vnni(pa, pb, wp, ow, acc); return; }
    const __m512i i0 = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0), i1 = _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4);
    for (int32_t ow0 = 0; ow0 < ow; ow0 += 32) {
        __m512i acc0 = _mm512_setzero_si512(), acc1 = acc0;
        for (int32_t r = 0; r < nrows; r++) {
            const int16_t *row = rows[r];
            if (!row) continue;
            const int32_t *wp = wpair + (size_t)r * npairs, *op = off + (size_t)r * npairs * 2;
            for (int32_t q = 0; q < npairs; q++) {
                __m512i va = _mm512_loadu_si512((const void *)(row + op[2 * q] + ow0));
                __m512i vb = _mm512_loadu_si512((const void *)(row + op[2 * q + 1] + ow0));
                __m512i wv = _mm512_set1_epi32(wp[q]);
                acc0 = _mm512_dpwssd_epi32(acc0, _mm512_unpacklo_epi16(va, vb), wv);
                acc1 = _mm512_dpwssd_epi32(acc1, _mm512_unpackhi_epi16(va, vb), wv);
            }
        }
        _mm512_storeu_si512((void *)(acc + ow0), _mm512_permutex2var_epi64(acc0, i0, acc1));
        _mm512_storeu_si512((void *)(acc + ow0 + 16), _mm512_permutex2var_epi64(acc0, i1, acc1));
    }
}

/* ---- depthwise, u8 x s8 by vpdpbusd (VBMI) ----
 * Per channel and 16 outputs of an output row, for each kernel row: the 64 input bytes the 16 outputs read (one
 * masked load; columns outside the input, and rows outside it, read the zero point, whose products the per-channel
 * correction xz sum(w) cancels exactly -- the reference skips those taps), vpermb puts into dword i the taps
 * 4 g .. 4 g + 3 of column group g of output i (input columns i sw + (4 g + t) dw), and vpdpbusd multiplies them by
 * the broadcast weight dword of that row and group: kh ceil(kw / 4) vpermb + vpdpbusd per 16 outputs, no int16 copy
 * of the input (the int16 row kernels' way, 1.4-3x slower on the Zen 4). u8 x s8 products summed in int32 are exact (s8 input:
 * its u8 view x + 128, the zero point with it). Rows of at most 8 outputs go two to a vector (vpermi2b over both
 * rows' windows). The Requant in registers (bs_vepi_apply). */
#if defined(__AVX512VBMI__) && !defined(BS_NO_VDW)   /* BS_NO_VDW: the kernel checker's switch to the int16 row kernels */
#define BS_VDW 1
#define BS_VDW_MAXW 64   /* weight dwords (kernel rows x column groups) */

/* 1 when the depthwise job (bs_dwconv_tasks__avx2 takes it) runs in bs_vdw_run. */
static int bs_vdw_ok(const bs_avx2_job *j) {
    const bs_window *g = &j->conv->win;
    if (((const bs_vpacked *)j->packed)->mode != 1) return 0;   /* S8C4: int8 weights */
    int64_t xzu = (int64_t)j->p->x_zero + (j->xt == BS_T_U8 ? 0 : 128);
    if (xzu < 0 || xzu > 255) return 0;
    int64_t span = (int64_t)((g->ow <= 8 ? 8 : 16) - 1) * g->sw + (int64_t)(g->kw - 1) * g->dw + 1;
    return span <= 64 && (int64_t)g->kh * ((g->kw + 3) / 4) <= BS_VDW_MAXW;
}

/* The in-row bytes of the 64 from column col0 of a row of w columns. */
static inline __mmask64 bs_vdw_mask(int64_t col0, int64_t w) {
    int64_t lo = col0 < 0 ? -col0 : 0, hi = w - col0 > 64 ? 64 : w - col0;
    if (lo >= 64 || hi <= lo) return 0;
    uint64_t m = hi >= 64 ? ~(uint64_t)0 : ((uint64_t)1 << hi) - 1;
    return (__mmask64)(m & ~(((uint64_t)1 << lo) - 1));
}

/* The per-layer part of the depthwise kernel: geometry in locals (the byte stores of y may alias anything the
 * compiler would otherwise reload), the vpermb indices, the padding row and each 16-output block's load mask. */
typedef struct bs_vdw {
    int64_t H, W, OH, OW, sh, ph, dh;
    int32_t i32;
    const unsigned char *pad;                 /* W bytes of the padding as stored: the rows outside the input */
    __m512i XZ, FLIP;                         /* the zero point as u8; 0x80 for s8 input (its u8 view), else 0 */
    __m512i IDX[BS_VDW_MAXW];
    __mmask64 mk[BS_DW_MAXW / 16];            /* per block of 16 outputs: its input bytes within the row */
    int64_t col0[BS_DW_MAXW / 16];
} bs_vdw;

/* Input row ih of channel plane xc (the padding row outside the plane); its 64 bytes from col0 (mask mk: the padding
 * outside the row) in their u8 view; the store of n (mask sm) results of a row at yc + off. Every 3 x 3 instance's. */
static inline const unsigned char *bs_vdw_rowptr(const unsigned char *xc, int64_t ih, int64_t H, int64_t W, const unsigned char *pad) {
    return ih >= 0 && ih < H ? xc + ih * W : pad;
}
static inline __m512i bs_vdw_load(__m512i RAW, __m512i FLIP, __mmask64 mk, const unsigned char *p) {
    return _mm512_xor_si512(_mm512_mask_loadu_epi8(RAW, mk, (const void *)p), FLIP);
}
static inline void bs_vdw_store(int32_t i32, void *yc, size_t off, __mmask16 sm, __m512i res) {
    if (i32) _mm512_mask_storeu_epi32((int32_t *)yc + off, sm, res);
    else _mm_mask_storeu_epi8((unsigned char *)yc + off, sm, _mm512_cvtepi32_epi8(res));
}

/* One channel. KH, G, TWO and the Requant's epilogue mode (MODE >= 0) are constants in the 3 x 3 instances (weights
 * and indices in registers, the row loop unrolled, the epilogue's branches folded); the job's in the general one. */
static inline __attribute__((always_inline)) void bs_vdw_channel(const bs_avx2_job *j, const bs_vdw *d, const bs_vepi *e,
                                                                 const int32_t *wd, int32_t KH, int32_t G, int32_t TWO,
                                                                 int32_t MODE, const unsigned char *xc, void *yc) {
    const int64_t H = d->H, W = d->W, OH = d->OH, OW = d->OW, sh = d->sh, ph = d->ph, dh = d->dh;
    const int32_t i32 = d->i32;
    const __m512i FLIP = d->FLIP, RAW = _mm512_xor_si512(d->XZ, FLIP);   /* RAW: the padding as stored */
    const unsigned char *pad = d->pad;
    __m512i Wv[BS_VDW_MAXW], I[4];
    for (int32_t q = 0; q < KH * G; q++) Wv[q] = _mm512_set1_epi32(wd[q]);
    for (int32_t q = 0; q < G && q < 4; q++) I[q] = d->IDX[q];
    const unsigned char *rp[2][BS_VDW_MAXW];
    for (int64_t oh = 0; oh < OH; oh += TWO ? 2 : 1) {
        int32_t second = TWO && oh + 1 < OH;
        for (int32_t r = 0; r < KH; r++) {
            int64_t ih = oh * sh - ph + r * dh, ih1 = ih + sh;
            rp[0][r] = bs_vdw_rowptr(xc, ih, H, W, pad);
            if (TWO) rp[1][r] = second ? bs_vdw_rowptr(xc, ih1, H, W, pad) : pad;
        }
        int32_t nout = TWO ? (second ? 2 * (int32_t)OW : (int32_t)OW) : 16;
        for (int64_t ow0 = 0, b = 0; ow0 < OW; ow0 += 16, b++) {
            const __mmask64 mk = d->mk[b];
            const int64_t col0 = d->col0[b];
            __m512i acc = _mm512_setzero_si512();
            for (int32_t r = 0; r < KH; r++) {
                __m512i v = bs_vdw_load(RAW, FLIP, mk, rp[0][r] + col0), v1 = v;
                if (TWO) v1 = bs_vdw_load(RAW, FLIP, mk, rp[1][r] + col0);
                for (int32_t q = 0; q < G; q++) {
                    __m512i ix = q < 4 ? I[q] : d->IDX[q];
                    __m512i t = TWO ? _mm512_permutex2var_epi8(v, ix, v1) : _mm512_permutexvar_epi8(ix, v);
                    acc = _mm512_dpbusd_epi32(acc, t, Wv[r * G + q]);
                }
            }
            __m512i res = bs_vepi_apply_mode(j, e, acc, MODE >= 0 ? MODE : e->mode);
            int32_t n = nout;
            size_t off = (size_t)(oh * OW);
            if (TWO) {
                __mmask16 m = (__mmask16)((1u << OW) - 1);
                res = _mm512_maskz_compress_epi32((__mmask16)(m | (second ? m << 8 : 0)), res);
            } else {
                off += (size_t)ow0;
                if (OW - ow0 < 16) n = (int32_t)(OW - ow0);
            }
            bs_vdw_store(i32, yc, off, (__mmask16)((1u << n) - 1), res);
        }
    }
}

/* 3 x 3, stride SH (1 or 2), dilation 1, rows of more than 8 outputs (the common depthwise layers): BS_VDW_ROWS
 * output rows at a time, which read (BS_VDW_ROWS - 1) SH + 3 input rows, each loaded and permuted once (4 loads and
 * vpermb for 2 rows instead of 6 at stride 1, 5 at stride 2), and the rows' accumulators are independent chains in
 * one loop body, whose latencies (3 vpdpbusd, the Requant) overlap: MobileNetV2's stride-1 depthwise layers 15 %
 * faster (56 x 56: 20 %; per-layer timers, Zen 4). 4 rows were another 3 % faster on 56 x 56 and 112 x 112 planes and
 * 5 % slower on 14 x 14 ones. */
#define BS_VDW_ROWS 2
static inline __attribute__((always_inline)) void bs_vdw_channel_rows(const bs_avx2_job *j, const bs_vdw *d, const bs_vepi *e,
                                                                      const int32_t *wd, int32_t SH, int32_t MODE,
                                                                      const unsigned char *xc, void *yc) {
    enum { R = BS_VDW_ROWS, NI = (BS_VDW_ROWS - 1) * 2 + 3 };   /* NI: input rows at stride 2 (at most) */
    const int32_t ni = (R - 1) * SH + 3;
    const int64_t H = d->H, W = d->W, OH = d->OH, OW = d->OW, ph = d->ph;
    const int32_t i32 = d->i32, mode = MODE >= 0 ? MODE : e->mode;
    const __m512i FLIP = d->FLIP, RAW = _mm512_xor_si512(d->XZ, FLIP), I0 = d->IDX[0];
    const __m512i W0 = _mm512_set1_epi32(wd[0]), W1 = _mm512_set1_epi32(wd[1]), W2 = _mm512_set1_epi32(wd[2]);
    for (int64_t oh = 0; oh < OH; oh += R) {
        int32_t nr = OH - oh < R ? (int32_t)(OH - oh) : R;
        const unsigned char *rp[NI];
        for (int32_t r = 0; r < ni; r++) rp[r] = bs_vdw_rowptr(xc, oh * SH - ph + r, H, W, d->pad);
        for (int64_t ow0 = 0, b = 0; ow0 < OW; ow0 += 16, b++) {
            const __mmask64 mk = d->mk[b];
            const int64_t col0 = d->col0[b];
            __m512i t[NI], res[R];
            for (int32_t r = 0; r < ni; r++)
                t[r] = _mm512_permutexvar_epi8(I0, bs_vdw_load(RAW, FLIP, mk, rp[r] + col0));
            for (int32_t r = 0; r < R; r++)
                res[r] = bs_vepi_apply_mode(j, e, _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(),
                                            t[r * SH], W0), t[r * SH + 1], W1), t[r * SH + 2], W2), mode);
            size_t off = (size_t)(oh * OW + ow0);
            __mmask16 sm = (__mmask16)((1u << (OW - ow0 < 16 ? OW - ow0 : 16)) - 1);
            for (int32_t r = 0; r < nr; r++) bs_vdw_store(i32, yc, off + (size_t)r * OW, sm, res[r]);
        }
    }
}

/* 3 x 3, stride SH (1 or 2), dilation 1, rows of at most 8 outputs (7 x 7 and 14 x 14 planes): two vectors of two
 * output rows each (bs_vdw_channel's TWO layout: vpermi2b over both rows' windows, outputs compressed) per step, their
 * 3 SH + 3 input rows each loaded once and their accumulator chains independent; a row pair past the plane is
 * computed from the padding row and not stored. */
static inline __attribute__((always_inline)) void bs_vdw_channel_two_rows(const bs_avx2_job *j, const bs_vdw *d, const bs_vepi *e,
                                                                          const int32_t *wd, int32_t SH, int32_t MODE,
                                                                          const unsigned char *xc, void *yc) {
    enum { NI = 3 * 2 + 3 };
    const int64_t H = d->H, W = d->W, OH = d->OH, OW = d->OW, ph = d->ph;
    const int32_t i32 = d->i32, mode = MODE >= 0 ? MODE : e->mode, ni = 3 * SH + 3;
    const __m512i FLIP = d->FLIP, RAW = _mm512_xor_si512(d->XZ, FLIP), I0 = d->IDX[0];
    const __m512i W0 = _mm512_set1_epi32(wd[0]), W1 = _mm512_set1_epi32(wd[1]), W2 = _mm512_set1_epi32(wd[2]);
    const __mmask64 mk = d->mk[0];
    const int64_t col0 = d->col0[0];
    const __mmask16 m = (__mmask16)((1u << OW) - 1);
    for (int64_t oh = 0; oh < OH; oh += 4) {
        __m512i v[NI];
        for (int32_t r = 0; r < ni; r++) v[r] = bs_vdw_load(RAW, FLIP, mk, bs_vdw_rowptr(xc, oh * SH - ph + r, H, W, d->pad) + col0);
        __m512i res[2];
        for (int32_t p = 0; p < 2; p++) {   /* output rows oh + 2 p, oh + 2 p + 1 */
            const __m512i *a = v + 2 * p * SH, *b = v + (2 * p + 1) * SH;
            __m512i acc = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_permutex2var_epi8(a[0], I0, b[0]), W0);
            acc = _mm512_dpbusd_epi32(acc, _mm512_permutex2var_epi8(a[1], I0, b[1]), W1);
            acc = _mm512_dpbusd_epi32(acc, _mm512_permutex2var_epi8(a[2], I0, b[2]), W2);
            res[p] = bs_vepi_apply_mode(j, e, acc, mode);
        }
        for (int32_t p = 0; p < 2 && oh + 2 * p < OH; p++) {
            int32_t second = oh + 2 * p + 1 < OH, n = second ? 2 * (int32_t)OW : (int32_t)OW;
            __m512i r = _mm512_maskz_compress_epi32((__mmask16)(m | (second ? m << 8 : 0)), res[p]);
            bs_vdw_store(i32, yc, (size_t)((oh + 2 * p) * OW), (__mmask16)((1u << n) - 1), r);
        }
    }
}

/* A depthwise task, instantiated with and without the Requant's thresholds form (THR; bs_vthr_job): the 8-bit convs'
 * instance has neither its set-up nor its mode-6 channel kernels (in the same loop they had made it 3-10 % slower,
 * a call out of the loop to them 13-60 %: GCC then spills the loop's vectors). */
static inline __attribute__((always_inline)) void bs_vdw_task(const bs_avx2_job *j, int32_t task, int32_t THR) {
    const bs_window *g = &j->conv->win;
    const bs_vpacked *h = (const bs_vpacked *)j->packed;
    const int8_t *wpk = (const int8_t *)h + 64 + BS_VA64((size_t)h->groups * h->mg4 * 4);
    int32_t kh = g->kh, kw = g->kw, c0, c1;
    bs_dw_channels__avx2(j, task, &c0, &c1);
    int u8 = j->xt == BS_T_U8;
    int32_t xzu = j->p->x_zero + (u8 ? 0 : 128);
    bs_vdw d;
    d.H = g->h; d.W = g->w; d.OH = g->oh; d.OW = g->ow; d.sh = g->sh; d.ph = g->ph; d.dh = g->dh;
    int32_t G = (kw + 3) / 4, two = g->ow <= 8, rows = (g->sh == 1 || g->sh == 2) && g->dh == 1;
    d.i32 = !j->rq || j->yt == BS_T_I32;
    d.XZ = _mm512_set1_epi8((char)xzu);
    d.FLIP = _mm512_set1_epi8(u8 ? 0 : (char)0x80);
    unsigned char pad[BS_DW_BUF];   /* bs_dw_geometry: w <= BS_DW_BUF */
    memset(pad, xzu ^ (u8 ? 0 : 0x80), (size_t)g->w);
    d.pad = pad;
    /* vpermb / vpermi2b indices: byte 4 i + t of group q = output i's tap 4 q + t (weight 0 past kw) */
    for (int32_t q = 0; q < G; q++) {
        unsigned char b[64];
        for (int32_t i = 0; i < 16; i++)
            for (int32_t t = 0; t < 4; t++) {
                int32_t col = 4 * q + t < kw ? (4 * q + t) * g->dw : 0, o = two && i >= 8 ? i - 8 : i;
                b[4 * i + t] = (unsigned char)((two && i >= 8 ? 64 : 0) + o * g->sw + col);
            }
        d.IDX[q] = _mm512_loadu_si512((const void *)b);
    }
    for (int64_t ow0 = 0, b = 0; ow0 < g->ow; ow0 += 16, b++) {
        d.col0[b] = ow0 * g->sw - g->pw;
        d.mk[b] = bs_vdw_mask(d.col0[b], g->w);
    }
    size_t in_plane = (size_t)g->h * g->w, out_plane = (size_t)g->oh * g->ow, ysz = d.i32 ? 4 : 1;
    /* byte t of weight dword q = tap (row q / G, column 4 (q % G) + t): its place in the channel's packed k-groups
     * ([kg][4 channels][4 k]: tap kk at (kk / 4) 16 + kk % 4), -1 past kw */
    int32_t nw = kh * G, wof[BS_VDW_MAXW][4];
    for (int32_t q = 0; q < nw; q++)
        for (int32_t t = 0; t < 4; t++) {
            int32_t col = 4 * (q % G) + t, kk = q / G * kw + col;
            wof[q][t] = col < kw ? kk / 4 * 16 + kk % 4 : -1;
        }
    /* 3 x 3: each channel's 3 weight dwords by one vpermb of its 48 packed bytes, their sum by vpdpbusd with ones
     * (the scalar loop below had cost as much as a 7 x 7 channel's convolution) */
    int fast3 = kh == 3 && kw == 3 && h->kg == 3;
    __m512i widx = _mm512_setzero_si512();
    if (fast3) {
        unsigned char b[64] = {0};
        for (int32_t q = 0; q < 3; q++)
            for (int32_t t = 0; t < 4; t++) b[4 * q + t] = (unsigned char)(t < 3 ? wof[q][t] : 0);
        widx = _mm512_loadu_si512((const void *)b);
    }
    for (int32_t c = c0; c < c1; c++) {
        const int8_t *base = wpk + (size_t)c * h->kg * 16;
        int32_t wd[BS_VDW_MAXW], sum = 0;
        if (fast3) {
            __m512i v = _mm512_maskz_permutexvar_epi8((__mmask64)0x777, widx, _mm512_maskz_loadu_epi8((__mmask64)0xFFFFFFFFFFFFull, base));
            _mm_storeu_si128((__m128i *)wd, _mm512_castsi512_si128(v));
            sum = _mm512_mask_reduce_add_epi32((__mmask16)0x7, _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(1), v));
        } else
        for (int32_t q = 0; q < nw; q++) {
            uint32_t dw = 0;
            for (int32_t t = 0; t < 4; t++) {
                int32_t v = wof[q][t] < 0 ? 0 : base[wof[q][t]];
                sum += v;
                dw |= (uint32_t)(uint8_t)(int8_t)v << (8 * t);
            }
            wd[q] = (int32_t)dw;
        }
        bs_vepi e;
        bs_vepi_setup(j, (size_t)c, (int32_t)((uint32_t)xzu * (uint32_t)sum), &e);
        if (THR) bs_vepi_thresholds_set(j, &e);
        const unsigned char *xc = (const unsigned char *)j->x + (size_t)c * in_plane;
        void *yc = (unsigned char *)j->y + (size_t)c * out_plane * ysz;
        if (kh == 3 && G == 1) {   /* instances with the stride and the Requant's mode constant */
#define BS_VDW_MODES(F, SH) do { if (e.mode == 5) F(j, &d, &e, wd, SH, 5, xc, yc); else if (e.mode == 4) F(j, &d, &e, wd, SH, 4, xc, yc); \
                                 else if (THR && e.mode == 6) F(j, &d, &e, wd, SH, 6, xc, yc); else F(j, &d, &e, wd, SH, -1, xc, yc); } while (0)
#define BS_VDW_STRIDES(F) do { if (g->sh == 2) BS_VDW_MODES(F, 2); else BS_VDW_MODES(F, 1); } while (0)
#define BS_VDW_CH3(j, d, e, wd, TWO, M, xc, yc) bs_vdw_channel(j, d, e, wd, 3, 1, TWO, M, xc, yc)
            if (two && rows) BS_VDW_STRIDES(bs_vdw_channel_two_rows);
            else if (two) BS_VDW_MODES(BS_VDW_CH3, 1);
            else if (rows) BS_VDW_STRIDES(bs_vdw_channel_rows);
            else BS_VDW_MODES(BS_VDW_CH3, 0);
#undef BS_VDW_MODES
#undef BS_VDW_STRIDES
#undef BS_VDW_CH3
        } else {
            bs_vdw_channel(j, &d, &e, wd, kh, G, two, -1, xc, yc);
        }
    }
}

static __attribute__((noinline)) void bs_vdw_task_thr(const bs_avx2_job *j, int32_t task) { bs_vdw_task(j, task, 1); }
static __attribute__((noinline)) void bs_vdw_task_plain(const bs_avx2_job *j, int32_t task) { bs_vdw_task(j, task, 0); }

static void bs_vdw_run(const bs_avx2_job *j, int32_t task) {
    if (bs_vthr_job(j, (size_t)j->conv->win.oh * (size_t)j->conv->win.ow)) bs_vdw_task_thr(j, task);
    else bs_vdw_task_plain(j, task);
}
#else
#define BS_VDW 0
#endif

/* ---- stages ---- */
typedef struct bs_vlayout {
    bs_vgeo o;
    unsigned char *tmp, *ilv;   /* ilv: groups consecutive interleaved buffers */
} bs_vlayout;

_Static_assert(sizeof(bs_vgeo) <= sizeof(((bs_avx2_job *)0)->vgeo), "bs_avx2_job.vgeo holds a bs_vgeo");

/* The job's geometry: the one bs_avx512vnni_stages kept, else worked out into `own`. */
static const bs_vgeo *bs_vgeo_of(const bs_avx2_job *j, bs_vgeo *own) {
    if (j->vgeo_set) return (const bs_vgeo *)(const void *)j->vgeo;
    bs_vgeometry(j, own);
    return own;
}

static void bs_vlayout_of(const bs_avx2_job *j, bs_vlayout *l) {
    if (j->vgeo_set) memcpy(&l->o, j->vgeo, sizeof l->o);
    else bs_vgeometry(j, &l->o);
    unsigned char *s = (unsigned char *)(((uintptr_t)j->scratch + 63) & ~(uintptr_t)63);
    l->tmp = s;
    l->ilv = s + l->o.tmp_bytes;
}

static size_t bs_vcdiv(size_t a, size_t b) { return (a + b - 1) / b; }

int32_t bs_avx512vnni_direct(const bs_avx2_job *j) {
    if (!j->conv || bs_dwconv_tasks__avx2(j)) return 0;
    bs_vgeo o;
    bs_vgeometry(j, &o);
    return !o.fallback && o.direct;
}

int32_t bs_avx512vnni_channel_lanes(const bs_avx2_job *j) {
    if (!j->conv || bs_dwconv_tasks__avx2(j) || bs_vgemv(j)) return 0;
    bs_vgeo o;
    bs_vgeometry(j, &o);
    return o.c16;
}

int32_t bs_avx512vnni_stages(bs_avx2_job *j) {
    j->vgeo_set = 0;
    if (bs_vgemv(j)) return bs_avx2_stages(j);
    if (bs_dwconv_tasks__avx2(j)) return 1;
    bs_vgeo *o = (bs_vgeo *)(void *)j->vgeo;
    bs_vgeometry(j, o);
    j->vgeo_set = 1;
    return o->fallback ? 1 : (o->bsr ? 3 : 2);
}

#if BS_VBSR
/* The bit-serial path's per-quad min / max, after its bit planes and k-word offsets (bs_vgeo; kg = quads x taps). */
static unsigned char *bs_vbsr_mm(const bs_vgeo *o, unsigned char *tmp) {
    return tmp + o->bat + o->bbytes + BS_VA64(o->nch * (size_t)(o->kg / (int32_t)o->cqn) * 4);
}
#endif

/* Whether the bit-serial GEMM stage of the job runs in the channels-in-lanes layout: bs_vgeo.bsrl and the activations
 * (recorded by stage 0) within 4 values. */
static int bs_vbsr_lanes(const bs_avx2_job *j, const bs_vgeo *o) {
#if BS_VBSR
    int32_t base;
    unsigned char *tmp = (unsigned char *)(((uintptr_t)j->scratch + 63) & ~(uintptr_t)63);
    return o->bsrl && !o->fallback && bs_vbsr_range(o, bs_vbsr_mm(o, tmp), &base);
#else
    (void)j; (void)o;
    return 0;
#endif
}

int32_t bs_avx512vnni_depthwise_vpermb(const bs_avx2_job *j) {
#if BS_VDW
    if (!j->conv || j->vgeo_set || !bs_dwconv_tasks__avx2(j) || !bs_vdw_ok(j)) return 0;
    return j->conv->win.ow <= 8 ? 2 : 1;
#else
    (void)j;
    return 0;
#endif
}

int32_t bs_avx512vnni_bitserial(const bs_avx2_job *j) {
#if BS_VBSR
    if (!j->vgeo_set) return 0;
    const bs_vgeo *o = (const bs_vgeo *)(const void *)j->vgeo;
    int32_t base;
    unsigned char *tmp = (unsigned char *)(((uintptr_t)j->scratch + 63) & ~(uintptr_t)63);
    return !o->fallback && o->bsr && bs_vbsr_range(o, bs_vbsr_mm(o, tmp), &base);
#else
    (void)j;
    return 0;
#endif
}

int32_t bs_avx512vnni_tasks(const bs_avx2_job *j, int32_t stage) {
    if (!j->vgeo_set && bs_vgemv(j)) return bs_avx2_tasks(j, stage);
    int32_t dw = j->vgeo_set ? 0 : bs_dwconv_tasks__avx2(j);
    if (dw) return dw;
    bs_vgeo own;
    const bs_vgeo *o = bs_vgeo_of(j, &own);
    if (o->fallback) return 1;
    size_t tiles = bs_vcdiv(o->nb, BS_VTILE);
#if BS_VBSR
    if (o->bsr && stage == 1) return (int32_t)(o->nch * bs_vbsr_slices(o));
#endif
    switch (stage) {
    case 0: return (int32_t)((size_t)o->groups * (o->direct ? bs_vcdiv(o->cqn, o->qpt) : bs_vcdiv((size_t)o->kg, BS_VKG_PER_TASK)));
    default:
        if (o->c16 || bs_vbsr_lanes(j, o)) return (int32_t)((size_t)o->groups * bs_vcdiv(o->n, o->tpx) * bs_vcdiv((size_t)o->mg / 16, o->vpt));
        return (int32_t)((size_t)o->groups * bs_vcdiv(tiles, o->tpt) * bs_vcdiv((size_t)o->mg4 / 4, o->cbpt));
    }
}

static void bs_vfallback(const bs_avx2_job *j) {
    int8_t *w = (int8_t *)(((uintptr_t)j->scratch + 63) & ~(uintptr_t)63);
    bs_vunpack_weights((const bs_vpacked *)j->packed, w);
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

/* The channels-in-lanes epilogue of 16 channels that all take the int32 form (bs_vepi_int32_form): the Requant in
 * their own lanes (per-lane multipliers, B, shifts by vpsravq, bounds), so that a vector of 16 accumulators needs no
 * per-channel set-up and no mode; floor(u / 2^n) of the int32 form is u >> n in 64-bit lanes (u never wraps there). */
typedef struct bs_vlanes { __m512i corr, Me, Mo, Be, Bo, Ne, No, LOe, HIe, LOo, HIo; } bs_vlanes;

static int bs_vlanes_setup(const bs_avx2_job *j, size_t c0, const int32_t corr[16], bs_vlanes *L) {
    const bs_requant_params *rq = j->rq;
    _Alignas(64) int64_t v[10][8];   /* Me, Mo, Be, Bo, Ne, No, LOe, LOo, HIe, HIo: even and odd channels */
    for (int32_t i = 0; i < 16; i++) {
        size_t q = rq->count == 1 ? 0 : c0 + (size_t)i;
        int64_t B, lo, hi;
        if (!bs_vepi_int32_form(rq, q, j->yt, &B, &lo, &hi)) return 0;
        int32_t o = i & 1, l = i >> 1;
        v[o][l] = rq->m[q]; v[2 + o][l] = B; v[4 + o][l] = rq->n[q]; v[6 + o][l] = lo; v[8 + o][l] = hi;
    }
    L->corr = _mm512_loadu_si512((const void *)corr);
    L->Me = _mm512_load_si512((const void *)v[0]); L->Mo = _mm512_load_si512((const void *)v[1]);
    L->Be = _mm512_load_si512((const void *)v[2]); L->Bo = _mm512_load_si512((const void *)v[3]);
    L->Ne = _mm512_load_si512((const void *)v[4]); L->No = _mm512_load_si512((const void *)v[5]);
    L->LOe = _mm512_load_si512((const void *)v[6]); L->LOo = _mm512_load_si512((const void *)v[7]);
    L->HIe = _mm512_load_si512((const void *)v[8]); L->HIo = _mm512_load_si512((const void *)v[9]);
    return 1;
}

static inline __m512i bs_vlanes_apply(const bs_vlanes *L, __m512i acc) {
    acc = _mm512_sub_epi32(acc, L->corr);
    __m512i v0 = _mm512_add_epi64(_mm512_mul_epi32(acc, L->Me), L->Be);   /* even channels (low dwords) */
    __m512i v1 = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(acc, 32), L->Mo), L->Bo);
    v0 = _mm512_min_epi64(_mm512_max_epi64(_mm512_srav_epi64(v0, L->Ne), L->LOe), L->HIe);
    v1 = _mm512_min_epi64(_mm512_max_epi64(_mm512_srav_epi64(v1, L->No), L->LOo), L->HIo);
    return _mm512_mask_blend_epi32((__mmask16)0xAAAA, v0, _mm512_slli_epi64(v1, 32));
}

/* One stage-1 task of the channels-in-lanes GEMM: channel vectors [v0, v1) of group g for output pixels [p0, p1).
 * The pixels go in runs whose activations are one word apart (the direct path: a plane row's output columns, or all
 * of them when the plane has no junk columns; the interleaved copy: a 16-pixel block), each run in tiles of at most
 * 7 pixels of near-equal size; the accumulators of the task's pixels [pixel][64 channels] on the stack, then per
 * 16 channels and 16 pixels the epilogue in the accumulators' lanes (bs_vlanes_apply) or the per-channel one
 * (bs_vepi_apply) and a transpose, so that the outputs are stored as 16 contiguous pixels of one channel. With voffb
 * not NULL (bs_vgeo.bsrl: the activations within base .. base + 3) the bit-serial kernels run on the bit planes
 * (S8C4 weights and their bit planes; 8 channels per call) instead of the int8 ones on C16 weights. */
static void bs_vlanes_task(const bs_avx2_job *j, const bs_vlayout *l, const int32_t *voff, const int32_t *voffb, int32_t base, int32_t task) {
    const bs_vgeo *o = &l->o;
    const bs_vpacked *h = (const bs_vpacked *)j->packed;
    const int32_t *wsum = (const int32_t *)((const unsigned char *)h + 64);
    const unsigned char *wp = (const unsigned char *)h + 64 + BS_VA64((size_t)h->groups * h->mg4 * 4);
    size_t n16 = (size_t)o->mg / 16, nvt = bs_vcdiv(n16, o->vpt), npt = bs_vcdiv(o->n, o->tpx);
    size_t g = (size_t)task / (npt * nvt), pt = (size_t)task / nvt % npt, vt = (size_t)task % nvt;
    size_t p0 = pt * o->tpx, p1 = p0 + o->tpx < o->n ? p0 + o->tpx : o->n, v0 = vt * o->vpt, v1 = v0 + o->vpt < n16 ? v0 + o->vpt : n16;
    size_t kg = (size_t)o->kg, wstride = kg * 64, ow = (size_t)j->conv->win.ow;
    const unsigned char *w = wp + (g * n16 + v0) * wstride;
    _Alignas(64) int32_t acc[BS_VC16_TPX * 64];
    /* the direct path's runs: plane rows (junk columns) or the whole range; the interleaved copy's: 16-pixel blocks */
    int rows = o->direct && o->pwq != ow;
    size_t ps = voffb ? 8 : 4;   /* bytes per pixel: a bit-plane word, or a quad plane's 4 channels */
#if BS_VBSR
    size_t nq = voffb ? o->nch * (kg / o->cqn) : 0;   /* bit-serial k-words */
    const uint64_t *bw = (const uint64_t *)(const void *)(wp + BS_VA64((size_t)h->groups * h->mg4 * h->kg * 4));
#endif
    for (size_t p = p0; p < p1;) {
        size_t end = o->direct ? (rows ? (p / ow + 1) * ow : p1) : (p / 16 + 1) * 16;
        if (end > p1) end = p1;
        size_t len = end - p, nt = (len + 6) / 7, vp = rows ? p / ow * o->pwq + p % ow : p;
        const unsigned char *a = voffb ? l->tmp + o->bat + vp * 8
                               : o->direct ? l->tmp + g * o->gbytes + vp * 4
                               : l->ilv + g * o->ilv_bytes + p / 16 * (kg * 64) + p % 16 * 4;
        for (size_t t = 0; t < nt; t++) {
            int32_t nr = (int32_t)(len / nt + (t < len % nt));
            int32_t *out = acc + (p - p0) * 64;
#if BS_VBSR
            if (voffb) {   /* 8 channels (two blocks of 4) per call */
                for (size_t cb = v0 * 4; cb < v1 * 4; cb += 2)
                    bs_vb8[nr - 1](a, o->lp * 8, voffb, bw + cb * nq * 8, bw + (cb + 1) * nq * 8, (int32_t)nq, out + (cb - v0 * 4) * 4);
            } else
#endif
            for (size_t v = v0; v < v1;) {   /* 4, 2 or 1 vectors at a time */
                int32_t vi = v1 - v >= 4 ? 2 : v1 - v >= 2 ? 1 : 0;
                (o->direct ? bs_vc16_direct : bs_vc16_gemm)[vi][nr - 1](a, voff, w + (v - v0) * wstride, wstride, (int32_t)kg, out + (v - v0) * 16);
                v += (size_t)1 << vi;
            }
            a += (size_t)nr * ps; p += (size_t)nr;
        }
    }
    int bytes_out = j->rq && (j->yt == BS_T_U8 || j->yt == BS_T_I8);
    for (size_t v = v0; v < v1; v++) {
        size_t c0 = g * (size_t)o->mg + v * 16;
        /* no Requant, or every channel in the int32 form: the epilogue in the accumulators' own lanes, then the
         * transpose (else the per-channel epilogue below, after it; one loop for both, with the form a flag, made
         * ResNet-20 1.4 % slower) */
        _Alignas(64) int32_t corr[16];   /* bit-serial: the accumulators hold sum (u - base) w_b */
        for (int32_t c = 0; c < 16; c++) corr[c] = (int32_t)((uint32_t)(o->uz - base) * (uint32_t)wsum[g * (size_t)o->mg4 + v * 16 + (size_t)c]);
        bs_vlanes L;
        memset(&L, 0, sizeof L);   /* (without a Requant it stays unused) */
        if (!j->rq || bs_vlanes_setup(j, c0, corr, &L)) {
            const __m512i cv = _mm512_load_si512((const void *)corr);
            for (size_t pb = p0; pb < p1; pb += 16) {
                int32_t cnt = (int32_t)(p1 - pb < 16 ? p1 - pb : 16);
                __m512i r[16];
                for (int32_t i = 0; i < 16; i++) {
                    __m512i a = i < cnt ? _mm512_load_si512((const void *)(acc + (pb - p0 + (size_t)i) * 64 + (v - v0) * 16)) : _mm512_setzero_si512();
                    r[i] = j->rq ? bs_vlanes_apply(&L, a) : _mm512_sub_epi32(a, cv);
                }
                bs_vtranspose16(r);
                __mmask16 mk = (__mmask16)((1u << cnt) - 1u);
                for (int32_t c = 0; c < 16; c++) {
                    size_t at = (c0 + (size_t)c) * o->n + pb;
                    if (bytes_out) _mm_mask_storeu_epi8((unsigned char *)j->y + at, mk, _mm512_cvtepi32_epi8(r[c]));
                    else _mm512_mask_storeu_epi32((int32_t *)j->y + at, mk, r[c]);
                }
            }
            continue;
        }
        bs_vepi ep[16];
        for (int32_t c = 0; c < 16; c++) {
            size_t oc = g * (size_t)o->mg + v * 16 + (size_t)c;
            bs_vepi_setup(j, oc, corr[c], &ep[c]);
        }
        for (size_t pb = p0; pb < p1; pb += 16) {
            int32_t cnt = (int32_t)(p1 - pb < 16 ? p1 - pb : 16);
            __m512i r[16];
            for (int32_t i = 0; i < 16; i++)
                r[i] = i < cnt ? _mm512_load_si512((const void *)(acc + (pb - p0 + (size_t)i) * 64 + (v - v0) * 16)) : _mm512_setzero_si512();
            bs_vtranspose16(r);
            for (int32_t c = 0; c < 16; c++) {
                size_t at = (g * (size_t)o->mg + v * 16 + (size_t)c) * o->n + pb;
                __m512i r32 = bs_vepi_apply(j, &ep[c], r[c]);
                if (bytes_out && cnt == 16) _mm_storeu_si128((__m128i *)((unsigned char *)j->y + at), _mm512_cvtepi32_epi8(r32));
                else bs_vstore16(j, r32, at, 1, 0, cnt);
            }
        }
    }
}

void bs_avx512vnni_run(const bs_avx2_job *j, int32_t stage, int32_t task) {
    if (!j->vgeo_set && bs_vgemv(j)) { bs_avx2_run(j, stage, task); return; }
    if (!j->vgeo_set && bs_dwconv_tasks__avx2(j)) {
#if BS_VDW
        if (bs_vdw_ok(j)) { bs_vdw_run(j, task); return; }
#endif
        bs_dwconv_run_with__avx2(j, task, bs_vdw_row_epilogue, bs_qs16s16_dwconv_row__avx512vnni);
        return;
    }
    bs_vlayout l;
    bs_vlayout_of(j, &l);
    const bs_vgeo *o = &l.o;
    if (o->fallback) { bs_vfallback(j); return; }
    size_t kpad = (size_t)o->kg * 4, bstride = (size_t)o->kg * 64, tiles = bs_vcdiv(o->nb, BS_VTILE);
    size_t ncb = (size_t)o->mg4 / 4, g, tl, cb0, cb1;
    int32_t *voff = (int32_t *)(l.tmp + o->vbytes);   /* the direct path's k-group offsets */
    int32_t bsr_on = 0, base = 0;
#if BS_VBSR
    unsigned char *mm = o->bsr ? bs_vbsr_mm(o, l.tmp) : NULL;
    int32_t *voffb = (int32_t *)(l.tmp + o->bat + o->bbytes);
    if (o->bsr && stage > 0 && !(bsr_on = bs_vbsr_range(o, mm, &base))) base = 0;
    if (o->bsr && stage == 1) {   /* a slice of one chunk of 64 input channels into bit planes; task 0: the k-word offsets too */
        if (!bsr_on) return;
        if (task == 0) bs_vbsr_offsets(j, o, voffb);
        bs_vbsr_convert(o, l.tmp, l.tmp + o->bat, (size_t)task / bs_vbsr_slices(o), (size_t)task % bs_vbsr_slices(o), base);
        return;
    }
    if (o->bsr && stage == 2) stage = 1;
#else
    unsigned char *mm = NULL;
    (void)bsr_on;
#endif
    if (stage == 0 && o->direct) {   /* qpt quads of input channels into their phase planes; task 0: the offsets too */
        if (task == 0) bs_vdirect_offsets(j, o, voff);
        bs_vfill_task(j, o, l.tmp, task, mm);
        return;
    }
    if (stage == 0) {   /* gather 4 * BS_VKG_PER_TASK rows of one group, interleaving each k-group at once */
        size_t per_g = bs_vcdiv((size_t)o->kg, BS_VKG_PER_TASK);
        g = (size_t)task / per_g;
        int32_t q0 = (int32_t)((size_t)task % per_g) * BS_VKG_PER_TASK, q1 = q0 + BS_VKG_PER_TASK;
        if (q1 > o->kg) q1 = o->kg;
        /* the task's own 4 rows of the gather area, reused for each of its k-groups (they stay in L1 / L2) */
        unsigned char *buf = l.tmp + (g * kpad + (size_t)q0 * 4) * o->npad;
        bs_vspan sp;
        bs_vspan_of(j, o, 0, o->npad, &sp);
        bs_vkpos kp;
        bs_vkpos_of(j, g, (size_t)q0 * 4, &kp);
        for (int32_t q = q0; q < q1; q++) {
            for (size_t i = 0; i < 4; i++) { bs_vgather_row(j, o, &kp, &sp, buf + i * o->npad); bs_vkpos_next(j, &kp); }
            bs_vinterleave(o, buf, l.ilv + g * o->ilv_bytes, q);
        }
        return;
    } else if (o->c16) {
        bs_vlanes_task(j, &l, voff, NULL, 0, task);
        return;
#if BS_VBSR
    } else if (bsr_on && o->bsrl) {
        bs_vlanes_task(j, &l, NULL, voffb, base, task);
        return;
#endif
    } else {   /* stage 1: GEMM of one group, a range of tiles, a range of channel blocks */
        size_t cbt = bs_vcdiv(ncb, o->cbpt), tct = bs_vcdiv(tiles, o->tpt), rest;
        g = (size_t)task / (tct * cbt); rest = (size_t)task % (tct * cbt); tl = rest / cbt * o->tpt;
        cb0 = (rest % cbt) * o->cbpt; cb1 = cb0 + o->cbpt;
        if (cb1 > ncb) cb1 = ncb;
    }
    const bs_vpacked *h = (const bs_vpacked *)j->packed;
    const int32_t *wsum = (const int32_t *)((const unsigned char *)h + 64);
    const unsigned char *wp = (const unsigned char *)h + 64 + BS_VA64((size_t)h->groups * h->mg4 * 4);
    size_t tl1 = tl + o->tpt < tiles ? tl + o->tpt : tiles;
    /* output: conv y [M, N] (channel stride N, pixel stride 1); gemm y [rows, M] (channel stride 1, row stride M) */
    size_t m_total = (size_t)o->groups * o->mg;
    size_t cstride = j->conv ? o->n : 1, pstride = j->conv ? 1 : m_total;
    /* the direct path with junk columns: the runs of output lanes of the task's blocks (else every lane of a block
     * up to the last pixel is one) */
    int junk = o->direct && o->pwq != (size_t)j->conv->win.ow;
    int bytes_out = j->conv && j->rq && (j->yt == BS_T_U8 || j->yt == BS_T_I8);   /* conv: pixel stride 1 */
    bs_vruns runs[16 * BS_VTILE];
    if (junk)
        for (size_t t = tl; t < tl1; t++)
            for (size_t bi = 0; bi < BS_VTILE && (t * BS_VTILE + bi) < o->nb; bi++)
                bs_vdirect_runs(j, o, (t * BS_VTILE + bi) * 16, &runs[(t - tl) * BS_VTILE + bi]);
    int thr = bs_vthr_job(j, (tl1 - tl) * BS_VTILE * 16);   /* the Requant's thresholds form (2-bit outputs) */
    for (size_t cb = cb0; cb < cb1; cb++) {
        const unsigned char *w = wp + (g * ncb + cb) * (size_t)o->kg * 16;
        bs_vepi ep[4];
        int32_t nc = (int32_t)((size_t)o->mg - cb * 4 < 4 ? (size_t)o->mg - cb * 4 : 4);
        for (int32_t c4 = 0; c4 < nc; c4++) {
            size_t c = cb * 4 + (size_t)c4;   /* bit-serial: the accumulators hold sum (u - base) w_b */
            bs_vepi_setup(j, g * o->mg + c, (int32_t)((uint32_t)(o->uz - base) * (uint32_t)wsum[g * o->mg4 + c]), &ep[c4]);
            if (thr) bs_vepi_thresholds_set(j, &ep[c4]);
        }
        int32_t mode4 = ep[0].mode;   /* the channels' common epilogue mode, -1 if they differ */
        for (int32_t c4 = 1; c4 < nc; c4++) if (ep[c4].mode != mode4) mode4 = -1;
        for (size_t t = tl; t < tl1; t++) {
            size_t b0 = t * BS_VTILE, nbk = o->nb - b0 < BS_VTILE ? o->nb - b0 : BS_VTILE;
            __m512i acc[16];
#if BS_VBSR
            if (bsr_on) {
                size_t nq = o->nch * (size_t)(o->kg / (int32_t)o->cqn);
                const uint64_t *bw = (const uint64_t *)(const void *)(wp + BS_VA64((size_t)h->groups * h->mg4 * h->kg * 4)) + cb * nq * 8;
                for (size_t bi = 0; bi < nbk; bi++)
                    bs_qu2s2_conv_b1p_popcnt_16x4c64__avx512vnni(l.tmp + o->bat + (b0 + bi) * 128, o->lp * 8, voffb, bw, (int32_t)nq, acc + bi * 4);
            } else
#endif
            if (o->direct) {
                const unsigned char *a = l.tmp + g * o->gbytes + b0 * 64;
                switch (nbk) {
                case 4: bs_qu8s8_conv_c4p_rq64_64x4c4__avx512vnni(a, 64, voff, w, o->kg, acc); break;
                case 3: bs_qu8s8_conv_c4p_rq64_48x4c4__avx512vnni(a, 64, voff, w, o->kg, acc); break;
                case 2: bs_qu8s8_conv_c4p_rq64_32x4c4__avx512vnni(a, 64, voff, w, o->kg, acc); break;
                default: bs_qu8s8_conv_c4p_rq64_16x4c4__avx512vnni(a, 64, voff, w, o->kg, acc); break;
                }
            } else {
                const unsigned char *a = l.ilv + g * o->ilv_bytes + b0 * bstride;
                switch (nbk) {
                case 4: bs_qu8s8_gemm_rq64_64x4c4__avx512vnni(a, bstride, NULL, w, o->kg, acc); break;
                case 3: bs_qu8s8_gemm_rq64_48x4c4__avx512vnni(a, bstride, NULL, w, o->kg, acc); break;
                case 2: bs_qu8s8_gemm_rq64_32x4c4__avx512vnni(a, bstride, NULL, w, o->kg, acc); break;
                default: bs_qu8s8_gemm_rq64_16x4c4__avx512vnni(a, bstride, NULL, w, o->kg, acc); break;
                }
            }
            if (!junk && bytes_out && nbk == BS_VTILE && (b0 + BS_VTILE) * 16 <= o->n && mode4 >= 4) {
                /* a whole tile of byte outputs: each channel's 64 pixels as one 64-byte store (four 16-byte ones to
                 * the same line had cost more: the output planes are written a line at a time) */
                unsigned char *yb = (unsigned char *)j->y + (g * o->mg + cb * 4) * cstride + b0 * 16;
#define BS_VEPI_LINE(MODE)                                                                                            \
                for (int32_t c4 = 0; c4 < nc; c4++) {                                                                 \
                    __m512i r0 = bs_vepi_apply_mode(j, &ep[c4], acc[c4], MODE), r1 = bs_vepi_apply_mode(j, &ep[c4], acc[4 + c4], MODE); \
                    __m512i r2 = bs_vepi_apply_mode(j, &ep[c4], acc[8 + c4], MODE), r3 = bs_vepi_apply_mode(j, &ep[c4], acc[12 + c4], MODE); \
                    __m512i l = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_inserti128_si256(_mm256_castsi128_si256(      \
                        _mm512_cvtepi32_epi8(r0)), _mm512_cvtepi32_epi8(r1), 1)), _mm256_inserti128_si256(                  \
                        _mm256_castsi128_si256(_mm512_cvtepi32_epi8(r2)), _mm512_cvtepi32_epi8(r3), 1), 1);                 \
                    _mm512_storeu_si512((void *)(yb + (size_t)c4 * cstride), l);                                       \
                }
                if (mode4 == 4) { BS_VEPI_LINE(4) } else if (!thr || mode4 == 5) { BS_VEPI_LINE(5) } else { BS_VEPI_LINE(6) }
#undef BS_VEPI_LINE
                continue;
            }
            for (size_t bi = 0; bi < nbk; bi++) {
                size_t p0 = (b0 + bi) * 16;
                const bs_vruns *rr = junk ? &runs[(t - tl) * BS_VTILE + bi] : NULL;
                if (!rr && bytes_out && p0 + 16 <= o->n) {   /* 16 whole bytes per channel: plain stores */
                    unsigned char *yb = (unsigned char *)j->y + (g * o->mg + cb * 4) * cstride + p0;
#define BS_VEPI_BYTES(MODE)                                                                                           \
                    for (int32_t c4 = 0; c4 < nc; c4++)                                                               \
                        _mm_storeu_si128((__m128i *)(yb + (size_t)c4 * cstride),                                      \
                                         _mm512_cvtepi32_epi8(bs_vepi_apply_mode(j, &ep[c4], acc[bi * 4 + (size_t)c4], MODE)));
                    /* the block's 4 channels in one int32 form (the usual case): the mode a constant, no branch per vector */
                    if (mode4 == 4) { BS_VEPI_BYTES(4) }
                    else if (mode4 == 5) { BS_VEPI_BYTES(5) }
                    else if (thr && mode4 == 6) { BS_VEPI_BYTES(6) }
                    else { BS_VEPI_BYTES(ep[c4].mode) }
#undef BS_VEPI_BYTES
                    continue;
                }
                for (int32_t c4 = 0; c4 < nc; c4++) {
                    size_t oc = g * o->mg + cb * 4 + (size_t)c4;
                    __m512i r32 = bs_vepi_apply(j, &ep[c4], acc[bi * 4 + (size_t)c4]);
                    if (!rr) { bs_vstore16(j, r32, oc * cstride + p0 * pstride, pstride, 0, (int32_t)(o->n - p0 < 16 ? o->n - p0 : 16)); continue; }
                    for (int32_t r = 0; r < rr->n; r++)
                        bs_vstore16(j, r32, oc * cstride + rr->off[r], 1, rr->i0[r], rr->i1[r]);
                }
            }
        }
    }
}

BS_STAGED_ENTRY_POINTS(avx512vnni, bs_avx512vnni)

/* ---- Requant and QAdd outside a conv (the same arithmetic as bs_requant__generic / bs_qadd__generic) ---- */
static inline __m512i bs_vload16_i32(const void *x, int32_t t, size_t i, __mmask16 mk) {
    switch (t) {
    case BS_T_I8: return _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(mk, (const int8_t *)x + i));
    case BS_T_U8: return _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mk, (const uint8_t *)x + i));
    default: return _mm512_maskz_loadu_epi32(mk, (const int32_t *)x + i);
    }
}

/* Whole steps of 16 int32 values into y + yi (container yt), the epilogue mode a constant (its branches fold); returns
 * the values done. */
static inline __attribute__((always_inline)) size_t bs_vrequant_i32(const bs_avx2_job *j, const bs_vepi *ep, const int32_t *x,
                                                                   size_t yi, size_t n, int32_t mode) {
    size_t e = 0;
    if (j->yt == BS_T_I32)
        for (; e + 16 <= n; e += 16)
            _mm512_storeu_si512((void *)((int32_t *)j->y + yi + e), bs_vepi_apply_mode(j, ep, _mm512_loadu_si512((const void *)(x + e)), mode));
    else
        for (; e + 16 <= n; e += 16)
            _mm_storeu_si128((__m128i *)((unsigned char *)j->y + yi + e),
                             _mm512_cvtepi32_epi8(bs_vepi_apply_mode(j, ep, _mm512_loadu_si512((const void *)(x + e)), mode)));
    return e;
}

/* n values of x (container xt) requantized as channel c into y[yi .. yi + n), 16 per step. */
static void bs_vrequant_span(const void *x, int32_t xt, void *y, int32_t yt, size_t yi, size_t n, const bs_requant_params *rq,
                             size_t c) {
    bs_avx2_job j;   /* the conv epilogue's view: output y of container yt, per-channel tables rq */
    memset(&j, 0, sizeof j);
    j.rq = rq; j.yt = yt; j.y = y;
    bs_vepi ep;
    bs_vepi_setup(&j, c, 0, &ep);
    if (bs_vthr_job(&j, n)) bs_vepi_thresholds_set(&j, &ep);
    size_t e = 0;
    if (xt == BS_T_I32 && ep.mode == 4) e = bs_vrequant_i32(&j, &ep, (const int32_t *)x, yi, n, 4);
    else if (xt == BS_T_I32 && ep.mode == 5) e = bs_vrequant_i32(&j, &ep, (const int32_t *)x, yi, n, 5);
    else if (xt == BS_T_I32 && ep.mode == 6) e = bs_vrequant_i32(&j, &ep, (const int32_t *)x, yi, n, 6);
    for (; e < n; e += 16) {
        size_t count = n - e < 16 ? n - e : 16;
        __mmask16 mk = (__mmask16)(count >= 16 ? 0xFFFFu : ((1u << count) - 1u));
        bs_vstore16(&j, bs_vepi_apply(&j, &ep, bs_vload16_i32(x, xt, e, mk)), yi + e, 1, 0, (int32_t)count);
    }
}

void bs_requant__avx512vnni(const void *x, int32_t xt, void *y, int32_t yt, size_t outer, size_t channels, size_t inner,
                            const bs_requant_params *rq) {
    for (size_t r = 0; r < outer * channels; r++)
        bs_vrequant_span((const unsigned char *)x + r * inner * bs_esize(xt), xt, y, yt, r * inner, inner, rq, r % channels);
}

/* QAdd of elements [i0, i1), 16 per step in two halves of 64-bit lanes. */
static void bs_vqadd_range(const void *a, int32_t at, const void *b, int32_t bt, void *y, int32_t yt, const bs_qadd_params *p,
                           size_t i0, size_t i1) {
#if defined(__AVX512DQ__)
    if (p->lo <= p->hi && p->n < 64) {
        const __m512i LO = _mm512_set1_epi64(bs_clamp64a(p->lo, bs_cmin(yt), bs_cmax(yt)));
        const __m512i HI = _mm512_set1_epi64(bs_clamp64a(p->hi, bs_cmin(yt), bs_cmax(yt)));
        const __m512i AZ = _mm512_set1_epi64(p->a_zero), BZ = _mm512_set1_epi64(p->b_zero), Z = _mm512_set1_epi64(p->zero);
        const __m512i MA = _mm512_set1_epi64(p->m_a), MB = _mm512_set1_epi64(p->m_b), one = _mm512_set1_epi64(1);
        const __m128i sh = _mm_cvtsi32_si128((int)p->n), sh1 = _mm_cvtsi32_si128((int)p->n - 1);
        size_t i = i0;
        /* vpmuldq on the even and the odd 32-bit lanes, no widening shuffles */
        if (bs_qadd_fits_i32(p, at, bt)) {
            const __m512i AZ32 = _mm512_set1_epi32((int32_t)p->a_zero), BZ32 = _mm512_set1_epi32((int32_t)p->b_zero);
            for (; i + 16 <= i1; i += 16) {
                __m512i da = _mm512_sub_epi32(bs_vload16_i32(a, at, i, 0xFFFF), AZ32), db = _mm512_sub_epi32(bs_vload16_i32(b, bt, i, 0xFFFF), BZ32);
                __m512i v[2];
                v[0] = _mm512_add_epi64(_mm512_mul_epi32(da, MA), _mm512_mul_epi32(db, MB));
                v[1] = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(da, 32), MA), _mm512_mul_epi32(_mm512_srli_epi64(db, 32), MB));
                for (int h = 0; h < 2; h++) {
                    if (p->n > 0) v[h] = _mm512_add_epi64(_mm512_sra_epi64(v[h], sh), _mm512_and_si512(_mm512_srl_epi64(v[h], sh1), one));
                    v[h] = _mm512_min_epi64(_mm512_max_epi64(_mm512_add_epi64(v[h], Z), LO), HI);
                }
                __m512i r32 = _mm512_mask_blend_epi32((__mmask16)0xAAAA, v[0], _mm512_slli_epi64(v[1], 32));   /* in int32 range */
                if (yt == BS_T_I32) _mm512_storeu_si512((void *)((int32_t *)y + i), r32);
                else _mm_storeu_si128((__m128i *)((unsigned char *)y + i), _mm512_cvtepi32_epi8(r32));
            }
        }
        for (; i < i1; i += 16) {
            size_t n16 = i1 - i < 16 ? i1 - i : 16;
            __mmask16 mk = (__mmask16)(n16 >= 16 ? 0xFFFFu : ((1u << n16) - 1u));
            __m512i va32 = bs_vload16_i32(a, at, i, mk), vb32 = bs_vload16_i32(b, bt, i, mk);
            __m512i r[2];
            for (int h = 0; h < 2; h++) {
                __m512i xa = _mm512_cvtepi32_epi64(h ? _mm512_extracti64x4_epi64(va32, 1) : _mm512_castsi512_si256(va32));
                __m512i xb = _mm512_cvtepi32_epi64(h ? _mm512_extracti64x4_epi64(vb32, 1) : _mm512_castsi512_si256(vb32));
                /* wrapping int64: (a - az) m_a + (b - bz) m_b (vpmullq keeps the low 64 bits) */
                __m512i v = _mm512_add_epi64(_mm512_mullo_epi64(_mm512_sub_epi64(xa, AZ), MA),
                                             _mm512_mullo_epi64(_mm512_sub_epi64(xb, BZ), MB));
                if (p->n > 0) v = _mm512_add_epi64(_mm512_sra_epi64(v, sh), _mm512_and_si512(_mm512_srl_epi64(v, sh1), one));
                r[h] = _mm512_min_epi64(_mm512_max_epi64(_mm512_add_epi64(v, Z), LO), HI);
            }
            if (yt == BS_T_I32) {
                __m512i r32 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(r[0])), _mm512_cvtepi64_epi32(r[1]), 1);
                _mm512_mask_storeu_epi32((int32_t *)y + i, mk, r32);
            } else {   /* in the byte container's range already: truncation is exact */
                __m128i b8 = _mm_unpacklo_epi64(_mm512_cvtepi64_epi8(r[0]), _mm512_cvtepi64_epi8(r[1]));
                _mm_mask_storeu_epi8((unsigned char *)y + i, mk, b8);
            }
        }
        return;
    }
#endif
    /* shifts >= 64, lo > hi: never produced by the lowering */
    bs_qadd__generic((const unsigned char *)a + i0 * bs_esize(at), at, (const unsigned char *)b + i0 * bs_esize(bt), bt,
                     (unsigned char *)y + i0 * bs_esize(yt), yt, i1 - i0, p);
}

void bs_qadd__avx512vnni(const void *a, int32_t at, const void *b, int32_t bt, void *y, int32_t yt, size_t count,
                         const bs_qadd_params *p) {
    bs_vqadd_range(a, at, b, bt, y, yt, p, 0, count);
}

/* Lanes j of 16 whose column c0 + j lies in [0, w). */
static inline __mmask16 bs_vcols(int64_t c0, int64_t w) {
    int64_t lo = c0 < 0 ? -c0 : 0, hi = w - c0 < 16 ? w - c0 : 16;
    if (hi <= lo) return 0;
    return (__mmask16)(((1u << hi) - 1u) & ~((1u << lo) - 1u));
}

/* int32 planes [p0, p1), 2-D (or 1-D) windows of column stride 2: 16 outputs of a row per step, each tap's 16 columns
 * the even lanes of 32 loaded straight from the input row (masked to the row: a column in the padding reads
 * INT32_MIN, the lowest int32, which is also what a window without a valid tap yields). A ResNet stem's 3x3 / 2 pool
 * of int32 took 200 us through the separable AVX2 one, whose column pass reloads the row max it has just stored. */
static void bs_vmaxpool_i32_s2(const bs_window *g, size_t p0, size_t p1, const int32_t *x, int32_t *y) {
    const __m512i low = _mm512_set1_epi32(INT32_MIN);
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    size_t in = (size_t)g->h * g->w, out = (size_t)g->oh * g->ow;
    for (size_t p = p0; p < p1; p++) {
        const int32_t *xp = x + p * in;
        int32_t *yr = y + p * out;
        for (int32_t oh = 0; oh < g->oh; oh++, yr += g->ow)
            for (int32_t ow = 0; ow < g->ow; ow += 16) {
                int32_t n = g->ow - ow < 16 ? g->ow - ow : 16;
                __m512i best = low;
                if (g->kw == 3 && g->dw == 1) {   /* the row max of columns c0 .. c0 + 32 in registers, then its 3 taps */
                    int64_t c0 = 2 * (int64_t)ow - g->pw;
                    int inside = c0 >= 0 && c0 + 33 <= g->w;   /* of c, lane 0 is read */
                    __mmask16 ma = inside ? 0xFFFF : bs_vcols(c0, g->w), mb = inside ? 0xFFFF : bs_vcols(c0 + 16, g->w);
                    __mmask16 mc = inside ? 1 : bs_vcols(c0 + 32, g->w) & 1;
                    __m512i a = low, b = low, c = low;
                    for (int32_t kh = 0; kh < g->kh; kh++) {
                        int64_t ih = (int64_t)oh * g->sh - g->ph + (int64_t)kh * g->dh;
                        if (ih < 0 || ih >= g->h) continue;
                        const int32_t *r = xp + (size_t)ih * g->w + c0;
                        a = _mm512_max_epi32(a, _mm512_mask_loadu_epi32(low, ma, r));
                        b = _mm512_max_epi32(b, _mm512_mask_loadu_epi32(low, mb, r + 16));
                        c = _mm512_max_epi32(c, _mm512_mask_loadu_epi32(low, mc, r + 32));
                    }
                    __m512i t0 = _mm512_permutex2var_epi32(a, even, b);
                    __m512i t1 = _mm512_permutex2var_epi32(a, _mm512_add_epi32(even, _mm512_set1_epi32(1)), b);
                    best = _mm512_max_epi32(_mm512_max_epi32(t0, t1), _mm512_alignr_epi32(c, t0, 1));   /* tap 2: t0 one lane on */
                    _mm512_mask_storeu_epi32(yr + ow, (__mmask16)((1u << n) - 1u), best);
                    continue;
                }
                for (int32_t kh = 0; kh < g->kh; kh++) {
                    int64_t ih = (int64_t)oh * g->sh - g->ph + (int64_t)kh * g->dh;
                    if (ih < 0 || ih >= g->h) continue;
                    const int32_t *r = xp + (size_t)ih * g->w;
                    for (int32_t kw = 0; kw < g->kw; kw++) {
                        int64_t c0 = 2 * (int64_t)ow - g->pw + (int64_t)kw * g->dw;   /* output lane i reads column c0 + 2 i */
                        __mmask16 ma = bs_vcols(c0, g->w), mb = bs_vcols(c0 + 16, g->w);
                        __m512i a = _mm512_mask_loadu_epi32(low, ma, r + c0), b = _mm512_mask_loadu_epi32(low, mb, r + c0 + 16);
                        best = _mm512_max_epi32(best, _mm512_permutex2var_epi32(a, even, b));
                    }
                }
                _mm512_mask_storeu_epi32(yr + ow, (__mmask16)((1u << n) - 1u), best);
            }
    }
}

static int bs_vmaxpool_i32_s2_fits(const bs_window *g, int32_t xt) {
    return xt == BS_T_I32 && g->sw == 2 && g->d == 1 && g->od == 1 && g->kd == 1;
}

/* Planes [p0, p1) of a max pool: int32 at column stride 2 above; otherwise the AVX2 one (separable; its stride-2
 * byte path beats the gathers of bs_qmaxpool__avx512vnni). */
static void bs_vmaxpool_planes(const bs_window *g, size_t p0, size_t p1, const void *x, int32_t xt, void *y) {
    if (bs_vmaxpool_i32_s2_fits(g, xt)) { bs_vmaxpool_i32_s2(g, p0, p1, (const int32_t *)x, (int32_t *)y); return; }
    size_t es = bs_esize(xt), in = (size_t)g->d * g->h * g->w * es, out = (size_t)g->od * g->oh * g->ow * es;
    bs_qmaxpool__avx2(g, p1 - p0, (const unsigned char *)x + p0 * in, xt, (unsigned char *)y + p0 * out);
}

/* bs_ew_run__generic's tasks with the 16-lane Requant and QAdd (the epilogue's int32 Requant: fewer instructions
 * than the AVX2 file's 64-bit lanes) and the AVX2 max pool. */
void bs_ew_run__avx512vnni(const bs_ew_job *j, int32_t task) {
    static const bs_ew_ops ops = {bs_vrequant_span, bs_vqadd_range, bs_vmaxpool_planes};
    bs_ew_run_with(j, task, &ops);
}

/* ---- QMaxPool: 16 outputs of one output row at a time, max over the window's valid taps (masked loads; a
 * gather for int32 with stride > 1); no valid tap gives the container's lowest value, as in bs_pool ---- */
void bs_qmaxpool__avx512vnni(const bs_window *g, size_t planes, const void *x, int32_t xt, void *y) {
    if (g->sw != 1 && xt != BS_T_I32) { bs_qmaxpool__avx2(g, planes, x, xt, y); return; }   /* its stride-2 byte path */
    if (bs_vmaxpool_i32_s2_fits(g, xt)) { bs_vmaxpool_i32_s2(g, 0, planes, (const int32_t *)x, (int32_t *)y); return; }
    size_t es = xt == BS_T_I32 ? 4 : 1, in_count = (size_t)g->d * g->h * g->w, out_count = (size_t)g->od * g->oh * g->ow;
    int32_t lowest = xt == BS_T_I8 ? INT8_MIN : (xt == BS_T_U8 ? 0 : INT32_MIN);
    const __m512i vlow = _mm512_set1_epi32(lowest), lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i vsw = _mm512_set1_epi32(g->sw), vw = _mm512_set1_epi32(g->w), zero = _mm512_setzero_si512();
    for (size_t plane = 0; plane < planes; plane++) {
        const unsigned char *xp = (const unsigned char *)x + plane * in_count * es;
        size_t k = plane * out_count;
        for (int32_t od = 0; od < g->od; od++)
        for (int32_t oh = 0; oh < g->oh; oh++, k += (size_t)g->ow)
        for (int32_t c = 0; c < g->ow; c += 16) {
            int32_t len = g->ow - c < 16 ? g->ow - c : 16;
            __mmask16 lm = (__mmask16)(len >= 16 ? 0xFFFFu : ((1u << len) - 1u));
            __m512i best = vlow;
            for (int32_t kd = 0; kd < g->kd; kd++) {
                int64_t id = (int64_t)od * g->sd - g->pd + (int64_t)kd * g->dd;
                if (id < 0 || id >= g->d) continue;
                for (int32_t kh = 0; kh < g->kh; kh++) {
                    int64_t ih = (int64_t)oh * g->sh - g->ph + (int64_t)kh * g->dh;
                    if (ih < 0 || ih >= g->h) continue;
                    const unsigned char *xr = xp + ((size_t)id * g->h + (size_t)ih) * g->w * es;
                    for (int32_t kw = 0; kw < g->kw; kw++) {
                        int32_t iw0 = c * g->sw - g->pw + kw * g->dw;   /* lane i reads column iw0 + i sw */
                        __m512i iw = _mm512_add_epi32(_mm512_set1_epi32(iw0), _mm512_mullo_epi32(lane, vsw));
                        __mmask16 m = lm & _mm512_cmpge_epi32_mask(iw, zero) & _mm512_cmplt_epi32_mask(iw, vw);
                        if (!m) continue;
                        __m512i v;
                        if (g->sw == 1) {
                            const unsigned char *src = xr + (ptrdiff_t)iw0 * (ptrdiff_t)es;   /* only the valid lanes are read */
                            v = xt == BS_T_I32 ? _mm512_maskz_loadu_epi32(m, src)
                              : xt == BS_T_I8 ? _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, src))
                                              : _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, src));
                        } else {
                            v = _mm512_mask_i32gather_epi32(vlow, m, iw, (const void *)xr, 4);
                        }
                        best = _mm512_mask_max_epi32(best, m, best, v);
                    }
                }
            }
            if (xt == BS_T_I32) _mm512_mask_storeu_epi32((int32_t *)y + k + c, lm, best);
            else _mm_mask_storeu_epi8((unsigned char *)y + k + c, lm, _mm512_cvtepi32_epi8(best));
        }
    }
}

#else
typedef int bs_kernels_avx512vnni_not_built; /* without AVX-512 VNNI this file is empty (ISO C wants one declaration) */
#endif
