/* test_api.c — the public API (include/digits.h) on real data and on every
 * error path.
 *
 * Real data: the pretrained default model on MNIST test images gives the
 * same digits and probabilities through dg_predict as through the internal
 * Classifier; a batch gives what single calls give; the same digit drawn
 * small on a big RGBA canvas with a padded row stride, and encoded as PNG
 * bytes, is read back; threads sharing one model agree with one thread; a
 * data set loads, splits and evaluates; a tiny network trains a few steps
 * with the progress callback, stops on the flag, saves and loads again;
 * dg_train_run (the whole `digits train` run from settings alone) stops
 * with a checkpoint, refuses a conflicting setting on resume, resumes in
 * the same process to the uninterrupted run's weights bit for bit, and
 * trains an ensemble.
 * Errors: missing and corrupt model files, wrong image sizes, NULL
 * arguments, unknown option names and bad values each give their code and
 * a message, never a crash (the suite runs under ASan/UBSan too).
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "digits.h"
#include "api/api.h" /* white-box: one unlabelled data set */
#include "digits_internal.h"
#include "testutil.h"

#define N_IMAGES 16
#define NPX (DG_SIDE * DG_SIDE)

static Dataset mnist; /* the first N_IMAGES test images */
static dg_model *model;

static const char *data_dir(void) { return getenv("DIGITS_DATA") ? getenv("DIGITS_DATA") : "data/mnist"; }

