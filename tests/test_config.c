/* Tests of scheme configurations (watermark/config.c): every shipped file in
 * configs/schemes loads and describes exactly as docs/watermark-spec.md
 * says (the description is the HKDF info, so a change here silently breaks
 * old watermarks), the papers' defaults, range checks naming the field, and
 * every kind of bad YAML giving "file:line: field: what" without crashing. */
#include <criterion/criterion.h>

#include "fixtures.h"
#include "tracemark/watermark.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- shipped files -------------------------------------------------------------- */

static const struct {
    const char *file, *description;
} shipped[] = {
    {"kgw-lefthash.yaml", "kgw;seeding=lefthash;h=1;gamma=0.25;delta=2"},
    {"kgw-selfhash.yaml", "kgw;seeding=selfhash;h=4;gamma=0.25;delta=2"},
    {"unigram.yaml", "unigram;gamma=0.5;delta=2"},
    {"gumbel.yaml", "gumbel;h=4"},
    {"synthid.yaml", "synthid;h=4;layers=30"},
    {"dipmark.yaml", "dipmark;h=5;alpha=0.45000000000000001"},
    {"exp-edit.yaml", "exp-edit;decoder=exp;n=256"},
    {"its-edit.yaml", "exp-edit;decoder=its;n=256"},
};
enum { N_SHIPPED = sizeof shipped / sizeof shipped[0] };

Test(shipped_configs, every_file_loads_validates_and_describes_as_specified) {
    DIR *dir = opendir(TRACEMARK_SOURCE_DIR "/configs/schemes");
    cr_assert_not_null(dir);
    size_t seen = 0;
    struct dirent *e;
    while ((e = readdir(dir))) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 5, ".yaml")) continue;
        int index = -1;
        for (int i = 0; i < N_SHIPPED; i++)
            if (!strcmp(shipped[i].file, e->d_name)) index = i;
        cr_expect_geq(index, 0, "%s: not in this test's table; add its description (and to the spec)", e->d_name);
        char path[600];
        snprintf(path, sizeof path, "%s/configs/schemes/%s", TRACEMARK_SOURCE_DIR, e->d_name);
        tm_wm_config config;
        tm_error err = {0};
        cr_assert_eq(tm_wm_config_load(&config, path, &err), TM_OK, "%s", err.message);
        cr_expect_eq(tm_wm_config_validate(&config, &err), TM_OK, "%s", err.message);
        if (index < 0) continue;
        seen++;
        char description[256];
        size_t length = tm_wm_config_describe(&config, description, sizeof description);
        cr_expect_str_eq(description, shipped[index].description, "%s", e->d_name);
        cr_expect_eq(length, strlen(shipped[index].description));
    }
    closedir(dir);
    cr_expect_eq(seen, N_SHIPPED, "every file of the table is shipped");
}

/* The shipped files spell out the defaults; loading one equals the defaults. */
Test(shipped_configs, equal_the_papers_defaults) {
    static const struct {
        const char *file;
        tm_wm_kind kind;
    } same[] = {{"kgw-lefthash.yaml", TM_WM_KGW}, {"unigram.yaml", TM_WM_UNIGRAM}, {"gumbel.yaml", TM_WM_GUMBEL},
                {"synthid.yaml", TM_WM_SYNTHID},  {"dipmark.yaml", TM_WM_DIPMARK}, {"exp-edit.yaml", TM_WM_EXP_EDIT}};
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s/configs/schemes/%s", TRACEMARK_SOURCE_DIR, same[i].file);
        tm_wm_config loaded, defaults;
        tm_error err = {0};
        cr_assert_eq(tm_wm_config_load(&loaded, path, &err), TM_OK, "%s", err.message);
        tm_wm_config_default(&defaults, same[i].kind);
        cr_expect(!memcmp(&loaded, &defaults, sizeof loaded) ||
                      (loaded.kind == defaults.kind && loaded.context_width == defaults.context_width &&
                       loaded.skip_repeated_context == defaults.skip_repeated_context &&
                       loaded.gamma == defaults.gamma && loaded.delta == defaults.delta &&
                       loaded.seeding == defaults.seeding && loaded.layers == defaults.layers &&
                       loaded.alpha == defaults.alpha && loaded.sequence_length == defaults.sequence_length &&
                       loaded.decoder == defaults.decoder),
                  "%s", same[i].file);
    }
}

