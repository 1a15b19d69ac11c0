/* image.c — single images from disk as 8-bit grayscale, and 8-bit grayscale
 * PNG output.
 *
 * Formats are recognised by their first bytes, never by the file name:
 *   PNG  (89 'PNG')  through libpng: every colour type and bit depth is
 *                     expanded to 8-bit RGBA, then reduced to gray with the
 *                     Rec. 601 luma weights and composited on white:
 *                     gray = a*g + (1-a)*255 (a drawing on a transparent
 *                     canvas is ink on paper).
 *   PGM  ('P5'/'P2') by hand: binary 8- or 16-bit, or ASCII; any maxval is
 *                     rescaled to 0..255.
 *   JPEG (ff d8 ff)  through libjpeg, only when built with -DDG_HAVE_JPEG
 *                     (and linked with -ljpeg); otherwise a clear error.
 * Width and height are checked against DATA_MAX_SIDE before any pixel buffer
 * is allocated, so a small file that claims a huge image (a decompression
 * bomb) is refused cheaply.
 *
 * Left out on purpose: colour inversion, cropping, centring and resizing —
 * the MNIST convention (white ink on black) is a preprocessing decision and
 * belongs to the caller (serve/preprocess), not to the decoder. Also left
 * out: gamma and colour-profile handling (irrelevant for digit strokes),
 * multi-image PGM files (only the first image is read).
 */
#include "data/data.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifdef DG_HAVE_JPEG
#include <jpeglib.h>
#include <jerror.h>
#endif

#include "core/check.h"

/* Raw PGM is at most 4096*4096*2 bytes of pixels; ASCII PGM allows generous
 * whitespace and comments on top. */
#define IMAGE_MAX_FILE_BYTES (512u << 20)

/* Composites gray g with alpha a (both 0..255) on white, rounded. */
static inline uint8_t on_white(unsigned g, unsigned a) {
    return (uint8_t)((g * a + 255u * (255u - a) + 127u) / 255u);
}

/* ---- PNG --------------------------------------------------------------------- */

typedef struct {
    const char *path;
    char warning[160];  /* the last warning: often the detail behind an error */
    jmp_buf jmp;
} PngCtx;

/* libpng reports errors by calling this, which must not return: we record
 * the message (it names the problem, e.g. "IHDR: CRC error") and jump back.
 * libpng gives the specific reason for a bad header as a warning just before
 * the generic "Invalid IHDR data" error, so the last warning is appended. */
static void png_on_error(png_structp png, png_const_charp msg) {
    PngCtx *ctx = png_get_error_ptr(png);
    if (ctx->warning[0])
        dg_set_error("%s: bad PNG: %s (%s)", ctx->path, msg, ctx->warning);
    else
        dg_set_error("%s: bad PNG: %s", ctx->path, msg);
    longjmp(ctx->jmp, 1);
}

/* Warnings alone (e.g. "iCCP: known incorrect sRGB profile") are harmless
 * here: kept for a following error, never printed. */
static void png_on_warning(png_structp png, png_const_charp msg) {
    PngCtx *ctx = png_get_error_ptr(png);
    snprintf(ctx->warning, sizeof ctx->warning, "%s", msg);
}

/* Replaces libpng's default reader only to say "truncated" instead of its
 * generic "Read Error" when the file ends early. */
static void png_read_file(png_structp png, png_bytep out, size_t len) {
    FILE *fp = png_get_io_ptr(png);
    if (fread(out, 1, len, fp) != len)
        png_error(png, ferror(fp) ? "read error" : "truncated: file ends before the image does");
}

