/* Tests of text normalisation before detection (detect/normalize.c): NFC
 * checked against utf8proc's whole-string NFC as the outside reference,
 * homoglyph folding on the TR39 examples an attacker uses, and its word
 * rule: Russian, Greek, Arabic, Hebrew and Japanese text passes through
 * unchanged, while a look-alike inside a word with an ASCII letter folds.
 * A word spelt wholly in look-alikes ("рара") is not folded: that is the
 * rule's known limitation, pinned here so that a change to it is seen.
 * Also whitespace and zero-width handling, the offset map back to the
 * input, invalid UTF-8 reported at the same byte offset core's validator
 * finds, and random valid text, mixed-script text included, that must come
 * out valid, well mapped and unchanged by a second pass. The ASCII fast
 * path (runs of plain ASCII copied, lone spaces and line feeds inside them
 * too) gives the general path's bytes, offsets and errors on random and
 * adversarial text under every combination of options. */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tracemark/detect.h"
/* Internal to detect/: normalisation with its ASCII fast path limited. */
#include "../detect/detect_internal.h"

/* ---- helpers ------------------------------------------------------------ */

static tm_normalize_options make_options(bool nfc, bool homoglyphs, bool whitespace) {
    tm_normalize_options o = {.nfc = nfc, .fold_homoglyphs = homoglyphs, .normalize_whitespace = whitespace};
    return o;
}

typedef struct {
    char *text;
    size_t size;
    size_t *offsets;
} normalized;

static normalized run_normalize(const char *text, size_t size, const tm_normalize_options *options) {
    normalized r = {0};
    tm_error err = {0};
    tm_status s = tm_text_normalize(text, size, options, &r.text, &r.size, &r.offsets, &err);
    cr_assert_eq(s, TM_OK, "normalising %zu bytes: %s", size, err.message);
    cr_assert_not_null(r.text);
    cr_assert_not_null(r.offsets);
    cr_assert_eq(r.text[r.size], '\0', "output is NUL-terminated");
    cr_assert_eq(r.offsets[r.size], size, "last offset is the input size");
    return r;
}

static void release(normalized *r) {
    free(r->text);
    free(r->offsets);
}

/* Normalise with the default options and expect `want`. */
static void expect_default(const char *in, const char *want) {
    normalized r = run_normalize(in, strlen(in), NULL);
    cr_expect_eq(r.size, strlen(want), "\"%s\": %zu bytes, expected %zu (\"%s\")", in, r.size, strlen(want), r.text);
    cr_expect_str_eq(r.text, want, "\"%s\" -> \"%s\", expected \"%s\"", in, r.text, want);
    release(&r);
}

static void expect_offsets(const normalized *r, const size_t *want, size_t n) {
    cr_assert_eq(r->size + 1, n, "%zu output bytes (+1 offset), expected %zu", r->size, n - 1);
    for (size_t i = 0; i < n; i++)
        cr_expect_eq(r->offsets[i], want[i], "offset of output byte %zu is %zu, expected %zu", i, r->offsets[i],
                     want[i]);
}

static void expect_invalid(const char *in, size_t size, size_t offset) {
    char *out = (char *)1;
    size_t out_size = 99, *offsets = (size_t *)1;
    tm_error err = {0};
    tm_status s = tm_text_normalize(in, size, NULL, &out, &out_size, &offsets, &err);
    cr_assert_eq(s, TM_ERR_FORMAT, "invalid UTF-8 accepted (status %d)", s);
    cr_expect_eq(err.code, TM_ERR_FORMAT);
    char want[96];
    snprintf(want, sizeof want, "text is not valid UTF-8 at byte offset %zu", offset);
    cr_expect_str_eq(err.message, want);
    cr_expect_null(out);
    cr_expect_null(offsets);
    cr_expect_eq(out_size, 0);
}

