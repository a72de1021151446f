/* tracemark watermark: watermark keys (OpenSSL RNG, HKDF-SHA256 subkeys), the
 * keyed PRF that docs/watermark-spec.md specifies byte for byte, scheme
 * configurations (YAML), and the schemes. Each scheme has two faces that
 * share one function for its secret values: a sampler stage for the
 * generator's chain, and the per-token values its detector scores, so
 * generation and detection cannot drift apart. Keys are never printed: a key
 * is named by its key id, a fingerprint that is safe to store with outputs. */
#ifndef TRACEMARK_WATERMARK_H
#define TRACEMARK_WATERMARK_H

#include "tracemark/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================== */
/* Keys                                                                      */
/* ======================================================================== */

enum {
    TM_WM_KEY_BYTES = 32,     /* master key: 256 bits */
    TM_WM_KEY_ID_SIZE = 17,   /* 16 lowercase hex digits + NUL */
};

typedef struct tm_wm_key tm_wm_key; /* opaque; the secret never leaves it */

/* A new key from OpenSSL's RNG. */
tm_status tm_wm_key_generate(tm_wm_key **out, tm_error *err);
/* A key holding the given 32-byte secret: for importing a key kept elsewhere
 * (a secrets manager, an HSM export) and for reproducible tests. The secret is
 * copied into the key; the caller should wipe its own copy (OPENSSL_cleanse)
 * once done. Never derive a production key from a guessable value. */
tm_status tm_wm_key_from_secret(tm_wm_key **out, const uint8_t secret[TM_WM_KEY_BYTES], tm_error *err);
/* Write the key file (mode 0600, atomically); refuses to overwrite an existing file. */
tm_status tm_wm_key_write(const tm_wm_key *key, const char *path, tm_error *err);
/* Read a key file; refuses files that group or others can read, and files of
 * another format version, truncated or altered (the key id must match). */
tm_status tm_wm_key_read(tm_wm_key **out, const char *path, tm_error *err);
/* The same format from memory: exactly size bytes of text (no NUL needed,
 * none read past the end); name is for errors. Permissions are the file
 * reader's business. */
tm_status tm_wm_key_parse(tm_wm_key **out, const char *name, const char *text, size_t size, tm_error *err);
/* The key id: first 8 bytes of SHA-256("tracemark-key-id-v1" || key), hex. */
const char *tm_wm_key_id(const tm_wm_key *key);
/* Wipes the secret (OPENSSL_cleanse) and frees. */
void tm_wm_key_free(tm_wm_key *key);
/* True when the key lives in OpenSSL's secure heap (see keys.c; false when
 * that heap could not be set up or is full and the key is in the ordinary heap). */
bool tm_wm_key_secure(const tm_wm_key *key);
/* Constant-time comparison of two keys (CRYPTO_memcmp). */
bool tm_wm_key_equal(const tm_wm_key *a, const tm_wm_key *b);

/* ======================================================================== */
/* The PRF (docs/watermark-spec.md)                                         */
/* ======================================================================== */

/* A SipHash-2-4 key: 16 bytes from HKDF-SHA256(master key, salt
 * "tracemark-wm-v1", info = the scheme's canonical description). */
typedef struct {
    uint64_t k0, k1;
} tm_wm_subkey;

tm_status tm_wm_derive_subkey(const tm_wm_key *key, const char *info, tm_wm_subkey *out, tm_error *err);

/* SipHash-2-4 (Aumasson & Bernstein) of data under key. */
uint64_t tm_siphash24(const tm_wm_subkey *key, const void *data, size_t size);

/* The PRF of every scheme: SipHash-2-4 over the message
 *   domain (1 byte) || n (1 byte) || tokens[0..n) as u32 little-endian || extra as u32 little-endian
 * n <= TM_WM_PRF_MAX_TOKENS. Domains are listed in the spec, one per use. */
enum { TM_WM_PRF_MAX_TOKENS = 16 };
/* SynthID's tournament layers at most, and so the most secret values one
 * token has (tm_wm_token_values_run's capacity; a detector's buffers). */
