/* resume.c — training checkpoints: (de)serialising the loop state, the
 * optimiser and the schedule; the checkpoint folder (latest pointer,
 * pruning, lock); see resume.h.
 *
 * Every number that must come back exactly is stored exactly: floats and
 * doubles as C99 hex strings ("%a"), 64-bit words (RNG states, the data
 * hash) as 16 hex digits, counters as JSON integers (exact below 2^53).
 * Reading trusts nothing: every field is range-checked and the order must
 * be a permutation, so a damaged checkpoint is refused with a message
 * rather than resumed into nonsense.
 */
#include "train/resume.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/check.h"
#include "core/util.h"
#include "train/options.h"

#define CHECKPOINT_FORMAT "1"
#define LATEST "latest"

/* ==== state ================================================================ */

void train_state_add_rng(TrainState *st, const char *name, Rng *rng) {
    DG_ASSERT(st->n_rngs < TRAIN_MAX_RNGS);
    st->rng_names[st->n_rngs] = name;
    st->rngs[st->n_rngs++] = rng;
}

void train_state_init(TrainState *st, Model *m, int n, uint64_t seed) {
    memset(st, 0, sizeof *st);
    st->n = n;
    st->order = dg_xmalloc((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) st->order[i] = i;
    st->n_best = m->n_param + m->n_buffer;
    st->best = dg_xcalloc(st->n_best + 1, sizeof(float));
    st->best_val_loss = INFINITY;
    rng_seed(&st->shuffle, seed, "shuffle");
    train_state_add_rng(st, "shuffle", &st->shuffle);
    train_state_add_rng(st, "dropout", &m->dropout_rng);
}

void train_state_init_ema(TrainState *st, const Model *m) {
    st->ema = dg_xmalloc((st->n_best + 1) * sizeof(float));
    memcpy(st->ema, m->params, m->n_param * sizeof(float));
    memcpy(st->ema + m->n_param, m->buffers, m->n_buffer * sizeof(float));
}

void train_state_init_slow(TrainState *st, const Model *m) {
    st->slow = dg_xmalloc((m->n_param + 1) * sizeof(float));
    memcpy(st->slow, m->params, m->n_param * sizeof(float));
}

void train_state_free(TrainState *st) {
    free(st->order);
    free(st->best);
    free(st->ema);
    free(st->slow);
    st->ema = NULL;
    st->slow = NULL;
    st->order = NULL;
    st->best = NULL;
}

static uint64_t hash_dataset(uint64_t h, const Dataset *ds) {
    int dims[3] = {ds ? ds->n : 0, ds ? ds->rows : 0, ds ? ds->cols : 0};
    h = hash_bytes(h, (const uint8_t *)dims, sizeof dims);
    if (!ds || ds->n <= 0) return h;
    h = hash_bytes(h, ds->pixels, (size_t)ds->n * ds->rows * ds->cols);
    if (ds->labels) h = hash_bytes(h, ds->labels, (size_t)ds->n);
    return h;
}

uint64_t train_data_hash(const Dataset *train, const Dataset *val) {
    return hash_dataset(hash_dataset(1469598103934665603ULL, train), val);
}

/* ==== exact JSON values ===================================================== */

static void put_f64(cJSON *o, const char *key, double v) {
    char buf[64];
    snprintf(buf, sizeof buf, "%a", v);
    cJSON_AddStringToObject(o, key, buf);
}

static void put_u64(cJSON *o, const char *key, uint64_t v) {
    char buf[24];
    snprintf(buf, sizeof buf, "%016llx", (unsigned long long)v);
    cJSON_AddStringToObject(o, key, buf);
}

static int get_f64(const cJSON *o, const char *key, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v) || v->valuestring[0] == '\0') return -1;
    char *end;
    double d = strtod(v->valuestring, &end);
    if (*end != '\0') return -1;
    *out = d;
    return 0;
}

static int parse_u64(const char *s, uint64_t *out) {
    if (strlen(s) != 16) return -1;
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return 0;
}

static int get_u64(const cJSON *o, const char *key, uint64_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? parse_u64(v->valuestring, out) : -1;
}

static int get_long(const cJSON *o, const char *key, long lo, long hi, long *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= (double)lo && d <= (double)hi) || d != floor(d)) return -1;
    *out = (long)d;
    return 0;
}

