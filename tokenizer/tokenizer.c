/* The SentencePiece-style BPE tokenizer of Llama 1/2, reproducing llama.cpp's
 * llm_tokenizer_spm (tokenizer.ggml.model = "llama") token for token: spaces
 * become U+2581, the text is split into UTF-8 characters, the adjacent pair
 * whose concatenation is a vocabulary entry with the highest score is merged
 * (ties go to the leftmost pair) until no pair is left, and characters that no
 * entry covers fall back to <0xNN> byte tokens. Encoding is the detector's hot
 * path, so where the vocabulary allows it (no piece glues a word to the
 * U+2581 of the next) the text is merged word by word with repeated words
 * looked up, which gives the same ids; the whole-text algorithm stays as the
 * fallback and as the tests' yardstick. The vocabulary comes from a GGUF's
 * tokenizer.ggml.* metadata or from llama2.c's tokenizer.bin, and is always
 * copied, so a tokenizer outlives the file it was read from; once built it is
 * only read, so threads may share it. Decoding streams whole UTF-8
 * characters only. Both kinds of tokenizer (the byte-level BPE one lives in
 * tokenizer_bpe.c) also get here what chat prompts need, as llama.cpp does
 * it: special-token parsing (tm_tokenizer_encode_special) and the set of
 * tokens that end a generation. Vocabularies and texts are untrusted: this
 * file never prints, aborts or reads outside what it has checked. */
#include "tracemark/tokenizer.h"
#include "tokenizer_internal.h"
#include "tokenizer_bpe.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A slot of the piece -> id table: the id (-1 empty) and the high half of
 * the piece's hash, so that probing past other pieces rarely touches their
 * text. */
typedef struct {
    int32_t id;
    uint32_t tag;
} piece_slot;

struct tm_tokenizer {
    int32_t n_vocab;
    char *blob;            /* every piece, NUL-terminated, back to back */
    size_t *offsets;       /* piece i is blob[offsets[i] .. offsets[i+1]-1) minus its NUL */
    float *scores;
    uint8_t *types;        /* tm_token_type */
    uint8_t *byte_values;  /* the byte of a BYTE token */
    /* Open addressing, piece -> id, -1 empty. Hand-written because the
     * encoder looks up every candidate pair here and the chosen libraries
     * offer no byte-string hash table. */
    piece_slot *slots;
    size_t slot_mask;
    int32_t byte_tokens[256]; /* encoder fallback per byte */
    int32_t bos, eos, unk;
    bool add_space_prefix;
    bool add_bos;
    size_t longest_piece;  /* bytes; bigrams longer than this cannot be entries */
    size_t max_decoded;    /* most bytes one token decodes to, see max_piece_size */
    /* No piece holds U+2581 after another character, and no score is NaN:
     * words then encode independently (see the encoding section). */
    bool words_independent;
    uint64_t serial;       /* unique per tokenizer built, names it to the word caches */
    tm_bpe *bpe;           /* byte-level BPE (tokenizer_bpe.c); NULL for SentencePiece */
    char kind[32];
    /* What special-token parsing cuts out of a text (CONTROL, USER_DEFINED
     * and UNKNOWN tokens, and the end-of-generation tokens llama.cpp
     * promotes to control), longest text first, and which ids end a
     * generation. See "special tokens" below. */
    int32_t *special_ids;
    size_t n_special;
    uint8_t *end_of_generation; /* one flag per id */
};

/* A piece being collected before the tokenizer is built. */
typedef struct {
    const char *data;
    size_t size;
    float score;
    tm_token_type type;
} vocab_entry;

/* Hands every tokenizer its serial number (see word_cache). */
static atomic_uint_fast64_t next_serial = 1;

static const char SPACE_MARK[3] = {'\xE2', '\x96', '\x81'}; /* U+2581 */

static tm_status prepare_special(tm_tokenizer *t, const tm_gguf *gguf, tm_error *err);

/* ---- small helpers ------------------------------------------------------ */

static size_t piece_size(const tm_tokenizer *t, int32_t id) {
    return t->offsets[id + 1] - t->offsets[id] - 1;
}

static int32_t lookup(const tm_tokenizer *t, const char *data, size_t size) {
    if (size > t->longest_piece) return -1;
    uint64_t hash = tm_tokenizer_hash_bytes(data, size);
    uint32_t tag = (uint32_t)(hash >> 32);
    for (size_t slot = (size_t)hash & t->slot_mask;; slot = (slot + 1) & t->slot_mask) {
        piece_slot s = t->slots[slot];
        if (s.id < 0) return -1;
        if (s.tag == tag && piece_size(t, s.id) == size && memcmp(t->blob + t->offsets[s.id], data, size) == 0)
            return s.id;
    }
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* "<0xNN>" -> NN, or -1. */
static int parse_byte_piece(const char *data, size_t size) {
    if (size != 6 || memcmp(data, "<0x", 3) != 0 || data[5] != '>') return -1;
    int hi = hex_digit(data[3]), lo = hex_digit(data[4]);
    if (hi < 0 || lo < 0) return -1;
    return hi * 16 + lo;
}

/* ---- building ------------------------------------------------------------ */

void tm_tokenizer_free(tm_tokenizer *t) {
    if (!t) return;
    tm_bpe_free(t->bpe);
    free(t->blob);
    free(t->offsets);
    free(t->scores);
    free(t->types);
    free(t->byte_values);
    free(t->slots);
    free(t->special_ids);
    free(t->end_of_generation);
    free(t);
}

/* Build from collected entries (copied). Special ids are checked here. */
static tm_status tokenizer_build(tm_tokenizer **out, const vocab_entry *entries, size_t n, int64_t bos,
                                 int64_t eos, int64_t unk, bool add_space_prefix, bool add_bos, tm_error *err) {
    *out = NULL;
    if (n == 0) return tm_error_set(err, TM_ERR_FORMAT, "empty vocabulary");
    if (n > (size_t)INT32_MAX - 1) return tm_error_set(err, TM_ERR_FORMAT, "vocabulary of %zu tokens is too large", n);
    const char *names[3] = {"bos", "eos", "unknown"};
    const int64_t special[3] = {bos, eos, unk};
    for (int k = 0; k < 3; k++)
        if (special[k] < 0 || special[k] >= (int64_t)n)
            return tm_error_set(err, TM_ERR_FORMAT, "%s token id %lld is outside the vocabulary of %zu tokens",
                                names[k], (long long)special[k], n);

    tm_tokenizer *t = tm_alloc_array(1, sizeof *t, err);
    if (!t) return TM_ERR_NOMEM;
    t->n_vocab = (int32_t)n;
    t->bos = (int32_t)bos;
    t->eos = (int32_t)eos;
    t->unk = (int32_t)unk;
    t->add_space_prefix = add_space_prefix;
    t->add_bos = add_bos;

    size_t blob_size = 0;
    for (size_t i = 0; i < n; i++) {
        size_t with_nul;
        if (!tm_add_size(entries[i].size, 1, &with_nul) || !tm_add_size(blob_size, with_nul, &blob_size)) {
            tm_tokenizer_free(t);
            return tm_error_set(err, TM_ERR_NOMEM, "vocabulary text size overflows");
        }
    }
    size_t n_slots = 16;
    while (n_slots < 2 * n) n_slots *= 2; /* n < 2^31, so this cannot overflow */
    t->blob = tm_alloc_array(blob_size, 1, err);
    t->offsets = t->blob ? tm_alloc_array(n + 1, sizeof *t->offsets, err) : NULL;
    t->scores = t->offsets ? tm_alloc_array(n, sizeof *t->scores, err) : NULL;
    t->types = t->scores ? tm_alloc_array(n, 1, err) : NULL;
    t->byte_values = t->types ? tm_alloc_array(n, 1, err) : NULL;
    t->slots = t->byte_values ? tm_alloc_array(n_slots, sizeof *t->slots, err) : NULL;
    if (!t->slots) {
        tm_tokenizer_free(t);
        return TM_ERR_NOMEM;
    }
    t->slot_mask = n_slots - 1;
    for (size_t i = 0; i < n_slots; i++) t->slots[i] = (piece_slot){.id = -1, .tag = 0};

    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        const vocab_entry *e = &entries[i];
        t->offsets[i] = at;
        if (e->size) memcpy(t->blob + at, e->data, e->size);
        at += e->size + 1;
        t->scores[i] = e->score;
        t->types[i] = (uint8_t)e->type;
        if (e->size > t->longest_piece) t->longest_piece = e->size;
        if (e->type == TM_TOKEN_BYTE) {
            int value = parse_byte_piece(e->data, e->size);
            if (value < 0) {
                tm_tokenizer_free(t);
                return tm_error_set(err, TM_ERR_FORMAT, "token %zu has type BYTE but its text is not <0xNN>", i);
            }
            t->byte_values[i] = (uint8_t)value;
        }
        /* Worst case of one push: a valid piece decodes to at most its size,
         * an invalid one to one U+FFFD (3 bytes) per byte. */
        size_t decoded = e->size;
        if (tm_utf8_valid_prefix(e->data, e->size) != e->size &&
            !tm_mul_size(e->size, 3, &decoded)) {
            tm_tokenizer_free(t);
            return tm_error_set(err, TM_ERR_NOMEM, "token %zu is too long", i);
        }
        if (decoded > t->max_decoded) t->max_decoded = decoded;
    }
    t->offsets[n] = at;

    t->serial = atomic_fetch_add(&next_serial, 1);
    t->words_independent = true;
    for (size_t i = 0; i < n && t->words_independent; i++) {
        const char *piece = t->blob + t->offsets[i];
        size_t size = piece_size(t, (int32_t)i);
        if (isnan(t->scores[i])) t->words_independent = false;
        /* A byte match at any offset, even inside another character, counts:
         * erring towards the whole-text algorithm is always safe. */
        for (size_t k = 1; k + 3 <= size; k++)
            if (memcmp(piece + k, SPACE_MARK, 3) == 0 && !(k >= 3 && memcmp(piece + k - 3, SPACE_MARK, 3) == 0))
                t->words_independent = false;
    }

    /* Insert in id order; a later duplicate replaces an earlier one, as
     * llama.cpp's token_to_id map does. */
    for (size_t i = 0; i < n; i++) {
        const char *data = t->blob + t->offsets[i];
        size_t size = piece_size(t, (int32_t)i);
        uint64_t hash = tm_tokenizer_hash_bytes(data, size);
        for (size_t slot = (size_t)hash & t->slot_mask;; slot = (slot + 1) & t->slot_mask) {
            int32_t id = t->slots[slot].id;
            if (id < 0 || (piece_size(t, id) == size && memcmp(t->blob + t->offsets[id], data, size) == 0)) {
                t->slots[slot] = (piece_slot){.id = (int32_t)i, .tag = (uint32_t)(hash >> 32)};
                break;
            }
        }
    }

    /* llama.cpp's byte_to_token: "<0xNN>", else the byte itself as a piece.
     * Where llama.cpp would throw we fall back to the unknown token. */
    for (int b = 0; b < 256; b++) {
        char name[7];
        snprintf(name, sizeof name, "<0x%02X>", b);
        int32_t id = lookup(t, name, 6);
        if (id < 0) {
            char raw = (char)b;
            id = lookup(t, &raw, 1);
        }
        t->byte_tokens[b] = id >= 0 ? id : t->unk;
    }
    *out = t;
    return TM_OK;
}

