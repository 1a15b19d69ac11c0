/* options.c — the table of `digits train` options and everything derived
 * from it: setting a value from text, formatting it back, "did you mean",
 * the YAML config reader (libyaml) and writer, and the JSON stored in model
 * files and checkpoints; see options.h.
 *
 * Left out on purpose: a generic YAML data model (only the shapes a config
 * file has are read), and options of other subcommands (train --model svm
 * keeps its own flags). */
#include "train/options.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "core/check.h"
#include "core/suggest.h"
#include "model/model.h"
#include "train/ensemble_train.h"

_Static_assert(sizeof(OptimType) == sizeof(int) && sizeof(SchedType) == sizeof(int),
               "choices are stored as int");

#define F(member) offsetof(TrainOptions, member)
#define C(member) offsetof(TrainOptions, cfg.member)
#define ALL (OPTF_CKPT | OPTF_META)

/* The table. Order: --help's and --print-config's. Choices are listed in
 * their enum's order (optim.h, the dtype and vote fields). */
static const TrainOption table[] = {
    {"config", OPT_STR, F(config), NULL, 0, 0, NULL, "FILE.yaml",
     "read settings from a YAML file (keys: these flags' names; flags given as well override it)", OPTF_CLI, NULL, "none"},
    {"print-config", OPT_BOOL, F(print_config), "false", 0, 0, NULL, NULL,
     "print the effective settings as YAML (a --config file) and exit", OPTF_CLI, NULL, NULL},
    {"model", OPT_STR, F(model), "cnn-bn", 0, 0, NULL, "NAME|SPEC",
     "zoo name (models/NAME.spec) or spec file, or svm (PCA + RBF SVM; 'digits train --model svm --help')",
     OPTF_RUN | OPTF_META, NULL, NULL},
    {"data", OPT_STR, F(data), "data/mnist", 0, 0, NULL, "DIR|train.csv", "MNIST IDX folder or Kaggle train.csv",
     OPTF_RUN, NULL, NULL},
    {"test", OPT_STR, F(test), NULL, 0, 0, NULL, "DIR|FILE|none",
     "evaluate after training (IDX folder: its t10k split)", OPTF_RUN, NULL, "same as --data when a folder"},
    {"epochs", OPT_INT, C(epochs), "10", 1, 100000, NULL, "N", "passes over the training set", ALL, NULL, NULL},
    {"batch-size", OPT_INT, C(batch_size), "64", 1, 65536, NULL, "N", "images per step", ALL, NULL, NULL},
    {"lr", OPT_FLOAT, C(lr), "0.001", 0, 100, NULL, "X", "learning rate (max lr for onecycle)", ALL, NULL, NULL},
    {"optimizer", OPT_CHOICE, C(optim), "adam", 0, 0, "sgd|adam|nadam|adamw", "NAME",
     "optimiser (adamw: decoupled weight decay)", ALL, NULL, NULL},
    {"momentum", OPT_FLOAT, C(momentum), "0.9", 0, 1, NULL, "X", "SGD momentum", ALL, NULL, NULL},
    {"nesterov", OPT_BOOL, C(nesterov), "false", 0, 0, NULL, NULL, "Nesterov momentum (SGD)", ALL, NULL, NULL},
    {"weight-decay", OPT_FLOAT, C(weight_decay), "0", 0, 10, NULL, "X", "L2 penalty added to gradients", ALL, NULL, NULL},
    {"schedule", OPT_CHOICE, C(schedule), "constant", 0, 0, "constant|step|exp|plateau|onecycle|cosine", "S",
     "learning-rate schedule", ALL, NULL, NULL},
    {"gamma", OPT_FLOAT, C(gamma), "0", 1e-6, 1, NULL, "X", "step/exp decay factor (0: the schedule's default)", ALL,
     NULL, "0.1 step, 0.95 exp"},
    {"step-size", OPT_INT, C(step_size), "5", 1, 100000, NULL, "N", "epochs between step decays", ALL, NULL, NULL},
    {"patience", OPT_INT, C(patience), "0", 0, 100000, NULL, "N", "early stopping on val loss (0 = off)", ALL, NULL, NULL},
    {"ema", OPT_FLOAT, C(ema), "0", 0, 0.999999, NULL, "DECAY",
     "keep an exponential moving average of the weights (e.g. 0.999); validation, early stopping and the "
     "saved model use it (0 = off)", ALL, NULL, NULL},
    {"label-smoothing", OPT_FLOAT, C(label_smoothing), "0", 0, 0.999, NULL, "EPS",
     "train towards (1-EPS) one-hot + EPS/10 (PyTorch's label_smoothing); the validation loss (best epoch, "
     "early stopping, plateau) is the smoothed one too, as Keras's val_loss (0 = off)", ALL, NULL, NULL},
    {"lookahead", OPT_INT, C(lookahead), "0", 0, 1000000, NULL, "K",
     "Lookahead around the optimiser: every K steps the weights move to slow + ALPHA (fast - slow), the new "
     "slow weights (0 = off)", ALL, NULL, NULL},
    {"lookahead-alpha", OPT_FLOAT, C(lookahead_alpha), "0.5", 0.001, 1, NULL, "ALPHA",
     "Lookahead's step towards the fast weights", ALL, NULL, NULL},
    {"val-split", OPT_FLOAT, F(val_split), "0.1", 0, 0.9, NULL, "X", "stratified validation fraction", OPTF_RUN, NULL,
     NULL},
    {"limit", OPT_INT, F(limit), "0", 1, 100000000, NULL, "N", "use only the first N training images (0 = all)",
     OPTF_RUN, NULL, "all"},
    {"max-steps", OPT_LONG, C(max_steps), "0", 0, 2000000000, NULL, "N", "stop after N optimiser steps (0 = no limit)",
     ALL, NULL, NULL},
    {"seed", OPT_U64, C(seed), "42", 0, 0, NULL, "N", "seed for init, split, shuffle, dropout", ALL, NULL, NULL},
    {"threads", OPT_INT, C(threads), "0", 0, 1024, NULL, "N", "worker threads (0 = all cores)", ALL, NULL, NULL},
    {"dist-mode", OPT_CHOICE, C(dist_mode), "exact", 0, 0, "exact|sync", "M",
     "under mpirun: exact (bit-identical to one process) or sync (SyncBN, one gradient all-reduce a step: scales)",
     OPTF_CKPT, NULL, NULL},
    {"out", OPT_STR, C(out_path), NULL, 0, 0, NULL, "FILE",
     "model file (safetensors); an existing file is refused without --overwrite", OPTF_CKPT, "out_path",
     "OUT-DIR/MODEL.safetensors, else MODEL-2, -3, ..."},
    {"out-dir", OPT_STR, F(out_dir), "runs", 0, 0, NULL, "DIR", "folder of the automatically named model (no --out)", 0,
     NULL, NULL},
    {"overwrite", OPT_BOOL, F(overwrite), "false", 0, 0, NULL, NULL, "let --out replace an existing file", 0, NULL, NULL},
    {"dtype", OPT_CHOICE, C(dtype), "f32", 0, 0, "f32|bf16|f16", "T", "tensor type the model file is saved with", ALL,
     NULL, NULL},
    {"log", OPT_STR, C(log_path), NULL, 0, 0, NULL, "FILE.csv", "per-epoch log", ALL, "log_path", "none"},
    {"augment", OPT_AUGMENT, F(augment), NULL, 0, 0, NULL, "SPEC",
     "on-the-fly augmentation: preset (seed000, seed002, seed003, mnist) or rotate=DEG,shift=F,zoom=Z,zoomxy=Z,"
     "shear=DEG,perspective=D:P,elastic=ALPHA:SIGMA[:P] (see 'digits augment --help')",
     OPTF_RUN | OPTF_META, NULL, "none"},
    {"ensemble", OPT_INT, F(ensemble), "1", 1, ENSEMBLE_TRAIN_MAX, NULL, "N",
     "train N members of --model, seeds seed..seed+N-1", OPTF_RUN, NULL, NULL},
    {"ensemble-models", OPT_STR, F(ensemble_models), NULL, 0, 0, NULL, "L",
     "train one member per name in the comma list L (e.g. cnn-bn,cnn-bn,bigkernel,resnet5,stn)", OPTF_RUN, NULL,
     "none"},
    {"kfold", OPT_INT, F(kfold), "0", 2, ENSEMBLE_TRAIN_MAX, NULL, "K",
     "stratified K-fold: one member per fold, each validated and early-stopped on its own held-out fold", OPTF_RUN,
     NULL, "off"},
    {"vote", OPT_CHOICE, F(vote_logits), "probs", 0, 0, "probs|logits", "V",
     "ensemble vote: mean of probabilities or sum of logits", OPTF_RUN, NULL, NULL},
    {"normalize", OPT_CHOICE, C(unit_scale), "standard", 0, 0, "standard|none|signed", "N",
     "inputs standardised by the training set's pixel mean and std, or none: pixels/255 only (Keras's rescale), "
     "or signed: pixels/255 mapped to [-1,1] (PyTorch's Normalize((0.5,), (0.5,)))",
     OPTF_RUN | OPTF_META, NULL, NULL},
    {"precision", OPT_CHOICE, F(precision), "fp32", 0, 0, "fp32|bf16", "P",
     "bf16: convolutions multiply in bfloat16 (AVX512_BF16), fp32 master weights and accumulation",
     OPTF_RUN | OPTF_META, NULL, NULL},
    {"checkpoint-dir", OPT_STR, F(checkpoint_dir), NULL, 0, 0, NULL, "DIR",
     "checkpoint every epoch and on SIGINT/SIGTERM (an ensemble: each member in DIR/member-K while it trains)", 0,
     NULL, "none"},
    {"resume", OPT_STR, F(resume), NULL, 0, 0, NULL, "DIR",
     "continue the run checkpointed in DIR (its settings; other flags must agree with them)", OPTF_CLI, NULL, NULL},
    {"monitor", OPT_STR, F(monitor), NULL, 0, 0, NULL, "DIR|FILE",
     "also measure accuracy on this set after each epoch (IDX folder: its t10k split) and log it with cumulative "
     "training seconds; never used for decisions (time-to-accuracy benchmark)", 0, NULL, "none"},
    {"monitor-test", OPT_BOOL, F(monitor_test), "false", 0, 0, NULL, NULL, "monitor the --test set", 0, NULL, NULL},
    {"monitor-every", OPT_LONG, C(monitor_every), "0", 0, 2000000000, NULL, "N",
     "monitor every N steps as well as after each epoch (0 = epochs only)", 0, NULL, NULL},
    {"summary", OPT_BOOL, F(summary), "false", 0, 0, NULL, NULL, "print the model summary and exit", OPTF_CLI, NULL,
     NULL},
    {"quiet", OPT_BOOL, C(quiet), "false", 0, 0, NULL, NULL, "no per-epoch lines", 0, NULL, NULL},
    {"help", OPT_BOOL, F(help), "false", 0, 0, NULL, NULL, "this help", OPTF_CLI, NULL, NULL},
};
#define N_TABLE ((int)(sizeof table / sizeof *table))
_Static_assert(sizeof table / sizeof *table <= TRAIN_OPTIONS_MAX, "raise TRAIN_OPTIONS_MAX");

