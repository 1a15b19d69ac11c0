/* figures.c — the report's pictures; see figures.h. Each figure is a small
 * context struct and a draw function handed to figure_write. */
#include "eval/figures.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "eval/plot.h"

static const Rgb C_TRAIN = {0.122, 0.467, 0.706}; /* tab:blue */
static const Rgb C_VAL = {1.000, 0.498, 0.055};   /* tab:orange */
static const Rgb C_LR = {0.173, 0.627, 0.173};    /* tab:green */

static void min_max(const double *v, int n, double *lo, double *hi) {
    for (int i = 0; i < n; i++) {
        if (!isfinite(v[i])) continue;
        if (v[i] < *lo) *lo = v[i];
        if (v[i] > *hi) *hi = v[i];
    }
}

/* ==== learning curves ======================================================= */

typedef struct {
    const TrainLog *log;
    const char *subtitle;
} CurvesCtx;

/* One panel: train and validation series, best epoch, optional LR axis. */
static void curves_panel(cairo_t *cr, const TrainLog *log, double x, double y, double w, double h, int col_train,
                         int col_val, const char *title, const char *ylabel, int accuracy, int with_lr, int best) {
    const double *ep = log->col[TL_EPOCH];
    double lo = INFINITY, hi = -INFINITY;
    min_max(log->col[col_train], log->n, &lo, &hi);
    min_max(log->col[col_val], log->n, &lo, &hi);
    if (!isfinite(lo)) lo = 0, hi = 1;
    if (accuracy) {
        lo -= (hi - lo) * 0.04; /* headroom so the end markers are not cut */
        if (hi > 1) hi = 1;
        plot_nice_range(&lo, &hi, 6);
        if (hi > 1) hi = 1;
        if (lo < 0) lo = 0;
    } else {
        lo = 0;
        hi *= 1.04;
        plot_nice_range(&lo, &hi, 6);
    }
    double x0 = ep[0] - 0.5, x1 = ep[log->n - 1] + 0.5;
    Axes ax;
    axes_init(&ax, cr, x, y, w, h, x0, x1, lo, hi);
    AxesStyle st = {.title = title, .xlabel = "epoch", .ylabel = ylabel, .xticks = 8, .yticks = 6, .integer_x = 1,
                    .grid = 1};
    axes_draw(&ax, &st);
    if (with_lr) {
        double llo = 0, lhi = -INFINITY;
        min_max(log->col[TL_LR], log->n, &llo, &lhi);
        if (!(lhi > 0)) lhi = 1;
        lhi *= 1.1;
        plot_nice_range(&llo, &lhi, 5);
        llo = 0;
        Axes lr = ax;
        lr.y0 = llo;
        lr.y1 = lhi;
        plot_line(&lr, ep, log->col[TL_LR], log->n, C_LR, 1.5, 1);
        axes_draw_right(&ax, llo, lhi, 5, "learning rate", C_LR);
    }
    if (best >= 0) {
        double bx[2] = {ep[best], ep[best]}, by[2] = {lo, hi};
        plot_line(&ax, bx, by, 2, PLOT_GRAY, 1.2, 1);
    }
    plot_line(&ax, ep, log->col[col_train], log->n, C_TRAIN, 2, 0);
    plot_markers(&ax, ep, log->col[col_train], log->n, C_TRAIN, 3);
    plot_line(&ax, ep, log->col[col_val], log->n, C_VAL, 2, 0);
    plot_markers(&ax, ep, log->col[col_val], log->n, C_VAL, 3);
    if (best >= 0 && isfinite(log->col[col_val][best])) {
        /* a ring around the best epoch's validation point */
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        cairo_set_line_width(cr, 1.5);
        cairo_arc(cr, axes_px(&ax, ep[best]), axes_py(&ax, log->col[col_val][best]), 7, 0, 2 * M_PI);
        cairo_stroke(cr);
    }
}

