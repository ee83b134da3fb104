/* text_sanitize.h - untrusted bytes (peer input, DB text) made safe to cross into Python and into log lines. */
#ifndef SB_TEXT_SANITIZE_H
#define SB_TEXT_SANITIZE_H

#include <stddef.h>

/*
 * Length of the well-formed UTF-8 character that starts s[0..n) (n >= 1): 1 for
 * ASCII, 2 to 4 for a multi-byte character, 0 when s does not start one.  RFC
 * 3629: C0, C1 and F5..FF never start a character, and overlongs, surrogates
 * (so a lone surrogate escaped in JSON stays invalid) and code points over
 * U+10FFFF are refused.  The one definition every UTF-8 check in csrc/ uses.
 */
size_t utf8_char_len(const char *s, size_t n);

/*
 * The length of s[0..n) without a trailing character that was cut short (the
 * first bytes of a valid sequence whose end is missing), for text that a
 * printf-style bound may have cut in the middle of a character.
 */
size_t utf8_whole_prefix(const char *s, size_t n);

/*
 * Copy in[0..len) to out[0..cap) (cap >= 1) as valid UTF-8, for a string that
 * Python receives as data: well-formed characters (control characters
 * included) are kept, and each byte that does not belong to one, NUL
 * included, becomes U+FFFD.  When out is full the copy stops at a character
 * boundary.  out is always NUL-terminated.  Returns the length written.
 */
size_t text_utf8_copy(char *out, size_t cap, const char *in, size_t len);

/* Bytes text_utf8_copy needs for any input of len bytes, NUL included. */
#define TEXT_UTF8_COPY_CAP(len) (3 * (len) + 1)

/*
 * Copy in[0..len) to out[0..cap) (cap >= 1) as one safe log line: valid UTF-8
 * with no control character in it, so that no input can forge or split a
 * line.  Printable characters are kept; backslash becomes \\; \n \r \t are
 * written as such; other C0 controls, DEL and each byte of invalid UTF-8
 * become \xNN; C1 controls, U+2028/U+2029 (line breaks to many readers) and
 * the bidirectional overrides U+202A..U+202E, U+2066..U+2069 (which reorder
 * what a reader sees) become \uNNNN.  When out is full the copy stops before
 * the first character or escape that does not fit whole.  out is always
 * NUL-terminated.  Returns the length written.
 */
size_t text_log_escape(char *out, size_t cap, const char *in, size_t len);

/* 1 when s[0..n) is valid UTF-8 holding none of the characters text_log_escape escapes
 * (backslash excepted), else 0: the property every log line has. */
int text_log_safe(const char *s, size_t n);

#endif
