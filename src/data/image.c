/* image.c — single images as 8-bit grayscale or RGB, decoded from memory or
 * from a file, upright as a viewer shows them, and 8-bit grayscale PNG output.
 *
 * Formats are recognised by their first bytes, never by a name or a MIME type:
 *   PNG  (89 'PNG')  through libpng: every colour type and bit depth is
 *                     expanded to 8-bit RGBA, then reduced to gray with the
 *                     Rec. 601 luma weights and composited on white:
 *                     gray = a*g + (1-a)*255 (a drawing on a transparent
 *                     canvas is ink on paper).
 *   PGM  ('P5'/'P2') by hand: binary 8- or 16-bit, or ASCII; any maxval is
 *                     rescaled to 0..255.
 *   BMP  ('BM')      by hand: uncompressed 1/4/8-bit (palette), 24-bit and
 *                     32-bit (BI_RGB or BI_BITFIELDS), bottom-up or top-down;
 *                     a 32-bit alpha channel, when the header declares one,
 *                     is composited on white like PNG's.
 *   JPEG (ff d8 ff)  through libjpeg, only when built with -DDG_HAVE_JPEG
 *                     (and linked with -ljpeg); otherwise a clear error.
 *                     The EXIF Orientation tag (APP1, TIFF IFD0, tag 0x0112;
 *                     read by hand, every offset bounded) is applied, all 8
 *                     values: a phone photo stored sideways comes out upright.
 * RGB (channels 3) keeps PNG's and JPEG's colour (alpha composited on white
 * per channel); PGM and BMP are read as gray and copied to the three.
 * Width and height are read from the header and checked against
 * DATA_MAX_SIDE before any pixel buffer is allocated, so a small file that
 * claims a huge image (a decompression bomb) is refused cheaply; a failed
 * decode also says why (ImageStatus) so the server can answer 413/415/400.
 * Every offset read from a BMP or PGM header is bounds-checked against the
 * buffer; libpng and libjpeg read through a bounded memory source.
 *
 * Left out on purpose: colour inversion, cropping, centring and resizing —
 * the MNIST convention (white ink on black) is a preprocessing decision
 * (data/preprocess.c), not the decoder's. Also left out: gamma and
 * colour-profile handling (irrelevant for digit strokes), PNG's eXIf chunk
 * (cameras write JPEG), BMP colour (scanners write gray), multi-image PGM
 * files (only the first image is read), RLE-compressed and OS/2 BMPs.
 */
#include "data/data.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef DG_HAVE_JPEG
#include <jpeglib.h>
#include <jerror.h>
#endif

#include "core/check.h"

/* Raw PGM is at most 4096*4096*2 bytes of pixels; ASCII PGM allows generous
 * whitespace and comments on top. No image file we read is larger. */
#define IMAGE_MAX_FILE_BYTES (512u << 20)

/* Composites gray g with alpha a (both 0..255) on white, rounded. */
static inline uint8_t on_white(unsigned g, unsigned a) {
    return (uint8_t)((g * a + 255u * (255u - a) + 127u) / 255u);
}

/* Rec. 601 luma of an 8-bit RGB triple, rounded. */
static inline unsigned luma(unsigned r, unsigned g, unsigned b) {
    return (299u * r + 587u * g + 114u * b + 500u) / 1000u;
}

/* The refusal of an image whose header claims too many pixels. */
static int too_large(ImageStatus *st, const char *name, long long w, long long h) {
    *st = IMAGE_TOO_LARGE;
    return dg_set_error("%s: image is %lldx%lld, outside 1..%d per side", name, w, h, DATA_MAX_SIDE);
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}
static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[1] << 8 | p[0]); }

/* ---- PNG --------------------------------------------------------------------- */

typedef struct {
    const char *name;
    const uint8_t *data;  /* the whole file; libpng reads it through png_read_mem */
    size_t len, pos;
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
        dg_set_error("%s: bad PNG: %s (%s)", ctx->name, msg, ctx->warning);
    else
        dg_set_error("%s: bad PNG: %s", ctx->name, msg);
    longjmp(ctx->jmp, 1);
}

