/* pool.c — max and average pooling over F x F windows with stride T and no
 * padding (P = (H-F)/T + 1), forward and backward, on NCHW planes.
 * Max pooling saves an int32 argmax per output (index h*W+w into its input
 * plane; ties go to the first maximum in row-major window order) so the
 * backward pass is a scatter. maxpool_forward_ref, avgpool_forward_ref and
 * avgpool_backward_ref are the plain versions the fast ones are tested
 * against (maxpool_backward is the plain scatter itself). maxpool_planes
 * is the maxima-only pooling of a conv's fused inference epilogue
 * (tested through whole models against the unfused layers). Left out: padding, ceil mode, dilation,
 * rectangular windows.
 *
 * The N*C planes are independent, so the loops split over them with
 * OpenMP when there is enough work to pay for waking the threads.
 */
#include "ops/ops.h"

#ifdef __AVX512F__
#include <immintrin.h>
#endif

#include <string.h>

#include "core/check.h"

/* Below this many input elements the parallel region costs more than it saves. */
#define POOL_PAR_MIN (1 << 16)

static inline int pool_out_size(int in, int F, int T) { return (in - F) / T + 1; }

/* ======================================================================
 * Max pooling
 * ====================================================================== */

/* y[n,c,p,q] = max_{i,j<F} x[n,c,p*T+i,q*T+j]   x (N,C,H,W)  y (N,C,P,Q) */
void maxpool_forward_ref(float *y, const float *x, int N, int C, int H, int W, int F, int T) {
    const int P = pool_out_size(H, F, T), Q = pool_out_size(W, F, T);
    DG_ASSERT(P > 0 && Q > 0 && F > 0 && T > 0);
    for (int nc = 0; nc < N * C; nc++)
        for (int p = 0; p < P; p++)
            for (int q = 0; q < Q; q++) {
                float m = x[((size_t)nc * H + p * T) * W + q * T];
                for (int i = 0; i < F; i++)
                    for (int j = 0; j < F; j++) {
                        float v = x[((size_t)nc * H + p * T + i) * W + q * T + j];
                        if (v > m) m = v;
                    }
                y[((size_t)nc * P + p) * Q + q] = m;
            }
}

/* 2x2 stride-2 windows, the common case: four loads and three compares
 * per output, branch-free so the q loop vectorises. */
#ifndef __AVX512F__
static void maxpool_plane_2x2(float *restrict y, int32_t *restrict am, const float *restrict x,
                              int W, int P, int Q) {
    for (int p = 0; p < P; p++) {
        const float *restrict r0 = x + (size_t)(2 * p) * W;
        const float *restrict r1 = r0 + W;
        float *restrict yp = y + (size_t)p * Q;
        int32_t *restrict ap = am + (size_t)p * Q;
        const int32_t base = 2 * p * W;
        for (int q = 0; q < Q; q++) {
            float a = r0[2 * q], b = r0[2 * q + 1], c = r1[2 * q], d = r1[2 * q + 1];
            /* strict '>' in scan order a,b,c,d keeps the first maximum */
            float m = a;
            int32_t i = base + 2 * q;
            if (b > m) { m = b; i = base + 2 * q + 1; }
            if (c > m) { m = c; i = base + W + 2 * q; }
            if (d > m) { m = d; i = base + W + 2 * q + 1; }
            yp[q] = m;
            ap[q] = i;
        }
    }
}

#endif

#ifdef __AVX512F__
/* The same with AVX-512, 16 outputs per step: the even and odd columns of
 * the two input rows are split with one permute each, then the scan order
 * a, b, c, d and the strict '>' of the scalar loop are kept exactly (same
 * maxima, same argmax). The scalar loop did not vectorise (stride-2 loads
 * plus index tracking) and was 13 % of a cnn-bn training step. */
