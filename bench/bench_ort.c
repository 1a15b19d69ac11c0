/* bench_ort.c — digits against ONNX Runtime on the same models, in one
 * process, both called from C (bench/ort.sh runs it and prints the table).
 *
 *   bench_ort --ort LIB --dir DIR --models a,b,c [--data data/mnist]
 *             [--threads 2] [--rounds 2] [--seconds 1] [--latency-calls 1000] [--int8]
 *
 * DIR holds, for each model NAME, NAME.safetensors (a digits model file) and
 * NAME.onnx (the same model from `digits export --format onnx`: input `input`
 * float32 N x 1 x 28 x 28 pixels 0-255, output `probabilities`). LIB is
 * ONNX Runtime's libonnxruntime.so.1, opened with dlopen at run time, so
 * this program builds without ONNX Runtime and needs no header from it.
 *
 * Every measurement runs in a child process of its own (fork) that loads
 * only the engine it measures: a round is one child per implementation,
 * alternating. In one shared process each engine's idle threads (ORT's
 * intra-op pool spinning after a Run; digits' OpenMP team and one-image
 * helper threads, core/blocks.c) competed with the other's on a 2-vCPU
 * machine, and the figures depended on which engine ran before. The parent
 * starts no thread. Like build/digits, the program starts with
 * dg_runtime_init (core/runtime.h: OpenBLAS's core type, GOMP_SPINCOUNT),
 * so digits runs with the set-up its users get; without it OpenBLAS took
 * its generic "Prescott" kernels and libgomp its long default spin
 * (lenet5's one image took 2x longer, its batch 2-3x; bench/README.md).
 *
 * For every model, first a check (in a child with both engines): the first 1000 MNIST test images through
 * ORT as one batch are the reference; each implementation runs them as one
 * batch and the first 100 one at a time (the latency path), and the largest
 * |difference| of the probabilities and how many predictions (argmax) differ
 * are printed (digits fp32 and ORT must agree within 1e-4, or exit 1;
 * digits bf16 is reported, not checked). Then, every round, the figures with
 * the implementations alternating (digits fp32, ORT fp32, digits bf16; the
 * order reversed every other round):
 *   infer_img_s        batch 1000 (uint8 pixels -> float input -> probabilities);
 *   latency_median_us  one image, same work, median of --latency-calls calls;
 *   latency_p99_us     those calls' 99th percentile.
 * Output: CSV lines `impl,model,metric,round,value` on stdout (impl =
 * digits, digits-bf16, ort); notes on stderr.
 *
 * ONNX Runtime runs with --threads intra-op threads, 1 inter-op thread,
 * ORT_ENABLE_ALL graph optimisations, sequential execution, and input and
 * output tensors bound once to buffers of ours (no allocation per call).
 *
 * --int8: ONNX Runtime's own int8 path instead (impl ort-int8): DIR holds
 * NAME-int8.safetensors (digits quantize) and NAME-int8.onnx (its `digits
 * export --format onnx`: input `input` uint8 pixels, QLinearConv...); the
 * figures are those of ORT alone (bench/int8.sh measures digits int8 with
 * bench_int8), the check compares ORT's predictions with digits' int8
 * classifier on the same 1000 images (exit 1 if more than 1% differ: its
 * float requantization may move a logit by a quantization step).
 *
 * Leaves out on purpose: other ORT execution providers, IOBinding, ORT's own
 * fp16/bf16 paths, and training.
 */
#include <dlfcn.h>
#include <stddef.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/runtime.h"
#include "data/data.h"
#include "digits_internal.h"
#include "ops/ops.h"

#define BATCH 1000
#define IMG 784 /* 28 x 28: every zoo model's input */

/* ==== the part of ONNX Runtime's C API this program calls ===================
 * OrtGetApiBase() returns a table of two functions; GetApi(version) returns
 * the OrtApi table: function pointers in a fixed order that new versions
 * only append to. The positions below were counted in the `struct OrtApi`
 * declaration of include/onnxruntime/core/session/onnxruntime_c_api.h in the
 * microsoft/onnxruntime repository (API version 13); entries this program
 * does not call are untyped placeholders. The _Static_asserts after the
 * struct pin every typed entry to its position. Every call returns NULL on
 * success or an OrtStatus (error) the caller releases. The enums are passed
 * as int with the header's values, written out where they are used. */
