/* cmd_train_svm.c — `digits train --model svm`: the classical baseline
 * (seed 002): PCA of the [0,1] pixels to 154 components, an RBF SVM by
 * libsvm, the softmax temperature fitted on the validation split, test
 * accuracy, one model file that eval/predict/submit/serve load like any
 * other (src/eval/svm.h). */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "core/util.h"
#include "digits_internal.h"
#include "eval/svm.h"

static const char *CMD = "train";

static void help(void) {
    printf("usage: digits train --model svm [flags]\n\n"
           "PCA of the pixels scaled to [0,1], then a one-vs-one RBF SVM (libsvm).\n\n"
           "  --data DIR|train.csv  MNIST IDX folder or Kaggle train.csv       [data/mnist]\n"
           "  --test DIR|FILE|none  evaluate after training (IDX folder: its t10k split) [same as --data when a folder]\n"
           "  --components K        PCA components (154 keep 95%% of MNIST's variance) [154]\n"
           "  --gamma X             RBF kernel exp(-X |a-b|^2) on the PCA coordinates [0.06]\n"
           "  --C X                 soft-margin penalty                        [10]\n"
           "  --val-split X         stratified held-out fraction; the probability\n"
           "                        temperature is fitted on it (0: uncalibrated) [0.1]\n"
           "  --limit N             use only the first N training images       [all]\n"
           "  --cache-mb N          libsvm kernel cache                        [500]\n"
           "  --seed N              seed of the validation split               [42]\n"
           "  --threads N           worker threads for PCA and prediction; libsvm\n"
           "                        itself is single-threaded (0 = all cores)  [0]\n"
           "  --out FILE            model file (safetensors); an existing file needs --overwrite\n"
           "                        [runs/svm.safetensors, else runs/svm-2.safetensors, ...]\n"
           "  --overwrite           let --out replace an existing file\n"
           "  --verbose             libsvm's progress output\n"
           "  --quiet               only errors\n\n"
           "Examples:\n"
           "  digits train --model svm\n"
           "  digits train --model svm --data train.csv --limit 20000 --out runs/svm.safetensors\n");
}

/* Accuracy and mean cross-entropy of the model's probabilities on ds. */
static double evaluate(const PcaSvm *s, const Dataset *ds, double *loss) {
    float *p = dg_xmalloc((size_t)ds->n * 10 * sizeof(float));
    pcasvm_predict(s, ds->pixels, ds->n, p, NULL);
    long correct = 0;
    double nll = 0;
    for (int i = 0; i < ds->n; i++) {
        const float *row = p + (size_t)i * 10;
        int best = 0;
        for (int q = 1; q < 10; q++)
            if (row[q] > row[best]) best = q;
        correct += best == ds->labels[i];
        float pt = row[ds->labels[i]];
        nll += -log(pt > 1e-12f ? pt : 1e-12f);
    }
    free(p);
    *loss = ds->n ? nll / ds->n : 0;
    return ds->n ? (double)correct / ds->n : 0;
}

/* The command line. */
typedef struct {
    PcaSvmConfig cfg;
    const char *data, *test, *out;
    float val_split;
    int limit, threads, quiet, overwrite;
    uint64_t seed;
} SvmArgs;

