/* onnx_int8.c — an int8 network (digits quantize; src/quant/qmodel.h) as
 * one ONNX graph of standard-domain operators, opset 17, for ONNX Runtime's
 * own int8 kernels.
 *
 * Every int8 tensor q (zero point z) travels as the uint8 tensor q + 128
 * (zero point z + 128): the same real values, and the input image is then
 * simply its pixels (q = p - 128). ONNX Runtime's fastest int8 convolution
 * on x86 takes uint8 activations and int8 weights.
 *   input      uint8 (N, 1, 28, 28), pixel values 0..255
 *   conv       QLinearConv: int8 weights, one scale per output channel
 *              (mult / 2^shift * out_scale / in_scale, so that ONNX
 *              Runtime's float multiplier is digits'), int32 bias, pads
 *   dense      QLinearConv 1x1 on the input reshaped to (N, C*H*W, 1, 1)
 *   maxpool    MaxPool on the uint8 tensor (max commutes with the affine map)
 *   lut        Cast to int32, Gather from the 256-entry table (exact)
 *   avgpool    a depthwise QLinearConv with weights 1 (its rounding nudged
 *              to break ties as digits does); exact: the window sums (a
 *              float AveragePool of the centred values times the window
 *              size, rounded), then digits' requantization in int64
 *              operators (mulshift below)
 *   add,concat digits' own integer rescaling and requantization (QLinearAdd
 *              and QLinearConcat are not in the standard domain)
 *   clamps     a fused ReLU whose bound is the uint8 range's end is the
 *              saturation itself; any other uniform bound is a Clip on the
 *              uint8 tensor; per-channel bounds (a ReLU before a batch norm:
 *              kaggle-deep) Max / Min with (1, K, 1, 1) uint8 bounds
 *   outputs    logits: DequantizeLinear of the last op, (N, 10) float32;
 *              probabilities: their Softmax (as the float export's)
 * Numbers: ONNX Runtime's QLinearConv requantizes in float and rounds half
 * to even, digits in fixed point, half away from zero: a convolution's
 * output, and so a logit, may differ by a quantization step (measured by
 * tests/e2e/onnx_int8.sh: at most 1, in a few logits per thousand). Every
 * other op above is exact. ONNX_INT8_EXACT writes the convolutions as
 * ConvInteger (int32 accumulators) + bias + digits' requantization instead:
 * bit-identical logits, at ONNX Runtime's speed for integer ops.
 * Left out: float islands (the spatial transformer's grid sampling) and
 * ensembles — refused; the com.microsoft quantized operators (QLinearAdd,
 * QLinearAveragePool...), which only ONNX Runtime runs.
 */
#include "model/onnx_build.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "core/version.h"

#define T_FLOAT ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT
#define T_UINT8 ONNX__TENSOR_PROTO__DATA_TYPE__UINT8
#define T_INT8 ONNX__TENSOR_PROTO__DATA_TYPE__INT8
#define T_INT32 ONNX__TENSOR_PROTO__DATA_TYPE__INT32
#define T_INT64 ONNX__TENSOR_PROTO__DATA_TYPE__INT64
#define T_UINT64 ONNX__TENSOR_PROTO__DATA_TYPE__UINT64

/* One tensor of the graph: its value name, shape (C, H, W; N in front), and
 * its uint8 quantization (scale, zero point), whose initializers P.scale
 * and P.zero_point are made when a node first needs them (t_scale, t_zp). */
typedef struct {
    char *value;
    int c, h, w;
    float scale;
    int zp; /* uint8 zero point: int8 zp + 128 */
    const char *P;
    char *scale_name, *zp_name;
} Tensor;

/* ==== small initializers ================================================== */

static char *u8_scalar(Builder *b, char *name, int v) {
    uint8_t u = (uint8_t)v;
    return b_tensor(b, name, T_UINT8, 1, 0, NULL, &u);
}

static char *i64_vec(Builder *b, char *name, int n, const int64_t *v) {
    return b_tensor(b, name, T_INT64, sizeof(int64_t), 1, (int64_t[]){n}, v);
}

/* Tensor t's quantization; its initializers are named after P. */
static void set_qparams(Tensor *t, const char *P, float scale, int32_t int8_zp) {
    t->scale = scale;
    t->zp = int8_zp + 128;
    t->P = P;
}

static char *t_scale(Builder *b, Tensor *t) {
    if (!t->scale_name) t->scale_name = b_scalar(b, b_fmt(b, "%s.scale", t->P), t->scale);
    return t->scale_name;
}

