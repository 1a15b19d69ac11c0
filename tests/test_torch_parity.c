/* test_torch_parity.c — the zoo against the seeds' own PyTorch classes
 * (tools/make_fixtures.py writes each seed class as its write-up gives
 * it): every zoo spec that comes from a seed has the seed class's
 * trainable parameter count ("trainable" in the case file) and computes
 * its eval- and train-mode logits on fixed weights — cnn, bigkernel,
 * cnn-deep, mlp, kaggle-deep, kfold-net, twobranch stop there. lenet5 and
 * cnn-bn (sequential), resnet5 and stn (graphs: residual adds, a 1x1
 * projection shortcut; a localisation net feeding affine_grid +
 * grid_sample with align_corners=True) go further, built from their zoo
 * specs and loaded with the weights PyTorch used
 * (tests/ref/<model>.weights.safetensors, tensor by tensor under the digits
 * names; the 3136x256 layers are generated from an integer hash on both
 * sides, gen_uniform, rather than stored), must reproduce what PyTorch
 * computed on one batch of 4 (tests/ref/<model>.case.safetensors, written by
 * tools/make_fixtures.py):
 *   - eval-mode logits (BN on randomised running statistics);
 *   - train-mode logits with every dropout layer's p set to 0 (PyTorch's
 *     masks come from another RNG, so only p = 0 is comparable), the mean
 *     cross-entropy loss, the gradient of every parameter, and the BN
 *     running statistics after that forward;
 *   - one SGD step (lr 0.1, momentum 0.9, weight decay 1e-4) from the C
 *     gradients, and one Adam step (lr 1e-3, weight decay 1e-4) from the
 *     re-loaded initial weights.
 * The graph models stop after the gradients and BN statistics (their
 * fixtures hold no optimizer steps). Tensors over 16384 elements are
 * stored and compared as their first 16384 values.
 * Each model runs with 1 and with 2 threads.
 *
 * Tolerance: 1e-4 in tu_max_rel_diff's metric (|a-b| / max(1,|b|)). The
 * fixtures are float64 results rounded to float32, so a diff is this
 * library's float32 error alone; make_fixtures.py checks that float32
 * PyTorch stays within 2e-5 of them on the same seed.
 *
 * Why the Adam step starts from the fixture's gradients, not the C ones:
 * a conv or linear bias followed by batch norm has a gradient that is
 * exactly zero in exact arithmetic (BN subtracts the mean), so in float32 it is
 * rounding noise of ~1e-9. Adam's first step is lr * g/(|g| + eps) with
 * g = grad + wd*p, which turns noise of that size into an O(lr) = 1e-3
 * change wherever |wd*p| is small: from their own gradients, float32
 * PyTorch lands 1.7e-3 from the float64 reference on cnn-bn's 11.bias and
 * this library 2.5e-4 on 17.bias (1.5e-4 on 11.bias), though both sets of
 * gradients pass. Feeding the fixture's gradients tests the optimiser's
 * arithmetic; the gradients themselves are tested above. SGD's step moves
 * by lr * grad, which keeps the noise at 1e-10, so it runs on the C
 * gradients end to end.
 *
 * Why SGD runs a second time, from the fixture's gradients, to OPT_TOL =
 * 1e-6: in one step weight decay moves a parameter by lr*wd*p = 1e-5*p,
 * under 1e-4 for every |p| < 10, so the end-to-end check above passes even
 * with weight decay ignored. With PyTorch's own gradients the only
 * difference left is float32 rounding of p - lr*d (~1e-7 for |p| <= 1.5),
 * and dropping weight decay shows on cnn-bn's BN gammas (0.5..1.5: 5e-6 to
 * 1.5e-5). Momentum cannot show in one step at all: PyTorch's first step
 * sets the buffer to the gradient.
 *
 * Fixture names: "grad.<i>.<tensor>", "running.<i>.<tensor>",
 * "sgd.<i>.<tensor>", "adam.<i>.<tensor>" with <i>.<tensor> the model-file
 * name ("3.weight"). Optimiser results of big tensors hold only a prefix
 * (see make_fixtures.py); the test compares as many values as are stored.
 * Leaves out: dropout with p > 0, multi-step training (test_train_smoke).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "model/model.h"
#include "ops/ops.h"
#include "optim/optim.h"
#include "testutil.h"

#define TOL 1e-4f
#define OPT_TOL 1e-6f /* optimiser alone, same inputs as PyTorch: see the header */
#define BATCH 4
#define MAX_TENSORS 8

