/* End-to-end tests of `tracemark detect`: each test runs the built binary
 * through /bin/sh (tm_run_cli) on text that `tracemark generate` wrote with a
 * key file, and checks the command's contract: the text verdict and the
 * --json fields (their values equal the library's tm_detect_text on the same
 * text and options, and the counts add up), exit status 0 detected / 3 not
 * detected / 1 failure / 2 usage, --key given a folder of keys (the best key
 * and a family-wise p), --jsonl batches with malformed lines in the middle
 * (an error record with its line number, verdicts for the other lines in
 * input order, exit 1), --window, --prompt-file and --help. Keys come from
 * fixed secrets and generation from fixed seeds, so every outcome repeats. */
#include "fixtures.h"
#include "tracemark/detect.h"
#include "tracemark/watermark.h"
#include "watermark_testing.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* This file's keys: wm_test_labelled_key(DETECT_CLI_KEYS, i), fixed, never picked to pass. */
#define DETECT_CLI_KEYS "tracemark-test-detect-cli"

/* ======================================================================== */
/* Helpers                                                                  */
/* ======================================================================== */

static json_t *parse_json(const char *text) {
    json_error_t jerr;
    json_t *value = json_loads(text, 0, &jerr);
    cr_assert_not_null(value, "not JSON (%s): %s", jerr.text, text);
    return value;
}

/* A scratch folder with the fixtures' paths, key files and texts. */
typedef struct {
    char *dir;
    char bin[4200], tok[4200], llama[4200];
    char cfg_kgw[4200], cfg_gumbel[4200], cfg_synthid[4200];
} workspace;

static void fixture_path(char *out, size_t size, const char *relative) {
    char *path = tm_fixture(relative);
    cr_assert_null(strchr(path, '\''), "fixture path with a quote: %s", path);
    snprintf(out, size, "'%s'", path);
    free(path);
}

static workspace workspace_open(void) {
    workspace w;
    w.dir = tm_test_scratch_dir();
    cr_assert_not_null(w.dir);
    cr_assert_null(strchr(w.dir, '\''));
    fixture_path(w.bin, sizeof w.bin, "models/stories260K.bin");
    fixture_path(w.tok, sizeof w.tok, "models/tok512.bin");
    fixture_path(w.llama, sizeof w.llama, "models/llama-2-tiny-random.gguf");
    snprintf(w.cfg_kgw, sizeof w.cfg_kgw, "'%s/configs/schemes/kgw-lefthash.yaml'", TRACEMARK_SOURCE_DIR);
    snprintf(w.cfg_gumbel, sizeof w.cfg_gumbel, "'%s/configs/schemes/gumbel.yaml'", TRACEMARK_SOURCE_DIR);
    snprintf(w.cfg_synthid, sizeof w.cfg_synthid, "'%s/configs/schemes/synthid.yaml'", TRACEMARK_SOURCE_DIR);
    return w;
}

/* Remove what the workspace holds (one level of subfolders) and the folder. */
static void workspace_close(workspace *w) {
    char command[4400];
    snprintf(command, sizeof command, "rm -rf '%s'", w->dir);
    cr_assert_eq(system(command), 0);
    free(w->dir);
}

static char *in_dir(const workspace *w, const char *name) { return tm_test_path(w->dir, name); }

/* Write key i to path (mode 0600, as tm_wm_key_write makes it); returns its id. */
static void write_key(uint32_t i, const char *path, char id[TM_WM_KEY_ID_SIZE]) {
    tm_wm_key *key = wm_test_labelled_key(DETECT_CLI_KEYS, i);
    tm_error err = {0};
    cr_assert_eq(tm_wm_key_write(key, path, &err), TM_OK, "%s", err.message);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    snprintf(id, TM_WM_KEY_ID_SIZE, "%s", tm_wm_key_id(key));
    tm_wm_key_free(key);
}

/* `tracemark generate` with a watermark (config and key) or without (NULL):
 * returns the generated text (heap), prompt "Once upon a time". */
static char *generate(const workspace *w, const char *config, const char *key, int seed, int tokens) {
    char watermark[8800] = "";
    if (config) snprintf(watermark, sizeof watermark, "--watermark %s --key '%s'", config, key);
    tm_test_cli_result r = tm_test_cli("generate --model %s --tokenizer %s --prompt 'Once upon a time' --temperature 1.0 --seed %d "
                       "--max-tokens %d --json %s",
                       w->bin, w->tok, seed, tokens, watermark);
    cr_assert_eq(r.code, 0, "generate failed: %s", r.err);
    json_t *root = parse_json(r.out);
    const char *text = json_string_value(json_object_get(root, "text"));
    cr_assert_not_null(text);
    char *copy = strdup(text);
    json_decref(root);
    tm_test_cli_free(&r);
    return copy;
}

static char *write_text(const workspace *w, const char *name, const char *text) {
    char *path = in_dir(w, name);
    cr_assert_eq(tm_test_write_file(path, text, strlen(text)), 0);
    return path;
}

/* The library's verdict on the same text, for comparison with the CLI's. */
static tm_detection library_detect(const char *config_name, const char *key_path, const char *text, const char *prompt,
                                   bool windows) {
    char path[4096];
    snprintf(path, sizeof path, "%s/configs/schemes/%s.yaml", TRACEMARK_SOURCE_DIR, config_name);
    tm_wm_config config;
    tm_error err = {0};
    cr_assert_eq(tm_wm_config_load(&config, path, &err), TM_OK, "%s", err.message);
    tm_wm_key *key = NULL;
    cr_assert_eq(tm_wm_key_read(&key, key_path, &err), TM_OK, "%s", err.message);
    char *tok = tm_fixture("models/tok512.bin");
    tm_tokenizer *tokenizer = NULL;
    cr_assert_eq(tm_tokenizer_load(&tokenizer, tok, &err), TM_OK, "%s", err.message);
    tm_detect_options options;
    tm_detect_options_default(&options);
    options.windows = windows;
    tm_detector *detector = NULL;
    cr_assert_eq(tm_detector_create(&detector, tokenizer, &config, (const tm_wm_key *const *)&key, 1, &options, &err),
                 TM_OK, "%s", err.message);
    tm_detection d;
    cr_assert_eq(tm_detect_text(detector, text, strlen(text), prompt, &d, &err), TM_OK, "%s", err.message);
    tm_detector_free(detector);
    tm_tokenizer_free(tokenizer);
    tm_wm_key_free(key);
    free(tok);
    return d;
}

