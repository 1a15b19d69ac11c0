/* describe.h — a data set's overview before any model (seed 002's
 * exploratory analysis): counts, label balance, pixel statistics, the
 * pixels that are zero in every image, exact duplicates, images that look
 * inverted or empty, and per-class means. `digits describe` prints it;
 * `digits report --eda` draws it.
 *
 * Definitions (also in `digits describe --help`):
 *   balance ratio   the largest class count over the smallest (imbalanced-
 *                   learn's imbalance ratio); "balanced" up to 1.5, "mildly
 *                   imbalanced" up to 3, "imbalanced" above (or a class
 *                   missing);
 *   always zero     a pixel position whose value is 0 in every image; the
 *                   frame is how many whole rows / columns at each edge are
 *                   always zero, the bands how many lie 0, 1, 2, 3 and 4+
 *                   pixels from the nearest edge;
 *   duplicate       an image byte-identical to an earlier one (64-bit FNV-1a
 *                   hash, then a byte compare); a conflict is a duplicate
 *                   whose label differs from the first copy's;
 *   inverted        the outermost ring of pixels averages above 127 (a
 *                   bright background: dark ink on white paper);
 *   empty           no pixel reaches 64 (nothing visibly drawn).
 *
 * Leaves out on purpose: per-pixel tables (pandas' describe() of 784
 * columns; the report draws the mean image and the always-zero map
 * instead), near-duplicates (perceptual hashing is a research question).
 */
#ifndef DG_DESCRIBE_H
#define DG_DESCRIBE_H

#include <stdint.h>
#include <stdio.h>

#include "data/data.h"

#define DESCRIBE_EXAMPLES 10          /* indices kept per finding */
#define DESCRIBE_BALANCED_MAX 1.5     /* balance ratio thresholds */
#define DESCRIBE_MILD_MAX 3.0
#define DESCRIBE_INVERTED_BORDER 127  /* ring mean above this: inverted */
#define DESCRIBE_EMPTY_MAX 63         /* every pixel at most this: empty */
#define DESCRIBE_EDGE_BANDS 5         /* always-zero positions counted at edge distance 0, 1, 2, 3, 4+ */

typedef struct {
    int n, rows, cols, labelled;
    /* labels (when labelled) */
    int label_count[10];
    double balance_ratio;      /* max/min count; 0 when unlabelled, INFINITY when a class has none */
    const char *balance;       /* "balanced", "mildly imbalanced", "imbalanced", "unlabelled" (static) */
    /* pixels, on the 0..255 scale */
    uint64_t hist[256];        /* how many pixels hold each value */
    double mean, std;          /* over every pixel of every image (population std) */
    double zero_share;         /* fraction of pixels that are 0 */
    int n_always_zero;         /* positions 0 in every image */
    uint8_t *always_zero;      /* (rows, cols): 1 where always zero; owned */
    int frame_top, frame_bottom, frame_left, frame_right; /* whole always-zero rows/columns at each edge */
    int zero_by_edge[DESCRIBE_EDGE_BANDS]; /* always-zero positions by distance to the nearest edge: 0 (the
                                              outermost ring), 1, ...; the last band holds everything further in */
    float *mean_image;         /* (rows, cols) mean per position; owned */
    /* per class (when labelled) */
    double class_mean[10];     /* mean pixel value of the class's images (0 when none) */
    float *class_mean_image;   /* (10, rows, cols) mean image per digit; owned; NULL when unlabelled */
    /* findings: a count and the first DESCRIBE_EXAMPLES indices */
    int n_duplicates, dup_example[DESCRIBE_EXAMPLES], dup_first[DESCRIBE_EXAMPLES];
    int n_dup_conflicts;       /* duplicates labelled differently from their first copy */
    int n_inverted, inverted_example[DESCRIBE_EXAMPLES];
    int n_empty, empty_example[DESCRIBE_EXAMPLES];
} DataStats;

/* Fills s from ds (one pass over the pixels plus a sort of the hashes).
 * Free with describe_free. */
void describe_compute(DataStats *s, const Dataset *ds);
void describe_free(DataStats *s);

/* The statistics as a JSON object (owned string, free()); `source` and
 * `format` ("idx", "csv") are copied in. Keys: see `digits describe --help`. */
char *describe_to_json(const DataStats *s, const char *source, const char *format);
/* The same as readable text on f. */
void describe_print(const DataStats *s, const char *source, const char *format, FILE *f);

#endif