static char *t_zp(Builder *b, Tensor *t) {
    if (!t->zp_name) t->zp_name = u8_scalar(b, b_fmt(b, "%s.zero_point", t->P), t->zp);
    return t->zp_name;
}

/* x reshaped to (N, c, h, w) unless it has that shape already. */
static char *as_shape(Builder *b, const char *P, const Tensor *x, int c, int h, int w) {
    if (x->c == c && x->h == h && x->w == w) return x->value;
    char *shape = i64_vec(b, b_fmt(b, "%s.shape", P), 4, (int64_t[]){0, c, h, w});
    return b_node(b, "Reshape", NULL, 2, x->value, shape)->output[0];
}

/* ==== exact integer requantization ========================================
 * qref_mulshift in standard operators on int64 tensors: p = x * mult, then
 * sign(x) * ((|p| + 2^(shift-1)) >> shift) with BitShift on uint64 — the
 * same round half away from zero, bit for bit (|p| < 2^62 as in qref.h).
 * mult and shift: n values (per channel along axis 1, or n == 1). */

static char *i64_const(Builder *b, char *name, int n, const int64_t *v) {
    int64_t dims[4] = {1, n, 1, 1};
    return b_tensor(b, name, T_INT64, sizeof(int64_t), n == 1 ? 0 : 4, dims, v);
}

static char *cast(Builder *b, const char *v, int to) {
    Onnx__NodeProto *nd = b_node(b, "Cast", NULL, 1, v);
    b_attr_int(b, nd, "to", to);
    return nd->output[0];
}

static char *mulshift(Builder *b, const char *P, const char *x, int n, const int32_t *mult, const int32_t *shift) {
    int64_t *m = dg_xmalloc((size_t)n * sizeof *m), *h = dg_xmalloc((size_t)n * sizeof *h);
    uint64_t *s = dg_xmalloc((size_t)n * sizeof *s);
    for (int i = 0; i < n; i++) m[i] = mult[i], h[i] = (int64_t)1 << (shift[i] - 1), s[i] = (uint64_t)shift[i];
    char *mv = i64_const(b, b_fmt(b, "%s.mult", P), n, m), *hv = i64_const(b, b_fmt(b, "%s.half", P), n, h);
    int64_t dims[4] = {1, n, 1, 1};
    char *sv = b_tensor(b, b_fmt(b, "%s.shift", P), T_UINT64, sizeof(uint64_t), n == 1 ? 0 : 4, dims, s);
    free(m), free(h), free(s);
    char *prod = b_node(b, "Mul", NULL, 2, x, mv)->output[0];
    char *mag = b_node(b, "Add", NULL, 2, b_node(b, "Abs", NULL, 1, prod)->output[0], hv)->output[0];
    Onnx__NodeProto *sh = b_node(b, "BitShift", NULL, 2, cast(b, mag, T_UINT64), sv);
    b_attr_string(b, sh, "direction", "RIGHT");
    char *r = cast(b, sh->output[0], T_INT64);
    int64_t zero = 0; /* the sign of x (mult >= 0): ONNX Runtime 1.30's Sign of an int64 of 2^31 is -1 */
    char *neg = b_node(b, "Less", NULL, 2, x, i64_const(b, b_fmt(b, "%s.zero", P), 1, &zero))->output[0];
    return b_node(b, "Where", NULL, 3, neg, b_node(b, "Neg", NULL, 1, r)->output[0], r)->output[0];
}

/* qref_requant of an int64 accumulator to y's uint8 tensor: zp + mulshift
 * (n multipliers), clamped to [lo, hi] (int8 values: nc pairs, one per
 * channel, or one). */
static char *requant(Builder *b, const char *P, const char *acc, int n, const int32_t *mult, const int32_t *shift,
                     const Tensor *y, int nc, const int8_t *lo, const int8_t *hi) {
    char *r = mulshift(b, P, acc, n, mult, shift);
    int64_t zp = y->zp, *l = dg_xmalloc((size_t)nc * sizeof *l), *u = dg_xmalloc((size_t)nc * sizeof *u);
    for (int i = 0; i < nc; i++) l[i] = lo[i] + 128, u[i] = hi[i] + 128;
    r = b_node(b, "Add", NULL, 2, r, i64_const(b, b_fmt(b, "%s.out_zp", P), 1, &zp))->output[0];
    char *lv = i64_const(b, b_fmt(b, "%s.lo", P), nc, l), *uv = i64_const(b, b_fmt(b, "%s.hi", P), nc, u);
    free(l), free(u);
    if (nc == 1) {
        r = b_node(b, "Clip", NULL, 3, r, lv, uv)->output[0];
    } else {
        r = b_node(b, "Max", NULL, 2, r, lv)->output[0];
        r = b_node(b, "Min", NULL, 2, r, uv)->output[0];
    }
    return cast(b, r, T_UINT8);
}

