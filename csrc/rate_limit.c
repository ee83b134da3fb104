/* rate_limit.c - the per-connection token bucket of rate_limit.h. */
#include "rate_limit.h"

#define FULL ((int64_t)RATE_LIMIT_BURST * 1000)

void rate_limit_init(struct rate_limit *rl, int64_t now_ms)
{
    rl->milli_tokens = FULL;
    rl->last_ms = now_ms;
    rl->episode_start_ms = -1;
    rl->last_refusal_ms = 0;
}

enum rl_verdict rate_limit_take(struct rate_limit *rl, int64_t now_ms)
{
    int64_t elapsed = now_ms - rl->last_ms;
    if (elapsed > 0) {
        /* RATE_LIMIT_PER_S tokens a second = that many milli-tokens a millisecond; capped
         * first so that a long idle time cannot overflow. */
        if (elapsed > FULL)
            elapsed = FULL;
        rl->milli_tokens += elapsed * RATE_LIMIT_PER_S;
        if (rl->milli_tokens > FULL)
            rl->milli_tokens = FULL;
        rl->last_ms = now_ms;
    }
    if (rl->episode_start_ms >= 0 && now_ms - rl->last_refusal_ms >= RATE_LIMIT_QUIET_MS)
        rl->episode_start_ms = -1;

    if (rl->milli_tokens >= 1000) {
        rl->milli_tokens -= 1000;
        return RL_ALLOW;
    }
    if (rl->episode_start_ms < 0)
        rl->episode_start_ms = now_ms;
    rl->last_refusal_ms = now_ms;
    return now_ms - rl->episode_start_ms >= RATE_LIMIT_SUSTAIN_MS ? RL_CLOSE : RL_REFUSE;
}
