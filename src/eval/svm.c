/* svm.c — PCA + RBF SVM baseline: training through libsvm, digits' own
 * batched prediction, temperature calibration, the model file; see svm.h. */
#include "eval/svm.h"

#include <cjson/cJSON.h>
#include <libsvm/svm.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/blas.h"
#include "core/check.h"
#include "core/util.h"
#include "model/model.h"

#define FORMAT_VERSION "1"
#define PIXEL_SCALE (1.0f / 255.0f)
#define PRED_CHUNK 256      /* images per kernel block: (256, l) floats */
#define AGREEMENT_CHECK 500

void pcasvm_config_defaults(PcaSvmConfig *c) {
    memset(c, 0, sizeof *c);
    c->components = 154;
    c->gamma = 0.06;
    c->C = 10;
    c->cache_mb = 500;
    c->eps = 1e-3;
}

void pcasvm_free(PcaSvm *s) {
    pca_free(&s->pca);
    free(s->sv);
    free(s->sv_norm2);
    free(s->coef);
    free(s->rho);
    free(s->train_config_json);
    free(s->metrics_json);
    memset(s, 0, sizeof *s);
}

static int n_pairs(int nc) { return nc * (nc - 1) / 2; }

/* Squared norms of the support vectors: the kernel is evaluated as
 * exp(-gamma (|x|^2 + |sv|^2 - 2 x.sv)). */
static void derive(PcaSvm *s) {
    const int k = s->pca.k;
    free(s->sv_norm2);
    s->sv_norm2 = dg_xmalloc((size_t)(s->l > 0 ? s->l : 1) * sizeof(float));
    for (int i = 0; i < s->l; i++) {
        double a = 0;
        for (int j = 0; j < k; j++) a += (double)s->sv[(size_t)i * k + j] * s->sv[(size_t)i * k + j];
        s->sv_norm2[i] = (float)a;
    }
}

/* ==== prediction ========================================================== */

/* scores (n, n_class): votes + 0.49 tanh(mean pairwise decision value), see svm.h. */
static void predict_scores(const PcaSvm *s, const uint8_t *pixels, int n, double *scores) {
    const int k = s->pca.k, l = s->l, nc = s->n_class, d = s->pca.d;
    const int chunk = n < PRED_CHUNK ? (n > 0 ? n : 1) : PRED_CHUNK;
    float *z = dg_xmalloc((size_t)chunk * k * sizeof(float));
    float *kv = dg_xmalloc((size_t)chunk * l * sizeof(float));
    int start[SVM_MAX_CLASSES + 1];
    start[0] = 0;
    for (int c = 0; c < nc; c++) start[c + 1] = start[c] + s->n_sv[c];
    for (int r0 = 0; r0 < n; r0 += chunk) {
        const int m = n - r0 < chunk ? n - r0 : chunk;
        pca_transform_pixels(&s->pca, pixels + (size_t)r0 * d, m, PIXEL_SCALE, k, z);
        /* (m, k) x (l, k)^T -> dot products with every support vector */
        dg_sgemm_parallel(CblasRowMajor, CblasNoTrans, CblasTrans, m, l, k, 1.0f, z, k, s->sv, k, 0.0f, kv, l);
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
        for (int i = 0; i < m; i++) {
            const float *zi = z + (size_t)i * k;
            float *ki = kv + (size_t)i * l;
            double zn = 0;
            for (int j = 0; j < k; j++) zn += (double)zi[j] * zi[j];
            for (int t = 0; t < l; t++) {
                float dist = (float)zn + s->sv_norm2[t] - 2.0f * ki[t];
                ki[t] = expf(-s->gamma * (dist > 0 ? dist : 0));
            }
            /* part[c][r] = sum over class c's vectors of coef[r] * K: the
             * pair (a, b) uses coef row b-1 on a's vectors, row a on b's */
            double part[SVM_MAX_CLASSES][SVM_MAX_CLASSES - 1];
            for (int c = 0; c < nc; c++)
                for (int r = 0; r < nc - 1; r++) {
                    const float *co = s->coef + (size_t)r * l;
                    double acc = 0;
                    for (int t = start[c]; t < start[c + 1]; t++) acc += (double)co[t] * ki[t];
                    part[c][r] = acc;
                }
            int votes[SVM_MAX_CLASSES] = {0};
            double margin[SVM_MAX_CLASSES] = {0};
            int p = 0;
            for (int a = 0; a < nc; a++)
                for (int b = a + 1; b < nc; b++, p++) {
                    double dec = part[a][b - 1] + part[b][a] - s->rho[p];
                    if (dec > 0) votes[a]++;
                    else votes[b]++; /* libsvm's rule: dec <= 0 votes for b */
                    margin[a] += dec;
                    margin[b] -= dec;
                }
            double *sc = scores + (size_t)(r0 + i) * nc;
            for (int c = 0; c < nc; c++) sc[c] = votes[c] + 0.49 * tanh(margin[c] / (nc - 1));
        }
    }
    free(z);
    free(kv);
}

