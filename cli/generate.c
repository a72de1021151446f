/* tracemark generate: load a model (resolved as DESIGN.md says), build the
 * sampler chain from the flags (with a keyed watermark scheme plugged in when
 * --watermark and --key are given), stream the generated text to stdout, or
 * print one JSON object with ids, text, timings and the watermark's scheme,
 * parameters and key id (never the key) under --json. With --chat the prompt
 * is the user's message (after an optional system message, or after a whole
 * conversation read from --messages): it goes through the model's chat
 * format (built in, never a Jinja run) and is tokenized with special tokens
 * parsed, and what is shown and recorded as the prompt is the formatted
 * text. */
#include "cli.h"

#include "tracemark/tokenizer.h"
#include "tracemark/generator.h"
#include "tracemark/provenance.h"
#include "tracemark/watermark.h"

#include <getopt.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char help[] =
    "usage: tracemark generate [options] --prompt TEXT\n"
    "\n"
    "Generate text with a local Llama-family model (GGUF or llama2.c checkpoint).\n"
    "\n"
    "options:\n"
    "  --model PATH          model file (default: $TRACEMARK_MODEL, ./models/, ../shared/models/,\n"
    "                        then the pinned stories260K download into ./models/)\n"
    "  --tokenizer PATH      tokenizer (tokenizer.bin or GGUF); required for llama2.c checkpoints\n"
    "                        unless one lies beside the model\n"
    "  --prompt TEXT         the prompt (may be empty: generation starts from BOS)\n"
    "  --prompt-file PATH    read the prompt from a file instead\n"
    "  --chat                treat the prompt as a user message in the model's chat format: the\n"
    "                        format is recognised from the GGUF's tokenizer.chat_template (its Jinja\n"
    "                        is not run: the markers pick one of the built-in formats, as llama.cpp\n"
    "                        does), the template's special tokens are parsed (the messages' text stays\n"
    "                        plain text), and generation stops at the end of the assistant's turn\n"
    "  --system TEXT         with --chat: a system message before the user's\n"
    "  --messages FILE       a conversation so far, as chat APIs take it: a JSON array of\n"
    "                        {\"role\": \"system\"|\"user\"|\"assistant\", \"content\": TEXT}; implies --chat;\n"
    "                        --prompt, if given, is appended as the last user message\n"
    "  --chat-template NAME  with --chat: use this built-in format instead (needed for models without\n"
    "                        a template); the names are listed below\n"
    "  --chat-special-tokens with --chat: also parse special-token text inside messages (\"<|im_end|>\"\n"
    "                        in a message then ends its turn, as in llama.cpp): trusted input only\n"
    "  --max-tokens N        tokens to generate (default 256)\n"
    "  --temperature X       0 means greedy (default 1.0)\n"
    "  --top-k K             keep the K most likely tokens (default 0: off)\n"
    "  --top-p P             nucleus sampling (default 1.0: off)\n"
    "  --min-p P             drop tokens below P times the top probability (default 0: off)\n"
    "  --repeat-penalty X    repetition penalty over the last --penalty-window tokens (default 1.0: off)\n"
    "  --frequency-penalty X, --presence-penalty X   (default 0: off)\n"
    "  --penalty-window N    tokens the penalties look back on (default 64)\n"
    "  --seed S              RNG seed, xoshiro256** (default: a fresh random seed, recorded in --json;\n"
    "                        the same seed, key, model and prompt repeat the same tokens)\n"
    "  --stop TEXT           stop when TEXT appears (repeatable)\n"
    "  --ctx N               context size (default: the smaller of the model's trained length and 4096;\n"
    "                        larger sizes are checked against the memory available)\n"
    "  --threads N           threads (default: all cores)\n"
    "  --kv-type f32|f16     KV cache elements (default f32; f16 as llama.cpp keeps them: half the memory\n"
    "                        and the bytes read per cached position; a seed then gives other tokens)\n"
    "  --watermark CONFIG    generate through a watermark scheme (YAML, see configs/schemes/)\n"
    "  --key FILE            the watermark key (tracemark keygen; mode 0600)\n"
    "  --json                print one JSON object: ids, text, timings, watermark scheme and key id\n"
    "                        (with --chat, \"prompt\" is the formatted prompt)\n"
    "  --output FILE         also write the prompt and generated text to FILE (atomically)\n"
    "  --sign KEY            with --output: sign what FILE holds with an Ed25519 signing key (tracemark\n"
    "                        keygen --signing) into FILE.manifest.json, recording the model, sampling,\n"
    "                        seed and watermark (see docs/manifest.md; tracemark verify checks it)\n"
    "  --embed               with --sign: carry the manifest invisibly inside FILE instead\n"
    "  -h, --help            this help\n"
    "\n"
    "Exit status: 0 success, 1 failure (bad model, tokenizer or prompt), 2 usage error.\n";

