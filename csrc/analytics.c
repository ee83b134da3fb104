/* analytics.c - per-skill totals and last-24 h events in memory; windows and z-scores per tick. */
#include "analytics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One invocation inside the last 24 h (or in the future). */
struct invocation {
    int64_t t_ms;
    double duration;    /* NAN when NULL or not completed */
    uint8_t completed;
};

struct skill_entry {
    char *name;
    size_t len;
    uint64_t hash;
    int64_t total, completed, n_durations; /* all time */
    double sum_durations;                  /* all time, completed with a duration */
    int64_t last_ms;
    struct invocation *events;
    size_t n_events, cap_events;
};

struct analytics {
    struct skill_entry *skills;
    size_t n_skills, cap_skills;
    size_t *slots;          /* open addressing: skill index + 1, 0 = empty */
    size_t n_slots;         /* a power of two, at least twice n_skills */
    int64_t horizon_ms;     /* events older than this are out of every window for good */
    struct history *history; /* also counts every invocation with a time, or NULL */
};

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

struct analytics *analytics_new(void)
{
    struct analytics *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->n_slots = 64;
    a->slots = calloc(a->n_slots, sizeof(*a->slots));
    if (!a->slots) {
        free(a);
        return NULL;
    }
    a->horizon_ms = INT64_MIN;
    return a;
}

void analytics_free(struct analytics *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n_skills; i++) {
        free(a->skills[i].name);
        free(a->skills[i].events);
    }
    free(a->skills);
    free(a->slots);
    free(a);
}

static int rehash(struct analytics *a, size_t n_slots)
{
    size_t *slots = calloc(n_slots, sizeof(*slots));
    if (!slots)
        return -1;
    for (size_t i = 0; i < a->n_skills; i++) {
        size_t at = a->skills[i].hash & (n_slots - 1);
        while (slots[at])
            at = (at + 1) & (n_slots - 1);
        slots[at] = i + 1;
    }
    free(a->slots);
    a->slots = slots;
    a->n_slots = n_slots;
    return 0;
}

/* The entry for a skill, created when missing; NULL when out of memory. */
static struct skill_entry *find_or_add(struct analytics *a, const char *name, size_t len)
{
    uint64_t h = fnv1a(name, len);
    size_t at = h & (a->n_slots - 1);
    while (a->slots[at]) {
        struct skill_entry *e = &a->skills[a->slots[at] - 1];
        if (e->hash == h && e->len == len && !memcmp(e->name, name, len))
            return e;
        at = (at + 1) & (a->n_slots - 1);
    }
    if ((a->n_skills + 1) * 2 > a->n_slots) {
        if (rehash(a, a->n_slots * 2) < 0)
            return NULL;
        return find_or_add(a, name, len);
    }
    if (a->n_skills == a->cap_skills) {
        size_t cap = a->cap_skills ? a->cap_skills * 2 : 32;
        struct skill_entry *grown = realloc(a->skills, cap * sizeof(*grown));
        if (!grown)
            return NULL;
        a->skills = grown;
        a->cap_skills = cap;
    }
    struct skill_entry *e = &a->skills[a->n_skills];
    memset(e, 0, sizeof(*e));
    e->name = malloc(len + 1);
    if (!e->name)
        return NULL;
    memcpy(e->name, name, len);
    e->name[len] = '\0';
    e->len = len;
    e->hash = h;
    e->last_ms = -1;
    a->slots[at] = ++a->n_skills;
    return e;
}

void analytics_set_history(struct analytics *a, struct history *h)
{
    a->history = h;
}

int analytics_add(struct analytics *a, const char *skill, size_t skill_len, int64_t invoked_ms,
                  int completed, double duration)
{
    struct skill_entry *e = find_or_add(a, skill, skill_len);
    if (!e)
        return -1;
    int keep = invoked_ms >= 0 && invoked_ms >= a->horizon_ms;
    if (keep && e->n_events == e->cap_events) {
        size_t cap = e->cap_events ? e->cap_events * 2 : 16;
        struct invocation *grown = realloc(e->events, cap * sizeof(*grown));
        if (!grown)
            return -1;
        e->events = grown;
        e->cap_events = cap;
    }
    /* Last, as the only other step that can fail: the engine is then unchanged. */
    if (a->history && invoked_ms >= 0 &&
        history_add(a->history, skill, skill_len, invoked_ms, completed, duration) < 0)
        return -1;
    int has_duration = completed && !isnan(duration);
    e->total++;
    e->completed += completed != 0;
    e->n_durations += has_duration;
    e->sum_durations += has_duration ? duration : 0.0;
    if (invoked_ms > e->last_ms)
        e->last_ms = invoked_ms;
    if (keep)
        e->events[e->n_events++] = (struct invocation){invoked_ms, has_duration ? duration : NAN,
                                                  (uint8_t)(completed != 0)};
    return 0;
}

