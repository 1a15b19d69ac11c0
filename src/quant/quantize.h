/* quantize.h — post-training int8 quantization of a float network
 * (TensorFlow Lite's scheme, see qref.h): batch norm folded into the
 * convolution or dense layer before it (or, after a ReLU, into the same
 * layer's weights and a per-channel clamp), per-output-channel symmetric
 * int8 weights, per-tensor asymmetric int8 activations whose ranges are
 * calibrated by running the float model on sample images, int32 biases,
 * ReLU fused as a clamp, zero padding folded into the next convolution,
 * element-wise activations (tanh, ELU, ReLU on its own) as 256-entry
 * tables, dropout and flatten free.
 *
 * Left out on purpose: layers that cannot be expressed in int8 (the
 * spatial transformer's grid sampling, a batch norm with no layer to fold
 * into): the model is refused, naming the layer.
 */
#ifndef DG_QUANTIZE_H
#define DG_QUANTIZE_H

#include <stdint.h>

#include "model/model.h"
#include "quant/qmodel.h"

typedef struct {
    /* activation ranges: 0 = min/max over the calibration images; p in
     * (50, 100): the p-th percentile of each tensor's values (and 100 - p for
     * the low end) */
    double percentile;
} QuantizeOptions;

/* Quantize network m (a loaded float model; its activations are
 * reallocated: every layer keeps its output) with n calibration images
 * (n x 784 pixels, 0..255). q receives an owned, checked int8 model.
 * Returns -1 with "origin: layer N (kind): why" in dg_errmsg(). */
int quantize_model(QModel *q, Model *m, const uint8_t *pixels, int n, const QuantizeOptions *opt,
                   const char *origin);

/* The TFLite fixed-point form of a real multiplier M >= 0: M ~= mult /
 * 2^shift with mult < 2^31 (>= 2^30 unless M is tiny) and 1 <= shift <=
 * 62. Returns -1 if M is too large (>= 2^30) or not a number. */
int quantize_multiplier(double m, int32_t *mult, int32_t *shift);

#endif
