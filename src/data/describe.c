/* describe.c — a data set's overview; see describe.h for the definitions.
 *
 * Everything but the duplicates comes from one pass over the pixels
 * (integer sums, so the numbers do not depend on the order or the thread
 * count); duplicates from hashing every image and sorting the hashes.
 * 60 000 MNIST images take a few tens of milliseconds.
 *
 * Leaves out on purpose: threads (the pass is memory-bound and already far
 * faster than reading the file).
 */
#include "data/describe.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"

void describe_free(DataStats *s) {
    if (!s) return;
    free(s->always_zero);
    free(s->mean_image);
    free(s->class_mean_image);
    memset(s, 0, sizeof *s);
}

/* ==== steps ================================================================= */

/* Counts per label, the balance ratio and its verdict. */
static void label_balance(DataStats *s, const Dataset *ds) {
    if (!ds->labels) {
        s->balance = "unlabelled";
        return;
    }
    for (int i = 0; i < ds->n; i++) s->label_count[ds->labels[i]]++;
    int mn = s->label_count[0], mx = s->label_count[0];
    for (int k = 1; k < 10; k++) {
        if (s->label_count[k] < mn) mn = s->label_count[k];
        if (s->label_count[k] > mx) mx = s->label_count[k];
    }
    s->balance_ratio = mn > 0 ? (double)mx / mn : INFINITY;
    s->balance = s->balance_ratio <= DESCRIBE_BALANCED_MAX ? "balanced"
                 : s->balance_ratio <= DESCRIBE_MILD_MAX   ? "mildly imbalanced"
                                                           : "imbalanced";
}

/* Mean of the outermost ring of one image (the whole image if it has no
 * inside: a side of 1 or 2). */
static double ring_mean(const uint8_t *px, int rows, int cols) {
    uint64_t sum = 0, cnt = 0;
    for (int y = 0; y < rows; y++)
        for (int x = 0; x < cols; x++)
            if (y == 0 || y == rows - 1 || x == 0 || x == cols - 1) sum += px[(size_t)y * cols + x], cnt++;
    return cnt ? (double)sum / cnt : 0;
}

/* The one pass: the value histogram, per-position sums (whole set and per
 * class), per-position "ever non-zero", per-class sums, inverted and empty
 * images. */
static void pixel_pass(DataStats *s, const Dataset *ds) {
    const size_t D = (size_t)ds->rows * ds->cols;
    uint64_t *pos_sum = dg_xcalloc(D, sizeof *pos_sum);
    uint64_t *cls_pos_sum = ds->labels ? dg_xcalloc(10 * D, sizeof *cls_pos_sum) : NULL;
    uint8_t *ever = dg_xcalloc(D, 1);
    uint64_t cls_sum[10] = {0};
    for (int i = 0; i < ds->n; i++) {
        const uint8_t *px = ds->pixels + (size_t)i * D;
        uint64_t *cp = cls_pos_sum ? cls_pos_sum + ds->labels[i] * D : NULL;
        uint64_t img_sum = 0;
        uint8_t mx = 0;
        for (size_t j = 0; j < D; j++) {
            uint8_t v = px[j];
            s->hist[v]++;
            pos_sum[j] += v;
            if (cp) cp[j] += v;
            ever[j] |= v;
            img_sum += v;
            if (v > mx) mx = v;
        }
        if (ds->labels) cls_sum[ds->labels[i]] += img_sum;
        if (mx <= DESCRIBE_EMPTY_MAX) {
            if (s->n_empty < DESCRIBE_EXAMPLES) s->empty_example[s->n_empty] = i;
            s->n_empty++;
        }
        if (ring_mean(px, ds->rows, ds->cols) > DESCRIBE_INVERTED_BORDER) {
            if (s->n_inverted < DESCRIBE_EXAMPLES) s->inverted_example[s->n_inverted] = i;
            s->n_inverted++;
        }
    }
    s->always_zero = dg_xmalloc(D);
    s->mean_image = dg_xmalloc(D * sizeof(float));
    for (size_t j = 0; j < D; j++) {
        s->always_zero[j] = ever[j] == 0;
        s->n_always_zero += s->always_zero[j];
        s->mean_image[j] = ds->n ? (float)((double)pos_sum[j] / ds->n) : 0.0f;
    }
    if (cls_pos_sum) {
        s->class_mean_image = dg_xmalloc(10 * D * sizeof(float));
        for (int k = 0; k < 10; k++) {
            int c = s->label_count[k];
            s->class_mean[k] = c ? (double)cls_sum[k] / ((double)c * D) : 0;
            for (size_t j = 0; j < D; j++)
                s->class_mean_image[k * D + j] = c ? (float)((double)cls_pos_sum[k * D + j] / c) : 0.0f;
        }
    }
    free(pos_sum);
    free(cls_pos_sum);
    free(ever);
}