/* probs/logits (10) from one row of scores at temperature t. */
static void scores_to_probs(const PcaSvm *s, const double *sc, double t, float *probs, float *logits) {
    double mx = -INFINITY, sum = 0;
    for (int c = 0; c < s->n_class; c++) mx = t * sc[c] > mx ? t * sc[c] : mx;
    for (int c = 0; c < s->n_class; c++) sum += exp(t * sc[c] - mx);
    for (int q = 0; q < 10; q++) {
        probs[q] = 0;
        if (logits) logits[q] = -1e30f; /* log 0 for a digit the SVM never saw */
    }
    for (int c = 0; c < s->n_class; c++) {
        double lp = t * sc[c] - mx - log(sum);
        probs[s->labels[c]] = (float)exp(lp);
        if (logits) logits[s->labels[c]] = (float)lp;
    }
}

void pcasvm_predict(const PcaSvm *s, const uint8_t *pixels, int n, float *probs, float *logits) {
    double *sc = dg_xmalloc((size_t)(n > 0 ? n : 1) * s->n_class * sizeof(double));
    predict_scores(s, pixels, n, sc);
    for (int i = 0; i < n; i++)
        scores_to_probs(s, sc + (size_t)i * s->n_class, s->temperature, probs + (size_t)i * 10,
                        logits ? logits + (size_t)i * 10 : NULL);
    free(sc);
}

/* Mean cross-entropy of softmax(t * score) over the items whose digit the SVM knows. */
static double nll_at(const PcaSvm *s, const double *sc, const int *cls, int n, double t) {
    double total = 0;
    int used = 0;
    for (int i = 0; i < n; i++) {
        if (cls[i] < 0) continue;
        const double *r = sc + (size_t)i * s->n_class;
        double mx = -INFINITY, sum = 0;
        for (int c = 0; c < s->n_class; c++) mx = t * r[c] > mx ? t * r[c] : mx;
        for (int c = 0; c < s->n_class; c++) sum += exp(t * r[c] - mx);
        total += mx + log(sum) - t * r[cls[i]];
        used++;
    }
    return used ? total / used : 0;
}

