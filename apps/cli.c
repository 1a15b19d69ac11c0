/* cli.c — see cli.h. */
#include "cli.h"
#include "digits_internal.h"
#include "dist/dist.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

void cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "digits %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(run 'digits %s --help' for the flags)\n", cmd);
    va_end(ap);
    exit(EXIT_USAGE);
}

void cli_fail(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "digits %s: ", cmd);
    if (dist_active()) fprintf(stderr, "rank %d: ", dist_rank()); /* under mpirun */
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(EXIT_RUNTIME);
}

int cli_int(const char *cmd, const char *flag, const char *s, int lo, int hi) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno) cli_usage_error(cmd, "%s: '%s' is not an integer", flag, s);
    if (v < lo || v > hi) cli_usage_error(cmd, "%s: %ld is out of range %d..%d", flag, v, lo, hi);
    return (int)v;
}

float cli_float(const char *cmd, const char *flag, const char *s, float lo, float hi) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || errno || !isfinite(v)) cli_usage_error(cmd, "%s: '%s' is not a number", flag, s);
    if (v < lo || v > hi) cli_usage_error(cmd, "%s: %s is out of range %g..%g", flag, s, lo, hi);
    return (float)v;
}

uint64_t cli_u64(const char *cmd, const char *flag, const char *s) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s == '\0' || *s == '-' || *end != '\0' || errno) cli_usage_error(cmd, "%s: '%s' is not a non-negative integer", flag, s);
    return (uint64_t)v;
}

void cli_set_threads(int threads) {
#ifdef _OPENMP
    if (threads > 0) omp_set_num_threads(threads);
#else
    (void)threads;
#endif
}

const char *cli_set_precision(const char *cmd, const char *name) {
    if (strcmp(name, "fp32") != 0 && strcmp(name, "bf16") != 0)
        cli_usage_error(cmd, "--precision: '%s' is not fp32 or bf16", name);
    if (strcmp(name, "bf16") == 0 && !model_set_bf16(1)) {
        fprintf(stderr, "digits %s: --precision bf16: this CPU (or build) has no AVX512_BF16; running fp32\n", cmd);
        return "fp32";
    }
    if (strcmp(name, "fp32") == 0) model_set_bf16(0);
    return name;
}

const char *cli_shell_word(const char *s, char *buf, size_t len) {
    if (strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./-+=:,@") == strlen(s))
        return s;
    size_t o = 0;
    if (o + 1 < len) buf[o++] = '\'';
    for (; *s && o + 5 < len; s++) {
        if (*s == '\'') {
            memcpy(buf + o, "'\\''", 4);
            o += 4;
        } else {
            buf[o++] = *s;
        }
    }
    buf[o++] = '\'';
    buf[o] = '\0';
    return buf;
}

/* The data a subcommand reads when no --data was given: data/mnist, or exit 1
 * saying where it looked and how to point the command at data (run outside
 * the checkout, or before the set-up fetched MNIST). */
const char *cli_default_data(const char *cmd) {
    static const char def[] = "data/mnist";
    struct stat st;
    if (stat(def, &st) == 0) return def;
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd)) snprintf(cwd, sizeof cwd, ".");
    cli_fail(cmd, "%s/%s: no MNIST folder here (the default data when no --data is given); "
             "point it at data with --data DIR|train.csv, or fetch MNIST with 'bash tools/fetch_mnist.sh' "
             "in the digits checkout", cwd, def);
}
