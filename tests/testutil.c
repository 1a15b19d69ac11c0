/* testutil.c — see testutil.h. */
#include "testutil.h"

#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ops/isa.h"

float tu_max_rel_diff(const float *a, const float *b, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; i++) {
        float d = fabsf(a[i] - b[i]) / fmaxf(1.0f, fabsf(b[i]));
        if (!(d <= m)) m = d; /* NaN propagates as a failure */
    }
    return m;
}

void tu_fill_uniform(float *a, size_t n, Rng *rng) {
    for (size_t i = 0; i < n; i++) a[i] = rng_uniform_range(rng, -1.0f, 1.0f);
}

double tu_grad_check(tu_loss_fn f, void *ctx, float *param, const float *grad, size_t n,
                     double h, int max_checks) {
    double worst = 0;
    size_t step = n > (size_t)max_checks ? n / (size_t)max_checks : 1;
    for (size_t i = 0; i < n; i += step) {
        float keep = param[i];
        param[i] = (float)(keep + h);
        double fp = f(ctx);
        param[i] = (float)(keep - h);
        double fm = f(ctx);
        param[i] = keep;
        double fd = (fp - fm) / (2 * h);
        double an = grad[i];
        double err = fabs(fd - an) / fmax(1e-2, fabs(fd) + fabs(an));
        if (err > worst) worst = err;
    }
    return worst;
}

const char *tu_fixture(const char *rel) {
    static char buf[1024];
    const char *root = getenv("DIGITS_TEST_ROOT");
    snprintf(buf, sizeof buf, "%s/tests/%s", root ? root : ".", rel);
    return buf;
}

/* ---- the scratch folder ---------------------------------------------------- */

static char tmpdir[256];

static int tmpdir_make(const char *base) {
    snprintf(tmpdir, sizeof tmpdir, "%s/digits-test-XXXXXX", base);
    return mkdtemp(tmpdir) ? 0 : -1;
}

int tu_tmpdir_setup(void **state) {
    (void)state;
    return tmpdir_make("/tmp");
}

int tu_tmpdir_setup_shm(void **state) {
    (void)state;
    struct stat sb;
    const int shm = stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode) && access("/dev/shm", W_OK) == 0;
    return tmpdir_make(shm ? "/dev/shm" : "/tmp");
}

int tu_tmpdir_teardown(void **state) {
    (void)state;
    return tu_rm_rf(tmpdir);
}

const char *tu_tmpdir(void) { return tmpdir; }

const char *tu_tmp_path(const char *name) {
    static char ring[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(ring[k], sizeof ring[k], "%s/%s", tmpdir, name);
    return ring[k];
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

int tu_rm_rf(const char *path) {
    struct stat sb;
    if (lstat(path, &sb) != 0) return 0; /* nothing there */
    return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -1;
}

int tu_avx512_kernels(void) {
#ifdef __AVX512F__
    return 1;
#else
    return strcmp(ops_isa_name(), "avx512") == 0;
#endif
}
