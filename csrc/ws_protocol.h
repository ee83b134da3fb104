/* ws_protocol.h - the WebSocket protocol: per-connection sessions, auth, replies, the callback. */
#ifndef SB_WS_PROTOCOL_H
#define SB_WS_PROTOCOL_H

#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol_codes.h"

struct service;
struct session;
struct fanout_sub;
struct gql_conn;

/* The subprotocol name; clients that name none get this protocol too (it is the only one). */
#define WS_PROTOCOL_NAME "session-buddy-metrics"

/* Per-connection allocation size for the protocol table. */
extern const size_t ws_session_size;

/*
 * The lws callback of the server's one protocol: a session is set up in ESTABLISHED and fully
 * freed in CLOSED; the callback is a switch that hands each reason to one helper, the HTTP
 * reasons to http_protocol.c and the connection's own to connection.c.  Returns what lws
 * expects of a protocol callback.
 */
int ws_protocol_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                         void *in, size_t len);

/* Read a session's fields for Python's `clients` view; call with svc->lock held
 * (the service thread edits them only under it).  session_subscription returns 1 when
 * subscribed, with *skill NULL for all skills, or 0 after unsubscribe. */
const struct session *session_next(const struct session *s);
uint64_t session_id(const struct session *s);
const char *session_peer(const struct session *s);
int session_subscription(const struct session *s, const char **skill, size_t *skill_len);
/* The authenticated user ("" when authentication is off or the token named none). */
const char *session_user_id(const struct session *s);
/* 0 while the connection is still authenticating: not yet a client. */
int session_admitted(const struct session *s);

/* The rest is for the service thread only. */

/* The next session of the service's list, for a walk that may act on each. */
struct session *session_next_rw(struct session *s);

/* Start loading what a tick's walk reads in its next turns (hints only): the GraphQL state of
 * the session after s and the session after that one, which session_deliver_update reads.  A walk
 * over thousands of sessions, each allocated on its own, otherwise waits on cache misses for
 * each of them. */
void session_prefetch(const struct session *s);

/* The session's permessage-deflate state, for pmd_extension.c (from the handshake on). */
struct pmd_conn *session_pmd(struct session *s);

/* The session's GraphQL operations, or NULL for a plain-protocol session. */
const struct gql_conn *session_gql(const struct session *s);

/* The session's subscription, for the fan-out's bookkeeping. */
const struct fanout_sub *session_fanout_sub(const struct session *s);
/* The same, for fanout.c to change (service thread only). */
struct fanout_sub *session_fanout_sub_rw(struct session *s);

/* A new update is current: write it now when the connection allows (ws://, compressed or not,
 * nothing queued or partly written), else ask for WRITEABLE; nothing when not subscribed. */
void session_deliver_update(struct session *s);

/* Close for `why` (its code and reason in protocol_codes.h): the close frame goes out from the
 * next WRITEABLE, and a client that does not read it is dropped a few seconds later (except
 * while the server stops: the stop deadline covers that).  Idempotent. */
void session_close(struct session *s, enum sb_close_why why);

/* The keepalive check of one session at monotonic time now_ms (called once a second): a ping
 * after 20 s without a pong, a drop 20 s after an unanswered ping. */
void session_keepalive(struct session *s, int64_t now_ms);

#endif
