/* Regression tests for the defects of issue 17, each as a hostile user
 * would meet it: a key file of exactly 4096 bytes whose version runs to the
 * end of the buffer (an over-read, caught by the ASan build) and a lax
 * version line; FIFOs named as key, tokenizer, model, scheme or text (each
 * must fail at once, not block: an alarm turns a hang into a failure); a
 * GGUF whose context_length says 2,000,000 (the default context must stay
 * bounded and an explicit one must be checked against the memory available
 * before allocating); detect's input and line limits; keys in OpenSSL's
 * secure heap; and the CPU feature switches that force the portable
 * kernels. Chat turn forging has its own tests in test_chat.c. */
#include "fixtures.h"
#include "tracemark/detect.h"
#include "tracemark/watermark.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define KEY_MAGIC "tracemark-watermark-key"

/* A key file with these bytes and mode 0600, read back through tm_wm_key_read. */
static tm_status read_key_bytes(const char *bytes, size_t size, tm_error *err) {
    char *dir = tm_test_scratch_dir(), *path = tm_test_path(dir, "k.key");
    cr_assert_eq(tm_test_write_file(path, bytes, size), 0);
    cr_assert_eq(chmod(path, 0600), 0);
    tm_wm_key *key = NULL;
    tm_status status = tm_wm_key_read(&key, path, err);
    tm_wm_key_free(key);
    unlink(path);
    rmdir(dir);
    free(path);
    free(dir);
    return status;
}

/* Before the fix, strtol ran on past the 4096 bytes read (the buffer was
 * not NUL-terminated): into its one spare, uninitialised byte, and past the
 * array whenever that byte was a digit. Now the digits are read within the
 * bytes given, and the line is malformed (no newline). */
Test(key_reader, a_4096_byte_file_of_version_digits_is_malformed_and_read_within_bounds) {
    enum { SIZE = 4096 };
    char *text = malloc(SIZE);
    memcpy(text, KEY_MAGIC " v", sizeof KEY_MAGIC + 1);
    memset(text + sizeof KEY_MAGIC + 1, '1', SIZE - (sizeof KEY_MAGIC + 1));
    tm_error err = {0};
    cr_expect_eq(read_key_bytes(text, SIZE, &err), TM_ERR_FORMAT, "%s", err.message);
    cr_expect_not_null(strstr(err.message, "line 1"), "%s", err.message);
    /* From a heap block of exactly those bytes: a read past its end is a
     * heap-buffer-overflow under ASan, whatever follows it (the file reader's
     * stack buffer has one spare byte, so there it depended on its contents). */
    tm_wm_key *key = NULL;
    cr_expect_eq(tm_wm_key_parse(&key, "heap", text, SIZE, &err), TM_ERR_FORMAT, "%s", err.message);
    cr_expect_null(key);
    free(text);
}

/* The version is 'v1' exactly: strtol took sign, spaces, newlines and
 * leading zeros ("v\n +0001" was version 1). */
Test(key_reader, the_version_line_is_strict) {
    static const char *lax[] = {"v\n +0001", "v+1", "v 1", "v01", "v0001", "v1 ", "v-1", "v\t1"};
    static const char rest[] = "\nid: 0000000000000000\nkey: "
                               "0000000000000000000000000000000000000000000000000000000000000000\n";
    for (size_t i = 0; i < sizeof lax / sizeof lax[0]; i++) {
        char text[256];
        int n = snprintf(text, sizeof text, KEY_MAGIC " %s%s", lax[i], rest);
        tm_error err = {0};
        cr_expect_eq(read_key_bytes(text, (size_t)n, &err), TM_ERR_FORMAT, "'%s' accepted: %s", lax[i], err.message);
    }
}

/* ---- FIFOs ------------------------------------------------------------------- */

static void on_alarm(int signal) {
    (void)signal;
    static const char message[] = "a reader blocked on a FIFO for 10 s\n";
    (void)!write(2, message, sizeof message - 1);
    _exit(99);
}