enum { FULL, GRADS, FORWARD }; /* how far a case goes (see the header) */

typedef struct {
    const char *model; /* zoo name */
    int threads;
    int depth;         /* FULL: optimiser steps too; GRADS: forward + gradients; FORWARD: logits */
} ParityCase;

/* ==== fixture access ====================================================== */

static void fixture_path(char *buf, size_t len, const char *model, const char *kind) {
    char rel[256];
    snprintf(rel, sizeof rel, "ref/%s.%s.safetensors", model, kind);
    snprintf(buf, len, "%s", tu_fixture(rel));
}

/* Read one tensor from a fixture file; fails the test when it is missing.
 * Returns an owned buffer; *count gets its number of floats. */
static float *read_tensor(const char *path, const char *name, size_t *count) {
    float *data = NULL;
    if (safetensors_read(path, name, &data, count) < 0) {
        print_error("%s\n", dg_errmsg());
        fail();
    }
    return data;
}

/* Worst diff over a family of tensors (all gradients, ...), asserted per
 * tensor, printed once per family so a failure names the tensor. */
typedef struct {
    char label[96];
    float tol;
    int n;
    float worst;
    char worst_name[96];
} Family;

static void family_start(Family *f, const ParityCase *pc, const char *what, float tol) {
    memset(f, 0, sizeof *f);
    snprintf(f->label, sizeof f->label, "%s t=%d %s", pc->model, pc->threads, what);
    f->tol = tol;
}

static void family_check(Family *f, const char *name, const float *got, const float *want, size_t n) {
    float d = tu_max_rel_diff(got, want, n);
    f->n++;
    if (!(d <= f->worst)) {
        f->worst = d;
        snprintf(f->worst_name, sizeof f->worst_name, "%s", name);
    }
    if (!(d <= f->tol))
        print_error("%s: %s: max diff %.3g exceeds %.3g\n", f->label, name, (double)d, (double)f->tol);
    assert_true(d <= f->tol);
}

static void family_end(const Family *f) {
    char label[320];
    snprintf(label, sizeof label, "%s (%d tensors, worst %s)", f->label, f->n, f->worst_name);
    print_message("%-56s max diff %.3g (tol %.3g)\n", label, (double)f->worst, (double)f->tol);
}

/* ==== walking the model's tensors ========================================= */

/* Visit every tensor of the model in model-file order with a pointer into
 * `params` (parameters, parallel to m->params) or `buffers` (m->buffers);
 * want_buffers selects which family. The layer's own tensor table gives
 * names and order, so this follows whatever model_load_weights follows. */
typedef void (*tensor_fn)(void *ctx, const char *name, float *data, size_t count);

static void for_each_tensor(const Model *m, float *params, float *buffers, int want_buffers,
                            tensor_fn fn, void *ctx) {
    for (int i = 0; i < m->n_layers; i++) {
        const Layer *l = &m->layers[i];
        const char *names[MAX_TENSORS];
        int shapes[MAX_TENSORS][4], ndims[MAX_TENSORS], is_buf[MAX_TENSORS];
        int k = l->kind->tensors(l, names, shapes, ndims, is_buf);
        size_t po = (size_t)(l->param - m->params), bo = (size_t)(l->buffer - m->buffers);
        for (int t = 0; t < k; t++) {
            size_t count = 1;
            for (int d = 0; d < ndims[t]; d++) count *= (size_t)shapes[t][d];
            char name[64];
            snprintf(name, sizeof name, "%d.%s", l->index, names[t]);
            if (is_buf[t]) {
                if (want_buffers) fn(ctx, name, buffers + bo, count);
                bo += count;
            } else {
                if (!want_buffers) fn(ctx, name, params + po, count);
                po += count;
            }
        }
    }
}

typedef struct {
    const char *path;   /* case fixture */
    const char *prefix; /* "grad.", "running.", "sgd.", "adam." */
    Family *family;
    int allow_prefix;   /* fixture may hold only the first values (large tensors) */
} CompareCtx;

static void compare_tensor(void *vctx, const char *name, float *data, size_t count) {
    CompareCtx *c = vctx;
    char key[96];
    snprintf(key, sizeof key, "%s%s", c->prefix, name);
    size_t n = 0;
    float *want = read_tensor(c->path, key, &n);
    if (n != count && !(c->allow_prefix && n > 0 && n < count)) {
        print_error("%s: %s has %zu values, the model %zu\n", c->path, key, n, count);
        free(want);
        fail();
    }
    family_check(c->family, key, data, want, n);
    free(want);
}

