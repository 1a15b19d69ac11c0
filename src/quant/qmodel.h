/* qmodel.h — an int8 model on the host: a flat list of int8 operators
 * (QOp, src/quant/qref.h) with their weights, the input quantisation, the
 * scale of every tensor, and an activation arena laid out per image; the
 * int8 model file (a set of such models: one network or an ensemble's
 * members) and running it: with the reference arithmetic (qref.h, the
 * definition), or with the fast kernels (qkernels.c: AVX512-VNNI or plain
 * C, chosen at run time), bit-identical to it.
 *
 * The input: a 28x28 image of 0..255 pixels enters as q = p - 128 (int8);
 * its real value, the network's normalised input (p/255 - mean)/std, is
 * in_scale * (q - in_zp): the normalisation is folded into the first
 * layer. (in_zp is round(255*mean) - 128, so a mean that is not a multiple
 * of 1/255 moves the input by under half a pixel step; calibration sees
 * the same shift.) The logits are the last operator's int8 output; real
 * logits are scales[last] * (q - ops[last].out_zp).
 *
 * Tensor ids: -1 is the image, i >= 0 the output of ops[i]; an op reads
 * only earlier tensors. Every op's output has its own place in the arena
 * (act_off[i]); the host keeps them all (small: < 100 KB per image for the
 * zoo). An exporter that needs less RAM plans its own arena from the
 * graph (ops[i].in0/in1) and the sizes (k*oh*ow).
 *
 * Float islands: a layer with no int8 form (the spatial transformer's
 * grid sampling) is a QOP_FLOAT_STN op that dequantizes its inputs, runs
 * the float op and quantizes its output (qmodel_float_stn, host only).
 * Left out on purpose: depthwise convolutions.
 */
#ifndef DG_QMODEL_H
#define DG_QMODEL_H

#include <stddef.h>
#include <stdint.h>

#include "quant/qref.h"

#define QMODEL_MAX_OPS 256

typedef struct {
    int n_ops;
    QOp *ops;          /* (n_ops), owned, with every array they point to */
    float *scales;     /* (n_ops) each op's output scale: real = scale * (q - out_zp) */
    char (*what)[64];  /* (n_ops) the float layers each op stands for ("0 conv2d+1 batchnorm+2 relu") */
    float in_scale;    /* real input = in_scale * (q - in_zp), q = pixel - 128 */
    int32_t in_zp;
    size_t *act_off;   /* (n_ops) byte offset of op i's output in an image's arena */
    size_t act_bytes;  /* arena bytes per image */
    int in_c, in_h, in_w; /* input shape (1, 28, 28) */
    char name[128];    /* the float model's spec name ("cnn-bn") */
    char *spec_text;   /* the float model's spec (owned; may be NULL) */
    void *fast;        /* the fast kernels' per-op data (weight sums, packed weights): qkernels_prepare */
} QModel;

/* Number of classes every model ends with. */
#define QMODEL_CLASSES 10

/* Release everything q owns (q may be zeroed or half built). */
void qmodel_free(QModel *q);

/* Check a model's graph and parameters: ids, shapes (every op's output
 * size from its input size), zero points in [-128, 127], multipliers in
 * [0, 2^31), shifts in [1, 62], clamps lo <= hi, scales finite and > 0,
 * the last op giving 10 logits; then lay out the arena (act_off,
 * act_bytes). Returns -1 with "origin: op N: problem" in dg_errmsg(). */
int qmodel_check(QModel *q, const char *origin);

/* Reference run of one image (pixels: in_c*in_h*in_w values 0..255) with
 * the qref.h arithmetic: writes the 10 int8 logits and returns the
 * predicted digit (largest logit, first on ties). arena: act_bytes bytes
 * of the caller's. */
int qmodel_run_ref(const QModel *q, const uint8_t *pixels, int8_t *arena, int8_t logits[QMODEL_CLASSES]);

/* The float island QOP_FLOAT_STN (see the file comment): x the int8 input
 * tensor, theta_q its 6 int8 theta values, y the int8 output. Deterministic:
 * every kernel choice runs this same function. */
void qmodel_float_stn(const QModel *q, const QOp *op, const int8_t *x, const int8_t *theta_q, int8_t *y);
/* Number of float islands in q. */
int qmodel_float_ops(const QModel *q);

