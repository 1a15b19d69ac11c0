/* test_quant.c — the int8 path: qref.h's requantization against an
 * independent 128-bit computation and its edge cases (half away from zero,
 * negatives, saturation, shifts 1 and 62); the plain-C and AVX512-VNNI
 * kernels bit-identical to the reference on random convolutions and dense
 * layers (odd sizes, padding, strides, every zero point); whole random
 * models (conv, pools, tables, add, concat, dense) through all three
 * paths; the int8 file's round trip and its refusals of corrupt numbers.
 * Quantizing a trained model is in test_quantize.c. VNNI cases are skipped
 * (with a message) on a CPU without it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "core/rng.h"
#include "quant/qkernels.h"
#include "quant/qmodel.h"
#include "quant/qref.h"
#include "testutil.h"

/* ==== requantization ====================================================== */

/* round-half-away(x * m / 2^s) saturated, with 128-bit integers. */
static int32_t mulshift_oracle(int32_t x, int32_t m, int s) {
    __int128 p = (__int128)x * m;
    __int128 a = p < 0 ? -p : p;
    __int128 q = (2 * a + ((__int128)1 << s)) / ((__int128)1 << (s + 1)); /* floor(a/2^s + 1/2) */
    __int128 r = p < 0 ? -q : q;
    if (r > INT32_MAX) r = INT32_MAX;
    if (r < INT32_MIN) r = INT32_MIN;
    return (int32_t)r;
}

static void test_requant_edge_cases(void **state) {
    (void)state;
    const int32_t half = 1 << 30; /* mult 2^30, shift 31: times 1/2 */
    assert_int_equal(qref_mulshift(1, half, 31), 1);   /* 0.5 -> 1 */
    assert_int_equal(qref_mulshift(-1, half, 31), -1); /* -0.5 -> -1 */
    assert_int_equal(qref_mulshift(3, half, 31), 2);   /* 1.5 -> 2 */
    assert_int_equal(qref_mulshift(-3, half, 31), -2);
    assert_int_equal(qref_mulshift(5, half, 32), 1);   /* 1.25 -> 1 */
    assert_int_equal(qref_mulshift(-5, half, 32), -1);
    assert_int_equal(qref_mulshift(7, half, 32), 2);   /* 1.75 -> 2 */
    assert_int_equal(qref_mulshift(0, INT32_MAX, 1), 0);
    assert_int_equal(qref_mulshift(123, 0, 7), 0);
    /* saturation: 2^31-1 times ~2^30 */
    assert_int_equal(qref_mulshift(INT32_MAX, INT32_MAX, 1), INT32_MAX);
    assert_int_equal(qref_mulshift(INT32_MIN, INT32_MAX, 1), INT32_MIN);
    assert_int_equal(qref_mulshift(INT32_MIN, half, 30), INT32_MIN); /* exactly -2^31: fits */
    /* the largest shift */
    assert_int_equal(qref_mulshift(INT32_MAX, INT32_MAX, 62), 1);
    assert_int_equal(qref_mulshift(INT32_MIN, INT32_MAX, 62), -1);
    assert_int_equal(qref_mulshift(1 << 30, 1 << 30, 62), 0); /* 0.25 -> 0 */
    assert_int_equal(qref_mulshift(1 << 30, 1 << 30, 61), 1); /* 0.5 -> 1 */
    /* requant: zero point, clamps, int8 saturation */
    assert_int_equal(qref_requant(1000, half, 31, 3, -128, 127), 127);
    assert_int_equal(qref_requant(-1000, half, 31, 3, -128, 127), -128);
    assert_int_equal(qref_requant(-7, half, 31, 3, -128, 127), -1); /* -3.5 -> -4, + 3 */
    assert_int_equal(qref_requant(-7, half, 31, 3, 0, 127), 0);      /* fused ReLU */
    assert_int_equal(qref_requant(INT32_MAX, INT32_MAX, 1, -128, -128, 127), 127);
    assert_int_equal(qref_requant(INT32_MIN, INT32_MAX, 1, 127, -128, 127), -128);
}