/* ---- GGUF ------------------------------------------------------------- */

static bool is_integer_type(tm_gguf_type type) {
    switch (type) {
    case TM_GGUF_UINT8: case TM_GGUF_INT8: case TM_GGUF_UINT16: case TM_GGUF_INT16:
    case TM_GGUF_UINT32: case TM_GGUF_INT32: case TM_GGUF_UINT64: case TM_GGUF_INT64:
        return true;
    default:
        return false;
    }
}

static bool is_numeric_type(tm_gguf_type type) {
    return is_integer_type(type) || type == TM_GGUF_FLOAT32 || type == TM_GGUF_FLOAT64;
}

static bool view_equals(tm_string_view view, const char *text) {
    size_t n = strlen(text);
    return view.size == n && memcmp(view.data, text, n) == 0;
}

/* An optional array of numbers with exactly n elements; NULL when absent. */
static tm_status optional_numeric_array(const tm_gguf *gguf, const char *key, uint64_t n, bool integers,
                                        const tm_gguf_value **out, tm_error *err) {
    const tm_gguf_value *v = tm_gguf_find(gguf, key);
    *out = NULL;
    if (!v) return TM_OK;
    if (v->type != TM_GGUF_ARRAY ||
        !(integers ? is_integer_type(v->as.array.element_type) : is_numeric_type(v->as.array.element_type)))
        return tm_error_set(err, TM_ERR_FORMAT, "%s is not an array of %s", key, integers ? "integers" : "numbers");
    if (v->as.array.count != n)
        return tm_error_set(err, TM_ERR_FORMAT, "%s has %llu entries but tokenizer.ggml.tokens has %llu", key,
                            (unsigned long long)v->as.array.count, (unsigned long long)n);
    if (!v->as.array.raw) return tm_error_set(err, TM_ERR_FORMAT, "%s has no data", key);
    *out = v;
    return TM_OK;
}

static tm_status optional_id(const tm_gguf *gguf, const char *key, int64_t fallback, int64_t *out, tm_error *err) {
    *out = fallback;
    if (!tm_gguf_find(gguf, key)) return TM_OK;
    uint64_t value;
    if (!tm_gguf_get_u64(gguf, key, &value))
        return tm_error_set(err, TM_ERR_FORMAT, "%s is not a non-negative integer", key);
    *out = value > (uint64_t)INT32_MAX ? INT64_MAX : (int64_t)value;
    return TM_OK;
}

static tm_status optional_bool(const tm_gguf *gguf, const char *key, bool fallback, bool *out, tm_error *err) {
    *out = fallback;
    if (!tm_gguf_find(gguf, key)) return TM_OK;
    if (!tm_gguf_get_bool(gguf, key, out)) return tm_error_set(err, TM_ERR_FORMAT, "%s is not a boolean", key);
    return TM_OK;
}

/* A double outside float's range would be undefined behaviour to convert. */
static float score_from_double(double d) {
    if (d > FLT_MAX) return INFINITY;
    if (d < -FLT_MAX) return -INFINITY;
    return (float)d;
}

static tm_status from_gguf(tm_tokenizer **out, const tm_gguf *gguf, tm_error *err) {
    tm_string_view model;
    if (!tm_gguf_find(gguf, "tokenizer.ggml.model"))
        return tm_error_set(err, TM_ERR_NOT_FOUND, "no tokenizer.ggml.model");
    if (!tm_gguf_get_string(gguf, "tokenizer.ggml.model", &model))
        return tm_error_set(err, TM_ERR_FORMAT, "tokenizer.ggml.model is not a string");
    if (!view_equals(model, "llama")) {
        int shown = model.size > 64 ? 64 : (int)model.size;
        return tm_error_set(err, TM_ERR_UNSUPPORTED,
                            "tokenizer.ggml.model \"%.*s\" is not supported (only \"llama\", SentencePiece BPE)",
                            shown, model.data);
    }
    const tm_gguf_value *tokens = tm_gguf_find(gguf, "tokenizer.ggml.tokens");
    if (!tokens) return tm_error_set(err, TM_ERR_NOT_FOUND, "no tokenizer.ggml.tokens");
    if (tokens->type != TM_GGUF_ARRAY || tokens->as.array.element_type != TM_GGUF_STRING)
        return tm_error_set(err, TM_ERR_FORMAT, "tokenizer.ggml.tokens is not an array of strings");
    uint64_t n = tokens->as.array.count;
    if (n == 0) return tm_error_set(err, TM_ERR_FORMAT, "tokenizer.ggml.tokens is empty: no vocabulary");
    if (!tokens->as.array.items) return tm_error_set(err, TM_ERR_FORMAT, "tokenizer.ggml.tokens has no items");
    if (n > (uint64_t)INT32_MAX - 1)
        return tm_error_set(err, TM_ERR_FORMAT, "tokenizer.ggml.tokens has %llu entries, too many",
                            (unsigned long long)n);

    const tm_gguf_value *scores, *types;
    tm_status status = optional_numeric_array(gguf, "tokenizer.ggml.scores", n, false, &scores, err);
    if (status == TM_OK) status = optional_numeric_array(gguf, "tokenizer.ggml.token_type", n, true, &types, err);
    int64_t bos = 1, eos = 2, unk = 0;
    if (status == TM_OK) status = optional_id(gguf, "tokenizer.ggml.bos_token_id", 1, &bos, err);
    if (status == TM_OK) status = optional_id(gguf, "tokenizer.ggml.eos_token_id", 2, &eos, err);
    if (status == TM_OK) status = optional_id(gguf, "tokenizer.ggml.unknown_token_id", 0, &unk, err);
    bool add_space_prefix = true, add_bos = true;
    if (status == TM_OK) status = optional_bool(gguf, "tokenizer.ggml.add_space_prefix", true, &add_space_prefix, err);
    if (status == TM_OK) status = optional_bool(gguf, "tokenizer.ggml.add_bos_token", true, &add_bos, err);
    if (status != TM_OK) return status;

    vocab_entry *entries = tm_alloc_array((size_t)n, sizeof *entries, err);
    if (!entries) return TM_ERR_NOMEM;
    for (uint64_t i = 0; i < n; i++) {
        const tm_gguf_value *item = &tokens->as.array.items[i];
        if (item->type != TM_GGUF_STRING || (item->as.string.size && !item->as.string.data) ||
            item->as.string.size > SIZE_MAX / 4) {
            free(entries);
            return tm_error_set(err, TM_ERR_FORMAT, "tokenizer.ggml.tokens[%llu] is not a string", (unsigned long long)i);
        }
        entries[i].data = item->as.string.data;
        entries[i].size = (size_t)item->as.string.size;
        entries[i].score = scores ? score_from_double(tm_gguf_array_f64(scores, i)) : 0.0f;
        entries[i].type = TM_TOKEN_NORMAL;
        if (types) {
            int64_t type = tm_gguf_array_i64(types, i);
            if (type < TM_TOKEN_NORMAL || type > TM_TOKEN_BYTE) {
                free(entries);
                return tm_error_set(err, TM_ERR_FORMAT, "tokenizer.ggml.token_type[%llu] is %lld, not a known type",
                                    (unsigned long long)i, (long long)type);
            }
            entries[i].type = (tm_token_type)type;
        }
    }
    status = tokenizer_build(out, entries, (size_t)n, bos, eos, unk, add_space_prefix, add_bos, err);
    free(entries);
    return status;
}

