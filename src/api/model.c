/* model.c — dg_model: loading a model file of any kind (or the pretrained
 * "default"/"best"), building an untrained network from the zoo or spec
 * text, saving, freeing, and the small getters. Everything goes through the
 * Classifier (eval/classifier.h) and the model file code (model/).
 * Leaves out: the information as JSON (info.c) and running the model
 * (predict.c, workspace.c). */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api/api.h"
#include "core/check.h"
#include "model/model.h"
#include "quant/qmodel.h"

/* A zeroed model with its pool ready (owned by the caller). */
static dg_model *model_new(void) {
    dg_model *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    pthread_mutex_init(&m->mu, NULL);
    m->threads = api_threads();
    m->batch = 256;
    snprintf(m->dtype, sizeof m->dtype, "F32");
    return m;
}

/* The model file `name` stands for: default/best from the model folders;
 * another pretrained name (mcu-64k, ...) when no file of that name is here;
 * anything else as given. DG_OK, or an error naming what was searched. */
static int resolve(const char *name, char *path, size_t len) {
    struct stat st;
    if (strcmp(name, "default") == 0 || strcmp(name, "best") == 0)
        return model_find_pretrained(name, path, len) < 0 ? DG_ERR_IO : DG_OK;
    if (stat(name, &st) != 0 && !strchr(name, '/') && !strchr(name, '.') &&
        model_find_pretrained(name, path, len) == 0)
        return DG_OK;
    snprintf(path, len, "%s", name);
    return DG_OK;
}

/* A file that is not there but names a zoo architecture: say so. */
static int zoo_name_error(const char *name) {
    struct stat st;
    char spec[PATH_MAX];
    if (stat(name, &st) == 0 || strchr(name, '/') || model_find_spec(name, spec, sizeof spec) < 0) return 0;
    return api_fail(DG_ERR_ARG, "%s: a zoo architecture (%s), not a trained model file: build it with "
                    "dg_model_build and train it, or load default", name, spec);
}

/* The file's tensor dtypes into m->dtype (best effort: "?" if unreadable). */
static void read_dtypes(dg_model *m, const char *path) {
    SafeTensors *st = safetensors_open(path);
    if (!st) {
        snprintf(m->dtype, sizeof m->dtype, "?");
        return;
    }
    safetensors_dtypes(st, m->dtype, sizeof m->dtype);
    safetensors_close(st);
}

int dg_model_load(dg_model **out, const char *path_or_name) {
    int rc = api_need(out, "dg_model_load", "out");
    if (rc) return rc;
    *out = NULL;
    if ((rc = api_need(path_or_name, "dg_model_load", "path"))) return rc;
    char path[PATH_MAX];
    if ((rc = resolve(path_or_name, path, sizeof path))) return rc;
    if ((rc = zoo_name_error(path))) return rc;
    dg_model *m = model_new();
    if (!m) return api_fail(DG_ERR_NOMEM, "out of memory");
    if (classifier_load(&m->proto, path, 1, m->threads) < 0) {
        rc = api_file_error(path);
        dg_model_free(m);
        return rc;
    }
    read_dtypes(m, path);
    *out = m;
    return DG_OK;
}

/* A model around the freshly built network n (moved into it). */
static int wrap_built(dg_model **out, Model *n) {
    dg_model *m = model_new();
    if (!m) {
        model_free(n);
        return api_fail(DG_ERR_NOMEM, "out of memory");
    }
    classifier_from_model(&m->proto, n);
    m->fresh = 1;
    *out = m;
    return DG_OK;
}

int dg_model_build(dg_model **out, const char *zoo_name_or_spec_file) {
    int rc = api_need(out, "dg_model_build", "out");
    if (rc) return rc;
    *out = NULL;
    if ((rc = api_need(zoo_name_or_spec_file, "dg_model_build", "name"))) return rc;
    Model n;
    if (model_build_named(&n, zoo_name_or_spec_file) < 0) {
        char spec[PATH_MAX];
        return model_find_spec(zoo_name_or_spec_file, spec, sizeof spec) == 0 && api_file_error(spec) == DG_ERR_FORMAT
                   ? DG_ERR_FORMAT : DG_ERR_ARG;
    }
    return wrap_built(out, &n);
}

