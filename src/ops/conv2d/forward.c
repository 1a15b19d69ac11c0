/* conv2d/forward.c — the 2-D convolution's forward (cross-correlation, as
 * PyTorch), fast version: OpenMP over the batch, each layer on the path
 * measured fastest for its shape (bench/bench_kernels), chosen once per
 * call by conv_plan_forward (conv2d/plan.c):
 *   - Winograd F(2x2,3x3) for 3x3 stride-1 layers with even outputs up to
 *     30 wide (conv2d/wino.c; with a bf16 product in bf16 runs); an
 *     inference model's fp32 batch by F(4x4,3x3) (conv2d/wino4.c), a 5x5
 *     stride-1 layer's by F(2x2,5x5) (conv2d/wino5.c);
 *   - the direct row kernels (conv2d/direct.c: stride 1, rows of 8-32
 *     floats; one input channel at inference: conv2d/c1.c);
 *   - the output-channel kernels (conv2d/kvec.c: deep layers with small
 *     outputs, fp32 or bf16 pair words);
 *   - stride 2 on the input's phases (conv2d/phase.c);
 *   - inference batches of small layers with the images in the vector
 *     lanes (conv2d/ilv.c);
 *   - otherwise im2col (conv2d/im2col.c; in bands of output rows, one band
 *     for every zoo shape) into the calling thread's workspace slice and
 *     cblas_sgemm or the bf16 GEMM, one image or a group of images a product.
 * The reference is conv2d/ref.c, the backward conv2d/backward.c.
 * Square or rectangular kernels, one stride and one zero padding for both
 * axes. Left out on purpose: dilation, groups, other padding modes.
 *
 * Threading: the batch is cut into nthreads fixed contiguous chunks
 * (conv_chunks), chunk t on workspace slice t whichever OS thread runs it.
 * Inside the parallel region each sgemm runs single-threaded (OpenBLAS's
 * OpenMP build does that by itself; the pthreads build does not, and
 * oversubscribes the cores). With one chunk (nthreads == 1, or N == 1) the
 * forward opens no region at all (a region with a false `if` still costs
 * ~0.3 us, felt in single-image latency), so the BLAS is free to thread
 * each sgemm itself.
 *
 * Inference (conv2d_forward_packed) gives each layer its own workspace and
 * packs the weights of the Winograd, direct, phase and kvec paths into it
 * once, not per call: that packing was 47 % of kaggle-deep's one-image
 * forward (perf; 128->128 5x5 alone 40 %). There a one-image call of a
 * large layer is also cut into one block per thread: by tile rows
 * (Winograd), by output rows (kvec) or by output channels (forward_rows,
 * forward_split; core/blocks.h).
 * An inference epilogue may end in a max pooling or a zero padding
 * (Epilogue.pool / .padded): each kernel call then writes into the
 * thread's pool buffer and chunk_finish writes the pooled or padded
 * planes to y, so the full-size output never reaches memory.
 */
#include "ops/ops.h"

#include "core/blas.h"
#include <stdlib.h>
#include <string.h>

#include "core/blocks.h"
#include "core/check.h"
#include "ops/conv2d/c1.h"
#include "ops/conv2d/direct.h"
#include "ops/conv2d/ilv.h"
#include "ops/conv2d/im2col.h"
#include "ops/conv2d/kvec.h"
#include "ops/conv2d/phase.h"
#include "ops/conv2d/plan.h"
#include "ops/conv2d/wino.h"
#include "ops/conv2d/wino4.h"
#include "ops/conv2d/wino5.h"
#include "ops/gemm_bf16.h"

/* What one batch chunk needs: the arguments, the layer's plan and the
 * workspace slices that already hold its packed weights. */
typedef struct {
    float *y;
    const float *x, *w, *b;
    float *workspace;
    const Epilogue *ep;
    const int *table; /* im2col by gathers, or NULL */
    ConvShape s;
    ConvLayout lay;
    ConvForwardPlan plan;
    int N;
    int packed_slices; /* slices 0..packed_slices-1 already hold this layer's packed weights */
    int packed4;       /* ... the F(4x4) Winograd weights */
    int packed_ilv;    /* ... the interleaved kernel's weights */
} ForwardChunk;

static inline int pool_out_size(int in, int F, int T) { return (in - F) / T + 1; }

/* Where a kernel call of chunk t writes images n0..: y itself, or with
 * pooling in the epilogue the chunk's own slice of the pool buffer. */