/* A byte-level BPE vocabulary (Llama 3, Qwen2, GPT-2): tokenizer_bpe.c does
 * the work; this wrapper only answers the common accessors. */
static tm_status bpe_from_gguf(tm_tokenizer **out, const tm_gguf *gguf, tm_error *err) {
    tm_tokenizer *t = tm_alloc_array(1, sizeof *t, err);
    if (!t) return TM_ERR_NOMEM;
    tm_status status = tm_bpe_from_gguf(&t->bpe, gguf, err);
    if (status != TM_OK) {
        free(t);
        return status;
    }
    t->n_vocab = tm_bpe_vocab_size(t->bpe);
    t->bos = tm_bpe_bos(t->bpe);
    t->eos = tm_bpe_eos(t->bpe);
    t->unk = -1;
    t->add_bos = tm_bpe_add_bos(t->bpe);
    /* A token's bytes need not be whole characters: each stray byte may become U+FFFD. */
    t->max_decoded = 3 * tm_bpe_max_token_bytes(t->bpe);
    snprintf(t->kind, sizeof t->kind, "bpe-%s", tm_bpe_pre_family(t->bpe));
    *out = t;
    return TM_OK;
}

tm_status tm_tokenizer_from_gguf(tm_tokenizer **out, const tm_gguf *gguf, tm_error *err) {
    if (!out || !gguf) return tm_error_set(err, TM_ERR_ARGUMENT, "tm_tokenizer_from_gguf: NULL argument");
    *out = NULL;
    tm_string_view model;
    tm_status status;
    if (tm_gguf_get_string(gguf, "tokenizer.ggml.model", &model) && tm_string_view_equals(model, "gpt2")) {
        status = bpe_from_gguf(out, gguf, err); /* its errors already name the file */
        if (status != TM_OK) return status;
    } else {
        status = from_gguf(out, gguf, err);
    }
    if (status == TM_OK) status = prepare_special(*out, gguf, err);
    if (status != TM_OK) {
        tm_tokenizer_free(*out);
        *out = NULL;
        const char *path = tm_gguf_file(gguf)->path;
        if (path) tm_error_prefix(err, "%s", path);
    }
    return status;
}

/* ---- llama2.c tokenizer.bin ------------------------------------------------ */

static uint32_t read_u32_le(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Walk the records; with entries NULL only count and check them. */
static tm_status parse_llama2c(const uint8_t *data, size_t size, vocab_entry *entries, size_t *count, tm_error *err) {
    if (size < 4) return tm_error_set(err, TM_ERR_FORMAT, "truncated: %zu bytes, no max_token_length", size);
    int32_t max_length = (int32_t)read_u32_le(data);
    if (max_length < 0) return tm_error_set(err, TM_ERR_FORMAT, "negative max_token_length %d", (int)max_length);
    size_t at = 4, n = 0;
    while (at < size) {
        if (size - at < 8)
            return tm_error_set(err, TM_ERR_FORMAT, "truncated token record %zu at byte offset %zu", n, at);
        uint32_t score_bits = read_u32_le(data + at);
        int32_t length = (int32_t)read_u32_le(data + at + 4);
        if (length < 0)
            return tm_error_set(err, TM_ERR_FORMAT, "token %zu has negative length %d at byte offset %zu", n,
                                (int)length, at + 4);
        at += 8;
        if ((size_t)length > size - at)
            return tm_error_set(err, TM_ERR_FORMAT, "token %zu of length %d runs past the end of the file at byte offset %zu",
                                n, (int)length, at);
        if (n >= (size_t)INT32_MAX - 1) return tm_error_set(err, TM_ERR_FORMAT, "too many tokens");
        if (entries) {
            float score;
            memcpy(&score, &score_bits, sizeof score);
            entries[n].data = (const char *)data + at;
            entries[n].size = (size_t)length;
            entries[n].score = score;
        }
        at += (size_t)length;
        n++;
    }
    *count = n;
    return TM_OK;
}

static tm_status from_llama2c(tm_tokenizer **out, const tm_mapped_file *file, tm_error *err) {
    size_t n = 0;
    tm_status status = parse_llama2c(file->data, file->size, NULL, &n, err);
    if (status != TM_OK) return status;
    if (n == 0) return tm_error_set(err, TM_ERR_FORMAT, "empty vocabulary");
    if (n < 3) return tm_error_set(err, TM_ERR_FORMAT, "only %zu tokens; <unk>, <s> and </s> are required", n);
    vocab_entry *entries = tm_alloc_array(n, sizeof *entries, err);
    if (!entries) return TM_ERR_NOMEM;
    status = parse_llama2c(file->data, file->size, entries, &n, err);

    /* llama2.c's exporter wrote U+2581 as a plain space and BOS/EOS as
     * "\n<s>\n", "\n</s>\n"; undo both so a vocabulary behaves as in a GGUF.
     * The rewritten pieces live in one scratch buffer (at most 3x larger). */
    char *text = NULL;
    size_t total = 0;
    for (size_t i = 0; status == TM_OK && i < n; i++)
        if (!tm_add_size(total, entries[i].size, &total)) status = tm_error_set(err, TM_ERR_NOMEM, "size overflow");
    if (status == TM_OK && !tm_mul_size(total, 3, &total)) status = tm_error_set(err, TM_ERR_NOMEM, "size overflow");
    if (status == TM_OK && !(text = tm_alloc_array(total, 1, err))) status = TM_ERR_NOMEM;
    size_t at = 0;
    for (size_t i = 0; status == TM_OK && i < n; i++) {
        vocab_entry *e = &entries[i];
        if (e->size == 5 && memcmp(e->data, "\n<s>\n", 5) == 0) { e->data += 1; e->size = 3; }
        if (e->size == 6 && memcmp(e->data, "\n</s>\n", 6) == 0) { e->data += 1; e->size = 4; }
        char *piece = text + at;
        size_t len = 0;
        for (size_t k = 0; k < e->size; k++) {
            if (e->data[k] == ' ') {
                memcpy(piece + len, SPACE_MARK, 3);
                len += 3;
            } else {
                piece[len++] = e->data[k];
            }
        }
        e->data = piece;
        e->size = len;
        at += len;
        if (len == 5 && memcmp(piece, "<unk>", 5) == 0) e->type = TM_TOKEN_UNKNOWN;
        else if ((len == 3 && memcmp(piece, "<s>", 3) == 0) || (len == 4 && memcmp(piece, "</s>", 4) == 0))
            e->type = TM_TOKEN_CONTROL;
        else if (parse_byte_piece(piece, len) >= 0) e->type = TM_TOKEN_BYTE;
        else e->type = TM_TOKEN_NORMAL;
    }
    if (status == TM_OK) status = tokenizer_build(out, entries, n, 1, 2, 0, true, true, err);
    if (status == TM_OK && (status = prepare_special(*out, NULL, err)) != TM_OK) {
        tm_tokenizer_free(*out);
        *out = NULL;
    }
    free(text);
    free(entries);
    return status;
}

tm_status tm_tokenizer_from_llama2c(tm_tokenizer **out, const char *path, tm_error *err) {
    if (!out || !path) return tm_error_set(err, TM_ERR_ARGUMENT, "tm_tokenizer_from_llama2c: NULL argument");
    *out = NULL;
    tm_mapped_file file = {0};
    tm_status status = tm_mapped_file_open(&file, path, err);
    if (status != TM_OK) return status;
    status = from_llama2c(out, &file, err);
    tm_mapped_file_close(&file);
    if (status != TM_OK) tm_error_prefix(err, "%s", path);
    return status;
}

tm_status tm_tokenizer_load(tm_tokenizer **out, const char *path, tm_error *err) {
    if (!out || !path) return tm_error_set(err, TM_ERR_ARGUMENT, "tm_tokenizer_load: NULL argument");
    *out = NULL;
    /* Sniff the magic through tm_input_open: a FIFO is refused at once. */
    int fd;
    tm_status opened = tm_input_open(path, 0, &fd, NULL, err);
    if (opened != TM_OK) return opened;
    char magic[4] = {0};
    ssize_t got;
    do got = read(fd, magic, sizeof magic);
    while (got < 0 && errno == EINTR);
    close(fd);
    if (got == 4 && memcmp(magic, "GGUF", 4) == 0) {
        tm_gguf *gguf = NULL;
        tm_status status = tm_gguf_open(&gguf, path, err);
        if (status != TM_OK) return status;
        status = tm_tokenizer_from_gguf(out, gguf, err);
        tm_gguf_close(gguf);
        return status;
    }
    return tm_tokenizer_from_llama2c(out, path, err);
}

/* ---- accessors ---------------------------------------------------------- */

int32_t tm_tokenizer_vocab_size(const tm_tokenizer *t) { return t ? t->n_vocab : 0; }
int32_t tm_tokenizer_bos(const tm_tokenizer *t) { return t ? t->bos : -1; }
int32_t tm_tokenizer_eos(const tm_tokenizer *t) { return t ? t->eos : -1; }
const char *tm_tokenizer_kind(const tm_tokenizer *t) { return t && t->bpe ? t->kind : "llama-spm"; }

const char *tm_tokenizer_piece(const tm_tokenizer *t, int32_t id, size_t *size) {
    if (!t || id < 0 || id >= t->n_vocab) {
        if (size) *size = 0;
        return NULL;
    }
    if (t->bpe) return tm_bpe_piece(t->bpe, id, size);
    if (size) *size = piece_size(t, id);
    return t->blob + t->offsets[id];
}

/* Ids outside the vocabulary read as UNUSED (they decode to nothing). */
tm_token_type tm_tokenizer_token_type(const tm_tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= t->n_vocab) return TM_TOKEN_UNUSED;
    if (t->bpe) return tm_bpe_token_type(t->bpe, id);
    return (tm_token_type)t->types[id];
}