static int setup(void **state) {
    if (tu_tmpdir_setup(state) < 0) return -1;
    setenv("DIGITS_MODELS", "models", 0); /* the checkout's pretrained models */
    Dataset all;
    if (dataset_load(data_dir(), "test", &all) < 0) {
        fprintf(stderr, "test_api: %s (run tools/fetch_mnist.sh)\n", dg_errmsg());
        return -1;
    }
    int idx[N_IMAGES];
    for (int i = 0; i < N_IMAGES; i++) idx[i] = i;
    dataset_subset(&mnist, &all, idx, N_IMAGES);
    dataset_free(&all);
    if (dg_model_load(&model, "default") != DG_OK) {
        fprintf(stderr, "test_api: %s\n", dg_errmsg());
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    dg_model_free(model);
    dataset_free(&mnist);
    return tu_tmpdir_teardown(state);
}

/* The error code is `code` and a message was left. */
static void expect_error(int rc, int code) {
    print_message("  %-18s %s\n", dg_strerror(rc), dg_errmsg());
    assert_int_equal(rc, code);
    assert_true(strlen(dg_errmsg()) > 0);
}

/* ---- real data ---------------------------------------------------------------- */

static void test_version_and_info(void **state) {
    (void)state;
    assert_string_equal(dg_version(), DG_VERSION);
    assert_string_equal(dg_model_kind(model), "cnn");
    assert_true(dg_model_param_count(model) > 1000);
    char *info = dg_model_info_json(model);
    assert_non_null(info);
    assert_non_null(strstr(info, "\"summary\""));
    assert_non_null(strstr(info, "\"metadata\""));
    dg_free(info);
    assert_int_equal(dg_model_metadata(model)[0], '{');
    assert_true(dg_get_threads() >= 1);
    int w = 0, h = 0;
    assert_int_equal(dg_model_input_size(model, &w, &h), DG_OK);
    assert_int_equal(w, 28);
    assert_int_equal(h, 28);
}

/* Every pretrained name loads by name, as --model does in the CLI; an
 * unknown bare name is an I/O error naming the file it looked for. */
static void test_pretrained_names(void **state) {
    (void)state;
    dg_model *m = NULL;
    assert_int_equal(dg_model_load(&m, "mcu-64k"), DG_OK);
    assert_string_equal(dg_model_kind(m), "int8");
    dg_model_free(m);
    m = NULL;
    assert_int_equal(dg_model_load(&m, "best"), DG_OK);
    dg_model_free(m);
    m = NULL;
    expect_error(dg_model_load(&m, "no-such-model"), DG_ERR_IO);
    assert_null(m);
}

/* dg_predict = the internal Classifier on the same file, image by image. */
static void test_predict_matches_internal(void **state) {
    (void)state;
    char path[PATH_MAX];
    assert_int_equal(model_find_pretrained("default", path, sizeof path), 0);
    Classifier c;
    assert_int_equal(classifier_load(&c, path, 1, 0), 0);
    int correct = 0;
    for (int i = 0; i < N_IMAGES; i++) {
        const uint8_t *img = mnist.pixels + (size_t)i * NPX;
        float probs[10];
        classifier_predict(&c, img, 1, probs, NULL);
        dg_prediction p;
        assert_int_equal(dg_predict(model, img, &p), DG_OK);
        int best = 0;
        for (int k = 1; k < 10; k++)
            if (probs[k] > probs[best]) best = k;
        assert_int_equal(p.digit, best);
        assert_memory_equal(p.probs, probs, sizeof probs);
        correct += p.digit == mnist.labels[i];
    }
    classifier_free(&c);
    assert_true(correct >= N_IMAGES - 1);
}

/* A batch gives what single calls give. */
static void test_batch_equals_single(void **state) {
    (void)state;
    dg_prediction batch[N_IMAGES];
    assert_int_equal(dg_predict_batch(model, mnist.pixels, N_IMAGES, batch), DG_OK);
    for (int i = 0; i < N_IMAGES; i++) {
        dg_prediction one;
        assert_int_equal(dg_predict(model, mnist.pixels + (size_t)i * NPX, &one), DG_OK);
        assert_int_equal(batch[i].digit, one.digit);
        for (int k = 0; k < 10; k++) assert_true(fabsf(batch[i].probs[k] - one.probs[k]) < 1e-5f);
    }
    assert_int_equal(dg_predict_batch(model, mnist.pixels, 0, batch), DG_OK);
    /* passes of 5 images: the same digits */
    assert_int_equal(dg_model_set_batch(model, 5), DG_OK);
    dg_prediction fives[N_IMAGES];
    assert_int_equal(dg_predict_batch(model, mnist.pixels, N_IMAGES, fives), DG_OK);
    for (int i = 0; i < N_IMAGES; i++) assert_int_equal(fives[i].digit, batch[i].digit);
    assert_int_equal(dg_model_set_batch(model, 256), DG_OK);
}

/* MNIST image i drawn dark on white, 3x larger, in a corner of a 200x150
 * RGBA canvas whose rows are padded to `stride` bytes. Caller frees. */
static uint8_t *rgba_canvas(int i, size_t stride) {
    uint8_t *c = malloc(stride * 150);
    memset(c, 0xEE, stride * 150); /* padding bytes: anything */
    for (int y = 0; y < 150; y++)
        for (int x = 0; x < 200; x++) {
            uint8_t *p = c + (size_t)y * stride + 4 * (size_t)x;
            int sx = (x - 20) / 3, sy = (y - 30) / 3;
            int ink = x >= 20 && y >= 30 && sx < 28 && sy < 28 ? mnist.pixels[(size_t)i * NPX + sy * 28 + sx] : 0;
            p[0] = p[1] = p[2] = (uint8_t)(255 - ink);
            p[3] = 255;
        }
    return c;
}

static void test_any_size_rgba_with_stride(void **state) {
    (void)state;
    for (int i = 0; i < 4; i++) {
        size_t stride = 200 * 4 + 24;
        uint8_t *c = rgba_canvas(i, stride);
        dg_prediction p;
        assert_int_equal(dg_predict_image(model, c, 200, 150, stride, DG_RGBA, &p), DG_OK);
        assert_int_equal(p.digit, mnist.labels[i]);
        assert_int_equal(p.n_digits, 1);
        /* the same as gray, stride 0 = tight */
        uint8_t *g = malloc(200 * 150);
        for (int k = 0; k < 200 * 150; k++) g[k] = c[(size_t)(k / 200) * stride + 4 * (size_t)(k % 200)];
        dg_prediction q;
        assert_int_equal(dg_predict_image(model, g, 200, 150, 0, DG_GRAY, &q), DG_OK);
        assert_int_equal(q.digit, mnist.labels[i]);
        free(g);
        free(c);
    }
}

/* PNG bytes of MNIST image i (written with the library's PNG writer). */
static uint8_t *png_bytes(int i, size_t *len) {
    const char *path = tu_tmp_path("digit.png");
    assert_int_equal(image_write_png_gray(path, mnist.pixels + (size_t)i * NPX, 28, 28), 0);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint8_t *buf = malloc(65536);
    *len = fread(buf, 1, 65536, f);
    fclose(f);
    return buf;
}

static void test_png_bytes_and_file(void **state) {
    (void)state;
    for (int i = 0; i < 4; i++) {
        size_t len;
        uint8_t *png = png_bytes(i, &len);
        dg_prediction p, q;
        assert_int_equal(dg_predict_encoded(model, png, len, &p), DG_OK);
        assert_int_equal(p.digit, mnist.labels[i]);
        assert_int_equal(dg_predict_file(model, tu_tmp_path("digit.png"), &q), DG_OK);
        assert_memory_equal(&p, &q, sizeof p);
        expect_error(dg_predict_encoded(model, png, len / 2, &p), DG_ERR_FORMAT); /* truncated */
        free(png);
    }
}

/* Two digits side by side: dg_predict_number reads both, left to right. */
static void test_number(void **state) {
    (void)state;
    enum { W = 80, H = 40 };
    uint8_t img[W * H];
    memset(img, 0, sizeof img);
    for (int y = 0; y < 28; y++)
        for (int x = 0; x < 28; x++) {
            img[(y + 6) * W + x + 4] = mnist.pixels[0 * NPX + y * 28 + x];
            img[(y + 6) * W + x + 44] = mnist.pixels[1 * NPX + y * 28 + x];
        }
    dg_prediction out[4];
    int n = 0;
    assert_int_equal(dg_predict_number(model, img, W, H, 0, DG_GRAY, out, 4, &n), DG_OK);
    assert_int_equal(n, 2);
    assert_int_equal(out[0].digit, mnist.labels[0]);
    assert_int_equal(out[1].digit, mnist.labels[1]);
}

/* ---- threads share one model ---------------------------------------------------- */

typedef struct {
    dg_prediction out[N_IMAGES];
    int rc;
} Job;

static void *predict_all(void *arg) {
    Job *j = arg;
    j->rc = DG_OK;
    for (int rep = 0; rep < 3; rep++)
        for (int i = 0; i < N_IMAGES && j->rc == DG_OK; i++)
            j->rc = dg_predict(model, mnist.pixels + (size_t)i * NPX, &j->out[i]);
    return NULL;
}

static void test_threads_share_a_model(void **state) {
    (void)state;
    enum { T = 4 };
    Job *jobs = calloc(T, sizeof *jobs);
    pthread_t th[T];
    for (int t = 0; t < T; t++) assert_int_equal(pthread_create(&th[t], NULL, predict_all, &jobs[t]), 0);
    for (int t = 0; t < T; t++) pthread_join(th[t], NULL);
    for (int t = 0; t < T; t++) {
        assert_int_equal(jobs[t].rc, DG_OK);
        for (int i = 0; i < N_IMAGES; i++) {
            dg_prediction one;
            dg_predict(model, mnist.pixels + (size_t)i * NPX, &one);
            assert_memory_equal(jobs[t].out[i].probs, one.probs, sizeof one.probs);
        }
    }
    free(jobs);
}

/* ---- data, evaluation, training ------------------------------------------------- */

static void test_dataset_split_evaluate(void **state) {
    (void)state;
    dg_dataset *all, *few, *tr, *va;
    assert_int_equal(dg_dataset_load(&all, data_dir(), "test"), DG_OK);
    assert_int_equal(dg_dataset_count(all), 10000);
    assert_int_equal(dg_dataset_label(all, 0), mnist.labels[0]);
    assert_memory_equal(dg_dataset_image(all, 1), mnist.pixels + NPX, NPX);
    assert_null(dg_dataset_image(all, 10000));
    assert_int_equal(dg_dataset_subset(all, 0, 200, &few), DG_OK);
    assert_int_equal(dg_dataset_split(few, 0.25f, 7, &tr, &va), DG_OK);
    assert_int_equal(dg_dataset_count(tr) + dg_dataset_count(va), 200);
    assert_true(dg_dataset_count(va) >= 45 && dg_dataset_count(va) <= 55);
    dg_metrics *mt;
    assert_int_equal(dg_evaluate(model, few, &mt), DG_OK);
    assert_int_equal(dg_metrics_count(mt), 200);
    assert_true(dg_metrics_accuracy(mt) > 0.97);
    int total = 0, support;
    for (int t = 0; t < 10; t++) {
        for (int p = 0; p < 10; p++) total += dg_metrics_confusion(mt, t, p);
        assert_int_equal(dg_metrics_class(mt, t, NULL, NULL, NULL, &support), DG_OK);
    }
    assert_int_equal(total, 200);
    assert_int_equal(dg_metrics_confusion(mt, 10, 0), -1);
    char *report = dg_metrics_report(mt), *json = dg_metrics_json(mt);
    assert_non_null(strstr(report, "precision"));
    assert_non_null(strstr(json, "\"accuracy\""));
    dg_free(report);
    dg_free(json);
    dg_metrics_free(mt);
    dg_dataset_free(tr);
    dg_dataset_free(va);
    dg_dataset_free(few);
    dg_dataset_free(all);
}

typedef struct {
    int steps, epochs_done;
    int stop_at;
    volatile int *flag;
} Progress;

static int on_progress(const dg_progress *p, void *user) {
    Progress *pr = user;
    if (p->epoch_done) pr->epochs_done++;
    else pr->steps++;
    if (pr->flag && pr->steps == pr->stop_at) *pr->flag = 1;
    return 0;
}

static const char *TINY = "input 1x28x28\nconv2d out=4 kernel=5 stride=2\nrelu\nflatten\nlinear out=10\n";

static void test_train_save_load(void **state) {
    (void)state;
    dg_dataset *d;
    assert_int_equal(dg_dataset_load(&d, data_dir(), "test"), DG_OK);
    dg_model *m;
    assert_int_equal(dg_model_build_spec(&m, TINY), DG_OK);
    dg_train_config *cfg = dg_train_config_new();
    assert_int_equal(dg_train_set(cfg, "epochs", "2"), DG_OK);
    assert_int_equal(dg_train_set_int(cfg, "batch_size", 50), DG_OK);
    assert_int_equal(dg_train_set_float(cfg, "lr", 0.003), DG_OK);
    assert_int_equal(dg_train_set(cfg, "limit", "1000"), DG_OK);
    assert_int_equal(dg_train_set_bool(cfg, "quiet", 1), DG_OK);
    char buf[32];
    assert_int_equal(dg_train_get(cfg, "epochs", buf, sizeof buf), DG_OK);
    assert_string_equal(buf, "2");
    Progress pr = {0};
    assert_int_equal(dg_train(m, d, NULL, cfg, on_progress, &pr, NULL), DG_OK);
    /* 900 train images / 50 = 18 steps per epoch */
    assert_int_equal(pr.steps, 36);
    assert_int_equal(pr.epochs_done, 2);
    dg_dataset *few;
    assert_int_equal(dg_dataset_subset(d, 5000, 500, &few), DG_OK);
    dg_metrics *mt;
    assert_int_equal(dg_evaluate(m, few, &mt), DG_OK);
    print_message("  tiny net after 36 steps: accuracy %.3f\n", dg_metrics_accuracy(mt));
    assert_true(dg_metrics_accuracy(mt) > 0.5);
    const char *path = tu_tmp_path("tiny.safetensors");
    assert_int_equal(dg_model_save(m, path), DG_OK);
    dg_model *back;
    assert_int_equal(dg_model_load(&back, path), DG_OK);
    dg_prediction a, b;
    dg_predict(m, mnist.pixels, &a);
    dg_predict(back, mnist.pixels, &b);
    assert_memory_equal(a.probs, b.probs, sizeof a.probs);
    dg_model_free(back);

    /* the stop flag, set from the callback after 5 steps: fine-tuning stops */
    volatile int stop = 0;
    Progress ps = {.stop_at = 5, .flag = &stop};
    assert_int_equal(dg_train(m, d, NULL, cfg, on_progress, &ps, &stop), DG_STOPPED);
    assert_int_equal(ps.steps, 5);
    dg_metrics_free(mt);
    dg_dataset_free(few);
    dg_train_config_free(cfg);
    dg_model_free(m);
    dg_dataset_free(d);
}

/* The run's lines, counted; the last kept. */
typedef struct {
    int n, warnings;
    char last[512];
} Lines;

static void on_line(int level, const char *line, void *user) {
    Lines *l = user;
    l->n++;
    l->warnings += level == DG_LOG_WARN;
    snprintf(l->last, sizeof l->last, "%s", line);
}

/* A config for dg_train_run: the tiny net (a spec file) on 600 images,
 * 2 epochs of 11 steps, no test set, the model to out. */
static dg_train_config *run_config(const char *spec, const char *out, const char *ckdir) {
    dg_train_config *cfg = dg_train_config_new();
    assert_int_equal(dg_train_set(cfg, "model", spec), DG_OK);
    assert_int_equal(dg_train_set(cfg, "data", data_dir()), DG_OK);
    assert_int_equal(dg_train_set(cfg, "test", "none"), DG_OK);
    assert_int_equal(dg_train_set(cfg, "limit", "600"), DG_OK);
    assert_int_equal(dg_train_set(cfg, "epochs", "2"), DG_OK);
    assert_int_equal(dg_train_set(cfg, "batch-size", "50"), DG_OK);
    assert_int_equal(dg_train_set(cfg, "threads", "1"), DG_OK);
    assert_int_equal(dg_train_set(cfg, "out", out), DG_OK);
    if (ckdir) assert_int_equal(dg_train_set(cfg, "checkpoint-dir", ckdir), DG_OK);
    return cfg;
}

/* The ten probabilities of the first test images under m. */
static void probs_of(dg_model *m, dg_prediction *p) {
    assert_int_equal(dg_predict_batch(m, mnist.pixels, 4, p), DG_OK);
}

static void test_train_run(void **state) {
    (void)state;
    const char *spec = tu_tmp_path("tiny.spec");
    FILE *f = fopen(spec, "w");
    assert_non_null(f);
    fputs(TINY, f);
    fclose(f);
    char ref_path[4200], run_path[4200], ck[4200];
    snprintf(ref_path, sizeof ref_path, "%s", tu_tmp_path("ref.safetensors"));
    snprintf(run_path, sizeof run_path, "%s", tu_tmp_path("run.safetensors"));
    snprintf(ck, sizeof ck, "%s", tu_tmp_path("ck"));

    /* the reference: never stopped; its lines through the callback */
    dg_train_config *cfg = run_config(spec, ref_path, NULL);
    Lines lines = {0};
    assert_int_equal(dg_train_set_log(cfg, on_line, &lines), DG_OK);
    dg_model *ref;
    dg_train_outcome oc;
    assert_int_equal(dg_train_run(cfg, &ref, &oc, NULL, NULL, NULL), DG_OK);
    assert_non_null(ref);
    assert_string_equal(dg_model_kind(ref), "cnn");
    assert_string_equal(oc.model_path, ref_path);
    assert_int_equal(oc.stopped, 0);
    assert_true(lines.n >= 3); /* model ..., trained ..., saved ... */
    assert_non_null(strstr(lines.last, "saved "));
    /* an existing out without overwrite: the settings' error, nothing trained */
    dg_model *m = (dg_model *)1;
    expect_error(dg_train_run(cfg, &m, NULL, NULL, NULL, NULL), DG_ERR_ARG);
    assert_null(m);
    assert_non_null(strstr(dg_errmsg(), "--overwrite"));
    char *yaml = dg_train_config_yaml(cfg);
    assert_non_null(strstr(yaml, "epochs: 2"));
    dg_free(yaml);
    dg_train_config_free(cfg);

    /* the same run with checkpoints, stopped after step 5 by the flag */
    cfg = run_config(spec, run_path, ck);
    volatile int stop = 0;
    Progress ps = {.stop_at = 5, .flag = &stop};
    assert_int_equal(dg_train_run(cfg, &m, &oc, on_progress, &ps, &stop), DG_STOPPED);
    assert_null(m);
    assert_int_equal(oc.stopped, 1);
    assert_int_equal(oc.stop_step, 5);
    assert_int_equal(oc.stop_epoch, 1);
    assert_string_equal(oc.checkpoint_dir, ck);
    assert_true(oc.checkpoint[0] != '\0');
    dg_train_config_free(cfg);

    /* resuming refuses a setting that differs from the checkpoint's */
    cfg = dg_train_config_new();
    assert_int_equal(dg_train_set(cfg, "resume", ck), DG_OK);
    assert_int_equal(dg_train_set(cfg, "epochs", "3"), DG_OK);
    expect_error(dg_train_run(cfg, NULL, NULL, NULL, NULL, NULL), DG_ERR_ARG);
    assert_non_null(strstr(dg_errmsg(), "conflicts with the checkpoint"));
    dg_train_config_free(cfg);
    /* resumed in this process (the folder's lock was given back): the
     * uninterrupted run's weights, bit for bit */
    cfg = dg_train_config_new();
    assert_int_equal(dg_train_set(cfg, "resume", ck), DG_OK);
    assert_int_equal(dg_train_set(cfg, "epochs", "2"), DG_OK); /* equal to the checkpoint's: allowed */
    assert_int_equal(dg_train_run(cfg, &m, &oc, NULL, NULL, NULL), DG_OK);
    assert_string_equal(oc.model_path, run_path);
    dg_prediction a[4], b[4];
    probs_of(ref, a);
    probs_of(m, b);
    assert_memory_equal(a, b, sizeof a);
    dg_model_free(m);
    dg_model_free(ref);
    dg_train_config_free(cfg);

    /* an ensemble of two: one model file, the ensemble kind */
    snprintf(run_path, sizeof run_path, "%s", tu_tmp_path("ens.safetensors"));
    cfg = run_config(spec, run_path, NULL);
    assert_int_equal(dg_train_set(cfg, "epochs", "1"), DG_OK);
    assert_int_equal(dg_train_set(cfg, "ensemble", "2"), DG_OK);
    assert_int_equal(dg_train_run(cfg, &m, &oc, NULL, NULL, NULL), DG_OK);
    assert_string_equal(dg_model_kind(m), "ensemble");
    assert_int_equal(oc.ensemble, 1);
    assert_int_equal(oc.members, 2);
    /* dg_train leaves ensembles to dg_train_run */
    dg_dataset *d;
    assert_int_equal(dg_dataset_load(&d, data_dir(), "test"), DG_OK);
    dg_model *net;
    assert_int_equal(dg_model_build_spec(&net, TINY), DG_OK);
    expect_error(dg_train(net, d, NULL, cfg, NULL, NULL, NULL), DG_ERR_ARG);
    dg_model_free(net);
    dg_dataset_free(d);
    dg_model_free(m);
    dg_train_config_free(cfg);

    /* an ensemble stopped by the flag in its first member: a stop, not a
     * failure; resumed, it finishes */
    snprintf(run_path, sizeof run_path, "%s", tu_tmp_path("ens-stop.safetensors"));
    snprintf(ck, sizeof ck, "%s", tu_tmp_path("ck-ens"));
    cfg = run_config(spec, run_path, ck);
    assert_int_equal(dg_train_set(cfg, "epochs", "1"), DG_OK);
    assert_int_equal(dg_train_set(cfg, "ensemble", "2"), DG_OK);
    stop = 0;
    ps = (Progress){.stop_at = 5, .flag = &stop};
    assert_int_equal(dg_train_run(cfg, &m, &oc, on_progress, &ps, &stop), DG_STOPPED);
    assert_null(m);
    assert_int_equal(oc.stopped, 1);
    assert_int_equal(oc.ensemble, 1);
    assert_int_equal(oc.stop_member, 0);
    assert_true(oc.checkpoint[0] != '\0');
    dg_train_config_free(cfg);
    cfg = dg_train_config_new();
    assert_int_equal(dg_train_set(cfg, "resume", ck), DG_OK);
    assert_int_equal(dg_train_run(cfg, &m, &oc, NULL, NULL, NULL), DG_OK);
    assert_string_equal(dg_model_kind(m), "ensemble");
    assert_int_equal(oc.members, 2);
    dg_model_free(m);
    dg_train_config_free(cfg);
}

/* The PCA + SVM kind: loads, predicts from several threads (the workspaces
 * share its read-only tables) like the internal path, and refuses what
 * only a network does. */
static void *predict_svm(void *arg) {
    void **a = arg;
    Job *j = a[1];
    j->rc = dg_predict_batch(a[0], mnist.pixels, N_IMAGES, j->out);
    return NULL;
}

static void test_svm_kind(void **state) {
    (void)state;
    Dataset train;
    assert_int_equal(dataset_load(data_dir(), "train", &train), 0);
    train.n = 600;
    PcaSvmConfig sc;
    pcasvm_config_defaults(&sc);
    sc.components = 20;
    PcaSvm svm;
    PcaSvmStats stats;
    assert_int_equal(pcasvm_train(&svm, &train, &sc, &stats), 0);
    const char *path = tu_tmp_path("svm.safetensors");
    assert_int_equal(pcasvm_save(&svm, path), 0);
    float want[N_IMAGES * 10];
    pcasvm_predict(&svm, mnist.pixels, N_IMAGES, want, NULL);
    pcasvm_free(&svm);
    dataset_free(&train);

    dg_model *m;
    assert_int_equal(dg_model_load(&m, path), DG_OK);
    assert_string_equal(dg_model_kind(m), "svm");
    assert_int_equal(dg_model_param_count(m), 0);
    Job jobs[2];
    void *args[2][2] = {{m, &jobs[0]}, {m, &jobs[1]}};
    pthread_t th[2];
    for (int t = 0; t < 2; t++) assert_int_equal(pthread_create(&th[t], NULL, predict_svm, args[t]), 0);
    for (int t = 0; t < 2; t++) pthread_join(th[t], NULL);
    for (int t = 0; t < 2; t++) {
        assert_int_equal(jobs[t].rc, DG_OK);
        for (int i = 0; i < N_IMAGES; i++) assert_memory_equal(jobs[t].out[i].probs, want + i * 10, 10 * sizeof(float));
    }
    expect_error(dg_model_save(m, tu_tmp_path("svm2.safetensors")), DG_ERR_UNSUPPORTED);
    dg_dataset *d;
    assert_int_equal(dg_dataset_load(&d, data_dir(), "test"), DG_OK);
    dg_train_config *cfg = dg_train_config_new();
    expect_error(dg_train(m, d, NULL, cfg, NULL, NULL, NULL), DG_ERR_UNSUPPORTED);
    dg_train_config_free(cfg);
    dg_dataset_free(d);
    dg_model_free(m);
}

/* ---- error paths --------------------------------------------------------------- */

static void test_model_errors(void **state) {
    (void)state;
    dg_model *m = (dg_model *)1;
    expect_error(dg_model_load(&m, "/nonexistent/model.safetensors"), DG_ERR_IO);
    assert_null(m);
    const char *bad = tu_tmp_path("corrupt.safetensors");
    FILE *f = fopen(bad, "wb");
    static const char head[] = "\x40\x00\x00\x00\x00\x00\x00\x00{\"__metadata__\": {\"digits.format\": \"1\"}, \"0.w";
    fwrite(head, 1, sizeof head - 1, f); /* the header is cut short */
    fclose(f);
    expect_error(dg_model_load(&m, bad), DG_ERR_FORMAT);
    assert_null(m);
    expect_error(dg_model_load(&m, "lenet5"), DG_ERR_ARG); /* a zoo name, not a file */
    expect_error(dg_model_load(NULL, "default"), DG_ERR_ARG);
    expect_error(dg_model_load(&m, NULL), DG_ERR_ARG);
    expect_error(dg_model_build(&m, "no-such-architecture"), DG_ERR_ARG);
    expect_error(dg_model_build_spec(&m, "conv2d out=banana\n"), DG_ERR_FORMAT);
    expect_error(dg_model_save(model, NULL), DG_ERR_ARG);
    expect_error(dg_model_save(NULL, "x"), DG_ERR_ARG);
    expect_error(dg_model_save(model, "/nonexistent/dir/m.safetensors"), DG_ERR_IO);
    expect_error(dg_model_set_tta(NULL, 2), DG_ERR_ARG);
    expect_error(dg_model_set_tta(model, 1000), DG_ERR_ARG);
    expect_error(dg_model_set_batch(model, 0), DG_ERR_ARG);
    expect_error(dg_model_set_threads(model, 0), DG_ERR_ARG);
    expect_error(dg_model_set_threads(NULL, 1), DG_ERR_ARG);
    expect_error(dg_model_set_batch(NULL, 8), DG_ERR_ARG);
    int w;
    expect_error(dg_model_input_size(model, &w, NULL), DG_ERR_ARG);
    assert_null(dg_model_info_json(NULL));
    assert_null(dg_model_kind(NULL));
    dg_model_free(NULL);
}

static void test_predict_errors(void **state) {
    (void)state;
    dg_prediction p;
    uint8_t img[NPX] = {0};
    expect_error(dg_predict(NULL, img, &p), DG_ERR_ARG);
    expect_error(dg_predict(model, NULL, &p), DG_ERR_ARG);
    expect_error(dg_predict(model, img, NULL), DG_ERR_ARG);
    expect_error(dg_predict_image(model, img, 0, 28, 0, DG_GRAY, &p), DG_ERR_SIZE);
    expect_error(dg_predict_image(model, img, 28, 5000, 0, DG_GRAY, &p), DG_ERR_SIZE);
    expect_error(dg_predict_image(model, img, 28, 28, 10, DG_GRAY, &p), DG_ERR_ARG); /* stride < row */
    expect_error(dg_predict_image(model, img, 28, 28, 0, (dg_pixel_format)2, &p), DG_ERR_ARG);
    expect_error(dg_predict_image(model, img, 28, 28, 0, DG_GRAY, &p), DG_ERR_NO_DIGIT); /* blank */
    int n = 9;
    expect_error(dg_predict_number(model, img, 28, 28, 0, DG_GRAY, &p, 0, &n), DG_ERR_ARG);
    assert_int_equal(n, 0);
    expect_error(dg_predict_number(model, img, 28, 28, 0, DG_GRAY, &p, 1, NULL), DG_ERR_ARG);
    expect_error(dg_predict_encoded(model, "GIF89a....", 10, &p), DG_ERR_FORMAT);
    expect_error(dg_predict_encoded(model, NULL, 10, &p), DG_ERR_ARG);
    expect_error(dg_predict_file(model, "/nonexistent.png", &p), DG_ERR_IO);
    expect_error(dg_predict_file(model, NULL, &p), DG_ERR_ARG);
}

static void test_data_train_eval_errors(void **state) {
    (void)state;
    dg_dataset *d = (dg_dataset *)1, *a, *b;
    expect_error(dg_dataset_load(&d, "/nonexistent", "test"), DG_ERR_IO);
    assert_null(d);
    expect_error(dg_dataset_load(&d, data_dir(), "validation"), DG_ERR_ARG);
    expect_error(dg_dataset_load(NULL, data_dir(), "test"), DG_ERR_ARG);
    expect_error(dg_dataset_split(NULL, 0.1f, 1, &a, &b), DG_ERR_ARG);
    expect_error(dg_dataset_subset(NULL, 0, 1, &a), DG_ERR_ARG);
    assert_int_equal(dg_dataset_count(NULL), 0);
    assert_int_equal(dg_dataset_label(NULL, 0), -1);

    dg_train_config *cfg = dg_train_config_new();
    expect_error(dg_train_set(cfg, "epohcs", "3"), DG_ERR_ARG);
    assert_non_null(strstr(dg_errmsg(), "epochs")); /* did you mean */
    expect_error(dg_train_set(cfg, "epochs", "zero"), DG_ERR_ARG);
    expect_error(dg_train_set(cfg, "epochs", "0"), DG_ERR_ARG);
    expect_error(dg_train_set(cfg, "help", "true"), DG_ERR_ARG); /* the command line's actions */
    expect_error(dg_train_set(cfg, "print-config", "true"), DG_ERR_ARG);
    assert_int_equal(dg_train_set(cfg, "data", "data/mnist"), DG_OK); /* a whole run's setting */
    expect_error(dg_train_config_load(cfg, "/nonexistent.yaml"), DG_ERR_IO);
    expect_error(dg_train_config_load(NULL, "x.yaml"), DG_ERR_ARG);
    assert_null(dg_train_config_yaml(NULL));
    expect_error(dg_train_set_log(NULL, NULL, NULL), DG_ERR_ARG);
    expect_error(dg_train_run(NULL, NULL, NULL, NULL, NULL, NULL), DG_ERR_ARG);
    assert_int_equal(dg_train_config_check(cfg), DG_OK);
    assert_int_equal(dg_train_set(cfg, "monitor", "data/mnist"), DG_OK);
    assert_int_equal(dg_train_set(cfg, "monitor-test", "true"), DG_OK);
    expect_error(dg_train_config_check(cfg), DG_ERR_ARG);
    expect_error(dg_train_run(cfg, NULL, NULL, NULL, NULL, NULL), DG_ERR_ARG);
    assert_int_equal(dg_train_set(cfg, "monitor-test", "false"), DG_OK);
    expect_error(dg_train_set(cfg, NULL, "1"), DG_ERR_ARG);
    expect_error(dg_train_set(cfg, "epochs", NULL), DG_ERR_ARG);
    expect_error(dg_train_set(NULL, "epochs", "1"), DG_ERR_ARG);
    char buf[8];
    expect_error(dg_train_get(cfg, "nope", buf, sizeof buf), DG_ERR_ARG);
    expect_error(dg_train(NULL, NULL, NULL, cfg, NULL, NULL, NULL), DG_ERR_ARG);
    /* an unlabelled set: train and evaluate refuse it */
    assert_int_equal(dg_dataset_load(&d, data_dir(), "test"), DG_OK);
    free(d->ds.labels); /* white-box: make it unlabelled (struct of src/api/api.h) */
    d->ds.labels = NULL;
    dg_model *m;
    assert_int_equal(dg_model_build_spec(&m, TINY), DG_OK);
    expect_error(dg_train(m, d, NULL, cfg, NULL, NULL, NULL), DG_ERR_ARG);
    dg_metrics *mt = (dg_metrics *)1;
    expect_error(dg_evaluate(model, d, &mt), DG_ERR_ARG);
    assert_null(mt);
    expect_error(dg_evaluate(model, NULL, &mt), DG_ERR_ARG);
    expect_error(dg_train(model, d, NULL, NULL, NULL, NULL, NULL), DG_ERR_ARG);
    expect_error(dg_metrics_class(NULL, 0, NULL, NULL, NULL, NULL), DG_ERR_ARG);
    assert_null(dg_metrics_json(NULL));
    dg_model_free(m);
    dg_dataset_free(d);
    dg_train_config_free(cfg);
    dg_train_config_free(NULL);
    dg_metrics_free(NULL);
    dg_dataset_free(NULL);
    assert_string_equal(dg_strerror(12345), "unknown error code");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_and_info), cmocka_unit_test(test_pretrained_names),
        cmocka_unit_test(test_predict_matches_internal),
        cmocka_unit_test(test_batch_equals_single),
        cmocka_unit_test(test_any_size_rgba_with_stride),
        cmocka_unit_test(test_png_bytes_and_file),
        cmocka_unit_test(test_number),
        cmocka_unit_test(test_threads_share_a_model),
        cmocka_unit_test(test_dataset_split_evaluate),
        cmocka_unit_test(test_train_save_load),
        cmocka_unit_test(test_train_run),
        cmocka_unit_test(test_svm_kind),
        cmocka_unit_test(test_model_errors),
        cmocka_unit_test(test_predict_errors),
        cmocka_unit_test(test_data_train_eval_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
