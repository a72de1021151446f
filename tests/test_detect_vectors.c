/* The detection spec's test vectors (docs/detect-spec.md, "Test vectors"),
 * from text to verdict, checked against tracemark: tests/data/
 * detect_vectors.json is written by the independent Python reference
 * docs/reference/tm_detect.py (standard library only, from the spec's
 * prose), and for every vector the normalised text, the ids, the counts of
 * scored and ignored tokens, the statistic, ln p, the best window and the
 * decision must come
 * out of tm_text_normalize, the tokenizer and tm_detect_text the same. So a
 * detector written from the prose alone agrees with this one, and a change
 * to either side shows here. Counts and ids are exact; the statistic and
 * ln p agree to 1e-9 relative (the reference computes p exactly in
 * rationals or 60-digit decimals, tracemark in doubles). */
#include "fixtures.h"
#include "tracemark/detect.h"
#include "tracemark/watermark.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *load_vectors(void) {
    char *path = tm_test_data_path("detect_vectors.json");
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    cr_assert_not_null(root, "%s: %s (line %d)", path, jerr.text, jerr.line);
    free(path);
    return root;
}

static const char *string_of(const json_t *object, const char *field) {
    const json_t *value = json_object_get(object, field);
    cr_assert(json_is_string(value), "field %s is not a string", field);
    return json_string_value(value);
}

static double number_of(const json_t *object, const char *field) {
    const json_t *value = json_object_get(object, field);
    cr_assert(json_is_number(value), "field %s is not a number", field);
    return json_number_value(value);
}

static void assert_close(double got, double want, const char *what, const char *name) {
    if (isinf(want)) {
        cr_assert_eq(got, want, "%s: %s %.17g, reference %.17g", name, what, got, want);
        return;
    }
    cr_assert(fabs(got - want) <= 1e-9 * fmax(1.0, fabs(want)), "%s: %s %.17g, reference %.17g", name, what, got, want);
}

static void assert_ids(const json_t *want, const int32_t *ids, size_t n, const char *name, const char *what) {
    cr_assert_eq(json_array_size(want), n, "%s: %zu %s, reference %zu", name, n, what, json_array_size(want));
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(json_integer_value(json_array_get(want, i)), ids[i], "%s: %s[%zu] %d, reference %lld", name, what, i,
                     ids[i], (long long)json_integer_value(json_array_get(want, i)));
}