static int get_int(const cJSON *o, const char *key, int lo, int hi, int *out) {
    long v;
    if (get_long(o, key, lo, hi, &v) < 0) return -1;
    *out = (int)v;
    return 0;
}

/* ==== the configuration ====================================================== */

/* Every TrainConfig field that shapes the run: the options flagged
 * OPTF_CKPT in the option table (options.c). A new field that changes
 * results must be flagged there, or a resumed run will silently use its
 * default. Not stored: quiet (display), checkpoint_dir/resume/run_json/
 * on_step (per invocation). */
static char *config_to_json(const TrainConfig *cfg, int threads) {
    TrainOptions o;
    memset(&o, 0, sizeof o);
    o.cfg = *cfg;
    o.cfg.threads = threads;
    return train_options_json(&o, OPTF_CKPT, 1); /* only reads cfg: nothing to free */
}

/* Fills ck->cfg from JSON text; strings are copied into ck. */
static int config_from_json(Checkpoint *ck, const char *text) {
    const char *path = ck->path;
    TrainOptions o;
    memset(&o, 0, sizeof o);
    train_config_defaults(&o.cfg);
    char key[64], shown[48];
    int rc = text ? train_options_from_json(&o, text, OPTF_CKPT, key, sizeof key) : -2;
    if (rc == -1)
        dg_set_error("%s: checkpoint setting '%s' is unknown to this digits (written by a newer version?)", path,
                     dg_printable(key, shown, sizeof shown));
    else if (rc == -2 && key[0])
        dg_set_error("%s: checkpoint setting '%s' is missing or out of range", path, dg_printable(key, shown, sizeof shown));
    else if (rc == -2)
        dg_set_error("%s: checkpoint metadata digits.resume_config is missing or not JSON", path);
    if (rc == 0 && ((o.cfg.out_path && strlen(o.cfg.out_path) >= sizeof ck->out_path) ||
                    (o.cfg.log_path && strlen(o.cfg.log_path) >= sizeof ck->log_path)))
        rc = dg_set_error("%s: checkpoint setting 'out_path' or 'log_path' is too long", path);
    if (rc == 0) {
        ck->cfg = o.cfg;
        ck->cfg.out_path = o.cfg.out_path ? strcpy(ck->out_path, o.cfg.out_path) : NULL;
        ck->cfg.log_path = o.cfg.log_path ? strcpy(ck->log_path, o.cfg.log_path) : NULL;
        ck->threads = ck->cfg.threads;
    }
    free((char *)o.cfg.out_path);
    free((char *)o.cfg.log_path);
    return rc < 0 ? -1 : 0;
}

/* ==== the loop state ========================================================== */

static char *state_to_json(const TrainState *st, const Optimizer *o, const Schedule *s) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "epoch", st->epoch);
    cJSON_AddNumberToObject(j, "batch", st->batch);
    cJSON_AddNumberToObject(j, "step", (double)st->step);
    cJSON_AddNumberToObject(j, "finished", st->finished);
    cJSON_AddNumberToObject(j, "n_train", st->n);
    put_u64(j, "data_hash", st->data_hash);
    if (st->ranks > 1) cJSON_AddNumberToObject(j, "ranks", st->ranks);
    put_f64(j, "loss_sum", st->loss_sum);
    cJSON_AddNumberToObject(j, "correct", (double)st->correct);
    cJSON_AddNumberToObject(j, "seen", (double)st->seen);
    put_f64(j, "epoch_seconds", st->epoch_seconds);
    put_f64(j, "best_val_loss", st->best_val_loss);
    cJSON_AddNumberToObject(j, "since_best", st->since_best);

    cJSON *r = cJSON_AddObjectToObject(j, "result");
    cJSON_AddNumberToObject(r, "epochs_run", st->res.epochs_run);
    cJSON_AddNumberToObject(r, "best_epoch", st->res.best_epoch);
    put_f64(r, "best_val_loss", st->res.best_val_loss);
    put_f64(r, "best_val_acc", st->res.best_val_acc);
    put_f64(r, "train_loss", st->res.train_loss);
    put_f64(r, "train_acc", st->res.train_acc);
    put_f64(r, "seconds", st->res.seconds);

    cJSON *oj = cJSON_AddObjectToObject(j, "optimizer");
    cJSON_AddNumberToObject(oj, "step", (double)o->step);

    cJSON *sj = cJSON_AddObjectToObject(j, "schedule");
    put_f64(sj, "best", s->best);
    cJSON_AddNumberToObject(sj, "bad_epochs", s->bad_epochs);
    put_f64(sj, "current", s->current);

    cJSON *rj = cJSON_AddObjectToObject(j, "rng");
    for (int i = 0; i < st->n_rngs; i++) {
        cJSON *a = cJSON_AddArrayToObject(rj, st->rng_names[i]);
        for (int k = 0; k < 4; k++) {
            char buf[24];
            snprintf(buf, sizeof buf, "%016llx", (unsigned long long)st->rngs[i]->s[k]);
            cJSON_AddItemToArray(a, cJSON_CreateString(buf));
        }
    }
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    DG_ASSERT(text);
    return text;
}

