/* db_reader.c - the plain-SQL snapshot: one aggregate scan of skill_invocation per tick. */
#include "db_reader.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A locked DB must turn into a stale tick quickly, not a stalled ticker. */
#define BUSY_TIMEOUT_MS 250

static const char SKILLS_SQL[] =
    "SELECT skill_name, COUNT(*), SUM(completed != 0),"
    " AVG(CASE WHEN completed != 0 THEN duration_seconds END),"
    " SUM(jd >= ?1 AND jd <= ?3), SUM(jd >= ?1 AND jd <= ?3 AND completed != 0),"
    " AVG(CASE WHEN jd >= ?1 AND jd <= ?3 AND completed != 0 THEN duration_seconds END),"
    " SUM(jd >= ?2 AND jd <= ?3), MAX(jd), SUM(jd IS NULL)"
    " FROM (SELECT skill_name, completed, duration_seconds, julianday(invoked_at) AS jd"
    "       FROM skill_invocation WHERE skill_name IS NOT NULL)"
    " GROUP BY skill_name";

/* One row per (skill, type): the most recent unresolved one of the last hour. */
static const char ANOMALIES_SQL[] =
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

static char *dup_text(sqlite3_stmt *st, int col, size_t *len)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    char *copy = t ? malloc(n + 1) : NULL;
    if (copy) {
        memcpy(copy, t, n);
        copy[n] = '\0';
        *len = n;
    }
    return copy;
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

static int db_open(struct db_reader *r, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    sqlite3 *db = NULL;
    /* FULLMUTEX: sqlite3_interrupt may arrive from the thread that stops the server. */
    int rc = sqlite3_open_v2(r->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL);
    pthread_mutex_lock(&r->db_lock);
    r->db = db;
    pthread_mutex_unlock(&r->db_lock);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", r->path,
                 db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        db_close(r);
        return -1;
    }
    sqlite3_busy_timeout(r->db, BUSY_TIMEOUT_MS);
    rc = sqlite3_prepare_v2(r->db,
                            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='skill_anomalies'",
                            -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        r->has_anomalies_table = rc == SQLITE_ROW;
        if (rc == SQLITE_ROW || rc == SQLITE_DONE)
            rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot read the schema of %s: %s", r->path, sqlite3_errmsg(r->db));
        db_close(r);
        return -1;
    }
    return 0;
}

static int read_skills(struct db_reader *r, int64_t now_ms, struct skill_stats **out, size_t *n_out,
                       int64_t *unparseable, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    struct skill_stats *skills = NULL;
    size_t n = 0, cap = 0;
    int rc = sqlite3_prepare_v2(r->db, SKILLS_SQL, -1, &st, NULL);

    if (rc == SQLITE_OK) {
        sqlite3_bind_double(st, 1, to_julian(now_ms - 24LL * 3600 * 1000));
        sqlite3_bind_double(st, 2, to_julian(now_ms - 3600LL * 1000));
        sqlite3_bind_double(st, 3, to_julian(now_ms));
    }
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        rc = SQLITE_OK;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            struct skill_stats *grown = realloc(skills, ncap * sizeof(*grown));
            if (!grown) {
                rc = SQLITE_NOMEM;
                break;
            }
            skills = grown;
            cap = ncap;
        }
        struct skill_stats *s = &skills[n];
        memset(s, 0, sizeof(*s));
        s->name = dup_text(st, 0, &s->name_len);
        if (!s->name) {
            rc = SQLITE_NOMEM;
            break;
        }
        n++;
        s->total_invocations = sqlite3_column_int64(st, 1);
        s->completed_invocations = sqlite3_column_int64(st, 2);
        s->avg_duration_seconds = column_double_or_nan(st, 3);
        s->invocation_count = sqlite3_column_int64(st, 4);
        s->completed_count = sqlite3_column_int64(st, 5);
        s->avg_duration = column_double_or_nan(st, 6);
        s->invocation_count_1h = sqlite3_column_int64(st, 7);
        s->last_invocation_ms = sqlite3_column_type(st, 8) == SQLITE_NULL
                                    ? -1 : from_julian(sqlite3_column_double(st, 8));
        *unparseable += sqlite3_column_int64(st, 9);
    }
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "reading skill_invocation failed: %s",
                 rc == SQLITE_NOMEM ? "out of memory" : sqlite3_errmsg(r->db));
        sqlite3_finalize(st);
        skill_stats_free_array(skills, n);
        return -1;
    }
    sqlite3_finalize(st);
    *out = skills;
    *n_out = n;
    return 0;
}

