/* redis_publisher.h - the publisher role: append every tick's state to Redis under a lease. */
#ifndef SB_REDIS_PUBLISHER_H
#define SB_REDIS_PUBLISHER_H

#include <stddef.h>
#include <stdint.h>

#include "redis_link.h"
#include "snapshot.h"

struct recovery;
struct history;

/* How often the holder copies its whole history store to P:history, and an edge reads it. */
#define HISTORY_SYNC_MS 5000

/*
 * Keys (prefix P): P:lease (the holder's token, with a TTL), P:meta (hash: epoch, seq of the
 * newest entry), P:stream (one entry per tick: e=epoch, s=seq, d=state, see state_codec.h;
 * MAXLEN ~ the recovery window's ticks).
 *
 * P:history (hash: v, a version, and d, the holder's whole history store, state_codec.h) is
 * written every HISTORY_SYNC_MS when the store changed: edges have no DB and answer get_history
 * from it.  Its size is bounded by the store's: per
 * skill at most 146 chunks of 1.2 KB, written only for the chunks that hold invocations.
 *
 * Every append is ONE Lua script, so the lease check and the append are atomic: a holder whose
 * lease another publisher took (it was paused past the TTL) is fenced and writes nothing; a seq
 * already written is never written again; a meta hash of another epoch (the stream of another
 * publisher's run, which died or was fenced) is taken over: this publisher numbers on from its
 * epoch and seq.  No meta hash at the first append of a run starts the stream with this run's
 * epoch and its retained window; no meta hash later (Redis restarted empty) starts it again in
 * a new epoch, numbered from 1, so clients resuming with the old one are told recovered:false.
 * The append renews the lease, and a timer renews it between ticks slower than the TTL.
 *
 * While Redis is unreachable the publisher keeps serving its own clients and keeps up to
 * PUBLISHER_BACKLOG snapshots (oldest dropped first), appended in order when Redis is back.
 * Service thread only.
 */

#define PUBLISHER_BACKLOG 600
/* A holder that has not renewed in this time loses the lease to a standby. */
#define PUBLISHER_LEASE_MS 2000

/* Number the next ticks epoch, seq + 1...: asks the ticker (see ticker_adopt) for one now. */
typedef void (*redis_publisher_adopt_fn)(void *ctx, const char *epoch, uint64_t seq);

struct redis_publisher {
    struct redis_link link;
    char *lease_key, *meta_key, *stream_key, *history_key; /* owned */
    struct history *history;   /* the ticker's store, copied to P:history */
    ev_timer history_sync;
    int history_synced;        /* P:history holds the store as of history_changes */
    uint64_t history_changes;
    char token[33];            /* this process' lease token: random hex */
    char maxlen[24];
    struct snapshot *backlog[PUBLISHER_BACKLOG]; /* ring, oldest at head */
    size_t head, n;
    int in_flight;             /* one script at a time keeps the appends in order */
    int creating;              /* the next append may create the meta hash (none in Redis) */
    struct recovery *recovery;
    redis_publisher_adopt_fn adopt;
    void *adopt_ctx;
    char adopting[SB_EPOCH_LEN + 1]; /* the epoch taken over until its first tick comes ("") */
    uint64_t pushed_seq;       /* the newest snapshot pushed, and its epoch */
    char pushed_epoch[SB_EPOCH_LEN + 1];
    int holder;                /* held the lease at the last answer (kept while disconnected) */
    int64_t ready_since_us;    /* monotonic time the link last became ready */
    char lease_holder[40];
    uint64_t appended, fenced, dropped, last_seq;
    ev_timer reply_timeout;    /* a script unanswered for this long: the connection is given up */
    ev_timer renew;            /* renews the lease between ticks */
    struct event_queue *events;
};

/* Set up and connect on loop.  maxlen bounds the stream (entries); recovery is the store of the
 * ticks this server broadcast (appended again when Redis lost its data).  Returns 0, or -1 when out
 * of memory. */
int redis_publisher_start(struct redis_publisher *p, struct ev_loop *loop,
                          const struct redis_target *target, const char *prefix, size_t maxlen,
                          struct recovery *recovery, struct history *history,
                          redis_publisher_adopt_fn adopt, void *adopt_ctx,
                          struct event_queue *events);

/* Queue s (a new reference is taken) for appending after what is queued. */
void redis_publisher_push(struct redis_publisher *p, struct snapshot *s);

/* Send what push queued now (see redis_link_flush): called after push and before the fan-out to
 * this server's own clients, so that the edges' copy does not wait for that fan-out.  Not from a
 * hiredis callback. */
void redis_publisher_flush(struct redis_publisher *p);

/* The figures of /healthz and /metrics. */
void redis_publisher_status(const struct redis_publisher *p, struct redis_status *out);

/* Disconnect and free everything (idempotent on a zeroed struct). */
void redis_publisher_stop(struct redis_publisher *p);

/* The three key names for prefix into owned strings; returns -1 when out of memory. */
int redis_keys(const char *prefix, char **lease, char **meta, char **stream);

/* The name of P:history, owned, or NULL when out of memory. */
char *redis_history_key(const char *prefix);

#endif
