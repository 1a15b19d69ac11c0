/* dist_train.c — data-parallel steps, exact and sync modes; see
 * dist_train.h. */
#include "train/dist_train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/blas.h"
#include "core/check.h"
#include "core/util.h"
#include "dist/dist.h"

/* A conv2d layer and where its chunk partials sit in the fused buffer. */
typedef struct {
    Layer *l;
    size_t off;     /* floats into each of the fused buffer's T blocks */
    size_t nw, nwb; /* weight floats; floats of one chunk partial (weights then bias) */
} ConvPart;

/* A layer run on the whole batch on every rank (linear, batchnorm): its
 * own kind and its gathered rows. */
typedef struct {
    const LayerKind *kind; /* the layer's own kind (restored at the end); NULL: not such a layer */
    int in, out;           /* floats per row of x and y */
    float *x, *y, *dx, *dy; /* (max_batch, in or out) */
} WholePart;

/* A layer under sync mode's SyncBN: a batch norm (its own kind and the
 * per-channel figures exchanged, 2C doubles each way) or the ReLU fused
 * into one. */
typedef enum { RELU_NONE, RELU_AFTER, RELU_BEFORE } SyncRelu;
typedef struct {
    const LayerKind *kind; /* own kind, restored at the end; NULL: a layer left alone */
    double *sums;          /* (2C) forward: this rank's mean, M2; backward: sum dy, sum dy*(x-mean); NULL: a ReLU */
    double *all;           /* (N * 2C) forward: every rank's mean and M2, in rank order */
    SyncRelu relu;         /* a batch norm: the ReLU right after or before it runs inside it */
    Layer *pair;           /* that ReLU */
} SyncPart;

struct DistTrain {
    Model *m;
    DistMode mode;
    SyncPart *sync;         /* sync mode: per layer index */
    double sync_comm;       /* sync mode: seconds in the batch norms' all-reduces */
    int N, T, maxrows;      /* ranks, threads per rank, most rows a rank holds */
    int n_conv;
    ConvPart *conv;
    WholePart *whole;       /* per layer index */
    size_t fused_n;         /* floats of one block: every conv layer's dw and db */
    float *fused;           /* T blocks of fused_n: block t holds every conv layer's chunk t */
    float *send, *recv;     /* row exchange: maxrows rows; N * maxrows rows (widest layer) */
    int lo, n, B;           /* the current shard and global batch; B 0 between steps */
    double comm;            /* seconds exchanging */
    int unfused;            /* the model's unfused_training before the run */
    long steps;
};

/* The distributed run (the whole-batch layers' kind functions have no
 * context argument): one per process at a time. */
static DistTrain *active;
/* linear's and batchnorm's kinds with the two functions below. */
static LayerKind whole_kind[LAYER_KIND_COUNT];

void dist_train_shard(int B, int *lo, int *n) {
    const long N = dist_size(), r = dist_rank();
    *lo = (int)(r * B / N);
    *n = (int)((r + 1) * B / N) - *lo;
}

/* Chunks a conv backward over n images cuts (conv2d/plan.h's conv_chunks). */
static int chunks(int n, int nthreads) {
    if (nthreads > n) nthreads = n;
    return nthreads < 1 ? 1 : nthreads;
}

/* ==== linear and batchnorm: the whole batch on every rank ================= */

/* all (B, width) = every rank's rows of mine (n, width) in batch order. */
static void gather_rows(DistTrain *d, const float *mine, int n, int width, float *all) {
    const size_t stride = (size_t)d->maxrows * width;
    memcpy(d->send, mine, (size_t)n * width * sizeof(float));
    double t0 = now_seconds();
    dist_allgather(d->send, stride * sizeof(float), d->recv);
    d->comm += now_seconds() - t0;
    for (int r = 0, row = 0; r < d->N; r++) {
        const long lo = (long)r * d->B / d->N, rows = (long)(r + 1) * d->B / d->N - lo;
        memcpy(all + (size_t)row * width, d->recv + (size_t)r * stride, (size_t)rows * width * sizeof(float));
        row += (int)rows;
    }
}

/* The layer's own forward over the gathered batch, products cut as the
 * N*T-thread process cuts them; this rank's rows of y kept. Outside a
 * step (validation, the same on every rank) the layer's own forward. */
