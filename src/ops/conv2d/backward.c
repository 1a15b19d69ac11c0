/* conv2d/backward.c — the 2-D convolution's backward, fast version: dx,
 * dw and db of a batch, each gradient on the path conv_plan_backward
 * chose for the layer (conv2d/plan.c): Winograd (dx as the forward of dy
 * with turned filters; dw for 16/32 input channels), the output-channel
 * kernels (conv2d/kvec.c), the direct and stride-2 phase kernels, and
 * otherwise im2col with sgemm or the bf16 GEMM (one image, or a group of
 * images side by side, a product) and col2im.
 *
 * Determinism: the batch is cut into nthreads fixed contiguous chunks
 * (conv_chunks); chunk t uses workspace slice t and dw_partial slice t,
 * whichever OS thread runs it. The chunks' weight gradients are then
 * summed in chunk order 0..nt-1, so dw/db are bit-identical for the same
 * nthreads, however many threads the OpenMP runtime actually grants. With
 * one chunk the region is inactive and the BLAS may thread each sgemm. */
#include "ops/ops.h"

#include "core/blas.h"
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "ops/conv2d/direct.h"
#include "ops/conv2d/im2col.h"
#include "ops/conv2d/kvec.h"
#include "ops/conv2d/phase.h"
#include "ops/conv2d/plan.h"
#include "ops/conv2d/wino.h"
#include "ops/gemm_bf16.h"

/* What one batch chunk needs: the arguments and the layer's plan. */
typedef struct {
    float *dx, *dw_partial, *workspace;
    const float *dy, *x, *w;
    const int *table; /* im2col by gathers, or NULL */
    ConvShape s;
    ConvLayout lay;
    ConvBackwardPlan p;
    size_t nwb; /* floats of one dw_partial slice (dw then db) */
    int N;
} BackwardChunk;

/* pdb[k] += the sum of row k of d (K rows of len floats, row stride ld). */
static inline void add_row_sums(float *pdb, const float *d, int K, int len, size_t ld) {
    for (int k = 0; k < K; k++) {
        const float *restrict r = d + (size_t)k * ld;
        float acc = 0;
#ifdef _OPENMP
#pragma omp simd reduction(+ : acc)
#endif
        for (int i = 0; i < len; i++) acc += r[i];
        pdb[k] += acc;
    }
}

/* Images n0..n0+g-1 of a (N,K,PQ) tensor into a (K, g*PQ) group buffer
 * with the images side by side. */
static void group_gather(float *group, const float *tensor, int n0, int g, int K, int PQ) {
    for (int i = 0; i < g; i++)
        for (int k = 0; k < K; k++)
            memcpy(group + (size_t)k * g * PQ + (size_t)i * PQ, tensor + ((size_t)(n0 + i) * K + k) * PQ,
                   sizeof(float) * PQ);
}

/* Winograd dx of chunk t, G images per call: dx (G,C,H,W) = conv(dy (G,K,P,Q), turned w). */
static void backward_wino_dx(const BackwardChunk *b, int t, float *col) {
    const int C = b->s.C, H = b->s.H, W = b->s.W, K = b->s.K, R = b->s.R, pad = b->s.pad;
    const int N = b->N, nt = b->p.nt, P = b->s.P, Q = b->s.Q;
    float *sc = conv_area(col, &b->lay, AREA_WINO);
    const int wb = conv_bf16() && conv2d_wino_bf16_ok(K);
    conv2d_wino_pack(sc, b->w, K, C, 1, wb);
    const int G = conv2d_wino_group(K, P, Q, R - 1 - pad), end = chunk_begin(t + 1, N, nt);
    for (int n0 = chunk_begin(t, N, nt); n0 < end; n0 += G) {
        const int g = end - n0 < G ? end - n0 : G;
        conv2d_wino_forward(b->dx + (size_t)n0 * C * H * W, b->dy + (size_t)n0 * K * P * Q, NULL, g, sc, K, P, Q, C,
                            R - 1 - pad, wb);
    }
}

