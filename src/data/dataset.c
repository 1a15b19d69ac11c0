/* dataset.c — Dataset lifetime, loading by path (IDX folder or .csv),
 * row subsets, and pixel statistics.
 *
 * dataset_load is the one entry point the CLI uses: it finds the MNIST IDX
 * files in a folder under any of the common spellings (with or without .gz,
 * dashed or dotted), or reads a Kaggle CSV. Left out on purpose: guessing
 * the layout of arbitrary files (a lone IDX file is not accepted: images
 * without their labels are better read with idx_read_images directly), and
 * caching or memory-mapping — MNIST loads in a fraction of a second.
 */
#include "data/data.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/check.h"

void dataset_free(Dataset *ds) {
    if (!ds) return;
    free(ds->pixels);
    free(ds->labels);
    memset(ds, 0, sizeof *ds);
}

/* ---- loading by path -------------------------------------------------------- */

/* Finds the first existing "<dir>/<prefix>-<kind>-<idx>" spelling, where
 * kind is "images"/"labels" and idx is "idx3-ubyte"/"idx1-ubyte". Fills out
 * (cap bytes) and returns 0, or -1 with a message listing what was tried. */
static int find_idx(const char *dir, const char *prefix, const char *kind, const char *idx,
                    char *out, size_t cap) {
    static const char *seps[] = {"-", "."};
    static const char *exts[] = {"", ".gz"};
    for (int s = 0; s < 2; s++) {
        for (int e = 0; e < 2; e++) {
            int len = snprintf(out, cap, "%s/%s-%s%s%s%s", dir, prefix, kind, seps[s], idx,
                               exts[e]);
            if (len < 0 || (size_t)len >= cap) return dg_set_error("%s: path too long", dir);
            struct stat st;
            if (stat(out, &st) == 0 && S_ISREG(st.st_mode)) return 0;
        }
    }
    return dg_set_error("%s: no MNIST %s for split '%s' (looked for %s-%s-%s[.gz] and "
                        "%s-%s.%s[.gz]); run tools/fetch_mnist.sh", dir, kind,
                        strcmp(prefix, "t10k") == 0 ? "test" : prefix, prefix, kind, idx, prefix,
                        kind, idx);
}

int dataset_load(const char *path, const char *split, Dataset *ds) {
    memset(ds, 0, sizeof *ds);
    struct stat st;
    if (stat(path, &st) != 0) return dg_set_error("%s: cannot open: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        const char *prefix;
        if (split && strcmp(split, "train") == 0) prefix = "train";
        else if (split && (strcmp(split, "test") == 0 || strcmp(split, "t10k") == 0)) prefix = "t10k";
        else
            return dg_set_error("%s: unknown split '%s', expected 'train' or 'test'", path,
                                split ? split : "(none)");
        char images[4096], labels[4096];
        if (find_idx(path, prefix, "images", "idx3-ubyte", images, sizeof images) != 0 ||
            find_idx(path, prefix, "labels", "idx1-ubyte", labels, sizeof labels) != 0)
            return -1;
        return idx_read_pair(images, labels, ds);
    }
    size_t len = strlen(path);
    if (len >= 4 && strcasecmp(path + len - 4, ".csv") == 0) return csv_read(path, ds);
    return dg_set_error("%s: expected a folder of MNIST IDX files or a .csv file", path);
}

/* ---- subsets and statistics --------------------------------------------------- */

void dataset_subset(Dataset *out, const Dataset *ds, const int *idx, int n) {
    DG_ASSERT(n >= 0);
    size_t npix = (size_t)ds->rows * ds->cols;
    Dataset r = {.n = n, .rows = ds->rows, .cols = ds->cols};
    r.pixels = dg_xmalloc((size_t)n * npix);
    r.labels = ds->labels ? dg_xmalloc((size_t)n) : NULL;
    for (int i = 0; i < n; i++) {
        int k = idx[i];
        DG_ASSERT(k >= 0 && k < ds->n);
        memcpy(r.pixels + (size_t)i * npix, ds->pixels + (size_t)k * npix, npix);
        if (r.labels) r.labels[i] = ds->labels[k];
    }
    /* Written last, so out may even be ds itself (whoever holds ds's old
     * arrays still owns them). */
    *out = r;
}

/* A histogram of the 256 pixel values makes the sums exact (integers) and
 * the pass a single cheap loop; mean and population std come from it in
 * double. An empty set gives 0 and 0; a constant one gives std 0, so
 * callers that divide by std must guard against 0 either way. */
void dataset_mean_std(const Dataset *ds, float *mean, float *std) {
    uint64_t hist[256] = {0};
    size_t total = (size_t)ds->n * ds->rows * ds->cols;
    for (size_t i = 0; i < total; i++) hist[ds->pixels[i]]++;
    if (total == 0) {
        *mean = *std = 0.0f;
        return;
    }
    double s = 0, s2 = 0;
    for (int v = 0; v < 256; v++) {
        double x = v / 255.0;
        s += x * (double)hist[v];
        s2 += x * x * (double)hist[v];
    }
    double m = s / (double)total;
    double var = s2 / (double)total - m * m;
    *mean = (float)m;
    *std = (float)sqrt(var > 0 ? var : 0);
}
