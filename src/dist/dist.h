/* dist.h — the processes of a distributed run (Open MPI), behind one small
 * interface so that nothing else includes <mpi.h>.
 *
 * Two implementations, one linked per build:
 *   dist_mpi.c     `make MPI=1` (build-mpi/digits): Open MPI; a program
 *                  started by mpirun is one rank of many;
 *   dist_single.c  the default build: one process, rank 0 of 1; every call
 *                  is the identity (a broadcast or a gather of one rank).
 * dist_active() says whether there is more than one rank.
 *
 * Exactness. dist_allreduce_sum_f32 does not use MPI_Allreduce (whose
 * reduction order Open MPI picks by message size and rank count): every
 * rank receives every rank's segment (reduce-scatter by MPI_Alltoallv, the
 * bytes of a ring all-reduce) and adds them in rank order starting from
 * +0.0f, then the sums are shared (MPI_Allgatherv). The result is the same
 * bits on every rank and equals the sequential float sum
 * ((0 + b_0) + b_1) + ... + b_{N-1} element by element, whatever N and
 * the transport. dist_allgather gives every rank every rank's bytes in
 * rank order, for sums that must follow another order (the trainer's).
 *
 * Errors: Open MPI's default error handler aborts the job on a
 * communication failure (a rank killed mid-run); dist_abort ends every
 * rank with one line of ours first. Left out on purpose: non-blocking
 * calls, sub-communicators, anything over 2^31 - 1 bytes per call. */
#ifndef DG_DIST_H
#define DG_DIST_H

#include <stddef.h>
#include <stdint.h>

/* Start the ranks' communication (MPI_Init; argc/argv may be NULL). Call
 * once, before any other dist_ call; 0 on success, -1 with dg_errmsg()
 * (also: the build without MPI started by mpirun with several ranks). */
int dist_init(int *argc, char ***argv);
/* End it (MPI_Finalize); safe to call when dist_init was not. */
void dist_finalize(void);
/* This process's rank (0-based) and the number of ranks (1 without MPI). */
int dist_rank(void);
int dist_size(void);
/* 1 if the job has more than one rank. */
int dist_active(void);
/* 1 if this binary was built with MPI (make MPI=1). */
int dist_built_with_mpi(void);
/* Wait for every rank. */
void dist_barrier(void);
/* Copy root's n bytes of buf into every rank's buf. */
void dist_bcast(void *buf, size_t n, int root);
/* buf[i] = sum over ranks r = 0..N-1 of rank r's buf[i], added in rank
 * order from +0.0f, the same bits on every rank (see "Exactness"). */
void dist_allreduce_sum_f32(float *buf, size_t n);
/* The same with `terms` contributions per rank: buf holds terms blocks
 * of n floats; afterwards buf[0..n) = the sum over ranks r and, within
 * a rank, blocks t, added in (r, t) order from +0.0f — as one process
 * adding N * terms per-thread partials in order would (the trainer's conv
 * chunk partials, T per rank). The rest of buf is left undefined. Bytes
 * moved per rank: about (terms + 1) * n * 4 * (N - 1) / N. */
void dist_allreduce_terms_f32(float *buf, size_t n, int terms);
/* The same for doubles (statistics: loss sums, counts). */
void dist_allreduce_sum_f64(double *buf, size_t n);
/* Every rank's n bytes of mine, concatenated in rank order into all
 * (N * n bytes, caller's), on every rank. */
void dist_allgather(const void *mine, size_t n, void *all);
/* Rank 0 receives every rank's buffer (sizes may differ): returns, on rank
 * 0, a malloc'd concatenation in rank order with each rank's byte count in
 * counts[N] (caller's array of dist_size() entries); other ranks get NULL.
 * The caller frees the result. */
void *dist_gather_bytes(const void *mine, size_t n, size_t *counts);
/* 1 if the flag is non-zero on any rank (a logical or, the same answer on
 * every rank). */
int dist_any(int flag);
/* The step this rank is at (the trainer's), named by the line printed
 * when communication fails: "digits: rank R: communication failed at
 * step S (...)". 0 = before the first step. */
void dist_set_step(long step);
/* Under mpirun: SIGINT and SIGTERM (what mpirun sends the other ranks
 * when one dies, or when mpirun itself is stopped) print
 * "digits CMD: rank R: ended by signal S at step N; ..." and exit
 * 128 + S at once — a rank that stopped cannot be waited for. Replaces
 * the handlers installed before; a no-op without MPI. */
void dist_exit_on_signals(const char *cmd);
/* Print "digits: rank R: MESSAGE" on stderr and end the whole job (every
 * rank) with exit status 1. Never returns. */
void dist_abort(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

#endif