size_t tm_tokenizer_max_piece_size(const tm_tokenizer *t) { return t ? t->max_decoded : 0; }

/* ---- encoding ----------------------------------------------------------- */

/* Two encoders give the same ids. The reference merges the whole escaped
 * text as one symbol sequence, exactly as llama.cpp does. The fast one, used
 * when t->words_independent holds, cuts the escaped text before every U+2581
 * that follows another character, merges each piece ("segment", a word with
 * the spaces in front of it) alone and remembers the ids of the segments it
 * has seen (see word_cache). Why that is the same: a merge joins two
 * adjacent symbols into a vocabulary piece, and no piece contains U+2581
 * after another character, so no merge ever crosses a cut; the merges inside
 * one segment are then picked by the same rule (highest score, leftmost)
 * whatever happens in the others, and a segment's ids depend on its text
 * alone. The rule is only a total order when no score is NaN, which is the
 * other half of the flag. */

enum { NONE = -1 };

typedef struct {
    size_t start, size; /* bytes of the escaped text; size 0 once merged away */
    ptrdiff_t prev, next;
} symbol;

typedef struct {
    float score;
    ptrdiff_t left, right;
    size_t size;
} bigram;

/* Heap order of llama.cpp's llm_bigram_spm comparator: higher score first,
 * then the leftmost pair. */
static bool bigram_before(const bigram *a, const bigram *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

typedef struct {
    bigram *items;
    size_t size, capacity;
    bool failed; /* an allocation failed */
} bigram_heap;

static bool heap_push(bigram_heap *h, bigram b) {
    if (h->size == h->capacity) {
        size_t capacity = h->capacity ? h->capacity * 2 : 64;
        bigram *grown = capacity > SIZE_MAX / sizeof *grown ? NULL : realloc(h->items, capacity * sizeof *grown);
        if (!grown) return false;
        h->items = grown;
        h->capacity = capacity;
    }
    size_t i = h->size++;
    h->items[i] = b;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!bigram_before(&h->items[i], &h->items[parent])) break;
        bigram tmp = h->items[i];
        h->items[i] = h->items[parent];
        h->items[parent] = tmp;
        i = parent;
    }
    return true;
}

static bigram heap_pop(bigram_heap *h) {
    bigram top = h->items[0];
    h->items[0] = h->items[--h->size];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, best = i;
        if (l < h->size && bigram_before(&h->items[l], &h->items[best])) best = l;
        if (r < h->size && bigram_before(&h->items[r], &h->items[best])) best = r;
        if (best == i) break;
        bigram tmp = h->items[i];
        h->items[i] = h->items[best];
        h->items[best] = tmp;
        i = best;
    }
    return top;
}

static void try_add_bigram(const tm_tokenizer *t, const char *text, const symbol *symbols, bigram_heap *heap,
                           ptrdiff_t left, ptrdiff_t right) {
    if (left == NONE || right == NONE) return;
    size_t size = symbols[left].size + symbols[right].size;
    int32_t id = lookup(t, text + symbols[left].start, size);
    if (id < 0) return;
    if (!heap_push(heap, (bigram){.score = t->scores[id], .left = left, .right = right, .size = size}))
        heap->failed = true;
}

/* One symbol per UTF-8 character of text[0 .. size) (valid, so lead bytes
 * tell); returns the count. symbols has room for size entries. */
static ptrdiff_t split_characters(const char *text, size_t size, symbol *symbols) {
    ptrdiff_t n = 0;
    for (size_t offset = 0; offset < size;) {
        size_t len = (size_t)tm_utf8_sequence_length((uint8_t)text[offset]);
        if (len > size - offset) len = size - offset;
        symbols[n] = (symbol){.start = offset, .size = len, .prev = n - 1, .next = NONE};
        offset += len;
        if (offset < size) symbols[n].next = n + 1;
        n++;
    }
    return n;
}

/* llama.cpp's merge loop over a priority queue; the heap is emptied first
 * and kept for the caller to reuse. Returns false when out of memory. */
static bool merge_with_heap(const tm_tokenizer *t, const char *text, symbol *symbols, ptrdiff_t n_symbols,
                            bigram_heap *heap) {
    heap->size = 0;
    heap->failed = false;
    for (ptrdiff_t i = 1; i < n_symbols; i++) try_add_bigram(t, text, symbols, heap, i - 1, i);
    while (heap->size > 0 && !heap->failed) {
        bigram b = heap_pop(heap);
        symbol *left = &symbols[b.left], *right = &symbols[b.right];
        /* Skip pairs made stale by an earlier merge. */
        if (left->size == 0 || right->size == 0 || left->size + right->size != b.size) continue;
        left->size += right->size;
        right->size = 0;
        left->next = right->next;
        if (right->next != NONE) symbols[right->next].prev = b.left;
        try_add_bigram(t, text, symbols, heap, left->prev, b.left);
        try_add_bigram(t, text, symbols, heap, b.left, left->next);
    }
    return !heap->failed;
}

/* Every merged symbol is a vocabulary entry by construction, so llama.cpp's
 * resegment reduces to: the entry, or one token per byte. out has room for
 * one id per byte. */
static size_t emit_symbols(const tm_tokenizer *t, const char *text, const symbol *symbols, ptrdiff_t n_symbols,
                           int32_t *out) {
    size_t n_out = 0;
    for (ptrdiff_t i = n_symbols > 0 ? 0 : NONE; i != NONE; i = symbols[i].next) {
        const symbol *s = &symbols[i];
        int32_t id = lookup(t, text + s->start, s->size);
        if (id >= 0) {
            out[n_out++] = id;
        } else {
            for (size_t k = 0; k < s->size; k++) out[n_out++] = t->byte_tokens[(uint8_t)text[s->start + k]];
        }
    }
    return n_out;
}

/* Checks the text and returns it escaped: U+2581 for every space, and in
 * front when prefix is set (the callers follow llama.cpp: whole texts get it
 * when the vocabulary asks for it and they are not empty; see also
 * tm_tokenizer_encode_special). */
static tm_status escape_text(const char *text, size_t size, bool prefix, char **escaped, size_t *escaped_size,
                             tm_error *err) {
    *escaped = NULL;
    *escaped_size = 0;
    size_t valid = tm_utf8_valid_prefix(text, size);
    if (valid != size) return tm_error_set(err, TM_ERR_FORMAT, "text is not valid UTF-8 at byte offset %zu", valid);
    size_t spaces = 0;
    for (size_t i = 0; i < size; i++) spaces += text[i] == ' ';
    size_t total = size, extra;
    if (!tm_add_size(spaces, prefix, &extra) || !tm_mul_size(extra, 2, &extra) || !tm_add_size(total, extra, &total) ||
        !tm_add_size(total, prefix, &total) || total > (size_t)PTRDIFF_MAX / 4)
        return tm_error_set(err, TM_ERR_NOMEM, "text of %zu bytes is too large to encode", size);
    char *out = tm_alloc_array(total, 1, err);
    if (!out) return TM_ERR_NOMEM;
    size_t at = 0;
    if (prefix) {
        memcpy(out, SPACE_MARK, 3);
        at = 3;
    }
    for (size_t i = 0; i < size; i++) {
        if (text[i] == ' ') {
            memcpy(out + at, SPACE_MARK, 3);
            at += 3;
        } else {
            out[at++] = text[i];
        }
    }
    *escaped = out;
    *escaped_size = total;
    return TM_OK;
}

/* The whole-text algorithm, kept as the yardstick of the fast one (see
 * tokenizer_internal.h) and for vocabularies where words are not
 * independent. Appends at out[*n_out]; out has room for escaped_size more. */
static tm_status encode_whole(const tm_tokenizer *t, const char *escaped, size_t escaped_size, int32_t *out,
                              size_t *n_out, tm_error *err) {
    symbol *symbols = tm_alloc_array(escaped_size, sizeof *symbols, err);
    if (!symbols) return TM_ERR_NOMEM;
    bigram_heap heap = {0};
    ptrdiff_t n_symbols = split_characters(escaped, escaped_size, symbols);
    bool merged = merge_with_heap(t, escaped, symbols, n_symbols, &heap);
    if (merged) *n_out += emit_symbols(t, escaped, symbols, n_symbols, out + *n_out);
    free(symbols);
    free(heap.items);
    return merged ? TM_OK : tm_error_set(err, TM_ERR_NOMEM, "out of memory encoding %zu bytes", escaped_size);
}

