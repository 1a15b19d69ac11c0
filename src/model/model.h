/* model.h — a network built from a spec, its memory, forward/backward,
 * summary, and the model file (safetensors).
 *
 * A spec is plain text, one layer per line (the files in models/):
 *     # comment
 *     input 1x28x28              (optional, this is the default)
 *     conv2d out=32 kernel=3 pad=1
 *     batchnorm
 *     relu
 *     maxpool size=2
 *     flatten
 *     linear out=10
 * The last layer must produce 10 features (the logits).
 *
 * Graphs. A line may name its output (name=N) and say what it reads
 * (inputs=A,B,...: names, `prev` = the line before (the default), `input` =
 * the model input). add (element-wise sum) and concat (channels) take two
 * or more inputs; every other layer one. A residual block:
 *     relu name=stem
 *     conv2d out=32 kernel=3 pad=1
 *     batchnorm name=res
 *     add inputs=res,stem
 * A spatial transformer is a block: the lines between `stn` and `end` are
 * its localisation net, reading the stn's input and ending in
 * `linear out=6` (initialised to the identity transform); at `end` the
 * input is resampled through affine_grid + grid_sample (PyTorch semantics):
 *     stn
 *       conv2d out=8 kernel=7
 *       ...
 *       linear out=6
 *     end
 * Layers are numbered in creation order (the stn layer after its
 * localisation net); tensor names stay "<index>.weight". Every output but
 * the last must be read by some layer.
 *
 * Memory (llm.c style): sizes first, then one allocation per family:
 * parameters, gradients, buffers (BN running stats), activations for the
 * largest batch, scratch. Layers point into those blocks.
 */
#ifndef DG_MODEL_H
#define DG_MODEL_H

#include <limits.h>
#include <stdint.h>
#include <stdio.h>

#include "core/rng.h"
#include "model/layer.h"
#include "ops/ops.h"

#define MODEL_NUM_CLASSES 10
#define MODEL_MAX_LAYERS 256

typedef struct {
    char *spec_text;     /* owned copy of the spec (stored in the model file) */
    char spec_name[128]; /* zoo name or file name, for messages and metadata */
    Shape input_shape;  /* per-sample input (C, H, W) */
    int n_layers;
    Layer *layers;

    size_t n_param, n_buffer;
    float *params, *grads, *buffers; /* (n_param), (n_param), (n_buffer) */

    int max_batch;     /* activations are sized for this many samples */
    int with_grad;     /* gradient activations allocated */
    float *acts;       /* one block: input, every layer's y (and dy) */
    float *scratch;    /* one block: masks, argmax, BN saved stats, noise, partial sums */
    float *workspace;  /* im2col, nthreads slices */
    float *input;      /* (max_batch, input) — callers write the batch here */
    int nthreads;
    Rng dropout_rng;

    /* normalisation applied to pixels/255 before the network */
    float norm_mean, norm_std;
    /* free-form JSON strings carried in the model file's metadata (owned, may be NULL) */
    char *train_config_json;
    char *metrics_json;
    /* per-layer wall time (s) and calls when profiling (model_profile_start),
     * else NULL: [layer][0 train forward, 1 eval forward, 2 backward] */
    double (*prof_seconds)[3];
    long (*prof_calls)[3];
    /* Eval-mode fusion (see Epilogue in ops/ops.h): a conv/linear layer
     * followed by ReLU / batch norm / dropout / flatten, each read only by
     * the next, runs as one layer that writes the last one's output; the
     * outputs in between are then not written. keep_outputs = 1 turns it
     * off for callers that read every layer's output (report pictures):
     * set it through model_keep_outputs. */
    int keep_outputs;
    int acts_shared;    /* inference-only: layer outputs share reused slots (model_set_batch) */
    int *fuse_end;      /* (n_layers) last layer fused into layer i (i: none); NULL until planned */
    float *fuse_params; /* BN steps' mul/add, refreshed from the running stats per forward */
    /* Inference-only models (with_grad = 0, outputs shared), planned with
     * fuse_end: a batch norm right after a conv/linear layer (only eval
     * copies between) is folded into a copy of that layer's weights and
     * bias, `folded` + fold_at[i] (SIZE_MAX: none), rebuilt on the first
     * forward after model_params_changed (fold_ready = 0); a max or
     * average pooling or zero padding after a conv's ReLU/tanh/BN steps joins its epilogue,
     * which pools or pads from pool_mem + pool_at[i] (nthreads slices).
     * DIGITS_INFER_FOLD=0 and DIGITS_INFER_POOL=0 (pooling and padding)
     * turn them off (A/B measurements). */
    size_t *fold_at;
    float *folded;
    int fold_ready;
    size_t *pool_at;
    float *pool_mem;
    /* Inference-only models (model_set_batch with_grad = 0): every conv
     * layer has its own workspace, where its packed weights stay between
     * forwards (conv2d_forward_packed); conv_packed[i] says which slices
     * hold layer i's. NULL in training models (and with
     * DIGITS_INFER_PACK=0, for A/B measurements). model_params_changed
     * forgets them. */
    Conv2dPacked *conv_packed;
    /* Inference-only models: a large linear layer's weights as column
     * panels for one-image calls that skip zero inputs (linear_forward_ep),
     * packed on the first such call after model_params_changed
     * (lin_ready[i] = 0); lin_panels[i] NULL until then. */
    float **lin_panels;
    unsigned char *lin_ready;
    /* Training runs batch norm + ReLU pairs as one op (bit-identical);
     * 1 runs them as two layers (tests; DIGITS_TRAIN_FUSION=0 does it for
     * every model, for A/B measurements). */
    int unfused_training;
    /* Called after every layer's backward when set (distributed training,
     * src/train/dist_train.c: it keeps a convolution's per-chunk weight
     * gradients before the next layer reuses the shared partial buffer). */
    void (*backward_hook)(void *ctx, Layer *l, int n);
    void *backward_hook_ctx;
} Model;

