/* test_data.c — the data layer: IDX, CSV and image readers/writers (round
 * trips and every kind of bad input, checking the one-line messages),
 * dataset_load by folder and file, stratified splits, K-fold, subsets and
 * pixel statistics.
 *
 * Every file is written under one scratch folder made by the group setup
 * and removed by the group teardown (tu_tmpdir_setup, tu_tmpdir_teardown).
 * Not covered here: the real MNIST files
 * (too big for a unit test; tools/fetch_mnist.sh checks their hashes).
 */
#include <ftw.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "testutil.h"

#include "core/check.h"
#include "core/rng.h"
#include "data/data.h"

#ifdef DG_HAVE_JPEG
#include <jpeglib.h>
#endif

/* ---- scratch files --------------------------------------------------------- */

static void write_bytes(const char *path, const void *data, size_t len) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

static void write_text(const char *path, const char *s) { write_bytes(path, s, strlen(s)); }

static void write_gz(const char *path, const void *data, size_t len) {
    gzFile gz = gzopen(path, "wb");
    assert_non_null(gz);
    assert_int_equal(gzwrite(gz, data, (unsigned)len), (int)len);
    assert_int_equal(gzclose(gz), Z_OK);
}

/* Reads a whole small file (owned, NUL-terminated). */
static char *read_all(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    rewind(fp);
    char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, fp), (size_t)n);
    b[n] = 0;
    fclose(fp);
    if (len) *len = (size_t)n;
    return b;
}

/* Fails with the actual message when it lacks `needle`. */
#define ASSERT_MSG_HAS(needle)                                                            \
    do {                                                                                  \
        if (!strstr(dg_errmsg(), (needle)))                                               \
            fail_msg("message \"%s\" lacks \"%s\"", dg_errmsg(), (needle));               \
    } while (0)

/* "path:line:" as readers print it. */
static const char *at_line(const char *path, int line) {
    static char b[600];
    snprintf(b, sizeof b, "%s:%d:", path, line);
    return b;
}

/* ---- fixtures -------------------------------------------------------------- */

/* A labelled data set of n random images, rows x cols, labels i % 10. */
static Dataset make_ds(int n, int rows, int cols, uint64_t seed) {
    Dataset ds = {.n = n, .rows = rows, .cols = cols};
    ds.pixels = malloc((size_t)n * rows * cols);
    ds.labels = malloc((size_t)n);
    Rng r;
    rng_seed(&r, seed, "test");
    for (size_t i = 0; i < (size_t)n * rows * cols; i++) ds.pixels[i] = (uint8_t)rng_below(&r, 256);
    for (int i = 0; i < n; i++) ds.labels[i] = (uint8_t)(i % 10);
    return ds;
}

static void assert_ds_equal(const Dataset *a, const Dataset *b) {
    assert_int_equal(a->n, b->n);
    assert_int_equal(a->rows, b->rows);
    assert_int_equal(a->cols, b->cols);
    assert_memory_equal(a->pixels, b->pixels, (size_t)a->n * a->rows * a->cols);
    if (a->labels || b->labels) {
        assert_non_null(a->labels);
        assert_non_null(b->labels);
        assert_memory_equal(a->labels, b->labels, (size_t)a->n);
    }
}

/* IDX image bytes built by hand: magic, n, rows, cols, then the body. */
static size_t idx_bytes(uint8_t *out, uint32_t magic, const uint32_t *dims, int nd,
                        const uint8_t *body, size_t len) {
    size_t k = 0;
    uint32_t words[4] = {magic, nd > 0 ? dims[0] : 0, nd > 1 ? dims[1] : 0, nd > 2 ? dims[2] : 0};
    for (int w = 0; w < 1 + nd; w++)
        for (int s = 24; s >= 0; s -= 8) out[k++] = (uint8_t)(words[w] >> s);
    if (len) memcpy(out + k, body, len);
    return k + len;
}

/* ---- IDX ------------------------------------------------------------------- */

static void test_idx_roundtrip_raw(void **state) {
    (void)state;
    Dataset ds = make_ds(23, 5, 7, 1), back;
    const char *im = tu_tmp_path("rt-images"), *lb = tu_tmp_path("rt-labels");
    assert_int_equal(idx_write_images(im, &ds), 0);
    assert_int_equal(idx_write_labels(lb, ds.labels, ds.n), 0);
    assert_int_equal(idx_read_pair(im, lb, &back), 0);
    assert_ds_equal(&ds, &back);
    dataset_free(&back);
    /* The images alone come back without labels. */
    assert_int_equal(idx_read_images(im, &back), 0);
    assert_null(back.labels);
    assert_int_equal(back.n, 23);
    dataset_free(&back);
    dataset_free(&ds);
    assert_null(ds.pixels);
    dataset_free(&ds); /* safe twice */
}