static void forward_whole(Layer *l, int n, int training) {
    DistTrain *d = active;
    const WholePart *p = &d->whole[l->index];
    if (!d->B || !training) {
        p->kind->forward(l, n, training);
        return;
    }
    gather_rows(d, l->x, n, p->in, p->x);
    Layer whole = *l;
    whole.x = whole.xs[0] = p->x;
    whole.y = p->y;
    dg_sgemm_set_blocks(d->N * d->T);
    p->kind->forward(&whole, d->B, training);
    dg_sgemm_set_blocks(0);
    memcpy(l->y, p->y + (size_t)d->lo * p->out, (size_t)n * p->out * sizeof(float));
}

/* The layer's own backward over the gathered batch: its parameter
 * gradients of the whole batch (the same on every rank) and this rank's
 * rows of dx. */
static void backward_whole(Layer *l, int n) {
    DistTrain *d = active;
    const WholePart *p = &d->whole[l->index];
    gather_rows(d, l->dy, n, p->out, p->dy);
    Layer whole = *l;
    whole.x = whole.xs[0] = p->x;
    whole.dy = p->dy;
    whole.dx = whole.dxs[0] = l->dx ? p->dx : NULL;
    dg_sgemm_set_blocks(d->N * d->T);
    p->kind->backward(&whole, d->B);
    dg_sgemm_set_blocks(0);
    if (l->dx) memcpy(l->dx, p->dx + (size_t)d->lo * p->in, (size_t)n * p->in * sizeof(float));
}

/* ==== conv2d layers: chunk partials in the fused buffer ==================== */

/* model_backward's hook: keep a conv layer's chunk partials before the
 * next layer's backward reuses the shared buffer. */
static void keep_partials(void *ctx, Layer *l, int n) {
    DistTrain *d = ctx;
    if (l->type != LAYER_CONV2D || n <= 0) return;
    for (int k = 0; k < d->n_conv; k++) {
        const ConvPart *p = &d->conv[k];
        if (p->l != l) continue;
        const int used = chunks(n, l->nthreads);
        for (int t = 0; t < d->T; t++) {
            float *dst = d->fused + (size_t)t * d->fused_n + p->off;
            if (t < used) memcpy(dst, l->partial + (size_t)t * p->nwb, p->nwb * sizeof(float));
            else memset(dst, 0, p->nwb * sizeof(float));
        }
    }
}

/* dw and db from the reduced block (every rank's chunk partials added in
 * global chunk order from +0: dist_allreduce_terms_f32), added onto the
 * zeroed gradients as conv2d/backward.c's backward_reduce does. */
static void reduce_conv(const DistTrain *d, const ConvPart *p) {
    Layer *l = p->l;
    float *dw = l->dparam, *db = l->bias ? l->dparam + p->nw : NULL;
    const float *acc = d->fused + p->off;
    for (size_t i = 0; i < p->nw; i++) dw[i] = 0.0f + acc[i];
    for (size_t k = 0; db && k < p->nwb - p->nw; k++) db[k] = 0.0f + acc[p->nw + k];
}

/* ==== sync mode: SyncBN ==================================================== */

/* Below this many elements a batch norm's channel loops stay on one thread
 * (ops/batchnorm.c's BN_PAR_MIN). */
#define SYNC_PAR_MIN (1 << 15)

/* batchnorm's kind with the two functions below; relu's that does nothing
 * inside a step (its batch norm does its work). */
static LayerKind sync_bn_kind, sync_relu_kind;

/* A plane's sums run in LANES float lanes, element k in lane k % LANES,
 * products added with one rounding (fmaf), as ops/batchnorm.c's vectors
 * do (rounded products drifted from one process's sums: 1e-4 against
 * 1e-8 of cnn-bn's weights after 8 steps); the lanes are then added in
 * order into a double: one order whatever the code path (fused ReLU or
 * not), and loops GCC vectorises without reassociating. */
#define LANES 16
/* Planes summed in lanes where ops/batchnorm.c sums in vectors (AVX-512,
 * planes of 16 floats or more); elsewhere both add double terms. Keeping
 * to one process's choice keeps the two close (-O0 builds: cnn-bn 1e-2
 * apart after 20 steps with lanes, 3e-6 with double terms). */
#ifdef __AVX512F__
#define VEC_SUMS(L) ((L) >= 16)
#else
#define VEC_SUMS(L) 0
#endif
static inline double lanes_sum(const float *lane) {
    double s = 0;
    for (int j = 0; j < LANES; j++) s += lane[j];
    return s;
}