static int parse_anomaly_type(const unsigned char *t, enum anomaly_type *out)
{
    if (!t)
        return -1;
    if (!strcmp((const char *)t, "performance_drop"))
        *out = ANOMALY_PERFORMANCE_DROP;
    else if (!strcmp((const char *)t, "performance_spike"))
        *out = ANOMALY_PERFORMANCE_SPIKE;
    else if (!strcmp((const char *)t, "pattern_shift"))
        *out = ANOMALY_PATTERN_SHIFT;
    else
        return -1;
    return 0;
}

static int read_anomalies(struct db_reader *r, int64_t now_ms, struct anomaly **out,
                          size_t *n_out, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    struct anomaly *list = NULL;
    size_t n = 0, cap = 0;
    int rc = sqlite3_prepare_v2(r->db, ANOMALIES_SQL, -1, &st, NULL);

    if (rc == SQLITE_OK)
        sqlite3_bind_double(st, 1, to_julian(now_ms - 3600LL * 1000));
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        enum anomaly_type type;
        rc = SQLITE_OK;
        if (parse_anomaly_type(sqlite3_column_text(st, 1), &type) < 0)
            continue; /* a type this protocol cannot express */
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
        a->skill_name = dup_text(st, 0, &a->skill_len);
        if (!a->skill_name) {
            rc = SQLITE_NOMEM;
            break;
        }
        n++;
        a->type = type;
        a->baseline_value = column_double_or_nan(st, 2);
        a->observed_value = column_double_or_nan(st, 3);
        a->deviation_score = column_double_or_nan(st, 4);
        a->detected_ms = from_julian(sqlite3_column_double(st, 5));
    }
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "reading skill_anomalies failed: %s",
                 rc == SQLITE_NOMEM ? "out of memory" : sqlite3_errmsg(r->db));
        sqlite3_finalize(st);
        anomaly_free_array(list, n);
        return -1;
    }
    sqlite3_finalize(st);
    *out = list;
    *n_out = n;
    return 0;
}

struct metrics *dbr_read(struct db_reader *r, int64_t now_ms, struct dbr_warnings *warn,
                         char *err, size_t errlen)
{
    struct skill_stats *skills = NULL;
    struct anomaly *anomalies = NULL;
    size_t n_skills = 0, n_anomalies = 0;
    int64_t unparseable = 0;

    memset(warn, 0, sizeof(*warn));
    if (!r->db && db_open(r, err, errlen) < 0)
        return NULL;
    if (!r->has_anomalies_table && !r->warned_no_v4) {
        r->warned_no_v4 = 1;
        warn->no_v4 = 1;
    }
    /* One read transaction, so skills and anomalies describe the same instant. */
    if (sqlite3_exec(r->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot begin a read: %s", sqlite3_errmsg(r->db));
        db_close(r);
        return NULL;
    }
    if (read_skills(r, now_ms, &skills, &n_skills, &unparseable, err, errlen) < 0)
        goto error;
    if (unparseable && !r->warned_bad_time) {
        r->warned_bad_time = 1;
        warn->unparseable_times = unparseable;
    }
    if (r->has_anomalies_table &&
        read_anomalies(r, now_ms, &anomalies, &n_anomalies, err, errlen) < 0)
        goto error;
    sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL);

    struct metrics *m = metrics_build(skills, n_skills, anomalies, n_anomalies);
    if (!m)
        snprintf(err, errlen, "out of memory building a snapshot");
    return m;

error:
    skill_stats_free_array(skills, n_skills);
    db_close(r);
    return NULL;
}
