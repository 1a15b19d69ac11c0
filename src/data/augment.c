/* augment.c — random affine / perspective / elastic augmentation of uint8
 * images, one composed inverse mapping per sample; see augment.h.
 *
 * Where the random draws follow a library, they follow it exactly:
 *   - Keras ImageDataGenerator (seeds 000, 002): angle ~ U(-r, r); zoom
 *     factors zx, zy ~ U(1-z, 1+z) drawn independently and applied to the
 *     inverse map; shifts ~ U(-f, f) * side, not rounded.
 *   - torchvision RandomAffine (seed 003): angle ~ U(-r, r); translation
 *     round(U(-f*W, f*W)) pixels; one scale ~ U(1-z, 1+z) of the image.
 *   - torchvision RandomPerspective: with probability p, each corner moves
 *     inwards by randint(0, int(d * side/2) + 1) pixels per axis; the
 *     homography maps the moved corners back to the originals.
 * Differences on purpose: bilinear resampling everywhere (RandomAffine
 * defaults to nearest, Keras fills the border with the nearest pixel
 * rather than 0 — on MNIST's black border both amount to the same), and
 * a single resampling for the whole chain where torchvision resamples
 * once per transform.
 * Left out: flips (a flipped digit is another digit or none), colour and
 * contrast jitter, random erasing.
 */
#include "data/augment.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* Images up to this many pixels keep their elastic scratch on the stack. */
#define AUG_STACK_PIXELS 4096

/* ==== parsing ============================================================= */

static const struct {
    const char *name, *text;
} PRESETS[] = {
    /* Keras ImageDataGenerator(rotation_range=10, zoom_range=0.1,
     * width_shift_range=0.1, height_shift_range=0.1) */
    {"seed000", "rotate=10,zoomxy=0.1,shift=0.1"},
    {"seed002", "rotate=10,zoomxy=0.1,shift=0.1"},
    /* RandomAffine(10, translate=(0.1, 0.1), scale=(0.9, 1.1)) +
     * RandomPerspective(distortion_scale=0.1, p=0.25) */
    {"seed003", "rotate=10,shift=0.1,intshift=1,zoom=0.1,perspective=0.1:0.25"},
    {"mnist", "rotate=10,zoomxy=0.1,shift=0.1,elastic=8:3:0.5"},
    {"none", ""},
};

static int parse_float(const char *key, const char *s, float lo, float hi, float *out) {
    char *end;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || !(v >= lo && v <= hi))
        return dg_set_error("--augment: %s=%s: expected a number in %g..%g", key, s, lo, hi);
    *out = (float)v;
    return 0;
}

/* "A:B[:C]" into up to 3 floats; n_min..3 fields required. */
static int parse_tuple(const char *key, const char *s, int n_min, float *v, const float *lo,
                       const float *hi) {
    char buf[64];
    snprintf(buf, sizeof buf, "%s", s);
    char *save = NULL;
    int n = 0;
    for (char *tok = strtok_r(buf, ":", &save); tok; tok = strtok_r(NULL, ":", &save)) {
        if (n == 3) return dg_set_error("--augment: %s=%s: too many ':' fields", key, s);
        if (parse_float(key, tok, lo[n], hi[n], &v[n]) < 0) return -1;
        n++;
    }
    if (n < n_min) return dg_set_error("--augment: %s=%s: expected %d ':'-separated numbers", key, s, n_min);
    return n;
}

