/* layers.c — every layer type: spec arguments, shape planning, PyTorch
 * default initialisation, and the calls into the kernels of src/ops/.
 *
 * Tensor names follow PyTorch's nn.Sequential ("3.weight", "3.running_mean")
 * so a model file loads into the equivalent torch module with
 * load_state_dict(strict=False) (BN's num_batches_tracked is not stored).
 * Graph layers (add, concat, stn) read several inputs through l->xs; the
 * wiring is model.c's business.
 */
#include "model/layer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "ops/ops.h"

/* ==== spec argument getters ============================================== */

static int find_arg(SpecArgs *a, const char *key) {
    for (int i = 0; i < a->n; i++)
        if (strcmp(a->key[i], key) == 0) {
            a->used[i] = 1;
            return i;
        }
    return -1;
}

int spec_get_int(SpecArgs *a, const char *key, int def, int lo, int hi, int *out) {
    int i = find_arg(a, key);
    if (i < 0) {
        *out = def;
        return 0;
    }
    char *end;
    long v = strtol(a->val[i], &end, 10);
    if (*a->val[i] == '\0' || *end != '\0')
        return dg_set_error("%s=%s is not an integer", key, a->val[i]);
    if (v < lo || v > hi) return dg_set_error("%s=%ld is out of range %d..%d", key, v, lo, hi);
    *out = (int)v;
    return 0;
}

int spec_get_float(SpecArgs *a, const char *key, float def, float lo, float hi, float *out) {
    int i = find_arg(a, key);
    if (i < 0) {
        *out = def;
        return 0;
    }
    char *end;
    double v = strtod(a->val[i], &end);
    if (*a->val[i] == '\0' || *end != '\0') return dg_set_error("%s=%s is not a number", key, a->val[i]);
    if (!(v >= lo && v <= hi)) return dg_set_error("%s=%s is out of range %g..%g", key, a->val[i], lo, hi);
    *out = (float)v;
    return 0;
}

/* Weight and bias initialisation of conv and linear layers, by the
 * layer's init= argument:
 *   torch (default): U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and
 *     bias, what PyTorch's kaiming_uniform_(a=sqrt(5)) default amounts to;
 *   he_uniform, glorot_uniform: Keras's kernel initialisers of those names,
 *     U(-sqrt(6/fan_in), ..) and U(-sqrt(6/(fan_in+fan_out)), ..), bias 0
 *     (Keras's zeros), for specs that reproduce Keras notebooks;
 *   he_normal: Keras's HeNormal, a normal of std sqrt(2/fan_in)/0.87962566
 *     truncated at two standard deviations (redrawn beyond), bias 0.
 * fan_out is out_features x the kernel's area, as Keras counts it. */
static void init_weights(const Layer *l, float *w, size_t nw, float *b, size_t nb, int fan_in, int fan_out,
                         Rng *rng) {
    float bound = 1.0f / sqrtf((float)fan_in), bias_bound = bound;
    if (l->init_scheme == INIT_HE_UNIFORM) bound = sqrtf(6.0f / (float)fan_in), bias_bound = 0;
    if (l->init_scheme == INIT_GLOROT_UNIFORM) bound = sqrtf(6.0f / (float)(fan_in + fan_out)), bias_bound = 0;
    if (l->init_scheme == INIT_HE_NORMAL) {
        const float sd = sqrtf(2.0f / (float)fan_in) / 0.87962566103423978f;
        for (size_t i = 0; i < nw; i++) {
            float z;
            do z = rng_normal(rng);
            while (fabsf(z) > 2.0f);
            w[i] = z * sd;
        }
        for (size_t i = 0; i < nb; i++) b[i] = 0.0f;
        return;
    }
    for (size_t i = 0; i < nw; i++) w[i] = rng_uniform_range(rng, -bound, bound);
    for (size_t i = 0; i < nb; i++) b[i] = bias_bound > 0 ? rng_uniform_range(rng, -bias_bound, bias_bound) : 0.0f;
}

