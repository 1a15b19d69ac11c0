/* report_eda.c — `digits report --eda`: the data set's pictures before any
 * model, in the model report's page style; see report.h.
 *
 * report_write_eda reads as its steps: load the data (and a test set), the
 * overview (describe.h's numbers as a table), sample digits, the label
 * distributions (whole set, stratified train/validation split, test set),
 * the pixel values (histogram, mean image per digit, always-zero map), PCA
 * (explained variance, 2-D scatter), t-SNE of the raw pixels, the page.
 *
 * Leaves out on purpose: anything needing a model (that is `digits report
 * --model`), t-SNE on more than a subsample (--tsne N points, seeded draw:
 * Barnes-Hut t-SNE is O(n log n) per iteration, 2000 points take seconds).
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "core/rng.h"
#include "core/util.h"
#include "data/data.h"
#include "data/describe.h"
#include "eval/figures.h"
#include "eval/pca.h"
#include "eval/report.h"
#include "eval/report_page.h"
#include "eval/tsne.h"

#define PIXEL_SCALE (1.0f / 255.0f)
#define PCA_TSNE_DIMS 50      /* raw pixels go through PCA-50 before t-SNE (seed 001) */
#define PCA_SCATTER_MAX 5000  /* points in the 2-D PCA scatter */

typedef struct {
    Rep r;
    const ReportConfig *cfg;
    Dataset data;      /* the data set described (cut to --limit) */
    Dataset test;      /* a test set beside it; n = 0 when none */
    const char *test_name;
    int folder;        /* data is an IDX folder (its train split) */
    DataStats st;
    Pca pca;
    int D;
} EdaReport;

static void eda_free(EdaReport *e) {
    rep_close(&e->r);
    dataset_free(&e->data);
    dataset_free(&e->test);
    describe_free(&e->st);
    pca_free(&e->pca);
}

/* ==== steps ================================================================= */

/* The data (an IDX folder's train split, or a CSV), cut to --limit, and the
 * test set: --test, else the folder's own test split when it has one. */
static int load_data(EdaReport *e) {
    const ReportConfig *cfg = e->cfg;
    e->folder = is_dir(cfg->data);
    if (dataset_load(cfg->data, "train", &e->data) < 0) return -1;
    if (cfg->limit && cfg->limit < e->data.n) e->data.n = cfg->limit;
    e->D = e->data.rows * e->data.cols;
    if (cfg->val_split > 0 && !e->data.labels)
        return dg_set_error("%s: has no labels; --val-split needs a labelled set", cfg->data);
    if (cfg->test_data) {
        if (dataset_load(cfg->test_data, "test", &e->test) < 0) return -1;
        e->test_name = cfg->test_data;
    } else if (e->folder) {
        if (dataset_load(cfg->data, "test", &e->test) < 0) dataset_free(&e->test); /* no test split: fine */
        e->test_name = "the folder's test split";
    }
    if (e->test.n && (e->test.rows != e->data.rows || e->test.cols != e->data.cols))
        return dg_set_error("%s: images are %dx%d, the data's are %dx%d", cfg->test_data ? cfg->test_data : cfg->data,
                            e->test.rows, e->test.cols, e->data.rows, e->data.cols);
    describe_compute(&e->st, &e->data);
    rep_progress(&e->r, "read %d images of %dx%d (%s)", e->data.n, e->data.rows, e->data.cols,
                 e->data.labels ? "labelled" : "unlabelled");
    return 0;
}