static void draw_curves(cairo_t *cr, int w, int h, const void *vctx) {
    const CurvesCtx *c = vctx;
    const TrainLog *log = c->log;
    int best = trainlog_best(log);
    char title[256];
    snprintf(title, sizeof title, "Learning curves%s%s", c->subtitle ? " — " : "", c->subtitle ? c->subtitle : "");
    plot_text(cr, w / 2.0, 14, title, 17, 0.5, 0, 1, 0, PLOT_BLACK);
    const double py = 75, ph = h - 190, pw = 390;
    curves_panel(cr, log, 85, py, pw, ph, TL_TRAIN_LOSS, TL_VAL_LOSS, "Loss (cross-entropy)", "loss", 0, 1, best);
    curves_panel(cr, log, 85 + pw + 180, py, pw, ph, TL_TRAIN_ACC, TL_VAL_ACC, "Accuracy", "accuracy", 1, 0, best);
    char best_s[96];
    const char *names[4] = {"train", "validation", "learning rate (right axis, loss panel)", best_s};
    Rgb cols[4] = {C_TRAIN, C_VAL, C_LR, PLOT_GRAY};
    if (best >= 0)
        snprintf(best_s, sizeof best_s, "best epoch %d (val loss %.4f, acc %.4f)", (int)log->col[TL_EPOCH][best],
                 log->col[TL_VAL_LOSS][best], log->col[TL_VAL_ACC][best]);
    else
        snprintf(best_s, sizeof best_s, "no validation data logged");
    plot_legend_row(cr, w / 2.0, h - 40, names, cols, best >= 0 ? "lldd" : "lldd", 4, 13);
}

int fig_learning_curves(const char *base, const TrainLog *log, const char *subtitle, int svg) {
    CurvesCtx c = {log, subtitle};
    return figure_write(base, FIG_CURVES_W, FIG_CURVES_H, draw_curves, &c, svg);
}

/* ==== confusion matrix ====================================================== */

typedef struct {
    const Metrics *mt;
    int normalized;
} ConfCtx;

static void draw_confusion(cairo_t *cr, int w, int h, const void *vctx) {
    const ConfCtx *c = vctx;
    const Metrics *mt = c->mt;
    const double x0 = 95, y0 = 75, cell = 46;
    double v[10][10], vmax = 0;
    for (int i = 0; i < 10; i++) {
        int row = 0;
        for (int j = 0; j < 10; j++) row += mt->confusion[i][j];
        for (int j = 0; j < 10; j++) {
            v[i][j] = c->normalized ? (row ? 100.0 * mt->confusion[i][j] / row : 0) : mt->confusion[i][j];
            if (v[i][j] > vmax) vmax = v[i][j];
        }
    }
    if (c->normalized) vmax = 100;
    if (vmax <= 0) vmax = 1;
    char title[160];
    snprintf(title, sizeof title, c->normalized ? "Confusion matrix, %% of each true class (accuracy %.2f%%)"
                                                : "Confusion matrix, counts (accuracy %.2f%%, %d images)",
             100 * mt->accuracy, mt->n);
    plot_text(cr, w / 2.0, 16, title, 16, 0.5, 0, 1, 0, PLOT_BLACK);
    char buf[32];
    for (int i = 0; i < 10; i++)
        for (int j = 0; j < 10; j++) {
            double t = v[i][j] / vmax;
            Rgb col = plot_blues(t);
            cairo_set_source_rgb(cr, col.r, col.g, col.b);
            cairo_rectangle(cr, x0 + j * cell, y0 + i * cell, cell, cell);
            cairo_fill(cr);
            if (mt->confusion[i][j] == 0) continue; /* empty cells stay quiet */
            if (c->normalized) snprintf(buf, sizeof buf, v[i][j] >= 99.95 ? "%.0f" : "%.1f", v[i][j]);
            else snprintf(buf, sizeof buf, "%d", mt->confusion[i][j]);
            Rgb tc = t > 0.5 ? (Rgb){1, 1, 1} : PLOT_BLACK;
            plot_text(cr, x0 + j * cell + cell / 2, y0 + i * cell + cell / 2, buf, i == j ? 12 : 13, 0.5, 0.5,
                      i != j, 0, i != j && t <= 0.5 ? PLOT_RED : tc);
        }
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, x0 + 0.5, y0 + 0.5, 10 * cell, 10 * cell);
    cairo_stroke(cr);
    for (int k = 0; k < 10; k++) {
        snprintf(buf, sizeof buf, "%d", k);
        plot_text(cr, x0 + k * cell + cell / 2, y0 + 10 * cell + 8, buf, 14, 0.5, 0, 0, 0, PLOT_BLACK);
        plot_text(cr, x0 - 10, y0 + k * cell + cell / 2, buf, 14, 1, 0.5, 0, 0, PLOT_BLACK);
    }
    plot_text(cr, x0 + 5 * cell, y0 + 10 * cell + 32, "predicted digit", 14, 0.5, 0, 1, 0, PLOT_BLACK);
    plot_text(cr, x0 - 34, y0 + 5 * cell, "true digit", 14, 0.5, 1, 1, 90, PLOT_BLACK);
    plot_colorbar(cr, x0 + 10 * cell + 25, y0, 18, 10 * cell, plot_blues, 0, vmax, 6,
                  c->normalized ? "% of true class" : "images");
    (void)h;
}

