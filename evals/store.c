/* The run store: RUN_DIR/run.sqlite (SQLite, WAL journal, synchronous=FULL)
 * holding the run's meta (task snapshot and hash, model hash, version,
 * commit, machine, shard) and one row per completed sample, each inserted in
 * its own transaction so that a kill at any moment leaves whole samples
 * only. A new store is built under a temporary name and renamed into place
 * once its meta is committed: a store that exists is a store of a task. This
 * file never decides what a sample is, and never prints. */
#include "tracemark/evals.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct tm_eval_store {
    sqlite3 *db;
    sqlite3_stmt *has, *put, *get;
    char path[TM_EVAL_PATH_MAX + 16];
};

static const char schema[] =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE samples("
    " id INTEGER PRIMARY KEY,"
    " grp TEXT NOT NULL,"
    " input TEXT NOT NULL,"
    " output TEXT NOT NULL,"
    " scores TEXT NOT NULL,"
    " prompt_sha256 TEXT NOT NULL,"
    " document_sha256 TEXT NOT NULL,"
    " target_sha256 TEXT NOT NULL,"
    " seconds REAL NOT NULL);";

static tm_status db_error(tm_eval_store *s, sqlite3 *db, tm_status code, const char *what, tm_error *err) {
    return tm_error_set(err, code, "%s: %s: %s", s ? s->path : "run store", what, db ? sqlite3_errmsg(db) : "failed");
}

static tm_status exec(sqlite3 *db, const char *sql, const char *path, tm_error *err) {
    char *message = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &message) == SQLITE_OK) return TM_OK;
    tm_status s = tm_error_set(err, TM_ERR_IO, "%s: %s", path, message ? message : "SQLite error");
    sqlite3_free(message);
    return s;
}

static tm_status prepare_statements(tm_eval_store *s, tm_error *err) {
    if (sqlite3_prepare_v2(s->db, "SELECT 1 FROM samples WHERE id = ?", -1, &s->has, NULL) ||
        sqlite3_prepare_v2(s->db,
                           "INSERT INTO samples(id, grp, input, output, scores, prompt_sha256, document_sha256,"
                           " target_sha256, seconds) VALUES(?,?,?,?,?,?,?,?,?)",
                           -1, &s->put, NULL) ||
        sqlite3_prepare_v2(s->db,
                           "SELECT id, grp, input, output, scores, prompt_sha256, document_sha256, target_sha256,"
                           " seconds FROM samples WHERE id = ?",
                           -1, &s->get, NULL))
        return db_error(s, s->db, TM_ERR_IO, "preparing statements", err);
    return TM_OK;
}

static tm_status put_meta(sqlite3 *db, const char *key, const char *value, const char *path, tm_error *err) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "INSERT INTO meta(key, value) VALUES(?, ?)", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK) return tm_error_set(err, TM_ERR_IO, "%s: writing meta %s: %s", path, key, sqlite3_errmsg(db));
    return TM_OK;
}

tm_status tm_eval_store_create(tm_eval_store **out, const char *run_dir, const tm_eval_store_meta *meta,
                               tm_error *err) {
    *out = NULL;
    char path[TM_EVAL_PATH_MAX + 16], temp[TM_EVAL_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/run.sqlite", run_dir);
    snprintf(temp, sizeof temp, "%s/run.sqlite.%d.tmp", run_dir, (int)getpid());
    if (tm_file_exists(path))
        return tm_error_set(err, TM_ERR_ARGUMENT, "%s: a run store is already there (use --resume to continue it)", path);
    unlink(temp);
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(temp, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        tm_status s = tm_error_set(err, TM_ERR_IO, "%s: cannot create: %s", path, db ? sqlite3_errmsg(db) : "");
        sqlite3_close(db);
        return s;
    }
    char seed[32], n_samples[32], shard[32], shards[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)meta->seed);
    snprintf(n_samples, sizeof n_samples, "%lld", (long long)meta->n_samples);
    snprintf(shard, sizeof shard, "%d", (int)meta->shard_index);
    snprintf(shards, sizeof shards, "%d", (int)meta->shard_count);
    const char *pairs[][2] = {
        {"format", "tracemark-run-store-1"}, {"task_sha256", meta->task_sha256},
        {"task_snapshot", meta->task_snapshot}, {"task_path", meta->task_path},
        {"kind", meta->kind},                  {"seed", seed},
        {"model_sha256", meta->model_sha256},  {"n_samples", n_samples},
        {"shard_index", shard},                {"shard_count", shards},
        {"tracemark_version", meta->version},  {"tracemark_commit", meta->commit},
        {"machine", meta->machine},
    };
    tm_status status = exec(db, "BEGIN", path, err);
    if (!status) status = exec(db, schema, path, err);
    for (size_t i = 0; !status && i < sizeof pairs / sizeof pairs[0]; i++)
        status = put_meta(db, pairs[i][0], pairs[i][1], path, err);
    if (!status) status = exec(db, "COMMIT", path, err);
    sqlite3_close(db);
    /* link() fails when the name exists: two runs racing for one folder cannot both win. */
    if (!status && link(temp, path) != 0)
        status = tm_error_set(err, TM_ERR_IO, "%s: cannot put the store in place", path);
    unlink(temp);
    if (status) return status;
    tm_eval_store_meta ignored;
    status = tm_eval_store_open(out, run_dir, &ignored, err);
    if (!status) tm_eval_store_meta_free(&ignored);
    return status;
}

