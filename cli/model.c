/* tracemark model: `info` says what a model file is (format, architecture,
 * dimensions, tensor types, tokenizer, parameter count, SHA-256), as text or
 * as one JSON object; `quantize` converts a GGUF to another file type with
 * the project's own quantizer; `synth` writes a random-weight model of a real
 * shape for speed measurements. Thin: flags here, work in generator/ (whose
 * quantize.h and synth.h are not yet in the public header, hence the
 * relative includes). Never overwrites an existing file without --force. */
#include "cli.h"

#include "tracemark/generator.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char help[] =
    "usage: tracemark model info [--tokenizer PATH] [--json] MODEL\n"
    "\n"
    "Describe a model file: format, architecture (llama or qwen2), dimensions,\n"
    "rope settings, tensor types, tokenizer kind and size, parameter count and\n"
    "the file's SHA-256.\n"
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
    const tm_gguf *gguf = tm_model_get_gguf(model);
    if (gguf) {
        for (uint64_t i = 0; i < tm_gguf_tensor_count(gguf); i++)
            count_type(counts, &n, tm_gguf_tensor_at(gguf, i)->type);
    } else {
        const tm_model_config *cfg = tm_model_get_config(model);
        count_type(counts, &n, TM_GGML_F32);
        counts[0].tensors = 3 + 9 * (uint64_t)cfg->n_layers - (cfg->tied_classifier ? 1 : 0);
    }
    return n;
}