/* Which kernels qmodel_run uses. */
typedef enum {
    QKERN_AUTO = 0, /* AMX, else VNNI when the CPU has it, else C; DIGITS_INT8_KERNELS = "c", "ref" or
                       "vnni" (no AMX tiles) forces one */
    QKERN_REF,      /* qref.h, one image at a time */
    QKERN_C,        /* plain-C integer kernels (im2col + int32 dot products) */
    QKERN_VNNI,     /* AVX512-VNNI vpdpbusd; falls back to C if the CPU lacks it */
    QKERN_AMX       /* QKERN_VNNI plus AMX-INT8 tiles for the convolutions that suit them (16+ input
                       channels) where the CPU and the OS allow them; else as QKERN_VNNI */
} QKernels;

/* Run n images (n x in_c*in_h*in_w pixels) with the chosen kernels; logits
 * (n, 10) int8, pred (n) the predicted digits (may be NULL). Threads over
 * images with OpenMP. Bit-identical to qmodel_run_ref for every choice. */
void qmodel_run(const QModel *q, const uint8_t *pixels, int n, int8_t *logits, uint8_t *pred, QKernels kernels);
/* Per-op profile of qmodel_run's batch loop on this thread (no OpenMP): n
 * images through q with the chosen kernels (QKERN_REF: the C ones), op_s
 * (n_ops + 1, the caller's) receives each op's seconds, op_s[n_ops] the
 * image loading. For bench_int8 --profile. */
void qmodel_profile(const QModel *q, const uint8_t *pixels, int n, QKernels kernels, double *op_s);
/* The kernels QKERN_AUTO resolves to here (QKERN_AMX, QKERN_VNNI or QKERN_C). */
QKernels qkernels_auto(void);
/* Name of a kernel choice ("amx", "vnni", "c", "ref"). */
const char *qkernels_name(QKernels k);

/* Build / free q->fast (qmodel_check calls prepare, qmodel_free release). */
void qkernels_prepare(QModel *q);
void qkernels_release(QModel *q);

/* Dequantized logits (n, 10) of int8 logits from qmodel_run. */
void qmodel_dequant_logits(const QModel *q, const int8_t *logits, int n, float *out);

/* ==== the int8 model file ==================================================
 * A safetensors file with metadata digits.kind = "int8", digits.int8.members
 * = N, digits.vote ("logits" or "probs", ensembles), and per member k:
 * digits.int8.m<k> = a JSON object {name, spec, in_scale, in_zp, in: [c,h,w],
 * ops: [{type, in0, in1, c, h, w, c1, k, oh, ow, kh, kw, stride, pad_t, pad_l,
 * in_zp, in1_zp, out_zp, scale, what}, ...]} and tensors m<k>.<i>.weight
 * (I8), .bias (I32), .mult (I32), .shift (I32), .act_min (I8), .act_max
 * (I8), .lut (I8) for the ops that have them. The float model's metadata
 * (norm, training configuration, metrics) is kept beside. */
typedef struct {
    int n;             /* members (1: one network) */
    QModel *members;   /* (n), owned */
    int vote_logits;   /* ensemble: 1 = sum of logits, 0 = mean of probabilities */
} QFile;

/* Load and check an int8 model file; -1 with "path: problem" in dg_errmsg()
 * (not an int8 file, a missing or malformed tensor, a corrupt scale...). */
int qfile_load(QFile *f, const char *path);
/* Write it atomically; extra_meta_json: a JSON object of string values to
 * keep beside (or NULL). */
int qfile_save(const QFile *f, const char *path, const char *extra_meta_json);
void qfile_free(QFile *f);
/* Weights and biases of all members (the int8 "parameters"). */
size_t qfile_param_count(const QFile *f);
/* Write the int8 logits of a one-network int8 file for n images (n x
 * 784 pixels; labels may be NULL) to out ("-": stdout), one line per image:
 * "index label predicted l0 ... l9", after a '#' header line giving the
 * logits' scale and zero point (qlogits.c). -1 with dg_errmsg(). */
int qfile_dump_logits(const char *model_path, const uint8_t *pixels, const uint8_t *labels, int n, const char *out);
/* 1 if the metadata JSON says digits.kind = "int8". */
int qfile_is_int8_meta(const char *meta_json);

#endif