static int png_read_gray(FILE *fp, const char *path, uint8_t **pixels, int *width, int *height) {
    PngCtx ctx = {.path = path};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_on_error,
                                             png_on_warning);
    if (!png) return dg_set_error("%s: out of memory in libpng", path);
    png_infop info = png_create_info_struct(png);
    /* Written after setjmp and read after longjmp: must be volatile. */
    uint8_t *volatile rgba = NULL;
    uint8_t *volatile gray = NULL;
    png_bytep *volatile rowp = NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return dg_set_error("%s: out of memory in libpng", path);
    }
    if (setjmp(ctx.jmp)) {
        png_destroy_read_struct(&png, &info, NULL);
        free(rgba);
        free(gray);
        free(rowp);
        return -1;
    }
    /* libpng itself refuses larger images (png_error -> our handler), and caps
     * ancillary chunk memory (e.g. a huge zTXt). */
    png_set_user_limits(png, DATA_MAX_SIDE, DATA_MAX_SIDE);
    png_set_chunk_malloc_max(png, 8u << 20);
    png_set_read_fn(png, fp, png_read_file);
    png_read_info(png, info);
    png_uint_32 w, h;
    int depth, ctype, interlace;
    png_get_IHDR(png, info, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
    if (w < 1 || h < 1 || w > DATA_MAX_SIDE || h > DATA_MAX_SIDE) {
        dg_set_error("%s: image is %ux%u, outside 1..%d per side", path, (unsigned)w,
                     (unsigned)h, DATA_MAX_SIDE);
        longjmp(ctx.jmp, 1);
    }

    /* deflate cannot compress better than 1032:1, so a file too small to
     * hold the image it claims is refused before the pixels are allocated. */
    struct stat st;
    int channels = png_get_channels(png, info);
    uint64_t raw = (uint64_t)h * (1 + ((uint64_t)w * (uint64_t)channels * (uint64_t)depth + 7) / 8);
    if (fstat(fileno(fp), &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size * 1032 < raw) {
        dg_set_error("%s: truncated: a %ux%u PNG needs more compressed data than the file's "
                     "%lld bytes", path, (unsigned)w, (unsigned)h, (long long)st.st_size);
        longjmp(ctx.jmp, 1);
    }

    /* Normalise every input to 8-bit RGBA, then reduce ourselves: one path
     * for the compositing rule whatever the colour type. */
    if (depth == 16) png_set_scale_16(png);  /* rounds, where strip_16 truncates */
    if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    int trns = png_get_valid(png, info, PNG_INFO_tRNS) != 0;
    if (trns) png_set_tRNS_to_alpha(png);
    if (ctype == PNG_COLOR_TYPE_GRAY || ctype == PNG_COLOR_TYPE_GRAY_ALPHA)
        png_set_gray_to_rgb(png);
    if (!(ctype & PNG_COLOR_MASK_ALPHA) && !trns) png_set_filler(png, 0xff, PNG_FILLER_AFTER);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * 4) {
        dg_set_error("%s: unexpected PNG layout after conversion (%zu bytes per row)", path,
                     (size_t)png_get_rowbytes(png, info));
        longjmp(ctx.jmp, 1);
    }

    size_t npx = (size_t)w * h;
    rgba = malloc(npx * 4);
    gray = malloc(npx);
    rowp = malloc(h * sizeof(png_bytep));
    if (!rgba || !gray || !rowp) {
        dg_set_error("%s: out of memory for a %ux%u image", path, (unsigned)w, (unsigned)h);
        longjmp(ctx.jmp, 1);
    }
    for (png_uint_32 y = 0; y < h; y++) rowp[y] = rgba + (size_t)y * w * 4;
    png_read_image(png, rowp);
    png_read_end(png, NULL);

    for (size_t i = 0; i < npx; i++) {
        const uint8_t *q = rgba + 4 * i;
        unsigned g = (299u * q[0] + 587u * q[1] + 114u * q[2] + 500u) / 1000u;
        gray[i] = on_white(g, q[3]);
    }
    png_destroy_read_struct(&png, &info, NULL);
    free(rgba);
    free(rowp);
    *pixels = gray;
    *width = (int)w;
    *height = (int)h;
    return 0;
}

/* ---- PGM --------------------------------------------------------------------- */

