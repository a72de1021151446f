/* tracemark serve: the OpenAI-compatible server. Parses flags, starts the
 * server room (which loads the model, keys and tenants and listens), prints
 * where it listens on stderr, and waits for SIGTERM or SIGINT, on which it
 * drains in-flight requests and exits 0. Signals are blocked before any
 * thread starts so that only this thread ever takes them. */
#include "cli.h"

#include "tracemark/server.h"

#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: tracemark serve --model PATH (--watermark CONFIG --key KEY | --tenants TENANTS.yaml) [options]\n"
    "\n"
    "Serve the model over the OpenAI API (POST /v1/completions, /v1/chat/completions, streaming\n"
    "included; GET /v1/models), watermarking every response with the key of the tenant whose API key\n"
    "made the request; POST /v1/detect tests a text against the tenants' keys. With --sign every reply\n"
    "carries each choice's signed manifest, and POST /v1/verify checks a text and its manifest\n"
    "against the server's signer and --trust keys. GET /health and\n"
    "GET /metrics (Prometheus) need no key. SIGTERM or SIGINT drains in-flight requests and exits.\n"
    "\n"
    "options:\n"
    "  --model PATH          model file (GGUF or llama2.c checkpoint; resolved as in generate)\n"
    "  --tokenizer PATH      tokenizer for llama2.c checkpoints\n"
    "  --model-name NAME     the id clients send as \"model\" (default: the file's name)\n"
    "  --chat-template NAME  chat format for /v1/chat/completions when the model has none\n"
    "  --watermark CONFIG    scheme settings (YAML, configs/schemes/) of the single tenant\n"
    "  --key FILE            its watermark key (mode 0600)\n"
    "  --api-keys FILE       with --watermark: API keys, one a line (mode 0600); without it no key is asked\n"
    "  --tenants FILE        tenants (YAML, mode 0600): name, api_key, watermark, key for each\n"
    "  --host ADDRESS        numeric address to bind (default 127.0.0.1: loopback only)\n"
    "  --port N              port (default 8080; 0 picks a free one)\n"
    "  --parallel N          slots decoded together by continuous batching (default 1)\n"
    "  --ctx N               context per slot (default: the model's)\n"
    "  --threads N           engine threads (default: all cores)\n"
    "  --kv-type f32|f16     KV cache elements (default f32; f16 as llama.cpp keeps them: half the memory\n"
    "                        of a slot and the bytes read per cached position; a seed then gives other tokens)\n"
    "  --max-body BYTES      request body cap (default 1048576)\n"
    "  --drain SECONDS       on SIGTERM, how long in-flight requests may take (default 30)\n"
    "  --sign KEY            sign every reply with this Ed25519 signing key (tracemark keygen --signing;\n"
    "                        mode 0600): the tracemark object carries each choice's manifest\n"
    "  --trust PATH          a signer /v1/verify also trusts: NAME.pub or a folder of *.pub; repeatable\n"
    "  -h, --help            this help\n"
    "\n"
    "Exit status: 0 after a clean shutdown, 1 failure (bad model, key or port), 2 usage error.\n";

