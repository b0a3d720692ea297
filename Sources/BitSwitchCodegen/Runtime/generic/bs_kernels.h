/* BitSwitch portable integer kernels (C11): the bit-exact reference of docs/int-ops.md.
 * Every fast kernel is tested against these. Names follow XNNPACK's style:
 * bs_<input type>_<op>[_requant]__<implementation>. No allocation, no global state. */
#ifndef BS_KERNELS_H
#define BS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Element containers of integer tensors. */
enum { BS_T_I8 = 0, BS_T_U8 = 1, BS_T_I32 = 2 };
static inline size_t bs_esize(int32_t t) { return t == BS_T_I32 ? 4 : 1; }   /* bytes per element */

/* A conv or pool window over up to 3 spatial dims (1-D and 2-D use leading extents of 1). */
typedef struct bs_window {
    int32_t d, h, w;        /* input spatial extents */
    int32_t od, oh, ow;     /* output spatial extents */
    int32_t kd, kh, kw;     /* kernel */
    int32_t sd, sh, sw;     /* strides */
    int32_t pd, ph, pw;     /* begin pads */
    int32_t ped, peh, pew;  /* end pads (average pool with count_include_pad) */
    int32_t dd, dh, dw;     /* dilations */
} bs_window;

/* QConv: batch 1, x [C, spatial], w [M, C/group, kernel]. */
typedef struct bs_conv_shape {
    bs_window win;
    int32_t c, m, group;
} bs_conv_shape;

/* Parameters of QConv / QGemm that a profile changes. */
typedef struct bs_qmm_params {
    int32_t x_zero, w_shift, w_bits;
} bs_qmm_params;

/* Requant: y = clamp(rshr(x * m_c + bias_c, n_c) + zero, lo, hi) in int64, tables of `count` (1 or C) entries;
 * the bias is in the product domain (n_c fractional bits). */
typedef struct bs_requant_params {
    const int32_t *m, *n;
    const int64_t *bias;
    int32_t count;
    int64_t zero, lo, hi;
} bs_requant_params;

typedef struct bs_qadd_params {
    int64_t m_a, m_b, n, a_zero, b_zero, zero, lo, hi;
} bs_qadd_params;

/* The range of a container. */
static inline int64_t bs_cmin(int32_t t) { return t == BS_T_I8 ? INT8_MIN : (t == BS_T_U8 ? 0 : INT32_MIN); }
static inline int64_t bs_cmax(int32_t t) { return t == BS_T_I8 ? INT8_MAX : (t == BS_T_U8 ? UINT8_MAX : INT32_MAX); }
/* Every x - zero of both containers and both multipliers fit int32 (every QAdd the lowering makes): a vector QAdd may
 * subtract in 32-bit lanes and multiply by vpmuldq exactly (two such products sum without wrapping). */
static inline int bs_qadd_fits_i32(const bs_qadd_params *p, int32_t at, int32_t bt) {
    return p->m_a >= INT32_MIN && p->m_a <= INT32_MAX && p->m_b >= INT32_MIN && p->m_b <= INT32_MAX
        && p->a_zero >= bs_cmax(at) - INT32_MAX && p->a_zero <= bs_cmin(at) - INT32_MIN
        && p->b_zero >= bs_cmax(bt) - INT32_MAX && p->b_zero <= bs_cmin(bt) - INT32_MIN;
}

typedef struct bs_quantize_params {
    float scale;
    int64_t zero, lo, hi;
} bs_quantize_params;

typedef struct bs_dequantize_params {
    float scale;
    int64_t zero;
} bs_dequantize_params;

/* w_b = clamp(rshr(q8, shift), -2^(bits-1), 2^(bits-1) - 1). */
void bs_qs8_shift_weights__generic(const int8_t *q8, int8_t *wb, size_t count, int32_t shift, int32_t bits);

void bs_f32_quantize__generic(const float *x, void *y, int32_t yt, size_t count, const bs_quantize_params *p);
void bs_dequantize__generic(const void *x, int32_t xt, float *y, size_t count, const bs_dequantize_params *p);