static void test_requant_random_against_oracle(void **state) {
    (void)state;
    Rng r;
    rng_seed(&r, 1, "test");
    for (int i = 0; i < 200000; i++) {
        int32_t x = (int32_t)(uint32_t)rng_next(&r);
        if (i % 3 == 0) x >>= (int)rng_below(&r, 31);
        int32_t m = (int32_t)(rng_next(&r) >> 33); /* 0 .. 2^31-1 */
        int s = 1 + (int)rng_below(&r, 62);
        if (mulshift_oracle(x, m, s) != qref_mulshift(x, m, s))
            fail_msg("x %d m %d s %d: %d, expected %d", x, m, s, qref_mulshift(x, m, s), mulshift_oracle(x, m, s));
    }
}

/* ==== random layers and models ============================================ */

static int rnd(Rng *r, int lo, int hi) { return lo + (int)rng_below(r, (uint32_t)(hi - lo + 1)); }

static void *rnd_bytes(Rng *r, size_t n) {
    int8_t *a = dg_xmalloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) a[i] = (int8_t)rng_next(r);
    return a;
}

/* Requantization arrays of n entries with multipliers that keep outputs
 * mostly inside int8 for `taps` products (some saturate). */
static void rnd_requant(QOp *op, Rng *r, int n, int taps) {
    int32_t *m = dg_xmalloc((size_t)n * 4), *s = dg_xmalloc((size_t)n * 4);
    int8_t *lo = dg_xmalloc((size_t)n), *hi = dg_xmalloc((size_t)n);
    int base = 1;
    while ((1 << base) < taps * 64) base++;
    for (int k = 0; k < n; k++) {
        m[k] = (1 << 30) + (int32_t)rng_below(r, 1u << 30);
        s[k] = 30 + base + rnd(r, -3, 3);
        lo[k] = (int8_t)rnd(r, -128, 0);
        hi[k] = (int8_t)rnd(r, lo[k], 127);
        if (k % 3 == 0) lo[k] = -128, hi[k] = 127;
    }
    op->mult = m, op->shift = s, op->act_min = lo, op->act_max = hi;
}

/* A conv or dense op on a c x h x w input with random weights. */
static void rnd_weighted(QOp *op, Rng *r, int type, int c, int h, int w, int in_zp) {
    memset(op, 0, sizeof *op);
    op->type = type, op->c = c, op->h = h, op->w = w, op->in_zp = in_zp, op->in1 = -1;
    op->out_zp = rnd(r, -128, 127);
    if (type == QOP_CONV) {
        op->k = rnd(r, 1, 21), op->kh = rnd(r, 1, 5), op->kw = rnd(r, 1, 5), op->stride = rnd(r, 1, 3);
        op->pad_t = rnd(r, 0, op->kh - 1), op->pad_l = rnd(r, 0, op->kw - 1);
        if (op->kh > h + op->pad_t) op->kh = h + op->pad_t;
        if (op->kw > w + op->pad_l) op->kw = w + op->pad_l;
        int pad_b = rnd(r, 0, op->kh - 1), pad_r = rnd(r, 0, op->kw - 1);
        op->oh = (h + op->pad_t + pad_b - op->kh) / op->stride + 1;
        op->ow = (w + op->pad_l + pad_r - op->kw) / op->stride + 1;
    } else {
        op->k = rnd(r, 1, 40), op->oh = op->ow = 1;
    }
    int taps = type == QOP_CONV ? c * op->kh * op->kw : c * h * w;
    op->weight = rnd_bytes(r, (size_t)op->k * taps);
    int32_t *b = dg_xmalloc((size_t)op->k * 4);
    for (int k = 0; k < op->k; k++) b[k] = rnd(r, -50000, 50000);
    op->bias = b;
    rnd_requant(op, r, op->k, taps);
}

/* The grouped dense kernels (VNNI, and AMX when packed) on QK_GROUP
 * inputs: x, its bitwise opposite (the other end of every value) and
 * random ones; each image's output is the reference's. */
