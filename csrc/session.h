/* session.h - one WebSocket connection's state, shared by the two protocols' rooms. */
#ifndef SB_SESSION_H
#define SB_SESSION_H

#include <libwebsockets.h>
#include <stdint.h>

#include "fanout.h"
#include "http_protocol.h"
#include "jwt.h"
#include "msgbuf.h"
#include "pmd_extension.h"
#include "protocol_codes.h"
#include "rate_limit.h"
#include "rx_buffer.h"

struct service;
struct gql_conn;

/*
 * ws_protocol.c owns the struct and the connection's life; gql_protocol.c reads and writes the
 * fields of a graphql-transport-ws connection through the functions below and its own gql
 * pointer.  Service thread only, except the fields the registry's lock guards.
 */
/* Per-connection state: zeroed by lws, set up in ESTABLISHED, freed in CLOSED.  The fields every
 * tick's walk reads for every client come first, together: at 10,000 clients the walk's cost
 * is its cache misses, one per line it touches in each session (four, before they were moved
 * here, scattered over the struct's 560 bytes). */
struct session {
    struct session *next;
    struct lws *wsi;
    struct service *svc;
    struct msgbuf *out_head;  /* replies waiting, oldest first */
    struct gql_conn *gql;     /* a graphql-transport-ws connection (gql_protocol.h); else NULL */
    struct fanout_sub sub;    /* sub.group NULL after unsubscribe; edited under svc->lock */
    int fd;                   /* ws:// (not TLS): its socket, which session_send may write
                               * to itself; -1 on TLS */
    int closing;
    /* The rest is read on the connection's own events. */
    struct session *prev;
    struct msgbuf *out_tail;
    size_t out_bytes;
    uint64_t id;
    char peer[64];
    int counted;              /* linked into svc->sessions; counts toward max_clients */
    int admitted;             /* authenticated (or no auth needed): listed in `clients`, gets updates */
    int auth_pending;         /* waiting for an auth message */
    int authenticated;
    char user_id[JWT_MAX_USER_ID + 1];
    lws_sorted_usec_list_t auth_deadline;
    struct rate_limit rate;
    int64_t next_ping_ms;     /* monotonic: when to ping, unless a ping is out */
    int64_t ping_sent_ms;     /* monotonic: the unanswered ping's time, or 0 */
    int ping_due;             /* a ping waits for WRITEABLE */
    uint16_t close_code;
    const char *close_reason;
    struct pmd_conn pmd;      /* permessage-deflate: set in the handshake, before ESTABLISHED */
    struct rx_buffer rx;
    struct http_session http; /* while the connection serves plain HTTP */
};

/* Queue a reply built in m (ownership passes here); a client whose replies reach
 * SB_MAX_QUEUED_REPLY_BYTES is closed 1008 instead. */
void session_queue_reply(struct session *s, struct msgbuf *m);

/* Close for lack of memory (1011). */
void session_close_out_of_memory(struct session *s);

/* Verify a token from `source` (for the log): 0 with s->authenticated and s->user_id set, or
 * -1, counted and logged (never the token), for the caller to close with its protocol's code. */
int session_verify_token(struct session *s, const char *token, size_t len, const char *source);

/* Make the connection a client: it takes a seat (closed 1013 and -1 when max_clients are
 * connected), stops being pending and shows in `clients`.  Returns 0, or -1 when closed. */
int session_take_seat(struct session *s);

/* Write one whole message (a text for lws to frame, or a frame built whole) and count it.
 * Returns 0, or -1 when the connection failed. */
int session_send(struct session *s, const struct msgbuf *m);

/* 1 when a tick may write to the connection at once: ws://, not closing, nothing queued or
 * partly written. */
int session_can_push(const struct session *s);

/* The next update owed to sub, one of the session's subscriptions (a reference the caller
 * drops), counted as sent; NULL (and the session closing) when out of memory or when a replay
 * fell behind the recovery window. */
struct msgbuf *session_claim_update(struct session *s, struct fanout_sub *sub);

/* The session with this id, or NULL when it is gone. */
struct session *session_find(struct service *svc, uint64_t id);

#endif
