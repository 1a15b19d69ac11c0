/* cli.h — shared helpers of the digits subcommands: the exit-status
 * convention (0 ok, 1 runtime failure, 2 usage error), number parsing for
 * flags, and the per-subcommand entry points. */
#ifndef DG_CLI_H
#define DG_CLI_H

#include <stddef.h>
#include <stdint.h>

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

/* Print "digits CMD: message" (+ a hint to run --help) and exit 2. */
void cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
/* Print "digits CMD: message" and exit 1. */
void cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

/* Flag value parsers: exit 2 naming the flag on a bad value. */
int cli_int(const char *cmd, const char *flag, const char *s, int lo, int hi);
float cli_float(const char *cmd, const char *flag, const char *s, float lo, float hi);
uint64_t cli_u64(const char *cmd, const char *flag, const char *s);

/* Sets the OpenMP thread count (<= 0: all cores). */
void cli_set_threads(int threads);
/* --precision fp32|bf16: a usage error for anything else; bf16 on a CPU
 * without AVX512_BF16 prints a notice and runs fp32. Returns the precision
 * in effect ("fp32" or "bf16"). */
const char *cli_set_precision(const char *cmd, const char *name);

/* s as one shell word (quoted when needed), for hints meant to be pasted. */
const char *cli_shell_word(const char *s, char *buf, size_t len);
/* data/mnist when it exists, else exit 1 saying where it looked and how to give --data. */
const char *cli_default_data(const char *cmd);

int cmd_train(int argc, char **argv);
int cmd_train_svm(int argc, char **argv); /* `train --model svm` */
/* train's model file (cmd_train.c): out, refused (exit 2) if it exists
 * unless overwrite; else the first free DIR/BASE.safetensors, BASE-2, ...
 * (created empty to reserve it, removed at exit if still empty). Returns buf. */
const char *cli_train_out(const char *out, int overwrite, const char *dir, const char *base, char *buf, size_t len);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_augment(int argc, char **argv);
int cmd_submit(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_ensemble(int argc, char **argv);
int cmd_describe(int argc, char **argv);
int cmd_info(int argc, char **argv); /* also `digits models` (= info --list) */
int cmd_export(int argc, char **argv); /* --format onnx, --format c */
int cmd_import(int argc, char **argv); /* FILE.onnx --out MODEL.safetensors */
int cmd_quantize(int argc, char **argv); /* --model MODEL --out MODEL-int8.safetensors */

#endif