/* Parses the flags into a (exits on a usage error); returns 1 after --help. */
static int parse_args(int argc, char **argv, SvmArgs *a) {
    pcasvm_config_defaults(&a->cfg);
    a->data = "data/mnist", a->test = NULL, a->out = NULL;
    a->val_split = 0.1f;
    a->limit = a->threads = a->quiet = a->overwrite = 0;
    a->seed = 42;
    enum { O_MODEL = 256, O_DATA, O_TEST, O_COMP, O_GAMMA, O_C, O_VAL, O_LIMIT, O_CACHE, O_SEED, O_THREADS,
           O_OUT, O_VERBOSE, O_QUIET, O_HELP, O_OVERWRITE };
    static const struct option opts[] = {
        {"model", 1, 0, O_MODEL}, {"data", 1, 0, O_DATA}, {"test", 1, 0, O_TEST},
        {"components", 1, 0, O_COMP}, {"gamma", 1, 0, O_GAMMA}, {"C", 1, 0, O_C},
        {"val-split", 1, 0, O_VAL}, {"limit", 1, 0, O_LIMIT}, {"cache-mb", 1, 0, O_CACHE},
        {"seed", 1, 0, O_SEED}, {"threads", 1, 0, O_THREADS}, {"out", 1, 0, O_OUT},
        {"verbose", 0, 0, O_VERBOSE}, {"quiet", 0, 0, O_QUIET}, {"help", 0, 0, O_HELP},
        {"overwrite", 0, 0, O_OVERWRITE}, {0, 0, 0, 0}};
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_MODEL:
            if (strcmp(optarg, "svm") != 0) cli_usage_error(CMD, "--model: '%s' reached the SVM trainer", optarg);
            break;
        case O_DATA: a->data = optarg; break;
        case O_TEST: a->test = optarg; break;
        case O_COMP: a->cfg.components = cli_int(CMD, "--components", optarg, 1, 4096); break;
        case O_GAMMA: a->cfg.gamma = cli_float(CMD, "--gamma", optarg, 1e-9f, 1e6f); break;
        case O_C: a->cfg.C = cli_float(CMD, "--C", optarg, 1e-6f, 1e9f); break;
        case O_VAL: a->val_split = cli_float(CMD, "--val-split", optarg, 0, 0.9f); break;
        case O_LIMIT: a->limit = cli_int(CMD, "--limit", optarg, 2, 100000000); break;
        case O_CACHE: a->cfg.cache_mb = cli_int(CMD, "--cache-mb", optarg, 1, 1 << 20); break;
        case O_SEED: a->seed = cli_u64(CMD, "--seed", optarg); break;
        case O_THREADS: a->threads = cli_int(CMD, "--threads", optarg, 0, 1024); break;
        case O_OUT: a->out = optarg; break;
        case O_VERBOSE: a->cfg.verbose = 1; break;
        case O_QUIET: a->quiet = 1; break;
        case O_OVERWRITE: a->overwrite = 1; break;
        case O_HELP: help(); return 1;
        default: cli_usage_error(CMD, "unknown or incomplete flag '%s' (for the SVM baseline)", argv[optind - 1]);
        }
    }
    if (optind < argc) cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    return 0;
}

/* The data: all training images (for the hold-out record), their
 * stratified split, and the test set (none: *test_path NULL). Exits with
 * the reason on bad data. */
static void load_data(const SvmArgs *a, Dataset *all, Dataset *train, Dataset *val, Dataset *testset,
                      const char **test_path) {
    if (dataset_load(a->data, "train", all) < 0) cli_fail(CMD, "%s", dg_errmsg());
    if (!all->labels) cli_fail(CMD, "%s: has no labels (a Kaggle test.csv?); training needs train.csv", a->data);
    if (a->cfg.components > all->rows * all->cols)
        cli_usage_error(CMD, "--components: %d is more than the %d pixels of an image", a->cfg.components,
                        all->rows * all->cols);
    if (a->limit && a->limit < all->n) all->n = a->limit;
    int *tr_idx, *va_idx, n_tr, n_va;
    split_stratified(all->labels, all->n, a->val_split, a->seed, &tr_idx, &n_tr, &va_idx, &n_va);
    dataset_subset(train, all, tr_idx, n_tr);
    dataset_subset(val, all, va_idx, n_va);
    free(tr_idx);
    free(va_idx);
    if (train->n < 2) cli_fail(CMD, "%s: fewer than 2 training images left after the validation split", a->data);

    const char *path = a->test ? a->test : (is_dir(a->data) ? a->data : NULL);
    if (path && strcmp(path, "none") == 0) path = NULL;
    if (path && dataset_load(path, "test", testset) < 0) cli_fail(CMD, "%s", dg_errmsg());
    if (path && !testset->labels) cli_fail(CMD, "%s: test set has no labels", path);
    if (testset->n && (testset->rows != all->rows || testset->cols != all->cols))
        cli_fail(CMD, "%s: test images are %dx%d, training images %dx%d", path, testset->rows, testset->cols,
                 all->rows, all->cols);
    *test_path = path;
}

static void print_training(const PcaSvm *s, const PcaSvmConfig *cfg, const PcaSvmStats *st, int n_train,
                           int n_val, double val_acc, double seconds) {
    printf("PCA: %d components explain %.2f%% of the variance (%.1fs)\n", cfg->components, 100 * st->explained,
           st->pca_seconds);
    printf("SVM: %d support vectors, %d classes (%.1fs); digits' decision functions agree with libsvm's on "
           "%.2f%% of %d training images\n",
           s->l, s->n_class, st->svm_seconds, 100 * st->agreement, n_train < 500 ? n_train : 500);
    if (n_val) printf("validation accuracy %.4f; probability temperature %.3f\n", val_acc, s->temperature);
    else printf("no validation split: probabilities uncalibrated (temperature 1)\n");
    printf("trained in %.1fs\n", seconds);
}

