/* test_ensemble.c — ensembles and the Kaggle flow around them:
 *   - voting on hand-made logits, both rules, against values worked out
 *     below;
 *   - an ensemble file round trip through classifier_load: kind, members,
 *     names, and predictions equal to voting the members by hand;
 *   - stratified K-fold: folds disjoint, covering, stratified, balanced;
 *     and ensemble_train --kfold on a small synthetic set: one member per
 *     fold, each validated on exactly its fold;
 *   - test-time augmentation: tta 1 is a no-op, tta N is the mean of the
 *     N warps' probabilities;
 *   - submission.csv format.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "digits_internal.h"
#include "eval/ensemble.h"
#include "ops/ops.h"
#include "testutil.h"
#include "train/ensemble_train.h"

/* ==== voting =============================================================== */

/* Two members, two images. Image 0: member 0 is sure of class 1 (logit
 * 10), member 1 mildly prefers class 2 (logits 0, 2, 3): summing logits
 * gives class 1 (12 vs 3); averaging probabilities gives class 1 too
 * (0.50 vs 0.35). Image 1: member 0 has logits 2 (class 3) and 1.9
 * (class 4), member 1 has 0 and 4 (class 4): both rules pick class 4.
 * A case where the rules disagree: image 2, member 0 logits 20 for class
 * 5, member 1 logits 10 for class 6 and -30 for class 5:
 * sum = -10 (5) vs 10 (6) -> class 6; probabilities average ~0.5 each
 * with class 5 slightly ahead (member 0 gives 6 ~e-9, member 1 gives 5
 * ~e-18 -> mean p5 = 0.5 - tiny, p6 = 0.5 - tinier) -> class 5. */
static void test_vote_by_hand(void **state) {
    enum { M = 2, N = 3, K = 10 };
    float z[M * N * K] = {0};
#define Z(m, n, k) z[((m) * N + (n)) * K + (k)]
    Z(0, 0, 1) = 10;
    Z(1, 0, 1) = 2, Z(1, 0, 2) = 3;
    Z(0, 1, 3) = 2, Z(0, 1, 4) = 1.9f;
    Z(1, 1, 4) = 4;
    Z(0, 2, 5) = 20;
    Z(1, 2, 6) = 10, Z(1, 2, 5) = -30;
    float probs[N * K], logits[N * K];
    ensemble_vote(z, M, N, 1, probs, logits);
    /* logits: element-wise sums */
    assert_float_equal(logits[0 * K + 1], 12, 1e-6);
    assert_float_equal(logits[2 * K + 5], -10, 1e-6);
    assert_float_equal(logits[2 * K + 6], 10, 1e-6);
    /* probs = softmax of the sums: image 0, class 1 vs class 2: e^12 / (e^12 + e^3 + 8) */
    double want = exp(12) / (exp(12) + exp(3) + 8.0);
    assert_float_equal(probs[1], want, 1e-6);
    int argmax[N];
    for (int n = 0; n < N; n++) {
        argmax[n] = 0;
        for (int k = 1; k < K; k++)
            if (probs[n * K + k] > probs[n * K + argmax[n]]) argmax[n] = k;
    }
    assert_int_equal(argmax[0], 1);
    assert_int_equal(argmax[1], 4);
    assert_int_equal(argmax[2], 6);

    ensemble_vote(z, M, N, 0, probs, logits);
    /* image 0: member 0 p1 = e^10/(e^10+9), member 1 p1 = e^2/(e^2+e^3+8) */
    double p1 = 0.5 * (exp(10) / (exp(10) + 9) + exp(2) / (exp(2) + exp(3) + 8));
    assert_float_equal(probs[1], p1, 1e-6);
    assert_float_equal(logits[1], log(p1), 1e-5);
    for (int n = 0; n < N; n++) {
        double sum = 0;
        argmax[n] = 0;
        for (int k = 0; k < K; k++) {
            sum += probs[n * K + k];
            if (probs[n * K + k] > probs[n * K + argmax[n]]) argmax[n] = k;
        }
        assert_float_equal(sum, 1.0, 1e-6);
    }
    assert_int_equal(argmax[0], 1);
    assert_int_equal(argmax[1], 4);
    assert_int_equal(argmax[2], 5); /* the rules disagree here */
#undef Z
}

/* ==== the file ============================================================= */

static void random_pixels(uint8_t *px, size_t n, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed, "pixels");
    for (size_t i = 0; i < n; i++) px[i] = (uint8_t)rng_below(&r, 256);
}

