/* help.c — `digits help`: the man page (docs/digits.1) and the lists the
 * bash completion (tools/digits.bash-completion) reads, both made from the
 * texts `digits CMD --help` prints (for train: its option table,
 * src/train/options.c), run for every row of the subcommand table
 * (apps/digits.c), so a new subcommand or flag reaches both by itself.
 *
 * A --help text is read as lines: "usage:" lines (the synopsis), flag
 * lines ("  --flag ARG   what it does [default]", continued by lines
 * indented deeper), headers at column 0 ending in ':' ("Examples:" starts
 * the examples), paragraphs at column 0 (filled), and indented or
 * column-aligned lines (kept as they are). A help text that refers to
 * another help of its own command ('digits train --model svm --help') gets a
 * section of its own. The sections that are not any command's help (FILES,
 * ENVIRONMENT, EXIT STATUS, ...) are fixed text below.
 * Left out on purpose: rewrapping the kept lines, and a page per command
 * (one page, as `man digits` users expect of a single binary). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "core/suggest.h"
#include "core/version.h"
#include "help.h"

static const char *CMD = "help";

/* ---- running a --help ---------------------------------------------------- */

/* The text `digits NAME ARGS... --help` prints: the command runs in a child
 * process whose stdout is a pipe. Caller frees. Exit 1 if it fails. */
static char *capture_help(const CliCommand *c, int nargs, char **args) {
    int fd[2];
    if (pipe(fd) < 0) cli_fail(CMD, "pipe: cannot run '%s --help'", c->name);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) cli_fail(CMD, "fork: cannot run '%s --help'", c->name);
    if (pid == 0) {
        close(fd[0]);
        dup2(fd[1], STDOUT_FILENO);
        close(fd[1]);
        char *argv[16] = {(char *)c->name};
        int argc = 1;
        for (int i = 0; i < nargs && argc < 14; i++) argv[argc++] = args[i];
        argv[argc++] = "--help";
        int rc = c->run(argc, argv);
        fflush(stdout);
        _exit(rc);
    }
    close(fd[1]);
    size_t n = 0, cap = 4096;
    char *text = malloc(cap);
    ssize_t got;
    while (text && (got = read(fd[0], text + n, cap - n - 1)) > 0) {
        n += (size_t)got;
        if (cap - n < 1024) {
            char *bigger = realloc(text, cap *= 2);
            if (!bigger) free(text);
            text = bigger;
        }
    }
    close(fd[0]);
    int status;
    waitpid(pid, &status, 0);
    if (!text) cli_fail(CMD, "out of memory reading '%s --help'", c->name);
    text[n] = '\0';
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        free(text);
        cli_fail(CMD, "'digits %s --help' failed", c->name);
    }
    return text;
}

/* ---- reading a --help text ------------------------------------------------- */

typedef enum { E_SYNOPSIS, E_ITEM, E_HEADER, E_TEXT, E_PRE, E_EXAMPLE } ElemKind;

/* One piece of a help text. flag/arg: an item's "--flag" (or "MODEL...") and
 * metavar (NULL: none); text: the rest, spaces collapsed (E_PRE: the lines
 * as they are, '\n'-separated). All strings owned by the Elem. */
typedef struct {
    ElemKind kind;
    char *flag, *arg, *text;
} Elem;

typedef struct {
    Elem *e;
    int n, cap;
} Help;

/* The first n bytes of s as a string; caller frees. */
static char *dup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (!d) cli_fail(CMD, "out of memory");
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* s with leading/trailing blanks dropped and inner runs of spaces as one; caller frees. */
static char *squeeze(const char *s, size_t n) {
    char *d = dup_n(s, n), *w = d;
    for (const char *p = d; *p; p++)
        if (*p != ' ' || (w > d && w[-1] != ' ')) *w++ = *p;
    while (w > d && w[-1] == ' ') w--;
    *w = '\0';
    return d;
}

