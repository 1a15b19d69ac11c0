/* cmd_submit.c — `digits submit`: predict every image of a Kaggle test.csv
 * (or any data set) with a saved model of any kind and write
 * submission.csv ("ImageId,Label", ids 1-based in input order), atomically.
 * The model runs through the public API (dg_model_load, dg_predict_batch);
 * reading the data and writing the CSV stay on the internal modules.
 * Under mpirun the ranks share the images (predict_shard.h) and rank 0
 * alone writes the file. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "digits.h"
#include "digits_internal.h"
#include "options.h"
#include "predict_shard.h"

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
    int c;
    while ((c = cli_next(&ol, CMD, argc, argv, &co)) != -1) {
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

    predict_shard_start(CMD); /* under mpirun: one rank of the job */
    dg_set_threads(threads);
    dg_model *m;
    if (dg_model_load(&m, model_path) != DG_OK) cli_fail(CMD, "%s", dg_errmsg());
    dg_model_set_batch(m, batch);
    dg_model_set_tta(m, tta);
    Dataset ds = {0};
    if (dataset_load(test, "test", &ds) < 0) cli_fail(CMD, "%s", dg_errmsg());
    int width, height;
    dg_model_input_size(m, &width, &height);
    if (ds.rows != height || ds.cols != width)
        cli_fail(CMD, "%s: images are %dx%d, the model expects %dx%d", test, ds.rows, ds.cols, height, width);
    dg_prediction *out_p = predict_sharded(CMD, m, ds.pixels, (size_t)ds.n, batch);
    if (!out_p) { /* an MPI rank but 0: its share is sent */
        dataset_free(&ds);
        dg_model_free(m);
        predict_shard_end();
        return 0;
    }
    uint8_t *pred = dg_xmalloc((size_t)(ds.n ? ds.n : 1));
    int correct = 0;
    for (int i = 0; i < ds.n; i++) {
        pred[i] = (uint8_t)out_p[i].digit;
        if (ds.labels) correct += pred[i] == ds.labels[i];
    }
    free(out_p);
    if (csv_write_submission(out, pred, ds.n) < 0) cli_fail(CMD, "%s", dg_errmsg());
    printf("wrote %s: %d predictions by %s%s", out, ds.n, dg_model_name(m), tta > 1 ? " with TTA" : "");
    if (ds.labels) printf(" (accuracy %.4f against the labels in %s)", ds.n ? (double)correct / ds.n : 0.0, test);
    printf("\n");
    free(pred);
    dataset_free(&ds);
    dg_model_free(m);
    predict_shard_end();
    return 0;
}
