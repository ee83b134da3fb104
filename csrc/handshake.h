/* handshake.h - checks of a request and its WebSocket upgrade: RFC 6455, Host, Origin, token. */
#ifndef SB_HANDSHAKE_H
#define SB_HANDSHAKE_H

#include <libwebsockets.h>
#include <stddef.h>

/*
 * Everything here is a function of one request (its headers, its socket) and of read-only
 * configuration: no counters, no logging, no service state.  The callers count and log.
 * The first three are plain C, for the unit tests; the rest read the request through lws.
 */

/*
 * Whether a browser Origin may open a WebSocket.  `origin` is the header value (NUL-terminated),
 * `host` the request's Host header ("" when absent) and `tls` whether the request came over TLS.
 * With `allowed` NULL, the default policy: the server's own origin (scheme://Host) and
 * http(s)://localhost, 127.0.0.1 or [::1] on any port.  Otherwise the listed origins exactly
 * (byte for byte), "*" matching all; "null" matches only when listed.
 * Returns 1 to allow, 0 to refuse.  A request without Origin is not judged here: it is allowed.
 */
int origin_allowed_by_policy(const char *origin, const char *host, int tls, char *const *allowed,
                             size_t n_allowed);

/*
 * The Host check against DNS rebinding: 1 when `host` (the Host header, "host" or "host:port",
 * IPv6 in brackets) names one of `names` (lower-case, IPv6 in brackets, no port), else 0.
 */
int host_allowed(const char *host, char *const *names, size_t n_names);

/*
 * RFC 6455 5.5.1 and 7.4: a close frame's payload is empty, or a valid status code (1000-1003,
 * 1007-1014, 3000-4999) followed by any reason.  Returns 1 when valid, 0 for a protocol error.
 */
int close_payload_valid(const unsigned char *payload, size_t len);

/* Authorization and ?token= values of this many bytes or more are refused rather than
 * truncated. */
#define HANDSHAKE_MAX_TOKEN 4096
/* An Origin header of this many bytes or more is refused. */
#define HANDSHAKE_MAX_ORIGIN 512

/*
 * Refuse the upgrade with a real HTTP/1.1 status ("403 Forbidden"), an optional extra header
 * line (with its CRLF, or "") and a short body.  Written by hand: at this stage lws 4.1.6 would
 * answer with an HTTP/1.0 status line, which clients such as python-websockets refuse to read.
 * Returns 1, which tells lws the answer is written and the connection ends.
 */
int handshake_refuse(struct lws *wsi, const char *status, const char *extra_header,
                     const char *body);

/*
 * lws 4.1.6 switches protocols for any Sec-WebSocket-Version and any key, and drops a request
 * without a key with no answer.  RFC 6455 4.1 and 4.2.1 ask for a GET over HTTP/1.1 with a
 * 16-byte base64 key, else 400; 4.4 asks for 426 naming the version spoken (13).  Returns 0
 * for a valid upgrade request, else 1 with the refusal written (handshake_refuse).
 */
int handshake_refuse_invalid_upgrade(struct lws *wsi);

/* The Host check against DNS rebinding (host_allowed) on this request: 1 when `names` is NULL
 * (no check) or the Host header names one of them, else 0. */
int handshake_host_allowed(struct lws *wsi, char *const *names, size_t n_names);

/*
 * The Origin policy (origin_allowed_by_policy) on this request.  A request without Origin comes
 * from a non-browser client, which could claim any Origin anyway: it passes (authentication is
 * what guards those).  Returns 1 to allow; 0 to refuse, with `shown` (shown_len bytes, at least
 * 16) holding what a log line may quote of the Origin: at most 100 bytes cut on a character
 * boundary, "..." when cut, or "(too long)" for one of HANDSHAKE_MAX_ORIGIN bytes or more.
 */
int handshake_origin_allowed(struct lws *wsi, char *const *allowed, size_t n_allowed, char *shown,
                             size_t shown_len);

/*
 * The token of the request, in this order: "Authorization: Bearer <token>", then ?token=.
 * Returns its length (NUL-terminated in buf), 0 when neither carries one, or -1 when a header
 * is too long (buflen bytes or more) to hold a token we accept.
 */
int handshake_token(struct lws *wsi, char *buf, int buflen);

/* "ip:port" or "[ip6]:port" of the peer ("?:0" when unknown), always NUL-terminated. */
void handshake_peer(struct lws *wsi, char *out, size_t len);

#endif
