/* What the files of evals/ share and nobody else may use: seed mixing, JSON
 * numbers that survive NaN, the human null texts, and the watermark task's
 * aggregation. Never include this outside evals/. */
#ifndef TRACEMARK_EVALS_INTERNAL_H
#define TRACEMARK_EVALS_INTERNAL_H

#include "tracemark/evals.h"

#include <jansson.h>

/* SplitMix64 finaliser of a ^ (b * golden): independent streams from one seed. */
uint64_t tm_eval_mix(uint64_t a, uint64_t b);
/* FNV-1a of a name, so that an attack's seed depends on its name, not its place in the list. */
uint64_t tm_eval_name_hash(const char *name);
/* A JSON number, or null for NaN; infinities clamp to +-1e300 (jansson refuses non-finite reals). */
json_t *tm_eval_json_number(double x);
/* A JSON number back (null -> NaN). */
double tm_eval_json_get_number(const json_t *value);
/* Compact, sorted-key JSON text of value (which it releases); NULL when out of memory. */
char *tm_eval_json_text(json_t *value);

/* The human texts of the null set, in the task's fixed order: TruthfulQA
 * correct answers, HaluEval knowledge passages, HaluEval ChatGPT responses
 * (the sources the task enables), each at least 5 words, then shuffled by
 * the task seed. Errors name the data file and line. */
tm_status tm_eval_human_texts_load(const tm_eval_task *task, char ***texts, size_t *n, tm_error *err);
void tm_eval_strings_free(char **texts, size_t n);

tm_status tm_eval_watermark_aggregate(const tm_eval_task *task, const tm_eval_record *records, size_t n_records,
                                      char **results, tm_error *err);

/* Generation shared by the task kinds (evals/generation.c). The sampler
 * chain of the task's sampling settings with seed: plain when config is
 * NULL, else with the scheme (bound to key) plugged in; *scheme_out is freed
 * by the caller after the chain. NULL with err filled on failure. */
tm_sampler_chain *tm_eval_sampler_chain(const tm_eval_task *task, const tm_wm_config *config, const tm_wm_key *key,
                                        uint64_t seed, tm_wm_scheme **scheme_out, tm_error *err);
/* The paraphrase attack by span regeneration: after prompt_ids, each block
 * of TM_EVAL_SPAN_TOKENS of ids[0..*n) is re-drawn (with probability
 * strength, from seed) by the plain chain given everything before it, the
 * other blocks kept; ids are edited in place, *n shrinks to what fits in the
 * context, *edits counts the tokens that changed. One forward pass. */
enum { TM_EVAL_SPAN_TOKENS = 8 };
tm_status tm_eval_regenerate_spans(const tm_eval_task *task, tm_context *context, const tm_tokenizer *tokenizer,
                                   const int32_t *prompt_ids, size_t n_prompt, int32_t *ids, size_t *n,
                                   double strength, uint64_t seed, size_t *edits, tm_error *err);

/* Task files (evals/task_yaml.c): the strict YAML field readers that every
 * kind's parser shares. Each refuses what the schema refuses with
 * "FILE:LINE: FIELD: what is wrong" in err and TM_ERR_FORMAT; relative paths
 * resolve against dir, the task file's folder. */
struct yaml_document_s;
struct yaml_node_s;
typedef struct {
    const char *path;
    char dir[TM_EVAL_PATH_MAX];
    struct yaml_document_s *doc;
    tm_error *err;
} tm_eval_yaml;
tm_status tm_eval_yaml_fail(tm_eval_yaml *p, const struct yaml_node_s *node, const char *field, const char *format,
                            ...) __attribute__((format(printf, 4, 5)));
unsigned long tm_eval_yaml_line(const struct yaml_node_s *node);
const char *tm_eval_yaml_kind(const struct yaml_node_s *node); /* "a scalar", "a sequence", ... */
bool tm_eval_yaml_plain(const struct yaml_node_s *node);       /* an unquoted scalar */
tm_status tm_eval_yaml_scalar(tm_eval_yaml *p, const struct yaml_node_s *node, const char *field, char *out,
                              size_t capacity);
tm_status tm_eval_yaml_integer(tm_eval_yaml *p, const struct yaml_node_s *node, const char *field, long long min,
                               long long max, long long *out);
tm_status tm_eval_yaml_unsigned64(tm_eval_yaml *p, const struct yaml_node_s *node, const char *field, uint64_t *out);
tm_status tm_eval_yaml_number(tm_eval_yaml *p, const struct yaml_node_s *node, const char *field, double min,
                              double max, bool min_open, double *out);
tm_status tm_eval_yaml_boolean(tm_eval_yaml *p, const struct yaml_node_s *node, const char *field, bool *out);
tm_status tm_eval_yaml_sequence(tm_eval_yaml *p, const struct yaml_node_s *node, const char *field, size_t min,
                                size_t max);
size_t tm_eval_yaml_size(const struct yaml_node_s *sequence);
struct yaml_node_s *tm_eval_yaml_item(tm_eval_yaml *p, const struct yaml_node_s *sequence, size_t i);
tm_status tm_eval_yaml_resolve(tm_eval_yaml *p, const struct yaml_node_s *node, const char *field, char *out);
tm_status tm_eval_yaml_must_exist(tm_eval_yaml *p, const struct yaml_node_s *node, const char *field,
                                  const char *path);
/* A `schemes:` sequence (already checked as one): each path resolved, loaded
 * into t->schemes and named after its file (less .yaml) in t->scheme_names;
 * a name listed twice is refused. */
tm_status tm_eval_yaml_schemes(tm_eval_yaml *p, tm_eval_task *t, const struct yaml_node_s *sequence);

/* The zero_shot kind's task file (evals/zeroshot_task.c): whether the root
 * mapping says `kind: zero_shot`, and its strict parse (t already holds
 * task.c's defaults). */
bool tm_eval_zeroshot_kind_of(struct yaml_document_s *doc, struct yaml_node_s *root);
tm_status tm_eval_zeroshot_parse(tm_eval_yaml *p, tm_eval_task *t, struct yaml_node_s *root, bool check_files);

#endif
