/* train.c — the training loop; see train.h. */
#include "train/train.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/check.h"
#include "core/util.h"
#include "dist/dist.h"
#include "eval/holdout.h"
#include "eval/metrics.h"
#include "ops/ops.h"
#include "train/dist_train.h"
#include "train/options.h"
#include "train/resume.h"

void train_config_defaults(TrainConfig *c) {
    memset(c, 0, sizeof *c);
    c->epochs = 10;
    c->batch_size = 64;
    c->lr = 1e-3f;
    c->optim = OPTIM_ADAM;
    c->momentum = 0.9f;
    c->schedule = SCHED_CONSTANT;
    c->step_size = 5;
    c->lookahead_alpha = 0.5f;
    c->seed = 42;
}

void train_set_normalisation(Model *m, const TrainConfig *c, const Dataset *train) {
    if (c->unit_scale == 2) { /* signed: (x - 0.5) / 0.5 */
        m->norm_mean = 0.5f, m->norm_std = 0.5f;
        return;
    }
    if (c->unit_scale) {
        m->norm_mean = 0.0f, m->norm_std = 1.0f;
        return;
    }
    dataset_mean_std(train, &m->norm_mean, &m->norm_std);
    if (!(m->norm_std > 1e-6f)) m->norm_std = 1.0f; /* a blank data set: do not divide by zero */
}

char *train_config_json(const TrainConfig *c, const char *model_name, int n_train, int n_val) {
    /* the options flagged OPTF_META in the option table, from c */
    TrainOptions o;
    memset(&o, 0, sizeof o);
    o.cfg = *c;
    o.model = (char *)model_name;
    o.augment = c->augment ? (char *)c->augment->text : NULL;
    o.precision = model_bf16();
    char *base = train_options_json(&o, OPTF_META, 0); /* only reads o: nothing to free */
    cJSON *j = cJSON_Parse(base);
    free(base);
    DG_ASSERT(j);
    cJSON_AddNumberToObject(j, "n_train", n_train);
    cJSON_AddNumberToObject(j, "n_val", n_val);
    if (c->data_hash) {
        char *h = holdout_record_json(c->data_hash, c->data_n, c->val_split, c->seed, c->data_path);
        cJSON_AddItemToObject(j, "holdout", cJSON_Parse(h));
        free(h);
    }
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    DG_ASSERT(s);
    return s;
}

/* A progress bar on a terminal; nothing otherwise (the epoch line follows). */
static void progress(int tty, int epoch, int epochs, int done, int total, double elapsed, double loss, double acc) {
    if (!tty) return;
    int width = 30, fill = total ? done * width / total : width;
    double eta = done ? elapsed * (total - done) / done : 0;
    fprintf(stderr, "\repoch %d/%d [", epoch, epochs);
    for (int i = 0; i < width; i++) fputc(i < fill ? '=' : (i == fill ? '>' : ' '), stderr);
    fprintf(stderr, "] %d/%d loss %.4f acc %.4f ETA %4.0fs ", done, total, loss, acc, eta);
    fflush(stderr);
}

/* One monitor measurement (see TrainConfig.monitor): accuracy on the monitor
 * set with the current weights, logged and printed, never fed back. Eval mode
 * only reads the weights and BN running statistics and draws no random
 * numbers, so the next training step is the same as without it; batch B
 * keeps model_set_batch from reallocating the activations mid-training. */
static void monitor_report(Model *m, const TrainConfig *cfg, FILE *log, int epoch, long step, double train_loss,
                           double train_acc, double val_loss, double val_acc, float lr, double epoch_secs,
                           double train_secs) {
    double acc = model_predict_dataset(m, cfg->monitor, cfg->batch_size, NULL, NULL, NULL);
    if (log) {
        fprintf(log, "%d,%.6f,%.6f,%.6f,%.6f,%.6g,%.3f,%ld,%.3f,%.6f\n", epoch, train_loss, train_acc, val_loss,
                val_acc, lr, epoch_secs, step, train_secs, acc);
        fflush(log);
    }
    if (!cfg->quiet) {
        printf("  step %ld  monitor acc %.4f  after %.2fs of training\n", step, acc, train_secs);
        fflush(stdout);
    }
}

