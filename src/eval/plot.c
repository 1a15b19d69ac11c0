/* plot.c — cairo drawing primitives for digits' pictures; see plot.h. */
#include "eval/plot.h"

#include <cairo/cairo-svg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "core/rng.h"

#define FONT "DejaVu Sans"

const Rgb plot_tab10[10] = {
    {0.122, 0.467, 0.706}, {1.000, 0.498, 0.055}, {0.173, 0.627, 0.173}, {0.839, 0.153, 0.157},
    {0.580, 0.404, 0.741}, {0.549, 0.337, 0.294}, {0.890, 0.467, 0.761}, {0.498, 0.498, 0.498},
    {0.737, 0.741, 0.133}, {0.090, 0.745, 0.812},
};

/* ==== colour maps =========================================================== */

static double clamp01(double t) { return t < 0 ? 0 : (t > 1 ? 1 : t); }

/* Piecewise-linear interpolation through n evenly spaced stops. */
static Rgb ramp(const Rgb *stops, int n, double t) {
    t = clamp01(t) * (n - 1);
    int i = (int)t;
    if (i >= n - 1) return stops[n - 1];
    double f = t - i;
    return (Rgb){stops[i].r + f * (stops[i + 1].r - stops[i].r), stops[i].g + f * (stops[i + 1].g - stops[i].g),
                 stops[i].b + f * (stops[i + 1].b - stops[i].b)};
}

Rgb plot_viridis(double t) {
    /* matplotlib's viridis sampled at 9 points */
    static const Rgb v[] = {{0.267, 0.005, 0.329}, {0.282, 0.141, 0.458}, {0.254, 0.265, 0.530},
                            {0.207, 0.372, 0.553}, {0.164, 0.471, 0.558}, {0.128, 0.567, 0.551},
                            {0.135, 0.659, 0.518}, {0.478, 0.821, 0.318}, {0.993, 0.906, 0.144}};
    return ramp(v, 9, t);
}

Rgb plot_blues(double t) {
    /* matplotlib's Blues at 9 points (ColorBrewer) */
    static const Rgb b[] = {{0.969, 0.984, 1.000}, {0.871, 0.922, 0.969}, {0.776, 0.859, 0.937},
                            {0.620, 0.792, 0.882}, {0.420, 0.682, 0.839}, {0.259, 0.573, 0.776},
                            {0.129, 0.443, 0.710}, {0.031, 0.318, 0.612}, {0.031, 0.188, 0.420}};
    return ramp(b, 9, t);
}

static void set_rgb(cairo_t *cr, Rgb c) { cairo_set_source_rgb(cr, c.r, c.g, c.b); }

/* ==== figures =============================================================== */

static void draw_on(cairo_surface_t *surf, int w, int h, FigureFn fn, const void *ctx) {
    cairo_t *cr = cairo_create(surf);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_rectangle(cr, 0, 0, w, h);
    cairo_fill(cr);
    fn(cr, w, h, ctx);
    cairo_destroy(cr);
}

int figure_write(const char *base, int w, int h, FigureFn fn, const void *ctx, int svg) {
    char path[4200];
    snprintf(path, sizeof path, "%s.png", base);
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(s);
        return dg_set_error("%s: cairo: %s", path, cairo_status_to_string(cairo_surface_status(s)));
    }
    draw_on(s, w, h, fn, ctx);
    cairo_status_t st = cairo_surface_write_to_png(s, path);
    cairo_surface_destroy(s);
    if (st != CAIRO_STATUS_SUCCESS) return dg_set_error("%s: cairo: %s", path, cairo_status_to_string(st));
    if (!svg) return 0;
    snprintf(path, sizeof path, "%s.svg", base);
    s = cairo_svg_surface_create(path, w, h);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
        st = cairo_surface_status(s);
        cairo_surface_destroy(s);
        return dg_set_error("%s: cairo: %s", path, cairo_status_to_string(st));
    }
    draw_on(s, w, h, fn, ctx);
    cairo_surface_finish(s);
    st = cairo_surface_status(s);
    cairo_surface_destroy(s);
    if (st != CAIRO_STATUS_SUCCESS) return dg_set_error("%s: cairo: %s", path, cairo_status_to_string(st));
    return 0;
}

/* ==== text ================================================================== */

