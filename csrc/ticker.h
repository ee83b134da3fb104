/* ticker.h - the DB thread: builds a snapshot every interval (or on demand) and publishes it. */
#ifndef SB_TICKER_H
#define SB_TICKER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "analytics.h"
#include "anomaly_watch.h"
#include "db_reader.h"
#include "event_queue.h"
#include "prom_metrics.h"
#include "snapshot.h"

/* An anomaly the engine reports as active, with the DB row that records it. */
struct active_anomaly {
    char *skill;          /* owned */
    size_t skill_len;
    enum anomaly_type type;
    int64_t row_id;       /* 0 when not known: not recorded (recording off, or no V4 table),
                           * or carried over a reload of the DB */
    int64_t detected_ms;
    double deviation_score;
};

#define TICK_HISTORY 4096
/* Upper bounds (seconds) of the tick-duration histogram buckets; +Inf is implied. */
#define TICK_BUCKETS 11
extern const double tick_bucket_bounds[TICK_BUCKETS];

/* Cumulative figures of the ticker for /metrics and /healthz. */
struct ticker_metrics {
    uint64_t ticks;
    uint64_t buckets[TICK_BUCKETS + 1];  /* non-cumulative counts; the last is +Inf */
    double duration_sum_s;
    uint64_t db_errors;                  /* ticks that could not read the DB */
    int64_t last_tick_ms;                /* wall time of the last tick, -1 before the first */
    int64_t last_ok_ms;                  /* wall time of the last tick that read the DB, or -1 */
    int db_ok;                           /* the last tick read the DB */
};

/* Receives each new snapshot (a reference the callee must eventually drop).
 * Runs on the ticker thread. */
typedef void (*ticker_publish_fn)(void *ctx, struct snapshot *s);

struct recovery;

struct ticker {
    /* configuration, fixed before ticker_start */
    int64_t interval_us;
    size_t top_n;
    double threshold;
    int record_anomalies;
    ticker_publish_fn publish;
    void *publish_ctx;
    struct event_queue *events;
    struct recovery *recovery;    /* every snapshot of the recovery window (thread-safe) */
    struct history *history;      /* the engine's invocations in 10 s buckets (thread-safe) */

    /* guarded by lock */
    pthread_mutex_t lock;
    char epoch[SB_EPOCH_LEN + 1]; /* the numbering of seq now: changes on a publisher's takeover
                                   * and with an edge's stream; read it with ticker_epoch */
    pthread_cond_t wake;          /* CLOCK_MONOTONIC */
    int stop;
    uint64_t requested_id;        /* last on-demand tick asked for */
    uint64_t done_id;             /* last on-demand tick served */
    struct snapshot *latest;      /* for Python's in-process clients */
    uint64_t ticks;               /* tick durations, for benchmarks and /metrics */
    int64_t first_tick_us;
    uint32_t tick_us[TICK_HISTORY];
    struct ticker_metrics metrics;
    int adopt_pending;            /* a publisher took over a stream: number on from it */
    char adopt_epoch[SB_EPOCH_LEN + 1];
    uint64_t adopt_seq;

    /* ticker thread only */
    struct db_reader reader;
    struct analytics *engine;     /* NULL until the first successful startup read */
    struct prom_engine *prom;     /* session-buddy's Prometheus figures; set with engine */
    struct active_anomaly *active;
    size_t n_active;
    struct anomaly_watch watch;   /* the broadcast anomaly set, for webhooks */
    struct metrics *last_good;
    struct prom_view *last_prom;  /* with last_good: what a stale tick serves */
    uint64_t seq;                 /* of the newest snapshot: 1, 2, ... without gaps */
    int warned_recovery;          /* one warning per run when recovery ran out of memory */
    int in_outage;
    int warned_no_v4;
    int warned_bad_time;
    int warned_long_name;         /* one warning per run about skill names over SKILL_NAME_MAX */
    int write_pending;            /* the last anomaly write failed: try again even if unchanged */
    int write_failing;            /* one warning per streak of failed writes */
    pthread_t thread;
    int started;
};

/* Most snapshots a recovery store ever holds, whatever the window and interval. */
#define RECOVERY_MAX_SNAPSHOTS 200000

/* Set up (no thread yet), with a new random epoch and a recovery store keeping
 * recovery_window_ms of snapshots (0: none).  Returns 0, or -1 when out of memory. */
int ticker_init(struct ticker *t, const char *db_path, int64_t interval_us, size_t top_n,
                double threshold, int record_anomalies, int64_t recovery_window_ms,
                struct event_queue *events, ticker_publish_fn publish, void *publish_ctx);

/* Start the thread; the first tick happens at once.  Returns 0 or an errno. */
int ticker_start(struct ticker *t);

/* Ask for a tick now.  Returns the request id that an EV_TICK_DONE event
 * will carry once the snapshot is published. */
uint64_t ticker_request_tick(struct ticker *t);

/* A new reference to the latest snapshot, or NULL before the first tick. */
struct snapshot *ticker_latest(struct ticker *t);

/* Number the snapshots from the next tick on as epoch (SB_EPOCH_LEN characters), seq + 1,
 * seq + 2...: a publisher that took the lease goes on with the stream's numbering.  Any
 * thread. */
void ticker_adopt(struct ticker *t, const char *epoch, uint64_t seq);

/* Make s (a new reference is taken) the latest snapshot, and its epoch the current one: an
 * edge's states, which come from Redis instead of this ticker's thread (never started on an
 * edge). */
void ticker_set_latest(struct ticker *t, struct snapshot *s);

/* Copy up to max recent tick durations (µs, oldest first) into out; returns
 * how many, and the total tick count and the startup tick's duration. */
/* Copy the current epoch into out (any thread). */
void ticker_epoch(struct ticker *t, char out[SB_EPOCH_LEN + 1]);

size_t ticker_tick_stats(struct ticker *t, uint32_t *out, size_t max, uint64_t *ticks,
                         int64_t *first_tick_us);

/* A copy of the cumulative figures (any thread). */
void ticker_get_metrics(struct ticker *t, struct ticker_metrics *out);

/* Stop and join the thread (if started), then free everything. */
void ticker_destroy(struct ticker *t);

#endif
