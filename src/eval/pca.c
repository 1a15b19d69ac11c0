/* pca.c — principal component analysis by eigen-decomposition of the
 * covariance; see pca.h. */
#include "eval/pca.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/blas.h"
#include "core/check.h"

/* LAPACK's dsyevr (Fortran calling convention, with gfortran's hidden
 * string lengths at the end): eigenvalues and eigenvectors of a symmetric
 * matrix, by the MRRR algorithm. */
typedef void (*dsyevr_fn)(const char *jobz, const char *range, const char *uplo, const int *n, double *a,
                          const int *lda, const double *vl, const double *vu, const int *il, const int *iu,
                          const double *abstol, int *m, double *w, double *z, const int *ldz, int *isuppz,
                          double *work, const int *lwork, int *iwork, const int *liwork, int *info, size_t, size_t,
                          size_t);

#define CHUNK_ROWS 2048

/* Row source: float rows or scaled uint8 rows, converted into a float buffer. */
typedef struct {
    const float *x;
    const uint8_t *px;
    float scale;
    int d;
} Rows;

/* Copy rows [r0, r0+n) as floats into buf (n, d). */
static void rows_get(const Rows *s, int r0, int n, float *buf) {
    size_t cnt = (size_t)n * s->d, off = (size_t)r0 * s->d;
    if (s->x) {
        memcpy(buf, s->x + off, cnt * sizeof(float));
    } else {
        for (size_t i = 0; i < cnt; i++) buf[i] = s->px[off + i] * s->scale;
    }
}

static int fit(Pca *p, const Rows *src, int n, int d, int k) {
    DG_ASSERT(n >= 2 && d >= 1 && k >= 1 && k <= d);
    memset(p, 0, sizeof *p);
    dsyevr_fn dsyevr = (dsyevr_fn)dg_blas_symbol("dsyevr_");
    if (!dsyevr) return dg_set_error("PCA: the BLAS library has no LAPACK dsyevr_ (install libopenblas0-openmp)");

    const int rows = n < CHUNK_ROWS ? n : CHUNK_ROWS;
    float *buf = dg_xmalloc((size_t)rows * d * sizeof(float));
    float *cf = dg_xmalloc((size_t)d * d * sizeof(float));
    double *mean = dg_xcalloc((size_t)d, sizeof(double));
    double *cov = dg_xcalloc((size_t)d * d, sizeof(double));

    /* pass 1: mean */
    for (int r0 = 0; r0 < n; r0 += rows) {
        int m = n - r0 < rows ? n - r0 : rows;
        rows_get(src, r0, m, buf);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < d; j++) mean[j] += buf[(size_t)i * d + j];
    }
    p->mean = dg_xmalloc((size_t)d * sizeof(float));
    for (int j = 0; j < d; j++) p->mean[j] = (float)(mean[j] / n);

    /* pass 2: covariance = sum over chunks of Xc^T Xc; a chunk's product in
     * float (2048 terms at most), the running sum in double */
    for (int r0 = 0; r0 < n; r0 += rows) {
        int m = n - r0 < rows ? n - r0 : rows;
        rows_get(src, r0, m, buf);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < d; j++) buf[(size_t)i * d + j] -= p->mean[j];
        dg_sgemm_parallel(CblasRowMajor, CblasTrans, CblasNoTrans, d, d, m, 1.0f, buf, d, buf, d, 0.0f, cf, d);
        for (size_t i = 0; i < (size_t)d * d; i++) cov[i] += cf[i];
    }
    for (size_t i = 0; i < (size_t)d * d; i++) cov[i] /= (n - 1);
    free(buf);
    free(cf);
    free(mean);

    /* all eigenvalues and eigenvectors (ascending); workspace query first.
     * dsyevr is thousands of small BLAS-2 calls: run single-threaded, the
     * OpenMP build of OpenBLAS would open a parallel region for each, which
     * costs seconds on a busy machine (it follows omp_get_max_threads). */
#ifdef _OPENMP
    const int omp_threads = omp_get_max_threads();
    omp_set_num_threads(1);
