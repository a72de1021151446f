/* Text normalisation before tokenizing: undoes the cheap edits an adversary
 * makes to dodge a detector (decomposed accents, look-alike letters from
 * other scripts, odd spaces and invisible characters) while keeping, for
 * every output byte, the input offset it came from, so that scores on the
 * normalised text map back to the text the user gave. It must never rewrite
 * legitimate text of another script into a mixture of scripts (Russian,
 * Greek, Arabic or Hebrew text comes out as it went in), nor print, abort or
 * read past the input: invalid UTF-8 is an error naming its byte offset, and
 * every size is checked. NFC comes from utf8proc, confusable skeletons
 * (Unicode TR39), scripts and NFC segment boundaries from ICU.
 *
 * Order of work, per character: validate and decode; whitespace (line breaks
 * kept one for one, CRLF/CR -> LF, other White_Space runs -> one ' ',
 * zero-width characters dropped); then NFC over segments (a character with
 * an NFC boundary before it, plus the characters up to the next boundary,
 * all of whose output bytes map to the segment's first input character);
 * then homoglyph folding, followed by NFC again when a fold happened (a
 * folded 'e' before U+0301 must compose to U+00E9). Whitespace goes first so
 * that a zero-width character between a letter and its accent cannot stop
 * them composing.
 *
 * Homoglyph folding. A character is foldable when it is not ASCII and its
 * TR39 skeleton is that of one printable ASCII character; it folds to that
 * character. Every character has a class:
 *   - isolated: characters of scripts written without spaces between words
 *     (Han, Hiragana, Katakana, Bopomofo, Yi, Thai, Lao, Khmer, Myanmar, Tai
 *     scripts), and punctuation and symbols of any specific script (all but
 *     Latin, Common, Inherited), such as the Urdu full stop U+06D4;
 *   - word: letters, marks and numbers (categories L, M, N), and symbols
 *     confusable with an ASCII letter or digit (U+237A, U+00D7);
 *   - separator: the rest (shared punctuation, symbols, spaces, controls).
 * Classes are given per NFC segment by its first character, so a combining
 * mark goes with its base (as UAX #29 rule WB4 does). A word is a maximal run
 * of word-class segments; it is Latin when it contains an ASCII letter or a
 * character that always folds to one (below), as found after NFC and before
 * folding. Then:
 *   - a foldable character of Latin, Common or Inherited script that is not
 *     isolated always folds: fullwidth and mathematical letters, dotless i,
 *     typographic quotes and dashes; none of these belongs to another
 *     script, so folding them cannot mix scripts;
 *   - a foldable word character of any other script (Cyrillic, Greek,
 *     Arabic, Hebrew, ...) folds only when its word is Latin;
 *   - an isolated character never folds.
 * So "раураl" and "Micrоsoft" become "paypal" and "Microsoft" while
 * "Привет", "ΟΧΙ" and Arabic-Indic digits stay, and "ノートPC" keeps its
 * Katakana. The rule is stable, so normalising twice changes nothing: a
 * separator folds to ASCII punctuation and stays a separator, so no two
 * words merge; a Latin word keeps no foldable character, though it may
 * split (U+02BC -> '\'' in "donʼt"); a word that is not Latin keeps its
 * foldable word characters and gains no ASCII letter, since any character
 * of it that always folds to a letter would have made it Latin.
 *
 * Whole look-alike words. A word with no ASCII character made wholly of
 * word characters of a specific script that fold to ASCII letters ("а",
 * "ОК", "рара" in Cyrillic) folds, after the rules above, when the nearest
 * words around it that are neither such words nor numbers hold an ASCII
 * letter: on both sides where both exist, and at least one must
 * (fold_lookalike_words). Russian or Greek text keeps its short look-alike
 * words, since the words around them are Russian or Greek; the rule stays
 * stable (a run of such words takes its context from the same words beyond
 * it each time). Known limitation: a genuine Russian word made wholly of
 * look-alikes quoted among English words is folded too; a Latin word written
 * wholly in look-alikes amid other scripts is not; and script-specific
 * punctuation used as ASCII stays
 * ("paypal۔com" keeps its U+06D4). */
#include "tracemark/detect.h"

#include "detect_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <unicode/uscript.h>
#include <unicode/unorm2.h>
#include <unicode/uspoof.h>
#include <utf8proc.h>

/* ---- options ------------------------------------------------------------ */

void tm_normalize_options_default(tm_normalize_options *options) {
    if (!options) return;
    options->nfc = true;
    options->fold_homoglyphs = true;
    options->normalize_whitespace = true;
}

const char *tm_normalize_options_describe(const tm_normalize_options *options) {
    static const char *const names[8] = {
        "none",         "nfc",         "homoglyphs",         "nfc,homoglyphs",
        "whitespace",   "nfc,whitespace", "homoglyphs,whitespace", "nfc,homoglyphs,whitespace",
    };
    if (!options) return names[7];
    return names[(options->nfc ? 1 : 0) | (options->fold_homoglyphs ? 2 : 0) | (options->normalize_whitespace ? 4 : 0)];
}

/* ---- Unicode services, opened once per process -------------------------- */

enum {
    CODE_POINT_LIMIT = 0x110000,
    SKELETON_MAX = 16, /* bytes; a skeleton longer than this is no single ASCII character's */
};

/* How a character takes part in homoglyph folding (see the file head). */
typedef enum {
    CLASS_SEPARATOR = 0, /* folds whenever it is foldable; ends a word */
    CLASS_WORD = 1,      /* makes words; folds inside a Latin word (anywhere if FOLD_ALWAYS) */
    CLASS_ISOLATED = 2,  /* never folds; ends a word */
} fold_class;

/* character_cache entries: 0 while unknown, else FOLD_KNOWN, the class, the
 * FOLD_ flags below, and the ASCII replacement (0 for none) in the low byte. */
