/* The EXP-edit / ITS-edit detector (Kuditipudi, Thickstun, Hashimoto, Liang
 * 2023): it scores a text by how well it aligns with the key sequence xi
 * under a Levenshtein-style cost that tolerates inserted, deleted and
 * substituted tokens, and turns that score into a p-value with a permutation
 * test over pseudo-random keys derived from a public seed. Definitions
 * (docs/schemes/exp-edit.md, "Detection statistic and permutation test"):
 * per-pair cost d(y, j) = log(1 - xi[j][y]) for EXP and |u_j - eta(y)| for
 * ITS; d_gamma is the edit distance with gap cost gamma (EXP 2.0, ITS 0.4);
 * phi = min over the text's blocks of k <= 256 tokens and over every
 * substring of the extended key (rows 0 .. n + 2k - 1, taken mod n) of
 * d_gamma(block, substring). The minimum over every key substring at once is
 * one "fitting alignment" pass of k x (n + 2k) cells, which is what makes
 * 999 keys affordable; the paper's min over fixed windows of exactly k rows
 * would cost n times more. The hot loops (cost tables, the alignment) are
 * hand-written because they are the product and the measured bottleneck.
 * This file must never print, abort or trust a length it has not checked;
 * p-values are exact in the permutation sense: (1 + #{phi_i <= phi}) / (T + 1). */
#include "detect_internal.h"
#include "exp_edit_fast.h"

#include <math.h>
#include <openssl/evp.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <stdlib.h>
#include <string.h>

enum {
    /* Tokens per block: a text up to this long is aligned whole (the paper's
     * k = text length); a longer one in blocks of this size, half overlapping. */
    EXP_EDIT_BLOCK_MAX = 256,
    /* Scored tokens at most: the cost grows linearly with the text, and a
     * document beyond this is scored on its first tokens. */
    EXP_EDIT_SCORED_MAX = 4096,
    /* Keys aligned side by side: independent lanes the compiler vectorises
     * and the CPU overlaps, where one key alone is a chain of dependent minima. */
    LANES = 4,
};

/* Gap (insertion or deletion) cost. Each decoder's cost scale differs: EXP
 * pairs cost log(1 - xi) in (-inf, 0) with mean -1 off the watermark, ITS
 * pairs |u - eta| in (0, 1) with mean 1/3. ITS takes the paper's 0.4; EXP
 * needs a positive gap cost here because every key substring is allowed (the
 * paper's gamma = 0 relies on windows of exactly k rows), and 2.0 was the most
 * powerful of 0.25..8 under 10% and 20% insertions and deletions, as 0.4 was
 * (with 0.8) of 0.1..3.2 for ITS (docs/schemes/exp-edit.md has the runs). */
static const double GAP_EXP = 2.0, GAP_ITS = 0.4;

/* Largest cost table allowed (EXP: distinct tokens x n rows x lanes doubles). */
static const size_t TABLE_BYTES_MAX = (size_t)256 << 20;

static const char NULL_KEY_TAG[] = "tracemark-exp-edit-null";

typedef struct {
    bool its;
    double gap;
    size_t n_rows;       /* n, the key sequence length */
    size_t block;        /* k */
    size_t n_blocks;
    size_t n_text;       /* tokens scored */
    size_t n_distinct;
    uint32_t *index;     /* per scored token: its distinct-token index */
    int32_t *distinct;   /* the distinct tokens, in order of first appearance */
    double *cost;        /* EXP: [distinct][row][lane] log(1 - xi) */
    double *eta;         /* ITS: [distinct][lane] */
    double *u;           /* ITS: [row][lane] */
    double *previous, *current; /* one DP row each: [0 .. n + 2k][lane] */
    EVP_MD *sha256; /* fetched once: EVP_sha256() in EVP_Digest fetches it anew at every null key */
} aligner;

static void aligner_free(aligner *a) {
    free(a->index);
    free(a->distinct);
    free(a->cost);
    free(a->eta);
    free(a->u);
    free(a->previous);
    free(a->current);
    EVP_MD_free(a->sha256);
}

/* Distinct tokens of the text by open addressing (the vocabulary may be large
 * and sparse, so no array indexed by token id). */
static tm_status index_tokens(aligner *a, const int32_t *tokens, tm_error *err) {
    size_t capacity = 16;
    while (capacity < 2 * a->n_text) capacity *= 2;
    size_t *slots = tm_alloc_array(capacity, sizeof *slots, err); /* distinct index + 1; 0 = empty */
    a->index = tm_alloc_array(a->n_text, sizeof *a->index, err);
    a->distinct = tm_alloc_array(a->n_text, sizeof *a->distinct, err);
    if (!slots || !a->index || !a->distinct) {
        free(slots);
        return TM_ERR_NOMEM;
    }
    for (size_t i = 0; i < a->n_text; i++) {
        size_t slot = ((uint32_t)tokens[i] * UINT32_C(2654435761)) & (capacity - 1);
        while (slots[slot] && a->distinct[slots[slot] - 1] != tokens[i]) slot = (slot + 1) & (capacity - 1);
        if (!slots[slot]) {
            a->distinct[a->n_distinct] = tokens[i];
            slots[slot] = ++a->n_distinct;
        }
        a->index[i] = (uint32_t)(slots[slot] - 1);
    }
    free(slots);
    return TM_OK;
}

