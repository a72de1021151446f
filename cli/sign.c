/* tracemark sign: write a signed provenance manifest for a text file, beside
 * it (FILE.manifest.json) or embedded invisibly in a copy of the text. Thin:
 * reads files, calls provenance/, writes atomically. It must never print the
 * signing key or any part of it, in any mode. */
#include "cli.h"

#include "tracemark/provenance.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char help[] =
    "usage: tracemark sign FILE --signing-key KEY [--generation GEN.json] [--embed] [--out PATH] [--json]\n"
    "\n"
    "Sign a text with an Ed25519 key (tracemark keygen --signing): a manifest (docs/manifest.md)\n"
    "records the text's SHA-256 and length, what generated it, its watermark (scheme,\n"
    "parameters, key id; never a key), the time, the IPTC digital source type\n"
    "trainedAlgorithmicMedia and the signer's fingerprint, signed over its RFC 8785 form.\n"
    "\n"
    "options:\n"
    "  --signing-key KEY   private key file NAME.key (mode 0600)\n"
    "  --generation GEN    the JSON record `tracemark generate --json` printed for this text:\n"
    "                      model name (and file SHA-256 when the model is readable here), seed,\n"
    "                      sampling settings and watermark facts go into the manifest\n"
    "  --embed             carry the manifest inside the text, invisibly (C2PA text wrapper:\n"
    "                      U+FEFF then variation selectors), instead of beside it\n"
    "  --out PATH          where to write (default FILE.manifest.json, or with --embed\n"
    "                      FILE with .signed before its extension: story.txt -> story.signed.txt)\n"
    "  --json              print {\"output\", \"signer_fingerprint\", \"content_sha256\", \"embedded\"}\n"
    "  -h, --help          this help\n"
    "\n"
    "A manifest already embedded in FILE is replaced, never signed over.\n"
    "Exit status: 0 success, 1 failure, 2 usage error.\n";

typedef struct {
    const char *input, *key, *generation, *out;
    bool embed, json;
} options;

static int parse(int argc, char **argv, options *o) {
    enum { KEY = 256, GENERATION, EMBED, OUT, JSON };
    static const struct option flags[] = {{"signing-key", required_argument, 0, KEY},
                                          {"generation", required_argument, 0, GENERATION},
                                          {"embed", no_argument, 0, EMBED},
                                          {"out", required_argument, 0, OUT},
                                          {"json", no_argument, 0, JSON},
                                          {"help", no_argument, 0, 'h'},
                                          {0, 0, 0, 0}};
    const char *cmd = "sign";
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", flags, NULL)) != -1) {
        switch (c) {
        case KEY: o->key = optarg; break;
        case GENERATION: o->generation = optarg; break;
        case EMBED: o->embed = true; break;
        case OUT: o->out = optarg; break;
        case JSON: o->json = true; break;
        case 'h': fputs(help, stdout); return 1;
        default: tm_cli_usage(cmd, "unknown or incomplete option '%s'", argv[optind - 1]); return -1;
        }
    }
    if (optind < argc) o->input = argv[optind++];
    if (optind < argc) { tm_cli_usage(cmd, "unexpected argument '%s'", argv[optind]); return -1; }
    if (!o->input) { tm_cli_usage(cmd, "FILE is required"); return -1; }
    if (!o->key) { tm_cli_usage(cmd, "--signing-key is required"); return -1; }
    return 0;
}

/* story.txt -> story.signed.txt; notes -> notes.signed. */
static char *embedded_name(const char *input) {
    size_t n = strlen(input);
    char *name = malloc(n + 8);
    if (!name) return NULL;
    const char *slash = strrchr(input, '/'), *dot = strrchr(input, '.');
    if (dot && (!slash || dot > slash + 1)) {
        size_t stem = (size_t)(dot - input);
        snprintf(name, n + 8, "%.*s.signed%s", (int)stem, input, dot);
    } else snprintf(name, n + 8, "%s.signed", input);
    return name;
}

/* The manifest attests that the record's generation made this content; a
 * record of another text (a wrong file passed) would be signed all the
 * same. The content `generate` leaves is its text, or with --output its
 * prompt followed by its text: anything else is worth a warning (an edited
 * text may be signed on purpose, so it is not refused). */