typedef struct OrtStatus OrtStatus;
typedef struct OrtEnv OrtEnv;
typedef struct OrtSession OrtSession;
typedef struct OrtSessionOptions OrtSessionOptions;
typedef struct OrtMemoryInfo OrtMemoryInfo;
typedef struct OrtValue OrtValue;

typedef struct {
    void *slot0_1[2];                                         /* 0 CreateStatus, 1 GetErrorCode */
    const char *(*GetErrorMessage)(const OrtStatus *status);  /* 2 */
    OrtStatus *(*CreateEnv)(int log_level, const char *log_id, OrtEnv **out); /* 3 */
    void *slot4_6[3];                                         /* env logging, telemetry */
    OrtStatus *(*CreateSession)(const OrtEnv *env, const char *model_path, const OrtSessionOptions *opts,
                                OrtSession **out); /* 7 */
    void *slot8;                                              /* CreateSessionFromArray */
    OrtStatus *(*Run)(OrtSession *session, const void *run_options, const char *const *input_names,
                      const OrtValue *const *inputs, size_t n_inputs, const char *const *output_names,
                      size_t n_outputs, OrtValue **outputs); /* 9 */
    OrtStatus *(*CreateSessionOptions)(OrtSessionOptions **out); /* 10 */
    void *slot11_22[12];                                      /* profiling, memory pattern, arena, logging */
    OrtStatus *(*SetSessionGraphOptimizationLevel)(OrtSessionOptions *opts, int level); /* 23 */
    OrtStatus *(*SetIntraOpNumThreads)(OrtSessionOptions *opts, int n);                 /* 24 */
    OrtStatus *(*SetInterOpNumThreads)(OrtSessionOptions *opts, int n);                 /* 25 */
    void *slot26_48[23];                                      /* custom ops, session queries, run options */
    OrtStatus *(*CreateTensorWithDataAsOrtValue)(const OrtMemoryInfo *info, void *data, size_t bytes,
                                                 const int64_t *shape, size_t rank, int element_type,
                                                 OrtValue **out); /* 49 */
    void *slot50;                                             /* IsTensor */
    OrtStatus *(*GetTensorMutableData)(OrtValue *value, void **out); /* 51 */
    void *slot52_68[17];                                      /* strings, type info, CreateMemoryInfo */
    OrtStatus *(*CreateCpuMemoryInfo)(int allocator_type, int mem_type, OrtMemoryInfo **out); /* 69 */
    void *slot70_91[22];                                      /* allocators, maps, kernel API */
    void (*ReleaseEnv)(OrtEnv *);                             /* 92 */
    void (*ReleaseStatus)(OrtStatus *);                       /* 93 */
    void (*ReleaseMemoryInfo)(OrtMemoryInfo *);               /* 94 */
    void (*ReleaseSession)(OrtSession *);                     /* 95 */
    void (*ReleaseValue)(OrtValue *);                         /* 96 */
    void *slot97_99[3];                                       /* run options, type infos */
    void (*ReleaseSessionOptions)(OrtSessionOptions *);       /* 100 */
} OrtApiTable;

#define ORT_AT(field, index) _Static_assert(offsetof(OrtApiTable, field) == (index) * sizeof(void *), #field)
ORT_AT(GetErrorMessage, 2);
ORT_AT(CreateEnv, 3);
ORT_AT(CreateSession, 7);
ORT_AT(Run, 9);
ORT_AT(CreateSessionOptions, 10);
ORT_AT(SetSessionGraphOptimizationLevel, 23);
ORT_AT(SetIntraOpNumThreads, 24);
ORT_AT(SetInterOpNumThreads, 25);
ORT_AT(CreateTensorWithDataAsOrtValue, 49);
ORT_AT(GetTensorMutableData, 51);
ORT_AT(CreateCpuMemoryInfo, 69);
ORT_AT(ReleaseEnv, 92);
ORT_AT(ReleaseStatus, 93);
ORT_AT(ReleaseMemoryInfo, 94);
ORT_AT(ReleaseSession, 95);
ORT_AT(ReleaseValue, 96);
ORT_AT(ReleaseSessionOptions, 100);

typedef struct {
    const OrtApiTable *(*GetApi)(uint32_t version);
    const char *(*GetVersionString)(void);
} OrtApiBaseTable;

