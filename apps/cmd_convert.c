/* cmd_convert.c — `digits convert`: MNIST IDX <-> Kaggle CSV, so the Kaggle
 * flow can be exercised end to end on MNIST. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "digits_internal.h"
#include "options.h"

static const char *CMD = "convert";

static void help(void) {
    printf("usage: digits convert --in SRC --out DST [flags]\n\n"
           "  --in DIR|FILE.csv    MNIST IDX folder or Kaggle CSV            (required)\n"
           "  --out DIR|FILE.csv   FILE.csv: Kaggle CSV; otherwise an IDX folder (created)  (required)\n"
           "  --split train|test   IDX split read from / written to a folder [train]\n"
           "  --drop-labels        write a Kaggle test.csv (no label column)\n"
           "  --skip N             leave out the first N images (with --limit: then take N) [0]\n"
           "  --limit N            only the first N images (after --skip)    [all]\n\n"
           "Examples:\n"
           "  digits convert --in data/mnist --out train.csv\n"
           "  digits convert --in data/mnist --split test --out test.csv --drop-labels\n"
           "  digits convert --in train.csv --skip 37000 --out holdout.csv   # the last 5000 as a hold-out file;\n"
           "                                  # then: digits train --data train.csv --limit 37000\n");
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Drops the first `skip` images of ds in place (exit 1 if none would be left). */
static void skip_images(Dataset *ds, int skip, const char *in) {
    if (skip >= ds->n) cli_fail(CMD, "%s: --skip %d leaves no images (it has %d)", in, skip, ds->n);
    const size_t d = (size_t)ds->rows * ds->cols;
    memmove(ds->pixels, ds->pixels + (size_t)skip * d, (size_t)(ds->n - skip) * d);
    if (ds->labels) memmove(ds->labels, ds->labels + skip, (size_t)(ds->n - skip));
    ds->n -= skip;
}

int cmd_convert(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *split = "train";
    int drop = 0, limit = 0, skip = 0;
    enum { O_IN = 256, O_OUT, O_SPLIT, O_DROP, O_LIMIT, O_HELP, O_SKIP };
    static const struct option opts[] = {{"in", 1, 0, O_IN}, {"out", 1, 0, O_OUT}, {"split", 1, 0, O_SPLIT},
                                         {"drop-labels", 0, 0, O_DROP}, {"limit", 1, 0, O_LIMIT},
                                         {"help", 0, 0, O_HELP}, {"skip", 1, 0, O_SKIP}, {0, 0, 0, 0}};
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_IN: in = optarg; break;
        case O_OUT: out = optarg; break;
        case O_SPLIT:
            if (strcmp(optarg, "train") && strcmp(optarg, "test")) cli_usage_error(CMD, "--split: '%s' is not train or test", optarg);
            split = optarg;
            break;
        case O_DROP: drop = 1; break;
        case O_LIMIT: limit = cli_int(CMD, "--limit", optarg, 1, 100000000); break;
        case O_SKIP: skip = cli_int(CMD, "--skip", optarg, 0, 100000000); break;
        case O_HELP: help(); return 0;
        default: cli_bad_flag(CMD, argv[optind - 1], opts);
        }
    }
    if (optind < argc) cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    if (!in || !out) cli_usage_error(CMD, "--in and --out are required");
    Dataset ds = {0};
    if (dataset_load(in, split, &ds) < 0) cli_fail(CMD, "%s", dg_errmsg());
    if (skip) skip_images(&ds, skip, in);
    if (limit && limit < ds.n) ds.n = limit;
    if (drop) {
        free(ds.labels);
        ds.labels = NULL;
    }
    if (ends_with(out, ".csv")) {
        if (csv_write(out, &ds) < 0) cli_fail(CMD, "%s", dg_errmsg());
        printf("wrote %d images%s to %s\n", ds.n, ds.labels ? " with labels" : "", out);
    } else {
        if (mkdir(out, 0755) != 0 && errno != EEXIST) cli_fail(CMD, "%s: cannot create folder: %s", out, strerror(errno));
        const char *prefix = strcmp(split, "train") == 0 ? "train" : "t10k";
        char ipath[4096], lpath[4096];
        snprintf(ipath, sizeof ipath, "%s/%s-images-idx3-ubyte", out, prefix);
        snprintf(lpath, sizeof lpath, "%s/%s-labels-idx1-ubyte", out, prefix);
        if (idx_write_images(ipath, &ds) < 0) cli_fail(CMD, "%s", dg_errmsg());
        if (ds.labels && idx_write_labels(lpath, ds.labels, ds.n) < 0) cli_fail(CMD, "%s", dg_errmsg());
        printf("wrote %d images to %s%s\n", ds.n, ipath, ds.labels ? " (and labels)" : "");
    }
    dataset_free(&ds);
    return 0;
}
