/* Batch-1 latency of a compiled BitSwitch bundle (libbitswitch_model.so from `bitswitch build`) on --threads
 * threads (bs_init's thread count; default 1).
 *
 * Loads the library with dlopen (so one driver binary serves every model), allocates the context and the
 * 64-byte-aligned arena the library asks for, and for every profile: bs_set_profile, WARMUP untimed bs_run calls,
 * then RUNS timed calls (CLOCK_MONOTONIC around each call); prints the median, minimum and mean. RUNS adapts to a
 * time budget per profile (--budget seconds, between --min-runs and --max-runs) measured on the warm-up calls.
 * Then the cost of bs_set_profile: SWITCHES timed switches cycling through the profiles (each one re-shifts the
 * weights of the layers whose bit-width changes) and as many timed no-op switches to the active profile.
 * Prints one JSON object per line. The input is fixed pseudo-random N(0, 1)-like floats; the output is checked
 * to be finite and its checksum printed, so the runs cannot be optimised away.
 * Last, memory: the process's peak resident set (getrusage ru_maxrss, and /proc/self/status VmHWM, the high-water
 * mark of this address space alone), its resident set before dlopen (the driver's own baseline), the arena and
 * context the library asked for, and the library's mapped size (its PT_LOAD segments: code, read-only data, which
 * holds the stored weights, and writable data).
 *
 * --layers 1: after a profile's timed runs, as many runs again with the library's per-layer timer on
 * (bs_set_layer_timing) and one JSON line with each layer's mean ms per run (layers in the bundle's order, the
 * QConv / QGemm with what is fused into it) and their sum.
 *
 * Build: cc -std=c11 -O2 -o latency_driver latency_driver.c -ldl
 * Usage: latency_driver LIB.so [--threads 1] [--warmup 3] [--budget 2.0] [--min-runs 5] [--max-runs 1000]
 *                              [--switches 50] [--layers 0] [--only PROFILE]
 * --only PROFILE: time that profile alone (e.g. under perf).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

typedef size_t (*size_fn)(void);
typedef int (*init_fn)(void *, void *, int);
typedef void (*destroy_fn)(void *);
typedef int (*threads_fn)(const void *);
typedef int (*count_fn)(void);
typedef const char *(*name_fn)(int);
typedef int (*set_fn)(void *, int);
typedef int (*run_fn)(void *, const float *, float *);

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void *sym(void *lib, const char *name) {
    void *p = dlsym(lib, name);
    if (!p) {
        fprintf(stderr, "latency_driver: %s: %s\n", name, dlerror());
        exit(1);
    }
    return p;
}

/* A "VmRSS:" / "VmHWM:" line of /proc/self/status in kB; -1 where there is none (not Linux). */
static long status_kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    size_t n = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, n)) { v = atol(line + n); break; }
    fclose(f);
    return v;
}

/* The loaded library's PT_LOAD segments, summed by permission: executable, read-only, writable. */
struct segs { uintptr_t base; size_t text, ro, rw; int found; };

static int seg_cb(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    struct segs *s = data;
    if ((uintptr_t)info->dlpi_addr != s->base) return 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD) continue;
        if (ph->p_flags & PF_X) s->text += ph->p_memsz;
        else if (ph->p_flags & PF_W) s->rw += ph->p_memsz;
        else s->ro += ph->p_memsz;
    }
    s->found = 1;
    return 1;
}

