/* test_timeutil.c - the ISO 8601 forms of invoked_at, the wire format of timestamps, and the clocks. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* timegm and gmtime_r, used as an independent oracle */
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "timeutil.h"

/* Parse s[0..n) from an exact-size heap copy without a NUL, so that ASan
 * and valgrind see any read past n. */
static int parse_exact(const char *s, size_t n, int64_t *out)
{
    char *copy = malloc(n ? n : 1);
    if (!copy)
        return -2;
    memcpy(copy, s, n);
    int rc = iso_parse_ms(copy, n, out);
    free(copy);
    return rc;
}

static void parses(int line, const char *s, int64_t expected)
{
    int64_t got = INT64_MIN;
    if (parse_exact(s, strlen(s), &got) != 0 || got != expected)
        FAIL("line %d: iso_parse_ms(\"%s\") = %lld, want %lld", line, s, (long long)got,
             (long long)expected);
}

static void rejects(int line, const char *s, size_t n)
{
    int64_t got = 12345;
    if (parse_exact(s, n, &got) != -1)
        FAIL("line %d: iso_parse_ms(\"%.*s\") accepted it", line, (int)n, s);
    else if (got != 12345)
        FAIL("line %d: iso_parse_ms(\"%.*s\") wrote *unix_ms on failure", line, (int)n, s);
}

#define PARSES(s, ms) parses(__LINE__, s, ms)
#define REJECTS(s) rejects(__LINE__, s, strlen(s))

static void formats(int line, int64_t ms, const char *expected)
{
    char out[32];
    memset(out, 'x', sizeof(out));
    iso_format_ms(ms, out);
    if (strlen(out) != 24 || strcmp(out, expected))
        FAIL("line %d: iso_format_ms(%lld) = %.32s, want %s", line, (long long)ms, out, expected);
}

#define FORMATS(ms, s) formats(__LINE__, ms, s)

/* Milliseconds of a UTC civil time, computed by the C library. */
static int64_t oracle_ms(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    return (int64_t)timegm(&tm) * 1000;
}

static const int64_t BASE = INT64_C(1770724800000); /* 2026-02-10T12:00:00Z */

static void test_forms(void)
{
    if (oracle_ms(2026, 2, 10, 12, 0, 0) != BASE)
        FAIL("the timegm oracle disagrees with the base instant");

    /* date and time separated by T or a space; no zone means UTC */
    PARSES("2026-02-10T12:00:00", BASE);
    PARSES("2026-02-10 12:00:00", BASE);
    PARSES("2026-02-10T12:00:00Z", BASE);
    PARSES("2026-02-10T12:00:00z", BASE);
    PARSES("2026-02-10 12:00:00Z", BASE);
    PARSES("2026-02-10T12:00:00+00:00", BASE);
    PARSES("2026-02-10T12:00:00-00:00", BASE);
    PARSES("2026-02-10T12:00:00+0000", BASE);
    PARSES("2026-02-10 12:00:00.5+00:00", BASE + 500);
    /* what Python's datetime.isoformat() and SQLite's datetime() write */
    PARSES("2026-02-10T12:00:00.123456", BASE + 123);
    PARSES("2026-02-10T12:00:00.123456+00:00", BASE + 123);
    PARSES("2026-02-10 12:00:00", BASE);

    /* fraction: 1 to 10 digits, anything past milliseconds truncated (not rounded) */
    static const char *const fractions[] = {"5",      "56",      "567",      "5678",      "56789",
                                            "567891", "5678912", "56789123", "567891234", "5678912349"};
    static const int64_t fraction_ms[] = {500, 560, 567, 567, 567, 567, 567, 567, 567, 567};
    for (size_t i = 0; i < 10; i++) {
        char s[64];
        snprintf(s, sizeof(s), "2026-02-10T12:00:00.%sZ", fractions[i]);
        parses(__LINE__, s, BASE + fraction_ms[i]);
        snprintf(s, sizeof(s), "2026-02-10 12:00:00.%s", fractions[i]);
        parses(__LINE__, s, BASE + fraction_ms[i]);
        snprintf(s, sizeof(s), "2026-02-10T13:00:00.%s+01:00", fractions[i]);
        parses(__LINE__, s, BASE + fraction_ms[i]);
    }
    PARSES("2026-02-10T12:00:00.999999999Z", BASE + 999); /* truncated, not rounded up */
    PARSES("2026-02-10T12:00:00.000Z", BASE);
    PARSES("2026-02-10T12:00:00.0000000001Z", BASE);
    REJECTS("2026-02-10T12:00:00.12345678901Z"); /* 11 digits */
    REJECTS("2026-02-10T12:00:00.Z");
    REJECTS("2026-02-10T12:00:00.");
    REJECTS("2026-02-10T12:00:00,123Z");
    REJECTS("2026-02-10T12:00:00.12a");
}

