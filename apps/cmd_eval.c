/* cmd_eval.c — `digits eval`: accuracy, per-class report and confusion
 * matrix of a saved model on a labelled data set, as text or JSON. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "digits.h"

static const char *CMD = "eval";

static void help(void) {
    printf("usage: digits eval --model FILE [flags]\n\n"
           "  --model FILE          model file written by 'digits train'        (required)\n"
           "  --data DIR|FILE.csv   MNIST IDX folder or labelled Kaggle CSV      [data/mnist]\n"
           "  --split train|test    which IDX split of a folder                 [test]\n"
           "  --limit N             evaluate only the first N images            [all]\n"
           "  --batch-size N        images per forward pass                     [1000]\n"
           "  --threads N           worker threads (0 = all cores)              [0]\n"
           "  --tta N               average N test-time augmentations (1 = off) [1]\n"
           "  --json                print one JSON object instead of the report\n");
}

int cmd_eval(int argc, char **argv) {
    const char *model_path = NULL, *data = "data/mnist", *split = "test";
    int limit = 0, batch = 1000, threads = 0, json = 0, tta = 1;
    enum { O_MODEL = 256, O_DATA, O_SPLIT, O_LIMIT, O_BATCH, O_THREADS, O_JSON, O_HELP, O_TTA };
    static const struct option opts[] = {
        {"model", 1, 0, O_MODEL}, {"data", 1, 0, O_DATA}, {"split", 1, 0, O_SPLIT},
        {"limit", 1, 0, O_LIMIT}, {"batch-size", 1, 0, O_BATCH}, {"threads", 1, 0, O_THREADS},
        {"json", 0, 0, O_JSON}, {"help", 0, 0, O_HELP}, {"tta", 1, 0, O_TTA}, {0, 0, 0, 0}};
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_MODEL: model_path = optarg; break;
        case O_DATA: data = optarg; break;
        case O_SPLIT:
            if (strcmp(optarg, "train") && strcmp(optarg, "test")) cli_usage_error(CMD, "--split: '%s' is not train or test", optarg);
            split = optarg;
            break;
        case O_LIMIT: limit = cli_int(CMD, "--limit", optarg, 1, 100000000); break;
        case O_BATCH: batch = cli_int(CMD, "--batch-size", optarg, 1, 65536); break;
        case O_THREADS: threads = cli_int(CMD, "--threads", optarg, 0, 1024); break;
        case O_JSON: json = 1; break;
        case O_TTA: tta = cli_int(CMD, "--tta", optarg, 1, 64); break;
        case O_HELP: help(); return 0;
        default: cli_usage_error(CMD, "unknown or incomplete flag '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    if (!model_path) cli_usage_error(CMD, "--model FILE is required");
    cli_set_threads(threads);

    Classifier m;
    if (classifier_load(&m, model_path, batch, threads) < 0) cli_fail(CMD, "%s", dg_errmsg());
    m.tta = tta;
    Dataset ds = {0};
    if (dataset_load(data, split, &ds) < 0) cli_fail(CMD, "%s", dg_errmsg());
    if (!ds.labels) cli_fail(CMD, "%s: has no labels to evaluate against (use 'digits predict' or a labelled set)", data);
    if (ds.rows != m.height || ds.cols != m.width)
        cli_fail(CMD, "%s: images are %dx%d, the model expects %dx%d", data, ds.rows, ds.cols, m.height, m.width);
    if (limit && limit < ds.n) ds.n = limit;

    uint8_t *pred = dg_xmalloc((size_t)ds.n);
    double loss;
    classifier_predict_dataset(&m, &ds, pred, NULL, &loss);
    Metrics mt;
    metrics_compute(&mt, ds.labels, pred, ds.n);
    if (json) {
        char extra[512];
        snprintf(extra, sizeof extra, "{\"loss\":%.6f,\"model\":\"%s\",\"data\":\"%s\"}", loss, m.name, split);
        char *s = metrics_to_json(&mt, extra);
        printf("%s\n", s);
        free(s);
    } else {
        printf("model %s on %s (%s): %d images, loss %.4f\n\n", model_path, data, split, ds.n, loss);
        metrics_print(stdout, &mt);
    }
    free(pred);
    dataset_free(&ds);
    classifier_free(&m);
    return 0;
}
