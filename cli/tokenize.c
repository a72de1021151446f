/* tracemark tokenize / detokenize: text to ids and back with a model's
 * tokenizer (a GGUF, vocab-only GGUF, or llama2.c tokenizer.bin). */
#include "cli.h"

#include "tracemark/generator.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char tokenize_help[] =
    "usage: tracemark tokenize [--model M] [--tokenizer T] [--no-bos] [--special] [--json] (TEXT | --file F)\n"
    "\n"
    "Print the token ids of TEXT on one line, space-separated (BOS first when the vocabulary asks\n"
    "for it, as llama.cpp adds it, unless --no-bos).\n"
    "\n"
    "options:\n"
    "  --model PATH       model whose tokenizer to use (resolved as for generate)\n"
    "  --tokenizer PATH   tokenizer file: GGUF (full or vocab-only) or llama2.c tokenizer.bin\n"
    "  --file PATH        read the text from a file ('-' for stdin)\n"
    "  --no-bos           do not prepend the BOS token\n"
    "  --special          parse special-token texts (<|im_start|>, <s>, ...) into their ids, as a\n"
    "                     chat prompt is tokenized; without it they are tokenized as plain text\n"
    "  --json             print [{\"id\":..,\"piece\":..},...]\n"
    "  -h, --help         this help\n";

static const char detokenize_help[] =
    "usage: tracemark detokenize [--model M] [--tokenizer T] [IDS... | --file F]\n"
    "\n"
    "Print the text of token ids (given as arguments, or whitespace-separated in a file or stdin).\n"
    "\n"
    "options:\n"
    "  --model PATH       model whose tokenizer to use (resolved as for generate)\n"
    "  --tokenizer PATH   tokenizer file: GGUF (full or vocab-only) or llama2.c tokenizer.bin\n"
    "  --file PATH        read ids from a file ('-' for stdin; the default when no ids are given)\n"
    "  -h, --help         this help\n";

enum { MAX_WORDS = 4096 };

typedef struct {
    const char *model, *tokenizer, *file;
    bool no_bos, special, json;
    const char *words[MAX_WORDS]; /* positional arguments, in order */
    size_t n_words;
} options;

/* 1: help printed, 0: parsed, -1: usage error. */
static int parse(const char *command, const char *help, int argc, char **argv, options *o) {
    static const struct option flags[] = {{"model", required_argument, 0, 'm'}, {"tokenizer", required_argument, 0, 't'},
                                          {"file", required_argument, 0, 'f'},  {"no-bos", no_argument, 0, 'b'},
                                          {"json", no_argument, 0, 'j'},        {"help", no_argument, 0, 'h'},
                                          {"special", no_argument, 0, 's'},     {0, 0, 0, 0}};
    int c;
    opterr = 0;
    /* "-" keeps negative numbers and plain words as positional arguments. */
    while ((c = getopt_long(argc, argv, "-h", flags, NULL)) != -1) {
        switch (c) {
        case 'm': o->model = optarg; break;
        case 't': o->tokenizer = optarg; break;
        case 'f': o->file = optarg; break;
        case 'b': o->no_bos = true; break;
        case 'j': o->json = true; break;
        case 's': o->special = true; break;
        case 'h': fputs(help, stdout); return 1;
        case 1:
            if (o->n_words == MAX_WORDS) { tm_cli_usage(command, "too many arguments"); return -1; }
            o->words[o->n_words++] = optarg;
            break;
        default: tm_cli_usage(command, "unknown or incomplete option '%s'", argv[optind - 1]); return -1;
        }
    }
    /* "--" ends the options: what follows is text, even when it starts with '-'. */
    for (; optind < argc; optind++) {
        if (o->n_words == MAX_WORDS) { tm_cli_usage(command, "too many arguments"); return -1; }
        o->words[o->n_words++] = argv[optind];
    }
    return 0;
}

static tm_status load_tokenizer(const options *o, tm_tokenizer **tokenizer, tm_error *err) {
    if (o->tokenizer) return tm_tokenizer_load(tokenizer, o->tokenizer, err);
    char model_path[4096], tokenizer_path[4096];
    tm_status status = tm_model_resolve(o->model, model_path, sizeof model_path, tokenizer_path, sizeof tokenizer_path, err);
    if (status != TM_OK) return status;
    if (tokenizer_path[0]) return tm_tokenizer_load(tokenizer, tokenizer_path, err);
    return tm_tokenizer_load(tokenizer, model_path, err);
}

static tm_status read_input(const char *path, char **data, size_t *size, tm_error *err) {
    if (strcmp(path, "-") != 0) return tm_read_file(path, data, size, err);
    return tm_read_fd(STDIN_FILENO, "stdin", TM_READ_FILE_MAX, data, size, err); /* a pipe: not a regular file */
}