/* Appends an Elem to h, which takes the strings over. */
static void add(Help *h, ElemKind kind, char *flag, char *arg, char *text) {
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 32;
        h->e = realloc(h->e, (size_t)h->cap * sizeof *h->e);
        if (!h->e) cli_fail(CMD, "out of memory");
    }
    h->e[h->n++] = (Elem){kind, flag, arg, text};
}

/* text += sep + (n bytes of s, squeezed unless raw). */
static void append(char **text, const char *sep, const char *s, size_t n, int raw) {
    char *more = raw ? dup_n(s, n) : squeeze(s, n);
    size_t a = strlen(*text), b = strlen(sep), c = strlen(more);
    char *t = realloc(*text, a + b + c + 1);
    if (!t) cli_fail(CMD, "out of memory");
    memcpy(t + a, sep, b);
    memcpy(t + a + b, more, c + 1);
    free(more);
    *text = t;
}

/* The number of spaces a line starts with. */
static int indent_of(const char *line) { return (int)strspn(line, " "); }

/* "  --flag[ ARG]  text" or "  NAME...  text": fills flag, arg, text. */
static int parse_item(const char *line, size_t len, Help *h) {
    if (strncmp(line, "  ", 2) != 0 || line[2] == ' ') return 0;
    const char *p = line + 2, *end = line + len;
    size_t t = strcspn(p, " \n");
    if (p + t > end) t = (size_t)(end - p);
    int is_flag = t > 2 && p[0] == '-' && p[1] == '-';
    /* a positional: capitals, then "..." or a lowercase extension ("MODEL...", "FILE.onnx") */
    size_t caps = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_");
    int is_pos = caps >= 2 && caps < t && p[caps] == '.';
    if (is_pos && strncmp(p + caps, "...", 3) != 0)
        for (size_t i = caps + 1; i < t; i++)
            if (p[i] < 'a' || p[i] > 'z') is_pos = 0;
    if (!is_flag && !is_pos) return 0;
    char *flag = dup_n(p, t), *arg = NULL;
    p += t;
    if (p + 1 < end && p[0] == ' ' && p[1] != ' ') { /* one space: a metavar */
        size_t a = strcspn(p + 1, " \n");
        if (p + 1 + a > end) a = (size_t)(end - p - 1);
        arg = dup_n(p + 1, a);
        p += 1 + a;
    }
    add(h, E_ITEM, flag, arg, squeeze(p, (size_t)(end - p)));
    return 1;
}

/* A paragraph of lines at column 0 is filled, unless a line is indented or
 * aligns columns with two spaces: then its lines are kept. */
static void flush_block(Help *h, const char **lines, size_t *lens, int n) {
    if (!n) return;
    int keep = 0;
    for (int i = 0; i < n; i++) {
        const char *s = lines[i] + indent_of(lines[i]);
        if (s != lines[i] || memmem(s, lens[i] - (size_t)(s - lines[i]), "  ", 2)) keep = 1;
    }
    char *text = dup_n("", 0);
    for (int i = 0; i < n; i++) append(&text, i ? (keep ? "\n" : " ") : "", lines[i], lens[i], keep);
    add(h, keep ? E_PRE : E_TEXT, NULL, NULL, text);
}

/* An example line "  digits ...   # comment": the command, two spaces, the
 * comment; a line that is only a comment continues the one above, indented. */
static void add_example(Help *h, const char *line, size_t len) {
    const char *cmd = line + indent_of(line), *end = line + len;
    const char *hash = memchr(line, '#', len);
    char *t = dup_n("", 0);
    if (hash) {
        if (hash > cmd) append(&t, "", cmd, (size_t)(hash - cmd), 0);
        append(&t, "  ", hash, (size_t)(end - hash), 0);
    } else {
        append(&t, "", cmd, (size_t)(end - cmd), 0);
    }
    add(h, E_EXAMPLE, NULL, NULL, t);
}

