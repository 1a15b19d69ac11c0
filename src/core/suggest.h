/* suggest.h — "did you mean": the closest of a list of known words to a
 * mistyped one (zoo names, and for any caller: flags, subcommands).
 *
 * Distance: insertions, deletions, substitutions and swaps of two
 * neighbouring letters, each one edit (optimal string alignment, the
 * restricted Damerau-Levenshtein distance), case-insensitive, with '_' and
 * '-' counted as the same letter, so "cnn_bn" and "CNN-BN" both find
 * "cnn-bn" and "epohcs" finds "epochs". Left out on purpose: keyboard-layout
 * weights. One implementation for every "did you mean" of digits: flags,
 * subcommands, zoo names, config keys.
 */
#ifndef DG_SUGGEST_H
#define DG_SUGGEST_H

/* Edit distance between a and b as described above. */
int suggest_distance(const char *a, const char *b);

/* The candidate closest to word, or NULL when none is close enough to be a
 * likely typo (distance at most 1 for words up to 4 letters, 2 up to 8, else
 * 3, and less than the candidate's length). Ties go to the earlier
 * candidate. Returns a pointer into candidates (not owned). */
const char *suggest_closest(const char *word, const char *const *candidates, int n);

#endif
