/* util.h — small shared helpers: whole-file reads with a size cap, atomic
 * file writes, folders (test, mkdir -p), the monotonic clock. */
#ifndef DG_UTIL_H
#define DG_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Read a whole file (NUL-terminated, owned *data) if at most max_bytes;
 * -1 with "path: problem" otherwise. */
int read_whole_file(const char *path, size_t max_bytes, char **data, size_t *len);

/* Atomic write: open "<path>.tmp.<pid>" for writing; after writing, commit
 * with atomic_file_commit (fflush, fsync, rename over path, fsync the
 * folder) or give up with atomic_file_abort (removes the temp file).
 * The previous file at path stays intact until the rename. */
typedef struct {
    FILE *f;
    char path[4096];
    char tmp[4200];
} AtomicFile;
int atomic_file_open(AtomicFile *af, const char *path);
int atomic_file_commit(AtomicFile *af);
void atomic_file_abort(AtomicFile *af);

/* Is path an existing folder (following links)? 1 or 0. */
int is_dir(const char *path);

/* mkdir -p: create path and any missing parents (mode 0755). 0 when path
 * is a folder afterwards; -1 with "path: problem" otherwise. */
int make_dirs(const char *path);

/* Seconds on the monotonic clock (CLOCK_MONOTONIC), for durations; the
 * one clock of the library, the CLI, the tests and the benchmarks. */
double now_seconds(void);

/* FNV-1a over 64-bit words, then the tail bytes, continuing from h (start
 * with 1469598103934665603): fast enough to run over all of MNIST at every
 * start (~10 ms), and any changed byte changes it. The data fingerprints of
 * checkpoints and of model files' hold-out records. */
uint64_t hash_bytes(uint64_t h, const uint8_t *p, size_t n);

#endif