/* Splits a --help text into the Elems described at the top of the file. */
static Help parse_help(const char *text) {
    Help h = {0};
    enum { NONE, SYNOPSIS, ITEMS, EXAMPLES } mode = NONE;
    const char *block[256];
    size_t lens[256];
    int nb = 0;
    for (const char *line = text; *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        int ind = indent_of(line);
        if (ind == (int)len) { /* blank */
            flush_block(&h, block, lens, nb);
            nb = 0;
            mode = NONE;
        } else if (strncmp(line, "usage: ", 7) == 0 || (mode == SYNOPSIS && strncmp(line + ind, "digits ", 7) == 0)) {
            add(&h, E_SYNOPSIS, NULL, NULL, squeeze(line + (ind ? ind : 7), len - (size_t)(ind ? ind : 7)));
            mode = SYNOPSIS;
        } else if (mode == EXAMPLES && ind > 0) {
            add_example(&h, line, len);
        } else if (ind == 0 && line[len - 1] == ':') {
            flush_block(&h, block, lens, nb);
            nb = 0;
            add(&h, E_HEADER, NULL, NULL, dup_n(line, len - 1));
            mode = strncmp(line, "Examples:", len) == 0 ? EXAMPLES : NONE;
        } else if (nb == 0 && parse_item(line, len, &h)) {
            mode = ITEMS;
        } else if (mode == ITEMS && ind >= 4) {
            append(&h.e[h.n - 1].text, " ", line, len, 0);
        } else {
            if (nb == (int)(sizeof block / sizeof *block)) cli_fail(CMD, "a help paragraph is too long");
            block[nb] = line;
            lens[nb++] = len;
            mode = NONE;
        }
        line += len + (nl != NULL);
    }
    flush_block(&h, block, lens, nb);
    return h;
}

/* Frees h's Elems and their strings. */
static void help_free(Help *h) {
    for (int i = 0; i < h->n; i++) {
        free(h->e[i].flag);
        free(h->e[i].arg);
        free(h->e[i].text);
    }
    free(h->e);
}

/* ---- troff ------------------------------------------------------------------- */

/* s as troff text: backslashes escaped, '-' as \- (what is typed), a '.' or
 * '\'' starting a line guarded, any non-ASCII character as \[uXXXX], and a
 * break point (\:) after a ',' or '|' inside a word, so that long lists
 * such as rotate=DEG,shift=F,... can wrap without hyphenation. */
static void roff(FILE *f, const char *s) {
    int bol = 1;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (bol && (*p == '.' || *p == '\'')) fputs("\\&", f);
        bol = *p == '\n';
        if (*p == '\\') fputs("\\e", f);
        else if (*p == '-') fputs("\\-", f);
        else if ((*p == ',' || *p == '|') && p[1] && p[1] != ' ' && p[1] != '\n') fprintf(f, "%c\\:", *p);
        else if (*p < 0x80) fputc(*p, f);
        else {
            int extra = *p >= 0xf0 ? 3 : *p >= 0xe0 ? 2 : 1;
            unsigned cp = *p & (0x3f >> extra);
            for (int k = 0; k < extra && (p[1] & 0xc0) == 0x80; k++) cp = cp << 6 | (*++p & 0x3f);
            fprintf(f, "\\[u%04X]", cp);
        }
    }
}

/* A synopsis line: "digits CMD" in bold, the rest as it is. */
static void man_synopsis(FILE *f, const char *line, const char *name) {
    size_t head = strlen("digits ") + strlen(name);
    if (strncmp(line, "digits ", 7) == 0 && strncmp(line + 7, name, strlen(name)) == 0) {
        fputs("\\fBdigits ", f);
        roff(f, name);
        fputs("\\fR", f);
        roff(f, line + head);
    } else {
        roff(f, line);
    }
    fputs("\n.br\n", f);
}

