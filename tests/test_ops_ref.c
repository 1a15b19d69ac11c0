/* test_ops_ref.c — fast kernels against their plain references, plus the
 * semantics the reference alone cannot vouch for:
 *   - conv2d im2col+sgemm vs nested loops on the shapes of the zoo's models
 *     (batch 1, 3, 8; 1 and 2 threads): y, dx, dw, db within 1e-4;
 *   - conv2d_backward overwrites dx, adds into dw/db, accepts dx == NULL,
 *     and is bit-for-bit repeatable for a fixed thread count;
 *   - linear sgemm vs loops; maxpool fast vs ref, argmax = first maximum;
 *   - avgpool, batchnorm (running statistics as PyTorch), dropout masks and
 *     softmax/cross-entropy against values computed here in double.
 * Tolerances: 1e-4 in tu_max_rel_diff's metric (relative above 1, absolute
 * below) — float rounding of sums of a few thousand terms stays well under.
 * The reference kernels accumulate in double, so they are the "truth".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/blocks.h"
#include "core/check.h"
#include "ops/gemm_bf16.h"
#include "ops/ops.h"
#include "testutil.h"

#define TOL 1e-4f

static float *randv(size_t n, Rng *rng) {
    float *a = dg_xmalloc(sizeof(float) * (n ? n : 1));
    tu_fill_uniform(a, n, rng);
    return a;
}

static float *fillv(size_t n, float v) {
    float *a = dg_xmalloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) a[i] = v;
    return a;
}

/* Largest diff over a family of runs, asserted per run, printed once. */
typedef struct {
    const char *name;
    float worst;
    float tol; /* 0: TOL */
} DiffLog;

static void diff_track(DiffLog *d, const float *a, const float *b, size_t n) {
    float e = tu_max_rel_diff(a, b, n), tol = d->tol > 0 ? d->tol : TOL;
    if (!(e <= d->worst)) d->worst = e;
    if (!(e <= tol)) print_message("  %s: diff %.3g exceeds %.3g\n", d->name, (double)e, (double)tol);
    assert_true(e <= tol);
}

/* Float rounding of a depth-D sum grows like sqrt(D): a direct kernel that
 * accumulates a long sum in one register per output (as oneDNN's do) ends
 * near 1e-4 at D = 6400, where blocked GEMM stays lower. TOL holds up to
 * depth 1024, then scales with sqrt(D / 1024). */
static float depth_tol(int D) { return D <= 1024 ? TOL : TOL * sqrtf((float)D / 1024.0f); }

/* ======================================================================
 * conv2d
 * ====================================================================== */

typedef struct {
    const char *label;
    int C, H, W, K, R, S, stride, pad;
} ConvShape;

static const ConvShape conv_shapes[] = {
    {"lenet c1 1->6 5x5 28x28", 1, 28, 28, 6, 5, 5, 1, 0},
    {"lenet c3 6->16 5x5 12x12", 6, 12, 12, 16, 5, 5, 1, 0},
    {"1->32 3x3 pad1 28x28", 1, 28, 28, 32, 3, 3, 1, 1},
    {"32->32 3x3 pad1 28x28", 32, 28, 28, 32, 3, 3, 1, 1},
    {"32->64 3x3 pad1 14x14", 32, 14, 14, 64, 3, 3, 1, 1},
    {"32->32 3x3 stride2 14x14", 32, 14, 14, 32, 3, 3, 2, 0},
    {"32->32 3x3 stride2 pad1 14x14", 32, 14, 14, 32, 3, 3, 2, 1},
    {"16->8 1x1 14x14 (pointwise)", 16, 14, 14, 8, 1, 1, 1, 0},
    {"3->5 1x1 stride2 9x9", 3, 9, 9, 5, 1, 1, 2, 0},
    {"3->4 5x3 stride2 pad2 11x9", 3, 11, 9, 4, 5, 3, 2, 2},
    {"4->6 5x5 pad2 13x11 (same)", 4, 13, 11, 6, 5, 5, 1, 2},
    {"2->3 1x3 pad1 6x10 (P = H+2)", 2, 6, 10, 3, 1, 3, 1, 1},
    {"2->2 3x3 pad3 5x5 (all-pad rows)", 2, 5, 5, 2, 3, 3, 1, 3},
    /* stride 2 as stride 1 on the input's four phases (conv2d/phase.c) */
    {"32->32 5x5 stride2 pad2 28x28 (kvec, 32-wide)", 32, 28, 28, 32, 5, 5, 2, 2},
    {"32->24 5x5 stride2 pad2 28x28 (phases)", 32, 28, 28, 24, 5, 5, 2, 2},
    {"16->24 5x5 stride2 pad1 27x25 (phases, odd)", 16, 27, 25, 24, 5, 5, 2, 1},
    {"32->16 3x3 stride2 pad1 32x30 (phases, 3x3)", 32, 32, 30, 16, 3, 3, 2, 1},
    /* small outputs of deep layers: kernels vectorised over output
     * channels (conv2d/kvec.c; stride-2 dx by grouped im2col), or several
     * images per product where K is not a multiple of 64 */
    {"64->64 5x5 stride2 pad2 14x14 (kvec)", 64, 14, 14, 64, 5, 5, 2, 2},
    {"128->128 5x5 stride2 pad2 7x7 (kvec)", 128, 7, 7, 128, 5, 5, 2, 2},
    {"64->128 3x3 pad1 7x7 (kvec)", 64, 7, 7, 128, 3, 3, 1, 1},
    {"128->64 3x3 pad1 9x7 (kvec, 2 groups)", 128, 9, 7, 64, 3, 3, 1, 1},
    {"64->64 3x5 pad0 8x7 (kvec, 6x3 out)", 64, 8, 7, 64, 3, 5, 1, 0},
    {"64->64 3x3 stride2 pad1 13x11 (kvec, odd)", 64, 13, 11, 64, 3, 3, 2, 1},
    {"128->64 4x2 stride2 12x10 (kvec, even taps)", 128, 12, 10, 64, 4, 2, 2, 0},
    {"64->48 3x3 pad1 7x7 (grouped)", 64, 7, 7, 48, 3, 3, 1, 1},
    /* 3x3 stride 1 by Winograd F(2x2,3x3) (conv2d/wino.c): forward, and dx
     * where C is a multiple of 8; 8-lane (two tile rows) and 16-lane
     * vectors, an odd number of tile rows, three images per call */
    {"64->64 3x3 pad1 14x14 (wino, 2 tile rows a vector)", 64, 14, 14, 64, 3, 3, 1, 1},
    {"16->24 3x3 pad0 18x16 (wino; dx 16 lanes, 8 used)", 16, 18, 16, 24, 3, 3, 1, 0},
    {"20->16 3x3 pad1 10x30 (wino fwd, 15 tiles a row)", 20, 10, 30, 16, 3, 3, 1, 1},
    {"24->32 3x3 pad2 12x10 (wino, 7 tile rows; dx pad 0)", 24, 12, 10, 32, 3, 3, 1, 2},
    {"16->16 3x3 pad1 28x28 (wino dw, 16 channels)", 16, 28, 28, 16, 3, 3, 1, 1},
    {"32->48 3x3 pad1 8x8 (wino dw, 8 x 2 blocks)", 32, 8, 8, 48, 3, 3, 1, 1},
    {"16->8 3x3 pad1 2x2 (wino, one tile an image)", 16, 2, 2, 8, 3, 3, 1, 1},
    {"32->16 3x3 pad0 32x32 (wino fwd and dw, 30 wide)", 32, 32, 32, 16, 3, 3, 1, 0},
    /* col over 2^20 floats: computed in bands of output rows */
    {"128->2 3x3 pad1 32x32 (2 bands)", 128, 32, 32, 2, 3, 3, 1, 1},
    {"256->1 5x5 stride2 40x40 (2 bands)", 256, 40, 40, 1, 5, 5, 2, 0},
    {"256->2 5x5 30x30 (5 bands)", 256, 30, 30, 2, 5, 5, 1, 0},
};

static void conv_out(const ConvShape *s, int *P, int *Q) {
    *P = (s->H + 2 * s->pad - s->R) / s->stride + 1;
    *Q = (s->W + 2 * s->pad - s->S) / s->stride + 1;
}

static void check_conv_shape(const ConvShape *s) {
    static const int batches[] = {1, 3, 8};
    Rng rng;
    rng_seed(&rng, 42, s->label);
    int P, Q;
    conv_out(s, &P, &Q);
    const size_t nw = (size_t)s->K * s->C * s->R * s->S;
    const size_t ws = conv2d_workspace_floats(s->C, s->H, s->W, s->K, s->R, s->S, s->stride, s->pad);
    DiffLog ly = {"y", 0, depth_tol(s->C * s->R * s->S)}, ldx = {"dx", 0, depth_tol(s->K * s->R * s->S)},
            ldw = {"dw", 0, 0}, ldb = {"db", 0, 0};
    for (int bi = 0; bi < 3; bi++) {
        const int N = batches[bi];
        const size_t nx = (size_t)N * s->C * s->H * s->W, ny = (size_t)N * s->K * P * Q;
        float *x = randv(nx, &rng), *w = randv(nw, &rng), *b = randv(s->K, &rng);
        float *dy = randv(ny, &rng);
        float *dw0 = randv(nw, &rng), *db0 = randv(s->K, &rng); /* gradients already there */
        float *y_ref = fillv(ny, 0), *dx_ref = fillv(nx, 0);
        float *dw_ref = fillv(nw, 0), *db_ref = fillv(s->K, 0);
        memcpy(dw_ref, dw0, sizeof(float) * nw);
        memcpy(db_ref, db0, sizeof(float) * s->K);
        conv2d_forward_ref(y_ref, x, w, b, N, s->C, s->H, s->W, s->K, s->R, s->S, s->stride, s->pad);
        conv2d_backward_ref(dx_ref, dw_ref, db_ref, dy, x, w, N, s->C, s->H, s->W, s->K, s->R, s->S,
                            s->stride, s->pad);
        for (int nt = 1; nt <= 2; nt++) {
            float *work = fillv(ws * nt, NAN), *part = fillv((nw + s->K) * nt, NAN);
            float *y = fillv(ny, NAN), *dx = fillv(nx, NAN); /* garbage: must be overwritten */
            float *dw = fillv(nw, 0), *db = fillv(s->K, 0);
            memcpy(dw, dw0, sizeof(float) * nw);
            memcpy(db, db0, sizeof(float) * s->K);
            conv2d_forward(y, x, w, b, N, s->C, s->H, s->W, s->K, s->R, s->S, s->stride, s->pad,
                           work, nt);
            conv2d_backward(dx, dw, db, dy, x, w, N, s->C, s->H, s->W, s->K, s->R, s->S, s->stride,
                            s->pad, work, part, nt);
            diff_track(&ly, y, y_ref, ny);
            diff_track(&ldx, dx, dx_ref, nx);
            diff_track(&ldw, dw, dw_ref, nw);
            diff_track(&ldb, db, db_ref, s->K);
            free(work), free(part), free(y), free(dx), free(dw), free(db);
        }
        free(x), free(w), free(b), free(dy), free(dw0), free(db0);
        free(y_ref), free(dx_ref), free(dw_ref), free(db_ref);
    }
    print_message("conv %-32s max diff y %.2g dx %.2g dw %.2g db %.2g (tol %.0e, y %.1e)\n", s->label,
                  (double)ly.worst, (double)ldx.worst, (double)ldw.worst, (double)ldb.worst,
                  (double)TOL, (double)ly.tol);
}

