/* dist_single.c — dist.h for the default build (no MPI): one process,
 * rank 0 of 1. Broadcasts and reductions over one rank leave the data as
 * it is, except that the sum adds +0.0f as the MPI build's does (so -0.0f
 * becomes +0.0f in both). Under mpirun with more than one rank dist_init
 * fails (each rank would be a job of its own). */
#include "dist/dist.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"

/* Started by mpirun with more than one rank, this build would train
 * alone on every rank: refused. */
int dist_init(int *argc, char ***argv) {
    const char *n = getenv("OMPI_COMM_WORLD_SIZE");
    if (n && atoi(n) > 1)
        return dg_set_error("this digits was built without MPI, so its %s ranks would each train alone; "
                            "build it with make MPI=1 (build-mpi/digits)", n);
    return 0;
}
void dist_finalize(void) {}
int dist_rank(void) { return 0; }
int dist_size(void) { return 1; }
int dist_active(void) { return 0; }
int dist_built_with_mpi(void) { return 0; }
void dist_barrier(void) {}
void dist_bcast(void *buf, size_t n, int root) {}

/* (0 + buf[i]) as every build's sum starts from +0.0f */
void dist_allreduce_sum_f32(float *buf, size_t n) {
    for (size_t i = 0; i < n; i++) buf[i] = 0.0f + buf[i];
}
/* buf[j] = 0 + buf[0*n + j] + buf[1*n + j] + ... in block order */
void dist_allreduce_terms_f32(float *buf, size_t n, int terms) {
    for (size_t j = 0; j < n; j++) {
        float acc = 0.0f;
        for (int t = 0; t < terms; t++) acc += buf[(size_t)t * n + j];
        buf[j] = acc;
    }
}
void dist_allreduce_sum_f64(double *buf, size_t n) {
    for (size_t i = 0; i < n; i++) buf[i] = 0.0 + buf[i];
}

void dist_allgather(const void *mine, size_t n, void *all) {
    if (n) memmove(all, mine, n);
}

/* A copy of mine (malloc'd, the caller's), counts[0] = n. */
void *dist_gather_bytes(const void *mine, size_t n, size_t *counts) {
    counts[0] = n;
    void *out = dg_xmalloc(n ? n : 1);
    if (n) memcpy(out, mine, n);
    return out;
}

int dist_any(int flag) { return flag != 0; }
void dist_set_step(long step) {}
void dist_exit_on_signals(const char *cmd) {}

void dist_abort(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "digits: rank 0: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}
