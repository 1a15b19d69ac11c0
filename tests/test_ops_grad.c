/* test_ops_grad.c — finite-difference gradient checks for every op's
 * backward pass, with respect to its input and each of its parameters.
 *
 * Method: a scalar loss L = sum_i y[i] * g[i] for a fixed random g, so the
 * upstream gradient dy is exactly g; the analytic gradient from backward is
 * compared with central differences (L(p+h) - L(p-h)) / 2h, evaluated in
 * double over the fp32 forward (tu_grad_check). The softmax-xent check uses
 * the op's own loss instead.
 *
 * Tolerance: GRAD_TOL = 1e-2 in tu_grad_check's metric
 * |fd - an| / max(1e-2, |fd| + |an|), with h = 1e-2. The fp32 forward's
 * rounding (~1e-7 relative) divided by 2h gives ~1e-5 absolute, and the
 * O(h^2) truncation of smooth ops (tanh, batchnorm, softmax) is ~1e-4:
 * both far under the tolerance, which still catches any wrong term.
 * Kinks are kept out of reach rather than tolerated: ReLU inputs are at
 * least 0.1 from 0, and max-pool inputs are distinct values 0.03 apart
 * within each plane, so no +-h step changes which branch or window wins.
 * ELU inputs are at least 0.05 from 0; grid_sample's sample points at
 * least 0.15 pixels from a pixel boundary (its kinks), and affine_grid,
 * linear in theta, is checked on its own.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "ops/ops.h"
#include "testutil.h"

#define GRAD_TOL 1e-2
#define GRAD_H 1e-2
#define MAX_CHECKS 150

static float *randv(size_t n, Rng *rng) {
    float *a = dg_xmalloc(sizeof(float) * (n ? n : 1));
    tu_fill_uniform(a, n, rng);
    return a;
}

static float *zerov(size_t n) { return dg_xcalloc(n ? n : 1, sizeof(float)); }

/* L = sum y*g, in double. */
static double dot_g(const float *y, const float *g, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)y[i] * g[i];
    return s;
}

/* Run one check, print it, and assert the tolerance. */
static void check_grad(const char *name, tu_loss_fn f, void *ctx, float *param, const float *grad,
                       size_t n) {
    double e = tu_grad_check(f, ctx, param, grad, n, GRAD_H, MAX_CHECKS);
    print_message("%-48s max rel err %.3g (tol %.0e)\n", name, e, GRAD_TOL);
    assert_true(e <= GRAD_TOL);
}

/* ======================================================================
 * conv2d
 * ====================================================================== */

typedef struct {
    int N, C, H, W, K, R, S, stride, pad, P, Q;
    float *x, *w, *b, *y, *g, *work;
} ConvCtx;

static double conv_loss(void *p) {
    ConvCtx *c = p;
    conv2d_forward(c->y, c->x, c->w, c->b, c->N, c->C, c->H, c->W, c->K, c->R, c->S, c->stride,
                   c->pad, c->work, 1);
    return dot_g(c->y, c->g, (size_t)c->N * c->K * c->P * c->Q);
}

