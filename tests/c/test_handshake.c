/* test_handshake.c - the Origin policy, the Host check and close-frame validation. */
#include <stdio.h>

#include "check.h"
#include "handshake.h"

static int by_default(const char *origin, const char *host, int tls)
{
    return origin_allowed_by_policy(origin, host, tls, NULL, 0);
}

static void default_policy(void)
{
    static const char *const allowed[] = {
        "http://localhost", "http://localhost:3000", "https://localhost:8443", "HTTP://LocalHost:1",
        "http://127.0.0.1", "https://127.0.0.1:5500", "http://[::1]", "http://[::1]:8080",
    };
    static const char *const refused[] = {
        "null", "file://", "", "https://evil.example", "http://localhost.evil.example",
        "http://127.0.0.1.evil.example", "http://localhost:", "http://localhost:80x",
        "http://localhost/path", "ws://localhost", "http://[::1", "http://[::2]:80", "http://127.0.0.2",
        "http://user@localhost",
    };
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
        CHECK(by_default(allowed[i], "", 0), "%s should be allowed", allowed[i]);
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        CHECK(!by_default(refused[i], "", 0), "%s should be refused", refused[i]);

    /* The server's own origin: same scheme, same Host. */
    CHECK(by_default("http://metrics.lan:8765", "metrics.lan:8765", 0), "own origin");
    CHECK(by_default("https://metrics.lan:8765", "metrics.lan:8765", 1), "own origin over TLS");
    CHECK(!by_default("https://metrics.lan:8765", "metrics.lan:8765", 0), "scheme differs");
    CHECK(!by_default("http://metrics.lan:8765", "metrics.lan:8765", 1), "scheme differs (TLS)");
    CHECK(!by_default("http://metrics.lan:8766", "metrics.lan:8765", 0), "port differs");
    CHECK(!by_default("http://metrics.lan", "", 0), "no Host: only local origins");
}

static void listed(void)
{
    char *list[] = {"https://dash.example.com", "null"};
    char *star[] = {"*"};
    CHECK(origin_allowed_by_policy("https://dash.example.com", "", 0, list, 2), "listed");
    CHECK(origin_allowed_by_policy("null", "", 0, list, 2), "null listed");
    CHECK(!origin_allowed_by_policy("HTTPS://DASH.EXAMPLE.COM", "", 0, list, 2), "exact match only");
    CHECK(!origin_allowed_by_policy("http://localhost", "", 0, list, 2), "a list replaces the default");
    CHECK(!origin_allowed_by_policy("https://dash.example.com", "", 0, list, 0), "empty list");
    CHECK(origin_allowed_by_policy("https://anything", "", 0, star, 1), "star");
    CHECK(origin_allowed_by_policy("null", "", 0, star, 1), "star includes null");
}

static void hosts(void)
{
    char *names[] = {"localhost", "127.0.0.1", "[::1]", "dash.internal"};
    static const char *const good[] = {"localhost", "LOCALHOST:8765", "127.0.0.1:1", "[::1]", "[::1]:80",
                                       "dash.internal:443"};
    static const char *const bad[] = {"", "evil.example", "localhost.evil.example", "localhost:", "localhost:8x",
                                      "[::1", "[::1]x", "::1", "127.0.0.1 ", "dash.internal.evil:1"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        CHECK(host_allowed(good[i], names, 4), "%s should pass", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK(!host_allowed(bad[i], names, 4), "'%s' should be refused", bad[i]);
}

static int close_valid(unsigned code)
{
    unsigned char p[2] = {(unsigned char)(code >> 8), (unsigned char)code};
    return close_payload_valid(p, 2);
}

static void close_frames(void)
{
    CHECK(close_payload_valid(NULL, 0), "empty close");
    CHECK(!close_payload_valid((const unsigned char *)"\x03", 1), "one byte");
    static const unsigned valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1011, 1012, 1014, 3000, 4000, 4999};
    static const unsigned invalid[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
        CHECK(close_valid(valid[i]), "%u should be valid", valid[i]);
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
        CHECK(!close_valid(invalid[i]), "%u should be invalid", invalid[i]);
    CHECK(close_payload_valid((const unsigned char *)"\x03\xe8" "bye", 5), "code and reason");
}

int main(void)
{
    default_policy();
    listed();
    hosts();
    close_frames();
    if (failures)
        fprintf(stderr, "%d failures\n", failures);
    return failures ? 1 : 0;
}
