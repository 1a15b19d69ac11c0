/* partition.h — how work is spread over the ranks of an MPI job (or any
 * set of N equal workers): pure functions, no communication.
 *
 * Ensemble members. M members (after the ones a resumed run keeps) go to
 * N ranks in rounds. With N <= M, round r has members r·N .. r·N+N−1,
 * member r·N+i on rank i, each rank its own group of one; the last round
 * may leave ranks idle. With N > M there is one round, and member k is
 * trained by the group of ranks [k·N/M, (k+1)·N/M) (sizes differ by at
 * most one), whose first rank leads: it ships the trained member. Rounds
 * keep the ensemble file a prefix of the members (rank 0 saves after every
 * round), which is what a resumed run reads back.
 *
 * Images. n images in blocks of `block` (a batch): rank r of N gets the
 * blocks [r·B/N, (r+1)·B/N), B = ceil(n / block), so every image sits at
 * the same place in the same batch as in one process, and the ranges,
 * concatenated in rank order, are 0..n.
 *
 * Left out on purpose: weighting members by their cost (a heterogeneous
 * ensemble's round waits for its slowest member) and work stealing.
 */
#ifndef DG_PARTITION_H
#define DG_PARTITION_H

/* One rank's part of one round of an ensemble. */
typedef struct {
    int member;     /* 0-based member index this rank works on, or -1 (idle this round) */
    int group;      /* the group's index within the round (-1 idle) */
    int group_rank; /* this rank's place in its group (0 = leader) */
    int group_size; /* ranks training that member together */
} PartSlot;

/* Rounds needed for members first..n_members−1 over size ranks (0 if none). */
int partition_rounds(int n_members, int first, int size);
/* Members first..n_members−1 of an ensemble over size ranks: rank's slot
 * in round `round` (0-based). */
PartSlot partition_member(int n_members, int first, int size, int rank, int round);
/* The members of round `round`: *lo .. *hi−1. */
void partition_round_members(int n_members, int first, int size, int round, int *lo, int *hi);
/* The rank leading member k's group (k within first..n_members−1). */
int partition_leader(int n_members, int first, int size, int k);
/* Images [*lo, *hi) of n for rank of size, in whole blocks of `block`. */
void partition_range(long n, int block, int size, int rank, long *lo, long *hi);

#endif