/* init=torch|he_uniform|glorot_uniform|he_normal (see init_weights) */
static int spec_get_init(SpecArgs *a, Layer *l) {
    static const char *const names[] = {"torch", "he_uniform", "glorot_uniform", "he_normal"};
    int i = find_arg(a, "init");
    l->init_scheme = INIT_TORCH;
    if (i < 0) return 0;
    for (int k = 0; k < (int)(sizeof names / sizeof names[0]); k++)
        if (strcmp(a->val[i], names[k]) == 0) {
            l->init_scheme = (InitScheme)k;
            return 0;
        }
    return dg_set_error("init=%s is not one of torch, he_uniform, glorot_uniform, he_normal", a->val[i]);
}

static int no_args(Layer *l, SpecArgs *a) { return 0; }
static void no_init(Layer *l, Rng *rng) {}
static int no_tensors(const Layer *l, const char **names, int shapes[][4], int *ndims, int *is_buffer) {
    return 0;
}

/* ==== conv2d ============================================================== */

static int conv2d_configure(Layer *l, SpecArgs *a) {
    if (find_arg(a, "out") < 0) return dg_set_error("conv2d needs out=CHANNELS");
    if (find_arg(a, "kernel") < 0) return dg_set_error("conv2d needs kernel=SIZE");
    if (spec_get_int(a, "out", 0, 1, 4096, &l->out_features) ||
        spec_get_int(a, "kernel", 0, 1, 64, &l->kernel) ||
        spec_get_int(a, "stride", 1, 1, 64, &l->stride) ||
        spec_get_int(a, "pad", 0, 0, 64, &l->pad) || spec_get_int(a, "bias", 1, 0, 1, &l->bias) ||
        spec_get_init(a, l))
        return -1;
    return 0;
}

static int conv2d_plan(Layer *l) {
    int H = l->in.h + 2 * l->pad, W = l->in.w + 2 * l->pad;
    if (l->kernel > H || l->kernel > W)
        return dg_set_error("conv2d kernel %d is larger than its padded input %dx%d", l->kernel, H, W);
    /* keeps C*R*S (an int in the kernels) and the im2col size in range */
    if ((size_t)l->in.c * l->kernel * l->kernel > (1u << 20))
        return dg_set_error("conv2d over %d channels with a %dx%d kernel is too large", l->in.c,
                            l->kernel, l->kernel);
    l->out = (Shape){l->out_features, (H - l->kernel) / l->stride + 1, (W - l->kernel) / l->stride + 1};
    size_t nw = (size_t)l->out_features * l->in.c * l->kernel * l->kernel;
    l->n_param = nw + (l->bias ? (size_t)l->out_features : 0);
    l->n_workspace = conv2d_workspace_floats(l->in.c, l->in.h, l->in.w, l->out_features,
                                             l->kernel, l->kernel, l->stride, l->pad);
    l->n_partial = nw + (size_t)l->out_features;
    return 0;
}

static void conv2d_init(Layer *l, Rng *rng) {
    size_t nw = (size_t)l->out_features * l->in.c * l->kernel * l->kernel;
    init_weights(l, l->param, nw, l->param + nw, l->bias ? l->out_features : 0, l->in.c * l->kernel * l->kernel,
                 l->out_features * l->kernel * l->kernel, rng);
}

static void conv2d_layer_forward(Layer *l, int n, int training) {
    size_t nw = (size_t)l->out_features * l->in.c * l->kernel * l->kernel;
    conv2d_forward(l->y, l->x, l->param, l->bias ? l->param + nw : NULL, n, l->in.c, l->in.h,
                   l->in.w, l->out_features, l->kernel, l->kernel, l->stride, l->pad,
                   l->workspace, l->nthreads);
}

static void conv2d_layer_backward(Layer *l, int n) {
    size_t nw = (size_t)l->out_features * l->in.c * l->kernel * l->kernel;
    conv2d_backward(l->dx, l->dparam, l->bias ? l->dparam + nw : NULL, l->dy, l->x, l->param, n,
                    l->in.c, l->in.h, l->in.w, l->out_features, l->kernel, l->kernel, l->stride,
                    l->pad, l->workspace, l->partial, l->nthreads);
}

