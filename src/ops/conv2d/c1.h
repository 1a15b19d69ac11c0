/* conv2d/c1.h — inference kernel for 3x3 stride-1 convolutions of one
 * input channel; see conv2d/c1.c. Internal to src/ops (conv2d/forward.c). */
#ifndef DG_CONV2D_C1_H
#define DG_CONV2D_C1_H

#include "ops/ops.h"

/* Does conv2d_c1_forward run this shape? C == 1, 3x3, stride 1, output
 * and input rows of at most 32 floats, AVX-512 (and the direct kernels on). */
int conv2d_c1_ok(int C, int H, int W, int R, int S, int stride, int pad);
/* Can ep's steps run inside the kernel (relu and affine steps only)? */
int conv2d_c1_steps_ok(const Epilogue *ep);
/* One image: y (K,P,Q) = steps(bias + conv(x (1,H,W), w (K,1,3,3))),
 * steps = ep's steps (ep may be NULL; conv2d_c1_steps_ok(ep) must hold;
 * pooling and padding are left to the caller). bias may be NULL. */
void conv2d_c1_forward(float *y, const float *x, const float *w, const float *bias, int H, int W, int K, int pad,
                       const Epilogue *ep);

#endif