static inline float *chunk_out(const ForwardChunk *f, int t, int n0) {
    if (f->ep && (f->ep->pool || f->ep->padded)) return f->ep->pool_buf + (size_t)t * f->ep->pool_slice;
    return f->y + (size_t)n0 * f->s.K * f->s.P * f->s.Q;
}

/* Plane size of y: pooled, padded or as computed. */
static size_t out_plane(const Epilogue *ep, int P, int Q) {
    if (ep && ep->pool)
        return (size_t)pool_out_size(P, ep->pool, ep->pool_stride) * pool_out_size(Q, ep->pool, ep->pool_stride);
    if (ep && ep->padded) return (size_t)(P + ep->pad[0] + ep->pad[1]) * (Q + ep->pad[2] + ep->pad[3]);
    return (size_t)P * Q;
}

/* The padded epilogue: image i's planes (out + i*img + k*ld, P x Q) into y
 * inside their zeros, one pass over each output plane. */
static void chunk_pad(const ForwardChunk *f, const float *out, size_t img, size_t ld, int n0, int g) {
    const int *pd = f->ep->pad, P = f->s.P, Q = f->s.Q, Wo = Q + pd[2] + pd[3];
    const size_t plane = out_plane(f->ep, P, Q);
    for (int i = 0; i < g; i++)
        for (int k = 0; k < f->s.K; k++) {
            const float *src = out + (size_t)i * img + (size_t)k * ld;
            float *row = f->y + ((size_t)(n0 + i) * f->s.K + k) * plane;
            memset(row, 0, sizeof(float) * (size_t)pd[0] * Wo);
            row += (size_t)pd[0] * Wo;
            for (int p = 0; p < P; p++, row += Wo) {
                memset(row, 0, sizeof(float) * pd[2]);
                memcpy(row + pd[2], src + (size_t)p * Q, sizeof(float) * Q);
                memset(row + pd[2] + Q, 0, sizeof(float) * pd[3]);
            }
            memset(row, 0, sizeof(float) * (size_t)pd[1] * Wo);
        }
}

/* After a kernel call wrote g images (n0..) into out — image i's channel
 * k plane at out + i*img + k*ld — add the bias (may be NULL) and run the
 * epilogue's steps, then its pooling or padding into y. img == K*P*Q is the (g,K,PQ)
 * layout; otherwise (K, g*PQ) with ld = g*PQ (the grouped products). */
static void chunk_finish(const ForwardChunk *f, float *out, size_t img, size_t ld, int n0, int g,
                         const float *bias) {
    const Epilogue *ep = f->ep;
    const int K = f->s.K, P = f->s.P, Q = f->s.Q;
    if (img == (size_t)K * P * Q) epilogue_apply(out, g, K, P * Q, bias, ep);
    else epilogue_apply(out, 1, K, (int)ld, bias, ep);
    if (ep && ep->padded) {
        chunk_pad(f, out, img, ld, n0, g);
        return;
    }
    if (!ep || !ep->pool) return;
    const int F = ep->pool, T = ep->pool_stride;
    const size_t PQo = (size_t)pool_out_size(P, F, T) * pool_out_size(Q, F, T);
    if (ep->pool_avg) { /* as the avgpool layer computes it, plane by plane */
        for (int i = 0; i < g; i++)
            for (int k = 0; k < K; k++)
                avgpool_forward(f->y + ((size_t)(n0 + i) * K + k) * PQo, out + (size_t)i * img + (size_t)k * ld, 1,
                                1, P, Q, F, T);
        return;
    }
    for (int i = 0; i < g; i++)
        maxpool_planes(f->y + (size_t)(n0 + i) * K * PQo, out + (size_t)i * img, ld, K, P, Q, F, T, ep->pool_relu);
}

/* ---- the paths of one chunk --------------------------------------------------
 * Chunk t of nt of the batch (images chunk_begin(t)..chunk_begin(t+1)-1)
 * on workspace slice t, `slice`. The paths that pack weights skip it on
 * the slices that hold them already. */

/* a kernel call's images: g of those left from n0 to end, at most G */
static inline int call_images(int n0, int end, int G) { return end - n0 < G ? end - n0 : G; }