#endif
    double *w = dg_xmalloc((size_t)d * sizeof(double));
    double *z = dg_xmalloc((size_t)d * d * sizeof(double));
    int *isuppz = dg_xmalloc(2 * (size_t)d * sizeof(int));
    int found = 0, info = 0, lwork = -1, liwork = -1, iwork_q = 0, zero = 0;
    double work_q = 0, dzero = 0, abstol = 0;
    dsyevr("V", "A", "U", &d, cov, &d, &dzero, &dzero, &zero, &zero, &abstol, &found, w, z, &d, isuppz, &work_q,
           &lwork, &iwork_q, &liwork, &info, 1, 1, 1);
    lwork = (int)work_q;
    liwork = iwork_q;
    double *work = dg_xmalloc((size_t)(lwork > 1 ? lwork : 1) * sizeof(double));
    int *iwork = dg_xmalloc((size_t)(liwork > 1 ? liwork : 1) * sizeof(int));
    dsyevr("V", "A", "U", &d, cov, &d, &dzero, &dzero, &zero, &zero, &abstol, &found, w, z, &d, isuppz, work,
           &lwork, iwork, &liwork, &info, 1, 1, 1);
#ifdef _OPENMP
    omp_set_num_threads(omp_threads);
#endif
    free(work);
    free(iwork);
    free(isuppz);
    free(cov);
    if (info != 0 || found != d) {
        free(w);
        free(z);
        pca_free(p);
        return dg_set_error("PCA: dsyevr failed (info %d, %d of %d eigenvalues)", info, found, d);
    }

    p->d = d;
    p->k = k;
    p->variance = dg_xmalloc((size_t)d * sizeof(double));
    p->components = dg_xmalloc((size_t)k * d * sizeof(float));
    for (int i = 0; i < d; i++) {
        double v = w[d - 1 - i];
        p->variance[i] = v > 0 ? v : 0; /* rounding can leave -1e-17 on a null direction */
        p->total_variance += p->variance[i];
    }
    for (int i = 0; i < k; i++) {
        const double *col = z + (size_t)(d - 1 - i) * d; /* column-major: eigenvector d-1-i */
        int big = 0;
        for (int j = 1; j < d; j++)
            if (fabs(col[j]) > fabs(col[big])) big = j;
        double sign = col[big] < 0 ? -1.0 : 1.0;
        for (int j = 0; j < d; j++) p->components[(size_t)i * d + j] = (float)(sign * col[j]);
    }
    free(w);
    free(z);
    return 0;
}

int pca_fit(Pca *p, const float *x, int n, int d, int k) {
    Rows s = {.x = x, .d = d};
    return fit(p, &s, n, d, k);
}

int pca_fit_pixels(Pca *p, const uint8_t *px, int n, int d, float scale, int k) {
    Rows s = {.px = px, .scale = scale, .d = d};
    return fit(p, &s, n, d, k);
}

void pca_free(Pca *p) {
    free(p->mean);
    free(p->components);
    free(p->variance);
    memset(p, 0, sizeof *p);
}

static void transform(const Pca *p, const Rows *src, int n, int m, float *out) {
    DG_ASSERT(m >= 1 && m <= p->k && src->d == p->d);
    const int d = p->d, rows = n < CHUNK_ROWS ? (n > 0 ? n : 1) : CHUNK_ROWS;
    float *buf = dg_xmalloc((size_t)rows * d * sizeof(float));
    for (int r0 = 0; r0 < n; r0 += rows) {
        int c = n - r0 < rows ? n - r0 : rows;
        rows_get(src, r0, c, buf);
        for (int i = 0; i < c; i++)
            for (int j = 0; j < d; j++) buf[(size_t)i * d + j] -= p->mean[j];
        /* (c, d) x (m, d)^T -> (c, m) */
        dg_sgemm_parallel(CblasRowMajor, CblasNoTrans, CblasTrans, c, m, d, 1.0f, buf, d, p->components, d, 0.0f,
                          out + (size_t)r0 * m, m);
    }
    free(buf);
}

void pca_transform(const Pca *p, const float *x, int n, int m, float *out) {
    Rows s = {.x = x, .d = p->d};
    transform(p, &s, n, m, out);
}

void pca_transform_pixels(const Pca *p, const uint8_t *px, int n, float scale, int m, float *out) {
    Rows s = {.px = px, .scale = scale, .d = p->d};
    transform(p, &s, n, m, out);
}

double pca_explained(const Pca *p, int m) {
    if (!(p->total_variance > 0)) return 1.0; /* constant data: nothing left to explain */
    double s = 0;
    for (int i = 0; i < m && i < p->d; i++) s += p->variance[i];
    return s / p->total_variance;
}

int pca_components_for(const Pca *p, double fraction) {
    for (int m = 1; m <= p->d; m++)
        if (pca_explained(p, m) >= fraction - 1e-12) return m;
    return p->d;
}