/* The model file's training settings: what `digits info` shows and the
 * hold-out record `digits eval` checks against. */
static char *settings_json(const SvmArgs *a, const Dataset *all, int n_train, int n_val) {
    cJSON *tc = cJSON_CreateObject();
    cJSON_AddStringToObject(tc, "model", "svm");
    cJSON_AddNumberToObject(tc, "components", a->cfg.components);
    cJSON_AddNumberToObject(tc, "gamma", a->cfg.gamma);
    cJSON_AddNumberToObject(tc, "C", a->cfg.C);
    cJSON_AddStringToObject(tc, "kernel", "rbf");
    cJSON_AddStringToObject(tc, "pixels", "scaled to [0,1]");
    cJSON_AddNumberToObject(tc, "cache_mb", a->cfg.cache_mb);
    cJSON_AddNumberToObject(tc, "eps", a->cfg.eps);
    cJSON_AddNumberToObject(tc, "val_split", a->val_split);
    cJSON_AddNumberToObject(tc, "seed", (double)a->seed);
    cJSON_AddNumberToObject(tc, "n_train", n_train);
    cJSON_AddNumberToObject(tc, "n_val", n_val);
    char *rec = holdout_record_json(holdout_fingerprint(all, all->n), all->n, a->val_split, a->seed,
                                    a->data); /* eval/holdout.h */
    cJSON_AddItemToObject(tc, "holdout", cJSON_Parse(rec));
    free(rec);
    char *json = cJSON_PrintUnformatted(tc);
    cJSON_Delete(tc);
    return json;
}

/* The model file's metrics, the test set's among them (evaluated here). */
static char *metrics_json(const PcaSvm *s, const PcaSvmStats *st, double seconds, int n_val, double val_acc,
                          const Dataset *testset, const char *test_path, int quiet) {
    cJSON *mj = cJSON_CreateObject();
    cJSON_AddNumberToObject(mj, "train_seconds", round(seconds * 100) / 100);
    cJSON_AddNumberToObject(mj, "pca_explained", st->explained);
    cJSON_AddNumberToObject(mj, "n_sv", s->l);
    cJSON_AddNumberToObject(mj, "temperature", s->temperature);
    if (n_val) cJSON_AddNumberToObject(mj, "val_accuracy", val_acc);
    if (testset->n) {
        double loss, acc = evaluate(s, testset, &loss);
        if (!quiet) printf("test accuracy %.4f (loss %.4f) on %d images from %s\n", acc, loss, testset->n, test_path);
        cJSON_AddNumberToObject(mj, "test_accuracy", acc);
        cJSON_AddNumberToObject(mj, "test_loss", loss);
    }
    char *json = cJSON_PrintUnformatted(mj);
    cJSON_Delete(mj);
    return json;
}

int cmd_train_svm(int argc, char **argv) {
    SvmArgs a;
    if (parse_args(argc, argv, &a)) return 0;
    cli_set_threads(a.threads);
    char out_buf[4200];
    const char *out = cli_train_out(a.out, a.overwrite, "runs", "svm", out_buf, sizeof out_buf);
    Dataset all = {0}, train = {0}, val = {0}, testset = {0};
    const char *test_path;
    load_data(&a, &all, &train, &val, &testset, &test_path);
    if (!a.quiet) {
        printf("svm: PCA-%d + RBF SVM (gamma %g, C %g) on %d train / %d validation images from %s\n",
               a.cfg.components, a.cfg.gamma, a.cfg.C, train.n, val.n, a.data);
        fflush(stdout);
    }
    double t0 = now_seconds();
    PcaSvm s;
    PcaSvmStats st;
    if (pcasvm_train(&s, &train, &a.cfg, &st) < 0) cli_fail(CMD, "%s", dg_errmsg());
    double val_acc = val.n ? pcasvm_calibrate(&s, &val) : NAN;
    double seconds = now_seconds() - t0;
    if (!a.quiet) print_training(&s, &a.cfg, &st, train.n, val.n, val_acc, seconds);

    s.train_config_json = settings_json(&a, &all, train.n, val.n);
    s.metrics_json = metrics_json(&s, &st, seconds, val.n, val_acc, &testset, test_path, a.quiet);
    if (pcasvm_save(&s, out) < 0) cli_fail(CMD, "%s", dg_errmsg());
    if (!a.quiet) printf("saved %s\n", out);
    pcasvm_free(&s);
    dataset_free(&all);
    dataset_free(&train);
    dataset_free(&val);
    dataset_free(&testset);
    return 0;
}