static void check_dense_groups(const QOp *op, const QOpFast *f, const int8_t *x, Rng *r, uint8_t *scratch) {
    size_t nin = (size_t)op->c * op->h * op->w;
    int8_t *xs[QK_GROUP], *ys[QK_GROUP], *ref[QK_GROUP];
    for (int g = 0; g < QK_GROUP; g++) {
        xs[g] = g == 0 ? (int8_t *)x : rnd_bytes(r, nin);
        if (g == 1)
            for (size_t i = 0; i < nin; i++) xs[g][i] = (int8_t)~x[i];
        ys[g] = dg_xmalloc((size_t)op->k);
        ref[g] = dg_xmalloc((size_t)op->k);
        DG_ASSERT(qref_op_run(op, xs[g], NULL, ref[g]) == 0);
    }
    for (int amx = 0; amx < 2; amx++) {
        if (amx && !f->wamxd) continue;
        for (int g = 0; g < QK_GROUP; g++) memset(ys[g], 0, (size_t)op->k);
        if (amx)
            qk_dense_amx_group(op, f, (const int8_t *const *)xs, ys, scratch);
        else
            qk_dense_vnni_group(op, f, (const int8_t *const *)xs, ys, scratch);
        for (int g = 0; g < QK_GROUP; g++) assert_memory_equal(ref[g], ys[g], (size_t)op->k);
    }
    for (int g = 0; g < QK_GROUP; g++) {
        if (g > 0) free(xs[g]);
        free(ys[g]), free(ref[g]);
    }
}

/* A conv followed by a 2 x 2 stride-2 max pool (when its output has at
 * least 2 x 2 values), reference against the VNNI kernel that fuses the
 * pool into the convolution's epilogue (max of the int32 sums). */
static void check_conv_pool_fused(const QOp *op, const QOpFast *f, const int8_t *x, const int8_t *y_ref,
                                  uint8_t *scratch) {
    if (op->oh < 2 || op->ow < 2) return;
    QOp pool = {.type = QOP_MAXPOOL, .in0 = 0, .in1 = -1, .c = op->k, .h = op->oh, .w = op->ow, .k = op->k,
                .oh = op->oh / 2, .ow = op->ow / 2, .kh = 2, .kw = 2, .stride = 2, .in_zp = op->out_zp,
                .out_zp = op->out_zp};
    size_t np = (size_t)pool.k * pool.oh * pool.ow;
    int8_t *ref = dg_xmalloc(np), *got = dg_xmalloc(np);
    DG_ASSERT(qref_op_run(&pool, y_ref, NULL, ref) == 0);
    memset(got, 0, np);
    qk_conv_vnni_maxpool(op, f, &pool, x, got, scratch);
    assert_memory_equal(ref, got, np);
    free(ref), free(got);
}

/* One op run through reference, C and (when present) VNNI; all equal. */
static void check_op_paths(QOp *op, Rng *r) {
    QModel q = {0};
    q.n_ops = 1;
    q.ops = op;
    qkernels_prepare(&q);
    QFast *fast = q.fast;
    size_t nin = (size_t)op->c * op->h * op->w, nout = (size_t)op->k * op->oh * op->ow;
    int8_t *x = rnd_bytes(r, nin);
    int8_t *y_ref = dg_xmalloc(nout), *y_c = dg_xmalloc(nout), *y_v = dg_xmalloc(nout);
    size_t scr = fast->scratch_c > fast->scratch_vnni ? fast->scratch_c : fast->scratch_vnni;
    uint8_t *scratch = dg_xmalloc(scr + 64);
    DG_ASSERT(qref_op_run(op, x, NULL, y_ref) == 0);
    if (op->type == QOP_CONV)
        qk_conv_c(op, &fast->ops[0], x, y_c, scratch);
    else
        qk_dense_c(op, &fast->ops[0], x, y_c);
    assert_memory_equal(y_ref, y_c, nout);
    if (qk_have_vnni()) {
        if (op->type == QOP_CONV)
            qk_conv_vnni(op, &fast->ops[0], x, y_v, scratch);
        else
            qk_dense_vnni(op, &fast->ops[0], x, y_v, scratch);
        assert_memory_equal(y_ref, y_v, nout);
        if (op->type == QOP_CONV) check_conv_pool_fused(op, &fast->ops[0], x, y_ref, scratch);
    }
    if (op->type == QOP_CONV && fast->ops[0].wamx) {
        memset(y_v, 0, nout);
        qk_conv_amx(op, &fast->ops[0], x, y_v, scratch);
        assert_memory_equal(y_ref, y_v, nout);
    }
    if (op->type == QOP_DENSE && qk_have_vnni()) check_dense_groups(op, &fast->ops[0], x, r, scratch);
    qkernels_release(&q);
    free(x), free(y_ref), free(y_c), free(y_v), free(scratch);
}

