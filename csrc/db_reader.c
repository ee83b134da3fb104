/* db_reader.c - incremental reads of skill_invocation, anomaly rows, and noticing a lost DB file. */
#include "db_reader.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "timeutil.h"

/* A locked DB must turn into a stale tick quickly, not a stalled ticker. */
#define BUSY_TIMEOUT_MS 250
/* A burst of new rows is ingested over several ticks, so no tick runs unbounded. */
#define INGEST_BATCH 200000
/* Text bound for "recent" rows: 24 h plus the largest UTC offset plus a day boundary. */
#define RECENT_MARGIN_MS (24LL * 3600 * 1000 + 15LL * 3600 * 1000)

static const char RECENT_SQL[] =
    "SELECT id, skill_name, invoked_at, completed, duration_seconds FROM skill_invocation"
    " WHERE id <= ?1 AND invoked_at >= ?2 AND skill_name IS NOT NULL";

static const char OLD_TOTALS_SQL[] =
    "SELECT skill_name, COUNT(*), SUM(completed != 0),"
    " SUM(completed != 0 AND duration_seconds IS NOT NULL),"
    " TOTAL(CASE WHEN completed != 0 THEN duration_seconds END), MAX(julianday(invoked_at)),"
    " SUM(julianday(invoked_at) IS NULL)"
    " FROM skill_invocation"
    " WHERE id <= ?1 AND (invoked_at < ?2 OR invoked_at IS NULL) AND skill_name IS NOT NULL"
    " GROUP BY skill_name";

static const char NEW_ROWS_SQL[] =
    "SELECT id, skill_name, invoked_at, completed, duration_seconds FROM skill_invocation"
    " WHERE id > ?1 AND skill_name IS NOT NULL ORDER BY id LIMIT ?2";

static const char OPEN_ANOMALIES_SQL[] =
    "SELECT skill_name, anomaly_type, baseline_value, observed_value, deviation_score,"
    " MAX(julianday(detected_at))"
    " FROM skill_anomalies"
    " WHERE resolved_at IS NULL AND skill_name IS NOT NULL AND julianday(detected_at) >= ?1"
    " GROUP BY skill_name, anomaly_type";

static double to_julian(int64_t ms) { return (double)ms / 86400000.0 + 2440587.5; }

static int64_t from_julian(double jd) { return (int64_t)llround((jd - 2440587.5) * 86400000.0); }

static double column_double_or_nan(sqlite3_stmt *st, int col)
{
    return sqlite3_column_type(st, col) == SQLITE_NULL ? NAN : sqlite3_column_double(st, col);
}

int dbr_init(struct db_reader *r, const char *path)
{
    memset(r, 0, sizeof(*r));
    r->path = strdup(path);
    if (!r->path)
        return -1;
    pthread_mutex_init(&r->db_lock, NULL);
    return 0;
}

static void db_close(struct db_reader *r)
{
    pthread_mutex_lock(&r->db_lock);
    sqlite3 *db = r->db;
    r->db = NULL;
    pthread_mutex_unlock(&r->db_lock);
    if (db)
        sqlite3_close_v2(db);
}

void dbr_close(struct db_reader *r)
{
    if (!r->path)
        return;
    db_close(r);
    free(r->path);
    r->path = NULL;
    pthread_mutex_destroy(&r->db_lock);
}

void dbr_interrupt(struct db_reader *r)
{
    pthread_mutex_lock(&r->db_lock);
    if (r->db)
        sqlite3_interrupt(r->db);
    pthread_mutex_unlock(&r->db_lock);
}

/* Record a failure: the reason goes to err and the connection is closed for a fresh start. */
static int fail(struct db_reader *r, char *err, size_t errlen, const char *what)
{
    int code = r->db ? sqlite3_errcode(r->db) : SQLITE_CANTOPEN;
    snprintf(err, errlen, "%s: %s", what, r->db ? sqlite3_errmsg(r->db) : "no connection");
    /* Only a busy DB is surely the same file afterwards; anything else is re-read from scratch. */
    if (code != SQLITE_BUSY && code != SQLITE_LOCKED && code != SQLITE_INTERRUPT)
        r->must_reload = 1;
    db_close(r);
    return -1;
}

