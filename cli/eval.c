/* tracemark eval: run an evaluation task file into a run folder (a SQLite
 * store plus samples.jsonl and results.json), resume it after a kill, run
 * one shard of it, or merge shard folders. Thin: flags in, library calls,
 * a progress bar on stderr when stderr is a terminal, one summary line
 * otherwise. */
#include "cli.h"

#include "tracemark/evals.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char help[] =
    "usage: tracemark eval TASK.yaml --out RUN_DIR [--resume] [--shard I/N] [--threads N]\n"
    "       tracemark eval merge RUN_DIR... --out DIR\n"
    "\n"
    "Run an evaluation task (YAML, see configs/tasks/ and docs/evals.md). Every sample is\n"
    "stored in RUN_DIR/run.sqlite as it completes; RUN_DIR/samples.jsonl and results.json are\n"
    "rebuilt from the store at the end.\n"
    "\n"
    "options:\n"
    "  --out DIR       the run folder (created; must not hold a store unless --resume)\n"
    "  --resume        continue the store in --out (it must belong to the same task file and model)\n"
    "  --shard I/N     run only samples with id % N == I (0 <= I < N), into its own store;\n"
    "                  join the shards with 'tracemark eval merge'\n"
    "  --threads N     sample workers, each with a one-thread inference context (default 1)\n"
    "  --json          print the run's summary as JSON on stdout\n"
    "  -h, --help      this help\n"
    "\n"
    "merge: join the stores of RUN_DIR... (shards of one task: stores of other tasks or models are\n"
    "refused) into a new store in --out, and write its exports.\n"
    "\n"
    "Exit status: 0 success, 1 failure (bad task file, data, model or store), 2 usage error.\n";

typedef struct {
    bool tty;
    double start;
} progress_state;

static void progress(void *user, int64_t done, int64_t total) {
    progress_state *p = user;
    if (!p->tty) return;
    double elapsed = tm_seconds_now() - p->start;
    double rate = elapsed > 0 ? (double)done / elapsed : 0;
    double eta = rate > 0 ? (double)(total - done) / rate : 0;
    int width = 30, filled = total ? (int)(width * done / total) : width;
    fprintf(stderr, "\r[%.*s%*s] %lld/%lld samples, %.1f/s, ETA %.0fs ", filled,
            "##############################", width - filled, "", (long long)done, (long long)total, rate, eta);
    if (done == total) fputc('\n', stderr);
}

static bool parse_shard(const char *text, int32_t *index, int32_t *count) {
    char *slash = NULL;
    long i = strtol(text, &slash, 10);
    if (!slash || *slash != '/' || slash == text) return false;
    char *end = NULL;
    long n = strtol(slash + 1, &end, 10);
    if (!end || *end || end == slash + 1 || n < 1 || n > 1000000 || i < 0 || i >= n) return false;
    *index = (int32_t)i;
    *count = (int32_t)n;
    return true;
}

static int merge(int argc, char **argv) {
    const char *out = NULL;
    const char **dirs = calloc((size_t)argc, sizeof *dirs);
    size_t n = 0;
    if (!dirs) return TM_EXIT_FAILURE;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(help, stdout);
            free(dirs);
            return TM_EXIT_OK;
        }
        if (!strcmp(argv[i], "--out")) {
            if (i + 1 == argc) return free(dirs), tm_cli_usage("eval merge", "--out needs a folder");
            out = argv[++i];
        } else if (argv[i][0] == '-') {
            free(dirs);
            return tm_cli_usage("eval merge", "unknown option '%s'", argv[i]);
        } else dirs[n++] = argv[i];
    }
    if (!out || n == 0) {
        free(dirs);
        return tm_cli_usage("eval merge", "give the run folders to merge and --out DIR");
    }
    tm_error err = {0};
    tm_status status = tm_eval_merge(dirs, n, out, &err);
    free(dirs);
    if (status) return tm_cli_fail(&err);
    fprintf(stderr, "tracemark eval merge: %zu stores merged into %s\n", n, out);
    return TM_EXIT_OK;
}

