/* test_eval.c — the evaluation layer against hand-computed values:
 * classification metrics and scikit-learn's report layout, top-k accuracy,
 * the misclassified list; PCA on a data set of known rank and components;
 * t-SNE keeping well-separated blobs apart; the PCA + SVM baseline (libsvm
 * agreement, save/load round trip, kind dispatch, calibration) and hostile
 * SVM model files; the training-log reader.
 *
 * Files go to one scratch folder made by the group setup (tu_tmpdir_setup). Not covered here:
 * the pictures (tests/e2e/report.sh decodes every PNG of a real report). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "digits_internal.h"
#include "eval/pca.h"
#include "eval/svm.h"
#include "eval/trainlog.h"
#include "eval/tsne.h"
#include "testutil.h"

#define ASSERT_MSG_HAS(needle)                                                                                  \
    do {                                                                                                        \
        if (!strstr(dg_errmsg(), (needle))) fail_msg("message \"%s\" lacks \"%s\"", dg_errmsg(), (needle));     \
    } while (0)

/* ==== metrics ================================================================ */

/* labels 0,0,1,1,1,2 predicted 0,1,1,1,0,2:
 *   class 0: tp 1, predicted 2, true 2 -> P 1/2, R 1/2
 *   class 1: tp 2, predicted 3, true 3 -> P 2/3, R 2/3
 *   class 2: tp 1, predicted 1, true 1 -> P 1,   R 1
 * classes 3..9 occur nowhere and are left out of the averages (scikit-learn). */
static const uint8_t Y[] = {0, 0, 1, 1, 1, 2}, P[] = {0, 1, 1, 1, 0, 2};

static void test_metrics_hand(void **state) {
    Metrics mt;
    metrics_compute(&mt, Y, P, 6);
    assert_int_equal(mt.n_present, 3);
    assert_false(mt.present[3]);
    assert_float_equal(mt.precision[1], 2.0 / 3, 1e-12);
    assert_float_equal(mt.f1[0], 0.5, 1e-12);
    assert_float_equal(mt.macro_p, (0.5 + 2.0 / 3 + 1) / 3, 1e-12);
    assert_float_equal(mt.macro_f1, (0.5 + 2.0 / 3 + 1) / 3, 1e-12);
    assert_float_equal(mt.weighted_p, (0.5 * 2 + 2.0 / 3 * 3 + 1) / 6, 1e-12);
    assert_float_equal(mt.weighted_r, 4.0 / 6, 1e-12);
    assert_float_equal(mt.accuracy, 4.0 / 6, 1e-12);

    /* scikit-learn's classification_report(y, p, digits=4), verbatim */
    const char *want = "              precision    recall  f1-score   support\n"
                       "\n"
                       "           0     0.5000    0.5000    0.5000         2\n"
                       "           1     0.6667    0.6667    0.6667         3\n"
                       "           2     1.0000    1.0000    1.0000         1\n"
                       "\n"
                       "    accuracy                         0.6667         6\n"
                       "   macro avg     0.7222    0.7222    0.7222         6\n"
                       "weighted avg     0.6667    0.6667    0.6667         6\n";
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    metrics_print(f, &mt);
    fclose(f);
    const char *start = strstr(buf, "              precision");
    assert_non_null(start);
    if (strncmp(start, want, strlen(want)) != 0) fail_msg("report layout differs:\n%s\nwanted:\n%s", start, want);
    free(buf);
}

