/* predict.c — the dg_predict* calls: 28x28 images as they are; images of
 * any size, pixel format and row stride, encoded files and buffers through
 * the MNIST-style preprocessing (data/preprocess.h) and the decoders
 * (data/image.c); each call runs in a workspace of its own (workspace.c).
 * Leaves out: reading several digits from encoded data (decode, then
 * dg_predict_number). */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/check.h"
#include "data/preprocess.h"

/* The model must take 28x28 images (every zoo model does). */
static int check_model(const dg_model *m, const char *func) {
    int rc = api_need(m, func, "model");
    if (rc) return rc;
    if (m->proto.width != DG_SIDE || m->proto.height != DG_SIDE)
        return api_fail(DG_ERR_SIZE, "%s: the model takes %dx%d images, this call %dx%d", func, m->proto.width,
                        m->proto.height, DG_SIDE, DG_SIDE);
    return DG_OK;
}

/* probs (n, 10) -> out[n]. */
static void fill(dg_prediction *out, const float *probs, size_t n, int n_digits) {
    for (size_t i = 0; i < n; i++) {
        const float *p = probs + i * DG_CLASSES;
        int best = 0;
        for (int k = 1; k < DG_CLASSES; k++)
            if (p[k] > p[best]) best = k;
        out[i].digit = best;
        memcpy(out[i].probs, p, sizeof out[i].probs);
        out[i].n_digits = n_digits;
    }
}

/* n 28x28 images through a workspace into out (arguments checked), in
 * passes of the model's batch size. */
static int run(dg_model *m, const uint8_t *images, size_t n, dg_prediction *out, int n_digits) {
    if (n == 0) return DG_OK;
    float *probs = malloc(n * DG_CLASSES * sizeof(float));
    if (!probs) return api_fail(DG_ERR_NOMEM, "out of memory for %zu predictions", n);
    int chunk;
    Classifier *ws = workspace_take(m, n < (size_t)m->batch ? (int)n : m->batch, &chunk);
    for (size_t s = 0; s < n; s += (size_t)chunk) {
        size_t k = n - s < (size_t)chunk ? n - s : (size_t)chunk;
        classifier_predict(ws, images + s * DG_SIDE * DG_SIDE, (int)k, probs + s * DG_CLASSES, NULL);
    }
    workspace_give(m, ws);
    fill(out, probs, n, n_digits);
    free(probs);
    return DG_OK;
}

int dg_predict(dg_model *m, const uint8_t *image, dg_prediction *out) {
    return dg_predict_batch(m, image, 1, out);
}

int dg_predict_batch(dg_model *m, const uint8_t *images, size_t n, dg_prediction *out) {
    int rc = check_model(m, "dg_predict");
    if (rc || (rc = api_need(images, "dg_predict", "images")) || (rc = api_need(out, "dg_predict", "out"))) return rc;
    if (n > DATA_MAX_IMAGES) return api_fail(DG_ERR_ARG, "dg_predict_batch: %zu images; at most %d", n, DATA_MAX_IMAGES);
    return run(m, images, n, out, 1);
}

/* pixels (any format and stride) -> tight gray (1 channel) or RGB (3), RGBA
 * composited on white; *channels says which. malloc'd, or NULL. */
static uint8_t *repack(const uint8_t *pixels, int width, int height, size_t stride, dg_pixel_format format,
                       int *channels) {
    const int in = (int)format, outc = format == DG_GRAY ? 1 : 3;
    uint8_t *t = malloc((size_t)width * height * outc);
    if (!t) return NULL;
    for (int y = 0; y < height; y++) {
        const uint8_t *row = pixels + (size_t)y * stride;
        uint8_t *o = t + (size_t)y * width * outc;
        for (int x = 0; x < width; x++) {
            const uint8_t *p = row + (size_t)x * in;
            for (int c = 0; c < outc; c++) {
                if (in == 4) { /* alpha over white */
                    int a = p[3];
                    o[x * outc + c] = (uint8_t)((p[c] * a + 255 * (255 - a) + 127) / 255);
                } else {
                    o[x * outc + c] = p[c];
                }
            }
        }
    }
    *channels = outc;
    return t;
}

