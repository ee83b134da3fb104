/* handshake.c - the checks of a request and its WebSocket upgrade: pure policy, then lws reads. */
#include "handshake.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "text_sanitize.h"

/* Length of the host part of "host[:port]" ("[v6]" included), or 0 when the port is not digits. */
static size_t host_part(const char *s)
{
    size_t n;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close)
            return 0;
        n = (size_t)(close - s) + 1;
    } else {
        n = strcspn(s, ":");
    }
    if (s[n] == ':') {
        const char *port = s + n + 1;
        if (!*port)
            return 0;
        for (; *port; port++)
            if (!isdigit((unsigned char)*port))
                return 0;
    } else if (s[n]) {
        return 0;
    }
    return n;
}

static int is_loopback_name(const char *s, size_t n)
{
    static const char *const names[] = {"localhost", "127.0.0.1", "[::1]"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i]) == n && !strncasecmp(s, names[i], n))
            return 1;
    return 0;
}

int origin_allowed_by_policy(const char *origin, const char *host, int tls, char *const *allowed,
                             size_t n_allowed)
{
    if (allowed) {
        for (size_t i = 0; i < n_allowed; i++)
            if (!strcmp(allowed[i], "*") || !strcmp(allowed[i], origin))
                return 1;
        return 0;
    }
    const char *rest;
    int origin_tls;
    if (!strncasecmp(origin, "http://", 7)) {
        rest = origin + 7;
        origin_tls = 0;
    } else if (!strncasecmp(origin, "https://", 8)) {
        rest = origin + 8;
        origin_tls = 1;
    } else {
        return 0; /* "null", file:, chrome-extension: ... must be listed */
    }
    size_t n = host_part(rest);
    if (n && is_loopback_name(rest, n))
        return 1;
    /* The page this server served itself (the dashboard): same scheme, same Host. */
    return origin_tls == tls && *host && !strcasecmp(rest, host);
}

int host_allowed(const char *host, char *const *names, size_t n_names)
{
    size_t n = host_part(host);
    if (!n)
        return 0;
    for (size_t i = 0; i < n_names; i++)
        if (strlen(names[i]) == n && !strncasecmp(host, names[i], n))
            return 1;
    return 0;
}

int close_payload_valid(const unsigned char *payload, size_t len)
{
    if (len == 0)
        return 1;
    if (len == 1)
        return 0;
    unsigned code = (unsigned)payload[0] << 8 | payload[1];
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

/* ---- the same checks on a request, read through lws ---- */

int handshake_refuse(struct lws *wsi, const char *status, const char *extra_header,
                     const char *body)
{
    unsigned char out[LWS_PRE + 512];
    char *text = (char *)out + LWS_PRE;
    int n = snprintf(text, sizeof(out) - LWS_PRE,
                     "HTTP/1.1 %s\r\n%scontent-type: text/plain\r\ncontent-length: %zu\r\n"
                     "connection: close\r\n\r\n%s",
                     status, extra_header, strlen(body), body);
    if (n > 0 && (size_t)n < sizeof(out) - LWS_PRE)
        lws_write(wsi, out + LWS_PRE, (size_t)n, LWS_WRITE_HTTP_HEADERS);
    return 1;
}

/* RFC 6455 4.1: the key is 16 random bytes in base64: 22 characters of the alphabet, then "==". */
static int websocket_key_valid(struct lws *wsi)
{
    char key[32];
    if (lws_hdr_total_length(wsi, WSI_TOKEN_KEY) != 24 ||
        lws_hdr_copy(wsi, key, sizeof(key), WSI_TOKEN_KEY) != 24)
        return 0;
    for (int i = 0; i < 22; i++)
        if (!isalnum((unsigned char)key[i]) && key[i] != '+' && key[i] != '/')
            return 0;
    /* The last character before the padding carries 2 bits: it must be one of A, Q, g, w. */
    return strchr("AQgw", key[21]) && key[22] == '=' && key[23] == '=';
}

int handshake_refuse_invalid_upgrade(struct lws *wsi)
{
    const char *status = "400 Bad Request", *header = "", *body;
    char version[8] = "", http[16] = "";

    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0) {
        body = "a WebSocket handshake must be a GET request\n";
    } else if (lws_hdr_copy(wsi, http, sizeof(http), WSI_TOKEN_HTTP) < 0 || strcmp(http, "HTTP/1.1")) {
        body = "a WebSocket handshake needs HTTP/1.1\n";
    } else if (!websocket_key_valid(wsi)) {
        body = "Sec-WebSocket-Key must be 16 bytes in base64\n";
    } else if (lws_hdr_copy(wsi, version, sizeof(version), WSI_TOKEN_VERSION) < 0 ||
               strcmp(version, "13") != 0) {
        status = "426 Upgrade Required";
        header = "sec-websocket-version: 13\r\n";
        body = "unsupported Sec-WebSocket-Version: this server speaks 13\n";
    } else {
        return 0;
    }
    return handshake_refuse(wsi, status, header, body);
}

