/* digits.c — the command-line entry point: dispatches to a subcommand. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "core/runtime.h"
#include "digits_internal.h"
#include "options.h"

static void usage(FILE *f) {
    fprintf(f,
            "digits %s — handwritten-digit recognition\n\n"
            "usage: digits COMMAND [flags]\n\n"
            "commands:\n"
            "  train     train a model from the zoo (models/*.spec), a spec file, or the PCA+SVM baseline\n"
            "  describe  look at a data set before any model: counts, balance, pixels, duplicates\n"
            "  eval      accuracy, top-k, per-class precision/recall/F1, confusion matrix, mistakes\n"
            "  predict   classify image files (PNG, JPEG, BMP, PGM)\n"
            "  convert   convert between MNIST IDX and Kaggle CSV\n"
            "  report    pictures and an HTML page: curves, confusion, mistakes, PCA, t-SNE, activations\n"
            "  export    write a model or ensemble as an ONNX file (--format onnx)\n"
            "  import    an ONNX classifier (e.g. from torch.onnx.export) as a digits model file\n"
            "  ensemble  merge trained networks into one ensemble file, take members out, or convert (--dtype)\n"
            "  info      what a model file holds: layers, parameters, dtype, members, training, metrics\n"
            "  models    the zoo and the pretrained models (= info --list)\n"
            "  serve     web app and HTTP API: draw or upload a digit\n"
            "  submit    write a Kaggle submission.csv for test.csv\n"
            "  augment   preview or benchmark data augmentation\n\n"
            "'digits COMMAND --help' lists a command's flags and their defaults; 'digits --version'.\n",
            DIGITS_VERSION);
}

int main(int argc, char **argv) {
    dg_runtime_init(argv);
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("digits %s\n", DIGITS_VERSION);
        return 0;
    }
    if (strcmp(cmd, "train") == 0) return cmd_train(argc - 1, argv + 1);
    if (strcmp(cmd, "eval") == 0) return cmd_eval(argc - 1, argv + 1);
    if (strcmp(cmd, "predict") == 0) return cmd_predict(argc - 1, argv + 1);
    if (strcmp(cmd, "convert") == 0) return cmd_convert(argc - 1, argv + 1);
    if (strcmp(cmd, "serve") == 0) return cmd_serve(argc - 1, argv + 1);
    if (strcmp(cmd, "report") == 0) return cmd_report(argc - 1, argv + 1);
    if (strcmp(cmd, "submit") == 0) return cmd_submit(argc - 1, argv + 1);
    if (strcmp(cmd, "ensemble") == 0) return cmd_ensemble(argc - 1, argv + 1);
    if (strcmp(cmd, "augment") == 0) return cmd_augment(argc - 1, argv + 1);
    if (strcmp(cmd, "export") == 0) return cmd_export(argc - 1, argv + 1);
    if (strcmp(cmd, "import") == 0) return cmd_import(argc - 1, argv + 1);
    if (strcmp(cmd, "describe") == 0) return cmd_describe(argc - 1, argv + 1);
    if (strcmp(cmd, "info") == 0 || strcmp(cmd, "models") == 0) return cmd_info(argc - 1, argv + 1);
    static const char *const commands[] = {"train", "eval", "predict", "convert", "serve", "report", "submit",
                                           "ensemble", "augment", "describe", "info", "models", "version", "help",
                                           "export", "import"};
    const char *close = suggest_closest(cmd, commands, (int)(sizeof commands / sizeof *commands));
    if (close) {
        fprintf(stderr, "digits: unknown command '%s' (did you mean '%s'?)\n", cmd, close);
        return EXIT_USAGE;
    }
    fprintf(stderr, "digits: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return EXIT_USAGE;
}