/* Warnings alone (e.g. "iCCP: known incorrect sRGB profile") are harmless
 * here: kept for a following error, never printed. */
static void png_on_warning(png_structp png, png_const_charp msg) {
    PngCtx *ctx = png_get_error_ptr(png);
    snprintf(ctx->warning, sizeof ctx->warning, "%s", msg);
}

/* libpng's input: the memory buffer, saying "truncated" (rather than a
 * generic "Read Error") when the data ends early. */
static void png_read_mem(png_structp png, png_bytep out, size_t n) {
    PngCtx *ctx = png_get_io_ptr(png);
    if (n > ctx->len - ctx->pos) png_error(png, "truncated: file ends before the image does");
    memcpy(out, ctx->data + ctx->pos, n);
    ctx->pos += n;
}

/* One RGBA row to gray on white (channels 1) or to RGB on white (3). */
static void rgba_row_to_gray(uint8_t *gray, const uint8_t *rgba, size_t w, int channels) {
    if (channels == 3) {
        for (size_t x = 0; x < w; x++, rgba += 4, gray += 3)
            for (int k = 0; k < 3; k++) gray[k] = on_white(rgba[k], rgba[3]);
        return;
    }
    for (size_t x = 0; x < w; x++, rgba += 4) gray[x] = on_white(luma(rgba[0], rgba[1], rgba[2]), rgba[3]);
}