static void test_zones(void)
{
    /* east of UTC is earlier in UTC, west is later; both offset spellings */
    PARSES("2026-02-10T13:30:00+01:30", BASE);
    PARSES("2026-02-10T13:30:00+0130", BASE);
    PARSES("2026-02-10T07:00:00-05:00", BASE);
    PARSES("2026-02-10T07:00:00-0500", BASE);
    PARSES("2026-02-10T06:15:00-05:45", BASE);
    PARSES("2026-02-10T17:45:00+05:45", BASE);
    PARSES("2026-02-11T11:59:00+23:59", BASE);
    PARSES("2026-02-09T12:01:00-23:59", BASE);
    /* crossing midnight */
    PARSES("2026-02-09T23:00:00-13:00", BASE);
    PARSES("2026-02-11T01:00:00+13:00", BASE);
    PARSES("2026-02-10T00:30:00+01:00", oracle_ms(2026, 2, 9, 23, 30, 0));
    PARSES("2026-02-10T23:30:00-01:00", oracle_ms(2026, 2, 11, 0, 30, 0));
    /* crossing the year, both ways */
    PARSES("2025-12-31T23:00:00-13:00", oracle_ms(2026, 1, 1, 12, 0, 0));
    PARSES("2026-01-01T00:30:00+01:00", oracle_ms(2025, 12, 31, 23, 30, 0));
    PARSES("2025-12-31T23:30:00.250-01:00", oracle_ms(2026, 1, 1, 0, 30, 0) + 250);
    /* crossing into a leap day, and out of one */
    PARSES("2024-03-01T00:30:00+01:00", oracle_ms(2024, 2, 29, 23, 30, 0));
    PARSES("2024-02-29T23:30:00-01:00", oracle_ms(2024, 3, 1, 0, 30, 0));
    /* before the epoch: negative */
    PARSES("1970-01-01T00:30:00+01:00", -30 * 60 * 1000);
    PARSES("1969-12-31T23:59:59.999Z", -1);

    REJECTS("2026-02-10T12:00:00+5");
    REJECTS("2026-02-10T12:00:00+05");
    REJECTS("2026-02-10T12:00:00+05:");
    REJECTS("2026-02-10T12:00:00+05:3");
    REJECTS("2026-02-10T12:00:00+053");
    REJECTS("2026-02-10T12:00:00+05:300");
    REJECTS("2026-02-10T12:00:00+24:00");
    REJECTS("2026-02-10T12:00:00+05:60");
    REJECTS("2026-02-10T12:00:00+05-30");
    REJECTS("2026-02-10T12:00:00 +05:30");
    REJECTS("2026-02-10T12:00:00ZZ");
    REJECTS("2026-02-10T12:00:00Z+01:00");
    REJECTS("2026-02-10T12:00:00UTC");
    REJECTS("2026-02-10T12:00:00GMT");
}

