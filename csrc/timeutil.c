/* timeutil.c - clocks, and the ISO 8601 forms the wire protocol and the skills DB use. */
#include "timeutil.h"

#include <stdio.h>
#include <time.h>

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

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)((int64_t)yoe + era * 400 + (*m <= 2));
}

void iso_format_ms(int64_t unix_ms, char *out)
{
    if (unix_ms < 0)
        unix_ms = 0;
    int64_t days = unix_ms / 86400000;
    int64_t ms_of_day = unix_ms % 86400000;
    int year;
    unsigned month, day;
    civil_from_days(days, &year, &month, &day);
    unsigned secs = (unsigned)(ms_of_day / 1000);
    snprintf(out, 32, "%04d-%02u-%02uT%02u:%02u:%02u.%03uZ", year % 10000, month % 100,
             day % 100, (secs / 3600) % 100, (secs / 60) % 60, secs % 60,
             (unsigned)(ms_of_day % 1000));
}

static int digits(const char *s, size_t n, size_t at, size_t count, int *out)
{
    int v = 0;
    if (at + count > n)
        return -1;
    for (size_t i = at; i < at + count; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int iso_parse_ms(const char *s, size_t n, int64_t *unix_ms)
{
    static const int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int year, month, day, hour, minute, second;
    size_t i;

    if (digits(s, n, 0, 4, &year) || n < 19 || s[4] != '-' || digits(s, n, 5, 2, &month) ||
        s[7] != '-' || digits(s, n, 8, 2, &day) || (s[10] != 'T' && s[10] != ' ') ||
        digits(s, n, 11, 2, &hour) || s[13] != ':' || digits(s, n, 14, 2, &minute) ||
        s[16] != ':' || digits(s, n, 17, 2, &second))
        return -1;
    if (month < 1 || month > 12 || day < 1 ||
        day > month_days[month - 1] + (month == 2 && is_leap(year)) || hour > 23 ||
        minute > 59 || second > 60)
        return -1;

    int64_t ms = 0;
    i = 19;
    if (i < n && s[i] == '.') {
        size_t start = ++i;
        int scale = 100;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (scale) {
                ms += (s[i] - '0') * scale;
                scale /= 10;
            }
            i++;
        }
        if (i == start || i - start > 10)
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

    int64_t days = days_from_civil(year, (unsigned)month, (unsigned)day);
    int64_t secs = days * 86400 + hour * 3600 + minute * 60 + second - offset_min * 60;
    *unix_ms = secs * 1000 + ms;
    return 0;
}
