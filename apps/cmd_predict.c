/* cmd_predict.c — `digits predict`: classify image files. Any size and
 * polarity: every image goes through the MNIST-style preprocessing
 * (data/preprocess.h: crop, scale to 20 px, centre of mass), the same as
 * `digits serve` applies to uploads. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "digits.h"
#include "options.h"
#include "ops/ops.h"

static const char *CMD = "predict";

static const unsigned SHARED = CLI_MODEL | CLI_THREADS | CLI_TTA;

static void help(void) {
    CliCommon co = cli_common_defaults();
    printf("usage: digits predict [--model FILE|default|best] [flags] IMAGE...\n\n");
    cli_common_help(CLI_MODEL, &co);
    printf("  --json                one JSON object per image\n");
    cli_common_help(SHARED & ~CLI_MODEL, &co);
    printf("IMAGE: PNG, JPEG, BMP or PGM of one digit, any size, dark-on-light or light-on-dark.\n");
}

int cmd_predict(int argc, char **argv) {
    CliCommon co = cli_common_defaults();
    int json = 0;
    enum { O_JSON = 256, O_HELP };
    static const struct option own[] = {{"json", 0, 0, O_JSON}, {"help", 0, 0, O_HELP}, {0, 0, 0, 0}};
    CliOptions ol;
    cli_options(&ol, own, SHARED);
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", ol.opts, NULL)) != -1) {
        if (cli_common_parse(CMD, c, optarg, &co)) continue;
        switch (c) {
        case O_JSON: json = 1; break;
        case O_HELP: help(); return 0;
        default: cli_bad_flag(CMD, argv[optind - 1], ol.opts);
        }
    }
    int threads = co.threads, tta = co.tta;
    char model_buf[PATH_MAX];
    const char *model_path = cli_model_path(CMD, co.model, model_buf, sizeof model_buf);
    if (optind >= argc) cli_usage_error(CMD, "no image files given");
    Classifier m;
    if (classifier_load(&m, model_path, 1, threads) < 0) cli_fail(CMD, "%s", dg_errmsg());
    if (m.width != PREP_SIDE || m.height != PREP_SIDE)
        cli_fail(CMD, "%s: the model takes %dx%d images, preprocessing makes %dx%d", model_path, m.width,
                 m.height, PREP_SIDE, PREP_SIDE);
    m.tta = tta;
    int failures = 0;
    for (int i = optind; i < argc; i++) {
        uint8_t *px;
        int w, h;
        if (image_read_gray(argv[i], &px, &w, &h) < 0) {
            fprintf(stderr, "digits predict: %s\n", dg_errmsg());
            failures++;
            continue;
        }
        uint8_t input[PREP_SIDE * PREP_SIDE];
        int rc = preprocess_digit(input, px, w, h, NULL);
        free(px);
        if (rc < 0) {
            fprintf(stderr, "digits predict: %s: %s\n", argv[i], dg_errmsg());
            failures++;
            continue;
        }
        float probs[MODEL_NUM_CLASSES];
        classifier_predict(&m, input, 1, probs, NULL);
        int best = 0;
        for (int k = 1; k < MODEL_NUM_CLASSES; k++)
            if (probs[k] > probs[best]) best = k;
        if (json) {
            printf("{\"file\":\"%s\",\"digit\":%d,\"confidence\":%.6f,\"probabilities\":[", argv[i], best, probs[best]);
            for (int k = 0; k < MODEL_NUM_CLASSES; k++) printf("%s%.6f", k ? "," : "", probs[k]);
            printf("]}\n");
        } else {
            printf("%s: %d (p=%.4f)\n", argv[i], best, probs[best]);
        }
    }
    classifier_free(&m);
    return failures ? EXIT_RUNTIME : 0;
}