/* x - zero point as int64 (the int8 q - zp of qref.h). */
static char *centered(Builder *b, const char *P, const Tensor *x, const char *v) {
    int64_t zp = x->zp;
    return b_node(b, "Sub", NULL, 2, cast(b, v, T_INT64), i64_const(b, b_fmt(b, "%s.in_zp", P), 1, &zp))->output[0];
}

/* ==== operators =========================================================== */

/* The clamp [lo, hi] (int8, per channel k of y) on y's uint8 tensor. */
static void clamp(Builder *b, const char *P, Tensor *y, int k, const int8_t *lo, const int8_t *hi) {
    int uniform = 1;
    for (int i = 1; i < k; i++) uniform &= lo[i] == lo[0] && hi[i] == hi[0];
    if (uniform) {
        int ulo = lo[0] + 128, uhi = hi[0] + 128;
        if (ulo == 0 && uhi == 255) return; /* the saturation does it */
        char *mn = u8_scalar(b, b_fmt(b, "%s.clip_min", P), ulo), *mx = u8_scalar(b, b_fmt(b, "%s.clip_max", P), uhi);
        y->value = b_node(b, "Clip", NULL, 3, y->value, mn, mx)->output[0];
        return;
    }
    /* per channel: Max and Min with (1, K, 1, 1) bounds */
    uint8_t *ulo = dg_xmalloc((size_t)k), *uhi = dg_xmalloc((size_t)k);
    int any_lo = 0, any_hi = 0;
    for (int i = 0; i < k; i++) {
        ulo[i] = (uint8_t)(lo[i] + 128), uhi[i] = (uint8_t)(hi[i] + 128);
        any_lo |= ulo[i] > 0, any_hi |= uhi[i] < 255;
    }
    int64_t dims[4] = {1, k, 1, 1};
    if (any_lo)
        y->value = b_node(b, "Max", NULL, 2, y->value, b_tensor(b, b_fmt(b, "%s.clamp_min", P), T_UINT8, 1, 4, dims, ulo))
                       ->output[0];
    if (any_hi)
        y->value = b_node(b, "Min", NULL, 2, y->value, b_tensor(b, b_fmt(b, "%s.clamp_max", P), T_UINT8, 1, 4, dims, uhi))
                       ->output[0];
    free(ulo);
    free(uhi);
}

/* kernel_shape, strides and pads of a conv node (dense: 1x1, none). */
static void conv_attrs(Builder *b, Onnx__NodeProto *nd, const QOp *op) {
    int dense = op->type == QOP_DENSE;
    b_attr_ints(b, nd, "kernel_shape", 2, 1);
    b_attr_ints(b, nd, "strides", 2, dense ? 1 : op->stride);
    b_attr_ints(b, nd, "pads", 4, 0);
    if (dense) return;
    nd->attribute[0]->ints[0] = op->kh, nd->attribute[0]->ints[1] = op->kw;
    /* begins (top, left), ends (bottom, right): what the output size implies */
    int64_t *p = nd->attribute[2]->ints;
    int pb = (op->oh - 1) * op->stride + op->kh - op->h - op->pad_t;
    int pr = (op->ow - 1) * op->stride + op->kw - op->w - op->pad_l;
    p[0] = op->pad_t, p[1] = op->pad_l, p[2] = pb > 0 ? pb : 0, p[3] = pr > 0 ? pr : 0;
}

/* conv / dense: QLinearConv with per-channel weight scales, or (exact)
 * ConvInteger + bias + digits' requantization; dense as a 1x1 convolution
 * over (N, C*H*W, 1, 1). */
