/* tracemark detect --zero-shot: did any model write this text? Loads the
 * scoring model (and a reference or performer model where the method needs
 * one), scores a text or, with --jsonl, one text per input line, and prints
 * each score with a decision only where a threshold was given or calibrated
 * on human text. It must never present an uncalibrated score as a verdict
 * or a p-value. */
#include "cli.h"

#include "tracemark/zeroshot.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char help[] =
    "usage: tracemark detect --zero-shot METHOD [--model M] [options] [FILE|-]\n"
    "\n"
    "Score a text (FILE, or stdin) for having been written by a language model, without a\n"
    "watermark, from the model's own next-token distributions (docs/zero-shot.md).\n"
    "\n"
    "METHOD: likelihood, log-rank, entropy   one model (--model)\n"
    "        fast-detectgpt                  analytic sampling discrepancy, one forward pass;\n"
    "                                        --reference M samples, --model scores (default: itself)\n"
    "        binoculars                      --observer M1 (or --model) and --performer M2, one vocabulary\n"
    "\n"
    "options:\n"
    "  --model PATH             scoring model (resolved as for generate)\n"
    "  --tokenizer PATH         its tokenizer (llama2.c checkpoints)\n"
    "  --observer PATH          binoculars: the observer (log-cross-perplexity's p)\n"
    "  --performer PATH         binoculars: the performer (perplexity, and cross-perplexity's log p2)\n"
    "  --performer-tokenizer P  its tokenizer (llama2.c checkpoints)\n"
    "  --reference PATH         fast-detectgpt: the sampling model q (default: the scoring model)\n"
    "  --reference-tokenizer P  its tokenizer (llama2.c checkpoints)\n"
    "  --context N              window in tokens (default: the models' trained context)\n"
    "  --no-slide               refuse texts longer than the window (default: score them in\n"
    "                           windows, each carrying the last half window as context)\n"
    "  --threshold X            decide: machine when the score is beyond X in the method's direction\n"
    "  --calibration FILE       JSON lines of this command's output on human texts, or a\n"
    "                           zero_shot eval run (its folder or samples.jsonl: its \"human\"\n"
    "                           samples; run it with the same models): the threshold is the\n"
    "                           one that flags at most --fpr of them\n"
    "  --fpr X                  false-positive rate for --calibration (default 0.01)\n"
    "  --positions              with --json/--jsonl: every position's facts\n"
    "  --threads N              forward-pass threads (default: all cores)\n"
    "  --jsonl                  input is JSON lines {\"id\", \"text\"}; output one result per line\n"
    "  --batch N                with --jsonl: score N lines at a time, short texts packed into\n"
    "                           shared forward passes (default 64; 1: print each line's result\n"
    "                           before reading the next)\n"
    "  --json                   one JSON object instead of text\n"
    "  -h, --help               this help\n"
    "\n"
    "Without --threshold or --calibration the score is uncalibrated and no decision is made.\n"
    "Exit status: 0 scored (with a decision: machine; for --jsonl: every line scored), 3 human,\n"
    "1 failure (for --jsonl: some line failed), 2 usage error.\n";

enum { TM_EXIT_HUMAN = 3, TM_CLI_JSONL_GROUP_MAX = 1024 };

typedef struct {
    tm_zeroshot_method method;
    bool has_method;
    const char *model, *tokenizer, *observer, *performer, *performer_tokenizer, *reference, *reference_tokenizer;
    const char *calibration, *input;
    long context, threads, batch;
    bool slide, json, jsonl, positions, has_threshold;
    double threshold, fpr;
} options;

