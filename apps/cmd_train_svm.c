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

int cmd_train_svm(int argc, char **argv) {
    PcaSvmConfig cfg;
    pcasvm_config_defaults(&cfg);
    const char *data = "data/mnist", *test = NULL, *out = NULL;
    float val_split = 0.1f;
    int limit = 0, threads = 0, quiet = 0, overwrite = 0;
    uint64_t seed = 42;
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
        case O_DATA: data = optarg; break;
        case O_TEST: test = optarg; break;
        case O_COMP: cfg.components = cli_int(CMD, "--components", optarg, 1, 4096); break;
        case O_GAMMA: cfg.gamma = cli_float(CMD, "--gamma", optarg, 1e-9f, 1e6f); break;
        case O_C: cfg.C = cli_float(CMD, "--C", optarg, 1e-6f, 1e9f); break;
        case O_VAL: val_split = cli_float(CMD, "--val-split", optarg, 0, 0.9f); break;
        case O_LIMIT: limit = cli_int(CMD, "--limit", optarg, 2, 100000000); break;
        case O_CACHE: cfg.cache_mb = cli_int(CMD, "--cache-mb", optarg, 1, 1 << 20); break;
        case O_SEED: seed = cli_u64(CMD, "--seed", optarg); break;
        case O_THREADS: threads = cli_int(CMD, "--threads", optarg, 0, 1024); break;
        case O_OUT: out = optarg; break;
        case O_VERBOSE: cfg.verbose = 1; break;
        case O_QUIET: quiet = 1; break;
        case O_OVERWRITE: overwrite = 1; break;
        case O_HELP: help(); return 0;
        default: cli_usage_error(CMD, "unknown or incomplete flag '%s' (for the SVM baseline)", argv[optind - 1]);
        }
    }
    if (optind < argc) cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    cli_set_threads(threads);
    char out_buf[4200];
    out = cli_train_out(out, overwrite, "runs", "svm", out_buf, sizeof out_buf);

    Dataset all = {0}, train = {0}, val = {0}, testset = {0};
    if (dataset_load(data, "train", &all) < 0) cli_fail(CMD, "%s", dg_errmsg());
    if (!all.labels) cli_fail(CMD, "%s: has no labels (a Kaggle test.csv?); training needs train.csv", data);
    if (cfg.components > all.rows * all.cols)
        cli_usage_error(CMD, "--components: %d is more than the %d pixels of an image", cfg.components,
                        all.rows * all.cols);
    if (limit && limit < all.n) all.n = limit;
    int *tr_idx, *va_idx, n_tr, n_va;
    split_stratified(all.labels, all.n, val_split, seed, &tr_idx, &n_tr, &va_idx, &n_va);
    dataset_subset(&train, &all, tr_idx, n_tr);
    dataset_subset(&val, &all, va_idx, n_va);
    free(tr_idx);
    free(va_idx);
    if (train.n < 2) cli_fail(CMD, "%s: fewer than 2 training images left after the validation split", data);

    const char *test_path = test ? test : (is_dir(data) ? data : NULL);
    if (test_path && strcmp(test_path, "none") == 0) test_path = NULL;
    if (test_path && dataset_load(test_path, "test", &testset) < 0) cli_fail(CMD, "%s", dg_errmsg());
    if (test_path && !testset.labels) cli_fail(CMD, "%s: test set has no labels", test_path);
    if (testset.n && (testset.rows != all.rows || testset.cols != all.cols))
        cli_fail(CMD, "%s: test images are %dx%d, training images %dx%d", test_path, testset.rows, testset.cols,
                 all.rows, all.cols);

    if (!quiet) {
        printf("svm: PCA-%d + RBF SVM (gamma %g, C %g) on %d train / %d validation images from %s\n",
               cfg.components, cfg.gamma, cfg.C, train.n, val.n, data);
        fflush(stdout);
    }
    double t0 = now_seconds();
    PcaSvm s;
    PcaSvmStats st;
    if (pcasvm_train(&s, &train, &cfg, &st) < 0) cli_fail(CMD, "%s", dg_errmsg());
    double val_acc = NAN;
    if (val.n) val_acc = pcasvm_calibrate(&s, &val);
    double seconds = now_seconds() - t0;
    if (!quiet) {
        printf("PCA: %d components explain %.2f%% of the variance (%.1fs)\n", cfg.components, 100 * st.explained,
               st.pca_seconds);
        printf("SVM: %d support vectors, %d classes (%.1fs); digits' decision functions agree with libsvm's on "
               "%.2f%% of %d training images\n",
               s.l, s.n_class, st.svm_seconds, 100 * st.agreement, train.n < 500 ? train.n : 500);
        if (val.n) printf("validation accuracy %.4f; probability temperature %.3f\n", val_acc, s.temperature);
        else printf("no validation split: probabilities uncalibrated (temperature 1)\n");
        printf("trained in %.1fs\n", seconds);
    }

    cJSON *tc = cJSON_CreateObject();
    cJSON_AddStringToObject(tc, "model", "svm");
    cJSON_AddNumberToObject(tc, "components", cfg.components);
    cJSON_AddNumberToObject(tc, "gamma", cfg.gamma);
    cJSON_AddNumberToObject(tc, "C", cfg.C);
    cJSON_AddStringToObject(tc, "kernel", "rbf");
    cJSON_AddStringToObject(tc, "pixels", "scaled to [0,1]");
    cJSON_AddNumberToObject(tc, "cache_mb", cfg.cache_mb);
    cJSON_AddNumberToObject(tc, "eps", cfg.eps);
    cJSON_AddNumberToObject(tc, "val_split", val_split);
    cJSON_AddNumberToObject(tc, "seed", (double)seed);
    cJSON_AddNumberToObject(tc, "n_train", train.n);
    cJSON_AddNumberToObject(tc, "n_val", val.n);
    char *rec = holdout_record_json(holdout_fingerprint(&all, all.n), all.n, val_split, seed, data); /* eval/holdout.h */
    cJSON_AddItemToObject(tc, "holdout", cJSON_Parse(rec));
    free(rec);
    s.train_config_json = cJSON_PrintUnformatted(tc);
    cJSON_Delete(tc);
    cJSON *mj = cJSON_CreateObject();
    cJSON_AddNumberToObject(mj, "train_seconds", round(seconds * 100) / 100);
    cJSON_AddNumberToObject(mj, "pca_explained", st.explained);
    cJSON_AddNumberToObject(mj, "n_sv", s.l);
    cJSON_AddNumberToObject(mj, "temperature", s.temperature);
    if (val.n) cJSON_AddNumberToObject(mj, "val_accuracy", val_acc);
    if (testset.n) {
        double loss, acc = evaluate(&s, &testset, &loss);
        if (!quiet) printf("test accuracy %.4f (loss %.4f) on %d images from %s\n", acc, loss, testset.n, test_path);
        cJSON_AddNumberToObject(mj, "test_accuracy", acc);
        cJSON_AddNumberToObject(mj, "test_loss", loss);
    }
    s.metrics_json = cJSON_PrintUnformatted(mj);
    cJSON_Delete(mj);
    if (pcasvm_save(&s, out) < 0) cli_fail(CMD, "%s", dg_errmsg());
    if (!quiet) printf("saved %s\n", out);

    pcasvm_free(&s);
    dataset_free(&all);
    dataset_free(&train);
    dataset_free(&val);
    dataset_free(&testset);
    return 0;
}
