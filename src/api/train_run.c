/* train_run.c — dg_train_run: a whole training run as `digits train` does
 * it, from a dg_train_config alone: the model from "model" (or the
 * checkpoint in "resume", whose settings it takes and whose conflicting
 * ones it refuses), the data from "data" (a stratified "val-split"), one
 * network or an ensemble ("ensemble", "ensemble-models", "kfold"),
 * checkpoints in "checkpoint-dir", the test set, the model file ("out", or
 * the first free OUT-DIR/NAME.safetensors, NAME-2, ...). Also the config
 * file ("config") and --print-config's YAML, and the checks of options
 * that do not combine.
 * Under mpirun (src/dist) every rank trains and only rank 0 writes files
 * (the model, the log, checkpoints); an ensemble's members are spread over
 * the ranks (ens.spread: each rank checkpoints the members it trains),
 * rank 0 alone prints, tests and saves, and every rank returns the same
 * status (rank 0's).
 * Leaves out: the command line itself (flag syntax, --help, --summary's
 * table, exit statuses and signal handlers, joining the MPI job and the
 * ranks' agreement checks: apps/cmd_train.c, cmd_train_mpi.c) and the
 * PCA + SVM baseline (its own flags: apps/cmd_train_svm.c). The run's
 * lines go to the config's log callback (none: silent); the per-epoch lines
 * are the loop's own (printed unless "quiet"). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "api/api.h"
#include "core/check.h"
#include "core/util.h"
#include "data/augment.h"
#include "dist/dist.h"
#include "eval/ensemble.h"
#include "eval/holdout.h"
#include "model/model.h"
#include "train/ensemble_train.h"
#include "train/resume.h"
#include "train/train.h"

/* ==== the config file, its YAML, the checks ================================== */