static void test_top_k_and_misclassified(void **state) {
    /* ranks of the true label: 0, 1, 0, 0, 2, 0 -> top-1 4/6, top-2 5/6, top-3 6/6 */
    float probs[6][10] = {{0}};
    probs[0][0] = 0.9f, probs[0][1] = 0.1f;
    probs[1][1] = 0.6f, probs[1][0] = 0.3f, probs[1][2] = 0.1f;
    probs[2][1] = 0.8f, probs[2][0] = 0.2f;
    probs[3][1] = 0.7f, probs[3][2] = 0.3f;
    probs[4][0] = 0.5f, probs[4][2] = 0.3f, probs[4][1] = 0.2f;
    probs[5][2] = 1.0f;
    Metrics mt;
    metrics_compute(&mt, Y, P, 6);
    metrics_set_top_k(&mt, &probs[0][0], Y, 6, 3);
    assert_int_equal(mt.top_k, 3);
    assert_float_equal(mt.top_k_acc[0], 4.0 / 6, 1e-12);
    assert_float_equal(mt.top_k_acc[1], 5.0 / 6, 1e-12);
    assert_float_equal(mt.top_k_acc[2], 1.0, 1e-12);
    char *json = metrics_to_json(&mt, NULL);
    assert_non_null(strstr(json, "\"top_k\":{\"1\":0.66666"));
    free(json);

    Misclassified *m;
    int n = metrics_misclassified(Y, P, &probs[0][0], 6, &m);
    assert_int_equal(n, 2);
    /* most confident first: item 1 (0 -> 1 at 0.6), then item 4 (1 -> 0 at 0.5) */
    assert_int_equal(m[0].index, 1);
    assert_int_equal(m[0].truth, 0);
    assert_int_equal(m[0].pred, 1);
    assert_float_equal(m[0].confidence, 0.6, 1e-6);
    assert_int_equal(m[1].index, 4);
    char *list = misclassified_to_json(m, n);
    assert_string_equal(list, "[{\"index\":1,\"true\":0,\"predicted\":1,\"confidence\":0.6},"
                              "{\"index\":4,\"true\":1,\"predicted\":0,\"confidence\":0.5}]");
    free(list);
    free(m);
}

/* ==== PCA ======================================================================= */

/* x_i = mean + a_i u + b_i v with u, v orthonormal and (a, b) uncorrelated
 * with variances 4.5 and 0.5 (times n/(n-1)): two components explain
 * everything, and they are u and v. */
static void test_pca_rank2(void **state) {
    const int n = 200, d = 6;
    const float u[6] = {0.6f, 0.8f, 0, 0, 0, 0}, v[6] = {0, 0, 0.8f, -0.6f, 0, 0};
    float *x = malloc((size_t)n * d * sizeof(float));
    for (int i = 0; i < n; i++) {
        double t = 2 * M_PI * i / n, a = 3 * cos(t), b = sin(t);
        for (int j = 0; j < d; j++) x[i * d + j] = (float)(j + 1 + a * u[j] + b * v[j]);
    }
    Pca p;
    assert_int_equal(pca_fit(&p, x, n, d, 3), 0);
    double scale = (double)n / (n - 1);
    assert_float_equal(p.variance[0], 4.5 * scale, 1e-4);
    assert_float_equal(p.variance[1], 0.5 * scale, 1e-4);
    assert_true(p.variance[2] < 1e-6);
    assert_float_equal(pca_explained(&p, 2), 1.0, 1e-6);
    assert_float_equal(pca_explained(&p, 1), 0.9, 1e-5);
    assert_int_equal(pca_components_for(&p, 0.95), 2);
    /* components: u and v themselves (the sign rule makes the largest entry positive) */
    TU_ASSERT_CLOSE(p.components, u, 6, 1e-5, "first component = u");
    TU_ASSERT_CLOSE(p.components + d, v, 6, 1e-5, "second component = v");
    for (int j = 0; j < d; j++) assert_float_equal(p.mean[j], j + 1, 1e-5);
    /* projection: the coordinates are (a, b) */
    float z[2 * 200];
    pca_transform(&p, x, n, 2, z);
    assert_float_equal(z[0], 3.0, 1e-4);
    assert_float_equal(z[1], 0.0, 1e-4);
    assert_float_equal(z[2 * 50 + 1], 1.0, 1e-4); /* t = pi/2 */
    pca_free(&p);
    free(x);
}

/* ==== t-SNE ======================================================================= */

