/* preprocess.c — MNIST-style normalisation of a digit image, from a clean
 * 28x28 drawing to a phone photo of paper; see preprocess.h for the steps
 * and why.
 *
 * Left out on purpose: deskewing (MNIST was not deskewed), stroke-width
 * normalisation (neither), perspective correction of a photo taken at an
 * angle, and splitting digits that touch (two digits joined by ink are one
 * component, read as one digit).
 */
#include "data/preprocess.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"

/* Ink must stand out from the background by this much (0..255) or the
 * image is blank: JPEG noise and paper texture stay below it. */
#define PREP_MIN_CONTRAST 48
/* After the contrast stretch, values at or below this are background noise
 * and cleared (MNIST's background is exactly 0). */
#define PREP_NOISE_FLOOR 24
/* MNIST's mean centre of mass, in pixel-index coordinates (measured on the
 * 10k test set: 13.99, 14.01). */
#define PREP_CENTRE 14.0
/* The paper field: images whose longer side is below FIELD_MIN_SIDE (a
 * 28x28 drawing, MNIST itself) are not photos and get one level, the
 * median; larger ones a grid of FIELD_CELLS cells along the longer side,
 * each cell's FIELD_PERCENTILE-th percentile (paper, unless ink covers 80 %
 * of the cell), then a grey-level opening of radius FIELD_RADIUS cells:
 * ink narrower than 17 cells (35 % of the side) is removed from
 * the field, light gradients and wide shadows stay in it. */
#define FIELD_MIN_SIDE 64
#define FIELD_CELLS 48
#define FIELD_RADIUS 8
#define FIELD_PERCENTILE 20
/* Larger images are first reduced by an integer factor to at most this on
 * the longer side (area averaging): the output is 28x28 anyway. */
#define PREP_WORK_SIDE 1024
/* Components: below SPECK of the largest one's ink, a speck; a component
 * touching the image's edge and spanning FRAME of its width or height is a
 * shadow or a border (unless it is all there is); a group of at least
 * DIGIT_MASS of the largest group's ink and DIGIT_HEIGHT of its height is
 * another digit. */
/* Components are found in the strong ink (above STRONG of 255 after the
 * stretch): shadow edges and paper texture that pass the noise floor do not
 * join them; the weak ink (a stroke's soft edge) is taken back within a few
 * pixels of a kept component. */
#define PREP_STRONG 64
#define SPECK 0.02
#define FRAME 0.8
#define DIGIT_MASS 0.2
#define DIGIT_HEIGHT 0.5
#define MAX_GROUPS 64

/* ---- resampling and centring ------------------------------------------------------- */

/* Box-filter (area-averaging) resampling of one line of n_in samples (every
 * `step`-th float of in) to n_out samples (every `step_out`-th of out): each
 * output is the mean of the input interval it covers, partial pixels
 * weighted by their overlap. Works both ways: scaling up, an output covers
 * a fraction of one or two inputs. */
static void resample_line(float *out, int step_out, int n_out, const float *in, int step, int n_in) {
    const double scale = (double)n_in / n_out;  /* input pixels per output pixel */
    for (int i = 0; i < n_out; i++) {
        double a = i * scale, b = (i + 1) * scale;
        int j0 = (int)a, j1 = (int)ceil(b);
        if (j1 > n_in) j1 = n_in;
        double sum = 0;
        for (int j = j0; j < j1; j++) {
            double lo = a > j ? a : j, hi = b < j + 1 ? b : j + 1;
            sum += (hi - lo) * in[(size_t)j * step];
        }
        out[(size_t)i * step_out] = (float)(sum / scale);
    }
}

/* The digit in crop (bh, bw), ink bright, background 0, to out (28*28):
 * longer side to PREP_BOX pixels, brightest back to 255, centre of mass on
 * the centre. 0, or -1 out of memory. */
