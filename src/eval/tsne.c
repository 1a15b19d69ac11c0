/* tsne.c — Barnes-Hut t-SNE in two dimensions; see tsne.h.
 *
 * Cost function and gradient (Student-t kernel, one degree of freedom):
 *   q_ij = (1 + |y_i - y_j|^2)^-1 / Z,   Z = sum_{k != l} (1 + |y_k - y_l|^2)^-1
 *   dC/dy_i = 4 [ sum_j p_ij (1 + |y_i - y_j|^2)^-1 (y_i - y_j)
 *               - (1/Z) sum_j (1 + |y_i - y_j|^2)^-2 (y_i - y_j) ]
 * The first (attractive) sum runs over the sparse P; the second (repulsive)
 * sum and Z are approximated with a quadtree: a cell far enough away
 * (side / distance < theta) acts as its point count at its centre of mass.
 */
#include "eval/tsne.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/blas.h"
#include "core/check.h"
#include "core/util.h"
#include "eval/pca.h"

/* Below this many points every loop stays on one thread: a parallel region
 * per iteration costs more than the work, above all on a busy machine. */
#define PARALLEL_MIN_POINTS 1000

void tsne_config_defaults(TsneConfig *c) {
    memset(c, 0, sizeof *c);
    c->perplexity = 30;
    c->early_exaggeration = 12;
    c->exaggeration_iters = 250;
    c->iters = 1000;
    c->learning_rate = 0; /* auto */
    c->theta = 0.5;
}

/* ==== input affinities ====================================================== */

/* Max-heap of (distance, index) keeping the K smallest distances seen. */
static void heap_push(float *hd, int *hi, int *size, int cap, float d, int j) {
    if (*size < cap) {
        int c = (*size)++;
        while (c > 0) {
            int p = (c - 1) / 2;
            if (hd[p] >= d) break;
            hd[c] = hd[p];
            hi[c] = hi[p];
            c = p;
        }
        hd[c] = d;
        hi[c] = j;
        return;
    }
    if (d >= hd[0]) return;
    int c = 0; /* replace the root and sift down */
    for (;;) {
        int l = 2 * c + 1, r = l + 1, m = c;
        float md = d;
        if (l < cap && hd[l] > md) m = l, md = hd[l];
        if (r < cap && hd[r] > md) m = r, md = hd[r];
        if (m == c) break;
        hd[c] = hd[m];
        hi[c] = hi[m];
        c = m;
    }
    hd[c] = d;
    hi[c] = j;
}

/* The K nearest neighbours of every point (exact; squared Euclidean):
 * nbr (n, K) indices and dist (n, K) squared distances, unsorted. */
static void knn(const float *x, int n, int d, int K, int *nbr, float *dist) {
    float *norm = dg_xmalloc((size_t)n * sizeof(float));
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < d; j++) s += (double)x[(size_t)i * d + j] * x[(size_t)i * d + j];
        norm[i] = (float)s;
    }
    const int B = 256;
    float *dot = dg_xmalloc((size_t)B * n * sizeof(float));
    for (int r0 = 0; r0 < n; r0 += B) {
        int m = n - r0 < B ? n - r0 : B;
        dg_sgemm_parallel(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, d, 1.0f, x + (size_t)r0 * d, d, x, d, 0.0f,
                          dot, n);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_POINTS)
#endif
        for (int a = 0; a < m; a++) {
            int i = r0 + a, size = 0;
            float *hd = dist + (size_t)i * K;
            int *hi = nbr + (size_t)i * K;
            for (int j = 0; j < n; j++) {
                if (j == i) continue;
                float dd = norm[i] + norm[j] - 2 * dot[(size_t)a * n + j];
                heap_push(hd, hi, &size, K, dd > 0 ? dd : 0, j);
            }
        }
    }
    free(dot);
    free(norm);
}

/* Conditional p_{j|i} over each point's K neighbours, Gaussian width found by
 * bisection on beta = 1 / (2 sigma^2) so that the entropy is log(perplexity)
 * (scikit-learn's _binary_search_perplexity; distances shifted by their
 * minimum, which cancels in the normalisation but keeps exp() from
 * underflowing for far-apart data). */
static void conditional_p(const float *dist, int n, int K, double perplexity, float *p) {
    const double target = log(perplexity);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_POINTS)
