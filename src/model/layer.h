/* layer.h — one network layer: its configuration, shapes, sizes, and the
 * pointers it gets into the model's memory blocks.
 *
 * A LayerKind is a small table of functions per layer type (layers.c), so
 * adding a layer type touches one table entry and the spec keyword list.
 * The model (model.c) asks every layer for its sizes first, allocates one
 * block per family (parameters, gradients, buffers, activations, scratch)
 * and then points each layer into them; layers never allocate.
 *
 * Shapes are per sample: (C, H, W); a flat vector of D features is (D, 1, 1).
 *
 * The layers form a graph: each layer reads the outputs of one or more
 * earlier layers (or the model input) — input 0 is also reachable as
 * in/x/dx, which is all a one-input layer uses. Layers are stored in an
 * order where every input comes first, so forward runs front to back and
 * backward back to front (model.c wires the pointers and sums the
 * gradient of an output read by several layers).
 */
#ifndef DG_LAYER_H
#define DG_LAYER_H

#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"

typedef struct {
    int c, h, w;
} Shape;

static inline size_t shape_size(Shape s) { return (size_t)s.c * s.h * s.w; }

/* Parsed arguments of one spec line: `conv2d out=32 kernel=3 pad=1`. */
#define SPEC_MAX_ARGS 12
typedef struct {
    int n;
    char key[SPEC_MAX_ARGS][32];
    char val[SPEC_MAX_ARGS][64];
    int used[SPEC_MAX_ARGS]; /* set by the getters: unused keys are reported */
} SpecArgs;

typedef enum {
    LAYER_CONV2D, LAYER_LINEAR, LAYER_MAXPOOL, LAYER_AVGPOOL, LAYER_RELU, LAYER_TANH,
    LAYER_BATCHNORM, LAYER_DROPOUT, LAYER_DROPOUT2D, LAYER_FLATTEN,
    LAYER_ELU, LAYER_ADD, LAYER_CONCAT, LAYER_GLOBAL_AVGPOOL, LAYER_STN,
    LAYER_ZEROPAD, LAYER_KIND_COUNT
} LayerType;

#define LAYER_MAX_INPUTS 8
#define LAYER_INPUT_IMAGE (-1) /* input id of the model input */

/* Weight initialisation of conv2d and linear (spec argument init=). */
typedef enum { INIT_TORCH, INIT_HE_UNIFORM, INIT_GLOROT_UNIFORM, INIT_HE_NORMAL } InitScheme;

typedef struct Layer Layer;

typedef struct {
    const char *name;     /* spec keyword */
    const char *synopsis; /* e.g. "conv2d out=K kernel=R [stride=1] [pad=0] [bias=1]" */
    /* Read the spec arguments into l's config; -1 with dg_set_error on a bad value. */
    int (*configure)(Layer *l, SpecArgs *a);
    /* From l->in, set l->out, n_param, n_buffer and the scratch sizes; -1 on
     * an impossible shape (kernel larger than the input, ...). */
    int (*plan)(Layer *l);
    /* PyTorch-default initialisation of parameters and buffers. */
    void (*init)(Layer *l, Rng *rng);
    void (*forward)(Layer *l, int n, int training);
    void (*backward)(Layer *l, int n);
    /* Tensor names and shapes for the model file, in the order they sit in
     * the parameter block (then the buffer block). Returns the count. */
    int (*tensors)(const Layer *l, const char **names, int shapes[][4], int *ndims,
                   int *is_buffer);
} LayerKind;

struct Layer {
    const LayerKind *kind;
    LayerType type;
    int index;                /* position in the layer list; tensor names are "<index>.weight" */
    int line;                 /* spec line, for messages */
    char name[32];            /* spec `name=` ("" if none) */
    Shape in, out;            /* in == ins[0] */

    /* graph: where the inputs come from (layer index, or LAYER_INPUT_IMAGE) */
    int n_inputs;
    int input_ids[LAYER_MAX_INPUTS];
    Shape ins[LAYER_MAX_INPUTS];

    /* configuration (only the fields of this layer's type are meaningful) */
    int out_features;         /* conv2d K / linear M */
    int kernel, stride, pad;  /* conv2d, pools */
    int bias;                 /* conv2d / linear: has a bias */
    float p;                  /* dropout probability */
    float eps, momentum;      /* batchnorm */
    float alpha;              /* elu */
    int align_corners;        /* stn: PyTorch's align_corners=True */
    int pads[4];              /* zeropad: top, bottom, left, right */
    int init_affine_identity; /* linear out=6 ending an stn localisation net: W = 0, b = identity */
    InitScheme init_scheme;   /* conv2d, linear: init= (see init_weights in layers.c) */

    /* sizes reported by plan() */
    size_t n_param;           /* trainable floats */
    size_t n_buffer;          /* non-trainable floats saved with the model (BN running stats) */
    size_t n_scratch;         /* floats of per-batch scratch per sample (masks, argmax) */
    size_t n_scratch_fixed;   /* floats of scratch independent of batch (saved mean/rstd) */
    size_t n_workspace;       /* floats of shared per-thread workspace (im2col) */
    size_t n_partial;         /* floats per thread for deterministic gradient partial sums */

    /* pointers into the model's blocks, set by model.c */
    float *param, *dparam, *buffer;
    float *x, *dx;            /* (N, in)  input 0 and its gradient (dx NULL when it is the model input) */
    float *xs[LAYER_MAX_INPUTS], *dxs[LAYER_MAX_INPUTS]; /* (N, ins[k]) every input; xs[0] == x */
    /* set by model.c: dxs[k] is a private buffer whose contents model_backward
     * adds into the producer's dy (its output feeds several layers) */
    int dx_accumulate[LAYER_MAX_INPUTS];
    float *y, *dy;            /* (N, out) output and its gradient */
    float *scratch;           /* n_scratch * N + n_scratch_fixed */
    float *workspace;         /* shared, nthreads * max n_workspace */
    float *partial;           /* shared, nthreads * max n_partial */
    int nthreads;
    Rng *rng;                 /* dropout stream (the model's) */
    float *noise;             /* shared uniform-noise buffer for dropout (N * max elements) */
    size_t noise_row;         /* dropout: the first row's index in the whole batch (distributed
                               * training's shard, src/train/dist_train.c); 0 otherwise */
};

extern const LayerKind *const layer_kinds[LAYER_KIND_COUNT];
const LayerKind *layer_kind_find(const char *name, LayerType *type);
/* How many inputs a layer type takes: 1..1 for all but add/concat
 * (2..LAYER_MAX_INPUTS) and stn (2: image, theta). */
void layer_input_range(LayerType type, int *lo, int *hi);

/* Spec-argument getters: return def when absent; -1 + error on a bad value. */
int spec_get_int(SpecArgs *a, const char *key, int def, int lo, int hi, int *out);
int spec_get_float(SpecArgs *a, const char *key, float def, float lo, float hi, float *out);

#endif
