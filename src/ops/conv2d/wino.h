/* conv2d/wino.h — 3x3 stride-1 convolution by Winograd F(2x2, 3x3) in
 * AVX-512, for the forward and the input gradient of layers such as
 * cnn-bn's 32->32 at 28x28 and 64->64 at 14x14; see conv2d/wino.c.
 *
 * Internal to src/ops: conv2d/plan.c chooses it, conv2d/forward.c and
 * conv2d/backward.c call it. */
#ifndef DG_CONV2D_WINO_H
#define DG_CONV2D_WINO_H

#include <stddef.h>

/* Can this layer's forward run as Winograd F(2x2,3x3)? AVX-512, a 3x3
 * kernel, stride 1, K a multiple of 8, C >= 16, an even output of at most
 * 30 columns. For dx ask with the roles turned:
 * conv2d_wino_ok(K, P, Q, C, 3, 3, 1, 2 - pad). */
int conv2d_wino_ok(int C, int H, int W, int K, int R, int S, int stride, int pad);
/* Images per call (the `G` below). */
int conv2d_wino_group(int C, int H, int W, int pad);
/* Floats of per-thread scratch for one call: transformed weights, G
 * padded images, one block of transformed input and of products. */
size_t conv2d_wino_floats(int C, int H, int W, int K, int pad);

/* Can the product run in bf16 (AVX512_BF16, C even)? */
int conv2d_wino_bf16_ok(int C);
/* Transform w (K,C,3,3) into the scratch's weight area: dx = 0 for the
 * forward; dx = 1 for the input gradient, whose weights are w turned 180
 * degrees with in and out channels swapped (then C and K below are the
 * layer's K and C). Once per call and thread, before the passes. bf16
 * (only where conv2d_wino_bf16_ok(C)): rounded to pair words for the
 * bf16 product; pass the same bf16 to conv2d_wino_forward. */
void conv2d_wino_pack(float *scratch, const float *w, int C, int K, int dx, int bf16);
/* y (G,K,P,Q) = bias + conv(x (G,C,H,W)), 3x3, stride 1, pad; bias may
 * be NULL; G <= conv2d_wino_group(). bf16: the transformed input and
 * weights rounded to bf16, products summed in fp32. */
void conv2d_wino_forward(float *y, const float *x, const float *bias, int G, float *scratch, int C, int H, int W,
                         int K, int pad, int bf16);
/* One image's tile rows r0..r1-1 (output rows 2*r0..2*r1-1) of y (K,P,Q),
 * as conv2d_wino_forward computes them (the same sums), reading only the
 * input rows they need: the rows of a one-image forward cut over threads,
 * each on its own scratch. */
void conv2d_wino_forward_rows(float *y, const float *x, const float *bias, float *scratch, int C, int H, int W, int K,
                              int pad, int bf16, int r0, int r1);
/* Tile rows of the output: P / 2. */
int conv2d_wino_tile_rows(int H, int pad);

/* The weight gradient, in three steps per thread: begin (zero the sums in
 * the scratch), conv2d_wino_dw for each group of at most
 * conv2d_wino_dw_group() images (dy (G,K,P,Q), x (G,C,H,W)), end (dw
 * (K,C,3,3) += the sums turned back into filters). For layers with
 * conv2d_wino_dw_ok(): conv2d_wino_ok(), C 16 or 32, K a multiple of 16. Needs conv2d_wino_dw_floats() of scratch. */
int conv2d_wino_dw_ok(int C, int H, int W, int K, int R, int S, int stride, int pad);
int conv2d_wino_dw_group(int C, int H, int W, int K, int pad);
size_t conv2d_wino_dw_floats(int C, int H, int W, int K, int pad);
void conv2d_wino_dw_begin(float *scratch, int C, int K);
void conv2d_wino_dw(const float *dy, const float *x, int G, float *scratch, int C, int H, int W, int K, int pad);
void conv2d_wino_dw_end(float *dw, const float *scratch, int C, int K);

#endif
