/* cmd_train.c — `digits train`: build a model from the zoo or a spec file,
 * train it on MNIST (IDX folder) or a Kaggle train.csv with a stratified
 * validation split, save the best model, evaluate on the test split.
 * With --ensemble N, --ensemble-models or --kfold K it trains an ensemble
 * instead (train/ensemble_train.h) and saves it as one model file.

 * With --checkpoint-dir the run can be stopped (SIGINT/SIGTERM: after the
 * current step, with a checkpoint) and continued with --resume DIR, which
 * takes every setting from the checkpoint and refuses conflicting flags;
 * an ensemble run's settings are DIR/ensemble.json, its members' checkpoints
 * DIR/member-K (train/ensemble_train.h).
 *
 * Every flag is a row of the option table (train/options.h): the parser,
 * --help, --config FILE.yaml, --print-config, the settings a checkpoint
 * keeps and --resume's conflict check all come from it.
 * Without --out the model gets a new name in --out-dir (runs/NAME.safetensors,
 * then NAME-2, NAME-3, ...); --out onto an existing file needs --overwrite. */
#include <errno.h>
#include <fcntl.h>
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
#include "digits_internal.h"
#include "cmd_train_ensemble.h"
#include "cmd_train_mpi.h"
#include "dist/dist.h"
#include "train/options.h"

static const char *CMD = "train";


/* ==== the command line ======================================================= */

/* --help: every row of the option table, then examples. */
static void help(void) {
    int n;
    const TrainOption *t = train_options_table(&n);
    printf("usage: digits train [flags]\n"
           "       digits train --config FILE.yaml [flags]   (flags override the file)\n\n");
    for (int i = 0; i < n; i++) {
        char lead[64], def[300], desc[200] = "";
        snprintf(lead, sizeof lead, "--%s%s%s", t[i].name, t[i].arg ? " " : "", t[i].arg ? t[i].arg : "");
        if (t[i].shown) snprintf(def, sizeof def, " [%s]", t[i].shown);
        else if (t[i].def && t[i].type != OPT_BOOL) snprintf(def, sizeof def, " [%s]", t[i].def);
        else def[0] = '\0';
        if (t[i].type == OPT_CHOICE) {
            desc[0] = ':', desc[1] = ' ';
            train_option_describe(&t[i], desc + 2, sizeof desc - 2);
        }
        /* the help text and default, wrapped at 100 columns from column 24 */
        char text[1200];
        snprintf(text, sizeof text, "%s%s%s", t[i].help, desc, def);
        printf("  %-21s", lead);
        int col = 23;
        if (strlen(lead) > 20) printf("\n%23s", ""), col = 23;
        for (char *w = text; *w;) {
            size_t wl = strcspn(w, " ");
            if (col + 1 + (int)wl > 100 && col > 23) printf("\n%23s", ""), col = 23;
            printf(" %.*s", (int)wl, w);
            col += 1 + (int)wl;
            w += wl;
            while (*w == ' ') w++;
        }
        printf("\n");
    }
    printf("\nA true-or-false flag is turned off with --no-NAME or --NAME=false (e.g. --no-nesterov\n"
           "over a config file that sets nesterov: true).\n");
    printf("\nExamples:\n"
           "  digits train --epochs 3                         # runs/cnn-bn.safetensors (or -2, -3, ...)\n"
           "  digits train --config configs/seed004.yaml --epochs 5\n"
           "  digits train --model lenet5 --print-config > my.yaml; digits train --config my.yaml\n"
           "  mpirun -np 4 digits train --threads 2   # data-parallel on 4 ranks: the binary of make MPI=1;\n"
           "                                          # the same weights as --threads 8 in one process\n");
}