/* A batch norm's input as read: v, or max(v, 0) with the ReLU before it
 * fused in (exactly relu_forward's v > 0 ? v : 0). */
static inline float relu_value(float v, int relu_in) { return relu_in && !(v > 0.0f) ? 0.0f : v; }

/* sums[c], sums[C + c] = this rank's mean and M2 (sum of squared
 * deviations from it) of channel c over its n planes, in double. As
 * ops/batchnorm.c does: d = x - K with K the channel's first value (a
 * sample: E[d^2] - E[d]^2 stays clear of cancellation), each plane in
 * float lanes (LANES), the planes added in double. */
static void bn_local_moments(const Layer *l, const float *in, int relu_in, int n, double *sums) {
    const int C = l->in.c, L = l->in.h * l->in.w;
    const size_t cstride = (size_t)C * L;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if ((size_t)n * C * L >= SYNC_PAR_MIN)
#endif
    for (int c = 0; c < C; c++) {
        const float K = n > 0 && L > 0 ? relu_value(in[(size_t)c * L], relu_in) : 0.0f;
        double s = 0, q = 0;
        for (int i = 0; i < n; i++) {
            const float *x = in + i * cstride + (size_t)c * L;
            if (!VEC_SUMS(L)) { /* ops/batchnorm.c's scalar path: double terms */
                for (int k = 0; k < L; k++) {
                    const double v = (double)relu_value(x[k], relu_in) - K;
                    s += v, q += v * v;
                }
                continue;
            }
            float ps[LANES] = {0}, pq[LANES] = {0};
            int k = 0;
            for (; k + LANES <= L; k += LANES)
                for (int j = 0; j < LANES; j++) {
                    const float v = relu_value(x[k + j], relu_in) - K;
                    ps[j] += v;
                    pq[j] = fmaf(v, v, pq[j]);
                }
            for (int j = 0; k < L; k++, j++) {
                const float v = relu_value(x[k], relu_in) - K;
                ps[j] += v;
                pq[j] = fmaf(v, v, pq[j]);
            }
            s += lanes_sum(ps), q += lanes_sum(pq);
        }
        const double nl = (double)n * L, md = nl > 0 ? s / nl : 0, m2 = q - s * md;
        sums[c] = K + md, sums[C + c] = m2 > 0 ? m2 : 0;
    }
}

/* sums[c], sums[C + c] = sum dy and sum dy * (x - mean) over this rank's
 * n planes of channel c (x - mean in float, as ops/batchnorm.c's; each
 * plane in float lanes, the planes added in double). */
static void bn_local_grad_sums(const Layer *l, const SyncPart *p, int n, double *sums) {
    const int C = l->in.c, L = l->in.h * l->in.w;
    const size_t cstride = (size_t)C * L;
    const int relu_in = p->relu == RELU_BEFORE, relu_out = p->relu == RELU_AFTER;
    const float *in = relu_in ? p->pair->x : l->x, *dy = relu_out ? p->pair->dy : l->dy;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if ((size_t)n * C * L >= SYNC_PAR_MIN)
#endif
    for (int c = 0; c < C; c++) {
        const float mean = l->scratch[c];
        const float scale = (float)(l->param[c] * (double)l->scratch[C + c]), shift = l->param[C + c];
        double a = 0, b = 0;
        for (int i = 0; i < n; i++) {
            const float *x = in + i * cstride + (size_t)c * L, *g = dy + i * cstride + (size_t)c * L;
            if (!VEC_SUMS(L)) { /* ops/batchnorm.c's scalar path: double terms */
                for (int k = 0; k < L; k++) {
                    const float dd = relu_value(x[k], relu_in) - mean;
                    const float gk = relu_out && !(fmaf(dd, scale, shift) > 0.0f) ? 0.0f : g[k];
                    a += gk, b += (double)gk * dd;
                }
                continue;
            }
            float pa[LANES] = {0}, pb[LANES] = {0};
            int k = 0;
            for (; k + LANES <= L; k += LANES)
                for (int j = 0; j < LANES; j++) {
                    const float dd = relu_value(x[k + j], relu_in) - mean;
                    const float gk = relu_out && !(fmaf(dd, scale, shift) > 0.0f) ? 0.0f : g[k + j];
                    pa[j] += gk;
                    pb[j] = fmaf(gk, dd, pb[j]);
                }
            for (int j = 0; k < L; k++, j++) {
                const float dd = relu_value(x[k], relu_in) - mean;
                const float gk = relu_out && !(fmaf(dd, scale, shift) > 0.0f) ? 0.0f : g[k];
                pa[j] += gk;
                pb[j] = fmaf(gk, dd, pb[j]);
            }
            a += lanes_sum(pa), b += lanes_sum(pb);
        }
        sums[c] = a, sums[C + c] = b;
    }
}