static void grad_conv(const char *label, int N, int C, int H, int W, int K, int R, int S,
                      int stride, int pad) {
    Rng rng;
    rng_seed(&rng, 1, label);
    ConvCtx c = {N, C, H, W, K, R, S, stride, pad, (H + 2 * pad - R) / stride + 1,
                 (W + 2 * pad - S) / stride + 1, NULL, NULL, NULL, NULL, NULL, NULL};
    const size_t nx = (size_t)N * C * H * W, nw = (size_t)K * C * R * S;
    const size_t ny = (size_t)N * K * c.P * c.Q;
    const size_t ws = conv2d_workspace_floats(C, H, W, K, R, S, stride, pad);
    c.x = randv(nx, &rng), c.w = randv(nw, &rng), c.b = randv(K, &rng), c.g = randv(ny, &rng);
    c.y = zerov(ny), c.work = zerov(ws * 2);
    float *part = zerov((nw + K) * 2);
    char name[128];
    /* the fast backward (2 threads) and the reference, against the same differences */
    for (int fast = 1; fast >= 0; fast--) {
        float *dx = zerov(nx), *dw = zerov(nw), *db = zerov(K);
        if (fast)
            conv2d_backward(dx, dw, db, c.g, c.x, c.w, N, C, H, W, K, R, S, stride, pad, c.work,
                            part, 2);
        else
            conv2d_backward_ref(dx, dw, db, c.g, c.x, c.w, N, C, H, W, K, R, S, stride, pad);
        const char *kind = fast ? "" : " (ref)";
        snprintf(name, sizeof name, "conv %s dx%s", label, kind);
        check_grad(name, conv_loss, &c, c.x, dx, nx);
        snprintf(name, sizeof name, "conv %s dw%s", label, kind);
        check_grad(name, conv_loss, &c, c.w, dw, nw);
        snprintf(name, sizeof name, "conv %s db%s", label, kind);
        check_grad(name, conv_loss, &c, c.b, db, K);
        free(dx), free(dw), free(db);
    }
    free(c.x), free(c.w), free(c.b), free(c.g), free(c.y), free(c.work), free(part);
}

static void test_conv2d_grad(void **state) {
    (void)state;
    grad_conv("3->4 3x3 7x6", 2, 3, 7, 6, 4, 3, 3, 1, 0);
    grad_conv("2->3 3x3 pad1 8x8", 2, 2, 8, 8, 3, 3, 3, 1, 1);
    grad_conv("2->3 3x3 stride2 pad1 8x8", 2, 2, 8, 8, 3, 3, 3, 2, 1);
    grad_conv("2->3 3x3 stride2 9x9", 3, 2, 9, 9, 3, 3, 3, 2, 0);
    grad_conv("1->2 5x5 12x12", 2, 1, 12, 12, 2, 5, 5, 1, 0);
    grad_conv("3->5 1x1 5x5", 2, 3, 5, 5, 5, 1, 1, 1, 0);
    grad_conv("3->2 5x3 stride2 pad2 9x7", 2, 3, 9, 7, 2, 5, 3, 2, 2);
    grad_conv("2->3 5x5 pad2 7x6 (same)", 2, 2, 7, 6, 3, 5, 5, 1, 2);
}

/* ======================================================================
 * linear
 * ====================================================================== */

typedef struct {
    int N, D, M;
    float *x, *w, *b, *y, *g;
} LinCtx;

static double linear_loss(void *p) {
    LinCtx *c = p;
    linear_forward(c->y, c->x, c->w, c->b, c->N, c->D, c->M);
    return dot_g(c->y, c->g, (size_t)c->N * c->M);
}

static void test_linear_grad(void **state) {
    (void)state;
    Rng rng;
    rng_seed(&rng, 2, "linear-grad");
    LinCtx c = {4, 9, 5, NULL, NULL, NULL, NULL, NULL};
    const size_t nx = (size_t)c.N * c.D, nw = (size_t)c.M * c.D, ny = (size_t)c.N * c.M;
    c.x = randv(nx, &rng), c.w = randv(nw, &rng), c.b = randv(c.M, &rng), c.g = randv(ny, &rng);
    c.y = zerov(ny);
    for (int fast = 1; fast >= 0; fast--) {
        float *dx = zerov(nx), *dw = zerov(nw), *db = zerov(c.M);
        (fast ? linear_backward : linear_backward_ref)(dx, dw, db, c.g, c.x, c.w, c.N, c.D, c.M);
        check_grad(fast ? "linear 4x9->5 dx" : "linear 4x9->5 dx (ref)", linear_loss, &c, c.x, dx, nx);
        check_grad(fast ? "linear 4x9->5 dw" : "linear 4x9->5 dw (ref)", linear_loss, &c, c.w, dw, nw);
        check_grad(fast ? "linear 4x9->5 db" : "linear 4x9->5 db (ref)", linear_loss, &c, c.b, db, c.M);
        free(dx), free(dw), free(db);
    }
    free(c.x), free(c.w), free(c.b), free(c.g), free(c.y);
}

/* ======================================================================
 * pooling
 * ====================================================================== */

