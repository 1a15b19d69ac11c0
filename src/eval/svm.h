/* svm.h — the classical baseline of seed 002: PCA of the pixels scaled to
 * [0,1] down to k components (154 keep 95 % of MNIST's variance), then a
 * one-vs-one RBF-kernel C-SVM trained by libsvm.
 *
 * Training is libsvm's; prediction is digits' own dense evaluation of the
 * same decision functions (one sgemm for the dot products with every support
 * vector, then the kernel and the 45 pairwise sums), which is much faster
 * than libsvm's sparse per-sample loop and uses exactly the floats stored in
 * the model file, so a saved and reloaded model predicts bit-identically.
 *
 * Probabilities. libsvm's own (-b 1) cost an internal 5-fold cross-
 * validation of all 45 pairwise problems (about 4x the training time). digits
 * instead scores each class by its one-vs-one votes plus a tie-breaker in
 * (-0.5, 0.5) from its mean pairwise decision value,
 *     score_c = votes_c + 0.49 * tanh(mean_j dec_cj),
 * and takes softmax(T * score). The predicted class is therefore always a
 * class with the most votes (ties go to the larger margin rather than libsvm's
 * lowest label). T is fitted on the validation split by minimising the
 * cross-entropy (one-dimensional search), so the confidences are calibrated
 * on data the SVM did not train on; without a validation split T = 1 and
 * the file says "calibrated": "no".
 *
 * Model file (safetensors, metadata digits.kind = "svm"): tensors
 *   svm.pca_mean (d), svm.pca_components (k, d), svm.labels (classes),
 *   svm.n_sv (classes), svm.sv (l, k), svm.sv_coef (classes-1, l),
 *   svm.rho (classes*(classes-1)/2)
 * (counts and labels as exact F32 integers) and metadata digits.svm.{width,
 * height, components, classes, n_sv_total, gamma, C, temperature, calibrated}.
 * The loader checks every value and shape against the metadata before use.
 */
#ifndef DG_SVM_H
#define DG_SVM_H

#include <stdint.h>

#include "data/data.h"
#include "eval/pca.h"

#define SVM_MAX_CLASSES 10

typedef struct {
    int width, height;          /* input images (28x28) */
    Pca pca;                    /* mean (d), components (k, d); variance only after training */
    int n_class;                /* classes in the training data, libsvm's order */
    int labels[SVM_MAX_CLASSES]; /* digit of class i */
    int n_sv[SVM_MAX_CLASSES];  /* support vectors of class i (they are stored grouped by class) */
    int l;                      /* support vectors in all */
    float *sv;                  /* (l, k) in PCA space */
    float *sv_norm2;            /* (l) squared norms (derived) */
    float *coef;                /* (n_class-1, l) libsvm's sv_coef */
    float *rho;                 /* (n_class*(n_class-1)/2) pairwise offsets, pairs (0,1),(0,2),..,(1,2),.. */
    float gamma, C;
    float temperature;          /* probabilities: softmax(temperature * score) */
    int calibrated;             /* temperature fitted on held-out data */
    char *train_config_json;    /* owned, may be NULL */
    char *metrics_json;         /* owned, may be NULL */
} PcaSvm;

typedef struct {
    int components;   /* PCA components (154) */
    double gamma;     /* RBF exp(-gamma |x - y|^2) on PCA coordinates of [0,1] pixels */
    double C;         /* soft-margin penalty */
    double cache_mb;  /* libsvm kernel cache */
    double eps;       /* libsvm stopping tolerance (1e-3) */
    int verbose;      /* libsvm's progress output on stderr */
} PcaSvmConfig;

typedef struct {
    double pca_seconds, svm_seconds;
    double explained;  /* variance fraction kept by the components */
    double agreement;  /* digits' predictions vs libsvm's svm_predict on up to 500 training images */
} PcaSvmStats;

void pcasvm_config_defaults(PcaSvmConfig *c);
/* PCA + libsvm on a labelled set (>= 2 classes). Temperature 1 until
 * pcasvm_calibrate. Returns -1 with a message (libsvm's parameter check,
 * LAPACK missing). */
int pcasvm_train(PcaSvm *s, const Dataset *train, const PcaSvmConfig *cfg, PcaSvmStats *stats);
/* Fit the temperature on a labelled held-out set; returns its accuracy. */
double pcasvm_calibrate(PcaSvm *s, const Dataset *val);
/* Probabilities (n, 10) and, if logits is non-NULL, their logs, for n images
 * of raw pixels (n, width*height), 0..255. Digits absent from training get
 * probability 0. */
void pcasvm_predict(const PcaSvm *s, const uint8_t *pixels, int n, float *probs, float *logits);
int pcasvm_save(const PcaSvm *s, const char *path);
/* Returns -1 with a one-line message naming the file and the problem. */
int pcasvm_load(PcaSvm *s, const char *path);
void pcasvm_free(PcaSvm *s);

#endif
