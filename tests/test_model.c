/* test_model.c — spec parser (good and bad specs), model file save/load
 * (round trip, atomicity, corrupted files), optimiser and schedule values,
 * metrics, and determinism of training (same seed -> identical weights). */
#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/blocks.h"
#include "digits_internal.h"
#include "ops/ops.h"
#include "testutil.h"

/* ==== spec parser ========================================================= */

static void test_zoo_specs_build(void **state) {
    const char *names[] = {"lenet5", "cnn", "cnn-deep", "cnn-bn"};
    const size_t params[] = {44426, 44426, 0, 872426};
    for (int i = 0; i < 4; i++) {
        Model m;
        int r = model_build_named(&m, names[i]);
        if (r) print_error("%s\n", dg_errmsg());
        assert_int_equal(r, 0);
        if (params[i]) assert_int_equal(m.n_param + m.n_buffer, params[i]);
        model_free(&m);
    }
}

static void test_bad_specs(void **state) {
    struct {
        const char *spec, *expect;
    } cases[] = {
        {"conv3d out=6\n", "t.spec:1: unknown layer 'conv3d'"},
        {"# c\nconv2d out=6 kernal=5\n", "t.spec:2: conv2d: unknown argument 'kernal'"},
        {"conv2d out=six kernel=5\n", "t.spec:1: conv2d: out=six is not an integer"},
        {"conv2d out=6\n", "t.spec:1: conv2d: conv2d needs kernel=SIZE"},
        {"conv2d out=6 kernel=29\n", "t.spec:1: conv2d: conv2d kernel 29 is larger"},
        {"conv2d out=6 kernel=5 stride=0\n", "t.spec:1: conv2d: stride=0 is out of range"},
        {"flatten\nlinear out=11\n", "t.spec:2: the last layer gives 11x1x1 outputs, expected 10 logits"},
        {"relu\ninput 1x28x28\n", "t.spec:2: 'input' must come before the first layer"},
        {"input 1x28\nflatten\nlinear out=10\n", "t.spec:1: input shape should be CxHxW"},
        {"# nothing\n\n", "t.spec: no layers"},
        {"dropout\n", "t.spec:1: dropout: dropout needs p=PROBABILITY"},
        {"dropout p=1.5\n", "t.spec:1: dropout: p=1.5 is out of range"},
        {"linear out=10 bias\n", "t.spec:1: 'bias' is not of the form key=value"},
        {"linear out=10 out=10\n", "t.spec:1: argument 'out' given twice"},
        {"maxpool size=40\n", "t.spec:1: maxpool: pool size 40 is larger than its input"},
        {"conv2d out=6 kernel=5 init=xavier\n", "t.spec:1: conv2d: init=xavier is not one of torch, he_uniform"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        Model m;
        int r = model_build(&m, cases[i].spec, "t.spec");
        print_message("%-45s -> %s\n", cases[i].expect, dg_errmsg());
        assert_int_equal(r, -1);
        assert_non_null(strstr(dg_errmsg(), cases[i].expect));
    }
}

/* init=: each scheme's bound (largest |w| close to it, none beyond; he_normal:
 * its truncation at two standard deviations) and its
 * biases (Keras's zeros; PyTorch's U(-1/sqrt(fan_in), ..)). */
static void test_init_schemes(void **state) {
    static const struct {
        const char *init;
        double conv_bound, fc_bound; /* conv 1->64 5x5 (fan_in 25, fan_out 1600); linear 64 -> 10 */
        int zero_bias;
    } cases[] = {
        {"torch", 0.2, 0.125, 0},
        {"he_uniform", 0.48989795, 0.30618622, 1},
        {"glorot_uniform", 0.060764362, 0.28474739, 1},
        {"he_normal", 0.64309768, 0.40193605, 1}, /* 2 std: truncation point */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char spec[256];
        snprintf(spec, sizeof spec, "input 1x5x5\nconv2d out=64 kernel=5 init=%s\nflatten\nlinear out=10 init=%s\n",
                 cases[i].init, cases[i].init);
        Model m;
        int r = model_build(&m, spec, "t.spec");
        if (r) print_error("%s\n", dg_errmsg());
        assert_int_equal(r, 0);
        model_init_params(&m, 11);
        const float *cw = m.params, *cb = cw + 64 * 25, *fw = cb + 64, *fb = fw + 640; /* PyTorch's order */
        double cmax = 0, fcmax = 0, bmax = 0;
        for (int k = 0; k < 64 * 25; k++) cmax = fmax(cmax, fabs(cw[k]));
        for (int k = 0; k < 640; k++) fcmax = fmax(fcmax, fabs(fw[k]));
        for (int k = 0; k < 64; k++) bmax = fmax(bmax, fabs(cb[k]));
        for (int k = 0; k < 10; k++) bmax = fmax(bmax, fabs(fb[k]));
        print_message("init=%-15s conv max |w| %.4f (bound %.4f), fc %.4f (%.4f), max |b| %.4f\n", cases[i].init,
                      cmax, cases[i].conv_bound, fcmax, cases[i].fc_bound, bmax);
        assert_true(cmax <= cases[i].conv_bound * (1 + 1e-6) && cmax > 0.95 * cases[i].conv_bound);
        assert_true(fcmax <= cases[i].fc_bound * (1 + 1e-6) && fcmax > 0.95 * cases[i].fc_bound);
        assert_true(cases[i].zero_bias ? bmax == 0 : bmax > 0);
        model_free(&m);
    }
}

static void test_unknown_zoo_name(void **state) {
    Model m;
    assert_int_equal(model_build_named(&m, "no-such-model"), -1);
    assert_non_null(strstr(dg_errmsg(), "unknown model 'no-such-model'"));
}

/* ==== model file ========================================================== */

static void random_pixels(uint8_t *px, size_t n, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed, "test");
    for (size_t i = 0; i < n; i++) px[i] = (uint8_t)rng_below(&r, 256);
}

static void test_save_load_identical_predictions(void **state) {
    Model a, b;
    assert_int_equal(model_build_named(&a, "cnn-bn"), 0);
    model_init_params(&a, 7);
    for (size_t i = 0; i < a.n_buffer; i++) a.buffers[i] = 0.5f + 0.001f * (float)i; /* non-trivial BN stats */
    a.norm_mean = 0.13f;
    a.norm_std = 0.31f;
    a.metrics_json = strdup("{\"test_accuracy\":0.5}");
    const char *path = tu_tmp_path("m.safetensors");
    assert_int_equal(model_save(&a, path), 0);
    int r = model_load(&b, path);
    if (r) print_error("%s\n", dg_errmsg());
    assert_int_equal(r, 0);
    assert_int_equal(a.n_param, b.n_param);
    assert_memory_equal(a.params, b.params, a.n_param * sizeof(float));
    assert_memory_equal(a.buffers, b.buffers, a.n_buffer * sizeof(float));
    assert_true(b.norm_mean == a.norm_mean && b.norm_std == a.norm_std);
    assert_string_equal(b.metrics_json, a.metrics_json);

    uint8_t px[16 * 784];
    random_pixels(px, sizeof px, 3);
    model_set_batch(&a, 16, 0, 1);
    model_set_batch(&b, 16, 0, 1);
    model_load_pixels(&a, px, 16);
    model_load_pixels(&b, px, 16);
    float *la = model_forward(&a, 16, 0), *lb = model_forward(&b, 16, 0);
    assert_memory_equal(la, lb, 16 * 10 * sizeof(float));
    model_free(&a);
    model_free(&b);
}