static void compare_family(const Model *m, float *params, float *buffers, int want_buffers,
                           const ParityCase *pc, const char *path, const char *prefix,
                           const char *what, int allow_prefix, float tol) {
    Family f;
    family_start(&f, pc, what, tol);
    CompareCtx c = {path, prefix, &f, allow_prefix};
    for_each_tensor(m, params, buffers, want_buffers, compare_tensor, &c);
    assert_true(f.n > 0);
    family_end(&f);
}

/* Copy "grad.<name>" from the fixture into the model's gradient block: the
 * fixture's prefix of a large tensor (the optimiser results compare that
 * prefix only; the rest keeps the C gradients). */
static void load_grad(void *vctx, const char *name, float *data, size_t count) {
    const char *path = vctx;
    char key[96];
    snprintf(key, sizeof key, "grad.%s", name);
    size_t n = 0;
    float *want = read_tensor(path, key, &n);
    assert_true(n > 0 && n <= count);
    memcpy(data, want, n * sizeof(float));
    free(want);
}

/* tools/make_fixtures.py's gen_uniform, bit for bit: value i in [-bound,
 * bound) from an integer hash of i (the large weight tensors are not stored). */
static void gen_uniform(float *out, size_t count, float bound) {
    for (size_t i = 0; i < count; i++) {
        uint32_t h = (uint32_t)i * 2654435761u;
        h ^= h >> 15;
        h *= 2246822519u;
        h ^= h >> 13;
        const float r = (float)(h >> 8) * (1.0f / 16777216.0f);
        out[i] = (2.0f * r - 1.0f) * bound;
    }
}

/* One initial tensor: from the weights fixture, or generated where the
 * fixture holds "gen.<name>" (its bound) instead. */
static void load_weight(void *vctx, const char *name, float *data, size_t count) {
    const char *path = vctx;
    char key[96];
    snprintf(key, sizeof key, "gen.%s", name);
    size_t n = 0;
    float *v = NULL;
    if (safetensors_read(path, key, &v, &n) == 0) {
        assert_int_equal(n, 1);
        gen_uniform(data, count, v[0]);
    } else {
        v = read_tensor(path, name, &n);
        assert_int_equal(n, count);
        memcpy(data, v, count * sizeof(float));
    }
    free(v);
}

/* ==== the test ============================================================ */

typedef struct {
    const char *path;
    int generated; /* set when some tensor is "gen.<name>" in the fixture */
} GenProbe;

static void probe_generated(void *vctx, const char *name, float *data, size_t count) {
    (void)data, (void)count;
    GenProbe *g = vctx;
    char key[96];
    snprintf(key, sizeof key, "gen.%s", name);
    float *v = NULL;
    size_t n = 0;
    if (safetensors_read(g->path, key, &v, &n) == 0) g->generated = 1;
    free(v);
}

/* The initial weights (and BN statistics); gradients are untouched. A
 * fixture with every tensor stored goes through model_load_weights, the
 * loader users run on PyTorch-written files; one with generated tensors
 * is filled tensor by tensor in model-file order and names. */
static void reload(Model *m, const char *weights) {
    GenProbe g = {weights, 0};
    for_each_tensor(m, m->params, NULL, 0, probe_generated, &g);
    if (!g.generated) {
        if (model_load_weights(m, weights) < 0) {
            print_error("%s\n", dg_errmsg());
            fail();
        }
        return;
    }
    for_each_tensor(m, m->params, NULL, 0, load_weight, (void *)weights);
    for_each_tensor(m, NULL, m->buffers, 1, load_weight, (void *)weights);
}