int fig_confusion(const char *base, const Metrics *mt, int normalized, int svg) {
    ConfCtx c = {mt, normalized};
    return figure_write(base, FIG_CONFUSION_W, FIG_CONFUSION_H, draw_confusion, &c, svg);
}

/* ==== per-class bars ======================================================== */

static void draw_per_class(cairo_t *cr, int w, int h, const void *vctx) {
    const Metrics *mt = vctx;
    double lo = 1, hi = 1;
    for (int k = 0; k < 10; k++) {
        if (!mt->present[k]) continue;
        double v[3] = {mt->precision[k], mt->recall[k], mt->f1[k]};
        for (int j = 0; j < 3; j++)
            if (v[j] < lo) lo = v[j];
    }
    /* zoom in on the interesting range, but say so on the axis */
    lo = lo - (1 - lo) * 0.15;
    plot_nice_range(&lo, &hi, 6);
    if (lo < 0) lo = 0;
    hi = 1;
    char title[160], ylabel[64];
    snprintf(title, sizeof title, "Per-class precision, recall and F1 (macro F1 %.4f)", mt->macro_f1);
    snprintf(ylabel, sizeof ylabel, lo > 0 ? "score (axis starts at %g)" : "score", lo);
    Axes ax;
    axes_init(&ax, cr, 90, 60, w - 290, h - 130, -0.6, 9.6, lo, hi);
    AxesStyle st = {.title = title, .xlabel = "digit", .ylabel = ylabel, .xticks = 10, .yticks = 6, .integer_x = 1,
                    .grid = 1};
    axes_draw(&ax, &st);
    static const Rgb cols[3] = {{0.122, 0.467, 0.706}, {1.000, 0.498, 0.055}, {0.173, 0.627, 0.173}};
    for (int k = 0; k < 10; k++) {
        if (!mt->present[k]) continue;
        double v[3] = {mt->precision[k], mt->recall[k], mt->f1[k]};
        for (int j = 0; j < 3; j++) plot_bar(&ax, k + (j - 1) * 0.27, 0.25, lo, v[j], cols[j]);
    }
    const char *names[3] = {"precision", "recall", "F1"};
    plot_legend(cr, w - 180, 70, names, cols, "sss", 3, 13);
}

int fig_per_class(const char *base, const Metrics *mt, int svg) {
    return figure_write(base, FIG_PER_CLASS_W, FIG_PER_CLASS_H, draw_per_class, mt, svg);
}

