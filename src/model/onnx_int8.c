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
 *   avgpool,   DequantizeLinear -> AveragePool / Add / Concat ->
 *   add,concat QuantizeLinear (no standard quantized form)
 *   clamps     a fused ReLU whose bound is the uint8 range's end is the
 *              saturation itself; any other uniform bound is a Clip on the
 *              uint8 tensor; per-channel bounds (a ReLU before a batch norm
 *              with negative scales) Max / Min on the dequantized tensor
 *   outputs    logits: DequantizeLinear of the last op, (N, 10) float32;
 *              probabilities: their Softmax (as the float export's)
 * Numbers: ONNX Runtime requantizes in float and rounds half to even,
 * digits in fixed point, half away from zero; the float islands of the
 * ops above round in float too. So a logit may differ by a few
 * quantization steps (tests/e2e/onnx_int8.sh measures it).
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

/* One tensor of the graph: its value name, shape (C, H, W; N in front), and
 * its uint8 quantization (scale, zero point as a uint8 initializer). */
typedef struct {
    char *value;
    int c, h, w;
    float scale;
    char *scale_name, *zp_name;
    int zp; /* uint8 zero point: int8 zp + 128 */
} Tensor;

/* ==== small initializers ================================================== */

static char *u8_scalar(Builder *b, char *name, int v) {
    uint8_t u = (uint8_t)v;
    return b_tensor(b, name, T_UINT8, 1, 0, NULL, &u);
}

static char *i64_vec(Builder *b, char *name, int n, const int64_t *v) {
    return b_tensor(b, name, T_INT64, sizeof(int64_t), 1, (int64_t[]){n}, v);
}

/* Tensor t's scale and zero point initializers, named after P. */
static void set_qparams(Builder *b, Tensor *t, const char *P, float scale, int32_t int8_zp) {
    t->scale = scale;
    t->zp = int8_zp + 128;
    t->scale_name = b_scalar(b, b_fmt(b, "%s.scale", P), scale);
    t->zp_name = u8_scalar(b, b_fmt(b, "%s.zero_point", P), t->zp);
}

/* x reshaped to (N, c, h, w) unless it has that shape already. */
static char *as_shape(Builder *b, const char *P, const Tensor *x, int c, int h, int w) {
    if (x->c == c && x->h == h && x->w == w) return x->value;
    char *shape = i64_vec(b, b_fmt(b, "%s.shape", P), 4, (int64_t[]){0, c, h, w});
    return b_node(b, "Reshape", NULL, 2, x->value, shape)->output[0];
}

/* The real (float) value of a uint8 tensor. */
static char *dequant(Builder *b, const Tensor *t, const char *v) {
    return b_node(b, "DequantizeLinear", NULL, 3, v ? v : t->value, t->scale_name, t->zp_name)->output[0];
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
    /* per channel: exact in float (the bounds are quantization levels) */
    float *flo = dg_xmalloc((size_t)k * sizeof *flo), *fhi = dg_xmalloc((size_t)k * sizeof *fhi);
    for (int i = 0; i < k; i++) {
        flo[i] = (float)(lo[i] + 128 - y->zp) * y->scale;
        fhi[i] = (float)(hi[i] + 128 - y->zp) * y->scale;
    }
    int64_t dims[4] = {1, k, 1, 1};
    char *vlo = b_tensor(b, b_fmt(b, "%s.clamp_min", P), T_FLOAT, sizeof(float), 4, dims, flo);
    char *vhi = b_tensor(b, b_fmt(b, "%s.clamp_max", P), T_FLOAT, sizeof(float), 4, dims, fhi);
    free(flo);
    free(fhi);
    char *v = b_node(b, "Max", NULL, 2, dequant(b, y, NULL), vlo)->output[0];
    v = b_node(b, "Min", NULL, 2, v, vhi)->output[0];
    y->value = b_node(b, "QuantizeLinear", NULL, 3, v, y->scale_name, y->zp_name)->output[0];
}

/* conv / dense: QLinearConv with per-channel weight scales; dense as a 1x1
 * convolution over (N, C*H*W, 1, 1). */
static void export_weighted(Builder *b, const char *P, const QOp *op, const Tensor *x, Tensor *y) {
    int dense = op->type == QOP_DENSE;
    int K = op->k, C = dense ? op->c * op->h * op->w : op->c, kh = dense ? 1 : op->kh, kw = dense ? 1 : op->kw;
    char *in = dense ? as_shape(b, P, x, C, 1, 1) : as_shape(b, P, x, op->c, op->h, op->w);
    float *ws = dg_xmalloc((size_t)K * sizeof *ws);
    int8_t *wzp = dg_xcalloc((size_t)K, 1);
    for (int k = 0; k < K; k++) /* in_scale * w_scale / out_scale = mult / 2^shift */
        ws[k] = (float)((double)op->mult[k] / ldexp(1.0, op->shift[k]) * (double)y->scale / (double)x->scale);
    int64_t wdims[4] = {K, C, kh, kw};
    char *w = b_tensor(b, b_fmt(b, "%s.weight", P), T_INT8, 1, 4, wdims, op->weight);
    char *wsn = b_tensor(b, b_fmt(b, "%s.weight_scale", P), T_FLOAT, sizeof(float), 1, (int64_t[]){K}, ws);
    char *wzn = b_tensor(b, b_fmt(b, "%s.weight_zero_point", P), T_INT8, 1, 1, (int64_t[]){K}, wzp);
    char *bias = b_tensor(b, b_fmt(b, "%s.bias", P), T_INT32, sizeof(int32_t), 1, (int64_t[]){K}, op->bias);
    free(ws);
    free(wzp);
    Onnx__NodeProto *nd = b_node(b, "QLinearConv", NULL, 9, in, x->scale_name, x->zp_name, w, wsn, wzn,
                                 y->scale_name, y->zp_name, bias);
    b_attr_ints(b, nd, "kernel_shape", 2, 0);
    nd->attribute[0]->ints[0] = kh, nd->attribute[0]->ints[1] = kw;
    b_attr_ints(b, nd, "strides", 2, dense ? 1 : op->stride);
    b_attr_ints(b, nd, "pads", 4, 0);
    if (!dense) { /* begins (top, left), ends (bottom, right): what the output size implies */
        int64_t *p = nd->attribute[2]->ints;
        int pb = (op->oh - 1) * op->stride + op->kh - op->h - op->pad_t;
        int pr = (op->ow - 1) * op->stride + op->kw - op->w - op->pad_l;
        p[0] = op->pad_t, p[1] = op->pad_l, p[2] = pb > 0 ? pb : 0, p[3] = pr > 0 ? pr : 0;
    }
    y->value = nd->output[0];
    clamp(b, P, y, K, op->act_min, op->act_max);
}

/* maxpool / avgpool over kh x kw windows, no padding. */
static void export_pool(Builder *b, const char *P, const QOp *op, const Tensor *x, Tensor *y) {
    char *in = as_shape(b, P, x, op->c, op->h, op->w);
    int avg = op->type == QOP_AVGPOOL;
    Onnx__NodeProto *nd = b_node(b, avg ? "AveragePool" : "MaxPool", NULL, 1, avg ? dequant(b, x, in) : in);
    b_attr_ints(b, nd, "kernel_shape", 2, 0);
    nd->attribute[0]->ints[0] = op->kh, nd->attribute[0]->ints[1] = op->kw;
    b_attr_ints(b, nd, "strides", 2, op->stride);
    y->value = nd->output[0];
    if (!avg) return;
    y->value = b_node(b, "QuantizeLinear", NULL, 3, y->value, y->scale_name, y->zp_name)->output[0];
    clamp(b, P, y, 1, op->act_min, op->act_max);
}

/* lut: y = table[x] with the uint8 table[u] = lut[u] + 128 (u = q + 128). */
static void export_lut(Builder *b, const char *P, const QOp *op, const Tensor *x, Tensor *y) {
    uint8_t table[256];
    for (int u = 0; u < 256; u++) table[u] = (uint8_t)(op->lut[u] + 128);
    char *t = b_tensor(b, b_fmt(b, "%s.table", P), T_UINT8, 1, 1, (int64_t[]){256}, table);
    Onnx__NodeProto *cast = b_node(b, "Cast", NULL, 1, as_shape(b, P, x, op->c, op->h, op->w));
    b_attr_int(b, cast, "to", T_INT32);
    y->value = b_node(b, "Gather", NULL, 2, t, cast->output[0])->output[0];
}

/* add / concat of two tensors in float, quantized to y. */
static void export_join(Builder *b, const char *P, const QOp *op, const Tensor *x0, const Tensor *x1, Tensor *y) {
    char *a = dequant(b, x0, as_shape(b, P, x0, op->c, op->h, op->w));
    char *c = dequant(b, x1, as_shape(b, b_fmt(b, "%s.in1", P), x1, op->c1, op->h, op->w));
    Onnx__NodeProto *nd = b_node(b, op->type == QOP_ADD ? "Add" : "Concat", NULL, 2, a, c);
    if (op->type == QOP_CONCAT) b_attr_int(b, nd, "axis", 1);
    y->value = b_node(b, "QuantizeLinear", NULL, 3, nd->output[0], y->scale_name, y->zp_name)->output[0];
    clamp(b, P, y, 1, op->act_min, op->act_max);
}

/* Op i's nodes; its output tensor into t[i]. */
static int export_op(Builder *b, const QModel *q, int i, const Tensor *image, Tensor *t, const char *origin) {
    const QOp *op = &q->ops[i];
    const Tensor *x0 = op->in0 < 0 ? image : &t[op->in0];
    const Tensor *x1 = op->in1 < 0 ? image : &t[op->in1];
    Tensor *y = &t[i];
    const char *P = b_fmt(b, "op%d", i);
    y->c = op->k, y->h = op->oh, y->w = op->ow;
    if (op->type == QOP_MAXPOOL) { /* same scale and zero point in and out */
        y->scale = x0->scale, y->zp = x0->zp, y->scale_name = x0->scale_name, y->zp_name = x0->zp_name;
    } else {
        set_qparams(b, y, P, q->scales[i], op->out_zp);
    }
    switch (op->type) {
    case QOP_CONV: case QOP_DENSE: export_weighted(b, P, op, x0, y); return 0;
    case QOP_MAXPOOL: case QOP_AVGPOOL: export_pool(b, P, op, x0, y); return 0;
    case QOP_LUT: export_lut(b, P, op, x0, y); return 0;
    case QOP_ADD: case QOP_CONCAT: export_join(b, P, op, x0, x1, y); return 0;
    case QOP_FLOAT_STN:
        return dg_set_error("%s: op %d (%s) is a float island (spatial transformer); the int8 ONNX export takes "
                            "int8 operators only (export the float model instead)", origin, i, q->what[i]);
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

int onnx_export_int8(const char *path, const QModel *q, const char *const *meta_kv, const char *origin) {
    if (q->in_c != 1 || q->in_h != 28 || q->in_w != 28)
        return dg_set_error("%s: the input is %dx%dx%d; the ONNX export is for 1x28x28 images", origin, q->in_c,
                            q->in_h, q->in_w);
    Builder b = {0};
    Tensor image = {.value = "input", .c = 1, .h = 28, .w = 28};
    set_qparams(&b, &image, "input", q->in_scale, q->in_zp);
    Tensor *t = dg_xcalloc((size_t)q->n_ops, sizeof *t);
    int rc = 0;
    for (int i = 0; i < q->n_ops && rc == 0; i++) rc = export_op(&b, q, i, &image, t, origin);
    if (rc == 0) {
        const Tensor *last = &t[q->n_ops - 1];
        char *shape = i64_vec(&b, "logits.shape", 2, (int64_t[]){0, QMODEL_CLASSES});
        char *z = b_node(&b, "Reshape", NULL, 2, last->value, shape)->output[0];
        char *lg = b_node(&b, "DequantizeLinear", "logits", 3, z, last->scale_name, last->zp_name)->output[0];
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
