/* tracemark core: what every room needs and no room owns. Errors as values
 * (tm_error), checked allocation and arithmetic, read-only file mapping,
 * SHA-256 over OpenSSL, atomic file writes, and a monotonic clock. Nothing in
 * core prints, exits or aborts on bad input: it reports through tm_error. */
#ifndef TRACEMARK_CORE_H
#define TRACEMARK_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors ------------------------------------------------------------ */

typedef enum {
    TM_OK = 0,
    TM_ERR_IO,          /* a file could not be opened, read or written */
    TM_ERR_FORMAT,      /* the input is malformed */
    TM_ERR_UNSUPPORTED, /* well-formed, but a feature we do not handle */
    TM_ERR_NOMEM,       /* allocation failed or a size overflowed */
    TM_ERR_ARGUMENT,    /* the caller passed a bad value */
    TM_ERR_PERMISSION,  /* e.g. a key file that others can read */
    TM_ERR_NOT_FOUND,   /* a file, key or tensor that is not there */
    TM_ERR_LIMIT,       /* a configured limit was reached (context full) */
} tm_status;

enum { TM_ERROR_MESSAGE_MAX = 512 };

typedef struct {
    tm_status code;
    char message[TM_ERROR_MESSAGE_MAX];
} tm_error;

/* Fill err (when not NULL) and return code. */
tm_status tm_error_set(tm_error *err, tm_status code, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefix err->message with "<context>: " (e.g. the file name). Returns err->code. */
tm_status tm_error_prefix(tm_error *err, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
const char *tm_status_name(tm_status code);

/* ---- checked arithmetic and allocation ---------------------------------- */

static inline bool tm_mul_size(size_t a, size_t b, size_t *out) { return !__builtin_mul_overflow(a, b, out); }
static inline bool tm_add_size(size_t a, size_t b, size_t *out) { return !__builtin_add_overflow(a, b, out); }
static inline bool tm_mul_u64(uint64_t a, uint64_t b, uint64_t *out) { return !__builtin_mul_overflow(a, b, out); }
static inline bool tm_add_u64(uint64_t a, uint64_t b, uint64_t *out) { return !__builtin_add_overflow(a, b, out); }

/* Zeroed array of count*size bytes, or NULL with TM_ERR_NOMEM in err. */
void *tm_alloc_array(size_t count, size_t size, tm_error *err);
/* 64-byte aligned, zeroed array (for SIMD kernels); free with tm_free_aligned. */
void *tm_alloc_aligned(size_t count, size_t size, tm_error *err);
void tm_free_aligned(void *p);
/* strdup that reports failure through err. */
char *tm_strdup(const char *s, tm_error *err);

/* ---- files --------------------------------------------------------------- */

/* A read-only memory map of a whole file. */
typedef struct {
    const uint8_t *data;
    size_t size;
    char *path;
} tm_mapped_file;

tm_status tm_mapped_file_open(tm_mapped_file *file, const char *path, tm_error *err);
void tm_mapped_file_close(tm_mapped_file *file);

/* ---- untrusted input (core/input.c) ------------------------------------------
 * Every file tracemark reads comes through tm_input_open: regular files only,
 * checked on the opened descriptor (opened O_NONBLOCK, so a FIFO is refused at
 * once rather than blocking), and at most max_bytes (0: no limit; over it:
 * TM_ERR_LIMIT). docs/limits.md lists the limits callers pass. */
enum { TM_READ_FILE_MAX = 256 << 20 }; /* tm_read_file's limit: 256 MiB */
/* Open path for reading; *fd is a blocking descriptor the caller closes; st
 * (may be NULL) receives its fstat. */
tm_status tm_input_open(const char *path, uint64_t max_bytes, int *fd, struct stat *st, tm_error *err);
/* Read fd (a file, stdin, a pipe) to its end into a NUL-terminated heap buffer
 * (size excludes the NUL); TM_ERR_LIMIT as soon as more than max_bytes arrive
 * (0: no limit), never holding more than max(max_bytes + 2, 4096) bytes.
 * name is for errors. */
tm_status tm_read_fd(int fd, const char *name, size_t max_bytes, char **data, size_t *size, tm_error *err);
/* tm_input_open + tm_read_fd. A missing file is TM_ERR_NOT_FOUND. */
tm_status tm_read_file_limited(const char *path, size_t max_bytes, char **data, size_t *size, tm_error *err);
/* The same with the limit TM_READ_FILE_MAX; a missing file is TM_ERR_IO (as
 * it always was here, and for tm_mapped_file_open). */
tm_status tm_read_file(const char *path, char **data, size_t *size, tm_error *err);
/* Write data to path through a temporary file in the same folder, fsync, rename. */
tm_status tm_write_file_atomic(const char *path, const void *data, size_t size, mode_t mode, tm_error *err);
/* The same, but never replaces: fails (TM_ERR_ARGUMENT) when path exists, even
 * if it appears while writing (the file is linked into place). */
tm_status tm_write_file_exclusive(const char *path, const void *data, size_t size, mode_t mode, tm_error *err);
bool tm_file_exists(const char *path);

/* Bytes of memory this process may still allocate without swapping or the
 * OOM killer: MemAvailable from /proc/meminfo, lowered by a cgroup v2
 * memory.max; UINT64_MAX when neither can be read. (core/memory.c) */
uint64_t tm_memory_available(void);

/* ---- hashing ------------------------------------------------------------- */

enum { TM_SHA256_HEX_SIZE = 65 };
void tm_sha256_hex(const void *data, size_t size, char hex[TM_SHA256_HEX_SIZE]);
tm_status tm_sha256_file_hex(const char *path, char hex[TM_SHA256_HEX_SIZE], tm_error *err);

/* ---- time ---------------------------------------------------------------- */

double tm_seconds_now(void); /* monotonic clock, seconds */

/* ---- seeded randomness (core/random.c) ------------------------------------ */

/* Seeded PRNG: xoshiro256** seeded through SplitMix64; specified so that runs
 * repeat across machines. Uniform floats use the top 24 bits. */
typedef struct { uint64_t s[4]; } tm_rng;
void tm_rng_seed(tm_rng *rng, uint64_t seed);
uint64_t tm_rng_next(tm_rng *rng);
float tm_rng_uniform(tm_rng *rng); /* [0, 1) */

/* ---- UTF-8 --------------------------------------------------------------- */

/* Length of the UTF-8 sequence starting with byte c (1..4), from its lead byte alone. */
static inline int tm_utf8_sequence_length(uint8_t c) {
    if (c < 0x80) return 1;
    if ((c & 0xE0) == 0xC0) return 2;
    if ((c & 0xF0) == 0xE0) return 3;
    if ((c & 0xF8) == 0xF0) return 4;
    return 1; /* a stray continuation or invalid byte stands alone */
}
/* Length of the longest valid UTF-8 prefix of the size bytes at s (RFC 3629:
 * no overlongs, no surrogates, nothing above U+10FFFF, no truncated
 * sequence): the byte offset of the first invalid byte, or size. */
size_t tm_utf8_valid_prefix(const char *s, size_t size);
/* True when the size bytes at s are valid UTF-8 (no overlongs, no surrogates). */
bool tm_utf8_valid(const char *s, size_t size);
/* Number of Unicode characters (code points) in the first `bytes` bytes of valid UTF-8. */
size_t tm_utf8_count_chars(const char *text, size_t bytes);

/* ---- growing text buffer (core/buffer.c) --------------------------------- */

/* Zero-initialise, append, then check failed once at the end; data is
 * NUL-terminated whenever it is not NULL. An allocation failure sets failed
 * and drops every later append. */
typedef struct {
    char *data;
    size_t size, capacity;
    bool failed;
} tm_buffer;
void tm_buffer_put(tm_buffer *buffer, const void *data, size_t size);
void tm_buffer_puts(tm_buffer *buffer, const char *text);
void tm_buffer_printf(tm_buffer *buffer, const char *format, ...) __attribute__((format(printf, 2, 3)));
void tm_buffer_free(tm_buffer *buffer);

/* ---- half precision ------------------------------------------------------ */

/* IEEE half and bfloat16 <-> float, round to nearest even. */
float tm_f16_to_f32(uint16_t h);
uint16_t tm_f32_to_f16(float f);
/* The double nearest the shortest decimal that reads back as f (0.8f ->
 * 0.8, not 0.800000011920929): how records print a float setting, so that a
 * user's --temperature 0.8 is written 0.8 and reads back as the same float.
 * NaN and infinities are returned as they are. */
double tm_float_shortest(float f);
float tm_bf16_to_f32(uint16_t h);

/* ---- CPU features (core/cpu.c) ---------------------------------------------- */

/* What the SIMD kernels may use: the CPU has it (CPUID), the OS saves its
 * registers (XGETBV), and the environment does not turn it off. TM_NO_AVX2
 * (any value) turns off every x86 extension here, so every kernel takes its
 * portable path; TM_NO_AVX512 turns off the AVX-512 ones; TM_NO_VNNI the
 * VNNI ones. CPUID rather than __builtin_cpu_supports, which clang 14 lacks
 * some of these names for. */
typedef enum {
    TM_CPU_AVX2,
    TM_CPU_FMA,
    TM_CPU_F16C,
    TM_CPU_AVXVNNI,
    TM_CPU_AVX512F,
    TM_CPU_AVX512BW,
    TM_CPU_AVX512VL,
    TM_CPU_AVX512VNNI,
} tm_cpu_feature;
bool tm_cpu_has(tm_cpu_feature feature);
/* The widest kernel family tm_cpu_has allows: "avx512", "avx2" or "portable". */
const char *tm_cpu_kernel_path(void);

/* ---- element-wise steps of a softmax (core/elementwise.c) ---------------------- */

/* x[i] = expf(x[i] - shift), with libm's bits (vectorised on AVX-512 and
 * AVX2, the float subtraction first as in the scalar loop). */
void tm_expf_shifted(float *x, size_t n, float shift);
/* The largest of x[0..n-1] (n > 0): -inf when every one is -inf, and NaNs
 * are passed over, as `if (x[i] > max) max = x[i]` from -inf does. */
float tm_max_float(const float *x, size_t n);

/* ---- sampler stages ------------------------------------------------------ */

/* The contract between the generator's sampler chain and the stages it runs,
 * a watermark scheme among them (in the manner of llama.cpp's
 * llama_sampler_i). It lives here because the generator calls the stages and
 * the watermark room implements one, and neither may include the other's
 * header for it. */
typedef struct {
    int32_t id;
    float logit;
    float p; /* filled by stages that normalise (softmax) */
} tm_token_data;

/* The working set the chain narrows down. sorted: data is by logit, descending. */
typedef struct {
    tm_token_data *data;
    size_t size;
    bool sorted;
    int32_t selected; /* the token id (not an index into data) set by the selecting stage; -1 before */
} tm_candidates;

/* The steps of a softmax over candidates (core/elementwise.c), each with the
 * bits of the one-by-one loop, vectorised where the CPU allows:
 * - d[i] = {i, logits[i], 0} for i < n, a NaN logit taken as -inf (it must
 *   never win);
 * - the largest logit of d[0..n-1]: -inf for none, NaNs passed over;
 * - d[i].p = expf(d[i].logit - shift), returning the sum of the p in order,
 *   in double (with nan_as_zero a NaN p is stored and summed as 0);
 * - d[i].p = (float)((double)d[i].p / divisor), and the same with * factor. */
void tm_candidates_fill(tm_token_data *d, const float *logits, size_t n);
float tm_candidates_max_logit(const tm_token_data *d, size_t n);
double tm_candidates_exp(tm_token_data *d, size_t n, float shift, bool nan_as_zero);
void tm_candidates_divide_p(tm_token_data *d, size_t n, double divisor);
void tm_candidates_multiply_p(tm_token_data *d, size_t n, double factor);
/* Bit i of bits[(n + 63) / 64] set when d[i].logit + raise >= bound (one
 * float addition, then an ordered comparison: never for a NaN), bits past n
 * clear; returns how many are set. */
size_t tm_candidates_at_least(const tm_token_data *d, size_t n, float raise, float bound, uint64_t *bits);
/* Whether d[i].id == i for every i < n: the whole vocabulary in order, as
 * a chain hands it to its first stage (vectorised like the steps above). */
bool tm_candidates_dense(const tm_token_data *d, size_t n);

typedef struct tm_sampler tm_sampler;
typedef struct {
    const char *(*name)(const tm_sampler *sampler);
    void (*apply)(tm_sampler *sampler, tm_candidates *candidates);
    void (*accept)(tm_sampler *sampler, int32_t token); /* optional: token was emitted */
    void (*reset)(tm_sampler *sampler);                 /* optional: new sequence */
    void (*free)(tm_sampler *sampler);                  /* optional: releases state */
    /* optional: a stage that only adds to logits, at most this much to each (a
     * finite value >= 0), and keeps every candidate returns it; the chain then
     * drops, just before that stage, the candidates that its top-k or min-p
     * would drop whatever the stage added (so the stage works on fewer and the
     * token drawn is the same). Absent, or NaN: unknown, nothing is dropped. */
    float (*max_raise)(const tm_sampler *sampler);
} tm_sampler_interface;
struct tm_sampler {
    const tm_sampler_interface *interface;
    void *state;
};

#ifdef __cplusplus
}
#endif
#endif
