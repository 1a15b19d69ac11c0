/* dist_mpi.c — dist.h on Open MPI (make MPI=1). MPI_Init only when the
 * process was started by mpirun (OMPI_COMM_WORLD_SIZE in the environment):
 * a plain run of the MPI binary stays one process without touching MPI.
 * Threads: MPI_THREAD_FUNNELED (only the main thread calls MPI; OpenMP
 * works inside the ranks). A failed call ends the job through our error
 * handler, which names this rank and the trainer's step before
 * MPI_Abort. Left out: non-blocking calls, messages over INT_MAX items. */
#include "dist/dist.h"

#include <limits.h>
#include <mpi.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/check.h"

static int g_on;           /* MPI_Init was called */
static int g_rank, g_size = 1;
static volatile long g_step;

/* A communication failure (a rank died, a link broke): one line naming
 * this rank and its step, then the whole job ends. */
static void on_mpi_error(MPI_Comm *comm, int *code, ...) {
    char msg[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(*code, msg, &len);
    fprintf(stderr, "digits: rank %d: communication failed at step %ld (another rank stopped or was killed): %s\n",
            g_rank, g_step, msg);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    exit(1);
}

int dist_init(int *argc, char ***argv) {
    if (g_on || !getenv("OMPI_COMM_WORLD_SIZE")) return 0;
    /* A rank waiting in a collective yields its core instead of spinning:
     * the ranks share the cores with their OpenMP threads (measured on
     * the 2-core test machine under load: 6-9 ms instead of 73-107 ms per
     * lenet5 step's exchange). The environment may say otherwise. */
    setenv("OMPI_MCA_mpi_yield_when_idle", "1", 0);
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return dg_set_error("MPI_Init failed");
    g_on = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    MPI_Errhandler h;
    MPI_Comm_create_errhandler(on_mpi_error, &h);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, h);
    MPI_Errhandler_free(&h);
    return 0;
}

void dist_finalize(void) {
    if (!g_on) return;
    int done = 0;
    MPI_Finalized(&done);
    if (!done) MPI_Finalize();
    g_on = 0;
}

int dist_rank(void) { return g_rank; }
int dist_size(void) { return g_size; }
int dist_active(void) { return g_size > 1; }
int dist_built_with_mpi(void) { return 1; }
void dist_set_step(long step) { g_step = step; }

/* Signal-handler-safe formatting: s, then the decimal v, appended at *o. */
static void put_str(char *buf, size_t *o, size_t cap, const char *s) {
    while (*s && *o + 1 < cap) buf[(*o)++] = *s++;
}
static void put_long(char *buf, size_t *o, size_t cap, long v) {
    char d[24];
    int k = 0;
    unsigned long u = v < 0 ? 0UL - (unsigned long)v : (unsigned long)v;
    do d[k++] = (char)('0' + u % 10); while ((u /= 10) && k < 23);
    if (v < 0 && *o + 1 < cap) buf[(*o)++] = '-';
    while (k && *o + 1 < cap) buf[(*o)++] = d[--k];
}

static const char *sig_cmd = "train";

/* The line of dist_exit_on_signals, with write(2) only, then _exit. */
static void on_end_signal(int signo) {
    char buf[256];
    size_t o = 0;
    put_str(buf, &o, sizeof buf, "digits ");
    put_str(buf, &o, sizeof buf, sig_cmd);
    put_str(buf, &o, sizeof buf, ": rank ");
    put_long(buf, &o, sizeof buf, g_rank);
    put_str(buf, &o, sizeof buf, ": ended by signal ");
    put_long(buf, &o, sizeof buf, signo);
    put_str(buf, &o, sizeof buf, " at step ");
    put_long(buf, &o, sizeof buf, g_step);
    put_str(buf, &o, sizeof buf, "; mpirun is stopping the job (its message names a rank that failed)\n");
    ssize_t w = write(2, buf, o);
    (void)w;
    _exit(128 + signo);
}