/* images in the vector lanes: 16 images a call, pooled straight into y */
static void chunk_ilv(const ForwardChunk *f, int t, float *slice) {
    const ConvShape *s = &f->s;
    float *ws = conv_area(slice, &f->lay, AREA_ILV);
    if (t >= f->packed_ilv) conv2d_ilv_pack(ws, f->w, s->C, s->K, s->R, s->S);
    const size_t out_img = (size_t)s->K * out_plane(f->ep, s->P, s->Q);
    const int G = conv2d_ilv_images(), end = chunk_begin(t + 1, f->N, f->plan.nt);
    for (int n0 = chunk_begin(t, f->N, f->plan.nt); n0 < end; n0 += G)
        conv2d_ilv_forward(f->y + (size_t)n0 * out_img, f->x + (size_t)n0 * s->C * s->H * s->W, f->b,
                           call_images(n0, end, G), ws, s->C, s->H, s->W, s->K, s->R, s->S, s->pad, f->ep);
}

/* F(4x4,3x3) or F(2x2,5x5) Winograd, the weights in their own area */
static void chunk_wino4(const ForwardChunk *f, int t, float *slice) {
    const ConvShape *s = &f->s;
    const int C = s->C, H = s->H, W = s->W, K = s->K, PQ = s->P * s->Q;
    float *sc = conv_area(slice, &f->lay, AREA_WINO4);
    const int five = s->R == 5;
    if (t >= f->packed4) (five ? conv2d_wino5_pack : conv2d_wino4_pack)(sc, f->w, C, K);
    const int G = five ? conv2d_wino5_group(C, H, W, s->pad) : conv2d_wino4_group(C, H, W, s->pad);
    const int end = chunk_begin(t + 1, f->N, f->plan.nt);
    for (int n0 = chunk_begin(t, f->N, f->plan.nt); n0 < end; n0 += G) {
        const int g = call_images(n0, end, G);
        float *o = chunk_out(f, t, n0);
        (five ? conv2d_wino5_forward : conv2d_wino4_forward)(o, f->x + (size_t)n0 * C * H * W, f->b, g, sc, C, H, W,
                                                             K, s->pad);
        if (f->ep) chunk_finish(f, o, (size_t)K * PQ, PQ, n0, g, NULL);
    }
}

/* F(2x2,3x3) Winograd: G images per call; each chunk transforms its own filters */
static void chunk_wino(const ForwardChunk *f, int t, float *slice) {
    const ConvShape *s = &f->s;
    const int C = s->C, H = s->H, W = s->W, K = s->K, PQ = s->P * s->Q;
    float *sc = conv_area(slice, &f->lay, AREA_WINO);
    const int wb = conv_bf16() && conv2d_wino_bf16_ok(C);
    if (t >= f->packed_slices) conv2d_wino_pack(sc, f->w, C, K, 0, wb);
    const int G = conv2d_wino_group(C, H, W, s->pad), end = chunk_begin(t + 1, f->N, f->plan.nt);
    for (int n0 = chunk_begin(t, f->N, f->plan.nt); n0 < end; n0 += G) {
        const int g = call_images(n0, end, G);
        float *o = chunk_out(f, t, n0);
        conv2d_wino_forward(o, f->x + (size_t)n0 * C * H * W, f->b, g, sc, C, H, W, K, s->pad, wb);
        if (f->ep) chunk_finish(f, o, (size_t)K * PQ, PQ, n0, g, NULL);
    }
}

/* one input channel (inference): the epilogue's steps run in the kernel,
 * its pooling or padding after */
static void chunk_c1(const ForwardChunk *f, int t, float *slice) {
    const ConvShape *s = &f->s;
    const int K = s->K, PQ = s->P * s->Q;
    ForwardChunk rest = *f; /* the pooling or padding, without the steps */
    Epilogue ep;
    if (f->ep) {
        ep = *f->ep;
        ep.n = 0;
        rest.ep = &ep;
    }
    for (int n = chunk_begin(t, f->N, f->plan.nt); n < chunk_begin(t + 1, f->N, f->plan.nt); n++) {
        float *o = chunk_out(f, t, n);
        conv2d_c1_forward(o, f->x + (size_t)n * s->H * s->W, f->w, f->b, s->H, s->W, K, s->pad, f->ep);
        if (f->ep) chunk_finish(&rest, o, (size_t)K * PQ, PQ, n, 1, NULL);
    }
}

