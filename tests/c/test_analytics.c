/* test_analytics.c - hand-computed windows and z-scores of the analytics engine, at chosen instants. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "analytics.h"

static const int64_t NOW = 1770724800000LL; /* 2026-02-10T12:00:00Z */
static const int64_t MIN = 60 * 1000;

struct result {
    struct skill_stats *skills;
    size_t n_skills;
    struct anomaly *found;
    size_t n_found;
};

static struct result evaluate(struct analytics *a, int64_t now)
{
    struct result r;
    if (analytics_evaluate(a, now, 2.0, &r.skills, &r.n_skills, &r.found, &r.n_found) < 0) {
        fprintf(stderr, "analytics_evaluate failed\n");
        exit(1);
    }
    return r;
}

static void release(struct result *r)
{
    skill_stats_free_array(r->skills, r->n_skills);
    anomaly_free_array(r->found, r->n_found);
}

static const struct skill_stats *skill(const struct result *r, const char *name)
{
    for (size_t i = 0; i < r->n_skills; i++)
        if (!strcmp(r->skills[i].name, name))
            return &r->skills[i];
    return NULL;
}

static const struct anomaly *anomaly_of(const struct result *r, const char *name, enum anomaly_type t)
{
    for (size_t i = 0; i < r->n_found; i++)
        if (!strcmp(r->found[i].skill_name, name) && r->found[i].type == t)
            return &r->found[i];
    return NULL;
}

static void add(struct analytics *a, const char *name, int64_t t, int completed, double duration)
{
    if (analytics_add(a, name, strlen(name), t, completed, duration) < 0) {
        fprintf(stderr, "analytics_add failed\n");
        exit(1);
    }
}

static void test_completion_drop(void)
{
    struct analytics *a = analytics_new();
    /* baseline: 10 invocations, 9 completed; current: 4, 1 completed */
    for (int i = 0; i < 10; i++)
        add(a, "drop", NOW - 5 * 60 * MIN - i * MIN, i != 0, NAN);
    for (int i = 0; i < 4; i++)
        add(a, "drop", NOW - 10 * MIN - i * MIN, i == 0, NAN);
    struct result r = evaluate(a, NOW);
    /* mean 0.9; sample variance = 10 * 0.9 * 0.1 / 9 = 0.1; z = (0.25 - 0.9) / sqrt(0.1) */
    double z = (0.25 - 0.9) / sqrt(0.1);
    const struct anomaly *x = anomaly_of(&r, "drop", ANOMALY_PERFORMANCE_DROP);
    CHECK(x && fabs(x->deviation_score - z) < 1e-9, "drop z %g, want %g", x ? x->deviation_score : 0, z);
    CHECK(x && fabs(x->baseline_value - 0.9) < 1e-12 && fabs(x->observed_value - 0.25) < 1e-12,
          "drop values");
    CHECK(x && x->detected_ms == NOW, "detected at the evaluation time");
    const struct skill_stats *s = skill(&r, "drop");
    CHECK(s && s->invocation_count == 14 && s->completed_count == 10 && s->invocation_count_1h == 4,
          "drop windows");
    release(&r);
    analytics_free(a);
}

static void test_spike_and_too_few(void)
{
    struct analytics *a = analytics_new();
    /* baseline 10 values, 1 completed: mean 0.1, variance 10 * 0.1 * 0.9 / 9 = 0.1 */
    for (int i = 0; i < 10; i++)
        add(a, "spike", NOW - 3 * 60 * MIN - i * MIN, i < 1, NAN);
    add(a, "spike", NOW - MIN, 1, NAN);
    add(a, "spike", NOW - 2 * MIN, 1, NAN);
    /* only 4 baseline values: never an anomaly */
    for (int i = 0; i < 4; i++)
        add(a, "few", NOW - 3 * 60 * MIN - i * MIN, 1, NAN);
    add(a, "few", NOW - MIN, 0, NAN);
    add(a, "few", NOW - 2 * MIN, 0, NAN);
    /* 5 baseline values but 1 current value: never an anomaly */
    for (int i = 0; i < 5; i++)
        add(a, "one", NOW - 3 * 60 * MIN - i * MIN, 1, NAN);
    add(a, "one", NOW - MIN, 0, NAN);
    struct result r = evaluate(a, NOW);
    double z = (1.0 - 0.1) / sqrt(0.1);
    const struct anomaly *x = anomaly_of(&r, "spike", ANOMALY_PERFORMANCE_SPIKE);
    CHECK(x && fabs(x->deviation_score - z) < 1e-9, "spike z %g, want %g", x ? x->deviation_score : 0, z);
    CHECK(!anomaly_of(&r, "few", ANOMALY_PERFORMANCE_DROP), "4 baseline values must not alert");
    CHECK(!anomaly_of(&r, "one", ANOMALY_PERFORMANCE_DROP), "1 current value must not alert");
    release(&r);
    analytics_free(a);
}

