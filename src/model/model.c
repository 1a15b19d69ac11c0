/* model.c — memory layout, forward/backward over the layer list, the
 * summary table, and finding zoo specs. See model.h. */
#include "model/model.h"
#include "ops/ops.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/check.h"
#include "core/suggest.h"
#include "core/util.h"

/* ==== finding and building from a spec ==================================== */

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

#ifndef DG_DATADIR
#define DG_DATADIR "/usr/local/share/digits" /* the install prefix's data folder (Makefile DATADIR) */
#endif

int model_dirs(char dirs[][PATH_MAX], int max, int with_cwd) {
    int n = 0;
    const char *env = getenv("DIGITS_MODELS");
    if (env && *env && n < max) snprintf(dirs[n++], PATH_MAX, "%s", env);
    if (with_cwd && n < max) snprintf(dirs[n++], PATH_MAX, "models");
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) *slash = '\0';
        if (n < max) snprintf(dirs[n++], PATH_MAX, "%.*s/models", PATH_MAX - 8, exe);
        if (n < max) snprintf(dirs[n++], PATH_MAX, "%.*s/../models", PATH_MAX - 16, exe);
    }
    if (n < max) snprintf(dirs[n++], PATH_MAX, "%s/models", DG_DATADIR);
    return n;
}

/* Look for DIR/rel in every model folder (model_dirs); 0 with the path, or
 * -1 with the folders searched listed in `looked` (", "-separated). */
static int find_in_model_dirs(const char *rel, int with_cwd, char *path, size_t len, char *looked, size_t llen) {
    char dirs[MODEL_MAX_DIRS][PATH_MAX];
    int n = model_dirs(dirs, MODEL_MAX_DIRS, with_cwd);
    size_t o = 0;
    if (llen) looked[0] = '\0';
    for (int i = 0; i < n; i++) {
        char cand[2 * PATH_MAX], real[PATH_MAX];
        snprintf(cand, sizeof cand, "%.4095s/%.4000s", dirs[i], rel);
        if (!file_exists(cand)) {
            if (o < llen) o += (size_t)snprintf(looked + o, llen - o, "%s%s", i ? ", " : "", dirs[i]);
            continue;
        }
        /* absolute folders: shown without "/../" */
        snprintf(path, len, "%s", dirs[i][0] == '/' && realpath(cand, real) ? real : cand);
        return 0;
    }
    return -1;
}

/* Adds the NAME of each DIR/NAME.spec to names[*n..cap) (owned strings). */
static void zoo_list_dir(const char *dir, char **names, int *n, int cap) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) && *n < cap) {
        size_t l = strlen(e->d_name);
        if (l > 5 && strcmp(e->d_name + l - 5, ".spec") == 0) names[(*n)++] = strndup(e->d_name, l - 5);
    }
    closedir(d);
}

/* " Did you mean 'cnn-bn'?" for a mistyped zoo name (into out, "" if no zoo
 * name, nor svm, is close): the names in the folders model_find_spec
 * searches (model_dirs). */
static void zoo_suggestion(const char *name, char *out, size_t len) {
    enum { CAP = 256 };
    char *names[CAP];
    int n = 0;
    char dirs[MODEL_MAX_DIRS][PATH_MAX];
    int nd = model_dirs(dirs, MODEL_MAX_DIRS, 1);
    for (int i = 0; i < nd; i++) zoo_list_dir(dirs[i], names, &n, CAP);
    if (n < CAP) names[n++] = strdup("svm"); /* train --model svm, the classical baseline */
    const char *best = suggest_closest(name, (const char *const *)names, n);
    if (best) snprintf(out, len, " Did you mean '%s'?", best);
    else out[0] = '\0';
    for (int i = 0; i < n; i++) free(names[i]);
}

int model_find_spec(const char *name, char *path, size_t len) {
    if (strchr(name, '/') || strstr(name, ".spec")) {
        snprintf(path, len, "%s", name);
        return file_exists(path) ? 0 : dg_set_error("%s: no such spec file", name);
    }
    char rel[300], looked[4 * PATH_MAX];
    snprintf(rel, sizeof rel, "%.280s.spec", name);
    if (find_in_model_dirs(rel, 1, path, len, looked, sizeof looked) == 0) return 0;
    char hint[160];
    zoo_suggestion(name, hint, sizeof hint);
    return dg_set_error("unknown model '%s': no models/%s.spec (zoo names are the files in models/, "
                        "or give a path to a .spec file).%s", name, name, hint);
}

int model_find_pretrained(const char *name, char *path, size_t len) {
    char rel[300], looked[4 * PATH_MAX];
    snprintf(rel, sizeof rel, "pretrained/%.260s.safetensors", name);
    if (find_in_model_dirs(rel, 0, path, len, looked, sizeof looked) == 0) return 0;
    return dg_set_error("no pretrained model '%s': looked for %s in %s (set DIGITS_MODELS to the folder "
                        "holding pretrained/, or train one and pass --model FILE)", name, rel, looked);
}

int model_build_named(Model *m, const char *name_or_path) {
    char path[PATH_MAX];
    if (model_find_spec(name_or_path, path, sizeof path) < 0) return -1;
    char *text = NULL;
    size_t len = 0;
    if (read_whole_file(path, 1 << 20, &text, &len) < 0) return -1;
    int r = model_build(m, text, path);
    free(text);
    return r;
}

static void fuse_forget(Model *m);

/* Linear layers with at least this many weights get column panels for
 * one-image calls (below it the row product is a few microseconds). */
#define LIN_PANELS_MIN_MACS (1L << 16)

static void lin_panels_free(Model *m) {
    for (int i = 0; m->lin_panels && i < m->n_layers; i++) free(m->lin_panels[i]);
    free(m->lin_panels);
    free(m->lin_ready);
    m->lin_panels = NULL;
    m->lin_ready = NULL;
}