/* Deterministic xorshift64* so that failures replay. */
static uint64_t next_random(uint64_t *state) {
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static uint32_t random_in(uint64_t *state, uint32_t low, uint32_t high) {
    return low + (uint32_t)(next_random(state) % (uint64_t)(high - low + 1));
}

/* A code point from the mix adversaries and real text produce: ASCII,
 * whitespace, combining marks, look-alike scripts, Hangul jamo, scripts with
 * composing vowel signs, invisibles, astral characters and anything else. */
static uint32_t random_code_point(uint64_t *state) {
    static const uint32_t specials[] = {0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x00A0, 0x2000, 0x2001, 0x200A,
                                        0x3000, 0x2028, 0x2029, 0x0085, 0x1680, 0x202F, 0x205F, 0x212B, 0x2126,
                                        0x0958, 0x0F73, 0x0344, 0x1D15E, 0x1D160, 0xFF21, 0x0131, 0x2019};
    uint32_t pick = random_in(state, 0, 99);
    if (pick < 30) return random_in(state, 0x21, 0x7E);
    if (pick < 38) {
        static const char spaces[] = {' ', ' ', '\t', '\n', '\r', '\v', '\f'};
        return (uint32_t)spaces[random_in(state, 0, sizeof spaces - 1)];
    }
    if (pick < 52) {
        switch (random_in(state, 0, 4)) {
        case 0: return random_in(state, 0x0300, 0x036F);
        case 1: return random_in(state, 0x0591, 0x05C7);
        case 2: return random_in(state, 0x0F71, 0x0F84);
        case 3: return random_in(state, 0x3099, 0x309A);
        default: return 0x093C;
        }
    }
    if (pick < 62) return random_in(state, 0x0400, 0x04FF);
    if (pick < 67) return random_in(state, 0x0370, 0x03FF);
    if (pick < 72) return random_in(state, 0x00A0, 0x024F);
    if (pick < 77) {
        switch (random_in(state, 0, 3)) {
        case 0: return random_in(state, 0x1100, 0x1112);
        case 1: return random_in(state, 0x1161, 0x1175);
        case 2: return random_in(state, 0x11A8, 0x11C2);
        default: return random_in(state, 0xAC00, 0xD7A3);
        }
    }
    if (pick < 82) return random_in(state, 0x0900, 0x0DFF); /* Devanagari .. Sinhala */
    if (pick < 88) return specials[random_in(state, 0, sizeof specials / sizeof specials[0] - 1)];
    if (pick < 91) return random_in(state, 0xFF01, 0xFF5E);
    if (pick < 94) return random_in(state, 0x1F600, 0x1F64F);
    if (pick < 96) return random_in(state, 0x4E00, 0x9FFF);
    for (;;) {
        uint32_t cp = random_in(state, 0x80, 0x10FFFF);
        if (cp < 0xD800 || cp > 0xDFFF) return cp;
    }
}

/* Random valid UTF-8 with no NUL, `chars` characters long; heap string. */
static char *random_text(uint64_t *state, size_t chars, size_t *size) {
    char *text = malloc(4 * chars + 1);
    cr_assert_not_null(text);
    size_t n = 0;
    for (size_t i = 0; i < chars; i++) {
        utf8proc_ssize_t k = utf8proc_encode_char((utf8proc_int32_t)random_code_point(state), (uint8_t *)text + n);
        n += (size_t)k;
    }
    text[n] = '\0';
    *size = n;
    return text;
}

static bool is_character_start(const char *text, size_t size, size_t offset) {
    return offset == size || ((uint8_t)text[offset] & 0xC0) != 0x80;
}

/* ---- options ------------------------------------------------------------ */

Test(normalize, default_options_are_all_on) {
    tm_normalize_options o;
    memset(&o, 0, sizeof o);
    tm_normalize_options_default(&o);
    cr_expect(o.nfc);
    cr_expect(o.fold_homoglyphs);
    cr_expect(o.normalize_whitespace);
    cr_expect_str_eq(tm_normalize_options_describe(&o), "nfc,homoglyphs,whitespace");
}

Test(normalize, describe_names_only_the_options_in_force) {
    struct {
        bool nfc, homoglyphs, whitespace;
        const char *name;
    } cases[] = {
        {false, false, false, "none"},
        {true, false, false, "nfc"},
        {false, true, false, "homoglyphs"},
        {false, false, true, "whitespace"},
        {true, true, false, "nfc,homoglyphs"},
        {true, false, true, "nfc,whitespace"},
        {false, true, true, "homoglyphs,whitespace"},
        {true, true, true, "nfc,homoglyphs,whitespace"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tm_normalize_options o = make_options(cases[i].nfc, cases[i].homoglyphs, cases[i].whitespace);
        cr_expect_str_eq(tm_normalize_options_describe(&o), cases[i].name);
    }
}

/* ---- edge cases and arguments ------------------------------------------- */

Test(normalize, empty_input_gives_empty_output) {
    normalized r = run_normalize("", 0, NULL);
    cr_expect_eq(r.size, 0);
    cr_expect_eq(r.offsets[0], 0);
    release(&r);

    char *out = NULL;
    size_t out_size = 7;
    tm_error err = {0};
    cr_assert_eq(tm_text_normalize(NULL, 0, NULL, &out, &out_size, NULL, &err), TM_OK, "%s", err.message);
    cr_expect_eq(out_size, 0);
    cr_expect_str_eq(out, "");
    free(out);
}

Test(normalize, bad_arguments_are_errors) {
    char *out = NULL;
    size_t out_size = 0;
    tm_error err = {0};
    cr_expect_eq(tm_text_normalize(NULL, 3, NULL, &out, &out_size, NULL, &err), TM_ERR_ARGUMENT);
    cr_expect_eq(tm_text_normalize("abc", 3, NULL, NULL, &out_size, NULL, &err), TM_ERR_ARGUMENT);
    cr_expect_eq(tm_text_normalize("abc", 3, NULL, &out, NULL, NULL, &err), TM_ERR_ARGUMENT);
    cr_expect_null(out);
}

Test(normalize, offsets_are_optional) {
    char *out = NULL;
    size_t out_size = 0;
    tm_error err = {0};
    cr_assert_eq(tm_text_normalize("cafe\xCC\x81", 6, NULL, &out, &out_size, NULL, &err), TM_OK, "%s", err.message);
    cr_expect_str_eq(out, "caf\xC3\xA9");
    cr_expect_eq(out_size, 5);
    free(out);
}

/* ---- NFC ------------------------------------------------------------------ */

Test(normalize, nfc_composes_a_decomposed_accent) {
    tm_normalize_options o = make_options(true, false, false);
    normalized r = run_normalize("e\xCC\x81", 3, &o); /* e + U+0301 */
    cr_expect_str_eq(r.text, "\xC3\xA9");              /* U+00E9 */
    expect_offsets(&r, (size_t[]){0, 0, 3}, 3);
    release(&r);

    /* "cafe\u0301 ok": both bytes of é map to the 'e'; the rest shift by one. */
    r = run_normalize("cafe\xCC\x81 ok", 9, NULL);
    cr_expect_str_eq(r.text, "caf\xC3\xA9 ok");
    expect_offsets(&r, (size_t[]){0, 1, 2, 3, 3, 6, 7, 8, 9}, 9);
    release(&r);
}

Test(normalize, nfc_reorders_and_composes_several_marks) {
    /* a + dot below (ccc 220) after dot above (ccc 230) -> U+1EA1 U+0307 */
    expect_default("a\xCC\x87\xCC\xA3", "\xE1\xBA\xA1\xCC\x87");
    /* Hangul jamo L V T compose into one syllable: U+1100 U+1161 U+11A8 -> U+AC01 */
    expect_default("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8", "\xEA\xB0\x81");
    /* Tamil U+0B92 U+0BD7 -> U+0B94: a vowel sign that composes but is a starter */
    expect_default("\xE0\xAE\x92\xE0\xAF\x97", "\xE0\xAE\x94");
    /* Singletons: ANGSTROM SIGN -> U+00C5, OHM SIGN -> U+03A9 */
    expect_default("\xE2\x84\xAB", "\xC3\x85");
    /* Composition exclusion: U+0958 stays decomposed as U+0915 U+093C */
    expect_default("\xE0\xA5\x98", "\xE0\xA4\x95\xE0\xA4\xBC");
}

Test(normalize, already_nfc_text_is_unchanged_byte_for_byte) {
    static const char *texts[] = {
        "The quick brown fox jumps over the lazy dog.\nSecond line, with punctuation: (a) [b] {c}!",
        "Caf\xC3\xA9 na\xC3\xAFve \xC3\xBC\x62\x65r \xC3\xB1 \xC3\xA5",           /* Latin-1 accents */
        "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82",                          /* Привет */
        "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4", /* 日本語 한국어 */
        "emoji \xF0\x9F\x98\x80 and \xF0\x9D\x84\x9E",                               /* 😀 𝄞 */
    };
    tm_normalize_options o = make_options(true, false, false);
    for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++) {
        size_t size = strlen(texts[t]);
        normalized r = run_normalize(texts[t], size, &o);
        cr_expect_eq(r.size, size, "text %zu changed size", t);
        cr_expect(memcmp(r.text, texts[t], size) == 0, "text %zu changed", t);
        /* Offsets: each byte maps to the start of its own character. */
        size_t start = 0;
        for (size_t i = 0; i < r.size; i++) {
            if (((uint8_t)texts[t][i] & 0xC0) != 0x80) start = i;
            cr_expect_eq(r.offsets[i], start, "text %zu byte %zu", t, i);
        }
        release(&r);
    }
    /* English prose goes through every default step unchanged. */
    expect_default(texts[0], texts[0]);
}

Test(normalize, nfc_agrees_with_utf8proc_on_random_text) {
    tm_normalize_options o = make_options(true, false, false);
    uint64_t state = 0x9E3779B97F4A7C15ULL;
    for (int iteration = 0; iteration < 400; iteration++) {
        size_t size;
        char *text = random_text(&state, 1 + (size_t)(next_random(&state) % 200), &size);
        normalized r = run_normalize(text, size, &o);
        utf8proc_uint8_t *reference = utf8proc_NFC((const utf8proc_uint8_t *)text);
        cr_assert_not_null(reference);
        cr_expect_str_eq(r.text, (const char *)reference, "iteration %d differs from utf8proc_NFC", iteration);
        free(reference);
        release(&r);
        free(text);
    }
}

/* ---- homoglyphs ------------------------------------------------------------ */

Test(normalize, cyrillic_and_greek_look_alikes_fold_to_ascii) {
    /* раураl: Cyrillic р а у р а, Latin l */
    expect_default("\xD1\x80\xD0\xB0\xD1\x83\xD1\x80\xD0\xB0l", "paypal");
    /* gοοgle with Greek omicrons */
    expect_default("g\xCE\xBF\xCE\xBFgle", "google");
    /* Cyrillic capital Е and С, Greek capital Ο, in a word with ASCII letters */
    expect_default("\xD0\x95\xD0\xA1\xCE\x9Fnomy", "ECOnomy");
    /* Fullwidth Ａ and ａ */
    expect_default("\xEF\xBC\xA1\xEF\xBD\x81", "Aa");
    /* Dotless ı */
    expect_default("\xC4\xB1", "i");
}

Test(normalize, shared_skeletons_fold_by_the_characters_kind) {
    /* I, l, 1 and | share the skeleton "l"; 0 and O share "O". */
    expect_default("\xCE\x99" "BM", "IBM");        /* Greek capital iota -> I, not l */
    expect_default("\xD0\x86" "nfo", "Info");      /* Cyrillic capital І -> I */
    expect_default("\xF0\x9D\x9F\x8F", "1");      /* mathematical bold digit one -> 1 */
    expect_default("Win1\xE0\xA7\xA6", "Win10");   /* Bengali digit zero -> 0 */
    expect_default("\xD0\x9EK", "OK");             /* Cyrillic capital О -> O */
    expect_default("\xE2\x85\xBF", "m");          /* small roman numeral ⅿ (skeleton "rn") -> m */
}

Test(normalize, folding_maps_offsets_to_the_replaced_character) {
    normalized r = run_normalize("p\xD0\xB0y", 4, NULL); /* p, Cyrillic а, y */
    cr_expect_str_eq(r.text, "pay");
    expect_offsets(&r, (size_t[]){0, 1, 3, 4}, 4);
    release(&r);
}

Test(normalize, ascii_is_never_rewritten) {
    char all[0x7F - 0x20 + 1];
    for (int c = 0x21; c < 0x7F; c++) all[c - 0x21] = (char)c;
    all[0x7F - 0x21] = '\0';
    expect_default(all, all);
    expect_default("rn modern m 0O1lI| corn", "rn modern m 0O1lI| corn");
}

Test(normalize, accented_letters_are_not_folded) {
    /* é, ñ, ü, Cyrillic ё: their skeletons keep the mark, so they stay. */
    expect_default("\xC3\xA9\xC3\xB1\xC3\xBC\xD1\x91", "\xC3\xA9\xC3\xB1\xC3\xBC\xD1\x91");
}

Test(normalize, folded_letter_composes_with_its_accent) {
    /* Cyrillic е + U+0301 has no precomposed form; folded to 'e' it does. */
    expect_default("caf\xD0\xB5\xCC\x81", "caf\xC3\xA9");
    /* Alone, it is Cyrillic text and stays as NFC left it. */
    expect_default("\xD0\xB5\xCC\x81", "\xD0\xB5\xCC\x81");
    normalized r = run_normalize("x\xD0\xB5\xCC\x81", 5, NULL);
    cr_expect_str_eq(r.text, "x\xC3\xA9");
    expect_offsets(&r, (size_t[]){0, 1, 1, 5}, 4);
    release(&r);
}

Test(normalize, folding_off_keeps_look_alikes) {
    tm_normalize_options o = make_options(true, false, true);
    normalized r = run_normalize("\xD1\x80\xD0\xB0\xD1\x83", 6, &o);
    cr_expect_str_eq(r.text, "\xD1\x80\xD0\xB0\xD1\x83");
    release(&r);
}

/* ---- homoglyphs: the word rule ------------------------------------------ */

Test(normalize, non_latin_text_passes_through_unchanged) {
    static const char *texts[] = {
        /* Привет, как дела? Хорошо. */
        "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82, \xD0\xBA\xD0\xB0\xD0\xBA \xD0\xB4\xD0\xB5\xD0\xBB\xD0\xB0? "
        "\xD0\xA5\xD0\xBE\xD1\x80\xD0\xBE\xD1\x88\xD0\xBE.",
        /* ЕС, СССР и ООО «Ромашка» (every letter a look-alike but Ш, Ш-less words too) */
        "\xD0\x95\xD0\xA1, \xD0\xA1\xD0\xA1\xD0\xA1\xD0\xA0 \xD0\xB8 \xD0\x9E\xD0\x9E\xD0\x9E "
        "\xC2\xAB\xD0\xA0\xD0\xBE\xD0\xBC\xD0\xB0\xD1\x88\xD0\xBA\xD0\xB0\xC2\xBB",
        /* Я люблю Python и Linux. (ASCII words beside Cyrillic ones) */
        "\xD0\xAF \xD0\xBB\xD1\x8E\xD0\xB1\xD0\xBB\xD1\x8E Python \xD0\xB8 Linux.",
        /* Καλημέρα, τι κάνεις; Όλα καλά. */
        "\xCE\x9A\xCE\xB1\xCE\xBB\xCE\xB7\xCE\xBC\xCE\xAD\xCF\x81\xCE\xB1, \xCF\x84\xCE\xB9 "
        "\xCE\xBA\xCE\xAC\xCE\xBD\xCE\xB5\xCE\xB9\xCF\x82; \xCE\x8C\xCE\xBB\xCE\xB1 \xCE\xBA\xCE\xB1\xCE\xBB\xCE\xAC.",
        /* ΟΧΙ ΑΠΟ ΤΟΝ ΚΑΙΡΟ (Greek capitals, all look-alikes) */
        "\xCE\x9F\xCE\xA7\xCE\x99 \xCE\x91\xCE\xA0\xCE\x9F \xCE\xA4\xCE\x9F\xCE\x9D "
        "\xCE\x9A\xCE\x91\xCE\x99\xCE\xA1\xCE\x9F",
        /* Arabic-Indic digits ٢٠٢٤ and ١٥٠٪ with Arabic words, and the decimal separator ٣٫١٤ */
        "\xD8\xB9\xD8\xA7\xD9\x85 \xD9\xA2\xD9\xA0\xD9\xA2\xD9\xA4 \xD9\x83\xD8\xA7\xD9\x86 "
        "\xD9\xA1\xD9\xA5\xD9\xA0\xD9\xAA \xD9\xA3\xD9\xAB\xD9\xA1\xD9\xA4",
        /* Extended Arabic-Indic (Persian) digits ۱۴۰۵ */
        "\xDB\xB1\xDB\xB4\xDB\xB0\xDB\xB5",
        /* Hebrew שלום, מה שלומך? (ו, ס look like l, o) */
        "\xD7\xA9\xD7\x9C\xD7\x95\xD7\x9D, \xD7\x9E\xD7\x94 \xD7\xA9\xD7\x9C\xD7\x95\xD7\x9E\xD7\x9A?",
        /* Urdu sentence ending in the Urdu full stop U+06D4, after an English word */
        "\xDB\x8C\xDB\x81 Windows\xDB\x94",
        /* Armenian full stop U+0589 after Google */
        "Google\xD6\x89",
        /* Japanese ノートPCを買った。 and Chinese 使用Python编程〇 */
        "\xE3\x83\x8E\xE3\x83\xBC\xE3\x83\x88PC\xE3\x82\x92\xE8\xB2\xB7\xE3\x81\xA3\xE3\x81\x9F\xE3\x80\x82",
        "\xE4\xBD\xBF\xE7\x94\xA8Python\xE7\xBC\x96\xE7\xA8\x8B\xE3\x80\x87",
        /* Devanagari ०, Telugu anusvara ం (look like o) in their words */
        "\xE0\xA4\xB8\xE0\xA4\xBE\xE0\xA4\xB2 \xE0\xA5\xA8\xE0\xA5\xA6\xE0\xA5\xA8\xE0\xA5\xAA "
        "\xE0\xB0\xA4\xE0\xB1\x86\xE0\xB0\xB2\xE0\xB1\x81\xE0\xB0\x97\xE0\xB1\x81 \xE0\xB0\x85\xE0\xB0\x82",
    };
    for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++) expect_default(texts[t], texts[t]);
}