static int conv2d_tensors(const Layer *l, const char **names, int shapes[][4], int *ndims, int *is_buffer) {
    names[0] = "weight";
    ndims[0] = 4;
    shapes[0][0] = l->out_features;
    shapes[0][1] = l->in.c;
    shapes[0][2] = shapes[0][3] = l->kernel;
    is_buffer[0] = 0;
    if (!l->bias) return 1;
    names[1] = "bias";
    ndims[1] = 1;
    shapes[1][0] = l->out_features;
    is_buffer[1] = 0;
    return 2;
}

static const LayerKind conv2d_kind = {
    "conv2d", "conv2d out=K kernel=R [stride=1] [pad=0] [bias=1] [init=torch|he_uniform|glorot_uniform|he_normal]", conv2d_configure,
    conv2d_plan, conv2d_init, conv2d_layer_forward, conv2d_layer_backward, conv2d_tensors};

/* ==== linear ============================================================== */

static int linear_configure(Layer *l, SpecArgs *a) {
    if (find_arg(a, "out") < 0) return dg_set_error("linear needs out=FEATURES");
    if (spec_get_int(a, "out", 0, 1, 1 << 20, &l->out_features) || spec_get_int(a, "bias", 1, 0, 1, &l->bias) ||
        spec_get_init(a, l))
        return -1; /* (a bare || would return 1, which callers take for success) */
    return 0;
}

static int linear_plan(Layer *l) {
    l->out = (Shape){l->out_features, 1, 1};
    l->n_param = (size_t)l->out_features * shape_size(l->in) + (l->bias ? l->out_features : 0);
    return 0;
}

static void linear_init(Layer *l, Rng *rng) {
    int D = (int)shape_size(l->in);
    size_t nw = (size_t)l->out_features * D;
    init_weights(l, l->param, nw, l->param + nw, l->bias ? l->out_features : 0, D, l->out_features, rng);
    if (l->init_affine_identity) {
        /* the last layer of an stn localisation net starts at the identity
         * transform (PyTorch's STN tutorial): W = 0, b = (1 0 0; 0 1 0) */
        static const float identity[6] = {1, 0, 0, 0, 1, 0};
        DG_ASSERT(l->out_features == 6 && l->bias);
        memset(l->param, 0, nw * sizeof(float));
        memcpy(l->param + nw, identity, sizeof identity);
    }
}

static void linear_layer_forward(Layer *l, int n, int training) {
    int D = (int)shape_size(l->in);
    size_t nw = (size_t)l->out_features * D;
    linear_forward(l->y, l->x, l->param, l->bias ? l->param + nw : NULL, n, D, l->out_features);
}

static void linear_layer_backward(Layer *l, int n) {
    int D = (int)shape_size(l->in);
    size_t nw = (size_t)l->out_features * D;
    linear_backward(l->dx, l->dparam, l->bias ? l->dparam + nw : NULL, l->dy, l->x, l->param, n,
                    D, l->out_features);
}

static int linear_tensors(const Layer *l, const char **names, int shapes[][4], int *ndims, int *is_buffer) {
    names[0] = "weight";
    ndims[0] = 2;
    shapes[0][0] = l->out_features;
    shapes[0][1] = (int)shape_size(l->in);
    is_buffer[0] = 0;
    if (!l->bias) return 1;
    names[1] = "bias";
    ndims[1] = 1;
    shapes[1][0] = l->out_features;
    is_buffer[1] = 0;
    return 2;
}

static const LayerKind linear_kind = {"linear", "linear out=M [bias=1] [init=torch|he_uniform|glorot_uniform|he_normal]", linear_configure,
                                      linear_plan, linear_init, linear_layer_forward,
                                      linear_layer_backward, linear_tensors};

/* ==== pooling ============================================================= */

static int pool_configure(Layer *l, SpecArgs *a) {
    if (spec_get_int(a, "size", 2, 1, 64, &l->kernel)) return -1;
    return spec_get_int(a, "stride", l->kernel, 1, 64, &l->stride);
}

