/* test_describe.c — `digits describe`'s numbers (src/data/describe.c)
 * against small hand-made data sets whose every statistic is worked out by
 * hand below: label counts and the balance verdict, pixel mean / std / zero
 * share, the always-zero positions and where they lie, exact duplicates
 * (with a label conflict), inverted and empty images, per-class means; the
 * same numbers through the three readers (Kaggle train.csv, test.csv, an IDX
 * folder written to a temp dir); the JSON keys `describe --help` documents. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "data/data.h"
#include "data/describe.h"

#define S 4 /* 4x4 images */
#define D (S * S)

/* Six 4x4 images:
 *   0: label 0, pixel (1,1) = 255
 *   1: label 1, pixel (2,2) = 128
 *   2: label 1, a copy of image 1 (a duplicate, same label)
 *   3: label 2, a copy of image 0 (a duplicate, label conflict)
 *   4: label 0, the ring 200, the inside 0 (inverted: bright border)
 *   5: label 3, all 0 (empty)
 * Always zero: (1,2) and (2,1) only — one pixel from the edge. */
static void make_set(Dataset *ds) {
    static const uint8_t labels[6] = {0, 1, 1, 2, 0, 3};
    ds->n = 6;
    ds->rows = ds->cols = S;
    ds->pixels = calloc(6 * D, 1);
    ds->labels = malloc(6);
    memcpy(ds->labels, labels, 6);
    ds->pixels[0 * D + 1 * S + 1] = 255;
    ds->pixels[1 * D + 2 * S + 2] = 128;
    memcpy(ds->pixels + 2 * D, ds->pixels + 1 * D, D);
    memcpy(ds->pixels + 3 * D, ds->pixels + 0 * D, D);
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++)
            if (y == 0 || y == S - 1 || x == 0 || x == S - 1) ds->pixels[4 * D + y * S + x] = 200;
}

static void check_set_stats(const DataStats *s, int labelled) {
    assert_int_equal(s->n, 6);
    assert_int_equal(s->rows, S);
    assert_int_equal(s->cols, S);
    assert_int_equal(s->labelled, labelled);
    /* pixels: 255*2 + 128*2 + 12*200 = 3166 over 96; squares 642818 */
    double mean = 3166.0 / 96, var = 642818.0 / 96 - mean * mean;
    assert_true(fabs(s->mean - mean) < 1e-9);
    assert_true(fabs(s->std - sqrt(var)) < 1e-9);
    assert_true(fabs(s->zero_share - 80.0 / 96) < 1e-12);
    assert_int_equal(s->hist[0], 80);
    assert_int_equal(s->hist[200], 12);
    assert_int_equal(s->hist[255], 2);
    assert_int_equal(s->hist[128], 2);
    assert_int_equal(s->n_always_zero, 2);
    assert_int_equal(s->always_zero[1 * S + 2], 1);
    assert_int_equal(s->always_zero[2 * S + 1], 1);
    assert_int_equal(s->always_zero[1 * S + 1], 0);
    assert_int_equal(s->frame_top + s->frame_bottom + s->frame_left + s->frame_right, 0);
    assert_int_equal(s->zero_by_edge[0], 0);
    assert_int_equal(s->zero_by_edge[1], 2);
    assert_true(fabs(s->mean_image[0] - 200.0f / 6) < 1e-4);
    /* duplicates: 2 = 1 and 3 = 0, in index order */
    assert_int_equal(s->n_duplicates, 2);
    assert_int_equal(s->dup_example[0], 2);
    assert_int_equal(s->dup_first[0], 1);
    assert_int_equal(s->dup_example[1], 3);
    assert_int_equal(s->dup_first[1], 0);
    assert_int_equal(s->n_dup_conflicts, labelled ? 1 : 0);
    assert_int_equal(s->n_inverted, 1);
    assert_int_equal(s->inverted_example[0], 4);
    assert_int_equal(s->n_empty, 1);
    assert_int_equal(s->empty_example[0], 5);
}

