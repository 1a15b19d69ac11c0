/* conv2d.c — 2-D convolution (cross-correlation, as PyTorch), forward and
 * backward, in two versions:
 *   - conv2d_*_ref: plain nested loops with double accumulators; the
 *     reference the tests trust, and a readable statement of the math;
 *   - conv2d_forward / conv2d_backward: OpenMP over the batch, each pass
 *     on the path measured fastest for its shape (bench/bench_kernels):
 *     Winograd F(2x2,3x3) for 3x3 stride-1 layers with even outputs up to
 *     30 wide (conv2d_wino.c: forward, dx, and dw for 16/32 input
 *     channels; forward and dx with a bf16 product in bf16 runs; an
 *     inference model's fp32 batch forward by F(4x4,3x3), conv2d_wino4.c), the
 *     direct row kernels
 *     (conv2d_direct.c: stride 1, rows of 8-32
 *     floats), the output-channel kernels (conv2d_kvec.c: deep layers with
 *     small outputs, fp32 or bf16 pair words), stride 2 on the input's
 *     phases (conv2d_phase.c), and otherwise per-sample im2col (in bands
 *     of output rows, one band for every zoo shape) into the calling
 *     thread's workspace slice + cblas_sgemm or the bf16 GEMM.
 * Square or rectangular kernels, one stride and one zero padding for both
 * axes. Left out on purpose: dilation, groups, other padding modes.
 *
 * Threading and determinism: the batch is cut into `nthreads` fixed
 * contiguous chunks (chunk t = samples [t*N/nt, (t+1)*N/nt)); chunk t uses
 * workspace slice t and dw_partial slice t, whichever OS thread runs it.
 * Per-chunk weight gradients are then summed in chunk order 0..nt-1, so
 * dw/db are bit-identical for the same nthreads, however many threads the
 * OpenMP runtime actually grants. Inside the parallel region each sgemm
 * runs single-threaded (OpenBLAS's OpenMP build does that by itself; the
 * pthreads build does not, and oversubscribes the cores). With one chunk
 * (nthreads == 1, or N == 1) the forward opens no region at all (a region
 * with a false `if` still costs ~0.3 us, felt in single-image latency) and
 * the backward's is inactive, so the BLAS is free to thread each sgemm
 * itself: a single image still uses every core.
 * The 1x1 stride-1 unpadded case skips im2col (x already is the col matrix).
 * Inference (conv2d_forward_packed) gives each layer its own workspace and
 * packs the weights of the Winograd, direct, phase and kvec paths into it
 * once, not per call: that packing was 47 % of kaggle-deep's one-image
 * forward (perf; 128->128 5x5 alone 40 %). There a one-image call of a
 * large layer is also cut by output channels over helper threads
 * (forward_split, core/blocks.h), each block with its own packed weights.
 * An inference epilogue may end in a max pooling or a zero padding
 * (Epilogue.pool / .padded): each kernel call then writes into the
 * thread's pool buffer and chunk_finish writes the pooled or padded
 * planes to y, so the full-size output never reaches memory.
 */
#include "ops/ops.h"

#include "core/blas.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

#include "core/blocks.h"
#include "core/check.h"
#include "ops/conv2d_c1.h"
#include "ops/conv2d_ilv.h"
#include "ops/conv2d_direct.h"
#include "ops/conv2d_kvec.h"
#include "ops/conv2d_phase.h"
#include "ops/conv2d_wino.h"
#include "ops/conv2d_wino4.h"
#include "ops/conv2d_wino5.h"
#include "ops/gemm_bf16.h"

static inline int conv_out_size(int in, int k, int stride, int pad) {
    return (in + 2 * pad - k) / stride + 1;
}

/* ======================================================================
 * Reference
 * ====================================================================== */

/* y[n,k,p,q] = b[k] + sum_{c,r,s} w[k,c,r,s] * x[n,c,p*stride+r-pad,q*stride+s-pad] */
void conv2d_forward_ref(float *y, const float *x, const float *w, const float *b,
                        int N, int C, int H, int W, int K, int R, int S, int stride, int pad) {
    const int P = conv_out_size(H, R, stride, pad), Q = conv_out_size(W, S, stride, pad);
    DG_ASSERT(P > 0 && Q > 0 && stride > 0 && pad >= 0);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++)
            for (int p = 0; p < P; p++)
                for (int q = 0; q < Q; q++) {
                    double acc = b ? b[k] : 0.0;
                    for (int c = 0; c < C; c++)
                        for (int r = 0; r < R; r++) {
                            int h = p * stride + r - pad;
                            if (h < 0 || h >= H) continue;
                            for (int s = 0; s < S; s++) {
                                int ww = q * stride + s - pad;
                                if (ww < 0 || ww >= W) continue;
                                acc += (double)w[((size_t)(k * C + c) * R + r) * S + s] *
                                       x[((size_t)(n * C + c) * H + h) * W + ww];
                            }
                        }
                    y[((size_t)(n * K + k) * P + p) * Q + q] = (float)acc;
                }
}

/* dx[n,c,h,w]   = sum_{k,r,s: h=p*stride+r-pad, w=q*stride+s-pad} w[k,c,r,s] dy[n,k,p,q]
 * dw[k,c,r,s] += sum_{n,p,q} dy[n,k,p,q] x[n,c,p*stride+r-pad,q*stride+s-pad]
 * db[k]       += sum_{n,p,q} dy[n,k,p,q]
 * Each output element is gathered in one double sum (no scatter), so the
 * reference is as exact as a float result can be.                        */
void conv2d_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x,
                         const float *w, int N, int C, int H, int W, int K, int R, int S,
                         int stride, int pad) {
    const int P = conv_out_size(H, R, stride, pad), Q = conv_out_size(W, S, stride, pad);
    DG_ASSERT(P > 0 && Q > 0 && stride > 0 && pad >= 0);
    if (db)
        for (int k = 0; k < K; k++) {
            double acc = 0;
            for (int n = 0; n < N; n++)
                for (int i = 0; i < P * Q; i++) acc += dy[(size_t)(n * K + k) * P * Q + i];
            db[k] += (float)acc;
        }
    if (dw)
        for (int k = 0; k < K; k++)
            for (int c = 0; c < C; c++)
                for (int r = 0; r < R; r++)
                    for (int s = 0; s < S; s++) {
                        double acc = 0;
                        for (int n = 0; n < N; n++)
                            for (int p = 0; p < P; p++) {
                                int h = p * stride + r - pad;
                                if (h < 0 || h >= H) continue;
                                for (int q = 0; q < Q; q++) {
                                    int ww = q * stride + s - pad;
                                    if (ww < 0 || ww >= W) continue;
                                    acc += (double)dy[((size_t)(n * K + k) * P + p) * Q + q] *
                                           x[((size_t)(n * C + c) * H + h) * W + ww];
                                }
                            }
                        dw[((size_t)(k * C + c) * R + r) * S + s] += (float)acc;
                    }
    if (dx)
        for (int n = 0; n < N; n++)
            for (int c = 0; c < C; c++)
                for (int h = 0; h < H; h++)
                    for (int ww = 0; ww < W; ww++) {
                        double acc = 0;
                        for (int r = 0; r < R; r++) {
                            int ph = h + pad - r; /* = p*stride */
                            if (ph < 0 || ph % stride) continue;
                            int p = ph / stride;
                            if (p >= P) continue;
                            for (int s = 0; s < S; s++) {
                                int qw = ww + pad - s;
                                if (qw < 0 || qw % stride) continue;
                                int q = qw / stride;
                                if (q >= Q) continue;
                                for (int k = 0; k < K; k++)
                                    acc += (double)w[((size_t)(k * C + c) * R + r) * S + s] *
                                           dy[((size_t)(n * K + k) * P + p) * Q + q];
                            }
                        }
                        dx[((size_t)(n * C + c) * H + h) * W + ww] = (float)acc;
                    }
}

/* ======================================================================
 * im2col / col2im
 * ====================================================================== */

/* Short-row copy / zero / add. im2col and col2im move rows of Q floats
 * (24, 28, 14, 10 in the zoo): a memcpy call per row costs more than the
 * copy, so rows up to 64 floats go through masked AVX-512 moves inline. */
static inline void copy_row(float *restrict out, const float *restrict in, int n) {
#ifdef __AVX512F__
    if (n <= 64) {
        for (; n >= 16; n -= 16, in += 16, out += 16) _mm512_storeu_ps(out, _mm512_loadu_ps(in));
        if (n) {
            const __mmask16 m = (__mmask16)((1u << n) - 1);
            _mm512_mask_storeu_ps(out, m, _mm512_maskz_loadu_ps(m, in));
        }
        return;
    }
#endif
    memcpy(out, in, sizeof(float) * (size_t)n);
}

/* out[i] = in[2i], i < n: stride-2 convs (kaggle-deep's 5x5/2) made the
 * scalar strided loop 20 % of a training step. Even lanes of two vectors
 * are picked with one permute; masked loads never read past in[2n-1]. */
static inline void copy_row_stride2(float *restrict out, const float *restrict in, int n) {
#ifdef __AVX512F__
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    for (; n > 0; n -= 16, in += 32, out += 16) {
        const int k = n < 16 ? n : 16, m = 2 * k - 1; /* the last element read is in[2k-2] */
        const __mmask16 lo = (__mmask16)(m >= 16 ? 0xffff : (1u << m) - 1);
        const __mmask16 hi = (__mmask16)(m > 16 ? (1u << (m - 16)) - 1 : 0);
        const __m512 v = _mm512_permutex2var_ps(_mm512_maskz_loadu_ps(lo, in), even, _mm512_maskz_loadu_ps(hi, in + 16));
        _mm512_mask_storeu_ps(out, (__mmask16)(k == 16 ? 0xffff : (1u << k) - 1), v);
    }
#else
    for (int i = 0; i < n; i++) out[i] = in[2 * i];
#endif
}

static inline void zero_row(float *restrict out, int n) {
    for (int i = 0; i < n; i++) out[i] = 0;
}

/* Valid outputs [*o0, *o1) along one axis for kernel offset k: those whose
 * input index o*stride+k-pad lies in [0, in). */
static inline void valid_range(int *o0, int *o1, int k, int stride, int pad, int in, int out) {
    int lo = pad - k; /* need o*stride >= lo */
    int a = lo <= 0 ? 0 : (lo + stride - 1) / stride;
    int hi = in + pad - k; /* need o*stride < hi */
    int b = hi <= 0 ? 0 : (hi + stride - 1) / stride;
    if (b > out) b = out;
    if (a > b) a = b;
    *o0 = a;
    *o1 = b;
}

/* With stride 1 and Q == W ("same" padding along the rows), output (p,q)
 * and input (p+r-pad, q+s-pad) sit a constant offset apart, so a row of
 * col maps onto x as ONE contiguous run covering the valid rows; only the
 * few padded entries at each row's ends wrap onto a neighbouring image row
 * and are fixed up separately. One long loop instead of P short ones:
 * 28-float rows cost more in loop overhead than in data movement. */
static inline int rows_line_up(int stride, int W, int Q) { return stride == 1 && Q == W; }

/* The output rows [pb, pe) of col, as a (C*R*S, (pe-pb)*Q) matrix:
 * row (c,r,s), column (p-pb, q) = x[c, p*stride+r-pad, q*stride+s-pad],
 * zero outside the image. x is one sample (C,H,W). Working on a band of
 * output rows bounds the workspace (see BAND_FLOATS). */
