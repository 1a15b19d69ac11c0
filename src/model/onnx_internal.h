/* onnx_internal.h — what the ONNX sources share (onnx_file.c, onnx_export.c,
 * onnx_import.c): the protobuf-c types generated from onnx.proto, the
 * checked reader and the writer. Not part of the public API. */
#ifndef DG_ONNX_INTERNAL_H
#define DG_ONNX_INTERNAL_H

#include "onnx.pb-c.h"

#include "model/onnx.h"

/* Parse + validate (see onnx_check_buffer); the model is owned by the caller
 * (onnx_model_free). NULL with "origin: problem" in dg_errmsg(). */
Onnx__ModelProto *onnx_parse(const uint8_t *data, size_t len, const char *origin);
/* Read path (at most ONNX_MAX_FILE bytes) and onnx_parse it. */
Onnx__ModelProto *onnx_read(const char *path);
void onnx_model_free(Onnx__ModelProto *mp);

/* Element count of a validated tensor (its dims' product). */
size_t onnx_tensor_count(const Onnx__TensorProto *t);
/* Copy a validated FLOAT tensor's values into dst (count floats); INT64 into
 * dst64. Whether raw_data or the typed field holds them. */
void onnx_tensor_floats(const Onnx__TensorProto *t, float *dst);
void onnx_tensor_int64s(const Onnx__TensorProto *t, int64_t *dst);

/* Serialise mp and write it to path atomically; -1 with dg_errmsg(). */
int onnx_write(const Onnx__ModelProto *mp, const char *path);

#endif