/* Segments up to this many characters merge by rescanning every pair: a
 * word has a handful of characters, and the scan beats keeping a heap. */
enum { SCAN_SYMBOLS = 24 };

/* The same merges as merge_with_heap, found by scanning: the valid pair
 * with the highest score, the leftmost among equals, is exactly the one the
 * heap would pop next (stale entries aside, which it skips). pair[i] is the
 * id of symbol i joined to its next one, or -1. Symbol 0 is never merged
 * away, so the live list starts there. */
static void merge_by_scanning(const tm_tokenizer *t, const char *text, symbol *symbols, int32_t *pair,
                              ptrdiff_t n_symbols) {
    for (ptrdiff_t i = 0; i + 1 < n_symbols; i++)
        pair[i] = lookup(t, text + symbols[i].start, symbols[i].size + symbols[i + 1].size);
    pair[n_symbols - 1] = -1;
    for (;;) {
        ptrdiff_t best = NONE;
        float best_score = 0.0f;
        for (ptrdiff_t i = 0; i != NONE; i = symbols[i].next)
            if (pair[i] >= 0 && (best == NONE || t->scores[pair[i]] > best_score)) {
                best = i;
                best_score = t->scores[pair[i]];
            }
        if (best == NONE) return;
        symbol *left = &symbols[best], *right = &symbols[left->next];
        left->size += right->size;
        right->size = 0;
        left->next = right->next;
        if (right->next != NONE) symbols[right->next].prev = best;
        pair[best] = left->next == NONE ? -1 : lookup(t, text + left->start, left->size + symbols[left->next].size);
        if (left->prev != NONE)
            pair[left->prev] = lookup(t, text + symbols[left->prev].start, symbols[left->prev].size + left->size);
    }
}

/* Words already encoded, kept per thread across calls: the detector
 * encodes many short texts, and the words of one text mostly recur in the
 * next. The tokenizer itself stays read-only (threads share it), so the
 * memory lives with the thread, and an entry counts only for the tokenizer
 * whose serial number the cache carries: a tokenizer freed and another
 * built at the same address never sees the first one's words. The cache
 * holds a bounded number of short words and starts over when full: 64K
 * words in 2 MiB of slots and 4 MiB of text and ids per thread, since a
 * word merged again after a restart costs ~13 times a recall, and 32K
 * words (1 MiB of text) recalled only 84% of the words of the benchmark
 * corpus (TruthfulQA and HaluEval answers, ~60K distinct words). */
enum {
    CACHE_SLOTS = 1 << 17,
    CACHE_WORDS = CACHE_SLOTS / 2,  /* keeps probe chains short */
    CACHE_ARENA = 1 << 22,          /* bytes of word text and ids */
    CACHE_WORD_BYTES = 256,         /* longer segments are rare: merged each time */
};

typedef struct {
    uint32_t tag;   /* high half of the word's hash */
    uint32_t size;  /* bytes of text; 0: empty slot */
    uint32_t n_ids;
    uint32_t at;    /* arena offset: n_ids ids, then the text */
} cached_word;

typedef struct {
    uint64_t serial; /* the tokenizer the words belong to */
    cached_word *slots;
    size_t n_words, arena_used;
    unsigned char *arena;
    /* Scratch of the merge, reused from call to call. */
    symbol *symbols;
    int32_t *pair;
    size_t capacity; /* of symbols and pair */
    bigram_heap heap;
} word_cache;

static _Thread_local word_cache *thread_cache;
static pthread_once_t cache_key_once = PTHREAD_ONCE_INIT;
static pthread_key_t cache_key;
static bool cache_key_made;

static void cache_free(void *p) {
    word_cache *c = p;
    if (!c) return;
    free(c->slots);
    free(c->arena);
    free(c->symbols);
    free(c->pair);
    free(c->heap.items);
    free(c);
}

static void make_cache_key(void) { cache_key_made = pthread_key_create(&cache_key, cache_free) == 0; }

/* This thread's cache, emptied if it belonged to another tokenizer; NULL
 * when memory is short (the caller then merges every word). */
static word_cache *thread_word_cache(const tm_tokenizer *t) {
    word_cache *c = thread_cache;
    if (!c) {
        /* Without a key the cache could not be freed at thread exit. */
        if (pthread_once(&cache_key_once, make_cache_key) != 0 || !cache_key_made) return NULL;
        c = calloc(1, sizeof *c);
        if (c) {
            c->slots = calloc(CACHE_SLOTS, sizeof *c->slots);
            c->arena = malloc(CACHE_ARENA);
        }
        if (!c || !c->slots || !c->arena || pthread_setspecific(cache_key, c) != 0) {
            cache_free(c);
            return NULL;
        }
        thread_cache = c;
    }
    if (c->serial != t->serial) {
        memset(c->slots, 0, CACHE_SLOTS * sizeof *c->slots);
        c->n_words = 0;
        c->arena_used = 0;
        c->serial = t->serial;
    }
    return c;
}

static bool reserve_symbols(word_cache *c, size_t n) {
    if (n <= c->capacity) return true;
    size_t capacity = c->capacity ? c->capacity : 64;
    while (capacity < n) capacity *= 2; /* n <= PTRDIFF_MAX / 4, see escape_text */
    if (capacity > SIZE_MAX / sizeof(symbol)) return false;
    symbol *symbols = realloc(c->symbols, capacity * sizeof *symbols);
    if (!symbols) return false;
    c->symbols = symbols;
    int32_t *pair = realloc(c->pair, capacity * sizeof *pair);
    if (!pair) return false;
    c->pair = pair;
    c->capacity = capacity;
    return true;
}

/* Merge one segment alone and append its ids; false when out of memory. */
static bool encode_segment(const tm_tokenizer *t, const char *text, size_t size, word_cache *c, int32_t *out,
                           size_t *n_out) {
    if (!reserve_symbols(c, size)) return false;
    ptrdiff_t n_symbols = split_characters(text, size, c->symbols);
    if (n_symbols <= SCAN_SYMBOLS) merge_by_scanning(t, text, c->symbols, c->pair, n_symbols);
    else if (!merge_with_heap(t, text, c->symbols, n_symbols, &c->heap)) return false;
    *n_out += emit_symbols(t, text, c->symbols, n_symbols, out + *n_out);
    return true;
}

/* The ids of one segment, remembered or freshly merged (and remembered). */
static bool encode_or_recall(const tm_tokenizer *t, const char *text, size_t size, word_cache *c, int32_t *out,
                             size_t *n_out) {
    if (size > CACHE_WORD_BYTES || !c->slots) return encode_segment(t, text, size, c, out, n_out);
    uint64_t hash = tm_tokenizer_hash_bytes(text, size);
    uint32_t tag = (uint32_t)(hash >> 32);
    size_t slot = (size_t)hash & (CACHE_SLOTS - 1);
    for (cached_word *w; (w = &c->slots[slot])->size; slot = (slot + 1) & (CACHE_SLOTS - 1)) {
        const unsigned char *entry = c->arena + w->at;
        if (w->tag == tag && w->size == size && memcmp(entry + w->n_ids * sizeof *out, text, size) == 0) {
            memcpy(out + *n_out, entry, w->n_ids * sizeof *out);
            *n_out += w->n_ids;
            return true;
        }
    }
    size_t first = *n_out;
    if (!encode_segment(t, text, size, c, out, n_out)) return false;
    size_t n_ids = *n_out - first; /* at most one per byte */
    /* Ids first, at 4-byte alignment, then the text. */
    size_t at = (c->arena_used + 3) & ~(size_t)3, need = n_ids * sizeof *out + size;
    if (c->n_words == CACHE_WORDS || CACHE_ARENA - at < need) { /* full: start over */
        memset(c->slots, 0, CACHE_SLOTS * sizeof *c->slots);
        c->n_words = 0;
        at = 0;
        slot = (size_t)hash & (CACHE_SLOTS - 1);
    }
    memcpy(c->arena + at, out + first, n_ids * sizeof *out);
    memcpy(c->arena + at + n_ids * sizeof *out, text, size);
    c->arena_used = at + need;
    c->slots[slot] = (cached_word){.tag = tag, .size = (uint32_t)size, .n_ids = (uint32_t)n_ids, .at = (uint32_t)at};
    c->n_words++;
    return true;
}

static bool is_space_mark(const char *p, size_t available) {
    return available >= 3 && memcmp(p, SPACE_MARK, 3) == 0;
}

/* The fast encoder; same contract as encode_whole. */
static tm_status encode_by_segments(const tm_tokenizer *t, const char *escaped, size_t escaped_size, int32_t *out,
                                    size_t *n_out, tm_error *err) {
    word_cache *c = thread_word_cache(t);
    word_cache uncached = {0}; /* scratch only, when there is no cache */
    if (!c) c = &uncached;

    /* Cut before every U+2581 whose previous character is not one. U+2581
     * is E2 96 81 and E2 is never a continuation byte, so a byte match is a
     * character; stepping byte by byte through other characters leaves
     * after_mark false, as it should be. */
    bool ok = true, after_mark = false;
    size_t start = 0;
    for (size_t at = 0; ok && at < escaped_size;) {
        bool mark = escaped[at] == SPACE_MARK[0] && is_space_mark(escaped + at, escaped_size - at);
        if (mark && !after_mark && at > 0) {
            ok = encode_or_recall(t, escaped + start, at - start, c, out, n_out);
            start = at;
        }
        after_mark = mark;
        at += mark ? 3 : 1;
    }
    if (ok && start < escaped_size) ok = encode_or_recall(t, escaped + start, escaped_size - start, c, out, n_out);
    if (c == &uncached) {
        free(uncached.symbols);
        free(uncached.pair);
        free(uncached.heap.items);
    }
    return ok ? TM_OK : tm_error_set(err, TM_ERR_NOMEM, "out of memory encoding %zu bytes", escaped_size);
}

