/* check.h — error handling in three tiers (see docs/ARCHITECTURE.md).
 *
 *  1. Programmer invariants (shape mismatches, impossible states):
 *     DG_ASSERT prints file:line and the failed condition, then aborts.
 *  2. Readers of files, checkpoints and requests: return NULL / -1 and
 *     record a one-line message with dg_set_error(); callers read it with
 *     dg_errmsg(). The message names the file (and line/field) and the problem.
 *  3. CLI mains: print the message and exit non-zero (apps/).
 *
 * The error buffer is thread-local so the server's threads do not clobber
 * each other's messages.
 */
#ifndef DG_CHECK_H
#define DG_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define DG_ASSERT(cond)                                                         \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "%s:%d: internal error: assertion '%s' failed\n",  \
                    __FILE__, __LINE__, #cond);                                 \
            abort();                                                            \
        }                                                                       \
    } while (0)

/* Record an error message (printf-style). Always returns -1 so readers can
 * write `return dg_set_error(...)`. */
int dg_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The last message recorded on this thread ("" if none). */
const char *dg_errmsg(void);

/* Text from a file, made safe to quote in a one-line message: control
 * bytes become '?', and more than len-1 bytes end in "...". Returns buf. */
const char *dg_printable(const char *s, char *buf, size_t len);

/* malloc/calloc that abort with a message on failure: for sizes the program
 * computed itself (never for sizes read from a file — those are bounded and
 * checked by the reader first). */
void *dg_xmalloc(size_t bytes);
void *dg_xcalloc(size_t count, size_t size);

#endif