/* describe's numbers as a table. */
static void section_overview(EdaReport *e) {
    const DataStats *s = &e->st;
    FILE *f = e->r.body;
    fprintf(f, "<h2 id=\"overview\">Overview</h2>\n<table class=\"kv\">\n");
    fprintf(f, "<tr><th>images</th><td>%d of %dx%d pixels (%s)</td></tr>\n", s->n, s->rows, s->cols,
            e->folder ? "MNIST IDX" : "Kaggle CSV");
    if (s->labelled) {
        if (isfinite(s->balance_ratio))
            fprintf(f, "<tr><th>labels</th><td><b>%s</b>: largest/smallest class %.2f (balanced &le; %.1f, mildly "
                       "imbalanced &le; %.1f)</td></tr>\n",
                    s->balance, s->balance_ratio, DESCRIBE_BALANCED_MAX, DESCRIBE_MILD_MAX);
        else fprintf(f, "<tr><th>labels</th><td><b>%s</b>: at least one digit has no image</td></tr>\n", s->balance);
    } else {
        fprintf(f, "<tr><th>labels</th><td>none (a Kaggle test.csv)</td></tr>\n");
    }
    fprintf(f, "<tr><th>pixels</th><td>mean %.2f, std %.2f on 0..255 (%.4f, %.4f scaled to [0,1]); %.1f%% are 0"
               "</td></tr>\n",
            s->mean, s->std, s->mean / 255, s->std / 255, 100 * s->zero_share);
    fprintf(f, "<tr><th>always zero</th><td>%d of %d pixel positions are 0 in every image; by distance to the "
               "nearest edge:",
            s->n_always_zero, s->rows * s->cols);
    for (int b = 0; b < DESCRIBE_EDGE_BANDS; b++)
        fprintf(f, " %s%d&nbsp;px:&nbsp;%d", b == DESCRIBE_EDGE_BANDS - 1 ? "&ge;" : "", b, s->zero_by_edge[b]);
    fprintf(f, "</td></tr>\n<tr><th>exact duplicates</th><td>%d", s->n_duplicates);
    if (s->labelled && s->n_duplicates)
        fprintf(f, " (%d labelled differently from the first copy)", s->n_dup_conflicts);
    fprintf(f, "</td></tr>\n<tr><th>inverted (bright border)</th><td>%d</td></tr>\n", s->n_inverted);
    fprintf(f, "<tr><th>empty (no pixel above %d)</th><td>%d</td></tr>\n", DESCRIBE_EMPTY_MAX, s->n_empty);
    fprintf(f, "</table>\n<p>The same numbers as text or JSON: <code>digits describe --data ");
    rep_esc(f, e->cfg->data);
    fprintf(f, " [--json]</code>.</p>\n");
}

/* n_samples random digits with their labels (image indices when unlabelled). */
static int section_samples(EdaReport *e) {
    const Dataset *ds = &e->data;
    const ReportConfig *cfg = e->cfg;
    char base[PATH_MAX];
    fprintf(e->r.body, "<h2 id=\"samples\">Sample digits</h2>\n");
    int n = cfg->n_samples < ds->n ? cfg->n_samples : ds->n;
    int *order = dg_xmalloc((size_t)(ds->n + 1) * sizeof(int));
    for (int i = 0; i < ds->n; i++) order[i] = i;
    Rng rng;
    rng_seed(&rng, cfg->seed, "report-samples");
    rng_shuffle(&rng, order, ds->n);
    const uint8_t **imgs = dg_xmalloc((size_t)(n + 1) * sizeof *imgs);
    char **caps = dg_xmalloc((size_t)(n + 1) * sizeof *caps);
    for (int i = 0; i < n; i++) {
        imgs[i] = ds->pixels + (size_t)order[i] * e->D;
        caps[i] = dg_xmalloc(32);
        if (ds->labels) snprintf(caps[i], 32, "%d", ds->labels[order[i]]);
        else snprintf(caps[i], 32, "#%d", order[i]);
    }
    char title[96];
    snprintf(title, sizeof title, ds->labels ? "%d random digits with their labels" : "%d random images (index)", n);
    DigitGrid g = {title, imgs, n, ds->cols, ds->rows, 10, (const char *const *)caps, NULL, "no images"};
    rep_path(&e->r, "samples", base, sizeof base);
    int frc = fig_digit_grid(base, &g, cfg->svg);
    for (int i = 0; i < n; i++) free(caps[i]);
    free(caps);
    free(imgs);
    free(order);
    if (frc < 0) return -1;
    rep_figure(&e->r, "samples", "sample digits",
               ds->labels ? "Random digits with their labels." : "Random images with their index in the file.");
    return 0;
}

