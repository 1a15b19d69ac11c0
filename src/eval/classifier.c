/* classifier.c — model-file kind dispatch and batched prediction; see
 * classifier.h. The ensemble and SVM kinds live in their own files and are
 * plugged in here. */
#include "eval/classifier.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "eval/svm.h"
#include "eval/ensemble.h"
#include "model/onnx.h"
#include "ops/ops.h"

#define CLASSIFIER_MAX_ACT_BYTES ((size_t)1 << 30)

/* The "digits.kind" metadata value, or "cnn" when absent. */
static int read_kind(const char *meta_json, char *kind, size_t len) {
    cJSON *meta = cJSON_Parse(meta_json);
    cJSON *v = meta ? cJSON_GetObjectItemCaseSensitive(meta, "digits.kind") : NULL;
    snprintf(kind, len, "%s", cJSON_IsString(v) ? v->valuestring : "cnn");
    cJSON_Delete(meta);
    return 0;
}

void classifier_from_model(Classifier *c, Model *m) {
    memset(c, 0, sizeof *c);
    c->kind = CLASSIFIER_CNN;
    c->models = dg_xmalloc(sizeof *c->models);
    c->models[0] = *m;
    memset(m, 0, sizeof *m);
    c->n_models = 1;
    c->width = c->models[0].input_shape.w;
    c->height = c->models[0].input_shape.h;
    c->batch = c->models[0].max_batch > 0 ? c->models[0].max_batch : 256;
    snprintf(c->name, sizeof c->name, "%s", c->models[0].spec_name);
    c->metadata_json = strdup("{}");
}

/* An ONNX file (by its .onnx name) imported as one network (onnx_import:
 * a digits export with its stored normalisation, any other classifier with
 * inputs of pixels/255). Metadata: {"digits.source": "onnx"}. */
static int classifier_load_onnx(Classifier *c, const char *path, int max_batch, int threads) {
    Model m;
    if (onnx_import(&m, path, NULL, 0) < 0) return -1;
    if (max_batch < 1) max_batch = 1;
    size_t fit = CLASSIFIER_MAX_ACT_BYTES / (model_floats_per_image(&m, 0) * sizeof(float));
    if ((size_t)max_batch > fit) max_batch = fit > 0 ? (int)fit : 1;
    model_set_batch(&m, max_batch, 0, threads);
    classifier_from_model(c, &m);
    free(c->metadata_json);
    c->metadata_json = strdup("{\"digits.source\": \"onnx\"}");
    c->batch = max_batch;
    return 0;
}

int classifier_load(Classifier *c, const char *path, int max_batch, int threads) {
    memset(c, 0, sizeof *c);
    if (onnx_is_onnx_path(path)) return classifier_load_onnx(c, path, max_batch, threads);
    char *meta = safetensors_metadata(path);
    if (!meta) return -1;
    char kind[32];
    read_kind(meta, kind, sizeof kind);
    if (max_batch < 1) max_batch = 1;
    if (strcmp(kind, "cnn") == 0) {
        Model m;
        if (model_load(&m, path) < 0) {
            free(meta);
            return -1;
        }
        /* a model file chooses its own activation sizes: keep a batch of
         * them within CLASSIFIER_MAX_ACT_BYTES */
        size_t fit = CLASSIFIER_MAX_ACT_BYTES / (model_floats_per_image(&m, 0) * sizeof(float));
        if ((size_t)max_batch > fit) max_batch = fit > 0 ? (int)fit : 1;
        model_set_batch(&m, max_batch, 0, threads);
        classifier_from_model(c, &m);
        free(c->metadata_json);
        c->metadata_json = meta;
        c->batch = max_batch;
        return 0;
    }
    if (strcmp(kind, "svm") == 0) {
        PcaSvm *s = dg_xmalloc(sizeof *s);
        if (pcasvm_load(s, path) < 0) {
            free(s);
            free(meta);
            return -1;
        }
        c->kind = CLASSIFIER_SVM;
        c->impl = s;
        c->width = s->width;
        c->height = s->height;
        c->batch = max_batch;
        c->metadata_json = meta;
        snprintf(c->name, sizeof c->name, "svm (PCA-%d, RBF)", s->pca.k);
        return 0;
    }
    if (strcmp(kind, "int8") == 0) {
        if (classifier_load_int8(c, path, max_batch) < 0) {
            free(meta);
            return -1;
        }
        c->metadata_json = meta;
        return 0;
    }
    if (strcmp(kind, "ensemble") == 0) {
        if (ensemble_load(c, path, meta, max_batch, threads) < 0) {
            free(meta);
            return -1;
        }
        c->metadata_json = meta;
        return 0;
    }
    free(meta);
    char shown[40];
    return dg_set_error("%s: model kind '%s' is not supported by this build of digits", path,
                        dg_printable(kind, shown, sizeof shown));
}