/* Layer i's column panels for a one-image call, packed from w on the first
 * call after a change; NULL where the model keeps none (training, too
 * small a layer, DIGITS_INFER_SPARSE=0). */
static float *lin_panels_for(Model *m, int i, const float *w, int D, int K) {
    if (!m->lin_panels || (long)D * K < LIN_PANELS_MIN_MACS) return NULL;
    if (!m->lin_panels[i]) m->lin_panels[i] = dg_xmalloc(linear_panels_floats(D, K) * sizeof(float));
    if (!m->lin_ready[i]) {
        linear_pack_panels(m->lin_panels[i], w, D, K);
        m->lin_ready[i] = 1;
    }
    return m->lin_panels[i];
}

void model_free(Model *m) {
    free(m->spec_text);
    free(m->layers);
    free(m->params);
    free(m->grads);
    free(m->buffers);
    free(m->acts);
    free(m->scratch);
    free(m->workspace);
    free(m->train_config_json);
    free(m->metrics_json);
    free(m->prof_seconds);
    free(m->prof_calls);
    fuse_forget(m);
    free(m->conv_packed);
    lin_panels_free(m);
    memset(m, 0, sizeof *m);
}

void model_init_params(Model *m, uint64_t seed) {
    Rng rng;
    rng_seed(&rng, seed, "init");
    for (int i = 0; i < m->n_layers; i++) m->layers[i].kind->init(&m->layers[i], &rng);
    rng_seed(&m->dropout_rng, seed, "dropout");
    model_params_changed(m);
}

void model_params_changed(Model *m) {
    m->fold_ready = 0;
    if (m->conv_packed) memset(m->conv_packed, 0, (size_t)m->n_layers * sizeof *m->conv_packed);
    if (m->lin_ready) memset(m->lin_ready, 0, (size_t)m->n_layers);
}

/* ==== activations for a batch ============================================= */

size_t model_floats_per_image(const Model *m, int with_grad) {
    size_t f = shape_size(m->input_shape);
    for (int i = 0; i < m->n_layers; i++) {
        const Layer *l = &m->layers[i];
        f += shape_size(l->out) * (with_grad ? 3 : 1) + l->n_scratch;
    }
    return f;
}

static void fuse_plan(Model *m);

/* Drop the fusion plan and what it sized (fold copies, pool buffers). */
static void fuse_forget(Model *m) {
    free(m->fuse_end);
    free(m->fuse_params);
    free(m->fold_at);
    free(m->folded);
    free(m->pool_at);
    free(m->pool_mem);
    m->fuse_end = NULL;
    m->fuse_params = m->folded = m->pool_mem = NULL;
    m->fold_at = m->pool_at = NULL;
    m->fold_ready = 0;
}

/* pool_at/pool_mem for the planned groups that end in a pooling or a
 * zero padding. */
static void pool_buffers(Model *m, int threads) {
    m->pool_at = dg_xmalloc((size_t)m->n_layers * sizeof(size_t));
    size_t total = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const Layer *l = &m->layers[i];
        int pooled = 0;
        for (int j = i + 1; j <= m->fuse_end[i]; j++)
            pooled |= m->layers[j].type == LAYER_MAXPOOL || m->layers[j].type == LAYER_ZEROPAD ||
                      m->layers[j].type == LAYER_AVGPOOL;
        m->pool_at[i] = SIZE_MAX;
        if (!pooled || l->type != LAYER_CONV2D) continue;
        m->pool_at[i] = total;
        total += (size_t)threads * conv2d_pool_buf_floats(l->in.c, l->in.h, l->in.w, l->out_features, l->kernel,
                                                          l->kernel, l->stride, l->pad);
    }
    m->pool_mem = dg_xmalloc((total ? total : 1) * sizeof(float));
}

/* Inference-only activations (no gradients, outputs not kept): the outputs
 * that eval mode writes at all (a fused group writes only its last
 * layer's) share a few slots, each reused once the last reader of its
 * previous output has run — what a framework's inference memory planner
 * does. offset[i] gets layer i's place in the pool (SIZE_MAX: not
 * written). Returns the pool's floats. */
static size_t plan_shared_outputs(Model *m, size_t N, size_t *offset) {
    const int n = m->n_layers;
    if (!m->fuse_end) fuse_plan(m);
    int *step = dg_xmalloc((size_t)n * sizeof(int));      /* group head that runs layer j */
    int *last_use = dg_xmalloc((size_t)n * sizeof(int));  /* last step reading layer j's output */
    int *slot_of = dg_xmalloc((size_t)n * sizeof(int));
    size_t *slot_size = dg_xcalloc((size_t)n, sizeof(size_t));
    int *slot_busy_until = dg_xmalloc((size_t)n * sizeof(int));
    for (int i = 0; i < n;) {
        for (int j = i; j <= m->fuse_end[i]; j++) step[j] = i;
        i = m->fuse_end[i] + 1;
    }
    for (int j = 0; j < n; j++) last_use[j] = -1;
    for (int r = 0; r < n; r++)
        for (int k = 0; k < m->layers[r].n_inputs; k++) {
            int src = m->layers[r].input_ids[k];
            if (src >= 0 && step[r] > last_use[src]) last_use[src] = step[r];
        }
    last_use[n - 1] = n; /* the logits outlive the forward */
    int slots = 0;
    for (int i = 0; i < n;) {
        const int e = m->fuse_end[i];
        const size_t need = N * shape_size(m->layers[e].out);
        /* a free slot: its occupant was last read before this step. Take
         * the largest free one (grown if short) so big slots get reused. */
        int pick = -1;
        for (int k = 0; k < slots; k++)
            if (slot_busy_until[k] < i && (pick < 0 || slot_size[k] > slot_size[pick])) pick = k;
        if (pick < 0) pick = slots++;
        if (slot_size[pick] < need) slot_size[pick] = need;
        slot_busy_until[pick] = last_use[e];
        for (int j = i; j <= e; j++) slot_of[j] = j == e ? pick : -1;
        i = e + 1;
    }
    size_t total = 0;
    size_t *base = dg_xmalloc((size_t)(slots ? slots : 1) * sizeof(size_t));
    for (int k = 0; k < slots; k++) {
        base[k] = total;
        total += slot_size[k];
    }
    for (int j = 0; j < n; j++) offset[j] = slot_of[j] < 0 ? SIZE_MAX : base[slot_of[j]];
    free(base);
    free(step);
    free(last_use);
    free(slot_of);
    free(slot_size);
    free(slot_busy_until);
    return total;
}