static void test_conv2d_fast_vs_ref(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof conv_shapes / sizeof conv_shapes[0]; i++)
        check_conv_shape(&conv_shapes[i]);
}

/* The largest error of y against y_ref relative to y_ref's RMS. */
static float err_over_rms(const float *y, const float *y_ref, size_t n) {
    double e = 0, ss = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)y[i] - y_ref[i]);
        if (!(d <= e)) e = d;
        ss += (double)y_ref[i] * y_ref[i];
    }
    return (float)(e / sqrt(ss / (double)n));
}

/* The 6x6-tile Winograd kernels (F(4x4,3x3) for 3x3 layers, F(2x2,5x5) for
 * 5x5, inference through conv2d_forward_packed) against the reference on
 * shapes[0..n-1]: batches of 13 and 2 (no whole number of groups), 1 and 2
 * threads, the first call (packing) and the second (packed weights kept),
 * then one image twice (F(2x2) or, 5x5, the same kernel). Error at most
 * 5e-5 of the outputs' RMS; prints the worst per shape. */
static void wino6_vs_ref(const ConvShape *shapes, size_t n, const char *tag, int seed) {
    static const int batches[] = {13, 2};
    for (size_t i = 0; i < n; i++) {
        const ConvShape *s = &shapes[i];
        const int R = s->R, RR = R * R;
        Rng rng;
        rng_seed(&rng, seed, s->label);
        int P, Q;
        conv_out(s, &P, &Q);
        const size_t nw = (size_t)s->K * s->C * RR, ws = conv2d_workspace_floats(s->C, s->H, s->W, s->K, R, R, 1, s->pad);
        float *w = randv(nw, &rng), *b = randv(s->K, &rng), worst = 0;
        for (int nt = 1; nt <= 2; nt++) {
            Conv2dPacked packed = {0};
            float *work = fillv(ws * nt, NAN);
            for (int bi = 0; bi < 2; bi++) {
                const int N = batches[bi];
                const size_t nx = (size_t)N * s->C * s->H * s->W, ny = (size_t)N * s->K * P * Q;
                float *x = randv(nx, &rng), *y_ref = fillv(ny, 0), *y = fillv(ny, NAN);
                conv2d_forward_ref(y_ref, x, w, b, N, s->C, s->H, s->W, s->K, R, R, 1, s->pad);
                for (int rep = 0; rep < 4; rep++) { /* the batch packs, then reuses; one image twice */
                    const int one = rep >= 2;
                    const size_t m = one ? (size_t)s->K * P * Q : ny;
                    dg_blocks_reset();
                    conv2d_forward_packed(y, x, w, b, one ? 1 : N, s->C, s->H, s->W, s->K, R, R, 1, s->pad, work, nt,
                                          NULL, &packed);
                    const float e = err_over_rms(y, y_ref, m);
                    if (!(e <= worst)) worst = e;
                    if (!(e <= 5e-5f))
                        print_message("  %s N=%d nt=%d: error %.3g\n", s->label, one ? 1 : N, nt, (double)e);
                    assert_true(e <= 5e-5f);
                }
                free(x), free(y_ref), free(y);
            }
            free(work);
        }
        print_message("%s %-46s max error / RMS %.2g\n", tag, s->label, (double)worst);
        free(w), free(b);
    }
}

/* Inference batches of 3x3 stride-1 layers run as Winograd F(4x4,3x3)
 * (conv2d/wino4.c): 8 and 4 lanes an image, odd sizes, partial tiles, pads
 * 0-2. Its error (32-64 channels of U(-1,1)): 1.5-3e-5 of the RMS; up to
 * 1.1e-4 in tu_max_rel_diff's metric against F(2x2)'s 9e-6, the price of
 * the larger constants; a wrong tile or lane errs by ~1. */
static void test_conv2d_wino4_vs_ref(void **state) {
    (void)state;
    static const ConvShape shapes[] = {
        {"32->32 3x3 pad1 28x28 (8 lanes, 2 images)", 32, 28, 28, 32, 3, 3, 1, 1},
        {"64->64 3x3 pad1 14x14 (4 lanes, 4 images)", 64, 14, 14, 64, 3, 3, 1, 1},
        {"16->8 3x3 pad1 13x11 (4 lanes, partial tiles)", 16, 13, 11, 8, 3, 3, 1, 1},
        {"24->16 3x3 pad0 30x30 (28 wide)", 24, 30, 30, 16, 3, 3, 1, 0},
        {"16->24 3x3 pad2 9x17 (19 wide, 5 tiles)", 16, 9, 17, 24, 3, 3, 1, 2},
        {"20->8 3x3 pad1 5x32 (32 wide, 8 tiles)", 20, 5, 32, 8, 3, 3, 1, 1},
        {"16->8 3x3 pad0 3x3 (one output pixel)", 16, 3, 3, 8, 3, 3, 1, 0},
    };
    wino6_vs_ref(shapes, sizeof shapes / sizeof shapes[0], "wino4", 7);
}

/* 5x5 stride-1 layers as Winograd F(2x2,5x5) (conv2d/wino5.c, batches and
 * one image): 16 lanes an image (outputs 17-32 wide) and two halves of 8
 * (up to 16 wide: two images, or a lone image's top and bottom tile rows),
 * odd sizes, partial tiles, pads 0-2. */
static void test_conv2d_wino5_vs_ref(void **state) {
    (void)state;
    static const ConvShape shapes[] = {
        {"32->64 5x5 pad2 28x28 (16 lanes)", 32, 28, 28, 64, 5, 5, 1, 2},
        {"64->256 5x5 pad2 14x14 (two halves)", 64, 14, 14, 256, 5, 5, 1, 2},
        {"16->8 5x5 pad1 13x11 (partial tiles)", 16, 13, 11, 8, 5, 5, 1, 1},
        {"24->16 5x5 pad0 30x30 (26 wide)", 24, 30, 30, 16, 5, 5, 1, 0},
        {"20->8 5x5 pad2 5x32 (32 wide, 3 tile rows)", 20, 5, 32, 8, 5, 5, 1, 2},
        {"16->16 5x5 pad2 7x7 (halves, odd rows)", 16, 7, 7, 16, 5, 5, 1, 2},
        {"16->8 5x5 pad0 5x5 (one output pixel)", 16, 5, 5, 8, 5, 5, 1, 0},
    };
    wino6_vs_ref(shapes, sizeof shapes / sizeof shapes[0], "wino5", 17);
}

/* Did an A/B run switch convolution paths off (DIGITS_CONV, DIGITS_WINO)?
 * Then the tests of one path's own results skip themselves: the layer
 * runs on another path, whose sums and epilogue differ. */
static int paths_switched(void) { return getenv("DIGITS_CONV") || getenv("DIGITS_WINO"); }

/* One image of each shape cut by rows over 2-4 threads (conv2d/forward.c,
 * forward_rows): bit-identical to the same layer on one thread (the same
 * sums, the same epilogue; within TOL where the AVX-512 kernels do not
 * run), and within TOL of the reference; no epilogue, a ReLU (with 2x2
 * max pooling where `pool`), a ReLU with zero padding (1,2,2,1); packed
 * weights reused. */
static void rows_vs_one_thread(const ConvShape *shapes, size_t n, const char *tag, int pool, unsigned seed) {
    for (size_t i = 0; i < n; i++) {
        const ConvShape *s = &shapes[i];
        Rng rng;
        rng_seed(&rng, seed, s->label);
        int P, Q;
        conv_out(s, &P, &Q);
        const size_t nw = (size_t)s->K * s->C * s->R * s->S, ny = (size_t)s->K * P * Q;
        const size_t ws = conv2d_workspace_floats(s->C, s->H, s->W, s->K, s->R, s->S, s->stride, s->pad);
        const size_t pb = conv2d_pool_buf_floats(s->C, s->H, s->W, s->K, s->R, s->S, s->stride, s->pad);
        float *w = randv(nw, &rng), *b = randv(s->K, &rng), *x = randv((size_t)s->C * s->H * s->W, &rng);
        float *y_ref = fillv(ny, 0);
        conv2d_forward_ref(y_ref, x, w, b, 1, s->C, s->H, s->W, s->K, s->R, s->S, s->stride, s->pad);
        for (int e = 0; e < 3; e++) {
            Epilogue ep;
            memset(&ep, 0, sizeof ep);
            ep.n = 1;
            ep.step[0].relu = 1;
            if (e == 1 && pool) ep.pool = ep.pool_stride = 2;
            if (e == 2) {
                ep.padded = 1;
                ep.pad[0] = 1, ep.pad[1] = 2, ep.pad[2] = 2, ep.pad[3] = 1;
            }
            const size_t no = ep.pool ? (size_t)s->K * (P / 2) * (Q / 2)
                              : e == 2 ? (size_t)s->K * (P + 3) * (Q + 3) : ny;
            float *y1 = fillv(no, NAN), *pbuf = fillv(pb * 4, NAN);
            ep.pool_buf = pbuf;
            ep.pool_slice = pb;
            for (int nt = 1; nt <= 4; nt++) {
                Conv2dPacked packed = {0};
                float *work = fillv(ws * nt, NAN), *y = fillv(no, NAN);
                for (int rep = 0; rep < 2; rep++) { /* packs, then reuses */
                    dg_blocks_reset();
                    conv2d_forward_packed(nt == 1 ? y1 : y, x, w, b, 1, s->C, s->H, s->W, s->K, s->R, s->S,
                                          s->stride, s->pad, work, nt, e ? &ep : NULL, &packed);
                    if (nt == 1) continue;
                    if (tu_avx512_kernels() && !paths_switched()) { /* the row cut ran, with the one-thread sums */
                        assert_true(packed.rows >= 2 && packed.rows <= nt);
                        assert_memory_equal(y, y1, sizeof(float) * no);
                    } else { /* other paths: a channel split, other sums */
                        DiffLog d = {s->label, 0, 0};
                        diff_track(&d, y, y1, no);
                    }
                }
                free(work), free(y);
            }
            if (e == 0) {
                DiffLog d = {s->label, 0, 0};
                diff_track(&d, y1, y_ref, ny);
            }
            free(y1), free(pbuf);
        }
        print_message("%s rows %-46s 2-4 threads bit-identical to one\n", tag, s->label);
        free(w), free(b), free(x), free(y_ref);
    }
}

