/* partition.c — spreading ensemble members and image ranges over ranks;
 * see partition.h. Pure integer arithmetic: every rank computes the same
 * plan without talking to the others. */
#include "core/partition.h"

#include "core/check.h"

int partition_rounds(int n_members, int first, int size) {
    DG_ASSERT(size >= 1 && first >= 0);
    int left = n_members - first;
    if (left <= 0) return 0;
    return size >= left ? 1 : (left + size - 1) / size;
}

/* First rank of member j's group (0-based among the members left) when
 * there are more ranks than members. */
static int group_start(int j, int left, int size) { return (int)((long)j * size / left); }

PartSlot partition_member(int n_members, int first, int size, int rank, int round) {
    DG_ASSERT(rank >= 0 && rank < size);
    PartSlot s = {-1, -1, 0, 0};
    int left = n_members - first;
    if (left <= 0 || round < 0 || round >= partition_rounds(n_members, first, size)) return s;
    if (size <= left) {
        int k = first + round * size + rank;
        if (k < n_members) s = (PartSlot){k, rank, 0, 1};
        return s;
    }
    /* more ranks than members: the group j with start(j) <= rank < start(j+1) */
    int j = (int)(((long)rank * left + left - 1) / size);
    while (j > 0 && group_start(j, left, size) > rank) j--;
    while (j + 1 < left && group_start(j + 1, left, size) <= rank) j++;
    int lo = group_start(j, left, size), hi = group_start(j + 1, left, size);
    return (PartSlot){first + j, j, rank - lo, hi - lo};
}

void partition_round_members(int n_members, int first, int size, int round, int *lo, int *hi) {
    int left = n_members - first;
    if (left <= 0 || round < 0 || round >= partition_rounds(n_members, first, size)) {
        *lo = *hi = n_members > first ? n_members : first;
        return;
    }
    int per = size <= left ? size : left;
    *lo = first + round * per;
    *hi = *lo + per < n_members ? *lo + per : n_members;
}

int partition_leader(int n_members, int first, int size, int k) {
    int left = n_members - first, j = k - first;
    DG_ASSERT(j >= 0 && j < left);
    return size <= left ? j % size : group_start(j, left, size);
}

void partition_range(long n, int block, int size, int rank, long *lo, long *hi) {
    DG_ASSERT(n >= 0 && block >= 1 && size >= 1 && rank >= 0 && rank < size);
    long blocks = (n + block - 1) / block;
    long b0 = blocks * rank / size, b1 = blocks * (rank + 1) / size;
    *lo = b0 * block < n ? b0 * block : n;
    *hi = b1 * block < n ? b1 * block : n;
}
