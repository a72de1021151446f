/* Hooks into the SentencePiece-BPE tokenizer for its tests only: the
 * whole-text reference encoder that the fast word-by-word one must match id
 * for id, and whether a vocabulary lets the fast one run. Not part of the
 * public API; nothing outside tokenizer/tokenizer.c and its tests includes
 * this. */
#ifndef TRACEMARK_TOKENIZER_TOKENIZER_INTERNAL_H
#define TRACEMARK_TOKENIZER_TOKENIZER_INTERNAL_H

#include "tracemark/tokenizer.h"

/* tm_tokenizer_encode by llama.cpp's algorithm over the whole text, never
 * word by word. Same arguments, results and errors. */
tm_status tm_tokenizer_encode_reference(const tm_tokenizer *tokenizer, const char *text, size_t size, bool add_bos,
                                        int32_t **ids, size_t *n_ids, tm_error *err);

/* True when no piece holds U+2581 after another character and no score is
 * NaN, so tm_tokenizer_encode may encode word by word. */
bool tm_tokenizer_words_independent(const tm_tokenizer *tokenizer);

#endif