static void test_calendar(void)
{
    PARSES("1970-01-01T00:00:00Z", 0);
    PARSES("2024-02-29T00:00:00Z", INT64_C(1709164800000)); /* leap day */
    PARSES("2000-02-29T12:00:00Z", oracle_ms(2000, 2, 29, 12, 0, 0)); /* divisible by 400 */
    PARSES("2026-12-31T23:59:59.999Z", oracle_ms(2026, 12, 31, 23, 59, 59) + 999);
    PARSES("2026-02-10T12:00:60Z", BASE + 60000); /* a leap second reads as the next minute */
    PARSES("9999-12-31T23:59:59.999Z", INT64_C(253402300799999));
    PARSES("0001-01-01T00:00:00Z", oracle_ms(1, 1, 1, 0, 0, 0));

    REJECTS("2026-02-30T00:00:00Z"); /* no Feb 30 */
    REJECTS("2026-02-29T00:00:00Z"); /* 2026 is not a leap year */
    REJECTS("1900-02-29T00:00:00Z"); /* divisible by 100 but not 400 */
    REJECTS("2100-02-29T00:00:00Z");
    REJECTS("2026-04-31T00:00:00Z");
    REJECTS("2026-06-31T00:00:00Z");
    REJECTS("2026-09-31T00:00:00Z");
    REJECTS("2026-11-31T00:00:00Z");
    REJECTS("2026-01-32T00:00:00Z");
    REJECTS("2026-13-01T00:00:00Z");
    REJECTS("2026-00-10T00:00:00Z");
    REJECTS("2026-02-00T00:00:00Z");
    REJECTS("2026-02-10T24:00:00Z");
    REJECTS("2026-02-10T12:60:00Z");
    REJECTS("2026-02-10T12:00:61Z");
    REJECTS("2026-99-99T99:99:99Z");

    /* every day of 1999..2029 against the C library, with a time and an offset */
    for (int y = 1999; y <= 2029; y++)
        for (int m = 1; m <= 12; m++)
            for (int d = 1; d <= 31; d++) {
                char s[64];
                int64_t want = oracle_ms(y, m, d, 0, 0, 0);
                struct tm check;
                time_t t = (time_t)(want / 1000);
                gmtime_r(&t, &check);
                int real = check.tm_mday == d && check.tm_mon == m - 1;
                snprintf(s, sizeof(s), "%04d-%02d-%02dT07:08:09.010-03:30", y, m, d);
                if (real)
                    parses(__LINE__, s, want + ((7 + 3) * 3600 + (8 + 30) * 60 + 9) * 1000 + 10);
                else
                    rejects(__LINE__, s, strlen(s));
            }
}

static void test_garbage(void)
{
    REJECTS("");
    REJECTS("garbage");
    REJECTS("2026-02-10");
    REJECTS("2026-02-10T12:00");
    REJECTS("2026-02-10T12:00:0");
    REJECTS("12:00:00");
    REJECTS(" 2026-02-10T12:00:00");
    REJECTS("2026-02-10T12:00:00 ");
    REJECTS("2026-02-10T12:00:00\n");
    REJECTS("2026-02-10X12:00:00");
    REJECTS("2026-02-10t12:00:00");
    REJECTS("2026-02-10TT12:00:00");
    REJECTS("2026/02/10T12:00:00");
    REJECTS("2026-2-10T12:00:00Z");
    REJECTS("2026-02-1T12:00:00Z");
    REJECTS("2026-02-10T1:00:00Z");
    REJECTS("26-02-10T12:00:00Z");
    REJECTS("+2026-02-10T12:00:00Z");
    REJECTS("-2026-02-10T12:00:00Z");
    REJECTS("20260210T120000Z");
    REJECTS("2026-02-10T12:00:00.123Zjunk");
    REJECTS("2O26-02-10T12:00:00Z"); /* letter O */
    REJECTS("2026-02-10T12:0a:00Z");
    REJECTS("2026-02-10T12:00:00\xEF\xBC\xBA"); /* fullwidth Z */
    REJECTS("1770724800000");
    {
        /* a NUL inside, and n counting only part of a longer string */
        static const char with_nul[] = "2026-02-10T12:00:00\0Z";
        rejects(__LINE__, with_nul, sizeof(with_nul) - 1);
        int64_t got = 0;
        if (parse_exact("2026-02-10T12:00:00Zjunk", 20, &got) != 0 || got != BASE)
            FAIL("n must bound the parse: got %lld", (long long)got);
    }

    /* every prefix of a full timestamp: only the complete forms parse */
    const char *full = "2026-02-10T13:30:00.123456+01:30";
    size_t n = strlen(full);
    for (size_t len = 0; len <= n; len++) {
        int64_t got;
        int rc = parse_exact(full, len, &got);
        int complete = len == 19 || (len >= 21 && len <= 26) || len == n;
        if (complete != (rc == 0))
            FAIL("prefix of length %zu: rc %d", len, rc);
    }
}