/* the direct kernel: each chunk packs its own copy (a few KB, no barrier) */
static void chunk_direct(const ForwardChunk *f, int t, float *slice) {
    const ConvShape *s = &f->s;
    const int C = s->C, H = s->H, W = s->W, K = s->K, PQ = s->P * s->Q;
    float *wp = conv_area(slice, &f->lay, AREA_PACKED);
    if (t >= f->packed_slices) conv2d_direct_pack(wp, f->w, K, C, s->R, s->S, 0);
    float *xp = conv_area(slice, &f->lay, AREA_PAD);
    for (int n = chunk_begin(t, f->N, f->plan.nt); n < chunk_begin(t + 1, f->N, f->plan.nt); n++) {
        float *o = chunk_out(f, t, n);
        conv2d_direct_forward(o, f->x + (size_t)n * C * H * W, wp, f->b, C, H, W, K, s->R, s->S, s->pad, xp);
        if (f->ep) chunk_finish(f, o, (size_t)K * PQ, PQ, n, 1, NULL);
    }
}

/* stride 2 as stride 1 on the input's phases */
static void chunk_phase(const ForwardChunk *f, int t, float *slice) {
    const ConvShape *s = &f->s;
    const int C = s->C, H = s->H, W = s->W, K = s->K, R = s->R, S = s->S, pad = s->pad, PQ = s->P * s->Q;
    float *ps = conv_area(slice, &f->lay, AREA_PHASE);
    if (t >= f->packed_slices) conv2d_phase_pack(ps, f->w, C, H, W, K, R, S, pad, 0);
    for (int n = chunk_begin(t, f->N, f->plan.nt); n < chunk_begin(t + 1, f->N, f->plan.nt); n++) {
        float *o = chunk_out(f, t, n);
        conv2d_phase_forward(o, f->x + (size_t)n * C * H * W, f->b, ps, C, H, W, K, R, S, pad);
        if (f->ep) chunk_finish(f, o, (size_t)K * PQ, PQ, n, 1, NULL);
    }
}

/* output channels in the vector lanes: G images per call */
static void chunk_kvec(const ForwardChunk *f, int t, float *slice) {
    const ConvShape *s = &f->s;
    const int C = s->C, H = s->H, W = s->W, K = s->K, R = s->R, S = s->S, stride = s->stride, pad = s->pad;
    const int PQ = s->P * s->Q, bf16 = conv_bf16();
    float *ks = conv_area(slice, &f->lay, AREA_KVEC);
    if (t >= f->packed_slices) conv2d_kvec_pack(ks, f->w, C, H, W, K, R, S, stride, pad, 0, bf16);
    const int G = conv2d_kvec_group(C, H, W, K, R, S, stride, pad), end = chunk_begin(t + 1, f->N, f->plan.nt);
    for (int n0 = chunk_begin(t, f->N, f->plan.nt); n0 < end; n0 += G) {
        const int g = call_images(n0, end, G);
        float *o = chunk_out(f, t, n0);
        conv2d_kvec_forward(o, f->x + (size_t)n0 * C * H * W, f->b, g, ks, C, H, W, K, R, S, stride, pad, bf16);
        if (f->ep) chunk_finish(f, o, (size_t)K * PQ, PQ, n0, g, NULL);
    }
}

/* im2col of `g` images from n0 into col, side by side (leading dimension g*PQ) */
static void chunk_im2col_group(const ForwardChunk *f, float *col, int n0, int g) {
    const ConvShape *s = &f->s;
    const int PQ = s->P * s->Q, ld = g * PQ;
    for (int i = 0; i < g; i++)
        conv_im2col_image(col + (size_t)i * PQ, ld, f->x + (size_t)(n0 + i) * s->C * s->H * s->W, f->table, s);
}

/* A group's (K, g*PQ) product back into y's images (N,K,PQ). */
static void group_scatter(float *tensor, const float *group, int n0, int g, int K, int PQ) {
    for (int i = 0; i < g; i++)
        for (int k = 0; k < K; k++)
            memcpy(tensor + ((size_t)(n0 + i) * K + k) * PQ, group + (size_t)k * g * PQ + (size_t)i * PQ,
                   sizeof(float) * PQ);
}

