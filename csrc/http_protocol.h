/* http_protocol.h - the plain-HTTP lws protocol on the WebSocket port: /healthz, /metrics, files. */
#ifndef SB_HTTP_PROTOCOL_H
#define SB_HTTP_PROTOCOL_H

#include <libwebsockets.h>
#include <stddef.h>

/* The protocol's name in the vhost's table (protocols[0]: lws binds every plain HTTP request
 * without a mount to it). */
#define HTTP_PROTOCOL_NAME "http-only"

/* Per-connection allocation size for this protocol's table entry. */
extern const size_t http_session_size;

/*
 * The lws callback of the HTTP protocol: GET and HEAD routed by http_routes.h, other methods
 * 405, a Host not allowed 403, /metrics without a valid token (when authentication is on) 401.
 * A connection is pending (pending.h) between requests.  Returns what lws expects of a
 * protocol callback.
 */
int http_protocol_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                           void *in, size_t len);

#endif
