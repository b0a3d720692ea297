/* BitSwitch AVX-512 VNNI integer kernels (C11 + <immintrin.h>): QConv / QGemm with the Requant fused in the
 * epilogue, bit-exact with the portable kernels of bs_kernels.c (tested against them on random shapes).
 *
 * The GEMM micro-kernel, named like XNNPACK's (MR output pixels or rows, NR output channels, KR consecutive k per
 * 32-bit group, rq64 = the int64 product-domain Requant epilogue):
 *   bs_qu8s8_gemm_rq64_64x4c4__avx512vnni   u8 activations x s8 weights, vpdpbusd (u8 x s8 -> s32, no
 *                                           intermediate saturation: exact for every w_bits 1..8); 4 zmm of 16
 *                                           pixels x 4 broadcast output channels = 16 accumulators. Tails of
 *                                           fewer pixel blocks use the same code with 48, 32 or 16 pixels.
 *   bs_qu8s8_conv_c4p_rq64_64x4c4__avx512vnni  the same on the direct path's phase planes (c4p: 4 channels per lane)
 *   bs_qu8s8_conv_c4p_7x64c4__avx512vnni   channels in lanes (C16 weights): 7 pixels x 4 zmm of 16 output channels = 28
 *                                           accumulators, each pixel's 4 activation bytes broadcast; N x C for 1..7
 *                                           pixels and 16, 32, 64 channels; bs_qu8s8_gemm_NxCc4 on the interleaved copy
 *   bs_qu2s2_conv_b1p_popcnt_16x4c64__avx512vnni  bit-serial w2a2 (b1p: 1-bit planes; c64: 64 input channels per
 *                                           64-bit word): AND + VPOPCNTQ, 16 pixels x 4 channels, for convs whose
 *                                           weights have 1-2 bits and whose activations span 4 values in the call
 *                                           (checked per call; else the int8 kernel). Needs VPOPCNTDQ and VBMI.
 *   bs_qu2s2_conv_b1p_popcnt_7x8c64__avx512vnni  the same with channels in lanes (16 | output channels): 7 pixels x
 *                                           8 channels' 64-bit words, the pixel's bit-plane words broadcast
 * Signed (i8) activations are offset by +128; the per-channel sum of the shifted weights, computed when a profile
 * packs them, corrects the offset: sum (x - xz) w = sum u w - uz sum w, u = x (u8) or x + 128 (i8), uz = xz (+128).
 * The epilogue is vectorized in 64-bit lanes (vpmuldq, vpsraq, vpmaxsq / vpminsq) and bit-exact with the
 * reference's int64 Requant.
 *
 * Weights are packed (bs_qs8_pack_weights__avx512vnni, vectorized) in the S8C4 layout of the AVX2 kernels for
 * every bit-width: [group][block of 4 output channels][k / 4][4 channels][4 k] bytes, a conv's k in tap-major order
 * where 4 divides its input channels per group (1- and 2-bit weights of big enough convs also get bit planes, for the
 * bit-serial kernel). Gemms of 1-4
 * rows take the AVX2 batch-1 layout and kernels (bs_qs8_pack_weights_rows__avx512vnni). Conv is an implicit GEMM. The direct path (2-D / 1-D convs of stride
 * 1 or 2 with 4 | input channels per group): per group the input is copied once into phase planes of 4 channels per
 * 32-bit word, and each k-group (4 channels at one tap) of 16 output pixels is one 64-byte load from them
 * (bs_qu8s8_conv_c4p_rq64_64x4c4__avx512vnni). Otherwise per group the input is gathered (im2col) into rows of k,
 * then interleaved into [16-pixel block][k / 4][16 pixels][4 bytes]. Depthwise convs take the depthwise kernels of
 * bs_kernels_avx2.c with a 32-lane row kernel (vpdpwssd); other convs with few channels per group run the GEMM with
 * most channel lanes empty (correct, not fast). Zero points outside the u8 range take the portable kernels (exact). The staged form reuses bs_avx2_job, so one thread pool drives either.
 * This file compiles to nothing without __AVX512VNNI__ and __AVX512BW__ (a bundle emitted with --isa avx512vnni
 * refuses to compile then). */