/* ==== the weights' moving average (cfg.ema) ================================= */

/* ema = d·ema + (1−d)·w over the parameters and buffers, after step `step`
 * (1-based); the decay warms up as (1+t)/(10+t) so the first steps' weights
 * do not linger (timm's ModelEma). */
static void ema_update(float *ema, const Model *m, float decay, long step) {
    const float warm = (float)(1 + step) / (float)(10 + step);
    const float d = decay < warm ? decay : warm, w = 1.0f - d;
    const size_t np = m->n_param;
    for (size_t i = 0; i < np; i++) ema[i] = d * ema[i] + w * m->params[i];
    for (size_t i = 0; i < m->n_buffer; i++) ema[np + i] = d * ema[np + i] + w * m->buffers[i];
}

/* Put the average in the model's place (its own weights into raw), or back. */
static void ema_swap_in(Model *m, const float *ema, float *raw) {
    memcpy(raw, m->params, m->n_param * sizeof(float));
    memcpy(raw + m->n_param, m->buffers, m->n_buffer * sizeof(float));
    memcpy(m->params, ema, m->n_param * sizeof(float));
    memcpy(m->buffers, ema + m->n_param, m->n_buffer * sizeof(float));
}
static void ema_swap_out(Model *m, const float *raw) {
    memcpy(m->params, raw, m->n_param * sizeof(float));
    memcpy(m->buffers, raw + m->n_param, m->n_buffer * sizeof(float));
}

/* ==== Lookahead (cfg.lookahead) ============================================= */

/* After every k-th step (1-based `step`): slow += alpha·(w − slow), and the
 * parameters restart from it. */
static void lookahead_sync(float *slow, Model *m, const TrainConfig *cfg, long step) {
    if (step % cfg->lookahead) return;
    const float a = cfg->lookahead_alpha;
    for (size_t i = 0; i < m->n_param; i++) {
        slow[i] += a * (m->params[i] - slow[i]);
        m->params[i] = slow[i];
    }
}

/* ==== stop requests ======================================================== */

static volatile sig_atomic_t stop_signal;

void train_request_stop(int signo) { stop_signal = signo ? signo : -1; }
int train_stop_requested(void) { return stop_signal; }
void train_clear_stop(void) { stop_signal = 0; }

/* A stop requested for this run: the process's signal, else -1 for the
 * run's own flag (cfg->stop), else 0. */
static int stop_pending(const TrainConfig *cfg) {
    if (stop_signal) return stop_signal;
    return cfg->stop && *cfg->stop ? -1 : 0;
}

int train_stop_pending(const TrainConfig *cfg) { return stop_pending(cfg); }

/* ==== the loop ============================================================= */

/* Writes a checkpoint if the run keeps them; 0 otherwise. */
static int maybe_checkpoint(const TrainConfig *cfg, const Model *m, Optimizer *opt, const Schedule *sched,
                            const TrainState *st, TrainResult *res) {
    if (!cfg->checkpoint_dir) return 0;
    return checkpoint_save(cfg->checkpoint_dir, m, opt, sched, st, cfg, res->checkpoint,
                           sizeof res->checkpoint);
}

/* One train_run: its inputs, the state carried from step to step, and the
 * buffers of a batch. */
typedef struct {
    Model *m;
    const Dataset *train, *val;
    const TrainConfig *cfg;
    TrainResult *res;
    int B, steps_per_epoch, have_val, tty;
    size_t img;                  /* pixels per image */
    Optimizer opt;
    Schedule sched;
    TrainState st;               /* everything a checkpoint saves (resume.h) */
    uint8_t *batch_px, *batch_y; /* the batch's images and labels */
    float *probs;                /* the batch's softmax */
    float *raw;                  /* the weights while the average is in (cfg.ema) */
    FILE *log;
    double t0, paused;           /* the epoch's start; seconds of mid-epoch monitor passes */
    float lr;
    DistTrain *dist;             /* under mpirun: this rank's part (dist_train.h), else NULL */
    int lo, nr;                  /* the batch rows this process trains: [lo, lo + nr) */
    int stop_all;                /* under mpirun: some rank had a stop request at the last step */
} Loop;