Test(detect_vectors, text_to_verdict_as_the_python_reference) {
    json_t *root = load_vectors();
    char *tok_path = tm_fixture("models/tok512.bin");
    tm_tokenizer *tokenizer = NULL;
    tm_error err = {0};
    cr_assert_eq(tm_tokenizer_load(&tokenizer, tok_path, &err), TM_OK, "%s", err.message);
    free(tok_path);
    uint8_t secret[TM_WM_KEY_BYTES];
    for (int i = 0; i < TM_WM_KEY_BYTES; i++) secret[i] = (uint8_t)i;
    tm_wm_key *keys[5] = {0};
    for (int k = 0; k < 5; k++) {
        uint8_t other[TM_WM_KEY_BYTES];
        for (int i = 0; i < TM_WM_KEY_BYTES; i++) other[i] = k == 0 ? secret[i] : (uint8_t)(0xA0 + 16 * k + i);
        cr_assert_eq(tm_wm_key_from_secret(&keys[k], other, &err), TM_OK, "%s", err.message);
    }
    cr_assert_str_eq(tm_wm_key_id(keys[0]), string_of(root, "key_id"));
    const json_t *vectors = json_object_get(root, "vectors");
    cr_assert_geq(json_array_size(vectors), 19, "every scheme with and without its prompt, and more");
    size_t index;
    const json_t *v;
    json_array_foreach(vectors, index, v) {
        const char *scheme = string_of(v, "scheme");
        const json_t *prompt_value = json_object_get(v, "prompt");
        const char *prompt = json_is_string(prompt_value) ? json_string_value(prompt_value) : NULL;
        size_t n_keys = (size_t)json_integer_value(json_object_get(v, "n_keys"));
        char name[96];
        snprintf(name, sizeof name, "vector %zu (%s%s, %zu key%s)", index, scheme, prompt ? ", prompt" : "", n_keys,
                 n_keys == 1 ? "" : "s");
        char config_path[4096];
        snprintf(config_path, sizeof config_path, "%s/configs/schemes/%s.yaml", TRACEMARK_SOURCE_DIR, scheme);
        tm_wm_config config;
        cr_assert_eq(tm_wm_config_load(&config, config_path, &err), TM_OK, "%s", err.message);
        char description[256];
        tm_wm_config_describe(&config, description, sizeof description);
        cr_assert_str_eq(description, string_of(v, "info"), "%s", name);

        /* Text -> normalised text -> ids. */
        const char *text = string_of(v, "text");
        char *normalized = NULL;
        size_t normalized_size = 0;
        cr_assert_eq(tm_text_normalize(text, strlen(text), NULL, &normalized, &normalized_size, NULL, &err), TM_OK, "%s",
                     err.message);
        cr_assert_str_eq(normalized, string_of(v, "normalized"), "%s: normalised text", name);
        int32_t *ids = NULL;
        size_t n_ids = 0;
        cr_assert_eq(tm_tokenizer_encode(tokenizer, normalized, normalized_size, false, &ids, &n_ids, &err), TM_OK);
        assert_ids(json_object_get(v, "ids"), ids, n_ids, name, "ids");
        free(ids);
        free(normalized);
        if (prompt) {
            int32_t *prompt_ids = NULL;
            size_t n_prompt = 0;
            cr_assert_eq(tm_tokenizer_encode(tokenizer, prompt, strlen(prompt), true, &prompt_ids, &n_prompt, &err), TM_OK);
            assert_ids(json_object_get(v, "prompt_ids"), prompt_ids, n_prompt, name, "prompt ids");
            free(prompt_ids);
        }

        /* -> the verdict. */
        tm_detect_options options;
        tm_detect_options_default(&options);
        options.fpr = number_of(v, "fpr");
        if (json_object_get(v, "permutations")) options.permutations = (int32_t)number_of(v, "permutations");
        const json_t *window = json_object_get(v, "window");
        if (json_object_get(v, "min_window")) {
            options.windows = true;
            options.min_window = (int32_t)number_of(v, "min_window");
        }
        tm_detector *detector = NULL;
        cr_assert_eq(tm_detector_create(&detector, tokenizer, &config, (const tm_wm_key *const *)keys, n_keys, &options,
                                        &err),
                     TM_OK, "%s: %s", name, err.message);
        tm_detection d;
        cr_assert_eq(tm_detect_text(detector, text, strlen(text), prompt, &d, &err), TM_OK, "%s: %s", name, err.message);
        cr_assert_eq(d.best_key, 0, "%s: the key of the vectors is key 0", name);
        cr_assert_eq(d.n_keys, n_keys);
        cr_assert_str_eq(d.statistic_name, string_of(v, "statistic_name"), "%s", name);
        cr_assert_eq(d.n_scored, (size_t)number_of(v, "n_scored"), "%s: scored %zu", name, d.n_scored);
        if (config.kind != TM_WM_EXP_EDIT) {
            cr_assert_eq(d.n_ignored_context, (size_t)number_of(v, "n_ignored_context"), "%s: %zu without context", name,
                         d.n_ignored_context);
            cr_assert_eq(d.n_ignored_repeated, (size_t)number_of(v, "n_ignored_repeated"), "%s: %zu repeated", name,
                         d.n_ignored_repeated);
        } else {
            cr_assert_eq(d.permutations_done, (uint64_t)number_of(v, "permutations_done"), "%s: %llu permutations run",
                         name, (unsigned long long)d.permutations_done);
        }
        assert_close(d.statistic, number_of(v, "statistic"), "statistic", name);
        assert_close(d.log_p, number_of(v, "log_p"), "ln p", name);
        assert_close(d.log_p_decision, number_of(v, "log_p_decision"), "decision ln p", name);
        assert_close(d.log_p_family, number_of(v, "log_p_family"), "family-wise ln p", name);
        cr_assert_eq(d.has_window, json_is_object(window), "%s: window", name);
        if (d.has_window) {
            cr_assert_eq(d.window.start_token, (size_t)number_of(window, "start_token"), "%s: window start %zu", name,
                         d.window.start_token);
            cr_assert_eq(d.window.end_token, (size_t)number_of(window, "end_token"), "%s: window end %zu", name,
                         d.window.end_token);
            cr_assert_eq(d.window.n_scored, (size_t)number_of(window, "n_scored"));
            cr_assert_eq(d.window.n_windows, (uint64_t)number_of(window, "n_windows"));
            assert_close(d.window.statistic, number_of(window, "statistic"), "window statistic", name);
            assert_close(d.window.z, number_of(window, "z"), "window z", name);
            assert_close(d.window.log_p, number_of(window, "log_p"), "window ln p", name);
            assert_close(d.window.log_p_corrected, number_of(window, "log_p_corrected"), "window corrected ln p", name);
        }
        if (config.kind == TM_WM_SYNTHID) {
            assert_close(d.weighted_score, number_of(v, "weighted_score"), "weighted mean", name);
            assert_close(d.weighted_log_p, number_of(v, "weighted_log_p"), "weighted ln p", name);
        }
        cr_assert_eq(d.detected, json_is_true(json_object_get(v, "detected")), "%s: decision", name);
        tm_detector_free(detector);
    }
    for (int k = 0; k < 5; k++) tm_wm_key_free(keys[k]);
    tm_tokenizer_free(tokenizer);
    json_decref(root);
}
