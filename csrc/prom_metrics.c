/* prom_metrics.c - per-(skill, phase) counters and histograms, anomaly counts, active sessions. */
#include "prom_metrics.h"

#include <stdlib.h>
#include <string.h>

const double prom_duration_bounds[PROM_DURATION_BUCKETS] = {0.1, 0.5, 1.0, 2.0, 5.0,
                                                            10.0, 30.0, 60.0, 300.0};

struct series_node {
    struct prom_series s;
    struct series_node *next;
};

struct session_node {
    char *id;
    size_t len;
    int64_t last_ms;
    size_t heap_pos;      /* index in sessions_heap */
    struct session_node *next;
};

struct active_key {
    char *skill;
    size_t skill_len;
    enum anomaly_type type;
};

struct prom_engine {
    struct series_node **series;       /* chained hash on (skill, phase) */
    size_t series_cap;                 /* a power of two */
    size_t n_series;

    struct session_node **sessions;    /* chained hash on session_id */
    size_t sessions_cap;
    size_t n_sessions;
    struct session_node **heap;        /* min-heap on last_ms, n_sessions entries: the next to expire on top */
    size_t heap_cap;

    struct prom_anomaly_count *anomalies;
    size_t n_anomalies, anomalies_cap;
    struct active_key *active;         /* the previous tick's broadcast list */
    size_t n_active;

    int64_t last_id;
    int changed;                       /* counts moved since the view was built */
    struct prom_view *view;            /* the latest view (a reference) */
};

static uint64_t hash_bytes(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL; /* FNV-1a */
    }
    return h;
}

static const uint64_t HASH_SEED = 14695981039346656037ULL;

static char *dup_bytes(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        if (n)
            memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static int bytes_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c)
        return c;
    return (alen > blen) - (alen < blen);
}

struct prom_engine *prom_new(void)
{
    struct prom_engine *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->series_cap = 64;
    p->sessions_cap = 64;
    p->series = calloc(p->series_cap, sizeof(*p->series));
    p->sessions = calloc(p->sessions_cap, sizeof(*p->sessions));
    if (!p->series || !p->sessions) {
        prom_free(p);
        return NULL;
    }
    p->changed = 1;
    return p;
}

void prom_free(struct prom_engine *p)
{
    if (!p)
        return;
    for (size_t i = 0; p->series && i < p->series_cap; i++) {
        for (struct series_node *n = p->series[i], *next; n; n = next) {
            next = n->next;
            free(n->s.skill);
            free(n->s.phase);
            free(n);
        }
    }
    for (size_t i = 0; p->sessions && i < p->sessions_cap; i++) {
        for (struct session_node *n = p->sessions[i], *next; n; n = next) {
            next = n->next;
            free(n->id);
            free(n);
        }
    }
    for (size_t i = 0; i < p->n_anomalies; i++)
        free(p->anomalies[i].skill);
    for (size_t i = 0; i < p->n_active; i++)
        free(p->active[i].skill);
    free(p->series);
    free(p->sessions);
    free(p->heap);
    free(p->anomalies);
    free(p->active);
    prom_view_unref(p->view);
    free(p);
}

/* ---- (skill, phase) series ---- */

static uint64_t series_hash(const char *skill, size_t skill_len, const char *phase, size_t phase_len)
{
    uint64_t h = hash_bytes(HASH_SEED, skill, skill_len);
    h = hash_bytes(h, "", 1); /* a separator: ("ab","c") and ("a","bc") differ */
    return hash_bytes(h, phase, phase_len);
}

static int grow_series(struct prom_engine *p)
{
    size_t cap = p->series_cap * 2;
    struct series_node **t = calloc(cap, sizeof(*t));
    if (!t)
        return -1;
    for (size_t i = 0; i < p->series_cap; i++) {
        for (struct series_node *n = p->series[i], *next; n; n = next) {
            next = n->next;
            size_t b = series_hash(n->s.skill, n->s.skill_len, n->s.phase, n->s.phase_len) & (cap - 1);
            n->next = t[b];
            t[b] = n;
        }
    }
    free(p->series);
    p->series = t;
    p->series_cap = cap;
    return 0;
}