/* 3x3 Winograd layers cut by tile rows: a whole-row layout (28 and 30
 * wide) and a pair layout (14, 12, 6 wide: the rows halved in the lanes),
 * odd tile-row counts, 2x2 max pooling of the tile rows. */
static void test_conv2d_wino_rows(void **state) {
    (void)state;
    static const ConvShape shapes[] = {
        {"32->32 3x3 pad1 28x28 (14 tile rows)", 32, 28, 28, 32, 3, 3, 1, 1},
        {"32->64 3x3 pad1 14x14 (pair, 7 tile rows)", 32, 14, 14, 64, 3, 3, 1, 1},
        {"64->64 3x3 pad1 12x12 (pair, 6 tile rows)", 64, 12, 12, 64, 3, 3, 1, 1},
        {"16->16 3x3 pad0 32x32 (30 wide, 15 tile rows)", 16, 32, 32, 16, 3, 3, 1, 0},
        {"32->32 3x3 pad2 8x8 (pair, 5 tile rows)", 32, 8, 8, 32, 3, 3, 1, 2},
    };
    rows_vs_one_thread(shapes, sizeof shapes / sizeof shapes[0], "wino", 1, 13);
}

/* Layers of the output-channel kernels (conv2d/kvec.c) that the channel
 * split cannot keep on them (32 or 160 output channels: kvec_rows_blocks)
 * cut by output rows: stride 2 with and without padding, 3x3 at 7x7. */
static void test_conv2d_kvec_rows(void **state) {
    (void)state;
    static const ConvShape shapes[] = {
        {"32->32 5x5/2 pad0 31x31 (14 rows)", 32, 31, 31, 32, 5, 5, 2, 0},
        {"32->32 5x5/2 pad2 14x14 (7 rows)", 32, 14, 14, 32, 5, 5, 2, 2},
        {"64->32 3x3 pad1 7x7", 64, 7, 7, 32, 3, 3, 1, 1},
        {"64->160 3x3 pad0 9x9 (7 rows)", 64, 9, 9, 160, 3, 3, 1, 0},
    };
    rows_vs_one_thread(shapes, sizeof shapes / sizeof shapes[0], "kvec", 0, 14);
}

/* Inference of one-input-channel 3x3 layers (conv2d/c1.c, through
 * conv2d_forward_packed: the epilogue's steps applied in the kernel):
 * against the reference followed by the steps (batch-norm affine then
 * ReLU) and, on one shape, a fused 2x2 max pooling; odd sizes, K not a
 * multiple of the kernel's 4-channel block, pads 0-2, one image and a
 * batch, 1 and 2 threads, no epilogue or bias too. */
static void test_conv2d_c1_vs_ref(void **state) {
    (void)state;
    static const ConvShape shapes[] = {
        {"1->32 3x3 pad1 28x28", 1, 28, 28, 32, 3, 3, 1, 1},
        {"1->13 3x3 pad0 13x11 (9 wide)", 1, 13, 11, 13, 3, 3, 1, 0},
        {"1->6 3x3 pad1 9x17 (17 wide)", 1, 9, 17, 6, 3, 3, 1, 1},
        {"1->7 3x3 pad2 11x28 (30 wide)", 1, 11, 28, 7, 3, 3, 1, 2},
        {"1->5 3x3 pad0 5x32 (30 wide)", 1, 5, 32, 5, 3, 3, 1, 0},
    };
    static const int batches[] = {1, 5};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const ConvShape *s = &shapes[i];
        Rng rng;
        rng_seed(&rng, 11, s->label);
        int P, Q;
        conv_out(s, &P, &Q);
        const int K = s->K, PQ = P * Q, pool = i == 0 ? 2 : 0, Po = pool ? P / 2 : P, Qo = pool ? Q / 2 : Q;
        const size_t nw = (size_t)K * 9, ws = conv2d_workspace_floats(1, s->H, s->W, K, 3, 3, 1, s->pad);
        const size_t slice = conv2d_pool_buf_floats(1, s->H, s->W, K, 3, 3, 1, s->pad);
        float *w = randv(nw, &rng), *b = randv(K, &rng), *sub = randv(K, &rng), *mul = randv(K, &rng);
        float *add = randv(K, &rng);
        DiffLog log = {s->label, 0, 0};
        for (int variant = 0; variant < 3; variant++) { /* bias + affine + relu (+ pool); bias, none; no bias, relu */
            Epilogue ep = {0};
            ep.n = variant == 0 ? 2 : variant == 2 ? 1 : 0;
            ep.step[0].sub = sub, ep.step[0].mul = mul, ep.step[0].add = add;
            ep.step[0].relu = variant == 2;
            ep.step[1].relu = 1;
            ep.pool = variant == 0 ? pool : 0, ep.pool_stride = 2;
            const float *bias = variant == 2 ? NULL : b;
            for (int bi = 0; bi < 2; bi++) {
                const int N = batches[bi];
                const size_t nx = (size_t)N * s->H * s->W, nfull = (size_t)N * K * PQ;
                const size_t ny = variant == 0 ? (size_t)N * K * Po * Qo : nfull;
                float *x = randv(nx, &rng), *full = fillv(nfull, 0), *want = fillv(ny, 0);
                conv2d_forward_ref(full, x, w, bias, N, 1, s->H, s->W, K, 3, 3, 1, s->pad);
                for (size_t j = 0; j < nfull; j++) {
                    const int k = (int)(j / PQ % K);
                    float v = full[j];
                    if (variant == 0) v = (v - sub[k]) * mul[k] + add[k];
                    if (variant != 1) v = v > 0 ? v : 0;
                    full[j] = v;
                }
                if (variant == 0 && pool) maxpool_forward_ref(want, full, N, K, P, Q, 2, 2);
                else memcpy(want, full, sizeof(float) * ny);
                for (int nt = 1; nt <= 2; nt++) {
                    Conv2dPacked packed = {0};
                    float *work = fillv(ws * nt, NAN), *y = fillv(ny, NAN), *pbuf = fillv(slice * nt, NAN);
                    ep.pool_buf = pbuf, ep.pool_slice = slice;
                    for (int call = 0; call < 2; call++) {
                        conv2d_forward_packed(y, x, w, bias, N, 1, s->H, s->W, K, 3, 3, 1, s->pad, work, nt,
                                              variant == 1 ? NULL : &ep, &packed);
                        diff_track(&log, y, want, ny);
                    }
                    free(work), free(y), free(pbuf);
                }
                free(x), free(full), free(want);
            }
        }
        print_message("c1 %-40s max diff %.2g\n", s->label, (double)log.worst);
        free(w), free(b), free(sub), free(mul), free(add);
    }
}

/* Inference batches with 16 images in the vector lanes (conv2d/ilv.c)
 * against the reference conv, steps and pooling: lenet5's and cnn's
 * layers, a padded one, batches that leave a part group per thread. */
static void test_conv2d_ilv_vs_ref(void **state) {
    (void)state;
    if (paths_switched()) skip(); /* noilv or im2col: the layers take another path */
    static const ConvShape shapes[] = {
        {"1->6 5x5 28x28 (lenet5 1)", 1, 28, 28, 6, 5, 5, 1, 0},
        {"6->16 5x5 12x12 (lenet5 2)", 6, 12, 12, 16, 5, 5, 1, 0},
        {"1->16 3x3 pad1 28x28 (fast 1)", 1, 28, 28, 16, 3, 3, 1, 1},
        {"16->16 3x3 pad1 14x14 (fast 2)", 16, 14, 14, 16, 3, 3, 1, 1},
        {"3->7 3x3 pad2 9x19 (odd sizes)", 3, 9, 19, 7, 3, 3, 1, 2},
    };
    static const int batches[] = {32, 37, 50};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const ConvShape *s = &shapes[i];
        const int C = s->C, K = s->K, R = s->R, S = s->S;
        Rng rng;
        rng_seed(&rng, 12, s->label);
        int P, Q;
        conv_out(s, &P, &Q);
        const int PQ = P * Q, Po = P / 2, Qo = Q / 2;
        const size_t nw = (size_t)K * C * R * S, ws = conv2d_workspace_floats(C, s->H, s->W, K, R, S, 1, s->pad);
        const size_t slice = conv2d_pool_buf_floats(C, s->H, s->W, K, R, S, 1, s->pad);
        float *w = randv(nw, &rng), *b = randv(K, &rng), *sub = randv(K, &rng), *mul = randv(K, &rng);
        float *add = randv(K, &rng);
        DiffLog log = {s->label, 0, 0};
        /* bias, tanh, average pool (lenet5); bias, affine, max pool with its relu (cnn-bn's order);
         * no bias, relu; bias alone, no epilogue */
        for (int variant = 0; variant < 4; variant++) {
            Epilogue ep = {0};
            ep.n = variant == 0 || variant == 2 ? 1 : variant == 1 ? 1 : 0;
            ep.step[0].tanh = variant == 0;
            ep.step[0].relu = variant == 2;
            ep.step[0].sub = sub, ep.step[0].mul = mul, ep.step[0].add = add;
            ep.pool = variant <= 1 ? 2 : 0, ep.pool_stride = 2, ep.pool_avg = variant == 0, ep.pool_relu = variant == 1;
            const float *bias = variant == 2 ? NULL : b;
            for (size_t bi = 0; bi < sizeof batches / sizeof batches[0]; bi++) {
                const int N = batches[bi];
                const size_t nx = (size_t)N * C * s->H * s->W, nfull = (size_t)N * K * PQ;
                const size_t ny = ep.pool ? (size_t)N * K * Po * Qo : nfull;
                float *x = randv(nx, &rng), *full = fillv(nfull, 0), *want = fillv(ny, 0);
                conv2d_forward_ref(full, x, w, bias, N, C, s->H, s->W, K, R, S, 1, s->pad);
                for (size_t j = 0; j < nfull; j++) {
                    const int k = (int)(j / PQ % K);
                    if (variant == 0) full[j] = tanhf(full[j]);
                    if (variant == 1) full[j] = (full[j] - sub[k]) * mul[k] + add[k];
                    if (variant == 2) full[j] = full[j] > 0 ? full[j] : 0;
                }
                if (variant == 0) avgpool_forward_ref(want, full, N, K, P, Q, 2, 2);
                else if (variant == 1) maxpool_forward_ref(want, full, N, K, P, Q, 2, 2);
                else memcpy(want, full, sizeof(float) * ny);
                if (variant == 1)
                    for (size_t j = 0; j < ny; j++) want[j] = want[j] > 0 ? want[j] : 0;
                for (int nt = 1; nt <= 2; nt++) {
                    Conv2dPacked packed = {0};
                    float *work = fillv(ws * nt, NAN), *y = fillv(ny, NAN), *pbuf = fillv(slice * nt, NAN);
                    ep.pool_buf = pbuf, ep.pool_slice = slice;
                    for (int call = 0; call < 2; call++) { /* the second call on the weights packed by the first */
                        conv2d_forward_packed(y, x, w, bias, N, C, s->H, s->W, K, R, S, 1, s->pad, work, nt,
                                              variant == 3 ? NULL : &ep, &packed);
                        diff_track(&log, y, want, ny);
                    }
#if defined(__AVX512F__) && !defined(DG_ISA_DISPATCH)
                    assert_true(packed.ilv >= 1); /* the interleaved kernel ran */
#endif
                    free(work), free(y), free(pbuf);
                }
                free(x), free(full), free(want);
            }
        }
        print_message("ilv %-40s max diff %.2g\n", s->label, (double)log.worst);
        free(w), free(b), free(sub), free(mul), free(add);
    }
}

