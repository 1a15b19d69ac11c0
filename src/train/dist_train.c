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
    size_t off;     /* floats into the fused buffer */
    size_t nw, nwb; /* weight floats; floats of one chunk partial (weights then bias) */
} ConvPart;

/* A linear layer, run on the whole batch: its gathered rows. */
typedef struct {
    const LayerKind *kind; /* the layer's own kind (restored at the end) */
    int D, M;
    float *x, *y, *dx, *dy; /* (max_batch, D or M) */
} LinearPart;

struct DistTrain {
    Model *m;
    int N, T, maxrows;      /* ranks, threads per rank, most rows a rank holds */
    int n_conv;
    ConvPart *conv;
    LinearPart *lin;        /* per layer index (kind NULL: not linear) */
    size_t fused_n;         /* floats each rank sends per step */
    float *fused, *all;     /* this rank's buffer; every rank's (N * fused_n) */
    float *send, *recv;     /* row exchange: maxrows rows; N * maxrows rows (widest layer) */
    int lo, n, B;           /* the current shard and global batch; B 0 between steps */
    double comm;            /* seconds exchanging */
    long steps;
};

/* The distributed run (the linear layers' kind functions have no context
 * argument): one per process at a time. */
static DistTrain *active;
/* linear's kind with the two functions below (set up from the layer's own). */
static LayerKind linear_all_kind;

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

/* ==== linear layers: the whole batch on every rank ======================== */

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

/* The layer's own forward over the gathered batch, its products cut as
 * the N*T-thread process cuts them; this rank's rows of y kept. Outside a
 * step (validation, on every rank alike) the layer's own forward. */
static void linear_forward_all(Layer *l, int n, int training) {
    DistTrain *d = active;
    LinearPart *p = &d->lin[l->index];
    if (!d->B || !training) {
        p->kind->forward(l, n, training);
        return;
    }
    gather_rows(d, l->x, n, p->D, p->x);
    Layer whole = *l;
    whole.x = whole.xs[0] = p->x;
    whole.y = p->y;
    dg_sgemm_set_blocks(d->N * d->T);
    p->kind->forward(&whole, d->B, training);
    dg_sgemm_set_blocks(0);
    memcpy(l->y, p->y + (size_t)d->lo * p->M, (size_t)n * p->M * sizeof(float));
}

/* The layer's own backward over the gathered batch: dW and db of the
 * whole batch (the same on every rank), this rank's rows of dx. */
static void linear_backward_all(Layer *l, int n) {
    DistTrain *d = active;
    LinearPart *p = &d->lin[l->index];
    gather_rows(d, l->dy, n, p->M, p->dy);
    Layer whole = *l;
    whole.x = whole.xs[0] = p->x;
    whole.dy = p->dy;
    whole.dx = whole.dxs[0] = l->dx ? p->dx : NULL;
    dg_sgemm_set_blocks(d->N * d->T);
    p->kind->backward(&whole, d->B);
    dg_sgemm_set_blocks(0);
    if (l->dx) memcpy(l->dx, p->dx + (size_t)d->lo * p->D, (size_t)n * p->D * sizeof(float));
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
        float *dst = d->fused + p->off;
        const size_t used = (size_t)chunks(n, l->nthreads) * p->nwb;
        memcpy(dst, l->partial, used * sizeof(float));
        memset(dst + used, 0, ((size_t)d->T * p->nwb - used) * sizeof(float));
    }
}

/* dw and db = every rank's chunk partials added in global chunk order from
 * +0, onto the zeroed gradients (conv2d.c's backward_reduce). */
static void reduce_conv(const DistTrain *d, const ConvPart *p) {
    Layer *l = p->l;
    float *dw = l->dparam, *db = l->bias ? l->dparam + p->nw : NULL;
    const size_t count = db ? p->nwb : p->nw;
    for (size_t i = 0; i < count; i++) {
        float acc = 0.0f;
        for (int r = 0; r < d->N; r++) {
            const float *src = d->all + (size_t)r * d->fused_n + p->off + i;
            for (int t = 0; t < d->T; t++) acc += src[(size_t)t * p->nwb];
        }
        if (i < p->nw) dw[i] = 0.0f + acc;
        else db[i - p->nw] = 0.0f + acc;
    }
}

