/* train.c — dg_train_config (the options of `digits train`, by the names
 * of its single option table, train/options.c) and dg_train: the training
 * loop of train/train.c with the API's progress callback and stop flag, on
 * a network the caller holds. A whole run as the command line does it
 * (data, ensembles, checkpoints and resume, the model file) is
 * dg_train_run (train_run.c).
 * Leaves out: the command line's actions (help, print-config, summary):
 * dg_train_set refuses them. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/check.h"
#include "data/augment.h"
#include "model/model.h"
#include "train/train.h"

/* The table's rows that are actions of the command line, not settings. */
static const char *const actions[] = {"help", "print-config", "summary", NULL};

dg_train_config *dg_train_config_new(void) {
    dg_train_config *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    train_options_defaults(&c->o);
    c->o.cfg.quiet = 1;
    return c;
}

void dg_train_config_free(dg_train_config *cfg) {
    if (!cfg) return;
    train_options_free(&cfg->o);
    free(cfg);
}

/* The table row of a setting, or NULL with DG_ERR_ARG. */
static const TrainOption *find(const char *func, const char *name, int *rc) {
    *rc = api_need(name, func, "name");
    if (*rc) return NULL;
    const TrainOption *opt = train_option_find(name);
    if (!opt) {
        const char *near = train_option_suggest(name);
        *rc = near ? api_fail(DG_ERR_ARG, "%s: unknown option '%.60s'; did you mean '%s'?", func, name, near)
                   : api_fail(DG_ERR_ARG, "%s: unknown option '%.60s'", func, name);
        return NULL;
    }
    for (int i = 0; actions[i]; i++)
        if (strcmp(actions[i], opt->name) == 0) {
            *rc = api_fail(DG_ERR_ARG, "%s: '%s' is an action of the command line (digits train), not a setting",
                           func, opt->name);
            return NULL;
        }
    return opt;
}

int dg_train_set(dg_train_config *cfg, const char *name, const char *value) {
    int rc = api_need(cfg, "dg_train_set", "cfg");
    if (rc) return rc;
    const TrainOption *opt = find("dg_train_set", name, &rc);
    if (!opt) return rc;
    if ((rc = api_need(value, "dg_train_set", "value"))) return rc;
    if (strcmp(opt->name, "config") == 0) return dg_train_config_load(cfg, value);
    char why[160];
    if (train_option_set(&cfg->o, opt, value, why, sizeof why) < 0)
        return api_fail(DG_ERR_ARG, "dg_train_set: %s: '%.60s' is not %s", opt->name, value, why);
    cfg->o.given[train_option_index(opt)] = 1; /* dg_train_run's resume refuses it if it differs */
    return DG_OK;
}

int dg_train_set_int(dg_train_config *cfg, const char *name, long value) {
    char text[32];
    snprintf(text, sizeof text, "%ld", value);
    return dg_train_set(cfg, name, text);
}

int dg_train_set_float(dg_train_config *cfg, const char *name, double value) {
    char text[40];
    snprintf(text, sizeof text, "%.17g", value);
    return dg_train_set(cfg, name, text);
}

int dg_train_set_bool(dg_train_config *cfg, const char *name, int value) {
    return dg_train_set(cfg, name, value ? "true" : "false");
}

int dg_train_get(const dg_train_config *cfg, const char *name, char *buf, size_t len) {
    int rc = api_need(cfg, "dg_train_get", "cfg");
    if (rc || (rc = api_need(buf, "dg_train_get", "buf"))) return rc;
    if (len == 0) return api_fail(DG_ERR_ARG, "dg_train_get: len is 0");
    const TrainOption *opt = find("dg_train_get", name, &rc);
    if (!opt) return rc;
    train_option_format(&cfg->o, opt, buf, len);
    return DG_OK;
}

/* ---- dg_train ------------------------------------------------------------------ */

/* What the loop's hooks need. */
typedef struct {
    dg_progress_fn fn;
    void *user;
    const volatile int *stop; /* the caller's flag (may be NULL) */
    volatile int halt;        /* the loop's TrainConfig.stop points here */
    dg_progress p;
} Run;

/* After every step: the callback, then the caller's flag (which the
 * callback may have set). */
static void on_step(void *ctx, long step) {
    Run *r = ctx;
    if (r->fn) {
        r->p.step = step;
        r->p.epoch = (int)((step - 1) / r->p.steps_per_epoch) + 1;
        r->p.epoch_done = 0;
        if (r->fn(&r->p, r->user)) r->halt = 1;
    }
    if (r->stop && *r->stop) r->halt = 1;
}

/* After every epoch's validation. */
static void on_epoch(void *ctx, int epoch, double tl, double ta, double vl, double va) {
    Run *r = ctx;
    if (!r->fn) return;
    r->p.epoch = epoch;
    r->p.epoch_done = 1;
    r->p.train_loss = tl, r->p.train_acc = ta, r->p.val_loss = vl, r->p.val_acc = va;
    if (r->fn(&r->p, r->user)) r->halt = 1;
}

/* train/val for the loop: val given, else a stratified val-split of train;
 * "limit" first. Both new copies (caller frees). */
