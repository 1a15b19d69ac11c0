/* fuzz_image.c — the single-image decoder (src/data/image.c): PNG through
 * libpng, JPEG through libjpeg (and its EXIF orientation, read by hand),
 * PGM (P5/P2) by hand, told apart by content; in gray, then in colour
 * through the photo preprocessing (src/data/preprocess.c).
 * Seeds: tiny PNGs of every colour type, JPEGs (EXIF tags good and broken),
 * binary/ASCII/16-bit PGMs. */
#include "data/data.h"
#include "data/preprocess.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(data, size);
    uint8_t *px;
    int w, h;
    if (image_read_gray(path, &px, &w, &h) == 0) {
        if (w < 1 || h < 1 || w > DATA_MAX_SIDE || h > DATA_MAX_SIDE) abort();
        unsigned sum = 0;
        for (size_t i = 0; i < (size_t)w * h; i++) sum += px[i];
        (void)sum;
        free(px);
    } else {
        fuzz_check_error(path);
    }
    if (image_read(path, 3, &px, &w, &h) == 0) {
        if (w < 1 || h < 1 || w > DATA_MAX_SIDE || h > DATA_MAX_SIDE) abort();
        uint8_t out[4 * PREP_SIDE * PREP_SIDE];
        PrepInfo info;
        int n = preprocess_number(out, 4, px, 3, w, h, &info);
        if (n == 0 || n > 4 || (n > 0 && info.n_digits < n)) abort();
        free(px);
    }
    return 0;
}