static void im2col_ld(float *restrict col, size_t ld, const float *restrict x, int C, int H, int W, int R,
                      int S, int stride, int pad, int P, int Q, int pb, int pe) {
    const int TQ = (pe - pb) * Q, line_up = rows_line_up(stride, W, Q);
    for (int c = 0; c < C; c++)
        for (int r = 0; r < R; r++)
            for (int s = 0; s < S; s++) {
                float *restrict row = col + ((size_t)(c * R + r) * S + s) * ld; /* band row p-pb */
                const float *restrict xc = x + (size_t)c * H * W;
                int p0, p1, q0, q1; /* valid output rows/columns for this (r,s) */
                valid_range(&p0, &p1, r, stride, pad, H, P);
                valid_range(&q0, &q1, s, stride, pad, W, Q);
                if (p0 < pb) p0 = pb;
                if (p1 > pe) p1 = pe;
                if (p0 >= p1 || q0 >= q1) {
                    memset(row, 0, sizeof(float) * TQ);
                    continue;
                }
                /* rows of the band above and below the image */
                memset(row, 0, sizeof(float) * (p0 - pb) * Q);
                memset(row + (size_t)(p1 - pb) * Q, 0, sizeof(float) * (pe - p1) * Q);
                if (line_up) {
                    const size_t first = (size_t)(p0 - pb) * Q + q0, last = (size_t)(p1 - 1 - pb) * Q + q1;
                    const float *src = xc + (size_t)(p0 + r - pad) * W + (q0 + s - pad);
                    memcpy(row + first, src, sizeof(float) * (last - first));
                    for (int p = p0; p < p1; p++) { /* padded ends got wrapped values */
                        for (int q = 0; q < q0; q++) row[(size_t)(p - pb) * Q + q] = 0;
                        for (int q = q1; q < Q; q++) row[(size_t)(p - pb) * Q + q] = 0;
                    }
                    continue;
                }
                for (int p = p0; p < p1; p++) {
                    float *restrict out = row + (size_t)(p - pb) * Q;
                    const float *restrict in =
                        xc + (size_t)(p * stride + r - pad) * W + (q0 * stride + s - pad);
                    zero_row(out, q0);
                    if (stride == 1)
                        copy_row(out + q0, in, q1 - q0);
                    else if (stride == 2)
                        copy_row_stride2(out + q0, in, q1 - q0);
                    else
                        for (int q = q0; q < q1; q++) out[q] = in[(q - q0) * stride];
                    zero_row(out + q1, Q - q1);
                }
            }
}

/* col rows of TQ = (pe-pb)*Q floats, one after another. */
static void im2col(float *restrict col, const float *restrict x, int C, int H, int W, int R, int S, int stride,
                   int pad, int P, int Q, int pb, int pe) {
    im2col_ld(col, (size_t)(pe - pb) * Q, x, C, H, W, R, S, stride, pad, P, Q, pb, pe);
}

/* ---- im2col by AVX-512 gathers --------------------------------------------
 * Strided and small outputs (the 5x5/2 layers: rows of 14, 7 or 4 floats)
 * spend im2col in per-row bookkeeping, not in moving data. Gathers fill a
 * whole row of col (all PQ outputs of one (c,r,s)) 16 entries at a time
 * from a table of plane offsets, the same for every channel; -1 marks
 * padding (masked off: reads nothing, writes 0). */
static inline int use_gather(int stride, int W, int P, int Q) {
#ifdef __AVX512F__
    /* measured: rows that line up (stride 1, same width) copy faster as runs at 14x14 and above */
    return P * Q <= 64 || (!rows_line_up(stride, W, Q) && P * Q <= 256);
#else
    (void)stride, (void)W, (void)P, (void)Q;
    return 0;
#endif
}

static inline int gather_stride(int PQ) { return (PQ + 15) & ~15; }

/* (R*S, gather_stride(PQ)) int32 offsets into a (H,W) plane, or -1. */
static void gather_table(int *t, int H, int W, int R, int S, int stride, int pad, int P, int Q) {
    const int PQ = P * Q, ld = gather_stride(PQ);
    for (int r = 0; r < R; r++)
        for (int s = 0; s < S; s++)
            for (int j = 0; j < ld; j++) {
                int v = -1;
                if (j < PQ) {
                    const int h = (j / Q) * stride + r - pad, w = (j % Q) * stride + s - pad;
                    if (h >= 0 && h < H && w >= 0 && w < W) v = h * W + w;
                }
                t[(r * S + s) * ld + j] = v;
            }
}

/* The gather table of a layer geometry, built once and kept for the process
 * (single-image inference called malloc, the table build and free on every
 * call). At most GATHER_CACHE shapes are kept; past that a call builds its
 * own and *owned tells the caller to free it. Shared by all threads. */
#define GATHER_CACHE 32
static struct {
    int key[8];
    int *table;
} gather_cache[GATHER_CACHE];
static int gather_cached;
static pthread_mutex_t gather_lock = PTHREAD_MUTEX_INITIALIZER;

static int *gather_table_get(int H, int W, int R, int S, int stride, int pad, int P, int Q, int *owned) {
    const int key[8] = {H, W, R, S, stride, pad, P, Q};
    int *t = NULL;
    *owned = 0;
    pthread_mutex_lock(&gather_lock);
    for (int i = 0; i < gather_cached && !t; i++)
        if (memcmp(gather_cache[i].key, key, sizeof key) == 0) t = gather_cache[i].table;
    if (!t) {
        t = dg_xmalloc(sizeof(int) * R * S * gather_stride(P * Q));
        gather_table(t, H, W, R, S, stride, pad, P, Q);
        if (gather_cached < GATHER_CACHE) {
            memcpy(gather_cache[gather_cached].key, key, sizeof key);
            gather_cache[gather_cached++].table = t;
        } else {
            *owned = 1;
        }
    }
    pthread_mutex_unlock(&gather_lock);
    return t;
}

static void im2col_gather(float *restrict col, size_t ld, const float *restrict x, const int *restrict table, int C,
                          int H, int W, int RS, int PQ) {
#ifdef __AVX512F__
    const int tl = gather_stride(PQ);
    const __mmask16 tail = (__mmask16)(PQ % 16 ? (1u << (PQ % 16)) - 1 : 0xffff);
    for (int c = 0; c < C; c++) {
        const float *xc = x + (size_t)c * H * W;
        for (int rs = 0; rs < RS; rs++) {
            float *row = col + ((size_t)c * RS + rs) * ld;
            const int *ti = table + (size_t)rs * tl;
            for (int j = 0; j < PQ; j += 16) {
                const __m512i idx = _mm512_loadu_si512(ti + j);
                const __mmask16 valid = _mm512_cmpge_epi32_mask(idx, _mm512_setzero_si512());
                const __m512 v = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), valid, idx, xc, 4);
                _mm512_mask_storeu_ps(row + j, j + 16 <= PQ ? (__mmask16)0xffff : tail, v);
            }
        }
    }
#else
    (void)col, (void)ld, (void)x, (void)table, (void)C, (void)H, (void)W, (void)RS, (void)PQ;
#endif
}

/* One whole image's col rows (all P output rows) at col with row stride
 * ld: by gathers when a table is given, else row by row. */
static inline void im2col_image(float *restrict col, size_t ld, const float *restrict x, const int *table, int C,
                                int H, int W, int R, int S, int stride, int pad, int P, int Q) {
    if (table) im2col_gather(col, ld, x, table, C, H, W, R * S, P * Q);
    else im2col_ld(col, ld, x, C, H, W, R, S, stride, pad, P, Q, 0, P);
}

/* x (C,H,W) += the entries of the band col (rows [pb,pe), layout as
 * im2col) landing on each pixel: the adjoint of im2col; the caller zeroes
 * x first. col is scratch: its padded entries may be zeroed (they are
 * gradients w.r.t. the padding, never used), which lets the lined-up case
 * add one contiguous run whose wrapped entries add an exact +0. The result
 * is bit-identical to the row-by-row loop. */
static void col2im_ld(float *restrict x, float *restrict col, size_t ld, int C, int H, int W, int R, int S,
                      int stride, int pad, int P, int Q, int pb, int pe) {
    const int line_up = rows_line_up(stride, W, Q);
    for (int c = 0; c < C; c++)
        for (int r = 0; r < R; r++)
            for (int s = 0; s < S; s++) {
                float *restrict row = col + ((size_t)(c * R + r) * S + s) * ld; /* band row p-pb */
                float *restrict xc = x + (size_t)c * H * W;
                int p0, p1, q0, q1;
                valid_range(&p0, &p1, r, stride, pad, H, P);
                valid_range(&q0, &q1, s, stride, pad, W, Q);
                if (p0 < pb) p0 = pb;
                if (p1 > pe) p1 = pe;
                if (p0 >= p1 || q0 >= q1) continue;
                if (line_up) {
                    for (int p = p0; p < p1; p++) {
                        for (int q = 0; q < q0; q++) row[(size_t)(p - pb) * Q + q] = 0;
                        for (int q = q1; q < Q; q++) row[(size_t)(p - pb) * Q + q] = 0;
                    }
                    const size_t first = (size_t)(p0 - pb) * Q + q0, len = (size_t)(p1 - 1 - pb) * Q + q1 - first;
                    const float *restrict in = row + first;
                    float *restrict out = xc + (size_t)(p0 + r - pad) * W + (q0 + s - pad);
                    for (size_t i = 0; i < len; i++) out[i] += in[i];
                    continue;
                }
                for (int p = p0; p < p1; p++) {
                    const float *restrict in = row + (size_t)(p - pb) * Q + q0;
                    float *restrict out =
                        xc + (size_t)(p * stride + r - pad) * W + (q0 * stride + s - pad);
                    if (stride == 1)
                        for (int q = 0; q < q1 - q0; q++) out[q] += in[q];
                    else
                        for (int q = 0; q < q1 - q0; q++) out[q * stride] += in[q];
                }
            }
}

static void col2im(float *restrict x, float *restrict col, int C, int H, int W, int R, int S, int stride, int pad,
                   int P, int Q, int pb, int pe) {
    col2im_ld(x, col, (size_t)(pe - pb) * Q, C, H, W, R, S, stride, pad, P, Q, pb, pe);
}

/* ======================================================================
 * Fast path
 * ====================================================================== */

/* A 1x1, stride-1, unpadded conv is a plain matrix product on x itself. */
static inline int is_pointwise(int R, int S, int stride, int pad) {
    return R == 1 && S == 1 && stride == 1 && pad == 0;
}

/* col is built one band of output rows at a time, at most BAND_FLOATS
 * (4 MB) each: the bound keeps the workspace modest for large images. It
 * is deliberately not L2-sized: measured on the target (32->32 3x3, 28x28),
 * 256 KB bands made the narrower sgemms ~15% slower than the cache saved,
 * so every image of the model zoo runs as one band. */
#define BAND_FLOATS (1 << 20)

/* Output rows per band: at least 1, at most P. */
static inline int band_rows(int CRS, int P, int Q) {
    long t = BAND_FLOATS / ((long)CRS * Q);
    return t < 1 ? 1 : t > P ? P : (int)t;
}

/* Deep layers with small outputs (7x7, 4x4) make thin products: W (K,CRS)
 * times a col of only PQ columns, for which the BLAS repacks all of W for
 * every image (the 5x5/2 128->128 layer of kaggle-deep, 4x4 outputs, ran
 * at ~25 % of peak). Such layers (fp32, im2col) take G images per product
 * instead: col (CRS, G*PQ) with the images side by side, the product
 * (K, G*PQ) copied out to each image's (K,PQ) — about GROUP_COLS columns. */
#define GROUP_COLS 256

static int group_images(int C, int H, int W, int K, int R, int S, int stride, int pad) {
    if (is_pointwise(R, S, stride, pad)) return 1;
    const int P = conv_out_size(H, R, stride, pad), Q = conv_out_size(W, S, stride, pad), CRS = C * R * S;
    if (band_rows(CRS, P, Q) < P) return 1;
    if (conv2d_direct_ok(H, W, R, S, stride, pad, CRS) || conv2d_direct_dx_ok(H, W, R, S, stride, pad, K * R * S))
        return 1;
    long g = GROUP_COLS / (P * Q), cap = BAND_FLOATS / ((long)CRS * P * Q);
    if (g > cap) g = cap;
    return g < 2 ? 1 : (int)g;
}

/* One band of col, (C*R*S, rows*Q) — or, for grouped layers, the group's
 * col (CRS, G*PQ) and its output or output gradient (K, G*PQ). */
static size_t im2col_floats(int C, int H, int W, int K, int R, int S, int stride, int pad) {
    const int P = conv_out_size(H, R, stride, pad), Q = conv_out_size(W, S, stride, pad), CRS = C * R * S;
    size_t band = (size_t)CRS * band_rows(CRS, P, Q) * Q;
    const int g = group_images(C, H, W, K, R, S, stride, pad);
    size_t grouped = g > 1 ? (size_t)(CRS + K) * g * P * Q : 0;
    return band > grouped ? band : grouped;
}