static int pool_plan(Layer *l) {
    if (l->kernel > l->in.h || l->kernel > l->in.w)
        return dg_set_error("pool size %d is larger than its input %dx%d", l->kernel, l->in.h, l->in.w);
    l->out = (Shape){l->in.c, (l->in.h - l->kernel) / l->stride + 1,
                     (l->in.w - l->kernel) / l->stride + 1};
    if (l->type == LAYER_MAXPOOL) l->n_scratch = shape_size(l->out); /* int32 argmax */
    return 0;
}

static void maxpool_layer_forward(Layer *l, int n, int training) {
    maxpool_forward(l->y, (int32_t *)l->scratch, l->x, n, l->in.c, l->in.h, l->in.w, l->kernel, l->stride);
}
static void maxpool_layer_backward(Layer *l, int n) {
    if (l->dx)
        maxpool_backward(l->dx, l->dy, (const int32_t *)l->scratch, n, l->in.c, l->in.h, l->in.w,
                         l->kernel, l->stride);
}
static void avgpool_layer_forward(Layer *l, int n, int training) {
    avgpool_forward(l->y, l->x, n, l->in.c, l->in.h, l->in.w, l->kernel, l->stride);
}
static void avgpool_layer_backward(Layer *l, int n) {
    if (l->dx) avgpool_backward(l->dx, l->dy, n, l->in.c, l->in.h, l->in.w, l->kernel, l->stride);
}

static const LayerKind maxpool_kind = {"maxpool", "maxpool [size=2] [stride=size]", pool_configure,
                                       pool_plan, no_init, maxpool_layer_forward,
                                       maxpool_layer_backward, no_tensors};
static const LayerKind avgpool_kind = {"avgpool", "avgpool [size=2] [stride=size]", pool_configure,
                                       pool_plan, no_init, avgpool_layer_forward,
                                       avgpool_layer_backward, no_tensors};

/* ==== element-wise: relu, tanh, flatten =================================== */

static int same_shape_plan(Layer *l) {
    l->out = l->in;
    return 0;
}
static int flatten_plan(Layer *l) {
    l->out = (Shape){(int)shape_size(l->in), 1, 1};
    return 0;
}

static void relu_layer_forward(Layer *l, int n, int training) {
    relu_forward(l->y, l->x, (size_t)n * shape_size(l->in));
}
static void relu_layer_backward(Layer *l, int n) {
    if (l->dx) relu_backward(l->dx, l->dy, l->y, (size_t)n * shape_size(l->in));
}
static void tanh_layer_forward(Layer *l, int n, int training) {
    tanh_forward(l->y, l->x, (size_t)n * shape_size(l->in));
}
static void tanh_layer_backward(Layer *l, int n) {
    if (l->dx) tanh_backward(l->dx, l->dy, l->y, (size_t)n * shape_size(l->in));
}
static void copy_forward(Layer *l, int n, int training) {
    memcpy(l->y, l->x, (size_t)n * shape_size(l->in) * sizeof(float));
}
static void copy_backward(Layer *l, int n) {
    if (l->dx) memcpy(l->dx, l->dy, (size_t)n * shape_size(l->in) * sizeof(float));
}

static const LayerKind relu_kind = {"relu", "relu", no_args, same_shape_plan, no_init,
                                    relu_layer_forward, relu_layer_backward, no_tensors};
static const LayerKind tanh_kind = {"tanh", "tanh", no_args, same_shape_plan, no_init,
                                    tanh_layer_forward, tanh_layer_backward, no_tensors};
static const LayerKind flatten_kind = {"flatten", "flatten", no_args, flatten_plan, no_init,
                                       copy_forward, copy_backward, no_tensors};

/* ==== zeropad: zeros around each map, per side ============================
 * Keras's ZeroPadding2D / PyTorch's nn.ZeroPad2d((left, right, top,
 * bottom)). With a pad=0 convolution after it, it gives TensorFlow's
 * padding='same' for strided convolutions, which pads the bottom and right
 * by one more than the top and left when the total is odd (a symmetric
 * pad= would shift every window). Backward: dx is dy's interior.        */

