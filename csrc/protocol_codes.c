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
};
