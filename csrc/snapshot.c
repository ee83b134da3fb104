/* snapshot.c - ranking, lookup, reference counting and serialisation of tick snapshots. */
#include "snapshot.h"

#include <malloc.h>
#include <math.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#include "prom_metrics.h"
#include "timeutil.h"

int epoch_new(char out[SB_EPOCH_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char bytes[SB_EPOCH_LEN / 2];
    if (RAND_bytes(bytes, (int)sizeof(bytes)) != 1)
        return -1;
    for (size_t i = 0; i < sizeof(bytes); i++) {
        out[2 * i] = hex[bytes[i] >> 4];
        out[2 * i + 1] = hex[bytes[i] & 15];
    }
    out[SB_EPOCH_LEN] = '\0';
    return 0;
}

static int name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c)
        return c;
    return (alen > blen) - (alen < blen);
}

static int rank_cmp(const void *pa, const void *pb)
{
    const struct skill_stats *a = pa, *b = pb;
    if (a->invocation_count != b->invocation_count)
        return a->invocation_count > b->invocation_count ? -1 : 1;
    if (a->total_invocations != b->total_invocations)
        return a->total_invocations > b->total_invocations ? -1 : 1;
    return name_cmp(a->name, a->name_len, b->name, b->name_len);
}

static int by_name_cmp(const void *pa, const void *pb)
{
    const struct skill_stats *a = *(const struct skill_stats *const *)pa;
    const struct skill_stats *b = *(const struct skill_stats *const *)pb;
    return name_cmp(a->name, a->name_len, b->name, b->name_len);
}

static int anomaly_cmp(const void *pa, const void *pb)
{
    const struct anomaly *a = pa, *b = pb;
    double za = fabs(a->deviation_score), zb = fabs(b->deviation_score);
    if (za != zb)
        return za > zb ? -1 : 1;
    return name_cmp(a->skill_name, a->skill_len, b->skill_name, b->skill_len);
}

void skill_stats_free_array(struct skill_stats *skills, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(skills[i].name);
    free(skills);
}

void anomaly_free_array(struct anomaly *anomalies, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(anomalies[i].skill_name);
    free(anomalies);
}

struct metrics *metrics_build(struct skill_stats *skills, size_t n_skills,
                              struct anomaly *anomalies, size_t n_anomalies)
{
    struct metrics *m = calloc(1, sizeof(*m));
    struct skill_stats **index = calloc(n_skills ? n_skills : 1, sizeof(*index));
    if (!m || !index) {
        free(m);
        free(index);
        skill_stats_free_array(skills, n_skills);
        anomaly_free_array(anomalies, n_anomalies);
        return NULL;
    }
    if (n_skills)
        qsort(skills, n_skills, sizeof(*skills), rank_cmp);
    if (n_anomalies)
        qsort(anomalies, n_anomalies, sizeof(*anomalies), anomaly_cmp);
    for (size_t i = 0; i < n_skills; i++)
        index[i] = &skills[i];
    if (n_skills)
        qsort(index, n_skills, sizeof(*index), by_name_cmp);
    for (size_t i = 0; i < n_anomalies; i++) {
        struct skill_stats key = {.name = anomalies[i].skill_name,
                                  .name_len = anomalies[i].skill_len};
        struct skill_stats *pkey = &key, **hit;
        hit = n_skills ? bsearch(&pkey, index, n_skills, sizeof(*index), by_name_cmp) : NULL;
        if (hit)
            (*hit)->is_anomalous = 1;
    }
    m->refs = 1;
    m->skills = skills;
    m->n_skills = n_skills;
    m->by_name = index;
    m->anomalies = anomalies;
    m->n_anomalies = n_anomalies;
    return m;
}

void metrics_ref(struct metrics *m)
{
    __atomic_add_fetch(&m->refs, 1, __ATOMIC_RELAXED);
}

