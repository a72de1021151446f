/* BLEU and ROUGE, implemented once for every task that compares a text
 * with references (TruthfulQA generation first), reproducing the numbers of
 * the Python packages lm-evaluation-harness calls: sacreBLEU's corpus_bleu
 * on one sentence pair (tokenizer "intl", exp smoothing) and rouge_score's
 * ROUGE-1, ROUGE-2 and ROUGE-Lsum F-measures. The "intl" tokenizer's
 * Unicode classes come from PCRE2 (\p{P}, \p{N}, \p{S}). Inputs are
 * untrusted text: invalid UTF-8 is an error, never undefined behaviour. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tracemark/evals.h"

#include <ctype.h>
#include <math.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

/* ---- word lists ------------------------------------------------------------ */

typedef struct {
    char **words;
    size_t n, capacity;
} word_list;

static void words_free(word_list *list) {
    for (size_t i = 0; i < list->n; i++) free(list->words[i]);
    free(list->words);
    *list = (word_list){0};
}

static bool words_push(word_list *list, const char *start, size_t len) {
    if (list->n == list->capacity) {
        size_t grown = list->capacity ? list->capacity * 2 : 32;
        char **bigger = realloc(list->words, grown * sizeof *bigger);
        if (!bigger) return false;
        list->words = bigger;
        list->capacity = grown;
    }
    char *word = malloc(len + 1);
    if (!word) return false;
    memcpy(word, start, len);
    word[len] = '\0';
    list->words[list->n++] = word;
    return true;
}

/* Split on ASCII white space (Python's str.split() for the texts at hand). */
static bool split_spaces(const char *text, size_t size, word_list *out) {
    size_t i = 0;
    while (i < size) {
        while (i < size && isspace((unsigned char)text[i])) i++;
        size_t start = i;
        while (i < size && !isspace((unsigned char)text[i])) i++;
        if (i > start && !words_push(out, text + start, i - start)) return false;
    }
    return true;
}

/* ---- sacreBLEU ------------------------------------------------------------- */

/* One regex substitution over the whole text (Python's re.sub). */
static tm_status substitute(const char *pattern, const char *replacement, char **text, size_t *size, tm_error *err) {
    int code;
    PCRE2_SIZE offset;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &code, &offset, NULL);
    if (!re) return tm_error_set(err, TM_ERR_ARGUMENT, "BLEU tokenizer pattern does not compile");
    PCRE2_SIZE capacity = *size * 3 + 64;
    for (;;) {
        char *out = malloc(capacity + 1);
        if (!out) {
            pcre2_code_free(re);
            return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
        }
        PCRE2_SIZE length = capacity;
        int rc = pcre2_substitute(re, (PCRE2_SPTR)*text, *size, 0,
                                  PCRE2_SUBSTITUTE_GLOBAL | PCRE2_SUBSTITUTE_OVERFLOW_LENGTH, NULL, NULL,
                                  (PCRE2_SPTR)replacement, PCRE2_ZERO_TERMINATED, (PCRE2_UCHAR *)out, &length);
        if (rc == PCRE2_ERROR_NOMEMORY) {
            free(out);
            capacity = length + 1;
            continue;
        }
        pcre2_code_free(re);
        if (rc < 0) {
            free(out);
            return tm_error_set(err, TM_ERR_FORMAT, "BLEU tokenizer failed on the text (PCRE2 error %d)", rc);
        }
        free(*text);
        *text = out;
        *size = length;
        return TM_OK;
    }
}

/* sacreBLEU's tokenizer "intl" (TokenizerV14International), after rstrip. */
static tm_status bleu_tokens(const char *text, word_list *out, tm_error *err) {
    size_t size = strlen(text);
    if (!tm_utf8_valid(text, size)) return tm_error_set(err, TM_ERR_FORMAT, "text for BLEU is not UTF-8");
    while (size > 0 && isspace((unsigned char)text[size - 1])) size--;
    char *work = malloc(size + 1);
    if (!work) return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    memcpy(work, text, size);
    work[size] = '\0';
    tm_status status = substitute("(\\P{N})(\\p{P})", "$1 $2 ", &work, &size, err);
    if (status == TM_OK) status = substitute("(\\p{P})(\\P{N})", " $1 $2", &work, &size, err);
    if (status == TM_OK) status = substitute("(\\p{S})", " $1 ", &work, &size, err);
    if (status == TM_OK && !split_spaces(work, size, out)) status = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    free(work);
    return status;
}

static bool same_ngram(const word_list *a, size_t i, const word_list *b, size_t j, size_t n) {
    for (size_t k = 0; k < n; k++)
        if (strcmp(a->words[i + k], b->words[j + k])) return false;
    return true;
}

/* Matches of hypothesis n-grams clipped by the reference's counts:
 * sum over distinct n-grams of min(hypothesis count, reference count).
 * Quadratic without allocating; the texts are answers of a few dozen words. */
