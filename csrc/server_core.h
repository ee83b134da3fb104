/* server_core.h - one running server: event queue, service thread and ticker thread together. */
#ifndef SB_SERVER_CORE_H
#define SB_SERVER_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "client_list.h"
#include "event_queue.h"
#include "service.h"
#include "ticker.h"
#include "webhook_stats.h"

struct core_config {
    const char *db_path;
    const char *iface;        /* numeric address or NULL for all interfaces (copied) */
    int disable_ipv6;
    int use_poll;             /* lws's poll(2) loop instead of libev (SESSION_BUDDY_EVENT_LOOP) */
    int port;
    double interval_s;
    double recovery_window_s; /* seconds of updates kept for clients that resume (0: none) */
    size_t top_n;
    double anomaly_threshold;
    int record_anomalies;
    size_t max_clients;
    size_t max_message_size;
    int min_log_level;        /* Python level below which lines are not even queued */
    const char *static_dir;   /* dashboard files served over HTTP (copied), or NULL */
    /* Security (docs/realtime/SECURITY.md); everything is copied. */
    const unsigned char *jwt_secret; /* NULL: no authentication */
    size_t jwt_secret_len;
    const char *const *allowed_origins; /* NULL: every origin */
    size_t n_allowed_origins;
    const char *ssl_cert;     /* both or neither */
    const char *ssl_key;
    size_t max_pending;       /* connections not yet clients (0 = unlimited) */
    const char *const *allowed_hosts; /* Host names accepted (copied), or NULL: no Host check */
    size_t n_allowed_hosts;
    /* Scale-out (everything copied; redis_host NULL for standalone). */
    enum sb_role role;
    const char *redis_host;
    int redis_port;
    int redis_db;
    const char *redis_password; /* NULL: no AUTH */
    const char *redis_prefix;
    const char *graphql_schema;   /* SDL served at GET /graphql/schema, or NULL */
};

struct server_core {
    struct event_queue events;
    struct service service;
    struct ticker ticker;
    struct webhook_stats webhooks; /* pushed by Python (core_set_webhook_stats), shown by /metrics */
    int service_started;
    int ticker_ready;
};

/*
 * Bind and start both threads.  Blocks until the socket listens or fails
 * (milliseconds); call it without the GIL.  Returns a core, or NULL with
 * *bind_errno (0 when the failure is not a bind error) and err filled; on
 * failure nothing is left running.
 */
struct server_core *core_start(const struct core_config *cfg, int *bind_errno, char *err,
                               size_t errlen);

/* The current epoch into out (SB_EPOCH_LEN characters, NUL-terminated).  It changes while the
 * core runs: a publisher takes over a stream, or Redis lost it; an edge follows its stream. */
void core_epoch(struct server_core *c, char out[SB_EPOCH_LEN + 1]);

/* The store of the recovery window, and the buckets of get_history (both thread-safe, alive
 * as long as the core). */
struct recovery *core_recovery(struct server_core *c);
struct history *core_history(struct server_core *c);

/* The port actually bound (useful with port 0). */
int core_port(struct server_core *c);

/* Ask the service thread to stop: clients get close 1001, then EV_STOPPED is posted.  The
 * ticker keeps running until core_join (it stops first there, before the service). */
void core_request_stop(struct server_core *c);

/* Stop (if not yet asked) and join both threads; the event queue stays
 * readable.  Blocks up to the shutdown deadline; call it without the GIL.
 * Idempotent. */
void core_join(struct server_core *c);

/* core_join, then free everything. */
void core_destroy(struct server_core *c);

/* The eventfd the consumer of the event queue watches (readable when events wait). */
int core_event_fd(const struct server_core *c);

/* Detach every queued event (oldest first, linked by next; the caller frees each with free()).
 * *dropped receives the number of log lines dropped since the previous call. */
struct event *core_take_events(struct server_core *c, size_t *dropped);

/* Ask the ticker for a tick now; returns the request id EV_TICK_DONE will carry. */
uint64_t core_request_tick(struct server_core *c);

/* The latest snapshot with a reference the caller releases (snapshot_unref), or NULL before the
 * first tick. */
struct snapshot *core_latest_snapshot(struct server_core *c);

/* Up to max of the most recent tick durations (microseconds, oldest first) into out; *ticks and
 * *first_us receive the tick count and the startup tick's duration.  Returns how many were
 * written. */
size_t core_tick_stats(struct server_core *c, uint32_t *out, size_t max, uint64_t *ticks,
                       int64_t *first_us);

/* Replace the webhook figures /metrics shows (copied).  Any thread.  Returns 0, or -1 when
 * out of memory. */
int core_set_webhook_stats(struct server_core *c, const struct webhook_stat *rows, size_t n);

/* A copy of the network clients (see client_rows_take), taken under the service lock and
 * released before returning.  Returns 0, or -1 when out of memory. */
int core_client_rows(struct server_core *c, struct client_row **rows, size_t *n);

#endif
