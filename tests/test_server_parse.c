/* The server's request-body parsers (server_internal.h), which the handlers
 * and the fuzz harness tests/fuzz/fuzz_server_body.c share: what a body
 * becomes, and the OpenAI error (status, param, code) each kind of bad body
 * gets, without a socket. The end-to-end scripts (tests/server/) check the
 * same errors over HTTP. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../server/server_internal.h"
#include "fixtures.h"

static tm_tokenizer *tokenizer;

static void load_tokenizer(void) {
    char *path = tm_fixture("models/tok512.bin");
    tm_error err = {0};
    cr_assert_eq(tm_tokenizer_load(&tokenizer, path, &err), TM_OK, "%s", err.message);
    free(path);
}

static void free_tokenizer(void) { tm_tokenizer_free(tokenizer); }

static void expect_refused(const char *body, bool chat, int status, const char *param, const char *code) {
    tm_server_parse_context context = {tokenizer, false, TM_CHAT_CHATML, "stories", 64};
    tm_server_generation_request request;
    tm_server_request_error e = {0};
    cr_assert(!tm_server_parse_generation(&context, body, strlen(body), chat, &request, &e), "accepted %s", body);
    cr_assert_eq(e.status, status, "%s: status %d", body, e.status);
    cr_assert(param ? e.param && !strcmp(e.param, param) : !e.param, "%s: param %s", body, e.param ? e.param : "null");
    cr_assert(code ? e.code && !strcmp(e.code, code) : !e.code, "%s: code %s", body, e.code ? e.code : "null");
    cr_assert(e.message[0] != '\0');
    cr_assert_eq(request.n_prompts, 0); /* nothing left allocated */
}

Test(server_parse, completions_body_becomes_a_request, .init = load_tokenizer, .fini = free_tokenizer) {
    const char *body = "{\"model\": \"stories\", \"prompt\": [\"Once upon\", \"a time\"], \"n\": 3, \"max_tokens\": 7,"
                       " \"stop\": [\"\\n\", \"end\"], \"temperature\": 0.5, \"seed\": 9, \"logprobs\": 2}";
    tm_server_parse_context context = {tokenizer, false, TM_CHAT_CHATML, "stories", 64};
    tm_server_generation_request r;
    tm_server_request_error e = {0};
    cr_assert(tm_server_parse_generation(&context, body, strlen(body), false, &r, &e), "%s", e.message);
    cr_assert_eq(r.n_prompts, 2);
    cr_assert_eq(r.n, 3);
    cr_assert_eq(r.max_tokens, 7);
    cr_assert_eq(r.n_stops, 2);
    cr_assert_str_eq(r.stops[1], "end");
    cr_assert_eq(r.logprobs, 2);
    cr_assert(r.seed_given && r.sampling.seed == 9);
    cr_assert_float_eq(r.sampling.temperature, 0.5f, 1e-7);
    /* The prompt's ids are the tokenizer's own encoding of it. */
    int32_t *ids = NULL;
    size_t n = 0;
    tm_error err = {0};
    cr_assert_eq(tm_tokenizer_encode(tokenizer, "a time", 6, tm_tokenizer_adds_bos(tokenizer), &ids, &n, &err), TM_OK);
    cr_assert_eq(r.prompt_sizes[1], n);
    cr_assert(memcmp(r.prompts[1], ids, n * sizeof *ids) == 0);
    free(ids);
    tm_server_generation_request_free(&r);
    cr_assert_eq(r.n_prompts, 0);
}

Test(server_parse, bad_generation_bodies_get_openai_errors, .init = load_tokenizer, .fini = free_tokenizer) {
    expect_refused("{\"model\": \"stories\", \"prompt\": ", false, 400, NULL, "invalid_json");
    expect_refused("[\"not an object\"]", false, 400, NULL, "invalid_json");
    expect_refused("{\"prompt\": \"x\"}", false, 400, "model", "missing_required_parameter");
    expect_refused("{\"model\": \"other\", \"prompt\": \"x\"}", false, 404, "model", "model_not_found");
    expect_refused("{\"model\": \"stories\", \"prompt\": 7}", false, 400, "prompt", "invalid_type");
    expect_refused("{\"model\": \"stories\", \"prompt\": \"x\", \"temperature\": \"hot\"}", false, 400, "temperature",
                   "invalid_type");
    expect_refused("{\"model\": \"stories\", \"prompt\": \"x\", \"n\": 17}", false, 400, "n", "invalid_value");
    expect_refused("{\"model\": \"stories\", \"prompt\": [1, 99999]}", false, 400, "prompt", "invalid_value");
    expect_refused("{\"model\": \"stories\", \"prompt\": \"x\", \"echo\": true}", false, 400, "echo",
                   "unsupported_parameter");
    expect_refused("{\"model\": \"stories\", \"prompt\": \"x\", \"stop\": [\"a\", \"b\", \"c\", \"d\", \"e\"]}", false,
                   400, "stop", "invalid_type");
    /* Seeds are generate's, 0 .. 2^63 - 1, for every choice (choice k takes seed + k). */
    expect_refused("{\"model\": \"stories\", \"prompt\": \"x\", \"seed\": -1}", false, 400, "seed", "invalid_value");
    expect_refused("{\"model\": \"stories\", \"prompt\": \"x\", \"n\": 2, \"seed\": 9223372036854775807}", false,
                   400, "seed", "invalid_value");
    /* 64 positions: a longer prompt is refused before any job exists. */
    char body[2048];
    int n = snprintf(body, sizeof body, "{\"model\": \"stories\", \"prompt\": [");
    for (int i = 0; i < 64; i++) n += snprintf(body + n, sizeof body - (size_t)n, "%s1", i ? ", " : "");
    snprintf(body + n, sizeof body - (size_t)n, "]}");
    expect_refused(body, false, 400, "prompt", "context_length_exceeded");
    /* Chat without a template. */
    expect_refused("{\"model\": \"stories\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", true, 400,
                   "messages", "chat_template_missing");
}

