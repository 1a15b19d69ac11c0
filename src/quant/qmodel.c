/* qmodel.c — an int8 model's checks, arena layout, reference run and
 * clean-up (see qmodel.h). The fast kernels are in qkernels.c, the model
 * file in qfile.c, the quantizer in quantize.c.
 * Left out on purpose: batching in the reference run (one image at a time,
 * as the microcontroller runs it). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "quant/qmodel.h"

/* Most int8 elements one tensor may have, taps one output may sum, and
 * the largest |bias|: 2^29 + 32768 * 127 * 255 stays within int32, and so
 * do the fast kernels' partial sums (bias - zp * sum(w) + sum(w * x)). */
#define QMAX_ELEMS ((int64_t)1 << 24)
#define QMAX_TAPS 32768
#define QMAX_BIAS ((int32_t)1 << 29)

void qmodel_free(QModel *q) {
    for (int i = 0; q->ops && i < q->n_ops; i++) {
        QOp *op = &q->ops[i];
        free((void *)op->weight);
        free((void *)op->bias);
        free((void *)op->mult);
        free((void *)op->shift);
        free((void *)op->act_min);
        free((void *)op->act_max);
        free((void *)op->lut);
    }
    free(q->ops);
    free(q->scales);
    free(q->what);
    free(q->act_off);
    free(q->spec_text);
    qkernels_release(q);
    memset(q, 0, sizeof *q);
}

/* ==== checks ============================================================== */

/* Shape (c, h, w) of tensor t (-1: the image). */
static void tensor_shape(const QModel *q, int t, int32_t *c, int32_t *h, int32_t *w) {
    if (t < 0) {
        *c = q->in_c, *h = q->in_h, *w = q->in_w;
    } else {
        *c = q->ops[t].k, *h = q->ops[t].oh, *w = q->ops[t].ow;
    }
}

/* Zero point of tensor t. */
static int32_t tensor_zp(const QModel *q, int t) { return t < 0 ? q->in_zp : q->ops[t].out_zp; }

static int in_i8(int32_t v) { return v >= -128 && v <= 127; }

/* The n requantization entries of op: multipliers >= 0, shifts 1..62. */
static int check_requant(const QOp *op, int n, const char *origin, int i) {
    if (!op->mult || !op->shift) return dg_set_error("%s: op %d: multipliers missing", origin, i);
    for (int k = 0; k < n; k++) {
        if (op->mult[k] < 0) return dg_set_error("%s: op %d: negative multiplier %d", origin, i, (int)op->mult[k]);
        if (op->shift[k] < 1 || op->shift[k] > 62)
            return dg_set_error("%s: op %d: shift %d outside 1..62", origin, i, (int)op->shift[k]);
    }
    return 0;
}

/* The n clamps of op: lo <= hi (int8 by type). */
static int check_clamps(const QOp *op, int n, const char *origin, int i) {
    if (!op->act_min || !op->act_max) return dg_set_error("%s: op %d: clamps missing", origin, i);
    for (int k = 0; k < n; k++)
        if (op->act_min[k] > op->act_max[k])
            return dg_set_error("%s: op %d: clamp [%d, %d] is empty", origin, i, op->act_min[k], op->act_max[k]);
    return 0;
}

/* conv / dense: weights, biases within +-2^30, taps per output bounded. */
static int check_weighted(const QOp *op, int64_t taps, const char *origin, int i) {
    if (!op->weight || !op->bias) return dg_set_error("%s: op %d: weights missing", origin, i);
    if (taps > QMAX_TAPS) return dg_set_error("%s: op %d: %lld taps per output (at most %d)", origin, i,
                                              (long long)taps, QMAX_TAPS);
    for (int k = 0; k < op->k; k++)
        if (op->bias[k] > QMAX_BIAS || op->bias[k] < -QMAX_BIAS)
            return dg_set_error("%s: op %d: bias %d out of range", origin, i, (int)op->bias[k]);
    if (check_requant(op, op->k, origin, i) < 0) return -1;
    return check_clamps(op, op->k, origin, i);
}

/* A pooling window fits the input without padding. */
static int window_fits(const QOp *op) {
    return op->kh >= 1 && op->kw >= 1 && op->stride >= 1 && op->k == op->c &&
           (int64_t)(op->oh - 1) * op->stride + op->kh <= op->h && (int64_t)(op->ow - 1) * op->stride + op->kw <= op->w;
}

