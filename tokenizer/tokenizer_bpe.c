/* The byte-level BPE tokenizer of GPT-2, Llama 3, Qwen2 and their kin
 * (tokenizer.ggml.model = "gpt2"), reproducing llama.cpp's llm_tokenizer_bpe
 * token for token. Encoding runs in three stages: user-defined tokens are cut
 * out of the text (llama.cpp does this even without special-token parsing);
 * the rest is split into pre-tokens by the pre-tokenizer's regular
 * expressions, compiled once with PCRE2 (UTF + UCP, JIT where available),
 * each applied inside the pieces of the one before, with the text between
 * matches kept as pieces too; and every pre-token has its bytes spelled in
 * GPT-2's byte-to-unicode alphabet and merged pairwise, lowest merge rank
 * first and leftmost on ties, with repeated pre-tokens of one call looked up
 * instead of merged again. Where llama.cpp's hand-written splitters differ
 * from the regex text they implement, the patterns here follow llama.cpp:
 * Llama 3's case-insensitive contractions are spelled out as llama.cpp does,
 * and \s is the Unicode White_Space property (PCRE2's \s also takes U+180E).
 * The vocabulary and merges come from an untrusted GGUF and are copied and
 * checked; once built a tm_bpe is only read, so threads may share it. This
 * file never prints, aborts, or reads outside what it has checked. */
#include "tokenizer_bpe.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    MAX_REGEXES = 4,
    MAX_PIECE_BYTES = 1 << 16, /* longer vocabulary entries are rejected */
    ALPHABET_LIMIT = 0x144,    /* GPT-2's byte alphabet is U+0021..U+0143 */
    CACHED_WORD_BYTES = 256,   /* longer pre-tokens are merged every time */
};

/* ---- pre-tokenizers --------------------------------------------------------- */

/* \s and \S as llama.cpp's splitters and HF's Rust regexes read them: the
 * White_Space property. */
#define WS "\\p{White_Space}"
#define NOT_WS "\\P{White_Space}"

/* \p{L}, \p{N} and \p{P} as class contents, at llama.cpp's Unicode 15.1.
 * Debian's PCRE2 10.42 knows Unicode 14.0, so the code points that 15.0 and
 * 15.1 assigned to these categories (all of them unassigned before, none
 * moved between categories; from llama.cpp's unicode-data.cpp against
 * Unicode 14's UnicodeData.txt) are named here. Only the difference is
 * listed: PCRE2 still supplies the categories, and with a newer PCRE2 these
 * ranges are already inside them. */
#define LETTERS                                                                                         \
    "\\p{L}\\x{1123F}-\\x{11240}\\x{11F02}\\x{11F04}-\\x{11F10}\\x{11F12}-\\x{11F33}\\x{1342F}"          \
    "\\x{13441}-\\x{13446}\\x{1B132}\\x{1B155}\\x{1DF25}-\\x{1DF2A}\\x{1E030}-\\x{1E06D}"                 \
    "\\x{1E4D0}-\\x{1E4EB}\\x{2B739}\\x{2EBF0}-\\x{2EE5D}\\x{31350}-\\x{323AF}"
#define NUMBERS "\\p{N}\\x{11F50}-\\x{11F59}\\x{1D2C0}-\\x{1D2D3}\\x{1E4F0}-\\x{1E4F9}"
#define PUNCTUATION "\\p{P}\\x{11B00}-\\x{11B09}\\x{11F43}-\\x{11F4F}"

/* GPT-2's pattern. llama.cpp's list lacks the final \s+ but keeps unmatched
 * text as pieces, which splits the same way. */
#define GPT2_REGEX                                                                                          \
    "'s|'t|'re|'ve|'m|'ll|'d| ?[" LETTERS "]+| ?[" NUMBERS "]+| ?[^" WS LETTERS NUMBERS "]+|" WS "+(?!" NOT_WS \
    ")|" WS "+"

/* Llama 3's pattern with (?i:'s|'t|...) spelled out as llama.cpp does: PCRE2's
 * caseless matching would also take U+017F (long s) for s. DIGITS is
 * {1,3} for Llama 3 and nothing (one at a time) for Qwen2. */
#define LLAMA3_STYLE_REGEX(DIGITS)                                                                          \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n" LETTERS NUMBERS "]?[" LETTERS "]+|["   \
    NUMBERS "]" DIGITS "| ?[^" WS LETTERS NUMBERS "]+[\\r\\n]*|" WS "*[\\r\\n]+|" WS "+(?!" NOT_WS ")|" WS "+"

typedef struct {
    const char *family;
    const char *names;              /* tokenizer.ggml.pre values, each followed by '|' */
    const char *regexes[MAX_REGEXES];
    bool ignore_merges;             /* a pre-token that is a whole token is not merged */
    bool add_bos;                   /* default of tokenizer.ggml.add_bos_token */
} pre_tokenizer_spec;

/* The families of llama.cpp's llm_tokenizer_bpe (llama-vocab.cpp) whose
 * patterns use only Unicode categories (the DeepSeek ones spell out
 * character ranges and are not supported). */
static const pre_tokenizer_spec PRE_TOKENIZERS[] = {
    {"llama3", "llama3|llama-v3|llama-bpe|falcon3|", {LLAMA3_STYLE_REGEX("{1,3}")}, true, true},
    {"llama3", "dbrx|smaug-bpe|", {LLAMA3_STYLE_REGEX("{1,3}")}, false, false},
    {"qwen2", "qwen2|stablelm2|megrez|", {LLAMA3_STYLE_REGEX("")}, false, false},
    {"gpt2",
     "gpt-2|phi-2|jina-es|jina-de|gigachat|jina-v1-en|jina-v2-es|jina-v2-de|jina-v2-code|roberta-bpe|mpt|olmo|jais|",
     {GPT2_REGEX},
     false,
     false},
    {"starcoder", "starcoder|refact|command-r|smollm|codeshell|exaone|minerva-7b|", {"[" NUMBERS "]", GPT2_REGEX}, false,
     false},
    {"falcon", "falcon|", {"[" PUNCTUATION "\\$\\+<=>\\^~\\|`]+", GPT2_REGEX, "[0-9][0-9][0-9]"}, false, false},
    {"default", "default|", {"[" PUNCTUATION "\\$\\+<=>\\^~\\|]+", GPT2_REGEX, "[" NUMBERS "]+", "[0-9][0-9][0-9]"}, false, false},
};

