/* BitSwitch thread pool. See bs_threads.h. */
#if !defined(_POSIX_C_SOURCE) || _POSIX_C_SOURCE < 200809L
#undef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include "bs_threads.h"

#include <time.h>

int64_t bs_clock_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

#include <stddef.h>

#if defined(BS_NO_THREADS)

int bs_pool_resolve_threads(int threads) { (void)threads; return 1; }
int bs_pool_create(bs_pool **pool, int threads) { (void)threads; *pool = NULL; return 0; }
int bs_pool_threads(const bs_pool *pool) { (void)pool; return 1; }
void bs_pool_run(bs_pool *pool, const void *arg, int32_t stage, int32_t ntasks, bs_task_fn fn) {
    (void)pool;
    for (int32_t t = 0; t < ntasks; t++) fn(arg, stage, t);
}
void bs_pool_destroy(bs_pool *pool) { (void)pool; }

#else

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* Threads beyond this are not created (a request for more gets this many). */
#define BS_POOL_MAX_THREADS 256
/* How long an idle worker (or the caller waiting for a task to finish) polls before it sleeps on a condition
 * variable: a conv's stages follow each other within microseconds, and waking a sleeping thread costs more. After
 * the first BS_POOL_PAUSE_NS of polling each poll yields the CPU (sched_yield): on a machine with more runnable
 * threads than cores a polling thread then gives its time slice away instead of burning it. */
#define BS_POOL_SPIN_NS 100000
#define BS_POOL_PAUSE_NS 5000

static inline void bs_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}


/* Protocol. The caller writes a job's fields (fn, arg, stage, ntasks), splits the tasks into the threads' ranges
 * and resets `done`, then publishes it by storing its number in `gen`. Everybody (the caller too) takes task indices
 * from the ranges (bs_pool_work) and counts finished tasks in `done`; the caller returns once done == ntasks, so it never waits for a worker that has not started
 * (a descheduled worker on a loaded machine costs nothing, the others take its share). A worker touches a job only
 * inside an enter/leave bracket on `active`, after checking that the job it sees is not `closed`; the caller closes
 * the job and waits for active == 0 before it writes the next job, so no worker reads half-written fields. */

/* One thread's share of a job's tasks, [front, back) packed in one word: the owner takes from the front, others
 * (once their own share is done) from the back. */
typedef struct bs_range {
    _Atomic uint64_t fb;         /* back << 32 | front */
    char pad[56];
} bs_range;

struct bs_pool {
    int threads;                 /* including the caller */
    int started;                 /* workers running */
    pthread_mutex_t mu;
    pthread_cond_t wake, finished;
    bs_task_fn fn;
    const void *arg;
    int32_t stage, ntasks;
    bs_range *ranges;            /* per thread (the caller is 0), on its own cache line */
    atomic_int ids;              /* workers' indices, 1 .. threads - 1, taken as they start */
    atomic_int done, active, sleepers, caller_sleeps;
    atomic_uint gen, closed;
    atomic_int stop;
    pthread_t workers[];         /* threads - 1 */
};

/* Takes the front (owner) or back (thief) task of r into *t; 0 when r is empty. */
static int bs_range_take(bs_range *r, int front, int32_t *t) {
    uint64_t v = atomic_load_explicit(&r->fb, memory_order_relaxed);
    for (;;) {
        uint32_t f = (uint32_t)v, b = (uint32_t)(v >> 32);
        if (f >= b) return 0;
        uint64_t nv = front ? ((uint64_t)b << 32) | (f + 1) : ((uint64_t)(b - 1) << 32) | f;
        if (atomic_compare_exchange_weak_explicit(&r->fb, &v, nv, memory_order_relaxed, memory_order_relaxed)) {
            *t = (int32_t)(front ? f : b - 1);
            return 1;
        }
    }
}

