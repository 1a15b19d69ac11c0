/* fuzz_image.c — the single-image decoder (src/data/image.c): PNG through
 * libpng, JPEG through libjpeg, PGM (P5/P2) by hand, told apart by content.
 * Seeds: tiny PNGs of every colour type, a JPEG, binary/ASCII/16-bit PGMs. */
#include "data/data.h"
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
    return 0;
}
