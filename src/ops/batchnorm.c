/* batchnorm.c — batch normalisation over (N, C, L) tensors (L = H*W for
 * BatchNorm2d, 1 for BatchNorm1d), with PyTorch's semantics:
 *   training: per-channel batch mean and biased variance normalise;
 *             running_mean/var move toward the batch mean and the UNBIASED
 *             variance (x NL/(NL-1)) with running = (1-m)*running + m*batch
 *             (m = momentum, PyTorch's 0.1 convention);
 *   eval:     running statistics normalise.
 * Sums add planes in double (see channel_moments) so large batches of
 * large planes lose nothing to cancellation. The channels are
 * independent, so loops split over C with OpenMP when the tensor is big.
 * Left out: cumulative averaging (momentum=None), sync across processes.
 * gamma/beta may be NULL (affine=False: gamma 1, beta 0); dgamma, dbeta,
 * dx, running_mean/var may be NULL when not wanted. With NL == 1 the
 * unbiased correction is skipped (PyTorch refuses such a batch).
 */
#include "ops/ops.h"

#include <math.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

/* Below this many elements the channel loop stays on one thread. */
#define BN_PAR_MIN (1 << 15)

/* Below this plane size (BatchNorm1d: L = 1) the sums stay scalar. */
#define BN_VEC_MIN_L 16

/* The batch norm's input as read: x, or max(x, 0) when a ReLU before it is
 * fused in (relu_in; exactly relu_forward's x > 0 ? x : 0, -0 and NaN
 * included: vmaxps returns its second operand for those). */
static inline float in_value(float v, int relu_in) { return relu_in && !(v > 0.0f) ? 0.0f : v; }
#ifdef __AVX512F__
static inline __m512 in_vector(__m512 v, int relu_in) { return relu_in ? _mm512_max_ps(v, _mm512_setzero_ps()) : v; }
/* (lo, hi) += one plane's 16 float partial sums, widened to double */
static inline void add_plane(__m512d *lo, __m512d *hi, __m512 v) {
    *lo = _mm512_add_pd(*lo, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
    *hi = _mm512_add_pd(*hi, _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)));
}
#endif

/* Mean and biased variance of one channel: N planes of L floats, cstride
 * apart. Small planes: two passes in double. Large planes: one pass of
 * sum(d) and sum(d^2) with d = x - K, where K is the channel's first value
 * (shifting by a sample keeps E[d^2] - E[d]^2 free of cancellation when
 * |mean| >> std); each plane is summed in float vectors (at most L/16
 * terms per lane) and the planes are added in double. One read of x
 * instead of two, and vectorised (GCC left the masked double reductions
 * of the two-pass loop scalar: BN was ~15 % of a cnn-bn training step). */
