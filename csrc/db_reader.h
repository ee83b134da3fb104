/* db_reader.h - reads one tick's metrics from the skills DB with plain SQL. */
#ifndef SB_DB_READER_H
#define SB_DB_READER_H

#include <pthread.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "snapshot.h"

struct db_reader {
    char *path;               /* owned */
    pthread_mutex_t db_lock;  /* guards changes of db against dbr_interrupt from other threads */
    sqlite3 *db;              /* opened lazily, closed after a failure so the next tick reopens */
    int has_anomalies_table;  /* V4's skill_anomalies exists */
    int warned_no_v4;         /* the missing-V4 warning was given */
    int warned_bad_time;      /* the unparseable-invoked_at warning was given */
};

/* Conditions worth one warning per server run; each is reported only once. */
struct dbr_warnings {
    int no_v4;                  /* the DB lacks V4's skill_anomalies table */
    int64_t unparseable_times;  /* invocations whose invoked_at is not a time */
};

/* Remember the path; no I/O yet.  Returns 0, or -1 when out of memory. */
int dbr_init(struct db_reader *r, const char *path);

/* Close the connection and free the path. */
void dbr_close(struct db_reader *r);

/* Abort a read in progress, from any thread (stop() must not wait for a long query). */
void dbr_interrupt(struct db_reader *r);

/* Read every skill's all-time and windowed figures as of now_ms, plus the
 * unresolved anomalies of the last hour.  Returns a new metrics, or NULL
 * with a reason in err (the connection is then closed, to be reopened on the
 * next call).  *warn is filled with conditions seen for the first time.
 * An invoked_at that is not a time counts in the totals only. */
struct metrics *dbr_read(struct db_reader *r, int64_t now_ms, struct dbr_warnings *warn,
                         char *err, size_t errlen);

#endif
