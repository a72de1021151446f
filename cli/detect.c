/* tracemark detect: was this text generated with this key? Loads the scheme
 * settings, one or more keys and a tokenizer (never a model's weights), and
 * prints a verdict for one text, or, with --jsonl, one verdict line per
 * input line, processed in parallel and written in input order. */
#include "cli.h"

#include "tracemark/detect.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char help[] =
    "usage: tracemark detect --key KEY --watermark CONFIG --tokenizer T [options] [FILE|-]\n"
    "       tracemark detect --zero-shot METHOD --model M [options] [FILE|-]   (no watermark: see --zero-shot --help)\n"
    "\n"
    "Test a text (FILE, or stdin) for a watermark made with KEY and the scheme CONFIG.\n"
    "Needs only the tokenizer: a model GGUF, a vocab-only GGUF, or a llama2.c tokenizer.bin.\n"
    "\n"
    "options:\n"
    "  --key PATH          key file, or a folder of key files; repeat for several keys (the best\n"
    "                      key is reported with a family-wise corrected p-value)\n"
    "  --watermark CONFIG  scheme settings (YAML, configs/schemes/)\n"
    "  --tokenizer PATH    tokenizer (default: the default model's tokenizer where it is already on\n"
    "                      disk: $TRACEMARK_MODEL, ./models/ or ../shared/models/; never downloaded)\n"
    "  --prompt-file PATH  the prompt the text continues: its tokens give context, never scores\n"
    "  --fpr X             false-positive rate of the decision (default 0.001)\n"
    "  --window            also find the best window (text pasted into other text)\n"
    "  --min-window N      smallest window in scored tokens (default 25)\n"
    "  --keep-repeated     score repeated (context, token) pairs every time (their values repeat,\n"
    "                      so p-values are then too small: for comparisons only)\n"
    "  --no-nfc, --no-homoglyphs, --no-whitespace   switch off a normalisation step\n"
    "  --permutations N    EXP-edit permutation test size (default: the fewest that can detect at\n"
    "                      --fpr with the keys given, at least 999; N with K/(N+1) > fpr is refused)\n"
    "  --full-permutations EXP-edit: run every permutation (default: stop once the decision is\n"
    "                      settled, Besag-Clifford; a detected text always runs them all)\n"
    "  --jsonl             input is JSON lines {\"id\", \"text\", \"prompt\"?}; output one verdict per line\n"
    "  --threads N         threads for --jsonl (default: all cores)\n"
    "  --max-input-bytes N largest text (FILE, stdin or --prompt-file) read (default 16777216 = 16 MiB;\n"
    "                      detection takes about 15x the text's size in memory)\n"
    "  --max-line-bytes N  with --jsonl: largest line; a longer one gets an error record (default 1048576)\n"
        "  --json              one JSON object instead of text (not with --jsonl)\n"
    "  --                  end of options: a FILE named after it may start with '-'\n"
    "  -h, --help          this help\n"
    "\n"
    "Exit status: 0 watermark detected (for --jsonl: every line processed), 3 not detected,\n"
    "1 failure (for --jsonl: some line failed), 2 usage error.\n";

enum { TM_EXIT_NOT_DETECTED = 3, MAX_KEYS = 4096 };
/* Default input limits (docs/limits.md): detection holds ~15x its text. */
#define DEFAULT_MAX_LINE_BYTES (1L << 20)

typedef struct {
    const char *key_paths[64];
    size_t n_key_paths;
    const char *watermark, *tokenizer, *prompt_file, *input;
    bool json, jsonl;
    long threads;
    long max_input_bytes, max_line_bytes;
    tm_detect_options detect;
} options;

