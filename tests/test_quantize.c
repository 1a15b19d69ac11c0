/* test_quantize.c — digits quantize's core (src/quant/quantize.c): a small
 * network with batch norm, trained here for a few hundred steps, keeps its
 * accuracy after int8 quantization (within 0.5 points on 2000 test
 * images) and its int8 file gives the same predictions through every
 * kernel path; every zoo architecture but stn, with random weights and
 * random batch-norm statistics (negative scales included), quantizes and
 * its int8 logits follow the float ones; stn keeps its grid sampling in
 * float (one island, the same bits on every path and through the file);
 * the fixed-point multiplier's edge cases. Needs MNIST in data/mnist (or
 * $DIGITS_DATA). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "digits.h"
#include "digits_internal.h"
#include "quant/qmodel.h"
#include "quant/quantize.h"
#include "testutil.h"

static const char *data_dir(void) { return getenv("DIGITS_DATA") ? getenv("DIGITS_DATA") : "data/mnist"; }

static Dataset g_train, g_test; /* loaded once */

static int load_data(void **state) {
    if (tu_tmpdir_setup(state) < 0) return -1;
    if (dataset_load(data_dir(), "train", &g_train) < 0 || dataset_load(data_dir(), "test", &g_test) < 0) {
        fprintf(stderr, "%s\n", dg_errmsg());
        return -1;
    }
    return 0;
}

static int free_data(void **state) {
    dataset_free(&g_train);
    dataset_free(&g_test);
    return tu_tmpdir_teardown(state);
}

/* ==== multiplier ========================================================== */

static void test_multiplier(void **state) {
    (void)state;
    int32_t m, s;
    assert_int_equal(quantize_multiplier(0.5, &m, &s), 0);
    assert_int_equal(m, 1 << 30);
    assert_int_equal(s, 31);
    assert_int_equal(quantize_multiplier(0.25, &m, &s), 0); /* 1/4: avgpool 2x2 */
    assert_int_equal(m, 1 << 30);
    assert_int_equal(s, 32);
    assert_int_equal(quantize_multiplier(0, &m, &s), 0);
    assert_int_equal(m, 0);
    assert_int_equal(quantize_multiplier(1e-30, &m, &s), 0); /* tiny: shift capped at 62 */
    assert_int_equal(s, 62);
    assert_true(m >= 0 && m < 2);
    assert_int_equal(quantize_multiplier(3.0, &m, &s), 0);
    assert_int_equal(qref_mulshift(1000, m, s), 3000);
    assert_int_equal(quantize_multiplier(1e10, &m, &s), -1);
    assert_int_equal(quantize_multiplier(NAN, &m, &s), -1);
    assert_int_equal(quantize_multiplier(-1, &m, &s), -1);
    /* a multiplier just below a power of two rounds up into the next */
    assert_int_equal(quantize_multiplier(0.99999999999, &m, &s), 0);
    assert_int_equal(m, 1 << 30);
    assert_int_equal(s, 30);
}

/* ==== a freshly trained model ============================================= */

static const char *SMALL_BN = "input 1x28x28\n"
                              "conv2d out=8 kernel=3 pad=1\nbatchnorm\nrelu\nmaxpool size=2\n"
                              "conv2d out=16 kernel=3 pad=1\nrelu\nbatchnorm\nmaxpool size=2\n"
                              "flatten\nlinear out=32\nbatchnorm\nrelu\ndropout p=0.2\nlinear out=10\n";

/* Accuracy of a classifier on the first n test images. */
static double accuracy(Classifier *c, int n) {
    float *probs = dg_xmalloc((size_t)n * 10 * sizeof(float));
    classifier_predict(c, g_test.pixels, n, probs, NULL);
    int ok = 0;
    for (int i = 0; i < n; i++) {
        int best = 0;
        for (int k = 1; k < 10; k++)
            if (probs[i * 10 + k] > probs[i * 10 + best]) best = k;
        ok += best == g_test.labels[i];
    }
    free(probs);
    return (double)ok / n;
}

