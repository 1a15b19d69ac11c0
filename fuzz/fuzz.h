/* fuzz.h — helpers shared by the fuzz targets (fuzz_*.c).
 *
 * Each target is a libFuzzer entry point, LLVMFuzzerTestOneInput, over an
 * in-memory buffer. The readers under test take paths, so the buffer is
 * written to an anonymous in-memory file (memfd) and read back through
 * /proc/self/fd/N: the same open/fstat/read path a real file takes.
 *
 * Beyond "no crash, no leak, no undefined behaviour" every target checks
 * the error contract: a failed read leaves one line, starting with the name
 * of the file, in dg_errmsg().
 */
#ifndef DG_FUZZ_H
#define DG_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The buffer as a file: returns its path ("/proc/self/fd/N"), valid until
 * the next call. One memfd per process, truncated and rewritten each time. */
static inline const char *fuzz_file(const void *data, size_t size) {
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("digits-fuzz", 0);
        if (fd < 0) {
            perror("memfd_create");
            abort();
        }
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0) abort();
    size_t done = 0;
    while (done < size) {
        ssize_t w = pwrite(fd, (const char *)data + done, size - done, (off_t)done);
        if (w <= 0) abort();
        done += (size_t)w;
    }
    return path;
}

/* The error contract: one line, naming `who` first. */
static inline void fuzz_check_error(const char *who) {
    const char *msg = dg_errmsg();
    if (msg[0] == '\0' || strchr(msg, '\n') || strncmp(msg, who, strlen(who)) != 0) {
        fprintf(stderr, "fuzz: bad error message (want one line starting with '%s'): '%s'\n",
                who, msg);
        abort();
    }
}

#endif