/* stop_pending, agreed by every rank of a distributed run through the
 * last step's exchange (one rank's request stops them all after the same
 * step; SIGTERM's number for the ranks that got none). */
static int stop_agreed(const Loop *L) {
    int s = stop_pending(L->cfg);
    if (!L->dist) return s;
    return L->stop_all ? (s ? s : SIGTERM) : 0;
}

/* Optimiser, schedule and state; a resumed run's from its checkpoint.
 * Returns -1 (all freed) if the checkpoint does not fit. */
static int loop_start(Loop *L) {
    const TrainConfig *cfg = L->cfg;
    Model *m = L->m;
    model_set_batch(m, L->B, 1, cfg->threads);
    optim_init(&L->opt, cfg->optim, m->n_param);
    L->opt.momentum = cfg->momentum;
    L->opt.nesterov = cfg->nesterov;
    L->opt.weight_decay = cfg->weight_decay;
    sched_init(&L->sched, cfg->schedule, cfg->lr, (long)cfg->epochs * L->steps_per_epoch);
    if (cfg->gamma > 0) L->sched.gamma = cfg->gamma;
    if (cfg->step_size > 0) L->sched.step_size = cfg->step_size;

    TrainState *st = &L->st;
    train_state_init(st, m, L->train->n, cfg->seed);
    st->ranks = dist_size();
    if (cfg->ema > 0) train_state_init_ema(st, m); /* (a resumed run's comes from its checkpoint) */
    if (cfg->lookahead > 0) train_state_init_slow(st, m);
    if (cfg->checkpoint_dir || cfg->resume) st->data_hash = train_data_hash(L->train, L->have_val ? L->val : NULL);
    if (cfg->resume && checkpoint_restore(cfg->resume, m, &L->opt, &L->sched, st, cfg) < 0) {
        train_state_free(st);
        optim_free(&L->opt);
        return -1;
    }
    if (dist_active()) {
        const int N = dist_size(), last = L->train->n % L->B;
        if (L->B < N || (last && last < N))
            dg_set_error("%d ranks need at least one image each of every batch: --batch-size %d leaves %d in an "
                         "epoch's last batch; change --batch-size or --limit", N, L->B, last ? last : L->B);
        if (L->B < N || (last && last < N) || !(L->dist = dist_train_start(m, L->B, (DistMode)cfg->dist_mode))) {
            train_state_free(st);
            optim_free(&L->opt);
            return -1;
        }
    }
    L->batch_px = dg_xmalloc((size_t)L->B * L->img);
    L->batch_y = dg_xmalloc((size_t)L->B);
    L->probs = dg_xmalloc((size_t)L->B * MODEL_NUM_CLASSES * sizeof(float));
    L->raw = st->ema ? dg_xmalloc((st->n_best + 1) * sizeof(float)) : NULL;
    L->tty = isatty(fileno(stderr)) && !cfg->quiet;
    return 0;
}

/* The CSV log: a resumed run keeps the rows of the epochs it does not redo. */
static void open_log(Loop *L) {
    const TrainConfig *cfg = L->cfg;
    if (!cfg->log_path) return;
    if (cfg->resume && checkpoint_trim_log(cfg->log_path, L->st.epoch) < 0)
        fprintf(stderr, "warning: %s; starting the log afresh\n", dg_errmsg());
    L->log = fopen(cfg->log_path, cfg->resume ? "a" : "w");
    if (!L->log) fprintf(stderr, "warning: cannot write log %s; continuing without it\n", cfg->log_path);
    else if (ftell(L->log) == 0)
        fprintf(L->log, "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds%s\n",
                cfg->monitor ? ",step,train_seconds,monitor_acc" : "");
}