/* Packed weights for the direct kernels (after the col band in a slice:
 * a pass may use both, e.g. direct dw and im2col dx). */
static size_t packed_floats(int C, int H, int W, int K, int R, int S, int stride, int pad) {
    size_t a = 0, b = 0;
    if (conv2d_direct_ok(H, W, R, S, stride, pad, C * R * S)) a = conv2d_direct_packed_floats(K, C, R, S);
    if (conv2d_direct_dx_ok(H, W, R, S, stride, pad, K * R * S)) b = conv2d_direct_packed_floats(C, K, R, S);
    return a > b ? a : b;
}

/* ---- bf16 (--precision bf16) ----------------------------------------------
 * The im2col layers run their three products through gemm_bf16 (bf16
 * inputs, fp32 accumulation; twice the FLOP rate of fp32 FMAs here):
 *   forward  y (K,PQ)      = W (K,CRS) . col (CRS,PQ)
 *   dx       dcol (CRS,PQ) = W^T (CRS,K) . dy (K,PQ)       then col2im
 *   dw^T     (CRS,K)      += col (CRS,PQ) . dy^T (PQ,K)    (partials kept transposed)
 * Weights are converted once per call and chunk; activations per image.
 * The direct (shallow) layers stay fp32: they are a few % of the FLOPs. */
static int use_bf16;

int conv2d_set_bf16(int on) {
    use_bf16 = on && gemm_bf16_available();
    return use_bf16;
}

/* Does this layer take the bf16 path (im2col layers in one band)? */
static int bf16_layer(int C, int H, int W, int K, int R, int S, int stride, int pad) {
    if (!gemm_bf16_available() || is_pointwise(R, S, stride, pad)) return 0;
    (void)K;
    const int P = conv_out_size(H, R, stride, pad), Q = conv_out_size(W, S, stride, pad), CRS = C * R * S;
    return band_rows(CRS, P, Q) == P;
}

/* Words (floats) of bf16 scratch after the col band and packed weights. */
static size_t bf16_floats(int C, int H, int W, int K, int R, int S, int stride, int pad) {
    if (!bf16_layer(C, H, W, K, R, S, stride, pad)) return 0;
    const int P = conv_out_size(H, R, stride, pad), Q = conv_out_size(W, S, stride, pad);
    const int PQ = group_images(C, H, W, K, R, S, stride, pad) * P * Q; /* columns of one product */
    const int CRS = C * R * S;
    size_t bp = bf16_packed_b_words(CRS, PQ), b2 = bf16_packed_b_words(K, PQ), b3 = bf16_packed_b_words(PQ, K);
    if (b2 > bp) bp = b2;
    if (b3 > bp) bp = b3;
    return (size_t)K * bf16_pair_words(CRS) + (size_t)CRS * bf16_pair_words(K) + (size_t)CRS * bf16_pair_words(PQ) +
           bp;
}

typedef struct { /* one chunk's bf16 scratch, carved from its workspace slice */
    uint32_t *w;    /* (K, pairs(CRS))   forward weights */
    uint32_t *wt;   /* (CRS, pairs(K))   dx weights, W^T */
    uint32_t *col;  /* (CRS, pairs(PQ))  dw: the image's col */
    uint32_t *pack; /* packed B operand */
} Bf16Scratch;

static Bf16Scratch bf16_scratch(float *base, int C, int K, int R, int S, int PQ) {
    const int CRS = C * R * S;
    Bf16Scratch b;
    b.w = (uint32_t *)base;
    b.wt = b.w + (size_t)K * bf16_pair_words(CRS);
    b.col = b.wt + (size_t)CRS * bf16_pair_words(K);
    b.pack = b.col + (size_t)CRS * bf16_pair_words(PQ);
    return b;
}

/* Images per call of the direct weight-gradient kernel: deep layers with
 * one-vector rows (14x14) take DW_GROUP at once, one lane reduction per
 * block for all of them: 64->64 at 14x14 128 -> 136-147 GFLOP/s, 1 core
 * (8 images: 123). 28x28 stays at 1: four images' dy rows of a block no
 * longer fit L1 (147 -> 123). */
#define DW_GROUP 4
static int dw_group(int C, int H, int W, int K, int R, int S, int stride, int pad) {
    (void)K;
    const int Q = conv_out_size(W, S, stride, pad);
    return conv2d_direct_dw_ok(H, W, R, S, stride, pad, C * R * S) && !conv2d_direct_shallow(C * R * S) && Q <= 16
               ? DW_GROUP
               : 1;
}

/* The direct kernels' zero-padded input copies (forward, dw's images, and dy for dx). */
static size_t direct_pad_floats(int C, int H, int W, int K, int R, int S, int stride, int pad) {
    size_t a = 0, b = 0;
    if (conv2d_direct_ok(H, W, R, S, stride, pad, C * R * S))
        a = conv2d_direct_pad_floats(C, H, W, pad) * dw_group(C, H, W, K, R, S, stride, pad);
    if (conv2d_direct_dx_ok(H, W, R, S, stride, pad, K * R * S)) {
        const int P = conv_out_size(H, R, stride, pad), Q = conv_out_size(W, S, stride, pad);
        b = conv2d_direct_pad_floats(K, P, Q, R - 1 - pad);
    }
    return a > b ? a : b;
}

/* Where the padded copy sits in a thread's slice: after everything else. */
static float *direct_pad_buffer(float *slice, int C, int H, int W, int K, int R, int S, int stride, int pad) {
    return slice + im2col_floats(C, H, W, K, R, S, stride, pad) + packed_floats(C, H, W, K, R, S, stride, pad) +
           bf16_floats(C, H, W, K, R, S, stride, pad);
}

/* The stride-2 phase path's scratch (conv2d_phase.c): after the padded copy. */
static float *phase_buffer(float *slice, int C, int H, int W, int K, int R, int S, int stride, int pad) {
    return direct_pad_buffer(slice, C, H, W, K, R, S, stride, pad) + direct_pad_floats(C, H, W, K, R, S, stride, pad);
}

static size_t phase_floats(int C, int H, int W, int K, int R, int S, int stride, int pad) {
    return conv2d_phase_ok(C, H, W, K, R, S, stride, pad) ? conv2d_phase_floats(C, H, W, K, R, S, pad) : 0;
}

/* The output-channel kernels' scratch (conv2d_kvec.c): after the phase scratch. */
static float *kvec_buffer(float *slice, int C, int H, int W, int K, int R, int S, int stride, int pad) {
    return phase_buffer(slice, C, H, W, K, R, S, stride, pad) + phase_floats(C, H, W, K, R, S, stride, pad);
}

static size_t kvec_floats(int C, int H, int W, int K, int R, int S, int stride, int pad) {
    return conv2d_kvec_dw_ok(C, H, W, K, R, S, stride, pad) || conv2d_kvec_ok(C, H, W, K, R, S, stride, pad, 1)
               ? conv2d_kvec_floats(C, H, W, K, R, S, stride, pad) : 0;
}

/* The Winograd kernels' scratch (conv2d_wino.c): after the kvec scratch;
 * room for the forward and for dx (dy convolved with the turned filters). */
static float *wino_buffer(float *slice, int C, int H, int W, int K, int R, int S, int stride, int pad) {
    return kvec_buffer(slice, C, H, W, K, R, S, stride, pad) + kvec_floats(C, H, W, K, R, S, stride, pad);
}

static size_t wino_floats(int C, int H, int W, int K, int R, int S, int stride, int pad) {
    size_t f = 0, d = 0;
    if (conv2d_wino_ok(C, H, W, K, R, S, stride, pad)) f = conv2d_wino_floats(C, H, W, K, pad);
    const int P = conv_out_size(H, R, stride, pad), Q = conv_out_size(W, S, stride, pad);
    if (P > 0 && Q > 0 && conv2d_wino_ok(K, P, Q, C, R, S, stride, R - 1 - pad))
        d = conv2d_wino_floats(K, P, Q, C, R - 1 - pad);
    if (conv2d_wino_dw_ok(C, H, W, K, R, S, stride, pad)) {
        const size_t w = conv2d_wino_dw_floats(C, H, W, K, pad);
        if (w > d) d = w;
    }
    return f > d ? f : d;
}

/* The F(4x4,3x3) forward's scratch (conv2d_wino4.c, inference), or a 5x5
 * layer's F(2x2,5x5) (conv2d_wino5.c): after the F(2x2) scratch, so the
 * weights of both stay packed side by side. */
static float *wino4_buffer(float *slice, int C, int H, int W, int K, int R, int S, int stride, int pad) {
    return wino_buffer(slice, C, H, W, K, R, S, stride, pad) + wino_floats(C, H, W, K, R, S, stride, pad);
}

static size_t wino4_floats(int C, int H, int W, int K, int R, int S, int stride, int pad) {
    if (conv2d_wino4_ok(C, H, W, K, R, S, stride, pad)) return conv2d_wino4_floats(C, H, W, K, pad);
    return conv2d_wino5_ok(C, H, W, K, R, S, stride, pad) ? conv2d_wino5_floats(C, H, W, K, pad) : 0;
}

/* The interleaved kernel's scratch (conv2d_ilv.c, inference batches):
 * after the F(4x4) scratch, its packed weights kept there too. */
static float *ilv_buffer(float *slice, int C, int H, int W, int K, int R, int S, int stride, int pad) {
    return wino4_buffer(slice, C, H, W, K, R, S, stride, pad) + wino4_floats(C, H, W, K, R, S, stride, pad);
}

static size_t ilv_floats(int C, int H, int W, int K, int R, int S, int stride, int pad) {
    return conv2d_ilv_ok(C, H, W, K, R, S, stride, pad) ? conv2d_ilv_floats(C, H, W, K, R, S, pad) : 0;
}

/* Floats of workspace one thread needs: one band of col, (C*R*S, rows*Q). */
size_t conv2d_workspace_floats(int C, int H, int W, int K, int R, int S, int stride, int pad) {
    if (is_pointwise(R, S, stride, pad)) return 1;
    return im2col_floats(C, H, W, K, R, S, stride, pad) + packed_floats(C, H, W, K, R, S, stride, pad) +
           bf16_floats(C, H, W, K, R, S, stride, pad) + direct_pad_floats(C, H, W, K, R, S, stride, pad) +
           phase_floats(C, H, W, K, R, S, stride, pad) + kvec_floats(C, H, W, K, R, S, stride, pad) +
           wino_floats(C, H, W, K, R, S, stride, pad) + wino4_floats(C, H, W, K, R, S, stride, pad) +
           ilv_floats(C, H, W, K, R, S, stride, pad);
}

/* Number of batch chunks: nthreads, but no empty chunks (never more than N).
 * Depends only on (N, nthreads), which keeps the reduction order fixed. */
static inline int chunk_count(int N, int nthreads) {
    if (nthreads > N) nthreads = N;
    return nthreads < 1 ? 1 : nthreads;
}

static inline int chunk_begin(int t, int N, int nt) { return (int)((long long)t * N / nt); }

/* ---- helpers shared by the per-image and grouped paths -------------------- */

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
 * with the images side by side, and back. */
static void group_gather(float *group, const float *tensor, int n0, int g, int K, int PQ) {
    for (int i = 0; i < g; i++)
        for (int k = 0; k < K; k++)
            memcpy(group + (size_t)k * g * PQ + (size_t)i * PQ, tensor + ((size_t)(n0 + i) * K + k) * PQ,
                   sizeof(float) * PQ);
}

static void group_scatter(float *tensor, const float *group, int n0, int g, int K, int PQ) {
    for (int i = 0; i < g; i++)
        for (int k = 0; k < K; k++)
            memcpy(tensor + ((size_t)(n0 + i) * K + k) * PQ, group + (size_t)k * g * PQ + (size_t)i * PQ,
                   sizeof(float) * PQ);
}

/* Is the path `off` (e.g. "nokvec") switched off by DIGITS_CONV, for A/B
 * measurements? DIGITS_CONV=im2col switches off every special path. */
static int path_disabled(const char *off) {
    static const char *mode; /* read once; "" when unset */
    if (!mode) {
        const char *v = getenv("DIGITS_CONV");
        mode = v ? v : "";
    }
    return strcmp(mode, off) == 0 || strcmp(mode, "im2col") == 0;
}

