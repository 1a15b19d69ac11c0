/* report.c — `digits report`: compute everything, draw every picture, write
 * index.html; see report.h.
 *
 * report_write reads as its steps: load the inputs, the model and training
 * sections, evaluate, metrics.json and the metrics section, the mistakes,
 * the data, PCA, t-SNE, the activation maps, the page. Each section writes
 * its pictures and appends its HTML to the page body (report_page.h), which
 * lands on disk at the end in one atomic write.
 */
#include "eval/report.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/check.h"
#include "core/rng.h"
#include "core/util.h"
#include "eval/classifier.h"
#include "eval/figures.h"
#include "eval/holdout.h"
#include "eval/metrics.h"
#include "eval/pca.h"
#include "eval/report_page.h"
#include "eval/svm.h"
#include "eval/trainlog.h"
#include "eval/tsne.h"

#define PIXEL_SCALE (1.0f / 255.0f)
#define PCA_TSNE_DIMS 50      /* raw pixels go through PCA-50 before t-SNE (seed 001) */
#define PCA_SCATTER_MAX 5000  /* points in the 2-D PCA scatter */
#define MIS_TABLE_ROWS 25     /* misclassified items listed in the page */
#define PAIR_GRID_MAX 60

void report_config_defaults(ReportConfig *c) {
    memset(c, 0, sizeof *c);
    c->data = "data/mnist";
    c->tsne_n = 2000;
    c->pair_true = c->pair_pred = -1;
    c->digit = 0;
    c->n_samples = 50;
    c->n_mis = 40;
    c->seed = 42;
}

/* ==== small helpers ========================================================= */

static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* A two-column table of a JSON object's members (nested values as JSON). */
static void html_kv_table(FILE *f, const cJSON *obj) {
    fprintf(f, "<table class=\"kv\">\n");
    for (const cJSON *e = obj ? obj->child : NULL; e; e = e->next) {
        fprintf(f, "<tr><th>");
        rep_esc(f, e->string);
        fprintf(f, "</th><td>");
        if (cJSON_IsString(e)) {
            rep_esc(f, e->valuestring);
        } else if (cJSON_IsNumber(e)) {
            double v = e->valuedouble;
            if (v == floor(v) && fabs(v) < 1e15) fprintf(f, "%.0f", v);
            else fprintf(f, "%.6g", v);
        } else {
            char *s = cJSON_PrintUnformatted(e);
            rep_esc(f, s);
            free(s);
        }
        fprintf(f, "</td></tr>\n");
    }
    fprintf(f, "</table>\n");
}

/* A metadata string holding JSON text, parsed (NULL if absent or invalid). */
static cJSON *meta_json_member(const cJSON *meta, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, key);
    return cJSON_IsString(v) ? cJSON_Parse(v->valuestring) : NULL;
}

/* ==== network features ====================================================== */

/* The layer whose output enters the last linear layer (the penultimate
 * features); -1 means the network input itself. */
static int penultimate_layer(const Model *m) {
    for (int i = m->n_layers - 1; i >= 0; i--)
        if (m->layers[i].type == LAYER_LINEAR) return i - 1;
    return m->n_layers - 2;
}

/* Features (n, D) at layer li for n images, in batches of m->max_batch. */
static void forward_features(Model *m, const uint8_t *px, int n, int li, float *out) {
    const size_t img = (size_t)m->input_shape.h * m->input_shape.w;
    const size_t D = li >= 0 ? shape_size(m->layers[li].out) : shape_size(m->input_shape);
    model_keep_outputs(m); /* layer li's own output, not fused into a later one */
    for (int s = 0; s < n; s += m->max_batch) {
        int k = n - s < m->max_batch ? n - s : m->max_batch;
        model_load_pixels(m, px + (size_t)s * img, k);
        model_forward(m, k, 0);
        const float *src = li >= 0 ? m->layers[li].y : m->input;
        memcpy(out + (size_t)s * D, src, (size_t)k * D * sizeof(float));
    }
}

/* ==== sections ============================================================== */

