/* cmd_import.c — `digits import FILE.onnx --out MODEL.safetensors`: an ONNX
 * image classifier (what torch.onnx.export writes for a PyTorch CNN, or a
 * digits export) as a digits model file (src/model/onnx_import.c), with the
 * input convention it was trained on stored as its normalisation.
 * Left out: ensembles (import the members, then `digits ensemble`). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "digits_internal.h"
#include "model/onnx.h"
#include "options.h"

static const char *CMD = "import";

static void help(void) {
    printf("usage: digits import FILE.onnx --out MODEL.safetensors [flags]\n\n"
           "  FILE.onnx          an ONNX classifier of one float (N,1,28,28) image: 10 class scores out\n"
           "  --out FILE         the digits model file to write (atomically)              (required)\n"
           "  --input-scale S    the network was trained on (pixels/255*S - MEAN)/STD        [1]\n"
           "                     (PyTorch ToTensor(): 1; raw 0..255 pixels: 255)\n"
           "  --mean M           ... minus M (e.g. 0.1307 after transforms.Normalize)       [0]\n"
           "  --std S            ... divided by S (e.g. 0.3081)                            [1]\n"
           "  --summary          print the imported layers\n\n"
           "Supported ops: Conv, Gemm, BatchNormalization, Relu, Tanh, Elu, MaxPool, AveragePool,\n"
           "GlobalAveragePool, ReduceMean (H, W), Flatten, Reshape to (N,-1), Add, Concat, Dropout,\n"
           "Identity, a final Softmax/LogSoftmax; a file written by 'digits export' comes back whole\n"
           "(spatial transformer included) with its own normalisation unless the flags are given.\n"
           "predict, eval, submit and serve also take FILE.onnx directly as --model (input: pixels/255).\n\n"
           "Examples:\n"
           "  digits import net.onnx --mean 0.1307 --std 0.3081 --out net.safetensors\n"
           "  digits eval --model net.safetensors\n");
}

int cmd_import(int argc, char **argv) {
    const char *out = NULL;
    OnnxImportOptions o = {1.0f, 0.0f, 1.0f};
    int forced = 0, summary = 0;
    enum { O_OUT = 256, O_SCALE, O_MEAN, O_STD, O_SUMMARY, O_HELP };
    static const struct option own[] = {{"out", 1, 0, O_OUT},         {"input-scale", 1, 0, O_SCALE},
                                        {"mean", 1, 0, O_MEAN},       {"std", 1, 0, O_STD},
                                        {"summary", 0, 0, O_SUMMARY}, {"help", 0, 0, O_HELP},
                                        {0, 0, 0, 0}};
    CliOptions ol;
    cli_options(&ol, own, 0);
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", ol.opts, NULL)) != -1) {
        switch (c) {
        case O_OUT: out = optarg; break;
        case O_SCALE: o.input_scale = cli_float(CMD, "--input-scale", optarg, 1e-6f, 1e6f), forced = 1; break;
        case O_MEAN: o.mean = cli_float(CMD, "--mean", optarg, -1e6f, 1e6f), forced = 1; break;
        case O_STD: o.std = cli_float(CMD, "--std", optarg, 1e-6f, 1e6f), forced = 1; break;
        case O_SUMMARY: summary = 1; break;
        case O_HELP: help(); return 0;
        default: cli_bad_flag(CMD, argv[optind - 1], ol.opts);
        }
    }
    if (optind >= argc) cli_usage_error(CMD, "which ONNX file? (digits import FILE.onnx --out MODEL.safetensors)");
    if (optind + 1 < argc) cli_usage_error(CMD, "unexpected argument '%s'", argv[optind + 1]);
    if (!out) cli_usage_error(CMD, "--out MODEL.safetensors is required");
    const char *in = argv[optind];
    Model m;
    if (onnx_import(&m, in, &o, forced ? ONNX_IMPORT_FORCE_INPUT : 0) < 0) cli_fail(CMD, "%s", dg_errmsg());
    if (summary) model_summary(&m, stdout);
    if (model_save(&m, out) < 0) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", dg_errmsg());
        model_free(&m);
        cli_fail(CMD, "%s", msg);
    }
    printf("wrote %s (%d layers, input (pixels/255 - %.6g) / %.6g)\n", out, m.n_layers, m.norm_mean, m.norm_std);
    model_free(&m);
    return 0;
}