#define ORT_API_VERSION_USED 13 /* the header the table was counted in */
#define ORT_LOGGING_WARNING 2
#define ORT_ENABLE_ALL 99
#define ORT_ARENA_ALLOCATOR 1
#define ORT_MEM_TYPE_DEFAULT 0
#define ORT_TENSOR_FLOAT 1
#define ORT_TENSOR_UINT8 2

static const OrtApiTable *ort;

/* Tier-3 error: print file:line and the problem, then exit 1. */
#define BENCH_CHECK(cond, ...)                                                  \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "%s:%d: error: ", __FILE__, __LINE__);              \
            fprintf(stderr, __VA_ARGS__);                                       \
            fprintf(stderr, "\n");                                              \
            exit(1);                                                            \
        }                                                                       \
    } while (0)

/* Exit 1 with ONNX Runtime's message if status is an error. */
static void ort_check(OrtStatus *status, const char *what) {
    if (!status) return;
    fprintf(stderr, "bench_ort: onnxruntime: %s: %s\n", what, ort->GetErrorMessage(status));
    ort->ReleaseStatus(status);
    exit(1);
}

/* dlopen the library and fetch the API table (into `ort`); prints the
 * version when `say`. The handle stays open for the life of the process. */
static void ort_open(const char *lib, int say) {
    void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    BENCH_CHECK(h, "%s\nHINT: bash tools/fetch_onnxruntime.sh installs it", dlerror());
    const OrtApiBaseTable *(*get_base)(void);
    *(void **)&get_base = dlsym(h, "OrtGetApiBase");
    BENCH_CHECK(get_base, "%s: no OrtGetApiBase: %s", lib, dlerror());
    const OrtApiBaseTable *base = get_base();
    ort = base->GetApi(ORT_API_VERSION_USED);
    BENCH_CHECK(ort, "%s: does not serve C API version %d", lib, ORT_API_VERSION_USED);
    if (say)
        fprintf(stderr, "bench_ort: onnxruntime %s (%s), C API version %d\n", base->GetVersionString(), lib,
            ORT_API_VERSION_USED);
}

/* ==== options ============================================================= */

typedef struct {
    const char *ort_lib, *dir, *data;
    char models[1024];
    int threads, rounds, latency_calls;
    int int8; /* --int8: ORT's int8 path on NAME-int8.onnx */
    double seconds;
} Options;

static void usage(FILE *f) {
    fprintf(f, "usage: bench_ort --ort LIB --dir DIR [options]\n"
               "  --ort LIB          path of libonnxruntime.so.1\n"
               "  --dir DIR          holds NAME.safetensors and NAME.onnx for every model\n"
               "  --models a,b,c     (default lenet5,cnn,cnn-bn,kaggle-deep,twobranch)\n"
               "  --data DIR         MNIST folder for the check and the inputs (default data/mnist)\n"
               "  --threads N        digits threads and ORT intra-op threads (default 2)\n"
               "  --rounds N         (default 2)\n"
               "  --seconds S        minimum timed seconds per throughput figure (default 1)\n"
               "  --latency-calls N  one-image calls per latency figure (default 1000)\n"
               "  --int8             ONNX Runtime's int8 path alone, on NAME-int8.onnx (checked\n"
               "                     against NAME-int8.safetensors)\n"
               "prints impl,model,metric,round,value lines on stdout\n");
}

static long parse_long(const char *flag, const char *s, long lo, long hi) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "bench_ort: %s: '%s' should be an integer in %ld..%ld\n", flag, s, lo, hi);
        exit(2);
    }
    return v;
}