static void maxpool_plane_2x2_avx512(float *restrict y, int32_t *restrict am, const float *restrict x, int W,
                                     int P, int Q) {
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const __m512i lane2 = _mm512_slli_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), 1);
    for (int p = 0; p < P; p++) {
        const float *r0 = x + (size_t)(2 * p) * W, *r1 = r0 + W;
        for (int q = 0; q < Q; q += 16) {
            const int nq = Q - q < 16 ? Q - q : 16;
            const int nin = 2 * nq; /* input floats of this step, <= 32 */
            const __mmask16 mlo = (__mmask16)(nin >= 16 ? 0xffff : (1u << nin) - 1);
            const __mmask16 mhi = (__mmask16)(nin >= 32 ? 0xffff : nin > 16 ? (1u << (nin - 16)) - 1 : 0);
            const __m512 r0lo = _mm512_maskz_loadu_ps(mlo, r0 + 2 * q), r0hi = _mm512_maskz_loadu_ps(mhi, r0 + 2 * q + 16);
            const __m512 r1lo = _mm512_maskz_loadu_ps(mlo, r1 + 2 * q), r1hi = _mm512_maskz_loadu_ps(mhi, r1 + 2 * q + 16);
            const __m512 a = _mm512_permutex2var_ps(r0lo, even, r0hi), b = _mm512_permutex2var_ps(r0lo, odd, r0hi);
            const __m512 c = _mm512_permutex2var_ps(r1lo, even, r1hi), d = _mm512_permutex2var_ps(r1lo, odd, r1hi);
            __m512i i = _mm512_add_epi32(_mm512_set1_epi32(2 * p * W + 2 * q), lane2);
            __m512 m = a;
            __mmask16 k = _mm512_cmp_ps_mask(b, m, _CMP_GT_OQ);
            m = _mm512_mask_blend_ps(k, m, b);
            i = _mm512_mask_add_epi32(i, k, i, _mm512_set1_epi32(1));
            const __m512i ic = _mm512_add_epi32(_mm512_set1_epi32(2 * p * W + W + 2 * q), lane2);
            k = _mm512_cmp_ps_mask(c, m, _CMP_GT_OQ);
            m = _mm512_mask_blend_ps(k, m, c);
            i = _mm512_mask_blend_epi32(k, i, ic);
            k = _mm512_cmp_ps_mask(d, m, _CMP_GT_OQ);
            m = _mm512_mask_blend_ps(k, m, d);
            i = _mm512_mask_blend_epi32(k, i, _mm512_add_epi32(ic, _mm512_set1_epi32(1)));
            const __mmask16 mo = (__mmask16)(nq >= 16 ? 0xffff : (1u << nq) - 1);
            _mm512_mask_storeu_ps(y + (size_t)p * Q + q, mo, m);
            _mm512_mask_storeu_epi32(am + (size_t)p * Q + q, mo, i);
        }
    }
}
#endif

static void maxpool_plane(float *restrict y, int32_t *restrict am, const float *restrict x, int W,
                          int F, int T, int P, int Q) {
    for (int p = 0; p < P; p++)
        for (int q = 0; q < Q; q++) {
            int32_t best = p * T * W + q * T;
            float m = x[best];
            for (int i = 0; i < F; i++) {
                const float *row = x + (size_t)(p * T + i) * W + q * T;
                for (int j = 0; j < F; j++)
                    if (row[j] > m) {
                        m = row[j];
                        best = (p * T + i) * W + q * T + j;
                    }
            }
            y[(size_t)p * Q + q] = m;
            am[(size_t)p * Q + q] = best;
        }
}

/* Plane nc of maxpool_forward. */
static inline void maxpool_one_plane(float *y, int32_t *argmax, const float *x, int nc, int H, int W, int F, int T,
                                     int P, int Q) {
    const float *xp = x + (size_t)nc * H * W;
    float *yp = y + (size_t)nc * P * Q;
    int32_t *ap = argmax + (size_t)nc * P * Q;
    if (F == 2 && T == 2)
#ifdef __AVX512F__
        maxpool_plane_2x2_avx512(yp, ap, xp, W, P, Q);
#else
        maxpool_plane_2x2(yp, ap, xp, W, P, Q);
#endif
    else
        maxpool_plane(yp, ap, xp, W, F, T, P, Q);
}

/* As maxpool_forward_ref, plus argmax (N,C,P,Q) for the backward pass. */
void maxpool_forward(float *y, int32_t *argmax, const float *x, int N, int C, int H, int W, int F,
                     int T) {
    const int P = pool_out_size(H, F, T), Q = pool_out_size(W, F, T);
    DG_ASSERT(P > 0 && Q > 0 && F > 0 && T > 0);
    const int NC = N * C;
    if ((size_t)NC * H * W < POOL_PAR_MIN) { /* outside any OpenMP region (see avgpool_forward) */
        for (int nc = 0; nc < NC; nc++) maxpool_one_plane(y, argmax, x, nc, H, W, F, T, P, Q);
        return;
    }
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (int nc = 0; nc < NC; nc++) maxpool_one_plane(y, argmax, x, nc, H, W, F, T, P, Q);
}

/* One plane of maxpool_planes: 2x2 stride-2 windows with AVX-512 (the
 * even/odd split of maxpool_plane_2x2_avx512, maxima only), any other
 * window with the plain loops. relu: max(m, 0), which equals the ReLU of
 * each input before the pooling. */
