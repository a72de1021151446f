/* Attacks on text, the edits a user makes to hide where a text came from:
 * word deletion, insertion, adjacent swaps, typos, case changes, punctuation
 * and whitespace mangling, WordNet synonyms, homoglyphs, zero-width
 * characters and copy-paste dilution. Each edits every unit (word, letter,
 * character, pair) independently with probability `strength`, drawing from a
 * tm_rng seeded with the attack's seed alone, so an attack repeats byte for
 * byte on every machine. Words are maximal runs of non-space bytes; the
 * letters of a word are ASCII letters (non-ASCII bytes are copied through
 * untouched, so valid UTF-8 stays valid). The model-time attacks (emoji,
 * paraphrase) live in the watermark task, which holds the model. Nothing
 * here prints. */
#include "tracemark/evals.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const attack_names[TM_ATTACK_KIND_COUNT] = {
    [TM_ATTACK_NONE] = "none",           [TM_ATTACK_DELETE] = "delete",         [TM_ATTACK_INSERT] = "insert",
    [TM_ATTACK_SWAP] = "swap",           [TM_ATTACK_TYPO] = "typo",             [TM_ATTACK_CASE] = "case",
    [TM_ATTACK_PUNCTUATION] = "punctuation", [TM_ATTACK_SYNONYM] = "synonym",   [TM_ATTACK_HOMOGLYPH] = "homoglyph",
    [TM_ATTACK_ZERO_WIDTH] = "zero-width", [TM_ATTACK_COPY_PASTE] = "copy-paste", [TM_ATTACK_EMOJI] = "emoji",
    [TM_ATTACK_PARAPHRASE] = "paraphrase",
};

const char *tm_attack_name(tm_attack_kind kind) {
    return (unsigned)kind < TM_ATTACK_KIND_COUNT ? attack_names[kind] : "unknown";
}

bool tm_attack_parse(const char *name, tm_attack_kind *out) {
    for (int k = 0; k < TM_ATTACK_KIND_COUNT; k++)
        if (!strcmp(name, attack_names[k])) return *out = (tm_attack_kind)k, true;
    return false;
}

bool tm_attack_needs_model(tm_attack_kind kind) { return kind == TM_ATTACK_EMOJI || kind == TM_ATTACK_PARAPHRASE; }

static void put_char(tm_buffer *b, char c) { tm_buffer_put(b, &c, 1); }

/* ---- words ------------------------------------------------------------------------ */

typedef struct {
    size_t start, end; /* bytes of the word */
} span;

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

/* Words of the text: maximal runs of non-space bytes. */
static span *split_words(const char *text, size_t size, size_t *n) {
    *n = 0;
    span *words = malloc((size / 2 + 1) * sizeof *words);
    if (!words) return NULL;
    for (size_t i = 0; i < size;) {
        while (i < size && is_space(text[i])) i++;
        if (i == size) break;
        size_t start = i;
        while (i < size && !is_space(text[i])) i++;
        words[(*n)++] = (span){start, i};
    }
    return words;
}

static bool chance(tm_rng *rng, double p) { return p > 0 && (double)tm_rng_uniform(rng) < p; }
static size_t pick(tm_rng *rng, size_t n) { return (size_t)(tm_rng_next(rng) % n); }

/* The whitespace before word i (between word i-1 and i), or the leading space. */
static void put_gap(tm_buffer *b, const char *text, const span *words, size_t i) {
    size_t from = i == 0 ? 0 : words[i - 1].end;
    tm_buffer_put(b, text + from, words[i].start - from);
}

/* ---- the attacks ------------------------------------------------------------------- */

static void attack_delete(const char *text, size_t size, const span *w, size_t n, tm_rng *rng, double s,
                          tm_buffer *b, size_t *edits) {
    bool first_kept = true;
    for (size_t i = 0; i < n; i++) {
        if (chance(rng, s)) {
            (*edits)++;
            continue;
        }
        /* Keep the original spacing before a kept word, except at the very start. */
        if (first_kept) tm_buffer_put(b, text, w[0].start);
        else put_gap(b, text, w, i);
        tm_buffer_put(b, text + w[i].start, w[i].end - w[i].start);
        first_kept = false;
    }
    size_t tail = n ? w[n - 1].end : 0;
    tm_buffer_put(b, text + tail, size - tail);
}

