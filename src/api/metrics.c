/* metrics.c — dg_evaluate and dg_metrics: a model over a labelled data set
 * (classifier_predict_dataset in a workspace) and the numbers of
 * eval/metrics.c: accuracy, loss, per-class precision / recall / F1,
 * confusion matrix, as getters, text and JSON.
 * Leaves out: top-k accuracy and the misclassified list (`digits eval`). */
#include <stdio.h>
#include <stdlib.h>

#include "api/api.h"

int dg_evaluate(dg_model *m, const dg_dataset *ds, dg_metrics **out) {
    const char *F = "dg_evaluate";
    int rc = api_need(out, F, "out");
    if (rc) return rc;
    *out = NULL;
    if ((rc = api_need(m, F, "model")) || (rc = api_need(ds, F, "ds"))) return rc;
    const Dataset *d = &ds->ds;
    if (!d->labels) return api_fail(DG_ERR_ARG, "%s: the data set has no labels", F);
    if (d->rows != m->proto.height || d->cols != m->proto.width)
        return api_fail(DG_ERR_SIZE, "%s: the images are %dx%d, the model takes %dx%d", F, d->rows, d->cols,
                        m->proto.height, m->proto.width);
    dg_metrics *mt = calloc(1, sizeof *mt);
    uint8_t *pred = malloc(d->n ? (size_t)d->n : 1);
    if (!mt || !pred) {
        free(mt);
        free(pred);
        return api_fail(DG_ERR_NOMEM, "out of memory");
    }
    int chunk;
    Classifier *ws = workspace_take(m, d->n < m->batch ? (d->n ? d->n : 1) : m->batch, &chunk);
    const int capacity = ws->batch;
    ws->batch = chunk; /* classifier_predict_dataset's passes: the model's batch size */
    classifier_predict_dataset(ws, d, pred, NULL, &mt->loss);
    ws->batch = capacity;
    workspace_give(m, ws);
    metrics_compute(&mt->mt, d->labels, pred, d->n);
    free(pred);
    *out = mt;
    return DG_OK;
}

void dg_metrics_free(dg_metrics *mt) { free(mt); }

double dg_metrics_accuracy(const dg_metrics *mt) { return mt ? mt->mt.accuracy : 0.0; }

double dg_metrics_loss(const dg_metrics *mt) { return mt ? mt->loss : 0.0; }

size_t dg_metrics_count(const dg_metrics *mt) { return mt ? (size_t)mt->mt.n : 0; }

int dg_metrics_class(const dg_metrics *mt, int k, double *precision, double *recall, double *f1, int *support) {
    int rc = api_need(mt, "dg_metrics_class", "mt");
    if (rc) return rc;
    if (k < 0 || k >= DG_CLASSES) return api_fail(DG_ERR_ARG, "dg_metrics_class: class %d is not 0..9", k);
    if (precision) *precision = mt->mt.precision[k];
    if (recall) *recall = mt->mt.recall[k];
    if (f1) *f1 = mt->mt.f1[k];
    if (support) *support = mt->mt.support[k];
    return DG_OK;
}

int dg_metrics_confusion(const dg_metrics *mt, int truth, int predicted) {
    if (!mt || truth < 0 || truth >= DG_CLASSES || predicted < 0 || predicted >= DG_CLASSES) return -1;
    return mt->mt.confusion[truth][predicted];
}

char *dg_metrics_report(const dg_metrics *mt) {
    if (api_need(mt, "dg_metrics_report", "mt")) return NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    metrics_print(f, &mt->mt);
    fclose(f);
    return buf;
}

char *dg_metrics_json(const dg_metrics *mt) {
    if (api_need(mt, "dg_metrics_json", "mt")) return NULL;
    char extra[64];
    snprintf(extra, sizeof extra, "{\"loss\":%.6f}", mt->loss);
    return metrics_to_json(&mt->mt, extra);
}