Test(normalize, look_alikes_inside_a_word_with_an_ascii_letter_fold) {
    expect_default("Micr\xD0\xBEsoft", "Microsoft");                         /* Cyrillic о */
    expect_default("\xD1\x80\xD0\xB0\xD1\x83\xD1\x80\xD0\xB0l", "paypal");   /* the letter comes last */
    expect_default("p\xD0\xB0\xD1\x83\xD1\x80\xD0\xB0l", "paypal");          /* ... and first */
    expect_default("\xD0\xB0\xD1\x80\xD1\x80le", "apple");                   /* аррle */
    expect_default("G\xCE\xBF\xCE\xBF" "gle 2\xD9\xA0" "x", "Google 2.x");    /* Greek ο; Arabic zero in "2٠x" */
    expect_default("d\xCE\xBF" "n\xCA\xBCt", "don't");                      /* modifier apostrophe U+02BC */
    /* A whole look-alike word after a Latin word, at the end of the text, folds too. */
    expect_default("\xD1\x80\xD0\xB0\xD1\x83\xD1\x80\xD0\xB0l \xD1\x80\xD0\xB0\xD1\x80\xD0\xB0",
                   "paypal papa");
    /* With whitespace on, a zero-width character does not split a word. */
    expect_default("\xD1\x80\xD0\xB0\xE2\x80\x8B\xD1\x83pal", "paypal");
}