/* ==== the folder ================================================================ */

int checkpoint_lock(const char *dir) {
    if (make_dirs(dir) < 0) return -1;
    char path[4200];
    snprintf(path, sizeof path, "%s/lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return dg_set_error("%s: cannot write in the checkpoint folder: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            return dg_set_error("%s: another digits train is using this checkpoint folder", dir);
        return dg_set_error("%s: cannot lock: %s", path, strerror(e));
    }
    return fd; /* open: the lock lasts until the caller closes it, or the process exits */
}

/* A name `latest` may hold: "ckpt-....safetensors", no path separators. */
static int valid_name(const char *name) {
    size_t len = strlen(name);
    return len > 17 && len < 200 && strncmp(name, "ckpt-", 5) == 0 && !strchr(name, '/') &&
           strcmp(name + len - 12, ".safetensors") == 0;
}

/* Reads DIR/latest into name (cap bytes); "" if absent or not a valid name. */
static void read_latest(const char *dir, char *name, size_t cap) {
    char path[4200];
    snprintf(path, sizeof path, "%s/" LATEST, dir);
    name[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f) return;
    if (fgets(name, (int)cap, f)) name[strcspn(name, "\r\n")] = '\0';
    fclose(f);
    if (!valid_name(name)) name[0] = '\0';
}

/* Deletes checkpoints other than keep1/keep2, and temp files of
 * interrupted saves (ours carry our pid: none are in flight now). */
static void prune(const char *dir, const char *keep1, const char *keep2) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[4400];
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        int ckpt = valid_name(n) && strcmp(n, keep1) != 0 && strcmp(n, keep2) != 0;
        int tmp = (strncmp(n, "ckpt-", 5) == 0 || strncmp(n, LATEST ".", 7) == 0) && strstr(n, ".tmp.");
        if (ckpt || tmp) {
            snprintf(path, sizeof path, "%s/%s", dir, n);
            unlink(path);
        }
    }
    closedir(d);
}

int checkpoint_save(const char *dir, const Model *m, Optimizer *o, const Schedule *s,
                    const TrainState *st, const TrainConfig *cfg, char *written, size_t len) {
    if (make_dirs(dir) < 0) return -1;
    char name[64], path[4200];
    snprintf(name, sizeof name, "ckpt-e%03d-s%08ld.safetensors", st->epoch, st->step);
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return dg_set_error("%s: path too long", dir);

    char *cfg_json = config_to_json(cfg, m->nthreads);
    char *state_json = state_to_json(st, o, s);
    const char *kv[] = {"digits.checkpoint", CHECKPOINT_FORMAT, "digits.resume_config", cfg_json,
                        "digits.state", state_json, cfg->run_json ? "digits.run" : NULL, cfg->run_json,
                        NULL};
    size_t n_opt;
    const float *opt_state = optim_state(o, &n_opt);
    SafeTensor extra[5] = {
        {"train.optim", "F32", n_opt, opt_state},
        {"train.best", "F32", st->n_best, st->best},
        {"train.order", "I32", (size_t)st->n, st->order},
    };
    int n_extra = 3;
    if (st->ema) extra[n_extra++] = (SafeTensor){"train.ema", "F32", st->n_best, st->ema};
    if (st->slow) extra[n_extra++] = (SafeTensor){"train.slow", "F32", m->n_param, st->slow};
    int rc = model_save_extra(m, path, kv, extra, n_extra);
    free(cfg_json);
    free(state_json);
    if (rc < 0) return -1;

    char prev[256];
    read_latest(dir, prev, sizeof prev);
    char latest[4200];
    snprintf(latest, sizeof latest, "%s/" LATEST, dir);
    AtomicFile af;
    if (atomic_file_open(&af, latest) < 0) return -1;
    if (fprintf(af.f, "%s\n", name) < 0) {
        atomic_file_abort(&af);
        return dg_set_error("%s: write failed: %s", latest, strerror(errno));
    }
    if (atomic_file_commit(&af) < 0) return -1;
    prune(dir, name, prev);
    if (written) snprintf(written, len, "%s", path);
    return 0;
}