/* A bad value for flag --NAME: exit 2 saying what it must be. */
static void bad_flag_value(const TrainOption *opt, const char *text, const char *why) {
    if (opt->type == OPT_AUGMENT) cli_usage_error(CMD, "%s", why); /* the spec's own message */
    char *end;
    double v = strtod(text, &end);
    int number = opt->type == OPT_INT || opt->type == OPT_LONG || opt->type == OPT_FLOAT;
    if (number && *text && !*end && (opt->type == OPT_FLOAT || v == (long)v))
        cli_usage_error(CMD, "--%s: %s is out of range (must be %s)", opt->name, text, why);
    if (opt->type == OPT_CHOICE) { /* "a, b or c" */
        char list[200];
        size_t n = 0;
        for (const char *p = opt->choices; *p && n + 5 < sizeof list; p++) {
            if (*p != '|') list[n++] = *p;
            else if (strchr(p + 1, '|')) n += (size_t)snprintf(list + n, sizeof list - n, ", ");
            else n += (size_t)snprintf(list + n, sizeof list - n, " or ");
        }
        list[n] = '\0';
        cli_usage_error(CMD, "--%s: '%s' is not %s", opt->name, text, list);
    }
    const char *what = opt->type == OPT_FLOAT ? "a number" : opt->type == OPT_U64 ? "a non-negative integer"
                     : opt->type == OPT_BOOL ? "true or false" : "an integer";
    if (!number) cli_usage_error(CMD, "--%s: '%s' is not %s", opt->name, text, what);
    cli_usage_error(CMD, "--%s: '%s' is not %s (must be %s)", opt->name, text, what, why);
}

/* The flag named by argv[*i] ("--name", "--name=value", "--name value", and
 * "--no-name" for a true-or-false option: false, e.g. to turn off what a
 * --config file turned on); *value is its text (NULL for a flag without one);
 * exits 2 on an unknown flag. */
static const TrainOption *flag_at(int argc, char **argv, int *i, const char **value) {
    const char *arg = argv[*i];
    if (strcmp(arg, "-h") == 0) arg = "--help";
    if (strncmp(arg, "--", 2) != 0 || !arg[2]) cli_usage_error(CMD, "unexpected argument '%s'", arg);
    char name[64];
    const char *eq = strchr(arg, '=');
    snprintf(name, sizeof name, "%.*s", (int)(eq ? (size_t)(eq - arg - 2) : strlen(arg + 2)), arg + 2);
    const TrainOption *opt = train_option_find(name);
    if (!opt && !eq && strncmp(name, "no-", 3) == 0) {
        const TrainOption *neg = train_option_find(name + 3);
        if (neg && neg->type == OPT_BOOL && !(neg->flags & OPTF_CLI)) {
            *value = "false";
            return neg;
        }
    }
    if (!opt || strchr(name, '_')) {
        const char *near = train_option_suggest(name);
        if (near) cli_usage_error(CMD, "unknown or incomplete flag '--%s' (did you mean '--%s'?)", name, near);
        cli_usage_error(CMD, "unknown or incomplete flag '--%s'", name);
    }
    *value = eq ? eq + 1 : NULL;
    if (!eq && opt->type != OPT_BOOL) {
        if (*i + 1 >= argc) cli_usage_error(CMD, "--%s needs a value (%s)", opt->name, opt->arg ? opt->arg : "");
        *value = argv[++*i];
    }
    return opt;
}

/* The settings: defaults, then --config FILE, then the other flags (which
 * win). Handles --help (exits 0). Exits 2 on any bad flag or file. */
static void parse_settings(int argc, char **argv, TrainOptions *o) {
    train_options_defaults(o);
    int n_flags = 0;
    /* static: still reachable when a bad flag exits 2 (no leak report under LeakSanitizer) */
    static const TrainOption **opts;
    static const char **values;
    opts = calloc((size_t)argc + 1, sizeof *opts);
    values = calloc((size_t)argc + 1, sizeof *values);
    if (!opts || !values) cli_fail(CMD, "out of memory");
    const char *config = NULL;
    for (int i = 1; i < argc; i++) {
        const TrainOption *opt = flag_at(argc, argv, &i, &values[n_flags]);
        if (strcmp(opt->name, "help") == 0) {
            help();
            exit(0);
        }
        if (strcmp(opt->name, "config") == 0) config = values[n_flags];
        opts[n_flags++] = opt;
    }
    if (config) {
        if (train_options_read_yaml(o, config) < 0) cli_usage_error(CMD, "%s", dg_errmsg());
        if (o->notice[0]) fprintf(stderr, "digits train: %s: ignored %s\n", config, o->notice);
    }
    char why[300];
    for (int k = 0; k < n_flags; k++) {
        const char *text = values[k] ? values[k] : "true";
        if (train_option_set(o, opts[k], text, why, sizeof why) < 0) bad_flag_value(opts[k], text, why);
        o->given[train_option_index(opts[k])] = 1;
    }
    free(opts);
    free(values);
    opts = NULL, values = NULL;
}