static int parse(int argc, char **argv, options *o) {
    enum { KEY = 256, WATERMARK, TOKENIZER, PROMPT_FILE, FPR, WINDOW, MIN_WINDOW, KEEP_REPEATED, NO_NFC,
           NO_HOMOGLYPHS, NO_WHITESPACE, PERMUTATIONS, JSONL, THREADS, JSON, FULL_PERMUTATIONS, MAX_INPUT_BYTES,
           MAX_LINE_BYTES };
    static const struct option flags[] = {
        {"key", required_argument, 0, KEY}, {"watermark", required_argument, 0, WATERMARK},
        {"tokenizer", required_argument, 0, TOKENIZER}, {"prompt-file", required_argument, 0, PROMPT_FILE},
        {"fpr", required_argument, 0, FPR}, {"window", no_argument, 0, WINDOW},
        {"min-window", required_argument, 0, MIN_WINDOW}, {"keep-repeated", no_argument, 0, KEEP_REPEATED},
        {"no-nfc", no_argument, 0, NO_NFC}, {"no-homoglyphs", no_argument, 0, NO_HOMOGLYPHS},
        {"no-whitespace", no_argument, 0, NO_WHITESPACE}, {"permutations", required_argument, 0, PERMUTATIONS},
        {"jsonl", no_argument, 0, JSONL}, {"threads", required_argument, 0, THREADS},
        {"json", no_argument, 0, JSON}, {"full-permutations", no_argument, 0, FULL_PERMUTATIONS},
        {"max-input-bytes", required_argument, 0, MAX_INPUT_BYTES}, {"max-line-bytes", required_argument, 0, MAX_LINE_BYTES},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *cmd = "detect";
    double value;
    long integer;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", flags, NULL)) != -1) {
        switch (c) {
        case KEY:
            if (o->n_key_paths == sizeof o->key_paths / sizeof o->key_paths[0]) { tm_cli_usage(cmd, "at most 64 --key options"); return -1; }
            o->key_paths[o->n_key_paths++] = optarg;
            break;
        case WATERMARK: o->watermark = optarg; break;
        case TOKENIZER: o->tokenizer = optarg; break;
        case PROMPT_FILE: o->prompt_file = optarg; break;
        case FPR: if (!tm_cli_parse_float(cmd, "--fpr", optarg, 1e-300, 0.5, &value)) return -1; o->detect.fpr = value; break;
        case WINDOW: o->detect.windows = true; break;
        case MIN_WINDOW: if (!tm_cli_parse_int(cmd, "--min-window", optarg, 1, 1 << 24, &integer)) return -1; o->detect.min_window = (int32_t)integer; break;
        case KEEP_REPEATED: o->detect.ignore_repeated = false; break;
        case NO_NFC: o->detect.normalize.nfc = false; break;
        case NO_HOMOGLYPHS: o->detect.normalize.fold_homoglyphs = false; break;
        case NO_WHITESPACE: o->detect.normalize.normalize_whitespace = false; break;
        case PERMUTATIONS: if (!tm_cli_parse_int(cmd, "--permutations", optarg, 1, 1000000, &integer)) return -1; o->detect.permutations = (int32_t)integer; break;
        case JSONL: o->jsonl = true; break;
        case THREADS: if (!tm_cli_parse_int(cmd, "--threads", optarg, 1, 1024, &o->threads)) return -1; break;
        case JSON: o->json = true; break;
        case FULL_PERMUTATIONS: o->detect.sequential = false; break;
        case MAX_INPUT_BYTES: if (!tm_cli_parse_int(cmd, "--max-input-bytes", optarg, 1, 1L << 40, &o->max_input_bytes)) return -1; break;
        case MAX_LINE_BYTES: if (!tm_cli_parse_int(cmd, "--max-line-bytes", optarg, 1, 1L << 40, &o->max_line_bytes)) return -1; break;
        case 'h': fputs(help, stdout); return 1;
        default: tm_cli_usage(cmd, "unknown or incomplete option '%s'", argv[optind - 1]); return -1;
        }
    }
    if (optind < argc) o->input = argv[optind++];
    if (optind < argc) { tm_cli_usage(cmd, "unexpected argument '%s'", argv[optind]); return -1; }
    if (!o->n_key_paths) { tm_cli_usage(cmd, "--key is required"); return -1; }
    if (!o->watermark) { tm_cli_usage(cmd, "--watermark is required"); return -1; }
    if (o->jsonl && o->json) { tm_cli_usage(cmd, "--json and --jsonl exclude each other (--jsonl already writes JSON, one verdict a line)"); return -1; }
    if (o->jsonl && o->prompt_file) { tm_cli_usage(cmd, "with --jsonl, prompts come from each line's \"prompt\""); return -1; }
    return 0;
}

