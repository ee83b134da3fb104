/* test_prom_metrics.c - the Prometheus figures: series, buckets, anomaly transitions, session expiry, views. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "prom_metrics.h"

static const int64_t NOW = 1770724800000LL; /* 2026-02-10T12:00:00Z */
static const int64_t MIN = 60 * 1000;

static struct prom_engine *engine(void)
{
    struct prom_engine *p = prom_new();
    if (!p) {
        fprintf(stderr, "prom_new failed\n");
        exit(1);
    }
    return p;
}

static struct prom_view *view(struct prom_engine *p, int64_t now)
{
    struct prom_view *v = prom_view_get(p, now);
    if (!v) {
        fprintf(stderr, "prom_view_get failed\n");
        exit(1);
    }
    return v;
}

static const struct prom_series *series(const struct prom_view *v, const char *skill, const char *phase)
{
    for (size_t i = 0; i < v->n_series; i++)
        if (!strcmp(v->series[i].skill, skill) && !strcmp(v->series[i].phase, phase))
            return &v->series[i];
    return NULL;
}

static void add(struct prom_engine *p, const char *skill, const char *phase, int completed, double d)
{
    int has = !isnan(d);
    if (prom_add_invocation(p, skill, strlen(skill), phase, phase ? strlen(phase) : 0, completed, has,
                            has ? d : 0) < 0) {
        fprintf(stderr, "prom_add_invocation failed\n");
        exit(1);
    }
}

static void test_series_and_buckets(void)
{
    struct prom_engine *p = engine();
    /* On a bound counts in that bucket (le is <=); above 300 only in +Inf. */
    add(p, "pytest", "execution", 1, 0.1);
    add(p, "pytest", "execution", 1, 0.10001);
    add(p, "pytest", "execution", 0, 300.0);
    add(p, "pytest", "execution", 0, 301.0);
    add(p, "pytest", "execution", 1, NAN); /* no duration */
    add(p, "pytest", NULL, 1, 2.0);
    add(p, "pytest", "", 0, NAN);          /* empty phase: "unknown" too */
    add(p, "ruff", "setup", 1, -1.0);      /* a negative duration is below every bound */
    add(p, "pytest", "unknown", 1, 1.5);   /* the label itself merges with NULL and empty */
    add(p, "pytest", "unknown", 1, 1.5);
    add(p, "pytest", "unknown", 1, 1000.0);
    for (int i = 0; i < 7; i++)
        add(p, "pytest", "unknown", 1, NAN);

    struct prom_view *v = view(p, NOW);
    CHECK(v->n_series == 3, "3 series, got %zu", v->n_series);
    const struct prom_series *e = series(v, "pytest", "execution");
    CHECK(e && e->calls[1] == 3 && e->calls[0] == 2, "execution calls");
    CHECK(e && e->n_durations == 4 && e->buckets[0] == 1 && e->buckets[1] == 1 && e->buckets[8] == 1 &&
          e->buckets[9] == 1, "execution buckets");
    CHECK(e && fabs(e->sum_durations - 601.20001) < 1e-9, "sum %f", e ? e->sum_durations : 0);
    const struct prom_series *u = series(v, "pytest", PROM_UNKNOWN_PHASE);
    CHECK(u && u->calls[1] == 11 && u->calls[0] == 1, "unknown phase merges NULL, empty and \"unknown\"");
    CHECK(u && u->n_durations == 4 && u->buckets[3] == 3 && u->buckets[9] == 1, "unknown buckets");
    const struct prom_series *r = series(v, "ruff", "setup");
    CHECK(r && r->buckets[0] == 1, "negative duration in the first bucket");
    /* Sorted by skill, then phase. */
    CHECK(!strcmp(v->series[0].phase, "execution") && !strcmp(v->series[1].phase, "unknown") &&
          !strcmp(v->series[2].skill, "ruff"), "order");

    /* Nothing changed: the same view again.  A change: a new one, the old one still valid. */
    struct prom_view *again = view(p, NOW);
    CHECK(again == v, "unchanged view is reused");
    prom_view_unref(again);
    add(p, "ruff", "setup", 0, NAN);
    struct prom_view *next = view(p, NOW);
    CHECK(next != v && series(next, "ruff", "setup")->calls[0] == 1, "new view after a change");
    CHECK(series(v, "ruff", "setup")->calls[0] == 0, "old view unchanged");
    prom_free(p); /* views outlive their engine */
    CHECK(series(next, "pytest", "execution")->calls[1] == 3, "view after free");
    prom_view_unref(v);
    prom_view_unref(next);
}

static void test_names_are_bytes(void)
{
    struct prom_engine *p = engine();
    /* ("ab","c") and ("a","bc") are different series; a NUL inside a name is data. */
    CHECK(prom_add_invocation(p, "ab", 2, "c", 1, 1, 0, 0) == 0, "add");
    CHECK(prom_add_invocation(p, "a", 1, "bc", 2, 1, 0, 0) == 0, "add");
    CHECK(prom_add_invocation(p, "x\0y", 3, "p", 1, 1, 0, 0) == 0, "add");
    CHECK(prom_add_invocation(p, "x", 1, "p", 1, 1, 0, 0) == 0, "add");
    /* Enough skills to grow the table a few times. */
    char name[32];
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(name, sizeof(name), "skill-%d", i % 500);
        CHECK(prom_add_invocation(p, name, (size_t)n, "p", 1, i / 500, 0, 0) == 0, "add");
    }
    struct prom_view *v = view(p, NOW);
    CHECK(v->n_series == 504, "504 series, got %zu", v->n_series);
    size_t embedded = 0;
    for (size_t i = 0; i < v->n_series; i++) {
        if (v->series[i].skill_len == 3 && !memcmp(v->series[i].skill, "x\0y", 3))
            embedded++;
        if (!strncmp(v->series[i].skill, "skill-", 6))
            CHECK(v->series[i].calls[0] == 1 && v->series[i].calls[1] == 1, "skill counts");
    }
    CHECK(embedded == 1, "a NUL inside a name keeps its own series");
    prom_view_unref(v);
    prom_free(p);
}

