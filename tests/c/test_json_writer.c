/* test_json_writer.c - escaping, UTF-8 repair, numbers, headroom and sticky failure of the JSON writer. */
#include <float.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "json_writer.h"

/* Print bytes readably in a failure message. */
static void show(const char *label, const char *s, size_t n)
{
    fprintf(stderr, "  %s: ", label);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7F)
            fputc(c, stderr);
        else
            fprintf(stderr, "<%02X>", c);
    }
    fputc('\n', stderr);
}

/* The text must be NUL-terminated at len, with the headroom in front. */
static int well_formed(const jbuf *b, size_t head)
{
    return !b->failed && b->head == head && jb_text(b) == b->mem + head && b->len < b->cap &&
           jb_text(b)[b->len] == '\0';
}

/* jb_str(input[0..n)) must give exactly `expected` (which may hold NULs: pass its length). */
static void check_str(int line, const char *input, size_t n, const char *expected, size_t elen)
{
    jbuf b;
    if (jb_init(&b, 16, 4) < 0) {
        FAIL("line %d: jb_init failed", line);
        return;
    }
    jb_str(&b, input, n);
    if (!well_formed(&b, 16) || b.len != elen || memcmp(jb_text(&b), expected, elen) != 0) {
        fprintf(stderr, "line %d: jb_str is wrong\n", line);
        show("input", input ? input : "", input ? n : 0);
        show("got", jb_text(&b), b.len);
        show("want", expected, elen);
        failures++;
    }
    jb_free(&b);
}

#define STR(input, expected) check_str(__LINE__, input, sizeof(input) - 1, expected, sizeof(expected) - 1)

#define FFFD "\xEF\xBF\xBD"

