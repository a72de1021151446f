/* The watermark task's shortcuts give the values the long way gives. The
 * task normalises and tokenises each text once for all detectors, reuses a
 * detection of a token sequence already scored in the sample, and takes the
 * perplexity from the generation's own logits; here every recorded number
 * is recomputed the long way, outside the evaluation, and must be equal bit
 * for bit: tm_quality_perplexity on the prompt and the recorded tokens,
 * tm_detect_text on the generated and on a regenerated attacked text (its
 * SHA-256 must match the record's), the prefixes of the attacked text as a
 * detector tokenises it, and each attack's TPR against length in
 * results.json counted by hand from the records. EXP-edit (a permutation
 * test) is among the schemes; its windowed copy-paste variant is not
 * scored (the detector refuses windows for it) and its cell says n = 0.
 * A small task on stories260K keeps this quick under the sanitizers. */
#include "fixtures.h"
#include "tracemark/detect.h"
#include "tracemark/evals.h"
#include "tracemark/generator.h"
#include "tracemark/model.h"
#include "tracemark/tokenizer.h"
#include "tracemark/watermark.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCHEMES TRACEMARK_SOURCE_DIR "/configs/schemes/"
#define TASK_SEED 77ULL

static const char *const scheme_names[] = {"kgw-lefthash", "synthid", "exp-edit"};
enum { N_SCHEMES = 3 };
static const int lengths[] = {10, 20, 40};
enum { N_LENGTHS = 3 };

/* docs/evals.md: mix(a, b) is the SplitMix64 finaliser of a ^ (b * golden). */
static uint64_t mix(uint64_t a, uint64_t b) {
    uint64_t z = a ^ (b * 0x9E3779B97F4A7C15ULL) ^ 0xD1B54A32D192ED03ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t fnv1a(const char *name) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *name; name++) h = (h ^ (uint8_t)*name) * 0x100000001b3ULL;
    return h;
}

static void sha256_hex(const char *text, char hex[65]) {
    uint8_t digest[32];
    SHA256((const unsigned char *)text, strlen(text), digest);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", digest[i]);
}

/* -ln p as the evaluation records it (0: nothing scored or refused). */
static double detect_text(const tm_detector *d, const char *text) {
    tm_detection out;
    tm_error err = {0};
    if (!text[0]) return 0;
    tm_status status = tm_detect_text(d, text, strlen(text), NULL, &out, &err);
    if (status == TM_ERR_ARGUMENT) return 0;
    cr_assert_eq(status, TM_OK, "%s", err.message);
    return out.n_scored ? out.log_p : 0;
}

static double number(const json_t *v) { return json_is_number(v) ? json_number_value(v) : NAN; }

