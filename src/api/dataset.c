/* dataset.c — dg_dataset: loading MNIST IDX folders and Kaggle CSV files
 * (data/dataset.c), reading images and labels, subsets and the stratified
 * split (data/split.c).
 * Leaves out: writing data sets (the CLI's `digits convert`). */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"

/* A new handle around ds (moved in), or NULL when out of memory. */
static dg_dataset *wrap(Dataset *ds) {
    dg_dataset *d = calloc(1, sizeof *d);
    if (!d) {
        dataset_free(ds);
        return NULL;
    }
    d->ds = *ds;
    memset(ds, 0, sizeof *ds);
    return d;
}

int dg_dataset_load(dg_dataset **out, const char *path, const char *split) {
    int rc = api_need(out, "dg_dataset_load", "out");
    if (rc) return rc;
    *out = NULL;
    if ((rc = api_need(path, "dg_dataset_load", "path"))) return rc;
    if (!split) split = "train";
    if (strcmp(split, "train") != 0 && strcmp(split, "test") != 0)
        return api_fail(DG_ERR_ARG, "dg_dataset_load: split '%.40s' is not train or test", split);
    Dataset ds;
    memset(&ds, 0, sizeof ds);
    if (dataset_load(path, split, &ds) < 0) {
        /* a folder is the normal argument: missing files inside it are I/O errors */
        size_t n = strlen(path);
        return n > 4 && strcmp(path + n - 4, ".csv") == 0 ? api_file_error(path) : DG_ERR_IO;
    }
    if (!(*out = wrap(&ds))) return api_fail(DG_ERR_NOMEM, "out of memory");
    return DG_OK;
}

void dg_dataset_free(dg_dataset *ds) {
    if (!ds) return;
    dataset_free(&ds->ds);
    free(ds);
}

size_t dg_dataset_count(const dg_dataset *ds) { return ds ? (size_t)ds->ds.n : 0; }

const uint8_t *dg_dataset_image(const dg_dataset *ds, size_t i) {
    if (!ds || i >= (size_t)ds->ds.n) return NULL;
    return ds->ds.pixels + i * (size_t)ds->ds.rows * ds->ds.cols;
}

int dg_dataset_label(const dg_dataset *ds, size_t i) {
    if (!ds || !ds->ds.labels || i >= (size_t)ds->ds.n) return -1;
    return ds->ds.labels[i];
}

int dg_dataset_subset(const dg_dataset *ds, size_t first, size_t count, dg_dataset **out) {
    int rc = api_need(out, "dg_dataset_subset", "out");
    if (rc) return rc;
    *out = NULL;
    if ((rc = api_need(ds, "dg_dataset_subset", "ds"))) return rc;
    size_t n = (size_t)ds->ds.n;
    if (first > n) first = n;
    if (count > n - first) count = n - first;
    int *idx = malloc((count ? count : 1) * sizeof *idx);
    if (!idx) return api_fail(DG_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < count; i++) idx[i] = (int)(first + i);
    Dataset sub;
    dataset_subset(&sub, &ds->ds, idx, (int)count);
    free(idx);
    if (!(*out = wrap(&sub))) return api_fail(DG_ERR_NOMEM, "out of memory");
    return DG_OK;
}

int dg_dataset_split(const dg_dataset *ds, float val_fraction, uint64_t seed, dg_dataset **train, dg_dataset **val) {
    const char *F = "dg_dataset_split";
    int rc = api_need(train, F, "train");
    if (rc || (rc = api_need(val, F, "val"))) return rc;
    *train = *val = NULL;
    if ((rc = api_need(ds, F, "ds"))) return rc;
    if (!ds->ds.labels) return api_fail(DG_ERR_ARG, "%s: the data set has no labels", F);
    if (!(val_fraction >= 0 && val_fraction < 1))
        return api_fail(DG_ERR_ARG, "%s: val_fraction %g is not in [0, 1)", F, val_fraction);
    int *tr, *va, n_tr, n_va;
    split_stratified(ds->ds.labels, ds->ds.n, val_fraction, seed, &tr, &n_tr, &va, &n_va);
    Dataset a, b;
    dataset_subset(&a, &ds->ds, tr, n_tr);
    dataset_subset(&b, &ds->ds, va, n_va);
    free(tr);
    free(va);
    *train = wrap(&a);
    *val = wrap(&b);
    if (!*train || !*val) {
        dg_dataset_free(*train);
        dg_dataset_free(*val);
        *train = *val = NULL;
        return api_fail(DG_ERR_NOMEM, "out of memory");
    }
    return DG_OK;
}
