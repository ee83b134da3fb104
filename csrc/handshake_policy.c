/* handshake_policy.c - Origin policy, Host check and close-frame validation, without lws or Python. */
#include "handshake_policy.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

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