static void test_tsne_blobs(void **state) {
    const int per = 60, n = 3 * per, d = 10;
    float *x = malloc((size_t)n * d * sizeof(float)), *y = malloc((size_t)n * 2 * sizeof(float));
    float *y2 = malloc((size_t)n * 2 * sizeof(float));
    int *lab = malloc((size_t)n * sizeof(int));
    Rng rng;
    rng_seed(&rng, 5, "blobs");
    for (int i = 0; i < n; i++) {
        lab[i] = i % 3; /* interleaved: the input order tells nothing */
        for (int j = 0; j < d; j++) {
            /* Gaussian noise (Box-Muller), centres 10 apart on different axes */
            double g = sqrt(-2 * log(1 - rng_uniform(&rng))) * cos(2 * M_PI * rng_uniform(&rng));
            x[i * d + j] = (float)(g + (j == lab[i] ? 10 : 0));
        }
    }
    TsneConfig cfg;
    tsne_config_defaults(&cfg);
    TsneStats st;
    assert_int_equal(tsne_run(x, n, d, &cfg, y, &st), 0);
    int correct = 0;
    for (int i = 0; i < n; i++) {
        int best = -1;
        double bd = INFINITY;
        for (int j = 0; j < n; j++) {
            if (j == i) continue;
            double dx = y[2 * i] - y[2 * j], dy = y[2 * i + 1] - y[2 * j + 1];
            if (!isfinite(dx) || !isfinite(dy)) fail_msg("non-finite embedding");
            if (dx * dx + dy * dy < bd) bd = dx * dx + dy * dy, best = j;
        }
        correct += lab[best] == lab[i];
    }
    double acc = (double)correct / n;
    print_message("t-SNE blobs: 1-NN accuracy %.3f, KL %.3f, %.2fs\n", acc, st.kl, st.seconds);
    assert_true(acc >= 0.99);
    assert_true(st.kl > 0 && st.kl < 2);
    /* no random numbers: the same input gives the same embedding */
    assert_int_equal(tsne_run(x, n, d, &cfg, y2, &st), 0);
    assert_memory_equal(y, y2, (size_t)n * 2 * sizeof(float));
    free(x);
    free(y);
    free(y2);
    free(lab);
}

/* ==== PCA + SVM ================================================================== */

/* 8x8 images of class c: a bright two-row bar at rows 2c, 2c+1 over noise. */
static void bars(Dataset *ds, int n, uint64_t seed) {
    memset(ds, 0, sizeof *ds);
    ds->n = n;
    ds->rows = ds->cols = 8;
    ds->pixels = malloc((size_t)n * 64);
    ds->labels = malloc((size_t)n);
    Rng rng;
    rng_seed(&rng, seed, "bars");
    for (int i = 0; i < n; i++) {
        int c = i % 3;
        ds->labels[i] = (uint8_t)(c * 3); /* digits 0, 3, 6: labels need not be 0..k-1 */
        for (int p = 0; p < 64; p++) {
            int r = p / 8;
            ds->pixels[i * 64 + p] = (uint8_t)((r / 2 == c ? 160 : 0) + (int)(rng_uniform(&rng) * 90));
        }
    }
}

static void train_small_svm(PcaSvm *s, Dataset *tr, Dataset *va) {
    bars(tr, 90, 1);
    bars(va, 30, 2);
    PcaSvmConfig cfg;
    pcasvm_config_defaults(&cfg);
    cfg.components = 10;
    cfg.C = 5;
    PcaSvmStats st;
    assert_int_equal(pcasvm_train(s, tr, &cfg, &st), 0);
    print_message("svm: %d SVs, agreement with libsvm %.3f\n", s->l, st.agreement);
    assert_true(st.agreement >= 0.99);
    assert_int_equal(s->n_class, 3);
    double acc = pcasvm_calibrate(s, va);
    assert_true(acc >= 0.95);
    assert_true(s->calibrated && s->temperature > 0);
}

