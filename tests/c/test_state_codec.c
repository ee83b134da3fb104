/* test_state_codec.c - the state an edge reads back from Redis builds the publisher's exact bytes,
 * and its copy of the history store answers get_history exactly as the publisher's. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "history.h"
#include "snapshot.h"
#include "state_codec.h"

static const char EPOCH[] = "0123456789abcdef";

static char *dup_str(const char *s)
{
    char *d = strdup(s);
    if (!d)
        exit(1);
    return d;
}

/* A snapshot with awkward values: NAN averages, -1 times, a name with quotes and UTF-8, 0.1. */
static struct snapshot *sample(void)
{
    struct skill_stats *skills = calloc(3, sizeof(*skills));
    struct anomaly *anomalies = calloc(1, sizeof(*anomalies));
    if (!skills || !anomalies)
        exit(1);
    const char *names[] = {"pytest-run", "n\"a\\m\xc3\xa9", "old"};
    for (int i = 0; i < 3; i++) {
        skills[i].name = dup_str(names[i]);
        skills[i].name_len = strlen(names[i]);
        skills[i].total_invocations = 10 - i;
        skills[i].completed_invocations = 7 - i;
        skills[i].avg_duration_seconds = i == 2 ? NAN : 0.1 * (i + 1);
        skills[i].invocation_count = 3 - i;
        skills[i].completed_count = 2 - i > 0 ? 2 - i : 0;
        skills[i].avg_duration = i ? NAN : 1.0 / 3.0;
        skills[i].invocation_count_1h = i == 0;
        skills[i].last_invocation_ms = i == 2 ? -1 : 1770724825123LL;
        skills[i].is_anomalous = i == 1;
    }
    anomalies[0].skill_name = dup_str(names[1]);
    anomalies[0].skill_len = strlen(names[1]);
    anomalies[0].type = ANOMALY_PATTERN_SHIFT;
    anomalies[0].baseline_value = 2.5;
    anomalies[0].observed_value = 1e-300;
    anomalies[0].deviation_score = -3.25;
    anomalies[0].detected_ms = 1770724800000LL;
    struct metrics *m = metrics_build(skills, 3, anomalies, 1);
    struct snapshot *s = m ? snapshot_new(m, EPOCH, 42, 1770724825456LL, 1, 2) : NULL;
    metrics_unref(m);
    if (!s)
        exit(1);
    return s;
}

static char *update_text(const struct snapshot *s, const char *skill)
{
    jbuf b;
    if (jb_init(&b, 0, 256) < 0)
        exit(1);
    snapshot_write_update(s, skill, skill ? strlen(skill) : 0, &b);
    jb_raw(&b, "", 1);
    char *text = b.failed ? NULL : dup_str(b.mem + b.head);
    jb_free(&b);
    return text;
}

static void test_round_trip_gives_the_same_bytes(void)
{
    struct snapshot *s = sample();
    jbuf state;
    if (jb_init(&state, 0, 256) < 0)
        exit(1);
    state_encode(s, &state);
    CHECK(!state.failed, "encode failed");
    char err[128];
    struct snapshot *back = state_decode((const unsigned char *)state.mem + state.head, state.len,
                                         EPOCH, 42, err, sizeof(err));
    CHECK(back != NULL, "decode failed: %s", err);
    if (back) {
        const char *forms[] = {NULL, "old", "n\"a\\m\xc3\xa9", "missing"};
        for (int i = 0; i < 4; i++) {
            char *a = update_text(s, forms[i]), *b = update_text(back, forms[i]);
            CHECK(a && b && strcmp(a, b) == 0, "form %d differs:\n%s\n%s", i, a, b);
            free(a);
            free(b);
        }
        CHECK(back->seq == 42 && back->stale && back->top_n == 2, "envelope");
        CHECK(back->metrics->n_skills == 3, "every skill, not only the top N");
        snapshot_unref(back);
    }
    /* Every truncation and a trailing byte are refused, never read past. */
    for (size_t n = 0; n < state.len; n++) {
        struct snapshot *cut = state_decode((const unsigned char *)state.mem + state.head, n, EPOCH,
                                            42, err, sizeof(err));
        CHECK(cut == NULL, "a state cut at %zu bytes was accepted", n);
        snapshot_unref(cut);
    }
    jb_raw(&state, "x", 1);
    struct snapshot *longer = state_decode((const unsigned char *)state.mem + state.head, state.len,
                                           EPOCH, 42, err, sizeof(err));
    CHECK(longer == NULL, "trailing bytes accepted");
    snapshot_unref(longer);
    jb_free(&state);
    snapshot_unref(s);
}

