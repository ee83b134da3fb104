/* json_object.h - the top-level fields of one JSON object, read with libwebsockets' LEJP. */
#ifndef SB_JSON_OBJECT_H
#define SB_JSON_OBJECT_H

#include <stddef.h>

enum jo_kind { JO_ABSENT = 0, JO_STRING, JO_NULL, JO_NUMBER, JO_OTHER };

/*
 * What the last occurrence of one wanted top-level key held.
 * s: for JO_STRING, the decoded bytes, NUL-terminated; may hold NULs (from \u0000), so len counts.
 * number: for JO_NUMBER, the value as a double (inf for a literal that overflows).
 * count: how many times the key occurred at the top level (duplicates are > 1).
 */
struct jo_value {
    enum jo_kind kind;
    char *s;
    size_t len, cap;
    double number;
    unsigned count;
};

enum jo_status { JO_OK = 0, JO_INVALID, JO_NOMEM };

/*
 * Parse json[0..len) as exactly one JSON object and fill values[i] for the
 * top-level key names[i] (values must be zeroed by the caller).  A name
 * "parent.child" (one dot) stands for the key child of the object that the
 * top-level key parent holds, when parent is also one of the names; keys nested
 * deeper never count.  Returns JO_OK, or JO_INVALID / JO_NOMEM with err set to
 * a short reason.
 *
 * Limits (LEJP 4.1.6), all JO_INVALID: objects nested 12 deep (11 work),
 * arrays nested 6 deep (5 work), a key path over 125 bytes, a number of more
 * than 20 digits.  Also JO_INVALID: empty input, a top level that is not an
 * object, anything but blanks after the object, and '#' comments.
 * \uXXXX escapes are decoded; an escaped surrogate pair becomes one 4-byte
 * UTF-8 character, a lone surrogate stays as its 3-byte (invalid) form.
 */
int jo_parse(const char *json, size_t len, const char *const *names, size_t n,
             struct jo_value *values, char *err, size_t errlen);

/* Move v's string out (caller frees it); v no longer owns it. */
char *jo_take(struct jo_value *v);

/* Free the strings of values[0..n). */
void jo_free(struct jo_value *values, size_t n);

/* 1 when s[0..n) is exactly the C string name (s may hold NULs). */
int jo_bytes_equal(const char *s, size_t n, const char *name);

/* Copy "a" followed by "b" into err[0..errlen), truncated and NUL-terminated. */
void jo_set_err(char *err, size_t errlen, const char *a, const char *b);

#endif
