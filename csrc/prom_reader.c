/* prom_reader.c - the SQL behind the Prometheus figures: one startup aggregate, then new rows only. */
#include "prom_reader.h"

#include <stdio.h>
#include <string.h>

#include "snapshot.h"
#include "timeutil.h"

/* Text bound for the sessions read at startup: an hour, plus the largest UTC offset, plus the
 * day boundary that cutting the bound to its date adds (see RECENT_MARGIN_MS in db_reader.c). */
#define SESSION_MARGIN_MS (PROM_ACTIVE_SESSION_MS + 15LL * 3600 * 1000)

/* A duration counts when it is a number, in the startup read and in new rows alike. */
#define DURATION_EXPR \
    "CASE WHEN typeof(duration_seconds) IN ('integer', 'real') THEN duration_seconds END"

/* %s: the phase column, or NULL before V3.  ?1 = max id.  Streamed into the engine's hash
 * table: cheaper than a GROUP BY, which has to sort the whole log first. */
static const char ALL_ROWS_SQL[] =
    "SELECT skill_name, %s, completed != 0, " DURATION_EXPR
    " FROM skill_invocation WHERE id <= ?1 AND skill_name IS NOT NULL";

/* %s: the session column, or NULL.  ?1 = max id, ?2 = the text bound. */
static const char SESSIONS_SQL[] =
    "SELECT %s, invoked_at FROM skill_invocation"
    " WHERE id <= ?1 AND invoked_at >= ?2 AND skill_name IS NOT NULL";

/* %s, %s: the phase and session columns (or NULL).  ?1 = last id seen, ?2 = up to. */
static const char NEW_ROWS_SQL[] =
    "SELECT id, skill_name, %s, completed != 0, " DURATION_EXPR ", %s, invoked_at"
    " FROM skill_invocation WHERE id > ?1 AND id <= ?2 AND skill_name IS NOT NULL ORDER BY id";

static int sql_fail(sqlite3 *db, char *err, size_t errlen, const char *what)
{
    snprintf(err, errlen, "%s: %s", what, sqlite3_errmsg(db));
    return -1;
}

/* Which of the optional columns the log has: workflow_phase came with V3, and a log written by
 * another tool may lack session_id.  Returns 0 or -1. */
static int log_columns(sqlite3 *db, const char **phase, const char **session)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT name FROM pragma_table_info('skill_invocation')", -1,
                                &st, NULL);
    *phase = "NULL";
    *session = "NULL";
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        rc = SQLITE_OK;
        const char *name = (const char *)sqlite3_column_text(st, 0);
        if (name && !strcmp(name, "workflow_phase"))
            *phase = "workflow_phase";
        else if (name && !strcmp(name, "session_id"))
            *session = "session_id";
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int prepare(sqlite3 *db, const char *fmt, const char *a, const char *b, sqlite3_stmt **st)
{
    char sql[1024];
    int n = snprintf(sql, sizeof(sql), fmt, a, b);
    if (n < 0 || (size_t)n >= sizeof(sql))
        return SQLITE_ERROR;
    return sqlite3_prepare_v2(db, sql, -1, st, NULL);
}

static int skill_ok(sqlite3_stmt *st, int col)
{
    return sqlite3_column_text(st, col) && sqlite3_column_bytes(st, col) <= SKILL_NAME_MAX;
}

/* Note the session of a row (columns session, invoked_at).  Returns 0 or -1 (out of memory). */
static int note_session(struct prom_engine *p, sqlite3_stmt *st, int session_col, int when_col)
{
    const char *session = (const char *)sqlite3_column_text(st, session_col);
    const char *when = (const char *)sqlite3_column_text(st, when_col);
    int64_t t_ms;
    size_t len = (size_t)sqlite3_column_bytes(st, session_col);

    if (!session || len == 0 || !when ||
        iso_parse_ms(when, (size_t)sqlite3_column_bytes(st, when_col), &t_ms) < 0)
        return 0; /* no session, or no time to age it by */
    return prom_session_seen(p, session, len, t_ms);
}