int tm_cmd_tokenize(int argc, char **argv) {
    static options o;
    int parsed = parse("tokenize", tokenize_help, argc, argv, &o);
    const char **words = o.words;
    size_t n_words = o.n_words;
    if (parsed) return parsed > 0 ? TM_EXIT_OK : TM_EXIT_USAGE;
    if (!o.file && n_words != 1) return tm_cli_usage("tokenize", "expects one TEXT argument or --file");
    if (o.file && n_words) return tm_cli_usage("tokenize", "give TEXT or --file, not both");

    tm_error err = {0};
    tm_tokenizer *tokenizer = NULL;
    char *text = NULL;
    size_t size = 0;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    int exit_code = TM_EXIT_FAILURE;
    if (o.file) {
        if (read_input(o.file, &text, &size, &err)) return tm_cli_fail(&err);
    } else {
        text = strdup(words[0]);
        size = strlen(text);
    }
    tm_status status = load_tokenizer(&o, &tokenizer, &err);
    if (status == TM_OK) {
        bool add_bos = !o.no_bos && tm_tokenizer_adds_bos(tokenizer);
        status = o.special ? tm_tokenizer_encode_special(tokenizer, text, size, add_bos, &ids, &n_ids, &err)
                           : tm_tokenizer_encode(tokenizer, text, size, add_bos, &ids, &n_ids, &err);
    }
    if (status != TM_OK) {
        tm_cli_fail(&err);
    } else if (o.json) {
        json_t *array = json_array();
        for (size_t i = 0; i < n_ids; i++) {
            size_t piece_size = 0;
            const char *piece = tm_tokenizer_piece(tokenizer, ids[i], &piece_size);
            json_array_append_new(array, json_pack("{s:i, s:s%}", "id", ids[i], "piece", piece, piece_size));
        }
        exit_code = tm_cli_print_json(array);
    } else {
        for (size_t i = 0; i < n_ids; i++) printf(i ? " %d" : "%d", ids[i]);
        printf("\n");
        exit_code = TM_EXIT_OK;
    }
    free(ids);
    free(text);
    tm_tokenizer_free(tokenizer);
    return exit_code;
}

/* Parse whitespace-separated ids; false with err on a bad one. */
static bool parse_ids(const char *text, int32_t **ids, size_t *n, tm_error *err) {
    size_t capacity = 64;
    *n = 0;
    *ids = malloc(capacity * sizeof(int32_t));
    const char *p = text;
    while (*ids) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ',') p++;
        if (!*p) return true;
        char *end;
        errno = 0;
        long value = strtol(p, &end, 10);
        if (end == p || errno || value < 0 || value > INT32_MAX) {
            tm_error_set(err, TM_ERR_FORMAT, "'%.20s' is not a token id", p);
            free(*ids);
            *ids = NULL;
            return false;
        }
        if (*n == capacity) {
            int32_t *grown = realloc(*ids, (capacity *= 2) * sizeof(int32_t));
            if (!grown) { free(*ids); *ids = NULL; break; }
            *ids = grown;
        }
        (*ids)[(*n)++] = (int32_t)value;
        p = end;
    }
    tm_error_set(err, TM_ERR_NOMEM, "out of memory reading ids");
    return false;
}

int tm_cmd_detokenize(int argc, char **argv) {
    static options o;
    int parsed = parse("detokenize", detokenize_help, argc, argv, &o);
    const char **words = o.words;
    size_t n_words = o.n_words;
    if (parsed) return parsed > 0 ? TM_EXIT_OK : TM_EXIT_USAGE;
    if (o.file && n_words) return tm_cli_usage("detokenize", "give IDS or --file, not both");

    tm_error err = {0};
    char *input = NULL;
    size_t size = 0;
    if (n_words) {
        size_t total = 1;
        for (size_t i = 0; i < n_words; i++) total += strlen(words[i]) + 1;
        input = calloc(total, 1);
        for (size_t i = 0; input && i < n_words; i++) strcat(strcat(input, words[i]), " ");
    } else if (read_input(o.file ? o.file : "-", &input, &size, &err)) {
        return tm_cli_fail(&err);
    }
    tm_tokenizer *tokenizer = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    char *text = NULL;
    size_t text_size = 0;
    int exit_code = TM_EXIT_FAILURE;
    if (!input) tm_error_set(&err, TM_ERR_NOMEM, "out of memory");
    if (!input || !parse_ids(input, &ids, &n_ids, &err) || load_tokenizer(&o, &tokenizer, &err)) {
        tm_cli_fail(&err);
    } else {
        int32_t vocab = tm_tokenizer_vocab_size(tokenizer);
        for (size_t i = 0; i < n_ids; i++)
            if (ids[i] >= vocab) {
                tm_error_set(&err, TM_ERR_ARGUMENT, "token id %d is outside the vocabulary (0..%d)", ids[i], vocab - 1);
                break;
            }
        if (err.code || tm_tokenizer_decode(tokenizer, ids, n_ids, &text, &text_size, &err)) {
            tm_cli_fail(&err);
        } else {
            fwrite(text, 1, text_size, stdout);
            fputc('\n', stdout);
            exit_code = TM_EXIT_OK;
        }
    }
    free(text);
    free(ids);
    free(input);
    tm_tokenizer_free(tokenizer);
    return exit_code;
}