void metrics_unref(struct metrics *m)
{
    if (!m || __atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    skill_stats_free_array(m->skills, m->n_skills);
    anomaly_free_array(m->anomalies, m->n_anomalies);
    free(m->by_name);
    free(m);
}

const struct skill_stats *metrics_find(const struct metrics *m, const char *name, size_t len)
{
    size_t lo = 0, hi = m->n_skills;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct skill_stats *st = m->by_name[mid];
        int c = name_cmp(name, len, st->name, st->name_len);
        if (c == 0)
            return st;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

struct snapshot *snapshot_new(struct metrics *m, const char *epoch, uint64_t seq,
                              int64_t taken_ms, int stale, size_t top_n)
{
    struct snapshot *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    metrics_ref(m);
    s->refs = 1;
    s->seq = seq;
    memcpy(s->epoch, epoch, SB_EPOCH_LEN);
    s->epoch[SB_EPOCH_LEN] = '\0';
    s->taken_ms = taken_ms;
    s->stale = stale;
    s->top_n = top_n;
    s->metrics = m;
    return s;
}

void snapshot_ref(struct snapshot *s)
{
    __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
}

void snapshot_unref(struct snapshot *s)
{
    if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    metrics_unref(s->metrics);
    prom_view_unref(s->prom);
    free(s);
}

size_t snapshot_heap_bytes(const struct snapshot *s, int with_metrics)
{
    const struct metrics *m = s->metrics;
    size_t bytes = malloc_usable_size((void *)s);
    if (!with_metrics)
        return bytes;
    bytes += malloc_usable_size((void *)m) + malloc_usable_size(m->skills) +
             malloc_usable_size(m->by_name) + malloc_usable_size(m->anomalies);
    for (size_t i = 0; i < m->n_skills; i++)
        bytes += malloc_usable_size(m->skills[i].name);
    for (size_t i = 0; i < m->n_anomalies; i++)
        bytes += malloc_usable_size(m->anomalies[i].skill_name);
    return bytes;
}

/* The one mapping between anomaly types and their names (the DB and the wire use the same). */
static const char *const anomaly_names[] = {
    [ANOMALY_PERFORMANCE_DROP] = "performance_drop",
    [ANOMALY_PERFORMANCE_SPIKE] = "performance_spike",
    [ANOMALY_PATTERN_SHIFT] = "pattern_shift",
};
#define N_ANOMALY_TYPES (sizeof(anomaly_names) / sizeof(anomaly_names[0]))

const char *anomaly_type_name(enum anomaly_type t)
{
    return (size_t)t < N_ANOMALY_TYPES ? anomaly_names[t] : anomaly_names[ANOMALY_PATTERN_SHIFT];
}

int anomaly_type_parse(const char *name, enum anomaly_type *out)
{
    for (size_t i = 0; name && i < N_ANOMALY_TYPES; i++) {
        if (!strcmp(name, anomaly_names[i])) {
            *out = (enum anomaly_type)i;
            return 0;
        }
    }
    return -1;
}

void snapshot_write_time(jbuf *out, int64_t ms)
{
    char iso[32];
    if (ms < 0) {
        jb_null(out);
        return;
    }
    iso_format_ms(ms, iso);
    jb_cstr(out, iso);
}

void snapshot_write_rate(jbuf *out, int64_t done, int64_t total)
{
    if (total > 0)
        jb_double(out, (double)done / (double)total);
    else
        jb_null(out);
}

static void write_top_skill(jbuf *out, const struct skill_stats *st)
{
    jb_lit(out, "{\"skill_name\":");
    jb_str(out, st->name, st->name_len);
    jb_lit(out, ",\"last_invocation_at\":");
    snapshot_write_time(out, st->last_invocation_ms);
    jb_lit(out, ",\"invocation_count\":");
    jb_int(out, st->invocation_count);
    jb_lit(out, ",\"completed_count\":");
    jb_int(out, st->completed_count);
    jb_lit(out, ",\"avg_duration\":");
    jb_double(out, st->avg_duration);
    jb_lit(out, ",\"total_invocations\":");
    jb_int(out, st->total_invocations);
    jb_lit(out, ",\"completion_rate\":");
    snapshot_write_rate(out, st->completed_invocations, st->total_invocations);
    jb_lit(out, ",\"avg_duration_seconds\":");
    jb_double(out, st->avg_duration_seconds);
    jb_lit(out, ",\"invocation_count_1h\":");
    jb_int(out, st->invocation_count_1h);
    jb_lit(out, ",\"is_anomalous\":");
    jb_bool(out, st->is_anomalous);
    jb_lit(out, "}");
}

void snapshot_write_anomaly(jbuf *out, const struct anomaly *a)
{
    jb_lit(out, "{\"skill_name\":");
    jb_str(out, a->skill_name, a->skill_len);
    jb_lit(out, ",\"anomaly_type\":");
    jb_cstr(out, anomaly_type_name(a->type));
    jb_lit(out, ",\"baseline_value\":");
    jb_double(out, a->baseline_value);
    jb_lit(out, ",\"observed_value\":");
    jb_double(out, a->observed_value);
    jb_lit(out, ",\"deviation_score\":");
    jb_double(out, a->deviation_score);
    jb_lit(out, ",\"detected_at\":");
    snapshot_write_time(out, a->detected_ms);
    jb_lit(out, "}");
}

void snapshot_write_update(const struct snapshot *s, const char *skill, size_t skill_len,
                           jbuf *out)
{
    const struct metrics *m = s->metrics;
    char iso[32];

    iso_format_ms(s->taken_ms, iso);
    jb_lit(out, "{\"type\":\"metrics_update\",\"seq\":");
    jb_int(out, (long long)s->seq);
    jb_lit(out, ",\"epoch\":");
    jb_cstr(out, s->epoch);
    jb_lit(out, ",\"timestamp\":");
    jb_cstr(out, iso);
    jb_lit(out, ",\"data\":{\"top_skills\":[");
    if (skill) {
        const struct skill_stats *st = metrics_find(m, skill, skill_len);
        if (st)
            write_top_skill(out, st);
    } else {
        size_t n = m->n_skills < s->top_n ? m->n_skills : s->top_n;
        for (size_t i = 0; i < n; i++) {
            if (i)
                jb_lit(out, ",");
            write_top_skill(out, &m->skills[i]);
        }
    }
    jb_lit(out, "],\"anomalies\":[");
    int first = 1;
    for (size_t i = 0; i < m->n_anomalies; i++) {
        const struct anomaly *a = &m->anomalies[i];
        if (skill && name_cmp(skill, skill_len, a->skill_name, a->skill_len) != 0)
            continue;
        if (!first)
            jb_lit(out, ",");
        first = 0;
        snapshot_write_anomaly(out, a);
    }
    jb_lit(out, "],\"stale\":");
    jb_bool(out, s->stale);
    jb_lit(out, "}}");
}

void snapshot_write_skill_metrics(const struct skill_stats *st, jbuf *out)
{
    jb_lit(out, "{\"skill_name\":");
    jb_str(out, st->name, st->name_len);
    jb_lit(out, ",\"total_invocations\":");
    jb_int(out, st->total_invocations);
    jb_lit(out, ",\"completed_invocations\":");
    jb_int(out, st->completed_invocations);
    jb_lit(out, ",\"completion_rate\":");
    snapshot_write_rate(out, st->completed_invocations, st->total_invocations);
    jb_lit(out, ",\"avg_duration_seconds\":");
    jb_double(out, st->avg_duration_seconds);
    jb_lit(out, ",\"last_invocation_at\":");
    snapshot_write_time(out, st->last_invocation_ms);
    jb_lit(out, ",\"invocation_count_1h\":");
    jb_int(out, st->invocation_count_1h);
    jb_lit(out, ",\"invocation_count_24h\":");
    jb_int(out, st->invocation_count);
    jb_lit(out, ",\"is_anomalous\":");
    jb_bool(out, st->is_anomalous);
    jb_lit(out, "}");
}
