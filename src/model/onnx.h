/* onnx.h — ONNX model files: export a digits network or ensemble as one
 * ONNX graph, import what torch.onnx.export writes for a plain image
 * classifier, and the checked reader both rest on.
 *
 * The file format is protobuf (third_party/onnx/onnx.proto, ONNX 1.12),
 * read and written by protobuf-c; onnx_file.c validates every field before
 * anything else reads it (sizes, types, tensor data against shapes, names
 * defined before use, so no cycles).
 *
 * The exported graph (opset 17, IR version 8):
 *   input          float32 (N, 1, 28, 28), pixel values 0..255, N dynamic;
 *                  the model's normalisation ((x/255 - mean)/std) is in the graph
 *   logits         float32 (N, 10)  (an ensemble: its voted logits)
 *   probabilities  float32 (N, 10)  softmax of the logits (a probs vote: the mean)
 * metadata_props: digits.spec (or digits.members), digits.version,
 * digits.norm_mean/std, digits.metrics and digits.accuracy when recorded.
 */
#ifndef DG_ONNX_H
#define DG_ONNX_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"
#include "quant/qmodel.h"

#define ONNX_OPSET 17                       /* the operator set digits writes */
#define ONNX_IR_VERSION 8                   /* the IR version that goes with it */
#define ONNX_MAX_FILE ((size_t)1 << 30)     /* largest .onnx file read (1 GiB) */
#define ONNX_MAX_ELEMENTS MODEL_MAX_PARAMS  /* largest tensor read, in elements */
#define ONNX_MAX_NODES 100000               /* most nodes (and initializers) in a graph */

/* Parse and validate an ONNX model held in memory (origin names it in
 * messages). 0 if well formed; -1 with "origin: problem" in dg_errmsg().
 * Allocations are bounded by len. (The fuzz target calls this.) */
int onnx_check_buffer(const uint8_t *data, size_t len, const char *origin);

/* Export n networks as one ONNX file at path (atomic write). n == 1: the
 * network itself; n > 1: an ensemble voting as digits does (vote_logits:
 * sum of logits then softmax; else the mean of the members' softmaxes and
 * logits = log(max(mean, 1e-30))). meta_kv: extra metadata_props pairs
 * (key, value, ..., NULL), may be NULL. origin names the model in messages
 * (its file). -1 with "origin: layer ... cannot be exported" or "path:
 * problem" in dg_errmsg(). */
int onnx_export(const char *path, const Model *const *models, int n, int vote_logits,
                const char *const *meta_kv, const char *origin);

/* Export one int8 network (digits quantize) as one ONNX file at path with
 * ONNX's standard quantized operators (src/model/onnx_int8.c): input
 * "input" uint8 (N, 1, 28, 28) pixels 0..255, outputs "logits" (the int8
 * logits dequantized) and "probabilities" float32 (N, 10). meta_kv as for
 * onnx_export. flags: ONNX_INT8_EXACT writes the convolutions as
 * ConvInteger and digits' own integer requantization (bit-identical to
 * digits, slower in ONNX Runtime) instead of QLinearConv. -1 with
 * "origin: op N is a float island ..." (a spatial transformer) or "path:
 * problem" in dg_errmsg(). */
enum { ONNX_INT8_EXACT = 1 };
int onnx_export_int8(const char *path, const QModel *q, int flags, const char *const *meta_kv, const char *origin);

/* What the imported network expects as its input: it was trained on
 * (p/255 * input_scale - mean) / std for pixel values p in 0..255. PyTorch's
 * ToTensor() alone is scale 1, mean 0, std 1; ToTensor + Normalize((0.1307,),
 * (0.3081,)) is scale 1, mean 0.1307, std 0.3081; raw 0..255 is scale 255. */
typedef struct {
    float input_scale, mean, std;
} OnnxImportOptions;

/* Build *m (model_build + weights) from an ONNX classifier of one 1x28x28
 * image. A digits export is read back through its stored spec with its
 * stored normalisation; any other file node by node, with o as its input
 * convention (NULL: scale 1, mean 0, std 1) combined with any scalar
 * Mul/Add/Sub/Div the graph applies to its input first. flags:
 * ONNX_IMPORT_FORCE_INPUT (o also for a digits export), ONNX_IMPORT_GRAPH
 * (read a digits export node by node too: for tests). -1 with
 * "path: problem" in dg_errmsg(), e.g.
 * "m.onnx: node 'Resize_3' (op Resize) is not supported". */
enum { ONNX_IMPORT_FORCE_INPUT = 1, ONNX_IMPORT_GRAPH = 2 };
int onnx_import(Model *m, const char *path, const OnnxImportOptions *o, int flags);

/* Is this file an ONNX model rather than safetensors? By its name
 * (".onnx"); 1 or 0. */
int onnx_is_onnx_path(const char *path);

#endif