static bool has_qkv_bias(const tm_model *model) {
    const tm_layer_weights *first = tm_model_get_layer(model, 0);
    return first && (first->bq.data || first->bk.data || first->bv.data);
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
    tm_model_format format = tm_model_get_format(model);
    const tm_gguf *gguf = tm_model_get_gguf(model);
    if (!tokenizer_path && format == TM_MODEL_FORMAT_LLAMA2C &&
        tm_model_resolve(path, ignored, sizeof ignored, sibling, sizeof sibling, &err) == TM_OK && sibling[0])
        tokenizer_path = sibling;
    if ((tokenizer_path || format == TM_MODEL_FORMAT_GGUF) &&
        tm_model_tokenizer(&tokenizer, model, tokenizer_path, &err) != TM_OK) {
        tm_model_free(model);
        return tm_cli_fail(&err);
    }
    const tm_model_config *cfg = tm_model_get_config(model);
    bool frequency_factors = tm_model_get_rope_factors(model)->data != NULL;
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
        json_t *rope = json_pack("{s:s, s:f, s:b}", "style", cfg->rope_style == TM_ROPE_NEOX ? "neox" : "normal",
                                 "linear_scale", (double)cfg->rope_freq_scale, "frequency_factors",
                                 frequency_factors);
        json_t *root = json_pack(
            "{s:s, s:s, s:s, s:s, s:i, s:{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i}, s:f, s:f, s:o, s:b, s:b, s:o, s:o, "
            "s:I, s:s}",
            "path", path, "format", tm_model_format_name(format), "architecture", cfg->architecture, "name",
            cfg->name, "gguf_version", gguf ? (int)tm_gguf_version(gguf) : 0, "dimensions", "n_vocab",
            cfg->n_vocab, "dim", cfg->dim, "hidden_dim", cfg->hidden_dim, "n_layers", cfg->n_layers, "n_heads",
            cfg->n_heads, "n_kv_heads", cfg->n_kv_heads, "head_dim", cfg->head_dim, "context_length",
            cfg->context_length, "norm_eps", (double)cfg->norm_eps, "rope_freq_base", (double)cfg->rope_freq_base,
            "rope", rope, "qkv_bias", has_qkv_bias(model), "tied_classifier", cfg->tied_classifier, "tensor_types",
            types, "tokenizer", tok, "parameters",
            (json_int_t)parameters, "sha256", hex);
        exit_code = tm_cli_print_json(root);
    } else {
        printf("file:           %s\n", path);
        printf("format:         %s", tm_model_format_name(format));
        if (gguf) printf(" v%u", tm_gguf_version(gguf));
        printf("\narchitecture:   %s (%s)\n", cfg->architecture, cfg->name);
        printf("dimensions:     dim %d, hidden %d, layers %d, heads %d, kv heads %d, head size %d\n", cfg->dim,
               cfg->hidden_dim, cfg->n_layers, cfg->n_heads, cfg->n_kv_heads, cfg->head_dim);
        printf("context:        %d tokens\n", cfg->context_length);
        printf("vocabulary:     %d tokens\n", cfg->n_vocab);
        printf("norm epsilon:   %g\nrope base:      %g\n", (double)cfg->norm_eps, (double)cfg->rope_freq_base);
        printf("rope:           %s pairs", cfg->rope_style == TM_ROPE_NEOX ? "NeoX (halves)" : "adjacent");
        if (cfg->rope_freq_scale != 1.0f) printf(", linear scaling x%g", 1.0 / (double)cfg->rope_freq_scale);
        if (frequency_factors) printf(", Llama 3 frequency factors");
        printf("\nq/k/v biases:   %s\n", has_qkv_bias(model) ? "yes" : "no");
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

/* ======================================================================== */
/* Progress on stderr                                                        */
/* ======================================================================== */

typedef struct {
    bool terminal;
    uint64_t last_index;
    int last_percent;
    double started;
} progress_state;

static void show_progress(void *user, uint64_t index, uint64_t n_tensors, const char *name, uint32_t from,
                          uint32_t to, uint64_t done, uint64_t total) {
    progress_state *p = user;
    if (index >= n_tensors) {
        if (p->terminal) fputs("\r\033[K", stderr);
        return;
    }
    if (p->terminal) {
        int percent = total ? (int)(done * 100 / total) : 100;
        if (index == p->last_index && percent == p->last_percent) return;
        p->last_index = index;
        p->last_percent = percent;
        char bar[31];
        int filled = percent * 30 / 100;
        for (int i = 0; i < 30; i++) bar[i] = i < filled ? '#' : '.';
        bar[30] = 0;
        fprintf(stderr, "\r\033[K[%s] %3d%% %llu/%llu %s %s -> %s", bar, percent, (unsigned long long)index + 1,
                (unsigned long long)n_tensors, name, tm_ggml_type_name(from), tm_ggml_type_name(to));
    } else {
        if (index == p->last_index) return; /* one line per tensor when not a terminal */
        p->last_index = index;
        fprintf(stderr, "[%4llu/%4llu] %-32s %5s -> %s\n", (unsigned long long)index + 1,
                (unsigned long long)n_tensors, name, tm_ggml_type_name(from), tm_ggml_type_name(to));
    }
    fflush(stderr);
}

static void progress_init(progress_state *p, bool quiet) {
    p->terminal = !quiet && isatty(STDERR_FILENO);
    p->last_index = UINT64_MAX;
    p->last_percent = -1;
    p->started = tm_seconds_now();
}

static double file_mib(const char *path) {
    struct stat st; /* stat, not fopen: a FIFO named here must not block */
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
    return (double)st.st_size / (1024.0 * 1024.0);
}

/* ======================================================================== */
/* model quantize                                                            */
/* ======================================================================== */

static const char quantize_help[] =
    "usage: tracemark model quantize [options] IN.gguf OUT.gguf TYPE\n"
    "\n"
    "Quantize a GGUF model with the project's own quantizer: the bytes of every\n"
    "block equal llama.cpp's reference quantizer (no importance matrix), and a\n"
    "file type such as Q4_K_M gets llama.cpp's per-tensor mixture (output.weight\n"
    "Q6_K, more bits for some attn_v/ffn_down layers, Q5_0/Q5_1/Q8_0 for rows that\n"
    "are not a multiple of 256; norms stay F32). Sources: F32, F16, BF16.\n"
    "\n"
    "TYPE: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K_S, Q4_K_M (Q4_K),\n"
    "      Q5_K_S, Q5_K_M (Q5_K), Q6_K\n"
    "\n"
    "options:\n"
    "  --threads N          worker threads (default: all cores)\n"
    "  --force              overwrite OUT if it exists\n"
    "  --pure               no mixture: every quantizable tensor gets TYPE's type\n"
    "  --allow-requantize   accept already-quantized sources (dequantized first)\n"
    "  --quiet              no progress on stderr\n"
    "  -h, --help           this help\n";

/* The summary names the file type, as general.file_type does; but where a
 * matrix's rows are not a multiple of that type's block, llama.cpp's rules
 * (kept here byte for byte) store it in a 32-block type or F16 instead, and
 * a model of odd width may end up with no tensor of the type asked for. Say
 * so rather than let the summary imply otherwise. */
static void warn_fallbacks(const char *path, tm_ftype ftype) {
    uint32_t type = tm_ftype_default_type(ftype);
    if (!tm_quant_is_quantized(type)) return;
    uint64_t block = tm_ggml_block_elements(type);
    tm_gguf *g = NULL;
    tm_error e = {0};
    if (!block || tm_gguf_open(&g, path, &e) != TM_OK) return;
    uint64_t n = tm_gguf_tensor_count(g), matrices = 0, fell_back = 0, row = 0;
    char kinds[64] = "";
    for (uint64_t i = 0; i < n; i++) {
        const tm_gguf_tensor *t = tm_gguf_tensor_at(g, i);
        if (t->n_dims < 2 || t->ne[1] < 2) continue;
        matrices++;
        if (t->ne[0] % block == 0) continue;
        fell_back++;
        row = t->ne[0];
        const char *name = tm_ggml_type_name(t->type);
        if (!strstr(kinds, name) && strlen(kinds) + strlen(name) + 3 < sizeof kinds)
            snprintf(kinds + strlen(kinds), sizeof kinds - strlen(kinds), "%s%s", kinds[0] ? ", " : "", name);
    }
    tm_gguf_close(g);
    if (fell_back)
        fprintf(stderr,
                "tracemark model quantize: warning: %llu of %llu matrices have rows (of %llu values, e.g.) that are "
                "not a multiple of %s's %llu-value blocks and were stored as %s instead, as llama.cpp does\n",
                (unsigned long long)fell_back, (unsigned long long)matrices, (unsigned long long)row,
                tm_ftype_name(ftype), (unsigned long long)block, kinds);
}

static int quantize(int argc, char **argv) {
    static const struct option flags[] = {{"threads", required_argument, 0, 't'},
                                          {"force", no_argument, 0, 'f'},
                                          {"pure", no_argument, 0, 'p'},
                                          {"allow-requantize", no_argument, 0, 'r'},
                                          {"quiet", no_argument, 0, 'q'},
                                          {"help", no_argument, 0, 'h'},
                                          {0, 0, 0, 0}};
    tm_quantize_options options = {0};
    bool force = false, quiet = false;
    long threads = 0;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", flags, NULL)) != -1) {
        if (c == 't') {
            if (!tm_cli_parse_int("model quantize", "--threads", optarg, 1, 1024, &threads)) return TM_EXIT_USAGE;
        } else if (c == 'f') force = true;
        else if (c == 'p') options.pure = true;
        else if (c == 'r') options.allow_requantize = true;
        else if (c == 'q') quiet = true;
        else if (c == 'h') { fputs(quantize_help, stdout); return TM_EXIT_OK; }
        else return tm_cli_usage("model quantize", "unknown or incomplete option '%s'", argv[optind - 1]);
    }
    if (optind + 3 != argc) return tm_cli_usage("model quantize", "expects IN.gguf OUT.gguf TYPE");
    const char *in = argv[optind], *out = argv[optind + 1], *type = argv[optind + 2];
    if (!tm_ftype_parse(type, &options.ftype))
        return tm_cli_usage("model quantize", "unknown TYPE '%s' (known: %s)", type, tm_ftype_names());
    tm_error err = {0};
    if (!force && tm_file_exists(out)) {
        tm_error_set(&err, TM_ERR_ARGUMENT, "%s: the output file exists (pass --force to overwrite it)", out);
        return tm_cli_fail(&err);
    }
    options.n_threads = (int)threads;
    progress_state progress;
    progress_init(&progress, quiet);
    if (!quiet) {
        options.progress = show_progress;
        options.user = &progress;
    }
    if (tm_quantize_file(in, out, &options, &err)) {
        if (progress.terminal) fputs("\n", stderr);
        return tm_cli_fail(&err);
    }
    if (!quiet) {
        fprintf(stderr, "quantized %s (%.1f MiB) to %s (%.1f MiB, %s) in %.2f s\n", in, file_mib(in), out,
                file_mib(out), tm_ftype_name(options.ftype), tm_seconds_now() - progress.started);
        warn_fallbacks(out, options.ftype);
    }
    return TM_EXIT_OK;
}