int augment_parse(const char *text, AugmentConfig *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->elastic_p = 1.0f;
    const char *src = text;
    for (size_t i = 0; i < sizeof PRESETS / sizeof *PRESETS; i++)
        if (strcmp(text, PRESETS[i].name) == 0) src = PRESETS[i].text;
    char buf[256];
    if (strlen(src) >= sizeof buf) return dg_set_error("--augment: description too long");
    snprintf(buf, sizeof buf, "%s", src);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq) return dg_set_error("--augment: '%s' is neither a preset (seed000, seed002, seed003, "
                                     "mnist, none) nor key=value", tok);
        *eq = '\0';
        const char *key = tok, *val = eq + 1;
        int r = 0;
        if (strcmp(key, "rotate") == 0) r = parse_float(key, val, 0, 180, &cfg->rotate);
        else if (strcmp(key, "shift") == 0) r = parse_float(key, val, 0, 0.5f, &cfg->shift);
        else if (strcmp(key, "zoom") == 0) r = parse_float(key, val, 0, 0.9f, &cfg->zoom);
        else if (strcmp(key, "zoomxy") == 0) r = parse_float(key, val, 0, 0.9f, &cfg->zoomxy);
        else if (strcmp(key, "shear") == 0) r = parse_float(key, val, 0, 60, &cfg->shear);
        else if (strcmp(key, "intshift") == 0) {
            float f = 0.0f;
            r = parse_float(key, val, 0, 1, &f);
            cfg->intshift = f != 0.0f;
        } else if (strcmp(key, "perspective") == 0) {
            float v[3] = {0, 1, 0};
            const float lo[3] = {0, 0, 0}, hi[3] = {1, 1, 1};
            r = parse_tuple(key, val, 1, v, lo, hi);
            cfg->persp_scale = v[0];
            cfg->persp_p = r == 1 ? 0.5f : v[1]; /* torchvision's default p */
        } else if (strcmp(key, "elastic") == 0) {
            float v[3] = {0, 0, 1};
            const float lo[3] = {0, 0.1f, 0}, hi[3] = {1000, 100, 1};
            r = parse_tuple(key, val, 2, v, lo, hi);
            cfg->elastic_alpha = v[0], cfg->elastic_sigma = v[1];
            cfg->elastic_p = r == 3 ? v[2] : 1.0f;
        } else
            return dg_set_error("--augment: unknown key '%s' (known: rotate, shift, intshift, zoom, "
                                "zoomxy, shear, perspective, elastic)", key);
        if (r < 0) return -1;
    }
    /* canonical form: every active setting, in a fixed order */
    size_t o = 0;
    cfg->text[0] = '\0';
#define AUG_ADD(...) o += (size_t)snprintf(cfg->text + o, o < sizeof cfg->text ? sizeof cfg->text - o : 0, __VA_ARGS__)
    if (cfg->rotate) AUG_ADD("%srotate=%g", o ? "," : "", cfg->rotate);
    if (cfg->shift) AUG_ADD("%sshift=%g", o ? "," : "", cfg->shift);
    if (cfg->shift && cfg->intshift) AUG_ADD(",intshift=1");
    if (cfg->zoom) AUG_ADD("%szoom=%g", o ? "," : "", cfg->zoom);
    if (cfg->zoomxy) AUG_ADD("%szoomxy=%g", o ? "," : "", cfg->zoomxy);
    if (cfg->shear) AUG_ADD("%sshear=%g", o ? "," : "", cfg->shear);
    if (cfg->persp_scale && cfg->persp_p) AUG_ADD("%sperspective=%g:%g", o ? "," : "", cfg->persp_scale, cfg->persp_p);
    if (cfg->elastic_alpha && cfg->elastic_p)
        AUG_ADD("%selastic=%g:%g:%g", o ? "," : "", cfg->elastic_alpha, cfg->elastic_sigma, cfg->elastic_p);
#undef AUG_ADD
    if (o == 0) snprintf(cfg->text, sizeof cfg->text, "none");
    return 0;
}

int augment_is_identity(const AugmentConfig *cfg) {
    return cfg->rotate == 0 && cfg->shift == 0 && cfg->zoom == 0 && cfg->zoomxy == 0 &&
           cfg->shear == 0 && (cfg->persp_scale == 0 || cfg->persp_p == 0) &&
           (cfg->elastic_alpha == 0 || cfg->elastic_p == 0);
}

/* ==== 3x3 matrices (row-major, acting on column vectors (x, y, 1)) ======== */

static void mat3_mul(double out[9], const double a[9], const double b[9]) {
    double r[9];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) r[i * 3 + j] = a[i * 3] * b[j] + a[i * 3 + 1] * b[3 + j] + a[i * 3 + 2] * b[6 + j];
    memcpy(out, r, sizeof r);
}