static tm_status aligner_init(aligner *a, const tm_wm_scheme *scheme, const int32_t *tokens, size_t n_text,
                              tm_error *err) {
    const tm_wm_config *config = tm_wm_scheme_config(scheme);
    a->its = config->decoder == TM_WM_DECODER_ITS;
    a->gap = a->its ? GAP_ITS : GAP_EXP;
    a->n_rows = (size_t)config->sequence_length;
    a->n_text = n_text;
    a->block = n_text < EXP_EDIT_BLOCK_MAX ? n_text : EXP_EDIT_BLOCK_MAX;
    size_t stride = EXP_EDIT_BLOCK_MAX / 2;
    a->n_blocks = n_text <= a->block ? 1 : (n_text - a->block + stride - 1) / stride + 1;
    tm_status status = index_tokens(a, tokens, err);
    if (status != TM_OK) return status;
    a->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL); /* NULL: null_secret falls back to EVP_sha256() */
    size_t columns = a->n_rows + 2 * a->block + 1; /* no overflow: n <= 65536, k <= 256 */
    a->previous = tm_alloc_array(columns * LANES, sizeof(double), err);
    a->current = tm_alloc_array(columns * LANES, sizeof(double), err);
    if (!a->previous || !a->current) return TM_ERR_NOMEM;
    if (a->its) {
        a->eta = tm_alloc_array(a->n_distinct * LANES, sizeof(double), err);
        a->u = tm_alloc_array(a->n_rows * LANES, sizeof(double), err);
        return a->eta && a->u ? TM_OK : TM_ERR_NOMEM;
    }
    size_t cells, bytes;
    if (!tm_mul_size(a->n_distinct, a->n_rows, &cells) || !tm_mul_size(cells, LANES * sizeof(double), &bytes) ||
        bytes > TABLE_BYTES_MAX)
        return tm_error_set(err, TM_ERR_LIMIT,
                            "EXP-edit detection: %zu distinct tokens x sequence length %zu exceed the %zu MiB cost "
                            "table",
                            a->n_distinct, a->n_rows, TABLE_BYTES_MAX >> 20);
    a->cost = tm_alloc_array(cells * LANES, sizeof(double), err);
    return a->cost ? TM_OK : TM_ERR_NOMEM;
}

/* ---- the key sequences of one lane ------------------------------------------------- */

/* The scheme's own key sequence (the key under test, and ITS's null keys). */
static void load_scheme(aligner *a, size_t lane, const tm_wm_scheme *scheme) {
    if (a->its) {
        for (size_t t = 0; t < a->n_distinct; t++) a->eta[t * LANES + lane] = tm_wm_xi(scheme, 0, a->distinct[t]);
        for (size_t r = 0; r < a->n_rows; r++) a->u[r * LANES + lane] = tm_wm_its_uniform(scheme, (int32_t)r);
        return;
    }
    /* 1 - xi is exact: xi is an odd multiple of 2^-53 (tm_wm_uniform). */
    for (size_t t = 0; t < a->n_distinct; t++)
        for (size_t r = 0; r < a->n_rows; r++)
            a->cost[(t * a->n_rows + r) * LANES + lane] = log(1.0 - tm_wm_xi(scheme, (int32_t)r, a->distinct[t]));
}

/* An EXP null key's cost table from xoshiro256** seeded with the key's 32
 * secret bytes. Each cell is log(v), v = tm_wm_uniform(next output), which is
 * distributed exactly as 1 - xi is under a real key (the same lattice of odd
 * multiples of 2^-53, mirrored): the null keys differ from real ones only in
 * not being the keyed PRF, which costs 13 ns per value against 1 ns here and
 * would triple the time of the whole test. */
static void load_stream(aligner *a, size_t lane, const uint8_t secret[32]) {
    tm_rng rng;
    for (int w = 0; w < 4; w++) {
        uint64_t word = 0;
        for (int b = 0; b < 8; b++) word |= (uint64_t)secret[8 * w + b] << (8 * b);
        rng.s[w] = word;
    }
    if (!(rng.s[0] | rng.s[1] | rng.s[2] | rng.s[3])) rng.s[0] = 1; /* xoshiro's one forbidden state */
    size_t cells = a->n_distinct * a->n_rows;
    for (size_t c = 0; c < cells; c++) a->cost[c * LANES + lane] = log(tm_wm_uniform(tm_rng_next(&rng)));
}

/* Null key `index`'s secret: SHA-256(tag || seed || index), both u64 little-endian. */
static void null_secret(const aligner *a, uint64_t seed, uint64_t index, uint8_t secret[32]) {
    uint8_t message[sizeof NULL_KEY_TAG - 1 + 16];
    memcpy(message, NULL_KEY_TAG, sizeof NULL_KEY_TAG - 1);
    for (int b = 0; b < 8; b++) {
        message[sizeof NULL_KEY_TAG - 1 + b] = (uint8_t)(seed >> (8 * b));
        message[sizeof NULL_KEY_TAG - 1 + 8 + b] = (uint8_t)(index >> (8 * b));
    }
    unsigned int size = 0;
    EVP_Digest(message, sizeof message, secret, &size, a->sha256 ? a->sha256 : EVP_sha256(), NULL);
}

static tm_status load_null(aligner *a, size_t lane, const tm_wm_config *config, uint64_t seed, uint64_t index,
                           tm_error *err) {
    uint8_t secret[32];
    null_secret(a, seed, index, secret);
    if (!a->its) {
        load_stream(a, lane, secret);
        return TM_OK;
    }
    tm_wm_key *key = NULL;
    tm_wm_scheme *scheme = NULL;
    tm_status status = tm_wm_key_from_secret(&key, secret, err);
    if (status == TM_OK) status = tm_wm_scheme_create(&scheme, config, key, err);
    if (status == TM_OK) load_scheme(a, lane, scheme);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
    return status;
}

/* ---- the alignment ------------------------------------------------------------------- */

