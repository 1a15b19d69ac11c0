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
    /* three rows of the DP table, (lb + 1) cells each: i-2, i-1, i */
    int *buf = dg_xmalloc(3 * (lb + 1) * sizeof(int));
    int *two = buf, *prev = buf + lb + 1, *cur = buf + 2 * (lb + 1);
    for (size_t j = 0; j <= lb; j++) prev[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int best = prev[j - 1] + (fold(a[i - 1]) != fold(b[j - 1]));
            if (prev[j] + 1 < best) best = prev[j] + 1;
            if (cur[j - 1] + 1 < best) best = cur[j - 1] + 1;
            /* two neighbours swapped: one edit */
            if (i > 1 && j > 1 && fold(a[i - 1]) == fold(b[j - 2]) && fold(a[i - 2]) == fold(b[j - 1]) &&
                two[j - 2] + 1 < best)
                best = two[j - 2] + 1;
            cur[j] = best;
        }
        int *t = two;
        two = prev, prev = cur, cur = t;
    }
    int d = prev[lb];
    free(buf);
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