static void channel_moments(const float *x, int relu_in, int N, int L, size_t cstride, double *mean,
                            double *var) {
    const double NL = (double)N * L;
    if (N == 0 || L == 0) {
        *mean = *var = 0;
        return;
    }
#ifdef __AVX512F__
    if (L >= BN_VEC_MIN_L) {
        const float K = in_value(x[0], relu_in);
        const __m512 k = _mm512_set1_ps(K);
        const __mmask16 tail = (__mmask16)((1u << (L % 16)) - 1);
        __m512d s_lo = _mm512_setzero_pd(), s_hi = s_lo, q_lo = s_lo, q_hi = s_lo;
        for (int n = 0; n < N; n++) {
            const float *xr = x + n * cstride;
            __m512 s0 = _mm512_setzero_ps(), s1 = s0, q0 = s0, q1 = s0;
            int l = 0;
            for (; l + 32 <= L; l += 32) {
                __m512 d0 = _mm512_sub_ps(in_vector(_mm512_loadu_ps(xr + l), relu_in), k);
                __m512 d1 = _mm512_sub_ps(in_vector(_mm512_loadu_ps(xr + l + 16), relu_in), k);
                s0 = _mm512_add_ps(s0, d0), q0 = _mm512_fmadd_ps(d0, d0, q0);
                s1 = _mm512_add_ps(s1, d1), q1 = _mm512_fmadd_ps(d1, d1, q1);
            }
            if (l + 16 <= L) {
                __m512 d0 = _mm512_sub_ps(in_vector(_mm512_loadu_ps(xr + l), relu_in), k);
                s0 = _mm512_add_ps(s0, d0), q0 = _mm512_fmadd_ps(d0, d0, q0);
                l += 16;
            }
            if (tail) {
                __m512 d1 = _mm512_maskz_sub_ps(tail, in_vector(_mm512_maskz_loadu_ps(tail, xr + l), relu_in), k);
                s1 = _mm512_add_ps(s1, d1), q1 = _mm512_fmadd_ps(d1, d1, q1);
            }
            add_plane(&s_lo, &s_hi, _mm512_add_ps(s0, s1));
            add_plane(&q_lo, &q_hi, _mm512_add_ps(q0, q1));
        }
        const double md = _mm512_reduce_add_pd(_mm512_add_pd(s_lo, s_hi)) / NL;
        const double v = _mm512_reduce_add_pd(_mm512_add_pd(q_lo, q_hi)) / NL - md * md;
        *mean = K + md;
        *var = v > 0 ? v : 0;
        return;
    }
#endif
    double sum = 0;
    for (int n = 0; n < N; n++)
        for (int l = 0; l < L; l++) sum += in_value(x[n * cstride + l], relu_in);
    const double m = sum / NL;
    double ss = 0;
    for (int n = 0; n < N; n++)
        for (int l = 0; l < L; l++) {
            double d = in_value(x[n * cstride + l], relu_in) - m;
            ss += d * d;
        }
    *mean = m;
    *var = ss / NL;
}

/* A batch norm whose output goes through a ReLU fused into it (training):
 * the forward writes max(z, 0) with z = (x - mean) * scale + shift, and the
 * backward recomputes z > 0 from x, bit for bit as the forward did (the
 * same float operands, one fused multiply-add), instead of a ReLU layer
 * reading and writing two more tensors each way. */
typedef struct {
    float scale, shift;
} BnRelu;

static inline float bn_affine(float d, float scale, float shift) { return fmaf(d, scale, shift); }
static inline float relu_gate(float g, float d, const BnRelu *r) {
    return !r || bn_affine(d, r->scale, r->shift) > 0.0f ? g : 0.0f;
}

/* sum(g) and sum(g * (x - mean)) over one channel's N planes, as
 * channel_moments: float vectors per plane, double across planes. g is dy,
 * or with r (fused ReLU) dy where the forward's z > 0 and 0 elsewhere. */
