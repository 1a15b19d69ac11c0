/* test_dist_group.c — groups of ranks (dist_group_begin/end, dist/dist.h),
 * what an ensemble run uses when a few ranks train one member together.
 * Plain (`make test`): one rank, a group of one. Under mpirun
 * (tests/e2e/mpi_ensemble.sh runs the MPI build's copy with -np 3): ranks
 * {0} and {1, 2} form two groups; inside, rank and size are the group's
 * and broadcasts, sums and gathers stay within it; after dist_group_end
 * the whole job is back. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/dist.h"
#include "testutil.h"

static void test_groups(void **state) {
    (void)state;
    const int N = dist_size(), me = dist_rank();
    const int color = me == 0 ? 0 : 1; /* {0}, {1..N-1} */
    dist_group_begin(color);
    const int g = dist_size(), gr = dist_rank();
    assert_int_equal(g, N == 1 ? 1 : (color == 0 ? 1 : N - 1));
    assert_int_equal(gr, color == 0 ? 0 : me - 1);
    assert_int_equal(dist_active(), g > 1);
    /* the group's first rank broadcasts to its group only */
    int v = 100 * color + me;
    dist_bcast(&v, sizeof v, 0);
    assert_int_equal(v, color == 0 ? 0 : 101);
    /* a sum over the group: ranks 1..N-1 add their job ranks */
    double s = me;
    dist_allreduce_sum_f64(&s, 1);
    assert_true(s == (color == 0 ? 0.0 : (double)N * (N - 1) / 2));
    size_t counts[64];
    char *got = dist_gather_bytes(&me, sizeof me, counts);
    if (gr == 0) {
        assert_int_equal(counts[g - 1], sizeof me);
        free(got);
    } else {
        assert_null(got);
    }
    dist_group_end();
    assert_int_equal(dist_size(), N);
    assert_int_equal(dist_rank(), me);
    double all = 1;
    dist_allreduce_sum_f64(&all, 1);
    assert_true(all == N);
}

int main(int argc, char **argv) {
    if (dist_init(&argc, &argv) < 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_groups),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    dist_finalize();
    return rc;
}
