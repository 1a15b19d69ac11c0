/* quantize.c — post-training int8 quantization of a float network (see
 * quantize.h): calibration (every layer's output range on sample images),
 * then one walk over the layers that turns each group of float layers into
 * one int8 operator: conv/linear [+ batch norm] [+ ReLU [+ batch norm]]
 * [+ dropout/flatten] -> QOP_CONV/QOP_DENSE; max/avg pooling; tanh, ELU
 * and lone ReLUs as tables; add [+ ReLU]; concat.
 * Left out on purpose: the spatial transformer, lone batch norms, pooling
 * with padding (no zoo layer has one) — refused with a message. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "quant/quantize.h"

#define CALIB_BATCH 100
#define SAMPLE_CAP 65536 /* values kept per layer for percentiles */

/* The fixed-point multiplier (see quantize.h). */
int quantize_multiplier(double m, int32_t *mult, int32_t *shift) {
    if (!(m >= 0) || !isfinite(m) || m >= (double)(1 << 30)) return -1;
    if (m == 0) {
        *mult = 0, *shift = 1;
        return 0;
    }
    int e;
    double f = frexp(m, &e); /* m = f * 2^e, f in [0.5, 1) */
    long long q = llround(f * 2147483648.0);
    if (q == 2147483648LL) q = 1LL << 30, e++;
    int s = 31 - e;
    if (s > 62) {
        q = llround((double)q / ldexp(1.0, s - 62));
        s = 62;
    }
    if (s < 1) return -1;
    *mult = (int32_t)q, *shift = s;
    return 0;
}

/* ==== calibration ========================================================= */

typedef struct {
    double lo, hi;   /* observed range (min/max) */
    float *sample;   /* SAMPLE_CAP values for percentiles (NULL: min/max) */
    size_t n_sample;
} Range;

