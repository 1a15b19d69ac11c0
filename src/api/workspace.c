/* workspace.c — the workspace pool that makes one loaded model safe to
 * share between threads (see "Thread safety" in include/digits.h). A
 * Classifier owns its activation buffers, so two threads must never run
 * the same one: each prediction takes an idle workspace (a clone of the
 * model's prototype: its networks rebuilt from their specs with the
 * weights copied; an SVM's read-only tables shared) and gives it back. The
 * pool grows to the number of concurrent calls and is freed with the model.
 * Leaves out: bounding the pool (a caller with many threads gets as many
 * workspaces as it runs calls at once). */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/check.h"
#include "eval/ensemble.h"

#define WS_MAX_ACT_BYTES ((size_t)1 << 30) /* as classifier.c: one batch's activations at most */

/* Largest batch <= want whose activations fit WS_MAX_ACT_BYTES for every
 * network of c. */
static int fit_batch(const Classifier *c, int want) {
    for (int k = 0; k < c->n_models; k++) {
        size_t fit = WS_MAX_ACT_BYTES / (model_floats_per_image(&c->models[k], 0) * sizeof(float));
        if ((size_t)want > fit) want = fit > 0 ? (int)fit : 1;
    }
    return want > 0 ? want : 1;
}

/* dst: a network with src's architecture, weights and normalisation, no
 * activations yet. */
static void clone_network(Model *dst, const Model *src) {
    /* src's spec built once already: it cannot fail now */
    DG_ASSERT(model_build(dst, src->spec_text, src->spec_name) == 0);
    snprintf(dst->spec_name, sizeof dst->spec_name, "%s", src->spec_name);
    memcpy(dst->params, src->params, src->n_param * sizeof(float));
    if (src->n_buffer) memcpy(dst->buffers, src->buffers, src->n_buffer * sizeof(float));
    dst->norm_mean = src->norm_mean;
    dst->norm_std = src->norm_std;
}

/* A new workspace from the prototype (owned by the caller). */
static Classifier *ws_new(const dg_model *m) {
    const Classifier *p = &m->proto;
    Classifier *ws = dg_xcalloc(1, sizeof *ws);
    *ws = *p;
    ws->metadata_json = NULL;
    ws->models = NULL;
    ws->batch = 0;
    if (p->n_models) {
        ws->models = dg_xcalloc((size_t)p->n_models, sizeof *ws->models);
        for (int k = 0; k < p->n_models; k++) clone_network(&ws->models[k], &p->models[k]);
    }
    return ws; /* impl (the SVM) is shared: pcasvm_predict only reads it */
}

/* Frees a workspace (not the shared impl). */
static void ws_free(Classifier *ws) {
    for (int k = 0; k < ws->n_models; k++) model_free(&ws->models[k]);
    free(ws->models);
    free(ws);
}

/* Activations for batches of `want` images (at least what it had). */
static void ws_reserve(Classifier *ws, int want, int threads) {
    want = fit_batch(ws, want);
    if (ws->batch >= want) return;
    for (int k = 0; k < ws->n_models; k++) model_set_batch(&ws->models[k], want, 0, threads);
    ws->batch = want;
}

Classifier *workspace_take(dg_model *m, int want, int *chunk) {
    Classifier *ws = NULL;
    pthread_mutex_lock(&m->mu);
    if (m->n_idle > 0) ws = m->idle[--m->n_idle];
    pthread_mutex_unlock(&m->mu);
    if (!ws) ws = ws_new(m);
    ws_reserve(ws, want, m->threads);
    ws->tta = m->tta;
    *chunk = want < ws->batch ? want : ws->batch;
    return ws;
}

void workspace_give(dg_model *m, Classifier *ws) {
    pthread_mutex_lock(&m->mu);
    if (m->n_idle == m->cap_idle) {
        int cap = m->cap_idle ? 2 * m->cap_idle : 4;
        Classifier **idle = realloc(m->idle, (size_t)cap * sizeof *idle);
        if (!idle) { /* out of memory: drop it rather than keep it */
            pthread_mutex_unlock(&m->mu);
            ws_free(ws);
            return;
        }
        m->idle = idle;
        m->cap_idle = cap;
    }
    m->idle[m->n_idle++] = ws;
    pthread_mutex_unlock(&m->mu);
}

void workspace_drop_all(dg_model *m) {
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < m->n_idle; i++) ws_free(m->idle[i]);
    m->n_idle = 0;
    pthread_mutex_unlock(&m->mu);
}