/* Mean, std and the zero share from the histogram (exact integer sums). */
static void pixel_moments(DataStats *s) {
    double total = 0, sum = 0, sum2 = 0;
    for (int v = 0; v < 256; v++) {
        double c = (double)s->hist[v];
        total += c;
        sum += c * v;
        sum2 += c * v * v;
    }
    if (total == 0) return;
    s->mean = sum / total;
    double var = sum2 / total - s->mean * s->mean;
    s->std = sqrt(var > 0 ? var : 0);
    s->zero_share = (double)s->hist[0] / total;
}

/* 1 when every position of row y (or column x) is always zero. */
static int row_zero(const uint8_t *z, int cols, int y) {
    for (int x = 0; x < cols; x++)
        if (!z[(size_t)y * cols + x]) return 0;
    return 1;
}
static int col_zero(const uint8_t *z, int rows, int cols, int x) {
    for (int y = 0; y < rows; y++)
        if (!z[(size_t)y * cols + x]) return 0;
    return 1;
}

/* Whole always-zero rows / columns at each edge, and the positions by
 * their distance to the nearest edge. */
static void zero_frame(DataStats *s, int rows, int cols) {
    const uint8_t *z = s->always_zero;
    int k;
    for (k = 0; k < rows && row_zero(z, cols, k); k++) {}
    s->frame_top = k;
    for (k = 0; k < rows && row_zero(z, cols, rows - 1 - k); k++) {}
    s->frame_bottom = k;
    for (k = 0; k < cols && col_zero(z, rows, cols, k); k++) {}
    s->frame_left = k;
    for (k = 0; k < cols && col_zero(z, rows, cols, cols - 1 - k); k++) {}
    s->frame_right = k;
    for (int y = 0; y < rows; y++)
        for (int x = 0; x < cols; x++) {
            if (!z[(size_t)y * cols + x]) continue;
            int d = y, e = rows - 1 - y;
            if (e < d) d = e;
            if (x < d) d = x;
            if (cols - 1 - x < d) d = cols - 1 - x;
            s->zero_by_edge[d < DESCRIBE_EDGE_BANDS - 1 ? d : DESCRIBE_EDGE_BANDS - 1]++;
        }
}

typedef struct {
    uint64_t h;
    int i;
} HashIdx;