/* Eval-mode fusion (conv/linear + ReLU/BN/dropout/flatten as one layer)
 * gives the logits of the layer-by-layer forward, in fp32 and bf16, for
 * chains, graphs (resnet5: a conv read by two layers is not fused) and the
 * Keras order conv-ReLU-BN. */
static void test_eval_fusion_matches_unfused(void **state) {
    const char *names[] = {"cnn-bn", "kaggle-deep", "mlp", "resnet5", "stn", "twobranch"};
    const int expect_fused[] = {1, 1, 1, 1, 1, 1};
    uint8_t px[5 * 784];
    random_pixels(px, sizeof px, 11);
    for (int bf16 = 0; bf16 <= 1; bf16++) {
        if (bf16 && !conv2d_set_bf16(1)) break; /* no AVX512_BF16 here */
        for (int i = 0; i < 6; i++) {
            Model m;
            assert_int_equal(model_build_named(&m, names[i]), 0);
            model_init_params(&m, 5);
            for (size_t j = 0; j < m.n_buffer; j++) m.buffers[j] = 0.3f + 0.01f * (float)(j % 97); /* BN stats */
            m.norm_mean = 0.13f;
            m.norm_std = 0.31f;
            model_set_batch(&m, 5, 0, 2); /* fused, outputs in shared slots */
            model_load_pixels(&m, px, 5);
            float got[50];
            memcpy(got, model_forward(&m, 5, 0), sizeof got);
            assert_true(m.acts_shared);
            model_keep_outputs(&m); /* layer by layer, every output kept */
            assert_false(m.acts_shared);
            model_load_pixels(&m, px, 5);
            const float *want = model_forward(&m, 5, 0);
            int fused = 0;
            for (int l = 0; l < m.n_layers; l++) fused += m.fuse_end[l] > l;
            if (expect_fused[i]) assert_true(fused > 0);
            for (int j = 0; j < 50; j++)
                if (!(fabsf(got[j] - want[j]) <= 1e-5f * (1.0f + fabsf(want[j]))))
                    fail_msg("%s%s: logit %d fused %.8g, layer by layer %.8g", names[i], bf16 ? " bf16" : "", j,
                             got[j], want[j]);
            model_free(&m);
        }
    }
    conv2d_set_bf16(0);
}

/* Random batch-norm running statistics (mean in [-0.3, 0.3], var in
 * [0.5, 1.5]) and affine parameters, the same for every model of a spec. */
static void random_bn_stats(Model *m, uint64_t seed) {
    Rng rng;
    rng_seed(&rng, seed, "bn");
    for (int i = 0; i < m->n_layers; i++) {
        Layer *l = &m->layers[i];
        if (l->type != LAYER_BATCHNORM) continue;
        const int C = l->in.c;
        for (int c = 0; c < C; c++) {
            l->buffer[c] = rng_uniform_range(&rng, -0.3f, 0.3f);     /* running mean */
            l->buffer[C + c] = rng_uniform_range(&rng, 0.5f, 1.5f);  /* running var */
            l->param[c] = rng_uniform_range(&rng, 0.5f, 1.5f);       /* gamma */
            l->param[C + c] = rng_uniform_range(&rng, -0.2f, 0.2f);  /* beta */
        }
    }
}

/* n images' logits of the inference model `got` (weights packed once and
 * kept between calls) against the eval forward of the training model
 * `want` (packs per call), within 1e-5. */
static void expect_same_logits(Model *got, Model *want, const uint8_t *px, int n, const char *what) {
    model_load_pixels(got, px, n);
    model_load_pixels(want, px, n);
    const float *g = model_forward(got, n, 0), *w = model_forward(want, n, 0);
    for (int j = 0; j < n * MODEL_NUM_CLASSES; j++)
        if (!(fabsf(g[j] - w[j]) <= 1e-5f * (1.0f + fabsf(w[j]))))
            fail_msg("%s: %s: logit %d inference %.8g, reference %.8g", got->spec_name, what, j, g[j], w[j]);
}

/* Inference models keep each conv layer's packed weights between forwards
 * (conv2d_forward_packed): one image, again with other pixels, a batch
 * over two threads, one image again, and after the weights change
 * (model_params_changed) — always the logits of the training model's eval
 * forward, with batch norm on non-trivial running statistics. */
static void test_infer_packed_weights(void **state) {
    const char *names[] = {"cnn-bn", "kaggle-deep", "lenet5", "resnet5"};
    uint8_t px[5 * 784];
    random_pixels(px, sizeof px, 23);
    for (int i = 0; i < 4; i++) {
        Model inf, ref;
        assert_int_equal(model_build_named(&inf, names[i]), 0);
        assert_int_equal(model_build_named(&ref, names[i]), 0);
        Model *both[2] = {&inf, &ref};
        for (int k = 0; k < 2; k++) {
            model_init_params(both[k], 9);
            random_bn_stats(both[k], 9);
            both[k]->norm_mean = 0.13f;
            both[k]->norm_std = 0.31f;
        }
        model_set_batch(&inf, 5, 0, 2);
        model_set_batch(&ref, 5, 1, 2);
        assert_non_null(inf.conv_packed);
        assert_null(ref.conv_packed);
        dg_blocks_reset(); /* earlier calls on a busy machine may have turned the split off for a while */
        expect_same_logits(&inf, &ref, px, 1, "first image");
        int packed = 0;
        for (int l = 0; l < inf.n_layers; l++) packed += inf.conv_packed[l].slices > 0;
        if (tu_avx512_kernels()) assert_true(packed > 0); /* the packed path ran */
#ifdef _OPENMP
        if (i == 0 && tu_avx512_kernels()) { /* cnn-bn's 3x3 Winograd layers took the one-image cut by rows */
            int rows = 0;
            for (int l = 0; l < inf.n_layers; l++) rows += inf.conv_packed[l].rows == 2;
            assert_true(rows >= 2);
        }
#endif
        expect_same_logits(&inf, &ref, px + 784, 1, "second image");
        expect_same_logits(&inf, &ref, px, 5, "batch of 5");
        expect_same_logits(&inf, &ref, px + 2 * 784, 1, "one image after the batch");
        for (int k = 0; k < 2; k++) /* new weights: every conv weight halved */
            for (int l = 0; l < both[k]->n_layers; l++) {
                Layer *ly = &both[k]->layers[l];
                if (ly->type != LAYER_CONV2D) continue;
                for (size_t j = 0; j < ly->n_param; j++) ly->param[j] *= 0.5f;
            }
        model_params_changed(&inf);
        for (int l = 0; l < inf.n_layers; l++) assert_int_equal(inf.conv_packed[l].slices, 0);
        expect_same_logits(&inf, &ref, px, 1, "after the weights changed");
        expect_same_logits(&inf, &ref, px, 5, "batch after the weights changed");
        model_free(&inf);
        model_free(&ref);
    }
}