/* The series for (skill, phase), created empty when new; NULL when out of memory. */
static struct prom_series *series_for(struct prom_engine *p, const char *skill, size_t skill_len,
                                      const char *phase, size_t phase_len)
{
    if (!phase || phase_len == 0) {
        phase = PROM_UNKNOWN_PHASE;
        phase_len = sizeof(PROM_UNKNOWN_PHASE) - 1;
    }
    size_t b = series_hash(skill, skill_len, phase, phase_len) & (p->series_cap - 1);
    for (struct series_node *n = p->series[b]; n; n = n->next)
        if (!bytes_cmp(n->s.skill, n->s.skill_len, skill, skill_len) &&
            !bytes_cmp(n->s.phase, n->s.phase_len, phase, phase_len))
            return &n->s;
    if (p->n_series >= p->series_cap && grow_series(p) < 0)
        return NULL;
    struct series_node *n = calloc(1, sizeof(*n));
    if (!n)
        return NULL;
    n->s.skill = dup_bytes(skill, skill_len);
    n->s.phase = dup_bytes(phase, phase_len);
    if (!n->s.skill || !n->s.phase) {
        free(n->s.skill);
        free(n->s.phase);
        free(n);
        return NULL;
    }
    n->s.skill_len = skill_len;
    n->s.phase_len = phase_len;
    b = series_hash(skill, skill_len, phase, phase_len) & (p->series_cap - 1);
    n->next = p->series[b];
    p->series[b] = n;
    p->n_series++;
    return &n->s;
}

static size_t bucket_of(double duration)
{
    size_t b = 0;
    /* A NaN compares false everywhere and lands above every bound, as in +Inf only. */
    while (b < PROM_DURATION_BUCKETS && !(duration <= prom_duration_bounds[b]))
        b++;
    return b;
}

int prom_add_invocation(struct prom_engine *p, const char *skill, size_t skill_len,
                        const char *phase, size_t phase_len, int completed, int has_duration,
                        double duration)
{
    struct prom_series *s = series_for(p, skill, skill_len, phase, phase_len);
    if (!s)
        return -1;
    s->calls[completed ? 1 : 0]++;
    if (has_duration) {
        s->buckets[bucket_of(duration)]++;
        s->n_durations++;
        s->sum_durations += duration;
    }
    p->changed = 1;
    return 0;
}

/* ---- sessions: a hash for lookups, a min-heap on last_ms for expiry ---- */

static void heap_swap(struct prom_engine *p, size_t i, size_t j)
{
    struct session_node *t = p->heap[i];
    p->heap[i] = p->heap[j];
    p->heap[j] = t;
    p->heap[i]->heap_pos = i;
    p->heap[j]->heap_pos = j;
}

