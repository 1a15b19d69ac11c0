/* linear.c — fully connected layer, y = x w^T + b (PyTorch nn.Linear
 * layout), forward and backward: a loop reference with double
 * accumulators, and a fast path of one cblas_sgemm over the whole batch.
 * The fast path does no threading of its own: called outside a parallel
 * region, the BLAS threads itself. Inference of one image
 * (linear_forward_ep) runs its own matrix-vector product instead: 8 rows
 * at a time, the rows split over the threads, so that each core streams
 * its part of the weights (cnn-bn's 3136->256: 3.2 MB, half of it per
 * core fits its L2). Left out: bias-free fused variants, in-place
 * activation fusion.
 */
#include "ops/ops.h"

#include "core/blas.h"
#include "core/blocks.h"
#include <stddef.h>
#include <stdint.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef __AVX512F__
#include <immintrin.h>
#endif

/* ======================================================================
 * Reference
 * ====================================================================== */

/* y[n,m] = b[m] + sum_d w[m,d] x[n,d]   x (N,D) w (M,D) b (M) y (N,M) */
void linear_forward_ref(float *y, const float *x, const float *w, const float *b, int N, int D,
                        int M) {
    for (int n = 0; n < N; n++)
        for (int m = 0; m < M; m++) {
            double acc = b ? b[m] : 0.0;
            for (int d = 0; d < D; d++) acc += (double)w[(size_t)m * D + d] * x[(size_t)n * D + d];
            y[(size_t)n * M + m] = (float)acc;
        }
}

/* dx[n,d] = sum_m dy[n,m] w[m,d];  dw[m,d] += sum_n dy[n,m] x[n,d];  db[m] += sum_n dy[n,m] */
void linear_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x,
                         const float *w, int N, int D, int M) {
    if (dx)
        for (int n = 0; n < N; n++)
            for (int d = 0; d < D; d++) {
                double acc = 0;
                for (int m = 0; m < M; m++) acc += (double)dy[(size_t)n * M + m] * w[(size_t)m * D + d];
                dx[(size_t)n * D + d] = (float)acc;
            }
    if (dw)
        for (int m = 0; m < M; m++)
            for (int d = 0; d < D; d++) {
                double acc = 0;
                for (int n = 0; n < N; n++) acc += (double)dy[(size_t)n * M + m] * x[(size_t)n * D + d];
                dw[(size_t)m * D + d] += (float)acc;
            }
    if (db)
        for (int m = 0; m < M; m++) {
            double acc = 0;
            for (int n = 0; n < N; n++) acc += dy[(size_t)n * M + m];
            db[m] += (float)acc;
        }
}

/* ======================================================================
 * Fast path
 * ====================================================================== */

void linear_forward(float *y, const float *x, const float *w, const float *b, int N, int D,
                    int M) {
    if (N <= 0 || M <= 0) return;
    /* Start y from the bias so the GEMM accumulates onto it (beta = 1):
     * one pass over y instead of two. */
    float beta = 0.0f;
    if (b) {
        for (int n = 0; n < N; n++) {
            float *restrict yn = y + (size_t)n * M;
            for (int m = 0; m < M; m++) yn[m] = b[m];
        }
        beta = 1.0f;
    }
    /* y (N,M) = x (N,D) . w^T (D,M) */
    dg_sgemm_parallel(CblasRowMajor, CblasNoTrans, CblasTrans, N, M, D, 1.0f, x, D, w, D, beta, y, M);
}

void linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                     const float *w, int N, int D, int M) {
    if (N <= 0) return;
    if (dx) /* dx (N,D) = dy (N,M) . w (M,D) */
        dg_sgemm_parallel(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, D, M, 1.0f, dy, M, w, D, 0.0f,
                    dx, D);
    if (dw) /* dw (M,D) += dy^T (M,N) . x (N,D) */
        dg_sgemm_parallel(CblasRowMajor, CblasTrans, CblasNoTrans, M, D, N, 1.0f, dy, M, x, D, 1.0f,
                    dw, D);
    if (db) /* row order fixed: deterministic */
        for (int n = 0; n < N; n++) {
            const float *restrict dyn = dy + (size_t)n * M;
            for (int m = 0; m < M; m++) db[m] += dyn[m];
        }
}

/* How far ahead (floats) each of the 8 rows is prefetched into L1: four
 * cache lines. Measured on one core (one image, weights in L2):
 * 2048 -> 128 from 17.5-23 to 14.4 us; 128 and 256 floats ahead gained less. */
#define GEMV_PREFETCH 64