enum {
    FOLD_CLASS_SHIFT = 8,
    FOLD_ALWAYS = 1 << 10, /* foldable, and folds whatever its word */
    FOLD_LATIN = 1 << 11,  /* an ASCII letter, or a character that always folds to one */
    /* Not about folding: the other per-character facts the hot path needs,
     * memoised with the rest so that a character costs one table read. */
    CHAR_BOUNDARY = 1 << 12,   /* NFC has a boundary before it: it starts a segment */
    CHAR_NFC_STABLE = 1 << 13, /* NFC leaves it alone (no canonical decomposition) */
    CHAR_SPACE = 1 << 14,      /* zero-width, line break or horizontal space: whitespace handles it */
    FOLD_KNOWN = 1 << 15,
};

static pthread_once_t unicode_once = PTHREAD_ONCE_INIT;
static const UNormalizer2 *nfc_normalizer;
static UErrorCode nfc_status;
/* Never closed: it lives as long as the process, and ICU documents its
 * const functions (uspoof_getSkeletonUTF8) as safe to call from many threads. */
static USpoofChecker *spoof_checker;
static UErrorCode spoof_status;
/* The skeleton of each printable ASCII character ("" where ICU failed). */
static char ascii_skeleton[128][SKELETON_MAX];
/* Per-code-point memo of the fold, the class and the CHAR_ facts. A
 * skeleton costs ~100 ns, and even utf8proc and ICU property calls showed
 * up as a third of the time on Russian text, so one read of this table is
 * all a character costs after its first time. Filled lazily by any thread: racing writers store the same
 * value, and relaxed atomics make that well defined. 2.2 MB of zero pages,
 * only the touched ones become resident. */
static _Atomic uint16_t character_cache[CODE_POINT_LIMIT];

/* The class of each ASCII character: letters and digits are word
 * characters, the rest separators (none of which is foldable); and the
 * whole memo entry of each. */
static uint8_t ascii_class[128];
static bool ascii_letter[128];
static uint16_t ascii_entry[128];

static void unicode_open(void) {
    for (int c = 0; c < 128; c++) {
        ascii_letter[c] = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
        ascii_class[c] = (uint8_t)(ascii_letter[c] || (c >= '0' && c <= '9') ? CLASS_WORD : CLASS_SEPARATOR);
        bool space = c == ' ' || (c >= 0x09 && c <= 0x0D);
        ascii_entry[c] = (uint16_t)(FOLD_KNOWN | (unsigned)ascii_class[c] << FOLD_CLASS_SHIFT |
                                    (ascii_letter[c] ? FOLD_LATIN : 0) | CHAR_BOUNDARY | CHAR_NFC_STABLE |
                                    (space ? CHAR_SPACE : 0));
    }
    nfc_status = U_ZERO_ERROR;
    nfc_normalizer = unorm2_getNFCInstance(&nfc_status);
    spoof_status = U_ZERO_ERROR;
    spoof_checker = uspoof_open(&spoof_status);
    if (U_FAILURE(spoof_status)) {
        spoof_checker = NULL;
        return;
    }
    for (int c = 0x21; c < 0x7F; c++) {
        char in[1] = {(char)c};
        UErrorCode status = U_ZERO_ERROR;
        int32_t n = uspoof_getSkeletonUTF8(spoof_checker, 0, in, 1, ascii_skeleton[c], SKELETON_MAX, &status);
        if (U_FAILURE(status) || n <= 0 || n >= SKELETON_MAX) n = 0;
        ascii_skeleton[c][n] = '\0';
    }
}

static tm_status unicode_ready(const tm_normalize_options *options, tm_error *err) {
    pthread_once(&unicode_once, unicode_open);
    if (options->nfc && U_FAILURE(nfc_status))
        return tm_error_set(err, TM_ERR_UNSUPPORTED, "text normalisation: ICU NFC data unavailable: %s",
                            u_errorName(nfc_status));
    if (options->fold_homoglyphs && !spoof_checker)
        return tm_error_set(err, TM_ERR_UNSUPPORTED, "text normalisation: ICU spoof checker unavailable: %s",
                            u_errorName(spoof_status));
    return TM_OK;
}

static size_t encode_utf8(uint32_t cp, uint8_t out[4]) {
    if (cp < 0x80) { out[0] = (uint8_t)cp; return 1; }
    if (cp < 0x800) { out[0] = (uint8_t)(0xC0 | (cp >> 6)); out[1] = (uint8_t)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | (cp >> 12));
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | (cp >> 18));
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---- decoding ------------------------------------------------------------ */

/* Decode one non-ASCII character at p (left > 0 bytes). Returns its length,
 * or 0 when the bytes are not valid UTF-8 (as tm_utf8_valid_prefix judges
 * them: no overlongs, no surrogates, nothing above U+10FFFF, no truncation). */
static inline size_t decode_utf8(const uint8_t *p, size_t left, uint32_t *cp) {
    size_t n = (size_t)tm_utf8_sequence_length(p[0]);
    if (n > left) return 0;
    if (tm_utf8_valid_prefix((const char *)p, n) != n) return 0;
    static const uint8_t lead_mask[5] = {0, 0x7F, 0x1F, 0x0F, 0x07};
    uint32_t value = p[0] & lead_mask[n];
    for (size_t i = 1; i < n; i++) value = (value << 6) | (p[i] & 0x3Fu);
    *cp = value;
    return n;
}

static bool is_ascii_upper(int c) { return c >= 'A' && c <= 'Z'; }
static bool is_ascii_lower(int c) { return c >= 'a' && c <= 'z'; }
static bool is_ascii_digit(int c) { return c >= '0' && c <= '9'; }

