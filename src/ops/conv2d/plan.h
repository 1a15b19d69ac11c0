/* conv2d/plan.h — a convolution's shape, its workspace layout and the
 * path each pass takes; see conv2d/plan.c. Internal to src/ops: shared by
 * conv2d/forward.c (forward), conv2d/backward.c and conv2d/im2col.c.
 *
 * Every decision about a layer is made here, once per call, from its
 * ConvShape: conv_plan_forward and conv_plan_backward return the path;
 * conv_layout where each path's scratch sits in a thread's workspace
 * slice. The kernel files (conv2d/wino.c, conv2d/kvec.c, ...) only answer
 * "can I run this shape" and "how much scratch do I need". */
#ifndef DG_CONV2D_PLAN_H
#define DG_CONV2D_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "ops/ops.h"

/* x (N,C,H,W), w (K,C,R,S), one stride and one zero padding for both
 * axes; y (N,K,P,Q). */
typedef struct {
    int C, H, W, K, R, S, stride, pad, P, Q;
} ConvShape;

ConvShape conv_shape(int C, int H, int W, int K, int R, int S, int stride, int pad);
static inline int conv_out_size(int in, int k, int stride, int pad) { return (in + 2 * pad - k) / stride + 1; }

/* Is the bf16 product on (conv2d_set_bf16)? */
int conv_bf16(void);
/* Is the path `off` (e.g. "nokvec") switched off by DIGITS_CONV, for A/B
 * measurements? DIGITS_CONV=im2col switches off every special path. */
int conv_path_disabled(const char *off);

/* A 1x1, stride-1, unpadded conv: a plain matrix product on x itself. */
int conv_pointwise(const ConvShape *s);
/* Output rows per band of col: at least 1, at most P. */
int conv_band_rows(const ConvShape *s);
/* Images side by side in one im2col product (1: one at a time). */
int conv_group_images(const ConvShape *s);

/* ---- the workspace slice -------------------------------------------------
 * One thread's slice holds, one after another, the areas below, each as
 * large as the layer's passes need (0 where none of them runs):
 *   COL     one band of col (CRS, rows*Q), or a group's col and output
 *   PACKED  the direct kernels' packed weights
 *   BF16    bf16 weights, col and the packed B operand
 *   PAD     the direct kernels' zero-padded input copies
 *   PHASE   the stride-2 phase kernels' scratch (conv2d/phase.c)
 *   KVEC    the output-channel kernels' scratch (conv2d/kvec.c)
 *   WINO    F(2x2,3x3) Winograd, forward and dx (conv2d/wino.c)
 *   WINO4   F(4x4,3x3) or F(2x2,5x5) Winograd, inference
 *   ILV     the interleaved kernel's (conv2d/ilv.c), inference
 * The paths that pack weights keep them in their own area, so an
 * inference layer's slices hold every path's weights side by side. */
enum { AREA_COL, AREA_PACKED, AREA_BF16, AREA_PAD, AREA_PHASE, AREA_KVEC, AREA_WINO, AREA_WINO4, AREA_ILV, AREA_END };
typedef struct {
    size_t at[AREA_END + 1]; /* floats from the slice's start; at[AREA_END]: the slice */
} ConvLayout;
ConvLayout conv_layout(const ConvShape *s);
static inline float *conv_area(float *slice, const ConvLayout *l, int area) { return slice + l->at[area]; }

/* The bf16 area of a slice: weights, W^T, an image's col, the packed B
 * operand, for products of PQ columns. */
typedef struct {
    uint32_t *w;    /* (K, pairs(CRS))   forward weights */
    uint32_t *wt;   /* (CRS, pairs(K))   dx weights, W^T */
    uint32_t *col;  /* (CRS, pairs(PQ))  dw: the image's col */
    uint32_t *pack; /* packed B operand */
} Bf16Scratch;
Bf16Scratch conv_bf16_scratch(float *slice, const ConvLayout *l, const ConvShape *s, int PQ);

/* ---- the batch chunks ------------------------------------------------------
 * The batch is cut into nt = conv_chunks(N, nthreads) fixed contiguous
 * chunks: chunk t holds images chunk_begin(t)..chunk_begin(t+1)-1 and uses
 * workspace slice t. Depends only on (N, nthreads): the reduction order of
 * the weight gradient stays fixed. */
static inline int conv_chunks(int N, int nthreads) {
    if (nthreads > N) nthreads = N;
    return nthreads < 1 ? 1 : nthreads;
}
static inline int chunk_begin(int t, int N, int nt) { return (int)((long long)t * N / nt); }

/* ---- the forward -----------------------------------------------------------
 * An inference call (packed weights) of one image may first be cut into
 * blocks, one per thread (cut); otherwise each batch chunk runs `path`. */
typedef enum {
    CUT_NONE,       /* the batch chunks */
    CUT_LINEAR,     /* the kernel covers the input: linear_forward_ep */
    CUT_ROWS,       /* a 3x3 Winograd layer by tile rows */
    CUT_KVEC_ROWS,  /* a kvec layer by output rows */
    CUT_CHANNELS,   /* by output channels, each block a convolution of its own */
} ConvCut;

typedef enum {
    PATH_ILV,     /* inference batch, small layer: images in the vector lanes */
    PATH_WINO4,   /* inference batch: F(4x4,3x3), or a 5x5 layer's F(2x2,5x5) */
    PATH_WINO,    /* 3x3 stride 1: F(2x2,3x3) */
    PATH_C1,      /* inference, one input channel (conv2d/c1.c) */
    PATH_DIRECT,  /* stride 1, rows of 8-32 floats (conv2d/direct.c) */
    PATH_PHASE,   /* stride 2 on the input's phases */
    PATH_KVEC,    /* deep layers with small outputs: output channels in the lanes */
    PATH_BF16,    /* im2col and the bf16 product, `group` images a product */
    PATH_GROUPED, /* im2col and sgemm, `group` (> 1) images a product */
    PATH_IM2COL,  /* im2col in bands (or x itself, pointwise) and sgemm, one image at a time */
} ConvPath;

typedef struct {
    ConvCut cut;
    int blocks;   /* the cut's blocks (>= 2) */
    ConvPath path;
    int nt, band, group;
    int gather;   /* im2col by gathers (one band: the whole image) */
    int packs;    /* a path whose weights a slice keeps between inference calls */
} ConvForwardPlan;

/* packed: an inference call (conv2d_forward_packed). */
ConvForwardPlan conv_plan_forward(const ConvShape *s, int N, int nthreads, const Epilogue *ep, int packed);

/* ---- the backward ----------------------------------------------------------
 * Each gradient on its own path: Winograd and the kvec kernels first;
 * what they leave (rest_*) goes to the direct or phase kernels, the bf16
 * products or the fp32 im2col products. */
typedef struct {
    int nt, band, group, dwg, gather, pointwise;
    int want_x, want_w, want_b;
    int direct_w, direct_x, phase_x, wino_w, wino_x, kvec_w, kvec_x, bf16_w, bf16_x;
    int rest_w, rest_b, rest_x; /* what the other paths still owe once Winograd and kvec ran */
} ConvBackwardPlan;

ConvBackwardPlan conv_plan_backward(const ConvShape *s, int N, int nthreads, int want_x, int want_w, int want_b);

#endif
