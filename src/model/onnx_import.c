/* onnx_import.c — an ONNX image classifier as a digits network: the graph
 * becomes a spec (one line per layer, every line named "lN" and reading its
 * inputs by name) and the initializers its weights.
 *
 * Two ways in:
 *   - a file digits exported (metadata digits.spec): the stored spec is
 *     rebuilt and its weights taken by name ("m0/<layer>.<tensor>"), with the
 *     stored normalisation — every layer, the spatial transformer included,
 *     so a round trip predicts identically;
 *   - anything else, e.g. torch.onnx.export of a PyTorch nn.Module in eval
 *     mode, node by node:
 *       Conv (square kernel, equal strides and pads, group 1, dilation 1)
 *       Gemm (alpha = beta = 1, transA = 0), BatchNormalization, Relu, Tanh,
 *       Elu, MaxPool / AveragePool (no padding, floor), GlobalAveragePool,
 *       ReduceMean over H and W, Flatten (axis 1), Reshape to (N, -1) — its
 *       shape given as a constant or computed by Shape/Gather/Unsqueeze/
 *       Concat as x.view(x.size(0), -1) exports it —, Add and Concat (axis 1)
 *       of two branches, Dropout, Identity, Pad by zeros (a zeropad layer), and a final Softmax
 *       or LogSoftmax (nothing: digits applies its own softmax, and the
 *       softmax of log-probabilities is the same distribution).
 *     Mul/Add/Sub/Div of the graph input by a scalar (normalisation in the
 *     graph, as digits' own export has it) become the stored normalisation.
 *     Any other op: "FILE: node 'NAME' (op Resize) is not supported".
 * The input must be one float (N, 1, 28, 28) tensor and the first graph
 * output the 10 class scores. The caller's input convention (scale, mean,
 * std) becomes the model's stored normalisation.
 * Left out: affine_grid + grid_sample graphs other than digits' own (torch
 * 1.13 cannot export affine_grid), grouped or dilated convolutions,
 * padded pools, per-channel normalisation inside the graph.
 */
#include "model/onnx_internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"

#define IMPORT_MAX_NODES 4096
#define SHAPE_BATCH INT64_MIN /* the batch dimension inside a computed shape */

/* ==== values and the import state ========================================= */

typedef enum { V_DATA, V_CONST, V_SHAPE } ValKind;

/* One ONNX value as the import sees it. */
typedef struct {
    const char *name;             /* ONNX name (borrowed from the model) */
    ValKind kind;
    int layer;                    /* V_DATA: digits layer index, -1 = the model input */
    double a, b;                  /* the model input: graph input * a + b (scalar Mul/Add/Sub/Div) */
    Shape shape;                  /* V_DATA: per-sample (C, H, W); flat vectors are (D, 1, 1) */
    int rank;                     /* V_DATA: 4 (N,C,H,W) or 2 (N,D) */
    const Onnx__TensorProto *t;   /* V_CONST */
    int64_t sv[8];                /* V_SHAPE: values (SHAPE_BATCH = N) */
    int sn;                       /* V_SHAPE: count; 0 with scalar = 1: a scalar */
    int scalar;
} Val;

/* The weights of one layer, in its kind's tensor order (owned). */
typedef struct {
    float *data[4];
    size_t count[4];
    int n;
} LayerWeights;

typedef struct {
    const char *path;
    Val *vals;
    size_t n_vals;
    char *spec;                  /* the spec being written (owned) */
    size_t spec_len, spec_cap;
    LayerWeights w[MODEL_MAX_LAYERS];
    int n_layers;
    double in_a, in_b;           /* the affine map of the input the layers read */
    int in_used;
    size_t total_floats;
} Import;

/* The value named name, or NULL. */
static Val *find_val(Import *im, const char *name) {
    for (size_t i = im->n_vals; i-- > 0;)
        if (strcmp(im->vals[i].name, name) == 0) return &im->vals[i];
    return NULL;
}

/* A new value slot named name (the reader checked names are unique). */
static Val *new_val(Import *im, const char *name, ValKind kind) {
    Val *v = &im->vals[im->n_vals++];
    memset(v, 0, sizeof *v);
    v->name = name;
    v->kind = kind;
    return v;
}