static char *make_fifo(char **dir) {
    *dir = tm_test_scratch_dir();
    char *path = tm_test_path(*dir, "fifo");
    cr_assert_eq(mkfifo(path, 0600), 0);
    signal(SIGALRM, on_alarm);
    alarm(10); /* a reader that opens the FIFO blocking never returns: fail, do not hang */
    return path;
}

static void remove_fifo(char *dir, char *path) {
    alarm(0);
    unlink(path);
    rmdir(dir);
    free(path);
    free(dir);
}

Test(fifo, every_reader_refuses_a_fifo_at_once) {
    char *dir, *fifo = make_fifo(&dir);
    tm_error err = {0};
    tm_wm_key *key = NULL;
    cr_expect_neq(tm_wm_key_read(&key, fifo, &err), TM_OK);
    cr_expect_not_null(strstr(err.message, "FIFO"), "key: %s", err.message);
    tm_tokenizer *tokenizer = NULL;
    cr_expect_neq(tm_tokenizer_load(&tokenizer, fifo, &err), TM_OK);
    cr_expect_not_null(strstr(err.message, "FIFO"), "tokenizer: %s", err.message);
    tm_mapped_file file;
    cr_expect_neq(tm_mapped_file_open(&file, fifo, &err), TM_OK);
    cr_expect_not_null(strstr(err.message, "FIFO"), "map: %s", err.message);
    tm_model *model = NULL;
    cr_expect_neq(tm_model_load(&model, fifo, &err), TM_OK);
    tm_wm_config config;
    cr_expect_neq(tm_wm_config_load(&config, fifo, &err), TM_OK);
    cr_expect_not_null(strstr(err.message, "FIFO"), "scheme: %s", err.message);
    char *data = NULL;
    size_t size = 0;
    cr_expect_eq(tm_read_file(fifo, &data, &size, &err), TM_ERR_IO);
    char hex[TM_SHA256_HEX_SIZE];
    cr_expect_neq(tm_sha256_file_hex(fifo, hex, &err), TM_OK);
    remove_fifo(dir, fifo);
}

Test(fifo, the_cli_refuses_fifos_for_key_tokenizer_model_and_text) {
    char *dir, *fifo = make_fifo(&dir);
    char *tok = tm_fixture("models/tok512.bin"), *bin = tm_fixture("models/stories260K.bin");
    char *key = tm_test_path(dir, "k.key");
    tm_test_cli_result r = tm_test_cli("keygen --out '%s'", key);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);
    const char *cfg = TRACEMARK_SOURCE_DIR "/configs/schemes/kgw-lefthash.yaml";
    r = tm_test_cli("detect --key '%s' --watermark %s --tokenizer '%s' </dev/null", fifo, cfg, tok);
    cr_expect_eq(r.code, 1, "--key FIFO: %s", r.err);
    cr_expect_not_null(strstr(r.err, "FIFO"), "%s", r.err);
    tm_test_cli_free(&r);
    r = tm_test_cli("detect --key '%s' --watermark %s --tokenizer '%s' </dev/null", key, cfg, fifo);
    cr_expect_eq(r.code, 1, "--tokenizer FIFO: %s", r.err);
    tm_test_cli_free(&r);
    r = tm_test_cli("detect --key '%s' --watermark %s --tokenizer '%s' '%s'", key, cfg, tok, fifo);
    cr_expect_eq(r.code, 1, "text FIFO: %s", r.err);
    tm_test_cli_free(&r);
    r = tm_test_cli("generate --model '%s' --tokenizer '%s' --prompt x --max-tokens 2", fifo, tok);
    cr_expect_eq(r.code, 1, "--model FIFO: %s", r.err);
    tm_test_cli_free(&r);
    r = tm_test_cli("generate --model '%s' --tokenizer '%s' --prompt x --max-tokens 2", bin, fifo);
    cr_expect_eq(r.code, 1, "generate --tokenizer FIFO: %s", r.err);
    tm_test_cli_free(&r);
    unlink(key);
    free(key);
    free(tok);
    free(bin);
    remove_fifo(dir, fifo);
}

