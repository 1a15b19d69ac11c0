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
#include "quant/qmodel.h"

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

/* Multiply-accumulates of one int8 model per image. */
static double int8_macs(const QModel *q) {
    double macs = 0;
    for (int i = 0; i < q->n_ops; i++) {
        const QOp *op = &q->ops[i];
        if (op->type == QOP_CONV) macs += (double)op->k * op->oh * op->ow * op->c * op->kh * op->kw;
        if (op->type == QOP_DENSE) macs += (double)op->k * op->c * op->h * op->w;
    }
    return macs;
}

/* An int8 file (digits quantize): sizes, members, and the operator table
 * as summary lines (which float layers each int8 operator stands for). */
static void add_int8(cJSON *o, const Classifier *c) {
    static const char *const names[] = {"", "conv", "dense", "maxpool", "avgpool", "table", "add", "concat"};
    const QFile *f = c->impl;
    double weights = 0, macs = 0;
    cJSON *mem = f->n > 1 ? cJSON_AddArrayToObject(o, "members") : NULL;
    cJSON *lines = cJSON_CreateArray();
    char buf[256];
    for (int k = 0; k < f->n; k++) {
        const QModel *q = &f->members[k];
        double w = 0;
        for (int i = 0; i < q->n_ops; i++)
            if (q->ops[i].weight)
                w += q->ops[i].type == QOP_CONV ? (double)q->ops[i].k * q->ops[i].c * q->ops[i].kh * q->ops[i].kw
                                                : (double)q->ops[i].k * q->ops[i].c * q->ops[i].h * q->ops[i].w;
        weights += w, macs += int8_macs(q);
        if (mem) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "name", q->name);
            cJSON_AddNumberToObject(e, "params", w);
            cJSON_AddNumberToObject(e, "macs", int8_macs(q));
            cJSON_AddItemToArray(mem, e);
        }
        if (f->n > 1)
            snprintf(buf, sizeof buf, "member %d (%.100s): %d int8 operators, none left in float", k, q->name,
                     q->n_ops);
        else
            snprintf(buf, sizeof buf, "%.100s: %d int8 operators, none left in float; kernels %s", q->name,
                     q->n_ops, qkernels_name(QKERN_AUTO));
        cJSON_AddItemToArray(lines, cJSON_CreateString(buf));
        snprintf(buf, sizeof buf, "%4s %-8s %-12s %-11s %5s  %s", "op", "type", "output", "scale", "zp",
                 "float layers");
        cJSON_AddItemToArray(lines, cJSON_CreateString(buf));
        for (int i = 0; i < q->n_ops; i++) {
            const QOp *op = &q->ops[i];
            char shape[32];
            snprintf(shape, sizeof shape, "%dx%dx%d", (int)op->k, (int)op->oh, (int)op->ow);
            snprintf(buf, sizeof buf, "%4d %-8s %-12s %-11.4g %5d  %s", i,
                     op->type >= 1 && op->type <= 7 ? names[op->type] : "?", shape, (double)q->scales[i],
                     (int)op->out_zp, q->what[i]);
            cJSON_AddItemToArray(lines, cJSON_CreateString(buf));
        }
    }
    const QModel *q0 = &f->members[0];
    cJSON_AddNumberToObject(o, "params", weights);
    cJSON_AddNumberToObject(o, "buffers", 0);
    cJSON_AddNumberToObject(o, "macs", macs);
    cJSON *shape = cJSON_AddArrayToObject(o, "input");
    cJSON_AddItemToArray(shape, cJSON_CreateNumber(q0->in_c));
    cJSON_AddItemToArray(shape, cJSON_CreateNumber(q0->in_h));
    cJSON_AddItemToArray(shape, cJSON_CreateNumber(q0->in_w));
    /* the normalisation the input quantisation folds in */
    cJSON_AddNumberToObject(o, "norm_mean", (q0->in_zp + 128) / 255.0);
    cJSON_AddNumberToObject(o, "norm_std", 1.0 / (255.0 * q0->in_scale));
    cJSON_AddItemToObject(o, "summary", lines);
    if (mem) cJSON_AddStringToObject(o, "vote", c->vote_logits ? "logits" : "probs");
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
    if (c->kind == CLASSIFIER_INT8) add_int8(o, c);
    cJSON *meta = cJSON_Parse(dg_model_metadata(m));
    cJSON_AddItemToObject(o, "metadata", meta ? meta : cJSON_CreateObject());
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}
