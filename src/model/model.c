/* model.c — memory layout, forward/backward over the layer list, the
 * summary table, and finding zoo specs. See model.h. */
#include "model/model.h"
#include "ops/ops.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/check.h"
#include "core/util.h"

/* ==== finding and building from a spec ==================================== */

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int model_find_spec(const char *name, char *path, size_t len) {
    if (strchr(name, '/') || strstr(name, ".spec")) {
        snprintf(path, len, "%s", name);
        return file_exists(path) ? 0 : dg_set_error("%s: no such spec file", name);
    }
    const char *env = getenv("DIGITS_MODELS");
    if (env) {
        snprintf(path, len, "%s/%s.spec", env, name);
        if (file_exists(path)) return 0;
    }
    snprintf(path, len, "models/%s.spec", name);
    if (file_exists(path)) return 0;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) *slash = '\0';
        snprintf(path, len, "%s/../models/%s.spec", exe, name);
        if (file_exists(path)) return 0;
    }
    return dg_set_error("unknown model '%s': no models/%s.spec (zoo names are the files in models/, "
                        "or give a path to a .spec file)", name, name);
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
    memset(m, 0, sizeof *m);
}

void model_init_params(Model *m, uint64_t seed) {
    Rng rng;
    rng_seed(&rng, seed, "init");
    for (int i = 0; i < m->n_layers; i++) m->layers[i].kind->init(&m->layers[i], &rng);
    rng_seed(&m->dropout_rng, seed, "dropout");
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

void model_set_batch(Model *m, int max_batch, int with_grad, int threads) {
    DG_ASSERT(max_batch > 0);
#ifdef _OPENMP
    if (threads <= 0) threads = omp_get_max_threads();
#else
    threads = 1;
#endif
    if (m->acts && max_batch <= m->max_batch && (with_grad <= m->with_grad) &&
        threads == m->nthreads)
        return;
    free(m->acts);
    free(m->scratch);
    free(m->workspace);
    m->max_batch = max_batch;
    m->with_grad = with_grad;
    m->nthreads = threads;

    size_t N = (size_t)max_batch;
    /* Who reads each output: the gradient of an output read by several
     * layers is the sum over its readers. Backward runs from the last
     * layer down, so the reader with the highest index runs first and
     * writes the producer's dy directly; every later reader writes a
     * private edge buffer that model_backward adds into that dy. */
    int *first_reader = dg_xmalloc((size_t)m->n_layers * sizeof(int));
    for (int i = 0; i < m->n_layers; i++) first_reader[i] = -1;
    size_t edge = 0; /* floats of edge buffers */
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
    size_t act = N * shape_size(m->input_shape) + edge;
    size_t scratch = 0, work = 0, partial = 0, noise = 0;
    for (int i = 0; i < m->n_layers; i++) {
        Layer *l = &m->layers[i];
        act += N * shape_size(l->out) * (with_grad ? 2 : 1);
        scratch += N * l->n_scratch + l->n_scratch_fixed;
        if (l->n_workspace > work) work = l->n_workspace;
        if (l->n_partial > partial) partial = l->n_partial;
        if ((l->type == LAYER_DROPOUT || l->type == LAYER_DROPOUT2D) && l->n_scratch > noise)
            noise = l->n_scratch;
    }
    scratch += N * noise + (size_t)threads * partial;
    m->acts = dg_xcalloc(act, sizeof(float));
    m->scratch = dg_xcalloc(scratch, sizeof(float));
    m->workspace = dg_xcalloc((size_t)threads * work, sizeof(float));

    float *a = m->acts, *s = m->scratch;
    m->input = a;
    a += N * shape_size(m->input_shape);
    float *noise_buf = s;
    s += N * noise;
    float *partial_buf = s;
    s += (size_t)threads * partial;
    for (int i = 0; i < m->n_layers; i++) {
        Layer *l = &m->layers[i];
        l->y = a;
        a += N * shape_size(l->out);
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
        l->partial = partial_buf;
        l->noise = noise_buf;
        l->nthreads = threads;
        l->rng = &m->dropout_rng;
    }
    free(first_reader);
}

void model_release_batch(Model *m) {
    free(m->acts);
    free(m->scratch);
    free(m->workspace);
    m->acts = m->scratch = m->workspace = m->input = NULL;
    m->max_batch = m->with_grad = 0;
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

float *model_forward(Model *m, int n, int training) {
    DG_ASSERT(m->acts && n > 0 && n <= m->max_batch);
    DG_ASSERT(!training || m->with_grad);
    for (int i = 0; i < m->n_layers; i++) m->layers[i].kind->forward(&m->layers[i], n, training);
    return m->layers[m->n_layers - 1].y;
}

void model_backward(Model *m, const float *dlogits, int n) {
    DG_ASSERT(m->with_grad && n <= m->max_batch);
    Layer *last = &m->layers[m->n_layers - 1];
    if (dlogits != last->dy) memcpy(last->dy, dlogits, (size_t)n * shape_size(last->out) * sizeof(float));
    for (int i = m->n_layers - 1; i >= 0; i--) {
        Layer *l = &m->layers[i];
        l->kind->backward(l, n);
        /* a second (third...) reader of an output: add its share into the
         * producer's dy, which the first reader (backward order) wrote */
        for (int k = 0; k < l->n_inputs; k++) {
            if (!l->dx_accumulate[k]) continue;
            float *dst = m->layers[l->input_ids[k]].dy;
            const float *src = l->dxs[k];
            size_t count = (size_t)n * shape_size(l->ins[k]);
            for (size_t j = 0; j < count; j++) dst[j] += src[j];
        }
    }
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
    fprintf(f, "%-4s %-30s %-18s %12s%s\n", "#", "Layer (type)", "Output Shape", "Param #",
            graph ? "  Inputs" : "");
    fprintf(f, "==================================================================\n");
    fprintf(f, "%-4s %-30s (%d, %d, %d)%*s %12d\n", "", "input", m->input_shape.c, m->input_shape.h,
            m->input_shape.w, 5, "", 0);
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
        fprintf(f, "%-4d %-30s %-18s %12zu%s%s\n", i, desc, shape, l->n_param + l->n_buffer,
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