/* Integer conv, int32 accumulators (wrapping to int32 like the reference). */
void bs_qs8_conv__generic(const bs_conv_shape *s, const int8_t *x, const int8_t *w, const bs_qmm_params *p, int32_t *y);
void bs_qu8_conv__generic(const bs_conv_shape *s, const uint8_t *x, const int8_t *w, const bs_qmm_params *p, int32_t *y);
/* Conv fused with the Requant (per output channel or per tensor) that is its only consumer. */
void bs_qs8_conv_requant__generic(const bs_conv_shape *s, const int8_t *x, const int8_t *w, const bs_qmm_params *p,
                                  const bs_requant_params *rq, void *y, int32_t yt);
void bs_qu8_conv_requant__generic(const bs_conv_shape *s, const uint8_t *x, const int8_t *w, const bs_qmm_params *p,
                                  const bs_requant_params *rq, void *y, int32_t yt);

/* x [rows, k] times w ([k, m], or [m, k] with trans_b). */
void bs_qs8_gemm__generic(size_t rows, size_t k, size_t m, int32_t trans_b, const int8_t *x, const int8_t *w,
                          const bs_qmm_params *p, int32_t *y);
void bs_qu8_gemm__generic(size_t rows, size_t k, size_t m, int32_t trans_b, const uint8_t *x, const int8_t *w,
                          const bs_qmm_params *p, int32_t *y);
/* Gemm fused with a Requant along the last axis (or per tensor). */
void bs_qs8_gemm_requant__generic(size_t rows, size_t k, size_t m, int32_t trans_b, const int8_t *x, const int8_t *w,
                                  const bs_qmm_params *p, const bs_requant_params *rq, void *y, int32_t yt);
void bs_qu8_gemm_requant__generic(size_t rows, size_t k, size_t m, int32_t trans_b, const uint8_t *x, const int8_t *w,
                                  const bs_qmm_params *p, const bs_requant_params *rq, void *y, int32_t yt);

/* Split form of the four conv / gemm kernels above for a thread pool: bs_qmm_tasks__generic(j) tasks, each writing
 * a block of output channels (conv) or output columns (gemm) with the same arithmetic; run each task once, in any
 * order, concurrently. rq == NULL: int32 accumulators out (yt ignored). */
typedef struct bs_qmm_job {
    const void *x;
    int32_t xt, yt;
    const int8_t *w;
    const bs_qmm_params *p;
    const bs_requant_params *rq;
    void *y;
    const bs_conv_shape *conv;   /* NULL: gemm */
    size_t rows, k, m;
    int32_t trans_b;
} bs_qmm_job;
int32_t bs_qmm_tasks__generic(const bs_qmm_job *j);
void bs_qmm_run__generic(const bs_qmm_job *j, int32_t task);

/* Requant of x viewed as [outer, channels, inner]; tables have rq->count (1 or channels) entries. */
void bs_requant__generic(const void *x, int32_t xt, void *y, int32_t yt, size_t outer, size_t channels, size_t inner,
                         const bs_requant_params *rq);

void bs_qadd__generic(const void *a, int32_t at, const void *b, int32_t bt, void *y, int32_t yt, size_t count,
                      const bs_qadd_params *p);

/* Pools over `planes` = N*C planes. */
void bs_qmaxpool__generic(const bs_window *g, size_t planes, const void *x, int32_t xt, void *y);
void bs_qavgpool__generic(const bs_window *g, size_t planes, int32_t count_include_pad, int64_t zero,
                          const void *x, int32_t xt, void *y);

/* Split form of requant (rows of [outer * channels][inner]), qadd (elements) and the pools (planes) for a thread
 * pool: bs_ew_tasks__generic(j) tasks, run each once in any order, concurrently; the same results as the calls above.
 * Fields a kind does not use are ignored. */