static const pre_tokenizer_spec *find_pre_tokenizer(const char *name, size_t size) {
    for (size_t i = 0; i < sizeof PRE_TOKENIZERS / sizeof *PRE_TOKENIZERS; i++) {
        for (const char *p = PRE_TOKENIZERS[i].names; *p;) {
            const char *bar = strchr(p, '|');
            if ((size_t)(bar - p) == size && memcmp(p, name, size) == 0) return &PRE_TOKENIZERS[i];
            p = bar + 1;
        }
    }
    return NULL;
}

/* ---- the tokenizer ---------------------------------------------------------- */

typedef struct {
    int32_t id;   /* -1: empty */
    uint32_t tag; /* high half of the piece's hash */
} piece_slot;

typedef struct {
    int32_t left, right; /* token ids; left -1: empty */
    int32_t rank, merged;
} merge_slot;

struct tm_bpe {
    int32_t n_vocab;
    char *blob;             /* every piece, NUL-terminated, back to back */
    size_t *offsets;        /* piece i: blob[offsets[i] .. offsets[i+1]-1) minus its NUL */
    uint8_t *types;         /* tm_token_type */
    char *decoded;          /* what each token decodes to, back to back */
    size_t *decoded_offsets;
    size_t max_decoded;

    /* Open addressing, piece -> id. Hand-written, as in tokenizer.c: every
     * pre-token and every byte is looked up here and the chosen libraries
     * offer no byte-string hash table. */
    piece_slot *slots;
    size_t slot_mask;
    size_t longest_piece;

    /* (left id, right id) -> rank and merged id, open addressing. */
    merge_slot *merges;
    size_t merge_mask;
    int32_t n_merges;

    /* GPT-2's byte-to-unicode alphabet, both ways. */
    char byte_chars[256][2];
    uint8_t byte_char_sizes[256];
    int16_t char_bytes[ALPHABET_LIMIT]; /* -1: not in the alphabet */
    /* The token of each byte's character (-1 none), and llama.cpp's
     * fallback when there is none: the character's single bytes that are
     * tokens. */
    int32_t byte_tokens[256];
    int32_t byte_fallback[256][2];
    uint8_t byte_fallback_count[256];
    size_t most_ids_per_byte;

    int32_t *user_defined; /* USER_DEFINED ids, longest first */
    size_t n_user_defined;

    const pre_tokenizer_spec *pre;
    char pre_name[64];
    pcre2_code *regexes[MAX_REGEXES];
    int n_regexes;

    int32_t bos, eos;
    bool add_bos;
};

/* ---- helpers ------------------------------------------------------------------ */

static uint64_t hash_pair(int32_t left, int32_t right) {
    uint64_t h = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDull;
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ull;
    return h ^ (h >> 33);
}

static size_t piece_size(const tm_bpe *b, int32_t id) { return b->offsets[id + 1] - b->offsets[id] - 1; }

static int32_t lookup(const tm_bpe *b, const char *data, size_t size) {
    if (size == 0 || size > b->longest_piece) return -1;
    uint64_t hash = tm_tokenizer_hash_bytes(data, size);
    uint32_t tag = (uint32_t)(hash >> 32);
    for (size_t slot = (size_t)hash & b->slot_mask;; slot = (slot + 1) & b->slot_mask) {
        piece_slot s = b->slots[slot];
        if (s.id < 0) return -1;
        if (s.tag == tag && piece_size(b, s.id) == size && memcmp(b->blob + b->offsets[s.id], data, size) == 0)
            return s.id;
    }
}

/* The merge of the pair, or NULL. */
static const merge_slot *find_merge(const tm_bpe *b, int32_t left, int32_t right) {
    for (size_t slot = (size_t)hash_pair(left, right) & b->merge_mask;; slot = (slot + 1) & b->merge_mask) {
        const merge_slot *m = &b->merges[slot];
        if (m->left < 0) return NULL;
        if (m->left == left && m->right == right) return m;
    }
}

/* The code point at p (valid UTF-8 assumed) and its length. */
static uint32_t utf8_decode(const uint8_t *p, size_t *length) {
    uint8_t c = p[0];
    if (c < 0x80) { *length = 1; return c; }
    if (c < 0xE0) { *length = 2; return (uint32_t)(c & 0x1F) << 6 | (p[1] & 0x3F); }
    if (c < 0xF0) {
        *length = 3;
        return (uint32_t)(c & 0x0F) << 12 | (uint32_t)(p[1] & 0x3F) << 6 | (p[2] & 0x3F);
    }
    *length = 4;
    return (uint32_t)(c & 0x07) << 18 | (uint32_t)(p[1] & 0x3F) << 12 | (uint32_t)(p[2] & 0x3F) << 6 | (p[3] & 0x3F);
}

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves,
 * the other 68 take U+0100.. in byte order. */
static void build_alphabet(tm_bpe *b) {
    for (int cp = 0; cp < ALPHABET_LIMIT; cp++) b->char_bytes[cp] = -1;
    int next = 256;
    for (int byte = 0; byte < 256; byte++) {
        bool printable = (byte >= 0x21 && byte <= 0x7E) || (byte >= 0xA1 && byte <= 0xAC) || (byte >= 0xAE);
        int cp = printable ? byte : next++;
        b->char_bytes[cp] = (int16_t)byte;
        if (cp < 0x80) {
            b->byte_chars[byte][0] = (char)cp;
            b->byte_char_sizes[byte] = 1;
        } else {
            b->byte_chars[byte][0] = (char)(0xC0 | (cp >> 6));
            b->byte_chars[byte][1] = (char)(0x80 | (cp & 0x3F));
            b->byte_char_sizes[byte] = 2;
        }
    }
}

static bool is_integer_type(tm_gguf_type type) {
    switch (type) {
    case TM_GGUF_UINT8: case TM_GGUF_INT8: case TM_GGUF_UINT16: case TM_GGUF_INT16:
    case TM_GGUF_UINT32: case TM_GGUF_INT32: case TM_GGUF_UINT64: case TM_GGUF_INT64:
        return true;
    default:
        return false;
    }
}