static void maxpool_plane_max(float *restrict y, const float *restrict x, int W, int F, int T, int P, int Q,
                              int relu) {
#ifdef __AVX512F__
    if (F == 2 && T == 2) {
        const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
        const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
        const __m512 zero = _mm512_setzero_ps();
        for (int p = 0; p < P; p++) {
            const float *r0 = x + (size_t)(2 * p) * W, *r1 = r0 + W;
            for (int q = 0; q < Q; q += 16) {
                const int nq = Q - q < 16 ? Q - q : 16, nin = 2 * nq;
                const __mmask16 mlo = (__mmask16)(nin >= 16 ? 0xffff : (1u << nin) - 1);
                const __mmask16 mhi = (__mmask16)(nin >= 32 ? 0xffff : nin > 16 ? (1u << (nin - 16)) - 1 : 0);
                const __m512 r0lo = _mm512_maskz_loadu_ps(mlo, r0 + 2 * q);
                const __m512 r0hi = _mm512_maskz_loadu_ps(mhi, r0 + 2 * q + 16);
                const __m512 r1lo = _mm512_maskz_loadu_ps(mlo, r1 + 2 * q);
                const __m512 r1hi = _mm512_maskz_loadu_ps(mhi, r1 + 2 * q + 16);
                __m512 m = _mm512_max_ps(_mm512_permutex2var_ps(r0lo, even, r0hi),
                                         _mm512_permutex2var_ps(r0lo, odd, r0hi));
                m = _mm512_max_ps(m, _mm512_max_ps(_mm512_permutex2var_ps(r1lo, even, r1hi),
                                                   _mm512_permutex2var_ps(r1lo, odd, r1hi)));
                if (relu) m = _mm512_max_ps(m, zero);
                _mm512_mask_storeu_ps(y + (size_t)p * Q + q, (__mmask16)(nq >= 16 ? 0xffff : (1u << nq) - 1), m);
            }
        }
        return;
    }
#endif
    for (int p = 0; p < P; p++)
        for (int q = 0; q < Q; q++) {
            float m = x[(size_t)p * T * W + q * T];
            for (int i = 0; i < F; i++) {
                const float *row = x + (size_t)(p * T + i) * W + q * T;
                for (int j = 0; j < F; j++) m = row[j] > m ? row[j] : m;
            }
            y[(size_t)p * Q + q] = relu && !(m > 0.0f) ? 0.0f : m;
        }
}

void maxpool_planes(float *y, const float *x, size_t ld, int K, int H, int W, int F, int T, int relu) {
    const int P = pool_out_size(H, F, T), Q = pool_out_size(W, F, T);
    DG_ASSERT(P > 0 && Q > 0 && F > 0 && T > 0);
    for (int k = 0; k < K; k++) maxpool_plane_max(y + (size_t)k * P * Q, x + (size_t)k * ld, W, F, T, P, Q, relu);
}

/* dx[n,c,argmax] += dy[n,c,p,q]; every other dx is 0 (dx overwritten). */
void maxpool_backward(float *dx, const float *dy, const int32_t *argmax, int N, int C, int H,
                      int W, int F, int T) {
    const int P = pool_out_size(H, F, T), Q = pool_out_size(W, F, T);
    const int NC = N * C;
    if (!dx) return;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if ((size_t)NC * H * W >= POOL_PAR_MIN)
#endif
    for (int nc = 0; nc < NC; nc++) {
        float *restrict dxp = dx + (size_t)nc * H * W;
        const float *restrict dyp = dy + (size_t)nc * P * Q;
        const int32_t *restrict ap = argmax + (size_t)nc * P * Q;
        memset(dxp, 0, sizeof(float) * H * W);
        /* '+=' not '=': overlapping windows (T < F) can share a maximum */
        for (int i = 0; i < P * Q; i++) dxp[ap[i]] += dyp[i];
    }
}

/* ======================================================================
 * Average pooling
 * ====================================================================== */

/* y[n,c,p,q] = (1/F^2) sum_{i,j<F} x[n,c,p*T+i,q*T+j], summed in double. */
void avgpool_forward_ref(float *y, const float *x, int N, int C, int H, int W, int F, int T) {
    const int P = pool_out_size(H, F, T), Q = pool_out_size(W, F, T);
    DG_ASSERT(P > 0 && Q > 0 && F > 0 && T > 0);
    for (int nc = 0; nc < N * C; nc++)
        for (int p = 0; p < P; p++)
            for (int q = 0; q < Q; q++) {
                double s = 0;
                for (int i = 0; i < F; i++)
                    for (int j = 0; j < F; j++) s += x[((size_t)nc * H + p * T + i) * W + q * T + j];
                y[((size_t)nc * P + p) * Q + q] = (float)(s / (F * F));
            }
}

/* dx[n,c,h,w] = (1/F^2) sum over the windows containing (h,w) of dy, each
 * pixel gathered in one double sum (dx overwritten). */
