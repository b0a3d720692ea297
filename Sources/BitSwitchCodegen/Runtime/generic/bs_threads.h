/* BitSwitch thread pool: plain pthreads, owned by one bs_ctx (no global state). See docs/c-backend.md ("Threads").
 *
 * bs_pool_create(&pool, threads) starts threads - 1 workers (the caller is the other thread); threads <= 0 means
 * the number of online CPUs, as onnxruntime's intra_op_num_threads = 0 means "use the machine". One thread (or a
 * build with -DBS_NO_THREADS) creates no pool: *pool = NULL and every bs_pool_run runs on the caller.
 * bs_pool_run(pool, arg, stage, ntasks, fn) calls fn(arg, stage, t) once for every t in 0..ntasks-1, spread over the
 * workers and the caller, and returns when all have finished. Tasks must write disjoint outputs; a kernel whose
 * every output is computed by exactly one task with the same arithmetic gives the same bytes for every thread
 * count. The pool is one memory block (malloc) holding the pthread objects; bs_pool_destroy joins and frees it.
 * One caller at a time (a bs_ctx is used by one thread at a time). */
#ifndef BS_THREADS_H
#define BS_THREADS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bs_pool bs_pool;
typedef void (*bs_task_fn)(const void *arg, int32_t stage, int32_t task);

/* The thread count `threads` resolves to: threads >= 1 as is, otherwise the online CPUs (at least 1). */
int bs_pool_resolve_threads(int threads);
/* 0 on success (*pool is NULL for one thread), -1 when memory or a thread could not be had (nothing is left). */
int bs_pool_create(bs_pool **pool, int threads);
/* Threads a run uses (1 for a NULL pool). */
int bs_pool_threads(const bs_pool *pool);
void bs_pool_run(bs_pool *pool, const void *arg, int32_t stage, int32_t ntasks, bs_task_fn fn);
/* Joins the workers and frees the pool; NULL is a no-op. */
void bs_pool_destroy(bs_pool *pool);
/* CLOCK_MONOTONIC in nanoseconds (the per-layer timing of bs_set_layer_timing). */
int64_t bs_clock_ns(void);

#ifdef __cplusplus
}
#endif
#endif