static void test_format(void)
{
    FORMATS(0, "1970-01-01T00:00:00.000Z");
    FORMATS(BASE + 123, "2026-02-10T12:00:00.123Z");
    FORMATS(BASE + 7, "2026-02-10T12:00:00.007Z");
    FORMATS(BASE + 86399999 - 12 * 3600000, "2026-02-10T23:59:59.999Z");
    FORMATS(INT64_C(1709164800000) + 86399999, "2024-02-29T23:59:59.999Z");
    FORMATS(INT64_C(951782400000), "2000-02-29T00:00:00.000Z");
    FORMATS(INT64_C(946684799999), "1999-12-31T23:59:59.999Z");
    FORMATS(INT64_C(946684800000), "2000-01-01T00:00:00.000Z");
    FORMATS(INT64_C(4102444800000), "2100-01-01T00:00:00.000Z");
    FORMATS(INT64_C(253402300799999), "9999-12-31T23:59:59.999Z");
    /* clamped to the 24-character range */
    FORMATS(-1, "1970-01-01T00:00:00.000Z");
    FORMATS(-5, "1970-01-01T00:00:00.000Z");
    FORMATS(INT64_MIN, "1970-01-01T00:00:00.000Z");
    FORMATS(INT64_C(253402300800000), "9999-12-31T23:59:59.999Z");
    FORMATS(INT64_MAX, "9999-12-31T23:59:59.999Z");

    /* against gmtime_r, and back through the parser, over the whole range */
    uint64_t x = 0x2545F4914F6CDD1Du;
    for (int i = 0; i < 100000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int64_t ms = (int64_t)(x % UINT64_C(253402300800000));
        if (i % 2)
            ms = BASE + (int64_t)(x % (UINT64_C(86400000) * 366 * 3)); /* near today */
        char out[32], want[64];
        iso_format_ms(ms, out);
        time_t t = (time_t)(ms / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
        int64_t back = -1;
        if (strcmp(out, want))
            FAIL("iso_format_ms(%lld) = %s, gmtime_r says %s", (long long)ms, out, want);
        else if (parse_exact(out, strlen(out), &back) || back != ms)
            FAIL("round trip of %s gave %lld, want %lld", out, (long long)back, (long long)ms);
    }
}

static void test_clocks(void)
{
    int64_t wall = now_unix_ms();
    int64_t libc = (int64_t)time(NULL) * 1000;
    if (wall < libc - 2000 || wall > libc + 2000)
        FAIL("now_unix_ms() = %lld, time() says %lld", (long long)wall, (long long)libc);

    int64_t prev = mono_us();
    if (prev <= 0)
        FAIL("mono_us() = %lld", (long long)prev);
    for (int i = 0; i < 100000; i++) {
        int64_t t = mono_us();
        if (t < prev) {
            FAIL("mono_us() went back: %lld then %lld", (long long)prev, (long long)t);
            break;
        }
        prev = t;
    }
    /* it advances: spin (no sleep) until at least 1 ms has passed */
    int64_t start = mono_us(), spins = 0;
    while (mono_us() - start < 1000 && spins < 100000000)
        spins++;
    if (mono_us() - start < 1000)
        FAIL("mono_us() did not advance");
}

int main(void)
{
    test_forms();
    test_zones();
    test_calendar();
    test_garbage();
    test_format();
    test_clocks();

    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
