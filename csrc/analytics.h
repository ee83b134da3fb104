/* analytics.h - per-skill rolling windows and z-score anomaly detection, in memory
 * (docs/realtime/WEBSOCKET_SERVER.md, "Anomaly detection"). */
#ifndef SB_ANALYTICS_H
#define SB_ANALYTICS_H

#include <stddef.h>
#include <stdint.h>

#include "history.h"
#include "snapshot.h"

#define ANALYTICS_HOUR_MS (3600LL * 1000)
#define ANALYTICS_DAY_MS (24 * ANALYTICS_HOUR_MS)

/* Detection needs at least this many baseline and current values: fewer would give a
 * z-score from noise. */
#define ANALYTICS_MIN_BASELINE 5
#define ANALYTICS_MIN_CURRENT 2

/* A baseline std of 0 is floored: 0.01 for completion, 1 % of the baseline mean for duration. */
#define ANALYTICS_COMPLETION_STD_FLOOR 0.01
#define ANALYTICS_DURATION_STD_FLOOR_FRACTION 0.01

struct analytics; /* opaque: the skills, their totals and their last-24 h events */

/* An empty engine, or NULL when out of memory. */
struct analytics *analytics_new(void);

/* Free the engine and everything it holds.  NULL is fine. */
void analytics_free(struct analytics *a);

/* From now on, also count every invocation analytics_add records (with a time) in h, which
 * must outlive the engine or be detached with NULL. */
void analytics_set_history(struct analytics *a, struct history *h);

/*
 * Record one invocation.  invoked_ms is -1 when its invoked_at is not a
 * time: it then counts in the totals only.  duration is NAN when NULL; it is
 * used only for completed invocations.  Rows may arrive in any time order.
 * Events older than 24 h before the newest `now` seen by analytics_evaluate
 * are kept out of the windows (they count in the totals).
 * Returns 0, or -1 when out of memory (the engine is then unchanged).
 */
int analytics_add(struct analytics *a, const char *skill, size_t skill_len, int64_t invoked_ms,
                  int completed, double duration);

/*
 * Record all-time totals read in bulk at startup (so that the log older
 * than 24 h need not be kept in memory): adds to the skill's totals without
 * adding window events.  last_ms is the newest parseable invoked_at, or -1.
 * Returns 0 or -1 when out of memory.
 */
int analytics_add_totals(struct analytics *a, const char *skill, size_t skill_len, int64_t total,
                         int64_t completed, int64_t n_durations, double sum_durations,
                         int64_t last_ms);

/*
 * The figures as of now_ms: windows [now-24h, now] and [now-1h, now], the
 * baseline [now-24h, now-1h) and the current window [now-1h, now].
 * Fills *skills (n_skills entries, owned by the caller, as metrics_build
 * wants them) and *detected (the anomalies active at now_ms for `threshold`,
 * owned by the caller).  Events older than the 24 h window are dropped from
 * memory.  Returns 0, or -1 when out of memory (nothing is returned then).
 */
int analytics_evaluate(struct analytics *a, int64_t now_ms, double threshold,
                       struct skill_stats **skills, size_t *n_skills,
                       struct anomaly **detected, size_t *n_detected);

/*
 * The z-score rule on summary statistics, exposed for tests: baseline n, mean
 * and sample std; current n and mean.  Returns 1 and sets *z when both sides
 * have enough values, else 0.  std_floor replaces a baseline std of 0.
 */
int analytics_zscore(size_t n_base, double mean_base, double std_base, size_t n_cur,
                     double mean_cur, double std_floor, double *z);

#endif