/* Type-specific shape and parameter checks of op i. */
static int check_op_kind(const QModel *q, const QOp *op, const char *origin, int i) {
    switch (op->type) {
    case QOP_CONV:
        if (op->kh < 1 || op->kw < 1 || op->stride < 1 || op->pad_t < 0 || op->pad_l < 0 || op->pad_t >= op->kh ||
            op->pad_l >= op->kw || (int64_t)(op->oh - 1) * op->stride - op->pad_t >= op->h ||
            (int64_t)(op->ow - 1) * op->stride - op->pad_l >= op->w)
            return dg_set_error("%s: op %d: convolution window, stride or padding inconsistent with its shapes",
                                origin, i);
        return check_weighted(op, (int64_t)op->c * op->kh * op->kw, origin, i);
    case QOP_DENSE:
        if (op->oh != 1 || op->ow != 1) return dg_set_error("%s: op %d: dense output must be k x 1 x 1", origin, i);
        return check_weighted(op, (int64_t)op->c * op->h * op->w, origin, i);
    case QOP_MAXPOOL:
        if (!window_fits(op)) return dg_set_error("%s: op %d: pooling window does not fit", origin, i);
        if (op->out_zp != op->in_zp) return dg_set_error("%s: op %d: max pooling changes the zero point", origin, i);
        if (q->scales[i] != (op->in0 < 0 ? q->in_scale : q->scales[op->in0]))
            return dg_set_error("%s: op %d: max pooling changes the scale", origin, i);
        return 0;
    case QOP_AVGPOOL:
        if (!window_fits(op)) return dg_set_error("%s: op %d: pooling window does not fit", origin, i);
        if ((int64_t)op->kh * op->kw > QMAX_TAPS) return dg_set_error("%s: op %d: window too large", origin, i);
        if (check_requant(op, 1, origin, i) < 0) return -1;
        return check_clamps(op, 1, origin, i);
    case QOP_LUT:
        if (!op->lut) return dg_set_error("%s: op %d: lookup table missing", origin, i);
        if (op->k != op->c || op->oh != op->h || op->ow != op->w)
            return dg_set_error("%s: op %d: a lookup table keeps the shape", origin, i);
        return 0;
    case QOP_ADD:
        if (op->c1 != op->c || op->k != op->c || op->oh != op->h || op->ow != op->w)
            return dg_set_error("%s: op %d: add needs equal shapes", origin, i);
        if (check_requant(op, 3, origin, i) < 0) return -1;
        return check_clamps(op, 1, origin, i);
    case QOP_CONCAT:
        if (op->c1 < 1 || op->k != op->c + op->c1 || op->oh != op->h || op->ow != op->w)
            return dg_set_error("%s: op %d: concat shapes inconsistent", origin, i);
        if (check_requant(op, 2, origin, i) < 0) return -1;
        return check_clamps(op, 1, origin, i);
    default:
        return dg_set_error("%s: op %d: unknown operator type %d", origin, i, (int)op->type);
    }
}

/* Graph and shape checks common to every op i. */
static int check_op_graph(const QModel *q, const QOp *op, const char *origin, int i) {
    int two = op->type == QOP_ADD || op->type == QOP_CONCAT;
    if (op->out != i) return dg_set_error("%s: op %d: output id %d, expected %d", origin, i, (int)op->out, i);
    if (op->in0 < -1 || op->in0 >= i) return dg_set_error("%s: op %d: input %d is not an earlier tensor", origin, i,
                                                          (int)op->in0);
    if (two ? op->in1 < -1 || op->in1 >= i : op->in1 != -1)
        return dg_set_error("%s: op %d: second input %d invalid", origin, i, (int)op->in1);
    int32_t c, h, w;
    tensor_shape(q, op->in0, &c, &h, &w);
    if (c != op->c || h != op->h || w != op->w)
        return dg_set_error("%s: op %d: input shape %dx%dx%d, tensor %d is %dx%dx%d", origin, i, (int)op->c,
                            (int)op->h, (int)op->w, (int)op->in0, (int)c, (int)h, (int)w);
    if (op->in_zp != tensor_zp(q, op->in0))
        return dg_set_error("%s: op %d: input zero point %d, tensor %d has %d", origin, i, (int)op->in_zp,
                            (int)op->in0, (int)tensor_zp(q, op->in0));
    if (two) {
        int32_t c1, h1, w1;
        tensor_shape(q, op->in1, &c1, &h1, &w1);
        if (c1 != op->c1 || h1 != op->h || w1 != op->w)
            return dg_set_error("%s: op %d: second input's shape differs from tensor %d", origin, i, (int)op->in1);
        if (op->in1_zp != tensor_zp(q, op->in1))
            return dg_set_error("%s: op %d: second input's zero point differs from tensor %d", origin, i,
                                (int)op->in1);
    }
    if (!in_i8(op->in_zp) || !in_i8(op->in1_zp) || !in_i8(op->out_zp))
        return dg_set_error("%s: op %d: zero point outside -128..127", origin, i);
    if (op->k < 1 || op->oh < 1 || op->ow < 1 || (int64_t)op->k * op->oh * op->ow > QMAX_ELEMS)
        return dg_set_error("%s: op %d: output shape %dx%dx%d invalid", origin, i, (int)op->k, (int)op->oh,
                            (int)op->ow);
    if (!(isfinite(q->scales[i]) && q->scales[i] > 0))
        return dg_set_error("%s: op %d: scale %g is not a positive number", origin, i, (double)q->scales[i]);
    return 0;
}

