/* fuzz_decode.c — scratch: mutates valid PNG, JPEG, BMP and PGM images at
 * random (bytes flipped, truncated, header fields overwritten) and feeds
 * them to image_decode_gray and preprocess_digit. Run under the sanitizers:
 *   make SANITIZE=1 && cc -std=c11 -D_GNU_SOURCE -Iinclude -Isrc -DDG_HAVE_JPEG \
 *     -fsanitize=address,undefined -fopenmp dev/fuzz_decode.c build-san/libdigits.a \
 *     -lcjson -lpng -ljpeg -lz -lm -ldl -lpthread -lmicrohttpd -o /tmp/fuzz && /tmp/fuzz 200000
 * Not part of the build or the tests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>

#include "digits.h"

static uint8_t *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    rewind(f);
    uint8_t *b = malloc(*len);
    if (fread(b, 1, *len, f) != *len) exit(1);
    fclose(f);
    return b;
}

int main(int argc, char **argv) {
    long iters = argc > 1 ? atol(argv[1]) : 100000;
    uint8_t gray[40 * 30];
    for (int i = 0; i < 40 * 30; i++) gray[i] = (uint8_t)((i * 7) ^ (i >> 3));
    image_write_png_gray("/tmp/fuzz_seed.png", gray, 40, 30);
    /* seeds: PNG, a JPEG, BMPs of 8/24/32 bits, a PGM */
    static uint8_t seeds[6][8192];
    size_t seed_len[6];
    size_t n;
    uint8_t *png = slurp("/tmp/fuzz_seed.png", &n);
    memcpy(seeds[0], png, n), seed_len[0] = n, free(png);
    unsigned char *jpg = NULL;
    unsigned long jlen = 0;
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &jpg, &jlen);
    c.image_width = 40, c.image_height = 30, c.input_components = 1, c.in_color_space = JCS_GRAYSCALE;
    jpeg_set_defaults(&c);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < 30) {
        JSAMPROW r = gray + c.next_scanline * 40;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    memcpy(seeds[1], jpg, jlen), seed_len[1] = jlen, free(jpg);
    for (int b = 0; b < 3; b++) {
        int bpp = b == 0 ? 8 : b == 1 ? 24 : 32;
        size_t pal = bpp == 8 ? 1024 : 0, stride = ((size_t)bpp * 40 + 31) / 32 * 4, off = 54 + pal;
        uint8_t *p = seeds[2 + b];
        memset(p, 0, 8192);
        p[0] = 'B', p[1] = 'M', p[10] = (uint8_t)off, p[11] = (uint8_t)(off >> 8), p[14] = 40, p[18] = 40, p[22] = 30;
        p[26] = 1, p[28] = (uint8_t)bpp;
        seed_len[2 + b] = off + stride * 30;
    }
    n = (size_t)sprintf((char *)seeds[5], "P5\n40 30\n255\n");
    memcpy(seeds[5] + n, gray, sizeof gray), seed_len[5] = n + sizeof gray;

    srand(1);
    long ok = 0, fail = 0;
    static uint8_t buf[8192];
    for (long it = 0; it < iters; it++) {
        int s = rand() % 6;
        size_t len = seed_len[s];
        memcpy(buf, seeds[s], len);
        int muts = 1 + rand() % 4;
        for (int m = 0; m < muts; m++) {
            int kind = rand() % 4;
            if (kind == 0) buf[rand() % len] ^= (uint8_t)(1 << (rand() % 8));
            else if (kind == 1) buf[rand() % (len < 64 ? len : 64)] = (uint8_t)rand();  /* headers */
            else if (kind == 2) len = (size_t)rand() % (len + 1);
            else buf[rand() % len] = (uint8_t)(rand() % 2 ? 0xff : 0);
            if (!len) break;
        }
        uint8_t *px;
        int w, h;
        ImageStatus st;
        if (image_decode_gray(buf, len, "fuzz", &px, &w, &h, &st) == 0) {
            uint8_t out[784];
            preprocess_digit(out, px, w, h, NULL);
            free(px);
            ok++;
        } else {
            fail++;
        }
    }
    printf("%ld decoded, %ld refused, no crash\n", ok, fail);
    return 0;
}
