/* bench_kernels.c — every hot kernel's GFLOP/s beside the machine's
 * measured FP32 peak.
 *
 *   build/bench/bench_kernels [--models lenet5,cnn,cnn-bn,kaggle-deep]
 *                             [--batch 64] [--threads 0] [--seconds 0.5]
 *
 * 1. Peak: a loop of independent AVX-512 FMAs (16 accumulators, no memory
 *    traffic), on one thread and on all threads. FLOPs = 2 per lane per FMA.
 *    This is the ceiling no kernel can pass; it is measured, not taken from a
 *    data sheet, so clock and turbo behaviour of this machine are included.
 *    Where the CPU has AVX512-VNNI, the same for vpdpbusd (64 int8
 *    multiply-adds each): the int8 kernels' ceiling (src/quant).
 * 2. For each conv2d and linear layer of each model: forward, backward-data
 *    and backward-weights at the training batch, and forward at the
 *    inference batch (1000), timed through the same entry points the layers
 *    call (src/ops), with all threads. FLOPs = 2 * MACs of the pass.
 *
 * Output: a Markdown table on stdout and `kernel,model,layer,shape,pass,gflops,pct_peak`
 * CSV lines on stderr-free `--csv FILE`. Leaves out: element-wise layers
 * (memory-bound; their time shows in the model benchmark).
 */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/runtime.h"
#include "core/util.h"
#include "digits_internal.h"
#include "model/layer.h"
#include "ops/ops.h"

/* ==== the FP32 FMA and INT8 VNNI peaks ===================================== */

/* n iterations of 16 independent FMA chains; returns a value so the
 * compiler cannot drop the work. */
__attribute__((target("avx512f"), noinline)) static double fma_loop(long n) {
    __m512 a[16];
    for (int i = 0; i < 16; i++) a[i] = _mm512_set1_ps(1.0f + i * 1e-3f);
    const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    for (long it = 0; it < n; it++) /* unrolled, or a[] lives in memory and the loop measures stores */
        _Pragma("GCC unroll 16") for (int i = 0; i < 16; i++) a[i] = _mm512_fmadd_ps(a[i], m, c);
    __m512 s = a[0];
    for (int i = 1; i < 16; i++) s = _mm512_add_ps(s, a[i]);
    return _mm512_reduce_add_ps(s);
}

/* The same with 16 independent vpdpbusd chains (64 u8 x s8 multiply-adds
 * each). */
__attribute__((target("avx512f,avx512vnni"), noinline)) static double vnni_loop(long n) {
    __m512i a[16];
    for (int i = 0; i < 16; i++) a[i] = _mm512_set1_epi32(i);
    const __m512i u = _mm512_set1_epi8(3), w = _mm512_set1_epi8(-1);
    for (long it = 0; it < n; it++)
        _Pragma("GCC unroll 16") for (int i = 0; i < 16; i++) a[i] = _mm512_dpbusd_epi32(a[i], u, w);
    __m512i s = a[0];
    for (int i = 1; i < 16; i++) s = _mm512_add_epi32(s, a[i]);
    return _mm512_reduce_add_epi32(s);
}

/* G operations/s of `loop` (n iterations of ops_per_iter operations) run on
 * `threads` threads at once, each its own loop; the best of 3 rounds. */
static double measure_rate(double (*loop)(long), long n, double ops_per_iter, int threads) {
    double best = 0;
    for (int round = 0; round < 3; round++) {
        volatile double sink = 0;
        double t0 = now_seconds();
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
        {
            double v = loop(n);
#ifdef _OPENMP
#pragma omp atomic
#endif
            sink += v;
        }
        double g = (double)threads * n * ops_per_iter / (now_seconds() - t0) / 1e9;
        if (g > best) best = g;
    }
    return best;
}

/* GFLOP/s of the FMA loop: 16 * 16 * 2 FLOPs an iteration, 10 GFLOP a thread. */
static double measure_peak(int threads) { return measure_rate(fma_loop, 20000000, 16 * 16 * 2, threads); }

/* G multiply-adds/s of the vpdpbusd loop (0 without AVX512-VNNI): the int8
 * kernels' ceiling, beside measure_peak's FP32 one. */
static double measure_vnni_peak(int threads) {
    if (!__builtin_cpu_supports("avx512vnni")) return 0;
    return measure_rate(vnni_loop, 10000000, 16 * 64, threads);
}

/* ==== per-layer kernels =================================================== */

