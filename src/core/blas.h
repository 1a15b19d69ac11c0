/* blas.h — the one BLAS call digits makes (sgemm), bound at run time.
 *
 * Why not link -lopenblas directly: Debian's OpenBLAS 0.3.21 does not
 * recognise recent CPUs and falls back to slow kernels unless
 * OPENBLAS_CORETYPE is set *before the library loads*. A user must never
 * need to know that: dg_runtime_init (runtime.h) arranges the variable, and
 * digits dlopen()s the OpenMP build of OpenBLAS on first use (no link-time
 * dependency on one variant). digits owns the threads: every large
 * product is split by digits' own OpenMP loops (dg_sgemm_parallel), inside
 * which the OpenMP build of OpenBLAS runs single-threaded. Measured here: letting OpenBLAS's OpenMP team and
 * digits' team take turns made a batch-1 cnn-bn forward 10x slower (idle
 * spinning threads fighting for the two cores).
 */
#ifndef DG_BLAS_H
#define DG_BLAS_H

#include <cblas.h>

void dg_sgemm(CBLAS_ORDER order, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K,
              float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C,
              int ldc);
/* The same product split over digits' OpenMP threads (rows of C, or columns
 * when C has few rows), each block one single-threaded sgemm; inside a
 * parallel region, or for small products, it is plain dg_sgemm. Each
 * element of C is computed by one thread: deterministic for a given thread
 * count. Row-major only. */
void dg_sgemm_parallel(CBLAS_ORDER order, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N,
                       int K, float alpha, const float *A, int lda, const float *B, int ldb,
                       float beta, float *C, int ldc);
/* Cut dg_sgemm_parallel's products into this many blocks, whatever the
 * thread count (0: one block per thread, the default). The blocks are run
 * by the threads there are; the result is that of a process with `blocks`
 * threads, bit for bit: distributed training (src/train/dist_train.c)
 * computes a layer as the single process it stands for would.
 * Process-wide; not for use while products run on other threads. */
void dg_sgemm_set_blocks(int blocks);
/* Any other routine of the bound OpenBLAS by symbol name, e.g. LAPACK's
 * "dsyevr_" (OpenBLAS ships LAPACK). Linking -llapack instead would load a
 * second BLAS at start-up: liblapack.so.3 is an alternatives link to some
 * OpenBLAS variant (here the pthread one), before OPENBLAS_CORETYPE is
 * arranged and beside the OpenMP build digits binds. NULL if absent. */
void *dg_blas_symbol(const char *name);
/* The OpenBLAS core in use (e.g. "SkylakeX") and the library path, for logs and benchmarks. */
const char *dg_blas_info(void);

#endif
