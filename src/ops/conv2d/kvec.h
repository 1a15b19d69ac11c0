/* conv2d/kvec.h — direct AVX-512 convolution vectorised over output
 * channels, for deep layers with small outputs (7x7, 4x4); see
 * conv2d/kvec.c.
 * Internal to src/ops: conv2d/plan.c chooses it, conv2d/forward.c and
 * conv2d/backward.c call it. */
#ifndef DG_CONV2D_KVEC_H
#define DG_CONV2D_KVEC_H

#include <stddef.h>

/* Should the forward of this layer take the kvec kernels (bf16: in a
 * --precision bf16 run, on bf16 pair words)? AVX-512, K a multiple of 32,
 * a deep reduction, small outputs. */
int conv2d_kvec_ok(int C, int H, int W, int K, int R, int S, int stride, int pad, int bf16);
/* Should its dw take them (in fp32: the fp32 forward layers, and deep
 * 14x14 ones with K a multiple of 32)? */
int conv2d_kvec_dw_ok(int C, int H, int W, int K, int R, int S, int stride, int pad);
/* ... and dx (a forward pass per input phase on dy with the weights
 * transposed; C a multiple of 32)? */
int conv2d_kvec_dx_ok(int C, int H, int W, int K, int R, int S, int stride, int pad, int bf16);
/* Images per kernel call (the `G` below) for this layer. */
int conv2d_kvec_group(int C, int H, int W, int K, int R, int S, int stride, int pad);
/* Floats of per-thread scratch for one call of any kvec pass of the layer
 * (packed weights for forward and dx, G padded images, dy transposed,
 * offset tables). */
size_t conv2d_kvec_floats(int C, int H, int W, int K, int R, int S, int stride, int pad);

/* Pack w (K,C,R,S) into the scratch's weight area: dx = 0 for the forward,
 * dx = 1 for the input gradient (by input phase, transposed); bf16 = 1
 * also as bf16 pair words (gemm_bf16_available() must be true). Once per
 * call and thread, before the passes that use it. */
void conv2d_kvec_pack(float *scratch, const float *w, int C, int H, int W, int K, int R, int S, int stride, int pad,
                      int dx, int bf16);
/* y (G,K,P,Q) = bias + conv(x (G,C,H,W)) for G <= conv2d_kvec_group();
 * bf16: x and w rounded to bf16, products summed in fp32. */
void conv2d_kvec_forward(float *y, const float *x, const float *bias, int G, float *scratch, int C, int H, int W,
                         int K, int R, int S, int stride, int pad, int bf16);
/* dx (G,C,H,W) = input gradient for dy (G,K,P,Q), overwritten; weights
 * packed with dx = 1 (and bf16 likewise). */
/* One image's output rows p0..p1-1 (all channels), fp32; the packed weights
 * in scratch as conv2d_kvec_pack left them. */
void conv2d_kvec_forward_rows(float *y, const float *x, const float *bias, float *scratch, int C, int H, int W, int K,
                              int R, int S, int stride, int pad, int p0, int p1);
void conv2d_kvec_dx(float *dx, const float *dy, int G, float *scratch, int C, int H, int W, int K, int R, int S,
                    int stride, int pad, int bf16);
/* dw (K,C,R,S) += weight gradient of G images (x (G,C,H,W), dy (G,K,P,Q));
 * bf16: x and dy rounded to bf16, products summed in fp32. */
void conv2d_kvec_dw(float *dw, const float *dy, const float *x, int G, float *scratch, int C, int H, int W, int K,
                    int R, int S, int stride, int pad, int bf16);

#endif