/* ==== digit grids =========================================================== */

#define GRID_IMG 84     /* 28 px x 3 */
#define GRID_CELL_W 100
#define GRID_CELL_H 108 /* image + caption */
#define GRID_TOP 50

void fig_digit_grid_size(int n, int cols, int *w, int *h) {
    int c = n < cols ? (n > 0 ? n : 1) : cols, rows = n > 0 ? (n + cols - 1) / cols : 1;
    if (c < 6) c = 6; /* room for the title */
    *w = 20 + c * GRID_CELL_W;
    *h = GRID_TOP + rows * GRID_CELL_H + 10;
}

static void draw_grid(cairo_t *cr, int w, int h, const void *vctx) {
    const DigitGrid *g = vctx;
    plot_text(cr, w / 2.0, 14, g->title, 16, 0.5, 0, 1, 0, PLOT_BLACK);
    if (g->n == 0) {
        plot_text(cr, w / 2.0, GRID_TOP + 40, g->empty_note ? g->empty_note : "(none)", 14, 0.5, 0.5, 0, 0,
                  PLOT_GRAY);
        return;
    }
    for (int i = 0; i < g->n; i++) {
        int r = i / g->cols, c = i % g->cols;
        double x = 10 + c * GRID_CELL_W + (GRID_CELL_W - GRID_IMG) / 2.0, y = GRID_TOP + r * GRID_CELL_H;
        plot_gray_image(cr, g->images[i], g->w, g->h, x, y, GRID_IMG, GRID_IMG, 0);
        if (g->captions && g->captions[i])
            plot_text(cr, x + GRID_IMG / 2.0, y + GRID_IMG + 4, g->captions[i], 12, 0.5, 0, g->red && g->red[i], 0,
                      g->red && g->red[i] ? PLOT_RED : PLOT_BLACK);
    }
    (void)h;
}

int fig_digit_grid(const char *base, const DigitGrid *g, int svg) {
    int w, h;
    fig_digit_grid_size(g->n, g->cols, &w, &h);
    return figure_write(base, w, h, draw_grid, g, svg);
}

/* ==== label histogram ======================================================= */

typedef struct {
    const uint8_t *labels;
    int n;
    const char *title;
} HistCtx;

static void draw_hist(cairo_t *cr, int w, int h, const void *vctx) {
    const HistCtx *c = vctx;
    int count[10] = {0}, mx = 0;
    for (int i = 0; i < c->n; i++) count[c->labels[i]]++;
    for (int k = 0; k < 10; k++)
        if (count[k] > mx) mx = count[k];
    double lo = 0, hi = mx * 1.12;
    plot_nice_range(&lo, &hi, 6);
    Axes ax;
    axes_init(&ax, cr, 90, 60, w - 130, h - 130, -0.6, 9.6, 0, hi);
    char title[200];
    snprintf(title, sizeof title, "%s (%d images)", c->title, c->n);
    AxesStyle st = {.title = title, .xlabel = "digit", .ylabel = "images", .xticks = 10, .yticks = 6, .integer_x = 1,
                    .grid = 1};
    axes_draw(&ax, &st);
    char buf[32];
    double ux[2] = {-0.6, 9.6}, uy[2] = {c->n / 10.0, c->n / 10.0};
    plot_line(&ax, ux, uy, 2, PLOT_GRAY, 1.2, 1);
    for (int k = 0; k < 10; k++) {
        plot_bar(&ax, k, 0.7, 0, count[k], plot_tab10[k]);
        snprintf(buf, sizeof buf, "%d", count[k]);
        /* the count inside the bar's top when it fits (clear of the dashed line), else above */
        double top = axes_py(&ax, count[k]), base = axes_py(&ax, 0);
        if (base - top > 24) plot_text(cr, axes_px(&ax, k), top + 5, buf, 11, 0.5, 0, 1, 0, (Rgb){1, 1, 1});
        else plot_text(cr, axes_px(&ax, k), top - 4, buf, 11, 0.5, 1, 0, 0, PLOT_BLACK);
    }
    const char *names[1] = {"uniform (n/10)"};
    Rgb cols[1] = {PLOT_GRAY};
    plot_legend_row(cr, w / 2.0, h - 22, names, cols, "d", 1, 12);
}