/* Flags that do not combine (exit 2). */
static void check_combinations(const TrainOptions *o) {
    if (strcmp(o->model, "svm") == 0)
        cli_usage_error(CMD, "model svm takes its own flags and no config file: digits train --model svm --help");
    if (o->monitor && o->monitor_test) cli_usage_error(CMD, "--monitor and --monitor-test: give one");
    if (o->cfg.monitor_every && !o->monitor && !o->monitor_test)
        cli_usage_error(CMD, "--monitor-every needs --monitor DIR|FILE or --monitor-test");
    if (o->resume && o->summary) cli_usage_error(CMD, "--summary cannot be combined with --resume");
    if (o->resume && o->checkpoint_dir && strcmp(o->checkpoint_dir, o->resume) != 0)
        cli_usage_error(CMD, "--checkpoint-dir %s conflicts with --resume %s; a resumed run keeps checkpointing "
                        "into the folder it resumes from", o->checkpoint_dir, o->resume);
}

/* ==== one run's state ======================================================== */

typedef struct {
    TrainOptions o;         /* the settings (a resumed run: the checkpoint's) */
    TrainConfig cfg;        /* what train_run gets (strings point into o and ck) */
    AugmentConfig aug;
    EnsembleTrainConfig ens;
    char ens_list[8192];    /* --ensemble-models, split in place */
    int ensemble_mode;
    Model m;
    Checkpoint ck;
    const char *precision;  /* in effect */
    Dataset all, train, val, testset, monset;
    const char *test_path;  /* NULL: no test */
    double load_secs;
    char *run_json;         /* digits.run of a new checkpointed run */
    char out[4200];
} TrainJob;