enum { TM_WM_LAYERS_MAX = 64 };
uint64_t tm_wm_prf(const tm_wm_subkey *key, uint8_t domain, const int32_t *tokens, size_t n, uint32_t extra);

/* A 64-bit PRF output as a uniform double in (0, 1): ((x >> 12) + 0.5) * 2^-52,
 * exact in binary64 for every x, so never 0 and never 1. */
static inline double tm_wm_uniform(uint64_t x) { return ((double)(x >> 12) + 0.5) * 0x1.0p-52; }

/* ======================================================================== */
/* Scheme configurations                                                     */
/* ======================================================================== */

typedef enum {
    TM_WM_KGW,      /* Kirchenbauer et al. 2023: green list bias */
    TM_WM_UNIGRAM,  /* Zhao et al. 2023: one fixed green list */
    TM_WM_GUMBEL,   /* Aaronson 2022: argmax r^(1/p) */
    TM_WM_SYNTHID,  /* Dathathri et al. 2024: tournament sampling */
    TM_WM_DIPMARK,  /* Wu et al. 2023: alpha-reweight of a permuted vocabulary */
    TM_WM_EXP_EDIT, /* Kuditipudi et al. 2023: EXP-edit / ITS-edit */
    TM_WM_KIND_COUNT
} tm_wm_kind;

typedef enum { TM_WM_SEEDING_LEFTHASH, TM_WM_SEEDING_SELFHASH } tm_wm_seeding;
typedef enum { TM_WM_DECODER_EXP, TM_WM_DECODER_ITS } tm_wm_decoder;

typedef struct {
    tm_wm_kind kind;
    int32_t context_width;       /* h: context tokens hashed (KGW 1/4, Gumbel, SynthID 4, DiPmark) */
    bool skip_repeated_context;  /* generation: sample plainly when (context) was seen before */
    /* KGW, Unigram */
    double gamma;                /* green fraction */
    double delta;                /* logit bias of green tokens */
    tm_wm_seeding seeding;       /* KGW: LeftHash or SelfHash */
    /* SynthID */
    int32_t layers;              /* m tournament layers (g-values per token) */
    /* DiPmark */
    double alpha;
    /* EXP-edit / ITS-edit */
    int32_t sequence_length;     /* n positions of the key sequence xi */
    tm_wm_decoder decoder;
} tm_wm_config;

const char *tm_wm_kind_name(tm_wm_kind kind); /* "kgw", "unigram", "gumbel", "synthid", "dipmark", "exp-edit" */
/* The papers' defaults for a scheme. */
void tm_wm_config_default(tm_wm_config *config, tm_wm_kind kind);
/* Load a YAML scheme file (one of configs/schemes). Unknown keys, wrong types
 * and out-of-range values are errors naming the file, line and field. */
tm_status tm_wm_config_load(tm_wm_config *config, const char *path, tm_error *err);
/* Check ranges (also done by load). */
tm_status tm_wm_config_validate(const tm_wm_config *config, tm_error *err);
/* Canonical one-line description, e.g. "kgw;seeding=selfhash;h=4;gamma=0.25;delta=2"
 * (the HKDF info string, and what outputs record). Returns the length. */
size_t tm_wm_config_describe(const tm_wm_config *config, char *out, size_t capacity);

/* ======================================================================== */
/* Schemes                                                                   */
/* ======================================================================== */

typedef struct tm_wm_scheme tm_wm_scheme;

/* A scheme bound to a key: derives its subkey from the key and the config's description. */
tm_status tm_wm_scheme_create(tm_wm_scheme **out, const tm_wm_config *config, const tm_wm_key *key, tm_error *err);
void tm_wm_scheme_free(tm_wm_scheme *scheme);
const tm_wm_config *tm_wm_scheme_config(const tm_wm_scheme *scheme);
const char *tm_wm_scheme_key_id(const tm_wm_scheme *scheme);

