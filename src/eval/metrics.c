/* metrics.c — batched prediction and classification metrics; see metrics.h. */
#include "eval/metrics.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "ops/ops.h"

/* model_predict_dataset's pass; eps > 0: the loss is the label-smoothed
 * cross-entropy (model_validate). */
static double predict_pass(Model *m, const Dataset *ds, int batch, uint8_t *pred, float *probs, double *loss,
                           float eps) {
    DG_ASSERT(ds->rows == m->input_shape.h && ds->cols == m->input_shape.w);
    if (m->max_batch < batch || !m->acts) model_set_batch(m, batch, m->with_grad, m->nthreads);
    size_t img = (size_t)ds->rows * ds->cols;
    float *p = dg_xmalloc((size_t)batch * MODEL_NUM_CLASSES * sizeof(float));
    double loss_sum = 0;
    long correct = 0;
    for (int start = 0; start < ds->n; start += batch) {
        int n = ds->n - start < batch ? ds->n - start : batch;
        model_load_pixels(m, ds->pixels + (size_t)start * img, n);
        float *logits = model_forward(m, n, 0);
        if (ds->labels && eps > 0) {
            loss_sum += label_smooth_loss_sum(logits, ds->labels + start, n, MODEL_NUM_CLASSES, eps);
            softmax_forward(p, logits, n, MODEL_NUM_CLASSES);
        } else if (ds->labels)
            loss_sum += (double)softmax_xent_forward(p, logits, ds->labels + start, n, MODEL_NUM_CLASSES) * n;
        else
            softmax_forward(p, logits, n, MODEL_NUM_CLASSES);
        for (int i = 0; i < n; i++) {
            const float *row = p + (size_t)i * MODEL_NUM_CLASSES;
            int best = 0;
            for (int k = 1; k < MODEL_NUM_CLASSES; k++)
                if (row[k] > row[best]) best = k;
            if (pred) pred[start + i] = (uint8_t)best;
            if (ds->labels && best == ds->labels[start + i]) correct++;
        }
        if (probs) memcpy(probs + (size_t)start * MODEL_NUM_CLASSES, p, (size_t)n * MODEL_NUM_CLASSES * sizeof(float));
    }
    free(p);
    if (loss) *loss = ds->labels && ds->n ? loss_sum / ds->n : 0.0;
    return ds->labels && ds->n ? (double)correct / ds->n : 0.0;
}

double model_predict_dataset(Model *m, const Dataset *ds, int batch, uint8_t *pred, float *probs,
                             double *loss) {
    return predict_pass(m, ds, batch, pred, probs, loss, 0.0f);
}

double model_validate(Model *m, const Dataset *ds, int batch, float label_smoothing, double *loss) {
    return predict_pass(m, ds, batch, NULL, NULL, loss, label_smoothing);
}

void metrics_compute(Metrics *mt, const uint8_t *labels, const uint8_t *pred, int n) {
    memset(mt, 0, sizeof *mt);
    mt->n = n;
    int correct = 0;
    for (int i = 0; i < n; i++) {
        mt->confusion[labels[i]][pred[i]]++;
        correct += labels[i] == pred[i];
    }
    mt->accuracy = n ? (double)correct / n : 0;
    for (int k = 0; k < 10; k++) {
        int tp = mt->confusion[k][k], col = 0, row = 0;
        for (int j = 0; j < 10; j++) {
            col += mt->confusion[j][k];
            row += mt->confusion[k][j];
        }
        mt->support[k] = row;
        /* scikit-learn's zero_division=0 convention */
        mt->precision[k] = col ? (double)tp / col : 0;
        mt->recall[k] = row ? (double)tp / row : 0;
        double pr = mt->precision[k] + mt->recall[k];
        mt->f1[k] = pr > 0 ? 2 * mt->precision[k] * mt->recall[k] / pr : 0;
        mt->present[k] = row > 0 || col > 0;
        if (!mt->present[k]) continue;
        mt->n_present++;
        mt->macro_p += mt->precision[k];
        mt->macro_r += mt->recall[k];
        mt->macro_f1 += mt->f1[k];
        if (n) {
            mt->weighted_p += mt->precision[k] * row / n;
            mt->weighted_r += mt->recall[k] * row / n;
            mt->weighted_f1 += mt->f1[k] * row / n;
        }
    }
    if (mt->n_present) {
        mt->macro_p /= mt->n_present;
        mt->macro_r /= mt->n_present;
        mt->macro_f1 /= mt->n_present;
    }
}

void metrics_set_top_k(Metrics *mt, const float *probs, const uint8_t *labels, int n, int k) {
    DG_ASSERT(k >= 1 && k <= 10);
    long hits[10] = {0};
    for (int i = 0; i < n; i++) {
        const float *row = probs + (size_t)i * 10;
        int rank = 0; /* classes strictly more probable than the label */
        for (int c = 0; c < 10; c++) rank += row[c] > row[labels[i]];
        if (rank < k) hits[rank]++;
    }
    mt->top_k = k;
    long cum = 0;
    for (int j = 0; j < k; j++) {
        cum += hits[j];
        mt->top_k_acc[j] = n ? (double)cum / n : 0;
    }
}

