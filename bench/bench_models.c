/* bench_models.c — digits' side of the model benchmark (bench/run.sh runs
 * it next to bench/bench_torch.py, which does the same work in PyTorch).
 *
 * For each zoo model: build it, initialise it (seed 42), and measure
 *   train_img_s        Adam training steps at batch B, exactly the step
 *                      src/train/train.c takes (load pixels, forward,
 *                      softmax cross-entropy, backward, optimiser step);
 *   infer_img_s        eval-mode forward at batch 1000 (what eval/predict do);
 *   latency_median_us  one image, load pixels + forward, median of 1000 calls;
 *   latency_p99_us     the same calls' 99th percentile.
 * Inputs are seeded random uint8 images and labels (the speed does not depend
 * on the pixels), so no data files are needed.
 *
 * Output: one CSV line per model and metric on stdout, `impl,model,metric,value`
 * (impl = digits), with no header; notes (threads, OpenBLAS core, MACs) go to
 * stderr so the CSV stays clean.
 *
 * Leaves out on purpose: data loading, shuffling and augmentation (the
 * trainer's per-epoch costs), and accuracy — this measures speed only.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/blas.h"
#include "core/runtime.h"
#include "digits_internal.h"
#include "ops/ops.h"

#define INFER_BATCH 1000
#define POOL_IMAGES 1024 /* distinct random images the batches cycle through */

/* ==== options ============================================================= */

typedef struct {
    char models[1024];   /* comma-separated zoo names or spec paths */
    int batch;           /* training batch */
    int threads;         /* <= 0: all cores */
    double seconds;      /* minimum timed seconds per throughput figure */
    int latency_calls;   /* single-image calls timed */
    uint64_t seed;
    int bf16;            /* --precision bf16 */
    int profile;         /* --profile: time per layer */
    int latency_only;    /* --latency-only: skip the training and batch-1000 figures */
} Options;

static void usage(FILE *f) {
    fprintf(f,
            "usage: bench_models [options]\n"
            "  --models a,b,c     zoo names or spec paths (default lenet5,cnn,cnn-bn)\n"
            "  --batch N          training batch size (default 64)\n"
            "  --threads N        threads; 0 = all cores (default 0)\n"
            "  --seconds S        minimum timed seconds per throughput figure (default 2)\n"
            "  --latency-calls N  single-image calls for the latency figures (default 1000)\n"
            "  --seed N           seed for weights and random inputs (default 42)\n"
            "  --precision P      fp32 or bf16 (bf16 convolutions; needs AVX512_BF16)\n"
            "  --profile          also print the time of every layer (train fwd/bwd, eval,\n"
            "                     and of the one-image forward with its GFLOP/s)\n"
            "  --latency-only     only the one-image figures (with --profile: its profile)\n"
            "prints impl,model,metric,value lines (impl=digits) on stdout\n");
}

/* Tier-3 error: print file:line, the problem and a hint, then exit non-zero. */
#define BENCH_CHECK(cond, ...)                                                  \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "%s:%d: error: ", __FILE__, __LINE__);              \
            fprintf(stderr, __VA_ARGS__);                                       \
            fprintf(stderr, "\n");                                              \
            exit(1);                                                            \
        }                                                                       \
    } while (0)

static long parse_long(const char *flag, const char *s, long lo, long hi) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "bench_models: %s: '%s' should be an integer in %ld..%ld\n", flag, s, lo, hi);
        exit(2);
    }
    return v;
}

static void parse_options(Options *o, int argc, char **argv) {
    snprintf(o->models, sizeof o->models, "lenet5,cnn,cnn-bn");
    o->batch = 64;
    o->threads = 0;
    o->seconds = 2.0;
    o->latency_calls = 1000;
    o->seed = 42;
    o->bf16 = 0;
    o->profile = 0;
    o->latency_only = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        }
        if (!strcmp(a, "--profile")) {
            o->profile = 1;
            continue;
        }
        if (!strcmp(a, "--latency-only")) {
            o->latency_only = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "bench_models: %s needs a value (or unknown option)\n", a);
            usage(stderr);
            exit(2);
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--models")) {
            snprintf(o->models, sizeof o->models, "%s", v);
        } else if (!strcmp(a, "--batch")) {
            o->batch = (int)parse_long(a, v, 1, 100000);
        } else if (!strcmp(a, "--threads")) {
            o->threads = (int)parse_long(a, v, 0, 1024);
        } else if (!strcmp(a, "--seconds")) {
            char *end;
            o->seconds = strtod(v, &end);
            if (*v == '\0' || *end != '\0' || !(o->seconds > 0 && o->seconds <= 3600)) {
                fprintf(stderr, "bench_models: --seconds: '%s' should be a number in (0, 3600]\n", v);
                exit(2);
            }
        } else if (!strcmp(a, "--latency-calls")) {
            o->latency_calls = (int)parse_long(a, v, 10, 10000000);
        } else if (!strcmp(a, "--precision")) {
            if (strcmp(v, "fp32") && strcmp(v, "bf16")) {
                fprintf(stderr, "bench_models: --precision: '%s' is not fp32 or bf16\n", v);
                exit(2);
            }
            o->bf16 = !strcmp(v, "bf16");
        } else if (!strcmp(a, "--seed")) {
            o->seed = (uint64_t)parse_long(a, v, 0, 0x7fffffffffffffffL);
        } else {
            fprintf(stderr, "bench_models: unknown option '%s'\n", a);
            usage(stderr);
            exit(2);
        }
    }
}