/* Every zoo network (each NAME.spec beside models/cnn.spec): an inference
 * model (packed weights, fused epilogues, one-image calls split over two
 * threads) against the reference path — the training model's eval forward
 * layer by layer (model_keep_outputs: no fusion) — within 1e-5, for one
 * image, a batch of 3, then one image again, and a batch of 16 (8 images
 * a thread: its 3x3 layers on Winograd F(4x4,3x3), conv2d/wino4.c). */
static void test_infer_every_zoo_model(void **state) {
    char spec[PATH_MAX];
    assert_int_equal(model_find_spec("cnn", spec, sizeof spec), 0);
    *strrchr(spec, '/') = '\0';
    DIR *d = opendir(spec);
    assert_non_null(d);
    uint8_t px[16 * 784];
    random_pixels(px, sizeof px, 31);
    int models = 0;
    for (struct dirent *e; (e = readdir(d));) {
        const size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".spec") != 0) continue;
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(len - 5), e->d_name);
        Model inf, ref;
        assert_int_equal(model_build_named(&inf, name), 0);
        assert_int_equal(model_build_named(&ref, name), 0);
        Model *both[2] = {&inf, &ref};
        for (int k = 0; k < 2; k++) {
            model_init_params(both[k], 17);
            random_bn_stats(both[k], 17);
            both[k]->norm_mean = 0.13f;
            both[k]->norm_std = 0.31f;
        }
        model_set_batch(&inf, 16, 0, 2);
        model_set_batch(&ref, 16, 1, 2);
        model_keep_outputs(&ref);
        expect_same_logits(&inf, &ref, px, 1, "one image");
        expect_same_logits(&inf, &ref, px + 784, 1, "one image again");
        expect_same_logits(&inf, &ref, px, 3, "batch of 3");
        expect_same_logits(&inf, &ref, px + 2 * 784, 1, "one image after the batch");
        expect_same_logits(&inf, &ref, px, 16, "batch of 16");
        model_free(&inf);
        model_free(&ref);
        models++;
    }
    closedir(d);
    assert_true(models >= 10);
}

/* An inference model and a reference model (the training model's
 * layer-by-layer eval forward) of one spec, the same weights and random
 * batch-norm statistics, every third gamma negative. */
static void build_pair(Model *inf, Model *ref, const char *spec, int max_batch, int threads) {
    Model *both[2] = {inf, ref};
    for (int k = 0; k < 2; k++) {
        int r = model_build(both[k], spec, "t.spec");
        if (r) fail_msg("%s", dg_errmsg());
        model_init_params(both[k], 41);
        random_bn_stats(both[k], 41);
        for (int i = 0; i < both[k]->n_layers; i++) {
            Layer *l = &both[k]->layers[i];
            if (l->type == LAYER_BATCHNORM)
                for (int c = 0; c < l->in.c; c += 3) l->param[c] = -l->param[c];
        }
        both[k]->norm_mean = 0.13f;
        both[k]->norm_std = 0.31f;
    }
    model_set_batch(inf, max_batch, 0, threads);
    model_set_batch(ref, max_batch, 1, threads);
    model_keep_outputs(ref);
}

/* Same logits as the reference for one image, a batch, one image again,
 * then after every weight changes (model_params_changed: the folded
 * copies are rebuilt). */
static void expect_pair_agrees(Model *inf, Model *ref, const uint8_t *px, int batch) {
    const size_t img = shape_size(inf->input_shape);
    expect_same_logits(inf, ref, px, 1, "one image");
    expect_same_logits(inf, ref, px, batch, "batch");
    expect_same_logits(inf, ref, px + img, 1, "one image after the batch");
    for (size_t j = 0; j < inf->n_param; j++) {
        inf->params[j] *= 0.75f;
        ref->params[j] *= 0.75f;
    }
    for (size_t j = 0; j < inf->n_buffer; j++) { /* running means shift, variances grow */
        inf->buffers[j] += 0.05f;
        ref->buffers[j] += 0.05f;
    }
    model_params_changed(inf);
    model_params_changed(ref);
    expect_same_logits(inf, ref, px, 1, "one image, new weights");
    expect_same_logits(inf, ref, px, batch, "batch, new weights");
}

/* Batch norm folds into the weights of the conv/linear layer right before
 * it (eval copies may sit between; with or without a bias) and only there:
 * a batch norm after a ReLU stays an epilogue step. Training models never
 * fold. */
static void test_infer_fold_batchnorm(void **state) {
    static const struct {
        const char *spec;
        int folds[4]; /* conv/linear layers whose fold_at is set, -1 ends */
        int keeps[4]; /* conv/linear layers that must not fold, -1 ends */
    } cases[] = {
        {"input 1x12x12\nconv2d out=16 kernel=3 pad=1\nbatchnorm\nrelu\nconv2d out=16 kernel=3 bias=0\nbatchnorm\n"
         "flatten\nlinear out=32\nbatchnorm\nrelu\ndropout p=0.5\nlinear out=10\n",
         {0, 3, 6, -1}, {10, -1}},
        {"input 1x12x12\nconv2d out=16 kernel=3\nrelu\nbatchnorm\nflatten\nlinear out=20\nrelu\nbatchnorm\n"
         "linear out=10\n",
         {-1}, {0, 4, 7, -1}},
        {"input 1x9x9\nconv2d out=8 kernel=3\ndropout2d p=0.2\nbatchnorm\nrelu\nbatchnorm\nflatten\nlinear out=10 "
         "bias=0\nbatchnorm\n",
         {0, 6, -1}, {-1}},
        {"input 1x8x8\nflatten\nlinear out=24 bias=0\nbatchnorm\nrelu\nlinear out=10\n", {1, -1}, {4, -1}},
    };
    uint8_t px[4 * 144];
    random_pixels(px, sizeof px, 43);
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        Model inf, ref;
        build_pair(&inf, &ref, cases[c].spec, 4, 2);
        assert_non_null(inf.fold_at);
        for (int k = 0; cases[c].folds[k] >= 0; k++) assert_true(inf.fold_at[cases[c].folds[k]] != SIZE_MAX);
        for (int k = 0; cases[c].keeps[k] >= 0; k++) assert_true(inf.fold_at[cases[c].keeps[k]] == SIZE_MAX);
        for (int l = 0; l < ref.n_layers; l++) assert_true(!ref.fold_at || ref.fold_at[l] == SIZE_MAX);
        expect_pair_agrees(&inf, &ref, px, 4);
        if (conv2d_set_bf16(1)) { /* bf16 rounds the folded weights: within bf16's precision */
            model_set_batch(&inf, 4, 0, 2);
            for (int n = 1; n <= 4; n += 3) {
                model_load_pixels(&inf, px, n);
                model_load_pixels(&ref, px, n);
                const float *g = model_forward(&inf, n, 0), *w = model_forward(&ref, n, 0);
                for (int j = 0; j < n * MODEL_NUM_CLASSES; j++)
                    if (!(fabsf(g[j] - w[j]) <= 2e-2f * (1.0f + fabsf(w[j]))))
                        fail_msg("case %zu bf16: logit %d inference %.8g, reference %.8g", c, j, g[j], w[j]);
            }
            conv2d_set_bf16(0);
        }
        model_free(&inf);
        model_free(&ref);
    }
}

