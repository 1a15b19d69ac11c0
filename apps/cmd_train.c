/* cmd_train.c — `digits train`: a thin client of the public API
 * (include/digits.h): the flags become a dg_train_config (dg_train_set,
 * dg_train_config_load for --config FILE.yaml), dg_train_run does the whole
 * run — build a model from the zoo or a spec file, train it on MNIST (IDX
 * folder) or a Kaggle train.csv with a stratified validation split, one
 * network or an ensemble (--ensemble N, --ensemble-models, --kfold K),
 * checkpoints and --resume, the test score, the model file (without --out
 * a new name in --out-dir: runs/NAME.safetensors, then NAME-2, NAME-3, ...;
 * --out onto an existing file needs --overwrite) — and its lines come back
 * through the log callback.
 *
 * What stays here: the flag syntax, --help and the usage messages (they
 * read the option table, train/options.h, which --help, --config,
 * --print-config, checkpoints and --resume's conflict check share), the
 * layer table of --summary (model_summary: printing, not in the API), the
 * SIGINT/SIGTERM handlers (the first signal sets the run's stop flag: it
 * stops after the current step with a checkpoint; a second ends the process
 * at once) with the resume hint and exit status 128+signal, and under
 * mpirun joining the job and the ranks' exit: an ensemble's ranks end
 * together with rank 0's status, once rank 0 has said why. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api.h" /* the run's data hook (mpirun's check; not in the public API) */
#include "cli.h"
#include "cmd_train_mpi.h"
#include "digits.h"
#include "digits_internal.h"
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

static void stop_signals(int install);
static int catching; /* the stop signals are caught while the loop trains */

/* The run's lines: the run's own on stdout, notes on stderr; its stages
 * install the stop signals' handlers for the training loop only. */
static void print_line(int level, const char *line, void *user) {
    (void)user;
    if (level == DG_LOG_STAGE) {
        int training = strcmp(line, "train") == 0;
        if (catching) stop_signals(training);
        if (training && catching) dist_exit_on_signals(CMD); /* under mpirun: a signal ends the rank at once */
        return;
    }
    if (level == DG_LOG_WARN) {
        fflush(stdout);
        fprintf(stderr, "digits train: %s\n", line);
        return;
    }
    printf("%s\n", line);
    fflush(stdout);
}

/* What the command line does besides training. */
typedef struct {
    int print_config, summary;
} Actions;

/* flag opt = text into cfg, or exit 2 saying what the value must be (the
 * option table's words: train_option_set on a scratch copy says why). */
static void set_flag(dg_train_config *cfg, TrainOptions *scratch, const TrainOption *opt, const char *text) {
    if (dg_train_set(cfg, opt->name, text) == DG_OK) return;
    char why[300];
    if (train_option_set(scratch, opt, text, why, sizeof why) < 0) bad_flag_value(opt, text, why);
    cli_usage_error(CMD, "%s", dg_errmsg());
}

/* The settings: defaults, then --config FILE, then the other flags (which
 * win). Handles --help (exits 0). Exits 2 on any bad flag or file. */
static dg_train_config *parse_settings(int argc, char **argv, Actions *act) {
    int n_flags = 0;
    /* static: still reachable when a bad flag exits 2 (no leak report under LeakSanitizer) */
    static const TrainOption **opts;
    static const char **values;
    static dg_train_config *cfg;
    static TrainOptions scratch; /* the command line's actions, and the words of a bad value */
    opts = calloc((size_t)argc + 1, sizeof *opts);
    values = calloc((size_t)argc + 1, sizeof *values);
    cfg = dg_train_config_new();
    if (!opts || !values || !cfg) cli_fail(CMD, "out of memory");
    train_options_defaults(&scratch);
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
    dg_train_set(cfg, "quiet", "false"); /* the library's default is quiet; the command line's is not */
    dg_train_set_log(cfg, print_line, NULL);
    if (config && dg_train_config_load(cfg, config) != DG_OK) cli_usage_error(CMD, "%s", dg_errmsg());
    char why[300];
    for (int k = 0; k < n_flags; k++) {
        const char *text = values[k] ? values[k] : "true";
        const TrainOption *opt = opts[k];
        if (strcmp(opt->name, "config") == 0) continue; /* read above */
        if (strcmp(opt->name, "print-config") == 0 || strcmp(opt->name, "summary") == 0) {
            if (train_option_set(&scratch, opt, text, why, sizeof why) < 0) bad_flag_value(opt, text, why);
            continue;
        }
        set_flag(cfg, &scratch, opt, text);
    }
    act->print_config = scratch.print_config;
    act->summary = scratch.summary;
    train_options_free(&scratch);
    free(opts);
    free(values);
    opts = NULL, values = NULL;
    dg_train_config *c = cfg;
    cfg = NULL;
    return c;
}

/* A setting's value as text (buf). */
static const char *setting(const dg_train_config *cfg, const char *name, char *buf, size_t len) {
    if (dg_train_get(cfg, name, buf, len) != DG_OK) cli_fail(CMD, "%s", dg_errmsg());
    return buf;
}

