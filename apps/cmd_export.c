/* cmd_export.c — `digits export --format onnx --model MODEL --out FILE.onnx`:
 * a trained network or ensemble as one ONNX graph (src/model/onnx_export.c)
 * for ONNX Runtime, OpenCV's DNN module, TensorRT or a browser; and
 * `digits export --format c --model MODEL-int8 --out DIR`: an int8 network
 * as dependency-free C99 for a microcontroller (src/quant/export_c.c); an
 * int8 network with ONNX's quantized operators (src/model/onnx_int8.c).
 * Left out: the PCA + SVM baseline (not a network), other formats. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "digits_internal.h"
#include "model/onnx.h"
#include "options.h"
#include "quant/export_c.h"

static const char *CMD = "export";

static void help(void) {
    printf("usage: digits export --format onnx [--model MODEL] --out FILE.onnx [--exact]\n"
           "       digits export --format c --model MODEL-int8.safetensors --out DIR [--max-flash N] [--max-ram N]\n\n"
           "  --format onnx|c    onnx: opset 17, IR version 8; c: C99 for a microcontroller  [onnx]\n"
           "  --model MODEL      a model file (network or ensemble), default or best  [default]\n"
           "  --out FILE.onnx    the file to write (atomically); c: the folder        (required)\n"
           "  --max-flash N      c: fail if the constants need more than N bytes (K, M: x1024)\n"
           "  --max-ram N        c: fail if the activation arena needs more than N bytes\n"
           "  --exact            onnx, int8 model: ConvInteger and digits' integer requantization\n"
           "                     instead of QLinearConv (bit-identical logits, slower in ONNX Runtime)\n\n"
           "The graph: input 'input' float32 (N,1,28,28) with pixel values 0..255 (white digit on\n"
           "black; the model's normalisation is part of the graph), N dynamic; outputs 'logits' and\n"
           "'probabilities' (N,10). An ensemble is one graph that votes as digits does (mean of\n"
           "probabilities, or sum of logits). Dropout is left out. metadata_props: digits.spec (or\n"
           "digits.members and digits.vote), digits.version, digits.norm_mean/std, digits.metrics,\n"
           "digits.accuracy.\n\n"
           "An int8 model (digits quantize) becomes a graph of ONNX's standard quantized operators:\n"
           "input 'input' uint8 (N,1,28,28) pixels 0..255, QLinearConv for convolutions and dense\n"
           "layers (per-channel int8 weights, int32 biases), MaxPool on the uint8 tensor, integer\n"
           "operators for tables, average pools, adds and concats; outputs 'logits' (the int8\n"
           "logits dequantized) and 'probabilities' (N,10). ONNX Runtime rounds QLinearConv's\n"
           "requantization in float, half to even, digits in fixed point, half away from zero: a\n"
           "logit may differ by a quantization step (--exact: none). One network: an int8 ensemble\n"
           "or a float island (a spatial transformer) is refused; export the float model instead.\n\n"
           "--format c takes an int8 model (digits quantize) and writes DIR/digits_model.c and\n"
           "DIR/digits_model.h: C99 without malloc, floating point, libm or any library; the weights\n"
           "as const arrays (flash), one static activation arena (RAM), both sizes stated in the\n"
           "header; int digits_model_run(const uint8_t pixels[784], int8_t logits[10]) returns the\n"
           "digit, bit-identical to digits' own int8 path. One network, not an ensemble.\n\n"
           "Examples:\n"
           "  digits export --format onnx --model runs/cnn-bn.safetensors --out cnn-bn.onnx\n"
           "  digits export --format onnx --model best --out best.onnx\n"
           "  digits export --format onnx --model cnn-bn-int8.safetensors --out cnn-bn-int8.onnx\n"
           "  digits export --format c --model cnn-bn-int8.safetensors --out mcu/ --max-ram 48K\n");
}

/* A byte count flag: digits, optionally K or M (x1024, x1024^2); exit 2
 * on anything else. */
