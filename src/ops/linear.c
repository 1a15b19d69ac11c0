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

void linear_forward_ep(float *y, const float *x, const float *w, const float *b, int N, int D, int M,
                       const Epilogue *ep, int nthreads) {
    if (N <= 0 || M <= 0) return;
    if (N > 1) {
        linear_forward(y, x, w, b, N, D, M);
        epilogue_apply(y, N, M, 1, NULL, ep);
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