/* The fixed-order sum of the 2C sums over the ranks (the same bits on
 * every rank), timed. */
static void bn_allreduce(DistTrain *d, double *sums, int C) {
    const double t0 = now_seconds();
    dist_allreduce_sum_f64(sums, 2 * (size_t)C);
    d->sync_comm += now_seconds() - t0;
}

/* Rows of rank r in the current global batch (dist_train_shard's cut). */
static long shard_rows(const DistTrain *d, int r) {
    return (long)(r + 1) * d->B / d->N - (long)r * d->B / d->N;
}

/* SyncBN's forward (training, inside a step): the statistics of the whole
 * global batch from every rank's mean and M2 (one all-gather of 2C
 * doubles a rank, combined in rank order on every rank), the running statistics moved as
 * one process moves them (PyTorch's unbiased variance over B*L), and this
 * rank's rows normalised with ops/batchnorm.c's formula. Outside a step
 * (validation) or in eval mode: the layer's own forward. */
static void sync_bn_forward(Layer *l, int n, int training) {
    DistTrain *d = active;
    const SyncPart *p = &d->sync[l->index];
    if (!d->B || !training) {
        p->kind->forward(l, n, training);
        return;
    }
    const int C = l->in.c, L = l->in.h * l->in.w;
    const size_t cstride = (size_t)C * L;
    const double NL = (double)d->B * L;
    const int relu_in = p->relu == RELU_BEFORE, relu_out = p->relu == RELU_AFTER;
    const float *in = relu_in ? p->pair->x : l->x;
    float *out = relu_out ? p->pair->y : l->y;
    float *save_mean = l->scratch, *save_rstd = l->scratch + C, *rmean = l->buffer, *rvar = l->buffer + C;
    bn_local_moments(l, in, relu_in, n, p->sums);
    const double t0 = now_seconds();
    dist_allgather(p->sums, 2 * (size_t)C * sizeof(double), p->all);
    d->sync_comm += now_seconds() - t0;
    for (int c = 0; c < C; c++) {
        /* the ranks' (count, mean, M2) combined in rank order (Chan et al.) */
        double mean = 0, m2 = 0;
        for (int r = 0; r < d->N; r++)
            mean += (double)shard_rows(d, r) * L * p->all[(size_t)r * 2 * C + c];
        mean /= NL;
        for (int r = 0; r < d->N; r++) {
            const double dm = p->all[(size_t)r * 2 * C + c] - mean;
            m2 += p->all[(size_t)r * 2 * C + C + c] + (double)shard_rows(d, r) * L * dm * dm;
        }
        const double var = m2 / NL;
        save_mean[c] = (float)mean;
        save_rstd[c] = (float)(1.0 / sqrt(var + l->eps));
        const double unbiased = NL > 1 ? var * NL / (NL - 1) : var;
        rmean[c] = (1.0f - l->momentum) * rmean[c] + l->momentum * (float)mean;
        rvar[c] = (1.0f - l->momentum) * rvar[c] + l->momentum * (float)unbiased;
    }
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if ((size_t)n * C * L >= SYNC_PAR_MIN)
#endif
    for (int c = 0; c < C; c++) {
        const float g = l->param[c], bt = l->param[C + c];
        const float scale = (float)(g * (double)save_rstd[c]), mean = save_mean[c];
        for (int i = 0; i < n; i++) {
            const float *x = in + i * cstride + (size_t)c * L;
            float *y = out + i * cstride + (size_t)c * L;
            if (relu_out)
                for (int k = 0; k < L; k++) {
                    const float z = fmaf(x[k] - mean, scale, bt);
                    y[k] = z > 0.0f ? z : 0.0f;
                }
            else
                for (int k = 0; k < L; k++) y[k] = fmaf(relu_value(x[k], relu_in) - mean, scale, bt);
        }
    }
}