static void test_idx_roundtrip_gzip(void **state) {
    (void)state;
    /* Big enough to need several 16 MiB chunks and buffer growth. */
    Dataset ds = make_ds(22000, 28, 28, 2), back;
    size_t body = (size_t)ds.n * 28 * 28;
    uint8_t *buf = malloc(16 + body);
    uint32_t dims[3] = {(uint32_t)ds.n, 28, 28};
    size_t len = idx_bytes(buf, 0x803, dims, 3, ds.pixels, body);
    write_gz(tu_tmp_path("gz-images"), buf, len);
    len = idx_bytes(buf, 0x801, dims, 1, ds.labels, (size_t)ds.n);
    write_gz(tu_tmp_path("gz-labels"), buf, len);
    free(buf);
    assert_int_equal(idx_read_pair(tu_tmp_path("gz-images"), tu_tmp_path("gz-labels"), &back), 0);
    assert_ds_equal(&ds, &back);
    dataset_free(&back);
    dataset_free(&ds);
}

static void test_idx_missing_file(void **state) {
    (void)state;
    Dataset ds;
    const char *p = tu_tmp_path("does-not-exist");
    assert_int_equal(idx_read_images(p, &ds), -1);
    ASSERT_MSG_HAS(p);
    ASSERT_MSG_HAS("No such file");
    uint8_t *lab;
    int n;
    assert_int_equal(idx_read_labels(p, &lab, &n), -1);
    ASSERT_MSG_HAS(p);
    assert_int_equal(idx_read_images(tu_tmpdir(), &ds), -1);
    ASSERT_MSG_HAS("directory");
}

