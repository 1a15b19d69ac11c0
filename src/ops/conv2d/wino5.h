/* conv2d/wino5.h — the forward of a 5x5 stride-1 convolution by Winograd
 * F(2x2, 5x5) in AVX-512, fp32, for inference models (packed weights);
 * see conv2d/wino5.c. Internal to src/ops (conv2d/forward.c dispatches to it). */
#ifndef DG_CONV2D_WINO5_H
#define DG_CONV2D_WINO5_H

#include <stddef.h>

/* Can this layer's forward run as Winograd F(2x2,5x5)? AVX-512, a 5x5
 * kernel, stride 1, pad 0..2, K a multiple of 8, C >= 16, outputs of at
 * most 32 columns from inputs of at most 32 (any height). */
int conv2d_wino5_ok(int C, int H, int W, int K, int R, int S, int stride, int pad);
/* Images per call (the `G` below); one image fills the lanes too. */
int conv2d_wino5_group(int C, int H, int W, int pad);
/* Floats of per-thread scratch: the transformed weights, one block of
 * transformed input and one of products. */
size_t conv2d_wino5_floats(int C, int H, int W, int K, int pad);
/* Transform w (K,C,5,5) into the scratch's weight area, once. */
void conv2d_wino5_pack(float *scratch, const float *w, int C, int K);
/* y (G,K,P,Q) = bias + conv(x (G,C,H,W)), 5x5, stride 1, pad; bias may be
 * NULL; G <= conv2d_wino5_group(); the scratch packed by conv2d_wino5_pack. */
void conv2d_wino5_forward(float *y, const float *x, const float *bias, int G, float *scratch, int C, int H, int W,
                          int K, int pad);

#endif