static double number(const json_t *object, const char *field) {
    const json_t *value = json_object_get(object, field);
    cr_assert(json_is_number(value), "field \"%s\" is not a number", field);
    return json_number_value(value);
}

static void assert_relative(double got, double expected, double tolerance, const char *what) {
    cr_assert(fabs(got - expected) <= tolerance * fmax(fabs(expected), 1e-300), "%s: %.17g, expected %.17g", what, got,
              expected);
}

static void assert_failure(const tm_test_cli_result *r, const char *needle) {
    cr_assert_eq(r->code, 1, "exit %d, expected 1; stdout: %s stderr: %s", r->code, r->out, r->err);
    cr_assert(strncmp(r->err, "tracemark: error: ", 18) == 0, "stderr does not start with \"tracemark: error: \": %s",
              r->err);
    cr_assert_not_null(strstr(r->err, needle), "stderr lacks \"%s\": %s", needle, r->err);
}

static void assert_usage(const tm_test_cli_result *r, const char *needle) {
    cr_assert_eq(r->code, 2, "exit %d, expected 2 (usage); stderr: %s", r->code, r->err);
    cr_assert_str_empty(r->out, "a usage error prints nothing on stdout: %s", r->out);
    cr_assert_not_null(strstr(r->err, needle), "stderr lacks \"%s\": %s", needle, r->err);
}

/* ======================================================================== */
/* One text                                                                 */
/* ======================================================================== */

Test(cli_detect, text_verdict_and_exit_codes) {
    workspace w = workspace_open();
    char *key = in_dir(&w, "tenant.key"), id[TM_WM_KEY_ID_SIZE];
    write_key(1, key, id);
    char *marked = generate(&w, w.cfg_kgw, key, 11, 200), *plain = generate(&w, NULL, NULL, 12, 200);
    char *marked_path = write_text(&w, "marked.txt", marked), *plain_path = write_text(&w, "plain.txt", plain);

    tm_test_cli_result r = tm_test_cli("detect --key '%s' --watermark %s --tokenizer %s '%s'", key, w.cfg_kgw, w.tok, marked_path);
    cr_assert_eq(r.code, 0, "watermarked text: exit %d; %s%s", r.code, r.out, r.err);
    cr_assert(strncmp(r.out, "verdict:        WATERMARKED (p = ", 33) == 0, "%s", r.out);
    cr_assert_not_null(strstr(r.out, "scheme:         kgw (kgw;seeding=lefthash;h=1;gamma=0.25;delta=2)"), "%s", r.out);
    char line[64];
    snprintf(line, sizeof line, "key id:         %s\n", id);
    cr_assert_not_null(strstr(r.out, line), "%s", r.out);
    cr_assert_not_null(strstr(r.out, "statistic:      green_count = "), "%s", r.out);
    cr_assert_not_null(strstr(r.out, "(exact); normal approximation"), "%s", r.out);
    cr_assert_not_null(strstr(r.out, "normalization:  nfc,homoglyphs,whitespace"), "%s", r.out);
    cr_assert_str_empty(r.err);
    tm_test_cli_free(&r);

    /* "-" reads stdin, which tm_run_cli ties to /dev/null: an empty text, a failure. */
    r = tm_test_cli("detect --key '%s' --watermark %s --tokenizer %s -", key, w.cfg_kgw, w.tok);
    assert_failure(&r, "empty");
    tm_test_cli_free(&r);

    r = tm_test_cli("detect --key '%s' --watermark %s --tokenizer %s '%s'", key, w.cfg_kgw, w.tok, plain_path);
    cr_assert_eq(r.code, 3, "unwatermarked text: exit %d, expected 3; %s%s", r.code, r.out, r.err);
    cr_assert(strncmp(r.out, "verdict:        not watermarked (p = ", 37) == 0, "%s", r.out);
    tm_test_cli_free(&r);

    /* The watermarked text against another key: not detected either. */
    char *other = in_dir(&w, "other.key"), other_id[TM_WM_KEY_ID_SIZE];
    write_key(2, other, other_id);
    r = tm_test_cli("detect --key '%s' --watermark %s --tokenizer %s '%s'", other, w.cfg_kgw, w.tok, marked_path);
    cr_assert_eq(r.code, 3, "another key: exit %d; %s", r.code, r.out);
    tm_test_cli_free(&r);
    free(other);
    free(marked);
    free(plain);
    free(marked_path);
    free(plain_path);
    free(key);
    workspace_close(&w);
}