/* At most 48 bytes of untrusted text for a message, cut on a character
 * boundary when the text is valid UTF-8 up to there. */
static int shown_size(const char *data, size_t size) {
    if (!data) return 0;
    if (size <= 48) return (int)size;
    size_t n = 48;
    while (n > 0 && ((uint8_t)data[n] & 0xC0) == 0x80) n--;
    return (int)n;
}

/* ---- building ----------------------------------------------------------------- */

void tm_bpe_free(tm_bpe *b) {
    if (!b) return;
    free(b->blob);
    free(b->offsets);
    free(b->types);
    free(b->decoded);
    free(b->decoded_offsets);
    free(b->slots);
    free(b->merges);
    free(b->user_defined);
    for (int i = 0; i < b->n_regexes; i++) pcre2_code_free(b->regexes[i]);
    free(b);
}

static tm_status optional_id(const tm_gguf *gguf, const char *key, int64_t n_vocab, int32_t *out, tm_error *err) {
    *out = -1;
    if (!tm_gguf_find(gguf, key)) return TM_OK;
    uint64_t value;
    if (!tm_gguf_get_u64(gguf, key, &value))
        return tm_error_set(err, TM_ERR_FORMAT, "%s is not a non-negative integer", key);
    if (value >= (uint64_t)n_vocab)
        return tm_error_set(err, TM_ERR_FORMAT, "%s = %llu is outside the vocabulary of %lld tokens", key,
                            (unsigned long long)value, (long long)n_vocab);
    *out = (int32_t)value;
    return TM_OK;
}

/* Copy and check the vocabulary: pieces, types, the piece -> id table. */
static tm_status load_tokens(tm_bpe *b, const tm_gguf *gguf, tm_error *err) {
    const tm_gguf_value *tokens = tm_gguf_find(gguf, "tokenizer.ggml.tokens");
    if (!tokens) return tm_error_set(err, TM_ERR_NOT_FOUND, "no tokenizer.ggml.tokens");
    if (tokens->type != TM_GGUF_ARRAY || tokens->as.array.element_type != TM_GGUF_STRING ||
        (tokens->as.array.count && !tokens->as.array.items))
        return tm_error_set(err, TM_ERR_FORMAT, "tokenizer.ggml.tokens is not an array of strings");
    uint64_t n = tokens->as.array.count;
    if (n == 0) return tm_error_set(err, TM_ERR_FORMAT, "tokenizer.ggml.tokens is empty: no vocabulary");
    if (n > (uint64_t)INT32_MAX - 1)
        return tm_error_set(err, TM_ERR_FORMAT, "tokenizer.ggml.tokens has %llu entries, too many",
                            (unsigned long long)n);

    const tm_gguf_value *types = tm_gguf_find(gguf, "tokenizer.ggml.token_type");
    if (types) {
        if (types->type != TM_GGUF_ARRAY || !is_integer_type(types->as.array.element_type))
            return tm_error_set(err, TM_ERR_FORMAT, "tokenizer.ggml.token_type is not an array of integers");
        if (types->as.array.count != n)
            return tm_error_set(err, TM_ERR_FORMAT, "tokenizer.ggml.token_type has %llu entries but tokenizer.ggml.tokens has %llu",
                                (unsigned long long)types->as.array.count, (unsigned long long)n);
        if (!types->as.array.raw) return tm_error_set(err, TM_ERR_FORMAT, "tokenizer.ggml.token_type has no data");
    }

    size_t blob_size = 0;
    for (uint64_t i = 0; i < n; i++) {
        const tm_gguf_value *item = &tokens->as.array.items[i];
        if (item->type != TM_GGUF_STRING || (item->as.string.size && !item->as.string.data))
            return tm_error_set(err, TM_ERR_FORMAT, "tokenizer.ggml.tokens[%llu] is not a string", (unsigned long long)i);
        uint64_t size = item->as.string.size;
        if (size > MAX_PIECE_BYTES)
            return tm_error_set(err, TM_ERR_FORMAT, "tokenizer.ggml.tokens[%llu] is %llu bytes long, more than %d",
                                (unsigned long long)i, (unsigned long long)size, MAX_PIECE_BYTES);
        size_t valid = tm_utf8_valid_prefix(item->as.string.data, (size_t)size);
        if (valid != size)
            return tm_error_set(err, TM_ERR_FORMAT, "tokenizer.ggml.tokens[%llu] is not valid UTF-8 at byte %zu",
                                (unsigned long long)i, valid);
        if (!tm_add_size(blob_size, (size_t)size + 1, &blob_size))
            return tm_error_set(err, TM_ERR_NOMEM, "tokenizer.ggml.tokens: %llu pieces are too large together",
                                (unsigned long long)n);
    }

    if (n > SIZE_MAX / 4 / sizeof(piece_slot))
        return tm_error_set(err, TM_ERR_NOMEM, "tokenizer.ggml.tokens has %llu entries, too many for memory",
                            (unsigned long long)n);
    b->n_vocab = (int32_t)n;
    size_t n_slots = 16;
    while (n_slots < 2 * (size_t)n) n_slots *= 2;
    if (!(b->blob = tm_alloc_array(blob_size, 1, err)) || !(b->offsets = tm_alloc_array(n + 1, sizeof *b->offsets, err)) ||
        !(b->types = tm_alloc_array(n, 1, err)) || !(b->slots = tm_alloc_array(n_slots, sizeof *b->slots, err)))
        return TM_ERR_NOMEM;
    b->slot_mask = n_slots - 1;
    for (size_t i = 0; i < n_slots; i++) b->slots[i] = (piece_slot){.id = -1, .tag = 0};

    size_t at = 0;
    for (uint64_t i = 0; i < n; i++) {
        tm_string_view s = tokens->as.array.items[i].as.string;
        b->offsets[i] = at;
        if (s.size) memcpy(b->blob + at, s.data, (size_t)s.size);
        at += (size_t)s.size + 1;
        if (s.size > b->longest_piece) b->longest_piece = (size_t)s.size;
        int64_t type = types ? tm_gguf_array_i64(types, i) : TM_TOKEN_NORMAL;
        if (type < TM_TOKEN_NORMAL || type > TM_TOKEN_BYTE)
            return tm_error_set(err, TM_ERR_FORMAT, "tokenizer.ggml.token_type[%llu] is %lld, not a known type",
                                (unsigned long long)i, (long long)type);
        b->types[i] = (uint8_t)type;
    }
    b->offsets[n] = at;

    /* Insert in id order; a later duplicate replaces an earlier one, as
     * llama.cpp's token_to_id map does. Empty pieces (llama.cpp renames
     * them "[EMPTY_i]") are never looked up. */
    for (int32_t i = 0; i < b->n_vocab; i++) {
        const char *data = b->blob + b->offsets[i];
        size_t size = piece_size(b, i);
        if (size == 0) continue;
        uint64_t hash = tm_tokenizer_hash_bytes(data, size);
        for (size_t slot = (size_t)hash & b->slot_mask;; slot = (slot + 1) & b->slot_mask) {
            int32_t id = b->slots[slot].id;
            if (id < 0 || (piece_size(b, id) == size && memcmp(b->blob + b->offsets[id], data, size) == 0)) {
                b->slots[slot] = (piece_slot){.id = i, .tag = (uint32_t)(hash >> 32)};
                break;
            }
        }
    }
    return TM_OK;
}