/* No bias, dx not wanted, dw not wanted: each optional output on its own. */
static void test_conv2d_optional_outputs(void **state) {
    (void)state;
    const int N = 3, C = 4, H = 10, W = 10, K = 5, R = 3, S = 3, st = 1, pd = 1;
    const int P = 10, Q = 10;
    const size_t nx = (size_t)N * C * H * W, ny = (size_t)N * K * P * Q, nw = (size_t)K * C * R * S;
    Rng rng;
    rng_seed(&rng, 7, "conv-opt");
    float *x = randv(nx, &rng), *w = randv(nw, &rng), *dy = randv(ny, &rng);
    float *y = fillv(ny, 0), *y_ref = fillv(ny, 0);
    const size_t ws = conv2d_workspace_floats(C, H, W, K, R, S, st, pd);
    float *work = fillv(ws * 2, 0), *part = fillv((nw + K) * 2, 0);
    conv2d_forward_ref(y_ref, x, w, NULL, N, C, H, W, K, R, S, st, pd);
    conv2d_forward(y, x, w, NULL, N, C, H, W, K, R, S, st, pd, work, 2);
    TU_ASSERT_CLOSE(y, y_ref, ny, TOL, "conv no-bias y");

    float *dw = fillv(nw, 0), *dw_ref = fillv(nw, 0), *db = fillv(K, 0), *db_ref = fillv(K, 0);
    conv2d_backward_ref(NULL, dw_ref, db_ref, dy, x, w, N, C, H, W, K, R, S, st, pd);
    conv2d_backward(NULL, dw, db, dy, x, w, N, C, H, W, K, R, S, st, pd, work, part, 2);
    TU_ASSERT_CLOSE(dw, dw_ref, nw, TOL, "conv dx=NULL dw");
    TU_ASSERT_CLOSE(db, db_ref, K, TOL, "conv dx=NULL db");

    float *dx = fillv(nx, NAN), *dx_ref = fillv(nx, 0);
    conv2d_backward_ref(dx_ref, NULL, NULL, dy, x, w, N, C, H, W, K, R, S, st, pd);
    conv2d_backward(dx, NULL, NULL, dy, x, w, N, C, H, W, K, R, S, st, pd, work, NULL, 2);
    TU_ASSERT_CLOSE(dx, dx_ref, nx, TOL, "conv dw=db=NULL dx");
    free(x), free(w), free(dy), free(y), free(y_ref), free(work), free(part);
    free(dw), free(dw_ref), free(db), free(db_ref), free(dx), free(dx_ref);
}

/* Same inputs, same thread count: bit-identical dw and db (and dx). */
static void test_conv2d_deterministic(void **state) {
    (void)state;
    const int N = 7, C = 32, H = 14, W = 14, K = 64, R = 3, S = 3, st = 1, pd = 1;
    const size_t nx = (size_t)N * C * H * W, ny = (size_t)N * K * H * W, nw = (size_t)K * C * R * S;
    Rng rng;
    rng_seed(&rng, 9, "conv-det");
    float *x = randv(nx, &rng), *w = randv(nw, &rng), *dy = randv(ny, &rng);
    const size_t ws = conv2d_workspace_floats(C, H, W, K, R, S, st, pd);
    for (int nt = 1; nt <= 2; nt++) {
        float *work = fillv(ws * nt, 0), *part = fillv((nw + K) * nt, 0);
        float *dx[2], *dw[2], *db[2];
        for (int run = 0; run < 2; run++) {
            dx[run] = fillv(nx, 0), dw[run] = fillv(nw, 0), db[run] = fillv(K, 0);
            conv2d_backward(dx[run], dw[run], db[run], dy, x, w, N, C, H, W, K, R, S, st, pd, work,
                            part, nt);
        }
        print_message("conv backward nthreads=%d repeat: dw %s, db %s, dx %s\n", nt,
                      memcmp(dw[0], dw[1], nw * 4) ? "DIFFER" : "identical",
                      memcmp(db[0], db[1], K * 4) ? "DIFFER" : "identical",
                      memcmp(dx[0], dx[1], nx * 4) ? "DIFFER" : "identical");
        assert_memory_equal(dw[0], dw[1], nw * sizeof(float));
        assert_memory_equal(db[0], db[1], K * sizeof(float));
        assert_memory_equal(dx[0], dx[1], nx * sizeof(float));
        for (int run = 0; run < 2; run++) free(dx[run]), free(dw[run]), free(db[run]);
        free(work), free(part);
    }
    free(x), free(w), free(dy);
}

/* ======================================================================
 * linear
 * ====================================================================== */

/* One image through conv2d_forward_packed (inference: weights packed once,
 * a ReLU epilogue or none, 1 and 2 threads, called twice so the second
 * call reuses the packed weights) against conv2d_forward_ref, on shapes
 * whose kernel covers the whole input (one output pixel: the
 * matrix-vector path, K not a multiple of 8 included) and a few others. */
static void test_conv2d_packed_one_image(void **state) {
    (void)state;
    static const ConvShape shapes[] = {
        {"lenet c5 16->120 4x4 on 4x4 (whole input)", 16, 4, 4, 120, 4, 4, 1, 0},
        {"3->13 5x3 on 5x3 (whole input, odd K)", 3, 5, 3, 13, 5, 3, 1, 0},
        {"64->70 7x7 on 7x7 (whole input, wide)", 64, 7, 7, 70, 7, 7, 1, 0},
        {"1->6 5x5 28x28", 1, 28, 28, 6, 5, 5, 1, 0},
        {"6->16 5x5 12x12", 6, 12, 12, 16, 5, 5, 1, 0},
        {"32->64 3x3 pad1 14x14", 32, 14, 14, 64, 3, 3, 1, 1},
    };
    Rng rng;
    rng_seed(&rng, 5, "packed one image");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const ConvShape *s = &shapes[i];
        int P, Q;
        conv_out(s, &P, &Q);
        const size_t nx = (size_t)s->C * s->H * s->W, ny = (size_t)s->K * P * Q;
        const size_t nw = (size_t)s->K * s->C * s->R * s->S;
        const size_t ws = conv2d_workspace_floats(s->C, s->H, s->W, s->K, s->R, s->S, s->stride, s->pad);
        float *x = randv(nx, &rng), *w = randv(nw, &rng), *b = randv(s->K, &rng), *want = fillv(ny, 0);
        conv2d_forward_ref(want, x, w, b, 1, s->C, s->H, s->W, s->K, s->R, s->S, s->stride, s->pad);
        DiffLog ly = {s->label, 0, depth_tol(s->C * s->R * s->S)};
        for (int relu = 0; relu < 2; relu++) {
            float *want_ep = fillv(ny, 0);
            for (size_t j = 0; j < ny; j++) want_ep[j] = relu && want[j] < 0 ? 0 : want[j];
            Epilogue ep = {0};
            ep.n = 1;
            ep.step[0].relu = 1;
            for (int nt = 1; nt <= 2; nt++) {
                float *work = fillv(ws * nt, NAN), *y = fillv(ny, NAN);
                Conv2dPacked packed = {0};
                for (int call = 0; call < 2; call++) {
                    conv2d_forward_packed(y, x, w, b, 1, s->C, s->H, s->W, s->K, s->R, s->S, s->stride, s->pad,
                                          work, nt, relu ? &ep : NULL, &packed);
                    diff_track(&ly, y, want_ep, ny);
                }
                free(work), free(y);
            }
            free(want_ep);
        }
        print_message("packed one image %-44s max diff %.2g\n", s->label, (double)ly.worst);
        free(x), free(w), free(b), free(want);
    }
}