static void test_escaping(void)
{
    STR("hello", "\"hello\"");
    STR("", "\"\"");
    check_str(__LINE__, NULL, 0, "\"\"", 2);
    /* quotes and backslashes; "/" needs no escape */
    STR("a\"b\\c/d", "\"a\\\"b\\\\c/d\"");
    STR("\"\"\\\\", "\"\\\"\\\"\\\\\\\\\"");
    /* the short escapes */
    STR("\n\r\t\b\f", "\"\\n\\r\\t\\b\\f\"");
    /* every other control character is \u00XX, lowercase hex; DEL (0x7F) is not a control in JSON */
    for (int c = 0; c < 0x20; c++) {
        if (c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f')
            continue;
        char in[3] = {'x', (char)c, 'y'}, want[16];
        int n = snprintf(want, sizeof(want), "\"x\\u%04xy\"", c);
        check_str(__LINE__, in, 3, want, (size_t)n);
    }
    STR("\x7F", "\"\x7F\"");
    /* an embedded NUL is written, not treated as the end */
    STR("a\0b", "\"a\\u0000b\"");
    STR("\0", "\"\\u0000\"");
    /* jb_cstr: escaped the same way, NULL is null */
    {
        jbuf b;
        jb_init(&b, 0, 16);
        jb_cstr(&b, "q\"\n");
        jb_raw(&b, ",", 1);
        jb_cstr(&b, NULL);
        if (!well_formed(&b, 0) || strcmp(jb_text(&b), "\"q\\\"\\n\",null"))
            FAIL("jb_cstr gave [%s]", jb_text(&b));
        jb_free(&b);
    }
}

static void test_utf8(void)
{
    /* valid sequences of 2, 3 and 4 bytes, at the edges of each range, copied as is */
    STR("\xC2\x80", "\"\xC2\x80\"");                 /* U+0080 */
    STR("\xC3\xA9", "\"\xC3\xA9\"");                 /* é */
    STR("\xDF\xBF", "\"\xDF\xBF\"");                 /* U+07FF */
    STR("\xE0\xA0\x80", "\"\xE0\xA0\x80\"");         /* U+0800 */
    STR("\xE2\x82\xAC", "\"\xE2\x82\xAC\"");         /* € */
    STR("\xED\x9F\xBF", "\"\xED\x9F\xBF\"");         /* U+D7FF, just below the surrogates */
    STR("\xEE\x80\x80", "\"\xEE\x80\x80\"");         /* U+E000, just above */
    STR("\xEF\xBF\xBF", "\"\xEF\xBF\xBF\"");         /* U+FFFF */
    STR("\xF0\x90\x80\x80", "\"\xF0\x90\x80\x80\""); /* U+10000 */
    STR("\xF0\x9F\x98\x80", "\"\xF0\x9F\x98\x80\""); /* 😀 */
    STR("\xF4\x8F\xBF\xBF", "\"\xF4\x8F\xBF\xBF\""); /* U+10FFFF */
    STR("a\xC3\xA9\"\xF0\x9F\x98\x80\n", "\"a\xC3\xA9\\\"\xF0\x9F\x98\x80\\n\"");

    /* invalid: each bad byte becomes U+FFFD, and valid text around it survives */
    STR("\x80", "\"" FFFD "\"");                                 /* lone continuation */
    STR("a\xBFz", "\"a" FFFD "z\"");
    STR("\xC3", "\"" FFFD "\"");                                 /* truncated at the end */
    STR("\xE2\x82", "\"" FFFD FFFD "\"");
    STR("\xF0\x9F\x98", "\"" FFFD FFFD FFFD "\"");
    STR("\xE2\x82z", "\"" FFFD FFFD "z\"");                      /* truncated mid-text */
    STR("\xC3\xC3\xA9", "\"" FFFD "\xC3\xA9\"");                 /* cut short by a new lead */
    STR("\xC0\xAF", "\"" FFFD FFFD "\"");                        /* overlong '/' (2 bytes) */
    STR("\xC1\xBF", "\"" FFFD FFFD "\"");
    STR("\xE0\x80\xAF", "\"" FFFD FFFD FFFD "\"");               /* overlong, 3 bytes */
    STR("\xE0\x9F\xBF", "\"" FFFD FFFD FFFD "\"");               /* U+07FF in 3 bytes */
    STR("\xF0\x80\x80\xAF", "\"" FFFD FFFD FFFD FFFD "\"");      /* overlong, 4 bytes */
    STR("\xF0\x8F\xBF\xBF", "\"" FFFD FFFD FFFD FFFD "\"");      /* U+FFFF in 4 bytes */
    STR("\xED\xA0\x80", "\"" FFFD FFFD FFFD "\"");               /* surrogate U+D800 */
    STR("\xED\xBF\xBF", "\"" FFFD FFFD FFFD "\"");               /* surrogate U+DFFF */
    STR("\xED\xA0\xBD\xED\xB8\x80", "\"" FFFD FFFD FFFD FFFD FFFD FFFD "\""); /* CESU-8 pair */
    STR("\xF4\x90\x80\x80", "\"" FFFD FFFD FFFD FFFD "\"");      /* U+110000 */
    STR("\xF5\x80\x80\x80", "\"" FFFD FFFD FFFD FFFD "\"");
    STR("\xFE\xFF", "\"" FFFD FFFD "\"");
    /* a bad byte next to characters that need escaping */
    STR("\xFF\"\x01\xFF", "\"" FFFD "\\\"\\u0001" FFFD "\"");
}

/* Every byte string of length 1..2 (and a sample of 3..4): the output is
 * valid UTF-8 with no raw control characters, and valid input is unchanged. */
static int valid_utf8(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t len = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3
                                  : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        if (!len || n - i < len)
            return 0;
        unsigned long cp = len == 1 ? c : len == 2 ? (c & 0x1Fu) : len == 3 ? (c & 0x0Fu) : (c & 0x07u);
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3Fu);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
            return 0;
        i += len;
    }
    return 1;
}

static void sweep_one(const unsigned char *in, size_t n)
{
    jbuf b;
    jb_init(&b, 0, 8);
    jb_str(&b, (const char *)in, n);
    const unsigned char *out = (const unsigned char *)jb_text(&b);
    int bad = b.failed || !valid_utf8(out, b.len) || out[0] != '"' || out[b.len - 1] != '"';
    for (size_t i = 0; !bad && i < b.len; i++)
        bad = out[i] < 0x20;
    /* input without anything to escape must come out unchanged */
    int plain = valid_utf8(in, n);
    for (size_t i = 0; plain && i < n; i++)
        plain = in[i] >= 0x20 && in[i] != '"' && in[i] != '\\';
    if (!bad && plain)
        bad = b.len != n + 2 || memcmp(out + 1, in, n) != 0;
    if (bad) {
        fprintf(stderr, "UTF-8 sweep failed\n");
        show("input", (const char *)in, n);
        show("got", (const char *)out, b.len);
        failures++;
    }
    jb_free(&b);
}

