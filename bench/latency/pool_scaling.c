/* How much a second thread of the generated runtime's pool (bs_threads.c) can buy on this machine: one pool job of
 * 64 tasks, each either a chain of dependent scalar double adds (latency-bound: two SMT siblings of one core both run
 * at full speed) or 8 chains of vpmaddwd + vpaddd (vector-throughput-bound: two SMT siblings share the core's vector
 * units), timed at 1 and 2 threads, best of 200 jobs, three rounds.
 *   cc -std=c11 -O2 -mavx2 -pthread -I Sources/BitSwitchCodegen/Runtime/generic -o pool_scaling \
 *      bench/latency/pool_scaling.c Sources/BitSwitchCodegen/Runtime/generic/bs_threads.c && ./pool_scaling */
#define _POSIX_C_SOURCE 200809L
#include "bs_threads.h"
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

static volatile double dsink[64];
static volatile int isink[64];

static void scalar_task(const void *arg, int32_t stage, int32_t task) {
    (void)arg; (void)stage;
    double s = 0;
    for (int i = 0; i < 20000; i++) s += i * 1e-9;
    dsink[task & 63] = s;
}

static void vector_task(const void *arg, int32_t stage, int32_t task) {
    (void)arg; (void)stage;
    __m256i a[8], b = _mm256_set1_epi16(7);
    for (int k = 0; k < 8; k++) a[k] = _mm256_set1_epi16((short)(task + k));
    for (int i = 0; i < 20000; i++)
        for (int k = 0; k < 8; k++) a[k] = _mm256_add_epi32(a[k], _mm256_madd_epi16(a[k], b));
    __m256i s = a[0];
    for (int k = 1; k < 8; k++) s = _mm256_add_epi32(s, a[k]);
    isink[task & 63] = _mm256_extract_epi32(s, 0);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(void) {
    const char *names[2] = {"scalar dependent adds", "vpmaddwd chains"};
    bs_task_fn fns[2] = {scalar_task, vector_task};
    for (int f = 0; f < 2; f++)
        for (int round = 0; round < 3; round++)
            for (int th = 1; th <= 2; th++) {
                bs_pool *p;
                if (bs_pool_create(&p, th)) return 1;
                double best = 1e9;
                for (int k = 0; k < 200; k++) {
                    double a = now();
                    bs_pool_run(p, NULL, 0, 64, fns[f]);
                    double d = now() - a;
                    if (d < best) best = d;
                }
                printf("%-22s threads %d  best %.3f ms\n", names[f], th, best * 1e3);
                bs_pool_destroy(p);
            }
    return 0;
}