/* Count one row (skill, phase, completed, duration).  Returns 0 or -1 (out of memory). */
static int count_row(struct prom_engine *p, sqlite3_stmt *st, int col)
{
    if (!skill_ok(st, col))
        return 0;
    return prom_add_invocation(p, (const char *)sqlite3_column_text(st, col),
                               (size_t)sqlite3_column_bytes(st, col),
                               (const char *)sqlite3_column_text(st, col + 1),
                               (size_t)sqlite3_column_bytes(st, col + 1),
                               sqlite3_column_int(st, col + 2),
                               sqlite3_column_type(st, col + 3) != SQLITE_NULL,
                               sqlite3_column_double(st, col + 3));
}

static int load_totals(struct prom_engine *p, sqlite3 *db, const char *phase_col, int64_t max_id,
                       char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(db, ALL_ROWS_SQL, phase_col, "", &st);

    if (rc == SQLITE_OK)
        sqlite3_bind_int64(st, 1, max_id);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
        rc = count_row(p, st, 0) < 0 ? SQLITE_NOMEM : SQLITE_OK;
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : sql_fail(db, err, errlen, "startup totals for /metrics failed");
}

static int load_sessions(struct prom_engine *p, sqlite3 *db, const char *session_col,
                         int64_t max_id, int64_t now_ms, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    char bound[32];
    int rc = prepare(db, SESSIONS_SQL, session_col, "", &st);

    /* The date alone: 'T' and ' ' separators both sort after it, so no recent row is missed. */
    iso_format_ms(now_ms - SESSION_MARGIN_MS, bound);
    bound[10] = '\0';
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, max_id);
        sqlite3_bind_text(st, 2, bound, -1, SQLITE_TRANSIENT);
    }
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
        rc = note_session(p, st, 0, 1) < 0 ? SQLITE_NOMEM : SQLITE_OK;
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : sql_fail(db, err, errlen, "startup sessions for /metrics failed");
}

int prom_load(struct prom_engine *p, sqlite3 *db, int64_t max_id, int64_t now_ms, char *err,
              size_t errlen)
{
    const char *phase_col, *session_col;

    if (log_columns(db, &phase_col, &session_col) < 0)
        return sql_fail(db, err, errlen, "cannot read the columns of skill_invocation");
    if (load_totals(p, db, phase_col, max_id, err, errlen) < 0 ||
        load_sessions(p, db, session_col, max_id, now_ms, err, errlen) < 0)
        return -1;
    prom_set_last_id(p, max_id);
    return 0;
}

int prom_ingest(struct prom_engine *p, sqlite3 *db, int64_t up_to_id, char *err, size_t errlen)
{
    const char *phase_col, *session_col;
    sqlite3_stmt *st = NULL;
    int64_t last = prom_last_id(p);

    if (up_to_id <= last)
        return 0; /* nothing new: not even the column lookup */
    if (log_columns(db, &phase_col, &session_col) < 0)
        return sql_fail(db, err, errlen, "cannot read the columns of skill_invocation");
    int rc = prepare(db, NEW_ROWS_SQL, phase_col, session_col, &st);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, last);
        sqlite3_bind_int64(st, 2, up_to_id);
    }
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        rc = SQLITE_OK;
        /* The session first: noting it twice is harmless if the count below fails. */
        if (note_session(p, st, 5, 6) < 0 || count_row(p, st, 1) < 0) {
            rc = SQLITE_NOMEM;
            break;
        }
        last = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    /* Rows counted before a failure stay counted: the last id says how far the engine got. */
    prom_set_last_id(p, last);
    if (rc == SQLITE_NOMEM) {
        snprintf(err, errlen, "out of memory counting new rows for /metrics");
        return -1;
    }
    return rc == SQLITE_DONE ? 0 : sql_fail(db, err, errlen, "reading new rows for /metrics failed");
}