/* ==== helpers ============================================================= */

static double now(void) {
    struct timespec ts;
    /* BENCH_CLOCK=cpu: process CPU time instead of wall time. With --threads 1
     * it measures the work itself while other jobs share the machine (for
     * A/B comparisons during development; reported figures are wall time). */
    static int cpu = -1;
    if (cpu < 0) cpu = getenv("BENCH_CLOCK") && strcmp(getenv("BENCH_CLOCK"), "cpu") == 0;
    clock_gettime(cpu ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Quantile q (0..1) of a sorted array, linear interpolation (numpy's default). */
static double quantile(const double *sorted, int n, double q) {
    double pos = q * (n - 1);
    int i = (int)pos;
    if (i >= n - 1) return sorted[n - 1];
    return sorted[i] + (pos - i) * (sorted[i + 1] - sorted[i]);
}

static void emit(const char *model, const char *metric, double value) {
    printf("digits,%s,%s,%.6g\n", model, metric, value);
    fflush(stdout);
}

/* Warm up (at least min_warm calls and 10 % of the budget), then call
 * step(ctx) until at least `seconds` have passed and min_timed calls were
 * made. Returns the timed calls; *elapsed gets their wall time. */
static long timed_loop(void (*step)(void *), void *ctx, double seconds, int min_warm, int min_timed,
                       double *elapsed) {
    double t0 = now();
    for (int warm = 0; warm < min_warm || now() - t0 < 0.1 * seconds; warm++) step(ctx);
    long calls = 0;
    t0 = now();
    do {
        step(ctx);
        calls++;
        *elapsed = now() - t0;
    } while (*elapsed < seconds || calls < min_timed);
    return calls;
}

/* ==== the three measurements ============================================== */

typedef struct {
    Model *m;
    Optimizer opt;
    int B;
    size_t img;
    const uint8_t *pool, *labels; /* (POOL_IMAGES, img), (POOL_IMAGES) */
    uint8_t *px, *y;              /* (B, img), (B): the batch */
    float *probs;                 /* (B, 10) */
    int cursor;                   /* next pool image */
    float loss;                   /* last step's */
} TrainBench;

/* One training step on the next B pool images (wrapping around), the
 * step train_run takes: gather the batch, load pixels, forward, softmax
 * cross-entropy into the last layer's dy, zero grads, backward, Adam. */
static void train_step(void *ctx) {
    TrainBench *t = ctx;
    Model *m = t->m;
    for (int i = 0; i < t->B; i++, t->cursor = (t->cursor + 1) % POOL_IMAGES) {
        memcpy(t->px + (size_t)i * t->img, t->pool + (size_t)t->cursor * t->img, t->img);
        t->y[i] = t->labels[t->cursor];
    }
    Layer *last = &m->layers[m->n_layers - 1];
    model_load_pixels(m, t->px, t->B);
    float *logits = model_forward(m, t->B, 1);
    t->loss = softmax_xent_forward(t->probs, logits, t->y, t->B, MODEL_NUM_CLASSES);
    softmax_xent_backward(last->dy, t->probs, t->y, t->B, MODEL_NUM_CLASSES);
    model_zero_grad(m);
    model_backward(m, last->dy, t->B);
    optim_step(&t->opt, m->params, m->grads, 1e-3f);
}

/* Adam steps at batch B, as train_run takes them. Returns images/s. */
static double bench_train(Model *m, const Options *o, const uint8_t *pool, const uint8_t *labels) {
    TrainBench t = {.m = m, .B = o->batch, .img = shape_size(m->input_shape), .pool = pool, .labels = labels};
    model_set_batch(m, t.B, 1, o->threads);
    optim_init(&t.opt, OPTIM_ADAM, m->n_param);
    t.px = dg_xmalloc((size_t)t.B * t.img);
    t.y = dg_xmalloc((size_t)t.B);
    t.probs = dg_xmalloc((size_t)t.B * MODEL_NUM_CLASSES * sizeof(float));
    double elapsed;
    long steps = timed_loop(train_step, &t, o->seconds, 3, 5, &elapsed);
    BENCH_CHECK(t.loss == t.loss, "%s: training loss is NaN; the kernels are broken", m->spec_name);
    fprintf(stderr, "  train: %ld steps of %d in %.2f s, last loss %.4f\n", steps, t.B, elapsed, t.loss);
    free(t.px);
    free(t.y);
    free(t.probs);
    optim_free(&t.opt);
    return steps * t.B / elapsed;
}

typedef struct {
    Model *m;
    const uint8_t *px; /* (INFER_BATCH, img) */
    float sink;        /* a logit from every call, checked for NaN */
} InferBench;

static void infer_step(void *ctx) {
    InferBench *b = ctx;
    model_load_pixels(b->m, b->px, INFER_BATCH);
    b->sink += model_forward(b->m, INFER_BATCH, 0)[0];
}

/* Eval-mode forward at batch 1000. Returns images/s. */
static double bench_infer(Model *m, const Options *o, const uint8_t *pool) {
    const size_t img = shape_size(m->input_shape);
    model_set_batch(m, INFER_BATCH, 0, o->threads);
    uint8_t *px = dg_xmalloc((size_t)INFER_BATCH * img);
    for (int i = 0; i < INFER_BATCH; i++)
        memcpy(px + (size_t)i * img, pool + (size_t)(i % POOL_IMAGES) * img, img);
    InferBench b = {.m = m, .px = px};
    double elapsed;
    long calls = timed_loop(infer_step, &b, o->seconds, 2, 3, &elapsed);
    BENCH_CHECK(b.sink == b.sink, "%s: inference gives NaN logits; the kernels are broken", m->spec_name);
    fprintf(stderr, "  infer: %ld batches of %d in %.2f s\n", calls, INFER_BATCH, elapsed);
    free(px);
    return calls * INFER_BATCH / elapsed;
}

/* Multiply-accumulates of layer i per image (conv and linear; 0 otherwise). */
static double layer_macs(const Layer *l) {
    if (l->type == LAYER_CONV2D) return (double)shape_size(l->out) * l->in.c * l->kernel * l->kernel;
    if (l->type == LAYER_LINEAR) return (double)l->out_features * shape_size(l->in);
    return 0;
}

/* The one-image profile (eval slot of m->prof_seconds, `calls` forwards):
 * per layer (a fused group as its first layer, named with what it absorbed)
 * microseconds per call, GFLOP/s (2 x MACs / time) and share of the total.
 * The profiler's own clock reads are inside the total (~2 x 20 ns a row). */
static void print_latency_profile(const Model *m, FILE *f, long calls) {
    double total = 0;
    for (int i = 0; i < m->n_layers; i++) total += m->prof_seconds[i][1];
    fprintf(f, "%s: one-image forward per layer, %ld calls (fused groups on their first layer)\n", m->spec_name,
            calls);
    fprintf(f, "%-4s %-34s %-10s %9s %9s %7s\n", "#", "layer", "output", "us/call", "GFLOP/s", "share");
    double macs_total = 0;
    for (int i = 0; i < m->n_layers; i++) {
        if (!m->prof_calls[i][1]) continue;
        const Layer *l = &m->layers[i];
        const int e = m->fuse_end ? m->fuse_end[i] : i;
        char what[64], shape[24];
        int o = l->type == LAYER_CONV2D ? snprintf(what, sizeof what, "conv%dx%d/%d %d->%d", l->kernel, l->kernel,
                                                   l->stride, l->in.c, l->out.c)
                                        : snprintf(what, sizeof what, "%s", l->kind->name);
        for (int j = i + 1; j <= e && o < (int)sizeof what; j++) /* what the group absorbed */
            o += snprintf(what + o, sizeof what - o, "+%.4s", m->layers[j].kind->name);
        const Layer *last = &m->layers[e];
        snprintf(shape, sizeof shape, "%dx%dx%d", last->out.c, last->out.h, last->out.w);
        const double us = m->prof_seconds[i][1] / calls * 1e6, macs = layer_macs(l);
        macs_total += macs;
        char gf[16] = "";
        if (macs > 0) snprintf(gf, sizeof gf, "%.1f", 2 * macs / (us * 1e3));
        fprintf(f, "%-4d %-34s %-10s %9.2f %9s %6.1f%%\n", i, what, shape, us, gf,
                total > 0 ? 100 * m->prof_seconds[i][1] / total : 0);
    }
    const double us = total / calls * 1e6;
    fprintf(f, "%-4s %-34s %-10s %9.2f %9.1f\n", "", "total (layers)", "", us, 2 * macs_total / (us * 1e3));
}

/* Single-image load + forward; fills median and p99 in microseconds. */
static void bench_latency(Model *m, const Options *o, const uint8_t *pool, double *median, double *p99) {
    const size_t img = shape_size(m->input_shape);
    const int n = o->latency_calls;
    model_set_batch(m, 1, 0, o->threads);
    double *t = dg_xmalloc((size_t)n * sizeof(double));
    float sink = 0;
    for (int i = 0; i < 50; i++) { /* warm-up */
        model_load_pixels(m, pool + (size_t)(i % POOL_IMAGES) * img, 1);
        sink += model_forward(m, 1, 0)[0];
    }
    if (o->profile) model_profile_start(m);
    for (int i = 0; i < n; i++) {
        const uint8_t *px = pool + (size_t)(i % POOL_IMAGES) * img;
        double t0 = now();
        model_load_pixels(m, px, 1);
        sink += model_forward(m, 1, 0)[0];
        t[i] = (now() - t0) * 1e6;
    }
    BENCH_CHECK(sink == sink, "%s: inference gives NaN logits; the kernels are broken", m->spec_name);
    if (o->profile) {
        print_latency_profile(m, stderr, n);
        free(m->prof_seconds);
        free(m->prof_calls);
        m->prof_seconds = NULL;
        m->prof_calls = NULL;
    }
    qsort(t, (size_t)n, sizeof(double), cmp_double);
    *median = quantile(t, n, 0.5);
    *p99 = quantile(t, n, 0.99);
    free(t);
}

/* ==== main ================================================================ */

int main(int argc, char **argv) {
    dg_runtime_init(argv); /* OpenBLAS core type, thread ownership: as the CLI runs */
    Options o;
    parse_options(&o, argc, argv);
#ifdef _OPENMP
    if (o.threads > 0) omp_set_num_threads(o.threads);
    else o.threads = omp_get_max_threads();
#else
    o.threads = 1;
#endif
    if (o.bf16 && !conv2d_set_bf16(1)) {
        fprintf(stderr, "bench_models: --precision bf16: this CPU or build has no AVX512_BF16\n");
        return 1;
    }
    fprintf(stderr, "bench_models: threads %d, train batch %d, >= %.1f s per figure, %s\n", o.threads,
            o.batch, o.seconds, dg_blas_info());

    char list[sizeof o.models];
    snprintf(list, sizeof list, "%s", o.models);
    char *save = NULL;
    for (char *name = strtok_r(list, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        Model m;
        BENCH_CHECK(model_build_named(&m, name) == 0, "%s\nHINT: run from the repository root, or set DIGITS_MODELS",
                    dg_errmsg());
        model_init_params(&m, o.seed);
        m.norm_mean = 0.1307f; /* MNIST's, as training sets them */
        m.norm_std = 0.3081f;
        fprintf(stderr, "%s: %zu parameters, %.3g M MACs/image\n", m.spec_name, m.n_param, model_macs(&m) / 1e6);

        /* seeded random images and labels */
        const size_t img = shape_size(m.input_shape);
        uint8_t *pool = dg_xmalloc(POOL_IMAGES * img), *labels = dg_xmalloc(POOL_IMAGES);
        Rng rng;
        rng_seed(&rng, o.seed, "bench");
        for (size_t i = 0; i < POOL_IMAGES * img; i++) pool[i] = (uint8_t)rng_below(&rng, 256);
        for (int i = 0; i < POOL_IMAGES; i++) labels[i] = (uint8_t)rng_below(&rng, MODEL_NUM_CLASSES);

        if (o.profile && !o.latency_only) model_profile_start(&m);
        if (!o.latency_only) {
            emit(m.spec_name, "train_img_s", bench_train(&m, &o, pool, labels));
            emit(m.spec_name, "infer_img_s", bench_infer(&m, &o, pool));
        }
        if (o.profile && !o.latency_only) { /* per layer, over every step and batch above (warm-up included) */
            fprintf(stderr, "%s: time per layer, train batch %d, eval batch %d\n", m.spec_name, o.batch, INFER_BATCH);
            model_profile_print(&m, stderr, (double)m.prof_calls[0][0] * o.batch,
                                (double)m.prof_calls[0][1] * INFER_BATCH);
            free(m.prof_seconds);
            free(m.prof_calls);
            m.prof_seconds = NULL;
            m.prof_calls = NULL;
        }
        double median, p99;
        bench_latency(&m, &o, pool, &median, &p99);
        emit(m.spec_name, "latency_median_us", median);
        emit(m.spec_name, "latency_p99_us", p99);
        /* peak resident set of the process (run.sh runs one model per process) */
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        emit(m.spec_name, "peak_rss_mb", ru.ru_maxrss / 1024.0);

        free(pool);
        free(labels);
        model_free(&m);
    }
    return 0;
}
