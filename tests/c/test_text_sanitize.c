/* test_text_sanitize.c - UTF-8 repair, cut-character trimming and log escaping of untrusted text,
 * and sb_log's guarantee that every queued line is escaped valid UTF-8. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "log.h"
#include "text_sanitize.h"

static void expect_copy(int line, const char *in, size_t len, size_t cap, const char *want)
{
    char out[256];
    size_t n = text_utf8_copy(out, cap, in, len);
    if (n != strlen(want) || memcmp(out, want, n + 1))
        FAIL("line %d: text_utf8_copy gave \"%s\" (%zu bytes), want \"%s\"", line, out, n, want);
}

static void expect_escape(int line, const char *in, size_t len, size_t cap, const char *want)
{
    char out[256];
    size_t n = text_log_escape(out, cap, in, len);
    if (n != strlen(want) || memcmp(out, want, n + 1))
        FAIL("line %d: text_log_escape gave \"%s\" (%zu bytes), want \"%s\"", line, out, n, want);
    if (!text_log_safe(out, n))
        FAIL("line %d: escaped output \"%s\" is not log-safe", line, out);
}

#define COPY(in, cap, want) expect_copy(__LINE__, in, sizeof(in) - 1, cap, want)
#define ESCAPE(in, cap, want) expect_escape(__LINE__, in, sizeof(in) - 1, cap, want)

static void test_utf8_copy(void)
{
    COPY("plain", 64, "plain");
    COPY("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", 64, "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
    COPY("a\xFF\xFE" "b", 64, "a\xEF\xBF\xBD\xEF\xBF\xBD" "b");          /* each bad byte */
    COPY("\xED\xA0\x80x", 64, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDx");  /* lone surrogate */
    COPY("\xC0\xAF", 64, "\xEF\xBF\xBD\xEF\xBF\xBD");                    /* overlong "/" */
    COPY("\xF4\x90\x80\x80", 64, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"); /* > U+10FFFF */
    COPY("a\0b", 64, "a\xEF\xBF\xBD" "b");                               /* NUL is not kept */
    COPY("line\nbreak\t", 64, "line\nbreak\t");                          /* data keeps controls */
    /* full: stop on a character boundary, never in the middle of one */
    COPY("\xC3\xA9\xC3\xA9\xC3\xA9", 6, "\xC3\xA9\xC3\xA9");
    COPY("\xC3\xA9\xC3\xA9\xC3\xA9", 5, "\xC3\xA9\xC3\xA9");
    COPY("\xC3\xA9\xC3\xA9\xC3\xA9", 4, "\xC3\xA9");
    COPY("ab\xFF", 5, "ab");                                             /* U+FFFD does not fit */
    COPY("abc", 1, "");
    /* a character cut by the end of the input is invalid, byte by byte */
    COPY("x\xE2\x82", 64, "x\xEF\xBF\xBD\xEF\xBF\xBD");
}

static void test_whole_prefix(void)
{
    static const struct { const char *s; size_t want; } cases[] = {
        {"abc", 3}, {"ab\xC3", 2}, {"ab\xC3\xA9", 4}, {"a\xE2\x82", 1}, {"a\xE2\x82\xAC", 4},
        {"a\xF0\x9F\x98", 1}, {"a\xF0\x9F\x98\x80", 5}, {"", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t got = utf8_whole_prefix(cases[i].s, strlen(cases[i].s));
        if (got != cases[i].want)
            FAIL("utf8_whole_prefix(case %zu) = %zu, want %zu", i, got, cases[i].want);
    }
}

static void test_log_escape(void)
{
    ESCAPE("client 'eve'", 64, "client 'eve'");
    ESCAPE("eve\nINFO forged\r\n", 64, "eve\\nINFO forged\\r\\n");
    ESCAPE("tab\there", 64, "tab\\there");
    ESCAPE("\x1b[2J\x7f\x01", 64, "\\x1b[2J\\x7f\\x01");
    ESCAPE("back\\slash", 64, "back\\\\slash");
    ESCAPE("\xFF\xFE", 64, "\\xff\\xfe");
    ESCAPE("\xED\xA0\x80", 64, "\\xed\\xa0\\x80");
    ESCAPE("x\xC3", 64, "x\\xc3");
    ESCAPE("caf\xC3\xA9", 64, "caf\xC3\xA9");                   /* printable UTF-8 kept */
    ESCAPE("\xC2\x85" "nel", 64, "\\u0085nel");                 /* C1 control */
    ESCAPE("a\xE2\x80\xA8" "b\xE2\x80\xA9", 64, "a\\u2028b\\u2029");
    ESCAPE("\xE2\x80\xAE" "evil\xE2\x81\xA6", 64, "\\u202eevil\\u2066"); /* bidi overrides */
    ESCAPE("a\0b", 64, "a\\x00b");
    /* full: whole escapes and characters only */
    ESCAPE("ab\ncd", 4, "ab");
    ESCAPE("ab\ncd", 5, "ab\\n");
    ESCAPE("a\xFF", 5, "a");
    ESCAPE("a\xFF", 6, "a\\xff");
    ESCAPE("\xC3\xA9\xC3\xA9", 4, "\xC3\xA9");
}

static void test_log_safe(void)
{
    if (!text_log_safe("fine \xC3\xA9 \\", strlen("fine \xC3\xA9 \\")))
        FAIL("text_log_safe refused safe text");
    static const char *const unsafe[] = {"a\nb", "\x1b", "\xFF", "\xC2\x85", "\xE2\x80\xA8", "x\xC3"};
    for (size_t i = 0; i < sizeof(unsafe) / sizeof(unsafe[0]); i++)
        if (text_log_safe(unsafe[i], strlen(unsafe[i])))
            FAIL("text_log_safe accepted unsafe case %zu", i);
}

/* Every line sb_log queues is log-safe, whatever its arguments hold, even cut by the bound. */
static void test_sb_log(void)
{
    struct event_queue q;
    char arg[3000];
    if (evq_init(&q) < 0) {
        FAIL("evq_init failed");
        return;
    }
    for (size_t i = 0; i < sizeof(arg) - 1; i++)
        arg[i] = i % 2 ? '\xA9' : '\xC3';           /* "é" repeated */
    arg[sizeof(arg) - 1] = '\0';
    sb_log(&q, SB_WARNING, "rejecting %s: Origin %.100s%s not allowed", "1.2.3.4:5", "x\xC3\xA9\xC3", "");
    sb_log(&q, SB_WARNING, "long %s", arg);         /* cut at SB_LOG_LINE_MAX */
    sb_log(&q, SB_WARNING, "x%s", arg);             /* cut at the other parity */
    sb_log(&q, SB_INFO, "user '%s'", "eve\nINFO admin logged in\xFF");
    size_t dropped = 0, n = 0;
    for (struct event *e = evq_take_all(&q, &dropped); e;) {
        struct event *next = e->next;
        size_t len = strlen(e->text);
        if (!text_log_safe(e->text, len) || len >= SB_LOG_LINE_MAX)
            FAIL("queued line %zu is not log-safe or too long (%zu bytes)", n, len);
        if (n == 3 && strcmp(e->text, "user 'eve\\nINFO admin logged in\\xff'"))
            FAIL("queued line 3 is \"%s\"", e->text);
        if ((n == 1 || n == 2) && len < SB_LOG_LINE_MAX - 8)
            FAIL("queued line %zu lost more than a cut character: %zu bytes", n, len);
        free(e);
        e = next;
        n++;
    }
    if (n != 4)
        FAIL("%zu lines queued, want 4", n);
    evq_destroy(&q);
}

int main(void)
{
    test_utf8_copy();
    test_whole_prefix();
    test_log_escape();
    test_log_safe();
    test_sb_log();
    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
