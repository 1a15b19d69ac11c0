/* test_dist.c — the process layer (dist/dist.h). Plain (`make test`): one
 * rank, the identity operations and the sum's +0.0f start. Under mpirun
 * (tests/e2e/mpi_train.sh runs the MPI build's copy with -np 3): every
 * rank checks that the fixed-order sum equals the sequential float sum
 * over ranks in rank order — on values where another order gives other
 * bits — and is the same on every rank; broadcast, all-gather, the
 * variable-size gather to rank 0 and the logical or. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/dist.h"
#include "testutil.h"

#define NV 1001 /* not a multiple of the rank count: uneven segments */

/* Rank r's element i: magnitudes far apart, so the order of the adds shows. */
static float value(int r, int i) {
    static const float big[4] = {1e8f, 1.0f, -1e8f, 3.0f};
    return big[(r + i) % 4] * (1.0f + (float)(i % 7) / 8.0f) + (float)r * 0.25f - (i % 3 == 0 ? 0.0f : -0.0f);
}

static void test_allreduce_order(void **state) {
    (void)state;
    const int N = dist_size(), me = dist_rank();
    float *buf = malloc(NV * sizeof(float)), *all = malloc((size_t)N * NV * sizeof(float));
    for (int i = 0; i < NV; i++) buf[i] = value(me, i);
    buf[0] = -0.0f; /* every rank's -0: the sum from +0.0f is +0 */
    dist_allreduce_sum_f32(buf, NV);
    for (int i = 1; i < NV; i++) {
        float acc = 0.0f;
        for (int r = 0; r < N; r++) acc += value(r, i);
        assert_true(memcmp(&acc, &buf[i], sizeof acc) == 0);
    }
    assert_false(signbit(buf[0]));
    /* the same bits on every rank */
    dist_allgather(buf, NV * sizeof(float), all);
    for (int r = 1; r < N; r++) assert_memory_equal(all, all + (size_t)r * NV, NV * sizeof(float));
    double d[3] = {me, 0.1 * me, 1e300};
    dist_allreduce_sum_f64(d, 3);
    assert_true(d[0] == (double)N * (N - 1) / 2);
    free(buf);
    free(all);
}

static void test_bcast_gather(void **state) {
    (void)state;
    const int N = dist_size(), me = dist_rank();
    char msg[32];
    snprintf(msg, sizeof msg, "rank %d", me);
    dist_bcast(msg, sizeof msg, 0);
    assert_string_equal(msg, "rank 0");
    /* rank r sends r+1 bytes of value r */
    unsigned char mine[64];
    memset(mine, me, sizeof mine);
    size_t counts[64];
    unsigned char *got = dist_gather_bytes(mine, (size_t)me + 1, counts);
    if (me == 0) {
        size_t off = 0;
        for (int r = 0; r < N; r++) {
            assert_int_equal(counts[r], (size_t)r + 1);
            for (size_t k = 0; k < counts[r]; k++) assert_int_equal(got[off + k], r);
            off += counts[r];
        }
    } else {
        assert_null(got);
    }
    free(got);
    assert_int_equal(dist_any(me == N - 1), 1);
    assert_int_equal(dist_any(0), 0);
    dist_barrier();
}

int main(int argc, char **argv) {
    if (dist_init(&argc, &argv) < 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allreduce_order),
        cmocka_unit_test(test_bcast_gather),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    dist_finalize();
    return rc;
}