Test(cli_detect, json_fields_match_the_library) {
    workspace w = workspace_open();
    char *key = in_dir(&w, "k.key"), id[TM_WM_KEY_ID_SIZE];
    write_key(3, key, id);
    const char *names[] = {"kgw-lefthash", "gumbel", "synthid"};
    const char *configs[] = {w.cfg_kgw, w.cfg_gumbel, w.cfg_synthid};
    const char *statistics[] = {"green_count", "gumbel_score", "mean_g"};
    int strict_checked = 0;
    for (int k = 0; k < 3; k++) {
        char *text = generate(&w, configs[k], key, 20 + k, 200);
        char name[32];
        snprintf(name, sizeof name, "text%d.txt", k);
        char *path = write_text(&w, name, text);
        tm_test_cli_result r = tm_test_cli("detect --key '%s' --watermark %s --tokenizer %s --json '%s'", key, configs[k], w.tok, path);
        cr_assert_eq(r.code, 0, "%s: exit %d; %s%s", names[k], r.code, r.out, r.err);
        json_t *root = parse_json(r.out);
        tm_detection d = library_detect(names[k], key, text, NULL, false);
        cr_assert(json_is_true(json_object_get(root, "detected")));
        cr_assert_str_eq(json_string_value(json_object_get(root, "scheme")), tm_wm_kind_name(d.kind));
        cr_assert_str_eq(json_string_value(json_object_get(root, "parameters")), d.parameters);
        cr_assert_str_eq(json_string_value(json_object_get(root, "key_id")), id);
        cr_assert_str_eq(json_string_value(json_object_get(root, "normalization")), "nfc,homoglyphs,whitespace");
        cr_assert_str_eq(json_string_value(json_object_get(root, "statistic_name")), statistics[k]);
        const json_t *tokens = json_object_get(root, "tokens");
        cr_assert(json_is_object(tokens));
        size_t total = (size_t)json_integer_value(json_object_get(tokens, "total"));
        size_t scored = (size_t)json_integer_value(json_object_get(tokens, "scored"));
        size_t context = (size_t)json_integer_value(json_object_get(tokens, "ignored_context"));
        size_t repeated = (size_t)json_integer_value(json_object_get(tokens, "ignored_repeated"));
        cr_assert_eq(total, d.n_tokens);
        cr_assert_eq(scored, d.n_scored);
        cr_assert_eq(total, scored + context + repeated, "%s: %zu tokens != %zu + %zu + %zu", names[k], total, scored,
                     context, repeated);
        cr_assert_eq(json_integer_value(json_object_get(tokens, "prompt")), 0);
        assert_relative(number(root, "statistic"), d.statistic, 1e-12, "statistic");
        assert_relative(number(root, "expected"), d.expected, 1e-12, "expected");
        assert_relative(number(root, "z"), d.z, 1e-12, "z");
        assert_relative(number(root, "p_value"), d.p, 1e-12, "p_value");
        assert_relative(number(root, "log_p_value"), d.log_p, 1e-12, "log_p_value");
        assert_relative(number(root, "p_normal_approximation"), d.p_normal, 1e-12, "p_normal_approximation");
        assert_relative(number(root, "p_decision"), d.p, 1e-12, "p_decision (no window, one key)");
        assert_relative(number(root, "fpr"), 1e-3, 1e-12, "fpr");
        cr_assert_leq(number(root, "p_value"), 1e-3);
        cr_assert_null(json_object_get(root, "window"), "no window without --window");
        cr_assert_null(json_object_get(root, "keys"), "no key block for one key");
        if (k == 2) {
            assert_relative(number(root, "weighted_mean_g"), d.weighted_score, 1e-12, "weighted_mean_g");
            assert_relative(number(root, "weighted_p_value"), tm_stat_p_from_log(d.weighted_log_p), 1e-12,
                            "weighted_p_value");
        } else {
            cr_assert_null(json_object_get(root, "weighted_mean_g"));
        }
        /* --fpr moves the decision: p is above 1e-300 for 200 tokens, so --fpr 1e-300 says "not detected". */
        tm_test_cli_result strict =
            tm_test_cli("detect --key '%s' --watermark %s --tokenizer %s --json --fpr 1e-300 '%s'", key, configs[k], w.tok, path);
        if (d.p > 1e-300) {
            cr_assert_eq(strict.code, 3, "%s: --fpr 1e-300 gave exit %d", names[k], strict.code);
            json_t *s = parse_json(strict.out);
            cr_assert(json_is_false(json_object_get(s, "detected")));
            json_decref(s);
            strict_checked++;
        }
        tm_test_cli_free(&strict);
        json_decref(root);
        tm_test_cli_free(&r);
        free(path);
        free(text);
    }
    cr_assert_gt(strict_checked, 0, "no text had p above 1e-300: the --fpr check never ran");
    free(key);
    workspace_close(&w);
}