/* Fails early (before loading data and training) if path cannot be written. */
static void check_writable(const char *path) {
    char probe[4300];
    snprintf(probe, sizeof probe, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(probe, "wb");
    if (!f) cli_fail(CMD, "%s: cannot write: %s", path, strerror(errno));
    fclose(f);
    unlink(probe);
}

/* ==== --resume =============================================================== */

/* The checkpoint's settings as options: its TrainConfig and its digits.run. */
static void saved_settings(const TrainJob *j, TrainOptions *saved) {
    int n;
    const TrainOption *t = train_options_table(&n);
    train_options_defaults(saved);
    TrainOptions from_ck;
    memset(&from_ck, 0, sizeof from_ck);
    from_ck.cfg = j->ck.cfg;
    for (int i = 0; i < n; i++)
        if (t[i].flags & OPTF_CKPT) train_option_copy(saved, &from_ck, &t[i]);
    saved->cfg.threads = j->ck.threads;
    if (train_options_from_json(saved, j->ck.run_json, OPTF_RUN, NULL, 0) < 0)
        cli_fail(CMD, "%s: checkpoint lacks valid data settings (digits.run)", j->ck.path);
    /* the run's test set is stored resolved: "" or none = no test */
    if (!saved->test) train_option_set(saved, train_option_find("test"), "none", (char[8]){0}, 8);
}

/* Every setting given (flag or config file) must equal the checkpoint's:
 * exit 2 naming the first that does not. */
static void check_conflicts(TrainOptions *o, const TrainOptions *saved, const char *dir) {
    int n;
    const TrainOption *t = train_options_table(&n);
#ifdef _OPENMP
    if (o->cfg.threads <= 0) o->cfg.threads = omp_get_max_threads();
#endif
    for (int i = 0; i < n; i++) {
        if (!o->given[i] || !(t[i].flags & (OPTF_CKPT | OPTF_RUN))) continue;
        char now[8300], was[8300];
        train_option_format(o, &t[i], now, sizeof now);
        train_option_format(saved, &t[i], was, sizeof was);
        if (strcmp(now, was) != 0)
            cli_usage_error(CMD, "--%s %s conflicts with the checkpoint in %s (--%s %s); a resumed run keeps the "
                            "settings it started with: drop the %s, or start a new run", t[i].name,
                            now[0] ? now : "(none)", dir, t[i].name, was[0] ? was : "(none)",
                            o->given[i] == 2 ? "key from the config file" : "flag");
    }
}

/* Open the checkpoint in --resume DIR and take every stored setting from it. */
static void adopt_checkpoint(TrainJob *j) {
    TrainOptions *o = &j->o;
    const char *dir = o->resume;
    j->ens.resume = checkpoint_is_ensemble(dir);
    if ((j->ens.resume ? checkpoint_open_ensemble(dir, &j->ck) : checkpoint_open(dir, &j->ck, &j->m)) < 0 ||
        (train_mpi_writer() && checkpoint_lock(dir) < 0))
        cli_fail(CMD, "%s", dg_errmsg());
    if (j->ck.warning[0]) fprintf(stderr, "digits train: warning: %s\n", j->ck.warning);
    TrainOptions saved;
    saved_settings(j, &saved);
    check_conflicts(o, &saved, dir);
    int n;
    const TrainOption *t = train_options_table(&n);
    for (int i = 0; i < n; i++)
        if (t[i].flags & (OPTF_CKPT | OPTF_RUN)) train_option_copy(o, &saved, &t[i]);
    train_options_free(&saved);
    if (j->ens.resume && model_build_named(&j->m, o->model) < 0) cli_fail(CMD, "%s", dg_errmsg());
}

/* ==== the steps ============================================================== */

/* The loop's configuration from the settings (and a resumed checkpoint). */
static void make_config(TrainJob *j) {
    TrainOptions *o = &j->o;
    j->cfg = o->cfg;
    j->cfg.augment = NULL;
    if (o->augment) {
        if (augment_parse(o->augment, &j->aug) < 0)
            cli_fail(CMD, "%s%saugmentation setting: %s", o->resume ? j->ck.path : "", o->resume ? ": " : "",
                     dg_errmsg());
        j->cfg.augment = &j->aug;
    }
    char prec[8];
    train_option_format(o, train_option_find("precision"), prec, sizeof prec);
    j->precision = cli_set_precision(CMD, prec);
    o->precision = strcmp(j->precision, "bf16") == 0;
    if (o->resume) {
        j->cfg.resume = j->ens.resume ? NULL : &j->ck; /* an ensemble's members resume from their own */
        j->cfg.checkpoint_dir = o->resume;
        j->cfg.run_json = j->ck.run_json;
    }
    cli_set_threads(j->cfg.threads);
}

/* The members of an ensemble run, if it is one. */
static void plan_ensemble(TrainJob *j) {
    TrainOptions *o = &j->o;
    j->ens.n = o->ensemble;
    j->ens.kfold = o->kfold;
    j->ens.vote_logits = o->vote_logits;
    snprintf(j->ens_list, sizeof j->ens_list, "%s", o->ensemble_models ? o->ensemble_models : "");
    j->ensemble_mode = j->ens.n > 1 || o->ensemble_models || j->ens.kfold;
    if (!j->ensemble_mode) return;
    train_ensemble_members(&j->ens, o->model, o->ensemble_models ? j->ens_list : NULL);
    o->ensemble = j->ens.n;
}

/* The training images from --data; a folder without MNIST files whose
 * mnist/ or MNIST/raw/ has them (seed 004's root_dir './data', torchvision's
 * layout) is taken for that subfolder, with a note. Returns -1 with the
 * error of --data itself. */
static int load_training_set(TrainJob *j) {
    TrainOptions *o = &j->o;
    if (dataset_load(o->data, "train", &j->all) == 0) return 0;
    if (!is_dir(o->data)) return -1;
    char first[1024], sub[4200], why[16];
    snprintf(first, sizeof first, "%s", dg_errmsg());
    static const char *const subs[] = {"mnist", "MNIST/raw"};
    for (int i = 0; i < 2; i++) {
        snprintf(sub, sizeof sub, "%s/%s", o->data, subs[i]);
        if (is_dir(sub) && dataset_load(sub, "train", &j->all) == 0) {
            fprintf(stderr, "digits train: %s holds no MNIST files; using %s\n", o->data, sub);
            train_option_set(o, train_option_find("data"), sub, why, sizeof why);
            return 0;
        }
    }
    return dg_set_error("%s", first);
}

/* The training set (split into train/val unless an ensemble), the test set
 * and the monitor set; j->load_secs times the training data's part. */
static void load_data(TrainJob *j) {
    const TrainOptions *o = &j->o;
    const char *data = o->data;
    double t0 = now_seconds();
    if (load_training_set(j) < 0) cli_fail(CMD, "%s", dg_errmsg());
    data = o->data;
    if (!j->all.labels) cli_fail(CMD, "%s: has no labels (a Kaggle test.csv?); training needs train.csv", data);
    if (j->all.rows != j->m.input_shape.h || j->all.cols != j->m.input_shape.w)
        cli_fail(CMD, "%s: images are %dx%d, model %s expects %dx%d", data, j->all.rows, j->all.cols, o->model,
                 j->m.input_shape.h, j->m.input_shape.w);
    if (o->limit && o->limit < j->all.n) j->all.n = o->limit;
    int *tr_idx, *va_idx, n_tr, n_va;
    split_stratified(j->all.labels, j->all.n, o->val_split, j->cfg.seed, &tr_idx, &n_tr, &va_idx, &n_va);
    dataset_subset(&j->train, &j->all, tr_idx, n_tr);
    dataset_subset(&j->val, &j->all, va_idx, n_va);
    free(tr_idx);
    free(va_idx);
    if (j->train.n == 0) cli_fail(CMD, "%s: no training images left after the validation split", data);
    /* recorded in the model file: eval warns on this data, --split val re-cuts its validation images */
    j->cfg.data_hash = holdout_fingerprint(&j->all, j->all.n), j->cfg.data_n = j->all.n;
    j->cfg.val_split = o->val_split, j->cfg.data_path = data;
    j->load_secs = now_seconds() - t0;

    const char *test = o->test ? o->test : (is_dir(data) ? data : NULL);
    j->test_path = test && strcmp(test, "none") != 0 ? test : NULL;
    if (j->test_path && dataset_load(j->test_path, "test", &j->testset) < 0) cli_fail(CMD, "%s", dg_errmsg());
    if (j->test_path && !j->testset.labels) cli_fail(CMD, "%s: test set has no labels", j->test_path);
    if (o->monitor_test) {
        if (!j->test_path) cli_usage_error(CMD, "--monitor-test: there is no --test set (give --test DIR|FILE)");
        j->cfg.monitor = &j->testset;
    } else if (o->monitor) {
        if (dataset_load(o->monitor, "test", &j->monset) < 0) cli_fail(CMD, "%s", dg_errmsg());
        if (!j->monset.labels) cli_fail(CMD, "%s: monitor set has no labels", o->monitor);
        j->cfg.monitor = &j->monset;
    }
    /* checked here: a mismatch would otherwise abort in the middle of training */
    const Dataset *mon = j->cfg.monitor;
    if (mon && (mon->rows != j->all.rows || mon->cols != j->all.cols))
        cli_fail(CMD, "%s: monitor images are %dx%d, training images %dx%d", o->monitor ? o->monitor : j->test_path,
                 mon->rows, mon->cols, j->all.rows, j->all.cols);
    if (mon && mon->n == 0) cli_fail(CMD, "monitor set is empty");
}

/* A new run with --checkpoint-dir: lock the folder and keep in every
 * checkpoint what --resume needs to load the same data (digits.run). */
static void start_checkpointing(TrainJob *j) {
    TrainOptions *o = &j->o;
    /* under mpirun an ensemble's ranks write their members' checkpoints */
    if (!o->checkpoint_dir || o->resume || (!train_mpi_writer() && !j->ensemble_mode)) return;
    if (train_mpi_writer() && checkpoint_lock(o->checkpoint_dir) < 0) cli_fail(CMD, "%s", dg_errmsg());
    /* --resume takes a folder with ensemble.json for an ensemble run */
    if (!j->ensemble_mode && checkpoint_is_ensemble(o->checkpoint_dir))
        cli_fail(CMD, "%s: holds an ensemble run's checkpoints; give this model its own --checkpoint-dir",
                 o->checkpoint_dir);
    char why[64];
    train_option_set(o, train_option_find("test"), j->test_path ? j->test_path : "none", why, sizeof why);
    j->run_json = train_options_json(o, OPTF_RUN, 1);
    j->cfg.checkpoint_dir = o->checkpoint_dir;
    j->cfg.run_json = j->run_json;
    /* an ensemble's settings hold its thread count: the count itself */
#ifdef _OPENMP
    if (j->ensemble_mode && j->cfg.threads <= 0) j->cfg.threads = omp_get_max_threads();
#else
    if (j->ensemble_mode) j->cfg.threads = 1;
#endif
}

/* The automatically named model file, reserved (created empty) so that
 * runs started side by side pick different names; removed at exit if
 * still empty (the run failed before saving). */
static char reserved[4200];

static void drop_reservation(void) {
    struct stat st;
    if (reserved[0] && stat(reserved, &st) == 0 && st.st_size == 0) unlink(reserved);
}

/* Create path if it does not exist: 0, or -1 with errno (EEXIST: taken). */
static int reserve(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) return -1;
    close(fd);
    snprintf(reserved, sizeof reserved, "%s", path);
    atexit(drop_reservation);
    return 0;
}