static int cmp_hash(const void *a, const void *b) {
    const HashIdx *x = a, *y = b;
    if (x->h != y->h) return x->h < y->h ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

static uint64_t fnv1a(const uint8_t *p, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

/* Exact duplicates: sort (hash, index); within a run of equal hashes each
 * image is compared with the run's distinct images seen so far, so a run of
 * identical images costs one compare each. The examples are the first
 * duplicates by index. */
static void duplicates(DataStats *s, const Dataset *ds) {
    const size_t D = (size_t)ds->rows * ds->cols;
    HashIdx *hi = dg_xmalloc((size_t)(ds->n + 1) * sizeof *hi);
    int *first = dg_xmalloc((size_t)(ds->n + 1) * sizeof(int)); /* index of the first copy, or -1 */
    int *reps = dg_xmalloc((size_t)(ds->n + 1) * sizeof(int));
    for (int i = 0; i < ds->n; i++) {
        hi[i].h = fnv1a(ds->pixels + (size_t)i * D, D);
        hi[i].i = i;
        first[i] = -1;
    }
    qsort(hi, (size_t)ds->n, sizeof *hi, cmp_hash);
    for (int a = 0; a < ds->n;) {
        int b = a, nrep = 0;
        while (b < ds->n && hi[b].h == hi[a].h) b++;
        for (int k = a; k < b; k++) {
            const uint8_t *px = ds->pixels + (size_t)hi[k].i * D;
            int r = 0;
            while (r < nrep && memcmp(px, ds->pixels + (size_t)reps[r] * D, D) != 0) r++;
            if (r < nrep) first[hi[k].i] = reps[r]; /* runs are index-sorted: reps[r] is the first copy */
            else reps[nrep++] = hi[k].i;
        }
        a = b;
    }
    for (int i = 0; i < ds->n; i++) {
        if (first[i] < 0) continue;
        if (s->n_duplicates < DESCRIBE_EXAMPLES) {
            s->dup_example[s->n_duplicates] = i;
            s->dup_first[s->n_duplicates] = first[i];
        }
        s->n_duplicates++;
        if (ds->labels && ds->labels[i] != ds->labels[first[i]]) s->n_dup_conflicts++;
    }
    free(hi);
    free(first);
    free(reps);
}

void describe_compute(DataStats *s, const Dataset *ds) {
    memset(s, 0, sizeof *s);
    s->n = ds->n;
    s->rows = ds->rows;
    s->cols = ds->cols;
    s->labelled = ds->labels != NULL;
    label_balance(s, ds);
    pixel_pass(s, ds);
    pixel_moments(s);
    zero_frame(s, ds->rows, ds->cols);
    duplicates(s, ds);
}

/* ==== output ================================================================ */

static cJSON *int_array(const int *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

static double round_to(double v, double unit) { return round(v / unit) * unit; }

char *describe_to_json(const DataStats *s, const char *source, const char *format) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "source", source);
    cJSON_AddStringToObject(o, "format", format);
    cJSON_AddNumberToObject(o, "n", s->n);
    cJSON_AddNumberToObject(o, "rows", s->rows);
    cJSON_AddNumberToObject(o, "cols", s->cols);
    cJSON_AddBoolToObject(o, "labelled", s->labelled);
    if (s->labelled) {
        cJSON *lab = cJSON_AddObjectToObject(o, "labels");
        cJSON_AddItemToObject(lab, "counts", int_array(s->label_count, 10));
        cJSON *sh = cJSON_AddArrayToObject(lab, "shares");
        cJSON *cm = cJSON_CreateArray();
        for (int k = 0; k < 10; k++) {
            cJSON_AddItemToArray(sh, cJSON_CreateNumber(s->n ? round_to((double)s->label_count[k] / s->n, 1e-6) : 0));
            cJSON_AddItemToArray(cm, cJSON_CreateNumber(round_to(s->class_mean[k], 1e-4)));
        }
        if (isfinite(s->balance_ratio)) cJSON_AddNumberToObject(lab, "balance_ratio", round_to(s->balance_ratio, 1e-4));
        else cJSON_AddNullToObject(lab, "balance_ratio");
        cJSON_AddItemToObject(o, "class_mean_intensity", cm);
    }
    cJSON_AddStringToObject(o, "balance", s->balance);
    cJSON *px = cJSON_AddObjectToObject(o, "pixels");
    cJSON_AddNumberToObject(px, "mean", round_to(s->mean, 1e-4));
    cJSON_AddNumberToObject(px, "std", round_to(s->std, 1e-4));
    cJSON_AddNumberToObject(px, "zero_share", round_to(s->zero_share, 1e-6));
    cJSON_AddNumberToObject(px, "always_zero", s->n_always_zero);
    cJSON *fr = cJSON_AddObjectToObject(px, "zero_frame");
    cJSON_AddNumberToObject(fr, "top", s->frame_top);
    cJSON_AddNumberToObject(fr, "bottom", s->frame_bottom);
    cJSON_AddNumberToObject(fr, "left", s->frame_left);
    cJSON_AddNumberToObject(fr, "right", s->frame_right);
    cJSON_AddItemToObject(px, "always_zero_by_edge_distance", int_array(s->zero_by_edge, DESCRIBE_EDGE_BANDS));
    cJSON *dup = cJSON_AddObjectToObject(o, "duplicates");
    cJSON_AddNumberToObject(dup, "count", s->n_duplicates);
    cJSON_AddNumberToObject(dup, "label_conflicts", s->n_dup_conflicts);
    int ne = s->n_duplicates < DESCRIBE_EXAMPLES ? s->n_duplicates : DESCRIBE_EXAMPLES;
    cJSON *pairs = cJSON_AddArrayToObject(dup, "examples");
    for (int i = 0; i < ne; i++) {
        int pair[2] = {s->dup_first[i], s->dup_example[i]};
        cJSON_AddItemToArray(pairs, int_array(pair, 2));
    }
    cJSON *inv = cJSON_AddObjectToObject(o, "inverted");
    cJSON_AddNumberToObject(inv, "count", s->n_inverted);
    cJSON_AddItemToObject(
        inv, "examples",
        int_array(s->inverted_example, s->n_inverted < DESCRIBE_EXAMPLES ? s->n_inverted : DESCRIBE_EXAMPLES));
    cJSON *emp = cJSON_AddObjectToObject(o, "empty");
    cJSON_AddNumberToObject(emp, "count", s->n_empty);
    cJSON_AddItemToObject(emp, "examples",
                          int_array(s->empty_example, s->n_empty < DESCRIBE_EXAMPLES ? s->n_empty : DESCRIBE_EXAMPLES));
    char *out = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    DG_ASSERT(out != NULL);
    return out;
}

/* "3, 17, 2045 ..." — up to DESCRIBE_EXAMPLES indices, "..." when more. */
static void print_examples(FILE *f, const int *v, int count) {
    int n = count < DESCRIBE_EXAMPLES ? count : DESCRIBE_EXAMPLES;
    if (n == 0) return;
    fprintf(f, " (images ");
    for (int i = 0; i < n; i++) fprintf(f, "%s%d", i ? ", " : "", v[i]);
    fprintf(f, "%s)", count > n ? " ..." : "");
}

void describe_print(const DataStats *s, const char *source, const char *format, FILE *f) {
    const int D = s->rows * s->cols;
    fprintf(f, "%s (%s): %d images of %dx%d pixels, %s\n", source, format, s->n, s->rows, s->cols,
            s->labelled ? "labelled" : "unlabelled (no label column)");
    if (s->labelled) {
        fprintf(f, "labels:\n  digit   count   share\n");
        for (int k = 0; k < 10; k++)
            fprintf(f, "  %5d %7d  %5.2f%%\n", k, s->label_count[k], s->n ? 100.0 * s->label_count[k] / s->n : 0);
        if (isfinite(s->balance_ratio))
            fprintf(f, "balance: %s — largest/smallest class %.2f (balanced <= %.1f, mildly imbalanced <= %.1f)\n",
                    s->balance, s->balance_ratio, DESCRIBE_BALANCED_MAX, DESCRIBE_MILD_MAX);
        else fprintf(f, "balance: %s — at least one digit has no image\n", s->balance);
    }
    fprintf(f, "pixels: mean %.2f, std %.2f on 0..255 (%.4f, %.4f scaled to [0,1]); %.1f%% are 0\n", s->mean, s->std,
            s->mean / 255, s->std / 255, 100 * s->zero_share);
    fprintf(f, "always zero: %d of %d pixel positions are 0 in every image", s->n_always_zero, D);
    if (s->n_always_zero) {
        fprintf(f, "\n  by distance to the nearest edge:");
        for (int b = 0; b < DESCRIBE_EDGE_BANDS; b++)
            fprintf(f, " %s%d px: %d%s", b == DESCRIBE_EDGE_BANDS - 1 ? ">= " : "", b, s->zero_by_edge[b],
                    b < DESCRIBE_EDGE_BANDS - 1 ? "," : "");
        fprintf(f, "\n  whole always-zero rows/columns at the edges: top %d, bottom %d, left %d, right %d",
                s->frame_top, s->frame_bottom, s->frame_left, s->frame_right);
    }
    fprintf(f, "\nduplicates: %d exact%s", s->n_duplicates, s->n_duplicates ? "" : "\n");
    if (s->n_duplicates) {
        int n = s->n_duplicates < 3 ? s->n_duplicates : 3;
        fprintf(f, " (");
        for (int i = 0; i < n; i++) fprintf(f, "%s%d = %d", i ? ", " : "", s->dup_example[i], s->dup_first[i]);
        fprintf(f, "%s)", s->n_duplicates > n ? " ..." : "");
        if (s->labelled) fprintf(f, ", %d labelled differently from the first copy", s->n_dup_conflicts);
        fprintf(f, "\n");
    }
    fprintf(f, "inverted (bright border, mean > %d): %d", DESCRIBE_INVERTED_BORDER, s->n_inverted);
    print_examples(f, s->inverted_example, s->n_inverted);
    fprintf(f, "\nempty (no pixel above %d): %d", DESCRIBE_EMPTY_MAX, s->n_empty);
    print_examples(f, s->empty_example, s->n_empty);
    fprintf(f, "\n");
    if (s->labelled) {
        fprintf(f, "mean intensity per digit:");
        for (int k = 0; k < 10; k++) fprintf(f, " %d:%.1f", k, s->class_mean[k]);
        fprintf(f, "\n");
    }
}