static int zeropad_configure(Layer *l, SpecArgs *a) {
    if (spec_get_int(a, "top", 0, 0, 64, &l->pads[0]) || spec_get_int(a, "bottom", 0, 0, 64, &l->pads[1]) ||
        spec_get_int(a, "left", 0, 0, 64, &l->pads[2]) || spec_get_int(a, "right", 0, 0, 64, &l->pads[3]))
        return -1;
    return 0;
}
static int zeropad_plan(Layer *l) {
    l->out = (Shape){l->in.c, l->in.h + l->pads[0] + l->pads[1], l->in.w + l->pads[2] + l->pads[3]};
    return 0;
}
/* copy each input row into (to_out) or out of the padded map: rows of
 * (N*C) maps of H x W inside maps of P x Q at (top, left) */
static void zeropad_rows(float *out, float *in, const Layer *l, int n, int to_out) {
    const int H = l->in.h, W = l->in.w, Q = l->out.w;
    const size_t maps = (size_t)n * l->in.c, HW = (size_t)H * W, PQ = (size_t)l->out.h * Q;
    for (size_t m = 0; m < maps; m++)
        for (int h = 0; h < H; h++) {
            float *o = out + m * PQ + (size_t)(h + l->pads[0]) * Q + l->pads[2], *i = in + m * HW + (size_t)h * W;
            if (to_out) memcpy(o, i, (size_t)W * sizeof(float));
            else memcpy(i, o, (size_t)W * sizeof(float));
        }
}
/* One pass over y: each padded map's top rows, then per input row its
 * left zeros, the row, its right zeros, then the bottom rows (a memset of
 * all of y first was a second pass: kaggle-deep's two zeropads were 7 % of
 * its batch inference). */
static void zeropad_forward(Layer *l, int n, int training) {
    const int H = l->in.h, W = l->in.w, Q = l->out.w, top = l->pads[0], left = l->pads[2], right = l->pads[3];
    const size_t maps = (size_t)n * l->in.c, HW = (size_t)H * W, PQ = (size_t)l->out.h * Q;
    for (size_t m = 0; m < maps; m++) {
        float *o = l->y + m * PQ;
        const float *in = l->x + m * HW;
        memset(o, 0, (size_t)top * Q * sizeof(float));
        o += (size_t)top * Q;
        for (int h = 0; h < H; h++, o += Q) {
            memset(o, 0, (size_t)left * sizeof(float));
            memcpy(o + left, in + (size_t)h * W, (size_t)W * sizeof(float));
            memset(o + left + W, 0, (size_t)right * sizeof(float));
        }
        memset(o, 0, (size_t)l->pads[1] * Q * sizeof(float));
    }
}
static void zeropad_backward(Layer *l, int n) {
    if (l->dx) zeropad_rows(l->dy, l->dx, l, n, 0);
}
static const LayerKind zeropad_kind = {"zeropad", "zeropad [top=0] [bottom=0] [left=0] [right=0]",
                                       zeropad_configure, zeropad_plan, no_init, zeropad_forward,
                                       zeropad_backward, no_tensors};

/* ==== batchnorm (2d on (C,H,W), 1d on (D,1,1)) =========================== */

static int batchnorm_configure(Layer *l, SpecArgs *a) {
    if (spec_get_float(a, "eps", 1e-5f, 0, 1, &l->eps) || spec_get_float(a, "momentum", 0.1f, 0, 1, &l->momentum))
        return -1; /* (a bare || would return 1, which callers take for success) */
    return 0;
}

static int batchnorm_plan(Layer *l) {
    l->out = l->in;
    l->n_param = 2 * (size_t)l->in.c;         /* gamma, beta */
    l->n_buffer = 2 * (size_t)l->in.c;        /* running mean, running var */
    l->n_scratch_fixed = 2 * (size_t)l->in.c; /* saved batch mean, rstd */
    return 0;
}