typedef struct {
    int N, C, H, W, F, T, P, Q, is_max;
    float *x, *y, *g;
    int32_t *am;
} PoolCtx;

static double pool_loss(void *p) {
    PoolCtx *c = p;
    if (c->is_max)
        maxpool_forward(c->y, c->am, c->x, c->N, c->C, c->H, c->W, c->F, c->T);
    else
        avgpool_forward(c->y, c->x, c->N, c->C, c->H, c->W, c->F, c->T);
    return dot_g(c->y, c->g, (size_t)c->N * c->C * c->P * c->Q);
}

static void grad_pool(int is_max, int N, int C, int H, int W, int F, int T) {
    Rng rng;
    rng_seed(&rng, 3, is_max ? "maxpool-grad" : "avgpool-grad");
    PoolCtx c = {N, C, H, W, F, T, (H - F) / T + 1, (W - F) / T + 1, is_max, NULL, NULL, NULL, NULL};
    const size_t nx = (size_t)N * C * H * W, ny = (size_t)N * C * c.P * c.Q;
    c.x = randv(nx, &rng), c.g = randv(ny, &rng), c.y = zerov(ny);
    c.am = dg_xmalloc(sizeof(int32_t) * ny);
    if (is_max) {
        /* distinct values 0.03 apart in each plane: no tie within reach of +-h */
        int *perm = dg_xmalloc(sizeof(int) * H * W);
        for (int nc = 0; nc < N * C; nc++) {
            for (int i = 0; i < H * W; i++) perm[i] = i;
            rng_shuffle(&rng, perm, H * W);
            for (int i = 0; i < H * W; i++) c.x[(size_t)nc * H * W + i] = 0.03f * (perm[i] - H * W / 2);
        }
        free(perm);
    }
    float *dx = zerov(nx);
    pool_loss(&c); /* argmax of the unperturbed input */
    if (is_max)
        maxpool_backward(dx, c.g, c.am, N, C, H, W, F, T);
    else
        avgpool_backward(dx, c.g, N, C, H, W, F, T);
    char name[96];
    snprintf(name, sizeof name, "%s %dx%dx%dx%d F%d T%d dx", is_max ? "maxpool" : "avgpool", N, C, H,
             W, F, T);
    check_grad(name, pool_loss, &c, c.x, dx, nx);
    free(c.x), free(c.g), free(c.y), free(c.am), free(dx);
}

static void test_maxpool_grad(void **state) {
    (void)state;
    grad_pool(1, 2, 3, 8, 8, 2, 2);
    grad_pool(1, 2, 2, 7, 9, 2, 2); /* odd sizes: last row/column unused */
    grad_pool(1, 2, 2, 9, 9, 3, 2); /* overlapping windows */
}

static void test_avgpool_grad(void **state) {
    (void)state;
    grad_pool(0, 2, 3, 8, 8, 2, 2);
    grad_pool(0, 2, 2, 9, 7, 3, 2);
    grad_pool(0, 1, 2, 10, 10, 3, 3);
}

/* ======================================================================
 * activations
 * ====================================================================== */

typedef struct {
    size_t n;
    int is_tanh;
    float *x, *y, *g;
} ActCtx;

static double act_loss(void *p) {
    ActCtx *c = p;
    (c->is_tanh ? tanh_forward : relu_forward)(c->y, c->x, c->n);
    return dot_g(c->y, c->g, c->n);
}

static void grad_act(int is_tanh) {
    Rng rng;
    rng_seed(&rng, 4, is_tanh ? "tanh-grad" : "relu-grad");
    ActCtx c = {300, is_tanh, NULL, NULL, NULL};
    c.x = randv(c.n, &rng), c.g = randv(c.n, &rng), c.y = zerov(c.n);
    for (size_t i = 0; i < c.n; i++)
        /* relu: |x| in [0.1, 1] keeps +-h off the kink; tanh: spread over (-2, 2) */
        c.x[i] = is_tanh ? 2.0f * c.x[i] : copysignf(0.1f + 0.9f * fabsf(c.x[i]), c.x[i]);
    float *dx = zerov(c.n);
    act_loss(&c);
    (is_tanh ? tanh_backward : relu_backward)(dx, c.g, c.y, c.n);
    check_grad(is_tanh ? "tanh dx" : "relu dx", act_loss, &c, c.x, dx, c.n);
    free(c.x), free(c.g), free(c.y), free(dx);
}

