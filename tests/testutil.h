/* testutil.h — helpers shared by the C tests: tolerant comparisons,
 * finite-difference gradient checks, random tensors, fixture paths, a
 * scratch folder per test group. */
#ifndef DG_TESTUTIL_H
#define DG_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/rng.h"

/* Largest |a[i]-b[i]| / max(1, |b[i]|) (relative for big values, absolute for small). */
float tu_max_rel_diff(const float *a, const float *b, size_t n);

/* Do the AVX-512 kernels (Winograd, direct, kvec: the ones that pack their
 * weights) run here? Not at the portable build's avx2 and generic levels,
 * which compute those layers on other paths. */
int tu_avx512_kernels(void);
/* Fill with U(-1,1) from a seeded stream. */
void tu_fill_uniform(float *a, size_t n, Rng *rng);
/* Fail the test (with the name and the diff printed) unless max diff <= tol. */
#define TU_ASSERT_CLOSE(a, b, n, tol, name)                                           \
    do {                                                                              \
        float d_ = tu_max_rel_diff((a), (b), (n));                                    \
        print_message("%-40s max diff %.3g (tol %.3g)\n", (name), (double)d_, (double)(tol)); \
        assert_true(d_ <= (tol));                                                     \
    } while (0)

/* Finite-difference check of a scalar function f(ctx) w.r.t. the n floats at
 * `param`: compares analytic gradient `grad` against central differences with
 * step h, in double; returns the max relative error
 * |fd - an| / max(1e-2, |fd| + |an|). Checks at most `max_checks` entries
 * (spread over the array). */
typedef double (*tu_loss_fn)(void *ctx);
double tu_grad_check(tu_loss_fn f, void *ctx, float *param, const float *grad, size_t n,
                     double h, int max_checks);

/* Path of a file under tests/ref (fixtures) or tests/data. */
const char *tu_fixture(const char *rel);

/* The scratch folder of a test group, as cmocka group setup/teardown:
 *   cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
 * setup makes a fresh "/tmp/digits-test-XXXXXX" (tu_tmpdir_setup_shm: on
 * /dev/shm when it is a writable folder, for tests whose many fsyncs are
 * free on tmpfs); teardown removes it with everything in it. Both return 0,
 * or -1 on failure. */
int tu_tmpdir_setup(void **state);
int tu_tmpdir_setup_shm(void **state);
int tu_tmpdir_teardown(void **state);
/* The folder made by the setup. */
const char *tu_tmpdir(void);
/* "<folder>/<name>", in a ring of 8 static buffers: a test may hold 8
 * paths at once. */
const char *tu_tmp_path(const char *name);
/* rm -rf path (no shell); 0, or -1 if anything could not be removed. */
int tu_rm_rf(const char *path);

#endif
