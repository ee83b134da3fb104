/* json_writer.c - JSON text building: escaping, UTF-8 repair and shortest round-trip numbers. */
#include "json_writer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Make room for n more bytes plus the NUL; returns -1 (and sets failed) when out of memory. */
static int reserve(jbuf *b, size_t n)
{
    if (b->failed)
        return -1;
    if (b->len + n + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + n + 1) {
        if (cap > ((size_t)-1 - b->head) / 2) {
            b->failed = 1;
            return -1;
        }
        cap *= 2;
    }
    char *mem = realloc(b->mem, b->head + cap);
    if (!mem) {
        b->failed = 1;
        return -1;
    }
    b->mem = mem;
    b->cap = cap;
    return 0;
}

int jb_init(jbuf *b, size_t headroom, size_t initial)
{
    memset(b, 0, sizeof(*b));
    b->head = headroom;
    b->cap = initial < 16 ? 16 : initial;
    b->mem = malloc(headroom + b->cap);
    if (!b->mem) {
        b->cap = 0;
        b->failed = 1;
        return -1;
    }
    b->mem[headroom] = '\0';
    return 0;
}

void jb_free(jbuf *b)
{
    free(b->mem);
    memset(b, 0, sizeof(*b));
}

void jb_raw(jbuf *b, const char *s, size_t n)
{
    if (reserve(b, n) < 0)
        return;
    memcpy(b->mem + b->head + b->len, s, n);
    b->len += n;
    b->mem[b->head + b->len] = '\0';
}

void jb_lit(jbuf *b, const char *s)
{
    jb_raw(b, s, strlen(s));
}

/* Length of the well-formed UTF-8 sequence at s[0..n), or 0 when it is not one. */
static size_t utf8_sequence(const unsigned char *s, size_t n)
{
    size_t len;
    unsigned cp;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        len = 2;
        cp = s[0] & 0x1F;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        len = 3;
        cp = s[0] & 0x0F;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        len = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
        return 0;
    return len;
}

void jb_str(jbuf *b, const char *str, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    size_t run = 0; /* bytes copied verbatim, flushed in one go */

    jb_raw(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            run++;
            i++;
            continue;
        }
        size_t seq = c >= 0x80 ? utf8_sequence(s + i, n - i) : 0;
        if (seq) {
            run += seq;
            i += seq;
            continue;
        }
        jb_raw(b, (const char *)s + i - run, run);
        run = 0;
        switch (c) {
        case '"': jb_raw(b, "\\\"", 2); break;
        case '\\': jb_raw(b, "\\\\", 2); break;
        case '\n': jb_raw(b, "\\n", 2); break;
        case '\r': jb_raw(b, "\\r", 2); break;
        case '\t': jb_raw(b, "\\t", 2); break;
        case '\b': jb_raw(b, "\\b", 2); break;
        case '\f': jb_raw(b, "\\f", 2); break;
        default:
            if (c < 0x20) {
                char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                jb_raw(b, esc, 6);
            } else {
                jb_raw(b, "\xEF\xBF\xBD", 3); /* a byte of invalid UTF-8 becomes U+FFFD */
            }
        }
        i++;
    }
    jb_raw(b, (const char *)s + n - run, run);
    jb_raw(b, "\"", 1);
}

void jb_cstr(jbuf *b, const char *s)
{
    if (s)
        jb_str(b, s, strlen(s));
    else
        jb_null(b);
}

void jb_int(jbuf *b, long long v)
{
    char text[24];
    int n = snprintf(text, sizeof(text), "%lld", v);
    jb_raw(b, text, (size_t)n);
}

void jb_double(jbuf *b, double v)
{
    char text[32];
    if (!isfinite(v)) {
        jb_null(b);
        return;
    }
    /* The shortest of %.15g..%.17g that reads back as the same double. */
    int n = 0;
    for (int precision = 15; precision <= 17; precision++) {
        n = snprintf(text, sizeof(text), "%.*g", precision, v);
        if (strtod(text, NULL) == v)
            break;
    }
    jb_raw(b, text, (size_t)n);
}

void jb_bool(jbuf *b, int v)
{
    if (v)
        jb_raw(b, "true", 4);
    else
        jb_raw(b, "false", 5);
}

void jb_null(jbuf *b)
{
    jb_raw(b, "null", 4);
}