static void batchnorm_init(Layer *l, Rng *rng) {
    int C = l->in.c;
    for (int c = 0; c < C; c++) {
        l->param[c] = 1.0f;
        l->param[C + c] = 0.0f;
        l->buffer[c] = 0.0f;
        l->buffer[C + c] = 1.0f;
    }
}

static void batchnorm_layer_forward(Layer *l, int n, int training) {
    int C = l->in.c, L = l->in.h * l->in.w;
    if (training)
        batchnorm_forward_train(l->y, l->scratch, l->scratch + C, l->buffer, l->buffer + C, l->x,
                                l->param, l->param + C, n, C, L, l->eps, l->momentum);
    else
        batchnorm_forward_eval(l->y, l->x, l->param, l->param + C, l->buffer, l->buffer + C, n,
                               C, L, l->eps);
}

static void batchnorm_layer_backward(Layer *l, int n) {
    int C = l->in.c, L = l->in.h * l->in.w;
    batchnorm_backward(l->dx, l->dparam, l->dparam + C, l->dy, l->x, l->param, l->scratch,
                       l->scratch + C, n, C, L);
}

static int batchnorm_tensors(const Layer *l, const char **names, int shapes[][4], int *ndims, int *is_buffer) {
    static const char *nm[4] = {"weight", "bias", "running_mean", "running_var"};
    for (int i = 0; i < 4; i++) {
        names[i] = nm[i];
        ndims[i] = 1;
        shapes[i][0] = l->in.c;
        is_buffer[i] = i >= 2;
    }
    return 4;
}

static const LayerKind batchnorm_kind = {
    "batchnorm", "batchnorm [eps=1e-5] [momentum=0.1]", batchnorm_configure, batchnorm_plan,
    batchnorm_init, batchnorm_layer_forward, batchnorm_layer_backward, batchnorm_tensors};

/* ==== dropout, dropout2d ================================================== */

static int dropout_configure(Layer *l, SpecArgs *a) {
    if (find_arg(a, "p") < 0) return dg_set_error("%s needs p=PROBABILITY", l->kind->name);
    return spec_get_float(a, "p", 0.5f, 0.0f, 0.99f, &l->p);
}

static int dropout_plan(Layer *l) {
    l->out = l->in;
    l->n_scratch = l->type == LAYER_DROPOUT ? shape_size(l->in) : (size_t)l->in.c; /* mask */
    return 0;
}

static void dropout_layer_forward(Layer *l, int n, int training) {
    if (!training || l->p == 0.0f) {
        copy_forward(l, n, training);
        return;
    }
    size_t count = (size_t)n * l->n_scratch;
    rng_fill_uniform_part(l->rng, l->noise, l->noise_row * l->n_scratch, count);
    if (l->type == LAYER_DROPOUT)
        dropout_forward(l->y, l->scratch, l->x, l->noise, count, l->p);
    else
        dropout2d_forward(l->y, l->scratch, l->x, l->noise, n, l->in.c, l->in.h * l->in.w, l->p);
}

static void dropout_layer_backward(Layer *l, int n) {
    if (!l->dx) return;
    if (l->p == 0.0f) {
        copy_backward(l, n);
        return;
    }
    if (l->type == LAYER_DROPOUT)
        dropout_backward(l->dx, l->dy, l->scratch, (size_t)n * shape_size(l->in));
    else
        dropout2d_backward(l->dx, l->dy, l->scratch, n, l->in.c, l->in.h * l->in.w);
}

static const LayerKind dropout_kind = {"dropout", "dropout p=P", dropout_configure, dropout_plan,
                                       no_init, dropout_layer_forward, dropout_layer_backward,
                                       no_tensors};
static const LayerKind dropout2d_kind = {"dropout2d", "dropout2d p=P", dropout_configure,
                                         dropout_plan, no_init, dropout_layer_forward,
                                         dropout_layer_backward, no_tensors};

/* ==== elu ================================================================= */