static void section_model(Rep *r, const Classifier *c, const cJSON *meta) {
    FILE *f = r->body;
    fprintf(f, "<h2 id=\"model\">Model</h2>\n<p>File <code>");
    rep_esc(f, r->cfg->model_path);
    fprintf(f, "</code>, kind <b>");
    rep_esc(f, c->name);
    fprintf(f, "</b>.</p>\n");
    if (c->kind == CLASSIFIER_SVM) {
        const PcaSvm *s = c->impl;
        fprintf(f, "<pre>PCA: %d pixels (scaled to [0,1]) -> %d components\n"
                   "SVM: RBF kernel exp(-gamma |a-b|^2), gamma %g, C %g, one-vs-one over %d classes\n"
                   "     %d support vectors; probabilities: softmax(%.3f x (votes + tie-break)), %s\n</pre>\n",
                s->pca.d, s->pca.k, s->gamma, s->C, s->n_class, s->l, s->temperature,
                s->calibrated ? "temperature fitted on the validation split" : "uncalibrated");
    } else if (c->n_models > 0) {
        char *buf = NULL;
        size_t len = 0;
        FILE *ms = open_memstream(&buf, &len);
        if (ms) {
            model_summary(&c->models[0], ms);
            fclose(ms);
            fprintf(f, "<pre>");
            rep_esc(f, buf);
            fprintf(f, "</pre>\n");
            free(buf);
        }
        fprintf(f, "<p>%.2f M multiply-accumulates per image; pixels normalised with mean %.4f, std %.4f.</p>\n",
                model_macs(&c->models[0]) / 1e6, c->models[0].norm_mean, c->models[0].norm_std);
    }
    cJSON *tc = meta_json_member(meta, "digits.train_config");
    cJSON *tm = meta_json_member(meta, "digits.metrics");
    fprintf(f, "<h2 id=\"config\">Training configuration</h2>\n");
    if (tc) html_kv_table(f, tc);
    else rep_note(r, "The model file records no training configuration (digits.train_config).");
    if (tm) {
        fprintf(f, "<h3>Recorded at training time</h3>\n");
        html_kv_table(f, tm);
    }
    cJSON_Delete(tc);
    cJSON_Delete(tm);
}

/* The training log: --log, else the path recorded in the training
 * configuration (as given, then beside the model file), else
 * MODEL.log.csv beside the model. *how says which. */
