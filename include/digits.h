/* digits.h — the public C API of libdigits: handwritten-digit recognition
 * (load a trained model and classify images, train a network, evaluate it).
 *
 * One self-contained header: it includes only <stddef.h> and <stdint.h>,
 * every name starts with dg_ or DG_, and the handles are opaque. Build with
 *
 *     cc prog.c $(pkg-config --cflags --libs digits)               (libdigits.so)
 *     cc prog.c $(pkg-config --cflags --libs --static digits | sed 's/-ldigits/-l:libdigits.a/')
 *                                                                   (libdigits.a)
 *
 * ---- Tutorial ------------------------------------------------------------
 *
 * Classify an image (error handling shortened: every call that can fail
 * returns a negative DG_ERR_* code and leaves a one-line message in
 * dg_errmsg()):
 *
 *     dg_model *m;
 *     if (dg_model_load(&m, "default") != DG_OK) {     // or "best", or a file
 *         fprintf(stderr, "%s\n", dg_errmsg());
 *         return 1;
 *     }
 *     dg_prediction p;
 *     dg_predict_file(m, "digit.png", &p);             // PNG, JPEG, BMP, PGM
 *     printf("%d (p=%.3f)\n", p.digit, p.probs[p.digit]);
 *     dg_model_free(m);
 *
 * Images already in memory: dg_predict (one 28x28 MNIST-style image: white
 * digit on black, 0..255), dg_predict_batch (n of them), dg_predict_image
 * (any size, 8-bit gray / RGB / RGBA with a row stride: a camera frame, a
 * canvas; it goes through the same MNIST-style preprocessing as the CLI —
 * paper removed, digit cropped, scaled to 20 px and centred by mass),
 * dg_predict_encoded (the bytes of a PNG/JPEG/BMP/PGM file).
 *
 * Train, save and evaluate:
 *
 *     dg_dataset *train, *test;
 *     dg_dataset_load(&train, "data/mnist", "train");  // IDX folder or Kaggle .csv
 *     dg_dataset_load(&test, "data/mnist", "test");
 *
 *     dg_model *m;
 *     dg_model_build(&m, "lenet5");                    // zoo name, or a .spec file
 *     dg_train_config *cfg = dg_train_config_new();
 *     dg_train_set(cfg, "epochs", "3");                // the names of `digits train --help`
 *     dg_train_set(cfg, "optimizer", "adamw");
 *     dg_train_set_float(cfg, "lr", 0.002);
 *     dg_train(m, train, NULL, cfg, NULL, NULL, NULL); // NULL val: "val-split" of train
 *     dg_model_save(m, "lenet5.safetensors");
 *
 *     dg_metrics *mt;
 *     dg_evaluate(m, test, &mt);
 *     printf("accuracy %.4f\n", dg_metrics_accuracy(mt));
 *     dg_metrics_free(mt);
 *     dg_train_config_free(cfg);
 *     dg_model_free(m);
 *     dg_dataset_free(train);
 *     dg_dataset_free(test);
 *
 * Or a whole run as `digits train` does it, from settings alone (data,
 * validation split, ensembles, checkpoints and resume, the model file):
 *
 *     dg_train_config *cfg = dg_train_config_new();
 *     dg_train_set(cfg, "data", "data/mnist");
 *     dg_train_set(cfg, "ensemble", "3");              // or "kfold", "ensemble-models"
 *     dg_train_set(cfg, "checkpoint-dir", "ck");       // later: "resume" "ck" alone goes on
 *     dg_train_set(cfg, "out", "ens.safetensors");
 *     dg_model *m;
 *     dg_train_outcome oc;
 *     int rc = dg_train_run(cfg, &m, &oc, NULL, NULL, &stop_flag);  // DG_OK or DG_STOPPED
 *
 * ---- Thread safety --------------------------------------------------------
 *
 * A loaded model may be shared by any number of threads that predict or
 * evaluate at the same time (dg_predict*, dg_evaluate, the dg_model_ getters):
 * the model is only read and every call runs in a workspace of its own
 * (activation buffers and a copy of the weights, taken from a pool inside
 * the model and given back at the end of the call; the pool grows to the
 * most calls that ran at once, so memory is about that many copies of the
 * model plus one batch of activations each).
 * What changes a model — dg_train, dg_model_set_tta/batch/threads, dg_model_free — needs
 * the model to itself: no other call on it may run meanwhile. Data sets,
 * training configurations and metrics are plain values: share them
 * read-only, or give each thread its own. dg_errmsg() is per thread.
 * dg_set_threads is process-wide (the OpenMP thread count) and is meant to
 * be called once, before the rest. dg_train_run sets the thread count and
 * the bf16 mode of its settings for the process while it runs (and puts
 * them back): run one at a time per process.
 *
 * ---- Memory ownership -------------------------------------------------------
 *
 * - A handle that a function writes into `**out` is owned by the caller and
 *   released with the matching dg_*_free (each accepts NULL). On failure
 *   *out is set to NULL.
 * - `char *` results (dg_model_info_json, dg_metrics_json, ...) are malloc'd
 *   for the caller: release them with dg_free.
 * - `const char *` results are owned by the library: dg_version() and
 *   dg_strerror() are static; dg_errmsg() lives until the thread's next
 *   failing call; dg_model_name/kind/metadata live as long as the model;
 *   a dg_log_fn's line lives during the callback only.
 * - dg_train_outcome is the caller's (stack or heap); dg_train_run fills it.
 * - Input pointers (images, paths, option text) are only read during the
 *   call; nothing keeps them.
 */