int fig_label_hist(const char *base, const uint8_t *labels, int n, const char *title, int svg) {
    HistCtx c = {labels, n, title};
    return figure_write(base, FIG_HIST_W, FIG_HIST_H, draw_hist, &c, svg);
}

/* ==== PCA explained variance ================================================ */

typedef struct {
    const Pca *p;
    int mark;
} PcaCtx;

static void draw_pca(cairo_t *cr, int w, int h, const void *vctx) {
    const PcaCtx *c = vctx;
    const Pca *p = c->p;
    int d = p->d, m95 = pca_components_for(p, 0.95);
    double *x = dg_xmalloc((size_t)d * sizeof(double)), *y = dg_xmalloc((size_t)d * sizeof(double));
    double cum = 0;
    for (int i = 0; i < d; i++) {
        cum += p->variance[i];
        x[i] = i + 1;
        y[i] = p->total_variance > 0 ? cum / p->total_variance : 1;
    }
    Axes ax;
    axes_init(&ax, cr, 90, 60, w - 130, h - 130, 0, d, 0, 1.0);
    char title[160];
    snprintf(title, sizeof title, "PCA: cumulative explained variance (%d features)", d);
    AxesStyle st = {.title = title, .xlabel = "number of components", .ylabel = "explained variance (fraction)",
                    .xticks = 8, .yticks = 5, .integer_x = 1, .grid = 1};
    axes_draw(&ax, &st);
    double hx[2] = {0, d}, hy[2] = {0.95, 0.95};
    plot_line(&ax, hx, hy, 2, PLOT_GRAY, 1, 1);
    double vx[2] = {m95, m95}, vy[2] = {0, 0.95};
    plot_line(&ax, vx, vy, 2, PLOT_RED, 1.2, 1);
    plot_line(&ax, x, y, d, plot_tab10[0], 2.2, 0);
    char buf[96];
    double mx95 = m95, my95 = 0.95;
    plot_markers(&ax, &mx95, &my95, 1, PLOT_RED, 4);
    snprintf(buf, sizeof buf, "%d components explain 95%%", m95);
    plot_text(cr, axes_px(&ax, m95) + 10, axes_py(&ax, 0.95) + 8, buf, 13, 0, 0, 1, 0, PLOT_RED);
    if (c->mark > 0 && c->mark <= d) {
        double mx = c->mark, my = y[c->mark - 1];
        plot_markers(&ax, &mx, &my, 1, PLOT_BLACK, 4);
        snprintf(buf, sizeof buf, "%d components: %.1f%%", c->mark, 100 * my);
        plot_text(cr, axes_px(&ax, mx) + 10, axes_py(&ax, my) + 4, buf, 12, 0, 0, 0, 0, PLOT_BLACK);
    }
    free(x);
    free(y);
    (void)h;
}

int fig_pca_variance(const char *base, const Pca *p, int mark, int svg) {
    PcaCtx c = {p, mark};
    return figure_write(base, FIG_PCA_W, FIG_PCA_H, draw_pca, &c, svg);
}

/* ==== scatter =============================================================== */

typedef struct {
    const float *xy;
    const uint8_t *labels;
    int n;
    const char *title, *xlabel, *ylabel;
    int ticks;
} ScatterCtx;

