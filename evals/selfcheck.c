/* SelfCheckGPT's sampling-based consistency scores: the unigram variant
 * (how improbable each sentence of a passage is under a unigram model of
 * the passage and the model's own samples, modeling_ngram.py's
 * UnigramModel with its pseudo-count k) and the prompt variant's
 * judge prompt and answer mapping. Sentence and word splitting are small
 * stand-ins for spaCy, documented where they differ; the formulas are the
 * published ones. Text is untrusted: invalid UTF-8 is an error. */
#include "tracemark/evals.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char **items;
    size_t n, capacity;
} string_list;

static void list_free(string_list *list) {
    for (size_t i = 0; i < list->n; i++) free(list->items[i]);
    free(list->items);
    *list = (string_list){0};
}

static bool list_push(string_list *list, const char *start, size_t len, bool lower) {
    if (list->n == list->capacity) {
        size_t grown = list->capacity ? list->capacity * 2 : 32;
        char **bigger = realloc(list->items, grown * sizeof *bigger);
        if (!bigger) return false;
        list->items = bigger;
        list->capacity = grown;
    }
    char *copy = malloc(len + 1);
    if (!copy) return false;
    for (size_t i = 0; i < len; i++) copy[i] = lower ? (char)tolower((unsigned char)start[i]) : start[i];
    copy[len] = '\0';
    list->items[list->n++] = copy;
    return true;
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

tm_status tm_selfcheck_sentences(const char *passage, char ***sentences, size_t *n, tm_error *err) {
    *sentences = NULL;
    *n = 0;
    size_t size = strlen(passage);
    if (!tm_utf8_valid(passage, size)) return tm_error_set(err, TM_ERR_FORMAT, "passage is not UTF-8");
    string_list out = {0};
    size_t i = 0, start = 0;
    while (i <= size) {
        size_t stop, next;
        if (i == size) {
            stop = size;
            next = size + 1;
        } else if (passage[i] == '\n') {
            stop = i;
            next = i + 1;
        } else if (passage[i] == '.' || passage[i] == '!' || passage[i] == '?') {
            /* A sentence ends after its mark and any closing quotes or
             * brackets, when white space or the end follows. */
            size_t j = i + 1;
            while (j < size && strchr("\"')]", passage[j])) j++;
            if (j < size && !is_space(passage[j])) {
                i++;
                continue;
            }
            stop = next = j;
        } else {
            i++;
            continue;
        }
        size_t a = start, b = stop;
        while (a < b && is_space(passage[a])) a++;
        while (b > a && is_space(passage[b - 1])) b--;
        if (b > a && !list_push(&out, passage + a, b - a, false)) {
            list_free(&out);
            return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
        }
        start = i = next;
    }
    *sentences = out.items;
    *n = out.n;
    return TM_OK;
}

static bool is_word_byte(unsigned char c) { return isalnum(c) || c >= 0x80; }

/* Words (letters, digits, any non-ASCII character, inner ' and -), and
 * each other visible character on its own. */
static bool tokens_into(const char *text, string_list *out) {
    size_t size = strlen(text), i = 0;
    while (i < size) {
        unsigned char c = (unsigned char)text[i];
        if (is_space((char)c)) {
            i++;
            continue;
        }
        size_t start = i;
        if (is_word_byte(c)) {
            while (i < size) {
                unsigned char d = (unsigned char)text[i];
                if (is_word_byte(d)) i++;
                else if ((d == '\'' || d == '-') && i + 1 < size && is_word_byte((unsigned char)text[i + 1]) &&
                         i > start)
                    i++;
                else break;
            }
        } else {
            i += (size_t)tm_utf8_sequence_length(c);
            if (i > size) i = size;
        }
        if (!list_push(out, text + start, i - start, true)) return false;
    }
    return true;
}

tm_status tm_selfcheck_tokens(const char *text, char ***tokens, size_t *n, tm_error *err) {
    *tokens = NULL;
    *n = 0;
    if (!tm_utf8_valid(text, strlen(text))) return tm_error_set(err, TM_ERR_FORMAT, "text is not UTF-8");
    string_list out = {0};
    if (!tokens_into(text, &out)) {
        list_free(&out);
        return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    }
    *tokens = out.items;
    *n = out.n;
    return TM_OK;
}

static int compare_strings(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void tm_selfcheck_ngram_result_free(tm_selfcheck_ngram_result *result) {
    free(result->sentence_avg);
    free(result->sentence_max);
    memset(result, 0, sizeof *result);
}

tm_status tm_selfcheck_ngram(const char *const *sentences, size_t n_sentences, const char *passage,
                             const char *const *samples, size_t n_samples, double k, tm_selfcheck_ngram_result *out,
                             tm_error *err) {
    memset(out, 0, sizeof *out);
    if (!(k >= 0) || !isfinite(k)) return tm_error_set(err, TM_ERR_ARGUMENT, "smoothing count %g is not >= 0", k);
    if (!passage || (n_samples && !samples) || (n_sentences && !sentences))
        return tm_error_set(err, TM_ERR_ARGUMENT, "passage, samples or sentences missing");
    if (!tm_utf8_valid(passage, strlen(passage))) return tm_error_set(err, TM_ERR_FORMAT, "passage is not UTF-8");
    for (size_t i = 0; i < n_samples; i++)
        if (!samples[i] || !tm_utf8_valid(samples[i], strlen(samples[i])))
            return tm_error_set(err, TM_ERR_FORMAT, "sample %zu is missing or not UTF-8", i);
    /* The training text: the passage and every sample (SelfCheckNgram adds
     * all of them before train(k=1)). */
    string_list corpus = {0};
    bool ok = tokens_into(passage, &corpus);
    for (size_t i = 0; ok && i < n_samples; i++) ok = tokens_into(samples[i], &corpus);
    size_t n_tokens = corpus.n;
    /* Sorted, so that a count is a run and a lookup a binary search. */
    if (ok && corpus.n) qsort(corpus.items, corpus.n, sizeof *corpus.items, compare_strings);
    size_t vocabulary = 1; /* "<unk>" is in the vocabulary from the start, with count 0 */
    for (size_t i = 0; ok && i < corpus.n; i++) vocabulary += i == 0 || strcmp(corpus.items[i], corpus.items[i - 1]);
    if (ok) {
        out->sentence_avg = tm_alloc_array(n_sentences ? n_sentences : 1, sizeof(double), err);
        out->sentence_max = tm_alloc_array(n_sentences ? n_sentences : 1, sizeof(double), err);
        ok = out->sentence_avg && out->sentence_max;
    }
    double denominator = (double)n_tokens + k * (double)vocabulary;
    double doc_sum = 0, avg_sum = 0, max_sum = 0;
    size_t doc_count = 0, scored = 0;
    for (size_t s = 0; ok && s < n_sentences; s++) {
        string_list words = {0};
        if (!sentences[s] || !tm_utf8_valid(sentences[s], strlen(sentences[s]))) {
            list_free(&corpus);
            tm_selfcheck_ngram_result_free(out);
            return tm_error_set(err, TM_ERR_FORMAT, "sentence %zu is missing or not UTF-8", s);
        }
        ok = tokens_into(sentences[s], &words);
        double sum = 0, worst = -INFINITY;
        for (size_t w = 0; ok && w < words.n; w++) {
            char *const *hit = corpus.n ? bsearch(&words.items[w], corpus.items, corpus.n, sizeof *corpus.items,
                                                  compare_strings)
                                        : NULL;
            size_t count = 0;
            if (hit) {
                size_t at = (size_t)(hit - corpus.items), lo = at, hi = at;
                while (lo > 0 && !strcmp(corpus.items[lo - 1], *hit)) lo--;
                while (hi + 1 < corpus.n && !strcmp(corpus.items[hi + 1], *hit)) hi++;
                count = hi - lo + 1;
            }
            double neg = denominator > 0 ? -log(((double)count + k) / denominator) : INFINITY;
            sum += neg;
            if (neg > worst) worst = neg;
            doc_sum += neg;
            doc_count++;
        }
        /* A sentence without tokens has no score (numpy would give NaN). */
        out->sentence_avg[s] = words.n ? sum / (double)words.n : NAN;
        out->sentence_max[s] = words.n ? worst : NAN;
        if (words.n) {
            avg_sum += out->sentence_avg[s];
            max_sum += out->sentence_max[s];
            scored++;
        }
        list_free(&words);
    }
    list_free(&corpus);
    if (!ok) {
        tm_selfcheck_ngram_result_free(out);
        return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    }
    out->n_sentences = n_sentences;
    out->passage_avg = scored ? avg_sum / (double)scored : NAN;
    out->passage_max = scored ? max_sum / (double)scored : NAN;
    out->doc_avg = doc_count ? doc_sum / (double)doc_count : NAN;
    return TM_OK;
}

char *tm_selfcheck_prompt(const char *sample, const char *sentence, tm_error *err) {
    static const char a[] = "Context: ", b[] = "\n\nSentence: ",
                      c[] = "\n\nIs the sentence supported by the context above? Answer Yes or No.\n\nAnswer: ";
    size_t ls = strlen(sample), lt = strlen(sentence), total = sizeof a + sizeof b + sizeof c;
    if (!tm_add_size(total, ls, &total) || !tm_add_size(total, lt, &total)) {
        tm_error_set(err, TM_ERR_NOMEM, "prompt too long");
        return NULL;
    }
    char *out = tm_alloc_array(total, 1, err);
    if (!out) return NULL;
    size_t at = 0;
    memcpy(out + at, a, sizeof a - 1);
    at += sizeof a - 1;
    memcpy(out + at, sample, ls);
    at += ls;
    memcpy(out + at, b, sizeof b - 1);
    at += sizeof b - 1;
    memcpy(out + at, sentence, lt);
    at += lt;
    memcpy(out + at, c, sizeof c - 1);
    return out;
}

double tm_selfcheck_prompt_score(double ll_yes, double ll_no) {
    if (ll_yes > ll_no) return 0.0;
    if (ll_no > ll_yes) return 1.0;
    return 0.5;
}