#ifndef DIGITS_H
#define DIGITS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* DG_API marks the exported functions: libdigits.so is built with
 * -fvisibility=hidden, so everything else in it stays private. */
#if defined(__GNUC__)
#define DG_API __attribute__((visibility("default")))
#else
#define DG_API
#endif

/* The library version ("0.10.0"); a static string. */
DG_API const char *dg_version(void);

/* ---- errors ------------------------------------------------------------------ */

/* Every int-returning call returns DG_OK (0) or one of these (< 0). */
enum {
    DG_OK = 0,
    DG_STOPPED = 1,           /* dg_train: stopped early by the stop flag or the callback (not an error) */
    DG_ERR_ARG = -1,          /* a NULL or out-of-range argument, an unknown option name or a bad value */
    DG_ERR_IO = -2,           /* a file is missing, unreadable or cannot be written */
    DG_ERR_FORMAT = -3,       /* a file or buffer is corrupt, truncated or in an unsupported format */
    DG_ERR_SIZE = -4,         /* wrong image size: not what the model takes, zero, or too large */
    DG_ERR_NO_DIGIT = -5,     /* the image is blank: no ink stands out from the background */
    DG_ERR_UNSUPPORTED = -6,  /* the model cannot do this (e.g. train or save an ensemble or SVM) */
    DG_ERR_NOMEM = -7         /* out of memory */
};
/* The last error's one-line message on this thread ("" if none), e.g.
 * "m.safetensors: tensor 3.weight: shape [32,1,3,3], expected [16,1,3,3]". */
DG_API const char *dg_errmsg(void);
/* A short fixed description of a code ("invalid argument", ...). */
DG_API const char *dg_strerror(int code);
/* Frees a char * the library returned (malloc'd). NULL is fine. */
DG_API void dg_free(void *p);

/* Worker threads for training and prediction, process-wide (<= 0: every
 * core, the default). */
DG_API void dg_set_threads(int n);
DG_API int dg_get_threads(void);

/* ---- models ------------------------------------------------------------------ */

typedef struct dg_model dg_model;

/* Loads a trained model: a model file written by `digits train` (one
 * network, an ensemble or the PCA + SVM baseline), or a pretrained name
 * ("default", "best", "mcu-64k", "mcu-256k": models/pretrained/NAME.
 * safetensors found in $DIGITS_MODELS, beside the program or under the
 * install prefix, share/digits/models/pretrained). */