/* Generation face. Where the stage goes in the chain: */
typedef enum {
    TM_WM_STAGE_LOGITS,  /* biases logits before truncation and temperature (KGW, Unigram) */
    TM_WM_STAGE_SELECTOR /* replaces the final selection (distortion-free schemes) */
} tm_wm_stage;
tm_wm_stage tm_wm_scheme_stage(const tm_wm_scheme *scheme);
/* A sampler stage that follows the emitted tokens through accept(); seed
 * drives what randomness the scheme needs beyond the PRF (SynthID's final
 * draw, EXP-edit's shift). The scheme must outlive the sampler. */
tm_sampler *tm_wm_sampler(tm_wm_scheme *scheme, uint64_t seed);

/* Detection face. The secret values of `token` following `context`
 * (the preceding tokens, oldest first; only the last context_width are used):
 *   KGW, Unigram, DiPmark: 1 value, 1.0 when green else 0.0
 *   Gumbel: 1 value, the uniform r of the token
 *   SynthID: `layers` values, the g-values (0/1) of layers 1..m
 * Returns the number of values written (<= capacity), 0 when the scheme
 * scores tokens differently (EXP-edit: see tm_wm_xi). */
size_t tm_wm_token_values(const tm_wm_scheme *scheme, const int32_t *context, size_t n_context, int32_t token,
                          double *values, size_t capacity);
/* Context tokens the detector must have before it can score a token: h for
 * most schemes, h - 1 for KGW SelfHash (whose window includes the token),
 * 0 for Unigram and EXP-edit. */
size_t tm_wm_scheme_context_needed(const tm_wm_scheme *scheme);
/* The detection face over many positions at once, what a detector calls
 * (one PRF batch per run instead of calls per token): position p = first +
 * i, i < count, of tokens is scored with the needed =
 * tm_wm_scheme_context_needed() tokens before it as its context (first >=
 * needed), and gets, bit for bit as the one-token functions give them:
 *   fingerprints[i] = tm_wm_token_fingerprint(scheme, tokens + p - needed, needed, tokens[p]);
 *   values[i] = the first of its tm_wm_token_values;
 *   bits[i]: bit l set when its value l is 1.0, for the schemes whose values
 *            are all 0 or 1 (KGW, SynthID; 0 for Gumbel).
 * Returns the number of values tm_wm_token_values gives each token with a
 * capacity of TM_WM_LAYERS_MAX (the same for every position), or 0 when the scheme has no
 * such face (the caller then goes token by token). */
size_t tm_wm_token_values_run(const tm_wm_scheme *scheme, const int32_t *tokens, size_t first, size_t count,
                              uint64_t *fingerprints, uint64_t *bits, double *values);
/* Probability that a token scores green without the watermark, for the
 * green-list schemes (KGW and Unigram: gamma; DiPmark: 0.5); NAN otherwise. */
double tm_wm_scheme_null_green_rate(const tm_wm_scheme *scheme);

/* An unkeyed 64-bit fingerprint of exactly what the token's secret values
 * depend on (for most schemes the last context_width tokens and the token;
 * for KGW SelfHash the min-hash anchor and the token). Pairs with the same
 * fingerprint share their values, so a detector counts them once. */
uint64_t tm_wm_token_fingerprint(const tm_wm_scheme *scheme, const int32_t *context, size_t n_context, int32_t token);
/* EXP-edit/ITS-edit: what the detector aligns the text with, for one position
 * of the key sequence (taken modulo n; negative positions wrap too) and one
 * token w >= 0, as a value in (0, 1) (docs/schemes/exp-edit.md, "Detection"):
 *   EXP: xi[position][w], the key's uniform for that token;
 *   ITS: eta(w), the key-wide permutation pi's order as a number (the same
 *        at every position; the position's own uniform is tm_wm_its_uniform).
 * NaN for a scheme that is not EXP-edit or is NULL, and for token < 0. */
double tm_wm_xi(const tm_wm_scheme *scheme, int32_t position, int32_t token);
/* ITS-edit: u_position, the uniform that picks the token at that position of
 * the key sequence (taken modulo n like tm_wm_xi's), in (0, 1). NaN for an
 * EXP-decoder scheme (it has no per-position uniform), a scheme that is not
 * EXP-edit, or NULL. */
double tm_wm_its_uniform(const tm_wm_scheme *scheme, int32_t position);

#ifdef __cplusplus
}
#endif
#endif