static void test_trained_model_keeps_accuracy(void **state) {
    (void)state;
    dg_dataset *d;
    assert_int_equal(dg_dataset_load(&d, data_dir(), "train"), DG_OK);
    dg_model *dm;
    assert_int_equal(dg_model_build_spec(&dm, SMALL_BN), DG_OK);
    dg_train_config *cfg = dg_train_config_new();
    assert_int_equal(dg_train_set(cfg, "epochs", "1"), DG_OK);
    assert_int_equal(dg_train_set_int(cfg, "batch_size", 64), DG_OK);
    assert_int_equal(dg_train_set_float(cfg, "lr", 0.003), DG_OK);
    assert_int_equal(dg_train_set(cfg, "limit", "8000"), DG_OK);
    assert_int_equal(dg_train_set_bool(cfg, "quiet", 1), DG_OK);
    assert_int_equal(dg_train(dm, d, NULL, cfg, NULL, NULL, NULL), DG_OK);
    const char *fpath = tu_tmp_path("small.safetensors"), *qpath = tu_tmp_path("small-int8.safetensors");
    assert_int_equal(dg_model_save(dm, fpath), DG_OK);
    dg_train_config_free(cfg);
    dg_model_free(dm);
    dg_dataset_free(d);

    Classifier fc, qc;
    assert_int_equal(classifier_load(&fc, fpath, 500, 0), 0);
    QFile qf = {.n = 1};
    qf.members = dg_xcalloc(1, sizeof *qf.members);
    QuantizeOptions opt = {0};
    if (quantize_model(&qf.members[0], &fc.models[0], g_train.pixels, 500, &opt, fpath) < 0) fail_msg("%s", dg_errmsg());
    assert_int_equal(qf.members[0].n_ops, 6); /* conv+bn+relu, pool, conv+relu+bn, pool, linear+bn+relu, linear */
    assert_int_equal(qfile_save(&qf, qpath, fc.metadata_json), 0);
    classifier_free(&fc);
    assert_int_equal(classifier_load(&fc, fpath, 500, 0), 0);
    assert_int_equal(classifier_load(&qc, qpath, 500, 0), 0);
    assert_int_equal(qc.kind, CLASSIFIER_INT8);
    const int n = 2000;
    double af = accuracy(&fc, n), aq = accuracy(&qc, n);
    print_message("  float %.4f, int8 %.4f on %d test images\n", af, aq, n);
    assert_true(af > 0.9);
    assert_true(fabs(af - aq) <= 0.005);
    /* every kernel path gives the same int8 logits on the trained model */
    int8_t *a = dg_xmalloc(200 * 10), *b = dg_xmalloc(200 * 10);
    qmodel_run(&qf.members[0], g_test.pixels, 200, a, NULL, QKERN_REF);
    qmodel_run(&qf.members[0], g_test.pixels, 200, b, NULL, QKERN_C);
    assert_memory_equal(a, b, 2000);
    qmodel_run(&qf.members[0], g_test.pixels, 200, b, NULL, QKERN_VNNI);
    assert_memory_equal(a, b, 2000);
    qmodel_run(&qf.members[0], g_test.pixels, 200, b, NULL, QKERN_AMX);
    assert_memory_equal(a, b, 2000);
    free(a), free(b);
    qfile_free(&qf);
    classifier_free(&fc);
    classifier_free(&qc);
}

/* ==== the zoo with random weights ========================================= */

/* Random batch-norm statistics and affine parameters (some scales
 * negative) so that folding is exercised. */
static void randomize_bn(Model *m, Rng *r) {
    for (int i = 0; i < m->n_layers; i++) {
        Layer *l = &m->layers[i];
        if (l->type != LAYER_BATCHNORM) continue;
        int C = l->in.c;
        for (int c = 0; c < C; c++) {
            l->param[c] = (rng_uniform(r) < 0.15f ? -1.0f : 1.0f) * rng_uniform_range(r, 0.5f, 1.5f);
            l->param[C + c] = rng_uniform_range(r, -0.3f, 0.3f);
            l->buffer[c] = rng_uniform_range(r, -0.2f, 0.2f);
            l->buffer[C + c] = rng_uniform_range(r, 0.3f, 2.0f);
        }
    }
    model_params_changed(m);
}

/* Relative L2 distance between float and dequantized int8 logits over n
 * images, and the share of equal argmaxes. */
static void compare_logits(Model *m, const QModel *q, int n, double *rel, double *agree) {
    model_set_batch(m, n, 0, 0);
    model_load_pixels(m, g_test.pixels, n);
    const float *z = model_forward(m, n, 0);
    int8_t *ql = dg_xmalloc((size_t)n * 10);
    float *dq = dg_xmalloc((size_t)n * 10 * sizeof(float));
    qmodel_run(q, g_test.pixels, n, ql, NULL, QKERN_AUTO);
    qmodel_dequant_logits(q, ql, n, dq);
    double num = 0, den = 0;
    int same = 0;
    for (int i = 0; i < n; i++) {
        int bf = 0, bq = 0;
        for (int k = 0; k < 10; k++) {
            double d = (double)z[i * 10 + k] - dq[i * 10 + k];
            num += d * d, den += (double)z[i * 10 + k] * z[i * 10 + k];
            if (z[i * 10 + k] > z[i * 10 + bf]) bf = k;
            if (dq[i * 10 + k] > dq[i * 10 + bq]) bq = k;
        }
        same += bf == bq;
    }
    *rel = sqrt(num / (den > 0 ? den : 1));
    *agree = (double)same / n;
    free(ql);
    free(dq);
}