void classifier_free(Classifier *c) {
    if (c->kind == CLASSIFIER_SVM && c->impl) pcasvm_free(c->impl);
    classifier_int8_free(c);
    free(c->impl);
    for (int i = 0; i < c->n_models; i++) model_free(&c->models[i]);
    free(c->models);
    free(c->metadata_json);
    memset(c, 0, sizeof *c);
}

/* One pass of at most c->batch images. */
static void predict_chunk(Classifier *c, const uint8_t *pixels, int n, float *probs, float *logits) {
    const int K = MODEL_NUM_CLASSES;
    switch (c->kind) {
    case CLASSIFIER_CNN: {
        Model *m = &c->models[0];
        model_load_pixels(m, pixels, n);
        float *z = model_forward(m, n, 0);
        if (logits) memcpy(logits, z, (size_t)n * K * sizeof(float));
        softmax_forward(probs, z, n, K);
        break;
    }
    case CLASSIFIER_SVM:
        pcasvm_predict(c->impl, pixels, n, probs, logits);
        break;
    case CLASSIFIER_ENSEMBLE:
        ensemble_predict_chunk(c, pixels, n, probs, logits);
        break;
    case CLASSIFIER_INT8:
        classifier_int8_predict_chunk(c, pixels, n, probs, logits);
        break;
    default:
        DG_ASSERT(!"classifier kind without a predict implementation");
    }
}

void classifier_predict(Classifier *c, const uint8_t *pixels, int n, float *probs, float *logits) {
    size_t img = (size_t)c->width * c->height;
    for (int s = 0; s < n; s += c->batch) {
        int k = n - s < c->batch ? n - s : c->batch;
        const uint8_t *px = pixels + (size_t)s * img;
        float *pr = probs + (size_t)s * MODEL_NUM_CLASSES;
        float *lg = logits ? logits + (size_t)s * MODEL_NUM_CLASSES : NULL;
        if (c->tta > 1)
            tta_predict_chunk(c, px, k, pr, lg, predict_chunk);
        else
            predict_chunk(c, px, k, pr, lg);
    }
}

double classifier_predict_dataset(Classifier *c, const Dataset *ds, uint8_t *pred, float *probs, double *loss) {
    DG_ASSERT(ds->rows == c->height && ds->cols == c->width);
    const int K = MODEL_NUM_CLASSES;
    size_t img = (size_t)ds->rows * ds->cols;
    float *p = dg_xmalloc((size_t)c->batch * K * sizeof(float));
    double loss_sum = 0;
    long correct = 0;
    for (int start = 0; start < ds->n; start += c->batch) {
        int n = ds->n - start < c->batch ? ds->n - start : c->batch;
        classifier_predict(c, ds->pixels + (size_t)start * img, n, p, NULL);
        for (int i = 0; i < n; i++) {
            const float *row = p + (size_t)i * K;
            int best = 0;
            for (int k = 1; k < K; k++)
                if (row[k] > row[best]) best = k;
            if (pred) pred[start + i] = (uint8_t)best;
            if (ds->labels) {
                float pt = row[ds->labels[start + i]];
                loss_sum += -log(pt > 1e-12f ? pt : 1e-12f);
                correct += best == ds->labels[start + i];
            }
        }
        if (probs) memcpy(probs + (size_t)start * K, p, (size_t)n * K * sizeof(float));
    }
    free(p);
    if (loss) *loss = ds->labels && ds->n ? loss_sum / ds->n : 0.0;
    return ds->labels && ds->n ? (double)correct / ds->n : 0.0;
}

int classifier_measure(Classifier *c, const char *data, double *acc, double *loss, int *n) {
    Dataset ds = {0};
    int rc = -1;
    if (dataset_load(data, "test", &ds) < 0) goto done;
    if (!ds.labels) {
        dg_set_error("%s: has no labels to measure accuracy against", data);
        goto done;
    }
    if (ds.rows != c->height || ds.cols != c->width) {
        dg_set_error("%s: images are %dx%d, the model expects %dx%d", data, ds.rows, ds.cols, c->height, c->width);
        goto done;
    }
    *acc = classifier_predict_dataset(c, &ds, NULL, NULL, loss);
    *n = ds.n;
    rc = 0;
done:
    dataset_free(&ds);
    return rc;
}
