/* rate_limit.h - the per-connection token bucket: 20 messages/s, bursts of 40, close after 5 s over. */
#ifndef SB_RATE_LIMIT_H
#define SB_RATE_LIMIT_H

#include <stdint.h>

#define RATE_LIMIT_PER_S 20      /* sustained messages per second */
#define RATE_LIMIT_BURST 40      /* bucket size */
#define RATE_LIMIT_SUSTAIN_MS 5000 /* over the limit this long: close 1008 */
#define RATE_LIMIT_QUIET_MS 1000 /* a second without a refusal ends an episode */

enum rl_verdict { RL_ALLOW, RL_REFUSE, RL_CLOSE };

struct rate_limit {
    int64_t milli_tokens;    /* tokens x 1000, so refills stay exact in integers */
    int64_t last_ms;         /* time of the last refill */
    int64_t episode_start_ms; /* first refusal of the current episode, or -1 */
    int64_t last_refusal_ms;
};

/* A full bucket at now_ms (any monotonic millisecond clock). */
void rate_limit_init(struct rate_limit *rl, int64_t now_ms);

/*
 * One message arrived at now_ms.  RL_ALLOW: take it.  RL_REFUSE: drop it and
 * answer rate_limited.  RL_CLOSE: refusals have gone on for
 * RATE_LIMIT_SUSTAIN_MS without a quiet second; close the connection.
 */
enum rl_verdict rate_limit_take(struct rate_limit *rl, int64_t now_ms);

#endif