static void free_op(QOp *op) {
    QModel q = {0};
    q.n_ops = 1;
    q.ops = dg_xmalloc(sizeof *op);
    *q.ops = *op;
    qmodel_free(&q);
}

static void test_kernels_match_reference_on_random_layers(void **state) {
    (void)state;
    Rng r;
    rng_seed(&r, 2, "test");
    if (!qk_have_vnni()) print_message("no AVX512-VNNI here: comparing the reference and plain C only\n");
    for (int it = 0; it < 300; it++) {
        QOp op;
        int type = it % 3 == 2 ? QOP_DENSE : QOP_CONV;
        int c = rnd(&r, 1, 12), h = rnd(&r, 1, 17), w = rnd(&r, 1, 17);
        rnd_weighted(&op, &r, type, c, h, w, rnd(&r, -128, 127));
        check_op_paths(&op, &r);
        free_op(&op);
    }
}

/* Multipliers with many factors of two (the VNNI requantization halves
 * them into odd ones with a smaller shift) and shifts around 33 (where it
 * switches between its short and long ways), on small convolutions whose
 * sums hit exact ties of round-half-away often; every path must equal
 * the reference, ties and saturation included. */
static void test_kernels_requant_ties(void **state) {
    (void)state;
    Rng r;
    rng_seed(&r, 9, "test");
    static const int32_t mults[] = {1 << 30, 3 << 28, 5 << 27, (1 << 30) + 1, 0, 2, 1, 0x7fffffff, 1 << 29, 96};
    for (int it = 0; it < 80; it++) {
        QOp op;
        int c = rnd(&r, 1, 5), h = rnd(&r, 1, 12), w = rnd(&r, 1, 12);
        rnd_weighted(&op, &r, QOP_CONV, c, h, w, rnd(&r, -128, 127));
        int32_t *m = (int32_t *)op.mult, *sh = (int32_t *)op.shift;
        for (int k = 0; k < op.k; k++) {
            m[k] = mults[rnd(&r, 0, 9)];
            sh[k] = it % 4 == 0 ? rnd(&r, 1, 62) : rnd(&r, 28, 40);
        }
        check_op_paths(&op, &r);
        free_op(&op);
    }
}

/* Layers wide enough for the AMX tiles (16+ input channels: 4..16 channel
 * quads, or multiples of 16), odd sizes, strides and paddings. */
static void test_amx_conv_matches_reference(void **state) {
    (void)state;
    Rng r;
    rng_seed(&r, 5, "test");
    if (!qk_have_amx()) print_message("no AMX-INT8 here: the tile convolution is not compared\n");
    static const int cs[] = {13, 16, 20, 32, 33, 48, 64, 128};
    int tiled = 0;
    for (int it = 0; it < 60; it++) {
        QOp op;
        int c = cs[it % 8], h = rnd(&r, 1, 15), w = rnd(&r, 1, 15);
        rnd_weighted(&op, &r, QOP_CONV, c, h, w, rnd(&r, -128, 127));
        if (it % 4 == 0) { /* more output channels than one block of 32 */
            free((void *)op.weight), free((void *)op.bias), free((void *)op.mult), free((void *)op.shift);
            free((void *)op.act_min), free((void *)op.act_max);
            op.k = rnd(&r, 33, 70);
            int taps = c * op.kh * op.kw;
            op.weight = rnd_bytes(&r, (size_t)op.k * taps);
            int32_t *b = dg_xmalloc((size_t)op.k * 4);
            for (int k = 0; k < op.k; k++) b[k] = rnd(&r, -50000, 50000);
            op.bias = b;
            rnd_requant(&op, &r, op.k, taps);
        }
        tiled += qk_conv_amx_ok(&op);
        check_op_paths(&op, &r);
        free_op(&op);
    }
    assert_true(tiled >= 40);
}

/* conv (1 -> 16, 3x3) -> conv (16 -> k, the AMX tiles) -> 2x2 max pool
 * (fused into the convolution on the VNNI and AMX paths) -> dense(10), odd
 * sizes: every path gives the reference's logits, batches and one image. */