/* The Host header into host[0..cap), or "" when absent or too long. */
static void copy_host(struct lws *wsi, char *host, size_t cap)
{
    int total = lws_hdr_total_length(wsi, WSI_TOKEN_HOST);
    if (total <= 0 || total >= (int)cap || lws_hdr_copy(wsi, host, (int)cap, WSI_TOKEN_HOST) < 0)
        host[0] = '\0';
}

int handshake_host_allowed(struct lws *wsi, char *const *names, size_t n_names)
{
    char host[256];
    if (!names)
        return 1;
    copy_host(wsi, host, sizeof(host));
    return host[0] && host_allowed(host, names, n_names);
}

int handshake_origin_allowed(struct lws *wsi, char *const *allowed, size_t n_allowed, char *shown,
                             size_t shown_len)
{
    char origin[HANDSHAKE_MAX_ORIGIN] = "", host[256];

    int total = lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN);
    if (total <= 0)
        return 1;
    if (total >= (int)sizeof(origin) ||
        lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN) < 0) {
        snprintf(shown, shown_len, "(too long)");
        return 0;
    }
    copy_host(wsi, host, sizeof(host)); /* "": then only the local origins qualify */
    if (origin_allowed_by_policy(origin, host, lws_is_ssl(wsi), allowed, n_allowed))
        return 1;
    /* At most 100 bytes, and never half a character (the log would show it as \xNN). */
    size_t n = strlen(origin), cut = n > 100 ? utf8_whole_prefix(origin, 100) : n;
    snprintf(shown, shown_len, "%.*s%s", (int)cut, origin, cut < n ? "..." : "");
    return 0;
}

int handshake_token(struct lws *wsi, char *buf, int buflen)
{
    int total = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
    if (total > 0) {
        if (total >= buflen)
            return -1;
        if (lws_hdr_copy(wsi, buf, buflen, WSI_TOKEN_HTTP_AUTHORIZATION) < 0)
            return -1;
        if (!strncasecmp(buf, "Bearer ", 7)) {
            size_t n = strlen(buf + 7);
            memmove(buf, buf + 7, n + 1);
            return (int)n;
        }
    }
    const char *v = lws_get_urlarg_by_name(wsi, "token=", buf, buflen);
    if (!v)
        return 0;
    size_t n = strlen(v);
    memmove(buf, v, n + 1);
    return (int)n;
}

void handshake_peer(struct lws *wsi, char *out, size_t len)
{
    struct sockaddr_storage sa;
    socklen_t salen = sizeof(sa);
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;

    if (getpeername(lws_get_socket_fd(wsi), (struct sockaddr *)&sa, &salen) == 0) {
        if (sa.ss_family == AF_INET) {
            struct sockaddr_in *in4 = (struct sockaddr_in *)&sa;
            inet_ntop(AF_INET, &in4->sin_addr, ip, sizeof(ip));
            port = ntohs(in4->sin_port);
        } else if (sa.ss_family == AF_INET6) {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&sa;
            inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
            port = ntohs(in6->sin6_port);
            snprintf(out, len, "[%s]:%d", ip, port);
            return;
        }
    }
    snprintf(out, len, "%s:%d", ip, port);
}
