/* timeutil.h - wall-clock helpers and the ISO 8601 forms of the wire protocol. */
#ifndef SB_TIMEUTIL_H
#define SB_TIMEUTIL_H

#include <stdint.h>
#include <stddef.h>

/* Milliseconds since the Unix epoch, from CLOCK_REALTIME. */
int64_t now_unix_ms(void);

/* Monotonic clock in microseconds (CLOCK_MONOTONIC). */
int64_t mono_us(void);

/* Write unix_ms as "2026-02-10T12:00:00.123Z" (always 24 chars + NUL) into
 * out, which must hold at least 32 bytes.  Negative times are clamped to 0,
 * times after 9999-12-31T23:59:59.999Z to that instant. */
void iso_format_ms(int64_t unix_ms, char *out);

/*
 * Parse s[0..n) as one of the forms session-buddy writes to invoked_at:
 *   YYYY-MM-DDTHH:MM:SS  or  YYYY-MM-DD HH:MM:SS
 *   optional fraction: .d to .dddddddddd (digits beyond milliseconds truncated)
 *   optional zone: Z, z, +HH:MM, -HH:MM, +HHMM, -HHMM; none means UTC.
 * Surrounding whitespace is not accepted.  Fields are range-checked (month
 * 1-12, day within the month incl. leap years, hour 0-23, minute 0-59,
 * second 0-60; offset hours 0-23, minutes 0-59).  Returns 0 and stores
 * milliseconds since the epoch in *unix_ms (negative before 1970), or -1
 * when s is not one of these forms.
 */
int iso_parse_ms(const char *s, size_t n, int64_t *unix_ms);

#endif