static void test_amx_conv_pool_fusion(void **state) {
    (void)state;
    Rng r;
    rng_seed(&r, 6, "test");
    for (int it = 0; it < 12; it++) {
        QModel q;
        memset(&q, 0, sizeof q);
        q.in_c = 1, q.in_h = rnd(&r, 4, 16), q.in_w = rnd(&r, 4, 16);
        q.in_scale = 0.02f, q.in_zp = rnd(&r, -128, 127);
        q.n_ops = 4;
        q.ops = dg_xcalloc(4, sizeof *q.ops);
        q.scales = dg_xcalloc(4, sizeof *q.scales);
        q.what = dg_xcalloc(4, sizeof *q.what);
        for (int i = 0; i < 4; i++) q.scales[i] = 0.05f;
        QOp *o = q.ops;
        const int c1 = it % 3 == 0 ? 64 : 16;
        for (int i = 0; i < 2; i++) { /* two 3x3 pad-1 convolutions, same size */
            int c = i ? c1 : 1, k = i ? rnd(&r, 5, 70) : c1, zp = i ? o[0].out_zp : q.in_zp;
            rnd_weighted(&o[i], &r, QOP_CONV, c, q.in_h, q.in_w, zp);
            free((void *)o[i].weight), free((void *)o[i].bias), free((void *)o[i].mult), free((void *)o[i].shift);
            free((void *)o[i].act_min), free((void *)o[i].act_max);
            o[i].k = k, o[i].kh = o[i].kw = 3, o[i].stride = 1, o[i].pad_t = o[i].pad_l = 1;
            o[i].oh = q.in_h, o[i].ow = q.in_w;
            o[i].weight = rnd_bytes(&r, (size_t)k * c * 9);
            int32_t *b = dg_xmalloc((size_t)k * 4);
            for (int j = 0; j < k; j++) b[j] = rnd(&r, -50000, 50000);
            o[i].bias = b;
            rnd_requant(&o[i], &r, k, c * 9);
            o[i].in0 = i - 1;
        }
        o[2] = (QOp){.type = QOP_MAXPOOL, .in0 = 1, .in1 = -1, .c = o[1].k, .h = q.in_h, .w = q.in_w, .k = o[1].k,
                     .oh = q.in_h / 2, .ow = q.in_w / 2, .kh = 2, .kw = 2, .stride = 2, .in_zp = o[1].out_zp,
                     .out_zp = o[1].out_zp};
        rnd_weighted(&o[3], &r, QOP_DENSE, o[2].k, o[2].oh, o[2].ow, o[2].out_zp);
        free((void *)o[3].weight), free((void *)o[3].bias), free((void *)o[3].mult), free((void *)o[3].shift);
        free((void *)o[3].act_min), free((void *)o[3].act_max);
        int taps = o[2].k * o[2].oh * o[2].ow;
        o[3].k = 10, o[3].weight = rnd_bytes(&r, (size_t)10 * taps), o[3].bias = dg_xcalloc(10, 4);
        rnd_requant(&o[3], &r, 10, taps);
        o[3].in0 = 2;
        for (int i = 0; i < 4; i++) o[i].out = i;
        if (qmodel_check(&q, "fusion") < 0) fail_msg("%s", dg_errmsg());
        assert_int_equal(((QFast *)q.fast)->ops[1].pool1, 3); /* fused on the VNNI and AMX paths */
        const int n = 11, px = q.in_h * q.in_w;
        uint8_t *img = rnd_bytes(&r, (size_t)n * px);
        int8_t ref[11 * 10], v[11 * 10];
        int8_t *arena = dg_xmalloc(q.act_bytes);
        for (int i = 0; i < n; i++) qmodel_run_ref(&q, img + i * px, arena, ref + i * 10);
        static const QKernels ks[] = {QKERN_C, QKERN_VNNI, QKERN_AMX};
        for (int k = 0; k < 3; k++) {
            memset(v, 0, sizeof v);
            qmodel_run(&q, img, n, v, NULL, ks[k]);
            assert_memory_equal(ref, v, sizeof ref);
            qmodel_run(&q, img + 3 * px, 1, v, NULL, ks[k]);
            assert_memory_equal(ref + 30, v, 10);
        }
        free(arena);
        free(img);
        qmodel_free(&q);
    }
}

/* Extreme values: every weight -128/127 and inputs at the ends, the
 * largest taps the model check allows for a dense layer. */