Test(cli_detect, prompt_file_and_window) {
    workspace w = workspace_open();
    char *key = in_dir(&w, "k.key"), id[TM_WM_KEY_ID_SIZE];
    write_key(4, key, id);
    char *marked = generate(&w, w.cfg_gumbel, key, 31, 150);
    char *prompt_path = write_text(&w, "prompt.txt", "Once upon a time");
    char *marked_path = write_text(&w, "marked.txt", marked);

    /* --prompt-file: its tokens (BOS and all) give context and are never scored. */
    tm_test_cli_result r = tm_test_cli("detect --key '%s' --watermark %s --tokenizer %s --json --prompt-file '%s' '%s'", key,
                       w.cfg_gumbel, w.tok, prompt_path, marked_path);
    cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
    json_t *root = parse_json(r.out);
    tm_detection d = library_detect("gumbel", key, marked, "Once upon a time", false);
    char *tok_path = tm_fixture("models/tok512.bin");
    tm_tokenizer *tokenizer = NULL;
    tm_error err = {0};
    cr_assert_eq(tm_tokenizer_load(&tokenizer, tok_path, &err), TM_OK);
    int32_t *ids = NULL;
    size_t n_prompt = 0;
    cr_assert_eq(tm_tokenizer_encode(tokenizer, "Once upon a time", 16, true, &ids, &n_prompt, &err), TM_OK);
    const json_t *tokens = json_object_get(root, "tokens");
    cr_assert_eq((size_t)json_integer_value(json_object_get(tokens, "prompt")), n_prompt);
    cr_assert_eq(json_integer_value(json_object_get(tokens, "ignored_context")), 0,
                 "with the prompt as context every token has its h tokens");
    assert_relative(number(root, "p_value"), d.p, 1e-12, "p with prompt");
    free(ids);
    tm_tokenizer_free(tokenizer);
    free(tok_path);
    json_decref(root);
    tm_test_cli_free(&r);

    /* --window on the passage between two unwatermarked texts: offsets as the library reports them. */
    char *before = generate(&w, NULL, NULL, 32, 250), *after = generate(&w, NULL, NULL, 33, 250);
    size_t size = strlen(before) + strlen(marked) + strlen(after) + 3;
    char *mixed = malloc(size);
    snprintf(mixed, size, "%s %s %s", before, marked, after);
    char *mixed_path = write_text(&w, "mixed.txt", mixed);
    r = tm_test_cli("detect --key '%s' --watermark %s --tokenizer %s --json --window '%s'", key, w.cfg_gumbel, w.tok,
            mixed_path);
    cr_assert(r.code == 0 || r.code == 3, "exit %d: %s", r.code, r.err);
    root = parse_json(r.out);
    d = library_detect("gumbel", key, mixed, NULL, true);
    const json_t *window = json_object_get(root, "window");
    cr_assert(json_is_object(window), "no window object: %s", r.out);
    cr_assert_eq(json_integer_value(json_object_get(window, "start_char")), (json_int_t)d.window.start_char);
    cr_assert_eq(json_integer_value(json_object_get(window, "end_char")), (json_int_t)d.window.end_char);
    cr_assert_eq(json_integer_value(json_object_get(window, "start_byte")), (json_int_t)d.window.start_byte);
    cr_assert_eq(json_integer_value(json_object_get(window, "end_token")), (json_int_t)d.window.end_token);
    cr_assert_eq(json_integer_value(json_object_get(window, "scored")), (json_int_t)d.window.n_scored);
    cr_assert_geq(json_integer_value(json_object_get(window, "scored")), 25, "the default smallest window");
    cr_assert_eq(json_integer_value(json_object_get(window, "windows_examined")), (json_int_t)d.window.n_windows);
    assert_relative(number(window, "p_value_corrected"), tm_stat_p_from_log(d.window.log_p_corrected), 1e-12,
                    "corrected window p");
    /* And the window lies on the watermarked passage. */
    size_t start = strlen(before) + 1, end = start + strlen(marked);
    size_t lo = d.window.start_byte > start ? d.window.start_byte : start;
    size_t hi = d.window.end_byte < end ? d.window.end_byte : end;
    cr_assert(hi > lo && (double)(hi - lo) >= 0.8 * (double)(end - start), "window bytes %zu-%zu, passage %zu-%zu",
              d.window.start_byte, d.window.end_byte, start, end);
    cr_assert_eq(r.code, d.detected ? 0 : 3);
    json_decref(root);
    tm_test_cli_free(&r);

    /* The text verdict prints the window line. */
    r = tm_test_cli("detect --key '%s' --watermark %s --tokenizer %s --window '%s'", key, w.cfg_gumbel, w.tok, mixed_path);
    cr_assert_not_null(strstr(r.out, "best window:    tokens "), "%s", r.out);
    tm_test_cli_free(&r);
    free(mixed);
    free(mixed_path);
    free(before);
    free(after);
    free(marked);
    free(prompt_path);
    free(marked_path);
    free(key);
    workspace_close(&w);
}

/* ======================================================================== */
/* Several keys                                                             */
/* ======================================================================== */

Test(cli_detect, key_folder_finds_the_right_key) {
    workspace w = workspace_open();
    char *folder = in_dir(&w, "keys");
    cr_assert_eq(mkdir(folder, 0700), 0);
    char ids[6][TM_WM_KEY_ID_SIZE];
    for (uint32_t i = 0; i < 6; i++) {
        char name[32];
        snprintf(name, sizeof name, "tenant-%u.key", i); /* listed in this order (alphasort) */
        char *path = tm_test_path(folder, name);
        write_key(10 + i, path, ids[i]);
        free(path);
    }
    char *right = tm_test_path(folder, "tenant-4.key");
    char *text = generate(&w, w.cfg_synthid, right, 41, 200);
    char *path = write_text(&w, "marked.txt", text);
    tm_test_cli_result r = tm_test_cli("detect --key '%s' --watermark %s --tokenizer %s --json '%s'", folder, w.cfg_synthid, w.tok, path);
    cr_assert_eq(r.code, 0, "exit %d: %s%s", r.code, r.out, r.err);
    json_t *root = parse_json(r.out);
    cr_assert_str_eq(json_string_value(json_object_get(root, "key_id")), ids[4]);
    const json_t *keys = json_object_get(root, "keys");
    cr_assert(json_is_object(keys), "no keys block: %s", r.out);
    cr_assert_eq(json_integer_value(json_object_get(keys, "tested")), 6);
    cr_assert_eq(json_integer_value(json_object_get(keys, "best_index")), 4);
    /* Bonferroni: family p = min(1, 6 p) of the best key's decision p (no window: its p). */
    tm_detection d = library_detect("synthid", right, text, NULL, false);
    assert_relative(number(keys, "family_p_value"), fmin(1.0, 6 * d.p), 1e-9, "family_p_value");
    assert_relative(number(root, "p_decision"), fmin(1.0, 6 * d.p), 1e-9, "p_decision uses the family-wise p");
    json_decref(root);
    tm_test_cli_free(&r);

    /* The text verdict names the number of keys. */
    r = tm_test_cli("detect --key '%s' --watermark %s --tokenizer %s '%s'", folder, w.cfg_synthid, w.tok, path);
    cr_assert_eq(r.code, 0);
    cr_assert_not_null(strstr(r.out, "(best of 6 keys; family-wise p = "), "%s", r.out);
    tm_test_cli_free(&r);

    /* --key repeated: a file and the folder count as 7 keys. */
    char *lone = in_dir(&w, "lone.key"), lone_id[TM_WM_KEY_ID_SIZE];
    write_key(99, lone, lone_id);
    r = tm_test_cli("detect --key '%s' --key '%s' --watermark %s --tokenizer %s --json '%s'", lone, folder, w.cfg_synthid, w.tok,
            path);
    cr_assert_eq(r.code, 0, "%s", r.err);
    root = parse_json(r.out);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(root, "keys"), "tested")), 7);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(root, "keys"), "best_index")), 5);
    json_decref(root);
    tm_test_cli_free(&r);

    /* An empty folder is a failure that says so. */
    char *empty = in_dir(&w, "no-keys");
    cr_assert_eq(mkdir(empty, 0700), 0);
    r = tm_test_cli("detect --key '%s' --watermark %s --tokenizer %s '%s'", empty, w.cfg_synthid, w.tok, path);
    assert_failure(&r, "no key files");
    tm_test_cli_free(&r);
    free(empty);
    free(lone);
    free(right);
    free(text);
    free(path);
    free(folder);
    workspace_close(&w);
}