/* One command's section from its parsed help. */
static void man_section(FILE *f, const Help *h, const char *name) {
    for (int i = 0; i < h->n; i++) {
        const Elem *e = &h->e[i];
        ElemKind prev = i ? h->e[i - 1].kind : E_SYNOPSIS;
        switch (e->kind) {
        case E_SYNOPSIS:
            if (!i) fputs(".PP\n", f);
            man_synopsis(f, e->text, name);
            break;
        case E_ITEM:
            fputs(".TP\n\\fB", f);
            roff(f, e->flag);
            fputs("\\fR", f);
            if (e->arg) {
                fputs(" \\fI", f);
                roff(f, e->arg);
                fputs("\\fR", f);
            }
            fputc('\n', f);
            if (*e->text) {
                roff(f, e->text);
                fputc('\n', f);
            }
            break;
        case E_HEADER:
            fputs(".PP\n\\fB", f);
            roff(f, e->text);
            fputs("\\fR\n", f);
            break;
        case E_TEXT:
            fputs(prev == E_HEADER ? ".br\n" : ".PP\n", f);
            roff(f, e->text);
            fputc('\n', f);
            break;
        case E_PRE:
            fputs(prev == E_HEADER ? ".br\n.nf\n" : ".PP\n.nf\n", f);
            roff(f, e->text);
            fputs("\n.fi\n", f);
            break;
        case E_EXAMPLE:
            if (prev != E_EXAMPLE) fputs(".RS 4\n.nf\n", f);
            roff(f, e->text);
            fputc('\n', f);
            if (i + 1 == h->n || h->e[i + 1].kind != E_EXAMPLE) fputs(".fi\n.RE\n", f);
            break;
        }
    }
}

/* The sections before the commands' (troff): NAME, SYNOPSIS, DESCRIPTION. */
static const char *const MAN_TOP =
    ".SH NAME\n"
    "digits \\- handwritten\\-digit recognition: train, evaluate, predict, serve\n"
    ".SH SYNOPSIS\n"
    ".B digits\n.I COMMAND\n.RI [ flags ]\n.br\n"
    ".B digits\n.I COMMAND\n.B \\-\\-help\n.br\n"
    ".B digits help\n.RB [ \\-\\-man \" | \" \\-\\-complete\n.RI [ COMMAND ]]\n.br\n"
    ".B digits\n.BR \\-\\-help \" | \" \\-\\-version\n"
    ".SH DESCRIPTION\n"
    ".B digits\n"
    "recognizes handwritten digits (MNIST and Kaggle \"Digit Recognizer\" data):\n"
    "it trains convolutional networks on the CPU, builds ensembles, evaluates and\n"
    "reports on them, classifies image files, writes Kaggle submissions and serves\n"
    "a web page with a JSON API.\n"
    "Every command is one subcommand;\n"
    ".B digits\n.I COMMAND\n.B \\-\\-help\n"
    "prints its section of this page: its flags and their defaults (in brackets).\n"
    "The same functions are available to C programs as the library\n"
    ".B libdigits\n(header\n.IR digits.h ;\n.BR \"pkg\\-config \\-\\-cflags \\-\\-libs digits\" ).\n"
    "This page is made by\n.BR \"digits help \\-\\-man\" ;\n"
    ".B digits help \\-\\-complete\n"
    "lists the commands and flags for the bash completion.\n";