/* ======================================================================== */
/* model synth                                                               */
/* ======================================================================== */

static const char synth_help[] =
    "usage: tracemark model synth --like NAME --out FILE.gguf [options]\n"
    "\n"
    "Write a random-weight Llama or Qwen2 model of a real shape with a real tokenizer copied\n"
    "from a GGUF, so that speed can be measured at sizes the repository cannot\n"
    "ship. The weights mean nothing: N(0, 0.02) from xoshiro256** streams seeded\n"
    "per row (norms 1), streamed through the quantizer a slab at a time.\n"
    "\n"
    "NAME: llama2-110m, tinyllama-1.1b, llama2-7b, smollm-135m, llama3-1b, qwen2-0.5b\n"
    "\n"
    "options:\n"
    "  --type TYPE          file type, as for model quantize (default F32)\n"
    "  --tokenizer SRC      GGUF whose tokenizer.* metadata is copied (default: Llama 2's\n"
    "                       32000 from ../shared/models/llama-2-tiny-random.gguf; Llama 3's\n"
    "                       from ../shared/tokenizer-tests/ggml-vocab-llama-bpe.gguf, which\n"
    "                       qwen2-0.5b also uses as Qwen2's own is not in ../shared)\n"
    "  --seed S             random seed (default 1)\n"
    "  --dim N, --layers N, --heads N, --kv-heads N, --hidden N, --ctx N, --rope-base F\n"
    "                       override the shape\n"
    "  --threads N          worker threads (default: all cores)\n"
    "  --force              overwrite the output if it exists\n"
    "  --quiet              no progress on stderr\n"
    "  -h, --help           this help\n";