static void warn_other_text(const char *input, const char *record_path, const char *content, size_t size,
                            const char *record, size_t record_size) {
    json_t *root = json_loadb(record, record_size, 0, NULL);
    const char *text = json_string_value(json_object_get(root, "text"));
    const char *prompt = json_string_value(json_object_get(root, "prompt"));
    size_t t = text ? strlen(text) : 0, p = prompt ? strlen(prompt) : 0;
    bool same = text && ((size == t && !memcmp(content, text, t)) ||
                         (prompt && size == p + t && !memcmp(content, prompt, p) && !memcmp(content + p, text, t)));
    if (text && !same)
        fprintf(stderr,
                "tracemark sign: warning: %s is neither the text of %s nor its prompt and text: the manifest's model, "
                "seed and watermark may not describe it\n",
                input, record_path);
    json_decref(root);
}

int tm_cmd_sign(int argc, char **argv) {
    options o = {0};
    int parsed = parse(argc, argv, &o);
    if (parsed != 0) return parsed > 0 ? TM_EXIT_OK : TM_EXIT_USAGE;

    tm_error err = {0};
    int exit_code = TM_EXIT_FAILURE;
    tm_signing_key *key = NULL;
    char *text = NULL, *generation = NULL, *content = NULL, *manifest_text = NULL, *output = NULL, *out_path = NULL;
    size_t text_size = 0, generation_size = 0, content_size = 0, manifest_size = 0, output_size = 0;
    tm_manifest *manifest = NULL;
    tm_embedded_manifest old = {0};
    if (tm_signing_key_read(&key, o.key, &err) || tm_read_file(o.input, &text, &text_size, &err) ||
        (o.generation && tm_read_file(o.generation, &generation, &generation_size, &err)))
        goto failed;
    /* Sign the text as readers see it: an embedded manifest is not content. */
    if (tm_provenance_extract(text, text_size, &old, &err) ||
        tm_provenance_strip(text, text_size, &old, &content, &content_size, &err)) {
        tm_error_prefix(&err, "%s", o.input);
        goto failed;
    }
    if (tm_manifest_create(&manifest, content, content_size, generation, generation_size, &err)) {
        if (o.generation) tm_error_prefix(&err, "%s", o.generation);
        goto failed;
    }
    if (o.generation) warn_other_text(o.input, o.generation, content, content_size, generation, generation_size);
    if (tm_manifest_sign(manifest, key, (int64_t)time(NULL), &err)) goto failed;
    if (o.embed) {
        out_path = o.out ? strdup(o.out) : embedded_name(o.input);
        if (!out_path) { tm_error_set(&err, TM_ERR_NOMEM, "out of memory"); goto failed; }
        if (tm_manifest_serialize_compact(manifest, &manifest_text, &manifest_size, &err) ||
            tm_provenance_embed(content, content_size, manifest_text, manifest_size, &output, &output_size, &err) ||
            tm_write_file_atomic(out_path, output, output_size, 0644, &err))
            goto failed;
    } else {
        size_t n = strlen(o.input) + sizeof ".manifest.json";
        out_path = o.out ? strdup(o.out) : malloc(n);
        if (!out_path) { tm_error_set(&err, TM_ERR_NOMEM, "out of memory"); goto failed; }
        if (!o.out) snprintf(out_path, n, "%s.manifest.json", o.input);
        if (tm_manifest_serialize(manifest, &manifest_text, &manifest_size, &err) ||
            tm_write_file_atomic(out_path, manifest_text, manifest_size, 0644, &err))
            goto failed;
    }
    if (o.json) {
        exit_code = tm_cli_print_json(json_pack("{s:s, s:s, s:s, s:b}", "output", out_path, "signer_fingerprint",
                                                tm_signing_key_fingerprint(key), "content_sha256",
                                                tm_manifest_content_sha256(manifest), "embedded", o.embed));
    } else {
        printf("%s: signed by %s%s\n", out_path, tm_signing_key_fingerprint(key),
               o.embed ? " (manifest embedded in the text)" : "");
        exit_code = fflush(stdout) == 0 ? TM_EXIT_OK : TM_EXIT_FAILURE;
    }
    goto done;
failed:
    tm_cli_fail(&err);
done:
    tm_signing_key_free(key);
    tm_manifest_free(manifest);
    tm_embedded_manifest_free(&old);
    free(text);
    free(generation);
    free(content);
    free(manifest_text);
    free(output);
    free(out_path);
    return exit_code;
}
