/* qfile.c — the int8 model file (layout in qmodel.h): a safetensors file
 * whose metadata holds each member's operator graph as JSON and whose I8 /
 * I32 tensors hold the weights, biases, multipliers, shifts, clamps and
 * tables. Loading checks every number (qmodel_check) so that a corrupt
 * file fails with one line instead of running.
 * Left out on purpose: float tensors (an int8 file has none) and any
 * version but the first (digits.int8.version = 1). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "model/model.h"
#include "quant/qmodel.h"

#define QFILE_MAX_MEMBERS 256 /* as ensembles (ENSEMBLE_MAX_MEMBERS) */
#define QFILE_VERSION "1"

/* How many elements each array of op has (0: none). */
typedef struct {
    size_t weight, bias, mult, act, lut; /* act: act_min and act_max each */
} OpCounts;

static OpCounts op_counts(const QOp *op) {
    OpCounts n = {0, 0, 0, 0, 0};
    switch (op->type) {
    case QOP_CONV:
        n.weight = (size_t)op->k * op->c * op->kh * op->kw;
        n.bias = n.mult = n.act = (size_t)op->k;
        break;
    case QOP_DENSE:
        n.weight = (size_t)op->k * op->c * op->h * op->w;
        n.bias = n.mult = n.act = (size_t)op->k;
        break;
    case QOP_AVGPOOL: n.mult = n.act = 1; break;
    case QOP_ADD: n.mult = 3, n.act = 1; break;
    case QOP_CONCAT: n.mult = 2, n.act = 1; break;
    case QOP_LUT: n.lut = 256; break;
    default: break;
    }
    return n;
}

int qfile_is_int8_meta(const char *meta_json) {
    cJSON *meta = cJSON_Parse(meta_json);
    cJSON *v = meta ? cJSON_GetObjectItemCaseSensitive(meta, "digits.kind") : NULL;
    int yes = cJSON_IsString(v) && strcmp(v->valuestring, "int8") == 0;
    cJSON_Delete(meta);
    return yes;
}

void qfile_free(QFile *f) {
    for (int k = 0; f->members && k < f->n; k++) qmodel_free(&f->members[k]);
    free(f->members);
    memset(f, 0, sizeof *f);
}

size_t qfile_param_count(const QFile *f) {
    size_t n = 0;
    for (int k = 0; k < f->n; k++)
        for (int i = 0; i < f->members[k].n_ops; i++) {
            OpCounts c = op_counts(&f->members[k].ops[i]);
            n += c.weight + c.bias;
        }
    return n;
}

/* ==== saving ============================================================== */

/* The integer fields of an op, in JSON order (shared by save and load). */
#define QOP_INT_FIELDS(X)                                                                                       \
    X(type) X(in0) X(in1) X(c) X(h) X(w) X(c1) X(k) X(oh) X(ow) X(kh) X(kw) X(stride) X(pad_t) X(pad_l)         \
    X(in_zp) X(in1_zp) X(out_zp)

/* Member q's graph as a JSON string (caller frees). */
static char *member_json(const QModel *q) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", q->name);
    if (q->spec_text) cJSON_AddStringToObject(o, "spec", q->spec_text);
    cJSON_AddNumberToObject(o, "in_scale", (double)q->in_scale);
    cJSON_AddNumberToObject(o, "in_zp", q->in_zp);
    cJSON *in = cJSON_AddArrayToObject(o, "in");
    cJSON_AddItemToArray(in, cJSON_CreateNumber(q->in_c));
    cJSON_AddItemToArray(in, cJSON_CreateNumber(q->in_h));
    cJSON_AddItemToArray(in, cJSON_CreateNumber(q->in_w));
    cJSON *ops = cJSON_AddArrayToObject(o, "ops");
    for (int i = 0; i < q->n_ops; i++) {
        const QOp *op = &q->ops[i];
        cJSON *e = cJSON_CreateObject();
#define ADD_FIELD(f) cJSON_AddNumberToObject(e, #f, op->f);
        QOP_INT_FIELDS(ADD_FIELD)
#undef ADD_FIELD
        cJSON_AddNumberToObject(e, "scale", (double)q->scales[i]);
        cJSON_AddStringToObject(e, "what", q->what ? q->what[i] : "");
        cJSON_AddItemToArray(ops, e);
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    DG_ASSERT(s);
    return s;
}