#ifndef BS_KERNELS_AVX512VNNI_H
#define BS_KERNELS_AVX512VNNI_H

#include "bs_kernels.h"
#include "bs_kernels_avx2.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of the packed weights of `groups` x `mg` output channels with `k` reduction terms each. */
size_t bs_qs8_packed_weights_size__avx512vnni(int32_t groups, int32_t mg, int32_t k);
/* Scratch bytes a conv (or a gemm of `rows` x `k`) needs: im2col, interleaved copy, fallback unpacked weights. */
size_t bs_conv_scratch_size__avx512vnni(const bs_conv_shape *s);
size_t bs_gemm_scratch_size__avx512vnni(size_t rows, size_t k, size_t m);

/* w_b = clamp(rshr(q8, shift), -2^(bits-1), 2^(bits-1)-1), packed. q8 is [groups*mg, k] (conv weights, gemm with
 * trans_b) or, with kmajor, [k, mg] (gemm without trans_b; groups must be 1). `taps` > 1: q8 is a conv's weights of
 * that many kernel taps with k in tap-major order (bs_qs8_tap_major__avx512vnni; k a multiple of 4 x taps: 4 | input
 * channels per group), as the direct path needs them and as the generated code stores them; 0: k = input channel x
 * taps + tap (gemm: plain). */
void bs_qs8_pack_weights__avx512vnni(const int8_t *q8, void *packed, int32_t groups, int32_t mg, int32_t k,
                                     int32_t kmajor, int32_t shift, int32_t bits, int32_t taps, int32_t flags);
/* flags: BS_VPACK_BSR_ROOM, the region has the bytes of bs_qs8_packed_bsr_size__avx512vnni past the packed weights
 * (1- and 2-bit weights then get bit planes); BS_VPACK_C16, conv weights: where 16 | mg (and no bit planes are made),
 * the C16 layout for the channels-in-lanes kernel (the same size). */
#define BS_VPACK_BSR_ROOM 1
#define BS_VPACK_C16 2
/* A gemm of `rows` rows: 1..4 (batch-1 fully connected layers, memory-bound) get the AVX2 batch-1 layout (2 or 4
 * weights per byte at 4 or 2 bits) within the bytes above, and run on the AVX2 batch-1 kernels; else as above. */
void bs_qs8_pack_weights_rows__avx512vnni(const int8_t *q8, void *packed, int32_t groups, int32_t mg, int32_t k,
                                          int32_t kmajor, int32_t shift, int32_t bits, size_t rows);
/* The bytes past bs_qs8_packed_weights_size__avx512vnni that the bit planes of the bit-serial w2a2 kernels take
 * (convs of one group, at least 48 input channels, a multiple of 4; `taps` kernel taps, 0 or 1 for 1 x 1); 0: the
 * conv does not take them. A pack with BS_VPACK_BSR_ROOM (the region has these bytes) and 1 or 2 weight bits writes them. */
size_t bs_qs8_packed_bsr_size__avx512vnni(int32_t groups, int32_t mg, int32_t k, int32_t taps);
/* 1 if the last run of the staged conv job took the bit-serial kernels (its weights' bit planes packed, its
 * activations within 4 consecutive values): for tests and benchmarks. */
int32_t bs_avx512vnni_bitserial(const bs_avx2_job *j);
/* Conv weights [rows, cg x taps] (4 | cg; count = rows x cg x taps) into tap-major order: index ic x taps + tap of a
 * row -> ((ic / 4) x taps + tap) x 4 + ic % 4 (what the emitter does to the stored weights of VNNI bundles). */
void bs_qs8_tap_major__avx512vnni(const int8_t *q8, int8_t *out, size_t count, int32_t taps);
/* 1 if the depthwise conv job runs the vpermb + vpdpbusd kernel (VBMI), 2 if in its two-rows-per-vector form (rows of
 * at most 8 outputs), 0 if the int16 row kernels (no VBMI; s8 input whose u8 view of the zero point is outside 0..255;
 * wider windows than one 64-byte load) or not depthwise: for tests and benchmarks. */