/* ==== reading ==================================================================== */

void checkpoint_close(Checkpoint *ck) {
    safetensors_close(ck->st);
    free(ck->run_json);
    ck->st = NULL;
    ck->run_json = NULL;
}

static int open_one(const char *path, Checkpoint *ck, Model *m) {
    snprintf(ck->path, sizeof ck->path, "%s", path);
    ck->st = safetensors_open(path);
    if (!ck->st) return -1;
    const char *fmt = safetensors_meta(ck->st, "digits.checkpoint");
    if (!fmt) {
        checkpoint_close(ck);
        return dg_set_error("%s: not a checkpoint (a model file has no training state)", path);
    }
    if (strcmp(fmt, CHECKPOINT_FORMAT) != 0) {
        char shown[16];
        dg_set_error("%s: checkpoint format %s, this digits reads format %s", path,
                     dg_printable(fmt, shown, sizeof shown), CHECKPOINT_FORMAT);
        checkpoint_close(ck);
        return -1;
    }
    if (!safetensors_meta(ck->st, "digits.state")) {
        checkpoint_close(ck);
        return dg_set_error("%s: checkpoint has no digits.state metadata", path);
    }
    if (config_from_json(ck, safetensors_meta(ck->st, "digits.resume_config")) < 0 ||
        model_load_from(m, ck->st) < 0) {
        checkpoint_close(ck);
        return -1;
    }
    const char *run = safetensors_meta(ck->st, "digits.run");
    if (run) {
        ck->run_json = strdup(run);
        DG_ASSERT(ck->run_json);
    }
    return 0;
}

static int by_name_desc(const void *a, const void *b) {
    return strcmp(*(char *const *)b, *(char *const *)a);
}