static void test_linear_fast_vs_ref(void **state) {
    (void)state;
    static const int shapes[][3] = {{1, 784, 10}, {3, 400, 120}, {8, 120, 84}, {64, 256, 10}, {5, 7, 3}};
    Rng rng;
    rng_seed(&rng, 3, "linear");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int N = shapes[i][0], D = shapes[i][1], M = shapes[i][2];
        const size_t nx = (size_t)N * D, ny = (size_t)N * M, nw = (size_t)M * D;
        float *x = randv(nx, &rng), *w = randv(nw, &rng), *b = randv(M, &rng), *dy = randv(ny, &rng);
        float *y = fillv(ny, NAN), *y_ref = fillv(ny, 0), *dx = fillv(nx, NAN), *dx_ref = fillv(nx, 0);
        float *dw = randv(nw, &rng), *dw_ref = fillv(nw, 0), *db = randv(M, &rng), *db_ref = fillv(M, 0);
        memcpy(dw_ref, dw, nw * 4);
        memcpy(db_ref, db, M * 4);
        DiffLog ly = {"y", 0, 0}, ldx = {"dx", 0, 0}, ldw = {"dw", 0, 0}, ldb = {"db", 0, 0};
        for (int use_bias = 0; use_bias < 2; use_bias++) {
            linear_forward(y, x, w, use_bias ? b : NULL, N, D, M);
            linear_forward_ref(y_ref, x, w, use_bias ? b : NULL, N, D, M);
            diff_track(&ly, y, y_ref, ny);
        }
        linear_backward(dx, dw, db, dy, x, w, N, D, M);
        linear_backward_ref(dx_ref, dw_ref, db_ref, dy, x, w, N, D, M);
        diff_track(&ldx, dx, dx_ref, nx);
        diff_track(&ldw, dw, dw_ref, nw);
        diff_track(&ldb, db, db_ref, M);
        print_message("linear %3dx%3d->%3d max diff y %.2g dx %.2g dw %.2g db %.2g (tol %.0e)\n", N, D,
                      M, (double)ly.worst, (double)ldx.worst, (double)ldw.worst, (double)ldb.worst,
                      (double)TOL);
        free(x), free(w), free(b), free(dy), free(y), free(y_ref), free(dx), free(dx_ref);
        free(dw), free(dw_ref), free(db), free(db_ref);
    }
}

/* One image on the column panels (zero inputs skipped) against the
 * reference: outputs not a multiple of the panel, inputs from dense (the
 * rows' product runs) to all zero (the bias alone), one and two threads. */
static void test_linear_panels_vs_ref(void **state) {
    (void)state;
    static const struct { int D, M; double zeros; } cases[] = {
        {3136, 256, 0.6}, {4000, 1000, 0.87}, {1000, 500, 0.7}, {300, 130, 0.95},
        {512, 256, 0.0},  {512, 256, 0.15},   {700, 300, 1.0},  {64, 1030, 0.5}};
    Rng rng;
    rng_seed(&rng, 4, "linear-panels");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int D = cases[i].D, M = cases[i].M;
        float *x = randv((size_t)D, &rng), *w = randv((size_t)M * D, &rng), *b = randv((size_t)M, &rng);
        for (int d = 0; d < D; d++)
            if (rng_uniform(&rng) < cases[i].zeros) x[d] = 0.0f;
        float *panels = fillv(linear_panels_floats(D, M), NAN), *want = fillv((size_t)M, 0);
        linear_pack_panels(panels, w, D, M);
        DiffLog ly = {"y", 0, depth_tol(D)};
        for (int use_bias = 0; use_bias < 2; use_bias++) {
            linear_forward_ref(want, x, w, use_bias ? b : NULL, 1, D, M);
            for (int threads = 1; threads <= 2; threads++) {
                float *y = fillv((size_t)M, NAN);
                linear_forward_ep(y, x, w, use_bias ? b : NULL, 1, D, M, NULL, threads, panels);
                diff_track(&ly, y, want, (size_t)M);
                free(y);
            }
        }
        print_message("linear panels %4d->%4d, %3.0f %% zeros: max diff %.2g (tol %.0e)\n", D, M,
                      100 * cases[i].zeros, (double)ly.worst, (double)depth_tol(D));
        free(x), free(w), free(b), free(panels), free(want);
    }
}

/* ======================================================================
 * pooling
 * ====================================================================== */

static void test_maxpool_fast_vs_ref(void **state) {
    (void)state;
    /* N, C, H, W, F, T */
    static const int shapes[][6] = {{8, 6, 24, 24, 2, 2}, {3, 16, 8, 8, 2, 2}, {2, 32, 28, 28, 2, 2},
                                    {2, 3, 7, 7, 2, 2},   {2, 3, 9, 11, 3, 2}, {1, 2, 10, 10, 3, 3},
                                    {64, 32, 28, 28, 2, 2}, /* rows of 16+ outputs: the vector kernel's 2nd step */
                                    {2, 3, 40, 39, 2, 2},   {1, 2, 6, 66, 2, 2}};
    Rng rng;
    rng_seed(&rng, 5, "maxpool");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int N = shapes[i][0], C = shapes[i][1], H = shapes[i][2], W = shapes[i][3];
        const int F = shapes[i][4], T = shapes[i][5];
        const int P = (H - F) / T + 1, Q = (W - F) / T + 1;
        const size_t nx = (size_t)N * C * H * W, ny = (size_t)N * C * P * Q;
        float *x = randv(nx, &rng);
        /* Coarse values (5 levels, half the plane zero as after a ReLU): many ties. */
        for (size_t j = 0; j < nx; j++) x[j] = x[j] < 0 ? 0.0f : floorf(x[j] * 4) / 4;
        float *y = fillv(ny, NAN), *y_ref = fillv(ny, 0);
        int32_t *am = dg_xmalloc(ny * sizeof(int32_t));
        maxpool_forward(y, am, x, N, C, H, W, F, T);
        maxpool_forward_ref(y_ref, x, N, C, H, W, F, T);
        char name[96];
        snprintf(name, sizeof name, "maxpool %dx%dx%dx%d F%d T%d y", N, C, H, W, F, T);
        TU_ASSERT_CLOSE(y, y_ref, ny, 0.0f, name);
        /* argmax: the first window position (row-major) holding the max */
        size_t bad = 0;
        for (int nc = 0; nc < N * C; nc++)
            for (int p = 0; p < P; p++)
                for (int q = 0; q < Q; q++) {
                    const float *xp = x + (size_t)nc * H * W;
                    float m = y_ref[((size_t)nc * P + p) * Q + q];
                    int first = -1;
                    for (int a = 0; a < F && first < 0; a++)
                        for (int c = 0; c < F; c++)
                            if (xp[(p * T + a) * W + q * T + c] == m) {
                                first = (p * T + a) * W + q * T + c;
                                break;
                            }
                    bad += am[((size_t)nc * P + p) * Q + q] != first;
                }
        if (bad) print_message("%s: %zu wrong argmax\n", name, bad);
        assert_int_equal(bad, 0);
        /* backward: every dy lands on its argmax, the rest is zero */
        float *dy = randv(ny, &rng), *dx = fillv(nx, NAN), *dx_ref = fillv(nx, 0);
        for (size_t j = 0; j < ny; j++) {
            size_t plane = j / ((size_t)P * Q);
            dx_ref[plane * H * W + am[j]] += dy[j];
        }
        maxpool_backward(dx, dy, am, N, C, H, W, F, T);
        snprintf(name, sizeof name, "maxpool %dx%dx%dx%d F%d T%d dx", N, C, H, W, F, T);
        TU_ASSERT_CLOSE(dx, dx_ref, nx, 0.0f, name);
        free(x), free(y), free(y_ref), free(am), free(dy), free(dx), free(dx_ref);
    }
}

static void test_avgpool_fast_vs_ref(void **state) {
    (void)state;
    /* 2x2/2 tiling the plane (the fast paths), 2x2/2 leaving a row and a
     * column out, overlapping 3x3/2, 3x3/3, and a 5000-plane batch (OpenMP) */
    static const int shapes[][6] = {{2, 3, 8, 8, 2, 2}, {2, 3, 7, 9, 2, 2}, {2, 3, 7, 9, 3, 2}, {1, 4, 10, 10, 3, 3},
                                    {100, 50, 8, 8, 2, 2}};
    Rng rng;
    rng_seed(&rng, 6, "avgpool");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int N = shapes[i][0], C = shapes[i][1], H = shapes[i][2], W = shapes[i][3];
        const int F = shapes[i][4], T = shapes[i][5];
        const int P = (H - F) / T + 1, Q = (W - F) / T + 1;
        const size_t nx = (size_t)N * C * H * W, ny = (size_t)N * C * P * Q;
        float *x = randv(nx, &rng), *dy = randv(ny, &rng);
        float *y = fillv(ny, NAN), *y_ref = fillv(ny, NAN), *dx = fillv(nx, NAN), *dx_ref = fillv(nx, NAN);
        avgpool_forward_ref(y_ref, x, N, C, H, W, F, T);
        avgpool_backward_ref(dx_ref, dy, N, C, H, W, F, T);
        avgpool_forward(y, x, N, C, H, W, F, T);
        avgpool_backward(dx, dy, N, C, H, W, F, T);
        char name[96];
        snprintf(name, sizeof name, "avgpool %dx%dx%dx%d F%d T%d y", N, C, H, W, F, T);
        TU_ASSERT_CLOSE(y, y_ref, ny, 1e-6f, name);
        snprintf(name, sizeof name, "avgpool %dx%dx%dx%d F%d T%d dx", N, C, H, W, F, T);
        TU_ASSERT_CLOSE(dx, dx_ref, nx, 1e-6f, name);
        free(x), free(dy), free(y), free(y_ref), free(dx), free(dx_ref);
    }
}

/* ======================================================================
 * batchnorm, dropout, softmax: values computed here in double
 * ====================================================================== */

/* Planes of L >= 16 take the vectorised one-pass moments (shifted sums),
 * smaller ones two passes in double: both against double references here,
 * with a mean far from 0 (shift = mean / std of the data). */