/* Winograd dw of chunk t into its partial pw: sums over G images per call, then dw once. */
static void backward_wino_dw(const BackwardChunk *b, int t, float *col, float *pw) {
    const int C = b->s.C, H = b->s.H, W = b->s.W, K = b->s.K, pad = b->s.pad;
    const int N = b->N, nt = b->p.nt;
    float *sc = conv_area(col, &b->lay, AREA_WINO);
    conv2d_wino_dw_begin(sc, C, K);
    const int G = conv2d_wino_dw_group(C, H, W, K, pad), end = chunk_begin(t + 1, N, nt);
    for (int n0 = chunk_begin(t, N, nt); n0 < end; n0 += G) {
        const int g = end - n0 < G ? end - n0 : G;
        conv2d_wino_dw(b->dy + (size_t)n0 * K * b->s.P * b->s.Q, b->x + (size_t)n0 * C * H * W, g, sc, C, H, W, K, pad);
    }
    conv2d_wino_dw_end(pw, sc, C, K);
}

/* Output-channel kernels of chunk t, G images per call: dw and db into the
 * partials (kvec_w), dx (kvec_x). */
static void backward_kvec(const BackwardChunk *b, int t, float *col, float *pw, float *pdb) {
    const int C = b->s.C, H = b->s.H, W = b->s.W, K = b->s.K;
    const int R = b->s.R, S = b->s.S, stride = b->s.stride, pad = b->s.pad;
    const int N = b->N, nt = b->p.nt, PQ = b->s.P * b->s.Q, HW = H * W;
    float *ks = conv_area(col, &b->lay, AREA_KVEC);
    if (b->p.kvec_x && b->dx) conv2d_kvec_pack(ks, b->w, C, H, W, K, R, S, stride, pad, 1, conv_bf16());
    const int G = conv2d_kvec_group(C, H, W, K, R, S, stride, pad), end = chunk_begin(t + 1, N, nt);
    for (int n0 = chunk_begin(t, N, nt); n0 < end; n0 += G) {
        const int g = end - n0 < G ? end - n0 : G;
        const float *dyg = b->dy + (size_t)n0 * K * PQ;
        if (b->p.kvec_w && b->p.want_b)
            for (int i = 0; i < g; i++) add_row_sums(pdb, dyg + (size_t)i * K * PQ, K, PQ, PQ);
        if (b->p.kvec_w && b->p.want_w)
            conv2d_kvec_dw(pw, dyg, b->x + (size_t)n0 * C * HW, g, ks, C, H, W, K, R, S, stride, pad, conv_bf16());
        if (b->p.kvec_x && b->dx)
            conv2d_kvec_dx(b->dx + (size_t)n0 * C * HW, dyg, g, ks, C, H, W, K, R, S, stride, pad, conv_bf16());
    }
}

/* A chunk's bf16 scratch and whether W^T is converted into it yet. */
typedef struct {
    Bf16Scratch bs;
    int wt_ready;
} Bf16State;

/* W^T (CRS,K) as bf16 pair words in s->bs.wt, once per chunk. */
static void bf16_weights_transposed(Bf16State *s, const float *w, int CRS, int K) {
    if (s->wt_ready) return;
    bf16_convert_transposed(s->bs.wt, bf16_pair_words(K), w, CRS, K, CRS);
    s->wt_ready = 1;
}

/* The remaining gradients of chunk t, G images per product (see
 * conv_group_images), bf16 or fp32: db, dw by im2col, dx by col2im. */