Test(server_parse, detect_and_verify_bodies) {
    tm_server_detect_request d;
    tm_server_request_error e = {0};
    const char *body = "{\"text\": \"caf\\u00e9\", \"prompt\": null, \"tenant\": \"alice\"}";
    cr_assert(tm_server_parse_detect(body, strlen(body), &d, &e), "%s", e.message);
    cr_assert_eq(d.text_size, 5);
    cr_assert(!memcmp(d.text, "caf\xc3\xa9", 5));
    cr_assert_null(d.prompt);
    cr_assert_str_eq(d.tenant, "alice");
    tm_server_detect_request_free(&d);
    cr_assert(!tm_server_parse_detect("{\"prompt\": \"x\"}", 15, &d, &e));
    cr_assert(e.status == 400 && !strcmp(e.param, "text") && !strcmp(e.code, "missing_required_parameter"));
    cr_assert(!tm_server_parse_detect("{\"text\": \"x\", \"prompt\": 1}", 26, &d, &e));
    cr_assert(e.status == 400 && !strcmp(e.param, "prompt") && !strcmp(e.code, "invalid_type"));
    cr_assert(!tm_server_parse_detect("{\"text\": ", 9, &d, &e));
    cr_assert(e.status == 400 && !e.param && !strcmp(e.code, "invalid_json"));
    /* jansson refuses \u0000 (no JSON_ALLOW_NUL): a NUL never reaches the detector. */
    body = "{\"text\": \"a\\u0000b\"}";
    cr_assert(!tm_server_parse_detect(body, strlen(body), &d, &e));
    cr_assert(e.status == 400 && !strcmp(e.code, "invalid_json"));

    tm_server_verify_request v;
    body = "{\"text\": \"t\", \"manifest\": {\"b\": 1, \"a\": [true]}}";
    cr_assert(tm_server_parse_verify(body, strlen(body), &v, &e), "%s", e.message);
    cr_assert_str_eq(v.manifest, "{\"b\":1,\"a\":[true]}"); /* compact, in the order given */
    cr_assert_eq(v.manifest_size, strlen(v.manifest));
    tm_server_verify_request_free(&v);
    body = "{\"text\": \"t\", \"manifest\": \"{\\\"x\\\": 1}\"}";
    cr_assert(tm_server_parse_verify(body, strlen(body), &v, &e), "%s", e.message);
    cr_assert_str_eq(v.manifest, "{\"x\": 1}"); /* its JSON text, as given */
    cr_assert_eq(v.manifest_size, 8);
    tm_server_verify_request_free(&v);
    body = "{\"text\": \"t\", \"manifest\": null}";
    cr_assert(tm_server_parse_verify(body, strlen(body), &v, &e), "%s", e.message);
    cr_assert_null(v.manifest); /* the embedded one will be used */
    tm_server_verify_request_free(&v);
    cr_assert(!tm_server_parse_verify("{\"text\": \"x\", \"manifest\": 7}", 28, &v, &e));
    cr_assert(e.status == 400 && !strcmp(e.param, "manifest") && !strcmp(e.code, "invalid_type"));
    cr_assert(!tm_server_parse_verify("{\"text\": 7}", 11, &v, &e));
    cr_assert(e.status == 400 && !strcmp(e.param, "text") && !strcmp(e.code, "invalid_type"));
}

/* The largest seeds generate takes: 2^63 - 1 for one choice, 2^63 - 2 for two
 * (the second choice takes seed + 1). */
Test(server_parse, largest_seeds_are_generate_seeds, .init = load_tokenizer, .fini = free_tokenizer) {
    static const char *const bodies[] = {
        "{\"model\": \"stories\", \"prompt\": \"x\", \"seed\": 9223372036854775807}",
        "{\"model\": \"stories\", \"prompt\": \"x\", \"n\": 2, \"seed\": 9223372036854775806}",
        "{\"model\": \"stories\", \"prompt\": \"x\", \"seed\": 0}",
    };
    static const uint64_t seeds[] = {UINT64_C(9223372036854775807), UINT64_C(9223372036854775806), 0};
    tm_server_parse_context context = {tokenizer, false, TM_CHAT_CHATML, "stories", 64};
    for (size_t i = 0; i < 3; i++) {
        tm_server_generation_request r;
        tm_server_request_error e = {0};
        cr_assert(tm_server_parse_generation(&context, bodies[i], strlen(bodies[i]), false, &r, &e), "%s", e.message);
        cr_expect(r.seed_given && r.sampling.seed == seeds[i], "body %zu", i);
        tm_server_generation_request_free(&r);
    }
}