static int elu_configure(Layer *l, SpecArgs *a) {
    return spec_get_float(a, "alpha", 1.0f, 0.0f, 100.0f, &l->alpha);
}
static void elu_layer_forward(Layer *l, int n, int training) {
    elu_forward(l->y, l->x, (size_t)n * shape_size(l->in), l->alpha);
}
static void elu_layer_backward(Layer *l, int n) {
    if (l->dx) elu_backward(l->dx, l->dy, l->y, (size_t)n * shape_size(l->in), l->alpha);
}
static const LayerKind elu_kind = {"elu", "elu [alpha=1]", elu_configure, same_shape_plan, no_init,
                                   elu_layer_forward, elu_layer_backward, no_tensors};

/* ==== add, concat: several inputs ========================================= */

static int add_plan(Layer *l) {
    for (int k = 1; k < l->n_inputs; k++)
        if (l->ins[k].c != l->ins[0].c || l->ins[k].h != l->ins[0].h || l->ins[k].w != l->ins[0].w)
            return dg_set_error("input %d is %dx%dx%d but input 1 is %dx%dx%d (add needs equal shapes)",
                                k + 1, l->ins[k].c, l->ins[k].h, l->ins[k].w, l->ins[0].c,
                                l->ins[0].h, l->ins[0].w);
    l->out = l->ins[0];
    return 0;
}
static void add_layer_forward(Layer *l, int n, int training) {
    add_forward(l->y, (const float *const *)l->xs, l->n_inputs, n, shape_size(l->out));
}
static void add_layer_backward(Layer *l, int n) {
    add_backward(l->dxs, l->dy, l->n_inputs, n, shape_size(l->out));
}

static int concat_plan(Layer *l) {
    int c = 0;
    for (int k = 0; k < l->n_inputs; k++) {
        if (l->ins[k].h != l->ins[0].h || l->ins[k].w != l->ins[0].w)
            return dg_set_error("input %d is %dx%d but input 1 is %dx%d (concat joins channels of "
                                "equal height and width)", k + 1, l->ins[k].h, l->ins[k].w,
                                l->ins[0].h, l->ins[0].w);
        c += l->ins[k].c;
    }
    l->out = (Shape){c, l->ins[0].h, l->ins[0].w};
    return 0;
}
static void concat_channels(const Layer *l, int *C) {
    for (int k = 0; k < l->n_inputs; k++) C[k] = l->ins[k].c;
}
static void concat_layer_forward(Layer *l, int n, int training) {
    int C[LAYER_MAX_INPUTS];
    concat_channels(l, C);
    concat_forward(l->y, (const float *const *)l->xs, C, l->n_inputs, n, l->out.h * l->out.w);
}
static void concat_layer_backward(Layer *l, int n) {
    int C[LAYER_MAX_INPUTS];
    concat_channels(l, C);
    concat_backward(l->dxs, l->dy, C, l->n_inputs, n, l->out.h * l->out.w);
}

static const LayerKind add_kind = {"add", "add inputs=A,B[,...]", no_args, add_plan, no_init,
                                   add_layer_forward, add_layer_backward, no_tensors};
static const LayerKind concat_kind = {"concat", "concat inputs=A,B[,...]", no_args, concat_plan,
                                      no_init, concat_layer_forward, concat_layer_backward,
                                      no_tensors};

/* ==== global average pooling ============================================== */

static int global_avgpool_plan(Layer *l) {
    l->out = (Shape){l->in.c, 1, 1};
    return 0;
}
static void global_avgpool_layer_forward(Layer *l, int n, int training) {
    global_avgpool_forward(l->y, l->x, n, l->in.c, l->in.h * l->in.w);
}
static void global_avgpool_layer_backward(Layer *l, int n) {
    if (l->dx) global_avgpool_backward(l->dx, l->dy, n, l->in.c, l->in.h * l->in.w);
}
static const LayerKind global_avgpool_kind = {
    "globalavgpool", "globalavgpool", no_args, global_avgpool_plan, no_init,
    global_avgpool_layer_forward, global_avgpool_layer_backward, no_tensors};

