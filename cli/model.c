/* tracemark model info: what a model file is (format, architecture,
 * dimensions, tensor types, tokenizer, parameter count, SHA-256), as text or
 * as one JSON object. */
#include "cli.h"

#include "tracemark/generator.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: tracemark model info [--tokenizer PATH] [--json] MODEL\n"
    "\n"
    "Describe a model file: format, architecture, dimensions, tensor types,\n"
    "tokenizer kind and size, parameter count and the file's SHA-256.\n"
    "\n"
    "options:\n"
    "  --tokenizer PATH   tokenizer for a llama2.c checkpoint (default: tok512.bin or\n"
    "                     tokenizer.bin beside the model, if present)\n"
    "  --json             one JSON object instead of text\n"
    "  -h, --help         this help\n";

/* Count of weights per tensor type, in first-seen order. */
typedef struct {
    uint32_t type;
    uint64_t tensors;
} type_count;

static void count_type(type_count *counts, size_t *n, uint32_t type) {
    for (size_t i = 0; i < *n; i++)
        if (counts[i].type == type) { counts[i].tensors++; return; }
    if (*n < TM_GGML_TYPE_LIMIT) counts[(*n)++] = (type_count){type, 1};
}

static size_t tensor_types(const tm_model *model, type_count *counts) {
    size_t n = 0;
    if (model->gguf) {
        for (uint64_t i = 0; i < model->gguf->n_tensors; i++) count_type(counts, &n, model->gguf->tensors[i].type);
    } else {
        count_type(counts, &n, TM_GGML_F32);
        counts[0].tensors = 3 + 9 * (uint64_t)model->config.n_layers - (model->config.tied_classifier ? 1 : 0);
    }
    return n;
}

static int info(int argc, char **argv) {
    static const struct option flags[] = {{"tokenizer", required_argument, 0, 't'}, {"json", no_argument, 0, 'j'},
                                          {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *tokenizer_path = NULL;
    bool json = false;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", flags, NULL)) != -1) {
        if (c == 't') tokenizer_path = optarg;
        else if (c == 'j') json = true;
        else if (c == 'h') { fputs(help, stdout); return TM_EXIT_OK; }
        else return tm_cli_usage("model info", "unknown or incomplete option '%s'", argv[optind - 1]);
    }
    if (optind + 1 != argc) return tm_cli_usage("model info", "expects exactly one MODEL file");
    const char *path = argv[optind];

    tm_error err = {0};
    tm_model *model = NULL;
    tm_tokenizer *tokenizer = NULL;
    char hex[TM_SHA256_HEX_SIZE], sibling[4096] = "", ignored[4096];
    if (tm_model_load(&model, path, &err) || tm_sha256_file_hex(path, hex, &err)) {
        tm_model_free(model);
        return tm_cli_fail(&err);
    }
    if (!tokenizer_path && model->format == TM_MODEL_FORMAT_LLAMA2C &&
        tm_model_resolve(path, ignored, sizeof ignored, sibling, sizeof sibling, &err) == TM_OK && sibling[0])
        tokenizer_path = sibling;
    if ((tokenizer_path || model->format == TM_MODEL_FORMAT_GGUF) &&
        tm_model_tokenizer(&tokenizer, model, tokenizer_path, &err) != TM_OK) {
        tm_model_free(model);
        return tm_cli_fail(&err);
    }
    const tm_model_config *cfg = &model->config;
    type_count counts[TM_GGML_TYPE_LIMIT];
    size_t n_types = tensor_types(model, counts);
    uint64_t parameters = tm_model_parameter_count(model);
    int exit_code = TM_EXIT_OK;
    if (json) {
        json_t *types = json_object();
        for (size_t i = 0; i < n_types; i++)
            json_object_set_new(types, tm_ggml_type_name(counts[i].type), json_integer((json_int_t)counts[i].tensors));
        json_t *tok = tokenizer ? json_pack("{s:s, s:i, s:i, s:i}", "kind", tm_tokenizer_kind(tokenizer), "size",
                                            tm_tokenizer_vocab_size(tokenizer), "bos", tm_tokenizer_bos(tokenizer),
                                            "eos", tm_tokenizer_eos(tokenizer))
                                : json_null();
        json_t *root = json_pack(
            "{s:s, s:s, s:s, s:s, s:i, s:{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i}, s:f, s:f, s:b, s:o, s:o, s:I, s:s}",
            "path", path, "format", tm_model_format_name(model->format), "architecture", cfg->architecture, "name",
            cfg->name, "gguf_version", model->gguf ? (int)model->gguf->version : 0, "dimensions", "n_vocab",
            cfg->n_vocab, "dim", cfg->dim, "hidden_dim", cfg->hidden_dim, "n_layers", cfg->n_layers, "n_heads",
            cfg->n_heads, "n_kv_heads", cfg->n_kv_heads, "head_dim", cfg->head_dim, "context_length",
            cfg->context_length, "norm_eps", (double)cfg->norm_eps, "rope_freq_base", (double)cfg->rope_freq_base,
            "tied_classifier", cfg->tied_classifier, "tensor_types", types, "tokenizer", tok, "parameters",
            (json_int_t)parameters, "sha256", hex);
        exit_code = tm_cli_print_json(root);
    } else {
        printf("file:           %s\n", path);
        printf("format:         %s", tm_model_format_name(model->format));
        if (model->gguf) printf(" v%u", model->gguf->version);
        printf("\narchitecture:   %s (%s)\n", cfg->architecture, cfg->name);
        printf("dimensions:     dim %d, hidden %d, layers %d, heads %d, kv heads %d, head size %d\n", cfg->dim,
               cfg->hidden_dim, cfg->n_layers, cfg->n_heads, cfg->n_kv_heads, cfg->head_dim);
        printf("context:        %d tokens\n", cfg->context_length);
        printf("vocabulary:     %d tokens\n", cfg->n_vocab);
        printf("norm epsilon:   %g\nrope base:      %g\n", (double)cfg->norm_eps, (double)cfg->rope_freq_base);
        printf("classifier:     %s\n", cfg->tied_classifier ? "tied to the token embedding" : "separate");
        printf("tensor types:  ");
        for (size_t i = 0; i < n_types; i++)
            printf(" %s x%llu", tm_ggml_type_name(counts[i].type), (unsigned long long)counts[i].tensors);
        if (tokenizer)
            printf("\ntokenizer:      %s, %d tokens (bos %d, eos %d)\n", tm_tokenizer_kind(tokenizer),
                   tm_tokenizer_vocab_size(tokenizer), tm_tokenizer_bos(tokenizer), tm_tokenizer_eos(tokenizer));
        else
            printf("\ntokenizer:      none in the file (pass --tokenizer)\n");
        printf("parameters:     %llu\n", (unsigned long long)parameters);
        printf("sha256:         %s\n", hex);
    }
    tm_tokenizer_free(tokenizer);
    tm_model_free(model);
    return exit_code;
}

int tm_cmd_model(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs("usage: tracemark model <subcommand>\n\nsubcommands:\n  info   describe a model file\n\n"
              "Run 'tracemark model info --help' for its options.\n",
              argc < 2 ? stderr : stdout);
        return argc < 2 ? TM_EXIT_USAGE : TM_EXIT_OK;
    }
    if (!strcmp(argv[1], "info")) return info(argc - 1, argv + 1);
    return tm_cli_usage("model", "unknown subcommand '%s'", argv[1]);
}
