// Private to CKernels: what the per-ISA translation units (isa_generic.c, isa_avx2.c, isa_avx512.c) share with
// the dispatcher (isa.c) and with conv3x3.c.
#ifndef BITSWITCH_ISA_INTERNAL_H
#define BITSWITCH_ISA_INTERNAL_H

#include "ckernels.h"

enum { BS_MR = BS_CONV3_MR, BS_NB = BS_CONV3_NB };
// dW partial sums: every (row, tap) keeps 16 lanes (lane l sums the positions q0 + l + 16k in order), whatever
// the vector width, so every ISA variant adds the same numbers in the same order.
enum { BS_DWL = 16 };

/// A run of a position block that lands on consecutive elements of one image plane in NCHW.
typedef struct { int k, len; long n, pix; } bs_run;
/// The runs of the block of BS_NB grid positions starting at q (at most BS_NB); defined in conv3x3.c.
int bs__block_runs(long q, const bs_grid *g, bs_run *out);

extern const bs_kernel_table bs__kernels_generic;
#if defined(__x86_64__) || defined(_M_X64)
extern const bs_kernel_table bs__kernels_avx2;
extern const bs_kernel_table bs__kernels_avx512;
#endif

#endif