/* The sections after them: MODELS, FILES, ENVIRONMENT, EXIT STATUS, EXAMPLES, SEE ALSO. */
static const char *const MAN_BOTTOM =
    ".SH MODELS\n"
    ".BR predict ,\n.BR eval ,\n.BR submit ,\n.B report\nand\n.B serve\n"
    "take a trained model file, or the name of a pretrained model:\n"
    ".B default\n"
    "(a cnn\\-bn network trained with augmentation, for drawn, scanned and\n"
    "photographed digits) or\n.B best\n(an ensemble).\n"
    "When\n.B \\-\\-model\nis left out they use\n.BR default .\n"
    "A name is looked up as\n.IR models/pretrained/NAME.safetensors ,\n"
    "and a zoo name given to\n.B train\nas\n.IR models/NAME.spec ,\n"
    "in these folders, first match wins:\n.BR $DIGITS_MODELS ,\n"
    ".I models\nin the working directory (zoo specs only for\n.BR train ),\n"
    ".I models\nbeside the\n.B digits\nbinary and one folder above it, and\n.IR DATADIR/models .\n"
    ".SH FILES\n"
    ".TP\n.I models/\n"
    "in the working directory, beside the binary or one folder above it: the\n"
    "zoo (\\fINAME\\fR.spec) and \\fIpretrained/\\fR, searched as under MODELS.\n"
    ".TP\n.I $DIGITS_MODELS/\n"
    "searched first: its \\fINAME\\fR.spec files and \\fIpretrained/\\fR.\n"
    ".TP\n.I DATADIR/models/*.spec\n"
    "the model zoo of an installed digits;\n.I DATADIR\nis\n.I PREFIX/share/digits\n"
    "(\\fI/usr/local/share/digits\\fR unless installed with another PREFIX).\n"
    ".TP\n.I DATADIR/models/pretrained/\n"
    ".IR default.safetensors ,\n.I best.safetensors\nand\n.IR manifest.tsv ,\n"
    "which records each file's size, SHA\\-256, MNIST test accuracy and the command\n"
    "that remakes it.\n"
    ".TP\n.I data/mnist/\n"
    "the MNIST IDX files read when \\fB\\-\\-data\\fR is left out.\n"
    ".TP\n.I runs/\n"
    "where \\fBtrain\\fR writes a model when \\fB\\-\\-out\\fR is left out.\n"
    ".TP\n.IR PREFIX/lib/libdigits.so.0 \", \" PREFIX/include/digits.h\n"
    "the library and its header.\n"
    ".SH ENVIRONMENT\n"
    ".TP\n.B DIGITS_MODELS\n"
    "a folder searched first for zoo specs and pretrained models.\n"
    ".TP\n.B OMP_NUM_THREADS\n"
    "the default number of worker threads (\\fB\\-\\-threads\\fR overrides it).\n"
    ".TP\n.B DIGITS_BLAS_CORETYPE\n"
    "the OpenBLAS kernel family to use (OPENBLAS_CORETYPE), instead of the one\n"
    "digits picks for the CPU.\n"
    ".TP\n.B DIGITS_ISA\n"
    "in a portable build (\\fBmake PORTABLE=1\\fR, the one \\fBmake install\\fR and the\n"
    "Docker image use), the kernel level to run:\n.BR avx512 ,\n.B avx2\nor\n.BR generic ;\n"
    "by default the best one the CPU has. \\fBdigits info\\fR names the level in use.\n"
    ".TP\n.B DIGITS_DENORMALS=keep\n"
    "keeps subnormal floats (below 1.2e\\-38), as PyTorch does. By default digits\n"
    "flushes them to zero (FTZ and DAZ), as TensorFlow does on the CPU: on Intel\n"
    "CPUs every operation on a subnormal is many times slower, and weight decay\n"
    "drives unused weights there (twobranch's epochs slowed 2.4\\(mu over three).\n"
    ".SH EXIT STATUS\n"
    ".TP\n.B 0\nsuccess.\n"
    ".TP\n.B 1\na run\\-time failure: one line\n.I \"digits COMMAND: FILE: problem\"\non standard error.\n"
    ".TP\n.B 2\na usage error (an unknown command or flag, a bad value), with \"did you\n"
    "mean\" when a known name is close.\n"
    ".SH EXAMPLES\n"
    "Classify images with the pretrained default model:\n"
    ".PP\n.RS 4\n.nf\n"
    "digits predict digit.png photo.jpg\n"
    "digits predict \\-\\-model best \\-\\-json scan1.png\n"
    ".fi\n.RE\n.PP\n"
    "Look at the data, train, evaluate and report:\n"
    ".PP\n.RS 4\n.nf\n"
    "digits describe \\-\\-data data/mnist\n"
    "digits train \\-\\-model cnn\\-bn \\-\\-epochs 10 \\-\\-out cnn\\-bn.safetensors\n"
    "digits eval \\-\\-model cnn\\-bn.safetensors\n"
    "digits report \\-\\-model cnn\\-bn.safetensors \\-\\-out report/\n"
    ".fi\n.RE\n.PP\n"
    "Write a Kaggle submission, and serve the web page and the JSON API:\n"
    ".PP\n.RS 4\n.nf\n"
    "digits submit \\-\\-model best \\-\\-test test.csv\n"
    "digits serve \\-\\-port 8080\n"
    ".fi\n.RE\n"
    ".SH SEE ALSO\n"
    ".BR pkg\\-config (1),\n"
    "the README.md and docs/ of the digits source tree.\n";