/* Parse and check tokenizer.ggml.merges into the pair table. */
static tm_status load_merges(tm_bpe *b, const tm_gguf *gguf, tm_error *err) {
    const tm_gguf_value *merges = tm_gguf_find(gguf, "tokenizer.ggml.merges");
    if (!merges) return tm_error_set(err, TM_ERR_NOT_FOUND, "no tokenizer.ggml.merges (byte-level BPE needs them)");
    if (merges->type != TM_GGUF_ARRAY || merges->as.array.element_type != TM_GGUF_STRING ||
        (merges->as.array.count && !merges->as.array.items))
        return tm_error_set(err, TM_ERR_FORMAT, "tokenizer.ggml.merges is not an array of strings");
    uint64_t n = merges->as.array.count;
    if (n > (uint64_t)INT32_MAX / 4)
        return tm_error_set(err, TM_ERR_FORMAT, "tokenizer.ggml.merges has %llu entries, too many",
                            (unsigned long long)n);
    size_t n_slots = 16;
    while (n_slots < 2 * (size_t)n) n_slots *= 2;
    if (!(b->merges = tm_alloc_array(n_slots, sizeof *b->merges, err))) return TM_ERR_NOMEM;
    b->merge_mask = n_slots - 1;
    for (size_t i = 0; i < n_slots; i++) b->merges[i].left = -1;
    b->n_merges = (int32_t)n;

    char *joined = tm_alloc_array(b->longest_piece + 1, 1, err);
    if (!joined) return TM_ERR_NOMEM;
    tm_status status = TM_OK;
    for (uint64_t i = 0; i < n && status == TM_OK; i++) {
        const tm_gguf_value *item = &merges->as.array.items[i];
        if (item->type != TM_GGUF_STRING || (item->as.string.size && !item->as.string.data)) {
            status = tm_error_set(err, TM_ERR_FORMAT, "tokenizer.ggml.merges[%llu] is not a string", (unsigned long long)i);
            break;
        }
        const char *text = item->as.string.data;
        size_t size = (size_t)item->as.string.size;
        /* As llama.cpp: the first space after the first byte separates. */
        const char *space = size > 1 ? memchr(text + 1, ' ', size - 1) : NULL;
        if (!space || space + 1 == text + size) {
            status = tm_error_set(err, TM_ERR_FORMAT,
                                  "tokenizer.ggml.merges[%llu] \"%.*s\" is not two pieces separated by a space",
                                  (unsigned long long)i, shown_size(text, size), text ? text : "");
            break;
        }
        size_t left_size = (size_t)(space - text), right_size = size - left_size - 1;
        int32_t left = lookup(b, text, left_size), right = lookup(b, space + 1, right_size), merged = -1;
        if (left >= 0 && right >= 0 && left_size + right_size <= b->longest_piece) {
            memcpy(joined, text, left_size);
            memcpy(joined + left_size, space + 1, right_size);
            merged = lookup(b, joined, left_size + right_size);
        }
        if (left < 0 || right < 0 || merged < 0) {
            const char *what = left < 0 ? "its left piece" : right < 0 ? "its right piece" : "the merged piece";
            status = tm_error_set(err, TM_ERR_FORMAT, "tokenizer.ggml.merges[%llu] \"%.*s\": %s is not in the vocabulary",
                                  (unsigned long long)i, shown_size(text, size), text, what);
            break;
        }
        /* A repeated pair keeps its first (lowest) rank, as llama.cpp's
         * bpe_ranks.emplace does. */
        for (size_t slot = (size_t)hash_pair(left, right) & b->merge_mask;; slot = (slot + 1) & b->merge_mask) {
            merge_slot *m = &b->merges[slot];
            if (m->left < 0) {
                *m = (merge_slot){.left = left, .right = right, .rank = (int32_t)i, .merged = merged};
                break;
            }
            if (m->left == left && m->right == right) break;
        }
    }
    free(joined);
    return status;
}