static void heap_up(struct prom_engine *p, size_t i)
{
    while (i > 0 && p->heap[(i - 1) / 2]->last_ms > p->heap[i]->last_ms) {
        heap_swap(p, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(struct prom_engine *p, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < p->n_sessions && p->heap[l]->last_ms < p->heap[m]->last_ms)
            m = l;
        if (r < p->n_sessions && p->heap[r]->last_ms < p->heap[m]->last_ms)
            m = r;
        if (m == i)
            return;
        heap_swap(p, i, m);
        i = m;
    }
}

static int grow_sessions(struct prom_engine *p)
{
    size_t cap = p->sessions_cap * 2;
    struct session_node **t = calloc(cap, sizeof(*t));
    if (!t)
        return -1;
    for (size_t i = 0; i < p->sessions_cap; i++) {
        for (struct session_node *n = p->sessions[i], *next; n; n = next) {
            next = n->next;
            size_t b = hash_bytes(HASH_SEED, n->id, n->len) & (cap - 1);
            n->next = t[b];
            t[b] = n;
        }
    }
    free(p->sessions);
    p->sessions = t;
    p->sessions_cap = cap;
    return 0;
}

int prom_session_seen(struct prom_engine *p, const char *session, size_t len, int64_t invoked_ms)
{
    if (invoked_ms < 0)
        return 0;
    size_t b = hash_bytes(HASH_SEED, session, len) & (p->sessions_cap - 1);
    for (struct session_node *n = p->sessions[b]; n; n = n->next) {
        if (!bytes_cmp(n->id, n->len, session, len)) {
            if (invoked_ms > n->last_ms) {
                n->last_ms = invoked_ms;
                heap_down(p, n->heap_pos);
            }
            return 0;
        }
    }
    if (p->n_sessions >= p->sessions_cap && grow_sessions(p) < 0)
        return -1;
    if (p->n_sessions == p->heap_cap) {
        size_t cap = p->heap_cap ? p->heap_cap * 2 : 64;
        struct session_node **h = realloc(p->heap, cap * sizeof(*h));
        if (!h)
            return -1;
        p->heap = h;
        p->heap_cap = cap;
    }
    struct session_node *n = calloc(1, sizeof(*n));
    if (!n || !(n->id = dup_bytes(session, len))) {
        free(n);
        return -1;
    }
    n->len = len;
    n->last_ms = invoked_ms;
    b = hash_bytes(HASH_SEED, session, len) & (p->sessions_cap - 1);
    n->next = p->sessions[b];
    p->sessions[b] = n;
    n->heap_pos = p->n_sessions;
    p->heap[p->n_sessions++] = n;
    heap_up(p, n->heap_pos);
    return 0;
}

static void session_unlink(struct prom_engine *p, struct session_node *gone)
{
    size_t b = hash_bytes(HASH_SEED, gone->id, gone->len) & (p->sessions_cap - 1);
    struct session_node **link = &p->sessions[b];
    while (*link != gone)
        link = &(*link)->next;
    *link = gone->next;
}

/* Forget sessions idle since before now - PROM_ACTIVE_SESSION_MS: each expiry costs O(log n). */
static void expire_sessions(struct prom_engine *p, int64_t now_ms)
{
    int64_t cutoff = now_ms - PROM_ACTIVE_SESSION_MS;
    while (p->n_sessions && p->heap[0]->last_ms < cutoff) {
        struct session_node *gone = p->heap[0];
        heap_swap(p, 0, p->n_sessions - 1);
        p->n_sessions--;
        heap_down(p, 0);
        session_unlink(p, gone);
        free(gone->id);
        free(gone);
    }
}

/* ---- anomalies ---- */

static struct prom_anomaly_count *count_for(struct prom_engine *p, const struct anomaly *a)
{
    for (size_t i = 0; i < p->n_anomalies; i++)
        if (p->anomalies[i].type == a->type &&
            !bytes_cmp(p->anomalies[i].skill, p->anomalies[i].skill_len, a->skill_name, a->skill_len))
            return &p->anomalies[i];
    return NULL;
}

static int was_active(const struct prom_engine *p, const struct anomaly *a)
{
    for (size_t j = 0; j < p->n_active; j++)
        if (p->active[j].type == a->type &&
            !bytes_cmp(p->active[j].skill, p->active[j].skill_len, a->skill_name, a->skill_len))
            return 1;
    return 0;
}

int prom_anomalies_seen(struct prom_engine *p, const struct anomaly *list, size_t n)
{
    struct active_key *next = calloc(n ? n : 1, sizeof(*next));
    size_t made = 0, old_n = p->n_anomalies;

    if (!next)
        return -1;
    for (; made < n; made++) {
        next[made].skill = dup_bytes(list[made].skill_name, list[made].skill_len);
        if (!next[made].skill)
            goto oom;
        next[made].skill_len = list[made].skill_len;
        next[made].type = list[made].type;
    }
    /* Every allocation first (a count for each new (skill, type)), so that counting cannot fail
     * halfway; a failure rolls the new entries back. */
    if (p->n_anomalies + n > p->anomalies_cap) {
        size_t cap = p->n_anomalies + n + 8;
        struct prom_anomaly_count *grown = realloc(p->anomalies, cap * sizeof(*grown));
        if (!grown)
            goto oom;
        p->anomalies = grown;
        p->anomalies_cap = cap;
    }
    for (size_t i = 0; i < n; i++) {
        if (count_for(p, &list[i]))
            continue;
        struct prom_anomaly_count *c = &p->anomalies[p->n_anomalies];
        c->skill = dup_bytes(list[i].skill_name, list[i].skill_len);
        if (!c->skill)
            goto oom;
        c->skill_len = list[i].skill_len;
        c->type = list[i].type;
        c->count = 0;
        p->n_anomalies++;
    }
    for (size_t i = 0; i < n; i++) {
        if (was_active(p, &list[i]))
            continue;
        count_for(p, &list[i])->count++;
        p->changed = 1;
    }
    for (size_t i = 0; i < p->n_active; i++)
        free(p->active[i].skill);
    free(p->active);
    p->active = next;
    p->n_active = n;
    return 0;

oom:
    while (p->n_anomalies > old_n)
        free(p->anomalies[--p->n_anomalies].skill);
    for (size_t i = 0; i < made; i++)
        free(next[i].skill);
    free(next);
    return -1;
}

int64_t prom_last_id(const struct prom_engine *p)
{
    return p->last_id;
}

void prom_set_last_id(struct prom_engine *p, int64_t id)
{
    p->last_id = id;
}

/* ---- views ---- */

static int series_cmp(const void *pa, const void *pb)
{
    const struct prom_series *a = pa, *b = pb;
    int c = bytes_cmp(a->skill, a->skill_len, b->skill, b->skill_len);
    return c ? c : bytes_cmp(a->phase, a->phase_len, b->phase, b->phase_len);
}

static int anomaly_count_cmp(const void *pa, const void *pb)
{
    const struct prom_anomaly_count *a = pa, *b = pb;
    if (a->type != b->type)
        return a->type < b->type ? -1 : 1;
    return bytes_cmp(a->skill, a->skill_len, b->skill, b->skill_len);
}

static void view_free(struct prom_view *v)
{
    for (size_t i = 0; i < v->n_series; i++) {
        free(v->series[i].skill);
        free(v->series[i].phase);
    }
    for (size_t i = 0; i < v->n_anomalies; i++)
        free(v->anomalies[i].skill);
    free(v->series);
    free(v->anomalies);
    free(v);
}

static struct prom_view *view_build(const struct prom_engine *p, int64_t active_sessions)
{
    struct prom_view *v = calloc(1, sizeof(*v));
    if (!v)
        return NULL;
    v->refs = 1;
    v->active_sessions = active_sessions;
    v->series = calloc(p->n_series ? p->n_series : 1, sizeof(*v->series));
    v->anomalies = calloc(p->n_anomalies ? p->n_anomalies : 1, sizeof(*v->anomalies));
    if (!v->series || !v->anomalies)
        goto oom;
    for (size_t i = 0; i < p->series_cap; i++) {
        for (const struct series_node *n = p->series[i]; n; n = n->next) {
            struct prom_series *s = &v->series[v->n_series];
            *s = n->s;
            s->skill = dup_bytes(n->s.skill, n->s.skill_len);
            s->phase = dup_bytes(n->s.phase, n->s.phase_len);
            v->n_series++; /* counted first, so view_free frees what was copied */
            if (!s->skill || !s->phase)
                goto oom;
        }
    }
    for (size_t i = 0; i < p->n_anomalies; i++) {
        struct prom_anomaly_count *c = &v->anomalies[i];
        *c = p->anomalies[i];
        c->skill = dup_bytes(p->anomalies[i].skill, p->anomalies[i].skill_len);
        v->n_anomalies++;
        if (!c->skill)
            goto oom;
    }
    if (v->n_series)
        qsort(v->series, v->n_series, sizeof(*v->series), series_cmp);
    if (v->n_anomalies)
        qsort(v->anomalies, v->n_anomalies, sizeof(*v->anomalies), anomaly_count_cmp);
    return v;

oom:
    view_free(v);
    return NULL;
}

struct prom_view *prom_view_get(struct prom_engine *p, int64_t now_ms)
{
    expire_sessions(p, now_ms);
    int64_t active = (int64_t)p->n_sessions;
    if (p->changed || !p->view || p->view->active_sessions != active) {
        struct prom_view *v = view_build(p, active);
        if (!v)
            return NULL;
        prom_view_unref(p->view);
        p->view = v;
        p->changed = 0;
    }
    prom_view_ref(p->view);
    return p->view;
}

void prom_view_ref(struct prom_view *v)
{
    __atomic_add_fetch(&v->refs, 1, __ATOMIC_RELAXED);
}

void prom_view_unref(struct prom_view *v)
{
    if (!v || __atomic_sub_fetch(&v->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    view_free(v);
}
