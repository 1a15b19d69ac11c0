/* check.c — the thread-local error message and allocation helpers. */
#include "check.h"
#include "digits.h" /* dg_errmsg is public: its DG_API export */

#include <stdarg.h>
#include <string.h>

static _Thread_local char last_error[512];

int dg_set_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return -1;
}

const char *dg_errmsg(void) { return last_error; }

const char *dg_printable(const char *s, char *buf, size_t len) {
    size_t k = 0;
    for (; s && s[k] && k + 1 < len; k++) {
        unsigned char ch = (unsigned char)s[k];
        buf[k] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
    }
    buf[k] = '\0';
    if (s && s[k] && k >= 3) memcpy(buf + k - 3, "...", 3);
    return buf;
}

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
