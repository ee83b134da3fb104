/* test_history.c - get_history's buckets at their edges, and the recovery window's ring. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics.h"
#include "check.h"
#include "history.h"
#include "recovery.h"

static const int64_t NOW = 1770724825000LL; /* 2026-02-10T12:00:25Z */
static const int64_t S = 1000;

static struct history_point points[HISTORY_MAX_POINTS];

static size_t query(struct history *h, const char *skill, long long window, long long step)
{
    return history_query(h, skill, skill ? strlen(skill) : 0, NOW, window, step, points);
}

static void add(struct history *h, const char *skill, int64_t at, int completed, double duration)
{
    if (history_add(h, skill, strlen(skill), at, completed, duration) < 0) {
        fprintf(stderr, "history_add: out of memory\n");
        exit(1);
    }
}

/* Buckets are [t, t + step) in UTC: a row at the last millisecond of one lands in it, a row at
 * the first millisecond of the next lands there; rows come in any order. */
static void test_bucket_edges(void)
{
    struct history *h = history_new();
    int64_t minute = NOW / (60 * S) * (60 * S); /* 12:00:00 */
    history_advance(h, NOW);
    add(h, "a", minute, 1, 2.0);               /* first ms of the last bucket */
    add(h, "a", minute - 1, 1, 4.0);           /* last ms of the bucket before */
    add(h, "b", minute - 60 * S, 0, NAN);      /* first ms of that one */
    add(h, "a", NOW, 0, 9.0);                  /* now: in the last bucket; no duration (open) */
    add(h, "a", minute - 59 * 60 * S, 1, NAN); /* completed without a duration */
    add(h, "a", minute - 60 * 60 * S, 1, 1.0); /* before the 1 h window: in no point */

    size_t n = query(h, "a", 3600, 60);
    CHECK(n == 60, "60 points, got %zu", n);
    CHECK(points[n - 1].t_ms == minute, "the last point is the bucket holding now");
    CHECK(points[0].t_ms == minute - 59 * 60 * S, "oldest first, aligned to the step");
    CHECK(points[n - 1].invocations == 2 && points[n - 1].completed == 1, "last bucket: 2, 1");
    CHECK(fabs(points[n - 1].sum_durations / (double)points[n - 1].n_durations - 2.0) < 1e-12,
          "the mean counts completed invocations with a duration only");
    CHECK(points[n - 2].invocations == 1 && points[n - 2].sum_durations == 4.0,
          "the row 1 ms before the minute is in the bucket before");
    CHECK(points[0].invocations == 1 && points[0].completed == 1 && points[0].n_durations == 0,
          "completed without a duration: counted, no mean");
    int64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += points[i].invocations;
    CHECK(total == 4, "the row 1 h ago is outside the window, got %lld", (long long)total);

    n = query(h, NULL, 3600, 60);
    CHECK(points[n - 2].invocations == 2, "all skills: a's and b's rows together");
    n = query(h, "b", 120, 60);
    CHECK(n == 2 && points[0].invocations == 1 && points[1].invocations == 0,
          "empty buckets are included");
    n = query(h, "a", 25, 10);
    CHECK(n == 3 && points[2].t_ms == NOW / (10 * S) * (10 * S) && points[2].invocations == 1,
          "10 s steps: ceil(25 / 10) points, the last holding now");
    CHECK(history_knows(h, "a", 1) && !history_knows(h, "zz", 2), "knows the counted skills");
    history_free(h);
}

/* A day of rows: the 24 h request sees exactly those inside it; a row older than the ring, or
 * an hour and more in the future, is not counted, and never pushes out what a request reads. */