const TrainOption *train_options_table(int *n) {
    *n = N_TABLE;
    return table;
}

int train_option_index(const TrainOption *opt) { return (int)(opt - table); }

/* a and b equal with '-' and '_' alike */
static int same_name(const char *a, const char *b) {
    for (; *a && *b; a++, b++)
        if (*a != *b && !((*a == '-' || *a == '_') && (*b == '-' || *b == '_'))) return 0;
    return *a == *b;
}

const TrainOption *train_option_find(const char *name) {
    for (int i = 0; i < N_TABLE; i++)
        if (same_name(table[i].name, name)) return &table[i];
    return NULL;
}

const char *train_option_suggest(const char *name) {
    const char *names[N_TABLE];
    for (int i = 0; i < N_TABLE; i++) names[i] = table[i].name;
    return suggest_closest(name, names, N_TABLE);
}

/* ==== values ================================================================ */

/* The field an option sets. */
static void *field(TrainOptions *o, const TrainOption *opt) { return (char *)o + opt->off; }
static const void *cfield(const TrainOptions *o, const TrainOption *opt) { return (const char *)o + opt->off; }

/* The index of word in "a|b|c", or -1. */
static int choice_index(const char *choices, const char *word) {
    int k = 0;
    for (const char *p = choices;; k++) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (strlen(word) == n && strncmp(p, word, n) == 0) return k;
        if (!bar) return -1;
        p = bar + 1;
    }
}