Test(normalize, a_word_wholly_of_look_alikes_folds_in_latin_text) {
    /* A word made wholly of Cyrillic look-alikes folds where the words
     * around it are Latin (issue 15: "а", "ОК", "уes" survived before). */
    expect_default("my \xD1\x80\xD0\xB0\xD1\x80\xD0\xB0 account", "my papa account");
    expect_default("\xD1\x80\xD0\xB0\xD1\x80\xD0\xB0-pal", "papa-pal");
    /* this is а test, ОК? уes (а, ОК, у Cyrillic; "уes" mixed already folded before) */
    expect_default("this is \xD0\xB0 test, \xD0\x9E\xD0\x9A? \xD1\x83\x65s", "this is a test, OK? yes");
    /* A run of such words takes its context from the words beyond it. */
    expect_default("we \xD0\xB0 \xD1\x80\xD0\xB0\xD1\x80\xD0\xB0 go", "we a papa go");
    /* Offsets: each folded character maps to its own first input byte. */
    normalized r = run_normalize("I \xD0\xB0m", 5, NULL);
    cr_expect_str_eq(r.text, "I am");
    expect_offsets(&r, (size_t[]){0, 1, 2, 4, 5}, 5);
    release(&r);
}

Test(normalize, genuine_cyrillic_and_greek_text_is_not_folded) {
    /* Alone, nothing tells рара from Russian: it stays. */
    expect_default("\xD1\x80\xD0\xB0\xD1\x80\xD0\xB0", "\xD1\x80\xD0\xB0\xD1\x80\xD0\xB0");
    /* Russian text whose short words are all look-alikes (а, Он, ОК) keeps them. */
    const char *russian[] = {
        "\xD0\x9E\xD0\xBD \xD1\x81\xD0\xBA\xD0\xB0\xD0\xB7\xD0\xB0\xD0\xBB: \xD0\xB0 \xD1\x82\xD1\x8B?", /* Он сказал: а ты? */
        ("\xD0\x9E\xD0\xBD\xD0\xB0 \xD1\x81\xD0\xBA\xD0\xB0\xD0\xB7\xD0\xB0\xD0\xBB\xD0\xB0 \xD0\x9E\xD0\x9A "
         "\xD0\xB8 \xD1\x83\xD1\x88\xD0\xBB\xD0\xB0"), /* Она сказала ОК и ушла */
        "\xCE\x97 \xCE\x9F\xCE\xA7\xCE\x99 \xCE\xB5\xCE\xAF\xCE\xBD\xCE\xB1\xCE\xB9", /* Η ΟΧΙ είναι */
        "2024 \xD0\xB0 15", /* numbers are no Latin context */
    };
    for (size_t i = 0; i < sizeof russian / sizeof russian[0]; i++) expect_default(russian[i], russian[i]);
    /* A Russian word quoted in English, and a look-alike next to it, stay:
     * its nearest deciding word on the left is Russian. */
    expect_default("He said \xD0\xBF\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82, \xD0\xB0 she left",
                   "He said \xD0\xBF\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82, \xD0\xB0 she left");
}