/* SyncBN's backward: sum dy and sum dy*(x - mean) of the whole batch from
 * every rank's sums, this rank's rows of dx from them (ops/batchnorm.c's
 * formula with the global count). dgamma and dbeta are the whole batch's
 * already: rank 0 adds them to its gradient and the others add nothing,
 * so the gradient all-reduce that follows leaves them as one process
 * computes them from these sums. */
static void sync_bn_backward(Layer *l, int n) {
    DistTrain *d = active;
    const SyncPart *p = &d->sync[l->index];
    const int C = l->in.c, L = l->in.h * l->in.w;
    const size_t cstride = (size_t)C * L;
    const double NL = (double)d->B * L;
    const int relu_in = p->relu == RELU_BEFORE, relu_out = p->relu == RELU_AFTER;
    const float *in = relu_in ? p->pair->x : l->x, *dyv = relu_out ? p->pair->dy : l->dy;
    float *dxv = relu_in ? p->pair->dx : l->dx;
    bn_local_grad_sums(l, p, n, p->sums);
    bn_allreduce(d, p->sums, C);
    const int root = dist_rank() == 0;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if ((size_t)n * C * L >= SYNC_PAR_MIN)
#endif
    for (int c = 0; c < C; c++) {
        const float mean = l->scratch[c];
        const double rstd = l->scratch[C + c], g = l->param[c];
        const double sdy = p->sums[c], sdyxhat = p->sums[C + c] * rstd;
        if (root) {
            l->dparam[C + c] += (float)sdy;
            l->dparam[c] += (float)sdyxhat;
        }
        if (!dxv) continue;
        const float k1 = (float)(g * rstd);
        const float k2 = (float)(-g * rstd * rstd * sdyxhat / NL);
        const float k3 = (float)(-g * rstd * sdy / NL);
        const float scale = (float)(g * rstd), shift = l->param[C + c];
        for (int i = 0; i < n; i++) {
            const float *x = in + i * cstride + (size_t)c * L, *dy = dyv + i * cstride + (size_t)c * L;
            float *dx = dxv + i * cstride + (size_t)c * L;
            if (relu_out) /* dy gated where the forward's z > 0 (recomputed, the same bits) */
                for (int k = 0; k < L; k++) {
                    const float dd = x[k] - mean, gk = fmaf(dd, scale, shift) > 0.0f ? dy[k] : 0.0f;
                    dx[k] = k1 * gk + k2 * dd + k3;
                }
            else if (relu_in) /* and through the ReLU before it */
                for (int k = 0; k < L; k++) {
                    const float v = k1 * dy[k] + k2 * (relu_value(x[k], 1) - mean) + k3;
                    dx[k] = x[k] > 0.0f ? v : 0.0f;
                }
            else
                for (int k = 0; k < L; k++) dx[k] = k1 * dy[k] + k2 * (x[k] - mean) + k3;
        }
    }
}

/* The ReLU fused into its batch norm: nothing inside a step; its own
 * forward outside one (validation). */
static void sync_relu_forward(Layer *l, int n, int training) {
    DistTrain *d = active;
    if (!d->B || !training) d->sync[l->index].kind->forward(l, n, training);
}
static void sync_relu_backward(Layer *l, int n) { (void)l, (void)n; }

/* Does layer b read layer a's output, and nothing else does (model.c's
 * condition for its batch norm + ReLU pairs)? */
static int sole_reader(const Model *m, int a, int b) {
    const Layer *lb = &m->layers[b];
    if (lb->n_inputs != 1 || lb->input_ids[0] != a) return 0;
    for (int j = 0; j < m->n_layers; j++)
        for (int k = 0; k < m->layers[j].n_inputs; k++)
            if (j != b && m->layers[j].input_ids[k] == a) return 0;
    return 1;
}

/* Swap every batch norm's kind for SyncBN's (sync mode), a ReLU right
 * after (cnn-bn) or before it (kaggle-deep) fused in as one process fuses
 * such pairs: one pass over the tensor less each way (the same bits as
 * the two layers; DIGITS_TRAIN_FUSION=0 keeps them apart, as model.c). */