/* Arena layout: the image's int8 input at 0, then every op's output, each
 * 64-byte aligned. */
static void lay_out(QModel *q) {
    size_t off = ((size_t)q->in_c * q->in_h * q->in_w + 63) & ~(size_t)63;
    free(q->act_off);
    q->act_off = dg_xmalloc((size_t)q->n_ops * sizeof *q->act_off);
    for (int i = 0; i < q->n_ops; i++) {
        q->act_off[i] = off;
        off += ((size_t)q->ops[i].k * q->ops[i].oh * q->ops[i].ow + 63) & ~(size_t)63;
    }
    q->act_bytes = off;
}

int qmodel_check(QModel *q, const char *origin) {
    if (q->n_ops < 1 || q->n_ops > QMODEL_MAX_OPS)
        return dg_set_error("%s: %d operators (1..%d expected)", origin, q->n_ops, QMODEL_MAX_OPS);
    if (q->in_c < 1 || q->in_h < 1 || q->in_w < 1 || (int64_t)q->in_c * q->in_h * q->in_w > 4096)
        return dg_set_error("%s: input shape %dx%dx%d invalid", origin, q->in_c, q->in_h, q->in_w);
    if (!(isfinite(q->in_scale) && q->in_scale > 0))
        return dg_set_error("%s: input scale %g is not a positive number", origin, (double)q->in_scale);
    if (!in_i8(q->in_zp)) return dg_set_error("%s: input zero point %d outside -128..127", origin, (int)q->in_zp);
    for (int i = 0; i < q->n_ops; i++) {
        if (check_op_graph(q, &q->ops[i], origin, i) < 0) return -1;
        if (check_op_kind(q, &q->ops[i], origin, i) < 0) return -1;
    }
    const QOp *last = &q->ops[q->n_ops - 1];
    if ((int64_t)last->k * last->oh * last->ow != QMODEL_CLASSES)
        return dg_set_error("%s: the last operator gives %d values, expected %d logits", origin,
                            (int)(last->k * last->oh * last->ow), QMODEL_CLASSES);
    lay_out(q);
    qkernels_prepare(q);
    return 0;
}

/* ==== reference run ======================================================= */

int qmodel_run_ref(const QModel *q, const uint8_t *pixels, int8_t *arena, int8_t logits[QMODEL_CLASSES]) {
    size_t n_in = (size_t)q->in_c * q->in_h * q->in_w;
    for (size_t i = 0; i < n_in; i++) arena[i] = qref_pixel(pixels[i]);
    for (int i = 0; i < q->n_ops; i++) {
        const QOp *op = &q->ops[i];
        const int8_t *x0 = op->in0 < 0 ? arena : arena + q->act_off[op->in0];
        const int8_t *x1 = op->in1 < 0 ? (op->type == QOP_ADD || op->type == QOP_CONCAT ? arena : NULL)
                                       : arena + q->act_off[op->in1];
        DG_ASSERT(qref_op_run(op, x0, x1, arena + q->act_off[i]) == 0);
    }
    memcpy(logits, arena + q->act_off[q->n_ops - 1], QMODEL_CLASSES);
    return qref_argmax(logits, QMODEL_CLASSES);
}

void qmodel_dequant_logits(const QModel *q, const int8_t *logits, int n, float *out) {
    const QOp *last = &q->ops[q->n_ops - 1];
    float s = q->scales[q->n_ops - 1];
    for (size_t i = 0; i < (size_t)n * QMODEL_CLASSES; i++) out[i] = s * (float)((int32_t)logits[i] - last->out_zp);
}
