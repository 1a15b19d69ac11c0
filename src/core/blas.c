/* blas.c — run-time binding of OpenBLAS; see blas.h for why. */
#include "core/blas.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*sgemm_fn)(CBLAS_ORDER, CBLAS_TRANSPOSE, CBLAS_TRANSPOSE, int, int, int, float,
                         const float *, int, const float *, int, float, float *, int);
typedef char *(*corename_fn)(void);

static sgemm_fn sgemm_ptr;
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

static void choose_coretype(void) {
    if (getenv("OPENBLAS_CORETYPE")) return; /* the user's choice wins */
    __builtin_cpu_init();
    const char *core = NULL;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw"))
        core = "SkylakeX";
    else if (__builtin_cpu_supports("avx2"))
        core = "Haswell";
    if (core) setenv("OPENBLAS_CORETYPE", core, 0);
}

static void bind(void) {
    choose_coretype();
    void *lib = NULL;
    const char *path = NULL;
    for (size_t i = 0; i < sizeof candidates / sizeof *candidates && !lib; i++) {
        lib = dlopen(candidates[i], RTLD_NOW | RTLD_GLOBAL);
        path = candidates[i];
    }
    if (!lib) {
        fprintf(stderr, "digits: cannot load OpenBLAS (%s); install libopenblas0-openmp\n", dlerror());
        abort();
    }
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

const char *dg_blas_info(void) {
    pthread_once(&once, bind);
    return info;
}