/* JSON string body: the profile names come from the model; escape anything that is not plain ASCII text. */
static void put_json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20 || c >= 0x7f) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s LIB.so [--threads N] [--warmup N] [--budget S] [--min-runs N] [--max-runs N] [--switches N]\n",
                argv[0]);
        return 1;
    }
    int warmup = 3, min_runs = 5, max_runs = 1000, switches = 50, threads = 1, layers = 0;
    const char *only = NULL;
    double budget = 2.0;
    for (int i = 2; i < argc; i++) {
        if (i + 1 >= argc) { fprintf(stderr, "latency_driver: %s needs a value\n", argv[i]); return 1; }
        if (!strcmp(argv[i], "--warmup")) warmup = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--budget")) budget = atof(argv[++i]);
        else if (!strcmp(argv[i], "--min-runs")) min_runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--max-runs")) max_runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--switches")) switches = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--layers")) layers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--only")) only = argv[++i];
        else { fprintf(stderr, "latency_driver: unknown option %s\n", argv[i]); return 1; }
    }
    if (warmup < 1 || min_runs < 1 || max_runs < min_runs || switches < 1 || !(budget > 0)) {
        fprintf(stderr, "latency_driver: need warmup >= 1, 1 <= min-runs <= max-runs, switches >= 1, budget > 0\n");
        return 1;
    }
    long base_rss_kb = status_kb("VmRSS:");
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) { fprintf(stderr, "latency_driver: %s\n", dlerror()); return 1; }
    size_fn arena_size = (size_fn)sym(lib, "bs_arena_size"), ctx_size = (size_fn)sym(lib, "bs_ctx_size");
    size_fn in_size = (size_fn)sym(lib, "bs_input_size"), out_size = (size_fn)sym(lib, "bs_output_size");
    init_fn init = (init_fn)sym(lib, "bs_init");
    destroy_fn destroy = (destroy_fn)sym(lib, "bs_destroy");
    threads_fn thread_count = (threads_fn)sym(lib, "bs_thread_count");
    count_fn profile_count = (count_fn)sym(lib, "bs_profile_count");
    name_fn profile_name = (name_fn)sym(lib, "bs_profile_name");
    set_fn set_profile = (set_fn)sym(lib, "bs_set_profile");
    run_fn run = (run_fn)sym(lib, "bs_run");

    size_t na = (arena_size() + 63) / 64 * 64, nc = (ctx_size() + 63) / 64 * 64;
    size_t ni = in_size(), no = out_size();
    void *arena = aligned_alloc(64, na ? na : 64), *ctx = aligned_alloc(64, nc ? nc : 64);
    float *in = malloc(ni * sizeof *in), *out = malloc(no * sizeof *out);
    int cap = max_runs > 2 * switches ? max_runs : 2 * switches;
    double *t = malloc((size_t)cap * sizeof *t);
    if (!arena || !ctx || !in || !out || !t) { fprintf(stderr, "latency_driver: out of memory\n"); return 1; }
    uint64_t s = 0x9E3779B97F4A7C15u;
    for (size_t i = 0; i < ni; i++) {  /* sum of 4 uniforms, centred and scaled: roughly N(0, 1) */
        double u = 0;
        for (int k = 0; k < 4; k++) {
            s = s * 6364136223846793005u + 1442695040888963407u;
            u += (double)(s >> 11) * (1.0 / 9007199254740992.0);
        }
        in[i] = (float)((u - 2.0) * 1.7320508);
    }
    int rc = init(ctx, arena, threads);
    if (rc) { fprintf(stderr, "latency_driver: bs_init returned %d\n", rc); return 1; }
    int np = profile_count();
    printf("{\"kind\": \"model\", \"arena_bytes\": %zu, \"ctx_bytes\": %zu, \"input\": %zu, \"output\": %zu, "
           "\"profiles\": %d, \"threads\": %d}\n", arena_size(), ctx_size(), ni, no, np, thread_count(ctx));
    for (int p = 0; p < np; p++) {
        if (only && strcmp(only, profile_name(p))) continue;
        if ((rc = set_profile(ctx, p))) { fprintf(stderr, "latency_driver: bs_set_profile(%d) = %d\n", p, rc); return 1; }
        double t0 = now();
        for (int i = 0; i < warmup; i++)
            if ((rc = run(ctx, in, out))) { fprintf(stderr, "latency_driver: bs_run = %d\n", rc); return 1; }
        double each = (now() - t0) / warmup;
        int runs = each > 0 ? (int)(budget / each) : max_runs;
        if (runs < min_runs) runs = min_runs;
        if (runs > max_runs) runs = max_runs;
        double sum = 0, check = 0;
        for (int i = 0; i < runs; i++) {
            double a = now();
            run(ctx, in, out);
            t[i] = now() - a;
            sum += t[i];
        }
        for (size_t i = 0; i < no; i++) {
            if (!isfinite(out[i])) { fprintf(stderr, "latency_driver: output %zu is not finite\n", i); return 1; }
            check += out[i];
        }
        double mean = sum / runs, med = median(t, runs);
        printf("{\"kind\": \"run\", \"profile\": ");
        put_json_string(profile_name(p));
        printf(", \"threads\": %d, \"runs\": %d, \"median_ms\": %.6f, \"min_ms\": %.6f, \"mean_ms\": %.6f, "
               "\"checksum\": %.9g}\n", thread_count(ctx), runs, med * 1e3, t[0] * 1e3, mean * 1e3, check);
        if (layers) {
            int (*set_timing)(void *, int) = (int (*)(void *, int))dlsym(lib, "bs_set_layer_timing");
            int64_t (*layer_ns)(const void *, int) = (int64_t (*)(const void *, int))dlsym(lib, "bs_layer_time_ns");
            count_fn layer_count = (count_fn)dlsym(lib, "bs_layer_count");
            name_fn layer_name = (name_fn)dlsym(lib, "bs_layer_name");
            if (!set_timing || !layer_ns || !layer_count || !layer_name) {
                fprintf(stderr, "latency_driver: this library has no per-layer timer (bs_set_layer_timing)\n");
                return 1;
            }
            set_timing(ctx, 1);
            for (int i = 0; i < runs; i++) run(ctx, in, out);
            double total = 0;
            printf("{\"kind\": \"layers\", \"profile\": ");
            put_json_string(profile_name(p));
            printf(", \"threads\": %d, \"runs\": %d, \"mean_ms\": {", thread_count(ctx), runs);
            for (int l = 0; l < layer_count(); l++) {
                double ms = (double)layer_ns(ctx, l) / runs * 1e-6;
                total += ms;
                printf("%s", l ? ", " : "");
                put_json_string(layer_name(l));
                printf(": %.6f", ms);
            }
            printf("}, \"sum_ms\": %.6f}\n", total);
            set_timing(ctx, 0);
        }
    }
    /* bs_set_profile: cycle 0 -> 1 -> ... -> np-1 -> 0, each switch timed; then no-op switches to the active one. */
    int cur = np - 1, n = 0;
    set_profile(ctx, cur);
    for (int i = 0; i < switches; i++) {
        cur = (cur + 1) % np;
        double a = now();
        set_profile(ctx, cur);
        t[n++] = now() - a;
    }
    /* the same times by the profile switched to (switch i went to profile (i + 1) mod np... from np - 1) */
    double *by = malloc((size_t)switches * sizeof *by);
    double into[64];
    for (int p = 0; p < np && p < 64; p++) {
        int m = 0;
        for (int i = 0; i < switches; i++) if ((i % np) == p) by[m++] = t[i];
        into[p] = m ? median(by, m) : 0;
    }
    free(by);
    double sw_med = median(t, n), sw_max = t[n - 1];
    n = 0;
    for (int i = 0; i < switches; i++) {
        double a = now();
        set_profile(ctx, cur);
        t[n++] = now() - a;
    }
    double same_med = median(t, n);
    printf("{\"kind\": \"switch\", \"threads\": %d, \"switches\": %d, \"median_us\": %.3f, \"max_us\": %.3f, \"noop_median_us\": %.3f, \"into_median_us\": {",
           thread_count(ctx), switches, sw_med * 1e6, sw_max * 1e6, same_med * 1e6);
    for (int p = 0; p < np && p < 64; p++) {
        printf(p ? ", " : "");
        put_json_string(profile_name(p));
        printf(": %.3f", into[p] * 1e6);
    }
    printf("}}\n");
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    struct segs sg = {0};
    Dl_info di;
    if (dladdr((void *)run, &di) && di.dli_fbase) {
        sg.base = (uintptr_t)di.dli_fbase;
        dl_iterate_phdr(seg_cb, &sg);
    }
    /* dladdr's base is the ELF header's address, dlpi_addr the load bias: equal for a shared library whose first
       segment starts at virtual address 0 (every one ld and lld make); otherwise the sizes are reported as -1. */
    printf("{\"kind\": \"memory\", \"threads\": %d, \"peak_rss_kb\": %ld, \"hwm_kb\": %ld, \"base_rss_kb\": %ld, "
           "\"arena_bytes\": %zu, \"ctx_bytes\": %zu, \"so_text_bytes\": %ld, \"so_ro_bytes\": %ld, \"so_rw_bytes\": %ld}\n",
           thread_count(ctx), (long)ru.ru_maxrss, status_kb("VmHWM:"), base_rss_kb, arena_size(), ctx_size(),
           sg.found ? (long)sg.text : -1L, sg.found ? (long)sg.ro : -1L, sg.found ? (long)sg.rw : -1L);
    destroy(ctx);
    free(t); free(out); free(in); free(ctx); free(arena);
    dlclose(lib);
    return 0;
}