static void test_hand_made_set(void **state) {
    (void)state;
    Dataset ds = {0};
    make_set(&ds);
    DataStats s;
    describe_compute(&s, &ds);
    check_set_stats(&s, 1);
    static const int counts[10] = {2, 2, 1, 1, 0, 0, 0, 0, 0, 0};
    for (int k = 0; k < 10; k++) assert_int_equal(s.label_count[k], counts[k]);
    assert_true(isinf(s.balance_ratio)); /* digits 4..9 missing */
    assert_string_equal(s.balance, "imbalanced");
    /* class means: 0 = (255 + 2400) / 32, 1 = 256 / 32, 2 = 255 / 16, 3 = 0 */
    assert_true(fabs(s.class_mean[0] - 2655.0 / 32) < 1e-9);
    assert_true(fabs(s.class_mean[1] - 8.0) < 1e-9);
    assert_true(fabs(s.class_mean[2] - 255.0 / 16) < 1e-9);
    assert_true(s.class_mean[3] == 0);
    assert_true(fabs(s.class_mean_image[1 * D + 2 * S + 2] - 128.0f) < 1e-4);
    assert_true(fabs(s.class_mean_image[0 * D + 0] - 100.0f) < 1e-4); /* (0 + 200) / 2 */
    describe_free(&s);
    dataset_free(&ds);
}

/* The balance verdicts at their thresholds (largest / smallest class). */
static void test_balance_verdicts(void **state) {
    (void)state;
    struct {
        int big, small;
        const char *verdict;
    } cases[] = {{15, 10, "balanced"}, {16, 10, "mildly imbalanced"}, {30, 10, "mildly imbalanced"},
                 {31, 10, "imbalanced"}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int n = cases[c].big + 9 * cases[c].small;
        Dataset ds = {.n = n, .rows = 2, .cols = 2};
        ds.pixels = calloc((size_t)n * 4, 1);
        ds.labels = malloc((size_t)n);
        int i = 0;
        for (int j = 0; j < cases[c].big; j++) ds.labels[i++] = 0;
        for (int k = 1; k < 10; k++)
            for (int j = 0; j < cases[c].small; j++) ds.labels[i++] = (uint8_t)k;
        DataStats s;
        describe_compute(&s, &ds);
        assert_true(fabs(s.balance_ratio - (double)cases[c].big / cases[c].small) < 1e-12);
        assert_string_equal(s.balance, cases[c].verdict);
        assert_int_equal(s.n_duplicates, n - 1); /* all blank: every image after the first */
        assert_int_equal(s.n_empty, n);
        describe_free(&s);
        dataset_free(&ds);
    }
}

/* Only (1,1) and (2,2) ever inked: the border is a frame of whole zero rows
 * and columns, 12 positions at distance 0 and 2 at distance 1. */
static void test_zero_frame(void **state) {
    (void)state;
    Dataset ds = {.n = 2, .rows = S, .cols = S};
    ds.pixels = calloc(2 * D, 1);
    ds.pixels[1 * S + 1] = 90;
    ds.pixels[D + 2 * S + 2] = 90;
    DataStats s;
    describe_compute(&s, &ds);
    assert_int_equal(s.labelled, 0);
    assert_string_equal(s.balance, "unlabelled");
    assert_null(s.class_mean_image);
    assert_int_equal(s.n_always_zero, 14);
    assert_int_equal(s.frame_top, 1);
    assert_int_equal(s.frame_bottom, 1);
    assert_int_equal(s.frame_left, 1);
    assert_int_equal(s.frame_right, 1);
    assert_int_equal(s.zero_by_edge[0], 12);
    assert_int_equal(s.zero_by_edge[1], 2);
    assert_int_equal(s.n_duplicates, 0);
    assert_int_equal(s.n_empty, 0);
    describe_free(&s);
    dataset_free(&ds);
}

/* The same numbers through train.csv, test.csv (no labels) and an IDX
 * folder written to the test's scratch folder (removed by its teardown). */