const char *cli_train_out(const char *out, int overwrite, const char *dir, const char *base, char *buf, size_t len) {
    struct stat st;
    if (out) {
        if (stat(out, &st) == 0 && !overwrite)
            cli_usage_error(CMD, "%s exists; add --overwrite to replace it, or pick another --out name", out);
        snprintf(buf, len, "%s", out);
        return buf;
    }
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) cli_fail(CMD, "%s: cannot create the folder: %s", dir, strerror(errno));
    int k = 1;
    for (;;) {
        if (k == 1) snprintf(buf, len, "%s/%s.safetensors", dir, base);
        else snprintf(buf, len, "%s/%s-%d.safetensors", dir, base, k);
        if (reserve(buf) == 0) break;
        if (errno != EEXIST) cli_fail(CMD, "%s: cannot write: %s", buf, strerror(errno));
        if (++k > 9999) cli_fail(CMD, "%s: %s-2 ... -9999 are all taken; give --out", dir, base);
    }
    if (k > 1) printf("%s/%s.safetensors exists: this run writes %s\n", dir, base, buf);
    return buf;
}

/* The model file: --out (an existing one only with --overwrite), the
 * checkpoint's when resuming, else the first free OUT-DIR/BASE.safetensors,
 * BASE-2, BASE-3, ... Exits 2 when --out exists. */
