/* errors.c — the small process-wide parts of the public API: the version,
 * error codes and messages, dg_free, the thread count; and the helpers the
 * other src/api files report failures with (api.h).
 * Leaves out: the message buffer itself (core/check.c, thread-local). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "api/api.h"
#include "core/check.h"
#include "core/version.h"

static int threads_chosen; /* dg_set_threads' value; 0: all cores */
static int threads_default; /* OpenMP's count before the first dg_set_threads */

/* A static string. */
const char *dg_version(void) { return DG_VERSION; }

/* A static string for each DG_* code. */
const char *dg_strerror(int code) {
    switch (code) {
    case DG_OK: return "success";
    case DG_STOPPED: return "stopped early";
    case DG_ERR_ARG: return "invalid argument";
    case DG_ERR_IO: return "file cannot be read or written";
    case DG_ERR_FORMAT: return "corrupt or unsupported data";
    case DG_ERR_SIZE: return "wrong image size";
    case DG_ERR_NO_DIGIT: return "no digit found";
    case DG_ERR_UNSUPPORTED: return "not supported by this model";
    case DG_ERR_NOMEM: return "out of memory";
    default: return "unknown error code";
    }
}

void dg_free(void *p) { free(p); }

/* Sets OpenMP's thread count for the process (n <= 0: back to OpenMP's
 * own, OMP_NUM_THREADS or every core) and remembers it for the workspaces
 * created afterwards. */
void dg_set_threads(int n) {
#ifdef _OPENMP
    if (!threads_default) threads_default = omp_get_max_threads();
    omp_set_num_threads(n > 0 ? n : threads_default);
#endif
    threads_chosen = n > 0 ? n : 0;
}

/* The threads a call uses: the count set, else every core. */
int dg_get_threads(void) {
#ifdef _OPENMP
    return threads_chosen > 0 ? threads_chosen : omp_get_max_threads();
#else
    return 1;
#endif
}

int api_threads(void) { return threads_chosen; }

int api_fail(int code, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    dg_set_error("%s", msg);
    return code;
}

int api_need(const void *p, const char *func, const char *arg) {
    return p ? DG_OK : api_fail(DG_ERR_ARG, "%s: %s is NULL", func, arg);
}

int api_file_error(const char *path) {
    struct stat st;
    if (!path || stat(path, &st) != 0 || !S_ISREG(st.st_mode) || access(path, R_OK) != 0) return DG_ERR_IO;
    return DG_ERR_FORMAT;
}
