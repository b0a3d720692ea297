// Run-time choice of the hot kernels' ISA variant (see ckernels.h), as oneDNN and XNNPACK do: CKernels is built
// for the architecture's portable baseline, so one binary runs on any x86-64, and the AVX2 and AVX-512 variants
// are used where the CPU has them.
#include "isa_internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const isa_names[BS_ISA_COUNT] = {"generic", "avx2", "avx512"};

const char *bs_isa_name(int isa) { return isa >= 0 && isa < BS_ISA_COUNT ? isa_names[isa] : NULL; }

int bs_isa_supported(int isa) {
    switch (isa) {
    case BS_ISA_GENERIC: return 1;
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__clang__) || defined(__GNUC__))
    // __builtin_cpu_supports also checks that the OS saves the wider registers (XCR0).
    case BS_ISA_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case BS_ISA_AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    default: return 0;
    }
}

const bs_kernel_table *bs_isa_kernels(int isa) {
    if (!bs_isa_supported(isa)) return NULL;
    switch (isa) {
#if defined(__x86_64__) || defined(_M_X64)
    case BS_ISA_AVX2: return &bs__kernels_avx2;
    case BS_ISA_AVX512: return &bs__kernels_avx512;
#endif
    default: return &bs__kernels_generic;
    }
}

static int best_isa(void) {
    for (int isa = BS_ISA_COUNT - 1; isa > 0; isa--)
        if (bs_isa_supported(isa)) return isa;
    return BS_ISA_GENERIC;
}

// The chosen variant. Racing first calls all compute the same choice, so plain atomic loads and stores suffice.
static int active_isa = -1;
static const bs_kernel_table *active_table;

static const bs_kernel_table *choose(void) {
    int isa = best_isa();
    const char *env = getenv("BITSWITCH_ISA");
    if (env && *env) {
        int want = -1;
        for (int i = 0; i < BS_ISA_COUNT; i++)
            if (strcmp(env, isa_names[i]) == 0) want = i;
        if (want >= 0 && bs_isa_supported(want)) {
            isa = want;
        } else {
            static int warned;
            if (!__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
                fprintf(stderr, "bitswitch: BITSWITCH_ISA=%s is %s; using %s (choices: generic, avx2, avx512)\n",
                        env, want < 0 ? "not a known ISA" : "not supported by this CPU", isa_names[isa]);
        }
    }
    const bs_kernel_table *t = bs_isa_kernels(isa);
    __atomic_store_n(&active_table, t, __ATOMIC_RELEASE);
    __atomic_store_n(&active_isa, isa, __ATOMIC_RELEASE);
    return t;
}

static inline const bs_kernel_table *kernels(void) {
    const bs_kernel_table *t = __atomic_load_n(&active_table, __ATOMIC_ACQUIRE);
    return t ? t : choose();
}

int bs_isa_active(void) {
    kernels();
    return __atomic_load_n(&active_isa, __ATOMIC_ACQUIRE);
}

int bs_isa_set(int isa) {
    const bs_kernel_table *t = bs_isa_kernels(isa);
    if (!t) return -1;
    kernels();   // an earlier env choice must not overwrite this one later
    __atomic_store_n(&active_table, t, __ATOMIC_RELEASE);
    __atomic_store_n(&active_isa, isa, __ATOMIC_RELEASE);
    return 0;
}

// ---- the dispatched entry points ----

void bs_conv3x3_fwd_f32(const float *xg, const float *wpk, float *y, const float *bias, long M, long C, long b0,
                        long b1, const bs_grid *g) {
    kernels()->conv3x3_fwd(xg, wpk, y, bias, M, C, b0, b1, g);
}

void bs_conv3x3_dw_f32(const float *dyg, const float *xg, float *acc, float *dw, long M, long C, long t0, long t1,
                       const bs_grid *g) {
    kernels()->conv3x3_dw(dyg, xg, acc, dw, M, C, t0, t1, g);
}

void bs_tapconv_fwd_f32(const float *xg, const long *koff, long K, const float *wpk, float *y, const float *bias,
                        long M, long b0, long b1, const bs_grid *g, const bs_out *o) {
    kernels()->tapconv_fwd(xg, koff, K, wpk, y, bias, M, b0, b1, g, o);
}

void bs_tapconv_dw_f32(const float *dyg, const float *xg, const long *koff, long K, float *acc, float *dw, long M,
                       long t0, long t1, const bs_grid *g) {
    kernels()->tapconv_dw(dyg, xg, koff, K, acc, dw, M, t0, t1, g);
}

void bs_lsq_act_forward_f32(const float *x, float a, float lo, float hi, float *y, long n) {
    kernels()->lsq_act_forward(x, a, lo, hi, y, n);
}

double bs_lsq_act_backward_f32(const float *x, float a, float lo, float hi, const float *gy, float *gx, long n) {
    return kernels()->lsq_act_backward(x, a, lo, hi, gy, gx, n);
}
