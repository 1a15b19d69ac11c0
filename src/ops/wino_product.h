/* wino_product.h — the Winograd product block shared by conv2d_wino.c
 * (F(2x2,3x3)) and conv2d_wino4.c (F(4x4,3x3)): for one transform position,
 * KB output channels times up to VB tile vectors (16 tiles each) of
 * accumulators in registers, summed over the input channels. Included by
 * those two files only (it defines a static function; the function only in
 * AVX-512 builds).
 * Left out: the bf16 product (conv2d_wino.c has its own). */
#ifndef DIGITS_OPS_WINO_PRODUCT_H
#define DIGITS_OPS_WINO_PRODUCT_H

#include <stddef.h>

#define KB 8 /* output channels per register block */
#define VB 3 /* tile vectors per register block */

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

/* product() with nv (1..VB) a compile-time constant in each branch, so that
 * the accumulators stay in registers. */
static inline __attribute__((always_inline)) void product_nv(float *M, const float *U, const float *V, int C, int nv) {
    if (nv == 3) product(M, U, V, C, 3);
    else if (nv == 2) product(M, U, V, C, 2);
    else product(M, U, V, C, 1);
}
#endif

#endif
