/* http_protocol.h - plain HTTP on the WebSocket port: /healthz, /metrics, the dashboard files. */
#ifndef SB_HTTP_PROTOCOL_H
#define SB_HTTP_PROTOCOL_H

#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>

#include "json_writer.h"

struct msgbuf;
struct service;
struct gql_command;

/*
 * Why HTTP is a room but not an lws protocol of its own: lws 4.1.6 binds a plain HTTP request
 * to protocols[0], and a WebSocket upgrade that names no subprotocol (most clients) to the
 * vhost's default protocol, protocols[0] unless the "default" protocol option names another
 * (lws's own lws_process_ws_upgrade).  That option is applied in
 * lws_protocol_init, which lws runs from a deferred timer after context creation
 * (lws_context_creation_completion_cb, on LWS_SYSTATE_POLICY_VALID), when the vhost already
 * listens: a connection accepted before it would be bound to protocols[0] and its upgrade
 * refused ("User code denied connection").  So the one protocol's callback (ws_protocol.c)
 * hands the HTTP reasons here.
 */

/* A /graphql request body is at most this many bytes (413 otherwise), and at most this many
 * requests wait for the Python side at once (503 otherwise). */
#define HTTP_GRAPHQL_MAX_BODY (64 * 1024)
#define HTTP_GRAPHQL_MAX_WAITING 64

/* A connection's HTTP state, part of its per-connection data; zeroed by lws. */
struct http_session {
    struct msgbuf *body;      /* a response body waiting for HTTP_WRITEABLE */
    /* A /graphql request, from its headers until Python's answer is written: */
    struct lws *wsi;
    jbuf request;             /* the POST body as it arrives */
    uint64_t request_id;      /* nonzero while Python has it: linked in the service's list */
    struct http_session *next_waiting;
    int reply_status;         /* nonzero: the answer's headers wait for HTTP_WRITEABLE */
    char *reply_type;         /* owned: their Content-Type */
};

/*
 * Handle an HTTP reason: LWS_CALLBACK_HTTP (GET and HEAD routed by http_routes.h, other methods
 * 405, a Host not allowed 403, /metrics and /graphql without a valid token while authentication
 * is on 401; GET and POST /graphql are handed to Python as EV_GQL_HTTP once the body is in),
 * HTTP_BODY and HTTP_BODY_COMPLETION (a /graphql body),
 * HTTP_WRITEABLE (the body), CLOSED_HTTP and HTTP_DROP_PROTOCOL (the body freed).  hs is NULL
 * for a connection closed before its headers were parsed.  A connection is pending
 * (pending.h) between requests.  Returns what lws expects of the protocol callback; 0 for any
 * other reason.
 */
int http_protocol_handle(struct http_session *hs, struct lws *wsi, enum lws_callback_reasons reason,
                         void *in, size_t len);

/* Python's answer to a /graphql request (a GQC_HTTP_REPLY command, freed here): written from
 * the next HTTP_WRITEABLE, or dropped when the connection has gone.  Service thread only. */
void http_protocol_reply(struct service *svc, struct gql_command *cmd);

#endif
