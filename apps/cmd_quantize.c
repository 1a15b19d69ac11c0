/* cmd_quantize.c — `digits quantize --model MODEL --out MODEL-int8.safetensors`:
 * post-training int8 quantization (src/quant/quantize.c) of a network or
 * an ensemble (member by member), calibrated on training images; the int8
 * file runs in eval, predict, submit, serve and the API like any model.
 * Left out: the PCA + SVM baseline (not a network), int8 input files. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/rng.h"
#include "digits_internal.h"
#include "options.h"
#include "quant/qmodel.h"
#include "quant/quantize.h"

static const char *CMD = "quantize";
static const unsigned SHARED = CLI_MODEL | CLI_DATA | CLI_THREADS;

static void help(void) {
    CliCommon co = cli_common_defaults();
    printf("usage: digits quantize [--model MODEL] --out FILE.safetensors [flags]\n\n");
    cli_common_help(CLI_MODEL, &co);
    printf("  --out FILE            the int8 model file to write (atomically)            (required)\n"
           "  --calib N             calibration images, drawn from the training set       [1000]\n"
           "  --percentile P        activation ranges from the P-th percentile (50 < P < 100)\n"
           "                        instead of min/max                                     [min/max]\n"
           "  --seed S              which calibration images                               [0]\n"
           "  --test DIR|FILE.csv   measure the int8 model on this labelled test set and record its\n"
           "                        test_accuracy in the file (the float model's figures are kept\n"
           "                        as float_test_accuracy and float_test_loss)\n");
    cli_common_help(SHARED & ~CLI_MODEL, &co);
    printf("\nTensorFlow Lite's int8 scheme: batch norm folded into the convolution, per-output-channel\n"
           "symmetric int8 weights, per-tensor asymmetric int8 activations, int32 biases, fixed-point\n"
           "requantization (int32 multiplier + shift, rounding half away from zero), ReLU fused as a\n"
           "clamp; the 0..255 pixel normalisation is folded into the input. tanh and ELU become 256-entry\n"
           "tables. An ensemble is quantized member by member. A spatial transformer's grid sampling (stn)\n"
           "has no int8 form: it stays float between a dequantize and a quantize (its localisation net is\n"
           "int8). 'digits info FILE' lists the int8 operators, the float layers each stands for and any\n"
           "left in float; the int8 kernels use AMX-INT8 tiles and AVX512-VNNI when the CPU has them\n"
           "(DIGITS_INT8_KERNELS=vnni|c|ref forces VNNI without tiles, the plain-C or the reference code;\n"
           "all give the same bits).\n\n"
           "Examples:\n"
           "  digits quantize --model runs/cnn-bn.safetensors --out cnn-bn-int8.safetensors\n"
           "  digits eval --model cnn-bn-int8.safetensors\n"
           "  digits quantize --model best --out best-int8.safetensors --calib 2000 --test data/mnist\n");
}

/* n calibration images (n x 784 pixels, malloc'd) drawn without
 * replacement from the training split of `data`; *n is lowered to the set's
 * size. */
static uint8_t *calibration_images(const char *data, int *n, uint64_t seed) {
    Dataset ds = {0};
    if (dataset_load(data, "train", &ds) < 0) cli_fail(CMD, "%s", dg_errmsg());
    if (ds.rows != 28 || ds.cols != 28) cli_fail(CMD, "%s: images are %dx%d, expected 28x28", data, ds.rows, ds.cols);
    if (*n > ds.n) *n = ds.n;
    int *idx = dg_xmalloc((size_t)ds.n * sizeof *idx);
    for (int i = 0; i < ds.n; i++) idx[i] = i;
    Rng r;
    rng_seed(&r, seed, "calib");
    rng_shuffle(&r, idx, ds.n);
    const size_t img = (size_t)ds.rows * ds.cols;
    uint8_t *px = dg_xmalloc((size_t)*n * img);
    for (int i = 0; i < *n; i++) memcpy(px + i * img, ds.pixels + (size_t)idx[i] * img, img);
    free(idx);
    dataset_free(&ds);
    return px;
}

/* The float model's metadata (JSON text) with its digits.metrics' test
 * figures renamed float_test_accuracy / float_test_loss (they describe the
 * float network, not the int8 one) and, when acc >= 0, the int8 model's
 * test_accuracy, test_loss and n_test added. Returns malloc'd JSON text. */