static void test_hostile_counts_are_refused(void)
{
    /* magic, time, stale, top_n, then 2^32-1 skills in 4 bytes of input */
    unsigned char b[4 + 8 + 1 + 4 + 4] = {'S', 'B', 'S', '1'};
    memset(b + 17, 0xff, 4);
    char err[128];
    struct snapshot *s = state_decode(b, sizeof(b), EPOCH, 1, err, sizeof(err));
    CHECK(s == NULL, "a count larger than the bytes was accepted");
    snapshot_unref(s);
    unsigned char bad_magic[sizeof(b)] = {'X'};
    s = state_decode(bad_magic, sizeof(bad_magic), EPOCH, 1, err, sizeof(err));
    CHECK(s == NULL && strstr(err, "magic"), "bad magic accepted");
    snapshot_unref(s);
}

static const int64_t NOW = 1770724825000LL; /* 2026-02-10T12:00:25Z */

static int same_points(struct history *a, struct history *b, const char *skill, long long window,
                       long long step)
{
    static struct history_point pa[HISTORY_MAX_POINTS], pb[HISTORY_MAX_POINTS];
    size_t len = skill ? strlen(skill) : 0;
    size_t n = history_query(a, skill, len, NOW, window, step, pa);
    size_t m = history_query(b, skill, len, NOW, window, step, pb);
    /* memcmp: the sums of durations must be the same bits, not only close. */
    return n == m && memcmp(pa, pb, n * sizeof(*pa)) == 0;
}

/* A store with rows across the whole day (and one too old to keep), copied through its bytes:
 * every query answers the same, bit for bit; a copy swapped in replaces the store whole. */
static void test_history_round_trip(void)
{
    struct history *h = history_new(), *empty = history_new();
    if (!h || !empty)
        exit(1);
    history_advance(h, NOW);
    for (int i = 0; i < 3000; i++) {
        const char *skill = i % 3 ? "pytest-run" : "caf\xc3\xa9 \"q\"";
        int64_t at = NOW - (int64_t)i * 29 * 1000 - i % 7;
        history_add(h, skill, strlen(skill), at, i % 4 != 0, i % 5 ? 0.1 * i : NAN);
    }
    history_add(h, "old", 3, NOW - 2LL * 86400 * 1000, 1, 1.0); /* outside the ring */
    jbuf blob;
    if (jb_init(&blob, 0, 1024) < 0)
        exit(1);
    history_encode(h, NOW, &blob);
    CHECK(!blob.failed, "encode failed");
    char err[128];
    struct history *copy = history_decode((const unsigned char *)blob.mem + blob.head, blob.len,
                                          err, sizeof(err));
    CHECK(copy != NULL, "decode failed: %s", err);
    if (copy) {
        CHECK(same_points(h, copy, NULL, 86400, 60), "all skills differ");
        CHECK(same_points(h, copy, "pytest-run", 86400, 600), "one skill differs");
        CHECK(same_points(h, copy, "caf\xc3\xa9 \"q\"", 3600, 10), "a quoted name differs");
        CHECK(history_knows(copy, "pytest-run", 10) && !history_knows(copy, "old", 3),
              "names not carried");
        history_swap(empty, copy); /* empty now holds the copy, copy the empty store */
        CHECK(same_points(h, empty, NULL, 86400, 600), "swap lost the copy");
        CHECK(!history_knows(copy, "pytest-run", 10), "swap kept the old contents");
        history_free(copy);
    }
    for (size_t cut = 0; cut < blob.len; cut += 97) {
        struct history *part = history_decode((const unsigned char *)blob.mem + blob.head, cut,
                                              err, sizeof(err));
        /* a cut at a chunk's end is a shorter store; anywhere else it is refused */
        CHECK(part == NULL || cut >= 12, "a cut of %zu bytes accepted", cut);
        history_free(part);
    }
    unsigned char bad_kind[12 + 1 + 8 + 60 * 20] = {'S', 'B', 'H', '1'};
    bad_kind[12] = 7;
    struct history *bad = history_decode(bad_kind, sizeof(bad_kind), err, sizeof(err));
    CHECK(bad == NULL, "an unknown chunk kind was accepted");
    history_free(bad);
    jb_free(&blob);
    history_free(h);
    history_free(empty);
}

int main(void)
{
    test_history_round_trip();
    test_round_trip_gives_the_same_bytes();
    test_hostile_counts_are_refused();
    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