/* What each token decodes to, the byte tables, the user-defined list. */
static tm_status build_tables(tm_bpe *b, tm_error *err) {
    build_alphabet(b);
    size_t total = 0;
    for (int32_t i = 0; i < b->n_vocab; i++)
        if (b->types[i] == TM_TOKEN_NORMAL || b->types[i] == TM_TOKEN_USER_DEFINED) total += piece_size(b, i);
    if (!(b->decoded = tm_alloc_array(total + 1, 1, err)) ||
        !(b->decoded_offsets = tm_alloc_array((size_t)b->n_vocab + 1, sizeof *b->decoded_offsets, err)))
        return TM_ERR_NOMEM;
    size_t at = 0, n_user_defined = 0;
    for (int32_t i = 0; i < b->n_vocab; i++) {
        b->decoded_offsets[i] = at;
        const uint8_t *p = (const uint8_t *)b->blob + b->offsets[i];
        size_t size = piece_size(b, i), start = at;
        if (b->types[i] == TM_TOKEN_USER_DEFINED) {
            memcpy(b->decoded + at, p, size);
            at += size;
            if (size) n_user_defined++;
        } else if (b->types[i] == TM_TOKEN_NORMAL) {
            /* Each alphabet character is one byte; anything else (which
             * no byte-level merge can produce) stays as its UTF-8. */
            for (size_t k = 0; k < size;) {
                size_t length;
                uint32_t cp = utf8_decode(p + k, &length);
                if (cp < ALPHABET_LIMIT && b->char_bytes[cp] >= 0) b->decoded[at++] = (char)b->char_bytes[cp];
                else {
                    memcpy(b->decoded + at, p + k, length);
                    at += length;
                }
                k += length;
            }
        }
        if (at - start > b->max_decoded) b->max_decoded = at - start;
    }
    b->decoded_offsets[b->n_vocab] = at;

    b->most_ids_per_byte = 1;
    for (int byte = 0; byte < 256; byte++) {
        b->byte_tokens[byte] = lookup(b, b->byte_chars[byte], b->byte_char_sizes[byte]);
        b->byte_fallback_count[byte] = 0;
        if (b->byte_tokens[byte] >= 0) continue;
        for (int k = 0; k < b->byte_char_sizes[byte]; k++) {
            int32_t id = lookup(b, &b->byte_chars[byte][k], 1);
            if (id >= 0) b->byte_fallback[byte][b->byte_fallback_count[byte]++] = id;
        }
        if (b->byte_fallback_count[byte] > b->most_ids_per_byte) b->most_ids_per_byte = b->byte_fallback_count[byte];
    }

    if (n_user_defined) {
        if (!(b->user_defined = tm_alloc_array(n_user_defined, sizeof *b->user_defined, err))) return TM_ERR_NOMEM;
        for (int32_t i = 0; i < b->n_vocab; i++)
            if (b->types[i] == TM_TOKEN_USER_DEFINED && piece_size(b, i)) b->user_defined[b->n_user_defined++] = i;
        /* Longest first, as llama.cpp's special-token cache; insertion sort
         * by size then id keeps ties in a fixed order. */
        for (size_t i = 1; i < b->n_user_defined; i++) {
            int32_t id = b->user_defined[i];
            size_t j = i;
            while (j > 0 && piece_size(b, b->user_defined[j - 1]) < piece_size(b, id)) {
                b->user_defined[j] = b->user_defined[j - 1];
                j--;
            }
            b->user_defined[j] = id;
        }
    }
    return TM_OK;
}

static tm_status compile_regexes(tm_bpe *b, tm_error *err) {
    uint32_t jit = 0;
    pcre2_config(PCRE2_CONFIG_JIT, &jit);
    for (int i = 0; i < MAX_REGEXES && b->pre->regexes[i]; i++) {
        int code;
        PCRE2_SIZE offset;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)b->pre->regexes[i], PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP,
                                       &code, &offset, NULL);
        if (!re) {
            PCRE2_UCHAR message[128];
            pcre2_get_error_message(code, message, sizeof message);
            return tm_error_set(err, TM_ERR_UNSUPPORTED, "pre-tokenizer %s: regex %d does not compile at %zu: %s",
                                b->pre->family, i, (size_t)offset, (const char *)message);
        }
        /* Without JIT the interpreter gives the same matches, only slower. */
        if (jit) (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
        b->regexes[b->n_regexes++] = re;
    }
    return TM_OK;
}

static tm_status from_gguf(tm_bpe **out, const tm_gguf *gguf, tm_error *err) {
    tm_string_view model;
    if (!tm_gguf_find(gguf, "tokenizer.ggml.model")) return tm_error_set(err, TM_ERR_NOT_FOUND, "no tokenizer.ggml.model");
    if (!tm_gguf_get_string(gguf, "tokenizer.ggml.model", &model))
        return tm_error_set(err, TM_ERR_FORMAT, "tokenizer.ggml.model is not a string");
    if (!tm_string_view_equals(model, "gpt2"))
        return tm_error_set(err, TM_ERR_UNSUPPORTED, "tokenizer.ggml.model \"%.*s\" is not byte-level BPE (\"gpt2\")",
                            shown_size(model.data, (size_t)model.size), model.data ? model.data : "");

    tm_string_view pre = {.data = "default", .size = 7};
    if (tm_gguf_find(gguf, "tokenizer.ggml.pre") && !tm_gguf_get_string(gguf, "tokenizer.ggml.pre", &pre))
        return tm_error_set(err, TM_ERR_FORMAT, "tokenizer.ggml.pre is not a string");
    const pre_tokenizer_spec *spec = find_pre_tokenizer(pre.data, (size_t)pre.size);
    if (!spec)
        return tm_error_set(err, TM_ERR_UNSUPPORTED,
                            "tokenizer.ggml.pre \"%.*s\" is not a supported pre-tokenizer (supported: llama-bpe, "
                            "qwen2, gpt-2, default and their aliases)",
                            shown_size(pre.data, (size_t)pre.size), pre.data ? pre.data : "");

    tm_bpe *b = tm_alloc_array(1, sizeof *b, err);
    if (!b) return TM_ERR_NOMEM;
    b->pre = spec;
    snprintf(b->pre_name, sizeof b->pre_name, "%.*s", (int)pre.size, pre.data); /* a known name: short */
    b->add_bos = spec->add_bos;

    tm_status status = load_tokens(b, gguf, err);
    if (status == TM_OK) status = load_merges(b, gguf, err);
    if (status == TM_OK) status = optional_id(gguf, "tokenizer.ggml.bos_token_id", b->n_vocab, &b->bos, err);
    if (status == TM_OK) status = optional_id(gguf, "tokenizer.ggml.eos_token_id", b->n_vocab, &b->eos, err);
    if (status == TM_OK && tm_gguf_find(gguf, "tokenizer.ggml.add_bos_token") &&
        !tm_gguf_get_bool(gguf, "tokenizer.ggml.add_bos_token", &b->add_bos))
        status = tm_error_set(err, TM_ERR_FORMAT, "tokenizer.ggml.add_bos_token is not a boolean");
    if (status == TM_OK) status = build_tables(b, err);
    if (status == TM_OK) status = compile_regexes(b, err);
    if (status != TM_OK) {
        tm_bpe_free(b);
        return status;
    }
    *out = b;
    return TM_OK;
}