/* Append op i's arrays of member `prefix` to t (names in names[]). */
static int add_op_tensors(const QOp *op, const char *prefix, int i, SafeTensor *t, char (*names)[48]) {
    OpCounts n = op_counts(op);
    int nt = 0;
#define ADD_T(field, dt, cnt)                                                                                   \
    if (cnt) {                                                                                                  \
        snprintf(names[nt], sizeof names[nt], "%s%d." #field, prefix, i);                                      \
        t[nt] = (SafeTensor){names[nt], dt, cnt, op->field};                                                    \
        nt++;                                                                                                   \
    }
    ADD_T(weight, "I8", n.weight)
    ADD_T(bias, "I32", n.bias)
    ADD_T(mult, "I32", n.mult)
    ADD_T(shift, "I32", n.mult)
    ADD_T(act_min, "I8", n.act)
    ADD_T(act_max, "I8", n.act)
    ADD_T(lut, "I8", n.lut)
#undef ADD_T
    return nt;
}

int qfile_save(const QFile *f, const char *path, const char *extra_meta_json) {
    cJSON *meta = extra_meta_json ? cJSON_Parse(extra_meta_json) : cJSON_CreateObject();
    if (!cJSON_IsObject(meta)) {
        cJSON_Delete(meta);
        meta = cJSON_CreateObject();
    }
    const char *drop[] = {"digits.kind", "digits.int8.members", "digits.int8.version", "digits.vote"};
    for (size_t i = 0; i < sizeof drop / sizeof *drop; i++) cJSON_DeleteItemFromObjectCaseSensitive(meta, drop[i]);
    cJSON_AddStringToObject(meta, "digits.kind", "int8");
    cJSON_AddStringToObject(meta, "digits.int8.version", QFILE_VERSION);
    char buf[32];
    snprintf(buf, sizeof buf, "%d", f->n);
    cJSON_AddStringToObject(meta, "digits.int8.members", buf);
    cJSON_AddStringToObject(meta, "digits.vote", f->vote_logits ? "logits" : "probs");
    size_t cap = 0;
    for (int k = 0; k < f->n; k++) cap += 7 * (size_t)f->members[k].n_ops;
    SafeTensor *t = dg_xcalloc(cap + 1, sizeof *t);
    char(*names)[48] = dg_xcalloc(cap + 1, sizeof *names);
    int nt = 0;
    for (int k = 0; k < f->n; k++) {
        char key[40], prefix[16];
        snprintf(key, sizeof key, "digits.int8.m%d", k);
        snprintf(prefix, sizeof prefix, "m%d.", k);
        char *js = member_json(&f->members[k]);
        cJSON_DeleteItemFromObjectCaseSensitive(meta, key);
        cJSON_AddStringToObject(meta, key, js);
        free(js);
        for (int i = 0; i < f->members[k].n_ops; i++)
            nt += add_op_tensors(&f->members[k].ops[i], prefix, i, t + nt, names + nt);
    }
    char *mj = cJSON_PrintUnformatted(meta);
    cJSON_Delete(meta);
    DG_ASSERT(mj);
    int rc = safetensors_write_raw(path, mj, t, nt);
    free(mj);
    free(t);
    free(names);
    return rc;
}

/* ==== loading ============================================================= */

/* *out = integer JSON field `name` of o within [lo, hi]. */
static int json_int(const cJSON *o, const char *name, long lo, long hi, int32_t *out, const char *path,
                    const char *where) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < (double)lo ||
        v->valuedouble > (double)hi)
        return dg_set_error("%s: %s: field %s missing or not an integer in %ld..%ld", path, where, name, lo, hi);
    *out = (int32_t)v->valuedouble;
    return 0;
}

