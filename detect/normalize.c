/* Text normalisation before tokenizing: undoes the cheap edits an adversary
 * makes to dodge a detector (decomposed accents, look-alike letters from
 * other scripts, odd spaces and invisible characters) while keeping, for
 * every output byte, the input offset it came from, so that scores on the
 * normalised text map back to the text the user gave. NFC comes from
 * utf8proc, confusable skeletons (Unicode TR39) and NFC segment boundaries
 * from ICU. It must never print, abort or read past the input: invalid
 * UTF-8 is an error naming its byte offset, and every size is checked.
 *
 * Order of work, per character: validate and decode; whitespace (line breaks
 * kept one for one, CRLF/CR -> LF, other White_Space runs -> one ' ',
 * zero-width characters dropped); then NFC over segments (a character with
 * an NFC boundary before it, plus the characters up to the next boundary,
 * all of whose output bytes map to the segment's first input character);
 * then homoglyph folding inside the segment, followed by NFC again when a
 * fold happened (a folded 'e' before U+0301 must compose to U+00E9) so that
 * normalising twice changes nothing. Whitespace goes first so that a
 * zero-width character between a letter and its accent cannot stop them
 * composing. */
#include "tracemark/detect.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

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
    SKELETON_MAX = 16,  /* bytes; a skeleton longer than this is no single ASCII character's */
    FOLD_UNKNOWN = 0,   /* fold_cache values; any other value is the ASCII replacement */
    FOLD_NONE = 1,
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
/* Per-code-point memo of the homoglyph fold. A skeleton costs ~100 ns and
 * text repeats the same few characters, so this keeps ICU off the hot path.
 * Filled lazily by any thread: racing writers store the same value, and
 * relaxed atomics make that well defined. 1.1 MB of zero pages, only the
 * touched ones become resident. */
static _Atomic uint8_t fold_cache[CODE_POINT_LIMIT];