/* Gumbel's choice is a function of the key, the context and p alone (the
 * seed only reaches repeated contexts), and watermarked sample i takes
 * prompt i mod P and key i mod K: samples L = lcm(P, K) apart are the same
 * text, and the run's intervals would count each text samples / L times.
 * Found with the shipped watermark-stories.yaml: 200 Gumbel samples, 10
 * prompts, 1 key, 10 distinct texts. Say so before the run starts. */
static void warn_repeated_texts(const tm_eval_task *t) {
    if (t->kind != TM_EVAL_KIND_WATERMARK || !t->n_prompts || !t->n_keys) return;
    size_t a = t->n_prompts, b = t->n_keys;
    while (b) {
        size_t r = a % b;
        a = b;
        b = r;
    }
    uint64_t period = (uint64_t)t->n_prompts / a * t->n_keys;
    if (period >= (uint64_t)t->samples) return;
    for (size_t k = 0; k < t->n_schemes; k++)
        if (t->schemes[k].kind == TM_WM_GUMBEL)
            fprintf(stderr,
                    "tracemark eval: warning: %s: Gumbel's text depends only on key and prompt, so its %d samples "
                    "hold only %llu distinct texts (%zu prompts, %zu keys), each counted about %d times: give at "
                    "least %d prompts (prompts_file) for independent samples\n",
                    t->scheme_names[k], (int)t->samples, (unsigned long long)period, t->n_prompts, t->n_keys,
                    (int)((t->samples + period - 1) / period), (int)t->samples);
}

int tm_cmd_eval(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "merge")) return merge(argc - 1, argv + 1);
    enum { OUT = 256, RESUME, SHARD, THREADS, JSON };
    static const struct option flags[] = {
        {"out", required_argument, 0, OUT},         {"resume", no_argument, 0, RESUME},
        {"shard", required_argument, 0, SHARD},     {"threads", required_argument, 0, THREADS},
        {"json", no_argument, 0, JSON},             {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    tm_eval_run_options options = {.threads = 1};
    bool json = false;
    long threads = 1;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", flags, NULL)) != -1) {
        switch (c) {
        case OUT: options.run_dir = optarg; break;
        case RESUME: options.resume = true; break;
        case SHARD:
            if (!parse_shard(optarg, &options.shard_index, &options.shard_count))
                return tm_cli_usage("eval", "--shard wants I/N with 0 <= I < N, got '%s'", optarg);
            break;
        case THREADS:
            if (!tm_cli_parse_int("eval", "--threads", optarg, 1, 256, &threads)) return TM_EXIT_USAGE;
            options.threads = (int32_t)threads;
            break;
        case JSON: json = true; break;
        case 'h': fputs(help, stdout); return TM_EXIT_OK;
        case ':': return tm_cli_usage("eval", "%s needs a value", argv[optind - 1]);
        default: return tm_cli_usage("eval", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1) return tm_cli_usage("eval", "give exactly one task file");
    if (!options.run_dir) return tm_cli_usage("eval", "--out RUN_DIR is required");
    const char *task_path = argv[optind];

    tm_error err = {0};
    tm_eval_task task;
    if (tm_eval_task_load(&task, task_path, true, &err)) return tm_cli_fail(&err);
    warn_repeated_texts(&task);
    progress_state p = {.tty = isatty(STDERR_FILENO), .start = tm_seconds_now()};
    int64_t ran = 0;
    options.progress = progress;
    options.user = &p;
    options.samples_run = &ran;
    tm_status status = tm_eval_run(&task, &options, &err);
    double seconds = tm_seconds_now() - p.start;
    if (status) {
        tm_eval_task_free(&task);
        return tm_cli_fail(&err);
    }
    if (json) {
        json_t *summary = json_pack("{s:s, s:s, s:s, s:I, s:f}", "task", task.name, "task_sha256", task.sha256,
                                    "run_dir", options.run_dir, "samples_run", (json_int_t)ran, "seconds", seconds);
        tm_eval_task_free(&task);
        return tm_cli_print_json(summary);
    }
    fprintf(stderr, "tracemark eval: %s: %lld samples in %.1fs; store and exports in %s\n", task.name,
            (long long)ran, seconds, options.run_dir);
    tm_eval_task_free(&task);
    return TM_EXIT_OK;
}