static void font(cairo_t *cr, double size, int bold) {
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

double plot_text_width(cairo_t *cr, const char *s, double size, int bold) {
    font(cr, size, bold);
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    return e.x_advance;
}

void plot_text(cairo_t *cr, double x, double y, const char *s, double size, double ha, double va, int bold,
               double angle, Rgb col) {
    font(cr, size, bold);
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    cairo_save(cr);
    cairo_translate(cr, x, y);
    cairo_rotate(cr, -angle * M_PI / 180);
    /* vertical placement by DejaVu's cap height (0.73 em), not each string's
     * glyphs, so labels with and without descenders line up */
    double dy = 0.73 * size * (1 - va);
    cairo_move_to(cr, -ha * e.x_advance, dy);
    set_rgb(cr, col);
    cairo_show_text(cr, s);
    cairo_restore(cr);
}

/* ==== axes ================================================================== */

void axes_init(Axes *ax, cairo_t *cr, double x, double y, double w, double h, double x0, double x1, double y0,
               double y1) {
    ax->cr = cr;
    ax->x = x;
    ax->y = y;
    ax->w = w;
    ax->h = h;
    ax->x0 = x0;
    ax->x1 = x1 > x0 ? x1 : x0 + 1;
    ax->y0 = y0;
    ax->y1 = y1 > y0 ? y1 : y0 + 1;
}

double axes_px(const Axes *ax, double x) { return ax->x + (x - ax->x0) / (ax->x1 - ax->x0) * ax->w; }
double axes_py(const Axes *ax, double y) { return ax->y + ax->h - (y - ax->y0) / (ax->y1 - ax->y0) * ax->h; }

double plot_nice_step(double lo, double hi, int target, double *first) {
    double span = hi - lo;
    if (!(span > 0)) span = fabs(hi) > 0 ? fabs(hi) : 1;
    double rough = span / (target > 0 ? target : 5);
    double mag = pow(10, floor(log10(rough)));
    double norm = rough / mag;
    double step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
    if (first) *first = ceil(lo / step - 1e-9) * step;
    return step;
}

void plot_nice_range(double *lo, double *hi, int target) {
    if (!(*hi > *lo)) {
        double pad = fabs(*lo) > 0 ? fabs(*lo) * 0.1 : 0.5;
        *lo -= pad;
        *hi += pad;
    }
    double first, step = plot_nice_step(*lo, *hi, target, &first);
    *lo = floor(*lo / step + 1e-9) * step;
    *hi = ceil(*hi / step - 1e-9) * step;
}

/* A tick label: enough decimals for the step, or scientific notation for tiny steps. */
static void tick_label(char *buf, size_t len, double v, double step) {
    if (fabs(v) < step * 1e-6) v = 0;
    if (step < 1e-3 && v == 0) {
        snprintf(buf, len, "0");
        return;
    }
    if (step < 1e-3) {
        snprintf(buf, len, "%.1e", v);
        /* 1.0e-03 -> 1e-3 */
        char mant[16];
        int ex;
        double m = v / pow(10, floor(log10(fabs(v))));
        ex = (int)floor(log10(fabs(v)));
        if (fabs(m - round(m)) < 0.05) snprintf(mant, sizeof mant, "%.0f", m);
        else snprintf(mant, sizeof mant, "%.1f", m);
        snprintf(buf, len, "%se%d", mant, ex);
        return;
    }
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    snprintf(buf, len, "%.*f", dec, v);
}

void axes_draw(const Axes *ax, const AxesStyle *st) {
    cairo_t *cr = ax->cr;
    const double fs = 12;
    char buf[64];
    cairo_set_line_width(cr, 1);
    /* grid and ticks */
    if (st->yticks > 0) {
        double first, step = plot_nice_step(ax->y0, ax->y1, st->yticks, &first);
        for (double v = first; v <= ax->y1 + step * 1e-6; v += step) {
            double py = round(axes_py(ax, v)) + 0.5;
            if (st->grid) {
                cairo_set_source_rgb(cr, 0.90, 0.90, 0.90);
                cairo_move_to(cr, ax->x, py);
                cairo_line_to(cr, ax->x + ax->w, py);
                cairo_stroke(cr);
            }
            set_rgb(cr, PLOT_BLACK);
            cairo_move_to(cr, ax->x - 4, py);
            cairo_line_to(cr, ax->x, py);
            cairo_stroke(cr);
            tick_label(buf, sizeof buf, v, step);
            plot_text(cr, ax->x - 7, py, buf, fs, 1, 0.5, 0, 0, PLOT_BLACK);
        }
    }
    if (st->xticks > 0) {
        double first, step = plot_nice_step(ax->x0, ax->x1, st->xticks, &first);
        if (st->integer_x && step < 1) {
            step = 1;
            first = ceil(ax->x0 - 1e-9);
        }
        for (double v = first; v <= ax->x1 + step * 1e-6; v += step) {
            double px = round(axes_px(ax, v)) + 0.5;
            if (st->grid) {
                cairo_set_source_rgb(cr, 0.90, 0.90, 0.90);
                cairo_move_to(cr, px, ax->y);
                cairo_line_to(cr, px, ax->y + ax->h);
                cairo_stroke(cr);
            }
            set_rgb(cr, PLOT_BLACK);
            cairo_move_to(cr, px, ax->y + ax->h);
            cairo_line_to(cr, px, ax->y + ax->h + 4);
            cairo_stroke(cr);
            tick_label(buf, sizeof buf, v, step);
            plot_text(cr, px, ax->y + ax->h + 7, buf, fs, 0.5, 0, 0, 0, PLOT_BLACK);
        }
    }
    /* frame */
    set_rgb(cr, PLOT_BLACK);
    cairo_rectangle(cr, round(ax->x) + 0.5, round(ax->y) + 0.5, round(ax->w), round(ax->h));
    cairo_stroke(cr);
    if (st->title) plot_text(cr, ax->x + ax->w / 2, ax->y - 10, st->title, 15, 0.5, 1, 1, 0, PLOT_BLACK);
    if (st->xlabel) plot_text(cr, ax->x + ax->w / 2, ax->y + ax->h + 26, st->xlabel, 13, 0.5, 0, 0, 0, PLOT_BLACK);
    if (st->ylabel) {
        /* left of the widest tick label */
        double wmax = 0;
        if (st->yticks > 0) {
            double first, step = plot_nice_step(ax->y0, ax->y1, st->yticks, &first);
            for (double v = first; v <= ax->y1 + step * 1e-6; v += step) {
                tick_label(buf, sizeof buf, v, step);
                double tw = plot_text_width(cr, buf, fs, 0);
                if (tw > wmax) wmax = tw;
            }
        }
        plot_text(cr, ax->x - 14 - wmax, ax->y + ax->h / 2, st->ylabel, 13, 0.5, 1, 0, 90, PLOT_BLACK);
    }
}

void axes_draw_right(const Axes *ax, double y0, double y1, int yticks, const char *label, Rgb col) {
    cairo_t *cr = ax->cr;
    Axes r = *ax;
    r.y0 = y0;
    r.y1 = y1 > y0 ? y1 : y0 + 1;
    char buf[64];
    double first, step = plot_nice_step(r.y0, r.y1, yticks, &first), wmax = 0;
    cairo_set_line_width(cr, 1);
    for (double v = first; v <= r.y1 + step * 1e-6; v += step) {
        double py = round(axes_py(&r, v)) + 0.5;
        set_rgb(cr, col);
        cairo_move_to(cr, ax->x + ax->w, py);
        cairo_line_to(cr, ax->x + ax->w + 4, py);
        cairo_stroke(cr);
        tick_label(buf, sizeof buf, v, step);
        plot_text(cr, ax->x + ax->w + 7, py, buf, 12, 0, 0.5, 0, 0, col);
        double tw = plot_text_width(cr, buf, 12, 0);
        if (tw > wmax) wmax = tw;
    }
    if (label) plot_text(cr, ax->x + ax->w + 14 + wmax, ax->y + ax->h / 2, label, 13, 0.5, 0, 0, 90, col);
}

/* ==== marks ================================================================= */

static void clip_to(const Axes *ax) {
    cairo_rectangle(ax->cr, ax->x, ax->y, ax->w, ax->h);
    cairo_clip(ax->cr);
}

void plot_line(const Axes *ax, const double *x, const double *y, int n, Rgb col, double width, int dashed) {
    cairo_t *cr = ax->cr;
    cairo_save(cr);
    clip_to(ax);
    set_rgb(cr, col);
    cairo_set_line_width(cr, width);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    if (dashed) {
        double d[] = {6, 4};
        cairo_set_dash(cr, d, 2, 0);
    }
    int pen = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i])) {
            pen = 0;
            continue;
        }
        if (pen) cairo_line_to(cr, axes_px(ax, x[i]), axes_py(ax, y[i]));
        else cairo_move_to(cr, axes_px(ax, x[i]), axes_py(ax, y[i]));
        pen = 1;
    }
    cairo_stroke(cr);
    cairo_restore(cr);
}