static void draw_scatter(cairo_t *cr, int w, int h, const void *vctx) {
    const ScatterCtx *c = vctx;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int i = 0; i < c->n; i++) {
        double x = c->xy[2 * i], y = c->xy[2 * i + 1];
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
    }
    if (!(x1 > x0)) x0 -= 1, x1 += 1;
    if (!(y1 > y0)) y0 -= 1, y1 += 1;
    const double pw = w - 230, ph = h - 120;
    /* equal scales: widen the shorter range to the rectangle's aspect */
    double sx = (x1 - x0) / pw, sy = (y1 - y0) / ph, s = (sx > sy ? sx : sy) * 1.05;
    double cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
    Axes ax;
    axes_init(&ax, cr, 80, 60, pw, ph, cx - s * pw / 2, cx + s * pw / 2, cy - s * ph / 2, cy + s * ph / 2);
    char title[200];
    snprintf(title, sizeof title, "%s: %d points", c->title, c->n);
    AxesStyle st = {.title = title, .xlabel = c->xlabel, .ylabel = c->ylabel, .xticks = c->ticks ? 8 : 0,
                    .yticks = c->ticks ? 8 : 0, .grid = c->ticks};
    axes_draw(&ax, &st);
    uint8_t *none = c->labels ? NULL : dg_xcalloc((size_t)(c->n > 0 ? c->n : 1), 1); /* unlabelled: one colour */
    plot_scatter(&ax, c->xy, c->labels ? c->labels : none, c->n, c->n > 3000 ? 2.0 : 2.6, 0.7);
    free(none);
    if (!c->labels) return;
    const char *names[10] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
    plot_text(cr, w - 125, 62, "digit", 13, 0, 0, 1, 0, PLOT_BLACK);
    plot_legend(cr, w - 128, 82, names, plot_tab10, "oooooooooo", 10, 14);
}

int fig_scatter(const char *base, const float *xy, const uint8_t *labels, int n, const char *title,
                const char *xlabel, const char *ylabel, int ticks, int svg) {
    ScatterCtx c = {xy, labels, n, title, xlabel, ylabel, ticks};
    return figure_write(base, FIG_SCATTER_W, FIG_SCATTER_H, draw_scatter, &c, svg);
}

/* ==== pixel values ========================================================== */

#define PIXEL_BIN 8

typedef struct {
    const uint64_t *hist;
    const char *title;
} PixelHistCtx;

static void draw_pixel_hist(cairo_t *cr, int w, int h, const void *vctx) {
    const PixelHistCtx *c = vctx;
    double total = 0, share[256 / PIXEL_BIN] = {0}, mx = 0;
    for (int v = 0; v < 256; v++) total += (double)c->hist[v];
    if (total <= 0) total = 1;
    for (int v = 1; v < 256; v++) share[v / PIXEL_BIN] += 100.0 * (double)c->hist[v] / total;
    for (int b = 0; b < 256 / PIXEL_BIN; b++)
        if (share[b] > mx) mx = share[b];
    double lo = 0, hi = mx > 0 ? mx * 1.1 : 1;
    plot_nice_range(&lo, &hi, 6);
    Axes ax;
    axes_init(&ax, cr, 90, 60, w - 130, h - 130, 0, 256, 0, hi);
    char title[240];
    snprintf(title, sizeof title, "%s: %.1f%% of pixels are 0 (not drawn)", c->title, 100.0 * c->hist[0] / total);
    AxesStyle st = {.title = title, .xlabel = "pixel value (0 = background, 255 = ink)",
                    .ylabel = "share of all pixels (%)", .xticks = 8, .yticks = 6, .integer_x = 1, .grid = 1};
    axes_draw(&ax, &st);
    for (int b = 0; b < 256 / PIXEL_BIN; b++) {
        double x0 = b == 0 ? 1 : b * PIXEL_BIN; /* the first bin starts after the zeros */
        double x1 = (b + 1) * PIXEL_BIN;
        plot_bar(&ax, (x0 + x1) / 2, (x1 - x0) * 0.9, 0, share[b], plot_tab10[0]);
    }
    (void)h;
}

