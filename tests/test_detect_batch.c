/* Tests of the threaded batch detector (detect/detect_many.c): on 1, 3 and
 * every core, each text's element of the batch equals tm_detection_json of
 * tm_detect_text on that text alone, in input order, with prompts where given;
 * a text that fails (invalid UTF-8, empty) gets its own error element with
 * the status tm_detect_text returns, and the texts after it are still
 * detected; the verdicts can be taken in any run lengths; freeing a batch
 * half-way through stops its threads without a leak (ASan checks); bad
 * arguments are refused. The texts are built from a fixed word list and a
 * fixed LCG, so each run sees the same inputs. */
#include "fixtures.h"
#include "tracemark/detect.h"
#include "watermark_testing.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH_KEYS "tracemark-test-detect-batch"

enum { N_TEXTS = 300 };

typedef struct {
    tm_tokenizer *tokenizer;
    tm_wm_key *key;
    tm_detector *detector;
    char *texts[N_TEXTS];
    size_t sizes[N_TEXTS];
    const char *prompts[N_TEXTS];
} fixture;

static const char *const WORDS[] = {"once", "upon", "a", "time", "there", "was", "little", "girl", "named", "lily",
                                    "she", "liked", "to", "play", "in", "the", "park", "with", "her", "dog", "sun"};

/* Text i: a few words; every 37th carries an invalid byte, every 53rd is
 * empty, every 5th has a prompt. */
static void make_texts(fixture *f) {
    uint32_t state = 12345;
    for (size_t i = 0; i < N_TEXTS; i++) {
        char text[512] = "";
        size_t words = 5 + i % 40;
        for (size_t w = 0; w < words; w++) {
            state = state * 1664525u + 1013904223u;
            strcat(text, w ? " " : "");
            strcat(text, WORDS[(state >> 16) % (sizeof WORDS / sizeof WORDS[0])]);
        }
        if (i % 37 == 36) strcat(text, " \xff bad");
        if (i % 53 == 52) text[0] = '\0';
        f->texts[i] = strdup(text);
        cr_assert_not_null(f->texts[i]);
        f->sizes[i] = strlen(text);
        f->prompts[i] = i % 5 == 0 ? "Once upon a time" : NULL;
    }
}

static void setup(fixture *f) {
    char *path = tm_fixture("models/tok512.bin");
    tm_error err = {0};
    cr_assert_eq(tm_tokenizer_load(&f->tokenizer, path, &err), TM_OK, "%s", err.message);
    free(path);
    tm_wm_config config = wm_test_scheme_config("kgw-selfhash");
    f->key = wm_test_labelled_key(BATCH_KEYS, 0);
    tm_detect_options options;
    tm_detect_options_default(&options);
    cr_assert_eq(tm_detector_create(&f->detector, f->tokenizer, &config, (const tm_wm_key *const *)&f->key, 1, &options,
                                    &err),
                 TM_OK, "%s", err.message);
    make_texts(f);
}

static void teardown(fixture *f) {
    for (size_t i = 0; i < N_TEXTS; i++) free(f->texts[i]);
    tm_detector_free(f->detector);
    tm_wm_key_free(f->key);
    tm_tokenizer_free(f->tokenizer);
}

/* What the batch must say of text i: the single detection's JSON, or the
 * single detection's failure. */
static void check_element(const fixture *f, size_t i, const json_t *element, double fpr) {
    tm_detection detection;
    tm_error err = {0};
    tm_status status = tm_detect_text(f->detector, f->texts[i], f->sizes[i], f->prompts[i], &detection, &err);
    if (status == TM_OK) {
        json_t *expected = tm_detection_json(&detection, fpr);
        cr_assert(json_equal(element, expected), "text %zu: the batch's verdict differs from tm_detect_text's", i);
        json_decref(expected);
    } else {
        cr_assert_str_eq(json_string_value(json_object_get(element, "error")), err.message, "text %zu", i);
        cr_assert_eq(json_integer_value(json_object_get(element, "code")), status, "text %zu", i);
        cr_assert_str_eq(json_string_value(json_object_get(element, "status")), tm_status_name(status));
    }
}

/* Runs the whole batch, taking the verdicts `run` at a time, and checks
 * every element; returns how many failed. */