/* ---- defaults, names, validation, description ----------------------------------------- */

Test(config, kind_names) {
    static const char *const names[] = {"kgw", "unigram", "gumbel", "synthid", "dipmark", "exp-edit"};
    for (int k = 0; k < TM_WM_KIND_COUNT; k++) cr_expect_str_eq(tm_wm_kind_name((tm_wm_kind)k), names[k]);
    cr_expect_str_eq(tm_wm_kind_name(TM_WM_KIND_COUNT), "unknown");
    cr_expect_str_eq(tm_wm_kind_name((tm_wm_kind)-1), "unknown");
}

Test(config, papers_defaults) {
    tm_wm_config c;
    tm_wm_config_default(&c, TM_WM_KGW);
    cr_expect(c.gamma == 0.25 && c.delta == 2.0 && c.seeding == TM_WM_SEEDING_LEFTHASH && c.context_width == 1);
    cr_expect_not(c.skip_repeated_context);
    tm_wm_config_default(&c, TM_WM_UNIGRAM);
    cr_expect(c.gamma == 0.5 && c.delta == 2.0);
    tm_wm_config_default(&c, TM_WM_GUMBEL);
    cr_expect(c.context_width == 4 && c.skip_repeated_context);
    tm_wm_config_default(&c, TM_WM_SYNTHID);
    cr_expect(c.context_width == 4 && c.layers == 30 && c.skip_repeated_context);
    tm_wm_config_default(&c, TM_WM_DIPMARK);
    cr_expect(c.alpha == 0.45 && c.context_width == 5 && c.skip_repeated_context);
    tm_wm_config_default(&c, TM_WM_EXP_EDIT);
    cr_expect(c.sequence_length == 256 && c.decoder == TM_WM_DECODER_EXP);
    for (int k = 0; k < TM_WM_KIND_COUNT; k++) {
        tm_wm_config_default(&c, (tm_wm_kind)k);
        tm_error err = {0};
        cr_expect_eq(tm_wm_config_validate(&c, &err), TM_OK, "%s: %s", tm_wm_kind_name((tm_wm_kind)k), err.message);
    }
}

static void expect_invalid(const tm_wm_config *c, const char *message) {
    tm_error err = {0};
    cr_expect_eq(tm_wm_config_validate(c, &err), TM_ERR_ARGUMENT, "%s", message);
    cr_expect_str_eq(err.message, message);
}