int analytics_add_totals(struct analytics *a, const char *skill, size_t skill_len, int64_t total,
                         int64_t completed, int64_t n_durations, double sum_durations,
                         int64_t last_ms)
{
    struct skill_entry *e = find_or_add(a, skill, skill_len);
    if (!e)
        return -1;
    e->total += total;
    e->completed += completed;
    e->n_durations += n_durations;
    e->sum_durations += sum_durations;
    if (last_ms > e->last_ms)
        e->last_ms = last_ms;
    return 0;
}

int analytics_zscore(size_t n_base, double mean_base, double std_base, size_t n_cur,
                     double mean_cur, double std_floor, double *z)
{
    if (n_base < ANALYTICS_MIN_BASELINE || n_cur < ANALYTICS_MIN_CURRENT)
        return 0;
    double std = std_base > 0 ? std_base : std_floor;
    if (!(std > 0))
        return 0;
    *z = (mean_cur - mean_base) / std;
    return 1;
}

/* Running figures of one skill over one evaluation. */
struct window_sums {
    int64_t n24, completed24, n_dur24, n1h;
    double sum_dur24;
    size_t n_base, n_cur;            /* completion values */
    double completed_base, completed_cur;
    size_t n_dur_base, n_dur_cur;    /* durations of completed invocations */
    double sum_dur_base, sum_dur_cur;
};

/* Drop events that aged out of the 24 h window and sum the rest. */
static void sum_windows(struct skill_entry *e, int64_t now, struct window_sums *w)
{
    const int64_t day_start = now - ANALYTICS_DAY_MS, hour_start = now - ANALYTICS_HOUR_MS;
    size_t kept = 0;

    memset(w, 0, sizeof(*w));
    for (size_t i = 0; i < e->n_events; i++) {
        struct invocation ev = e->events[i];
        if (ev.t_ms < day_start)
            continue; /* gone for good: now only moves forward */
        e->events[kept++] = ev;
        if (ev.t_ms > now)
            continue; /* in the future: in no window yet */
        int has_duration = !isnan(ev.duration);
        w->n24++;
        w->completed24 += ev.completed;
        w->n_dur24 += has_duration;
        w->sum_dur24 += has_duration ? ev.duration : 0.0;
        if (ev.t_ms >= hour_start) {
            w->n1h++;
            w->n_cur++;
            w->completed_cur += ev.completed;
            w->n_dur_cur += has_duration;
            w->sum_dur_cur += has_duration ? ev.duration : 0.0;
        } else {
            w->n_base++;
            w->completed_base += ev.completed;
            w->n_dur_base += has_duration;
            w->sum_dur_base += has_duration ? ev.duration : 0.0;
        }
    }
    e->n_events = kept;
}

/* Sample std of the baseline durations, in a second pass for accuracy. */
static double baseline_duration_std(const struct skill_entry *e, int64_t now, double mean, size_t n)
{
    const int64_t day_start = now - ANALYTICS_DAY_MS, hour_start = now - ANALYTICS_HOUR_MS;
    double ss = 0;
    if (n < 2)
        return 0;
    for (size_t i = 0; i < e->n_events; i++) {
        const struct invocation *ev = &e->events[i];
        if (ev->t_ms >= day_start && ev->t_ms < hour_start && !isnan(ev->duration))
            ss += (ev->duration - mean) * (ev->duration - mean);
    }
    return sqrt(ss / (double)(n - 1));
}

