/* options.c — the shared flags of the subcommands, "did you mean", and
 * --model resolution; see options.h. Leaves out train's options (its own
 * table in cmd_train.c) and each subcommand's own flags. */
#include "options.h"
#include "cli.h"
#include "digits_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- the table ------------------------------------------------------------ */

typedef struct {
    unsigned bit;
    const char *name, *arg, *help;
} SharedFlag;

static const SharedFlag SHARED[] = {
    {CLI_MODEL, "model", "FILE|default|best", "trained model file, or a pretrained one"},
    {CLI_DATA, "data", "DIR|FILE.csv", "MNIST IDX folder or labelled Kaggle CSV"},
    {CLI_BATCH, "batch-size", "N", "images per forward pass"},
    {CLI_THREADS, "threads", "N", "worker threads (0 = all cores)"},
    {CLI_TTA, "tta", "N", "average N test-time augmentations (1 = off)"},
    {CLI_PRECISION, "precision", "fp32|bf16", "bf16 convolutions (AVX512_BF16)"},
};
#define N_SHARED ((int)(sizeof SHARED / sizeof SHARED[0]))

static int bit_index(unsigned bit) {
    int i = 0;
    while (bit > 1) bit >>= 1, i++;
    return i;
}

CliCommon cli_common_defaults(void) {
    return (CliCommon){.model = NULL, .data = "data/mnist", .batch_size = 1000, .threads = 0, .tta = 1,
                       .precision = "fp32"};
}

void cli_options(CliOptions *ol, const struct option *own, unsigned which) {
    int n = 0;
    for (; own[n].name; n++) {
        DG_ASSERT(n < CLI_MAX_OPTIONS - N_SHARED - 1);
        ol->opts[n] = own[n];
    }
    for (int i = 0; i < N_SHARED; i++)
        if (which & SHARED[i].bit)
            ol->opts[n++] = (struct option){SHARED[i].name, required_argument, NULL,
                                            CLI_OPT_BASE + bit_index(SHARED[i].bit)};
    ol->opts[n] = (struct option){0, 0, 0, 0};
    ol->started = 0;
}

int cli_next(CliOptions *ol, const char *cmd, int argc, char **argv, CliCommon *co) {
    if (!ol->started) {
        opterr = 0; /* our own messages: cli_bad_flag */
        optind = 1;
        ol->started = 1;
    }
    int c;
    while ((c = getopt_long(argc, argv, "", ol->opts, NULL)) != -1)
        if (!cli_common_parse(cmd, c, optarg, co)) return c;
    return -1;
}

int cli_common_parse(const char *cmd, int c, const char *arg, CliCommon *co) {
    if (c < CLI_OPT_BASE || c >= CLI_OPT_BASE + N_SHARED) return 0;
    switch (1u << (c - CLI_OPT_BASE)) {
    case CLI_MODEL: co->model = arg; break;
    case CLI_DATA: co->data = arg; break;
    case CLI_BATCH: co->batch_size = cli_int(cmd, "--batch-size", arg, 1, 65536); break;
    case CLI_THREADS:
        co->threads = cli_int(cmd, "--threads", arg, 0, 1024);
        cli_set_threads(co->threads);
        break;
    case CLI_TTA: co->tta = cli_int(cmd, "--tta", arg, 1, 64); break;
    case CLI_PRECISION: co->precision = cli_set_precision(cmd, arg); break;
    default: return 0;
    }
    return 1;
}

void cli_common_help(unsigned which, const CliCommon *co) {
    for (int i = 0; i < N_SHARED; i++) {
        if (!(which & SHARED[i].bit)) continue;
        char flag[48], def[32];
        snprintf(flag, sizeof flag, "--%s %s", SHARED[i].name, SHARED[i].arg);
        switch (SHARED[i].bit) {
        case CLI_MODEL: snprintf(def, sizeof def, "%s", co->model ? co->model : "default"); break;
        case CLI_DATA: snprintf(def, sizeof def, "%s", co->data); break;
        case CLI_BATCH: snprintf(def, sizeof def, "%d", co->batch_size); break;
        case CLI_THREADS: snprintf(def, sizeof def, "%d", co->threads); break;
        case CLI_TTA: snprintf(def, sizeof def, "%d", co->tta); break;
        default: snprintf(def, sizeof def, "%s", co->precision); break;
        }
        /* columns: flag 22, help 44, then the default (as the subcommands' own lines) */
        int w = strlen(flag) < 22 ? 22 : (int)strlen(flag) + 1;
        printf("  %-*s%-*s[%s]\n", w, flag, 66 - w, SHARED[i].help, def);
    }
}

/* ---- did you mean ----------------------------------------------------------- */

void cli_bad_flag(const char *cmd, const char *arg, const struct option *opts) {
    if (!arg || strncmp(arg, "--", 2) != 0) cli_usage_error(cmd, "unknown flag '%s'", arg ? arg : "");
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)strcspn(arg + 2, "="), arg + 2);
    int has_value = strchr(arg, '=') != NULL;
    const char *cands[CLI_MAX_OPTIONS];
    int n = 0, prefix_matches = 0;
    for (int i = 0; opts[i].name && n < CLI_MAX_OPTIONS; i++) {
        if (strcmp(opts[i].name, name) == 0) {
            if (opts[i].has_arg == no_argument && has_value)
                cli_usage_error(cmd, "--%s takes no value", name);
            cli_usage_error(cmd, "--%s needs a value", name);
        }
        if (*name && strncmp(opts[i].name, name, strlen(name)) == 0) prefix_matches++;
        cands[n++] = opts[i].name;
    }
    if (prefix_matches > 1) cli_usage_error(cmd, "'--%s' is ambiguous: it begins several flags", name);
    const char *close = suggest_closest(name, cands, n);
    if (close) cli_usage_error(cmd, "unknown flag '--%s' (did you mean '--%s'?)", name, close);
    cli_usage_error(cmd, "unknown flag '--%s'", name);
}

/* ---- --model ---------------------------------------------------------------- */

static int is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

const char *cli_model_path(const char *cmd, const char *model, char *buf, size_t len) {
    if (!model) model = "default";
    if (strcmp(model, "default") == 0 || strcmp(model, "best") == 0) {
        if (model_find_pretrained(model, buf, len) < 0) cli_fail(cmd, "%s", dg_errmsg());
        return buf;
    }
    /* the other pretrained names (mcu-64k, mcu-256k): a models/pretrained file, when no such file is here */
    if (!is_file(model) && !strchr(model, '/') && !strchr(model, '.') && model_find_pretrained(model, buf, len) == 0)
        return buf;
    size_t n = strlen(model);
    int spec_file = n > 5 && strcmp(model + n - 5, ".spec") == 0;
    char spec[PATH_MAX], word[512];
    if (spec_file && is_file(model))
        cli_fail(cmd, "%s: an architecture (a .spec file), not a trained model: train it with "
                 "'digits train --model %s --out FILE', or use --model default", model,
                 cli_shell_word(model, word, sizeof word));
    if (!is_file(model) && !strchr(model, '/') && model_find_spec(model, spec, sizeof spec) == 0)
        cli_fail(cmd, "%s: a zoo architecture (%s), not a trained model file: train it with "
                 "'digits train --model %s', or use --model default", model, spec,
                 cli_shell_word(model, word, sizeof word));
    snprintf(buf, len, "%s", model);
    return buf;
}