/* y[m] = b[m] + w[m,:] . x for rows m0..m1-1 of w (M,D). */
static void gemv_rows(float *y, const float *x, const float *w, const float *b, int D, int m0, int m1) {
    int m = m0;
#ifdef __AVX512F__
    const __mmask16 tail = (__mmask16)((1u << (D & 15)) - 1);
    const int Dv = D & ~15;
    for (; m + 8 <= m1; m += 8) {
        const float *r = w + (size_t)m * D;
        __m512 a[8];
        for (int i = 0; i < 8; i++) a[i] = _mm512_setzero_ps();
        for (int d = 0; d < Dv; d += 16) {
            const __m512 xv = _mm512_loadu_ps(x + d);
            for (int i = 0; i < 8; i++) /* past the end: the next row, or nothing (never faults) */
                _mm_prefetch((const char *)(r + (size_t)i * D + d + GEMV_PREFETCH), _MM_HINT_T0);
            for (int i = 0; i < 8; i++) a[i] = _mm512_fmadd_ps(_mm512_loadu_ps(r + (size_t)i * D + d), xv, a[i]);
        }
        if (tail) {
            const __m512 xv = _mm512_maskz_loadu_ps(tail, x + Dv);
            for (int i = 0; i < 8; i++)
                a[i] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, r + (size_t)i * D + Dv), xv, a[i]);
        }
        for (int i = 0; i < 8; i++) y[m + i] = (b ? b[m + i] : 0.0f) + _mm512_reduce_add_ps(a[i]);
    }
#endif
    for (; m < m1; m++) {
        const float *restrict r = w + (size_t)m * D;
        float acc = 0;
#ifdef _OPENMP
#pragma omp simd reduction(+ : acc)
#endif
        for (int d = 0; d < D; d++) acc += r[d] * x[d];
        y[m] = (b ? b[m] : 0.0f) + acc;
    }
}

typedef struct { /* one split matrix-vector product */
    float *y;
    const float *x, *w, *b;
    int D, M, nt;
} GemvJob;

/* Block t of nt: rows in whole groups of 8, as even as that allows. */
static void gemv_block(void *arg, int t) {
    const GemvJob *j = arg;
    const int groups = (j->M + 7) / 8;
    const int m0 = 8 * (int)((long)t * groups / j->nt), m1 = 8 * (int)((long)(t + 1) * groups / j->nt);
    gemv_rows(j->y, j->x, j->w, j->b, j->D, m0, m1 < j->M ? m1 : j->M);
}

/* Multiply-adds per thread below which a one-image product stays on one thread:
 * 2^17 multiply-adds (512 KB of weights) is ~10 us, several fork/joins. */
#define GEMV_SPLIT_MACS (1L << 17)

/* ---- one image on zero-skipping column panels -------------------------
 * After a ReLU (and a max pool) many of a dense layer's inputs are exactly
 * zero: 38-60 % of cnn-bn's 3136 features, 87 % of twobranch's 25088 on
 * MNIST test images. A one-image product on the weights by rows reads
 * every weight; on the weights by columns it can skip the columns of the
 * zero inputs, and a zero contributes nothing (0 * w = 0 for any finite
 * w). The packed form: the outputs in panels of LIN_PANEL, each panel the
 * (D, LIN_PANEL) block of w^T, the last panel's missing outputs zero;
 * after the panels, room for the D indices of the nonzero inputs. One
 * call lists those indices, then each thread (a block of whole panels)
 * runs through the list once per panel: per nonzero input one broadcast
 * and LIN_PANEL/16 FMAs on a 512-byte row of the panel, prefetched a few
 * indices ahead. Used while at most LIN_SPARSE_MAX of the inputs are
 * nonzero; above that the rows' product runs, which reads the weights
 * once in order. */
#define LIN_PANEL 128
#define LIN_SPARSE_NUM 9 /* LIN_SPARSE_MAX = 9/10 */
#define LIN_SPARSE_DEN 10
#define LIN_PREFETCH 8   /* nonzero inputs ahead */

static inline int lin_panels(int M) { return (M + LIN_PANEL - 1) / LIN_PANEL; }

size_t linear_panels_floats(int D, int M) {
    return (size_t)lin_panels(M) * D * LIN_PANEL + (size_t)D; /* the index list: D int32 */
}

void linear_pack_panels(float *wt, const float *w, int D, int M) {
    for (int p = 0; p < lin_panels(M); p++)
        for (int d = 0; d < D; d++) {
            float *row = wt + ((size_t)p * D + d) * LIN_PANEL;
            for (int j = 0; j < LIN_PANEL; j++) {
                const int m = p * LIN_PANEL + j;
                row[j] = m < M ? w[(size_t)m * D + d] : 0.0f;
            }
        }
}

/* The indices of x's nonzero entries into idx; returns their count. */
static int nonzero_indices(int32_t *restrict idx, const float *restrict x, int D) {
    int n = 0, d = 0;
#ifdef __AVX512F__
    const __m512i step = _mm512_set1_epi32(16);
    __m512i ids = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (; d + 16 <= D; d += 16, ids = _mm512_add_epi32(ids, step)) {
        const __mmask16 nz = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + d), _mm512_setzero_ps(), _CMP_NEQ_UQ);
        _mm512_mask_compressstoreu_epi32(idx + n, nz, ids);
        n += __builtin_popcount(nz);
    }
