/* cmd_train.c — `digits train`: build a model from the zoo or a spec file,
 * train it on MNIST (IDX folder) or a Kaggle train.csv with a stratified
 * validation split, save the best model, evaluate on the test split. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "digits.h"

static const char *CMD = "train";

static void help(void) {
    printf("usage: digits train [flags]\n\n"
           "  --model NAME|SPEC     zoo name (models/NAME.spec) or spec file   [cnn-bn]\n"
           "  --data DIR|train.csv  MNIST IDX folder or Kaggle train.csv       [data/mnist]\n"
           "  --test DIR|FILE|none  evaluate after training (IDX folder: its t10k split) [same as --data when a folder]\n"
           "  --epochs N            passes over the training set               [10]\n"
           "  --batch-size N        images per step                            [64]\n"
           "  --lr X                learning rate (max lr for onecycle)        [0.001]\n"
           "  --optimizer sgd|adam                                             [adam]\n"
           "  --momentum X          SGD momentum                               [0.9]\n"
           "  --nesterov            Nesterov momentum (SGD)                    [off]\n"
           "  --weight-decay X      L2 penalty added to gradients              [0]\n"
           "  --schedule S          constant|step|exp|plateau|onecycle|cosine  [constant]\n"
           "  --gamma X             step/exp decay factor                      [0.1 step, 0.95 exp]\n"
           "  --step-size N         epochs between step decays                 [5]\n"
           "  --patience N          early stopping on val loss (0 = off)       [0]\n"
           "  --val-split X         stratified validation fraction             [0.1]\n"
           "  --limit N             use only the first N training images       [all]\n"
           "  --max-steps N         stop after N optimiser steps (0 = no limit) [0]\n"
           "  --seed N              seed for init, split, shuffle, dropout     [42]\n"
           "  --threads N           worker threads (0 = all cores)             [0]\n"
           "  --out FILE            model file (safetensors)                   [runs/MODEL.safetensors]\n"
           "  --log FILE.csv        per-epoch log                              [none]\n"
           "  --monitor DIR|FILE    also measure accuracy on this set after each epoch (IDX folder: its t10k\n"
           "                        split) and log it with cumulative training seconds; never used for\n"
           "                        decisions (time-to-accuracy benchmark)     [none]\n"
           "  --monitor-test        monitor the --test set\n"
           "  --monitor-every N     monitor every N steps as well as after each epoch (0 = epochs only) [0]\n"
           "  --summary             print the model summary and exit\n"
           "  --quiet               no per-epoch lines\n");
}

/* Monotonic seconds, for the data-loading time (the library's clock is internal). */
static double seconds_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int cmd_train(int argc, char **argv) {
    TrainConfig cfg;
    train_config_defaults(&cfg);
    const char *model_name = "cnn-bn", *data = "data/mnist", *test = NULL, *out = NULL;
    float val_split = 0.1f;
    const char *monitor = NULL;
    int limit = 0, summary = 0, monitor_test = 0;
    enum { O_MODEL = 256, O_DATA, O_TEST, O_EPOCHS, O_BATCH, O_LR, O_OPT, O_MOM, O_NEST, O_WD, O_SCHED,
           O_GAMMA, O_STEPSIZE, O_PATIENCE, O_VAL, O_LIMIT, O_MAXSTEPS, O_SEED, O_THREADS, O_OUT,
           O_LOG, O_SUMMARY, O_QUIET, O_MONITOR, O_MONITOR_TEST, O_MONITOR_EVERY, O_HELP };
    static const struct option opts[] = {
        {"model", 1, 0, O_MODEL}, {"data", 1, 0, O_DATA}, {"test", 1, 0, O_TEST},
        {"epochs", 1, 0, O_EPOCHS}, {"batch-size", 1, 0, O_BATCH}, {"lr", 1, 0, O_LR},
        {"optimizer", 1, 0, O_OPT}, {"momentum", 1, 0, O_MOM}, {"nesterov", 0, 0, O_NEST},
        {"weight-decay", 1, 0, O_WD}, {"schedule", 1, 0, O_SCHED}, {"gamma", 1, 0, O_GAMMA},
        {"step-size", 1, 0, O_STEPSIZE}, {"patience", 1, 0, O_PATIENCE}, {"val-split", 1, 0, O_VAL},
        {"limit", 1, 0, O_LIMIT}, {"max-steps", 1, 0, O_MAXSTEPS}, {"seed", 1, 0, O_SEED},
        {"threads", 1, 0, O_THREADS}, {"out", 1, 0, O_OUT}, {"log", 1, 0, O_LOG},
        {"summary", 0, 0, O_SUMMARY}, {"quiet", 0, 0, O_QUIET}, {"monitor", 1, 0, O_MONITOR},
        {"monitor-test", 0, 0, O_MONITOR_TEST}, {"monitor-every", 1, 0, O_MONITOR_EVERY}, {"help", 0, 0, O_HELP},
        {0, 0, 0, 0}};
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_MODEL: model_name = optarg; break;
        case O_DATA: data = optarg; break;
        case O_TEST: test = optarg; break;
        case O_EPOCHS: cfg.epochs = cli_int(CMD, "--epochs", optarg, 1, 100000); break;
        case O_BATCH: cfg.batch_size = cli_int(CMD, "--batch-size", optarg, 1, 65536); break;
        case O_LR: cfg.lr = cli_float(CMD, "--lr", optarg, 0, 100); break;
        case O_OPT:
            if (optim_parse(optarg, &cfg.optim) < 0) cli_usage_error(CMD, "--optimizer: '%s' is not sgd or adam", optarg);
            break;
        case O_MOM: cfg.momentum = cli_float(CMD, "--momentum", optarg, 0, 1); break;
        case O_NEST: cfg.nesterov = 1; break;
        case O_WD: cfg.weight_decay = cli_float(CMD, "--weight-decay", optarg, 0, 10); break;
        case O_SCHED:
            if (sched_parse(optarg, &cfg.schedule) < 0)
                cli_usage_error(CMD, "--schedule: '%s' is not one of constant, step, exp, plateau, onecycle, cosine", optarg);
            break;
        case O_GAMMA: cfg.gamma = cli_float(CMD, "--gamma", optarg, 1e-6f, 1); break;
        case O_STEPSIZE: cfg.step_size = cli_int(CMD, "--step-size", optarg, 1, 100000); break;
        case O_PATIENCE: cfg.patience = cli_int(CMD, "--patience", optarg, 0, 100000); break;
        case O_VAL: val_split = cli_float(CMD, "--val-split", optarg, 0, 0.9f); break;
        case O_LIMIT: limit = cli_int(CMD, "--limit", optarg, 1, 100000000); break;
        case O_MAXSTEPS: cfg.max_steps = cli_int(CMD, "--max-steps", optarg, 0, 2000000000); break;
        case O_SEED: cfg.seed = cli_u64(CMD, "--seed", optarg); break;
        case O_THREADS: cfg.threads = cli_int(CMD, "--threads", optarg, 0, 1024); break;
        case O_OUT: out = optarg; break;
        case O_LOG: cfg.log_path = optarg; break;
        case O_SUMMARY: summary = 1; break;
        case O_QUIET: cfg.quiet = 1; break;
        case O_MONITOR: monitor = optarg; break;
        case O_MONITOR_TEST: monitor_test = 1; break;
        case O_MONITOR_EVERY: cfg.monitor_every = cli_int(CMD, "--monitor-every", optarg, 0, 2000000000); break;
        case O_HELP: help(); return 0;
        default: cli_usage_error(CMD, "unknown or incomplete flag '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    if (monitor && monitor_test) cli_usage_error(CMD, "--monitor and --monitor-test: give one");
    if (cfg.monitor_every && !monitor && !monitor_test)
        cli_usage_error(CMD, "--monitor-every needs --monitor DIR|FILE or --monitor-test");
    cli_set_threads(cfg.threads);

    Model m;
    if (model_build_named(&m, model_name) < 0) cli_fail(CMD, "%s", dg_errmsg());
    if (summary) {
        model_summary(&m, stdout);
        model_free(&m);
        return 0;
    }

    /* load_secs: reading, splitting and the normalisation statistics of the
     * training data, reported apart from train_run's training seconds (the
     * time-to-accuracy benchmark counts both) */
    Dataset all = {0}, train = {0}, val = {0}, testset = {0}, monset = {0};
    double load_t0 = seconds_now();
    if (dataset_load(data, "train", &all) < 0) cli_fail(CMD, "%s", dg_errmsg());
    if (!all.labels) cli_fail(CMD, "%s: has no labels (a Kaggle test.csv?); training needs train.csv", data);
    if (all.rows != m.input_shape.h || all.cols != m.input_shape.w)
        cli_fail(CMD, "%s: images are %dx%d, model %s expects %dx%d", data, all.rows, all.cols,
                 model_name, m.input_shape.h, m.input_shape.w);
    if (limit && limit < all.n) all.n = limit;

    int *tr_idx, *va_idx, n_tr, n_va;
    split_stratified(all.labels, all.n, val_split, cfg.seed, &tr_idx, &n_tr, &va_idx, &n_va);
    dataset_subset(&train, &all, tr_idx, n_tr);
    dataset_subset(&val, &all, va_idx, n_va);
    free(tr_idx);
    free(va_idx);
    if (train.n == 0) cli_fail(CMD, "%s: no training images left after the validation split", data);
    double load_secs = seconds_now() - load_t0;

    const char *test_path = test ? test : (is_dir(data) ? data : NULL);
    if (test_path && strcmp(test_path, "none") == 0) test_path = NULL;
    if (test_path && dataset_load(test_path, "test", &testset) < 0) cli_fail(CMD, "%s", dg_errmsg());
    if (test_path && !testset.labels) cli_fail(CMD, "%s: test set has no labels", test_path);
    if (monitor_test) {
        if (!test_path) cli_usage_error(CMD, "--monitor-test: there is no --test set (give --test DIR|FILE)");
        cfg.monitor = &testset;
    } else if (monitor) {
        if (dataset_load(monitor, "test", &monset) < 0) cli_fail(CMD, "%s", dg_errmsg());
        if (!monset.labels) cli_fail(CMD, "%s: monitor set has no labels", monitor);
        cfg.monitor = &monset;
    }
    /* checked here: a mismatch would otherwise abort in the middle of training */
    if (cfg.monitor && (cfg.monitor->rows != all.rows || cfg.monitor->cols != all.cols))
        cli_fail(CMD, "%s: monitor images are %dx%d, training images %dx%d", monitor ? monitor : test_path,
                 cfg.monitor->rows, cfg.monitor->cols, all.rows, all.cols);
    if (cfg.monitor && cfg.monitor->n == 0) cli_fail(CMD, "monitor set is empty");

    char default_out[256];
    if (!out) {
        mkdir("runs", 0755);
        snprintf(default_out, sizeof default_out, "runs/%s.safetensors", m.spec_name);
        out = default_out;
    }
    cfg.out_path = out;

    model_init_params(&m, cfg.seed);
    load_t0 = seconds_now();
    dataset_mean_std(&train, &m.norm_mean, &m.norm_std);
    load_secs += seconds_now() - load_t0;
    if (!(m.norm_std > 1e-6f)) m.norm_std = 1.0f; /* a blank data set: do not divide by zero */
    m.train_config_json = train_config_json(&cfg, m.spec_name, train.n, val.n);
    printf("model %s: %zu parameters, %.2f M MACs/image; %d train / %d validation images from %s (loaded in %.3fs)\n",
           m.spec_name, m.n_param + m.n_buffer, model_macs(&m) / 1e6, train.n, val.n, data, load_secs);
    fflush(stdout);

    TrainResult res;
    if (train_run(&m, &train, &val, &cfg, &res) < 0) cli_fail(CMD, "%s", dg_errmsg());
    printf("trained %d epochs in %.1fs (%.0f img/s)", res.epochs_run, res.seconds,
           res.seconds > 0 ? (double)res.steps * cfg.batch_size / res.seconds : 0);
    if (res.best_epoch) printf("; best epoch %d: val loss %.4f acc %.4f", res.best_epoch, res.best_val_loss, res.best_val_acc);
    printf("\n");

    char metrics[512];
    int len = snprintf(metrics, sizeof metrics,
                       "{\"train_seconds\":%.2f,\"load_seconds\":%.3f,\"epochs_run\":%d,\"best_epoch\":%d,"
                       "\"val_loss\":%.6f,\"val_accuracy\":%.6f",
                       res.seconds, load_secs, res.epochs_run, res.best_epoch, res.best_val_loss, res.best_val_acc);
    if (testset.n) {
        double loss;
        double acc = model_predict_dataset(&m, &testset, 1000, NULL, NULL, &loss);
        printf("test accuracy %.4f (loss %.4f) on %d images from %s\n", acc, loss, testset.n, test_path);
        len += snprintf(metrics + len, sizeof metrics - (size_t)len, ",\"test_accuracy\":%.6f,\"test_loss\":%.6f", acc, loss);
    }
    snprintf(metrics + len, sizeof metrics - (size_t)len, "}");
    m.metrics_json = strdup(metrics);
    if (model_save(&m, out) < 0) cli_fail(CMD, "%s", dg_errmsg());
    printf("saved %s\n", out);

    dataset_free(&all);
    dataset_free(&train);
    dataset_free(&val);
    dataset_free(&testset);
    dataset_free(&monset);
    model_free(&m);
    return 0;
}
