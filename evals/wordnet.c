/* WordNet 3.0 read from its own files (Debian's wordnet-base installs them
 * under /usr/share/wordnet): index.{noun,verb,adj,adv} list each lemma with
 * the byte offsets of its synsets, and the line at that offset in data.<pos>
 * lists the synset's words ("02084071 05 n 03 dog 0 domestic_dog 0 ..."; the
 * word count is hexadecimal, adjectives may carry a marker like "(a)"). The
 * synonyms of a word are the single-word members of every synset of every
 * part of speech it has. Everything is read once at open into sorted tables,
 * so lookups are thread-safe and need no locking. The files are untrusted:
 * every offset and count is checked; a malformed line is an error naming
 * the file and line. Nothing here prints. */
#include "tracemark/evals.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *word;
    char **synonyms;
    size_t n_synonyms;
} lemma;

struct tm_wordnet {
    lemma *lemmas;
    size_t n_lemmas;
};

static const char *const parts[4] = {"noun", "verb", "adj", "adv"};

typedef struct {
    char *word; /* owned by the lemma table once grouped */
    uint8_t part;
    uint64_t offset;
} index_entry;

static int compare_entries(const void *a, const void *b) {
    const index_entry *x = a, *y = b;
    int c = strcmp(x->word, y->word);
    if (c) return c;
    if (x->part != y->part) return x->part < y->part ? -1 : 1;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

static int compare_strings(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* A single word: letters, digits, '-' and '\'' only (no '_' of multiword lemmas). */
static bool single_word(const char *s, size_t n) {
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '\'')) return false;
    return true;
}

static tm_status read_index(const char *folder, uint8_t part, index_entry **entries, size_t *n, size_t *capacity,
                            tm_error *err) {
    char path[TM_EVAL_PATH_MAX];
    snprintf(path, sizeof path, "%s/index.%s", folder, parts[part]);
    char *text = NULL;
    size_t size = 0;
    if (tm_read_file(path, &text, &size, err)) return tm_error_prefix(err, "WordNet");
    size_t line_no = 0;
    tm_status status = TM_OK;
    for (char *line = text; !status && line < text + size;) {
        char *end = memchr(line, '\n', (size_t)(text + size - line));
        if (!end) end = text + size;
        *end = '\0';
        line_no++;
        if (line[0] != ' ' && line[0] != '\0') {
            /* lemma pos synset_cnt p_cnt [ptr_symbol...] sense_cnt tagsense_cnt synset_offset... */
            char *save = NULL, *word = strtok_r(line, " ", &save), *pos = strtok_r(NULL, " ", &save);
            char *synsets = strtok_r(NULL, " ", &save), *pointers = strtok_r(NULL, " ", &save);
            long n_synsets = synsets ? strtol(synsets, NULL, 10) : -1;
            long n_pointers = pointers ? strtol(pointers, NULL, 10) : -1;
            if (!word || !pos || n_synsets < 1 || n_synsets > 1000 || n_pointers < 0 || n_pointers > 1000) {
                status = tm_error_set(err, TM_ERR_FORMAT, "%s:%zu: malformed index line", path, line_no);
                break;
            }
            for (long k = 0; k < n_pointers + 2 && strtok_r(NULL, " ", &save); k++) {}
            bool keep = single_word(word, strlen(word));
            for (long k = 0; k < n_synsets; k++) {
                char *offset = strtok_r(NULL, " ", &save);
                if (!offset || strlen(offset) != 8) {
                    status = tm_error_set(err, TM_ERR_FORMAT, "%s:%zu: malformed synset offset", path, line_no);
                    break;
                }
                if (!keep) continue;
                if (*n == *capacity) {
                    size_t grown = *capacity ? *capacity * 2 : 1 << 16;
                    index_entry *bigger = realloc(*entries, grown * sizeof *bigger);
                    if (!bigger) {
                        status = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
                        break;
                    }
                    *entries = bigger;
                    *capacity = grown;
                }
                char *copy = strdup(word);
                if (!copy) {
                    status = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
                    break;
                }
                (*entries)[(*n)++] = (index_entry){copy, part, strtoull(offset, NULL, 10)};
            }
        }
        line = end + 1;
    }
    free(text);
    return status;
}

/* The words of the synset at offset of data.<part>; *n words into out (at most cap). */
static tm_status synset_words(const char *data, size_t size, const char *path, uint64_t offset, char words[][64],
                              size_t cap, size_t *n, tm_error *err) {
    *n = 0;
    if (offset >= size || (offset > 0 && data[offset - 1] != '\n'))
        return tm_error_set(err, TM_ERR_FORMAT, "%s: synset offset %llu is not the start of a line", path,
                            (unsigned long long)offset);
    const char *p = data + offset, *end = memchr(p, '\n', size - offset);
    if (!end) end = data + size;
    char line[512];
    size_t len = (size_t)(end - p) < sizeof line - 1 ? (size_t)(end - p) : sizeof line - 1;
    memcpy(line, p, len);
    line[len] = '\0';
    char *save = NULL, *off = strtok_r(line, " ", &save);
    strtok_r(NULL, " ", &save); /* lex_filenum */
    strtok_r(NULL, " ", &save); /* ss_type */
    char *count = strtok_r(NULL, " ", &save);
    if (!off || strtoull(off, NULL, 10) != offset || !count)
        return tm_error_set(err, TM_ERR_FORMAT, "%s: synset at offset %llu does not start with its offset", path,
                            (unsigned long long)offset);
    long w = strtol(count, NULL, 16);
    if (w < 1 || w > 255) return tm_error_set(err, TM_ERR_FORMAT, "%s: synset %llu: bad word count", path, (unsigned long long)offset);
    for (long k = 0; k < w; k++) {
        char *word = strtok_r(NULL, " ", &save);
        if (!word || !strtok_r(NULL, " ", &save))
            return tm_error_set(err, TM_ERR_FORMAT, "%s: synset %llu: truncated word list", path, (unsigned long long)offset);
        char *marker = strchr(word, '(');
        if (marker) *marker = '\0';
        size_t wl = strlen(word);
        if (!single_word(word, wl) || wl >= 64 || *n == cap) continue;
        for (size_t i = 0; i < wl; i++) words[*n][i] = (char)tolower((unsigned char)word[i]);
        words[*n][wl] = '\0';
        (*n)++;
    }
    return TM_OK;
}