static int push_anomaly(struct anomaly **list, size_t *n, size_t *cap, const struct skill_entry *e,
                        enum anomaly_type type, double base, double observed, double z, int64_t now)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        struct anomaly *grown = realloc(*list, ncap * sizeof(*grown));
        if (!grown)
            return -1;
        *list = grown;
        *cap = ncap;
    }
    struct anomaly *a = &(*list)[*n];
    a->skill_name = malloc(e->len + 1);
    if (!a->skill_name)
        return -1;
    memcpy(a->skill_name, e->name, e->len + 1);
    a->skill_len = e->len;
    a->type = type;
    a->baseline_value = base;
    a->observed_value = observed;
    a->deviation_score = z;
    a->detected_ms = now;
    (*n)++;
    return 0;
}

static int detect(const struct skill_entry *e, const struct window_sums *w, int64_t now,
                  double threshold, struct anomaly **list, size_t *n, size_t *cap)
{
    double z;
    if (w->n_base) {
        /* Completion values are 0/1: the sample variance is n p (1-p) / (n-1). */
        double p = w->completed_base / (double)w->n_base;
        double var = w->n_base > 1 ? (double)w->n_base * p * (1 - p) / (double)(w->n_base - 1) : 0;
        double cur = w->n_cur ? w->completed_cur / (double)w->n_cur : 0;
        if (analytics_zscore(w->n_base, p, sqrt(var), w->n_cur, cur,
                             ANALYTICS_COMPLETION_STD_FLOOR, &z)) {
            if (z <= -threshold &&
                push_anomaly(list, n, cap, e, ANOMALY_PERFORMANCE_DROP, p, cur, z, now) < 0)
                return -1;
            if (z >= threshold &&
                push_anomaly(list, n, cap, e, ANOMALY_PERFORMANCE_SPIKE, p, cur, z, now) < 0)
                return -1;
        }
    }
    if (w->n_dur_base >= ANALYTICS_MIN_BASELINE && w->n_dur_cur >= ANALYTICS_MIN_CURRENT) {
        double mean = w->sum_dur_base / (double)w->n_dur_base;
        double cur = w->sum_dur_cur / (double)w->n_dur_cur;
        double std = baseline_duration_std(e, now, mean, w->n_dur_base);
        if (analytics_zscore(w->n_dur_base, mean, std, w->n_dur_cur, cur,
                             fabs(mean) * ANALYTICS_DURATION_STD_FLOOR_FRACTION, &z) &&
            fabs(z) >= threshold &&
            push_anomaly(list, n, cap, e, ANOMALY_PATTERN_SHIFT, mean, cur, z, now) < 0)
            return -1;
    }
    return 0;
}

int analytics_evaluate(struct analytics *a, int64_t now_ms, double threshold,
                       struct skill_stats **skills, size_t *n_skills,
                       struct anomaly **detected, size_t *n_detected)
{
    struct skill_stats *out = calloc(a->n_skills ? a->n_skills : 1, sizeof(*out));
    struct anomaly *found = NULL;
    size_t n_found = 0, cap_found = 0, i;

    if (!out)
        return -1;
    if (now_ms - ANALYTICS_DAY_MS > a->horizon_ms)
        a->horizon_ms = now_ms - ANALYTICS_DAY_MS;
    for (i = 0; i < a->n_skills; i++) {
        struct skill_entry *e = &a->skills[i];
        struct skill_stats *s = &out[i];
        struct window_sums w;

        sum_windows(e, now_ms, &w);
        s->name = malloc(e->len + 1);
        if (!s->name)
            goto oom;
        memcpy(s->name, e->name, e->len + 1);
        s->name_len = e->len;
        s->total_invocations = e->total;
        s->completed_invocations = e->completed;
        s->avg_duration_seconds = e->n_durations ? e->sum_durations / (double)e->n_durations : NAN;
        s->invocation_count = w.n24;
        s->completed_count = w.completed24;
        s->avg_duration = w.n_dur24 ? w.sum_dur24 / (double)w.n_dur24 : NAN;
        s->invocation_count_1h = w.n1h;
        s->last_invocation_ms = e->last_ms;
        if (detect(e, &w, now_ms, threshold, &found, &n_found, &cap_found) < 0)
            goto oom;
    }
    *skills = out;
    *n_skills = a->n_skills;
    *detected = found;
    *n_detected = n_found;
    return 0;

oom:
    skill_stats_free_array(out, a->n_skills);
    anomaly_free_array(found, n_found);
    return -1;
}
