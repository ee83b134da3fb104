/* redis_edge.h - the edge role: follow the publisher's stream in Redis and hand each state on. */
#ifndef SB_REDIS_EDGE_H
#define SB_REDIS_EDGE_H

#include <stddef.h>
#include <stdint.h>

#include "redis_link.h"
#include "snapshot.h"

struct history;

/*
 * The edge reads P:stream (see redis_publisher.h) with XREAD BLOCK on a connection of its own,
 * never SUBSCRIBE: a stream reader goes at its own pace, so Redis' output-buffer limits cannot
 * drop what it has not read, and after any loss it asks again from the last entry it has.  At
 * start it reads the whole retained stream (the recovery window) so that it serves at once,
 * recovery included.  Every entry is decoded into a snapshot with the publisher's seq, epoch
 * and time, and handed to deliver (which feeds the same fan-out and recovery store as a
 * standalone server's ticker), so clients get the same bytes on every server.  deliver runs in
 * the XREAD reply's callback, not on a later pass: the hop to the edge's clients adds no wait.
 *
 * A seq that does not follow the last one in the same epoch is a gap (the stream was trimmed
 * past the edge, or the publisher dropped backlog): it is counted and logged, and the store of
 * recovery sees it (a client cannot resume across it).  No state for EDGE_STALE_MS marks the
 * edge stale (in /healthz and /metrics); a read unanswered for a while gives the connection up.
 * get_history is answered from a copy of the publisher's store: P:history is read at start and
 * every HISTORY_SYNC_MS when its version moved, and replaces the edge's store whole.
 * Service thread only.
 */

#define EDGE_STALE_MS 3000

/* Takes over the reference to s. */
typedef void (*redis_edge_deliver_fn)(void *ctx, struct snapshot *s);

struct redis_edge {
    struct redis_link link;
    char *stream_key, *history_key; /* owned */
    struct history *history;   /* the store get_history reads, replaced from P:history */
    int history_reading;
    char history_version[64];  /* of the copy held, "" before the first */
    ev_timer history_poll;
    char last_id[48];          /* stream ID of the last entry read; "0" before the first */
    char epoch[SB_EPOCH_LEN + 1];
    uint64_t seq;
    int have_state;
    int reading;               /* an XREAD is in flight */
    int stale;
    int64_t last_state_ms;     /* monotonic ms of the last entry read */
    int64_t lag_ms;
    uint64_t lag_seqs;
    uint64_t gaps, bad_entries;
    ev_timer reply_timeout;
    ev_timer stale_check;
    redis_edge_deliver_fn deliver;
    void *deliver_ctx;
    struct event_queue *events;
};

/* Set up and connect on loop.  Returns 0, or -1 when out of memory. */
int redis_edge_start(struct redis_edge *e, struct ev_loop *loop, const struct redis_target *target,
                     const char *prefix, struct history *history, redis_edge_deliver_fn deliver,
                     void *deliver_ctx, struct event_queue *events);

void redis_edge_status(const struct redis_edge *e, struct redis_status *out);

/* Disconnect and free everything (idempotent on a zeroed struct). */
void redis_edge_stop(struct redis_edge *e);

#endif
