/* split.c — stratified train/validation splits and stratified K-fold
 * assignment, both reproducible from a seed.
 *
 * Stratified means each class is split on its own, so validation (or each
 * fold) has the class mix of the whole set: with MNIST's mildly unequal
 * classes (5421 fives vs 6742 ones in train) a plain shuffle would skew
 * small validation sets. Both use one Rng seeded (seed, "split") and visit
 * the classes in order 0..9, so the result depends only on labels and seed.
 *
 * Left out on purpose: group-aware splits (MNIST has no writer ids in the
 * files) and labels outside 0..9 (the readers guarantee 0..9; anything else
 * is a programmer error and asserts).
 */
#include "data/data.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "core/rng.h"

#define SPLIT_CLASSES 10

/* Groups sample indices by class: order[] holds the indices of class 0 (in
 * ascending order), then class 1, ...; start[c]..start[c+1] delimits class c. */
static int *split_by_class(const uint8_t *labels, int n, int start[SPLIT_CLASSES + 1]) {
    int count[SPLIT_CLASSES] = {0};
    for (int i = 0; i < n; i++) {
        DG_ASSERT(labels[i] < SPLIT_CLASSES);
        count[labels[i]]++;
    }
    start[0] = 0;
    for (int c = 0; c < SPLIT_CLASSES; c++) start[c + 1] = start[c] + count[c];
    int *order = dg_xmalloc((size_t)n * sizeof(int));
    int fill[SPLIT_CLASSES];
    memcpy(fill, start, sizeof fill);
    for (int i = 0; i < n; i++) order[fill[labels[i]]++] = i;
    return order;
}

void split_stratified(const uint8_t *labels, int n, float val_frac, uint64_t seed,
                      int **train_idx, int *n_train, int **val_idx, int *n_val) {
    DG_ASSERT(labels && n >= 0);
    DG_ASSERT(val_frac >= 0.0f && val_frac <= 1.0f);
    int start[SPLIT_CLASSES + 1];
    int *order = split_by_class(labels, n, start);
    uint8_t *is_val = dg_xcalloc((size_t)n, 1);
    Rng rng;
    rng_seed(&rng, seed, "split");
    int nv = 0;
    for (int c = 0; c < SPLIT_CLASSES; c++) {
        int cnt = start[c + 1] - start[c];
        rng_shuffle(&rng, order + start[c], cnt);
        int take = (int)lround((double)val_frac * cnt);
        for (int j = 0; j < take; j++) is_val[order[start[c] + j]] = 1;
        nv += take;
    }
    /* Emit in ascending order: batches then read memory front to back, and
     * the output does not depend on how the shuffle happened to order it. */
    int *tr = dg_xmalloc((size_t)(n - nv) * sizeof(int));
    int *va = dg_xmalloc((size_t)nv * sizeof(int));
    int a = 0, b = 0;
    for (int i = 0; i < n; i++) {
        if (is_val[i]) va[b++] = i;
        else tr[a++] = i;
    }
    free(is_val);
    free(order);
    *train_idx = tr;
    *n_train = a;
    *val_idx = va;
    *n_val = b;
}

void split_kfold(const uint8_t *labels, int n, int k, uint64_t seed, int **fold_of) {
    DG_ASSERT(labels && n >= 0 && k >= 1);
    int start[SPLIT_CLASSES + 1];
    int *order = split_by_class(labels, n, start);
    int *fold = dg_xmalloc((size_t)n * sizeof(int));
    Rng rng;
    rng_seed(&rng, seed, "split");
    /* Deal each class's shuffled indices round-robin. The dealer position
     * carries over from one class to the next, so the folds are balanced
     * overall (sizes differ by at most 1) as well as within each class —
     * restarting at fold 0 for every class would give fold 0 up to ten extra. */
    int next = 0;
    for (int c = 0; c < SPLIT_CLASSES; c++) {
        int cnt = start[c + 1] - start[c];
        rng_shuffle(&rng, order + start[c], cnt);
        for (int j = 0; j < cnt; j++) {
            fold[order[start[c] + j]] = next;
            next = next + 1 == k ? 0 : next + 1;
        }
    }
    free(order);
    *fold_of = fold;
}