/* 1 when the table exists, 0 when not, -1 when the schema cannot be read (locked, corrupt). */
static int table_exists(sqlite3 *db, const char *name)
{
    sqlite3_stmt *st = NULL;
    int found = -1;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?1", -1,
                           &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        found = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
    }
    sqlite3_finalize(st);
    return found;
}

static int db_open(struct db_reader *r, char *err, size_t errlen)
{
    struct stat sb;
    sqlite3 *db = NULL;

    if (stat(r->path, &sb) < 0) {
        snprintf(err, errlen, "%s: %s", r->path, strerror(errno));
        r->must_reload = 1;
        return -1;
    }
    /* FULLMUTEX: sqlite3_interrupt may arrive from the thread that stops the server. */
    int rc = sqlite3_open_v2(r->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL);
    pthread_mutex_lock(&r->db_lock);
    r->db = db;
    pthread_mutex_unlock(&r->db_lock);
    if (rc != SQLITE_OK)
        return fail(r, err, errlen, "cannot open the database");
    sqlite3_busy_timeout(r->db, BUSY_TIMEOUT_MS);
    int has_log = table_exists(r->db, "skill_invocation");
    if (has_log < 0)
        return fail(r, err, errlen, "cannot read the schema");
    if (!has_log)
        return fail(r, err, errlen, "no skill_invocation table (not a skills database?)");
    r->has_anomalies_table = table_exists(r->db, "skill_anomalies") == 1;
    r->has_cache_table = table_exists(r->db, "skill_metrics_cache") == 1;
    r->dev = sb.st_dev;
    r->ino = sb.st_ino;
    return 0;
}

static int64_t max_invocation_id(struct db_reader *r, int *ok)
{
    sqlite3_stmt *st = NULL;
    int64_t id = 0;
    *ok = sqlite3_prepare_v2(r->db, "SELECT COALESCE(MAX(id), 0) FROM skill_invocation", -1, &st,
                             NULL) == SQLITE_OK &&
          sqlite3_step(st) == SQLITE_ROW;
    if (*ok)
        id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return id;
}

int dbr_prepare(struct db_reader *r, int has_engine, int *fresh, char *err, size_t errlen)
{
    struct stat sb;

    *fresh = !has_engine;
    if (r->db) {
        if (stat(r->path, &sb) < 0) {
            snprintf(err, errlen, "%s: %s", r->path,
                     errno == ENOENT ? "the database file was deleted" : strerror(errno));
            db_close(r);
            r->must_reload = 1; /* a new file may even reuse the inode number */
            return -1;
        }
        if (sb.st_dev != r->dev || sb.st_ino != r->ino) {
            db_close(r); /* replaced: read the new file from scratch */
            *fresh = 1;
        }
    }
    if (!r->db) {
        dev_t old_dev = r->dev;
        ino_t old_ino = r->ino;
        if (db_open(r, err, errlen) < 0)
            return -1;
        if (r->dev != old_dev || r->ino != old_ino || r->must_reload)
            *fresh = 1;
        r->must_reload = 0;
    }
    if (!*fresh) {
        int ok;
        int64_t max_id = max_invocation_id(r, &ok);
        if (!ok)
            return fail(r, err, errlen, "cannot read skill_invocation");
        if (max_id < r->last_id)
            *fresh = 1; /* the log shrank: not the file we were reading */
    }
    return 0;
}

/* 0 when the name is short enough to serve; else 1, and the row is counted as skipped. */
static int name_too_long(struct db_reader *r, sqlite3_stmt *st, int col)
{
    if ((size_t)sqlite3_column_bytes(st, col) <= SKILL_NAME_MAX)
        return 0;
    r->long_names++;
    return 1;
}

/* Add one row (id, skill_name, invoked_at, completed, duration_seconds) to the engine. */
static int add_row(struct db_reader *r, struct analytics *eng, sqlite3_stmt *st,
                   int64_t *unparseable)
{
    if (name_too_long(r, st, 1))
        return 0;
    const char *name = (const char *)sqlite3_column_text(st, 1);
    size_t name_len = (size_t)sqlite3_column_bytes(st, 1);
    const char *when = (const char *)sqlite3_column_text(st, 2);
    size_t when_len = (size_t)sqlite3_column_bytes(st, 2);
    int64_t t_ms = -1;

    if (!when || iso_parse_ms(when, when_len, &t_ms) < 0) {
        t_ms = -1;
        (*unparseable)++;
    }
    return analytics_add(eng, name ? name : "", name ? name_len : 0, t_ms,
                         sqlite3_column_int(st, 3) != 0, column_double_or_nan(st, 4));
}