/* The ASCII character a non-ASCII cp folds to, or 0. A character folds
 * when its skeleton equals the skeleton of a printable ASCII character.
 * Several ASCII characters can share one skeleton (I, l, 1 and | all have
 * "l"; 0 and O have "O"), so the replacement follows the character's own
 * kind: Greek capital iota becomes 'I', Bengali zero '0', never the
 * skeleton's arbitrary prototype. Spaces are left to the whitespace option. */
static uint8_t fold_replacement(uint32_t cp, utf8proc_category_t category) {
    uint8_t in[4];
    size_t n_in = encode_utf8(cp, in);
    char skeleton[SKELETON_MAX];
    UErrorCode status = U_ZERO_ERROR;
    int32_t n = uspoof_getSkeletonUTF8(spoof_checker, 0, (const char *)in, (int32_t)n_in, skeleton, SKELETON_MAX,
                                       &status);
    if (U_FAILURE(status) || n <= 0 || n >= SKELETON_MAX) return 0;
    skeleton[n] = '\0';

    int first = 0, upper = 0, lower = 0, digit = 0, prototype = 0;
    for (int c = 0x21; c < 0x7F; c++) {
        if (ascii_skeleton[c][0] == '\0' || strcmp(ascii_skeleton[c], skeleton) != 0) continue;
        if (!first) first = c;
        if (!upper && is_ascii_upper(c)) upper = c;
        if (!lower && is_ascii_lower(c)) lower = c;
        if (!digit && is_ascii_digit(c)) digit = c;
        if (n == 1 && skeleton[0] == c) prototype = c;
    }
    if (!first) return 0;
    int chosen = 0;
    switch (category) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LT: chosen = upper; break;
    case UTF8PROC_CATEGORY_LL: chosen = lower; break;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO: chosen = digit; break;
    default: break;
    }
    if (!chosen) chosen = prototype ? prototype : first;
    return (uint8_t)chosen;
}

/* Scripts written without spaces between words: a run of them is no word
 * in the sense of this file, so an ASCII letter next to one ("ノートPC")
 * must not fold it (UAX #29 likewise breaks words around ideographs,
 * Hiragana and Katakana, and leaves South-East Asian scripts to
 * dictionaries). */
static bool script_without_spaces(UScriptCode script) {
    switch (script) {
    case USCRIPT_HAN:
    case USCRIPT_HIRAGANA:
    case USCRIPT_KATAKANA:
    case USCRIPT_KATAKANA_OR_HIRAGANA:
    case USCRIPT_BOPOMOFO:
    case USCRIPT_YI:
    case USCRIPT_THAI:
    case USCRIPT_LAO:
    case USCRIPT_KHMER:
    case USCRIPT_MYANMAR:
    case USCRIPT_LANNA:
    case USCRIPT_TAI_LE:
    case USCRIPT_NEW_TAI_LUE:
    case USCRIPT_TAI_VIET: return true;
    default: return false;
    }
}

/* Invisible characters that the whitespace step drops: the zero-width
 * space, joiners and word joiner, U+FEFF (byte order mark / zero-width
 * no-break space), and the variation selectors U+FE00..FE0F and
 * U+E0100..E01EF. The last two are what provenance/ embeds its manifest in
 * (U+FEFF followed by selectors, appended to the text): dropping them here
 * means an embedded manifest never changes a detection result. */
static bool is_zero_width(uint32_t cp) {
    return cp == 0x200B || cp == 0x200C || cp == 0x200D || cp == 0x2060 || cp == 0xFEFF ||
           (cp >= 0xFE00 && cp <= 0xFE0F) || (cp >= 0xE0100 && cp <= 0xE01EF);
}

/* Line breaks of Unicode's White_Space set (UAX #14 mandatory breaks). */
static bool is_line_break(uint32_t cp) {
    return (cp >= 0x0A && cp <= 0x0D) || cp == 0x85 || cp == 0x2028 || cp == 0x2029;
}

/* The rest of White_Space: tab and the space separators (category Zs). */
static bool is_horizontal_space(uint32_t cp) {
    if (cp < 0x80) return cp == ' ' || cp == '\t';
    return utf8proc_category((utf8proc_int32_t)cp) == UTF8PROC_CATEGORY_ZS;
}

/* True when NFC leaves the single code point cp alone: it has no canonical
 * decomposition (utf8proc marks compatibility mappings with a decomp_type). */
static bool nfc_stable_alone(uint32_t cp) {
    const utf8proc_property_t *p = utf8proc_get_property((utf8proc_int32_t)cp);
    return p->decomp_seqindex == UINT16_MAX || p->decomp_type != 0;
}

/* The memo entry of a non-ASCII cp. Folding facts need the spoof checker,
 * boundaries the NFC data: each is left out when its service is missing,
 * and the option needing it then fails in unicode_ready. */
static uint16_t character_compute(uint32_t cp) {
    utf8proc_category_t category = utf8proc_category((utf8proc_int32_t)cp);
    uint8_t replacement = spoof_checker ? fold_replacement(cp, category) : 0;
    UErrorCode status = U_ZERO_ERROR;
    UScriptCode script = uscript_getScript((UChar32)cp, &status);
    if (U_FAILURE(status)) script = USCRIPT_UNKNOWN;
    bool letter_mark_number = category >= UTF8PROC_CATEGORY_LU && category <= UTF8PROC_CATEGORY_NO;
    bool shared = script == USCRIPT_LATIN || script == USCRIPT_COMMON || script == USCRIPT_INHERITED ||
                  script == USCRIPT_UNKNOWN;
    fold_class class;
    if (script_without_spaces(script))
        class = CLASS_ISOLATED;
    else if (letter_mark_number || (replacement && ascii_class[replacement] == CLASS_WORD))
        class = CLASS_WORD;
    else if (!shared)
        class = CLASS_ISOLATED;
    else
        class = CLASS_SEPARATOR;
    unsigned entry = FOLD_KNOWN | (unsigned)class << FOLD_CLASS_SHIFT | replacement;
    if (replacement && class != CLASS_ISOLATED && shared) {
        entry |= FOLD_ALWAYS;
        if (ascii_letter[replacement]) entry |= FOLD_LATIN;
    }
    if (nfc_normalizer && unorm2_hasBoundaryBefore(nfc_normalizer, (UChar32)cp)) entry |= CHAR_BOUNDARY;
    if (nfc_stable_alone(cp)) entry |= CHAR_NFC_STABLE;
    if (is_zero_width(cp) || is_line_break(cp) || is_horizontal_space(cp)) entry |= CHAR_SPACE;
    return (uint16_t)entry;
}