static void check_batchnorm_semantics(int N, int L, float shift) {
    enum { C = 3 };
    const float eps = 1e-5f, mom = 0.1f;
    const size_t n = (size_t)N * C * L;
    Rng rng;
    rng_seed(&rng, 11, "bn");
    float *x = randv(n, &rng), *gamma = randv(C, &rng), *beta = randv(C, &rng);
    for (size_t i = 0; i < n; i++) x[i] = shift + 2.0f * x[i]; /* mean far from 0 */
    float *y = fillv(n, NAN), *y_ref = fillv(n, 0), mean[3], rstd[3];
    float rm[3] = {0.5f, -1, 2}, rv[3] = {1, 2, 0.5f}, rm_ref[3], rv_ref[3];
    for (int c = 0; c < C; c++) {
        double s = 0, ss = 0;
        for (int i = 0; i < N; i++)
            for (int l = 0; l < L; l++) s += x[((size_t)i * C + c) * L + l];
        double mu = s / (N * L);
        for (int i = 0; i < N; i++)
            for (int l = 0; l < L; l++) ss += pow(x[((size_t)i * C + c) * L + l] - mu, 2);
        double var = ss / (N * L), r = 1 / sqrt(var + eps);
        for (int i = 0; i < N; i++)
            for (int l = 0; l < L; l++) {
                size_t j = ((size_t)i * C + c) * L + l;
                y_ref[j] = (float)(gamma[c] * (x[j] - mu) * r + beta[c]);
            }
        rm_ref[c] = (float)(0.9 * rm[c] + 0.1 * mu);
        rv_ref[c] = (float)(0.9 * rv[c] + 0.1 * var * (N * L) / (N * L - 1)); /* unbiased */
    }
    batchnorm_forward_train(y, mean, rstd, rm, rv, x, gamma, beta, N, C, L, eps, mom);
    TU_ASSERT_CLOSE(y, y_ref, n, 1e-5f, "batchnorm train y");
    TU_ASSERT_CLOSE(rm, rm_ref, C, 1e-6f, "batchnorm running_mean");
    TU_ASSERT_CLOSE(rv, rv_ref, C, 1e-6f, "batchnorm running_var (unbiased)");
    /* eval uses the running statistics */
    for (int c = 0; c < C; c++)
        for (int i = 0; i < N; i++)
            for (int l = 0; l < L; l++) {
                size_t j = ((size_t)i * C + c) * L + l;
                y_ref[j] = (float)(gamma[c] * (x[j] - rm[c]) / sqrt(rv[c] + (double)eps) + beta[c]);
            }
    batchnorm_forward_eval(y, x, gamma, beta, rm, rv, N, C, L, eps);
    TU_ASSERT_CLOSE(y, y_ref, n, 1e-5f, "batchnorm eval y");
    free(x), free(gamma), free(beta), free(y), free(y_ref);
}

static void test_batchnorm_semantics(void **state) {
    (void)state;
    check_batchnorm_semantics(5, 6, 3.0f);    /* scalar two-pass sums */
    check_batchnorm_semantics(8, 784, 3.0f);  /* vector sums, 28x28 planes */
    check_batchnorm_semantics(7, 49, 40.0f);  /* vector sums with a tail, mean 20 std */
}

/* batchnorm_fused_*: the same bits as the two layers (batch norm then ReLU,
 * ReLU then batch norm), both ways (the training fusion must not change a
 * single result). */
static void check_batchnorm_relu_fused(BnFusion f, int N, int C, int L) {
    const size_t n = (size_t)N * C * L;
    Rng rng;
    rng_seed(&rng, 13, "bnrelu");
    float *x = randv(n, &rng), *dy = randv(n, &rng), *gamma = randv(C, &rng), *beta = randv(C, &rng);
    for (int c = 0; c < C; c++) gamma[c] += 1.0f;
    x[0] = -0.0f, x[1] = 0.0f; /* ReLU's edge cases */
    float *z = fillv(n, NAN), *y1 = fillv(n, NAN), *y2 = fillv(n, NAN), *dz = fillv(n, NAN);
    float *dx1 = fillv(n, NAN), *dx2 = fillv(n, NAN), *st1 = fillv(4 * C, 0), *st2 = fillv(4 * C, 0);
    float *g1 = fillv(2 * C, 0), *g2 = fillv(2 * C, 0);
    for (int c = 0; c < C; c++) st1[3 * C + c] = st2[3 * C + c] = 1.0f; /* running var */
    const float *relu_out; /* the ReLU's output (where it passed) */
    if (f == BN_RELU_AFTER) { /* z = bn(x), y1 = relu(z); backward: dz = relu'(dy), dx1 = bn'(dz) */
        batchnorm_forward_train(z, st1, st1 + C, st1 + 2 * C, st1 + 3 * C, x, gamma, beta, N, C, L, 1e-5f, 0.1f);
        relu_forward(y1, z, n);
        relu_backward(dz, dy, y1, n);
        batchnorm_backward(dx1, g1, g1 + C, dz, x, gamma, st1, st1 + C, N, C, L);
        relu_out = y1;
    } else { /* z = relu(x), y1 = bn(z); backward: dz = bn'(dy), dx1 = relu'(dz) */
        relu_forward(z, x, n);
        batchnorm_forward_train(y1, st1, st1 + C, st1 + 2 * C, st1 + 3 * C, z, gamma, beta, N, C, L, 1e-5f, 0.1f);
        batchnorm_backward(dz, g1, g1 + C, dy, z, gamma, st1, st1 + C, N, C, L);
        relu_backward(dx1, dz, z, n);
        relu_out = z;
    }
    batchnorm_fused_forward_train(f, y2, st2, st2 + C, st2 + 2 * C, st2 + 3 * C, x, gamma, beta, N, C, L, 1e-5f,
                                  0.1f);
    batchnorm_fused_backward(f, dx2, g2, g2 + C, dy, x, gamma, beta, st2, st2 + C, N, C, L);
    assert_memory_equal(y1, y2, n * sizeof(float));
    assert_memory_equal(st1, st2, 4 * C * sizeof(float));
    assert_memory_equal(dx1, dx2, n * sizeof(float));
    assert_memory_equal(g1, g2, 2 * C * sizeof(float));
    size_t passed = 0; /* the ReLU really cut something and passed something */
    for (size_t i = 0; i < n; i++) passed += relu_out[i] > 0;
    assert_true(passed > 0 && passed < n);
    free(x), free(dy), free(gamma), free(beta), free(z), free(y1), free(y2), free(dz);
    free(dx1), free(dx2), free(st1), free(st2), free(g1), free(g2);
}

static void test_batchnorm_relu_fused(void **state) {
    (void)state;
    for (int f = BN_RELU_AFTER; f <= BN_RELU_BEFORE; f++) {
        check_batchnorm_relu_fused((BnFusion)f, 8, 4, 784); /* vector path */
        check_batchnorm_relu_fused((BnFusion)f, 5, 3, 49);  /* vector path with a tail */
        check_batchnorm_relu_fused((BnFusion)f, 16, 6, 1);  /* BatchNorm1d: scalar path */
    }
}

static void test_dropout_masks(void **state) {
    (void)state;
    const int N = 4, C = 5, L = 7;
    const size_t n = (size_t)N * C * L;
    Rng rng;
    rng_seed(&rng, 12, "dropout");
    float *x = randv(n, &rng), *u = dg_xmalloc(n * 4), *y = fillv(n, NAN), *mask = fillv(n, NAN);
    for (size_t i = 0; i < n; i++) u[i] = rng_uniform(&rng);
    u[0] = 0.25f; /* exactly p: kept (u >= p) */
    const float p = 0.25f, s = 1.0f / 0.75f;
    dropout_forward(y, mask, x, u, n, p);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        float m = u[i] >= p ? s : 0.0f;
        bad += mask[i] != m || y[i] != x[i] * m;
    }
    assert_int_equal(bad, 0);
    dropout_forward(y, mask, x, u, n, 0.0f); /* p = 0: identity */
    for (size_t i = 0; i < n; i++) bad += mask[i] != 1.0f || y[i] != x[i];
    assert_int_equal(bad, 0);
    dropout2d_forward(y, mask, x, u, N, C, L, p); /* one mask value per (n,c) plane */
    for (size_t i = 0; i < n; i++) {
        size_t plane = i / L;
        float m = u[plane] >= p ? s : 0.0f;
        bad += mask[plane] != m || y[i] != x[i] * m;
    }
    assert_int_equal(bad, 0);
    print_message("dropout / dropout2d masks: %zu mismatches\n", bad);
    free(x), free(u), free(y), free(mask);
}

static void test_softmax_xent_values(void **state) {
    (void)state;
    const int N = 6, M = 10;
    Rng rng;
    rng_seed(&rng, 13, "softmax");
    float *z = randv((size_t)N * M, &rng), *p = fillv((size_t)N * M, NAN), *p_ref = fillv((size_t)N * M, 0);
    float *dz = fillv((size_t)N * M, NAN), *dz_ref = fillv((size_t)N * M, 0);
    uint8_t labels[6] = {0, 3, 9, 9, 1, 5};
    for (int i = 0; i < N * M; i++) z[i] *= 10;
    z[7] = 80; /* exp(80) overflows float without the max shift */
    double loss_ref = 0;
    for (int i = 0; i < N; i++) {
        double mx = -INFINITY, s = 0;
        for (int m = 0; m < M; m++) mx = fmax(mx, z[i * M + m]);
        for (int m = 0; m < M; m++) s += exp(z[i * M + m] - mx);
        for (int m = 0; m < M; m++) {
            p_ref[i * M + m] = (float)(exp(z[i * M + m] - mx) / s);
            dz_ref[i * M + m] = (float)((exp(z[i * M + m] - mx) / s - (m == labels[i])) / N);
        }
        loss_ref += (log(s) + mx - z[i * M + labels[i]]) / N;
    }
    float loss = softmax_xent_forward(p, z, labels, N, M);
    TU_ASSERT_CLOSE(p, p_ref, (size_t)N * M, 1e-6f, "softmax_xent probs");
    float lf = (float)loss_ref;
    TU_ASSERT_CLOSE(&loss, &lf, 1, 1e-6f, "softmax_xent loss");
    softmax_xent_backward(dz, p, labels, N, M);
    TU_ASSERT_CLOSE(dz, dz_ref, (size_t)N * M, 1e-6f, "softmax_xent dlogits");
    memset(p, 0, sizeof(float) * N * M);
    softmax_forward(p, z, N, M);
    TU_ASSERT_CLOSE(p, p_ref, (size_t)N * M, 1e-6f, "softmax probs");
    free(z), free(p), free(p_ref), free(dz), free(dz_ref);
}

/* The vectorised rational tanh against libm's tanhf, over the whole range
 * (tiny, moderate, saturated, both signs). */
static void test_tanh_fast_vs_ref(void **state) {
    (void)state;
    enum { N = 20001 };
    static float x[N], fast[N], ref[N];
    for (int i = 0; i < N; i++) x[i] = -12.0f + 24.0f * (float)i / (N - 1);
    x[0] = 1e-8f;
    x[1] = -5e-5f;
    tanh_forward(fast, x, N);
    tanh_forward_ref(ref, x, N);
    float worst = 0;
    for (int i = 0; i < N; i++) worst = fmaxf(worst, fabsf(fast[i] - ref[i]));
    print_message("tanh rational vs tanhf: max abs diff %.3g\n", (double)worst);
    assert_true(worst <= 5e-7f);
}