/* The common frame of both encoders: checks, escaping, BOS, the output. */
static tm_status encode_with(tm_status (*encoder)(const tm_tokenizer *, const char *, size_t, int32_t *, size_t *,
                                                  tm_error *),
                             const tm_tokenizer *t, const char *text, size_t size, bool add_bos, int32_t **ids,
                             size_t *n_ids, tm_error *err) {
    if (!t || !ids || !n_ids || (!text && size))
        return tm_error_set(err, TM_ERR_ARGUMENT, "tm_tokenizer_encode: NULL argument");
    *ids = NULL;
    *n_ids = 0;
    char *escaped = NULL;
    size_t escaped_size = 0;
    tm_status status = escape_text(text, size, t->add_space_prefix && size > 0, &escaped, &escaped_size, err);
    if (status != TM_OK) return status;
    /* At most one token per byte, plus BOS. */
    int32_t *out = tm_alloc_array(escaped_size + 1, sizeof *out, err);
    if (!out) {
        free(escaped);
        return TM_ERR_NOMEM;
    }
    size_t n_out = 0;
    if (add_bos) out[n_out++] = t->bos;
    status = encoder(t, escaped, escaped_size, out, &n_out, err);
    free(escaped);
    if (status != TM_OK) {
        free(out);
        return status;
    }
    *ids = out;
    *n_ids = n_out;
    return TM_OK;
}

/* BPE: the pre-tokenizer and merges, then BOS in front when asked for. */
static tm_status encode_bpe(const tm_tokenizer *t, const char *text, size_t size, bool add_bos, int32_t **ids,
                            size_t *n_ids, tm_error *err) {
    int32_t *raw = NULL;
    size_t n = 0;
    tm_status status = tm_bpe_encode(t->bpe, text, size, &raw, &n, err);
    if (status != TM_OK) return status;
    bool bos = add_bos && t->bos >= 0;
    *ids = tm_alloc_array(n + bos + 1, sizeof **ids, err);
    if (!*ids) {
        free(raw);
        return TM_ERR_NOMEM;
    }
    if (bos) (*ids)[0] = t->bos;
    if (n) memcpy(*ids + bos, raw, n * sizeof *raw);
    *n_ids = n + bos;
    free(raw);
    return TM_OK;
}

tm_status tm_tokenizer_encode(const tm_tokenizer *t, const char *text, size_t size, bool add_bos, int32_t **ids,
                              size_t *n_ids, tm_error *err) {
    if (t && t->bpe && text && ids && n_ids) {
        *ids = NULL;
        *n_ids = 0;
        return encode_bpe(t, text, size, add_bos, ids, n_ids, err);
    }
    return encode_with(t && t->words_independent ? encode_by_segments : encode_whole, t, text, size, add_bos, ids,
                       n_ids, err);
}

tm_status tm_tokenizer_encode_reference(const tm_tokenizer *t, const char *text, size_t size, bool add_bos,
                                        int32_t **ids, size_t *n_ids, tm_error *err) {
    return encode_with(encode_whole, t, text, size, add_bos, ids, n_ids, err);
}

bool tm_tokenizer_words_independent(const tm_tokenizer *t) { return t && t->words_independent; }

/* ---- special tokens --------------------------------------------------------- */

/* Chat prompts spell control tokens as text ("<|im_start|>user\n..."), and
 * models end a turn with tokens other than EOS (<|eot_id|>, <|im_end|>).
 * Both follow llama.cpp's llama-vocab.cpp: the texts below are its lists of
 * tokens that end a generation (whatever type the file gives them, which it
 * then forces to CONTROL) and of fill-in-the-middle tokens that do too; the
 * GGUF's eos, eot, eom and fim ids join them, and two of its workarounds for
 * vocabularies where <|end|> or </s> do not end a turn are kept. Special-token
 * parsing cuts every CONTROL, USER_DEFINED and UNKNOWN token (and the
 * promoted ones) out of the text, longest text first, as its
 * tokenizer_st_partition does, and tokenizes the pieces between them
 * normally. */

static const char *const END_OF_GENERATION_TEXTS[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>", "<end_of_turn>",
    "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>",
    "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    ("<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>"), /* DeepSeek's, with U+FF5C and U+2581 */
    "[e~[",
};
/* Read only when the GGUF names no id for them (tokenizer.ggml.fim_*_token_id). */
static const char *const FIM_PAD_TEXTS[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"};
static const char *const FIM_REPO_TEXTS[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"};
static const char *const FIM_SEPARATOR_TEXTS[] = {"<|file_sep|>"};

static bool piece_is(const tm_tokenizer *t, int32_t id, const char *text) {
    size_t size;
    const char *piece = tm_tokenizer_piece(t, id, &size);
    return piece && size == strlen(text) && memcmp(piece, text, size) == 0;
}

static bool piece_in(const tm_tokenizer *t, int32_t id, const char *const *texts, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (piece_is(t, id, texts[i])) return true;
    return false;
}

/* The lowest id whose text is one of texts, or -1. */
static int32_t find_piece(const tm_tokenizer *t, const char *const *texts, size_t n) {
    for (int32_t id = 0; id < t->n_vocab; id++)
        if (piece_in(t, id, texts, n)) return id;
    return -1;
}

/* An id from the GGUF, or -1 when absent, not an integer or outside the
 * vocabulary (llama.cpp ignores those too). */
static int32_t gguf_token_id(const tm_gguf *gguf, const char *key, int32_t n_vocab) {
    uint64_t value;
    if (!gguf || !tm_gguf_get_u64(gguf, key, &value) || value >= (uint64_t)n_vocab) return -1;
    return (int32_t)value;
}

/* A special token's id and text size, for sorting longest first. */
typedef struct {
    size_t size;
    int32_t id;
} sized_id;

static int longer_first(const void *a, const void *b) {
    const sized_id *x = a, *y = b;
    if (x->size != y->size) return x->size > y->size ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id); /* llama.cpp's sort leaves ties unordered; ids make it repeatable */
}

static tm_status prepare_special(tm_tokenizer *t, const tm_gguf *gguf, tm_error *err) {
    size_t n = (size_t)t->n_vocab;
    t->end_of_generation = tm_alloc_array(n, 1, err);
    if (!t->end_of_generation) return TM_ERR_NOMEM;
    uint8_t *eog = t->end_of_generation;

    const int32_t fim[3] = {
        gguf_token_id(gguf, "tokenizer.ggml.fim_pad_token_id", t->n_vocab) >= 0
            ? gguf_token_id(gguf, "tokenizer.ggml.fim_pad_token_id", t->n_vocab)
            : find_piece(t, FIM_PAD_TEXTS, sizeof FIM_PAD_TEXTS / sizeof *FIM_PAD_TEXTS),
        gguf_token_id(gguf, "tokenizer.ggml.fim_rep_token_id", t->n_vocab) >= 0
            ? gguf_token_id(gguf, "tokenizer.ggml.fim_rep_token_id", t->n_vocab)
            : find_piece(t, FIM_REPO_TEXTS, sizeof FIM_REPO_TEXTS / sizeof *FIM_REPO_TEXTS),
        gguf_token_id(gguf, "tokenizer.ggml.fim_sep_token_id", t->n_vocab) >= 0
            ? gguf_token_id(gguf, "tokenizer.ggml.fim_sep_token_id", t->n_vocab)
            : find_piece(t, FIM_SEPARATOR_TEXTS, sizeof FIM_SEPARATOR_TEXTS / sizeof *FIM_SEPARATOR_TEXTS),
    };
    const int32_t named[4] = {t->eos, gguf_token_id(gguf, "tokenizer.ggml.eot_token_id", t->n_vocab),
                              gguf_token_id(gguf, "tokenizer.ggml.eom_token_id", t->n_vocab), -1};
    for (int k = 0; k < 3; k++)
        if (fim[k] >= 0) eog[fim[k]] = 1;
    for (int32_t id = 0; id < t->n_vocab; id++)
        if (piece_in(t, id, END_OF_GENERATION_TEXTS, sizeof END_OF_GENERATION_TEXTS / sizeof *END_OF_GENERATION_TEXTS))
            eog[id] = 1;
    for (int k = 0; k < 4; k++)
        if (named[k] >= 0 && named[k] < t->n_vocab) eog[named[k]] = 1;

    /* llama.cpp's workarounds: with <|return|>/<|call|> (gpt-oss) or
     * <|calls|>/<|flush|> (Solar Open), <|end|> separates messages inside a
     * turn; with <|tool_response> (Gemma 4), </s> is an ordinary token. */
    bool has_return = false, has_call = false, has_flush = false, has_tool_response = false;
    int32_t end = -1, closing_s = -1;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (!eog[id]) continue;
        if (piece_is(t, id, "<|return|>")) has_return = true;
        else if (piece_is(t, id, "<|call|>") || piece_is(t, id, "<|calls|>")) has_call = true;
        else if (piece_is(t, id, "<|flush|>")) has_flush = true;
        else if (piece_is(t, id, "<|tool_response>")) has_tool_response = true;
        else if (piece_is(t, id, "<|end|>")) end = id;
        else if (piece_is(t, id, "</s>")) closing_s = id;
    }
    if (end >= 0 && ((has_return && has_call) || (has_call && has_flush))) eog[end] = 0;
    if (closing_s >= 0 && has_tool_response) eog[closing_s] = 0;

    /* What special-token parsing matches: texts that are valid UTF-8 (a
     * broken one could match inside a character of valid text). */
    size_t n_special = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        tm_token_type type = tm_tokenizer_token_type(t, id);
        size_t size;
        const char *piece = tm_tokenizer_piece(t, id, &size);
        bool special = type == TM_TOKEN_CONTROL || type == TM_TOKEN_USER_DEFINED || type == TM_TOKEN_UNKNOWN || eog[id];
        if (special && size > 0 && tm_utf8_valid_prefix(piece, size) == size) n_special++;
    }
    if (n_special == 0) return TM_OK;
    sized_id *order = tm_alloc_array(n_special, sizeof *order, err);
    t->special_ids = order ? tm_alloc_array(n_special, sizeof *t->special_ids, err) : NULL;
    if (!t->special_ids) {
        free(order);
        return TM_ERR_NOMEM;
    }
    for (int32_t id = 0; id < t->n_vocab; id++) {
        tm_token_type type = tm_tokenizer_token_type(t, id);
        size_t size;
        const char *piece = tm_tokenizer_piece(t, id, &size);
        bool special = type == TM_TOKEN_CONTROL || type == TM_TOKEN_USER_DEFINED || type == TM_TOKEN_UNKNOWN || eog[id];
        if (special && size > 0 && tm_utf8_valid_prefix(piece, size) == size)
            order[t->n_special++] = (sized_id){.size = size, .id = id};
    }
    qsort(order, t->n_special, sizeof *order, longer_first);
    for (size_t i = 0; i < t->n_special; i++) t->special_ids[i] = order[i].id;
    free(order);
    return TM_OK;
}