static void attack_insert(const char *text, size_t size, const span *w, size_t n, tm_rng *rng, double s,
                          const tm_wordnet *wordnet, tm_buffer *b, size_t *edits) {
    for (size_t i = 0; i < n; i++) {
        put_gap(b, text, w, i);
        tm_buffer_put(b, text + w[i].start, w[i].end - w[i].start);
        if (chance(rng, s)) {
            put_char(b, ' ');
            if (wordnet) {
                const char *word = tm_wordnet_lemma(wordnet, pick(rng, tm_wordnet_lemma_count(wordnet)));
                tm_buffer_put(b, word, strlen(word));
            } else {
                size_t k = pick(rng, n);
                tm_buffer_put(b, text + w[k].start, w[k].end - w[k].start);
            }
            (*edits)++;
        }
    }
    size_t tail = n ? w[n - 1].end : 0;
    tm_buffer_put(b, text + tail, size - tail);
}

/* Pairs (0,1), (2,3), ... each swapped with probability s: the rate is per pair. */
static void attack_swap(const char *text, size_t size, const span *w, size_t n, tm_rng *rng, double s,
                        tm_buffer *b, size_t *edits) {
    for (size_t i = 0; i < n; i++) {
        put_gap(b, text, w, i);
        if (i + 1 < n && i % 2 == 0 && chance(rng, s)) {
            tm_buffer_put(b, text + w[i + 1].start, w[i + 1].end - w[i + 1].start);
            tm_buffer_put(b, text + w[i].end, w[i + 1].start - w[i].end);
            tm_buffer_put(b, text + w[i].start, w[i].end - w[i].start);
            (*edits)++;
            i++;
            continue;
        }
        tm_buffer_put(b, text + w[i].start, w[i].end - w[i].start);
    }
    size_t tail = n ? w[n - 1].end : 0;
    tm_buffer_put(b, text + tail, size - tail);
}

static void attack_typo(const char *text, size_t size, tm_rng *rng, double s, tm_buffer *b, size_t *edits,
                        size_t *units) {
    for (size_t i = 0; i < size; i++) {
        char c = text[i];
        if (!isalpha((unsigned char)c)) {
            put_char(b, c);
            continue;
        }
        (*units)++;
        if (!chance(rng, s)) {
            put_char(b, c);
            continue;
        }
        (*edits)++;
        char other = (char)('a' + pick(rng, 25));
        if (other >= tolower((unsigned char)c)) other++; /* a different letter */
        switch (pick(rng, 4)) {
        case 0: put_char(b, other); break;              /* substitute */
        case 1: break;                                  /* drop */
        case 2: put_char(b, c), put_char(b, c); break; /* double */
        default:                                        /* transpose with the next letter, or substitute */
            if (i + 1 < size && isalpha((unsigned char)text[i + 1])) {
                put_char(b, text[i + 1]);
                put_char(b, c);
                i++;
                (*units)++;
            } else put_char(b, other);
        }
    }
}

