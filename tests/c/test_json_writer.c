/* test_json_writer.c - escaping, UTF-8 repair, numbers and headroom of the JSON writer. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "json_writer.h"

static int failures;

#define CHECK_STR(expr_len, input, expected)                                          \
    do {                                                                              \
        jbuf b;                                                                       \
        jb_init(&b, 16, 4);                                                           \
        jb_str(&b, input, expr_len);                                                  \
        if (b.failed || strcmp(jb_text(&b), expected) != 0) {                         \
            fprintf(stderr, "%s:%d: jb_str gave [%s], want [%s]\n", __FILE__, __LINE__, \
                    jb_text(&b), expected);                                           \
            failures++;                                                               \
        }                                                                             \
        jb_free(&b);                                                                  \
    } while (0)

static void check_double(double v, const char *expected)
{
    jbuf b;
    jb_init(&b, 0, 8);
    jb_double(&b, v);
    if (strcmp(jb_text(&b), expected) != 0) {
        fprintf(stderr, "jb_double(%.17g) gave [%s], want [%s]\n", v, jb_text(&b), expected);
        failures++;
    }
    jb_free(&b);
}

int main(void)
{
    /* plain, quotes, backslash, control characters */
    CHECK_STR(5, "hello", "\"hello\"");
    CHECK_STR(7, "a\"b\\c/d", "\"a\\\"b\\\\c/d\"");
    CHECK_STR(6, "\n\r\t\b\f\x01", "\"\\n\\r\\t\\b\\f\\u0001\"");
    CHECK_STR(1, "\x1f", "\"\\u001f\"");
    CHECK_STR(3, "a\0b", "\"a\\u0000b\"");
    CHECK_STR(0, "", "\"\"");
    /* valid multi-byte UTF-8 is copied as is: é (2), € (3), 😀 (4) */
    CHECK_STR(2, "\xC3\xA9", "\"\xC3\xA9\"");
    CHECK_STR(3, "\xE2\x82\xAC", "\"\xE2\x82\xAC\"");
    CHECK_STR(4, "\xF0\x9F\x98\x80", "\"\xF0\x9F\x98\x80\"");
    /* invalid UTF-8: each bad byte becomes U+FFFD */
    CHECK_STR(1, "\x80", "\"\xEF\xBF\xBD\"");                         /* lone continuation */
    CHECK_STR(2, "\xE2\x82", "\"\xEF\xBF\xBD\xEF\xBF\xBD\"");         /* truncated */
    CHECK_STR(2, "\xC0\xAF", "\"\xEF\xBF\xBD\xEF\xBF\xBD\"");         /* overlong '/' */
    CHECK_STR(3, "\xED\xA0\x80", "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\""); /* surrogate */
    CHECK_STR(4, "\xF4\x90\x80\x80",
              "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\""); /* > U+10FFFF */
    CHECK_STR(3, "a\xFFz", "\"a\xEF\xBF\xBDz\"");

    check_double(0.1, "0.1");
    check_double(1e300, "1e+300");
    check_double(-0.0, "-0");
    check_double(2.0, "2");
    check_double(1.0 / 3.0, "0.3333333333333333");
    check_double(0.1 + 0.2, "0.30000000000000004");
    check_double(NAN, "null");
    check_double(INFINITY, "null");
    check_double(-INFINITY, "null");

    /* headroom stays in front of the text, and everything composes */
    jbuf b;
    jb_init(&b, 16, 1);
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
    jb_lit(&b, "}");
    const char *want = "{\"n\":-42,\"t\":true,\"f\":false,\"z\":null,\"s\":null}";
    if (b.failed || b.head != 16 || jb_text(&b) != b.mem + 16 || strcmp(jb_text(&b), want) ||
        b.len != strlen(want)) {
        fprintf(stderr, "composition gave [%s]\n", jb_text(&b));
        failures++;
    }
    jb_free(&b);

    /* a failed buffer stays failed and appends nothing */
    jb_init(&b, 0, 16);
    jb_lit(&b, "ab");
    b.failed = 1;
    jb_lit(&b, "cd");
    if (b.len != 2 || strcmp(jb_text(&b), "ab")) {
        fprintf(stderr, "append after failure changed the text: [%s]\n", jb_text(&b));
        failures++;
    }
    jb_free(&b);

    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