static void test_utf8_sweep(void)
{
    unsigned char in[4];
    for (unsigned a = 0; a < 256; a++) {
        in[0] = (unsigned char)a;
        sweep_one(in, 1);
        for (unsigned c = 0; c < 256; c++) {
            in[1] = (unsigned char)c;
            sweep_one(in, 2);
        }
    }
    /* lead bytes E0..F4 with every continuation-ish second byte and two fixed tails */
    static const unsigned char tails[] = {0x80, 0xBF, 0x41, 0xC3};
    for (unsigned a = 0xE0; a <= 0xF4; a++)
        for (unsigned c = 0x70; c < 0xD0; c++)
            for (size_t t = 0; t < sizeof(tails); t++)
                for (size_t u = 0; u < sizeof(tails); u++) {
                    in[0] = (unsigned char)a;
                    in[1] = (unsigned char)c;
                    in[2] = tails[t];
                    in[3] = tails[u];
                    sweep_one(in, 3);
                    sweep_one(in, 4);
                }
}

static void check_double(int line, double v, const char *expected)
{
    jbuf b;
    jb_init(&b, 0, 8);
    jb_double(&b, v);
    if (!well_formed(&b, 0) || strcmp(jb_text(&b), expected) != 0)
        FAIL("line %d: jb_double(%.17g) gave [%s], want [%s]", line, v, jb_text(&b), expected);
    jb_free(&b);
}

#define DBL(v, expected) check_double(__LINE__, v, expected)

/* Is text a JSON number (RFC 8259 grammar)? */
static int json_number(const char *s)
{
    if (*s == '-')
        s++;
    if (*s == '0')
        s++;
    else if (*s >= '1' && *s <= '9')
        while (*s >= '0' && *s <= '9')
            s++;
    else
        return 0;
    if (*s == '.') {
        s++;
        if (*s < '0' || *s > '9')
            return 0;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if (*s < '0' || *s > '9')
            return 0;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    return *s == '\0';
}

/* Significant digits of a number's text: the mantissa's digits without its
 * leading and trailing zeros ("120.0" has 2, "0.0012" has 2). */
static int significant_digits(const char *s)
{
    int n = 0, zeros = 0, started = 0;
    for (; *s && *s != 'e'; s++) {
        if (*s < '0' || *s > '9')
            continue;
        if (*s != '0')
            started = 1;
        if (!started)
            continue;
        if (*s == '0') {
            zeros++;
        } else {
            n += zeros + 1;
            zeros = 0;
        }
    }
    return n;
}

/* Round trip, JSON syntax, and shortness: no text with fewer digits reads back as v. */
static void check_round_trip(double v)
{
    jbuf b;
    char shorter[512]; /* %g of a double is at most ~330 bytes */
    jb_init(&b, 0, 8);
    jb_double(&b, v);
    const char *t = jb_text(&b);
    if (b.failed || !json_number(t) || strtod(t, NULL) != v) {
        FAIL("jb_double(%.17g) gave [%s], which is not JSON or does not read back", v, t);
    } else {
        int digits = significant_digits(t);
        snprintf(shorter, sizeof(shorter), "%.*g", digits - 1, v);
        if (digits > 1 && strtod(shorter, NULL) == v)
            FAIL("jb_double(%.17g) gave [%s], but [%s] is shorter", v, t, shorter);
        if (v == floor(v) && fabs(v) < 1e15 && !strchr(t, '.'))
            FAIL("jb_double(%.17g) gave [%s], which reads back as an integer", v, t);
    }
    jb_free(&b);
}

static void test_numbers(void)
{
    DBL(0.1, "0.1");
    DBL(-1.5, "-1.5");
    DBL(1e300, "1e+300");
    DBL(-1e-300, "-1e-300");
    DBL(1e21, "1e+21");
    DBL(1e-7, "1e-07");
    DBL(1.0 / 3.0, "0.3333333333333333");
    DBL(2.0 / 3.0, "0.6666666666666666");
    DBL(0.1 + 0.2, "0.30000000000000004");
    DBL(DBL_MAX, "1.7976931348623157e+308");
    DBL(DBL_MIN, "2.2250738585072014e-308");
    DBL(5e-324, "5e-324"); /* the smallest subnormal: shortest is one digit */
    DBL(DBL_EPSILON, "2.220446049250313e-16");
    /* integral values keep ".0" so they read back as floats */
    DBL(0.0, "0.0");
    DBL(-0.0, "-0.0");
    DBL(2.0, "2.0");
    DBL(-42.0, "-42.0");
    DBL(123456.0, "123456.0");
    DBL(100000000000000.0, "100000000000000.0");
    DBL(1e15, "1e+15");
    DBL(9007199254740993.0, "9007199254740992.0"); /* 2^53 + 1 is not a double */
    /* not representable in JSON */
    DBL(NAN, "null");
    DBL(-NAN, "null");
    DBL(INFINITY, "null");
    DBL(-INFINITY, "null");

    /* many doubles of every magnitude: valid JSON, exact round trip, shortest */
    uint64_t x = 0x9E3779B97F4A7C15u;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double v;
        memcpy(&v, &x, sizeof(v)); /* any bit pattern, subnormals included */
        if (isfinite(v))
            check_round_trip(v);
        check_round_trip((double)(x >> 40) / 1000.0); /* "human" values like 12345.678 */
        check_round_trip((double)(int64_t)(x >> 12));
    }

    /* integers */
    static const struct {
        long long v;
        const char *text;
    } ints[] = {{0, "0"}, {7, "7"}, {-42, "-42"}, {1000000, "1000000"},
                {LLONG_MAX, "9223372036854775807"}, {LLONG_MIN, "-9223372036854775808"}};
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        jbuf b;
        jb_init(&b, 0, 1);
        jb_int(&b, ints[i].v);
        if (!well_formed(&b, 0) || strcmp(jb_text(&b), ints[i].text))
            FAIL("jb_int(%lld) gave [%s]", ints[i].v, jb_text(&b));
        jb_free(&b);
    }
}