/* One row of align_block's recurrence (below) over every column, for every lane: with
 * pair(r) the cost of the token against key row (r - 1) mod n,
 * E[i][r] = min(E[i-1][r-1] + pair(r) - gamma, E[i-1][r] + gamma, E[i][r-1]).
 * ITS passes eta (the token's value per lane) and costs = u per row; EXP
 * passes eta = NULL and costs = the token's pair costs per row. SSE2 (every
 * x86-64) where the compiler has it, because GCC does not vectorise the lanes
 * of this loop by itself; the plain loop computes the same minima otherwise. */
static void align_row(const double *restrict previous, double *restrict current, const double *restrict costs,
                      const double *restrict eta, size_t n, size_t columns, double gap) {
    size_t row = 0; /* (r - 1) mod n */
#if defined(__SSE2__)
    enum { VECTORS = LANES / 2 };
    const __m128d gaps = _mm_set1_pd(gap), sign = _mm_set1_pd(-0.0);
    __m128d left[VECTORS], diagonal_base[VECTORS], eta_v[VECTORS];
    for (size_t v = 0; v < VECTORS; v++) {
        left[v] = _mm_loadu_pd(current + 2 * v);
        diagonal_base[v] = _mm_loadu_pd(previous + 2 * v);
        eta_v[v] = eta ? _mm_loadu_pd(eta + 2 * v) : _mm_setzero_pd();
    }
    for (size_t r = 1; r <= columns; r++) {
        const double *c = costs + row * LANES;
        for (size_t v = 0; v < VECTORS; v++) {
            __m128d pair = _mm_loadu_pd(c + 2 * v);
            if (eta) pair = _mm_andnot_pd(sign, _mm_sub_pd(pair, eta_v[v])); /* |u - eta| */
            __m128d above = _mm_loadu_pd(previous + r * LANES + 2 * v);
            __m128d diagonal = _mm_add_pd(diagonal_base[v], _mm_sub_pd(pair, gaps));
            __m128d value = _mm_min_pd(diagonal, _mm_add_pd(above, gaps));
            left[v] = _mm_min_pd(value, left[v]);
            _mm_storeu_pd(current + r * LANES + 2 * v, left[v]);
            diagonal_base[v] = above;
        }
        if (++row == n) row = 0;
    }
#else
    for (size_t r = 1; r <= columns; r++) {
        const double *c = costs + row * LANES;
        for (size_t l = 0; l < LANES; l++) {
            double pair = eta ? fabs(c[l] - eta[l]) : c[l];
            double diagonal = previous[(r - 1) * LANES + l] + (pair - gap);
            double up = previous[r * LANES + l] + gap;
            double value = diagonal < up ? diagonal : up;
            double left = current[(r - 1) * LANES + l];
            current[r * LANES + l] = value < left ? value : left;
        }
        if (++row == n) row = 0;
    }
#endif
}

/* d_gamma of y = tokens[start .. start + k) against every substring of the
 * extended key at once, for every lane. With D[i][r] the least cost of
 * aligning y[0..i) with a key substring ending at row r, the recurrence is
 * D[0][r] = 0 (any start), D[i][0] = i gamma,
 * D[i][r] = min(D[i-1][r-1] + d(y_i, r-1), D[i-1][r] + gamma, D[i][r-1] + gamma),
 * and the block's value is min_r D[k][r] (any end). It is stored as
 * E[i][r] = D[i][r] - r gamma, which turns the within-row term into a plain
 * running minimum, the one dependency chain of the loop. */
static void align_block(const aligner *a, size_t start, double best[LANES]) {
    const size_t k = a->block, n = a->n_rows, columns = a->n_rows + 2 * a->block;
    const double gap = a->gap;
    double *previous = a->previous, *current = a->current;
    for (size_t r = 0; r <= columns; r++)
        for (size_t l = 0; l < LANES; l++) previous[r * LANES + l] = -(double)r * gap;
    for (size_t i = 1; i <= k; i++) {
        size_t token = a->index[start + i - 1];
        for (size_t l = 0; l < LANES; l++) current[l] = (double)i * gap;
        if (a->its) align_row(previous, current, a->u, a->eta + token * LANES, n, columns, gap);
        else align_row(previous, current, a->cost + token * n * LANES, NULL, n, columns, gap);
        double *swap = previous;
        previous = current;
        current = swap;
    }
    for (size_t l = 0; l < LANES; l++) best[l] = INFINITY;
    for (size_t r = 0; r <= columns; r++)
        for (size_t l = 0; l < LANES; l++) {
            double value = previous[r * LANES + l] + (double)r * gap;
            if (value < best[l]) best[l] = value;
        }
}

/* phi for every lane: the least over the text's blocks (half-overlapping,
 * the last one flush with the end). */
static void align_text(const aligner *a, double phi[LANES]) {
    size_t stride = EXP_EDIT_BLOCK_MAX / 2;
    for (size_t l = 0; l < LANES; l++) phi[l] = INFINITY;
    for (size_t b = 0; b < a->n_blocks; b++) {
        size_t start = b + 1 == a->n_blocks ? a->n_text - a->block : b * stride;
        double best[LANES];
        align_block(a, start, best);
        for (size_t l = 0; l < LANES; l++)
            if (best[l] < phi[l]) phi[l] = best[l];
    }
}

/* ---- the test -------------------------------------------------------------------------- */

/* Whether e exceedances among N null keys detect at fpr with K keys: the
 * arithmetic of detect.c's decision (log p = ln(e + 1) - ln(N + 1), plus
 * ln K, against ln fpr with the 1e-9 allowance), in the same order. */
