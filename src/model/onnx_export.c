/* onnx_export.c — a digits network (or an ensemble of them) as one ONNX
 * graph, opset 17 (ONNX 1.12; GridSample needs 16).
 *
 * Layer by layer, in the model's order (inputs always come first):
 *   conv2d          Conv (kernel_shape, strides, pads), bias when it has one
 *   linear          Gemm (transB = 1), after a Flatten when its input is 4-D
 *   maxpool/avgpool MaxPool / AveragePool (no padding, floor: digits' pools)
 *   batchnorm       BatchNormalization (inference form, epsilon), on 4-D or 2-D
 *   relu/tanh/elu   Relu / Tanh / Elu (alpha)
 *   flatten         Flatten (axis 1)
 *   add             a chain of Add in input order (digits sums in that order)
 *   concat          Concat (axis 1)
 *   globalavgpool   GlobalAveragePool
 *   dropout(2d)     nothing: the output is the input's value
 *   stn             the affine grid as MatMul of a constant base grid
 *                   (P*Q, 3) with theta^T — ONNX's AffineGrid needs opset 20,
 *                   which ONNX 1.12 and torch 1.13 do not know — then
 *                   GridSample (bilinear, zeros, align_corners 0)
 * Each network starts with its own normalisation, x * (1/(255 std)) +
 * (-mean/std) — the two float operations model_load_pixels does — and ends
 * in logits; an ensemble then votes as ensemble_vote does (Sum; Softmax or
 * the mean of Softmaxes, Div, Max with 1e-30, Log).
 * Value names: "m<k>/<layer index>"; initializers "m<k>/<layer>.<tensor>".
 * Left out: folding batch norm into the convolution (BatchNormalization is
 * exact and every runtime fuses it itself), other opsets.
 */
#include "model/onnx_build.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "core/version.h"
#include "ops/ops.h"

/* ==== one network =========================================================== */

/* Per layer: the ONNX value holding its output, and its rank (4: N,C,H,W; 2: N,D). */
typedef struct {
    char *value;
    int rank;
} Out;

/* The value and rank of input k of layer l. */
static Out input_of(const Layer *l, int k, const Out *outs, Out image) {
    int id = l->input_ids[k];
    return id == LAYER_INPUT_IMAGE ? image : outs[id];
}

/* A 4-D value flattened to (N, D) (2-D values pass through). */
static char *as_2d(Builder *b, Out o) {
    if (o.rank == 2) return o.value;
    Onnx__NodeProto *nd = b_node(b, "Flatten", NULL, 1, o.value);
    b_attr_int(b, nd, "axis", 1);
    return nd->output[0];
}

/* The layer's tensors as initializers named P/<index>.<name>; names[] gets
 * the initializer names in the kind's order. Returns the count. */
static int layer_inits(Builder *b, const char *P, const Layer *l, char **names) {
    const char *tn[8];
    int shapes[8][4], ndims[8], is_buf[8];
    int nt = l->kind->tensors(l, tn, shapes, ndims, is_buf);
    size_t off_p = 0, off_b = 0;
    for (int i = 0; i < nt; i++) {
        int64_t dims[4];
        size_t count = 1;
        for (int d = 0; d < ndims[i]; d++) count *= (size_t)(dims[d] = shapes[i][d]);
        const float *src = is_buf[i] ? l->buffer + off_b : l->param + off_p;
        if (is_buf[i]) off_b += count;
        else off_p += count;
        names[i] = b_init(b, b_fmt(b, "%s/%d.%s", P, l->index, tn[i]), ndims[i], dims, src, NULL);
    }
    return nt;
}

/* The spatial transformer: grid = base (P*Q, 3) x theta^T (N, 3, 2), then
 * GridSample. base rows are (x_q, y_p, 1) at the output pixels: the grid
 * affine_grid_forward makes from the identity transform. */