/* ======================================================================== */
/* Batch                                                                    */
/* ======================================================================== */

/* Append one JSONL line {"id": id, "text": text[, "prompt": prompt]} made by jansson. */
static void append_record(FILE *f, const char *id, const char *text, const char *prompt) {
    json_t *record = json_pack("{s:s, s:s}", "id", id, "text", text);
    if (prompt) json_object_set_new(record, "prompt", json_string(prompt));
    char *line = json_dumps(record, JSON_COMPACT);
    fprintf(f, "%s\n", line);
    free(line);
    json_decref(record);
}

Test(cli_detect, jsonl_batch_with_malformed_lines) {
    workspace w = workspace_open();
    char *key = in_dir(&w, "k.key"), id[TM_WM_KEY_ID_SIZE];
    write_key(5, key, id);
    char *marked = generate(&w, w.cfg_kgw, key, 51, 200), *plain = generate(&w, NULL, NULL, 52, 200);
    char *marked2 = generate(&w, w.cfg_kgw, key, 53, 200);
    char *batch = in_dir(&w, "batch.jsonl");
    FILE *f = fopen(batch, "w");
    cr_assert_not_null(f);
    append_record(f, "a", marked, NULL);                              /* line 1 */
    append_record(f, "b", plain, NULL);                               /* line 2 */
    fprintf(f, "{\"id\": \"c\", \"text\": \"unterminated\n");         /* line 3: invalid JSON */
    fprintf(f, "\n");                                                 /* line 4: blank, no record */
    fprintf(f, "{\"id\": \"d\", \"prompt\": \"Once\"}\n");           /* line 5: no text */
    fprintf(f, "{\"id\": \"e\", \"text\": 42}\n");                    /* line 6: text not a string */
    append_record(f, "f", marked2, "Once upon a time");               /* line 7 */
    fprintf(f, "[\"not\", \"an\", \"object\"]\n");                    /* line 8 */
    fprintf(f, "{\"id\": \"g\", \"text\": \"bad \\u00ff\", \"prompt\": 7}\n"); /* line 9: prompt not a string */
    fprintf(f, "{\"id\": \"h\", \"text\": \"\"}\n");                  /* line 10: empty text */
    append_record(f, "i", plain, NULL);                               /* line 11 */
    cr_assert_eq(fclose(f), 0);

    char *outputs[2];
    for (int threads = 1; threads <= 2; threads++) {
        tm_test_cli_result r = tm_test_cli("detect --key '%s' --watermark %s --tokenizer %s --jsonl --threads %d '%s'", key, w.cfg_kgw,
                           w.tok, threads, batch);
        cr_assert_eq(r.code, 1, "a batch with failed lines exits 1, got %d; %s", r.code, r.err);
        outputs[threads - 1] = strdup(r.out);
        /* One output line per non-blank input line, in input order. */
        const char *expect_id[] = {"a", "b", NULL, "d", "e", "f", NULL, "g", "h", "i"};
        const int expect_line[] = {1, 2, 3, 5, 6, 7, 8, 9, 10, 11};
        const int expect_detected[] = {1, 0, -1, -1, -1, 1, -1, -1, -1, 0};
        const char *expect_error[] = {NULL, NULL, "invalid JSON", "text", "text", NULL, "object", "prompt", "empty", NULL};
        size_t n = 0;
        char *save = NULL;
        for (char *line = strtok_r(r.out, "\n", &save); line; line = strtok_r(NULL, "\n", &save), n++) {
            cr_assert_lt(n, 10, "more output lines than records: %s", line);
            json_t *record = parse_json(line);
            const json_t *record_id = json_object_get(record, "id");
            if (expect_id[n]) cr_assert_str_eq(json_string_value(record_id), expect_id[n], "output %zu: %s", n, line);
            if (expect_error[n]) {
                const char *message = json_string_value(json_object_get(record, "error"));
                cr_assert_not_null(message, "output %zu should be an error record: %s", n, line);
                cr_assert_not_null(strstr(message, expect_error[n]), "output %zu: \"%s\" lacks \"%s\"", n, message,
                                   expect_error[n]);
                cr_assert_eq(json_integer_value(json_object_get(record, "line")), expect_line[n],
                             "output %zu: line number in %s", n, line);
                cr_assert_null(json_object_get(record, "detected"));
            } else {
                cr_assert_null(json_object_get(record, "error"), "output %zu: %s", n, line);
                cr_assert_eq(json_is_true(json_object_get(record, "detected")), expect_detected[n] == 1,
                             "output %zu: %s", n, line);
                cr_assert_str_eq(json_string_value(json_object_get(record, "key_id")), id);
            }
            if (n == 5) /* the prompt's tokens are context, not text */
                cr_assert_gt(json_integer_value(json_object_get(json_object_get(record, "tokens"), "prompt")), 0);
            json_decref(record);
        }
        cr_assert_eq(n, 10, "%zu output lines, expected 10", n);
        tm_test_cli_free(&r);
    }
    cr_assert_str_eq(outputs[0], outputs[1], "the output does not depend on the number of threads");
    free(outputs[0]);
    free(outputs[1]);

    /* The verdict of a batch line equals the single-text verdict. */
    tm_detection d = library_detect("kgw-lefthash", key, marked2, "Once upon a time", false);
    tm_test_cli_result r = tm_test_cli("detect --key '%s' --watermark %s --tokenizer %s --jsonl '%s'", key, w.cfg_kgw, w.tok, batch);
    char *sixth = r.out;
    for (int i = 0; i < 5; i++) sixth = strchr(sixth, '\n') + 1;
    *strchr(sixth, '\n') = '\0';
    json_t *record = parse_json(sixth);
    assert_relative(number(record, "p_value"), d.p, 1e-12, "batch p with prompt");
    json_decref(record);
    tm_test_cli_free(&r);

    /* A clean batch exits 0 (every line processed), whatever the verdicts. */
    char *clean = in_dir(&w, "clean.jsonl");
    f = fopen(clean, "w");
    append_record(f, "x", marked, NULL);
    append_record(f, "y", plain, NULL);
    fclose(f);
    r = tm_test_cli("detect --key '%s' --watermark %s --tokenizer %s --jsonl '%s'", key, w.cfg_kgw, w.tok, clean);
    cr_assert_eq(r.code, 0, "clean batch: exit %d; %s", r.code, r.err);
    cr_assert_eq(strchr(r.out, '\n') != NULL && strchr(strchr(r.out, '\n') + 1, '\n') != NULL, true, "%s", r.out);
    tm_test_cli_free(&r);
    free(clean);
    free(batch);
    free(marked);
    free(marked2);
    free(plain);
    free(key);
    workspace_close(&w);
}