/* A locale whose decimal point is "," must not leak into the JSON.  The
 * pytest driver builds de_DE.UTF-8 with localedef and sets
 * SB_REQUIRE_LOCALE=1, so that the check cannot silently not run there. */
static void test_locale(void)
{
    const char *name = "de_DE.UTF-8";
    if (!setlocale(LC_NUMERIC, name)) {
        if (getenv("SB_REQUIRE_LOCALE"))
            FAIL("locale %s is not available", name);
        else
            fprintf(stderr, "note: locale %s not available, decimal-comma check skipped\n", name);
        return;
    }
    char probe[16];
    snprintf(probe, sizeof(probe), "%.1f", 0.5);
    if (strcmp(probe, "0,5"))
        FAIL("locale %s does not use a decimal comma (%s)", name, probe);
    DBL(0.5, "0.5");
    DBL(-1234.25, "-1234.25");
    DBL(1.0 / 3.0, "0.3333333333333333");
    DBL(2.5e-10, "2.5e-10");
    DBL(3.0, "3.0");
    setlocale(LC_NUMERIC, "C");
}

static void test_composition_and_headroom(void)
{
    jbuf b;
    if (jb_init(&b, 16, 1) < 0) {
        FAIL("jb_init failed");
        return;
    }
    /* the headroom is the caller's (libwebsockets writes the frame header there):
     * fill it, grow the buffer many times, and check it survived */
    memset(b.mem, 0x5A, 16);
    jb_lit(&b, "{\"n\":");
    jb_int(&b, -42);
    jb_lit(&b, ",\"t\":");
    jb_bool(&b, 1);
    jb_lit(&b, ",\"f\":");
    jb_bool(&b, 0);
    jb_lit(&b, ",\"z\":");
    jb_null(&b);
    jb_lit(&b, ",\"s\":");
    jb_cstr(&b, NULL);
    jb_lit(&b, ",\"d\":");
    jb_double(&b, 0.25);
    jb_lit(&b, "}");
    const char *want = "{\"n\":-42,\"t\":true,\"f\":false,\"z\":null,\"s\":null,\"d\":0.25}";
    if (!well_formed(&b, 16) || strcmp(jb_text(&b), want) || b.len != strlen(want))
        FAIL("composition gave [%s]", jb_text(&b));

    /* grow to 1 MB in uneven steps, checking content and the terminator */
    size_t expect_len = b.len;
    for (int i = 0; i < 20000; i++) {
        jb_raw(&b, "0123456789abcdefghijklmnopqrstuvwxyz", (size_t)(i % 37));
        expect_len += (size_t)(i % 37);
        jb_raw(&b, "", 0);
        jb_raw(&b, NULL, 0);
    }
    if (!well_formed(&b, 16) || b.len != expect_len || strncmp(jb_text(&b), want, strlen(want)))
        FAIL("growth lost data: len %zu want %zu", b.len, expect_len);
    for (size_t i = 0; i < 16; i++)
        if ((unsigned char)b.mem[i] != 0x5A) {
            FAIL("headroom byte %zu changed", i);
            break;
        }
    jb_free(&b);
    if (b.mem || b.len || b.cap || b.head || b.failed)
        FAIL("jb_free did not reset the struct");

    /* a long string forces growth inside jb_str */
    size_t n = 100000;
    char *big = malloc(n);
    if (big) {
        for (size_t i = 0; i < n; i++)
            big[i] = (i % 50 == 0) ? '"' : (char)('a' + i % 26);
        jb_init(&b, 8, 0);
        jb_str(&b, big, n);
        if (!well_formed(&b, 8) || b.len != n + 2 + n / 50)
            FAIL("long string: len %zu", b.len);
        jb_free(&b);
        free(big);
    }

    /* no headroom at all; and a struct can be initialised again after jb_free */
    jb_init(&b, 0, 0);
    jb_lit(&b, "x");
    if (!well_formed(&b, 0) || strcmp(jb_text(&b), "x"))
        FAIL("zero headroom gave [%s]", jb_text(&b));
    jb_free(&b);
    jb_free(&b);
    if (jb_init(&b, 4, 4) < 0 || !well_formed(&b, 4) || b.len != 0 || jb_text(&b)[0] != '\0')
        FAIL("re-initialising after jb_free failed");
    jb_free(&b);
}