enum { BS_EW_REQUANT = 0, BS_EW_QADD = 1, BS_EW_MAXPOOL = 2, BS_EW_AVGPOOL = 3 };
/* A Requant that reads a QAdd's or max pool's result, applied inside that job (bs_ew_job.readers). */
typedef struct bs_ew_reader {
    const bs_requant_params *rq;
    void *y;
    int32_t yt;
} bs_ew_reader;
typedef struct bs_ew_job {
    int32_t kind;
    const void *x;
    int32_t xt;
    const void *b;               /* qadd: the second input */
    int32_t bt;
    void *y;
    int32_t yt;
    size_t outer, channels, inner; /* requant */
    size_t count;                /* qadd: elements; pools: planes */
    const bs_requant_params *rq;
    const bs_qadd_params *qadd;
    const bs_window *win;
    int32_t count_include_pad;
    int64_t zero;                /* avgpool */
    /* QAdd, max pool: nreaders (1 or 2) Requants of the result, fused. The result is made a chunk at a time in a
     * buffer of BS_EW_CHUNK_BYTES (a max pool: a whole output plane, which must fit) and requantized from there into
     * each reader's output; y is not written. rchannels, rinner: the readers' channel view of the result, rows of
     * rinner elements of channel (row % rchannels). Three passes over memory become one, bit-exact. */
    int32_t nreaders;
    bs_ew_reader readers[2];
    size_t rchannels, rinner;
} bs_ew_job;
#define BS_EW_CHUNK_BYTES 16384
int32_t bs_ew_tasks__generic(const bs_ew_job *j);
void bs_ew_run__generic(const bs_ew_job *j, int32_t task);
/* The units (rows, elements or planes) [*u0, *u1) task `task` of bs_ew_run__generic covers (fast variants split alike). */
void bs_ew_task_range__generic(const bs_ew_job *j, int32_t task, size_t *u0, size_t *u1);
/* bs_ew_run__generic's task with one ISA's kernels (each ISA's bs_ew_run is this with its own): n values of
 * container xt at x requantized into y[yi .. yi + n) as channel c; QAdd elements [i0, i1); max pool planes [p0, p1). */
typedef struct bs_ew_ops {
    void (*requant_span)(const void *x, int32_t xt, void *y, int32_t yt, size_t yi, size_t n, const bs_requant_params *rq, size_t c);
    void (*qadd_range)(const void *a, int32_t at, const void *b, int32_t bt, void *y, int32_t yt, const bs_qadd_params *p,
                       size_t i0, size_t i1);
    void (*maxpool_planes)(const bs_window *g, size_t p0, size_t p1, const void *x, int32_t xt, void *y);
} bs_ew_ops;
void bs_ew_run_readers(const bs_ew_job *j, size_t u0, size_t u1, const bs_ew_ops *ops);   /* units [u0, u1), nreaders > 0 */
static inline void bs_ew_run_with(const bs_ew_job *j, int32_t task, const bs_ew_ops *ops) {
    size_t u0, u1;
    if (j->kind == BS_EW_AVGPOOL && j->nreaders == 0) { bs_ew_run__generic(j, task); return; }
    bs_ew_task_range__generic(j, task, &u0, &u1);
    if (j->nreaders > 0) { bs_ew_run_readers(j, u0, u1, ops); return; }
    switch (j->kind) {
    case BS_EW_REQUANT:
        for (size_t r = u0; r < u1; r++)
            ops->requant_span((const unsigned char *)j->x + r * j->inner * bs_esize(j->xt), j->xt, j->y, j->yt, r * j->inner,
                              j->inner, j->rq, r % j->channels);
        break;
    case BS_EW_QADD: ops->qadd_range(j->x, j->xt, j->b, j->bt, j->y, j->yt, j->qadd, u0, u1); break;
    default: ops->maxpool_planes(j->win, u0, u1, j->x, j->xt, j->y); break;
    }
}

/* Data movement. */
void bs_copy_rows__generic(void *dst, size_t dst_stride, const void *src, size_t src_stride, size_t row_bytes,
                           size_t rows);
void bs_transpose__generic(const void *x, void *y, size_t elem, int32_t rank, const int64_t *in_shape,
                           const int32_t *perm);

#ifdef __cplusplus
}
#endif
#endif