Test(normalize, provenance_manifest_characters_are_dropped) {
    /* U+FEFF and variation selectors (U+FE00..FE0F, U+E0100..E01EF), as a
     * provenance manifest appends them, vanish with the zero-width characters. */
    expect_default("Once upon a time\xEF\xBB\xBF\xEF\xB8\x80\xEF\xB8\x8F\xF3\xA0\x84\x80\xF3\xA0\x87\xAF",
                   "Once upon a time");
    expect_default("a\xEF\xB8\x81" "b\xF3\xA0\x84\x85" "c", "abc");
}

Test(normalize, latin_and_shared_look_alikes_fold_anywhere) {
    /* Fullwidth and mathematical letters, dotless i belong to no other
     * script: they fold alone, and make their word Latin. */
    expect_default("\xEF\xBC\xB0\xEF\xBD\x81\xEF\xBD\x99", "Pay");                        /* Ｐａｙ */
    expect_default("\xF0\x9D\x90\xA9\xF0\x9D\x90\x9A\xF0\x9D\x90\xB2", "pay");            /* 𝐩𝐚𝐲 */
    expect_default("\xF0\x9D\x90\xA9\xD0\xB0\xD1\x83", "pay");                            /* 𝐩 + Cyrillic ау */
    /* Typographic punctuation folds in any script's text. */
    expect_default("\xE2\x80\x9C\xD0\x94\xD0\xB0\xE2\x80\x9D \xE2\x80\x93 \xD0\xBE\xD0\xBD\xE2\x80\x99",
                   "\"\xD0\x94\xD0\xB0\" - \xD0\xBE\xD0\xBD'"); /* “Да” – он’ */
}

Test(normalize, late_ascii_letter_folds_the_word_with_offsets) {
    /* аррlе: the word is output unfolded until 'l', then folded again. */
    normalized r = run_normalize("\xD0\xB0\xD1\x80\xD1\x80l\xD0\xB5", 9, NULL);
    cr_expect_str_eq(r.text, "apple");
    expect_offsets(&r, (size_t[]){0, 2, 4, 6, 7, 9}, 6);
    release(&r);
    /* The same without asking for offsets, and with the letter in an ASCII
     * run that is copied whole ("ра" + "yp" + "аl"). */
    char *out = NULL;
    size_t out_size = 0;
    tm_error err = {0};
    const char *in = "\xD1\x80\xD0\xB0ypa\xD0\xB5\xCC\x81 x";
    cr_assert_eq(tm_text_normalize(in, strlen(in), NULL, &out, &out_size, NULL, &err), TM_OK, "%s", err.message);
    cr_expect_str_eq(out, "paypa\xC3\xA9 x");
    free(out);
    /* Decomposed accents in the pending part compose once folded. */
    r = run_normalize("\xD0\xB5\xCC\x81\xD1\x80X", 7, NULL);
    cr_expect_str_eq(r.text, "\xC3\xA9pX");
    expect_offsets(&r, (size_t[]){0, 0, 4, 6, 7}, 5);
    release(&r);
}

Test(normalize, long_words_fold_in_linear_time) {
    /* 300000 Cyrillic а: kept; then one ASCII letter at the end folds them
     * all, in one pass over the word. */
    size_t n = 300000, size = 2 * n + 1;
    char *text = malloc(size + 1);
    cr_assert_not_null(text);
    for (size_t i = 0; i < n; i++) memcpy(text + 2 * i, "\xD0\xB0", 2);
    text[2 * n] = '\0';
    normalized r = run_normalize(text, 2 * n, NULL);
    cr_expect(r.size == 2 * n && memcmp(r.text, text, 2 * n) == 0, "a Cyrillic word changed");
    release(&r);
    text[2 * n] = 'x';
    text[size] = '\0';
    r = run_normalize(text, size, NULL);
    cr_assert_eq(r.size, n + 1);
    size_t as = 0;
    for (size_t i = 0; i < n; i++) as += r.text[i] == 'a';
    cr_expect_eq(as, n);
    cr_expect_eq(r.offsets[n - 1], 2 * (n - 1));
    release(&r);
    free(text);
}

/* ---- whitespace and invisibles -------------------------------------------- */

Test(normalize, space_runs_become_one_space) {
    expect_default("a  b", "a b");
    expect_default("a \t b", "a b");
    expect_default("a\xC2\xA0\xE2\x80\x83\xE3\x80\x80" "b", "a b"); /* NBSP, EM SPACE, IDEOGRAPHIC SPACE */
    expect_default("a\xE2\x80\x80\xE2\x80\x8A" "b", "a b");          /* U+2000, U+200A */
    expect_default("  lead and trail  ", " lead and trail ");
    expect_default("\xE2\x80\xAF\xE2\x81\x9F\xE1\x9A\x80", " "); /* U+202F, U+205F, U+1680 */
}

Test(normalize, space_run_maps_to_its_first_character) {
    normalized r = run_normalize("a \xC2\xA0 b", 6, NULL);
    cr_expect_str_eq(r.text, "a b");
    expect_offsets(&r, (size_t[]){0, 1, 5, 6}, 4);
    release(&r);
}

Test(normalize, line_breaks_are_kept_one_for_one) {
    expect_default("a\r\nb\rc\nd", "a\nb\nc\nd");
    expect_default("a\n\n\nb", "a\n\n\nb");
    expect_default("a\r\n\r\nb", "a\n\nb");
    expect_default("a\r\rb", "a\n\nb");
    expect_default("a  \n  b", "a \n b");
    expect_default("a\xE2\x80\xA8" "b\xE2\x80\xA9" "c\xC2\x85" "d\ve\ff", "a\nb\nc\nd\ne\nf");

    normalized r = run_normalize("a\r\nb", 4, NULL);
    cr_expect_str_eq(r.text, "a\nb");
    expect_offsets(&r, (size_t[]){0, 1, 3, 4}, 4);
    release(&r);
}

Test(normalize, zero_width_characters_are_removed) {
    expect_default("a\xE2\x80\x8B" "b\xE2\x80\x8C" "c\xE2\x80\x8D" "d\xE2\x81\xA0" "e\xEF\xBB\xBF" "f", "abcdef");
    expect_default("\xEF\xBB\xBFhello", "hello");                          /* BOM */
    expect_default("a \xE2\x80\x8B b", "a b");                             /* inside a space run */
    expect_default("e\xE2\x80\x8B\xCC\x81", "\xC3\xA9");                    /* between letter and accent */
    expect_default("p\xE2\x80\x8B\xD0\xB0y\xE2\x80\x8Dpal", "paypal");     /* with a homoglyph */

    normalized r = run_normalize("a\xE2\x80\x8B" "b", 5, NULL);
    cr_expect_str_eq(r.text, "ab");
    expect_offsets(&r, (size_t[]){0, 4, 5}, 3);
    release(&r);
}

Test(normalize, whitespace_off_keeps_spaces_and_invisibles) {
    tm_normalize_options o = make_options(true, true, false);
    const char *in = "a  \r\n\xC2\xA0\xE2\x80\x8B" "b";
    normalized r = run_normalize(in, strlen(in), &o);
    cr_expect_str_eq(r.text, in); /* NBSP is not folded to ' ': spaces belong to the whitespace option */
    release(&r);
}