/* The memo entry of cp, filled on first use. */
static inline uint16_t char_lookup(uint32_t cp) {
    if (cp < 0x80) return ascii_entry[cp];
    uint16_t value = atomic_load_explicit(&character_cache[cp], memory_order_relaxed);
    if (value == 0) {
        value = character_compute(cp);
        atomic_store_explicit(&character_cache[cp], value, memory_order_relaxed);
    }
    return value;
}

static inline fold_class fold_class_of(uint16_t entry) { return (fold_class)((entry >> FOLD_CLASS_SHIFT) & 3); }
static inline uint32_t fold_target(uint16_t entry) { return entry & 0xFFu; }

/* ---- the output: bytes plus, optionally, one input offset per byte ------ */

typedef struct {
    char *bytes;
    size_t *offsets; /* NULL when the caller did not ask */
    size_t size, capacity;
} output;

/* Room for `more` bytes plus the terminating NUL (and the final offset). */
static tm_status output_reserve(output *o, size_t more, tm_error *err) {
    size_t need;
    if (!tm_add_size(o->size, more, &need) || !tm_add_size(need, 1, &need))
        return tm_error_set(err, TM_ERR_NOMEM, "text normalisation: output size overflows");
    if (need <= o->capacity) return TM_OK;
    size_t capacity = o->capacity + o->capacity / 2;
    if (capacity < o->capacity || capacity < need) capacity = need;
    size_t offset_bytes;
    if (!tm_mul_size(capacity, sizeof(size_t), &offset_bytes))
        return tm_error_set(err, TM_ERR_NOMEM, "text normalisation: output size overflows");
    char *bytes = realloc(o->bytes, capacity);
    if (!bytes) return tm_error_set(err, TM_ERR_NOMEM, "text normalisation: out of memory (%zu bytes)", capacity);
    o->bytes = bytes;
    if (o->offsets) {
        size_t *offsets = realloc(o->offsets, offset_bytes);
        if (!offsets)
            return tm_error_set(err, TM_ERR_NOMEM, "text normalisation: out of memory (%zu offsets)", capacity);
        o->offsets = offsets;
    }
    o->capacity = capacity;
    return TM_OK;
}

static inline tm_status output_code_point(output *o, uint32_t cp, size_t offset, tm_error *err) {
    uint8_t bytes[4];
    size_t n = encode_utf8(cp, bytes);
    if (o->capacity - o->size <= n) { /* the NUL needs one more */
        tm_status s = output_reserve(o, n, err);
        if (s != TM_OK) return s;
    }
    /* A loop, not memcpy: for 1 to 4 bytes the library call costs more. */
    for (size_t i = 0; i < n; i++) o->bytes[o->size + i] = (char)bytes[i];
    if (o->offsets)
        for (size_t i = 0; i < n; i++) o->offsets[o->size + i] = offset;
    o->size += n;
    return TM_OK;
}

/* ---- segments: NFC and folding ------------------------------------------- */

enum {
    /* A segment is cut after this many code points. Real text never comes
     * close (Zalgo text stacks a few dozen marks); without a cut, a base
     * followed by a million alternating marks would make utf8proc's
     * quadratic canonical reordering take hours. Past the cut, the output is
     * still valid UTF-8 but not exactly NFC (cf. UAX #15 Stream-Safe Text). */
    SEGMENT_MAX = 128,
    /* A canonical decomposition is at most 4 code points long. */
    DECOMPOSED_MAX = 4 * SEGMENT_MAX,
    FOLD_ROUNDS = 3,
};

typedef struct {
    const tm_normalize_options *options;
    output out;
    uint32_t segment[SEGMENT_MAX];
    size_t segment_length;
    size_t segment_offset; /* input offset of the segment's first character */
    uint16_t segment_entry; /* memo entry of the segment's first character */
    /* whitespace state */
    bool in_space_run;
    bool after_cr;
    /* word state, for homoglyph folding */
    bool in_word;         /* the last segment output is of the word class */
    bool word_has_letter; /* its word has an ASCII letter, or a character that always folds to one:
                             its foldable characters fold as they come */
    bool word_pending;    /* its word has none yet, but a foldable word character output unfolded */
    size_t word_start;    /* output byte where that word starts */
    /* a word's bytes and offsets while it is folded again */
    char *scratch;
    size_t *scratch_offsets;
    size_t scratch_capacity;
} normalizer;

/* NFC of cps[0..n) in place, the new length in *length. It can exceed n
 * (a composition-excluded character such as U+0958 stays decomposed), never
 * capacity: utf8proc reports a larger need instead of writing past it. */
