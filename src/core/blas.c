/* blas.c — run-time binding of OpenBLAS; see blas.h for why. */
#include "core/blas.h"

#include <dlfcn.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*sgemm_fn)(CBLAS_ORDER, CBLAS_TRANSPOSE, CBLAS_TRANSPOSE, int, int, int, float,
                         const float *, int, const float *, int, float, float *, int);
typedef char *(*corename_fn)(void);

static sgemm_fn sgemm_ptr;
static void *blas_lib;
static corename_fn corename_ptr;
static char info[256];
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* Library candidates, best first: the OpenMP build, then whatever
 * libopenblas.so.0 the alternatives system points to. */
static const char *const candidates[] = {
    "/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0",
    "libopenblas.so.0",
    "libopenblas.so",
};

static void bind(void) {
    /* OPENBLAS_CORETYPE / OPENBLAS_NUM_THREADS are arranged by
     * dg_runtime_init before the process (re)starts: OpenBLAS does not see
     * a setenv() made now. */
    void *lib = NULL;
    const char *path = getenv("DIGITS_BLAS_LIB"); /* for experiments: another BLAS build */
    if (path) lib = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
    for (size_t i = 0; i < sizeof candidates / sizeof *candidates && !lib; i++) {
        lib = dlopen(candidates[i], RTLD_NOW | RTLD_GLOBAL);
        path = candidates[i];
    }
    if (!lib) {
        fprintf(stderr, "digits: cannot load OpenBLAS (%s); install libopenblas0-openmp\n", dlerror());
        abort();
    }
    blas_lib = lib;
    sgemm_ptr = (sgemm_fn)dlsym(lib, "cblas_sgemm");
    corename_ptr = (corename_fn)dlsym(lib, "openblas_get_corename");
    if (!sgemm_ptr) {
        fprintf(stderr, "digits: %s has no cblas_sgemm\n", path);
        abort();
    }
    snprintf(info, sizeof info, "OpenBLAS core %s (%s)", corename_ptr ? corename_ptr() : "?", path);
}

void dg_sgemm(CBLAS_ORDER order, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K,
              float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C,
              int ldc) {
    if (!sgemm_ptr) pthread_once(&once, bind);
    sgemm_ptr(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void *dg_blas_symbol(const char *name) {
    pthread_once(&once, bind);
    return dlsym(blas_lib, name);
}

const char *dg_blas_info(void) {
    pthread_once(&once, bind);
    return info;
}

/* Products below this many multiply-adds are not worth waking a thread for. */
#define PARALLEL_MIN_MACS (1L << 20)

static int sgemm_blocks; /* dg_sgemm_set_blocks */

void dg_sgemm_set_blocks(int blocks) { sgemm_blocks = blocks > 0 ? blocks : 0; }

void dg_sgemm_parallel(CBLAS_ORDER order, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N,
                       int K, float alpha, const float *A, int lda, const float *B, int ldb,
                       float beta, float *C, int ldc) {
    int nt = 1, threads = 1;
#ifdef _OPENMP
    if (!omp_in_parallel()) {
        nt = threads = omp_get_max_threads();
        if (sgemm_blocks) nt = sgemm_blocks;
    }
#endif
    (void)threads;
    if (nt <= 1 || (long)M * N * K < PARALLEL_MIN_MACS || order != CblasRowMajor) {
        dg_sgemm(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    if (!sgemm_ptr) pthread_once(&once, bind);
    const int split_rows = M >= 4 * nt || M >= N;
    const int extent = split_rows ? M : N;
    if (nt > extent) nt = extent;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(threads < nt ? threads : nt)
#endif
    for (int t = 0; t < nt; t++) {
        const int lo = (int)((long)t * extent / nt), hi = (int)((long)(t + 1) * extent / nt);
        if (hi <= lo) continue;
        if (split_rows) {
            const float *At = ta == CblasNoTrans ? A + (size_t)lo * lda : A + lo;
            sgemm_ptr(order, ta, tb, hi - lo, N, K, alpha, At, lda, B, ldb, beta, C + (size_t)lo * ldc, ldc);
        } else {
            const float *Bt = tb == CblasNoTrans ? B + lo : B + (size_t)lo * ldb;
            sgemm_ptr(order, ta, tb, M, hi - lo, K, alpha, A, lda, Bt, ldb, beta, C + lo, ldc);
        }
    }
}