static size_t clipped_matches(const word_list *hyp, const word_list *ref, size_t n) {
    if (hyp->n < n || ref->n < n) return 0;
    size_t h = hyp->n - n + 1, r = ref->n - n + 1, matches = 0;
    for (size_t i = 0; i < h; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++) seen = same_ngram(hyp, i, hyp, j, n);
        if (seen) continue;
        size_t in_hyp = 0, in_ref = 0;
        for (size_t j = i; j < h; j++) in_hyp += same_ngram(hyp, i, hyp, j, n);
        for (size_t j = 0; j < r; j++) in_ref += same_ngram(hyp, i, ref, j, n);
        matches += in_hyp < in_ref ? in_hyp : in_ref;
    }
    return matches;
}

tm_status tm_overlap_bleu(const char *reference, const char *prediction, double *bleu, tm_error *err) {
    *bleu = NAN;
    word_list hyp = {0}, ref = {0};
    tm_status status = bleu_tokens(prediction, &hyp, err);
    if (status == TM_OK) status = bleu_tokens(reference, &ref, err);
    if (status != TM_OK) {
        words_free(&hyp);
        words_free(&ref);
        return status;
    }
    enum { ORDER = 4 };
    double precisions[ORDER] = {0};
    double smooth = 1;
    for (size_t n = 1; n <= ORDER; n++) {
        size_t total = hyp.n >= n ? hyp.n - n + 1 : 0;
        if (total == 0) break;
        size_t correct = clipped_matches(&hyp, &ref, n);
        if (correct == 0) {
            smooth *= 2;
            precisions[n - 1] = 100.0 / (smooth * (double)total);
        } else {
            precisions[n - 1] = 100.0 * (double)correct / (double)total;
        }
    }
    double sys_len = (double)hyp.n, ref_len = (double)ref.n;
    double bp = sys_len < ref_len ? (sys_len > 0 ? exp(1 - ref_len / sys_len) : 0.0) : 1.0;
    double log_sum = 0;
    for (int n = 0; n < ORDER; n++) log_sum += precisions[n] == 0 ? -9999999999.0 : log(precisions[n]);
    *bleu = bp * exp(log_sum / ORDER);
    words_free(&hyp);
    words_free(&ref);
    return TM_OK;
}

/* ---- rouge_score ------------------------------------------------------------ */

