/* cmd_submit.c — `digits submit`: predict every image of a Kaggle test.csv
 * (or any data set) with a saved model of any kind and write
 * submission.csv ("ImageId,Label", ids 1-based in input order), atomically. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "digits_internal.h"
#include "options.h"

static const char *CMD = "submit";

static const unsigned SHARED = CLI_MODEL | CLI_TTA | CLI_BATCH | CLI_THREADS;

static void help(void) {
    CliCommon co = cli_common_defaults();
    printf("usage: digits submit [--model FILE|default|best] --test test.csv [--out submission.csv] [flags]\n\n");
    cli_common_help(CLI_MODEL, &co);
    printf("  --test FILE|DIR       Kaggle test.csv (or an IDX folder: its test split) (required)\n"
           "  --out FILE            where to write the submission               [submission.csv]\n");
    cli_common_help(SHARED & ~CLI_MODEL, &co);
    printf("\nExamples:\n"
           "  digits submit --test test.csv                   # the pretrained default model\n"
           "  digits submit --model best --test test.csv --tta 4 --out best-submission.csv\n");
}

int cmd_submit(int argc, char **argv) {
    CliCommon co = cli_common_defaults();
    const char *test = NULL, *out = "submission.csv";
    enum { O_TEST = 256, O_OUT, O_HELP };
    static const struct option own[] = {
        {"test", 1, 0, O_TEST}, {"out", 1, 0, O_OUT}, {"help", 0, 0, O_HELP}, {0, 0, 0, 0}};
    CliOptions ol;
    cli_options(&ol, own, SHARED);
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", ol.opts, NULL)) != -1) {
        if (cli_common_parse(CMD, c, optarg, &co)) continue;
        switch (c) {
        case O_TEST: test = optarg; break;
        case O_OUT: out = optarg; break;
        case O_HELP: help(); return 0;
        default: cli_bad_flag(CMD, argv[optind - 1], ol.opts);
        }
    }
    if (optind < argc) cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    if (!test) cli_usage_error(CMD, "--test FILE is required (Kaggle test.csv)");
    int batch = co.batch_size, threads = co.threads, tta = co.tta;
    char model_buf[PATH_MAX];
    const char *model_path = cli_model_path(CMD, co.model, model_buf, sizeof model_buf);

    Classifier m;
    if (classifier_load(&m, model_path, batch, threads) < 0) cli_fail(CMD, "%s", dg_errmsg());
    m.tta = tta;
    Dataset ds = {0};
    if (dataset_load(test, "test", &ds) < 0) cli_fail(CMD, "%s", dg_errmsg());
    if (ds.rows != m.height || ds.cols != m.width)
        cli_fail(CMD, "%s: images are %dx%d, the model expects %dx%d", test, ds.rows, ds.cols, m.height, m.width);
    uint8_t *pred = dg_xmalloc((size_t)ds.n);
    double acc = classifier_predict_dataset(&m, &ds, pred, NULL, NULL);
    if (csv_write_submission(out, pred, ds.n) < 0) cli_fail(CMD, "%s", dg_errmsg());
    printf("wrote %s: %d predictions by %s%s", out, ds.n, m.name, tta > 1 ? " with TTA" : "");
    if (ds.labels) printf(" (accuracy %.4f against the labels in %s)", acc, test);
    printf("\n");
    free(pred);
    dataset_free(&ds);
    classifier_free(&m);
    return 0;
}
