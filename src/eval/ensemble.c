/* ensemble.c — ensembles as one model file and one classifier, and
 * test-time augmentation; see ensemble.h.
 * Left out: weighted votes, stacking (a learned combiner), and members of
 * other kinds than networks (an SVM inside an ensemble).
 */
#include "eval/ensemble.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "data/augment.h"
#include "ops/ops.h"


/* ==== voting ============================================================== */

void ensemble_vote(const float *member_logits, int n_members, int n, int vote_logits, float *probs,
                   float *logits) {
    const int K = MODEL_NUM_CLASSES;
    const size_t per = (size_t)n * K;
    DG_ASSERT(n_members >= 1);
    if (vote_logits) {
        /* z = sum_m z_m; p = softmax(z) */
        float *z = logits ? logits : dg_xmalloc(per * sizeof(float));
        memcpy(z, member_logits, per * sizeof(float));
        for (int k = 1; k < n_members; k++)
            for (size_t i = 0; i < per; i++) z[i] += member_logits[(size_t)k * per + i];
        softmax_forward(probs, z, n, K);
        if (!logits) free(z);
        return;
    }
    /* p = (1/M) sum_m softmax(z_m); logits = log p */
    float *pm = dg_xmalloc(per * sizeof(float));
    memset(probs, 0, per * sizeof(float));
    for (int k = 0; k < n_members; k++) {
        softmax_forward(pm, member_logits + (size_t)k * per, n, K);
        for (size_t i = 0; i < per; i++) probs[i] += pm[i];
    }
    for (size_t i = 0; i < per; i++) probs[i] /= (float)n_members;
    if (logits)
        for (size_t i = 0; i < per; i++) logits[i] = logf(probs[i] > 1e-30f ? probs[i] : 1e-30f);
    free(pm);
}

void ensemble_predict_chunk(Classifier *c, const uint8_t *pixels, int n, float *probs, float *logits) {
    const size_t per = (size_t)n * MODEL_NUM_CLASSES;
    float *all = dg_xmalloc((size_t)c->n_models * per * sizeof(float)); /* (M, n, 10) */
    for (int k = 0; k < c->n_models; k++) {
        Model *m = &c->models[k];
        model_load_pixels(m, pixels, n);
        memcpy(all + (size_t)k * per, model_forward(m, n, 0), per * sizeof(float));
    }
    ensemble_vote(all, c->n_models, n, c->vote_logits, probs, logits);
    free(all);
}

/* ==== the file ============================================================ */

static void add_float(cJSON *o, const char *key, float v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%.9g", v);
    cJSON_AddStringToObject(o, key, buf);
}

/* "ensemble of 5 cnn-bn" or "ensemble of 3 (cnn-bn, resnet5, stn)" */
static void ensemble_name(char *buf, size_t len, const Model *members, int n) {
    int same = 1;
    for (int k = 1; k < n; k++) same &= strcmp(members[k].spec_name, members[0].spec_name) == 0;
    if (same) {
        snprintf(buf, len, "ensemble of %d %s", n, members[0].spec_name);
        return;
    }
    size_t o = (size_t)snprintf(buf, len, "ensemble of %d (", n);
    for (int k = 0; k < n && o < len; k++)
        o += (size_t)snprintf(buf + o, len - o, "%s%s", k ? ", " : "", members[k].spec_name);
    if (o < len) snprintf(buf + o, len - o, ")");
}

int ensemble_save(const char *path, const Model *members, int n, int vote_logits,
                  const char *train_config_json, const char *metrics_json) {
    return ensemble_save_dtype(path, members, n, vote_logits, train_config_json, metrics_json, DG_DTYPE_F32);
}

