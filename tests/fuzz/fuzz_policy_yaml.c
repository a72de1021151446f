/* libFuzzer harness: compliance policy YAML (reports/policy.c): the strict
 * parser, then every clause evaluated against a small fixed report document
 * (metric paths with `*` and `[key=value]` selections walking runs, schemes,
 * attacks and verifications). Seeds: tests/fuzz/corpus/policy_yaml
 * (configs/policies). */
#include "fuzz_common.h"
#include "reports_internal.h"
#include "tracemark/reports.h"

#include <jansson.h>

/* Shaped like tm_report_build's output where the shipped policies look. */
static const char REPORT[] =
    "{\"schema\": \"tracemark.report\", \"version\": 1,"
    " \"runs\": [{\"kind\": \"watermark\", \"name\": \"smoke\", \"results\": {\"schemes\": {"
    "   \"kgw-lefthash\": {\"attacks\": [{\"attack\": \"none\", \"auc\": 0.99, \"at_fpr\": [{\"fpr\": 0.01, "
    "\"tpr\": 0.93, \"empirical_fpr\": 0.008}]}, {\"attack\": \"delete\", \"strength\": 0.1, \"auc\": 0.9, "
    "\"at_fpr\": [{\"fpr\": 0.01, \"tpr\": 0.6, \"empirical_fpr\": null}]}], \"tokens_to_detect\": {\"median\": 48}},"
    "   \"unigram\": {\"attacks\": [{\"attack\": \"none\", \"auc\": 1, \"at_fpr\": []}], \"tokens_to_detect\": {}}}}},"
    "  {\"kind\": \"truthfulqa_mc\", \"results\": {\"mc1\": 0.21, \"mc2\": [0.3, \"x\", true]}}],"
    " \"verifications\": [{\"verified\": true}, {\"verified\": false}, {}],"
    " \"benchmarks\": {\"quick\": {\"tokens_per_second\": 1e3}}, \"documentation\": {\"model\": \"stories260K\"}}";

static json_t *report;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!report) {
        json_error_t jerr;
        if (!(report = json_loads(REPORT, 0, &jerr))) abort();
    }
    tm_error err = {0};
    tm_report_policy *policy = NULL;
    if (tm_report_policy_parse(&policy, "fuzz-policy.yaml", (const char *)data, size, &err) != TM_OK) return 0;
    if (tm_report_policy_clause_count(policy) > TM_REPORT_MAX_CLAUSES || !tm_report_policy_name(policy)) abort();
    (void)policy_title(policy);
    (void)policy_sha256(policy);
    json_t *verdict = policy_evaluate(policy, report);
    json_decref(verdict);
    tm_report_policy_free(policy);
    return 0;
}
