/* bench_dist.c — the cost of the ranks' exchange per training step, for
 * each zoo model's gradient size (MPI build, under mpirun):
 *
 *   mpirun -np 2 build-mpi/bench/bench_dist [--models lenet5,cnn,kaggle-deep] [--seconds 0.5]
 *
 * For each model: its parameter count, and the mean time of one
 * dist_allreduce_sum_f32 over that many floats (the fixed-order sum:
 * Alltoallv + Allgatherv, a ring's bytes) and of one dist_allgather of
 * them (what the trainer does with conv chunk partials at 1 thread per
 * rank), every rank starting together (a barrier before each call, not
 * timed). The all-reduce is exactly what `--dist-mode sync` does with the
 * gradient once a step. Also for sync mode: one step's SyncBN exchange
 * per batch-norm layer, a dist_allgather and a dist_allreduce_sum_f64 of
 * 2C doubles (forward statistics, backward sums), timed as a sequence. Rank 0 prints a
 * Markdown table. Leaves out: the exact mode's whole-batch row gathers
 * (linear, batchnorm), which depend on the batch; `digits train` prints
 * its own per-step exchange time. Without mpirun it runs as one rank.
 *
 *   build-mpi/bench/bench_dist --compute 64 [--threads 2] [--rounds 5]   # no mpirun
 *
 * instead times one rank's compute of a training step (forward, loss,
 * backward; no optimiser, no exchange) at that many images, in alternating
 * rounds: the one-process step (batch norm fused with its ReLU), the same
 * unfused, and sync mode's (SyncBN's own loops, on one rank: its sums go
 * nowhere). The median ms of each and the sync / fused ratio. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/check.h"
#include "core/util.h"
#include "dist/dist.h"
#include "model/model.h"
#include "ops/ops.h"
#include "train/dist_train.h"

/* One step's SyncBN exchange of m, as src/train/dist_train.c does it: per
 * batch-norm layer of C channels, an all-gather of 2C doubles (forward:
 * each rank's mean and M2) and a fixed-order all-reduce of 2C doubles
 * (backward sums). scratch: 2 * widest C * (N + 1) doubles. */
static void syncbn_step(const Model *m, double *scratch) {
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].type == LAYER_BATCHNORM) {
            const size_t c2 = 2 * (size_t)m->layers[i].in.c;
            dist_allgather(scratch, c2 * sizeof(double), scratch + c2);
            dist_allreduce_sum_f64(scratch, c2);
        }
}

/* Mean seconds of one call of op over n floats (op 2: one step's SyncBN
 * exchange of m), repeated for about secs. */
static double time_op(int op, float *buf, float *all, size_t n, double secs, const Model *m, double *scratch) {
    int reps = 0;
    double spent = 0;
    int go = 1;
    while (go) {
        dist_barrier();
        double t0 = now_seconds();
        if (op == 0) dist_allreduce_sum_f32(buf, n);
        else if (op == 2) syncbn_step(m, scratch);
        else dist_allgather(buf, n * sizeof(float), all);
        spent += now_seconds() - t0;
        reps++;
        double total = spent;
        dist_bcast(&total, sizeof total, 0); /* rank 0 decides when to stop */
        go = total < secs && reps < 100000;
    }
    return spent / reps;
}

