/* holdout.c — the model's record of its training data, and loading the data
 * eval and report evaluate by what it is (see holdout.h). Left out on
 * purpose: anything beyond a prefix match (holdout.h says why). */
#include "eval/holdout.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "core/util.h"

uint64_t holdout_fingerprint(const Dataset *ds, int n) {
    if (n > ds->n) n = ds->n;
    int dims[4] = {n, ds->rows, ds->cols, ds->labels != NULL};
    uint64_t h = hash_bytes(1469598103934665603ULL, (const uint8_t *)dims, sizeof dims);
    h = hash_bytes(h, ds->pixels, (size_t)n * ds->rows * ds->cols);
    if (ds->labels) h = hash_bytes(h, ds->labels, (size_t)n);
    return h ? h : 1; /* 0 means "not recorded" */
}

char *holdout_record_json(uint64_t data_hash, int data_n, float val_split, uint64_t seed, const char *data_path) {
    char buf[64];
    cJSON *o = cJSON_CreateObject();
    snprintf(buf, sizeof buf, "%016" PRIx64, data_hash);
    cJSON_AddStringToObject(o, "data_hash", buf);
    cJSON_AddNumberToObject(o, "data_n", data_n);
    snprintf(buf, sizeof buf, "%a", (double)val_split); /* exact: the split must be re-created bit for bit */
    cJSON_AddStringToObject(o, "val_split", buf);
    snprintf(buf, sizeof buf, "%" PRIu64, seed);
    cJSON_AddStringToObject(o, "seed", buf);
    if (data_path) cJSON_AddStringToObject(o, "data", data_path);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* Fills t from a parsed "holdout" object; 0 on success, -1 if malformed. */
static int parse_record(const cJSON *h, TrainedOn *t) {
    const cJSON *hash = cJSON_GetObjectItemCaseSensitive(h, "data_hash");
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(h, "data_n");
    const cJSON *frac = cJSON_GetObjectItemCaseSensitive(h, "val_split");
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(h, "seed");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(h, "data");
    if (!cJSON_IsString(hash) || !cJSON_IsNumber(n) || !cJSON_IsString(frac) || !cJSON_IsString(seed)) return -1;
    char *end;
    t->data_hash = strtoull(hash->valuestring, &end, 16);
    if (*end || !t->data_hash) return -1;
    double v = strtod(frac->valuestring, &end);
    if (*end || !(v >= 0 && v < 1)) return -1;
    t->val_split = (float)v;
    t->seed = strtoull(seed->valuestring, &end, 10);
    if (*end || !seed->valuestring[0]) return -1;
    if (!(n->valuedouble >= 1 && n->valuedouble <= DATA_MAX_IMAGES)) return -1;
    t->data_n = (int)n->valuedouble;
    snprintf(t->data, sizeof t->data, "%s", cJSON_IsString(data) ? data->valuestring : "");
    return 0;
}

void holdout_parse(const char *metadata_json, TrainedOn *t) {
    memset(t, 0, sizeof *t);
    cJSON *meta = metadata_json ? cJSON_Parse(metadata_json) : NULL;
    const cJSON *tc_s = cJSON_GetObjectItemCaseSensitive(meta, "digits.train_config");
    cJSON *tc = cJSON_IsString(tc_s) ? cJSON_Parse(tc_s->valuestring) : NULL;
    const cJSON *kfold = cJSON_GetObjectItemCaseSensitive(tc, "kfold");
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(tc, "holdout");
    if (cJSON_IsObject(h) && parse_record(h, t) == 0) {
        t->known = 1;
        t->kfold = cJSON_IsNumber(kfold) && kfold->valueint > 1 ? kfold->valueint : 0;
    } else {
        memset(t, 0, sizeof *t);
    }
    cJSON_Delete(tc);
    cJSON_Delete(meta);
}

int holdout_is_training_data(const TrainedOn *t, const Dataset *ds) {
    return t->known && ds->n >= t->data_n && holdout_fingerprint(ds, t->data_n) == t->data_hash;
}

/* The model's validation images out of `data` (its training split). */
static int load_validation(const char *data, const TrainedOn *t, Dataset *out) {
    if (!t->known)
        return dg_set_error("--split val: the model file does not record its training data (written before digits "
                            "kept that record, or not by 'digits train'); evaluate on a held-out file instead "
                            "(cut one with 'digits convert --skip N')");
    if (t->kfold)
        return dg_set_error("--split val: an ensemble trained with --kfold %d has no one validation split (each "
                            "member held out its own fold); evaluate on a held-out file instead",
                            t->kfold);
    if (t->val_split <= 0)
        return dg_set_error("--split val: the model was trained with --val-split 0, so it has no validation "
                            "images; evaluate on a held-out file (cut one with 'digits convert --skip N')");
    Dataset all = {0};
    if (dataset_load(data, "train", &all) < 0) return -1;
    if (!holdout_is_training_data(t, &all)) {
        dataset_free(&all);
        return dg_set_error("%s: --split val: this is not the data the model was trained on (%s%s%d images); give "
                            "that file with --data",
                            data, t->data[0] ? t->data : "", t->data[0] ? ", " : "", t->data_n);
    }
    all.n = t->data_n;
    int *tr, *va, n_tr, n_va;
    split_stratified(all.labels, all.n, t->val_split, t->seed, &tr, &n_tr, &va, &n_va);
    dataset_subset(out, &all, va, n_va);
    free(tr);
    free(va);
    dataset_free(&all);
    return 0;
}

int holdout_load(const char *data, const char *split, const char *metadata_json, Dataset *out, DataRole *role) {
    TrainedOn t;
    holdout_parse(metadata_json, &t);
    memset(out, 0, sizeof *out);
    if (split && strcmp(split, "val") == 0) {
        *role = DATA_VALIDATION;
        return load_validation(data, &t, out);
    }
    if (dataset_load(data, split, out) < 0) return -1;
    *role = holdout_is_training_data(&t, out) ? DATA_TRAINING : DATA_TEST;
    return 0;
}

const char *holdout_role_title(DataRole role) {
    switch (role) {
    case DATA_VALIDATION: return "validation split";
    case DATA_TRAINING: return "training data \xe2\x80\x94 not held out";
    default: return "test set";
    }
}
