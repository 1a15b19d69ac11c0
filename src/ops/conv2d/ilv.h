/* conv2d/ilv.h — inference batches of small convolutions with 16 images
 * interleaved in the vector lanes (see conv2d/ilv.c). */
#ifndef DG_CONV2D_ILV_H
#define DG_CONV2D_ILV_H

#include <stddef.h>

#include "ops/ops.h"

/* Does this layer's shape take the interleaved kernel (stride 1, at most
 * 160 taps x input channels, at most 16 output channels, outputs up to 32
 * wide, at least 3x3; AVX-512 builds only)? The caller also checks the
 * epilogue: no zero padding after the conv. */
int conv2d_ilv_ok(int C, int H, int W, int K, int R, int S, int stride, int pad);
/* Images per kernel call (the lanes). */
int conv2d_ilv_images(void);
/* Floats of one thread's workspace: packed weights, then the regrouped
 * input and the interleaved output of one call. */
size_t conv2d_ilv_floats(int C, int H, int W, int K, int R, int S, int pad);
/* Pack w (K, C, R, S) into the first part of ws. */
void conv2d_ilv_pack(float *ws, const float *w, int C, int K, int R, int S);
/* g <= 16 images: y (g, K, plane) = ep(bias + conv(x (g, C, H, W))), the
 * plane pooled as ep says (ep may be NULL; no padded epilogue); ws as
 * packed by conv2d_ilv_pack. bias may be NULL. */
void conv2d_ilv_forward(float *y, const float *x, const float *bias, int g, float *ws, int C, int H, int W, int K,
                        int R, int S, int pad, const Epilogue *ep);

#endif