static void plan_sync(DistTrain *d) {
    Model *m = d->m;
    const char *env = getenv("DIGITS_TRAIN_FUSION");
    const int fuse = !(env && strcmp(env, "0") == 0);
    d->sync = dg_xcalloc((size_t)m->n_layers, sizeof *d->sync);
    sync_relu_kind = *layer_kinds[LAYER_RELU];
    sync_relu_kind.forward = sync_relu_forward;
    sync_relu_kind.backward = sync_relu_backward;
    for (int i = 0; i < m->n_layers; i++) {
        Layer *l = &m->layers[i];
        if (l->type != LAYER_BATCHNORM) continue;
        SyncPart *p = &d->sync[i];
        p->kind = l->kind;
        p->sums = dg_xmalloc(2 * (size_t)l->in.c * sizeof(double));
        p->all = dg_xmalloc((size_t)d->N * 2 * (size_t)l->in.c * sizeof(double));
        sync_bn_kind = *l->kind;
        sync_bn_kind.forward = sync_bn_forward;
        sync_bn_kind.backward = sync_bn_backward;
        l->kind = &sync_bn_kind;
        int r = -1;
        if (!fuse) continue;
        if (i + 1 < m->n_layers && m->layers[i + 1].type == LAYER_RELU && !d->sync[i + 1].kind &&
            sole_reader(m, i, i + 1))
            r = i + 1, p->relu = RELU_AFTER;
        else if (i > 0 && m->layers[i - 1].type == LAYER_RELU && !d->sync[i - 1].kind && sole_reader(m, i - 1, i))
            r = i - 1, p->relu = RELU_BEFORE;
        if (r < 0) continue;
        p->pair = &m->layers[r];
        d->sync[r].kind = p->pair->kind;
        p->pair->kind = &sync_relu_kind;
    }
}

/* ==== the run ============================================================== */

/* Sort the layers with parameters into conv parts (fused buffer) and
 * whole-batch layers, size the buffers and swap the latter's kinds; -1
 * with dg_set_error for a kind without an exact distributed gradient. */
static int plan_parts(DistTrain *d, int max_batch) {
    Model *m = d->m;
    size_t widest = 0;
    d->conv = dg_xcalloc((size_t)m->n_layers, sizeof *d->conv);
    d->whole = dg_xcalloc((size_t)m->n_layers, sizeof *d->whole);
    for (int i = 0; i < m->n_layers; i++) {
        Layer *l = &m->layers[i];
        if (l->type == LAYER_CONV2D) {
            ConvPart *p = &d->conv[d->n_conv++];
            p->l = l;
            p->off = d->fused_n;
            p->nw = (size_t)l->out_features * l->in.c * l->kernel * l->kernel;
            p->nwb = p->nw + (size_t)l->out_features;
            d->fused_n += p->nwb;
        } else if (l->type == LAYER_LINEAR || l->type == LAYER_BATCHNORM) {
            WholePart *p = &d->whole[i];
            p->in = (int)shape_size(l->in);
            p->out = (int)shape_size(l->out);
            const size_t w = (size_t)(p->in > p->out ? p->in : p->out);
            if (w > widest) widest = w;
            p->x = dg_xmalloc((size_t)max_batch * p->in * sizeof(float));
            p->dx = dg_xmalloc((size_t)max_batch * p->in * sizeof(float));
            p->y = dg_xmalloc((size_t)max_batch * p->out * sizeof(float));
            p->dy = dg_xmalloc((size_t)max_batch * p->out * sizeof(float));
            p->kind = l->kind;
            whole_kind[l->type] = *l->kind;
            whole_kind[l->type].forward = forward_whole;
            whole_kind[l->type].backward = backward_whole;
            l->kind = &whole_kind[l->type];
        } else if (l->n_param) {
            return dg_set_error("layer %d (%s) cannot be trained under mpirun yet", i, l->kind->name);
        }
    }
    d->send = dg_xmalloc(((size_t)d->maxrows * widest + 1) * sizeof(float));
    d->recv = dg_xmalloc(((size_t)d->N * d->maxrows * widest + 1) * sizeof(float));
    return 0;
}

int dist_train_supports(const Model *m) {
    if (model_bf16()) return 0;
    for (int i = 0; i < m->n_layers; i++) {
        const LayerType t = m->layers[i].type;
        if (m->layers[i].n_param && t != LAYER_CONV2D && t != LAYER_LINEAR && t != LAYER_BATCHNORM) return 0;
    }
    return 1;
}