Test(config, validate_names_the_field_and_value) {
    tm_wm_config c;
    tm_wm_config_default(&c, TM_WM_KGW);
    c.gamma = 1.0;
    expect_invalid(&c, "kgw: gamma: must be a number in (0, 1), got 1");
    c.gamma = NAN;
    expect_invalid(&c, "kgw: gamma: must be a number in (0, 1), got nan");
    c.gamma = 0.0;
    expect_invalid(&c, "kgw: gamma: must be a number in (0, 1), got 0");
    tm_wm_config_default(&c, TM_WM_KGW);
    c.delta = INFINITY;
    expect_invalid(&c, "kgw: delta: must be a finite number >= 0, got inf");
    c.delta = -0.5;
    expect_invalid(&c, "kgw: delta: must be a finite number >= 0, got -0.5");
    tm_wm_config_default(&c, TM_WM_KGW);
    c.context_width = 16; /* one PRF slot stays free for the candidate */
    expect_invalid(&c, "kgw: context_width: must be an integer in [1, 15], got 16");
    c.context_width = 15;
    cr_expect_eq(tm_wm_config_validate(&c, NULL), TM_OK);
    tm_wm_config_default(&c, TM_WM_KGW);
    c.seeding = (tm_wm_seeding)7;
    expect_invalid(&c, "kgw: seeding: must be lefthash or selfhash, got 7");
    tm_wm_config_default(&c, TM_WM_SYNTHID);
    c.layers = 65;
    expect_invalid(&c, "synthid: layers: must be an integer in [1, 64], got 65");
    c.layers = 0;
    expect_invalid(&c, "synthid: layers: must be an integer in [1, 64], got 0");
    tm_wm_config_default(&c, TM_WM_DIPMARK);
    c.alpha = 0.5000001;
    expect_invalid(&c, "dipmark: alpha: must be a number in [0, 0.5], got 0.50000009999999995");
    c.alpha = 0.0; /* alpha = 0 is allowed: no watermark, as the paper notes */
    cr_expect_eq(tm_wm_config_validate(&c, NULL), TM_OK);
    tm_wm_config_default(&c, TM_WM_EXP_EDIT);
    c.sequence_length = 65537;
    expect_invalid(&c, "exp-edit: sequence_length: must be an integer in [1, 65536], got 65537");
    c.sequence_length = 65536;
    cr_expect_eq(tm_wm_config_validate(&c, NULL), TM_OK);
    c.decoder = (tm_wm_decoder)-1;
    expect_invalid(&c, "exp-edit: decoder: must be exp or its, got -1");
    c.kind = TM_WM_KIND_COUNT;
    expect_invalid(&c, "scheme: unknown watermark scheme 6");
    cr_expect_eq(tm_wm_config_validate(NULL, NULL), TM_ERR_ARGUMENT);
}

/* Fields a scheme does not use are not checked (nor described). */
Test(config, unused_fields_are_ignored) {
    tm_wm_config c;
    tm_wm_config_default(&c, TM_WM_UNIGRAM);
    c.context_width = -3;
    c.layers = 1000;
    cr_expect_eq(tm_wm_config_validate(&c, NULL), TM_OK);
    char text[128];
    tm_wm_config_describe(&c, text, sizeof text);
    cr_expect_str_eq(text, "unigram;gamma=0.5;delta=2");
}

Test(config, describe_defaults) {
    static const char *const expected[] = {
        "kgw;seeding=lefthash;h=1;gamma=0.25;delta=2", "unigram;gamma=0.5;delta=2", "gumbel;h=4",
        "synthid;h=4;layers=30", "dipmark;h=5;alpha=0.45000000000000001", "exp-edit;decoder=exp;n=256"};
    for (int k = 0; k < TM_WM_KIND_COUNT; k++) {
        tm_wm_config c;
        tm_wm_config_default(&c, (tm_wm_kind)k);
        char text[128];
        cr_expect_eq(tm_wm_config_describe(&c, text, sizeof text), strlen(expected[k]));
        cr_expect_str_eq(text, expected[k]);
    }
}

/* %.17g: neighbouring doubles never share a description; -0 is 0. */
Test(config, describe_never_collides) {
    tm_wm_config a, b;
    tm_wm_config_default(&a, TM_WM_KGW);
    b = a;
    b.gamma = nextafter(a.gamma, 1.0);
    char ta[128], tb[128];
    tm_wm_config_describe(&a, ta, sizeof ta);
    tm_wm_config_describe(&b, tb, sizeof tb);
    cr_expect_str_neq(ta, tb);
    cr_expect_str_eq(tb, "kgw;seeding=lefthash;h=1;gamma=0.25000000000000006;delta=2");
    b = a;
    b.delta = -0.0;
    tm_wm_config_describe(&b, tb, sizeof tb);
    cr_expect_str_eq(tb, "kgw;seeding=lefthash;h=1;gamma=0.25;delta=0");
    b = a;
    b.seeding = TM_WM_SEEDING_SELFHASH;
    b.context_width = 4;
    tm_wm_config_describe(&b, tb, sizeof tb);
    cr_expect_str_eq(tb, "kgw;seeding=selfhash;h=4;gamma=0.25;delta=2");
    /* The generation-only switch does not change the key. */
    b = a;
    b.skip_repeated_context = !a.skip_repeated_context;
    tm_wm_config_describe(&b, tb, sizeof tb);
    cr_expect_str_eq(ta, tb);
}