static void export_weighted(Builder *b, const char *P, const QOp *op, Tensor *x, Tensor *y, int exact) {
    int dense = op->type == QOP_DENSE;
    int K = op->k, C = dense ? op->c * op->h * op->w : op->c, kh = dense ? 1 : op->kh, kw = dense ? 1 : op->kw;
    char *in = dense ? as_shape(b, P, x, C, 1, 1) : as_shape(b, P, x, op->c, op->h, op->w);
    int64_t wdims[4] = {K, C, kh, kw};
    char *w = b_tensor(b, b_fmt(b, "%s.weight", P), T_INT8, 1, 4, wdims, op->weight);
    if (exact) {
        Onnx__NodeProto *nd = b_node(b, "ConvInteger", NULL, 3, in, w, t_zp(b, x));
        conv_attrs(b, nd, op);
        int64_t *bias = dg_xmalloc((size_t)K * sizeof *bias);
        for (int k = 0; k < K; k++) bias[k] = op->bias[k];
        char *bv = i64_const(b, b_fmt(b, "%s.bias", P), K, bias);
        free(bias);
        char *acc = b_node(b, "Add", NULL, 2, cast(b, nd->output[0], T_INT64), bv)->output[0];
        y->value = requant(b, P, acc, K, op->mult, op->shift, y, K, op->act_min, op->act_max);
        return;
    }
    float *ws = dg_xmalloc((size_t)K * sizeof *ws);
    int8_t *wzp = dg_xcalloc((size_t)K, 1);
    for (int k = 0; k < K; k++) /* in_scale * w_scale / out_scale = mult / 2^shift */
        ws[k] = (float)((double)op->mult[k] / ldexp(1.0, op->shift[k]) * (double)y->scale / (double)x->scale);
    char *wsn = b_tensor(b, b_fmt(b, "%s.weight_scale", P), T_FLOAT, sizeof(float), 1, (int64_t[]){K}, ws);
    char *wzn = b_tensor(b, b_fmt(b, "%s.weight_zero_point", P), T_INT8, 1, 1, (int64_t[]){K}, wzp);
    char *bias = b_tensor(b, b_fmt(b, "%s.bias", P), T_INT32, sizeof(int32_t), 1, (int64_t[]){K}, op->bias);
    free(ws);
    free(wzp);
    Onnx__NodeProto *nd = b_node(b, "QLinearConv", NULL, 9, in, t_scale(b, x), t_zp(b, x), w, wsn, wzn,
                                 t_scale(b, y), t_zp(b, y), bias);
    conv_attrs(b, nd, op);
    y->value = nd->output[0];
    clamp(b, P, y, K, op->act_min, op->act_max);
}

/* avgpool (not exact) as a depthwise QLinearConv: weights 1, bias 0, so
 * that the accumulator is digits' window sum, and the channel scale set for
 * mult / 2^shift * (1 + 2^-18): the small excess rounds the frequent exact
 * ties (a sum / 4 ending in .5) away from zero as digits does, where ONNX
 * Runtime's float requantization would round them to even. */
static void export_avgpool_conv(Builder *b, const char *P, const QOp *op, Tensor *x, Tensor *y) {
    int C = op->c;
    size_t nw = (size_t)C * op->kh * op->kw;
    int8_t *w = dg_xmalloc(nw), *wzp = dg_xcalloc((size_t)C, 1);
    int32_t *bias = dg_xcalloc((size_t)C, sizeof *bias);
    float *ws = dg_xmalloc((size_t)C * sizeof *ws);
    memset(w, 1, nw);
    double m = (double)op->mult[0] / ldexp(1.0, op->shift[0]) * (1.0 + ldexp(1.0, -18));
    for (int c = 0; c < C; c++) ws[c] = (float)(m * (double)y->scale / (double)x->scale);
    char *wn = b_tensor(b, b_fmt(b, "%s.weight", P), T_INT8, 1, 4, (int64_t[]){C, 1, op->kh, op->kw}, w);
    char *wsn = b_tensor(b, b_fmt(b, "%s.weight_scale", P), T_FLOAT, sizeof(float), 1, (int64_t[]){C}, ws);
    char *wzn = b_tensor(b, b_fmt(b, "%s.weight_zero_point", P), T_INT8, 1, 1, (int64_t[]){C}, wzp);
    char *bn = b_tensor(b, b_fmt(b, "%s.bias", P), T_INT32, sizeof(int32_t), 1, (int64_t[]){C}, bias);
    free(w), free(wzp), free(bias), free(ws);
    Onnx__NodeProto *nd = b_node(b, "QLinearConv", NULL, 9, as_shape(b, P, x, op->c, op->h, op->w), t_scale(b, x),
                                 t_zp(b, x), wn, wsn, wzn, t_scale(b, y), t_zp(b, y), bn);
    b_attr_ints(b, nd, "kernel_shape", 2, 0);
    nd->attribute[0]->ints[0] = op->kh, nd->attribute[0]->ints[1] = op->kw;
    b_attr_ints(b, nd, "strides", 2, op->stride);
    b_attr_int(b, nd, "group", C);
    y->value = nd->output[0];
    clamp(b, P, y, 1, op->act_min, op->act_max);
}