static void test_ring_and_window(void)
{
    struct history *h = history_new();
    history_advance(h, NOW);
    for (int64_t t = NOW - 86400 * S; t <= NOW; t += 600 * S)
        add(h, "x", t, 1, 1.0);
    add(h, "x", NOW - 90000 * S, 1, 1.0);    /* older than the ring */
    add(h, "x", NOW + 7200 * S, 1, 1.0);     /* 2 h ahead */
    size_t n = query(h, "x", 86400, 60);
    int64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += points[i].invocations;
    CHECK(n == 1440, "1440 points, got %zu", n);
    /* The window starts at the oldest point's t: 23:59 before the minute of now. */
    int64_t start = points[0].t_ms, want = 0;
    for (int64_t t = NOW - 86400 * S; t <= NOW; t += 600 * S)
        want += t >= start;
    CHECK(total == want, "24 h: %lld rows, want %lld", (long long)total, (long long)want);
    char err[256];
    CHECK(history_request_check(86400, 60, err, sizeof(err)) == 0, "24 h at 60 s is valid");
    CHECK(history_request_check(86400, 50, err, sizeof(err)) < 0, "1728 points are too many");
    CHECK(history_request_check(3600, 15, err, sizeof(err)) < 0, "a step must be a multiple of 10");
    CHECK(history_request_check(0, 60, err, sizeof(err)) < 0 &&
              history_request_check(86401, 3600, err, sizeof(err)) < 0 &&
              history_request_check(3600, 3610, err, sizeof(err)) < 0,
          "window 1..86400, step 10..3600");
    history_clear(h);
    CHECK(!history_knows(h, "x", 1), "clear forgets");
    history_free(h);
}

/* The engine feeds the history with every invocation that has a time. */
static void test_engine_feeds_history(void)
{
    struct history *h = history_new();
    struct analytics *a = analytics_new();
    analytics_set_history(a, h);
    analytics_add(a, "s", 1, NOW - 5 * S, 1, 3.0);
    analytics_add(a, "s", 1, -1, 1, 3.0); /* unparseable invoked_at: totals only */
    size_t n = query(h, "s", 60, 60);
    CHECK(n == 1 && points[0].invocations == 1, "one row with a time, got %lld",
          (long long)points[0].invocations);
    analytics_free(a);
    history_free(h);
}

static struct snapshot *snap(struct metrics *m, const char *epoch, uint64_t seq, int64_t at)
{
    struct snapshot *s = snapshot_new(m, epoch, seq, at, 0, 10);
    if (!s)
        exit(1);
    return s;
}

/* The window keeps window_ms of snapshots (and at most max of them), in seq order; a resume is
 * possible when everything after the client's seq is kept. */
static void test_recovery_ring(void)
{
    const char *e1 = "00000000000000aa", *e2 = "00000000000000bb";
    struct metrics *m = metrics_build(NULL, 0, NULL, 0);
    struct recovery *r = recovery_new(10 * S, 8);
    int gap;
    for (uint64_t seq = 1; seq <= 6; seq++) {
        struct snapshot *s = snap(m, e1, seq, NOW + (int64_t)seq * 3 * S);
        CHECK(recovery_retain(r, s) == 0, "retain");
        snapshot_unref(s);
    }
    /* Kept: those within 10 s of seq 6 (t = 18 s): seq 3 (9 s) and later. */
    struct recovery_stats st;
    recovery_get_stats(r, &st);
    CHECK(st.snapshots == 4 && st.oldest_seq == 3 && st.newest_seq == 6, "kept %zu: %llu..%llu",
          st.snapshots, (unsigned long long)st.oldest_seq, (unsigned long long)st.newest_seq);
    CHECK(recovery_can_resume(r, e1, 2) && recovery_can_resume(r, e1, 6), "2 and 6 resume");
    CHECK(!recovery_can_resume(r, e1, 1) && !recovery_can_resume(r, e1, 7), "1 and 7 do not");
    CHECK(!recovery_can_resume(r, e2, 4), "another epoch does not");
    struct snapshot *s = recovery_next(r, 2, &gap);
    CHECK(s && s->seq == 3 && !gap, "after 2 comes 3");
    snapshot_unref(s);
    s = recovery_next(r, 1, &gap);
    CHECK(s && s->seq == 3 && gap, "after 1, 2 is gone: a gap");
    snapshot_unref(s);
    CHECK(recovery_next(r, 6, &gap) == NULL, "nothing after the newest");

    s = snap(m, e2, 1, NOW + 19 * S); /* a new epoch starts over */
    recovery_retain(r, s);
    snapshot_unref(s);
    CHECK(!recovery_can_resume(r, e1, 6) && recovery_can_resume(r, e2, 0), "new epoch only");
    recovery_free(r);

    r = recovery_new(0, 8);
    s = snap(m, e1, 1, NOW);
    recovery_retain(r, s);
    CHECK(!recovery_can_resume(r, e1, 0), "window 0 keeps nothing");
    snapshot_unref(s);
    recovery_free(r);
    metrics_unref(m);
}

int main(void)
{
    test_bucket_edges();
    test_ring_and_window();
    test_engine_feeds_history();
    test_recovery_ring();
    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
