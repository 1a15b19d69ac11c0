/* check_png.c — test helper for tests/e2e/report.sh: decodes a PNG with
 * libpng and checks its size and that it is not blank.
 *
 *   check_png FILE WIDTH HEIGHT    exact size ("any" for either: at least 100)
 *
 * "Not blank": the standard deviation of the gray values is above 8 (a
 * white picture with a few dark lines is ~30; an empty one 0).
 * Prints one line; exit 0 when every check holds, 1 otherwise. */
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIN_STDDEV 8.0
#define MIN_SIDE 100

static int dim_ok(const char *want, unsigned got) {
    if (strcmp(want, "any") == 0) return got >= MIN_SIDE; /* a picture, not a sliver */
    return (unsigned)atoi(want) == got;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: check_png FILE WIDTH|any HEIGHT|any\n");
        return 2;
    }
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, argv[1])) {
        printf("%s: not a readable PNG: %s\n", argv[1], img.message);
        return 1;
    }
    img.format = PNG_FORMAT_GRAY;
    size_t bytes = PNG_IMAGE_SIZE(img);
    unsigned char *px = malloc(bytes);
    if (!px || !png_image_finish_read(&img, NULL, px, 0, NULL)) {
        printf("%s: decoding failed: %s\n", argv[1], img.message);
        free(px);
        return 1;
    }
    double sum = 0, sum2 = 0;
    for (size_t i = 0; i < bytes; i++) {
        sum += px[i];
        sum2 += (double)px[i] * px[i];
    }
    free(px);
    double mean = sum / bytes, sd = sqrt(fmax(0, sum2 / bytes - mean * mean));
    int ok = dim_ok(argv[2], img.width) && dim_ok(argv[3], img.height) && sd > MIN_STDDEV;
    printf("%s: %ux%u (want %sx%s), gray stddev %.1f: %s\n", argv[1], img.width, img.height, argv[2], argv[3], sd,
           ok ? "ok" : "FAIL");
    return ok ? 0 : 1;
}