/* ---- invalid UTF-8 -------------------------------------------------------- */

Test(normalize, invalid_utf8_names_the_byte_offset) {
    expect_invalid("ab\xC3", 3, 2);                   /* truncated at the end */
    expect_invalid("a\xE2\x82" "b", 4, 1);            /* truncated in the middle */
    expect_invalid("\xF0\x9F\x98", 3, 0);             /* truncated 4-byte sequence */
    expect_invalid("abc\xC0\xAF", 5, 3);              /* overlong '/' */
    expect_invalid("ab\xE0\x80\xAF", 5, 2);           /* overlong, 3 bytes */
    expect_invalid("\xF0\x80\x80\xAF", 4, 0);         /* overlong, 4 bytes */
    expect_invalid("x\xED\xA0\x80y", 5, 1);           /* surrogate U+D800 */
    expect_invalid("xy\xED\xBF\xBF", 5, 2);           /* surrogate U+DFFF */
    expect_invalid("\xF4\x90\x80\x80", 4, 0);         /* above U+10FFFF */
    expect_invalid("caf\xC3\xA9\x80", 6, 5);          /* stray continuation byte */
    expect_invalid("\xFF", 1, 0);                     /* never valid */
    expect_invalid("e\xCC\x81\xC3\xA9 \xFE", 7, 6);   /* after text that NFC touches */
}

Test(normalize, random_bytes_fail_exactly_where_core_says) {
    uint64_t state = 12345;
    for (int iteration = 0; iteration < 2000; iteration++) {
        uint8_t bytes[24];
        size_t size = 1 + (size_t)(next_random(&state) % sizeof bytes);
        for (size_t i = 0; i < size; i++) {
            uint64_t r = next_random(&state);
            /* Mostly plausible lead and continuation bytes, some ASCII. */
            bytes[i] = (uint8_t)(r % 3 == 0 ? 0x41 + r % 26 : 0x80 + (r >> 8) % 0x80);
        }
        char *out = NULL;
        size_t out_size = 0, *offsets = NULL;
        tm_error err = {0};
        tm_status s = tm_text_normalize((const char *)bytes, size, NULL, &out, &out_size, &offsets, &err);
        if (tm_utf8_valid((const char *)bytes, size)) {
            cr_assert_eq(s, TM_OK, "valid bytes rejected: %s", err.message);
            cr_expect(tm_utf8_valid(out, out_size));
        } else {
            size_t valid = size;
            while (!tm_utf8_valid((const char *)bytes, valid)) valid--;
            cr_assert_eq(s, TM_ERR_FORMAT);
            char want[96];
            snprintf(want, sizeof want, "text is not valid UTF-8 at byte offset %zu", valid);
            cr_expect_str_eq(err.message, want, "iteration %d", iteration);
        }
        free(out);
        free(offsets);
    }
}

/* ---- options off, counting --------------------------------------------- */

Test(normalize, all_options_off_is_the_identity) {
    tm_normalize_options o = make_options(false, false, false);
    uint64_t state = 7;
    for (int iteration = 0; iteration < 100; iteration++) {
        size_t size;
        char *text = random_text(&state, 1 + (size_t)(next_random(&state) % 300), &size);
        normalized r = run_normalize(text, size, &o);
        cr_assert_eq(r.size, size);
        cr_expect(memcmp(r.text, text, size) == 0, "iteration %d changed the text", iteration);
        size_t start = 0;
        for (size_t i = 0; i < size; i++) {
            if (((uint8_t)text[i] & 0xC0) != 0x80) start = i;
            cr_expect_eq(r.offsets[i], start);
        }
        release(&r);
        free(text);
    }
}

Test(normalize, count_chars_counts_code_points) {
    cr_expect_eq(tm_utf8_count_chars("", 0), 0);
    cr_expect_eq(tm_utf8_count_chars(NULL, 0), 0);
    cr_expect_eq(tm_utf8_count_chars("abc", 3), 3);
    cr_expect_eq(tm_utf8_count_chars("caf\xC3\xA9", 5), 4);
    cr_expect_eq(tm_utf8_count_chars("\xE6\x97\xA5\xF0\x9F\x98\x80x", 8), 3);
    cr_expect_eq(tm_utf8_count_chars("caf\xC3\xA9!", 3), 3); /* only the first `bytes` bytes */
    uint64_t state = 99;
    for (int iteration = 0; iteration < 50; iteration++) {
        size_t size, chars = (size_t)(next_random(&state) % 500);
        char *text = random_text(&state, chars, &size);
        cr_expect_eq(tm_utf8_count_chars(text, size), chars);
        free(text);
    }
}

/* ---- random text: validity, offsets, idempotence ------------------------ */

static void check_random_text(const tm_normalize_options *o, uint64_t seed, int iterations) {
    uint64_t state = seed;
    for (int iteration = 0; iteration < iterations; iteration++) {
        size_t size;
        char *text = random_text(&state, (size_t)(next_random(&state) % 400), &size);
        normalized r = run_normalize(text, size, o);
        cr_assert(tm_utf8_valid(r.text, r.size), "iteration %d: output is not valid UTF-8", iteration);
        cr_expect_eq(strlen(r.text), r.size, "iteration %d: NUL inside the output", iteration);
        for (size_t i = 0; i < r.size; i++) {
            cr_assert_lt(r.offsets[i], size, "iteration %d: offset %zu out of bounds", iteration, i);
            cr_assert(is_character_start(text, size, r.offsets[i]), "iteration %d: offset %zu mid-character",
                      iteration, i);
            if (i > 0)
                cr_assert_geq(r.offsets[i], r.offsets[i - 1], "iteration %d: offsets decrease at %zu", iteration, i);
        }
        normalized again = run_normalize(r.text, r.size, o);
        cr_expect_eq(again.size, r.size, "iteration %d (%s): second pass changed the size", iteration,
                     tm_normalize_options_describe(o));
        cr_expect(again.size == r.size && memcmp(again.text, r.text, r.size) == 0,
                  "iteration %d (%s): second pass changed the text", iteration, tm_normalize_options_describe(o));
        release(&again);
        release(&r);
        free(text);
    }
}

Test(normalize, random_text_defaults) { check_random_text(NULL, 0xC0FFEE, 1500); }

Test(normalize, random_text_every_option_combination) {
    for (int mask = 0; mask < 8; mask++) {
        tm_normalize_options o = make_options(mask & 1, mask & 2, mask & 4);
        check_random_text(&o, 1000 + (uint64_t)mask, 150);
    }
}

/* A character from the pieces of mixed-script words: ASCII letters and
 * digits, look-alikes of Cyrillic, Greek, Arabic digits and Latin/shared
 * scripts (fullwidth, mathematical, dotless i, U+02BC), letters without
 * look-alikes, accents, Katakana, and the separators between words. */