int ensemble_save_dtype(const char *path, const Model *members, int n, int vote_logits,
                        const char *train_config_json, const char *metrics_json, DgDtype dtype) {
    DG_ASSERT(n >= 1 && n <= ENSEMBLE_MAX_MEMBERS);
    cJSON *meta = cJSON_CreateObject();
    char name[256];
    ensemble_name(name, sizeof name, members, n);
    cJSON_AddStringToObject(meta, "digits.kind", "ensemble");
    cJSON_AddStringToObject(meta, "digits.name", name);
    cJSON_AddStringToObject(meta, "digits.vote", vote_logits ? "logits" : "probs");
    cJSON *arr = cJSON_CreateArray();
    const Model *ptrs[ENSEMBLE_MAX_MEMBERS];
    char prefix_buf[ENSEMBLE_MAX_MEMBERS][16];
    const char *prefixes[ENSEMBLE_MAX_MEMBERS];
    for (int k = 0; k < n; k++) {
        const Model *m = &members[k];
        snprintf(prefix_buf[k], sizeof prefix_buf[k], "m%d.", k);
        prefixes[k] = prefix_buf[k];
        ptrs[k] = m;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "prefix", prefix_buf[k]);
        cJSON_AddStringToObject(o, "name", m->spec_name);
        cJSON_AddStringToObject(o, "spec", m->spec_text);
        add_float(o, "norm_mean", m->norm_mean);
        add_float(o, "norm_std", m->norm_std);
        if (m->train_config_json) cJSON_AddStringToObject(o, "train_config", m->train_config_json);
        if (m->metrics_json) cJSON_AddStringToObject(o, "metrics", m->metrics_json);
        cJSON_AddItemToArray(arr, o);
    }
    char *members_json = cJSON_PrintUnformatted(arr);
    cJSON_Delete(arr);
    cJSON_AddStringToObject(meta, "digits.members", members_json);
    free(members_json);
    if (train_config_json) cJSON_AddStringToObject(meta, "digits.train_config", train_config_json);
    if (metrics_json) cJSON_AddStringToObject(meta, "digits.metrics", metrics_json);
    char *meta_json = cJSON_PrintUnformatted(meta);
    cJSON_Delete(meta);
    int rc = models_save_dtype(path, ptrs, prefixes, n, meta_json, dtype);
    free(meta_json);
    return rc;
}

void ensemble_classifier_from_models(Classifier *c, Model *members, int n, int vote_logits) {
    memset(c, 0, sizeof *c);
    c->kind = CLASSIFIER_ENSEMBLE;
    c->models = members;
    c->n_models = n;
    c->vote_logits = vote_logits;
    c->width = members[0].input_shape.w;
    c->height = members[0].input_shape.h;
    c->batch = members[0].max_batch > 0 ? members[0].max_batch : 256;
    for (int k = 1; k < n; k++)
        if (members[k].max_batch < c->batch) c->batch = members[k].max_batch > 0 ? members[k].max_batch : c->batch;
    ensemble_name(c->name, sizeof c->name, members, n);
    c->metadata_json = strdup("{}");
}

/* A string member of a JSON object, or NULL. */
static const char *json_str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int parse_norm(const char *s, float *out) {
    char *end;
    double v = s ? strtod(s, &end) : 0;
    if (!s || *s == '\0' || *end != '\0' || !(v > -1e6 && v < 1e6)) return -1;
    *out = (float)v;
    return 0;
}