Test(config, describe_truncates_safely) {
    tm_wm_config c;
    tm_wm_config_default(&c, TM_WM_KGW);
    char text[8];
    memset(text, 'x', sizeof text);
    size_t n = tm_wm_config_describe(&c, text, sizeof text);
    cr_expect_eq(n, strlen("kgw;seeding=lefthash;h=1;gamma=0.25;delta=2"));
    cr_expect_str_eq(text, "kgw;see");
    cr_expect_eq(tm_wm_config_describe(&c, NULL, 0), n);
}

/* ---- loading YAML ------------------------------------------------------------------------ */

static char *scratch;
static void setup(void) { scratch = tm_test_scratch_dir(); }
static void teardown(void) {
    char command[600];
    snprintf(command, sizeof command, "rm -rf '%s'", scratch);
    cr_expect_eq(system(command), 0);
    free(scratch);
}
TestSuite(config_load, .init = setup, .fini = teardown);

static tm_status load_text(const char *text, size_t size, tm_wm_config *config, tm_error *err, char *path,
                           size_t path_size) {
    snprintf(path, path_size, "%s/x.yaml", scratch);
    cr_assert_eq(tm_test_write_file(path, text, size), 0);
    return tm_wm_config_load(config, path, err);
}

/* The file must fail with exactly "<path>:<suffix>", leaving config untouched. */
static void expect_error(const char *text, const char *suffix) {
    char path[600], expected[1200];
    tm_wm_config config;
    memset(&config, 0xA5, sizeof config);
    tm_wm_config before = config;
    tm_error err = {0};
    cr_expect_eq(load_text(text, strlen(text), &config, &err, path, sizeof path), TM_ERR_FORMAT, "%s", text);
    snprintf(expected, sizeof expected, "%s:%s", path, suffix);
    cr_expect_str_eq(err.message, expected);
    cr_expect(!memcmp(&config, &before, sizeof config), "config untouched on error");
}

static void expect_description(const char *text, const char *description) {
    char path[600];
    tm_wm_config config;
    tm_error err = {0};
    cr_assert_eq(load_text(text, strlen(text), &config, &err, path, sizeof path), TM_OK, "%s", err.message);
    char got[256];
    tm_wm_config_describe(&config, got, sizeof got);
    cr_expect_str_eq(got, description);
}

Test(config_load, overrides_in_any_order_with_comments_and_markers) {
    expect_description("scheme: kgw\ngamma: 0.5\n", "kgw;seeding=lefthash;h=1;gamma=0.5;delta=2");
    expect_description("# header\ngamma: 0.1\ndelta: 0\n# c\nscheme: unigram   # trailing\n",
                       "unigram;gamma=0.10000000000000001;delta=0");
    expect_description("---\nscheme: 'kgw'\nseeding: \"selfhash\"\ncontext_width: 4\ndelta: 1e1\n...\n",
                       "kgw;seeding=selfhash;h=4;gamma=0.25;delta=10");
    expect_description("{scheme: synthid, layers: 64, context_width: +2}", "synthid;h=2;layers=64");
    expect_description("scheme: dipmark\nalpha: .5\n", "dipmark;h=5;alpha=0.5");
    expect_description("scheme: exp-edit\ndecoder: its\nsequence_length: 1\n", "exp-edit;decoder=its;n=1");
    char path[600];
    tm_wm_config c;
    tm_error err = {0};
    static const char skip[] = "scheme: kgw\nskip_repeated_context: True\n";
    cr_assert_eq(load_text(skip, sizeof skip - 1, &c, &err, path, sizeof path), TM_OK, "%s", err.message);
    cr_expect(c.skip_repeated_context);
    static const char no_skip[] = "scheme: gumbel\nskip_repeated_context: false\n";
    cr_assert_eq(load_text(no_skip, sizeof no_skip - 1, &c, &err, path, sizeof path), TM_OK, "%s", err.message);
    cr_expect_not(c.skip_repeated_context);
}