static void channel_grad_sums(const float *dy, const float *x, int relu_in, float mean, const BnRelu *r, int N,
                              int L, size_t cstride, double *sdy, double *sdyx) {
#ifdef __AVX512F__
    if (L >= BN_VEC_MIN_L) {
        const __m512 m = _mm512_set1_ps(mean), zero = _mm512_setzero_ps();
        const __m512 scale = _mm512_set1_ps(r ? r->scale : 0), bt = _mm512_set1_ps(r ? r->shift : 0);
/* dy where the forward's relu passed (z > 0), else 0; d = x - mean */
#define RELU_GATE(g, d) \
    (r ? _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(_mm512_fmadd_ps(d, scale, bt), zero, _CMP_GT_OQ), g) : g)
        const __mmask16 tail = (__mmask16)((1u << (L % 16)) - 1);
        __m512d a_lo = _mm512_setzero_pd(), a_hi = a_lo, b_lo = a_lo, b_hi = a_lo;
        for (int n = 0; n < N; n++) {
            const float *xr = x + n * cstride, *gr = dy + n * cstride;
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, b0 = a0, b1 = a0;
            int l = 0;
            for (; l + 32 <= L; l += 32) {
                __m512 d0 = _mm512_sub_ps(in_vector(_mm512_loadu_ps(xr + l), relu_in), m);
                __m512 d1 = _mm512_sub_ps(in_vector(_mm512_loadu_ps(xr + l + 16), relu_in), m);
                __m512 g0 = RELU_GATE(_mm512_loadu_ps(gr + l), d0);
                __m512 g1 = RELU_GATE(_mm512_loadu_ps(gr + l + 16), d1);
                a0 = _mm512_add_ps(a0, g0), a1 = _mm512_add_ps(a1, g1);
                b0 = _mm512_fmadd_ps(g0, d0, b0), b1 = _mm512_fmadd_ps(g1, d1, b1);
            }
            if (l + 16 <= L) {
                __m512 d0 = _mm512_sub_ps(in_vector(_mm512_loadu_ps(xr + l), relu_in), m);
                __m512 g0 = RELU_GATE(_mm512_loadu_ps(gr + l), d0);
                a0 = _mm512_add_ps(a0, g0), b0 = _mm512_fmadd_ps(g0, d0, b0);
                l += 16;
            }
            if (tail) {
                __m512 d1 = _mm512_maskz_sub_ps(tail, in_vector(_mm512_maskz_loadu_ps(tail, xr + l), relu_in), m);
                __m512 g1 = RELU_GATE(_mm512_maskz_loadu_ps(tail, gr + l), d1);
                a1 = _mm512_add_ps(a1, g1), b1 = _mm512_fmadd_ps(g1, d1, b1);
            }
            add_plane(&a_lo, &a_hi, _mm512_add_ps(a0, a1));
            add_plane(&b_lo, &b_hi, _mm512_add_ps(b0, b1));
        }
        *sdy = _mm512_reduce_add_pd(_mm512_add_pd(a_lo, a_hi));
        *sdyx = _mm512_reduce_add_pd(_mm512_add_pd(b_lo, b_hi));
        return;
#undef RELU_GATE
    }
#endif
    double a = 0, b = 0;
    for (int n = 0; n < N; n++)
        for (int l = 0; l < L; l++) {
            const float d = in_value(x[n * cstride + l], relu_in) - mean, g = relu_gate(dy[n * cstride + l], d, r);
            a += g;
            b += (double)g * d;
        }
    *sdy = a, *sdyx = b;
}

/* x (N,C,L) -> y (N,C,L); save_mean, save_rstd (C); running_* (C) updated.
 * BN_RELU_AFTER: y = max(y, 0) (see BnRelu); BN_RELU_BEFORE: the input is
 * max(x, 0) (see in_value). */
void batchnorm_fused_forward_train(BnFusion f, float *y, float *save_mean, float *save_rstd, float *running_mean,
                                   float *running_var, const float *x, const float *gamma, const float *beta,
                                   int N, int C, int L, float eps, float momentum) {
    const size_t NL = (size_t)N * L;
    const size_t cstride = (size_t)C * L; /* distance between samples */
    const int relu_in = f == BN_RELU_BEFORE, relu_out = f == BN_RELU_AFTER;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (NL * C >= BN_PAR_MIN)
#endif
    for (int c = 0; c < C; c++) {
        double mean, var;
        channel_moments(x + (size_t)c * L, relu_in, N, L, cstride, &mean, &var);
        save_mean[c] = (float)mean;
        save_rstd[c] = (float)(1.0 / sqrt(var + eps));
        if (running_mean) running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * (float)mean;
        if (running_var) {
            double unbiased = NL > 1 ? var * (double)NL / (double)(NL - 1) : var;
            running_var[c] = (1.0f - momentum) * running_var[c] + momentum * (float)unbiased;
        }
        /* y = (x-mean)*scale + beta; subtracting first (rather than folding
         * mean into the shift) avoids cancellation when |mean| >> std. The
         * scale comes from the saved (float) rstd, as the backward's. */
        const float g = gamma ? gamma[c] : 1.0f, bt = beta ? beta[c] : 0.0f;
        const float scale = (float)(g * (double)save_rstd[c]), meanf = save_mean[c];
        for (int n = 0; n < N; n++) {
            const float *xr = x + n * cstride + (size_t)c * L;
            float *yr = y + n * cstride + (size_t)c * L;
            if (relu_out)
                for (int l = 0; l < L; l++) {
                    const float z = bn_affine(xr[l] - meanf, scale, bt);
                    yr[l] = z > 0.0f ? z : 0.0f;
                }
            else if (relu_in)
                for (int l = 0; l < L; l++) yr[l] = bn_affine(in_value(xr[l], 1) - meanf, scale, bt);
            else
                for (int l = 0; l < L; l++) yr[l] = bn_affine(xr[l] - meanf, scale, bt);
        }
    }
}

