/* tracemark keygen: create a new watermark key file (mode 0600, never
 * overwriting an existing file) and print its key id. The secret goes only
 * into the file: this command must never print, log or echo it, in any mode. */
#include "cli.h"

#include "tracemark/watermark.h"

#include <getopt.h>

static const char help[] =
    "usage: tracemark keygen --out FILE [--json]\n"
    "\n"
    "Create a new 256-bit watermark key (OpenSSL's random generator) and write it to\n"
    "FILE with mode 0600. An existing FILE is never overwritten. Prints the key id, a\n"
    "fingerprint that is safe to share and store with outputs; the key itself is\n"
    "never printed.\n"
    "\n"
    "options:\n"
    "  --out FILE   where to write the key (required; must not exist)\n"
    "  --json       print {\"key_id\": ..., \"path\": ...} instead of the bare id\n"
    "  -h, --help   this help\n"
    "\n"
    "Exit status: 0 success, 1 failure (file exists, cannot write), 2 usage error.\n";

typedef struct {
    const char *out;
    bool json;
} options;

/* 1: help printed, 0: parsed, -1: usage error. */
static int parse(int argc, char **argv, options *o) {
    enum { OUT = 256, JSON };
    static const struct option flags[] = {
        {"out", required_argument, 0, OUT}, {"json", no_argument, 0, JSON}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *cmd = "keygen";
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", flags, NULL)) != -1) {
        switch (c) {
        case OUT: o->out = optarg; break;
        case JSON: o->json = true; break;
        case 'h': fputs(help, stdout); return 1;
        default: tm_cli_usage(cmd, "unknown or incomplete option '%s'", argv[optind - 1]); return -1;
        }
    }
    if (optind < argc) { tm_cli_usage(cmd, "unexpected argument '%s'", argv[optind]); return -1; }
    if (!o->out || !o->out[0]) { tm_cli_usage(cmd, "--out FILE is required"); return -1; }
    return 0;
}

int tm_cmd_keygen(int argc, char **argv) {
    options o = {0};
    int parsed = parse(argc, argv, &o);
    if (parsed != 0) return parsed > 0 ? TM_EXIT_OK : TM_EXIT_USAGE;

    tm_error err = {0};
    tm_wm_key *key = NULL;
    if (tm_wm_key_generate(&key, &err) != TM_OK) return tm_cli_fail(&err);
    if (tm_wm_key_write(key, o.out, &err) != TM_OK) {
        tm_wm_key_free(key);
        return tm_cli_fail(&err);
    }
    int exit_code;
    if (o.json) {
        exit_code = tm_cli_print_json(json_pack("{s:s, s:s}", "key_id", tm_wm_key_id(key), "path", o.out));
    } else {
        printf("%s\n", tm_wm_key_id(key));
        exit_code = fflush(stdout) == 0 ? TM_EXIT_OK : TM_EXIT_FAILURE;
    }
    tm_wm_key_free(key);
    return exit_code;
}
