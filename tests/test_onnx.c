/* test_onnx.c — ONNX import and export (src/model/onnx_*.c):
 *   - PyTorch fixtures (tests/ref/onnx, tools/make_fixtures.py onnx): what
 *     torch.onnx.export writes for the seed notebooks' classes, imported with
 *     the fixture's input convention, gives PyTorch's class distribution on 8
 *     MNIST images: log-softmax within 1e-4 (a final LogSoftmax is dropped by
 *     the import, so logits agree up to a per-image constant);
 *   - round trip: every zoo network with random weights, exported and
 *     imported back, predicts bit-identically — through the stored spec, and
 *     node by node (the generic path, ONNX_IMPORT_GRAPH) for the networks
 *     without a spatial transformer, where only the order of float
 *     operations may differ (within 1e-5);
 *   - refusals: an unsupported op names the node, a truncated file, a
 *     tensor shorter than its shape, a cycle, an initializer of 2^40
 *     elements, an ensemble export.
 * Left out: ONNX Runtime (tests/e2e/onnx_ort.sh runs it). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "digits_internal.h"
#include "model/onnx.h"
#include "testutil.h"

#define N_IMG 8

/* log-softmax of each row of z (n, 10) in place. */
static void log_softmax_rows(float *z, int n) {
    for (int i = 0; i < n; i++) {
        float *r = z + (size_t)i * 10, mx = r[0];
        for (int k = 1; k < 10; k++) mx = r[k] > mx ? r[k] : mx;
        double s = 0;
        for (int k = 0; k < 10; k++) s += exp((double)r[k] - mx);
        float lse = mx + (float)log(s);
        for (int k = 0; k < 10; k++) r[k] -= lse;
    }
}

/* Forward n uint8 images through m (batch set here); logits copied to out (n, 10). */
static void forward_pixels(Model *m, const uint8_t *px, int n, float *out) {
    model_set_batch(m, n, 0, 1);
    model_load_pixels(m, px, n);
    memcpy(out, model_forward(m, n, 0), (size_t)n * 10 * sizeof(float));
}

/* ---- PyTorch fixtures --------------------------------------------------------- */

static float meta_f(const char *path, const char *key) {
    SafeTensors *s = safetensors_open(path);
    assert_non_null(s);
    const char *v = safetensors_meta(s, key);
    assert_non_null(v);
    float f = strtof(v, NULL);
    safetensors_close(s);
    return f;
}

static void check_fixture(const char *name) {
    char onnx[256], out[256];
    snprintf(onnx, sizeof onnx, "%s", tu_fixture("ref/onnx/"));
    strncat(onnx, name, sizeof onnx - strlen(onnx) - 8);
    snprintf(out, sizeof out, "%s.out.safetensors", onnx);
    strcat(onnx, ".onnx");
    OnnxImportOptions o = {meta_f(out, "input_scale"), meta_f(out, "mean"), meta_f(out, "std")};
    Model m;
    if (onnx_import(&m, onnx, &o, 0) < 0) fail_msg("%s", dg_errmsg());
    float *pixels, *want;
    size_t np, nz;
    assert_int_equal(safetensors_read(out, "pixels", &pixels, &np), 0);
    assert_int_equal(safetensors_read(out, "logits", &want, &nz), 0);
    assert_int_equal(np, (size_t)N_IMG * 784);
    assert_int_equal(nz, (size_t)N_IMG * 10);
    uint8_t px[N_IMG * 784];
    for (size_t i = 0; i < np; i++) px[i] = (uint8_t)pixels[i];
    float got[N_IMG * 10];
    forward_pixels(&m, px, N_IMG, got);
    log_softmax_rows(got, N_IMG);
    log_softmax_rows(want, N_IMG);
    float d = 0;
    for (size_t i = 0; i < nz; i++) d = fmaxf(d, fabsf(got[i] - want[i]));
    print_message("%-16s %2d layers, max |d log p| vs PyTorch %.3g (tol 1e-4)\n", name, m.n_layers, (double)d);
    assert_true(d <= 1e-4f);
    free(pixels);
    free(want);
    model_free(&m);
}

static void test_torch_fixtures(void **state) {
    (void)state;
    static const char *const names[] = {"s000-bigkernel", "s000-resnet5", "s001-lenet", "s001-deeper", "s003-net",
                                        "s004-twobranch"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) check_fixture(names[i]);
}

/* ---- round trip ------------------------------------------------------------------ */

/* A zoo network with random weights and batch norm statistics. */
static void random_model(Model *m, const char *zoo, uint64_t seed) {
    assert_int_equal(model_build_named(m, zoo), 0);
    model_init_params(m, seed);
    Rng rng;
    rng_seed(&rng, seed, "test_onnx");
    for (int i = 0; i < m->n_layers; i++) {
        Layer *l = &m->layers[i];
        if (l->type != LAYER_BATCHNORM) continue;
        for (int c = 0; c < l->in.c; c++) {
            l->buffer[c] = 0.4f * (rng_uniform(&rng) - 0.5f);
            l->buffer[l->in.c + c] = 0.5f + rng_uniform(&rng);
        }
    }
    m->norm_mean = 0.1307f, m->norm_std = 0.3081f;
}

