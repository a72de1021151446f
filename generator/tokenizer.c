/* The SentencePiece-style BPE tokenizer of Llama 1/2, reproducing llama.cpp's
 * llm_tokenizer_spm (tokenizer.ggml.model = "llama") token for token: spaces
 * become U+2581, the text is split into UTF-8 characters, the adjacent pair
 * whose concatenation is a vocabulary entry with the highest score is merged
 * (ties go to the leftmost pair) until no pair is left, and characters that no
 * entry covers fall back to <0xNN> byte tokens. The vocabulary comes from a
 * GGUF's tokenizer.ggml.* metadata or from llama2.c's tokenizer.bin, and is
 * always copied, so a tokenizer outlives the file it was read from. Decoding
 * streams whole UTF-8 characters only. Vocabularies and texts are untrusted:
 * this file never prints, aborts or reads outside what it has checked. */
#include "tracemark/generator.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    int32_t *slots;
    size_t slot_mask;
    int32_t byte_tokens[256]; /* encoder fallback per byte */
    int32_t bos, eos, unk;
    bool add_space_prefix;
    bool add_bos;
    size_t longest_piece;  /* bytes; bigrams longer than this cannot be entries */
    size_t max_decoded;    /* most bytes one token decodes to, see max_piece_size */
};

/* A piece being collected before the tokenizer is built. */
typedef struct {
    const char *data;
    size_t size;
    float score;
    tm_token_type type;
} vocab_entry;

static const char SPACE_MARK[3] = {'\xE2', '\x96', '\x81'}; /* U+2581 */

/* ---- small helpers ------------------------------------------------------ */

static uint64_t hash_bytes(const char *data, size_t size) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < size; i++) {
        h ^= (uint8_t)data[i];
        h *= 1099511628211ull;
    }
    return h;
}

static size_t piece_size(const tm_tokenizer *t, int32_t id) {
    return t->offsets[id + 1] - t->offsets[id] - 1;
}