Test(input, files_over_the_limit_are_refused_before_reading_and_streams_stop_at_it) {
    char *dir = tm_test_scratch_dir(), *path = tm_test_path(dir, "big.txt");
    char text[1000];
    memset(text, 'a', sizeof text);
    cr_assert_eq(tm_test_write_file(path, text, sizeof text), 0);
    tm_error err = {0};
    char *data = NULL;
    size_t size = 0;
    cr_expect_eq(tm_read_file_limited(path, 999, &data, &size, &err), TM_ERR_LIMIT, "%s", err.message);
    cr_expect_null(data);
    cr_expect_eq(tm_read_file_limited(path, 1000, &data, &size, &err), TM_OK, "%s", err.message);
    cr_expect_eq(size, 1000);
    free(data);
    int fd = open(path, O_RDONLY);
    cr_expect_eq(tm_read_fd(fd, "stream", 500, &data, &size, &err), TM_ERR_LIMIT);
    close(fd);
    unlink(path);
    rmdir(dir);
    free(path);
    free(dir);
}

/* ---- context size ------------------------------------------------------------- */

/* stories260K.gguf with llama.context_length (a UINT32 after its key) set. */
static char *gguf_with_context_length(const char *dir, uint32_t length) {
    char *source = tm_fixture("models/stories260K.gguf");
    size_t size;
    char *bytes = tm_test_read_file(source, &size);
    cr_assert_not_null(bytes, "%s", source);
    static const char key[] = "llama.context_length";
    char *at = memmem(bytes, size, key, sizeof key - 1);
    cr_assert_not_null(at, "no %s in %s", key, source);
    uint8_t *type = (uint8_t *)at + sizeof key - 1;
    cr_assert_eq(type[0], 4, "context_length is not a UINT32"); /* GGUF type 4 = UINT32, little-endian */
    for (int i = 0; i < 4; i++) type[4 + i] = (uint8_t)(length >> (8 * i));
    char *path = tm_test_path(dir, "ctx.gguf");
    cr_assert_eq(tm_test_write_file(path, bytes, size), 0);
    free(bytes);
    free(source);
    return path;
}

Test(context, a_huge_context_length_in_the_file_gives_the_default_context) {
    char *dir = tm_test_scratch_dir(), *path = gguf_with_context_length(dir, 2000000);
    tm_error err = {0};
    tm_model *model = NULL;
    cr_assert_eq(tm_model_load(&model, path, &err), TM_OK, "%s", err.message);
    cr_assert_eq(tm_model_get_config(model)->context_length, 2000000);
    tm_context *context = NULL;
    cr_assert_eq(tm_context_create(&context, model, 0, 1, &err), TM_OK, "%s", err.message);
    cr_expect_eq(tm_context_size(context), TM_CONTEXT_DEFAULT);
    tm_context_free(context);
    tm_model_free(model);
    unlink(path);
    free(path);
    /* A model trained on fewer tokens keeps its own length. */
    path = gguf_with_context_length(dir, 100);
    cr_assert_eq(tm_model_load(&model, path, &err), TM_OK, "%s", err.message);
    cr_assert_eq(tm_context_create(&context, model, 0, 1, &err), TM_OK, "%s", err.message);
    cr_expect_eq(tm_context_size(context), 100);
    tm_context_free(context);
    tm_model_free(model);
    unlink(path);
    rmdir(dir);
    free(path);
    free(dir);
}