/* A new epoch's shuffled order and counters (a resumed one has its order already). */
static void epoch_start(Loop *L) {
    TrainState *st = &L->st;
    if (st->batch == 0) {
        for (int i = 0; i < L->train->n; i++) st->order[i] = i;
        rng_shuffle(&st->shuffle, st->order, L->train->n);
        st->loss_sum = 0;
        st->correct = st->seen = 0;
        st->epoch_seconds = 0;
    }
    L->t0 = now_seconds() - st->epoch_seconds;
    L->paused = 0;
    L->lr = sched_lr(&L->sched, st->step, st->epoch);
}

/* Batch b of the epoch: its n images (augmented) and labels; under
 * mpirun only this rank's rows [L->lo, L->lo + L->nr) are loaded. */
static int load_batch(Loop *L, int b) {
    const Dataset *train = L->train;
    const int *order = L->st.order;
    int start = b * L->B, n = train->n - start < L->B ? train->n - start : L->B;
    L->lo = 0, L->nr = n;
    if (L->dist) dist_train_shard(n, &L->lo, &L->nr);
    for (int i = L->lo; i < L->lo + L->nr; i++) {
        memcpy(L->batch_px + (size_t)i * L->img, train->pixels + (size_t)order[start + i] * L->img, L->img);
        L->batch_y[i] = train->labels[order[start + i]];
    }
    if (L->cfg->augment && L->nr > 0)
        augment_batch(L->cfg->augment, L->cfg->seed, L->st.epoch, order + start + L->lo,
                      L->batch_px + (size_t)L->lo * L->img, L->nr, train->rows, train->cols);
    return n;
}

/* With cfg.label_smoothing: the n rows' loss sum and their gradient in the
 * last layer's dy (averaged over a batch of B) become the smoothed ones. */
static void smooth_labels(Loop *L, const float *logits, const uint8_t *y, int n, int B, double *loss_sum) {
    const float eps = L->cfg->label_smoothing;
    if (eps <= 0) return;
    *loss_sum = label_smooth_loss_sum(logits, y, n, MODEL_NUM_CLASSES, eps);
    label_smooth_grad(L->m->layers[L->m->n_layers - 1].dy, y, n, MODEL_NUM_CLASSES, B, eps);
}

/* Forward and backward of this rank's rows of a distributed batch of n,
 * then the exchange that leaves the whole batch's gradient in m->grads;
 * the rows' summed loss and correct count, and the ranks' stop requests,
 * are combined across ranks. */
static float dist_step(Loop *L, int n, double *loss_sum, long *correct) {
    Model *m = L->m;
    Layer *last = &m->layers[m->n_layers - 1];
    double part[3] = {0, 0, stop_pending(L->cfg) != 0}; /* loss sum, correct, stop requests */
    const uint8_t *y = L->batch_y + L->lo;
    dist_set_step(L->st.step + 1);
    dist_train_begin(L->dist, L->lo, L->nr, n);
    model_load_pixels(m, L->batch_px + (size_t)L->lo * L->img, L->nr);
    float *logits = model_forward(m, L->nr, 1);
    part[0] = (double)softmax_xent_forward(L->probs, logits, y, L->nr, MODEL_NUM_CLASSES) * L->nr;
    dist_train_xent_backward(last->dy, L->probs, y, L->nr, n);
    smooth_labels(L, logits, y, L->nr, n, &part[0]);
    model_zero_grad(m);
    model_backward(m, last->dy, L->nr);
    for (int i = 0; i < L->nr; i++) {
        const float *row = L->probs + (size_t)i * MODEL_NUM_CLASSES;
        int best = 0;
        for (int k = 1; k < MODEL_NUM_CLASSES; k++)
            if (row[k] > row[best]) best = k;
        part[1] += best == y[i];
    }
    dist_train_reduce(L->dist);
    dist_allreduce_sum_f64(part, 3);
    L->stop_all = part[2] > 0;
    *loss_sum = part[0];
    *correct = (long)part[1];
    return (float)(part[0] / n);
}

