/* bench_int8.c — int8 against fp32 inference on the same model: for each
 * pair FLOAT.safetensors INT8.safetensors (INT8 made by digits quantize
 * from FLOAT), both loaded as classifiers (what eval, predict and serve
 * run), it measures in alternating rounds
 *   infer_img_s        classifier_predict at batch 1000;
 *   latency_median_us  one image, median of N calls;
 * and prints `impl,model,metric,value` CSV lines (impl = fp32 | int8 (the
 * kernels chosen here: AMX tiles, else VNNI, else C) | int8-c | int8-vnni)
 * plus the int8/fp32 ratios on stderr. Inputs are seeded random
 * images (speed does not depend on the pixels).
 * Usage: bench_int8 [--rounds R] [--seconds S] [--calls N] [--threads T] [--c] [--vnni] FLOAT INT8 [...]
 * (--c: also the plain-C int8 kernels; --vnni: also VNNI without AMX tiles,
 * what a CPU without AMX runs).
 *        bench_int8 --profile [--rounds R] INT8 [...]
 * instead prints, per int8 model, a Markdown table of its operators on one
 * thread at batch 1000 (the kernels DIGITS_INT8_KERNELS chooses, e.g. vnni):
 * microseconds per image (this thread's CPU time, so that other processes
 * on a shared machine count less), share of the forward pass, multiply-adds per
 * image and G multiply-adds/s, beside this core's vpdpbusd peak (a loop of
 * 16 independent vpdpbusd chains); each op's best of R rounds.
 * Leaves out on purpose: accuracy (digits eval measures it). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/runtime.h"
#include "digits_internal.h"
#include "quant/qkernels.h"
#include "quant/qmodel.h"

#define BATCH 1000

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* This thread's CPU seconds (the profile's clock). */
static double cpu_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Images per second at batch 1000 over at least `seconds`. */
static double throughput(Classifier *c, const uint8_t *px, float *probs, double seconds) {
    int reps = 0;
    double t0 = now_s(), t;
    do {
        classifier_predict(c, px, BATCH, probs, NULL);
        reps++;
    } while ((t = now_s() - t0) < seconds);
    return reps * (double)BATCH / t;
}