/* bf16 products of im2col, `group` images per product */
static void chunk_bf16(const ForwardChunk *f, int t, float *slice) {
    const ConvShape *s = &f->s;
    const int K = s->K, PQ = s->P * s->Q, CRS = s->C * s->R * s->S, group = f->plan.group;
    const int pooled = f->ep && (f->ep->pool || f->ep->padded); /* written through the pool buffer */
    float *col = conv_area(slice, &f->lay, AREA_COL);
    Bf16Scratch bs = conv_bf16_scratch(slice, &f->lay, s, group * PQ);
    const size_t lw = bf16_pair_words(CRS);
    bf16_convert_rows(bs.w, lw, f->w, CRS, K, CRS);
    const int end = chunk_begin(t + 1, f->N, f->plan.nt);
    for (int n0 = chunk_begin(t, f->N, f->plan.nt); n0 < end; n0 += group) {
        const int g = call_images(n0, end, group), ld = g * PQ;
        chunk_im2col_group(f, col, n0, g);
        bf16_pack_b(bs.pack, col, ld, CRS, ld);
        /* (K, g*PQ) = w . col: straight into y[n0] for one image, else through yg */
        float *out = g == 1 ? chunk_out(f, t, n0) : col + (size_t)CRS * group * PQ;
        gemm_bf16(out, ld, bs.w, lw, bs.pack, K, ld, CRS, 0);
        chunk_finish(f, out, g == 1 ? (size_t)K * PQ : (size_t)PQ, ld, n0, g, f->b);
        if (g > 1 && !pooled) group_scatter(f->y, out, n0, g, K, PQ);
    }
}

/* fp32 products of im2col, `group` (> 1) images per product (see conv_group_images) */
static void chunk_grouped(const ForwardChunk *f, int t, float *slice) {
    const ConvShape *s = &f->s;
    const int K = s->K, PQ = s->P * s->Q, CRS = s->C * s->R * s->S, group = f->plan.group;
    const int pooled = f->ep && (f->ep->pool || f->ep->padded);
    float *col = conv_area(slice, &f->lay, AREA_COL), *yg = col + (size_t)CRS * group * PQ;
    const int end = chunk_begin(t + 1, f->N, f->plan.nt);
    for (int n0 = chunk_begin(t, f->N, f->plan.nt); n0 < end; n0 += group) {
        const int g = call_images(n0, end, group), ld = g * PQ;
        chunk_im2col_group(f, col, n0, g);
        /* yg (K, g*PQ) = w (K,CRS) . col (CRS, g*PQ) */
        dg_sgemm_parallel(CblasRowMajor, CblasNoTrans, CblasNoTrans, K, ld, CRS, 1.0f, f->w, CRS, col, ld, 0.0f, yg,
                          ld);
        chunk_finish(f, yg, g == 1 ? (size_t)K * PQ : (size_t)PQ, ld, n0, g, f->b);
        if (!pooled) group_scatter(f->y, yg, n0, g, K, PQ);
    }
}

/* fp32 products one image at a time: pointwise straight from x, otherwise
 * im2col in bands of output rows */
static void chunk_im2col(const ForwardChunk *f, int t, float *slice) {
    const ConvShape *s = &f->s;
    const int K = s->K, P = s->P, Q = s->Q, PQ = P * Q, CRS = s->C * s->R * s->S, band = f->plan.band;
    const int pointwise = conv_pointwise(s);
    float *col = conv_area(slice, &f->lay, AREA_COL);
    for (int n = chunk_begin(t, f->N, f->plan.nt); n < chunk_begin(t + 1, f->N, f->plan.nt); n++) {
        const float *xn = f->x + (size_t)n * s->C * s->H * s->W;
        float *yn = chunk_out(f, t, n);
        if (pointwise) /* y[n] (K,PQ) = w (K,C) . x[n] (C,PQ) */
            dg_sgemm_parallel(CblasRowMajor, CblasNoTrans, CblasNoTrans, K, PQ, CRS, 1.0f, f->w, CRS, xn, PQ, 0.0f,
                              yn, PQ);
        else
            for (int pb = 0; pb < P; pb += band) {
                const int pe = pb + band < P ? pb + band : P, TQ = (pe - pb) * Q;
                if (f->table) conv_im2col_gather(col, TQ, xn, f->table, s); /* one band: the image */
                else conv_im2col_band(col, xn, s, pb, pe);
                /* y[n][:, band] (K,TQ) = w (K,CRS) . col (CRS,TQ) */
                dg_sgemm_parallel(CblasRowMajor, CblasNoTrans, CblasNoTrans, K, TQ, CRS, 1.0f, f->w, CRS, col, TQ,
                                  0.0f, yn + (size_t)pb * Q, PQ);
            }
        chunk_finish(f, yn, (size_t)K * PQ, PQ, n, 1, f->b);
    }
}

/* The paths' chunk functions, by ConvPath. */
static void (*const chunk_path[])(const ForwardChunk *, int, float *) = {
    [PATH_ILV] = chunk_ilv,     [PATH_WINO4] = chunk_wino4, [PATH_WINO] = chunk_wino,
    [PATH_C1] = chunk_c1,       [PATH_DIRECT] = chunk_direct, [PATH_PHASE] = chunk_phase,
    [PATH_KVEC] = chunk_kvec,   [PATH_BF16] = chunk_bf16,   [PATH_GROUPED] = chunk_grouped,
    [PATH_IM2COL] = chunk_im2col,
};