int dbr_load_all(struct db_reader *r, struct analytics *eng, int64_t now_ms, int64_t *unparseable,
                 char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    char bound[32];
    int ok, rc;

    if (sqlite3_exec(r->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        return fail(r, err, errlen, "cannot begin the startup read");
    int64_t max_id = max_invocation_id(r, &ok);
    if (!ok)
        goto error;

    /* Rows are split by text, so each lands in exactly one of the two reads below. */
    iso_format_ms(now_ms - RECENT_MARGIN_MS, bound);
    bound[10] = '\0'; /* the date alone: 'T' and ' ' separators both sort after it */

    rc = sqlite3_prepare_v2(r->db, OLD_TOTALS_SQL, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, max_id);
        sqlite3_bind_text(st, 2, bound, -1, SQLITE_TRANSIENT);
    }
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        rc = SQLITE_OK;
        if (name_too_long(r, st, 0))
            continue;
        const char *name = (const char *)sqlite3_column_text(st, 0);
        int64_t last = sqlite3_column_type(st, 5) == SQLITE_NULL
                           ? -1 : from_julian(sqlite3_column_double(st, 5));
        *unparseable += sqlite3_column_int64(st, 6);
        if (analytics_add_totals(eng, name, (size_t)sqlite3_column_bytes(st, 0),
                                 sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 2),
                                 sqlite3_column_int64(st, 3), sqlite3_column_double(st, 4),
                                 last) < 0)
            rc = SQLITE_NOMEM;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc != SQLITE_DONE)
        goto error;

    rc = sqlite3_prepare_v2(r->db, RECENT_SQL, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, max_id);
        sqlite3_bind_text(st, 2, bound, -1, SQLITE_TRANSIENT);
    }
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
        rc = add_row(r, eng, st, unparseable) < 0 ? SQLITE_NOMEM : SQLITE_OK;
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        goto error;
    sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL);
    r->last_id = max_id;
    return 0;

error:
    return fail(r, err, errlen, "startup read of skill_invocation failed");
}

int dbr_ingest(struct db_reader *r, struct analytics *eng, int64_t *unparseable, char *err,
               size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int64_t last = r->last_id;
    int rc = sqlite3_prepare_v2(r->db, NEW_ROWS_SQL, -1, &st, NULL);

    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, r->last_id);
        sqlite3_bind_int(st, 2, INGEST_BATCH);
    }
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        rc = add_row(r, eng, st, unparseable) < 0 ? SQLITE_NOMEM : SQLITE_OK;
        last = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    /* Rows added before a failure stay added: last_id says how far the engine got. */
    r->last_id = last;
    if (rc != SQLITE_DONE)
        return fail(r, err, errlen, "reading new skill_invocation rows failed");
    return 0;
}

int dbr_read_open_anomalies(struct db_reader *r, int64_t now_ms, struct anomaly **out,
                            size_t *n_out, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    struct anomaly *list = NULL;
    size_t n = 0, cap = 0;
    int rc;

    *out = NULL;
    *n_out = 0;
    if (!r->has_anomalies_table)
        return 0;
    rc = sqlite3_prepare_v2(r->db, OPEN_ANOMALIES_SQL, -1, &st, NULL);
    if (rc == SQLITE_OK)
        sqlite3_bind_double(st, 1, to_julian(now_ms - 3600LL * 1000));
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        enum anomaly_type type;
        rc = SQLITE_OK;
        if (anomaly_type_parse((const char *)sqlite3_column_text(st, 1), &type) < 0)
            continue; /* a type this protocol cannot express */
        if (name_too_long(r, st, 0))
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct anomaly *grown = realloc(list, ncap * sizeof(*grown));
            if (!grown) {
                rc = SQLITE_NOMEM;
                break;
            }
            list = grown;
            cap = ncap;
        }
        struct anomaly *a = &list[n];
        memset(a, 0, sizeof(*a));
        size_t len = (size_t)sqlite3_column_bytes(st, 0);
        a->skill_name = malloc(len + 1);
        if (!a->skill_name) {
            rc = SQLITE_NOMEM;
            break;
        }
        memcpy(a->skill_name, sqlite3_column_text(st, 0), len);
        a->skill_name[len] = '\0';
        a->skill_len = len;
        n++;
        a->type = type;
        a->baseline_value = column_double_or_nan(st, 2);
        a->observed_value = column_double_or_nan(st, 3);
        a->deviation_score = column_double_or_nan(st, 4);
        a->detected_ms = from_julian(sqlite3_column_double(st, 5));
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        anomaly_free_array(list, n);
        return fail(r, err, errlen, "reading skill_anomalies failed");
    }
    *out = list;
    *n_out = n;
    return 0;
}