typedef struct {
    const Layer *l;
    int N;
    float *x, *y, *dx, *dy, *w, *dw, *b, *db, *ws, *partial;
    int nthreads;
} Case;

enum { PASS_FWD, PASS_BWD_DATA, PASS_BWD_WEIGHT, PASS_COUNT };
static const char *PASS_NAME[] = {"forward", "backward-data", "backward-weights"};

static void run_pass(Case *c, int pass) {
    const Layer *l = c->l;
    if (l->type == LAYER_CONV2D) {
        const int C = l->in.c, H = l->in.h, W = l->in.w, K = l->out.c, R = l->kernel;
        if (pass == PASS_FWD)
            conv2d_forward(c->y, c->x, c->w, c->b, c->N, C, H, W, K, R, R, l->stride, l->pad, c->ws, c->nthreads);
        else if (pass == PASS_BWD_DATA)
            conv2d_backward(c->dx, NULL, NULL, c->dy, c->x, c->w, c->N, C, H, W, K, R, R, l->stride, l->pad,
                            c->ws, c->partial, c->nthreads);
        else
            conv2d_backward(NULL, c->dw, c->db, c->dy, c->x, c->w, c->N, C, H, W, K, R, R, l->stride, l->pad,
                            c->ws, c->partial, c->nthreads);
    } else {
        const int D = (int)shape_size(l->in), M = l->out.c;
        if (pass == PASS_FWD)
            linear_forward(c->y, c->x, c->w, c->b, c->N, D, M);
        else if (pass == PASS_BWD_DATA)
            linear_backward(c->dx, NULL, NULL, c->dy, c->x, c->w, c->N, D, M);
        else
            linear_backward(NULL, c->dw, c->db, c->dy, c->x, c->w, c->N, D, M);
    }
}

static float *random_floats(size_t n, Rng *rng) {
    float *p = dg_xmalloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = rng_uniform(rng) - 0.5f;
    return p;
}

/* Seconds per call of one pass (best of repeated timed windows). */
static double time_pass(Case *c, int pass, double seconds) {
    run_pass(c, pass); /* warm-up: caches, page faults, BLAS buffers */
    double best = 1e30;
    double t_end = now_seconds() + seconds;
    int calls = 0;
    while (calls < 3 || now_seconds() < t_end) {
        double t0 = now_seconds();
        run_pass(c, pass);
        double dt = now_seconds() - t0;
        if (dt < best) best = dt;
        calls++;
    }
    return best;
}

static void bench_layer(const char *model, const Layer *l, int N, int nthreads, double seconds, int infer,
                        double peak, FILE *csv) {
    Rng rng;
    rng_seed(&rng, 7, "bench-kernels");
    Case c = {.l = l, .N = N, .nthreads = nthreads};
    size_t nx = (size_t)N * shape_size(l->in), ny = (size_t)N * shape_size(l->out);
    size_t nw = l->type == LAYER_CONV2D ? (size_t)l->out.c * l->in.c * l->kernel * l->kernel
                                        : (size_t)l->out.c * shape_size(l->in);
    c.x = random_floats(nx, &rng);
    c.dx = random_floats(nx, &rng);
    c.y = random_floats(ny, &rng);
    c.dy = random_floats(ny, &rng);
    c.w = random_floats(nw, &rng);
    c.dw = random_floats(nw, &rng);
    c.b = random_floats((size_t)l->out.c, &rng);
    c.db = random_floats((size_t)l->out.c, &rng);
    if (l->type == LAYER_CONV2D) {
        size_t ws = conv2d_workspace_floats(l->in.c, l->in.h, l->in.w, l->out.c, l->kernel, l->kernel, l->stride,
                                            l->pad);
        c.ws = random_floats(ws * nthreads, &rng);
        c.partial = random_floats((nw + l->out.c) * nthreads, &rng);
    }
    const double macs = (double)nw * (l->type == LAYER_CONV2D ? (double)l->out.h * l->out.w : 1.0) * N;
    char shape[96];
    if (l->type == LAYER_CONV2D)
        snprintf(shape, sizeof shape, "%dx%dx%d k%d s%d -> %dx%dx%d", l->in.c, l->in.h, l->in.w, l->kernel,
                 l->stride, l->out.c, l->out.h, l->out.w);
    else
        snprintf(shape, sizeof shape, "%zu -> %d", shape_size(l->in), l->out.c);
    for (int pass = 0; pass < (infer ? 1 : PASS_COUNT); pass++) {
        if (pass == PASS_BWD_DATA && l->index == 0) continue; /* the first layer never needs dx */
        double dt = time_pass(&c, pass, seconds);
        double gflops = 2 * macs / dt / 1e9;
        const char *kind = l->type == LAYER_CONV2D ? "conv2d" : "linear";
        char pass_name[48];
        snprintf(pass_name, sizeof pass_name, "%s%s", PASS_NAME[pass], infer ? " (infer)" : "");
        printf("| %s | %d %s | %s | %d | %s | %.3f | %.1f | %.0f %% |\n", model, l->index, kind, shape, N,
               pass_name, dt * 1e3, gflops, 100 * gflops / peak);
        if (csv)
            fprintf(csv, "%s,%s,%d,%s,%d,%s,%.6g,%.4g\n", kind, model, l->index, shape, N, pass_name, gflops,
                    100 * gflops / peak);
        fflush(stdout);
    }
    free(c.x), free(c.dx), free(c.y), free(c.dy), free(c.w), free(c.dw), free(c.b), free(c.db);
    free(c.ws), free(c.partial);
}

