/* cmd_predict.c — `digits predict`: classify image files. Images must be
 * the model's size (28x28) and grayscale after decoding; dark-on-light
 * images are inverted to MNIST's light-on-dark. The full upload
 * preprocessing (crop, rescale, centre of mass) comes with `digits serve`. */
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
           "IMAGE: PNG or PGM, 28x28, grayscale or colour (converted).\n");
}

/* MNIST digits are light ink on a dark background: invert images whose
 * border is mostly light. */
static void to_mnist_polarity(uint8_t *px, int w, int h) {
    long sum = 0, count = 0;
    for (int x = 0; x < w; x++) {
        sum += px[x] + px[(size_t)(h - 1) * w + x];
        count += 2;
    }
    for (int y = 0; y < h; y++) {
        sum += px[(size_t)y * w] + px[(size_t)y * w + w - 1];
        count += 2;
    }
    if (sum > 127 * count)
        for (size_t i = 0; i < (size_t)w * h; i++) px[i] = (uint8_t)(255 - px[i]);
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
        if (w != m.width || h != m.height) {
            fprintf(stderr, "digits predict: %s: image is %dx%d, the model expects %dx%d\n", argv[i], w, h,
                    m.width, m.height);
            free(px);
            failures++;
            continue;
        }
        to_mnist_polarity(px, w, h);
        float probs[MODEL_NUM_CLASSES];
        classifier_predict(&m, px, 1, probs, NULL);
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
        free(px);
    }
    classifier_free(&m);
    return failures ? EXIT_RUNTIME : 0;
}