static void test_zoo_quantizes(void **state) {
    (void)state;
    static const char *const zoo[] = {"lenet5", "cnn", "cnn-bn", "cnn-deep", "fast", "kaggle-deep", "kfold-net",
                                      "mlp", "resnet5", "twobranch", "bigkernel"};
    Rng r;
    rng_seed(&r, 9, "test");
    for (size_t z = 0; z < sizeof zoo / sizeof *zoo; z++) {
        Model m;
        if (model_build_named(&m, zoo[z]) < 0) fail_msg("%s", dg_errmsg());
        model_init_params(&m, 1);
        randomize_bn(&m, &r);
        m.norm_mean = 0.1307f, m.norm_std = 0.3081f;
        QModel q;
        QuantizeOptions opt = {0};
        if (quantize_model(&q, &m, g_train.pixels, 100, &opt, zoo[z]) < 0) fail_msg("%s: %s", zoo[z], dg_errmsg());
        double rel, agree;
        compare_logits(&m, &q, 60, &rel, &agree);
        print_message("  %-12s %3d ops  logits rel. error %.3f, argmax agreement %.2f\n", zoo[z], q.n_ops, rel, agree);
        assert_true(rel < 0.15);
        assert_true(agree >= 0.8);
        /* every kernel path, one image and a batch: the reference's bits */
        int8_t a[9 * 10], b[9 * 10];
        qmodel_run(&q, g_test.pixels, 9, a, NULL, QKERN_REF);
        static const QKernels ks[] = {QKERN_C, QKERN_VNNI, QKERN_AMX};
        for (int k = 0; k < 3; k++) {
            memset(b, 0, sizeof b);
            qmodel_run(&q, g_test.pixels, 9, b, NULL, ks[k]);
            assert_memory_equal(a, b, sizeof a);
            qmodel_run(&q, g_test.pixels + 784 * 4, 1, b, NULL, ks[k]);
            assert_memory_equal(a + 40, b, 10);
        }
        qmodel_free(&q);
        model_free(&m);
    }
}

static void test_stn_keeps_grid_sampling_float(void **state) {
    (void)state;
    Model m;
    assert_int_equal(model_build_named(&m, "stn"), 0);
    model_init_params(&m, 1);
    Rng r;
    rng_seed(&r, 10, "test");
    /* a transform that is not the identity: perturb the theta layer's bias */
    for (int i = 0; i < m.n_layers; i++)
        if (m.layers[i].init_affine_identity)
            for (int k = 0; k < 6; k++) m.layers[i].param[(size_t)6 * m.layers[i].in.c + k] += rng_uniform_range(&r, -0.1f, 0.1f);
    model_params_changed(&m);
    m.norm_mean = 0.1307f, m.norm_std = 0.3081f;
    QModel q;
    QuantizeOptions opt = {0};
    if (quantize_model(&q, &m, g_train.pixels, 100, &opt, "stn") < 0) fail_msg("%s", dg_errmsg());
    assert_int_equal(qmodel_float_ops(&q), 1);
    double rel, agree;
    compare_logits(&m, &q, 60, &rel, &agree);
    print_message("  stn          %3d ops (1 float)  logits rel. error %.3f, argmax agreement %.2f\n", q.n_ops, rel, agree);
    assert_true(rel < 0.15);
    assert_true(agree >= 0.8);
    /* the float island runs the same code on every path: equal bits */
    int8_t a[50 * 10], b[50 * 10];
    qmodel_run(&q, g_test.pixels, 50, a, NULL, QKERN_REF);
    qmodel_run(&q, g_test.pixels, 50, b, NULL, QKERN_C);
    assert_memory_equal(a, b, sizeof a);
    qmodel_run(&q, g_test.pixels, 50, b, NULL, QKERN_VNNI);
    assert_memory_equal(a, b, sizeof a);
    qmodel_run(&q, g_test.pixels, 50, b, NULL, QKERN_AMX);
    assert_memory_equal(a, b, sizeof a);
    /* and survives the file */
    QFile f = {.n = 1, .members = &q};
    const char *path = tu_tmp_path("stn-int8.safetensors");
    assert_int_equal(qfile_save(&f, path, NULL), 0);
    QFile g;
    if (qfile_load(&g, path) < 0) fail_msg("%s", dg_errmsg());
    qmodel_run(&g.members[0], g_test.pixels, 50, b, NULL, QKERN_AUTO);
    assert_memory_equal(a, b, sizeof a);
    qfile_free(&g);
    qmodel_free(&q);
    model_free(&m);
}

static void test_percentile_ranges(void **state) {
    (void)state;
    Classifier fc;
    assert_int_equal(classifier_load(&fc, tu_fixture("fixtures/lenet5-small.safetensors"), 100, 0), 0);
    QModel a, b;
    QuantizeOptions mm = {0}, pc = {99.9};
    assert_int_equal(quantize_model(&a, &fc.models[0], g_train.pixels, 300, &mm, "mm"), 0);
    assert_int_equal(quantize_model(&b, &fc.models[0], g_train.pixels, 300, &pc, "pc"), 0);
    /* the first conv's output range is narrower with a percentile */
    assert_true(b.scales[0] < a.scales[0]);
    qmodel_free(&a);
    qmodel_free(&b);
    classifier_free(&fc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_multiplier),
        cmocka_unit_test(test_trained_model_keeps_accuracy),
        cmocka_unit_test(test_zoo_quantizes),
        cmocka_unit_test(test_stn_keeps_grid_sampling_float),
        cmocka_unit_test(test_percentile_ranges),
    };
    return cmocka_run_group_tests(tests, load_data, free_data);
}