int fig_pixel_hist(const char *base, const uint64_t hist[256], const char *title, int svg) {
    PixelHistCtx c = {hist, title};
    return figure_write(base, FIG_PIXEL_HIST_W, FIG_PIXEL_HIST_H, draw_pixel_hist, &c, svg);
}

typedef struct {
    const float *mean;
    const uint8_t *zero;
    int w, h;
} ZeroMapCtx;

/* Row and column numbers every 4 cells around a map at (x, y) of side s. */
static void map_ticks(cairo_t *cr, double x, double y, double sw, double sh, int w, int h) {
    char buf[16];
    for (int c = 0; c < w; c += 4) {
        snprintf(buf, sizeof buf, "%d", c);
        plot_text(cr, x + (c + 0.5) * sw / w, y + sh + 4, buf, 10, 0.5, 0, 0, 0, PLOT_GRAY);
    }
    for (int r = 0; r < h; r += 4) {
        snprintf(buf, sizeof buf, "%d", r);
        plot_text(cr, x - 4, y + (r + 0.5) * sh / h, buf, 10, 1, 0.5, 0, 0, PLOT_GRAY);
    }
}

static void draw_zero_map(cairo_t *cr, int w, int h, const void *vctx) {
    const ZeroMapCtx *c = vctx;
    const double side = 340, top = 70, left1 = 60, left2 = 500;
    const double sw = side, sh = side * c->h / (c->w > 0 ? c->w : 1);
    int nz = 0;
    for (int i = 0; i < c->w * c->h; i++) nz += c->zero[i];
    plot_text(cr, left1 + sw / 2, top - 26, "Mean image", 15, 0.5, 0, 1, 0, PLOT_BLACK);
    plot_float_map(cr, c->mean, c->w, c->h, left1, top, sw, sh, 0, 255);
    plot_colorbar(cr, left1 + sw + 12, top, 14, sh, plot_viridis, 0, 255, 6, "mean pixel value");
    map_ticks(cr, left1, top, sw, sh, c->w, c->h);
    char title[96];
    snprintf(title, sizeof title, "Always zero: %d of %d pixels (red)", nz, c->w * c->h);
    plot_text(cr, left2 + sw / 2, top - 26, title, 15, 0.5, 0, 1, 0, PLOT_BLACK);
    uint8_t *gray = dg_xmalloc((size_t)c->w * c->h);
    for (int i = 0; i < c->w * c->h; i++) gray[i] = (uint8_t)(c->mean[i] > 255 ? 255 : c->mean[i] + 0.5f);
    plot_gray_image(cr, gray, c->w, c->h, left2, top, sw, sh, 1);
    free(gray);
    cairo_set_source_rgba(cr, PLOT_RED.r, PLOT_RED.g, PLOT_RED.b, 0.85);
    for (int r = 0; r < c->h; r++)
        for (int k = 0; k < c->w; k++)
            if (c->zero[r * c->w + k])
                cairo_rectangle(cr, left2 + k * sw / c->w, top + r * sh / c->h, sw / c->w, sh / c->h);
    cairo_fill(cr);
    cairo_set_source_rgb(cr, 0.6, 0.6, 0.6);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, left2, top, sw, sh);
    cairo_stroke(cr);
    map_ticks(cr, left2, top, sw, sh, c->w, c->h);
    for (int p = 0; p < 2; p++) {
        double x = p ? left2 : left1;
        plot_text(cr, x + sw / 2, top + sh + 22, "column", 12, 0.5, 0, 0, 0, PLOT_BLACK);
        if (!p) plot_text(cr, x - 26, top + sh / 2, "row", 12, 0.5, 1, 0, 90, PLOT_BLACK); /* shared rows */
    }
    (void)w;
    (void)h;
}

int fig_zero_map(const char *base, const float *mean_image, const uint8_t *always_zero, int w, int h, int svg) {
    ZeroMapCtx c = {mean_image, always_zero, w, h};
    return figure_write(base, FIG_ZERO_MAP_W, FIG_ZERO_MAP_H, draw_zero_map, &c, svg);
}