static void backward_grouped(const BackwardChunk *b, int t, float *col, float *pw, float *pdb) {
    const int C = b->s.C, H = b->s.H, W = b->s.W, K = b->s.K, R = b->s.R, S = b->s.S;
    const int N = b->N, nt = b->p.nt, P = b->s.P, Q = b->s.Q, PQ = P * Q;
    const int CRS = C * R * S, HW = H * W, group = b->p.group;
    Bf16State s = {conv_bf16_scratch(col, &b->lay, &b->s, group * PQ), 0};
    float *dyg = col + (size_t)CRS * group * PQ;
    const int end = chunk_begin(t + 1, N, nt);
    for (int n0 = chunk_begin(t, N, nt); n0 < end; n0 += group) {
        const int g = end - n0 < group ? end - n0 : group, ld = g * PQ;
        group_gather(dyg, b->dy, n0, g, K, PQ); /* dyg (K, g*PQ): the images' dy */
        if (b->p.rest_b) add_row_sums(pdb, dyg, K, ld, ld);
        if (b->p.rest_w) {
            for (int i = 0; i < g; i++)
                conv_im2col_image(col + (size_t)i * PQ, ld, b->x + (size_t)(n0 + i) * C * HW, b->table, &b->s);
            if (b->p.bf16_w) { /* pw^T (CRS,K) += col (CRS, g*PQ) . dyg^T (g*PQ, K) */
                bf16_convert_rows(s.bs.col, bf16_pair_words(ld), col, ld, CRS, ld);
                bf16_pack_b_transposed(s.bs.pack, dyg, ld, ld, K);
                gemm_bf16(pw, K, s.bs.col, bf16_pair_words(ld), s.bs.pack, CRS, K, ld, 1);
            } else { /* pw (K,CRS) += dyg (K, g*PQ) . col^T (g*PQ, CRS) */
                dg_sgemm_parallel(CblasRowMajor, CblasNoTrans, CblasTrans, K, CRS, ld, 1.0f, dyg, ld, col, ld, 1.0f,
                                  pw, CRS);
            }
        }
        if (b->p.rest_x) { /* dcol (CRS, g*PQ) = w^T (CRS,K) . dyg, then each image's scatter-add */
            if (b->p.bf16_x) {
                bf16_weights_transposed(&s, b->w, CRS, K);
                bf16_pack_b(s.bs.pack, dyg, ld, K, ld);
                gemm_bf16(col, ld, s.bs.wt, bf16_pair_words(K), s.bs.pack, CRS, ld, K, 0);
            } else {
                dg_sgemm_parallel(CblasRowMajor, CblasTrans, CblasNoTrans, CRS, ld, K, 1.0f, b->w, CRS, dyg, ld, 0.0f,
                                  col, ld);
            }
            for (int i = 0; i < g; i++) {
                float *dxn = b->dx + (size_t)(n0 + i) * C * HW;
                memset(dxn, 0, sizeof(float) * C * HW);
                conv_col2im_image(dxn, col + (size_t)i * PQ, ld, &b->s);
            }
        }
    }
}

/* One image of a chunk on the per-image paths: its slot in the chunk
 * (i of left images still to go), its tensors, and which of its
 * gradients are done. */
typedef struct {
    int i, left;
    const float *xn, *dyn;
    float *dxn; /* NULL: dx not owed */
    int dw_done, dx_done;
} Image;

/* A chunk's per-image scratch and the state kept across its images. */
typedef struct {
    float *col, *xp;  /* the workspace slice; the direct kernels' padded input */
    Bf16State bf16;
    int packed;       /* dx weights packed into the slice (direct or phase) */
    int phase_dw;     /* the phase-layer dw started (stride 2, see conv2d/phase.c) */
} ImageScratch;

/* A 1x1 stride-1 layer: both gradients as products on the image itself. */
static void image_pointwise(const BackwardChunk *b, const Image *im, float *pw) {
    const int K = b->s.K, C = b->s.C, PQ = b->s.P * b->s.Q;
    if (b->p.rest_w) /* pw (K,C) += dy[n] (K,PQ) . x[n]^T (PQ,C) */
        dg_sgemm_parallel(CblasRowMajor, CblasNoTrans, CblasTrans, K, C, PQ, 1.0f, im->dyn, PQ, im->xn, PQ, 1.0f, pw,
                          C);
    if (im->dxn) /* dx[n] (C,PQ) = w^T (C,K) . dy[n] (K,PQ) */
        dg_sgemm_parallel(CblasRowMajor, CblasTrans, CblasNoTrans, C, PQ, K, 1.0f, b->w, C, im->dyn, PQ, 0.0f,
                          im->dxn, PQ);
}