tm_status tm_bpe_from_gguf(tm_bpe **out, const tm_gguf *gguf, tm_error *err) {
    if (!out || !gguf) return tm_error_set(err, TM_ERR_ARGUMENT, "tm_bpe_from_gguf: NULL argument");
    *out = NULL;
    tm_status status = from_gguf(out, gguf, err);
    const char *path = tm_gguf_file(gguf)->path;
    if (status != TM_OK && path) tm_error_prefix(err, "%s", path);
    return status;
}

/* ---- encoding ------------------------------------------------------------------ */

typedef struct {
    int32_t id;         /* token of the symbol's text; -1 none (a lone byte) */
    int32_t prev, next; /* neighbours, -1 at the ends */
} symbol;

typedef struct {
    int32_t rank, left, right;
    int32_t left_id, right_id; /* the pair when queued: stale once either changed */
    int32_t merged;
} candidate;

/* A pre-token already encoded in this call: its text (inside the caller's
 * text) and where its ids sit in the output. */
typedef struct {
    const char *text; /* NULL: empty slot */
    uint32_t size, tag;
    size_t at;
    size_t n_ids;
} cached_word;

/* Everything one encode call owns; a tm_bpe itself is never written. */
typedef struct {
    const tm_bpe *bpe;
    int32_t *out;
    size_t n_out;
    char *mapped;            /* a pre-token spelled in the byte alphabet */
    size_t mapped_capacity;
    symbol *symbols;
    size_t symbols_capacity;
    candidate *heap;
    size_t heap_size, heap_capacity;
    cached_word *cache;
    size_t cache_mask, cache_used;
    pcre2_match_data *match[MAX_REGEXES];
    tm_error *err;
} encoder;

static bool grow(void **p, size_t *capacity, size_t need, size_t element) {
    if (need <= *capacity) return true;
    size_t c = *capacity ? *capacity : 64;
    while (c < need) {
        if (c > SIZE_MAX / 2 / element) return false;
        c *= 2;
    }
    void *q = realloc(*p, c * element);
    if (!q) return false;
    *p = q;
    *capacity = c;
    return true;
}

static bool candidate_before(const candidate *a, const candidate *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static bool heap_push(encoder *e, candidate c) {
    if (!grow((void **)&e->heap, &e->heap_capacity, e->heap_size + 1, sizeof *e->heap)) return false;
    size_t i = e->heap_size++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!candidate_before(&c, &e->heap[parent])) break;
        e->heap[i] = e->heap[parent];
        i = parent;
    }
    e->heap[i] = c;
    return true;
}

static candidate heap_pop(encoder *e) {
    candidate top = e->heap[0], last = e->heap[--e->heap_size];
    size_t i = 0, n = e->heap_size;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && candidate_before(&e->heap[child + 1], &e->heap[child])) child++;
        if (!candidate_before(&e->heap[child], &last)) break;
        e->heap[i] = e->heap[child];
        i = child;
    }
    if (n) e->heap[i] = last;
    return top;
}

static bool queue_pair(encoder *e, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return true;
    int32_t left_id = e->symbols[left].id, right_id = e->symbols[right].id;
    if (left_id < 0 || right_id < 0) return true;
    const merge_slot *m = find_merge(e->bpe, left_id, right_id);
    if (!m) return true;
    return heap_push(e, (candidate){m->rank, left, right, left_id, right_id, m->merged});
}

static void emit_byte(encoder *e, uint8_t byte) {
    const tm_bpe *b = e->bpe;
    if (b->byte_tokens[byte] >= 0) {
        e->out[e->n_out++] = b->byte_tokens[byte];
        return;
    }
    /* llama.cpp's fallback; a byte with no token at all vanishes, as there. */
    for (int k = 0; k < b->byte_fallback_count[byte]; k++) e->out[e->n_out++] = b->byte_fallback[byte][k];
}

/* Merge one pre-token and append its ids: llama.cpp's queue of adjacent
 * pairs, lowest rank first, leftmost on ties, stale pairs skipped. */
static tm_status merge_word(encoder *e, const uint8_t *text, size_t size) {
    const tm_bpe *b = e->bpe;
    if (size > (size_t)INT32_MAX - 1)
        return tm_error_set(e->err, TM_ERR_LIMIT, "a pre-token of %zu bytes is too long to merge", size);
    if (!grow((void **)&e->symbols, &e->symbols_capacity, size, sizeof *e->symbols))
        return tm_error_set(e->err, TM_ERR_NOMEM, "out of memory merging a pre-token of %zu bytes", size);
    symbol *s = e->symbols;
    for (size_t i = 0; i < size; i++)
        s[i] = (symbol){.id = b->byte_tokens[text[i]], .prev = (int32_t)i - 1, .next = i + 1 < size ? (int32_t)i + 1 : -1};
    e->heap_size = 0;
    bool ok = true;
    for (size_t i = 1; i < size && ok; i++) ok = queue_pair(e, (int32_t)i - 1, (int32_t)i);
    while (ok && e->heap_size) {
        candidate c = heap_pop(e);
        symbol *left = &s[c.left];
        if (left->id != c.left_id || left->next != c.right || s[c.right].id != c.right_id) continue;
        left->id = c.merged;
        left->next = s[c.right].next;
        if (left->next >= 0) s[left->next].prev = c.left;
        s[c.right].id = -2; /* merged away: never matches a queued pair */
        s[c.right].next = -1;
        ok = queue_pair(e, left->prev, c.left) && queue_pair(e, c.left, left->next);
    }
    if (!ok) return tm_error_set(e->err, TM_ERR_NOMEM, "out of memory merging a pre-token of %zu bytes", size);
    for (int32_t i = 0; i >= 0; i = s[i].next) {
        if (s[i].id >= 0) e->out[e->n_out++] = s[i].id;
        else emit_byte(e, text[i]); /* an unmerged byte whose character is no token */
    }
    return TM_OK;
}

static bool cache_grow(encoder *e) {
    size_t n_slots = e->cache ? 2 * (e->cache_mask + 1) : 256;
    cached_word *slots = calloc(n_slots, sizeof *slots);
    if (!slots) return false;
    if (e->cache) {
        for (size_t i = 0; i <= e->cache_mask; i++) {
            cached_word w = e->cache[i];
            if (!w.text) continue;
            size_t slot = (size_t)tm_tokenizer_hash_bytes(w.text, w.size) & (n_slots - 1);
            while (slots[slot].text) slot = (slot + 1) & (n_slots - 1);
            slots[slot] = w;
        }
        free(e->cache);
    }
    e->cache = slots;
    e->cache_mask = n_slots - 1;
    return true;
}