static bool permutation_detects(uint64_t e, uint64_t n, size_t n_keys, double fpr) {
    double log_p = log((double)(e + 1)) - log((double)(n + 1));
    return fmin(0, log_p + log((double)n_keys)) <= log(fpr) + 1e-9;
}

int32_t tm_detect_permutations_needed(double fpr, size_t n_keys) {
    if (!(fpr > 0 && fpr < 1) || n_keys == 0) return 0;
    double guess = ceil((double)n_keys / fpr * (1 - 1e-9)) - 1;
    if (guess > 1000000) return 0;
    int32_t n = guess < 1 ? 1 : (int32_t)guess;
    while (n > 1 && permutation_detects(0, (uint64_t)n - 1, n_keys, fpr)) n--; /* the fewest, by the decision's own arithmetic */
    while (n <= 1000000 && !permutation_detects(0, (uint64_t)n, n_keys, fpr)) n++;
    return n <= 1000000 ? n : 0;
}

/* The running count of the permutation test, fed the null statistics in
 * null-key order: the same arithmetic whichever path computed them. */
typedef struct {
    double phi, null_sum;
    size_t exceed, done, stopped_at;
    uint64_t stop_at;
    bool sequential;
} tally;

/* Counts one null statistic; true when the sequential test stops at it. */
static bool tally_add(tally *t, double value) {
    t->null_sum += value;
    t->done++;
    t->exceed += value <= t->phi;
    if (t->sequential && t->exceed == t->stop_at) { /* the decision is settled: stop at this null key */
        t->stopped_at = t->done;
        return true;
    }
    return false;
}

/* Spare lanes (count .. LANES - 1) repeat lane count - 1, unused: a copy,
 * where loading the key again would cost its PRF calls or logs again. */
static void copy_spare_lanes(aligner *a, size_t count) {
    size_t from = count - 1;
    for (size_t l = count; l < LANES; l++) {
        if (a->its) {
            for (size_t t = 0; t < a->n_distinct; t++) a->eta[t * LANES + l] = a->eta[t * LANES + from];
            for (size_t r = 0; r < a->n_rows; r++) a->u[r * LANES + l] = a->u[r * LANES + from];
        } else {
            for (size_t c = 0; c < a->n_distinct * a->n_rows; c++) a->cost[c * LANES + l] = a->cost[c * LANES + from];
        }
    }
}

/* The exact (double) statistic of keys[0 .. count), count <= LANES: key 0
 * is the key under test, key j > 0 null key j - 1. */
static tm_status exact_keys(aligner *a, const tm_wm_scheme *scheme, uint64_t seed, const size_t *keys, size_t count,
                            double values[LANES], tm_error *err) {
    const tm_wm_config *config = tm_wm_scheme_config(scheme);
    for (size_t l = 0; l < count; l++) {
        if (keys[l] == 0) load_scheme(a, l, scheme);
        else {
            tm_status status = load_null(a, l, config, seed, keys[l] - 1, err);
            if (status != TM_OK) return status;
        }
    }
    copy_spare_lanes(a, count);
    align_text(a, values);
    return TM_OK;
}

/* The exact path: keys from .. n_keys - 1 through the double alignment, LANES at a time. */
static tm_status run_exact(aligner *a, const tm_wm_scheme *scheme, uint64_t seed, size_t from, size_t n_keys,
                           tally *t, tm_exp_edit_path_stats *stats, tm_error *err) {
    for (size_t first = from; first < n_keys; first += LANES) {
        size_t lanes = n_keys - first < LANES ? n_keys - first : LANES, keys[LANES];
        for (size_t l = 0; l < lanes; l++) keys[l] = first + l;
        double values[LANES];
        tm_status status = exact_keys(a, scheme, seed, keys, lanes, values, err);
        if (status != TM_OK) return status;
        for (size_t l = 0; l < lanes; l++) {
            if (first + l == 0) {
                t->phi = values[l]; /* key 0 is always in lane 0 of the first batch */
                continue;
            }
            stats->exact++;
            if (tally_add(t, values[l])) return TM_OK;
        }
    }
    return TM_OK;
}

/* ---- the fast path ---------------------------------------------------------------------- */

/* A rigorous bound on |fast phi - exact phi| for one lane. The fast path
 * computes H[i][r] = D[i][r] - (r + i) gamma (exp_edit_fast.c), equal to
 * the exact path's recurrence in real arithmetic. With u = 2^-24, M a
 * bound on the magnitude of every value either recurrence forms (exact or
 * float), eps the bound on one table value's error (cost - 2 gamma) and
 * c_lo <= 0 a lower bound on every cost: row 0 is within uM of the real
 * one; each row adds at most eps + 2 |float(gamma) - gamma| + 2uM (the cost,
 * the rounding of d - 2 gamma where it is formed in float, the addition; the
 * minima are exact and a running minimum of values each within e is within
 * e); the last step adds 2uM. So |fast - real| <= 3uM + k (eps + 2
 * |float(gamma) - gamma| + 2uM), and the exact double path is within
 * (3 + 2k) 2^-53 M of the same real value. M: D[i][r] lies in
 * [-i max(gamma, -c_lo), i gamma] (each token matched at cost >= c_lo or
 * deleted at gamma; skipped rows cost gamma >= 0); H or the exact path's
 * D - r gamma adds at most (n + 3k) gamma; a sum adds a cost and 2 gamma
 * (and ITS costs are at most 1). The bound returned is twice the sum, for
 * safety. */
