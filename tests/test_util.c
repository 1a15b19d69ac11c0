/* test_util.c — src/core/util's folder helpers and clock: is_dir on a
 * folder, a file and nothing; make_dirs creating nested folders, accepting
 * ones that exist, and refusing (with the one-line message) when a file is
 * in the way; now_seconds never going back; dg_runtime_init flushing
 * subnormal floats to zero in the thread that calls it and in threads it
 * starts afterwards, unless DIGITS_DENORMALS=keep.
 * Not covered here: read_whole_file and the atomic writes (every reader
 * and writer test goes through them). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/check.h"
#include "core/runtime.h"
#include "core/util.h"
#include "testutil.h"

/* Fails with the actual message when it lacks `needle`. */
#define ASSERT_MSG_HAS(needle)                                                                                  \
    do {                                                                                                        \
        if (!strstr(dg_errmsg(), (needle))) fail_msg("message \"%s\" lacks \"%s\"", dg_errmsg(), (needle));     \
    } while (0)

static void touch(const char *path) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
}

static void test_is_dir(void **state) {
    (void)state;
    assert_true(is_dir(tu_tmpdir()));
    touch(tu_tmp_path("file"));
    assert_false(is_dir(tu_tmp_path("file")));
    assert_false(is_dir(tu_tmp_path("missing")));
}

static void test_make_dirs_nested(void **state) {
    (void)state;
    assert_int_equal(make_dirs(tu_tmp_path("a/b/c")), 0);
    assert_true(is_dir(tu_tmp_path("a/b/c")));
    assert_int_equal(make_dirs(tu_tmp_path("a/b/c")), 0); /* already there: fine */
    assert_int_equal(make_dirs(tu_tmp_path("a/b/d/")), 0); /* trailing slash */
    assert_true(is_dir(tu_tmp_path("a/b/d")));
    assert_int_equal(make_dirs(tu_tmpdir()), 0);
}

static void test_make_dirs_file_in_the_way(void **state) {
    (void)state;
    touch(tu_tmp_path("plain"));
    assert_int_equal(make_dirs(tu_tmp_path("plain")), -1); /* the path itself is a file */
    ASSERT_MSG_HAS("exists and is not a folder");
    assert_int_equal(make_dirs(tu_tmp_path("plain/sub")), -1); /* a parent is a file */
    ASSERT_MSG_HAS("cannot create folder");
    ASSERT_MSG_HAS(tu_tmp_path("plain/sub"));
    assert_false(is_dir(tu_tmp_path("plain/sub")));
}

static void test_now_seconds_monotonic(void **state) {
    (void)state;
    double prev = now_seconds();
    assert_true(prev > 0);
    for (int i = 0; i < 1000; i++) {
        double t = now_seconds();
        assert_true(t >= prev);
        prev = t;
    }
    struct timespec nap = {0, 20 * 1000 * 1000}; /* 20 ms */
    nanosleep(&nap, NULL);
    const double slept = now_seconds() - prev;
    assert_true(slept >= 0.019 && slept < 5.0);
}

#if defined(__x86_64__)
#include <immintrin.h>

/* 1e-39 (subnormal) times 1: itself, or 0 where subnormals are flushed */
static float subnormal_product(void) {
    volatile float tiny = 1e-39f, one = 1.0f;
    return tiny * one;
}

static void *product_in_thread(void *out) {
    *(float *)out = subnormal_product();
    return NULL;
}

/* dg_runtime_init with DIGITS_DENORMALS = keep (or unset): the product in
 * this thread and in one started afterwards; MXCSR restored after. */
static void init_and_multiply(const char *keep, float *here, float *thread) {
    const unsigned saved = _mm_getcsr();
    setenv("DIGITS_NO_REEXEC", "1", 1); /* no re-exec of the test binary */
    if (keep) setenv("DIGITS_DENORMALS", keep, 1);
    else unsetenv("DIGITS_DENORMALS");
    char *argv[] = {"test_util", NULL};
    dg_runtime_init(argv);
    *here = subnormal_product();
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, product_in_thread, thread), 0);
    pthread_join(t, NULL);
    _mm_setcsr(saved);
    unsetenv("DIGITS_DENORMALS");
}

static void test_runtime_flushes_subnormals(void **state) {
    (void)state;
    assert_true(subnormal_product() > 0.0f); /* the test process keeps them */
    float here, thread;
    init_and_multiply(NULL, &here, &thread);
    assert_true(here == 0.0f);
    assert_true(thread == 0.0f);
    init_and_multiply("keep", &here, &thread);
    assert_true(here > 0.0f);
    assert_true(thread > 0.0f);
    assert_true(subnormal_product() > 0.0f); /* restored */
}
#endif

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_is_dir),
        cmocka_unit_test(test_make_dirs_nested),
        cmocka_unit_test(test_make_dirs_file_in_the_way),
        cmocka_unit_test(test_now_seconds_monotonic),
#if defined(__x86_64__)
        cmocka_unit_test(test_runtime_flushes_subnormals),
#endif
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