static int render_digit(uint8_t *out, const float *crop, int bw, int bh) {
    const int longer = bw > bh ? bw : bh;
    int dw = (int)lround((double)bw * PREP_BOX / longer), dh = (int)lround((double)bh * PREP_BOX / longer);
    if (dw < 1) dw = 1;
    if (dh < 1) dh = 1;
    float *rows = malloc((size_t)bh * dw * sizeof(float));  /* (bh, dw): rows resampled */
    float *small = malloc((size_t)dh * dw * sizeof(float)); /* (dh, dw) */
    if (!rows || !small) {
        free(rows);
        free(small);
        return dg_set_error("out of memory preprocessing a %dx%d crop", bw, bh);
    }
    for (int y = 0; y < bh; y++) resample_line(rows + (size_t)y * dw, 1, dw, crop + (size_t)y * bw, 1, bw);
    for (int x = 0; x < dw; x++) resample_line(small + x, dw, dh, rows + x, dw, bh);
    free(rows);

    /* Thin strokes scaled down average out to gray: bring the brightest
     * back to 255, as MNIST's strokes are. Then the centre of mass. */
    float top = 0;
    for (int i = 0; i < dw * dh; i++) top = small[i] > top ? small[i] : top;
    if (top <= 0) top = 1;
    double mass = 0, mx = 0, my = 0;
    for (int y = 0; y < dh; y++)
        for (int x = 0; x < dw; x++) {
            float v = small[(size_t)y * dw + x] * (255.0f / top);
            small[(size_t)y * dw + x] = v;
            mass += v;
            mx += v * x;
            my += v * y;
        }
    if (mass <= 0) mass = 1, mx = my = 0;
    /* Offset that puts the centre of mass on PREP_CENTRE, clamped so that no
     * ink leaves the field (only a very lopsided digit needs it). */
    int ox = (int)lround(PREP_CENTRE - mx / mass), oy = (int)lround(PREP_CENTRE - my / mass);
    ox = ox < 0 ? 0 : ox > PREP_SIDE - dw ? PREP_SIDE - dw : ox;
    oy = oy < 0 ? 0 : oy > PREP_SIDE - dh ? PREP_SIDE - dh : oy;
    memset(out, 0, PREP_SIDE * PREP_SIDE);
    for (int y = 0; y < dh; y++)
        for (int x = 0; x < dw; x++) {
            float v = small[(size_t)y * dw + x];
            out[(size_t)(oy + y) * PREP_SIDE + ox + x] = (uint8_t)(v >= 255 ? 255 : lrintf(v));
        }
    free(small);
    return 0;
}

/* ---- the paper field and the ink ------------------------------------------------------ */

/* Rec. 601 luma of pixel i. */
static inline int luma_at(const uint8_t *px, int ch, size_t i) {
    if (ch == 1) return px[i];
    const uint8_t *p = px + i * 3;
    return (299 * p[0] + 587 * p[1] + 114 * p[2] + 500) / 1000;
}

/* Value of channel c (-1: the luma) of pixel i, inverted when inv (ink
 * darker than the paper in that channel): ink bright. */
static inline int chan(const uint8_t *px, int ch, size_t i, int c, int inv) {
    int v = c < 0 ? luma_at(px, ch, i) : px[i * ch + c];
    return inv ? 255 - v : v;
}

/* The value below which `pct` percent of a 256-bin histogram of n lies. */
static int hist_percentile(const size_t *hist, size_t n, int pct) {
    size_t acc = 0, want = n * (size_t)pct / 100;
    int v = 0;
    for (; v < 255; v++) {
        acc += hist[v];
        if (acc > want) break;
    }
    return v;
}

/* Separable min (erode) or max (dilate) filter of radius r on a (gy, gx)
 * grid, edges clamped; tmp is scratch of the same size. */
static void grid_morph(float *g, float *tmp, int gx, int gy, int r, int dilate) {
    for (int pass = 0; pass < 2; pass++) {
        const float *src = pass ? tmp : g;
        float *dst = pass ? g : tmp;
        for (int y = 0; y < gy; y++)
            for (int x = 0; x < gx; x++) {
                float best = src[(size_t)y * gx + x];
                for (int d = -r; d <= r; d++) {
                    int xx = pass ? x : x + d, yy = pass ? y + d : y;
                    if (xx < 0 || yy < 0 || xx >= gx || yy >= gy) continue;
                    float v = src[(size_t)yy * gx + xx];
                    best = dilate ? (v > best ? v : best) : (v < best ? v : best);
                }
                dst[(size_t)y * gx + x] = best;
            }
    }
}

