/* suggest.c — "did you mean" by edit distance; see suggest.h. Left out on
 * purpose: anything beyond plain Levenshtein (suggest.h says what). */
#include "core/suggest.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"

/* One letter as compared: lower case, '_' as '-'. */
static int fold(char c) {
    return c == '_' ? '-' : tolower((unsigned char)c);
}

int suggest_distance(const char *a, const char *b) {
    const size_t la = strlen(a), lb = strlen(b);
    /* one row of the DP table, (lb + 1) cells */
    int *row = dg_xmalloc((lb + 1) * sizeof(int));
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0]; /* row[i-1][j-1] */
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j]; /* row[i-1][j] */
            int best = diag + (fold(a[i - 1]) != fold(b[j - 1]));
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    int d = row[lb];
    free(row);
    return d;
}

const char *suggest_closest(const char *word, const char *const *candidates, int n) {
    const size_t len = strlen(word);
    const int limit = len <= 4 ? 1 : len <= 8 ? 2 : 3;
    const char *best = NULL;
    int best_d = limit + 1;
    for (int i = 0; i < n; i++) {
        if (!candidates[i]) continue;
        int d = suggest_distance(word, candidates[i]);
        if (d < best_d && d < (int)strlen(candidates[i])) {
            best_d = d;
            best = candidates[i];
        }
    }
    return best;
}
