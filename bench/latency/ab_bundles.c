/* In-process A/B of two builds of one bundle (e.g. the same emitted model with an old and a new runtime): both
 * libraries are loaded (dlopen, RTLD_LOCAL: each keeps its own symbols) and their bs_run calls alternate A, B, B, A,
 * A, B, ... so that a machine whose speed changes from one second to the next (this project's 2-vCPU VMs: 2x swings)
 * slows both alike. Per profile it prints the median, p25 and p5 of each side's per-run times and B / A, and checks
 * that both gave the same output bytes. With LAYERS = 1 the per-layer timer (bs_set_layer_timing) is on and each
 * layer's p25 is printed too.
 *
 *   cc -O2 -o ab_bundles bench/latency/ab_bundles.c -ldl
 *   ab_bundles A.so B.so THREADS RUNS [LAYERS]
 * bench/latency/ab.sh builds A and B from a cached bundle and two revisions of the runtime. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    void *h, *ctx, *arena;
    float *in, *out;
    size_t (*ctx_size)(void), (*arena_size)(void), (*in_size)(void), (*out_size)(void);
    int (*init)(void *, void *, int), (*set_profile)(void *, int), (*profiles)(void), (*layers)(void);
    const char *(*profile_name)(int), *(*layer_name)(int);
    int (*run)(void *, const float *, float *), (*timing)(void *, int);
    int64_t (*layer_ns)(const void *, int);
} side;

static void *sym(void *h, const char *path, const char *name) {
    void *p = dlsym(h, name);
    if (!p) { fprintf(stderr, "ab_bundles: %s has no %s\n", path, name); exit(1); }
    return p;
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* the q-quantile of v[0..n) (sorted in place) */
static double quantile(double *v, int n, double q) {
    qsort(v, (size_t)n, sizeof *v, cmp);
    return v[(int)(q * (n - 1))];
}

static void load(side *s, const char *path, int threads) {
    s->h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!s->h) { fprintf(stderr, "ab_bundles: %s\n", dlerror()); exit(1); }
    *(void **)&s->ctx_size = sym(s->h, path, "bs_ctx_size");
    *(void **)&s->arena_size = sym(s->h, path, "bs_arena_size");
    *(void **)&s->in_size = sym(s->h, path, "bs_input_size");
    *(void **)&s->out_size = sym(s->h, path, "bs_output_size");
    *(void **)&s->init = sym(s->h, path, "bs_init");
    *(void **)&s->set_profile = sym(s->h, path, "bs_set_profile");
    *(void **)&s->profiles = sym(s->h, path, "bs_profile_count");
    *(void **)&s->profile_name = sym(s->h, path, "bs_profile_name");
    *(void **)&s->layers = sym(s->h, path, "bs_layer_count");
    *(void **)&s->layer_name = sym(s->h, path, "bs_layer_name");
    *(void **)&s->run = sym(s->h, path, "bs_run");
    *(void **)&s->timing = sym(s->h, path, "bs_set_layer_timing");
    *(void **)&s->layer_ns = sym(s->h, path, "bs_layer_time_ns");
    s->ctx = aligned_alloc(64, (s->ctx_size() + 63) / 64 * 64);
    s->arena = aligned_alloc(64, (s->arena_size() + 63) / 64 * 64 + 64);
    s->in = calloc(s->in_size() + 1, sizeof(float));
    s->out = calloc(s->out_size() + 1, sizeof(float));
    if (!s->ctx || !s->arena || !s->in || !s->out) { fprintf(stderr, "ab_bundles: out of memory\n"); exit(1); }
    for (size_t i = 0; i < s->in_size(); i++) s->in[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    if (s->init(s->ctx, s->arena, threads) != 0) { fprintf(stderr, "ab_bundles: bs_init failed for %s\n", path); exit(1); }
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s A.so B.so THREADS RUNS [LAYERS]\n", argv[0]);
        return 1;
    }
    int threads = atoi(argv[3]), runs = atoi(argv[4]), layers = argc > 5 && atoi(argv[5]);
    if (runs < 4) runs = 4;
    side s[2];
    load(&s[0], argv[1], threads);
    load(&s[1], argv[2], threads);
    if (s[0].profiles() != s[1].profiles() || s[0].layers() != s[1].layers() || s[0].out_size() != s[1].out_size()) {
        fprintf(stderr, "ab_bundles: the two bundles are not the same model\n");
        return 1;
    }
    int nl = s[0].layers();
    double *t[2], *lt[2];
    for (int k = 0; k < 2; k++) {
        t[k] = malloc(sizeof(double) * (size_t)runs);
        lt[k] = calloc((size_t)runs * (size_t)(nl > 0 ? nl : 1), sizeof(double));
        if (!t[k] || !lt[k]) { fprintf(stderr, "ab_bundles: out of memory\n"); return 1; }
    }
    printf("A %s\nB %s\n%d threads, %d runs of each per profile, alternating\n", argv[1], argv[2], threads, runs);
    for (int p = 0; p < s[0].profiles(); p++) {
        for (int k = 0; k < 2; k++) {
            s[k].set_profile(s[k].ctx, p);
            for (int w = 0; w < 5; w++) s[k].run(s[k].ctx, s[k].in, s[k].out);
        }
        for (int r = 0; r < runs; r++)
            for (int i = 0; i < 2; i++) {
                int k = (r & 1) ? 1 - i : i;   /* A B, B A, A B, ... */
                if (layers) s[k].timing(s[k].ctx, 1);
                double t0 = now_ms();
                s[k].run(s[k].ctx, s[k].in, s[k].out);
                t[k][r] = now_ms() - t0;
                if (layers)
                    for (int l = 0; l < nl; l++) lt[k][(size_t)l * runs + r] = (double)s[k].layer_ns(s[k].ctx, l) * 1e-6;
            }
        int same = memcmp(s[0].out, s[1].out, s[0].out_size() * sizeof(float)) == 0;
        double q[2][3];
        for (int k = 0; k < 2; k++) {
            q[k][0] = quantile(t[k], runs, 0.5);
            q[k][1] = quantile(t[k], runs, 0.25);
            q[k][2] = quantile(t[k], runs, 0.05);
        }
        printf("profile %s: median A %.4f B %.4f (B/A %.3f)  p25 A %.4f B %.4f (%.3f)  p5 A %.4f B %.4f (%.3f) ms%s\n",
               s[0].profile_name(p), q[0][0], q[1][0], q[1][0] / q[0][0], q[0][1], q[1][1], q[1][1] / q[0][1], q[0][2],
               q[1][2], q[1][2] / q[0][2], same ? "" : "  OUTPUTS DIFFER");
        for (int l = 0; layers && l < nl; l++) {
            double a = quantile(lt[0] + (size_t)l * runs, runs, 0.25), b = quantile(lt[1] + (size_t)l * runs, runs, 0.25);
            printf("  %-32s p25 A %.4f B %.4f (%.3f) ms\n", s[0].layer_name(l), a, b, a > 0 ? b / a : 0.0);
        }
    }
    return 0;
}
