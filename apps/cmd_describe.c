/* cmd_describe.c — `digits describe`: a data set's overview before any
 * model (src/data/describe.h): counts, label balance, pixel statistics,
 * always-zero pixels, duplicates, inverted and empty images. --data is the
 * shared flag (apps/options.h); its help line is describe's own, since an
 * unlabelled test.csv is welcome here. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "core/check.h"
#include "core/util.h"
#include "data/describe.h"
#include "options.h"

static const char *CMD = "describe";

static void help(void) {
    printf("usage: digits describe [--data DIR|FILE.csv] [flags]\n\n"
           "  --data DIR|FILE.csv   MNIST IDX folder, Kaggle train.csv or test.csv   [data/mnist]\n"
           "  --split train|test    which IDX split of a folder                      [train]\n"
           "  --json                one JSON object instead of text\n\n"
           "What it reports:\n"
           "  balance       largest/smallest class count: balanced <= %.1f, mildly imbalanced <= %.1f,\n"
           "                imbalanced above (or a digit missing)\n"
           "  always zero   pixel positions that are 0 in every image; the whole rows/columns\n"
           "                of them at each edge, and how far from the edge they lie\n"
           "  duplicates    images byte-identical to an earlier one (hash, then compare)\n"
           "  inverted      images whose outermost ring of pixels averages above %d\n"
           "  empty         images with no pixel above %d\n\n"
           "JSON keys (pixel values on the 0..255 scale, indices from 0):\n"
           "  source, format (\"idx\"|\"csv\"), n, rows, cols, labelled (bool), balance (verdict or\n"
           "  \"unlabelled\"), labels {counts[10], shares[10], balance_ratio (null: a digit missing)},\n"
           "  class_mean_intensity[10]   (these two only when labelled)\n"
           "  pixels {mean, std, zero_share, always_zero, zero_frame {top, bottom, left, right},\n"
           "          always_zero_by_edge_distance[5] (0, 1, 2, 3, >= 4 pixels from the nearest edge)},\n"
           "  duplicates {count, label_conflicts, examples [[first, duplicate], ...]},\n"
           "  inverted {count, examples[]}, empty {count, examples[]}   (at most %d examples each)\n\n"
           "Examples:\n"
           "  digits describe --data train.csv\n"
           "  digits describe --data test.csv --json\n"
           "  digits describe --data data/mnist --split test\n",
           DESCRIBE_BALANCED_MAX, DESCRIBE_MILD_MAX, DESCRIBE_INVERTED_BORDER, DESCRIBE_EMPTY_MAX,
           DESCRIBE_EXAMPLES);
}

int cmd_describe(int argc, char **argv) {
    CliCommon co = cli_common_defaults();
    const char *split = "train";
    int json = 0;
    enum { O_SPLIT = 256, O_JSON, O_HELP };
    static const struct option own[] = {{"split", 1, 0, O_SPLIT}, {"json", 0, 0, O_JSON}, {"help", 0, 0, O_HELP},
                                        {0, 0, 0, 0}};
    CliOptions ol;
    cli_options(&ol, own, CLI_DATA);
    int c;
    while ((c = cli_next(&ol, CMD, argc, argv, &co)) != -1) {
        switch (c) {
        case O_SPLIT:
            if (strcmp(optarg, "train") != 0 && strcmp(optarg, "test") != 0)
                cli_usage_error(CMD, "--split: '%s' is not train or test", optarg);
            split = optarg;
            break;
        case O_JSON: json = 1; break;
        case O_HELP: help(); return 0;
        default: cli_bad_flag(CMD, argv[optind - 1], ol.opts);
        }
    }
    if (optind < argc) cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    const char *data = co.data;
    if (strcmp(data, "data/mnist") == 0) data = cli_default_data(CMD); /* says where it looked */

    struct stat st;
    const int folder = stat(data, &st) == 0 && S_ISDIR(st.st_mode);
    Dataset ds;
    double t0 = now_seconds();
    if (dataset_load(data, split, &ds) < 0) cli_fail(CMD, "%s", dg_errmsg());
    double t_load = now_seconds() - t0;
    DataStats s;
    describe_compute(&s, &ds);
    char source[4200];
    if (folder) snprintf(source, sizeof source, "%s [%s]", data, split);
    else snprintf(source, sizeof source, "%s", data);
    if (json) {
        char *js = describe_to_json(&s, source, folder ? "idx" : "csv");
        puts(js);
        free(js);
    } else {
        describe_print(&s, source, folder ? "MNIST IDX" : "Kaggle CSV", stdout);
        printf("(read in %.2f s, described in %.2f s)\n", t_load, now_seconds() - t0 - t_load);
    }
    describe_free(&s);
    dataset_free(&ds);
    return 0;
}