Test(config_load, out_of_range_values) {
    expect_error("scheme: kgw\nseeding: lefthash\ngamma: 1.5\n", "3: gamma: must be a number in (0, 1), got 1.5");
    expect_error("scheme: kgw\ngamma: 0\n", "2: gamma: must be a number in (0, 1), got 0");
    expect_error("scheme: unigram\ndelta: -1\n", "2: delta: must be a finite number >= 0, got -1");
    expect_error("scheme: unigram\ndelta: .inf\n", "2: delta: must be a finite number >= 0, got .inf");
    expect_error("scheme: unigram\ndelta: 1e999\n", "2: delta: must be a finite number >= 0, got 1e999");
    expect_error("scheme: unigram\ngamma: .nan\n", "2: gamma: must be a number in (0, 1), got .nan");
    expect_error("scheme: gumbel\ncontext_width: 16\n", "2: context_width: must be an integer in [1, 15], got 16");
    expect_error("scheme: gumbel\ncontext_width: 0\n", "2: context_width: must be an integer in [1, 15], got 0");
    expect_error("scheme: synthid\nlayers: 65\n", "2: layers: must be an integer in [1, 64], got 65");
    expect_error("scheme: synthid\nlayers: 99999999999999999999\n",
                 "2: layers: must be an integer in [1, 64], got 99999999999999999999");
    expect_error("scheme: synthid\nlayers: -4294967295\n",
                 "2: layers: must be an integer in [1, 64], got -4294967295");
    expect_error("scheme: dipmark\nalpha: 0.6\n", "2: alpha: must be a number in [0, 0.5], got 0.6");
    expect_error("scheme: exp-edit\nsequence_length: 65537\n",
                 "2: sequence_length: must be an integer in [1, 65536], got 65537");
}

Test(config_load, wrong_types) {
    expect_error("scheme: kgw\ngamma: \"abc\"\n", "2: gamma: must be a number in (0, 1), got the quoted string \"abc\"");
    expect_error("scheme: kgw\ngamma: '0.5'\n", "2: gamma: must be a number in (0, 1), got the quoted string \"0.5\"");
    expect_error("scheme: kgw\ngamma: abc\n", "2: gamma: must be a number in (0, 1), got abc");
    expect_error("scheme: kgw\ngamma: 0x10\n", "2: gamma: must be a number in (0, 1), got 0x10");
    expect_error("scheme: kgw\ngamma: nan\n", "2: gamma: must be a number in (0, 1), got nan");
    expect_error("scheme: kgw\ngamma: 0.5.1\n", "2: gamma: must be a number in (0, 1), got 0.5.1");
    expect_error("scheme: kgw\ngamma:\n", "2: gamma: must be a number in (0, 1), got an empty value");
    expect_error("scheme: kgw\ngamma: !!float 0.5\n",
                 "2: gamma: must be a number in (0, 1), got a value with a YAML tag (write it plainly)");
    expect_error("scheme: synthid\nlayers: 2.5\n", "2: layers: must be an integer in [1, 64], got 2.5");
    expect_error("scheme: synthid\nlayers: 3e1\n", "2: layers: must be an integer in [1, 64], got 3e1");
    expect_error("scheme: synthid\nlayers: \"30\"\n",
                 "2: layers: must be an integer in [1, 64], got the quoted string \"30\"");
    expect_error("scheme: gumbel\nskip_repeated_context: yes\n",
                 "2: skip_repeated_context: must be true or false, got yes");
    expect_error("scheme: gumbel\nskip_repeated_context: 1\n",
                 "2: skip_repeated_context: must be true or false, got 1");
    expect_error("scheme: kgw\nseeding: minhash\n", "2: seeding: must be lefthash or selfhash, got minhash");
    expect_error("scheme: exp-edit\ndecoder: EXP\n", "2: decoder: must be exp or its, got EXP");
    expect_error("scheme: kgw\ngamma: [0.25]\n", "2: gamma: expected a single value, got a sequence");
    expect_error("scheme: kgw\ngamma: {a: 1}\n", "2: gamma: expected a single value, got a mapping");
    expect_error("scheme: kgw\ngamma: *anchor\n", "2: gamma: expected a single value, got an alias");
    expect_error("scheme: kgw\nseeding: \"lefthash\\0x\"\n",
                 "2: seeding: must be lefthash or selfhash, got \"lefthash...\"");
    expect_error("scheme: kgw\n\"gamma\\0x\": 0.5\n",
                 "2: gamma...: unknown field (scheme kgw takes: scheme, gamma, delta, seeding, context_width, "
                 "skip_repeated_context)");
    expect_error("scheme: kgw\ngamma: \"\\x1b[31m\"\n",
                 "2: gamma: must be a number in (0, 1), got the quoted string \"?[31m\"");
}

