/* cmd_predict.c — `digits predict`: classify image files. Any size and
 * polarity: every image goes through the MNIST-style preprocessing
 * (data/preprocess.h: crop, scale to 20 px, centre of mass), the same as
 * `digits serve` applies to uploads. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "digits.h"
#include "ops/ops.h"

static const char *CMD = "predict";

static void help(void) {
    printf("usage: digits predict --model FILE [flags] IMAGE...\n\n"
           "  --model FILE     model file written by 'digits train'   (required)\n"
           "  --json           one JSON object per image\n"
           "  --threads N      worker threads (0 = all cores)         [0]\n"
           "  --tta N          average N test-time augmentations      [1]\n"
           "IMAGE: PNG, JPEG, BMP or PGM of one digit, any size, dark-on-light or light-on-dark.\n\n"
           "Examples:\n"
           "  digits predict --model runs/cnn-bn.safetensors digit.png\n"
           "  digits predict --model runs/cnn-bn.safetensors --json scan1.png photo.jpg\n"
           "  digits predict --model ens.safetensors --tta 4 drawn/*.png\n");
}

int cmd_predict(int argc, char **argv) {
    const char *model_path = NULL;
    int json = 0, threads = 0, tta = 1;
    enum { O_MODEL = 256, O_JSON, O_THREADS, O_HELP, O_TTA };
    static const struct option opts[] = {{"model", 1, 0, O_MODEL}, {"json", 0, 0, O_JSON},
                                         {"threads", 1, 0, O_THREADS}, {"help", 0, 0, O_HELP},
                                         {"tta", 1, 0, O_TTA}, {0, 0, 0, 0}};
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_MODEL: model_path = optarg; break;
        case O_JSON: json = 1; break;
        case O_THREADS: threads = cli_int(CMD, "--threads", optarg, 0, 1024); break;
        case O_TTA: tta = cli_int(CMD, "--tta", optarg, 1, 64); break;
        case O_HELP: help(); return 0;
        default: cli_usage_error(CMD, "unknown or incomplete flag '%s'", argv[optind - 1]);
        }
    }
    if (!model_path) cli_usage_error(CMD, "--model FILE is required");
    if (optind >= argc) cli_usage_error(CMD, "no image files given");
    cli_set_threads(threads);
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