/* Build the layer list and parameter blocks from spec text; `origin` names
 * the spec in messages ("models/cnn.spec"). Returns -1 with
 * "origin:line: problem" in dg_errmsg(). Parameters are zero until
 * model_init_params or a load. */
int model_build(Model *m, const char *spec_text, const char *origin);
/* Most parameters + buffers a spec may have (256 MiB of floats); specs are
 * also bounded in activations per image. */
#define MODEL_MAX_PARAMS ((size_t)1 << 26)
/* model_build, refusing (before allocating) a spec with more than max_floats
 * parameters + buffers: model_load passes what the file can hold, and the
 * file's name for that message. */
int model_build_limited(Model *m, const char *spec_text, const char *origin, size_t max_floats,
                        const char *file);
/* Resolve a zoo name ("cnn-bn") or a spec path and build from it. */
int model_build_named(Model *m, const char *name_or_path);
/* The folders that hold the zoo (NAME.spec) and pretrained/ (trained
 * NAME.safetensors), in search order: $DIGITS_MODELS if set, ./models
 * (with_cwd: specs only), <exe dir>/models, <exe dir>/../models (build/digits
 * in a checkout), DG_DATADIR/models (the install prefix,
 * /usr/local/share/digits by default). Returns how many were written. */
#define MODEL_MAX_DIRS 5
int model_dirs(char dirs[][PATH_MAX], int max, int with_cwd);
/* Path of models/NAME.spec (or NAME itself if it has a '/' or ".spec"). */
int model_find_spec(const char *name, char *path, size_t len);
/* Path of models/pretrained/NAME.safetensors ("default", "best"); -1 with
 * the folders searched in dg_errmsg(). */
int model_find_pretrained(const char *name, char *path, size_t len);
void model_free(Model *m);

/* PyTorch default initialisation from Rng(seed, "init"); also seeds dropout. */
void model_init_params(Model *m, uint64_t seed);
/* Activation and scratch floats one image needs (an upper bound: dropout
 * noise counted as a gradient); callers size batches with it. */
