/* onnx_ref.c — a helper of tests/e2e/onnx_ort.sh (not a test itself):
 *   onnx_ref init SPEC SEED OUT.safetensors
 *       a zoo network with PyTorch-default random weights, random batch
 *       norm running statistics (so that the exported BatchNormalization
 *       nodes compute something) and a spatial transformer moved away from
 *       the identity, saved as a model file;
 *   onnx_ref predict MODEL DATA N OUTDIR
 *       the first N images of DATA's test split through digits' classifier:
 *       OUTDIR/pixels.f32 (N, 1, 28, 28) as float 0..255 (ONNX's input),
 *       OUTDIR/probs.f32 and OUTDIR/logits.f32 (N, 10), little-endian.
 * Left out: anything the exported file itself is checked for (ort_compare.js). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "digits_internal.h"

/* Write n floats to DIR/name; exits 1 on failure. */
static void write_floats(const char *dir, const char *name, const float *v, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(v, sizeof(float), n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "onnx_ref: cannot write %s\n", path);
        exit(1);
    }
}

/* `init`: random weights, random BN statistics (mean in [-0.2, 0.2], var in [0.5, 1.5]). */
static int cmd_init(const char *spec, const char *seed, const char *out) {
    Model m;
    if (model_build_named(&m, spec) < 0) {
        fprintf(stderr, "onnx_ref: %s\n", dg_errmsg());
        return 1;
    }
    uint64_t s = strtoull(seed, NULL, 10);
    model_init_params(&m, s);
    Rng rng;
    rng_seed(&rng, s, "onnx_ref");
    for (int i = 0; i < m.n_layers; i++) {
        Layer *l = &m.layers[i];
        if (l->type == LAYER_LINEAR && l->init_affine_identity) {
            /* a spatial transformer away from the identity: its grid then
             * samples between pixels and outside the image */
            size_t nw = 6 * shape_size(l->in);
            for (size_t k = 0; k < nw; k++) l->param[k] = 0.002f * (rng_uniform(&rng) - 0.5f);
            for (int k = 0; k < 6; k++) l->param[nw + k] += 0.3f * (rng_uniform(&rng) - 0.5f);
        }
        if (l->type != LAYER_BATCHNORM) continue;
        int C = l->in.c;
        for (int c = 0; c < C; c++) {
            l->param[c] = 0.5f + rng_uniform(&rng);             /* gamma */
            l->param[C + c] = 0.2f * (rng_uniform(&rng) - 0.5f); /* beta */
            l->buffer[c] = 0.4f * (rng_uniform(&rng) - 0.5f);   /* running mean */
            l->buffer[C + c] = 0.5f + rng_uniform(&rng);        /* running var */
        }
    }
    int rc = model_save(&m, out) < 0;
    if (rc) fprintf(stderr, "onnx_ref: %s\n", dg_errmsg());
    model_free(&m);
    return rc;
}

/* `predict`: digits' probabilities and logits of the first n test images. */
static int cmd_predict(const char *model, const char *data, int n, const char *dir) {
    Classifier c;
    Dataset ds = {0};
    if (classifier_load(&c, model, 1000, 0) < 0 || dataset_load(data, "test", &ds) < 0) {
        fprintf(stderr, "onnx_ref: %s\n", dg_errmsg());
        return 1;
    }
    if (n > ds.n) n = ds.n;
    size_t px = (size_t)ds.rows * ds.cols;
    float *pixels = dg_xmalloc((size_t)n * px * sizeof(float));
    float *probs = dg_xmalloc((size_t)n * 10 * sizeof(float)), *logits = dg_xmalloc((size_t)n * 10 * sizeof(float));
    for (size_t i = 0; i < (size_t)n * px; i++) pixels[i] = ds.pixels[i];
    classifier_predict(&c, ds.pixels, n, probs, logits);
    write_floats(dir, "pixels.f32", pixels, (size_t)n * px);
    write_floats(dir, "probs.f32", probs, (size_t)n * 10);
    write_floats(dir, "logits.f32", logits, (size_t)n * 10);
    free(pixels);
    free(probs);
    free(logits);
    dataset_free(&ds);
    classifier_free(&c);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "init") == 0) return cmd_init(argv[2], argv[3], argv[4]);
    if (argc == 6 && strcmp(argv[1], "predict") == 0) return cmd_predict(argv[2], argv[3], atoi(argv[4]), argv[5]);
    fprintf(stderr, "usage: onnx_ref init SPEC SEED OUT | onnx_ref predict MODEL DATA N OUTDIR\n");
    return 2;
}