/* Encode one pre-token, or copy its ids from its first occurrence. */
static tm_status encode_word(encoder *e, const char *text, size_t size) {
    const tm_bpe *b = e->bpe;
    if (size == 0) return TM_OK;
    bool cacheable = size <= CACHED_WORD_BYTES;
    uint64_t hash = 0;
    size_t slot = 0;
    if (cacheable) {
        if (!e->cache && !cache_grow(e)) cacheable = false;
    }
    if (cacheable) {
        hash = tm_tokenizer_hash_bytes(text, size);
        for (slot = (size_t)hash & e->cache_mask; e->cache[slot].text; slot = (slot + 1) & e->cache_mask) {
            const cached_word *w = &e->cache[slot];
            if (w->tag == (uint32_t)(hash >> 32) && w->size == size && memcmp(w->text, text, size) == 0) {
                memmove(e->out + e->n_out, e->out + w->at, w->n_ids * sizeof *e->out);
                e->n_out += w->n_ids;
                return TM_OK;
            }
        }
    }

    size_t first = e->n_out;
    const uint8_t *bytes = (const uint8_t *)text;
    if (size == 1) {
        emit_byte(e, bytes[0]);
    } else {
        int32_t whole = -1;
        if (b->pre->ignore_merges && size <= b->longest_piece) {
            /* The pre-token spelled in the alphabet is at most 2 bytes a byte. */
            if (!grow((void **)&e->mapped, &e->mapped_capacity, 2 * size, 1))
                return tm_error_set(e->err, TM_ERR_NOMEM, "out of memory encoding a pre-token of %zu bytes", size);
            size_t n = 0;
            for (size_t i = 0; i < size; i++) {
                memcpy(e->mapped + n, b->byte_chars[bytes[i]], b->byte_char_sizes[bytes[i]]);
                n += b->byte_char_sizes[bytes[i]];
            }
            whole = lookup(b, e->mapped, n);
        }
        if (whole >= 0) e->out[e->n_out++] = whole;
        else {
            tm_status status = merge_word(e, bytes, size);
            if (status != TM_OK) return status;
        }
    }

    if (cacheable) {
        e->cache[slot] = (cached_word){.text = text, .size = (uint32_t)size, .tag = (uint32_t)(hash >> 32),
                                       .at = first, .n_ids = e->n_out - first};
        /* Keep the table at most half full; growing loses nothing. */
        if (++e->cache_used * 2 > e->cache_mask + 1 && !cache_grow(e)) {
            free(e->cache);
            e->cache = NULL;
            e->cache_used = 0;
        }
    }
    return TM_OK;
}

/* Split text with regex `level` and hand each piece (matches and the text
 * between them) to the next level; past the last regex, encode it. Each
 * regex sees only its piece, so lookaheads stop at the piece's end, as in
 * llama.cpp. */
static tm_status split(encoder *e, const char *text, size_t size, int level) {
    const tm_bpe *b = e->bpe;
    if (size == 0) return TM_OK;
    if (level == b->n_regexes) return encode_word(e, text, size);
    pcre2_match_data *md = e->match[level];
    size_t start = 0;
    tm_status status = TM_OK;
    while (start < size && status == TM_OK) {
        /* The text was checked as UTF-8 once for all pieces. */
        int rc = pcre2_match(b->regexes[level], (PCRE2_SPTR)text, size, start, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT) /* the interpreter keeps its backtracking on the heap */
            rc = pcre2_match(b->regexes[level], (PCRE2_SPTR)text, size, start, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md,
                             NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR message[128];
            pcre2_get_error_message(rc, message, sizeof message);
            return tm_error_set(e->err, rc == PCRE2_ERROR_NOMEMORY ? TM_ERR_NOMEM : TM_ERR_LIMIT,
                                "pre-tokenizer regex %d failed on a piece of %zu bytes: %s", level, size,
                                (const char *)message);
        }
        PCRE2_SIZE *ovector = pcre2_get_ovector_pointer(md);
        size_t match_start = ovector[0], match_end = ovector[1];
        if (match_start > start) status = split(e, text + start, match_start - start, level + 1);
        if (status != TM_OK) break;
        if (match_end == match_start) {
            /* No pattern here matches empty text; should one, step over a
             * character and let it join the next piece. */
            size_t next = match_start + 1;
            while (next < size && ((uint8_t)text[next] & 0xC0) == 0x80) next++;
            status = split(e, text + match_start, next - match_start, level + 1);
            start = next;
            continue;
        }
        status = split(e, text + match_start, match_end - match_start, level + 1);
        start = match_end;
    }
    if (status == TM_OK && start < size) status = split(e, text + start, size - start, level + 1);
    return status;
}

/* Cut user-defined tokens out of the text, longest tokens first over the
 * whole text as llama.cpp's tokenizer_st_partition does, then split and
 * encode the stretches between them. */
typedef struct {
    size_t start, size;
    int32_t id; /* -1: text */
} fragment;

