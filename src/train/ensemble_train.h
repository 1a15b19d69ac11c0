/* ensemble_train.h — training an ensemble: N members of one architecture
 * with seeds seed..seed+N-1 (homogeneous), one member per architecture in
 * a list (heterogeneous), or one member per fold of a stratified K-fold
 * split, each validated and early-stopped on its held-out fold.
 *
 * The members go into one ensemble model file (eval/ensemble.h), saved
 * after every member, so an interrupted run keeps the members it finished.
 *
 * With cfg->checkpoint_dir (DIR) the run can also be stopped in the middle
 * of a member and continued: DIR/ensemble.json holds the run's settings
 * (train/resume.h), DIR/member-K (K = 01, 02, ...) member K's checkpoints
 * while it trains; the folder of a member goes once the ensemble file holds
 * it. A continued run (ec->resume) keeps the members the ensemble file
 * already holds, if it was written with exactly this run's settings, and
 * resumes the next member from its checkpoint: it ends with the same
 * members, bit for bit, as the run never stopped.
 *
 * Over the ranks of an MPI job (ec->spread, dist/dist.h): the members are spread as
 * core/partition.h says, in rounds of one member per rank; each rank
 * trains its member exactly as one process would (same seed, split, fold
 * and figures), ships it as bytes (train/member_wire.h), and rank 0 joins
 * it, saves the ensemble file after every round and writes ensemble.json;
 * a member's own checkpoints (DIR/member-K) are written by the rank that
 * trains it and removed once rank 0 has saved it. The file rank 0 ends with
 * is the one a single process writes, but for the members' train_seconds.
 */
#ifndef DG_ENSEMBLE_TRAIN_H
#define DG_ENSEMBLE_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "data/data.h"
#include "model/model.h"
#include "train/train.h"

#define ENSEMBLE_TRAIN_MAX 64

typedef struct {
    int n;                                   /* members */
    const char *models[ENSEMBLE_TRAIN_MAX];  /* zoo name or spec path per member */
    int kfold;                               /* 0, or K >= 2 (then n == K) */
    float val_split;                         /* not K-fold: one stratified validation split shared by all */
    int vote_logits;                         /* 1: sum of logits; 0: mean of probabilities */
    int resume;                              /* continue the run in cfg->checkpoint_dir */
    int spread;                              /* 1: spread the members over the MPI job's ranks */
} EnsembleTrainConfig;

typedef struct {
    TrainResult member[ENSEMBLE_TRAIN_MAX];
    double member_val_acc[ENSEMBLE_TRAIN_MAX]; /* each on its own validation set (fold) */
    double val_acc;       /* the ensemble on the shared validation split (not K-fold); NAN if none */
    double oof_acc;       /* K-fold: out-of-fold accuracy (each image by the member that did not see it) */
    double seconds;       /* training time of all members, validation excluded */
    char *train_config_json; /* the ensemble's training configuration (owned: free it) */
    int kept;             /* resumed: members taken from the ensemble file as they were */
    int interrupted;      /* the signal that stopped the run (train_request_stop), or 0 */
    int stop_member;      /* interrupted: the member (0-based) it stopped in */
    char checkpoint[4200];/* interrupted: that member's last checkpoint ("" if none) */
} EnsembleTrainResult;

/* Train the members on `all` (labelled) with cfg (cfg->seed is the base
 * seed: member k uses seed + k for initialisation, shuffling, dropout and
 * augmentation; the split and the folds use seed itself), saving the
 * ensemble to cfg->out_path (required) as members finish. On success
 * *members is an array of ec->n trained models (owned by the caller, free
 * each with model_free, then the array). With cfg->checkpoint_dir,
 * cfg->threads must be the thread count itself (>= 1). Returns 0 (also when
 * stopped: res->interrupted says so, and *members is NULL), or -1 with
 * dg_errmsg(). With ec->spread, every rank calls it with the same arguments;
 * rank 0 gets the members and the figures, the other ranks *members NULL
 * and only res->interrupted, and all of them the same return value. */
int ensemble_train(const EnsembleTrainConfig *ec, const Dataset *all, const TrainConfig *cfg,
                   Model **members, EnsembleTrainResult *res);

#endif