static void test_round_trip(void **state) {
    (void)state;
    static const char *const zoo[] = {"lenet5", "cnn-bn", "resnet5", "stn", "twobranch", "kaggle-deep", "mlp"};
    uint8_t px[N_IMG * 784];
    Rng rng;
    rng_seed(&rng, 5, "pixels");
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)rng_below(&rng, 256);
    for (size_t z = 0; z < sizeof zoo / sizeof *zoo; z++) {
        Model a, b;
        random_model(&a, zoo[z], 11 + z);
        const char *path = tu_tmp_path("rt.onnx");
        const Model *ms[1] = {&a};
        assert_int_equal(onnx_export(path, ms, 1, 0, NULL, zoo[z]), 0);
        float za[N_IMG * 10], zb[N_IMG * 10];
        forward_pixels(&a, px, N_IMG, za);
        /* through the stored spec: identical */
        if (onnx_import(&b, path, NULL, 0) < 0) fail_msg("%s", dg_errmsg());
        assert_float_equal(b.norm_mean, a.norm_mean, 0);
        forward_pixels(&b, px, N_IMG, zb);
        assert_memory_equal(za, zb, sizeof za);
        model_free(&b);
        /* node by node (digits' graph input is 0..255: scale 255) */
        if (strcmp(zoo[z], "stn") != 0) {
            OnnxImportOptions o = {255.0f, 0.0f, 1.0f};
            if (onnx_import(&b, path, &o, ONNX_IMPORT_GRAPH) < 0) fail_msg("%s", dg_errmsg());
            forward_pixels(&b, px, N_IMG, zb);
            float d = 0;
            for (int i = 0; i < N_IMG * 10; i++) d = fmaxf(d, fabsf(za[i] - zb[i]));
            print_message("%-12s round trip: spec identical, graph max |d logit| %.3g\n", zoo[z], (double)d);
            assert_true(d <= 1e-5f);
            model_free(&b);
        } else {
            assert_int_equal(onnx_import(&b, path, NULL, ONNX_IMPORT_GRAPH), -1);
            print_message("%-12s round trip: spec identical; graph: %s\n", zoo[z], dg_errmsg());
        }
        model_free(&a);
    }
}

/* ---- refusals ---------------------------------------------------------------------- */

/* Write len bytes to the scratch folder as name; returns the path. */
static const char *write_tmp(const char *name, const void *data, size_t len) {
    const char *path = tu_tmp_path(name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
    return path;
}

/* The bytes of a file (owned). */
static uint8_t *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc(*len);
    assert_int_equal(fread(p, 1, *len, f), *len);
    fclose(f);
    return p;
}

/* Replace the first occurrence of from with to (same length) in buf. */
static int patch(uint8_t *buf, size_t len, const char *from, const char *to) {
    size_t n = strlen(from);
    assert_int_equal(n, strlen(to));
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(buf + i, from, n) == 0) {
            memcpy(buf + i, to, n);
            return 0;
        }
    return -1;
}

static void expect_refused(const char *path, const char *needle) {
    Model m;
    assert_int_equal(onnx_import(&m, path, NULL, ONNX_IMPORT_GRAPH), -1);
    print_message("refused: %s\n", dg_errmsg());
    if (!strstr(dg_errmsg(), needle)) fail_msg("'%s' lacks '%s'", dg_errmsg(), needle);
}

static void test_refusals(void **state) {
    (void)state;
    Model a;
    random_model(&a, "lenet5", 3);
    const char *src = tu_tmp_path("lenet5.onnx");
    const Model *ms[3] = {&a, &a, &a};
    assert_int_equal(onnx_export(src, ms, 1, 0, NULL, "lenet5"), 0);
    size_t len;
    uint8_t *buf = slurp(src, &len);

    /* an op outside the set, named: Tanh -> Sinh (same length) */
    uint8_t *b2 = malloc(len);
    memcpy(b2, buf, len);
    assert_int_equal(patch(b2, len, "Tanh_", "Sinh_"), 0); /* the node's name */
    assert_int_equal(patch(b2, len, "\"\x04Tanh", "\"\x04Sinh"), 0); /* op_type: field 4, length 4 */
    expect_refused(write_tmp("sinh.onnx", b2, len), "node 'Sinh_");
    expect_refused(tu_tmp_path("sinh.onnx"), "(op Sinh) is not supported");

    /* truncated */
    expect_refused(write_tmp("trunc.onnx", buf, len / 2), "truncated, malformed");

    /* a value nobody defines: the first Conv reads a renamed weight */
    memcpy(b2, buf, len);
    assert_int_equal(patch(b2, len, "m0/0.weight", "m0/0.weighT"), 0); /* the node's input, before the initializers */
    expect_refused(write_tmp("undef.onnx", b2, len), "reads 'm0/0.weighT', which no graph input");

    /* a cycle: Conv_2 reads v5 (input field 1, length 2), the output of Conv_5, which reads Conv_2's */
    memcpy(b2, buf, len);
    assert_int_equal(patch(b2, len, "\x0a\x02v1", "\x0a\x02v5"), 0);
    expect_refused(write_tmp("cycle.onnx", b2, len), "node 'Conv_2' reads 'v5'");

    /* the same through onnx_check_buffer (the fuzz target's entry) */
    assert_int_equal(onnx_check_buffer(buf, len, "ok.onnx"), 0);
    assert_int_equal(onnx_check_buffer(buf, 3, "short.onnx"), -1);
    free(b2);
    free(buf);

    /* an ensemble export is not one network */
    const char *ens = tu_tmp_path("ens.onnx");
    assert_int_equal(onnx_export(ens, ms, 3, 1, (const char *[]){"digits.members", "[]", NULL}, "ens"), 0);
    Model m;
    assert_int_equal(onnx_import(&m, ens, NULL, 0), -1);
    assert_non_null(strstr(dg_errmsg(), "ensemble"));
    model_free(&a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_torch_fixtures),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