/* ======================================================================
 * bf16 (--precision bf16): the kernel against the same math in double on
 * bf16-rounded inputs, and the convolutions' three passes likewise.
 * ====================================================================== */

static void test_gemm_bf16_vs_ref(void **state) {
    (void)state;
    if (!gemm_bf16_available()) {
        print_message("no AVX512_BF16 here: bf16 kernels not tested (fp32 fallback is what runs)\n");
        skip();
    }
    static const int shapes[][3] = {{32, 784, 288}, {64, 196, 576}, {13, 37, 51}, {1, 1, 1}, {12, 32, 2}, {25, 33, 3}, {288, 32, 784}};
    Rng rng;
    rng_seed(&rng, 5, "bf16");
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        const int M = shapes[t][0], N = shapes[t][1], K = shapes[t][2];
        float *A = randv((size_t)M * K, &rng), *B = randv((size_t)K * N, &rng), *Bt = fillv((size_t)K * N, 0);
        for (int k = 0; k < K; k++)
            for (int n = 0; n < N; n++) Bt[(size_t)n * K + k] = B[(size_t)k * N + n];
        float *C = randv((size_t)M * N, &rng), *R = fillv((size_t)M * N, 0);
        memcpy(R, C, sizeof(float) * M * N);
        const size_t la = bf16_pair_words(K);
        uint32_t *Aw = dg_xmalloc(4 * la * M), *bp = dg_xmalloc(4 * bf16_packed_b_words(K, N));
        bf16_convert_rows(Aw, la, A, K, M, K);
        for (int transposed = 0; transposed < 2; transposed++) {
            if (transposed)
                bf16_pack_b_transposed(bp, Bt, K, K, N);
            else
                bf16_pack_b(bp, B, N, K, N);
            float *Cc = fillv((size_t)M * N, 0), *Rc = fillv((size_t)M * N, 0);
            memcpy(Cc, C, sizeof(float) * M * N);
            memcpy(Rc, R, sizeof(float) * M * N);
            gemm_bf16(Cc, N, Aw, la, bp, M, N, K, transposed); /* = then += */
            gemm_bf16_ref(Rc, N, A, K, B, N, M, N, K, transposed);
            float e = tu_max_rel_diff(Cc, Rc, (size_t)M * N);
            print_message("gemm_bf16 %3dx%3dx%3d %s max diff %.2g\n", M, N, K, transposed ? "B^T, +=" : "B,   = ", (double)e);
            assert_true(e <= 1e-5f);
            free(Cc), free(Rc);
        }
        free(A), free(B), free(Bt), free(C), free(R), free(Aw), free(bp);
    }
}

static float *bf16_copy(const float *a, size_t n) {
    float *r = dg_xmalloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) r[i] = bf16_round(a[i]);
    return r;
}

/* Winograd F(2x2,3x3) with bf16 rounding, as conv2d/wino.c computes it in
 * bf16 runs: V = B^T d B in float in the kernel's order, U = G g G^T in
 * double then float, both rounded to bf16; products and the output
 * transform in double. y (N,K,H+2pad-2,W+2pad-2) from x (N,C,H,W), w
 * (K,C,3,3); even outputs. */
static void wino_bf16_ref(float *y, const float *x, const float *w, const float *b, int N, int C, int H, int W, int K,
                          int pad) {
    static const double Gm[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
    const int P = H + 2 * pad - 2, Q = W + 2 * pad - 2;
    float *U = dg_xmalloc(sizeof(float) * 16 * K * C), *V = dg_xmalloc(sizeof(float) * 16 * C);
    for (int kc = 0; kc < K * C; kc++) {
        const float *g = w + (size_t)kc * 9;
        double t[4][3];
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 3; j++)
                t[i][j] = Gm[i][0] * g[j] + Gm[i][1] * g[3 + j] + Gm[i][2] * g[6 + j];
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++)
                U[(size_t)kc * 16 + i * 4 + j] =
                    bf16_round((float)(t[i][0] * Gm[j][0] + t[i][1] * Gm[j][1] + t[i][2] * Gm[j][2]));
    }
    for (int n = 0; n < N; n++)
        for (int tr = 0; tr < P / 2; tr++)
            for (int tc = 0; tc < Q / 2; tc++) {
                for (int c = 0; c < C; c++) {
                    float d[4][4], a[4][4];
                    for (int i = 0; i < 4; i++)
                        for (int j = 0; j < 4; j++) {
                            const int h = 2 * tr + i - pad, v = 2 * tc + j - pad;
                            d[i][j] = h >= 0 && h < H && v >= 0 && v < W ? x[(((size_t)n * C + c) * H + h) * W + v] : 0;
                        }
                    for (int i = 0; i < 4; i++) {
                        a[i][0] = d[i][0] - d[i][2], a[i][1] = d[i][1] + d[i][2];
                        a[i][2] = d[i][2] - d[i][1], a[i][3] = d[i][1] - d[i][3];
                    }
                    for (int j = 0; j < 4; j++) {
                        V[c * 16 + 0 * 4 + j] = bf16_round(a[0][j] - a[2][j]);
                        V[c * 16 + 1 * 4 + j] = bf16_round(a[1][j] + a[2][j]);
                        V[c * 16 + 2 * 4 + j] = bf16_round(a[2][j] - a[1][j]);
                        V[c * 16 + 3 * 4 + j] = bf16_round(a[1][j] - a[3][j]);
                    }
                }
                for (int k = 0; k < K; k++) {
                    double m[16] = {0}, s[2][4];
                    for (int c = 0; c < C; c++)
                        for (int pos = 0; pos < 16; pos++)
                            m[pos] += (double)U[((size_t)k * C + c) * 16 + pos] * V[c * 16 + pos];
                    for (int j = 0; j < 4; j++) { /* A^T = [1 1 1 0; 0 1 -1 -1] */
                        s[0][j] = m[j] + m[4 + j] + m[8 + j];
                        s[1][j] = m[4 + j] - m[8 + j] - m[12 + j];
                    }
                    for (int r = 0; r < 2; r++) {
                        float *row = y + (((size_t)n * K + k) * P + 2 * tr + r) * Q + 2 * tc;
                        row[0] = (float)(s[r][0] + s[r][1] + s[r][2] + (b ? b[k] : 0));
                        row[1] = (float)(s[r][1] - s[r][2] - s[r][3] + (b ? b[k] : 0));
                    }
                }
            }
    free(U), free(V);
}

/* dx's filters: w (K,C,3,3) turned 180 degrees, in and out swapped: (C,K,3,3). */
static float *turned_filters(const float *w, int K, int C) {
    float *t = dg_xmalloc(sizeof(float) * 9 * K * C);
    for (int k = 0; k < K; k++)
        for (int c = 0; c < C; c++)
            for (int i = 0; i < 9; i++) t[((size_t)c * K + k) * 9 + i] = w[((size_t)k * C + c) * 9 + 8 - i];
    return t;
}

/* How much larger the bf16 Winograd's error against fp32 may be than that
 * of a direct convolution on rounded inputs: V and U are sums and
 * differences of up to 4 and 9 values, rounded after the sum. */
#define WINO_BF16_ERR 3.0f

/* One Winograd layer in a bf16 run against wino_bf16_ref and fp32 (see
 * test_conv2d_bf16_vs_ref). A forward with an odd channel count keeps the
 * fp32 product: it matches the fp32 reference instead. (Such a layer's dx
 * is not Winograd: its output channels are not a multiple of 8; the bf16
 * shapes above check the other paths.) */
static void check_wino_bf16(const ConvShape *wi, Rng *rng) {
    const int N = 3, C = wi->C, H = wi->H, W = wi->W, K = wi->K, pad = wi->pad, P = H + 2 * pad - 2, Q = W + 2 * pad - 2;
    const size_t wx = (size_t)N * C * H * W, wy = (size_t)N * K * P * Q, ww = (size_t)K * C * 9;
    float *x = randv(wx, rng), *w = randv(ww, rng), *b = randv(K, rng);
    float *dy = randv(wy, rng), *dx = fillv(wx, NAN), *dx_ref = fillv(wx, 0), *dx_wref = fillv(wx, 0);
    float *dw = fillv(ww, 0), *dw_ref = fillv(ww, 0), *wt = turned_filters(w, K, C);
    float *y = fillv(wy, NAN), *y_ref = fillv(wy, 0), *y_wref = fillv(wy, 0), *y_rnd = fillv(wy, 0), *dx_rnd = fillv(wx, 0);
    float *work = fillv(2 * conv2d_workspace_floats(C, H, W, K, 3, 3, 1, pad), NAN);
    float *part = fillv(2 * (ww + K), NAN);
    conv2d_forward_ref(y_ref, x, w, b, N, C, H, W, K, 3, 3, 1, pad);
    conv2d_backward_ref(dx_ref, dw_ref, NULL, dy, x, w, N, C, H, W, K, 3, 3, 1, pad);
    if (C % 2 == 0) wino_bf16_ref(y_wref, x, w, b, N, C, H, W, K, pad);
    else memcpy(y_wref, y_ref, sizeof(float) * wy);
    /* dx runs Winograd where C, its output channels, is a multiple of 8 */
    const int wino_dx = C % 8 == 0;
    if (wino_dx) wino_bf16_ref(dx_wref, dy, wt, NULL, N, K, P, Q, C, 2 - pad); /* dy with turned filters */
    { /* the error of the other bf16 paths: exact products of rounded inputs */
        float *xr = bf16_copy(x, wx), *wr = bf16_copy(w, ww), *dyr = bf16_copy(dy, wy);
        conv2d_forward_ref(y_rnd, xr, wr, b, N, C, H, W, K, 3, 3, 1, pad);
        conv2d_backward_ref(dx_rnd, NULL, NULL, dyr, xr, wr, N, C, H, W, K, 3, 3, 1, pad);
        free(xr), free(wr), free(dyr);
    }
    conv2d_forward(y, x, w, b, N, C, H, W, K, 3, 3, 1, pad, work, 2);
    conv2d_backward(dx, dw, NULL, dy, x, w, N, C, H, W, K, 3, 3, 1, pad, work, part, 2);
    const float wey = tu_max_rel_diff(y, y_wref, wy), wex = wino_dx ? tu_max_rel_diff(dx, dx_wref, wx) : 0;
    const float wew = tu_max_rel_diff(dw, dw_ref, ww);
    const float fy = tu_max_rel_diff(y, y_ref, wy), fx = wino_dx ? tu_max_rel_diff(dx, dx_ref, wx) : 0;
    const float ry = tu_max_rel_diff(y_rnd, y_ref, wy), rx = tu_max_rel_diff(dx_rnd, dx_ref, wx);
    print_message("conv bf16 %-44s against the bf16 Winograd reference: y %.2g dx %.2g; fp32 dw %.2g\n",
                  wi->label, (double)wey, (double)wex, (double)wew);
    print_message("conv bf16 %-44s against fp32: y %.2g dx %.2g (direct on rounded inputs: y %.2g dx %.2g)\n",
                  wi->label, (double)fy, (double)fx, (double)ry, (double)rx);
    assert_true(wey <= 1e-4f && wex <= 1e-4f && wew <= 1e-4f);
    assert_true(fy <= WINO_BF16_ERR * ry && fx <= WINO_BF16_ERR * rx);
    free(x), free(w), free(b), free(dy), free(dx), free(dx_ref), free(dx_wref), free(y), free(y_ref), free(y_wref);
    free(work), free(part), free(dw), free(dw_ref), free(wt), free(y_rnd), free(dx_rnd);
}