static int png_decode_gray(const uint8_t *data, size_t len, const char *name, uint8_t **pixels,
                           int *width, int *height, ImageStatus *st, int out_ch) {
    /* The IHDR chunk is always first (bytes 8..32): a bomb is refused from
     * its dimensions before libpng reads anything (libpng's user limits
     * below are the second line). */
    if (len >= 24 && memcmp(data + 12, "IHDR", 4) == 0) {
        uint32_t w = be32(data + 16), h = be32(data + 20);
        if (w > DATA_MAX_SIDE || h > DATA_MAX_SIDE) return too_large(st, name, w, h);
    }
    PngCtx ctx = {.name = name, .data = data, .len = len};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_on_error,
                                             png_on_warning);
    if (!png) return dg_set_error("%s: out of memory in libpng", name);
    png_infop info = png_create_info_struct(png);
    /* Written after setjmp and read after longjmp: must be volatile. */
    uint8_t *volatile rgba = NULL;
    uint8_t *volatile gray = NULL;
    png_bytep *volatile rowp = NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return dg_set_error("%s: out of memory in libpng", name);
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
    png_set_read_fn(png, &ctx, png_read_mem);
    png_read_info(png, info);
    png_uint_32 w, h;
    int depth, ctype, interlace;
    png_get_IHDR(png, info, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
    if (w < 1 || h < 1 || w > DATA_MAX_SIDE || h > DATA_MAX_SIDE) {
        too_large(st, name, (long long)w, (long long)h);
        longjmp(ctx.jmp, 1);
    }

    /* deflate cannot compress better than 1032:1, so data too small to
     * hold the image it claims is refused before the pixels are allocated. */
    int channels = png_get_channels(png, info);
    uint64_t raw = (uint64_t)h * (1 + ((uint64_t)w * (uint64_t)channels * (uint64_t)depth + 7) / 8);
    if ((uint64_t)len * 1032 < raw) {
        dg_set_error("%s: truncated: a %ux%u PNG needs more compressed data than the file's "
                     "%zu bytes", name, (unsigned)w, (unsigned)h, len);
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
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * 4) {
        dg_set_error("%s: unexpected PNG layout after conversion (%zu bytes per row)", name,
                     (size_t)png_get_rowbytes(png, info));
        longjmp(ctx.jmp, 1);
    }

    size_t npx = (size_t)w * h;
    gray = malloc(npx * (size_t)out_ch);
    /* A plain PNG is converted row by row through one RGBA row (the peak is
     * the gray image); an interlaced one needs the whole RGBA image. */
    rgba = malloc(passes > 1 ? npx * 4 : (size_t)w * 4);
    rowp = passes > 1 ? malloc(h * sizeof(png_bytep)) : NULL;
    if (!gray || !rgba || (passes > 1 && !rowp)) {
        dg_set_error("%s: out of memory for a %ux%u image", name, (unsigned)w, (unsigned)h);
        longjmp(ctx.jmp, 1);
    }
    if (passes > 1) {
        for (png_uint_32 y = 0; y < h; y++) rowp[y] = rgba + (size_t)y * w * 4;
        png_read_image(png, rowp);
        for (png_uint_32 y = 0; y < h; y++) rgba_row_to_gray(gray + (size_t)y * w * out_ch, rowp[y], w, out_ch);
    } else {
        for (png_uint_32 y = 0; y < h; y++) {
            png_read_row(png, rgba, NULL);
            rgba_row_to_gray(gray + (size_t)y * w * out_ch, rgba, w, out_ch);
        }
    }
    png_read_end(png, NULL);
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

static int pgm_decode_gray(const uint8_t *buf, size_t len, const char *path, uint8_t **pixels,
                           int *width, int *height, ImageStatus *st) {
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
    if (w < 1 || h < 1 || w > DATA_MAX_SIDE || h > DATA_MAX_SIDE) return too_large(st, path, w, h);
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

/* ---- BMP ----------------------------------------------------------------------
 * Layout: a 14-byte file header ('BM', size, reserved, pixel-data offset at
 * 10), then an info header whose first 4 bytes give its size: 40
 * (BITMAPINFOHEADER) or larger (V2..V5: 52, 56, 108, 124). Rows are padded
 * to 4 bytes and stored bottom-up unless the height is negative. Palettes
 * (1/4/8 bit) are B,G,R,0 entries right after the info header.            */

enum { BI_RGB = 0, BI_BITFIELDS = 3, BI_ALPHABITFIELDS = 6 };  /* 1, 2: RLE8, RLE4 */

/* A channel of a BI_BITFIELDS pixel: mask, shift to its lowest bit and the
 * maximum value, for rescaling to 0..255. */
typedef struct {
    uint32_t mask;
    int shift;
    uint32_t max;
} BmpChannel;

static BmpChannel bmp_channel(uint32_t mask) {
    BmpChannel c = {mask, 0, 0};
    if (!mask) return c;
    while (!(mask & 1u)) {
        mask >>= 1;
        c.shift++;
    }
    c.max = mask;  /* masks must be contiguous: checked by the caller */
    return c;
}

static inline unsigned bmp_get(const BmpChannel *c, uint32_t px) {
    return c->max ? (unsigned)((((px & c->mask) >> c->shift) * 255u + c->max / 2) / c->max) : 0u;
}

static int bmp_decode_gray(const uint8_t *d, size_t len, const char *name, uint8_t **pixels,
                           int *width, int *height, ImageStatus *st) {
    if (len < 14 + 40) return dg_set_error("%s: truncated: BMP headers need 54 bytes, file has %zu", name, len);
    uint32_t data_off = le32(d + 10), hdr = le32(d + 14);
    if (hdr == 12) {
        *st = IMAGE_UNSUPPORTED;
        return dg_set_error("%s: OS/2 BMP (12-byte header) is not supported", name);
    }
    if (hdr < 40 || hdr > len - 14)
        return dg_set_error("%s: bad BMP header: info header size %u", name, (unsigned)hdr);
    int32_t w = (int32_t)le32(d + 18), hs = (int32_t)le32(d + 22);
    unsigned planes = le16(d + 26), bpp = le16(d + 28);
    uint32_t comp = le32(d + 30), ncolors = le32(d + 46);
    int top_down = hs < 0;
    long long h = top_down ? -(long long)hs : hs;  /* INT32_MIN negates safely in 64 bits */
    if (w < 1 || h < 1 || w > DATA_MAX_SIDE || h > DATA_MAX_SIDE) return too_large(st, name, w, h);
    if (planes != 1) return dg_set_error("%s: bad BMP header: %u planes", name, planes);
    if (comp != BI_RGB && comp != BI_BITFIELDS && comp != BI_ALPHABITFIELDS) {  /* RLE, JPEG, PNG */
        *st = IMAGE_UNSUPPORTED;
        return dg_set_error("%s: compressed BMP (compression %u) is not supported, only uncompressed",
                            name, (unsigned)comp);
    }
    if (bpp != 1 && bpp != 4 && bpp != 8 && bpp != 24 && bpp != 32) {
        *st = IMAGE_UNSUPPORTED;
        return dg_set_error("%s: %u-bit BMP is not supported (1, 4, 8, 24 or 32 bits)", name, bpp);
    }
    if (comp != BI_RGB && bpp != 32) {
        *st = IMAGE_UNSUPPORTED;
        return dg_set_error("%s: BMP bit fields are supported for 32-bit images only", name);
    }

    /* Channels: 24/32-bit BI_RGB is B,G,R(,unused); bit fields come from the
     * V2+ header or, with a 40-byte header, the 12 or 16 bytes after it. */
    BmpChannel ch[4] = {bmp_channel(0x00ff0000u), bmp_channel(0x0000ff00u), bmp_channel(0x000000ffu),
                        bmp_channel(0)};
    size_t after_hdr = 14 + (size_t)hdr;
    if (comp != BI_RGB) {
        size_t nmask = comp == BI_ALPHABITFIELDS ? 4 : 3;
        size_t at = 14 + 40;
        if (hdr == 40) {
            if (len < at + 4 * nmask) return dg_set_error("%s: truncated: BMP bit-field masks missing", name);
            after_hdr += 4 * nmask;
        } else if (hdr >= 56) {
            nmask = 4;
        } else if (hdr < 52) {
            return dg_set_error("%s: bad BMP header: %u bytes, too short for bit fields", name, (unsigned)hdr);
        }
        for (size_t k = 0; k < nmask; k++) {
            uint32_t m = le32(d + at + 4 * k);
            /* contiguous: adding the lowest set bit leaves a single run of zeros below */
            uint32_t low = m & (~m + 1u);
            if (m && ((m + low) & m)) return dg_set_error("%s: bad BMP bit-field mask 0x%08x", name, (unsigned)m);
            ch[k] = bmp_channel(m);
        }
    }

    /* Palette for 1/4/8-bit: at most 2^bpp B,G,R,x entries, converted to gray. */
    uint8_t pal[256];
    int npal = 0;
    if (bpp <= 8) {
        uint32_t maxc = 1u << bpp;
        npal = (int)(ncolors == 0 || ncolors > maxc ? maxc : ncolors);
        if (after_hdr > len || (size_t)npal * 4 > len - after_hdr)
            return dg_set_error("%s: truncated: BMP palette of %d colours missing", name, npal);
        for (int i = 0; i < npal; i++) {
            const uint8_t *e = d + after_hdr + 4 * (size_t)i;
            pal[i] = (uint8_t)luma(e[2], e[1], e[0]);
        }
    }

    size_t stride = (((size_t)bpp * (size_t)w + 31) / 32) * 4;
    if (data_off > len || stride * (size_t)h > len - data_off)
        return dg_set_error("%s: truncated: BMP header says %dx%lld at %u bits (%zu bytes from offset "
                            "%u), file has %zu", name, w, h, bpp, stride * (size_t)h, (unsigned)data_off, len);
    uint8_t *out = malloc((size_t)w * (size_t)h);
    if (!out) return dg_set_error("%s: out of memory for a %dx%lld image", name, w, h);
    for (long long y = 0; y < h; y++) {
        const uint8_t *row = d + data_off + stride * (size_t)(top_down ? y : h - 1 - y);
        uint8_t *o = out + (size_t)y * (size_t)w;
        for (int32_t x = 0; x < w; x++) {
            if (bpp <= 8) {
                unsigned per = 8 / bpp, shift = 8 - bpp * (1 + (unsigned)x % per);
                unsigned idx = (row[(size_t)x / per] >> shift) & ((1u << bpp) - 1u);
                if ((int)idx >= npal) {
                    free(out);
                    return dg_set_error("%s: pixel (%d,%lld): palette index %u, palette has %d colours",
                                        name, x, y, idx, npal);
                }
                o[x] = pal[idx];
            } else if (bpp == 24) {
                const uint8_t *q = row + 3 * (size_t)x;
                o[x] = (uint8_t)luma(q[2], q[1], q[0]);
            } else {
                uint32_t px = le32(row + 4 * (size_t)x);
                unsigned g = luma(bmp_get(&ch[0], px), bmp_get(&ch[1], px), bmp_get(&ch[2], px));
                o[x] = ch[3].mask ? on_white(g, bmp_get(&ch[3], px)) : (uint8_t)g;
            }
        }
    }
    *pixels = out;
    *width = w;
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

/* The EXIF Orientation (tag 0x0112 of IFD0) in an APP1 payload that starts
 * "Exif\0\0" followed by a TIFF header: 1..8, or 1 (upright) when the tag is
 * absent or anything about it is malformed. Every read is bounded by len:
 * the IFD offset, its entry count and each 12-byte entry. */
static int exif_orientation(const uint8_t *p, size_t len) {
    if (len < 6 + 8 || memcmp(p, "Exif\0\0", 6) != 0) return 1;
    p += 6, len -= 6;
    int le = p[0] == 'I' && p[1] == 'I';
    if (!le && !(p[0] == 'M' && p[1] == 'M')) return 1;
#define EXIF16(q) (le ? (unsigned)(q)[0] | (unsigned)(q)[1] << 8 : (unsigned)(q)[0] << 8 | (unsigned)(q)[1])
#define EXIF32(q) (le ? le32(q) : be32(q))
    if (EXIF16(p + 2) != 42) return 1;
    uint32_t ifd = EXIF32(p + 4);
    if (ifd < 8 || ifd > len - 2) return 1;
    unsigned n = EXIF16(p + ifd);
    for (unsigned i = 0; i < n; i++) {
        size_t e = (size_t)ifd + 2 + 12 * (size_t)i;
        if (e + 12 > len) break;
        /* tag, type 3 (SHORT), count 1: the value sits in the entry itself */
        if (EXIF16(p + e) == 0x0112 && EXIF16(p + e + 2) == 3 && EXIF32(p + e + 4) >= 1) {
            unsigned v = EXIF16(p + e + 8);
            return v >= 1 && v <= 8 ? (int)v : 1;
        }
    }
    return 1;
#undef EXIF16
#undef EXIF32
}

static int jpeg_decode_gray(const uint8_t *data, size_t len, const char *path, uint8_t **pixels,
                            int *width, int *height, ImageStatus *st, int channels, int *orientation) {
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
    jpeg_mem_src(&cinfo, data, (unsigned long)len);
    /* APP1 (EXIF) kept for the orientation tag; a marker is at most 64 KiB */
    jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xffff);
    jpeg_read_header(&cinfo, TRUE);  /* markers only: no pixel is decoded yet */
    if (cinfo.image_width < 1 || cinfo.image_height < 1 || cinfo.image_width > DATA_MAX_SIDE ||
        cinfo.image_height > DATA_MAX_SIDE) {
        too_large(st, path, cinfo.image_width, cinfo.image_height);
        longjmp(err.jmp, 1);
    }
    *orientation = 1;
    for (jpeg_saved_marker_ptr m = cinfo.marker_list; m; m = m->next)
        if (m->marker == JPEG_APP0 + 1 && (*orientation = exif_orientation(m->data, m->data_length)) != 1) break;
    /* libjpeg converts YCbCr to gray by keeping Y (the luma): what we want
     * for gray. Colour is asked for only where libjpeg converts it to RGB;
     * other files (gray, CMYK) are read as gray and copied to the three. */
    int rgb = channels == 3 && (cinfo.jpeg_color_space == JCS_YCbCr || cinfo.jpeg_color_space == JCS_RGB);
    cinfo.out_color_space = rgb ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_start_decompress(&cinfo);
    size_t w = cinfo.output_width, h = cinfo.output_height, ch = rgb ? 3 : 1;
    out = malloc(w * h * (size_t)channels);
    if (!out) {
        dg_set_error("%s: out of memory for a %zux%zu image", path, w, h);
        longjmp(err.jmp, 1);
    }
    while (cinfo.output_scanline < h) {
        JSAMPROW row = out + (size_t)cinfo.output_scanline * w * ch;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    if (channels == 3 && !rgb)  /* gray to RGB in place, from the end */
        for (size_t i = w * h; i-- > 0;) out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = out[i];
    *pixels = out;
    *width = (int)w;
    *height = (int)h;
    return 0;
}
#endif

/* ---- dispatch ------------------------------------------------------------------ */

/* Applies an EXIF orientation (2..8) to an image of `channels` bytes per
 * pixel: the stored image turned into the one a viewer shows. 5..8 swap
 * width and height. Replaces *pixels (freed); 0, or -1 out of memory. */
static int image_orient(uint8_t **pixels, int *width, int *height, int channels, int orientation, const char *name) {
    const int w = *width, h = *height, swap = orientation >= 5;
    const int ow = swap ? h : w, oh = swap ? w : h;
    uint8_t *out = malloc((size_t)w * h * channels);
    if (!out) return dg_set_error("%s: out of memory for a %dx%d image", name, w, h);
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++) {
            int sx, sy;  /* the stored pixel shown at (x, y) */
            switch (orientation) {
            case 2: sx = w - 1 - x, sy = y; break;          /* mirrored */
            case 3: sx = w - 1 - x, sy = h - 1 - y; break;  /* 180 */
            case 4: sx = x, sy = h - 1 - y; break;          /* flipped */
            case 5: sx = y, sy = x; break;                  /* transposed */
            case 6: sx = y, sy = h - 1 - x; break;          /* turned 90 clockwise to show */
            case 7: sx = w - 1 - y, sy = h - 1 - x; break;  /* transversed */
            case 8: sx = w - 1 - y, sy = x; break;          /* turned 90 anticlockwise to show */
            default: sx = x, sy = y; break;
            }
            memcpy(out + ((size_t)y * ow + x) * channels, *pixels + ((size_t)sy * w + sx) * channels,
                   (size_t)channels);
        }
    free(*pixels);
    *pixels = out;
    *width = ow;
    *height = oh;
    return 0;
}

/* Gray to RGB: each value three times. Replaces *pixels; 0 or -1. */
static int gray_to_rgb(uint8_t **pixels, size_t n, const char *name) {
    uint8_t *rgb = realloc(*pixels, n * 3);
    if (!rgb) return dg_set_error("%s: out of memory", name);
    for (size_t i = n; i-- > 0;) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = rgb[i];
    *pixels = rgb;
    return 0;
}

int image_decode(const uint8_t *data, size_t len, const char *name, int channels, uint8_t **pixels,
                 int *width, int *height, ImageStatus *status) {
    DG_ASSERT(channels == 1 || channels == 3);
    ImageStatus st_local;
    ImageStatus *st = status ? status : &st_local;
    *st = IMAGE_BAD;  /* the decoders say otherwise where it applies */
    *pixels = NULL;
    *width = *height = 0;
    int rc, orientation = 1, native = 0;  /* native: the decoder wrote `channels` per pixel */
    if (len >= 8 && png_sig_cmp(data, 0, 8) == 0) {
        rc = png_decode_gray(data, len, name, pixels, width, height, st, channels);
        native = 1;
    } else if (len >= 2 && data[0] == 'P' && (data[1] == '5' || data[1] == '2')) {
        rc = pgm_decode_gray(data, len, name, pixels, width, height, st);
    } else if (len >= 2 && data[0] == 'B' && data[1] == 'M') {
        rc = bmp_decode_gray(data, len, name, pixels, width, height, st);
    } else if (len >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff) {
#ifdef DG_HAVE_JPEG
        rc = jpeg_decode_gray(data, len, name, pixels, width, height, st, channels, &orientation);
        native = 1;
#else
        *st = IMAGE_UNSUPPORTED;
        rc = dg_set_error("%s: JPEG support not built in (rebuild with -DDG_HAVE_JPEG -ljpeg), "
                          "convert to PNG", name);
#endif
    } else if (len == 0) {
        rc = dg_set_error("%s: empty file", name);
    } else if (len >= 2 && data[0] == 'P' && data[1] >= '1' && data[1] <= '7') {
        *st = IMAGE_UNSUPPORTED;
        rc = dg_set_error("%s: Netpbm P%c is not supported, only grayscale PGM (P5, P2)", name, data[1]);
    } else {
        uint8_t sig[4] = {0};
        memcpy(sig, data, len < 4 ? len : 4);
        *st = IMAGE_UNSUPPORTED;
        rc = dg_set_error("%s: unknown image format (starts with %02x %02x %02x %02x), "
                          "expected PNG, JPEG, BMP or PGM", name, sig[0], sig[1], sig[2], sig[3]);
    }
    if (rc == 0 && channels == 3 && !native) rc = gray_to_rgb(pixels, (size_t)*width * *height, name);
    if (rc == 0 && orientation != 1) rc = image_orient(pixels, width, height, channels, orientation, name);
    if (rc < 0) {
        free(*pixels);
        *pixels = NULL;
        *width = *height = 0;
    } else {
        *st = IMAGE_OK;
    }
    return rc;
}

int image_decode_gray(const uint8_t *data, size_t len, const char *name, uint8_t **pixels,
                      int *width, int *height, ImageStatus *status) {
    return image_decode(data, len, name, 1, pixels, width, height, status);
}

int image_read(const char *path, int channels, uint8_t **pixels, int *width, int *height) {
    *pixels = NULL;
    *width = *height = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return dg_set_error("%s: cannot open: %s", path, strerror(errno));
    /* Read in growing chunks rather than trusting a file size: works for
     * pipes too, and stops at the limit. */
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = malloc(cap);
    int rc = 0;
    if (!buf) rc = dg_set_error("%s: out of memory", path);
    while (rc == 0) {
        if (len == cap) {
            if (cap >= IMAGE_MAX_FILE_BYTES) {
                rc = dg_set_error("%s: file is larger than the %u MiB limit for an image", path,
                                  IMAGE_MAX_FILE_BYTES >> 20);
                break;
            }
            uint8_t *nb = realloc(buf, cap * 2);
            if (!nb) {
                rc = dg_set_error("%s: out of memory reading %zu bytes", path, cap * 2);
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len, fp);
        len += got;
        if (got == 0) {
            if (ferror(fp)) rc = dg_set_error("%s: read error: %s", path, strerror(errno));
            break;
        }
    }
    fclose(fp);
    if (rc == 0) rc = image_decode(buf, len, path, channels, pixels, width, height, NULL);
    free(buf);
    return rc;
}

int image_read_gray(const char *path, uint8_t **pixels, int *width, int *height) {
    return image_read(path, 1, pixels, width, height);
}

/* ---- PNG output ------------------------------------------------------------------ */

int image_write_png_gray(const char *path, const uint8_t *pixels, int width, int height) {
    if (width < 1 || height < 1 || !pixels)
        return dg_set_error("%s: cannot write a %dx%d image", path, width, height);
    FILE *fp = fopen(path, "wb");
    if (!fp) return dg_set_error("%s: cannot create: %s", path, strerror(errno));
    PngCtx ctx = {.name = path};
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
