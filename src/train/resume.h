/* resume.h — training checkpoints: the whole state of a run, written
 * atomically at every epoch end and when a signal stops training, so that
 * `digits train --resume DIR` continues it and ends with bit-identical
 * weights to the run that was never interrupted (same seed, same threads).
 *
 * A checkpoint is a model file (safetensors; `digits eval` loads it) with
 * more in it:
 *   tensors   the model's parameters and buffers (current weights),
 *             train.optim  (F32) the optimiser's state block (moments),
 *             train.best   (F32) the best epoch's parameters + buffers,
 *             train.ema    (F32) their moving average (with cfg.ema only),
 *             train.order  (I32) this epoch's shuffled order of the images;
 *   metadata  digits.checkpoint  format version ("1"),
 *             digits.resume_config  every TrainConfig field, exactly
 *                                   (floats as C99 hex, %a),
 *             digits.state  position (epoch, batch, step), the epoch's
 *                           running sums, early-stopping and schedule state,
 *                           optimiser step, every RNG stream by name, a hash
 *                           of the training and validation data,
 *             digits.run    the caller's own settings (the CLI stores its data
 *                           flags there), opaque to the library.
 *
 * Files in DIR: ckpt-eEEE-sSSSSSSSS.safetensors, and `latest`, one line
 * naming the newest. Order of a save: checkpoint (temp file, fsync,
 * rename, fsync of DIR), then `latest` the same way, then older
 * checkpoints are deleted except the one `latest` named before, so a kill
 * at any moment leaves `latest` naming a complete file and the previous
 * checkpoint on disk as well. A lock file (DIR/lock, flock) keeps two runs
 * out of one folder.
 *
 * Left out on purpose: resuming with another thread count or other data
 * (refused: the result would differ), and keeping more than two checkpoints.
 */
#ifndef DG_RESUME_H
#define DG_RESUME_H

#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"
#include "data/data.h"
#include "model/model.h"
#include "optim/optim.h"
#include "train/train.h"

#define TRAIN_MAX_RNGS 8

/* Everything the training loop carries from one step to the next, beyond
 * the model's weights, the optimiser and the schedule. */
typedef struct {
    int epoch;            /* 0-based epoch in progress, or the next one to start */
    int batch;            /* next batch of that epoch; 0: its order is not drawn yet */
    long step;            /* optimiser steps taken */
    int finished;         /* the loop is over (epochs done, early stop, max_steps) */
    int n;                /* training images */
    int *order;           /* (n) the epoch's order of images (owned) */
    double loss_sum;      /* this epoch so far: summed loss, */
    long correct, seen;   /* correct predictions, images seen, */
    double epoch_seconds; /* and training seconds */
    double best_val_loss; /* early stopping: best validation loss (INFINITY: none yet) */
    int since_best;       /* epochs since it improved */
    size_t n_best;        /* n_param + n_buffer */
    float *best;          /* (n_best) the best epoch's weights (owned) */
    float *ema;           /* (n_best) the weights' moving average (owned; NULL: cfg.ema off) */
    float *slow;          /* (n_param) Lookahead's slow weights (owned; NULL: cfg.lookahead off) */
    TrainResult res;      /* totals so far */
    Rng shuffle;          /* the shuffle stream */
    uint64_t data_hash;   /* of the training + validation sets */
    int ranks;            /* ranks of an mpirun job training it (0 or 1: one process); a
                           * checkpoint names them when > 1, and an exact-mode run
                           * (cfg.dist_mode 0) resumes only with as many */
    /* RNG streams saved by name: "shuffle", "dropout", and any a feature adds */
    int n_rngs;
    const char *rng_names[TRAIN_MAX_RNGS];
    Rng *rngs[TRAIN_MAX_RNGS];
} TrainState;

/* A fresh state for n training images (order and best allocated; the
 * shuffle stream seeded (seed, "shuffle"); "shuffle" and the model's
 * "dropout" stream registered). */
