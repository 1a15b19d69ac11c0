/* wino_product.h — the Winograd product block shared by conv2d/wino.c
 * (F(2x2,3x3)), conv2d/wino4.c (F(4x4,3x3)) and conv2d/wino5.c
 * (F(2x2,5x5)), and the input transform of the last two (6x6 tiles on the
 * points 0, +-1, +-2, inf: the same B^T for both). The block: for one transform position,
 * KB output channels times up to VB tile vectors (16 tiles each) of
 * accumulators in registers, summed over the input channels. Included by
 * those two files only (it defines a static function; the function only in
 * AVX-512 builds).
 * Left out: the bf16 product (conv2d/wino.c has its own). */
#ifndef DIGITS_OPS_WINO_PRODUCT_H
#define DIGITS_OPS_WINO_PRODUCT_H

#include <stddef.h>

#define KB 8 /* output channels per register block */
#define VB 3 /* tile vectors per register block */

/* The 6x6-tile kernels' weight packing (F(4x4,3x3), F(2x2,5x5)): each
 * filter (taps floats of w (K,C,taps)) through transform (U = G g G^T, in
 * double) into scratch as U (K/KB, 36, C, KB). */
static inline void wino6_pack(float *scratch, const float *w, int C, int K, int taps,
                              void (*transform)(double u[36], const double *g)) {
    for (int k = 0; k < K; k++)
        for (int c = 0; c < C; c++) {
            double g[25], u[36];
            const float *f = w + ((size_t)k * C + c) * taps;
            for (int i = 0; i < taps; i++) g[i] = f[i];
            transform(u, g);
            for (int pos = 0; pos < 36; pos++)
                scratch[(((size_t)(k / KB) * 36 + pos) * C + c) * KB + k % KB] = (float)u[pos];
        }
}

#ifdef __AVX512F__
#include <immintrin.h>

/* M (KB, nv vectors) for one position = U (KB, C) . V (C, nv vectors). */
static inline __attribute__((always_inline)) void product(float *M, const float *U, const float *V, int C,
                                                          const int nv) {
    __m512 acc[KB][VB];
    for (int kk = 0; kk < KB; kk++)
        for (int jj = 0; jj < nv; jj++) acc[kk][jj] = _mm512_setzero_ps();
    for (int c = 0; c < C; c++) {
        __m512 v[VB];
        for (int jj = 0; jj < nv; jj++) v[jj] = _mm512_loadu_ps(V + ((size_t)c * VB + jj) * 16);
        for (int kk = 0; kk < KB; kk++) {
            const __m512 u = _mm512_set1_ps(U[(size_t)c * KB + kk]);
            for (int jj = 0; jj < nv; jj++) acc[kk][jj] = _mm512_fmadd_ps(u, v[jj], acc[kk][jj]);
        }
    }
    for (int kk = 0; kk < KB; kk++)
        for (int jj = 0; jj < nv; jj++) _mm512_storeu_ps(M + ((size_t)kk * VB + jj) * 16, acc[kk][jj]);
}

/* r = B^T d for six vectors (one patch column or row of 16 tiles),
 * B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0;
 *        0 2 -1 -2 1 0; 0 4 0 -5 0 1]. */
static inline __attribute__((always_inline)) void wino_btrans6(__m512 r[6], const __m512 d[6]) {
    const __m512 four = _mm512_set1_ps(4.0f), five = _mm512_set1_ps(5.0f), two = _mm512_set1_ps(2.0f);
    r[0] = _mm512_fmadd_ps(four, d[0], _mm512_fnmadd_ps(five, d[2], d[4]));
    const __m512 a = _mm512_fnmadd_ps(four, d[2], d[4]), b = _mm512_fnmadd_ps(four, d[1], d[3]);
    r[1] = _mm512_add_ps(a, b);
    r[2] = _mm512_sub_ps(a, b);
    const __m512 c = _mm512_sub_ps(d[4], d[2]), e = _mm512_mul_ps(two, _mm512_sub_ps(d[3], d[1]));
    r[3] = _mm512_add_ps(c, e);
    r[4] = _mm512_sub_ps(c, e);
    r[5] = _mm512_fmadd_ps(four, d[1], _mm512_fnmadd_ps(five, d[3], d[5]));
}

/* product() with nv (1..VB) a compile-time constant in each branch, so that
 * the accumulators stay in registers. */
static inline __attribute__((always_inline)) void product_nv(float *M, const float *U, const float *V, int C, int nv) {
    if (nv == 3) product(M, U, V, C, 3);
    else if (nv == 2) product(M, U, V, C, 2);
    else product(M, U, V, C, 1);
}
#endif

#endif