void model_keep_outputs(Model *m) {
    m->keep_outputs = 1;
    if (m->acts_shared) { /* give every layer its own output again */
        const int max_batch = m->max_batch, with_grad = m->with_grad, threads = m->nthreads;
        model_release_batch(m);
        model_set_batch(m, max_batch, with_grad, threads);
    }
}

/* What model_set_batch allocates, in floats, for a batch of N. */
typedef struct {
    size_t N;
    size_t act;      /* the input, the outputs (and their gradients), the edge buffers */
    size_t scratch;  /* the layers' scratch, the dropout noise, the per-thread partial sums */
    size_t work;     /* the largest layer workspace, per thread */
    size_t partial;  /* the largest per-thread partial sum */
    size_t noise;    /* the largest dropout noise buffer (one, shared) */
    size_t own;      /* inference: every conv layer's own (packed) workspace, per thread */
    size_t *offset;  /* shared outputs: each layer's place in the pool; NULL: own outputs */
} BatchPlan;

/* Who reads each output: the gradient of an output read by several layers
 * is the sum over its readers. Backward runs from the last layer down, so
 * the reader with the highest index runs first and writes the producer's
 * dy directly; every later reader writes a private edge buffer that
 * model_backward adds into that dy. Sets dx_accumulate; returns the edge
 * buffers' floats. */
static size_t mark_gradient_edges(Model *m, size_t N, int with_grad) {
    int *first_reader = dg_xmalloc((size_t)m->n_layers * sizeof(int));
    for (int i = 0; i < m->n_layers; i++) first_reader[i] = -1;
    size_t edge = 0;
    for (int i = m->n_layers - 1; i >= 0; i--) {
        Layer *l = &m->layers[i];
        for (int k = 0; k < l->n_inputs; k++) {
            int src = l->input_ids[k];
            l->dx_accumulate[k] = 0;
            if (src == LAYER_INPUT_IMAGE) continue;
            if (first_reader[src] < 0) first_reader[src] = i * LAYER_MAX_INPUTS + k;
            else l->dx_accumulate[k] = with_grad;
            if (l->dx_accumulate[k]) edge += N * shape_size(l->ins[k]);
        }
    }
    free(first_reader);
    return edge;
}

/* The sizes of every buffer; inference without kept outputs shares one
 * pool of outputs between layers whose lifetimes do not overlap. */
static void size_buffers(Model *m, int with_grad, int threads, BatchPlan *bp) {
    const size_t N = bp->N;
    bp->act = N * shape_size(m->input_shape) + mark_gradient_edges(m, N, with_grad);
    const int shared = !with_grad && !m->keep_outputs;
    if (shared) {
        bp->offset = dg_xmalloc((size_t)m->n_layers * sizeof(size_t));
        bp->act += plan_shared_outputs(m, N, bp->offset);
    }
    m->acts_shared = shared;
    for (int i = 0; i < m->n_layers; i++) {
        const Layer *l = &m->layers[i];
        if (!shared) bp->act += N * shape_size(l->out) * (with_grad ? 2 : 1);
        bp->scratch += N * l->n_scratch + l->n_scratch_fixed;
        if (l->n_workspace > bp->work) bp->work = l->n_workspace;
        if (l->n_partial > bp->partial) bp->partial = l->n_partial;
        if ((l->type == LAYER_DROPOUT || l->type == LAYER_DROPOUT2D) && l->n_scratch > bp->noise)
            bp->noise = l->n_scratch;
    }
    bp->scratch += N * bp->noise + (size_t)threads * bp->partial;
}

/* Inference keeps each conv layer's packed weights in a workspace of its
 * own (after the shared one) and the linear layers' sparse panels. The
 * environment switches them off for A/B measurements: DIGITS_INFER_PACK=0
 * repacks per call, DIGITS_INFER_SPARSE=0 takes the rows' product only. */
static void plan_inference_packing(Model *m, int with_grad, BatchPlan *bp) {
    const char *pack_env = getenv("DIGITS_INFER_PACK");
    if (with_grad || (pack_env && strcmp(pack_env, "0") == 0)) return;
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].type == LAYER_CONV2D) bp->own += m->layers[i].n_workspace;
    m->conv_packed = dg_xcalloc((size_t)m->n_layers, sizeof *m->conv_packed);
    const char *sparse_env = getenv("DIGITS_INFER_SPARSE");
    if (!(sparse_env && strcmp(sparse_env, "0") == 0)) {
        m->lin_panels = dg_xcalloc((size_t)m->n_layers, sizeof *m->lin_panels);
        m->lin_ready = dg_xcalloc((size_t)m->n_layers, 1);
    }
}

/* Point every layer at its slices of the allocated blocks, in the order
 * size_buffers counted them. */