static void test_idx_wrong_magic(void **state) {
    (void)state;
    uint8_t buf[64], lab[3] = {1, 2, 3};
    uint32_t dims[1] = {3};
    size_t len = idx_bytes(buf, 0x801, dims, 1, lab, 3);
    const char *p = tu_tmp_path("magic-labels");
    write_bytes(p, buf, len);
    Dataset ds;
    assert_int_equal(idx_read_images(p, &ds), -1);
    ASSERT_MSG_HAS(p);
    ASSERT_MSG_HAS("wrong magic 0x00000801, expected 0x00000803");
    ASSERT_MSG_HAS("labels file given as images?");
    assert_null(ds.pixels);

    /* And the other way round, and something that is not IDX at all. */
    uint32_t d3[3] = {1, 1, 3};
    len = idx_bytes(buf, 0x803, d3, 3, lab, 3);
    write_bytes(p, buf, len);
    uint8_t *l;
    int n;
    assert_int_equal(idx_read_labels(p, &l, &n), -1);
    ASSERT_MSG_HAS("images file given as labels?");
    write_text(p, "P5\n28 28\n255\nxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    assert_int_equal(idx_read_images(p, &ds), -1);
    ASSERT_MSG_HAS("wrong magic 0x50350a32");
}

static void test_idx_truncated_header(void **state) {
    (void)state;
    uint8_t buf[64];
    uint32_t dims[3] = {10, 28, 28};
    idx_bytes(buf, 0x803, dims, 3, NULL, 0);
    const char *p = tu_tmp_path("trunc-header");
    write_bytes(p, buf, 10);
    Dataset ds;
    assert_int_equal(idx_read_images(p, &ds), -1);
    ASSERT_MSG_HAS(p);
    ASSERT_MSG_HAS("truncated header: expected 16 bytes, file has 10 bytes");
    write_bytes(p, buf, 0);
    assert_int_equal(idx_read_images(p, &ds), -1);
    ASSERT_MSG_HAS("truncated header");
    write_gz(p, buf, 7);
    assert_int_equal(idx_read_images(p, &ds), -1);
    ASSERT_MSG_HAS("truncated header: expected 16 bytes, decompressed data has 7 bytes");
}

static void test_idx_truncated_data(void **state) {
    (void)state;
    uint8_t buf[16 + 1000] = {0};
    uint32_t dims[3] = {10000, 28, 28};
    idx_bytes(buf, 0x803, dims, 3, NULL, 0);
    const char *p = tu_tmp_path("trunc-data");
    write_bytes(p, buf, 16 + 984);
    Dataset ds;
    assert_int_equal(idx_read_images(p, &ds), -1);
    ASSERT_MSG_HAS(p);
    ASSERT_MSG_HAS("truncated: header says 10000 images of 28x28 (7840016 bytes), file has 1000 bytes");
    write_gz(p, buf, 16 + 984);
    assert_int_equal(idx_read_images(p, &ds), -1);
    ASSERT_MSG_HAS("truncated: header says 10000 images of 28x28 (7840016 bytes), "
                   "decompressed data has 1000 bytes");

    /* A gzip stream cut in the middle (the .gz download interrupted). */
    Dataset big = make_ds(100, 28, 28, 3);
    uint8_t *full = calloc(1, 16 + 78400 + 1);
    uint32_t d2[3] = {100, 28, 28};
    size_t len = idx_bytes(full, 0x803, d2, 3, big.pixels, 78400);
    write_gz(p, full, len);
    size_t gzlen;
    char *gz = read_all(p, &gzlen);
    write_bytes(p, gz, gzlen / 2);
    assert_int_equal(idx_read_images(p, &ds), -1);
    ASSERT_MSG_HAS("truncated: header says 100 images of 28x28 (78416 bytes)");
    /* A flipped bit inside the compressed stream: zlib's message, our path. */
    gz[gzlen / 2] ^= 0x10;
    write_bytes(p, gz, gzlen);
    assert_int_equal(idx_read_images(p, &ds), -1);
    ASSERT_MSG_HAS(p);
    ASSERT_MSG_HAS("corrupt gzip data");
    assert_null(strstr(dg_errmsg(), "<fd:"));
    free(gz);

    /* Labels: truncated too. */
    uint32_t d1[1] = {50};
    len = idx_bytes(full, 0x801, d1, 1, big.labels, 40);
    write_bytes(p, full, len);
    uint8_t *lab;
    int n;
    assert_int_equal(idx_read_labels(p, &lab, &n), -1);
    ASSERT_MSG_HAS("truncated: header says 50 labels (58 bytes), file has 48 bytes");

    /* Extra bytes after the data are refused, not ignored. */
    len = idx_bytes(full, 0x803, d2, 3, big.pixels, 78400);
    write_bytes(p, full, len + 1);
    assert_int_equal(idx_read_images(p, &ds), -1);
    ASSERT_MSG_HAS("goes on past");
    free(full);
    dataset_free(&big);
}

static void test_idx_bad_dims(void **state) {
    (void)state;
    uint8_t buf[64];
    const char *p = tu_tmp_path("dims");
    Dataset ds;
    uint32_t zero[3] = {5, 0, 28};
    write_bytes(p, buf, idx_bytes(buf, 0x803, zero, 3, NULL, 0));
    assert_int_equal(idx_read_images(p, &ds), -1);
    ASSERT_MSG_HAS("zero-size dims");
    /* A tiny gzip that claims the maximum: refused before any allocation. */
    uint32_t huge[3] = {DATA_MAX_IMAGES + 1, 28, 28};
    write_gz(p, buf, idx_bytes(buf, 0x803, huge, 3, NULL, 0));
    assert_int_equal(idx_read_images(p, &ds), -1);
    ASSERT_MSG_HAS("implausible");
    uint32_t side[3] = {1, 5000, 28};
    write_gz(p, buf, idx_bytes(buf, 0x803, side, 3, NULL, 0));
    assert_int_equal(idx_read_images(p, &ds), -1);
    ASSERT_MSG_HAS("implausible");
    uint32_t total[3] = {200000, 4096, 4096};  /* each bound fine, the product not */
    write_gz(p, buf, idx_bytes(buf, 0x803, total, 3, NULL, 0));
    assert_int_equal(idx_read_images(p, &ds), -1);
    ASSERT_MSG_HAS("limit 2^31");
    /* Within bounds but only the header present: the growing buffer stops at
     * the first chunk and the message says how little there was. */
    uint32_t lie[3] = {2000000, 32, 32};
    write_gz(p, buf, idx_bytes(buf, 0x803, lie, 3, NULL, 0));
    assert_int_equal(idx_read_images(p, &ds), -1);
    ASSERT_MSG_HAS("decompressed data has 16 bytes");
}

static void test_idx_count_mismatch(void **state) {
    (void)state;
    Dataset ds = make_ds(12, 4, 4, 4), back;
    const char *im = tu_tmp_path("mm-images"), *lb = tu_tmp_path("mm-labels");
    assert_int_equal(idx_write_images(im, &ds), 0);
    assert_int_equal(idx_write_labels(lb, ds.labels, 11), 0);
    assert_int_equal(idx_read_pair(im, lb, &back), -1);
    char want[1200];
    snprintf(want, sizeof want, "%s: 11 labels, but %s has 12 images (image/label count mismatch)",
             lb, im);
    ASSERT_MSG_HAS(want);
    assert_null(back.pixels);
    assert_null(back.labels);
    dataset_free(&ds);
}

static void test_idx_label_out_of_range(void **state) {
    (void)state;
    uint8_t buf[64], lab[6] = {0, 9, 3, 10, 1, 2};
    uint32_t dims[1] = {6};
    const char *p = tu_tmp_path("label10");
    write_bytes(p, buf, idx_bytes(buf, 0x801, dims, 1, lab, 6));
    uint8_t *l = (uint8_t *)1;
    int n = 5;
    assert_int_equal(idx_read_labels(p, &l, &n), -1);
    ASSERT_MSG_HAS(p);
    ASSERT_MSG_HAS("label 10 at index 3 is not in 0..9");
    assert_null(l);
    assert_int_equal(n, 0);
    /* The writer refuses to produce such a file in the first place. */
    assert_int_equal(idx_write_labels(p, lab, 6), -1);
    ASSERT_MSG_HAS("label 10 at index 3");
}

/* ---- CSV -------------------------------------------------------------------- */

static void test_csv_roundtrip_train(void **state) {
    (void)state;
    Dataset ds = make_ds(20, 28, 28, 5), back;
    const char *p = tu_tmp_path("train.csv");
    assert_int_equal(csv_write(p, &ds), 0);
    char *text = read_all(p, NULL);
    assert_memory_equal(text, "label,pixel0,pixel1,", 20);
    assert_non_null(strstr(text, ",pixel783\n"));
    free(text);
    assert_int_equal(csv_read(p, &back), 0);
    assert_ds_equal(&ds, &back);
    dataset_free(&back);
    assert_int_equal(dataset_load(p, NULL, &back), 0);  /* by path too */
    assert_ds_equal(&ds, &back);
    dataset_free(&back);
    dataset_free(&ds);
}

static void test_csv_roundtrip_test(void **state) {
    (void)state;
    Dataset ds = make_ds(7, 28, 28, 6), back;
    free(ds.labels);
    ds.labels = NULL;
    const char *p = tu_tmp_path("test.csv");
    assert_int_equal(csv_write(p, &ds), 0);
    char *text = read_all(p, NULL);
    assert_memory_equal(text, "pixel0,pixel1,", 14);
    free(text);
    assert_int_equal(csv_read(p, &back), 0);
    assert_null(back.labels);
    assert_ds_equal(&ds, &back);
    dataset_free(&back);
    dataset_free(&ds);
}

static void test_csv_line_endings(void **state) {
    (void)state;
    Dataset ds;
    const char *p = tu_tmp_path("crlf.csv");
    uint8_t want[8] = {0, 255, 17, 3, 4, 5, 6, 200};
    const char *variants[] = {
        "label,pixel0,pixel1,pixel2,pixel3\r\n7,0,255,17,3\r\n2,4,5,6,200\r\n",
        "label,pixel0,pixel1,pixel2,pixel3\n7,0,255,17,3\n2,4,5,6,200",     /* no final newline */
        "label,pixel0,pixel1,pixel2,pixel3\n7,0,255,17,3\n2,4,5,6,200\n\n\r\n\n", /* blank tail */
        "\xEF\xBB\xBFlabel,pixel0,pixel1,pixel2,pixel3\n7,0,255,17,3\n2,4,5,6,200\r\n", /* BOM */
    };
    for (int v = 0; v < 4; v++) {
        write_text(p, variants[v]);
        if (csv_read(p, &ds) != 0) fail_msg("variant %d: %s", v, dg_errmsg());
        assert_int_equal(ds.n, 2);
        assert_int_equal(ds.rows, 2);
        assert_int_equal(ds.cols, 2);
        assert_memory_equal(ds.pixels, want, 8);
        assert_int_equal(ds.labels[0], 7);
        assert_int_equal(ds.labels[1], 2);
        dataset_free(&ds);
    }
}

/* Writes text to bad.csv, expects csv_read to fail with "bad.csv:line:" and
 * the phrase. */
static void expect_csv_error(const char *text, int line, const char *phrase) {
    const char *p = tu_tmp_path("bad.csv");
    write_text(p, text);
    Dataset ds = {0};
    int rc = csv_read(p, &ds);
    if (rc != -1) fail_msg("accepted bad CSV: %s", text);
    assert_null(ds.pixels);
    ASSERT_MSG_HAS(at_line(p, line));
    ASSERT_MSG_HAS(phrase);
}

#define HDR "label,pixel0,pixel1,pixel2,pixel3\n"

static void test_csv_bad_inputs(void **state) {
    (void)state;
    expect_csv_error(HDR "1,2,3,4,5\n1,2,3,4\n", 3, "expected 5 columns, found 4");
    expect_csv_error(HDR "1,2,3,4,5,6\n", 2, "expected 5 columns, found 6");
    expect_csv_error(HDR "1,2,3,4,5,\n", 2, "expected 5 columns, found 6");
    expect_csv_error(HDR "1,2,3,4\n", 2, "expected 5 columns, found 4");  /* too few bytes too */
    expect_csv_error(HDR "1,2,abc,4,5\n", 2, "column 3 (pixel1): 'abc' is not an integer");
    expect_csv_error(HDR "1,2,3,4.5,5\n", 2, "column 4 (pixel2): '4.5' is not an integer");
    expect_csv_error(HDR "1,2,,4,5\n", 2, "column 3 (pixel1): empty cell");
    expect_csv_error(HDR "1,2,3,4,256\n", 2, "column 5 (pixel3): pixel value 256 is outside 0..255");
    expect_csv_error(HDR "1,2,3,4,5\n1,-1,3,4,5\n", 3, "column 2 (pixel0): pixel value -1 is outside 0..255");
    expect_csv_error(HDR "10,2,3,4,5\n", 2, "column 1 (label): label 10 is outside 0..9");
    expect_csv_error(HDR "1,2,3,4,99999999999999999999\n", 2, "pixel value 99999999999999999999 is outside 0..255");
    expect_csv_error("", 1, "empty file");
    expect_csv_error("\n1,2\n", 1, "empty header line");
    expect_csv_error("lable,pixel0,pixel1,pixel2,pixel3\n1,2,3,4,5\n", 1,
                     "unknown header: first column is 'lable'");
    expect_csv_error("1,2,3,4,5\n", 1, "missing header");
    expect_csv_error("label,pixel0,pixel2,pixel2,pixel3\n1,2,3,4,5\n", 1,
                     "column 3 of the header is 'pixel2', expected 'pixel1'");
    expect_csv_error("label,pixel0,pixel1,pixel2\n1,2,3,4\n", 1, "3 pixel columns is not a perfect square");
    expect_csv_error(HDR "1,2,3,4,5\n\n1,2,3,4,5\n", 3, "blank line");
    expect_csv_error(HDR, 2, "no data rows");
    expect_csv_error("pixel0,pixel1,pixel2,pixel3\n1,2,3,4,5\n", 2, "expected 4 columns, found 5");
}

static void test_csv_submission(void **state) {
    (void)state;
    uint8_t pred[4] = {7, 2, 1, 0};
    const char *p = tu_tmp_path("submission.csv");
    assert_int_equal(csv_write_submission(p, pred, 4), 0);
    char *text = read_all(p, NULL);
    assert_string_equal(text, "ImageId,Label\n1,7\n2,2\n3,1\n4,0\n");
    free(text);
    pred[2] = 11;
    assert_int_equal(csv_write_submission(p, pred, 4), -1);
    ASSERT_MSG_HAS("not a digit");
}

/* ---- images ---------------------------------------------------------------- */

/* Writes a PNG of any colour type with libpng directly (rows packed). */
static void write_png_raw(const char *path, int w, int h, int ctype, int depth,
                          const uint8_t *data, size_t rowbytes) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_int_equal(setjmp(png_jmpbuf(png)), 0);
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, ctype, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, data + (size_t)y * rowbytes);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(fp);
}