void train_state_init(TrainState *st, Model *m, int n, uint64_t seed);
/* Start the weights' moving average (cfg.ema) from the model's weights. */
void train_state_init_ema(TrainState *st, const Model *m);
/* Start Lookahead's slow weights (cfg.lookahead) from the model's parameters. */
void train_state_init_slow(TrainState *st, const Model *m);
void train_state_free(TrainState *st);
/* Save another RNG stream with the state (e.g. augmentation's). */
void train_state_add_rng(TrainState *st, const char *name, Rng *rng);
/* FNV-1a over labels and pixels of both sets (val may be NULL). */
uint64_t train_data_hash(const Dataset *train, const Dataset *val);

/* ---- writing ------------------------------------------------------------- */

/* Write a checkpoint into dir (created if missing) and point `latest` at
 * it; *written (len bytes) receives its path. -1 with "path: problem". */
int checkpoint_save(const char *dir, const Model *m, Optimizer *o, const Schedule *s,
                    const TrainState *st, const TrainConfig *cfg, char *written, size_t len);

/* Take DIR/lock (held until the returned descriptor is closed, or the
 * process exits); -1 if another process or run holds it, or the folder
 * cannot be created or written. */
int checkpoint_lock(const char *dir);

/* ---- reading ------------------------------------------------------------- */

typedef struct Checkpoint {
    char path[4400];      /* the checkpoint file */
    char warning[600];    /* non-empty when `latest` was unusable and an older one was taken */
    SafeTensors *st;      /* open until checkpoint_close */
    TrainConfig cfg;      /* as saved; its strings point into this struct */
    char *run_json;       /* digits.run (owned, may be NULL) */
    int threads;          /* the thread count the run used */
    char out_path[4096], log_path[4096];
} Checkpoint;

/* Open the newest loadable checkpoint in dir: m is built from it with its
 * weights, ck->cfg holds the run's configuration. -1 with a one-line
 * message ("DIR: no checkpoint to resume from", "FILE: problem"). */
int checkpoint_open(const char *dir, Checkpoint *ck, Model *m);
/* Restore optimiser, schedule and loop state (train_run calls this when
 * cfg->resume is set); checks them against the model, the data and the
 * configuration. */
int checkpoint_restore(const Checkpoint *ck, const Model *m, Optimizer *o, Schedule *s,
                       TrainState *st, const TrainConfig *cfg);
void checkpoint_close(Checkpoint *ck);
/* Whether the checkpoint was written with exactly cfg's settings, threads
 * being the thread count in effect (a setting the checkpoint predates
 * counts as its default). */
int checkpoint_matches(const Checkpoint *ck, const TrainConfig *cfg, int threads);

/* ---- an ensemble run's folder --------------------------------------------
 * DIR/ensemble.json holds the run's configuration and digits.run, written
 * when the run starts (the members' own checkpoints go to DIR/member-K,
 * train/ensemble_train.h). */

/* Write DIR/ensemble.json (atomically); -1 with "path: problem". */
int checkpoint_save_ensemble(const char *dir, const TrainConfig *cfg, int threads);
/* Whether DIR holds an ensemble run (its ensemble.json exists). */
int checkpoint_is_ensemble(const char *dir);
/* Read DIR/ensemble.json into ck->cfg, ck->threads and ck->run_json
 * (ck->st stays NULL); -1 with a one-line message. */
int checkpoint_open_ensemble(const char *dir, Checkpoint *ck);
/* Delete a finished run's checkpoint folder: the files checkpoint_save
 * and checkpoint_lock write there, then the folder if it is empty. */
void checkpoint_remove(const char *dir);

/* Keep only the header and the rows of epochs 1..epochs of a CSV log
 * written by train_run (rows of epochs a resumed run will redo go). */
int checkpoint_trim_log(const char *path, int epochs);

#endif
