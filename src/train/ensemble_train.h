/* ensemble_train.h — training an ensemble: N members of one architecture
 * with seeds seed..seed+N-1 (homogeneous), one member per architecture in
 * a list (heterogeneous), or one member per fold of a stratified K-fold
 * split, each validated and early-stopped on its held-out fold.
 *
 * The members go into one ensemble model file (eval/ensemble.h), saved
 * after every member, so an interrupted run keeps the members it finished.
 */
#ifndef DG_ENSEMBLE_TRAIN_H
#define DG_ENSEMBLE_TRAIN_H

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
} EnsembleTrainConfig;

typedef struct {
    TrainResult member[ENSEMBLE_TRAIN_MAX];
    double member_val_acc[ENSEMBLE_TRAIN_MAX]; /* each on its own validation set (fold) */
    double val_acc;       /* the ensemble on the shared validation split (not K-fold); NAN if none */
    double oof_acc;       /* K-fold: out-of-fold accuracy (each image by the member that did not see it) */
    double seconds;       /* training time of all members, validation excluded */
    char *train_config_json; /* the ensemble's training configuration (owned: free it) */
} EnsembleTrainResult;

/* Train the members on `all` (labelled) with cfg (cfg->seed is the base
 * seed: member k uses seed + k for initialisation, shuffling, dropout and
 * augmentation; the split and the folds use seed itself), saving the
 * ensemble to cfg->out_path (required) as members finish. On success
 * *members is an array of ec->n trained models (owned by the caller, free
 * each with model_free, then the array). Returns 0, or -1 with dg_errmsg(). */
int ensemble_train(const EnsembleTrainConfig *ec, const Dataset *all, const TrainConfig *cfg,
                   Model **members, EnsembleTrainResult *res);

#endif
