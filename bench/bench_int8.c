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
 * Leaves out on purpose: accuracy (digits eval measures it). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/runtime.h"
#include "digits_internal.h"
#include "quant/qmodel.h"

#define BATCH 1000

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
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

int main(int argc, char **argv) {
    dg_runtime_init(argv);
    int rounds = 3, calls = 300, threads = 0, with_c = 0, with_vnni = 0, i = 1;
    double seconds = 2;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--c")) with_c = 1;
        else if (!strcmp(argv[i], "--vnni")) with_vnni = 1;
        else if (i + 1 < argc && !strcmp(argv[i], "--rounds")) rounds = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--seconds")) seconds = atof(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--calls")) calls = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--threads")) threads = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_int8 [--rounds R] [--seconds S] [--calls N] [--threads T] [--c] [--vnni] "
                            "FLOAT INT8 [FLOAT INT8 ...]\n");
            return 2;
        }
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