static size_t check_batch(const fixture *f, size_t threads, size_t run, double fpr) {
    tm_detect_batch *batch = NULL;
    tm_error err = {0};
    cr_assert_eq(tm_detect_batch_start(&batch, f->detector, N_TEXTS, (const char *const *)f->texts, f->sizes,
                                       f->prompts, fpr, threads, &err),
                 TM_OK, "%s", err.message);
    size_t index = 0, failed = 0;
    while (tm_detect_batch_remaining(batch) > 0) {
        char *text = NULL;
        cr_assert_eq(tm_detect_batch_next(batch, run, &text, &err), TM_OK, "%s", err.message);
        json_error_t error;
        json_t *array = json_loads(text, 0, &error);
        cr_assert(json_is_array(array), "not a JSON array: %s", error.text);
        size_t expected = N_TEXTS - index < run ? N_TEXTS - index : run;
        cr_assert_eq(json_array_size(array), expected);
        for (size_t k = 0; k < expected; k++, index++) {
            json_t *element = json_array_get(array, k);
            failed += json_object_get(element, "error") != NULL;
            check_element(f, index, element, fpr);
        }
        json_decref(array);
        tm_detection_json_free(text);
    }
    cr_assert_eq(index, N_TEXTS);
    tm_detect_batch_free(batch);
    return failed;
}

Test(detect_batch, equals_single_detection_on_any_threads_and_runs, .timeout = 120) {
    fixture f = {0};
    setup(&f);
    size_t expected_failures = 0;
    for (size_t i = 0; i < N_TEXTS; i++) expected_failures += i % 37 == 36 || i % 53 == 52;
    cr_assert_eq(check_batch(&f, 1, N_TEXTS, 1e-3), expected_failures);
    cr_assert_eq(check_batch(&f, 3, 7, 1e-3), expected_failures);
    cr_assert_eq(check_batch(&f, 0, 100, 0.05), expected_failures);
    teardown(&f);
}

Test(detect_batch, free_half_way_stops_the_threads) {
    fixture f = {0};
    setup(&f);
    tm_detect_batch *batch = NULL;
    tm_error err = {0};
    cr_assert_eq(tm_detect_batch_start(&batch, f.detector, N_TEXTS, (const char *const *)f.texts, f.sizes, NULL, 1e-3,
                                       2, &err),
                 TM_OK, "%s", err.message);
    char *text = NULL;
    cr_assert_eq(tm_detect_batch_next(batch, 20, &text, &err), TM_OK, "%s", err.message);
    cr_assert_eq(tm_detect_batch_remaining(batch), N_TEXTS - 20);
    tm_detection_json_free(text);
    tm_detect_batch_free(batch); /* the rest never taken */
    /* And one freed before anything was taken. */
    cr_assert_eq(tm_detect_batch_start(&batch, f.detector, N_TEXTS, (const char *const *)f.texts, f.sizes, NULL, 1e-3,
                                       2, &err),
                 TM_OK);
    tm_detect_batch_free(batch);
    teardown(&f);
}

Test(detect_batch, empty_batch_gives_an_empty_array) {
    fixture f = {0};
    setup(&f);
    tm_detect_batch *batch = NULL;
    tm_error err = {0};
    cr_assert_eq(tm_detect_batch_start(&batch, f.detector, 0, NULL, NULL, NULL, 1e-3, 0, &err), TM_OK, "%s",
                 err.message);
    cr_assert_eq(tm_detect_batch_remaining(batch), 0);
    char *text = NULL;
    cr_assert_eq(tm_detect_batch_next(batch, 10, &text, &err), TM_OK);
    cr_assert_str_eq(text, "[]");
    tm_detection_json_free(text);
    tm_detect_batch_free(batch);
    teardown(&f);
}

Test(detect_batch, bad_arguments_are_refused) {
    fixture f = {0};
    setup(&f);
    tm_detect_batch *batch = (tm_detect_batch *)&f; /* must be reset to NULL on failure */
    tm_error err = {0};
    const char *texts[] = {"fine", NULL};
    size_t sizes[] = {4, 3};
    cr_assert_eq(tm_detect_batch_start(&batch, f.detector, 1, texts, sizes, NULL, 0.0, 1, &err), TM_ERR_ARGUMENT);
    cr_assert(strstr(err.message, "fpr"), "%s", err.message);
    cr_assert_null(batch);
    cr_assert_eq(tm_detect_batch_start(&batch, f.detector, 2, texts, sizes, NULL, 1e-3, 1, &err), TM_ERR_ARGUMENT);
    cr_assert(strstr(err.message, "text 1"), "%s", err.message);
    cr_assert_eq(tm_detect_batch_start(&batch, NULL, 1, texts, sizes, NULL, 1e-3, 1, &err), TM_ERR_ARGUMENT);
    cr_assert_eq(tm_detect_batch_start(&batch, f.detector, 1, NULL, sizes, NULL, 1e-3, 1, &err), TM_ERR_ARGUMENT);
    teardown(&f);
}