static uint32_t mixed_script_code_point(uint64_t *state) {
    static const uint32_t pieces[] = {
        'a', 'e', 'o', 'p', 'x', 'K', 'l', '1', '0',                       /* ASCII */
        0x0430, 0x0435, 0x043E, 0x0440, 0x0441, 0x0443, 0x0445, 0x041E,    /* Cyrillic look-alikes */
        0x0434, 0x0436, 0x0448, 0x044F,                                    /* Cyrillic, none */
        0x03BF, 0x0391, 0x039F, 0x03BD, 0x03BB, 0x03C9,                    /* Greek */
        0x0660, 0x0661, 0x0665, 0x0627, 0x0647, 0x066B, 0x066A, 0x06D4,    /* Arabic */
        0x05D5, 0x05E1, 0x05F3,                                            /* Hebrew */
        0xFF41, 0xFF30, 0x1D41A, 0x1D7CF, 0x0131, 0x02BC, 0x00D7, 0x237A,  /* Latin and shared */
        0x30CE, 0x30FC, 0x3007, 0x0E50,                                    /* without spaces */
        0x0301, 0x0308, 0x0323, 0x0338, 0x0903, 0x0C02,                    /* marks */
        0x00E9, 0x00F1, 0x04D3,                                            /* precomposed */
        ' ', ' ', '-', '.', '\'', 0x2019, 0x201C, 0x2013, 0x00A0, 0x200B, 0x2039, '\n',
    };
    return pieces[random_in(state, 0, sizeof pieces / sizeof pieces[0] - 1)];
}

Test(normalize, idempotent_on_random_mixed_script_text) {
    uint64_t state = 0x5EED5EEDULL;
    for (int mask = 0; mask < 8; mask++) {
        tm_normalize_options o = make_options(mask & 1, mask & 2, mask & 4);
        for (int iteration = 0; iteration < 400; iteration++) {
            size_t chars = (size_t)(next_random(&state) % 120), size = 0;
            char text[4 * 120 + 1];
            for (size_t i = 0; i < chars; i++)
                size += (size_t)utf8proc_encode_char((utf8proc_int32_t)mixed_script_code_point(&state),
                                                     (uint8_t *)text + size);
            text[size] = '\0';
            normalized r = run_normalize(text, size, &o);
            cr_assert(tm_utf8_valid(r.text, r.size), "iteration %d: output is not valid UTF-8", iteration);
            for (size_t i = 0; i < r.size; i++) {
                cr_assert(is_character_start(text, size, r.offsets[i]), "iteration %d: offset %zu mid-character",
                          iteration, i);
                if (i > 0) cr_assert_geq(r.offsets[i], r.offsets[i - 1], "iteration %d: offsets decrease", iteration);
            }
            normalized again = run_normalize(r.text, r.size, &o);
            cr_expect(again.size == r.size && memcmp(again.text, r.text, r.size) == 0,
                      "%s, iteration %d: \"%s\" -> \"%s\" -> \"%s\"", tm_normalize_options_describe(&o), iteration,
                      text, r.text, again.text);
            release(&again);
            release(&r);
        }
    }
}

Test(normalize, folding_leaves_words_without_latin_alone) {
    /* Random words of Cyrillic, Greek and Arabic letters and digits,
     * look-alikes included, with ASCII punctuation: folding changes
     * nothing, so the output equals that with folding off. */
    static const uint32_t letters[] = {0x0430, 0x0435, 0x043E, 0x0440, 0x0441, 0x0443, 0x0445, 0x0436,
                                       0x041E, 0x0421, 0x03BF, 0x0391, 0x039F, 0x03BD, 0x0660, 0x0661,
                                       0x0665, 0x0627, 0x0647, 0x06F0, 0x05D5, 0x05E1, 0x0301, 0x0308};
    static const char separators[] = " .,;:!?-()\"'\n";
    tm_normalize_options off = make_options(true, false, true);
    uint64_t state = 31337;
    for (int iteration = 0; iteration < 500; iteration++) {
        char text[4 * 100 + 1];
        size_t size = 0, chars = (size_t)(next_random(&state) % 100);
        for (size_t i = 0; i < chars; i++) {
            if (random_in(&state, 0, 4) == 0)
                text[size++] = separators[random_in(&state, 0, sizeof separators - 2)];
            else
                size += (size_t)utf8proc_encode_char(
                    (utf8proc_int32_t)letters[random_in(&state, 0, sizeof letters / sizeof letters[0] - 1)],
                    (uint8_t *)text + size);
        }
        text[size] = '\0';
        normalized folded = run_normalize(text, size, NULL);
        normalized plain = run_normalize(text, size, &off);
        cr_expect_str_eq(folded.text, plain.text, "iteration %d: \"%s\"", iteration, text);
        release(&plain);
        release(&folded);
    }
}

Test(normalize, idempotent_on_tricky_text) {
    static const char *texts[] = {
        "\xD0\xB5\xCC\x81\xCC\xA3",                 /* Cyrillic е + acute + dot below */
        "\xD0\xB0\xCC\x88",                         /* Cyrillic а + diaeresis -> U+04D3 */
        " \xCC\x81  \xCC\x81",                      /* marks after spaces */
        "\r\xE2\x80\x8B\n",                         /* CR, ZWSP, LF */
        "\xE1\x84\x80\xE2\x80\x8B\xE1\x85\xA1",     /* jamo L, ZWSP, jamo V */
        "\xE2\x80\x80\xE2\x80\x81",                 /* U+2000 U+2001 */
        "\xEF\xBC\xA1\xCC\x8A",                     /* fullwidth A + ring above */
    };
    for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++) {
        normalized r = run_normalize(texts[t], strlen(texts[t]), NULL);
        normalized again = run_normalize(r.text, r.size, NULL);
        cr_expect_str_eq(again.text, r.text, "text %zu", t);
        release(&again);
        release(&r);
    }
}

Test(normalize, endless_combining_marks_finish_and_stay_valid) {
    /* 'a' then 200000 marks alternating ccc 230 and 220: the input that
     * makes canonical reordering quadratic. */
    size_t marks = 200000, size = 1 + 2 * marks;
    char *text = malloc(size + 1);
    cr_assert_not_null(text);
    text[0] = 'a';
    for (size_t i = 0; i < marks; i++) {
        text[1 + 2 * i] = '\xCC';
        text[2 + 2 * i] = (i % 2) ? '\xA3' : '\x81'; /* U+0323 dot below, U+0301 acute */
    }
    text[size] = '\0';
    normalized r = run_normalize(text, size, NULL);
    cr_expect(tm_utf8_valid(r.text, r.size));
    cr_expect_eq(tm_utf8_count_chars(r.text, r.size) + 1, tm_utf8_count_chars(text, size),
                 "a and one mark compose, every other mark is kept");
    release(&r);
    free(text);
}