int32_t bs_avx512vnni_depthwise_vpermb(const bs_avx2_job *j);
/* 1 if the conv job runs the direct path (no gathered rows: bs_kernels_avx512vnni.c, "the direct path"). */
int32_t bs_avx512vnni_direct(const bs_avx2_job *j);
/* 1 if the conv job runs the channels-in-lanes GEMM (its weights packed C16, its zero point within the u8 view). */
int32_t bs_avx512vnni_channel_lanes(const bs_avx2_job *j);

/* Whole-op entry points (one thread); same arguments as the __avx2 ones, weights packed by the function above. */
void bs_qs8_conv_requant__avx512vnni(const bs_conv_shape *s, const int8_t *x, const void *packed,
                                     const bs_qmm_params *p, const bs_requant_params *rq, void *y, int32_t yt,
                                     void *scratch);
void bs_qu8_conv_requant__avx512vnni(const bs_conv_shape *s, const uint8_t *x, const void *packed,
                                     const bs_qmm_params *p, const bs_requant_params *rq, void *y, int32_t yt,
                                     void *scratch);
void bs_qs8_conv__avx512vnni(const bs_conv_shape *s, const int8_t *x, const void *packed, const bs_qmm_params *p,
                             int32_t *y, void *scratch);
void bs_qu8_conv__avx512vnni(const bs_conv_shape *s, const uint8_t *x, const void *packed, const bs_qmm_params *p,
                             int32_t *y, void *scratch);
void bs_qs8_gemm_requant__avx512vnni(size_t rows, size_t k, size_t m, int32_t trans_b, const int8_t *x,
                                     const void *packed, const bs_qmm_params *p, const bs_requant_params *rq, void *y,
                                     int32_t yt, void *scratch);
void bs_qu8_gemm_requant__avx512vnni(size_t rows, size_t k, size_t m, int32_t trans_b, const uint8_t *x,
                                     const void *packed, const bs_qmm_params *p, const bs_requant_params *rq, void *y,
                                     int32_t yt, void *scratch);
void bs_qs8_gemm__avx512vnni(size_t rows, size_t k, size_t m, int32_t trans_b, const int8_t *x, const void *packed,
                             const bs_qmm_params *p, int32_t *y, void *scratch);
void bs_qu8_gemm__avx512vnni(size_t rows, size_t k, size_t m, int32_t trans_b, const uint8_t *x, const void *packed,
                             const bs_qmm_params *p, int32_t *y, void *scratch);

/* Requant (bs_requant__generic's arguments), QAdd (bs_qadd__generic's) vectorized, bit-exact with them. */
void bs_requant__avx512vnni(const void *x, int32_t xt, void *y, int32_t yt, size_t outer, size_t channels, size_t inner,
                            const bs_requant_params *rq);
void bs_qadd__avx512vnni(const void *a, int32_t at, const void *b, int32_t bt, void *y, int32_t yt, size_t count,
                         const bs_qadd_params *p);
/* QMaxPool (bs_qmaxpool__generic's arguments), 16 outputs per step; 8-bit inputs with a column stride > 1 take the AVX2
 * one (bs_qmaxpool__avx2: whole rows, then the even bytes). */
void bs_qmaxpool__avx512vnni(const bs_window *g, size_t planes, const void *x, int32_t xt, void *y);
/* bs_ew_run__generic's tasks (bs_ew_tasks__generic) with the Requant and QAdd above and the AVX2 max pool. */
void bs_ew_run__avx512vnni(const bs_ew_job *j, int32_t task);

/* Split form for a thread pool (the bs_avx2_job of bs_kernels_avx2.h, weights packed for this ISA): count the
 * tasks, run each task index once (any thread, any order; tasks of one stage may run concurrently, stage s+1
 * starts after every task of stage s finished). The results do not depend on the order. */
int32_t bs_avx512vnni_stages(bs_avx2_job *j);
int32_t bs_avx512vnni_tasks(const bs_avx2_job *j, int32_t stage);
void bs_avx512vnni_run(const bs_avx2_job *j, int32_t stage, int32_t task);

#ifdef __cplusplus
}
#endif
#endif
