/* test_member_wire.c — an ensemble member shipped between MPI ranks as
 * bytes (train/member_wire.h) joins the ensemble exactly as the member
 * itself: weights, buffers, normalisation, spec and JSON come back bit for
 * bit, and an ensemble file saved from the shipped members is the same
 * file, byte for byte, as one saved from the originals. Also: a report
 * without a model (a stopped or failed rank), and damaged records. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "digits_internal.h"
#include "core/util.h"
#include "testutil.h"
#include "train/member_wire.h"

static const char *SPEC = "input 1x28x28\nconv2d out=4 kernel=3 pad=1\nbatchnorm\nrelu\nmaxpool size=2\n"
                          "flatten\nlinear out=10\n";

/* A member as ensemble_train leaves it: initialised weights, running
 * statistics that are not the defaults, normalisation and JSON set. */
static void make_member(Model *m, uint64_t seed) {
    assert_int_equal(model_build(m, SPEC, "tiny.spec"), 0);
    model_init_params(m, seed);
    for (size_t i = 0; i < m->n_buffer; i++) m->buffers[i] = 0.25f + 0.001f * (float)i + (float)seed;
    m->norm_mean = 0.1307f, m->norm_std = 0.3081f;
    m->train_config_json = strdup("{\"seed\":7,\"model\":\"tiny\"}");
    m->metrics_json = strdup("{\"member\":1,\"fold\":-1,\"val_accuracy\":0.912345,\"train_seconds\":1.50}");
}

/* A whole file's bytes (owned). */
static char *slurp(const char *path, size_t *len) {
    char *text = NULL;
    assert_int_equal(read_whole_file(path, 1 << 26, &text, len), 0);
    return text;
}

static void test_member_round_trip_is_bit_exact(void **state) {
    (void)state;
    Model a[2], b[2];
    memset(a, 0, sizeof a);
    for (int k = 0; k < 2; k++) {
        make_member(&a[k], 7 + (uint64_t)k);
        MemberReport r = {0}, back;
        r.member = k, r.val_acc = 0.912345678, r.oof_correct = 123, r.tr.best_epoch = 3, r.tr.seconds = 1.5;
        size_t len;
        uint8_t *bytes = member_pack(&r, &a[k], &len);
        assert_int_equal(member_unpack(bytes, len, &back, &b[k]), 1);
        free(bytes);
        assert_int_equal(back.member, k);
        assert_true(back.val_acc == r.val_acc);
        assert_int_equal(back.oof_correct, 123);
        assert_int_equal(back.tr.best_epoch, 3);
        assert_int_equal(b[k].n_param, a[k].n_param);
        assert_memory_equal(b[k].params, a[k].params, a[k].n_param * sizeof(float));
        assert_memory_equal(b[k].buffers, a[k].buffers, a[k].n_buffer * sizeof(float));
        assert_string_equal(b[k].spec_name, "tiny");
        assert_string_equal(b[k].spec_text, a[k].spec_text);
        assert_string_equal(b[k].metrics_json, a[k].metrics_json);
        assert_true(b[k].norm_mean == a[k].norm_mean && b[k].norm_std == a[k].norm_std);
    }
    /* the ensemble files: the same bytes */
    char pa[4200], pb[4200];
    snprintf(pa, sizeof pa, "%s", tu_tmp_path("a.safetensors"));
    snprintf(pb, sizeof pb, "%s", tu_tmp_path("b.safetensors"));
    assert_int_equal(ensemble_save(pa, a, 2, 0, "{\"kfold\":0}", NULL), 0);
    assert_int_equal(ensemble_save(pb, b, 2, 0, "{\"kfold\":0}", NULL), 0);
    size_t la, lb;
    char *fa = slurp(pa, &la), *fb = slurp(pb, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(fa, fb, la);
    free(fa);
    free(fb);
    for (int k = 0; k < 2; k++) model_free(&a[k]), model_free(&b[k]);
}

/* A stopped rank: its report, no model. A failed one: its message. */
static void test_report_without_model(void **state) {
    (void)state;
    MemberReport r = {0}, back;
    r.member = 2, r.status = 15;
    snprintf(r.tr.checkpoint, sizeof r.tr.checkpoint, "ck/member-03/ckpt-e001-s00000010.safetensors");
    size_t len;
    uint8_t *bytes = member_pack(&r, NULL, &len);
    Model m;
    assert_int_equal(member_unpack(bytes, len, &back, &m), 0);
    assert_int_equal(back.status, 15);
    assert_string_equal(back.tr.checkpoint, r.tr.checkpoint);
    free(bytes);
    r.status = -1;
    snprintf(r.error, sizeof r.error, "member 3: disk full");
    bytes = member_pack(&r, NULL, &len);
    assert_int_equal(member_unpack(bytes, len, &back, &m), 0);
    assert_string_equal(back.error, "member 3: disk full");
    free(bytes);
}

/* Truncated or foreign bytes: -1 with a message, nothing leaked. */
static void test_damaged_records(void **state) {
    (void)state;
    Model a, b;
    memset(&a, 0, sizeof a);
    make_member(&a, 1);
    MemberReport r = {0}, back;
    size_t len;
    uint8_t *bytes = member_pack(&r, &a, &len);
    assert_int_equal(member_unpack(bytes, len - 4, &back, &b), -1); /* a weight short */
    assert_non_null(strstr(dg_errmsg(), "member record"));
    assert_int_equal(member_unpack(bytes, 20, &back, &b), -1);
    bytes[0] = 'X';
    assert_int_equal(member_unpack(bytes, len, &back, &b), -1);
    free(bytes);
    model_free(&a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_member_round_trip_is_bit_exact),
        cmocka_unit_test(test_report_without_model),
        cmocka_unit_test(test_damaged_records),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