/* Does this layer take the output-channel kernels (conv2d_kvec.c) for its
 * forward, dx and dw? In bf16 runs on bf16 pair words.
 * DIGITS_CONV=nokvec turns them off. */
static int kvec_disabled(void) { return path_disabled("nokvec"); }
static int kvec_layer(int C, int H, int W, int K, int R, int S, int stride, int pad) {
    return !kvec_disabled() && conv2d_kvec_ok(C, H, W, K, R, S, stride, pad, use_bf16);
}
/* ... for its weight gradient (in bf16 runs, the layers whose forward
 * takes them: 64->64 3x3 at 14x14 287 vs 202 GFLOP/s for the bf16
 * product on one core; 32->64 stays on the product, 90 % of peak)? */
static int kvec_dw_layer(int C, int H, int W, int K, int R, int S, int stride, int pad) {
    return !kvec_disabled() && conv2d_kvec_dw_ok(C, H, W, K, R, S, stride, pad) &&
           !(use_bf16 && bf16_layer(C, H, W, K, R, S, stride, pad) && !conv2d_kvec_ok(C, H, W, K, R, S, stride, pad, 1));
}

/* Does this layer's forward (wino_layer) or dx (wino_dx_layer) run as
 * Winograd F(2x2,3x3) (conv2d_wino.c)? In fp32, and in bf16 runs with a
 * bf16 product (even channel counts): there it beats the other bf16 paths
 * (one core, batch 64: kaggle-deep's 32->32 at 28x28 2.7 ms forward
 * against 5.7 for the bf16 GEMM; 64->64 at 14x14 1.6 against 3.2 for the
 * bf16 kvec kernels, forward and dx). The weight gradient stays fp32.
 * DIGITS_CONV=nowino turns it off. */
static int wino_disabled(void) { return path_disabled("nowino"); }
/* DIGITS_CONV=nosplit keeps a one-image inference call on one thread. */
static int split_disabled(void) { return path_disabled("nosplit"); }
static int wino_layer(int C, int H, int W, int K, int R, int S, int stride, int pad) {
    return !wino_disabled() && conv2d_wino_ok(C, H, W, K, R, S, stride, pad);
}
static int wino_dw_layer(int C, int H, int W, int K, int R, int S, int stride, int pad) {
    return !wino_disabled() && conv2d_wino_dw_ok(C, H, W, K, R, S, stride, pad);
}
static int wino_dx_layer(int C, int H, int W, int K, int R, int S, int stride, int pad) {
    const int P = conv_out_size(H, R, stride, pad), Q = conv_out_size(W, S, stride, pad);
    return !wino_disabled() && P > 0 && Q > 0 && conv2d_wino_ok(K, P, Q, C, R, S, stride, R - 1 - pad);
}
/* Does an inference (packed weights) batch call of this layer run as
 * Winograd F(4x4,3x3) (conv2d_wino4.c)? fp32, where each thread's chunk
 * fills a tile vector's images (fewer: F(2x2), whose one-image layout fills
 * its lanes; one image also keeps its split). Measured faster than F(2x2),
 * or than kvec where F(2x2) does not fit (odd outputs), on every zoo shape
 * (one core, in-cache batches: 32->32 at 28x28 1.3-1.4x, 32->64 and
 * 64->64 at 14x14 1.7-2x, 64->64 at 11x11 1.7x, 128->128 at 7x7 1.46x).
 * DIGITS_WINO=f2 turns it off (A/B). A 5x5 stride-1 layer runs as
 * F(2x2,5x5) (conv2d_wino5.c) in the same area, one image too (its lanes
 * fill with one image's rows); DIGITS_CONV=nowino5 turns that off. */
static int wino4_layer(int N, int nthreads, int C, int H, int W, int K, int R, int S, int stride, int pad) {
    static int off = -1; /* read once */
    if (off < 0) {
        const char *v = getenv("DIGITS_WINO");
        off = v && strcmp(v, "f2") == 0;
    }
    if (off || wino_disabled() || use_bf16) return 0;
    if (conv2d_wino5_ok(C, H, W, K, R, S, stride, pad)) return !path_disabled("nowino5");
    return conv2d_wino4_ok(C, H, W, K, R, S, stride, pad) &&
           N / chunk_count(N, nthreads) >= conv2d_wino4_images(H, W, pad);
}

/* Does an inference (packed weights) batch call of this layer run with the
 * images in the vector lanes (conv2d_ilv.c)? fp32, a shape the kernel
 * takes, no zero padding after it, and a full group of images per thread.
 * DIGITS_CONV=noilv turns it off (A/B). */
static int ilv_layer(int N, int nthreads, int C, int H, int W, int K, int R, int S, int stride, int pad,
                     const Epilogue *ep) {
    return !path_disabled("noilv") && !use_bf16 && !(ep && ep->padded) &&
           conv2d_ilv_ok(C, H, W, K, R, S, stride, pad) && N / chunk_count(N, nthreads) >= conv2d_ilv_images();
}

void conv2d_forward(float *y, const float *x, const float *w, const float *b, int N, int C,
                    int H, int W, int K, int R, int S, int stride, int pad, float *workspace,
                    int nthreads) {
    conv2d_forward_ep(y, x, w, b, N, C, H, W, K, R, S, stride, pad, workspace, nthreads, NULL);
}

/* What one batch chunk of conv2d_forward_ep needs: the arguments and the
 * path chosen for the layer. */
typedef struct {
    float *y;
    const float *x, *w, *b;
    float *workspace;
    const Epilogue *ep;
    const int *table;
    size_t ws;
    int N, C, H, W, K, R, S, stride, pad, nt, P, Q, band, group;
    int pointwise, wino, direct, kvec, phase, bf16;
    int packed_slices; /* slices 0..packed_slices-1 already hold this layer's packed weights */
    int wino4, packed4; /* F(4x4) Winograd; the slices holding its weights */
    int c1; /* inference, one input channel: conv2d_c1.c instead of the direct kernel */
    int ilv, packed_ilv; /* inference batch, small layer: conv2d_ilv.c; the slices holding its weights */
} ForwardChunk;

static inline int pool_out_size(int in, int F, int T) { return (in - F) / T + 1; }

size_t conv2d_pool_buf_floats(int C, int H, int W, int K, int R, int S, int stride, int pad) {
    const int P = conv_out_size(H, R, stride, pad), Q = conv_out_size(W, S, stride, pad);
    int g = conv2d_kvec_group(C, H, W, K, R, S, stride, pad); /* the most images one kernel call writes */
    if (conv2d_wino_ok(C, H, W, K, R, S, stride, pad) && conv2d_wino_group(C, H, W, pad) > g)
        g = conv2d_wino_group(C, H, W, pad);
    if (conv2d_wino4_ok(C, H, W, K, R, S, stride, pad) && conv2d_wino4_group(C, H, W, pad) > g)
        g = conv2d_wino4_group(C, H, W, pad);
    if (conv2d_wino5_ok(C, H, W, K, R, S, stride, pad) && conv2d_wino5_group(C, H, W, pad) > g)
        g = conv2d_wino5_group(C, H, W, pad);
    return (size_t)(g > 1 ? g : 1) * K * P * Q;
}

/* Where a kernel call of chunk t writes images n0..: y itself, or with
 * pooling in the epilogue the chunk's own slice of the pool buffer. */