/* Choice k of "a|b|c" into buf. */
static void choice_name(const char *choices, int k, char *buf, size_t len) {
    const char *p = choices;
    for (int i = 0; i < k && p; i++) {
        p = strchr(p, '|');
        if (p) p++;
    }
    if (!p) p = "?";
    const char *bar = strchr(p, '|');
    snprintf(buf, len, "%.*s", (int)(bar ? (size_t)(bar - p) : strlen(p)), p);
}

void train_option_describe(const TrainOption *opt, char *buf, size_t len) {
    /* a default outside the range ("limit: 0" = all) is accepted too */
    int numeric = opt->type == OPT_INT || opt->type == OPT_LONG || opt->type == OPT_FLOAT;
    double d = numeric && opt->def ? strtod(opt->def, NULL) : 0;
    if (numeric && opt->def && !(d >= opt->lo && d <= opt->hi)) {
        int n = snprintf(buf, len, "%s or ", opt->def);
        if (n > 0 && (size_t)n < len) buf += n, len -= (size_t)n;
    }
    switch (opt->type) {
    case OPT_INT:
    case OPT_LONG:
        if (opt->hi >= 100000) snprintf(buf, len, "an integer ≥ %g", opt->lo);
        else snprintf(buf, len, "an integer in %g..%g", opt->lo, opt->hi);
        break;
    case OPT_FLOAT: snprintf(buf, len, "a number in %g..%g", opt->lo, opt->hi); break;
    case OPT_U64: snprintf(buf, len, "an integer ≥ 0"); break;
    case OPT_BOOL: snprintf(buf, len, "true or false"); break;
    case OPT_STR: snprintf(buf, len, "a string"); break;
    case OPT_AUGMENT: snprintf(buf, len, "an augmentation spec (see 'digits augment --help')"); break;
    case OPT_CHOICE: {
        size_t n = (size_t)snprintf(buf, len, "one of ");
        for (const char *p = opt->choices; *p && n + 2 < len; p++) {
            if (*p == '|') n += (size_t)snprintf(buf + n, len - n, ", ");
            else buf[n++] = *p, buf[n] = '\0';
        }
        break;
    }
    }
}

