/* db_reader.h - the skills DB seen from the ticker: incremental reads, fault detection, anomaly records. */
#ifndef SB_DB_READER_H
#define SB_DB_READER_H

#include <pthread.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "analytics.h"
#include "snapshot.h"

struct db_reader {
    char *path;               /* owned */
    pthread_mutex_t db_lock;  /* guards changes of db against dbr_interrupt from other threads */
    sqlite3 *db;              /* opened lazily, closed after a failure so the next tick reopens */
    dev_t dev;                /* identity of the file db reads, to notice deletion or replacement */
    ino_t ino;
    int has_anomalies_table;  /* V4's skill_anomalies exists */
    int has_cache_table;      /* V4's skill_metrics_cache exists */
    int64_t last_id;          /* newest skill_invocation.id ingested */
    int64_t long_names;       /* reads of a row skipped for a skill_name over SKILL_NAME_MAX bytes */
    int must_reload;          /* the file went away or failed oddly: re-read it from scratch */
};

/* Remember the path; no I/O yet.  Returns 0, or -1 when out of memory. */
int dbr_init(struct db_reader *r, const char *path);

/* Close the connection and free the path. */
void dbr_close(struct db_reader *r);

/* Abort a read in progress, from any thread (stop() must not wait for a long query). */
void dbr_interrupt(struct db_reader *r);

/*
 * Make sure the connection reads the file now at `path`: open it if needed,
 * and notice a deleted file (error) or a replaced one (reopen).  *fresh is
 * set to 1 when the caller must rebuild its engine with dbr_load_all (a new
 * connection to a different file, or the log shrank).  Returns 0, or -1 with
 * a reason in err (the connection is closed).
 */
int dbr_prepare(struct db_reader *r, int has_engine, int *fresh, char *err, size_t errlen);

/*
 * Rows whose skill_name is longer than SKILL_NAME_MAX bytes are skipped by every read below
 * (invocations and anomaly rows alike) and counted in r->long_names (a row read again, after
 * a reload or on every tick for anomaly rows, counts again).
 *
 * The startup read: all-time totals per skill (one aggregate scan) and every
 * invocation of the last ~2 days as window events.  *unparseable counts rows
 * whose invoked_at is not a time.  Returns 0 or -1 (err set).
 */
int dbr_load_all(struct db_reader *r, struct analytics *eng, int64_t now_ms, int64_t *unparseable,
                 char *err, size_t errlen);

/* Ingest the rows added since the last call (id > last_id).  Returns 0 or -1 (err set). */
int dbr_ingest(struct db_reader *r, struct analytics *eng, int64_t *unparseable, char *err,
               size_t errlen);

/* Unresolved skill_anomalies rows of the last hour, one per (skill, type),
 * as written by anyone.  Returns 0 or -1 (err set). */
int dbr_read_open_anomalies(struct db_reader *r, int64_t now_ms, struct anomaly **out,
                            size_t *n_out, char *err, size_t errlen);

/* Writes, inside one transaction: begin/commit return 0 or -1 (err set); rollback never fails. */
int dbr_begin_write(struct db_reader *r, char *err, size_t errlen);
int dbr_commit(struct db_reader *r, char *err, size_t errlen);
void dbr_rollback(struct db_reader *r);

/* The row of a newly active anomaly: an unresolved row of the last hour for the
 * same (skill, type) is adopted, else one is inserted.  Returns its id, or -1. */
int64_t dbr_open_anomaly(struct db_reader *r, const struct anomaly *a, int64_t now_ms);

/* Set resolved_at on a row.  Returns 0 or -1. */
int dbr_resolve_anomaly(struct db_reader *r, int64_t row_id, int64_t now_ms);

/* Set resolved_at on every unresolved row of the last hour for (skill, type): the rows that
 * dbr_open_anomaly would adopt.  For an anomaly whose row id is not known in this file.
 * Returns 0 or -1. */
int dbr_resolve_open_anomaly(struct db_reader *r, const char *skill, size_t len,
                             enum anomaly_type type, int64_t now_ms);

/* skill_metrics_cache.is_anomalous / anomaly_score of one skill.  Returns 0 or -1. */
int dbr_update_cache(struct db_reader *r, const char *skill, size_t len, int anomalous, double score);

#endif