static void assign_buffers(Model *m, int with_grad, int threads, const BatchPlan *bp) {
    const size_t N = bp->N;
    float *a = m->acts, *s = m->scratch;
    float *own_ws = m->workspace + (size_t)threads * bp->work;
    m->input = a;
    a += N * shape_size(m->input_shape);
    float *pool = a; /* shared outputs */
    float *noise_buf = s;
    s += N * bp->noise;
    float *partial_buf = s;
    s += (size_t)threads * bp->partial;
    for (int i = 0; i < m->n_layers; i++) {
        Layer *l = &m->layers[i];
        if (m->acts_shared) {
            l->y = bp->offset[i] == SIZE_MAX ? NULL : pool + bp->offset[i];
        } else {
            l->y = a;
            a += N * shape_size(l->out);
        }
        l->dy = NULL;
        if (with_grad) {
            l->dy = a;
            a += N * shape_size(l->out);
        }
        for (int k = 0; k < l->n_inputs; k++) {
            int src = l->input_ids[k];
            l->xs[k] = src == LAYER_INPUT_IMAGE ? m->input : m->layers[src].y;
            l->dxs[k] = src == LAYER_INPUT_IMAGE ? NULL : m->layers[src].dy;
            if (l->dx_accumulate[k]) {
                l->dxs[k] = a;
                a += N * shape_size(l->ins[k]);
            }
        }
        l->x = l->xs[0];
        l->dx = l->dxs[0];
        l->scratch = s;
        s += N * l->n_scratch + l->n_scratch_fixed;
        l->workspace = m->workspace;
        if (m->conv_packed && l->type == LAYER_CONV2D) {
            l->workspace = own_ws;
            own_ws += (size_t)threads * l->n_workspace;
        }
        l->partial = partial_buf;
        l->noise = noise_buf;
        l->nthreads = threads;
        l->rng = &m->dropout_rng;
    }
}

void model_set_batch(Model *m, int max_batch, int with_grad, int threads) {
    DG_ASSERT(max_batch > 0);
#ifdef _OPENMP
    if (threads <= 0) threads = omp_get_max_threads();
#else
    threads = 1;
#endif
    model_params_changed(m);
    if (m->acts && max_batch <= m->max_batch && (with_grad <= m->with_grad) &&
        threads == m->nthreads && !(m->acts_shared && (with_grad || m->keep_outputs)))
        return;
    model_release_batch(m);
    m->max_batch = max_batch;
    m->with_grad = with_grad;
    m->nthreads = threads;
    fuse_forget(m); /* planned again for this mode (inference plans fold and pool) */
    fuse_plan(m);

    BatchPlan bp = {.N = (size_t)max_batch};
    size_buffers(m, with_grad, threads, &bp);
    plan_inference_packing(m, with_grad, &bp);
    if (m->acts_shared) /* the fused poolings' buffers: nthreads slices each */
        pool_buffers(m, threads);
    m->acts = dg_xcalloc(bp.act, sizeof(float));
    m->scratch = dg_xcalloc(bp.scratch, sizeof(float));
    m->workspace = dg_xcalloc((size_t)threads * (bp.work + bp.own), sizeof(float));
    assign_buffers(m, with_grad, threads, &bp);
    free(bp.offset);
}

void model_release_batch(Model *m) {
    free(m->acts);
    free(m->scratch);
    free(m->workspace);
    free(m->conv_packed);
    m->conv_packed = NULL;
    lin_panels_free(m);
    m->acts = m->scratch = m->workspace = m->input = NULL;
    m->max_batch = m->with_grad = m->acts_shared = 0;
    for (int i = 0; i < m->n_layers; i++) {
        Layer *l = &m->layers[i];
        l->x = l->dx = l->y = l->dy = l->scratch = l->workspace = l->partial = l->noise = NULL;
        memset(l->xs, 0, sizeof l->xs);
        memset(l->dxs, 0, sizeof l->dxs);
    }
}

/* ==== forward / backward ================================================== */

void model_load_pixels(Model *m, const uint8_t *pixels, int n) {
    DG_ASSERT(n <= m->max_batch);
    size_t count = (size_t)n * shape_size(m->input_shape);
    float scale = 1.0f / (255.0f * m->norm_std), shift = -m->norm_mean / m->norm_std;
    for (size_t i = 0; i < count; i++) m->input[i] = pixels[i] * scale + shift;
}

/* ==== eval-mode fusion ====================================================== */

/* Can layer j (> i) join the group that starts at conv/linear layer i? It
 * must be elementwise in eval mode with per-channel constants, read only
 * its predecessor, and be that predecessor's only reader. In an inference
 * plan (pool_ok) one max or average pooling or zero padding after a conv
 * joins too (shaped: 1 max-pooled, 2 padded, 3 average-pooled); after a
 * max pooling only ReLU and copies, after the others only copies. */
static int fusable_next(const Model *m, const int *readers, int i, int j, int flattened, int pool_ok, int shaped) {
    const Layer *l = &m->layers[j];
    if (l->n_inputs != 1 || l->input_ids[0] != j - 1 || readers[j - 1] != 1) return 0;
    switch (l->type) {
    case LAYER_DROPOUT: case LAYER_DROPOUT2D: case LAYER_FLATTEN: return 1;
    case LAYER_RELU: return shaped != 2 && shaped != 3;
    case LAYER_TANH: return !shaped;
    case LAYER_BATCHNORM: /* per channel of the conv/linear output; not after a flatten of a conv */
        return !flattened && !shaped && l->in.c == m->layers[i].out.c;
    case LAYER_MAXPOOL: case LAYER_ZEROPAD: case LAYER_AVGPOOL:
        return pool_ok && !shaped && !flattened && m->layers[i].type == LAYER_CONV2D;
    default: return 0;
    }
}

/* Is the switch `name` (DIGITS_INFER_FOLD, DIGITS_INFER_POOL) set to "0"? */
static int infer_switch_off(const char *name) {
    const char *v = getenv(name);
    return v && strcmp(v, "0") == 0;
}