static int parse_bool(const char *s) {
    static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) return 1;
        if (strcasecmp(s, no[i]) == 0) return 0;
    }
    return -1;
}

/* Replace an owned string. */
static void set_str(char **slot, const char *s) {
    char *copy = s ? strdup(s) : NULL;
    DG_ASSERT(!s || copy); /* out of memory */
    free(*slot);
    *slot = copy;
}

/* A number in range, or the option's default (always accepted: "gamma: 0").
 * Floats are compared as the float they are stored as, so a value printed
 * back (shortest text of that float) is accepted again. */
static int number_ok(const TrainOption *opt, double v) {
    if (opt->type == OPT_FLOAT) {
        if (!(fabs(v) <= FLT_MAX)) return 0; /* (float)v would overflow */
        float f = (float)v;
        return (f >= (float)opt->lo && f <= (float)opt->hi) || (opt->def && f == strtof(opt->def, NULL));
    }
    return (v >= opt->lo && v <= opt->hi) || (opt->def && v == strtod(opt->def, NULL));
}

/* Whether UTF-8 text holds only characters libyaml prints and reads back
 * unchanged inside double quotes: no control characters, line or paragraph
 * separators, byte-order marks or non-characters (C0, C1, U+2028/9, U+FEFF,
 * U+FFFE/F). */
static int printable(const char *text) {
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) return 0;
        if (*p == 0xc2 && p[1] < 0xa0) return 0;
        if (*p == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9)) return 0;
        if (*p == 0xef && ((p[1] == 0xbb && p[2] == 0xbf) || (p[1] == 0xbf && (p[2] == 0xbe || p[2] == 0xbf))))
            return 0;
    }
    return 1;
}

int train_option_set(TrainOptions *o, const TrainOption *opt, const char *text, char *why, size_t len) {
    void *p = field(o, opt);
    char *end = NULL;
    int ok = 1;
    errno = 0;
    switch (opt->type) {
    case OPT_INT:
    case OPT_LONG: {
        long v = strtol(text, &end, 10);
        ok = *text && !*end && !errno && number_ok(opt, (double)v);
        if (ok && opt->type == OPT_INT) *(int *)p = (int)v;
        if (ok && opt->type == OPT_LONG) *(long *)p = v;
        break;
    }
    case OPT_FLOAT: {
        double v = strtod(text, &end);
        ok = *text && !*end && !errno && isfinite(v) && number_ok(opt, v);
        if (ok) *(float *)p = (float)v;
        break;
    }
    case OPT_U64: {
        unsigned long long v = strtoull(text, &end, 10);
        ok = *text && *text != '-' && !*end && !errno;
        if (ok) *(uint64_t *)p = v;
        break;
    }
    case OPT_BOOL: {
        int v = parse_bool(text);
        ok = v >= 0;
        if (ok) *(int *)p = v;
        break;
    }
    case OPT_CHOICE: {
        int k = choice_index(opt->choices, text);
        ok = k >= 0;
        if (ok) *(int *)p = k;
        break;
    }
    case OPT_STR: set_str((char **)p, *text ? text : NULL); break;
    case OPT_AUGMENT: {
        static AugmentConfig aug; /* only its canonical text is kept */
        if (!*text) {
            set_str((char **)p, NULL);
        } else if (augment_parse(text, &aug) < 0) {
            snprintf(why, len, "%s", dg_errmsg());
            return -1;
        } else {
            set_str((char **)p, augment_is_identity(&aug) ? NULL : aug.text);
        }
        break;
    }
    }
    if (!ok) train_option_describe(opt, why, len);
    return ok ? 0 : -1;
}

/* The shortest decimal text that reads back as the same float. */
static void format_float(float v, char *buf, size_t len) {
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, len, "%.*g", prec, (double)v);
        if (strtof(buf, NULL) == v) return;
    }
}