static double lane_bound(const aligner *a, double eps, double cost_min, bool folded) {
    const double u = 0x1.0p-24, ud = 0x1.0p-53, gap = a->gap, k = (double)a->block;
    const double columns = (double)(a->n_rows + 2 * a->block);
    double c_lo = fmin(0.0, cost_min - eps);
    double m = k * fmax(gap, -c_lo) + (columns + k + 2) * gap - c_lo + 2;
    double gap_error = fabs((double)(float)gap - gap);
    /* folded (the coarse tier's cyclic passes): one more rounding a row at
     * most, where a pass folds its second lap back by n gamma. */
    double fast = 3 * u * m + k * (eps + 2 * gap_error + (folded ? 3 : 2) * u * m);
    double exact = (3 + 2 * k) * ud * m;
    return 2 * (fast + exact) + 1e-9;
}

typedef struct {
    float *table, *previous, *current, *row_init, *row_end, *eta, *u;
    tm_exp_edit_fast_text text;
} fast_work;

static void fast_free(fast_work *f) {
    tm_free_aligned(f->table);
    tm_free_aligned(f->previous);
    tm_free_aligned(f->current);
    free(f->row_init);
    free(f->row_end);
    free(f->eta);
    free(f->u);
}

/* A 64-byte aligned table left unzeroed (freed with tm_free_aligned): every
 * cell is written before it is read, and zeroing megabytes would cost more
 * than a short sequential test. */
static float *alloc_floats(size_t count, tm_error *err) {
    size_t bytes;
    if (!tm_mul_size(count, sizeof(float), &bytes) || !tm_add_size(bytes, 63, &bytes)) {
        tm_error_set(err, TM_ERR_NOMEM, "allocation of %zu floats overflows", count);
        return NULL;
    }
    float *p = aligned_alloc(64, bytes & ~(size_t)63);
    if (!p) tm_error_set(err, TM_ERR_NOMEM, "out of memory allocating %zu bytes", bytes);
    return p;
}

/* The fast kernel a path asks for (NONE: the exact path). */
static tm_exp_edit_kernel path_kernel(tm_exp_edit_path path) {
    switch (path) {
    case TM_EXP_EDIT_PATH_AUTO:
        return tm_exp_edit_fast_best();
    case TM_EXP_EDIT_PATH_AVX512:
    case TM_EXP_EDIT_PATH_AVX512_PRECISE:
        return TM_EXP_EDIT_KERNEL_AVX512;
    case TM_EXP_EDIT_PATH_AVX2:
        return TM_EXP_EDIT_KERNEL_AVX2;
    default:
        return TM_EXP_EDIT_KERNEL_NONE;
    }
}

/* The coarse tier's cyclic alignment with a second lap of wrap columns,
 * where that is fewer than the extended key's 2k extra ones and the key is
 * long enough for laps to make sense (else the extended key, as the other
 * tiers); its margin, twice the bound on any value's error with the least
 * cost a lane can have (log 2^-53 > -37), plus one. */
static void fast_set_wrap(fast_work *f, const aligner *a, size_t wrap) {
    bool cyclic = !a->its && wrap > 0 && a->n_rows >= 64 && wrap < a->n_rows && 2 * a->block > wrap;
    f->text.cyclic_wrap = cyclic ? wrap : 0;
    f->text.cyclic_margin = cyclic ? (float)(2 * lane_bound(a, TM_EXP_EDIT_FAST_EPS_COARSE, -37.0, true) + 1) : 0.0f;
}

/* false (nothing allocated) where the fast path cannot run for this text. */
static bool fast_init(fast_work *f, const aligner *a, tm_exp_edit_kernel kernel, tm_error *err) {
    enum { L = TM_EXP_EDIT_FAST_LANES };
    size_t cells, bytes, columns = a->n_rows + 2 * a->block + 1;
    if (!tm_exp_edit_fast_runs(kernel) || !tm_mul_size(a->n_distinct, a->n_rows, &cells) ||
        !tm_mul_size(cells, L * sizeof(float), &bytes) || bytes > TABLE_BYTES_MAX)
        return false;
    f->table = alloc_floats(cells * L, err);
    f->previous = alloc_floats(columns * L, err);
    f->current = alloc_floats(columns * L, err);
    f->row_init = tm_alloc_array(columns, sizeof(float), err);
    f->row_end = tm_alloc_array(columns, sizeof(float), err);
    if (a->its) {
        f->eta = tm_alloc_array(a->n_distinct * L, sizeof(float), err);
        f->u = tm_alloc_array(a->n_rows * L, sizeof(float), err);
    }
    if (!f->table || !f->previous || !f->current || !f->row_init || !f->row_end ||
        (a->its && (!f->eta || !f->u))) {
        fast_free(f);
        memset(f, 0, sizeof *f);
        return false;
    }
    for (size_t r = 0; r < columns; r++) {
        f->row_init[r] = (float)(-(double)r * a->gap); /* H[0][r], rounded once */
        f->row_end[r] = (float)((double)(r + a->block) * a->gap);
    }
    f->text = (tm_exp_edit_fast_text){.index = a->index,
                                      .n_text = a->n_text,
                                      .block = a->block,
                                      .block_stride = EXP_EDIT_BLOCK_MAX / 2,
                                      .n_blocks = a->n_blocks,
                                      .n_rows = a->n_rows,
                                      .gap = (float)a->gap,
                                      .row_init = f->row_init,
                                      .row_end = f->row_end,
                                      .kernel = kernel};
    fast_set_wrap(f, a, TM_EXP_EDIT_FAST_COARSE_WRAP);
    return true;
}

/* Fast values and bounds for null keys first .. first + lanes - 1 (key j:
 * null j - 1), EXP with the coarse tier's log where coarse is set; where
 * coarse_bounds is given, also the bounds the coarse tier would carry for
 * these lanes (for the choice of the next batch's tier). */