DG_API int dg_model_load(dg_model **out, const char *path_or_name);
/* Builds an untrained network from the zoo ("lenet5", "cnn-bn": models/
 * NAME.spec) or a .spec file; its weights are initialised from the "seed"
 * option at its first dg_train. */
DG_API int dg_model_build(dg_model **out, const char *zoo_name_or_spec_file);
/* The same from spec text (one layer per line, as in models/ *.spec). */
DG_API int dg_model_build_spec(dg_model **out, const char *spec_text);
DG_API void dg_model_free(dg_model *m);
/* Saves a network (atomically: a temporary file renamed). An ensemble or an
 * SVM is saved by `digits train` only: DG_ERR_UNSUPPORTED. */
DG_API int dg_model_save(const dg_model *m, const char *path);

/* "cnn", "ensemble", "svm" or "int8" (a quantized network or ensemble). */
DG_API const char *dg_model_kind(const dg_model *m);
/* "cnn-bn", "ensemble of 5 cnn-bn", "svm (PCA-50, RBF)". */
DG_API const char *dg_model_name(const dg_model *m);
/* Trainable parameters (all members of an ensemble; 0 for an SVM). */
DG_API size_t dg_model_param_count(const dg_model *m);
/* The model file's metadata as a JSON object text ("{}" when none). */
DG_API const char *dg_model_metadata(const dg_model *m);
/* Everything about the model as one JSON object (malloc'd: dg_free): kind,
 * name, dtype, params, buffers, macs, input [C,H,W], norm_mean, norm_std,
 * summary (the layer table's lines; cnn), members [{name, params, macs}]
 * and vote (ensemble), metadata (the object above). NULL on bad arguments. */
DG_API char *dg_model_info_json(const dg_model *m);
/* The images the model takes (28x28 for every zoo model). */
DG_API int dg_model_input_size(const dg_model *m, int *width, int *height);
/* Test-time augmentation: average the probabilities of n mild warps of each
 * image, the first the image itself (<= 1: off, the default). */
DG_API int dg_model_set_tta(dg_model *m, int n);
/* Images per forward pass in dg_predict_batch and dg_evaluate (1..65536,
 * default 256; capped so that a pass's activations stay under 1 GiB). The
 * probabilities can differ in their last bits between batch sizes. */
DG_API int dg_model_set_batch(dg_model *m, int n);
/* Threads one prediction call on this model may use (1..1024; default: the
 * dg_set_threads count when the model was loaded). A server that predicts
 * one image per request on many request threads sets 1. */
DG_API int dg_model_set_threads(dg_model *m, int n);

/* ---- prediction ---------------------------------------------------------------- */

#define DG_SIDE 28          /* the models' input: 28x28 */
#define DG_CLASSES 10

typedef struct dg_prediction {
    int digit;                 /* 0..9: the most probable class */
    float probs[DG_CLASSES];   /* the ten class probabilities (sum 1) */
    int n_digits;              /* dg_predict_image/encoded/file: digit-sized groups of ink
                                * found (> 1: the largest was read); 1 otherwise */
} dg_prediction;

typedef enum { DG_GRAY = 1, DG_RGB = 3, DG_RGBA = 4 } dg_pixel_format;

/* One 28x28 image, row-major, MNIST polarity (white digit on black). */
DG_API int dg_predict(dg_model *m, const uint8_t *image, dg_prediction *out);
/* n such images back to back (n * 784 bytes) into out[n]. */
DG_API int dg_predict_batch(dg_model *m, const uint8_t *images, size_t n, dg_prediction *out);
/* An image of any size (1..4096 per side) of one digit, either polarity:
 * `stride` bytes from one row to the next (>= width * bytes per pixel; 0:
 * exactly that). RGBA is composited on white. */
