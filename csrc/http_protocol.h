/* http_protocol.h - plain HTTP on the WebSocket port: /healthz, /metrics, the dashboard files. */
#ifndef SB_HTTP_PROTOCOL_H
#define SB_HTTP_PROTOCOL_H

#include <libwebsockets.h>
#include <stddef.h>

struct msgbuf;

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

/* A connection's HTTP state, part of its per-connection data; zeroed by lws. */
struct http_session {
    struct msgbuf *body;      /* a response body waiting for HTTP_WRITEABLE */
};

/*
 * Handle an HTTP reason: LWS_CALLBACK_HTTP (GET and HEAD routed by http_routes.h, other methods
 * 405, a Host not allowed 403, /metrics without a valid token while authentication is on 401),
 * HTTP_WRITEABLE (the body), CLOSED_HTTP and HTTP_DROP_PROTOCOL (the body freed).  hs is NULL
 * for a connection closed before its headers were parsed.  A connection is pending
 * (pending.h) between requests.  Returns what lws expects of the protocol callback; 0 for any
 * other reason.
 */
int http_protocol_handle(struct http_session *hs, struct lws *wsi, enum lws_callback_reasons reason,
                         void *in, size_t len);

#endif