/* A line for the config's log callback (printf-style; nothing without one). */
static void say(const dg_train_config *cfg, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(const dg_train_config *cfg, int level, const char *fmt, ...) {
    if (!cfg->log) return;
    char line[9000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    cfg->log(level, line, cfg->log_user);
}

/* 1 for the process that writes files: rank 0 under mpirun, else the only one. */
static int writer(void) { return dist_rank() == 0; }

int dg_train_set_log(dg_train_config *cfg, dg_log_fn fn, void *user) {
    int rc = api_need(cfg, "dg_train_set_log", "cfg");
    if (rc) return rc;
    cfg->log = fn;
    cfg->log_user = user;
    return DG_OK;
}

int dg_train_config_load(dg_train_config *cfg, const char *yaml_path) {
    int rc = api_need(cfg, "dg_train_config_load", "cfg");
    if (rc || (rc = api_need(yaml_path, "dg_train_config_load", "path"))) return rc;
    if (train_options_read_yaml(&cfg->o, yaml_path) < 0) {
        struct stat st;
        return stat(yaml_path, &st) == 0 && S_ISREG(st.st_mode) ? DG_ERR_FORMAT : DG_ERR_IO;
    }
    free(cfg->o.config);
    cfg->o.config = strdup(yaml_path);
    if (cfg->o.notice[0]) say(cfg, DG_LOG_WARN, "%s: ignored %s", yaml_path, cfg->o.notice);
    return DG_OK;
}

char *dg_train_config_yaml(const dg_train_config *cfg) {
    if (!cfg) return NULL;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return NULL;
    train_options_print_yaml(&cfg->o, f);
    fclose(f);
    return text;
}

/* Options that do not combine: DG_ERR_ARG naming them. */
static int check_combinations(const TrainOptions *o) {
    if (strcmp(o->model, "svm") == 0)
        return api_fail(DG_ERR_ARG,
                        "model svm takes its own flags and no config file: digits train --model svm --help");
    if (o->monitor && o->monitor_test) return api_fail(DG_ERR_ARG, "--monitor and --monitor-test: give one");
    if (o->cfg.monitor_every && !o->monitor && !o->monitor_test)
        return api_fail(DG_ERR_ARG, "--monitor-every needs --monitor DIR|FILE or --monitor-test");
    if (o->resume && o->checkpoint_dir && strcmp(o->checkpoint_dir, o->resume) != 0)
        return api_fail(DG_ERR_ARG, "--checkpoint-dir %s conflicts with --resume %s; a resumed run keeps "
                        "checkpointing into the folder it resumes from", o->checkpoint_dir, o->resume);
    return DG_OK;
}

int dg_train_config_check(const dg_train_config *cfg) {
    int rc = api_need(cfg, "dg_train_config_check", "cfg");
    return rc ? rc : check_combinations(&cfg->o);
}

/* ==== one run's state ======================================================== */

typedef struct {
    const dg_train_config *api; /* the caller's (its log callback) */
    TrainOptions o;         /* the settings (a resumed run: the checkpoint's) */
    TrainConfig cfg;        /* what train_run gets (strings point into o and ck) */
    AugmentConfig aug;
    EnsembleTrainConfig ens;
    char ens_list[8192];    /* ensemble-models, split in place */
    int ensemble_mode;
    Model m;
    int built;              /* m holds a network (model_free it) */
    Checkpoint ck;
    Dataset all, train, val, testset, monset;
    const char *test_path;  /* NULL: no test */
    double load_secs;
    char *run_json;         /* digits.run of a new checkpointed run */
    char out[4200];
    char reserved[4200];    /* the automatically named file, created empty ("" none) */
    int lock_fd;            /* the checkpoint folder's lock (-1 none) */
    int bf16_before;        /* the process's bf16 setting, restored at the end */
    int threads_before;
} Job;

/* Fails early (before loading data and training) if path cannot be written. */
static int check_writable(const char *path) {
    char probe[4300];
    snprintf(probe, sizeof probe, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(probe, "wb");
    if (!f) return api_fail(DG_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    fclose(f);
    unlink(probe);
    return DG_OK;
}

/* ==== resume ================================================================= */

/* The checkpoint's settings as options: its TrainConfig and its digits.run. */
static int saved_settings(const Job *j, TrainOptions *saved) {
    int n;
    const TrainOption *t = train_options_table(&n);
    train_options_defaults(saved);
    TrainOptions from_ck;
    memset(&from_ck, 0, sizeof from_ck);
    from_ck.cfg = j->ck.cfg;
    for (int i = 0; i < n; i++)
        if (t[i].flags & OPTF_CKPT) train_option_copy(saved, &from_ck, &t[i]);
    saved->cfg.threads = j->ck.threads;
    if (train_options_from_json(saved, j->ck.run_json, OPTF_RUN, NULL, 0) < 0)
        return api_fail(DG_ERR_FORMAT, "%s: checkpoint lacks valid data settings (digits.run)", j->ck.path);
    /* the run's test set is stored resolved: "" or none = no test */
    if (!saved->test) train_option_set(saved, train_option_find("test"), "none", (char[8]){0}, 8);
    return DG_OK;
}

/* Every setting given (dg_train_set or the config file) must equal the
 * checkpoint's: DG_ERR_ARG naming the first that does not. */
static int check_conflicts(TrainOptions *o, const TrainOptions *saved, const char *dir) {
    int n;
    const TrainOption *t = train_options_table(&n);
#ifdef _OPENMP
    if (o->cfg.threads <= 0) o->cfg.threads = omp_get_max_threads();
#endif
    for (int i = 0; i < n; i++) {
        if (!o->given[i] || !(t[i].flags & (OPTF_CKPT | OPTF_RUN))) continue;
        char now[8300], was[8300];
        train_option_format(o, &t[i], now, sizeof now);
        train_option_format(saved, &t[i], was, sizeof was);
        if (strcmp(now, was) != 0)
            return api_fail(DG_ERR_ARG, "--%s %.200s conflicts with the checkpoint in %.200s (--%s %.200s); a "
                            "resumed run keeps the settings it started with: drop the %s, or start a new run",
                            t[i].name, now[0] ? now : "(none)", dir, t[i].name, was[0] ? was : "(none)",
                            o->given[i] == 2 ? "key from the config file" : "flag");
    }
    return DG_OK;
}

/* Open the checkpoint in "resume" and take every stored setting from it. */
static int adopt_checkpoint(Job *j) {
    TrainOptions *o = &j->o;
    const char *dir = o->resume;
    j->ens.resume = checkpoint_is_ensemble(dir);
    if (j->ens.resume ? checkpoint_open_ensemble(dir, &j->ck) < 0 : checkpoint_open(dir, &j->ck, &j->m) < 0)
        return DG_ERR_FORMAT;
    j->built = !j->ens.resume;
    if (writer() && (j->lock_fd = checkpoint_lock(dir)) < 0) return DG_ERR_IO;
    if (j->ck.warning[0]) say(j->api, DG_LOG_WARN, "warning: %s", j->ck.warning);
    TrainOptions saved;
    int rc = saved_settings(j, &saved);
    if (!rc) rc = check_conflicts(o, &saved, dir);
    int n;
    const TrainOption *t = train_options_table(&n);
    for (int i = 0; !rc && i < n; i++)
        if (t[i].flags & (OPTF_CKPT | OPTF_RUN)) train_option_copy(o, &saved, &t[i]);
    train_options_free(&saved);
    if (rc) return rc;
    if (j->ens.resume) {
        if (model_build_named(&j->m, o->model) < 0) return DG_ERR_FORMAT;
        j->built = 1;
    }
    return DG_OK;
}

/* ==== the steps ============================================================== */

/* The loop's configuration from the settings (and a resumed checkpoint);
 * sets the precision and the thread count for the run. */
static int make_config(Job *j) {
    TrainOptions *o = &j->o;
    j->cfg = o->cfg;
    j->cfg.augment = NULL;
    if (o->augment) {
        if (augment_parse(o->augment, &j->aug) < 0)
            return api_fail(DG_ERR_FORMAT, "%s%saugmentation setting: %s", o->resume ? j->ck.path : "",
                            o->resume ? ": " : "", dg_errmsg());
        j->cfg.augment = &j->aug;
    }
    if (o->precision && !model_set_bf16(1)) {
        say(j->api, DG_LOG_WARN, "--precision bf16: this CPU (or build) has no AVX512_BF16; running fp32");
        o->precision = 0;
    } else if (!o->precision) {
        model_set_bf16(0);
    }
    if (o->resume) {
        j->cfg.resume = j->ens.resume ? NULL : &j->ck; /* an ensemble's members resume from their own */
        j->cfg.checkpoint_dir = o->resume;
        j->cfg.run_json = j->ck.run_json;
    }
#ifdef _OPENMP
    if (j->cfg.threads > 0) omp_set_num_threads(j->cfg.threads);
#endif
    return DG_OK;
}

/* The members of an ensemble run, if it is one. */
static int plan_ensemble(Job *j) {
    TrainOptions *o = &j->o;
    EnsembleTrainConfig *ens = &j->ens;
    ens->n = o->ensemble;
    ens->kfold = o->kfold;
    ens->vote_logits = o->vote_logits;
    snprintf(j->ens_list, sizeof j->ens_list, "%s", o->ensemble_models ? o->ensemble_models : "");
    j->ensemble_mode = ens->n > 1 || o->ensemble_models || ens->kfold;
    if (!j->ensemble_mode) return DG_OK;
    if (o->ensemble_models) {
        if (ens->kfold)
            return api_fail(DG_ERR_ARG, "--kfold trains one --model per fold; it does not combine with "
                            "--ensemble-models");
        ens->n = 0;
        char *save = NULL;
        for (char *tok = strtok_r(j->ens_list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            if (ens->n == ENSEMBLE_TRAIN_MAX)
                return api_fail(DG_ERR_ARG, "--ensemble-models: at most %d members", ENSEMBLE_TRAIN_MAX);
            ens->models[ens->n++] = tok;
        }
        if (ens->n == 0) return api_fail(DG_ERR_ARG, "--ensemble-models: empty list");
    } else {
        if (ens->kfold) {
            if (ens->n > 1 && ens->n != ens->kfold)
                return api_fail(DG_ERR_ARG, "--kfold %d trains %d members; drop --ensemble %d", ens->kfold,
                                ens->kfold, ens->n);
            ens->n = ens->kfold;
        }
        for (int k = 0; k < ens->n; k++) ens->models[k] = o->model;
    }
    o->ensemble = ens->n;
    return DG_OK;
}

/* The automatically named model file: created empty to reserve it, so that
 * runs started side by side pick different names; removed at the end if
 * still empty (the run failed before saving). */
static int reserve(Job *j, const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) return -1;
    close(fd);
    snprintf(j->reserved, sizeof j->reserved, "%s", path);
    return 0;
}

/* "out" (an existing file only with "overwrite"), else the first free
 * OUT-DIR/BASE.safetensors, BASE-2, BASE-3, ... into j->out. */
static int name_out(Job *j, const char *base) {
    const TrainOptions *o = &j->o;
    struct stat st;
    const char *out = o->cfg.out_path, *dir = o->out_dir;
    if (out) {
        if (stat(out, &st) == 0 && !o->overwrite)
            return api_fail(DG_ERR_ARG, "%s exists; add --overwrite to replace it, or pick another --out name", out);
        snprintf(j->out, sizeof j->out, "%s", out);
        return DG_OK;
    }
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        return api_fail(DG_ERR_IO, "%s: cannot create the folder: %s", dir, strerror(errno));
    int k = 1;
    for (;;) {
        if (k == 1) snprintf(j->out, sizeof j->out, "%s/%s.safetensors", dir, base);
        else snprintf(j->out, sizeof j->out, "%s/%s-%d.safetensors", dir, base, k);
        if (reserve(j, j->out) == 0) break;
        if (errno != EEXIST) return api_fail(DG_ERR_IO, "%s: cannot write: %s", j->out, strerror(errno));
        if (++k > 9999) return api_fail(DG_ERR_IO, "%s: %s-2 ... -9999 are all taken; give --out", dir, base);
    }
    if (k > 1) say(j->api, DG_LOG_INFO, "%s/%s.safetensors exists: this run writes %s", dir, base, j->out);
    return DG_OK;
}

/* The model file: the checkpoint's when resuming, else name_out's. */
static int choose_out(Job *j) {
    const TrainOptions *o = &j->o;
    int rc;
    if (!writer()) return DG_OK; /* under mpirun rank 0 writes */
    if (o->resume) {
        snprintf(j->out, sizeof j->out, "%s", j->ck.cfg.out_path ? j->ck.cfg.out_path : "");
        if (!j->out[0]) return api_fail(DG_ERR_FORMAT, "%s: checkpoint names no model file", j->ck.path);
    } else {
        char base[300];
        const char *name = j->ensemble_mode ? j->ens.models[0] : j->m.spec_name;
        const char *slash = strrchr(name, '/');
        name = slash ? slash + 1 : name;
        if (j->ensemble_mode)
            snprintf(base, sizeof base, "%s-%s%d", name, j->ens.kfold ? "kfold" : "ensemble", j->ens.n);
        else
            snprintf(base, sizeof base, "%.299s", name);
        if ((rc = name_out(j, base))) return rc;
    }
    j->cfg.out_path = j->out;
    if ((rc = check_writable(j->out))) return rc;
    if (j->cfg.log_path && !o->resume && (rc = check_writable(j->cfg.log_path))) return rc;
    return DG_OK;
}

/* The training images from "data"; a folder without MNIST files whose
 * mnist/ or MNIST/raw/ has them (seed 004's root_dir './data', torchvision's
 * layout) is taken for that subfolder, with a note. Returns the error of
 * "data" itself. */
static int load_training_set(Job *j) {
    TrainOptions *o = &j->o;
    if (dataset_load(o->data, "train", &j->all) == 0) return DG_OK;
    int rc = api_file_error(o->data);
    if (!is_dir(o->data)) return rc;
    char first[1024], sub[4200], why[16];
    snprintf(first, sizeof first, "%s", dg_errmsg());
    static const char *const subs[] = {"mnist", "MNIST/raw"};
    for (int i = 0; i < 2; i++) {
        snprintf(sub, sizeof sub, "%s/%s", o->data, subs[i]);
        if (is_dir(sub) && dataset_load(sub, "train", &j->all) == 0) {
            say(j->api, DG_LOG_WARN, "%s holds no MNIST files; using %s", o->data, sub);
            train_option_set(o, train_option_find("data"), sub, why, sizeof why);
            return DG_OK;
        }
    }
    return api_fail(DG_ERR_IO, "%s", first);
}

/* A labelled set from path (split "test"), or the error. */
static int load_labelled(const char *path, Dataset *ds, const char *what) {
    if (dataset_load(path, "test", ds) < 0) return api_file_error(path);
    if (!ds->labels) return api_fail(DG_ERR_FORMAT, "%s: %s set has no labels", path, what);
    return DG_OK;
}

/* The training set split into train/val, the test set and the monitor set;
 * j->load_secs times the training data's part. */
static int load_data(Job *j) {
    const TrainOptions *o = &j->o;
    double t0 = now_seconds();
    int rc = load_training_set(j);
    if (rc) return rc;
    const char *data = o->data;
    if (!j->all.labels)
        return api_fail(DG_ERR_FORMAT, "%s: has no labels (a Kaggle test.csv?); training needs train.csv", data);
    if (j->all.rows != j->m.input_shape.h || j->all.cols != j->m.input_shape.w)
        return api_fail(DG_ERR_SIZE, "%s: images are %dx%d, model %s expects %dx%d", data, j->all.rows, j->all.cols,
                        o->model, j->m.input_shape.h, j->m.input_shape.w);
    if (o->limit && o->limit < j->all.n) j->all.n = o->limit;
    int *tr_idx, *va_idx, n_tr, n_va;
    split_stratified(j->all.labels, j->all.n, o->val_split, j->cfg.seed, &tr_idx, &n_tr, &va_idx, &n_va);
    dataset_subset(&j->train, &j->all, tr_idx, n_tr);
    dataset_subset(&j->val, &j->all, va_idx, n_va);
    free(tr_idx);
    free(va_idx);
    if (j->train.n == 0) return api_fail(DG_ERR_FORMAT, "%s: no training images left after the validation split", data);
    /* recorded in the model file: eval warns on this data, --split val re-cuts its validation images */
    j->cfg.data_hash = holdout_fingerprint(&j->all, j->all.n), j->cfg.data_n = j->all.n;
    j->cfg.val_split = o->val_split, j->cfg.data_path = data;
    j->load_secs = now_seconds() - t0;

    const char *test = o->test ? o->test : (is_dir(data) ? data : NULL);
    j->test_path = test && strcmp(test, "none") != 0 ? test : NULL;
    if (j->test_path && (rc = load_labelled(j->test_path, &j->testset, "test"))) return rc;
    if (o->monitor_test) {
        if (!j->test_path)
            return api_fail(DG_ERR_ARG, "--monitor-test: there is no --test set (give --test DIR|FILE)");
        j->cfg.monitor = &j->testset;
    } else if (o->monitor) {
        if ((rc = load_labelled(o->monitor, &j->monset, "monitor"))) return rc;
        j->cfg.monitor = &j->monset;
    }
    /* checked here: a mismatch would otherwise abort in the middle of training */
    const Dataset *mon = j->cfg.monitor;
    if (mon && (mon->rows != j->all.rows || mon->cols != j->all.cols))
        return api_fail(DG_ERR_SIZE, "%s: monitor images are %dx%d, training images %dx%d",
                        o->monitor ? o->monitor : j->test_path, mon->rows, mon->cols, j->all.rows, j->all.cols);
    if (mon && mon->n == 0) return api_fail(DG_ERR_FORMAT, "monitor set is empty");
    return DG_OK;
}

/* A new run with "checkpoint-dir": lock the folder and keep in every
 * checkpoint what "resume" needs to load the same data (digits.run).
 * Under mpirun an ensemble's ranks write their members' checkpoints: each
 * takes the folder; rank 0 alone locks it. */
static int start_checkpointing(Job *j) {
    TrainOptions *o = &j->o;
    if (!o->checkpoint_dir || o->resume || (!writer() && !j->ensemble_mode)) return DG_OK;
    if (writer() && (j->lock_fd = checkpoint_lock(o->checkpoint_dir)) < 0) return DG_ERR_IO;
    /* "resume" takes a folder with ensemble.json for an ensemble run */
    if (!j->ensemble_mode && checkpoint_is_ensemble(o->checkpoint_dir))
        return api_fail(DG_ERR_IO, "%s: holds an ensemble run's checkpoints; give this model its own --checkpoint-dir",
                        o->checkpoint_dir);
    char why[64];
    train_option_set(o, train_option_find("test"), j->test_path ? j->test_path : "none", why, sizeof why);
    if (j->test_path) j->test_path = o->test; /* the option's new copy: the old string may be the one freed */
    j->run_json = train_options_json(o, OPTF_RUN, 1);
    j->cfg.checkpoint_dir = o->checkpoint_dir;
    j->cfg.run_json = j->run_json;
    /* an ensemble's settings hold its thread count: the count itself */
#ifdef _OPENMP
    if (j->ensemble_mode && j->cfg.threads <= 0) j->cfg.threads = omp_get_max_threads();
#else
    if (j->ensemble_mode) j->cfg.threads = 1;
#endif
    return DG_OK;
}

/* ==== training =============================================================== */

/* The caller's callback and stop flag, as the loop's hooks (as dg_train's). */
typedef struct {
    dg_progress_fn fn;
    void *user;
    const volatile int *stop;
    volatile int halt;
    dg_progress p;
} Hooks;

static void hook_step(void *ctx, long step) {
    Hooks *h = ctx;
    h->p.step = step;
    h->p.epoch = (int)((step - 1) / h->p.steps_per_epoch) + 1;
    h->p.epoch_done = 0;
    if (h->fn(&h->p, h->user)) h->halt = 1;
    if (h->stop && *h->stop) h->halt = 1;
}

static void hook_epoch(void *ctx, int epoch, double tl, double ta, double vl, double va) {
    Hooks *h = ctx;
    h->p.epoch = epoch;
    h->p.epoch_done = 1;
    h->p.train_loss = tl, h->p.train_acc = ta, h->p.val_loss = vl, h->p.val_acc = va;
    if (h->fn(&h->p, h->user)) h->halt = 1;
    if (h->stop && *h->stop) h->halt = 1;
}

/* Without a callback the loop reads the caller's flag itself (a stop is
 * seen at once, also during validation); with one, the hooks pass both on. */
static void set_hooks(Job *j, Hooks *h, const volatile int *stop) {
    if (!h->fn) {
        j->cfg.stop = stop;
        return;
    }
    h->stop = stop;
    h->p.epochs = j->cfg.epochs;
    h->p.steps_per_epoch = (j->train.n + j->cfg.batch_size - 1) / j->cfg.batch_size;
    h->p.val_loss = h->p.val_acc = NAN;
    j->cfg.on_step = hook_step, j->cfg.on_epoch = hook_epoch, j->cfg.on_step_ctx = h, j->cfg.stop = &h->halt;
}

/* Train the one network (fresh or resumed). */
static int train_single(Job *j, TrainResult *res) {
    Model *m = &j->m;
    if (j->o.resume) {
        say(j->api, DG_LOG_INFO, "model %s: resuming from %s", m->spec_name, j->ck.path);
    } else {
        model_init_params(m, j->cfg.seed);
        double t0 = now_seconds();
        train_set_normalisation(m, &j->cfg, &j->train);
        j->load_secs += now_seconds() - t0;
        m->train_config_json = train_config_json(&j->cfg, m->spec_name, j->train.n, j->val.n);
    }
    say(j->api, DG_LOG_INFO,
        "model %s: %zu parameters, %.2f M MACs/image; %d train / %d validation images from %s (loaded in %.3fs)",
        m->spec_name, m->n_param + m->n_buffer, model_macs(m) / 1e6, j->train.n, j->val.n, j->o.data, j->load_secs);
    say(j->api, DG_LOG_STAGE, "train");
    int trained = train_run(m, &j->train, &j->val, &j->cfg, res);
    say(j->api, DG_LOG_STAGE, "trained");
    if (trained < 0) return DG_ERR_IO;
    if (res->interrupted) return DG_STOPPED;
    char line[300];
    int len = snprintf(line, sizeof line, "trained %d epochs in %.1fs (%.0f img/s)", res->epochs_run, res->seconds,
                       res->seconds > 0 ? (double)res->steps * j->cfg.batch_size / res->seconds : 0);
    if (res->best_epoch)
        snprintf(line + len, sizeof line - (size_t)len, "; best epoch %d: val loss %.4f acc %.4f", res->best_epoch,
                 res->best_val_loss, res->best_val_acc);
    say(j->api, DG_LOG_INFO, "%s", line);
    return DG_OK;
}

/* Test the trained network, record the metrics in it and save it. */
static int test_and_save(Job *j, const TrainResult *res) {
    char metrics[512];
    int len = snprintf(metrics, sizeof metrics,
                       "{\"train_seconds\":%.2f,\"load_seconds\":%.3f,\"epochs_run\":%d,\"best_epoch\":%d,"
                       "\"val_loss\":%.6f,\"val_accuracy\":%.6f",
                       res->seconds, j->load_secs, res->epochs_run, res->best_epoch, res->best_val_loss,
                       res->best_val_acc);
    if (j->testset.n) {
        double loss;
        double acc = model_predict_dataset(&j->m, &j->testset, 1000, NULL, NULL, &loss);
        say(j->api, DG_LOG_INFO, "test accuracy %.4f (loss %.4f) on %d images from %s", acc, loss, j->testset.n,
            j->test_path);
        len += snprintf(metrics + len, sizeof metrics - (size_t)len, ",\"test_accuracy\":%.6f,\"test_loss\":%.6f",
                        acc, loss);
    }
    snprintf(metrics + len, sizeof metrics - (size_t)len, "}");
    free(j->m.metrics_json);
    j->m.metrics_json = strdup(metrics);
    if (model_save_dtype(&j->m, j->out, (DgDtype)j->cfg.dtype) < 0) return DG_ERR_IO;
    say(j->api, DG_LOG_INFO, "saved %s", j->out);
    return DG_OK;
}

/* Rank 0: the trained ensemble's lines, test score and model file (the
 * members are freed). */
static int save_ensemble(Job *j, Model *members, EnsembleTrainResult *res) {
    EnsembleTrainConfig *ens = &j->ens;
    char line[200];
    int n = snprintf(line, sizeof line, "trained %d members in %.1fs", ens->n, res->seconds);
    if (!isnan(res->val_acc)) n += snprintf(line + n, sizeof line - (size_t)n, "; ensemble val acc %.4f", res->val_acc);
    if (!isnan(res->oof_acc)) snprintf(line + n, sizeof line - (size_t)n, "; out-of-fold acc %.4f", res->oof_acc);
    say(j->api, DG_LOG_INFO, "%s", line);
    char metrics[512];
    int len = snprintf(metrics, sizeof metrics, "{\"train_seconds\":%.2f,\"members\":%d", res->seconds, ens->n);
    if (!isnan(res->val_acc))
        len += snprintf(metrics + len, sizeof metrics - (size_t)len, ",\"val_accuracy\":%.6f", res->val_acc);
    if (!isnan(res->oof_acc))
        len += snprintf(metrics + len, sizeof metrics - (size_t)len, ",\"oof_accuracy\":%.6f", res->oof_acc);
    Classifier c;
    ensemble_classifier_from_models(&c, members, ens->n, ens->vote_logits);
    if (j->testset.n) {
        double loss;
        double acc = classifier_predict_dataset(&c, &j->testset, NULL, NULL, &loss);
        say(j->api, DG_LOG_INFO, "test accuracy %.4f (loss %.4f) on %d images from %s", acc, loss, j->testset.n,
            j->test_path);
        len += snprintf(metrics + len, sizeof metrics - (size_t)len, ",\"test_accuracy\":%.6f,\"test_loss\":%.6f",
                        acc, loss);
    }
    snprintf(metrics + len, sizeof metrics - (size_t)len, "}");
    /* the final file: every member, plus the ensemble's metrics */
    int rc = ensemble_save_dtype(j->out, c.models, c.n_models, c.vote_logits, res->train_config_json, metrics,
                                 (DgDtype)j->cfg.dtype) < 0 ? DG_ERR_IO : DG_OK;
    if (!rc) say(j->api, DG_LOG_INFO, "saved %s", j->out);
    classifier_free(&c);
    return rc;
}

/* Under mpirun: rank 0's status (rc there) on every rank, so that every
 * rank of an ensemble run ends the same way. */
static int rank0_status(int rc) {
    int32_t v = rc;
    if (dist_size() > 1) dist_bcast(&v, sizeof v, 0);
    if (v != DG_OK && !writer()) return api_fail(v, "rank 0 could not save the ensemble");
    return v;
}

/* Train, test and save an ensemble; the stop point in *oc when stopped.
 * Under mpirun the members are spread over the ranks; rank 0 alone prints,
 * tests and saves, and every rank returns the same status (a failure or
 * stop in training is every rank's: ensemble_train shares it). */
static int train_ensemble(Job *j, dg_train_outcome *oc) {
    EnsembleTrainConfig *ens = &j->ens;
    ens->val_split = j->o.val_split;
    ens->spread = 1;
    j->cfg.out_path = j->out; /* ranks > 0: "" (rank 0 writes the file) */
    if (writer())
        say(j->api, DG_LOG_INFO, "ensemble of %d members (%s%s...), vote %s, %d labelled images", ens->n,
            ens->kfold ? "stratified K-fold, " : "", ens->models[0], ens->vote_logits ? "logits" : "probs", j->all.n);
    Model *members;
    EnsembleTrainResult res;
    /* members split `all` themselves (shared split or folds) */
    say(j->api, DG_LOG_STAGE, "train");
    int trained = ensemble_train(ens, &j->all, &j->cfg, &members, &res);
    say(j->api, DG_LOG_STAGE, "trained");
    if (trained < 0) return DG_ERR_IO;
    if (res.interrupted) {
        oc->stop_member = res.stop_member;
        snprintf(oc->checkpoint, sizeof oc->checkpoint, "%s", res.checkpoint);
        free(res.train_config_json);
        return DG_STOPPED;
    }
    int rc = DG_OK;
    if (writer()) rc = save_ensemble(j, members, &res); /* ranks > 0: their members are in rank 0's file */
    free(res.train_config_json);
    return rank0_status(rc);
}

/* ==== dg_train_run ============================================================ */

/* A copy of the caller's options (strings duplicated), which the run may change. */
static void copy_options(TrainOptions *dst, const TrainOptions *src) {
    int n;
    const TrainOption *t = train_options_table(&n);
    train_options_defaults(dst);
    for (int i = 0; i < n; i++) train_option_copy(dst, src, &t[i]);
    memcpy(dst->given, src->given, sizeof dst->given);
    memcpy(dst->line, src->line, sizeof dst->line);
}

/* The steps before training: settings, model, output file, data, checkpoints. */
static int prepare(Job *j) {
    int rc = check_combinations(&j->o);
    if (rc) return rc;
    if (j->o.resume) {
        if ((rc = adopt_checkpoint(j))) return rc;
    } else {
        if (model_build_named(&j->m, j->o.model) < 0) return DG_ERR_FORMAT;
        j->built = 1;
    }
    if ((rc = make_config(j)) || (rc = plan_ensemble(j)) || (rc = choose_out(j))) return rc;
    if ((rc = load_data(j))) return rc;
    if (j->api->data_hook) j->api->data_hook(&j->train, &j->val);
    if ((rc = start_checkpointing(j))) return rc;
    /* one network, ranks > 0: no model file, log or checkpoints, no
     * progress lines (ensemble_train gives an ensemble's ranks their roles) */
    if (!writer() && !j->ensemble_mode) {
        j->cfg.out_path = NULL;
        j->cfg.log_path = NULL;
        j->cfg.checkpoint_dir = NULL;
        j->cfg.quiet = 1;
    }
    return DG_OK;
}

/* Frees the run's state; drops a reserved file still empty, gives back the
 * checkpoint folder's lock, the precision and the thread count. */
static void job_free(Job *j) {
    struct stat st;
    if (j->reserved[0] && stat(j->reserved, &st) == 0 && st.st_size == 0) unlink(j->reserved);
    if (j->lock_fd >= 0) close(j->lock_fd);
    dataset_free(&j->all);
    dataset_free(&j->train);
    dataset_free(&j->val);
    dataset_free(&j->testset);
    dataset_free(&j->monset);
    if (j->built) model_free(&j->m);
    checkpoint_close(&j->ck);
    free(j->run_json);
    train_options_free(&j->o);
    model_set_bf16(j->bf16_before);
#ifdef _OPENMP
    omp_set_num_threads(j->threads_before);
#endif
    free(j);
}

int dg_train_run(const dg_train_config *cfg, dg_model **out, dg_train_outcome *outcome, dg_progress_fn progress,
                 void *user, const volatile int *stop) {
    if (out) *out = NULL;
    int rc = api_need(cfg, "dg_train_run", "cfg");
    if (rc) return rc;
    dg_train_outcome scratch;
    dg_train_outcome *oc = outcome ? outcome : &scratch;
    memset(oc, 0, sizeof *oc);
    Job *j = calloc(1, sizeof *j);
    if (!j) return api_fail(DG_ERR_NOMEM, "out of memory");
    j->api = cfg;
    j->lock_fd = -1;
    j->bf16_before = model_bf16();
#ifdef _OPENMP
    j->threads_before = omp_get_max_threads();
#endif
    copy_options(&j->o, &cfg->o);
    rc = prepare(j);
    if (!rc) {
        snprintf(oc->model_path, sizeof oc->model_path, "%s", j->out);
        snprintf(oc->checkpoint_dir, sizeof oc->checkpoint_dir, "%s", j->cfg.checkpoint_dir ? j->cfg.checkpoint_dir : "");
        oc->ensemble = j->ensemble_mode;
        oc->members = j->ensemble_mode ? j->ens.n : 1;
        Hooks h = {.fn = progress, .user = user};
        set_hooks(j, &h, stop);
        if (j->ensemble_mode) {
            rc = train_ensemble(j, oc);
        } else {
            TrainResult res;
            rc = train_single(j, &res);
            if (rc == DG_STOPPED) {
                oc->stop_epoch = res.stop_epoch;
                oc->stop_step = res.steps;
                snprintf(oc->checkpoint, sizeof oc->checkpoint, "%s", res.checkpoint);
            } else if (!rc && writer()) {
                rc = test_and_save(j, &res);
            }
        }
    }
    if (rc == DG_STOPPED) oc->stopped = 1;
    job_free(j);
    if (rc == DG_OK && out && oc->model_path[0]) rc = dg_model_load(out, oc->model_path);
    return rc;
}