void train_option_format(const TrainOptions *o, const TrainOption *opt, char *buf, size_t len) {
    const void *p = cfield(o, opt);
    switch (opt->type) {
    case OPT_INT: snprintf(buf, len, "%d", *(const int *)p); break;
    case OPT_LONG: snprintf(buf, len, "%ld", *(const long *)p); break;
    case OPT_FLOAT: format_float(*(const float *)p, buf, len); break;
    case OPT_U64: snprintf(buf, len, "%llu", (unsigned long long)*(const uint64_t *)p); break;
    case OPT_BOOL: snprintf(buf, len, "%s", *(const int *)p ? "true" : "false"); break;
    case OPT_CHOICE: choice_name(opt->choices, *(const int *)p, buf, len); break;
    case OPT_STR:
    case OPT_AUGMENT: snprintf(buf, len, "%s", *(char *const *)p ? *(char *const *)p : ""); break;
    }
}

void train_option_copy(TrainOptions *dst, const TrainOptions *src, const TrainOption *opt) {
    if (opt->type == OPT_STR || opt->type == OPT_AUGMENT) {
        set_str((char **)field(dst, opt), *(char *const *)cfield(src, opt));
        return;
    }
    size_t size = opt->type == OPT_LONG ? sizeof(long) : opt->type == OPT_U64 ? sizeof(uint64_t)
                : opt->type == OPT_FLOAT ? sizeof(float) : sizeof(int);
    memcpy(field(dst, opt), cfield(src, opt), size);
}

void train_options_defaults(TrainOptions *o) {
    memset(o, 0, sizeof *o);
    train_config_defaults(&o->cfg);
    char why[160];
    for (int i = 0; i < N_TABLE; i++)
        if (table[i].def) {
            int rc = train_option_set(o, &table[i], table[i].def, why, sizeof why);
            DG_ASSERT(rc == 0); /* a table default it cannot read */
        }
}

void train_options_free(TrainOptions *o) {
    for (int i = 0; i < N_TABLE; i++)
        if (table[i].type == OPT_STR || table[i].type == OPT_AUGMENT) {
            char **slot = (char **)field(o, &table[i]);
            free(*slot);
            *slot = NULL;
        }
}

/* ==== YAML out ================================================================ */