DG_API int dg_predict_image(dg_model *m, const uint8_t *pixels, int width, int height, size_t stride,
                            dg_pixel_format format, dg_prediction *out);
/* Every digit of such an image (a number), left to right: up to max results
 * in out[]; *n_out how many were written. */
DG_API int dg_predict_number(dg_model *m, const uint8_t *pixels, int width, int height, size_t stride,
                             dg_pixel_format format, dg_prediction *out, int max, int *n_out);
/* The bytes of an encoded PNG, JPEG (EXIF rotation applied), BMP or PGM. */
DG_API int dg_predict_encoded(dg_model *m, const void *data, size_t len, dg_prediction *out);
/* An image file of those formats. */
DG_API int dg_predict_file(dg_model *m, const char *path, dg_prediction *out);

/* ---- data sets ------------------------------------------------------------------ */

typedef struct dg_dataset dg_dataset;

/* An MNIST IDX folder (split "train" or "test": {train,t10k}-*-ubyte[.gz])
 * or a Kaggle .csv (split ignored; test.csv has no labels). */
DG_API int dg_dataset_load(dg_dataset **out, const char *path, const char *split);
DG_API void dg_dataset_free(dg_dataset *ds);
DG_API size_t dg_dataset_count(const dg_dataset *ds);
/* Image i (width*height bytes, owned by ds), NULL if out of range. */
DG_API const uint8_t *dg_dataset_image(const dg_dataset *ds, size_t i);
/* Label 0..9 of image i; -1 when unlabelled or out of range. */
DG_API int dg_dataset_label(const dg_dataset *ds, size_t i);
/* A copy of images first .. first+count-1 (clamped to the set). */
DG_API int dg_dataset_subset(const dg_dataset *ds, size_t first, size_t count, dg_dataset **out);
/* Stratified split (labelled sets): per class, a seeded shuffle, the first
 * round(val_fraction * class count) go to *val. Both are new copies. */
DG_API int dg_dataset_split(const dg_dataset *ds, float val_fraction, uint64_t seed, dg_dataset **train,
                            dg_dataset **val);

/* ---- training ------------------------------------------------------------------- */

typedef struct dg_train_config dg_train_config;

/* The defaults of `digits train` (epochs 10, batch-size 64, adam, lr 1e-3,
 * seed 42, ...) except "quiet", which is on: the library prints nothing
 * unless told. NULL only when out of memory. */
DG_API dg_train_config *dg_train_config_new(void);
DG_API void dg_train_config_free(dg_train_config *cfg);
/* Sets an option by its `digits train` name ('-' or '_'), from text, with
 * the same checks: dg_train_set(cfg, "epochs", "10"). Every name of
 * `digits train --help` is a setting: those of the training loop (epochs,
 * batch-size, lr, optimizer, momentum, nesterov, weight-decay, schedule,
 * gamma, step-size, patience, ema, label-smoothing, lookahead, lookahead-alpha,
 * max-steps, seed, threads, dtype, log, out, augment, normalize, precision,
 * quiet, val-split, limit), which
 * dg_train and dg_train_run use, and those of a whole run, which only
 * dg_train_run uses (model, data, test, out-dir, overwrite, ensemble,
 * ensemble-models, kfold, vote, checkpoint-dir, resume, monitor,
 * monitor-test, monitor-every). "config" reads a YAML file
 * (dg_train_config_load). The command line's actions (help, print-config,
 * summary) give DG_ERR_ARG, as do an unknown name (the message suggests the
 * nearest) and a bad value. A value set here (or by a config file) must
 * equal the checkpoint's when dg_train_run resumes. "precision bf16"
 * switches the whole process to bf16 convolutions while dg_train or
 * dg_train_run runs. */
DG_API int dg_train_set(dg_train_config *cfg, const char *name, const char *value);
DG_API int dg_train_set_int(dg_train_config *cfg, const char *name, long value);
DG_API int dg_train_set_float(dg_train_config *cfg, const char *name, double value);
DG_API int dg_train_set_bool(dg_train_config *cfg, const char *name, int value);
/* The option's value as text (as dg_train_set reads it) into buf. */
DG_API int dg_train_get(const dg_train_config *cfg, const char *name, char *buf, size_t len);