void plot_markers(const Axes *ax, const double *x, const double *y, int n, Rgb col, double radius) {
    cairo_t *cr = ax->cr;
    cairo_save(cr);
    clip_to(ax);
    set_rgb(cr, col);
    for (int i = 0; i < n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i])) continue;
        cairo_new_sub_path(cr);
        cairo_arc(cr, axes_px(ax, x[i]), axes_py(ax, y[i]), radius, 0, 2 * M_PI);
    }
    cairo_fill(cr);
    cairo_restore(cr);
}

void plot_scatter(const Axes *ax, const float *xy, const uint8_t *labels, int n, double radius, double alpha) {
    cairo_t *cr = ax->cr;
    int *order = dg_xmalloc((size_t)(n > 0 ? n : 1) * sizeof(int));
    for (int i = 0; i < n; i++) order[i] = i;
    Rng rng;
    rng_seed(&rng, 7, "scatter");
    rng_shuffle(&rng, order, n);
    cairo_save(cr);
    clip_to(ax);
    for (int t = 0; t < n; t++) {
        int i = order[t];
        Rgb c = plot_tab10[labels[i] % 10];
        cairo_set_source_rgba(cr, c.r, c.g, c.b, alpha);
        cairo_arc(cr, axes_px(ax, xy[2 * i]), axes_py(ax, xy[2 * i + 1]), radius, 0, 2 * M_PI);
        cairo_fill(cr);
    }
    cairo_restore(cr);
    free(order);
}