/* Max pooling and zero padding in the conv epilogue (inference models):
 * odd conv outputs (the last row and column left out), windows other than
 * 2x2, ReLU before or after the pool, batch norm before it (negative
 * gammas: not monotone), asymmetric padding (kaggle-deep's),
 * a layer large enough for the one-image split over two threads and a
 * batch over two threads; tanh steps and average pooling; always the
 * reference's logits. */
static void test_infer_fused_pool(void **state) {
    static const struct {
        const char *spec;
        int conv, pool; /* conv layer whose group must end at or after pool */
    } cases[] = {
        {"input 1x15x15\nconv2d out=16 kernel=3\nrelu\nmaxpool size=2\nconv2d out=32 kernel=3 pad=1\nbatchnorm\n"
         "maxpool size=3 stride=2\nrelu\nflatten\nlinear out=10\n",
         0, 2},
        {"input 1x15x15\nconv2d out=16 kernel=3\nrelu\nmaxpool size=2\nconv2d out=32 kernel=3 pad=1\nbatchnorm\n"
         "maxpool size=3 stride=2\nrelu\nflatten\nlinear out=10\n",
         3, 5},
        {"input 1x16x16\nconv2d out=16 kernel=3 stride=2 pad=1\nrelu\nbatchnorm\nmaxpool size=2\ndropout p=0.2\n"
         "flatten\nlinear out=10\n",
         0, 3},
        {"input 1x13x13\nconv2d out=32 kernel=3 pad=1\nrelu\nconv2d out=64 kernel=3 pad=1\nbatchnorm\nrelu\n"
         "maxpool size=2\ndropout2d p=0.2\nflatten\nlinear out=10\n",
         2, 5},
        {"input 1x11x11\nconv2d out=32 kernel=5 pad=2\nmaxpool size=2\nrelu\nconv2d out=64 kernel=3\nrelu\n"
         "maxpool size=2\nflatten\nlinear out=10\n",
         0, 1},
        {"input 1x14x14\nconv2d out=32 kernel=3 pad=1\nrelu\nbatchnorm\nzeropad top=1 bottom=2 left=1 right=2\n"
         "conv2d out=32 kernel=5 stride=2\nrelu\nflatten\nlinear out=10\n",
         0, 3},
        {"input 1x14x14\nconv2d out=32 kernel=3 pad=1\nrelu\nconv2d out=64 kernel=3 pad=1\nrelu\nbatchnorm\n"
         "zeropad top=2 left=1\ndropout p=0.1\nconv2d out=16 kernel=5 stride=2\nflatten\nlinear out=10\n",
         2, 6},
        /* tanh steps and average pooling (lenet5's pattern), a batch norm
         * after the tanh (an affine step, not folded), odd outputs, a
         * layer large enough for the one-image split */
        {"input 1x15x15\nconv2d out=16 kernel=4\ntanh\navgpool size=2\nconv2d out=24 kernel=3 pad=1\nbatchnorm\n"
         "tanh\navgpool size=3 stride=2\nflatten\nlinear out=10\n",
         0, 2},
        {"input 1x15x15\nconv2d out=16 kernel=4\ntanh\navgpool size=2\nconv2d out=24 kernel=3 pad=1\nbatchnorm\n"
         "tanh\navgpool size=3 stride=2\nflatten\nlinear out=10\n",
         3, 6},
        {"input 1x12x12\nconv2d out=32 kernel=3 pad=1\ntanh\nbatchnorm\navgpool size=2\nrelu\nconv2d out=64 kernel=3 "
         "pad=1\ntanh\navgpool size=2\nflatten\nlinear out=10\ntanh\nlinear out=10\n",
         0, 3},
        {"input 1x12x12\nconv2d out=32 kernel=3 pad=1\ntanh\nbatchnorm\navgpool size=2\nrelu\nconv2d out=64 kernel=3 "
         "pad=1\ntanh\navgpool size=2\nflatten\nlinear out=10\ntanh\nlinear out=10\n",
         5, 8},
    };
    uint8_t px[9 * 256];
    random_pixels(px, sizeof px, 47);
    for (int bf16 = 0; bf16 <= 1; bf16++) {
        if (bf16 && !conv2d_set_bf16(1)) break; /* no AVX512_BF16 here */
        /* bf16 rounds folded weights otherwise than the reference's, and a
         * one-image split's blocks may take other bf16 paths than the whole
         * layer: the pooling and padding are checked exactly without
         * folding, on one thread (the fold test checks bf16 folding) */
        if (bf16) setenv("DIGITS_INFER_FOLD", "0", 1);
        for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
            Model inf, ref;
            build_pair(&inf, &ref, cases[c].spec, 9, bf16 ? 1 : 2);
            assert_true(inf.fuse_end[cases[c].conv] >= cases[c].pool);
            assert_true(inf.layers[inf.fuse_end[cases[c].conv]].y != NULL);
            for (int l = 0; l < ref.n_layers; l++) /* training models keep the pooling a layer of its own */
                if (ref.layers[l].type == LAYER_CONV2D)
                    for (int j = l + 1; j <= ref.fuse_end[l]; j++) {
                        assert_int_not_equal(ref.layers[j].type, LAYER_MAXPOOL);
                        assert_int_not_equal(ref.layers[j].type, LAYER_ZEROPAD);
                        assert_int_not_equal(ref.layers[j].type, LAYER_AVGPOOL);
                    }
            dg_blocks_reset();
            expect_pair_agrees(&inf, &ref, px, 9);
            model_free(&inf);
            model_free(&ref);
        }
    }
    unsetenv("DIGITS_INFER_FOLD");
    conv2d_set_bf16(0);
}

/* dg_blocks_run (core/blocks.h): every block of every job runs exactly
 * once before the call returns, over helper threads that come and go
 * between jobs, and a block's own nested job runs inline. */
static _Atomic int block_runs[8];
static void count_block(void *arg, int b) {
    (void)arg;
    atomic_fetch_add(&block_runs[b], 1);
}
static void nested_block(void *arg, int b) {
    dg_blocks_run(3, 2, count_block, arg);
    atomic_fetch_add(&block_runs[7], b + 1);
}
static void test_blocks_run(void **state) {
    for (int job = 0; job < 3000; job++) {
        const int n = 1 + job % 7, threads = 1 + job % 3;
        for (int b = 0; b < 8; b++) atomic_store(&block_runs[b], 0);
        dg_blocks_run(n, threads, count_block, NULL);
        for (int b = 0; b < 8; b++) assert_int_equal(atomic_load(&block_runs[b]), b < n ? 1 : 0);
        if (job % 500 == 0) usleep(300); /* let the helper fall asleep now and then */
    }
    for (int b = 0; b < 8; b++) atomic_store(&block_runs[b], 0);
    dg_blocks_run(2, 2, nested_block, NULL);
    for (int b = 0; b < 3; b++) assert_int_equal(atomic_load(&block_runs[b]), 2);
    assert_int_equal(atomic_load(&block_runs[7]), 3);
}