void augment_affine(double H[9], int rows, int cols, double angle, double shear, double sx,
                    double sy, double tx, double ty) {
    /* forward linear part A = R(angle) Sh(shear) Z(sx, sy); in image
     * coordinates (y down) a positive angle turns the digit clockwise */
    const double a = angle * M_PI / 180.0, s = tan(shear * M_PI / 180.0);
    const double R[4] = {cos(a), -sin(a), sin(a), cos(a)};
    /* Sh Z = [sx, s*sy; 0, sy] */
    const double SZ[4] = {sx, s * sy, 0, sy};
    const double A[4] = {R[0] * SZ[0] + R[1] * SZ[2], R[0] * SZ[1] + R[1] * SZ[3],
                         R[2] * SZ[0] + R[3] * SZ[2], R[2] * SZ[1] + R[3] * SZ[3]};
    const double det = A[0] * A[3] - A[1] * A[2];
    DG_ASSERT(fabs(det) > 1e-12);
    /* inverse: p_in = A^-1 (p_out - c - t) + c */
    const double Ai[4] = {A[3] / det, -A[1] / det, -A[2] / det, A[0] / det};
    const double cx = cols * 0.5, cy = rows * 0.5;
    const double ox = cx + tx, oy = cy + ty;
    H[0] = Ai[0], H[1] = Ai[1], H[2] = cx - (Ai[0] * ox + Ai[1] * oy);
    H[3] = Ai[2], H[4] = Ai[3], H[5] = cy - (Ai[2] * ox + Ai[3] * oy);
    H[6] = 0, H[7] = 0, H[8] = 1;
    /* keep the identity exact: cos/sin of 0 are exact, and so is this */
}

/* The homography taking each from[i] to to[i] (4 point pairs): solves the
 * 8x8 system of torchvision's _get_perspective_coeffs (exact for 4 points)
 * by Gaussian elimination with partial pivoting. */
static void homography_from_points(double H[9], const double from[4][2], const double to[4][2]) {
    double M[8][9];
    for (int i = 0; i < 4; i++) {
        const double x = from[i][0], y = from[i][1], u = to[i][0], v = to[i][1];
        const double r0[9] = {x, y, 1, 0, 0, 0, -u * x, -u * y, u};
        const double r1[9] = {0, 0, 0, x, y, 1, -v * x, -v * y, v};
        memcpy(M[2 * i], r0, sizeof r0);
        memcpy(M[2 * i + 1], r1, sizeof r1);
    }
    for (int c = 0; c < 8; c++) {
        int piv = c;
        for (int r = c + 1; r < 8; r++)
            if (fabs(M[r][c]) > fabs(M[piv][c])) piv = r;
        DG_ASSERT(fabs(M[piv][c]) > 1e-12);
        if (piv != c)
            for (int k = 0; k < 9; k++) {
                double t = M[c][k];
                M[c][k] = M[piv][k];
                M[piv][k] = t;
            }
        for (int r = 0; r < 8; r++) {
            if (r == c) continue;
            const double f = M[r][c] / M[c][c];
            for (int k = c; k < 9; k++) M[r][k] -= f * M[c][k];
        }
    }
    for (int i = 0; i < 8; i++) H[i] = M[i][8] / M[i][i];
    H[8] = 1;
}

/* ==== drawing one sample's warp =========================================== */

/* randint(lo, hi): uniform integer in [lo, hi) (torch.randint's bounds) */
static int randint(Rng *rng, int lo, int hi) { return lo + (int)rng_below(rng, (uint32_t)(hi - lo)); }

/* torchvision RandomPerspective.get_params for a rows x cols image: the
 * output->input homography mapping the moved corners to the originals. */
static void draw_perspective(double H[9], Rng *rng, int rows, int cols, float d) {
    const int hw = cols / 2, hh = rows / 2;
    const int dx = (int)(d * hw), dy = (int)(d * hh);
    const double start[4][2] = {{0, 0}, {cols - 1, 0}, {cols - 1, rows - 1}, {0, rows - 1}};
    double end[4][2];
    end[0][0] = randint(rng, 0, dx + 1), end[0][1] = randint(rng, 0, dy + 1);
    end[1][0] = randint(rng, cols - dx - 1, cols), end[1][1] = randint(rng, 0, dy + 1);
    end[2][0] = randint(rng, cols - dx - 1, cols), end[2][1] = randint(rng, rows - dy - 1, rows);
    end[3][0] = randint(rng, 0, dx + 1), end[3][1] = randint(rng, rows - dy - 1, rows);
    homography_from_points(H, end, start);
}