static void test_kernels_extreme_values(void **state) {
    (void)state;
    Rng r;
    rng_seed(&r, 3, "test");
    for (int it = 0; it < 8; it++) {
        QOp op;
        int dense = it & 1;
        rnd_weighted(&op, &r, dense ? QOP_DENSE : QOP_CONV, dense ? 32 : 16, dense ? 32 : 9, dense ? 32 : 9,
                     it & 2 ? 127 : -128);
        size_t nw = dense ? (size_t)op.k * 32 * 32 * 32 : (size_t)op.k * 16 * op.kh * op.kw;
        for (size_t i = 0; i < nw; i++) ((int8_t *)op.weight)[i] = (int8_t)(it & 4 ? 127 : -128);
        check_op_paths(&op, &r);
        free_op(&op);
    }
}

/* A random model exercising every op kind on a 1 x 12 x 12 input:
 * conv -> maxpool -> lut -> conv (same shape) -> add -> concat -> avgpool
 * -> dense(10). */
static void build_random_model(QModel *q, Rng *r) {
    memset(q, 0, sizeof *q);
    q->in_c = 1, q->in_h = 12, q->in_w = 12;
    q->in_scale = 0.02f, q->in_zp = rnd(r, -128, 127);
    q->n_ops = 8;
    q->ops = dg_xcalloc(8, sizeof *q->ops);
    q->scales = dg_xcalloc(8, sizeof *q->scales);
    q->what = dg_xcalloc(8, sizeof *q->what);
    for (int i = 0; i < 8; i++) q->scales[i] = 0.05f;
    QOp *o = q->ops;
    /* 0 conv 3x3 pad 1: 6 x 12 x 12 */
    rnd_weighted(&o[0], r, QOP_CONV, 1, 12, 12, q->in_zp);
    free((void *)o[0].weight), free((void *)o[0].bias), free((void *)o[0].mult), free((void *)o[0].shift);
    free((void *)o[0].act_min), free((void *)o[0].act_max);
    o[0].k = 6, o[0].kh = o[0].kw = 3, o[0].stride = 1, o[0].pad_t = o[0].pad_l = 1, o[0].oh = o[0].ow = 12;
    o[0].weight = rnd_bytes(r, 6 * 9);
    int32_t *b = dg_xcalloc(6, 4);
    o[0].bias = b;
    rnd_requant(&o[0], r, 6, 9);
    o[0].in0 = -1;
    /* 1 maxpool 2: 6 x 6 x 6 */
    o[1] = (QOp){.type = QOP_MAXPOOL, .in0 = 0, .in1 = -1, .c = 6, .h = 12, .w = 12, .k = 6, .oh = 6, .ow = 6,
                 .kh = 2, .kw = 2, .stride = 2, .in_zp = o[0].out_zp, .out_zp = o[0].out_zp};
    /* 2 lut */
    o[2] = (QOp){.type = QOP_LUT, .in0 = 1, .in1 = -1, .c = 6, .h = 6, .w = 6, .k = 6, .oh = 6, .ow = 6,
                 .in_zp = o[1].out_zp, .out_zp = rnd(r, -128, 127)};
    o[2].lut = rnd_bytes(r, 256);
    /* 3 conv 3x3 pad 1 on 2: 6 x 6 x 6 */
    rnd_weighted(&o[3], r, QOP_CONV, 6, 6, 6, o[2].out_zp);
    free((void *)o[3].weight), free((void *)o[3].bias), free((void *)o[3].mult), free((void *)o[3].shift);
    free((void *)o[3].act_min), free((void *)o[3].act_max);
    o[3].k = 6, o[3].kh = o[3].kw = 3, o[3].stride = 1, o[3].pad_t = o[3].pad_l = 1, o[3].oh = o[3].ow = 6;
    o[3].weight = rnd_bytes(r, 6 * 6 * 9);
    o[3].bias = dg_xcalloc(6, 4);
    rnd_requant(&o[3], r, 6, 54);
    o[3].in0 = 2;
    /* 4 add(3, 1) */
    o[4] = (QOp){.type = QOP_ADD, .in0 = 3, .in1 = 1, .c = 6, .c1 = 6, .h = 6, .w = 6, .k = 6, .oh = 6, .ow = 6,
                 .in_zp = o[3].out_zp, .in1_zp = o[1].out_zp, .out_zp = rnd(r, -128, 127)};
    rnd_requant(&o[4], r, 3, 1);
    ((int32_t *)o[4].shift)[0] = ((int32_t *)o[4].shift)[1] = 31;
    ((int32_t *)o[4].shift)[2] = 52;
    /* 5 concat(4, 2): 12 x 6 x 6 */
    o[5] = (QOp){.type = QOP_CONCAT, .in0 = 4, .in1 = 2, .c = 6, .c1 = 6, .h = 6, .w = 6, .k = 12, .oh = 6, .ow = 6,
                 .in_zp = o[4].out_zp, .in1_zp = o[2].out_zp, .out_zp = rnd(r, -128, 127)};
    rnd_requant(&o[5], r, 2, 1);
    ((int32_t *)o[5].shift)[0] = 31, ((int32_t *)o[5].shift)[1] = 30;
    /* 6 avgpool 2: 12 x 3 x 3 */
    o[6] = (QOp){.type = QOP_AVGPOOL, .in0 = 5, .in1 = -1, .c = 12, .h = 6, .w = 6, .k = 12, .oh = 3, .ow = 3,
                 .kh = 2, .kw = 2, .stride = 2, .in_zp = o[5].out_zp, .out_zp = rnd(r, -128, 127)};
    rnd_requant(&o[6], r, 1, 1);
    ((int32_t *)o[6].shift)[0] = 32;
    /* 7 dense -> 10 */
    rnd_weighted(&o[7], r, QOP_DENSE, 12, 3, 3, o[6].out_zp);
    free((void *)o[7].weight), free((void *)o[7].bias), free((void *)o[7].mult), free((void *)o[7].shift);
    free((void *)o[7].act_min), free((void *)o[7].act_max);
    o[7].k = 10;
    o[7].weight = rnd_bytes(r, 10 * 108);
    o[7].bias = dg_xcalloc(10, 4);
    rnd_requant(&o[7], r, 10, 108);
    o[7].in0 = 6;
    for (int i = 0; i < 8; i++) o[i].out = i;
    if (qmodel_check(q, "random") < 0) fail_msg("%s", dg_errmsg());
}

