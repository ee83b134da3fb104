/* service.h - the libwebsockets service thread: context, listening socket, lifecycle. */
#ifndef SB_SERVICE_H
#define SB_SERVICE_H

#include <libwebsockets.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "event_queue.h"
#include "fanout.h"
#include "id_map.h"
#include "pending.h"
#include "redis_edge.h"
#include "redis_publisher.h"
#include "snapshot.h"
#include "static_files.h"
#include "ws_protocol.h"

struct webhook_stats;
struct gql_command;
struct http_session;

struct ticker;
struct ev_loop;

/* What this server is in a scale-out deployment (SPEC section 10). */
enum sb_role { SB_ROLE_STANDALONE, SB_ROLE_PUBLISHER, SB_ROLE_EDGE };

struct service_config {
    char *iface;              /* owned; numeric address, or NULL for all interfaces */
    int disable_ipv6;         /* needed for IPv4 addresses (lws bug #2290) */
    int port;                 /* 0 = ephemeral */
    size_t max_clients;       /* 0 = unlimited */
    size_t max_message_size;  /* after reassembly */
    char *static_dir;         /* owned; the dashboard folder, or NULL */
    unsigned char *jwt_secret; /* owned; NULL = clients need not authenticate */
    size_t jwt_secret_len;
    char **allowed_origins;   /* owned; NULL = every origin is allowed */
    size_t n_allowed_origins;
    char *ssl_cert;           /* owned; with ssl_key, serve wss:// */
    char *ssl_key;            /* owned */
    int use_poll;             /* lws's poll(2) loop instead of libev on epoll */
    size_t max_pending;       /* connections not yet clients; 0 = unlimited */
    char **allowed_hosts;     /* owned; Host names accepted, or NULL for no Host check */
    size_t n_allowed_hosts;
    enum sb_role role;
    struct redis_target redis; /* owned; publisher and edge */
    char *redis_prefix;       /* owned */
    char *graphql_schema;     /* owned; the SDL GET /graphql/schema serves, or NULL */
    size_t redis_maxlen;      /* entries the stream keeps: the recovery window's ticks */
};

/* Free the owned members of cfg and zero it. */
void service_config_free(struct service_config *cfg);

/* Service thread only; /metrics reads them there. */
struct service_counters {
    uint64_t connections_total;
    uint64_t rejected_full;          /* closed 1013: max_clients reached */
    uint64_t rejected_origin;        /* HTTP 403: Origin not allowed */
    uint64_t rejected_handshake;     /* HTTP 400/426: not a valid RFC 6455 upgrade request */
    uint64_t auth_failures;          /* closed 4001 */
    uint64_t closed_rate_limit;      /* closed 1008: sustained rate-limit abuse */
    uint64_t closed_too_large;       /* closed 1009 */
    uint64_t closed_slow_consumer;   /* closed 1008: reply queue over its bound */
    uint64_t rate_limited_messages;  /* dropped and answered rate_limited */
    uint64_t messages_sent;
    uint64_t messages_received;
    uint64_t bytes_sent;
    uint64_t conflated_updates;
    uint64_t rejected_pending_full;  /* dropped: the oldest pending when max_pending was reached */
    uint64_t closed_pending_timeout; /* dropped: request, handshake or auth not finished in time */
    uint64_t rejected_host;          /* HTTP 403: Host not allowed (DNS rebinding) */
    uint64_t accept_failures;        /* accept() failed (EMFILE, ENFILE...) */
    uint64_t gql_operations;         /* GraphQL subscribe messages handed to Python */
    uint64_t gql_http_requests;      /* /graphql requests handed to Python */
};

enum service_state { SVC_STARTING, SVC_LISTENING, SVC_FAILED, SVC_STOPPED };

struct service {
    struct service_config cfg;
    struct event_queue *events;
    struct ticker *ticker;      /* for /metrics and /healthz; set before service_start */
    struct webhook_stats *webhooks; /* for /metrics; owned by the core */
    struct static_files files;  /* loaded before the thread starts, read-only afterwards */
    int64_t started_ms;