/* Takes and runs tasks of the current job until none is left: thread `self` first its own share (tasks
 * [self n / T, (self + 1) n / T) in order, so that in consecutive layers whose tasks follow the channels the same
 * thread tends to produce and read the same channels, in its own cache), then what is left of the others' from
 * their back. No shared counter is touched per task. */
static void bs_pool_work(bs_pool *p, int self) {
    int32_t n = p->ntasks;
    int T = p->threads;
    for (;;) {
        int32_t t;
        int got = bs_range_take(&p->ranges[self], 1, &t);
        for (int k = 1; !got && k < T; k++) got = bs_range_take(&p->ranges[(self + k) % T], 0, &t);
        if (!got) return;
        p->fn(p->arg, p->stage, t);
        if (atomic_fetch_add_explicit(&p->done, 1, memory_order_seq_cst) == n - 1 && self != 0
            && atomic_load_explicit(&p->caller_sleeps, memory_order_seq_cst)) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->finished);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

static void *bs_pool_main(void *v) {
    bs_pool *p = (bs_pool *)v;
    int self = atomic_fetch_add_explicit(&p->ids, 1, memory_order_relaxed) + 1;
    unsigned seen = 0;
    for (;;) {
        /* Wait for a job newer than the last one seen (or stop): poll, then sleep. */
        int64_t t0 = 0;
        for (int i = 0;; i++) {
            if (atomic_load_explicit(&p->stop, memory_order_acquire)) return NULL;
            if (atomic_load_explicit(&p->gen, memory_order_acquire) != seen) break;
            if ((i & 63) == 63) {
                int64_t now = bs_clock_ns();
                if (!t0) t0 = now;
                else if (now - t0 > BS_POOL_SPIN_NS) {
                    pthread_mutex_lock(&p->mu);
                    atomic_fetch_add_explicit(&p->sleepers, 1, memory_order_seq_cst);
                    while (atomic_load_explicit(&p->gen, memory_order_seq_cst) == seen && !atomic_load_explicit(&p->stop, memory_order_seq_cst))
                        pthread_cond_wait(&p->wake, &p->mu);
                    atomic_fetch_sub_explicit(&p->sleepers, 1, memory_order_seq_cst);
                    pthread_mutex_unlock(&p->mu);
                    t0 = 0;
                }
            }
            if (t0 && bs_clock_ns() - t0 > BS_POOL_PAUSE_NS) sched_yield(); else bs_relax();
        }
        atomic_fetch_add_explicit(&p->active, 1, memory_order_seq_cst);
        unsigned g = atomic_load_explicit(&p->gen, memory_order_seq_cst);
        if (atomic_load_explicit(&p->closed, memory_order_seq_cst) != g) bs_pool_work(p, self);
        seen = g;
        atomic_fetch_sub_explicit(&p->active, 1, memory_order_release);
    }
}

int bs_pool_resolve_threads(int threads) {
    if (threads <= 0) {
        long n = 1;
#if defined(_SC_NPROCESSORS_ONLN)
        n = sysconf(_SC_NPROCESSORS_ONLN);
#endif
        threads = n >= 1 ? (n > BS_POOL_MAX_THREADS ? BS_POOL_MAX_THREADS : (int)n) : 1;
    }
    return threads > BS_POOL_MAX_THREADS ? BS_POOL_MAX_THREADS : threads;
}

void bs_pool_destroy(bs_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store_explicit(&p->stop, 1, memory_order_seq_cst);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->started; i++) pthread_join(p->workers[i], NULL);
    pthread_cond_destroy(&p->finished);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int bs_pool_create(bs_pool **out, int threads) {
    *out = NULL;
    threads = bs_pool_resolve_threads(threads);
    if (threads <= 1) return 0;
    size_t head = sizeof(bs_pool) + (size_t)(threads - 1) * sizeof(pthread_t);
    bs_pool *p = (bs_pool *)calloc(1, head + 64 + (size_t)threads * sizeof(bs_range));
    if (!p) return -1;
    p->threads = threads;
    p->ranges = (bs_range *)(((uintptr_t)p + head + 63) & ~(uintptr_t)63);
    for (int i = 0; i < threads; i++) atomic_init(&p->ranges[i].fb, 0);
    atomic_init(&p->ids, 0);
    if (pthread_mutex_init(&p->mu, NULL) != 0) { free(p); return -1; }
    if (pthread_cond_init(&p->wake, NULL) != 0) { pthread_mutex_destroy(&p->mu); free(p); return -1; }
    if (pthread_cond_init(&p->finished, NULL) != 0) {
        pthread_cond_destroy(&p->wake); pthread_mutex_destroy(&p->mu); free(p); return -1;
    }
    atomic_init(&p->done, 0);
    atomic_init(&p->active, 0);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->caller_sleeps, 0);
    atomic_init(&p->gen, 0);
    atomic_init(&p->closed, 0);
    atomic_init(&p->stop, 0);
    for (int i = 0; i < threads - 1; i++) {
        if (pthread_create(&p->workers[i], NULL, bs_pool_main, p) != 0) { bs_pool_destroy(p); return -1; }
        p->started++;
    }
    *out = p;
    return 0;
}