static void forward_chunk(const ForwardChunk *f, int t) {
    chunk_path[f->plan.path](f, t, f->workspace + (size_t)t * f->lay.at[AREA_END]);
}

/* ---- one image cut into blocks (inference) ---------------------------------
 * See conv2d/plan.c for when a one-image call is cut, and how. */

static void forward_impl(float *y, const float *x, const float *w, const float *b, int N, const ConvShape *s,
                         float *workspace, int nthreads, const Epilogue *ep, Conv2dPacked *packed);

/* ep with its per-channel arrays starting at channel k0 and, with
 * pooling, block t's slice of the pool buffer (into *buf); NULL stays NULL. */
static const Epilogue *epilogue_from(const Epilogue *ep, int k0, int t, Epilogue *buf) {
    if (!ep) return NULL;
    *buf = *ep;
    if (buf->pool || buf->padded) buf->pool_buf += (size_t)t * buf->pool_slice;
    for (int s = 0; s < buf->n; s++)
        if (!buf->step[s].relu && !buf->step[s].tanh) {
            buf->step[s].sub += k0;
            buf->step[s].mul += k0;
            buf->step[s].add += k0;
        }
    return buf;
}

typedef struct { /* one split call (forward_split) */
    float *y, *workspace;
    const float *x, *w, *b;
    const Epilogue *ep;
    ConvShape s; /* the layer; each block has Kb of its K channels */
    size_t ws;
    int Kb, have;
} SplitJob;

/* Block t: output channels t*Kb.. on workspace slice t, whichever thread runs it. */
static void split_block(void *arg, int t) {
    const SplitJob *j = arg;
    const int k0 = t * j->Kb;
    ConvShape sb = j->s;
    sb.K = j->Kb;
    Epilogue buf;
    Conv2dPacked own = {j->have, conv_bf16(), 0, j->have, 0, 0}; /* its path's weights (F(2x2) or a 5x5 F(2x2,5x5)) */
    const size_t plane = out_plane(j->ep, j->s.P, j->s.Q);
    forward_impl(j->y + (size_t)k0 * plane, j->x, j->w + (size_t)k0 * j->s.C * j->s.R * j->s.S,
                 j->b ? j->b + k0 : NULL, 1, &sb, j->workspace + (size_t)t * j->ws, 1,
                 epilogue_from(j->ep, k0, t, &buf), &own);
}

/* By output channels: block t on workspace slice t, the blocks shared by
 * the caller and helper threads (core/blocks.h). */
static void forward_split(float *y, const float *x, const float *w, const float *b, const ConvShape *s,
                          float *workspace, const Epilogue *ep, Conv2dPacked *packed, int ns) {
    SplitJob j = {y, workspace, x, w, b, ep, *s, conv_layout(s).at[AREA_END], s->K / ns,
                  packed->split == ns && packed->bf16 == conv_bf16()};
    dg_blocks_run(ns, ns, split_block, &j);
    packed->wino4 = 0; /* the blocks' weights may lie where F(4x4)'s were */
    packed->slices = ns;
    packed->split = ns;
    packed->bf16 = conv_bf16();
}

typedef struct { /* one row-cut call */
    float *y, *out, *workspace; /* out: the conv's planes (K,P,Q): y, or the pool buffer */
    const float *x, *w, *b;
    const Epilogue *ep;
    ConvShape s;
    ConvLayout lay;
    int TH, ns, have, wb;
    int kvec; /* the output-channel kernels (conv2d/kvec.c), cut by output rows */
} RowsJob;

/* The epilogue's per-channel steps on rows p0..p1-1 of each plane. */
static void rows_steps(const RowsJob *j, int p0, int p1) {
    for (int k = 0; k < j->s.K; k++) {
        Epilogue buf;
        epilogue_apply(j->out + (size_t)k * j->s.P * j->s.Q + (size_t)p0 * j->s.Q, 1, 1, (p1 - p0) * j->s.Q, NULL,
                       epilogue_from(j->ep, k, 0, &buf));
    }
}

/* Rows p0..p1-1 of each plane into y inside its zeros (the padded
 * epilogue); the first block writes the top zero rows, the last the bottom. */
