/* info.c — dg_model_info_json: what a model is, as one JSON object (the
 * public form of what `digits info` shows; the CLI prints it from this).
 * Leaves out: anything about the file itself (path, size: the caller has
 * the path). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "model/model.h"

/* model_summary's table as text (malloc'd), or NULL. */
static char *summary_text(const Model *m) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    model_summary(m, f);
    fclose(f);
    return buf;
}

/* The networks' sizes: params, buffers (BN statistics), macs, input shape. */
static void add_sizes(cJSON *o, const Classifier *c) {
    size_t params = 0, buffers = 0;
    double macs = 0;
    for (int k = 0; k < c->n_models; k++) {
        params += c->models[k].n_param;
        buffers += c->models[k].n_buffer;
        macs += model_macs(&c->models[k]);
    }
    cJSON_AddNumberToObject(o, "params", (double)params);
    cJSON_AddNumberToObject(o, "buffers", (double)buffers);
    cJSON_AddNumberToObject(o, "macs", macs);
    const Shape *in = &c->models[0].input_shape;
    cJSON *shape = cJSON_AddArrayToObject(o, "input");
    cJSON_AddItemToArray(shape, cJSON_CreateNumber(in->c));
    cJSON_AddItemToArray(shape, cJSON_CreateNumber(in->h));
    cJSON_AddItemToArray(shape, cJSON_CreateNumber(in->w));
}

/* One network: normalisation and the layer table, one line per item. */
static void add_network(cJSON *o, const Model *m) {
    cJSON_AddNumberToObject(o, "norm_mean", m->norm_mean);
    cJSON_AddNumberToObject(o, "norm_std", m->norm_std);
    char *summary = summary_text(m);
    cJSON *lines = cJSON_AddArrayToObject(o, "summary");
    for (char *save = NULL, *l = summary ? strtok_r(summary, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save))
        cJSON_AddItemToArray(lines, cJSON_CreateString(l));
    free(summary);
}

/* An ensemble: its members and the vote. */
static void add_members(cJSON *o, const Classifier *c) {
    cJSON *mem = cJSON_AddArrayToObject(o, "members");
    for (int k = 0; k < c->n_models; k++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "name", c->models[k].spec_name);
        cJSON_AddNumberToObject(m, "params", (double)c->models[k].n_param);
        cJSON_AddNumberToObject(m, "macs", model_macs(&c->models[k]));
        cJSON_AddItemToArray(mem, m);
    }
    cJSON_AddStringToObject(o, "vote", c->vote_logits ? "logits" : "probs");
}

char *dg_model_info_json(const dg_model *m) {
    if (api_need(m, "dg_model_info_json", "model")) return NULL;
    const Classifier *c = &m->proto;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "kind", dg_model_kind(m));
    cJSON_AddStringToObject(o, "name", c->name);
    cJSON_AddStringToObject(o, "dtype", m->dtype);
    if (c->n_models) add_sizes(o, c);
    if (c->kind == CLASSIFIER_CNN) add_network(o, &c->models[0]);
    if (c->kind == CLASSIFIER_ENSEMBLE) add_members(o, c);
    cJSON *meta = cJSON_Parse(dg_model_metadata(m));
    cJSON_AddItemToObject(o, "metadata", meta ? meta : cJSON_CreateObject());
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}
