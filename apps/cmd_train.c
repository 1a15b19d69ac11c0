/* cmd_train.c — `digits train`: build a model from the zoo or a spec file,
 * train it on MNIST (IDX folder) or a Kaggle train.csv with a stratified
 * validation split, save the best model, evaluate on the test split.
 * With --ensemble N, --ensemble-models or --kfold K it trains an ensemble
 * instead (train/ensemble_train.h) and saves it as one model file.

 * With --checkpoint-dir the run can be stopped (SIGINT/SIGTERM: after the
 * current step, with a checkpoint) and continued with --resume DIR, which
 * takes every setting from the checkpoint and refuses conflicting flags;
 * an ensemble run's settings are DIR/ensemble.json, its members' checkpoints
 * DIR/member-K (train/ensemble_train.h). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <time.h>

#include "cli.h"
#include "core/util.h"
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
           "  --ema DECAY           keep an exponential moving average of the weights\n"
           "                        (e.g. 0.999); validation, early stopping and the\n"
           "                        saved model use it (0 = off)               [0]\n"
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
           "  --normalize standard|none  inputs standardised by the training set's pixel mean\n"
           "                        and std, or none: pixels/255 only (Keras's rescale) [standard]\n"
           "  --precision fp32|bf16 bf16: convolutions multiply in bfloat16 (AVX512_BF16),\n"
           "                        fp32 master weights and accumulation        [fp32]\n"
           "  --checkpoint-dir DIR  checkpoint every epoch and on SIGINT/SIGTERM (an ensemble:\n"
           "                        each member in DIR/member-K while it trains) [none]\n"
           "  --resume DIR          continue the run checkpointed in DIR (its settings;\n"
           "                        other flags must agree with them)\n"
           "  --monitor DIR|FILE    also measure accuracy on this set after each epoch (IDX folder: its t10k\n"
           "                        split) and log it with cumulative training seconds; never used for\n"
           "                        decisions (time-to-accuracy benchmark)     [none]\n"
           "  --monitor-test        monitor the --test set\n"
           "  --monitor-every N     monitor every N steps as well as after each epoch (0 = epochs only) [0]\n"
           "  --summary             print the model summary and exit\n"
           "  --quiet               no per-epoch lines\n\n"
           "Examples:\n"
           "  digits train --model cnn-bn --epochs 6 --batch-size 128 --lr 0.003 --schedule onecycle\n"
           "  digits train --model lenet5 --data train.csv --test none --out runs/lenet5.safetensors\n"
           "  digits train --data train.csv --limit 37000 --out m.safetensors  # then hold out: digits convert --skip 37000\n");
}

/* Fails early (before loading data and training) if path cannot be written. */
static void check_writable(const char *path) {
    char probe[4200];
    snprintf(probe, sizeof probe, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(probe, "wb");
    if (!f) cli_fail(CMD, "%s: cannot write: %s", path, strerror(errno));
    fclose(f);
    unlink(probe);
}

/* ---- what the checkpoint stores for the CLI (digits.run) ---- */
typedef struct {
    char model[4096], data[4096], test[4096]; /* test "" = none */
    char augment[192];                        /* canonical --augment text, "" = none */
    char precision[8];                        /* "fp32" or "bf16" */
    char normalize[12];                       /* "standard" or "none" */
    float val_split;
    int limit;
    int ensemble_n, kfold, vote_logits;      /* --ensemble, --kfold, --vote */
    char ensemble_models[8192];              /* --ensemble-models as given, "" = none */
} RunFlags;

static char *run_to_json(const RunFlags *r) {
    cJSON *o = cJSON_CreateObject();
    char buf[64];
    cJSON_AddStringToObject(o, "model", r->model);
    cJSON_AddStringToObject(o, "data", r->data);
    cJSON_AddStringToObject(o, "test", r->test);
    snprintf(buf, sizeof buf, "%a", (double)r->val_split);
    cJSON_AddStringToObject(o, "val_split", buf);
    cJSON_AddNumberToObject(o, "limit", r->limit);
    cJSON_AddStringToObject(o, "augment", r->augment);
    cJSON_AddStringToObject(o, "precision", r->precision[0] ? r->precision : "fp32");
    cJSON_AddStringToObject(o, "normalize", r->normalize[0] ? r->normalize : "standard");
    if (r->ensemble_n > 1) {
        cJSON_AddNumberToObject(o, "ensemble", r->ensemble_n);
        cJSON_AddStringToObject(o, "ensemble_models", r->ensemble_models);
        cJSON_AddNumberToObject(o, "kfold", r->kfold);
        cJSON_AddStringToObject(o, "vote", r->vote_logits ? "logits" : "probs");
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static int run_from_json(const char *text, RunFlags *r) {
    cJSON *o = text ? cJSON_Parse(text) : NULL;
    cJSON *model = cJSON_GetObjectItemCaseSensitive(o, "model");
    cJSON *data = cJSON_GetObjectItemCaseSensitive(o, "data");
    cJSON *test = cJSON_GetObjectItemCaseSensitive(o, "test");
    cJSON *val = cJSON_GetObjectItemCaseSensitive(o, "val_split");
    cJSON *limit = cJSON_GetObjectItemCaseSensitive(o, "limit");
    char *end = NULL;
    double v = cJSON_IsString(val) ? strtod(val->valuestring, &end) : -1;
    int ok = cJSON_IsString(model) && cJSON_IsString(data) && cJSON_IsString(test) && end && *end == '\0' &&
             v >= 0 && v <= 0.9 && cJSON_IsNumber(limit) && limit->valuedouble >= 0 &&
             limit->valuedouble <= 1e8 && strlen(model->valuestring) < sizeof r->model &&
             strlen(data->valuestring) < sizeof r->data && strlen(test->valuestring) < sizeof r->test;
    if (ok) {
        snprintf(r->model, sizeof r->model, "%s", model->valuestring);
        snprintf(r->data, sizeof r->data, "%s", data->valuestring);
        snprintf(r->test, sizeof r->test, "%s", test->valuestring);
        r->val_split = (float)v;
        r->limit = (int)limit->valuedouble;
        /* augmentation draws from (seed, epoch, index): only its setting is state */
        cJSON *aug = cJSON_GetObjectItemCaseSensitive(o, "augment");
        snprintf(r->augment, sizeof r->augment, "%s", cJSON_IsString(aug) ? aug->valuestring : "");
        cJSON *prec = cJSON_GetObjectItemCaseSensitive(o, "precision");
        snprintf(r->precision, sizeof r->precision, "%s",
                 cJSON_IsString(prec) && strcmp(prec->valuestring, "bf16") == 0 ? "bf16" : "fp32");
        cJSON *norm = cJSON_GetObjectItemCaseSensitive(o, "normalize");
        snprintf(r->normalize, sizeof r->normalize, "%s",
                 cJSON_IsString(norm) && strcmp(norm->valuestring, "none") == 0 ? "none" : "standard");
        /* an ensemble run's (absent: a single model) */
        cJSON *ens = cJSON_GetObjectItemCaseSensitive(o, "ensemble");
        cJSON *models = cJSON_GetObjectItemCaseSensitive(o, "ensemble_models");
        cJSON *kfold = cJSON_GetObjectItemCaseSensitive(o, "kfold");
        cJSON *vote = cJSON_GetObjectItemCaseSensitive(o, "vote");
        r->ensemble_n = 1;
        r->kfold = r->vote_logits = 0;
        r->ensemble_models[0] = '\0';
        if (ens) {
            ok = cJSON_IsNumber(ens) && ens->valuedouble >= 2 && ens->valuedouble <= ENSEMBLE_TRAIN_MAX &&
                 cJSON_IsString(models) && strlen(models->valuestring) < sizeof r->ensemble_models &&
                 cJSON_IsNumber(kfold) && (kfold->valueint == 0 || kfold->valueint == ens->valueint) &&
                 cJSON_IsString(vote);
            if (ok) {
                r->ensemble_n = ens->valueint;
                r->kfold = kfold->valueint;
                r->vote_logits = strcmp(vote->valuestring, "logits") == 0;
                snprintf(r->ensemble_models, sizeof r->ensemble_models, "%s", models->valuestring);
            }
        }
    }
    cJSON_Delete(o);
    return ok ? 0 : -1;
}

static const char *resume_dir_for_msgs;

/* A flag given with --resume that disagrees with the checkpoint: exit 2. */
static void conflict(const char *flag, const char *given, const char *saved) {
    cli_usage_error(CMD, "%s %s conflicts with the checkpoint in %s (%s %s); a resumed run keeps the "
                    "settings it started with: drop the flag, or start a new run",
                    flag, given, resume_dir_for_msgs, flag, saved);
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
    const char *monitor = NULL, *precision = "fp32";
    int monitor_test = 0;
    int limit = 0, summary = 0;
    static AugmentConfig aug;
    EnsembleTrainConfig ens = {.n = 1, .vote_logits = 0};
    char *ens_list = NULL; /* --ensemble-models (argv, split in place) */
    enum { O_MODEL = 256, O_DATA, O_TEST, O_EPOCHS, O_BATCH, O_LR, O_OPT, O_MOM, O_NEST, O_WD, O_SCHED,
           O_GAMMA, O_STEPSIZE, O_PATIENCE, O_VAL, O_LIMIT, O_MAXSTEPS, O_SEED, O_THREADS, O_OUT,
           O_LOG, O_SUMMARY, O_QUIET, O_HELP, O_AUG, O_ENS, O_ENS_MODELS, O_KFOLD, O_VOTE, O_CKPT, O_RESUME,
           O_MONITOR, O_MONITOR_TEST, O_MONITOR_EVERY, O_PREC, O_NORM, O_EMA, O_END };
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
        {"kfold", 1, 0, O_KFOLD}, {"vote", 1, 0, O_VOTE},
        {"checkpoint-dir", 1, 0, O_CKPT}, {"resume", 1, 0, O_RESUME}, {"monitor", 1, 0, O_MONITOR},
        {"monitor-test", 0, 0, O_MONITOR_TEST}, {"monitor-every", 1, 0, O_MONITOR_EVERY}, {"precision", 1, 0, O_PREC},
        {"normalize", 1, 0, O_NORM}, {"ema", 1, 0, O_EMA}, {0, 0, 0, 0}};

    /* which flags were given, and as what text (for --resume's conflict check) */
    const char *given[O_END - O_MODEL] = {0};
    const char *ckpt_dir = NULL, *resume_dir = NULL;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c >= O_MODEL && c < O_END) given[c - O_MODEL] = optarg ? optarg : "";
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
        case O_EMA: cfg.ema = cli_float(CMD, "--ema", optarg, 0, 0.999999f); break;
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
        case O_PREC: precision = cli_set_precision(CMD, optarg); break;
        case O_NORM:
            if (strcmp(optarg, "standard") && strcmp(optarg, "none"))
                cli_usage_error(CMD, "--normalize: '%s' is not standard or none", optarg);
            cfg.unit_scale = strcmp(optarg, "none") == 0;
            break;
        case O_CKPT: ckpt_dir = optarg; break;
        case O_RESUME: resume_dir = optarg; break;
        default: cli_usage_error(CMD, "unknown or incomplete flag '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    if (monitor && monitor_test) cli_usage_error(CMD, "--monitor and --monitor-test: give one");
    if (cfg.monitor_every && !monitor && !monitor_test)
        cli_usage_error(CMD, "--monitor-every needs --monitor DIR|FILE or --monitor-test");
    cli_set_threads(cfg.threads);
#define GIVEN(o) given[(o) - O_MODEL]

    Model m;
    Checkpoint ck;
    memset(&ck, 0, sizeof ck);
    RunFlags run = {.val_split = val_split, .limit = limit};
    if (resume_dir) {
        /* every setting comes from the checkpoint; flags may only repeat them */
        resume_dir_for_msgs = resume_dir;
        if (summary) cli_usage_error(CMD, "--summary cannot be combined with --resume");
        if (ckpt_dir && strcmp(ckpt_dir, resume_dir) != 0)
            conflict("--checkpoint-dir", ckpt_dir, resume_dir);
        ens.resume = checkpoint_is_ensemble(resume_dir);
        if ((ens.resume ? checkpoint_open_ensemble(resume_dir, &ck) : checkpoint_open(resume_dir, &ck, &m)) < 0 ||
            checkpoint_lock(resume_dir) < 0)
            cli_fail(CMD, "%s", dg_errmsg());
        if (ck.warning[0]) fprintf(stderr, "digits train: warning: %s\n", ck.warning);
        if (run_from_json(ck.run_json, &run) < 0)
            cli_fail(CMD, "%s: checkpoint lacks valid data settings (digits.run)", ck.path);
        const TrainConfig *k = &ck.cfg;
        char saved[64];
        const char *test_given = GIVEN(O_TEST) && strcmp(GIVEN(O_TEST), "none") != 0 ? GIVEN(O_TEST) : "";
#define SAME_STR(o, flag, want, have) \
        if (GIVEN(o) && strcmp((want), (have) ? (have) : "") != 0) conflict(flag, GIVEN(o), (have) && *(have) ? (have) : "(none)")
#define SAME_NUM(o, flag, want, have, fmt) \
        if (GIVEN(o) && (want) != (have)) { snprintf(saved, sizeof saved, fmt, have); conflict(flag, GIVEN(o), saved); }
        SAME_STR(O_MODEL, "--model", model_name, run.model);
        SAME_STR(O_DATA, "--data", data, run.data);
        SAME_STR(O_TEST, "--test", test_given, run.test);
        SAME_STR(O_OUT, "--out", out ? out : "", k->out_path);
        SAME_STR(O_LOG, "--log", cfg.log_path ? cfg.log_path : "", k->log_path);
        SAME_NUM(O_EPOCHS, "--epochs", cfg.epochs, k->epochs, "%d");
        SAME_NUM(O_BATCH, "--batch-size", cfg.batch_size, k->batch_size, "%d");
        SAME_NUM(O_LR, "--lr", cfg.lr, k->lr, "%g");
        SAME_NUM(O_OPT, "--optimizer", (int)cfg.optim, (int)k->optim, "%d");
        SAME_NUM(O_MOM, "--momentum", cfg.momentum, k->momentum, "%g");
        SAME_NUM(O_NEST, "--nesterov", cfg.nesterov, k->nesterov, "%d");
        SAME_NUM(O_WD, "--weight-decay", cfg.weight_decay, k->weight_decay, "%g");
        if (GIVEN(O_SCHED) && cfg.schedule != k->schedule) conflict("--schedule", GIVEN(O_SCHED), sched_name(k->schedule));
        SAME_NUM(O_GAMMA, "--gamma", cfg.gamma, k->gamma, "%g");
        SAME_NUM(O_STEPSIZE, "--step-size", cfg.step_size, k->step_size, "%d");
        SAME_NUM(O_PATIENCE, "--patience", cfg.patience, k->patience, "%d");
        SAME_NUM(O_EMA, "--ema", cfg.ema, k->ema, "%g");
        SAME_NUM(O_VAL, "--val-split", val_split, run.val_split, "%g");
        SAME_NUM(O_LIMIT, "--limit", limit, run.limit, "%d");
        SAME_NUM(O_MAXSTEPS, "--max-steps", cfg.max_steps, k->max_steps, "%ld");
        SAME_NUM(O_SEED, "--seed", (unsigned long long)cfg.seed, (unsigned long long)k->seed, "%llu");
        int threads_now = cfg.threads;
#ifdef _OPENMP
        if (threads_now <= 0) threads_now = omp_get_max_threads();
#endif
        SAME_NUM(O_THREADS, "--threads", threads_now, ck.threads, "%d");
        if (GIVEN(O_AUG) && strcmp(cfg.augment ? cfg.augment->text : "", run.augment) != 0)
            conflict("--augment", GIVEN(O_AUG), run.augment[0] ? run.augment : "(none)");
        if (GIVEN(O_PREC) && strcmp(precision, run.precision) != 0)
            conflict("--precision", GIVEN(O_PREC), run.precision);
        if (GIVEN(O_NORM) && strcmp(cfg.unit_scale ? "none" : "standard", run.normalize) != 0)
            conflict("--normalize", GIVEN(O_NORM), run.normalize);
        SAME_NUM(O_ENS, "--ensemble", ens.n, run.ensemble_n, "%d");
        SAME_STR(O_ENS_MODELS, "--ensemble-models", ens_list, run.ensemble_models);
        SAME_NUM(O_KFOLD, "--kfold", ens.kfold, run.kfold, "%d");
        if (GIVEN(O_VOTE) && ens.vote_logits != run.vote_logits)
            conflict("--vote", GIVEN(O_VOTE), run.vote_logits ? "logits" : "probs");
        ens.n = run.ensemble_n;
        ens.kfold = run.kfold;
        ens.vote_logits = run.vote_logits;
        static char list_copy[sizeof run.ensemble_models]; /* split in place below */
        snprintf(list_copy, sizeof list_copy, "%s", run.ensemble_models);
        ens_list = list_copy[0] ? list_copy : NULL;
        if (ens.resume && model_build_named(&m, run.model) < 0) cli_fail(CMD, "%s", dg_errmsg());
        precision = cli_set_precision(CMD, run.precision);
        int quiet = cfg.quiet;
        cfg = ck.cfg;
        cfg.quiet = quiet;
        cfg.augment = NULL;
        if (run.augment[0]) {
            if (augment_parse(run.augment, &aug) < 0)
                cli_fail(CMD, "%s: checkpoint's augmentation setting: %s", ck.path, dg_errmsg());
            cfg.augment = &aug;
        }
        cfg.resume = ens.resume ? NULL : &ck; /* an ensemble's members resume from their own */
        cfg.checkpoint_dir = resume_dir;
        cfg.run_json = ck.run_json;
        model_name = run.model;
        data = run.data;
        test = run.test[0] ? run.test : "none";
        val_split = run.val_split;
        limit = run.limit;
        out = cfg.out_path;
    } else {
        if (model_build_named(&m, model_name) < 0) cli_fail(CMD, "%s", dg_errmsg());
        if (summary) {
            model_summary(&m, stdout);
            model_free(&m);
            return 0;
        }
    }
    cli_set_threads(cfg.threads);
    const int ensemble_mode = ens.n > 1 || ens_list || ens.kfold;
    if (ensemble_mode) {
        if (ens_list) snprintf(run.ensemble_models, sizeof run.ensemble_models, "%s", ens_list);
        train_ensemble_members(&ens, model_name, ens_list);
        run.ensemble_n = ens.n;
        run.kfold = ens.kfold;
        run.vote_logits = ens.vote_logits;
    }

    /* load_secs: reading, splitting and the normalisation statistics of the
     * training data, reported apart from train_run's training seconds (the
     * time-to-accuracy benchmark counts both) */
    Dataset all = {0}, train = {0}, val = {0}, testset = {0}, monset = {0};
    double load_t0 = now_seconds();
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
    /* recorded in the model file: eval warns on this data, --split val re-cuts its validation images */
    cfg.data_hash = holdout_fingerprint(&all, all.n), cfg.data_n = all.n, cfg.val_split = val_split, cfg.data_path = data;
    double load_secs = now_seconds() - load_t0;

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
    char *run_json = NULL;
    if (ckpt_dir && !resume_dir) {
        /* what --resume needs to load the same data and rebuild the run */
        if (checkpoint_lock(ckpt_dir) < 0) cli_fail(CMD, "%s", dg_errmsg());
        /* --resume takes a folder with ensemble.json for an ensemble run */
        if (!ensemble_mode && checkpoint_is_ensemble(ckpt_dir))
            cli_fail(CMD, "%s: holds an ensemble run's checkpoints; give this model its own --checkpoint-dir", ckpt_dir);
        snprintf(run.model, sizeof run.model, "%s", model_name);
        snprintf(run.data, sizeof run.data, "%s", data);
        snprintf(run.test, sizeof run.test, "%s", test_path ? test_path : "");
        snprintf(run.augment, sizeof run.augment, "%s", cfg.augment ? cfg.augment->text : "");
        snprintf(run.precision, sizeof run.precision, "%s", precision);
        snprintf(run.normalize, sizeof run.normalize, "%s", cfg.unit_scale ? "none" : "standard");
        run_json = run_to_json(&run);
        cfg.checkpoint_dir = ckpt_dir;
        cfg.run_json = run_json;
        /* an ensemble's settings hold its thread count: the count itself */
#ifdef _OPENMP
        if (ensemble_mode && cfg.threads <= 0) cfg.threads = omp_get_max_threads();
#else
        if (ensemble_mode) cfg.threads = 1;
#endif
    }
    if (ensemble_mode) {
        ens.val_split = val_split;
        /* members split `all` themselves (shared split or folds) */
        int rc = train_ensemble_run(&ens, &all, test_path ? &testset : NULL, test_path, &cfg, out);
        dataset_free(&all);
        dataset_free(&train);
        dataset_free(&val);
        dataset_free(&testset);
        model_free(&m);
        checkpoint_close(&ck);
        free(run_json);
        return rc;
    }

    char default_out[256];
    if (!out) {
        mkdir("runs", 0755);
        snprintf(default_out, sizeof default_out, "runs/%s.safetensors", m.spec_name);
        out = default_out;
    }
    cfg.out_path = out;
    check_writable(out);
    if (cfg.log_path && !resume_dir) check_writable(cfg.log_path);

    if (resume_dir) {
        printf("model %s: resuming from %s\n", m.spec_name, ck.path);
    } else {
        model_init_params(&m, cfg.seed);
        load_t0 = now_seconds();
        train_set_normalisation(&m, &cfg, &train);
        load_secs += now_seconds() - load_t0;
        m.train_config_json = train_config_json(&cfg, m.spec_name, train.n, val.n);
    }
    printf("model %s: %zu parameters, %.2f M MACs/image; %d train / %d validation images from %s (loaded in %.3fs)\n",
           m.spec_name, m.n_param + m.n_buffer, model_macs(&m) / 1e6, train.n, val.n, data, load_secs);
    fflush(stdout);

    TrainResult res;
    train_clear_stop();
    cli_stop_signals(1);
    int trained = train_run(&m, &train, &val, &cfg, &res);
    cli_stop_signals(0);
    if (trained < 0) cli_fail(CMD, "%s", dg_errmsg());
    if (res.interrupted) {
        char word[8300];
        if (res.checkpoint[0]) printf("checkpoint %s\n", res.checkpoint);
        fflush(stdout);
        if (cfg.checkpoint_dir)
            fprintf(stderr, "digits: interrupted at epoch %d step %ld; resume with: digits train --resume %s\n",
                    res.stop_epoch, res.steps, cli_shell_word(cfg.checkpoint_dir, word, sizeof word));
        else
            fprintf(stderr, "digits: interrupted at epoch %d step %ld; the best model so far is in %s "
                    "(without --checkpoint-dir the run cannot be resumed)\n", res.stop_epoch, res.steps, out);
        exit(res.interrupted > 0 ? 128 + res.interrupted : 130);
    }
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
    checkpoint_close(&ck);
    free(run_json);
    return 0;
}