static tm_status nfc_code_points(utf8proc_int32_t *cps, size_t n, size_t capacity, size_t *length, tm_error *err) {
    uint8_t utf8[4 * DECOMPOSED_MAX];
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) bytes += encode_utf8((uint32_t)cps[i], utf8 + bytes);
    utf8proc_ssize_t m = utf8proc_decompose(utf8, (utf8proc_ssize_t)bytes, cps, (utf8proc_ssize_t)capacity,
                                            UTF8PROC_STABLE | UTF8PROC_DECOMPOSE);
    if (m < 0)
        return tm_error_set(err, TM_ERR_FORMAT, "text normalisation: utf8proc: %s", utf8proc_errmsg(m));
    if ((size_t)m > capacity)
        return tm_error_set(err, TM_ERR_LIMIT, "text normalisation: a segment decomposes to %zd code points",
                            (ssize_t)m);
    m = utf8proc_normalize_utf32(cps, m, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (m < 0)
        return tm_error_set(err, TM_ERR_FORMAT, "text normalisation: utf8proc: %s", utf8proc_errmsg(m));
    *length = (size_t)m;
    return TM_OK;
}

/* Fold the foldable characters of cps[0..*length) that may fold: those
 * marked FOLD_ALWAYS, and word characters when fold_words. NFC again after
 * a fold (a folded 'e' composes with a following U+0301), then fold what
 * that composed, a bounded number of times. *pending is set when a
 * foldable word character was left unfolded. */
static tm_status fold_code_points(utf8proc_int32_t *cps, size_t *length, bool fold_words, bool nfc, bool *pending,
                                  tm_error *err) {
    for (int round = 0; round < FOLD_ROUNDS; round++) {
        bool folded_any = false;
        for (size_t i = 0; i < *length; i++) {
            if (cps[i] < 0x80) continue;
            uint16_t entry = char_lookup((uint32_t)cps[i]);
            uint32_t target = fold_target(entry);
            if (!target) continue;
            if ((entry & FOLD_ALWAYS) || (fold_words && fold_class_of(entry) == CLASS_WORD)) {
                cps[i] = (utf8proc_int32_t)target;
                folded_any = true;
            } else if (fold_class_of(entry) == CLASS_WORD) {
                *pending = true;
            }
        }
        if (!folded_any || !nfc) break;
        tm_status s = nfc_code_points(cps, *length, DECOMPOSED_MAX, length, err);
        if (s != TM_OK) return s;
    }
    return TM_OK;
}

static tm_status output_code_points(output *o, const utf8proc_int32_t *cps, size_t length, size_t offset,
                                    tm_error *err) {
    for (size_t i = 0; i < length; i++) {
        tm_status s = output_code_point(o, (uint32_t)cps[i], offset, err);
        if (s != TM_OK) return s;
    }
    return TM_OK;
}

/* A segment of the word class follows: open a word unless one is open. */
static inline void word_continue(normalizer *z) {
    if (z->in_word) return;
    z->in_word = true;
    z->word_has_letter = false;
    z->word_pending = false;
    z->word_start = z->out.size;
}

/* The open word, output so far unfolded, has just met its first ASCII
 * letter: take its text back out of the output and fold it. Each word is
 * folded again at most once, so the work stays linear in the text. */
static tm_status word_refold(normalizer *z, tm_error *err) {
    output *o = &z->out;
    size_t start = z->word_start, n = o->size - start;
    if (n > z->scratch_capacity) {
        size_t offset_bytes;
        if (!tm_mul_size(n, sizeof(size_t), &offset_bytes))
            return tm_error_set(err, TM_ERR_NOMEM, "text normalisation: word size overflows");
        char *scratch = realloc(z->scratch, n);
        if (!scratch) return tm_error_set(err, TM_ERR_NOMEM, "text normalisation: out of memory (%zu bytes)", n);
        z->scratch = scratch;
        if (o->offsets) {
            size_t *offsets = realloc(z->scratch_offsets, offset_bytes);
            if (!offsets)
                return tm_error_set(err, TM_ERR_NOMEM, "text normalisation: out of memory (%zu offsets)", n);
            z->scratch_offsets = offsets;
        }
        z->scratch_capacity = n;
    }
    memcpy(z->scratch, o->bytes + start, n);
    if (o->offsets) memcpy(z->scratch_offsets, o->offsets + start, n * sizeof(size_t));
    o->size = start;

    /* Segments again, as push_character cuts them; the output of a segment
     * mapped to one offset, so each piece takes its first byte's. */
    const bool nfc = z->options->nfc;
    const uint8_t *p = (const uint8_t *)z->scratch;
    utf8proc_int32_t cps[DECOMPOSED_MAX];
    size_t length = 0, segment_offset = 0;
    bool unused = false;
    for (size_t i = 0; i <= n;) {
        uint32_t cp = 0;
        size_t bytes = 0;
        if (i < n) {
            cp = p[i];
            bytes = 1;
            if (cp >= 0x80 && (bytes = decode_utf8(p + i, n - i, &cp)) == 0)
                return tm_error_set(err, TM_ERR_FORMAT, "text normalisation: output is not UTF-8 (internal)");
        }
        if (length > 0 && (i == n || !nfc || length == SEGMENT_MAX || (char_lookup(cp) & CHAR_BOUNDARY))) {
            tm_status s = fold_code_points(cps, &length, true, nfc, &unused, err);
            if (s == TM_OK) s = output_code_points(o, cps, length, segment_offset, err);
            if (s != TM_OK) return s;
            length = 0;
        }
        if (i == n) break;
        if (length == 0) segment_offset = o->offsets ? z->scratch_offsets[i] : 0;
        cps[length++] = (utf8proc_int32_t)cp;
        i += bytes;
    }
    return TM_OK;
}

/* The open word has an ASCII letter from now on. */
static inline tm_status word_gains_letter(normalizer *z, tm_error *err) {
    z->word_has_letter = true;
    if (!z->word_pending) return TM_OK;
    z->word_pending = false;
    return word_refold(z, err);
}