/* Append printf text to the spec. */
static void spec_add(Import *im, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void spec_add(Import *im, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (im->spec_len + (size_t)n + 1 > im->spec_cap) {
        im->spec_cap = 2 * (im->spec_len + (size_t)n + 1) + 1024;
        char *p = realloc(im->spec, im->spec_cap);
        DG_ASSERT(p);
        im->spec = p;
    }
    va_start(ap, fmt);
    vsnprintf(im->spec + im->spec_len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    im->spec_len += (size_t)n;
}

/* ==== node helpers ========================================================= */

static const char *node_name(const Onnx__NodeProto *nd, char *buf, size_t len) {
    return dg_printable(nd->name && *nd->name ? nd->name : nd->output[0], buf, len);
}

/* The one-line refusal for a node: "path: node 'N' (op X) problem". */
static int node_error(Import *im, const Onnx__NodeProto *nd, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int node_error(Import *im, const Onnx__NodeProto *nd, const char *fmt, ...) {
    char nb[80], ob[40], msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return dg_set_error("%s: node '%s' (op %s) %s", im->path, node_name(nd, nb, sizeof nb),
                        dg_printable(nd->op_type, ob, sizeof ob), msg);
}

static const Onnx__AttributeProto *attr(const Onnx__NodeProto *nd, const char *name) {
    for (size_t i = 0; i < nd->n_attribute; i++)
        if (strcmp(nd->attribute[i]->name, name) == 0) return nd->attribute[i];
    return NULL;
}

static int64_t attr_int(const Onnx__NodeProto *nd, const char *name, int64_t def) {
    const Onnx__AttributeProto *a = attr(nd, name);
    return a && a->has_i ? a->i : def;
}

static float attr_float(const Onnx__NodeProto *nd, const char *name, float def) {
    const Onnx__AttributeProto *a = attr(nd, name);
    return a && a->has_f ? a->f : def;
}

/* ints attribute: all n values equal to *v (n == want, or absent: *v = def).
 * 0, or -1 if they differ or the count is wrong. */
static int attr_uniform(const Onnx__NodeProto *nd, const char *name, size_t want, int64_t def, int64_t *v) {
    const Onnx__AttributeProto *a = attr(nd, name);
    *v = def;
    if (!a) return 0;
    if (a->n_ints != want) return -1;
    for (size_t i = 0; i < a->n_ints; i++)
        if (a->ints[i] != a->ints[0]) return -1;
    *v = a->ints[0];
    return 0;
}

/* Input k of nd as a value of the given kind, else NULL (error set). */
static Val *input(Import *im, const Onnx__NodeProto *nd, size_t k, ValKind kind) {
    if (k >= nd->n_input || !*nd->input[k]) {
        node_error(im, nd, "lacks input %zu", k);
        return NULL;
    }
    Val *v = find_val(im, nd->input[k]); /* NULL: a value of a node output digits does not keep */
    if (!v || v->kind != kind) {
        node_error(im, nd, kind == V_DATA ? "input %zu must be computed from the image, not a constant"
                                          : "input %zu must be a constant (an initializer)", k);
        return NULL;
    }
    if (kind == V_CONST && v->t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT &&
        strcmp(nd->op_type, "Reshape") != 0) {
        node_error(im, nd, "input %zu must be float32", k);
        return NULL;
    }
    return v;
}

/* A copy of a float tensor's values (owned). */
static float *tensor_copy(const Onnx__TensorProto *t, size_t *count) {
    *count = onnx_tensor_count(t);
    float *p = dg_xmalloc((*count ? *count : 1) * sizeof(float));
    onnx_tensor_floats(t, p);
    return p;
}

/* Start layer line "kind args" reading ins[0..n_in), output value out_name:
 * writes the spec line, makes the V_DATA value; returns it. */
static Val *add_layer(Import *im, const Onnx__NodeProto *nd, Val **ins, int n_in, Shape out, int rank,
                      const char *fmt, ...) __attribute__((format(printf, 7, 8)));
static Val *add_layer(Import *im, const Onnx__NodeProto *nd, Val **ins, int n_in, Shape out, int rank,
                      const char *fmt, ...) {
    if (im->n_layers >= MODEL_MAX_LAYERS) {
        dg_set_error("%s: more than %d layers", im->path, MODEL_MAX_LAYERS);
        return NULL;
    }
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    for (int k = 0; k < n_in; k++) {
        if (ins[k]->layer != -1) continue;
        if (im->in_used && (ins[k]->a != im->in_a || ins[k]->b != im->in_b)) {
            node_error(im, nd, "reads the input scaled otherwise than other layers do");
            return NULL;
        }
        im->in_used = 1, im->in_a = ins[k]->a, im->in_b = ins[k]->b;
    }
    spec_add(im, "%s name=l%d inputs=", line, im->n_layers);
    for (int k = 0; k < n_in; k++) {
        if (ins[k]->layer < 0) spec_add(im, "%sinput", k ? "," : "");
        else spec_add(im, "%sl%d", k ? "," : "", ins[k]->layer);
    }
    spec_add(im, "\n");
    Val *v = new_val(im, nd->output[0], V_DATA);
    v->layer = im->n_layers++;
    v->shape = out;
    v->rank = rank;
    return v;
}

/* Attach a weight array to the layer just added (ownership moves). */
static void add_weight(Import *im, float *data, size_t count) {
    LayerWeights *w = &im->w[im->n_layers - 1];
    w->data[w->n] = data;
    w->count[w->n++] = count;
    im->total_floats += count;
}

/* Make nd's first output another name for v. */
static void alias(Import *im, const Onnx__NodeProto *nd, const Val *v) {
    Val *a = new_val(im, nd->output[0], v->kind);
    const char *name = a->name;
    *a = *v;
    a->name = name;
}

/* ==== the ops ============================================================== */

static int op_conv(Import *im, const Onnx__NodeProto *nd) {
    Val *x = input(im, nd, 0, V_DATA), *w = x ? input(im, nd, 1, V_CONST) : NULL;
    if (!w) return -1;
    Val *b = nd->n_input > 2 && *nd->input[2] ? input(im, nd, 2, V_CONST) : NULL;
    if (nd->n_input > 2 && *nd->input[2] && !b) return -1;
    const Onnx__TensorProto *t = w->t;
    int64_t stride, pad, dil;
    if (x->rank != 4 || t->n_dims != 4 || t->dims[2] != t->dims[3] || t->dims[1] != x->shape.c)
        return node_error(im, nd, "weights do not fit its input (a square kernel over %d channels expected)",
                          x->shape.c);
    if (attr_int(nd, "group", 1) != 1) return node_error(im, nd, "groups are not supported");
    if (attr_uniform(nd, "strides", 2, 1, &stride) < 0 || attr_uniform(nd, "pads", 4, 0, &pad) < 0 ||
        attr_uniform(nd, "dilations", 2, 1, &dil) < 0 || dil != 1 || stride < 1 || stride > 64 || pad < 0 ||
        pad > 64)
        return node_error(im, nd, "needs equal strides and pads on every side, no dilation");
    const Onnx__AttributeProto *ap = attr(nd, "auto_pad");
    if (ap && ap->has_s && !(ap->s.len == 6 && memcmp(ap->s.data, "NOTSET", 6) == 0) &&
        !(ap->s.len == 5 && memcmp(ap->s.data, "VALID", 5) == 0))
        return node_error(im, nd, "auto_pad SAME is not supported");
    int K = (int)t->dims[0], R = (int)t->dims[2];
    if (b && (b->t->n_dims != 1 || b->t->dims[0] != K)) return node_error(im, nd, "bias is not one value per output");
    int H = x->shape.h + 2 * (int)pad - R, W = x->shape.w + 2 * (int)pad - R;
    if (K < 1 || K > 4096 || R < 1 || R > 64 || H < 0 || W < 0) return node_error(im, nd, "has an impossible shape");
    Shape out = {K, H / (int)stride + 1, W / (int)stride + 1};
    if (!add_layer(im, nd, &x, 1, out, 4, "conv2d out=%d kernel=%d stride=%d pad=%d bias=%d", K, R, (int)stride,
                   (int)pad, b != NULL))
        return -1;
    size_t n;
    float *p = tensor_copy(t, &n);
    add_weight(im, p, n);
    if (b) {
        p = tensor_copy(b->t, &n);
        add_weight(im, p, n);
    }
    return 0;
}

static int op_gemm(Import *im, const Onnx__NodeProto *nd) {
    Val *x = input(im, nd, 0, V_DATA), *w = x ? input(im, nd, 1, V_CONST) : NULL;
    if (!w) return -1;
    Val *b = nd->n_input > 2 && *nd->input[2] ? input(im, nd, 2, V_CONST) : NULL;
    if (nd->n_input > 2 && *nd->input[2] && !b) return -1;
    if (attr_float(nd, "alpha", 1) != 1 || attr_float(nd, "beta", 1) != 1 || attr_int(nd, "transA", 0) != 0)
        return node_error(im, nd, "needs alpha = beta = 1 and transA = 0");
    int transB = attr_int(nd, "transB", 0) != 0;
    const Onnx__TensorProto *t = w->t;
    size_t D = shape_size(x->shape);
    if (x->rank != 2 || t->n_dims != 2 || (size_t)t->dims[transB ? 1 : 0] != D)
        return node_error(im, nd, "weights do not fit its input of %zu features", D);
    int M = (int)t->dims[transB ? 0 : 1];
    if (M < 1 || M > (1 << 20)) return node_error(im, nd, "has %d outputs", M);
    if (b && onnx_tensor_count(b->t) != (size_t)M) return node_error(im, nd, "bias is not one value per output");
    if (!add_layer(im, nd, &x, 1, (Shape){M, 1, 1}, 2, "linear out=%d bias=%d", M, b != NULL)) return -1;
    size_t n;
    float *p = tensor_copy(t, &n);
    if (!transB) { /* (D, M) -> (M, D) */
        float *q = dg_xmalloc(n * sizeof(float));
        for (size_t i = 0; i < D; i++)
            for (int j = 0; j < M; j++) q[(size_t)j * D + i] = p[i * (size_t)M + j];
        free(p);
        p = q;
    }
    add_weight(im, p, n);
    if (b) {
        p = tensor_copy(b->t, &n);
        add_weight(im, p, n);
    }
    return 0;
}

static int op_batchnorm(Import *im, const Onnx__NodeProto *nd) {
    Val *x = input(im, nd, 0, V_DATA);
    if (!x) return -1;
    if (nd->n_output > 1 && (*nd->output[1] || (nd->n_output > 2 && *nd->output[2])))
        return node_error(im, nd, "is in training mode");
    Val *p[4];
    for (int k = 0; k < 4; k++)
        if (!(p[k] = input(im, nd, (size_t)k + 1, V_CONST))) return -1;
    int C = x->shape.c;
    if (x->rank == 2) C = (int)shape_size(x->shape);
    for (int k = 0; k < 4; k++)
        if (onnx_tensor_count(p[k]->t) != (size_t)C) return node_error(im, nd, "parameters are not one per channel");
    float eps = attr_float(nd, "epsilon", 1e-5f);
    if (!(eps >= 0 && eps <= 1)) return node_error(im, nd, "epsilon %g is out of range", eps);
    if (!add_layer(im, nd, &x, 1, x->shape, x->rank, "batchnorm eps=%.9g", eps)) return -1;
    for (int k = 0; k < 4; k++) {
        size_t n;
        float *d = tensor_copy(p[k]->t, &n);
        add_weight(im, d, n);
    }
    return 0;
}

/* Relu, Tanh, Elu: a layer of the same shape. */
static int op_activation(Import *im, const Onnx__NodeProto *nd) {
    Val *x = input(im, nd, 0, V_DATA);
    if (!x) return -1;
    if (strcmp(nd->op_type, "Elu") == 0) {
        float a = attr_float(nd, "alpha", 1.0f);
        if (!(a >= 0 && a <= 100)) return node_error(im, nd, "alpha %g is out of range", a);
        return add_layer(im, nd, &x, 1, x->shape, x->rank, "elu alpha=%.9g", a) ? 0 : -1;
    }
    return add_layer(im, nd, &x, 1, x->shape, x->rank, "%s", strcmp(nd->op_type, "Relu") == 0 ? "relu" : "tanh")
               ? 0 : -1;
}

static int op_pool(Import *im, const Onnx__NodeProto *nd) {
    Val *x = input(im, nd, 0, V_DATA);
    if (!x) return -1;
    int64_t k, s, pad, dil;
    const Onnx__AttributeProto *ks = attr(nd, "kernel_shape");
    if (x->rank != 4 || !ks || attr_uniform(nd, "kernel_shape", 2, 0, &k) < 0 ||
        attr_uniform(nd, "strides", 2, 1, &s) < 0 || attr_uniform(nd, "pads", 4, 0, &pad) < 0 ||
        attr_uniform(nd, "dilations", 2, 1, &dil) < 0 || pad != 0 || dil != 1 || attr_int(nd, "ceil_mode", 0) != 0 ||
        (nd->n_output > 1 && *nd->output[1]))
        return node_error(im, nd, "needs a square window, equal strides, no padding, no ceil mode");
    if (k < 1 || k > 64 || s < 1 || s > 64 || k > x->shape.h || k > x->shape.w)
        return node_error(im, nd, "window %" PRId64 " does not fit its input", k);
    Shape out = {x->shape.c, (x->shape.h - (int)k) / (int)s + 1, (x->shape.w - (int)k) / (int)s + 1};
    return add_layer(im, nd, &x, 1, out, 4, "%s size=%d stride=%d",
                     strcmp(nd->op_type, "MaxPool") == 0 ? "maxpool" : "avgpool", (int)k, (int)s) ? 0 : -1;
}

/* GlobalAveragePool, and ReduceMean over axes 2 and 3. */
static int op_global_pool(Import *im, const Onnx__NodeProto *nd) {
    Val *x = input(im, nd, 0, V_DATA);
    if (!x) return -1;
    if (x->rank != 4) return node_error(im, nd, "needs an (N, C, H, W) input");
    int rank = 4;
    if (strcmp(nd->op_type, "ReduceMean") == 0) {
        const Onnx__AttributeProto *ax = attr(nd, "axes");
        int ok = ax && ax->n_ints == 2 && nd->n_input == 1;
        for (size_t i = 0; ok && i < 2; i++) ok = ax->ints[i] == 2 + (int64_t)i || ax->ints[i] == -2 + (int64_t)i;
        if (!ok) return node_error(im, nd, "is supported over the spatial axes (2, 3) only");
        rank = attr_int(nd, "keepdims", 1) ? 4 : 2;
    }
    return add_layer(im, nd, &x, 1, (Shape){x->shape.c, 1, 1}, rank, "globalavgpool") ? 0 : -1;
}

/* (N, C, H, W) -> (N, C*H*W); a 2-D value stays itself. */
static int flatten_to(Import *im, const Onnx__NodeProto *nd, Val *x) {
    if (x->rank == 2) {
        alias(im, nd, x);
        return 0;
    }
    return add_layer(im, nd, &x, 1, (Shape){(int)shape_size(x->shape), 1, 1}, 2, "flatten") ? 0 : -1;
}

static int op_flatten(Import *im, const Onnx__NodeProto *nd) {
    Val *x = input(im, nd, 0, V_DATA);
    if (!x) return -1;
    if (attr_int(nd, "axis", 1) != 1) return node_error(im, nd, "is supported with axis 1 only");
    return flatten_to(im, nd, x);
}

/* Reshape to (N, -1) or (N, D): a flatten. */
static int op_reshape(Import *im, const Onnx__NodeProto *nd) {
    Val *x = input(im, nd, 0, V_DATA);
    if (!x) return -1;
    if (nd->n_input < 2) return node_error(im, nd, "lacks its shape");
    Val *s = find_val(im, nd->input[1]);
    int64_t v[8];
    int n = 0;
    if (!s) {
        return node_error(im, nd, "needs a constant shape");
    } else if (s->kind == V_SHAPE) {
        n = s->sn;
        memcpy(v, s->sv, sizeof v);
    } else if (s->kind == V_CONST && s->t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 && s->t->n_dims == 1 &&
               s->t->dims[0] <= 8) {
        n = (int)s->t->dims[0];
        onnx_tensor_int64s(s->t, v);
    } else {
        return node_error(im, nd, "needs a constant shape");
    }
    int64_t D = (int64_t)shape_size(x->shape);
    if (n == 2 && (v[0] == SHAPE_BATCH || v[0] == -1 || v[0] == 0) && (v[1] == -1 || v[1] == D))
        return flatten_to(im, nd, x);
    return node_error(im, nd, "is supported as a flatten to (N, %" PRId64 ") only", D);
}

/* Mul, Add, Sub, Div of the image input by a float scalar constant: folded
 * into the input's affine map (normalisation inside the graph). */
static int op_input_scalar(Import *im, const Onnx__NodeProto *nd) {
    Val *x = input(im, nd, 0, V_DATA), *c = x ? input(im, nd, 1, V_CONST) : NULL;
    if (!c) return -1;
    if (x->layer != -1 || onnx_tensor_count(c->t) != 1)
        return node_error(im, nd, "is supported on the graph input by a scalar constant only");
    float k;
    onnx_tensor_floats(c->t, &k);
    const char *op = nd->op_type;
    double a = x->a, b = x->b;
    if (strcmp(op, "Mul") == 0) a *= k, b *= k;
    else if (strcmp(op, "Div") == 0 && k != 0) a /= k, b /= k;
    else if (strcmp(op, "Add") == 0) b += k;
    else if (strcmp(op, "Sub") == 0) b -= k;
    else return node_error(im, nd, "divides by zero");
    alias(im, nd, x);
    im->vals[im->n_vals - 1].a = a;
    im->vals[im->n_vals - 1].b = b;
    return 0;
}

/* Add (two branches) and Concat (axis 1): one layer reading both. */
static int op_join(Import *im, const Onnx__NodeProto *nd) {
    int is_add = strcmp(nd->op_type, "Add") == 0;
    if (is_add && nd->n_input == 2 && *nd->input[1] && find_val(im, nd->input[1])->kind == V_CONST)
        return op_input_scalar(im, nd);
    if (nd->n_input < 2 || nd->n_input > LAYER_MAX_INPUTS || (is_add && nd->n_input != 2))
        return node_error(im, nd, "needs 2..%d inputs", LAYER_MAX_INPUTS);
    if (!is_add && attr_int(nd, "axis", 0) != 1) return node_error(im, nd, "is supported along axis 1 only");
    Val *xs[LAYER_MAX_INPUTS];
    Shape out = {0, 0, 0};
    for (size_t k = 0; k < nd->n_input; k++) {
        if (!(xs[k] = input(im, nd, k, V_DATA))) return -1;
        Shape s = xs[k]->shape;
        if (k && (s.h != out.h || s.w != out.w || xs[k]->rank != xs[0]->rank || (is_add && s.c != out.c)))
            return node_error(im, nd, "inputs differ in shape");
        out.c = is_add ? s.c : out.c + s.c;
        out.h = s.h, out.w = s.w;
    }
    return add_layer(im, nd, xs, (int)nd->n_input, out, xs[0]->rank, "%s", is_add ? "add" : "concat") ? 0 : -1;
}

static int int_values(Val *s, int64_t *v, int *scalar);

/* Dropout, Identity, and a final Softmax / LogSoftmax: no layer. */
static int op_pass(Import *im, const Onnx__NodeProto *nd) {
    Val *x = nd->n_input && *nd->input[0] ? find_val(im, nd->input[0]) : NULL; /* also a constant's Identity */
    if (!x) return node_error(im, nd, "lacks input 0");
    if (nd->n_output > 1 && *nd->output[1] && strcmp(nd->op_type, "Dropout") == 0)
        return node_error(im, nd, "has a mask output");
    alias(im, nd, x);
    return 0;
}

static int op_softmax(Import *im, const Onnx__NodeProto *nd) {
    Val *x = input(im, nd, 0, V_DATA);
    if (!x) return -1;
    int64_t axis = attr_int(nd, "axis", -1);
    if (x->rank != 2 || x->layer < 0 || (axis != 1 && axis != -1))
        return node_error(im, nd, "is supported over the class scores only");
    alias(im, nd, x);
    im->vals[im->n_vals - 1].layer = -2 - x->layer; /* marks "a softmax of layer x": only the output may read it */
    return 0;
}

/* Pad with zeros (mode constant, no or a zero constant value): pads of 0
 * on every side (torch 1.13 writes one before AvgPool2d) are nothing, other
 * pads of H and W a zeropad layer (e.g. TensorFlow's 'same' before a
 * strided convolution, as `digits export` writes kaggle-deep's). */
static int op_pad(Import *im, const Onnx__NodeProto *nd) {
    Val *x = input(im, nd, 0, V_DATA);
    if (!x) return -1;
    const Onnx__AttributeProto *mode = attr(nd, "mode");
    if (mode && (!mode->has_s || mode->s.len != 8 || memcmp(mode->s.data, "constant", 8) != 0))
        return node_error(im, nd, "is supported in mode 'constant' only");
    if (nd->n_input > 2 && *nd->input[2]) {
        Val *c = input(im, nd, 2, V_CONST);
        float k = 1;
        if (!c) return -1;
        if (onnx_tensor_count(c->t) == 1) onnx_tensor_floats(c->t, &k);
        if (k != 0) return node_error(im, nd, "is supported with the value 0 only");
    }
    Val *p = nd->n_input > 1 && *nd->input[1] ? find_val(im, nd->input[1]) : NULL;
    int64_t v[8];
    int scalar, n = p ? int_values(p, v, &scalar) : -1, zero = n >= 0;
    for (int i = 0; i < n; i++) zero &= v[i] == 0;
    if (zero) {
        alias(im, nd, x);
        return 0;
    }
    /* (N, C, H, W) begins, then ends: only H and W, 0..64 each */
    int ok = n == 8 && x->rank == 4 && !v[0] && !v[1] && !v[4] && !v[5];
    for (int i = 0; ok && i < 8; i++) ok = v[i] >= 0 && v[i] <= 64;
    if (!ok) return node_error(im, nd, "is supported as zeros around the H and W axes (0..64 each) only");
    int top = (int)v[2], left = (int)v[3], bottom = (int)v[6], right = (int)v[7];
    Shape out = {x->shape.c, x->shape.h + top + bottom, x->shape.w + left + right};
    return add_layer(im, nd, &x, 1, out, 4, "zeropad top=%d bottom=%d left=%d right=%d", top, bottom, left, right)
               ? 0 : -1;
}

/* ---- shape arithmetic: x.view(x.size(0), -1) ------------------------------- */

static int op_shape(Import *im, const Onnx__NodeProto *nd) {
    Val *x = input(im, nd, 0, V_DATA);
    if (!x) return -1;
    Val *v = new_val(im, nd->output[0], V_SHAPE);
    v->sv[0] = SHAPE_BATCH;
    if (x->rank == 4) v->sv[1] = x->shape.c, v->sv[2] = x->shape.h, v->sv[3] = x->shape.w, v->sn = 4;
    else v->sv[1] = (int64_t)shape_size(x->shape), v->sn = 2;
    return 0;
}

/* int64 values of a V_SHAPE or int64 constant (at most 8) into v; count or -1. */
static int int_values(Val *s, int64_t *v, int *scalar) {
    if (!s) return -1;
    if (s->kind == V_SHAPE) {
        memcpy(v, s->sv, sizeof s->sv);
        *scalar = s->scalar;
        return s->sn;
    }
    if (s->kind != V_CONST || s->t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__INT64 || s->t->n_dims > 1 ||
        onnx_tensor_count(s->t) > 8)
        return -1;
    onnx_tensor_int64s(s->t, v);
    *scalar = s->t->n_dims == 0;
    return (int)onnx_tensor_count(s->t);
}

static int op_gather(Import *im, const Onnx__NodeProto *nd) {
    int64_t a[8], i[8];
    int sa, si;
    Val *s = nd->n_input == 2 ? find_val(im, nd->input[0]) : NULL;
    int na = s ? int_values(s, a, &sa) : -1, ni = s ? int_values(find_val(im, nd->input[1]), i, &si) : -1;
    if (na < 1 || ni != 1 || !si || attr_int(nd, "axis", 0) != 0 || i[0] < -na || i[0] >= na)
        return node_error(im, nd, "is supported on a shape with one constant index only");
    Val *v = new_val(im, nd->output[0], V_SHAPE);
    v->sv[0] = a[i[0] < 0 ? i[0] + na : i[0]];
    v->sn = 1;
    v->scalar = 1;
    return 0;
}

static int op_unsqueeze(Import *im, const Onnx__NodeProto *nd) {
    int64_t a[8];
    int sa;
    Val *s = nd->n_input >= 1 ? find_val(im, nd->input[0]) : NULL;
    int na = s ? int_values(s, a, &sa) : -1;
    if (na != 1 || !sa) return node_error(im, nd, "is supported on a scalar from a shape only");
    Val *v = new_val(im, nd->output[0], V_SHAPE);
    v->sv[0] = a[0];
    v->sn = 1;
    return 0;
}

static int op_concat_shape(Import *im, const Onnx__NodeProto *nd) {
    Val *v = new_val(im, nd->output[0], V_SHAPE);
    for (size_t k = 0; k < nd->n_input; k++) {
        int64_t a[8];
        int sa, na = int_values(find_val(im, nd->input[k]), a, &sa);
        if (na < 0 || sa || v->sn + na > 8) return node_error(im, nd, "joins values that are not shape vectors");
        memcpy(v->sv + v->sn, a, (size_t)na * sizeof(int64_t));
        v->sn += na;
    }
    return 0;
}

/* Concat of image data or of shape vectors. */
static int op_concat(Import *im, const Onnx__NodeProto *nd) {
    Val *first = nd->n_input ? find_val(im, nd->input[0]) : NULL;
    if (first && first->kind != V_DATA) return op_concat_shape(im, nd);
    return op_join(im, nd);
}

/* A Constant node: its tensor value becomes a constant. */
static int op_constant(Import *im, const Onnx__NodeProto *nd) {
    const Onnx__AttributeProto *a = attr(nd, "value");
    if (!a || !a->t) return node_error(im, nd, "has no tensor value");
    new_val(im, nd->output[0], V_CONST)->t = a->t;
    return 0;
}

typedef struct {
    const char *op;
    int (*fn)(Import *im, const Onnx__NodeProto *nd);
} OpEntry;

static const OpEntry OPS[] = {
    {"Conv", op_conv}, {"Gemm", op_gemm}, {"BatchNormalization", op_batchnorm}, {"Relu", op_activation},
    {"Tanh", op_activation}, {"Elu", op_activation}, {"MaxPool", op_pool}, {"AveragePool", op_pool},
    {"GlobalAveragePool", op_global_pool}, {"ReduceMean", op_global_pool}, {"Flatten", op_flatten},
    {"Reshape", op_reshape}, {"Add", op_join}, {"Concat", op_concat}, {"Dropout", op_pass},
    {"Identity", op_pass}, {"Softmax", op_softmax}, {"LogSoftmax", op_softmax}, {"Shape", op_shape},
    {"Gather", op_gather}, {"Unsqueeze", op_unsqueeze}, {"Constant", op_constant}, {"Pad", op_pad},
    {"Mul", op_input_scalar}, {"Sub", op_input_scalar}, {"Div", op_input_scalar},
};

/* ==== the whole graph ======================================================= */

/* The one image input (N, 1, 28, 28) float; the initializers as constants. */
static int graph_inputs(Import *im, const Onnx__GraphProto *g) {
    if (g->n_initializer > IMPORT_MAX_NODES || g->n_input > IMPORT_MAX_NODES)
        return dg_set_error("%s: more than %d initializers or inputs", im->path, IMPORT_MAX_NODES);
    for (size_t i = 0; i < g->n_initializer; i++) new_val(im, g->initializer[i]->name, V_CONST)->t = g->initializer[i];
    int found = 0;
    for (size_t i = 0; i < g->n_input; i++) {
        const Onnx__ValueInfoProto *vi = g->input[i];
        if (find_val(im, vi->name)) continue; /* an initializer listed as an input */
        const Onnx__TypeProto *tp = vi->type;
        const Onnx__TensorShapeProto *sh =
            tp && tp->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ? tp->tensor_type->shape : NULL;
        int ok = sh && sh->n_dim == 4 && tp->tensor_type->elem_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
        static const int want[4] = {0, 1, 28, 28};
        for (int d = 1; ok && d < 4; d++)
            ok = sh->dim[d]->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
                 sh->dim[d]->dim_value == want[d];
        char nb[80];
        if (!ok || found++)
            return dg_set_error("%s: the graph is not a classifier of one 1x28x28 image (input '%s' is not the "
                                "only float (N, 1, 28, 28) input)", im->path, dg_printable(vi->name, nb, sizeof nb));
        Val *v = new_val(im, vi->name, V_DATA);
        v->layer = -1;
        v->a = 1;
        v->shape = (Shape){1, 28, 28};
        v->rank = 4;
    }
    if (!found) return dg_set_error("%s: the graph has no image input", im->path);
    return 0;
}

/* Every node through its op's function. */
static int graph_nodes(Import *im, const Onnx__GraphProto *g) {
    if (g->n_node > IMPORT_MAX_NODES) return dg_set_error("%s: more than %d nodes", im->path, IMPORT_MAX_NODES);
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *nd = g->node[i];
        const OpEntry *e = NULL;
        for (size_t k = 0; k < sizeof OPS / sizeof *OPS; k++)
            if (strcmp(OPS[k].op, nd->op_type) == 0) e = &OPS[k];
        if (!e || nd->n_output < 1 || !*nd->output[0]) return node_error(im, nd, "is not supported");
        for (size_t k = 1; k < nd->n_output; k++)
            if (*nd->output[k]) return node_error(im, nd, "has a second output (training mode, a mask or indices)");
        /* a softmax's output feeds only the graph output */
        for (size_t k = 0; k < nd->n_input; k++) {
            Val *v = *nd->input[k] ? find_val(im, nd->input[k]) : NULL;
            if (v && v->kind == V_DATA && v->layer <= -2) return node_error(im, nd, "reads a softmax (only the "
                                                                                "graph output may)");
        }
        if (e->fn(im, nd) < 0) return -1;
    }
    return 0;
}

/* The first graph output: the last layer's 10 class scores. */
static int graph_output(Import *im, const Onnx__GraphProto *g) {
    Val *v = find_val(im, g->output[0]->name);
    int layer = v && v->kind == V_DATA ? (v->layer <= -2 ? -2 - v->layer : v->layer) : -1;
    if (layer < 0 || layer != im->n_layers - 1 || shape_size(v->shape) != MODEL_NUM_CLASSES)
        return dg_set_error("%s: the graph is not a classifier of one 1x28x28 image (its first output is not "
                            "10 class scores computed last)", im->path);
    if (v->rank == 4) {
        if (im->n_layers >= MODEL_MAX_LAYERS) return dg_set_error("%s: more than %d layers", im->path, MODEL_MAX_LAYERS);
        spec_add(im, "flatten name=l%d inputs=l%d\n", im->n_layers, layer);
        im->n_layers++;
    }
    return 0;
}

/* Copy the collected weights into the built model, layer by layer. */
static int fill_weights(Import *im, Model *m) {
    for (int i = 0; i < m->n_layers; i++) {
        Layer *l = &m->layers[i];
        const char *tn[8];
        int shapes[8][4], ndims[8], is_buf[8];
        int nt = l->kind->tensors(l, tn, shapes, ndims, is_buf);
        if (nt != im->w[i].n) return dg_set_error("%s: layer %d: %d tensors, expected %d", im->path, i, im->w[i].n, nt);
        size_t off_p = 0, off_b = 0;
        for (int k = 0; k < nt; k++) {
            size_t count = 1;
            for (int d = 0; d < ndims[k]; d++) count *= (size_t)shapes[k][d];
            if (count != im->w[i].count[k])
                return dg_set_error("%s: layer %d: tensor %s has %zu values, expected %zu", im->path, i, tn[k],
                                    im->w[i].count[k], count);
            float *dst = is_buf[k] ? l->buffer + off_b : l->param + off_p;
            memcpy(dst, im->w[i].data[k], count * sizeof(float));
            if (is_buf[k]) off_b += count;
            else off_p += count;
        }
    }
    return 0;
}

/* The generic path: nodes -> spec + weights -> model. */
static int import_graph(Model *m, const Onnx__ModelProto *mp, const char *path, double *in_a, double *in_b) {
    const Onnx__GraphProto *g = mp->graph;
    Import *im = dg_xcalloc(1, sizeof *im);
    im->path = path;
    im->vals = dg_xcalloc(g->n_initializer + g->n_input + g->n_node + 1, sizeof *im->vals);
    int rc = -1;
    spec_add(im, "# imported from %s\ninput 1x28x28\n", path);
    if (graph_inputs(im, g) < 0 || graph_nodes(im, g) < 0 || graph_output(im, g) < 0) goto done;
    char origin[4200];
    snprintf(origin, sizeof origin, "%s (imported graph)", path);
    if (model_build_limited(m, im->spec, origin, im->total_floats + 1, path) < 0) goto done;
    if (fill_weights(im, m) < 0) {
        model_free(m);
        goto done;
    }
    *in_a = im->in_used ? im->in_a : 1;
    *in_b = im->in_used ? im->in_b : 0;
    rc = 0;
done:
    for (int i = 0; i < MODEL_MAX_LAYERS; i++)
        for (int k = 0; k < im->w[i].n; k++) free(im->w[i].data[k]);
    free(im->vals);
    free(im->spec);
    free(im);
    return rc;
}

/* ==== a digits export: the stored spec ====================================== */

static const char *meta(const Onnx__ModelProto *mp, const char *key) {
    for (size_t i = 0; i < mp->n_metadata_props; i++)
        if (strcmp(mp->metadata_props[i]->key, key) == 0) return mp->metadata_props[i]->value;
    return NULL;
}

/* The initializer named name, or NULL. */
static const Onnx__TensorProto *initializer(const Onnx__GraphProto *g, const char *name) {
    for (size_t i = 0; i < g->n_initializer; i++)
        if (strcmp(g->initializer[i]->name, name) == 0) return g->initializer[i];
    return NULL;
}

/* Rebuild the stored spec and take every tensor "m0/<layer>.<name>". */
static int import_digits(Model *m, const Onnx__ModelProto *mp, const char *spec, const char *path) {
    size_t total = 0;
    for (size_t i = 0; i < mp->graph->n_initializer; i++) total += onnx_tensor_count(mp->graph->initializer[i]);
    char origin[4200];
    snprintf(origin, sizeof origin, "%s (embedded spec)", path);
    if (model_build_limited(m, spec, origin, total + 1, path) < 0) return -1;
    for (int i = 0; i < m->n_layers; i++) {
        Layer *l = &m->layers[i];
        const char *tn[8];
        int shapes[8][4], ndims[8], is_buf[8];
        int nt = l->kind->tensors(l, tn, shapes, ndims, is_buf);
        size_t off_p = 0, off_b = 0;
        for (int k = 0; k < nt; k++) {
            char name[64];
            snprintf(name, sizeof name, "m0/%d.%s", i, tn[k]);
            size_t count = 1;
            for (int d = 0; d < ndims[k]; d++) count *= (size_t)shapes[k][d];
            const Onnx__TensorProto *t = initializer(mp->graph, name);
            if (!t || t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT || onnx_tensor_count(t) != count) {
                model_free(m);
                return dg_set_error("%s: initializer '%s' is missing or has the wrong size (%zu floats expected)",
                                    path, name, count);
            }
            onnx_tensor_floats(t, is_buf[k] ? l->buffer + off_b : l->param + off_p);
            if (is_buf[k]) off_b += count;
            else off_p += count;
        }
    }
    return 0;
}

/* ==== entry point ============================================================ */

/* A metadata float, or def. */
static float meta_float(const Onnx__ModelProto *mp, const char *key, float def) {
    const char *s = meta(mp, key);
    char *end;
    float v = s ? strtof(s, &end) : def;
    return s && (end == s || *end || !isfinite(v)) ? def : v;
}

int onnx_import(Model *m, const char *path, const OnnxImportOptions *o, int flags) {
    memset(m, 0, sizeof *m);
    Onnx__ModelProto *mp = onnx_read(path);
    if (!mp) return -1;
    const char *spec = flags & ONNX_IMPORT_GRAPH ? NULL : meta(mp, "digits.spec");
    double a = 1, b = 0; /* the network's input = graph input * a + b */
    int rc;
    if (meta(mp, "digits.members") && !(flags & ONNX_IMPORT_GRAPH)) {
        rc = dg_set_error("%s: an ensemble export cannot be imported as one network (import its members' files)",
                          path);
    } else if (spec) {
        rc = import_digits(m, mp, spec, path);
    } else {
        rc = import_graph(m, mp, path, &a, &b);
    }
    if (rc == 0) {
        const char *base = strrchr(path, '/');
        snprintf(m->spec_name, sizeof m->spec_name, "%s", base ? base + 1 : path);
        OnnxImportOptions d = {1.0f, 0.0f, 1.0f};
        if (o && (!spec || (flags & ONNX_IMPORT_FORCE_INPUT))) d = *o;
        else if (spec) d = (OnnxImportOptions){1.0f, meta_float(mp, "digits.norm_mean", 0), meta_float(mp, "digits.norm_std", 1)};
        /* the graph input is (p/255*scale - mean)/std, so the network sees
         * p/255 * (scale*a/std) + (b - mean*a/std); digits computes
         * (p/255 - norm_mean)/norm_std */
        double ns = d.std / (d.input_scale * a), nm = ns * (d.mean * a / d.std - b);
        if (ns > 1e-6 && ns < 1e30 && fabs(nm) < 1e30) { /* (NaN fails too) */
            m->norm_mean = (float)nm;
            m->norm_std = (float)ns;
        } else {
            model_free(m);
            rc = dg_set_error("%s: the input convention (scale %g, mean %g, std %g, then x*%g%+g in the graph) is "
                              "not usable", path, d.input_scale, d.mean, d.std, a, b);
        }
    }
    onnx_model_free(mp);
    return rc;
}
