/* check.c — the thread-local error message and allocation helpers. */
#include "check.h"

#include <stdarg.h>

static _Thread_local char last_error[512];

int dg_set_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return -1;
}

const char *dg_errmsg(void) { return last_error; }

void *dg_xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "digits: out of memory allocating %zu bytes\n", bytes);
        abort();
    }
    return p;
}

void *dg_xcalloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) {
        fprintf(stderr, "digits: out of memory allocating %zu x %zu bytes\n", count, size);
        abort();
    }
    return p;
}
