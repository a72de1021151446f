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
    "  --watermark CONFIG    generate through a watermark scheme (YAML, see configs/schemes/)\n"
    "  --key FILE            the watermark key (tracemark keygen; mode 0600)\n"
    "  --json                print one JSON object: ids, text, timings, watermark scheme and key id\n"
    "                        (with --chat, \"prompt\" is the formatted prompt)\n"
    "  --output FILE         also write the prompt and generated text to FILE (atomically)\n"
    "  -h, --help            this help\n"
    "\n"
    "Exit status: 0 success, 1 failure (bad model, tokenizer or prompt), 2 usage error.\n";

typedef struct {
    const char *model, *tokenizer, *prompt, *prompt_file, *watermark, *key, *output, *system, *chat_template;
    const char *messages;
    const char *stops[16];
    size_t n_stops;
    long max_tokens, ctx, threads;
    bool json, seed_given, chat, chat_special_tokens;
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
           CHAT_TEMPLATE, MESSAGES, CHAT_SPECIAL_TOKENS };
    static const struct option flags[] = {
        {"model", required_argument, 0, MODEL}, {"tokenizer", required_argument, 0, TOKENIZER},
        {"prompt", required_argument, 0, PROMPT}, {"prompt-file", required_argument, 0, PROMPT_FILE},
        {"max-tokens", required_argument, 0, MAX_TOKENS}, {"temperature", required_argument, 0, TEMPERATURE},
        {"top-k", required_argument, 0, TOP_K}, {"top-p", required_argument, 0, TOP_P},
        {"min-p", required_argument, 0, MIN_P}, {"repeat-penalty", required_argument, 0, REPEAT},
        {"frequency-penalty", required_argument, 0, FREQUENCY}, {"presence-penalty", required_argument, 0, PRESENCE},
        {"penalty-window", required_argument, 0, WINDOW}, {"seed", required_argument, 0, SEED},
        {"stop", required_argument, 0, STOP}, {"ctx", required_argument, 0, CTX},
        {"threads", required_argument, 0, THREADS}, {"json", no_argument, 0, JSON},
        {"watermark", required_argument, 0, WATERMARK}, {"key", required_argument, 0, KEY},
        {"output", required_argument, 0, OUTPUT}, {"chat", no_argument, 0, CHAT},
        {"system", required_argument, 0, SYSTEM}, {"chat-template", required_argument, 0, CHAT_TEMPLATE},
        {"messages", required_argument, 0, MESSAGES}, {"chat-special-tokens", no_argument, 0, CHAT_SPECIAL_TOKENS},
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
        case JSON: o->json = true; break;
        case WATERMARK: o->watermark = optarg; break;
        case KEY: o->key = optarg; break;
        case OUTPUT: o->output = optarg; break;
        case CHAT: o->chat = true; break;
        case SYSTEM: o->system = optarg; break;
        case MESSAGES: o->messages = optarg; o->chat = true; break;
        case CHAT_TEMPLATE: o->chat_template = optarg; break;
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
    char *prompt_buffer = NULL;
    size_t prompt_size = 0;
    if (o.prompt_file) {
        if (tm_read_file(o.prompt_file, &prompt_buffer, &prompt_size, &err) != TM_OK) return tm_cli_fail(&err);
        if (strlen(prompt_buffer) != prompt_size) {
            free(prompt_buffer);
            tm_error_set(&err, TM_ERR_FORMAT, "%s: the prompt contains a NUL byte", o.prompt_file);
            return tm_cli_fail(&err);
        }
        if (!tm_utf8_valid(prompt_buffer, prompt_size)) {
            free(prompt_buffer);
            tm_error_set(&err, TM_ERR_FORMAT, "%s: the prompt is not valid UTF-8", o.prompt_file);
            return tm_cli_fail(&err);
        }
        o.prompt = prompt_buffer;
    }
    char model_path[4096], tokenizer_path[4096];
    tm_model *model = NULL;
    tm_tokenizer *tokenizer = NULL;
    tm_context *context = NULL;
    tm_sampler_chain *chain = NULL;
    tm_wm_key *key = NULL;
    tm_wm_scheme *scheme = NULL;
    tm_generation result = {0};
    char *chat_prompt = NULL;
    int32_t *chat_ids = NULL;
    size_t n_chat_ids = 0;
    tm_chat_template chat_template = TM_CHAT_CHATML;
    json_t *conversation = NULL;
    tm_chat_message *messages = NULL, pair[2];
    size_t n_messages = 0;
    int exit_code = TM_EXIT_FAILURE;
    if (tm_model_resolve(o.model, model_path, sizeof model_path, tokenizer_path, sizeof tokenizer_path, &err) ||
        tm_model_load(&model, model_path, &err) ||
        tm_model_tokenizer(&tokenizer, model, o.tokenizer ? o.tokenizer : tokenizer_path, &err) ||
        tm_context_create(&context, model, (int32_t)o.ctx, (int32_t)o.threads, &err)) {
        tm_cli_fail(&err);
        goto done;
    }
    if (o.watermark) {
        tm_wm_config config;
        if (tm_wm_config_load(&config, o.watermark, &err) || tm_wm_key_read(&key, o.key, &err) ||
            tm_wm_scheme_create(&scheme, &config, key, &err)) {
            tm_cli_fail(&err);
            goto done;
        }
        bool biases = tm_wm_scheme_stage(scheme) == TM_WM_STAGE_LOGITS;
        if (!biases && o.sampling.temperature <= 0) {
            /* Greedy decoding leaves a selecting scheme nothing to choose: no mark. */
            exit_code = tm_cli_usage("generate", "%s selects among sampled tokens and cannot mark greedy output: use "
                                     "--temperature > 0, or a KGW/Unigram scheme",
                                     tm_wm_kind_name(config.kind));
            goto done;
        }
        tm_sampler *stage = tm_wm_sampler(scheme, o.sampling.seed);
        chain = stage ? tm_sampler_chain_build(&o.sampling, biases ? stage : NULL, biases ? NULL : stage) : NULL;
    } else {
        chain = tm_sampler_chain_from_params(&o.sampling);
    }
    if (!chain) {
        tm_error_set(&err, TM_ERR_NOMEM, "out of memory building the sampler chain");
        tm_cli_fail(&err);
        goto done;
    }
    const char *user_prompt = o.prompt;
    if (o.chat) {
        /* llama.cpp's way: format, then tokenize the whole text with special
         * tokens parsed and BOS as the vocabulary asks. */
        size_t formatted_size = 0, eos_size = 0;
        if (o.messages) {
            if (load_messages(o.messages, &conversation, &messages, &n_messages, &err)) {
                tm_cli_fail(&err);
                goto done;
            }
        } else {
            messages = pair;
            if (o.system) messages[n_messages++] = (tm_chat_message){"system", o.system};
        }
        if (o.prompt) messages[n_messages++] = (tm_chat_message){"user", o.prompt};
        const char *eos_text = tm_tokenizer_piece(tokenizer, tm_tokenizer_eos(tokenizer), &eos_size);
        /* Messages are plain text unless --chat-special-tokens (tm_chat_encode). */
        tm_chat_encode_options chat_options = {.add_generation_prompt = true, .eos_text = eos_size ? eos_text : NULL,
                                               .add_bos = tm_tokenizer_adds_bos(tokenizer),
                                               .trust_message_special_tokens = o.chat_special_tokens};
        if (tm_chat_template_for_model(model, o.chat_template, &chat_template, &err) ||
            tm_chat_encode(tokenizer, chat_template, messages, n_messages, &chat_options, &chat_prompt, &formatted_size,
                           &chat_ids, &n_chat_ids, &err)) {
            tm_cli_fail(&err);
            goto done;
        }
        o.prompt = chat_prompt;
    }
    stream echo = {.prompt = o.prompt};
    tm_generate_options go = {.max_tokens = (int32_t)o.max_tokens, .stop_strings = o.stops,
                              .n_stop_strings = o.n_stops, .on_text = o.json ? NULL : stream_text, .user = &echo};
    tm_status generated = o.chat ? tm_generate_from_ids(context, tokenizer, chain, chat_ids, n_chat_ids, &go, &result, &err)
                                 : tm_generate(context, tokenizer, chain, o.prompt, &go, &result, &err);
    if (generated != TM_OK) {
        if (echo.prompt_printed) fputc('\n', stdout);
        tm_cli_fail(&err);
        goto done;
    }
    if (o.output) {
        size_t prompt_size = strlen(o.prompt), size = prompt_size + result.text_size;
        char *all = malloc(size + 1);
        if (!all) {
            tm_error_set(&err, TM_ERR_NOMEM, "out of memory");
            tm_cli_fail(&err);
            goto done;
        }
        memcpy(all, o.prompt, prompt_size);
        memcpy(all + prompt_size, result.text, result.text_size);
        tm_status written = tm_write_file_atomic(o.output, all, size, 0644, &err);
        free(all);
        if (written != TM_OK) {
            tm_cli_fail(&err);
            goto done;
        }
    }
    if (o.json) {
        double prompt_rate = result.prompt_seconds > 0 ? (double)result.n_prompt / result.prompt_seconds : 0;
        double decode_rate = result.decode_seconds > 0 && result.n_ids > 1 ? (double)(result.n_ids - 1) / result.decode_seconds : 0;
        json_t *root = json_pack("{s:s, s:s, s:I, s:o, s:o, s:s%, s:s, s:{s:f, s:f, s:f, s:f}}",
                                 "model", model_path, "prompt", o.prompt, "seed", (json_int_t)o.sampling.seed,
                                 "prompt_ids", ids_json(result.prompt_ids, result.n_prompt),
                                 "ids", ids_json(result.ids, result.n_ids), "text", result.text, result.text_size,
                                 "stop_reason", result.stop_reason, "timing", "prompt_seconds", result.prompt_seconds,
                                 "decode_seconds", result.decode_seconds, "prompt_tokens_per_second", prompt_rate,
                                 "decode_tokens_per_second", decode_rate);
        if (root && scheme) json_object_set_new(root, "watermark", watermark_json(scheme));
        if (root && o.chat)
            json_object_set_new(root, "chat",
                                json_pack("{s:s, s:s?, s:s?, s:I}", "template", tm_chat_template_name(chat_template),
                                          "system", o.system, "user", user_prompt, "messages",
                                          (json_int_t)n_messages));
        exit_code = tm_cli_print_json(root);
    } else {
        print_prompt_once(&echo);
        /* A terminal gets a final newline; a pipe gets the text exactly as generated. */
        if (isatty(STDOUT_FILENO)) fputc('\n', stdout);
        fflush(stdout);
        exit_code = TM_EXIT_OK;
    }
done:
    tm_generation_free(&result);
    free(chat_ids);
    free(chat_prompt);
    if (messages != pair) free(messages);
    json_decref(conversation);
    tm_sampler_chain_free(chain);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
    tm_context_free(context);
    tm_tokenizer_free(tokenizer);
    tm_model_free(model);
    free(prompt_buffer);
    return exit_code;
}