static void choose_out(TrainJob *j) {
    const TrainOptions *o = &j->o;
    if (!train_mpi_writer()) return; /* under mpirun rank 0 writes */
    if (o->resume) {
        snprintf(j->out, sizeof j->out, "%s", j->ck.cfg.out_path ? j->ck.cfg.out_path : "");
        if (!j->out[0]) cli_fail(CMD, "%s: checkpoint names no model file", j->ck.path);
    } else {
        char base[300];
        const char *name = j->ensemble_mode ? j->ens.models[0] : j->m.spec_name;
        const char *slash = strrchr(name, '/');
        name = slash ? slash + 1 : name;
        if (j->ensemble_mode)
            snprintf(base, sizeof base, "%s-%s%d", name, j->ens.kfold ? "kfold" : "ensemble", j->ens.n);
        else
            snprintf(base, sizeof base, "%s", name);
        cli_train_out(o->cfg.out_path, o->overwrite, o->out_dir, base, j->out, sizeof j->out);
    }
    j->cfg.out_path = j->out;
    check_writable(j->out);
    if (j->cfg.log_path && !o->resume) check_writable(j->cfg.log_path);
}

/* Stopped by a signal: say how to go on, and exit 128+signal. */
static void exit_interrupted(const TrainJob *j, const TrainResult *res) {
    char word[8300];
    if (res->checkpoint[0]) printf("checkpoint %s\n", res->checkpoint);
    fflush(stdout);
    if (j->cfg.checkpoint_dir)
        fprintf(stderr, "digits: interrupted at epoch %d step %ld; resume with: digits train --resume %s\n",
                res->stop_epoch, res->steps, cli_shell_word(j->cfg.checkpoint_dir, word, sizeof word));
    else
        fprintf(stderr, "digits: interrupted at epoch %d step %ld; the best model so far is in %s "
                "(without --checkpoint-dir the run cannot be resumed)\n", res->stop_epoch, res->steps, j->out);
    exit(res->interrupted > 0 ? 128 + res->interrupted : 130);
}

/* Train one model (fresh or resumed); returns its result. */
static void train_single(TrainJob *j, TrainResult *res) {
    Model *m = &j->m;
    if (j->o.resume) {
        printf("model %s: resuming from %s\n", m->spec_name, j->ck.path);
    } else {
        model_init_params(m, j->cfg.seed);
        double t0 = now_seconds();
        train_set_normalisation(m, &j->cfg, &j->train);
        j->load_secs += now_seconds() - t0;
        m->train_config_json = train_config_json(&j->cfg, m->spec_name, j->train.n, j->val.n);
    }
    printf("model %s: %zu parameters, %.2f M MACs/image; %d train / %d validation images from %s (loaded in %.3fs)\n",
           m->spec_name, m->n_param + m->n_buffer, model_macs(m) / 1e6, j->train.n, j->val.n, j->o.data,
           j->load_secs);
    fflush(stdout);
    train_clear_stop();
    cli_stop_signals(1);
    dist_exit_on_signals(CMD); /* under mpirun: a signal ends the rank at once */
    int trained = train_run(m, &j->train, &j->val, &j->cfg, res);
    cli_stop_signals(0);
    if (trained < 0) cli_fail(CMD, "%s", dg_errmsg());
    if (res->interrupted) exit_interrupted(j, res);
    printf("trained %d epochs in %.1fs (%.0f img/s)", res->epochs_run, res->seconds,
           res->seconds > 0 ? (double)res->steps * j->cfg.batch_size / res->seconds : 0);
    if (res->best_epoch)
        printf("; best epoch %d: val loss %.4f acc %.4f", res->best_epoch, res->best_val_loss, res->best_val_acc);
    printf("\n");
}