size_t model_floats_per_image(const Model *m, int with_grad);
/* (Re)allocate activations for up to max_batch samples; threads <= 0: all. */
void model_set_batch(Model *m, int max_batch, int with_grad, int threads);
/* The parameters or buffers were written (a load, an initialisation, a
 * copy into m->params): forget the weights inference packed (and the
 * batch norms it folded) from them.
 * model_set_batch, model_init_params and model_load call it; so must any
 * other writer of an inference model's weights. */
void model_params_changed(Model *m);
/* Free the activations, scratch and workspace (model_set_batch makes new
 * ones): e.g. a trained ensemble member going from training to inference. */
void model_release_batch(Model *m);
/* Every layer keeps its own output after a forward (no fusion, no shared
 * slots) — for callers that read intermediate outputs, e.g. the report's
 * activation maps. Reallocates the activations if they were shared. */
void model_keep_outputs(Model *m);

/* Per-layer timing (for bench_models --profile): start clears and enables
 * it; print writes one row per layer — microseconds per image of train
 * forward, backward and eval forward, given how many images each phase
 * ran — and the share of each row in the train step and in inference. */
void model_profile_start(Model *m);
void model_profile_print(const Model *m, FILE *f, double train_images, double eval_images);

/* Forward the first n rows of m->input; returns the logits (n, 10), owned
 * by the model. training=1: batch statistics and dropout. */
float *model_forward(Model *m, int n, int training);
/* Backward from dlogits (n, 10) (written into the last layer's dy by the
 * caller or passed here); adds parameter gradients into m->grads. */
void model_backward(Model *m, const float *dlogits, int n);
void model_zero_grad(Model *m);
/* Fill m->input rows from uint8 pixels (n, H*W), normalised. */
void model_load_pixels(Model *m, const uint8_t *pixels, int n);

/* Mixed precision (--precision bf16): the im2col convolutions multiply in
 * bfloat16 with float32 accumulation and float32 master weights (AVX512_BF16;
 * twice the FLOP rate here). Process-wide. Returns 1 if on, 0 if this CPU or
 * build cannot (then everything stays fp32). */
int model_set_bf16(int on);
int model_bf16(void);

/* Keras-style table: layer, output shape, parameters. */
void model_summary(const Model *m, FILE *f);
/* Multiply-accumulates per image for the forward pass. */
double model_macs(const Model *m);

/* ---- model file: safetensors ------------------------------------------------
 * (src/model/safetensors.c) 8-byte little-endian header length, JSON header
 * (tensor name -> dtype F32|F16|BF16, shape, data_offsets; "__metadata__" ->
 * string map), raw little-endian data. Metadata: digits.format,
 * digits.version, digits.dtype, digits.spec, digits.norm_mean,
 * digits.norm_std, digits.train_config, digits.metrics. Saving is atomic (temp file, fsync,
 * rename). Loading checks every name, shape and offset and reports which is
 * wrong: "m.safetensors: tensor 3.weight: shape [32,1,3,3], expected [16,1,3,3]". */
int model_save(const Model *m, const char *path);
int model_load(Model *m, const char *path);

/* Stored tensor types. Loading takes any of them (widened to fp32);
 * saving picks one per file: F32 (the default, exact), or BF16 / F16,
 * rounded to nearest even (half the size; BF16 keeps fp32's range, F16
 * refuses a weight of magnitude >= 65520 naming the tensor). Metadata
 * digits.dtype records the choice. Checkpoints always stay F32. */
typedef enum { DG_DTYPE_F32 = 0, DG_DTYPE_BF16, DG_DTYPE_F16 } DgDtype;
/* "f32"/"fp32", "bf16", "f16"/"fp16" (any case) -> *out; -1 otherwise. */
int dtype_parse(const char *s, DgDtype *out);
/* The safetensors name: "F32", "BF16", "F16". */
const char *dtype_name(DgDtype d);
/* The conversions (round to nearest even; NaN stays NaN, overflow -> Inf). */
uint16_t dtype_f32_to_bf16(float f);
float dtype_bf16_to_f32(uint16_t h);
uint16_t dtype_f32_to_f16(float f);
float dtype_f16_to_f32(uint16_t h);
/* model_save with the tensors stored as `dtype` (atomic). */
int model_save_dtype(const Model *m, const char *path, DgDtype dtype);

