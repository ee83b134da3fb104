/* handshake_policy.h - the pure decisions of the handshake: Origin policy, Host check, close frames. */
#ifndef SB_HANDSHAKE_POLICY_H
#define SB_HANDSHAKE_POLICY_H

#include <stddef.h>

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

#endif
