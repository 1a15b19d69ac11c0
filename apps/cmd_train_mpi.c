/* cmd_train_mpi.c — `mpirun -np N digits train`: the start-up checks
 * (binary, arguments, effective settings, data: a 64-bit FNV-1a hash on
 * every rank compared with rank 0's broadcast one). Rank 0 as the only writer is
 * dg_train_run's (src/api/train_run.c), the steps src/train/dist_train.c's,
 * ensembles over the ranks src/train/ensemble_train.c's. Left out: a shared
 * file system check (every rank reads --data and --resume itself). */
#include "cmd_train_mpi.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dist/dist.h"
#include "train/resume.h"

#define CMD "train"

/* FNV-1a over n bytes, continuing from h. */
static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}
#define FNV_START 0xcbf29ce484222325ULL

/* This program's file (/proc/self/exe), hashed; 0 if unreadable. */
static uint64_t binary_hash(void) {
    FILE *f = fopen("/proc/self/exe", "rb");
    if (!f) return 0;
    uint64_t h = FNV_START;
    char buf[1 << 16];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0) h = fnv(h, buf, k);
    fclose(f);
    return h;
}

/* The arguments after `train`, hashed (NUL-separated). */
static uint64_t args_hash(int argc, char **argv) {
    uint64_t h = FNV_START;
    for (int i = 1; i < argc; i++) h = fnv(h, argv[i], strlen(argv[i]) + 1);
    return h;
}

/* Compare mine[k] with rank 0's for each of n named hashes; a rank that
 * differs says which; every rank exits 1 if any differs. */
static void agree(const uint64_t *mine, const char *const *what, int n) {
    uint64_t root[4];
    memcpy(root, mine, (size_t)n * sizeof *mine);
    dist_bcast(root, (size_t)n * sizeof *root, 0);
    int bad = -1;
    for (int k = 0; k < n && bad < 0; k++)
        if (mine[k] != root[k]) bad = k;
    if (bad >= 0)
        fprintf(stderr, "digits %s: rank %d: %s from rank 0's (hash %016llx, rank 0 %016llx); every rank "
                "must run the same digits with the same settings and data\n", CMD, dist_rank(), what[bad],
                (unsigned long long)mine[bad], (unsigned long long)root[bad]);
    if (dist_any(bad >= 0)) {
        fflush(stderr);
        dist_finalize();
        exit(EXIT_RUNTIME);
    }
}

void train_mpi_start(int argc, char **argv) {
    if (dist_init(NULL, NULL) < 0) cli_fail(CMD, "%s", dg_errmsg());
    if (!dist_active()) return;
    if (dist_rank() > 0 && !freopen("/dev/null", "w", stdout)) cli_fail(CMD, "/dev/null: cannot open");
    const uint64_t h[2] = {binary_hash(), args_hash(argc, argv)};
    static const char *const what[2] = {"its digits binary differs", "its arguments differ"};
    agree(h, what, 2);
}

void train_mpi_check_settings(const dg_train_config *cfg) {
    if (!dist_active()) return;
    char *yaml = dg_train_config_yaml(cfg);
    const uint64_t h[1] = {fnv(FNV_START, yaml ? yaml : "", yaml ? strlen(yaml) : 0)};
    dg_free(yaml);
    static const char *const what[1] = {"its settings (flags, --config file, --dist-mode) differ"};
    agree(h, what, 1);
}

void train_mpi_check_data(const Dataset *train, const Dataset *val) {
    if (!dist_active()) return;
    const uint64_t h[1] = {train_data_hash(train, val && val->n ? val : NULL)};
    static const char *const what[1] = {"its training data differ"};
    agree(h, what, 1);
}

void train_mpi_end(void) { dist_finalize(); }