bool tm_tokenizer_is_end_of_generation(const tm_tokenizer *t, int32_t id) {
    return t && id >= 0 && id < t->n_vocab && t->end_of_generation && t->end_of_generation[id];
}

bool tm_tokenizer_adds_bos(const tm_tokenizer *t) { return t && t->add_bos && t->bos >= 0; }

/* A stretch of the text: raw text to tokenize (id -1) or one special token. */
typedef struct {
    size_t start, size;
    int32_t id;
} text_fragment;

typedef struct {
    text_fragment *items;
    size_t size, capacity;
} fragment_list;

static bool fragment_push(fragment_list *l, text_fragment f) {
    if (l->size == l->capacity) {
        size_t capacity = l->capacity ? 2 * l->capacity : 16;
        text_fragment *grown = capacity > SIZE_MAX / sizeof *grown ? NULL : realloc(l->items, capacity * sizeof *grown);
        if (!grown) return false;
        l->items = grown;
        l->capacity = capacity;
    }
    l->items[l->size++] = f;
    return true;
}

/* tokenizer_st_partition with parse_special: each special token in turn,
 * longest first, is cut out of every raw fragment wherever it occurs. */
/* Whether [at, at + size) overlaps a plain span (sorted, disjoint). */
static bool overlaps_plain(const tm_text_span *plain, size_t n_plain, size_t at, size_t size) {
    size_t lo = 0, hi = n_plain;
    while (lo < hi) { /* the first span that ends after at */
        size_t mid = lo + (hi - lo) / 2;
        if (plain[mid].start + plain[mid].size <= at) lo = mid + 1;
        else hi = mid;
    }
    return lo < n_plain && plain[lo].start < at + size;
}

static tm_status partition_special(const tm_tokenizer *t, const char *text, size_t size, const tm_text_span *plain,
                                   size_t n_plain, fragment_list *out, tm_error *err) {
    fragment_list current = {0}, next = {0};
    bool ok = size == 0 || fragment_push(&current, (text_fragment){0, size, -1});
    for (size_t s = 0; ok && s < t->n_special; s++) {
        int32_t id = t->special_ids[s];
        size_t piece_size_bytes;
        const char *piece = tm_tokenizer_piece(t, id, &piece_size_bytes);
        next.size = 0;
        for (size_t f = 0; ok && f < current.size; f++) {
            text_fragment fr = current.items[f];
            size_t at = fr.start, end = fr.start + fr.size;
            size_t from = at;
            while (ok && fr.id < 0 && end - from >= piece_size_bytes) {
                const char *hit = memmem(text + from, end - from, piece, piece_size_bytes);
                if (!hit) break;
                size_t hit_at = (size_t)(hit - text);
                if (overlaps_plain(plain, n_plain, hit_at, piece_size_bytes)) { /* message text: stays text */
                    from = hit_at + 1;
                    continue;
                }
                if (hit_at > at) ok = fragment_push(&next, (text_fragment){at, hit_at - at, -1});
                ok = ok && fragment_push(&next, (text_fragment){hit_at, piece_size_bytes, id});
                at = from = hit_at + piece_size_bytes;
            }
            if (!ok) break;
            if (fr.id >= 0) ok = fragment_push(&next, fr);
            else if (at < end) ok = fragment_push(&next, (text_fragment){at, end - at, -1});
        }
        fragment_list swap = current;
        current = next;
        next = swap;
    }
    free(next.items);
    if (!ok) {
        free(current.items);
        return tm_error_set(err, TM_ERR_NOMEM, "out of memory parsing special tokens in %zu bytes", size);
    }
    *out = current;
    return TM_OK;
}

typedef struct {
    int32_t *items;
    size_t size, capacity;
} id_list;

static bool ids_append(id_list *l, const int32_t *ids, size_t n) {
    if (n > l->capacity - l->size) {
        size_t capacity = l->capacity ? l->capacity : 64;
        while (capacity - l->size < n) {
            if (capacity > SIZE_MAX / 2 / sizeof(int32_t)) return false;
            capacity *= 2;
        }
        int32_t *grown = realloc(l->items, capacity * sizeof *grown);
        if (!grown) return false;
        l->items = grown;
        l->capacity = capacity;
    }
    if (n) memcpy(l->items + l->size, ids, n * sizeof *ids);
    l->size += n;
    return true;
}

/* One raw fragment through the SentencePiece encoder; prefix as llama.cpp:
 * a space goes in front of a fragment that starts the text or follows a
 * special token. */
static tm_status encode_spm_fragment(const tm_tokenizer *t, const char *text, size_t size, bool prefix, id_list *out,
                                     tm_error *err) {
    char *escaped = NULL;
    size_t escaped_size = 0;
    tm_status status = escape_text(text, size, prefix, &escaped, &escaped_size, err);
    if (status != TM_OK) return status;
    int32_t *ids = tm_alloc_array(escaped_size + 1, sizeof *ids, err);
    size_t n = 0;
    if (!ids) status = TM_ERR_NOMEM;
    if (status == TM_OK)
        status = (t->words_independent ? encode_by_segments : encode_whole)(t, escaped, escaped_size, ids, &n, err);
    if (status == TM_OK && !ids_append(out, ids, n))
        status = tm_error_set(err, TM_ERR_NOMEM, "out of memory encoding %zu bytes", size);
    free(ids);
    free(escaped);
    return status;
}

tm_status tm_tokenizer_encode_special(const tm_tokenizer *t, const char *text, size_t size, bool add_bos,
                                      int32_t **ids, size_t *n_ids, tm_error *err) {
    return tm_tokenizer_encode_special_outside(t, text, size, add_bos, NULL, 0, ids, n_ids, err);
}

tm_status tm_tokenizer_encode_special_outside(const tm_tokenizer *t, const char *text, size_t size, bool add_bos,
                                              const tm_text_span *plain, size_t n_plain, int32_t **ids,
                                              size_t *n_ids, tm_error *err) {
    if (!t || !ids || !n_ids || (!text && size) || (!plain && n_plain))
        return tm_error_set(err, TM_ERR_ARGUMENT, "tm_tokenizer_encode_special: NULL argument");
    *ids = NULL;
    *n_ids = 0;
    size_t valid = tm_utf8_valid_prefix(text, size);
    if (valid != size) return tm_error_set(err, TM_ERR_FORMAT, "text is not valid UTF-8 at byte offset %zu", valid);
    fragment_list fragments = {0};
    tm_status status = partition_special(t, text, size, plain, n_plain, &fragments, err);
    if (status != TM_OK) return status;
    id_list out = {0};
    if (add_bos && t->bos >= 0 && !ids_append(&out, &t->bos, 1))
        status = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    bool previous_special = true;
    for (size_t f = 0; status == TM_OK && f < fragments.size; f++) {
        text_fragment fr = fragments.items[f];
        if (fr.id >= 0) {
            if (!ids_append(&out, &fr.id, 1)) status = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
            previous_special = true;
            continue;
        }
        if (t->bpe) {
            int32_t *raw = NULL;
            size_t n = 0;
            status = tm_bpe_encode(t->bpe, text + fr.start, fr.size, &raw, &n, err);
            if (status == TM_OK && !ids_append(&out, raw, n)) status = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
            free(raw);
        } else {
            status = encode_spm_fragment(t, text + fr.start, fr.size, t->add_space_prefix && previous_special, &out, err);
        }
        previous_special = false;
    }
    free(fragments.items);
    if (status != TM_OK) {
        free(out.items);
        return status;
    }
    *ids = out.items;
    *n_ids = out.size;
    return TM_OK;
}

