/* test_holdout.c — did-you-mean (core/suggest.h) and the model's record of
 * its training data (eval/holdout.h): edit distances, which typos find a
 * suggestion and which do not, the fingerprint's prefix rule, the record's
 * round trip through a model file's metadata, and holdout_load on a CSV:
 * the validation images it re-cuts are exactly those of split_stratified,
 * and it refuses other data, --val-split 0, K-fold ensembles and files
 * without a record. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/suggest.h"
#include "digits_internal.h"
#include "testutil.h"

static void test_distance(void **state) {
    (void)state;
    assert_int_equal(suggest_distance("", ""), 0);
    assert_int_equal(suggest_distance("abc", ""), 3);
    assert_int_equal(suggest_distance("", "ab"), 2);
    assert_int_equal(suggest_distance("kitten", "sitting"), 3);
    assert_int_equal(suggest_distance("cnn_bn", "cnn-bn"), 0); /* '_' is '-' */
    assert_int_equal(suggest_distance("LeNet5", "lenet5"), 0); /* case-insensitive */
    assert_int_equal(suggest_distance("resnet99", "resnet5"), 2);
    assert_int_equal(suggest_distance("ab", "ba"), 1); /* two neighbours swapped: one edit */
    assert_int_equal(suggest_distance("epohcs", "epochs"), 1);
    assert_int_equal(suggest_distance("ca", "abc"), 3); /* restricted: no edits inside a swapped pair */
}

static void test_closest(void **state) {
    (void)state;
    const char *zoo[] = {"cnn", "cnn-bn", "cnn-deep", "lenet5", "mlp", "resnet5", "svm"};
    const int n = 7;
    assert_string_equal(suggest_closest("cnn_bn", zoo, n), "cnn-bn");
    assert_string_equal(suggest_closest("cnn-bnn", zoo, n), "cnn-bn");
    assert_string_equal(suggest_closest("lenet", zoo, n), "lenet5");
    assert_string_equal(suggest_closest("cnn-deeep", zoo, n), "cnn-deep");
    assert_string_equal(suggest_closest("cnm", zoo, n), "cnn"); /* the first of equals */
    assert_null(suggest_closest("transformer", zoo, n));
    assert_null(suggest_closest("xy", zoo, n)); /* "mlp", "svm": 3 edits, too far for 2 letters */
    assert_null(suggest_closest("anything", zoo, 0));
    const char *flags[] = {"--epochs", "--batch-size", "--lr"};
    assert_string_equal(suggest_closest("--epoch", flags, 3), "--epochs");
    assert_string_equal(suggest_closest("--batchsize", flags, 3), "--batch-size");
}

/* n images of 4x4 pixels, labels i % 10, pixel values from i. */
static void make_set(Dataset *ds, int n) {
    ds->n = n, ds->rows = 4, ds->cols = 4;
    ds->pixels = malloc((size_t)n * 16);
    ds->labels = malloc((size_t)n);
    for (int i = 0; i < n; i++) {
        for (int p = 0; p < 16; p++) ds->pixels[i * 16 + p] = (uint8_t)(i * 7 + p * 3);
        ds->labels[i] = (uint8_t)(i % 10);
    }
}

/* A metadata object as a model file holds it, with `record` as the
 * train_config's "holdout" (and "kfold": kfold when > 0); caller frees. */
static char *metadata_with(const char *record, int kfold) {
    cJSON *tc = cJSON_CreateObject();
    cJSON_AddStringToObject(tc, "model", "cnn");
    if (record) cJSON_AddItemToObject(tc, "holdout", cJSON_Parse(record));
    if (kfold) cJSON_AddNumberToObject(tc, "kfold", kfold);
    char *tc_s = cJSON_PrintUnformatted(tc);
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddStringToObject(meta, "digits.train_config", tc_s);
    char *s = cJSON_PrintUnformatted(meta);
    free(tc_s);
    cJSON_Delete(tc);
    cJSON_Delete(meta);
    return s;
}