static int find_log(const ReportConfig *cfg, const cJSON *meta, char *out, size_t len, const char **how) {
    if (cfg->log_path) {
        snprintf(out, len, "%s", cfg->log_path);
        *how = "given with --log";
        return 1;
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", cfg->model_path);
    char *slash = strrchr(dir, '/');
    if (slash) slash[1] = '\0';
    else dir[0] = '\0';
    cJSON *tc = meta_json_member(meta, "digits.train_config");
    const cJSON *lg = tc ? cJSON_GetObjectItemCaseSensitive(tc, "log") : NULL;
    int found = 0;
    if (cJSON_IsString(lg)) {
        const char *base = strrchr(lg->valuestring, '/');
        base = base ? base + 1 : lg->valuestring;
        if (is_file(lg->valuestring)) {
            snprintf(out, len, "%s", lg->valuestring);
            found = 1;
        } else if (snprintf(out, len, "%s%s", dir, base) < (int)len && is_file(out)) {
            found = 1;
        }
        *how = "recorded in the training configuration";
    }
    cJSON_Delete(tc);
    if (found) return 1;
    snprintf(out, len, "%s", cfg->model_path);
    char *dot = strrchr(out, '.');
    if (dot && strcmp(dot, ".safetensors") == 0) *dot = '\0';
    size_t l = strlen(out);
    snprintf(out + l, len - l, ".log.csv");
    *how = "found beside the model file";
    return is_file(out);
}

static int section_curves(Rep *r, const Classifier *c, const cJSON *meta) {
    FILE *f = r->body;
    fprintf(f, "<h2 id=\"curves\">Learning curves</h2>\n");
    if (c->kind == CLASSIFIER_SVM && !r->cfg->log_path) {
        rep_note(r, "The SVM baseline is trained in one solve, without epochs: there are no learning curves.");
        return 0;
    }
    char path[PATH_MAX], base[PATH_MAX];
    const char *how = "";
    if (!find_log(r->cfg, meta, path, sizeof path, &how)) {
        rep_note(r, "No training log found (none given with --log, none recorded in the model's training "
                     "configuration, no MODEL.log.csv beside the model file): learning curves skipped. "
                     "'digits train --log FILE.csv' writes one.");
        rep_progress(r, "learning curves: no training log, skipped");
        return 0;
    }
    TrainLog log;
    if (trainlog_read(path, &log) < 0) {
        if (r->cfg->log_path) return -1; /* asked for explicitly: a bad file is an error */
        char note[1200];
        snprintf(note, sizeof note, "The training log (%s) could not be read: %s. Learning curves skipped.", how,
                 dg_errmsg());
        rep_note(r, note);
        return 0;
    }
    rep_path(r, "learning_curves", base, sizeof base);
    const char *slash = strrchr(path, '/');
    if (fig_learning_curves(base, &log, slash ? slash + 1 : path, r->cfg->svg) < 0) {
        trainlog_free(&log);
        return -1;
    }
    int best = trainlog_best(&log);
    char cap[1024];
    int o = snprintf(cap, sizeof cap, "%d epochs from <code>", log.n);
    FILE *ms = fmemopen(cap + o, sizeof cap - (size_t)o, "w");
    if (ms) {
        rep_esc(ms, path);
        fclose(ms);
    }
    o = (int)strlen(cap);
    o += snprintf(cap + o, sizeof cap - (size_t)o, "</code> (%s).", how);
    if (best >= 0)
        snprintf(cap + o, sizeof cap - (size_t)o,
                 " Best epoch %d: validation loss %.4f, accuracy %.4f (dashed line, ringed point).",
                 (int)log.col[TL_EPOCH][best], log.col[TL_VAL_LOSS][best], log.col[TL_VAL_ACC][best]);
    rep_figure(r, "learning_curves", "learning curves", cap);
    rep_progress(r, "learning curves: %d epochs from %s", log.n, path);
    trainlog_free(&log);
    return 0;
}

/* ==== the whole report ====================================================== */

/* Everything the sections share: the inputs, the predictions and what was
 * computed from them. Owned; freed by model_report_free. */
typedef struct {
    Rep r;
    const ReportConfig *cfg;
    Classifier c;
    cJSON *meta;
    Dataset train, test;
    DataRole role; /* what the evaluated images are: the section titles say it */
    int same_file; /* one labelled CSV serves as both */
    int D;         /* pixels per image */
    uint8_t *pred;
    float *probs;
    double loss;
    Metrics mt;
    Misclassified *mis;
    int n_mis;
    Pca pca;
} ModelReport;

static void model_report_free(ModelReport *m) {
    rep_close(&m->r);
    cJSON_Delete(m->meta);
    free(m->pred);
    free(m->probs);
    free(m->mis);
    pca_free(&m->pca);
    dataset_free(&m->train);
    dataset_free(&m->test);
    classifier_free(&m->c);
}

/* The model, its metadata, the test set (checked against the model's input
 * size, cut to --limit) and the training set. */
static int load_inputs(ModelReport *m) {
    const ReportConfig *cfg = m->cfg;
    if (classifier_load(&m->c, cfg->model_path, 500, cfg->threads) < 0) return -1;
    m->meta = cJSON_Parse(m->c.metadata_json ? m->c.metadata_json : "{}");
    if (holdout_load(cfg->data, cfg->split ? cfg->split : "test", m->c.metadata_json, &m->test, &m->role) < 0)
        return -1;
    if (!m->test.labels) return dg_set_error("%s: has no labels; the report needs a labelled set", cfg->data);
    if (m->test.rows != m->c.height || m->test.cols != m->c.width)
        return dg_set_error("%s: images are %dx%d, the model expects %dx%d", cfg->data, m->test.rows, m->test.cols,
                            m->c.height, m->c.width);
    m->same_file = !is_dir(cfg->data);
    if (dataset_load(cfg->data, "train", &m->train) < 0) return -1;
    if (cfg->limit && cfg->limit < m->test.n) m->test.n = cfg->limit;
    m->D = m->test.rows * m->test.cols;
    return 0;
}

/* Predictions, metrics and the misclassified list for the test images. */
static void evaluate(ModelReport *m) {
    const Dataset *test = &m->test;
    m->pred = dg_xmalloc((size_t)test->n);
    m->probs = dg_xmalloc((size_t)test->n * 10 * sizeof(float));
    double t_pred = now_seconds();
    classifier_predict_dataset(&m->c, test, m->pred, m->probs, &m->loss);
    t_pred = now_seconds() - t_pred;
    metrics_compute(&m->mt, test->labels, m->pred, test->n);
    metrics_set_top_k(&m->mt, m->probs, test->labels, test->n, 3);
    m->n_mis = metrics_misclassified(test->labels, m->pred, m->probs, test->n, &m->mis);
    rep_progress(&m->r, "evaluated %d test images: accuracy %.4f, loss %.4f (%.1fs)", test->n, m->mt.accuracy,
                 m->loss, t_pred);
}

/* metrics.json: what `digits eval --json` prints, with the misclassified list. */
static int write_metrics_json(ModelReport *m) {
    char base[PATH_MAX];
    char *list = misclassified_to_json(m->mis, m->n_mis);
    cJSON *extra = cJSON_CreateObject();
    cJSON_AddNumberToObject(extra, "loss", m->loss);
    cJSON_AddStringToObject(extra, "model", m->c.name);
    cJSON_AddStringToObject(extra, "data", m->cfg->split ? m->cfg->split : "test");
    cJSON_AddStringToObject(extra, "data_role", holdout_role_title(m->role));
    cJSON_AddNumberToObject(extra, "n_misclassified", m->n_mis);
    cJSON_AddItemToObject(extra, "misclassified", cJSON_Parse(list));
    char *extra_s = cJSON_PrintUnformatted(extra);
    char *js = metrics_to_json(&m->mt, extra_s);
    rep_path(&m->r, "metrics.json", base, sizeof base);
    AtomicFile af;
    int ok = atomic_file_open(&af, base) == 0;
    if (ok && (fputs(js, af.f) < 0 || fputc('\n', af.f) == EOF)) {
        atomic_file_abort(&af);
        ok = 0;
        dg_set_error("%s: write failed", base);
    }
    if (ok && atomic_file_commit(&af) < 0) ok = 0;
    free(js);
    free(extra_s);
    free(list);
    cJSON_Delete(extra);
    return ok ? 0 : -1;
}

/* The classification report table, the confusion matrices, per-class bars. */
static int section_metrics(ModelReport *m) {
    Rep *r = &m->r;
    const ReportConfig *cfg = m->cfg;
    const Metrics *mt = &m->mt;
    char base[PATH_MAX];
    FILE *f = r->body;
    fprintf(f, "<h2 id=\"metrics\">Metrics on the %s</h2>\n<p>%d images from <code>", holdout_role_title(m->role),
            m->test.n);
    rep_esc(f, cfg->data);
    fprintf(f, "</code>%s: <b>accuracy %.4f</b> (%d errors), loss %.4f; top-2 %.4f, top-3 %.4f. "
               "All numbers also in <a href=\"metrics.json\">metrics.json</a>.</p>\n",
            m->same_file ? " (the same file as the training data)" : "", mt->accuracy, m->n_mis, m->loss,
            mt->top_k_acc[1], mt->top_k_acc[2]);
    fprintf(f, "<table><tr><th></th><th>precision</th><th>recall</th><th>f1-score</th><th>support</th></tr>\n");
    for (int k = 0; k < 10; k++)
        if (mt->present[k])
            fprintf(f, "<tr><th>%d</th><td>%.4f</td><td>%.4f</td><td>%.4f</td><td>%d</td></tr>\n", k,
                    mt->precision[k], mt->recall[k], mt->f1[k], mt->support[k]);
    fprintf(f, "<tr><th>accuracy</th><td></td><td></td><td>%.4f</td><td>%d</td></tr>\n", mt->accuracy, mt->n);
    fprintf(f, "<tr><th>macro avg</th><td>%.4f</td><td>%.4f</td><td>%.4f</td><td>%d</td></tr>\n", mt->macro_p,
            mt->macro_r, mt->macro_f1, mt->n);
    fprintf(f, "<tr><th>weighted avg</th><td>%.4f</td><td>%.4f</td><td>%.4f</td><td>%d</td></tr></table>\n",
            mt->weighted_p, mt->weighted_r, mt->weighted_f1, mt->n);
    rep_path(r, "confusion", base, sizeof base);
    if (fig_confusion(base, mt, 0, cfg->svg) < 0) return -1;
    rep_figure(r, "confusion", "confusion matrix", "Confusion matrix: rows are the true digit, columns the "
                                                   "prediction; off-diagonal counts (errors) in red.");
    rep_path(r, "confusion_normalized", base, sizeof base);
    if (fig_confusion(base, mt, 1, cfg->svg) < 0) return -1;
    rep_figure(r, "confusion_normalized", "normalised confusion matrix",
               "The same, each row as a percentage of its true digit (the diagonal is the recall).");
    rep_path(r, "per_class", base, sizeof base);
    if (fig_per_class(base, mt, cfg->svg) < 0) return -1;
    rep_figure(r, "per_class", "per-class precision, recall and F1", "Per-class precision, recall and F1.");
    rep_progress(r, "confusion matrices, per-class bars");
    return 0;
}

/* The most confident mistakes as a table and a grid. */
static int mistakes_grid(ModelReport *m) {
    Rep *r = &m->r;
    const ReportConfig *cfg = m->cfg;
    const Misclassified *mis = m->mis;
    char base[PATH_MAX];
    FILE *f = r->body;
    fprintf(f, "<h2 id=\"errors\">Misclassified images (%s)</h2>\n", holdout_role_title(m->role));
    fprintf(f, "<p>%d of %d misclassified; the most confident mistakes first (confidence = the probability "
               "given to the wrong digit).</p>\n<table><tr><th>index</th><th>true</th><th>predicted</th>"
               "<th>confidence</th></tr>\n",
            m->n_mis, m->test.n);
    for (int i = 0; i < m->n_mis && i < MIS_TABLE_ROWS; i++)
        fprintf(f, "<tr><td>%d</td><td>%d</td><td class=\"bad\">%d</td><td>%.4f</td></tr>\n", mis[i].index,
                mis[i].truth, mis[i].pred, mis[i].confidence);
    fprintf(f, "</table>\n");
    int n = m->n_mis < cfg->n_mis ? m->n_mis : cfg->n_mis;
    const uint8_t **imgs = dg_xmalloc((size_t)(n + 1) * sizeof *imgs);
    char **caps = dg_xmalloc((size_t)(n + 1) * sizeof *caps);
    for (int i = 0; i < n; i++) {
        imgs[i] = m->test.pixels + (size_t)mis[i].index * m->D;
        caps[i] = dg_xmalloc(48);
        snprintf(caps[i], 48, "%d \xe2\x86\x92 %d (%.2f)", mis[i].truth, mis[i].pred, mis[i].confidence);
    }
    char title[128];
    snprintf(title, sizeof title, "The %d most confident mistakes (true \xe2\x86\x92 predicted, confidence)", n);
    DigitGrid g = {title, imgs, n, m->test.cols, m->test.rows, 10, (const char *const *)caps, NULL, "no mistakes"};
    rep_path(r, "misclassified", base, sizeof base);
    int frc = fig_digit_grid(base, &g, cfg->svg);
    for (int i = 0; i < n; i++) free(caps[i]);
    free(caps);
    free(imgs);
    if (frc < 0) return -1;
    rep_figure(r, "misclassified", "misclassified digits", "Misclassified test digits: true \xe2\x86\x92 "
                                                           "predicted (confidence).");
    return 0;
}

/* One pair, seed 002's "9 predicted as 7" view: the requested one or the
 * most frequent confusion. */
static int pair_grid(ModelReport *m) {
    Rep *r = &m->r;
    const ReportConfig *cfg = m->cfg;
    const Misclassified *mis = m->mis;
    char base[PATH_MAX];
    int a = cfg->pair_true, b = cfg->pair_pred;
    if (a < 0) {
        int best = 0;
        a = 9, b = 7;
        for (int i = 0; i < 10; i++)
            for (int j = 0; j < 10; j++)
                if (i != j && m->mt.confusion[i][j] > best) best = m->mt.confusion[i][j], a = i, b = j;
    }
    const uint8_t **imgs = dg_xmalloc(PAIR_GRID_MAX * sizeof *imgs);
    char **caps = dg_xmalloc(PAIR_GRID_MAX * sizeof *caps);
    int n = 0;
    for (int i = 0; i < m->n_mis && n < PAIR_GRID_MAX; i++) {
        if (mis[i].truth != a || mis[i].pred != b) continue;
        imgs[n] = m->test.pixels + (size_t)mis[i].index * m->D;
        caps[n] = dg_xmalloc(48);
        snprintf(caps[n], 48, "#%d (%.2f)", mis[i].index, mis[i].confidence);
        n++;
    }
    char title[128], note[64];
    snprintf(title, sizeof title, "%d predicted as %d: %d test image%s", a, b, m->mt.confusion[a][b],
             m->mt.confusion[a][b] == 1 ? "" : "s");
    snprintf(note, sizeof note, "no %d was predicted as %d", a, b);
    DigitGrid g = {title, imgs, n, m->test.cols, m->test.rows, 10, (const char *const *)caps, NULL, note};
    rep_path(r, "misclassified_pair", base, sizeof base);
    int frc = fig_digit_grid(base, &g, cfg->svg);
    for (int i = 0; i < n; i++) free(caps[i]);
    free(caps);
    free(imgs);
    if (frc < 0) return -1;
    char cap[160];
    snprintf(cap, sizeof cap, "Every %d predicted as %d (test index, confidence)%s; choose the pair with "
             "--pair TRUE,PREDICTED.", a, b, cfg->pair_true < 0 ? ", the most frequent confusion" : "");
    rep_figure(r, "misclassified_pair", "one confusion pair", cap);
    rep_progress(r, "misclassified grids");
    return 0;
}

/* Random test digits with their labels (red where the model disagrees), and
 * the label distributions. */
static int section_data(ModelReport *m) {
    Rep *r = &m->r;
    const ReportConfig *cfg = m->cfg;
    const Dataset *test = &m->test;
    char base[PATH_MAX];
    fprintf(r->body, "<h2 id=\"data\">Data</h2>\n");
    {
        int n = cfg->n_samples < test->n ? cfg->n_samples : test->n;
        int *order = dg_xmalloc((size_t)test->n * sizeof(int));
        for (int i = 0; i < test->n; i++) order[i] = i;
        Rng rng;
        rng_seed(&rng, cfg->seed, "report-samples");
        rng_shuffle(&rng, order, test->n);
        const uint8_t **imgs = dg_xmalloc((size_t)(n + 1) * sizeof *imgs);
        char **caps = dg_xmalloc((size_t)(n + 1) * sizeof *caps);
        int *red = dg_xmalloc((size_t)(n + 1) * sizeof(int));
        for (int i = 0; i < n; i++) {
            int k = order[i];
            imgs[i] = test->pixels + (size_t)k * m->D;
            caps[i] = dg_xmalloc(48);
            red[i] = m->pred[k] != test->labels[k];
            if (red[i]) snprintf(caps[i], 48, "%d (pred %d)", test->labels[k], m->pred[k]);
            else snprintf(caps[i], 48, "%d", test->labels[k]);
        }
        char title[96];
        snprintf(title, sizeof title, "%d random test digits with their labels", n);
        DigitGrid g = {title, imgs, n, test->cols, test->rows, 10, (const char *const *)caps, red, "no images"};
        rep_path(r, "samples", base, sizeof base);
        int frc = fig_digit_grid(base, &g, cfg->svg);
        for (int i = 0; i < n; i++) free(caps[i]);
        free(caps);
        free(imgs);
        free(red);
        free(order);
        if (frc < 0) return -1;
        rep_figure(r, "samples", "sample digits", "Random test digits with their labels (red: the model's "
                                                  "prediction differs).");
    }
    rep_path(r, "labels_train", base, sizeof base);
    if (fig_label_hist(base, m->train.labels, m->train.n,
                       m->same_file ? "Label distribution" : "Label distribution: train", cfg->svg) < 0)
        return -1;
    rep_figure(r, "labels_train", "training label distribution", "Digits in the training set.");
    if (!m->same_file) {
        rep_path(r, "labels_test", base, sizeof base);
        if (fig_label_hist(base, test->labels, test->n, "Label distribution: test", cfg->svg) < 0) return -1;
        rep_figure(r, "labels_test", "test label distribution", "Digits in the evaluated test images.");
    }
    rep_progress(r, "samples, label distributions");
    return 0;
}

/* PCA fitted on the training pixels: explained variance, 2-D scatter of the
 * test images. Keeps the PCA for the t-SNE. */
static int section_pca(ModelReport *m) {
    Rep *r = &m->r;
    const ReportConfig *cfg = m->cfg;
    const Dataset *test = &m->test;
    char base[PATH_MAX];
    FILE *f = r->body;
    if (pca_fit_pixels(&m->pca, m->train.pixels, m->train.n, m->D, PIXEL_SCALE, PCA_TSNE_DIMS) < 0) return -1;
    const Pca *pca = &m->pca;
    int m95 = pca_components_for(pca, 0.95);
    fprintf(f, "<h2 id=\"pca\">PCA of the pixels</h2>\n<p>Fitted on the %d training images, pixels scaled to "
               "[0,1]: <b>%d components explain 95%%</b> of the variance; the first 2 explain %.1f%%, the first "
               "%d %.1f%%.</p>\n",
            m->train.n, m95, 100 * pca_explained(pca, 2), PCA_TSNE_DIMS, 100 * pca_explained(pca, PCA_TSNE_DIMS));
    rep_path(r, "pca_variance", base, sizeof base);
    if (fig_pca_variance(base, pca, PCA_TSNE_DIMS, cfg->svg) < 0) return -1;
    rep_figure(r, "pca_variance", "PCA cumulative explained variance", "Cumulative explained variance.");
    int n = test->n < PCA_SCATTER_MAX ? test->n : PCA_SCATTER_MAX;
    float *emb = dg_xmalloc((size_t)n * 2 * sizeof(float));
    pca_transform_pixels(pca, test->pixels, n, PIXEL_SCALE, 2, emb);
    rep_path(r, "pca_scatter", base, sizeof base);
    int frc = fig_scatter(base, emb, test->labels, n, "Test digits on the first two principal components",
                          "principal component 1", "principal component 2", 1, cfg->svg);
    free(emb);
    if (frc < 0) return -1;
    rep_figure(r, "pca_scatter", "PCA scatter", "The first test images projected on the training set's "
                                                "first two principal components.");
    rep_progress(r, "PCA: %d components reach 95%%", m95);
    return 0;
}

/* The t-SNE runs: raw pixels (PCA-50), an untrained copy's and the trained
 * network's penultimate features. */
static const struct {
    const char *name, *title, *what;
} TSNE_RUNS[3] = {{"tsne_pixels", "t-SNE of raw pixels (PCA-50)", "raw pixels after PCA to 50 components"},
                  {"tsne_untrained", "t-SNE of an untrained network's penultimate features",
                   "the penultimate-layer features of the same network, untrained (seeded initialisation)"},
                  {"tsne_trained", "t-SNE of the trained network's penultimate features",
                   "the penultimate-layer features of the trained network"}};

/* The input of t-SNE run `run` for the first tn test images: *feat (tn, *d),
 * owned. Returns 1 when this model has nothing for the run, -1 on failure. */
static int tsne_input(ModelReport *m, int run, int tn, Model *untrained, float **feat, int *d) {
    if (run == 0) {
        *d = PCA_TSNE_DIMS;
        *feat = dg_xmalloc((size_t)tn * *d * sizeof(float));
        pca_transform_pixels(&m->pca, m->test.pixels, tn, PIXEL_SCALE, *d, *feat);
        return 0;
    }
    if (m->c.kind == CLASSIFIER_SVM || m->c.n_models == 0) return 1;
    Model *net = &m->c.models[0];
    if (run == 1) {
        if (model_build(untrained, net->spec_text, "untrained copy") < 0) return -1;
        model_init_params(untrained, m->cfg->seed);
        untrained->norm_mean = net->norm_mean;
        untrained->norm_std = net->norm_std;
        model_set_batch(untrained, net->max_batch, 0, m->cfg->threads);
        net = untrained;
    }
    int li = penultimate_layer(net);
    *d = (int)(li >= 0 ? shape_size(net->layers[li].out) : shape_size(net->input_shape));
    *feat = dg_xmalloc((size_t)tn * *d * sizeof(float));
    forward_features(net, m->test.pixels, tn, li, *feat);
    return 0;
}

static int section_tsne(ModelReport *m) {
    Rep *r = &m->r;
    const ReportConfig *cfg = m->cfg;
    char base[PATH_MAX];
    FILE *f = r->body;
    fprintf(f, "<h2 id=\"tsne\">t-SNE</h2>\n");
    int tn = cfg->tsne_n < m->test.n ? cfg->tsne_n : m->test.n;
    if (tn < 10) {
        rep_note(r, "t-SNE skipped (--tsne 0, or fewer than 10 test images).");
        return 0;
    }
    TsneConfig tc;
    tsne_config_defaults(&tc);
    fprintf(f, "<p>Barnes-Hut t-SNE of the first %d test images: perplexity %.0f, early exaggeration %.0f for "
               "%d of %d iterations, PCA initialisation, theta %.1f (scikit-learn's defaults, as in the seed "
               "notebooks).</p>\n",
            tn, tc.perplexity, tc.early_exaggeration, tc.exaggeration_iters, tc.iters, tc.theta);
    float *emb = dg_xmalloc((size_t)tn * 2 * sizeof(float)), *feat = NULL;
    Model untrained = {0};
    int rc = 0;
    for (int run = 0; run < 3 && rc == 0; run++) {
        int d = 0;
        free(feat);
        feat = NULL;
        int in = tsne_input(m, run, tn, &untrained, &feat, &d);
        if (in < 0) {
            rc = -1;
            break;
        }
        if (in > 0) {
            if (run == 1) rep_note(r, "This model has no network layers: feature t-SNE skipped.");
            continue;
        }
        TsneStats ts;
        rep_path(r, TSNE_RUNS[run].name, base, sizeof base);
        if (tsne_run(feat, tn, d, &tc, emb, &ts) < 0 ||
            fig_scatter(base, emb, m->test.labels, tn, TSNE_RUNS[run].title, "t-SNE 1", "t-SNE 2", 0, cfg->svg) < 0) {
            rc = -1;
            break;
        }
        char cap[300];
        snprintf(cap, sizeof cap, "Input: %s (%d features). %.1f s, final KL divergence %.3f.", TSNE_RUNS[run].what,
                 d, ts.seconds, ts.kl);
        rep_figure(r, TSNE_RUNS[run].name, TSNE_RUNS[run].title, cap);
        rep_progress(r, "%s: %d points, %d features, %.1fs, KL %.3f", TSNE_RUNS[run].name, tn, d, ts.seconds, ts.kl);
    }
    model_free(&untrained);
    free(feat);
    free(emb);
    return rc;
}

/* Every conv layer's output channels for one test digit. */
static int section_activations(ModelReport *m) {
    Rep *r = &m->r;
    const ReportConfig *cfg = m->cfg;
    const Dataset *test = &m->test;
    char base[PATH_MAX];
    FILE *f = r->body;
    fprintf(f, "<h2 id=\"activations\">Activation maps</h2>\n");
    if (m->c.kind == CLASSIFIER_SVM || m->c.n_models == 0) {
        rep_note(r, "This model has no convolution layers.");
        return 0;
    }
    if (cfg->digit >= test->n) {
        char note[128];
        snprintf(note, sizeof note, "--digit %d is outside the %d evaluated test images.", cfg->digit, test->n);
        rep_note(r, note);
        return 0;
    }
    Model *net = &m->c.models[0];
    const uint8_t *px = test->pixels + (size_t)cfg->digit * m->D;
    model_keep_outputs(net); /* every conv layer's own output */
    model_load_pixels(net, px, 1);
    model_forward(net, 1, 0);
    int k = cfg->digit, shown = 0;
    fprintf(f, "<p>Every convolution layer's output channels for test image %d (label %d, predicted %d with "
               "probability %.3f); each map is scaled to its own range (1x1 maps share one). "
               "Choose the image with --digit.</p>\n",
            k, test->labels[k], m->pred[k], m->probs[(size_t)k * 10 + m->pred[k]]);
    for (int i = 0; i < net->n_layers; i++) {
        const Layer *l = &net->layers[i];
        if (l->type != LAYER_CONV2D) continue;
        char name[48], title[200];
        snprintf(name, sizeof name, "activations_layer%d", l->index);
        snprintf(title, sizeof title, "Layer %d, conv2d %dx%d: %d channels of %dx%d for test image %d (label %d)",
                 l->index, l->kernel, l->kernel, l->out.c, l->out.h, l->out.w, k, test->labels[k]);
        rep_path(r, name, base, sizeof base);
        if (fig_activations(base, l->y, l->out.c, l->out.h, l->out.w, px, test->cols, test->rows, title, cfg->svg) <
            0)
            return -1;
        rep_figure(r, name, title, title);
        shown++;
    }
    if (!shown) rep_note(r, "This network has no convolution layers.");
    rep_progress(r, "activation maps: %d conv layers", shown);
    return 0;
}

/* index.html: the title, what was reported on, the section links, the body. */
static int write_page(ModelReport *m) {
    static const RepLink nav[] = {{"model", "model"}, {"config", "training"}, {"curves", "curves"},
                                  {"metrics", "metrics"}, {"errors", "mistakes"}, {"data", "data"},
                                  {"pca", "PCA"}, {"tsne", "t-SNE"}, {"activations", "activations"}, {NULL, NULL}};
    char *intro = NULL, title[512];
    size_t len = 0;
    FILE *o = open_memstream(&intro, &len);
    if (!o) return dg_set_error("report: out of memory");
    fprintf(o, "Model <code>");
    rep_esc(o, m->cfg->model_path);
    fprintf(o, "</code>, data <code>");
    rep_esc(o, m->cfg->data);
    fprintf(o, "</code>");
    fclose(o);
    snprintf(title, sizeof title, "digits report: %s", m->c.name);
    int rc = rep_finish(&m->r, title, intro, "digits report", nav);
    free(intro);
    return rc;
}

int report_write(const ReportConfig *cfg) {
    ModelReport m = {.cfg = cfg};
    int rc = -1;
    if (rep_open(&m.r, cfg) < 0) goto out;
    if (load_inputs(&m) < 0) goto out;
    section_model(&m.r, &m.c, m.meta);
    if (section_curves(&m.r, &m.c, m.meta) < 0) goto out;
    evaluate(&m);
    if (write_metrics_json(&m) < 0 || section_metrics(&m) < 0) goto out;
    if (mistakes_grid(&m) < 0 || pair_grid(&m) < 0) goto out;
    if (section_data(&m) < 0 || section_pca(&m) < 0 || section_tsne(&m) < 0) goto out;
    if (section_activations(&m) < 0) goto out;
    rc = write_page(&m);
out:
    model_report_free(&m);
    return rc;
}