/* Output one NFC segment cps[0..length), folding what may fold. */
static tm_status emit_segment(normalizer *z, utf8proc_int32_t *cps, size_t length, size_t offset, tm_error *err) {
    const tm_normalize_options *options = z->options;
    if (options->fold_homoglyphs) {
        bool pending = false;
        tm_status s;
        if (fold_class_of(char_lookup((uint32_t)cps[0])) != CLASS_WORD) {
            z->in_word = false;
            s = fold_code_points(cps, &length, false, options->nfc, &pending, err);
        } else {
            word_continue(z);
            if (!z->word_has_letter)
                for (size_t i = 0; i < length; i++)
                    if (char_lookup((uint32_t)cps[i]) & FOLD_LATIN) {
                        if ((s = word_gains_letter(z, err)) != TM_OK) return s;
                        break;
                    }
            s = fold_code_points(cps, &length, z->word_has_letter, options->nfc, &pending, err);
            if (pending) z->word_pending = true;
        }
        if (s != TM_OK) return s;
    }
    return output_code_points(&z->out, cps, length, offset, err);
}

/* emit_segment for a segment of one character that NFC keeps as it is:
 * the common case, kept free of copies. */
static tm_status emit_character(normalizer *z, uint32_t cp, uint16_t entry, size_t offset, tm_error *err) {
    if (z->options->fold_homoglyphs) {
        if (fold_class_of(entry) != CLASS_WORD) {
            z->in_word = false;
        } else {
            word_continue(z);
            if ((entry & FOLD_LATIN) && !z->word_has_letter) {
                tm_status s = word_gains_letter(z, err);
                if (s != TM_OK) return s;
            }
            if (fold_target(entry) && !(entry & FOLD_ALWAYS)) {
                if (z->word_has_letter)
                    cp = fold_target(entry);
                else
                    z->word_pending = true;
            }
        }
        if (entry & FOLD_ALWAYS) cp = fold_target(entry);
    }
    return output_code_point(&z->out, cp, offset, err);
}

/* The word state after a run of ASCII copied to the output at out_start
 * (ASCII characters are whole segments and never fold). A pending word the
 * run continues with a letter must be folded before the copy: see
 * word_before_ascii_run. */
static void word_after_ascii_run(normalizer *z, const uint8_t *run, size_t n, size_t out_start) {
    size_t k = n;
    bool letter = false;
    while (k > 0 && ascii_class[run[k - 1]] == CLASS_WORD) letter |= ascii_letter[run[--k]];
    if (k == n) {
        z->in_word = false;
    } else if (k > 0 || !z->in_word) {
        z->in_word = true;
        z->word_start = out_start + k;
        z->word_has_letter = letter;
        z->word_pending = false;
    } else if (letter) {
        z->word_has_letter = true; /* a pending word was folded by word_before_ascii_run */
    }
}

static tm_status word_before_ascii_run(normalizer *z, const uint8_t *run, size_t n, tm_error *err) {
    if (!z->in_word || !z->word_pending) return TM_OK;
    for (size_t k = 0; k < n && ascii_class[run[k]] == CLASS_WORD; k++)
        if (ascii_letter[run[k]]) return word_gains_letter(z, err);
    return TM_OK;
}

static tm_status segment_flush(normalizer *z, tm_error *err) {
    size_t n = z->segment_length;
    if (n == 0) return TM_OK;
    z->segment_length = 0;
    size_t offset = z->segment_offset;
    const tm_normalize_options *options = z->options;

    /* The common cases: one ASCII character, or one character NFC keeps. */
    if (n == 1 && (!options->nfc || (z->segment_entry & CHAR_NFC_STABLE)))
        return emit_character(z, z->segment[0], z->segment_entry, offset, err);

    utf8proc_int32_t cps[DECOMPOSED_MAX];
    size_t length = n;
    for (size_t i = 0; i < n; i++) cps[i] = (utf8proc_int32_t)z->segment[i];
    if (options->nfc) {
        tm_status s = nfc_code_points(cps, length, DECOMPOSED_MAX, &length, err);
        if (s != TM_OK) return s;
    }
    return emit_segment(z, cps, length, offset, err);
}

/* One character after whitespace handling, with its memo entry, into the
 * current segment. */
static tm_status push_character(normalizer *z, uint32_t cp, uint16_t entry, size_t offset, tm_error *err) {
    const tm_normalize_options *options = z->options;
    if (!options->nfc) {
        /* Without NFC, every character is its own segment. */
        z->segment[0] = cp;
        z->segment_length = 1;
        z->segment_offset = offset;
        z->segment_entry = entry;
        return segment_flush(z, err);
    }
    if (z->segment_length == SEGMENT_MAX || (z->segment_length > 0 && (entry & CHAR_BOUNDARY))) {
        tm_status s = segment_flush(z, err);
        if (s != TM_OK) return s;
    }
    if (z->segment_length == 0) {
        z->segment_offset = offset;
        z->segment_entry = entry;
    }
    z->segment[z->segment_length++] = cp;
    return TM_OK;
}

/* One decoded input character. */
static tm_status take_character(normalizer *z, uint32_t cp, size_t offset, tm_error *err) {
    uint16_t entry = char_lookup(cp);
    if (!z->options->normalize_whitespace) return push_character(z, cp, entry, offset, err);
    bool after_cr = z->after_cr;
    z->after_cr = false;
    if (entry & CHAR_SPACE) {
        if (cp >= 0x80 && is_zero_width(cp)) return TM_OK;
        if (is_line_break(cp)) {
            z->in_space_run = false;
            if (cp == '\n' && after_cr) return TM_OK; /* the LF of a CRLF */
            z->after_cr = cp == '\r';
            return push_character(z, '\n', ascii_entry['\n'], offset, err);
        }
        if (z->in_space_run) return TM_OK;
        z->in_space_run = true;
        return push_character(z, ' ', ascii_entry[' '], offset, err);
    }
    z->in_space_run = false;
    return push_character(z, cp, entry, offset, err);
}

/* ---- whole look-alike words in Latin text ---------------------------------- */