/* The direct row kernels and the stride-2 phase kernels, for the
 * gradients of this image they take. The dw kernels take groups of
 * images: the group's first image starts them. */
static void image_kernels(const BackwardChunk *b, ImageScratch *s, Image *im, float *pw) {
    const int C = b->s.C, H = b->s.H, W = b->s.W, K = b->s.K, R = b->s.R, S = b->s.S, pad = b->s.pad;
    if (b->p.direct_w && b->p.rest_w) {
        if (b->p.dwg == 1) conv2d_direct_dw(pw, im->dyn, im->xn, C, H, W, K, R, S, pad, s->xp);
        else if (im->i % b->p.dwg == 0) /* this image and the next dwg-1, before any dx reuses xp */
            conv2d_direct_dw_images(pw, im->dyn, im->xn, im->left < b->p.dwg ? im->left : b->p.dwg, C, H, W, K, R, S,
                                    pad, s->xp);
        im->dw_done = 1;
    }
    if (b->p.phase_x && b->p.rest_w) { /* groups of images, as the direct dw above */
        float *ps = conv_area(s->col, &b->lay, AREA_PHASE);
        const int g = conv2d_phase_dw_group();
        if (!s->phase_dw) conv2d_phase_dw_begin(ps, C, H, W, K, R, S, pad);
        s->phase_dw = 1;
        if (im->i % g == 0) conv2d_phase_dw(im->dyn, im->xn, im->left < g ? im->left : g, ps, C, H, W, K, R, S, pad);
        im->dw_done = 1;
    }
    if (b->p.phase_x && im->dxn) {
        float *ps = conv_area(s->col, &b->lay, AREA_PHASE);
        if (!s->packed) {
            conv2d_phase_pack(ps, b->w, C, H, W, K, R, S, pad, 1);
            s->packed = 1;
        }
        conv2d_phase_dx(im->dxn, im->dyn, ps, C, H, W, K, R, S, pad);
        im->dx_done = 1;
    }
    if (b->p.direct_x && im->dxn) {
        float *wp = conv_area(s->col, &b->lay, AREA_PACKED);
        if (!s->packed) {
            conv2d_direct_pack(wp, b->w, K, C, R, S, 1);
            s->packed = 1;
        }
        /* dx[n] (C,H,W) = conv(dy[n] (K,P,Q), flipped w^T, pad R-1-pad) */
        conv2d_direct_forward(im->dxn, im->dyn, wp, NULL, K, b->s.P, b->s.Q, C, R, S, R - 1 - pad, s->xp);
        im->dx_done = 1;
    }
}

/* The bf16 products, for the gradients of this image still owed. */
static void image_bf16(const BackwardChunk *b, ImageScratch *s, Image *im, float *pw) {
    const int C = b->s.C, H = b->s.H, W = b->s.W, K = b->s.K, R = b->s.R, S = b->s.S;
    const int P = b->s.P, Q = b->s.Q, PQ = P * Q, CRS = C * R * S;
    Bf16Scratch *bs = &s->bf16.bs;
    if (!im->dw_done && b->p.bf16_w) { /* pw^T (CRS,K) += col (CRS,PQ) . dy[n]^T (PQ,K) */
        conv_im2col_image(s->col, PQ, im->xn, b->table, &b->s);
        bf16_convert_rows(bs->col, bf16_pair_words(PQ), s->col, PQ, CRS, PQ);
        bf16_pack_b_transposed(bs->pack, im->dyn, PQ, PQ, K);
        gemm_bf16(pw, K, bs->col, bf16_pair_words(PQ), bs->pack, CRS, K, PQ, 1);
        im->dw_done = 1;
    }
    if (!im->dx_done && b->p.bf16_x) { /* dcol (CRS,PQ) = w^T (CRS,K) . dy[n] (K,PQ), then scatter-add */
        bf16_weights_transposed(&s->bf16, b->w, CRS, K);
        bf16_pack_b(bs->pack, im->dyn, PQ, K, PQ);
        gemm_bf16(s->col, PQ, bs->wt, bf16_pair_words(K), bs->pack, CRS, PQ, K, 0);
        memset(im->dxn, 0, sizeof(float) * C * H * W);
        conv_col2im_band(im->dxn, s->col, &b->s, 0, P);
        im->dx_done = 1;
    }
}