static tm_status fast_keys(fast_work *f, const aligner *a, const tm_wm_config *config, uint64_t seed, size_t first,
                           size_t lanes, bool coarse, double values[TM_EXP_EDIT_FAST_LANES],
                           double bounds[TM_EXP_EDIT_FAST_LANES], double *coarse_bounds, tm_error *err) {
    enum { L = TM_EXP_EDIT_FAST_LANES };
    float minimum[L] = {0}, phi[L];
    if (!a->its) {
        uint64_t state[L][4];
        for (size_t l = 0; l < L; l++) {
            uint8_t secret[32];
            null_secret(a, seed, first + (l < lanes ? l : lanes - 1) - 1, secret);
            for (int w = 0; w < 4; w++) {
                uint64_t word = 0;
                for (int b = 0; b < 8; b++) word |= (uint64_t)secret[8 * w + b] << (8 * b);
                state[l][w] = word;
            }
            if (!(state[l][0] | state[l][1] | state[l][2] | state[l][3])) state[l][0] = 1; /* as load_stream */
        }
        tm_exp_edit_fast_align(&f->text, f->table, f->previous, f->current, &state[0][0], coarse, NULL, NULL, phi,
                               minimum);
    } else {
        for (size_t l = 0; l < L; l++) {
            if (l >= lanes) { /* spare lanes repeat the last key, unused: a copy, not its PRF calls again */
                for (size_t t = 0; t < a->n_distinct; t++) f->eta[t * L + l] = f->eta[t * L + lanes - 1];
                for (size_t r = 0; r < a->n_rows; r++) f->u[r * L + l] = f->u[r * L + lanes - 1];
                continue;
            }
            uint8_t secret[32];
            null_secret(a, seed, first + l - 1, secret);
            tm_wm_key *key = NULL;
            tm_wm_scheme *scheme = NULL;
            tm_status status = tm_wm_key_from_secret(&key, secret, err);
            if (status == TM_OK) status = tm_wm_scheme_create(&scheme, config, key, err);
            if (status == TM_OK) {
                for (size_t t = 0; t < a->n_distinct; t++) f->eta[t * L + l] = (float)tm_wm_xi(scheme, 0, a->distinct[t]);
                for (size_t r = 0; r < a->n_rows; r++) f->u[r * L + l] = (float)tm_wm_its_uniform(scheme, (int32_t)r);
            }
            tm_wm_scheme_free(scheme);
            tm_wm_key_free(key);
            if (status != TM_OK) return status;
        }
        tm_exp_edit_fast_align(&f->text, f->table, f->previous, f->current, NULL, false, f->eta, f->u, phi, NULL);
    }
    for (size_t l = 0; l < L; l++) {
        values[l] = phi[l];
        /* EXP: minimum holds the least cost - 2 gamma; adding it back rounds
         * by < 2^-24 41 < 1e-5. A coarse minimum is within its eps of the
         * exact least cost, which lane_bound's c_lo = minimum - eps covers. */
        double cost_min = (double)minimum[l] + 2 * a->gap - 1e-5;
        bounds[l] = a->its ? lane_bound(a, TM_EXP_EDIT_FAST_EPS_ITS, 0.0, false)
                           : coarse ? lane_bound(a, TM_EXP_EDIT_FAST_EPS_COARSE, cost_min, true)
                                    : lane_bound(a, TM_EXP_EDIT_FAST_EPS_EXP, cost_min, false);
        if (coarse_bounds)
            coarse_bounds[l] = a->its ? INFINITY : lane_bound(a, TM_EXP_EDIT_FAST_EPS_COARSE, cost_min, true);
    }
    return TM_OK;
}

/* The fast path: key 0 (the observed statistic) exactly, then the null
 * keys 16 at a time in float; a null key whose fast value is within its
 * bound of phi is recomputed exactly, so each null's side of phi, hence
 * every count, is the exact path's. */