/* One row of the label-share table and its histogram. */
static int label_split(EdaReport *e, FILE *table, const char *set, const char *name, const char *title,
                       const char *what, const uint8_t *labels, int n) {
    int count[10] = {0};
    for (int i = 0; i < n; i++) count[labels[i]]++;
    fprintf(table, "<tr><th>%s</th><td>%d</td>", set, n);
    for (int k = 0; k < 10; k++) fprintf(table, "<td>%.2f%%</td>", n ? 100.0 * count[k] / n : 0.0);
    fprintf(table, "</tr>\n");
    char base[PATH_MAX];
    rep_path(&e->r, name, base, sizeof base);
    if (fig_label_hist(base, labels, n, title, e->cfg->svg) < 0) return -1;
    rep_figure(&e->r, name, title, what);
    return 0;
}

/* Label distributions: the whole set, a stratified train/validation split
 * (--val-split, the split `digits train --val-split X --seed N` makes), a
 * labelled test set; their shares side by side in a table. */
static int section_labels(EdaReport *e) {
    const ReportConfig *cfg = e->cfg;
    const Dataset *ds = &e->data;
    FILE *f = e->r.body;
    fprintf(f, "<h2 id=\"labels\">Label distribution</h2>\n");
    if (!ds->labels) {
        rep_note(&e->r, "The data has no labels (a Kaggle test.csv): there is no label distribution to draw.");
        return 0;
    }
    char *rows = NULL;
    size_t rows_len = 0;
    FILE *t = open_memstream(&rows, &rows_len);
    if (!t) return dg_set_error("report: out of memory");
    int rc = label_split(e, t, "all", "labels", "Label distribution", "The whole data set.", ds->labels, ds->n);
    if (rc == 0 && cfg->val_split > 0) {
        int *tr, *va, ntr, nva;
        split_stratified(ds->labels, ds->n, cfg->val_split, cfg->seed, &tr, &ntr, &va, &nva);
        uint8_t *l = dg_xmalloc((size_t)(ds->n + 1));
        for (int i = 0; i < ntr; i++) l[i] = ds->labels[tr[i]];
        char what[160];
        snprintf(what, sizeof what, "Training part of the stratified split (--val-split %g, seed %llu).",
                 cfg->val_split, (unsigned long long)cfg->seed);
        rc = label_split(e, t, "train", "labels_train", "Label distribution: train", what, l, ntr);
        for (int i = 0; i < nva; i++) l[i] = ds->labels[va[i]];
        snprintf(what, sizeof what, "Validation part of the stratified split (--val-split %g, seed %llu).",
                 cfg->val_split, (unsigned long long)cfg->seed);
        if (rc == 0) rc = label_split(e, t, "validation", "labels_val", "Label distribution: validation", what, l, nva);
        free(l);
        free(tr);
        free(va);
    }
    if (rc == 0 && e->test.n && e->test.labels)
        rc = label_split(e, t, "test", "labels_test", "Label distribution: test", "The test set.", e->test.labels,
                         e->test.n);
    fclose(t);
    if (rc == 0) {
        fprintf(f, "<p>Share of each digit per set (a stratified split keeps the shares of the whole set):</p>\n"
                   "<table><tr><th>set</th><th>images</th>");
        for (int k = 0; k < 10; k++) fprintf(f, "<th>%d</th>", k);
        fprintf(f, "</tr>\n%s</table>\n", rows);
        if (e->test.n && !e->test.labels) rep_note(&e->r, "The test set has no labels (a Kaggle test.csv).");
        rep_progress(&e->r, "label distributions");
    }
    free(rows);
    return rc;
}

/* The pixel-value histogram, the mean image of each digit, the mean image
 * and its always-zero positions. */
