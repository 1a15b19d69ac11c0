/* pca.h — principal component analysis of a data matrix (n samples, d
 * features): the mean, the covariance (sgemm over chunks of rows,
 * accumulated in double) and its eigen-decomposition by LAPACK's dsyevr,
 * taken from the OpenBLAS digits binds at run time (core/blas.h says why
 * it is not linked).
 *
 * Every eigenvalue is kept (the explained-variance curve needs them all);
 * only the top k eigenvectors are. Each component's sign is fixed so that
 * its largest-magnitude entry is positive: the same data always give the
 * same components, whatever LAPACK returns.
 *
 * Leaves out: whitening, incremental/randomised PCA (d is at most a few
 * thousand here, so the d x d eigenproblem is cheap).
 */
#ifndef DG_PCA_H
#define DG_PCA_H

#include <stdint.h>

typedef struct {
    int d;                 /* input features */
    int k;                 /* components kept */
    float *mean;           /* (d) */
    float *components;     /* (k, d): unit rows, largest variance first */
    double *variance;      /* (d) variance along each component (covariance eigenvalues, n-1 divisor), descending */
    double total_variance; /* sum of variance */
} Pca;

/* Fit on x (n, d) row-major, keeping k <= d components. n >= 2. Returns -1
 * with a message if LAPACK is unavailable or fails. Free with pca_free. */
int pca_fit(Pca *p, const float *x, int n, int d, int k);
/* The same on uint8 pixels (n, d), each multiplied by scale (1/255: pixels
 * in [0,1]) — converted chunk by chunk, never as one float copy. */
int pca_fit_pixels(Pca *p, const uint8_t *px, int n, int d, float scale, int k);
void pca_free(Pca *p);

/* out (n, m) = the first m <= k coordinates of (x - mean) in the components. */
void pca_transform(const Pca *p, const float *x, int n, int m, float *out);
void pca_transform_pixels(const Pca *p, const uint8_t *px, int n, float scale, int m, float *out);

/* Fraction of the total variance the first m components explain. */
double pca_explained(const Pca *p, int m);
/* Smallest m whose components explain at least `fraction` (e.g. 0.95). */
int pca_components_for(const Pca *p, double fraction);

#endif
