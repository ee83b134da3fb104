/* snapshot.h - one tick's metrics (skills and anomalies) and its JSON forms. */
#ifndef SB_SNAPSHOT_H
#define SB_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "json_writer.h"

struct prom_view;

/* A skill name is at most this many bytes: a longer one in a request gets
 * invalid_request, and rows that carry one in the DB are skipped, so that no name can swell
 * every update or reply. */
#define SKILL_NAME_MAX 1024

/* An epoch names one numbering of seq (section 9 of the protocol): 16 lowercase hex digits of
 * randomness, new whenever the numbering starts again (each server start). */
#define SB_EPOCH_LEN 16

/* Per-skill figures; field names follow the wire protocol's metrics_update
 * (docs/realtime/WEBSOCKET_SERVER.md, "Wire protocol v1"). */
struct skill_stats {
    char *name;                     /* owned */
    size_t name_len;
    int64_t total_invocations;      /* all time */
    int64_t completed_invocations;  /* all time */
    double avg_duration_seconds;    /* all time, completed only; NAN = none */
    int64_t invocation_count;       /* last 24 h */
    int64_t completed_count;        /* last 24 h */
    double avg_duration;            /* last 24 h, completed only; NAN = none */
    int64_t invocation_count_1h;
    int64_t last_invocation_ms;     /* -1 = unknown */
    int is_anomalous;
};

enum anomaly_type { ANOMALY_PERFORMANCE_DROP, ANOMALY_PERFORMANCE_SPIKE, ANOMALY_PATTERN_SHIFT };

struct anomaly {
    char *skill_name;               /* owned */
    size_t skill_len;
    enum anomaly_type type;
    double baseline_value;
    double observed_value;
    double deviation_score;         /* signed z */
    int64_t detected_ms;
};

/* The figures read at one tick.  Immutable once built; shared between the
 * snapshots of consecutive ticks when the DB could not be read (stale). */
struct metrics {
    int refs;                       /* atomic */
    struct skill_stats *skills;     /* ranked: 24 h count desc, total desc, name asc */
    size_t n_skills;
    struct skill_stats **by_name;   /* the same entries sorted by name, for lookups */
    struct anomaly *anomalies;      /* sorted by |deviation_score| desc */
    size_t n_anomalies;
};

/* One broadcast: metrics plus the envelope of the tick that produced it. */
struct snapshot {
    int refs;                       /* atomic */
    uint64_t seq;                   /* 1, 2, ... within the epoch */
    char epoch[SB_EPOCH_LEN + 1];
    int64_t taken_ms;
    int stale;
    size_t top_n;
    struct metrics *metrics;        /* owned reference */
    struct prom_view *prom;         /* owned reference to the Prometheus figures, or NULL (the
                                     * copies kept for recovery have none) */
};

/* Take ownership of the arrays (entries' strings included), rank them and
 * build the name index.  Returns a metrics with one reference, or NULL when
 * out of memory (the arrays are then freed). */
struct metrics *metrics_build(struct skill_stats *skills, size_t n_skills,
                              struct anomaly *anomalies, size_t n_anomalies);
void metrics_ref(struct metrics *m);
void metrics_unref(struct metrics *m);

/* Free the strings of the entries and the arrays (for error paths before metrics_build). */
void skill_stats_free_array(struct skill_stats *skills, size_t n);
void anomaly_free_array(struct anomaly *anomalies, size_t n);

/* The entry for a skill name, or NULL. */
const struct skill_stats *metrics_find(const struct metrics *m, const char *name, size_t len);

/* A fresh epoch into out: random, so that a client holding a seq of an earlier run (or of
 * another server, or of a Redis that lost its data) never mistakes it for one of this numbering.
 * Returns 0, or -1 when the random source failed. */
int epoch_new(char out[SB_EPOCH_LEN + 1]);

/* A snapshot holding a new reference to m, numbered seq in epoch (SB_EPOCH_LEN characters,
 * copied).  Returns NULL when out of memory. */
struct snapshot *snapshot_new(struct metrics *m, const char *epoch, uint64_t seq,
                              int64_t taken_ms, int stale, size_t top_n);
void snapshot_ref(struct snapshot *s);
void snapshot_unref(struct snapshot *s);

/* The heap bytes of s's envelope, plus those of its figures when with_metrics is set (as
 * malloc_usable_size reports them), for the recovery store's accounting. */
size_t snapshot_heap_bytes(const struct snapshot *s, int with_metrics);

/* Append the full `metrics_update` message for a subscription: skill NULL
 * means all skills (the top N), otherwise only that skill's entry and
 * anomalies.  Check out->failed afterwards. */
void snapshot_write_update(const struct snapshot *s, const char *skill, size_t skill_len,
                           jbuf *out);

/* Append one anomaly as the wire's `anomalies` entries spell it (skill_name, anomaly_type,
 * baseline_value, observed_value, deviation_score, detected_at). */
void snapshot_write_anomaly(jbuf *out, const struct anomaly *a);

/* Append the `data` object of a `metrics_response` for one skill entry. */
void snapshot_write_skill_metrics(const struct skill_stats *st, jbuf *out);

/* Append the ISO form of unix_ms ("2026-02-10T12:00:00.123Z"), or null when ms < 0 (unknown):
 * how every time of an update or reply is spelt. */
void snapshot_write_time(jbuf *out, int64_t ms);

/* Append the completion rate done / total (0..1), or null when total <= 0 (nothing was ever
 * invoked): the `completion_rate` of updates and replies. */
void snapshot_write_rate(jbuf *out, int64_t done, int64_t total);

/* The name of an anomaly type, as the DB's anomaly_type column and the wire spell it. */
const char *anomaly_type_name(enum anomaly_type t);

/* The anomaly type named `name` (NUL-terminated; NULL allowed) into *out.  Returns 0, or -1
 * for a name that is none of them. */
int anomaly_type_parse(const char *name, enum anomaly_type *out);

#endif