DistTrain *dist_train_start(Model *m, int max_batch, DistMode mode) {
    DG_ASSERT(!active);
    if (model_bf16()) {
        dg_set_error("--precision bf16 cannot be trained under mpirun yet; use fp32");
        return NULL;
    }
    DistTrain *d = dg_xcalloc(1, sizeof *d);
    d->m = m;
    d->N = dist_size();
    d->T = m->nthreads < 1 ? 1 : m->nthreads;
    d->maxrows = (max_batch + d->N - 1) / d->N;
    d->mode = mode;
    if (mode == DIST_SYNC) {
        plan_sync(d);
        d->unfused = m->unfused_training;
        m->unfused_training = 1; /* batch norm and its ReLU as two layers: SyncBN is a layer kind */
        active = d;
        return d;
    }
    if (plan_parts(d, max_batch) < 0) {
        dist_train_free(d);
        return NULL;
    }
    d->fused = dg_xcalloc((size_t)d->T * d->fused_n + 1, sizeof(float));
    d->unfused = m->unfused_training;
    m->unfused_training = 1; /* batch norm and its ReLU as two layers (bit-identical to the pair) */
    m->backward_hook = keep_partials;
    m->backward_hook_ctx = d;
    active = d;
    return d;
}

void dist_train_free(DistTrain *d) {
    if (!d) return;
    Model *m = d->m;
    if (m->backward_hook_ctx == d) m->backward_hook = NULL, m->backward_hook_ctx = NULL;
    if (active == d) m->unfused_training = d->unfused;
    for (int i = 0; d->whole && i < m->n_layers; i++) {
        m->layers[i].noise_row = 0;
        WholePart *p = &d->whole[i];
        if (p->kind) m->layers[i].kind = p->kind;
        free(p->x);
        free(p->dx);
        free(p->y);
        free(p->dy);
    }
    for (int i = 0; d->sync && i < m->n_layers; i++) {
        m->layers[i].noise_row = 0;
        if (d->sync[i].kind) m->layers[i].kind = d->sync[i].kind;
        free(d->sync[i].sums);
        free(d->sync[i].all);
    }
    if (active == d) active = NULL;
    free(d->sync);
    free(d->conv);
    free(d->whole);
    free(d->send);
    free(d->recv);
    free(d->fused);
    free(d);
}

void dist_train_begin(DistTrain *d, int lo, int n, int B) {
    d->lo = lo;
    d->n = n;
    d->B = B;
    for (int i = 0; i < d->m->n_layers; i++) d->m->layers[i].noise_row = (size_t)lo;
}

void dist_train_reduce(DistTrain *d) {
    double t0 = now_seconds();
    if (d->mode == DIST_SYNC) { /* every rank's gradient, summed in rank order: one fused buffer */
        dist_allreduce_sum_f32(d->m->grads, d->m->n_param);
        d->comm += now_seconds() - t0;
        d->steps++;
        d->B = 0;
        return;
    }
    dist_allreduce_terms_f32(d->fused, d->fused_n, d->T);
    d->comm += now_seconds() - t0;
    d->steps++;
    for (int k = 0; k < d->n_conv; k++) reduce_conv(d, &d->conv[k]);
    d->B = 0;
}

void dist_train_xent_backward(float *dlogits, const float *probs, const uint8_t *labels, int n, int B) {
    const float inv = B ? 1.0f / (float)B : 0.0f;
    for (int i = 0; i < n; i++) {
        const float *p = probs + (size_t)i * MODEL_NUM_CLASSES;
        float *d = dlogits + (size_t)i * MODEL_NUM_CLASSES;
        for (int k = 0; k < MODEL_NUM_CLASSES; k++) d[k] = p[k] * inv;
        d[labels[i]] = (p[labels[i]] - 1.0f) * inv;
    }
}

double dist_train_comm_seconds(const DistTrain *d, long *steps, size_t *bytes_per_step) {
    if (steps) *steps = d->steps;
    if (d->mode == DIST_SYNC) {
        size_t sums = 0;
        for (int i = 0; i < d->m->n_layers; i++)
            if (d->sync[i].kind) sums += 4 * (size_t)d->m->layers[i].in.c; /* 2C each way */
        if (bytes_per_step) *bytes_per_step = d->m->n_param * sizeof(float) + sums * sizeof(double);
        return d->comm + d->sync_comm;
    }
    if (bytes_per_step) {
        size_t rows = 0;
        for (int i = 0; i < d->m->n_layers; i++)
            if (d->whole[i].kind) rows += (size_t)d->whole[i].in + (size_t)d->whole[i].out;
        *bytes_per_step = ((size_t)d->T * d->fused_n + rows * d->maxrows) * sizeof(float);
    }
    return d->comm;
}