static int parse(int argc, char **argv, options *o) {
    enum { ZERO_SHOT = 256, MODEL, TOKENIZER, OBSERVER, PERFORMER, PERFORMER_TOKENIZER, REFERENCE,
           REFERENCE_TOKENIZER, CONTEXT, NO_SLIDE, THRESHOLD, CALIBRATION, FPR, POSITIONS, THREADS, JSONL, JSON,
           BATCH };
    static const struct option flags[] = {
        {"zero-shot", required_argument, 0, ZERO_SHOT}, {"model", required_argument, 0, MODEL},
        {"tokenizer", required_argument, 0, TOKENIZER}, {"observer", required_argument, 0, OBSERVER},
        {"performer", required_argument, 0, PERFORMER},
        {"performer-tokenizer", required_argument, 0, PERFORMER_TOKENIZER},
        {"reference", required_argument, 0, REFERENCE},
        {"reference-tokenizer", required_argument, 0, REFERENCE_TOKENIZER},
        {"context", required_argument, 0, CONTEXT}, {"no-slide", no_argument, 0, NO_SLIDE},
        {"threshold", required_argument, 0, THRESHOLD}, {"calibration", required_argument, 0, CALIBRATION},
        {"fpr", required_argument, 0, FPR}, {"positions", no_argument, 0, POSITIONS},
        {"threads", required_argument, 0, THREADS}, {"jsonl", no_argument, 0, JSONL},
        {"json", no_argument, 0, JSON}, {"batch", required_argument, 0, BATCH},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *cmd = "detect --zero-shot";
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", flags, NULL)) != -1) {
        switch (c) {
        case ZERO_SHOT:
            if (!tm_zeroshot_method_parse(optarg, &o->method)) {
                tm_cli_usage(cmd, "unknown method '%s' (known: %s)", optarg, tm_zeroshot_method_names());
                return -1;
            }
            o->has_method = true;
            break;
        case MODEL: o->model = optarg; break;
        case TOKENIZER: o->tokenizer = optarg; break;
        case OBSERVER: o->observer = optarg; break;
        case PERFORMER: o->performer = optarg; break;
        case PERFORMER_TOKENIZER: o->performer_tokenizer = optarg; break;
        case REFERENCE: o->reference = optarg; break;
        case REFERENCE_TOKENIZER: o->reference_tokenizer = optarg; break;
        case CONTEXT: if (!tm_cli_parse_int(cmd, "--context", optarg, 2, 1 << 24, &o->context)) return -1; break;
        case NO_SLIDE: o->slide = false; break;
        case THRESHOLD:
            if (!tm_cli_parse_float(cmd, "--threshold", optarg, -1e300, 1e300, &o->threshold)) return -1;
            o->has_threshold = true;
            break;
        case CALIBRATION: o->calibration = optarg; break;
        case FPR: if (!tm_cli_parse_float(cmd, "--fpr", optarg, 0.0, 0.999999, &o->fpr)) return -1; break;
        case POSITIONS: o->positions = true; break;
        case THREADS: if (!tm_cli_parse_int(cmd, "--threads", optarg, 1, 1024, &o->threads)) return -1; break;
        case JSONL: o->jsonl = true; break;
        case JSON: o->json = true; break;
        case BATCH:
            if (!tm_cli_parse_int(cmd, "--batch", optarg, 1, TM_CLI_JSONL_GROUP_MAX, &o->batch)) return -1;
            break;
        case 'h': fputs(help, stdout); return 1;
        default: tm_cli_usage(cmd, "unknown or incomplete option '%s'", argv[optind - 1]); return -1;
        }
    }
    if (optind < argc) o->input = argv[optind++];
    if (optind < argc) { tm_cli_usage(cmd, "unexpected argument '%s'", argv[optind]); return -1; }
    if (!o->has_method) { tm_cli_usage(cmd, "--zero-shot METHOD is required (%s)", tm_zeroshot_method_names()); return -1; }
    bool binoculars = o->method == TM_ZEROSHOT_BINOCULARS;
    if (binoculars && !o->performer) { tm_cli_usage(cmd, "binoculars needs --performer M2"); return -1; }
    if (!binoculars && (o->observer || o->performer))
        { tm_cli_usage(cmd, "--observer and --performer are for binoculars only"); return -1; }
    if (binoculars && o->observer && o->model)
        { tm_cli_usage(cmd, "give the observer once: --observer or --model"); return -1; }
    if (o->reference && o->method != TM_ZEROSHOT_FAST_DETECTGPT)
        { tm_cli_usage(cmd, "--reference is for fast-detectgpt only"); return -1; }
    if (o->has_threshold && o->calibration)
        { tm_cli_usage(cmd, "give --threshold or --calibration, not both"); return -1; }
    return 0;
}

/* A model with its tokenizer, resolved as generate resolves --model. */
typedef struct {
    tm_model *model;
    tm_tokenizer *tokenizer;
} loaded_model;