int checkpoint_open(const char *dir, Checkpoint *ck, Model *m) {
    memset(ck, 0, sizeof *ck);
    memset(m, 0, sizeof *m);
    struct stat sb;
    if (stat(dir, &sb) != 0) return dg_set_error("%s: cannot open: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return dg_set_error("%s: not a checkpoint folder (--resume takes the --checkpoint-dir of a run)", dir);
    /* candidates: what `latest` names, then every checkpoint, newest first */
    char latest[256];
    read_latest(dir, latest, sizeof latest);
    char **names = NULL;
    size_t n = 0;
    DIR *d = opendir(dir);
    if (!d) return dg_set_error("%s: cannot read: %s", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!valid_name(e->d_name) || strcmp(e->d_name, latest) == 0) continue;
        char **grown = realloc(names, (n + 1) * sizeof *names);
        DG_ASSERT(grown);
        names = grown;
        names[n] = strdup(e->d_name);
        DG_ASSERT(names[n]);
        n++;
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, by_name_desc);

    int rc = -1;
    char first_error[600] = "";
    char path[4400];
    for (size_t i = 0; i <= n && rc < 0; i++) {
        const char *name = i == 0 ? latest : names[i - 1];
        if (!name[0]) continue;
        snprintf(path, sizeof path, "%s/%s", dir, name);
        rc = open_one(path, ck, m);
        if (rc < 0 && !first_error[0]) snprintf(first_error, sizeof first_error, "%s", dg_errmsg());
        if (rc == 0 && i > 0)
            snprintf(ck->warning, sizeof ck->warning, "%s; resuming from %s instead",
                     first_error[0] ? first_error : "no usable 'latest' pointer", name);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    if (rc == 0) return 0;
    if (first_error[0]) return dg_set_error("%s", first_error);
    return dg_set_error("%s: no checkpoint to resume from (no %s/" LATEST "; was the run started "
                        "with --checkpoint-dir %s?)", dir, dir, dir);
}

/* The checkpoint continues this run: the same training data, threads and
 * (in --dist-mode exact) ranks, or the results would differ. */
static int check_same_run(const char *path, const cJSON *j, const Checkpoint *ck, const Model *m,
                          const TrainState *st, const TrainConfig *cfg) {
    int n_train;
    uint64_t hash;
    if (get_int(j, "n_train", 1, 1 << 30, &n_train) < 0 || get_u64(j, "data_hash", &hash) < 0)
        return dg_set_error("%s: checkpoint state lacks n_train/data_hash", path);
    if (n_train != st->n || hash != st->data_hash)
        return dg_set_error("%s: the checkpoint was trained on other data (%d training images, data hash "
                            "%016llx; now %d, %016llx): same --data, --limit and --val-split needed",
                            path, n_train, (unsigned long long)hash, st->n, (unsigned long long)st->data_hash);
    if (m->nthreads != ck->threads)
        return dg_set_error("%s: the run used %d threads, this one %d: results would differ (resume "
                            "with --threads %d)", path, ck->threads, m->nthreads, ck->threads);
    int ranks = 1, now = st->ranks > 1 ? st->ranks : 1;
    if (cJSON_GetObjectItemCaseSensitive(j, "ranks") && get_int(j, "ranks", 2, 1 << 20, &ranks) < 0)
        return dg_set_error("%s: checkpoint state has a malformed ranks count", path);
    if (cfg->dist_mode == 0 && ranks != now)
        return dg_set_error("%s: the run used %d rank%s, this one %d: in --dist-mode exact the results would "
                            "differ (resume with mpirun -np %d)", path, ranks, ranks == 1 ? "" : "s", now, ranks);
    return 0;
}

/* Where the run stood: epoch, batch and step, the epoch's running sums,
 * the result so far, the optimiser's step and the schedule's state. Read
 * whole before any of it is applied. */
static int read_progress(const char *path, const cJSON *j, Optimizer *o, Schedule *s, TrainState *st,
                         const TrainConfig *cfg) {
    const int B = cfg->batch_size;
    const int steps_per_epoch = (st->n + B - 1) / B;
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "result");
    const cJSON *oj = cJSON_GetObjectItemCaseSensitive(j, "optimizer");
    const cJSON *sj = cJSON_GetObjectItemCaseSensitive(j, "schedule");
    TrainResult res = {0};
    int epoch, batch, since_best, bad_epochs, finished;
    long step, correct, seen, ostep;
    double loss_sum, epoch_seconds, best_val_loss, sched_best, sched_current;
    if (get_int(j, "epoch", 0, cfg->epochs, &epoch) < 0 || get_int(j, "batch", 0, steps_per_epoch - 1, &batch) < 0 ||
        get_long(j, "step", 0, 1L << 50, &step) < 0 || get_int(j, "finished", 0, 1, &finished) < 0 ||
        get_f64(j, "loss_sum", &loss_sum) < 0 || get_long(j, "correct", 0, st->n, &correct) < 0 ||
        get_long(j, "seen", 0, st->n, &seen) < 0 || get_f64(j, "epoch_seconds", &epoch_seconds) < 0 ||
        get_f64(j, "best_val_loss", &best_val_loss) < 0 || get_int(j, "since_best", 0, 1 << 30, &since_best) < 0 ||
        !cJSON_IsObject(r) || get_int(r, "epochs_run", 0, cfg->epochs, &res.epochs_run) < 0 ||
        get_int(r, "best_epoch", 0, cfg->epochs, &res.best_epoch) < 0 ||
        get_f64(r, "best_val_loss", &res.best_val_loss) < 0 || get_f64(r, "best_val_acc", &res.best_val_acc) < 0 ||
        get_f64(r, "train_loss", &res.train_loss) < 0 || get_f64(r, "train_acc", &res.train_acc) < 0 ||
        get_f64(r, "seconds", &res.seconds) < 0 || !cJSON_IsObject(oj) ||
        get_long(oj, "step", 0, 1L << 50, &ostep) < 0 || !cJSON_IsObject(sj) ||
        get_f64(sj, "best", &sched_best) < 0 || get_int(sj, "bad_epochs", 0, 1 << 30, &bad_epochs) < 0 ||
        get_f64(sj, "current", &sched_current) < 0)
        return dg_set_error("%s: checkpoint state is incomplete or out of range (for %d epochs of %d "
                            "batches)", path, cfg->epochs, steps_per_epoch);
    st->epoch = epoch;
    st->batch = batch;
    st->step = step;
    st->finished = finished;
    st->loss_sum = loss_sum;
    st->correct = correct;
    st->seen = seen;
    st->epoch_seconds = epoch_seconds;
    st->best_val_loss = best_val_loss;
    st->since_best = since_best;
    st->res = res;
    o->step = ostep;
    s->best = (float)sched_best;
    s->current = (float)sched_current;
    s->bad_epochs = bad_epochs;
    return 0;
}

