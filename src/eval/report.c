/* report.c — `digits report`: compute everything, draw every picture, write
 * index.html; see report.h.
 *
 * The page is written section by section into a memory stream while the
 * pictures are drawn (so each section sits next to what made it) and lands
 * on disk at the end in one atomic write.
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
#include <time.h>

#include "core/check.h"
#include "core/rng.h"
#include "core/util.h"
#include "eval/classifier.h"
#include "eval/figures.h"
#include "eval/metrics.h"
#include "eval/pca.h"
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

typedef struct {
    const ReportConfig *cfg;
    FILE *body;          /* the page's body, a memory stream */
    char *body_buf;
    size_t body_len;
    double t0;
} Rep;

static void esc(FILE *f, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

static void progress(const Rep *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void progress(const Rep *r, const char *fmt, ...) {
    if (r->cfg->quiet) return;
    va_list ap;
    va_start(ap, fmt);
    printf("[%6.1fs] ", now_seconds() - r->t0);
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
}

static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static void base_path(const Rep *r, const char *name, char *out, size_t len) {
    snprintf(out, len, "%s/%s", r->cfg->out_dir, name);
}

/* A <figure> for name.png (and its SVG) with a caption (HTML allowed). */
static void html_figure(Rep *r, const char *name, const char *alt, const char *caption) {
    FILE *f = r->body;
    fprintf(f, "<figure><a href=\"%s.png\"><img src=\"%s.png\" alt=\"", name, name);
    esc(f, alt);
    fprintf(f, "\"></a><figcaption>%s", caption ? caption : "");
    if (r->cfg->svg) fprintf(f, " <a href=\"%s.svg\">SVG</a>", name);
    fprintf(f, "</figcaption></figure>\n");
}

static void html_note(Rep *r, const char *text) {
    fprintf(r->body, "<p class=\"note\">");
    esc(r->body, text);
    fprintf(r->body, "</p>\n");
}

/* A two-column table of a JSON object's members (nested values as JSON). */
static void html_kv_table(FILE *f, const cJSON *obj) {
    fprintf(f, "<table class=\"kv\">\n");
    for (const cJSON *e = obj ? obj->child : NULL; e; e = e->next) {
        fprintf(f, "<tr><th>");
        esc(f, e->string);
        fprintf(f, "</th><td>");
        if (cJSON_IsString(e)) {
            esc(f, e->valuestring);
        } else if (cJSON_IsNumber(e)) {
            double v = e->valuedouble;
            if (v == floor(v) && fabs(v) < 1e15) fprintf(f, "%.0f", v);
            else fprintf(f, "%.6g", v);
        } else {
            char *s = cJSON_PrintUnformatted(e);
            esc(f, s);
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
    esc(f, r->cfg->model_path);
    fprintf(f, "</code>, kind <b>");
    esc(f, c->name);
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
            esc(f, buf);
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
    else html_note(r, "The model file records no training configuration (digits.train_config).");
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
        html_note(r, "The SVM baseline is trained in one solve, without epochs: there are no learning curves.");
        return 0;
    }
    char path[PATH_MAX], base[PATH_MAX];
    const char *how = "";
    if (!find_log(r->cfg, meta, path, sizeof path, &how)) {
        html_note(r, "No training log found (none given with --log, none recorded in the model's training "
                     "configuration, no MODEL.log.csv beside the model file): learning curves skipped. "
                     "'digits train --log FILE.csv' writes one.");
        progress(r, "learning curves: no training log, skipped");
        return 0;
    }
    TrainLog log;
    if (trainlog_read(path, &log) < 0) {
        if (r->cfg->log_path) return -1; /* asked for explicitly: a bad file is an error */
        char note[1200];
        snprintf(note, sizeof note, "The training log (%s) could not be read: %s. Learning curves skipped.", how,
                 dg_errmsg());
        html_note(r, note);
        return 0;
    }
    base_path(r, "learning_curves", base, sizeof base);
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
        esc(ms, path);
        fclose(ms);
    }
    o = (int)strlen(cap);
    o += snprintf(cap + o, sizeof cap - (size_t)o, "</code> (%s).", how);
    if (best >= 0)
        snprintf(cap + o, sizeof cap - (size_t)o,
                 " Best epoch %d: validation loss %.4f, accuracy %.4f (dashed line, ringed point).",
                 (int)log.col[TL_EPOCH][best], log.col[TL_VAL_LOSS][best], log.col[TL_VAL_ACC][best]);
    html_figure(r, "learning_curves", "learning curves", cap);
    progress(r, "learning curves: %d epochs from %s", log.n, path);
    trainlog_free(&log);
    return 0;
}

/* ==== the whole report ====================================================== */

static const char *CSS =
    "body{font-family:'DejaVu Sans',sans-serif;max-width:1180px;margin:2em auto;padding:0 1em;color:#222}"
    "h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}"
    "pre{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:.85em}"
    "table{border-collapse:collapse;margin:.6em 0}th,td{padding:.2em .7em;border-bottom:1px solid #e4e4e4;"
    "text-align:right;font-variant-numeric:tabular-nums}table.kv th{text-align:left}table.kv td{text-align:left}"
    "figure{margin:1.2em 0}img{max-width:100%;border:1px solid #eee}figcaption{color:#555;font-size:.9em}"
    ".note{background:#fff7e0;border-left:4px solid #e0b000;padding:.5em .8em}nav a{margin-right:1em}"
    "td.bad{color:#b00}";

int report_write(const ReportConfig *cfg) {
    Rep r = {.cfg = cfg, .t0 = now_seconds()};
    Classifier c = {0};
    Dataset train = {0}, test = {0};
    uint8_t *pred = NULL;
    float *probs = NULL, *feat = NULL, *emb = NULL;
    Misclassified *mis = NULL;
    Pca pca = {0};
    cJSON *meta = NULL;
    int rc = -1, n_mis = 0, same_file = 0;
    char base[PATH_MAX];

    if (make_dirs(cfg->out_dir) < 0) return -1;
    r.body = open_memstream(&r.body_buf, &r.body_len);
    if (!r.body) return dg_set_error("report: out of memory");

    if (classifier_load(&c, cfg->model_path, 500, cfg->threads) < 0) goto out;
    meta = cJSON_Parse(c.metadata_json ? c.metadata_json : "{}");
    if (dataset_load(cfg->data, "test", &test) < 0) goto out;
    if (!test.labels) {
        dg_set_error("%s: has no labels; the report needs a labelled set", cfg->data);
        goto out;
    }
    if (test.rows != c.height || test.cols != c.width) {
        dg_set_error("%s: images are %dx%d, the model expects %dx%d", cfg->data, test.rows, test.cols, c.height,
                     c.width);
        goto out;
    }
    if (is_dir(cfg->data)) {
        if (dataset_load(cfg->data, "train", &train) < 0) goto out;
    } else {
        same_file = 1; /* one labelled CSV serves as both */
        if (dataset_load(cfg->data, "train", &train) < 0) goto out;
    }
    if (cfg->limit && cfg->limit < test.n) test.n = cfg->limit;
    const int D = test.rows * test.cols;

    section_model(&r, &c, meta);
    if (section_curves(&r, &c, meta) < 0) goto out;

    /* ---- test metrics -------------------------------------------------- */
    pred = dg_xmalloc((size_t)test.n);
    probs = dg_xmalloc((size_t)test.n * 10 * sizeof(float));
    double loss, t_pred = now_seconds();
    classifier_predict_dataset(&c, &test, pred, probs, &loss);
    t_pred = now_seconds() - t_pred;
    Metrics mt;
    metrics_compute(&mt, test.labels, pred, test.n);
    metrics_set_top_k(&mt, probs, test.labels, test.n, 3);
    n_mis = metrics_misclassified(test.labels, pred, probs, test.n, &mis);
    progress(&r, "evaluated %d test images: accuracy %.4f, loss %.4f (%.1fs)", test.n, mt.accuracy, loss, t_pred);
    {
        char *list = misclassified_to_json(mis, n_mis);
        cJSON *extra = cJSON_CreateObject();
        cJSON_AddNumberToObject(extra, "loss", loss);
        cJSON_AddStringToObject(extra, "model", c.name);
        cJSON_AddStringToObject(extra, "data", "test");
        cJSON_AddNumberToObject(extra, "n_misclassified", n_mis);
        cJSON_AddItemToObject(extra, "misclassified", cJSON_Parse(list));
        char *extra_s = cJSON_PrintUnformatted(extra);
        char *js = metrics_to_json(&mt, extra_s);
        base_path(&r, "metrics.json", base, sizeof base);
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
        if (!ok) goto out;
    }
    FILE *f = r.body;
    fprintf(f, "<h2 id=\"metrics\">Test metrics</h2>\n<p>%d test images from <code>", test.n);
    esc(f, cfg->data);
    fprintf(f, "</code>%s: <b>accuracy %.4f</b> (%d errors), loss %.4f; top-2 %.4f, top-3 %.4f. "
               "All numbers also in <a href=\"metrics.json\">metrics.json</a>.</p>\n",
            same_file ? " (the same file as the training data)" : "", mt.accuracy, n_mis, loss, mt.top_k_acc[1],
            mt.top_k_acc[2]);
    fprintf(f, "<table><tr><th></th><th>precision</th><th>recall</th><th>f1-score</th><th>support</th></tr>\n");
    for (int k = 0; k < 10; k++)
        if (mt.present[k])
            fprintf(f, "<tr><th>%d</th><td>%.4f</td><td>%.4f</td><td>%.4f</td><td>%d</td></tr>\n", k,
                    mt.precision[k], mt.recall[k], mt.f1[k], mt.support[k]);
    fprintf(f, "<tr><th>accuracy</th><td></td><td></td><td>%.4f</td><td>%d</td></tr>\n", mt.accuracy, mt.n);
    fprintf(f, "<tr><th>macro avg</th><td>%.4f</td><td>%.4f</td><td>%.4f</td><td>%d</td></tr>\n", mt.macro_p,
            mt.macro_r, mt.macro_f1, mt.n);
    fprintf(f, "<tr><th>weighted avg</th><td>%.4f</td><td>%.4f</td><td>%.4f</td><td>%d</td></tr></table>\n",
            mt.weighted_p, mt.weighted_r, mt.weighted_f1, mt.n);
    base_path(&r, "confusion", base, sizeof base);
    if (fig_confusion(base, &mt, 0, cfg->svg) < 0) goto out;
    html_figure(&r, "confusion", "confusion matrix", "Confusion matrix: rows are the true digit, columns the "
                                                     "prediction; off-diagonal counts (errors) in red.");
    base_path(&r, "confusion_normalized", base, sizeof base);
    if (fig_confusion(base, &mt, 1, cfg->svg) < 0) goto out;
    html_figure(&r, "confusion_normalized", "normalised confusion matrix",
                "The same, each row as a percentage of its true digit (the diagonal is the recall).");
    base_path(&r, "per_class", base, sizeof base);
    if (fig_per_class(base, &mt, cfg->svg) < 0) goto out;
    html_figure(&r, "per_class", "per-class precision, recall and F1", "Per-class precision, recall and F1.");
    progress(&r, "confusion matrices, per-class bars");

    /* ---- mistakes -------------------------------------------------------- */
    fprintf(f, "<h2 id=\"errors\">Misclassified test images</h2>\n");
    fprintf(f, "<p>%d of %d misclassified; the most confident mistakes first (confidence = the probability "
               "given to the wrong digit).</p>\n<table><tr><th>index</th><th>true</th><th>predicted</th>"
               "<th>confidence</th></tr>\n",
            n_mis, test.n);
    for (int i = 0; i < n_mis && i < MIS_TABLE_ROWS; i++)
        fprintf(f, "<tr><td>%d</td><td>%d</td><td class=\"bad\">%d</td><td>%.4f</td></tr>\n", mis[i].index,
                mis[i].truth, mis[i].pred, mis[i].confidence);
    fprintf(f, "</table>\n");
    {
        int n = n_mis < cfg->n_mis ? n_mis : cfg->n_mis;
        const uint8_t **imgs = dg_xmalloc((size_t)(n + 1) * sizeof *imgs);
        char **caps = dg_xmalloc((size_t)(n + 1) * sizeof *caps);
        for (int i = 0; i < n; i++) {
            imgs[i] = test.pixels + (size_t)mis[i].index * D;
            caps[i] = dg_xmalloc(48);
            snprintf(caps[i], 48, "%d \xe2\x86\x92 %d (%.2f)", mis[i].truth, mis[i].pred, mis[i].confidence);
        }
        char title[128];
        snprintf(title, sizeof title, "The %d most confident mistakes (true \xe2\x86\x92 predicted, confidence)", n);
        DigitGrid g = {title, imgs, n, test.cols, test.rows, 10, (const char *const *)caps, NULL, "no mistakes"};
        base_path(&r, "misclassified", base, sizeof base);
        int frc = fig_digit_grid(base, &g, cfg->svg);
        for (int i = 0; i < n; i++) free(caps[i]);
        free(caps);
        free(imgs);
        if (frc < 0) goto out;
        html_figure(&r, "misclassified", "misclassified digits", "Misclassified test digits: true \xe2\x86\x92 "
                                                                   "predicted (confidence).");
    }
    {
        /* one pair, seed 002's "9 predicted as 7" view: the requested one or the most frequent */
        int a = cfg->pair_true, b = cfg->pair_pred;
        if (a < 0) {
            int best = 0;
            a = 9, b = 7;
            for (int i = 0; i < 10; i++)
                for (int j = 0; j < 10; j++)
                    if (i != j && mt.confusion[i][j] > best) best = mt.confusion[i][j], a = i, b = j;
        }
        const uint8_t **imgs = dg_xmalloc(PAIR_GRID_MAX * sizeof *imgs);
        char **caps = dg_xmalloc(PAIR_GRID_MAX * sizeof *caps);
        int n = 0;
        for (int i = 0; i < n_mis && n < PAIR_GRID_MAX; i++) {
            if (mis[i].truth != a || mis[i].pred != b) continue;
            imgs[n] = test.pixels + (size_t)mis[i].index * D;
            caps[n] = dg_xmalloc(48);
            snprintf(caps[n], 48, "#%d (%.2f)", mis[i].index, mis[i].confidence);
            n++;
        }
        char title[128], note[64];
        snprintf(title, sizeof title, "%d predicted as %d: %d test image%s", a, b, mt.confusion[a][b],
                 mt.confusion[a][b] == 1 ? "" : "s");
        snprintf(note, sizeof note, "no %d was predicted as %d", a, b);
        DigitGrid g = {title, imgs, n, test.cols, test.rows, 10, (const char *const *)caps, NULL, note};
        base_path(&r, "misclassified_pair", base, sizeof base);
        int frc = fig_digit_grid(base, &g, cfg->svg);
        for (int i = 0; i < n; i++) free(caps[i]);
        free(caps);
        free(imgs);
        if (frc < 0) goto out;
        char cap[160];
        snprintf(cap, sizeof cap, "Every %d predicted as %d (test index, confidence)%s; choose the pair with "
                 "--pair TRUE,PREDICTED.", a, b, cfg->pair_true < 0 ? ", the most frequent confusion" : "");
        html_figure(&r, "misclassified_pair", "one confusion pair", cap);
    }
    progress(&r, "misclassified grids");

    /* ---- data ------------------------------------------------------------- */
    fprintf(f, "<h2 id=\"data\">Data</h2>\n");
    {
        int n = cfg->n_samples < test.n ? cfg->n_samples : test.n;
        int *order = dg_xmalloc((size_t)test.n * sizeof(int));
        for (int i = 0; i < test.n; i++) order[i] = i;
        Rng rng;
        rng_seed(&rng, cfg->seed, "report-samples");
        rng_shuffle(&rng, order, test.n);
        const uint8_t **imgs = dg_xmalloc((size_t)(n + 1) * sizeof *imgs);
        char **caps = dg_xmalloc((size_t)(n + 1) * sizeof *caps);
        int *red = dg_xmalloc((size_t)(n + 1) * sizeof(int));
        for (int i = 0; i < n; i++) {
            int k = order[i];
            imgs[i] = test.pixels + (size_t)k * D;
            caps[i] = dg_xmalloc(48);
            red[i] = pred[k] != test.labels[k];
            if (red[i]) snprintf(caps[i], 48, "%d (pred %d)", test.labels[k], pred[k]);
            else snprintf(caps[i], 48, "%d", test.labels[k]);
        }
        char title[96];
        snprintf(title, sizeof title, "%d random test digits with their labels", n);
        DigitGrid g = {title, imgs, n, test.cols, test.rows, 10, (const char *const *)caps, red, "no images"};
        base_path(&r, "samples", base, sizeof base);
        int frc = fig_digit_grid(base, &g, cfg->svg);
        for (int i = 0; i < n; i++) free(caps[i]);
        free(caps);
        free(imgs);
        free(red);
        free(order);
        if (frc < 0) goto out;
        html_figure(&r, "samples", "sample digits", "Random test digits with their labels (red: the model's "
                                                    "prediction differs).");
    }
    base_path(&r, "labels_train", base, sizeof base);
    if (fig_label_hist(base, train.labels, train.n, same_file ? "Label distribution" : "Label distribution: train",
                       cfg->svg) < 0)
        goto out;
    html_figure(&r, "labels_train", "training label distribution", "Digits in the training set.");
    if (!same_file) {
        base_path(&r, "labels_test", base, sizeof base);
        if (fig_label_hist(base, test.labels, test.n, "Label distribution: test", cfg->svg) < 0) goto out;
        html_figure(&r, "labels_test", "test label distribution", "Digits in the evaluated test images.");
    }
    progress(&r, "samples, label distributions");

    /* ---- PCA ---------------------------------------------------------------- */
    if (pca_fit_pixels(&pca, train.pixels, train.n, D, PIXEL_SCALE, PCA_TSNE_DIMS) < 0) goto out;
    int m95 = pca_components_for(&pca, 0.95);
    fprintf(f, "<h2 id=\"pca\">PCA of the pixels</h2>\n<p>Fitted on the %d training images, pixels scaled to "
               "[0,1]: <b>%d components explain 95%%</b> of the variance; the first 2 explain %.1f%%, the first "
               "%d %.1f%%.</p>\n",
            train.n, m95, 100 * pca_explained(&pca, 2), PCA_TSNE_DIMS, 100 * pca_explained(&pca, PCA_TSNE_DIMS));
    base_path(&r, "pca_variance", base, sizeof base);
    if (fig_pca_variance(base, &pca, PCA_TSNE_DIMS, cfg->svg) < 0) goto out;
    html_figure(&r, "pca_variance", "PCA cumulative explained variance", "Cumulative explained variance.");
    {
        int n = test.n < PCA_SCATTER_MAX ? test.n : PCA_SCATTER_MAX;
        emb = dg_xmalloc((size_t)n * 2 * sizeof(float));
        pca_transform_pixels(&pca, test.pixels, n, PIXEL_SCALE, 2, emb);
        base_path(&r, "pca_scatter", base, sizeof base);
        if (fig_scatter(base, emb, test.labels, n, "Test digits on the first two principal components",
                        "principal component 1", "principal component 2", 1, cfg->svg) < 0)
            goto out;
        free(emb);
        emb = NULL;
        html_figure(&r, "pca_scatter", "PCA scatter", "The first test images projected on the training set's "
                                                      "first two principal components.");
    }
    progress(&r, "PCA: %d components reach 95%%", m95);

    /* ---- t-SNE -------------------------------------------------------------- */
    fprintf(f, "<h2 id=\"tsne\">t-SNE</h2>\n");
    int tn = cfg->tsne_n < test.n ? cfg->tsne_n : test.n;
    if (tn < 10) {
        html_note(&r, "t-SNE skipped (--tsne 0, or fewer than 10 test images).");
    } else {
        TsneConfig tc;
        tsne_config_defaults(&tc);
        fprintf(f, "<p>Barnes-Hut t-SNE of the first %d test images: perplexity %.0f, early exaggeration %.0f for "
                   "%d of %d iterations, PCA initialisation, theta %.1f (scikit-learn's defaults, as in the seed "
                   "notebooks).</p>\n",
                tn, tc.perplexity, tc.early_exaggeration, tc.exaggeration_iters, tc.iters, tc.theta);
        emb = dg_xmalloc((size_t)tn * 2 * sizeof(float));
        struct {
            const char *name, *title, *what;
        } runs[3] = {{"tsne_pixels", "t-SNE of raw pixels (PCA-50)", "raw pixels after PCA to 50 components"},
                     {"tsne_untrained", "t-SNE of an untrained network's penultimate features",
                      "the penultimate-layer features of the same network, untrained (seeded initialisation)"},
                     {"tsne_trained", "t-SNE of the trained network's penultimate features",
                      "the penultimate-layer features of the trained network"}};
        Model untrained = {0};
        int have_net = c.kind != CLASSIFIER_SVM && c.n_models > 0;
        for (int run = 0; run < 3; run++) {
            int d = 0;
            free(feat);
            feat = NULL;
            if (run == 0) {
                d = PCA_TSNE_DIMS;
                feat = dg_xmalloc((size_t)tn * d * sizeof(float));
                pca_transform_pixels(&pca, test.pixels, tn, PIXEL_SCALE, d, feat);
            } else {
                if (!have_net) {
                    if (run == 1) html_note(&r, "This model has no network layers: feature t-SNE skipped.");
                    continue;
                }
                Model *m = &c.models[0];
                if (run == 1) {
                    if (model_build(&untrained, m->spec_text, "untrained copy") < 0) goto out;
                    model_init_params(&untrained, cfg->seed);
                    untrained.norm_mean = m->norm_mean;
                    untrained.norm_std = m->norm_std;
                    model_set_batch(&untrained, m->max_batch, 0, cfg->threads);
                    m = &untrained;
                }
                int li = penultimate_layer(m);
                d = (int)(li >= 0 ? shape_size(m->layers[li].out) : shape_size(m->input_shape));
                feat = dg_xmalloc((size_t)tn * d * sizeof(float));
                forward_features(m, test.pixels, tn, li, feat);
            }
            TsneStats ts;
            if (tsne_run(feat, tn, d, &tc, emb, &ts) < 0) {
                model_free(&untrained);
                goto out;
            }
            base_path(&r, runs[run].name, base, sizeof base);
            if (fig_scatter(base, emb, test.labels, tn, runs[run].title, "t-SNE 1", "t-SNE 2", 0, cfg->svg) < 0) {
                model_free(&untrained);
                goto out;
            }
            char cap[300];
            snprintf(cap, sizeof cap, "Input: %s (%d features). %.1f s, final KL divergence %.3f.", runs[run].what,
                     d, ts.seconds, ts.kl);
            html_figure(&r, runs[run].name, runs[run].title, cap);
            progress(&r, "%s: %d points, %d features, %.1fs, KL %.3f", runs[run].name, tn, d, ts.seconds, ts.kl);
        }
        model_free(&untrained);
    }

    /* ---- activation maps ------------------------------------------------------ */
    fprintf(f, "<h2 id=\"activations\">Activation maps</h2>\n");
    if (c.kind == CLASSIFIER_SVM || c.n_models == 0) {
        html_note(&r, "This model has no convolution layers.");
    } else if (cfg->digit >= test.n) {
        char note[128];
        snprintf(note, sizeof note, "--digit %d is outside the %d evaluated test images.", cfg->digit, test.n);
        html_note(&r, note);
    } else {
        Model *m = &c.models[0];
        const uint8_t *px = test.pixels + (size_t)cfg->digit * D;
        model_keep_outputs(m); /* every conv layer's own output */
        model_load_pixels(m, px, 1);
        model_forward(m, 1, 0);
        int k = cfg->digit, shown = 0;
        fprintf(f, "<p>Every convolution layer's output channels for test image %d (label %d, predicted %d with "
                   "probability %.3f); each map is scaled to its own range (1x1 maps share one). "
                   "Choose the image with --digit.</p>\n",
                k, test.labels[k], pred[k], probs[(size_t)k * 10 + pred[k]]);
        for (int i = 0; i < m->n_layers; i++) {
            const Layer *l = &m->layers[i];
            if (l->type != LAYER_CONV2D) continue;
            char name[48], title[200];
            snprintf(name, sizeof name, "activations_layer%d", l->index);
            snprintf(title, sizeof title, "Layer %d, conv2d %dx%d: %d channels of %dx%d for test image %d (label %d)",
                     l->index, l->kernel, l->kernel, l->out.c, l->out.h, l->out.w, k, test.labels[k]);
            base_path(&r, name, base, sizeof base);
            if (fig_activations(base, l->y, l->out.c, l->out.h, l->out.w, px, test.cols, test.rows, title,
                                cfg->svg) < 0)
                goto out;
            html_figure(&r, name, title, title);
            shown++;
        }
        if (!shown) html_note(&r, "This network has no convolution layers.");
        progress(&r, "activation maps: %d conv layers", shown);
    }

    /* ---- the page ------------------------------------------------------------- */
    if (fclose(r.body) != 0) {
        r.body = NULL;
        dg_set_error("report: out of memory");
        goto out;
    }
    r.body = NULL;
    base_path(&r, "index.html", base, sizeof base);
    {
        AtomicFile af;
        if (atomic_file_open(&af, base) < 0) goto out;
        FILE *o = af.f;
        char when[64];
        time_t now = time(NULL);
        strftime(when, sizeof when, "%Y-%m-%d %H:%M", localtime(&now));
        fprintf(o, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>digits report: ");
        esc(o, c.name);
        fprintf(o, "</title>\n<style>%s</style></head><body>\n<h1>digits report: ", CSS);
        esc(o, c.name);
        fprintf(o, "</h1>\n<p>Model <code>");
        esc(o, cfg->model_path);
        fprintf(o, "</code>, data <code>");
        esc(o, cfg->data);
        fprintf(o, "</code>; written %s in %.0f s by <code>digits report</code>.</p>\n", when, now_seconds() - r.t0);
        fprintf(o, "<nav><a href=\"#model\">model</a><a href=\"#config\">training</a><a href=\"#curves\">curves</a>"
                   "<a href=\"#metrics\">metrics</a><a href=\"#errors\">mistakes</a><a href=\"#data\">data</a>"
                   "<a href=\"#pca\">PCA</a><a href=\"#tsne\">t-SNE</a><a href=\"#activations\">activations</a>"
                   "</nav>\n");
        int ok = fwrite(r.body_buf, 1, r.body_len, o) == r.body_len && fputs("</body></html>\n", o) >= 0;
        if (!ok) {
            atomic_file_abort(&af);
            dg_set_error("%s: write failed", base);
            goto out;
        }
        if (atomic_file_commit(&af) < 0) goto out;
    }
    progress(&r, "wrote %s", base);
    rc = 0;
out:
    if (r.body) fclose(r.body);
    free(r.body_buf);
    cJSON_Delete(meta);
    free(pred);
    free(probs);
    free(feat);
    free(emb);
    free(mis);
    pca_free(&pca);
    dataset_free(&train);
    dataset_free(&test);
    classifier_free(&c);
    return rc;
}
