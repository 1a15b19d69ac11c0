/* metrics.h — predictions over a data set, and the numbers people judge a
 * classifier by: accuracy, confusion matrix, per-class precision / recall /
 * F1 / support with macro and weighted averages (scikit-learn's
 * classification_report, same layout and conventions), top-k accuracy, the
 * misclassified items; as text or JSON. */
#ifndef DG_METRICS_H
#define DG_METRICS_H

#include <stdint.h>
#include <stdio.h>

#include "data/data.h"
#include "model/model.h"

/* Run the model in eval mode over ds in batches. pred (n) and probs (n, 10)
 * may be NULL. If ds has labels and loss is non-NULL, *loss = mean
 * cross-entropy. Returns accuracy (0 if unlabelled). */
double model_predict_dataset(Model *m, const Dataset *ds, int batch, uint8_t *pred, float *probs,
                             double *loss);
/* A training run's validation pass: the accuracy as model_predict_dataset
 * counts it, and in *loss the mean of the loss the network trains on. With
 * label_smoothing > 0 that is the smoothed cross-entropy, as Keras's
 * val_loss of a model compiled with CategoricalCrossentropy(label_smoothing)
 * and PyTorch's usual criterion(model(x_val), y_val): the plain one has a
 * floor near -log(1 - eps + eps/10) that rises as the network learns the
 * smoothed targets, so an early, less confident epoch could look best. */
double model_validate(Model *m, const Dataset *ds, int batch, float label_smoothing, double *loss);

typedef struct {
    int n;
    int confusion[10][10]; /* [true][predicted] */
    double accuracy;
    double precision[10], recall[10], f1[10];
    int support[10];
    /* classes that occur as a label or a prediction: scikit-learn reports
     * (and macro-averages over) only these */
    int present[10], n_present;
    double macro_p, macro_r, macro_f1, weighted_p, weighted_r, weighted_f1;
    /* top-k accuracy, set by metrics_set_top_k: top_k_acc[j] is the
     * fraction whose label is among the j+1 most probable classes */
    int top_k;
    double top_k_acc[10];
} Metrics;

void metrics_compute(Metrics *mt, const uint8_t *labels, const uint8_t *pred, int n);
/* Top-1..k accuracy from probabilities (n, 10). A label counts as within
 * the top k when fewer than k classes have a strictly higher probability
 * (ties favour the label). */
void metrics_set_top_k(Metrics *mt, const float *probs, const uint8_t *labels, int n, int k);
/* scikit-learn's classification_report layout (4 digits), the top-k line
 * when set, then the confusion matrix. */
void metrics_print(FILE *f, const Metrics *mt);
/* One JSON object: accuracy, n, confusion, per_class[], macro_avg,
 * weighted_avg, and top_k {"1": acc, ..., "k": acc} when set.
 * Returns malloc'd text. extra_json (may be NULL): an object string whose
 * members are merged in (e.g. loss, model name, misclassified). */
char *metrics_to_json(const Metrics *mt, const char *extra_json);

/* One wrongly classified item of a data set. */
typedef struct {
    int index;        /* position in the data set (0-based) */
    int truth, pred;
    float confidence; /* the probability given to pred */
} Misclassified;

/* Every item with pred != label, most confident mistakes first (ties: lower
 * index first). probs (n, 10) may be NULL (confidence 0, index order).
 * Returns the count; *out is malloc'd (NULL when none). */
int metrics_misclassified(const uint8_t *labels, const uint8_t *pred, const float *probs, int n,
                          Misclassified **out);
/* JSON array text of the first n: [{"index":..,"true":..,"predicted":..,"confidence":..}, ...] (malloc'd). */
char *misclassified_to_json(const Misclassified *m, int n);

#endif