tm_status tm_wordnet_open(tm_wordnet **out, const char *folder, tm_error *err) {
    *out = NULL;
    index_entry *entries = NULL;
    size_t n = 0, capacity = 0;
    tm_status status = TM_OK;
    for (uint8_t part = 0; !status && part < 4; part++) status = read_index(folder, part, &entries, &n, &capacity, err);
    tm_mapped_file data[4];
    memset(data, 0, sizeof data);
    char paths[4][TM_EVAL_PATH_MAX];
    for (int part = 0; !status && part < 4; part++) {
        snprintf(paths[part], sizeof paths[part], "%s/data.%s", folder, parts[part]);
        status = tm_mapped_file_open(&data[part], paths[part], err);
        if (status) tm_error_prefix(err, "WordNet");
    }
    tm_wordnet *wn = status ? NULL : calloc(1, sizeof *wn);
    if (!status && !wn) status = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    if (!status) {
        qsort(entries, n, sizeof *entries, compare_entries);
        wn->lemmas = calloc(n ? n : 1, sizeof *wn->lemmas);
        if (!wn->lemmas) status = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; !status && i < n;) {
        size_t j = i;
        while (j < n && !strcmp(entries[j].word, entries[i].word)) j++;
        lemma *l = &wn->lemmas[wn->n_lemmas++];
        l->word = entries[i].word;
        entries[i].word = NULL;
        size_t syn_cap = 0;
        for (size_t k = i; !status && k < j; k++) {
            char words[64][64];
            size_t nw = 0;
            status = synset_words((const char *)data[entries[k].part].data, data[entries[k].part].size,
                                  paths[entries[k].part], entries[k].offset, words, 64, &nw, err);
            for (size_t q = 0; !status && q < nw; q++) {
                if (!strcmp(words[q], l->word)) continue;
                if (l->n_synonyms == syn_cap) {
                    syn_cap = syn_cap ? syn_cap * 2 : 8;
                    char **bigger = realloc(l->synonyms, syn_cap * sizeof *bigger);
                    if (!bigger) {
                        status = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
                        break;
                    }
                    l->synonyms = bigger;
                }
                if (!(l->synonyms[l->n_synonyms++] = strdup(words[q]))) status = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
            }
        }
        /* Sorted and unique, so the synonym a seed picks never depends on file order quirks. */
        if (l->n_synonyms) {
            qsort(l->synonyms, l->n_synonyms, sizeof *l->synonyms, compare_strings);
            size_t u = 1;
            for (size_t q = 1; q < l->n_synonyms; q++) {
                if (strcmp(l->synonyms[q], l->synonyms[u - 1])) l->synonyms[u++] = l->synonyms[q];
                else free(l->synonyms[q]);
            }
            l->n_synonyms = u;
        }
        for (size_t k = i + 1; k < j; k++) free(entries[k].word), entries[k].word = NULL;
        i = j;
    }
    for (size_t i = 0; i < n; i++) free(entries[i].word);
    free(entries);
    for (int part = 0; part < 4; part++) tm_mapped_file_close(&data[part]);
    if (!status && wn->n_lemmas == 0) status = tm_error_set(err, TM_ERR_FORMAT, "%s: WordNet without lemmas", folder);
    if (status) {
        tm_wordnet_free(wn);
        return status;
    }
    *out = wn;
    return TM_OK;
}

void tm_wordnet_free(tm_wordnet *wn) {
    if (!wn) return;
    for (size_t i = 0; i < wn->n_lemmas; i++) {
        for (size_t k = 0; k < wn->lemmas[i].n_synonyms; k++) free(wn->lemmas[i].synonyms[k]);
        free(wn->lemmas[i].synonyms);
        free(wn->lemmas[i].word);
    }
    free(wn->lemmas);
    free(wn);
}

const char *const *tm_wordnet_synonyms(const tm_wordnet *wn, const char *word, size_t *n) {
    *n = 0;
    size_t a = 0, b = wn->n_lemmas;
    while (a < b) {
        size_t m = a + (b - a) / 2;
        int c = strcmp(wn->lemmas[m].word, word);
        if (c == 0) {
            *n = wn->lemmas[m].n_synonyms;
            return (const char *const *)wn->lemmas[m].synonyms;
        }
        if (c < 0) a = m + 1;
        else b = m;
    }
    return NULL;
}

size_t tm_wordnet_lemma_count(const tm_wordnet *wn) { return wn->n_lemmas; }
const char *tm_wordnet_lemma(const tm_wordnet *wn, size_t i) { return i < wn->n_lemmas ? wn->lemmas[i].word : NULL; }