static tm_status load_model(loaded_model *m, const char *path, const char *tokenizer, tm_error *err) {
    char model_path[4096], tokenizer_path[4096];
    tm_status status = tm_model_resolve(path, model_path, sizeof model_path, tokenizer_path, sizeof tokenizer_path, err);
    if (status == TM_OK) status = tm_model_load(&m->model, model_path, err);
    if (status == TM_OK)
        status = tm_model_tokenizer(&m->tokenizer, m->model,
                                    tokenizer ? tokenizer : (tokenizer_path[0] ? tokenizer_path : NULL), err);
    return status;
}

static void free_model(loaded_model *m) {
    tm_tokenizer_free(m->tokenizer);
    tm_model_free(m->model);
}

/* Human scores from JSON lines this command printed (error lines are
 * skipped), or from a zero_shot eval run's samples.jsonl (a run folder names
 * its samples.jsonl): the records of group "human", each method's whole-text
 * score under scores.zero_shot (a text the run could not score is skipped). */
static tm_status calibrate(const options *o, double *threshold, double *achieved, size_t *n_human, tm_error *err) {
    char path[4096];
    struct stat st;
    bool run_dir = stat(o->calibration, &st) == 0 && S_ISDIR(st.st_mode);
    int written = snprintf(path, sizeof path, run_dir ? "%s/samples.jsonl" : "%s", o->calibration);
    if (written < 0 || (size_t)written >= sizeof path)
        return tm_error_set(err, TM_ERR_ARGUMENT, "%s: path too long", o->calibration);
    FILE *f = fopen(path, "rb");
    if (!f) return tm_error_set(err, TM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    double *scores = NULL;
    size_t n = 0, capacity = 0, number = 0;
    char *line = NULL;
    size_t line_capacity = 0;
    ssize_t got;
    tm_status status = TM_OK;
    while (status == TM_OK && (got = getline(&line, &line_capacity, f)) >= 0) {
        number++;
        if (got <= 1) continue;
        json_error_t jerr;
        json_t *record = json_loads(line, 0, &jerr);
        const char *method = record ? json_string_value(json_object_get(record, "method")) : NULL;
        json_t *score = record ? json_object_get(record, "score") : NULL;
        const char *group = record ? json_string_value(json_object_get(record, "group")) : NULL;
        json_t *run_scores = group ? json_object_get(json_object_get(record, "scores"), "zero_shot") : NULL;
        if (!record) status = tm_error_set(err, TM_ERR_FORMAT, "%s:%zu: invalid JSON: %s", path, number, jerr.text);
        else if (group) {
            /* A sample of a zero_shot eval run: only the human texts calibrate. */
            json_t *mine = json_object_get(run_scores, tm_zeroshot_method_name(o->method));
            score = json_object_get(mine, "score");
            if (strcmp(group, "human") || json_object_get(run_scores, "error") || json_is_null(score)) score = NULL;
            else if (!run_scores)
                status = tm_error_set(err, TM_ERR_FORMAT, "%s:%zu: a sample without zero-shot scores (not a zero_shot "
                                      "eval run)", path, number);
            else if (!json_is_number(score))
                status = tm_error_set(err, TM_ERR_FORMAT, "%s:%zu: the run did not score %s", path, number,
                                      tm_zeroshot_method_name(o->method));
            if (status == TM_OK && score) {
                if (n == capacity) {
                    size_t grown = capacity ? capacity * 2 : 256;
                    double *bigger = realloc(scores, grown * sizeof *bigger);
                    if (!bigger) status = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
                    else scores = bigger, capacity = grown;
                }
                if (status == TM_OK) scores[n++] = json_number_value(score);
            }
        }
        else if (json_object_get(record, "error")) { /* a text that failed to score carries no score */ }
        else if (!method || !json_is_number(score))
            status = tm_error_set(err, TM_ERR_FORMAT, "%s:%zu: expected {\"method\", \"score\"}", path, number);
        else if (strcmp(method, tm_zeroshot_method_name(o->method)))
            status = tm_error_set(err, TM_ERR_FORMAT, "%s:%zu: a %s score, not %s", path, number, method,
                                  tm_zeroshot_method_name(o->method));
        else {
            if (n == capacity) {
                size_t grown = capacity ? capacity * 2 : 256;
                double *bigger = realloc(scores, grown * sizeof *bigger);
                if (!bigger) status = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
                else scores = bigger, capacity = grown;
            }
            if (status == TM_OK) scores[n++] = json_number_value(score);
        }
        json_decref(record);
    }
    free(line);
    fclose(f);
    if (status == TM_OK && n == 0) status = tm_error_set(err, TM_ERR_FORMAT, "%s: no human scores", path);
    if (status == TM_OK) status = tm_zeroshot_threshold_at_fpr(o->method, scores, n, o->fpr, threshold, achieved, err);
    *n_human = n;
    free(scores);
    return status;
}

typedef struct {
    bool decides;
    double threshold, fpr, achieved_fpr;
    size_t n_human;
} decision_rule;

static json_t *result_json(const tm_zeroshot_result *r, const options *o, const decision_rule *rule, int32_t window) {
    const tm_zeroshot_score *s = &r->score;
    json_t *root = json_pack("{s:s, s:f, s:s, s:I, s:I, s:I, s:I, s:{s:f, s:f, s:f}}", "method",
                             tm_zeroshot_method_name(s->method), "score", s->score, "machine_if",
                             s->higher_is_machine ? "above" : "below", "tokens", (json_int_t)r->n_tokens, "scored",
                             (json_int_t)s->n_scored, "windows", (json_int_t)r->n_windows, "window_tokens",
                             (json_int_t)window, "components", "mean_log_prob", s->mean_log_prob, "mean_log_rank",
                             s->mean_log_rank, "mean_entropy", s->mean_entropy);
    if (!root) return NULL;
    json_t *components = json_object_get(root, "components");
    if (s->method == TM_ZEROSHOT_FAST_DETECTGPT) {
        json_object_set_new(components, "log_prob_minus_mean_sum", json_real(s->discrepancy_numerator));
        json_object_set_new(components, "variance_sum", json_real(s->discrepancy_variance));
    }
    if (s->method == TM_ZEROSHOT_BINOCULARS) {
        json_object_set_new(components, "log_perplexity", json_real(s->log_perplexity));
        json_object_set_new(components, "log_cross_perplexity", json_real(s->log_cross_perplexity));
    }
    json_object_set_new(root, "calibrated", json_boolean(rule->decides));
    if (rule->decides) {
        bool machine = tm_zeroshot_is_machine(s->method, s->score, rule->threshold);
        json_object_set_new(root, "threshold", json_real(rule->threshold));
        json_object_set_new(root, "decision", json_string(machine ? "machine" : "human"));
        if (o->calibration) {
            json_object_set_new(root, "fpr", json_real(rule->fpr));
            json_object_set_new(root, "calibration_fpr", json_real(rule->achieved_fpr));
            json_object_set_new(root, "calibration_texts", json_integer((json_int_t)rule->n_human));
        }
    } else {
        json_object_set_new(root, "decision", json_null());
        json_object_set_new(root, "note", json_string("uncalibrated score: no threshold was given, so no decision "
                                                      "and no p-value (see docs/zero-shot.md on calibration)"));
    }
    if (o->positions) {
        json_t *list = json_array();
        for (size_t i = 0; list && i < s->n_scored; i++) {
            const tm_zeroshot_position *p = &r->positions[i];
            json_t *item = json_pack("{s:f, s:f, s:f, s:f, s:f}", "lp", p->log_prob, "rank", p->rank, "entropy",
                                     p->entropy, "mean", p->expected_log_prob, "var", p->variance_log_prob);
            if (item && s->method == TM_ZEROSHOT_BINOCULARS) {
                json_object_set_new(item, "lp2", json_real(p->performer_log_prob));
                json_object_set_new(item, "xent", json_real(p->cross_entropy));
            }
            json_array_append_new(list, item);
        }
        json_object_set_new(root, "positions", list);
    }
    return root;
}

static void print_text(const tm_zeroshot_result *r, const decision_rule *rule, int32_t window) {
    const tm_zeroshot_score *s = &r->score;
    printf("method:    %s (machine text scores %s)\n", tm_zeroshot_method_name(s->method),
           s->higher_is_machine ? "higher" : "lower");
    printf("score:     %.6g\n", s->score);
    printf("tokens:    %zu (%zu scored, %zu window%s of %d)\n", r->n_tokens, s->n_scored, r->n_windows,
           r->n_windows == 1 ? "" : "s", window);
    if (rule->decides)
        printf("decision:  %s (threshold %.6g)\n",
               tm_zeroshot_is_machine(s->method, s->score, rule->threshold) ? "MACHINE" : "human", rule->threshold);
    else printf("decision:  none: the score is uncalibrated (give --threshold or --calibration)\n");
}

static char *error_record(json_t *id, size_t line, const char *message) {
    json_t *record = json_pack("{s:O?, s:I, s:s}", "id", id, "line", (json_int_t)line, "error", message);
    char *text = record ? json_dumps(record, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(record);
    return text;
}

/* One line of --jsonl, read and parsed; its text is scored with the others
 * of its group. */
typedef struct {
    size_t number;
    json_t *input, *id;
    const char *text;
    size_t size;
    char *output;                       /* the result record, once scored */
    char message[TM_ERROR_MESSAGE_MAX]; /* set: the line failed */
} jsonl_line;

static void parse_line(jsonl_line *l, const char *line, size_t number) {
    json_error_t jerr;
    memset(l, 0, sizeof *l);
    l->number = number;
    l->input = json_loads(line, JSON_REJECT_DUPLICATES, &jerr);
    l->id = json_is_object(l->input) ? json_object_get(l->input, "id") : NULL;
    json_t *text = json_is_object(l->input) ? json_object_get(l->input, "text") : NULL;
    if (!l->input) snprintf(l->message, sizeof l->message, "invalid JSON: %s", jerr.text);
    else if (!json_is_object(l->input)) snprintf(l->message, sizeof l->message, "expected an object {\"id\", \"text\"}");
    else if (!json_is_string(text)) snprintf(l->message, sizeof l->message, "\"text\" must be a string");
    else l->text = json_string_value(text), l->size = json_string_length(text);
}

/* Score a group of lines in one call (the room packs short texts into
 * shared forward passes) and print a result or an error record per line,
 * in input order; false when some line failed. */
static bool process_group(tm_zeroshot *z, const options *o, const decision_rule *rule, jsonl_line *lines, size_t n,
                          tm_error *errors) {
    const char *texts[TM_CLI_JSONL_GROUP_MAX];
    size_t sizes[TM_CLI_JSONL_GROUP_MAX], index[TM_CLI_JSONL_GROUP_MAX], m = 0;
    tm_zeroshot_result results[TM_CLI_JSONL_GROUP_MAX];
    tm_status statuses[TM_CLI_JSONL_GROUP_MAX];
    for (size_t i = 0; i < n; i++)
        if (!lines[i].message[0]) texts[m] = lines[i].text, sizes[m] = lines[i].size, index[m++] = i;
    tm_error err = {0};
    if (m && tm_zeroshot_score_texts(z, texts, sizes, m, results, statuses, errors, &err) != TM_OK)
        for (size_t k = 0; k < m; k++) statuses[k] = err.code, errors[k] = err;
    for (size_t k = 0; k < m; k++) {
        jsonl_line *l = &lines[index[k]];
        if (statuses[k] != TM_OK) {
            snprintf(l->message, sizeof l->message, "%s", errors[k].message);
            continue;
        }
        json_t *result = result_json(&results[k], o, rule, tm_zeroshot_window(z));
        if (result && l->id) json_object_set(result, "id", l->id);
        l->output = result ? json_dumps(result, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
        json_decref(result);
        tm_zeroshot_result_free(&results[k]);
        if (!l->output) snprintf(l->message, sizeof l->message, "out of memory");
    }
    bool all_ok = true;
    for (size_t i = 0; i < n; i++) {
        jsonl_line *l = &lines[i];
        if (l->message[0]) {
            all_ok = false;
            char *record = error_record(l->id, l->number, l->message);
            if (record) puts(record);
            else printf("{\"line\":%zu,\"error\":\"out of memory\"}\n", l->number);
            free(record);
        } else {
            puts(l->output);
        }
        free(l->output);
        json_decref(l->input);
    }
    fflush(stdout);
    return all_ok;
}

static int run_batch(tm_zeroshot *z, const options *o, const decision_rule *rule, FILE *in) {
    bool all_ok = true;
    size_t number = 0, capacity = 0, n = 0, group = (size_t)o->batch;
    jsonl_line *lines = calloc(group, sizeof *lines);
    tm_error *errors = calloc(group, sizeof *errors);
    char *line = NULL;
    if (!lines || !errors) {
        free(lines);
        free(errors);
        fprintf(stderr, "tracemark: error: out of memory: --batch %zu\n", group);
        return TM_EXIT_FAILURE;
    }
    ssize_t got;
    while ((got = getline(&line, &capacity, in)) >= 0) {
        number++;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = '\0';
        if (got == 0) continue; /* blank lines carry no record */
        parse_line(&lines[n++], line, number); /* the text lives in the parsed JSON */
        if (n == group) {
            all_ok &= process_group(z, o, rule, lines, n, errors);
            n = 0;
        }
    }
    if (n) all_ok &= process_group(z, o, rule, lines, n, errors);
    free(line);
    free(lines);
    free(errors);
    return all_ok ? TM_EXIT_OK : TM_EXIT_FAILURE;
}

int tm_cmd_detect_zeroshot(int argc, char **argv) {
    options o = {.slide = true, .fpr = 0.01, .batch = 64};
    int parsed = parse(argc, argv, &o);
    if (parsed != 0) return parsed > 0 ? TM_EXIT_OK : TM_EXIT_USAGE;

    tm_error err = {0};
    loaded_model scoring = {0}, second = {0};
    tm_zeroshot *z = NULL;
    char *text = NULL;
    size_t text_size = 0;
    int exit_code = TM_EXIT_FAILURE;
    decision_rule rule = {.decides = o.has_threshold, .threshold = o.threshold, .fpr = o.fpr};
    bool binoculars = o.method == TM_ZEROSHOT_BINOCULARS;
    const char *second_path = binoculars ? o.performer : o.reference;
    const char *second_tokenizer = binoculars ? o.performer_tokenizer : o.reference_tokenizer;
    if (load_model(&scoring, binoculars && o.observer ? o.observer : o.model, o.tokenizer, &err) != TM_OK ||
        (second_path && load_model(&second, second_path, second_tokenizer, &err) != TM_OK))
        goto failed;
    if (o.calibration) {
        if (calibrate(&o, &rule.threshold, &rule.achieved_fpr, &rule.n_human, &err) != TM_OK) goto failed;
        rule.decides = true;
    }
    tm_zeroshot_options zo = {.method = o.method, .model = scoring.model, .tokenizer = scoring.tokenizer,
                              .n_ctx = (int32_t)o.context, .n_threads = (int32_t)o.threads, .slide = o.slide};
    if (binoculars) zo.performer = second.model, zo.performer_tokenizer = second.tokenizer;
    else zo.reference = second.model, zo.reference_tokenizer = second.tokenizer;
    if (tm_zeroshot_create(&z, &zo, &err) != TM_OK) goto failed;

    FILE *in = stdin;
    if (o.input && strcmp(o.input, "-") != 0 && !(in = fopen(o.input, "rb"))) {
        tm_error_set(&err, TM_ERR_IO, "%s: cannot open: %s", o.input, strerror(errno));
        goto failed;
    }
    if (o.jsonl) {
        exit_code = run_batch(z, &o, &rule, in);
        if (in != stdin) fclose(in);
        goto done;
    }
    if (in != stdin) fclose(in);
    if (tm_cli_read_input(o.input, TM_CLI_MAX_TEXT_BYTES, &text, &text_size, &err)) goto failed;
    tm_zeroshot_result r;
    if (tm_zeroshot_score_text(z, text, text_size, &r, &err) != TM_OK) {
        tm_error_prefix(&err, "%s", o.input ? o.input : "stdin");
        goto failed;
    }
    if (o.json) {
        if (tm_cli_print_json(result_json(&r, &o, &rule, tm_zeroshot_window(z))) != TM_EXIT_OK) {
            tm_zeroshot_result_free(&r);
            goto done;
        }
    } else {
        print_text(&r, &rule, tm_zeroshot_window(z));
    }
    exit_code = rule.decides && !tm_zeroshot_is_machine(o.method, r.score.score, rule.threshold) ? TM_EXIT_HUMAN
                                                                                                : TM_EXIT_OK;
    tm_zeroshot_result_free(&r);
    goto done;
failed:
    tm_cli_fail(&err);
done:
    tm_zeroshot_free(z);
    free_model(&second);
    free_model(&scoring);
    free(text);
    return exit_code;
}