/* Every random stream this build keeps, and no other. */
static int read_rngs(const char *path, const cJSON *rj, TrainState *st) {
    int n_saved = cJSON_IsObject(rj) ? cJSON_GetArraySize(rj) : -1;
    if (n_saved != st->n_rngs)
        return dg_set_error("%s: checkpoint has %d RNG streams, this digits keeps %d", path, n_saved, st->n_rngs);
    for (int i = 0; i < st->n_rngs; i++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(rj, st->rng_names[i]);
        Rng v = {{0}};
        int ok = cJSON_IsArray(a) && cJSON_GetArraySize(a) == 4;
        for (int k = 0; ok && k < 4; k++) {
            const cJSON *w = cJSON_GetArrayItem(a, k);
            ok = cJSON_IsString(w) && parse_u64(w->valuestring, &v.s[k]) == 0;
        }
        if (!ok || (v.s[0] | v.s[1] | v.s[2] | v.s[3]) == 0)
            return dg_set_error("%s: checkpoint RNG stream '%s' is missing or invalid", path, st->rng_names[i]);
        *st->rngs[i] = v;
    }
    return 0;
}

/* The optimiser's state, the best weights, the data order and the weight
 * averages the run keeps (EMA, Lookahead's slow weights). The order must be
 * a permutation of 0..n-1: it indexes the images. */
static int read_tensors(const Checkpoint *ck, const Model *m, Optimizer *o, TrainState *st) {
    size_t n_opt;
    float *opt_state = optim_state(o, &n_opt);
    if (safetensors_get(ck->st, "train.optim", "F32", n_opt, opt_state) < 0 ||
        safetensors_get(ck->st, "train.best", "F32", st->n_best, st->best) < 0 ||
        safetensors_get(ck->st, "train.order", "I32", (size_t)st->n, st->order) < 0 ||
        (st->ema && safetensors_get(ck->st, "train.ema", "F32", st->n_best, st->ema) < 0) ||
        (st->slow && safetensors_get(ck->st, "train.slow", "F32", m->n_param, st->slow) < 0))
        return -1;
    uint8_t *seen_idx = dg_xcalloc((size_t)st->n, 1);
    int perm = 1;
    for (int i = 0; i < st->n && perm; i++) {
        int k = st->order[i];
        perm = k >= 0 && k < st->n && !seen_idx[k];
        if (perm) seen_idx[k] = 1;
    }
    free(seen_idx);
    if (!perm)
        return dg_set_error("%s: tensor train.order is not a permutation of the %d training images", ck->path,
                            st->n);
    return 0;
}

int checkpoint_restore(const Checkpoint *ck, const Model *m, Optimizer *o, Schedule *s,
                       TrainState *st, const TrainConfig *cfg) {
    const char *path = ck->path;
    cJSON *j = cJSON_Parse(safetensors_meta(ck->st, "digits.state"));
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return dg_set_error("%s: checkpoint metadata digits.state is not JSON", path);
    }
    int rc = check_same_run(path, j, ck, m, st, cfg) < 0 || read_progress(path, j, o, s, st, cfg) < 0 ||
                     read_rngs(path, cJSON_GetObjectItemCaseSensitive(j, "rng"), st) < 0 ||
                     read_tensors(ck, m, o, st) < 0
                 ? -1
                 : 0;
    cJSON_Delete(j);
    return rc;
}

/* ==== the CSV log ==================================================================== */

