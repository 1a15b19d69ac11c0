/* cmd_submit.c — `digits submit`: predict every image of a Kaggle test.csv
 * (or any data set) with a saved model of any kind and write
 * submission.csv ("ImageId,Label", ids 1-based in input order), atomically. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "digits.h"

static const char *CMD = "submit";

static void help(void) {
    printf("usage: digits submit --model FILE --test test.csv [--out submission.csv] [flags]\n\n"
           "  --model FILE          model file written by 'digits train' (any kind)   (required)\n"
           "  --test FILE|DIR       Kaggle test.csv (or an IDX folder: its test split) (required)\n"
           "  --out FILE            where to write the submission                [submission.csv]\n"
           "  --tta N               average N test-time augmentations (1 = off)  [1]\n"
           "  --batch-size N        images per forward pass                      [1000]\n"
           "  --threads N           worker threads (0 = all cores)               [0]\n\n"
           "Examples:\n"
           "  digits submit --model runs/cnn-bn.safetensors --test test.csv\n"
           "  digits submit --model ens.safetensors --test test.csv --tta 4 --out ens-submission.csv\n");
}

int cmd_submit(int argc, char **argv) {
    const char *model_path = NULL, *test = NULL, *out = "submission.csv";
    int batch = 1000, threads = 0, tta = 1;
    enum { O_MODEL = 256, O_TEST, O_OUT, O_TTA, O_BATCH, O_THREADS, O_HELP };
    static const struct option opts[] = {
        {"model", 1, 0, O_MODEL}, {"test", 1, 0, O_TEST}, {"out", 1, 0, O_OUT}, {"tta", 1, 0, O_TTA},
        {"batch-size", 1, 0, O_BATCH}, {"threads", 1, 0, O_THREADS}, {"help", 0, 0, O_HELP}, {0, 0, 0, 0}};
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_MODEL: model_path = optarg; break;
        case O_TEST: test = optarg; break;
        case O_OUT: out = optarg; break;
        case O_TTA: tta = cli_int(CMD, "--tta", optarg, 1, 64); break;
        case O_BATCH: batch = cli_int(CMD, "--batch-size", optarg, 1, 65536); break;
        case O_THREADS: threads = cli_int(CMD, "--threads", optarg, 0, 1024); break;
        case O_HELP: help(); return 0;
        default: cli_usage_error(CMD, "unknown or incomplete flag '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    if (!model_path) cli_usage_error(CMD, "--model FILE is required");
    if (!test) cli_usage_error(CMD, "--test FILE is required (Kaggle test.csv)");
    cli_set_threads(threads);

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
