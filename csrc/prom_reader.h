/* prom_reader.h - feeds the Prometheus figures (prom_metrics.h) from skill_invocation. */
#ifndef SB_PROM_READER_H
#define SB_PROM_READER_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "prom_metrics.h"

/*
 * The startup read, once per (re)load of the DB: every row with id <= max_id
 * counted into the engine (one scan of the log, no sort: cheaper than a GROUP
 * BY), and the sessions of the rows of roughly the last day and a half
 * (through the invoked_at index).  Sets the engine's last id to max_id.
 * Returns 0, or -1 with a reason in err (the engine must then be discarded).
 */
int prom_load(struct prom_engine *p, sqlite3 *db, int64_t max_id, int64_t now_ms, char *err,
              size_t errlen);

/*
 * Count the rows the engine has not seen, up to up_to_id (the id the ticker's
 * own reader reached): a range read on the primary key, so its cost follows
 * the new rows only.  Rows counted before a failure stay counted.  Returns 0,
 * or -1 with a reason in err.
 */
int prom_ingest(struct prom_engine *p, sqlite3 *db, int64_t up_to_id, char *err, size_t errlen);

#endif