static int32_t lookup(const tm_tokenizer *t, const char *data, size_t size) {
    if (size > t->longest_piece) return -1;
    size_t slot = (size_t)hash_bytes(data, size) & t->slot_mask;
    for (;;) {
        int32_t id = t->slots[slot];
        if (id < 0) return -1;
        if (piece_size(t, id) == size && memcmp(t->blob + t->offsets[id], data, size) == 0) return id;
        slot = (slot + 1) & t->slot_mask;
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

/* Length of the longest valid UTF-8 prefix (RFC 3629, as tm_utf8_valid). */
static size_t utf8_valid_prefix(const uint8_t *p, size_t size) {
    size_t i = 0;
    while (i < size) {
        uint8_t c = p[i];
        if (c < 0x80) { i++; continue; }
        size_t n;
        uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (c >= 0xC2 && c <= 0xDF) n = 2;
        else if (c >= 0xE0 && c <= 0xEF) {
            n = 3;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 4;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else return i;
        if (size - i < n) return i;
        if (p[i + 1] < lo || p[i + 1] > hi) return i;
        for (size_t k = 2; k < n; k++)
            if ((p[i + k] & 0xC0) != 0x80) return i;
        i += n;
    }
    return size;
}

/* ---- building ------------------------------------------------------------ */

void tm_tokenizer_free(tm_tokenizer *t) {
    if (!t) return;
    free(t->blob);
    free(t->offsets);
    free(t->scores);
    free(t->types);
    free(t->byte_values);
    free(t->slots);
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
    memset(t->slots, 0xFF, n_slots * sizeof *t->slots);

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
        if (utf8_valid_prefix((const uint8_t *)e->data, e->size) != e->size &&
            !tm_mul_size(e->size, 3, &decoded)) {
            tm_tokenizer_free(t);
            return tm_error_set(err, TM_ERR_NOMEM, "token %zu is too long", i);
        }
        if (decoded > t->max_decoded) t->max_decoded = decoded;
    }
    t->offsets[n] = at;

    /* Insert in id order; a later duplicate replaces an earlier one, as
     * llama.cpp's token_to_id map does. */
    for (size_t i = 0; i < n; i++) {
        const char *data = t->blob + t->offsets[i];
        size_t size = piece_size(t, (int32_t)i);
        size_t slot = (size_t)hash_bytes(data, size) & t->slot_mask;
        for (;;) {
            int32_t id = t->slots[slot];
            if (id < 0 || (piece_size(t, id) == size && memcmp(t->blob + t->offsets[id], data, size) == 0)) {
                t->slots[slot] = (int32_t)i;
                break;
            }
            slot = (slot + 1) & t->slot_mask;
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

tm_status tm_tokenizer_from_gguf(tm_tokenizer **out, const tm_gguf *gguf, tm_error *err) {
    if (!out || !gguf) return tm_error_set(err, TM_ERR_ARGUMENT, "tm_tokenizer_from_gguf: NULL argument");
    *out = NULL;
    tm_status status = from_gguf(out, gguf, err);
    if (status != TM_OK && gguf->file.path) tm_error_prefix(err, "%s", gguf->file.path);
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
    FILE *f = fopen(path, "rb");
    if (!f) return tm_error_set(err, TM_ERR_IO, "%s: cannot open", path);
    char magic[4] = {0};
    size_t got = fread(magic, 1, sizeof magic, f);
    fclose(f);
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
const char *tm_tokenizer_kind(const tm_tokenizer *t) {
    (void)t;
    return "llama-spm";
}

const char *tm_tokenizer_piece(const tm_tokenizer *t, int32_t id, size_t *size) {
    if (!t || id < 0 || id >= t->n_vocab) {
        if (size) *size = 0;
        return NULL;
    }
    if (size) *size = piece_size(t, id);
    return t->blob + t->offsets[id];
}

/* Ids outside the vocabulary read as UNUSED (they decode to nothing). */
tm_token_type tm_tokenizer_token_type(const tm_tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= t->n_vocab) return TM_TOKEN_UNUSED;
    return (tm_token_type)t->types[id];
}

size_t tm_tokenizer_max_piece_size(const tm_tokenizer *t) { return t ? t->max_decoded : 0; }

/* ---- encoding ----------------------------------------------------------- */

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

tm_status tm_tokenizer_encode(const tm_tokenizer *t, const char *text, size_t size, bool add_bos, int32_t **ids,
                              size_t *n_ids, tm_error *err) {
    if (!t || !ids || !n_ids || (!text && size))
        return tm_error_set(err, TM_ERR_ARGUMENT, "tm_tokenizer_encode: NULL argument");
    *ids = NULL;
    *n_ids = 0;
    size_t valid = utf8_valid_prefix((const uint8_t *)text, size);
    if (valid != size) return tm_error_set(err, TM_ERR_FORMAT, "text is not valid UTF-8 at byte offset %zu", valid);

    /* The escaped text: a space prefix, and U+2581 for every space. As in
     * llama.cpp, empty text gets no prefix and yields no tokens. */
    size_t spaces = 0;
    for (size_t i = 0; i < size; i++) spaces += text[i] == ' ';
    bool prefix = t->add_space_prefix && size > 0;
    size_t escaped_size = size, extra;
    if (!tm_add_size(spaces, prefix, &extra) || !tm_mul_size(extra, 2, &extra) ||
        !tm_add_size(escaped_size, extra, &escaped_size) || !tm_add_size(escaped_size, prefix, &escaped_size) ||
        escaped_size > (size_t)PTRDIFF_MAX / 4)
        return tm_error_set(err, TM_ERR_NOMEM, "text of %zu bytes is too large to encode", size);

    char *escaped = tm_alloc_array(escaped_size, 1, err);
    /* At most one token per byte, plus BOS. */
    int32_t *out = escaped ? tm_alloc_array(escaped_size + 1, sizeof *out, err) : NULL;
    symbol *symbols = out ? tm_alloc_array(escaped_size, sizeof *symbols, err) : NULL;
    bigram_heap heap = {0};
    if (!symbols) {
        free(escaped);
        free(out);
        return TM_ERR_NOMEM;
    }
    size_t n_out = 0;
    if (add_bos) out[n_out++] = t->bos;

    size_t at = 0;
    if (prefix) {
        memcpy(escaped, SPACE_MARK, 3);
        at = 3;
    }
    for (size_t i = 0; i < size; i++) {
        if (text[i] == ' ') {
            memcpy(escaped + at, SPACE_MARK, 3);
            at += 3;
        } else {
            escaped[at++] = text[i];
        }
    }

    /* One symbol per UTF-8 character (the text is valid, so lead bytes tell). */
    ptrdiff_t n_symbols = 0;
    for (size_t offset = 0; offset < escaped_size;) {
        size_t len = (size_t)tm_utf8_sequence_length((uint8_t)escaped[offset]);
        if (len > escaped_size - offset) len = escaped_size - offset;
        symbols[n_symbols] = (symbol){.start = offset, .size = len, .prev = n_symbols - 1, .next = NONE};
        offset += len;
        if (offset < escaped_size) symbols[n_symbols].next = n_symbols + 1;
        n_symbols++;
    }

    for (ptrdiff_t i = 1; i < n_symbols; i++) try_add_bigram(t, escaped, symbols, &heap, i - 1, i);
    while (heap.size > 0 && !heap.failed) {
        bigram b = heap_pop(&heap);
        symbol *left = &symbols[b.left], *right = &symbols[b.right];
        /* Skip pairs made stale by an earlier merge. */
        if (left->size == 0 || right->size == 0 || left->size + right->size != b.size) continue;
        left->size += right->size;
        right->size = 0;
        left->next = right->next;
        if (right->next != NONE) symbols[right->next].prev = b.left;
        try_add_bigram(t, escaped, symbols, &heap, left->prev, b.left);
        try_add_bigram(t, escaped, symbols, &heap, b.left, left->next);
    }

    if (heap.failed) {
        free(escaped);
        free(out);
        free(symbols);
        free(heap.items);
        return tm_error_set(err, TM_ERR_NOMEM, "out of memory encoding %zu bytes", size);
    }

    /* Every merged symbol is a vocabulary entry by construction, so
     * llama.cpp's resegment reduces to: the entry, or one token per byte. */
    for (ptrdiff_t i = n_symbols > 0 ? 0 : NONE; i != NONE; i = symbols[i].next) {
        const symbol *s = &symbols[i];
        int32_t id = lookup(t, escaped + s->start, s->size);
        if (id >= 0) {
            out[n_out++] = id;
        } else {
            for (size_t k = 0; k < s->size; k++) out[n_out++] = t->byte_tokens[(uint8_t)escaped[s->start + k]];
        }
    }
    free(escaped);
    free(symbols);
    free(heap.items);
    *ids = out;
    *n_ids = n_out;
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