static size_t parse_bytes(const char *flag, const char *s) {
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    unsigned long long mul = *end == 'K' || *end == 'k' ? 1024 : *end == 'M' || *end == 'm' ? 1024 * 1024 : 1;
    if (mul > 1) end++;
    if (*end == 'B' || *end == 'b') end++;
    if (end == s || *end || *s == '-' || v == 0 || v > SIZE_MAX / mul)
        cli_usage_error(CMD, "%s: '%s' is not a byte count (e.g. 12288, 12K, 1M)", flag, s);
    return (size_t)(v * mul);
}

/* --format c: the int8 network in model_path as DIR/digits_model.c, .h. */
static int export_c(const char *model_path, const char *dir, size_t max_flash, size_t max_ram) {
    QFile qf;
    if (qfile_load(&qf, model_path) < 0) cli_fail(CMD, "%s", dg_errmsg());
    if (qf.n != 1) {
        int n = qf.n;
        qfile_free(&qf);
        cli_fail(CMD, "%s: an ensemble of %d int8 networks; --format c takes one network (quantize a member)",
                 model_path, n);
    }
    QExportSize sz;
    if (qexport_c(&qf.members[0], dir, model_path, max_flash, max_ram, &sz) < 0) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", dg_errmsg());
        qfile_free(&qf);
        cli_fail(CMD, "%s", msg);
    }
    printf("wrote %s/digits_model.c and digits_model.h (%s, int8: %zu bytes of constants, %zu bytes of RAM)\n",
           dir, qf.members[0].name, sz.flash_bytes, sz.ram_bytes);
    qfile_free(&qf);
    return 0;
}

/* --format onnx of an int8 file: its one network with ONNX's quantized
 * operators (onnx_export_int8); an ensemble is refused. */
static int export_onnx_int8(Classifier *cl, const char *model_path, const char *out, int exact) {
    const QFile *qf = cl->impl;
    if (qf->n != 1) {
        int n = qf->n;
        classifier_free(cl);
        cli_fail(CMD, "%s: an ensemble of %d int8 networks; the int8 ONNX export takes one network (export the "
                 "float ensemble, or quantize a member)", model_path, n);
    }
    if (onnx_export_int8(out, &qf->members[0], exact ? ONNX_INT8_EXACT : 0, NULL, model_path) < 0) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", dg_errmsg());
        classifier_free(cl);
        cli_fail(CMD, "%s", msg);
    }
    printf("wrote %s (%s, int8%s, opset %d)\n", out, qf->members[0].name, exact ? " exact" : "", ONNX_OPSET);
    classifier_free(cl);
    return 0;
}

/* The recorded accuracy in a metrics JSON text (test_accuracy, else
 * val_accuracy) as text in buf, or NULL. */
static const char *recorded_accuracy(const char *metrics_json, char *buf, size_t len) {
    cJSON *m = cJSON_Parse(metrics_json ? metrics_json : "null");
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(m, "test_accuracy");
    if (!cJSON_IsNumber(a)) a = cJSON_GetObjectItemCaseSensitive(m, "val_accuracy");
    const char *r = NULL;
    if (cJSON_IsNumber(a)) {
        snprintf(buf, len, "%.6g", a->valuedouble);
        r = buf;
    }
    cJSON_Delete(m);
    return r;
}

/* Metadata value `key` of the model file's metadata JSON: a malloc'd copy in
 * *owned (the caller frees it), also returned; NULL when absent. */
static const char *file_meta(const char *meta_json, const char *key, char **owned) {
    cJSON *meta = cJSON_Parse(meta_json ? meta_json : "{}");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, key);
    *owned = cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
    cJSON_Delete(meta);
    return *owned;
}