/* ==== activation maps ======================================================= */

#define ACT_MAP 64
#define ACT_GAP 8
#define ACT_LEFT 170 /* the input image column */
#define ACT_TOP 56

static int act_cols(int c) { return c <= 8 ? c : (c <= 32 ? 8 : (c <= 64 ? 8 : 16)); }

void fig_activations_size(int c, int *w, int *h) {
    int cols = act_cols(c), rows = (c + cols - 1) / cols;
    *w = ACT_LEFT + cols * (ACT_MAP + ACT_GAP) + 20;
    if (*w < 700) *w = 700;
    *h = ACT_TOP + rows * (ACT_MAP + ACT_GAP + 12) + 20;
    if (*h < ACT_TOP + 215) *h = ACT_TOP + 215;
}

typedef struct {
    const float *maps;
    int c, mh, mw;
    const uint8_t *input;
    int in_w, in_h;
    const char *title;
} ActCtx;

static void draw_act(cairo_t *cr, int w, int h, const void *vctx) {
    const ActCtx *a = vctx;
    plot_text(cr, w / 2.0, 14, a->title, 15, 0.5, 0, 1, 0, PLOT_BLACK);
    plot_text(cr, 20, ACT_TOP, "input", 12, 0, 0, 1, 0, PLOT_BLACK);
    plot_gray_image(cr, a->input, a->in_w, a->in_h, 20, ACT_TOP + 18, 112, 112, 0);
    /* 1x1 maps have no range of their own: one scale for all channels then */
    const int shared = a->mh * a->mw == 1;
    float lo = 0, hi = 0;
    if (shared) {
        lo = INFINITY, hi = -INFINITY;
        for (int k = 0; k < a->c; k++) {
            if (a->maps[k] < lo) lo = a->maps[k];
            if (a->maps[k] > hi) hi = a->maps[k];
        }
    }
    plot_text(cr, 20, ACT_TOP + 140, shared ? "one scale for" : "each map scaled", 11, 0, 0, 0, 0, PLOT_BLACK);
    plot_text(cr, 20, ACT_TOP + 155, shared ? "all channels" : "to its own range", 11, 0, 0, 0, 0, PLOT_BLACK);
    float ramp[32];
    for (int i = 0; i < 32; i++) ramp[i] = (float)i;
    plot_float_map(cr, ramp, 32, 1, 20, ACT_TOP + 174, 112, 10, 0, 0);
    plot_text(cr, 20, ACT_TOP + 188, "low", 10, 0, 0, 0, 0, PLOT_BLACK);
    plot_text(cr, 132, ACT_TOP + 188, "high", 10, 1, 0, 0, 0, PLOT_BLACK);
    int cols = act_cols(a->c);
    char buf[16];
    for (int k = 0; k < a->c; k++) {
        int r = k / cols, c = k % cols;
        double x = ACT_LEFT + c * (ACT_MAP + ACT_GAP), y = ACT_TOP + r * (ACT_MAP + ACT_GAP + 12);
        snprintf(buf, sizeof buf, "%d", k);
        plot_text(cr, x, y, buf, 9, 0, 0, 0, 0, PLOT_GRAY);
        plot_float_map(cr, a->maps + (size_t)k * a->mh * a->mw, a->mw, a->mh, x, y + 11, ACT_MAP, ACT_MAP, lo, hi);
    }
    (void)h;
}

int fig_activations(const char *base, const float *maps, int c, int h, int w, const uint8_t *input, int in_w,
                    int in_h, const char *title, int svg) {
    ActCtx a = {maps, c, h, w, input, in_w, in_h, title};
    int fw, fh;
    fig_activations_size(c, &fw, &fh);
    return figure_write(base, fw, fh, draw_act, &a, svg);
}