/* 'digits NAME ARGS --help' quoted in text with non-empty ARGS: ARGS
 * (malloc'd, space-separated) or NULL. */
static char *nested_help(const char *text, const char *name) {
    char pat[64];
    snprintf(pat, sizeof pat, "'digits %s ", name);
    for (const char *p = strstr(text, pat); p; p = strstr(p + 1, pat)) {
        const char *args = p + strlen(pat), *q = strchr(args, '\'');
        if (!q || q - args <= 7 || strncmp(q - 7, " --help", 7) != 0 || memchr(args, '\n', (size_t)(q - args)))
            continue;
        return dup_n(args, (size_t)(q - 7 - args));
    }
    return NULL;
}

/* Splits a space-separated string in place; returns the word count. */
static int split_words(char *s, char **words, int max) {
    int n = 0;
    for (char *w = strtok(s, " "); w && n < max; w = strtok(NULL, " ")) words[n++] = w;
    return n;
}

/* The whole man page: the fixed sections around one section per command
 * (a command whose --help is an earlier one's points to it), plus one for
 * each other help of a command its own help refers to. */
static void man_page(FILE *f, const CliCommand *cmds, int n) {
    fprintf(f, ".\\\" digits.1 \\- made by 'digits help \\-\\-man' (apps/help.c) from every\n"
               ".\\\" subcommand's \\-\\-help; edit those, not this file.\n"
               ".TH DIGITS 1 \"\" \"digits %s\" \"User Commands\"\n"
               ".nh\n.ad l\n", DG_VERSION);
    fputs(MAN_TOP, f);
    fputs(".SH COMMANDS\n", f);
    for (int i = 0; i < n; i++) {
        fprintf(f, ".TP 10\n.B %s\n", cmds[i].name);
        roff(f, cmds[i].summary);
        fputc('\n', f);
    }
    char **texts = calloc((size_t)n, sizeof *texts);
    if (!texts) cli_fail(CMD, "out of memory");
    for (int i = 0; i < n; i++) {
        texts[i] = capture_help(&cmds[i], 0, NULL);
        fprintf(f, ".SS \"digits %s\"\n", cmds[i].name);
        roff(f, cmds[i].summary);
        fputs(".\n", f);
        int same = -1;
        for (int j = 0; j < i && same < 0; j++)
            if (strcmp(texts[i], texts[j]) == 0) same = j;
        if (same >= 0) {
            fprintf(f, "Its flags are those of\n.BR \"digits %s\" .\n", cmds[same].name);
            continue;
        }
        Help h = parse_help(texts[i]);
        man_section(f, &h, cmds[i].name);
        char *args = NULL; /* in the parsed text: a quote may have been wrapped across lines */
        for (int k = 0; k < h.n && !args; k++) args = nested_help(h.e[k].text, cmds[i].name);
        help_free(&h);
        if (args) {
            char *words[12], *title = dup_n(args, strlen(args));
            int nw = split_words(args, words, 12);
            char *sub = capture_help(&cmds[i], nw, words);
            fprintf(f, ".SS \"digits %s ", cmds[i].name);
            roff(f, title);
            fputs("\"\n", f);
            h = parse_help(sub);
            man_section(f, &h, cmds[i].name);
            help_free(&h);
            free(sub);
            free(title);
            free(args);
        }
    }
    for (int i = 0; i < n; i++) free(texts[i]);
    free(texts);
    fputs(MAN_BOTTOM, f);
}