static tm_status encode_with_user_defined(encoder *e, const char *text, size_t size) {
    const tm_bpe *b = e->bpe;
    fragment *fragments = malloc(sizeof *fragments), *next = NULL;
    size_t n = 1, capacity = 1, next_capacity = 0;
    if (!fragments) return tm_error_set(e->err, TM_ERR_NOMEM, "out of memory");
    fragments[0] = (fragment){0, size, -1};
    tm_status status = TM_OK;
    for (size_t t = 0; t < b->n_user_defined && status == TM_OK; t++) {
        int32_t id = b->user_defined[t];
        const char *piece = b->blob + b->offsets[id];
        size_t piece_bytes = piece_size(b, id), n_next = 0;
        for (size_t f = 0; f < n && status == TM_OK; f++) {
            fragment fr = fragments[f];
            size_t at = fr.start, end = fr.start + fr.size;
            while (fr.id < 0 && at < end) {
                const char *hit = memmem(text + at, end - at, piece, piece_bytes);
                if (!hit) break;
                size_t hit_at = (size_t)(hit - text);
                if (!grow((void **)&next, &next_capacity, n_next + 2, sizeof *next)) {
                    status = tm_error_set(e->err, TM_ERR_NOMEM, "out of memory");
                    break;
                }
                if (hit_at > at) next[n_next++] = (fragment){at, hit_at - at, -1};
                next[n_next++] = (fragment){hit_at, piece_bytes, id};
                at = hit_at + piece_bytes;
            }
            if (status != TM_OK) break;
            if (!grow((void **)&next, &next_capacity, n_next + 1, sizeof *next)) {
                status = tm_error_set(e->err, TM_ERR_NOMEM, "out of memory");
                break;
            }
            if (fr.id >= 0) next[n_next++] = fr;
            else if (at < end) next[n_next++] = (fragment){at, end - at, -1};
        }
        if (status != TM_OK) break;
        fragment *swap = fragments;
        fragments = next;
        next = swap;
        size_t swap_capacity = capacity;
        capacity = next_capacity;
        next_capacity = swap_capacity;
        n = n_next;
    }
    for (size_t f = 0; f < n && status == TM_OK; f++) {
        if (fragments[f].id >= 0) e->out[e->n_out++] = fragments[f].id;
        else status = split(e, text + fragments[f].start, fragments[f].size, 0);
    }
    free(fragments);
    free(next);
    return status;
}

tm_status tm_bpe_encode(const tm_bpe *b, const char *text, size_t size, int32_t **ids, size_t *n_ids, tm_error *err) {
    if (!b || !ids || !n_ids || (!text && size)) return tm_error_set(err, TM_ERR_ARGUMENT, "tm_bpe_encode: NULL argument");
    *ids = NULL;
    *n_ids = 0;
    size_t valid = tm_utf8_valid_prefix(text, size);
    if (valid != size) return tm_error_set(err, TM_ERR_FORMAT, "text is not valid UTF-8 at byte offset %zu", valid);
    if (size == 0) return TM_OK;
    size_t capacity;
    if (!tm_mul_size(size, b->most_ids_per_byte, &capacity) || capacity > SIZE_MAX / sizeof(int32_t))
        return tm_error_set(err, TM_ERR_NOMEM, "text of %zu bytes is too large to encode", size);

    encoder e = {.bpe = b, .err = err};
    tm_status status = TM_OK;
    if (!(e.out = malloc(capacity * sizeof *e.out))) status = tm_error_set(err, TM_ERR_NOMEM, "out of memory encoding %zu bytes", size);
    for (int i = 0; i < b->n_regexes && status == TM_OK; i++)
        if (!(e.match[i] = pcre2_match_data_create_from_pattern(b->regexes[i], NULL)))
            status = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    if (status == TM_OK)
        status = b->n_user_defined ? encode_with_user_defined(&e, text, size) : split(&e, text, size, 0);

    for (int i = 0; i < b->n_regexes; i++) pcre2_match_data_free(e.match[i]);
    free(e.mapped);
    free(e.symbols);
    free(e.heap);
    free(e.cache);
    if (status != TM_OK) {
        free(e.out);
        return status;
    }
    if (e.n_out == 0) {
        free(e.out);
        return TM_OK;
    }
    int32_t *shrunk = realloc(e.out, e.n_out * sizeof *e.out);
    *ids = shrunk ? shrunk : e.out;
    *n_ids = e.n_out;
    return TM_OK;
}

/* ---- decoding and accessors ------------------------------------------------------ */

static bool decodes(const tm_bpe *b, int32_t id) { return b && id >= 0 && id < b->n_vocab; }

size_t tm_bpe_token_bytes(const tm_bpe *b, int32_t id, char *out, size_t capacity) {
    if (!decodes(b, id)) return 0;
    size_t size = b->decoded_offsets[id + 1] - b->decoded_offsets[id];
    if (out && capacity) memcpy(out, b->decoded + b->decoded_offsets[id], size < capacity ? size : capacity);
    return size;
}

size_t tm_bpe_max_token_bytes(const tm_bpe *b) { return b ? b->max_decoded : 0; }

tm_status tm_bpe_decode(const tm_bpe *b, const int32_t *ids, size_t n_ids, char **text, size_t *size, tm_error *err) {
    if (!b || !text || !size || (!ids && n_ids)) return tm_error_set(err, TM_ERR_ARGUMENT, "tm_bpe_decode: NULL argument");
    *text = NULL;
    *size = 0;
    size_t total = 0;
    for (size_t i = 0; i < n_ids; i++)
        if (!tm_add_size(total, tm_bpe_token_bytes(b, ids[i], NULL, 0), &total))
            return tm_error_set(err, TM_ERR_NOMEM, "decoded text too large");
    size_t with_nul;
    if (!tm_add_size(total, 1, &with_nul)) return tm_error_set(err, TM_ERR_NOMEM, "decoded text too large");
    char *out = tm_alloc_array(with_nul, 1, err);
    if (!out) return TM_ERR_NOMEM;
    size_t at = 0;
    for (size_t i = 0; i < n_ids; i++) at += tm_bpe_token_bytes(b, ids[i], out + at, total - at);
    out[at] = '\0';
    *text = out;
    *size = at;
    return TM_OK;
}

int32_t tm_bpe_vocab_size(const tm_bpe *b) { return b ? b->n_vocab : 0; }
int32_t tm_bpe_bos(const tm_bpe *b) { return b ? b->bos : -1; }
int32_t tm_bpe_eos(const tm_bpe *b) { return b ? b->eos : -1; }
bool tm_bpe_add_bos(const tm_bpe *b) { return b && b->add_bos; }
int32_t tm_bpe_merge_count(const tm_bpe *b) { return b ? b->n_merges : 0; }
const char *tm_bpe_pre_name(const tm_bpe *b) { return b ? b->pre_name : NULL; }
const char *tm_bpe_pre_family(const tm_bpe *b) { return b ? b->pre->family : NULL; }

const char *tm_bpe_piece(const tm_bpe *b, int32_t id, size_t *size) {
    if (!decodes(b, id)) {
        if (size) *size = 0;
        return NULL;
    }
    if (size) *size = piece_size(b, id);
    return b->blob + b->offsets[id];
}

tm_token_type tm_bpe_token_type(const tm_bpe *b, int32_t id) {
    return decodes(b, id) ? (tm_token_type)b->types[id] : TM_TOKEN_UNUSED;
}