static tm_status run_fast(aligner *a, fast_work *f, tm_exp_edit_kernel kernel, bool allow_coarse,
                          const tm_wm_scheme *scheme, uint64_t seed, size_t n_keys, tally *t,
                          tm_exp_edit_path_stats *stats, tm_error *err) {
    enum { L = TM_EXP_EDIT_FAST_LANES };
    size_t head = 1, key0 = 0;
    tm_status status;
    if (a->its && t->sequential) {
        /* Off the watermark an ITS sequential test usually stops within its
         * first null keys, whose PRF calls cost more than their alignment:
         * the exact path's first batch (key 0 and null keys 0-2 in one
         * double alignment) is then the cheapest way there. */
        head = n_keys < LANES ? n_keys : LANES;
        status = run_exact(a, scheme, seed, 0, head, t, stats, err);
        if (status != TM_OK || t->stopped_at) return status;
    } else {
        double observed[LANES];
        status = exact_keys(a, scheme, seed, &key0, 1, observed, err);
        if (status != TM_OK) return status;
        t->phi = observed[0];
    }
    /* The float work space only now, when the test goes on. */
    if (!fast_init(f, a, kernel, err)) return run_exact(a, scheme, seed, head, n_keys, t, stats, err);
    const tm_wm_config *config = tm_wm_scheme_config(scheme);
    /* ITS null keys cost their PRF calls lane by lane, and a sequential test
     * off the watermark usually stops within a few keys: there the batches
     * grow 4, 8, 16 instead of spending 16 keys' PRF calls at once. EXP's
     * lanes cost nothing apart, so its batches are 16 from the start. */
    size_t batch = a->its && t->sequential ? 4 : L;
    /* EXP's coarse tier (AVX-512, exp_edit_fast.c): a cheaper log and a
     * cyclic key, hence a lower bound of each null statistic with a wider
     * error bound (~7 for 200 tokens, against ~0.2), which still places
     * above phi every null key of a detected text, where null statistics
     * lie tens above phi. A batch with a lane it cannot place (below phi, or
     * within the bound, or a pass it could not settle) runs again on the
     * precise tier. The first batch runs precise, and the next one goes
     * coarse only while the last one's values lay above phi by twice the
     * coarse bound, so texts whose null keys crowd phi (not watermarked, the
     * test soon stopping) run precise only. Which tier settled a key never
     * changes its side of phi: the bounds are rigorous. */
    const bool tiered = !a->its && allow_coarse && tm_exp_edit_fast_coarse_runs(kernel);
    bool coarse = false; /* the first batch precise: it tells where the null keys lie */
    for (size_t first = head; first < n_keys; first += batch, batch = batch * 2 < L ? batch * 2 : L) {
        size_t lanes = n_keys - first < batch ? n_keys - first : batch;
        double values[L], bounds[L], coarse_bounds[L];
        status = fast_keys(f, a, config, seed, first, lanes, coarse, values, bounds, coarse_bounds, err);
        if (status != TM_OK) return status;
        /* A coarse value is a lower bound (up to its bound) of the exact
         * one, not an estimate: it can place a key above phi only. */
        bool placed = true;
        for (size_t l = 0; l < lanes; l++)
            placed &= coarse ? values[l] - bounds[l] > t->phi
                             : values[l] + bounds[l] < t->phi || values[l] - bounds[l] > t->phi;
        if (coarse && !placed) {
            stats->refined++;
            status = fast_keys(f, a, config, seed, first, lanes, false, values, bounds, coarse_bounds, err);
            if (status != TM_OK) return status;
        } else if (coarse) {
            stats->coarse += lanes;
        }
        coarse = tiered;
        for (size_t l = 0; tiered && l < lanes; l++) coarse &= values[l] - t->phi > 2 * coarse_bounds[l];
        /* Counted in order; a key the bound cannot place is computed exactly
         * when the count reaches it, with the next unplaced ones of the batch
         * (LANES at a time), so a test that stops first spends nothing on them. */
        bool unsure[L], exact_done[L] = {false};
        for (size_t l = 0; l < lanes; l++)
            unsure[l] = !(values[l] + bounds[l] < t->phi) && !(values[l] - bounds[l] > t->phi);
        for (size_t l = 0; l < lanes; l++) {
            if (unsure[l] && !exact_done[l]) {
                size_t keys[LANES], at[LANES], count = 0;
                for (size_t j = l; j < lanes && count < LANES; j++)
                    if (unsure[j]) at[count] = j, keys[count++] = first + j;
                double exact[LANES];
                status = exact_keys(a, scheme, seed, keys, count, exact, err);
                if (status != TM_OK) return status;
                for (size_t j = 0; j < count; j++) values[at[j]] = exact[j], exact_done[at[j]] = true;
                stats->exact += count;
                stats->recomputed += count;
            }
            stats->fast += !unsure[l];
            if (tally_add(t, values[l])) return TM_OK;
        }
    }
    return TM_OK;
}

tm_status tm_detect_exp_edit(const tm_wm_scheme *scheme, const int32_t *tokens, size_t n,
                             const tm_detect_options *options, size_t n_detector_keys, tm_detection *out,
                             tm_error *err) {
    return tm_detect_exp_edit_path(scheme, tokens, n, options, n_detector_keys, TM_EXP_EDIT_PATH_AUTO, NULL, out, err);
}