static void attack_case(const char *text, size_t size, const span *w, size_t n, tm_rng *rng, double s,
                        tm_buffer *b, size_t *edits, size_t *units) {
    char word[256];
    for (size_t i = 0; i < n; i++) {
        put_gap(b, text, w, i);
        size_t len = w[i].end - w[i].start;
        bool letters = false;
        for (size_t k = 0; k < len; k++) letters = letters || isalpha((unsigned char)text[w[i].start + k]);
        if (!letters || len >= sizeof word) {
            tm_buffer_put(b, text + w[i].start, len);
            continue;
        }
        (*units)++;
        memcpy(word, text + w[i].start, len);
        if (chance(rng, s)) {
            size_t form = pick(rng, 3);
            /* Try the forms in turn from the drawn one until one changes the word. */
            for (size_t t = 0; t < 3; t++, form = (form + 1) % 3) {
                bool upper_next = true;
                for (size_t k = 0; k < len; k++) {
                    char c = text[w[i].start + k];
                    if (form == 0) word[k] = (char)toupper((unsigned char)c);
                    else if (form == 1) word[k] = (char)tolower((unsigned char)c);
                    else {
                        word[k] = upper_next ? (char)toupper((unsigned char)c) : (char)tolower((unsigned char)c);
                        if (isalpha((unsigned char)c)) upper_next = false;
                    }
                }
                if (memcmp(word, text + w[i].start, len)) {
                    (*edits)++;
                    break;
                }
            }
        }
        tm_buffer_put(b, word, len);
    }
    size_t tail = n ? w[n - 1].end : 0;
    tm_buffer_put(b, text + tail, size - tail);
}

static void attack_punctuation(const char *text, size_t size, tm_rng *rng, double s, tm_buffer *b,
                               size_t *edits, size_t *units) {
    static const char marks[] = ",.;:!?-";
    static const char *const spaces[] = {"  ", "\t", "\n", ""};
    for (size_t i = 0; i < size;) {
        char c = text[i];
        if (is_space(c)) {
            size_t j = i;
            while (j < size && is_space(text[j])) j++;
            (*units)++;
            if (chance(rng, s)) {
                const char *r = spaces[pick(rng, 4)];
                tm_buffer_put(b, r, strlen(r));
                (*edits)++;
            } else tm_buffer_put(b, text + i, j - i);
            i = j;
            continue;
        }
        if (ispunct((unsigned char)c)) {
            (*units)++;
            if (chance(rng, s)) {
                (*edits)++;
                size_t k = pick(rng, sizeof marks); /* the last choice (the NUL) drops the mark */
                if (k < sizeof marks - 1) {
                    char r = marks[k] == c ? marks[(k + 1) % (sizeof marks - 1)] : marks[k];
                    put_char(b, r);
                }
            } else put_char(b, c);
            i++;
            continue;
        }
        put_char(b, c);
        i++;
    }
}

static tm_status attack_synonym(const char *text, size_t size, const span *w, size_t n, tm_rng *rng, double s,
                                const tm_wordnet *wordnet, tm_buffer *b, size_t *edits, size_t *units,
                                tm_error *err) {
    if (!wordnet) return tm_error_set(err, TM_ERR_ARGUMENT, "synonym attack without WordNet");
    char core[128];
    for (size_t i = 0; i < n; i++) {
        put_gap(b, text, w, i);
        /* The word's letters without leading and trailing punctuation. */
        size_t a = w[i].start, z = w[i].end;
        while (a < z && !isalpha((unsigned char)text[a])) a++;
        while (z > a && !isalpha((unsigned char)text[z - 1])) z--;
        size_t len = z - a, n_syn = 0;
        bool plain = len >= 2 && len < sizeof core;
        for (size_t k = a; plain && k < z; k++) plain = isalpha((unsigned char)text[k]);
        const char *const *syn = NULL;
        if (plain) {
            for (size_t k = 0; k < len; k++) core[k] = (char)tolower((unsigned char)text[a + k]);
            core[len] = '\0';
            syn = tm_wordnet_synonyms(wordnet, core, &n_syn);
        }
        if (n_syn == 0) {
            tm_buffer_put(b, text + w[i].start, w[i].end - w[i].start);
            continue;
        }
        (*units)++;
        if (!chance(rng, s)) {
            tm_buffer_put(b, text + w[i].start, w[i].end - w[i].start);
            continue;
        }
        (*edits)++;
        const char *r = syn[pick(rng, n_syn)];
        tm_buffer_put(b, text + w[i].start, a - w[i].start);
        size_t mark = b->size;
        tm_buffer_put(b, r, strlen(r));
        if (isupper((unsigned char)text[a]) && !b->failed) b->data[mark] = (char)toupper((unsigned char)b->data[mark]);
        tm_buffer_put(b, text + z, w[i].end - z);
    }
    size_t tail = n ? w[n - 1].end : 0;
    tm_buffer_put(b, text + tail, size - tail);
    return TM_OK;
}