static void unicode_open(void) {
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

static bool is_ascii_upper(int c) { return c >= 'A' && c <= 'Z'; }
static bool is_ascii_lower(int c) { return c >= 'a' && c <= 'z'; }
static bool is_ascii_digit(int c) { return c >= '0' && c <= '9'; }

/* The ASCII character a non-ASCII cp folds to, or FOLD_NONE. A character
 * folds when its skeleton equals the skeleton of a printable ASCII
 * character. Several ASCII characters can share one skeleton (I, l, 1 and |
 * all have "l"; 0 and O have "O"), so the replacement follows the
 * character's own kind: Greek capital iota becomes 'I', Bengali zero '0',
 * never the skeleton's arbitrary prototype. Spaces are left to the
 * whitespace option. */
static uint8_t fold_compute(uint32_t cp) {
    uint8_t in[4];
    size_t n_in = encode_utf8(cp, in);
    char skeleton[SKELETON_MAX];
    UErrorCode status = U_ZERO_ERROR;
    int32_t n = uspoof_getSkeletonUTF8(spoof_checker, 0, (const char *)in, (int32_t)n_in, skeleton, SKELETON_MAX,
                                       &status);
    if (U_FAILURE(status) || n <= 0 || n >= SKELETON_MAX) return FOLD_NONE;
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
    if (!first) return FOLD_NONE;
    int chosen = 0;
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
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

/* 0 when cp (non-ASCII) does not fold, else its ASCII replacement. */
static inline uint32_t fold_lookup(uint32_t cp) {
    uint8_t value = atomic_load_explicit(&fold_cache[cp], memory_order_relaxed);
    if (value == FOLD_UNKNOWN) {
        value = fold_compute(cp);
        atomic_store_explicit(&fold_cache[cp], value, memory_order_relaxed);
    }
    return value == FOLD_NONE ? 0 : value;
}

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

static tm_status output_code_point(output *o, uint32_t cp, size_t offset, tm_error *err) {
    uint8_t bytes[4];
    size_t n = encode_utf8(cp, bytes);
    tm_status s = output_reserve(o, n, err);
    if (s != TM_OK) return s;
    memcpy(o->bytes + o->size, bytes, n);
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
    /* whitespace state */
    bool in_space_run;
    bool after_cr;
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

/* True when NFC leaves the single code point cp alone: it has no canonical
 * decomposition (utf8proc marks compatibility mappings with a decomp_type). */
static inline bool nfc_stable_alone(uint32_t cp) {
    const utf8proc_property_t *p = utf8proc_get_property((utf8proc_int32_t)cp);
    return p->decomp_seqindex == UINT16_MAX || p->decomp_type != 0;
}

static tm_status segment_flush(normalizer *z, tm_error *err) {
    size_t n = z->segment_length;
    if (n == 0) return TM_OK;
    z->segment_length = 0;
    size_t offset = z->segment_offset;
    const tm_normalize_options *options = z->options;

    /* The common cases: one ASCII character, or one character NFC keeps. */
    if (n == 1 && (z->segment[0] < 0x80 || !options->nfc || nfc_stable_alone(z->segment[0]))) {
        uint32_t cp = z->segment[0];
        if (cp >= 0x80 && options->fold_homoglyphs) {
            uint32_t folded = fold_lookup(cp);
            if (folded) cp = folded;
        }
        return output_code_point(&z->out, cp, offset, err);
    }

    utf8proc_int32_t cps[DECOMPOSED_MAX];
    size_t length = n;
    for (size_t i = 0; i < n; i++) cps[i] = (utf8proc_int32_t)z->segment[i];
    for (int round = 0; round < FOLD_ROUNDS; round++) {
        if (options->nfc) {
            tm_status s = nfc_code_points(cps, length, DECOMPOSED_MAX, &length, err);
            if (s != TM_OK) return s;
        }
        bool folded_any = false;
        if (options->fold_homoglyphs)
            for (size_t i = 0; i < length; i++) {
                if (cps[i] < 0x80) continue;
                uint32_t folded = fold_lookup((uint32_t)cps[i]);
                if (folded) {
                    cps[i] = (utf8proc_int32_t)folded;
                    folded_any = true;
                }
            }
        if (!folded_any || !options->nfc) break;
    }
    for (size_t i = 0; i < length; i++) {
        tm_status s = output_code_point(&z->out, (uint32_t)cps[i], offset, err);
        if (s != TM_OK) return s;
    }
    return TM_OK;
}

/* Whether the NFC of text before cp and of text from cp on can be computed
 * apart; ASCII always starts a segment. */
static inline bool starts_segment(uint32_t cp) {
    return cp < 0x80 || unorm2_hasBoundaryBefore(nfc_normalizer, (UChar32)cp);
}

/* One character after whitespace handling, into the current segment. */
static tm_status push_character(normalizer *z, uint32_t cp, size_t offset, tm_error *err) {
    const tm_normalize_options *options = z->options;
    if (!options->nfc) {
        /* Without NFC, every character is its own segment. */
        z->segment[0] = cp;
        z->segment_length = 1;
        z->segment_offset = offset;
        return segment_flush(z, err);
    }
    if (z->segment_length == SEGMENT_MAX || (z->segment_length > 0 && starts_segment(cp))) {
        tm_status s = segment_flush(z, err);
        if (s != TM_OK) return s;
    }
    if (z->segment_length == 0) z->segment_offset = offset;
    z->segment[z->segment_length++] = cp;
    return TM_OK;
}

static bool is_zero_width(uint32_t cp) {
    return cp == 0x200B || cp == 0x200C || cp == 0x200D || cp == 0x2060 || cp == 0xFEFF;
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

/* One decoded input character. */
static tm_status take_character(normalizer *z, uint32_t cp, size_t offset, tm_error *err) {
    if (!z->options->normalize_whitespace) return push_character(z, cp, offset, err);
    bool after_cr = z->after_cr;
    z->after_cr = false;
    if (cp >= 0x80 && is_zero_width(cp)) return TM_OK;
    if (is_line_break(cp)) {
        z->in_space_run = false;
        if (cp == '\n' && after_cr) return TM_OK; /* the LF of a CRLF */
        z->after_cr = cp == '\r';
        return push_character(z, '\n', offset, err);
    }
    if (is_horizontal_space(cp)) {
        if (z->in_space_run) return TM_OK;
        z->in_space_run = true;
        return push_character(z, ' ', offset, err);
    }
    z->in_space_run = false;
    return push_character(z, cp, offset, err);
}

/* ---- decoding ------------------------------------------------------------ */

/* Decode one non-ASCII character at p (left > 0 bytes). Returns its length,
 * or 0 when the bytes are not valid UTF-8 (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF, no truncation). */
static inline size_t decode_utf8(const uint8_t *p, size_t left, uint32_t *cp) {
    uint8_t c = p[0];
    size_t n;
    uint32_t value, minimum;
    if (c >= 0xC2 && c <= 0xDF) { n = 2; value = c & 0x1Fu; minimum = 0x80; }
    else if ((c & 0xF0) == 0xE0) { n = 3; value = c & 0x0Fu; minimum = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 4; value = c & 0x07u; minimum = 0x10000; }
    else return 0;
    if (left < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        value = (value << 6) | (p[i] & 0x3Fu);
    }
    if (value < minimum || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF)) return 0;
    *cp = value;
    return n;
}

/* ---- the entry points ---------------------------------------------------- */

/* ASCII that the whitespace step leaves alone: such a character only needs
 * a segment flush before it and a copy, which is what makes English text fast. */
static inline bool plain_ascii(uint8_t c, bool whitespace) {
    return c < 0x80 && !(whitespace && (c == ' ' || (c >= 0x09 && c <= 0x0D)));
}

tm_status tm_text_normalize(const char *text, size_t size, const tm_normalize_options *options, char **out,
                            size_t *out_size, size_t **offsets, tm_error *err) {
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
        if (plain_ascii(c, whitespace)) {
            /* A run of plain ASCII: all but its last character are whole
             * segments (the next one is ASCII, so a boundary); the last may
             * still take combining marks, so it goes through the segment. */
            size_t j = i + 1;
            while (j < size && plain_ascii(p[j], whitespace)) j++;
            if ((s = segment_flush(z, err)) != TM_OK) goto fail;
            size_t run = j - 1 - i;
            if (run > 0) {
                if ((s = output_reserve(&z->out, run, err)) != TM_OK) goto fail;
                memcpy(z->out.bytes + z->out.size, p + i, run);
                if (z->out.offsets)
                    for (size_t k = 0; k < run; k++) z->out.offsets[z->out.size + k] = i + k;
                z->out.size += run;
            }
            z->in_space_run = false;
            z->after_cr = false;
            if ((s = push_character(z, p[j - 1], j - 1, err)) != TM_OK) goto fail;
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

    z->out.bytes[z->out.size] = '\0';
    if (z->out.offsets) z->out.offsets[z->out.size] = size;
    *out = z->out.bytes;
    *out_size = z->out.size;
    if (offsets) *offsets = z->out.offsets;
    free(z);
    return TM_OK;

fail:
    free(z->out.bytes);
    free(z->out.offsets);
    free(z);
    return s;
}

size_t tm_utf8_count_chars(const char *text, size_t bytes) {
    if (!text) return 0;
    size_t count = 0;
    for (size_t i = 0; i < bytes; i++) count += ((uint8_t)text[i] & 0xC0) != 0x80;
    return count;
}