void plot_bar(const Axes *ax, double x, double width, double base, double v, Rgb col) {
    cairo_t *cr = ax->cr;
    cairo_save(cr);
    clip_to(ax);
    double x0 = axes_px(ax, x - width / 2), x1 = axes_px(ax, x + width / 2);
    double y0 = axes_py(ax, base), y1 = axes_py(ax, v);
    set_rgb(cr, col);
    cairo_rectangle(cr, x0, y1 < y0 ? y1 : y0, x1 - x0, fabs(y0 - y1));
    cairo_fill(cr);
    cairo_restore(cr);
}

/* ==== legend ================================================================ */

/* One legend key (line, dashed line, marker or square) centred at (cx, cy). */
static void legend_key(cairo_t *cr, double cx, double cy, double sw, double size, char kind, Rgb col) {
    set_rgb(cr, col);
    switch (kind) {
    case 'o':
        cairo_arc(cr, cx, cy, size * 0.35, 0, 2 * M_PI);
        cairo_fill(cr);
        break;
    case 's':
        cairo_rectangle(cr, cx - size * 0.4, cy - size * 0.4, size * 0.8, size * 0.8);
        cairo_fill(cr);
        break;
    default:
        cairo_save(cr);
        cairo_set_line_width(cr, 2);
        if (kind == 'd') {
            double d[] = {5, 3};
            cairo_set_dash(cr, d, 2, 0);
        }
        cairo_move_to(cr, cx - sw / 2, cy);
        cairo_line_to(cr, cx + sw / 2, cy);
        cairo_stroke(cr);
        cairo_restore(cr);
    }
}

double plot_legend(cairo_t *cr, double x, double y, const char *const *names, const Rgb *cols, const char *kinds,
                   int n, double size) {
    const double row = size * 1.6, sw = 26, pad = 8;
    double wmax = 0;
    for (int i = 0; i < n; i++) {
        double tw = plot_text_width(cr, names[i], size, 0);
        if (tw > wmax) wmax = tw;
    }
    double bw = pad * 2 + sw + 6 + wmax, bh = pad * 2 + row * n - (row - size);
    cairo_set_source_rgba(cr, 1, 1, 1, 0.9);
    cairo_rectangle(cr, x, y, bw, bh);
    cairo_fill(cr);
    cairo_set_source_rgb(cr, 0.75, 0.75, 0.75);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, round(x) + 0.5, round(y) + 0.5, round(bw), round(bh));
    cairo_stroke(cr);
    for (int i = 0; i < n; i++) {
        double cy = y + pad + row * i + size / 2;
        legend_key(cr, x + pad + sw / 2, cy, sw, size, kinds[i], cols[i]);
        plot_text(cr, x + pad + sw + 6, cy, names[i], size, 0, 0.5, 0, 0, PLOT_BLACK);
    }
    return bh;
}

void plot_legend_row(cairo_t *cr, double cx, double y, const char *const *names, const Rgb *cols, const char *kinds,
                     int n, double size) {
    const double sw = 26, gap = 22;
    double total = 0;
    for (int i = 0; i < n; i++) total += sw + 6 + plot_text_width(cr, names[i], size, 0) + (i ? gap : 0);
    double x = cx - total / 2;
    for (int i = 0; i < n; i++) {
        legend_key(cr, x + sw / 2, y, sw, size, kinds[i], cols[i]);
        plot_text(cr, x + sw + 6, y, names[i], size, 0, 0.5, 0, 0, PLOT_BLACK);
        x += sw + 6 + plot_text_width(cr, names[i], size, 0) + gap;
    }
}