#endif
    for (int i = 0; i < n; i++) {
        const float *di = dist + (size_t)i * K;
        float *pi = p + (size_t)i * K;
        double dmin = INFINITY;
        for (int j = 0; j < K; j++)
            if (di[j] < dmin) dmin = di[j];
        double beta = 1, lo = -INFINITY, hi = INFINITY;
        for (int step = 0; step < 100; step++) {
            double sum = 0, sdp = 0;
            for (int j = 0; j < K; j++) sum += exp(-(di[j] - dmin) * beta);
            if (sum == 0) sum = 1e-8;
            for (int j = 0; j < K; j++) sdp += (di[j] - dmin) * exp(-(di[j] - dmin) * beta) / sum;
            double h = log(sum) + beta * sdp;
            if (fabs(h - target) <= 1e-5) break;
            if (h > target) {
                lo = beta;
                beta = isinf(hi) ? beta * 2 : (beta + hi) / 2;
            } else {
                hi = beta;
                beta = isinf(lo) ? beta / 2 : (beta + lo) / 2;
            }
        }
        double sum = 0;
        for (int j = 0; j < K; j++) sum += exp(-(di[j] - dmin) * beta);
        if (sum == 0) sum = 1e-8;
        for (int j = 0; j < K; j++) pi[j] = (float)(exp(-(di[j] - dmin) * beta) / sum);
    }
}

/* Symmetric sparse P in CSR: P = (C + C^T) / sum, C the conditional matrix. */
typedef struct {
    int *row;   /* (n+1) */
    int *col;   /* (nnz) */
    double *val; /* (nnz) */
} Csr;

typedef struct {
    int col;
    double val;
} Entry;

static int cmp_entry(const void *a, const void *b) {
    const Entry *x = a, *y = b;
    return (x->col > y->col) - (x->col < y->col);
}

static void symmetrize(const int *nbr, const float *p, int n, int K, Csr *P) {
    int *count = dg_xcalloc((size_t)n + 1, sizeof(int));
    for (int i = 0; i < n; i++)
        for (int k = 0; k < K; k++) {
            count[i]++;
            count[nbr[(size_t)i * K + k]]++;
        }
    int *start = dg_xmalloc(((size_t)n + 1) * sizeof(int));
    start[0] = 0;
    for (int i = 0; i < n; i++) start[i + 1] = start[i] + count[i];
    Entry *e = dg_xmalloc((size_t)start[n] * sizeof(Entry));
    int *fill = dg_xcalloc((size_t)n, sizeof(int));
    for (int i = 0; i < n; i++)
        for (int k = 0; k < K; k++) {
            int j = nbr[(size_t)i * K + k];
            double v = p[(size_t)i * K + k];
            e[start[i] + fill[i]++] = (Entry){j, v};
            e[start[j] + fill[j]++] = (Entry){i, v};
        }
    /* merge duplicates (i in j's list and j in i's) row by row */
    P->row = dg_xmalloc(((size_t)n + 1) * sizeof(int));
    P->col = dg_xmalloc((size_t)start[n] * sizeof(int));
    P->val = dg_xmalloc((size_t)start[n] * sizeof(double));
    int nnz = 0;
    double total = 0;
    for (int i = 0; i < n; i++) {
        qsort(e + start[i], (size_t)count[i], sizeof(Entry), cmp_entry);
        P->row[i] = nnz;
        for (int t = start[i]; t < start[i + 1]; t++) {
            if (nnz > P->row[i] && P->col[nnz - 1] == e[t].col) {
                P->val[nnz - 1] += e[t].val;
            } else {
                P->col[nnz] = e[t].col;
                P->val[nnz] = e[t].val;
                nnz++;
            }
            total += e[t].val;
        }
    }
    P->row[n] = nnz;
    if (total <= 0) total = 1;
    for (int t = 0; t < nnz; t++) P->val[t] /= total;
    free(count);
    free(start);
    free(e);
    free(fill);
}

/* ==== quadtree ==============================================================
 * Stored in pre-order with a "skip" index (the first node after a cell's
 * subtree), so the force loop walks an array without a stack: open a cell
 * -> next node; summarise it -> jump to skip. Leaves hold up to LEAF_MAX
 * points; an opened leaf interacts with each of its points exactly. */

#define LEAF_MAX 4

typedef struct {
    float mx, my;   /* centre of mass */
    float side2;    /* squared side of the cell */
    int count;      /* points below */
    int skip;       /* first node after this subtree */
    int first;      /* leaf: its points are idx[first .. first+count); -1 for an inner cell */
} QNode;

typedef struct {
    QNode *node;
    int n_nodes, cap;
    int *idx;       /* point indices, grouped by cell */
    double min_hw;  /* cells this small stay leaves whatever their count (duplicates) */
} QTree;

