/* json_writer.c - JSON text building: escaping, UTF-8 repair and shortest round-trip numbers. */
#include "json_writer.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text_sanitize.h"

/* Make room for n more bytes of text plus the NUL.  Every size is checked for
 * overflow first: a huge n must fail the buffer, not wrap into a small realloc. */
static int reserve(jbuf *b, size_t n)
{
    if (b->failed)
        return -1;
    if (n > SIZE_MAX - 1 - b->len) {
        b->failed = 1;
        return -1;
    }
    size_t need = b->len + n + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        if (cap > (SIZE_MAX - b->head) / 2) {
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
    if (initial < 16)
        initial = 16;
    if (initial > SIZE_MAX - headroom) {
        b->failed = 1;
        return -1;
    }
    b->mem = malloc(headroom + initial);
    if (!b->mem) {
        b->failed = 1;
        return -1;
    }
    b->cap = initial;
    b->mem[headroom] = '\0';
    return 0;
}

void jb_free(jbuf *b)
{
    free(b->mem);
    memset(b, 0, sizeof(*b));
}

void jb_reset(jbuf *b)
{
    b->len = 0;
    b->failed = b->mem == NULL;
    if (b->mem)
        b->mem[b->head] = '\0';
}

void jb_raw(jbuf *b, const char *s, size_t n)
{
    /* n == 0 returns early so that (NULL, 0) never reaches memcpy. */
    if (n == 0 || reserve(b, n) < 0)
        return;
    memcpy(b->mem + b->head + b->len, s, n);
    b->len += n;
    b->mem[b->head + b->len] = '\0';
}

void jb_lit(jbuf *b, const char *s)
{
    jb_raw(b, s, strlen(s));
}

int utf8_valid(const char *str, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t seq = utf8_char_len(str + i, n - i);
        if (!seq)
            return 0;
        i += seq;
    }
    return 1;
}

void jb_str(jbuf *b, const char *str, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    size_t start = 0; /* s[start..i) is clean text not yet copied: flushed in one memcpy */
    size_t i = 0;

    jb_raw(b, "\"", 1);
    while (i < n) {
        unsigned char c = s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t seq = utf8_char_len(str + i, n - i);
            if (seq) {
                i += seq;
                continue;
            }
        }
        if (i > start)
            jb_raw(b, str + start, i - start);
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
                const char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                jb_raw(b, esc, sizeof(esc));
            } else {
                /* One replacement per bad byte, so the repair never eats the
                 * valid text that follows a truncated sequence. */
                jb_raw(b, "\xEF\xBF\xBD", 3);
            }
        }
        i++;
        start = i;
    }
    if (i > start) /* never str + 0 on a NULL str */
        jb_raw(b, str + start, i - start);
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
    size_t pos = sizeof(text);
    /* Work in unsigned so that LLONG_MIN negates without overflow. */
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;

    do {
        text[--pos] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        text[--pos] = '-';
    jb_raw(b, text + pos, sizeof(text) - pos);
}

/* Rewrite printf output in place to JSON number syntax.  printf follows
 * LC_NUMERIC, and an embedding application may have set a locale whose
 * decimal point is "," or a multi-byte character; that run becomes ".". */
static size_t json_number_text(char *text, size_t n)
{
    size_t out = 0;
    for (size_t i = 0; i < n;) {
        char c = text[i];
        if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == 'e' || c == 'E') {
            text[out++] = c;
            i++;
            continue;
        }
        text[out++] = '.';
        while (i < n && !((text[i] >= '0' && text[i] <= '9') || text[i] == 'e' || text[i] == 'E'))
            i++;
    }
    text[out] = '\0';
    return out;
}

void jb_double(jbuf *b, double v)
{
    char text[48];
    int n = 0;

    if (!isfinite(v)) {
        jb_null(b);
        return;
    }
    /* Any decimal of up to DBL_DIG (15) digits survives a trip through a
     * normal double, so %.15g already gives the shortest text when that is
     * 15 digits or fewer; only 16 and 17 need trying after it.  Subnormals
     * carry fewer digits (5e-324), so they search from 1. */
    int precision = (v != 0.0 && fabs(v) < DBL_MIN) ? 1 : DBL_DIG;
    for (; precision <= 17; precision++) {
        n = snprintf(text, sizeof(text), "%.*g", precision, v);
        if (n < 0 || (size_t)n >= sizeof(text)) {
            jb_null(b); /* cannot happen for %.17g of a finite double */
            return;
        }
        if (strtod(text, NULL) == v)
            break;
    }
    size_t len = json_number_text(text, (size_t)n);
    /* An integral value keeps a ".0" so that it still reads back as a float
     * (Python's json.loads gives int for "2"), as the pure-Python server's
     * json.dumps did.  "1e+300" already reads back as a float. */
    if (!strpbrk(text, ".e")) {
        text[len++] = '.';
        text[len++] = '0';
    }
    jb_raw(b, text, len);
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