/* fp32 im2col products in bands of output rows, for the gradients of this
 * image still owed: dw from col, dx by col2im. */
static void image_im2col(const BackwardChunk *b, float *col, const Image *im, float *pw) {
    const int C = b->s.C, H = b->s.H, W = b->s.W, K = b->s.K, R = b->s.R, S = b->s.S;
    const int P = b->s.P, Q = b->s.Q, PQ = P * Q, CRS = C * R * S, band = b->p.band;
    if (!im->dx_done) memset(im->dxn, 0, sizeof(float) * C * H * W);
    for (int pb = 0; pb < P; pb += band) {
        const int pe = pb + band < P ? pb + band : P, TQ = (pe - pb) * Q;
        const float *dyb = im->dyn + (size_t)pb * Q; /* dy[n][:, band] (K,TQ), ld PQ */
        if (!im->dw_done) {
            if (b->table) conv_im2col_gather(col, TQ, im->xn, b->table, &b->s); /* one band: the image */
            else conv_im2col_band(col, im->xn, &b->s, pb, pe);
            /* pw (K,CRS) += dy band (K,TQ) . col^T (TQ,CRS) */
            dg_sgemm_parallel(CblasRowMajor, CblasNoTrans, CblasTrans, K, CRS, TQ, 1.0f, dyb, PQ, col, TQ, 1.0f, pw,
                              CRS);
        }
        if (!im->dx_done) {
            /* dcol (CRS,TQ) = w^T (CRS,K) . dy band (K,TQ), then scatter-add */
            dg_sgemm_parallel(CblasRowMajor, CblasTrans, CblasNoTrans, CRS, TQ, K, 1.0f, b->w, CRS, dyb, PQ, 0.0f, col,
                              TQ);
            conv_col2im_band(im->dxn, col, &b->s, pb, pe);
        }
    }
}

/* The remaining gradients of chunk t, one image at a time: db, then each
 * gradient on the first path that takes it (kernels, bf16 products, fp32
 * im2col products). */
static void backward_per_image(const BackwardChunk *b, int t, float *col, float *pw, float *pdb) {
    const int C = b->s.C, H = b->s.H, W = b->s.W, K = b->s.K, R = b->s.R, S = b->s.S, pad = b->s.pad;
    const int PQ = b->s.P * b->s.Q, HW = H * W;
    ImageScratch s = {col, conv_area(col, &b->lay, AREA_PAD),
                      {conv_bf16_scratch(col, &b->lay, &b->s, b->p.group * PQ), 0},
                      0, 0};
    const int first = chunk_begin(t, b->N, b->p.nt), end = chunk_begin(t + 1, b->N, b->p.nt);
    for (int n = first; n < end; n++) {
        Image im = {n - first, end - n, b->x + (size_t)n * C * HW, b->dy + (size_t)n * K * PQ,
                    b->p.rest_x ? b->dx + (size_t)n * C * HW : NULL, !b->p.rest_w, 0};
        im.dx_done = im.dxn == NULL;
        if (b->p.rest_b) add_row_sums(pdb, im.dyn, K, PQ, PQ);
        if (b->p.pointwise) {
            image_pointwise(b, &im, pw);
            continue;
        }
        image_kernels(b, &s, &im, pw);
        image_bf16(b, &s, &im, pw);
        if (!im.dw_done || !im.dx_done) image_im2col(b, col, &im, pw);
    }
    if (s.phase_dw) conv2d_phase_dw_end(pw, conv_area(col, &b->lay, AREA_PHASE), C, H, W, K, R, S, pad);
}