double pcasvm_calibrate(PcaSvm *s, const Dataset *val) {
    DG_ASSERT(val->labels && val->n > 0);
    double *sc = dg_xmalloc((size_t)val->n * s->n_class * sizeof(double));
    int *cls = dg_xmalloc((size_t)val->n * sizeof(int));
    predict_scores(s, val->pixels, val->n, sc);
    long correct = 0;
    for (int i = 0; i < val->n; i++) {
        cls[i] = -1;
        for (int c = 0; c < s->n_class; c++)
            if (s->labels[c] == val->labels[i]) cls[i] = c;
        const double *r = sc + (size_t)i * s->n_class;
        int best = 0;
        for (int c = 1; c < s->n_class; c++)
            if (r[c] > r[best]) best = c;
        correct += best == cls[i];
    }
    /* NLL(t) = mean(logsumexp(t s) - t s_true) is convex in t: golden-section
     * search on log t over [0.01, 100] */
    const double g = (sqrt(5.0) - 1) / 2;
    double lo = log(0.01), hi = log(100.0);
    double x1 = hi - g * (hi - lo), x2 = lo + g * (hi - lo);
    double f1 = nll_at(s, sc, cls, val->n, exp(x1)), f2 = nll_at(s, sc, cls, val->n, exp(x2));
    for (int it = 0; it < 60; it++) {
        if (f1 < f2) {
            hi = x2;
            x2 = x1;
            f2 = f1;
            x1 = hi - g * (hi - lo);
            f1 = nll_at(s, sc, cls, val->n, exp(x1));
        } else {
            lo = x1;
            x1 = x2;
            f1 = f2;
            x2 = lo + g * (hi - lo);
            f2 = nll_at(s, sc, cls, val->n, exp(x2));
        }
    }
    s->temperature = (float)exp((lo + hi) / 2);
    s->calibrated = 1;
    free(sc);
    free(cls);
    return (double)correct / val->n;
}

/* ==== training ============================================================= */

static void print_stderr(const char *s) { fputs(s, stderr); }
static void print_nothing(const char *s) { (void)s; }

