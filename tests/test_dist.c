/* test_dist.c — the process layer (dist/dist.h). Plain (`make test`): one
 * rank, the identity operations and the sum's +0.0f start. Under mpirun
 * (tests/e2e/mpi_train.sh runs the MPI build's copy with -np 3): every
 * rank checks that the fixed-order sum equals the sequential float sum
 * over ranks in rank order — on values where another order gives other
 * bits — and is the same on every rank, also with several terms per rank;
 * broadcast, all-gather, the
 * variable-size gather to rank 0 and the logical or. Also the two pieces
 * distributed training builds on: a shard of a dropout draw
 * (rng_fill_uniform_part) is the slice of the whole draw, and an sgemm cut
 * into 4 blocks on 1 thread (dg_sgemm_set_blocks) is bit-identical to the
 * same product on 4 threads. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/blas.h"
#include "core/rng.h"
#include "dist/dist.h"
#ifdef _OPENMP
#include <omp.h>
#endif
#include "testutil.h"

#define NV 1001        /* not a multiple of the rank count: uneven segments */
#define NV_LARGE 70001 /* over dist_mpi.c's one-gather size with 3 ranks */

/* Rank r's element i: magnitudes far apart, so the order of the adds shows. */
static float value(int r, int i) {
    static const float big[4] = {1e8f, 1.0f, -1e8f, 3.0f};
    return big[(r + i) % 4] * (1.0f + (float)(i % 7) / 8.0f) + (float)r * 0.25f - (i % 3 == 0 ? 0.0f : -0.0f);
}

/* The fixed-order sum over n elements; true if every element has the
 * sequential sum's bits on this rank and the same bits on every rank. */
static void check_allreduce(size_t n) {
    const int N = dist_size(), me = dist_rank();
    float *buf = malloc(n * sizeof(float)), *all = malloc((size_t)N * n * sizeof(float));
    for (size_t i = 0; i < n; i++) buf[i] = value(me, (int)i);
    buf[0] = -0.0f; /* every rank's -0: the sum from +0.0f is +0 */
    dist_allreduce_sum_f32(buf, n);
    for (size_t i = 1; i < n; i++) {
        float acc = 0.0f;
        for (int r = 0; r < N; r++) acc += value(r, (int)i);
        assert_true(memcmp(&acc, &buf[i], sizeof acc) == 0);
    }
    assert_false(signbit(buf[0]));
    dist_allgather(buf, n * sizeof(float), all);
    for (int r = 1; r < N; r++) assert_memory_equal(all, all + (size_t)r * n, n * sizeof(float));
    free(buf);
    free(all);
}

/* A small buffer (one all-gather) and a large one (reduce-scatter and
 * all-gather, with 3 or more ranks). */
static void test_allreduce_order(void **state) {
    (void)state;
    check_allreduce(NV);
    check_allreduce(NV_LARGE);
    double d[3] = {dist_rank(), 0.1 * dist_rank(), 1e300};
    dist_allreduce_sum_f64(d, 3);
    assert_true(d[0] == (double)dist_size() * (dist_size() - 1) / 2);
}

/* Three terms per rank: the sum runs over (rank, term) in order. */
static void test_allreduce_terms(void **state) {
    (void)state;
    enum { TERMS = 3 };
    const int N = dist_size(), me = dist_rank();
    for (size_t n = NV; n <= NV_LARGE; n += NV_LARGE - NV) {
        float *buf = malloc(TERMS * n * sizeof(float));
        for (int t = 0; t < TERMS; t++)
            for (size_t i = 0; i < n; i++) buf[t * n + i] = value(me * TERMS + t, (int)i);
        dist_allreduce_terms_f32(buf, n, TERMS);
        for (size_t i = 0; i < n; i++) {
            float acc = 0.0f;
            for (int k = 0; k < N * TERMS; k++) acc += value(k, (int)i);
            assert_true(memcmp(&acc, &buf[i], sizeof acc) == 0);
        }
        free(buf);
    }
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

static void test_noise_part(void **state) {
    (void)state;
    enum { TOTAL = 1001 };
    float whole[TOTAL], part[TOTAL];
    for (size_t off = 0; off < TOTAL; off += 97) {
        Rng a, b;
        rng_seed(&a, 7, "dropout");
        rng_seed(&b, 7, "dropout");
        rng_fill_uniform(&a, whole, TOTAL);
        size_t n = TOTAL - off < 300 ? TOTAL - off : 300;
        rng_fill_uniform_part(&b, part, off, n);
        assert_memory_equal(part, whole + off, n * sizeof(float));
        assert_true(rng_next(&a) == rng_next(&b)); /* the same one draw taken */
    }
}

static void test_sgemm_blocks(void **state) {
    (void)state;
    enum { M = 96, N = 84, K = 150 }; /* over the parallel threshold */
    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * N * K);
    float *c4 = calloc(M * N, sizeof(float)), *c1 = calloc(M * N, sizeof(float));
    Rng r;
    rng_seed(&r, 3, "test");
    tu_fill_uniform(A, (size_t)M * K, &r);
    tu_fill_uniform(B, (size_t)N * K, &r);
#ifdef _OPENMP
    const int saved = omp_get_max_threads();
    omp_set_num_threads(4);
#endif
    dg_sgemm_parallel(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, K, B, K, 0.0f, c4, N);
#ifdef _OPENMP
    omp_set_num_threads(1);
#endif
    dg_sgemm_set_blocks(4);
    dg_sgemm_parallel(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, K, B, K, 0.0f, c1, N);
    dg_sgemm_set_blocks(0);
#ifdef _OPENMP
    omp_set_num_threads(saved);
#endif
    assert_memory_equal(c1, c4, sizeof(float) * M * N);
    free(A);
    free(B);
    free(c4);
    free(c1);
}

int main(int argc, char **argv) {
    if (dist_init(&argc, &argv) < 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allreduce_order),
        cmocka_unit_test(test_allreduce_terms),
        cmocka_unit_test(test_bcast_gather),
        cmocka_unit_test(test_noise_part),
        cmocka_unit_test(test_sgemm_blocks),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    dist_finalize();
    return rc;
}