static void test_parity(void **state) {
    const ParityCase *pc = *state;
    char weights[1024], cases[1024], spec[1024], label[128];
    fixture_path(weights, sizeof weights, pc->model, "weights");
    fixture_path(cases, sizeof cases, pc->model, "case");
    /* the zoo spec by path, so DIGITS_TEST_ROOT finds it from any directory */
    snprintf(label, sizeof label, "../models/%s.spec", pc->model);
    snprintf(spec, sizeof spec, "%s", tu_fixture(label));

    Model m;
    if (model_build_named(&m, spec) < 0) {
        print_error("%s\n", dg_errmsg());
        fail();
    }
    reload(&m, weights);

    /* ---- the seed class's trainable parameter count: hi * 4096 + lo ---- */
    size_t n = 0;
    float *count = read_tensor(cases, "trainable", &n);
    assert_int_equal(n, 2);
    const size_t trainable = (size_t)count[0] * 4096 + (size_t)count[1];
    free(count);
    print_message("%s: %zu trainable parameters (PyTorch %zu)\n", pc->model, m.n_param, trainable);
    assert_int_equal(m.n_param, trainable);

    model_set_batch(&m, BATCH, 1, pc->threads);
    if (m.nthreads != pc->threads) /* an OPENMP=0 build runs everything on one */
        print_message("%s: asked for %d threads, running on %d\n", pc->model, pc->threads, m.nthreads);
    const size_t in_size = shape_size(m.input_shape);
    Layer *last = &m.layers[m.n_layers - 1];

    float *x = read_tensor(cases, "x", &n);
    assert_int_equal(n, BATCH * in_size);
    memcpy(m.input, x, n * sizeof(float));
    free(x);
    float *labels_f = read_tensor(cases, "labels", &n);
    assert_int_equal(n, BATCH);
    uint8_t labels[BATCH];
    for (int i = 0; i < BATCH; i++) {
        assert_true(labels_f[i] >= 0 && labels_f[i] < MODEL_NUM_CLASSES);
        labels[i] = (uint8_t)labels_f[i];
    }
    free(labels_f);

    /* ---- eval forward ---- */
    float *want = read_tensor(cases, "logits_eval", &n);
    assert_int_equal(n, BATCH * MODEL_NUM_CLASSES);
    float *logits = model_forward(&m, BATCH, 0);
    print_message("%s t=%d logits_eval[0][0..3] %.6f %.6f %.6f %.6f (torch %.6f %.6f %.6f %.6f)\n",
                  pc->model, pc->threads, logits[0], logits[1], logits[2], logits[3], want[0],
                  want[1], want[2], want[3]);
    snprintf(label, sizeof label, "%s t=%d logits_eval", pc->model, pc->threads);
    TU_ASSERT_CLOSE(logits, want, n, TOL, label);
    free(want);

    /* ---- train forward, dropout off ---- */
    for (int i = 0; i < m.n_layers; i++)
        if (m.layers[i].type == LAYER_DROPOUT || m.layers[i].type == LAYER_DROPOUT2D) m.layers[i].p = 0.0f;
    want = read_tensor(cases, "logits_train", &n);
    assert_int_equal(n, BATCH * MODEL_NUM_CLASSES);
    logits = model_forward(&m, BATCH, 1);
    snprintf(label, sizeof label, "%s t=%d logits_train", pc->model, pc->threads);
    TU_ASSERT_CLOSE(logits, want, n, TOL, label);
    free(want);
    if (pc->depth == FORWARD) {
        model_free(&m);
        return;
    }

    float probs[BATCH * MODEL_NUM_CLASSES];
    float loss = softmax_xent_forward(probs, logits, labels, BATCH, MODEL_NUM_CLASSES);
    want = read_tensor(cases, "loss", &n);
    assert_int_equal(n, 1);
    print_message("%s t=%d loss %.7f (torch %.7f)\n", pc->model, pc->threads, loss, want[0]);
    snprintf(label, sizeof label, "%s t=%d loss", pc->model, pc->threads);
    TU_ASSERT_CLOSE(&loss, want, 1, TOL, label);
    free(want);

    /* ---- backward: every parameter gradient, then BN running stats ---- */
    softmax_xent_backward(last->dy, probs, labels, BATCH, MODEL_NUM_CLASSES);
    model_zero_grad(&m);
    model_backward(&m, last->dy, BATCH);
    compare_family(&m, m.grads, NULL, 0, pc, cases, "grad.", "grads", 1, TOL);
    if (m.n_buffer > 0)
        compare_family(&m, NULL, m.buffers, 1, pc, cases, "running.", "running stats", 0, TOL);
    if (pc->depth == GRADS) {
        model_free(&m);
        return;
    }

    /* ---- one SGD step from the C gradients ---- */
    Optimizer o;
    optim_init(&o, OPTIM_SGD, m.n_param);
    o.momentum = 0.9f;
    o.weight_decay = 1e-4f;
    optim_step(&o, m.params, m.grads, 0.1f);
    optim_free(&o);
    compare_family(&m, m.params, NULL, 0, pc, cases, "sgd.", "sgd step", 1, TOL);

    /* ---- the same SGD step from the fixture's gradients, to OPT_TOL ---- */
    reload(&m, weights);
    for_each_tensor(&m, m.grads, NULL, 0, load_grad, cases);
    optim_init(&o, OPTIM_SGD, m.n_param);
    o.momentum = 0.9f;
    o.weight_decay = 1e-4f;
    optim_step(&o, m.params, m.grads, 0.1f);
    optim_free(&o);
    compare_family(&m, m.params, NULL, 0, pc, cases, "sgd.", "sgd step, torch grads", 1, OPT_TOL);

    /* ---- one Adam step from the initial weights and the fixture's
     * gradients (see the header for why not the C ones) ---- */
    reload(&m, weights);
    optim_init(&o, OPTIM_ADAM, m.n_param);
    o.weight_decay = 1e-4f;
    optim_step(&o, m.params, m.grads, 1e-3f);
    optim_free(&o);
    compare_family(&m, m.params, NULL, 0, pc, cases, "adam.", "adam step, torch grads", 1, TOL);

    model_free(&m);
}