/* Checks an image's geometry; DG_OK or DG_ERR_ARG/DG_ERR_SIZE. */
static int check_image(const char *func, const uint8_t *pixels, int width, int height, size_t *stride,
                       dg_pixel_format format) {
    int rc = api_need(pixels, func, "pixels");
    if (rc) return rc;
    if (format != DG_GRAY && format != DG_RGB && format != DG_RGBA)
        return api_fail(DG_ERR_ARG, "%s: pixel format %d is not DG_GRAY, DG_RGB or DG_RGBA", func, (int)format);
    if (width < 1 || height < 1 || width > DATA_MAX_SIDE || height > DATA_MAX_SIDE)
        return api_fail(DG_ERR_SIZE, "%s: image of %dx%d pixels; each side must be 1..%d", func, width, height,
                        DATA_MAX_SIDE);
    size_t row = (size_t)width * (size_t)format;
    if (*stride == 0) *stride = row;
    if (*stride < row)
        return api_fail(DG_ERR_ARG, "%s: stride %zu is less than a row of %d pixels (%zu bytes)", func, *stride, width,
                        row);
    return DG_OK;
}

/* The preprocessing's failure: a blank image. */
static int prep_error(void) { return DG_ERR_NO_DIGIT; }

int dg_predict_number(dg_model *m, const uint8_t *pixels, int width, int height, size_t stride,
                      dg_pixel_format format, dg_prediction *out, int max, int *n_out) {
    const char *F = "dg_predict_number";
    int rc = check_model(m, F);
    if (rc || (rc = check_image(F, pixels, width, height, &stride, format)) || (rc = api_need(out, F, "out")) ||
        (rc = api_need(n_out, F, "n_out")))
        return rc;
    *n_out = 0;
    if (max < 1) return api_fail(DG_ERR_ARG, "%s: max is %d; at least 1", F, max);
    if (max > PREP_MAX_DIGITS) max = PREP_MAX_DIGITS;
    int channels;
    uint8_t *t = repack(pixels, width, height, stride, format, &channels);
    if (!t) return api_fail(DG_ERR_NOMEM, "out of memory");
    uint8_t input[PREP_MAX_DIGITS][PREP_SIDE * PREP_SIDE];
    PrepInfo info;
    int n = preprocess_number(input[0], max, t, channels, width, height, &info);
    free(t);
    if (n < 0) return prep_error();
    if ((rc = run(m, input[0], (size_t)n, out, info.n_digits))) return rc;
    *n_out = n;
    return DG_OK;
}

/* One digit of a tight gray or RGB image. */
static int predict_tight(dg_model *m, const uint8_t *t, int channels, int width, int height, dg_prediction *out) {
    uint8_t input[PREP_SIDE * PREP_SIDE];
    PrepInfo info;
    if (preprocess_image(input, t, channels, width, height, &info) < 0) return prep_error();
    return run(m, input, 1, out, info.n_digits);
}

int dg_predict_image(dg_model *m, const uint8_t *pixels, int width, int height, size_t stride,
                     dg_pixel_format format, dg_prediction *out) {
    const char *F = "dg_predict_image";
    int rc = check_model(m, F);
    if (rc || (rc = check_image(F, pixels, width, height, &stride, format)) || (rc = api_need(out, F, "out")))
        return rc;
    int channels;
    uint8_t *t = repack(pixels, width, height, stride, format, &channels);
    if (!t) return api_fail(DG_ERR_NOMEM, "out of memory");
    rc = predict_tight(m, t, channels, width, height, out);
    free(t);
    return rc;
}

int dg_predict_encoded(dg_model *m, const void *data, size_t len, dg_prediction *out) {
    const char *F = "dg_predict_encoded";
    int rc = check_model(m, F);
    if (rc || (rc = api_need(data, F, "data")) || (rc = api_need(out, F, "out"))) return rc;
    uint8_t *px;
    int w, h;
    ImageStatus st;
    if (image_decode(data, len, "image", 3, &px, &w, &h, &st) < 0)
        return st == IMAGE_TOO_LARGE ? DG_ERR_SIZE : DG_ERR_FORMAT;
    rc = predict_tight(m, px, 3, w, h, out);
    free(px);
    return rc;
}

int dg_predict_file(dg_model *m, const char *path, dg_prediction *out) {
    const char *F = "dg_predict_file";
    int rc = check_model(m, F);
    if (rc || (rc = api_need(path, F, "path")) || (rc = api_need(out, F, "out"))) return rc;
    uint8_t *px;
    int w, h;
    if (image_read(path, 3, &px, &w, &h) < 0) return api_file_error(path);
    rc = predict_tight(m, px, 3, w, h, out);
    free(px);
    if (rc == DG_ERR_NO_DIGIT) { /* name the file, as `digits predict` does */
        char msg[512];
        snprintf(msg, sizeof msg, "%s", dg_errmsg());
        api_fail(rc, "%s: %s", path, msg);
    }
    return rc;
}
