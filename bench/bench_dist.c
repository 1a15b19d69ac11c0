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
 * gradient once a step. Also for sync mode: one step's SyncBN exchange,
 * two dist_allreduce_sum_f64 of 2C doubles per batch-norm layer (forward
 * statistics, backward sums), timed as a sequence. Rank 0 prints a
 * Markdown table. Leaves out: the exact mode's whole-batch row gathers
 * (linear, batchnorm), which depend on the batch; `digits train` prints
 * its own per-step exchange time. Without mpirun it runs as one rank. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "core/util.h"
#include "dist/dist.h"
#include "model/model.h"

/* One step's SyncBN exchange of m: per batch-norm layer of C channels,
 * two fixed-order all-reduces of 2C doubles (scratch: 2 * widest C). */
static void syncbn_step(const Model *m, double *scratch) {
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].type == LAYER_BATCHNORM)
            for (int k = 0; k < 2; k++) dist_allreduce_sum_f64(scratch, 2 * (size_t)m->layers[i].in.c);
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

int main(int argc, char **argv) {
    if (dist_init(&argc, &argv) < 0) return 1;
    const char *models = "lenet5,cnn,cnn-bn,kaggle-deep,twobranch";
    double secs = 0.5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--models") == 0) models = argv[i + 1];
        else if (strcmp(argv[i], "--seconds") == 0) secs = atof(argv[i + 1]);
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
        double *scratch = calloc(2 * (size_t)widest, sizeof(double));
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