/* Median microseconds of one-image predictions. */
static double latency(Classifier *c, const uint8_t *px, float *probs, int calls) {
    double *d = malloc((size_t)calls * sizeof *d);
    for (int i = 0; i < calls; i++) {
        double t0 = now_s();
        classifier_predict(c, px + (size_t)(i % BATCH) * 784, 1, probs, NULL);
        d[i] = (now_s() - t0) * 1e6;
    }
    qsort(d, (size_t)calls, sizeof *d, cmp_double);
    double med = d[calls / 2];
    free(d);
    return med;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
/* G multiply-adds/s of one core's vpdpbusd (16 independent zmm chains,
 * 64 multiply-adds each); 0 without AVX512-VNNI. */
__attribute__((target("avx512f,avx512vnni"), noinline)) static double vnni_peak_once(long iters) {
    double t0 = cpu_s();
    for (long it = 0; it < iters; it++) /* asm: the compiler's copies would measure moves */
        __asm__ volatile("vpdpbusd %%zmm16, %%zmm17, %%zmm0\n\tvpdpbusd %%zmm16, %%zmm17, %%zmm1\n\t"
                         "vpdpbusd %%zmm16, %%zmm17, %%zmm2\n\tvpdpbusd %%zmm16, %%zmm17, %%zmm3\n\t"
                         "vpdpbusd %%zmm16, %%zmm17, %%zmm4\n\tvpdpbusd %%zmm16, %%zmm17, %%zmm5\n\t"
                         "vpdpbusd %%zmm16, %%zmm17, %%zmm6\n\tvpdpbusd %%zmm16, %%zmm17, %%zmm7\n\t"
                         "vpdpbusd %%zmm16, %%zmm17, %%zmm8\n\tvpdpbusd %%zmm16, %%zmm17, %%zmm9\n\t"
                         "vpdpbusd %%zmm16, %%zmm17, %%zmm10\n\tvpdpbusd %%zmm16, %%zmm17, %%zmm11\n\t"
                         "vpdpbusd %%zmm16, %%zmm17, %%zmm12\n\tvpdpbusd %%zmm16, %%zmm17, %%zmm13\n\t"
                         "vpdpbusd %%zmm16, %%zmm17, %%zmm14\n\tvpdpbusd %%zmm16, %%zmm17, %%zmm15"
                         ::
                             : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
                               "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
    return iters * 16.0 * 64.0 / (cpu_s() - t0) / 1e9;
}
static double vnni_peak(void) {
    if (!qk_have_vnni()) return 0;
    double best = 0;
    for (int r = 0; r < 5; r++) {
        double p = vnni_peak_once(20000000);
        if (p > best) best = p;
    }
    return best;
}
#else
static double vnni_peak(void) { return 0; }
#endif

/* Multiply-adds per image of op (conv, dense; 0 for the others). */
static double op_macs(const QOp *op) {
    if (op->type == QOP_CONV) return (double)op->k * op->oh * op->ow * op->c * op->kh * op->kw;
    if (op->type == QOP_DENSE) return (double)op->k * op->c * op->h * op->w;
    return 0;
}

/* --profile: the per-op table of each int8 file in paths (n of them). */
static int profile(char **paths, int n, int rounds, const uint8_t *px) {
    const char *tn[] = {"?", "conv", "dense", "maxpool", "avgpool", "lut", "add", "concat", "float-stn"};
    double peak = vnni_peak();
    QKernels k = qkernels_auto();
    printf("kernels %s, one thread, batch %d; vpdpbusd peak of this core: %.0f G MAC/s\n\n", qkernels_name(k), BATCH,
           peak);
    for (int p = 0; p < n; p++) {
        QFile f;
        if (qfile_load(&f, paths[p]) < 0) {
            fprintf(stderr, "bench_int8: %s\n", dg_errmsg());
            return 1;
        }
        const QModel *q = &f.members[0];
        double *best = malloc(((size_t)q->n_ops + 1) * sizeof *best), *cur = malloc(((size_t)q->n_ops + 1) * sizeof *cur);
        for (int i = 0; i <= q->n_ops; i++) best[i] = 1e30;
        for (int r = 0; r < rounds; r++) {
            qmodel_profile(q, px, BATCH, k, cur);
            for (int i = 0; i <= q->n_ops; i++)
                if (cur[i] < best[i]) best[i] = cur[i];
        }
        double total = 0, macs = 0;
        for (int i = 0; i <= q->n_ops; i++) total += best[i];
        printf("%s (%s)\n\n| op | layers | shape in → out | µs/img | share | M MAC/img | G MAC/s | of peak |\n"
               "|---|---|---|---:|---:|---:|---:|---:|\n", q->name, paths[p]);
        for (int i = 0; i <= q->n_ops; i++) {
            double us = best[i] / BATCH * 1e6;
            if (i == q->n_ops) {
                printf("| load | pixels → int8 | | %.2f | %.1f %% | | | |\n", us, 100 * best[i] / total);
                continue;
            }
            const QOp *op = &q->ops[i];
            double m = op_macs(op), g = m / (best[i] / BATCH) / 1e9;
            macs += m;
            char gs[32] = "—", ps[32] = "—";
            if (m > 0) snprintf(gs, sizeof gs, "%.0f", g);
            if (m > 0 && peak > 0) snprintf(ps, sizeof ps, "%.0f %%", 100 * g / peak);
            printf("| %d %s | %s | %dx%dx%d → %dx%dx%d | %.2f | %.1f %% | %.2f | %s | %s |\n", i,
                   op->type >= 1 && op->type <= 8 ? tn[op->type] : "?", q->what[i], op->c, op->h, op->w, op->k,
                   op->oh, op->ow, us, 100 * best[i] / total, m / 1e6, gs, ps);
        }
        printf("| total | | | %.2f | 100 %% | %.2f | %.0f | %.0f %% |\n\n", total / BATCH * 1e6, macs / 1e6,
               macs * BATCH / total / 1e9, peak > 0 ? 100 * macs * BATCH / total / 1e9 / peak : 0);
        free(best);
        free(cur);
        qfile_free(&f);
    }
    return 0;
}

int main(int argc, char **argv) {
    dg_runtime_init(argv);
    int rounds = 3, calls = 300, threads = 0, with_c = 0, with_vnni = 0, prof = 0, i = 1;
    double seconds = 2;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--c")) with_c = 1;
        else if (!strcmp(argv[i], "--vnni")) with_vnni = 1;
        else if (!strcmp(argv[i], "--profile")) prof = 1;
        else if (i + 1 < argc && !strcmp(argv[i], "--rounds")) rounds = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--seconds")) seconds = atof(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--calls")) calls = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--threads")) threads = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_int8 [--rounds R] [--seconds S] [--calls N] [--threads T] [--c] [--vnni] "
                            "FLOAT INT8 [FLOAT INT8 ...]\n       bench_int8 --profile [--rounds R] INT8 [...]\n");
            return 2;
        }
    }
    if (prof && i < argc && rounds >= 1) {
        Rng pr;
        rng_seed(&pr, 42, "bench");
        uint8_t *ppx = malloc((size_t)BATCH * 784);
        for (size_t k = 0; k < (size_t)BATCH * 784; k++) ppx[k] = (uint8_t)rng_below(&pr, 256);
        int rc = profile(argv + i, argc - i, rounds, ppx);
        free(ppx);
        return rc;
    }
    if (i >= argc || (argc - i) % 2 || rounds < 1 || calls < 1 || seconds <= 0) {
        fprintf(stderr, "bench_int8: give pairs FLOAT INT8 (see the file comment)\n");
        return 2;
    }
    Rng r;
    rng_seed(&r, 42, "bench");
    uint8_t *px = malloc((size_t)BATCH * 784);
    for (size_t k = 0; k < (size_t)BATCH * 784; k++) px[k] = (uint8_t)rng_below(&r, 256);
    float *probs = malloc((size_t)BATCH * 10 * sizeof(float));
    fprintf(stderr, "int8 kernels here: %s; %d rounds alternating fp32 and int8; reproduce:", qkernels_name(QKERN_AUTO),
            rounds);
    for (int a = 0; a < argc; a++) fprintf(stderr, " %s", argv[a]);
    fprintf(stderr, "\n");
    for (; i + 1 < argc; i += 2) {
        Classifier f, q;
        if (classifier_load(&f, argv[i], BATCH, threads) < 0 || classifier_load(&q, argv[i + 1], BATCH, threads) < 0) {
            fprintf(stderr, "bench_int8: %s\n", dg_errmsg());
            return 1;
        }
        if (q.kind != CLASSIFIER_INT8) {
            fprintf(stderr, "bench_int8: %s: not an int8 model\n", argv[i + 1]);
            return 1;
        }
        const char *kinds[4] = {"fp32", "int8", "int8-c", "int8-vnni"}, *env[4] = {"auto", "auto", "c", "vnni"};
        int ks[4] = {0, 1}, nk = 2;
        if (with_c) ks[nk++] = 2;
        if (with_vnni) ks[nk++] = 3;
        double best_t[4] = {0}, best_l[4] = {1e30, 1e30, 1e30, 1e30};
        for (int rd = 0; rd < rounds; rd++)
            for (int kk = 0; kk < nk; kk++) {
                int k = ks[kk];
                Classifier *c = k == 0 ? &f : &q;
                setenv("DIGITS_INT8_KERNELS", env[k], 1);
                double t = throughput(c, px, probs, seconds), l = latency(c, px, probs, calls);
                if (t > best_t[k]) best_t[k] = t;
                if (l < best_l[k]) best_l[k] = l;
            }
        for (int kk = 0; kk < nk; kk++) {
            int k = ks[kk];
            printf("%s,%s,infer_img_s,%.0f\n", kinds[k], f.name, best_t[k]);
            printf("%s,%s,latency_median_us,%.1f\n", kinds[k], f.name, best_l[k]);
        }
        for (int kk = 1; kk < nk; kk++) {
            int k = ks[kk];
            fprintf(stderr, "%s: %s/fp32 throughput x%.2f, latency x%.2f\n", f.name, kinds[k], best_t[k] / best_t[0],
                    best_l[k] / best_l[0]);
        }
        classifier_free(&f);
        classifier_free(&q);
    }
    free(px);
    free(probs);
    return 0;
}