static void test_png_roundtrip(void **state) {
    (void)state;
    Dataset ds = make_ds(1, 19, 23, 7);  /* 23 wide, 19 high: not square on purpose */
    const char *p = tu_tmp_path("digit.png");
    assert_int_equal(image_write_png_gray(p, ds.pixels, 23, 19), 0);
    uint8_t *px;
    int w, h;
    assert_int_equal(image_read_gray(p, &px, &w, &h), 0);
    assert_int_equal(w, 23);
    assert_int_equal(h, 19);
    assert_memory_equal(px, ds.pixels, 23 * 19);
    free(px);
    dataset_free(&ds);
}

static void test_png_rgba_on_white(void **state) {
    (void)state;
    /* Pixels: opaque black, transparent black, half-transparent black,
     * opaque pure red (luma 76), half-transparent mid gray. */
    uint8_t rgba[5 * 4] = {0, 0, 0, 255, 0, 0, 0, 0, 0, 0, 0, 128, 255, 0, 0, 255, 100, 100, 100, 51};
    const char *p = tu_tmp_path("rgba.png");
    write_png_raw(p, 5, 1, PNG_COLOR_TYPE_RGB_ALPHA, 8, rgba, 20);
    uint8_t *px;
    int w, h;
    assert_int_equal(image_read_gray(p, &px, &w, &h), 0);
    assert_int_equal(w, 5);
    assert_int_equal(h, 1);
    uint8_t want[5] = {0, 255, 127, 76, 224};  /* a*g + (1-a)*255, rounded */
    for (int i = 0; i < 5; i++) {
        if (abs((int)px[i] - (int)want[i]) > 1)
            fail_msg("pixel %d: got %d, want %d", i, px[i], want[i]);
    }
    free(px);

    /* 16-bit gray and 8-bit RGB decode to the expected gray too. */
    uint8_t g16[2 * 3 * 2] = {0x00, 0x00, 0xff, 0xff, 0x80, 0x80, 0x12, 0x34, 0x00, 0x00, 0xff, 0xff};
    write_png_raw(p, 3, 2, PNG_COLOR_TYPE_GRAY, 16, g16, 6);
    assert_int_equal(image_read_gray(p, &px, &w, &h), 0);
    assert_int_equal(w, 3);
    assert_int_equal(h, 2);
    assert_int_equal(px[0], 0);
    assert_int_equal(px[1], 255);
    assert_int_equal(px[2], 128);
    free(px);
    uint8_t rgb[3] = {0, 255, 0};  /* pure green: luma 150 */
    write_png_raw(p, 1, 1, PNG_COLOR_TYPE_RGB, 8, rgb, 3);
    assert_int_equal(image_read_gray(p, &px, &w, &h), 0);
    assert_int_equal(px[0], 150);
    free(px);
}