static void parse_options(Options *o, int argc, char **argv) {
    *o = (Options){.data = "data/mnist", .threads = 2, .rounds = 2, .latency_calls = 1000, .seconds = 1};
    snprintf(o->models, sizeof o->models, "lenet5,cnn,cnn-bn,kaggle-deep,twobranch");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        }
        if (!strcmp(a, "--int8")) {
            o->int8 = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "bench_ort: %s needs a value (or unknown option)\n", a);
            usage(stderr);
            exit(2);
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--ort")) o->ort_lib = v;
        else if (!strcmp(a, "--dir")) o->dir = v;
        else if (!strcmp(a, "--data")) o->data = v;
        else if (!strcmp(a, "--models")) snprintf(o->models, sizeof o->models, "%s", v);
        else if (!strcmp(a, "--threads")) o->threads = (int)parse_long(a, v, 1, 1024);
        else if (!strcmp(a, "--rounds")) o->rounds = (int)parse_long(a, v, 1, 100);
        else if (!strcmp(a, "--latency-calls")) o->latency_calls = (int)parse_long(a, v, 10, 10000000);
        else if (!strcmp(a, "--seconds")) {
            char *end;
            o->seconds = strtod(v, &end);
            if (*v == '\0' || *end != '\0' || !(o->seconds > 0 && o->seconds <= 3600)) {
                fprintf(stderr, "bench_ort: --seconds: '%s' should be a number in (0, 3600]\n", v);
                exit(2);
            }
        } else {
            fprintf(stderr, "bench_ort: unknown option '%s'\n", a);
            usage(stderr);
            exit(2);
        }
    }
    if (!o->ort_lib || !o->dir) {
        usage(stderr);
        exit(2);
    }
}

/* ==== the two engines behind one interface ================================ */

typedef struct {
    /* digits: one model sized for BATCH, one for a single image (as
     * bench_models and `digits predict` size it) */
    Model m[2];
    int bf16; /* run with bf16 convolutions */
    /* ONNX Runtime */
    OrtSession *session;
    OrtValue *in[2], *out[2];  /* [0]: batch 1000, [1]: one image */
    float *in_buf, *out_buf;   /* (BATCH, IMG), (BATCH, 10); the one-image values use their first row */
    uint8_t *in_u8;            /* (BATCH, IMG): an int8 export's input (in_buf is then unused) */
} Engine;

/* Load NAME.safetensors into a digits engine: twice, with room for BATCH
 * images and for one. */
static void digits_open(Engine *e, const char *path, int threads, int bf16) {
    model_set_bf16(bf16);
    for (int k = 0; k < 2; k++) {
        BENCH_CHECK(model_load(&e->m[k], path) == 0, "%s", dg_errmsg());
        model_set_batch(&e->m[k], k ? 1 : BATCH, 0, threads);
    }
    e->bf16 = bf16;
}

/* Switch the process-wide convolution precision to this engine's (packed
 * weights are per precision, so they are repacked on the next forward). */
static void digits_select(Engine *e) {
    if (model_bf16() == e->bf16) return;
    model_set_bf16(e->bf16);
    model_params_changed(&e->m[0]);
    model_params_changed(&e->m[1]);
}

/* Forward n images (uint8) through digits; probabilities into probs (n, 10)
 * when probs is not NULL. */
static float digits_run(Engine *e, const uint8_t *px, int n, float *probs) {
    Model *m = &e->m[n == 1];
    model_load_pixels(m, px, n);
    float *logits = model_forward(m, n, 0);
    if (probs) softmax_forward(probs, logits, n, MODEL_NUM_CLASSES);
    return logits[0];
}

/* Bind a float tensor of shape dims (rank 4 or 2) to buf. */
static OrtValue *ort_tensor(const OrtMemoryInfo *mi, float *buf, const int64_t *dims, size_t rank) {
    size_t n = 1;
    for (size_t i = 0; i < rank; i++) n *= (size_t)dims[i];
    OrtValue *v = NULL;
    ort_check(ort->CreateTensorWithDataAsOrtValue(mi, buf, n * sizeof(float), dims, rank, ORT_TENSOR_FLOAT, &v),
              "CreateTensorWithDataAsOrtValue");
    return v;
}

/* Create an ORT session on NAME.onnx (threads intra-op, 1 inter-op,
 * ORT_ENABLE_ALL) and its input/output tensors for BATCH and for 1 image;
 * int8: the input is uint8 pixels (an int8 export). */