/* s as a YAML double-quoted scalar. */
static void put_quoted(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f) fprintf(f, "\\x%02x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

void train_options_print_yaml(const TrainOptions *o, FILE *f) {
    fprintf(f, "# digits train settings (digits train --print-config); use with: digits train --config FILE\n");
    char buf[8300];
    for (int i = 0; i < N_TABLE; i++) {
        const TrainOption *opt = &table[i];
        if (opt->flags & OPTF_CLI) continue;
        char must[200] = "";
        if (opt->type != OPT_STR && opt->type != OPT_AUGMENT) train_option_describe(opt, must, sizeof must);
        fprintf(f, "\n# %s%s%s\n%s: ", opt->help, must[0] ? "; " : "", must, opt->name);
        train_option_format(o, opt, buf, sizeof buf);
        if (opt->type == OPT_STR || opt->type == OPT_AUGMENT) {
            if (buf[0]) put_quoted(f, buf);
            else fputs("null", f);
        } else {
            fputs(buf, f);
        }
        fputc('\n', f);
    }
}

/* ==== YAML in ================================================================= */

/* Seed 004's configs/config.yaml: section.key -> our option, or why it is ignored. */
typedef struct {
    const char *section, *key, *option, *ignored;
} SeedKey;
static const SeedKey seed_keys[] = {
    {"train_params", "learning_rate", "lr", NULL},
    {"dataset_params", "root_dir", "data", NULL},
    {"logging_params", "log_file", "log", NULL},
    {"models_params", "save_path", "out-dir", NULL},
    {"test_params", "batch_size", NULL, "the test batch size does not change results"},
    {"results_params", "results_path", NULL, "train writes no results folder; digits report makes one"},
};
#define N_SEED_KEYS ((int)(sizeof seed_keys / sizeof *seed_keys))

static int is_seed_section(const char *s) {
    for (int i = 0; i < N_SEED_KEYS; i++)
        if (strcmp(seed_keys[i].section, s) == 0) return 1;
    return 0;
}

typedef struct {
    yaml_parser_t parser;
    yaml_event_t ev;
    const char *path;
    TrainOptions *o;
} YamlReader;

/* The next event; -1 with the syntax error's line and column. */
static int next_event(YamlReader *r) {
    yaml_event_delete(&r->ev);
    if (yaml_parser_parse(&r->parser, &r->ev)) return 0;
    memset(&r->ev, 0, sizeof r->ev);
    char shown[96];
    return dg_set_error("%s:%zu:%zu: YAML syntax error: %s%s%s", r->path, r->parser.problem_mark.line + 1,
                        r->parser.problem_mark.column + 1,
                        dg_printable(r->parser.problem ? r->parser.problem : "?", shown, sizeof shown),
                        r->parser.context ? " " : "", r->parser.context ? r->parser.context : "");
}

/* The 1-based line of the current event. */
static size_t ev_line(const YamlReader *r) { return r->ev.start_mark.line + 1; }

/* "unknown key 'k' (did you mean 'x'?)" */
static int unknown_key(YamlReader *r, const char *key, size_t line) {
    char shown[64];
    const char *near = train_option_suggest(key);
    if (near)
        return dg_set_error("%s:%zu: unknown key '%s' (did you mean '%s'?)", r->path, line,
                            dg_printable(key, shown, sizeof shown), near);
    return dg_set_error("%s:%zu: unknown key '%s'", r->path, line, dg_printable(key, shown, sizeof shown));
}

/* An unknown key in one of seed 004's sections: the nearest of its own
 * keys or of ours. */
static int unknown_seed_key(YamlReader *r, const char *section, const char *key, size_t line) {
    const char *near = train_option_suggest(key);
    int best = near ? suggest_distance(key, near) : 3;
    for (int i = 0; i < N_SEED_KEYS; i++) {
        int d = suggest_distance(key, seed_keys[i].key);
        if (strcmp(seed_keys[i].section, section) == 0 && d < best && d < (int)strlen(key))
            near = seed_keys[i].key, best = d;
    }
    char shown[64];
    if (near)
        return dg_set_error("%s:%zu: unknown key '%s' in %s (did you mean '%s'?)", r->path, line,
                            dg_printable(key, shown, sizeof shown), section, near);
    return dg_set_error("%s:%zu: unknown key '%s' in %s", r->path, line, dg_printable(key, shown, sizeof shown),
                        section);
}

/* key: VALUE for option opt (the value event is current). */
static int set_from_yaml(YamlReader *r, const TrainOption *opt, const char *key, size_t key_line) {
    if (opt->flags & OPTF_CLI)
        return dg_set_error("%s:%zu: '%s' is a command-line flag, not a config key", r->path, key_line, key);
    if (r->ev.type != YAML_SCALAR_EVENT)
        return dg_set_error("%s:%zu: '%s' takes one value, not a list or mapping", r->path, ev_line(r), opt->name);
    int i = train_option_index(opt);
    if (r->o->line[i])
        return dg_set_error("%s:%zu: '%s' is set twice (first on line %d)", r->path, key_line, opt->name, r->o->line[i]);
    const char *text = (const char *)r->ev.data.scalar.value;
    int plain = r->ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    int null = plain && (!*text || strcmp(text, "~") == 0 || strcmp(text, "null") == 0 || strcmp(text, "Null") == 0 ||
                         strcmp(text, "NULL") == 0);
    char why[300];
    if (null && opt->type != OPT_STR && opt->type != OPT_AUGMENT)
        return dg_set_error("%s:%zu: '%s' needs a value: %s", r->path, ev_line(r), opt->name,
                            (train_option_describe(opt, why, sizeof why), why));
    if (strlen(text) != r->ev.data.scalar.length || !printable(text))
        return dg_set_error("%s:%zu: '%s' holds a control character or line break", r->path, ev_line(r), opt->name);
    if (train_option_set(r->o, opt, null ? "" : text, why, sizeof why) < 0) {
        if (opt->type == OPT_AUGMENT) /* the spec's own message, "--augment: ..." */
            return dg_set_error("%s:%zu: 'augment': %s", r->path, ev_line(r),
                                strncmp(why, "--augment: ", 11) == 0 ? why + 11 : why);
        return dg_set_error("%s:%zu: '%s' must be %s", r->path, ev_line(r), opt->name, why);
    }
    r->o->given[i] = 2;
    r->o->line[i] = (int)key_line;
    return 0;
}

/* Adds "section.key (why)" to the notice of ignored keys. */
static void note_ignored(TrainOptions *o, const char *section, const char *key, const char *why) {
    size_t n = strlen(o->notice);
    snprintf(o->notice + n, sizeof o->notice - n, "%s%s.%s (%s)", n ? ", " : "", section, key, why);
}

/* One of seed 004's sections (its MAPPING_START is current). */
static int read_seed_section(YamlReader *r, const char *section) {
    for (;;) {
        if (next_event(r) < 0) return -1;
        if (r->ev.type == YAML_MAPPING_END_EVENT) return 0;
        if (r->ev.type != YAML_SCALAR_EVENT)
            return dg_set_error("%s:%zu: a key of '%s' must be a plain name", r->path, ev_line(r), section);
        char key[64];
        snprintf(key, sizeof key, "%s", (const char *)r->ev.data.scalar.value);
        size_t line = ev_line(r);
        const SeedKey *sk = NULL;
        for (int i = 0; i < N_SEED_KEYS && !sk; i++)
            if (strcmp(seed_keys[i].section, section) == 0 && strcmp(seed_keys[i].key, key) == 0) sk = &seed_keys[i];
        const TrainOption *opt = sk ? (sk->option ? train_option_find(sk->option) : NULL) : train_option_find(key);
        if (next_event(r) < 0) return -1;
        if (sk && sk->ignored) {
            if (r->ev.type != YAML_SCALAR_EVENT)
                return dg_set_error("%s:%zu: '%s.%s' takes one value", r->path, ev_line(r), section, key);
            note_ignored(r->o, section, key, sk->ignored);
            continue;
        }
        if (!opt) return unknown_seed_key(r, section, key, line);
        if (set_from_yaml(r, opt, key, line) < 0) return -1;
    }
}

/* The top-level mapping (its MAPPING_START is current). */
static int read_mapping(YamlReader *r) {
    for (;;) {
        if (next_event(r) < 0) return -1;
        if (r->ev.type == YAML_MAPPING_END_EVENT) return 0;
        if (r->ev.type != YAML_SCALAR_EVENT)
            return dg_set_error("%s:%zu: a key must be a plain name", r->path, ev_line(r));
        char key[64];
        snprintf(key, sizeof key, "%s", (const char *)r->ev.data.scalar.value);
        size_t line = ev_line(r);
        const TrainOption *opt = train_option_find(key);
        if (next_event(r) < 0) return -1;
        if (!opt && is_seed_section(key)) {
            if (r->ev.type != YAML_MAPPING_START_EVENT)
                return dg_set_error("%s:%zu: '%s' must hold 'key: value' lines", r->path, line, key);
            if (read_seed_section(r, key) < 0) return -1;
            continue;
        }
        if (!opt) return unknown_key(r, key, line);
        if (set_from_yaml(r, opt, key, line) < 0) return -1;
    }
}

/* The whole stream: nothing, an empty document, or one mapping. */
static int read_stream(YamlReader *r) {
    int docs = 0;
    for (;;) {
        if (next_event(r) < 0) return -1;
        switch (r->ev.type) {
        case YAML_STREAM_END_EVENT: return 0;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) return dg_set_error("%s:%zu: one YAML document only", r->path, ev_line(r));
            break;
        case YAML_MAPPING_START_EVENT:
            if (read_mapping(r) < 0) return -1;
            break;
        case YAML_SCALAR_EVENT:
            if (r->ev.data.scalar.length == 0 || strcmp((const char *)r->ev.data.scalar.value, "~") == 0) break;
            return dg_set_error("%s:%zu: expected 'key: value' lines", r->path, ev_line(r));
        case YAML_ALIAS_EVENT: return dg_set_error("%s:%zu: YAML aliases are not supported", r->path, ev_line(r));
        case YAML_SEQUENCE_START_EVENT: return dg_set_error("%s:%zu: expected 'key: value' lines, not a list", r->path, ev_line(r));
        default: break;
        }
    }
}

