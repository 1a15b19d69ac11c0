/* cmd_augment.c — `digits augment`: look at what an --augment setting does
 * (a PNG grid: one row per training digit, the original then N augmented
 * versions, each 28x28 cell scaled x4) and measure its throughput. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/util.h"
#include "digits_internal.h"
#include "options.h"

static const char *CMD = "augment";

static const unsigned SHARED = CLI_DATA | CLI_THREADS;

static void help(void) {
    CliCommon co = cli_common_defaults();
    printf("usage: digits augment --preview FILE.png [flags]\n"
           "       digits augment --bench [flags]\n\n"
           "  --preview FILE.png    write a grid: each row a training digit, then N versions of it\n"
           "  --bench               augment the whole training set once and report images/s\n"
           "  --augment SPEC        preset (seed000, seed002, seed003, mnist) or key=value list:\n"
           "                        rotate=DEG,shift=F,intshift=1,zoom=Z,zoomxy=Z,shear=DEG,\n"
           "                        perspective=D:P,elastic=ALPHA:SIGMA[:P]      [seed000]\n"
           "  --n N                 augmented versions per digit                  [8]\n"
           "  --digits K            rows (the first K training images)             [8]\n"
           "  --scale S             pixel scale of the grid                       [4]\n"
           "  --seed N              augmentation seed                             [42]\n");
    cli_common_help(SHARED, &co);
    printf("\nExamples:\n"
           "  digits augment --preview aug.png\n"
           "  digits augment --preview aug.png --augment rotate=15,shift=0.1 --n 10\n"
           "  digits augment --preview aug.png --augment mnist --data train.csv\n");
}

/* Grid of rows x (1 + n) cells of (h, w) pixels scaled by s, 2-pixel grey gaps. */
static int write_grid(const char *path, const Dataset *ds, int rows, int n, int s,
                      const AugmentConfig *aug, uint64_t seed) {
    const int h = ds->rows, w = ds->cols, gap = 2, cols = 1 + n;
    const int W = cols * (w * s + gap) + gap, H = rows * (h * s + gap) + gap;
    const size_t img = (size_t)h * w;
    uint8_t *canvas = dg_xmalloc((size_t)W * H);
    memset(canvas, 96, (size_t)W * H);
    uint8_t *cell = dg_xmalloc(img);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            memcpy(cell, ds->pixels + (size_t)r * img, img);
            /* column c > 0 shows epoch c-1's version of image r */
            if (c > 0) augment_batch(aug, seed, c - 1, &r, cell, 1, h, w);
            const int x0 = gap + c * (w * s + gap), y0 = gap + r * (h * s + gap);
            for (int y = 0; y < h * s; y++)
                for (int x = 0; x < w * s; x++)
                    canvas[(size_t)(y0 + y) * W + x0 + x] = cell[(size_t)(y / s) * w + x / s];
        }
    int rc = image_write_png_gray(path, canvas, W, H);
    free(cell);
    free(canvas);
    return rc;
}

int cmd_augment(int argc, char **argv) {
    CliCommon co = cli_common_defaults();
    const char *preview = NULL, *spec = "seed000";
    int n = 8, digits = 8, scale = 4, bench = 0;
    uint64_t seed = 42;
    enum { O_PREVIEW = 256, O_BENCH, O_AUG, O_N, O_DIGITS, O_SCALE, O_SEED, O_HELP };
    static const struct option own[] = {
        {"preview", 1, 0, O_PREVIEW}, {"bench", 0, 0, O_BENCH}, {"augment", 1, 0, O_AUG},
        {"n", 1, 0, O_N}, {"digits", 1, 0, O_DIGITS}, {"scale", 1, 0, O_SCALE},
        {"seed", 1, 0, O_SEED}, {"help", 0, 0, O_HELP}, {0, 0, 0, 0}};
    CliOptions ol;
    cli_options(&ol, own, SHARED);
    int c;
    while ((c = cli_next(&ol, CMD, argc, argv, &co)) != -1) { /* --threads takes effect there */
        switch (c) {
        case O_PREVIEW: preview = optarg; break;
        case O_BENCH: bench = 1; break;
        case O_AUG: spec = optarg; break;
        case O_N: n = cli_int(CMD, "--n", optarg, 1, 64); break;
        case O_DIGITS: digits = cli_int(CMD, "--digits", optarg, 1, 64); break;
        case O_SCALE: scale = cli_int(CMD, "--scale", optarg, 1, 16); break;
        case O_SEED: seed = cli_u64(CMD, "--seed", optarg); break;
        case O_HELP: help(); return 0;
        default: cli_bad_flag(CMD, argv[optind - 1], ol.opts);
        }
    }
    if (optind < argc) cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    if (!preview && !bench) cli_usage_error(CMD, "give --preview FILE.png or --bench");
    AugmentConfig aug;
    if (augment_parse(spec, &aug) < 0) cli_usage_error(CMD, "%s", dg_errmsg());
    const char *data = co.data;

    Dataset ds = {0};
    if (dataset_load(data, "train", &ds) < 0) cli_fail(CMD, "%s", dg_errmsg());
    if (preview) {
        if (digits > ds.n) digits = ds.n;
        if (write_grid(preview, &ds, digits, n, scale, &aug, seed) < 0) cli_fail(CMD, "%s", dg_errmsg());
        printf("wrote %s: %d digits x (original + %d versions), augment %s\n", preview, digits, n, aug.text);
    }
    if (bench) {
        int *ids = dg_xmalloc((size_t)ds.n * sizeof(int));
        for (int i = 0; i < ds.n; i++) ids[i] = i;
        double t0 = now_seconds();
        const int B = 64;
        for (int s = 0; s < ds.n; s += B)
            augment_batch(&aug, seed, 0, ids + s, ds.pixels + (size_t)s * ds.rows * ds.cols,
                          ds.n - s < B ? ds.n - s : B, ds.rows, ds.cols);
        double secs = now_seconds() - t0;
        printf("augment %s: %d images of %dx%d in %.2fs: %.0f img/s (batches of %d)\n", aug.text, ds.n,
               ds.rows, ds.cols, secs, ds.n / secs, B);
        free(ids);
    }
    dataset_free(&ds);
    return 0;
}
