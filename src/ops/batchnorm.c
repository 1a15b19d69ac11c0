/* batchnorm.c — batch normalisation over (N, C, L) tensors (L = H*W for
 * BatchNorm2d, 1 for BatchNorm1d), with PyTorch's semantics:
 *   training: per-channel batch mean and biased variance normalise;
 *             running_mean/var move toward the batch mean and the UNBIASED
 *             variance (x NL/(NL-1)) with running = (1-m)*running + m*batch
 *             (m = momentum, PyTorch's 0.1 convention);
 *   eval:     running statistics normalise.
 * Sums run in double (two passes: mean, then squared deviations) so large
 * batches of large planes lose nothing to cancellation. The channels are
 * independent, so loops split over C with OpenMP when the tensor is big.
 * Left out: cumulative averaging (momentum=None), sync across processes.
 * gamma/beta may be NULL (affine=False: gamma 1, beta 0); dgamma, dbeta,
 * dx, running_mean/var may be NULL when not wanted. With NL == 1 the
 * unbiased correction is skipped (PyTorch refuses such a batch).
 */
#include "ops/ops.h"

#include <math.h>

/* Below this many elements the channel loop stays on one thread. */
#define BN_PAR_MIN (1 << 15)

/* x (N,C,L) -> y (N,C,L); save_mean, save_rstd (C); running_* (C) updated. */
void batchnorm_forward_train(float *y, float *save_mean, float *save_rstd, float *running_mean,
                             float *running_var, const float *x, const float *gamma,
                             const float *beta, int N, int C, int L, float eps, float momentum) {
    const size_t NL = (size_t)N * L;
    const size_t cstride = (size_t)C * L; /* distance between samples */
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (NL * C >= BN_PAR_MIN)
#endif
    for (int c = 0; c < C; c++) {
        double sum = 0;
        for (int n = 0; n < N; n++) {
            const float *xr = x + n * cstride + (size_t)c * L;
#ifdef _OPENMP
#pragma omp simd reduction(+ : sum)
#endif
            for (int l = 0; l < L; l++) sum += xr[l];
        }
        const double mean = NL ? sum / (double)NL : 0.0;
        double ss = 0;
        for (int n = 0; n < N; n++) {
            const float *xr = x + n * cstride + (size_t)c * L;
#ifdef _OPENMP
#pragma omp simd reduction(+ : ss)
#endif
            for (int l = 0; l < L; l++) {
                double d = xr[l] - mean;
                ss += d * d;
            }
        }
        const double var = NL ? ss / (double)NL : 0.0; /* biased: normalises */
        const double rstd = 1.0 / sqrt(var + eps);
        save_mean[c] = (float)mean;
        save_rstd[c] = (float)rstd;
        if (running_mean) running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * (float)mean;
        if (running_var) {
            double unbiased = NL > 1 ? var * (double)NL / (double)(NL - 1) : var;
            running_var[c] = (1.0f - momentum) * running_var[c] + momentum * (float)unbiased;
        }
        /* y = (x-mean)*scale + beta; subtracting first (rather than folding
         * mean into the shift) avoids cancellation when |mean| >> std. */
        const float g = gamma ? gamma[c] : 1.0f, bt = beta ? beta[c] : 0.0f;
        const float scale = (float)(g * rstd), meanf = (float)mean;
        for (int n = 0; n < N; n++) {
            const float *xr = x + n * cstride + (size_t)c * L;
            float *yr = y + n * cstride + (size_t)c * L;
            for (int l = 0; l < L; l++) yr[l] = (xr[l] - meanf) * scale + bt;
        }
    }
}

/* y = gamma*(x - running_mean)/sqrt(running_var + eps) + beta */
void batchnorm_forward_eval(float *y, const float *x, const float *gamma, const float *beta,
                            const float *running_mean, const float *running_var, int N, int C,
                            int L, float eps) {
    const size_t cstride = (size_t)C * L;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if ((size_t)N * C * L >= BN_PAR_MIN)
#endif
    for (int c = 0; c < C; c++) {
        const double rstd = 1.0 / sqrt((double)running_var[c] + eps);
        const float g = gamma ? gamma[c] : 1.0f, bt = beta ? beta[c] : 0.0f;
        const float scale = (float)(g * rstd), mean = running_mean[c];
        for (int n = 0; n < N; n++) {
            const float *xr = x + n * cstride + (size_t)c * L;
            float *yr = y + n * cstride + (size_t)c * L;
            for (int l = 0; l < L; l++) yr[l] = (xr[l] - mean) * scale + bt;
        }
    }
}

/* With xhat = (x-mean)*rstd and sums over (n,l) of one channel:
 *   dbeta  += sum dy          dgamma += sum dy*xhat
 *   dx = gamma*rstd * (dy - sum(dy)/NL - xhat*sum(dy*xhat)/NL)   (overwritten) */
void batchnorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                        const float *gamma, const float *save_mean, const float *save_rstd,
                        int N, int C, int L) {
    const size_t NL = (size_t)N * L;
    const size_t cstride = (size_t)C * L;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (NL * C >= BN_PAR_MIN)
#endif
    for (int c = 0; c < C; c++) {
        const float mean = save_mean[c];
        const double rstd = save_rstd[c];
        double sdy = 0, sdyx = 0; /* sum dy, sum dy*(x-mean) */
        for (int n = 0; n < N; n++) {
            const float *xr = x + n * cstride + (size_t)c * L;
            const float *dyr = dy + n * cstride + (size_t)c * L;
#ifdef _OPENMP
#pragma omp simd reduction(+ : sdy, sdyx)
#endif
            for (int l = 0; l < L; l++) {
                sdy += dyr[l];
                sdyx += (double)dyr[l] * (xr[l] - mean);
            }
        }
        const double sdyxhat = sdyx * rstd;
        if (dbeta) dbeta[c] += (float)sdy;
        if (dgamma) dgamma[c] += (float)sdyxhat;
        if (!dx || NL == 0) continue;
        const double g = gamma ? gamma[c] : 1.0;
        /* dx = k1*dy + k2*(x-mean) + k3 */
        const float k1 = (float)(g * rstd);
        const float k2 = (float)(-g * rstd * rstd * sdyxhat / (double)NL);
        const float k3 = (float)(-g * rstd * sdy / (double)NL);
        for (int n = 0; n < N; n++) {
            const float *xr = x + n * cstride + (size_t)c * L;
            const float *dyr = dy + n * cstride + (size_t)c * L;
            float *dxr = dx + n * cstride + (size_t)c * L;
            for (int l = 0; l < L; l++) dxr[l] = k1 * dyr[l] + k2 * (xr[l] - mean) + k3;
        }
    }
}
