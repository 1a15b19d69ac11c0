/* test_util.c — src/core/util's folder helpers and clock: is_dir on a
 * folder, a file and nothing; make_dirs creating nested folders, accepting
 * ones that exist, and refusing (with the one-line message) when a file is
 * in the way; now_seconds never going back.
 * Not covered here: read_whole_file and the atomic writes (every reader
 * and writer test goes through them). */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/check.h"
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_is_dir),
        cmocka_unit_test(test_make_dirs_nested),
        cmocka_unit_test(test_make_dirs_file_in_the_way),
        cmocka_unit_test(test_now_seconds_monotonic),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