/* Label smoothing (src/train/label_smooth.c) against PyTorch's
 * F.cross_entropy(label_smoothing=eps): loss and gradient w.r.t. the logits,
 * the gradient as training forms it (softmax_xent_backward, then
 * label_smooth_grad). Fixture: make_fixtures.py label-smoothing. */
static void test_label_smoothing(void **state) {
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s", tu_fixture("ref/label-smoothing.safetensors"));
    size_t nz, ny;
    float *z = read_tensor(path, "logits", &nz), *yf = read_tensor(path, "labels", &ny);
    const int n = (int)ny, K = 10;
    assert_int_equal(nz, (size_t)n * K);
    uint8_t y[16];
    for (int i = 0; i < n; i++) y[i] = (uint8_t)yf[i];
    float *p = calloc(nz, sizeof *p), *d = calloc(nz, sizeof *d);
    static const char *tags[] = {"0.1", "0.3"};
    for (int t = 0; t < 2; t++) {
        const float eps = (float)atof(tags[t]);
        char name[32];
        size_t c;
        snprintf(name, sizeof name, "loss_%s", tags[t]);
        float *want_loss = read_tensor(path, name, &c);
        snprintf(name, sizeof name, "grad_%s", tags[t]);
        float *want_grad = read_tensor(path, name, &c);
        double loss = label_smooth_loss_sum(z, y, n, K, eps) / n;
        assert_true(fabs(loss - want_loss[0]) <= 1e-5 * fabs(want_loss[0]));
        softmax_xent_forward(p, z, y, n, K);
        softmax_xent_backward(d, p, y, n, K);
        label_smooth_grad(d, y, n, K, n, eps);
        for (size_t i = 0; i < nz; i++) assert_true(fabsf(d[i] - want_grad[i]) <= 1e-6f);
        free(want_loss), free(want_grad);
    }
    free(z), free(yf), free(p), free(d);
}

int main(void) {
    static const struct {
        const char *model;
        int depth;
    } zoo[] = {
        {"lenet5", FULL},      {"cnn-bn", FULL},    {"resnet5", GRADS},     {"stn", GRADS},
        {"cnn", FORWARD},      {"bigkernel", FORWARD}, {"cnn-deep", FORWARD}, {"mlp", FORWARD},
        {"kaggle-deep", FORWARD}, {"kfold-net", FORWARD}, {"twobranch", FORWARD},
    };
    enum { N_ZOO = sizeof zoo / sizeof *zoo };
    /* each model with 1 and with 2 threads, each run under its own name */
    static ParityCase cases[2 * N_ZOO];
    static char names[2 * N_ZOO][48];
    struct CMUnitTest tests[2 * N_ZOO + 1];
    for (int i = 0; i < 2 * N_ZOO; i++) {
        cases[i] = (ParityCase){zoo[i / 2].model, 1 + i % 2, zoo[i / 2].depth};
        snprintf(names[i], sizeof names[i], "%s threads=%d", cases[i].model, cases[i].threads);
        tests[i] = (struct CMUnitTest){names[i], test_parity, NULL, NULL, &cases[i]};
    }
    tests[2 * N_ZOO] = (struct CMUnitTest){"label smoothing", test_label_smoothing, NULL, NULL, NULL};
    return _cmocka_run_group_tests("test_torch_parity", tests, 2 * N_ZOO + 1, NULL, NULL);
}
