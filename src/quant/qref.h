/* qref.h — the one reference definition of digits' int8 arithmetic: the
 * fixed-point requantization and every int8 operator of a quantized model
 * (convolution, dense, max/average pooling, lookup-table activations,
 * residual add and channel concatenation with rescaling), as static inline
 * C99 functions over one operator description (QOp).
 *
 * Freestanding on purpose: it includes only <stdint.h> and <stddef.h>, uses
 * no floating point, no libm, no malloc and nothing of libdigits, so
 * `digits export --format c` copies this file verbatim into the code it
 * generates for a microcontroller (checked with arm-none-eabi-gcc -std=c99
 * -ffreestanding). The library's fast kernels (src/quant/qkernels.c) must
 * give bit-identical results; tests/test_quant.c compares them.
 *
 * The scheme is TensorFlow Lite's int8 one (as CMSIS-NN implements it):
 * real = scale * (q - zero_point); weights int8, symmetric (zero point 0),
 * one scale per output channel; activations int8 with one scale and zero
 * point per tensor; biases int32 with scale input_scale * weight_scale[k].
 * An accumulator acc (int32) becomes an output with
 *     out = clamp(zp_out + round(acc * mult / 2^shift), lo, hi)
 * where mult / 2^shift approximates input_scale * weight_scale / out_scale,
 * mult is a 31-bit integer (normally in [2^30, 2^31)) and 1 <= shift <= 62
 * (TFLite writes the same multiplier with shift' = 31 - shift). Rounding is
 * done once, on the exact 64-bit product, half away from zero (CMSIS-NN's
 * single-rounding variant rounds half up; TFLite's default double rounding
 * rounds twice): the result is exactly round-half-away(acc * mult / 2^shift).
 * The clamp [lo, hi] is a fused ReLU (lo = the zero point of real 0) or a
 * folded batch norm's bound, per output channel.
 *
 * Layout: one image at a time, activations C x H x W (channel-major, as the
 * float path's NCHW with N = 1); conv weights K x C x KH x KW; dense weights
 * K x D with D = C*H*W in that order (a flatten is free).
 *
 * Left out on purpose: grouped/depthwise convolution (no zoo model has one),
 * padding in pooling layers, batches (a caller loops over images), and
 * anything float (scales live only in the host's model file).
 */
#ifndef DG_QREF_H
#define DG_QREF_H

#include <stddef.h>
#include <stdint.h>

/* ==== operator description ================================================ */

/* Operator kinds (QOp.type). */
enum {
    QOP_CONV = 1,    /* 2-D convolution, per-channel weights, fused clamp */
    QOP_DENSE = 2,   /* fully connected over the whole C*H*W input */
    QOP_MAXPOOL = 3, /* max over kh x kw windows (same scale in and out) */
    QOP_AVGPOOL = 4, /* mean over kh x kw windows, requantized */
    QOP_LUT = 5,     /* element-wise table: tanh, ELU, ReLU, ... (256 entries) */
    QOP_ADD = 6,     /* element-wise sum of two tensors, each rescaled */
    QOP_CONCAT = 7   /* channel concatenation of two tensors, each rescaled */
};

/* One int8 operator. Shapes: input 0 is c x h x w, input 1 (add, concat)
 * c1 x h x w, the output k x oh x ow. Arrays are read-only and not owned. */
typedef struct QOp {
    int32_t type;                  /* QOP_* */
    int32_t in0, in1;              /* graph: input tensor ids (-1: the image; in1 -1 if unused) */
    int32_t out;                   /* graph: output tensor id (the op's index in its model) */
    int32_t c, h, w;               /* input 0 shape */
    int32_t c1;                    /* input 1 channels (add: == c) */
    int32_t k, oh, ow;             /* output shape */
    int32_t kh, kw, stride;        /* conv and pools: window and stride */
    int32_t pad_t, pad_l;          /* conv: zero padding before rows / columns (after: implied by oh, ow) */
    int32_t in_zp, in1_zp, out_zp; /* zero points (in1: add and concat's second input) */
    const int8_t *weight;          /* conv (k, c, kh, kw); dense (k, c*h*w) */
    const int32_t *bias;           /* conv, dense: (k) */
    const int32_t *mult;           /* conv, dense: (k); avgpool: [0]; add: [in0, in1, out]; concat: [in0, in1] */
    const int32_t *shift;          /* same shape as mult */
    const int8_t *act_min;         /* conv, dense: (k) per-channel clamp; add, avgpool, concat: [0] */
    const int8_t *act_max;         /* same shape as act_min */
    const int8_t *lut;             /* LUT: 256 entries, out = lut[q + 128] */
} QOp;