/* Bulk uniforms (dropout noise): in [0,1), mean and variance of U(0,1),
 * the same values whatever the thread count, one draw from the stream. */
static void test_rng_fill_uniform(void **state) {
    const size_t n = (1u << 18) + 3; /* threaded, odd length */
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
    Rng r1, r2, r3;
    rng_seed(&r1, 9, "dropout");
    r2 = r1;
    r3 = r1;
#ifdef _OPENMP
    omp_set_num_threads(1);
#endif
    rng_fill_uniform(&r1, a, n);
#ifdef _OPENMP
    omp_set_num_threads(2);
#endif
    rng_fill_uniform(&r2, b, n);
    assert_memory_equal(a, b, n * sizeof(float));
    assert_memory_equal(&r1, &r2, sizeof r1);
    rng_next(&r3); /* exactly one draw */
    assert_memory_equal(&r1, &r3, sizeof r1);
    double sum = 0, sum2 = 0;
    for (size_t i = 0; i < n; i++) {
        assert_true(a[i] >= 0.0f && a[i] < 1.0f);
        sum += a[i];
        sum2 += (double)a[i] * a[i];
    }
    const double mean = sum / n, var = sum2 / n - mean * mean;
    assert_true(fabs(mean - 0.5) < 0.003 && fabs(var - 1.0 / 12) < 0.002);
    rng_fill_uniform(&r1, b, n); /* the next fill differs */
    assert_true(memcmp(a, b, n * sizeof(float)) != 0);
    free(a);
    free(b);
}

static void write_bytes(const char *path, const char *data, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *d = malloc(*n);
    assert_int_equal(fread(d, 1, *n, f), *n);
    fclose(f);
    return d;
}

/* Replace the first occurrence of `from` by `to` (same length) in a copy. */
static void patch_file(const char *src, const char *dst, const char *from, const char *to) {
    size_t n;
    char *d = slurp(src, &n);
    assert_int_equal(strlen(from), strlen(to));
    char *p = memmem(d, n, from, strlen(from));
    assert_non_null(p);
    memcpy(p, to, strlen(to));
    write_bytes(dst, d, n);
    free(d);
}

static void test_bad_model_files(void **state) {
    Model m;
    assert_int_equal(model_build_named(&m, "lenet5"), 0);
    model_init_params(&m, 1);
    char good[512];
    snprintf(good, sizeof good, "%s", tu_tmp_path("good.safetensors"));
    assert_int_equal(model_save(&m, good), 0);
    model_free(&m);
    size_t n;
    char *d = slurp(good, &n);

    typedef struct {
        const char *name, *expect;
    } BadCase;
    BadCase cases[8];
    int k = 0;
    /* truncated in the tensor data */
    write_bytes(tu_tmp_path("trunc.safetensors"), d, n - 100);
    cases[k++] = (BadCase){"trunc.safetensors", "truncated or corrupted model file"};
    /* truncated inside the header */
    write_bytes(tu_tmp_path("trunc2.safetensors"), d, 50);
    cases[k++] = (BadCase){"trunc2.safetensors", "header length"};
    /* too short for anything */
    write_bytes(tu_tmp_path("tiny.safetensors"), d, 5);
    cases[k++] = (BadCase){"tiny.safetensors", "too short"};
    /* garbage header */
    char junk[64];
    memset(junk, 'x', sizeof junk);
    junk[0] = 40;
    for (int i = 1; i < 8; i++) junk[i] = 0;
    write_bytes(tu_tmp_path("junk.safetensors"), junk, sizeof junk);
    cases[k++] = (BadCase){"junk.safetensors", "header is not valid JSON"};
    /* wrong tensor name */
    patch_file(good, tu_tmp_path("name.safetensors"), "\"0.weight\"", "\"0.wxight\"");
    cases[k++] = (BadCase){"name.safetensors", "missing tensor 0.weight"};
    /* wrong shape */
    patch_file(good, tu_tmp_path("shape.safetensors"), "[6,1,5,5]", "[6,1,5,4]");
    cases[k++] = (BadCase){"shape.safetensors", "tensor 0.weight: shape [6,1,5,4], expected [6,1,5,5]"};
    /* missing file */
    cases[k++] = (BadCase){"absent.safetensors", "No such file"};
    /* a spec inside that does not parse */
    patch_file(good, tu_tmp_path("spec.safetensors"), "conv2d out=6", "convXd out=6");
    cases[k++] = (BadCase){"spec.safetensors", "(embedded spec):"};
    for (int i = 0; i < k; i++) {
        int r = model_load(&m, tu_tmp_path(cases[i].name));
        print_message("%-20s -> %s\n", cases[i].name, dg_errmsg());
        assert_int_equal(r, -1);
        assert_non_null(strstr(dg_errmsg(), cases[i].name));
        assert_non_null(strstr(dg_errmsg(), cases[i].expect));
    }
    free(d);
}

