/* classifier.h — anything saved by `digits train` that maps 28x28 grayscale
 * images to ten class probabilities: a single network, an ensemble of
 * networks (soft voting), or a classical baseline (PCA + SVM).
 *
 * eval, predict, submit, report and serve use only this interface, so a new
 * kind of model file works everywhere once classifier_load knows it. The
 * kind is the model file's "digits.kind" metadata: absent or "cnn" is one
 * network, "ensemble" and "svm" are the others.
 *
 * Not thread-safe: a classifier owns its activation buffers. A server
 * loads one per worker thread or serialises calls.
 */
#ifndef DG_CLASSIFIER_H
#define DG_CLASSIFIER_H

#include <stdint.h>

#include "data/data.h"
#include "model/model.h"

typedef enum { CLASSIFIER_CNN, CLASSIFIER_ENSEMBLE, CLASSIFIER_SVM, CLASSIFIER_INT8 } ClassifierKind;

typedef struct Classifier {
    ClassifierKind kind;
    char name[128];       /* "cnn-bn", "ensemble of 5 cnn-bn", "svm" — for messages and the API */
    int width, height;    /* input image size (28x28) */
    Model *models;        /* CNN: 1 model; ensemble: n_models members (owned) */
    int n_models;
    int vote_logits;      /* ensemble: 1 = sum of logits, 0 = mean of probabilities */
    void *impl;           /* kind-specific state (e.g. the SVM, the int8 QFile), owned */
    char *metadata_json;  /* the model file's metadata object as JSON text (owned) */
    int batch;            /* largest batch classifier_predict handles in one pass */
    int tta;              /* test-time augmentation: average the probabilities of this
                             many mild warps of each image, the first the identity (<= 1: off) */
} Classifier;

/* Load a model file of any kind, ready to predict up to max_batch images per
 * call with `threads` worker threads (<= 0: all cores). Returns -1 with a
 * one-line message naming the file in dg_errmsg(). */
int classifier_load(Classifier *c, const char *path, int max_batch, int threads);
/* Wrap an already built/trained model (ownership moves to c). */
void classifier_from_model(Classifier *c, Model *m);
void classifier_free(Classifier *c);

/* Probabilities (n, 10) for n images of raw pixels (n, width*height), values
 * 0..255 with MNIST polarity (white digit on black). Any n: batched
 * internally. If logits is non-NULL it receives the (voted) logits (n, 10)
 * — for an SVM or a probability vote these are log-probabilities. */
void classifier_predict(Classifier *c, const uint8_t *pixels, int n, float *probs, float *logits);

/* Predict a whole data set: pred (n) and probs (n, 10) may be NULL. If the
 * set has labels and loss is non-NULL, *loss is the mean cross-entropy of
 * the probabilities. Returns accuracy (0 if unlabelled). */
double classifier_predict_dataset(Classifier *c, const Dataset *ds, uint8_t *pred, float *probs, double *loss);

/* Measure c on the labelled test split of `data` (MNIST IDX folder or
 * labelled CSV): accuracy, mean cross-entropy and the number of images.
 * -1 with a one-line dg_errmsg() naming `data` when it cannot be read, has
 * no labels or has images of another size. */
int classifier_measure(Classifier *c, const char *data, double *acc, double *loss, int *n);

/* int8 model files (digits.kind = "int8", classifier_int8.c): load into c
 * (impl = the QFile), free its impl, predict one chunk. */
int classifier_load_int8(Classifier *c, const char *path, int max_batch);
void classifier_int8_free(Classifier *c);
void classifier_int8_predict_chunk(Classifier *c, const uint8_t *pixels, int n, float *probs, float *logits);

#endif