/* n random 12 x 12 images. */
static uint8_t *rnd_images(Rng *r, int n) { return (uint8_t *)rnd_bytes(r, (size_t)n * 144); }

static void test_whole_models_match_on_every_path(void **state) {
    (void)state;
    Rng r;
    rng_seed(&r, 4, "test");
    for (int it = 0; it < 20; it++) {
        QModel q;
        build_random_model(&q, &r);
        const int n = 17;
        uint8_t *img = rnd_images(&r, n);
        int8_t ref[17 * 10], c[17 * 10], v[17 * 10];
        uint8_t pred[17];
        int8_t *arena = dg_xmalloc(q.act_bytes);
        for (int i = 0; i < n; i++) {
            int d = qmodel_run_ref(&q, img + i * 144, arena, ref + i * 10);
            assert_int_equal(d, qref_argmax(ref + i * 10, 10));
        }
        qmodel_run(&q, img, n, c, pred, QKERN_C);
        assert_memory_equal(ref, c, sizeof ref);
        for (int i = 0; i < n; i++) assert_int_equal(pred[i], qref_argmax(ref + i * 10, 10));
        qmodel_run(&q, img, n, v, NULL, QKERN_VNNI);
        assert_memory_equal(ref, v, sizeof ref);
        qmodel_run(&q, img, n, v, NULL, QKERN_AMX);
        assert_memory_equal(ref, v, sizeof ref);
        for (int m = 1; m <= 13; m += 4) { /* short groups of the batch loop, one image */
            memset(v, 0, sizeof v);
            qmodel_run(&q, img, m, v, NULL, it % 2 ? QKERN_AMX : QKERN_VNNI);
            assert_memory_equal(ref, v, (size_t)m * 10);
        }
        qmodel_run(&q, img, n, v, NULL, QKERN_REF);
        assert_memory_equal(ref, v, sizeof ref);
        free(arena);
        free(img);
        qmodel_free(&q);
    }
}

/* ==== the file ============================================================ */

