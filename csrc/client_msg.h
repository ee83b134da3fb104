/* client_msg.h - parse one client -> server protocol message (docs/realtime/WEBSOCKET_SERVER.md). */
#ifndef SB_CLIENT_MSG_H
#define SB_CLIENT_MSG_H

#include <stddef.h>
#include <stdint.h>

/* The longest epoch a since may name: any longer one is invalid_request. */
#define CM_EPOCH_MAX 64

enum cm_type {
    CM_NONE = 0,        /* no usable type (see status) */
    CM_SUBSCRIBE,
    CM_UNSUBSCRIBE,
    CM_PING,
    CM_GET_METRICS,
    CM_AUTH,
    CM_GET_HISTORY,
};

enum cm_status {
    CM_OK = 0,
    CM_INVALID_JSON,    /* not parseable JSON, or not a JSON object */
    CM_INVALID_REQUEST, /* a field is missing or of the wrong type */
    CM_UNKNOWN_TYPE,    /* "type" is a string naming no known message */
};

/*
 * The parsed message.  Strings are owned (malloc'd, NUL-terminated) and
 * released by client_msg_free().
 *
 * request_type: the value of "type" when it was a string (truncated to 63
 *   bytes, invalid UTF-8 kept as is - the JSON writer sanitises it), else
 *   NULL.  Filled even when status is not CM_OK, so that error replies can
 *   echo it.
 * skill: for CM_SUBSCRIBE, NULL means "all skills"; for CM_GET_METRICS it is
 *   always set.  Both "skill" and "skill_name" keys are accepted; if both are
 *   present with different values (null counts as a value) the message is
 *   CM_INVALID_REQUEST.  skill_len excludes the NUL.
 * token: for CM_AUTH, the "token" string.
 * has_since, since_epoch, since_seq: for CM_SUBSCRIBE with a "since" object.
 * window_s, step_s: for CM_GET_HISTORY, with their defaults filled in; skill NULL means all
 *   skills.
 */
struct client_msg {
    enum cm_type type;
    char *request_type;
    char *skill;
    size_t skill_len;
    char *token;
    int has_since;
    char since_epoch[CM_EPOCH_MAX + 1];
    uint64_t since_seq;
    long long window_s, step_s;
};

/*
 * Parse json[0..len) (already reassembled, already known to be valid UTF-8
 * when it came from a text frame).  Always fills *out (zeroed first) and
 * returns an enum cm_status.  On a non-OK status, err receives a short
 * human-readable reason (NUL-terminated, at most errlen bytes), suitable for
 * the "message" field of an error reply.
 *
 * Rules:
 * - "type" missing, with "token" a string: CM_AUTH, request_type NULL (the
 *   first-message form of session-buddy's pure-Python server).
 * - "type" missing otherwise, or not a string -> CM_INVALID_REQUEST.
 * - subscribe: skill / skill_name absent, null or a string; any other JSON
 *   type -> CM_INVALID_REQUEST.
 * - get_metrics: skill / skill_name must be a string -> else CM_INVALID_REQUEST.
 * - auth: token must be a string -> else CM_INVALID_REQUEST.
 * - subscribe: "since" absent or null means none; otherwise it must be an
 *   object with "epoch" a string of at most CM_EPOCH_MAX bytes without NUL and
 *   "seq" an integer 0..2^53 -> else CM_INVALID_REQUEST.
 * - get_history: skill / skill_name as for subscribe (null or absent: all
 *   skills); "window" and "step" absent or integers that
 *   history_request_check accepts (defaults 3600 and 60) -> else
 *   CM_INVALID_REQUEST.
 * - a skill name containing a NUL byte, an empty skill name, or one longer
 *   than SKILL_NAME_MAX (1024) bytes -> CM_INVALID_REQUEST.
 * - unsubscribe / ping: other fields are ignored.
 * - auth: a token containing a NUL byte -> CM_INVALID_REQUEST (token has no
 *   length field, so a NUL would silently shorten it).
 * - unknown fields are ignored everywhere; with duplicated keys the last
 *   occurrence wins.  Only keys of the top-level object count; a key of the
 *   same name nested deeper is ignored.
 * - nesting deeper than the parser's limit -> CM_INVALID_JSON.  LEJP 4.1.6's
 *   limits, all CM_INVALID_JSON: objects nested 12 deep (the message object
 *   counts; 11 work), arrays nested 6 deep (5 work), a key path - keys
 *   joined by ".", arrays as "[]" - over 125 bytes (so any single key over
 *   125 bytes), and a number of more than 20 digits.  Also CM_INVALID_JSON:
 *   empty input, a top level that is not an object, anything but blanks
 *   after the object, and '#' comments (which LEJP would skip).  LEJP's
 *   lenient number forms (01, 1e+) are accepted: no field here is a number.
 * - \uXXXX escapes are decoded; an escaped surrogate pair becomes the one
 *   4-byte UTF-8 character it encodes, a lone surrogate stays as its 3-byte
 *   (invalid) form.
 * - request_type is NULL for CM_INVALID_JSON; a NUL inside "type" ends it.
 * - out of memory -> CM_INVALID_REQUEST with err "out of memory".
 */
int client_msg_parse(const char *json, size_t len, struct client_msg *out,
                     char *err, size_t errlen);

/* Release the strings of *m and zero it.  Safe on a zeroed struct. */
void client_msg_free(struct client_msg *m);

#endif