static int section_pixels(EdaReport *e) {
    const ReportConfig *cfg = e->cfg;
    const DataStats *s = &e->st;
    char base[PATH_MAX];
    fprintf(e->r.body, "<h2 id=\"pixels\">Pixels</h2>\n");
    rep_path(&e->r, "pixel_hist", base, sizeof base);
    if (fig_pixel_hist(base, s->hist, "Pixel values", cfg->svg) < 0) return -1;
    rep_figure(&e->r, "pixel_hist", "pixel-value histogram",
               "Pixel values in bins of 8 (the zeros, most of the pixels, are left out so the rest can be seen).");
    if (s->class_mean_image) {
        const uint8_t *imgs[10];
        char caps[10][48];
        const char *capp[10];
        uint8_t *px = dg_xmalloc(10 * (size_t)e->D);
        for (int k = 0; k < 10; k++) {
            for (int j = 0; j < e->D; j++)
                px[(size_t)k * e->D + j] = (uint8_t)lrintf(s->class_mean_image[(size_t)k * e->D + j]);
            imgs[k] = px + (size_t)k * e->D;
            snprintf(caps[k], sizeof caps[k], "%d (mean %.1f)", k, s->class_mean[k]);
            capp[k] = caps[k];
        }
        DigitGrid g = {"The mean image of each digit", imgs, 10, s->cols, s->rows, 10, capp, NULL, "no images"};
        rep_path(&e->r, "mean_digits", base, sizeof base);
        int frc = fig_digit_grid(base, &g, cfg->svg);
        free(px);
        if (frc < 0) return -1;
        rep_figure(&e->r, "mean_digits", "mean image of each digit",
                   "The pixel-wise mean of every image of each digit, with its mean intensity (0..255).");
    }
    rep_path(&e->r, "zero_pixels", base, sizeof base);
    if (fig_zero_map(base, s->mean_image, s->always_zero, s->cols, s->rows, cfg->svg) < 0) return -1;
    char cap[256];
    snprintf(cap, sizeof cap, "Left: the mean of all %d images. Right: the %d pixel positions that are 0 in every "
             "image (red) — the border of the canvas, which carries no information for a model.", s->n,
             s->n_always_zero);
    rep_figure(&e->r, "zero_pixels", "always-zero pixels", cap);
    rep_progress(&e->r, "pixel histogram, mean images, always-zero map");
    return 0;
}

/* PCA of all the images: explained variance, the first images on the first
 * two components. Keeps the PCA for the t-SNE. */
static int section_pca(EdaReport *e) {
    const ReportConfig *cfg = e->cfg;
    const Dataset *ds = &e->data;
    char base[PATH_MAX];
    FILE *f = e->r.body;
    fprintf(f, "<h2 id=\"pca\">PCA of the pixels</h2>\n");
    if (ds->n < 3) {
        rep_note(&e->r, "PCA skipped: fewer than 3 images.");
        return 0;
    }
    int k = PCA_TSNE_DIMS < e->D ? PCA_TSNE_DIMS : e->D;
    if (pca_fit_pixels(&e->pca, ds->pixels, ds->n, e->D, PIXEL_SCALE, k) < 0) return -1;
    const Pca *pca = &e->pca;
    int m95 = pca_components_for(pca, 0.95);
    fprintf(f, "<p>Fitted on the %d images, pixels scaled to [0,1]: <b>%d components explain 95%%</b> of the "
               "variance (of %d pixels); the first 2 explain %.1f%%, the first %d %.1f%%.</p>\n",
            ds->n, m95, e->D, 100 * pca_explained(pca, 2), k, 100 * pca_explained(pca, k));
    rep_path(&e->r, "pca_variance", base, sizeof base);
    if (fig_pca_variance(base, pca, k, cfg->svg) < 0) return -1;
    rep_figure(&e->r, "pca_variance", "PCA cumulative explained variance", "Cumulative explained variance.");
    int n = ds->n < PCA_SCATTER_MAX ? ds->n : PCA_SCATTER_MAX;
    float *emb = dg_xmalloc((size_t)n * 2 * sizeof(float));
    pca_transform_pixels(pca, ds->pixels, n, PIXEL_SCALE, 2, emb);
    rep_path(&e->r, "pca_scatter", base, sizeof base);
    int frc = fig_scatter(base, emb, ds->labels, n, "Digits on the first two principal components",
                          "principal component 1", "principal component 2", 1, cfg->svg);
    free(emb);
    if (frc < 0) return -1;
    rep_figure(&e->r, "pca_scatter", "PCA scatter", "The first images projected on the first two principal "
                                                    "components.");
    rep_progress(&e->r, "PCA: %d components reach 95%%", m95);
    return 0;
}