static void rows_pad(const RowsJob *j, int p0, int p1) {
    const int *pd = j->ep->pad, P = j->s.P, Q = j->s.Q, Wo = Q + pd[2] + pd[3];
    const size_t plane = out_plane(j->ep, P, Q);
    for (int k = 0; k < j->s.K; k++) {
        const float *src = j->out + (size_t)k * P * Q;
        float *yk = j->y + (size_t)k * plane;
        if (p0 == 0) memset(yk, 0, sizeof(float) * (size_t)pd[0] * Wo);
        for (int p = p0; p < p1; p++) {
            float *row = yk + (size_t)(pd[0] + p) * Wo;
            memset(row, 0, sizeof(float) * pd[2]);
            memcpy(row + pd[2], src + (size_t)p * Q, sizeof(float) * Q);
            memset(row + pd[2] + Q, 0, sizeof(float) * pd[3]);
        }
        if (p1 == P) memset(yk + (size_t)(pd[0] + P) * Wo, 0, sizeof(float) * (size_t)pd[1] * Wo);
    }
}

/* Block t: tile rows TH*t/ns.. of every channel (kvec: output rows
 * P*t/ns..), then its epilogue. Each block packs the whole layer's
 * weights into its own slice once (as the batch chunks do). */
static void rows_block(void *arg, int t) {
    const RowsJob *j = arg;
    const ConvShape *s = &j->s;
    const int C = s->C, H = s->H, W = s->W, K = s->K, pad = s->pad;
    float *slice = j->workspace + (size_t)t * j->lay.at[AREA_END];
    int r0, p0, p1;
    if (j->kvec) {
        float *ks = conv_area(slice, &j->lay, AREA_KVEC);
        if (t >= j->have) conv2d_kvec_pack(ks, j->w, C, H, W, K, s->R, s->S, s->stride, pad, 0, 0);
        r0 = p0 = s->P * t / j->ns, p1 = s->P * (t + 1) / j->ns;
        conv2d_kvec_forward_rows(j->out, j->x, j->b, ks, C, H, W, K, s->R, s->S, s->stride, pad, p0, p1);
    } else {
        float *sc = conv_area(slice, &j->lay, AREA_WINO);
        if (t >= j->have) conv2d_wino_pack(sc, j->w, C, K, 0, j->wb);
        const int r1 = j->TH * (t + 1) / j->ns; /* tile rows r0..r1-1: output rows 2*r0..2*r1-1 */
        r0 = j->TH * t / j->ns, p0 = 2 * r0, p1 = 2 * r1;
        conv2d_wino_forward_rows(j->out, j->x, j->b, sc, C, H, W, K, pad, j->wb, r0, r1);
    }
    const Epilogue *ep = j->ep;
    if (!ep) return;
    if (ep->n) rows_steps(j, p0, p1);
    if (ep->padded) {
        rows_pad(j, p0, p1);
    } else if (ep->pool) { /* 2x2, stride 2: tile rows are the pooled rows */
        const int Qo = s->Q / 2;
        const size_t PQ = (size_t)s->P * s->Q;
        for (int k = 0; k < K; k++)
            maxpool_planes(j->y + ((size_t)k * (s->P / 2) + r0) * Qo, j->out + k * PQ + (size_t)p0 * s->Q, PQ, 1,
                           p1 - p0, s->Q, 2, 2, ep->pool_relu);
    }
}

/* By rows: a 3x3 Winograd layer by tile rows, or (kvec) a kvec layer by output rows. */
static void forward_rows(float *y, const float *x, const float *w, const float *b, const ConvShape *s, int kvec,
                         float *workspace, const Epilogue *ep, Conv2dPacked *packed, int ns) {
    const int pooled = ep && (ep->pool || ep->padded), bf16 = conv_bf16();
    const int have = packed->bf16 == bf16 && !packed->split ? packed->slices : 0;
    RowsJob j = {y, pooled ? ep->pool_buf : y, workspace, x, w, b, ep, *s, conv_layout(s),
                 kvec ? 0 : conv2d_wino_tile_rows(s->H, s->pad), ns, have, !kvec && bf16 && conv2d_wino_bf16_ok(s->C),
                 kvec};
    dg_blocks_run(ns, ns, rows_block, &j);
    packed->slices = have > ns ? have : ns;
    packed->bf16 = bf16;
    packed->split = 0;
    packed->rows = ns;
}

/* ---- the forward ----------------------------------------------------------- */