static void test_pattern_shift_and_floors(void)
{
    struct analytics *a = analytics_new();
    const double base[] = {2, 4, 4, 4, 5, 5, 7, 9}; /* mean 5, sample std sqrt(32/7) */
    for (int i = 0; i < 8; i++)
        add(a, "slow", NOW - 2 * 60 * MIN - i * MIN, 1, base[i]);
    add(a, "slow", NOW - MIN, 1, 9);
    add(a, "slow", NOW - 2 * MIN, 1, 11);
    add(a, "slow", NOW - 3 * MIN, 0, 500); /* not completed: its duration never counts */
    /* always completed, then failures: the 0.01 floor makes it an anomaly */
    for (int i = 0; i < 5; i++)
        add(a, "steady", NOW - 2 * 60 * MIN - i * MIN, 1, 3.0);
    add(a, "steady", NOW - MIN, 0, NAN);
    add(a, "steady", NOW - 2 * MIN, 1, 3.3);
    add(a, "steady", NOW - 3 * MIN, 1, 3.3);
    struct result r = evaluate(a, NOW);
    double z = (10.0 - 5.0) / sqrt(32.0 / 7.0);
    const struct anomaly *x = anomaly_of(&r, "slow", ANOMALY_PATTERN_SHIFT);
    CHECK(x && fabs(x->deviation_score - z) < 1e-9 && fabs(x->baseline_value - 5) < 1e-12 &&
              fabs(x->observed_value - 10) < 1e-12,
          "pattern_shift z %g, want %g", x ? x->deviation_score : 0, z);
    x = anomaly_of(&r, "steady", ANOMALY_PERFORMANCE_DROP);
    CHECK(x && fabs(x->deviation_score - (2.0 / 3.0 - 1.0) / 0.01) < 1e-9, "completion floor z %g",
          x ? x->deviation_score : 0);
    /* durations all 3.0: std floor 1 % of 3.0 = 0.03; current mean 3.3 -> z = 10 */
    x = anomaly_of(&r, "steady", ANOMALY_PATTERN_SHIFT);
    CHECK(x && fabs(x->deviation_score - 0.3 / 0.03) < 1e-6, "duration floor z %g",
          x ? x->deviation_score : 0);
    const struct skill_stats *s = skill(&r, "slow");
    CHECK(s && fabs(s->avg_duration - 6.0) < 1e-12 && fabs(s->avg_duration_seconds - 6.0) < 1e-12,
          "completed-only averages %g %g", s ? s->avg_duration : 0, s ? s->avg_duration_seconds : 0);
    release(&r);
    analytics_free(a);
}

static void test_window_edges_and_order(void)
{
    struct analytics *a = analytics_new();
    const int64_t H = 60 * MIN, D = 24 * H;
    add(a, "edge", NOW + 1, 1, NAN);       /* future: no window yet */
    add(a, "edge", NOW - D - 1, 1, NAN);   /* just outside 24 h */
    add(a, "edge", NOW - D, 1, NAN);       /* exactly 24 h: in */
    add(a, "edge", NOW - H - 1, 1, NAN);   /* baseline */
    add(a, "edge", NOW - H, 1, NAN);       /* exactly 1 h: in the 1 h window */
    add(a, "edge", NOW, 1, NAN);           /* now: in */
    add(a, "edge", -1, 1, NAN);            /* unparseable: totals only */
    struct result r = evaluate(a, NOW);
    const struct skill_stats *s = skill(&r, "edge");
    CHECK(s && s->invocation_count == 4, "24 h count %lld, want 4", s ? (long long)s->invocation_count : -1);
    CHECK(s && s->invocation_count_1h == 2, "1 h count %lld, want 2", s ? (long long)s->invocation_count_1h : -1);
    CHECK(s && s->total_invocations == 7, "total %lld, want 7", s ? (long long)s->total_invocations : -1);
    CHECK(s && s->last_invocation_ms == NOW + 1, "last invocation");
    release(&r);

    /* a second later the future event is in, the 24 h edge event has aged out */
    r = evaluate(a, NOW + 1000);
    s = skill(&r, "edge");
    CHECK(s && s->invocation_count == 4 && s->invocation_count_1h == 2, "after 1 s: %lld %lld",
          s ? (long long)s->invocation_count : -1, s ? (long long)s->invocation_count_1h : -1);
    release(&r);

    /* a late row dated inside the window still lands in it */
    add(a, "edge", NOW - 30 * MIN, 0, NAN);
    r = evaluate(a, NOW + 1000);
    s = skill(&r, "edge");
    CHECK(s && s->invocation_count == 5 && s->invocation_count_1h == 3 && s->completed_count == 4,
          "out-of-order row");
    release(&r);
    analytics_free(a);
}

static void test_totals_from_the_startup_read(void)
{
    struct analytics *a = analytics_new();
    CHECK(analytics_add_totals(a, "old", 3, 100, 80, 70, 140.0, NOW - 40 * 60 * MIN) == 0, "add_totals");
    add(a, "old", NOW - MIN, 1, 4.0);
    struct result r = evaluate(a, NOW);
    const struct skill_stats *s = skill(&r, "old");
    CHECK(s && s->total_invocations == 101 && s->completed_invocations == 81 &&
              fabs(s->avg_duration_seconds - 144.0 / 71.0) < 1e-12 && s->invocation_count == 1 &&
              s->last_invocation_ms == NOW - MIN,
          "startup totals merged");
    release(&r);
    analytics_free(a);
}

static void test_zscore_rule(void)
{
    double z = 0;
    CHECK(!analytics_zscore(4, 0.5, 0.1, 10, 0.1, 0.01, &z), "4 baseline values");
    CHECK(!analytics_zscore(5, 0.5, 0.1, 1, 0.1, 0.01, &z), "1 current value");
    CHECK(analytics_zscore(5, 0.5, 0.0, 2, 0.4, 0.01, &z) && fabs(z + 10) < 1e-9, "floor z %g", z);
    CHECK(!analytics_zscore(5, 0.0, 0.0, 2, 1.0, 0.0, &z), "no std and no floor");
}

int main(void)
{
    test_completion_drop();
    test_spike_and_too_few();
    test_pattern_shift_and_floors();
    test_window_edges_and_order();
    test_totals_from_the_startup_read();
    test_zscore_rule();
    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
