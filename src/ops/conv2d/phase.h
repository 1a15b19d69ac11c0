/* conv2d/phase.h — stride-2 convolution as a stride-1 one on the input's
 * four phases; see conv2d/phase.c. Internal to src/ops (conv2d/plan.c chooses it). */
#ifndef DG_CONV2D_PHASE_H
#define DG_CONV2D_PHASE_H

#include <stddef.h>

/* Does a (K,C,R,S) stride-`stride` layer on (C,H,W) take the phase path
 * (forward and dx)? Stride 2, R and S odd >= 3, and the stride-1 phase
 * convolution deep and shaped for the direct kernels. */
int conv2d_phase_ok(int C, int H, int W, int K, int R, int S, int stride, int pad);
/* Floats of per-thread scratch (phase weights, packed weights, phase image). */
size_t conv2d_phase_floats(int C, int H, int W, int K, int R, int S, int pad);
/* Pack w (K,C,R,S) into ws for conv2d_phase_forward (dx = 0) or
 * conv2d_phase_dx (dx = 1); once per call and thread. */
void conv2d_phase_pack(float *ws, const float *w, int C, int H, int W, int K, int R, int S, int pad, int dx);
/* One image: y (K,P,Q) = bias + conv(x (C,H,W)), stride 2. */
void conv2d_phase_forward(float *y, const float *x, const float *bias, float *ws, int C, int H, int W, int K,
                          int R, int S, int pad);
/* One image: dx (C,H,W) = the input gradient of that conv for dy (K,P,Q) (overwritten). */
void conv2d_phase_dx(float *dx, const float *dy, float *ws, int C, int H, int W, int K, int R, int S, int pad);
/* The weight gradient over a chunk of images: begin (zero the phase
 * layer's gradient in ws), conv2d_phase_dw on groups of at most
 * conv2d_phase_dw_group() consecutive images (x: G x C x H x W, dy:
 * G x K x P x Q), then end adds it into dw (K,C,R,S). The forward's or
 * dx's packing is not needed; dx may reuse ws once a group is done. */
int conv2d_phase_dw_group(void);
void conv2d_phase_dw_begin(float *ws, int C, int H, int W, int K, int R, int S, int pad);
void conv2d_phase_dw(const float *dy, const float *x, int G, float *ws, int C, int H, int W, int K, int R, int S,
                     int pad);
void conv2d_phase_dw_end(float *dw, float *ws, int C, int H, int W, int K, int R, int S, int pad);

#endif