/* Keys from files and folders (every regular file in a folder, sorted by name). */
static tm_status load_keys(const options *o, tm_wm_key ***keys, size_t *n, tm_error *err) {
    *keys = tm_alloc_array(MAX_KEYS, sizeof **keys, err);
    *n = 0;
    if (!*keys) return TM_ERR_NOMEM;
    for (size_t p = 0; p < o->n_key_paths; p++) {
        const char *path = o->key_paths[p];
        DIR *dir = opendir(path);
        if (!dir) {
            if (errno != ENOTDIR && errno != ENOENT)
                return tm_error_set(err, TM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
            if (*n == MAX_KEYS) return tm_error_set(err, TM_ERR_LIMIT, "more than %d keys", MAX_KEYS);
            tm_status status = tm_wm_key_read(&(*keys)[*n], path, err);
            if (status != TM_OK) return status;
            (*n)++;
            continue;
        }
        struct dirent **entries = NULL;
        closedir(dir);
        size_t before = *n;
        int count = scandir(path, &entries, NULL, alphasort);
        if (count < 0) return tm_error_set(err, TM_ERR_IO, "%s: cannot list: %s", path, strerror(errno));
        tm_status status = TM_OK;
        for (int i = 0; i < count; i++) {
            char file[4096];
            if (status == TM_OK && entries[i]->d_name[0] != '.' &&
                snprintf(file, sizeof file, "%s/%s", path, entries[i]->d_name) < (int)sizeof file && tm_file_exists(file)) {
                if (*n == MAX_KEYS) status = tm_error_set(err, TM_ERR_LIMIT, "more than %d keys", MAX_KEYS);
                else if ((status = tm_wm_key_read(&(*keys)[*n], file, err)) == TM_OK) (*n)++;
            }
            free(entries[i]);
        }
        free(entries);
        if (status != TM_OK) return status;
        if (*n == before) return tm_error_set(err, TM_ERR_NOT_FOUND, "%s: no key files in this folder", path);
    }
    return TM_OK;
}

static void print_text_verdict(const tm_detection *d, const tm_detect_options *o, const char *tokenizer_file,
                               int32_t vocab, bool tokenizer_defaulted) {
    double p = tm_stat_p_from_log(d->n_keys > 1 ? d->log_p_family : d->log_p_decision);
    printf("verdict:        %s (p = %.3g %s fpr %g)\n", d->detected ? "WATERMARKED" : "not watermarked", p,
           d->detected ? "<=" : ">", o->fpr);
    printf("scheme:         %s (%s)\n", tm_wm_kind_name(d->kind), d->parameters);
    printf("key id:         %s", d->key_id);
    if (d->n_keys > 1) printf(" (best of %zu keys; family-wise p = %.3g)", d->n_keys, tm_stat_p_from_log(d->log_p_family));
    printf("\ntokens:         %zu (scored %zu; ignored: %zu without full context, %zu repeated; prompt %zu)\n",
           d->n_tokens, d->n_scored, d->n_ignored_context, d->n_ignored_repeated, d->n_prompt);
    printf("statistic:      %s = %.6g (expected %.6g without a watermark)\n", d->statistic_name, d->statistic,
           d->expected);
    if (isfinite(d->z)) printf("z:              %.3f\n", d->z);
    printf("p-value:        %.3g", d->p);
    if (d->p_resolution > 0)
        printf(" (permutation test, resolution %.3g%s%s)", d->p_resolution, d->p_at_floor ? ", at its floor" : "",
               d->p_sequential ? ", stopped early once not detected was settled" : "");
    else printf(" (exact)");
    if (isfinite(d->p_normal)) printf("; normal approximation %.3g", d->p_normal);
    printf("\n");
    if (isfinite(d->weighted_score))
    {
        printf("weighted mean:  %.4f (p = %.3g", d->weighted_score, tm_stat_p_from_log(d->weighted_log_p));
        if (d->n_keys > 1) printf("; family-wise p = %.3g", tm_stat_p_from_log(d->weighted_log_p_family));
        printf(")\n");
    }
    if (d->has_window)
        printf("best window:    tokens %zu-%zu, characters %zu-%zu, p = %.3g (%.3g corrected over %llu windows)\n",
               d->window.start_token, d->window.end_token, d->window.start_char, d->window.end_char,
               tm_stat_p_from_log(d->window.log_p), tm_stat_p_from_log(d->window.log_p_corrected),
               (unsigned long long)d->window.n_windows);
    printf("normalization:  %s\n", d->normalization);
    /* The verdict holds only for text from a model of this vocabulary: name
     * it, above all where it was not asked for. */
    printf("tokenizer:      %s (%d tokens%s)\n", tokenizer_file, (int)vocab,
           tokenizer_defaulted ? "; the default model's, no --tokenizer given" : "");
}

/* ---- batch ------------------------------------------------------------------ */

typedef struct {
    char *line;
    size_t number;
    char *output; /* the JSON line to print */
    bool failed;
} batch_item;

static char *error_record(json_t *id, size_t line, const char *message) {
    json_t *record = json_pack("{s:O?, s:I, s:s}", "id", id, "line", (json_int_t)line, "error", message);
    char *text = record ? json_dumps(record, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(record);
    return text;
}

static void process_line(const tm_detector *detector, const tm_detect_options *o, batch_item *item) {
    json_error_t jerr;
    json_t *input = json_loads(item->line, JSON_REJECT_DUPLICATES, &jerr);
    json_t *id = input ? json_object_get(input, "id") : NULL;
    const char *text = NULL, *prompt = NULL;
    size_t text_size = 0;
    char message[TM_ERROR_MESSAGE_MAX];
    message[0] = '\0';
    if (!input) snprintf(message, sizeof message, "invalid JSON: %s", jerr.text);
    else if (!json_is_object(input)) snprintf(message, sizeof message, "expected an object {\"id\", \"text\", \"prompt\"?}");
    else if (!json_is_string(json_object_get(input, "text"))) snprintf(message, sizeof message, "\"text\" must be a string");
    else if (json_object_get(input, "prompt") && !json_is_string(json_object_get(input, "prompt")))
        snprintf(message, sizeof message, "\"prompt\" must be a string");
    if (!message[0]) {
        text = json_string_value(json_object_get(input, "text"));
        text_size = json_string_length(json_object_get(input, "text"));
        prompt = json_object_get(input, "prompt") ? json_string_value(json_object_get(input, "prompt")) : NULL;
        tm_detection d;
        tm_error err = {0};
        if (tm_detect_text(detector, text, text_size, prompt, &d, &err) != TM_OK) {
            snprintf(message, sizeof message, "%s", err.message);
        } else {
            json_t *verdict = tm_detection_json(&d, o->fpr);
            if (verdict) {
                if (id) json_object_set(verdict, "id", id);
                item->output = json_dumps(verdict, JSON_COMPACT | JSON_ENSURE_ASCII);
                json_decref(verdict);
            }
            if (!item->output) snprintf(message, sizeof message, "out of memory");
        }
    }
    if (message[0]) {
        item->failed = true;
        item->output = error_record(json_is_object(input) ? id : NULL, item->number, message);
    }
    json_decref(input);
}

enum { BATCH_LINES = 512 };

/* getline with a ceiling: reads one line of at most max bytes (newline
 * excluded) into *line; a longer line is read to its end and dropped, with
 * *too_long set. Returns the line's length, or -1 at end of input. */
static ssize_t read_line_bounded(FILE *in, char **line, size_t *capacity, size_t max, bool *too_long) {
    size_t used = 0;
    bool any = false;
    *too_long = false;
    int c;
    while ((c = getc_unlocked(in)) != EOF) { /* only this thread reads in */
        any = true;
        if (c == '\n') break;
        if (*too_long) continue;
        if (used == max) {
            *too_long = true;
            continue;
        }
        if (used + 2 > *capacity) {
            size_t bigger = *capacity ? 2 * *capacity : 4096;
            if (bigger > max + 2) bigger = max + 2;
            char *grown = realloc(*line, bigger);
            if (!grown) {
                *too_long = true; /* reported as a failed line, never a crash */
                continue;
            }
            *line = grown;
            *capacity = bigger;
        }
        (*line)[used++] = (char)c;
    }
    if (!any) return -1;
    if (*line) (*line)[used] = '\0';
    else if (!*too_long) {
        *line = malloc(1);
        if (!*line) *too_long = true;
        else (*line)[0] = '\0', *capacity = 1;
    }
    return (ssize_t)used;
}

static int run_batch(const tm_detector *detector, const options *o, FILE *in) {
    batch_item *items = calloc(BATCH_LINES, sizeof *items);
    if (!items) return TM_EXIT_FAILURE;
    bool any_failed = false, eof = false;
    size_t line_number = 0;
    char *line = NULL;
    size_t capacity = 0;
    while (!eof) {
        size_t n = 0;
        while (n < BATCH_LINES) {
            bool too_long;
            ssize_t got = read_line_bounded(in, &line, &capacity, (size_t)o->max_line_bytes, &too_long);
            if (got < 0) { eof = true; break; }
            line_number++;
            if (too_long) {
                char message[128];
                snprintf(message, sizeof message, "line longer than the limit of %ld bytes (--max-line-bytes)",
                         o->max_line_bytes);
                items[n] = (batch_item){.line = NULL, .number = line_number, .failed = true,
                                        .output = error_record(NULL, line_number, message)};
                n++;
                continue;
            }
            while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = '\0';
            if (got == 0) continue; /* blank lines carry no record */
            items[n].line = strdup(line);
            items[n].number = line_number;
            items[n].output = NULL;
            items[n].failed = false;
            n++;
        }
#pragma omp parallel for schedule(dynamic, 1) num_threads(o->threads > 0 ? (int)o->threads : omp_get_num_procs())
        for (size_t i = 0; i < n; i++) {
            if (items[i].line) process_line(detector, &o->detect, &items[i]);
            else items[i].failed = true; /* too long, or out of memory copying it */
        }
        for (size_t i = 0; i < n; i++) {
            if (items[i].output) puts(items[i].output);
            else printf("{\"line\":%zu,\"error\":\"out of memory\"}\n", items[i].number);
            any_failed |= items[i].failed;
            free(items[i].output);
            free(items[i].line);
        }
        fflush(stdout);
    }
    free(line);
    free(items);
    return any_failed ? TM_EXIT_FAILURE : TM_EXIT_OK;
}

/* What only the loaded scheme and key count can refuse, as usage errors. */
static bool check_combination(const options *o, const tm_wm_config *config, size_t n_keys) {
    if (config->kind != TM_WM_EXP_EDIT) return true;
    if (o->detect.windows) {
        tm_cli_usage("detect", "--window is not available for EXP-edit/ITS-edit (%s): its statistic aligns the whole "
                               "text with the key sequence, it is not a sum over tokens",
                     o->watermark);
        return false;
    }
    int32_t needed = tm_detect_permutations_needed(o->detect.fpr, n_keys);
    if (needed == 0) {
        tm_cli_usage("detect", "--fpr %g with %zu keys would need more than 1000000 permutations", o->detect.fpr, n_keys);
        return false;
    }
    if (o->detect.permutations > 0 && o->detect.permutations < needed) {
        tm_cli_usage("detect",
                     "--permutations %d can never detect at --fpr %g with %zu key%s (the smallest p is %zu/(N+1)); "
                     "the smallest N that can is %d",
                     o->detect.permutations, o->detect.fpr, n_keys, n_keys == 1 ? "" : "s", n_keys, needed);
        return false;
    }
    return true;
}

int tm_cmd_detect(int argc, char **argv) {
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) /* detectors without a watermark: cli/detect_zeroshot.c */
        if (!strcmp(argv[i], "--zero-shot") || !strncmp(argv[i], "--zero-shot=", 12))
            return tm_cmd_detect_zeroshot(argc, argv);
    options o = {.max_input_bytes = (long)TM_CLI_MAX_TEXT_BYTES, .max_line_bytes = DEFAULT_MAX_LINE_BYTES};
    tm_detect_options_default(&o.detect);
    int parsed = parse(argc, argv, &o);
    if (parsed != 0) return parsed > 0 ? TM_EXIT_OK : TM_EXIT_USAGE;

    tm_error err = {0};
    tm_wm_config config;
    tm_wm_key **keys = NULL;
    size_t n_keys = 0;
    tm_tokenizer *tokenizer = NULL;
    tm_detector *detector = NULL;
    char *text = NULL, *prompt = NULL;
    size_t text_size = 0, prompt_size = 0;
    int exit_code = TM_EXIT_FAILURE;
    char tokenizer_path[4096];
    const char *tokenizer_file = o.tokenizer;
    if (tm_wm_config_load(&config, o.watermark, &err) || load_keys(&o, &keys, &n_keys, &err)) goto failed;
    if (!check_combination(&o, &config, n_keys)) {
        exit_code = TM_EXIT_USAGE;
        goto done;
    }
    if (!tokenizer_file) {
        if (tm_cli_local_tokenizer(tokenizer_path, sizeof tokenizer_path, &err)) goto failed;
        tokenizer_file = tokenizer_path;
    }
    if (tm_tokenizer_load(&tokenizer, tokenizer_file, &err) ||
        tm_detector_create(&detector, tokenizer, &config, (const tm_wm_key *const *)keys, n_keys, &o.detect, &err))
        goto failed;
    /* A text from another model, tokenized with the default model's
     * vocabulary, scores like unwatermarked text: say which tokenizer was
     * taken, since nothing in the verdict would show the mistake. */
    if (!o.tokenizer) tm_cli_note_default_tokenizer("detect", tokenizer_file, tm_tokenizer_vocab_size(tokenizer));
    bool from_stdin = !o.input || strcmp(o.input, "-") == 0;
    if (o.jsonl) { /* streamed in batches: only --max-line-bytes bounds it */
        FILE *in = stdin;
        int fd = -1;
        if (!from_stdin && (tm_input_open(o.input, 0, &fd, NULL, &err) || !(in = fdopen(fd, "rb")))) {
            if (fd >= 0) { /* fdopen failed */
                tm_error_set(&err, TM_ERR_IO, "%s: cannot open: %s", o.input, strerror(errno));
                close(fd);
            }
            goto failed;
        }
        exit_code = run_batch(detector, &o, in);
        if (in != stdin) fclose(in);
        goto done;
    }
    /* The text is held whole (detection needs all of it): bounded by
     * --max-input-bytes, read from a regular file or stdin. */
    tm_status read = tm_cli_read_input(from_stdin ? NULL : o.input, (size_t)o.max_input_bytes, &text, &text_size, &err);
    if (read == TM_OK && o.prompt_file)
        read = tm_read_file_limited(o.prompt_file, (size_t)o.max_input_bytes, &prompt, &prompt_size, &err);
    if (read == TM_ERR_LIMIT) {
        size_t n = strlen(err.message);
        snprintf(err.message + n, sizeof err.message - n, " (--max-input-bytes)");
    }
    if (read != TM_OK) goto failed;
    tm_detection d;
    if (tm_detect_text(detector, text, text_size, prompt, &d, &err) != TM_OK) {
        tm_error_prefix(&err, "%s", o.input ? o.input : "stdin");
        goto failed;
    }
    if (o.json) {
        if (tm_cli_print_json(tm_detection_json(&d, o.detect.fpr)) != TM_EXIT_OK) goto done;
    } else {
        print_text_verdict(&d, &o.detect, tokenizer_file, tm_tokenizer_vocab_size(tokenizer), !o.tokenizer);
    }
    exit_code = d.detected ? TM_EXIT_OK : TM_EXIT_NOT_DETECTED;
    goto done;
failed:
    tm_cli_fail(&err);
done:
    tm_detector_free(detector);
    tm_tokenizer_free(tokenizer);
    for (size_t i = 0; keys && i < n_keys; i++) tm_wm_key_free(keys[i]);
    free(keys);
    free(text);
    free(prompt);
    return exit_code;
}