typedef struct {
    const char *model, *tokenizer, *prompt, *prompt_file, *watermark, *key, *output, *system, *chat_template;
    const char *sign;
    const char *messages;
    const char *stops[16];
    size_t n_stops;
    long max_tokens, ctx, threads;
    tm_kv_type kv_type;
    bool json, seed_given, chat, embed, chat_special_tokens;
    tm_sampling_params sampling;
} options;

/* The prompt is echoed only once generation is under way, so that a failed
 * run leaves nothing on stdout. */
typedef struct {
    const char *prompt;
    bool prompt_printed;
} stream;

static void print_prompt_once(stream *s) {
    if (s->prompt_printed) return;
    fputs(s->prompt, stdout);
    s->prompt_printed = true;
}

static void stream_text(const char *text, size_t size, void *user) {
    print_prompt_once(user);
    fwrite(text, 1, size, stdout);
    fflush(stdout);
}

static json_t *ids_json(const int32_t *ids, size_t n) {
    json_t *array = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(array, json_integer(ids[i]));
    return array;
}

/* What a detector needs to check this text: scheme, parameters, key id. */
static json_t *watermark_json(const tm_wm_scheme *scheme) {
    const tm_wm_config *c = tm_wm_scheme_config(scheme);
    char description[256];
    tm_wm_config_describe(c, description, sizeof description);
    return json_pack("{s:s, s:s, s:s}", "scheme", tm_wm_kind_name(c->kind), "parameters", description, "key_id",
                     tm_wm_scheme_key_id(scheme));
}

/* A conversation from a chat API's JSON: an array of at most 4096 objects
 * with string "role" and "content" (no NUL inside). *root owns the strings
 * that messages[] points to; *messages has room for one more message. */