static struct anomaly an(const char *skill, enum anomaly_type t)
{
    struct anomaly a;
    memset(&a, 0, sizeof(a));
    a.skill_name = (char *)skill;
    a.skill_len = strlen(skill);
    a.type = t;
    return a;
}

static uint64_t count_of(const struct prom_view *v, const char *skill, enum anomaly_type t)
{
    for (size_t i = 0; i < v->n_anomalies; i++)
        if (v->anomalies[i].type == t && !strcmp(v->anomalies[i].skill, skill))
            return v->anomalies[i].count;
    return 0;
}

static void test_anomaly_transitions(void)
{
    struct prom_engine *p = engine();
    struct anomaly both[] = {an("pytest", ANOMALY_PERFORMANCE_DROP), an("ruff", ANOMALY_PATTERN_SHIFT)};
    struct anomaly one[] = {an("ruff", ANOMALY_PATTERN_SHIFT)};
    struct anomaly other_type[] = {an("ruff", ANOMALY_PERFORMANCE_SPIKE)};

    CHECK(prom_anomalies_seen(p, both, 2) == 0, "seen");
    CHECK(prom_anomalies_seen(p, both, 2) == 0, "seen");    /* still active: not counted again */
    CHECK(prom_anomalies_seen(p, one, 1) == 0, "seen");     /* pytest cleared */
    CHECK(prom_anomalies_seen(p, both, 2) == 0, "seen");    /* pytest active again: counted */
    CHECK(prom_anomalies_seen(p, NULL, 0) == 0, "seen");    /* all cleared */
    CHECK(prom_anomalies_seen(p, other_type, 1) == 0, "seen");
    struct prom_view *v = view(p, NOW);
    CHECK(count_of(v, "pytest", ANOMALY_PERFORMANCE_DROP) == 2, "pytest drop twice");
    CHECK(count_of(v, "ruff", ANOMALY_PATTERN_SHIFT) == 1, "ruff shift once");
    CHECK(count_of(v, "ruff", ANOMALY_PERFORMANCE_SPIKE) == 1, "ruff spike once");
    CHECK(v->n_anomalies == 3, "3 counts");
    /* Sorted by type, then skill. */
    CHECK(v->anomalies[0].type == ANOMALY_PERFORMANCE_DROP && v->anomalies[2].type == ANOMALY_PATTERN_SHIFT,
          "order");
    prom_view_unref(v);
    prom_free(p);
}

static void test_sessions_expire_after_an_hour(void)
{
    struct prom_engine *p = engine();
    /* 3000 sessions seen in scrambled time order, the newest invocation of each at i minutes ago
     * (i = 0..2999); each is seen at an older time first, which must not count. */
    for (int k = 0; k < 3000; k++) {
        int i = (k * 1237) % 3000;
        char id[32];
        int n = snprintf(id, sizeof(id), "session-%d", i);
        CHECK(prom_session_seen(p, id, (size_t)n, NOW - (i + 500) * MIN) == 0, "seen");
        CHECK(prom_session_seen(p, id, (size_t)n, NOW - i * MIN) == 0, "seen");
        CHECK(prom_session_seen(p, id, (size_t)n, NOW - (i + 100) * MIN) == 0, "seen");
    }
    CHECK(prom_session_seen(p, "no-time", 7, -1) == 0, "unknown time ignored");
    struct prom_view *v = view(p, NOW);
    /* Active: newest invocation at most 60 min old -> i = 0..60. */
    CHECK(v->active_sessions == 61, "61 active, got %lld", (long long)v->active_sessions);
    prom_view_unref(v);
    v = view(p, NOW + 30 * MIN);
    CHECK(v->active_sessions == 31, "31 active, got %lld", (long long)v->active_sessions);
    prom_view_unref(v);
    /* An expired session that comes back counts again. */
    CHECK(prom_session_seen(p, "session-2000", 12, NOW + 30 * MIN) == 0, "seen");
    CHECK(prom_session_seen(p, "session-5", 9, NOW + 30 * MIN) == 0, "seen");
    v = view(p, NOW + 30 * MIN);
    CHECK(v->active_sessions == 32, "32 active, got %lld", (long long)v->active_sessions);
    prom_view_unref(v);
    v = view(p, NOW + 10 * 60 * MIN);
    CHECK(v->active_sessions == 0, "none active, got %lld", (long long)v->active_sessions);
    prom_view_unref(v);
    prom_free(p);
}

int main(void)
{
    test_series_and_buckets();
    test_names_are_bytes();
    test_anomaly_transitions();
    test_sessions_expire_after_an_hour();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("test_prom_metrics: ok\n");
    return 0;
}
