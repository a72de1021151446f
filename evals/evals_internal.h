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

/* The zero_shot kind's task file (evals/zeroshot_task.c): whether the root
 * mapping says `kind: zero_shot`, and its strict parse (t already holds
 * task.c's defaults; dir resolves relative paths). */
struct yaml_document_s;
struct yaml_node_s;
bool tm_eval_zeroshot_kind_of(struct yaml_document_s *doc, struct yaml_node_s *root);
tm_status tm_eval_zeroshot_parse(tm_eval_task *t, const char *path, const char *dir, struct yaml_document_s *doc,
                                 struct yaml_node_s *root, bool check_files, tm_error *err);

#endif