static bool is_ascii_alnum(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* rouge_score's tokenize: lowercase, every run of [^a-z0-9] is a break. */
static bool rouge_tokens(const char *text, size_t size, word_list *out) {
    size_t i = 0;
    char buffer[256];
    while (i < size) {
        while (i < size && !is_ascii_alnum(text[i])) i++;
        size_t start = i;
        while (i < size && is_ascii_alnum(text[i])) i++;
        if (i == start) continue;
        size_t len = i - start;
        char *word = len < sizeof buffer ? buffer : malloc(len + 1);
        if (!word) return false;
        for (size_t k = 0; k < len; k++) word[k] = (char)tolower((unsigned char)text[start + k]);
        bool ok = words_push(out, word, len);
        if (word != buffer) free(word);
        if (!ok) return false;
    }
    return true;
}

static double f_measure(double precision, double recall) {
    return precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0.0;
}

static double rouge_n(const word_list *ref, const word_list *hyp, size_t n) {
    size_t ref_total = ref->n >= n ? ref->n - n + 1 : 0, hyp_total = hyp->n >= n ? hyp->n - n + 1 : 0;
    size_t overlap = clipped_matches(hyp, ref, n);
    double precision = (double)overlap / (double)(hyp_total ? hyp_total : 1);
    double recall = (double)overlap / (double)(ref_total ? ref_total : 1);
    return f_measure(precision, recall);
}

/* Indices into ref of one longest common subsequence, backtracked as
 * rouge_score's _backtrack_norec does (ties step left in the candidate). */
static bool lcs_indices(const word_list *ref, const word_list *can, bool *in_union) {
    size_t rows = ref->n, cols = can->n;
    size_t cells;
    if (!tm_mul_size(rows + 1, cols + 1, &cells)) return false;
    uint32_t *table = calloc(cells, sizeof *table);
    if (!table) return false;
#define T(i, j) table[(i) * (cols + 1) + (j)]
    for (size_t i = 1; i <= rows; i++)
        for (size_t j = 1; j <= cols; j++)
            T(i, j) = !strcmp(ref->words[i - 1], can->words[j - 1]) ? T(i - 1, j - 1) + 1
                      : (T(i - 1, j) > T(i, j - 1) ? T(i - 1, j) : T(i, j - 1));
    size_t i = rows, j = cols;
    while (i > 0 && j > 0) {
        if (!strcmp(ref->words[i - 1], can->words[j - 1])) {
            in_union[i - 1] = true;
            i--;
            j--;
        } else if (T(i, j - 1) > T(i - 1, j)) {
            j--;
        } else {
            i--;
        }
    }
#undef T
    free(table);
    return true;
}

/* Sentences: lm-evaluation-harness turns " . " into ".\n", rouge_score's
 * rougeLsum splits on newlines. */
static bool lsum_sentences(const char *text, word_list **sentences, size_t *n) {
    size_t size = strlen(text);
    char *prepared = malloc(size + 1);
    if (!prepared) return false;
    size_t len = 0;
    for (size_t i = 0; i < size;) {
        if (i + 3 <= size && !memcmp(text + i, " . ", 3)) {
            prepared[len++] = '.';
            prepared[len++] = '\n';
            i += 3;
        } else {
            prepared[len++] = text[i++];
        }
    }
    size_t count = 1;
    for (size_t i = 0; i < len; i++) count += prepared[i] == '\n';
    word_list *out = calloc(count, sizeof *out);
    if (!out) {
        free(prepared);
        return false;
    }
    size_t k = 0, start = 0;
    bool ok = true;
    for (size_t i = 0; i <= len && ok; i++) {
        if (i == len || prepared[i] == '\n') {
            word_list sentence = {0};
            ok = rouge_tokens(prepared + start, i - start, &sentence);
            if (ok && sentence.n) out[k++] = sentence;
            else words_free(&sentence);
            start = i + 1;
        }
    }
    free(prepared);
    if (!ok) {
        for (size_t i = 0; i < k; i++) words_free(&out[i]);
        free(out);
        return false;
    }
    *sentences = out;
    *n = k;
    return true;
}

/* Count of word in a list of sentences, minus what has been used. */
typedef struct {
    const char *word;
    long count;
} word_count;

static long *count_slot(word_count *counts, size_t *n, const char *word) {
    for (size_t i = 0; i < *n; i++)
        if (!strcmp(counts[i].word, word)) return &counts[i].count;
    counts[*n].word = word;
    counts[*n].count = 0;
    return &counts[(*n)++].count;
}

static bool rouge_lsum(const char *reference, const char *prediction, double *out) {
    word_list *refs = NULL, *cans = NULL;
    size_t n_refs = 0, n_cans = 0;
    bool ok = lsum_sentences(reference, &refs, &n_refs) && lsum_sentences(prediction, &cans, &n_cans);
    word_count *ref_counts = NULL, *can_counts = NULL;
    size_t m = 0, n = 0, n_ref_counts = 0, n_can_counts = 0, hits = 0;
    for (size_t i = 0; ok && i < n_refs; i++) m += refs[i].n;
    for (size_t i = 0; ok && i < n_cans; i++) n += cans[i].n;
    *out = 0;
    if (ok && m && n) {
        ref_counts = calloc(m, sizeof *ref_counts);
        can_counts = calloc(n, sizeof *can_counts);
        ok = ref_counts && can_counts;
        for (size_t i = 0; ok && i < n_refs; i++)
            for (size_t k = 0; k < refs[i].n; k++) (*count_slot(ref_counts, &n_ref_counts, refs[i].words[k]))++;
        for (size_t i = 0; ok && i < n_cans; i++)
            for (size_t k = 0; k < cans[i].n; k++) (*count_slot(can_counts, &n_can_counts, cans[i].words[k]))++;
        for (size_t r = 0; ok && r < n_refs; r++) {
            bool *in_union = calloc(refs[r].n, sizeof *in_union);
            ok = in_union != NULL;
            for (size_t c = 0; ok && c < n_cans; c++) ok = lcs_indices(&refs[r], &cans[c], in_union);
            for (size_t k = 0; ok && k < refs[r].n; k++) {
                if (!in_union[k]) continue;
                long *cc = count_slot(can_counts, &n_can_counts, refs[r].words[k]);
                long *rc = count_slot(ref_counts, &n_ref_counts, refs[r].words[k]);
                if (*cc > 0 && *rc > 0) {
                    hits++;
                    (*cc)--;
                    (*rc)--;
                }
            }
            free(in_union);
        }
        if (ok) *out = f_measure((double)hits / (double)n, (double)hits / (double)m);
    }
    for (size_t i = 0; i < n_refs; i++) words_free(&refs[i]);
    for (size_t i = 0; i < n_cans; i++) words_free(&cans[i]);
    free(refs);
    free(cans);
    free(ref_counts);
    free(can_counts);
    return ok;
}

tm_status tm_overlap_rouge_scores(const char *reference, const char *prediction, tm_overlap_rouge *out,
                                  tm_error *err) {
    *out = (tm_overlap_rouge){0};
    if (!tm_utf8_valid(reference, strlen(reference)) || !tm_utf8_valid(prediction, strlen(prediction)))
        return tm_error_set(err, TM_ERR_FORMAT, "text for ROUGE is not UTF-8");
    word_list ref = {0}, hyp = {0};
    bool ok = rouge_tokens(reference, strlen(reference), &ref) && rouge_tokens(prediction, strlen(prediction), &hyp);
    double lsum = 0;
    if (ok) {
        out->rouge1 = 100 * rouge_n(&ref, &hyp, 1);
        out->rouge2 = 100 * rouge_n(&ref, &hyp, 2);
        ok = rouge_lsum(reference, prediction, &lsum);
        out->rougeL = 100 * lsum;
    }
    words_free(&ref);
    words_free(&hyp);
    return ok ? TM_OK : tm_error_set(err, TM_ERR_NOMEM, "out of memory computing ROUGE");
}
