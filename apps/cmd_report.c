/* cmd_report.c — `digits report`: every picture of a model's evaluation
 * and a self-contained index.html (src/eval/report.h). */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "digits_internal.h"
#include "options.h"
#include "eval/report.h"

static const char *CMD = "report";

static const unsigned SHARED = CLI_MODEL | CLI_DATA | CLI_THREADS;

static void help(void) {
    CliCommon co = cli_common_defaults();
    printf("usage: digits report [--model FILE|default|best] --out DIR [flags]\n"
           "       digits report --eda --data DIR|FILE.csv --out DIR [flags]\n\n");
    cli_common_help(CLI_MODEL, &co);
    printf("  --out DIR             where the pictures and index.html go         (required)\n");
    cli_common_help(CLI_DATA, &co);
    printf("  --split test|val      test: the data's test split (a CSV: the file); val: the\n"
           "                        model's own validation images, re-cut from --data [test]\n"
           "  --log FILE.csv        training log for the learning curves         [recorded in the model, or MODEL.log.csv]\n"
           "  --limit N             evaluate only the first N test images        [all]\n"
           "  --tsne N              points per t-SNE picture (0 = none)          [2000]\n"
           "  --pair T,P            the mistake grid for true T predicted as P   [most frequent confusion]\n"
           "  --digit I             test image for the activation maps           [0]\n"
           "  --samples N           digits in the sample grid                    [50]\n"
           "  --mistakes N          digits in the mistake grid                   [40]\n"
           "  --svg                 an SVG beside every PNG\n"
           "  --seed N              untrained network's initialisation, samples  [42]\n"
           "  --quiet               no progress lines\n");
    cli_common_help(CLI_THREADS, &co);
    printf("\n"
           "The data alone, before any model (no --model):\n"
           "  --eda                 sample grid, label, pixel and split distributions, mean digits,\n"
           "                        always-zero pixels, PCA and t-SNE of --data (labelled or not);\n"
           "                        --limit, --tsne, --samples, --seed, --svg apply\n"
           "  --val-split X         with --eda: also the labels of a stratified train/validation\n"
           "                        split (the one 'digits train --val-split X --seed N' makes)\n"
           "  --test DIR|FILE.csv   with --eda: a test set to compare     [an IDX folder's test split]\n\n"
           "Examples:\n"
           "  digits report --model runs/cnn-bn.safetensors --out report\n"
           "  digits report --model runs/cnn-bn.safetensors --data train.csv --split val --out report-val\n"
           "  digits report --model runs/cnn-bn.safetensors --data holdout.csv --tsne 0 --out report-holdout\n"
           "  digits report --eda --data train.csv --test test.csv --val-split 0.1 --out eda\n");
}

/* `report --eda`: the data-only report (no model; a --model given is an error). */
static int report_eda(ReportConfig *cfg, int model_given) {
    if (model_given) cli_usage_error(CMD, "--eda draws the data alone: drop --model (or --eda)");
    if (cfg->split) cli_usage_error(CMD, "--split goes with a model; with --eda use --val-split X");
    if (!cfg->out_dir) cli_usage_error(CMD, "--out DIR is required");
    if (strcmp(cfg->data, "data/mnist") == 0) cfg->data = cli_default_data(CMD); /* says where it looked */
    cli_set_threads(cfg->threads);
    if (report_write_eda(cfg) < 0) cli_fail(CMD, "%s", dg_errmsg());
    if (!cfg->quiet) printf("open %s/index.html\n", cfg->out_dir);
    return 0;
}