/* Left shift applied to add's inputs before their rescale (TFLite's 20):
 * keeps precision when both are brought to a common scale. */
#define QREF_ADD_LEFT_SHIFT 20

/* ==== requantization ====================================================== */

/* round-half-away-from-zero(x * mult / 2^shift), saturated to int32.
 * mult >= 0, 1 <= shift <= 62 (a caller's invariant; the model loader
 * checks it). |x * mult| < 2^62, so the rounding addend cannot overflow. */
static inline int32_t qref_mulshift(int32_t x, int32_t mult, int32_t shift) {
    int64_t p = (int64_t)x * (int64_t)mult;
    int neg = p < 0;
    uint64_t a = neg ? (uint64_t)0 - (uint64_t)p : (uint64_t)p;
    a = (a + ((uint64_t)1 << (shift - 1))) >> shift;
    if (a > (uint64_t)INT32_MAX + (uint64_t)neg) a = (uint64_t)INT32_MAX + (uint64_t)neg;
    return neg ? (int32_t)(0 - (int64_t)a) : (int32_t)a;
}

/* The int8 output of an int32 accumulator: zp + mulshift, clamped to
 * [lo, hi] (within [-128, 127]). */
static inline int8_t qref_requant(int32_t acc, int32_t mult, int32_t shift, int32_t zp, int32_t lo, int32_t hi) {
    int64_t v = (int64_t)qref_mulshift(acc, mult, shift) + zp;
    if (v < lo) v = lo;
    if (v > hi) v = hi;
    return (int8_t)v;
}

/* ==== operators =========================================================== */

/* Convolution: y[k][oy][ox] = clamp(requant(bias[k] + sum over (c, i, j) of
 * w[k][c][i][j] * (x[c][oy*stride - pad_t + i][ox*stride - pad_l + j] -
 * in_zp))); taps outside the input are padding (value in_zp: real 0, so
 * they add nothing). */
static inline void qref_conv(const QOp *op, const int8_t *x, int8_t *y) {
    for (int32_t k = 0; k < op->k; k++) {
        const int8_t *wk = op->weight + (size_t)k * op->c * op->kh * op->kw;
        for (int32_t oy = 0; oy < op->oh; oy++)
            for (int32_t ox = 0; ox < op->ow; ox++) {
                int32_t acc = op->bias[k];
                for (int32_t c = 0; c < op->c; c++)
                    for (int32_t i = 0; i < op->kh; i++) {
                        int32_t iy = oy * op->stride - op->pad_t + i;
                        if (iy < 0 || iy >= op->h) continue;
                        for (int32_t j = 0; j < op->kw; j++) {
                            int32_t ix = ox * op->stride - op->pad_l + j;
                            if (ix < 0 || ix >= op->w) continue;
                            acc += (int32_t)wk[(c * op->kh + i) * op->kw + j] *
                                   ((int32_t)x[((size_t)c * op->h + iy) * op->w + ix] - op->in_zp);
                        }
                    }
                y[((size_t)k * op->oh + oy) * op->ow + ox] =
                    qref_requant(acc, op->mult[k], op->shift[k], op->out_zp, op->act_min[k], op->act_max[k]);
            }
    }
}

/* Dense: y[k] = clamp(requant(bias[k] + sum_d w[k][d] * (x[d] - in_zp))),
 * d over the whole c*h*w input. */
static inline void qref_dense(const QOp *op, const int8_t *x, int8_t *y) {
    size_t d_in = (size_t)op->c * op->h * op->w;
    for (int32_t k = 0; k < op->k; k++) {
        const int8_t *wk = op->weight + (size_t)k * d_in;
        int32_t acc = op->bias[k];
        for (size_t d = 0; d < d_in; d++) acc += (int32_t)wk[d] * ((int32_t)x[d] - op->in_zp);
        y[k] = qref_requant(acc, op->mult[k], op->shift[k], op->out_zp, op->act_min[k], op->act_max[k]);
    }
}

/* Max pooling over kh x kw windows, no padding; the output keeps the
 * input's scale and zero point (max commutes with the affine map). */
static inline void qref_maxpool(const QOp *op, const int8_t *x, int8_t *y) {
    for (int32_t c = 0; c < op->c; c++)
        for (int32_t oy = 0; oy < op->oh; oy++)
            for (int32_t ox = 0; ox < op->ow; ox++) {
                int32_t m = -128;
                for (int32_t i = 0; i < op->kh; i++)
                    for (int32_t j = 0; j < op->kw; j++) {
                        int32_t v = x[((size_t)c * op->h + oy * op->stride + i) * op->w + ox * op->stride + j];
                        if (v > m) m = v;
                    }
                y[((size_t)c * op->oh + oy) * op->ow + ox] = (int8_t)m;
            }
}