void avgpool_backward_ref(float *dx, const float *dy, int N, int C, int H, int W, int F, int T) {
    const int P = pool_out_size(H, F, T), Q = pool_out_size(W, F, T);
    DG_ASSERT(P > 0 && Q > 0 && F > 0 && T > 0);
    for (int nc = 0; nc < N * C; nc++)
        for (int h = 0; h < H; h++)
            for (int w = 0; w < W; w++) {
                double s = 0;
                for (int i = 0; i < F; i++) {
                    const int ph = h - i; /* = p*T */
                    if (ph < 0 || ph % T || ph / T >= P) continue;
                    for (int j = 0; j < F; j++) {
                        const int qw = w - j;
                        if (qw < 0 || qw % T || qw / T >= Q) continue;
                        s += dy[((size_t)nc * P + ph / T) * Q + qw / T];
                    }
                }
                dx[((size_t)nc * H + h) * W + w] = (float)(s / (F * F));
            }
}

/* Plane nc of avgpool_forward. */
static inline void avgpool_one_plane(float *y, const float *x, int nc, int H, int W, int F, int T, int P, int Q,
                                     float inv) {
    const float *restrict xp = x + (size_t)nc * H * W;
    float *restrict yp = y + (size_t)nc * P * Q;
    if (F == 2 && T == 2) { /* the zoo's case: pair sums, vectorised by the compiler */
        for (int p = 0; p < P; p++) {
            const float *restrict a = xp + (size_t)(2 * p) * W, *restrict b = a + W;
            float *restrict yr = yp + (size_t)p * Q;
            for (int q = 0; q < Q; q++) yr[q] = ((a[2 * q] + a[2 * q + 1]) + (b[2 * q] + b[2 * q + 1])) * inv;
        }
        return;
    }
    for (int p = 0; p < P; p++) {
        float *restrict yr = yp + (size_t)p * Q;
        for (int q = 0; q < Q; q++) yr[q] = 0;
        for (int i = 0; i < F; i++) {
            const float *restrict row = xp + (size_t)(p * T + i) * W;
            for (int j = 0; j < F; j++)
                for (int q = 0; q < Q; q++) yr[q] += row[q * T + j];
        }
        for (int q = 0; q < Q; q++) yr[q] *= inv;
    }
}

/* y[n,c,p,q] = (1/F^2) sum_{i,j<F} x[n,c,p*T+i,q*T+j]. Small tensors
 * (single images) stay outside any OpenMP region: one with a false `if`
 * still costs ~0.3 us. */
void avgpool_forward(float *y, const float *x, int N, int C, int H, int W, int F, int T) {
    const int P = pool_out_size(H, F, T), Q = pool_out_size(W, F, T);
    DG_ASSERT(P > 0 && Q > 0 && F > 0 && T > 0);
    const int NC = N * C;
    const float inv = 1.0f / (float)(F * F);
    if ((size_t)NC * H * W < POOL_PAR_MIN) {
        for (int nc = 0; nc < NC; nc++) avgpool_one_plane(y, x, nc, H, W, F, T, P, Q, inv);
        return;
    }
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (int nc = 0; nc < NC; nc++) avgpool_one_plane(y, x, nc, H, W, F, T, P, Q, inv);
}

/* dx[n,c,h,w] = (1/F^2) sum over the windows containing (h,w) of dy (dx overwritten). */
void avgpool_backward(float *dx, const float *dy, int N, int C, int H, int W, int F, int T) {
    const int P = pool_out_size(H, F, T), Q = pool_out_size(W, F, T);
    const int NC = N * C;
    const float inv = 1.0f / (float)(F * F);
    if (!dx) return;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if ((size_t)NC * H * W >= POOL_PAR_MIN)
#endif
    for (int nc = 0; nc < NC; nc++) {
        float *restrict dxp = dx + (size_t)nc * H * W;
        const float *restrict dyp = dy + (size_t)nc * P * Q;
        if (F == 2 && T == 2 && H == 2 * P && W == 2 * Q) { /* every pixel in exactly one window */
            for (int p = 0; p < P; p++) {
                const float *restrict dyr = dyp + (size_t)p * Q;
                float *restrict a = dxp + (size_t)(2 * p) * W, *restrict b = a + W;
                for (int q = 0; q < Q; q++) {
                    const float g = dyr[q] * inv;
                    a[2 * q] = g, a[2 * q + 1] = g, b[2 * q] = g, b[2 * q + 1] = g;
                }
            }
            continue;
        }
        memset(dxp, 0, sizeof(float) * H * W);
        for (int p = 0; p < P; p++) {
            const float *restrict dyr = dyp + (size_t)p * Q;
            for (int i = 0; i < F; i++) {
                float *restrict row = dxp + (size_t)(p * T + i) * W;
                for (int j = 0; j < F; j++)
                    for (int q = 0; q < Q; q++) row[q * T + j] += dyr[q] * inv;
            }
        }
    }
}