static void ort_engine_open(Engine *e, OrtEnv *env, const OrtMemoryInfo *mi, const char *path, int threads,
                            int int8) {
    OrtSessionOptions *so = NULL;
    ort_check(ort->CreateSessionOptions(&so), "CreateSessionOptions");
    ort_check(ort->SetIntraOpNumThreads(so, threads), "SetIntraOpNumThreads");
    ort_check(ort->SetInterOpNumThreads(so, 1), "SetInterOpNumThreads");
    ort_check(ort->SetSessionGraphOptimizationLevel(so, ORT_ENABLE_ALL), "SetSessionGraphOptimizationLevel");
    ort_check(ort->CreateSession(env, path, so, &e->session), path);
    ort->ReleaseSessionOptions(so);
    e->in_buf = dg_xmalloc((size_t)BATCH * IMG * sizeof(float));
    e->out_buf = dg_xmalloc((size_t)BATCH * MODEL_NUM_CLASSES * sizeof(float));
    const int64_t in_dims[2][4] = {{BATCH, 1, 28, 28}, {1, 1, 28, 28}};
    const int64_t out_dims[2][2] = {{BATCH, MODEL_NUM_CLASSES}, {1, MODEL_NUM_CLASSES}};
    if (int8) e->in_u8 = dg_xmalloc((size_t)BATCH * IMG);
    for (int k = 0; k < 2; k++) {
        if (int8)
            ort_check(ort->CreateTensorWithDataAsOrtValue(mi, e->in_u8, (size_t)(k ? 1 : BATCH) * IMG, in_dims[k], 4,
                                                          ORT_TENSOR_UINT8, &e->in[k]),
                      "CreateTensorWithDataAsOrtValue");
        else
            e->in[k] = ort_tensor(mi, e->in_buf, in_dims[k], 4);
        e->out[k] = ort_tensor(mi, e->out_buf, out_dims[k], 2);
    }
    void *p = NULL; /* the bound output really is our buffer */
    ort_check(ort->GetTensorMutableData(e->out[0], &p), "GetTensorMutableData");
    BENCH_CHECK(p == e->out_buf, "onnxruntime copied the output tensor's buffer");
}

/* Forward n (BATCH or 1) images through ONNX Runtime: pixels to float
 * 0-255 (the exported graph normalises), or copied as they are (an int8
 * export), run, probabilities in out_buf; copied into probs when not NULL. */
static float ort_run(Engine *e, const uint8_t *px, int n, float *probs) {
    static const char *const in_name[] = {"input"}, *const out_name[] = {"probabilities"};
    if (e->in_u8) memcpy(e->in_u8, px, (size_t)n * IMG);
    else
        for (size_t i = 0; i < (size_t)n * IMG; i++) e->in_buf[i] = px[i];
    const int k = n == 1;
    ort_check(ort->Run(e->session, NULL, in_name, (const OrtValue *const *)&e->in[k], 1, out_name, 1, &e->out[k]),
              "Run");
    if (probs) memcpy(probs, e->out_buf, (size_t)n * MODEL_NUM_CLASSES * sizeof(float));
    return e->out_buf[0];
}

static void ort_engine_close(Engine *e) {
    for (int k = 0; k < 2; k++) {
        ort->ReleaseValue(e->in[k]);
        ort->ReleaseValue(e->out[k]);
    }
    ort->ReleaseSession(e->session);
    free(e->in_u8);
    free(e->in_buf);
    free(e->out_buf);
}

/* ==== measurements ======================================================== */

enum { IMPL_DIGITS, IMPL_ORT, IMPL_BF16, IMPL_ORT_INT8, N_IMPL };
static const char *const impl_name[N_IMPL] = {"digits", "ort", "digits-bf16", "ort-int8"};

/* Whether implementation impl runs here: --int8 ORT's int8 path alone;
 * else digits, ORT and (where the CPU has AVX512_BF16) digits bf16. */
static int impl_active(const Options *o, int impl, int has_bf16) {
    if (o->int8) return impl == IMPL_ORT_INT8;
    return impl == IMPL_DIGITS || impl == IMPL_ORT || (impl == IMPL_BF16 && has_bf16);
}