/* After a failure every append is a no-op and the text stays as it was. */
static void append_everything(jbuf *b)
{
    jb_raw(b, "raw", 3);
    jb_lit(b, "lit");
    jb_str(b, "str", 3);
    jb_cstr(b, "cstr");
    jb_cstr(b, NULL);
    jb_int(b, 12345);
    jb_double(b, 1.5);
    jb_double(b, NAN);
    jb_bool(b, 1);
    jb_null(b);
}

static void test_sticky_failure(void)
{
    jbuf b;

    /* a size that would overflow fails the buffer instead of wrapping round */
    jb_init(&b, 0, 16);
    jb_lit(&b, "ab");
    jb_raw(&b, "x", SIZE_MAX - 1);
    if (!b.failed)
        FAIL("a SIZE_MAX - 1 byte append did not fail");
    append_everything(&b);
    if (b.len != 2 || strcmp(jb_text(&b), "ab"))
        FAIL("appends after a failure changed the text: [%s]", jb_text(&b));
    jb_free(&b);

    jb_init(&b, 32, 16);
    jb_lit(&b, "ab");
    jb_raw(&b, "x", SIZE_MAX - 40);
    append_everything(&b);
    if (!b.failed || b.len != 2 || strcmp(jb_text(&b), "ab"))
        FAIL("append overflowing with headroom: failed %d [%s]", b.failed, jb_text(&b));
    jb_free(&b);

    /* headroom + initial overflowing: jb_init fails, and everything after is a safe no-op */
    if (jb_init(&b, SIZE_MAX - 8, 16) != -1 || !b.failed)
        FAIL("jb_init with an impossible headroom did not fail");
    append_everything(&b);
    if (!b.failed || b.len != 0)
        FAIL("appends after a failed jb_init did something");
    jb_free(&b);
    if (jb_init(&b, 64, SIZE_MAX - 32) != -1 || !b.failed)
        FAIL("jb_init with an impossible size did not fail");
    jb_free(&b);

    /* the flag alone is enough to stop appends */
    jb_init(&b, 0, 16);
    jb_lit(&b, "ab");
    b.failed = 1;
    append_everything(&b);
    if (b.len != 2 || strcmp(jb_text(&b), "ab"))
        FAIL("append after failure changed the text: [%s]", jb_text(&b));
    jb_free(&b);
}

/* utf8_valid (used to vet binary frames) follows the same rules as jb_str's repair. */
static void test_utf8_valid(void)
{
    static const struct {
        const char *s;
        size_t n;
        int valid;
    } cases[] = {
        {"", 0, 1},
        {"plain ascii", 11, 1},
        {"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", 14, 1},
        {"a\0b", 3, 1},
        {"\x80", 1, 0},
        {"\xE2\x82", 2, 0},
        {"\xC0\xAF", 2, 0},
        {"\xED\xA0\x80", 3, 0},
        {"\xF4\x90\x80\x80", 4, 0},
        {"ok\xFF", 3, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (utf8_valid(cases[i].s, cases[i].n) != cases[i].valid) {
            fprintf(stderr, "utf8_valid case %zu: got %d\n", i, !cases[i].valid);
            failures++;
        }
    }
}

int main(void)
{
    test_utf8_valid();
    test_escaping();
    test_utf8();
    test_utf8_sweep();
    test_numbers();
    test_locale();
    test_composition_and_headroom();
    test_sticky_failure();

    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