void metrics_print(FILE *f, const Metrics *mt) {
    fprintf(f, "accuracy: %.4f (%d / %d)\n", mt->accuracy, (int)lround(mt->accuracy * mt->n), mt->n);
    if (mt->top_k) {
        fprintf(f, "top-k accuracy:");
        for (int j = 0; j < mt->top_k; j++) fprintf(f, "  top-%d %.4f", j + 1, mt->top_k_acc[j]);
        fprintf(f, "\n");
    }
    /* scikit-learn: "{:>12s} " then " {:>9}" per column, a blank line after the header */
    fprintf(f, "\n%12s  %9s %9s %9s %9s\n\n", "", "precision", "recall", "f1-score", "support");
    for (int k = 0; k < 10; k++)
        if (mt->present[k])
            fprintf(f, "%12d  %9.4f %9.4f %9.4f %9d\n", k, mt->precision[k], mt->recall[k], mt->f1[k], mt->support[k]);
    fprintf(f, "\n%12s  %9s %9s %9.4f %9d\n", "accuracy", "", "", mt->accuracy, mt->n);
    fprintf(f, "%12s  %9.4f %9.4f %9.4f %9d\n", "macro avg", mt->macro_p, mt->macro_r, mt->macro_f1, mt->n);
    fprintf(f, "%12s  %9.4f %9.4f %9.4f %9d\n\n", "weighted avg", mt->weighted_p, mt->weighted_r,
            mt->weighted_f1, mt->n);
    fprintf(f, "confusion matrix (rows: true, columns: predicted)\n      ");
    for (int k = 0; k < 10; k++) fprintf(f, "%6d", k);
    fprintf(f, "\n");
    for (int i = 0; i < 10; i++) {
        fprintf(f, "%6d", i);
        for (int j = 0; j < 10; j++) fprintf(f, "%6d", mt->confusion[i][j]);
        fprintf(f, "\n");
    }
}

static cJSON *prf(double p, double r, double f1, int support) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "precision", p);
    cJSON_AddNumberToObject(o, "recall", r);
    cJSON_AddNumberToObject(o, "f1", f1);
    cJSON_AddNumberToObject(o, "support", support);
    return o;
}

char *metrics_to_json(const Metrics *mt, const char *extra_json) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "accuracy", mt->accuracy);
    cJSON_AddNumberToObject(root, "n", mt->n);
    cJSON *conf = cJSON_AddArrayToObject(root, "confusion");
    for (int i = 0; i < 10; i++) cJSON_AddItemToArray(conf, cJSON_CreateIntArray(mt->confusion[i], 10));
    cJSON *pc = cJSON_AddArrayToObject(root, "per_class");
    for (int k = 0; k < 10; k++) {
        if (!mt->present[k]) continue;
        cJSON *o = prf(mt->precision[k], mt->recall[k], mt->f1[k], mt->support[k]);
        cJSON_AddNumberToObject(o, "class", k);
        cJSON_AddItemToArray(pc, o);
    }
    cJSON_AddItemToObject(root, "macro_avg", prf(mt->macro_p, mt->macro_r, mt->macro_f1, mt->n));
    cJSON_AddItemToObject(root, "weighted_avg", prf(mt->weighted_p, mt->weighted_r, mt->weighted_f1, mt->n));
    if (mt->top_k) {
        cJSON *tk = cJSON_AddObjectToObject(root, "top_k");
        for (int j = 0; j < mt->top_k; j++) {
            char key[16];
            snprintf(key, sizeof key, "%d", j + 1);
            cJSON_AddNumberToObject(tk, key, mt->top_k_acc[j]);
        }
    }
    if (extra_json) {
        cJSON *extra = cJSON_Parse(extra_json);
        for (cJSON *e = extra ? extra->child : NULL; e; e = e->next)
            cJSON_AddItemToObject(root, e->string, cJSON_Duplicate(e, 1));
        cJSON_Delete(extra);
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

/* qsort order: most confident first, then by index */
static int cmp_mis(const void *a, const void *b) {
    const Misclassified *x = a, *y = b;
    if (x->confidence != y->confidence) return x->confidence > y->confidence ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

int metrics_misclassified(const uint8_t *labels, const uint8_t *pred, const float *probs, int n,
                          Misclassified **out) {
    int count = 0;
    for (int i = 0; i < n; i++) count += labels[i] != pred[i];
    *out = NULL;
    if (!count) return 0;
    Misclassified *m = dg_xmalloc((size_t)count * sizeof *m);
    int j = 0;
    for (int i = 0; i < n; i++) {
        if (labels[i] == pred[i]) continue;
        m[j].index = i;
        m[j].truth = labels[i];
        m[j].pred = pred[i];
        m[j].confidence = probs ? probs[(size_t)i * 10 + pred[i]] : 0.0f;
        j++;
    }
    qsort(m, (size_t)count, sizeof *m, cmp_mis);
    *out = m;
    return count;
}

char *misclassified_to_json(const Misclassified *m, int n) {
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "index", m[i].index);
        cJSON_AddNumberToObject(o, "true", m[i].truth);
        cJSON_AddNumberToObject(o, "predicted", m[i].pred);
        /* 6 digits are plenty and keep the list short */
        cJSON_AddItemToObject(o, "confidence", cJSON_CreateNumber(round(m[i].confidence * 1e6) / 1e6));
        cJSON_AddItemToArray(arr, o);
    }
    char *s = cJSON_PrintUnformatted(arr);
    cJSON_Delete(arr);
    DG_ASSERT(s);
    return s;
}