static void test_svm_round_trip(void **state) {
    PcaSvm s, t;
    Dataset tr, va;
    train_small_svm(&s, &tr, &va);
    float p1[30 * 10], p2[30 * 10], l1[30 * 10], l2[30 * 10];
    pcasvm_predict(&s, va.pixels, 30, p1, l1);
    for (int i = 0; i < 30; i++) {
        int best = 0;
        for (int q = 1; q < 10; q++)
            if (p1[i * 10 + q] > p1[i * 10 + best]) best = q;
        assert_int_equal(best, va.labels[i]);
        assert_float_equal(p1[i * 10 + 1], 0.0, 0); /* digit 1 never seen */
    }
    s.train_config_json = strdup("{\"model\":\"svm\"}");
    assert_int_equal(pcasvm_save(&s, tu_tmp_path("svm.safetensors")), 0);
    assert_int_equal(pcasvm_load(&t, tu_tmp_path("svm.safetensors")), 0);
    pcasvm_predict(&t, va.pixels, 30, p2, l2);
    assert_memory_equal(p1, p2, sizeof p1);
    assert_memory_equal(l1, l2, sizeof l1);
    assert_string_equal(t.train_config_json, "{\"model\":\"svm\"}");
    assert_float_equal(t.temperature, s.temperature, 0);

    /* through the Classifier API, as eval/predict/serve load it */
    Classifier c;
    assert_int_equal(classifier_load(&c, tu_tmp_path("svm.safetensors"), 7, 1), 0);
    assert_int_equal(c.kind, CLASSIFIER_SVM);
    assert_int_equal(c.width, 8);
    float p3[30 * 10];
    classifier_predict(&c, va.pixels, 30, p3, NULL); /* batches of 7 */
    assert_memory_equal(p1, p3, sizeof p1);
    classifier_free(&c);
    pcasvm_free(&s);
    pcasvm_free(&t);
    dataset_free(&tr);
    dataset_free(&va);
}

/* Rewrite the model with one thing broken; `what` picks it. */
static void write_broken(const PcaSvm *s, const char *path, int what) {
    const int k = s->pca.k, d = s->pca.d, nc = s->n_class, np = nc * (nc - 1) / 2;
    float labels[10], nsv[10];
    for (int c = 0; c < nc; c++) labels[c] = (float)s->labels[c], nsv[c] = (float)s->n_sv[c];
    float *rho = malloc((size_t)np * sizeof(float));
    memcpy(rho, s->rho, (size_t)np * sizeof(float));
    float *big = calloc((size_t)(s->l + 1) * (k + 1), sizeof(float));
    cJSON *m = cJSON_CreateObject();
    char buf[32];
#define META(key, fmt, v) (snprintf(buf, sizeof buf, fmt, v), cJSON_AddStringToObject(m, key, buf))
    META("digits.format", "%s", "1");
    META("digits.kind", "%s", "svm");
    META("digits.svm.width", "%d", 8);
    META("digits.svm.height", "%d", 8);
    META("digits.svm.components", "%d", what == 8 ? 0 : k);
    META("digits.svm.classes", "%d", what == 9 ? 11 : nc);
    META("digits.svm.n_sv_total", "%d", what == 10 ? 5000000 : s->l);
    META("digits.svm.gamma", "%s", what == 7 ? "abc" : "0.06");
    META("digits.svm.C", "%s", "5");
    META("digits.svm.temperature", "%s", "1.5");
#undef META
    if (what == 1) nsv[0] += 1;
    if (what == 2) labels[1] = labels[0];
    if (what == 3) labels[0] = 12;
    if (what == 4) rho[0] = NAN;
    StTensor t[8] = {
        {"svm.pca_mean", 1, {d}, s->pca.mean},
        {"svm.pca_components", 2, {k, d}, s->pca.components},
        {"svm.labels", 1, {nc}, labels},
        {"svm.n_sv", 1, {nc}, nsv},
        {"svm.sv", 2, {s->l, what == 0 ? k + 1 : k}, what == 0 ? big : s->sv},
        {"svm.sv_coef", 2, {nc - 1, s->l}, s->coef},
        {"svm.rho", 1, {np}, rho},
        {"svm.extra", 1, {1}, big},
    };
    int nt = 7;
    if (what == 5) t[5] = t[6], nt = 6; /* drop sv_coef */
    if (what == 6) nt = 8;              /* one tensor too many */
    char *meta = cJSON_PrintUnformatted(m);
    assert_int_equal(safetensors_write(path, meta, t, nt), 0);
    free(meta);
    cJSON_Delete(m);
    free(rho);
    free(big);
}