/* The batch norm of group i..e that folds into conv/linear layer i's
 * weights: the first ReLU, batch norm or pooling after layer i, when it
 * is a batch norm (eval copies may sit between); -1 if none. */
static int fold_bn_of(const Model *m, int i, int e) {
    for (int j = i + 1; j <= e; j++) {
        const LayerType t = m->layers[j].type;
        if (t == LAYER_BATCHNORM) return j;
        if (t == LAYER_RELU || t == LAYER_TANH || t == LAYER_MAXPOOL || t == LAYER_ZEROPAD || t == LAYER_AVGPOOL)
            return -1;
    }
    return -1;
}

/* Weights and bias of conv/linear layer i with batch norm bn folded in,
 * into w (the layer's weight count) and w + that (out_features):
 * W' = W * s, b' = (b - mean) * s + beta, s = gamma / sqrt(var + eps),
 * computed in double. */
static void fold_layer(const Layer *l, const Layer *bn, float *w) {
    const int K = l->out_features;
    const size_t per = l->type == LAYER_CONV2D ? (size_t)l->in.c * l->kernel * l->kernel : shape_size(l->in);
    float *b = w + (size_t)K * per;
    for (int k = 0; k < K; k++) {
        const double s = bn->param[k] / sqrt((double)bn->buffer[K + k] + bn->eps);
        const float *src = l->param + (size_t)k * per;
        float *dst = w + (size_t)k * per;
        for (size_t j = 0; j < per; j++) dst[j] = (float)(src[j] * s);
        const double b0 = l->bias ? l->param[(size_t)K * per + k] : 0.0;
        b[k] = (float)((b0 - bn->buffer[k]) * s + bn->param[K + k]);
    }
}

/* Rebuild every folded layer from the current weights and statistics. */
static void fold_prepare(Model *m) {
    for (int i = 0; i < m->n_layers; i++)
        if (m->fold_at[i] != SIZE_MAX)
            fold_layer(&m->layers[i], &m->layers[fold_bn_of(m, i, m->fuse_end[i])], m->folded + m->fold_at[i]);
    m->fold_ready = 1;
}

/* Is layer j a copy in eval mode (dropout, dropout2d, flatten) that reads
 * only its predecessor, and that predecessor's only reader? */
static int eval_copy_next(const Model *m, const int *readers, int j) {
    const Layer *l = &m->layers[j];
    if (l->n_inputs != 1 || l->input_ids[0] != j - 1 || readers[j - 1] != 1) return 0;
    return l->type == LAYER_DROPOUT || l->type == LAYER_DROPOUT2D || l->type == LAYER_FLATTEN;
}

static void fuse_plan(Model *m) {
    int *readers = dg_xcalloc((size_t)m->n_layers, sizeof(int));
    for (int j = 0; j < m->n_layers; j++)
        for (int k = 0; k < m->layers[j].n_inputs; k++)
            if (m->layers[j].input_ids[k] >= 0) readers[m->layers[j].input_ids[k]]++;
    m->fuse_end = dg_xmalloc((size_t)m->n_layers * sizeof(int));
    const int inference = !m->with_grad && !m->keep_outputs;
    const int pool_ok = inference && !infer_switch_off("DIGITS_INFER_POOL");
    const int fold_ok = inference && !infer_switch_off("DIGITS_INFER_FOLD");
    m->fold_at = dg_xmalloc((size_t)m->n_layers * sizeof(size_t));
    size_t floats = 0, folded = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const Layer *l = &m->layers[i];
        int e = i, steps = 0, flattened = 0, shaped = 0;
        if (l->type == LAYER_CONV2D || l->type == LAYER_LINEAR)
            while (e + 1 < m->n_layers && fusable_next(m, readers, i, e + 1, flattened, pool_ok, shaped)) {
                const Layer *nx = &m->layers[e + 1];
                int step = !shaped && (nx->type == LAYER_RELU || nx->type == LAYER_TANH || nx->type == LAYER_BATCHNORM);
                if (step && steps == EPILOGUE_MAX_STEPS) break;
                steps += step;
                if (nx->type == LAYER_BATCHNORM) floats += 2 * (size_t)nx->in.c;
                if (nx->type == LAYER_FLATTEN && l->type == LAYER_CONV2D) flattened = 1;
                if (nx->type == LAYER_MAXPOOL) shaped = 1;
                if (nx->type == LAYER_ZEROPAD) shaped = 2;
                if (nx->type == LAYER_AVGPOOL) shaped = 3;
                e++;
            }
        else /* eval-mode copies (dropout, flatten) after any other layer: it writes their output */
            while (e + 1 < m->n_layers && eval_copy_next(m, readers, e + 1)) e++;
        m->fuse_end[i] = e;
        m->fold_at[i] = SIZE_MAX;
        if (fold_ok && (l->type == LAYER_CONV2D || l->type == LAYER_LINEAR) && fold_bn_of(m, i, e) >= 0) {
            m->fold_at[i] = folded;
            folded += l->n_param + (l->bias ? 0 : (size_t)l->out_features); /* weights, then a bias */
        }
    }
    m->fuse_params = dg_xcalloc(floats ? floats : 1, sizeof(float));
    m->folded = folded ? dg_xmalloc(folded * sizeof(float)) : NULL;
    m->fold_ready = 0;
    free(readers);
}

/* Layers i..e as one: the conv/linear writes layer e's output with the
 * ReLU / batch-norm steps as its epilogue; any other layer writes layer
 * e's output directly (the layers after it are eval-mode copies). */