/* Forward, loss, backward and one optimiser step on the loaded batch;
 * the moving average and the epoch's running loss and accuracy follow. */
static void train_step(Loop *L, int n) {
    Model *m = L->m;
    TrainState *st = &L->st;
    Layer *last = &m->layers[m->n_layers - 1];
    if (L->dist) {
        double loss_sum;
        long correct;
        dist_step(L, n, &loss_sum, &correct);
        L->lr = sched_lr(&L->sched, st->step, st->epoch);
        optim_step(&L->opt, m->params, m->grads, L->lr);
        st->step++;
        if (st->slow) lookahead_sync(st->slow, m, L->cfg, st->step);
        if (st->ema) ema_update(st->ema, m, L->cfg->ema, st->step);
        st->loss_sum += loss_sum;
        st->seen += n;
        st->correct += correct;
        return;
    }
    model_load_pixels(m, L->batch_px, n);
    float *logits = model_forward(m, n, 1);
    float loss = softmax_xent_forward(L->probs, logits, L->batch_y, n, MODEL_NUM_CLASSES);
    softmax_xent_backward(last->dy, L->probs, L->batch_y, n, MODEL_NUM_CLASSES);
    double loss_sum = (double)loss * n;
    smooth_labels(L, logits, L->batch_y, n, n, &loss_sum);
    loss = (float)(loss_sum / n);
    model_zero_grad(m);
    model_backward(m, last->dy, n);
    L->lr = sched_lr(&L->sched, st->step, st->epoch);
    optim_step(&L->opt, m->params, m->grads, L->lr);
    st->step++;
    if (st->slow) lookahead_sync(st->slow, m, L->cfg, st->step);
    if (st->ema) ema_update(st->ema, m, L->cfg->ema, st->step);
    st->loss_sum += (double)loss * n;
    st->seen += n;
    for (int i = 0; i < n; i++) {
        const float *row = L->probs + (size_t)i * MODEL_NUM_CLASSES;
        int best = 0;
        for (int k = 1; k < MODEL_NUM_CLASSES; k++)
            if (row[k] > row[best]) best = k;
        st->correct += best == L->batch_y[i];
    }
}

/* A monitor measurement between steps (cfg.monitor_every), its time not
 * counted as training. */
static void monitor_mid_epoch(Loop *L) {
    TrainState *st = &L->st;
    double t_pause = now_seconds(), secs = t_pause - L->t0 - L->paused;
    if (L->tty) fprintf(stderr, "\r\033[K");
    if (st->ema) ema_swap_in(L->m, st->ema, L->raw);
    monitor_report(L->m, L->cfg, L->log, st->epoch + 1, st->step, st->loss_sum / st->seen,
                   (double)st->correct / st->seen, NAN, NAN, L->lr, secs, st->res.seconds + secs);
    if (st->ema) ema_swap_out(L->m, L->raw);
    L->paused += now_seconds() - t_pause;
}

/* The epoch's steps from st.batch on. Returns 1 if a stop request ended
 * it early (st.batch and st.epoch_seconds then say where), else 0. */
static int run_steps(Loop *L) {
    const TrainConfig *cfg = L->cfg;
    TrainState *st = &L->st;
    for (int b = st->batch; b < L->steps_per_epoch; b++) {
        if (cfg->max_steps && st->step >= cfg->max_steps) break;
        train_step(L, load_batch(L, b));
        const int more = b + 1 < L->steps_per_epoch && !(cfg->max_steps && st->step >= cfg->max_steps);
        if (cfg->monitor && cfg->monitor_every > 0 && st->step % cfg->monitor_every == 0 && more)
            monitor_mid_epoch(L);
        if (L->tty && (b % 20 == 0 || b == L->steps_per_epoch - 1))
            progress(L->tty, st->epoch + 1, cfg->epochs, b + 1, L->steps_per_epoch, now_seconds() - L->t0 - L->paused,
                     st->loss_sum / st->seen, (double)st->correct / st->seen);
        if (cfg->on_step) cfg->on_step(cfg->on_step_ctx, st->step);
        /* stop requested: after this step, unless the epoch is done anyway
         * (then its end, validation and checkpoint come first) */
        const int stop = stop_agreed(L);
        if (stop && more) {
            st->batch = b + 1;
            st->epoch_seconds = now_seconds() - L->t0 - L->paused;
            L->res->interrupted = stop;
            return 1;
        }
    }
    return 0;
}

