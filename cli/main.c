/* The tracemark command: a git-style dispatcher to one file per subcommand. */
#include "cli.h"

#include <string.h>

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"generate", tm_cmd_generate, "generate text with a local model"},
    {"model", tm_cmd_model, "model files: info, quantize, synth"},
    {"tokenize", tm_cmd_tokenize, "print the token ids of a text"},
    {"detokenize", tm_cmd_detokenize, "print the text of token ids"},
    {"keygen", tm_cmd_keygen, "create a watermark key file (mode 0600)"},
    {"detect", tm_cmd_detect, "test a text for a watermark (model-free)"},
    {"eval", tm_cmd_eval, "run an evaluation task (YAML) into a crash-safe run store"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: tracemark <command> [options]\n\n"
                 "tracemark tags AI-generated text at the source and proves it later.\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nRun 'tracemark <command> --help' for the options of a command.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return TM_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return TM_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("tracemark 0.1.0\n");
        return TM_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "tracemark: '%s' is not a command\n\n", argv[1]);
    usage(stderr);
    return TM_EXIT_USAGE;
}
