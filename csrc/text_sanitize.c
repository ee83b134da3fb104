/* text_sanitize.c - UTF-8 validation, repair and log-line escaping of untrusted text. */
#include "text_sanitize.h"

#include <stdint.h>
#include <string.h>

static const char hex[] = "0123456789abcdef";

size_t utf8_char_len(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t len;
    uint32_t cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        len = 2;
        cp = s[0] & 0x1Fu;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        len = 3;
        cp = s[0] & 0x0Fu;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        len = 4;
        cp = s[0] & 0x07u;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[k] & 0x3Fu);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
        return 0;
    return len;
}

size_t utf8_whole_prefix(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    /* A character is at most 4 bytes: only the last 3 can belong to a cut one. */
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        unsigned char c = s[n - back];
        if ((c & 0xC0) == 0x80)
            continue; /* a continuation byte: its lead is further back */
        size_t want = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        return want > back ? n - back : n;
    }
    return n;
}

/* The code point of the well-formed character s[0..len). */
static uint32_t decode(const unsigned char *s, size_t len)
{
    static const unsigned char lead_mask[5] = {0, 0x7F, 0x1F, 0x0F, 0x07};
    uint32_t cp = s[0] & lead_mask[len];
    for (size_t k = 1; k < len; k++)
        cp = (cp << 6) | (s[k] & 0x3Fu);
    return cp;
}

/* Characters a log line must not hold raw: controls, line separators, bidi overrides. */
static int log_unsafe(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || (cp >= 0x2028 && cp <= 0x202E) ||
           (cp >= 0x2066 && cp <= 0x2069);
}

size_t text_utf8_copy(char *out, size_t cap, const char *in, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t n = in[i] ? utf8_char_len(in + i, len - i) : 0;
        const char *unit = n ? in + i : "\xEF\xBF\xBD";
        size_t unit_len = n ? n : 3;
        if (o + unit_len >= cap)
            break;
        memcpy(out + o, unit, unit_len);
        o += unit_len;
        i += n ? n : 1;
    }
    out[o] = '\0';
    return o;
}

size_t text_log_escape(char *out, size_t cap, const char *in, size_t len)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t o = 0;
    char esc[8];

    for (size_t i = 0; i < len;) {
        size_t n = utf8_char_len(in + i, len - i);
        const char *unit = in + i;
        size_t unit_len = n;
        if (!n) {
            /* one escape per bad byte: the valid text after a cut sequence survives */
            esc[0] = '\\';
            esc[1] = 'x';
            esc[2] = hex[s[i] >> 4];
            esc[3] = hex[s[i] & 15];
            unit = esc;
            unit_len = 4;
            n = 1;
        } else if (s[i] == '\\') {
            unit = "\\\\";
            unit_len = 2;
        } else {
            uint32_t cp = decode(s + i, n);
            if (log_unsafe(cp)) {
                unit = esc;
                if (cp == '\n' || cp == '\r' || cp == '\t') {
                    esc[0] = '\\';
                    esc[1] = cp == '\n' ? 'n' : cp == '\r' ? 'r' : 't';
                    unit_len = 2;
                } else if (cp < 0x80) {
                    memcpy(esc, "\\x", 2);
                    esc[2] = hex[cp >> 4];
                    esc[3] = hex[cp & 15];
                    unit_len = 4;
                } else {
                    memcpy(esc, "\\u", 2);
                    for (int k = 0; k < 4; k++)
                        esc[2 + k] = hex[(cp >> (12 - 4 * k)) & 15];
                    unit_len = 6;
                }
            }
        }
        if (o + unit_len >= cap)
            break;
        memcpy(out + o, unit, unit_len);
        o += unit_len;
        i += n;
    }
    out[o] = '\0';
    return o;
}

int text_log_safe(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t len = utf8_char_len(s + i, n - i);
        if (!len || log_unsafe(decode((const unsigned char *)s + i, len)))
            return 0;
        i += len;
    }
    return 1;
}
