// The AVX-512 variant of the hot kernels (isa_kernels_tmpl.h): 16-float zmm vectors, forward tile 8 channels x 48
// positions (24 accumulators of the 32 zmm registers), dW tile 8 channels x 3 taps. Only AVX-512F instructions;
// the dispatcher calls these functions only where the CPU and OS support AVX-512F.
#include "isa_internal.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#include <string.h>

#ifdef __clang__
#pragma clang fp contract(off)
#pragma clang attribute push(__attribute__((target("avx512f,avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
#endif

#define FN(name) FN_(name, avx512)
#define FN_(name, s) FN__(name, s)
#define FN__(name, s) name##_##s
#define VW 16
#define RB 8
#define NV 3
#define RBD 8
#define QBV 1024
// Software prefetches (isa_kernels_tmpl.h). The grid's planes are far apart (a plane holds the whole batch), so the
// hardware prefetcher does not follow the forward tiles' C interleaved streams, nor start early enough on the plane a
// dW task reads once. Measured on ResNet-20's layer shapes (bench/train/conv_kernels.c, medians of alternating
// runs): forward 16 channels 3.5-3.9 -> 3.0-3.1 ms, 32 channels -5 %, 64 unchanged; dW -15 to -18 %; the training
// step 1.06x (1 thread) and 1.12x (2 threads) faster before the dW prefetch (bench/train/ab.sh).
#define PFD 384
#define PF_NEXT_PLANE

typedef __m512 vf;
static inline vf VZERO(void) { return _mm512_setzero_ps(); }
static inline vf VSET1(float s) { return _mm512_set1_ps(s); }
static inline vf VLOAD(const float *p) { return _mm512_loadu_ps(p); }
static inline void VSTORE(float *p, vf v) { _mm512_storeu_ps(p, v); }
static inline vf VFMA(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }

#include "isa_kernels_tmpl.h"

#ifdef __clang__
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#else
typedef int bs__no_avx512_here;   // not x86-64: the dispatcher uses the generic variant only
#endif