int train_options_parse_yaml(TrainOptions *o, const char *path, const unsigned char *text, size_t len) {
    YamlReader r = {.path = path, .o = o};
    if (!yaml_parser_initialize(&r.parser)) return dg_set_error("%s: cannot start the YAML parser", path);
    yaml_parser_set_input_string(&r.parser, text, len);
    int rc = read_stream(&r);
    yaml_event_delete(&r.ev);
    yaml_parser_delete(&r.parser);
    return rc;
}

int train_options_read_yaml(TrainOptions *o, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return dg_set_error("%s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = dg_xmalloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            if (cap >= (1u << 24)) {
                fclose(f);
                free(buf);
                return dg_set_error("%s: larger than 16 MB; not a config file", path);
            }
            cap *= 2;
            unsigned char *bigger = realloc(buf, cap);
            DG_ASSERT(bigger); /* out of memory */
            buf = bigger;
        }
    }
    int err = ferror(f);
    fclose(f);
    int rc = err ? dg_set_error("%s: read error", path) : train_options_parse_yaml(o, path, buf, n);
    free(buf);
    return rc;
}

/* ==== JSON =================================================================== */

/* The JSON key: the checkpoint's own, else the name with '_'. */
static void json_key(const TrainOption *opt, unsigned flags, char *buf, size_t len) {
    const char *s = (flags & OPTF_CKPT) && opt->ckpt_key ? opt->ckpt_key : opt->name;
    snprintf(buf, len, "%s", s);
    for (char *p = buf; *p; p++)
        if (*p == '-') *p = '_';
}

/* A float as a JSON number that prints short (0.001, not 0.0010000000475). */
static double short_double(float v) {
    char buf[32];
    format_float(v, buf, sizeof buf);
    return strtod(buf, NULL);
}