static int qt_new(QTree *t) {
    if (t->n_nodes == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 1024;
        QNode *nn = dg_xmalloc((size_t)t->cap * sizeof(QNode));
        if (t->n_nodes) memcpy(nn, t->node, (size_t)t->n_nodes * sizeof(QNode));
        free(t->node);
        t->node = nn;
    }
    return t->n_nodes++;
}

/* Build the cell (cx, cy, hw) over idx[lo..hi) and its subtree. The tree
 * works in float: coordinates stay within a few hundred, and the force sums
 * are accumulated in double by the caller. */
static void qt_build(QTree *t, const float *y, int lo, int hi, double cx, double cy, double hw) {
    int id = qt_new(t);
    double mx = 0, my = 0;
    for (int k = lo; k < hi; k++) {
        mx += y[2 * t->idx[k]];
        my += y[2 * t->idx[k] + 1];
    }
    QNode q = {(float)(mx / (hi - lo)), (float)(my / (hi - lo)), (float)(4 * hw * hw), hi - lo, 0, lo};
    if (hi - lo > LEAF_MAX && hw >= t->min_hw) {
        q.first = -1;
        /* partition into quadrants: bit 0 = x >= cx, bit 1 = y >= cy */
        int bounds[5], k = lo;
        bounds[0] = lo;
        for (int quad = 0; quad < 4; quad++) {
            for (int s = k; s < hi; s++) {
                int pnt = t->idx[s];
                if ((y[2 * pnt] >= cx) + 2 * (y[2 * pnt + 1] >= cy) == quad) {
                    t->idx[s] = t->idx[k];
                    t->idx[k++] = pnt;
                }
            }
            bounds[quad + 1] = k;
        }
        t->node[id] = q;
        for (int quad = 0; quad < 4; quad++)
            if (bounds[quad + 1] > bounds[quad])
                qt_build(t, y, bounds[quad], bounds[quad + 1], cx + (quad & 1 ? hw / 2 : -hw / 2),
                         cy + (quad & 2 ? hw / 2 : -hw / 2), hw / 2);
    }
    q.skip = t->n_nodes;
    t->node[id] = q; /* t->node may have moved during the recursion */
}

static void qt_rebuild(QTree *t, const float *y, int n) {
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int i = 0; i < n; i++) {
        t->idx[i] = i;
        if (y[2 * i] < x0) x0 = y[2 * i];
        if (y[2 * i] > x1) x1 = y[2 * i];
        if (y[2 * i + 1] < y0) y0 = y[2 * i + 1];
        if (y[2 * i + 1] > y1) y1 = y[2 * i + 1];
    }
    double hw = fmax(x1 - x0, y1 - y0) / 2 * (1 + 1e-6) + 1e-12;
    t->min_hw = hw * 1e-10;
    t->n_nodes = 0;
    qt_build(t, y, 0, n, (x0 + x1) / 2, (y0 + y1) / 2, hw);
}

/* Repulsive force on point i (before the 1/Z) and its share of Z. */
static void qt_repulse(const QTree *t, const float *y, int i, float theta2, double *fx, double *fy, double *z) {
    const float xi = y[2 * i], yi = y[2 * i + 1];
    double sfx = 0, sfy = 0, sz = 0;
    int k = 0;
    while (k < t->n_nodes) {
        const QNode *q = &t->node[k];
        float dx = xi - q->mx, dy = yi - q->my, d2 = dx * dx + dy * dy;
        if (q->side2 < theta2 * d2) { /* far enough: the cell as one body */
            float qv = 1.0f / (1.0f + d2), cq = q->count * qv;
            sz += cq;
            sfx += cq * qv * dx;
            sfy += cq * qv * dy;
            k = q->skip;
        } else if (q->first >= 0) { /* an opened leaf: its points one by one, not i itself */
            for (int s = q->first; s < q->first + q->count; s++) {
                int j = t->idx[s];
                if (j == i) continue;
                float ex = xi - y[2 * j], ey = yi - y[2 * j + 1];
                float qv = 1.0f / (1.0f + ex * ex + ey * ey);
                sz += qv;
                sfx += qv * qv * ex;
                sfy += qv * qv * ey;
            }
            k = q->skip;
        } else {
            k++; /* open the cell: its first child follows it */
        }
    }
    *fx = sfx;
    *fy = sfy;
    *z = sz;
}

/* ==== optimisation ========================================================== */