int tm_cmd_serve(int argc, char **argv) {
    enum { MODEL = 256, TOKENIZER, MODEL_NAME, CHAT_TEMPLATE, WATERMARK, KEY, API_KEYS, TENANTS, HOST, PORT,
           PARALLEL, CTX, THREADS, KV_TYPE, MAX_BODY, DRAIN, SIGN, TRUST };
    enum { MAX_TRUST = 64 };
    static const struct option flags[] = {
        {"model", required_argument, 0, MODEL}, {"tokenizer", required_argument, 0, TOKENIZER},
        {"model-name", required_argument, 0, MODEL_NAME}, {"chat-template", required_argument, 0, CHAT_TEMPLATE},
        {"watermark", required_argument, 0, WATERMARK}, {"key", required_argument, 0, KEY},
        {"api-keys", required_argument, 0, API_KEYS}, {"tenants", required_argument, 0, TENANTS},
        {"host", required_argument, 0, HOST}, {"port", required_argument, 0, PORT},
        {"parallel", required_argument, 0, PARALLEL}, {"ctx", required_argument, 0, CTX},
        {"threads", required_argument, 0, THREADS}, {"kv-type", required_argument, 0, KV_TYPE},
        {"max-body", required_argument, 0, MAX_BODY},
        {"drain", required_argument, 0, DRAIN}, {"sign", required_argument, 0, SIGN},
        {"trust", required_argument, 0, TRUST},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *cmd = "serve", *model = NULL, *trust[MAX_TRUST];
    tm_server_options o;
    tm_server_options_default(&o);
    long value;
    double drain = 30;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", flags, NULL)) != -1) {
        switch (c) {
        case MODEL: model = optarg; break;
        case TOKENIZER: o.tokenizer_path = optarg; break;
        case MODEL_NAME: o.model_name = optarg; break;
        case CHAT_TEMPLATE: o.chat_template = optarg; break;
        case WATERMARK: o.watermark_path = optarg; break;
        case KEY: o.key_path = optarg; break;
        case API_KEYS: o.api_keys_path = optarg; break;
        case TENANTS: o.tenants_path = optarg; break;
        case HOST: o.host = optarg; break;
        case PORT: if (!tm_cli_parse_int(cmd, "--port", optarg, 0, 65535, &value)) return TM_EXIT_USAGE; o.port = (uint16_t)value; break;
        case PARALLEL: if (!tm_cli_parse_int(cmd, "--parallel", optarg, 1, 64, &value)) return TM_EXIT_USAGE; o.parallel = (int32_t)value; break;
        case CTX: if (!tm_cli_parse_int(cmd, "--ctx", optarg, 2, 1 << 24, &value)) return TM_EXIT_USAGE; o.n_ctx = (int32_t)value; break;
        case THREADS: if (!tm_cli_parse_int(cmd, "--threads", optarg, 1, 1024, &value)) return TM_EXIT_USAGE; o.n_threads = (int32_t)value; break;
        case KV_TYPE:
            if (!tm_kv_type_parse(optarg, &o.kv_type)) return tm_cli_usage(cmd, "--kv-type '%s': f32 or f16", optarg);
            break;
        case MAX_BODY: if (!tm_cli_parse_int(cmd, "--max-body", optarg, 1024, 1L << 30, &value)) return TM_EXIT_USAGE; o.max_body_bytes = (size_t)value; break;
        case DRAIN: if (!tm_cli_parse_float(cmd, "--drain", optarg, 0, 3600, &drain)) return TM_EXIT_USAGE; break;
        case SIGN: o.signing_key_path = optarg; break;
        case TRUST:
            if (o.n_trust_paths == MAX_TRUST) return tm_cli_usage(cmd, "at most %d --trust options", MAX_TRUST);
            trust[o.n_trust_paths++] = optarg;
            o.trust_paths = trust;
            break;
        case 'h':
            fputs(help, stdout);
            printf("\nChat templates (--chat-template): %s.\n", tm_chat_template_names());
            return TM_EXIT_OK;
        default: return tm_cli_usage(cmd, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return tm_cli_usage(cmd, "unexpected argument '%s'", argv[optind]);
    if (!o.tenants_path && (!o.watermark_path || !o.key_path))
        return tm_cli_usage(cmd, "every response is watermarked: give --watermark and --key, or --tenants");
    if (o.tenants_path && (o.watermark_path || o.key_path || o.api_keys_path))
        return tm_cli_usage(cmd, "--tenants replaces --watermark, --key and --api-keys");
    if (o.chat_template && !tm_chat_template_lookup(o.chat_template, NULL))
        return tm_cli_usage(cmd, "unknown chat template '%s' (built in: %s)", o.chat_template, tm_chat_template_names());

    tm_error err = {0};
    char model_path[4096], tokenizer_path[4096];
    if (tm_model_resolve(model, model_path, sizeof model_path, tokenizer_path, sizeof tokenizer_path, &err))
        return tm_cli_fail(&err);
    o.model_path = model_path;
    if (!o.tokenizer_path && tokenizer_path[0]) o.tokenizer_path = tokenizer_path;

    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGPIPE); /* a client that goes away mid-write is an error value, not a death */
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    tm_server *server = NULL;
    if (tm_server_start(&server, &o, &err) != TM_OK) return tm_cli_fail(&err);
    if (tm_server_signer(server)) fprintf(stderr, "tracemark: signing replies as %s\n", tm_server_signer(server));
    const char *host = o.host ? o.host : "127.0.0.1";
    bool v6 = strchr(host, ':') != NULL;
    fprintf(stderr, "tracemark: listening on http://%s%s%s:%u (model %s, %d slot%s)\n", v6 ? "[" : "", host,
            v6 ? "]" : "", (unsigned)tm_server_port(server), model_path, o.parallel, o.parallel == 1 ? "" : "s");
    sigdelset(&signals, SIGPIPE);
    int received = 0;
    sigwait(&signals, &received);
    fprintf(stderr, "tracemark: %s: draining in-flight requests (up to %g s)\n",
            received == SIGTERM ? "SIGTERM" : "SIGINT", drain);
    tm_server_stop(server, drain);
    fprintf(stderr, "tracemark: stopped\n");
    return TM_EXIT_OK;
}