static void test_relu_grad(void **state) {
    (void)state;
    grad_act(0);
}

static void test_tanh_grad(void **state) {
    (void)state;
    grad_act(1);
}

/* ======================================================================
 * batchnorm
 * ====================================================================== */

typedef struct {
    int N, C, L;
    float *x, *gamma, *beta, *y, *g, *mean, *rstd, *rm, *rv;
} BnCtx;

static double bn_loss(void *p) {
    BnCtx *c = p;
    batchnorm_forward_train(c->y, c->mean, c->rstd, c->rm, c->rv, c->x, c->gamma, c->beta, c->N,
                            c->C, c->L, 1e-5f, 0.1f);
    return dot_g(c->y, c->g, (size_t)c->N * c->C * c->L);
}

static void grad_bn(const char *label, int N, int C, int L) {
    Rng rng;
    rng_seed(&rng, 5, label);
    BnCtx c = {N, C, L, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    const size_t n = (size_t)N * C * L;
    c.x = randv(n, &rng), c.g = randv(n, &rng), c.y = zerov(n);
    c.gamma = randv(C, &rng), c.beta = randv(C, &rng);
    for (int i = 0; i < C; i++) c.gamma[i] = 1.0f + 0.5f * c.gamma[i]; /* in (0.5, 1.5) */
    c.mean = zerov(C), c.rstd = zerov(C), c.rm = zerov(C), c.rv = zerov(C);
    float *dx = zerov(n), *dgamma = zerov(C), *dbeta = zerov(C);
    bn_loss(&c);
    batchnorm_backward(dx, dgamma, dbeta, c.g, c.x, c.gamma, c.mean, c.rstd, N, C, L);
    char name[96];
    snprintf(name, sizeof name, "batchnorm %s dx", label);
    check_grad(name, bn_loss, &c, c.x, dx, n);
    snprintf(name, sizeof name, "batchnorm %s dgamma", label);
    check_grad(name, bn_loss, &c, c.gamma, dgamma, C);
    snprintf(name, sizeof name, "batchnorm %s dbeta", label);
    check_grad(name, bn_loss, &c, c.beta, dbeta, C);
    free(c.x), free(c.g), free(c.y), free(c.gamma), free(c.beta), free(c.mean), free(c.rstd);
    free(c.rm), free(c.rv), free(dx), free(dgamma), free(dbeta);
}

static void test_batchnorm_grad(void **state) {
    (void)state;
    grad_bn("2d 4x3x5x5", 4, 3, 25);
    grad_bn("2d 3x2x7x7 (vector sums)", 3, 2, 49);
    grad_bn("1d 6x4", 6, 4, 1);
}

/* ======================================================================
 * dropout (fixed u, hence a fixed mask across the +-h evaluations)
 * ====================================================================== */

typedef struct {
    int N, C, L, spatial;
    float p;
    float *x, *u, *y, *mask, *g;
} DropCtx;

static double drop_loss(void *p) {
    DropCtx *c = p;
    const size_t n = (size_t)c->N * c->C * c->L;
    if (c->spatial)
        dropout2d_forward(c->y, c->mask, c->x, c->u, c->N, c->C, c->L, c->p);
    else
        dropout_forward(c->y, c->mask, c->x, c->u, n, c->p);
    return dot_g(c->y, c->g, n);
}

static void grad_drop(int spatial) {
    Rng rng;
    rng_seed(&rng, 6, spatial ? "dropout2d-grad" : "dropout-grad");
    DropCtx c = {3, 4, 6, spatial, 0.4f, NULL, NULL, NULL, NULL, NULL};
    const size_t n = (size_t)c.N * c.C * c.L;
    c.x = randv(n, &rng), c.g = randv(n, &rng), c.y = zerov(n), c.mask = zerov(n);
    c.u = zerov(n);
    for (size_t i = 0; i < n; i++) c.u[i] = rng_uniform(&rng);
    float *dx = zerov(n);
    drop_loss(&c);
    if (spatial)
        dropout2d_backward(dx, c.g, c.mask, c.N, c.C, c.L);
    else
        dropout_backward(dx, c.g, c.mask, n);
    check_grad(spatial ? "dropout2d p=0.4 dx" : "dropout p=0.4 dx", drop_loss, &c, c.x, dx, n);
    free(c.x), free(c.g), free(c.y), free(c.mask), free(c.u), free(dx);
}

static void test_dropout_grad(void **state) {
    (void)state;
    grad_drop(0);
    grad_drop(1);
}

/* ======================================================================
 * softmax + cross-entropy, w.r.t. the logits
 * ====================================================================== */

typedef struct {
    int N, M;
    float *z, *probs;
    const uint8_t *labels;
} XentCtx;

static double xent_loss(void *p) {
    XentCtx *c = p;
    return softmax_xent_forward(c->probs, c->z, c->labels, c->N, c->M);
}

static void test_softmax_xent_grad(void **state) {
    (void)state;
    Rng rng;
    rng_seed(&rng, 7, "xent-grad");
    static const uint8_t labels[5] = {2, 0, 9, 4, 4};
    XentCtx c = {5, 10, NULL, NULL, labels};
    const size_t n = (size_t)c.N * c.M;
    c.z = randv(n, &rng), c.probs = zerov(n);
    for (size_t i = 0; i < n; i++) c.z[i] *= 3;
    float *dz = zerov(n);
    xent_loss(&c);
    softmax_xent_backward(dz, c.probs, labels, c.N, c.M);
    check_grad("softmax_xent 5x10 dlogits", xent_loss, &c, c.z, dz, n);
    free(c.z), free(c.probs), free(dz);
}

/* ======================================================================
 * elu (inputs kept 0.05 away from the kink at 0, as for relu)
 * ====================================================================== */

typedef struct {
    size_t n;
    float alpha;
    float *x, *y, *g;
} EluCtx;

static double elu_loss(void *p) {
    EluCtx *c = p;
    elu_forward(c->y, c->x, c->n, c->alpha);
    return dot_g(c->y, c->g, c->n);
}

static void test_elu_grad(void **state) {
    (void)state;
    Rng rng;
    rng_seed(&rng, 8, "elu-grad");
    EluCtx c = {300, 0.7f, NULL, NULL, NULL};
    c.x = randv(c.n, &rng), c.g = randv(c.n, &rng), c.y = zerov(c.n);
    for (size_t i = 0; i < c.n; i++) c.x[i] = copysignf(0.05f + 2.0f * fabsf(c.x[i]), c.x[i]);
    float *dx = zerov(c.n);
    elu_loss(&c);
    elu_backward(dx, c.g, c.y, c.n, c.alpha);
    check_grad("elu alpha=0.7 dx", elu_loss, &c, c.x, dx, c.n);
    free(c.x), free(c.g), free(c.y), free(dx);
}

/* ======================================================================
 * add, concat (three inputs each)
 * ====================================================================== */

typedef struct {
    int N, HW, is_concat;
    int C[3];
    float *x[3], *y, *g;
} MergeCtx;

static size_t merge_out(const MergeCtx *c) {
    return c->is_concat ? (size_t)c->N * (c->C[0] + c->C[1] + c->C[2]) * c->HW
                        : (size_t)c->N * c->C[0] * c->HW;
}

static double merge_loss(void *p) {
    MergeCtx *c = p;
    const float *xs[3] = {c->x[0], c->x[1], c->x[2]};
    if (c->is_concat)
        concat_forward(c->y, xs, c->C, 3, c->N, c->HW);
    else
        add_forward(c->y, xs, 3, c->N, (size_t)c->C[0] * c->HW);
    return dot_g(c->y, c->g, merge_out(c));
}

static void grad_merge(int is_concat) {
    Rng rng;
    rng_seed(&rng, 9, is_concat ? "concat-grad" : "add-grad");
    MergeCtx c = {2, 6, is_concat, {3, 3, 3}, {NULL}, NULL, NULL};
    if (is_concat) c.C[0] = 2, c.C[1] = 4, c.C[2] = 1;
    for (int i = 0; i < 3; i++) c.x[i] = randv((size_t)c.N * c.C[i] * c.HW, &rng);
    c.g = randv(merge_out(&c), &rng), c.y = zerov(merge_out(&c));
    float *dx[3];
    for (int i = 0; i < 3; i++) dx[i] = zerov((size_t)c.N * c.C[i] * c.HW);
    merge_loss(&c);
    if (is_concat)
        concat_backward(dx, c.g, c.C, 3, c.N, c.HW);
    else
        add_backward(dx, c.g, 3, c.N, (size_t)c.C[0] * c.HW);
    for (int i = 0; i < 3; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s input %d of 3 dx", is_concat ? "concat" : "add", i + 1);
        check_grad(name, merge_loss, &c, c.x[i], dx[i], (size_t)c.N * c.C[i] * c.HW);
    }
    for (int i = 0; i < 3; i++) free(c.x[i]), free(dx[i]);
    free(c.g), free(c.y);
}

static void test_add_grad(void **state) {
    (void)state;
    grad_merge(0);
}

static void test_concat_grad(void **state) {
    (void)state;
    grad_merge(1);
}

/* ======================================================================
 * global average pooling
 * ====================================================================== */

typedef struct {
    int N, C, HW;
    float *x, *y, *g;
} GapCtx;

static double gap_loss(void *p) {
    GapCtx *c = p;
    global_avgpool_forward(c->y, c->x, c->N, c->C, c->HW);
    return dot_g(c->y, c->g, (size_t)c->N * c->C);
}

static void test_global_avgpool_grad(void **state) {
    (void)state;
    Rng rng;
    rng_seed(&rng, 10, "gap-grad");
    GapCtx c = {3, 4, 5 * 7, NULL, NULL, NULL};
    const size_t nx = (size_t)c.N * c.C * c.HW;
    c.x = randv(nx, &rng), c.g = randv((size_t)c.N * c.C, &rng), c.y = zerov((size_t)c.N * c.C);
    float *dx = zerov(nx);
    gap_loss(&c);
    global_avgpool_backward(dx, c.g, c.N, c.C, c.HW);
    check_grad("globalavgpool 3x4x5x7 dx", gap_loss, &c, c.x, dx, nx);
    free(c.x), free(c.g), free(c.y), free(dx);
}

/* ======================================================================
 * grid_sample (w.r.t. the image and the grid) and affine_grid (theta).
 * Bilinear interpolation is piecewise linear with kinks where a sample
 * point crosses a pixel row or column (and the image border, also at an
 * integer): every sample point is kept at least 0.15 pixels from one, so
 * no +-h step (h*W/2 = 0.05 pixels for W = 10) crosses a kink. Some
 * points fall outside the image to exercise the zero padding. Both
 * align_corners settings are checked.
 * ====================================================================== */

typedef struct {
    int N, C, H, W, P, Q;
    float *x, *grid, *theta, *y, *g;
    int from_theta; /* loss as a function of theta (through affine_grid) */
    int align;      /* align_corners */
} GsCtx;

static double gs_loss(void *p) {
    GsCtx *c = p;
    if (c->from_theta) affine_grid_forward(c->grid, c->theta, c->N, c->P, c->Q, c->align);
    grid_sample_forward(c->y, c->x, c->grid, c->N, c->C, c->H, c->W, c->P, c->Q, c->align);
    return dot_g(c->y, c->g, (size_t)c->N * c->C * c->P * c->Q);
}

/* distance of a grid coordinate, in pixels of a side of `size`, from the nearest integer */
static float kink_distance(float g, int size, int align) {
    float i = align ? (g + 1.0f) * (size - 1) * 0.5f : ((g + 1.0f) * size - 1.0f) * 0.5f;
    return fabsf(i - roundf(i));
}

static void grid_sample_grad_case(int align) {
    Rng rng;
    rng_seed(&rng, 11, "grid-sample-grad");
    GsCtx c = {2, 3, 9, 10, 6, 7, NULL, NULL, NULL, NULL, NULL, 0, align};
    const size_t nx = (size_t)c.N * c.C * c.H * c.W, ng = (size_t)c.N * c.P * c.Q * 2;
    const size_t ny = (size_t)c.N * c.C * c.P * c.Q;
    c.x = randv(nx, &rng), c.g = randv(ny, &rng), c.y = zerov(ny), c.grid = zerov(ng);
    for (size_t i = 0; i < ng; i++) {
        int size = i % 2 ? c.H : c.W;
        do c.grid[i] = rng_uniform_range(&rng, -1.15f, 1.15f); /* some outside */
        while (kink_distance(c.grid[i], size, align) < 0.15f);
    }
    float *dx = zerov(nx), *dgrid = zerov(ng);
    gs_loss(&c);
    grid_sample_backward(dx, dgrid, c.g, c.x, c.grid, c.N, c.C, c.H, c.W, c.P, c.Q, align);
    check_grad(align ? "grid_sample align_corners 2x3x9x10 -> 6x7 dx" : "grid_sample 2x3x9x10 -> 6x7 dx",
               gs_loss, &c, c.x, dx, nx);
    check_grad(align ? "grid_sample align_corners 2x3x9x10 -> 6x7 dgrid"
                     : "grid_sample 2x3x9x10 -> 6x7 dgrid",
               gs_loss, &c, c.grid, dgrid, ng);

    free(c.x), free(c.g), free(c.y), free(c.grid), free(dx), free(dgrid);
}

static void test_grid_sample_grad(void **state) {
    (void)state;
    grid_sample_grad_case(0);
    grid_sample_grad_case(1);
}

/* affine_grid is linear in theta, so L = sum grid*g has no kinks at all;
 * together with the dgrid check above this covers d loss / d theta. */
typedef struct {
    int N, P, Q;
    float *theta, *grid, *g;
    int align; /* align_corners */
} AgCtx;

static double ag_loss(void *p) {
    AgCtx *c = p;
    affine_grid_forward(c->grid, c->theta, c->N, c->P, c->Q, c->align);
    return dot_g(c->grid, c->g, (size_t)c->N * c->P * c->Q * 2);
}

static void affine_grid_grad_case(int align) {
    Rng rng;
    rng_seed(&rng, 12, "affine-grid-grad");
    AgCtx c = {3, 5, 8, NULL, NULL, NULL, align};
    const size_t ng = (size_t)c.N * c.P * c.Q * 2;
    c.theta = randv((size_t)c.N * 6, &rng), c.g = randv(ng, &rng), c.grid = zerov(ng);
    float *dtheta = randv((size_t)c.N * 6, &rng), *before = dg_xmalloc(sizeof(float) * c.N * 6);
    memcpy(before, dtheta, sizeof(float) * c.N * 6);
    affine_grid_backward(dtheta, c.g, c.N, c.P, c.Q, align); /* adds: subtract what was there */
    for (int i = 0; i < c.N * 6; i++) dtheta[i] -= before[i];
    check_grad(align ? "affine_grid align_corners 3 -> 5x8 dtheta" : "affine_grid 3 -> 5x8 dtheta",
               ag_loss, &c, c.theta, dtheta, (size_t)c.N * 6);
    free(c.theta), free(c.g), free(c.grid), free(dtheta), free(before);
}

static void test_affine_grid_grad(void **state) {
    (void)state;
    affine_grid_grad_case(0);
    affine_grid_grad_case(1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv2d_grad),    cmocka_unit_test(test_linear_grad),
        cmocka_unit_test(test_maxpool_grad),   cmocka_unit_test(test_avgpool_grad),
        cmocka_unit_test(test_relu_grad),      cmocka_unit_test(test_tanh_grad),
        cmocka_unit_test(test_batchnorm_grad), cmocka_unit_test(test_dropout_grad),
        cmocka_unit_test(test_softmax_xent_grad), cmocka_unit_test(test_elu_grad),
        cmocka_unit_test(test_add_grad),       cmocka_unit_test(test_concat_grad),
        cmocka_unit_test(test_global_avgpool_grad), cmocka_unit_test(test_grid_sample_grad),
        cmocka_unit_test(test_affine_grid_grad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
