/* json_writer.h - append-only JSON text builder with optional LWS_PRE headroom. */
#ifndef SB_JSON_WRITER_H
#define SB_JSON_WRITER_H

#include <stddef.h>

/*
 * A growable byte buffer that JSON text is appended to.  The text starts
 * `head` bytes into the allocation so that libwebsockets can write a frame
 * header in front of it without a copy.
 *
 * Errors are sticky: when an allocation fails, `failed` is set, every later
 * append is a no-op, and the caller checks `failed` once at the end.  The
 * text is always NUL-terminated (the NUL is not counted in `len`).
 */
typedef struct jbuf {
    char *mem;     /* owned allocation: head bytes of headroom, then the text */
    size_t head;   /* headroom in front of the text */
    size_t len;    /* text length in bytes */
    size_t cap;    /* bytes available for text after the headroom */
    int failed;    /* nonzero after an allocation failure */
} jbuf;

/* Initialise with `headroom` bytes in front and room for `initial` bytes of
 * text. Returns 0, or -1 (and sets failed) when the allocation fails. */
int jb_init(jbuf *b, size_t headroom, size_t initial);

/* Free the allocation; the struct may be initialised again afterwards. */
void jb_free(jbuf *b);

/* The text (NUL-terminated); never NULL after a successful jb_init. */
static inline char *jb_text(const jbuf *b) { return b->mem + b->head; }

/* Empty the text, keeping the allocation for the next one (and clearing `failed` when there is
 * one), so that one buffer can build message after message. */
void jb_reset(jbuf *b);

/* Append n raw bytes / a raw C string, unescaped. */
void jb_raw(jbuf *b, const char *s, size_t n);
void jb_lit(jbuf *b, const char *s);

/* Append s[0..n) as a quoted JSON string.  Quotes, backslashes and control
 * characters are escaped (\n \r \t \b \f, otherwise \u00XX); valid multi-byte
 * UTF-8 is copied as is; each byte of an invalid UTF-8 sequence (including
 * overlongs, surrogates and code points over U+10FFFF) becomes U+FFFD. NUL
 * bytes inside s are written as \u0000. */
void jb_str(jbuf *b, const char *s, size_t n);

/* Append a NUL-terminated string quoted as above, or `null` when s is NULL. */
void jb_cstr(jbuf *b, const char *s);

/* Append an integer. */
void jb_int(jbuf *b, long long v);

/* Append a double in its shortest form that round-trips (0.1 not
 * 0.10000000000000001); NaN and infinities become `null`.  An integral value
 * keeps ".0" (2.0, -0.0) so that JSON readers still see a float; the
 * output uses "." whatever LC_NUMERIC says. */
void jb_double(jbuf *b, double v);

/* Append `true` / `false` / `null`. */
void jb_bool(jbuf *b, int v);
void jb_null(jbuf *b);

/* 1 when s[0..n) is well-formed UTF-8 by the same rules jb_str applies (utf8_char_len: no
 * overlongs, surrogates or code points over U+10FFFF), else 0. */
int utf8_valid(const char *s, size_t n);

#endif