/* ---- decoding ------------------------------------------------------------- */

typedef struct {
    char *data;
    size_t size, capacity;
} sink;

static void sink_put(sink *s, const void *data, size_t size) {
    if (size > s->capacity - s->size) size = s->capacity - s->size; /* never past the caller's buffer */
    memcpy(s->data + s->size, data, size);
    s->size += size;
}

static void sink_replacement(sink *s) { sink_put(s, "\xEF\xBF\xBD", 3); }

/* Bytes a sequence starting with lead byte c needs, or 0 for a byte that
 * cannot start one. */
static size_t sequence_length(uint8_t c) {
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return 2;
    if (c >= 0xE0 && c <= 0xEF) return 3;
    if (c >= 0xF0 && c <= 0xF4) return 4;
    return 0;
}

/* Whether c may follow the pending bytes (second-byte limits rule out
 * overlongs, surrogates and code points above U+10FFFF). */
static bool continues(const tm_detokenizer *d, uint8_t c) {
    if ((c & 0xC0) != 0x80) return false;
    if (d->n_pending != 1) return true;
    switch (d->pending[0]) {
    case 0xE0: return c >= 0xA0;
    case 0xED: return c <= 0x9F;
    case 0xF0: return c >= 0x90;
    case 0xF4: return c <= 0x8F;
    default: return true;
    }
}

/* Feed one byte: whole characters go out; a broken sequence becomes U+FFFD
 * as soon as it is known to be broken. */
static void feed_byte(tm_detokenizer *d, uint8_t c, sink *s) {
    if (d->n_pending > 0) {
        if (continues(d, c)) {
            d->pending[d->n_pending++] = c;
            if (d->n_pending == sequence_length(d->pending[0])) {
                sink_put(s, d->pending, d->n_pending);
                d->n_pending = 0;
            }
            return;
        }
        sink_replacement(s);
        d->n_pending = 0;
    }
    size_t need = sequence_length(c);
    if (need == 1) sink_put(s, &c, 1);
    else if (need == 0) sink_replacement(s);
    else d->pending[d->n_pending++] = c;
}

void tm_detokenizer_init(tm_detokenizer *d, const tm_tokenizer *t) {
    memset(d, 0, sizeof *d);
    d->tokenizer = t;
    d->previous = -1;
}

size_t tm_detokenizer_push(tm_detokenizer *d, int32_t id, char *out, size_t capacity) {
    if (!d || !d->tokenizer || (!out && capacity)) return 0;
    const tm_tokenizer *t = d->tokenizer;
    if (id < 0 || id >= t->n_vocab) return 0;
    if (d->n_pending > sizeof d->pending) d->n_pending = 0; /* a caller scribbled on the struct */
    sink s = {.data = out, .size = 0, .capacity = capacity};
    if (t->bpe) { /* raw bytes; no space to strip */
        char bytes[256];
        size_t n = tm_bpe_token_bytes(t->bpe, id, bytes, sizeof bytes);
        const char *p = bytes;
        char *large = NULL;
        if (n > sizeof bytes && (large = malloc(n)) != NULL) {
            tm_bpe_token_bytes(t->bpe, id, large, n);
            p = large;
        }
        for (size_t k = 0; k < n && (k < sizeof bytes || large); k++) feed_byte(d, (uint8_t)p[k], &s);
        free(large);
        d->previous = id;
        return s.size;
    }
    bool at_start = d->previous == -1 || d->previous == t->bos;
    const uint8_t *piece = (const uint8_t *)t->blob + t->offsets[id];
    size_t size = piece_size(t, id);
    switch ((tm_token_type)t->types[id]) {
    case TM_TOKEN_BYTE:
        feed_byte(d, t->byte_values[id], &s);
        break;
    case TM_TOKEN_NORMAL:
    case TM_TOKEN_USER_DEFINED: {
        /* SentencePiece drops the space its encoder put in front of the text. */
        bool normal = t->types[id] == TM_TOKEN_NORMAL;
        bool strip = t->add_space_prefix && at_start;
        for (size_t k = 0; k < size;) {
            if (normal && size - k >= 3 && memcmp(piece + k, SPACE_MARK, 3) == 0) {
                if (!strip) feed_byte(d, ' ', &s);
                k += 3;
            } else if (piece[k] == ' ' && strip) {
                k++;
            } else {
                feed_byte(d, piece[k++], &s);
            }
            strip = false;
        }
        break;
    }
    case TM_TOKEN_UNKNOWN: /* prints its piece, as llama.cpp does */
        for (size_t k = 0; k < size; k++) feed_byte(d, piece[k], &s);
        break;
    case TM_TOKEN_CONTROL:
    case TM_TOKEN_UNUSED:
        break;
    }
    d->previous = id;
    return s.size;
}

size_t tm_detokenizer_flush(tm_detokenizer *d, char *out, size_t capacity) {
    if (!d || (!out && capacity)) return 0;
    sink s = {.data = out, .size = 0, .capacity = capacity};
    if (d->n_pending > 0) sink_replacement(&s);
    d->n_pending = 0;
    return s.size;
}

tm_status tm_tokenizer_decode(const tm_tokenizer *t, const int32_t *ids, size_t n_ids, char **text, size_t *size,
                              tm_error *err) {
    if (!t || !text || !size || (!ids && n_ids))
        return tm_error_set(err, TM_ERR_ARGUMENT, "tm_tokenizer_decode: NULL argument");
    *text = NULL;
    *size = 0;
    for (size_t i = 0; i < n_ids; i++)
        if (ids[i] < 0 || ids[i] >= t->n_vocab)
            return tm_error_set(err, TM_ERR_ARGUMENT, "token %zu has id %d, outside the vocabulary of %d", i,
                                (int)ids[i], (int)t->n_vocab);
    /* Exact bound: every id's worst case plus the final flush. */
    size_t step, total;
    if (!tm_add_size(t->max_decoded, TM_DETOKENIZE_MAX, &step) || !tm_mul_size(n_ids, step, &total) || !tm_add_size(total, TM_DETOKENIZE_MAX + 1, &total))
        return tm_error_set(err, TM_ERR_NOMEM, "decoding %zu tokens overflows", n_ids);
    /* Grow as we go instead of reserving the worst case up front. */
    size_t capacity = 256, used = 0;
    char *buffer = malloc(capacity);
    if (!buffer) return tm_error_set(err, TM_ERR_NOMEM, "out of memory decoding");
    tm_detokenizer d;
    tm_detokenizer_init(&d, t);
    for (size_t i = 0; i <= n_ids; i++) {
        while (capacity - used < step + 1) {
            char *grown = capacity <= total && capacity <= SIZE_MAX / 2 ? realloc(buffer, capacity * 2) : NULL;
            if (!grown) {
                free(buffer);
                return tm_error_set(err, TM_ERR_NOMEM, "out of memory decoding %zu tokens", n_ids);
            }
            buffer = grown;
            capacity *= 2;
        }
        used += i < n_ids ? tm_detokenizer_push(&d, ids[i], buffer + used, capacity - used - 1)
                          : tm_detokenizer_flush(&d, buffer + used, capacity - used - 1);
    }
    buffer[used] = '\0';
    *text = buffer;
    *size = used;
    return TM_OK;
}

tm_status tm_model_tokenizer(tm_tokenizer **out, const tm_model *model, const char *tokenizer_path, tm_error *err) {
    *out = NULL;
    tm_status status;
    if (tokenizer_path && *tokenizer_path) {
        status = tm_tokenizer_load(out, tokenizer_path, err);
    } else if (tm_model_get_format(model) == TM_MODEL_FORMAT_GGUF) {
        status = tm_tokenizer_from_gguf(out, tm_model_get_gguf(model), err);
    } else {
        return tm_error_set(err, TM_ERR_ARGUMENT,
                            "%s: a llama2.c checkpoint carries no tokenizer; pass one with --tokenizer (tokenizer.bin)",
                            tm_model_get_path(model));
    }
    if (status != TM_OK) return status;
    int32_t size = tm_tokenizer_vocab_size(*out), n_vocab = tm_model_get_config(model)->n_vocab;
    if (size != n_vocab) {
        tm_tokenizer_free(*out);
        *out = NULL;
        return tm_error_set(err, TM_ERR_FORMAT, "tokenizer %s has %d tokens but the model %s has a vocabulary of %d",
                            tokenizer_path && *tokenizer_path ? tokenizer_path : "(from the model)", size,
                            tm_model_get_path(model), n_vocab);
    }
    return TM_OK;
}