/* The default tokenizer: ./<file> under ../shared, looked up from the
 * current folder as the CLI looks up models (./models/, then ../shared/). */
static bool default_tokenizer(const char *relative, char *out, size_t size) {
    const char *roots[] = {".", "..", "../shared"};
    const char *env = getenv("TRACEMARK_FIXTURES");
    if (env && *env) {
        snprintf(out, size, "%s/%s", env, relative);
        if (tm_file_exists(out)) return true;
    }
    for (size_t i = 0; i < sizeof roots / sizeof roots[0]; i++) {
        snprintf(out, size, "%s/%s", roots[i], relative);
        if (tm_file_exists(out)) return true;
    }
    return false;
}

static int synth(int argc, char **argv) {
    enum { OPT_DIM = 256, OPT_LAYERS, OPT_HEADS, OPT_KV, OPT_HIDDEN, OPT_CTX, OPT_ROPE };
    static const struct option flags[] = {{"like", required_argument, 0, 'l'},
                                          {"type", required_argument, 0, 'y'},
                                          {"out", required_argument, 0, 'o'},
                                          {"tokenizer", required_argument, 0, 'k'},
                                          {"seed", required_argument, 0, 's'},
                                          {"threads", required_argument, 0, 't'},
                                          {"dim", required_argument, 0, OPT_DIM},
                                          {"layers", required_argument, 0, OPT_LAYERS},
                                          {"heads", required_argument, 0, OPT_HEADS},
                                          {"kv-heads", required_argument, 0, OPT_KV},
                                          {"hidden", required_argument, 0, OPT_HIDDEN},
                                          {"ctx", required_argument, 0, OPT_CTX},
                                          {"rope-base", required_argument, 0, OPT_ROPE},
                                          {"force", no_argument, 0, 'f'},
                                          {"quiet", no_argument, 0, 'q'},
                                          {"help", no_argument, 0, 'h'},
                                          {0, 0, 0, 0}};
    const char *like = NULL, *out = NULL, *tokenizer = NULL, *type = "F32";
    long dim = 0, layers = 0, heads = 0, kv_heads = 0, hidden = 0, ctx = 0, threads = 0;
    double rope = 0;
    uint64_t seed = 1;
    bool force = false, quiet = false;
    const char *cmd = "model synth";
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", flags, NULL)) != -1) {
        bool ok = true;
        switch (c) {
        case 'l': like = optarg; break;
        case 'y': type = optarg; break;
        case 'o': out = optarg; break;
        case 'k': tokenizer = optarg; break;
        case 's': ok = tm_cli_parse_u64(cmd, "--seed", optarg, &seed); break;
        case 't': ok = tm_cli_parse_int(cmd, "--threads", optarg, 1, 1024, &threads); break;
        case OPT_DIM: ok = tm_cli_parse_int(cmd, "--dim", optarg, 2, 1 << 20, &dim); break;
        case OPT_LAYERS: ok = tm_cli_parse_int(cmd, "--layers", optarg, 1, 10000, &layers); break;
        case OPT_HEADS: ok = tm_cli_parse_int(cmd, "--heads", optarg, 1, 1 << 16, &heads); break;
        case OPT_KV: ok = tm_cli_parse_int(cmd, "--kv-heads", optarg, 1, 1 << 16, &kv_heads); break;
        case OPT_HIDDEN: ok = tm_cli_parse_int(cmd, "--hidden", optarg, 1, 1 << 20, &hidden); break;
        case OPT_CTX: ok = tm_cli_parse_int(cmd, "--ctx", optarg, 1, 1 << 24, &ctx); break;
        case OPT_ROPE: ok = tm_cli_parse_float(cmd, "--rope-base", optarg, 1.0, 1e12, &rope); break;
        case 'f': force = true; break;
        case 'q': quiet = true; break;
        case 'h': fputs(synth_help, stdout); return TM_EXIT_OK;
        default: return tm_cli_usage(cmd, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
        if (!ok) return TM_EXIT_USAGE;
    }
    if (optind != argc) return tm_cli_usage(cmd, "unexpected argument '%s'", argv[optind]);
    if (!like) return tm_cli_usage(cmd, "--like NAME is required (known: %s)", tm_synth_names());
    if (!out) return tm_cli_usage(cmd, "--out FILE.gguf is required");
    tm_synth_options options = {0};
    if (!tm_synth_lookup(like, &options.shape))
        return tm_cli_usage(cmd, "unknown model shape '%s' (known: %s)", like, tm_synth_names());
    if (!tm_ftype_parse(type, &options.ftype))
        return tm_cli_usage(cmd, "unknown --type '%s' (known: %s)", type, tm_ftype_names());
    tm_synth_shape *shape = &options.shape;
    if (dim) shape->dim = (int32_t)dim;
    if (layers) shape->n_layers = (int32_t)layers;
    if (heads) shape->n_heads = (int32_t)heads;
    if (kv_heads) shape->n_kv_heads = (int32_t)kv_heads;
    if (hidden) shape->hidden_dim = (int32_t)hidden;
    if (ctx) shape->context_length = (int32_t)ctx;
    if (rope > 0) shape->rope_freq_base = (float)rope;
    tm_error err = {0};
    char tokenizer_path[4096];
    if (!tokenizer) {
        if (!default_tokenizer(shape->default_tokenizer, tokenizer_path, sizeof tokenizer_path)) {
            tm_error_set(&err, TM_ERR_NOT_FOUND, "%s: default tokenizer not found under ., .. or ../shared "
                         "(pass --tokenizer SRC.gguf)", shape->default_tokenizer);
            return tm_cli_fail(&err);
        }
        tokenizer = tokenizer_path;
    }
    if (!force && tm_file_exists(out)) {
        tm_error_set(&err, TM_ERR_ARGUMENT, "%s: the output file exists (pass --force to overwrite it)", out);
        return tm_cli_fail(&err);
    }
    options.tokenizer_path = tokenizer;
    options.seed = seed;
    options.n_threads = (int)threads;
    progress_state progress;
    progress_init(&progress, quiet);
    if (!quiet) {
        options.progress = show_progress;
        options.user = &progress;
    }
    if (tm_synth_write(out, &options, &err)) {
        if (progress.terminal) fputs("\n", stderr);
        return tm_cli_fail(&err);
    }
    if (!quiet)
        fprintf(stderr, "wrote %s (%.1f MiB): %s shape, %s, tokenizer from %s, seed %llu, in %.2f s\n", out,
                file_mib(out), like, tm_ftype_name(options.ftype), tokenizer, (unsigned long long)seed,
                tm_seconds_now() - progress.started);
    return TM_EXIT_OK;
}

int tm_cmd_model(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs("usage: tracemark model <subcommand>\n\nsubcommands:\n"
              "  info       describe a model file\n"
              "  quantize   convert a GGUF to another file type (Q8_0, Q4_K_M, ...)\n"
              "  synth      write a random-weight model of a real shape\n\n"
              "Run 'tracemark model <subcommand> --help' for its options.\n",
              argc < 2 ? stderr : stdout);
        return argc < 2 ? TM_EXIT_USAGE : TM_EXIT_OK;
    }
    if (!strcmp(argv[1], "info")) return info(argc - 1, argv + 1);
    if (!strcmp(argv[1], "quantize")) return quantize(argc - 1, argv + 1);
    if (!strcmp(argv[1], "synth")) return synth(argc - 1, argv + 1);
    return tm_cli_usage("model", "unknown subcommand '%s'", argv[1]);
}