static void test_atomic_save_keeps_previous(void **state) {
    Model m;
    assert_int_equal(model_build_named(&m, "cnn"), 0);
    model_init_params(&m, 1);
    char path[512];
    snprintf(path, sizeof path, "%s", tu_tmp_path("keep.safetensors"));
    assert_int_equal(model_save(&m, path), 0);
    size_t n1;
    char *before = slurp(path, &n1);
    /* an unwritable destination fails with the path named, nothing half-written */
    assert_int_equal(model_save(&m, tu_tmp_path("no/such/dir/m.safetensors")), -1);
    assert_non_null(strstr(dg_errmsg(), "no/such/dir/m.safetensors"));
    /* a directory in the way of the rename: the old file is untouched */
    const char *dir_path = tu_tmp_path("adir");
    mkdir(dir_path, 0755);
    assert_int_equal(model_save(&m, dir_path), -1);
    size_t n2;
    char *after = slurp(path, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(before, after, n1);
    /* no temp files left behind */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -q tmp", tu_tmpdir());
    assert_int_not_equal(system(cmd), 0);
    free(before);
    free(after);
    model_free(&m);
}

/* ==== optimiser and schedules ============================================= */

static void test_sgd_nesterov_by_hand(void **state) {
    Optimizer o;
    optim_init(&o, OPTIM_SGD, 1);
    o.momentum = 0.9f;
    o.nesterov = 1;
    float p = 1.0f, g = 0.5f;
    optim_step(&o, &p, &g, 0.1f); /* buf = 0.5; d = 0.5 + 0.9*0.5 = 0.95 */
    assert_float_equal(p, 1.0f - 0.095f, 1e-7);
    optim_step(&o, &p, &g, 0.1f); /* buf = 0.9*0.5+0.5 = 0.95; d = 0.5+0.855 = 1.355 */
    assert_float_equal(p, 0.905f - 0.1355f, 1e-6);
    optim_free(&o);
}

static void test_adam_first_step_is_lr(void **state) {
    /* Adam's first step moves each parameter by lr * sign(g) (up to eps). */
    Optimizer o;
    optim_init(&o, OPTIM_ADAM, 2);
    float p[2] = {1, 1}, g[2] = {3, -0.01f};
    optim_step(&o, p, g, 0.01f);
    assert_float_equal(p[0], 0.99f, 1e-6);
    assert_float_equal(p[1], 1.01f, 1e-5);
    optim_free(&o);
}

static void test_schedules(void **state) {
    Schedule s;
    sched_init(&s, SCHED_EXP, 1.0f, 100);
    assert_float_equal(sched_lr(&s, 0, 2), 0.95f * 0.95f, 1e-6);
    sched_init(&s, SCHED_STEP, 1.0f, 100);
    s.step_size = 3;
    assert_float_equal(sched_lr(&s, 0, 2), 1.0f, 1e-6);
    assert_float_equal(sched_lr(&s, 0, 3), 0.1f, 1e-6);
    sched_init(&s, SCHED_ONECYCLE, 1.0f, 1000);
    assert_float_equal(sched_lr(&s, 0, 0), 1.0f / 25, 1e-6);          /* starts at max/25 */
    assert_float_equal(sched_lr(&s, 299, 0), 1.0f, 1e-5);              /* peaks at 30 % */
    assert_true(sched_lr(&s, 999, 0) < 1e-5f);                        /* ends near zero */
    assert_true(sched_lr(&s, 150, 0) < sched_lr(&s, 250, 0));
    assert_true(sched_lr(&s, 600, 0) > sched_lr(&s, 800, 0));
    sched_init(&s, SCHED_PLATEAU, 1.0f, 100);
    s.patience = 1;
    sched_epoch_end(&s, 1.0f);
    sched_epoch_end(&s, 1.0f); /* 1 bad epoch: not yet */
    assert_float_equal(sched_lr(&s, 0, 0), 1.0f, 1e-7);
    sched_epoch_end(&s, 1.0f); /* 2 > patience: halve */
    assert_float_equal(sched_lr(&s, 0, 0), 0.5f, 1e-7);
    sched_init(&s, SCHED_COSINE, 1.0f, 100);
    assert_float_equal(sched_lr(&s, 50, 0), 0.5f, 1e-6);
}

/* ==== metrics ============================================================= */

static void test_metrics_by_hand(void **state) {
    uint8_t y[] = {0, 0, 1, 1, 1, 2};
    uint8_t p[] = {0, 1, 1, 1, 0, 2};
    Metrics mt;
    metrics_compute(&mt, y, p, 6);
    assert_float_equal(mt.accuracy, 4.0 / 6, 1e-12);
    assert_int_equal(mt.confusion[1][0], 1);
    assert_float_equal(mt.precision[0], 0.5, 1e-12);
    assert_float_equal(mt.recall[1], 2.0 / 3, 1e-12);
    assert_float_equal(mt.f1[1], 2 * (2.0 / 3) * (2.0 / 3) / (4.0 / 3), 1e-12);
    assert_int_equal(mt.support[1], 3);
    char *json = metrics_to_json(&mt, NULL);
    assert_non_null(strstr(json, "\"accuracy\":"));
    assert_non_null(strstr(json, "\"confusion\":[[1,1,0"));
    free(json);
}

/* ==== determinism ========================================================= */

static void train_synthetic(Model *m, int threads, uint64_t seed) {
    Dataset ds = {0};
    ds.n = 256;
    ds.rows = ds.cols = 28;
    ds.pixels = malloc((size_t)ds.n * 784);
    ds.labels = malloc((size_t)ds.n);
    random_pixels(ds.pixels, (size_t)ds.n * 784, 11);
    for (int i = 0; i < ds.n; i++) ds.labels[i] = (uint8_t)(i % 10);
    assert_int_equal(model_build_named(m, "cnn-bn"), 0);
    model_init_params(m, seed);
    TrainConfig cfg;
    train_config_defaults(&cfg);
    cfg.batch_size = 16;
    cfg.epochs = 10;
    cfg.max_steps = 50;
    cfg.seed = seed;
    cfg.threads = threads;
    cfg.quiet = 1;
    TrainResult res;
    assert_int_equal(train_run(m, &ds, NULL, &cfg, &res), 0);
    assert_int_equal(res.steps, 50);
    dataset_free(&ds);
}

static void test_same_seed_same_weights(void **state) {
    for (int threads = 1; threads <= 2; threads++) {
        Model a, b;
        train_synthetic(&a, threads, 5);
        train_synthetic(&b, threads, 5);
        assert_memory_equal(a.params, b.params, a.n_param * sizeof(float));
        assert_memory_equal(a.buffers, b.buffers, a.n_buffer * sizeof(float));
        Model c;
        train_synthetic(&c, threads, 6);
        assert_true(memcmp(a.params, c.params, a.n_param * sizeof(float)) != 0);
        model_free(&a);
        model_free(&b);
        model_free(&c);
    }
}

/* Early stopping: with a learning rate far too high the validation loss gets
 * worse after the first epochs; training must stop after `patience` bad
 * epochs, end with the best epoch's weights, and the file saved during
 * training must hold exactly those weights. */
/* 320 training and 64 validation images a small network learns: the label
 * is the brightness level of the whole image. */
static void brightness_sets(Dataset *train, Dataset *val) {
    memset(train, 0, sizeof *train);
    memset(val, 0, sizeof *val);
    train->n = 320;
    val->n = 64;
    train->rows = train->cols = val->rows = val->cols = 28;
    train->pixels = malloc((size_t)train->n * 784);
    train->labels = malloc((size_t)train->n);
    val->pixels = malloc((size_t)val->n * 784);
    val->labels = malloc((size_t)val->n);
    assert_non_null(train->pixels), assert_non_null(train->labels);
    assert_non_null(val->pixels), assert_non_null(val->labels);
    for (int i = 0; i < train->n + val->n; i++) {
        int label = i % 10;
        uint8_t *px = i < train->n ? train->pixels + (size_t)i * 784 : val->pixels + (size_t)(i - train->n) * 784;
        memset(px, label * 25, 784);
        px[i % 784] = 255; /* a little variety */
        if (i < train->n) train->labels[i] = (uint8_t)label;
        else val->labels[i - train->n] = (uint8_t)label;
    }
}

/* brightness_sets, the zoo's cnn (seed 3) with fixed normalisation, and the
 * default training settings, quiet, on one thread, batch 32: what a test
 * then changes is what it is about. */
static void brightness_run(Dataset *train, Dataset *val, Model *m, TrainConfig *cfg) {
    brightness_sets(train, val);
    assert_int_equal(model_build_named(m, "cnn"), 0);
    model_init_params(m, 3);
    m->norm_mean = 0.5f;
    m->norm_std = 0.3f;
    train_config_defaults(cfg);
    cfg->batch_size = 32;
    cfg->quiet = 1;
    cfg->threads = 1;
}

static void test_early_stopping_restores_best(void **state) {
    Dataset train, val;
    Model m;
    TrainConfig cfg;
    brightness_run(&train, &val, &m, &cfg);
    cfg.epochs = 30;
    cfg.lr = 0.05f; /* too high for Adam: the validation loss goes up and down */
    cfg.patience = 2;
    char path[512];
    snprintf(path, sizeof path, "%s", tu_tmp_path("best.safetensors"));
    cfg.out_path = path;
    TrainResult res;
    assert_int_equal(train_run(&m, &train, &val, &cfg, &res), 0);
    print_message("ran %d epochs, best epoch %d (val loss %.4f)\n", res.epochs_run, res.best_epoch, res.best_val_loss);
    assert_true(res.epochs_run < cfg.epochs);
    assert_int_equal(res.epochs_run, res.best_epoch + cfg.patience);
    double loss;
    model_predict_dataset(&m, &val, 64, NULL, NULL, &loss);
    assert_float_equal(loss, res.best_val_loss, 1e-6); /* the weights in memory are the best epoch's */
    Model saved;
    assert_int_equal(model_load(&saved, path), 0);
    assert_memory_equal(saved.params, m.params, m.n_param * sizeof(float));
    model_free(&saved);
    model_free(&m);
    dataset_free(&train);
    dataset_free(&val);
}

/* With label smoothing the validation loss is the smoothed one the network
 * trains on (Keras's val_loss): the run's best validation loss is
 * model_validate's with the run's eps on the kept weights, which is the
 * smoothed loss of the forward pass's logits and differs from the plain
 * cross-entropy; with eps 0 model_validate is model_predict_dataset. (The
 * plain loss's floor rises as the network learns the smoothed targets, so
 * it made early, less confident epochs look best.) */
static void test_label_smoothing_validation_loss(void **state) {
    Dataset train, val;
    Model m;
    TrainConfig cfg;
    brightness_run(&train, &val, &m, &cfg);
    cfg.epochs = 4;
    cfg.lr = 0.003f;
    cfg.label_smoothing = 0.1f;
    TrainResult res;
    assert_int_equal(train_run(&m, &train, &val, &cfg, &res), 0);
    double smooth, plain, plain0;
    double acc = model_validate(&m, &val, 64, 0.1f, &smooth);
    print_message("best epoch %d: val loss %.6f (smoothed), acc %.4f\n", res.best_epoch, res.best_val_loss, acc);
    assert_float_equal(smooth, res.best_val_loss, 1e-9);
    assert_float_equal(acc, res.best_val_acc, 1e-12);
    model_load_pixels(&m, val.pixels, val.n);
    const float *logits = model_forward(&m, val.n, 0);
    assert_float_equal(smooth, label_smooth_loss_sum(logits, val.labels, val.n, MODEL_NUM_CLASSES, 0.1f) / val.n,
                       1e-12);
    assert_float_equal(model_validate(&m, &val, 64, 0.0f, &plain0), model_predict_dataset(&m, &val, 64, NULL, NULL,
                       &plain), 0.0);
    assert_float_equal(plain0, plain, 0.0);
    assert_true(fabs(smooth - plain) > 1e-3);
    model_free(&m);
    dataset_free(&train);
    dataset_free(&val);
}

/* ==== stored dtypes: F16 / BF16 =========================================== */

static float f32_of(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Known roundings, both directions: ties go to the even neighbour, values
 * past the largest finite one to Inf, NaN stays NaN. */
static void test_dtype_rounding(void **state) {
    /* bf16: 8 bits of mantissa */
    assert_int_equal(dtype_f32_to_bf16(1.0f), 0x3f80);
    assert_int_equal(dtype_f32_to_bf16(f32_of(0x3f808000)), 0x3f80); /* 1 + 2^-8: tie, down to even */
    assert_int_equal(dtype_f32_to_bf16(f32_of(0x3f818000)), 0x3f82); /* 1 + 3*2^-8: tie, up to even */
    assert_int_equal(dtype_f32_to_bf16(f32_of(0x3f808001)), 0x3f81); /* just above the tie */
    assert_int_equal(dtype_f32_to_bf16(f32_of(0x3f807fff)), 0x3f80); /* just below */
    assert_int_equal(dtype_f32_to_bf16(-2.5f), 0xc020);
    assert_int_equal(dtype_f32_to_bf16(f32_of(0x7f7fffff)), 0x7f80); /* FLT_MAX rounds to Inf */
    assert_int_equal(dtype_f32_to_bf16(INFINITY), 0x7f80);
    assert_true(isnan(dtype_bf16_to_f32(dtype_f32_to_bf16(NAN))));
    assert_true(dtype_bf16_to_f32(0x3f81) == 1.0078125f);
    /* f16: 10 bits of mantissa, exponent -14..15, subnormals down to 2^-24 */
    assert_int_equal(dtype_f32_to_f16(1.0f), 0x3c00);
    assert_int_equal(dtype_f32_to_f16(0.1f), 0x2e66);
    assert_int_equal(dtype_f32_to_f16(-0.0f), 0x8000);
    assert_int_equal(dtype_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);        /* tie, down to even */
    assert_int_equal(dtype_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);    /* tie, up to even */
    assert_int_equal(dtype_f32_to_f16(65504.0f), 0x7bff);               /* largest finite */
    assert_int_equal(dtype_f32_to_f16(65519.0f), 0x7bff);
    assert_int_equal(dtype_f32_to_f16(65520.0f), 0x7c00);               /* tie past it: Inf */
    assert_int_equal(dtype_f32_to_f16(0x1p-14f), 0x0400);               /* smallest normal */
    assert_int_equal(dtype_f32_to_f16(0x1p-14f - 0x1p-25f), 0x0400);    /* tie, up into the normals */
    assert_int_equal(dtype_f32_to_f16(0x1p-24f), 0x0001);               /* smallest subnormal */
    assert_int_equal(dtype_f32_to_f16(0x1p-25f), 0x0000);               /* tie, down to even 0 */
    assert_int_equal(dtype_f32_to_f16(1.5f * 0x1p-24f), 0x0002);        /* tie, up to even 2 */
    assert_int_equal(dtype_f32_to_f16(-1e-10f), 0x8000);
    assert_int_equal(dtype_f32_to_f16(f32_of(0x00000001)), 0x0000);     /* an fp32 subnormal */
    assert_true(isnan(dtype_f16_to_f32(dtype_f32_to_f16(NAN))));
    assert_true(dtype_f16_to_f32(0x0001) == 0x1p-24f);
    assert_true(dtype_f16_to_f32(0x8001) == -0x1p-24f);
    assert_true(dtype_f16_to_f32(0x7bff) == 65504.0f);
    assert_true(dtype_f16_to_f32(0x3555) == 0.333251953125f);
    assert_true(dtype_f16_to_f32(0xfc00) == -INFINITY);
    /* every finite 16-bit value survives fp32 and back, bit for bit */
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) != 0x7c00) assert_int_equal(dtype_f32_to_f16(dtype_f16_to_f32((uint16_t)h)), h);
        if ((h & 0x7f80) != 0x7f80) assert_int_equal(dtype_f32_to_bf16(dtype_bf16_to_f32((uint16_t)h)), h);
    }
    DgDtype d;
    assert_int_equal(dtype_parse("bf16", &d), 0);
    assert_int_equal(d, DG_DTYPE_BF16);
    assert_int_equal(dtype_parse("F16", &d), 0);
    assert_int_equal(d, DG_DTYPE_F16);
    assert_int_equal(dtype_parse("fp32", &d), 0);
    assert_int_equal(d, DG_DTYPE_F32);
    assert_int_equal(dtype_parse("f8", &d), -1);
}

