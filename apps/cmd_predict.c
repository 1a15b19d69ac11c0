/* cmd_predict.c — `digits predict`: classify image files through the public
 * API (include/digits.h: dg_predict_image, dg_predict_number). Any size and
 * polarity: every image goes through the MNIST-style preprocessing
 * (data/preprocess.h: paper field, crop, scale to 20 px, centre of mass),
 * the same as `digits serve` applies to uploads. An image that seems to hold
 * several digits gets a note on stderr (the largest is read); --multi reads
 * them all, left to right, and prints the number. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "digits.h"
#include "digits_internal.h"
#include "options.h"
#include "ops/ops.h"

static const char *CMD = "predict";

static const unsigned SHARED = CLI_MODEL | CLI_THREADS | CLI_TTA;

static void help(void) {
    CliCommon co = cli_common_defaults();
    printf("usage: digits predict [--model FILE|default|best] [flags] IMAGE...\n\n");
    cli_common_help(CLI_MODEL, &co);
    printf("  --json                one JSON object per image\n"
           "  --multi               read every digit, left to right: the number\n");
    cli_common_help(SHARED & ~CLI_MODEL, &co);
    printf("IMAGE: PNG, JPEG, BMP or PGM of one digit (--multi: of a number), any size, dark-on-light or\n"
           "light-on-dark; photos of paper too (uneven light, coloured ink, EXIF rotation, specks, shadows).\n\n"
           "Examples:\n"
           "  digits predict digit.png photo.jpg              # the pretrained default model\n"
           "  digits predict --model best --json scan1.png\n"
           "  digits predict --multi number.jpg\n");
}

/* The best class of probs and its probability. */
static int best_class(const float *probs) {
    int best = 0;
    for (int k = 1; k < MODEL_NUM_CLASSES; k++)
        if (probs[k] > probs[best]) best = k;
    return best;
}

/* Prints one JSON probability array. */
static void print_probs(const float *probs) {
    printf("[");
    for (int k = 0; k < MODEL_NUM_CLASSES; k++) printf("%s%.6f", k ? "," : "", probs[k]);
    printf("]");
}

/* Reads and classifies one image through the public API: the largest
 * digit, or with `multi` every digit left to right. Prints the result (and
 * a note on stderr when a single read leaves digits out); 0, or -1 after
 * printing the error. */
static int predict_file(dg_model *m, const char *path, int json, int multi) {
    uint8_t *px;
    int w, h;
    if (image_read(path, 3, &px, &w, &h) < 0) {
        fprintf(stderr, "digits predict: %s\n", dg_errmsg());
        return -1;
    }
    dg_prediction pred[PREP_MAX_DIGITS];
    int n = 1, rc = multi ? dg_predict_number(m, px, w, h, 0, DG_RGB, pred, PREP_MAX_DIGITS, &n)
                          : dg_predict_image(m, px, w, h, 0, DG_RGB, pred);
    free(px);
    if (rc != DG_OK) {
        fprintf(stderr, "digits predict: %s: %s\n", path, dg_errmsg());
        return -1;
    }
    float probs[PREP_MAX_DIGITS][MODEL_NUM_CLASSES];
    for (int d = 0; d < n; d++) memcpy(probs[d], pred[d].probs, sizeof probs[d]);
    const int n_digits = pred[0].n_digits;
    char number[PREP_MAX_DIGITS + 1];
    for (int d = 0; d < n; d++) number[d] = (char)('0' + best_class(probs[d]));
    number[n] = 0;
    char warning[160] = "";
    if (!multi && n_digits > 1)
        snprintf(warning, sizeof warning, "the image seems to hold %d digits; reading the largest (--multi reads them all)",
                 n_digits);
    else if (multi && n_digits > n)
        snprintf(warning, sizeof warning, "the image seems to hold %d digits; reading the first %d", n_digits, n);
    if (json) {
        int best = best_class(probs[0]);
        printf("{\"file\":\"%s\"", path);
        if (multi) {
            printf(",\"number\":\"%s\",\"digits\":[", number);
            for (int d = 0; d < n; d++) {
                int b = best_class(probs[d]);
                printf("%s{\"digit\":%d,\"confidence\":%.6f,\"probabilities\":", d ? "," : "", b, probs[d][b]);
                print_probs(probs[d]);
                printf("}");
            }
            printf("]");
        } else {
            printf(",\"digit\":%d,\"confidence\":%.6f,\"probabilities\":", best, probs[0][best]);
            print_probs(probs[0]);
        }
        if (warning[0]) printf(",\"warning\":\"%s\"", warning);
        printf("}\n");
    } else if (multi) {
        printf("%s: %s (p=", path, number);
        for (int d = 0; d < n; d++) printf("%s%.4f", d ? " " : "", probs[d][best_class(probs[d])]);
        printf(")\n");
    } else {
        printf("%s: %d (p=%.4f)\n", path, best_class(probs[0]), probs[0][best_class(probs[0])]);
    }
    if (warning[0]) fprintf(stderr, "digits predict: note: %s: %s\n", path, warning);
    return 0;
}

int cmd_predict(int argc, char **argv) {
    CliCommon co = cli_common_defaults();
    int json = 0, multi = 0;
    enum { O_JSON = 256, O_HELP, O_MULTI };
    static const struct option own[] = {{"json", 0, 0, O_JSON}, {"help", 0, 0, O_HELP}, {"multi", 0, 0, O_MULTI},
                                        {0, 0, 0, 0}};
    CliOptions ol;
    cli_options(&ol, own, SHARED);
    int c;
    while ((c = cli_next(&ol, CMD, argc, argv, &co)) != -1) {
        switch (c) {
        case O_JSON: json = 1; break;
        case O_MULTI: multi = 1; break;
        case O_HELP: help(); return 0;
        default: cli_bad_flag(CMD, argv[optind - 1], ol.opts);
        }
    }
    int threads = co.threads, tta = co.tta;
    char model_buf[PATH_MAX];
    const char *model_path = cli_model_path(CMD, co.model, model_buf, sizeof model_buf);
    if (optind >= argc) cli_usage_error(CMD, "no image files given");
    dg_set_threads(threads);
    dg_model *m;
    if (dg_model_load(&m, model_path) != DG_OK) cli_fail(CMD, "%s", dg_errmsg());
    int width, height;
    dg_model_input_size(m, &width, &height);
    if (width != PREP_SIDE || height != PREP_SIDE)
        cli_fail(CMD, "%s: the model takes %dx%d images, preprocessing makes %dx%d", model_path, width, height,
                 PREP_SIDE, PREP_SIDE);
    dg_model_set_tta(m, tta);
    dg_model_set_batch(m, 1); /* one pass per digit, as always (the last bits of a probability depend on it) */
    int failures = 0;
    for (int i = optind; i < argc; i++) failures += predict_file(m, argv[i], json, multi) < 0;
    dg_model_free(m);
    return failures ? EXIT_RUNTIME : 0;
}