/* Cyrillic and Greek letters that look like ASCII ones (Unicode confusables). */
static const char *homoglyph_of(char c) {
    switch (c) {
    case 'a': return "\xD0\xB0"; /* U+0430 */
    case 'c': return "\xD1\x81"; /* U+0441 */
    case 'e': return "\xD0\xB5"; /* U+0435 */
    case 'i': return "\xD1\x96"; /* U+0456 */
    case 'j': return "\xD1\x98"; /* U+0458 */
    case 'o': return "\xD0\xBE"; /* U+043E */
    case 'p': return "\xD1\x80"; /* U+0440 */
    case 's': return "\xD1\x95"; /* U+0455 */
    case 'x': return "\xD1\x85"; /* U+0445 */
    case 'y': return "\xD1\x83"; /* U+0443 */
    case 'A': return "\xD0\x90"; /* U+0410 */
    case 'B': return "\xD0\x92"; /* U+0412 */
    case 'E': return "\xD0\x95"; /* U+0415 */
    case 'H': return "\xD0\x9D"; /* U+041D */
    case 'K': return "\xD0\x9A"; /* U+041A */
    case 'M': return "\xD0\x9C"; /* U+041C */
    case 'O': return "\xD0\x9E"; /* U+041E */
    case 'P': return "\xD0\xA0"; /* U+0420 */
    case 'T': return "\xD0\xA2"; /* U+0422 */
    case 'X': return "\xD0\xA5"; /* U+0425 */
    case 'v': return "\xCE\xBD"; /* U+03BD Greek nu */
    default: return NULL;
    }
}

static void attack_homoglyph(const char *text, size_t size, tm_rng *rng, double s, tm_buffer *b, size_t *edits,
                             size_t *units) {
    for (size_t i = 0; i < size; i++) {
        const char *g = homoglyph_of(text[i]);
        if (!g) {
            put_char(b, text[i]);
            continue;
        }
        (*units)++;
        if (chance(rng, s)) {
            tm_buffer_put(b, g, strlen(g));
            (*edits)++;
        } else put_char(b, text[i]);
    }
}

static void attack_zero_width(const char *text, size_t size, tm_rng *rng, double s, tm_buffer *b, size_t *edits,
                              size_t *units) {
    static const char *const marks[] = {"\xE2\x80\x8B", "\xE2\x80\x8C", "\xE2\x80\x8D", "\xE2\x81\xA0",
                                        "\xEF\xBB\xBF"}; /* ZWSP, ZWNJ, ZWJ, WJ, BOM */
    for (size_t i = 0; i < size;) {
        size_t n = (size_t)tm_utf8_sequence_length((uint8_t)text[i]);
        if (i + n > size) n = size - i;
        tm_buffer_put(b, text + i, n);
        i += n;
        (*units)++;
        if (chance(rng, s)) {
            const char *m = marks[pick(rng, 5)];
            tm_buffer_put(b, m, strlen(m));
            (*edits)++;
        }
    }
}

/* The text as `share` of the words: filler words (cycled when short) around
 * it, split at a random point. */