typedef struct dg_progress {
    int epoch, epochs;            /* 1-based epoch, of how many */
    long step, steps_per_epoch;   /* optimiser steps so far (all epochs), and per epoch */
    int epoch_done;               /* 1: the epoch just ended and the numbers below are set */
    double train_loss, train_acc; /* the epoch's */
    double val_loss, val_acc;     /* NaN without validation images */
} dg_progress;
/* Called after every step and at every epoch's end, on the thread that
 * called dg_train. Return non-zero to stop after this step. */
typedef int (*dg_progress_fn)(const dg_progress *p, void *user);

/* Trains m on `train` (labelled), validating on `val` after each epoch (the
 * best epoch's weights are kept, as `digits train` does); val NULL: a
 * stratified "val-split" of train is held out ("limit" first takes the
 * first N images). progress (may be NULL) is called with user; *stop (may
 * be NULL) set non-zero from any thread stops after the current step.
 * Returns DG_OK, DG_STOPPED (the model holds the best weights so far), or
 * an error. A model from dg_model_build starts from fresh weights; a loaded
 * or trained network goes on from its own (fine-tuning). The settings of
 * a whole run that dg_train cannot honour (ensemble, ensemble-models,
 * kfold, checkpoint-dir, resume, monitor, monitor-test) give DG_ERR_ARG:
 * dg_train_run does those; data, test, model, out-dir and overwrite are
 * not used. */
DG_API int dg_train(dg_model *m, const dg_dataset *train, const dg_dataset *val, const dg_train_config *cfg,
                    dg_progress_fn progress, void *user, const volatile int *stop);

/* ---- whole training runs (what `digits train` does) -------------------------------- */

/* dg_train_run's messages: DG_LOG_INFO the run's lines ("model cnn-bn: 1234
 * parameters...", "saved runs/cnn-bn.safetensors"; `digits train` prints
 * them on stdout), DG_LOG_WARN notes (a config file's ignored keys, a data
 * folder taken for its mnist/ subfolder, bf16 not available, an unusable
 * latest checkpoint; on stderr), DG_LOG_STAGE the run's stages, line
 * "train" when the training loop starts (the data are loaded: a stop
 * request takes effect from here) and "trained" when it has returned
 * (finished or stopped; testing and saving follow). One line each, without
 * a newline, valid during the call only. */
enum { DG_LOG_INFO = 0, DG_LOG_WARN = 1, DG_LOG_STAGE = 2 };
typedef void (*dg_log_fn)(int level, const char *line, void *user);
/* Where cfg's runs send their lines (fn NULL, the default: nowhere). Called
 * on the thread that called dg_train_run or dg_train_config_load. The
 * per-epoch lines are the training loop's own: printed on stdout unless
 * "quiet". */
DG_API int dg_train_set_log(dg_train_config *cfg, dg_log_fn fn, void *user);
/* Reads a YAML config file (`digits train --config`: keys are the option
 * names, or seed 004's sections) into cfg; what is set afterwards wins.
 * DG_ERR_IO (missing), DG_ERR_FORMAT or DG_ERR_ARG ("FILE:LINE: problem"). */
DG_API int dg_train_config_load(dg_train_config *cfg, const char *yaml_path);
/* The settings as a YAML config file (`digits train --print-config`),
 * malloc'd: dg_free. NULL on a NULL cfg or out of memory. */
DG_API char *dg_train_config_yaml(const dg_train_config *cfg);
/* DG_ERR_ARG naming two settings that do not combine (monitor and
 * monitor-test, checkpoint-dir other than resume, model svm, ...), else
 * DG_OK. dg_train_run checks this first. */
DG_API int dg_train_config_check(const dg_train_config *cfg);