/* Test the trained model, record the metrics in it and save it. */
static void test_and_save(TrainJob *j, const TrainResult *res) {
    char metrics[512];
    int len = snprintf(metrics, sizeof metrics,
                       "{\"train_seconds\":%.2f,\"load_seconds\":%.3f,\"epochs_run\":%d,\"best_epoch\":%d,"
                       "\"val_loss\":%.6f,\"val_accuracy\":%.6f",
                       res->seconds, j->load_secs, res->epochs_run, res->best_epoch, res->best_val_loss,
                       res->best_val_acc);
    if (j->testset.n) {
        double loss;
        double acc = model_predict_dataset(&j->m, &j->testset, 1000, NULL, NULL, &loss);
        printf("test accuracy %.4f (loss %.4f) on %d images from %s\n", acc, loss, j->testset.n, j->test_path);
        len += snprintf(metrics + len, sizeof metrics - (size_t)len, ",\"test_accuracy\":%.6f,\"test_loss\":%.6f",
                        acc, loss);
    }
    snprintf(metrics + len, sizeof metrics - (size_t)len, "}");
    j->m.metrics_json = strdup(metrics);
    if (model_save_dtype(&j->m, j->out, (DgDtype)j->cfg.dtype) < 0) cli_fail(CMD, "%s", dg_errmsg());
    printf("saved %s\n", j->out);
}

static void job_free(TrainJob *j) {
    dataset_free(&j->all);
    dataset_free(&j->train);
    dataset_free(&j->val);
    dataset_free(&j->testset);
    dataset_free(&j->monset);
    model_free(&j->m);
    checkpoint_close(&j->ck);
    free(j->run_json);
    train_options_free(&j->o);
    free(j);
}

int cmd_train(int argc, char **argv) {
    /* the classical baseline has flags of its own (--gamma is the RBF width there) */
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--model=svm") == 0 ||
            (strcmp(argv[i], "--model") == 0 && i + 1 < argc && strcmp(argv[i + 1], "svm") == 0))
            return cmd_train_svm(argc, argv);
    /* static: still reachable when a bad flag or file exits 2 (LeakSanitizer) */
    static TrainJob *j;
    j = calloc(1, sizeof *j);
    if (!j) cli_fail(CMD, "out of memory");
    train_mpi_start(argc, argv);
    parse_settings(argc, argv, &j->o);
    if (j->o.print_config) {
        train_options_print_yaml(&j->o, stdout);
        job_free(j);
        return 0;
    }
    check_combinations(&j->o);
    if (j->o.resume) {
        adopt_checkpoint(j);
    } else {
        if (model_build_named(&j->m, j->o.model) < 0) cli_fail(CMD, "%s", dg_errmsg());
        if (j->o.summary) {
            model_summary(&j->m, stdout);
            job_free(j);
            return 0;
        }
    }
    make_config(j);
    plan_ensemble(j);
    choose_out(j);
    load_data(j);
    train_mpi_check_data(&j->train, &j->val);
    start_checkpointing(j);
    if (!j->ensemble_mode) train_mpi_silence(&j->cfg); /* ensemble_train gives the ranks their roles */
    int rc = 0;
    if (j->ensemble_mode) {
        j->ens.val_split = j->o.val_split;
        /* members split `all` themselves (shared split or folds) */
        rc = train_ensemble_run(&j->ens, &j->all, j->test_path ? &j->testset : NULL, j->test_path, &j->cfg, j->out);
    } else {
        TrainResult res;
        train_single(j, &res);
        if (train_mpi_writer()) test_and_save(j, &res);
    }
    job_free(j);
    train_mpi_end();
    return rc;
}