/* The epoch's line and log row (with the monitor's measurement if any). */
static void report_epoch(Loop *L, double val_loss, double val_acc, double secs) {
    const TrainConfig *cfg = L->cfg;
    const TrainState *st = &L->st;
    const int epoch = st->epoch;
    if (!cfg->quiet) {
        printf("epoch %3d/%d  train loss %.4f acc %.4f", epoch + 1, cfg->epochs, st->res.train_loss, st->res.train_acc);
        if (L->have_val) printf("  val loss %.4f acc %.4f", val_loss, val_acc);
        printf("  lr %.3g  %.1fs (%.0f img/s)\n", L->lr, secs, st->seen / secs);
        fflush(stdout);
    }
    if (cfg->monitor) {
        monitor_report(L->m, cfg, L->log, epoch + 1, st->step, st->res.train_loss, st->res.train_acc, val_loss,
                       val_acc, L->lr, secs, st->res.seconds);
    } else if (L->log) {
        fprintf(L->log, "%d,%.6f,%.6f,%.6f,%.6f,%.6g,%.3f\n", epoch + 1, st->res.train_loss, st->res.train_acc,
                val_loss, val_acc, L->lr, secs);
        fflush(L->log);
    }
}

/* The end of a full epoch: its result, validation, the log, the best
 * epoch (its weights kept and its model saved), early stopping, the
 * checkpoint. Validation and the rest see the moving average if there is
 * one. Returns -1 if saving the model or the checkpoint failed. */
static int epoch_end(Loop *L) {
    const TrainConfig *cfg = L->cfg;
    TrainState *st = &L->st;
    Model *m = L->m;
    const int epoch = st->epoch;
    double secs = now_seconds() - L->t0 - L->paused;
    st->res.seconds += secs;
    st->res.epochs_run = epoch + 1;
    st->res.train_loss = st->seen ? st->loss_sum / st->seen : 0;
    st->res.train_acc = st->seen ? (double)st->correct / st->seen : 0;
    if (L->tty) fprintf(stderr, "\r\033[K");

    if (st->ema) ema_swap_in(m, st->ema, L->raw);
    double val_loss = NAN, val_acc = NAN;
    if (L->have_val) {
        val_acc = model_validate(m, L->val, L->B, cfg->label_smoothing, &val_loss);
        sched_epoch_end(&L->sched, (float)val_loss);
    }
    report_epoch(L, val_loss, val_acc, secs);
    if (cfg->on_epoch)
        cfg->on_epoch(cfg->on_step_ctx, epoch + 1, st->res.train_loss, st->res.train_acc, val_loss, val_acc);
    if (L->have_val && val_loss < st->best_val_loss) {
        st->best_val_loss = val_loss;
        st->res.best_epoch = epoch + 1;
        st->res.best_val_loss = val_loss;
        st->res.best_val_acc = val_acc;
        st->since_best = 0;
        memcpy(st->best, m->params, m->n_param * sizeof(float));
        memcpy(st->best + m->n_param, m->buffers, m->n_buffer * sizeof(float));
        if (cfg->out_path && model_save_dtype(m, cfg->out_path, (DgDtype)cfg->dtype) < 0) {
            if (st->ema) ema_swap_out(m, L->raw);
            return -1;
        }
    } else if (L->have_val) {
        st->since_best++;
    }
    if (st->ema) ema_swap_out(m, L->raw);
    st->epoch = epoch + 1;
    st->batch = 0;
    if (st->epoch >= cfg->epochs || (cfg->max_steps && st->step >= cfg->max_steps)) st->finished = 1;
    if (L->have_val && cfg->patience > 0 && st->since_best >= cfg->patience) {
        if (!cfg->quiet)
            printf("early stopping: val loss has not improved for %d epochs; restoring epoch %d\n", cfg->patience,
                   st->res.best_epoch);
        st->finished = 1;
    }
    return maybe_checkpoint(cfg, m, &L->opt, &L->sched, st, L->res);
}