static void test_ensemble_file_round_trip(void **state) {
    const char *names[3] = {"lenet5", "cnn", "lenet5"};
    Model ms[3];
    for (int k = 0; k < 3; k++) {
        assert_int_equal(model_build_named(&ms[k], names[k]), 0);
        model_init_params(&ms[k], 10 + k);
        ms[k].norm_mean = 0.1f * (k + 1);
        ms[k].norm_std = 0.3f + 0.01f * k;
    }
    const char *path = tu_tmp_path("ens.safetensors");
    for (int vote = 0; vote <= 1; vote++) {
        assert_int_equal(ensemble_save(path, ms, 3, vote, "{\"epochs\":1}", "{\"test_accuracy\":0.5}"), 0);
        Classifier c;
        int r = classifier_load(&c, path, 20, 1); /* one chunk of N: same sgemm shapes as by hand */
        if (r) print_error("%s\n", dg_errmsg());
        assert_int_equal(r, 0);
        assert_int_equal(c.kind, CLASSIFIER_ENSEMBLE);
        assert_int_equal(c.n_models, 3);
        assert_int_equal(c.vote_logits, vote);
        assert_string_equal(c.name, "ensemble of 3 (lenet5, cnn, lenet5)");
        assert_non_null(strstr(c.metadata_json, "\"digits.kind\":\"ensemble\""));
        /* by hand: each member's logits, then the vote */
        enum { N = 20 };
        uint8_t px[N * 784];
        random_pixels(px, sizeof px, 5);
        float z[3 * N * 10], want[N * 10], got[N * 10], got_logits[N * 10];
        for (int k = 0; k < 3; k++) {
            assert_memory_equal(c.models[k].params, ms[k].params, ms[k].n_param * sizeof(float));
            assert_true(c.models[k].norm_mean == ms[k].norm_mean && c.models[k].norm_std == ms[k].norm_std);
            model_set_batch(&ms[k], N, 0, 1);
            model_load_pixels(&ms[k], px, N);
            memcpy(z + k * N * 10, model_forward(&ms[k], N, 0), sizeof(float) * N * 10);
        }
        ensemble_vote(z, 3, N, vote, want, NULL);
        classifier_predict(&c, px, N, got, got_logits);
        assert_memory_equal(got, want, sizeof got);
        print_message("vote %s: ensemble file predicts exactly the hand-made vote\n", vote ? "logits" : "probs");
        classifier_free(&c);
    }
    /* a plain model file still loads as a single network */
    Model lone = ms[0];
    assert_int_equal(model_save(&lone, tu_tmp_path("single.safetensors")), 0);
    Classifier c;
    assert_int_equal(classifier_load(&c, tu_tmp_path("single.safetensors"), 4, 1), 0);
    assert_int_equal(c.kind, CLASSIFIER_CNN);
    classifier_free(&c);
    for (int k = 0; k < 3; k++) model_free(&ms[k]);
}