static int is_ort(int impl) { return impl == IMPL_ORT || impl == IMPL_ORT_INT8; }

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* One forward of n images by implementation `impl`. */
static float run_impl(Engine *eng, int impl, const uint8_t *px, int n, float *probs) {
    Engine *e = &eng[impl];
    if (is_ort(impl)) return ort_run(e, px, n, probs);
    digits_select(e);
    return digits_run(e, px, n, probs);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Quantile q of a sorted array (linear interpolation, as bench_models). */
static double quantile(const double *s, int n, double q) {
    double pos = q * (n - 1);
    int i = (int)pos;
    if (i >= n - 1) return s[n - 1];
    return s[i] + (pos - i) * (s[i + 1] - s[i]);
}

/* Batch-1000 images/s: 1 warm-up batch (it also repacks weights after a
 * precision switch), then batches for >= seconds and >= 2 batches. */
static double throughput(Engine *eng, int impl, const uint8_t *px, double seconds) {
    float sink = 0;
    sink += run_impl(eng, impl, px, BATCH, NULL);
    long calls = 0;
    double t0 = now(), dt;
    do {
        sink += run_impl(eng, impl, px, BATCH, NULL);
        calls++;
        dt = now() - t0;
    } while (dt < seconds || calls < 2);
    BENCH_CHECK(sink == sink, "%s gives NaN", impl_name[impl]);
    return calls * BATCH / dt;
}

/* One-image latency over `calls` calls cycling through the BATCH images
 * (50 warm-up calls first); median and p99 in microseconds. */
static void latency(Engine *eng, int impl, const uint8_t *px, int calls, double *median, double *p99) {
    double *t = dg_xmalloc((size_t)calls * sizeof(double));
    float sink = 0;
    for (int i = 0; i < 50; i++) sink += run_impl(eng, impl, px + (size_t)(i % BATCH) * IMG, 1, NULL);
    for (int i = 0; i < calls; i++) {
        const uint8_t *one = px + (size_t)(i % BATCH) * IMG;
        double t0 = now();
        sink += run_impl(eng, impl, one, 1, NULL);
        t[i] = (now() - t0) * 1e6;
    }
    BENCH_CHECK(sink == sink, "%s gives NaN", impl_name[impl]);
    qsort(t, (size_t)calls, sizeof(double), cmp_double);
    *median = quantile(t, calls, 0.5);
    *p99 = quantile(t, calls, 0.99);
    free(t);
}

static int argmax10(const float *p) {
    int best = 0;
    for (int k = 1; k < MODEL_NUM_CLASSES; k++)
        if (p[k] > p[best]) best = k;
    return best;
}

#define CHECK_ONE 100 /* images also checked one at a time (the latency path) */

/* Compare impl's probabilities on the BATCH images, in one batch and (the
 * first CHECK_ONE) one at a time, with ORT's batch (ref): prints the largest
 * |difference| and how many predictions differ; returns the largest
 * difference. */
static double check(Engine *eng, int impl, const float *ref, const uint8_t *px, const char *model) {
    float *p = dg_xmalloc((size_t)BATCH * MODEL_NUM_CLASSES * sizeof(float));
    double dmax = 0;
    int differ_one = 0;
    for (int i = 0; i < CHECK_ONE; i++) {
        float *row = p + i * MODEL_NUM_CLASSES;
        const float *want = ref + i * MODEL_NUM_CLASSES;
        run_impl(eng, impl, px + (size_t)i * IMG, 1, row);
        for (int k = 0; k < MODEL_NUM_CLASSES; k++) {
            double d = row[k] - want[k];
            if (d < 0) d = -d;
            if (d > dmax) dmax = d;
        }
        differ_one += argmax10(row) != argmax10(want);
    }
    run_impl(eng, impl, px, BATCH, p);
    int differ = 0;
    for (int i = 0; i < BATCH; i++) {
        for (int k = 0; k < MODEL_NUM_CLASSES; k++) {
            double d = p[i * MODEL_NUM_CLASSES + k] - ref[i * MODEL_NUM_CLASSES + k];
            if (d < 0) d = -d;
            if (d > dmax) dmax = d;
        }
        differ += argmax10(p + i * MODEL_NUM_CLASSES) != argmax10(ref + i * MODEL_NUM_CLASSES);
    }
    differ += differ_one;
    fprintf(stderr,
            "%s: %s vs ort's batch on %d MNIST test images (as a batch, and %d one at a time): max |dp| %.3g, "
            "%d predictions differ\n",
            model, impl_name[impl], BATCH, CHECK_ONE, dmax, differ);
    printf("%s,%s,check_max_dp,0,%.6g\n%s,%s,check_pred_differ,0,%d\n", impl_name[impl], model, dmax,
           impl_name[impl], model, differ);
    free(p);
    return dmax;
}

static void emit(int impl, const char *model, const char *metric, int round, double v) {
    printf("%s,%s,%s,%d,%.6g\n", impl_name[impl], model, metric, round, v);
    fflush(stdout);
}

/* The ORT side of a child: the environment and CPU memory description
 * the sessions need. */
typedef struct {
    OrtEnv *env;
    OrtMemoryInfo *mi;
} OrtProcess;

static void ort_process_open(OrtProcess *op, const char *lib, int say) {
    ort_open(lib, say);
    ort_check(ort->CreateEnv(ORT_LOGGING_WARNING, "bench_ort", &op->env), "CreateEnv");
    ort_check(ort->CreateCpuMemoryInfo(ORT_ARENA_ALLOCATOR, ORT_MEM_TYPE_DEFAULT, &op->mi), "CreateCpuMemoryInfo");
}

static void ort_process_close(OrtProcess *op) {
    ort->ReleaseMemoryInfo(op->mi);
    ort->ReleaseEnv(op->env);
}

/* Open implementation impl of model `name` into eng[impl]. */
static void engine_open(const Options *o, Engine *eng, int impl, const char *name, const OrtProcess *op) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s%s.%s", o->dir, name, impl == IMPL_ORT_INT8 ? "-int8" : "",
             is_ort(impl) ? "onnx" : "safetensors");
    if (is_ort(impl)) ort_engine_open(&eng[impl], op->env, op->mi, path, o->threads, impl == IMPL_ORT_INT8);
    else digits_open(&eng[impl], path, o->threads, impl == IMPL_BF16);
}