static void fused_forward(Model *m, int i, int e, int n, float **params) {
    Layer *l = &m->layers[i];
    if (l->type != LAYER_CONV2D && l->type != LAYER_LINEAR) { /* then eval-mode copies: write the last one's output */
        Layer head = *l;
        head.y = m->layers[e].y;
        head.kind->forward(&head, n, 0);
        return;
    }
    Epilogue ep = {0};
    const int fold = m->fold_at && m->fold_at[i] != SIZE_MAX ? fold_bn_of(m, i, e) : -1;
    for (int j = i + 1; j <= e; j++) {
        const Layer *s = &m->layers[j];
        if (s->type == LAYER_MAXPOOL) { /* a ReLU right before it runs as the pool's max(v, 0) */
            ep.pool = s->kernel;
            ep.pool_stride = s->stride;
            if (ep.n && ep.step[ep.n - 1].relu) {
                ep.n--;
                ep.pool_relu = 1;
            }
        } else if (s->type == LAYER_AVGPOOL) { /* the steps before it stay steps */
            ep.pool = s->kernel;
            ep.pool_stride = s->stride;
            ep.pool_avg = 1;
        } else if (s->type == LAYER_TANH) {
            ep.step[ep.n++].tanh = 1;
        } else if (s->type == LAYER_ZEROPAD) {
            ep.padded = 1;
            memcpy(ep.pad, s->pads, sizeof ep.pad);
        } else if (s->type == LAYER_RELU && ep.pool) {
            ep.pool_relu = 1; /* max(max(window), 0) = max(relu(window)) */
        } else if (s->type == LAYER_RELU) {
            ep.step[ep.n++].relu = 1;
        } else if (s->type == LAYER_BATCHNORM && j == fold) {
            *params += 2 * (size_t)s->in.c; /* in the weights */
        } else if (s->type == LAYER_BATCHNORM) {
            const int C = s->in.c;
            float *mul = *params, *add = *params + C;
            *params += 2 * (size_t)C;
            for (int c = 0; c < C; c++) { /* as batchnorm_forward_eval */
                const double rstd = 1.0 / sqrt((double)s->buffer[C + c] + s->eps);
                mul[c] = (float)(s->param[c] * rstd);
                add[c] = s->param[C + c];
            }
            ep.step[ep.n].relu = 0;
            ep.step[ep.n].sub = s->buffer; /* running mean */
            ep.step[ep.n].mul = mul;
            ep.step[ep.n].add = add;
            ep.n++;
        }
    }
    float *y = m->layers[e].y;
    const int K = l->out_features;
    const size_t nw = l->type == LAYER_CONV2D ? (size_t)K * l->in.c * l->kernel * l->kernel
                                              : (size_t)K * shape_size(l->in);
    const float *w = l->param, *b = l->bias ? l->param + nw : NULL;
    if (fold >= 0) { /* batch norm folded into a copy of the weights */
        if (!m->fold_ready) fold_prepare(m);
        w = m->folded + m->fold_at[i];
        b = w + nw;
    }
    if (l->type == LAYER_CONV2D) {
        if (ep.pool || ep.padded) {
            ep.pool_slice = conv2d_pool_buf_floats(l->in.c, l->in.h, l->in.w, K, l->kernel, l->kernel, l->stride,
                                                   l->pad);
            ep.pool_buf = m->pool_mem + m->pool_at[i];
        }
        const int any = ep.n || ep.pool || ep.padded;
        if (m->conv_packed) /* the layer's own workspace keeps its packed weights */
            conv2d_forward_packed(y, l->x, w, b, n, l->in.c, l->in.h, l->in.w, K, l->kernel, l->kernel, l->stride,
                                  l->pad, l->workspace, l->nthreads, any ? &ep : NULL, &m->conv_packed[i]);
        else
            conv2d_forward_ep(y, l->x, w, b, n, l->in.c, l->in.h, l->in.w, K, l->kernel, l->kernel, l->stride,
                              l->pad, l->workspace, l->nthreads, &ep);
    } else {
        const int D = (int)shape_size(l->in);
        if (m->conv_packed) { /* inference-only model: one image as a threaded matrix-vector product */
            linear_forward_ep(y, l->x, w, b, n, D, K, ep.n ? &ep : NULL, l->nthreads,
                              n == 1 ? lin_panels_for(m, i, w, D, K) : NULL);
        } else {
            linear_forward(y, l->x, w, b, n, D, K);
            epilogue_apply(y, n, K, 1, NULL, &ep);
        }
    }
}

/* ==== training-mode fusion =================================================== */

/* Is layer i the first of a batch norm + ReLU pair that training runs as
 * one op (batchnorm_fused_*)? BN_RELU_AFTER: batch norm i feeds ReLU i+1
 * (cnn-bn's order); BN_RELU_BEFORE: ReLU i feeds batch norm i+1
 * (kaggle-deep's Keras order). Either way the first layer's output must
 * have no other reader: it is never written, and the pair's backward
 * writes the first layer's dx directly. BN_PLAIN: no pair.
 * DIGITS_TRAIN_FUSION=0 turns this off (A/B measurements). */
static BnFusion train_fusion(const Model *m, int i) {
    static int disabled = -1;
    if (disabled < 0) {
        const char *v = getenv("DIGITS_TRAIN_FUSION");
        disabled = v && strcmp(v, "0") == 0;
    }
    if (disabled || m->unfused_training || i + 1 >= m->n_layers) return BN_PLAIN;
    const Layer *a = &m->layers[i], *b = &m->layers[i + 1];
    BnFusion f = a->type == LAYER_BATCHNORM && b->type == LAYER_RELU   ? BN_RELU_AFTER
                 : a->type == LAYER_RELU && b->type == LAYER_BATCHNORM ? BN_RELU_BEFORE
                                                                       : BN_PLAIN;
    if (f == BN_PLAIN || b->n_inputs != 1 || b->input_ids[0] != i) return BN_PLAIN;
    /* BatchNorm1d (and planes under 16 floats) keeps the two layers: its
     * per-feature loops are strided, and fused they ran mlp 10 % slower */
    if (a->in.h * a->in.w < 16) return BN_PLAIN;
    for (int j = 0; j < m->n_layers; j++)
        for (int k = 0; k < m->layers[j].n_inputs; k++)
            if (j != i + 1 && m->layers[j].input_ids[k] == i) return BN_PLAIN;
    return f;
}