static tm_status attack_copy_paste(const char *text, size_t size, size_t n_words, tm_rng *rng, double share,
                                   const char *filler, tm_buffer *b, size_t *edits, size_t *units, tm_error *err) {
    if (!filler) return tm_error_set(err, TM_ERR_ARGUMENT, "copy-paste attack without filler text");
    size_t n_fill_words = 0;
    span *fw = split_words(filler, strlen(filler), &n_fill_words);
    if (!fw) return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    if (n_fill_words == 0) {
        free(fw);
        return tm_error_set(err, TM_ERR_ARGUMENT, "copy-paste attack with empty filler text");
    }
    size_t total = (size_t)llround((double)n_words / share);
    size_t need = total > n_words ? total - n_words : 0;
    size_t before = need ? pick(rng, need + 1) : 0;
    size_t start = pick(rng, n_fill_words);
    for (size_t k = 0; k < before; k++) {
        const span *f = &fw[(start + k) % n_fill_words];
        tm_buffer_put(b, filler + f->start, f->end - f->start);
        put_char(b, ' ');
    }
    tm_buffer_put(b, text, size);
    for (size_t k = before; k < need; k++) {
        const span *f = &fw[(start + k) % n_fill_words];
        put_char(b, ' ');
        tm_buffer_put(b, filler + f->start, f->end - f->start);
    }
    *edits = need;
    *units = n_words + need;
    free(fw);
    return TM_OK;
}

tm_status tm_attack_text(const char *text, size_t size, const tm_attack_params *params, char **out, size_t *out_size,
                         size_t *edits, size_t *units, tm_error *err) {
    *out = NULL;
    *out_size = 0;
    size_t dummy_edits, dummy_units;
    if (!edits) edits = &dummy_edits;
    if (!units) units = &dummy_units;
    *edits = *units = 0;
    double s = params->strength;
    if (!(s >= 0 && s <= 1)) return tm_error_set(err, TM_ERR_ARGUMENT, "attack strength %g outside [0, 1]", s);
    if (params->kind == TM_ATTACK_COPY_PASTE && !(s > 0))
        return tm_error_set(err, TM_ERR_ARGUMENT, "copy-paste share must lie in (0, 1]");
    if (tm_attack_needs_model(params->kind) || (unsigned)params->kind >= TM_ATTACK_KIND_COUNT)
        return tm_error_set(err, TM_ERR_ARGUMENT, "%s is not a text attack", tm_attack_name(params->kind));
    /* The kind is mixed into the seed so that two attacks on one sample draw independently. */
    tm_rng rng;
    tm_rng_seed(&rng, params->seed ^ (0x9E3779B97F4A7C15ULL * (uint64_t)(params->kind + 1)));
    size_t n = 0;
    span *w = split_words(text, size, &n);
    if (!w) return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    tm_buffer b = {0};
    tm_buffer_put(&b, "", 0);
    tm_status status = TM_OK;
    switch (params->kind) {
    case TM_ATTACK_NONE: tm_buffer_put(&b, text, size); break;
    case TM_ATTACK_DELETE: *units = n, attack_delete(text, size, w, n, &rng, s, &b, edits); break;
    case TM_ATTACK_INSERT: *units = n, attack_insert(text, size, w, n, &rng, s, params->wordnet, &b, edits); break;
    case TM_ATTACK_SWAP: *units = n / 2, attack_swap(text, size, w, n, &rng, s, &b, edits); break;
    case TM_ATTACK_TYPO: attack_typo(text, size, &rng, s, &b, edits, units); break;
    case TM_ATTACK_CASE: attack_case(text, size, w, n, &rng, s, &b, edits, units); break;
    case TM_ATTACK_PUNCTUATION: attack_punctuation(text, size, &rng, s, &b, edits, units); break;
    case TM_ATTACK_SYNONYM:
        status = attack_synonym(text, size, w, n, &rng, s, params->wordnet, &b, edits, units, err);
        break;
    case TM_ATTACK_HOMOGLYPH: attack_homoglyph(text, size, &rng, s, &b, edits, units); break;
    case TM_ATTACK_ZERO_WIDTH: attack_zero_width(text, size, &rng, s, &b, edits, units); break;
    case TM_ATTACK_COPY_PASTE:
        status = attack_copy_paste(text, size, n, &rng, s, params->filler, &b, edits, units, err);
        break;
    default: break;
    }
    free(w);
    if (!status && b.failed) status = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    if (status) {
        free(b.data);
        return status;
    }
    *out = b.data;
    *out_size = b.size;
    return TM_OK;
}