int cmd_report(int argc, char **argv) {
    ReportConfig cfg;
    report_config_defaults(&cfg);
    CliCommon co = cli_common_defaults();
    co.data = cfg.data;
    co.threads = cfg.threads;
    enum { O_OUT = 256, O_LOG, O_LIMIT, O_TSNE, O_PAIR, O_DIGIT, O_SAMPLES, O_MISTAKES, O_SVG, O_SEED, O_QUIET,
           O_HELP, O_SPLIT, O_EDA, O_VAL_SPLIT, O_TEST };
    static const struct option own[] = {
        {"out", 1, 0, O_OUT}, {"log", 1, 0, O_LOG},
        {"limit", 1, 0, O_LIMIT}, {"tsne", 1, 0, O_TSNE}, {"pair", 1, 0, O_PAIR}, {"digit", 1, 0, O_DIGIT},
        {"samples", 1, 0, O_SAMPLES}, {"mistakes", 1, 0, O_MISTAKES}, {"svg", 0, 0, O_SVG},
        {"seed", 1, 0, O_SEED}, {"quiet", 0, 0, O_QUIET}, {"help", 0, 0, O_HELP},
        {"split", 1, 0, O_SPLIT}, {"eda", 0, 0, O_EDA}, {"val-split", 1, 0, O_VAL_SPLIT}, {"test", 1, 0, O_TEST},
        {0, 0, 0, 0}};
    CliOptions ol;
    cli_options(&ol, own, SHARED);
    int eda = 0;
    int c;
    while ((c = cli_next(&ol, CMD, argc, argv, &co)) != -1) {
        switch (c) {
        case O_OUT: cfg.out_dir = optarg; break;
        case O_LOG: cfg.log_path = optarg; break;
        case O_SPLIT:
            if (strcmp(optarg, "test") && strcmp(optarg, "val")) cli_usage_error(CMD, "--split: '%s' is not test or val", optarg);
            cfg.split = optarg;
            break;
        case O_LIMIT: cfg.limit = cli_int(CMD, "--limit", optarg, 1, 100000000); break;
        case O_TSNE: cfg.tsne_n = cli_int(CMD, "--tsne", optarg, 0, 100000); break;
        case O_PAIR: {
            int a, b, end = 0;
            if (sscanf(optarg, "%d,%d%n", &a, &b, &end) != 2 || optarg[end] != '\0' || a < 0 || a > 9 || b < 0 ||
                b > 9 || a == b)
                cli_usage_error(CMD, "--pair: '%s' is not TRUE,PREDICTED (two different digits, e.g. 9,7)", optarg);
            cfg.pair_true = a;
            cfg.pair_pred = b;
            break;
        }
        case O_DIGIT: cfg.digit = cli_int(CMD, "--digit", optarg, 0, 100000000); break;
        case O_SAMPLES: cfg.n_samples = cli_int(CMD, "--samples", optarg, 1, 1000); break;
        case O_MISTAKES: cfg.n_mis = cli_int(CMD, "--mistakes", optarg, 1, 1000); break;
        case O_SVG: cfg.svg = 1; break;
        case O_SEED: cfg.seed = cli_u64(CMD, "--seed", optarg); break;
        case O_QUIET: cfg.quiet = 1; break;
        case O_HELP: help(); return 0;
        case O_EDA: eda = 1; break;
        case O_VAL_SPLIT: cfg.val_split = cli_float(CMD, "--val-split", optarg, 0.0f, 0.9f); break;
        case O_TEST: cfg.test_data = optarg; break;
        default: cli_bad_flag(CMD, argv[optind - 1], ol.opts);
        }
    }
    if (optind < argc) cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    cfg.data = co.data;
    cfg.threads = co.threads;
    if (eda) return report_eda(&cfg, co.model != NULL);
    if (cfg.val_split > 0 || cfg.test_data) cli_usage_error(CMD, "--val-split and --test go with --eda");
    if (!cfg.out_dir) cli_usage_error(CMD, "--out DIR is required");
    char model_buf[PATH_MAX];
    cfg.model_path = cli_model_path(CMD, co.model, model_buf, sizeof model_buf);
    if (strcmp(cfg.data, "data/mnist") == 0) cfg.data = cli_default_data(CMD); /* says where it looked */
    cli_set_threads(cfg.threads);
    if (report_write(&cfg) < 0) cli_fail(CMD, "%s", dg_errmsg());
    if (!cfg.quiet) printf("open %s/index.html\n", cfg.out_dir);
    return 0;
}