/* ---- threads ------------------------------------------------------------- */

typedef struct {
    const char *text;
    size_t size;
    char *result;
} thread_job;

static void *normalize_in_thread(void *arg) {
    thread_job *job = arg;
    char *out = NULL;
    size_t out_size = 0;
    tm_error err = {0};
    if (tm_text_normalize(job->text, job->size, NULL, &out, &out_size, NULL, &err) == TM_OK) job->result = out;
    return NULL;
}

Test(normalize, threads_share_the_lazy_tables) {
    uint64_t state = 4242;
    size_t size;
    char *text = random_text(&state, 20000, &size);
    /* Each Criterion test runs in a fresh process, so the threads below
     * fill the per-code-point memo at the same time as this one. */
    thread_job jobs[4];
    pthread_t threads[4];
    for (int t = 0; t < 4; t++) {
        jobs[t] = (thread_job){.text = text, .size = size, .result = NULL};
        cr_assert_eq(pthread_create(&threads[t], NULL, normalize_in_thread, &jobs[t]), 0);
    }
    normalized reference = run_normalize(text, size, NULL);
    for (int t = 0; t < 4; t++) {
        pthread_join(threads[t], NULL);
        cr_assert_not_null(jobs[t].result, "thread %d failed", t);
        cr_expect_str_eq(jobs[t].result, reference.text, "thread %d", t);
        free(jobs[t].result);
    }
    release(&reference);
    free(text);
}

/* ---- the ASCII fast path against the general path ------------------------- */

/* Pieces that meet the fast path's edges: lone and doubled spaces and line
 * feeds, CR and CRLF, tabs, a space before a combining mark or before a
 * non-ASCII space, look-alikes next to ASCII letters (a word that must be
 * refolded when a letter arrives after a space or not), zero-width
 * characters, script words, digits and punctuation. */
static const char *const fast_path_pieces[] = {
    "a", "b", "Z", "7", ",", ".", "-", "'", " ", " ", " ", "\n", "\n", "  ", "\n\n", "\r", "\r\n", "\t", " \t",
    "\xCC\x81", "e\xCC\x81", " \xCC\x81", "\xC2\xA0", " \xC2\xA0", "\xE2\x80\x8B", "\xE2\x80\xA8",
    "\xD0\xB0", "\xD1\x80", "\xD0\xA0", "Mic", "r\xD0\xBE", "soft", "\xD1\x80\xD0\xB0\xD1\x83",
    "\xCE\x9F\xCE\xA7\xCE\x99", "\xE3\x83\x8E\xE3\x83\xBC\xE3\x83\x88", "PC", "\xEF\xBC\xA6", "\xCA\xBC",
    "\xE2\x80\x9C", "\xE2\x80\x94", "don", "t", "the", "word", "\xF0\x9F\x99\x82", "\x01", "\x7F", "x",
};

static void check_paths_agree(const char *text, size_t size, const tm_normalize_options *options) {
    char *bytes[3] = {NULL, NULL, NULL};
    size_t sizes[3] = {0, 0, 0}, *offsets[3] = {NULL, NULL, NULL};
    tm_status status[3];
    for (int path = 0; path < 3; path++) {
        tm_error err = {0};
        status[path] = tm_text_normalize_paths(text, size, options, &bytes[path], &sizes[path], &offsets[path], path, &err);
    }
    for (int path = 1; path < 3; path++) {
        cr_assert_eq(status[path], status[0], "path %d status on \"%.*s\" (%s)", path, (int)size, text,
                     tm_normalize_options_describe(options));
        if (status[0] != TM_OK) continue;
        cr_assert_eq(sizes[path], sizes[0], "path %d size on \"%.*s\" (%s)", path, (int)size, text,
                     tm_normalize_options_describe(options));
        cr_assert(memcmp(bytes[path], bytes[0], sizes[0] + 1) == 0, "path %d bytes on \"%.*s\" (%s): \"%s\" vs \"%s\"",
                  path, (int)size, text, tm_normalize_options_describe(options), bytes[path], bytes[0]);
        cr_assert(memcmp(offsets[path], offsets[0], (sizes[0] + 1) * sizeof(size_t)) == 0,
                  "path %d offsets on \"%.*s\" (%s)", path, (int)size, text, tm_normalize_options_describe(options));
    }
    /* tm_text_normalize is path 2. */
    char *plain = NULL;
    size_t plain_size = 0;
    tm_error err = {0};
    tm_status s = tm_text_normalize(text, size, options, &plain, &plain_size, NULL, &err);
    cr_assert_eq(s, status[2]);
    if (s == TM_OK) cr_assert(plain_size == sizes[2] && memcmp(plain, bytes[2], plain_size) == 0);
    free(plain);
    for (int path = 0; path < 3; path++) {
        free(bytes[path]);
        free(offsets[path]);
    }
}

Test(normalize_fast_path, ascii_runs_give_the_general_paths_bytes_and_offsets) {
    uint64_t x = 2024;
    char text[512];
    size_t n_pieces = sizeof fast_path_pieces / sizeof *fast_path_pieces;
    for (int round = 0; round < 4000; round++) {
        size_t size = 0;
        int count = 1 + round % 23;
        for (int k = 0; k < count; k++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            /* Mostly ASCII letters and lone spaces, as English text. */
            const char *piece = (x >> 60) < 6 ? fast_path_pieces[(x >> 33) % 8] : fast_path_pieces[(x >> 33) % n_pieces];
            size_t len = strlen(piece);
            if (size + len >= sizeof text) break;
            memcpy(text + size, piece, len);
            size += len;
        }
        if (round % 97 == 5 && size > 2) text[size / 2] = (char)0xC3; /* invalid UTF-8 somewhere */
        for (int o = 0; o < 8; o++) {
            tm_normalize_options options = make_options(o & 1, o & 2, o & 4);
            check_paths_agree(text, size, &options);
        }
    }
}

Test(normalize_fast_path, english_text_gives_the_general_paths_bytes_and_offsets) {
    static const char text[] =
        "The quick brown fox\njumps over the lazy dog. It's 7 o'clock -- time\n\nfor tea, isn't it?\r\n"
        "Lone spaces between words, a double  space, a tab\there, and a trailing space \n"
        "Micr\xD0\xBEsoft and \xD1\x80\xD0\xB0\xD1\x83pal, na\xC3\xAFve caf\x65\xCC\x81 ok";
    for (int o = 0; o < 8; o++) {
        tm_normalize_options options = make_options(o & 1, o & 2, o & 4);
        for (size_t start = 0; start < 40; start += 3)
            for (size_t end = sizeof text - 1; end > start && end + 60 > sizeof text; end -= 7)
                check_paths_agree(text + start, end - start, &options);
    }
}