int cmd_export(int argc, char **argv) {
    const unsigned SHARED = CLI_MODEL;
    CliCommon co = cli_common_defaults();
    const char *out = NULL, *format = "onnx";
    size_t max_flash = 0, max_ram = 0;
    int exact = 0;
    enum { O_FORMAT = 256, O_OUT, O_HELP, O_MAX_FLASH, O_MAX_RAM, O_EXACT };
    static const struct option own[] = {{"format", 1, 0, O_FORMAT},        {"out", 1, 0, O_OUT},
                                        {"max-flash", 1, 0, O_MAX_FLASH}, {"max-ram", 1, 0, O_MAX_RAM},
                                        {"exact", 0, 0, O_EXACT},         {"help", 0, 0, O_HELP},
                                        {0, 0, 0, 0}};
    CliOptions ol;
    cli_options(&ol, own, SHARED);
    int c;
    while ((c = cli_next(&ol, CMD, argc, argv, &co)) != -1) {
        switch (c) {
        case O_FORMAT: format = optarg; break;
        case O_OUT: out = optarg; break;
        case O_MAX_FLASH: max_flash = parse_bytes("--max-flash", optarg); break;
        case O_MAX_RAM: max_ram = parse_bytes("--max-ram", optarg); break;
        case O_EXACT: exact = 1; break;
        case O_HELP: help(); return 0;
        default: cli_bad_flag(CMD, argv[optind - 1], ol.opts);
        }
    }
    if (optind < argc) cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    int to_c = strcmp(format, "c") == 0;
    if (!to_c && strcmp(format, "onnx") != 0)
        cli_usage_error(CMD, "--format: '%s' is not a known format (onnx, c)", format);
    if (!out) cli_usage_error(CMD, to_c ? "--out DIR is required" : "--out FILE.onnx is required");
    if (!to_c && (max_flash || max_ram)) cli_usage_error(CMD, "--max-flash and --max-ram go with --format c");
    if (to_c && exact) cli_usage_error(CMD, "--exact goes with --format onnx (--format c is always exact)");
    char model_buf[PATH_MAX];
    const char *model_path = cli_model_path(CMD, co.model, model_buf, sizeof model_buf);
    if (to_c) return export_c(model_path, out, max_flash, max_ram);

    Classifier cl;
    if (classifier_load(&cl, model_path, 1, 1) < 0) cli_fail(CMD, "%s", dg_errmsg());
    if (exact && cl.kind != CLASSIFIER_INT8) {
        classifier_free(&cl);
        cli_usage_error(CMD, "--exact goes with an int8 model (digits quantize)");
    }
    if (cl.kind == CLASSIFIER_INT8) return export_onnx_int8(&cl, model_path, out, exact);
    if (cl.kind == CLASSIFIER_SVM)
        cli_fail(CMD, "%s: the PCA + SVM baseline is not a network and cannot be exported to ONNX", model_path);
    const Model **models = dg_xmalloc((size_t)cl.n_models * sizeof *models);
    for (int k = 0; k < cl.n_models; k++) models[k] = &cl.models[k];
    char acc_buf[32], *members = NULL, *metrics = NULL;
    const char *kv[16];
    int i = 0;
    if (cl.kind == CLASSIFIER_ENSEMBLE) {
        kv[i++] = "digits.vote", kv[i++] = cl.vote_logits ? "logits" : "probs";
        if (file_meta(cl.metadata_json, "digits.members", &members)) kv[i++] = "digits.members", kv[i++] = members;
        if (file_meta(cl.metadata_json, "digits.metrics", &metrics)) kv[i++] = "digits.metrics", kv[i++] = metrics;
    } else {
        metrics = cl.models[0].metrics_json ? strdup(cl.models[0].metrics_json) : NULL;
    }
    const char *acc = recorded_accuracy(metrics, acc_buf, sizeof acc_buf);
    if (acc) kv[i++] = "digits.accuracy", kv[i++] = acc;
    kv[i] = NULL;
    int rc = onnx_export(out, models, cl.n_models, cl.vote_logits, kv, model_path);
    free(members);
    free(metrics);
    free(models);
    if (rc < 0) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", dg_errmsg());
        classifier_free(&cl);
        cli_fail(CMD, "%s", msg);
    }
    printf("wrote %s (%s, %d network%s, opset %d)\n", out, cl.name, cl.n_models, cl.n_models > 1 ? "s" : "",
           ONNX_OPSET);
    classifier_free(&cl);
    return 0;
}
