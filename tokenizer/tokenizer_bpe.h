/* The byte-level BPE tokenizer (GGUF tokenizer.ggml.model = "gpt2": Llama 3,
 * Qwen2, GPT-2 and their kin), internal to tokenizer/: tm_tokenizer wraps it
 * and the tests reach it directly. It reproduces llama.cpp's
 * llm_tokenizer_bpe token for token: the text is cut into pre-tokens by the
 * pre-tokenizer's regular expressions (PCRE2, chosen by tokenizer.ggml.pre),
 * every byte of a pre-token becomes a character of GPT-2's byte-to-unicode
 * alphabet, and adjacent symbols are merged by the rank of their pair in
 * tokenizer.ggml.merges. No BOS is added and special tokens are not parsed:
 * the caller adds BOS. A built tm_bpe is only read, so threads may encode
 * with one at the same time. Nothing here prints or aborts. Also holds the
 * byte hash both tokenizers key their piece tables and word caches with. */
#ifndef TRACEMARK_TOKENIZER_TOKENIZER_BPE_H
#define TRACEMARK_TOKENIZER_TOKENIZER_BPE_H

#include "tracemark/tokenizer.h"

#include <stdint.h>
#include <string.h>

/* The hash of a piece or word for the tokenizers' in-memory tables, eight
 * bytes at a time: pieces and words are short, and the encoders hash every
 * candidate pair and every word. Only ever compared within one process, so
 * the byte order of the loads does not matter. */
static inline uint64_t tm_tokenizer_hash_bytes(const char *data, size_t size) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ size;
    for (; size >= 8; data += 8, size -= 8) {
        uint64_t word;
        memcpy(&word, data, 8);
        h = (h ^ word) * 0xFF51AFD7ED558CCDull;
        h ^= h >> 32;
    }
    uint64_t tail = 0;
    if (size) memcpy(&tail, data, size);
    h = (h ^ tail) * 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 29;
    h *= 0xFF51AFD7ED558CCDull;
    return h ^ (h >> 32);
}

typedef struct tm_bpe tm_bpe;

/* Build from a GGUF's tokenizer.ggml.* metadata: tokens, token_type, merges,
 * pre (absent means "default"), bos_token_id, eos_token_id, add_bos_token.
 * Everything is copied, so the tm_bpe outlives the gguf. Every count, string
 * and merge is checked: a merge must read "LEFT RIGHT" with LEFT, RIGHT and
 * LEFTRIGHT all in the vocabulary. Errors (TM_ERR_FORMAT, TM_ERR_NOT_FOUND,
 * TM_ERR_UNSUPPORTED for an unknown pre-tokenizer, TM_ERR_NOMEM) name the
 * key and index at fault, prefixed with the file's path. */
tm_status tm_bpe_from_gguf(tm_bpe **out, const tm_gguf *gguf, tm_error *err);
void tm_bpe_free(tm_bpe *bpe);

/* Encode UTF-8 text to ids (no BOS, no special-token parsing; user-defined
 * tokens are split out first, as llama.cpp always does). Invalid UTF-8 is
 * TM_ERR_FORMAT naming the byte offset; TM_ERR_NOMEM, or TM_ERR_LIMIT when
 * PCRE2 gives up on a piece, are the only other failures. The caller frees
 * *ids with free(); empty text gives *ids == NULL and *n_ids == 0. */
tm_status tm_bpe_encode(const tm_bpe *bpe, const char *text, size_t size, int32_t **ids, size_t *n_ids,
                        tm_error *err);

/* The bytes token id stands for: NORMAL tokens through GPT-2's byte alphabet
 * reversed (a character outside that alphabet stays as its UTF-8),
 * USER_DEFINED tokens as stored, and nothing for CONTROL, UNKNOWN, UNUSED
 * and BYTE tokens or ids outside the vocabulary (as llama.cpp's
 * token_to_piece without "special"). Copies at most capacity bytes and
 * returns the full size, so a return above capacity means truncation. */
size_t tm_bpe_token_bytes(const tm_bpe *bpe, int32_t id, char *out, size_t capacity);
/* The largest tm_bpe_token_bytes of any token. A token's bytes need not be
 * whole UTF-8 characters, so a streaming decoder that turns stray bytes into
 * U+FFFD may write up to 3 bytes for each of them. */
size_t tm_bpe_max_token_bytes(const tm_bpe *bpe);
/* Concatenated tm_bpe_token_bytes of ids (ids outside the vocabulary decode
 * to nothing). Lossless: decode(encode(s)) == s for all valid UTF-8 s (no
 * llama.cpp clean_spaces rewriting). The caller frees *text; it is
 * NUL-terminated, *size excludes the NUL. */
tm_status tm_bpe_decode(const tm_bpe *bpe, const int32_t *ids, size_t n_ids, char **text, size_t *size,
                        tm_error *err);

int32_t tm_bpe_vocab_size(const tm_bpe *bpe);
/* Special ids from the metadata; -1 when the file names none. */
int32_t tm_bpe_bos(const tm_bpe *bpe);
int32_t tm_bpe_eos(const tm_bpe *bpe);
/* tokenizer.ggml.add_bos_token, defaulting as llama.cpp does (true for the
 * Llama 3 pre-tokenizer, false otherwise). */
bool tm_bpe_add_bos(const tm_bpe *bpe);
/* The vocabulary entry as stored (GPT-2 alphabet, NUL-terminated), or NULL
 * with *size 0 for an id outside the vocabulary. */
const char *tm_bpe_piece(const tm_bpe *bpe, int32_t id, size_t *size);
/* The token's type; ids outside the vocabulary read as TM_TOKEN_UNUSED. */
tm_token_type tm_bpe_token_type(const tm_bpe *bpe, int32_t id);
/* tokenizer.ggml.pre as given ("llama-bpe", "qwen2", ...; "default" when
 * absent), and the regex family it selected ("llama3", "gpt2", "qwen2",
 * "default", ...). */
const char *tm_bpe_pre_name(const tm_bpe *bpe);
const char *tm_bpe_pre_family(const tm_bpe *bpe);
int32_t tm_bpe_merge_count(const tm_bpe *bpe);

#endif
