/* protocol_codes.h - every error code and WebSocket close code the server sends, in one table. */
#ifndef SB_PROTOCOL_CODES_H
#define SB_PROTOCOL_CODES_H

#include <stdint.h>

/*
 * The "code" of an {"type":"error"} reply.  After an error the connection stays open; the
 * client may send its next message (docs/realtime/WEBSOCKET_SERVER.md, "Errors", lists them for clients).
 */
#define SB_ERR_INVALID_JSON    "invalid_json"    /* not JSON, or a binary frame that is not UTF-8 */
#define SB_ERR_UNKNOWN_TYPE    "unknown_type"    /* a "type" the server does not know */
#define SB_ERR_INVALID_REQUEST "invalid_request" /* a known type with a bad or missing field */
#define SB_ERR_UNKNOWN_SKILL   "unknown_skill"   /* get_metrics / get_history: a skill with no data */
#define SB_ERR_AUTH_REQUIRED   "auth_required"   /* a request before the auth message */
#define SB_ERR_RATE_LIMITED    "rate_limited"    /* over the rate limit: the message was dropped */

/* Per-client bounds, the same for network and in-process clients: replies other than
 * metrics_update may queue until they reach this many bytes; a reply that finds them there
 * closes the client (SB_CLOSE_SLOW_CONSUMER), so the queue holds at most this plus one reply
 * (one reply may be larger by itself: a 1,440-point history_response is about 170 KB); a client the server closes gets this many seconds to take its
 * close frame (one that does not read never lets it be sent, and is then dropped). */
#define SB_MAX_QUEUED_REPLY_BYTES (64 * 1024)
#define SB_CLOSE_GRACE_S 5

/* Close codes lws 4.1.6 has no name for. */
#define SB_CLOSE_TRY_AGAIN_LATER 1013
#define SB_CLOSE_AUTH_FAILED 4001

/* Why the server closes a WebSocket connection; each has one code and one reason text. */
enum sb_close_why {
    SB_CLOSE_SHUTDOWN,        /* 1001: the server stops */
    SB_CLOSE_SERVER_FULL,     /* 1013: max_clients clients are connected */
    SB_CLOSE_BAD_TOKEN,       /* 4001: no valid token in time */
    SB_CLOSE_RATE_LIMIT,      /* 1008: over the rate limit for too long */
    SB_CLOSE_SLOW_CONSUMER,   /* 1008: replies queued past their bound */
    SB_CLOSE_REPLAY_BEHIND,   /* 1008: a resumed client read its replay so slowly that the
                               * next update it was owed left the recovery window */
    SB_CLOSE_TOO_LARGE,       /* 1009: a message over max_message_size */
    SB_CLOSE_OUT_OF_MEMORY,   /* 1011 */
    SB_CLOSE_WRITE_FAILED,    /* 1011: the socket refused an update */
    SB_CLOSE_BAD_CLOSE_FRAME, /* 1002: the client's close frame broke RFC 6455 5.5.1 */
    SB_CLOSE_BAD_UTF8,        /* 1007: a text message that is not UTF-8 */
    SB_CLOSE_BAD_DEFLATE,     /* 1007: a compressed message that does not inflate */
    /* graphql-transport-ws connections (the codes of the graphql-ws protocol document): */
    SB_CLOSE_GQL_BAD_MESSAGE, /* 4400: not a message of the protocol */
    SB_CLOSE_GQL_UNAUTHORIZED, /* 4401: subscribe before connection_ack */
    SB_CLOSE_GQL_FORBIDDEN,   /* 4403: authentication on, and no valid token */
    SB_CLOSE_GQL_INIT_TIMEOUT, /* 4408: no connection_init in time */
    SB_CLOSE_GQL_DUPLICATE_ID, /* 4409: subscribe with the id of a live operation */
    SB_CLOSE_GQL_TOO_MANY_INITS, /* 4429: a second connection_init */
    SB_CLOSE_WHY_COUNT
};

struct sb_close_code {
    uint16_t code;
    const char *reason;       /* static text, sent in the close frame */
};

/* The table, indexed by enum sb_close_why. */
extern const struct sb_close_code sb_close_codes[SB_CLOSE_WHY_COUNT];

#endif
