/* test_graph.c — the layer graph: spec syntax for named inputs, add,
 * concat and stn blocks (good specs and the errors of bad ones), and a
 * finite-difference check of a whole graph model's parameter gradients,
 * which exercises what the per-op checks cannot: the wiring, and the sum
 * of the gradients of an output read by several layers (one layer's
 * output read three times, once twice by the same concat).
 *
 * Tolerance: as tests/test_ops_grad.c (1e-2 in tu_grad_check's metric,
 * h = 1e-2). Kinks are kept out of reach: bilinear sampling has one at
 * every pixel boundary (and at the image border, where zero padding
 * starts), so the input image is a plane in (row, column) — bilinear
 * interpolation reproduces a plane exactly — and theta shrinks the image
 * so every sample point stays inside (at the identity every point would
 * sit exactly on a boundary); ELU uses alpha = 1, smooth at 0. zeropad is
 * checked the same way, through a conv before it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "digits_internal.h"
#include "ops/ops.h"
#include "testutil.h"

/* ==== spec syntax ========================================================= */

static const char *GRAPH_SPEC =
    "input 2x8x8\n"
    "stn\n"
    "  flatten\n"
    "  linear out=6\n"
    "end\n"
    "conv2d out=3 kernel=3 pad=1 name=a\n"   /* read by elu, add, concat x2 */
    "elu alpha=1\n"             /* C1-smooth at 0 */
    "conv2d out=3 kernel=3 pad=1 name=b\n"
    "add inputs=a,b name=s\n"
    "concat inputs=s,a,a\n"                 /* 9x8x8 */
    "globalavgpool\n"
    "linear out=10\n";

static void test_graph_spec_builds(void **state) {
    Model m;
    int r = model_build(&m, GRAPH_SPEC, "g.spec");
    if (r) print_error("%s\n", dg_errmsg());
    assert_int_equal(r, 0);
    assert_int_equal(m.n_layers, 10);
    /* the stn block: loc net (flatten, linear) first, then the stn layer */
    assert_int_equal(m.layers[0].type, LAYER_FLATTEN);
    assert_int_equal(m.layers[0].input_ids[0], LAYER_INPUT_IMAGE);
    assert_int_equal(m.layers[1].init_affine_identity, 1);
    assert_int_equal(m.layers[2].type, LAYER_STN);
    assert_int_equal(m.layers[2].input_ids[0], LAYER_INPUT_IMAGE);
    assert_int_equal(m.layers[2].input_ids[1], 1);
    assert_int_equal(m.layers[3].input_ids[0], 2); /* after end, prev is the stn */
    assert_int_equal(m.layers[7].type, LAYER_CONCAT);
    assert_int_equal(m.layers[7].out.c, 9);
    assert_int_equal(m.layers[7].n_inputs, 3);
    model_init_params(&m, 1);
    /* identity init of theta: W = 0, b = 1 0 0 0 1 0 */
    const Layer *loc = &m.layers[1];
    for (int i = 0; i < 6 * 128; i++) assert_true(loc->param[i] == 0.0f);
    const float id[6] = {1, 0, 0, 0, 1, 0};
    assert_memory_equal(loc->param + 6 * 128, id, sizeof id);
    /* an identity stn passes the image through unchanged */
    model_keep_outputs(&m); /* layer 2's output is read below */
    model_set_batch(&m, 2, 0, 1);
    Rng rng;
    rng_seed(&rng, 1, "stn-id");
    tu_fill_uniform(m.input, 2 * 128, &rng);
    model_forward(&m, 2, 0);
    TU_ASSERT_CLOSE(m.layers[2].y, m.input, 2 * 128, 1e-6f, "identity stn output");
    model_summary(&m, stdout);
    model_free(&m);
}