static void test_svm_hostile_files(void **state) {
    PcaSvm s, t;
    Dataset tr, va;
    train_small_svm(&s, &tr, &va);
    const struct {
        int what;
        const char *needle;
    } cases[] = {
        {0, "tensor svm.sv: shape [" /* [l,11], expected [l,10] */},
        {1, "svm.n_sv sums to"},
        {2, "svm.labels: entry 1 is not a distinct digit"},
        {3, "svm.labels: entry 0"},
        {4, "tensor 'svm.rho' holds NaN"},
        {5, "missing tensor svm.sv_coef"},
        {6, "unexpected tensor svm.extra"},
        {7, "digits.svm.gamma='abc'"},
        {8, "digits.svm.components='0'"},
        {9, "digits.svm.classes='11'"},
        {10, "digits.svm.n_sv_total says 5000000"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *path = tu_tmp_path("bad.safetensors");
        write_broken(&s, path, cases[i].what);
        assert_int_equal(pcasvm_load(&t, path), -1);
        print_message("case %d: %s\n", cases[i].what, dg_errmsg());
        ASSERT_MSG_HAS(cases[i].needle);
        ASSERT_MSG_HAS("bad.safetensors");
        assert_null(strchr(dg_errmsg(), '\n'));
        Classifier c;
        assert_int_equal(classifier_load(&c, path, 4, 1), -1);
    }
    /* a valid file cut short at every 97th byte: always a clean error */
    s.train_config_json = NULL;
    assert_int_equal(pcasvm_save(&s, tu_tmp_path("good.safetensors")), 0);
    FILE *f = fopen(tu_tmp_path("good.safetensors"), "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    rewind(f);
    char *bytes = malloc((size_t)len);
    assert_int_equal(fread(bytes, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    for (long cut = 0; cut < len; cut += 97) {
        FILE *o = fopen(tu_tmp_path("cut.safetensors"), "wb");
        assert_non_null(o);
        assert_int_equal(fwrite(bytes, 1, (size_t)cut, o), (size_t)cut);
        fclose(o);
        assert_int_equal(pcasvm_load(&t, tu_tmp_path("cut.safetensors")), -1);
        assert_null(strchr(dg_errmsg(), '\n'));
    }
    free(bytes);
    pcasvm_free(&s);
    dataset_free(&tr);
    dataset_free(&va);
}

/* ==== training log ================================================================= */

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(s, f);
    fclose(f);
}

static void test_trainlog(void **state) {
    const char *path = tu_tmp_path("log.csv");
    write_text(path, "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds\n"
                     "1,0.5,0.8,0.40,0.85,0.001,2.0\n"
                     "2,0.3,0.9,0.35,0.88,0.001,2.1\r\n"
                     "3,0.2,0.95,0.37,0.87,0.0001,2.0\n");
    TrainLog log;
    assert_int_equal(trainlog_read(path, &log), 0);
    assert_int_equal(log.n, 3);
    assert_float_equal(log.col[TL_VAL_LOSS][1], 0.35, 1e-12);
    assert_float_equal(log.col[TL_LR][2], 1e-4, 1e-12);
    assert_int_equal(trainlog_best(&log), 1);
    trainlog_free(&log);
    write_text(path, "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds\n1,0.5,0.8,nan,-nan,0.001,2.0\n");
    assert_int_equal(trainlog_read(path, &log), 0);
    assert_true(isnan(log.col[TL_VAL_ACC][0]));
    assert_int_equal(trainlog_best(&log), -1);
    trainlog_free(&log);
    write_text(path, "epoch,loss\n1,2\n");
    assert_int_equal(trainlog_read(path, &log), -1);
    ASSERT_MSG_HAS("log.csv:1: header");
    write_text(path, "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds\n1,0.5,0.8,0.4,0.8,0.001,2\n2,0.5,x\n");
    assert_int_equal(trainlog_read(path, &log), -1);
    ASSERT_MSG_HAS("log.csv:3:");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_hand),      cmocka_unit_test(test_top_k_and_misclassified),
        cmocka_unit_test(test_pca_rank2),         cmocka_unit_test(test_tsne_blobs),
        cmocka_unit_test(test_svm_round_trip),    cmocka_unit_test(test_svm_hostile_files),
        cmocka_unit_test(test_trainlog),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