int pcasvm_train(PcaSvm *s, const Dataset *train, const PcaSvmConfig *cfg, PcaSvmStats *stats) {
    DG_ASSERT(train->labels && train->n > 0);
    memset(s, 0, sizeof *s);
    memset(stats, 0, sizeof *stats);
    const int n = train->n, d = train->rows * train->cols, k = cfg->components;
    if (k < 1 || k > d) return dg_set_error("svm: %d PCA components for %d pixels", k, d);
    if (n < 2) return dg_set_error("svm: need at least 2 training images, have %d", n);
    int seen[10] = {0}, classes = 0;
    for (int i = 0; i < n; i++) classes += !seen[train->labels[i]]++;
    if (classes < 2) return dg_set_error("svm: the training set has only one class");

    double t0 = now_seconds();
    if (pca_fit_pixels(&s->pca, train->pixels, n, d, PIXEL_SCALE, k) < 0) return -1;
    stats->explained = pca_explained(&s->pca, k);
    float *z = dg_xmalloc((size_t)n * k * sizeof(float));
    pca_transform_pixels(&s->pca, train->pixels, n, PIXEL_SCALE, k, z);
    stats->pca_seconds = now_seconds() - t0;

    /* libsvm's sparse rows: every coordinate (PCA output is dense), then the -1 terminator */
    struct svm_node *nodes = dg_xmalloc((size_t)n * (k + 1) * sizeof *nodes);
    struct svm_node **rows = dg_xmalloc((size_t)n * sizeof *rows);
    double *y = dg_xmalloc((size_t)n * sizeof(double));
    for (int i = 0; i < n; i++) {
        struct svm_node *r = nodes + (size_t)i * (k + 1);
        for (int j = 0; j < k; j++) {
            r[j].index = j + 1;
            r[j].value = z[(size_t)i * k + j];
        }
        r[k].index = -1;
        r[k].value = 0;
        rows[i] = r;
        y[i] = train->labels[i];
    }
    struct svm_problem prob = {.l = n, .y = y, .x = rows};
    struct svm_parameter param;
    memset(&param, 0, sizeof param);
    param.svm_type = C_SVC;
    param.kernel_type = RBF;
    param.gamma = cfg->gamma;
    param.C = cfg->C;
    param.cache_size = cfg->cache_mb;
    param.eps = cfg->eps;
    param.shrinking = 1;
    param.probability = 0; /* see svm.h: probabilities by a calibrated softmax instead */
    const char *bad = svm_check_parameter(&prob, &param);
    if (bad) {
        free(nodes);
        free(rows);
        free(y);
        free(z);
        pcasvm_free(s);
        return dg_set_error("svm: %s", bad);
    }
    svm_set_print_string_function(cfg->verbose ? print_stderr : print_nothing);
    t0 = now_seconds();
    struct svm_model *model = svm_train(&prob, &param);
    stats->svm_seconds = now_seconds() - t0;

    /* copy out libsvm's model; its SV rows point into our nodes */
    s->width = train->cols;
    s->height = train->rows;
    s->gamma = (float)cfg->gamma;
    s->C = (float)cfg->C;
    s->temperature = 1.0f;
    s->n_class = model->nr_class;
    s->l = model->l;
    DG_ASSERT(s->n_class >= 2 && s->n_class <= SVM_MAX_CLASSES);
    for (int c = 0; c < s->n_class; c++) {
        s->labels[c] = model->label[c];
        s->n_sv[c] = model->nSV[c];
    }
    s->sv = dg_xmalloc((size_t)s->l * k * sizeof(float));
    s->coef = dg_xmalloc((size_t)(s->n_class - 1) * s->l * sizeof(float));
    s->rho = dg_xmalloc((size_t)n_pairs(s->n_class) * sizeof(float));
    for (int i = 0; i < s->l; i++) {
        const struct svm_node *r = model->SV[i];
        for (int j = 0; j < k; j++) {
            DG_ASSERT(r[j].index == j + 1);
            s->sv[(size_t)i * k + j] = (float)r[j].value;
        }
    }
    for (int c = 0; c < s->n_class - 1; c++)
        for (int i = 0; i < s->l; i++) s->coef[(size_t)c * s->l + i] = (float)model->sv_coef[c][i];
    for (int p = 0; p < n_pairs(s->n_class); p++) s->rho[p] = (float)model->rho[p];
    derive(s);

    /* our decision functions must agree with libsvm's (up to ties and float rounding) */
    int check = n < AGREEMENT_CHECK ? n : AGREEMENT_CHECK, agree = 0;
    float *probs = dg_xmalloc((size_t)check * 10 * sizeof(float));
    pcasvm_predict(s, train->pixels, check, probs, NULL);
    for (int i = 0; i < check; i++) {
        int best = 0;
        for (int q = 1; q < 10; q++)
            if (probs[(size_t)i * 10 + q] > probs[(size_t)i * 10 + best]) best = q;
        agree += best == (int)svm_predict(model, rows[i]);
    }
    stats->agreement = (double)agree / check;
    free(probs);

    svm_free_and_destroy_model(&model);
    free(nodes);
    free(rows);
    free(y);
    free(z);
    return 0;
}

/* ==== model file =========================================================== */

static void meta_num(cJSON *meta, const char *key, double v) {
    char buf[40];
    snprintf(buf, sizeof buf, "%.9g", v);
    cJSON_AddStringToObject(meta, key, buf);
}

