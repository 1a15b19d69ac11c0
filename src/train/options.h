/* options.h — every `digits train` option declared once: name, type,
 * default, range or choices, help text and the field it sets. From this one
 * table come the command-line parser and `--help` (apps/cmd_train.c), the
 * YAML config reader and `--print-config`, the training configuration
 * stored in model metadata (train_config_json), the settings a checkpoint
 * stores (resume.c, digits.run) and `--resume`'s conflict check.
 * Adding an option: a field in TrainOptions (or TrainConfig) and a row in
 * options.c's table; the code that uses the value is the only other place.
 *
 * Left out on purpose: YAML anchors/aliases, sequences and multi-document
 * files (a config is one flat mapping, or seed 004's sections); negating a
 * boolean flag on the command line (set it to false in the file instead). */
#ifndef DG_TRAIN_OPTIONS_H
#define DG_TRAIN_OPTIONS_H

#include <stddef.h>
#include <stdio.h>

#include "train/train.h"

typedef enum {
    OPT_INT,     /* int, range lo..hi */
    OPT_LONG,    /* long, range lo..hi */
    OPT_FLOAT,   /* float, range lo..hi */
    OPT_U64,     /* uint64_t */
    OPT_BOOL,    /* int 0/1; a flag without a value */
    OPT_STR,     /* char * (owned by TrainOptions; NULL = unset) */
    OPT_CHOICE,  /* int: index into choices "a|b|c" (an enum in that order) */
    OPT_AUGMENT, /* char *: an --augment spec, kept in its canonical text */
} OptType;

/* where an option's value is stored besides the command line */
enum {
    OPTF_CKPT = 1, /* a checkpoint's digits.resume_config (a TrainConfig field) */
    OPTF_RUN = 2,  /* a checkpoint's digits.run (the CLI's settings) */
    OPTF_META = 4, /* a model file's digits.train_config */
    OPTF_CLI = 8,  /* command line only: not a config-file key, not printed */
};

typedef struct {
    const char *name;     /* the flag without dashes ("batch-size"); its key with '_' is accepted too */
    OptType type;
    size_t off;           /* the field in TrainOptions */
    const char *def;      /* default as text (NULL: unset) */
    double lo, hi;        /* numbers: the range (the default is always accepted) */
    const char *choices;  /* OPT_CHOICE: "sgd|adam|nadam|adamw" */
    const char *arg;      /* --help's placeholder ("N", "FILE") */
    const char *help;
    unsigned flags;       /* OPTF_* */
    const char *ckpt_key; /* key in a checkpoint when not the name with '_' (NULL) */
    const char *shown;    /* --help's default when not def ("all", ...) */
} TrainOption;

#define TRAIN_OPTIONS_MAX 64

/* The effective settings of one `digits train` run. Strings are owned
 * (train_options_free), cfg's out_path and log_path included. */
typedef struct {
    TrainConfig cfg; /* the loop's settings; also out, log, normalize, dtype, quiet */
    char *config, *model, *data, *test, *out_dir, *augment, *ensemble_models, *monitor, *checkpoint_dir, *resume;
    float val_split;
    int limit, ensemble, kfold, vote_logits, precision, monitor_test, overwrite, print_config, summary, help;
    unsigned char given[TRAIN_OPTIONS_MAX]; /* 1: set by a flag, 2: by the config file */
    int line[TRAIN_OPTIONS_MAX];            /* the config file's line of each key (0: none) */
    char notice[512];                       /* the config file's ignored keys ("" if none) */
} TrainOptions;

/* The table, and its length. */
const TrainOption *train_options_table(int *n);
/* The row named name ('-' and '_' alike); NULL if none. */
const TrainOption *train_option_find(const char *name);
/* The nearest option name by edit distance (for "did you mean"), or NULL
 * if none is close. Static. */
const char *train_option_suggest(const char *name);
/* Index of a row in the table (for given[] and line[]). */
int train_option_index(const TrainOption *opt);

/* Every option at its default. */
void train_options_defaults(TrainOptions *o);
void train_options_free(TrainOptions *o);
/* Sets opt from text. Returns 0, or -1 with what a value must be
 * ("an integer ≥ 1") in why. */
int train_option_set(TrainOptions *o, const TrainOption *opt, const char *text, char *why, size_t len);
/* What a value of opt must be ("an integer ≥ 1", "one of sgd, adam"). */
void train_option_describe(const TrainOption *opt, char *buf, size_t len);
/* The value as text, the way train_option_set reads it back ("" unset). */
void train_option_format(const TrainOptions *o, const TrainOption *opt, char *buf, size_t len);
/* Copy one option's value from src to dst (strings duplicated). */
void train_option_copy(TrainOptions *dst, const TrainOptions *src, const TrainOption *opt);

/* The settings as YAML (every option but the command-line-only ones, each
 * after a comment with its help), as --print-config writes it. */
void train_options_print_yaml(const TrainOptions *o, FILE *f);
/* Reads a YAML config file into o (marks given[] = 2, line[]); keys are the
 * option names, or seed 004's sections (train_params, dataset_params, ...),
 * whose ignored keys are listed in o->notice. Returns 0, or -1 with
 * "FILE:LINE: problem" (dg_errmsg). */
int train_options_read_yaml(TrainOptions *o, const char *path);
/* The same from memory (path only names it in messages). */
int train_options_parse_yaml(TrainOptions *o, const char *path, const unsigned char *text, size_t len);

/* JSON of the options flagged `flags` (OPTF_CKPT, OPTF_RUN or OPTF_META).
 * exact: numbers that must come back bit-exact as strings (floats "%a",
 * 64-bit words in hex); else plain JSON numbers. Owned by the caller. */
char *train_options_json(const TrainOptions *o, unsigned flags, int exact);
/* Reads such JSON into o; keys absent keep o's value. Returns 0; -1 if a
 * key is no option flagged `flags`, -2 if a value is malformed or out of
 * range: the key in bad_key either way. */
int train_options_from_json(TrainOptions *o, const char *text, unsigned flags, char *bad_key, size_t len);

#endif
