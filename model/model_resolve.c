/* Finding the model to run when the user names none: --model, then
 * $TRACEMARK_MODEL, then ./models/, then ../shared/models/, then the pinned
 * default (stories260K + tok512 from karpathy/tinyllamas) downloaded into
 * ./models/ with its SHA-256 checked before it is used. A download goes to a
 * temporary name and is renamed only once its hash matches. */
#include "tracemark/model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
    const char *name, *url, *sha256;
} pinned_file;

static const pinned_file default_model = {
    "stories260K.bin", "https://huggingface.co/karpathy/tinyllamas/resolve/main/stories260K/stories260K.bin",
    "b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696"};
static const pinned_file default_tokenizer = {
    "tok512.bin", "https://huggingface.co/karpathy/tinyllamas/resolve/main/stories260K/tok512.bin",
    "037cb335abb25d1fa9e8ecae30ed2a3a8ace9302862ebcdc05d51a6bbb10c312"};

static bool copy_path(char *out, size_t size, const char *folder, const char *name) {
    int n = folder ? snprintf(out, size, "%s/%s", folder, name) : snprintf(out, size, "%s", name);
    return n >= 0 && (size_t)n < size;
}

/* A llama2.c checkpoint needs a tokenizer.bin: take one lying beside it.
 * False when the path found does not fit in out. */
static bool sibling_tokenizer(const char *model_path, char *out, size_t size) {
    out[0] = '\0';
    size_t n = strlen(model_path);
    if (n < 4 || strcmp(model_path + n - 4, ".bin") != 0) return true;
    char folder[4096];
    const char *slash = strrchr(model_path, '/');
    int written = slash ? snprintf(folder, sizeof folder, "%.*s", (int)(slash - model_path), model_path)
                        : snprintf(folder, sizeof folder, ".");
    if (written < 0 || (size_t)written >= sizeof folder) return false;
    const char *candidates[] = {"tok512.bin", "tokenizer.bin"};
    for (size_t i = 0; i < 2; i++) {
        char path[4200];
        if (copy_path(path, sizeof path, folder, candidates[i]) && tm_file_exists(path) &&
            strcmp(path, model_path) != 0)
            return copy_path(out, size, NULL, path);
    }
    return true;
}

static bool default_pair_in(const char *folder, char *model, size_t model_size, char *tokenizer, size_t tokenizer_size) {
    if (!copy_path(model, model_size, folder, default_model.name) ||
        !copy_path(tokenizer, tokenizer_size, folder, default_tokenizer.name))
        return false;
    return tm_file_exists(model) && tm_file_exists(tokenizer);
}

static tm_status download(const pinned_file *file, const char *folder, char *out, size_t out_size, tm_error *err) {
    if (!copy_path(out, out_size, folder, file->name)) return tm_error_set(err, TM_ERR_ARGUMENT, "path too long");
    char temp[4200];
    snprintf(temp, sizeof temp, "%s.download", out);
    pid_t pid = fork();
    if (pid < 0) return tm_error_set(err, TM_ERR_IO, "cannot start curl: %s", strerror(errno));
    if (pid == 0) {
        freopen("/dev/null", "w", stdout);
        execlp("curl", "curl", "--silent", "--fail", "--location", "--max-time", "120", "--output", temp, file->url,
               (char *)NULL);
        _exit(127);
    }
    int wstatus = 0;
    waitpid(pid, &wstatus, 0);
    if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
        unlink(temp);
        return tm_error_set(err, TM_ERR_IO, "download of %s failed (curl exit %d)", file->url,
                            WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1);
    }
    char hex[TM_SHA256_HEX_SIZE];
    tm_status status = tm_sha256_file_hex(temp, hex, err);
    if (status == TM_OK && strcmp(hex, file->sha256) != 0)
        status = tm_error_set(err, TM_ERR_FORMAT, "download of %s has SHA-256 %s, expected %s", file->url, hex,
                              file->sha256);
    if (status == TM_OK && rename(temp, out) != 0)
        status = tm_error_set(err, TM_ERR_IO, "%s: rename: %s", out, strerror(errno));
    if (status != TM_OK) unlink(temp);
    return status;
}

tm_status tm_model_resolve(const char *explicit_path, char *model_path, size_t model_path_size, char *tokenizer_path,
                           size_t tokenizer_path_size, tm_error *err) {
    model_path[0] = tokenizer_path[0] = '\0';
    const char *chosen = explicit_path && *explicit_path ? explicit_path : getenv("TRACEMARK_MODEL");
    if (chosen && *chosen) {
        if (!tm_file_exists(chosen)) return tm_error_set(err, TM_ERR_NOT_FOUND, "%s: no such model file", chosen);
        if (!copy_path(model_path, model_path_size, NULL, chosen))
            return tm_error_set(err, TM_ERR_ARGUMENT, "model path too long");
        if (!sibling_tokenizer(model_path, tokenizer_path, tokenizer_path_size))
            return tm_error_set(err, TM_ERR_ARGUMENT, "tokenizer path too long");
        return TM_OK;
    }
    const char *folders[] = {"models", "../shared/models"};
    for (size_t i = 0; i < 2; i++)
        if (default_pair_in(folders[i], model_path, model_path_size, tokenizer_path, tokenizer_path_size)) return TM_OK;
    if (mkdir("models", 0755) != 0 && errno != EEXIST)
        return tm_error_set(err, TM_ERR_IO, "cannot create ./models: %s", strerror(errno));
    tm_status status = TM_OK;
    if (!tm_file_exists("models/stories260K.bin"))
        status = download(&default_model, "models", model_path, model_path_size, err);
    if (status == TM_OK && !tm_file_exists("models/tok512.bin"))
        status = download(&default_tokenizer, "models", tokenizer_path, tokenizer_path_size, err);
    if (status != TM_OK) {
        char reason[TM_ERROR_MESSAGE_MAX];
        snprintf(reason, sizeof reason, "%s", err ? err->message : "unknown");
        return tm_error_set(err, TM_ERR_NOT_FOUND,
                            "no model found: looked at --model, $TRACEMARK_MODEL, ./models/ and ../shared/models/ "
                            "for stories260K.bin + tok512.bin, and the download failed (%s)",
                            reason);
    }
    copy_path(model_path, model_path_size, "models", default_model.name);
    copy_path(tokenizer_path, tokenizer_path_size, "models", default_tokenizer.name);
    return TM_OK;
}
