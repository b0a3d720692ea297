// The portable variant of the hot kernels (isa_kernels_tmpl.h): plain C, one lane at a time, with fmaf for the fused
// multiply-add. It is the reference the SIMD variants must match bit for bit and the fallback on CPUs without
// them; on aarch64 the compiler turns the lane loops into NEON fmla. Its tiles are the AVX-512 variant's (16
// lanes, 8 x 3 forward, 8 rows in dW), so testing it on any machine also tests that tiling.
#include "isa_internal.h"
#include <math.h>
#include <string.h>

#ifdef __clang__
#pragma clang fp contract(off)
#endif

#define FN(name) FN_(name, generic)
#define FN_(name, s) FN__(name, s)
#define FN__(name, s) name##_##s
#define VW 16
#define RB 8
#define NV 3
#define RBD 8
#define QBV 1024

typedef struct { float l[VW]; } vf;
static inline vf VZERO(void) { vf v; for (int i = 0; i < VW; i++) v.l[i] = 0.0f; return v; }
static inline vf VSET1(float s) { vf v; for (int i = 0; i < VW; i++) v.l[i] = s; return v; }
static inline vf VLOAD(const float *p) { vf v; memcpy(v.l, p, sizeof v.l); return v; }
static inline void VSTORE(float *p, vf v) { memcpy(p, v.l, sizeof v.l); }
static inline vf VFMA(vf a, vf b, vf c) {
    vf r;
    for (int i = 0; i < VW; i++) r.l[i] = fmaf(a.l[i], b.l[i], c.l[i]);
    return r;
}

#include "isa_kernels_tmpl.h"