Test(evals_scoring, shortcuts_equal_the_long_way, .timeout = 600) {
    char *dir = tm_test_scratch_dir();
    char *model_path = tm_fixture("models/stories260K.bin"), *tok_path = tm_fixture("models/tok512.bin");
    char *data = tm_fixture("data");
    char task_text[8192];
    snprintf(task_text, sizeof task_text,
             "kind: watermark\nname: scoring\nseed: %llu\n"
             "schemes: [" SCHEMES "kgw-lefthash.yaml, " SCHEMES "synthid.yaml, " SCHEMES "exp-edit.yaml]\n"
             "samples: 2\nmax_tokens: 40\nlengths: [10, 20, 40]\nmodel: %s\ntokenizer: %s\n"
             "null: {generated: 2, human: 2, data_dir: %s, sources: [truthfulqa]}\n"
             "attacks:\n"
             "  - {attack: delete, strengths: [0.2]}\n"
             "  - {attack: zero-width, strengths: [0.3]}\n"
             "  - {attack: copy-paste, strengths: [0.5], window: true}\n"
             "metrics: {bootstrap: 50, prefix_step: 5}\ndetect: {permutations: 999}\n",
             (unsigned long long)TASK_SEED, model_path, tok_path, data);
    char *task = tm_test_path(dir, "task.yaml"), *out = tm_test_path(dir, "run");
    cr_assert_eq(tm_test_write_file(task, task_text, strlen(task_text)), 0);
    tm_test_cli_result r = tm_test_cli("eval '%s' --out '%s' --threads 2", task, out);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);

    /* The long way: the model, the keys and the detectors built from scratch. */
    tm_error err = {0};
    tm_model *model = NULL;
    tm_tokenizer *tok = NULL;
    tm_context *context = NULL;
    cr_assert_eq(tm_model_load(&model, model_path, &err), TM_OK, "%s", err.message);
    cr_assert_eq(tm_model_tokenizer(&tok, model, tok_path, &err), TM_OK, "%s", err.message);
    cr_assert_eq(tm_context_create(&context, model, 0, 1, &err), TM_OK, "%s", err.message);
    char label[96];
    int n_label = snprintf(label, sizeof label, "tracemark-eval-key-v1:%llu:0", (unsigned long long)TASK_SEED);
    uint8_t secret[32];
    SHA256((const unsigned char *)label, (size_t)n_label, secret);
    tm_wm_key *key = NULL;
    cr_assert_eq(tm_wm_key_from_secret(&key, secret, &err), TM_OK, "%s", err.message);
    tm_detect_options options;
    tm_detect_options_default(&options);
    options.permutations = 999;
    options.permutation_seed = mix(TASK_SEED, 0x7065726dULL);
    tm_detector *detectors[N_SCHEMES];
    for (int i = 0; i < N_SCHEMES; i++) {
        char path[512];
        snprintf(path, sizeof path, SCHEMES "%s.yaml", scheme_names[i]);
        tm_wm_config config;
        cr_assert_eq(tm_wm_config_load(&config, path, &err), TM_OK, "%s", err.message);
        const tm_wm_key *keys[1] = {key};
        cr_assert_eq(tm_detector_create(&detectors[i], tok, &config, keys, 1, &options, &err), TM_OK, "%s",
                     err.message);
    }
    tm_normalize_options normalize;
    tm_normalize_options_default(&normalize);

    size_t sz;
    char *path = tm_test_path(out, "samples.jsonl");
    char *lines = tm_test_read_file(path, &sz);
    cr_assert_not_null(lines);
    free(path);
    /* Hand counts of the delete attack's TPR against length, per scheme. */
    size_t reached[N_SCHEMES][N_LENGTHS] = {{0}}, detected[N_SCHEMES][N_LENGTHS] = {{0}};
    size_t n_watermarked = 0, n_null = 0, n_ppl = 0, n_prefix_checked = 0;
    for (char *line = strtok(lines, "\n"); line; line = strtok(NULL, "\n")) {
        json_error_t jerr;
        json_t *sample = json_loads(line, 0, &jerr);
        cr_assert_not_null(sample, "%s", jerr.text);
        json_t *input = json_object_get(sample, "doc"), *output = json_object_get(sample, "output");
        json_t *scores = json_object_get(sample, "scores");
        const char *source = json_string_value(json_object_get(input, "source"));
        const char *text = strcmp(source, "human") ? json_string_value(json_object_get(output, "text"))
                                                   : json_string_value(json_object_get(input, "document"));
        cr_assert_not_null(text);
        if (strcmp(source, "human")) {
            /* Perplexity: tm_quality_perplexity on the prompt and the recorded tokens, bit for bit. */
            const char *prompt = json_string_value(json_object_get(input, "prompt"));
            int32_t *prompt_ids = NULL;
            size_t n_prompt = 0;
            cr_assert_eq(tm_tokenizer_encode(tok, prompt, strlen(prompt), true, &prompt_ids, &n_prompt, &err), TM_OK);
            json_t *ids = json_object_get(output, "ids");
            size_t n = n_prompt + json_array_size(ids);
            int32_t *all = malloc((n + 1) * sizeof *all);
            memcpy(all, prompt_ids, n_prompt * sizeof *all);
            for (size_t i = 0; i < json_array_size(ids); i++) all[n_prompt + i] = (int32_t)json_integer_value(json_array_get(ids, i));
            double ppl = NAN;
            cr_assert_eq(tm_quality_perplexity(context, tm_tokenizer_vocab_size(tok), all, n, n_prompt, &ppl, &err), TM_OK);
            double recorded = number(json_object_get(json_object_get(scores, "quality"), "perplexity"));
            cr_assert(ppl == recorded, "perplexity %.17g, recorded %.17g", ppl, recorded);
            n_ppl++;
            free(all), free(prompt_ids);
        }
        json_t *log_p = json_object_get(scores, "log_p");
        if (!strcmp(source, "watermarked")) {
            const char *scheme = json_string_value(json_object_get(input, "scheme"));
            int si = -1;
            for (int i = 0; i < N_SCHEMES; i++)
                if (!strcmp(scheme, scheme_names[i])) si = i;
            cr_assert_geq(si, 0);
            const tm_detector *d = detectors[si];
            double none = number(json_object_get(log_p, "none"));
            cr_assert(detect_text(d, text) == none, "%s: log p %.17g", scheme, none);
            /* Zero-width characters are what the normaliser removes: the same
             * tokens, hence the same detections, whole and by prefix. */
            cr_assert(number(json_object_get(log_p, "zero-width@0.3")) == none);
            json_t *attacked = json_object_get(scores, "prefix_log_p_attacked");
            cr_assert(json_equal(json_object_get(attacked, "zero-width@0.3"), json_object_get(scores, "prefix_log_p")));
            /* The windowed copy-paste variant: scored by window detectors, never for EXP-edit. */
            cr_assert_eq(json_object_get(log_p, "copy-paste+window@0.5") == NULL, si == 2);
            cr_assert_null(json_object_get(attacked, "copy-paste+window@0.5"));
            /* The delete attack regenerated from the recorded seed: the same bytes, the same p. */
            uint64_t sample_seed = strtoull(json_string_value(json_object_get(input, "seed")), NULL, 10);
            tm_attack_params params = {.kind = TM_ATTACK_DELETE, .strength = 0.2,
                                       .seed = mix(sample_seed, fnv1a("delete@0.2"))};
            char *deleted = NULL;
            size_t deleted_size = 0;
            cr_assert_eq(tm_attack_text(text, strlen(text), &params, &deleted, &deleted_size, NULL, NULL, &err), TM_OK);
            char hex[65];
            sha256_hex(deleted, hex);
            json_t *info = json_object_get(json_object_get(output, "attacked"), "delete@0.2");
            cr_assert_str_eq(hex, json_string_value(json_object_get(info, "sha256")));
            cr_assert(detect_text(d, deleted) == number(json_object_get(log_p, "delete@0.2")));
            /* Its prefixes as a detector reads the text: normalised, tokenised, the first L tokens. */
            char *normalized = NULL;
            size_t normalized_size = 0;
            int32_t *ids = NULL;
            size_t n_ids = 0;
            cr_assert_eq(tm_text_normalize(deleted, deleted_size, &normalize, &normalized, &normalized_size, NULL, &err), TM_OK);
            cr_assert_eq(tm_tokenizer_encode(tok, normalized, normalized_size, false, &ids, &n_ids, &err), TM_OK);
            json_t *prefix = json_object_get(attacked, "delete@0.2");
            cr_assert_eq(json_array_size(prefix), N_LENGTHS);
            for (int k = 0; k < N_LENGTHS; k++) {
                json_t *v = json_array_get(prefix, (size_t)k);
                if ((size_t)lengths[k] > n_ids) {
                    cr_assert(json_is_null(v), "%s: length %d of %zu tokens", scheme, lengths[k], n_ids);
                    continue;
                }
                tm_detection det;
                cr_assert_eq(tm_detect_tokens(d, 0, ids, (size_t)lengths[k], 0, &det, &err), TM_OK);
                double expect = det.n_scored ? det.log_p : 0;
                cr_assert(number(v) == expect, "%s: prefix %d: %.17g, recorded %.17g", scheme, lengths[k], expect,
                          number(v));
                reached[si][k]++;
                detected[si][k] += expect <= log(1e-3);
                n_prefix_checked++;
            }
            free(normalized), free(ids), free(deleted);
            n_watermarked++;
        } else {
            /* A null text: every scheme's detector, unattacked. */
            for (int i = 0; i < N_SCHEMES; i++)
                cr_assert(detect_text(detectors[i], text) == number(json_object_get(json_object_get(log_p, scheme_names[i]), "none")),
                          "null %s: %s", source, scheme_names[i]);
            n_null++;
        }
        json_decref(sample);
    }
    cr_assert_eq(n_watermarked, 6);
    cr_assert_eq(n_null, 4);
    cr_assert_eq(n_ppl, 8);
    cr_assert_gt(n_prefix_checked, 6);

    /* results.json: the delete attack's TPR against length is the hand count. */
    path = tm_test_path(out, "results.json");
    char *results_text = tm_test_read_file(path, &sz);
    free(path);
    json_error_t jerr;
    json_t *root = json_loads(results_text, 0, &jerr);
    cr_assert_not_null(root, "%s", jerr.text);
    json_t *schemes = json_object_get(json_object_get(root, "results"), "schemes");
    for (int i = 0; i < N_SCHEMES; i++) {
        json_t *cells = json_object_get(json_object_get(schemes, scheme_names[i]), "attacks");
        size_t index;
        json_t *cell;
        bool seen_delete = false;
        json_array_foreach(cells, index, cell) {
            const char *attack = json_string_value(json_object_get(cell, "attack"));
            if (!strcmp(attack, "copy-paste+window@0.5")) {
                cr_assert_null(json_object_get(cell, "tpr_by_length"));
                if (i == 2) cr_assert_eq(json_integer_value(json_object_get(cell, "n_positive")), 0);
            }
            if (strcmp(attack, "delete@0.2")) continue;
            seen_delete = true;
            json_t *by_length = json_object_get(cell, "tpr_by_length");
            cr_assert_eq(json_array_size(by_length), N_LENGTHS);
            for (int k = 0; k < N_LENGTHS; k++) {
                json_t *row = json_array_get(by_length, (size_t)k);
                cr_assert_eq(json_integer_value(json_object_get(row, "length")), lengths[k]);
                cr_assert_eq((size_t)json_integer_value(json_object_get(row, "n")), reached[i][k]);
                double tpr = number(json_object_get(json_object_get(row, "tpr"), "value"));
                if (reached[i][k] == 0) cr_assert(isnan(tpr));
                else cr_assert_float_eq(tpr, (double)detected[i][k] / (double)reached[i][k], 1e-12);
            }
        }
        cr_assert(seen_delete);
    }
    json_decref(root);
    free(results_text);
    for (int i = 0; i < N_SCHEMES; i++) tm_detector_free(detectors[i]);
    tm_wm_key_free(key);
    tm_context_free(context);
    tm_tokenizer_free(tok);
    tm_model_free(model);
    free(lines), free(task), free(out), free(dir), free(model_path), free(tok_path), free(data);
}
