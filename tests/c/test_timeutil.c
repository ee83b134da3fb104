/* test_timeutil.c - the ISO 8601 forms of invoked_at, and the wire format of timestamps. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "timeutil.h"

static int failures;

static void parses(const char *s, int64_t expected)
{
    int64_t got = 0;
    if (iso_parse_ms(s, strlen(s), &got) != 0 || got != expected) {
        fprintf(stderr, "iso_parse_ms(%s) = %lld, want %lld\n", s, (long long)got,
                (long long)expected);
        failures++;
    }
}

static void rejects(const char *s)
{
    int64_t got;
    if (iso_parse_ms(s, strlen(s), &got) == 0) {
        fprintf(stderr, "iso_parse_ms(%s) accepted it\n", s);
        failures++;
    }
}

static void formats(int64_t ms, const char *expected)
{
    char out[32];
    iso_format_ms(ms, out);
    if (strcmp(out, expected)) {
        fprintf(stderr, "iso_format_ms(%lld) = %s, want %s\n", (long long)ms, out, expected);
        failures++;
    }
}

int main(void)
{
    const int64_t base = 1770724800000LL; /* 2026-02-10T12:00:00Z */
    parses("2026-02-10T12:00:00Z", base);
    parses("2026-02-10T12:00:00", base);
    parses("2026-02-10 12:00:00", base);
    parses("2026-02-10T12:00:00z", base);
    parses("2026-02-10T12:00:00.1Z", base + 100);
    parses("2026-02-10T12:00:00.12Z", base + 120);
    parses("2026-02-10T12:00:00.123Z", base + 123);
    parses("2026-02-10T12:00:00.123456", base + 123);
    parses("2026-02-10T12:00:00.123456789+00:00", base + 123);
    parses("2026-02-10T13:30:00+01:30", base);
    parses("2026-02-10T13:30:00+0130", base);
    parses("2026-02-10T07:00:00-05:00", base);
    parses("2026-02-09T23:00:00-13:00", base);           /* crosses midnight */
    parses("2025-12-31T23:00:00-13:00", 1767268800000LL); /* crosses the year: 2026-01-01T12:00Z */
    parses("2024-02-29T00:00:00Z", 1709164800000LL);      /* leap day */
    parses("1970-01-01T00:00:00Z", 0);

    rejects("");
    rejects("garbage");
    rejects("2026-02-30T00:00:00Z");  /* no Feb 30 */
    rejects("2025-02-29T00:00:00Z");  /* not a leap year */
    rejects("2026-13-01T00:00:00Z");
    rejects("2026-02-10T24:00:00Z");
    rejects("2026-02-10T12:60:00Z");
    rejects("2026-02-10T12:00:00.Z");
    rejects("2026-02-10T12:00:00+5");
    rejects("2026-02-10T12:00:00 ");
    rejects(" 2026-02-10T12:00:00");
    rejects("2026-02-10");
    rejects("2026-02-10X12:00:00");

    formats(base + 123, "2026-02-10T12:00:00.123Z");
    formats(0, "1970-01-01T00:00:00.000Z");
    formats(-5, "1970-01-01T00:00:00.000Z");
    formats(1709164800000LL + 86399999, "2024-02-29T23:59:59.999Z");

    char out[32];
    int64_t back;
    iso_format_ms(base + 7, out);
    if (iso_parse_ms(out, strlen(out), &back) || back != base + 7) {
        fprintf(stderr, "format/parse round trip failed: %s\n", out);
        failures++;
    }
    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