/* maxpool / avgpool over kh x kw windows, no padding. exact: the average
 * pool's window sums come from a float AveragePool of the centred values
 * times kh*kw, rounded (exact: sums of at most a few thousand small
 * integers), then digits' requantization; else a depthwise QLinearConv. */
static void export_pool(Builder *b, const char *P, const QOp *op, Tensor *x, Tensor *y, int exact) {
    int avg = op->type == QOP_AVGPOOL;
    if (avg && !exact) {
        export_avgpool_conv(b, P, op, x, y);
        return;
    }
    char *in = as_shape(b, P, x, op->c, op->h, op->w);
    char *v = in;
    if (avg) {
        float zp = (float)x->zp;
        v = b_node(b, "Sub", NULL, 2, cast(b, in, T_FLOAT), b_scalar(b, b_fmt(b, "%s.in_zp_f", P), zp))->output[0];
    }
    Onnx__NodeProto *nd = b_node(b, avg ? "AveragePool" : "MaxPool", NULL, 1, v);
    b_attr_ints(b, nd, "kernel_shape", 2, 0);
    nd->attribute[0]->ints[0] = op->kh, nd->attribute[0]->ints[1] = op->kw;
    b_attr_ints(b, nd, "strides", 2, op->stride);
    y->value = nd->output[0];
    if (!avg) return;
    char *sum = b_node(b, "Mul", NULL, 2, y->value, b_scalar(b, b_fmt(b, "%s.window", P), (float)(op->kh * op->kw)))
                    ->output[0];
    char *acc = cast(b, b_node(b, "Round", NULL, 1, sum)->output[0], T_INT64);
    y->value = requant(b, P, acc, 1, op->mult, op->shift, y, 1, op->act_min, op->act_max);
}

/* lut: y = table[x] with the uint8 table[u] = lut[u] + 128 (u = q + 128). */
static void export_lut(Builder *b, const char *P, const QOp *op, Tensor *x, Tensor *y) {
    uint8_t table[256];
    for (int u = 0; u < 256; u++) table[u] = (uint8_t)(op->lut[u] + 128);
    char *t = b_tensor(b, b_fmt(b, "%s.table", P), T_UINT8, 1, 1, (int64_t[]){256}, table);
    char *idx = cast(b, as_shape(b, P, x, op->c, op->h, op->w), T_INT32);
    y->value = b_node(b, "Gather", NULL, 2, t, idx)->output[0];
}

/* add: each input centred and shifted left by QREF_ADD_LEFT_SHIFT,
 * rescaled (mult/shift [0], [1]), summed and requantized ([2]); concat:
 * each input requantized to y ([0], [1]), then Concat. Exact. */
static void export_join(Builder *b, const char *P, const QOp *op, Tensor *x0, Tensor *x1, Tensor *y) {
    const char *P1 = b_fmt(b, "%s.in1", P);
    char *a = centered(b, P, x0, as_shape(b, P, x0, op->c, op->h, op->w));
    char *c = centered(b, P1, x1, as_shape(b, P1, x1, op->c1, op->h, op->w));
    const int8_t *lo = op->act_min, *hi = op->act_max;
    if (op->type == QOP_CONCAT) {
        a = requant(b, P, a, 1, &op->mult[0], &op->shift[0], y, 1, lo, hi);
        c = requant(b, P1, c, 1, &op->mult[1], &op->shift[1], y, 1, lo, hi);
        Onnx__NodeProto *nd = b_node(b, "Concat", NULL, 2, a, c);
        b_attr_int(b, nd, "axis", 1);
        y->value = nd->output[0];
        return;
    }
    int64_t left = (int64_t)1 << QREF_ADD_LEFT_SHIFT;
    char *lv = i64_const(b, b_fmt(b, "%s.left_shift", P), 1, &left);
    a = mulshift(b, b_fmt(b, "%s.a", P), b_node(b, "Mul", NULL, 2, a, lv)->output[0], 1, &op->mult[0], &op->shift[0]);
    c = mulshift(b, b_fmt(b, "%s.b", P), b_node(b, "Mul", NULL, 2, c, lv)->output[0], 1, &op->mult[1], &op->shift[1]);
    y->value = requant(b, P, b_node(b, "Add", NULL, 2, a, c)->output[0], 1, &op->mult[2], &op->shift[2], y, 1, lo, hi);
}