Test(config_load, unknown_and_foreign_fields) {
    expect_error("scheme: kgw\ncolour: blue\n",
                 "2: colour: unknown field (scheme kgw takes: scheme, gamma, delta, seeding, context_width, "
                 "skip_repeated_context)");
    expect_error("scheme: kgw\nlayers: 3\n",
                 "2: layers: not a field of scheme kgw (it takes: scheme, gamma, delta, seeding, context_width, "
                 "skip_repeated_context)");
    expect_error("scheme: unigram\ncontext_width: 1\n",
                 "2: context_width: not a field of scheme unigram (it takes: scheme, gamma, delta)");
    expect_error("scheme: exp-edit\nskip_repeated_context: true\n",
                 "2: skip_repeated_context: not a field of scheme exp-edit (it takes: scheme, sequence_length, "
                 "decoder)");
    expect_error("scheme: gumbel\ngamma: 0.5\n",
                 "2: gamma: not a field of scheme gumbel (it takes: scheme, context_width, skip_repeated_context)");
    expect_error("scheme: kgw\nGamma: 0.5\n",
                 "2: Gamma: unknown field (scheme kgw takes: scheme, gamma, delta, seeding, context_width, "
                 "skip_repeated_context)");
}

Test(config_load, scheme_field) {
    expect_error("gamma: 0.5\n",
                 "1: scheme: missing; expected one of kgw, unigram, gumbel, synthid, dipmark, exp-edit");
    expect_error("scheme: kgw2\n",
                 "1: scheme: must be one of kgw, unigram, gumbel, synthid, dipmark, exp-edit, got kgw2");
    expect_error("scheme:\n",
                 "1: scheme: must be one of kgw, unigram, gumbel, synthid, dipmark, exp-edit, got an empty value");
    expect_error("scheme: its-edit\n",
                 "1: scheme: must be one of kgw, unigram, gumbel, synthid, dipmark, exp-edit, got its-edit");
}

Test(config_load, duplicate_keys) {
    expect_error("scheme: kgw\ngamma: 0.3\ndelta: 1\ngamma: 0.4\n", "4: gamma: duplicate field (first on line 2)");
    expect_error("scheme: kgw\nscheme: unigram\n", "2: scheme: duplicate field (first on line 1)");
}

Test(config_load, not_a_mapping) {
    expect_error("- scheme: kgw\n", "1: expected a mapping of fields (scheme: ..., ...), got a sequence");
    expect_error("kgw\n", "1: expected a mapping of fields (scheme: ..., ...), got a scalar");
    expect_error("", "1: empty file; expected a mapping with 'scheme:'");
    expect_error("# nothing but a comment\n", "2: empty file; expected a mapping with 'scheme:'");
    expect_error("---\n...\n", "2: empty document; expected a mapping with 'scheme:'");
    expect_error("scheme: kgw\n---\nscheme: unigram\n", "2: more than one YAML document in the file");
    expect_error("scheme: unigram\n? [a]\n: 1\n", "2: field names must be plain words, got a sequence");
}