/* ==== images ================================================================ */

/* Paint an RGB24 surface (w, h) scaled into the rectangle, nearest neighbour. */
static void paint_scaled(cairo_t *cr, cairo_surface_t *img, int w, int h, double x, double y, double sw, double sh) {
    cairo_save(cr);
    cairo_translate(cr, x, y);
    cairo_scale(cr, sw / w, sh / h);
    cairo_set_source_surface(cr, img, 0, 0);
    cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_NEAREST);
    cairo_rectangle(cr, 0, 0, w, h);
    cairo_fill(cr);
    cairo_restore(cr);
}

static cairo_surface_t *rgb_surface(int w, int h, unsigned char **data, int *stride) {
    cairo_surface_t *img = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    DG_ASSERT(cairo_surface_status(img) == CAIRO_STATUS_SUCCESS);
    cairo_surface_flush(img);
    *data = cairo_image_surface_get_data(img);
    *stride = cairo_image_surface_get_stride(img);
    return img;
}

void plot_gray_image(cairo_t *cr, const uint8_t *px, int w, int h, double x, double y, double size_w, double size_h,
                     int invert) {
    unsigned char *data;
    int stride;
    cairo_surface_t *img = rgb_surface(w, h, &data, &stride);
    for (int r = 0; r < h; r++) {
        uint32_t *row = (uint32_t *)(data + (size_t)r * stride);
        for (int c = 0; c < w; c++) {
            uint32_t v = invert ? 255u - px[(size_t)r * w + c] : px[(size_t)r * w + c];
            row[c] = v << 16 | v << 8 | v;
        }
    }
    cairo_surface_mark_dirty(img);
    paint_scaled(cr, img, w, h, x, y, size_w, size_h);
    cairo_surface_destroy(img);
}

void plot_float_map(cairo_t *cr, const float *v, int w, int h, double x, double y, double size_w, double size_h,
                    float lo, float hi) {
    if (!(lo < hi)) {
        lo = INFINITY;
        hi = -INFINITY;
        for (int i = 0; i < w * h; i++) {
            if (v[i] < lo) lo = v[i];
            if (v[i] > hi) hi = v[i];
        }
    }
    double span = hi > lo ? hi - lo : 1;
    unsigned char *data;
    int stride;
    cairo_surface_t *img = rgb_surface(w, h, &data, &stride);
    for (int r = 0; r < h; r++) {
        uint32_t *row = (uint32_t *)(data + (size_t)r * stride);
        for (int c = 0; c < w; c++) {
            Rgb col = plot_viridis(hi > lo ? (v[(size_t)r * w + c] - lo) / span : 0); /* clamped */
            row[c] = (uint32_t)lround(col.r * 255) << 16 | (uint32_t)lround(col.g * 255) << 8 |
                     (uint32_t)lround(col.b * 255);
        }
    }
    cairo_surface_mark_dirty(img);
    paint_scaled(cr, img, w, h, x, y, size_w, size_h);
    cairo_surface_destroy(img);
}

void plot_colorbar(cairo_t *cr, double x, double y, double w, double h, Rgb (*cmap)(double), double lo, double hi,
                   int ticks, const char *label) {
    const int steps = 128;
    for (int i = 0; i < steps; i++) {
        set_rgb(cr, cmap((i + 0.5) / steps));
        double y0 = y + h - h * (i + 1) / steps;
        cairo_rectangle(cr, x, y0, w, h / steps + 0.6);
        cairo_fill(cr);
    }
    set_rgb(cr, PLOT_BLACK);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, round(x) + 0.5, round(y) + 0.5, round(w), round(h));
    cairo_stroke(cr);
    Axes ax;
    axes_init(&ax, cr, x, y, w, h, 0, 1, lo, hi);
    char buf[64];
    double first, step = plot_nice_step(lo, hi, ticks, &first), wmax = 0;
    for (double v = first; v <= hi + step * 1e-6; v += step) {
        double py = round(axes_py(&ax, v)) + 0.5;
        cairo_move_to(cr, x + w, py);
        cairo_line_to(cr, x + w + 4, py);
        cairo_stroke(cr);
        tick_label(buf, sizeof buf, v, step);
        plot_text(cr, x + w + 7, py, buf, 11, 0, 0.5, 0, 0, PLOT_BLACK);
        double tw = plot_text_width(cr, buf, 11, 0);
        if (tw > wmax) wmax = tw;
    }
    if (label) plot_text(cr, x + w + 14 + wmax, y + h / 2, label, 12, 0.5, 0, 0, 90, PLOT_BLACK);
}
