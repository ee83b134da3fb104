/* redis_link.h - one Redis connection on the service thread's libev loop, kept up with backoff. */
#ifndef SB_REDIS_LINK_H
#define SB_REDIS_LINK_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/async.h>
#include <ev.h>

#include "event_queue.h"

/*
 * hiredis 0.14.1's async context on the loop lws already runs (its libev adapter), so the Redis
 * client never runs on the GIL's thread.  0.14.1 has no connect or command timeouts: the link
 * times the connection set-up (connect, AUTH, SELECT, PING) with its own ev_timer, and its user
 * times its commands and calls redis_link_fail when one takes too long.  A context is one
 * connection: after a loss the link makes a new one after a backoff of 100 ms doubling to 5 s,
 * with jitter, and the state worth keeping lives in the user, never in the context.
 *
 * Every function runs on the service thread (the loop's thread).
 */

struct redis_target {
    char *host;        /* owned */
    int port;
    int db;
    char *password;    /* owned, or NULL */
};

/* What /healthz and /metrics report about a role's Redis side (zero for standalone). */
struct redis_status {
    const char *role;          /* "publisher" or "edge" */
    int up;                    /* the link is connected and set up */
    int stale;                 /* edge: no state for EDGE_STALE_MS */
    int holder;                /* publisher: holds the lease */
    char lease_holder[40];     /* publisher: the holder's token as last seen ("" unknown) */
    double lag_s;              /* edge: receive time minus the newest state's time */
    uint64_t lag_seqs;         /* edge: entries read but not yet delivered */
    uint64_t seq;              /* the newest seq appended (publisher) or delivered (edge) */
    uint64_t reconnects, gaps, appended, fenced, dropped;
    size_t backlog;            /* publisher: snapshots waiting to be appended */
};

/* Free the owned members of t and zero it. */
void redis_target_free(struct redis_target *t);

/* The user's hooks: the link is ready (set up, commands may be sent), or it was lost (every
 * reply still pending has been called back with a NULL reply before this). */
typedef void (*redis_link_fn)(void *owner);

struct redis_link {
    struct ev_loop *loop;
    struct redis_target target;     /* copied */
    const char *name;               /* for logs: "publisher", "edge" */
    struct event_queue *events;
    redis_link_fn on_ready, on_lost;
    void *owner;

    redisAsyncContext *ac;          /* NULL while disconnected */
    int ready;                      /* AUTH/SELECT/PING answered */
    int stopped;
    double backoff_s;
    uint64_t reconnects;            /* connections made after the first */
    int connected_once;
    int warned_down;                /* one warning per outage */
    ev_timer retry;                 /* the backoff before the next connection */
    ev_timer setup_timeout;         /* connect + set-up must finish in time */
    ev_timer kill;                  /* frees a failed context outside hiredis' callbacks */
};

/* Set up (not connected yet); copies target.  Returns 0, or -1 when out of memory. */
int redis_link_init(struct redis_link *l, struct ev_loop *loop, const struct redis_target *target,
                    const char *name, struct event_queue *events, redis_link_fn on_ready,
                    redis_link_fn on_lost, void *owner);

/* Connect now (and keep reconnecting). */
void redis_link_start(struct redis_link *l);

/* Send one command (argv of argc binary-safe strings); fn(ac, reply, privdata) is called with
 * the reply, or with NULL when the connection is lost first.  Returns 0, or -1 when the link
 * is not ready (fn is then never called). */
int redis_link_command(struct redis_link *l, redisCallbackFn *fn, void *privdata, int argc,
                       const char **argv, const size_t *argvlen);

/* Write what the commands sent so far have buffered now, instead of on the loop's next pass
 * (hiredis only buffers a command; its write watcher sends it after the pass that queued it, which
 * on a publisher is after the whole fan-out to its own clients).  Does nothing unless the link is
 * ready and not being given up.  A write error takes the normal disconnect path at once: pending
 * replies are called back with NULL, then on_lost, and the backoff begins.  Never call it from a
 * hiredis callback (hiredis frees the context inside it on an error). */
void redis_link_flush(struct redis_link *l);

/* Give up the current connection (a command took too long, a reply made no sense): it is freed
 * from the loop shortly (never inside a hiredis callback), then the backoff begins. */
void redis_link_fail(struct redis_link *l, const char *why);

/* Disconnect for good and stop every timer; pending replies are called back with NULL.  The
 * link can then be freed with redis_link_free.  Idempotent. */
void redis_link_stop(struct redis_link *l);

/* Free what init allocated (after redis_link_stop). */
void redis_link_free(struct redis_link *l);

#endif