/* t-SNE of the raw pixels (PCA-50) of a seeded random subsample. */
static int section_tsne(EdaReport *e) {
    const ReportConfig *cfg = e->cfg;
    const Dataset *ds = &e->data;
    char base[PATH_MAX];
    FILE *f = e->r.body;
    fprintf(f, "<h2 id=\"tsne\">t-SNE</h2>\n");
    int tn = cfg->tsne_n < ds->n ? cfg->tsne_n : ds->n;
    if (tn < 10 || !e->pca.d) {
        rep_note(&e->r, "t-SNE skipped (--tsne 0, or fewer than 10 images).");
        return 0;
    }
    int *order = dg_xmalloc((size_t)ds->n * sizeof(int));
    for (int i = 0; i < ds->n; i++) order[i] = i;
    Rng rng;
    rng_seed(&rng, cfg->seed, "report-tsne");
    rng_shuffle(&rng, order, ds->n);
    uint8_t *px = dg_xmalloc((size_t)tn * e->D), *lab = ds->labels ? dg_xmalloc((size_t)tn) : NULL;
    for (int i = 0; i < tn; i++) {
        memcpy(px + (size_t)i * e->D, ds->pixels + (size_t)order[i] * e->D, (size_t)e->D);
        if (lab) lab[i] = ds->labels[order[i]];
    }
    free(order);
    const int d = e->pca.k;
    float *feat = dg_xmalloc((size_t)tn * d * sizeof(float)), *emb = dg_xmalloc((size_t)tn * 2 * sizeof(float));
    pca_transform_pixels(&e->pca, px, tn, PIXEL_SCALE, d, feat);
    TsneConfig tc;
    tsne_config_defaults(&tc);
    TsneStats ts;
    rep_path(&e->r, "tsne_pixels", base, sizeof base);
    int rc = tsne_run(feat, tn, d, &tc, emb, &ts);
    if (rc == 0)
        rc = fig_scatter(base, emb, lab, tn, "t-SNE of raw pixels (PCA-50)", "t-SNE 1", "t-SNE 2", 0, cfg->svg);
    if (rc == 0) {
        fprintf(f, "<p>Barnes-Hut t-SNE of %d images drawn at random (--tsne N, --seed): perplexity %.0f, early "
                   "exaggeration %.0f for %d of %d iterations, PCA initialisation, theta %.1f (scikit-learn's "
                   "defaults, as in the seed notebooks).</p>\n",
                tn, tc.perplexity, tc.early_exaggeration, tc.exaggeration_iters, tc.iters, tc.theta);
        char cap[200];
        snprintf(cap, sizeof cap, "Input: raw pixels after PCA to %d components. %.1f s, final KL divergence %.3f.", d,
                 ts.seconds, ts.kl);
        rep_figure(&e->r, "tsne_pixels", "t-SNE of raw pixels", cap);
        rep_progress(&e->r, "tsne_pixels: %d points, %.1fs, KL %.3f", tn, ts.seconds, ts.kl);
    }
    free(px);
    free(lab);
    free(feat);
    free(emb);
    return rc;
}

/* index.html: the title, what was described, the section links, the body. */
static int write_page(EdaReport *e) {
    static const RepLink nav[] = {{"overview", "overview"}, {"samples", "samples"}, {"labels", "labels"},
                                  {"pixels", "pixels"},     {"pca", "PCA"},         {"tsne", "t-SNE"},
                                  {NULL, NULL}};
    char *intro = NULL, title[4200];
    size_t len = 0;
    FILE *o = open_memstream(&intro, &len);
    if (!o) return dg_set_error("report: out of memory");
    fprintf(o, "Data <code>");
    rep_esc(o, e->cfg->data);
    fprintf(o, "</code>%s", e->folder ? " (its training split)" : "");
    if (e->test.n) {
        fprintf(o, ", test set: ");
        rep_esc(o, e->test_name);
        fprintf(o, " (%d images)", e->test.n);
    }
    fprintf(o, "; no model");
    fclose(o);
    snprintf(title, sizeof title, "digits data report: %s", e->cfg->data);
    int rc = rep_finish(&e->r, title, intro, "digits report --eda", nav);
    free(intro);
    return rc;
}

int report_write_eda(const ReportConfig *cfg) {
    EdaReport e = {.cfg = cfg};
    int rc = -1;
    if (rep_open(&e.r, cfg) < 0) goto out;
    if (load_data(&e) < 0) goto out;
    section_overview(&e);
    if (section_samples(&e) < 0 || section_labels(&e) < 0 || section_pixels(&e) < 0) goto out;
    if (section_pca(&e) < 0 || section_tsne(&e) < 0) goto out;
    rc = write_page(&e);
out:
    eda_free(&e);
    return rc;
}