int checkpoint_trim_log(const char *path, int epochs) {
    struct stat sb;
    if (stat(path, &sb) != 0) return 0; /* nothing yet */
    char *data;
    size_t len;
    if (read_whole_file(path, 256u << 20, &data, &len) < 0) return -1;
    AtomicFile af;
    if (atomic_file_open(&af, path) < 0) {
        free(data);
        return -1;
    }
    int line = 0;
    for (char *p = data; *p;) {
        char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) + 1 : strlen(p);
        int keep = line == 0 || (atoi(p) >= 1 && atoi(p) <= epochs);
        if (keep && fwrite(p, 1, n, af.f) != n) break;
        p += n;
        line++;
    }
    free(data);
    return atomic_file_commit(&af);
}

/* ==== an ensemble run's folder ==================================================== */

#define ENSEMBLE_SETTINGS "ensemble.json"

int checkpoint_save_ensemble(const char *dir, const TrainConfig *cfg, int threads) {
    if (make_dirs(dir) < 0) return -1;
    char path[4200];
    if (snprintf(path, sizeof path, "%s/" ENSEMBLE_SETTINGS, dir) >= (int)sizeof path)
        return dg_set_error("%s: path too long", dir);
    char *cfg_json = config_to_json(cfg, threads);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "digits.checkpoint", CHECKPOINT_FORMAT);
    cJSON_AddStringToObject(o, "digits.resume_config", cfg_json);
    if (cfg->run_json) cJSON_AddStringToObject(o, "digits.run", cfg->run_json);
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    free(cfg_json);
    DG_ASSERT(text);
    AtomicFile af;
    int rc = atomic_file_open(&af, path);
    if (rc == 0 && fprintf(af.f, "%s\n", text) < 0) {
        atomic_file_abort(&af);
        rc = dg_set_error("%s: write failed: %s", path, strerror(errno));
    } else if (rc == 0) {
        rc = atomic_file_commit(&af);
    }
    free(text);
    return rc;
}

int checkpoint_matches(const Checkpoint *ck, const TrainConfig *cfg, int threads) {
    /* compared as settings (the stored ones read back), not as the stored
     * text: a setting newer than the checkpoint reads as its default */
    if (!ck->st) return 0;
    char *saved = config_to_json(&ck->cfg, ck->threads);
    char *now = config_to_json(cfg, threads);
    int same = strcmp(saved, now) == 0;
    free(saved);
    free(now);
    return same;
}

int checkpoint_is_ensemble(const char *dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/" ENSEMBLE_SETTINGS, dir);
    struct stat sb;
    return stat(path, &sb) == 0;
}

int checkpoint_open_ensemble(const char *dir, Checkpoint *ck) {
    memset(ck, 0, sizeof *ck);
    snprintf(ck->path, sizeof ck->path, "%s/" ENSEMBLE_SETTINGS, dir);
    char *text;
    size_t len;
    if (read_whole_file(ck->path, 1 << 20, &text, &len) < 0) return -1;
    cJSON *o = cJSON_Parse(text);
    free(text);
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(o, "digits.checkpoint");
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(o, "digits.resume_config");
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(o, "digits.run");
    int rc = -1;
    if (!cJSON_IsString(fmt) || !cJSON_IsString(cfg))
        dg_set_error("%s: not an ensemble run's settings (digits.checkpoint and digits.resume_config)", ck->path);
    else if (strcmp(fmt->valuestring, CHECKPOINT_FORMAT) != 0)
        dg_set_error("%s: checkpoint format %.8s, this digits reads format %s", ck->path, fmt->valuestring,
                     CHECKPOINT_FORMAT);
    else if (run && !cJSON_IsString(run))
        dg_set_error("%s: digits.run is not text", ck->path);
    else
        rc = config_from_json(ck, cfg->valuestring);
    if (rc == 0 && run) {
        ck->run_json = strdup(run->valuestring);
        DG_ASSERT(ck->run_json);
    }
    cJSON_Delete(o);
    return rc;
}

void checkpoint_remove(const char *dir) {
    prune(dir, "", "");
    char path[4200];
    snprintf(path, sizeof path, "%s/" LATEST, dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/lock", dir);
    unlink(path);
    rmdir(dir); /* fails, harmlessly, if someone put other files there */
}