/* 1-D Gaussian blur of a (rows, cols) field along rows or columns, zero
 * outside (scipy.ndimage.gaussian_filter with mode="constant"). */
static void blur_axis(float *dst, const float *src, int rows, int cols, const float *k, int radius,
                      int along_cols) {
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            float s = 0.0f;
            for (int t = -radius; t <= radius; t++) {
                int ii = along_cols ? i : i + t, jj = along_cols ? j + t : j;
                if (ii >= 0 && ii < rows && jj >= 0 && jj < cols) s += k[t + radius] * src[ii * cols + jj];
            }
            dst[i * cols + j] = s;
        }
}

/* Simard's field: U(-1,1) per pixel, Gaussian of sigma, times alpha.
 * disp (2, rows, cols), work (rows*cols). */
static void draw_elastic(float *disp, float *work, Rng *rng, int rows, int cols, float alpha, float sigma) {
    enum { MAX_RADIUS = 64 };
    int radius = (int)ceilf(3.0f * sigma);
    if (radius > MAX_RADIUS) radius = MAX_RADIUS;
    float k[2 * MAX_RADIUS + 1], sum = 0.0f;
    for (int t = -radius; t <= radius; t++) sum += k[t + radius] = expf(-0.5f * t * t / (sigma * sigma));
    for (int t = 0; t <= 2 * radius; t++) k[t] /= sum;
    const size_t np = (size_t)rows * cols;
    for (int c = 0; c < 2; c++) {
        float *f = disp + c * np;
        for (size_t i = 0; i < np; i++) f[i] = rng_uniform_range(rng, -1.0f, 1.0f);
        blur_axis(work, f, rows, cols, k, radius, 1);
        blur_axis(f, work, rows, cols, k, radius, 0);
        for (size_t i = 0; i < np; i++) f[i] *= alpha;
    }
}

void augment_draw(const AugmentConfig *cfg, Rng *rng, int rows, int cols, double H[9],
                  float *disp, int *has_disp, float *work) {
    double angle = 0, shear = 0, sx = 1, sy = 1, tx = 0, ty = 0;
    if (cfg->rotate) angle = rng_uniform_range(rng, -cfg->rotate, cfg->rotate);
    if (cfg->shear) shear = rng_uniform_range(rng, -cfg->shear, cfg->shear);
    if (cfg->zoom) sx = sy = rng_uniform_range(rng, 1.0f - cfg->zoom, 1.0f + cfg->zoom);
    if (cfg->zoomxy) {
        /* Keras: the factors scale the inverse map, i.e. the image by 1/z */
        sx /= rng_uniform_range(rng, 1.0f - cfg->zoomxy, 1.0f + cfg->zoomxy);
        sy /= rng_uniform_range(rng, 1.0f - cfg->zoomxy, 1.0f + cfg->zoomxy);
    }
    if (cfg->shift) {
        tx = rng_uniform_range(rng, -cfg->shift, cfg->shift) * cols;
        ty = rng_uniform_range(rng, -cfg->shift, cfg->shift) * rows;
        if (cfg->intshift) tx = round(tx), ty = round(ty);
    }
    augment_affine(H, rows, cols, angle, shear, sx, sy, tx, ty);
    if (cfg->persp_scale > 0 && cfg->persp_p > 0 && rng_uniform(rng) < cfg->persp_p) {
        /* the perspective follows the affine, out = P(A(img)): an output
         * point goes back through P first, then through A, H = H_A . H_P */
        double P[9];
        draw_perspective(P, rng, rows, cols, cfg->persp_scale);
        mat3_mul(H, H, P);
    }
    *has_disp = 0;
    if (cfg->elastic_alpha > 0 && cfg->elastic_p > 0 && rng_uniform(rng) < cfg->elastic_p) {
        draw_elastic(disp, work, rng, rows, cols, cfg->elastic_alpha, cfg->elastic_sigma);
        *has_disp = 1;
    }
}

/* ==== resampling ========================================================== */