static void test_through_readers(void **state) {
    (void)state;
    const char *dir = tu_tmpdir(), *train_csv = tu_tmp_path("train.csv"), *test_csv = tu_tmp_path("test.csv");
    const char *imgs = tu_tmp_path("train-images-idx3-ubyte"), *labs = tu_tmp_path("train-labels-idx1-ubyte");
    Dataset ds = {0};
    make_set(&ds);
    assert_int_equal(csv_write(train_csv, &ds), 0);
    assert_int_equal(idx_write_images(imgs, &ds), 0);
    assert_int_equal(idx_write_labels(labs, ds.labels, ds.n), 0);
    uint8_t *labels = ds.labels;
    ds.labels = NULL;
    assert_int_equal(csv_write(test_csv, &ds), 0);
    ds.labels = labels;

    const char *paths[3] = {train_csv, test_csv, dir};
    for (int p = 0; p < 3; p++) {
        Dataset r;
        assert_int_equal(dataset_load(paths[p], "train", &r), 0);
        DataStats s;
        describe_compute(&s, &r);
        check_set_stats(&s, p != 1);
        if (p == 1) assert_string_equal(s.balance, "unlabelled");
        else assert_int_equal(s.label_count[1], 2);
        describe_free(&s);
        dataset_free(&r);
    }
    dataset_free(&ds);
}

/* Every key `digits describe --help` documents, with the hand-made values. */
static void test_json_keys(void **state) {
    (void)state;
    Dataset ds = {0};
    make_set(&ds);
    DataStats s;
    describe_compute(&s, &ds);
    char *js = describe_to_json(&s, "hand-made", "csv");
    cJSON *o = cJSON_Parse(js);
    assert_non_null(o);
    const char *top[] = {"source", "format", "n", "rows", "cols", "labelled", "balance", "labels",
                         "class_mean_intensity", "pixels", "duplicates", "inverted", "empty"};
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
        assert_non_null(cJSON_GetObjectItemCaseSensitive(o, top[i]));
    const cJSON *lab = cJSON_GetObjectItemCaseSensitive(o, "labels");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(lab, "counts")), 10);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(lab, "shares")), 10);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(lab, "balance_ratio"))); /* a digit missing */
    const cJSON *px = cJSON_GetObjectItemCaseSensitive(o, "pixels");
    const char *pk[] = {"mean", "std", "zero_share", "always_zero", "zero_frame", "always_zero_by_edge_distance"};
    for (size_t i = 0; i < sizeof pk / sizeof pk[0]; i++) assert_non_null(cJSON_GetObjectItemCaseSensitive(px, pk[i]));
    const cJSON *fr = cJSON_GetObjectItemCaseSensitive(px, "zero_frame");
    const char *fk[] = {"top", "bottom", "left", "right"};
    for (size_t i = 0; i < 4; i++) assert_non_null(cJSON_GetObjectItemCaseSensitive(fr, fk[i]));
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(px, "always_zero")->valueint, 2);
    const cJSON *dup = cJSON_GetObjectItemCaseSensitive(o, "duplicates");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(dup, "count")->valueint, 2);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(dup, "label_conflicts")->valueint, 1);
    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(dup, "examples");
    assert_int_equal(cJSON_GetArraySize(ex), 2);
    assert_int_equal(cJSON_GetArrayItem(cJSON_GetArrayItem(ex, 1), 0)->valueint, 0); /* [first, duplicate] */
    assert_int_equal(cJSON_GetArrayItem(cJSON_GetArrayItem(ex, 1), 1)->valueint, 3);
    const char *fnd[] = {"inverted", "empty"};
    for (int i = 0; i < 2; i++) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, fnd[i]);
        assert_int_equal(cJSON_GetObjectItemCaseSensitive(f, "count")->valueint, 1);
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(f, "examples")), 1);
    }
    cJSON_Delete(o);
    free(js);
    describe_free(&s);
    dataset_free(&ds);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_made_set),
        cmocka_unit_test(test_balance_verdicts),
        cmocka_unit_test(test_zero_frame),
        cmocka_unit_test_setup_teardown(test_through_readers, tu_tmpdir_setup, tu_tmpdir_teardown),
        cmocka_unit_test(test_json_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