typedef enum { WORD_NEUTRAL, WORD_LATIN, WORD_OTHER, WORD_CANDIDATE } word_kind;

typedef struct {
    size_t start, end; /* bytes of the output */
    bool ascii_letter, all_lookalike, any_letter;
    word_kind kind;
} word_span;

/* The second fold (file head, "Whole look-alike words"): a word with no
 * ASCII character whose every character is a word character of a specific
 * script folding to an ASCII letter ("а", "ОК", "уes" in Cyrillic) folds
 * when the nearest words around it that are neither such words nor
 * numbers are Latin (hold an ASCII letter): on both sides where both
 * exist, and at least one must. Words of genuine Russian or Greek text have
 * letters without ASCII look-alikes around them, so they stay. Rewrites
 * bytes (and offsets) in place; the text only shrinks. */
static tm_status fold_lookalike_words(uint8_t *bytes, size_t *size, size_t *offsets, tm_error *err) {
    size_t n = *size, i = 0;
    while (i < n && bytes[i] < 0x80) i++;
    if (i == n) return TM_OK; /* plain ASCII: nothing to find */
    size_t n_words = 0, capacity = 64;
    word_span *words = malloc(capacity * sizeof *words);
    if (!words) return tm_error_set(err, TM_ERR_NOMEM, "text normalisation: out of memory");
    bool in_word = false;
    for (i = 0; i < n;) {
        uint32_t cp = bytes[i];
        size_t length = 1;
        if (cp >= 0x80 && (length = decode_utf8(bytes + i, n - i, &cp)) == 0) length = 1; /* output is valid UTF-8 */
        uint16_t entry = char_lookup(cp);
        fold_class class = fold_class_of(entry);
        if (class == CLASS_SEPARATOR) {
            in_word = false;
            i += length;
            continue;
        }
        if (!in_word || class == CLASS_ISOLATED) {
            if (n_words == capacity) {
                word_span *grown = realloc(words, 2 * capacity * sizeof *words);
                if (!grown) {
                    free(words);
                    return tm_error_set(err, TM_ERR_NOMEM, "text normalisation: out of memory");
                }
                words = grown;
                capacity *= 2;
            }
            words[n_words++] = (word_span){i, i, false, true, false, WORD_NEUTRAL};
        }
        in_word = class != CLASS_ISOLATED; /* an isolated character is a word of its own */
        word_span *w = &words[n_words - 1];
        w->end = i + length;
        uint32_t target = fold_target(entry);
        bool number = cp < 0x80 ? is_ascii_digit((int)cp)
                                : utf8proc_category((utf8proc_int32_t)cp) >= UTF8PROC_CATEGORY_ND &&
                                      utf8proc_category((utf8proc_int32_t)cp) <= UTF8PROC_CATEGORY_NO;
        if (cp < 0x80 && ascii_letter[cp]) w->ascii_letter = true;
        if (!number || class == CLASS_ISOLATED) w->any_letter = true;
        if (!(cp >= 0x80 && class == CLASS_WORD && target && ascii_letter[target] && !(entry & FOLD_ALWAYS)))
            w->all_lookalike = false;
        i += length;
    }
    for (size_t w = 0; w < n_words; w++)
        words[w].kind = words[w].ascii_letter    ? WORD_LATIN
                        : words[w].all_lookalike ? WORD_CANDIDATE
                        : words[w].any_letter    ? WORD_OTHER
                                                 : WORD_NEUTRAL;
    /* The nearest deciding (Latin or other) word on each side of every candidate. */
    word_kind *left = malloc((n_words + 1) * sizeof *left);
    if (!left) {
        free(words);
        return tm_error_set(err, TM_ERR_NOMEM, "text normalisation: out of memory");
    }
    word_kind seen = WORD_NEUTRAL;
    for (size_t w = 0; w < n_words; w++) {
        left[w] = seen;
        if (words[w].kind == WORD_LATIN || words[w].kind == WORD_OTHER) seen = words[w].kind;
    }
    bool changed = false;
    seen = WORD_NEUTRAL;
    for (size_t w = n_words; w-- > 0;) {
        word_kind k = words[w].kind;
        if (k == WORD_LATIN || k == WORD_OTHER) seen = k;
        if (k != WORD_CANDIDATE) continue;
        bool fold = (left[w] == WORD_LATIN || seen == WORD_LATIN) && left[w] != WORD_OTHER && seen != WORD_OTHER;
        if (!fold) words[w].kind = WORD_NEUTRAL;
        changed |= fold;
    }
    free(left);
    if (changed) {
        size_t out = 0, w = 0;
        for (i = 0; i < n;) {
            while (w < n_words && words[w].end <= i) w++;
            bool folding = w < n_words && words[w].kind == WORD_CANDIDATE && i >= words[w].start;
            uint32_t cp = bytes[i];
            size_t length = 1;
            if (cp >= 0x80 && (length = decode_utf8(bytes + i, n - i, &cp)) == 0) length = 1;
            if (folding) {
                size_t origin = offsets ? offsets[i] : 0;
                bytes[out] = (uint8_t)fold_target(char_lookup(cp));
                if (offsets) offsets[out] = origin;
                out++;
            } else {
                memmove(bytes + out, bytes + i, length);
                if (offsets) memmove(offsets + out, offsets + i, length * sizeof *offsets);
                out += length;
            }
            i += length;
        }
        if (offsets) offsets[out] = offsets[n];
        bytes[out] = '\0';
        *size = out;
    }
    free(words);
    return TM_OK;
}

/* ---- the entry points ---------------------------------------------------- */

/* ASCII that the whitespace step leaves alone: such a character only needs
 * a segment flush before it and a copy, which is what makes English text fast. */
static inline bool plain_ascii(uint8_t c, bool whitespace) {
    return c < 0x80 && !(whitespace && (c == ' ' || (c >= 0x09 && c <= 0x0D)));
}