static void test_file_round_trip(void **state) {
    (void)state;
    Rng r;
    rng_seed(&r, 5, "test");
    QFile f = {.n = 2, .vote_logits = 1};
    f.members = dg_xcalloc(2, sizeof *f.members);
    build_random_model(&f.members[0], &r);
    build_random_model(&f.members[1], &r);
    const char *path = tu_tmp_path("m-int8.safetensors");
    assert_int_equal(qfile_save(&f, path, "{\"digits.norm_mean\":\"0.1\"}"), 0);
    QFile g;
    if (qfile_load(&g, path) < 0) fail_msg("%s", dg_errmsg());
    assert_int_equal(g.n, 2);
    assert_int_equal(g.vote_logits, 1);
    uint8_t *img = rnd_images(&r, 5);
    for (int k = 0; k < 2; k++) {
        int8_t a[50], b[50];
        qmodel_run(&f.members[k], img, 5, a, NULL, QKERN_REF);
        qmodel_run(&g.members[k], img, 5, b, NULL, QKERN_AUTO);
        assert_memory_equal(a, b, sizeof a);
        assert_true(g.members[k].in_scale == f.members[k].in_scale);
    }
    free(img);
    qfile_free(&f);
    qfile_free(&g);
}

/* Save a model after `corrupt` spoils it; loading must fail naming `want`. */
static void expect_load_failure(void (*corrupt)(QModel *), const char *want) {
    Rng r;
    rng_seed(&r, 6, "test");
    QFile f = {.n = 1};
    f.members = dg_xcalloc(1, sizeof *f.members);
    build_random_model(&f.members[0], &r);
    corrupt(&f.members[0]);
    const char *path = tu_tmp_path("bad-int8.safetensors");
    assert_int_equal(qfile_save(&f, path, NULL), 0);
    QFile g;
    assert_int_equal(qfile_load(&g, path), -1);
    if (!strstr(dg_errmsg(), want) || !strstr(dg_errmsg(), path))
        fail_msg("message \"%s\" lacks \"%s\" or the path", dg_errmsg(), want);
    qfile_free(&f);
}

static void zero_scale(QModel *q) { q->scales[3] = 0; }
static void nan_scale(QModel *q) { q->scales[0] = NAN; }
static void negative_input_scale(QModel *q) { q->in_scale = -1; }
static void zero_shift(QModel *q) { ((int32_t *)q->ops[0].shift)[2] = 0; }
static void negative_mult(QModel *q) { ((int32_t *)q->ops[7].mult)[0] = -5; }
static void bad_zero_point(QModel *q) { q->ops[3].in_zp = q->ops[2].out_zp ^ 1; }
static void bad_graph(QModel *q) { q->ops[2].in0 = 5; }

static void test_file_refuses_corrupt_numbers(void **state) {
    (void)state;
    expect_load_failure(zero_scale, "op 3: scale 0 is not a positive number");
    expect_load_failure(nan_scale, "op 0: field scale missing or not a number"); /* JSON has no NaN */
    expect_load_failure(negative_input_scale, "input scale -1 is not a positive number");
    expect_load_failure(zero_shift, "op 0: shift 0 outside 1..62");
    expect_load_failure(negative_mult, "op 7: negative multiplier");
    expect_load_failure(bad_zero_point, "op 3: input zero point");
    expect_load_failure(bad_graph, "op 2: input 5 is not an earlier tensor");
}

static void test_file_refuses_float_model(void **state) {
    (void)state;
    QFile g;
    assert_int_equal(qfile_load(&g, tu_fixture("fixtures/lenet5-small.safetensors")), -1);
    if (!strstr(dg_errmsg(), "not an int8 model")) fail_msg("%s", dg_errmsg());
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_requant_edge_cases),
        cmocka_unit_test(test_requant_random_against_oracle),
        cmocka_unit_test(test_kernels_match_reference_on_random_layers),
        cmocka_unit_test(test_kernels_extreme_values),
        cmocka_unit_test(test_kernels_requant_ties),
        cmocka_unit_test(test_amx_conv_matches_reference),
        cmocka_unit_test(test_amx_conv_pool_fusion),
        cmocka_unit_test(test_whole_models_match_on_every_path),
        cmocka_unit_test(test_file_round_trip),
        cmocka_unit_test(test_file_refuses_corrupt_numbers),
        cmocka_unit_test(test_file_refuses_float_model),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
