/* options.h — the flags several subcommands share (--model, --data,
 * --batch-size, --threads, --tta, --precision), declared once: their
 * getopt entries, parsing, ranges and help lines; "did you mean" for
 * mistyped flags; and resolving --model (a file, `default` or `best`).
 *
 * A subcommand lists its own flags, picks the shared ones by bit, and
 * hands every getopt result to cli_common_parse first:
 *     CliCommon co = cli_common_defaults();
 *     CliOptions ol;
 *     cli_options(&ol, own, CLI_MODEL | CLI_THREADS);
 *     while ((c = cli_next(&ol, CMD, argc, argv, &co)) != -1)
 *         switch (c) { ... default: cli_bad_flag(CMD, argv[optind - 1], ol.opts); }
 *     }
 */
#ifndef DG_OPTIONS_H
#define DG_OPTIONS_H

#include <getopt.h>
#include <stddef.h>

enum {
    CLI_MODEL = 1 << 0,
    CLI_DATA = 1 << 1,
    CLI_BATCH = 1 << 2,
    CLI_THREADS = 1 << 3,
    CLI_TTA = 1 << 4,
    CLI_PRECISION = 1 << 5,
};
#define CLI_OPT_BASE 0x4000 /* getopt values of the shared flags: CLI_OPT_BASE + bit number */
#define CLI_MAX_OPTIONS 64

typedef struct {
    const char *model;     /* as given; NULL: `default` */
    const char *data;      /* [data/mnist] */
    int batch_size;        /* [1000] */
    int threads;           /* [0 = all cores] */
    int tta;               /* [1 = off] */
    const char *precision; /* [fp32] */
} CliCommon;

typedef struct {
    struct option opts[CLI_MAX_OPTIONS];
    int started; /* cli_next has started getopt over argv */
} CliOptions;

CliCommon cli_common_defaults(void);
/* ol = own (terminated by a zero entry) + the shared flags in `which`. */
void cli_options(CliOptions *ol, const struct option *own, unsigned which);
/* Handle getopt result c if it is a shared flag (1), else 0. Bad values
 * are usage errors (exit 2). --threads and --precision take effect here. */
int cli_common_parse(const char *cmd, int c, const char *arg, CliCommon *co);
/* The next of the subcommand's own flags in argv (getopt's value, optarg
 * holding its argument), -1 after the last; the shared flags on the way
 * go into co (cli_common_parse). The first call starts getopt over argv. */
int cli_next(CliOptions *ol, const char *cmd, int argc, char **argv, CliCommon *co);
/* Print the help lines of the shared flags in `which`, with co's defaults. */
void cli_common_help(unsigned which, const CliCommon *co);
/* The usage error for an unknown flag, a missing value or a value given to
 * a switch, with "did you mean '--X'?" when a flag is close (exit 2). */
void cli_bad_flag(const char *cmd, const char *arg, const struct option *opts) __attribute__((noreturn));
/* --model as given (NULL = `default`) -> a file path in buf: `default` and
 * `best` are models/pretrained/NAME.safetensors (model_find_pretrained);
 * anything else is a path. Runtime failure (exit 1) if a pretrained model
 * is missing (saying where it looked), or if the name is a zoo
 * architecture or a .spec file rather than a trained model. */
const char *cli_model_path(const char *cmd, const char *model, char *buf, size_t len);

#endif
