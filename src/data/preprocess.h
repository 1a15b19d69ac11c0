/* preprocess.h — any grayscale image of one digit to a 28x28 MNIST-style
 * input, the way LeCun et al. prepared MNIST: the digit's bounding box is
 * scaled so that its longer side is 20 pixels (aspect ratio kept, area
 * averaging: the gray edges are the anti-aliasing), then placed in a 28x28
 * field so that its centre of mass is at the centre.
 *
 * Before that, what a photo or a drawing needs and MNIST did not: the
 * polarity is made light-on-dark (a light background is inverted), the
 * background level is subtracted and the contrast stretched, faint noise is
 * cleared. `digits predict` and `digits serve` both use it, so a file and an
 * upload give the same answer.
 */
#ifndef DG_PREPROCESS_H
#define DG_PREPROCESS_H

#include <stdint.h>

#define PREP_SIDE 28  /* output side: 28x28, MNIST */
#define PREP_BOX 20   /* the digit's longer side in the output */

typedef struct {
    int inverted;                     /* 1: light background, the image was inverted */
    int background;                   /* background level (after inversion) subtracted, 0..255 */
    int box_x, box_y, box_w, box_h;   /* the ink's bounding box in the source image */
} PrepInfo;

/* out (28*28) from gray (height, width), 0..255 of either polarity; info
 * may be NULL. Returns 0, or -1 with dg_errmsg() "no digit found: ..." when
 * the image is blank (no ink stands out from the background). */
int preprocess_digit(uint8_t *out, const uint8_t *gray, int width, int height, PrepInfo *info);

#endif
