/* Shared plumbing of the tracemark command: error printing in the one format
 * every subcommand uses, numeric flag parsing with range checks, and the
 * exit codes. Each subcommand lives in its own cli/<name>.c file and stays
 * thin: parse flags, call the library, print. */
#ifndef TRACEMARK_CLI_H
#define TRACEMARK_CLI_H

#include "tracemark/core.h"

#include <jansson.h>
#include <stdio.h>

enum {
    TM_EXIT_OK = 0,
    TM_EXIT_FAILURE = 1, /* the command ran and failed (bad file, bad input) */
    TM_EXIT_USAGE = 2,   /* the command line itself is wrong */
};

/* "tracemark: error: <message>" on stderr; returns TM_EXIT_FAILURE. */
int tm_cli_fail(const tm_error *err);
/* Usage error: message plus a hint to run --help; returns TM_EXIT_USAGE. */
int tm_cli_usage(const char *command, const char *format, ...) __attribute__((format(printf, 2, 3)));

/* Parse a flag value; on failure print a usage error and return false. */
bool tm_cli_parse_int(const char *command, const char *flag, const char *text, long min, long max, long *out);
bool tm_cli_parse_u64(const char *command, const char *flag, const char *text, uint64_t *out);
bool tm_cli_parse_float(const char *command, const char *flag, const char *text, double min, double max, double *out);

/* The largest text a command reads by default (detect's --max-input-bytes). */
#define TM_CLI_MAX_TEXT_BYTES ((size_t)16 << 20)
/* A text from path, or from stdin for NULL or "-", refused past max_bytes
 * (and, from a path, unless it is a regular file). */
tm_status tm_cli_read_input(const char *path, size_t max_bytes, char **data, size_t *size, tm_error *err);

/* The default tokenizer for a detector where it already lies on disk:
 * $TRACEMARK_MODEL (its own tokenizer, or the tokenizer.bin beside a llama2.c
 * checkpoint), then tok512.bin in ./models/ and ../shared/models/. Never a
 * download and never a new folder: detection needs only a vocabulary. */
tm_status tm_cli_local_tokenizer(char *path, size_t size, tm_error *err);
/* On stderr: which tokenizer `command` took without --tokenizer, since a
 * text from a model of another vocabulary then scores like plain text. */
void tm_cli_note_default_tokenizer(const char *command, const char *path, int32_t vocab);

/* Print a JSON value on stdout followed by a newline; frees it. */
int tm_cli_print_json(json_t *value);

/* Subcommands. */
int tm_cmd_generate(int argc, char **argv);
int tm_cmd_model(int argc, char **argv);
int tm_cmd_tokenize(int argc, char **argv);
int tm_cmd_detokenize(int argc, char **argv);
int tm_cmd_keygen(int argc, char **argv);
int tm_cmd_detect(int argc, char **argv);
int tm_cmd_sign(int argc, char **argv);
int tm_cmd_verify(int argc, char **argv);
int tm_cmd_eval(int argc, char **argv);
/* detect --zero-shot METHOD (cli/detect_zeroshot.c): detectors without a watermark. */
int tm_cmd_detect_zeroshot(int argc, char **argv);
int tm_cmd_serve(int argc, char **argv);
/* report (cli/report.c): HTML/Markdown/JSON/PDF evidence reports with compliance policies. */
int tm_cmd_report(int argc, char **argv);

#endif
