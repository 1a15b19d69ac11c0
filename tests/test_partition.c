/* test_partition.c — the plans that spread work over MPI ranks
 * (core/partition.h): ensemble members over ranks in rounds or groups,
 * and image ranges in whole batches. Checked on worked examples and, for
 * every member count 1..12, rank count 1..12 and resume point, on the
 * properties the callers rely on: each member trained by exactly one
 * group, groups contiguous and led by their first rank, rounds in member
 * order; image ranges disjoint, in rank order, covering 0..n, starting on
 * a batch boundary. */
#include <stdlib.h>

#include "core/partition.h"
#include "testutil.h"

/* 5 members over 2 ranks: rounds {0,1}, {2,3}, {4}; rank 1 idle at the end. */
static void test_members_in_rounds(void **state) {
    (void)state;
    assert_int_equal(partition_rounds(5, 0, 2), 3);
    int want[3][2] = {{0, 1}, {2, 3}, {4, -1}};
    for (int r = 0; r < 3; r++)
        for (int rank = 0; rank < 2; rank++) {
            PartSlot s = partition_member(5, 0, 2, rank, r);
            assert_int_equal(s.member, want[r][rank]);
            if (s.member >= 0) {
                assert_int_equal(s.group_size, 1);
                assert_int_equal(s.group_rank, 0);
                assert_int_equal(partition_leader(5, 0, 2, s.member), rank);
            }
        }
    int lo, hi;
    partition_round_members(5, 0, 2, 2, &lo, &hi);
    assert_int_equal(lo, 4);
    assert_int_equal(hi, 5);
    /* resumed with 2 members kept: 2,3 then 4 */
    assert_int_equal(partition_rounds(5, 2, 2), 2);
    assert_int_equal(partition_member(5, 2, 2, 1, 0).member, 3);
    assert_int_equal(partition_member(5, 2, 2, 0, 1).member, 4);
    assert_int_equal(partition_rounds(5, 5, 2), 0);
    assert_int_equal(partition_member(5, 5, 2, 0, 0).member, -1);
}

/* 2 members over 3 ranks: member 0 by rank 0, member 1 by ranks 1 and 2. */
static void test_groups_when_ranks_exceed_members(void **state) {
    (void)state;
    assert_int_equal(partition_rounds(2, 0, 3), 1);
    PartSlot a = partition_member(2, 0, 3, 0, 0), b = partition_member(2, 0, 3, 1, 0),
             c = partition_member(2, 0, 3, 2, 0);
    assert_int_equal(a.member, 0);
    assert_int_equal(a.group_size, 1);
    assert_int_equal(b.member, 1);
    assert_int_equal(b.group_rank, 0);
    assert_int_equal(b.group_size, 2);
    assert_int_equal(c.member, 1);
    assert_int_equal(c.group_rank, 1);
    assert_int_equal(partition_leader(2, 0, 3, 1), 1);
    assert_int_equal(partition_member(2, 0, 3, 0, 1).member, -1); /* no second round */
}

/* Every (members, first, ranks) up to 12: each member led by exactly one
 * rank, in one round, in member order; groups contiguous, sizes within one. */
static void test_member_plan_properties(void **state) {
    (void)state;
    for (int m = 1; m <= 12; m++)
        for (int first = 0; first <= m; first++)
            for (int n = 1; n <= 12; n++) {
                int rounds = partition_rounds(m, first, n);
                int seen[12] = {0}, next = first;
                for (int r = 0; r < rounds; r++) {
                    int lo, hi;
                    partition_round_members(m, first, n, r, &lo, &hi);
                    assert_int_equal(lo, next);
                    assert_true(hi > lo);
                    next = hi;
                    int prev_member = -1, min_g = 1 << 30, max_g = 0;
                    for (int rank = 0; rank < n; rank++) {
                        PartSlot s = partition_member(m, first, n, rank, r);
                        if (s.member < 0) continue;
                        assert_true(s.member >= lo && s.member < hi);
                        assert_true(s.member >= prev_member); /* contiguous, in order */
                        if (s.group_rank == 0) {
                            seen[s.member]++;
                            assert_int_equal(partition_leader(m, first, n, s.member), rank);
                        } else {
                            assert_int_equal(s.member, prev_member);
                        }
                        prev_member = s.member;
                        if (s.group_size < min_g) min_g = s.group_size;
                        if (s.group_size > max_g) max_g = s.group_size;
                    }
                    assert_true(max_g - min_g <= 1);
                }
                assert_int_equal(next, first < m ? m : first);
                for (int k = 0; k < m; k++) assert_int_equal(seen[k], k >= first ? 1 : 0);
            }
}

/* 1000 images, batch 256, 3 ranks: blocks 0 | 1 | 2-3. */
static void test_image_ranges(void **state) {
    (void)state;
    long lo, hi;
    partition_range(1000, 256, 3, 0, &lo, &hi);
    assert_int_equal(lo, 0), assert_int_equal(hi, 256);
    partition_range(1000, 256, 3, 1, &lo, &hi);
    assert_int_equal(lo, 256), assert_int_equal(hi, 512);
    partition_range(1000, 256, 3, 2, &lo, &hi);
    assert_int_equal(lo, 512), assert_int_equal(hi, 1000);
    /* fewer blocks than ranks: some ranks get nothing */
    partition_range(100, 256, 2, 0, &lo, &hi);
    assert_int_equal(lo, 0), assert_int_equal(hi, 0);
    partition_range(100, 256, 2, 1, &lo, &hi);
    assert_int_equal(lo, 0), assert_int_equal(hi, 100);
    for (long n = 0; n <= 40; n++)
        for (int block = 1; block <= 7; block++)
            for (int size = 1; size <= 6; size++) {
                long next = 0;
                for (int r = 0; r < size; r++) {
                    partition_range(n, block, size, r, &lo, &hi);
                    assert_int_equal(lo, next);
                    assert_true(hi >= lo);
                    assert_true(lo % block == 0 || lo == n);
                    next = hi;
                }
                assert_int_equal(next, n);
            }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_members_in_rounds),
        cmocka_unit_test(test_groups_when_ranks_exceed_members),
        cmocka_unit_test(test_member_plan_properties),
        cmocka_unit_test(test_image_ranges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
