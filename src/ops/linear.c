/* linear.c — fully connected layer, y = x w^T + b (PyTorch nn.Linear
 * layout), forward and backward: a loop reference with double
 * accumulators, and a fast path of one cblas_sgemm over the whole batch.
 * The fast path does no threading of its own: called outside a parallel
 * region, the BLAS threads itself. Left out: bias-free fused variants,
 * in-place activation fusion.
 */
#include "ops/ops.h"

#include "core/blas.h"

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