static void test_pgm_read(void **state) {
    (void)state;
    uint8_t *px;
    int w, h;
    /* P5 8-bit, with a comment in the header. */
    const char *p = tu_tmp_path("img.pgm");
    uint8_t p5[64];
    int k = sprintf((char *)p5, "P5\n# made by hand\n3 2\n255\n");
    uint8_t body[6] = {0, 10, 20, 255, 254, 1};
    memcpy(p5 + k, body, 6);
    write_bytes(p, p5, (size_t)k + 6);
    assert_int_equal(image_read_gray(p, &px, &w, &h), 0);
    assert_int_equal(w, 3);
    assert_int_equal(h, 2);
    assert_memory_equal(px, body, 6);
    free(px);
    /* P5 16-bit, big-endian, maxval 65535. */
    k = sprintf((char *)p5, "P5 2 1 65535\n");
    uint8_t b16[4] = {0xff, 0xff, 0x80, 0x80};
    memcpy(p5 + k, b16, 4);
    write_bytes(p, p5, (size_t)k + 4);
    assert_int_equal(image_read_gray(p, &px, &w, &h), 0);
    assert_int_equal(w, 2);
    assert_int_equal(px[0], 255);
    assert_int_equal(px[1], 128);
    free(px);
    /* P2 ASCII with maxval 15 (rescaled). */
    write_text(p, "P2\n# ascii\n2 2\n15\n0 15\n# mid-raster comment\n 5\t10\n");
    assert_int_equal(image_read_gray(p, &px, &w, &h), 0);
    assert_int_equal(w, 2);
    assert_int_equal(h, 2);
    uint8_t want[4] = {0, 255, 85, 170};
    assert_memory_equal(px, want, 4);
    free(px);
}

