/* prom_metrics.h - session-buddy's Prometheus figures, kept incrementally from the invocation log. */
#ifndef SB_PROM_METRICS_H
#define SB_PROM_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "snapshot.h"

/*
 * The figures behind the unprefixed names session-buddy's own exporter used:
 *   skill_invocations_total{skill_name,workflow_phase,completed}  every row of the log
 *   skill_duration_seconds{skill_name,workflow_phase}              rows with a numeric duration
 *   anomalies_detected_total{anomaly_type,skill_name}              each time a (skill, type)
 *                                                                  enters the broadcast list
 *   active_sessions_total        distinct session_id with an invocation in the last hour
 * (skill_completion_rate comes from the snapshot's own skill figures).
 * The ticker feeds the engine with the rows it reads anyway; nothing here scans the table.
 */

/* Upper bounds (seconds) of the duration histogram, as session-buddy's exporter set them;
 * +Inf is implied. */
#define PROM_DURATION_BUCKETS 9
extern const double prom_duration_bounds[PROM_DURATION_BUCKETS];

/* A session is active while its newest invocation is at most this old. */
#define PROM_ACTIVE_SESSION_MS (3600LL * 1000)

/* The label used for a NULL or empty workflow_phase, as session-buddy's exporter normalises it. */
#define PROM_UNKNOWN_PHASE "unknown"

/* One (skill, workflow_phase) pair. */
struct prom_series {
    char *skill;                                  /* owned, NUL-terminated */
    size_t skill_len;
    char *phase;                                  /* owned, NUL-terminated */
    size_t phase_len;
    uint64_t calls[2];                            /* [0] not completed, [1] completed */
    uint64_t buckets[PROM_DURATION_BUCKETS + 1];  /* not cumulative; the last is above every bound */
    uint64_t n_durations;
    double sum_durations;
};

/* How often one (skill, type) became active. */
struct prom_anomaly_count {
    char *skill;                                  /* owned, NUL-terminated */
    size_t skill_len;
    enum anomaly_type type;
    uint64_t count;
};

/* A frozen copy for /metrics: immutable once built and shared by snapshots (reference counted). */
struct prom_view {
    int refs;                                     /* atomic */
    struct prom_series *series;                   /* sorted by skill, then phase */
    size_t n_series;
    struct prom_anomaly_count *anomalies;         /* sorted by type, then skill */
    size_t n_anomalies;
    int64_t active_sessions;
};

struct prom_engine; /* opaque; used by the ticker thread only */

/* An empty engine, or NULL when out of memory. */
struct prom_engine *prom_new(void);

/* Free the engine and everything it holds (views already handed out stay valid).  NULL is fine. */
void prom_free(struct prom_engine *p);

/*
 * Count one invocation of the log.  phase may be NULL (no phase: "unknown").
 * duration is counted only when has_duration is set.  Returns 0, or -1 when
 * out of memory (the engine is then unchanged).
 */
int prom_add_invocation(struct prom_engine *p, const char *skill, size_t skill_len,
                        const char *phase, size_t phase_len, int completed, int has_duration,
                        double duration);

/* Note an invocation of session at invoked_ms (-1 = unknown time: ignored).  Returns 0 or -1. */
int prom_session_seen(struct prom_engine *p, const char *session, size_t len, int64_t invoked_ms);

/*
 * The broadcast anomaly list of a tick: each (skill, type) in it that was not
 * in the previous tick's list is counted once.  Returns 0, or -1 when out of
 * memory (nothing is counted then, and the previous list is kept).
 */
int prom_anomalies_seen(struct prom_engine *p, const struct anomaly *list, size_t n);

/* The newest id of the log the engine has counted (0 before any). */
int64_t prom_last_id(const struct prom_engine *p);
void prom_set_last_id(struct prom_engine *p, int64_t id);

/*
 * The figures as of now_ms, as a new reference.  Sessions idle for more than
 * PROM_ACTIVE_SESSION_MS are forgotten here.  The previous view is returned
 * again when nothing changed.  NULL when out of memory.
 */
struct prom_view *prom_view_get(struct prom_engine *p, int64_t now_ms);

/* Take one more reference (any thread). */
void prom_view_ref(struct prom_view *v);
/* Drop a reference; the last one frees the view.  NULL is fine. */
void prom_view_unref(struct prom_view *v);

#endif