int dg_model_build_spec(dg_model **out, const char *spec_text) {
    int rc = api_need(out, "dg_model_build_spec", "out");
    if (rc) return rc;
    *out = NULL;
    if ((rc = api_need(spec_text, "dg_model_build_spec", "spec_text"))) return rc;
    Model n;
    if (model_build(&n, spec_text, "spec") < 0) return DG_ERR_FORMAT;
    return wrap_built(out, &n);
}

void dg_model_free(dg_model *m) {
    if (!m) return;
    workspace_drop_all(m);
    free(m->idle);
    pthread_mutex_destroy(&m->mu);
    classifier_free(&m->proto);
    free(m);
}

int dg_model_save(const dg_model *m, const char *path) {
    int rc = api_need(m, "dg_model_save", "model");
    if (rc || (rc = api_need(path, "dg_model_save", "path"))) return rc;
    if (m->proto.kind != CLASSIFIER_CNN)
        return api_fail(DG_ERR_UNSUPPORTED, "%s: dg_model_save writes one network; this model is %s", path,
                        m->proto.name);
    if (model_save_dtype(&m->proto.models[0], path, (DgDtype)m->save_dtype) < 0) return DG_ERR_IO;
    return DG_OK;
}

const char *dg_model_kind(const dg_model *m) {
    if (!m) return NULL;
    if (m->proto.kind == CLASSIFIER_INT8) return "int8";
    return m->proto.kind == CLASSIFIER_ENSEMBLE ? "ensemble" : m->proto.kind == CLASSIFIER_SVM ? "svm" : "cnn";
}

const char *dg_model_name(const dg_model *m) { return m ? m->proto.name : NULL; }

size_t dg_model_param_count(const dg_model *m) {
    size_t n = 0;
    for (int k = 0; m && k < m->proto.n_models; k++) n += m->proto.models[k].n_param;
    if (m && m->proto.kind == CLASSIFIER_INT8) n = qfile_param_count(m->proto.impl);
    return n;
}

const char *dg_model_metadata(const dg_model *m) {
    if (!m) return NULL;
    return m->proto.metadata_json ? m->proto.metadata_json : "{}";
}

int dg_model_set_tta(dg_model *m, int n) {
    int rc = api_need(m, "dg_model_set_tta", "model");
    if (rc) return rc;
    if (n > 64) return api_fail(DG_ERR_ARG, "dg_model_set_tta: %d warps; at most 64", n);
    m->tta = n > 1 ? n : 0;
    return DG_OK;
}

int dg_model_set_batch(dg_model *m, int n) {
    int rc = api_need(m, "dg_model_set_batch", "model");
    if (rc) return rc;
    if (n < 1 || n > 65536) return api_fail(DG_ERR_ARG, "dg_model_set_batch: %d images per pass; 1..65536", n);
    m->batch = n;
    return DG_OK;
}

int dg_model_set_threads(dg_model *m, int n) {
    int rc = api_need(m, "dg_model_set_threads", "model");
    if (rc) return rc;
    if (n < 1 || n > 1024) return api_fail(DG_ERR_ARG, "dg_model_set_threads: %d threads; 1..1024", n);
    if (n != m->threads) workspace_drop_all(m); /* idle workspaces were set up for the old count */
    m->threads = n;
    return DG_OK;
}

int dg_model_input_size(const dg_model *m, int *width, int *height) {
    int rc = api_need(m, "dg_model_input_size", "model");
    if (rc || (rc = api_need(width, "dg_model_input_size", "width")) ||
        (rc = api_need(height, "dg_model_input_size", "height")))
        return rc;
    *width = m->proto.width;
    *height = m->proto.height;
    return DG_OK;
}