void batchnorm_forward_train(float *y, float *save_mean, float *save_rstd, float *running_mean,
                             float *running_var, const float *x, const float *gamma,
                             const float *beta, int N, int C, int L, float eps, float momentum) {
    batchnorm_fused_forward_train(BN_PLAIN, y, save_mean, save_rstd, running_mean, running_var, x, gamma, beta, N,
                                  C, L, eps, momentum);
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
 *   dx = gamma*rstd * (dy - sum(dy)/NL - xhat*sum(dy*xhat)/NL)   (overwritten)
 * BN_RELU_AFTER (beta needed): dy is the gradient of max(z, 0) and is first
 * gated by z > 0 (see BnRelu); BN_RELU_BEFORE: x is the ReLU's input, read
 * as max(x, 0), and dx is gated by x > 0. */
void batchnorm_fused_backward(BnFusion f, float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                              const float *gamma, const float *beta, const float *save_mean, const float *save_rstd,
                              int N, int C, int L) {
    const size_t NL = (size_t)N * L;
    const size_t cstride = (size_t)C * L;
    const int relu_in = f == BN_RELU_BEFORE;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (NL * C >= BN_PAR_MIN)
#endif
    for (int c = 0; c < C; c++) {
        const float mean = save_mean[c];
        const double rstd = save_rstd[c];
        const double g = gamma ? gamma[c] : 1.0;
        const BnRelu gate = {(float)(g * rstd), beta ? beta[c] : 0.0f}, *r = f == BN_RELU_AFTER ? &gate : NULL;
        double sdy, sdyx; /* sum dy, sum dy*(x-mean) */
        channel_grad_sums(dy + (size_t)c * L, x + (size_t)c * L, relu_in, mean, r, N, L, cstride, &sdy, &sdyx);
        const double sdyxhat = sdyx * rstd;
        if (dbeta) dbeta[c] += (float)sdy;
        if (dgamma) dgamma[c] += (float)sdyxhat;
        if (!dx || NL == 0) continue;
        /* dx = k1*dy + k2*(x-mean) + k3 */
        const float k1 = (float)(g * rstd);
        const float k2 = (float)(-g * rstd * rstd * sdyxhat / (double)NL);
        const float k3 = (float)(-g * rstd * sdy / (double)NL);
        for (int n = 0; n < N; n++) {
            const float *xr = x + n * cstride + (size_t)c * L;
            const float *dyr = dy + n * cstride + (size_t)c * L;
            float *dxr = dx + n * cstride + (size_t)c * L;
            if (r)
                for (int l = 0; l < L; l++) {
                    const float d = xr[l] - mean;
                    dxr[l] = k1 * relu_gate(dyr[l], d, r) + k2 * d + k3;
                }
            else if (relu_in)
                for (int l = 0; l < L; l++) {
                    const float v = k1 * dyr[l] + k2 * (in_value(xr[l], 1) - mean) + k3;
                    dxr[l] = xr[l] > 0.0f ? v : 0.0f;
                }
            else
                for (int l = 0; l < L; l++) dxr[l] = k1 * dyr[l] + k2 * (xr[l] - mean) + k3;
        }
    }
}

void batchnorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                        const float *gamma, const float *save_mean, const float *save_rstd,
                        int N, int C, int L) {
    batchnorm_fused_backward(BN_PLAIN, dx, dgamma, dbeta, dy, x, gamma, NULL, save_mean, save_rstd, N, C, L);
}
