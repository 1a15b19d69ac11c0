/* report.h — `digits report`: every picture of a model's evaluation and one
 * self-contained index.html beside them (relative links, inline CSS, no
 * network access):
 *   model summary, training configuration and recorded metrics (from the
 *   model file's metadata); learning curves (from the training log);
 *   accuracy, top-k, classification report, confusion matrices (counts and
 *   row-normalised), per-class bars; the most confident mistakes as a table
 *   and grids (all classes, and one true->predicted pair); sample digits;
 *   label distributions; PCA explained variance and a 2-D PCA scatter;
 *   t-SNE of raw pixels (PCA-50), of an untrained network's penultimate
 *   features and of the trained network's; every conv layer's activation
 *   maps for one test digit; metrics.json (what `digits eval --json` prints).
 *
 * Network-only parts (activations, feature t-SNE) are skipped with a note
 * for model kinds without layers (the SVM baseline).
 *
 * The data-only report (`digits report --eda`, report_write_eda) draws the
 * data set alone, before any model (seed 002's exploratory analysis): the
 * overview of `digits describe`, a sample grid, label distributions (per
 * stratified train/validation split and for a test set), the pixel-value
 * histogram, the mean image of each digit, the always-zero pixels, PCA and
 * a t-SNE of the raw pixels on a subsample — in the same page style.
 */
#ifndef DG_REPORT_H
#define DG_REPORT_H

#include <stdint.h>

typedef struct {
    const char *model_path;
    const char *out_dir;     /* created if missing */
    const char *data;        /* IDX folder or labelled CSV ("data/mnist") */
    const char *split;       /* "test" (NULL: the same) or "val": the model's own validation
                                images (eval/holdout.h); section titles say which */
    const char *log_path;    /* training log CSV; NULL: from the model's metadata or beside the model file */
    int limit;               /* test images to evaluate (0 = all) */
    int tsne_n;              /* points per t-SNE (0 = no t-SNE) */
    int pair_true, pair_pred; /* the pair grid; -1: the most frequent confusion */
    int digit;               /* test image for the activation maps */
    int n_samples, n_mis;    /* sizes of the sample and mistake grids */
    int svg;                 /* SVG beside every PNG */
    int threads;             /* <= 0: all cores */
    uint64_t seed;           /* the untrained network's initialisation, the sample grid */
    int quiet;               /* no progress lines */
    /* the data-only report */
    float val_split;         /* > 0: also the label distributions of a stratified train/validation split */
    const char *test_data;   /* a test set beside the data (NULL: an IDX folder's own test split, if any) */
} ReportConfig;

void report_config_defaults(ReportConfig *c);
/* Writes everything into cfg->out_dir. Returns -1 with a one-line message. */
int report_write(const ReportConfig *cfg);
/* The data-only report of cfg->data (cfg->limit: its first images; tsne_n,
 * n_samples, svg, seed, quiet as above; model_path, log_path, pair and
 * digit unused). Labelled or not. Returns -1 with a one-line message. */
int report_write_eda(const ReportConfig *cfg);

#endif
