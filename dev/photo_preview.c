/* photo_preview.c — what the preprocessing makes of images: one PNG sheet
 * with, for each image given, its 28x28 input(s) scaled up 4x, side by side
 * (several for --multi). For looking at the photo set, not a test.
 *
 *   cc -O2 -fopenmp -Iinclude -Isrc dev/photo_preview.c build/libdigits.a \
 *      -lcjson -lpng -ljpeg -lz -lm -ldl -lpthread -lmicrohttpd -lcairo -lsvm -o build/photo_preview
 *   build/photo_preview [--multi] sheet.png tests/photos/0*.jpg
 *
 * Left out on purpose: labels and predictions (digits predict prints those).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "digits.h"

#define SCALE 4
#define CELL (PREP_SIDE * SCALE + 4)

int main(int argc, char **argv) {
    int multi = argc > 1 && strcmp(argv[1], "--multi") == 0;
    if (argc < 3 + multi) {
        fprintf(stderr, "usage: photo_preview [--multi] OUT.png IMAGE...\n");
        return 2;
    }
    const char *out = argv[1 + multi];
    int n = argc - 2 - multi, per_row = multi ? 2 : 8, cols = multi ? 3 : 1;
    int W = per_row * cols * CELL, H = ((n + per_row - 1) / per_row) * CELL;
    uint8_t *sheet = calloc((size_t)W * H, 1);
    for (int i = 0; i < n; i++) {
        uint8_t *px, digits[PREP_MAX_DIGITS][PREP_SIDE * PREP_SIDE];
        int w, h, got;
        if (image_read(argv[2 + multi + i], 3, &px, &w, &h) < 0) {
            fprintf(stderr, "%s\n", dg_errmsg());
            continue;
        }
        got = multi ? preprocess_number(digits[0], cols, px, 3, w, h, NULL)
                    : preprocess_image(digits[0], px, 3, w, h, NULL) < 0 ? -1 : 1;
        free(px);
        if (got < 0) {
            fprintf(stderr, "%s: %s\n", argv[2 + multi + i], dg_errmsg());
            continue;
        }
        for (int d = 0; d < got; d++) {
            int x0 = ((i % per_row) * cols + d) * CELL, y0 = (i / per_row) * CELL;
            for (int y = 0; y < PREP_SIDE * SCALE; y++)
                for (int x = 0; x < PREP_SIDE * SCALE; x++)
                    sheet[(size_t)(y0 + y) * W + x0 + x] = digits[d][(y / SCALE) * PREP_SIDE + x / SCALE];
        }
    }
    int rc = image_write_png_gray(out, sheet, W, H);
    if (rc < 0) fprintf(stderr, "%s\n", dg_errmsg());
    free(sheet);
    return rc < 0;
}