int main(int argc, char **argv) {
    dg_runtime_init(argv);
    const char *models = "lenet5,cnn,cnn-bn,kaggle-deep", *csv_path = NULL;
    int batch = 64, threads = 0, bf16 = 0;
    double seconds = 0.5;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--models") && v) models = v, i++;
        else if (!strcmp(a, "--batch") && v) batch = atoi(v), i++;
        else if (!strcmp(a, "--threads") && v) threads = atoi(v), i++;
        else if (!strcmp(a, "--seconds") && v) seconds = atof(v), i++;
        else if (!strcmp(a, "--csv") && v) csv_path = v, i++;
        else if (!strcmp(a, "--precision") && v && (!strcmp(v, "bf16") || !strcmp(v, "fp32"))) bf16 = !strcmp(v, "bf16"), i++;
        else {
            fprintf(stderr, "usage: bench_kernels [--models a,b] [--batch 64] [--threads 0] [--seconds 0.5] [--csv FILE] "
                            "[--precision fp32|bf16]\n");
            return 2;
        }
    }
#ifdef _OPENMP
    if (threads <= 0) threads = omp_get_max_threads();
    omp_set_num_threads(threads); /* the BLAS too: one thread means one */
#else
    threads = 1;
#endif
    if (batch < 1 || seconds <= 0) {
        fprintf(stderr, "bench_kernels: --batch and --seconds must be positive\n");
        return 2;
    }
    FILE *csv = csv_path ? fopen(csv_path, "w") : NULL;
    if (csv_path && !csv) {
        perror(csv_path);
        return 1;
    }
    if (bf16 && !conv2d_set_bf16(1)) {
        fprintf(stderr, "bench_kernels: --precision bf16: no AVX512_BF16 here\n");
        return 1;
    }
    double peak1 = measure_peak(1), peak = measure_peak(threads);
    printf("FP32 FMA peak (measured, AVX-512): %.1f GFLOP/s on 1 thread, %.1f GFLOP/s on %d threads%s\n\n", peak1,
           peak, threads, bf16 ? "; convolutions in bf16 (--precision bf16), percentages still of the FP32 peak" : "");
    double vnni1 = measure_vnni_peak(1), vnni = measure_vnni_peak(threads);
    if (vnni > 0)
        printf("INT8 VNNI peak (measured, vpdpbusd): %.1f G multiply-adds/s on 1 thread, %.1f on %d threads\n\n",
               vnni1, vnni, threads);
    printf("| model | layer | shape | batch | pass | ms | GFLOP/s | of peak |\n|---|---|---|---|---|---|---|---|\n");
    if (csv) fprintf(csv, "peak,,,,%d,fma,%.6g,100\n", threads, peak);

    char list[1024];
    snprintf(list, sizeof list, "%s", models);
    char *save = NULL;
    for (char *name = strtok_r(list, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        Model m;
        if (model_build_named(&m, name) < 0) {
            fprintf(stderr, "bench_kernels: %s\n", dg_errmsg());
            return 1;
        }
        for (int i = 0; i < m.n_layers; i++) {
            const Layer *l = &m.layers[i];
            if (l->type != LAYER_CONV2D && l->type != LAYER_LINEAR) continue;
            bench_layer(m.spec_name, l, batch, threads, seconds, 0, peak, csv);
            bench_layer(m.spec_name, l, 1000, threads, seconds, 1, peak, csv);
        }
        model_free(&m);
    }
    if (csv) fclose(csv);
    return 0;
}