/* The check refuses past 3/4 of the memory available: one token more than that. */
Test(context, a_context_larger_than_the_memory_available_is_refused_before_allocating) {
    char *bin = tm_fixture("models/stories260K.bin");
    tm_error err = {0};
    tm_model *model = NULL;
    cr_assert_eq(tm_model_load(&model, bin, &err), TM_OK, "%s", err.message);
    const tm_model_config *cfg = tm_model_get_config(model);
    uint64_t per_token = 2ull * (uint64_t)cfg->n_layers * (uint64_t)cfg->n_kv_heads * (uint64_t)cfg->head_dim * 4;
    uint64_t available = tm_memory_available(), wanted = available / 4 * 3 / per_token + 1;
    if (wanted > (1u << 24)) {
        tm_model_free(model);
        free(bin);
        cr_skip_test("%llu MiB available: even the largest context (2^24) of this model fits",
                     (unsigned long long)(available >> 20));
    }
    tm_context *context = NULL;
    cr_expect_eq(tm_context_create(&context, model, (int32_t)wanted, 1, &err), TM_ERR_LIMIT);
    cr_expect_not_null(strstr(err.message, "--ctx"), "%s", err.message);
    cr_expect_null(context);
    tm_model_free(model);
    free(bin);
}

Test(context, generate_with_a_huge_context_length_runs_bounded) {
    char *dir = tm_test_scratch_dir(), *path = gguf_with_context_length(dir, 2000000);
    tm_test_cli_result r = tm_test_cli("generate --model '%s' --prompt 'Once upon' --max-tokens 5 --seed 1", path);
    cr_expect_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);
    unlink(path);
    rmdir(dir);
    free(path);
    free(dir);
}

/* ---- detect's limits -------------------------------------------------------------- */

Test(detect_limits, text_over_max_input_bytes_is_an_error_naming_the_flag) {
    char *dir = tm_test_scratch_dir(), *text = tm_test_path(dir, "t.txt"), *key = tm_test_path(dir, "k.key");
    char *tok = tm_fixture("models/tok512.bin");
    tm_test_cli_result r = tm_test_cli("keygen --out '%s'", key);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);
    char body[3000];
    for (size_t i = 0; i < sizeof body; i++) body[i] = "Once upon a time "[i % 17];
    cr_assert_eq(tm_test_write_file(text, body, sizeof body), 0);
    const char *cfg = TRACEMARK_SOURCE_DIR "/configs/schemes/kgw-lefthash.yaml";
    r = tm_test_cli("detect --key '%s' --watermark %s --tokenizer '%s' --max-input-bytes 2000 '%s'", key, cfg, tok, text);
    cr_expect_eq(r.code, 1, "%s", r.err);
    cr_expect_not_null(strstr(r.err, "--max-input-bytes"), "%s", r.err);
    tm_test_cli_free(&r);
    /* stdin (tm_test_cli gives the CLI /dev/null for it: run it here). */
    for (int limit = 2000; limit <= 3000; limit += 1000) {
        char command[8192], *errors = tm_test_path(dir, "err.txt");
        snprintf(command, sizeof command,
                 "%s detect --key '%s' --watermark %s --tokenizer '%s' --max-input-bytes %d <'%s' >/dev/null 2>'%s'",
                 TRACEMARK_CLI, key, cfg, tok, limit, text, errors);
        int status = system(command);
        cr_assert(WIFEXITED(status));
        char *message = tm_test_read_file(errors, NULL);
        if (limit == 2000) {
            cr_expect_eq(WEXITSTATUS(status), 1, "stdin: %s", message);
            cr_expect_not_null(strstr(message, "--max-input-bytes"), "%s", message);
        } else {
            cr_expect(WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 3, "at the limit: %s", message);
        }
        unlink(errors);
        free(errors);
        free(message);
    }
    /* --jsonl: a line over --max-line-bytes gets an error record; the lines
     * around it are scored in order. */
    char *jsonl = tm_test_path(dir, "in.jsonl");
    FILE *f = fopen(jsonl, "w");
    fprintf(f, "{\"id\":\"a\",\"text\":\"Once upon a time there was a cat.\"}\n{\"id\":\"b\",\"text\":\"%.*s\"}\n"
               "{\"id\":\"c\",\"text\":\"The end.\"}\n", 2000, body);
    fclose(f);
    r = tm_test_cli("detect --jsonl --key '%s' --watermark %s --tokenizer '%s' --max-line-bytes 1000 '%s'", key, cfg, tok, jsonl);
    cr_expect_eq(r.code, 1, "%s", r.err);
    char *second = strchr(r.out, '\n');
    cr_assert_not_null(second, "%s", r.out);
    cr_expect_not_null(strstr(r.out, "\"id\":\"a\""), "%s", r.out);
    cr_expect(strncmp(second + 1, "{\"id\":null,\"line\":2,\"error\":\"line longer than the limit of 1000 bytes "
                                  "(--max-line-bytes)\"}\n", 90) == 0, "%s", second + 1);
    cr_expect_not_null(strstr(second + 1, "\"id\":\"c\""), "%s", r.out);
    tm_test_cli_free(&r);
    unlink(jsonl);
    unlink(text);
    unlink(key);
    rmdir(dir);
    free(jsonl);
    free(text);
    free(key);
    free(tok);
    free(dir);
}