/* The pair (i, i+1): the batch norm's parameters, the pair's input x and
 * dx (the first layer's), output y and dy (the second layer's). */
static void fused_pair_forward(Model *m, BnFusion f, int i, int n) {
    Layer *first = &m->layers[i], *second = &m->layers[i + 1];
    Layer *bn = f == BN_RELU_AFTER ? first : second;
    const int C = bn->in.c;
    batchnorm_fused_forward_train(f, second->y, bn->scratch, bn->scratch + C, bn->buffer, bn->buffer + C, first->x,
                                  bn->param, bn->param + C, n, C, bn->in.h * bn->in.w, bn->eps, bn->momentum);
}

static void fused_pair_backward(Model *m, BnFusion f, int i, int n) {
    Layer *first = &m->layers[i], *second = &m->layers[i + 1];
    Layer *bn = f == BN_RELU_AFTER ? first : second;
    const int C = bn->in.c;
    batchnorm_fused_backward(f, first->dx, bn->dparam, bn->dparam + C, second->dy, first->x, bn->param,
                             bn->param + C, bn->scratch, bn->scratch + C, n, C, bn->in.h * bn->in.w);
}

/* The profiler's clock: wall time, or with BENCH_CLOCK=cpu (as
 * bench_models) the calling thread's CPU time — immune to other jobs
 * taking the core, exact for one thread only. */
static double prof_now(void) {
    static int cpu = -1;
    if (cpu < 0) cpu = getenv("BENCH_CLOCK") && strcmp(getenv("BENCH_CLOCK"), "cpu") == 0;
    if (!cpu) return now_seconds();
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

float *model_forward(Model *m, int n, int training) {
    DG_ASSERT(m->acts && n > 0 && n <= m->max_batch);
    DG_ASSERT(!training || m->with_grad);
    const int fuse = !training && !m->keep_outputs;
    DG_ASSERT(fuse || !m->acts_shared); /* shared outputs exist only for fused inference */
    if (fuse && !m->fuse_end) fuse_plan(m);
    float *params = m->fuse_params;
    const int slot = training ? 0 : 1;
    for (int i = 0; i < m->n_layers;) {
        const BnFusion pair = training ? train_fusion(m, i) : BN_PLAIN;
        const int e = fuse ? m->fuse_end[i] : pair != BN_PLAIN ? i + 1 : i;
        double t0 = m->prof_seconds ? prof_now() : 0;
        if (pair != BN_PLAIN) fused_pair_forward(m, pair, i, n);
        else if (e > i || (fuse && m->conv_packed &&
                           (m->layers[i].type == LAYER_CONV2D || m->layers[i].type == LAYER_LINEAR)))
            fused_forward(m, i, e, n, &params);
        else m->layers[i].kind->forward(&m->layers[i], n, training);
        if (m->prof_seconds) { /* a fused group counts as its first layer */
            m->prof_seconds[i][slot] += prof_now() - t0;
            m->prof_calls[i][slot]++;
        }
        i = e + 1;
    }
    return m->layers[m->n_layers - 1].y;
}

void model_backward(Model *m, const float *dlogits, int n) {
    DG_ASSERT(m->with_grad && n <= m->max_batch);
    Layer *last = &m->layers[m->n_layers - 1];
    if (dlogits != last->dy) memcpy(last->dy, dlogits, (size_t)n * shape_size(last->out) * sizeof(float));
    for (int i = m->n_layers - 1; i >= 0; i--) {
        Layer *l = &m->layers[i];
        double t0 = m->prof_seconds ? prof_now() : 0;
        if (i > 0 && train_fusion(m, i - 1) != BN_PLAIN) continue; /* done with layer i-1 below */
        const BnFusion pair = train_fusion(m, i);
        if (pair != BN_PLAIN) fused_pair_backward(m, pair, i, n);
        else l->kind->backward(l, n);
        if (m->backward_hook) m->backward_hook(m->backward_hook_ctx, l, n);
        /* a second (third...) reader of an output: add its share into the
         * producer's dy, which the first reader (backward order) wrote */
        for (int k = 0; k < l->n_inputs; k++) {
            if (!l->dx_accumulate[k]) continue;
            float *dst = m->layers[l->input_ids[k]].dy;
            const float *src = l->dxs[k];
            size_t count = (size_t)n * shape_size(l->ins[k]);
            for (size_t j = 0; j < count; j++) dst[j] += src[j];
        }
        if (m->prof_seconds) {
            m->prof_seconds[i][2] += prof_now() - t0;
            m->prof_calls[i][2]++;
        }
    }
}

void model_profile_start(Model *m) {
    free(m->prof_seconds);
    free(m->prof_calls);
    m->prof_seconds = dg_xcalloc((size_t)m->n_layers, sizeof *m->prof_seconds);
    m->prof_calls = dg_xcalloc((size_t)m->n_layers, sizeof *m->prof_calls);
}

void model_profile_print(const Model *m, FILE *f, double train_images, double eval_images) {
    if (!m->prof_seconds) return;
    double total_train = 0, total_eval = 0;
    for (int i = 0; i < m->n_layers; i++) {
        total_train += m->prof_seconds[i][0] + m->prof_seconds[i][2];
        total_eval += m->prof_seconds[i][1];
    }
    const double tr = train_images > 0 ? 1e6 / train_images : 0, ev = eval_images > 0 ? 1e6 / eval_images : 0;
    fprintf(f, "%-4s %-22s %-12s %10s %10s %7s %10s %7s\n", "#", "layer", "output", "fwd us/img", "bwd us/img",
            "train%", "eval us/img", "eval%");
    for (int i = 0; i < m->n_layers; i++) {
        const Layer *l = &m->layers[i];
        const double *s = m->prof_seconds[i];
        char what[48], shape[24];
        if (l->type == LAYER_CONV2D)
            snprintf(what, sizeof what, "conv %dx%d/%d %d->%d", l->kernel, l->kernel, l->stride, l->in.c, l->out.c);
        else
            snprintf(what, sizeof what, "%s", l->kind->name);
        snprintf(shape, sizeof shape, "%dx%dx%d", l->out.c, l->out.h, l->out.w);
        fprintf(f, "%-4d %-22s %-12s %10.2f %10.2f %6.1f%% %10.2f %6.1f%%\n", i, what, shape, s[0] * tr, s[2] * tr,
                total_train > 0 ? 100 * (s[0] + s[2]) / total_train : 0, s[1] * ev,
                total_eval > 0 ? 100 * s[1] / total_eval : 0);
    }
    fprintf(f, "%-4s %-22s %-12s %10s %10.2f %7s %10.2f\n", "", "total (train = fwd+bwd)", "", "", total_train * tr, "",
            total_eval * ev);
}

void model_zero_grad(Model *m) { memset(m->grads, 0, m->n_param * sizeof(float)); }

/* ==== summary ============================================================= */

double model_macs(const Model *m) {
    double macs = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const Layer *l = &m->layers[i];
        if (l->type == LAYER_CONV2D)
            macs += (double)shape_size(l->out) * l->in.c * l->kernel * l->kernel;
        else if (l->type == LAYER_LINEAR)
            macs += (double)l->out_features * shape_size(l->in);
        else if (l->type == LAYER_STN) /* 4 bilinear taps per output */
            macs += 4.0 * shape_size(l->out);
    }
    return macs;
}

