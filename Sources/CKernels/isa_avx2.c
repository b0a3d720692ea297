// The AVX2 + FMA variant of the hot kernels (isa_kernels_tmpl.h): 8-float ymm vectors, forward tile 4 channels x
// 24 positions (12 accumulators, 3 inputs and a broadcast: the 16 ymm registers), dW tile 2 channels x 3 taps x 16
// lanes (both ymm halves of a lane group in one pass, so every pass reads whole cache lines).
// Compiled for the x86-64 baseline like the rest of CKernels; only these functions carry the target attribute,
// and the dispatcher calls them only where the CPU has AVX2 and FMA.
#include "isa_internal.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#include <string.h>

#ifdef __clang__
#pragma clang fp contract(off)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif

#define FN(name) FN_(name, avx2)
#define FN_(name, s) FN__(name, s)
#define FN__(name, s) name##_##s
#define VW 8
#define RB 4
#define NV 3
#define RBD 2
#define QBV 1024
// Software prefetch distance of the forward tiles, in bytes: the next position block (BS_NB floats) of the row each
// tap reads last. The grid's planes are far apart (a plane holds the whole batch), so the hardware prefetcher does
// not follow the C interleaved streams: with 16 channels the 32x32 layers ran 15-20 % slower without it.
#define PFD 192

typedef __m256 vf;
static inline vf VZERO(void) { return _mm256_setzero_ps(); }
static inline vf VSET1(float s) { return _mm256_set1_ps(s); }
static inline vf VLOAD(const float *p) { return _mm256_loadu_ps(p); }
static inline void VSTORE(float *p, vf v) { _mm256_storeu_ps(p, v); }
static inline vf VFMA(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }

// Forward register tiles in assembly: compilers spill this 4 x 3 tile (all 16 ymm registers live), and the
// 4 x 2 tile they do allocate well reaches a third less. Same operations in the same order as the C tiles of
// isa_kernels_tmpl.h: acc[i][j] = fma(x[j], w[i], acc[i][j]) over channels and taps in order, from zero.
// ymm0-11: accumulators (row i, vector j in ymm(3i+j)); ymm12-14: inputs; ymm15: the broadcast weight.
#define BS_ASM_TILES
#define A_LOAD3(DISP, ADDR)                                                                                \
    "vmovups " DISP "(" ADDR "), %%ymm12\n\t"                                                              \
    "vmovups " DISP "+32(" ADDR "), %%ymm13\n\t"                                                           \
    "vmovups " DISP "+64(" ADDR "), %%ymm14\n\t"
#define A_ROW(WDISP, A0, A1, A2)                                                                           \
    "vbroadcastss " WDISP "(%[w]), %%ymm15\n\t"                                                           \
    "vfmadd231ps %%ymm15, %%ymm12, %%ymm" A0 "\n\t"                                                        \
    "vfmadd231ps %%ymm15, %%ymm13, %%ymm" A1 "\n\t"                                                        \
    "vfmadd231ps %%ymm15, %%ymm14, %%ymm" A2 "\n\t"
// Weights of tap T for rows 0-3 sit at byte T*32 + 4i of the channel's packed block (BS_MR = 8 rows per tap).
#define A_ROWS(WT)                                                                                         \
    A_ROW(WT "*32", "0", "1", "2") A_ROW(WT "*32+4", "3", "4", "5")                                        \
    A_ROW(WT "*32+8", "6", "7", "8") A_ROW(WT "*32+12", "9", "10", "11")
#define A_ZERO                                                                                             \
    "vxorps %%xmm0, %%xmm0, %%xmm0\n\t" "vxorps %%xmm1, %%xmm1, %%xmm1\n\t" "vxorps %%xmm2, %%xmm2, %%xmm2\n\t"    \
    "vxorps %%xmm3, %%xmm3, %%xmm3\n\t" "vxorps %%xmm4, %%xmm4, %%xmm4\n\t" "vxorps %%xmm5, %%xmm5, %%xmm5\n\t"    \
    "vxorps %%xmm6, %%xmm6, %%xmm6\n\t" "vxorps %%xmm7, %%xmm7, %%xmm7\n\t" "vxorps %%xmm8, %%xmm8, %%xmm8\n\t"    \
    "vxorps %%xmm9, %%xmm9, %%xmm9\n\t" "vxorps %%xmm10, %%xmm10, %%xmm10\n\t" "vxorps %%xmm11, %%xmm11, %%xmm11\n\t"