static char *export_stn(Builder *b, const char *P, const Layer *l, const char *image, const char *theta) {
    int Pn = l->out.h, Qn = l->out.w;
    float *base = dg_xmalloc((size_t)Pn * Qn * 3 * sizeof(float));
    float *ident = dg_xmalloc((size_t)Pn * Qn * 2 * sizeof(float));
    const float theta_id[6] = {1, 0, 0, 0, 1, 0};
    affine_grid_forward(ident, theta_id, 1, Pn, Qn, l->align_corners);
    for (size_t i = 0; i < (size_t)Pn * Qn; i++)
        base[3 * i] = ident[2 * i], base[3 * i + 1] = ident[2 * i + 1], base[3 * i + 2] = 1.0f;
    free(ident);
    int64_t bdims[2] = {(int64_t)Pn * Qn, 3}, tshape[3] = {-1, 2, 3}, gshape[4] = {-1, Pn, Qn, 2};
    char *bname = b_init(b, b_fmt(b, "%s/%d.base_grid", P, l->index), 2, bdims, base, NULL);
    free(base);
    char *ts = b_init(b, b_fmt(b, "%s/%d.theta_shape", P, l->index), 1, (int64_t[]){3}, NULL, tshape);
    char *gs = b_init(b, b_fmt(b, "%s/%d.grid_shape", P, l->index), 1, (int64_t[]){4}, NULL, gshape);
    char *t3 = b_node(b, "Reshape", NULL, 2, theta, ts)->output[0];             /* (N, 2, 3) */
    Onnx__NodeProto *tr = b_node(b, "Transpose", NULL, 1, t3);                  /* (N, 3, 2) */
    Onnx__AttributeProto *perm = b_attr(b, tr, "perm", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    perm->n_ints = 3;
    perm->ints = b_alloc(b, 3 * sizeof(int64_t));
    perm->ints[0] = 0, perm->ints[1] = 2, perm->ints[2] = 1;
    char *g = b_node(b, "MatMul", NULL, 2, bname, tr->output[0])->output[0];   /* (N, P*Q, 2) */
    char *g4 = b_node(b, "Reshape", NULL, 2, g, gs)->output[0];                 /* (N, P, Q, 2) */
    Onnx__NodeProto *gsn = b_node(b, "GridSample", NULL, 2, image, g4);
    b_attr_int(b, gsn, "align_corners", l->align_corners);
    b_attr_string(b, gsn, "mode", "bilinear");
    b_attr_string(b, gsn, "padding_mode", "zeros");
    return gsn->output[0];
}

/* One layer's nodes; -1 naming the layer if it cannot be exported. */
static int export_layer(Builder *b, const char *P, const char *origin, const Layer *l, Out *outs, Out image) {
    Out x = input_of(l, 0, outs, image);
    Out *o = &outs[l->index];
    char *w[8];
    Onnx__NodeProto *nd;
    o->rank = x.rank;
    switch (l->type) {
    case LAYER_CONV2D:
        if (x.rank != 4) break;
        layer_inits(b, P, l, w);
        nd = l->bias ? b_node(b, "Conv", NULL, 3, x.value, w[0], w[1]) : b_node(b, "Conv", NULL, 2, x.value, w[0]);
        b_attr_ints(b, nd, "kernel_shape", 2, l->kernel);
        b_attr_ints(b, nd, "strides", 2, l->stride);
        b_attr_ints(b, nd, "pads", 4, l->pad);
        o->value = nd->output[0];
        return 0;
    case LAYER_LINEAR: {
        char *x2 = as_2d(b, x);
        layer_inits(b, P, l, w);
        nd = l->bias ? b_node(b, "Gemm", NULL, 3, x2, w[0], w[1]) : b_node(b, "Gemm", NULL, 2, x2, w[0]);
        b_attr_int(b, nd, "transB", 1);
        o->value = nd->output[0];
        o->rank = 2;
        return 0;
    }
    case LAYER_MAXPOOL: case LAYER_AVGPOOL:
        if (x.rank != 4) break;
        nd = b_node(b, l->type == LAYER_MAXPOOL ? "MaxPool" : "AveragePool", NULL, 1, x.value);
        b_attr_ints(b, nd, "kernel_shape", 2, l->kernel);
        b_attr_ints(b, nd, "strides", 2, l->stride);
        o->value = nd->output[0];
        return 0;
    case LAYER_BATCHNORM:
        layer_inits(b, P, l, w);
        nd = b_node(b, "BatchNormalization", NULL, 5, x.value, w[0], w[1], w[2], w[3]);
        b_attr_float(b, nd, "epsilon", l->eps);
        o->value = nd->output[0];
        return 0;
    case LAYER_ZEROPAD: {
        if (x.rank != 4) break;
        /* Pad's pads: the begins of N, C, H, W, then their ends */
        int64_t pads[8] = {0, 0, l->pads[0], l->pads[2], 0, 0, l->pads[1], l->pads[3]};
        char *pv = b_init(b, b_fmt(b, "%s/%d.pads", P, l->index), 1, (int64_t[]){8}, NULL, pads);
        o->value = b_node(b, "Pad", NULL, 2, x.value, pv)->output[0]; /* mode constant, value 0 */
        return 0;
    }
    case LAYER_RELU: o->value = b_node(b, "Relu", NULL, 1, x.value)->output[0]; return 0;
    case LAYER_TANH: o->value = b_node(b, "Tanh", NULL, 1, x.value)->output[0]; return 0;
    case LAYER_ELU:
        nd = b_node(b, "Elu", NULL, 1, x.value);
        b_attr_float(b, nd, "alpha", l->alpha);
        o->value = nd->output[0];
        return 0;
    case LAYER_DROPOUT: case LAYER_DROPOUT2D: *o = x; return 0; /* identity at inference */
    case LAYER_FLATTEN: o->value = as_2d(b, x); o->rank = 2; return 0;
    case LAYER_GLOBAL_AVGPOOL:
        if (x.rank != 4) break;
        o->value = b_node(b, "GlobalAveragePool", NULL, 1, x.value)->output[0];
        return 0;
    case LAYER_ADD: case LAYER_CONCAT: {
        /* a mix of ranks (a flat vector and a 1x1 map) is joined flat */
        int flat = 0;
        for (int k = 0; k < l->n_inputs; k++) flat |= input_of(l, k, outs, image).rank == 2;
        char *v[LAYER_MAX_INPUTS];
        for (int k = 0; k < l->n_inputs; k++) {
            Out in = input_of(l, k, outs, image);
            v[k] = flat ? as_2d(b, in) : in.value;
        }
        o->rank = flat ? 2 : 4;
        if (l->type == LAYER_ADD) {
            char *acc = v[0];
            for (int k = 1; k < l->n_inputs; k++) acc = b_node(b, "Add", NULL, 2, acc, v[k])->output[0];
            o->value = acc;
        } else {
            nd = b_node(b, "Concat", NULL, 0);
            nd->n_input = (size_t)l->n_inputs;
            nd->input = b_alloc(b, (size_t)l->n_inputs * sizeof(char *));
            for (int k = 0; k < l->n_inputs; k++) nd->input[k] = v[k];
            b_attr_int(b, nd, "axis", 1);
            o->value = nd->output[0];
        }
        return 0;
    }
    case LAYER_STN: {
        Out theta = input_of(l, 1, outs, image);
        if (x.rank != 4) break;
        o->value = export_stn(b, P, l, x.value, as_2d(b, theta));
        o->rank = 4;
        return 0;
    }
    default: break;
    }
    return dg_set_error("%s: layer %d (%s, spec line %d) cannot be exported to ONNX", origin, l->index,
                        l->kind->name, l->line);
}

/* Network k: normalisation, its layers; *logits gets the (N, 10) value. */
static int export_network(Builder *b, const Model *m, int k, char **logits, const char *origin) {
    const char *P = b_fmt(b, "m%d", k);
    if (m->input_shape.c != 1 || m->input_shape.h != 28 || m->input_shape.w != 28)
        return dg_set_error("%s: the input is %dx%dx%d; the ONNX export is for 1x28x28 images", origin,
                            m->input_shape.c, m->input_shape.h, m->input_shape.w);
    float scale = 1.0f / (255.0f * m->norm_std), shift = -m->norm_mean / m->norm_std;
    char *sc = b_scalar(b, b_fmt(b, "%s/input_scale", P), scale);
    char *sh = b_scalar(b, b_fmt(b, "%s/input_shift", P), shift);
    char *x = b_node(b, "Mul", NULL, 2, "input", sc)->output[0];
    Out image = {b_node(b, "Add", NULL, 2, x, sh)->output[0], 4};
    Out *outs = dg_xcalloc((size_t)m->n_layers, sizeof *outs);
    int rc = 0;
    for (int i = 0; i < m->n_layers && rc == 0; i++) rc = export_layer(b, P, origin, &m->layers[i], outs, image);
    if (rc == 0) *logits = as_2d(b, outs[m->n_layers - 1]);
    free(outs);
    return rc;
}

/* ==== the vote and the model ================================================ */

/* Softmax over the classes (axis 1) of v. */
static char *softmax(Builder *b, char *v, const char *out) {
    Onnx__NodeProto *nd = b_node(b, "Softmax", out, 1, v);
    b_attr_int(b, nd, "axis", 1);
    return nd->output[0];
}

/* The graph's outputs "logits" and "probabilities" from the members' logits. */
static void export_vote(Builder *b, char **z, int n, int vote_logits) {
    if (n == 1) {
        b_node(b, "Identity", "logits", 1, z[0]);
        softmax(b, z[0], "probabilities");
        return;
    }
    if (vote_logits) { /* z = z_0 + z_1 + ...; p = softmax(z) */
        char *acc = z[0];
        for (int k = 1; k < n; k++) acc = b_node(b, "Add", k == n - 1 ? "logits" : NULL, 2, acc, z[k])->output[0];
        softmax(b, acc, "probabilities");
        return;
    }
    /* p = (sum_k softmax(z_k)) / M; logits = log(max(p, 1e-30)) */
    char *acc = softmax(b, z[0], NULL);
    for (int k = 1; k < n; k++) acc = b_node(b, "Add", NULL, 2, acc, softmax(b, z[k], NULL))->output[0];
    char *p = b_node(b, "Div", "probabilities", 2, acc, b_scalar(b, "vote_members", (float)n))->output[0];
    char *c = b_node(b, "Max", NULL, 2, p, b_scalar(b, "vote_floor", 1e-30f))->output[0];
    b_node(b, "Log", "logits", 1, c);
}

/* The model's own metadata (spec, normalisation, metrics) then meta_kv, as
 * one NULL-terminated list in builder memory. */
static const char **collect_metadata(Builder *b, const Model *const *models, int n, const char *const *meta_kv) {
    size_t extra = 0;
    while (meta_kv && meta_kv[2 * extra]) extra++;
    const char **kv = b_alloc(b, (12 + 2 * extra + 1) * sizeof *kv);
    int i = 0;
    kv[i++] = "digits.version", kv[i++] = DG_VERSION;
    kv[i++] = "digits.input", kv[i++] = "float32 (N,1,28,28), pixel values 0..255, white digit on black";
    if (n == 1) {
        const Model *m = models[0];
        kv[i++] = "digits.spec", kv[i++] = m->spec_text ? m->spec_text : "";
        kv[i++] = "digits.norm_mean", kv[i++] = b_fmt(b, "%.9g", m->norm_mean);
        kv[i++] = "digits.norm_std", kv[i++] = b_fmt(b, "%.9g", m->norm_std);
        if (m->metrics_json) kv[i++] = "digits.metrics", kv[i++] = m->metrics_json;
    }
    for (size_t e = 0; e < extra; e++) kv[i++] = meta_kv[2 * e], kv[i++] = meta_kv[2 * e + 1];
    kv[i] = NULL;
    return kv;
}

int onnx_export(const char *path, const Model *const *models, int n, int vote_logits,
                const char *const *meta_kv, const char *origin) {
    DG_ASSERT(n >= 1);
    Builder b = {0};
    int rc = -1;
    char **z = dg_xcalloc((size_t)n, sizeof *z);
    for (int k = 0; k < n; k++)
        if (export_network(&b, models[k], k, &z[k], origin) < 0) goto done;
    export_vote(&b, z, n, vote_logits);
    Onnx__ValueInfoProto *in = b_value_info(&b, "input", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 4, (int[]){0, 1, 28, 28});
    Onnx__ValueInfoProto *outs[2] = {b_value_info(&b, "logits", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, (int[]){0, 10}),
                                     b_value_info(&b, "probabilities", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2,
                                                  (int[]){0, 10})};
    rc = b_write_model(&b, path, &in, 1, outs, 2, collect_metadata(&b, models, n, meta_kv));
done:
    free(z);
    builder_free(&b);
    return rc;
}