/* Where a run ended up; dg_train_run fills it (the paths as given). */
typedef struct dg_train_outcome {
    char model_path[4200];     /* the model file: "out", or the name chosen in "out-dir" */
    char checkpoint_dir[4200]; /* where checkpoints went ("checkpoint-dir" or "resume"; "" none) */
    char checkpoint[4200];     /* stopped: the last checkpoint written ("" none) */
    int stopped;               /* 1: stopped early (DG_STOPPED) */
    int ensemble;              /* 1: an ensemble run */
    int members;               /* its members (1 for one network) */
    int stop_member;           /* stopped ensemble: the member (0-based) it stopped in or before */
    int stop_epoch;            /* stopped network: the 1-based epoch it stopped in */
    long stop_step;            /* stopped network: optimiser steps done */
} dg_train_outcome;

/* A whole run from cfg alone, as `digits train` with those settings: the
 * network from "model" (fresh weights from "seed"), or the run
 * checkpointed in "resume" (every setting from its checkpoint: one set
 * otherwise gives DG_ERR_ARG); the training images from "data" ("limit",
 * a stratified "val-split"); one network, or an ensemble with "ensemble",
 * "ensemble-models" or "kfold"; checkpoints (every epoch and when stopped)
 * in "checkpoint-dir"; then the test set ("test"; an MNIST "data" folder's
 * own by default) and the model file: "out" (an existing one only with
 * "overwrite"), else the first free OUT-DIR/MODEL.safetensors, MODEL-2, ...
 * The run's lines go to dg_train_set_log's callback. progress, user and
 * stop as in dg_train (progress's step counts restart with each member of
 * an ensemble). Returns DG_OK with the saved model loaded into *out (out
 * may be NULL: not loaded), DG_STOPPED (a network: its best weights so far
 * are in the model file; an ensemble: its finished members; with a
 * checkpoint-dir, "resume" set to it continues bit for bit), or an error:
 * DG_ERR_ARG for settings that do not fit (this checkpoint, each other, an
 * existing "out"), DG_ERR_IO / FORMAT / SIZE for the files and data.
 * *outcome (may be NULL) says where the run ended up, also when stopped.
 * A run sets the process's OpenMP threads ("threads") and bf16 mode
 * ("precision") while it runs, so one dg_train_run at a time per process;
 * the checkpoint folder is locked during the call (another process or run
 * on it gets DG_ERR_IO). */
DG_API int dg_train_run(const dg_train_config *cfg, dg_model **out, dg_train_outcome *outcome,
                        dg_progress_fn progress, void *user, const volatile int *stop);

/* ---- evaluation ------------------------------------------------------------------ */

typedef struct dg_metrics dg_metrics;

/* Predicts every image of a labelled set: accuracy, loss, per-class
 * precision / recall / F1 / support, confusion matrix. */
DG_API int dg_evaluate(dg_model *m, const dg_dataset *ds, dg_metrics **out);
DG_API void dg_metrics_free(dg_metrics *mt);
DG_API double dg_metrics_accuracy(const dg_metrics *mt);
/* Mean cross-entropy of the probabilities. */
DG_API double dg_metrics_loss(const dg_metrics *mt);
DG_API size_t dg_metrics_count(const dg_metrics *mt);
/* Class k's numbers (any pointer may be NULL). */
DG_API int dg_metrics_class(const dg_metrics *mt, int k, double *precision, double *recall, double *f1,
                            int *support);
/* Images of class `truth` predicted as `predicted`; -1 if out of range. */
DG_API int dg_metrics_confusion(const dg_metrics *mt, int truth, int predicted);
/* scikit-learn's classification_report and the confusion matrix, as text;
 * and all of it as one JSON object. Both malloc'd: dg_free. */
DG_API char *dg_metrics_report(const dg_metrics *mt);
DG_API char *dg_metrics_json(const dg_metrics *mt);

#ifdef __cplusplus
}
#endif

#endif