static void test_bad_ensemble_files(void **state) {
    Model m;
    assert_int_equal(model_build_named(&m, "lenet5"), 0);
    model_init_params(&m, 1);
    const char *pfx[1] = {"m0."};
    const Model *mp[1] = {&m};
    struct {
        const char *meta, *expect;
    } cases[] = {
        {"{\"digits.kind\":\"ensemble\",\"digits.vote\":\"max\",\"digits.members\":\"[]\"}", "digits.vote is 'max'"},
        {"{\"digits.kind\":\"ensemble\",\"digits.vote\":\"probs\"}", "digits.members is missing"},
        {"{\"digits.kind\":\"ensemble\",\"digits.vote\":\"probs\",\"digits.members\":"
         "\"[{\\\"prefix\\\":\\\"m0.\\\",\\\"spec\\\":\\\"flatten\\\\nlinear out=10\\\\n\\\",\\\"norm_mean\\\":\\\"0\\\",\\\"norm_std\\\":\\\"1\\\"}]\"}",
         "missing tensor m0.1.weight"},
        {"{\"digits.kind\":\"ensemble\",\"digits.vote\":\"probs\",\"digits.members\":"
         "\"[{\\\"prefix\\\":\\\"m0.\\\",\\\"spec\\\":\\\"flatten\\\"}]\"}",
         "member 0: needs spec, prefix, norm_mean"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *path = tu_tmp_path("bad.safetensors");
        assert_int_equal(models_save(path, mp, pfx, 1, cases[i].meta), 0);
        Classifier c;
        assert_int_equal(classifier_load(&c, path, 4, 1), -1);
        print_message("-> %s\n", dg_errmsg());
        assert_non_null(strstr(dg_errmsg(), cases[i].expect));
        assert_non_null(strstr(dg_errmsg(), "bad.safetensors"));
    }
    model_free(&m);
}

/* ==== K-fold ================================================================ */

static void test_kfold_folds(void **state) {
    enum { N = 1003, K = 5 };
    uint8_t labels[N];
    Rng rng;
    rng_seed(&rng, 3, "labels");
    for (int i = 0; i < N; i++) labels[i] = (uint8_t)(i < 300 ? 1 : rng_below(&rng, 10)); /* unbalanced */
    int *fold;
    split_kfold(labels, N, K, 42, &fold);
    int count[K] = {0}, per_class[K][10] = {{0}}, class_total[10] = {0};
    for (int i = 0; i < N; i++) {
        assert_true(fold[i] >= 0 && fold[i] < K); /* every sample in exactly one fold: covering, disjoint */
        count[fold[i]]++;
        per_class[fold[i]][labels[i]]++;
        class_total[labels[i]]++;
    }
    int lo = N, hi = 0;
    for (int k = 0; k < K; k++) lo = count[k] < lo ? count[k] : lo, hi = count[k] > hi ? count[k] : hi;
    print_message("fold sizes %d..%d for %d samples in %d folds\n", lo, hi, N, K);
    assert_true(hi - lo <= 1);
    for (int c = 0; c < 10; c++) {
        int clo = N, chi = 0;
        for (int k = 0; k < K; k++)
            clo = per_class[k][c] < clo ? per_class[k][c] : clo, chi = per_class[k][c] > chi ? per_class[k][c] : chi;
        assert_true(chi - clo <= 1); /* stratified: each class spread evenly */
    }
    /* the same seed gives the same folds; another seed others */
    int *again, *other;
    split_kfold(labels, N, K, 42, &again);
    split_kfold(labels, N, K, 43, &other);
    assert_memory_equal(fold, again, sizeof(int) * N);
    assert_true(memcmp(fold, other, sizeof(int) * N) != 0);
    free(fold), free(again), free(other);
}

/* Learnable synthetic digits: the label is the brightness of a 6x6 patch
 * at a label-dependent place. */
static void synthetic_set(Dataset *ds, int n) {
    memset(ds, 0, sizeof *ds);
    ds->n = n;
    ds->rows = ds->cols = 28;
    ds->pixels = calloc((size_t)n, 784);
    ds->labels = malloc((size_t)n);
    Rng rng;
    rng_seed(&rng, 8, "synthetic");
    for (int i = 0; i < n; i++) {
        int label = (int)rng_below(&rng, 10);
        ds->labels[i] = (uint8_t)label;
        int y0 = 2 + (label / 5) * 12, x0 = 2 + (label % 5) * 5;
        for (int y = 0; y < 6; y++)
            for (int x = 0; x < 5; x++) ds->pixels[(size_t)i * 784 + (y0 + y) * 28 + x0 + x] = 200 + rng_below(&rng, 56);
    }
}

static void test_kfold_training(void **state) {
    Dataset ds;
    synthetic_set(&ds, 300);
    EnsembleTrainConfig ec = {.n = 3, .kfold = 3, .vote_logits = 0};
    for (int k = 0; k < 3; k++) ec.models[k] = "mlp";
    TrainConfig cfg;
    train_config_defaults(&cfg);
    cfg.epochs = 2;
    cfg.batch_size = 32;
    cfg.threads = 1;
    cfg.quiet = 1;
    cfg.seed = 5;
    char path[512];
    snprintf(path, sizeof path, "%s", tu_tmp_path("kfold.safetensors"));
    cfg.out_path = path;
    Model *ms;
    EnsembleTrainResult res;
    int r = ensemble_train(&ec, &ds, &cfg, &ms, &res);
    if (r) print_error("%s\n", dg_errmsg());
    assert_int_equal(r, 0);
    int *fold;
    split_kfold(ds.labels, ds.n, 3, cfg.seed, &fold);
    for (int k = 0; k < 3; k++) {
        /* member k was validated on exactly fold k */
        int *idx = malloc(sizeof(int) * ds.n), nv = 0;
        for (int i = 0; i < ds.n; i++)
            if (fold[i] == k) idx[nv++] = i;
        Dataset va;
        dataset_subset(&va, &ds, idx, nv);
        double acc = model_predict_dataset(&ms[k], &va, 64, NULL, NULL, NULL);
        print_message("member %d: fold %d (%d images) val acc %.4f, recorded %.4f\n", k, k, nv, acc, res.member_val_acc[k]);
        assert_float_equal(acc, res.member_val_acc[k], 1e-9);
        assert_non_null(strstr(ms[k].train_config_json, "\"n_val\":"));
        char want[64];
        snprintf(want, sizeof want, "\"n_val\":%d", nv);
        assert_non_null(strstr(ms[k].train_config_json, want));
        snprintf(want, sizeof want, "\"seed\":%d", 5 + k);
        assert_non_null(strstr(ms[k].train_config_json, want));
        dataset_free(&va);
        free(idx);
    }
    print_message("out-of-fold accuracy %.4f\n", res.oof_acc);
    assert_true(res.oof_acc > 0.5);
    /* the saved file is the 3-member ensemble */
    Classifier c;
    assert_int_equal(classifier_load(&c, path, 64, 1), 0);
    assert_int_equal(c.n_models, 3);
    assert_memory_equal(c.models[2].params, ms[2].params, ms[2].n_param * sizeof(float));
    classifier_free(&c);
    for (int k = 0; k < 3; k++) model_free(&ms[k]);
    free(ms);
    free(fold);
    free(res.train_config_json);
    dataset_free(&ds);
}

/* ==== test-time augmentation ================================================ */

static void test_tta(void **state) {
    Model m;
    assert_int_equal(model_build_named(&m, "cnn"), 0);
    model_init_params(&m, 3);
    m.norm_mean = 0.13f, m.norm_std = 0.31f;
    model_set_batch(&m, 8, 0, 1);
    Classifier c;
    classifier_from_model(&c, &m);
    enum { N = 8 };
    uint8_t px[N * 784];
    random_pixels(px, sizeof px, 9);
    for (int i = 0; i < N * 784; i++) px[i] = (i % 28 > 6 && i % 28 < 20) ? px[i] : 0;
    float p1[N * 10], p0[N * 10], pt[N * 10];
    classifier_predict(&c, px, N, p0, NULL);
    c.tta = 1;
    classifier_predict(&c, px, N, p1, NULL);
    assert_memory_equal(p0, p1, sizeof p0); /* tta 1 = off */
    c.tta = 4;
    classifier_predict(&c, px, N, pt, NULL);
    /* by hand: mean over the identity and warps 1..3 */
    float want[N * 10] = {0}, p[N * 10];
    uint8_t w[N * 784];
    for (int k = 0; k < 4; k++) {
        double H[9];
        augment_tta_warp(k, 28, 28, H);
        for (int i = 0; i < N; i++) augment_warp_u8(w + i * 784, px + i * 784, 28, 28, H, NULL);
        c.tta = 1;
        classifier_predict(&c, w, N, p, NULL);
        for (int i = 0; i < N * 10; i++) want[i] += p[i] / 4;
    }
    TU_ASSERT_CLOSE(pt, want, N * 10, 1e-6f, "tta 4 vs mean of 4 warps by hand");
    assert_true(memcmp(pt, p0, sizeof pt) != 0);
    classifier_free(&c);
}

/* ==== submission.csv ======================================================== */

static void test_submission_csv(void **state) {
    uint8_t pred[5] = {7, 2, 1, 0, 9};
    const char *path = tu_tmp_path("submission.csv");
    assert_int_equal(csv_write_submission(path, pred, 5), 0);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char buf[256] = {0};
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    assert_int_equal(n, strlen("ImageId,Label\n1,7\n2,2\n3,1\n4,0\n5,9\n"));
    assert_string_equal(buf, "ImageId,Label\n1,7\n2,2\n3,1\n4,0\n5,9\n");
    /* no temp file left behind; a bad prediction writes nothing */
    uint8_t bad[2] = {3, 10};
    assert_int_equal(csv_write_submission(tu_tmp_path("bad.csv"), bad, 2), -1);
    struct stat st;
    assert_int_not_equal(stat(tu_tmp_path("bad.csv"), &st), 0);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -q tmp", tu_tmpdir());
    assert_int_not_equal(system(cmd), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vote_by_hand),
        cmocka_unit_test(test_ensemble_file_round_trip),
        cmocka_unit_test(test_bad_ensemble_files),
        cmocka_unit_test(test_kfold_folds),
        cmocka_unit_test(test_kfold_training),
        cmocka_unit_test(test_tta),
        cmocka_unit_test(test_submission_csv),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
