/* onnx_build.h — building an ONNX graph in memory and writing it: nodes,
 * attributes, initializers and value infos as protobuf-c structs whose
 * memory the builder owns, then one ModelProto (opset 17, IR version 8,
 * metadata) written atomically. What the float export (onnx_export.c) and
 * the int8 export (onnx_int8.c) share. Not part of the public API. */
#ifndef DG_ONNX_BUILD_H
#define DG_ONNX_BUILD_H

#include "model/onnx_internal.h"

/* Every allocation the graph holds, the nodes (in order) and initializers. */
typedef struct {
    void **allocs;
    size_t n_allocs, cap_allocs;
    Onnx__NodeProto **nodes;
    size_t n_nodes, cap_nodes;
    Onnx__TensorProto **inits;
    size_t n_inits, cap_inits;
} Builder;

/* Release everything b owns (the nodes, tensors and strings built in it). */
void builder_free(Builder *b);
/* Zeroed memory owned by the builder. */
void *b_alloc(Builder *b, size_t bytes);
/* printf into builder-owned memory. */
char *b_fmt(Builder *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A node op(inputs...) -> one output named out (NULL: a fresh name).
 * Returns the node; its output is node->output[0]. */
Onnx__NodeProto *b_node(Builder *b, const char *op, const char *out, int n_in, ...);
/* One attribute slot of nd, named and typed (the caller fills the value). */
Onnx__AttributeProto *b_attr(Builder *b, Onnx__NodeProto *nd, const char *name,
                             Onnx__AttributeProto__AttributeType type);
void b_attr_int(Builder *b, Onnx__NodeProto *nd, const char *name, int64_t v);
void b_attr_float(Builder *b, Onnx__NodeProto *nd, const char *name, float v);
void b_attr_string(Builder *b, Onnx__NodeProto *nd, const char *name, const char *v);
/* ints = n copies of v ({v, v} for kernel_shape, 4 of them for pads). */
void b_attr_ints(Builder *b, Onnx__NodeProto *nd, const char *name, int n, int64_t v);

/* An initializer of element type data_type (ONNX__TENSOR_PROTO__DATA_TYPE__*,
 * elem_size bytes each), dims[ndim]; the values are copied into raw_data
 * (little-endian, as this machine's). Returns its name. */
char *b_tensor(Builder *b, char *name, int data_type, size_t elem_size, int ndim, const int64_t *dims,
               const void *data);
/* A float32 (data != NULL) or int64 (data64) initializer. */
char *b_init(Builder *b, char *name, int ndim, const int64_t *dims, const float *data, const int64_t *data64);
/* A float32 scalar initializer. */
char *b_scalar(Builder *b, char *name, float v);

/* A value info of element type elem_type: name, (N, dims[1..ndim-1]) with N
 * the dynamic batch. */
Onnx__ValueInfoProto *b_value_info(Builder *b, const char *name, int elem_type, int ndim, const int *dims);

/* The graph "digits" of b's nodes and initializers with these inputs and
 * outputs, as a model (default domain, ONNX_OPSET, ONNX_IR_VERSION,
 * producer digits) with metadata_props kv (key, value, ..., NULL), written
 * atomically to path. -1 with dg_errmsg(). */
int b_write_model(Builder *b, const char *path, Onnx__ValueInfoProto **in, int n_in, Onnx__ValueInfoProto **out,
                  int n_out, const char *const *kv);

#endif
