/* protocol_codes.c - the close code table of protocol_codes.h. */
#include "protocol_codes.h"

const struct sb_close_code sb_close_codes[SB_CLOSE_WHY_COUNT] = {
    [SB_CLOSE_SHUTDOWN] = {1001, "server shutdown"},
    [SB_CLOSE_SERVER_FULL] = {SB_CLOSE_TRY_AGAIN_LATER, "server full"},
    [SB_CLOSE_BAD_TOKEN] = {SB_CLOSE_AUTH_FAILED, "Authentication failed"},
    [SB_CLOSE_RATE_LIMIT] = {1008, "rate limit exceeded"},
    [SB_CLOSE_SLOW_CONSUMER] = {1008, "reply queue full"},
    [SB_CLOSE_REPLAY_BEHIND] = {1008, "replay fell behind the recovery window"},
    [SB_CLOSE_TOO_LARGE] = {1009, "message too large"},
    [SB_CLOSE_OUT_OF_MEMORY] = {1011, "out of memory"},
    [SB_CLOSE_WRITE_FAILED] = {1011, "write failed"},
    [SB_CLOSE_BAD_CLOSE_FRAME] = {1002, "invalid close frame"},
    [SB_CLOSE_BAD_UTF8] = {1007, "invalid UTF-8"},
    [SB_CLOSE_BAD_DEFLATE] = {1007, "invalid compressed data"},
    [SB_CLOSE_GQL_BAD_MESSAGE] = {4400, "Invalid message"},
    [SB_CLOSE_GQL_UNAUTHORIZED] = {4401, "Unauthorized"},
    [SB_CLOSE_GQL_FORBIDDEN] = {4403, "Forbidden"},
    [SB_CLOSE_GQL_INIT_TIMEOUT] = {4408, "Connection initialisation timeout"},
    [SB_CLOSE_GQL_DUPLICATE_ID] = {4409, "Subscriber for this id already exists"},
    [SB_CLOSE_GQL_TOO_MANY_INITS] = {4429, "Too many initialisation requests"},
};