int dbr_begin_write(struct db_reader *r, char *err, size_t errlen)
{
    if (sqlite3_exec(r->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot write anomaly records: %s", sqlite3_errmsg(r->db));
        return -1;
    }
    return 0;
}

int dbr_commit(struct db_reader *r, char *err, size_t errlen)
{
    if (sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot commit anomaly records: %s", sqlite3_errmsg(r->db));
        dbr_rollback(r);
        return -1;
    }
    return 0;
}

void dbr_rollback(struct db_reader *r)
{
    if (r->db && !sqlite3_get_autocommit(r->db))
        sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
}

int64_t dbr_open_anomaly(struct db_reader *r, const struct anomaly *a, int64_t now_ms)
{
    sqlite3_stmt *st = NULL;
    char when[32];
    int64_t id = -1;
    const char *type = anomaly_type_name(a->type);

    if (sqlite3_prepare_v2(r->db,
                           "SELECT id FROM skill_anomalies WHERE skill_name = ?1 AND anomaly_type = ?2"
                           " AND resolved_at IS NULL AND julianday(detected_at) >= ?3"
                           " ORDER BY id DESC LIMIT 1",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, a->skill_name, (int)a->skill_len, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, type, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 3, to_julian(now_ms - 3600LL * 1000));
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW)
        return id;
    if (rc != SQLITE_DONE)
        return -1;

    iso_format_ms(now_ms, when);
    if (sqlite3_prepare_v2(r->db,
                           "INSERT INTO skill_anomalies (skill_name, detected_at, anomaly_type,"
                           " baseline_value, observed_value, deviation_score)"
                           " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, a->skill_name, (int)a->skill_len, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, when, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, type, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 4, a->baseline_value);
    sqlite3_bind_double(st, 5, a->observed_value);
    sqlite3_bind_double(st, 6, a->deviation_score);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? sqlite3_last_insert_rowid(r->db) : -1;
}

int dbr_resolve_anomaly(struct db_reader *r, int64_t row_id, int64_t now_ms)
{
    sqlite3_stmt *st = NULL;
    char when[32];
    iso_format_ms(now_ms, when);
    if (sqlite3_prepare_v2(r->db, "UPDATE skill_anomalies SET resolved_at = ?1 WHERE id = ?2", -1,
                           &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, when, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, row_id);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

int dbr_resolve_open_anomaly(struct db_reader *r, const char *skill, size_t len,
                             enum anomaly_type type, int64_t now_ms)
{
    sqlite3_stmt *st = NULL;
    char when[32];
    iso_format_ms(now_ms, when);
    if (sqlite3_prepare_v2(r->db,
                           "UPDATE skill_anomalies SET resolved_at = ?1 WHERE skill_name = ?2"
                           " AND anomaly_type = ?3 AND resolved_at IS NULL"
                           " AND julianday(detected_at) >= ?4",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, when, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, skill, (int)len, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, anomaly_type_name(type), -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 4, to_julian(now_ms - 3600LL * 1000));
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

int dbr_update_cache(struct db_reader *r, const char *skill, size_t len, int anomalous, double score)
{
    sqlite3_stmt *st = NULL;
    if (!r->has_cache_table)
        return 0;
    if (sqlite3_prepare_v2(r->db,
                           "UPDATE skill_metrics_cache SET is_anomalous = ?1, anomaly_score = ?2"
                           " WHERE skill_name = ?3",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int(st, 1, anomalous);
    if (anomalous)
        sqlite3_bind_double(st, 2, score);
    else
        sqlite3_bind_null(st, 2);
    sqlite3_bind_text(st, 3, skill, (int)len, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}