void augment_warp_u8(uint8_t *dst, const uint8_t *src, int rows, int cols, const double H[9],
                     const float *disp) {
    const size_t np = (size_t)rows * cols;
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            double qx = j + 0.5, qy = i + 0.5;
            if (disp) qx += disp[(size_t)i * cols + j], qy += disp[np + (size_t)i * cols + j];
            const double w = H[6] * qx + H[7] * qy + H[8];
            /* source position in pixel-index units (centre of pixel k is k) */
            const double u = (H[0] * qx + H[1] * qy + H[2]) / w - 0.5;
            const double v = (H[3] * qx + H[4] * qy + H[5]) / w - 0.5;
            double val = 0.0;
            if (u > -1.0 && u < cols && v > -1.0 && v < rows) {
                const double fu = floor(u), fv = floor(v);
                const int x0 = (int)fu, y0 = (int)fv;
                const double ax = u - fu, ay = v - fv;
                /* bilinear: (1-ax)(1-ay) p00 + ax(1-ay) p01 + (1-ax)ay p10 + ax ay p11, 0 outside */
                const int in_x0 = x0 >= 0, in_x1 = x0 + 1 < cols, in_y0 = y0 >= 0, in_y1 = y0 + 1 < rows;
#define PX(y, x) ((double)src[(size_t)(y) * cols + (x)])
                if (in_y0 && in_x0) val += (1 - ax) * (1 - ay) * PX(y0, x0);
                if (in_y0 && in_x1) val += ax * (1 - ay) * PX(y0, x0 + 1);
                if (in_y1 && in_x0) val += (1 - ax) * ay * PX(y0 + 1, x0);
                if (in_y1 && in_x1) val += ax * ay * PX(y0 + 1, x0 + 1);
#undef PX
            }
            const double rnd = floor(val + 0.5);
            dst[(size_t)i * cols + j] = (uint8_t)(rnd < 0 ? 0 : rnd > 255 ? 255 : rnd);
        }
}

/* ==== batches ============================================================= */

/* splitmix64 finaliser: a well-mixed 64-bit hash */
static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void augment_batch(const AugmentConfig *cfg, uint64_t seed, int epoch, const int *ids,
                   uint8_t *pixels, int n, int rows, int cols) {
    if (augment_is_identity(cfg)) return;
    Rng base;
    rng_seed(&base, seed, "augment");
    const uint64_t key = rng_next(&base);
    const size_t np = (size_t)rows * cols;
#ifdef _OPENMP
#pragma omp parallel
#endif
    {
        /* per-thread scratch: the source copy and the elastic field */
        float stack_buf[3 * AUG_STACK_PIXELS];
        uint8_t stack_src[AUG_STACK_PIXELS];
        float *buf = np <= AUG_STACK_PIXELS ? stack_buf : dg_xmalloc(3 * np * sizeof(float));
        uint8_t *src = np <= AUG_STACK_PIXELS ? stack_src : dg_xmalloc(np);
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int i = 0; i < n; i++) {
            Rng rng;
            /* one stream per (seed, epoch, image): independent of threads and batch */
            rng_seed(&rng, mix64(key ^ mix64(((uint64_t)(uint32_t)epoch << 32) ^ (uint32_t)ids[i])), "augment");
            double H[9];
            int has_disp;
            augment_draw(cfg, &rng, rows, cols, H, buf, &has_disp, buf + 2 * np);
            uint8_t *img = pixels + (size_t)i * np;
            memcpy(src, img, np);
            augment_warp_u8(img, src, rows, cols, H, has_disp ? buf : NULL);
        }
        if (np > AUG_STACK_PIXELS) {
            free(buf);
            free(src);
        }
    }
}

void augment_tta_warp(int k, int rows, int cols, double H[9]) {
    if (k == 0) {
        augment_affine(H, rows, cols, 0, 0, 1, 1, 0, 0);
        return;
    }
    Rng rng;
    rng_seed(&rng, (uint64_t)k, "tta");
    const double angle = rng_uniform_range(&rng, -8, 8);
    const double s = rng_uniform_range(&rng, 0.94f, 1.06f);
    const double tx = rng_uniform_range(&rng, -1.5f, 1.5f), ty = rng_uniform_range(&rng, -1.5f, 1.5f);
    augment_affine(H, rows, cols, angle, 0, s, s, tx, ty);
}
