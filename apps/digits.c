/* digits.c — the command-line entry point: the table of subcommands, which
 * dispatches to them and from which `digits --help`, `digits help --man`
 * (the man page) and `digits help --complete` (bash completion) are made. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "core/runtime.h"
#include "digits_internal.h"
#include "help.h"
#include "options.h"

/* Every subcommand, in the order `digits --help` and the man page list them.
 * A new subcommand is one row here; its --help text is its man page section. */
static const CliCommand COMMANDS[] = {
    {"train", cmd_train, "train a model from the zoo (models/*.spec), a spec file, or the PCA+SVM baseline"},
    {"describe", cmd_describe, "look at a data set before any model: counts, balance, pixels, duplicates"},
    {"eval", cmd_eval, "accuracy, top-k, per-class precision/recall/F1, confusion matrix, mistakes"},
    {"predict", cmd_predict, "classify image files (PNG, JPEG, BMP, PGM)"},
    {"convert", cmd_convert, "convert between MNIST IDX and Kaggle CSV"},
    {"report", cmd_report, "pictures and an HTML page: curves, confusion, mistakes, PCA, t-SNE, activations"},
    {"export", cmd_export, "a model or ensemble as an ONNX file (--format onnx); int8 as C for a microcontroller (--format c)"},
    {"import", cmd_import, "an ONNX classifier (e.g. from torch.onnx.export) as a digits model file"},
    {"quantize", cmd_quantize, "post-training int8 quantization of a network or ensemble (runs on AVX512-VNNI)"},
    {"ensemble", cmd_ensemble, "merge trained networks into one ensemble file, take members out, or convert (--dtype)"},
    {"info", cmd_info, "what a model file holds: layers, parameters, dtype, members, training, metrics"},
    {"models", cmd_info, "the zoo and the pretrained models (= info --list)"},
    {"serve", cmd_serve, "web app and HTTP API: draw or upload a digit"},
    {"submit", cmd_submit, "write a Kaggle submission.csv for test.csv"},
    {"augment", cmd_augment, "preview or benchmark data augmentation"},
};
#define N_COMMANDS ((int)(sizeof COMMANDS / sizeof COMMANDS[0]))

static void usage(FILE *f) {
    fprintf(f, "digits %s — handwritten-digit recognition\n\nusage: digits COMMAND [flags]\n\ncommands:\n",
            DIGITS_VERSION);
    for (int i = 0; i < N_COMMANDS; i++) fprintf(f, "  %-9s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(f, "\n'digits COMMAND --help' (or 'digits help COMMAND') lists a command's flags and their defaults;\n"
               "'digits --version'; 'digits help --man' writes the man page (troff), 'digits help --complete\n"
               "[COMMAND]' the commands or a command's flags for the bash completion.\n");
}

int main(int argc, char **argv) {
    dg_runtime_init(argv);
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    int help_alone = strcmp(cmd, "help") == 0 && (argc == 2 || !strcmp(argv[2], "--help") || !strcmp(argv[2], "-h"));
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || help_alone) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "help") == 0) return cmd_help(argc - 1, argv + 1, COMMANDS, N_COMMANDS);
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("digits %s\n", DIGITS_VERSION);
        return 0;
    }
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(cmd, COMMANDS[i].name) == 0) return COMMANDS[i].run(argc - 1, argv + 1);
    const char *names[N_COMMANDS + 2] = {"version", "help"};
    for (int i = 0; i < N_COMMANDS; i++) names[i + 2] = COMMANDS[i].name;
    const char *close = suggest_closest(cmd, names, N_COMMANDS + 2);
    if (close) {
        fprintf(stderr, "digits: unknown command '%s' (did you mean '%s'?)\n", cmd, close);
        return EXIT_USAGE;
    }
    fprintf(stderr, "digits: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return EXIT_USAGE;
}