    /* Shared with other threads; guarded by lock. */
    pthread_mutex_t lock;
    pthread_cond_t state_changed;
    enum service_state state;
    int bind_errno;
    char error[256];
    int alive;                  /* ctx exists, so lws_cancel_service is allowed */
    int stop_requested;
    struct snapshot *pending;   /* newest snapshot the service thread has not taken yet */
    struct gql_command *commands, *commands_tail; /* from Python, oldest first (gql_command.h) */
    int bound_port;
    /* The session registry: written by ws_protocol.c only (sessions link and unlink
     * themselves), under lock; read by client_list.c under lock, by this thread freely. */
    struct session *sessions;   /* every WebSocket connection */
    size_t n_sessions;          /* of which admitted (authenticated, or no auth needed) */
    size_t n_connections;       /* all of them, those still authenticating included */
    struct service_counters counters;

    /* Service thread only.  Each room's own state is named after the room. */
    struct lws_protocols protocols[3]; /* lws may keep pointing at this table */
    pthread_t thread;
    int thread_started;
    struct lws_context *ctx;
    struct ev_loop *ev_loop;    /* runs ctx; NULL when lws's own poll(2) loop does */
    struct lws_vhost *vhost;
    struct fanout fan;          /* fanout.c: groups, their frames, the current snapshot */
    uint64_t next_client_id;    /* ws_protocol.c: the last client id handed out */
    struct id_map sessions_by_id; /* ws_protocol.c: every registered session, by id */
    int stopping;               /* this file: shutdown has begun */
    int leave_loop;
    lws_sorted_usec_list_t stop_deadline;
    lws_sorted_usec_list_t keepalive;  /* one timer for every connection's pings */
    struct pending_list pending_conns; /* pending.c: connections that are not clients yet */
    struct lws *listen_wsi;            /* the listening socket, paused while accept() fails */
    lws_sorted_usec_list_t accept_retry;
    int accept_paused;
    int64_t accept_backoff_us;         /* the next pause; doubles while accept() keeps failing */
    int64_t accept_report_ms;          /* when accept failures were last logged */
    uint64_t accept_unreported;
    struct msgbuf *gql_frame;          /* gql_protocol.c: the buffer `next` frames are built in */
    size_t gql_waiting;                /* gql_protocol.c: operations handed to Python */
    size_t gql_live;                   /* gql_protocol.c: live subscriptions */
    struct http_session *http_waiting; /* http_protocol.c: /graphql requests handed to Python */
    size_t n_http_waiting;
    uint64_t next_http_request_id;
    struct redis_publisher publisher;  /* redis_publisher.c, role publisher */
    struct redis_edge edge;            /* redis_edge.c, role edge */
};

/* The Redis side of this server's role for /healthz and /metrics; 0, or -1 for standalone.
 * Service thread only. */
int service_redis_status(const struct service *svc, struct redis_status *out);

/* accept() failed with errno err (lws only logs it): pause accepting for a while instead of
 * spinning on the listening socket, and free a descriptor by dropping the oldest pending
 * connection.  Logs at most one line per 10 s.  Service thread only. */
void service_accept_failed(struct service *svc, int err);

/* A connection was accepted: the accept back-off starts over. */
void service_accept_ok(struct service *svc);

/* Copy cfg (taking ownership of cfg->iface) and start the thread, then wait
 * until it listens or fails.  Returns 0 when listening; otherwise -1 with
 * svc->bind_errno (0 if not a bind error) and svc->error set, the thread
 * joined and nothing left running.  Call service_destroy either way. */
int service_start(struct service *svc, const struct service_config *cfg,
                  struct event_queue *events, struct ticker *ticker,
                  struct webhook_stats *webhooks);

/* Hand a new snapshot to the service thread (takes over the reference).
 * Safe from any thread. */
void service_publish(struct service *svc, struct snapshot *s);

/* Hand a command from the Python side to the service thread (ownership passes here; it is
 * freed at once when the thread is not running).  Returns 0, or -1 when not running.  Safe from
 * any thread. */
int service_post_command(struct service *svc, struct gql_command *cmd);

/* Ask the thread to close every client with 1001 and leave its loop.  An
 * EV_STOPPED event follows.  Safe from any thread; idempotent. */
void service_request_stop(struct service *svc);

/* Join the thread (after service_request_stop) and free everything. */
void service_destroy(struct service *svc);

/* The mailbox, on EVENT_WAIT_CANCELLED: take a published snapshot to the fan-out, and begin
 * the shutdown once stop was asked.  Wake-ups coalesce and can be spurious: everything pending
 * is taken each time.  Service thread only. */
void service_drain_mailbox(struct service *svc);

/* A connection has left the session registry: while stopping, the last one ends the loop.
 * Service thread only. */
void service_connection_closed(struct service *svc);

#endif