static void test_image_bad_inputs(void **state) {
    (void)state;
    uint8_t *px = (uint8_t *)1;
    int w, h;
    const char *p = tu_tmp_path("bad.img");
    assert_int_equal(image_read_gray(tu_tmp_path("nope.png"), &px, &w, &h), -1);
    ASSERT_MSG_HAS("nope.png");
    ASSERT_MSG_HAS("No such file");
    assert_null(px);
    write_text(p, "P5\n4 4\n255\nabc");
    assert_int_equal(image_read_gray(p, &px, &w, &h), -1);
    ASSERT_MSG_HAS(p);
    ASSERT_MSG_HAS("truncated");
    write_text(p, "P5\n100000 100000\n255\n");  /* a bomb: refused from the header */
    assert_int_equal(image_read_gray(p, &px, &w, &h), -1);
    ASSERT_MSG_HAS("outside 1..4096");
    write_text(p, "P2\n2 2\n255\n1 2 3 300\n");
    assert_int_equal(image_read_gray(p, &px, &w, &h), -1);
    ASSERT_MSG_HAS("above maxval");
    write_text(p, "P2\n2 2\n255\n1 2 3\n");
    assert_int_equal(image_read_gray(p, &px, &w, &h), -1);
    ASSERT_MSG_HAS("truncated");
    write_text(p, "GIF89a....");
    assert_int_equal(image_read_gray(p, &px, &w, &h), -1);
    ASSERT_MSG_HAS("unknown image format");
    write_text(p, "");
    assert_int_equal(image_read_gray(p, &px, &w, &h), -1);
    ASSERT_MSG_HAS("empty file");
    /* A PNG cut short, and a PNG claiming 5000 pixels across. */
    uint8_t row[5000] = {0};
    write_png_raw(p, 5000, 1, PNG_COLOR_TYPE_GRAY, 8, row, 5000);
    assert_int_equal(image_read_gray(p, &px, &w, &h), -1);
    ASSERT_MSG_HAS(p);
    ASSERT_MSG_HAS("outside 1..4096");
    Dataset ds = make_ds(1, 40, 40, 8);
    assert_int_equal(image_write_png_gray(p, ds.pixels, 40, 40), 0);
    size_t len;
    char *png = read_all(p, &len);
    write_bytes(p, png, len / 2);
    assert_int_equal(image_read_gray(p, &px, &w, &h), -1);
    ASSERT_MSG_HAS("bad PNG: truncated");
    free(png);
    dataset_free(&ds);
}

#ifdef DG_HAVE_JPEG
static void test_jpeg_read(void **state) {
    (void)state;
    /* A flat gray JPEG: lossy, but a constant image survives exactly. */
    const char *p = tu_tmp_path("flat.jpg");
    FILE *fp = fopen(p, "wb");
    assert_non_null(fp);
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, fp);
    c.image_width = 16;
    c.image_height = 8;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 95, TRUE);
    jpeg_start_compress(&c, TRUE);
    uint8_t row[16 * 3];
    memset(row, 100, sizeof row);
    while (c.next_scanline < c.image_height) {
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(fp);
    uint8_t *px;
    int w, h;
    assert_int_equal(image_read_gray(p, &px, &w, &h), 0);
    assert_int_equal(w, 16);
    assert_int_equal(h, 8);
    for (int i = 0; i < 16 * 8; i++) assert_true(abs(px[i] - 100) <= 2);
    free(px);
}
#endif