int pcasvm_save(const PcaSvm *s, const char *path) {
    const int k = s->pca.k, d = s->pca.d, nc = s->n_class;
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddStringToObject(meta, "digits.format", FORMAT_VERSION);
    cJSON_AddStringToObject(meta, "digits.kind", "svm");
    cJSON_AddStringToObject(meta, "digits.name", "svm");
    meta_num(meta, "digits.svm.width", s->width);
    meta_num(meta, "digits.svm.height", s->height);
    meta_num(meta, "digits.svm.components", k);
    meta_num(meta, "digits.svm.classes", nc);
    meta_num(meta, "digits.svm.n_sv_total", s->l);
    meta_num(meta, "digits.svm.gamma", s->gamma);
    meta_num(meta, "digits.svm.C", s->C);
    meta_num(meta, "digits.svm.temperature", s->temperature);
    cJSON_AddStringToObject(meta, "digits.svm.calibrated", s->calibrated ? "yes" : "no");
    if (s->train_config_json) cJSON_AddStringToObject(meta, "digits.train_config", s->train_config_json);
    if (s->metrics_json) cJSON_AddStringToObject(meta, "digits.metrics", s->metrics_json);
    char *meta_s = cJSON_PrintUnformatted(meta);
    cJSON_Delete(meta);
    DG_ASSERT(meta_s);

    float labels[SVM_MAX_CLASSES], nsv[SVM_MAX_CLASSES];
    for (int c = 0; c < nc; c++) {
        labels[c] = (float)s->labels[c];
        nsv[c] = (float)s->n_sv[c];
    }
    StTensor t[] = {
        {"svm.pca_mean", 1, {d}, s->pca.mean},
        {"svm.pca_components", 2, {k, d}, s->pca.components},
        {"svm.labels", 1, {nc}, labels},
        {"svm.n_sv", 1, {nc}, nsv},
        {"svm.sv", 2, {s->l, k}, s->sv},
        {"svm.sv_coef", 2, {nc - 1, s->l}, s->coef},
        {"svm.rho", 1, {n_pairs(nc)}, s->rho},
    };
    int rc = safetensors_write(path, meta_s, t, (int)(sizeof t / sizeof *t));
    free(meta_s);
    return rc;
}

/* Metadata number in [lo, hi]; integral when `integer`. */
static int meta_get(const SafeTensors *f, const char *path, const char *key, double lo, double hi, int integer,
                    double *out) {
    const char *v = safetensors_meta(f, key);
    if (!v) return dg_set_error("%s: SVM model file lacks metadata %s", path, key);
    char *end;
    double x = strtod(v, &end);
    if (*v == '\0' || *end != '\0' || !(x >= lo && x <= hi) || (integer && x != floor(x)))
        return dg_set_error("%s: metadata %s='%.40s' is not %s in %g..%g", path, key, v,
                            integer ? "an integer" : "a number", lo, hi);
    *out = x;
    return 0;
}

static int all_finite(const float *a, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(a[i])) return 0;
    return 1;
}