/* Skips whitespace and '#' comments (comments run to the end of the line). */
static const uint8_t *pgm_skip(const uint8_t *p, const uint8_t *end) {
    while (p < end) {
        if (*p == '#') {
            while (p < end && *p != '\n') p++;
        } else if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\v' ||
                   *p == '\f') {
            p++;
        } else {
            break;
        }
    }
    return p;
}

/* Parses an unsigned decimal; -1 if there is none, capped to stay in range. */
static long pgm_uint(const uint8_t **pp, const uint8_t *end) {
    const uint8_t *p = *pp;
    if (p == end || (unsigned)(*p - '0') >= 10u) return -1;
    long v = 0;
    while (p < end && (unsigned)(*p - '0') < 10u) {
        if (v < 10000000) v = v * 10 + (*p - '0');
        p++;
    }
    *pp = p;
    return v;
}

static int pgm_read_gray(const uint8_t *buf, size_t len, const char *path, uint8_t **pixels,
                         int *width, int *height) {
    const uint8_t *p = buf + 2, *end = buf + len;
    int ascii = buf[1] == '2';
    long v[3];
    static const char *names[3] = {"width", "height", "maxval"};
    for (int i = 0; i < 3; i++) {
        p = pgm_skip(p, end);
        v[i] = pgm_uint(&p, end);
        if (v[i] < 0)
            return dg_set_error("%s: bad PGM header: %s missing or not a number", path, names[i]);
    }
    long w = v[0], h = v[1], maxval = v[2];
    if (w < 1 || h < 1 || w > DATA_MAX_SIDE || h > DATA_MAX_SIDE)
        return dg_set_error("%s: image is %ldx%ld, outside 1..%d per side", path, w, h,
                            DATA_MAX_SIDE);
    if (maxval < 1 || maxval > 65535)
        return dg_set_error("%s: bad PGM header: maxval %ld outside 1..65535", path, maxval);
    size_t npx = (size_t)w * (size_t)h;

    if (!ascii) {
        /* Exactly one whitespace byte separates maxval from the raster. */
        if (p == end || !(*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
            return dg_set_error("%s: bad PGM header: no whitespace after maxval", path);
        p++;
        size_t bps = maxval > 255 ? 2 : 1;
        size_t have = (size_t)(end - p);
        if (have < npx * bps)
            return dg_set_error("%s: truncated: PGM header says %ldx%ld (%zu bytes of pixels), "
                                "file has %zu", path, w, h, npx * bps, have);
    }
    if (ascii && (size_t)(end - p) < 2 * npx - 1)  /* a digit and a separator per value */
        return dg_set_error("%s: truncated: PGM header says %ldx%ld (%zu values), file has %zu "
                            "bytes of pixels", path, w, h, npx, (size_t)(end - p));
    uint8_t *out = malloc(npx);
    if (!out) return dg_set_error("%s: out of memory for a %ldx%ld image", path, w, h);
    for (size_t i = 0; i < npx; i++) {
        long s;
        if (ascii) {
            p = pgm_skip(p, end);
            s = pgm_uint(&p, end);
            if (s < 0) {
                free(out);
                if (p == end)
                    return dg_set_error("%s: truncated: PGM header says %ldx%ld (%zu values), "
                                        "file has %zu", path, w, h, npx, i);
                if (*p >= 0x21 && *p < 0x7f)
                    return dg_set_error("%s: pixel %zu: '%c' is not a number", path, i, *p);
                return dg_set_error("%s: pixel %zu: byte 0x%02x is not a number", path, i, *p);
            }
        } else if (maxval > 255) {
            s = (long)p[0] << 8 | p[1];  /* 16-bit samples are big-endian */
            p += 2;
        } else {
            s = *p++;
        }
        if (s > maxval) {
            free(out);
            return dg_set_error("%s: pixel %zu is %ld, above maxval %ld", path, i, s, maxval);
        }
        out[i] = (uint8_t)((s * 255 + maxval / 2) / maxval);
    }
    *pixels = out;
    *width = (int)w;
    *height = (int)h;
    return 0;
}

/* ---- JPEG ---------------------------------------------------------------------- */

#ifdef DG_HAVE_JPEG
typedef struct {
    struct jpeg_error_mgr mgr;  /* first, so the cinfo->err pointer casts back */
    const char *path;
    jmp_buf jmp;
} JpegErr;

static void jpeg_on_error(j_common_ptr cinfo) {
    JpegErr *e = (JpegErr *)cinfo->err;
    char msg[JMSG_LENGTH_MAX];
    e->mgr.format_message(cinfo, msg);
    dg_set_error("%s: bad JPEG: %s", e->path, msg);
    longjmp(e->jmp, 1);
}

/* Warnings: ignored (e.g. "extraneous bytes before marker", common in
 * camera files), except a premature end of data, which libjpeg would
 * otherwise pad with gray: a truncated file is an error. */
static void jpeg_on_warning(j_common_ptr cinfo, int level) {
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
        JpegErr *e = (JpegErr *)cinfo->err;
        dg_set_error("%s: truncated JPEG: the data ends before the image does", e->path);
        longjmp(e->jmp, 1);
    }
}

static void jpeg_on_message(j_common_ptr cinfo) { (void)cinfo; }

/* A progressive file can hold any number of scans, each a pass over the
 * whole image: a small hostile file could keep the decoder busy for
 * minutes. Real encoders write about ten. */
#define JPEG_MAX_SCANS 100
static void jpeg_on_progress(j_common_ptr cinfo) {
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    if (d->input_scan_number > JPEG_MAX_SCANS) {
        JpegErr *e = (JpegErr *)cinfo->err;
        dg_set_error("%s: bad JPEG: more than %d scans", e->path, JPEG_MAX_SCANS);
        longjmp(e->jmp, 1);
    }
}

static int jpeg_read_gray(FILE *fp, const char *path, uint8_t **pixels, int *width,
                          int *height) {
    struct jpeg_decompress_struct cinfo;
    JpegErr err;
    uint8_t *volatile out = NULL;
    cinfo.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = jpeg_on_error;
    err.mgr.output_message = jpeg_on_message;
    err.mgr.emit_message = jpeg_on_warning;
    err.path = path;
    struct jpeg_progress_mgr progress = {.progress_monitor = jpeg_on_progress};
    if (setjmp(err.jmp)) {
        jpeg_destroy_decompress(&cinfo);
        free(out);
        return -1;
    }
    jpeg_create_decompress(&cinfo);
    cinfo.progress = &progress;
    /* whole-image buffers (progressive files) beyond this are refused */
    cinfo.mem->max_memory_to_use = 256L << 20;
    jpeg_stdio_src(&cinfo, fp);
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.image_width < 1 || cinfo.image_height < 1 || cinfo.image_width > DATA_MAX_SIDE ||
        cinfo.image_height > DATA_MAX_SIDE) {
        dg_set_error("%s: image is %ux%u, outside 1..%d per side", path,
                     (unsigned)cinfo.image_width, (unsigned)cinfo.image_height, DATA_MAX_SIDE);
        longjmp(err.jmp, 1);
    }
    /* libjpeg converts YCbCr to gray by keeping Y (the luma): what we want. */
    cinfo.out_color_space = JCS_GRAYSCALE;
    jpeg_start_decompress(&cinfo);
    size_t w = cinfo.output_width, h = cinfo.output_height;
    out = malloc(w * h);
    if (!out) {
        dg_set_error("%s: out of memory for a %zux%zu image", path, w, h);
        longjmp(err.jmp, 1);
    }
    while (cinfo.output_scanline < h) {
        JSAMPROW row = out + (size_t)cinfo.output_scanline * w;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    *pixels = out;
    *width = (int)w;
    *height = (int)h;
    return 0;
}
#endif

/* ---- dispatch ------------------------------------------------------------------ */

/* Reads a whole (bounded) file for the hand-parsed formats. */
static uint8_t *image_slurp(FILE *fp, const char *path, size_t *len) {
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        dg_set_error("%s: not a regular file", path);
        return NULL;
    }
    if ((uint64_t)st.st_size > IMAGE_MAX_FILE_BYTES) {
        dg_set_error("%s: file is %lld bytes, more than the %u MiB limit for PGM", path,
                     (long long)st.st_size, IMAGE_MAX_FILE_BYTES >> 20);
        return NULL;
    }
    size_t size = (size_t)st.st_size;
    uint8_t *buf = malloc(size + 1);
    if (!buf) {
        dg_set_error("%s: out of memory reading %zu bytes", path, size);
        return NULL;
    }
    rewind(fp);
    *len = fread(buf, 1, size, fp);
    if (*len < size && ferror(fp)) {
        dg_set_error("%s: read error: %s", path, strerror(errno));
        free(buf);
        return NULL;
    }
    return buf;
}