static void test_fingerprint_and_record(void **state) {
    (void)state;
    Dataset a = {0};
    make_set(&a, 50);
    uint64_t h40 = holdout_fingerprint(&a, 40);
    assert_true(h40 != 0);
    assert_true(h40 != holdout_fingerprint(&a, 50));
    char *rec = holdout_record_json(h40, 40, 0.1f, 18446744073709551557ULL, "train.csv");
    char *meta = metadata_with(rec, 0);
    TrainedOn t;
    holdout_parse(meta, &t);
    assert_int_equal(t.known, 1);
    assert_true(t.data_hash == h40);
    assert_int_equal(t.data_n, 40);
    assert_true(t.val_split == 0.1f); /* bit for bit */
    assert_true(t.seed == 18446744073709551557ULL);
    assert_string_equal(t.data, "train.csv");
    assert_int_equal(t.kfold, 0);
    assert_int_equal(holdout_is_training_data(&t, &a), 1); /* 50 images starting with the 40 */
    a.n = 39;
    assert_int_equal(holdout_is_training_data(&t, &a), 0); /* fewer than trained on */
    a.n = 50;
    a.pixels[5 * 16 + 3] ^= 1;                                /* one pixel of a training image */
    assert_int_equal(holdout_is_training_data(&t, &a), 0);
    a.pixels[5 * 16 + 3] ^= 1;
    a.labels[0] = 9;                                          /* one label */
    assert_int_equal(holdout_is_training_data(&t, &a), 0);
    /* no record, a malformed one */
    char *none = metadata_with(NULL, 0);
    holdout_parse(none, &t);
    assert_int_equal(t.known, 0);
    assert_int_equal(holdout_is_training_data(&t, &a), 0);
    char *bad = metadata_with("{\"data_hash\":\"xyz\",\"data_n\":40,\"val_split\":\"0x1p-3\",\"seed\":\"1\"}", 0);
    holdout_parse(bad, &t);
    assert_int_equal(t.known, 0);
    holdout_parse(NULL, &t);
    assert_int_equal(t.known, 0);
    holdout_parse("not json", &t);
    assert_int_equal(t.known, 0);
    free(bad);
    free(none);
    free(meta);
    free(rec);
    dataset_free(&a);
}

static void test_load_validation(void **state) {
    (void)state;
    const char *csv = tu_tmp_path("train.csv"), *other = tu_tmp_path("other.csv");
    Dataset a = {0};
    make_set(&a, 120);
    assert_int_equal(csv_write(csv, &a), 0);
    a.pixels[0] ^= 1;
    assert_int_equal(csv_write(other, &a), 0);
    a.pixels[0] ^= 1;
    /* trained on the first 100 images, 20 % validation, seed 7 */
    char *rec = holdout_record_json(holdout_fingerprint(&a, 100), 100, 0.2f, 7, csv);
    char *meta = metadata_with(rec, 0);

    Dataset v = {0};
    DataRole role;
    assert_int_equal(holdout_load(csv, "val", meta, &v, &role), 0);
    assert_int_equal(role, DATA_VALIDATION);
    int *tr, *va, ntr, nva;
    split_stratified(a.labels, 100, 0.2f, 7, &tr, &ntr, &va, &nva);
    assert_int_equal(v.n, nva);
    for (int i = 0; i < nva; i++) {
        assert_memory_equal(v.pixels + (size_t)i * 16, a.pixels + (size_t)va[i] * 16, 16);
        assert_int_equal(v.labels[i], a.labels[va[i]]);
    }
    free(tr);
    free(va);
    dataset_free(&v);

    assert_int_equal(holdout_load(csv, "test", meta, &v, &role), 0);
    assert_int_equal(role, DATA_TRAINING);
    assert_int_equal(v.n, 120);
    dataset_free(&v);
    assert_int_equal(holdout_load(other, "test", meta, &v, &role), 0);
    assert_int_equal(role, DATA_TEST);
    dataset_free(&v);

    assert_int_equal(holdout_load(other, "val", meta, &v, &role), -1);
    assert_non_null(strstr(dg_errmsg(), "not the data the model was trained on"));
    assert_null(v.pixels);
    char *rec0 = holdout_record_json(holdout_fingerprint(&a, 100), 100, 0.0f, 7, csv);
    char *meta0 = metadata_with(rec0, 0);
    assert_int_equal(holdout_load(csv, "val", meta0, &v, &role), -1);
    assert_non_null(strstr(dg_errmsg(), "--val-split 0"));
    char *metak = metadata_with(rec, 5);
    assert_int_equal(holdout_load(csv, "val", metak, &v, &role), -1);
    assert_non_null(strstr(dg_errmsg(), "--kfold 5"));
    char *none = metadata_with(NULL, 0);
    assert_int_equal(holdout_load(csv, "val", none, &v, &role), -1);
    assert_non_null(strstr(dg_errmsg(), "does not record its training data"));
    assert_int_equal(holdout_load(csv, "test", none, &v, &role), 0);
    assert_int_equal(role, DATA_TEST);
    dataset_free(&v);
    assert_string_equal(holdout_role_title(DATA_TEST), "test set");
    assert_string_equal(holdout_role_title(DATA_VALIDATION), "validation split");
    assert_string_equal(holdout_role_title(DATA_TRAINING), "training data \xe2\x80\x94 not held out");

    free(none);
    free(metak);
    free(meta0);
    free(rec0);
    free(meta);
    free(rec);
    dataset_free(&a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_distance),
        cmocka_unit_test(test_closest),
        cmocka_unit_test(test_fingerprint_and_record),
        cmocka_unit_test_setup_teardown(test_load_validation, tu_tmpdir_setup, tu_tmpdir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
