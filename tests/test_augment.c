/* test_augment.c — data augmentation (data/augment.h): the warp is exact
 * where it should be, bounded where it cannot be, its randomness is
 * reproducible and independent of the thread count, and the flag text
 * parses (presets, errors). Images are MNIST training digits when the data
 * are present (tests/e2e need them anyway), else synthetic strokes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "digits_internal.h"
#include "testutil.h"

#define SIDE 28
#define NPIX (SIDE * SIDE)
#define NIMG 64

static uint8_t images[NIMG * NPIX];

/* Synthetic digits-like images: a few thick bright strokes on black. */
static void synth(uint8_t *img, Rng *rng) {
    memset(img, 0, NPIX);
    for (int s = 0; s < 3; s++) {
        float x0 = rng_uniform_range(rng, 6, 22), y0 = rng_uniform_range(rng, 6, 22);
        float x1 = rng_uniform_range(rng, 6, 22), y1 = rng_uniform_range(rng, 6, 22);
        for (int t = 0; t <= 40; t++) {
            float x = x0 + (x1 - x0) * t / 40, y = y0 + (y1 - y0) * t / 40;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) img[((int)y + dy) * SIDE + (int)x + dx] = 255;
        }
    }
}

static int setup(void **state) {
    Dataset ds;
    const char *dir = getenv("DIGITS_DATA") ? getenv("DIGITS_DATA") : "data/mnist";
    if (dataset_load(dir, "train", &ds) == 0 && ds.rows == SIDE && ds.cols == SIDE && ds.n >= NIMG) {
        memcpy(images, ds.pixels, sizeof images);
        dataset_free(&ds);
        return 0;
    }
    Rng rng;
    rng_seed(&rng, 1, "synth");
    for (int i = 0; i < NIMG; i++) synth(images + i * NPIX, &rng);
    return 0;
}

static int max_abs_diff(const uint8_t *a, const uint8_t *b, size_t n, double *mean) {
    int m = 0;
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        s += d;
        if (d > m) m = d;
    }
    if (mean) *mean = s / n;
    return m;
}

/* ==== exactness ============================================================ */

static void test_identity_is_exact(void **state) {
    double H[9];
    augment_affine(H, SIDE, SIDE, 0, 0, 1, 1, 0, 0);
    uint8_t out[NPIX];
    for (int i = 0; i < NIMG; i++) {
        augment_warp_u8(out, images + i * NPIX, SIDE, SIDE, H, NULL);
        assert_memory_equal(out, images + i * NPIX, NPIX);
    }
    /* a configuration whose ranges are all zero leaves a batch untouched */
    AugmentConfig cfg;
    assert_int_equal(augment_parse("rotate=0,shift=0,zoom=0,elastic=0:1", &cfg), 0);
    assert_true(augment_is_identity(&cfg));
    uint8_t batch[4 * NPIX];
    memcpy(batch, images, sizeof batch);
    int ids[4] = {0, 1, 2, 3};
    augment_batch(&cfg, 1, 0, ids, batch, 4, SIDE, SIDE);
    assert_memory_equal(batch, images, sizeof batch);
    /* the TTA family starts with the identity */
    double T[9];
    augment_tta_warp(0, SIDE, SIDE, T);
    assert_memory_equal(T, H, sizeof T);
}

static void test_integer_shift_is_exact(void **state) {
    /* shifting by whole pixels moves pixels without interpolation */
    double H[9];
    augment_affine(H, SIDE, SIDE, 0, 0, 1, 1, 3, -2);
    uint8_t out[NPIX];
    const uint8_t *in = images;
    augment_warp_u8(out, in, SIDE, SIDE, H, NULL);
    for (int y = 0; y < SIDE; y++)
        for (int x = 0; x < SIDE; x++) {
            int sx = x - 3, sy = y + 2;
            uint8_t want = sx >= 0 && sx < SIDE && sy >= 0 && sy < SIDE ? in[sy * SIDE + sx] : 0;
            assert_int_equal(out[y * SIDE + x], want);
        }
}

/* Rotating by 90 degrees maps pixel centres onto pixel centres (about the
 * image centre, for even and odd sides alike), so four turns come back to
 * the start up to the float error of cos/sin(90 degrees) (~4e-8 pixels):
 * measured max difference 0 on all 64 images (bound: 1, a rounding step).
 * A 45-degree turn and back interpolates twice, which blurs thin strokes:
 * measured mean |diff| 6.65 and max 115 gray levels on the first 64 MNIST
 * digits (7.17 and 165 on the synthetic strokes); bounds 10 and 200. */