/* ==== stn: spatial transformer ============================================
 * Inputs: 0 the image (C,H,W) to resample, 1 the localisation net's six
 * affine parameters theta (6) = (2,3) row-major. The spec writes it as a
 * block (spec.c); here it is a two-input layer without parameters of its
 * own. Scratch per sample: the sampling grid (H,W,2) from forward, and
 * its gradient (H,W,2) in backward. align_corners=1 (on the stn line) is
 * PyTorch's align_corners=True for both affine_grid and grid_sample.     */

static int stn_args(Layer *l, SpecArgs *a) {
    return spec_get_int(a, "align_corners", 0, 0, 1, &l->align_corners);
}

static int stn_plan(Layer *l) {
    if (shape_size(l->ins[1]) != 6)
        return dg_set_error("the localisation net gives %dx%dx%d values, expected 6 (a 2x3 affine "
                            "transform: end it with 'linear out=6')", l->ins[1].c, l->ins[1].h, l->ins[1].w);
    l->out = l->ins[0];
    l->n_scratch = 4 * (size_t)l->in.h * l->in.w; /* grid, dgrid */
    return 0;
}
static float *stn_grid(const Layer *l, int n) { return l->scratch; }
static float *stn_dgrid(const Layer *l, int n) { return l->scratch + (size_t)n * 2 * l->in.h * l->in.w; }

static void stn_layer_forward(Layer *l, int n, int training) {
    affine_grid_forward(stn_grid(l, n), l->xs[1], n, l->out.h, l->out.w, l->align_corners);
    grid_sample_forward(l->y, l->xs[0], stn_grid(l, n), n, l->in.c, l->in.h, l->in.w, l->out.h, l->out.w,
                        l->align_corners);
}
static void stn_layer_backward(Layer *l, int n) {
    float *dgrid = stn_dgrid(l, n);
    grid_sample_backward(l->dxs[0], dgrid, l->dy, l->xs[0], stn_grid(l, n), n, l->in.c, l->in.h,
                         l->in.w, l->out.h, l->out.w, l->align_corners);
    if (l->dxs[1]) {
        memset(l->dxs[1], 0, (size_t)n * 6 * sizeof(float));
        affine_grid_backward(l->dxs[1], dgrid, n, l->out.h, l->out.w, l->align_corners);
    }
}
static const LayerKind stn_kind = {"stn", "stn [align_corners=0] [inputs=X] ... end", stn_args, stn_plan, no_init,
                                   stn_layer_forward, stn_layer_backward, no_tensors};

/* ==== the table =========================================================== */

const LayerKind *const layer_kinds[LAYER_KIND_COUNT] = {
    [LAYER_CONV2D] = &conv2d_kind,   [LAYER_LINEAR] = &linear_kind,
    [LAYER_MAXPOOL] = &maxpool_kind, [LAYER_AVGPOOL] = &avgpool_kind,
    [LAYER_RELU] = &relu_kind,       [LAYER_TANH] = &tanh_kind,
    [LAYER_BATCHNORM] = &batchnorm_kind, [LAYER_DROPOUT] = &dropout_kind,
    [LAYER_DROPOUT2D] = &dropout2d_kind, [LAYER_FLATTEN] = &flatten_kind,
    [LAYER_ELU] = &elu_kind,         [LAYER_ADD] = &add_kind,
    [LAYER_CONCAT] = &concat_kind,   [LAYER_GLOBAL_AVGPOOL] = &global_avgpool_kind,
    [LAYER_STN] = &stn_kind,         [LAYER_ZEROPAD] = &zeropad_kind,
};

const LayerKind *layer_kind_find(const char *name, LayerType *type) {
    for (int t = 0; t < LAYER_KIND_COUNT; t++)
        if (strcmp(layer_kinds[t]->name, name) == 0) {
            *type = (LayerType)t;
            return layer_kinds[t];
        }
    return NULL;
}

void layer_input_range(LayerType type, int *lo, int *hi) {
    *lo = *hi = 1;
    if (type == LAYER_ADD || type == LAYER_CONCAT) *lo = 2, *hi = LAYER_MAX_INPUTS;
    if (type == LAYER_STN) *lo = *hi = 2;
}
