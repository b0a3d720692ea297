/* BitSwitch thread pool. See bs_threads.h. */
#if !defined(_POSIX_C_SOURCE) || _POSIX_C_SOURCE < 200809L
#undef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include "bs_threads.h"

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
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

/* Threads beyond this are not created (a request for more gets this many). */
#define BS_POOL_MAX_THREADS 256
/* Polls of a flag before a thread sleeps on the condition variable: short ops follow each other closely (three
 * stages per conv), and waking a sleeping thread costs more than most of them take. */
#define BS_POOL_SPINS 20000

static inline void bs_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

struct bs_pool {
    int threads;                 /* including the caller */
    int started;                 /* workers running */
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    /* The posted run: written by the caller before `gen` is bumped, read by workers after they see the bump. */
    bs_task_fn fn;
    const void *arg;
    int32_t stage, ntasks;
    atomic_int next;             /* next task index to take */
    atomic_int pending;          /* workers not yet finished with the posted run */
    atomic_uint gen;             /* runs posted so far */
    atomic_int stop;
    pthread_t workers[];         /* threads - 1 */
};

static void bs_pool_work(bs_pool *p) {
    int32_t n = p->ntasks;
    for (;;) {
        int32_t t = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (t >= n) break;
        p->fn(p->arg, p->stage, t);
    }
}

static void *bs_pool_main(void *v) {
    bs_pool *p = (bs_pool *)v;
    unsigned seen = 0;
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&p->gen, memory_order_acquire) == seen && !atomic_load_explicit(&p->stop, memory_order_acquire)) {
            if (++spins < BS_POOL_SPINS) { bs_relax(); continue; }
            pthread_mutex_lock(&p->mu);
            while (atomic_load_explicit(&p->gen, memory_order_acquire) == seen && !atomic_load_explicit(&p->stop, memory_order_acquire))
                pthread_cond_wait(&p->wake, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load_explicit(&p->stop, memory_order_acquire)) return NULL;
        seen = atomic_load_explicit(&p->gen, memory_order_acquire);
        bs_pool_work(p);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
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
    atomic_store_explicit(&p->stop, 1, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->started; i++) pthread_join(p->workers[i], NULL);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int bs_pool_create(bs_pool **out, int threads) {
    *out = NULL;
    threads = bs_pool_resolve_threads(threads);
    if (threads <= 1) return 0;
    bs_pool *p = (bs_pool *)calloc(1, sizeof(bs_pool) + (size_t)(threads - 1) * sizeof(pthread_t));
    if (!p) return -1;
    p->threads = threads;
    if (pthread_mutex_init(&p->mu, NULL) != 0) { free(p); return -1; }
    if (pthread_cond_init(&p->wake, NULL) != 0) { pthread_mutex_destroy(&p->mu); free(p); return -1; }
    if (pthread_cond_init(&p->done, NULL) != 0) {
        pthread_cond_destroy(&p->wake); pthread_mutex_destroy(&p->mu); free(p); return -1;
    }
    atomic_init(&p->next, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->gen, 0);
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
    p->fn = fn;
    p->arg = arg;
    p->stage = stage;
    p->ntasks = ntasks;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    atomic_store_explicit(&p->pending, p->started, memory_order_relaxed);
    /* Publishes the run; a worker that sees the new gen sees the fields above. */
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_acq_rel);
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    bs_pool_work(p);
    int spins = 0;
    while (atomic_load_explicit(&p->pending, memory_order_acquire) != 0) {
        if (++spins < BS_POOL_SPINS) { bs_relax(); continue; }
        pthread_mutex_lock(&p->mu);
        while (atomic_load_explicit(&p->pending, memory_order_acquire) != 0) pthread_cond_wait(&p->done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}

#endif