/* What the batch chunks leave packed in which slices (inference). */
static void record_packed(Conv2dPacked *packed, const ConvForwardPlan *p, int have, int have4, int have_ilv) {
    const int nt = p->nt;
    if (p->path == PATH_ILV) {
        packed->ilv = have_ilv > nt ? have_ilv : nt;
        if (packed->split) packed->slices = packed->split = 0;
    } else if (p->path == PATH_WINO4) { /* the split blocks' weights (if any) are gone; F(2x2)'s stay */
        packed->wino4 = have4 > nt ? have4 : nt;
        if (packed->split) packed->slices = packed->split = 0;
    } else if (p->packs) {
        packed->slices = have > nt ? have : nt;
        packed->bf16 = conv_bf16();
        packed->split = 0;
    }
}

/* The batch chunks, in parallel when there are several. */
static void forward_chunks(const ForwardChunk *f) {
    /* one chunk: no OpenMP region (one with a false `if` still costs
     * ~0.3 us, a tenth of lenet5's single-image forward over 9 of them) */
    const int nt = f->plan.nt;
    if (nt == 1) {
        forward_chunk(f, 0);
        return;
    }
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt)
#endif
    for (int t = 0; t < nt; t++) forward_chunk(f, t);
}

/* conv2d_forward_ep, and conv2d_forward_packed when packed is not NULL:
 * the paths that pack their weights into the slice (Winograd, direct,
 * phase, kvec) skip it on the slices *packed says hold them, and record
 * the slices they packed. */
static void forward_impl(float *y, const float *x, const float *w, const float *b, int N, const ConvShape *s,
                         float *workspace, int nthreads, const Epilogue *ep, Conv2dPacked *packed) {
    DG_ASSERT(s->P > 0 && s->Q > 0 && s->stride > 0 && s->pad >= 0);
    const ConvForwardPlan p = conv_plan_forward(s, N, nthreads, ep, packed != NULL);
    switch (p.cut) {
    case CUT_LINEAR: /* y (N, K) = x (N, CHW) . w (K, CHW)^T */
        linear_forward_ep(y, x, w, b, N, s->C * s->R * s->S, s->K, ep, nthreads, NULL);
        return;
    case CUT_ROWS:
    case CUT_KVEC_ROWS:
        forward_rows(y, x, w, b, s, p.cut == CUT_KVEC_ROWS, workspace, ep, packed, p.blocks);
        return;
    case CUT_CHANNELS:
        packed->rows = 0;
        forward_split(y, x, w, b, s, workspace, ep, packed, p.blocks);
        return;
    case CUT_NONE:
        break;
    }
    if (packed) packed->rows = 0;
    int table_owned = 0;
    const int *table = p.gather ? conv_gather_table(s, &table_owned) : NULL; /* shared, read-only */
    const int split = packed && packed->split;
    const int have = packed && p.packs && packed->bf16 == conv_bf16() && !split ? packed->slices : 0;
    const int have4 = p.path == PATH_WINO4 && !split ? packed->wino4 : 0;
    const int have_ilv = p.path == PATH_ILV && !split ? packed->ilv : 0;
    const ForwardChunk f = {y, x, w, b, workspace, ep, table, *s, conv_layout(s), p, N, have, have4, have_ilv};
    forward_chunks(&f);
    if (table_owned) free((int *)table);
    if (packed) record_packed(packed, &p, have, have4, have_ilv);
}

void conv2d_forward(float *y, const float *x, const float *w, const float *b, int N, int C,
                    int H, int W, int K, int R, int S, int stride, int pad, float *workspace,
                    int nthreads) {
    conv2d_forward_ep(y, x, w, b, N, C, H, W, K, R, S, stride, pad, workspace, nthreads, NULL);
}

void conv2d_forward_ep(float *y, const float *x, const float *w, const float *b, int N, int C,
                       int H, int W, int K, int R, int S, int stride, int pad, float *workspace,
                       int nthreads, const Epilogue *ep) {
    const ConvShape s = conv_shape(C, H, W, K, R, S, stride, pad);
    forward_impl(y, x, w, b, N, &s, workspace, nthreads, ep, NULL);
}

void conv2d_forward_packed(float *y, const float *x, const float *w, const float *b, int N, int C, int H, int W,
                           int K, int R, int S, int stride, int pad, float *workspace, int nthreads,
                           const Epilogue *ep, Conv2dPacked *packed) {
    const ConvShape s = conv_shape(C, H, W, K, R, S, stride, pad);
    forward_impl(y, x, w, b, N, &s, workspace, nthreads, ep, packed);
}