char *train_options_json(const TrainOptions *o, unsigned flags, int exact) {
    cJSON *j = cJSON_CreateObject();
    char key[64], buf[8300];
    for (int i = 0; i < N_TABLE; i++) {
        const TrainOption *opt = &table[i];
        if (!(opt->flags & flags)) continue;
        json_key(opt, flags, key, sizeof key);
        const void *p = cfield(o, opt);
        switch (opt->type) {
        case OPT_INT: cJSON_AddNumberToObject(j, key, *(const int *)p); break;
        case OPT_LONG: cJSON_AddNumberToObject(j, key, (double)*(const long *)p); break;
        case OPT_FLOAT:
            if (exact) {
                snprintf(buf, sizeof buf, "%a", (double)*(const float *)p);
                cJSON_AddStringToObject(j, key, buf);
            } else {
                cJSON_AddNumberToObject(j, key, short_double(*(const float *)p));
            }
            break;
        case OPT_U64:
            if (exact) {
                snprintf(buf, sizeof buf, "%016llx", (unsigned long long)*(const uint64_t *)p);
                cJSON_AddStringToObject(j, key, buf);
            } else {
                cJSON_AddNumberToObject(j, key, (double)*(const uint64_t *)p);
            }
            break;
        case OPT_BOOL:
            if (exact) cJSON_AddNumberToObject(j, key, *(const int *)p);
            else cJSON_AddBoolToObject(j, key, *(const int *)p);
            break;
        case OPT_CHOICE:
            train_option_format(o, opt, buf, sizeof buf);
            cJSON_AddStringToObject(j, key, buf);
            break;
        case OPT_STR:
        case OPT_AUGMENT:
            if (*(char *const *)p) cJSON_AddStringToObject(j, key, *(char *const *)p);
            else if (exact) cJSON_AddNullToObject(j, key); /* metadata: unset is absent */
            break;
        }
    }
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    DG_ASSERT(s);
    return s;
}

/* 16 lowercase hex digits. */
static int parse_hex64(const char *s, uint64_t *out) {
    if (strlen(s) != 16) return -1;
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        int c = s[i], d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return 0;
}

/* One JSON value into opt; -1 if malformed or out of range. */
static int set_from_json(TrainOptions *o, const TrainOption *opt, const cJSON *v) {
    char text[48], why[200];
    switch (opt->type) {
    case OPT_INT:
    case OPT_LONG:
        if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || fabs(v->valuedouble) > 1e15) return -1;
        snprintf(text, sizeof text, "%.0f", v->valuedouble);
        return train_option_set(o, opt, text, why, sizeof why);
    case OPT_FLOAT: {
        char *end;
        if (cJSON_IsNumber(v)) snprintf(text, sizeof text, "%.17g", v->valuedouble);
        else if (cJSON_IsString(v) && strlen(v->valuestring) < sizeof text) snprintf(text, sizeof text, "%s", v->valuestring);
        else return -1;
        double d = strtod(text, &end);
        if (!*text || *end || !isfinite(d) || !number_ok(opt, d)) return -1;
        *(float *)field(o, opt) = (float)d;
        return 0;
    }
    case OPT_U64:
        if (cJSON_IsString(v)) return parse_hex64(v->valuestring, (uint64_t *)field(o, opt));
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9007199254740992.0) return -1;
        *(uint64_t *)field(o, opt) = (uint64_t)v->valuedouble;
        return 0;
    case OPT_BOOL:
        if (cJSON_IsBool(v)) *(int *)field(o, opt) = cJSON_IsTrue(v);
        else if (cJSON_IsNumber(v) && (v->valuedouble == 0 || v->valuedouble == 1)) *(int *)field(o, opt) = v->valueint;
        else return -1;
        return 0;
    case OPT_CHOICE: return cJSON_IsString(v) ? train_option_set(o, opt, v->valuestring, why, sizeof why) : -1;
    case OPT_STR:
    case OPT_AUGMENT:
        if (cJSON_IsNull(v)) return train_option_set(o, opt, "", why, sizeof why);
        if (!cJSON_IsString(v) || strlen(v->valuestring) >= 8192) return -1;
        return train_option_set(o, opt, v->valuestring, why, sizeof why);
    }
    return -1;
}

int train_options_from_json(TrainOptions *o, const char *text, unsigned flags, char *bad_key, size_t len) {
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    if (bad_key && len) bad_key[0] = '\0';
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return -2;
    }
    int rc = 0;
    char key[64];
    for (cJSON *e = j->child; e && rc == 0; e = e->next) {
        const TrainOption *opt = NULL;
        for (int i = 0; i < N_TABLE && !opt; i++) {
            json_key(&table[i], flags, key, sizeof key);
            if ((table[i].flags & flags) && strcmp(key, e->string) == 0) opt = &table[i];
        }
        if (!opt) rc = -1;
        else if (set_from_json(o, opt, e) < 0) rc = -2;
        if (rc && bad_key) snprintf(bad_key, len, "%s", e->string);
    }
    cJSON_Delete(j);
    return rc;
}