/* Exact KL(P || Q) for the final embedding. */
static double kl_divergence(const Csr *P, const double *y, int n) {
    /* row sums by one thread each, added in order: the same value for any thread count */
    double *zrow = dg_xmalloc((size_t)n * sizeof(double));
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_POINTS)
#endif
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < n; j++) {
            if (i == j) continue;
            double dx = y[2 * i] - y[2 * j], dy = y[2 * i + 1] - y[2 * j + 1];
            s += 1.0 / (1.0 + dx * dx + dy * dy);
        }
        zrow[i] = s;
    }
    double z = 0;
    for (int i = 0; i < n; i++) z += zrow[i];
    free(zrow);
    double kl = 0;
    for (int i = 0; i < n; i++)
        for (int t = P->row[i]; t < P->row[i + 1]; t++) {
            int j = P->col[t];
            double dx = y[2 * i] - y[2 * j], dy = y[2 * i + 1] - y[2 * j + 1];
            double q = 1.0 / (1.0 + dx * dx + dy * dy) / z;
            if (P->val[t] > 0) kl += P->val[t] * log(P->val[t] / (q > 1e-300 ? q : 1e-300));
        }
    return kl;
}

/* The starting layout: the first two principal components, scaled so the
 * first has standard deviation 1e-4 (scikit-learn's init="pca"). -1 when
 * the PCA fails. */
static int pca_layout(const float *x, int n, int d, double *y) {
    Pca pca;
    int pd = d >= 2 ? 2 : 1;
    if (pca_fit(&pca, x, n, d, pd) < 0) return -1;
    float *proj = dg_xmalloc((size_t)n * pd * sizeof(float));
    pca_transform(&pca, x, n, pd, proj);
    pca_free(&pca);
    for (int i = 0; i < n; i++) {
        y[2 * i] = proj[(size_t)i * pd];
        y[2 * i + 1] = pd == 2 ? proj[(size_t)i * pd + 1] : 0;
    }
    free(proj);
    double sd = 0, mean0 = 0;
    for (int i = 0; i < n; i++) mean0 += y[2 * i];
    mean0 /= n;
    for (int i = 0; i < n; i++) sd += (y[2 * i] - mean0) * (y[2 * i] - mean0);
    sd = sqrt(sd / n);
    double scale = sd > 0 ? 1e-4 / sd : 1;
    for (int i = 0; i < 2 * n; i++) y[i] *= scale;
    return 0;
}

/* The sparse joint probabilities P over each point's K nearest neighbours. */
static void input_affinities(const float *x, int n, int d, int K, double perplexity, Csr *P) {
    int *nbr = dg_xmalloc((size_t)n * K * sizeof(int));
    float *dist = dg_xmalloc((size_t)n * K * sizeof(float));
    knn(x, n, d, K, nbr, dist);
    float *cond = dg_xmalloc((size_t)n * K * sizeof(float));
    conditional_p(dist, n, K, perplexity, cond);
    symmetrize(nbr, cond, n, K, P);
    free(nbr);
    free(dist);
    free(cond);
}

/* The gradient descent's state over the n points' 2-D positions. */
typedef struct {
    int n;
    double *y, *attr, *rep, *update, *gains, *zpart;
    float *yf; /* the tree's float copy of y */
    QTree tree;
} Descent;

static void descent_init(Descent *g, int n) {
    memset(g, 0, sizeof *g);
    g->n = n;
    g->y = dg_xmalloc((size_t)n * 2 * sizeof(double));
    g->attr = dg_xmalloc((size_t)n * 2 * sizeof(double));
    g->rep = dg_xmalloc((size_t)n * 2 * sizeof(double));
    g->update = dg_xcalloc((size_t)n * 2, sizeof(double));
    g->gains = dg_xmalloc((size_t)n * 2 * sizeof(double));
    g->zpart = dg_xmalloc((size_t)n * sizeof(double));
    for (int i = 0; i < 2 * n; i++) g->gains[i] = 1;
    g->tree.idx = dg_xmalloc((size_t)n * sizeof(int));
    g->yf = dg_xmalloc((size_t)n * 2 * sizeof(float));
}

static void descent_free(Descent *g) {
    free(g->y);
    free(g->attr);
    free(g->rep);
    free(g->update);
    free(g->gains);
    free(g->zpart);
    free(g->tree.node);
    free(g->tree.idx);
    free(g->yf);
}

/* Every point's attractive force (over P, times the exaggeration) and its
 * repulsive force and share of Z (over the quadtree), each point by one
 * thread in a fixed order. Returns Z. */
