/* preprocess.c — MNIST-style normalisation of one digit image; see
 * preprocess.h for the steps and why.
 *
 * Left out on purpose: deskewing (MNIST was not deskewed), stroke-width
 * normalisation (neither), and separating several digits or removing specks
 * far from the digit (the bounding box takes all ink: one digit per image).
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

int preprocess_digit(uint8_t *out, const uint8_t *gray, int width, int height, PrepInfo *info) {
    DG_ASSERT(width > 0 && height > 0);
    const size_t n = (size_t)width * height;
    PrepInfo inf = {0};

    /* Polarity and background from the histogram: the median is the
     * background (a digit covers well under half of its image; MNIST: 19 %). */
    size_t hist[256] = {0};
    for (size_t i = 0; i < n; i++) hist[gray[i]]++;
    int median = 0;
    for (size_t acc = 0; median < 255; median++) {
        acc += hist[median];
        if (acc * 2 > n) break;
    }
    inf.inverted = median > 127;
    int darkest = 0, brightest = 255;
    while (!hist[darkest]) darkest++;
    while (!hist[brightest]) brightest--;
    const int bg = inf.inverted ? 255 - median : median;
    const int hi = inf.inverted ? 255 - darkest : brightest;  /* the strongest ink */
    inf.background = bg;
    if (hi - bg < PREP_MIN_CONTRAST)
        return dg_set_error("no digit found: the image is blank, all background (ink contrast %d of 255, "
                            "need %d)", hi - bg, PREP_MIN_CONTRAST);

    /* Ink-bright, background-free, stretched to 0..255, faint noise cleared;
     * and the ink's bounding box. */
    float *ink = malloc(n * sizeof(float));
    if (!ink) return dg_set_error("out of memory preprocessing a %dx%d image", width, height);
    const float gain = 255.0f / (float)(hi - bg);
    int x0 = width, y0 = height, x1 = -1, y1 = -1;
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++) {
            size_t i = (size_t)y * width + x;
            int v = inf.inverted ? 255 - gray[i] : gray[i];
            float s = (float)(v - bg) * gain;
            if (s <= PREP_NOISE_FLOOR) s = 0;
            if (s > 255) s = 255;
            ink[i] = s;
            if (s > 0) {
                if (x < x0) x0 = x;
                if (x > x1) x1 = x;
                if (y < y0) y0 = y;
                if (y > y1) y1 = y;
            }
        }
    /* hi maps to 255 > the floor, so there is a box */
    DG_ASSERT(x1 >= x0 && y1 >= y0);
    const int bw = x1 - x0 + 1, bh = y1 - y0 + 1;
    inf.box_x = x0, inf.box_y = y0, inf.box_w = bw, inf.box_h = bh;

    /* The longer side to PREP_BOX pixels, aspect ratio kept. */
    const int longer = bw > bh ? bw : bh;
    int dw = (int)lround((double)bw * PREP_BOX / longer), dh = (int)lround((double)bh * PREP_BOX / longer);
    if (dw < 1) dw = 1;
    if (dh < 1) dh = 1;
    float *rows = malloc((size_t)bh * dw * sizeof(float));  /* (bh, dw): rows resampled */
    float *small = malloc((size_t)dh * dw * sizeof(float)); /* (dh, dw) */
    if (!rows || !small) {
        free(ink);
        free(rows);
        free(small);
        return dg_set_error("out of memory preprocessing a %dx%d image", width, height);
    }
    for (int y = 0; y < bh; y++)
        resample_line(rows + (size_t)y * dw, 1, dw, ink + (size_t)(y0 + y) * width + x0, 1, bw);
    for (int x = 0; x < dw; x++) resample_line(small + x, dw, dh, rows + x, dw, bh);
    free(ink);
    free(rows);

    /* Thin strokes scaled down average out to gray: bring the brightest
     * back to 255, as MNIST's strokes are. Then the centre of mass. */
    float top = 0;
    for (int i = 0; i < dw * dh; i++) top = small[i] > top ? small[i] : top;
    double mass = 0, mx = 0, my = 0;
    for (int y = 0; y < dh; y++)
        for (int x = 0; x < dw; x++) {
            float v = small[(size_t)y * dw + x] * (255.0f / top);
            small[(size_t)y * dw + x] = v;
            mass += v;
            mx += v * x;
            my += v * y;
        }
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
    if (info) *info = inf;
    return 0;
}