static char *int8_metadata(const char *float_meta, double acc, double loss, int n_test) {
    cJSON *meta = cJSON_Parse(float_meta ? float_meta : "{}");
    if (!cJSON_IsObject(meta)) {
        cJSON_Delete(meta);
        meta = cJSON_CreateObject();
    }
    cJSON *old = cJSON_GetObjectItemCaseSensitive(meta, "digits.metrics");
    cJSON *metrics = cJSON_IsString(old) ? cJSON_Parse(old->valuestring) : NULL;
    if (!cJSON_IsObject(metrics)) {
        cJSON_Delete(metrics);
        metrics = cJSON_CreateObject();
    }
    static const char *const from[] = {"test_accuracy", "test_loss"}, *const to[] = {"float_test_accuracy", "float_test_loss"};
    for (int i = 0; i < 2; i++) {
        cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(metrics, from[i]);
        if (!v) continue;
        cJSON_DeleteItemFromObjectCaseSensitive(metrics, to[i]);
        cJSON_AddItemToObject(metrics, to[i], v);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(metrics, "n_test");
    if (acc >= 0) {
        cJSON_AddNumberToObject(metrics, "test_accuracy", acc);
        cJSON_AddNumberToObject(metrics, "test_loss", loss);
        cJSON_AddNumberToObject(metrics, "n_test", n_test);
    }
    char *mj = cJSON_PrintUnformatted(metrics);
    cJSON_DeleteItemFromObjectCaseSensitive(meta, "digits.metrics");
    cJSON_AddStringToObject(meta, "digits.metrics", mj);
    free(mj);
    char *out = cJSON_PrintUnformatted(meta);
    cJSON_Delete(metrics);
    cJSON_Delete(meta);
    return out;
}

/* Measure the int8 file `out` on the labelled set `test` and write it again
 * (qf, the same weights) with the figures in its metadata; on failure the
 * file is removed and the command fails with one line. */
static void record_int8_test(const QFile *qf, const char *out, const char *float_meta, const char *test) {
    Classifier c;
    if (classifier_load(&c, out, 1000, 0) < 0) cli_fail(CMD, "%s", dg_errmsg());
    double acc, loss;
    int n;
    if (classifier_measure(&c, test, &acc, &loss, &n) < 0) {
        char msg[2048];
        snprintf(msg, sizeof msg, "%s", dg_errmsg());
        remove(out); /* a refused command leaves no file */
        cli_fail(CMD, "%s", msg);
    }
    classifier_free(&c);
    char *meta = int8_metadata(float_meta, acc, loss, n);
    if (qfile_save(qf, out, meta) < 0) cli_fail(CMD, "%s", dg_errmsg());
    free(meta);
    printf("int8 test accuracy %.4f (loss %.4f) on %d images of %s, recorded in %s\n", acc, loss, n, test, out);
}

int cmd_quantize(int argc, char **argv) {
    CliCommon co = cli_common_defaults();
    const char *out = NULL, *test = NULL;
    int calib = 1000;
    double percentile = 0;
    uint64_t seed = 0;
    enum { O_OUT = 256, O_CALIB, O_PERC, O_SEED, O_TEST, O_HELP };
    static const struct option own[] = {{"out", 1, 0, O_OUT},   {"calib", 1, 0, O_CALIB}, {"percentile", 1, 0, O_PERC},
                                        {"seed", 1, 0, O_SEED}, {"test", 1, 0, O_TEST},   {"help", 0, 0, O_HELP},
                                        {0, 0, 0, 0}};
    CliOptions ol;
    cli_options(&ol, own, SHARED);
    int c;
    while ((c = cli_next(&ol, CMD, argc, argv, &co)) != -1) {
        switch (c) {
        case O_OUT: out = optarg; break;
        case O_CALIB: calib = cli_int(CMD, "--calib", optarg, 1, 1000000); break;
        case O_PERC:
            percentile = cli_float(CMD, "--percentile", optarg, 50.0f, 100.0f);
            if (percentile <= 50 || percentile >= 100) cli_usage_error(CMD, "--percentile: must be in (50, 100)");
            break;
        case O_SEED: seed = cli_u64(CMD, "--seed", optarg); break;
        case O_TEST: test = optarg; break;
        case O_HELP: help(); return 0;
        default: cli_bad_flag(CMD, argv[optind - 1], ol.opts);
        }
    }
    if (optind < argc) cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    if (!out) cli_usage_error(CMD, "--out FILE.safetensors is required");
    char model_buf[PATH_MAX];
    const char *model_path = cli_model_path(CMD, co.model, model_buf, sizeof model_buf);
    const char *data = co.data ? co.data : cli_default_data(CMD);

    Classifier cl;
    if (classifier_load(&cl, model_path, 1, co.threads) < 0) cli_fail(CMD, "%s", dg_errmsg());
    if (cl.kind == CLASSIFIER_INT8) cli_fail(CMD, "%s: already an int8 model", model_path);
    if (cl.kind == CLASSIFIER_SVM || cl.n_models < 1)
        cli_fail(CMD, "%s: the PCA + SVM baseline is not a network and cannot be quantized", model_path);
    uint8_t *px = calibration_images(data, &calib, seed);
    QFile qf = {.n = cl.n_models, .vote_logits = cl.vote_logits};
    qf.members = dg_xcalloc((size_t)cl.n_models, sizeof *qf.members);
    QuantizeOptions opt = {percentile};
    for (int k = 0; k < cl.n_models; k++) {
        char origin[PATH_MAX + 32];
        if (cl.n_models > 1)
            snprintf(origin, sizeof origin, "%s: member %d", model_path, k);
        else
            snprintf(origin, sizeof origin, "%s", model_path);
        if (quantize_model(&qf.members[k], &cl.models[k], px, calib, &opt, origin) < 0) {
            char msg[2048];
            snprintf(msg, sizeof msg, "%s", dg_errmsg());
            cli_fail(CMD, "%s", msg);
        }
    }
    char *meta = int8_metadata(cl.metadata_json, -1, 0, 0);
    if (qfile_save(&qf, out, meta) < 0) cli_fail(CMD, "%s", dg_errmsg());
    free(meta);
    int ops = 0;
    for (int k = 0; k < qf.n; k++) ops += qf.members[k].n_ops;
    printf("wrote %s (%s, %d network%s, %d int8 operators, calibrated on %d images, %s ranges)\n", out, cl.name,
           qf.n, qf.n > 1 ? "s" : "", ops, calib, percentile > 0 ? "percentile" : "min/max");
    if (test) record_int8_test(&qf, out, cl.metadata_json, test);
    free(px);
    qfile_free(&qf);
    classifier_free(&cl);
    return 0;
}