int pcasvm_load(PcaSvm *s, const char *path) {
    memset(s, 0, sizeof *s);
    SafeTensors *f = safetensors_open(path);
    if (!f) return -1;
    const char *version = safetensors_meta(f, "digits.format");
    const char *kind = safetensors_meta(f, "digits.kind");
    double w = 0, h = 0, k = 0, nc = 0, l = 0, gamma = 0, C = 0, temp = 0;
    float *labels = NULL, *nsv = NULL;
    if (!kind || strcmp(kind, "svm") != 0) {
        dg_set_error("%s: not an SVM model file (digits.kind is not \"svm\")", path);
        goto fail;
    }
    if (!version || strcmp(version, FORMAT_VERSION) != 0) {
        dg_set_error("%s: model file format %s, this digits reads format %s", path, version ? version : "(none)",
                     FORMAT_VERSION);
        goto fail;
    }
    if (meta_get(f, path, "digits.svm.width", 1, 4096, 1, &w) < 0 ||
        meta_get(f, path, "digits.svm.height", 1, 4096, 1, &h) < 0 ||
        meta_get(f, path, "digits.svm.components", 1, w * h, 1, &k) < 0 ||
        meta_get(f, path, "digits.svm.classes", 2, SVM_MAX_CLASSES, 1, &nc) < 0 ||
        meta_get(f, path, "digits.svm.n_sv_total", 1, 1e8, 1, &l) < 0 ||
        meta_get(f, path, "digits.svm.gamma", 1e-12, 1e12, 0, &gamma) < 0 ||
        meta_get(f, path, "digits.svm.C", 0, 1e12, 0, &C) < 0 ||
        meta_get(f, path, "digits.svm.temperature", 1e-6, 1e6, 0, &temp) < 0)
        goto fail;
    s->width = (int)w;
    s->height = (int)h;
    s->n_class = (int)nc;
    s->l = (int)l;
    s->gamma = (float)gamma;
    s->C = (float)C;
    s->temperature = (float)temp;
    const char *cal = safetensors_meta(f, "digits.svm.calibrated");
    s->calibrated = cal && strcmp(cal, "yes") == 0;
    const int D = s->width * s->height, K = (int)k, NC = s->n_class, L = s->l;
    s->pca.d = D;
    s->pca.k = K;
    /* the shapes follow from the metadata; every tensor must match them exactly */
    int sh_d[] = {D}, sh_kd[] = {K, D}, sh_nc[] = {NC}, sh_lk[] = {L, K}, sh_cl[] = {NC - 1, L},
        sh_p[] = {n_pairs(NC)};
    if (safetensors_get_f32(f, "svm.labels", 1, sh_nc, &labels) < 0 || safetensors_get_f32(f, "svm.n_sv", 1, sh_nc, &nsv) < 0)
        goto fail;
    long total = 0;
    int used[10] = {0};
    for (int c = 0; c < NC; c++) {
        if (!(labels[c] >= 0 && labels[c] <= 9 && labels[c] == floorf(labels[c])) || used[(int)labels[c]]++) {
            dg_set_error("%s: tensor svm.labels: entry %d is not a distinct digit 0..9", path, c);
            goto fail;
        }
        if (!(nsv[c] >= 0 && nsv[c] <= L && nsv[c] == floorf(nsv[c]))) {
            dg_set_error("%s: tensor svm.n_sv: entry %d is not a count 0..%d", path, c, L);
            goto fail;
        }
        s->labels[c] = (int)labels[c];
        s->n_sv[c] = (int)nsv[c];
        total += s->n_sv[c];
    }
    if (total != L) {
        dg_set_error("%s: tensor svm.n_sv sums to %ld, metadata digits.svm.n_sv_total says %d", path, total, L);
        goto fail;
    }
    if (safetensors_get_f32(f, "svm.pca_mean", 1, sh_d, &s->pca.mean) < 0 ||
        safetensors_get_f32(f, "svm.pca_components", 2, sh_kd, &s->pca.components) < 0 ||
        safetensors_get_f32(f, "svm.sv", 2, sh_lk, &s->sv) < 0 ||
        safetensors_get_f32(f, "svm.sv_coef", 2, sh_cl, &s->coef) < 0 ||
        safetensors_get_f32(f, "svm.rho", 1, sh_p, &s->rho) < 0)
        goto fail;
    static const char *const names[] = {"svm.pca_mean", "svm.pca_components", "svm.labels", "svm.n_sv",
                                        "svm.sv",       "svm.sv_coef",        "svm.rho"};
    if (safetensors_only(f, names, 7) < 0) goto fail;
    const struct {
        const char *name;
        const float *a;
        size_t n;
    } arrays[] = {{"svm.pca_mean", s->pca.mean, (size_t)D},
                  {"svm.pca_components", s->pca.components, (size_t)K * D},
                  {"svm.sv", s->sv, (size_t)L * K},
                  {"svm.sv_coef", s->coef, (size_t)(NC - 1) * L},
                  {"svm.rho", s->rho, (size_t)n_pairs(NC)}};
    for (size_t i = 0; i < sizeof arrays / sizeof *arrays; i++)
        if (!all_finite(arrays[i].a, arrays[i].n)) {
            dg_set_error("%s: tensor %s holds NaN or infinite values", path, arrays[i].name);
            goto fail;
        }
    const char *cfg = safetensors_meta(f, "digits.train_config");
    const char *metrics = safetensors_meta(f, "digits.metrics");
    if (cfg) s->train_config_json = strdup(cfg);
    if (metrics) s->metrics_json = strdup(metrics);
    derive(s);
    free(labels);
    free(nsv);
    safetensors_close(f);
    return 0;
fail:
    free(labels);
    free(nsv);
    safetensors_close(f);
    pcasvm_free(s);
    return -1;
}