static inline float *chunk_out(const ForwardChunk *f, int t, int n0) {
    if (f->ep && (f->ep->pool || f->ep->padded)) return f->ep->pool_buf + (size_t)t * f->ep->pool_slice;
    return f->y + (size_t)n0 * f->K * f->P * f->Q;
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
    const int *pd = f->ep->pad, P = f->P, Q = f->Q, Wo = Q + pd[2] + pd[3];
    const size_t plane = out_plane(f->ep, P, Q);
    for (int i = 0; i < g; i++)
        for (int k = 0; k < f->K; k++) {
            const float *src = out + (size_t)i * img + (size_t)k * ld;
            float *row = f->y + ((size_t)(n0 + i) * f->K + k) * plane;
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
    const int K = f->K, P = f->P, Q = f->Q;
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

/* Chunk t of a one-input-channel inference layer (conv2d_c1.c): the
 * epilogue's steps run in the kernel, its pooling or padding after. */
static void forward_chunk_c1(const ForwardChunk *f, int t) {
    const int K = f->K, PQ = f->P * f->Q;
    ForwardChunk rest = *f; /* the pooling or padding, without the steps */
    Epilogue ep;
    if (f->ep) {
        ep = *f->ep;
        ep.n = 0;
        rest.ep = &ep;
    }
    for (int n = chunk_begin(t, f->N, f->nt); n < chunk_begin(t + 1, f->N, f->nt); n++) {
        float *o = chunk_out(f, t, n);
        conv2d_c1_forward(o, f->x + (size_t)n * f->H * f->W, f->w, f->b, f->H, f->W, K, f->pad, f->ep);
        if (f->ep) chunk_finish(&rest, o, (size_t)K * PQ, PQ, n, 1, NULL);
    }
}

/* The forward paths of one chunk: chunk t of nt of the batch (images
 * chunk_begin(t)..chunk_begin(t+1)-1) on workspace slice t, `col`. */

/* images in the vector lanes: 16 images a call, pooled straight into y */
static void chunk_ilv(const ForwardChunk *f, int t, float *col) {
    const int C = f->C, H = f->H, W = f->W, K = f->K, R = f->R, S = f->S;
    float *ws = ilv_buffer(col, C, H, W, K, R, S, f->stride, f->pad);
    if (t >= f->packed_ilv) conv2d_ilv_pack(ws, f->w, C, K, R, S);
    const size_t out_img = (size_t)K * out_plane(f->ep, f->P, f->Q);
    const int G = conv2d_ilv_images(), end = chunk_begin(t + 1, f->N, f->nt);
    for (int n0 = chunk_begin(t, f->N, f->nt); n0 < end; n0 += G)
        conv2d_ilv_forward(f->y + (size_t)n0 * out_img, f->x + (size_t)n0 * C * H * W, f->b,
                           end - n0 < G ? end - n0 : G, ws, C, H, W, K, R, S, f->pad, f->ep);
}

/* F(4x4,3x3) or F(2x2,5x5) Winograd, the weights in their own area */
static void chunk_wino4(const ForwardChunk *f, int t, float *col) {
    const int C = f->C, H = f->H, W = f->W, K = f->K, PQ = f->P * f->Q;
    float *sc = wino4_buffer(col, C, H, W, K, f->R, f->S, f->stride, f->pad);
    const int five = f->R == 5;
    if (t >= f->packed4) (five ? conv2d_wino5_pack : conv2d_wino4_pack)(sc, f->w, C, K);
    const int G = five ? conv2d_wino5_group(C, H, W, f->pad) : conv2d_wino4_group(C, H, W, f->pad);
    const int end = chunk_begin(t + 1, f->N, f->nt);
    for (int n0 = chunk_begin(t, f->N, f->nt); n0 < end; n0 += G) {
        const int g = end - n0 < G ? end - n0 : G;
        float *o = chunk_out(f, t, n0);
        (five ? conv2d_wino5_forward : conv2d_wino4_forward)(o, f->x + (size_t)n0 * C * H * W, f->b, g, sc, C, H, W,
                                                             K, f->pad);
        if (f->ep) chunk_finish(f, o, (size_t)K * PQ, PQ, n0, g, NULL);
    }
}

/* F(2x2,3x3) Winograd: G images per call; each chunk transforms its own filters */
static void chunk_wino(const ForwardChunk *f, int t, float *col) {
    const int C = f->C, H = f->H, W = f->W, K = f->K, PQ = f->P * f->Q;
    float *sc = wino_buffer(col, C, H, W, K, f->R, f->S, f->stride, f->pad);
    const int wb = use_bf16 && conv2d_wino_bf16_ok(C);
    if (t >= f->packed_slices) conv2d_wino_pack(sc, f->w, C, K, 0, wb);
    const int G = conv2d_wino_group(C, H, W, f->pad), end = chunk_begin(t + 1, f->N, f->nt);
    for (int n0 = chunk_begin(t, f->N, f->nt); n0 < end; n0 += G) {
        const int g = end - n0 < G ? end - n0 : G;
        float *o = chunk_out(f, t, n0);
        conv2d_wino_forward(o, f->x + (size_t)n0 * C * H * W, f->b, g, sc, C, H, W, K, f->pad, wb);
        if (f->ep) chunk_finish(f, o, (size_t)K * PQ, PQ, n0, g, NULL);
    }
}

/* the direct kernel: each chunk packs its own copy (a few KB, no barrier) */
static void chunk_direct(const ForwardChunk *f, int t, float *col) {
    const int C = f->C, H = f->H, W = f->W, K = f->K, R = f->R, S = f->S, stride = f->stride, pad = f->pad;
    const int PQ = f->P * f->Q;
    float *wp = col + im2col_floats(C, H, W, K, R, S, stride, pad);
    if (t >= f->packed_slices) conv2d_direct_pack(wp, f->w, K, C, R, S, 0);
    float *xp = direct_pad_buffer(col, C, H, W, K, R, S, stride, pad);
    for (int n = chunk_begin(t, f->N, f->nt); n < chunk_begin(t + 1, f->N, f->nt); n++) {
        float *o = chunk_out(f, t, n);
        conv2d_direct_forward(o, f->x + (size_t)n * C * H * W, wp, f->b, C, H, W, K, R, S, pad, xp);
        if (f->ep) chunk_finish(f, o, (size_t)K * PQ, PQ, n, 1, NULL);
    }
}

/* stride 2 as stride 1 on the input's phases */
static void chunk_phase(const ForwardChunk *f, int t, float *col) {
    const int C = f->C, H = f->H, W = f->W, K = f->K, R = f->R, S = f->S, pad = f->pad, PQ = f->P * f->Q;
    float *ps = phase_buffer(col, C, H, W, K, R, S, f->stride, pad);
    if (t >= f->packed_slices) conv2d_phase_pack(ps, f->w, C, H, W, K, R, S, pad, 0);
    for (int n = chunk_begin(t, f->N, f->nt); n < chunk_begin(t + 1, f->N, f->nt); n++) {
        float *o = chunk_out(f, t, n);
        conv2d_phase_forward(o, f->x + (size_t)n * C * H * W, f->b, ps, C, H, W, K, R, S, pad);
        if (f->ep) chunk_finish(f, o, (size_t)K * PQ, PQ, n, 1, NULL);
    }
}

/* output channels in the vector lanes: G images per call */
static void chunk_kvec(const ForwardChunk *f, int t, float *col) {
    const int C = f->C, H = f->H, W = f->W, K = f->K, R = f->R, S = f->S, stride = f->stride, pad = f->pad;
    const int PQ = f->P * f->Q;
    float *ks = kvec_buffer(col, C, H, W, K, R, S, stride, pad);
    if (t >= f->packed_slices) conv2d_kvec_pack(ks, f->w, C, H, W, K, R, S, stride, pad, 0, use_bf16);
    const int G = conv2d_kvec_group(C, H, W, K, R, S, stride, pad), end = chunk_begin(t + 1, f->N, f->nt);
    for (int n0 = chunk_begin(t, f->N, f->nt); n0 < end; n0 += G) {
        const int g = end - n0 < G ? end - n0 : G;
        float *o = chunk_out(f, t, n0);
        conv2d_kvec_forward(o, f->x + (size_t)n0 * C * H * W, f->b, g, ks, C, H, W, K, R, S, stride, pad, use_bf16);
        if (f->ep) chunk_finish(f, o, (size_t)K * PQ, PQ, n0, g, NULL);
    }
}

/* im2col of `g` images from n0 into col, side by side (leading dimension g*PQ) */
static void chunk_im2col_group(const ForwardChunk *f, float *col, int n0, int g) {
    const int C = f->C, H = f->H, W = f->W, PQ = f->P * f->Q, ld = g * PQ;
    for (int i = 0; i < g; i++)
        im2col_image(col + (size_t)i * PQ, ld, f->x + (size_t)(n0 + i) * C * H * W, f->table, C, H, W, f->R, f->S,
                     f->stride, f->pad, f->P, f->Q);
}

/* bf16 products of im2col, `group` images per product */
static void chunk_bf16(const ForwardChunk *f, int t, float *col) {
    const int C = f->C, H = f->H, W = f->W, K = f->K, R = f->R, S = f->S, stride = f->stride, pad = f->pad;
    const int PQ = f->P * f->Q, CRS = C * R * S, group = f->group;
    const int pooled = f->ep && (f->ep->pool || f->ep->padded); /* written through the pool buffer */
    Bf16Scratch bs = bf16_scratch(col + im2col_floats(C, H, W, K, R, S, stride, pad) +
                                      packed_floats(C, H, W, K, R, S, stride, pad), C, K, R, S, group * PQ);
    const size_t lw = bf16_pair_words(CRS);
    bf16_convert_rows(bs.w, lw, f->w, CRS, K, CRS);
    const int end = chunk_begin(t + 1, f->N, f->nt);
    for (int n0 = chunk_begin(t, f->N, f->nt); n0 < end; n0 += group) {
        const int g = end - n0 < group ? end - n0 : group, ld = g * PQ;
        chunk_im2col_group(f, col, n0, g);
        bf16_pack_b(bs.pack, col, ld, CRS, ld);
        /* (K, g*PQ) = w . col: straight into y[n0] for one image, else through yg */
        float *out = g == 1 ? chunk_out(f, t, n0) : col + (size_t)CRS * group * PQ;
        gemm_bf16(out, ld, bs.w, lw, bs.pack, K, ld, CRS, 0);
        chunk_finish(f, out, g == 1 ? (size_t)K * PQ : (size_t)PQ, ld, n0, g, f->b);
        if (g > 1 && !pooled) group_scatter(f->y, out, n0, g, K, PQ);
    }
}

/* fp32 products of im2col, `group` (> 1) images per product (see group_images) */
static void chunk_grouped(const ForwardChunk *f, int t, float *col) {
    const int K = f->K, PQ = f->P * f->Q, CRS = f->C * f->R * f->S, group = f->group;
    const int pooled = f->ep && (f->ep->pool || f->ep->padded);
    float *yg = col + (size_t)CRS * group * PQ;
    const int end = chunk_begin(t + 1, f->N, f->nt);
    for (int n0 = chunk_begin(t, f->N, f->nt); n0 < end; n0 += group) {
        const int g = end - n0 < group ? end - n0 : group, ld = g * PQ;
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
static void chunk_im2col(const ForwardChunk *f, int t, float *col) {
    const int C = f->C, H = f->H, W = f->W, K = f->K, R = f->R, S = f->S, stride = f->stride, pad = f->pad;
    const int P = f->P, Q = f->Q, PQ = P * Q, CRS = C * R * S, band = f->band;
    for (int n = chunk_begin(t, f->N, f->nt); n < chunk_begin(t + 1, f->N, f->nt); n++) {
        const float *xn = f->x + (size_t)n * C * H * W;
        float *yn = chunk_out(f, t, n);
        if (f->pointwise) /* y[n] (K,PQ) = w (K,C) . x[n] (C,PQ) */
            dg_sgemm_parallel(CblasRowMajor, CblasNoTrans, CblasNoTrans, K, PQ, CRS, 1.0f, f->w, CRS, xn, PQ, 0.0f,
                              yn, PQ);
        else
            for (int pb = 0; pb < P; pb += band) {
                const int pe = pb + band < P ? pb + band : P, TQ = (pe - pb) * Q;
                if (f->table) im2col_gather(col, TQ, xn, f->table, C, H, W, R * S, PQ); /* one band: the image */
                else im2col(col, xn, C, H, W, R, S, stride, pad, P, Q, pb, pe);
                /* y[n][:, band] (K,TQ) = w (K,CRS) . col (CRS,TQ) */
                dg_sgemm_parallel(CblasRowMajor, CblasNoTrans, CblasNoTrans, K, TQ, CRS, 1.0f, f->w, CRS, col, TQ,
                                  0.0f, yn + (size_t)pb * Q, PQ);
            }
        chunk_finish(f, yn, (size_t)K * PQ, PQ, n, 1, f->b);
    }
}

/* Chunk t of the batch on workspace slice t, by the layer's path. */
static void forward_chunk(const ForwardChunk *f, int t) {
    float *col = f->workspace + (size_t)t * f->ws;
    if (f->ilv) chunk_ilv(f, t, col);
    else if (f->wino4) chunk_wino4(f, t, col);
    else if (f->wino) chunk_wino(f, t, col);
    else if (f->c1) forward_chunk_c1(f, t);
    else if (f->direct) chunk_direct(f, t, col);
    else if (f->phase) chunk_phase(f, t, col);
    else if (f->kvec) chunk_kvec(f, t, col);
    else if (f->bf16) chunk_bf16(f, t, col);
    else if (f->group > 1) chunk_grouped(f, t, col);
    else chunk_im2col(f, t, col);
}

/* ---- one image on several threads (inference) ------------------------------
 * A one-image call has one batch chunk, so one thread. With packed weights
 * (an inference model) a large enough layer instead cuts its output
 * channels into one block per thread, each block a convolution of its own
 * (weights, bias and epilogue rows k0.., output planes k0..) on its own
 * workspace slice, where its packed weights stay. Blocks are multiples of
 * SPLIT_ALIGN channels (the Winograd and kvec kernels' vector widths), and
 * a block's workspace must fit the layer's slice. The blocks go to helper
 * threads that the caller never waits for unless they took a block
 * (core/blocks.h: an OpenMP region waited for a descheduled thread once
 * per layer on a busy machine). Below SPLIT_MIN_MACS handing a block over
 * (~1-2 us) costs more than the second core saves. */
#define SPLIT_ALIGN 16
#define SPLIT_MIN_MACS (1L << 19)

static int split_blocks(int N, int nthreads, int C, int H, int W, int K, int R, int S, int stride, int pad) {
    if (N != 1 || nthreads < 2 || split_disabled()) return 1;
    const int P = conv_out_size(H, R, stride, pad), Q = conv_out_size(W, S, stride, pad);
    if ((long)K * C * R * S * P * Q < SPLIT_MIN_MACS) return 1;
    int ns = dg_blocks_width(nthreads); /* 1 while sharing loses (a busy machine) */
    while (ns > 1 && K % (ns * SPLIT_ALIGN)) ns--;
    if (ns > 1 && conv2d_workspace_floats(C, H, W, K / ns, R, S, stride, pad) >
                      conv2d_workspace_floats(C, H, W, K, R, S, stride, pad))
        return 1;
    return ns;
}

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

static void forward_impl(float *y, const float *x, const float *w, const float *b, int N, int C, int H, int W,
                         int K, int R, int S, int stride, int pad, float *workspace, int nthreads, const Epilogue *ep,
                         Conv2dPacked *packed);

/* Does the kernel cover the whole unpadded input (one output pixel, e.g.
 * lenet5's 4x4 -> 1x1), with no pooling or padding epilogue? Then a
 * one-image call is the matrix-vector product of a linear layer, whose
 * (K, C*R*S) weights are the conv's as stored: linear_forward_ep, 8 rows
 * at a time (as im2col + sgemm with one column it ran at 2-3 GFLOP/s); an
 * inference batch is the linear layer's one sgemm on x as it lies, (N,
 * C*H*W), with no im2col copy. */
static int whole_input(int C, int H, int W, int R, int S, int pad, const Epilogue *ep) {
    (void)C;
    return R == H && S == W && pad == 0 && !(ep && (ep->pool || ep->padded));
}

typedef struct { /* one split call (forward_split) */
    float *y, *workspace;
    const float *x, *w, *b;
    const Epilogue *ep;
    size_t ws;
    int C, H, W, K, R, S, stride, pad, Kb, have;
} SplitJob;

/* Block t: output channels t*Kb.. on workspace slice t, whichever thread runs it. */
static void split_block(void *arg, int t) {
    const SplitJob *j = arg;
    const int P = conv_out_size(j->H, j->R, j->stride, j->pad), Q = conv_out_size(j->W, j->S, j->stride, j->pad);
    const int k0 = t * j->Kb;
    Epilogue buf;
    Conv2dPacked own = {j->have, use_bf16, 0, j->have, 0, 0}; /* its path's weights (F(2x2) or a 5x5 F(2x2,5x5)) */
    const size_t plane = out_plane(j->ep, P, Q);
    forward_impl(j->y + (size_t)k0 * plane, j->x, j->w + (size_t)k0 * j->C * j->R * j->S, j->b ? j->b + k0 : NULL, 1,
                 j->C, j->H, j->W, j->Kb, j->R, j->S, j->stride, j->pad, j->workspace + (size_t)t * j->ws, 1,
                 epilogue_from(j->ep, k0, t, &buf), &own);
}

/* The split: block t on workspace slice t (see split_blocks), the blocks
 * shared by the caller and helper threads (core/blocks.h). */
static void forward_split(float *y, const float *x, const float *w, const float *b, int C, int H, int W, int K,
                          int R, int S, int stride, int pad, float *workspace, const Epilogue *ep,
                          Conv2dPacked *packed, int ns) {
    SplitJob j = {y, workspace, x, w, b, ep, conv2d_workspace_floats(C, H, W, K, R, S, stride, pad), C, H, W, K, R, S,
                  stride, pad, K / ns, packed->split == ns && packed->bf16 == use_bf16};
    dg_blocks_run(ns, ns, split_block, &j);
    packed->wino4 = 0; /* the blocks' weights may lie where F(4x4)'s were */
    packed->slices = ns;
    packed->split = ns;
    packed->bf16 = use_bf16;
}

/* ---- one Winograd image cut by rows (inference) ----------------------------
 * Cutting a one-image F(2x2) layer by output channels makes every block
 * copy and transform the whole input, and the next layer reads what the
 * other core wrote. Cut by tile rows instead (2 output rows each), a block
 * transforms only the input rows it needs and computes every channel of
 * its rows; its epilogue's steps, 2x2 max pooling or zero padding run on
 * those rows too, so the next layer's rows stay in the same core's cache.
 * Each block packs the whole layer's weights into its own slice once (as
 * the batch chunks do). DIGITS_CONV=norows turns it off (channel blocks). */
static int rows_disabled(void) { return path_disabled("norows"); }

typedef struct { /* one row-cut call */
    float *y, *out, *workspace; /* out: the conv's planes (K,P,Q): y, or the pool buffer */
    const float *x, *w, *b;
    const Epilogue *ep;
    size_t ws;
    int C, H, W, K, R, S, stride, pad, P, Q, TH, ns, have, wb;
    int kvec; /* the output-channel kernels (conv2d_kvec.c), cut by output rows */
} RowsJob;

/* Blocks for a one-image layer: 0 (not cut by rows) or ns >= 2. */
static int rows_blocks(int N, int nthreads, int C, int H, int W, int K, int R, int S, int stride, int pad,
                       const Epilogue *ep) {
    if (N != 1 || nthreads < 2 || split_disabled() || rows_disabled()) return 0;
    if (!wino_layer(C, H, W, K, R, S, stride, pad)) return 0;
    if (ep && ep->pool && (ep->pool != 2 || ep->pool_stride != 2 || ep->pool_avg)) return 0;
    const int P = conv_out_size(H, R, stride, pad), Q = conv_out_size(W, S, stride, pad);
    if ((long)K * C * R * S * P * Q < SPLIT_MIN_MACS) return 0;
    int ns = dg_blocks_width(nthreads);
    const int TH = conv2d_wino_tile_rows(H, pad);
    if (ns > TH / 2) ns = TH / 2; /* two tile rows a block at least */
    return ns >= 2 ? ns : 0;
}

/* Blocks for a one-image layer of the output-channel kernels cut by output
 * rows: 0, or ns >= 2 where the channel split cannot keep those kernels
 * (kaggle-deep's 32->32 5x5/2 layer: 16-channel blocks are narrower than
 * their 32- and 64-channel register blocks, so the layer ran on one core).
 * Each block reads all the weights (100 KB there) and its rows of the input.
 * fp32; no pooling epilogue. */
static int kvec_rows_blocks(int N, int nthreads, int C, int H, int W, int K, int R, int S, int stride, int pad,
                            const Epilogue *ep) {
    if (N != 1 || nthreads < 2 || use_bf16 || split_disabled() || rows_disabled() || (ep && ep->pool)) return 0;
    if (wino_layer(C, H, W, K, R, S, stride, pad) || wino4_layer(N, nthreads, C, H, W, K, R, S, stride, pad) ||
        is_pointwise(R, S, stride, pad) || conv2d_direct_ok(H, W, R, S, stride, pad, C * R * S) ||
        !kvec_layer(C, H, W, K, R, S, stride, pad))
        return 0;
    const int P = conv_out_size(H, R, stride, pad), Q = conv_out_size(W, S, stride, pad);
    if ((long)K * C * R * S * P * Q < SPLIT_MIN_MACS) return 0;
    int ns = dg_blocks_width(nthreads);
    if (ns > P) ns = P;
    if (ns < 2 || (K % ns == 0 && conv2d_kvec_ok(C, H, W, K / ns, R, S, stride, pad, 0))) return 0;
    return ns;
}

/* The epilogue's per-channel steps on rows p0..p1-1 of each plane. */
static void rows_steps(const RowsJob *j, int p0, int p1) {
    for (int k = 0; k < j->K; k++) {
        Epilogue buf;
        epilogue_apply(j->out + (size_t)k * j->P * j->Q + (size_t)p0 * j->Q, 1, 1, (p1 - p0) * j->Q, NULL,
                       epilogue_from(j->ep, k, 0, &buf));
    }
}

/* Rows p0..p1-1 of each plane into y inside its zeros (the padded
 * epilogue); the first block writes the top zero rows, the last the bottom. */
static void rows_pad(const RowsJob *j, int p0, int p1) {
    const int *pd = j->ep->pad, Q = j->Q, Wo = Q + pd[2] + pd[3];
    const size_t plane = out_plane(j->ep, j->P, Q);
    for (int k = 0; k < j->K; k++) {
        const float *src = j->out + (size_t)k * j->P * Q;
        float *yk = j->y + (size_t)k * plane;
        if (p0 == 0) memset(yk, 0, sizeof(float) * (size_t)pd[0] * Wo);
        for (int p = p0; p < p1; p++) {
            float *row = yk + (size_t)(pd[0] + p) * Wo;
            memset(row, 0, sizeof(float) * pd[2]);
            memcpy(row + pd[2], src + (size_t)p * Q, sizeof(float) * Q);
            memset(row + pd[2] + Q, 0, sizeof(float) * pd[3]);
        }
        if (p1 == j->P) memset(yk + (size_t)(pd[0] + j->P) * Wo, 0, sizeof(float) * (size_t)pd[1] * Wo);
    }
}

/* Block t: tile rows TH*t/ns.. of every channel (kvec: output rows
 * P*t/ns..), then its epilogue. */
static void rows_block(void *arg, int t) {
    const RowsJob *j = arg;
    const int C = j->C, H = j->H, W = j->W, K = j->K, pad = j->pad;
    float *slice = j->workspace + (size_t)t * j->ws;
    int r0, p0, p1;
    if (j->kvec) {
        float *ks = kvec_buffer(slice, C, H, W, K, j->R, j->S, j->stride, pad);
        if (t >= j->have) conv2d_kvec_pack(ks, j->w, C, H, W, K, j->R, j->S, j->stride, pad, 0, 0);
        r0 = p0 = j->P * t / j->ns, p1 = j->P * (t + 1) / j->ns;
        conv2d_kvec_forward_rows(j->out, j->x, j->b, ks, C, H, W, K, j->R, j->S, j->stride, pad, p0, p1);
    } else {
        float *sc = wino_buffer(slice, C, H, W, K, 3, 3, 1, pad);
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
        const int Qo = j->Q / 2;
        const size_t PQ = (size_t)j->P * j->Q;
        for (int k = 0; k < K; k++)
            maxpool_planes(j->y + ((size_t)k * (j->P / 2) + r0) * Qo, j->out + k * PQ + (size_t)p0 * j->Q, PQ, 1,
                           p1 - p0, j->Q, 2, 2, ep->pool_relu);
    }
}

static void forward_rows(float *y, const float *x, const float *w, const float *b, int C, int H, int W, int K,
                         int R, int S, int stride, int pad, int kvec, float *workspace, const Epilogue *ep,
                         Conv2dPacked *packed, int ns) {
    const int pooled = ep && (ep->pool || ep->padded);
    const int have = packed->bf16 == use_bf16 && !packed->split ? packed->slices : 0;
    RowsJob j = {y, pooled ? ep->pool_buf : y, workspace, x, w, b, ep,
                 conv2d_workspace_floats(C, H, W, K, R, S, stride, pad), C, H, W, K, R, S, stride, pad,
                 conv_out_size(H, R, stride, pad), conv_out_size(W, S, stride, pad),
                 kvec ? 0 : conv2d_wino_tile_rows(H, pad), ns, have, !kvec && use_bf16 && conv2d_wino_bf16_ok(C), kvec};
    dg_blocks_run(ns, ns, rows_block, &j);
    packed->slices = have > ns ? have : ns;
    packed->bf16 = use_bf16;
    packed->split = 0;
    packed->rows = ns;
}

/* conv2d_forward_ep, and conv2d_forward_packed when packed is not NULL:
 * the paths that pack their weights into the slice (Winograd, direct,
 * phase, kvec) skip it on the slices *packed says hold them, and record
 * the slices they packed. */
static void forward_impl(float *y, const float *x, const float *w, const float *b, int N, int C, int H, int W,
                         int K, int R, int S, int stride, int pad, float *workspace, int nthreads, const Epilogue *ep,
                         Conv2dPacked *packed) {
    const int P = conv_out_size(H, R, stride, pad), Q = conv_out_size(W, S, stride, pad);
    DG_ASSERT(P > 0 && Q > 0 && stride > 0 && pad >= 0);
    if (packed && whole_input(C, H, W, R, S, pad, ep)) { /* y (N, K) = x (N, CHW) . w (K, CHW)^T */
        linear_forward_ep(y, x, w, b, N, C * R * S, K, ep, nthreads, NULL);
        return;
    }
    if (packed) {
        const int nr = rows_blocks(N, nthreads, C, H, W, K, R, S, stride, pad, ep);
        const int nk = nr ? 0 : kvec_rows_blocks(N, nthreads, C, H, W, K, R, S, stride, pad, ep);
        if (nr || nk) {
            forward_rows(y, x, w, b, C, H, W, K, R, S, stride, pad, nk > 0, workspace, ep, packed, nr ? nr : nk);
            return;
        }
        packed->rows = 0;
        const int ns = split_blocks(N, nthreads, C, H, W, K, R, S, stride, pad);
        if (ns > 1) {
            forward_split(y, x, w, b, C, H, W, K, R, S, stride, pad, workspace, ep, packed, ns);
            return;
        }
    }
    const int CRS = C * R * S;
    const int nt = chunk_count(N, nthreads);
    const int pointwise = is_pointwise(R, S, stride, pad);
    const size_t ws = conv2d_workspace_floats(C, H, W, K, R, S, stride, pad);
    const int band = band_rows(CRS, P, Q);
    /* bf16 runs keep deep one-vector-row layers (14x14) on the bf16 product:
     * as fast as the fp32 direct kernel there (78 vs 76 %), and bf16 */
    /* inference batch of a small layer: images in the lanes (conv2d_ilv.c) */
    const int ilv = packed && ilv_layer(N, nthreads, C, H, W, K, R, S, stride, pad, ep);
    const int wino4 = !ilv && packed && wino4_layer(N, nthreads, C, H, W, K, R, S, stride, pad); /* F(4x4) */
    const int wino = !ilv && (wino4 || wino_layer(C, H, W, K, R, S, stride, pad)); /* 3x3 stride 1: Winograd */
    const int direct = !ilv && !wino && !pointwise && conv2d_direct_ok(H, W, R, S, stride, pad, CRS) &&
                       !(use_bf16 && bf16_layer(C, H, W, K, R, S, stride, pad) && !conv2d_direct_shallow(CRS) &&
                         Q <= 16);
    const int group = group_images(C, H, W, K, R, S, stride, pad);
    /* deep layers with small outputs: vectorised over output channels */
    const int kvec = !ilv && !wino && !pointwise && !direct && kvec_layer(C, H, W, K, R, S, stride, pad);
    /* stride 2 on the phases: faster than bf16 products too (a 5x5/2 layer
     * at 28x28: 110 vs 93 GFLOP/s; conv2d_backward keeps bf16 there) */
    const int phase = !ilv && !wino && !direct && !kvec && group == 1 && conv2d_phase_ok(C, H, W, K, R, S, stride, pad);
    /* a one-image call (serving) stays fp32: rounding the weights to bf16
     * costs as much as the bf16 product saves (lenet5's 4x4 -> 1x1 layer:
     * K x CRS conversions for K x CRS products) */
    const int bf16 = use_bf16 && N > 1 && !ilv && !wino && !direct && !phase && !kvec &&
                     bf16_layer(C, H, W, K, R, S, stride, pad);
    int *table = NULL, table_owned = 0; /* im2col by gathers (shared, read-only) */
    if (!pointwise && !ilv && !wino && !direct && !phase && !kvec && band == P && use_gather(stride, W, P, Q))
        table = gather_table_get(H, W, R, S, stride, pad, P, Q, &table_owned);

    /* inference with one input channel: conv2d_c1.c (reads w as it is) */
    const int c1 = packed && direct && conv2d_c1_ok(C, H, W, R, S, stride, pad) && conv2d_c1_steps_ok(ep);
    const int packs = wino || (direct && !c1) || phase || kvec; /* paths whose weights a slice keeps */
    const int have = packed && packs && packed->bf16 == use_bf16 && !packed->split ? packed->slices : 0;
    const int have4 = wino4 && !packed->split ? packed->wino4 : 0;
    const int have_ilv = ilv && !packed->split ? packed->ilv : 0;
    const ForwardChunk f = {y, x, w, b, workspace, ep, table, ws, N, C, H, W, K, R, S, stride, pad, nt, P, Q, band,
                            group, pointwise, wino, direct, kvec, phase, bf16, have, wino4, have4, c1, ilv, have_ilv};
    /* one chunk: no OpenMP region (one with a false `if` still costs
     * ~0.3 us, a tenth of lenet5's single-image forward over 9 of them) */
    if (nt == 1) {
        forward_chunk(&f, 0);
    } else {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt)
#endif
        for (int t = 0; t < nt; t++) forward_chunk(&f, t);
    }
    if (table_owned) free(table);
    if (ilv) {
        packed->ilv = have_ilv > nt ? have_ilv : nt;
        if (packed->split) packed->slices = packed->split = 0;
    } else if (wino4) { /* the split blocks' weights (if any) are gone; F(2x2)'s stay */
        packed->wino4 = have4 > nt ? have4 : nt;
        if (packed->split) packed->slices = packed->split = 0;
    } else if (packed && packs) {
        packed->slices = have > nt ? have : nt;
        packed->bf16 = use_bf16;
        packed->split = 0;
    }
}

void conv2d_forward_ep(float *y, const float *x, const float *w, const float *b, int N, int C,
                       int H, int W, int K, int R, int S, int stride, int pad, float *workspace,
                       int nthreads, const Epilogue *ep) {
    forward_impl(y, x, w, b, N, C, H, W, K, R, S, stride, pad, workspace, nthreads, ep, NULL);
}

void conv2d_forward_packed(float *y, const float *x, const float *w, const float *b, int N, int C, int H, int W,
                           int K, int R, int S, int stride, int pad, float *workspace, int nthreads,
                           const Epilogue *ep, Conv2dPacked *packed) {
    forward_impl(y, x, w, b, N, C, H, W, K, R, S, stride, pad, workspace, nthreads, ep, packed);
}

/* What one batch chunk of conv2d_backward needs: the arguments and the
 * paths chosen for the layer's dx, dw and db (backward_choose_paths). */
typedef struct {
    float *dx, *dw_partial, *workspace;
    const float *dy, *x, *w;
    const int *table; /* im2col by gathers, or NULL */
    size_t ws, nwb;   /* floats of one workspace slice; of one dw_partial slice (dw then db) */
    int N, C, H, W, K, R, S, stride, pad, nt, P, Q, band, group, dwg;
    int pointwise, direct_w, direct_x, phase_x, wino_w, wino_x, kvec_w, kvec_x, bf16_w, bf16_x;
    int want_w, want_b;
    int rest_w, rest_b, rest_x; /* what the other paths still owe once Winograd and kvec ran */
} BackwardChunk;

/* Choose the path of each gradient for this layer (the sizes and
 * arguments already in *b). */
static void backward_choose_paths(BackwardChunk *b, int want_w, int want_b) {
    const int C = b->C, H = b->H, W = b->W, K = b->K, R = b->R, S = b->S, stride = b->stride, pad = b->pad;
    const int CRS = C * R * S;
    b->pointwise = is_pointwise(R, S, stride, pad);
    b->ws = conv2d_workspace_floats(C, H, W, K, R, S, stride, pad);
    b->band = band_rows(CRS, b->P, b->Q);
    b->nwb = (size_t)K * CRS + K;
    const int bf16_ok = use_bf16 && bf16_layer(C, H, W, K, R, S, stride, pad);
    /* deep layers in bf16 runs: the bf16 products (dx 87 %, dw 71 % of the
     * fp32 peak at 28x28) beat the fp32 direct kernels (79 %, 63 %) */
    b->direct_w = !b->pointwise && conv2d_direct_dw_ok(H, W, R, S, stride, pad, CRS) &&
                  !(bf16_ok && !conv2d_direct_shallow(CRS));
    b->direct_x = !b->pointwise && conv2d_direct_dx_ok(H, W, R, S, stride, pad, K * R * S) &&
                  !(bf16_ok && !conv2d_direct_shallow(K * R * S));
    b->group = group_images(C, H, W, K, R, S, stride, pad);
    /* stride 2 on the phases (conv2d_phase.c); with bf16 the products win
     * the weight gradient (101 vs 77 GFLOP/s) and tie on dx */
    b->phase_x = !bf16_ok && !kvec_layer(C, H, W, K, R, S, stride, pad) && b->group == 1 &&
                 conv2d_phase_ok(C, H, W, K, R, S, stride, pad);
    /* 3x3 stride 1: dw by Winograd (db on the paths below) */
    b->wino_w = want_w && wino_dw_layer(C, H, W, K, R, S, stride, pad);
    b->kvec_w = !b->pointwise && !b->wino_w && kvec_dw_layer(C, H, W, K, R, S, stride, pad); /* dw and db */
    /* (bf16 runs: a 3x3 layer's dx on the bf16 Winograd product rather
     * than kvec: 64->64 at 14x14, one core, 1.8 vs 3.2 ms) */
    b->kvec_x = !b->pointwise && kvec_layer(C, H, W, K, R, S, stride, pad) &&
                conv2d_kvec_dx_ok(C, H, W, K, R, S, stride, pad, use_bf16) &&
                !(use_bf16 && conv2d_wino_bf16_ok(K) && wino_dx_layer(C, H, W, K, R, S, stride, pad));
    /* 3x3 stride 1: dx as the Winograd forward of dy with turned filters */
    b->wino_x = b->dx && !b->kvec_x && wino_dx_layer(C, H, W, K, R, S, stride, pad);
    /* dw partials transposed if bf16_w */
    b->bf16_w = bf16_ok && !b->direct_w && !b->kvec_w && !b->wino_w;
    b->bf16_x = bf16_ok && !b->direct_x && !b->kvec_x;
    b->want_w = want_w;
    b->want_b = want_b;
    b->rest_w = want_w && !b->kvec_w && !b->wino_w;
    b->rest_b = want_b && !b->kvec_w;
    b->rest_x = b->dx && !b->kvec_x && !b->wino_x;
    b->dwg = dw_group(C, H, W, K, R, S, stride, pad);
}

/* Winograd dx of chunk t, G images per call: dx (G,C,H,W) = conv(dy (G,K,P,Q), turned w). */
static void backward_wino_dx(const BackwardChunk *b, int t, float *col) {
    const int C = b->C, H = b->H, W = b->W, K = b->K, R = b->R, S = b->S, stride = b->stride, pad = b->pad;
    const int N = b->N, nt = b->nt, P = b->P, Q = b->Q;
    float *sc = wino_buffer(col, C, H, W, K, R, S, stride, pad);
    const int wb = use_bf16 && conv2d_wino_bf16_ok(K);
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
    const int C = b->C, H = b->H, W = b->W, K = b->K, R = b->R, S = b->S, stride = b->stride, pad = b->pad;
    const int N = b->N, nt = b->nt;
    float *sc = wino_buffer(col, C, H, W, K, R, S, stride, pad);
    conv2d_wino_dw_begin(sc, C, K);
    const int G = conv2d_wino_dw_group(C, H, W, K, pad), end = chunk_begin(t + 1, N, nt);
    for (int n0 = chunk_begin(t, N, nt); n0 < end; n0 += G) {
        const int g = end - n0 < G ? end - n0 : G;
        conv2d_wino_dw(b->dy + (size_t)n0 * K * b->P * b->Q, b->x + (size_t)n0 * C * H * W, g, sc, C, H, W, K, pad);
    }
    conv2d_wino_dw_end(pw, sc, C, K);
}

/* Output-channel kernels of chunk t, G images per call: dw and db into the
 * partials (kvec_w), dx (kvec_x). */
static void backward_kvec(const BackwardChunk *b, int t, float *col, float *pw, float *pdb) {
    const int C = b->C, H = b->H, W = b->W, K = b->K, R = b->R, S = b->S, stride = b->stride, pad = b->pad;
    const int N = b->N, nt = b->nt, PQ = b->P * b->Q, HW = H * W;
    float *ks = kvec_buffer(col, C, H, W, K, R, S, stride, pad);
    if (b->kvec_x && b->dx) conv2d_kvec_pack(ks, b->w, C, H, W, K, R, S, stride, pad, 1, use_bf16);
    const int G = conv2d_kvec_group(C, H, W, K, R, S, stride, pad), end = chunk_begin(t + 1, N, nt);
    for (int n0 = chunk_begin(t, N, nt); n0 < end; n0 += G) {
        const int g = end - n0 < G ? end - n0 : G;
        const float *dyg = b->dy + (size_t)n0 * K * PQ;
        if (b->kvec_w && b->want_b)
            for (int i = 0; i < g; i++) add_row_sums(pdb, dyg + (size_t)i * K * PQ, K, PQ, PQ);
        if (b->kvec_w && b->want_w)
            conv2d_kvec_dw(pw, dyg, b->x + (size_t)n0 * C * HW, g, ks, C, H, W, K, R, S, stride, pad, use_bf16);
        if (b->kvec_x && b->dx)
            conv2d_kvec_dx(b->dx + (size_t)n0 * C * HW, dyg, g, ks, C, H, W, K, R, S, stride, pad, use_bf16);
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
 * group_images), bf16 or fp32: db, dw by im2col, dx by col2im. */
static void backward_grouped(const BackwardChunk *b, int t, float *col, float *pw, float *pdb) {
    const int C = b->C, H = b->H, W = b->W, K = b->K, R = b->R, S = b->S, stride = b->stride, pad = b->pad;
    const int N = b->N, nt = b->nt, P = b->P, Q = b->Q, PQ = P * Q, CRS = C * R * S, HW = H * W, group = b->group;
    Bf16State s = {bf16_scratch(col + im2col_floats(C, H, W, K, R, S, stride, pad) +
                                    packed_floats(C, H, W, K, R, S, stride, pad), C, K, R, S, group * PQ), 0};
    float *dyg = col + (size_t)CRS * group * PQ;
    const int end = chunk_begin(t + 1, N, nt);
    for (int n0 = chunk_begin(t, N, nt); n0 < end; n0 += group) {
        const int g = end - n0 < group ? end - n0 : group, ld = g * PQ;
        group_gather(dyg, b->dy, n0, g, K, PQ); /* dyg (K, g*PQ): the images' dy */
        if (b->rest_b) add_row_sums(pdb, dyg, K, ld, ld);
        if (b->rest_w) {
            for (int i = 0; i < g; i++)
                im2col_image(col + (size_t)i * PQ, ld, b->x + (size_t)(n0 + i) * C * HW, b->table, C, H, W, R, S,
                             stride, pad, P, Q);
            if (b->bf16_w) { /* pw^T (CRS,K) += col (CRS, g*PQ) . dyg^T (g*PQ, K) */
                bf16_convert_rows(s.bs.col, bf16_pair_words(ld), col, ld, CRS, ld);
                bf16_pack_b_transposed(s.bs.pack, dyg, ld, ld, K);
                gemm_bf16(pw, K, s.bs.col, bf16_pair_words(ld), s.bs.pack, CRS, K, ld, 1);
            } else { /* pw (K,CRS) += dyg (K, g*PQ) . col^T (g*PQ, CRS) */
                dg_sgemm_parallel(CblasRowMajor, CblasNoTrans, CblasTrans, K, CRS, ld, 1.0f, dyg, ld, col, ld, 1.0f,
                                  pw, CRS);
            }
        }
        if (b->rest_x) { /* dcol (CRS, g*PQ) = w^T (CRS,K) . dyg, then each image's scatter-add */
            if (b->bf16_x) {
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
                col2im_ld(dxn, col + (size_t)i * PQ, ld, C, H, W, R, S, stride, pad, P, Q, 0, P);
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
    int phase_dw;     /* the phase-layer dw started (stride 2, see conv2d_phase.c) */
} ImageScratch;

/* A 1x1 stride-1 layer: both gradients as products on the image itself. */
static void image_pointwise(const BackwardChunk *b, const Image *im, float *pw) {
    const int K = b->K, C = b->C, PQ = b->P * b->Q;
    if (b->rest_w) /* pw (K,C) += dy[n] (K,PQ) . x[n]^T (PQ,C) */
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
    const int C = b->C, H = b->H, W = b->W, K = b->K, R = b->R, S = b->S, stride = b->stride, pad = b->pad;
    if (b->direct_w && b->rest_w) {
        if (b->dwg == 1) conv2d_direct_dw(pw, im->dyn, im->xn, C, H, W, K, R, S, pad, s->xp);
        else if (im->i % b->dwg == 0) /* this image and the next dwg-1, before any dx reuses xp */
            conv2d_direct_dw_images(pw, im->dyn, im->xn, im->left < b->dwg ? im->left : b->dwg, C, H, W, K, R, S,
                                    pad, s->xp);
        im->dw_done = 1;
    }
    if (b->phase_x && b->rest_w) { /* groups of images, as the direct dw above */
        float *ps = phase_buffer(s->col, C, H, W, K, R, S, stride, pad);
        const int g = conv2d_phase_dw_group();
        if (!s->phase_dw) conv2d_phase_dw_begin(ps, C, H, W, K, R, S, pad);
        s->phase_dw = 1;
        if (im->i % g == 0) conv2d_phase_dw(im->dyn, im->xn, im->left < g ? im->left : g, ps, C, H, W, K, R, S, pad);
        im->dw_done = 1;
    }
    if (b->phase_x && im->dxn) {
        float *ps = phase_buffer(s->col, C, H, W, K, R, S, stride, pad);
        if (!s->packed) {
            conv2d_phase_pack(ps, b->w, C, H, W, K, R, S, pad, 1);
            s->packed = 1;
        }
        conv2d_phase_dx(im->dxn, im->dyn, ps, C, H, W, K, R, S, pad);
        im->dx_done = 1;
    }
    if (b->direct_x && im->dxn) {
        float *wp = s->col + im2col_floats(C, H, W, K, R, S, stride, pad);
        if (!s->packed) {
            conv2d_direct_pack(wp, b->w, K, C, R, S, 1);
            s->packed = 1;
        }
        /* dx[n] (C,H,W) = conv(dy[n] (K,P,Q), flipped w^T, pad R-1-pad) */
        conv2d_direct_forward(im->dxn, im->dyn, wp, NULL, K, b->P, b->Q, C, R, S, R - 1 - pad, s->xp);
        im->dx_done = 1;
    }
}

/* The bf16 products, for the gradients of this image still owed. */
static void image_bf16(const BackwardChunk *b, ImageScratch *s, Image *im, float *pw) {
    const int C = b->C, H = b->H, W = b->W, K = b->K, R = b->R, S = b->S, stride = b->stride, pad = b->pad;
    const int P = b->P, Q = b->Q, PQ = P * Q, CRS = C * R * S;
    Bf16Scratch *bs = &s->bf16.bs;
    if (!im->dw_done && b->bf16_w) { /* pw^T (CRS,K) += col (CRS,PQ) . dy[n]^T (PQ,K) */
        im2col_image(s->col, PQ, im->xn, b->table, C, H, W, R, S, stride, pad, P, Q);
        bf16_convert_rows(bs->col, bf16_pair_words(PQ), s->col, PQ, CRS, PQ);
        bf16_pack_b_transposed(bs->pack, im->dyn, PQ, PQ, K);
        gemm_bf16(pw, K, bs->col, bf16_pair_words(PQ), bs->pack, CRS, K, PQ, 1);
        im->dw_done = 1;
    }
    if (!im->dx_done && b->bf16_x) { /* dcol (CRS,PQ) = w^T (CRS,K) . dy[n] (K,PQ), then scatter-add */
        bf16_weights_transposed(&s->bf16, b->w, CRS, K);
        bf16_pack_b(bs->pack, im->dyn, PQ, K, PQ);
        gemm_bf16(s->col, PQ, bs->wt, bf16_pair_words(K), bs->pack, CRS, PQ, K, 0);
        memset(im->dxn, 0, sizeof(float) * C * H * W);
        col2im(im->dxn, s->col, C, H, W, R, S, stride, pad, P, Q, 0, P);
        im->dx_done = 1;
    }
}

/* fp32 im2col products in bands of output rows, for the gradients of this
 * image still owed: dw from col, dx by col2im. */
static void image_im2col(const BackwardChunk *b, float *col, const Image *im, float *pw) {
    const int C = b->C, H = b->H, W = b->W, K = b->K, R = b->R, S = b->S, stride = b->stride, pad = b->pad;
    const int P = b->P, Q = b->Q, PQ = P * Q, CRS = C * R * S, band = b->band;
    if (!im->dx_done) memset(im->dxn, 0, sizeof(float) * C * H * W);
    for (int pb = 0; pb < P; pb += band) {
        const int pe = pb + band < P ? pb + band : P, TQ = (pe - pb) * Q;
        const float *dyb = im->dyn + (size_t)pb * Q; /* dy[n][:, band] (K,TQ), ld PQ */
        if (!im->dw_done) {
            if (b->table) im2col_gather(col, TQ, im->xn, b->table, C, H, W, R * S, PQ); /* one band: the image */
            else im2col(col, im->xn, C, H, W, R, S, stride, pad, P, Q, pb, pe);
            /* pw (K,CRS) += dy band (K,TQ) . col^T (TQ,CRS) */
            dg_sgemm_parallel(CblasRowMajor, CblasNoTrans, CblasTrans, K, CRS, TQ, 1.0f, dyb, PQ, col, TQ, 1.0f, pw,
                              CRS);
        }
        if (!im->dx_done) {
            /* dcol (CRS,TQ) = w^T (CRS,K) . dy band (K,TQ), then scatter-add */
            dg_sgemm_parallel(CblasRowMajor, CblasTrans, CblasNoTrans, CRS, TQ, K, 1.0f, b->w, CRS, dyb, PQ, 0.0f, col,
                              TQ);
            col2im(im->dxn, col, C, H, W, R, S, stride, pad, P, Q, pb, pe);
        }
    }
}

/* The remaining gradients of chunk t, one image at a time: db, then each
 * gradient on the first path that takes it (kernels, bf16 products, fp32
 * im2col products). */
static void backward_per_image(const BackwardChunk *b, int t, float *col, float *pw, float *pdb) {
    const int C = b->C, H = b->H, W = b->W, K = b->K, R = b->R, S = b->S, stride = b->stride, pad = b->pad;
    const int PQ = b->P * b->Q, HW = H * W;
    ImageScratch s = {col, direct_pad_buffer(col, C, H, W, K, R, S, stride, pad),
                      {bf16_scratch(col + im2col_floats(C, H, W, K, R, S, stride, pad) +
                                        packed_floats(C, H, W, K, R, S, stride, pad), C, K, R, S, b->group * PQ), 0},
                      0, 0};
    const int first = chunk_begin(t, b->N, b->nt), end = chunk_begin(t + 1, b->N, b->nt);
    for (int n = first; n < end; n++) {
        Image im = {n - first, end - n, b->x + (size_t)n * C * HW, b->dy + (size_t)n * K * PQ,
                    b->rest_x ? b->dx + (size_t)n * C * HW : NULL, !b->rest_w, 0};
        im.dx_done = im.dxn == NULL;
        if (b->rest_b) add_row_sums(pdb, im.dyn, K, PQ, PQ);
        if (b->pointwise) {
            image_pointwise(b, &im, pw);
            continue;
        }
        image_kernels(b, &s, &im, pw);
        image_bf16(b, &s, &im, pw);
        if (!im.dw_done || !im.dx_done) image_im2col(b, col, &im, pw);
    }
    if (s.phase_dw) conv2d_phase_dw_end(pw, phase_buffer(col, C, H, W, K, R, S, stride, pad), C, H, W, K, R, S, pad);
}

/* Chunk t of nt of the batch on workspace slice t: its partial dw and db
 * (dw_partial slice t) and its images' dx. Winograd and the kvec kernels
 * first; what they leave goes to the grouped or the per-image products. */
static void backward_chunk(const BackwardChunk *b, int t) {
    float *col = b->workspace + (size_t)t * b->ws;
    float *pw = NULL, *pdb = NULL; /* this chunk's partial dw (K,CRS) and db (K) */
    if (b->want_w || b->want_b) {
        pw = b->dw_partial + (size_t)t * b->nwb;
        pdb = pw + (size_t)b->K * b->C * b->R * b->S;
        memset(pw, 0, sizeof(float) * b->nwb);
    }
    if (b->wino_x) backward_wino_dx(b, t, col);
    if (b->wino_w) backward_wino_dw(b, t, col, pw);
    if (b->kvec_w || b->kvec_x) backward_kvec(b, t, col, pw, pdb);
    if (!b->rest_x && !b->rest_w && !b->rest_b) return;
    if (b->group > 1) backward_grouped(b, t, col, pw, pdb);
    else backward_per_image(b, t, col, pw, pdb);
}

/* Add the chunk partials to dw and db in chunk order: same nthreads, same
 * bits. Each element's sum is independent, so the loop itself may be split. */
static void backward_reduce(const BackwardChunk *b, float *dw, float *db) {
    const int nt = b->nt, K = b->K, CRS = b->C * b->R * b->S;
    const size_t nw = (size_t)K * CRS, nwb = b->nwb;
    const float *dw_partial = b->dw_partial;
    if (dw) {
        const int bf16_w = b->bf16_w;
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

/* Choose the paths, run the batch chunks (in parallel when there are
 * several), reduce their partial weight gradients. */
void conv2d_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                     const float *w, int N, int C, int H, int W, int K, int R, int S, int stride,
                     int pad, float *workspace, float *dw_partial, int nthreads) {
    const int P = conv_out_size(H, R, stride, pad), Q = conv_out_size(W, S, stride, pad);
    DG_ASSERT(P > 0 && Q > 0 && stride > 0 && pad >= 0);
    BackwardChunk b = {.dx = dx, .dw_partial = dw_partial, .workspace = workspace, .dy = dy, .x = x, .w = w,
                       .N = N, .C = C, .H = H, .W = W, .K = K, .R = R, .S = S, .stride = stride, .pad = pad,
                       .nt = chunk_count(N, nthreads), .P = P, .Q = Q};
    backward_choose_paths(&b, dw != NULL, db != NULL);
    int *table = NULL, table_owned = 0; /* im2col by gathers (shared, read-only) */
    if (!b.pointwise && (b.rest_w || b.rest_x) && b.band == P && use_gather(stride, W, P, Q))
        table = gather_table_get(H, W, R, S, stride, pad, P, Q, &table_owned);
    b.table = table;
    const int nt = b.nt;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
#endif
    for (int t = 0; t < nt; t++) backward_chunk(&b, t);
    if (table_owned) free(table);
    backward_reduce(&b, dw, db);
}
