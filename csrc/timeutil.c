/* timeutil.c - clocks, and the ISO 8601 forms the wire protocol and the skills DB use. */
/* clock_gettime is POSIX, not C11: ask for it when the build has not already. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include "timeutil.h"

#include <time.h>

/* 9999-12-31T23:59:59.999Z: the last instant that fits the fixed 24-character form. */
#define MAX_FORMATTED_MS INT64_C(253402300799999)

int64_t now_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Days since 1970-01-01 of a proleptic Gregorian date.  Plain arithmetic
 * (Howard Hinnant's days_from_civil) instead of timegm(): no dependence on
 * TZ or the C library's range, and nothing shared between threads. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;                                 /* [0, 399] */
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* [0, 365] */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;         /* [0, 146096] */
    return era * 146097 + doe - 719468;
}

/* The inverse of days_from_civil. */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* Write v as exactly `width` decimal digits ending just before `end`. */
static void put_digits(char *end, int64_t v, int width)
{
    while (width-- > 0) {
        *--end = (char)('0' + v % 10);
        v /= 10;
    }
}

void iso_format_ms(int64_t unix_ms, char *out)
{
    /* Clamp so that the text is always the 24-character form clients parse. */
    if (unix_ms < 0)
        unix_ms = 0;
    if (unix_ms > MAX_FORMATTED_MS)
        unix_ms = MAX_FORMATTED_MS;

    int64_t days = unix_ms / 86400000;
    int64_t ms_of_day = unix_ms % 86400000;
    int64_t year;
    int month, day;
    civil_from_days(days, &year, &month, &day);

    int64_t secs = ms_of_day / 1000;
    char *p = out;
    put_digits(p + 4, year, 4);
    p[4] = '-';
    put_digits(p + 7, month, 2);
    p[7] = '-';
    put_digits(p + 10, day, 2);
    p[10] = 'T';
    put_digits(p + 13, secs / 3600, 2);
    p[13] = ':';
    put_digits(p + 16, secs / 60 % 60, 2);
    p[16] = ':';
    put_digits(p + 19, secs % 60, 2);
    p[19] = '.';
    put_digits(p + 23, ms_of_day % 1000, 3);
    p[23] = 'Z';
    p[24] = '\0';
}

/* Read exactly `count` ASCII digits at s[at..]; -1 when they are not all there. */
static int digits(const char *s, size_t n, size_t at, size_t count, int *out)
{
    int v = 0;
    if (at > n || count > n - at)
        return -1;
    for (size_t i = at; i < at + count; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int days_in_month(int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return days[month - 1] + (month == 2 && leap);
}

int iso_parse_ms(const char *s, size_t n, int64_t *unix_ms)
{
    int year, month, day, hour, minute, second;

    /* YYYY-MM-DD[T ]HH:MM:SS, the part every form shares. */
    if (n < 19 || digits(s, n, 0, 4, &year) || s[4] != '-' || digits(s, n, 5, 2, &month) ||
        s[7] != '-' || digits(s, n, 8, 2, &day) || (s[10] != 'T' && s[10] != ' ') ||
        digits(s, n, 11, 2, &hour) || s[13] != ':' || digits(s, n, 14, 2, &minute) ||
        s[16] != ':' || digits(s, n, 17, 2, &second))
        return -1;
    if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) || hour > 23 ||
        minute > 59 || second > 60)
        return -1;

    size_t i = 19;
    int64_t ms = 0;
    if (i < n && s[i] == '.') {
        size_t first = ++i;
        int scale = 100;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            ms += (s[i] - '0') * scale; /* digits past milliseconds add 0: truncation */
            scale /= 10;
            i++;
        }
        if (i == first || i - first > 10)
            return -1;
    }

    int64_t offset_min = 0;
    if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < n && (s[i] == '+' || s[i] == '-')) {
        int sign = s[i] == '-' ? -1 : 1, oh, om;
        i++;
        if (digits(s, n, i, 2, &oh))
            return -1;
        i += 2;
        if (i < n && s[i] == ':')
            i++;
        if (digits(s, n, i, 2, &om) || oh > 23 || om > 59)
            return -1;
        i += 2;
        offset_min = sign * (oh * 60 + om);
    }
    if (i != n)
        return -1;

    int64_t secs = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
    /* A local time east of UTC is earlier in UTC: subtract the offset. */
    *unix_ms = (secs - offset_min * 60) * 1000 + ms;
    return 0;
}