static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* Save in each dtype, load: every weight is the rounded original (exact
 * for F32), the metadata names the dtype, a second save of the loaded model
 * gives the same bytes, and the predictions stay close to fp32's. */
static void test_dtype_round_trip(void **state) {
    Model a;
    assert_int_equal(model_build_named(&a, "cnn-bn"), 0);
    model_init_params(&a, 11);
    for (size_t i = 0; i < a.n_buffer; i++) a.buffers[i] = 0.5f + 0.001f * (float)i;
    uint8_t px[16 * 784];
    random_pixels(px, sizeof px, 5);
    model_set_batch(&a, 16, 0, 1);
    model_load_pixels(&a, px, 16);
    float ref[16 * 10];
    memcpy(ref, model_forward(&a, 16, 0), sizeof ref);
    const DgDtype dts[] = {DG_DTYPE_F32, DG_DTYPE_BF16, DG_DTYPE_F16};
    long f32_size = 0;
    for (int k = 0; k < 3; k++) {
        const char *path = tu_tmp_path("dt.safetensors"), *again = tu_tmp_path("dt2.safetensors");
        assert_int_equal(model_save_dtype(&a, path, dts[k]), 0);
        Model b;
        int r = model_load(&b, path);
        if (r) print_error("%s\n", dg_errmsg());
        assert_int_equal(r, 0);
        for (size_t i = 0; i < a.n_param; i++) {
            float want = dts[k] == DG_DTYPE_BF16  ? dtype_bf16_to_f32(dtype_f32_to_bf16(a.params[i]))
                         : dts[k] == DG_DTYPE_F16 ? dtype_f16_to_f32(dtype_f32_to_f16(a.params[i]))
                                                  : a.params[i];
            assert_true(b.params[i] == want);
        }
        SafeTensors *st = safetensors_open(path);
        assert_non_null(st);
        assert_string_equal(safetensors_meta(st, "digits.dtype"), dtype_name(dts[k]));
        assert_string_equal(safetensors_meta(st, "digits.version"), DIGITS_VERSION);
        char dtypes[32];
        assert_int_equal(safetensors_dtypes(st, dtypes, sizeof dtypes), 1);
        assert_string_equal(dtypes, dtype_name(dts[k]));
        safetensors_close(st);
        /* the 16-bit files are about half the size */
        if (k == 0) f32_size = file_size(path);
        else assert_true(file_size(path) < f32_size * 6 / 10);
        /* values representable in the dtype survive unchanged */
        assert_int_equal(model_save_dtype(&b, again, dts[k]), 0);
        size_t n1, n2;
        char *d1 = slurp(path, &n1), *d2 = slurp(again, &n2);
        assert_int_equal(n1, n2);
        assert_memory_equal(d1, d2, n1);
        free(d1);
        free(d2);
        /* predictions: probabilities within 0.02 of fp32's */
        model_set_batch(&b, 16, 0, 1);
        model_load_pixels(&b, px, 16);
        float *lb = model_forward(&b, 16, 0);
        for (int n = 0; n < 16; n++) {
            float pa[10], pb[10], ma = -1e30f, mb = -1e30f, sa = 0, sb = 0;
            for (int c = 0; c < 10; c++) ma = fmaxf(ma, ref[n * 10 + c]), mb = fmaxf(mb, lb[n * 10 + c]);
            for (int c = 0; c < 10; c++) {
                sa += pa[c] = expf(ref[n * 10 + c] - ma);
                sb += pb[c] = expf(lb[n * 10 + c] - mb);
            }
            for (int c = 0; c < 10; c++) assert_true(fabsf(pa[c] / sa - pb[c] / sb) < 0.02f);
        }
        model_free(&b);
    }
    model_free(&a);
}

