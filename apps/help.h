/* help.h — the subcommand table's row type and `digits help`: the man page
 * and the bash completion lists, both made from the --help texts the
 * subcommands print, so neither can drift from the flags they take. */
#ifndef DG_HELP_H
#define DG_HELP_H

/* One subcommand: its name, entry point (argv[0] is the name) and the line
 * `digits --help` shows. The table is apps/digits.c's. */
typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} CliCommand;

/* `digits help CMD` (= digits CMD --help), `digits help --man` (the man
 * page, troff, on stdout), `digits help --complete [CMD [ARGS...]]` (the
 * command names; or CMD's flags, one per line: flag TAB metavar TAB the
 * values it takes, space-separated). argv[0] is "help". Exit 0, 1 when a
 * --help cannot be run, 2 on a usage error. */
int cmd_help(int argc, char **argv, const CliCommand *cmds, int n);

#endif
