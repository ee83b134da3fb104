/* ticker.h - the DB thread: builds a snapshot every interval (or on demand) and publishes it. */
#ifndef SB_TICKER_H
#define SB_TICKER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "db_reader.h"
#include "event_queue.h"
#include "snapshot.h"

/* Receives each new snapshot (a reference the callee must eventually drop).
 * Runs on the ticker thread. */
typedef void (*ticker_publish_fn)(void *ctx, struct snapshot *s);

struct ticker {
    /* configuration, fixed before ticker_start */
    int64_t interval_us;
    size_t top_n;
    ticker_publish_fn publish;
    void *publish_ctx;
    struct event_queue *events;

    /* guarded by lock */
    pthread_mutex_t lock;
    pthread_cond_t wake;          /* CLOCK_MONOTONIC */
    int stop;
    uint64_t requested_id;        /* last on-demand tick asked for */
    uint64_t done_id;             /* last on-demand tick served */
    struct snapshot *latest;      /* for Python's in-process clients */

    /* ticker thread only */
    struct db_reader reader;
    struct metrics *last_good;
    uint64_t seq;
    int in_outage;
    pthread_t thread;
    int started;
};

/* Set up (no thread yet).  Returns 0, or -1 when out of memory. */
int ticker_init(struct ticker *t, const char *db_path, int64_t interval_us, size_t top_n,
                struct event_queue *events, ticker_publish_fn publish, void *publish_ctx);

/* Start the thread; the first tick happens at once.  Returns 0 or an errno. */
int ticker_start(struct ticker *t);

/* Ask for a tick now.  Returns the request id that an EV_TICK_DONE event
 * will carry once the snapshot is published. */
uint64_t ticker_request_tick(struct ticker *t);

/* A new reference to the latest snapshot, or NULL before the first tick. */
struct snapshot *ticker_latest(struct ticker *t);

/* Stop and join the thread (if started), then free everything. */
void ticker_destroy(struct ticker *t);

#endif