static void make_sets(const TrainOptions *o, const Dataset *train, const Dataset *val, Dataset *tr, Dataset *va) {
    int n = o->limit && o->limit < train->n ? o->limit : train->n;
    int *ti, *vi, nt, nv;
    if (val) {
        ti = dg_xmalloc((size_t)n * sizeof *ti);
        for (int i = 0; i < n; i++) ti[i] = i;
        dataset_subset(tr, train, ti, n);
        free(ti);
        int *all = dg_xmalloc((size_t)(val->n ? val->n : 1) * sizeof *all);
        for (int i = 0; i < val->n; i++) all[i] = i;
        dataset_subset(va, val, all, val->n);
        free(all);
        return;
    }
    split_stratified(train->labels, n, o->val_split, o->cfg.seed, &ti, &nt, &vi, &nv);
    dataset_subset(tr, train, ti, nt);
    dataset_subset(va, train, vi, nv);
    free(ti);
    free(vi);
}

/* The arguments dg_train needs; DG_OK or the error. */
static int check_train(const dg_model *m, const dg_dataset *train, const dg_dataset *val, const dg_train_config *cfg) {
    const char *F = "dg_train";
    int rc = api_need(m, F, "model");
    if (rc || (rc = api_need(train, F, "train")) || (rc = api_need(cfg, F, "cfg"))) return rc;
    if (m->proto.kind != CLASSIFIER_CNN)
        return api_fail(DG_ERR_UNSUPPORTED, "%s: %s: only a single network trains here (digits train makes "
                        "ensembles and SVMs)", F, m->proto.name);
    const Shape *in = &m->proto.models[0].input_shape;
    const dg_dataset *sets[2] = {train, val};
    for (int i = 0; i < 2; i++) {
        if (!sets[i]) continue;
        if (!sets[i]->ds.labels) return api_fail(DG_ERR_ARG, "%s: the %s set has no labels", F, i ? "val" : "train");
        if (sets[i]->ds.rows != in->h || sets[i]->ds.cols != in->w)
            return api_fail(DG_ERR_SIZE, "%s: the %s images are %dx%d, the model takes %dx%d", F, i ? "val" : "train",
                            sets[i]->ds.rows, sets[i]->ds.cols, in->h, in->w);
    }
    if (train->ds.n == 0) return api_fail(DG_ERR_ARG, "%s: the training set is empty", F);
    const TrainOptions *o = &cfg->o;
    if (o->ensemble > 1 || o->ensemble_models || o->kfold || o->resume || o->checkpoint_dir || o->monitor ||
        o->monitor_test)
        return api_fail(DG_ERR_ARG, "%s: ensembles, checkpoints, resume and monitor sets train with dg_train_run", F);
    return DG_OK;
}

/* The model file's digits.metrics of a finished run. */
static char *result_json(const TrainResult *res) {
    char buf[256];
    snprintf(buf, sizeof buf,
             "{\"train_seconds\":%.2f,\"epochs_run\":%d,\"best_epoch\":%d,\"val_loss\":%.6f,\"val_accuracy\":%.6f}",
             res->seconds, res->epochs_run, res->best_epoch, res->best_val_loss, res->best_val_acc);
    return strdup(buf);
}

int dg_train(dg_model *m, const dg_dataset *train, const dg_dataset *val, const dg_train_config *cfg,
             dg_progress_fn progress, void *user, const volatile int *stop) {
    int rc = check_train(m, train, val, cfg);
    if (rc) return rc;
    const TrainOptions *o = &cfg->o;
    TrainConfig tc = o->cfg;
    AugmentConfig aug;
    if (o->augment) {
        if (augment_parse(o->augment, &aug) < 0) return api_fail(DG_ERR_ARG, "dg_train: augment: %s", dg_errmsg());
        tc.augment = &aug;
    }
    Dataset tr, va;
    make_sets(o, &train->ds, val ? &val->ds : NULL, &tr, &va);
    if (tr.n == 0) {
        dataset_free(&tr);
        dataset_free(&va);
        return api_fail(DG_ERR_ARG, "dg_train: no training images left after the validation split");
    }
    Model *net = &m->proto.models[0];
    workspace_drop_all(m); /* their weights are about to change */
    if (m->fresh) {
        model_init_params(net, tc.seed);
        train_set_normalisation(net, &tc, &tr);
    }
    free(net->train_config_json);
    net->train_config_json = train_config_json(&tc, net->spec_name, tr.n, va.n);
    Run r = {.fn = progress, .user = user, .stop = stop};
    r.p.epochs = tc.epochs;
    r.p.steps_per_epoch = (tr.n + tc.batch_size - 1) / tc.batch_size;
    r.p.val_loss = r.p.val_acc = NAN;
    tc.on_step = on_step, tc.on_epoch = on_epoch, tc.on_step_ctx = &r, tc.stop = &r.halt;
    int bf16_before = model_bf16();
    if (o->precision) model_set_bf16(1);
    TrainResult res;
    int trained = train_run(net, &tr, va.n ? &va : NULL, &tc, &res);
    model_set_bf16(bf16_before);
    dataset_free(&tr);
    dataset_free(&va);
    model_release_batch(net); /* the training activations: predictions use workspaces */
    m->fresh = 0;
    m->save_dtype = tc.dtype;
    if (trained < 0) return api_file_error(NULL);
    free(net->metrics_json);
    net->metrics_json = result_json(&res);
    return res.interrupted ? DG_STOPPED : DG_OK;
}