Test(config_load, yaml_syntax_errors) {
    expect_error("scheme: kgw\n  gamma: 0.5\n bad\n",
                 "2: YAML syntax error: mapping values are not allowed in this context (column 8)");
    expect_error("scheme: \"kgw\ngamma: 1\n", "3: YAML syntax error: found unexpected end of stream (column 1), "
                                               "while scanning a quoted scalar that starts on line 1, column 9");
    expect_error("scheme: kgw\n\tgamma: 0.5\n",
                 "2: YAML syntax error: found a tab character that violates indentation (column 1), while scanning "
                 "a plain scalar that starts on line 1, column 9");
    /* A value that opens a flow sequence is refused at its start, before the
     * parser reaches the missing ']'. */
    expect_error("scheme: kgw\ngamma: [0.5\n", "2: gamma: expected a single value, got a sequence");
    /* A NUL byte inside the file. */
    char path[600];
    tm_wm_config c;
    tm_error err = {0};
    static const char nul[] = "scheme: unigram\ngamma: 0.5\0\n";
    cr_expect_eq(load_text(nul, sizeof nul - 1, &c, &err, path, sizeof path), TM_ERR_FORMAT);
    cr_expect(strstr(err.message, "YAML syntax error") != NULL, "%s", err.message);
}

Test(config_load, missing_or_odd_files) {
    tm_wm_config c;
    tm_error err = {0};
    char path[600];
    snprintf(path, sizeof path, "%s/absent.yaml", scratch);
    cr_expect_eq(tm_wm_config_load(&c, path, &err), TM_ERR_NOT_FOUND);
    cr_expect(strncmp(err.message, path, strlen(path)) == 0, "%s", err.message);
    cr_expect_eq(tm_wm_config_load(&c, scratch, &err), TM_ERR_FORMAT);
    cr_expect(strstr(err.message, "not a regular file") != NULL, "%s", err.message);
    /* Over a megabyte: refused before parsing. */
    size_t size = (1 << 20) + 10;
    char *big = malloc(size);
    memset(big, '#', size);
    cr_expect_eq(load_text(big, size, &c, &err, path, sizeof path), TM_ERR_FORMAT);
    cr_expect(strstr(err.message, "too large") != NULL, "%s", err.message);
    free(big);
    /* Many fields: bounded. */
    char many[4096];
    size_t used = (size_t)snprintf(many, sizeof many, "scheme: kgw\n");
    for (int i = 0; i < 40; i++) used += (size_t)snprintf(many + used, sizeof many - used, "f%d: 1\n", i);
    cr_expect_eq(load_text(many, used, &c, &err, path, sizeof path), TM_ERR_FORMAT);
    cr_expect(strstr(err.message, "too many fields") != NULL, "%s", err.message);
    /* A very long key and value are cut in the message. */
    char long_key[1024];
    memset(long_key, 'k', 300);
    snprintf(long_key + 300, sizeof long_key - 300, ": 1\nscheme: kgw\n");
    cr_expect_eq(load_text(long_key, strlen(long_key), &c, &err, path, sizeof path), TM_ERR_FORMAT);
    cr_expect(strstr(err.message, "unknown field") != NULL && strstr(err.message, "...") != NULL, "%s", err.message);
}

/* Every single-byte corruption of a valid file: an error or a valid config, never a crash. */
Test(config_load, byte_corruptions_never_crash) {
    static const char valid[] = "scheme: kgw\nseeding: selfhash\ncontext_width: 4\ngamma: 0.25\ndelta: 2.0\n";
    static const char replacements[] = {'\0', '\t', ':', '"', '[', '{', '-', '&', '*', '!', '\n', ' ', '9', '\xff'};
    char text[sizeof valid], path[600];
    for (size_t i = 0; i < sizeof valid - 1; i++) {
        for (size_t r = 0; r < sizeof replacements; r++) {
            memcpy(text, valid, sizeof valid);
            text[i] = replacements[r];
            tm_wm_config c;
            tm_error err = {0};
            tm_status status = load_text(text, sizeof valid - 1, &c, &err, path, sizeof path);
            if (status == TM_OK) cr_expect_eq(tm_wm_config_validate(&c, NULL), TM_OK);
            else cr_expect(strncmp(err.message, path, strlen(path)) == 0, "%s", err.message);
        }
    }
}
