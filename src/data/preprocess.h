/* preprocess.h — any image of one digit (or of a short number) to 28x28
 * MNIST-style inputs, the way LeCun et al. prepared MNIST: the digit's
 * bounding box is scaled so that its longer side is 20 pixels (aspect ratio
 * kept, area averaging: the gray edges are the anti-aliasing), then placed
 * in a 28x28 field so that its centre of mass is at the centre.
 *
 * Before that, what a scan, a drawing or a photo of paper needs and MNIST
 * did not:
 *   1. polarity: a light background is inverted (ink becomes bright);
 *   2. the paper: its brightness is estimated as a field, not one level
 *      (a 20th percentile per cell of a grid, then a morphological opening
 *      of the grid larger than a stroke, interpolated back), so light
 *      falling off across a photo is not taken for ink; in colour, each of
 *      R, G, B has its own field and a pixel's ink is its largest contrast
 *      against the paper in any channel (blue ink on grey or yellow paper
 *      stands out in red);
 *   3. contrast stretch and a noise floor (faint noise cleared);
 *   4. connected components (8-connected): specks, and shadows or borders
 *      that run along the image's edge, are dropped; the rest are grouped
 *      into digits (pieces stacked in one column are one digit) and
 *      digit-sized groups counted, so a caller can warn that the image
 *      holds several digits — or read them all, left to right.
 * `digits predict` and `digits serve` both use it, so a file and an upload
 * give the same answer.
 */
#ifndef DG_PREPROCESS_H
#define DG_PREPROCESS_H

#include <stdint.h>

#define PREP_SIDE 28  /* output side: 28x28, MNIST */
#define PREP_BOX 20   /* the digit's longer side in the output */
#define PREP_MAX_DIGITS 16  /* preprocess_number reads at most this many */

typedef struct {
    int inverted;                     /* 1: light background, the image was inverted */
    int background;                   /* median paper level (after inversion) subtracted, 0..255 */
    int box_x, box_y, box_w, box_h;   /* the (first) digit's bounding box in the source image */
    int n_digits;                     /* digit-sized groups of ink found (1: one digit) */
    int n_dropped;                    /* components dropped: specks, shadows, borders */
} PrepInfo;

/* out (28*28) from gray (height, width), 0..255 of either polarity; info
 * may be NULL. With several digit-sized groups of ink, the largest is read
 * and info->n_digits says how many there were. Returns 0, or -1 with
 * dg_errmsg() "no digit found: ..." when the image is blank (no ink stands
 * out from the background). */
int preprocess_digit(uint8_t *out, const uint8_t *gray, int width, int height, PrepInfo *info);

/* The same from `channels` (1: gray, 3: RGB interleaved) bytes per pixel. */
int preprocess_image(uint8_t *out, const uint8_t *pixels, int channels, int width, int height, PrepInfo *info);

/* Every digit-sized group, left to right: out holds max_digits * 28*28
 * bytes; returns how many were written (1..max_digits; info->n_digits may
 * say more were found), or -1 with dg_errmsg() when the image is blank. */
int preprocess_number(uint8_t *out, int max_digits, const uint8_t *pixels, int channels, int width, int height,
                      PrepInfo *info);

#endif