/* ======================================================================== */
/* Errors and help                                                          */
/* ======================================================================== */

Test(cli_detect, failures_exit_1_and_say_what) {
    workspace w = workspace_open();
    char *key = in_dir(&w, "k.key"), id[TM_WM_KEY_ID_SIZE];
    write_key(6, key, id);
    char *text = write_text(&w, "text.txt", "Once upon a time there was a cat.");
    char *bad = write_text(&w, "bad.txt", "Once upon a \xff time");
    char *empty = write_text(&w, "empty.txt", "");
    char *missing = in_dir(&w, "missing.key");

    tm_test_cli_result r = tm_test_cli("detect --key '%s' --watermark %s --tokenizer %s '%s'", missing, w.cfg_kgw, w.tok, text);
    assert_failure(&r, "missing.key");
    tm_test_cli_free(&r);

    /* A key others can read is refused. */
    char *open_key = in_dir(&w, "open.key"), open_id[TM_WM_KEY_ID_SIZE];
    write_key(7, open_key, open_id);
    cr_assert_eq(chmod(open_key, 0644), 0);
    r = tm_test_cli("detect --key '%s' --watermark %s --tokenizer %s '%s'", open_key, w.cfg_kgw, w.tok, text);
    assert_failure(&r, "open.key");
    tm_test_cli_free(&r);

    r = tm_test_cli("detect --key '%s' --watermark %s --tokenizer %s '%s'", key, w.cfg_kgw, w.tok, bad);
    assert_failure(&r, "UTF-8");
    tm_test_cli_free(&r);

    r = tm_test_cli("detect --key '%s' --watermark %s --tokenizer %s '%s'", key, w.cfg_kgw, w.tok, empty);
    assert_failure(&r, "empty");
    tm_test_cli_free(&r);

    char *nowhere = in_dir(&w, "nowhere.txt");
    r = tm_test_cli("detect --key '%s' --watermark %s --tokenizer %s '%s'", key, w.cfg_kgw, w.tok, nowhere);
    assert_failure(&r, "nowhere.txt");
    tm_test_cli_free(&r);

    r = tm_test_cli("detect --key '%s' --watermark '%s/configs/schemes/none.yaml' --tokenizer %s '%s'", key,
            TRACEMARK_SOURCE_DIR, w.tok, text);
    assert_failure(&r, "none.yaml");
    tm_test_cli_free(&r);

    r = tm_test_cli("detect --key '%s' --watermark %s --tokenizer '%s' '%s'", key, w.cfg_kgw, text, text);
    cr_assert_eq(r.code, 1, "a text file as tokenizer: exit %d", r.code);
    tm_test_cli_free(&r);

    /* A mismatched tokenizer is not an error, but it does not detect. */
    char *marked = generate(&w, w.cfg_kgw, key, 61, 200);
    char *marked_path = write_text(&w, "marked.txt", marked);
    r = tm_test_cli("detect --key '%s' --watermark %s --tokenizer %s '%s'", key, w.cfg_kgw, w.tok, marked_path);
    cr_assert_eq(r.code, 0, "right tokenizer: exit %d", r.code);
    tm_test_cli_free(&r);
    r = tm_test_cli("detect --key '%s' --watermark %s --tokenizer %s '%s'", key, w.cfg_kgw, w.llama, marked_path);
    cr_assert_eq(r.code, 3, "32000-token vocabulary: exit %d; %s", r.code, r.out);
    tm_test_cli_free(&r);
    /* Nor does the right key with another scheme. */
    r = tm_test_cli("detect --key '%s' --watermark %s --tokenizer %s '%s'", key, w.cfg_gumbel, w.tok, marked_path);
    cr_assert_eq(r.code, 3, "KGW text under the Gumbel scheme: exit %d; %s", r.code, r.out);
    tm_test_cli_free(&r);

    free(marked);
    free(marked_path);
    free(nowhere);
    free(open_key);
    free(key);
    free(text);
    free(bad);
    free(empty);
    free(missing);
    workspace_close(&w);
}