int ensemble_load(Classifier *c, const char *path, const char *meta_json, int max_batch, int threads) {
    memset(c, 0, sizeof *c);
    cJSON *meta = cJSON_Parse(meta_json);
    const char *vote = json_str(meta, "digits.vote"), *members_json = json_str(meta, "digits.members");
    const char *name = json_str(meta, "digits.name");
    cJSON *arr = members_json ? cJSON_Parse(members_json) : NULL;
    int n = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : 0;
    int rc = -1;
    Model *ms = NULL;
    if (!vote || (strcmp(vote, "logits") != 0 && strcmp(vote, "probs") != 0)) {
        dg_set_error("%s: ensemble file: digits.vote is '%s', expected logits or probs", path, vote ? vote : "(missing)");
        goto out;
    }
    if (n < 1 || n > ENSEMBLE_MAX_MEMBERS) {
        dg_set_error("%s: ensemble file: digits.members is missing or not a list of 1..%d members",
                     path, ENSEMBLE_MAX_MEMBERS);
        goto out;
    }
    ms = dg_xcalloc((size_t)n, sizeof *ms);
    Model *ptrs[ENSEMBLE_MAX_MEMBERS];
    const char *prefixes[ENSEMBLE_MAX_MEMBERS];
    int built = 0;
    for (int k = 0; k < n; k++) {
        const cJSON *o = cJSON_GetArrayItem(arr, k);
        const char *spec = json_str(o, "spec"), *prefix = json_str(o, "prefix"), *mname = json_str(o, "name");
        float mean, std;
        if (!spec || !prefix || parse_norm(json_str(o, "norm_mean"), &mean) < 0 ||
            parse_norm(json_str(o, "norm_std"), &std) < 0 || !(std > 1e-6f)) {
            dg_set_error("%s: ensemble member %d: needs spec, prefix, norm_mean and a positive norm_std", path, k);
            goto fail_members;
        }
        char origin[4200];
        snprintf(origin, sizeof origin, "%s (member %d's embedded spec)", path, k);
        if (model_build(&ms[k], spec, origin) < 0) goto fail_members;
        built++;
        if (mname) snprintf(ms[k].spec_name, sizeof ms[k].spec_name, "%s", mname);
        ms[k].norm_mean = mean;
        ms[k].norm_std = std;
        const char *cfg = json_str(o, "train_config"), *metrics = json_str(o, "metrics");
        if (cfg) ms[k].train_config_json = strdup(cfg);
        if (metrics) ms[k].metrics_json = strdup(metrics);
        if (k > 0 && (ms[k].input_shape.c != ms[0].input_shape.c || ms[k].input_shape.h != ms[0].input_shape.h ||
                      ms[k].input_shape.w != ms[0].input_shape.w)) {
            dg_set_error("%s: ensemble member %d takes %dx%dx%d images, member 0 %dx%dx%d", path, k,
                         ms[k].input_shape.c, ms[k].input_shape.h, ms[k].input_shape.w,
                         ms[0].input_shape.c, ms[0].input_shape.h, ms[0].input_shape.w);
            goto fail_members;
        }
        ptrs[k] = &ms[k];
        prefixes[k] = prefix;
    }
    if (models_load_weights(ptrs, prefixes, n, path) < 0) goto fail_members;
    for (int k = 0; k < n; k++) model_set_batch(&ms[k], max_batch, 0, threads);
    ensemble_classifier_from_models(c, ms, n, strcmp(vote, "logits") == 0);
    c->batch = max_batch;
    if (name) snprintf(c->name, sizeof c->name, "%s", name);
    free(c->metadata_json);
    c->metadata_json = NULL; /* classifier_load stores the file's */
    rc = 0;
    goto out;
fail_members:
    for (int k = 0; k < built; k++) model_free(&ms[k]);
    free(ms);
out:
    cJSON_Delete(arr);
    cJSON_Delete(meta);
    return rc;
}

/* ==== test-time augmentation ============================================== */

void tta_predict_chunk(Classifier *c, const uint8_t *pixels, int n, float *probs, float *logits,
                       classifier_chunk_fn chunk) {
    const int K = MODEL_NUM_CLASSES;
    const size_t img = (size_t)c->width * c->height, per = (size_t)n * K;
    uint8_t *warped = dg_xmalloc((size_t)n * img);
    float *p = dg_xmalloc(per * sizeof(float));
    memset(probs, 0, per * sizeof(float));
    for (int k = 0; k < c->tta; k++) {
        const uint8_t *in = pixels;
        if (k > 0) {
            double H[9];
            augment_tta_warp(k, c->height, c->width, H);
            for (int i = 0; i < n; i++)
                augment_warp_u8(warped + (size_t)i * img, pixels + (size_t)i * img, c->height, c->width, H, NULL);
            in = warped;
        }
        chunk(c, in, n, p, NULL);
        for (size_t i = 0; i < per; i++) probs[i] += p[i];
    }
    for (size_t i = 0; i < per; i++) probs[i] /= (float)c->tta;
    if (logits)
        for (size_t i = 0; i < per; i++) logits[i] = logf(probs[i] > 1e-30f ? probs[i] : 1e-30f);
    free(warped);
    free(p);
}