static char *get_meta(sqlite3 *db, const char *key) {
    sqlite3_stmt *st = NULL;
    char *value = NULL;
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = ?", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
            value = strdup((const char *)sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    return value;
}

tm_status tm_eval_store_open(tm_eval_store **out, const char *run_dir, tm_eval_store_meta *meta, tm_error *err) {
    *out = NULL;
    memset(meta, 0, sizeof *meta);
    tm_eval_store *s = calloc(1, sizeof *s);
    if (!s) return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    snprintf(s->path, sizeof s->path, "%s/run.sqlite", run_dir);
    if (!tm_file_exists(s->path)) {
        free(s);
        return tm_error_set(err, TM_ERR_NOT_FOUND, "%s/run.sqlite: no run store there", run_dir);
    }
    tm_status status = TM_OK;
    if (sqlite3_open_v2(s->path, &s->db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
        status = db_error(s, s->db, TM_ERR_IO, "cannot open", err);
    /* WAL: a commit is one append to the log; synchronous FULL fsyncs it, so a
     * committed sample survives a kill or a power cut. */
    if (!status) sqlite3_busy_timeout(s->db, 10000);
    if (!status) status = exec(s->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", s->path, err);
    if (!status) {
        char *format = get_meta(s->db, "format");
        if (!format || strcmp(format, "tracemark-run-store-1"))
            status = tm_error_set(err, TM_ERR_FORMAT, "%s: not a tracemark run store", s->path);
        free(format);
    }
    if (!status) status = prepare_statements(s, err);
    if (!status) {
        char *v;
#define COPY(key, field)                                                                                   \
    v = get_meta(s->db, key);                                                                              \
    snprintf(meta->field, sizeof meta->field, "%s", v ? v : "");                                           \
    free(v);
        COPY("task_sha256", task_sha256)
        COPY("model_sha256", model_sha256)
        COPY("task_path", task_path)
        COPY("kind", kind)
        COPY("tracemark_version", version)
        COPY("tracemark_commit", commit)
        COPY("machine", machine)
#undef COPY
        meta->task_snapshot = get_meta(s->db, "task_snapshot");
        char *seed = get_meta(s->db, "seed"), *n = get_meta(s->db, "n_samples");
        char *si = get_meta(s->db, "shard_index"), *sc = get_meta(s->db, "shard_count");
        if (!meta->task_snapshot || !seed || !n || !si || !sc)
            status = tm_error_set(err, TM_ERR_FORMAT, "%s: run store without its meta", s->path);
        else {
            meta->seed = strtoull(seed, NULL, 10);
            meta->n_samples = strtoll(n, NULL, 10);
            meta->shard_index = (int32_t)atoi(si);
            meta->shard_count = (int32_t)atoi(sc);
        }
        free(seed), free(n), free(si), free(sc);
    }
    if (status) {
        tm_eval_store_meta_free(meta);
        tm_eval_store_close(s);
        return status;
    }
    *out = s;
    return TM_OK;
}

void tm_eval_store_meta_free(tm_eval_store_meta *meta) {
    if (!meta) return;
    free(meta->task_snapshot);
    meta->task_snapshot = NULL;
}

void tm_eval_store_close(tm_eval_store *s) {
    if (!s) return;
    sqlite3_finalize(s->has);
    sqlite3_finalize(s->put);
    sqlite3_finalize(s->get);
    sqlite3_close(s->db);
    free(s);
}

bool tm_eval_store_has(tm_eval_store *s, int64_t id) {
    sqlite3_reset(s->has);
    sqlite3_bind_int64(s->has, 1, id);
    bool found = sqlite3_step(s->has) == SQLITE_ROW;
    sqlite3_reset(s->has);
    return found;
}

static void record_from_row(sqlite3_stmt *st, tm_eval_record *r) {
    memset(r, 0, sizeof *r);
    r->id = sqlite3_column_int64(st, 0);
    snprintf(r->group, sizeof r->group, "%s", (const char *)sqlite3_column_text(st, 1));
    r->input = strdup((const char *)sqlite3_column_text(st, 2));
    r->output = strdup((const char *)sqlite3_column_text(st, 3));
    r->scores = strdup((const char *)sqlite3_column_text(st, 4));
    snprintf(r->prompt_sha256, sizeof r->prompt_sha256, "%s", (const char *)sqlite3_column_text(st, 5));
    snprintf(r->document_sha256, sizeof r->document_sha256, "%s", (const char *)sqlite3_column_text(st, 6));
    snprintf(r->target_sha256, sizeof r->target_sha256, "%s", (const char *)sqlite3_column_text(st, 7));
    r->seconds = sqlite3_column_double(st, 8);
}

static bool same_record(const tm_eval_record *a, const tm_eval_record *b) {
    return a->id == b->id && !strcmp(a->group, b->group) && a->input && b->input && !strcmp(a->input, b->input) &&
           a->output && b->output && !strcmp(a->output, b->output) && a->scores && b->scores &&
           !strcmp(a->scores, b->scores) && !strcmp(a->prompt_sha256, b->prompt_sha256) &&
           !strcmp(a->document_sha256, b->document_sha256) && !strcmp(a->target_sha256, b->target_sha256);
}

tm_status tm_eval_store_put(tm_eval_store *s, const tm_eval_record *r, tm_error *err) {
    sqlite3_reset(s->get);
    sqlite3_bind_int64(s->get, 1, r->id);
    if (sqlite3_step(s->get) == SQLITE_ROW) {
        tm_eval_record old;
        record_from_row(s->get, &old);
        sqlite3_reset(s->get);
        bool same = same_record(&old, r);
        tm_eval_record_free(&old);
        if (!same)
            return tm_error_set(err, TM_ERR_FORMAT, "%s: sample %lld is stored with different contents", s->path,
                                (long long)r->id);
        return TM_OK;
    }
    sqlite3_reset(s->get);
    sqlite3_reset(s->put);
    sqlite3_bind_int64(s->put, 1, r->id);
    sqlite3_bind_text(s->put, 2, r->group, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->put, 3, r->input, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->put, 4, r->output, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->put, 5, r->scores, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->put, 6, r->prompt_sha256, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->put, 7, r->document_sha256, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->put, 8, r->target_sha256, -1, SQLITE_STATIC);
    sqlite3_bind_double(s->put, 9, r->seconds);
    /* Outside BEGIN/COMMIT an INSERT is its own transaction: one commit per sample. */
    int rc = sqlite3_step(s->put);
    sqlite3_reset(s->put);
    if (rc != SQLITE_DONE) return db_error(s, s->db, TM_ERR_IO, "storing a sample", err);
    return TM_OK;
}

tm_status tm_eval_store_records(tm_eval_store *s, tm_eval_record **records, size_t *n, tm_error *err) {
    *records = NULL;
    *n = 0;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT id, grp, input, output, scores, prompt_sha256, document_sha256, target_sha256,"
                           " seconds FROM samples ORDER BY id",
                           -1, &st, NULL) != SQLITE_OK)
        return db_error(s, s->db, TM_ERR_IO, "reading samples", err);
    size_t capacity = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == capacity) {
            size_t grown = capacity ? capacity * 2 : 256;
            tm_eval_record *bigger = realloc(*records, grown * sizeof *bigger);
            if (!bigger) {
                sqlite3_finalize(st);
                return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
            }
            *records = bigger;
            capacity = grown;
        }
        record_from_row(st, &(*records)[(*n)++]);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return db_error(s, s->db, TM_ERR_IO, "reading samples", err);
    return TM_OK;
}

void tm_eval_record_free(tm_eval_record *r) {
    if (!r) return;
    free(r->input);
    free(r->output);
    free(r->scores);
    r->input = r->output = r->scores = NULL;
}