/* Is the model more than a chain (some layer reads other than its predecessor)? */
static int model_is_graph(const Model *m) {
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].n_inputs != 1 || m->layers[i].input_ids[0] != i - 1) return 1;
    return 0;
}

/* "b1,4" — what layer l reads (names where given, else indices, "input"). */
static void format_inputs(const Model *m, const Layer *l, char *buf, size_t len) {
    size_t o = 0;
    buf[0] = '\0';
    for (int k = 0; k < l->n_inputs && o < len; k++) {
        int id = l->input_ids[k];
        const char *sep = k ? "," : "";
        if (id == LAYER_INPUT_IMAGE)
            o += (size_t)snprintf(buf + o, len - o, "%sinput", sep);
        else if (m->layers[id].name[0])
            o += (size_t)snprintf(buf + o, len - o, "%s%s", sep, m->layers[id].name);
        else
            o += (size_t)snprintf(buf + o, len - o, "%s%d", sep, id);
    }
}

void model_summary(const Model *m, FILE *f) {
    fprintf(f, "Model: %s\n", m->spec_name);
    const int graph = model_is_graph(m);
    fprintf(f, "%-4s %-30s %-18s %12s %10s%s\n", "#", "Layer (type)", "Output Shape", "Param #", "Trainable",
            graph ? "  Inputs" : "");
    fprintf(f, "==================================================================\n");
    fprintf(f, "%-4s %-30s (%d, %d, %d)%*s %12d %10d\n", "", "input", m->input_shape.c, m->input_shape.h,
            m->input_shape.w, 5, "", 0, 0);
    for (int i = 0; i < m->n_layers; i++) {
        const Layer *l = &m->layers[i];
        char desc[64], shape[32];
        switch (l->type) {
        case LAYER_CONV2D:
            snprintf(desc, sizeof desc, "conv2d %dx%d/%d pad %d", l->kernel, l->kernel, l->stride, l->pad);
            break;
        case LAYER_MAXPOOL:
        case LAYER_AVGPOOL:
            snprintf(desc, sizeof desc, "%s %dx%d/%d", l->kind->name, l->kernel, l->kernel, l->stride);
            break;
        case LAYER_DROPOUT:
        case LAYER_DROPOUT2D:
            snprintf(desc, sizeof desc, "%s p=%.2f", l->kind->name, l->p);
            break;
        case LAYER_BATCHNORM:
            snprintf(desc, sizeof desc, "batchnorm%s", l->in.h * l->in.w > 1 ? "2d" : "1d");
            break;
        case LAYER_ELU:
            snprintf(desc, sizeof desc, "elu alpha=%g", l->alpha);
            break;
        default:
            snprintf(desc, sizeof desc, "%s", l->kind->name);
        }
        if (l->name[0]) {
            size_t o = strlen(desc);
            snprintf(desc + o, sizeof desc - o, " [%s]", l->name);
        }
        if (l->out.h == 1 && l->out.w == 1)
            snprintf(shape, sizeof shape, "(%d)", l->out.c);
        else
            snprintf(shape, sizeof shape, "(%d, %d, %d)", l->out.c, l->out.h, l->out.w);
        char from[128] = "";
        if (graph) format_inputs(m, l, from, sizeof from);
        fprintf(f, "%-4d %-30s %-18s %12zu %10zu%s%s\n", i, desc, shape, l->n_param + l->n_buffer, l->n_param,
                graph ? "  " : "", from);
    }
    fprintf(f, "==================================================================\n");
    fprintf(f, "Total params: %zu (trainable %zu, buffers %zu)\n", m->n_param + m->n_buffer,
            m->n_param, m->n_buffer);
    fprintf(f, "Forward MACs per image: %.2f M\n", model_macs(m) / 1e6);
}

static int bf16_on;

int model_set_bf16(int on) {
    bf16_on = conv2d_set_bf16(on);
    return bf16_on;
}

int model_bf16(void) { return bf16_on; }
