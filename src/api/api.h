/* api.h — what the files of src/api share: the structs behind the public
 * handles of include/digits.h, and the helpers that turn the modules'
 * -1 + dg_errmsg() convention into the API's DG_ERR_* codes.
 * Internal: never installed. */
#ifndef DG_API_INTERNAL_H
#define DG_API_INTERNAL_H

#include <pthread.h>

#include "digits.h"
#include "data/data.h"
#include "eval/classifier.h"
#include "eval/metrics.h"
#include "train/options.h"

/* A model: `proto` holds the weights and is never run; predictions run in
 * workspaces (Classifiers with their own activation buffers and a copy of
 * the weights) taken from the pool under `mu` and given back after the call. */
struct dg_model {
    Classifier proto;
    char dtype[64];     /* the file's tensor dtypes ("F32", "BF16"); "F32" when built */
    int fresh;          /* built, never trained: dg_train initialises the weights */
    int save_dtype;     /* DgDtype dg_model_save writes (the last training's "dtype") */
    int tta;
    int batch;          /* images per forward pass (dg_model_set_batch) */
    int threads;        /* the thread count when loaded (0: all) */
    pthread_mutex_t mu;
    Classifier **idle;  /* workspaces not in use */
    int n_idle, cap_idle;
};

struct dg_dataset {
    Dataset ds;
};

struct dg_train_config {
    TrainOptions o;
    dg_log_fn log;      /* dg_train_set_log (may be NULL) */
    void *log_user;
    /* internal (not in the public API): dg_train_run calls it once the
     * training and validation sets are cut, before training (the CLI's
     * check that every rank under mpirun has the same data; may be NULL) */
    void (*data_hook)(const Dataset *train, const Dataset *val);
};

struct dg_metrics {
    Metrics mt;
    double loss;
};

/* Records a message (printf-style) and returns code. */
int api_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* DG_ERR_ARG with "NAME: argument is NULL" when p is NULL, else DG_OK. */
int api_need(const void *p, const char *func, const char *arg);
/* A module's failure on file `path`: DG_ERR_IO when the file cannot be
 * read (missing, a folder, no permission), else DG_ERR_FORMAT; the
 * module's message stays in dg_errmsg(). */
int api_file_error(const char *path);
/* The thread count dg_set_threads chose (0: all cores). */
int api_threads(void);

/* The pool (workspace.c): a workspace ready for batches of up to `want`
 * images (its tta set from the model); never NULL (out of memory aborts).
 * *chunk: the images to pass per classifier_predict call (<= want; fewer
 * when a batch of want would not fit the activation budget). */
Classifier *workspace_take(dg_model *m, int want, int *chunk);
void workspace_give(dg_model *m, Classifier *ws);
/* Frees every idle workspace (the weights changed, or the model goes). */
void workspace_drop_all(dg_model *m);

#endif
