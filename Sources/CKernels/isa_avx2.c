// The AVX2 + FMA variant of the hot kernels (isa_kernels_tmpl.h): 8-float ymm vectors, forward tile 4 channels x
// 24 positions (12 accumulators, 3 inputs and a broadcast: the 16 ymm registers), dW tile 4 channels x 3 taps.
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
#define NV 2
#define RBD 4

typedef __m256 vf;
static inline vf VZERO(void) { return _mm256_setzero_ps(); }
static inline vf VSET1(float s) { return _mm256_set1_ps(s); }
static inline vf VLOAD(const float *p) { return _mm256_loadu_ps(p); }
static inline void VSTORE(float *p, vf v) { _mm256_storeu_ps(p, v); }
static inline vf VFMA(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }

#include "isa_kernels_tmpl.h"

#ifdef __clang__
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#else
typedef int bs__no_avx2_here;   // not x86-64: the dispatcher uses the generic variant only
#endif