tm_status tm_detect_exp_edit_path(const tm_wm_scheme *scheme, const int32_t *tokens, size_t n,
                                  const tm_detect_options *options, size_t n_detector_keys, tm_exp_edit_path path,
                                  tm_exp_edit_path_stats *stats, tm_detection *out, tm_error *err) {
    tm_exp_edit_path_stats ignored;
    if (!stats) stats = &ignored;
    memset(stats, 0, sizeof *stats);
    const tm_wm_config *config = scheme ? tm_wm_scheme_config(scheme) : NULL;
    if (!config || config->kind != TM_WM_EXP_EDIT || config->sequence_length < 1)
        return tm_error_set(err, TM_ERR_ARGUMENT, "EXP-edit detection needs an EXP-edit scheme with n >= 1");
    if (n_detector_keys == 0) n_detector_keys = 1;
    int32_t needed = tm_detect_permutations_needed(options->fpr, n_detector_keys);
    if (options->permutations < 0 || options->permutations > 1000000)
        return tm_error_set(err, TM_ERR_ARGUMENT, "permutations %d must lie in [1, 1000000] (0: automatic)",
                            options->permutations);
    if (options->permutations == 0 && needed == 0)
        return tm_error_set(err, TM_ERR_LIMIT,
                            "EXP-edit detection at fpr %g with %zu keys needs more than 1000000 permutations",
                            options->fpr, n_detector_keys);
    if (n > 0 && !tokens) return tm_error_set(err, TM_ERR_ARGUMENT, "no tokens given");
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0) return tm_error_set(err, TM_ERR_ARGUMENT, "negative token id %d at index %zu", tokens[i], i);
    size_t permutations = options->permutations > 0 ? (size_t)options->permutations
                                                    : (size_t)(needed > 999 ? needed : 999);
    /* Exceedances that settle "not detected": the least e that does not detect. */
    uint64_t stop_at = 0;
    while (stop_at <= permutations && permutation_detects(stop_at, permutations, n_detector_keys, options->fpr))
        stop_at++;
    out->statistic_name = "edit_alignment";
    out->p_resolution = 1.0 / (double)(permutations + 1);
    out->p_at_floor = false;
    out->p_sequential = false;
    out->permutations_done = 0;
    out->n_scored = n < EXP_EDIT_SCORED_MAX ? n : EXP_EDIT_SCORED_MAX;
    if (out->n_scored == 0) { /* every key aligns the empty text at cost 0: no evidence */
        out->statistic = out->expected = out->log_p = 0.0;
        return TM_OK;
    }

    aligner a = {0};
    tm_status status = aligner_init(&a, scheme, tokens, out->n_scored, err);
    /* Key 0 is the key under test, keys 1..T the null keys (null index i - 1). */
    size_t n_keys = permutations + 1;
    tally t = {.stop_at = stop_at, .sequential = options->sequential && stop_at > 0};
    fast_work f = {0};
    tm_exp_edit_kernel kernel = path_kernel(path);
    if (status == TM_OK && path != TM_EXP_EDIT_PATH_AUTO && path != TM_EXP_EDIT_PATH_EXACT &&
        !tm_exp_edit_fast_runs(kernel))
        status = tm_error_set(err, TM_ERR_UNSUPPORTED, "the %s kernel of EXP-edit detection does not run here",
                              kernel == TM_EXP_EDIT_KERNEL_AVX512 ? "AVX-512"
                              : kernel == TM_EXP_EDIT_KERNEL_AVX2 ? "AVX2"
                                                                  : "requested");
    if (status == TM_OK && kernel != TM_EXP_EDIT_KERNEL_NONE && n_keys > LANES) {
        status = run_fast(&a, &f, kernel, path != TM_EXP_EDIT_PATH_AVX512_PRECISE, scheme, options->permutation_seed,
                          n_keys, &t, stats, err);
        fast_free(&f);
    } else if (status == TM_OK) {
        status = run_exact(&a, scheme, options->permutation_seed, 0, n_keys, &t, stats, err);
    }
    aligner_free(&a);
    if (status != TM_OK) return status;
    size_t exceed = t.exceed, done = t.done;
    out->statistic = t.phi;
    out->expected = t.null_sum / (double)done;
    out->permutations_done = done;
    if (t.stopped_at && done < permutations) {
        /* Besag & Clifford (1991): stopped at the h-th exceedance among l null
         * keys, p = h / l is a valid p-value; the full test's p is at least
         * (h + 1) / (N + 1), so the larger of the two is vouched for. */
        double bc = log((double)exceed) - log((double)done);
        double floor_full = log((double)(exceed + 1)) - log((double)(permutations + 1));
        out->log_p = fmax(bc, floor_full);
        out->p_sequential = true;
    } else {
        out->log_p = log((double)(exceed + 1)) - log((double)(permutations + 1));
    }
    out->p_at_floor = exceed == 0;
    return TM_OK;
}

tm_status tm_detect_exp_edit_nulls(const tm_wm_scheme *scheme, const int32_t *tokens, size_t n, uint64_t seed,
                                   uint64_t first, size_t count, tm_exp_edit_path path, size_t coarse_wrap,
                                   double *exact, double *fast, double *bound, tm_error *err) {
    bool coarse = coarse_wrap > 0;
    const tm_wm_config *config = scheme ? tm_wm_scheme_config(scheme) : NULL;
    if (!config || config->kind != TM_WM_EXP_EDIT || config->sequence_length < 1 || !tokens || n == 0 ||
        count == 0 || count > TM_EXP_EDIT_FAST_LANES)
        return tm_error_set(err, TM_ERR_ARGUMENT, "EXP-edit null values: bad arguments");
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0) return tm_error_set(err, TM_ERR_ARGUMENT, "negative token id %d at index %zu", tokens[i], i);
    aligner a = {0};
    fast_work f = {0};
    tm_status status = aligner_init(&a, scheme, tokens, n < EXP_EDIT_SCORED_MAX ? n : EXP_EDIT_SCORED_MAX, err);
    tm_exp_edit_kernel kernel = path == TM_EXP_EDIT_PATH_EXACT ? TM_EXP_EDIT_KERNEL_NONE : path_kernel(path);
    if (status == TM_OK && coarse && (a.its || !tm_exp_edit_fast_coarse_runs(kernel)))
        status = tm_error_set(err, TM_ERR_UNSUPPORTED, "no coarse tier here (EXP on the AVX-512 kernel only)");
    if (status == TM_OK && !fast_init(&f, &a, kernel, err))
        status = tm_error_set(err, TM_ERR_UNSUPPORTED, "the fast path does not run here");
    if (status == TM_OK && coarse) fast_set_wrap(&f, &a, coarse_wrap);
    double values[TM_EXP_EDIT_FAST_LANES], bounds[TM_EXP_EDIT_FAST_LANES];
    if (status == TM_OK)
        status = fast_keys(&f, &a, config, seed, (size_t)first + 1, count, coarse, values, bounds, NULL, err);
    for (size_t s = 0; status == TM_OK && s < count; s += LANES) {
        size_t lanes = count - s < LANES ? count - s : LANES, keys[LANES];
        for (size_t j = 0; j < lanes; j++) keys[j] = (size_t)first + 1 + s + j;
        double e[LANES];
        status = exact_keys(&a, scheme, seed, keys, lanes, e, err);
        for (size_t j = 0; status == TM_OK && j < lanes; j++) {
            exact[s + j] = e[j];
            fast[s + j] = values[s + j];
            bound[s + j] = bounds[s + j];
        }
    }
    fast_free(&f);
    aligner_free(&a);
    return status;
}
