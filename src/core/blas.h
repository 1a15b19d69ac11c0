/* blas.h — the one BLAS call digits makes (sgemm), bound at run time.
 *
 * Why not link -lopenblas directly: Debian's OpenBLAS 0.3.21 does not
 * recognise recent CPUs and falls back to slow kernels unless
 * OPENBLAS_CORETYPE is set *before the library loads*. A user must never
 * need to know that, so digits dlopen()s OpenBLAS on first use, after
 * choosing OPENBLAS_CORETYPE from the CPU's features (a value the user set
 * wins). It prefers the OpenMP build (libopenblas0-openmp) so that one
 * runtime owns the threads: called inside digits' own `omp parallel`
 * regions it runs single-threaded, outside them it uses all threads.
 */
#ifndef DG_BLAS_H
#define DG_BLAS_H

#include <cblas.h>

void dg_sgemm(CBLAS_ORDER order, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K,
              float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C,
              int ldc);
/* The OpenBLAS core in use (e.g. "SkylakeX") and the library path, for logs and benchmarks. */
const char *dg_blas_info(void);

#endif
