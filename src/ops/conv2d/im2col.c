/* conv2d/im2col.c — im2col and its adjoint col2im: a convolution as a
 * matrix product. The row (c,r,s), column (p,q) of col holds
 * x[c, p*stride+r-pad, q*stride+s-pad], zero outside the image, so that
 * y (K,PQ) = w (K,CRS) . col (CRS,PQ) and dx = col2im(w^T . dy).
 * Row by row with short-row copies, or for small and strided outputs by
 * AVX-512 gathers from a table of offsets built once per shape. Internal
 * to src/ops (conv2d/forward.c, conv2d/backward.c). */
#include "ops/conv2d/im2col.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

#include "core/check.h"


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
 * output rows bounds the workspace (see BAND_FLOATS in conv2d/plan.c). */
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


/* ---- the interface (conv2d/im2col.h) --------------------------------------- */

int conv_use_gather(const ConvShape *s) { return use_gather(s->stride, s->W, s->P, s->Q); }

int *conv_gather_table(const ConvShape *s, int *owned) {
    return gather_table_get(s->H, s->W, s->R, s->S, s->stride, s->pad, s->P, s->Q, owned);
}

void conv_im2col_band(float *col, const float *x, const ConvShape *s, int pb, int pe) {
    im2col(col, x, s->C, s->H, s->W, s->R, s->S, s->stride, s->pad, s->P, s->Q, pb, pe);
}

void conv_im2col_gather(float *col, size_t ld, const float *x, const int *table, const ConvShape *s) {
    im2col_gather(col, ld, x, table, s->C, s->H, s->W, s->R * s->S, s->P * s->Q);
}

void conv_im2col_image(float *col, size_t ld, const float *x, const int *table, const ConvShape *s) {
    im2col_image(col, ld, x, table, s->C, s->H, s->W, s->R, s->S, s->stride, s->pad, s->P, s->Q);
}

void conv_col2im_band(float *x, float *col, const ConvShape *s, int pb, int pe) {
    col2im(x, col, s->C, s->H, s->W, s->R, s->S, s->stride, s->pad, s->P, s->Q, pb, pe);
}

void conv_col2im_image(float *x, float *col, size_t ld, const ConvShape *s) {
    col2im_ld(x, col, ld, s->C, s->H, s->W, s->R, s->S, s->stride, s->pad, s->P, s->Q, 0, s->P);
}
