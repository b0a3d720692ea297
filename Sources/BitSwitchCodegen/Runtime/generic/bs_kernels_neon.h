/* BitSwitch NEON integer kernels for aarch64 (C11 + <arm_neon.h>): QConv / QGemm with the Requant fused in the
 * epilogue, bit-exact with the portable kernels of bs_kernels.c (tested against them on random shapes under qemu).
 *
 * The GEMM micro-kernels, named like XNNPACK's (MR output pixels or rows, NR output channels, KR consecutive k per
 * 32-bit group, rq64 = the int64 product-domain Requant epilogue):
 *   bs_qs8s8_gemm_rq64_8x8c4__neondot   s8 activations x s8 weights, sdot by lane (vdotq_laneq_s32, ARMv8.2 dot
 *                                       product: compiled where __ARM_FEATURE_DOTPROD is defined, e.g.
 *                                       -march=armv8.2-a+dotprod or -mcpu=cortex-a76); 16 accumulators of 4 pixels.
 *   bs_qs8s8_gemm_rq64_8x4c4__neon      the ARMv8.0 fallback: smull (s8 x s8 -> s16, exact) + sadalp (pairs into
 *                                       s32); run twice per block of 8 channels.
 * Both are exact for every w_bits 1..8 and wrap modulo 2^32 like the reference.
 * Activations are signed: i8 inputs as they are, u8 inputs flipped to x ^ 0x80 = x - 128. The per-channel sum of the
 * shifted weights, computed when a profile packs them, corrects the zero point:
 * sum (x - xz) w = sum s w - sz sum w, s = x (i8) or x - 128 (u8), sz = xz (i8) or xz - 128 (u8). Zero points whose
 * sz is outside int8 take the portable kernels (exact). The epilogue is vectorized in 64-bit lanes (smull, srshl,
 * cmgt / bsl) and bit-exact with the reference's int64 Requant.
 *
 * Weights are packed (bs_qs8_pack_weights__neon) as: a 64-byte header, int32 wsum[groups * mg8], then per group and
 * per block of 8 output channels kg = ceil(k/4) groups of [8 channels][4 k] signed bytes (zero past mg and k).
 * Conv is an implicit GEMM: per group the input is gathered (im2col) 4 rows at a time and interleaved into
 * [8-pixel block][k / 4][8 pixels][4 bytes]; gemm rows are interleaved directly. Depthwise convs (group == c == m)
 * run a direct kernel instead: int16 rows of x - x_zero, 8 outputs per step, smlal by each tap's weight.
 * The staged form takes the bs_avx2_job of bs_kernels_avx2.h (plain C, any target), so one thread pool drives
 * every family. This file compiles to nothing without __aarch64__ and NEON (a bundle emitted with --isa neon
 * refuses to compile then). */
#ifndef BS_KERNELS_NEON_H
#define BS_KERNELS_NEON_H

#include "bs_kernels.h"
#include "bs_kernels_avx2.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of the packed weights of `groups` x `mg` output channels with `k` reduction terms each. */
size_t bs_qs8_packed_weights_size__neon(int32_t groups, int32_t mg, int32_t k);
/* Scratch bytes a conv (or a gemm of `rows` x `k`) needs: gathered rows, interleaved copy, fallback weights. */
size_t bs_conv_scratch_size__neon(const bs_conv_shape *s);
size_t bs_gemm_scratch_size__neon(size_t rows, size_t k, size_t m);

/* w_b = clamp(rshr(q8, shift), -2^(bits-1), 2^(bits-1)-1), packed. q8 is [groups*mg, k] (conv weights, gemm with
 * trans_b) or, with kmajor, [k, mg] (gemm without trans_b; groups must be 1). */
void bs_qs8_pack_weights__neon(const int8_t *q8, void *packed, int32_t groups, int32_t mg, int32_t k, int32_t kmajor,
                               int32_t shift, int32_t bits);

/* Whole-op entry points (one thread); the same arguments as the __avx2 ones, weights packed by the function above. */
void bs_qs8_conv_requant__neon(const bs_conv_shape *s, const int8_t *x, const void *packed, const bs_qmm_params *p,
                               const bs_requant_params *rq, void *y, int32_t yt, void *scratch);
void bs_qu8_conv_requant__neon(const bs_conv_shape *s, const uint8_t *x, const void *packed, const bs_qmm_params *p,
                               const bs_requant_params *rq, void *y, int32_t yt, void *scratch);
void bs_qs8_conv__neon(const bs_conv_shape *s, const int8_t *x, const void *packed, const bs_qmm_params *p, int32_t *y,
                       void *scratch);
void bs_qu8_conv__neon(const bs_conv_shape *s, const uint8_t *x, const void *packed, const bs_qmm_params *p, int32_t *y,
                       void *scratch);
void bs_qs8_gemm_requant__neon(size_t rows, size_t k, size_t m, int32_t trans_b, const int8_t *x, const void *packed,
                               const bs_qmm_params *p, const bs_requant_params *rq, void *y, int32_t yt, void *scratch);
void bs_qu8_gemm_requant__neon(size_t rows, size_t k, size_t m, int32_t trans_b, const uint8_t *x, const void *packed,
                               const bs_qmm_params *p, const bs_requant_params *rq, void *y, int32_t yt, void *scratch);
void bs_qs8_gemm__neon(size_t rows, size_t k, size_t m, int32_t trans_b, const int8_t *x, const void *packed,
                       const bs_qmm_params *p, int32_t *y, void *scratch);
void bs_qu8_gemm__neon(size_t rows, size_t k, size_t m, int32_t trans_b, const uint8_t *x, const void *packed,
                       const bs_qmm_params *p, int32_t *y, void *scratch);

/* Split form for a thread pool (weights packed for this ISA): count the tasks, run each task index once (any
 * thread, any order; tasks of one stage may run concurrently, stage s+1 starts after every task of stage s
 * finished). Stage 0 gathers and interleaves (k-group ranges), stage 1 is the GEMM with its epilogue (pixel tiles x
 * channel-block ranges). The results do not depend on the order. */
int32_t bs_neon_stages(const bs_avx2_job *j);
int32_t bs_neon_tasks(const bs_avx2_job *j, int32_t stage);
void bs_neon_run(const bs_avx2_job *j, int32_t stage, int32_t task);
/* The direct depthwise conv's task count for the job (group == c == m, 2-D or 1-D, kernel height <= 64, a zero
 * point in range, buffers within the GEMM path's scratch), 0 when the job takes the GEMM path; bs_neon_* run it
 * themselves (one stage of channel ranges). */
int32_t bs_dwconv_tasks__neon(const bs_avx2_job *j);
/* The name of the GEMM micro-kernel this build compiled (it follows __ARM_FEATURE_DOTPROD), for tests and tools. */
const char *bs_neon_gemm_kernel_name(void);

#ifdef __cplusplus
}
#endif
#endif