static void engine_close(Engine *eng, int impl) {
    if (is_ort(impl)) {
        ort_engine_close(&eng[impl]);
        return;
    }
    for (int k = 0; k < 2; k++) model_free(&eng[impl].m[k]);
}

/* --int8 check: ORT's int8 path, one image at a time against its batch,
 * and its predictions against digits' int8 classifier on the same file. */
static void check_int8(const Options *o, const char *name, const uint8_t *px) {
    Engine eng[N_IMPL];
    memset(eng, 0, sizeof eng);
    OrtProcess op;
    ort_process_open(&op, o->ort_lib, 0);
    engine_open(o, eng, IMPL_ORT_INT8, name, &op);
    float *ref = dg_xmalloc((size_t)BATCH * MODEL_NUM_CLASSES * sizeof(float));
    float *want = dg_xmalloc((size_t)BATCH * MODEL_NUM_CLASSES * sizeof(float));
    run_impl(eng, IMPL_ORT_INT8, px, BATCH, ref);
    double d = check(eng, IMPL_ORT_INT8, ref, px, name);
    BENCH_CHECK(d <= 1e-4, "%s: onnxruntime's int8 one-image and batch results disagree (%.3g)", name, d);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s-int8.safetensors", o->dir, name);
    Classifier c;
    BENCH_CHECK(classifier_load(&c, path, BATCH, o->threads) == 0, "%s", dg_errmsg());
    classifier_predict(&c, px, BATCH, want, NULL);
    classifier_free(&c);
    int differ = 0;
    for (int i = 0; i < BATCH; i++)
        differ += argmax10(ref + i * MODEL_NUM_CLASSES) != argmax10(want + i * MODEL_NUM_CLASSES);
    fprintf(stderr, "%s: ort-int8 vs digits int8 on %d MNIST test images: %d predictions differ\n", name, BATCH,
            differ);
    printf("ort-int8,%s,check_int8_pred_differ,0,%d\n", name, differ);
    BENCH_CHECK(differ <= BATCH / 100, "%s: onnxruntime's int8 path and digits' disagree on %d images", name, differ);
    free(ref);
    free(want);
    engine_close(eng, IMPL_ORT_INT8);
    ort_process_close(&op);
}

/* Child body: the check of model `name` (both engines in this process:
 * it measures no time). */
static void check_model(const Options *o, const char *name, const uint8_t *px, int has_bf16) {
    if (o->int8) {
        check_int8(o, name, px);
        return;
    }
    Engine eng[N_IMPL];
    memset(eng, 0, sizeof eng);
    OrtProcess op;
    ort_process_open(&op, o->ort_lib, 0);
    for (int impl = 0; impl < N_IMPL; impl++)
        if (impl_active(o, impl, has_bf16)) engine_open(o, eng, impl, name, &op);
    float *ref = dg_xmalloc((size_t)BATCH * MODEL_NUM_CLASSES * sizeof(float));
    run_impl(eng, IMPL_ORT, px, BATCH, ref);
    double d = check(eng, IMPL_DIGITS, ref, px, name);
    BENCH_CHECK(d <= 1e-4, "%s: digits and onnxruntime disagree (max |dp| %.3g > 1e-4)", name, d);
    d = check(eng, IMPL_ORT, ref, px, name); /* its own one-image path against its batch */
    BENCH_CHECK(d <= 1e-4, "%s: onnxruntime's one-image and batch results disagree (%.3g)", name, d);
    if (has_bf16) check(eng, IMPL_BF16, ref, px, name);
    free(ref);
    for (int impl = 0; impl < N_IMPL; impl++)
        if (impl_active(o, impl, has_bf16)) engine_close(eng, impl);
    ort_process_close(&op);
}

