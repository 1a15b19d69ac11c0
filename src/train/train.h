/* train.h — the training loop: shuffled mini-batches, forward, softmax
 * cross-entropy, backward, optimiser step, LR schedule, validation each
 * epoch, early stopping that restores the best weights, the best model saved
 * (atomically) as training goes, and a CSV log.
 * Augmentation (cfg.augment) is applied to each batch's uint8 pixels before
 * normalisation (data/augment.h).
 * Checkpoints and resume (resume.h): with checkpoint_dir set, the whole
 * state is written at every epoch end and when a stop is requested
 * (train_request_stop, from a SIGINT/SIGTERM handler); with resume set the
 * run continues from a checkpoint and ends bit-identical to the run that
 * was never stopped.
 * With cfg.ema the model evaluated and kept is the weights' exponential
 * moving average (Keras's use_ema, timm's ModelEma): after step t,
 * ema = d·ema + (1−d)·w with d = min(ema_decay, (1+t)/(10+t)), over the
 * parameters and the batch-norm running statistics alike.
 * With cfg.lookahead (Lookahead, Zhang et al. 2019, around any optimiser) a
 * slow copy of the parameters starts as the initial weights; after every
 * k-th step slow += alpha·(w − slow) and w = slow. The inner optimiser's
 * state goes on untouched, and the batch-norm statistics are not averaged
 * (as in the paper's and torch-optimizer's implementations).
 * Under mpirun (the MPI build, after dist_init) every rank runs train_run
 * on the same data and trains its shard of each batch; the ranks' steps
 * are the single-process steps bit for bit (dist_train.h). */
#ifndef DG_TRAIN_H
#define DG_TRAIN_H

#include <stdint.h>

#include "data/augment.h"
#include "data/data.h"
#include "model/model.h"
#include "optim/optim.h"

typedef struct {
    int epochs;           /* 10 */
    int batch_size;       /* 64 */
    float lr;             /* 1e-3 */
    OptimType optim;      /* adam */
    float momentum;       /* 0.9 (SGD) */
    int nesterov;         /* 0 */
    float weight_decay;   /* 0 */
    SchedType schedule;   /* constant */
    float gamma;          /* step/exp factor; <= 0: schedule's default */
    int step_size;        /* step: epochs between decays */
    int patience;         /* early stopping on val loss; 0 = off */
    float ema;            /* 0 = off; else the decay of an exponential moving average of the
                           * weights (and BN statistics), updated after every step, which is
                           * what validation, early stopping and the saved model use */
    float label_smoothing; /* 0 = off; else eps of the smoothed training and validation loss (ops.h) */
    int lookahead;        /* 0 = off; else Lookahead's k: every k steps the parameters become
                           * slow + alpha·(fast − slow), which is also the new slow copy */
    float lookahead_alpha; /* Lookahead's alpha (0.5) */
    uint64_t seed;        /* 42 */
    int threads;          /* <= 0: all cores */
    int dist_mode;        /* under mpirun: 0 exact, 1 sync (dist_train.h's DistMode) */
    const char *out_path; /* best model written here as training goes (may be NULL) */
    const char *log_path; /* CSV: epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds (may be NULL) */
    long max_steps;       /* stop after this many steps (0 = no limit); for tests */
    int quiet;            /* no per-epoch lines */
    const AugmentConfig *augment; /* per-batch augmentation (NULL = none) */
    int unit_scale;       /* --normalize: 0 standard (the training set's mean and std), 1 none
                           * (pixels/255, Keras's rescale=1/255), 2 signed (pixels/255 to
                           * [-1,1]: mean 0.5, std 0.5, PyTorch's Normalize((0.5,), (0.5,))) */
    const char *checkpoint_dir;      /* checkpoints written here (may be NULL) */
    const struct Checkpoint *resume; /* continue this run (checkpoint_open; may be NULL) */
    const char *run_json;            /* caller's settings, stored in checkpoints (may be NULL) */
    void (*on_step)(void *ctx, long step); /* called after every step (may be NULL) */
    void *on_step_ctx;
    /* called after every epoch's validation with on_step_ctx (may be NULL):
     * 1-based epoch, its train loss/accuracy, val loss/accuracy (NaN without) */
    void (*on_epoch)(void *ctx, int epoch, double train_loss, double train_acc, double val_loss, double val_acc);
    /* this run's own stop request (the library API's stop flag; may be
     * NULL): non-zero stops it after the current step as
     * train_request_stop does, reported as interrupted = -1 */
    const volatile int *stop;
    /* Monitor set (time-to-accuracy benchmark; may be NULL): its accuracy is
     * measured after every epoch and every monitor_every steps (0 = epochs
     * only) and logged, nothing more: training, the schedule, early stopping
     * and the checkpoint choice never see it. With a monitor the log gains
     * the columns step,train_seconds,monitor_acc (train_seconds: cumulative
     * training time, all validation and monitor passes excluded) and one row
     * per mid-epoch measurement (val_loss/val_acc nan there). */
    const Dataset *monitor;
    long monitor_every;
    /* The data set the caller split into train + validation, recorded in the
     * model's train_config ("holdout", eval/holdout.h) so eval can tell the
     * training images from held-out ones; data_hash 0 = not recorded. */
    uint64_t data_hash;   /* holdout_fingerprint(all, data_n) */
    int data_n;
    float val_split;
    const char *data_path;
    int dtype;            /* tensor type of the saved model file: 0 f32, 1 bf16, 2 f16 (--dtype) */
} TrainConfig;

typedef struct {
    int epochs_run;
    int best_epoch;        /* 1-based; 0 if no validation */
    double best_val_loss, best_val_acc;
    double train_loss, train_acc; /* last epoch */
    double seconds;        /* training time, excluding validation */
    long steps;
    int interrupted;       /* the signal that stopped the run early (train_request_stop), or 0 */
    int stop_epoch;        /* interrupted: 1-based epoch it stopped in (or before) */
    char checkpoint[4200]; /* the last checkpoint written ("" if none) */
} TrainResult;

struct Checkpoint;

void train_config_defaults(TrainConfig *c);
/* JSON text of the configuration (stored in the model file). Owned by caller. */
/* The model's input normalisation for a fresh run on `train`: its pixel
 * mean and std (default), mean 0 and std 1 with c->unit_scale 1, mean 0.5
 * and std 0.5 (pixels to [-1,1]) with c->unit_scale 2. */
void train_set_normalisation(Model *m, const TrainConfig *c, const Dataset *train);
char *train_config_json(const TrainConfig *c, const char *model_name, int n_train, int n_val);
/* Train m (already built and initialised; normalisation set) on train,
 * validating on val (may be NULL or empty). Returns 0 (also when stopped
 * by train_request_stop: res->interrupted says so), or -1 if saving a
 * model or checkpoint failed or a checkpoint does not fit. */
int train_run(Model *m, const Dataset *train, const Dataset *val, const TrainConfig *cfg,
              TrainResult *res);

/* Ask a running train_run to stop after its current step (it writes a
 * checkpoint when checkpoint_dir is set). Async-signal-safe: meant for a
 * SIGINT/SIGTERM handler; signo is reported in res->interrupted. */
void train_request_stop(int signo);
/* The pending request's signal (0 if none), and clearing it. */
int train_stop_requested(void);
void train_clear_stop(void);
/* A stop requested for a run with cfg: the process's signal, else -1 for
 * cfg->stop, else 0 (ensemble_train asks between members). */
int train_stop_pending(const TrainConfig *cfg);

#endif