/* ---- keys in the secure heap ---------------------------------------------------- */

/* OPENSSL_secure_zalloc without CRYPTO_secure_malloc_init is plain malloc. */
Test(secrets, generated_and_imported_keys_live_in_the_secure_heap) {
    tm_wm_key *key = NULL;
    tm_error err = {0};
    cr_assert_eq(tm_wm_key_generate(&key, &err), TM_OK, "%s", err.message);
    cr_expect(tm_wm_key_secure(key), "the key is in the ordinary heap");
    tm_wm_key_free(key);
    uint8_t secret[TM_WM_KEY_BYTES] = {1, 2, 3};
    cr_assert_eq(tm_wm_key_from_secret(&key, secret, &err), TM_OK, "%s", err.message);
    cr_expect(tm_wm_key_secure(key));
    tm_wm_key_free(key);
}

/* ---- CPU features ---------------------------------------------------------------- */

#if defined(__x86_64__) && !defined(__clang__)
/* gcc's __builtin_cpu_supports is the outside reference (clang 14 lacks some names). */
Test(cpu, cpuid_agrees_with_the_compiler_s_feature_checks) {
    if (getenv("TM_NO_AVX2") || getenv("TM_NO_AVX512") || getenv("TM_NO_VNNI"))
        cr_skip_test("a TM_NO_* switch is set: tm_cpu_has reports less than the CPU has");
    __builtin_cpu_init();
    cr_expect_eq(tm_cpu_has(TM_CPU_AVX2), !!__builtin_cpu_supports("avx2"));
    cr_expect_eq(tm_cpu_has(TM_CPU_FMA), !!__builtin_cpu_supports("fma"));
    cr_expect_eq(tm_cpu_has(TM_CPU_F16C), !!__builtin_cpu_supports("f16c"));
    cr_expect_eq(tm_cpu_has(TM_CPU_AVX512F), !!__builtin_cpu_supports("avx512f"));
    cr_expect_eq(tm_cpu_has(TM_CPU_AVX512BW), !!__builtin_cpu_supports("avx512bw"));
    cr_expect_eq(tm_cpu_has(TM_CPU_AVX512VL), !!__builtin_cpu_supports("avx512vl"));
    cr_expect_eq(tm_cpu_has(TM_CPU_AVX512VNNI), !!__builtin_cpu_supports("avx512vnni"));
    cr_expect_eq(tm_cpu_has(TM_CPU_AVXVNNI), !!__builtin_cpu_supports("avxvnni"));
    cr_log_info("kernel path on this CPU: %s", tm_cpu_kernel_path());
}
#endif

Test(cpu, tm_no_avx2_forces_the_portable_path) {
    setenv("TM_NO_AVX2", "1", 1); /* each Criterion test is its own process: the cache starts fresh */
    cr_expect_not(tm_cpu_has(TM_CPU_AVX2));
    cr_expect_not(tm_cpu_has(TM_CPU_AVX512F));
    cr_expect_not(tm_cpu_has(TM_CPU_F16C));
    cr_expect_str_eq(tm_cpu_kernel_path(), "portable");
}
