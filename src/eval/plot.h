/* plot.h — the drawing primitives of digits' pictures, on cairo: text,
 * axes with "nice" ticks and grid lines, a secondary y axis, lines,
 * markers, scatter, bars, legends, colour maps, grayscale image cells, and
 * writing a figure as PNG (and SVG: cairo draws the same calls there).
 *
 * Coordinates are device units (pixels of the PNG); an Axes maps data
 * coordinates into its rectangle. Fonts come from cairo's toy text API
 * through fontconfig ("DejaVu Sans", Debian's fonts-dejavu-core).
 *
 * Leaves out on purpose: layout engines, log axes, anti-collision of labels —
 * each figure (figures.c) places its parts itself.
 */
#ifndef DG_PLOT_H
#define DG_PLOT_H

#include <cairo/cairo.h>
#include <stdint.h>

typedef struct {
    double r, g, b;
} Rgb;

/* matplotlib's tab10, the colour of digit d is plot_tab10[d] */
extern const Rgb plot_tab10[10];
#define PLOT_BLACK ((Rgb){0.15, 0.15, 0.15})
#define PLOT_GRAY ((Rgb){0.55, 0.55, 0.55})
#define PLOT_RED ((Rgb){0.80, 0.10, 0.10})

/* Colour maps, t in [0,1] (clamped). */
Rgb plot_viridis(double t);
Rgb plot_blues(double t);

/* A figure is a function drawing on any cairo context of w x h units. */
typedef void (*FigureFn)(cairo_t *cr, int w, int h, const void *ctx);
/* Draws fn on a white background into "<base>.png" and, if svg, "<base>.svg".
 * -1 with "<file>: cairo: <reason>" on failure. */
int figure_write(const char *base, int w, int h, FigureFn fn, const void *ctx, int svg);

/* ---- text -------------------------------------------------------------------
 * (x, y) is the anchor; ha/va place it: ha 0 left, 0.5 centre, 1 right;
 * va 0 top, 0.5 middle, 1 baseline-bottom. angle in degrees (90: bottom-to-top). */
void plot_text(cairo_t *cr, double x, double y, const char *s, double size, double ha, double va, int bold,
               double angle, Rgb col);
double plot_text_width(cairo_t *cr, const char *s, double size, int bold);

/* ---- axes ------------------------------------------------------------------- */
typedef struct {
    cairo_t *cr;
    double x, y, w, h;      /* plot rectangle, device units */
    double x0, x1, y0, y1;  /* data range shown */
} Axes;

void axes_init(Axes *ax, cairo_t *cr, double x, double y, double w, double h, double x0, double x1, double y0,
               double y1);
double axes_px(const Axes *ax, double x);
double axes_py(const Axes *ax, double y);

/* Axis decorations. xticks/yticks: rough number of ticks (0 = none);
 * integer_x: ticks on whole numbers only (epochs, digits). Draws grid, frame,
 * tick labels, axis labels and the title above. */
typedef struct {
    const char *title, *xlabel, *ylabel;
    int xticks, yticks;
    int integer_x;
    int grid;
} AxesStyle;
void axes_draw(const Axes *ax, const AxesStyle *st);
/* Tick labels and label of a secondary y axis on the right for [y0, y1]. */
void axes_draw_right(const Axes *ax, double y0, double y1, int yticks, const char *label, Rgb col);

/* "Nice" tick step (1, 2 or 5 times a power of ten) for about `target`
 * ticks over [lo, hi]; *first is the first multiple of the step >= lo. */
double plot_nice_step(double lo, double hi, int target, double *first);
/* A range padded to nice bounds around [lo, hi] (at least a small span). */
void plot_nice_range(double *lo, double *hi, int target);

/* ---- marks (data coordinates of ax; clipped to its rectangle) ------------ */
/* Polyline through the finite points (NaN breaks the line). */
void plot_line(const Axes *ax, const double *x, const double *y, int n, Rgb col, double width, int dashed);
void plot_markers(const Axes *ax, const double *x, const double *y, int n, Rgb col, double radius);
/* Points (n, 2) coloured by label (tab10), drawn in a seeded shuffled order so
 * no class sits on top of all the others. */
void plot_scatter(const Axes *ax, const float *xy, const uint8_t *labels, int n, double radius, double alpha);
/* Bar from y=base to y=v centred at x, width in data units. */
void plot_bar(const Axes *ax, double x, double width, double base, double v, Rgb col);

/* ---- legend -------------------------------------------------------------------
 * Entries drawn from (x, y) downwards in a framed box; kind per entry:
 * 'l' line, 'd' dashed line, 'o' marker, 's' filled square. Returns the box height. */
double plot_legend(cairo_t *cr, double x, double y, const char *const *names, const Rgb *cols, const char *kinds,
                   int n, double size);
/* The same entries in one unframed row centred on cx. */
void plot_legend_row(cairo_t *cr, double cx, double y, const char *const *names, const Rgb *cols, const char *kinds,
                     int n, double size);

/* ---- images -------------------------------------------------------------------
 * A grayscale image (h, w) of uint8 drawn into the rectangle (x, y, size_w,
 * size_h) with nearest-neighbour scaling; invert: ink dark on white. */
void plot_gray_image(cairo_t *cr, const uint8_t *px, int w, int h, double x, double y, double size_w, double size_h,
                     int invert);
/* A float map (h, w) through viridis over [lo, hi]; lo >= hi: the map's own
 * minimum and maximum. */
void plot_float_map(cairo_t *cr, const float *v, int w, int h, double x, double y, double size_w, double size_h,
                    float lo, float hi);

/* A vertical colour bar for cmap over [lo, hi] (bottom to top), ticks and
 * label on its right. */
void plot_colorbar(cairo_t *cr, double x, double y, double w, double h, Rgb (*cmap)(double), double lo, double hi,
                   int ticks, const char *label);

#endif