/* The paper of channel c as a (gy, gx) grid of `cell`-pixel cells: each
 * cell's percentile, then opened (see FIELD_*). gx = gy = 1 gives the
 * median of the whole image. tmp: scratch of gx*gy floats. */
static void paper_grid(float *grid, float *tmp, const uint8_t *px, int ch, int c, int inv, int w, int h, int cell,
                       int gx, int gy) {
    size_t hist[256];
    for (int cy = 0; cy < gy; cy++)
        for (int cx = 0; cx < gx; cx++) {
            memset(hist, 0, sizeof hist);
            int x0 = cx * cell, y0 = cy * cell;
            int x1 = gx == 1 ? w : x0 + cell < w ? x0 + cell : w, y1 = gy == 1 ? h : y0 + cell < h ? y0 + cell : h;
            for (int y = y0; y < y1; y++)
                for (int x = x0; x < x1; x++) hist[chan(px, ch, (size_t)y * w + x, c, inv)]++;
            size_t n = (size_t)(x1 - x0) * (y1 - y0);
            grid[(size_t)cy * gx + cx] = (float)hist_percentile(hist, n, gx == 1 && gy == 1 ? 50 : FIELD_PERCENTILE);
        }
    if (gx * gy > 1) {
        grid_morph(grid, tmp, gx, gy, FIELD_RADIUS, 0);
        grid_morph(grid, tmp, gx, gy, FIELD_RADIUS, 1);
    }
}

/* Bilinear interpolation weights from pixel positions to cell centres along
 * one axis of n pixels and g cells: i0[k], i1[k] and the weight of i1. */
static void axis_weights(int *i0, int *i1, float *t, int n, int g, int cell) {
    for (int k = 0; k < n; k++) {
        double f = g == 1 ? 0 : (k + 0.5) / cell - 0.5;
        if (f < 0) f = 0;
        if (f > g - 1) f = g - 1;
        i0[k] = (int)f;
        i1[k] = i0[k] + 1 < g ? i0[k] + 1 : i0[k];
        t[k] = (float)(f - i0[k]);
    }
}

