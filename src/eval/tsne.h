/* tsne.h — Barnes-Hut t-SNE (van der Maaten 2014) to two dimensions, with
 * the choices of scikit-learn's TSNE that the seed notebooks use:
 *   - input affinities from the 3*perplexity+1 nearest neighbours (exact
 *     search, squared Euclidean distances), a binary search per point for the
 *     Gaussian width giving the wanted perplexity, P = (P + P^T) / sum;
 *   - early exaggeration 12 for the first 250 of 1000 iterations, momentum
 *     0.5 then 0.8, delta-bar-delta gains (+0.2 / x0.8, at least 0.01),
 *     learning rate "auto" = max(n / exaggeration / 4, 50);
 *   - initialisation by PCA, scaled so that the first coordinate has
 *     standard deviation 1e-4;
 *   - the repulsive forces by a quadtree with opening angle theta = 0.5.
 * The embedding is re-centred every iteration (as in van der Maaten's bhtsne).
 *
 * Deterministic: no random numbers are drawn (PCA initialisation) and every
 * per-point sum is computed by one thread, so the same input and thread
 * count give the same embedding. Across thread counts the BLAS products
 * (neighbour distances, the PCA) may round differently, and t-SNE amplifies
 * such differences into a different (equally good) layout.
 *
 * Leaves out: dimensions other than 2, the exact O(n^2) gradient, approximate
 * nearest neighbours (exact search is a few hundred ms at n = 10 000).
 */
#ifndef DG_TSNE_H
#define DG_TSNE_H

#include <stdint.h>

typedef struct {
    double perplexity;         /* 30 */
    double early_exaggeration; /* 12 */
    int exaggeration_iters;    /* 250 */
    int iters;                 /* 1000 (in all) */
    double learning_rate;      /* <= 0: auto */
    double theta;              /* 0.5 */
    int verbose;               /* progress lines on stderr */
} TsneConfig;

typedef struct {
    double kl;       /* KL(P || Q) of the final embedding (exact, O(n^2)) */
    double seconds;  /* wall time */
    int neighbours;  /* per point, for the affinities */
} TsneStats;

void tsne_config_defaults(TsneConfig *c);
/* Embed x (n, d) into y (n, 2). n >= 3 (perplexity is lowered to (n-1)/3
 * when it is too large for n). Returns -1 with a message if the PCA
 * initialisation fails (LAPACK missing). */
int tsne_run(const float *x, int n, int d, const TsneConfig *cfg, float *y, TsneStats *stats);

#endif