static double forces(Descent *g, const Csr *P, double exag, double theta) {
    const int n = g->n;
    const double *y = g->y;
    for (int i = 0; i < 2 * n; i++) g->yf[i] = (float)y[i];
    qt_rebuild(&g->tree, g->yf, n);
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 64) if (n >= PARALLEL_MIN_POINTS)
#endif
    for (int i = 0; i < n; i++) {
        double ax = 0, ay = 0;
        for (int t = P->row[i]; t < P->row[i + 1]; t++) {
            int j = P->col[t];
            double dx = y[2 * i] - y[2 * j], dy = y[2 * i + 1] - y[2 * j + 1];
            double q = 1.0 / (1.0 + dx * dx + dy * dy);
            ax += P->val[t] * q * dx;
            ay += P->val[t] * q * dy;
        }
        g->attr[2 * i] = exag * ax;
        g->attr[2 * i + 1] = exag * ay;
        qt_repulse(&g->tree, g->yf, i, (float)(theta * theta), &g->rep[2 * i], &g->rep[2 * i + 1], &g->zpart[i]);
    }
    double z = 0;
    for (int i = 0; i < n; i++) z += g->zpart[i];
    return z > 0 ? z : 1e-12;
}

/* One step of momentum descent with delta-bar-delta gains (the step grows
 * where the direction holds), then the layout re-centred. Returns the
 * gradient's squared norm. */
static double descent_step(Descent *g, double z, double lr, double momentum) {
    const int n = g->n;
    double gnorm = 0, mx = 0, my = 0;
    for (int i = 0; i < 2 * n; i++) {
        double grad = 4 * (g->attr[i] - g->rep[i] / z);
        gnorm += grad * grad;
        g->gains[i] = (g->update[i] * grad < 0) ? g->gains[i] + 0.2 : g->gains[i] * 0.8;
        if (g->gains[i] < 0.01) g->gains[i] = 0.01;
        g->update[i] = momentum * g->update[i] - lr * g->gains[i] * grad;
        g->y[i] += g->update[i];
    }
    for (int i = 0; i < n; i++) {
        mx += g->y[2 * i];
        my += g->y[2 * i + 1];
    }
    mx /= n;
    my /= n;
    for (int i = 0; i < n; i++) {
        g->y[2 * i] -= mx;
        g->y[2 * i + 1] -= my;
    }
    return gnorm;
}

int tsne_run(const float *x, int n, int d, const TsneConfig *cfg, float *yout, TsneStats *stats) {
    DG_ASSERT(n >= 3 && d >= 1);
    double t0 = now_seconds();
    memset(stats, 0, sizeof *stats);
    double perplexity = cfg->perplexity;
    if (3 * perplexity > n - 1) perplexity = (n - 1) / 3.0;
    int K = (int)(3 * perplexity + 1);
    if (K > n - 1) K = n - 1;
    stats->neighbours = K;

    Descent g;
    descent_init(&g, n);
    if (pca_layout(x, n, d, g.y) < 0) { /* (before the big allocations of P) */
        descent_free(&g);
        return -1;
    }
    Csr P;
    input_affinities(x, n, d, K, perplexity, &P);
    const double lr = cfg->learning_rate > 0 ? cfg->learning_rate : fmax(n / cfg->early_exaggeration / 4, 50);
    for (int it = 0; it < cfg->iters; it++) {
        const int exploring = it < cfg->exaggeration_iters;
        if (it == cfg->exaggeration_iters) {
            /* scikit-learn runs the two phases as separate descents: fresh state */
            memset(g.update, 0, (size_t)n * 2 * sizeof(double));
            for (int i = 0; i < 2 * n; i++) g.gains[i] = 1;
        }
        double z = forces(&g, &P, exploring ? cfg->early_exaggeration : 1.0, cfg->theta);
        double gnorm = descent_step(&g, z, lr, exploring ? 0.5 : 0.8);
        if (cfg->verbose && ((it + 1) % 50 == 0 || it == 0))
            fprintf(stderr, "t-SNE: iteration %d/%d, gradient norm %.3g, %.1fs\n", it + 1, cfg->iters, sqrt(gnorm),
                    now_seconds() - t0);
    }
    for (int i = 0; i < 2 * n; i++) yout[i] = (float)g.y[i];
    stats->kl = kl_divergence(&P, g.y, n);
    stats->seconds = now_seconds() - t0;
    descent_free(&g);
    free(P.row);
    free(P.col);
    free(P.val);
    return 0;
}