/* ascii_runs: how much of the ASCII fast path to take (see detect_internal.h). */
static tm_status normalize(const char *text, size_t size, const tm_normalize_options *options, char **out,
                           size_t *out_size, size_t **offsets, int ascii_runs, tm_error *err) {
    if (out) *out = NULL;
    if (out_size) *out_size = 0;
    if (offsets) *offsets = NULL;
    if (!out || !out_size || (!text && size > 0))
        return tm_error_set(err, TM_ERR_ARGUMENT, "text normalisation: NULL text or output");
    tm_normalize_options defaults;
    if (!options) {
        tm_normalize_options_default(&defaults);
        options = &defaults;
    }
    tm_status s = unicode_ready(options, err);
    if (s != TM_OK) return s;

    normalizer *z = calloc(1, sizeof *z);
    if (!z) return tm_error_set(err, TM_ERR_NOMEM, "text normalisation: out of memory");
    z->options = options;
    /* Every step but NFC shrinks or keeps the size, and NFC rarely grows
     * text, so the input size is the usual final size; output_reserve grows
     * the buffers (checked) for the rare text that expands. */
    size_t capacity, offset_bytes;
    if (!tm_add_size(size, 1, &capacity) || !tm_mul_size(capacity, sizeof(size_t), &offset_bytes)) {
        free(z);
        return tm_error_set(err, TM_ERR_NOMEM, "text normalisation: %zu bytes of text is too large", size);
    }
    z->out.bytes = malloc(capacity);
    z->out.offsets = offsets ? malloc(offset_bytes) : NULL;
    z->out.capacity = capacity;
    if (!z->out.bytes || (offsets && !z->out.offsets)) {
        s = tm_error_set(err, TM_ERR_NOMEM, "text normalisation: out of memory for %zu bytes of text", size);
        goto fail;
    }

    const uint8_t *p = (const uint8_t *)text;
    const bool whitespace = options->normalize_whitespace;
    size_t i = 0;
    while (i < size) {
        uint8_t c = p[i];
        if (ascii_runs > 0 && plain_ascii(c, whitespace)) {
            /* A run of plain ASCII: all but its last character are whole
             * segments (the next one is ASCII, so a boundary); the last may
             * still take combining marks, so it goes through the segment. */
            size_t j = i + 1;
            for (;;) {
                while (j < size && plain_ascii(p[j], whitespace)) j++;
                /* A lone space or line feed between two plain characters
                 * comes out as it went in (no run of whitespace to collapse,
                 * no CR before it, nothing after it to combine with), and as
                 * a separator it ends a word just as punctuation in the run
                 * does: it joins the run, which keeps English text in runs
                 * of whole lines rather than of single words. */
                if (ascii_runs > 1 && whitespace && j + 1 < size && (p[j] == ' ' || p[j] == '\n') &&
                    plain_ascii(p[j + 1], whitespace)) {
                    j += 2;
                    continue;
                }
                break;
            }
            if ((s = segment_flush(z, err)) != TM_OK) goto fail;
            size_t run = j - 1 - i;
            if (run > 0) {
                if (options->fold_homoglyphs && (s = word_before_ascii_run(z, p + i, run, err)) != TM_OK) goto fail;
                if ((s = output_reserve(&z->out, run, err)) != TM_OK) goto fail;
                size_t out_start = z->out.size;
                memcpy(z->out.bytes + out_start, p + i, run);
                if (z->out.offsets)
                    for (size_t k = 0; k < run; k++) z->out.offsets[out_start + k] = i + k;
                z->out.size += run;
                if (options->fold_homoglyphs) word_after_ascii_run(z, p + i, run, out_start);
            }
            z->in_space_run = false;
            z->after_cr = false;
            if ((s = push_character(z, p[j - 1], ascii_entry[p[j - 1]], j - 1, err)) != TM_OK) goto fail;
            i = j;
            continue;
        }
        uint32_t cp = c;
        size_t length = 1;
        if (c >= 0x80 && (length = decode_utf8(p + i, size - i, &cp)) == 0) {
            s = tm_error_set(err, TM_ERR_FORMAT, "text is not valid UTF-8 at byte offset %zu", i);
            goto fail;
        }
        if ((s = take_character(z, cp, i, err)) != TM_OK) goto fail;
        i += length;
    }
    if ((s = segment_flush(z, err)) != TM_OK) goto fail;
    if ((s = output_reserve(&z->out, 0, err)) != TM_OK) goto fail;
    if (z->out.offsets) z->out.offsets[z->out.size] = size;
    if (options->fold_homoglyphs &&
        (s = fold_lookalike_words((uint8_t *)z->out.bytes, &z->out.size, z->out.offsets, err)) != TM_OK)
        goto fail;

    z->out.bytes[z->out.size] = '\0';
    if (z->out.offsets) z->out.offsets[z->out.size] = size;
    *out = z->out.bytes;
    *out_size = z->out.size;
    if (offsets) *offsets = z->out.offsets;
    free(z->scratch);
    free(z->scratch_offsets);
    free(z);
    return TM_OK;

fail:
    free(z->out.bytes);
    free(z->out.offsets);
    free(z->scratch);
    free(z->scratch_offsets);
    free(z);
    return s;
}

tm_status tm_text_normalize(const char *text, size_t size, const tm_normalize_options *options, char **out,
                            size_t *out_size, size_t **offsets, tm_error *err) {
    return normalize(text, size, options, out, out_size, offsets, 2, err);
}

tm_status tm_text_normalize_paths(const char *text, size_t size, const tm_normalize_options *options, char **out,
                                  size_t *out_size, size_t **offsets, int ascii_runs, tm_error *err) {
    return normalize(text, size, options, out, out_size, offsets, ascii_runs, err);
}