/* --summary: the layer table of --model, then exit 0 (exit 2 with --resume). */
static int print_summary(const dg_train_config *cfg) {
    char name[4200], resume[8];
    if (setting(cfg, "resume", resume, sizeof resume)[0])
        cli_usage_error(CMD, "--summary cannot be combined with --resume");
    Model m;
    if (model_build_named(&m, setting(cfg, "model", name, sizeof name)) < 0) cli_fail(CMD, "%s", dg_errmsg());
    model_summary(&m, stdout);
    model_free(&m);
    return 0;
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
    DG_ASSERT(buf && len > 0); /* (also tells gcc's -Wformat-truncation so under the sanitizers) */
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

/* ==== stopping ================================================================ */

/* The signal that asked the run to stop (0: none): dg_train_run's stop flag. */
static volatile int stop_signal;

/* The first SIGINT/SIGTERM sets the stop flag (the run stops after the
 * current step, with a checkpoint); a second one ends the process at once
 * — safe, since every file digits writes is replaced atomically. */
static void on_stop_signal(int sig) {
    if (stop_signal) {
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    stop_signal = sig;
    static const char msg[] = "\ndigits: stopping after the current step (again to quit at once)\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
}

/* Installs on_stop_signal (install 0: the defaults again). SA_RESTART: a
 * save in progress must not fail with EINTR. */
static void stop_signals(int install) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = install ? on_stop_signal : SIG_DFL;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* Whether a stop by signal ends in something to keep: one network always
 * (its best model so far), an ensemble only with checkpoints. Without, the
 * signals keep their default (the process ends); with, they are caught
 * while the loop trains (print_line's stages). */
static int catch_signals(const dg_train_config *cfg) {
    char v[4200];
    if (setting(cfg, "checkpoint-dir", v, sizeof v)[0] || setting(cfg, "resume", v, sizeof v)[0]) return 1;
    return atoi(setting(cfg, "ensemble", v, sizeof v)) <= 1 && !setting(cfg, "ensemble-models", v, sizeof v)[0] &&
           atoi(setting(cfg, "kfold", v, sizeof v)) == 0;
}

/* Every rank exits with status; rank 0 has printed its lines first (a
 * rank leaving early could make mpirun end rank 0 before it does). */
static void exit_all(int status) {
    fflush(stdout);
    if (dist_size() > 1) dist_barrier();
    exit(status);
}

/* Stopped by a signal: say how to go on (rank 0), and exit 128+signal (an
 * ensemble's ranks together, with rank 0's status). */
static void exit_interrupted(const dg_train_outcome *oc) {
    int status = stop_signal > 0 ? 128 + stop_signal : 130;
    if (oc->ensemble && dist_size() > 1) dist_bcast(&status, sizeof status, 0);
    if (oc->ensemble && dist_rank() > 0) exit_all(status); /* rank 0 says how to go on */
    char word[8300];
    if (oc->checkpoint[0]) printf("checkpoint %s\n", oc->checkpoint);
    fflush(stdout);
    const char *dir = cli_shell_word(oc->checkpoint_dir, word, sizeof word);
    if (oc->ensemble)
        fprintf(stderr, "digits: interrupted %s member %d of %d (%s holds the %d before it); resume with: "
                "digits train --resume %s\n", oc->checkpoint[0] ? "in" : "before", oc->stop_member + 1, oc->members,
                oc->model_path, oc->stop_member, dir);
    else if (oc->checkpoint_dir[0])
        fprintf(stderr, "digits: interrupted at epoch %d step %ld; resume with: digits train --resume %s\n",
                oc->stop_epoch, oc->stop_step, dir);
    else
        fprintf(stderr, "digits: interrupted at epoch %d step %ld; the best model so far is in %s "
                "(without --checkpoint-dir the run cannot be resumed)\n", oc->stop_epoch, oc->stop_step,
                oc->model_path);
    if (oc->ensemble) exit_all(status);
    exit(status);
}

/* An ensemble that failed once training began: every rank failed with it
 * (the library shares rank 0's status); rank 0 says why, every rank exits 1. */
static void exit_ensemble_failed(void) {
    if (dist_rank() == 0) fprintf(stderr, "digits %s: %s\n", CMD, dg_errmsg());
    exit_all(EXIT_RUNTIME);
}

int cmd_train(int argc, char **argv) {
    /* the classical baseline has flags of its own (--gamma is the RBF width there) */
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--model=svm") == 0 ||
            (strcmp(argv[i], "--model") == 0 && i + 1 < argc && strcmp(argv[i + 1], "svm") == 0))
            return cmd_train_svm(argc, argv);
    Actions act;
    /* static: still reachable when the run fails and exits (LeakSanitizer) */
    static dg_train_config *cfg;
    train_mpi_start(argc, argv);
    cfg = parse_settings(argc, argv, &act);
    cfg->data_hook = train_mpi_check_data;
    train_mpi_check_settings(cfg);
    if (act.print_config) {
        char *yaml = dg_train_config_yaml(cfg);
        if (!yaml) cli_fail(CMD, "out of memory");
        fputs(yaml, stdout);
        dg_free(yaml);
        dg_train_config_free(cfg);
        return 0;
    }
    if (dg_train_config_check(cfg) != DG_OK) cli_usage_error(CMD, "%s", dg_errmsg());
    if (act.summary) {
        int rc = print_summary(cfg);
        dg_train_config_free(cfg);
        return rc;
    }
    static dg_train_outcome oc;
    catching = catch_signals(cfg);
    int rc = dg_train_run(cfg, NULL, &oc, NULL, NULL, &stop_signal);
    if (rc == DG_STOPPED) exit_interrupted(&oc);
    if (rc != DG_OK && oc.ensemble) exit_ensemble_failed();
    if (rc == DG_ERR_ARG) cli_usage_error(CMD, "%s", dg_errmsg());
    if (rc != DG_OK) cli_fail(CMD, "%s", dg_errmsg());
    dg_train_config_free(cfg);
    train_mpi_end();
    return 0;
}