/* Average pooling over kh x kw windows, no padding: the window's sum of
 * (x - in_zp) requantized with mult[0] / 2^shift[0] (which holds the
 * 1 / (kh*kw) and the change of scale). */
static inline void qref_avgpool(const QOp *op, const int8_t *x, int8_t *y) {
    for (int32_t c = 0; c < op->c; c++)
        for (int32_t oy = 0; oy < op->oh; oy++)
            for (int32_t ox = 0; ox < op->ow; ox++) {
                int32_t acc = 0;
                for (int32_t i = 0; i < op->kh; i++)
                    for (int32_t j = 0; j < op->kw; j++)
                        acc += (int32_t)x[((size_t)c * op->h + oy * op->stride + i) * op->w + ox * op->stride + j] -
                               op->in_zp;
                y[((size_t)c * op->oh + oy) * op->ow + ox] =
                    qref_requant(acc, op->mult[0], op->shift[0], op->out_zp, op->act_min[0], op->act_max[0]);
            }
}

/* Element-wise table lookup: y = lut[x + 128] (n = c*h*w elements). */
static inline void qref_lut(const QOp *op, const int8_t *x, int8_t *y) {
    size_t n = (size_t)op->c * op->h * op->w;
    for (size_t i = 0; i < n; i++) y[i] = op->lut[(int32_t)x[i] + 128];
}

/* Element-wise add: each input, minus its zero point and shifted left by
 * QREF_ADD_LEFT_SHIFT, is rescaled to a common scale (mult/shift [0] and
 * [1]); the sum is requantized to the output (mult/shift [2]) and clamped
 * to [act_min[0], act_max[0]] (a fused ReLU). */
static inline void qref_add(const QOp *op, const int8_t *a, const int8_t *b, int8_t *y) {
    size_t n = (size_t)op->c * op->h * op->w;
    for (size_t i = 0; i < n; i++) {
        int32_t va = ((int32_t)a[i] - op->in_zp) * (1 << QREF_ADD_LEFT_SHIFT);
        int32_t vb = ((int32_t)b[i] - op->in1_zp) * (1 << QREF_ADD_LEFT_SHIFT);
        int32_t sa = qref_mulshift(va, op->mult[0], op->shift[0]);
        int32_t sb = qref_mulshift(vb, op->mult[1], op->shift[1]);
        y[i] = qref_requant(sa + sb, op->mult[2], op->shift[2], op->out_zp, op->act_min[0], op->act_max[0]);
    }
}

/* Channel concatenation: input 0's c channels, then input 1's c1, each
 * requantized to the output's scale (mult/shift [0] and [1]). */
static inline void qref_concat(const QOp *op, const int8_t *a, const int8_t *b, int8_t *y) {
    size_t plane = (size_t)op->h * op->w, na = (size_t)op->c * plane, nb = (size_t)op->c1 * plane;
    for (size_t i = 0; i < na; i++)
        y[i] = qref_requant((int32_t)a[i] - op->in_zp, op->mult[0], op->shift[0], op->out_zp, op->act_min[0],
                            op->act_max[0]);
    for (size_t i = 0; i < nb; i++)
        y[na + i] = qref_requant((int32_t)b[i] - op->in1_zp, op->mult[1], op->shift[1], op->out_zp,
                                 op->act_min[0], op->act_max[0]);
}

/* Run one operator: x0, x1 its inputs (x1 NULL unless add/concat), y its
 * output (k*oh*ow bytes). Returns 0, or -1 for an unknown type. */
static inline int qref_op_run(const QOp *op, const int8_t *x0, const int8_t *x1, int8_t *y) {
    switch (op->type) {
    case QOP_CONV: qref_conv(op, x0, y); return 0;
    case QOP_DENSE: qref_dense(op, x0, y); return 0;
    case QOP_MAXPOOL: qref_maxpool(op, x0, y); return 0;
    case QOP_AVGPOOL: qref_avgpool(op, x0, y); return 0;
    case QOP_LUT: qref_lut(op, x0, y); return 0;
    case QOP_ADD: qref_add(op, x0, x1, y); return 0;
    case QOP_CONCAT: qref_concat(op, x0, x1, y); return 0;
    default: return -1;
    }
}

/* The int8 input of a 0..255 pixel: p - 128 (the model's input scale and
 * zero point fold the normalisation into the first layer). */
static inline int8_t qref_pixel(uint8_t p) { return (int8_t)((int32_t)p - 128); }

/* Index of the largest of n int8 logits (the first on ties). */
static inline int qref_argmax(const int8_t *v, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

#endif