static int by_value(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Raises ink (height, width) to how far channel c (-1: luma), in polarity
 * inv, stands above its paper field, wherever that is more. grid: scratch
 * of 2*gx*gy floats; ix..ty: axis_weights of both axes. Returns the median
 * paper level (the field's median cell). */
static int add_channel_ink(float *ink, float *grid, const uint8_t *px, int ch, int c, int inv, int w, int h,
                           int cell, int gx, int gy, const int *ix, const int *ix1, const float *tx,
                           const int *iy0, const int *iy1, const float *ty) {
    paper_grid(grid, grid + (size_t)gx * gy, px, ch, c, inv, w, h, cell, gx, gy);
    for (int y = 0; y < h; y++) {
        const float *r0 = grid + (size_t)iy0[y] * gx, *r1 = grid + (size_t)iy1[y] * gx;
        for (int x = 0; x < w; x++) {
            float top = r0[ix[x]] + (r0[ix1[x]] - r0[ix[x]]) * tx[x];
            float bot = r1[ix[x]] + (r1[ix1[x]] - r1[ix[x]]) * tx[x];
            size_t i = (size_t)y * w + x;
            float d = (float)chan(px, ch, i, c, inv) - (top + (bot - top) * ty[y]);
            if (d > ink[i]) ink[i] = d;
        }
    }
    float *sorted = grid + (size_t)gx * gy;
    memcpy(sorted, grid, (size_t)gx * gy * sizeof(float));
    qsort(sorted, (size_t)gx * gy, sizeof(float), by_value);
    return (int)lrintf(sorted[(size_t)gx * gy / 2]);
}

/* For colour: in which channels the ink is darker than the paper (blue ink
 * on yellow paper is darker in red and green, lighter in blue). The ink is
 * found first by its luma (its strongest 2 %, luma_ink); each channel's
 * mean over those pixels is compared with the channel's median (paper). A
 * faint image keeps the luma's polarity in every channel. */
static void channel_polarity(int *inv, const float *luma_ink, const uint8_t *px, int w, int h, int luma_inv) {
    const size_t n = (size_t)w * h;
    size_t hist[256] = {0};
    for (size_t i = 0; i < n; i++) hist[luma_ink[i] >= 255 ? 255 : luma_ink[i] <= 0 ? 0 : (int)luma_ink[i]]++;
    int t = hist_percentile(hist, n, 98);
    for (int c = 0; c < 3; c++) inv[c] = luma_inv;
    if (t < PREP_MIN_CONTRAST / 2) return;
    for (int c = 0; c < 3; c++) {
        size_t ch_hist[256] = {0}, cnt = 0;
        double sum = 0;
        for (size_t i = 0; i < n; i++) {
            ch_hist[px[3 * i + c]]++;
            if (luma_ink[i] >= t) sum += px[3 * i + c], cnt++;
        }
        if (cnt) inv[c] = sum / (double)cnt < hist_percentile(ch_hist, n, 50);
    }
}

/* Ink of every pixel (height, width): the largest amount by which a
 * channel stands out from its paper field, clamped at 0. Fills
 * inf->inverted, inf->background. Returns the owned ink image, or NULL out
 * of memory. */
static float *ink_image(const uint8_t *px, int ch, int w, int h, PrepInfo *inf) {
    const size_t n = (size_t)w * h;
    size_t hist[256] = {0};
    for (size_t i = 0; i < n; i++) hist[luma_at(px, ch, i)]++;
    /* a digit covers well under half of its image (MNIST: 19 %): the median is paper */
    inf->inverted = hist_percentile(hist, n, 50) > 127;
    const int longer = w > h ? w : h;
    const int cell = longer < FIELD_MIN_SIDE ? longer : (longer + FIELD_CELLS - 1) / FIELD_CELLS;
    const int gx = longer < FIELD_MIN_SIDE ? 1 : (w + cell - 1) / cell;
    const int gy = longer < FIELD_MIN_SIDE ? 1 : (h + cell - 1) / cell;
    float *ink = calloc(n, sizeof(float));
    float *grid = malloc((size_t)gx * gy * 2 * sizeof(float));
    int *ix = malloc((size_t)(w * 2 + h * 2) * sizeof(int));
    float *tx = malloc((size_t)(w + h) * sizeof(float));
    if (!ink || !grid || !ix || !tx) {
        free(ink), free(grid), free(ix), free(tx);
        return NULL;
    }
    int *ix1 = ix + w, *iy0 = ix + 2 * w, *iy1 = iy0 + h;
    float *ty = tx + w;
    axis_weights(ix, ix1, tx, w, gx, cell);
    axis_weights(iy0, iy1, ty, h, gy, cell);
    if (ch == 1) {
        inf->background = add_channel_ink(ink, grid, px, 1, 0, inf->inverted, w, h, cell, gx, gy, ix, ix1, tx, iy0,
                                          iy1, ty);
    } else {
        int inv[3];
        inf->background = add_channel_ink(ink, grid, px, 3, -1, inf->inverted, w, h, cell, gx, gy, ix, ix1, tx,
                                          iy0, iy1, ty);
        channel_polarity(inv, ink, px, w, h, inf->inverted);
        memset(ink, 0, n * sizeof(float));
        for (int c = 0; c < 3; c++)
            add_channel_ink(ink, grid, px, 3, c, inv[c], w, h, cell, gx, gy, ix, ix1, tx, iy0, iy1, ty);
    }
    free(grid), free(ix), free(tx);
    return ink;
}

/* ---- components and digits ----------------------------------------------------------- */

/* Clears bands: runs of strong ink along a row (column) that touch the
 * image's edge and span FRAME of its width (height) — a shadow or the
 * table beyond the paper, which a digit may touch. Returns how many runs. */
static int clear_bands(float *ink, float strong, int w, int h) {
    int runs = 0;
    for (int pass = 0; pass < 2; pass++) {  /* rows, then columns */
        const int len = pass ? h : w, lines = pass ? w : h;
        const size_t step = pass ? (size_t)w : 1, stride = pass ? 1 : (size_t)w;
        for (int l = 0; l < lines; l++) {
            float *line = ink + (size_t)l * stride;
            for (int a = 0; a < len;) {
                if (line[(size_t)a * step] <= strong) {
                    a++;
                    continue;
                }
                int b = a;
                while (b < len && line[(size_t)b * step] > strong) b++;
                if (b - a >= FRAME * len && (a == 0 || b == len)) {
                    for (int k = a; k < b; k++) line[(size_t)k * step] = 0;
                    runs++;
                }
                a = b;
            }
        }
    }
    return runs;
}

typedef struct {
    double mass;             /* sum of stretched ink */
    int x0, y0, x1, y1;      /* bounding box, inclusive */
    int border;              /* touches the image's edge */
    int group;               /* the group (index of its first component), -1: dropped */
} Comp;

/* 8-connected components of ink > strong: labels[i] = component index + 1
 * (0: background or weak ink). Returns the owned component array and
 * *n_comp; NULL with *n_comp = 0 when there is none, -1 out of memory. */
static Comp *find_components(int *labels, const float *ink, float strong, int w, int h, int *n_comp) {
    const size_t n = (size_t)w * h;
    int *stack = malloc(n * sizeof(int));
    Comp *comps = NULL;
    int nc = 0, cap = 0;
    *n_comp = -1;
    if (!stack) return NULL;
    memset(labels, 0, n * sizeof(int));
    for (size_t s = 0; s < n; s++) {
        if (ink[s] <= strong || labels[s]) continue;
        if (nc == cap) {
            cap = cap ? cap * 2 : 64;
            Comp *nb = realloc(comps, (size_t)cap * sizeof(Comp));
            if (!nb) {
                free(comps), free(stack);
                return NULL;
            }
            comps = nb;
        }
        Comp *c = &comps[nc++];
        *c = (Comp){0, w, h, -1, -1, 0, -1};
        size_t top = 0;
        stack[top++] = (int)s;
        labels[s] = nc;
        while (top) {
            size_t i = (size_t)stack[--top];
            int x = (int)(i % w), y = (int)(i / w);
            c->mass += ink[i];
            c->x0 = x < c->x0 ? x : c->x0, c->x1 = x > c->x1 ? x : c->x1;
            c->y0 = y < c->y0 ? y : c->y0, c->y1 = y > c->y1 ? y : c->y1;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int xx = x + dx, yy = y + dy;
                    if (xx < 0 || yy < 0 || xx >= w || yy >= h) continue;
                    size_t j = (size_t)yy * w + xx;
                    if (ink[j] > strong && !labels[j]) {
                        labels[j] = nc;
                        stack[top++] = (int)j;
                    }
                }
        }
        c->border = c->x0 == 0 || c->y0 == 0 || c->x1 == w - 1 || c->y1 == h - 1;
    }
    free(stack);
    *n_comp = nc;
    return comps;
}

typedef struct {
    double mass;
    int x0, y0, x1, y1;
    int rep;  /* the component that names the group */
} Group;

/* Two groups are one digit when they share a column (x-overlap of at least
 * half the narrower) and are close vertically (gap under half the taller):
 * a 5's hat, a 4 drawn in two strokes. */
static int same_digit(const Group *a, const Group *b) {
    int ov = (a->x1 < b->x1 ? a->x1 : b->x1) - (a->x0 > b->x0 ? a->x0 : b->x0) + 1;
    int wa = a->x1 - a->x0 + 1, wb = b->x1 - b->x0 + 1, ha = a->y1 - a->y0 + 1, hb = b->y1 - b->y0 + 1;
    int gap = (a->y0 > b->y1 ? a->y0 - b->y1 : b->y0 > a->y1 ? b->y0 - a->y1 : 0);
    return 2 * ov >= (wa < wb ? wa : wb) && 2 * gap <= (ha > hb ? ha : hb);
}

static int by_x(const void *a, const void *b) {
    const Group *ga = a, *gb = b;
    return (ga->x0 > gb->x0) - (ga->x0 < gb->x0);
}

/* Sorts components into digit groups: frames and specks dropped (group
 * -1), the rest merged by same_digit; the digit-sized groups are written to
 * digits (at most MAX_GROUPS), left to right. Returns how many, and the
 * index in digits of the one with the most ink in *largest. */
static int group_digits(Comp *comps, int nc, int w, int h, Group *digits, int *largest) {
    int any_plain = 0;
    for (int i = 0; i < nc; i++) {
        Comp *c = &comps[i];
        /* a frame: along the edge, or a long thin line (a shadow's edge) */
        const int cw = c->x1 - c->x0 + 1, chh = c->y1 - c->y0 + 1;
        int frame = (cw >= FRAME * w && (c->border || chh < 0.1 * cw)) ||
                    (chh >= FRAME * h && (c->border || cw < 0.1 * chh));
        c->group = frame ? -2 : -1;  /* -2: a frame, kept only when nothing else is there */
        any_plain |= !frame;
    }
    double top = 0;
    for (int i = 0; i < nc; i++)
        if (!any_plain || comps[i].group == -1) top = comps[i].mass > top ? comps[i].mass : top;
    Group g[MAX_GROUPS];
    int ng = 0;
    for (int i = 0; i < nc; i++) {
        Comp *c = &comps[i];
        int candidate = !any_plain || c->group == -1;
        c->group = -1;
        if (!candidate || c->mass < SPECK * top) continue;
        if (ng == MAX_GROUPS) {  /* keep the heaviest: replace the lightest */
            int k = 0;
            for (int j = 1; j < ng; j++) k = g[j].mass < g[k].mass ? j : k;
            if (g[k].mass >= c->mass) continue;
            comps[g[k].rep].group = -1;
            g[k] = g[--ng];
        }
        g[ng++] = (Group){c->mass, c->x0, c->y0, c->x1, c->y1, i};
        c->group = i;
    }
    /* merge until no pair is one digit */
    for (int changed = 1; changed;) {
        changed = 0;
        for (int a = 0; a < ng && !changed; a++)
            for (int b = a + 1; b < ng && !changed; b++) {
                if (!same_digit(&g[a], &g[b])) continue;
                g[a].mass += g[b].mass;
                g[a].x0 = g[b].x0 < g[a].x0 ? g[b].x0 : g[a].x0, g[a].y0 = g[b].y0 < g[a].y0 ? g[b].y0 : g[a].y0;
                g[a].x1 = g[b].x1 > g[a].x1 ? g[b].x1 : g[a].x1, g[a].y1 = g[b].y1 > g[a].y1 ? g[b].y1 : g[a].y1;
                for (int i = 0; i < nc; i++)
                    if (comps[i].group == g[b].rep) comps[i].group = g[a].rep;
                g[b] = g[--ng];
                changed = 1;
            }
    }
    int big = 0;
    for (int k = 1; k < ng; k++) big = g[k].mass > g[big].mass ? k : big;
    const int big_h = g[big].y1 - g[big].y0 + 1;
    const double big_mass = g[big].mass;
    int nd = 0;
    for (int k = 0; k < ng; k++) {
        if (g[k].mass >= DIGIT_MASS * big_mass && g[k].y1 - g[k].y0 + 1 >= DIGIT_HEIGHT * big_h) {
            digits[nd++] = g[k];
        } else {
            for (int i = 0; i < nc; i++)
                if (comps[i].group == g[k].rep) comps[i].group = -1;
        }
    }
    qsort(digits, (size_t)nd, sizeof *digits, by_x);
    *largest = 0;
    for (int k = 1; k < nd; k++) *largest = digits[k].mass > digits[*largest].mass ? k : *largest;
    return nd;
}

/* Whether a pixel within r of (x, y) belongs to group rep. */
static int near_group(const Comp *comps, const int *labels, int w, int h, int x, int y, int r, int rep) {
    for (int yy = y - r > 0 ? y - r : 0; yy <= y + r && yy < h; yy++)
        for (int xx = x - r > 0 ? x - r : 0; xx <= x + r && xx < w; xx++) {
            int l = labels[(size_t)yy * w + xx];
            if (l && comps[l - 1].group == rep) return 1;
        }
    return 0;
}

/* One digit group to out: its components' strong ink, and the weak ink
 * (the strokes' soft edges) within r pixels of it; the rest 0. The box it
 * took goes to *g (grown by the edges). 0 or -1 out of memory. */
static int render_group(uint8_t *out, Group *g, const Comp *comps, const int *labels, const float *ink, int w, int h,
                        int r) {
    const int x0 = g->x0 - r > 0 ? g->x0 - r : 0, y0 = g->y0 - r > 0 ? g->y0 - r : 0;
    const int x1 = g->x1 + r < w - 1 ? g->x1 + r : w - 1, y1 = g->y1 + r < h - 1 ? g->y1 + r : h - 1;
    const int cw = x1 - x0 + 1, chh = y1 - y0 + 1;
    float *crop = malloc((size_t)cw * chh * sizeof(float));
    if (!crop) return dg_set_error("out of memory preprocessing a %dx%d crop", cw, chh);
    int bx0 = cw, by0 = chh, bx1 = -1, by1 = -1;
    for (int y = 0; y < chh; y++)
        for (int x = 0; x < cw; x++) {
            size_t i = (size_t)(y0 + y) * w + x0 + x;
            int l = labels[i];
            int keep = l ? comps[l - 1].group == g->rep
                         : ink[i] > 0 && near_group(comps, labels, w, h, x0 + x, y0 + y, r, g->rep);
            crop[(size_t)y * cw + x] = keep ? ink[i] : 0;
            if (keep) {
                bx0 = x < bx0 ? x : bx0, bx1 = x > bx1 ? x : bx1;
                by0 = y < by0 ? y : by0, by1 = y > by1 ? y : by1;
            }
        }
    DG_ASSERT(bx1 >= bx0 && by1 >= by0);  /* the group's own components are kept */
    /* the tight box, in place: rows move up and left, never onto unread data */
    const int bw = bx1 - bx0 + 1, bh = by1 - by0 + 1;
    for (int y = 0; y < bh; y++) memmove(crop + (size_t)y * bw, crop + (size_t)(by0 + y) * cw + bx0, bw * sizeof(float));
    g->x0 = x0 + bx0, g->y0 = y0 + by0, g->x1 = x0 + bx1, g->y1 = y0 + by1;
    int rc = render_digit(out, crop, bw, bh);
    free(crop);
    return rc;
}

/* ---- the whole -------------------------------------------------------------------------- */

/* A copy of px reduced by an integer factor k (area averaging of k x k
 * blocks, partial blocks at the edge averaged over what they hold). */
static uint8_t *shrink(const uint8_t *px, int ch, int w, int h, int k, int *sw, int *sh) {
    *sw = (w + k - 1) / k, *sh = (h + k - 1) / k;
    uint8_t *out = malloc((size_t)*sw * *sh * ch);
    if (!out) return NULL;
    for (int y = 0; y < *sh; y++)
        for (int x = 0; x < *sw; x++)
            for (int c = 0; c < ch; c++) {
                unsigned sum = 0, cnt = 0;
                for (int yy = y * k; yy < y * k + k && yy < h; yy++)
                    for (int xx = x * k; xx < x * k + k && xx < w; xx++, cnt++) sum += px[((size_t)yy * w + xx) * ch + c];
                out[((size_t)y * *sw + x) * ch + c] = (uint8_t)((sum + cnt / 2) / cnt);
            }
    return out;
}

/* The shared work of the three entry points: ink, stretch, components,
 * digits; then renders up to max_digits of them (left to right, or only the
 * largest when `largest_only`). Returns how many were rendered, or -1. */
static int preprocess_run(uint8_t *out, int max_digits, int largest_only, const uint8_t *pixels, int ch, int width,
                          int height, PrepInfo *info) {
    DG_ASSERT(width > 0 && height > 0 && (ch == 1 || ch == 3) && max_digits >= 1);
    PrepInfo inf = {0};
    const int longer = width > height ? width : height;
    const int k = (longer + PREP_WORK_SIDE - 1) / PREP_WORK_SIDE;
    int w = width, h = height;
    uint8_t *small = NULL;
    if (k > 1) {
        small = shrink(pixels, ch, width, height, k, &w, &h);
        if (!small) return dg_set_error("out of memory preprocessing a %dx%d image", width, height);
        pixels = small;
    }
    const size_t n = (size_t)w * h;
    float *ink = ink_image(pixels, ch, w, h, &inf);
    free(small);
    int *labels = ink ? malloc(n * sizeof(int)) : NULL;
    if (!labels) {
        free(ink);
        return dg_set_error("out of memory preprocessing a %dx%d image", width, height);
    }

    /* Contrast: the strongest ink against the paper; the floor is the
     * stretch's noise floor or, for noisy photos, 3x the median ink (most
     * pixels are paper: their median ink is the noise). */
    float hi = 0;
    size_t hist[256] = {0};
    for (size_t i = 0; i < n; i++) {
        hi = ink[i] > hi ? ink[i] : hi;
        hist[ink[i] >= 255 ? 255 : (int)ink[i]]++;
    }
    int rc = -1;
    if (hi < PREP_MIN_CONTRAST) {
        dg_set_error("no digit found: the image is blank, all background (ink contrast %d of 255, need %d)",
                     (int)hi, PREP_MIN_CONTRAST);
        goto done;
    }
    const float gain = 255.0f / hi, floor3 = 3.0f * (float)hist_percentile(hist, n, 50);
    for (size_t i = 0; i < n; i++) {
        float s = ink[i] * gain;
        ink[i] = s <= PREP_NOISE_FLOOR || ink[i] <= floor3 ? 0 : s > 255 ? 255 : s;
    }

    if (longer >= FIELD_MIN_SIDE) clear_bands(ink, PREP_STRONG, w, h);
    int nc;
    Comp *comps = find_components(labels, ink, PREP_STRONG, w, h, &nc);
    if (!comps && nc < 0) {
        dg_set_error("out of memory preprocessing a %dx%d image", width, height);
        goto done;
    }
    if (nc == 0) {  /* the strongest ink was a band along the edge, or no stronger than the noise */
        free(comps);
        dg_set_error("no digit found: the only ink is noise or shadows along the image's edge");
        goto done;
    }
    Group digits[MAX_GROUPS];
    int largest;
    int nd = group_digits(comps, nc, w, h, digits, &largest);
    DG_ASSERT(nd >= 1);  /* the heaviest component is a digit-sized group of its own */
    inf.n_digits = nd;
    for (int i = 0; i < nc; i++) inf.n_dropped += comps[i].group < 0;
    int first = largest_only ? largest : 0, count = largest_only ? 1 : nd < max_digits ? nd : max_digits;
    rc = count;
    for (int d = 0; d < count && rc > 0; d++)
        if (render_group(out + (size_t)d * PREP_SIDE * PREP_SIDE, &digits[first + d], comps, labels, ink, w, h,
                         2 + longer / k / 128) < 0)
            rc = -1;
    const Group *g = &digits[first];
    inf.box_x = g->x0 * k, inf.box_y = g->y0 * k;
    inf.box_w = (g->x1 - g->x0 + 1) * k, inf.box_h = (g->y1 - g->y0 + 1) * k;
    if (inf.box_x + inf.box_w > width) inf.box_w = width - inf.box_x;
    if (inf.box_y + inf.box_h > height) inf.box_h = height - inf.box_y;
    free(comps);
done:
    free(ink);
    free(labels);
    if (rc >= 0 && info) *info = inf;
    return rc;
}

int preprocess_image(uint8_t *out, const uint8_t *pixels, int channels, int width, int height, PrepInfo *info) {
    return preprocess_run(out, 1, 1, pixels, channels, width, height, info) < 0 ? -1 : 0;
}

int preprocess_digit(uint8_t *out, const uint8_t *gray, int width, int height, PrepInfo *info) {
    return preprocess_image(out, gray, 1, width, height, info);
}

int preprocess_number(uint8_t *out, int max_digits, const uint8_t *pixels, int channels, int width, int height,
                      PrepInfo *info) {
    return preprocess_run(out, max_digits, 0, pixels, channels, width, height, info);
}
