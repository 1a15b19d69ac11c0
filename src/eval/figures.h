/* figures.h — the pictures of `digits report`, each drawn from plain data
 * (a training log, metrics, images, a PCA, 2-D embeddings, activations) by
 * the primitives of plot.h. Every function writes "<base>.png" (and
 * "<base>.svg" when svg) and returns -1 with a message if cairo fails.
 * The pixel sizes are fixed per figure (FIG_* below) so tests can check them. */
#ifndef DG_FIGURES_H
#define DG_FIGURES_H

#include <stdint.h>

#include "eval/metrics.h"
#include "eval/pca.h"
#include "eval/trainlog.h"

#define FIG_CURVES_W 1100
#define FIG_CURVES_H 470
#define FIG_CONFUSION_W 720
#define FIG_CONFUSION_H 640
#define FIG_PER_CLASS_W 900
#define FIG_PER_CLASS_H 440
#define FIG_HIST_W 720
#define FIG_HIST_H 440
#define FIG_PCA_W 820
#define FIG_PCA_H 480
#define FIG_SCATTER_W 840
#define FIG_SCATTER_H 680
#define FIG_PIXEL_HIST_W 820
#define FIG_PIXEL_HIST_H 440
#define FIG_ZERO_MAP_W 900
#define FIG_ZERO_MAP_H 460

/* Loss and accuracy panels, train vs validation, the best epoch (lowest
 * validation loss) marked, the learning rate on the loss panel's right axis. */
int fig_learning_curves(const char *base, const TrainLog *log, const char *subtitle, int svg);
/* Heat map with counts, or row-normalised (percent of each true class). */
int fig_confusion(const char *base, const Metrics *mt, int normalized, int svg);
/* Grouped precision / recall / F1 bars per class. */
int fig_per_class(const char *base, const Metrics *mt, int svg);

/* A grid of n grayscale images (w x h each) with one caption line under
 * each (red when red[i]); `cols` per row. */
typedef struct {
    const char *title;
    const uint8_t *const *images; /* n pointers to (h, w) pixels */
    int n, w, h, cols;
    const char *const *captions;  /* n strings (may be NULL) */
    const int *red;               /* n flags (may be NULL) */
    const char *empty_note;       /* drawn when n == 0 */
} DigitGrid;
/* Size of the grid picture for n images (for callers and tests). */
void fig_digit_grid_size(int n, int cols, int *w, int *h);
int fig_digit_grid(const char *base, const DigitGrid *g, int svg);

/* Counts per digit as bars, the uniform share as a dashed line. */
int fig_label_hist(const char *base, const uint8_t *labels, int n, const char *title, int svg);
/* Cumulative explained variance against the number of components, with the
 * 95 % point marked (and the first `mark` components, e.g. 50, if > 0). */
int fig_pca_variance(const char *base, const Pca *p, int mark, int svg);
/* Points (n, 2) coloured by digit with a legend; equal scales on both axes.
 * ticks = 0 hides the tick labels (t-SNE coordinates mean nothing).
 * labels NULL (unlabelled data): one colour, no legend. */
int fig_scatter(const char *base, const float *xy, const uint8_t *labels, int n, const char *title,
                const char *xlabel, const char *ylabel, int ticks, int svg);

/* The distribution of pixel values from their histogram (256 counts): the
 * non-zero values in bins of 8 as shares of all pixels; the share of zeros
 * (usually most of them) is written in the title rather than drawn. */
int fig_pixel_hist(const char *base, const uint64_t hist[256], const char *title, int svg);
/* Two (h, w) maps side by side: the mean image (viridis, 0..255) and the
 * positions that are zero in every image (always_zero[i] = 1), in red over
 * the mean image in gray; rows and columns numbered from 0. */
int fig_zero_map(const char *base, const float *mean_image, const uint8_t *always_zero, int w, int h, int svg);

/* The c channels (h, w) of one layer's activations for one image, each
 * min-max normalised through viridis, beside the input image (in_w x in_h). */
void fig_activations_size(int c, int *w, int *h);
int fig_activations(const char *base, const float *maps, int c, int h, int w, const uint8_t *input, int in_w,
                    int in_h, const char *title, int svg);

#endif