static tm_status load_messages(const char *path, json_t **root, tm_chat_message **messages, size_t *n,
                               tm_error *err) {
    enum { MAX_MESSAGES = 4096, MAX_MESSAGES_BYTES = 16 << 20 };
    json_error_t jerr;
    *messages = NULL;
    *n = 0;
    char *text = NULL; /* through tm_read_file_limited: a FIFO is refused, the size bounded */
    size_t text_size = 0;
    tm_status read = tm_read_file_limited(path, MAX_MESSAGES_BYTES, &text, &text_size, err);
    if (read == TM_ERR_LIMIT) return tm_error_set(err, TM_ERR_LIMIT, "%s: larger than %d bytes", path, MAX_MESSAGES_BYTES);
    if (read != TM_OK) return read;
    *root = json_loadb(text, text_size, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (!*root) return tm_error_set(err, TM_ERR_FORMAT, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
    size_t count = json_is_array(*root) ? json_array_size(*root) : 0;
    if (count == 0 || count > MAX_MESSAGES)
        return tm_error_set(err, TM_ERR_FORMAT, "%s: expected a JSON array of 1 to %d messages", path, MAX_MESSAGES);
    *messages = tm_alloc_array(count + 1, sizeof **messages, err);
    if (!*messages) return TM_ERR_NOMEM;
    for (size_t i = 0; i < count; i++) {
        json_t *message = json_array_get(*root, i);
        json_t *role = json_object_get(message, "role"), *content = json_object_get(message, "content");
        if (!json_is_string(role) || !json_is_string(content) || json_string_length(role) == 0 ||
            strlen(json_string_value(role)) != json_string_length(role) ||
            strlen(json_string_value(content)) != json_string_length(content))
            return tm_error_set(err, TM_ERR_FORMAT,
                                "%s: message %zu needs a non-empty string \"role\" and a string \"content\" "
                                "(without NUL characters)",
                                path, i);
        (*messages)[(*n)++] = (tm_chat_message){json_string_value(role), json_string_value(content)};
    }
    return TM_OK;
}

static int parse(int argc, char **argv, options *o) {
    enum { MODEL = 256, TOKENIZER, PROMPT, PROMPT_FILE, MAX_TOKENS, TEMPERATURE, TOP_K, TOP_P, MIN_P, REPEAT,
           FREQUENCY, PRESENCE, WINDOW, SEED, STOP, CTX, THREADS, JSON, WATERMARK, KEY, OUTPUT, CHAT, SYSTEM,
           CHAT_TEMPLATE, MESSAGES, SIGN, EMBED, CHAT_SPECIAL_TOKENS, KV_TYPE };
    static const struct option flags[] = {
        {"model", required_argument, 0, MODEL}, {"tokenizer", required_argument, 0, TOKENIZER},
        {"prompt", required_argument, 0, PROMPT}, {"prompt-file", required_argument, 0, PROMPT_FILE},
        {"max-tokens", required_argument, 0, MAX_TOKENS}, {"temperature", required_argument, 0, TEMPERATURE},
        {"top-k", required_argument, 0, TOP_K}, {"top-p", required_argument, 0, TOP_P},
        {"min-p", required_argument, 0, MIN_P}, {"repeat-penalty", required_argument, 0, REPEAT},
        {"frequency-penalty", required_argument, 0, FREQUENCY}, {"presence-penalty", required_argument, 0, PRESENCE},
        {"penalty-window", required_argument, 0, WINDOW}, {"seed", required_argument, 0, SEED},
        {"stop", required_argument, 0, STOP}, {"ctx", required_argument, 0, CTX},
        {"threads", required_argument, 0, THREADS}, {"kv-type", required_argument, 0, KV_TYPE},
        {"json", no_argument, 0, JSON},
        {"watermark", required_argument, 0, WATERMARK}, {"key", required_argument, 0, KEY},
        {"output", required_argument, 0, OUTPUT}, {"chat", no_argument, 0, CHAT},
        {"system", required_argument, 0, SYSTEM}, {"chat-template", required_argument, 0, CHAT_TEMPLATE},
        {"messages", required_argument, 0, MESSAGES}, {"sign", required_argument, 0, SIGN},
        {"embed", no_argument, 0, EMBED},
        {"chat-special-tokens", no_argument, 0, CHAT_SPECIAL_TOKENS},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *cmd = "generate";
    double value;
    long integer;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", flags, NULL)) != -1) {
        switch (c) {
        case MODEL: o->model = optarg; break;
        case TOKENIZER: o->tokenizer = optarg; break;
        case PROMPT: o->prompt = optarg; break;
        case PROMPT_FILE: o->prompt_file = optarg; break;
        case MAX_TOKENS: if (!tm_cli_parse_int(cmd, "--max-tokens", optarg, 0, 1 << 24, &o->max_tokens)) return -1; break;
        case TEMPERATURE: if (!tm_cli_parse_float(cmd, "--temperature", optarg, 0, 100, &value)) return -1; o->sampling.temperature = (float)value; break;
        case TOP_K: if (!tm_cli_parse_int(cmd, "--top-k", optarg, 0, 1 << 24, &integer)) return -1; o->sampling.top_k = (int32_t)integer; break;
        case TOP_P: if (!tm_cli_parse_float(cmd, "--top-p", optarg, 0, 1, &value)) return -1; o->sampling.top_p = (float)value; break;
        case MIN_P: if (!tm_cli_parse_float(cmd, "--min-p", optarg, 0, 1, &value)) return -1; o->sampling.min_p = (float)value; break;
        case REPEAT: if (!tm_cli_parse_float(cmd, "--repeat-penalty", optarg, 0.01, 100, &value)) return -1; o->sampling.repeat_penalty = (float)value; break;
        case FREQUENCY: if (!tm_cli_parse_float(cmd, "--frequency-penalty", optarg, -100, 100, &value)) return -1; o->sampling.frequency_penalty = (float)value; break;
        case PRESENCE: if (!tm_cli_parse_float(cmd, "--presence-penalty", optarg, -100, 100, &value)) return -1; o->sampling.presence_penalty = (float)value; break;
        case WINDOW: if (!tm_cli_parse_int(cmd, "--penalty-window", optarg, 0, 1 << 20, &integer)) return -1; o->sampling.penalty_window = (int32_t)integer; break;
        case SEED:
            if (!tm_cli_parse_u64(cmd, "--seed", optarg, &o->sampling.seed)) return -1;
            if (o->sampling.seed > (uint64_t)INT64_MAX) { tm_cli_usage(cmd, "--seed must be below 2^63"); return -1; }
            o->seed_given = true;
            break;
        case STOP:
            if (o->n_stops == sizeof o->stops / sizeof o->stops[0]) { tm_cli_usage(cmd, "at most 16 --stop strings"); return -1; }
            o->stops[o->n_stops++] = optarg;
            break;
        case CTX: if (!tm_cli_parse_int(cmd, "--ctx", optarg, 1, 1 << 24, &o->ctx)) return -1; break;
        case THREADS: if (!tm_cli_parse_int(cmd, "--threads", optarg, 1, 1024, &o->threads)) return -1; break;
        case KV_TYPE:
            if (!tm_kv_type_parse(optarg, &o->kv_type)) { tm_cli_usage(cmd, "--kv-type '%s': f32 or f16", optarg); return -1; }
            break;
        case JSON: o->json = true; break;
        case WATERMARK: o->watermark = optarg; break;
        case KEY: o->key = optarg; break;
        case OUTPUT: o->output = optarg; break;
        case CHAT: o->chat = true; break;
        case SYSTEM: o->system = optarg; break;
        case MESSAGES: o->messages = optarg; o->chat = true; break;
        case CHAT_TEMPLATE: o->chat_template = optarg; break;
        case SIGN: o->sign = optarg; break;
        case EMBED: o->embed = true; break;
        case CHAT_SPECIAL_TOKENS: o->chat_special_tokens = true; break;
        case 'h':
            fputs(help, stdout);
            printf("\nChat templates (--chat-template): %s.\n", tm_chat_template_names());
            return 1;
        default: tm_cli_usage(cmd, "unknown or incomplete option '%s'", argv[optind - 1]); return -1;
        }
    }
    if (optind < argc) { tm_cli_usage(cmd, "unexpected argument '%s'", argv[optind]); return -1; }
    if (!o->prompt && !o->prompt_file && !o->messages) {
        tm_cli_usage(cmd, "--prompt, --prompt-file or --messages is required");
        return -1;
    }
    if (o->messages && o->system) { tm_cli_usage(cmd, "give the system message inside --messages, not with --system"); return -1; }
    if (o->prompt && o->prompt_file) { tm_cli_usage(cmd, "give --prompt or --prompt-file, not both"); return -1; }
    if (o->sign && !o->output) { tm_cli_usage(cmd, "--sign signs the --output file: give --output too"); return -1; }
    if (o->embed && !o->sign) { tm_cli_usage(cmd, "--embed goes with --sign"); return -1; }
    if (!o->watermark != !o->key) { tm_cli_usage(cmd, "--watermark and --key go together"); return -1; }
    if ((o->system || o->chat_template) && !o->chat) { tm_cli_usage(cmd, "--system and --chat-template go with --chat"); return -1; }
    if (o->chat_special_tokens && !o->chat) { tm_cli_usage(cmd, "--chat-special-tokens goes with --chat"); return -1; }
    if (o->chat_template && !tm_chat_template_lookup(o->chat_template, NULL)) {
        tm_cli_usage(cmd, "unknown chat template '%s' (built in: %s)", o->chat_template, tm_chat_template_names());
        return -1;
    }
    if (o->system && !tm_utf8_valid(o->system, strlen(o->system))) { tm_cli_usage(cmd, "--system is not valid UTF-8"); return -1; }
    return 0;
}

/* Everything one run holds, released together by run_free. */
typedef struct {
    char model_path[4096], tokenizer_path[4096];
    char *prompt_buffer; /* --prompt-file's text */
    tm_model *model;
    tm_tokenizer *tokenizer;
    tm_context *context;
    tm_sampler_chain *chain;
    tm_wm_key *key;
    tm_wm_scheme *scheme;
    /* --chat: the conversation, the formatted prompt and its ids */
    json_t *conversation;
    tm_chat_message *messages, pair[2];
    size_t n_messages;
    tm_chat_template chat_template;
    char *chat_prompt;
    int32_t *chat_ids;
    size_t n_chat_ids;
    tm_generation result;
    tm_signing_key *signer; /* --sign */
} run;

static void run_free(run *r) {
    tm_generation_free(&r->result);
    tm_signing_key_free(r->signer);
    free(r->chat_ids);
    free(r->chat_prompt);
    if (r->messages != r->pair) free(r->messages);
    json_decref(r->conversation);
    tm_sampler_chain_free(r->chain);
    tm_wm_scheme_free(r->scheme);
    tm_wm_key_free(r->key);
    tm_context_free(r->context);
    tm_tokenizer_free(r->tokenizer);
    tm_model_free(r->model);
    free(r->prompt_buffer);
}

/* --prompt-file: the whole file, which must be UTF-8 without NUL bytes. */
static tm_status read_prompt_file(const char *path, char **prompt, tm_error *err) {
    size_t size = 0;
    tm_status status = tm_read_file(path, prompt, &size, err);
    if (status != TM_OK) return status;
    if (strlen(*prompt) != size) return tm_error_set(err, TM_ERR_FORMAT, "%s: the prompt contains a NUL byte", path);
    if (!tm_utf8_valid(*prompt, size)) return tm_error_set(err, TM_ERR_FORMAT, "%s: the prompt is not valid UTF-8", path);
    return TM_OK;
}

static tm_status load_engine(run *r, const options *o, tm_error *err) {
    tm_status status;
    if ((status = tm_model_resolve(o->model, r->model_path, sizeof r->model_path, r->tokenizer_path,
                                   sizeof r->tokenizer_path, err)) ||
        (status = tm_model_load(&r->model, r->model_path, err)) ||
        (status = tm_model_tokenizer(&r->tokenizer, r->model, o->tokenizer ? o->tokenizer : r->tokenizer_path, err)))
        return status;
    return tm_context_create_kv(&r->context, r->model, (int32_t)o->ctx, (int32_t)o->threads, o->kv_type, err);
}

/* The sampler chain, with the watermark scheme as its bias stage (KGW,
 * Unigram) or its selecting stage (the distortion-free schemes). Returns
 * TM_EXIT_OK, or the exit code of the failure it has reported. */
static int build_chain(run *r, const options *o) {
    tm_error err = {0};
    if (!o->watermark) {
        r->chain = tm_sampler_chain_from_params(&o->sampling);
    } else {
        tm_wm_config config;
        if (tm_wm_config_load(&config, o->watermark, &err) || tm_wm_key_read(&r->key, o->key, &err) ||
            tm_wm_scheme_create(&r->scheme, &config, r->key, &err))
            return tm_cli_fail(&err);
        bool biases = tm_wm_scheme_stage(r->scheme) == TM_WM_STAGE_LOGITS;
        if (!biases && o->sampling.temperature <= 0)
            /* Greedy decoding leaves a selecting scheme nothing to choose: no mark. */
            return tm_cli_usage("generate", "%s selects among sampled tokens and cannot mark greedy output: use "
                                "--temperature > 0, or a KGW/Unigram scheme",
                                tm_wm_kind_name(config.kind));
        tm_sampler *stage = tm_wm_sampler(r->scheme, o->sampling.seed);
        r->chain = stage ? tm_sampler_chain_build(&o->sampling, biases ? stage : NULL, biases ? NULL : stage) : NULL;
    }
    if (!r->chain) {
        tm_error_set(&err, TM_ERR_NOMEM, "out of memory building the sampler chain");
        return tm_cli_fail(&err);
    }
    return TM_EXIT_OK;
}

/* --chat: the conversation in the model's format (built in, never a Jinja
 * run), tokenized with BOS as the vocabulary asks. */
static tm_status format_chat(run *r, const options *o, tm_error *err) {
    tm_status status;
    if (o->messages) {
        if ((status = load_messages(o->messages, &r->conversation, &r->messages, &r->n_messages, err))) return status;
    } else {
        r->messages = r->pair;
        if (o->system) r->messages[r->n_messages++] = (tm_chat_message){"system", o->system};
    }
    if (o->prompt) r->messages[r->n_messages++] = (tm_chat_message){"user", o->prompt};
    size_t formatted_size = 0, eos_size = 0;
    const char *eos_text = tm_tokenizer_piece(r->tokenizer, tm_tokenizer_eos(r->tokenizer), &eos_size);
    /* Messages are plain text unless --chat-special-tokens: control tokens
     * come from the template only, so no message can forge a turn. */
    tm_chat_encode_options chat_options = {.add_generation_prompt = true, .eos_text = eos_size ? eos_text : NULL,
                                           .add_bos = tm_tokenizer_adds_bos(r->tokenizer),
                                           .trust_message_special_tokens = o->chat_special_tokens};
    if ((status = tm_chat_template_for_model(r->model, o->chat_template, &r->chat_template, err))) return status;
    return tm_chat_encode(r->tokenizer, r->chat_template, r->messages, r->n_messages, &chat_options, &r->chat_prompt,
                          &formatted_size, &r->chat_ids, &r->n_chat_ids, err);
}

/* The record of a generation: ids, text, timings, sampling, and what a
 * detector needs (never the key). --json prints it; --sign signs from it. */
static json_t *generation_json(const run *r, const options *o, const char *prompt, const char *user_prompt) {
    const tm_generation *g = &r->result;
    double prompt_rate = g->prompt_seconds > 0 ? (double)g->n_prompt / g->prompt_seconds : 0;
    double decode_rate = g->decode_seconds > 0 && g->n_ids > 1 ? (double)(g->n_ids - 1) / g->decode_seconds : 0;
    json_t *root = json_pack("{s:s, s:s, s:I, s:o, s:o, s:s%, s:s, s:{s:f, s:f, s:f, s:f}}", "model", r->model_path,
                             "prompt", prompt, "seed", (json_int_t)o->sampling.seed, "prompt_ids",
                             ids_json(g->prompt_ids, g->n_prompt), "ids", ids_json(g->ids, g->n_ids), "text", g->text,
                             g->text_size, "stop_reason", g->stop_reason, "timing", "prompt_seconds",
                             g->prompt_seconds, "decode_seconds", g->decode_seconds, "prompt_tokens_per_second",
                             prompt_rate, "decode_tokens_per_second", decode_rate);
    if (root && r->scheme) json_object_set_new(root, "watermark", watermark_json(r->scheme));
    if (root && o->chat)
        json_object_set_new(root, "chat",
                            json_pack("{s:s, s:s?, s:s?, s:I}", "template", tm_chat_template_name(r->chat_template),
                                      "system", o->system, "user", user_prompt, "messages",
                                      (json_int_t)r->n_messages));
    const tm_sampling_params *s = &o->sampling;
    if (root)
        json_object_set_new(root, "sampling",
                            json_pack("{s:f, s:i, s:f, s:f, s:f, s:f, s:f, s:i}", "temperature", tm_float_shortest(s->temperature),
                                      "top_k", (int)s->top_k, "top_p", tm_float_shortest(s->top_p), "min_p", tm_float_shortest(s->min_p),
                                      "repeat_penalty", tm_float_shortest(s->repeat_penalty), "frequency_penalty",
                                      tm_float_shortest(s->frequency_penalty), "presence_penalty", tm_float_shortest(s->presence_penalty),
                                      "penalty_window", (int)s->penalty_window));
    /* The cache type moves the tokens, so a record that repeats them names it (F32 is the default). */
    if (root && o->kv_type == TM_KV_F16) json_object_set_new(json_object_get(root, "sampling"), "kv_cache", json_string("f16"));
    return root;
}

/* --output: the prompt and the generated text, written atomically; with
 * --sign, its manifest beside it or (--embed) inside it. */
static tm_status write_output(const run *r, const options *o, json_t *record, tm_error *err) {
    const tm_generation *g = &r->result;
    size_t prompt_size = strlen(o->prompt), size = prompt_size + g->text_size;
    char *all = malloc(size + 1), *manifest = NULL, *embedded = NULL, *record_text = NULL, *manifest_path = NULL;
    if (!all) return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    memcpy(all, o->prompt, prompt_size);
    memcpy(all + prompt_size, g->text, g->text_size);
    all[size] = '\0';
    tm_status status = TM_OK;
    size_t manifest_size = 0, embedded_size = 0;
    if (r->signer) {
        record_text = record ? json_dumps(record, JSON_COMPACT) : NULL;
        if (!record_text) status = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
        else status = tm_provenance_sign_generation(all, size, record_text, strlen(record_text), r->signer, &manifest,
                                                    &manifest_size, err);
    }
    if (status == TM_OK && o->embed) {
        status = tm_provenance_embed(all, size, manifest, manifest_size, &embedded, &embedded_size, err);
        if (status == TM_OK) status = tm_write_file_atomic(o->output, embedded, embedded_size, 0644, err);
    } else if (status == TM_OK) {
        status = tm_write_file_atomic(o->output, all, size, 0644, err);
        if (status == TM_OK && manifest) {
            size_t n = strlen(o->output) + sizeof ".manifest.json";
            manifest_path = malloc(n);
            if (!manifest_path) status = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
            else {
                snprintf(manifest_path, n, "%s.manifest.json", o->output);
                status = tm_write_file_atomic(manifest_path, manifest, manifest_size, 0644, err);
            }
        }
    }
    free(manifest_path);
    free(embedded);
    free(manifest);
    free(record_text);
    free(all);
    return status;
}

int tm_cmd_generate(int argc, char **argv) {
    options o = {.max_tokens = 256};
    tm_sampling_params_default(&o.sampling);
    int parsed = parse(argc, argv, &o);
    if (parsed != 0) return parsed > 0 ? TM_EXIT_OK : TM_EXIT_USAGE;
    /* A fixed default seed would give every watermarked run the same shift
     * (EXP-edit) and the same draws: each run gets its own unless asked. */
    if (!o.seed_given && RAND_bytes((unsigned char *)&o.sampling.seed, sizeof o.sampling.seed) != 1) {
        fprintf(stderr, "tracemark: error: OpenSSL's random generator failed\n");
        return TM_EXIT_FAILURE;
    }
    if (!o.seed_given) o.sampling.seed &= (UINT64_C(1) << 53) - 1; /* exact in any JSON reader */

    tm_error err = {0};
    run r = {.chat_template = TM_CHAT_CHATML};
    int exit_code = TM_EXIT_FAILURE;
    if (o.prompt_file) {
        if (read_prompt_file(o.prompt_file, &r.prompt_buffer, &err)) goto failed;
        o.prompt = r.prompt_buffer;
    }
    /* The signing key is read first, so that a bad key fails before any work. */
    if (o.sign && tm_signing_key_read(&r.signer, o.sign, &err)) goto failed;
    if (load_engine(&r, &o, &err)) goto failed;
    if ((exit_code = build_chain(&r, &o)) != TM_EXIT_OK) goto done;
    exit_code = TM_EXIT_FAILURE;
    const char *user_prompt = o.prompt;
    if (o.chat) {
        if (format_chat(&r, &o, &err)) goto failed;
        o.prompt = r.chat_prompt;
    }
    stream echo = {.prompt = o.prompt};
    tm_generate_options go = {.max_tokens = (int32_t)o.max_tokens, .stop_strings = o.stops,
                              .n_stop_strings = o.n_stops, .on_text = o.json ? NULL : stream_text, .user = &echo};
    tm_status generated = o.chat ? tm_generate_from_ids(r.context, r.tokenizer, r.chain, r.chat_ids, r.n_chat_ids,
                                                        &go, &r.result, &err)
                                 : tm_generate(r.context, r.tokenizer, r.chain, o.prompt, &go, &r.result, &err);
    if (generated != TM_OK) {
        if (echo.prompt_printed) fputc('\n', stdout);
        goto failed;
    }
    json_t *record = o.json || o.sign ? generation_json(&r, &o, o.prompt, user_prompt) : NULL;
    if (o.output && write_output(&r, &o, record, &err)) {
        json_decref(record);
        goto failed;
    }
    if (o.json) {
        exit_code = tm_cli_print_json(record);
    } else {
        json_decref(record);
        print_prompt_once(&echo);
        /* A terminal gets a final newline; a pipe gets the text exactly as generated. */
        if (isatty(STDOUT_FILENO)) fputc('\n', stdout);
        fflush(stdout);
        exit_code = TM_EXIT_OK;
    }
    goto done;
failed:
    exit_code = tm_cli_fail(&err);
done:
    run_free(&r);
    return exit_code;
}