/* Record every layer's output range over the n images. */
static void calibrate(Model *m, const uint8_t *pixels, int n, Range *r, int want_samples) {
    const size_t img = shape_size(m->input_shape);
    int n_batches = (n + CALIB_BATCH - 1) / CALIB_BATCH;
    for (int i = 0; i < m->n_layers; i++) {
        r[i].lo = INFINITY, r[i].hi = -INFINITY;
        if (want_samples) r[i].sample = dg_xmalloc(SAMPLE_CAP * sizeof(float));
    }
    for (int s = 0; s < n; s += CALIB_BATCH) {
        int b = n - s < CALIB_BATCH ? n - s : CALIB_BATCH;
        model_load_pixels(m, pixels + (size_t)s * img, b);
        model_forward(m, b, 0);
        for (int i = 0; i < m->n_layers; i++) {
            const Layer *l = &m->layers[i];
            size_t count = (size_t)b * shape_size(l->out);
            for (size_t j = 0; j < count; j++) {
                double v = l->y[j];
                if (v < r[i].lo) r[i].lo = v;
                if (v > r[i].hi) r[i].hi = v;
            }
            if (!r[i].sample) continue;
            size_t step = (count * (size_t)n_batches + SAMPLE_CAP - 1) / SAMPLE_CAP;
            if (step < 1) step = 1;
            for (size_t j = 0; j < count && r[i].n_sample < SAMPLE_CAP; j += step) r[i].sample[r[i].n_sample++] = l->y[j];
        }
    }
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Narrow r to its [100-p, p] percentiles when samples were kept. */
static void apply_percentile(Range *r, double p) {
    if (!r->sample || r->n_sample < 100) return;
    qsort(r->sample, r->n_sample, sizeof(float), cmp_float);
    size_t hi = (size_t)floor(p / 100.0 * (double)(r->n_sample - 1));
    size_t lo = r->n_sample - 1 - hi;
    r->lo = r->sample[lo], r->hi = r->sample[hi];
}

/* Scale and zero point of a real range (widened to hold 0 exactly). */
static void range_params(double lo, double hi, float *scale, int32_t *zp) {
    if (lo > 0) lo = 0;
    if (hi < 0) hi = 0;
    if (hi - lo < 1e-6) hi = lo + 1e-6;
    double s = (hi - lo) / 255.0;
    long z = lround(-128.0 - lo / s);
    if (z < -128) z = -128;
    if (z > 127) z = 127;
    *scale = (float)s, *zp = (int32_t)z;
}

/* q = clamp(round(v / scale) + zp) */
static int8_t quantize_value(double v, float scale, int32_t zp) {
    double q = round(v / scale) + zp;
    return (int8_t)(q < -128 ? -128 : q > 127 ? 127 : q);
}

/* ==== building operators ================================================== */

/* The walk's state: which int8 tensor holds each float layer's output. */
typedef struct {
    Model *m;
    QModel *q;
    Range *range;
    int *tensor;   /* (n_layers) int8 tensor id of layer i's output (-1: image), -2: none */
    int (*pads)[4];/* (n_layers) zeropad layers: pending padding for the next conv */
    int *readers;  /* (n_layers) how many layers read layer i's output */
    const char *origin;
} Walk;

static const char *kind_name(const Layer *l) { return l->kind->name; }

static int refuse(const Walk *w, const Layer *l, const char *why) {
    return dg_set_error("%s: layer %d (%s, spec line %d): %s", w->origin, l->index, kind_name(l), l->line, why);
}

/* Scale and zero point of tensor t. */
static void tensor_params(const QModel *q, int t, float *scale, int32_t *zp) {
    if (t < 0) {
        *scale = q->in_scale, *zp = q->in_zp;
    } else {
        *scale = q->scales[t], *zp = q->ops[t].out_zp;
    }
}

/* A new op reading tensor in0 (shape from that tensor); returns it. */
static QOp *new_op(Walk *w, int type, int in0, const char *what) {
    QModel *q = w->q;
    DG_ASSERT(q->n_ops < QMODEL_MAX_OPS);
    int i = q->n_ops++;
    QOp *op = &q->ops[i];
    memset(op, 0, sizeof *op);
    op->type = type, op->in0 = in0, op->in1 = -1, op->out = i;
    if (in0 < 0) {
        op->c = q->in_c, op->h = q->in_h, op->w = q->in_w;
    } else {
        op->c = q->ops[in0].k, op->h = q->ops[in0].oh, op->w = q->ops[in0].ow;
    }
    float s;
    tensor_params(q, in0, &s, &op->in_zp);
    snprintf(q->what[i], sizeof q->what[i], "%s", what);
    return op;
}

/* Int8 tensor of layer l's input k; -1 with a message if it has none
 * (or is padded, unless pads is given to take the padding). */
static int input_tensor(const Walk *w, const Layer *l, int k, int *pads) {
    int src = l->input_ids[k];
    if (src == LAYER_INPUT_IMAGE) return -1;
    if (w->tensor[src] == -2) return refuse(w, l, "its input has no int8 tensor") - 1;
    const int *p = w->pads[src];
    if (p[0] || p[1] || p[2] || p[3]) {
        if (!pads) return refuse(w, l, "zero padding must be followed by a convolution") - 1;
        memcpy(pads, p, 4 * sizeof(int));
    }
    return w->tensor[src];
}

/* The layers a conv/linear at index i absorbs (see the file comment):
 * *end = last one; bn1/relu/bn2 = their indices or -1. */
static void group_extent(const Walk *w, int i, int *end, int *bn1, int *relu, int *bn2) {
    const Model *m = w->m;
    int j = i;
    *bn1 = *relu = *bn2 = -1;
    while (j + 1 < m->n_layers && w->readers[j] == 1) {
        const Layer *nx = &m->layers[j + 1];
        if (nx->n_inputs != 1 || nx->input_ids[0] != j) break;
        if (nx->type == LAYER_BATCHNORM && *bn1 < 0 && *relu < 0)
            *bn1 = j + 1;
        else if (nx->type == LAYER_RELU && *relu < 0)
            *relu = j + 1;
        else if (nx->type == LAYER_BATCHNORM && *relu >= 0 && *bn2 < 0)
            *bn2 = j + 1;
        else if (nx->type != LAYER_DROPOUT && nx->type != LAYER_DROPOUT2D && nx->type != LAYER_FLATTEN)
            break;
        j++;
    }
    *end = j;
}

/* Batch norm layer b as y = a * x + c per channel. */
static void bn_affine(const Layer *b, int ch, double *a, double *c) {
    int C = b->in.c;
    double g = b->param[ch], beta = b->param[C + ch], mean = b->buffer[ch], var = b->buffer[C + ch];
    *a = g / sqrt(var + b->eps);
    *c = beta - *a * mean;
}

/* "3 conv2d+4 batchnorm+5 relu" for layers i..end. */
static void describe(const Model *m, int i, int end, char *buf, size_t len) {
    size_t o = 0;
    buf[0] = 0;
    for (int j = i; j <= end && o < len; j++)
        o += (size_t)snprintf(buf + o, len - o, "%s%d %s", j > i ? "+" : "", j, m->layers[j].kind->name);
}

/* Per-channel weights, bias, multiplier, clamp of a conv/dense group. */
static int fill_weighted(Walk *w, QOp *op, int li, int bn1, int relu, int bn2, float out_scale) {
    const Layer *l = &w->m->layers[li];
    const int K = op->k;
    const size_t T = op->type == QOP_CONV ? (size_t)op->c * op->kh * op->kw : (size_t)op->c * op->h * op->w;
    float in_scale;
    int32_t in_zp;
    tensor_params(w->q, op->in0, &in_scale, &in_zp);
    int8_t *wq = dg_xmalloc(K * T), *lo = dg_xmalloc(K), *hi = dg_xmalloc(K);
    int32_t *bq = dg_xmalloc(K * 4), *mult = dg_xmalloc(K * 4), *shift = dg_xmalloc(K * 4);
    op->weight = wq, op->bias = bq, op->mult = mult, op->shift = shift, op->act_min = lo, op->act_max = hi;
    double *wr = dg_xmalloc(T * sizeof(double));
    for (int k = 0; k < K; k++) {
        const float *wk = l->param + (size_t)k * T;
        double b = l->bias ? l->param[(size_t)K * T + k] : 0.0, a1 = 1, c1 = 0, a2 = 1, c2 = 0;
        if (bn1 >= 0) bn_affine(&w->m->layers[bn1], k, &a1, &c1);
        if (bn2 >= 0) bn_affine(&w->m->layers[bn2], k, &a2, &c2);
        /* z = a1 (W x + b) + c1; relu; y = a2 relu(z) + c2 = clamp(a2 z + c2) */
        double amax = 0;
        for (size_t t = 0; t < T; t++) {
            wr[t] = a2 * a1 * wk[t];
            if (fabs(wr[t]) > amax) amax = fabs(wr[t]);
        }
        double bias = a2 * (a1 * b + c1) + c2;
        double ws = amax > 0 ? amax / 127.0 : 1.0;
        for (size_t t = 0; t < T; t++) wq[(size_t)k * T + t] = (int8_t)lround(wr[t] / ws);
        double bsc = (double)in_scale * ws, bv = round(bias / bsc);
        if (fabs(bv) > (double)(1 << 29)) bv = bv > 0 ? (1 << 29) : -(1 << 29);
        bq[k] = (int32_t)bv;
        if (quantize_multiplier(bsc / out_scale, &mult[k], &shift[k]) < 0) {
            free(wr);
            return refuse(w, l, "requantization multiplier out of range");
        }
        lo[k] = -128, hi[k] = 127;
        if (relu >= 0) {
            int8_t bound = quantize_value(bn2 >= 0 ? c2 : 0.0, out_scale, op->out_zp);
            if (a2 >= 0) lo[k] = bound;
            else hi[k] = bound;
            if (a2 == 0) lo[k] = -128, hi[k] = 127; /* constant channel: no clamp needed */
        }
    }
    free(wr);
    return 0;
}

/* conv2d / linear at i with everything it absorbs; returns the last layer. */
static int add_weighted(Walk *w, int i) {
    const Layer *l = &w->m->layers[i];
    int end, bn1, relu, bn2, pads[4] = {0, 0, 0, 0};
    group_extent(w, i, &end, &bn1, &relu, &bn2);
    int in = input_tensor(w, l, 0, l->type == LAYER_CONV2D ? pads : NULL);
    if (in < -1) return -1;
    char what[64];
    describe(w->m, i, end, what, sizeof what);
    QOp *op = new_op(w, l->type == LAYER_CONV2D ? QOP_CONV : QOP_DENSE, in, what);
    if (l->type == LAYER_CONV2D) {
        op->k = l->out.c, op->oh = l->out.h, op->ow = l->out.w;
        op->kh = op->kw = l->kernel, op->stride = l->stride;
        op->pad_t = l->pad + pads[0], op->pad_l = l->pad + pads[2];
        if (op->pad_t >= op->kh || op->pad_l >= op->kw) return refuse(w, l, "padding as large as the kernel");
    } else {
        op->k = l->out_features, op->oh = op->ow = 1;
    }
    int oi = w->q->n_ops - 1;
    range_params(w->range[end].lo, w->range[end].hi, &w->q->scales[oi], &op->out_zp);
    if (fill_weighted(w, op, i, bn1, relu, bn2, w->q->scales[oi]) < 0) return -1;
    for (int j = i; j <= end; j++) w->tensor[j] = -2;
    w->tensor[end] = oi;
    return end;
}

/* A table op for an element-wise activation layer l on tensor in. */
static int add_table(Walk *w, const Layer *l, int in) {
    char what[64];
    describe(w->m, l->index, l->index, what, sizeof what);
    QOp *op = new_op(w, QOP_LUT, in, what);
    int oi = w->q->n_ops - 1;
    op->k = op->c, op->oh = op->h, op->ow = op->w;
    float s_in;
    int32_t zp_in;
    tensor_params(w->q, in, &s_in, &zp_in);
    if (l->type == LAYER_RELU) { /* exact: same scale, clamp at the zero point */
        w->q->scales[oi] = s_in, op->out_zp = zp_in;
    } else {
        range_params(w->range[l->index].lo, w->range[l->index].hi, &w->q->scales[oi], &op->out_zp);
    }
    int8_t *lut = dg_xmalloc(256);
    for (int v = -128; v < 128; v++) {
        double x = (double)s_in * (v - zp_in), y;
        if (l->type == LAYER_RELU)
            lut[v + 128] = (int8_t)(v > zp_in ? v : zp_in);
        else {
            y = l->type == LAYER_TANH ? tanh(x) : x > 0 ? x : l->alpha * expm1(x);
            lut[v + 128] = quantize_value(y, w->q->scales[oi], op->out_zp);
        }
    }
    op->lut = lut;
    w->tensor[l->index] = oi;
    return 0;
}

/* Scalar requantization arrays (n entries) and one clamp. */
static void scalar_arrays(QOp *op, int n, int8_t lo, int8_t hi) {
    int32_t *m = dg_xcalloc((size_t)n, 4), *s = dg_xcalloc((size_t)n, 4);
    int8_t *a = dg_xmalloc(1), *b = dg_xmalloc(1);
    a[0] = lo, b[0] = hi;
    op->mult = m, op->shift = s, op->act_min = a, op->act_max = b;
}

/* max/avg pooling (and global average pooling) on tensor in. */
static int add_pool(Walk *w, const Layer *l, int in) {
    char what[64];
    describe(w->m, l->index, l->index, what, sizeof what);
    int global = l->type == LAYER_GLOBAL_AVGPOOL;
    QOp *op = new_op(w, l->type == LAYER_MAXPOOL ? QOP_MAXPOOL : QOP_AVGPOOL, in, what);
    int oi = w->q->n_ops - 1;
    op->k = op->c, op->oh = l->out.h, op->ow = l->out.w;
    op->kh = global ? op->h : l->kernel, op->kw = global ? op->w : l->kernel, op->stride = global ? 1 : l->stride;
    float s;
    tensor_params(w->q, in, &s, &op->out_zp);
    w->q->scales[oi] = s; /* pooling keeps the scale: max exactly, mean as 1/n */
    if (op->type == QOP_AVGPOOL) {
        scalar_arrays(op, 1, -128, 127);
        if (quantize_multiplier(1.0 / (op->kh * op->kw), (int32_t *)op->mult, (int32_t *)op->shift) < 0)
            return refuse(w, l, "window too large");
    }
    w->tensor[l->index] = oi;
    return 0;
}

/* add [+ relu] or concat of two tensors; returns the last layer used. */
static int add_merge(Walk *w, int i) {
    const Layer *l = &w->m->layers[i];
    if (l->n_inputs != 2) return refuse(w, l, "only two inputs can be merged in int8");
    int a = input_tensor(w, l, 0, NULL), b = a < -1 ? -2 : input_tensor(w, l, 1, NULL);
    if (a < -1 || b < -1) return -1;
    int end = i;
    if (l->type == LAYER_ADD && i + 1 < w->m->n_layers && w->readers[i] == 1 &&
        w->m->layers[i + 1].type == LAYER_RELU && w->m->layers[i + 1].input_ids[0] == i)
        end = i + 1;
    char what[64];
    describe(w->m, i, end, what, sizeof what);
    QOp *op = new_op(w, l->type == LAYER_ADD ? QOP_ADD : QOP_CONCAT, a, what);
    int oi = w->q->n_ops - 1;
    QModel *q = w->q;
    float sa, sb, so;
    int32_t zb;
    tensor_params(q, a, &sa, &op->in_zp);
    tensor_params(q, b, &sb, &zb);
    op->in1 = b, op->in1_zp = zb;
    op->c1 = b < 0 ? q->in_c : q->ops[b].k;
    op->k = l->out.c, op->oh = op->h, op->ow = op->w;
    range_params(w->range[end].lo, w->range[end].hi, &q->scales[oi], &op->out_zp);
    so = q->scales[oi];
    int8_t lo = end > i ? (int8_t)op->out_zp : -128;
    scalar_arrays(op, op->type == QOP_ADD ? 3 : 2, lo, 127);
    int32_t *m = (int32_t *)op->mult, *s = (int32_t *)op->shift;
    int bad;
    if (op->type == QOP_ADD) {
        double twice = 2.0 * (sa > sb ? sa : sb);
        bad = quantize_multiplier(sa / twice, &m[0], &s[0]) < 0 || quantize_multiplier(sb / twice, &m[1], &s[1]) < 0 ||
              quantize_multiplier(twice / ((double)(1 << QREF_ADD_LEFT_SHIFT) * so), &m[2], &s[2]) < 0;
    } else {
        bad = quantize_multiplier(sa / so, &m[0], &s[0]) < 0 || quantize_multiplier(sb / so, &m[1], &s[1]) < 0;
    }
    if (bad) return refuse(w, l, "requantization multiplier out of range");
    w->tensor[i] = -2;
    w->tensor[end] = oi;
    return end;
}

/* Layer i (not absorbed by an earlier group): its op(s); returns the last
 * layer handled, or -1. */
static int add_layer(Walk *w, int i) {
    const Layer *l = &w->m->layers[i];
    int in;
    switch (l->type) {
    case LAYER_CONV2D:
    case LAYER_LINEAR: return add_weighted(w, i);
    case LAYER_ADD:
    case LAYER_CONCAT: return add_merge(w, i);
    case LAYER_DROPOUT:
    case LAYER_DROPOUT2D:
    case LAYER_FLATTEN:
        if ((in = input_tensor(w, l, 0, NULL)) < -1) return -1;
        w->tensor[i] = in;
        return i;
    case LAYER_ZEROPAD:
        if ((in = input_tensor(w, l, 0, NULL)) < -1) return -1;
        w->tensor[i] = in;
        memcpy(w->pads[i], l->pads, sizeof l->pads);
        return i;
    case LAYER_MAXPOOL:
    case LAYER_AVGPOOL:
    case LAYER_GLOBAL_AVGPOOL:
        if ((in = input_tensor(w, l, 0, NULL)) < -1) return -1;
        return add_pool(w, l, in) < 0 ? -1 : i;
    case LAYER_RELU:
    case LAYER_TANH:
    case LAYER_ELU:
        if ((in = input_tensor(w, l, 0, NULL)) < -1) return -1;
        return add_table(w, l, in) < 0 ? -1 : i;
    case LAYER_BATCHNORM:
        return refuse(w, l, "a batch norm that follows no convolution or linear layer cannot be folded");
    case LAYER_STN:
        return refuse(w, l, "the spatial transformer's grid sampling has no int8 form");
    default:
        return refuse(w, l, "no int8 form");
    }
}

/* Walk the layers and emit the ops. */
static int build_ops(Walk *w) {
    const Model *m = w->m;
    for (int i = 0; i < m->n_layers; i++)
        for (int k = 0; k < m->layers[i].n_inputs; k++)
            if (m->layers[i].input_ids[k] >= 0) w->readers[m->layers[i].input_ids[k]]++;
    for (int i = 0; i < m->n_layers; i++) {
        if (m->layers[i].type == LAYER_STN) return refuse(w, &m->layers[i], "the spatial transformer's grid "
                                                                            "sampling has no int8 form");
    }
    for (int i = 0; i < m->n_layers;) {
        int end = add_layer(w, i);
        if (end < 0) return -1;
        i = end + 1;
    }
    int last = w->tensor[m->n_layers - 1];
    if (last != w->q->n_ops - 1) return dg_set_error("%s: the last layer does not end the int8 model", w->origin);
    return 0;
}

int quantize_model(QModel *q, Model *m, const uint8_t *pixels, int n, const QuantizeOptions *opt,
                   const char *origin) {
    memset(q, 0, sizeof *q);
    if (n < 1) return dg_set_error("%s: no calibration images", origin);
    model_keep_outputs(m);
    model_set_batch(m, CALIB_BATCH, 0, 0);
    Range *range = dg_xcalloc((size_t)m->n_layers, sizeof *range);
    int want_samples = opt && opt->percentile > 0;
    calibrate(m, pixels, n, range, want_samples);
    for (int i = 0; want_samples && i < m->n_layers; i++) apply_percentile(&range[i], opt->percentile);
    q->in_c = m->input_shape.c, q->in_h = m->input_shape.h, q->in_w = m->input_shape.w;
    q->in_scale = (float)(1.0 / (255.0 * m->norm_std));
    long zp = lround(255.0 * m->norm_mean) - 128;
    q->in_zp = (int32_t)(zp < -128 ? -128 : zp > 127 ? 127 : zp);
    snprintf(q->name, sizeof q->name, "%s", m->spec_name);
    q->spec_text = m->spec_text ? strdup(m->spec_text) : NULL;
    q->ops = dg_xcalloc(QMODEL_MAX_OPS, sizeof *q->ops);
    q->scales = dg_xcalloc(QMODEL_MAX_OPS, sizeof *q->scales);
    q->what = dg_xcalloc(QMODEL_MAX_OPS, sizeof *q->what);
    Walk w = {m, q, range, dg_xmalloc((size_t)m->n_layers * sizeof(int)),
              dg_xcalloc((size_t)m->n_layers, sizeof(int[4])), dg_xcalloc((size_t)m->n_layers, sizeof(int)),
              origin};
    for (int i = 0; i < m->n_layers; i++) w.tensor[i] = -2;
    int rc = build_ops(&w);
    if (rc == 0) rc = qmodel_check(q, origin);
    for (int i = 0; i < m->n_layers; i++) free(range[i].sample);
    free(range);
    free(w.tensor);
    free(w.pads);
    free(w.readers);
    if (rc < 0) qmodel_free(q);
    return rc;
}