int bs_pool_threads(const bs_pool *p) { return p ? p->threads : 1; }

void bs_pool_run(bs_pool *p, const void *arg, int32_t stage, int32_t ntasks, bs_task_fn fn) {
    if (!p || ntasks <= 1) {
        for (int32_t t = 0; t < ntasks; t++) fn(arg, stage, t);
        return;
    }
    /* No worker is inside the previous job (it was closed and drained), so the fields are ours to write. */
    p->fn = fn;
    p->arg = arg;
    p->stage = stage;
    p->ntasks = ntasks;
    for (int i = 0; i < p->threads; i++) {
        uint64_t f = (uint64_t)((int64_t)ntasks * i / p->threads), b = (uint64_t)((int64_t)ntasks * (i + 1) / p->threads);
        atomic_store_explicit(&p->ranges[i].fb, b << 32 | f, memory_order_relaxed);
    }
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    unsigned g = atomic_load_explicit(&p->gen, memory_order_relaxed) + 1;
    if (g == 0) g = 1;   /* 0 is "no job yet" (and closed's initial value) */
    atomic_store_explicit(&p->gen, g, memory_order_seq_cst);
    if (atomic_load_explicit(&p->sleepers, memory_order_seq_cst)) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
    bs_pool_work(p, 0);
    /* Wait for the tasks other threads took: poll, then sleep until the last one signals. */
    int64_t t0 = 0;
    for (int i = 0; atomic_load_explicit(&p->done, memory_order_acquire) < ntasks; i++) {
        if ((i & 63) == 63) {
            int64_t now = bs_clock_ns();
            if (!t0) t0 = now;
            else if (now - t0 > BS_POOL_SPIN_NS) {
                pthread_mutex_lock(&p->mu);
                atomic_store_explicit(&p->caller_sleeps, 1, memory_order_seq_cst);
                while (atomic_load_explicit(&p->done, memory_order_seq_cst) < ntasks) pthread_cond_wait(&p->finished, &p->mu);
                atomic_store_explicit(&p->caller_sleeps, 0, memory_order_relaxed);
                pthread_mutex_unlock(&p->mu);
                break;
            }
        }
        if (t0 && bs_clock_ns() - t0 > BS_POOL_PAUSE_NS) sched_yield(); else bs_relax();
    }
    /* Close the job; then wait for the workers still inside it (they finished their tasks: they only leave). */
    atomic_store_explicit(&p->closed, g, memory_order_seq_cst);
    for (int i = 0; atomic_load_explicit(&p->active, memory_order_seq_cst) != 0; i++) {
        if (i > 1000) sched_yield(); else bs_relax();
    }
}

#endif