void dist_exit_on_signals(const char *cmd) {
    if (!g_on) return;
    sig_cmd = cmd;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_end_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

void dist_barrier(void) {
    if (g_on) MPI_Barrier(MPI_COMM_WORLD);
}

/* Bytes in pieces of at most INT_MAX (MPI counts are ints). */
void dist_bcast(void *buf, size_t n, int root) {
    if (!g_on) return;
    for (size_t off = 0; off < n;) {
        int k = n - off > INT_MAX ? INT_MAX : (int)(n - off);
        MPI_Bcast((char *)buf + off, k, MPI_BYTE, root, MPI_COMM_WORLD);
        off += (size_t)k;
    }
}

/* Rank r owns elements [r*n/N, (r+1)*n/N): the start of segment r. */
static size_t seg_start(size_t n, int r) { return n * (size_t)r / (size_t)g_size; }

/* Below this many bytes gathered in all, the fixed-order sum is one
 * MPI_Allgather and every rank adds everything (latency over bytes). */
#define SMALL_GATHER (256 * 1024)

/* The fixed-order sum of dist.h, each rank contributing `terms` blocks of
 * n elements (`elem` bytes, MPI type `type`): segment r of every block
 * goes to rank r (packed by destination, one MPI_Alltoallv), which adds
 * the N * terms copies in (rank, term) order from zero (add); the sums
 * come back to everybody (MPI_Allgatherv) into buf's first block. With 2
 * ranks (the same bytes either way) or a small total, one MPI_Allgather
 * and every rank adds all copies in the same order instead. */
static void allreduce_fixed(void *buf, size_t n, int terms, size_t elem, MPI_Datatype type,
                            void (*add)(void *out, const void *in, size_t copies, size_t len)) {
    if (!g_on || g_size == 1) {
        char *in = dg_xmalloc(elem * ((size_t)terms * n + 1));
        memcpy(in, buf, elem * (size_t)terms * n);
        add(buf, in, (size_t)terms, n);
        free(in);
        return;
    }
    const int N = g_size;
    DG_ASSERT((size_t)terms * n < INT_MAX);
    if (N == 2 || elem * (size_t)terms * n * (size_t)N <= SMALL_GATHER) {
        /* one round instead of two, the same sums: every rank adds all copies */
        char *in = dg_xmalloc(elem * ((size_t)N * (size_t)terms * n + 1));
        MPI_Allgather(buf, (int)((size_t)terms * n), type, in, (int)((size_t)terms * n), type, MPI_COMM_WORLD);
        add(buf, in, (size_t)N * (size_t)terms, n);
        free(in);
        return;
    }
    int *scount = dg_xmalloc(4 * sizeof(int) * (size_t)N), *sdispl = scount + N, *rcount = sdispl + N,
        *rdispl = rcount + N;
    const size_t mine = seg_start(n, g_rank + 1) - seg_start(n, g_rank);
    char *send = dg_xmalloc(elem * ((size_t)terms * n + 1)), *packed = send;
    for (int r = 0; r < N; r++) {
        const size_t lo = seg_start(n, r), len = seg_start(n, r + 1) - lo;
        scount[r] = (int)(len * (size_t)terms);
        sdispl[r] = (int)(lo * (size_t)terms);
        rcount[r] = (int)(mine * (size_t)terms);
        rdispl[r] = (int)(mine * (size_t)terms * (size_t)r);
        for (int t = 0; t < terms; t++, packed += elem * len)
            memcpy(packed, (char *)buf + elem * ((size_t)t * n + lo), elem * len);
    }
    char *in = dg_xmalloc(elem * (mine * (size_t)N * (size_t)terms + 1)), *out = dg_xmalloc(elem * (mine + 1));
    MPI_Alltoallv(send, scount, sdispl, type, in, rcount, rdispl, type, MPI_COMM_WORLD);
    add(out, in, (size_t)N * (size_t)terms, mine);
    for (int r = 0; r < N; r++) {
        rcount[r] = (int)(seg_start(n, r + 1) - seg_start(n, r));
        rdispl[r] = (int)seg_start(n, r);
    }
    MPI_Allgatherv(out, (int)mine, type, buf, rcount, rdispl, type, MPI_COMM_WORLD);
    free(send);
    free(in);
    free(out);
    free(scount);
}

/* out[j] = ((0 + in[0][j]) + in[1][j]) + ... (copies blocks of len, contiguous) */
static void add_f32(void *out, const void *in, size_t copies, size_t len) {
    const float *x = in;
    float *y = out;
    for (size_t j = 0; j < len; j++) {
        float acc = 0.0f;
        for (size_t r = 0; r < copies; r++) acc += x[r * len + j];
        y[j] = acc;
    }
}
static void add_f64(void *out, const void *in, size_t copies, size_t len) {
    const double *x = in;
    double *y = out;
    for (size_t j = 0; j < len; j++) {
        double acc = 0.0;
        for (size_t r = 0; r < copies; r++) acc += x[r * len + j];
        y[j] = acc;
    }
}

void dist_allreduce_sum_f32(float *buf, size_t n) { allreduce_fixed(buf, n, 1, sizeof(float), MPI_FLOAT, add_f32); }
void dist_allreduce_sum_f64(double *buf, size_t n) { allreduce_fixed(buf, n, 1, sizeof(double), MPI_DOUBLE, add_f64); }
void dist_allreduce_terms_f32(float *buf, size_t n, int terms) {
    allreduce_fixed(buf, n, terms, sizeof(float), MPI_FLOAT, add_f32);
}

void dist_allgather(const void *mine, size_t n, void *all) {
    if (!g_on) {
        if (n) memmove(all, mine, n);
        return;
    }
    DG_ASSERT(n < INT_MAX);
    MPI_Allgather(mine, (int)n, MPI_BYTE, all, (int)n, MPI_BYTE, MPI_COMM_WORLD);
}

void *dist_gather_bytes(const void *mine, size_t n, size_t *counts) {
    if (!g_on) {
        counts[0] = n;
        void *out = dg_xmalloc(n ? n : 1);
        if (n) memcpy(out, mine, n);
        return out;
    }
    const int N = g_size;
    DG_ASSERT(n < INT_MAX);
    int k = (int)n, *cnt = dg_xmalloc(2 * sizeof(int) * (size_t)N), *displ = cnt + N;
    MPI_Gather(&k, 1, MPI_INT, cnt, 1, MPI_INT, 0, MPI_COMM_WORLD);
    char *out = NULL;
    if (g_rank == 0) {
        size_t total = 0;
        for (int r = 0; r < N; r++) {
            DG_ASSERT(total + (size_t)cnt[r] < INT_MAX);
            displ[r] = (int)total;
            counts[r] = (size_t)cnt[r];
            total += (size_t)cnt[r];
        }
        out = dg_xmalloc(total ? total : 1);
    }
    MPI_Gatherv(mine, k, MPI_BYTE, out, cnt, displ, MPI_BYTE, 0, MPI_COMM_WORLD);
    free(cnt);
    return out;
}

int dist_any(int flag) {
    if (!g_on) return flag != 0;
    int in = flag != 0, out = 0;
    MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_LOR, MPI_COMM_WORLD);
    return out;
}

void dist_abort(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "digits: rank %d: ", g_rank);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
    if (g_on) MPI_Abort(MPI_COMM_WORLD, 1);
    exit(1);
}
