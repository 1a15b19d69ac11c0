/* metrics.h — predictions over a data set, and the numbers people judge a
 * classifier by: accuracy, confusion matrix, per-class precision / recall /
 * F1 / support with macro and weighted averages (scikit-learn's
 * classification_report), as text or JSON. */
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

typedef struct {
    int n;
    int confusion[10][10]; /* [true][predicted] */
    double accuracy;
    double precision[10], recall[10], f1[10];
    int support[10];
    double macro_p, macro_r, macro_f1, weighted_p, weighted_r, weighted_f1;
} Metrics;

void metrics_compute(Metrics *mt, const uint8_t *labels, const uint8_t *pred, int n);
void metrics_print(FILE *f, const Metrics *mt);
/* One JSON object: accuracy, n, confusion, per_class[], macro_avg, weighted_avg.
 * Returns malloc'd text. extra_json (may be NULL): an object string whose
 * members are merged in (e.g. loss, model name). */
char *metrics_to_json(const Metrics *mt, const char *extra_json);

#endif