/* ---- dataset_load --------------------------------------------------------------- */

static void test_dataset_load_folder(void **state) {
    (void)state;
    char dir[600];
    snprintf(dir, sizeof dir, "%s/mnist", tu_tmpdir());
    assert_int_equal(mkdir(dir, 0700), 0);
    Dataset tr = make_ds(30, 28, 28, 9), te = make_ds(10, 28, 28, 10), back;
    char p[800];
    /* train: plain dashed names; test: gzip with the dotted spelling. */
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte", dir);
    assert_int_equal(idx_write_images(p, &tr), 0);
    snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte", dir);
    assert_int_equal(idx_write_labels(p, tr.labels, tr.n), 0);
    uint8_t *buf = malloc(16 + 7840);
    uint32_t dims[3] = {10, 28, 28};
    snprintf(p, sizeof p, "%s/t10k-images.idx3-ubyte.gz", dir);
    write_gz(p, buf, idx_bytes(buf, 0x803, dims, 3, te.pixels, 7840));
    snprintf(p, sizeof p, "%s/t10k-labels.idx1-ubyte.gz", dir);
    write_gz(p, buf, idx_bytes(buf, 0x801, dims, 1, te.labels, 10));
    free(buf);

    assert_int_equal(dataset_load(dir, "train", &back), 0);
    assert_ds_equal(&tr, &back);
    dataset_free(&back);
    assert_int_equal(dataset_load(dir, "test", &back), 0);
    assert_ds_equal(&te, &back);
    dataset_free(&back);

    assert_int_equal(dataset_load(dir, "valid", &back), -1);
    ASSERT_MSG_HAS("unknown split 'valid'");
    snprintf(p, sizeof p, "%s/t10k-labels.idx1-ubyte.gz", dir);
    remove(p);
    assert_int_equal(dataset_load(dir, "test", &back), -1);
    ASSERT_MSG_HAS(dir);
    ASSERT_MSG_HAS("no MNIST labels for split 'test'");
    assert_int_equal(dataset_load(tu_tmp_path("nowhere"), "train", &back), -1);
    ASSERT_MSG_HAS("No such file");
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte", dir);
    assert_int_equal(dataset_load(p, "train", &back), -1);
    ASSERT_MSG_HAS("expected a folder");
    dataset_free(&tr);
    dataset_free(&te);
}

/* ---- subsets, statistics ------------------------------------------------------ */

static void test_subset_and_stats(void **state) {
    (void)state;
    Dataset ds = make_ds(10, 2, 2, 11), sub;
    int idx[3] = {7, 0, 7};
    dataset_subset(&sub, &ds, idx, 3);
    assert_int_equal(sub.n, 3);
    assert_memory_equal(sub.pixels, ds.pixels + 28, 4);
    assert_memory_equal(sub.pixels + 4, ds.pixels, 4);
    assert_int_equal(sub.labels[0], 7);
    assert_int_equal(sub.labels[1], 0);
    dataset_free(&sub);

    /* Half 0, half 255: mean 0.5, population std 0.5. */
    for (int i = 0; i < 40; i++) ds.pixels[i] = i % 2 ? 255 : 0;
    float m, s;
    dataset_mean_std(&ds, &m, &s);
    assert_float_equal(m, 0.5f, 1e-6f);
    assert_float_equal(s, 0.5f, 1e-6f);
    /* Against a direct double computation on random data. */
    Dataset r = make_ds(50, 28, 28, 12);
    double sum = 0, sq = 0;
    size_t tot = 50 * 784;
    for (size_t i = 0; i < tot; i++) sum += r.pixels[i] / 255.0;
    double mean = sum / tot;
    for (size_t i = 0; i < tot; i++) sq += (r.pixels[i] / 255.0 - mean) * (r.pixels[i] / 255.0 - mean);
    dataset_mean_std(&r, &m, &s);
    assert_float_equal(m, (float)mean, 1e-6f);
    assert_float_equal(s, (float)sqrt(sq / tot), 1e-6f);
    dataset_free(&r);
    dataset_free(&ds);
}

/* ---- splits -------------------------------------------------------------------- */

/* Unequal classes: class c has 30 + 7*c samples, interleaved. */
static uint8_t *make_labels(int *n_out) {
    int n = 0, cnt[10];
    for (int c = 0; c < 10; c++) { cnt[c] = 30 + 7 * c; n += cnt[c]; }
    uint8_t *l = malloc((size_t)n);
    int k = 0;
    while (k < n)
        for (int c = 0; c < 10; c++)
            if (cnt[c]) { l[k++] = (uint8_t)c; cnt[c]--; }
    *n_out = n;
    return l;
}