static void test_graph_spec_errors(void **state) {
    struct {
        const char *spec, *expect;
    } cases[] = {
        {"flatten\nlinear out=10 inputs=x\n", "t.spec:2: linear: inputs: no earlier layer is named 'x'"},
        {"flatten name=a\nlinear out=10 name=a\n", "t.spec:2: linear: name='a' is already layer 0's"},
        {"flatten name=prev\nlinear out=10\n", "name='prev' is reserved"},
        {"flatten\nadd inputs=prev\n", "t.spec:2: add takes 2 to 8 inputs, got 1"},
        {"flatten\nlinear out=10 inputs=input,prev\n", "t.spec:2: linear takes 1 input, got 2"},
        {"conv2d out=2 kernel=3 name=a\nconv2d out=2 kernel=1\nadd inputs=a,input\nflatten\nlinear out=10\n",
         "t.spec:3: add: input 2 is 1x28x28 but input 1 is 2x26x26"},
        {"maxpool name=a\nconcat inputs=a,input\nflatten\nlinear out=10\n",
         "t.spec:2: concat: input 2 is 28x28 but input 1 is 14x14"},
        {"stn\nflatten\nlinear out=5\nend\nflatten\nlinear out=10\n",
         "t.spec:4: stn: the localisation net (lines 2-3) must end with 'linear out=6'"},
        {"stn\nflatten\nlinear out=6\n", "t.spec:1: stn: block has no 'end'"},
        {"flatten\nend\n", "t.spec:2: 'end' without an open block"},
        {"stn\nstn\n", "t.spec:2: stn: blocks do not nest"},
        {"stn\nflatten\nlinear out=6\nend name=s\nflatten\nlinear out=10\n",
         "t.spec:4: end takes no arguments (put name= on the stn line)"},
        {"stn inputs=input,input\n", "t.spec:1: stn: takes one input"},
        {"stn name=t\nflatten name=t\nlinear out=6\nend\nflatten\nlinear out=10\n",
         "t.spec:1: stn: name='t' is already layer 0's"},
        {"conv2d out=2 kernel=3 name=lost\nflatten inputs=input\nlinear out=10\n",
         "t.spec:1: the output of this conv2d layer is never used"},
        {"flatten\nlinear out=10 inputs=a,,\n", "no earlier layer is named 'a'"},
        {"stn wobble=1\nflatten\nlinear out=6\nend\nflatten\nlinear out=10\n",
         "t.spec:1: stn: unknown argument 'wobble' (usage: stn [align_corners=0|1]"},
        {"stn align_corners=2\nflatten\nlinear out=6\nend\nflatten\nlinear out=10\n",
         "t.spec:1: stn: align_corners=2 is out of range 0..1"},
        {"zeropad top=-1\nflatten\nlinear out=10\n", "t.spec:1: zeropad: top=-1 is out of range 0..64"},
        {"zeropad left=1 wide=2\nflatten\nlinear out=10\n", "t.spec:1: zeropad: unknown argument 'wide'"},
        {"batchnorm eps=2\nflatten\nlinear out=10\n", "t.spec:1: batchnorm: eps=2 is out of range 0..1"},
        {"flatten\nlinear out=10 bias=7\n", "t.spec:2: linear: bias=7 is out of range 0..1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        Model m;
        int r = model_build(&m, cases[i].spec, "t.spec");
        print_message("%-55s -> %s\n", cases[i].expect, dg_errmsg());
        assert_int_equal(r, -1);
        assert_non_null(strstr(dg_errmsg(), cases[i].expect));
    }
}

/* The zoo's new specs build, with the parameter counts of the seeds'
 * PyTorch classes (tools/make_fixtures.py, and tests/test_torch_parity.c
 * against its fixtures: trainable + BN running statistics). */
static void test_zoo_graph_specs(void **state) {
    struct {
        const char *name;
        size_t trainable, buffers;
    } zoo[] = {
        {"resnet5", 202314, 512},   {"stn", 436762, 0},          {"bigkernel", 857930, 192},
        {"mlp", 159410, 400},       {"kfold-net", 140778, 640},  {"twobranch", 26222158, 0},
    };
    for (size_t i = 0; i < sizeof zoo / sizeof *zoo; i++) {
        Model m;
        int r = model_build_named(&m, zoo[i].name);
        if (r) print_error("%s\n", dg_errmsg());
        assert_int_equal(r, 0);
        print_message("%-10s %9zu trainable, %4zu buffers, %7.2f M MACs\n", zoo[i].name, m.n_param, m.n_buffer,
                      model_macs(&m) / 1e6);
        assert_int_equal(m.n_param, zoo[i].trainable);
        assert_int_equal(m.n_buffer, zoo[i].buffers);
        model_free(&m);
    }
    /* a name given on the stn line must not collide with one inside the block */
    Model m;
    assert_int_equal(model_build(&m, "stn name=t\nflatten name=t\nlinear out=6\nend\nflatten\nlinear out=10\n", "t.spec"), -1);
    assert_non_null(strstr(dg_errmsg(), "t.spec:1: stn: name='t' is already layer 0's"));
}

/* --summary: each layer's parameters with the BN running statistics
 * folded in, and its trainable ones beside them; the total says both. */
static void test_summary_trainable(void **state) {
    (void)state;
    Model m;
    assert_int_equal(model_build_named(&m, "resnet5"), 0);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    model_summary(&m, f);
    fclose(f);
    assert_non_null(strstr(text, "Param #  Trainable"));
    /* layer 3, batchnorm2d of 32 channels: 128 floats, 64 trainable */
    const char *bn = strstr(text, "\n3    batchnorm2d");
    assert_non_null(bn);
    int all = 0, trainable = 0;
    assert_int_equal(sscanf(strchr(bn, ')') + 1, "%d %d", &all, &trainable), 2);
    assert_int_equal(all, 128);
    assert_int_equal(trainable, 64);
    assert_non_null(strstr(text, "Total params: 202826 (trainable 202314, buffers 512)"));
    free(text);
    model_free(&m);
}

/* Plain sequential specs keep their layer numbering and tensor names
 * (model files and torch fixtures depend on "<index>.weight"). */
static void test_sequential_unchanged(void **state) {
    Model m;
    assert_int_equal(model_build_named(&m, "cnn-bn"), 0);
    for (int i = 0; i < m.n_layers; i++) {
        assert_int_equal(m.layers[i].index, i);
        assert_int_equal(m.layers[i].n_inputs, 1);
        assert_int_equal(m.layers[i].input_ids[0], i - 1);
    }
    model_free(&m);
}

/* ==== whole-model gradients =============================================== */

typedef struct {
    Model *m;
    uint8_t labels[3];
    float probs[3 * 10];
} GraphCtx;

static double graph_loss(void *p) {
    GraphCtx *c = p;
    float *logits = model_forward(c->m, 3, 1);
    return softmax_xent_forward(c->probs, logits, c->labels, 3, 10);
}

static void test_graph_gradients(void **state) {
    Model m;
    assert_int_equal(model_build(&m, GRAPH_SPEC, "g.spec"), 0);
    model_init_params(&m, 2);
    Rng rng;
    rng_seed(&rng, 3, "graph-grad");
    /* theta away from the identity (see the header), shrinking so that
     * every sample point stays inside the image (the zero padding is a
     * kink with a large slope change) */
    Layer *loc = &m.layers[1];
    const float theta0[6] = {0.6f, 0.05f, -0.03f, -0.04f, 0.55f, 0.02f};
    for (int i = 0; i < 6 * 128; i++) loc->param[i] = rng_uniform_range(&rng, -0.002f, 0.002f);
    for (int k = 0; k < 6; k++) loc->param[6 * 128 + k] = theta0[k];
    model_set_batch(&m, 3, 1, 2);
    /* an image linear in (row, column): bilinear interpolation of a plane
     * is the plane itself, so inside the image it has no kinks at all */
    for (int n = 0; n < 3; n++)
        for (int ch = 0; ch < 2; ch++)
            for (int i = 0; i < 64; i++)
                m.input[(n * 2 + ch) * 64 + i] =
                    0.2f * (i / 8 - 3.5f) * (1 + ch) - 0.15f * (i % 8 - 3.5f) * (n + 1) + 0.3f * ch;
    GraphCtx c = {&m, {3, 7, 1}, {0}};
    graph_loss(&c);
    Layer *last = &m.layers[m.n_layers - 1];
    softmax_xent_backward(last->dy, c.probs, c.labels, 3, 10);
    model_zero_grad(&m);
    model_backward(&m, last->dy, 3);
    float *grad = dg_xmalloc(m.n_param * sizeof(float));
    memcpy(grad, m.grads, m.n_param * sizeof(float));
    for (int i = 0; i < m.n_layers; i++) {
        Layer *l = &m.layers[i];
        if (!l->n_param) continue;
        size_t off = (size_t)(l->param - m.params);
        double e = tu_grad_check(graph_loss, &c, l->param, grad + off, l->n_param, 1e-2, 200);
        print_message("graph layer %d (%s) params: max rel err %.3g (tol 1e-2)\n", i, l->kind->name, e);
        assert_true(e <= 1e-2);
    }
    free(grad);
    model_free(&m);
}

/* zeropad (TensorFlow's asymmetric 'same' padding before a strided conv):
 * the padded map's shape, its zero border and interior, and the gradient
 * through it to a layer before (finite differences on every parameter). */
static void test_zeropad(void **state) {
    (void)state;
    Model m;
    assert_int_equal(model_build(&m, "input 2x5x6\nconv2d out=2 kernel=1\nzeropad top=1 bottom=2 right=3\n"
                                     "conv2d out=3 kernel=3 stride=2\ntanh\nflatten\nlinear out=10\n", "z.spec"), 0);
    const Layer *zp = &m.layers[1];
    assert_int_equal(zp->out.c, 2), assert_int_equal(zp->out.h, 8), assert_int_equal(zp->out.w, 9);
    model_init_params(&m, 6);
    model_set_batch(&m, 3, 1, 1);
    Rng rng;
    rng_seed(&rng, 7, "zeropad");
    tu_fill_uniform(m.input, 3 * 60, &rng);
    GraphCtx c = {&m, {3, 7, 1}, {0}};
    graph_loss(&c);
    for (int n = 0; n < 3; n++) /* interior = the 1x1 conv's output, border = 0 */
        for (int ch = 0; ch < 2; ch++)
            for (int h = 0; h < 8; h++)
                for (int w = 0; w < 9; w++) {
                    float got = zp->y[((n * 2 + ch) * 8 + h) * 9 + w];
                    int in = h >= 1 && h < 6 && w < 6;
                    float want = in ? m.layers[0].y[((n * 2 + ch) * 5 + h - 1) * 6 + w] : 0.0f;
                    assert_true(got == want);
                }
    Layer *last = &m.layers[m.n_layers - 1];
    softmax_xent_backward(last->dy, c.probs, c.labels, 3, 10);
    model_zero_grad(&m);
    model_backward(&m, last->dy, 3);
    float *grad = dg_xmalloc(m.n_param * sizeof(float));
    memcpy(grad, m.grads, m.n_param * sizeof(float));
    double e = tu_grad_check(graph_loss, &c, m.params, grad, m.n_param, 1e-2, 200);
    print_message("zeropad model params: max rel err %.3g (tol 1e-2)\n", e);
    assert_true(e <= 1e-2);
    free(grad);
    model_free(&m);
}

/* One training step's results: logits (N x 10), parameter gradients and
 * buffers (running statistics after the step's batch-norm updates). */
typedef struct {
    float *logits, *grads, *buffers;
    size_t n_param, n_buffer;
} StepResult;

/* Build `name` (weights from init seed 4), run one training forward and
 * backward on N fixed pseudo-random images with `threads` threads. */
static StepResult train_step(const char *name, int N, int threads, int unfused) {
    Model m;
    assert_int_equal(model_build_named(&m, name), 0);
    model_init_params(&m, 4);
    m.unfused_training = unfused;
    model_set_batch(&m, N, 1, threads);
    Rng rng;
    rng_seed(&rng, 5, "graph-step");
    tu_fill_uniform(m.input, (size_t)N * 784, &rng);
    rng_seed(&m.dropout_rng, 9, "dropout");
    float *logits = model_forward(&m, N, 1);
    uint8_t labels[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    float probs[80];
    assert_true(N <= 8);
    softmax_xent_forward(probs, logits, labels, N, 10);
    StepResult r = {dg_xmalloc((size_t)N * 10 * sizeof(float)), dg_xmalloc(m.n_param * sizeof(float)),
                    dg_xmalloc((m.n_buffer ? m.n_buffer : 1) * sizeof(float)), m.n_param, m.n_buffer};
    memcpy(r.logits, logits, (size_t)N * 10 * sizeof(float));
    Layer *last = &m.layers[m.n_layers - 1];
    softmax_xent_backward(last->dy, probs, labels, N, 10);
    model_zero_grad(&m);
    model_backward(&m, last->dy, N);
    memcpy(r.grads, m.grads, m.n_param * sizeof(float));
    memcpy(r.buffers, m.buffers, m.n_buffer * sizeof(float));
    model_free(&m);
    return r;
}

static void step_free(StepResult *r) { free(r->logits), free(r->grads), free(r->buffers); }

/* The same graph with 1 and 2 threads: the same logits and gradients up to
 * float rounding (the BLAS and batch-norm reductions split differently). */
static void test_graph_threads(void **state) {
    (void)state;
    StepResult one = train_step("resnet5", 4, 1, 0), two = train_step("resnet5", 4, 2, 0);
    TU_ASSERT_CLOSE(two.logits, one.logits, 40, 1e-5f, "resnet5 logits, 2 threads vs 1");
    TU_ASSERT_CLOSE(two.grads, one.grads, one.n_param, 1e-5f, "resnet5 grads, 2 threads vs 1");
    step_free(&one), step_free(&two);
}

/* Training fuses batch norm + ReLU pairs (both orders: cnn-bn's BN then
 * ReLU, kaggle-deep's ReLU then BN): logits, every gradient and the running
 * statistics are bit-identical to running the two layers. */
static void test_training_fusion_exact(void **state) {
    (void)state;
    static const char *const names[] = {"cnn-bn", "kaggle-deep"};
    for (int which = 0; which < 2; which++) {
        StepResult fused = train_step(names[which], 5, 2, 0), plain = train_step(names[which], 5, 2, 1);
        assert_memory_equal(fused.logits, plain.logits, 50 * sizeof(float));
        assert_memory_equal(fused.grads, plain.grads, fused.n_param * sizeof(float));
        assert_memory_equal(fused.buffers, plain.buffers, fused.n_buffer * sizeof(float));
        print_message("%s: fused and unfused training identical (%zu gradients, %zu running stats)\n",
                      names[which], fused.n_param, fused.n_buffer);
        step_free(&fused), step_free(&plain);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_graph_spec_builds),
        cmocka_unit_test(test_graph_spec_errors),
        cmocka_unit_test(test_sequential_unchanged),
        cmocka_unit_test(test_zoo_graph_specs),
        cmocka_unit_test(test_summary_trainable),
        cmocka_unit_test(test_graph_gradients),
        cmocka_unit_test(test_zeropad),
        cmocka_unit_test(test_graph_threads),
        cmocka_unit_test(test_training_fusion_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