/* ---- completion lists ------------------------------------------------------ */

/* The values an item takes, space-separated, into buf: the lowercase words
 * of a metavar like "train|test" or "FILE|default|best", and the words after
 * "one of " in its text (train's option table lists choices so). */
static void item_values(const Elem *e, char *buf, size_t len) {
    size_t n = 0;
    buf[0] = '\0';
    if (e->arg && strchr(e->arg, '|')) {
        char *a = dup_n(e->arg, strlen(e->arg));
        for (char *w = strtok(a, "|"); w; w = strtok(NULL, "|")) {
            int lower = strcspn(w, "ABCDEFGHIJKLMNOPQRSTUVWXYZ./,") == strlen(w);
            if (lower && n + strlen(w) + 2 < len) n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? " " : "", w);
        }
        free(a);
    }
    const char *one = strstr(e->text, "one of ");
    if (!one) return;
    for (const char *p = one + 7; *p && *p != '[' && *p != ')';) {
        size_t w = strcspn(p, ", [)");
        if (w && n + w + 2 < len) n += (size_t)snprintf(buf + n, len - n, "%s%.*s", n ? " " : "", (int)w, p);
        p += w;
        p += strspn(p, ", ");
    }
}

/* CMD's flags: "--flag TAB metavar TAB values" per line, --help included. */
static void complete_flags(const CliCommand *c, int nargs, char **args) {
    char *text = capture_help(c, nargs, args);
    Help h = parse_help(text);
    int has_help = 0;
    for (int i = 0; i < h.n; i++) {
        const Elem *e = &h.e[i];
        if (e->kind != E_ITEM || strncmp(e->flag, "--", 2) != 0) continue;
        char values[512];
        item_values(e, values, sizeof values);
        printf("%s\t%s\t%s\n", e->flag, e->arg ? e->arg : "", values);
        has_help |= strcmp(e->flag, "--help") == 0;
    }
    if (!has_help) printf("--help\t\t\n");
    help_free(&h);
    free(text);
}

/* The table's row called name; a usage error (with "did you mean") if none. */
static const CliCommand *find_command(const char *name, const CliCommand *cmds, int n) {
    const char *names[64];
    for (int i = 0; i < n; i++) {
        if (strcmp(name, cmds[i].name) == 0) return &cmds[i];
        if (i < 64) names[i] = cmds[i].name;
    }
    const char *close = suggest_closest(name, names, n < 64 ? n : 64);
    if (close) cli_usage_error(CMD, "unknown command '%s' (did you mean '%s'?)", name, close);
    cli_usage_error(CMD, "unknown command '%s'", name);
}

int cmd_help(int argc, char **argv, const CliCommand *cmds, int n) {
    if (argc >= 2 && strcmp(argv[1], "--man") == 0) {
        if (argc > 2) cli_usage_error(CMD, "unexpected argument '%s'", argv[2]);
        man_page(stdout, cmds, n);
        return fflush(stdout) == 0 ? 0 : EXIT_RUNTIME;
    }
    if (argc >= 2 && strcmp(argv[1], "--complete") == 0) {
        if (argc == 2) {
            for (int i = 0; i < n; i++) puts(cmds[i].name);
            puts("help");
            return 0;
        }
        complete_flags(find_command(argv[2], cmds, n), argc - 3, argv + 3);
        return 0;
    }
    if (argv[1][0] == '-')
        cli_usage_error(CMD, "unknown flag '%s' (digits help [--man | --complete [CMD] | CMD])", argv[1]);
    if (argc > 2) cli_usage_error(CMD, "unexpected argument '%s'", argv[2]);
    const CliCommand *c = find_command(argv[1], cmds, n);
    char *help_argv[] = {(char *)c->name, "--help", NULL};
    return c->run(2, help_argv);
}