static void test_rotations_come_back(void **state) {
    double H[9], Hb[9];
    augment_affine(H, SIDE, SIDE, 90, 0, 1, 1, 0, 0);
    uint8_t a[NPIX], b[NPIX];
    int worst = 0;
    for (int i = 0; i < NIMG; i++) {
        memcpy(a, images + i * NPIX, NPIX);
        for (int t = 0; t < 4; t++) {
            augment_warp_u8(b, a, SIDE, SIDE, H, NULL);
            memcpy(a, b, NPIX);
        }
        int d = max_abs_diff(a, images + i * NPIX, NPIX, NULL);
        if (d > worst) worst = d;
    }
    print_message("4 x 90 degrees: max |diff| %d gray levels over %d images\n", worst, NIMG);
    assert_true(worst <= 1);

    /* one turn by 90 is a transpose-and-flip: check against the indices */
    augment_warp_u8(a, images, SIDE, SIDE, H, NULL);
    int turned = 0;
    for (int y = 0; y < SIDE; y++)
        for (int x = 0; x < SIDE; x++) turned += a[y * SIDE + x] == images[(SIDE - 1 - x) * SIDE + y]; /* clockwise */
    print_message("one 90-degree turn matches an index rotation at %d of %d pixels\n", turned, NPIX);
    assert_int_equal(turned, NPIX);

    augment_affine(H, SIDE, SIDE, 45, 0, 1, 1, 0, 0);
    augment_affine(Hb, SIDE, SIDE, -45, 0, 1, 1, 0, 0);
    double mean_sum = 0;
    worst = 0;
    for (int i = 0; i < NIMG; i++) {
        augment_warp_u8(a, images + i * NPIX, SIDE, SIDE, H, NULL);
        augment_warp_u8(b, a, SIDE, SIDE, Hb, NULL);
        double mean;
        int d = max_abs_diff(b, images + i * NPIX, NPIX, &mean);
        mean_sum += mean;
        if (d > worst) worst = d;
    }
    print_message("45 then -45 degrees: mean |diff| %.2f, max %d gray levels\n", mean_sum / NIMG, worst);
    assert_true(mean_sum / NIMG < 10.0);
    assert_true(worst < 200);
}

/* ==== bounds =============================================================== */

/* An all-white image stays 255 wherever the whole bilinear footprint is
 * inside (weights sum to 1, no overflow or wrap-around), and never leaves
 * 0..255 anywhere under strong random warps. */
static void test_values_stay_in_range(void **state) {
    AugmentConfig cfg;
    assert_int_equal(augment_parse("rotate=30,shift=0.2,zoom=0.3,shear=20,perspective=0.5:1,elastic=30:3", &cfg), 0);
    uint8_t white[8 * NPIX];
    memset(white, 255, sizeof white);
    int ids[8];
    for (int i = 0; i < 8; i++) ids[i] = i;
    augment_batch(&cfg, 3, 0, ids, white, 8, SIDE, SIDE);
    double H[9];
    augment_affine(H, SIDE, SIDE, 17, 0, 0.8, 0.8, 0, 0); /* shrinks: the centre stays inside */
    uint8_t w1[NPIX], out[NPIX];
    memset(w1, 255, NPIX);
    augment_warp_u8(out, w1, SIDE, SIDE, H, NULL);
    for (int y = 8; y < 20; y++)
        for (int x = 8; x < 20; x++) assert_int_equal(out[y * SIDE + x], 255);
    /* a shrunken image has a black border: background fill is 0 */
    assert_int_equal(out[0], 0);
    /* float batches: all values are whole gray levels 0..255 by type; check
     * a random batch keeps the ink mass roughly (no overflow to small values) */
    uint8_t batch[NIMG * NPIX];
    memcpy(batch, images, sizeof batch);
    int all_ids[NIMG];
    for (int i = 0; i < NIMG; i++) all_ids[i] = i;
    assert_int_equal(augment_parse("seed000", &cfg), 0);
    augment_batch(&cfg, 4, 0, all_ids, batch, NIMG, SIDE, SIDE);
    double before = 0, after = 0;
    for (int i = 0; i < NIMG * NPIX; i++) before += images[i], after += batch[i];
    print_message("seed000 ink mass ratio %.3f\n", after / before);
    assert_true(after / before > 0.8 && after / before < 1.25);
}

/* ==== randomness =========================================================== */

static void run_batch(const AugmentConfig *cfg, int threads, uint64_t seed, int epoch, uint8_t *out) {
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
    int ids[NIMG];
    for (int i = 0; i < NIMG; i++) ids[i] = 1000 + i;
    memcpy(out, images, NIMG * NPIX);
    augment_batch(cfg, seed, epoch, ids, out, NIMG, SIDE, SIDE);
}

