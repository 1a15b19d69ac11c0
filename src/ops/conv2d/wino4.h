/* conv2d/wino4.h — the forward of a 3x3 stride-1 convolution by Winograd
 * F(4x4, 3x3) in AVX-512, fp32, for inference models (packed weights);
 * see conv2d/wino4.c. Internal to src/ops (conv2d/forward.c dispatches to it). */
#ifndef DG_CONV2D_WINO4_H
#define DG_CONV2D_WINO4_H

#include <stddef.h>

/* Can this layer's forward run as Winograd F(4x4,3x3)? AVX-512, a 3x3
 * kernel, stride 1, pad 0..2, K a multiple of 8, C >= 16, outputs of at
 * most 32 columns from inputs of at most 32 (any height, any width). */
int conv2d_wino4_ok(int C, int H, int W, int K, int R, int S, int stride, int pad);
/* Images side by side in one tile vector: 2 (outputs over 16 wide) or 4. */
int conv2d_wino4_images(int H, int W, int pad);
/* Images per call (the `G` below). */
int conv2d_wino4_group(int C, int H, int W, int pad);
/* Floats of per-thread scratch: the transformed weights, one block of
 * transformed input and one of products. */
size_t conv2d_wino4_floats(int C, int H, int W, int K, int pad);
/* Transform w (K,C,3,3) into the scratch's weight area, once. */
void conv2d_wino4_pack(float *scratch, const float *w, int C, int K);
/* y (G,K,P,Q) = bias + conv(x (G,C,H,W)), 3x3, stride 1, pad; bias may be
 * NULL; G <= conv2d_wino4_group(); the scratch packed by conv2d_wino4_pack. */
void conv2d_wino4_forward(float *y, const float *x, const float *bias, int G, float *scratch, int C, int H, int W,
                          int K, int pad);

#endif