/* A model file with more in it (checkpoints, resume.c): extra metadata
 * (key, value, ..., NULL) and extra 1-D tensors, named "train.*" so that
 * model_load skips them (a checkpoint is a usable model file). */
typedef struct {
    const char *name;
    const char *dtype; /* "F32" or "I32" ("I8": safetensors_write_raw) */
    size_t count;      /* elements */
    const void *data;
} SafeTensor;
int model_save_extra(const Model *m, const char *path, const char *const *meta_kv,
                     const SafeTensor *extra, int n_extra);
/* An opened safetensors file (read whole, header parsed and checked). */
typedef struct SafeTensors SafeTensors;
SafeTensors *safetensors_open(const char *path); /* NULL + dg_errmsg() */
void safetensors_close(SafeTensors *s);
const char *safetensors_path(const SafeTensors *s);
const char *safetensors_meta(const SafeTensors *s, const char *key); /* NULL if absent */
/* The distinct dtypes of the file's tensors (not a checkpoint's train.*),
 * "+"-joined in file order ("BF16", "F32+I32") into buf; returns how many. */
int safetensors_dtypes(const SafeTensors *s, char *buf, size_t len);
/* Copy tensor `name` of dtype "F32"/"I32" with exactly `count` elements into
 * dst; -1 with "path: tensor NAME: problem" otherwise. */
int safetensors_get(const SafeTensors *s, const char *name, const char *dtype, size_t count, void *dst);
/* model_load from an opened file. */
int model_load_from(Model *m, const SafeTensors *s);
/* Load tensors from a safetensors file into an already built model (the
 * names must match the spec). Used by load and by the PyTorch parity tests. */
int model_load_weights(Model *m, const char *path);
/* Several models in one file (an ensemble): model k's tensors are named
 * prefixes[k] + "3.weight". metadata_json: a JSON object of string values
 * written as "__metadata__" (digits.format is added). Atomic. */
int models_save(const char *path, const Model *const *models, const char *const *prefixes, int n,
                const char *metadata_json);
/* models_save with the tensors stored as `dtype`. */
int models_save_dtype(const char *path, const Model *const *models, const char *const *prefixes, int n,
                      const char *metadata_json, DgDtype dtype);
/* Load such a file's tensors into already built models; every tensor in
 * the file must belong to one of them. */
int models_load_weights(Model *const *models, const char *const *prefixes, int n, const char *path);
/* Read one F32/F16/BF16 tensor by name from any safetensors file, as fp32
 * (owned *data). */
int safetensors_read(const char *path, const char *name, float **data, size_t *count);
/* The file's "__metadata__" object as JSON text (malloc'd; "{}" if none);
 * NULL with dg_errmsg() if the file is not a readable safetensors file. */
char *safetensors_metadata(const char *path);

/* ---- generic safetensors: model files that are not one network ------------
 * (the PCA + SVM baseline): named F32 tensors and string metadata, with the
 * same checks as model_load. */
typedef struct {
    const char *name;
    int ndim, shape[4];
    const float *data;
} StTensor;
/* Atomic write of n tensors; meta_json: a JSON object of string values
 * (the "__metadata__"), or NULL. */
int safetensors_write(const char *path, const char *meta_json, const StTensor *t, int n);
/* Atomic write of n 1-D tensors of dtype "F32", "I32" or "I8" (SafeTensor
 * above; int8 model files, src/quant/qfile.c); meta_json as above. */
int safetensors_write_raw(const char *path, const char *meta_json, const SafeTensor *t, int n);
/* Read with safetensors_open / safetensors_meta / safetensors_close above, and: */
/* Copy tensor `name` into *data (malloc'd) after checking dtype F32, that its
 * shape is exactly shape[0..ndim) and its offsets lie in the file:
 * "m.safetensors: tensor svm.sv: shape [3,154], expected [20,154]". */
int safetensors_get_f32(const SafeTensors *f, const char *name, int ndim, const int *shape, float **data);
/* -1 naming the first tensor of the file that is not one of names[n]. */
int safetensors_only(const SafeTensors *f, const char *const *names, int n);

#endif
