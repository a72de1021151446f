/* tracemark keygen: create a new watermark key file (mode 0600, never
 * overwriting an existing file) and print its key id, or with --signing an
 * Ed25519 signing key pair (NAME.key 0600, NAME.pub) and its fingerprint.
 * The secret goes only into the file: this command must never print, log or
 * echo it, in any mode. */
#include "cli.h"

#include "tracemark/provenance.h"
#include "tracemark/watermark.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: tracemark keygen --out FILE [--json]\n"
    "       tracemark keygen --signing --out NAME [--json]\n"
    "\n"
    "Create a new 256-bit watermark key (OpenSSL's random generator) and write it to\n"
    "FILE with mode 0600. An existing FILE is never overwritten. Prints the key id, a\n"
    "fingerprint that is safe to share and store with outputs; the key itself is\n"
    "never printed.\n"
    "\n"
    "With --signing, create an Ed25519 signing key pair instead (for tracemark sign):\n"
    "NAME.key (private, PEM, mode 0600) and NAME.pub (public, PEM, to give to verifiers).\n"
    "Prints the signer fingerprint: SHA-256 of the raw 32-byte public key, in hex.\n"
    "\n"
    "options:\n"
    "  --out FILE   where to write the key (required; must not exist)\n"
    "  --json       print {\"key_id\": ..., \"path\": ...} instead of the bare id\n"
    "  --signing    an Ed25519 signing key pair NAME.key and NAME.pub (neither may exist)\n"
    "  -h, --help   this help\n"
    "\n"
    "Exit status: 0 success, 1 failure (file exists, cannot write), 2 usage error.\n";

typedef struct {
    const char *out;
    bool json;
    bool signing;
} options;

/* 1: help printed, 0: parsed, -1: usage error. */
static int parse(int argc, char **argv, options *o) {
    enum { OUT = 256, JSON, SIGNING };
    static const struct option flags[] = {
        {"out", required_argument, 0, OUT}, {"json", no_argument, 0, JSON}, {"signing", no_argument, 0, SIGNING}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *cmd = "keygen";
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", flags, NULL)) != -1) {
        switch (c) {
        case OUT: o->out = optarg; break;
        case JSON: o->json = true; break;
        case SIGNING: o->signing = true; break;
        case 'h': fputs(help, stdout); return 1;
        default: tm_cli_usage(cmd, "unknown or incomplete option '%s'", argv[optind - 1]); return -1;
        }
    }
    if (optind < argc) { tm_cli_usage(cmd, "unexpected argument '%s'", argv[optind]); return -1; }
    if (!o->out || !o->out[0]) { tm_cli_usage(cmd, "--out FILE is required"); return -1; }
    return 0;
}

/* NAME.key and NAME.pub; prints the signer fingerprint, never the key. */
static int signing_keygen(const options *o, tm_error *err) {
    size_t n = strlen(o->out) + 5;
    char *private_path = malloc(n), *public_path = malloc(n);
    tm_signing_key *key = NULL;
    int exit_code = TM_EXIT_FAILURE;
    if (!private_path || !public_path) tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    else {
        snprintf(private_path, n, "%s.key", o->out);
        snprintf(public_path, n, "%s.pub", o->out);
    }
    if (err->code == TM_OK && tm_signing_key_generate(&key, err) == TM_OK &&
        tm_signing_key_write(key, private_path, public_path, err) == TM_OK) {
        if (o->json) {
            exit_code = tm_cli_print_json(json_pack("{s:s, s:s, s:s, s:s}", "signer_fingerprint",
                                                    tm_signing_key_fingerprint(key), "algorithm", "Ed25519",
                                                    "private_key", private_path, "public_key", public_path));
        } else {
            printf("%s\n", tm_signing_key_fingerprint(key));
            exit_code = fflush(stdout) == 0 ? TM_EXIT_OK : TM_EXIT_FAILURE;
        }
    } else tm_cli_fail(err);
    tm_signing_key_free(key);
    free(private_path);
    free(public_path);
    return exit_code;
}

int tm_cmd_keygen(int argc, char **argv) {
    options o = {0};
    int parsed = parse(argc, argv, &o);
    if (parsed != 0) return parsed > 0 ? TM_EXIT_OK : TM_EXIT_USAGE;

    tm_error err = {0};
    if (o.signing) return signing_keygen(&o, &err);
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
