/* dist_train.c — data-parallel steps; see dist_train.h. */
#include "train/dist_train.h"

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

struct DistTrain {
    Model *m;
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

/* Chunks a conv backward over n images cuts (conv2d.c's chunk_count). */
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
 * zeroed gradients as conv2d.c's backward_reduce does. */
static void reduce_conv(const DistTrain *d, const ConvPart *p) {
    Layer *l = p->l;
    float *dw = l->dparam, *db = l->bias ? l->dparam + p->nw : NULL;
    const float *acc = d->fused + p->off;
    for (size_t i = 0; i < p->nw; i++) dw[i] = 0.0f + acc[i];
    for (size_t k = 0; db && k < p->nwb - p->nw; k++) db[k] = 0.0f + acc[p->nw + k];
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

DistTrain *dist_train_start(Model *m, int max_batch) {
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
    if (active == d) active = NULL;
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
    if (bytes_per_step) {
        size_t rows = 0;
        for (int i = 0; i < d->m->n_layers; i++)
            if (d->whole[i].kind) rows += (size_t)d->whole[i].in + (size_t)d->whole[i].out;
        *bytes_per_step = ((size_t)d->T * d->fused_n + rows * d->maxrows) * sizeof(float);
    }
    return d->comm;
}