/* Child body: round `round`'s figures of implementation impl on model
 * `name`, with only that engine loaded in this process. */
static void measure(const Options *o, const char *name, const uint8_t *px, int impl, int round) {
    Engine eng[N_IMPL];
    memset(eng, 0, sizeof eng);
    OrtProcess op = {0};
    if (is_ort(impl)) ort_process_open(&op, o->ort_lib, 0);
    engine_open(o, eng, impl, name, &op);
    emit(impl, name, "infer_img_s", round, throughput(eng, impl, px, o->seconds));
    double med, p99;
    latency(eng, impl, px, o->latency_calls, &med, &p99);
    emit(impl, name, "latency_median_us", round, med);
    emit(impl, name, "latency_p99_us", round, p99);
    engine_close(eng, impl);
    if (is_ort(impl)) ort_process_close(&op);
}

/* Run check_model (impl < 0) or measure in a child process and wait for
 * it; exits 1 if the child failed. The parent holds no thread, so the
 * child starts as a fresh process would, plus the loaded test images. */
static void in_child(const Options *o, const char *name, const uint8_t *px, int has_bf16, int impl, int round) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    BENCH_CHECK(pid >= 0, "fork failed");
    if (pid == 0) {
        if (impl < 0) check_model(o, name, px, has_bf16);
        else measure(o, name, px, impl, round);
        fflush(stdout);
        fflush(stderr);
        _exit(0);
    }
    int status = 0;
    BENCH_CHECK(waitpid(pid, &status, 0) == pid, "waitpid failed");
    BENCH_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: the %s child failed", name,
                impl < 0 ? "check" : impl_name[impl]);
}

/* Every figure of one model: the check, then `rounds` rounds, each one
 * child per implementation, the order reversed every other round. */
static void bench_model(const Options *o, const char *name, const uint8_t *px, int has_bf16) {
    in_child(o, name, px, has_bf16, -1, 0);
    for (int r = 1; r <= o->rounds; r++)
        for (int i = 0; i < N_IMPL; i++) {
            int impl = r % 2 ? i : N_IMPL - 1 - i;
            if (impl_active(o, impl, has_bf16)) in_child(o, name, px, has_bf16, impl, r);
        }
}

int main(int argc, char **argv) {
    dg_runtime_init(argv); /* OpenBLAS core type, GOMP_SPINCOUNT: as build/digits runs */
    Options o;
    parse_options(&o, argc, argv);
#ifdef _OPENMP
    omp_set_num_threads(o.threads);
#endif
    Dataset ds = {0};
    BENCH_CHECK(dataset_load(o.data, "test", &ds) == 0, "%s", dg_errmsg());
    BENCH_CHECK(ds.n >= BATCH && ds.rows * ds.cols == IMG, "%s: need %d 28x28 test images", o.data, BATCH);

    const int has_bf16 = model_set_bf16(1);
    model_set_bf16(0);
    if (!has_bf16 && !o.int8) fprintf(stderr, "bench_ort: no AVX512_BF16 here: no digits-bf16 figures\n");

    ort_open(o.ort_lib, 1); /* the version line; the children each open it again */
    fprintf(stderr,
            "bench_ort: %d threads each, %d rounds, >= %.1f s per throughput figure, %d latency calls, "
            "each engine in a child process of its own\n",
            o.threads, o.rounds, o.seconds, o.latency_calls);

    char list[sizeof o.models];
    snprintf(list, sizeof list, "%s", o.models);
    char *save = NULL;
    for (char *name = strtok_r(list, ",", &save); name; name = strtok_r(NULL, ",", &save))
        bench_model(&o, name, ds.pixels, has_bf16);

    dataset_free(&ds);
    return 0;
}