Test(cli_detect, command_line_mistakes_exit_2) {
    workspace w = workspace_open();
    char *key = in_dir(&w, "k.key"), id[TM_WM_KEY_ID_SIZE];
    write_key(8, key, id);
    char *text = write_text(&w, "text.txt", "Once upon a time there was a cat.");
    tm_test_cli_result r = tm_test_cli("detect --watermark %s --tokenizer %s '%s'", w.cfg_kgw, w.tok, text);
    assert_usage(&r, "--key");
    tm_test_cli_free(&r);
    r = tm_test_cli("detect --key '%s' --tokenizer %s '%s'", key, w.tok, text);
    assert_usage(&r, "--watermark");
    tm_test_cli_free(&r);
    const char *bad_values[] = {"--fpr 0", "--fpr 1", "--fpr abc", "--fpr -0.5", "--min-window 0", "--permutations 0",
                                "--threads 0", "--frobnicate"};
    for (size_t i = 0; i < sizeof bad_values / sizeof bad_values[0]; i++) {
        r = tm_test_cli("detect --key '%s' --watermark %s --tokenizer %s %s '%s'", key, w.cfg_kgw, w.tok, bad_values[i], text);
        cr_assert_eq(r.code, 2, "%s: exit %d, expected 2; %s", bad_values[i], r.code, r.err);
        cr_assert_str_empty(r.out, "%s printed %s", bad_values[i], r.out);
        cr_assert_neq(r.err[0], '\0', "%s: nothing on stderr", bad_values[i]);
        tm_test_cli_free(&r);
    }
    r = tm_test_cli("detect --key '%s' --watermark %s --tokenizer %s --jsonl --prompt-file '%s' '%s'", key, w.cfg_kgw, w.tok,
            text, text);
    assert_usage(&r, "prompt");
    tm_test_cli_free(&r);
    r = tm_test_cli("detect --key '%s' --watermark %s --tokenizer %s '%s' '%s'", key, w.cfg_kgw, w.tok, text, text);
    assert_usage(&r, "unexpected argument");
    tm_test_cli_free(&r);
    free(key);
    free(text);
    workspace_close(&w);
}

Test(cli_detect, help) {
    tm_test_cli_result r = tm_test_cli("detect --help");
    cr_assert_eq(r.code, 0, "exit %d", r.code);
    cr_assert(strncmp(r.out, "usage: tracemark detect", 23) == 0, "%s", r.out);
    const char *mentions[] = {"--key", "--watermark", "--tokenizer", "--prompt-file", "--fpr", "--window", "--jsonl",
                              "--json", "--threads", "Exit status: 0", "3 not detected"};
    for (size_t i = 0; i < sizeof mentions / sizeof mentions[0]; i++)
        cr_assert_not_null(strstr(r.out, mentions[i]), "help lacks %s", mentions[i]);
    cr_assert_str_empty(r.err);
    tm_test_cli_free(&r);
    r = tm_test_cli("detect -h");
    cr_assert_eq(r.code, 0);
    cr_assert(strncmp(r.out, "usage: tracemark detect", 23) == 0);
    tm_test_cli_free(&r);
}

/* ======================================================================== */
/* Rough edges found when tried as a new user would (issue 15)              */
/* ======================================================================== */

Test(cli_detect, json_with_jsonl_is_a_usage_error) {
    workspace w = workspace_open();
    char *key = in_dir(&w, "k.key"), id[TM_WM_KEY_ID_SIZE];
    write_key(30, key, id);
    char *text = write_text(&w, "in.jsonl", "{\"id\": 1, \"text\": \"Once upon a time\"}\n");
    tm_test_cli_result r =
        tm_test_cli("detect --key '%s' --watermark %s --tokenizer %s --json --jsonl '%s'", key, w.cfg_kgw, w.tok, text);
    assert_usage(&r, "--jsonl");
    tm_test_cli_free(&r);
    free(text);
    free(key);
    workspace_close(&w);
}

Test(cli_detect, exp_edit_permutations_window_and_key_count) {
    workspace w = workspace_open();
    char *key = in_dir(&w, "k.key"), id[TM_WM_KEY_ID_SIZE];
    write_key(31, key, id);
    char *text = write_text(&w, "t.txt", "Once upon a time there was a little cat who liked to play in the sun.");
    char cfg[4200];
    snprintf(cfg, sizeof cfg, "'%s/configs/schemes/exp-edit.yaml'", TRACEMARK_SOURCE_DIR);
    /* 1/(100+1) > 0.001: can never detect; the smallest N that can is 999. */
    tm_test_cli_result r =
        tm_test_cli("detect --key '%s' --watermark %s --tokenizer %s --permutations 100 '%s'", key, cfg, w.tok, text);
    assert_usage(&r, "smallest N that can is 999");
    tm_test_cli_free(&r);
    r = tm_test_cli("detect --key '%s' --watermark %s --tokenizer %s --fpr 0.01 --permutations 50 '%s'", key, cfg, w.tok,
                    text);
    assert_usage(&r, "smallest N that can is 99");
    tm_test_cli_free(&r);
    /* With two keys at 0.001 the floor 2/(N+1) needs N >= 1999. */
    char *key2 = in_dir(&w, "k2.key"), id2[TM_WM_KEY_ID_SIZE];
    write_key(32, key2, id2);
    r = tm_test_cli("detect --key '%s' --key '%s' --watermark %s --tokenizer %s --permutations 999 '%s'", key, key2, cfg,
                    w.tok, text);
    assert_usage(&r, "smallest N that can is 1999");
    tm_test_cli_free(&r);
    /* Windows are refused for EXP-edit rather than silently ignored. */
    r = tm_test_cli("detect --key '%s' --watermark %s --tokenizer %s --window '%s'", key, cfg, w.tok, text);
    assert_usage(&r, "--window is not available for EXP-edit");
    tm_test_cli_free(&r);
    /* Enough permutations: it runs (not detected, a short unwatermarked text). */
    r = tm_test_cli("detect --key '%s' --watermark %s --tokenizer %s --json --fpr 0.01 --permutations 99 '%s'", key, cfg,
                    w.tok, text);
    cr_assert_eq(r.code, 3, "exit %d: %s", r.code, r.err);
    json_t *root = parse_json(r.out);
    cr_assert(fabs(number(root, "p_resolution") - 0.01) < 1e-15);
    cr_assert(number(root, "permutations_done") <= 99);
    json_decref(root);
    tm_test_cli_free(&r);
    free(key2);
    free(text);
    free(key);
    workspace_close(&w);
}