/* The result, and the model's final weights: the best epoch's (restored,
 * like Keras' restore_best_weights), else the last (the average's if any),
 * saved. Frees the loop. Returns rc, or -1 if that save failed. */
static int loop_finish(Loop *L, int rc) {
    TrainResult *res = L->res;
    TrainState *st = &L->st;
    Model *m = L->m;
    /* res->checkpoint and res->interrupted were set along the way */
    char checkpoint[sizeof res->checkpoint];
    memcpy(checkpoint, res->checkpoint, sizeof checkpoint);
    int interrupted = res->interrupted;
    *res = st->res;
    memcpy(res->checkpoint, checkpoint, sizeof checkpoint);
    res->interrupted = interrupted;
    res->stop_epoch = st->epoch + 1;
    res->steps = st->step;
    if (L->have_val && res->best_epoch > 0) {
        memcpy(m->params, st->best, m->n_param * sizeof(float));
        memcpy(m->buffers, st->best + m->n_param, m->n_buffer * sizeof(float));
    } else {
        if (st->ema) { /* no validation: the average is the model */
            memcpy(m->params, st->ema, m->n_param * sizeof(float));
            memcpy(m->buffers, st->ema + m->n_param, m->n_buffer * sizeof(float));
        }
        if (rc == 0 && L->cfg->out_path && model_save_dtype(m, L->cfg->out_path, (DgDtype)L->cfg->dtype) < 0) rc = -1;
    }
    if (L->log) fclose(L->log);
    if (L->dist && !L->cfg->quiet) {
        long steps;
        size_t bytes;
        double secs = dist_train_comm_seconds(L->dist, &steps, &bytes);
        printf("%d ranks: %.0f KiB exchanged per step, %.3f ms per step in the exchange\n", dist_size(),
               bytes / 1024.0, steps ? 1e3 * secs / steps : 0.0);
    }
    dist_train_free(L->dist);
    free(L->batch_px);
    free(L->batch_y);
    free(L->probs);
    free(L->raw);
    train_state_free(st);
    optim_free(&L->opt);
    return rc;
}

int train_run(Model *m, const Dataset *train, const Dataset *val, const TrainConfig *cfg, TrainResult *res) {
    DG_ASSERT(train->labels && train->n > 0);
    memset(res, 0, sizeof *res);
    Loop L = {.m = m, .train = train, .val = val, .cfg = cfg, .res = res, .B = cfg->batch_size};
    L.steps_per_epoch = (train->n + L.B - 1) / L.B;
    L.have_val = val && val->n > 0;
    L.img = (size_t)train->rows * train->cols;
    if (loop_start(&L) < 0) return -1;
    open_log(&L);
    int rc = 0;
    while (!L.st.finished && !res->interrupted) {
        if (L.st.epoch >= cfg->epochs) {
            L.st.finished = 1;
            break;
        }
        epoch_start(&L);
        if (run_steps(&L)) {
            if (L.tty) fprintf(stderr, "\r\033[K");
            if (maybe_checkpoint(cfg, m, &L.opt, &L.sched, &L.st, res) < 0) rc = -1;
            break;
        }
        if (epoch_end(&L) < 0) {
            rc = -1;
            break;
        }
        const int stop = stop_agreed(&L);
        if (stop && !L.st.finished) res->interrupted = stop;
    }
    return loop_finish(&L, rc);
}
