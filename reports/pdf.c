/* PDF through headless Chromium: the HTML report printed by the browser
 * (Debian's chromium), with a private temporary profile, no GPU, no
 * background networking, and every host name resolved to nowhere, so that
 * printing can never fetch anything. It must never run a shell (the browser
 * is started with posix_spawn and an argument vector) nor leave the
 * temporary profile behind. */
#include "reports_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static bool executable(const char *path) { return access(path, X_OK) == 0; }

const char *tm_report_find_browser(void) {
    static char found[4096];
    const char *env = getenv("TRACEMARK_CHROMIUM");
    if (env && *env) return executable(env) ? env : NULL;
    static const char *const names[] = {"chromium", "chromium-browser", "google-chrome"};
    const char *path = getenv("PATH");
    if (!path) path = "/usr/bin:/bin";
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        const char *p = path;
        while (*p) {
            const char *colon = strchr(p, ':');
            size_t len = colon ? (size_t)(colon - p) : strlen(p);
            if (len && len + strlen(names[i]) + 2 < sizeof found) {
                snprintf(found, sizeof found, "%.*s/%s", (int)len, p, names[i]);
                if (executable(found)) return found;
            }
            p += len + (colon ? 1 : 0);
        }
    }
    return NULL;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

tm_status tm_report_print_pdf(const char *html_path, const char *pdf_path, tm_error *err) {
    const char *browser = tm_report_find_browser();
    if (!browser)
        return tm_error_set(err, TM_ERR_NOT_FOUND,
                            "no PDF: Chromium is not installed (apt-get install chromium, or set TRACEMARK_CHROMIUM)");
    char *html_abs = realpath(html_path, NULL);
    if (!html_abs) return tm_error_set(err, TM_ERR_IO, "%s: %s", html_path, strerror(errno));
    const char *tmp = getenv("TMPDIR");
    char profile[4096];
    snprintf(profile, sizeof profile, "%s/tracemark-pdf-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(profile)) {
        free(html_abs);
        return tm_error_set(err, TM_ERR_IO, "cannot create a temporary browser profile: %s", strerror(errno));
    }
    char pdf_tmp[4096 + 16], user_dir[4200], print_to[8300], url[4200];
    snprintf(pdf_tmp, sizeof pdf_tmp, "%s/out.pdf", profile);
    snprintf(user_dir, sizeof user_dir, "--user-data-dir=%s/profile", profile);
    snprintf(print_to, sizeof print_to, "--print-to-pdf=%s", pdf_tmp);
    /* file:// URL of the absolute path, percent-encoded beyond [A-Za-z0-9/._~-] */
    size_t u = (size_t)snprintf(url, sizeof url, "file://");
    for (const unsigned char *c = (const unsigned char *)html_abs; *c && u + 4 < sizeof url; c++) {
        if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || strchr("/._~-", *c))
            url[u++] = (char)*c;
        else u += (size_t)snprintf(url + u, sizeof url - u, "%%%02X", *c);
    }
    url[u] = 0;
    free(html_abs);
    char *argv[] = {(char *)browser,
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--no-first-run",
                    "--disable-extensions",
                    "--disable-sync",
                    "--host-resolver-rules=MAP * ~NOTFOUND",
                    "--no-pdf-header-footer",
                    user_dir,
                    print_to,
                    url,
                    NULL};
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int rc = posix_spawn(&pid, browser, &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    tm_status status = TM_OK;
    if (rc != 0) status = tm_error_set(err, TM_ERR_IO, "cannot start %s: %s", browser, strerror(rc));
    else {
        int ws = 0;
        while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {}
        char *pdf = NULL;
        size_t size = 0;
        tm_error e = {0};
        if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
            status = tm_error_set(err, TM_ERR_IO, "%s failed printing the PDF (exit status %d)", browser,
                                  WIFEXITED(ws) ? WEXITSTATUS(ws) : -1);
        else if (tm_read_file(pdf_tmp, &pdf, &size, &e) || size < 5 || memcmp(pdf, "%PDF-", 5))
            status = tm_error_set(err, TM_ERR_IO, "%s wrote no PDF", browser);
        else status = tm_write_file_atomic(pdf_path, pdf, size, 0644, err);
        free(pdf);
    }
    nftw(profile, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return status;
}