#endif
    for (; d < D; d++)
        if (x[d] != 0.0f) idx[n++] = d;
    return n;
}

/* y[p*LIN_PANEL ..] of panel p: bias + the listed inputs' columns. */
static void panel_product(float *y, const float *x, const float *wt, const float *b, const int32_t *idx, int nnz,
                          int D, int M, int p) {
    const float *panel = wt + (size_t)p * D * LIN_PANEL;
    const int m0 = p * LIN_PANEL, len = M - m0 < LIN_PANEL ? M - m0 : LIN_PANEL;
#ifdef __AVX512F__
    __m512 a[LIN_PANEL / 16];
    for (int i = 0; i < LIN_PANEL / 16; i++) a[i] = _mm512_setzero_ps();
    for (int j = 0; j < nnz; j++) {
        if (j + LIN_PREFETCH < nnz) {
            const char *ahead = (const char *)(panel + (size_t)idx[j + LIN_PREFETCH] * LIN_PANEL);
            for (int c = 0; c < LIN_PANEL * 4; c += 64) _mm_prefetch(ahead + c, _MM_HINT_T0);
        }
        const float *row = panel + (size_t)idx[j] * LIN_PANEL;
        const __m512 xv = _mm512_set1_ps(x[idx[j]]);
        for (int i = 0; i < LIN_PANEL / 16; i++) a[i] = _mm512_fmadd_ps(_mm512_loadu_ps(row + 16 * i), xv, a[i]);
    }
    for (int i = 0; i < LIN_PANEL / 16 && 16 * i < len; i++) {
        const int left = len - 16 * i;
        const __mmask16 k = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
        __m512 v = a[i];
        if (b) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, b + m0 + 16 * i));
        _mm512_mask_storeu_ps(y + m0 + 16 * i, k, v);
    }
#else
    float acc[LIN_PANEL] = {0};
    for (int j = 0; j < nnz; j++) {
        const float *row = panel + (size_t)idx[j] * LIN_PANEL;
        const float xv = x[idx[j]];
        for (int i = 0; i < LIN_PANEL; i++) acc[i] += row[i] * xv;
    }
    for (int i = 0; i < len; i++) y[m0 + i] = (b ? b[m0 + i] : 0.0f) + acc[i];
#endif
}

typedef struct { /* one split sparse product */
    float *y;
    const float *x, *wt, *b;
    const int32_t *idx;
    int nnz, D, M, nt;
} PanelJob;

/* Block t of nt: whole panels, as even as that allows. */
static void panel_block(void *arg, int t) {
    const PanelJob *j = arg;
    const int panels = lin_panels(j->M);
    for (int p = (int)((long)t * panels / j->nt); p < (int)((long)(t + 1) * panels / j->nt); p++)
        panel_product(j->y, j->x, j->wt, j->b, j->idx, j->nnz, j->D, j->M, p);
}

/* One image on the panels when enough inputs are zero; 0 if not run. */
static int sparse_forward(float *y, const float *x, const float *wt, const float *b, int D, int M, int nthreads) {
    int32_t *idx = (int32_t *)(wt + (size_t)lin_panels(M) * D * LIN_PANEL);
    const int nnz = nonzero_indices(idx, x, D);
    if ((long)nnz * LIN_SPARSE_DEN > (long)D * LIN_SPARSE_NUM) return 0;
    int nt = (long)M * nnz >= 2 * GEMV_SPLIT_MACS ? dg_blocks_width(nthreads) : 1;
    while (nt > 1 && lin_panels(M) < nt) nt--;
#ifdef _OPENMP
    if (omp_in_parallel()) nt = 1;
#endif
    PanelJob j = {y, x, wt, b, idx, nnz, D, M, nt};
    if (nt > 1) dg_blocks_run(nt, nt, panel_block, &j);
    else panel_block(&j, 0);
    return 1;
}

void linear_forward_ep(float *y, const float *x, const float *w, const float *b, int N, int D, int M,
                       const Epilogue *ep, int nthreads, float *panels) {
    if (N <= 0 || M <= 0) return;
    if (N > 1) {
        linear_forward(y, x, w, b, N, D, M);
        epilogue_apply(y, N, M, 1, NULL, ep);
        return;
    }
    if (panels && sparse_forward(y, x, panels, b, D, M, nthreads)) {
        epilogue_apply(y, 1, M, 1, NULL, ep);
        return;
    }
    int nt = (long)M * D >= 2 * GEMV_SPLIT_MACS ? dg_blocks_width(nthreads) : 1;
    while (nt > 1 && M < 8 * nt) nt--;
#ifdef _OPENMP
    if (omp_in_parallel()) nt = 1;
#endif
    GemvJob j = {y, x, w, b, D, M, nt};
    if (nt > 1) dg_blocks_run(nt, nt, gemv_block, &j);
    else gemv_rows(y, x, w, b, D, 0, M);
    epilogue_apply(y, 1, M, 1, NULL, ep);
}