/* A float JSON field (any number; qmodel_check judges it). */
static int json_float(const cJSON *o, const char *name, float *out, const char *path, const char *where) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsNumber(v)) return dg_set_error("%s: %s: field %s missing or not a number", path, where, name);
    *out = (float)v->valuedouble;
    return 0;
}

/* Read op i's arrays (malloc'd into op) from the file. */
static int read_op_tensors(QOp *op, const SafeTensors *s, const char *prefix, int i) {
    OpCounts n = op_counts(op);
    char name[64];
#define GET_T(field, type, dt, cnt)                                                                             \
    if (cnt) {                                                                                                  \
        type *a = dg_xmalloc((cnt) * sizeof(type));                                                             \
        op->field = a;                                                                                          \
        snprintf(name, sizeof name, "%s%d." #field, prefix, i);                                                 \
        if (safetensors_get(s, name, dt, cnt, a) < 0) return -1;                                               \
    }
    GET_T(weight, int8_t, "I8", n.weight)
    GET_T(bias, int32_t, "I32", n.bias)
    GET_T(mult, int32_t, "I32", n.mult)
    GET_T(shift, int32_t, "I32", n.mult)
    GET_T(act_min, int8_t, "I8", n.act)
    GET_T(act_max, int8_t, "I8", n.act)
    GET_T(lut, int8_t, "I8", n.lut)
#undef GET_T
    return 0;
}

/* One op's fields from its JSON entry (shapes bounded so that the array
 * sizes cannot overflow before qmodel_check judges them). */
static int read_op(QModel *q, int i, const cJSON *e, const char *path, const char *where) {
    QOp *op = &q->ops[i];
    char at[64];
    snprintf(at, sizeof at, "%s op %d", where, i);
    if (!cJSON_IsObject(e)) return dg_set_error("%s: %s: not an object", path, at);
#define GET_FIELD(f)                                                                                            \
    if (json_int(e, #f, -65536, 65536, &op->f, path, at) < 0) return -1;
    QOP_INT_FIELDS(GET_FIELD)
#undef GET_FIELD
    op->out = i;
    if (json_float(e, "scale", &q->scales[i], path, at) < 0) return -1;
    const cJSON *what = cJSON_GetObjectItemCaseSensitive(e, "what");
    snprintf(q->what[i], sizeof q->what[i], "%s", cJSON_IsString(what) ? what->valuestring : "");
    int32_t dims[] = {op->c, op->h, op->w, op->k, op->kh, op->kw, op->oh, op->ow, op->c1};
    for (size_t d = 0; d < sizeof dims / sizeof *dims; d++)
        if (dims[d] < 0 || dims[d] > 4096)
            return dg_set_error("%s: %s: a dimension is outside 0..4096", path, at);
    if ((int64_t)op->k * op->c * op->h * op->w > ((int64_t)1 << 28) ||
        (int64_t)op->k * op->c * op->kh * op->kw > ((int64_t)1 << 28))
        return dg_set_error("%s: %s: weights too large", path, at);
    return 0;
}

/* Member k from its JSON string and the file's tensors. */
static int read_member(QModel *q, int k, const char *js, const SafeTensors *s, const char *path) {
    char where[32], prefix[16];
    snprintf(where, sizeof where, "member %d", k);
    snprintf(prefix, sizeof prefix, "m%d.", k);
    cJSON *o = cJSON_Parse(js);
    int rc = -1;
    const cJSON *ops = o ? cJSON_GetObjectItemCaseSensitive(o, "ops") : NULL;
    const cJSON *in = o ? cJSON_GetObjectItemCaseSensitive(o, "in") : NULL;
    if (!cJSON_IsArray(ops) || !cJSON_IsArray(in) || cJSON_GetArraySize(in) != 3) {
        dg_set_error("%s: %s: graph is not valid JSON with \"ops\" and \"in\"", path, where);
        goto done;
    }
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(o, "name"), *spec = cJSON_GetObjectItemCaseSensitive(o, "spec");
    snprintf(q->name, sizeof q->name, "%s", cJSON_IsString(nm) ? nm->valuestring : "int8");
    if (cJSON_IsString(spec)) q->spec_text = strdup(spec->valuestring);
    int32_t dims[3], zp = 0;
    for (int d = 0; d < 3; d++) {
        const cJSON *v = cJSON_GetArrayItem(in, d);
        dims[d] = cJSON_IsNumber(v) && v->valuedouble >= 1 && v->valuedouble <= 4096 ? (int32_t)v->valuedouble : 0;
    }
    if (json_float(o, "in_scale", &q->in_scale, path, where) < 0 || json_int(o, "in_zp", -128, 127, &zp, path, where) < 0)
        goto done;
    q->in_c = dims[0], q->in_h = dims[1], q->in_w = dims[2], q->in_zp = zp;
    q->n_ops = cJSON_GetArraySize(ops);
    if (q->n_ops < 1 || q->n_ops > QMODEL_MAX_OPS) {
        dg_set_error("%s: %s: %d operators (1..%d expected)", path, where, q->n_ops, QMODEL_MAX_OPS);
        q->n_ops = 0;
        goto done;
    }
    q->ops = dg_xcalloc((size_t)q->n_ops, sizeof *q->ops);
    q->scales = dg_xcalloc((size_t)q->n_ops, sizeof *q->scales);
    q->what = dg_xcalloc((size_t)q->n_ops, sizeof *q->what);
    for (int i = 0; i < q->n_ops; i++)
        if (read_op(q, i, cJSON_GetArrayItem(ops, i), path, where) < 0) goto done;
    for (int i = 0; i < q->n_ops; i++)
        if (read_op_tensors(&q->ops[i], s, prefix, i) < 0) goto done;
    char origin[600];
    snprintf(origin, sizeof origin, "%s: %s", path, where);
    rc = qmodel_check(q, origin);
done:
    cJSON_Delete(o);
    return rc;
}

int qfile_load(QFile *f, const char *path) {
    memset(f, 0, sizeof *f);
    SafeTensors *s = safetensors_open(path);
    if (!s) return -1;
    const char *kind = safetensors_meta(s, "digits.kind");
    const char *members = safetensors_meta(s, "digits.int8.members");
    const char *version = safetensors_meta(s, "digits.int8.version");
    const char *vote = safetensors_meta(s, "digits.vote");
    int rc = -1;
    if (!kind || strcmp(kind, "int8") != 0) {
        dg_set_error("%s: not an int8 model (make one with digits quantize)", path);
        goto done;
    }
    if (!version || strcmp(version, QFILE_VERSION) != 0) {
        dg_set_error("%s: int8 format version %s not supported (this digits reads %s)", path,
                     version ? version : "(missing)", QFILE_VERSION);
        goto done;
    }
    char *end = NULL;
    long n = members ? strtol(members, &end, 10) : 0;
    if (!members || *end || n < 1 || n > QFILE_MAX_MEMBERS) {
        dg_set_error("%s: digits.int8.members must be 1..%d", path, QFILE_MAX_MEMBERS);
        goto done;
    }
    f->n = (int)n;
    f->vote_logits = vote && strcmp(vote, "logits") == 0;
    f->members = dg_xcalloc((size_t)n, sizeof *f->members);
    for (int k = 0; k < f->n; k++) {
        char key[40];
        snprintf(key, sizeof key, "digits.int8.m%d", k);
        const char *js = safetensors_meta(s, key);
        if (!js) {
            dg_set_error("%s: metadata %s missing", path, key);
            goto done;
        }
        if (read_member(&f->members[k], k, js, s, path) < 0) goto done;
    }
    rc = 0;
done:
    safetensors_close(s);
    if (rc < 0) qfile_free(f);
    return rc;
}
