/* conv2d/direct.h — direct AVX-512 stride-1 convolution on small images;
 * see conv2d/direct.c.
 * Internal to src/ops: conv2d/plan.c chooses it, conv2d/forward.c and
 * conv2d/backward.c call it. */
#ifndef DG_CONV2D_DIRECT_H
#define DG_CONV2D_DIRECT_H

#include <stddef.h>

/* Should the direct kernels run this shape (forward and dw: depth = C*R*S)?
 * Stride 1, rows of 8..32 floats, a shallow reduction, AVX-512. */
int conv2d_direct_ok(int H, int W, int R, int S, int stride, int pad, int depth);
/* ... and dx (a forward pass with flipped, transposed weights: depth = K*R*S)? */
int conv2d_direct_dx_ok(int H, int W, int R, int S, int stride, int pad, int depth);
/* Is a reduction of this depth shallow (where the direct kernels always win)? */
int conv2d_direct_shallow(int depth);
/* The weight-gradient kernel (conv2d_direct_dw): shallow layers only. */
int conv2d_direct_dw_ok(int H, int W, int R, int S, int stride, int pad, int depth);
/* Floats of packed weights for K output and C input channels. */
size_t conv2d_direct_packed_floats(int K, int C, int R, int S);
/* Pack w (K,C,R,S) for conv2d_direct_forward; flip_transpose = 1 packs the
 * weights of the dx pass (C outputs, K inputs, taps flipped). */
void conv2d_direct_pack(float *wp, const float *w, int K, int C, int R, int S, int flip_transpose);
/* One image: y (K,P,Q) = bias + conv(x (C,H,W)), P = H+2pad-R+1, Q = W+2pad-S+1. */
/* xp: scratch of conv2d_direct_pad_floats(C, H, W, pad) floats (the
 * zero-padded copy of x). */
size_t conv2d_direct_pad_floats(int C, int H, int W, int pad);
void conv2d_direct_forward(float *y, const float *x, const float *wp, const float *bias, int C, int H, int W,
                           int K, int R, int S, int pad, float *xp);
/* The same on an input already zero-padded (xp: C x Hp x Wp, no further
 * padding): P = Hp-R+1. Deep reductions only (C*R*S >= the shallow bound). */
void conv2d_direct_forward_padded(float *y, const float *xp, const float *wp, const float *bias, int C, int Hp,
                                  int Wp, int K, int R, int S);
/* One image: dw (K,C,R,S) += sum_{p,q} dy[k,p,q] x[c,p+r-pad,q+s-pad]. */
void conv2d_direct_dw(float *dw, const float *dy, const float *x, int C, int H, int W, int K, int R, int S,
                      int pad, float *xp);
/* The same for G images on inputs already zero-padded (xp: G copies of
 * C x Hp x Wp, xp_img floats apart; dy: G x K x P x Q, P = Hp-R+1). */
void conv2d_direct_dw_padded(float *dw, const float *dy, const float *xp, int C, int Hp, int Wp, int K, int R,
                             int S, int G, size_t xp_img);
/* G consecutive images (x: G x C x H x W, dy: G x K x P x Q) in one pass of
 * the padded-input kernel; xp holds G padded copies. Deep layers only. */
void conv2d_direct_dw_images(float *dw, const float *dy, const float *x, int G, int C, int H, int W, int K, int R,
                             int S, int pad, float *xp);

#endif