static void test_same_seed_same_batch_any_threads(void **state) {
    const char *specs[] = {"seed000", "seed003", "mnist"};
    static uint8_t a[NIMG * NPIX], b[NIMG * NPIX], c[NIMG * NPIX];
    for (int s = 0; s < 3; s++) {
        AugmentConfig cfg;
        assert_int_equal(augment_parse(specs[s], &cfg), 0);
        run_batch(&cfg, 1, 7, 2, a);
        run_batch(&cfg, 2, 7, 2, b);
        run_batch(&cfg, 3, 7, 2, c);
        assert_memory_equal(a, b, sizeof a);
        assert_memory_equal(a, c, sizeof a);
        run_batch(&cfg, 2, 7, 3, b); /* another epoch: other versions */
        assert_true(memcmp(a, b, sizeof a) != 0);
        run_batch(&cfg, 2, 8, 2, b); /* another seed */
        assert_true(memcmp(a, b, sizeof a) != 0);
        print_message("%s: identical with 1, 2, 3 threads; differs by epoch and seed\n", specs[s]);
    }
#ifdef _OPENMP
    omp_set_num_threads(2);
#endif
    /* an image's version depends on its id, not on its batch neighbours */
    AugmentConfig cfg;
    assert_int_equal(augment_parse("seed000", &cfg), 0);
    run_batch(&cfg, 2, 7, 2, a);
    uint8_t one[NPIX];
    memcpy(one, images + 5 * NPIX, NPIX);
    int id = 1005;
    augment_batch(&cfg, 7, 2, &id, one, 1, SIDE, SIDE);
    assert_memory_equal(one, a + 5 * NPIX, NPIX);
}

/* ==== parsing ============================================================== */

static void test_parse(void **state) {
    AugmentConfig cfg;
    assert_int_equal(augment_parse("seed003", &cfg), 0);
    assert_string_equal(cfg.text, "rotate=10,shift=0.1,intshift=1,zoom=0.1,perspective=0.1:0.25");
    assert_true(cfg.persp_scale == 0.1f && cfg.persp_p == 0.25f && cfg.intshift);
    assert_int_equal(augment_parse("seed000", &cfg), 0);
    assert_string_equal(cfg.text, "rotate=10,shift=0.1,zoomxy=0.1");
    assert_int_equal(augment_parse("shear=5,elastic=34:4", &cfg), 0);
    assert_string_equal(cfg.text, "shear=5,elastic=34:4:1");
    assert_int_equal(augment_parse("none", &cfg), 0);
    assert_true(augment_is_identity(&cfg));
    struct {
        const char *text, *expect;
    } bad[] = {
        {"rotation=10", "unknown key 'rotation'"},
        {"rotate=ten", "rotate=ten: expected a number"},
        {"shift=0.7", "shift=0.7: expected a number in 0..0.5"},
        {"elastic=34", "elastic=34: expected 2 ':'-separated numbers"},
        {"seed001", "'seed001' is neither a preset"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(augment_parse(bad[i].text, &cfg), -1);
        print_message("%-14s -> %s\n", bad[i].text, dg_errmsg());
        assert_non_null(strstr(dg_errmsg(), bad[i].expect));
    }
}

/* torchvision RandomPerspective(0.1, p=1) on 28x28 moves each corner by 0
 * or 1 pixel per axis: the warp maps every image corner to within 1 pixel
 * (in each axis) of itself, and inwards or onto it. */
static void test_perspective_corners(void **state) {
    AugmentConfig cfg;
    assert_int_equal(augment_parse("perspective=0.1:1", &cfg), 0);
    Rng rng;
    rng_seed(&rng, 9, "persp");
    int moved = 0;
    for (int t = 0; t < 200; t++) {
        double H[9];
        float disp[2 * NPIX], work[2 * NPIX];
        int has;
        augment_draw(&cfg, &rng, SIDE, SIDE, H, disp, &has, work);
        assert_false(has);
        /* H maps output (end) corners to input (start) corners; invert by
         * checking where the start corners' images land: apply H to the
         * moved corners, which are within 1 pixel of the start corners */
        const double start[4][2] = {{0, 0}, {SIDE - 1, 0}, {SIDE - 1, SIDE - 1}, {0, SIDE - 1}};
        for (int k = 0; k < 4; k++) {
            /* the end corner lies in the 2x2 box inward of the start corner */
            int best = 0;
            for (int dy = 0; dy <= 1 && !best; dy++)
                for (int dx = 0; dx <= 1 && !best; dx++) {
                    double ex = start[k][0] + (k == 1 || k == 2 ? -dx : dx);
                    double ey = start[k][1] + (k >= 2 ? -dy : dy);
                    double w = H[6] * ex + H[7] * ey + H[8];
                    double ux = (H[0] * ex + H[1] * ey + H[2]) / w, uy = (H[3] * ex + H[4] * ey + H[5]) / w;
                    if (fabs(ux - start[k][0]) < 1e-6 && fabs(uy - start[k][1]) < 1e-6) {
                        best = 1;
                        moved += dx || dy;
                    }
                }
            assert_true(best);
        }
    }
    print_message("perspective: %d of 800 corners moved (expected about 600)\n", moved);
    assert_true(moved > 450 && moved < 750);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity_is_exact),
        cmocka_unit_test(test_integer_shift_is_exact),
        cmocka_unit_test(test_rotations_come_back),
        cmocka_unit_test(test_values_stay_in_range),
        cmocka_unit_test(test_same_seed_same_batch_any_threads),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_perspective_corners),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
