/* A detection as JSON: the one encoding of a verdict that `tracemark detect
 * --json` prints, `--jsonl` writes per line, and the bindings and other rooms
 * hand on, so that every face of the detector reports the same fields with
 * the same values. It only reads the tm_detection; it never scores. */
#include "tracemark/detect.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>

static json_t *number_or_null(double x) { return isfinite(x) ? json_real(x) : json_null(); }

json_t *tm_detection_json(const tm_detection *d, double fpr) {
    json_t *root = json_pack("{s:b, s:s, s:s, s:s, s:s, s:{s:I, s:I, s:I, s:I, s:I}, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:f}",
                             "detected", d->detected, "scheme", tm_wm_kind_name(d->kind), "parameters", d->parameters,
                             "key_id", d->key_id, "normalization", d->normalization, "tokens", "total",
                             (json_int_t)d->n_tokens, "scored", (json_int_t)d->n_scored, "ignored_context",
                             (json_int_t)d->n_ignored_context, "ignored_repeated", (json_int_t)d->n_ignored_repeated,
                             "prompt", (json_int_t)d->n_prompt, "statistic_name", d->statistic_name ? d->statistic_name : "",
                             "statistic", number_or_null(d->statistic), "expected", number_or_null(d->expected), "z",
                             number_or_null(d->z), "p_value", json_real(d->p), "log_p_value", number_or_null(d->log_p),
                             "p_normal_approximation", number_or_null(d->p_normal), "p_decision",
                             json_real(tm_stat_p_from_log(d->n_keys > 1 ? d->log_p_family : d->log_p_decision)), "fpr", fpr);
    if (!root) return NULL;
    if (d->p_resolution > 0) {
        json_object_set_new(root, "p_resolution", json_real(d->p_resolution));
        json_object_set_new(root, "p_at_floor", json_boolean(d->p_at_floor));
        json_object_set_new(root, "permutations_done", json_integer((json_int_t)d->permutations_done));
        json_object_set_new(root, "p_sequential", json_boolean(d->p_sequential));
    }
    if (isfinite(d->weighted_score)) {
        json_object_set_new(root, "weighted_mean_g", json_real(d->weighted_score));
        json_object_set_new(root, "weighted_p_value", json_real(tm_stat_p_from_log(d->weighted_log_p)));
    }
    if (d->n_keys > 1) {
        json_t *keys = json_pack("{s:I, s:I, s:f}", "tested", (json_int_t)d->n_keys, "best_index",
                                 (json_int_t)d->best_key, "family_p_value", tm_stat_p_from_log(d->log_p_family));
        if (keys && isfinite(d->weighted_log_p_family))
            json_object_set_new(keys, "weighted_family_p_value", json_real(tm_stat_p_from_log(d->weighted_log_p_family)));
        json_object_set_new(root, "keys", keys);
    }
    if (d->has_window) {
        const tm_detect_window *w = &d->window;
        json_object_set_new(root, "window",
                            json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:f, s:f, s:I}", "start_token",
                                      (json_int_t)w->start_token, "end_token", (json_int_t)w->end_token, "start_char",
                                      (json_int_t)w->start_char, "end_char", (json_int_t)w->end_char, "start_byte",
                                      (json_int_t)w->start_byte, "end_byte", (json_int_t)w->end_byte, "scored",
                                      (json_int_t)w->n_scored, "statistic", number_or_null(w->statistic), "z",
                                      number_or_null(w->z), "p_value", tm_stat_p_from_log(w->log_p),
                                      "p_value_corrected", tm_stat_p_from_log(w->log_p_corrected), "windows_examined",
                                      (json_int_t)w->n_windows));
    }
    return root;
}

char *tm_detection_json_text(const tm_detection *detection, double fpr) {
    json_t *root = tm_detection_json(detection, fpr);
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return text;
}

void tm_detection_json_free(char *text) { free(text); }
