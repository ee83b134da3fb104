/* fuzz_events.c - libFuzzer target for the text that crosses from C into Python: log lines
 * (sb_log -> event queue, as _take_events reads them), the strings of `clients` (peers, user
 * ids, skill names through text_utf8_copy) and the user id a verified JWT carries.
 *
 * Input: [mode:1][bytes].  mode % 4:
 *   0  the bytes as the arguments of real log formats (an Origin cut at 100 bytes, a user id,
 *      a whole line past the 1 KiB bound), then every queued line is taken from the queue;
 *   1  text_utf8_copy into a buffer of a size the first byte picks;
 *   2  text_log_escape likewise;
 *   3  the bytes as the user_id string of a JWT payload, signed and verified.
 * Every text that would reach Python must be valid UTF-8 (so a strict decode cannot fail);
 * every log line must also hold no control character (so it cannot forge a line). */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "event_queue.h"
#include "json_writer.h"
#include "jwt.h"
#include "log.h"
#include "text_sanitize.h"

static void check_log_line(const char *s)
{
    size_t n = strlen(s);
    if (n >= SB_LOG_LINE_MAX || !text_log_safe(s, n))
        abort();
}

static void fuzz_log(const char *text, size_t len)
{
    static struct event_queue q;
    static int ready;
    if (!ready) {
        if (evq_init(&q) < 0)
            abort();
        ready = 1;
    }
    sb_log(&q, SB_WARNING, "rejecting %s: Origin %.100s%s not allowed", "127.0.0.1:4242", text,
           len > 100 ? "..." : "");
    sb_log(&q, SB_INFO, "client %llu connected from %s as user '%s' (%zu connected)", 7ULL,
           "[::1]:4242", text, (size_t)1);
    sb_log(&q, SB_ERROR, "%s%s%s%s%s", text, text, text, text, text); /* past the bound */
    sb_log(&q, SB_WARNING, "libwebsockets: %s", text);
    size_t dropped = 0;
    for (struct event *e = evq_take_all(&q, &dropped); e;) {
        struct event *next = e->next;
        check_log_line(e->text);
        free(e);
        e = next;
    }
}

static void fuzz_copy(const char *in, size_t len, int escape)
{
    size_t cap = len ? 1 + (unsigned char)in[0] % 64 : 1;
    if (len && (unsigned char)in[0] >= 192)
        cap = escape ? 4 * len + 1 : TEXT_UTF8_COPY_CAP(len); /* room for everything */
    char *out = malloc(cap);
    if (!out)
        return;
    size_t n = escape ? text_log_escape(out, cap, in, len) : text_utf8_copy(out, cap, in, len);
    if (n >= cap || out[n] != '\0' || strlen(out) != n || !utf8_valid(out, n))
        abort();
    if (escape && !text_log_safe(out, n))
        abort();
    /* With room for everything, valid text without NUL comes through unchanged. */
    if (!escape && cap == TEXT_UTF8_COPY_CAP(len) && utf8_valid(in, len) && !memchr(in, '\0', len) &&
        (n != len || memcmp(out, in, len)))
        abort();
    free(out);
}

static size_t base64url(const unsigned char *in, size_t len, char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0) |
                     (i + 2 < len ? in[i + 2] : 0);
        out[o++] = abc[v >> 18 & 63];
        out[o++] = abc[v >> 12 & 63];
        if (i + 1 < len)
            out[o++] = abc[v >> 6 & 63];
        if (i + 2 < len)
            out[o++] = abc[v & 63];
    }
    return o;
}

static void fuzz_jwt_user(const char *in, size_t len)
{
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    static const unsigned char secret[] = "fuzz-secret";
    if (len > 2048)
        return;
    char payload[2200];
    int plen = snprintf(payload, sizeof(payload), "{\"exp\":4000000000,\"user_id\":\"%.*s\"}",
                        (int)len, in);
    if (plen < 0 || (size_t)plen >= sizeof(payload))
        return;
    char token[4 * sizeof(payload) / 3 + 128];
    size_t t = base64url((const unsigned char *)header, sizeof(header) - 1, token);
    token[t++] = '.';
    t += base64url((const unsigned char *)payload, (size_t)plen, token + t);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (!HMAC(EVP_sha256(), secret, sizeof(secret) - 1, (const unsigned char *)token, t, mac, &mac_len))
        abort();
    token[t++] = '.';
    t += base64url(mac, mac_len, token + t);

    struct jwt_claims claims;
    if (jwt_verify(token, t, secret, sizeof(secret) - 1, 1800000000.0, &claims) != JWT_OK)
        return; /* the bytes were no valid JSON string: refused, as they must be */
    size_t n = strlen(claims.user_id);
    if (n > JWT_MAX_USER_ID || !utf8_valid(claims.user_id, n))
        abort();
    jwt_claims_free(&claims);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *in = (const char *)data + 1;
    size_t len = size - 1;
    char *text = malloc(len + 1); /* a C string for the %s formats: it ends at the first NUL */
    if (!text)
        return 0;
    memcpy(text, in, len);
    text[len] = '\0';
    switch (data[0] % 4) {
    case 0:
        fuzz_log(text, strlen(text));
        break;
    case 1:
        fuzz_copy(in, len, 0);
        break;
    case 2:
        fuzz_copy(in, len, 1);
        break;
    case 3:
        fuzz_jwt_user(in, len);
        break;
    }
    free(text);
    return 0;
}