// Rows of the tile are BS_NB = 48 floats (192 bytes) apart.
#define A_STORE_ROW(I, A0, A1, A2)                                                                         \
    "vmovups %%ymm" A0 ", " I "*192(%[t])\n\t" "vmovups %%ymm" A1 ", " I "*192+32(%[t])\n\t"              \
    "vmovups %%ymm" A2 ", " I "*192+64(%[t])\n\t"
#define A_STORE                                                                                            \
    A_STORE_ROW("0", "0", "1", "2") A_STORE_ROW("1", "3", "4", "5") A_STORE_ROW("2", "6", "7", "8")          \
    A_STORE_ROW("3", "9", "10", "11")
#define A_CLOBBERS                                                                                         \
    "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",    \
    "xmm11", "xmm12", "xmm13", "xmm14", "xmm15"

_Static_assert(BS_MR == 8 && BS_NB == 48 && RB == 4 && NV == 3, "the assembly tiles assume these shapes");

static inline void tile3x3_avx2(const float *x, const float *w, long C, long P, long wp, float *tp) {
    // [x] walks the top-left tap of each channel (x - wp - 1); taps of row r are at [x] + r*wp*4 + col*4.
    const float *xa = x - wp - 1;
    long n = C;
    __asm__ volatile(
        A_ZERO
        "1:\n\t"
        A_LOAD3("0", "%[x]") A_ROWS("0")
        A_LOAD3("4", "%[x]") A_ROWS("1")
        A_LOAD3("8", "%[x]") A_ROWS("2")
        A_LOAD3("0", "%[x],%[r],1") A_ROWS("3")
        A_LOAD3("4", "%[x],%[r],1") A_ROWS("4")
        A_LOAD3("8", "%[x],%[r],1") A_ROWS("5")
        A_LOAD3("0", "%[x],%[r],2") A_ROWS("6")
        A_LOAD3("4", "%[x],%[r],2") A_ROWS("7")
        A_LOAD3("8", "%[x],%[r],2") A_ROWS("8")
        "prefetcht0 %c[pf](%[x],%[r],2)\n\t"
        "prefetcht0 %c[pf]+64(%[x],%[r],2)\n\t"
        "add %[p], %[x]\n\t"
        "add $288, %[w]\n\t"          // 9 taps x BS_MR floats per channel
        "dec %[n]\n\t"
        "jnz 1b\n\t"
        A_STORE
        : [x] "+r"(xa), [w] "+r"(w), [n] "+r"(n)
        : [r] "r"(wp * 4), [p] "r"(P * 4), [t] "r"(tp), [pf] "i"(PFD)
        : A_CLOBBERS);
}

static inline void tiletap_avx2(const float *x, const long *koff, long K, const float *w, float *tp) {
    long i = 0;
    const float *xk;
    __asm__ volatile(
        A_ZERO
        "test %[n], %[n]\n\t"
        "jz 2f\n\t"
        "1:\n\t"
        "mov (%[k],%[i],8), %[xk]\n\t"
        "lea (%[x],%[xk],4), %[xk]\n\t"
        A_LOAD3("0", "%[xk]") A_ROWS("0")
        "prefetcht0 %c[pf](%[xk])\n\t"
        "add $32, %[w]\n\t"           // BS_MR floats per tap
        "inc %[i]\n\t"
        "cmp %[n], %[i]\n\t"
        "jne 1b\n\t"
        "2:\n\t"
        A_STORE
        : [w] "+r"(w), [i] "+r"(i), [xk] "=&r"(xk)
        : [x] "r"(x), [k] "r"(koff), [n] "r"(K), [t] "r"(tp), [pf] "i"(PFD)
        : A_CLOBBERS);
}

#include "isa_kernels_tmpl.h"

#ifdef __clang__
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#else
typedef int bs__no_avx2_here;   // not x86-64: the dispatcher uses the generic variant only
#endif