Test(cli_detect, without_tokenizer_nothing_is_created_or_downloaded) {
    workspace w = workspace_open();
    char *key = in_dir(&w, "k.key"), id[TM_WM_KEY_ID_SIZE];
    write_key(33, key, id);
    char *text = write_text(&w, "t.txt", "Once upon a time.");
    cr_assert_eq(chdir(w.dir), 0);
    unsetenv("TRACEMARK_MODEL");
    tm_test_cli_result r = tm_test_cli("detect --key '%s' --watermark %s '%s'", key, w.cfg_kgw, text);
    assert_failure(&r, "--tokenizer");
    tm_test_cli_free(&r);
    struct stat st;
    cr_assert_neq(stat("models", &st), 0, "detect created ./models");
    free(text);
    free(key);
    workspace_close(&w);
}

Test(cli_detect, double_dash_ends_options) {
    workspace w = workspace_open();
    char *key = in_dir(&w, "k.key"), id[TM_WM_KEY_ID_SIZE];
    write_key(34, key, id);
    char *text = write_text(&w, "-dash.txt", "Once upon a time there was a dog.");
    cr_assert_eq(chdir(w.dir), 0);
    tm_test_cli_result r = tm_test_cli("detect --key '%s' --watermark %s --tokenizer %s --json -- -dash.txt", key,
                                       w.cfg_kgw, w.tok);
    cr_assert_eq(r.code, 3, "exit %d: %s", r.code, r.err);
    tm_test_cli_free(&r);
    /* tokenize: after "--", "-text" is text: the ids of a file holding it. */
    r = tm_test_cli("tokenize --tokenizer %s --no-bos -- -text", w.tok);
    cr_assert_eq(r.code, 0, "tokenize -- -text: exit %d: %s", r.code, r.err);
    char *file = write_text(&w, "dash-text.txt", "-text");
    tm_test_cli_result plain = tm_test_cli("tokenize --tokenizer %s --no-bos --file '%s'", w.tok, file);
    cr_assert_eq(plain.code, 0, "%s", plain.err);
    cr_assert_neq(r.out[0], '\0');
    cr_assert_str_eq(r.out, plain.out, "\"-- -text\" is not tokenized as the text \"-text\"");
    free(file);
    tm_test_cli_free(&plain);
    tm_test_cli_free(&r);
    free(text);
    free(key);
    workspace_close(&w);
}

Test(cli_detect, provenance_manifest_characters_never_change_a_verdict) {
    workspace w = workspace_open();
    char *key = in_dir(&w, "k.key"), id[TM_WM_KEY_ID_SIZE];
    write_key(35, key, id);
    char *marked = generate(&w, w.cfg_kgw, key, 21, 150);
    /* U+FEFF then variation selectors, as provenance/ appends a manifest. */
    size_t n = strlen(marked);
    char *embedded = malloc(n + 64);
    snprintf(embedded, n + 64, "%s\xEF\xBB\xBF\xEF\xB8\x80\xEF\xB8\x8F\xF3\xA0\x84\x80\xF3\xA0\x87\xAF\xEF\xB8\x85", marked);
    char *a = write_text(&w, "a.txt", marked), *b = write_text(&w, "b.txt", embedded);
    tm_test_cli_result ra = tm_test_cli("detect --key '%s' --watermark %s --tokenizer %s --json '%s'", key, w.cfg_kgw, w.tok, a);
    tm_test_cli_result rb = tm_test_cli("detect --key '%s' --watermark %s --tokenizer %s --json '%s'", key, w.cfg_kgw, w.tok, b);
    cr_assert_eq(ra.code, 0, "%s", ra.err);
    cr_assert_eq(rb.code, ra.code);
    cr_assert_str_eq(rb.out, ra.out, "the manifest changed the verdict");
    tm_test_cli_free(&ra);
    tm_test_cli_free(&rb);
    free(a);
    free(b);
    free(embedded);
    free(marked);
    free(key);
    workspace_close(&w);
}

/* Without --tokenizer the default model's tokenizer is taken; a text from a
 * model of another vocabulary then scores like plain text, and nothing said
 * which tokenizer had been used. Now stderr says so and the verdict names it
 * (here $TRACEMARK_MODEL is the 32000-token Llama 2 vocabulary); with
 * --tokenizer the verdict names the one given and stderr stays empty. */
Test(cli_detect, the_tokenizer_used_is_named) {
    workspace w = workspace_open();
    char *key = in_dir(&w, "k.key"), id[TM_WM_KEY_ID_SIZE];
    write_key(35, key, id);
    char *text = write_text(&w, "t.txt", "Once upon a time there was a dog.");
    char *llama = tm_fixture("models/llama-2-tiny-random.gguf"), *tok = tm_fixture("models/tok512.bin");
    cr_assert_eq(setenv("TRACEMARK_MODEL", llama, 1), 0);
    tm_test_cli_result r = tm_test_cli("detect --key '%s' --watermark %s '%s'", key, w.cfg_kgw, text);
    unsetenv("TRACEMARK_MODEL");
    cr_assert_eq(r.code, 3, "exit %d: %s", r.code, r.err);
    char line[4400];
    snprintf(line, sizeof line, "no --tokenizer given: using %s (32000 tokens)", llama);
    cr_expect_not_null(strstr(r.err, line), "%s", r.err);
    snprintf(line, sizeof line, "\ntokenizer:      %s (32000 tokens; the default model's, no --tokenizer given)\n",
             llama);
    cr_expect_not_null(strstr(r.out, line), "%s", r.out);
    tm_test_cli_free(&r);
    r = tm_test_cli("detect --key '%s' --watermark %s --tokenizer '%s' '%s'", key, w.cfg_kgw, tok, text);
    cr_assert_eq(r.code, 3, "exit %d: %s", r.code, r.err);
    snprintf(line, sizeof line, "\ntokenizer:      %s (512 tokens)\n", tok);
    cr_expect_not_null(strstr(r.out, line), "%s", r.out);
    cr_expect_str_empty(r.err);
    tm_test_cli_free(&r);
    free(llama), free(tok);
    free(text);
    free(key);
    workspace_close(&w);
}