static void test_split_stratified(void **state) {
    (void)state;
    int n;
    uint8_t *lab = make_labels(&n);
    int *tr, *va, ntr, nva;
    split_stratified(lab, n, 0.2f, 42, &tr, &ntr, &va, &nva);
    assert_int_equal(ntr + nva, n);
    /* Disjoint and covering, each sorted. */
    int *seen = calloc((size_t)n, sizeof(int));
    for (int i = 0; i < ntr; i++) { seen[tr[i]]++; if (i) assert_true(tr[i] > tr[i - 1]); }
    for (int i = 0; i < nva; i++) { seen[va[i]]++; if (i) assert_true(va[i] > va[i - 1]); }
    for (int i = 0; i < n; i++) assert_int_equal(seen[i], 1);
    /* Per-class proportion within +-1 of 20%. */
    int cls[10] = {0}, vcls[10] = {0};
    for (int i = 0; i < n; i++) cls[lab[i]]++;
    for (int i = 0; i < nva; i++) vcls[lab[va[i]]]++;
    for (int c = 0; c < 10; c++) assert_true(fabs(vcls[c] - 0.2 * cls[c]) <= 1.0);
    /* Same seed: same split; another seed: a different one. */
    int *tr2, *va2, ntr2, nva2;
    split_stratified(lab, n, 0.2f, 42, &tr2, &ntr2, &va2, &nva2);
    assert_int_equal(nva2, nva);
    assert_memory_equal(va2, va, (size_t)nva * sizeof(int));
    free(tr2); free(va2);
    split_stratified(lab, n, 0.2f, 43, &tr2, &ntr2, &va2, &nva2);
    assert_int_equal(nva2, nva);  /* counts depend only on the classes */
    assert_true(memcmp(va2, va, (size_t)nva * sizeof(int)) != 0);
    free(tr2); free(va2);
    /* Edge fractions. */
    split_stratified(lab, n, 0.0f, 1, &tr2, &ntr2, &va2, &nva2);
    assert_int_equal(nva2, 0);
    assert_int_equal(ntr2, n);
    free(tr2); free(va2);
    split_stratified(lab, n, 1.0f, 1, &tr2, &ntr2, &va2, &nva2);
    assert_int_equal(nva2, n);
    free(tr2); free(va2);
    free(seen); free(tr); free(va); free(lab);
}

static void test_split_kfold(void **state) {
    (void)state;
    int n;
    uint8_t *lab = make_labels(&n);
    const int k = 5;
    int *fold;
    split_kfold(lab, n, k, 7, &fold);
    int per[10][5] = {{0}}, tot[5] = {0};
    for (int i = 0; i < n; i++) {
        assert_true(fold[i] >= 0 && fold[i] < k);
        per[lab[i]][fold[i]]++;
        tot[fold[i]]++;
    }
    for (int c = 0; c < 10; c++) {
        int lo = n, hi = 0;
        for (int f = 0; f < k; f++) { lo = per[c][f] < lo ? per[c][f] : lo; hi = per[c][f] > hi ? per[c][f] : hi; }
        assert_true(hi - lo <= 1);
    }
    int lo = n, hi = 0;
    for (int f = 0; f < k; f++) { lo = tot[f] < lo ? tot[f] : lo; hi = tot[f] > hi ? tot[f] : hi; }
    assert_true(hi - lo <= 1);
    int *again, *other;
    split_kfold(lab, n, k, 7, &again);
    assert_memory_equal(again, fold, (size_t)n * sizeof(int));
    split_kfold(lab, n, k, 8, &other);
    assert_true(memcmp(other, fold, (size_t)n * sizeof(int)) != 0);
    free(again); free(other); free(fold); free(lab);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idx_roundtrip_raw),
        cmocka_unit_test(test_idx_roundtrip_gzip),
        cmocka_unit_test(test_idx_missing_file),
        cmocka_unit_test(test_idx_wrong_magic),
        cmocka_unit_test(test_idx_truncated_header),
        cmocka_unit_test(test_idx_truncated_data),
        cmocka_unit_test(test_idx_bad_dims),
        cmocka_unit_test(test_idx_count_mismatch),
        cmocka_unit_test(test_idx_label_out_of_range),
        cmocka_unit_test(test_csv_roundtrip_train),
        cmocka_unit_test(test_csv_roundtrip_test),
        cmocka_unit_test(test_csv_line_endings),
        cmocka_unit_test(test_csv_bad_inputs),
        cmocka_unit_test(test_csv_submission),
        cmocka_unit_test(test_png_roundtrip),
        cmocka_unit_test(test_png_rgba_on_white),
        cmocka_unit_test(test_pgm_read),
        cmocka_unit_test(test_image_bad_inputs),
#ifdef DG_HAVE_JPEG
        cmocka_unit_test(test_jpeg_read),
#endif
        cmocka_unit_test(test_dataset_load_folder),
        cmocka_unit_test(test_subset_and_stats),
        cmocka_unit_test(test_split_stratified),
        cmocka_unit_test(test_split_kfold),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
