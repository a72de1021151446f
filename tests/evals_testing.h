/* Helpers shared by the tests of evaluation runs (test_evals.c,
 * test_halluc_tasks.c): how many samples a run's store holds, and a run of
 * `tracemark eval` killed with SIGKILL once it has stored some samples, as
 * a crash or an impatient operator would leave it. Static inline only, so
 * each test file stays one translation unit. */
#ifndef TRACEMARK_TEST_EVALS_TESTING_H
#define TRACEMARK_TEST_EVALS_TESTING_H

#include "fixtures.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Rows in RUN_DIR/run.sqlite's samples table; -1 while there is no store. */
static inline long evals_test_stored_samples(const char *run_dir) {
    char *path = tm_test_path(run_dir, "run.sqlite");
    long n = -1;
    sqlite3 *db;
    if (tm_file_exists(path) && sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(db, "SELECT count(*) FROM samples", -1, &st, NULL) == SQLITE_OK) {
            if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int(st, 0);
            sqlite3_finalize(st);
        }
        sqlite3_close(db);
    }
    free(path);
    return n;
}

/* Starts `tracemark eval TASK --out RUN_DIR`, kills it with SIGKILL as soon
 * as at least `samples` samples are stored (waiting up to wait_ms), checks
 * that it died of the signal and returns how many samples it had stored.
 * A run that ends before it could be killed fails the test. */
static inline long evals_test_kill_after(const char *task, const char *run_dir, long samples, int wait_ms) {
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1), dup2(null, 2);
        execl(TRACEMARK_CLI, "tracemark", "eval", task, "--out", run_dir, (char *)NULL);
        _exit(127);
    }
    long seen = -1;
    for (int i = 0; i < wait_ms && seen < samples; i++) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
        seen = evals_test_stored_samples(run_dir);
        int early;
        cr_assert_neq(waitpid(pid, &early, WNOHANG), pid, "the run ended before it could be killed");
    }
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    return evals_test_stored_samples(run_dir);
}

#endif