/* Seconds of k training steps of B images (forward, loss, backward). */
static double compute_steps(Model *m, DistTrain *d, const uint8_t *px, const uint8_t *y, float *probs, int B,
                            int k) {
    Layer *last = &m->layers[m->n_layers - 1];
    double t0 = now_seconds();
    for (int i = 0; i < k; i++) {
        if (d) dist_train_begin(d, 0, B, B);
        model_load_pixels(m, px, B);
        float *logits = model_forward(m, B, 1);
        softmax_xent_forward(probs, logits, y, B, MODEL_NUM_CLASSES);
        softmax_xent_backward(last->dy, probs, y, B, MODEL_NUM_CLASSES);
        model_zero_grad(m);
        model_backward(m, last->dy, B);
    }
    return now_seconds() - t0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* --compute B: the three step kinds of one model in alternating rounds;
 * prints a Markdown row (median ms a step). */
static void compute_model(const char *name, int B, int threads, int rounds) {
    Model m;
    if (model_build_named(&m, name) < 0) {
        fprintf(stderr, "bench_dist: %s: %s\n", name, dg_errmsg());
        return;
    }
    model_init_params(&m, 42);
    m.norm_mean = 0.1307f; /* MNIST's, as training sets them */
    m.norm_std = 0.3081f;
    model_set_batch(&m, B, 1, threads);
    const size_t img = shape_size(m.input_shape);
    uint8_t *px = malloc((size_t)B * img), *y = malloc((size_t)B);
    float *probs = malloc((size_t)B * MODEL_NUM_CLASSES * sizeof(float));
    srand(1);
    for (size_t i = 0; i < (size_t)B * img; i++) px[i] = (uint8_t)(rand() & 255);
    for (int i = 0; i < B; i++) y[i] = (uint8_t)(i % MODEL_NUM_CLASSES);
    double *t = calloc(3 * (size_t)rounds, sizeof(double));
    const int k = 3;
    compute_steps(&m, NULL, px, y, probs, B, 1); /* warm-up */
    for (int r = 0; r < rounds; r++) {
        t[r] = compute_steps(&m, NULL, px, y, probs, B, k) / k;
        m.unfused_training = 1;
        t[rounds + r] = compute_steps(&m, NULL, px, y, probs, B, k) / k;
        m.unfused_training = 0;
        DistTrain *d = dist_train_start(&m, B, DIST_SYNC);
        t[2 * rounds + r] = compute_steps(&m, d, px, y, probs, B, k) / k;
        dist_train_free(d);
    }
    for (int s = 0; s < 3; s++) qsort(t + (size_t)s * rounds, (size_t)rounds, sizeof(double), cmp_double);
    const double f = t[rounds / 2], u = t[rounds + rounds / 2], sy = t[2 * rounds + rounds / 2];
    printf("| %s | %d | %d | %.1f | %.1f | %.1f | %.2f |\n", name, B, threads, 1e3 * f, 1e3 * u, 1e3 * sy, sy / f);
    fflush(stdout);
    free(t);
    free(px);
    free(y);
    free(probs);
    model_free(&m);
}

int main(int argc, char **argv) {
    if (dist_init(&argc, &argv) < 0) return 1;
    const char *models = "lenet5,cnn,cnn-bn,kaggle-deep,twobranch";
    double secs = 0.5;
    int compute = 0, threads = 2, rounds = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--models") == 0) models = argv[i + 1];
        else if (strcmp(argv[i], "--seconds") == 0) secs = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--compute") == 0) compute = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--threads") == 0) threads = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--rounds") == 0) rounds = atoi(argv[i + 1]);
    }
    if (compute > 0) {
        if (rounds < 1) rounds = 1;
#ifdef _OPENMP
        omp_set_num_threads(threads);
#endif
        printf("one rank's training step (forward, loss, backward), median of %d alternating rounds\n\n"
               "| model | images | threads | one process ms (BN+ReLU fused) | unfused ms | sync mode ms (SyncBN) | "
               "sync / one process |\n|---|---:|---:|---:|---:|---:|---:|\n", rounds);
        char names[1024];
        snprintf(names, sizeof names, "%s", models);
        for (char *name = strtok(names, ","); name; name = strtok(NULL, ",")) compute_model(name, compute, threads, rounds);
        dist_finalize();
        return 0;
    }
    if (dist_rank() == 0) {
        printf("%d ranks\n\n| model | parameters | MiB | fixed-order all-reduce ms | all-gather ms | "
               "batch-norm layers | SyncBN sums ms/step |\n", dist_size());
        printf("|---|---:|---:|---:|---:|---:|---:|\n");
    }
    char list[1024];
    snprintf(list, sizeof list, "%s", models);
    for (char *name = strtok(list, ","); name; name = strtok(NULL, ",")) {
        Model m;
        if (model_build_named(&m, name) < 0) {
            if (dist_rank() == 0) fprintf(stderr, "bench_dist: %s: %s\n", name, dg_errmsg());
            continue;
        }
        const size_t n = m.n_param;
        float *buf = calloc(n + 1, sizeof(float)), *all = malloc(((size_t)dist_size() * n + 1) * sizeof(float));
        int nbn = 0, widest = 1;
        for (int i = 0; i < m.n_layers; i++)
            if (m.layers[i].type == LAYER_BATCHNORM) {
                nbn++;
                if (m.layers[i].in.c > widest) widest = m.layers[i].in.c;
            }
        double *scratch = calloc(2 * (size_t)widest * ((size_t)dist_size() + 1), sizeof(double));
        double ar = time_op(0, buf, all, n, secs, &m, scratch), ag = time_op(1, buf, all, n, secs, &m, scratch);
        double bn = nbn ? time_op(2, buf, all, n, secs, &m, scratch) : 0;
        if (dist_rank() == 0)
            printf("| %s | %zu | %.2f | %.3f | %.3f | %d | %.3f |\n", name, n, n * 4.0 / (1 << 20), 1e3 * ar, 1e3 * ag,
                   nbn, 1e3 * bn);
        free(scratch);
        free(buf);
        free(all);
        model_free(&m);
    }
    dist_finalize();
    return 0;
}