/* A NaN or Inf weight is refused on load with the tensor's name; a weight
 * too large for F16 is refused on save. */
static void test_dtype_nonfinite(void **state) {
    Model a, b;
    assert_int_equal(model_build_named(&a, "lenet5"), 0);
    model_init_params(&a, 3);
    const char *path = tu_tmp_path("nan.safetensors");
    a.params[5] = NAN; /* in 0.weight */
    assert_int_equal(model_save(&a, path), 0);
    assert_int_equal(model_load(&b, path), -1);
    assert_non_null(strstr(dg_errmsg(), "nan.safetensors: tensor '0.weight' holds NaN"));
    a.params[5] = 0.5f;
    a.params[a.n_param - 1] = -INFINITY; /* the last layer's bias */
    assert_int_equal(model_save_dtype(&a, path, DG_DTYPE_BF16), 0);
    assert_int_equal(model_load(&b, path), -1);
    assert_non_null(strstr(dg_errmsg(), "holds Inf"));
    assert_non_null(strstr(dg_errmsg(), ".bias'"));
    a.params[a.n_param - 1] = 1e5f;
    assert_int_equal(model_save_dtype(&a, path, DG_DTYPE_F16), -1);
    assert_non_null(strstr(dg_errmsg(), "holds 100000, too large for F16"));
    assert_int_equal(model_save_dtype(&a, path, DG_DTYPE_BF16), 0); /* bf16 has fp32's range */
    assert_int_equal(model_load(&b, path), 0);
    assert_true(b.params[b.n_param - 1] == 99840.0f); /* 1e5 to 8 bits of mantissa */
    model_free(&b);
    model_free(&a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zoo_specs_build),
        cmocka_unit_test(test_bad_specs),
        cmocka_unit_test(test_unknown_zoo_name), cmocka_unit_test(test_init_schemes),
        cmocka_unit_test(test_save_load_identical_predictions),
        cmocka_unit_test(test_eval_fusion_matches_unfused),
        cmocka_unit_test(test_infer_packed_weights),
        cmocka_unit_test(test_infer_every_zoo_model),
        cmocka_unit_test(test_infer_fold_batchnorm),
        cmocka_unit_test(test_infer_fused_pool),
        cmocka_unit_test(test_blocks_run),
        cmocka_unit_test(test_bad_model_files),
        cmocka_unit_test(test_atomic_save_keeps_previous),
        cmocka_unit_test(test_sgd_nesterov_by_hand),
        cmocka_unit_test(test_adam_first_step_is_lr),
        cmocka_unit_test(test_schedules),
        cmocka_unit_test(test_metrics_by_hand),
        cmocka_unit_test(test_same_seed_same_weights),
        cmocka_unit_test(test_rng_fill_uniform),
        cmocka_unit_test(test_early_stopping_restores_best), cmocka_unit_test(test_label_smoothing_validation_loss),
        cmocka_unit_test(test_dtype_rounding),
        cmocka_unit_test(test_dtype_round_trip),
        cmocka_unit_test(test_dtype_nonfinite),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