static void test_conv2d_bf16_vs_ref(void **state) {
    (void)state;
    if (!conv2d_set_bf16(1)) {
        print_message("no AVX512_BF16 here: conv2d stays fp32\n");
        skip();
    }
    static const ConvShape shapes[] = {
        /* (3x3 stride-1 layers with K a multiple of 8, C >= 16 and even
         * outputs run Winograd, checked after this loop; these shapes keep
         * the other bf16 paths) */
        {"30->60 3x3 pad1 14x14", 30, 14, 14, 60, 3, 3, 1, 1},
        {"64->64 3x3 pad1 13x13 (kvec fwd/dx)", 64, 13, 13, 64, 3, 3, 1, 1},
        {"30->30 3x3 pad1 12x12", 30, 12, 12, 30, 3, 3, 1, 1},
        {"32->32 5x5 stride2 pad2 14x14", 32, 14, 14, 32, 5, 5, 2, 2},
        {"32->40 3x3 pad1 7x9 (odd sizes)", 32, 7, 9, 40, 3, 3, 1, 1}, /* deep: not the direct kernels */
        /* 20 images: kvec layers (bf16 pair words: odd channel counts pair
         * their last channel with zero; dw pairs images, 20 split 10 + 10
         * over two threads: odd groups pair the last image with zero) and
         * grouped products */
        {"128->128 5x5 stride2 pad2 7x7 (4x4, kvec)", 128, 7, 7, 128, 5, 5, 2, 2},
        {"33->64 3x3 pad1 7x7 (kvec, odd C)", 33, 7, 7, 64, 3, 3, 1, 1},
        {"64->32 3x3 stride2 pad1 15x13 (kvec, odd)", 64, 15, 13, 32, 3, 3, 2, 1},
        {"60->300 3x3 pad1 4x4 (K > group columns)", 60, 4, 4, 300, 3, 3, 1, 1},
    };
    Rng rng;
    rng_seed(&rng, 9, "conv-bf16");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const ConvShape *c = &shapes[i];
        int P, Q;
        conv_out(c, &P, &Q);
        const int N = i >= 5 ? 20 : 3; /* the shapes with 20 images below */
        const size_t nx = (size_t)N * c->C * c->H * c->W, ny = (size_t)N * c->K * P * Q, nw = (size_t)c->K * c->C * c->R * c->S;
        float *x = randv(nx, &rng), *w = randv(nw, &rng), *b = randv(c->K, &rng), *dy = randv(ny, &rng);
        float *xr = bf16_copy(x, nx), *wr = bf16_copy(w, nw), *dyr = bf16_copy(dy, ny);
        float *y = fillv(ny, NAN), *y_ref = fillv(ny, 0), *dx = fillv(nx, NAN), *dx_ref = fillv(nx, 0);
        float *dw = fillv(nw, 0), *dw_ref = fillv(nw, 0), *db = fillv(c->K, 0), *db_ref = fillv(c->K, 0);
        conv2d_forward_ref(y_ref, xr, wr, b, N, c->C, c->H, c->W, c->K, c->R, c->S, c->stride, c->pad);
        conv2d_backward_ref(dx_ref, dw_ref, NULL, dyr, xr, wr, N, c->C, c->H, c->W, c->K, c->R, c->S, c->stride, c->pad);
        conv2d_backward_ref(NULL, NULL, db_ref, dy, x, w, N, c->C, c->H, c->W, c->K, c->R, c->S, c->stride, c->pad);

        const size_t ws = conv2d_workspace_floats(c->C, c->H, c->W, c->K, c->R, c->S, c->stride, c->pad);
        for (int nt = 1; nt <= 2; nt++) {
            float *work = fillv(ws * nt, NAN), *part = fillv((nw + c->K) * nt, NAN);
            memset(dw, 0, sizeof(float) * nw);
            memset(db, 0, sizeof(float) * c->K);
            conv2d_forward(y, x, w, b, N, c->C, c->H, c->W, c->K, c->R, c->S, c->stride, c->pad, work, nt);
            conv2d_backward(dx, dw, db, dy, x, w, N, c->C, c->H, c->W, c->K, c->R, c->S, c->stride, c->pad, work, part, nt);
            float ey = tu_max_rel_diff(y, y_ref, ny), ex = tu_max_rel_diff(dx, dx_ref, nx);
            float ew = tu_max_rel_diff(dw, dw_ref, nw), eb = tu_max_rel_diff(db, db_ref, c->K);
            print_message("conv bf16 %-30s t=%d max diff y %.2g dx %.2g dw %.2g db %.2g\n", c->label, nt, (double)ey,
                          (double)ex, (double)ew, (double)eb);
            assert_true(ey <= 1e-4f && ex <= 1e-4f && ew <= 1e-4f && eb <= 1e-4f);
            free(work), free(part);
        }
        free(x), free(w), free(b), free(dy), free(xr), free(wr), free(dyr), free(y), free(y_ref), free(dx), free(dx_ref);
        free(dw), free(dw_ref), free(db), free(db_ref);
    }
    /* A stride-2 layer on the phase path keeps its fp32 forward in bf16
     * runs (faster there than the bf16 product): y matches the fp32
     * reference on unrounded inputs; its backward is bf16 (above). This
     * and the Winograd layers below are skipped when an A/B run switched
     * paths off (DIGITS_CONV, DIGITS_WINO). */
    if (paths_switched()) {
        conv2d_set_bf16(0);
        return;
    }
    const ConvShape ph = {"32->24 5x5 stride2 pad2 28x28", 32, 28, 28, 24, 5, 5, 2, 2};
    const int N = 3;
    const size_t nx = (size_t)N * ph.C * ph.H * ph.W, ny = (size_t)N * ph.K * 14 * 14, nw = (size_t)ph.K * ph.C * 25;
    float *x = randv(nx, &rng), *w = randv(nw, &rng), *b = randv(ph.K, &rng);
    float *y = fillv(ny, NAN), *y_ref = fillv(ny, 0);
    float *work = fillv(2 * conv2d_workspace_floats(ph.C, ph.H, ph.W, ph.K, 5, 5, 2, 2), NAN);
    conv2d_forward_ref(y_ref, x, w, b, N, ph.C, ph.H, ph.W, ph.K, 5, 5, 2, 2);
    conv2d_forward(y, x, w, b, N, ph.C, ph.H, ph.W, ph.K, 5, 5, 2, 2, work, 2);
    const float ey = tu_max_rel_diff(y, y_ref, ny);
    print_message("conv bf16 %-30s fp32 phase forward: max diff y %.2g\n", ph.label, (double)ey);
    assert_true(ey <= 1e-4f);
    free(x), free(w), free(b), free(y), free(y_ref), free(work);

    /* Winograd layers (conv2d/wino.c) in bf16 runs: the forward and dx
     * round the transformed input V and weights U to bf16, so they match
     * wino_bf16_ref (the same rounding, sums in double) to float rounding;
     * against the fp32 reference on unrounded inputs their error is that
     * rounding's, bounded here by WINO_BF16_ERR times the error of a
     * direct convolution on bf16-rounded inputs (the other bf16 paths). dw
     * stays fp32. */
    static const ConvShape wshapes[] = {
        {"32->64 3x3 pad1 14x14 (Winograd, pairs)", 32, 14, 14, 64, 3, 3, 1, 1},
        {"16->24 3x3 pad0 18x16 (Winograd, 16 lanes)", 16, 18, 16, 24, 3, 3, 1, 0},
        {"24->32 3x3 pad2 12x10 (Winograd, dx pad 0)", 24, 12, 10, 32, 3, 3, 1, 2},
        {"17->16 3x3 pad1 8x8 (odd C: fp32 product)", 17, 8, 8, 16, 3, 3, 1, 1},
    };
    for (size_t i = 0; i < sizeof wshapes / sizeof wshapes[0]; i++) check_wino_bf16(&wshapes[i], &rng);
    conv2d_set_bf16(0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv2d_fast_vs_ref),
        cmocka_unit_test(test_conv2d_packed_one_image),
        cmocka_unit_test(test_conv2d_optional_outputs),
        cmocka_unit_test(test_conv2d_wino4_vs_ref),
        cmocka_unit_test(test_conv2d_wino_rows),
        cmocka_unit_test(test_conv2d_kvec_rows),
        cmocka_unit_test(test_conv2d_wino5_vs_ref),
        cmocka_unit_test(test_conv2d_c1_vs_ref),
        cmocka_unit_test(test_gemm_bf16_vs_ref),
        cmocka_unit_test(test_conv2d_bf16_vs_ref),
        cmocka_unit_test(test_conv2d_deterministic),
        cmocka_unit_test(test_linear_fast_vs_ref),
        cmocka_unit_test(test_linear_panels_vs_ref),
        cmocka_unit_test(test_conv2d_ilv_vs_ref),
        cmocka_unit_test(test_maxpool_fast_vs_ref),
        cmocka_unit_test(test_avgpool_fast_vs_ref),
        cmocka_unit_test(test_batchnorm_semantics), cmocka_unit_test(test_batchnorm_relu_fused),
        cmocka_unit_test(test_dropout_masks),
        cmocka_unit_test(test_softmax_xent_values),
        cmocka_unit_test(test_tanh_fast_vs_ref),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