int image_read_gray(const char *path, uint8_t **pixels, int *width, int *height) {
    *pixels = NULL;
    *width = *height = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return dg_set_error("%s: cannot open: %s", path, strerror(errno));
    uint8_t sig[8] = {0};
    size_t got = fread(sig, 1, sizeof sig, fp);
    int rc;
    if (got == 8 && png_sig_cmp(sig, 0, 8) == 0) {
        rewind(fp);
        rc = png_read_gray(fp, path, pixels, width, height);
    } else if (got >= 2 && sig[0] == 'P' && (sig[1] == '5' || sig[1] == '2')) {
        size_t len;
        uint8_t *buf = image_slurp(fp, path, &len);
        rc = buf ? pgm_read_gray(buf, len, path, pixels, width, height) : -1;
        free(buf);
    } else if (got >= 3 && sig[0] == 0xff && sig[1] == 0xd8 && sig[2] == 0xff) {
#ifdef DG_HAVE_JPEG
        rewind(fp);
        rc = jpeg_read_gray(fp, path, pixels, width, height);
#else
        rc = dg_set_error("%s: JPEG support not built in (rebuild with -DDG_HAVE_JPEG -ljpeg), "
                          "convert to PNG", path);
#endif
    } else if (got == 0) {
        rc = dg_set_error("%s: empty file", path);
    } else if (got >= 2 && sig[0] == 'P' && sig[1] >= '1' && sig[1] <= '7') {
        rc = dg_set_error("%s: Netpbm P%c is not supported, only grayscale PGM (P5, P2)", path,
                          sig[1]);
    } else {
        rc = dg_set_error("%s: unknown image format (starts with %02x %02x %02x %02x), "
                          "expected PNG, PGM or JPEG", path, sig[0], sig[1], sig[2], sig[3]);
    }
    fclose(fp);
    return rc;
}

/* ---- PNG output ------------------------------------------------------------------ */

int image_write_png_gray(const char *path, const uint8_t *pixels, int width, int height) {
    if (width < 1 || height < 1 || !pixels)
        return dg_set_error("%s: cannot write a %dx%d image", path, width, height);
    FILE *fp = fopen(path, "wb");
    if (!fp) return dg_set_error("%s: cannot create: %s", path, strerror(errno));
    PngCtx ctx = {.path = path};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, png_on_error,
                                              png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, NULL);
        fclose(fp);
        remove(path);
        return dg_set_error("%s: out of memory in libpng", path);
    }
    if (setjmp(ctx.jmp)) {
        png_destroy_write_struct(&png, &info);
        fclose(fp);
        remove(path);
        return -1;
    }
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < height; y++) png_write_row(png, pixels + (size_t)y * width);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    int bad = ferror(fp);
    if (fclose(fp) != 0 || bad) {
        int e = errno;
        remove(path);
        return dg_set_error("%s: write failed: %s", path, strerror(e));
    }
    return 0;
}
