/* test_rate_limit.c - the token bucket: burst, refill, sustained abuse, recovery. */
#include <stdio.h>

#include "check.h"
#include "rate_limit.h"

/* Send `count` messages `gap_ms` apart from *t; count the verdicts. */
static void send(struct rate_limit *rl, int64_t *t, int count, int64_t gap_ms, int *allowed,
                 int *refused, int64_t *closed_at)
{
    *allowed = *refused = 0;
    *closed_at = -1;
    for (int i = 0; i < count; i++, *t += gap_ms) {
        enum rl_verdict v = rate_limit_take(rl, *t);
        if (v == RL_ALLOW)
            ++*allowed;
        else if (v == RL_REFUSE)
            ++*refused;
        else if (*closed_at < 0)
            *closed_at = *t;
    }
}

int main(void)
{
    struct rate_limit rl;
    int allowed, refused;
    int64_t closed, t = 1000;

    /* The burst: 40 at once, the 41st refused. */
    rate_limit_init(&rl, t);
    send(&rl, &t, 41, 0, &allowed, &refused, &closed);
    CHECK(allowed == 40 && refused == 1 && closed < 0, "burst: %d allowed %d refused", allowed, refused);
    /* One token comes back every 50 ms. */
    t += 49;
    CHECK(rate_limit_take(&rl, t) == RL_REFUSE, "a token after 49 ms");
    t += 1;
    CHECK(rate_limit_take(&rl, t) == RL_ALLOW, "no token after 50 ms");

    /* A steady 20/s, forever, is never refused. */
    rate_limit_init(&rl, t = 0);
    send(&rl, &t, 20 * 600, 50, &allowed, &refused, &closed);
    CHECK(refused == 0 && closed < 0, "steady 20/s: %d refused", refused);

    /* A flood at 100/s: refusals start after the burst, and the close comes 5 s later. */
    rate_limit_init(&rl, t = 0);
    send(&rl, &t, 1000, 10, &allowed, &refused, &closed);
    CHECK(refused > 0, "flood: nothing refused");
    CHECK(closed >= 0, "flood: never closed");
    /* The bucket runs dry at 500 ms (40 tokens + 20/s against 100/s). */
    CHECK(closed >= 5000 && closed <= 5600, "flood: closed at %lld ms", (long long)closed);

    /* Bursts that pause for a second each time never add up to a close. */
    rate_limit_init(&rl, t = 0);
    int closes = 0;
    for (int round = 0; round < 20; round++) {
        send(&rl, &t, 60, 1, &allowed, &refused, &closed);
        closes += closed >= 0;
        t += 2100; /* a quiet pause: the episode ends and the bucket refills */
    }
    CHECK(closes == 0, "paused bursts were closed %d times", closes);

    /* A clock that jumps far ahead cannot overflow the bucket. */
    rate_limit_init(&rl, 0);
    send(&rl, &t, 40, 0, &allowed, &refused, &closed);
    t = INT64_C(1) << 60;
    send(&rl, &t, 41, 0, &allowed, &refused, &closed);
    CHECK(allowed == 40 && refused == 1, "after a long idle: %d allowed", allowed);

    if (failures) {
        fprintf(stderr, "%d failure(s)\n", failures);
        return 1;
    }
    printf("test_rate_limit: all passed\n");
    return 0;
}