/* ==== the run ============================================================== */

/* Sort the layers with parameters into conv and linear parts and size the
 * buffers; -1 with dg_set_error for a kind without an exact distributed
 * gradient. */
static int plan_parts(DistTrain *d, int max_batch) {
    Model *m = d->m;
    size_t widest = 0;
    d->conv = dg_xcalloc((size_t)m->n_layers, sizeof *d->conv);
    d->lin = dg_xcalloc((size_t)m->n_layers, sizeof *d->lin);
    for (int i = 0; i < m->n_layers; i++) {
        Layer *l = &m->layers[i];
        if (l->n_param == 0) continue;
        if (l->type == LAYER_CONV2D) {
            ConvPart *p = &d->conv[d->n_conv++];
            p->l = l;
            p->off = d->fused_n;
            p->nw = (size_t)l->out_features * l->in.c * l->kernel * l->kernel;
            p->nwb = p->nw + (size_t)l->out_features;
            d->fused_n += (size_t)d->T * p->nwb;
        } else if (l->type == LAYER_LINEAR) {
            LinearPart *p = &d->lin[i];
            p->D = (int)shape_size(l->in);
            p->M = l->out_features;
            const size_t w = (size_t)(p->D > p->M ? p->D : p->M);
            if (w > widest) widest = w;
            p->x = dg_xmalloc((size_t)max_batch * p->D * sizeof(float));
            p->dx = dg_xmalloc((size_t)max_batch * p->D * sizeof(float));
            p->y = dg_xmalloc((size_t)max_batch * p->M * sizeof(float));
            p->dy = dg_xmalloc((size_t)max_batch * p->M * sizeof(float));
        } else {
            return dg_set_error("layer %d (%s) cannot be trained under mpirun yet: batch norm needs its statistics "
                                "synchronised across ranks (SyncBN), which this build does not do",
                                i, l->kind->name);
        }
    }
    d->send = dg_xmalloc(((size_t)d->maxrows * widest + 1) * sizeof(float));
    d->recv = dg_xmalloc(((size_t)d->N * d->maxrows * widest + 1) * sizeof(float));
    return 0;
}

/* The linear layers run as linear_all_kind while the run lasts. */
static void swap_linear_kinds(DistTrain *d) {
    for (int i = 0; i < d->m->n_layers; i++) {
        Layer *l = &d->m->layers[i];
        if (l->type != LAYER_LINEAR) continue;
        d->lin[i].kind = l->kind;
        linear_all_kind = *l->kind;
        linear_all_kind.forward = linear_forward_all;
        linear_all_kind.backward = linear_backward_all;
        l->kind = &linear_all_kind;
    }
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
    d->fused = dg_xcalloc(d->fused_n + 1, sizeof(float));
    d->all = dg_xmalloc(((size_t)d->N * d->fused_n + 1) * sizeof(float));
    swap_linear_kinds(d);
    m->backward_hook = keep_partials;
    m->backward_hook_ctx = d;
    active = d;
    return d;
}

void dist_train_free(DistTrain *d) {
    if (!d) return;
    Model *m = d->m;
    if (m->backward_hook_ctx == d) m->backward_hook = NULL, m->backward_hook_ctx = NULL;
    for (int i = 0; i < m->n_layers; i++) {
        m->layers[i].noise_row = 0;
        LinearPart *p = &d->lin[i];
        if (p->kind) m->layers[i].kind = p->kind;
        free(p->x);
        free(p->dx);
        free(p->y);
        free(p->dy);
    }
    if (active == d) active = NULL;
    free(d->conv);
    free(d->lin);
    free(d->send);
    free(d->recv);
    free(d->fused);
    free(d->all);
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
    dist_allgather(d->fused, d->fused_n * sizeof(float), d->all);
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
            if (d->lin[i].kind) rows += (size_t)d->lin[i].D + (size_t)d->lin[i].M;
        *bytes_per_step = (d->fused_n + rows * d->maxrows) * sizeof(float);
    }
    return d->comm;
}
