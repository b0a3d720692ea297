// LSQ activation fake-quantizer (METHOD.md §2), forward and backward, for the training hot path.
// Division (not a reciprocal multiply) keeps x/a bit-identical to the reference implementation, so rounding ties
// fall the same way; the loops are branch-free so the compiler vectorizes them.
#include "ckernels.h"

static inline float rhe_clamped(float v, float lo, float hi) {
    float c = v < lo ? lo : v;
    c = c > hi ? hi : c;
    return (c + 0x1.8p23f) - 0x1.8p23f;  // round half to even for |c| < 2^22
}

void bs_lsq_act_forward_f32(const float *restrict x, float a, float lo, float hi, float *restrict y, long n) {
    for (long i = 0; i < n; i++) y[i] = rhe_clamped(x[i] / a, lo, hi) * a;
}

double bs_lsq_act_backward_f32(const float *restrict x, float a, float lo, float hi, const float *restrict gy,
                               float *restrict gx, long n) {
    // Sixteen double partial sums, one per lane: a fixed order (deterministic) that still vectorizes.
    enum { L = 16 };
    double acc[L] = {0};
    long i = 0;
    for (; i + L <= n; i += L) {
        float t[L];
        for (int j = 0; j < L; j++) {
            float go = gy[i + j], u = x[i + j] / a;
            gx[i + j] = (u >= lo && u <= hi) ? go : 0.0f;
            float inside = rhe_clamped(u, lo, hi) - u;
            t[j] = go * (u < lo ? lo : (u > hi ? hi : inside));
        }
        for (int j = 0; j < L; j++) acc[j] += (double)t[j];
    }
    double s = 0;
    for (; i < n; i++) {
        float go = gy[i], u = x[i] / a;
        gx[i] = (u >= lo && u <= hi) ? go : 0.0f;
        float inside = rhe_clamped(u, lo, hi) - u;
        s += (double)(go * (u < lo ? lo : (u > hi ? hi : inside)));
    }
    for (int j = 0; j < L; j++) s += acc[j];
    return s;
}
