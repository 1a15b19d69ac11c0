/* cmd_train.c — `digits train`: build a model from the zoo or a spec file,
 * train it on MNIST (IDX folder) or a Kaggle train.csv with a stratified
 * validation split, save the best model, evaluate on the test split.
 * With --ensemble N, --ensemble-models or --kfold K it trains an ensemble
 * instead (train/ensemble_train.h) and saves it as one model file. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "digits.h"
#include "train_ensemble.h"

static const char *CMD = "train";

static void help(void) {
    printf("usage: digits train [flags]\n\n"
           "  --model NAME|SPEC     zoo name (models/NAME.spec) or spec file, or svm\n"
           "                        (PCA + RBF SVM; 'digits train --model svm --help') [cnn-bn]\n"
           "  --data DIR|train.csv  MNIST IDX folder or Kaggle train.csv       [data/mnist]\n"
           "  --test DIR|FILE|none  evaluate after training (IDX folder: its t10k split) [same as --data when a folder]\n"
           "  --epochs N            passes over the training set               [10]\n"
           "  --batch-size N        images per step                            [64]\n"
           "  --lr X                learning rate (max lr for onecycle)        [0.001]\n"
           "  --optimizer NAME      sgd|adam|nadam|adamw (adamw: decoupled decay) [adam]\n"
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
           "  --augment SPEC        on-the-fly augmentation: preset (seed000, seed002, seed003, mnist)\n"
           "                        or rotate=DEG,shift=F,zoom=Z,zoomxy=Z,shear=DEG,perspective=D:P,\n"
           "                        elastic=ALPHA:SIGMA[:P] (see 'digits augment --help')  [none]\n"
           "  --ensemble N          train N members of --model, seeds seed..seed+N-1    [1]\n"
           "  --ensemble-models L   train one member per name in the comma list L\n"
           "                        (e.g. cnn-bn,cnn-bn,bigkernel,resnet5,stn)\n"
           "  --kfold K             stratified K-fold: one member per fold, each validated\n"
           "                        and early-stopped on its own held-out fold\n"
           "  --vote logits|probs   ensemble vote: sum of logits or mean of probabilities [probs]\n"
           "  --summary             print the model summary and exit\n"
           "  --quiet               no per-epoch lines\n");
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int cmd_train(int argc, char **argv) {
    /* the classical baseline has flags of its own (--gamma is the RBF width there) */
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--model=svm") == 0 ||
            (strcmp(argv[i], "--model") == 0 && i + 1 < argc && strcmp(argv[i + 1], "svm") == 0))
            return cmd_train_svm(argc, argv);
    TrainConfig cfg;
    train_config_defaults(&cfg);
    const char *model_name = "cnn-bn", *data = "data/mnist", *test = NULL, *out = NULL;
    float val_split = 0.1f;
    int limit = 0, summary = 0;
    static AugmentConfig aug;
    EnsembleTrainConfig ens = {.n = 1, .vote_logits = 0};
    char *ens_list = NULL; /* --ensemble-models (argv, split in place) */
    enum { O_MODEL = 256, O_DATA, O_TEST, O_EPOCHS, O_BATCH, O_LR, O_OPT, O_MOM, O_NEST, O_WD, O_SCHED,
           O_GAMMA, O_STEPSIZE, O_PATIENCE, O_VAL, O_LIMIT, O_MAXSTEPS, O_SEED, O_THREADS, O_OUT,
           O_LOG, O_SUMMARY, O_QUIET, O_HELP, O_AUG, O_ENS, O_ENS_MODELS, O_KFOLD, O_VOTE };
    static const struct option opts[] = {
        {"model", 1, 0, O_MODEL}, {"data", 1, 0, O_DATA}, {"test", 1, 0, O_TEST},
        {"epochs", 1, 0, O_EPOCHS}, {"batch-size", 1, 0, O_BATCH}, {"lr", 1, 0, O_LR},
        {"optimizer", 1, 0, O_OPT}, {"momentum", 1, 0, O_MOM}, {"nesterov", 0, 0, O_NEST},
        {"weight-decay", 1, 0, O_WD}, {"schedule", 1, 0, O_SCHED}, {"gamma", 1, 0, O_GAMMA},
        {"step-size", 1, 0, O_STEPSIZE}, {"patience", 1, 0, O_PATIENCE}, {"val-split", 1, 0, O_VAL},
        {"limit", 1, 0, O_LIMIT}, {"max-steps", 1, 0, O_MAXSTEPS}, {"seed", 1, 0, O_SEED},
        {"threads", 1, 0, O_THREADS}, {"out", 1, 0, O_OUT}, {"log", 1, 0, O_LOG},
        {"summary", 0, 0, O_SUMMARY}, {"quiet", 0, 0, O_QUIET}, {"help", 0, 0, O_HELP},
        {"augment", 1, 0, O_AUG}, {"ensemble", 1, 0, O_ENS}, {"ensemble-models", 1, 0, O_ENS_MODELS},
        {"kfold", 1, 0, O_KFOLD}, {"vote", 1, 0, O_VOTE}, {0, 0, 0, 0}};
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
            if (optim_parse(optarg, &cfg.optim) < 0) cli_usage_error(CMD, "--optimizer: '%s' is not sgd, adam, nadam or adamw", optarg);
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
        case O_HELP: help(); return 0;
        case O_AUG:
            if (augment_parse(optarg, &aug) < 0) cli_usage_error(CMD, "%s", dg_errmsg());
            cfg.augment = augment_is_identity(&aug) ? NULL : &aug;
            break;
        case O_ENS: ens.n = cli_int(CMD, "--ensemble", optarg, 1, ENSEMBLE_TRAIN_MAX); break;
        case O_ENS_MODELS: ens_list = optarg; break;
        case O_KFOLD: ens.kfold = cli_int(CMD, "--kfold", optarg, 2, ENSEMBLE_TRAIN_MAX); break;
        case O_VOTE:
            if (strcmp(optarg, "logits") && strcmp(optarg, "probs")) cli_usage_error(CMD, "--vote: '%s' is not logits or probs", optarg);
            ens.vote_logits = strcmp(optarg, "logits") == 0;
            break;
        default: cli_usage_error(CMD, "unknown or incomplete flag '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    cli_set_threads(cfg.threads);
    const int ensemble_mode = ens.n > 1 || ens_list || ens.kfold;
    if (ensemble_mode) train_ensemble_members(&ens, model_name, ens_list);

    Model m;
    if (model_build_named(&m, model_name) < 0) cli_fail(CMD, "%s", dg_errmsg());
    if (summary) {
        model_summary(&m, stdout);
        model_free(&m);
        return 0;
    }

    Dataset all = {0}, train = {0}, val = {0}, testset = {0};
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

    const char *test_path = test ? test : (is_dir(data) ? data : NULL);
    if (test_path && strcmp(test_path, "none") == 0) test_path = NULL;
    if (test_path && dataset_load(test_path, "test", &testset) < 0) cli_fail(CMD, "%s", dg_errmsg());
    if (test_path && !testset.labels) cli_fail(CMD, "%s: test set has no labels", test_path);
    if (ensemble_mode) {
        ens.val_split = val_split;
        /* members split `all` themselves (shared split or folds) */
        int rc = train_ensemble_run(&ens, &all, test_path ? &testset : NULL, test_path, &cfg, out);
        dataset_free(&all);
        dataset_free(&train);
        dataset_free(&val);
        dataset_free(&testset);
        model_free(&m);
        return rc;
    }

    char default_out[256];
    if (!out) {
        mkdir("runs", 0755);
        snprintf(default_out, sizeof default_out, "runs/%s.safetensors", m.spec_name);
        out = default_out;
    }
    cfg.out_path = out;

    model_init_params(&m, cfg.seed);
    dataset_mean_std(&train, &m.norm_mean, &m.norm_std);
    if (!(m.norm_std > 1e-6f)) m.norm_std = 1.0f; /* a blank data set: do not divide by zero */
    m.train_config_json = train_config_json(&cfg, m.spec_name, train.n, val.n);
    printf("model %s: %zu parameters, %.2f M MACs/image; %d train / %d validation images from %s\n",
           m.spec_name, m.n_param + m.n_buffer, model_macs(&m) / 1e6, train.n, val.n, data);
    fflush(stdout);

    TrainResult res;
    if (train_run(&m, &train, &val, &cfg, &res) < 0) cli_fail(CMD, "%s", dg_errmsg());
    printf("trained %d epochs in %.1fs (%.0f img/s)", res.epochs_run, res.seconds,
           res.seconds > 0 ? (double)res.steps * cfg.batch_size / res.seconds : 0);
    if (res.best_epoch) printf("; best epoch %d: val loss %.4f acc %.4f", res.best_epoch, res.best_val_loss, res.best_val_acc);
    printf("\n");

    char metrics[512];
    int len = snprintf(metrics, sizeof metrics,
                       "{\"train_seconds\":%.2f,\"epochs_run\":%d,\"best_epoch\":%d,\"val_loss\":%.6f,\"val_accuracy\":%.6f",
                       res.seconds, res.epochs_run, res.best_epoch, res.best_val_loss, res.best_val_acc);
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
    model_free(&m);
    return 0;
}