/* Chunk t of nt of the batch on workspace slice t: its partial dw and db
 * (dw_partial slice t) and its images' dx. Winograd and the kvec kernels
 * first; what they leave goes to the grouped or the per-image products. */
static void backward_chunk(const BackwardChunk *b, int t) {
    float *col = b->workspace + (size_t)t * b->lay.at[AREA_END];
    float *pw = NULL, *pdb = NULL; /* this chunk's partial dw (K,CRS) and db (K) */
    if (b->p.want_w || b->p.want_b) {
        pw = b->dw_partial + (size_t)t * b->nwb;
        pdb = pw + (size_t)b->s.K * b->s.C * b->s.R * b->s.S;
        memset(pw, 0, sizeof(float) * b->nwb);
    }
    if (b->p.wino_x) backward_wino_dx(b, t, col);
    if (b->p.wino_w) backward_wino_dw(b, t, col, pw);
    if (b->p.kvec_w || b->p.kvec_x) backward_kvec(b, t, col, pw, pdb);
    if (!b->p.rest_x && !b->p.rest_w && !b->p.rest_b) return;
    if (b->p.group > 1) backward_grouped(b, t, col, pw, pdb);
    else backward_per_image(b, t, col, pw, pdb);
}

/* Add the chunk partials to dw and db in chunk order: same nthreads, same
 * bits. Each element's sum is independent, so the loop itself may be split. */
static void backward_reduce(const BackwardChunk *b, float *dw, float *db) {
    const int nt = b->p.nt, K = b->s.K, CRS = b->s.C * b->s.R * b->s.S;
    const size_t nw = (size_t)K * CRS, nwb = b->nwb;
    const float *dw_partial = b->dw_partial;
    if (dw) {
        const int bf16_w = b->p.bf16_w;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1 && nw >= 16384)
#endif
        for (size_t i = 0; i < nw; i++) {
            /* bf16 partials are (CRS,K): element i = (k, crs) of dw sits at crs*K + k */
            const size_t j = bf16_w ? (i % CRS) * K + i / CRS : i;
            float acc = 0;
            for (int t = 0; t < nt; t++) acc += dw_partial[(size_t)t * nwb + j];
            dw[i] += acc;
        }
    }
    if (db)
        for (int k = 0; k < K; k++) {
            float acc = 0;
            for (int t = 0; t < nt; t++) acc += dw_partial[(size_t)t * nwb + nw + k];
            db[k] += acc;
        }
}

/* Plan the gradients, run the batch chunks (in parallel when there are
 * several), reduce their partial weight gradients. */
void conv2d_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                     const float *w, int N, int C, int H, int W, int K, int R, int S, int stride,
                     int pad, float *workspace, float *dw_partial, int nthreads) {
    const ConvShape s = conv_shape(C, H, W, K, R, S, stride, pad);
    DG_ASSERT(s.P > 0 && s.Q > 0 && stride > 0 && pad >= 0);
    const ConvBackwardPlan p = conv_plan_backward(&s, N, nthreads, dx != NULL, dw != NULL, db != NULL);
    int table_owned = 0;
    const int *table = p.gather ? conv_gather_table(&s, &table_owned) : NULL; /* shared, read-only */
    const BackwardChunk b = {dx, dw_partial, workspace, dy, x, w, table, s, conv_layout(&s), p,
                             (size_t)K * C * R * S + K, N};
    const int nt = p.nt;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
#endif
    for (int t = 0; t < nt; t++) backward_chunk(&b, t);
    if (table_owned) free((int *)table);
    backward_reduce(&b, dw, db);
}