/* Op i's nodes; its output tensor into t[i]. */
static int export_op(Builder *b, const QModel *q, int i, Tensor *image, Tensor *t, int exact, const char *origin) {
    const QOp *op = &q->ops[i];
    Tensor *x0 = op->in0 < 0 ? image : &t[op->in0];
    Tensor *x1 = op->in1 < 0 ? image : &t[op->in1];
    Tensor *y = &t[i];
    const char *P = b_fmt(b, "op%d", i);
    y->c = op->k, y->h = op->oh, y->w = op->ow;
    if (op->type == QOP_MAXPOOL) { /* same scale and zero point in and out */
        set_qparams(y, P, x0->scale, x0->zp - 128);
    } else {
        set_qparams(y, P, q->scales[i], op->out_zp);
    }
    switch (op->type) {
    case QOP_CONV: case QOP_DENSE: export_weighted(b, P, op, x0, y, exact); return 0;
    case QOP_MAXPOOL: case QOP_AVGPOOL: export_pool(b, P, op, x0, y, exact); return 0;
    case QOP_LUT: export_lut(b, P, op, x0, y); return 0;
    case QOP_ADD: case QOP_CONCAT: export_join(b, P, op, x0, x1, y); return 0;
    case QOP_FLOAT_STN:
        return dg_set_error("%s: op %d is a float island (a spatial transformer's grid sampling); the int8 "
                            "ONNX export needs every op in int8 (export the float model instead)", origin, i);
    default: return dg_set_error("%s: op %d has unknown type %d", origin, i, op->type);
    }
}

/* ==== the model =========================================================== */

static const char **int8_metadata(Builder *b, const QModel *q, const char *const *meta_kv) {
    size_t extra = 0;
    while (meta_kv && meta_kv[2 * extra]) extra++;
    const char **kv = b_alloc(b, (10 + 2 * extra + 1) * sizeof *kv);
    int i = 0;
    kv[i++] = "digits.version", kv[i++] = DG_VERSION;
    kv[i++] = "digits.input", kv[i++] = "uint8 (N,1,28,28), pixel values 0..255, white digit on black";
    kv[i++] = "digits.precision", kv[i++] = "int8";
    kv[i++] = "digits.spec", kv[i++] = q->spec_text ? q->spec_text : "";
    for (size_t e = 0; e < extra; e++) kv[i++] = meta_kv[2 * e], kv[i++] = meta_kv[2 * e + 1];
    kv[i] = NULL;
    return kv;
}

int onnx_export_int8(const char *path, const QModel *q, int flags, const char *const *meta_kv, const char *origin) {
    if (q->in_c != 1 || q->in_h != 28 || q->in_w != 28)
        return dg_set_error("%s: the input is %dx%dx%d; the ONNX export is for 1x28x28 images", origin, q->in_c,
                            q->in_h, q->in_w);
    Builder b = {0};
    Tensor image = {.value = "input", .c = 1, .h = 28, .w = 28};
    set_qparams(&image, "input", q->in_scale, q->in_zp);
    Tensor *t = dg_xcalloc((size_t)q->n_ops, sizeof *t);
    int rc = 0;
    for (int i = 0; i < q->n_ops && rc == 0; i++) rc = export_op(&b, q, i, &image, t, flags & ONNX_INT8_EXACT, origin);
    if (rc == 0) {
        Tensor *last = &t[q->n_ops - 1];
        char *shape = i64_vec(&b, "logits.shape", 2, (int64_t[]){0, QMODEL_CLASSES});
        char *z = b_node(&b, "Reshape", NULL, 2, last->value, shape)->output[0];
        char *lg = b_node(&b, "DequantizeLinear", "logits", 3, z, t_scale(&b, last), t_zp(&b, last))->output[0];
        b_attr_int(&b, b_node(&b, "Softmax", "probabilities", 1, lg), "axis", 1);
        Onnx__ValueInfoProto *in = b_value_info(&b, "input", T_UINT8, 4, (int[]){0, 1, 28, 28});
        Onnx__ValueInfoProto *outs[2] = {b_value_info(&b, "logits", T_FLOAT, 2, (int[]){0, QMODEL_CLASSES}),
                                         b_value_info(&b, "probabilities", T_FLOAT, 2, (int[]){0, QMODEL_CLASSES})};
        rc = b_write_model(&b, path, &in, 1, outs, 2, int8_metadata(&b, q, meta_kv));
    }
    free(t);
    builder_free(&b);
    return rc;
}
